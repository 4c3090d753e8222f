//! The manager's database: one redb file (`DATA/manager.redb`), its tables, and the read and
//! write transactions every other module goes through.
//!
//! A [`WriteTx`] is one redb write transaction: jobs, assignments, held results, trust records
//! and ledger entries changed inside it are committed together or not at all (redb commits are
//! durable and atomic, so `kill -9` at any moment leaves the previous or the next state). Money
//! operations live in [`crate::ledger`], trust operations in [`crate::trust`], both as methods
//! of [`WriteTx`].

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use compushare_protocol::types::{AssignmentId, Digest, JobId};
use redb::ReadableTable;
use serde::{de::DeserializeOwned, Serialize};

pub mod migrate;

use crate::codec::{self, CodecError};
use crate::config::{Config, ConfigError};
use crate::records::{AssignmentRecord, JobRecord};

/// Key of [`tables::JOB_ASSIGNMENTS`]: job id then assignment id, both big-endian, so a
/// job's assignments are one key range.
pub(crate) fn job_assignment_key(job: JobId, id: AssignmentId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&job.0.to_be_bytes());
    k[8..].copy_from_slice(&id.0.to_be_bytes());
    k
}

/// Table definitions. Public so that other parts of the manager can keep their own tables in
/// the same database (open them through [`WriteTx::redb`]) and so tests can tamper with files.
pub mod tables {
    use redb::TableDefinition;

    /// Small records by name: config, ledger head, id counters, format version.
    pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    /// Account (encoded [`crate::ledger::Account`]) to balance (encoded `i128`, micro-credits).
    pub const BALANCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("balances");
    /// Ledger sequence number to encoded [`crate::ledger::StoredEntry`].
    pub const LEDGER: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger");
    /// Assignment id to the sequence number of its payment: at most one per assignment.
    pub const PAID: TableDefinition<u64, u64> = TableDefinition::new("paid");
    /// Rig key (32 bytes) || assignment id (8 bytes, big-endian) to encoded
    /// [`crate::ledger::PendingPay`]: pay not yet spendable.
    pub const PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending");
    /// Job id to encoded [`crate::records::JobRecord`].
    pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
    /// Input digest (32 bytes) to the job's MCX JSON bytes.
    pub const INPUTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inputs");
    /// Assignment id to encoded [`crate::records::AssignmentRecord`].
    pub const ASSIGNMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("assignments");
    /// Assignment id to its verified tally's canonical bytes (`Tally::canonical_bytes`, opened
    /// and checked), held until the job's results are merged.
    pub const HELD: TableDefinition<u64, &[u8]> = TableDefinition::new("held_results");
    /// Job id to the merged tally's canonical bytes (sealed for the client's key only when it
    /// fetches the result).
    pub const CLIENT_RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("client_results");
    /// Job id (8 bytes, big-endian) || assignment id (8 bytes, big-endian), value unused: a
    /// job's assignments without scanning every assignment ever issued.
    pub const JOB_ASSIGNMENTS: TableDefinition<&[u8], u8> = TableDefinition::new("job_assignments");
    /// Rig key (32 bytes) to encoded [`crate::trust::RigRecord`].
    pub const RIGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rigs");
    /// Rig key || rater key (64 bytes) to stars (1-5); one rating per rater and rig.
    pub const RATINGS: TableDefinition<&[u8], u8> = TableDefinition::new("ratings");
}

use tables::*;

pub(crate) const META_CONFIG: &str = "config";
pub(crate) const META_HEAD: &str = "ledger_head";
const META_NEXT_JOB: &str = "next_job";
const META_NEXT_ASSIGNMENT: &str = "next_assignment";
pub(crate) const META_FORMAT: &str = "format";
/// The end of the ledger's hash chain (kept in the meta table; see [`crate::ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub next_seq: u64,
    pub hash: [u8; 32],
}

impl Head {
    /// The head of an empty ledger.
    pub fn genesis() -> Head {
        Head {
            next_seq: 0,
            hash: [0; 32],
        }
    }
}

