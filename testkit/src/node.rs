//! A management node as a child process (`compushare manager init`, `grant`, `run`) for
//! process tests and benchmarks: the real binary, on loopback, on a data directory of its own.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use compushare_protocol::hex;
use compushare_protocol::types::PublicKey;

/// A node's data directory and key, made by `compushare manager init`.
#[derive(Debug, Clone)]
pub struct Node {
    bin: PathBuf,
    pub data: PathBuf,
    pub key: PublicKey,
}

fn failed(what: &str, out: &std::process::Output) -> io::Error {
    io::Error::other(format!(
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

impl Node {
    /// Runs `BIN manager init --data DATA`.
    pub fn init(bin: &Path, data: PathBuf) -> io::Result<Node> {
        let out = Command::new(bin)
            .args(["manager", "init", "--data"])
            .arg(&data)
            .output()?;
        if !out.status.success() {
            return Err(failed("manager init", &out));
        }
        let key = hex::decode_array(String::from_utf8_lossy(&out.stdout).trim())
            .map_err(|e| io::Error::other(format!("manager init printed no key: {e}")))?;
        Ok(Node {
            bin: bin.to_owned(),
            data,
            key,
        })
    }

    /// Credits `account` with `amount` (the node must not be running).
    pub fn grant(&self, account: &PublicKey, amount: u64) -> io::Result<()> {
        let out = Command::new(&self.bin)
            .args(["manager", "grant", "--data"])
            .arg(&self.data)
            .arg(hex::encode(account))
            .arg(amount.to_string())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed("manager grant", &out))
        }
    }

    /// Starts `manager run` on `addr` with `args` after the address, output discarded.
    pub fn run(&self, addr: &str, args: &[&str]) -> io::Result<Child> {
        Command::new(&self.bin)
            .args(["manager", "run", "--data"])
            .arg(&self.data)
            .args(["--listen", addr])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }
}

/// A loopback address with a port free now.
pub fn free_addr() -> io::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}
