//! Output to the operator: the serial console (ttyS0) and the screen (tty0).
//!
//! The kernel gives PID 1 only the last `console=` of its command line as stdout, so the
//! init opens both terminals itself and writes every line to each. Lines also go to a
//! bounded ring ([`RING_LINES`]) that the status line and tests can read back.
//!
//! The live status line is drawn differently on each: the screen has a known geometry and
//! nobody types on it, so its bottom row is redrawn in place every second; the serial port
//! is often captured to a file or shared with the controller's console prompt, so there the
//! status is a plain `status:` line, written when it changes and at least every
//! [`SERIAL_STATUS_PERIOD`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines kept in the ring; older lines are dropped first.
pub const RING_LINES: usize = 256;
/// Longest line written (longer ones are cut, with a marker): a runaway child cannot flood
/// the serial port with one endless line.
pub const MAX_LINE: usize = 1024;
/// How often an unchanged status line is repeated on the serial console.
pub const SERIAL_STATUS_PERIOD: Duration = Duration::from_secs(60);

struct Sinks {
    serial: Option<File>,
    screen: Option<File>,
    ring: VecDeque<String>,
    last_serial_status: Option<(String, Instant)>,
    /// Write errors per terminal (a missing screen is not fatal, but it is counted).
    write_errors: u64,
}

/// The operator's terminals. Shared by every thread of the init.
pub struct Console {
    inner: Mutex<Sinks>,
}

fn open_tty(path: &str) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .ok()
}

impl Console {
    /// A console writing to `serial` and `screen` when they can be opened (both are
    /// optional: a rig without a serial port still shows its screen, and tests use none).
    pub fn open(serial: &str, screen: &str) -> Console {
        Console::with(open_tty(serial), open_tty(screen))
    }

    /// A console writing to the given files (none: only the ring).
    pub fn with(serial: Option<File>, screen: Option<File>) -> Console {
        Console {
            inner: Mutex::new(Sinks {
                serial,
                screen,
                ring: VecDeque::with_capacity(RING_LINES),
                last_serial_status: None,
                write_errors: 0,
            }),
        }
    }

    fn sinks(&self) -> std::sync::MutexGuard<'_, Sinks> {
        // A thread that panicked while writing leaves the sinks usable: recover them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one line to both terminals and the ring.
    pub fn line(&self, text: &str) {
        let text = cut(text);
        let mut s = self.sinks();
        let bytes = format!("{text}\r\n");
        s.write_all(bytes.as_bytes());
        if s.ring.len() == RING_LINES {
            s.ring.pop_front();
        }
        s.ring.push_back(text);
    }

    /// Writes `text` as an init message (`init: ...`).
    pub fn say(&self, text: std::fmt::Arguments<'_>) {
        self.line(&format!("init: {text}"));
    }

    /// Draws the status line: in place on the screen's bottom row; as a `status:` line on
    /// the serial console when it changed or [`SERIAL_STATUS_PERIOD`] passed.
    /// `key` is the part whose change is worth a serial line (the status without counters).
    pub fn status(&self, line: &str, key: &str) {
        let line = cut(line);
        let mut s = self.sinks();
        // Save cursor, go to the last row, clear it, write, restore the cursor.
        let drawn = format!("\x1b7\x1b[999;1H\x1b[2K\x1b[7m{line}\x1b[0m\x1b8");
        if let Some(f) = s.screen.as_mut() {
            let failed = f.write_all(drawn.as_bytes()).is_err();
            s.write_errors += u64::from(failed);
        }
        let due = match &s.last_serial_status {
            Some((k, at)) => k != key || at.elapsed() >= SERIAL_STATUS_PERIOD,
            None => true,
        };
        if due {
            s.last_serial_status = Some((key.to_owned(), Instant::now()));
            let text = format!("status: {line}\r\n");
            if let Some(f) = s.serial.as_mut() {
                let failed = f.write_all(text.as_bytes()).is_err();
                s.write_errors += u64::from(failed);
            }
        }
    }

    /// The last `n` lines written (oldest first).
    pub fn recent(&self, n: usize) -> Vec<String> {
        let s = self.sinks();
        let skip = s.ring.len().saturating_sub(n);
        s.ring.iter().skip(skip).cloned().collect()
    }

    /// Writes that failed (a terminal that went away, a full serial buffer).
    pub fn write_errors(&self) -> u64 {
        self.sinks().write_errors
    }
}

impl Sinks {
    fn write_all(&mut self, bytes: &[u8]) {
        for f in [self.serial.as_mut(), self.screen.as_mut()]
            .into_iter()
            .flatten()
        {
            // Non-blocking: a serial port nobody drains must not stall PID 1. A short write
            // loses the tail of one line, which is counted.
            if f.write_all(bytes).is_err() {
                self.write_errors += 1;
            }
        }
    }
}

/// `text` without control characters other than tab, cut to [`MAX_LINE`] characters.
fn cut(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .take(MAX_LINE)
        .collect();
    if text.chars().count() > MAX_LINE {
        out.push_str(" [...]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_lines_are_clean() {
        let c = Console::with(None, None);
        for i in 0..RING_LINES + 10 {
            c.line(&format!("line {i}\x1b[2J"));
        }
        let recent = c.recent(3);
        assert_eq!(
            recent,
            vec![
                format!("line {}[2J", RING_LINES + 7),
                format!("line {}[2J", RING_LINES + 8),
                format!("line {}[2J", RING_LINES + 9)
            ]
        );
        assert_eq!(c.recent(10_000).len(), RING_LINES);
        let long = "x".repeat(MAX_LINE * 2);
        c.line(&long);
        assert!(c.recent(1)[0].ends_with(" [...]"));
    }

    #[test]
    fn serial_status_is_written_on_change_only() {
        let dir = std::env::temp_dir().join(format!("cs-init-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial");
        let serial = File::create(&path).unwrap();
        let c = Console::with(Some(serial), None);
        c.status("a 1 MH/s", "a");
        c.status("a 2 MH/s", "a");
        c.status("b 2 MH/s", "b");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "status: a 1 MH/s\r\nstatus: b 2 MH/s\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
