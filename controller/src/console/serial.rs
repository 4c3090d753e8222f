//! The console on a serial port (`SERIAL_CONSOLE`, 115200 8N1).
//!
//! The tty is put in raw mode at 115200 baud, 8 data bits, no parity, one stop bit, no
//! hardware flow control, and read without blocking through tokio's `AsyncFd`; the line
//! discipline (echo, editing, line ends) is [`super::line`]. A port that vanishes or hangs
//! up (a USB adapter pulled, the other end of a pty closed) is reopened after
//! [`REOPEN_DELAY`], backing off to [`REOPEN_MAX`]; a reply that cannot be written within
//! [`WRITE_TIMEOUT`] (output held by flow control) is dropped, so a stuck port never stalls
//! the rig. Termios goes through
//! rustix's safe API; the one `unsafe` call (registering the descriptor with tokio) is in
//! [`super::sys`].

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, ControlModes, OptionalActions};
use tokio::io::unix::AsyncFd;

use super::line::{Input, LineEditor};
use super::parse::ParseError;
use crate::command::CommandTx;
use crate::ops::OpsStats;
use crate::status::StatusRx;

/// The line speed of the console port.
pub const BAUD: u32 = 115_200;
/// Wait before reopening a port that failed or hung up; doubled after each failed open up
/// to [`REOPEN_MAX`], so a port that is gone for good costs a log line, not a flood.
pub const REOPEN_DELAY: Duration = Duration::from_secs(2);
/// Longest wait between attempts to open a missing port.
pub const REOPEN_MAX: Duration = Duration::from_secs(60);
/// Longest a single write to the port may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the serial console could not use its port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// The path could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    /// The path is not a terminal, or its line settings could not be set.
    #[error("{}: cannot set 115200 8N1 raw mode (is it a tty?): {source}", path.display())]
    Configure { path: PathBuf, source: io::Error },
    /// Reading or writing the port failed (it is reopened).
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The other end hung up (it is reopened).
    #[error("{}: hung up", path.display())]
    HungUp { path: PathBuf },
}

/// An open console port.
pub struct Port {
    fd: AsyncFd<OwnedFd>,
    path: PathBuf,
}

impl Port {
    /// Opens `path` and sets 115200 8N1 raw mode. Needs a tokio runtime.
    pub fn open(path: &Path) -> Result<Self, SerialError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SerialError::Open {
            path: path.to_owned(),
            source: e.into(),
        })?;
        configure(&fd).map_err(|e| SerialError::Configure {
            path: path.to_owned(),
            source: e.into(),
        })?;
        let fd = super::sys::register(fd).map_err(|source| SerialError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Port {
            fd,
            path: path.to_owned(),
        })
    }

    fn io_err(&self, e: io::Error) -> SerialError {
        SerialError::Io {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Reads what has arrived (at least one byte).
    async fn read(&self, buf: &mut [u8]) -> Result<usize, SerialError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| self.io_err(e))?;
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut *buf).map_err(io::Error::from))
            {
                Ok(Ok(0)) => {
                    return Err(SerialError::HungUp {
                        path: self.path.clone(),
                    })
                }
                Ok(Ok(n)) => return Ok(n),
                // A pty whose other side closed reports EIO: a hang-up, not a fault.
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Err(SerialError::HungUp {
                        path: self.path.clone(),
                    })
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(self.io_err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `bytes`, or gives up after [`WRITE_TIMEOUT`].
    async fn write_all(&self, mut bytes: &[u8]) -> Result<(), SerialError> {
        let write = async {
            while !bytes.is_empty() {
                let mut guard = self.fd.writable().await.map_err(|e| self.io_err(e))?;
                match guard
                    .try_io(|fd| rustix::io::write(fd.get_ref(), bytes).map_err(io::Error::from))
                {
                    Ok(Ok(n)) => bytes = bytes.get(n..).unwrap_or_default(),
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(self.io_err(e)),
                    Err(_would_block) => {}
                }
            }
            Ok(())
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => Err(self.io_err(io::ErrorKind::TimedOut.into())),
        }
    }
}

/// Raw mode at 115200 8N1, no flow control, reads return what has arrived.
fn configure(fd: &OwnedFd) -> rustix::io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    t.make_raw();
    t.set_speed(BAUD)?;
    t.control_modes -= ControlModes::PARENB | ControlModes::CSTOPB | ControlModes::CRTSCTS;
    t.control_modes -= ControlModes::CSIZE;
    t.control_modes |= ControlModes::CS8 | ControlModes::CLOCAL | ControlModes::CREAD;
    termios::tcsetattr(fd, OptionalActions::Now, &t)
}

