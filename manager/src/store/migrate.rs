//! Upgrades of an older database layout to this build's, run once when a store is opened.
//!
//! Each step rewrites what changed in one write transaction together with the new format
//! number, so a crash during an upgrade leaves the old database untouched and the next open
//! tries again. Formats older than the oldest step here are refused (see
//! [`crate::store::StoreError::Format`]).
//!
//! - 2 -> 3: job records gain the fee and check-allowance rates they were accepted at. A
//!   format-2 job was escrowed with the stored config's fee and the market's default
//!   allowance, and settled with whatever the config said at the time; the upgrade records
//!   the rates that sized its escrow, so its settlement is what it was accepted under.
//! - 3 -> 4: the config gains `max_job_bytes` (the default, [`DEFAULT_MAX_JOB_BYTES`]). Job
//!   inputs became job bundles; a stored input is MCX JSON, which is its own bundle, so none
//!   is rewritten (a running job whose JSON names a volume file no longer parses: it was
//!   accepted by a build that read the node's own disk, and is not resumed).
//! - 4 -> 5: the config gains `credit_msat` (1: what every rig was told before it was a
//!   setting).

use compushare_protocol::types::{Amount, Digest, JobId, Mode, PublicKey};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::config::{Config, DEFAULT_MAX_JOB_BYTES};
use crate::costing::DEFAULT_CHECK_ALLOWANCE_PERMILLE;
use crate::records::{JobRecord, JobState};
use crate::store::{tables::JOBS, Result, StoreError, WriteTx, META_CONFIG};

/// The config as formats 2 and 3 stored it (field for field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ConfigV3 {
    promote_after: u64,
    fee_bp: u32,
    price_per_unit: Amount,
    duplicate_rate_ppm: u32,
    sample_k: u32,
    assignment_target_s: u32,
    deadline_slack_percent: u32,
    deadline_min_s: u32,
    spendable_after: u64,
    calibration_photons: u64,
    calibration_max_ms: u64,
}

impl ConfigV3 {
    fn upgrade(self) -> Config {
        Config {
            promote_after: self.promote_after,
            fee_bp: self.fee_bp,
            price_per_unit: self.price_per_unit,
            duplicate_rate_ppm: self.duplicate_rate_ppm,
            sample_k: self.sample_k,
            assignment_target_s: self.assignment_target_s,
            deadline_slack_percent: self.deadline_slack_percent,
            deadline_min_s: self.deadline_min_s,
            spendable_after: self.spendable_after,
            calibration_photons: self.calibration_photons,
            calibration_max_ms: self.calibration_max_ms,
            max_job_bytes: DEFAULT_MAX_JOB_BYTES,
            credit_msat: 1,
        }
    }
}

/// The config as format 4 stored it (field for field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ConfigV4 {
    v3: ConfigV3,
    max_job_bytes: u64,
}

impl ConfigV4 {
    fn upgrade(self) -> Config {
        Config {
            max_job_bytes: self.max_job_bytes,
            ..self.v3.upgrade()
        }
    }
}

/// The stored config of a database of format `from`, in this build's shape.
pub(crate) fn stored_config(tx: &WriteTx, from: u32) -> Result<Option<Config>> {
    if from <= 3 {
        return Ok(tx.meta::<ConfigV3>(META_CONFIG)?.map(ConfigV3::upgrade));
    }
    if from == 4 {
        return Ok(tx.meta::<ConfigV4>(META_CONFIG)?.map(ConfigV4::upgrade));
    }
    tx.meta::<Config>(META_CONFIG)
}

/// The oldest format this build upgrades.
pub const OLDEST_UPGRADABLE: u32 = 2;

/// A job record as format 2 stored it (field for field; postcard has no field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct JobRecordV2 {
    id: JobId,
    client: PublicKey,
    input: Digest,
    input_len: u32,
    photons: u64,
    seed: u64,
    mode: Mode,
    max_price: Amount,
    cost_per_history_milli: u64,
    price_per_unit: Amount,
    escrowed: Amount,
    paid: Amount,
    photons_verified: u64,
    state: JobState,
    created_unix_s: u64,
    finished_unix_s: Option<u64>,
    result: Option<Digest>,
}

