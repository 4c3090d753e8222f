//! What the market must not lose in a crash: accepted jobs (input, terms) and every verified
//! result, as files under `DATA/market/`, each written to a temporary name, synced, then
//! renamed (a crash leaves the old file or the new one, never half of one).
//!
//! Layout: `jobs/<id>/input` (the client's bytes), `jobs/<id>/meta` (`key=value` lines),
//! `jobs/<id>/r-<start>-<count>-<assignment>` (rig key, payout key, payout u64 LE, then the
//! canonical tally), `jobs/<id>/done` (the merged canonical tally). Money is not here: it is
//! on the ledger, which refuses a second payment for an assignment, so a job finished again
//! after a restart never pays twice.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use compushare_protocol::hex;
use compushare_protocol::types::{AssignmentId, JobId, Mode, PhotonRange, PublicKey};

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what this module writes.
    #[error("{path}: corrupt ({what})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The terms of an accepted job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMeta {
    pub client: PublicKey,
    pub photons: u64,
    pub seed: u64,
    pub mode: Mode,
    pub cost_milli: u64,
    pub price_per_history: u64,
    pub fee_permille: u64,
}

/// A verified result as stored.
#[derive(Debug, Clone)]
pub struct StoredResult {
    pub assignment: AssignmentId,
    pub range: PhotonRange,
    pub rig: PublicKey,
    pub payout_to: PublicKey,
    pub payout: u64,
    pub tally: Vec<u8>,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub id: JobId,
    pub meta: JobMeta,
    pub input: Vec<u8>,
    pub results: Vec<StoredResult>,
    pub done: Option<Vec<u8>>,
}

/// The market's files.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        // The rename is durable once the directory is synced.
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Journal {
    /// Opens (creating) the journal under `dir`.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        let jobs = dir.join("jobs");
        fs::create_dir_all(&jobs).map_err(io(&jobs))?;
        Ok(Journal {
            dir: dir.to_owned(),
        })
    }

    fn job_dir(&self, job: JobId) -> PathBuf {
        self.dir.join("jobs").join(job.0.to_string())
    }

    /// Records an accepted job.
    pub fn save_job(&self, job: JobId, meta: &JobMeta, input: &[u8]) -> Result<(), JournalError> {
        let d = self.job_dir(job);
        fs::create_dir_all(&d).map_err(io(&d))?;
        write_atomic(&d.join("input"), input)?;
        let mode = match meta.mode {
            Mode::Cheapest => "cheapest",
            Mode::Fastest => "fastest",
        };
        let text = format!(
            "client={}\nphotons={}\nseed={}\nmode={mode}\ncost_milli={}\nprice_per_history={}\nfee_permille={}\n",
            hex::encode(&meta.client),
            meta.photons,
            meta.seed,
            meta.cost_milli,
            meta.price_per_history,
            meta.fee_permille
        );
        // `meta` last: a job directory without it was never accepted and is ignored.
        write_atomic(&d.join("meta"), text.as_bytes())
    }

    fn result_path(&self, job: JobId, r: &StoredResult) -> PathBuf {
        self.job_dir(job).join(format!(
            "r-{}-{}-{}",
            r.range.start, r.range.count, r.assignment.0
        ))
    }

    /// Records a verified result.
    pub fn save_result(&self, job: JobId, r: &StoredResult) -> Result<(), JournalError> {
        let mut bytes = Vec::with_capacity(72 + r.tally.len());
        bytes.extend_from_slice(&r.rig);
        bytes.extend_from_slice(&r.payout_to);
        bytes.extend_from_slice(&r.payout.to_le_bytes());
        bytes.extend_from_slice(&r.tally);
        write_atomic(&self.result_path(job, r), &bytes)
    }

    /// Forgets a result discarded after its rig was caught.
    pub fn drop_result(&self, job: JobId, assignment: AssignmentId, range: PhotonRange) {
        let r = StoredResult {
            assignment,
            range,
            rig: [0; 32],
            payout_to: [0; 32],
            payout: 0,
            tally: Vec::new(),
        };
        let _ = fs::remove_file(self.result_path(job, &r));
    }

    /// Records a finished job's merged result.
    pub fn save_done(&self, job: JobId, merged: &[u8]) -> Result<(), JournalError> {
        write_atomic(&self.job_dir(job).join("done"), merged)
    }

    /// Every accepted job.
    pub fn load(&self) -> Result<Vec<StoredJob>, JournalError> {
        let jobs = self.dir.join("jobs");
        let mut out = Vec::new();
        for e in fs::read_dir(&jobs).map_err(io(&jobs))? {
            let e = e.map_err(io(&jobs))?;
            let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let d = e.path();
            let meta_path = d.join("meta");
            let Ok(text) = fs::read_to_string(&meta_path) else {
                continue;
            };
            let meta = parse_meta(&text).ok_or(JournalError::Corrupt {
                path: meta_path.clone(),
                what: "meta fields",
            })?;
            let input_path = d.join("input");
            let input = fs::read(&input_path).map_err(io(&input_path))?;
            let done = fs::read(d.join("done")).ok();
            let mut results = Vec::new();
            for f in fs::read_dir(&d).map_err(io(&d))? {
                let f = f.map_err(io(&d))?;
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(rest) = name.strip_prefix("r-") else {
                    continue;
                };
                if rest.ends_with(".tmp") {
                    continue;
                }
                let nums: Vec<u64> = rest.split('-').filter_map(|x| x.parse().ok()).collect();
                let [start, count, assignment] = nums[..] else {
                    continue;
                };
                let p = f.path();
                let bytes = fs::read(&p).map_err(io(&p))?;
                if bytes.len() < 72 {
                    return Err(JournalError::Corrupt {
                        path: p,
                        what: "short result",
                    });
                }
                let mut rig = [0u8; 32];
                rig.copy_from_slice(&bytes[0..32]);
                let mut payout_to = [0u8; 32];
                payout_to.copy_from_slice(&bytes[32..64]);
                let mut pay = [0u8; 8];
                pay.copy_from_slice(&bytes[64..72]);
                results.push(StoredResult {
                    assignment: AssignmentId(assignment),
                    range: PhotonRange { start, count },
                    rig,
                    payout_to,
                    payout: u64::from_le_bytes(pay),
                    tally: bytes[72..].to_vec(),
                });
            }
            results.sort_by_key(|r| r.range.start);
            out.push(StoredJob {
                id: JobId(id),
                meta,
                input,
                results,
                done,
            });
        }
        out.sort_by_key(|j| j.id);
        Ok(out)
    }
}

