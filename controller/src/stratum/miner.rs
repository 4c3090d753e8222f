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
    /// when `cancel` turns true. An error means the scanner could not run (nothing hashed):
    /// the driver counts it and backs off, never reads it as zero hashes.
    fn scan(
        &self,
        header: &[u8; 80],
        target: &ShareTarget,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> Result<u64, sha256d::ScanError>;

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
    ) -> Result<u64, sha256d::ScanError> {
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
        Ok(done)
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
    ) -> Result<u64, sha256d::ScanError> {
        // The exact share target is handed over as bytes so both sides agree to the bit.
        let work = sha256d::ScanWork::new(
            *header,
            sha256d::Target::from_be_bytes(target.to_be_bytes()),
        );
        self.0
            .scan(&work, nonces, cancel, found)
            .map(|stats| stats.hashes)
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

/// Where one device slot stands in the board's work: the work it scans and its position in
/// the slot's share of that work's header space. Shared by the stand-alone miner's threads
/// and the rig's device workers.
#[derive(Debug)]
pub struct SlotCursor {
    slot: usize,
    chunk_bits: u32,
    current: Option<Arc<Work>>,
    index: u64,
}

/// What a slot does next.
#[derive(Debug)]
pub enum Next {
    /// Scan this unit of this work.
    Unit(Arc<Work>, WorkUnit),
    /// No work (or this slot's share of it is used up): wait for the board to move past
    /// this generation.
    Wait(u64),
}

impl SlotCursor {
    /// A cursor for board slot `slot`, with units of 2^`chunk_bits` nonces.
    pub fn new(slot: usize, chunk_bits: u32) -> SlotCursor {
        SlotCursor {
            slot,
            chunk_bits: chunk_bits.clamp(1, 32),
            current: None,
            index: 0,
        }
    }

    /// The next unit to scan. Clears the slot's cancel flag first, so a publish from here on
    /// cancels the unit handed out.
    pub fn next(&mut self, board: &WorkBoard) -> Next {
        if let Some(cancel) = board.cancel_flag(self.slot) {
            // Reset before reading so a publish in between is seen as a cancel, not lost.
            cancel.store(false, Ordering::SeqCst);
        }
        let generation = board.generation();
        let Some(work) = board.current() else {
            self.current = None;
            return Next::Wait(generation);
        };
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &work) || c.same_space(&work));
        if !same {
            self.index = 0;
        }
        self.current = Some(work.clone());
        let range = work.slot_range(self.slot, board.slots());
        let Some(unit) = work.unit(&range, self.index, self.chunk_bits) else {
            return Next::Wait(generation);
        };
        self.index += 1;
        board.mark_working(self.slot, generation);
        Next::Unit(work, unit)
    }
}

/// Re-checks a nonce a scanner reported and queues it as a share of `work` found by board
/// slot `slot`; a nonce that misses the target counts as a false positive (hardware error).
/// Never trusts a scanner with a pool's patience.
pub fn submit_share(
    stats: &MiningStats,
    shares: &mpsc::Sender<FoundShare>,
    work: &Work,
    unit: &WorkUnit,
    nonce: u32,
    slot: usize,
    scanner: &str,
) {
    let hash = sha256d(&with_nonce(&unit.header, nonce));
    if !work.target.is_met_by(&hash) {
        stats.add_false_positive();
        stats.slot_hw_error(slot);
        warn!("scanner {scanner} reported nonce {nonce:08x} that misses the target");
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
        slot,
    };
    match shares.try_send(share) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            warn!("share queue full: share dropped");
            stats.update(work.pool, |c| c.stale += 1);
        }
        // The engine is shutting down: nobody will submit it.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// How long a mining thread waits after its scanner failed before it tries again.
const SCAN_ERROR_BACKOFF: Duration = Duration::from_millis(250);

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
    fn run(self) {
        let Some(cancel) = self.board.cancel_flag(self.slot) else {
            return;
        };
        let mut cursor = SlotCursor::new(self.slot, self.chunk_bits);
        let name = self.scanner.name();
        while !self.stop.load(Ordering::SeqCst) {
            let (work, unit) = match cursor.next(&self.board) {
                Next::Unit(w, u) => (w, u),
                Next::Wait(generation) => {
                    self.board
                        .wait_change(generation, Duration::from_millis(100));
                    continue;
                }
            };
            // Shares leave from inside the scan: a unit can take seconds, and a share held
            // until its end may be stale by then.
            let mut on_found = |nonce: u32| {
                submit_share(
                    &self.stats,
                    &self.shares,
                    &work,
                    &unit,
                    nonce,
                    self.slot,
                    &name,
                )
            };
            let hashed = self.scanner.scan(
                &unit.header,
                &work.target,
                unit.nonces.clone(),
                cancel,
                &mut on_found,
            );
            match hashed {
                Ok(n) => self.stats.add_hashes(n),
                Err(e) => {
                    // Counted (`MiningReport::scan_errors`) and logged; the thread
                    // waits before it tries again instead of spinning on a broken scanner.
                    let n = self.stats.add_scan_error();
                    warn!(
                        "miner {}: scanner {name}: {e} ({n} failed scans)",
                        self.slot
                    );
                    std::thread::sleep(SCAN_ERROR_BACKOFF);
                }
            }
        }
    }
}