/// Version of the table layout. An older database from
/// [`migrate::OLDEST_UPGRADABLE`] on is upgraded when opened; any other is refused.
/// 2: rig records carry their standing (duplicate passed, demotions, paid, forfeited) and
/// assignment records their payout key.
/// 3: job records carry the fee and check-allowance rates they were accepted at.
/// 4: the config carries `max_job_bytes`; job inputs are job bundles (a JSON-only input is
/// its own bundle, so stored inputs are unchanged).
pub(crate) const FORMAT_VERSION: u32 = 5;

/// Why the database failed: the engine, a stored value, the file, the format, the settings,
/// or a record a caller required that is not there. Failures of the layers above (money:
/// [`crate::ledger::LedgerError`]; the market's records: [`crate::persist::PersistError`];
/// ratings: [`crate::trust::TrustError`]) are their own enums, which wrap this one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database engine failed (I/O, corruption it detected, lock held by another process).
    #[error("database {path}: {error}")]
    Db {
        /// The database file.
        path: String,
        /// The engine's error (boxed: it is large and rare; in this error's text, so not its
        /// `source`, which a chain printer would print again).
        error: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("table `{table}` key {key}: {source}")]
    Corrupt {
        /// The table it was read from.
        table: &'static str,
        /// The key, as text.
        key: String,
        /// The decoder's error.
        source: CodecError,
    },
    /// Another process (a running manager) holds the database open.
    #[error("{path}: in use by another process (stop `compushare manager run` first)")]
    Locked {
        /// The database file.
        path: String,
    },
    /// The data directory has no initialised database (`compushare manager init`).
    #[error("{path}: not an initialised manager database (run `compushare manager init`)")]
    NotInitialised {
        /// The database file.
        path: String,
    },
    /// The database was written by an incompatible version.
    #[error(
        "{path}: database format {found}; this build reads {FORMAT_VERSION} and upgrades from {}",
        migrate::OLDEST_UPGRADABLE
    )]
    Format {
        /// The database file.
        path: String,
        /// The version found.
        found: u32,
    },
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Creating the data directory failed.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The OS error (in this error's text, so not its `source`).
        error: std::io::Error,
    },
    /// No record of this job (one was required).
    #[error("unknown job {0}")]
    UnknownJob(u64),
    /// No record of this assignment (one was required).
    #[error("unknown assignment {0}")]
    UnknownAssignment(u64),
    /// A stored counter would overflow.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
}

impl StoreError {
    /// The variant's name (`store.` and its own), for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Db { .. } => "store.db",
            StoreError::Corrupt { .. } => "store.corrupt",
            StoreError::Locked { .. } => "store.locked",
            StoreError::NotInitialised { .. } => "store.not_initialised",
            StoreError::Format { .. } => "store.format",
            StoreError::Config(_) => "store.config",
            StoreError::Io { .. } => "store.io",
            StoreError::UnknownJob(_) => "store.unknown_job",
            StoreError::UnknownAssignment(_) => "store.unknown_assignment",
            StoreError::Overflow(_) => "store.overflow",
        }
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes of database pages redb keeps in memory. Its default (1 GiB) lets a node's memory
/// grow with its history (every finished job, assignment and ledger entry ever read or
/// written); the working set of a running node is its running jobs, which the market holds
/// itself, so reads past this cache go to the OS's page cache instead.
pub const CACHE_BYTES: usize = 1 << 20;

/// The manager's database.
pub struct Store {
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Creates the database at `path` with `config` if it does not exist, or opens it (keeping
    /// its stored config) if it does. Returns the store and whether it was created.
    pub fn init(path: &Path, config: &Config) -> Result<(Store, bool)> {
        config.validate()?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| db_err(path, e))?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        let created = store.write(|tx| tx.initialise(config))?;
        Ok((store, created))
    }

