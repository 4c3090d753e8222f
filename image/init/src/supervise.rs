//! Running the controller: start it, copy its output to the console, reap it, restart it
//! with capped backoff, and follow what it logs for the status line.
//!
//! PID 1 also reaps every orphan (they are re-parented to it), so the supervisor waits with
//! `waitpid(-1)` and recognises the controller by its pid instead of using
//! `Child::wait`, which would race with that reaping.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::console::{Console, MAX_LINE};

/// First restart delay; doubled after each quick exit.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long resets the backoff: the controller was healthy, the exit is news.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The restart delay after `quick_exits` consecutive quick exits (1, 2, 4 ... 60 s).
pub fn backoff(quick_exits: u32) -> Duration {
    FIRST_BACKOFF
        .checked_mul(1u32.checked_shl(quick_exits).unwrap_or(u32::MAX))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// What the controller's log says about the manager link (until its API reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManagerSeen {
    #[default]
    Unknown,
    /// The manager welcomed the rig's Hello.
    Registered,
    /// The session ended or failed; the controller is reconnecting.
    Down,
}

/// What the supervisor knows, for the status line.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub running_since: Option<Instant>,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub manager: ManagerSeen,
    /// Set when the controller says it is in maintenance mode (the line it gave).
    pub maintenance: Option<String>,
    /// Boot time (s) at which the manager first registered the rig.
    pub first_registered_s: Option<f64>,
}

/// Reads one log line of the controller for the status line.
fn observe(seen: &Mutex<Seen>, line: &str, console: &Console) {
    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
    if line.contains("welcomed by") {
        s.manager = ManagerSeen::Registered;
        s.maintenance = None;
        if s.first_registered_s.is_none() {
            let t = crate::uptime().as_secs_f64();
            s.first_registered_s = Some(t);
            drop(s);
            console.say(format_args!(
                "registered with the manager {t:.1} s after the kernel started"
            ));
        }
    } else if line.contains("reconnecting in") || line.contains("manager closed the session") {
        s.manager = ManagerSeen::Down;
    } else if line.to_ascii_lowercase().contains("maintenance mode") {
        s.maintenance = Some(line.to_owned());
    }
}

/// The controller process and its restarts.
pub struct Supervisor {
    program: PathBuf,
    args: Vec<OsString>,
    console: Arc<Console>,
    pub seen: Arc<Mutex<Seen>>,
    quick_exits: u32,
    next_start: Instant,
}