fn parse_meta(text: &str) -> Option<JobMeta> {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    Some(JobMeta {
        client: hex::decode_array(get("client")?).ok()?,
        photons: num("photons")?,
        seed: num("seed")?,
        mode: match get("mode")? {
            "cheapest" => Mode::Cheapest,
            "fastest" => Mode::Fastest,
            _ => return None,
        },
        cost_milli: num("cost_milli")?,
        price_per_history: num("price_per_history")?,
        fee_permille: num("fee_permille")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_results_round_trip() {
        let dir = std::env::temp_dir().join(format!("cs-journal-{}", std::process::id()));
        let j = Journal::open(&dir).unwrap();
        let meta = JobMeta {
            client: [4; 32],
            photons: 100,
            seed: 7,
            mode: Mode::Fastest,
            cost_milli: 1234,
            price_per_history: 2,
            fee_permille: 50,
        };
        j.save_job(JobId(9), &meta, b"{}").unwrap();
        let r = StoredResult {
            assignment: AssignmentId(3),
            range: PhotonRange {
                start: 10,
                count: 20,
            },
            rig: [1; 32],
            payout_to: [2; 32],
            payout: 40,
            tally: vec![5, 6, 7],
        };
        j.save_result(JobId(9), &r).unwrap();
        let loaded = j.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].meta, meta);
        assert_eq!(loaded[0].input, b"{}");
        assert_eq!(loaded[0].results[0].tally, vec![5, 6, 7]);
        assert_eq!(loaded[0].results[0].payout_to, [2; 32]);
        j.drop_result(JobId(9), AssignmentId(3), r.range);
        assert!(j.load().unwrap()[0].results.is_empty());
        j.save_done(JobId(9), b"merged").unwrap();
        assert_eq!(j.load().unwrap()[0].done.as_deref(), Some(&b"merged"[..]));
        let _ = fs::remove_dir_all(&dir);
    }
}