impl JobRecordV2 {
    fn upgrade(self, fee_bp: u64) -> JobRecord {
        JobRecord {
            id: self.id,
            client: self.client,
            input: self.input,
            input_len: self.input_len,
            photons: self.photons,
            seed: self.seed,
            mode: self.mode,
            max_price: self.max_price,
            cost_per_history_milli: self.cost_per_history_milli,
            price_per_unit: self.price_per_unit,
            escrowed: self.escrowed,
            paid: self.paid,
            photons_verified: self.photons_verified,
            state: self.state,
            created_unix_s: self.created_unix_s,
            finished_unix_s: self.finished_unix_s,
            result: self.result,
            fee_bp,
            check_allowance_permille: DEFAULT_CHECK_ALLOWANCE_PERMILLE,
        }
    }
}

/// Upgrades a database of format `from` to this build's, inside `tx`; returns the number of
/// records rewritten. The caller sets the new format number in the same transaction.
pub(crate) fn upgrade(tx: &mut WriteTx, from: u32) -> Result<usize> {
    let mut rewritten = 0;
    if from <= 2 {
        rewritten += jobs_v2_to_v3(tx)?;
    }
    if from <= 4 {
        // `tx.config` was read in the old layout (see `stored_config`); store it in this one.
        let config = tx.config().clone();
        tx.put_meta(META_CONFIG, &config)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

fn jobs_v2_to_v3(tx: &mut WriteTx) -> Result<usize> {
    let fee_bp = u64::from(tx.config().fee_bp);
    let mut upgraded = Vec::new();
    {
        let t = tx.txn.open_table(JOBS).map_err(|e| tx.db(e))?;
        for item in t.iter().map_err(|e| tx.db(e))? {
            let (k, v) = item.map_err(|e| tx.db(e))?;
            let old: JobRecordV2 =
                codec::decode("jobs (format 2)", v.value()).map_err(|source| {
                    StoreError::Corrupt {
                        table: "jobs",
                        key: k.value().to_string(),
                        source,
                    }
                })?;
            upgraded.push(old.upgrade(fee_bp));
        }
    }
    for job in &upgraded {
        tx.put_job(job)?;
    }
    Ok(upgraded.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, FORMAT_VERSION, META_FORMAT};
    use crate::Config;

    fn v2_job(id: u64) -> JobRecordV2 {
        JobRecordV2 {
            id: JobId(id),
            client: [7; 32],
            input: [1; 32],
            input_len: 10,
            photons: 1_000,
            seed: 5,
            mode: Mode::Fastest,
            max_price: Amount(9_000),
            cost_per_history_milli: 2_000,
            price_per_unit: Amount(1),
            escrowed: Amount(2_160),
            paid: Amount(600),
            photons_verified: 300,
            state: JobState::Running,
            created_unix_s: 1_700_000_000,
            finished_unix_s: None,
            result: None,
        }
    }

    /// A format-2 database: its jobs in the old shape and format 2 in the meta table.
    /// With `corrupt`, job 3's stored bytes do not decode.
    fn v2_database(path: &std::path::Path, config: &Config, corrupt: bool) {
        let (store, _) = Store::init(path, config).unwrap();
        store
            .write(|tx| -> Result<()> {
                let mut t = tx.txn.open_table(JOBS).map_err(|e| tx.db(e))?;
                for id in [1, 2] {
                    let bytes = codec::encode("jobs", &v2_job(id)).unwrap();
                    t.insert(id, bytes.as_slice()).map_err(|e| tx.db(e))?;
                }
                if corrupt {
                    t.insert(3u64, [0xffu8; 3].as_slice())
                        .map_err(|e| tx.db(e))?;
                }
                drop(t);
                tx.put_meta(META_CONFIG, &v3_config(config))?;
                tx.put_meta(META_FORMAT, &2u32)
            })
            .unwrap();
    }

    /// `config` in the layout formats 2 and 3 stored.
    fn v3_config(c: &Config) -> ConfigV3 {
        ConfigV3 {
            promote_after: c.promote_after,
            fee_bp: c.fee_bp,
            price_per_unit: c.price_per_unit,
            duplicate_rate_ppm: c.duplicate_rate_ppm,
            sample_k: c.sample_k,
            assignment_target_s: c.assignment_target_s,
            deadline_slack_percent: c.deadline_slack_percent,
            deadline_min_s: c.deadline_min_s,
            spendable_after: c.spendable_after,
            calibration_photons: c.calibration_photons,
            calibration_max_ms: c.calibration_max_ms,
        }
    }

    /// The format number stored in the database, read without opening it as a store.
    fn stored_format(path: &std::path::Path) -> u32 {
        let db = redb::Database::open(path).unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(crate::store::tables::META).unwrap();
        let v = t.get(META_FORMAT).unwrap().unwrap();
        codec::decode("format", v.value()).unwrap()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("compushare-migrate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("manager.redb")
    }

    #[test]
    fn format_2_jobs_keep_everything_and_gain_the_rates_they_were_accepted_at() {
        let path = temp("v2");
        let config = Config {
            fee_bp: 250,
            ..Config::default()
        };
        v2_database(&path, &config, false);
        let store = Store::open(&path).expect("a format-2 database opens (upgraded)");
        let read = store.read().unwrap();
        let jobs = read.jobs().unwrap();
        assert_eq!(jobs.len(), 2);
        for (job, id) in jobs.iter().zip([1, 2]) {
            assert_eq!(*job, v2_job(id).upgrade(250));
            assert_eq!(job.fee_bp, 250);
            assert_eq!(
                job.check_allowance_permille,
                DEFAULT_CHECK_ALLOWANCE_PERMILLE
            );
        }
        drop(read);
        assert_eq!(
            store.config().unwrap(),
            config,
            "the config keeps every setting"
        );
        drop(store);
        assert_eq!(stored_format(&path), FORMAT_VERSION);
        // Opening again finds this format and rewrites nothing.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.read().unwrap().jobs().unwrap().len(), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Issue 12: `credit_msat` joined the stored config (format 5). A format-4 database keeps
    /// every setting (`max_job_bytes` included) and gains the value rigs were told before.
    #[test]
    fn a_format_4_config_keeps_its_settings_and_gains_credit_msat() {
        let path = temp("v4");
        let config = Config {
            max_job_bytes: 3 << 20,
            deadline_min_s: 77,
            ..Config::default()
        };
        let (store, _) = Store::init(&path, &config).unwrap();
        store
            .write(|tx| -> Result<()> {
                let v4 = ConfigV4 {
                    v3: v3_config(&config),
                    max_job_bytes: config.max_job_bytes,
                };
                tx.put_meta(META_CONFIG, &v4)?;
                tx.put_meta(META_FORMAT, &4u32)
            })
            .unwrap();
        drop(store);
        let store = Store::open(&path).expect("a format-4 database opens (upgraded)");
        assert_eq!(store.config().unwrap(), config);
        assert_eq!(store.config().unwrap().credit_msat, 1);
        drop(store);
        assert_eq!(stored_format(&path), FORMAT_VERSION);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_corrupt_format_2_job_refuses_the_upgrade_and_leaves_the_database_as_it_was() {
        let path = temp("v2-corrupt");
        v2_database(&path, &Config::default(), true);
        let err = Store::open(&path).expect_err("a job that does not decode stops the upgrade");
        assert!(
            err.to_string().contains("jobs") && err.to_string().contains('3'),
            "names the table and key: {err}"
        );
        assert_eq!(stored_format(&path), 2, "nothing of the upgrade was kept");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