    /// A database held in memory only (tests, and runs that need no state after exit); `config`
    /// is stored in it as by [`Store::init`].
    pub fn in_memory(config: &Config) -> Result<Store> {
        config.validate()?;
        let path = PathBuf::from(":memory:");
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| db_err(&path, e))?;
        let store = Store { db, path };
        store.write(|tx| tx.initialise(config))?;
        Ok(store)
    }

    /// Opens an initialised database.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::NotInitialised {
                path: path.display().to_string(),
            });
        }
        // `open`, not `create`: an empty or foreign file must not be initialised here.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(path)
            .map_err(|e| db_err(path, e))?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        let read = store.read()?;
        let format: Option<u32> = match read.txn.open_table(META) {
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err(path, e)),
            Ok(_) => read.meta(META_FORMAT)?,
        };
        match format {
            None => {
                return Err(StoreError::NotInitialised {
                    path: path.display().to_string(),
                })
            }
            Some(FORMAT_VERSION) => {}
            Some(found) if (migrate::OLDEST_UPGRADABLE..FORMAT_VERSION).contains(&found) => {
                drop(read);
                let rewritten = store.write_with(false, Some(found), |tx| -> Result<usize> {
                    let n = migrate::upgrade(tx, found)?;
                    tx.put_meta(META_FORMAT, &FORMAT_VERSION)?;
                    Ok(n)
                })?;
                compushare_protocol::info!(
                    "{}: upgraded database format {found} to {FORMAT_VERSION} ({rewritten} records rewritten)",
                    path.display()
                );
                return Ok(store);
            }
            Some(found) => {
                return Err(StoreError::Format {
                    path: path.display().to_string(),
                    found,
                })
            }
        }
        drop(read);
        Ok(store)
    }

    /// Opens `DATA/manager.redb` in a data directory.
    pub fn open_dir(dir: &Path) -> Result<Store> {
        Store::open(&dir.join(crate::DB_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction and commits it if `f` returns `Ok`; on `Err` nothing
    /// of it is kept.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_with(false, None, f)
    }

    /// Like [`Store::write`], but the commit is not flushed to disk before returning: still
    /// atomic, but a crash may lose it (and later relaxed commits). For bookkeeping that can be
    /// redone (statistics, heartbeats); money cannot move in it: ledger operations are refused
    /// with [`StoreError::RelaxedMoney`].
    pub fn write_relaxed<T, E>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_with(true, None, f)
    }

    /// One write transaction; `upgrading` is the format being upgraded from (its config is
    /// read in that format's layout).
    fn write_with<T, E>(
        &self,
        relaxed: bool,
        upgrading: Option<u32>,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut txn = self.db.begin_write().map_err(|e| db_err(&self.path, e))?;
        if relaxed {
            txn.set_durability(redb::Durability::Eventual);
        }
        let mut tx = WriteTx {
            txn,
            path: self.path.clone(),
            now: now_unix_s(),
            config: Config::default(),
            relaxed,
        };
        let stored = match upgrading {
            Some(from) => migrate::stored_config(&tx, from)?,
            None => tx.meta::<Config>(META_CONFIG)?,
        };
        if let Some(config) = stored {
            // A stored config edited out of range is refused rather than acted on.
            config.validate().map_err(StoreError::from)?;
            tx.config = config;
        }
        let out = f(&mut tx)?;
        tx.txn.commit().map_err(|e| db_err(&self.path, e))?;
        Ok(out)
    }

    /// A consistent read-only view.
    pub fn read(&self) -> Result<ReadTx> {
        let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        Ok(ReadTx {
            txn,
            path: self.path.clone(),
        })
    }

    /// The stored configuration.
    pub fn config(&self) -> Result<Config> {
        let config: Config =
            self.read()?
                .meta(META_CONFIG)?
                .ok_or_else(|| StoreError::NotInitialised {
                    path: self.path.display().to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let e = e.into();
    if matches!(e, redb::Error::DatabaseAlreadyOpen) {
        return StoreError::Locked {
            path: path.display().to_string(),
        };
    }
    StoreError::Db {
        path: path.display().to_string(),
        error: Box::new(e),
    }
}

pub(crate) fn get_decoded<'t, K, T, Tab>(
    table: &Tab,
    name: &'static str,
    key: K::SelfType<'t>,
    key_text: impl FnOnce() -> String,
    path: &Path,
) -> Result<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
    Tab: ReadableTable<K, &'static [u8]>,
{
    match table.get(key).map_err(|e| db_err(path, e))? {
        None => Ok(None),
        Some(guard) => codec::decode(name, guard.value())
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                table: name,
                key: key_text(),
                source,
            }),
    }
}

