//! The rig's logging: the workspace's one shim, `compushare_protocol::log` (levels,
//! `COMPUSHARE_LOG`, the `warn!`/`info!`/`debug!` macros, re-exported here and at this
//! crate's root so rig code keeps `crate::log::...` and `crate::{info, warn, debug}`), and the
//! rig's tap of it: a ring of recent lines for the console's `log [N]`.
//!
//! The ring keeps the most recent lines (info and warn always, debug when it is enabled) in
//! fixed memory ([`RING_BYTES`] bytes, about [`RING_LINES`] typical lines): an operator on
//! the serial port sees what the rig said without a disk. It is written without allocating;
//! when full the oldest lines go. [`install_ring`] makes it the shim's tap (the rig and its
//! operator surfaces call it when they start).

use std::sync::Mutex;

pub use compushare_protocol::log::*;

/// Makes the ring the logging shim's tap (idempotent).
pub fn install_ring() {
    let _ = set_tap(ring_tap);
}

/// The tap: one line into the ring, formatted outside the lock (a Display impl that logs
/// cannot deadlock the ring).
fn ring_tap(level: Level, args: std::fmt::Arguments<'_>) {
    let tag = match level {
        Level::Off => "",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    let mut line = LineBuf::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = std::fmt::Write::write_fmt(&mut line, format_args!("{} {tag}: {args}", Utc(now)));
    if let Ok(mut ring) = RING.lock() {
        ring.push(line.as_bytes());
    }
}

/// Bytes the ring of recent lines holds.
pub const RING_BYTES: usize = 64 * 1024;
/// Longest line kept in the ring (longer ones are cut with `...`).
pub const RING_LINE_BYTES: usize = 512;
/// Lines the ring holds when lines are of a typical 128 bytes.
pub const RING_LINES: usize = RING_BYTES / 128;

static RING: Mutex<Ring> = Mutex::new(Ring::new());

/// The last `n` lines of the ring, oldest first, each without its newline.
pub fn recent(n: usize) -> Vec<String> {
    let Ok(ring) = RING.lock() else {
        return Vec::new();
    };
    ring.last(n)
}

/// A byte ring of `\n`-terminated lines; writing past the end overwrites the oldest bytes,
/// and a reader skips the partial line the overwrite leaves at the front.
struct Ring {
    buf: [u8; RING_BYTES],
    /// Next write position.
    head: usize,
    /// Whether the ring has wrapped (the whole buffer holds data).
    full: bool,
}

impl Ring {
    const fn new() -> Self {
        Ring {
            buf: [0; RING_BYTES],
            head: 0,
            full: false,
        }
    }

    fn push(&mut self, line: &[u8]) {
        for &b in line.iter().chain(std::iter::once(&b'\n')) {
            if let Some(slot) = self.buf.get_mut(self.head) {
                *slot = b;
            }
            self.head += 1;
            if self.head == RING_BYTES {
                self.head = 0;
                self.full = true;
            }
        }
    }

    /// The held bytes in order, oldest first.
    fn ordered(&self) -> impl Iterator<Item = &u8> {
        let (newer, older) = self.buf.split_at(self.head);
        let older = if self.full { older } else { &[][..] };
        older.iter().chain(newer.iter())
    }

    fn last(&self, n: usize) -> Vec<String> {
        let bytes: Vec<u8> = self.ordered().copied().collect();
        // After a wrap the first line is a fragment: drop everything up to its newline.
        let start = if self.full {
            bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| p + 1)
        } else {
            0
        };
        let lines: Vec<&[u8]> = bytes
            .get(start..)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let skip = lines.len().saturating_sub(n);
        lines
            .iter()
            .skip(skip)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

/// A line being formatted: at most [`RING_LINE_BYTES`], cut at a character boundary with
/// `...`, newlines inside a message flattened so that one message stays one ring line.
struct LineBuf {
    buf: [u8; RING_LINE_BYTES],
    len: usize,
    cut: bool,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            buf: [0; RING_LINE_BYTES],
            len: 0,
            cut: false,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        const MARK: &[u8] = b"...";
        for c in s.chars() {
            if self.cut {
                break;
            }
            let c = if c == '\n' || c == '\r' { ' ' } else { c };
            let mut utf8 = [0u8; 4];
            let enc = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + enc.len() > RING_LINE_BYTES - MARK.len() {
                self.cut = true;
                if let Some(dst) = self.buf.get_mut(self.len..self.len + MARK.len()) {
                    dst.copy_from_slice(MARK);
                    self.len += MARK.len();
                }
                break;
            }
            if let Some(dst) = self.buf.get_mut(self.len..self.len + enc.len()) {
                dst.copy_from_slice(enc);
                self.len += enc.len();
            }
        }
        Ok(())
    }
}

/// Unix seconds shown as UTC `YYYY-MM-DDThh:mm:ssZ` (civil-from-days, proleptic Gregorian).
struct Utc(u64);

impl std::fmt::Display for Utc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.0 / 86_400;
        let secs = self.0 % 86_400;
        // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(Utc(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Utc(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(Utc(1_796_164_509).to_string(), "2026-12-01T22:35:09Z");
        assert_eq!(Utc(4_107_542_399).to_string(), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn ring_keeps_the_newest_whole_lines() {
        let mut r = Box::new(Ring::new());
        assert!(r.last(5).is_empty());
        r.push(b"one");
        r.push(b"two");
        assert_eq!(r.last(5), ["one", "two"]);
        assert_eq!(r.last(1), ["two"]);
        // Wrap several times: only whole lines come back, newest last, none torn.
        for i in 0..20_000u32 {
            r.push(format!("line {i:05} {}", "x".repeat((i % 97) as usize)).as_bytes());
        }
        let last = r.last(usize::MAX);
        assert!(last.len() > 100 && last.len() < RING_BYTES / 10);
        assert!(last.last().is_some_and(|l| l.starts_with("line 19999 ")));
        for (a, b) in last.iter().zip(last.iter().skip(1)) {
            let n = |l: &str| l.get(5..10).and_then(|d| d.parse::<u32>().ok());
            assert_eq!(n(a).map(|x| x + 1), n(b), "{a:?} then {b:?}");
        }
    }

    #[test]
    fn long_lines_are_cut_and_flattened() {
        let mut l = LineBuf::new();
        let _ = std::fmt::Write::write_str(&mut l, "a\nb");
        assert_eq!(l.as_bytes(), b"a b");
        let mut l = LineBuf::new();
        let _ = std::fmt::Write::write_str(&mut l, &"é".repeat(1000));
        let s = std::str::from_utf8(l.as_bytes()).unwrap();
        assert!(
            s.ends_with("...") && s.len() <= RING_LINE_BYTES,
            "{}",
            s.len()
        );
    }

    #[test]
    fn emitted_lines_reach_the_ring_whatever_the_stderr_level() {
        install_ring();
        crate::info!("ring tap test {}", 42);
        assert!(recent(RING_LINES)
            .iter()
            .any(|l| l.ends_with(" info: ring tap test 42")));
    }
}