/// Text for a raw terminal: every `\n` becomes `\r\n`.
fn crlf(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
}

fn prompt(status: &StatusRx, out: &mut Vec<u8>) {
    let name = status.borrow().name.clone();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"> ");
}

/// Runs the console on `path` for ever: opens it (again after a failure or hang-up), and
/// answers every line typed on it. `first` is a port already opened by the caller, if any.
pub async fn run(
    path: PathBuf,
    first: Option<Port>,
    status: StatusRx,
    commands: CommandTx,
    stats: Arc<OpsStats>,
) {
    let mut port = first;
    let mut delay = REOPEN_DELAY;
    // The caller has logged a failed first open; later failures of a streak go to debug.
    let mut failing = port.is_none();
    loop {
        let p = match port.take() {
            Some(p) => p,
            None => match Port::open(&path) {
                Ok(p) => {
                    if failing {
                        crate::info!("serial console: {} is back", path.display());
                    }
                    (failing, delay) = (false, REOPEN_DELAY);
                    p
                }
                Err(e) => {
                    stats.count_serial(&e);
                    if failing {
                        crate::debug!("serial console: {e}");
                    } else {
                        crate::warn!(
                            "serial console: {e}; retrying, at most every {} s",
                            REOPEN_MAX.as_secs()
                        );
                    }
                    failing = true;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(REOPEN_MAX);
                    continue;
                }
            },
        };
        if let Err(e) = session(&p, &status, &commands, &stats).await {
            stats.count_serial(&e);
            match e {
                SerialError::HungUp { .. } => crate::debug!("serial console: {e}"),
                _ => crate::warn!("serial console: {e}"),
            }
        }
        drop(p);
        tokio::time::sleep(REOPEN_DELAY).await;
    }
}

async fn session(
    port: &Port,
    status: &StatusRx,
    commands: &CommandTx,
    stats: &OpsStats,
) -> Result<(), SerialError> {
    let mut out = Vec::with_capacity(1024);
    let banner = {
        let s = status.borrow();
        format!("\ncompushare rig {} ({}); type help\n", s.name, s.firmware)
    };
    crlf(&banner, &mut out);
    prompt(status, &mut out);
    port.write_all(&out).await?;
    let mut editor = LineEditor::new();
    let mut buf = [0u8; 256];
    loop {
        let n = port.read(&mut buf).await?;
        out.clear();
        for &b in buf.get(..n).unwrap_or_default() {
            let Some(input) = editor.feed(b, &mut out) else {
                continue;
            };
            match input {
                Input::Line(line) => {
                    // Echo first, so the operator sees the line end before a slow answer.
                    port.write_all(&out).await?;
                    out.clear();
                    let snapshot = status.borrow().clone();
                    let reply = super::answer(&line, &snapshot, commands).await;
                    stats.count_console_line(reply.ok);
                    if !reply.text.is_empty() {
                        crlf(&reply.text, &mut out);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                Input::TooLong { len } => {
                    stats.count_console_line(false);
                    let msg = format!("error: {}\n", ParseError::TooLong { len });
                    crlf(&msg, &mut out);
                }
                Input::Interrupt => {}
            }
            prompt(status, &mut out);
        }
        if !out.is_empty() {
            port.write_all(&out).await?;
        }
    }
}