/// Read access shared by [`ReadTx`] and [`WriteTx`].
macro_rules! read_api {
    () => {
        /// A stored meta record.
        pub fn meta<T: DeserializeOwned>(&self, name: &'static str) -> Result<Option<T>> {
            let t = self.txn.open_table(META).map_err(|e| self.db(e))?;
            get_decoded::<&str, T, _>(&t, "meta", name, || name.to_owned(), &self.path)
        }

        /// A job.
        pub fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
            let t = self.txn.open_table(JOBS).map_err(|e| self.db(e))?;
            get_decoded::<u64, _, _>(&t, "jobs", id.0, || id.0.to_string(), &self.path)
        }

        /// Every job, in id order.
        pub fn jobs(&self) -> Result<Vec<JobRecord>> {
            let t = self.txn.open_table(JOBS).map_err(|e| self.db(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.db(e))? {
                let (k, v) = item.map_err(|e| self.db(e))?;
                out.push(codec::decode("jobs", v.value()).map_err(|source| {
                    StoreError::Corrupt {
                        table: "jobs",
                        key: k.value().to_string(),
                        source,
                    }
                })?);
            }
            Ok(out)
        }

        /// An assignment.
        pub fn assignment(&self, id: AssignmentId) -> Result<Option<AssignmentRecord>> {
            let t = self.txn.open_table(ASSIGNMENTS).map_err(|e| self.db(e))?;
            get_decoded::<u64, _, _>(&t, "assignments", id.0, || id.0.to_string(), &self.path)
        }

        /// A job's assignments, through the job index (cost: that job's assignments only).
        pub fn job_assignments(&self, job: JobId) -> Result<Vec<AssignmentRecord>> {
            let t = match self.txn.open_table(JOB_ASSIGNMENTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.db(e)),
            };
            let lo = crate::store::job_assignment_key(job, AssignmentId(0));
            let hi = crate::store::job_assignment_key(job, AssignmentId(u64::MAX));
            let mut out = Vec::new();
            for item in t
                .range(lo.as_slice()..=hi.as_slice())
                .map_err(|e| self.db(e))?
            {
                let (k, _) = item.map_err(|e| self.db(e))?;
                let mut id = [0u8; 8];
                if let Some(tail) = k.value().get(8..16) {
                    id.copy_from_slice(tail);
                }
                if let Some(a) = self.assignment(AssignmentId(u64::from_be_bytes(id)))? {
                    out.push(a);
                }
            }
            Ok(out)
        }

        /// Every assignment, in id order (filter by job or state as needed).
        pub fn assignments(&self) -> Result<Vec<AssignmentRecord>> {
            let t = self.txn.open_table(ASSIGNMENTS).map_err(|e| self.db(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.db(e))? {
                let (k, v) = item.map_err(|e| self.db(e))?;
                out.push(codec::decode("assignments", v.value()).map_err(|source| {
                    StoreError::Corrupt {
                        table: "assignments",
                        key: k.value().to_string(),
                        source,
                    }
                })?);
            }
            Ok(out)
        }

        /// A job's input bytes by digest.
        pub fn input(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
            let t = self.txn.open_table(INPUTS).map_err(|e| self.db(e))?;
            let got = t
                .get(digest.as_slice())
                .map_err(|e| self.db(e))?
                .map(|g| g.value().to_vec());
            Ok(got)
        }

        /// A verified result's held tally bytes.
        pub fn held(&self, id: AssignmentId) -> Result<Option<Vec<u8>>> {
            let t = self.txn.open_table(HELD).map_err(|e| self.db(e))?;
            let got = t
                .get(id.0)
                .map_err(|e| self.db(e))?
                .map(|g| g.value().to_vec());
            Ok(got)
        }

        /// A finished job's merged tally bytes.
        pub fn client_result(&self, id: JobId) -> Result<Option<Vec<u8>>> {
            let t = self
                .txn
                .open_table(CLIENT_RESULTS)
                .map_err(|e| self.db(e))?;
            let got = t
                .get(id.0)
                .map_err(|e| self.db(e))?
                .map(|g| g.value().to_vec());
            Ok(got)
        }

        /// The stored configuration.
        pub fn config_stored(&self) -> Result<Option<Config>> {
            self.meta(META_CONFIG)
        }

        pub(crate) fn db(&self, e: impl Into<redb::Error>) -> StoreError {
            db_err(&self.path, e)
        }
    };
}

