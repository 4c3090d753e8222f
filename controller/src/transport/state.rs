//! The rig's persistent state in STATE_DIR: its identity key and its record of payments.
//!
//! Payments are an append-only text file (`payments.log`), one line per `PaymentNotice`:
//! `unix_s assignment amount spendable`. A line is written and synced before the notice
//! counts as recorded; a notice for an assignment already recorded is ignored, so a manager
//! that repeats a notice after a reconnect is not counted twice. A torn last line (power cut)
//! is skipped when loading.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use compushare_protocol::types::{Amount, AssignmentId};

/// File name of the payment record inside STATE_DIR.
pub const PAYMENTS_FILE: &str = "payments.log";
/// File name of the rig's identity key inside STATE_DIR.
pub const KEY_FILE: &str = "rig.key";
/// Largest payment record loaded (a line is ~40 bytes: millions of payments).
const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;

/// One recorded payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    pub unix_s: u64,
    pub assignment: AssignmentId,
    pub amount: Amount,
    pub spendable: bool,
}

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file in STATE_DIR could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// The OS error (in this error's text, so not its `source`).
        error: std::io::Error,
    },
    /// The payment record is larger than any real one.
    #[error("{}: payment record of {len} bytes is too large", path.display())]
    TooLarge { path: PathBuf, len: u64 },
}

/// The append-only payment record.
#[derive(Debug)]
pub struct Payments {
    path: PathBuf,
    file: File,
    seen: HashSet<AssignmentId>,
    total: u64,
    spendable: u64,
}

impl Payments {
    /// Opens (creating if needed) the record in `dir`, loading what it holds.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join(PAYMENTS_FILE);
        let io = |error| StateError::Io {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut me = Payments {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?,
            path: path.clone(),
            seen: HashSet::new(),
            total: 0,
            spendable: 0,
        };
        let len = me.file.metadata().map_err(io)?.len();
        if len > MAX_RECORD_BYTES {
            return Err(StateError::TooLarge { path, len });
        }
        let text = std::fs::read(&path).map_err(io)?;
        for p in parse_record(&text) {
            me.count(&p);
        }
        Ok(me)
    }

    fn count(&mut self, p: &Payment) {
        if self.seen.insert(p.assignment) {
            self.total = self.total.saturating_add(p.amount.0);
            if p.spendable {
                self.spendable = self.spendable.saturating_add(p.amount.0);
            }
        }
    }

    /// Records a payment; returns false (and writes nothing) for an assignment already paid.
    pub fn record(&mut self, p: Payment) -> Result<bool, StateError> {
        if self.seen.contains(&p.assignment) {
            return Ok(false);
        }
        let line = format!(
            "{} {} {} {}\n",
            p.unix_s,
            p.assignment.0,
            p.amount.0,
            u8::from(p.spendable)
        );
        let io = |error| StateError::Io {
            path: self.path.clone(),
            error,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.count(&p);
        Ok(true)
    }

    /// Total credited, micro-credits.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Credited and spendable, micro-credits.
    pub fn spendable(&self) -> u64 {
        self.spendable
    }

    /// Assignments paid.
    pub fn count_paid(&self) -> usize {
        self.seen.len()
    }
}

/// Every well-formed line of a payment record; anything else (a torn line) is skipped.
pub fn parse_record(bytes: &[u8]) -> Vec<Payment> {
    let text = String::from_utf8_lossy(bytes);
    // Only complete lines count: the last piece without '\n' may be torn.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let p = Payment {
                unix_s: f.next()?.parse().ok()?,
                assignment: AssignmentId(f.next()?.parse().ok()?),
                amount: Amount(f.next()?.parse().ok()?),
                spendable: match f.next()? {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                },
            };
            f.next().is_none().then_some(p)
        })
        .collect()
}