impl Supervisor {
    pub fn new(program: PathBuf, args: Vec<OsString>, console: Arc<Console>) -> Self {
        Supervisor {
            program,
            args,
            console,
            seen: Arc::default(),
            quick_exits: 0,
            next_start: Instant::now(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the controller if it is not running and its restart delay has passed.
    pub fn start_if_due(&mut self) {
        if self.seen().pid.is_some() || Instant::now() < self.next_start {
            return;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/root")
            .env("TERM", "linux");
        let shown: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                self.console.say(format_args!(
                    "starting controller (pid {pid}): {} {}",
                    self.program.display(),
                    shown.join(" ")
                ));
                for out in [
                    child
                        .stdout
                        .take()
                        .map(|o| Box::new(o) as Box<dyn Read + Send>),
                    child
                        .stderr
                        .take()
                        .map(|o| Box::new(o) as Box<dyn Read + Send>),
                ]
                .into_iter()
                .flatten()
                {
                    let console = self.console.clone();
                    let seen = self.seen.clone();
                    let _ = std::thread::Builder::new()
                        .name("controller-log".into())
                        .spawn(move || copy_lines(out, &console, &seen));
                }
                let mut s = self.seen();
                s.pid = Some(pid);
                s.running_since = Some(Instant::now());
                s.manager = ManagerSeen::Unknown;
                // `child` is dropped without waiting: reap() collects it by pid.
            }
            Err(e) => {
                self.console
                    .say(format_args!("cannot start {}: {e}", self.program.display()));
                self.schedule_restart(Duration::ZERO);
            }
        }
    }

    fn schedule_restart(&mut self, ran: Duration) {
        if ran >= HEALTHY_RUN {
            self.quick_exits = 0;
        }
        let delay = backoff(self.quick_exits);
        self.quick_exits = self.quick_exits.saturating_add(1);
        self.next_start = Instant::now() + delay;
        self.console.say(format_args!(
            "restarting the controller in {} s",
            delay.as_secs()
        ));
    }

    /// Reaps every exited child; handles the controller's exit. Never blocks.
    pub fn reap(&mut self) {
        use rustix::process::{waitpid, WaitOptions};
        while let Ok(Some((pid, status))) = waitpid(None, WaitOptions::NOHANG) {
            let pid = pid.as_raw_nonzero().get();
            let controller = self.seen().pid == Some(pid);
            if !controller {
                continue;
            }
            let how = if let Some(code) = status.exit_status() {
                format!("exited with status {code}")
            } else if let Some(sig) = status.terminating_signal() {
                format!("killed by signal {sig}")
            } else {
                "stopped".to_owned()
            };
            let ran = {
                let mut s = self.seen();
                let ran = s
                    .running_since
                    .take()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                s.pid = None;
                s.restarts += 1;
                s.last_exit = Some(how.clone());
                s.manager = ManagerSeen::Unknown;
                ran
            };
            self.console.say(format_args!(
                "controller {how} after {:.1} s",
                ran.as_secs_f64()
            ));
            self.schedule_restart(ran);
        }
    }
}

/// Copies a child's output to the console line by line (lines cut at [`MAX_LINE`] bytes, so
/// a line without an end cannot grow memory).
fn copy_lines(mut out: Box<dyn Read + Send>, console: &Console, seen: &Mutex<Seen>) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' || line.len() >= MAX_LINE {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                console.line(text);
                observe(seen, text, console);
                line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
    if !line.is_empty() {
        console.line(&String::from_utf8_lossy(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        let d: Vec<u64> = (0..9).map(|i| backoff(i).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn log_lines_drive_the_manager_state() {
        let c = Console::with(None, None);
        let seen = Mutex::new(Seen::default());
        observe(
            &seen,
            "compushare[info]: welcomed by 10.0.2.2:7733 as \"r\" (Untrusted)",
            &c,
        );
        assert_eq!(seen.lock().unwrap().manager, ManagerSeen::Registered);
        assert!(seen.lock().unwrap().first_registered_s.is_some());
        observe(&seen, "compushare[info]: reconnecting in 500 ms", &c);
        assert_eq!(seen.lock().unwrap().manager, ManagerSeen::Down);
    }

    #[test]
    fn restarts_a_dying_program_and_copies_its_output() {
        let console = Arc::new(Console::with(None, None));
        let mut sup = Supervisor::new(
            "/bin/sh".into(),
            vec![
                "-c".into(),
                "echo hello from the child; echo welcomed by x >&2; exit 3".into(),
            ],
            console.clone(),
        );
        sup.start_if_due();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sup.seen.lock().unwrap().restarts == 0 && Instant::now() < deadline {
            // Only our own child: waitpid(-1) in a test process reaps nothing else of ours.
            sup.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
        let s = sup.seen.lock().unwrap().clone();
        assert_eq!(s.restarts, 1);
        assert_eq!(s.last_exit.as_deref(), Some("exited with status 3"));
        assert!(s.pid.is_none());
        std::thread::sleep(Duration::from_millis(100));
        let lines = console.recent(20).join("\n");
        assert!(lines.contains("hello from the child"), "{lines}");
        assert!(lines.contains("controller exited with status 3"), "{lines}");
        assert!(
            lines.contains("restarting the controller in 1 s"),
            "{lines}"
        );
    }
}
