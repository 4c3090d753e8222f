//! A pseudo-terminal pair for serial-console tests: the rig's console opens the slave as its
//! serial port (115200 8N1), the test types on the master as an operator's terminal would.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A pty pair: the master (non-blocking, what a terminal holds) and the slave's path.
pub fn open() -> std::io::Result<(std::fs::File, PathBuf)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master: OwnedFd = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let path = PathBuf::from(name.to_string_lossy().into_owned());
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK)?;
    Ok((std::fs::File::from(master), path))
}

/// Reads the master until `want` appears in everything read so far (kept in `seen`); false
/// at `limit` or end of file.
pub fn read_until(
    master: &mut std::fs::File,
    seen: &mut String,
    want: &str,
    limit: Duration,
) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        if Instant::now() > end {
            return false;
        }
        match master.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => return false,
        }
    }
    true
}