/// A consistent read-only view of the database.
pub struct ReadTx {
    pub(crate) txn: redb::ReadTransaction,
    pub(crate) path: PathBuf,
}

impl ReadTx {
    read_api!();

    /// The underlying redb transaction, for tables other modules keep themselves.
    pub fn redb(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

/// One write transaction (see [`Store::write`]).
pub struct WriteTx {
    pub(crate) txn: redb::WriteTransaction,
    pub(crate) path: PathBuf,
    /// Time stamped on everything written in this transaction.
    pub(crate) now: u64,
    pub(crate) config: Config,
    /// Not flushed on commit: no money may move (see [`Store::write_relaxed`]).
    pub(crate) relaxed: bool,
}

impl WriteTx {
    read_api!();

    /// The underlying redb transaction, for tables other modules keep themselves.
    pub fn redb(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// The time stamped on this transaction's changes, Unix seconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the stored configuration (validated first).
    pub fn set_config(&mut self, config: Config) -> Result<()> {
        config.validate()?;
        self.put_meta(META_CONFIG, &config)?;
        self.config = config;
        Ok(())
    }

    pub(crate) fn put_meta<T: Serialize>(&mut self, name: &'static str, value: &T) -> Result<()> {
        let bytes = codec::encode(name, value).map_err(|source| StoreError::Corrupt {
            table: "meta",
            key: name.to_owned(),
            source,
        })?;
        let mut t = self.txn.open_table(META).map_err(|e| self.db(e))?;
        t.insert(name, bytes.as_slice()).map_err(|e| self.db(e))?;
        Ok(())
    }

    fn next_id(&mut self, name: &'static str) -> Result<u64> {
        let id: u64 = self.meta(name)?.unwrap_or(1);
        let next = id.checked_add(1).ok_or(StoreError::Overflow(name))?;
        self.put_meta(name, &next)?;
        Ok(id)
    }

    /// Creates every table and the meta records of a new database, unless it has a config
    /// already. Returns whether it initialised.
    fn initialise(&mut self, config: &Config) -> Result<bool> {
        let meta = self.txn.open_table(META).map_err(|e| self.db(e))?;
        let exists = meta.get(META_CONFIG).map_err(|e| self.db(e))?.is_some();
        drop(meta);
        if exists {
            return Ok(false);
        }
        // Create every table so readers never meet a missing one.
        self.txn.open_table(BALANCES).map_err(|e| self.db(e))?;
        self.txn.open_table(LEDGER).map_err(|e| self.db(e))?;
        self.txn.open_table(PAID).map_err(|e| self.db(e))?;
        self.txn.open_table(PENDING).map_err(|e| self.db(e))?;
        self.txn.open_table(JOBS).map_err(|e| self.db(e))?;
        self.txn.open_table(INPUTS).map_err(|e| self.db(e))?;
        self.txn.open_table(ASSIGNMENTS).map_err(|e| self.db(e))?;
        self.txn
            .open_table(JOB_ASSIGNMENTS)
            .map_err(|e| self.db(e))?;
        self.txn.open_table(HELD).map_err(|e| self.db(e))?;
        self.txn
            .open_table(CLIENT_RESULTS)
            .map_err(|e| self.db(e))?;
        self.txn.open_table(RIGS).map_err(|e| self.db(e))?;
        self.txn.open_table(RATINGS).map_err(|e| self.db(e))?;
        self.put_meta(META_FORMAT, &FORMAT_VERSION)?;
        self.put_meta(META_CONFIG, config)?;
        self.config = config.clone();
        self.put_meta(META_HEAD, &Head::genesis())?;
        self.put_meta(META_NEXT_JOB, &1u64)?;
        self.put_meta(META_NEXT_ASSIGNMENT, &1u64)?;
        Ok(true)
    }

    /// Reserves `n` assignment numbers at once from the durable counter: the caller hands
    /// them out in order from memory and, once this commits, no number in the block is ever
    /// handed out again, across restarts too (one durable write per block, not per
    /// assignment).
    pub fn reserve_assignment_ids(&mut self, n: u64) -> Result<std::ops::Range<u64>> {
        let first: u64 = self.meta(META_NEXT_ASSIGNMENT)?.unwrap_or(1);
        let end = first
            .checked_add(n)
            .ok_or(StoreError::Overflow(META_NEXT_ASSIGNMENT))?;
        self.put_meta(META_NEXT_ASSIGNMENT, &end)?;
        Ok(first..end)
    }

    /// Takes the next job number from the durable counter (never repeats, across restarts
    /// too, once this transaction commits).
    pub fn allocate_job_id(&mut self) -> Result<JobId> {
        self.next_id(META_NEXT_JOB).map(JobId)
    }

    pub(crate) fn put_u64<T: Serialize>(
        &mut self,
        def: redb::TableDefinition<u64, &[u8]>,
        name: &'static str,
        key: u64,
        value: &T,
    ) -> Result<()> {
        let bytes = codec::encode(name, value).map_err(|source| StoreError::Corrupt {
            table: name,
            key: key.to_string(),
            source,
        })?;
        let mut t = self.txn.open_table(def).map_err(|e| self.db(e))?;
        t.insert(key, bytes.as_slice()).map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Stores a job record. Its money fields (`escrowed`, `paid`) are maintained by the ledger
    /// operations; callers change state, progress and result.
    pub fn put_job(&mut self, job: &JobRecord) -> Result<()> {
        self.put_u64(JOBS, "jobs", job.id.0, job)
    }

    /// Stores an assignment record.
    pub fn put_assignment(&mut self, a: &AssignmentRecord) -> Result<()> {
        self.put_u64(ASSIGNMENTS, "assignments", a.id.0, a)?;
        let mut t = self
            .txn
            .open_table(JOB_ASSIGNMENTS)
            .map_err(|e| self.db(e))?;
        t.insert(job_assignment_key(a.job, a.id).as_slice(), 0u8)
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// A job that must exist.
    pub fn job_required(&self, id: JobId) -> Result<JobRecord> {
        self.job(id)?.ok_or(StoreError::UnknownJob(id.0))
    }

    /// An assignment that must exist.
    pub fn assignment_required(&self, id: AssignmentId) -> Result<AssignmentRecord> {
        self.assignment(id)?
            .ok_or(StoreError::UnknownAssignment(id.0))
    }

    /// Holds a verified result's tally bytes until its job is merged.
    pub fn put_held(&mut self, id: AssignmentId, tally: &[u8]) -> Result<()> {
        let mut t = self.txn.open_table(HELD).map_err(|e| self.db(e))?;
        t.insert(id.0, tally).map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Drops a held result (discarded work, or merged and no longer needed).
    pub fn remove_held(&mut self, id: AssignmentId) -> Result<bool> {
        let mut t = self.txn.open_table(HELD).map_err(|e| self.db(e))?;
        let removed = t.remove(id.0).map_err(|e| self.db(e))?.is_some();
        Ok(removed)
    }

    /// Stores a job's merged tally bytes.
    pub fn put_client_result(&mut self, id: JobId, merged: &[u8]) -> Result<()> {
        let mut t = self
            .txn
            .open_table(CLIENT_RESULTS)
            .map_err(|e| self.db(e))?;
        t.insert(id.0, merged).map_err(|e| self.db(e))?;
        Ok(())
    }
}
