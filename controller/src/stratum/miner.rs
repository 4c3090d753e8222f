//! The miner driver: one OS thread per device slot, each scanning its own extranonce2 range
//! of the current work with a [`NonceScanner`], re-checking every nonce it reports against
//! the share target before sending it as a share, and counting hashes.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use compushare_kernels::sha256d;
use thiserror::Error;
use tokio::sync::mpsc;

use super::board::{FoundShare, MiningStats, WorkBoard};
use super::job::{with_nonce, Work, WorkUnit};
use super::target::{sha256d, ShareTarget};
use crate::warn;

/// Scans nonces of one header against a target. The kernels' SHA-256d scanner implements it.
pub trait NonceScanner: Send + Sync {
    /// Scans `nonces` of `header` (its nonce field is ignored), calling `found` for each
    /// nonce whose sha256d meets `target`; returns how many nonces were hashed. Stops early
    /// when `cancel` turns true.
    fn scan(
        &self,
        header: &[u8; 80],
        target: &ShareTarget,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> u64;

    /// A short name for logs.
    fn name(&self) -> String;
}

/// Hashes one nonce at a time with the `sha2` crate: the reference the kernels are checked
/// against, and a scanner for tiny work (tests of the driver at very low difficulty).
pub struct ReferenceScanner;

impl NonceScanner for ReferenceScanner {
    fn scan(
        &self,
        header: &[u8; 80],
        target: &ShareTarget,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> u64 {
        let mut h = *header;
        let mut done = 0;
        for n in nonces {
            if done % 4096 == 0 && cancel.load(Ordering::Relaxed) {
                break;
            }
            let Ok(n) = u32::try_from(n) else { break };
            h[76..80].copy_from_slice(&n.to_le_bytes());
            if target.is_met_by(&sha256d(&h)) {
                found(n);
            }
            done += 1;
        }
        done
    }

    fn name(&self) -> String {
        "reference".into()
    }
}

/// The kernels' SHA-256d scanner (run-time chosen CPU path; the CUDA backend later).
pub struct KernelScanner<S>(pub S);

impl KernelScanner<sha256d::CpuScanner> {
    /// The fastest CPU path this machine supports.
    pub fn cpu() -> Self {
        KernelScanner(sha256d::CpuScanner::auto())
    }
}

impl<S: sha256d::Scanner> NonceScanner for KernelScanner<S> {
    fn scan(
        &self,
        header: &[u8; 80],
        target: &ShareTarget,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> u64 {
        // The exact share target is handed over as bytes so both sides agree to the bit.
        let work = sha256d::ScanWork::new(
            *header,
            sha256d::Target::from_be_bytes(target.to_be_bytes()),
        );
        match self.0.scan(&work, nonces, cancel, found) {
            Ok(stats) => stats.hashes,
            Err(e) => {
                warn!("scanner {}: {e}", self.0.name());
                0
            }
        }
    }

    fn name(&self) -> String {
        self.0.name().to_owned()
    }
}

/// Miner settings.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Worker threads (device slots).
    pub threads: usize,
    /// Nonces per work unit = 2^chunk_bits; rolled version bits change between units.
    pub chunk_bits: u32,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            chunk_bits: 26,
        }
    }
}

/// Why the miner could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MinerError {
    /// Zero threads asked for.
    #[error("at least one mining thread is needed")]
    NoThreads,
    /// More threads than the board has slots.
    #[error("{threads} threads but the work board has {slots} slots")]
    Slots {
        /// Threads asked for.
        threads: usize,
        /// Board slots.
        slots: usize,
    },
    /// The OS refused a thread.
    #[error("cannot start mining thread: {0}")]
    Spawn(std::io::Error),
}

/// Running worker threads.
pub struct Miner {
    stop: Arc<AtomicBool>,
    board: Arc<WorkBoard>,
    threads: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Starts `cfg.threads` threads on slots 0.. of `board`.
    pub fn start(
        cfg: &MinerConfig,
        board: Arc<WorkBoard>,
        stats: Arc<MiningStats>,
        scanner: Arc<dyn NonceScanner>,
        shares: mpsc::Sender<FoundShare>,
    ) -> Result<Miner, MinerError> {
        if cfg.threads == 0 {
            return Err(MinerError::NoThreads);
        }
        if cfg.threads > board.slots() {
            return Err(MinerError::Slots {
                threads: cfg.threads,
                slots: board.slots(),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(cfg.threads);
        for slot in 0..cfg.threads {
            let worker = Worker {
                slot,
                chunk_bits: cfg.chunk_bits.clamp(1, 32),
                board: board.clone(),
                stats: stats.clone(),
                scanner: scanner.clone(),
                shares: shares.clone(),
                stop: stop.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("miner-{slot}"))
                .spawn(move || worker.run())
                .map_err(MinerError::Spawn)?;
            threads.push(h);
        }
        Ok(Miner {
            stop,
            board,
            threads,
        })
    }

    /// Stops the threads and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake idle threads and cancel scans in progress.
        self.board.withdraw();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Worker {
    slot: usize,
    chunk_bits: u32,
    board: Arc<WorkBoard>,
    stats: Arc<MiningStats>,
    scanner: Arc<dyn NonceScanner>,
    shares: mpsc::Sender<FoundShare>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn submit(&self, work: &Work, unit: &WorkUnit, nonce: u32) {
        // Never trust a scanner with a pool's patience: re-check before submitting.
        let hash = sha256d(&with_nonce(&unit.header, nonce));
        if !work.target.is_met_by(&hash) {
            self.stats.add_false_positive();
            warn!(
                "scanner {} reported nonce {nonce:08x} that misses the target",
                self.scanner.name()
            );
            return;
        }
        let share = FoundShare {
            pool: work.pool,
            session: work.session,
            job_id: work.notify.job_id.clone(),
            extranonce2: unit.extranonce2.clone(),
            ntime: unit.ntime,
            nonce,
            version_bits: unit.version_bits,
            difficulty: work.difficulty,
        };
        match self.shares.try_send(share) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!("share queue full: share dropped");
                self.stats.update(work.pool, |c| c.stale += 1);
            }
            // The engine is shutting down: nobody will submit it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn run(self) {
        let Some(cancel) = self.board.cancel_flag(self.slot) else {
            return;
        };
        let mut current: Option<Arc<Work>> = None;
        let mut index: u64 = 0;
        while !self.stop.load(Ordering::SeqCst) {
            // Reset before reading so a publish in between is seen as a cancel, not lost.
            cancel.store(false, Ordering::SeqCst);
            let generation = self.board.generation();
            let Some(work) = self.board.current() else {
                current = None;
                self.board
                    .wait_change(generation, Duration::from_millis(100));
                continue;
            };
            let same = current
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &work) || c.same_space(&work));
            if !same {
                index = 0;
            }
            current = Some(work.clone());
            let range = work.slot_range(self.slot, self.board.slots());
            let Some(unit) = work.unit(&range, index, self.chunk_bits) else {
                // This slot's space is used up (or empty): wait for the next job.
                self.board
                    .wait_change(generation, Duration::from_millis(100));
                continue;
            };
            index += 1;
            self.board.mark_working(self.slot, generation);
            // Shares leave from inside the scan: a unit can take seconds, and a share held
            // until its end may be stale by then.
            let mut on_found = |nonce: u32| self.submit(&work, &unit, nonce);
            let hashed = self.scanner.scan(
                &unit.header,
                &work.target,
                unit.nonces.clone(),
                cancel,
                &mut on_found,
            );
            self.stats.add_hashes(hashed);
        }
    }
}
