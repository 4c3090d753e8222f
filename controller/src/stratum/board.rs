//! The hand-off between the Stratum client and the devices: the current [`Work`], one
//! cancel flag per device slot (set the moment a new job arrives, so scanners stop within
//! their polling interval), found shares travelling back, and per-pool counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::job::{JobEconomics, Work};
use crate::sync::lock;

/// A share a device found, on its way to the pool session.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundShare {
    /// Pool index of the work.
    pub pool: usize,
    /// Session of the work.
    pub session: u64,
    /// Job id.
    pub job_id: String,
    /// extranonce2 used.
    pub extranonce2: Vec<u8>,
    /// ntime used.
    pub ntime: u32,
    /// The winning nonce.
    pub nonce: u32,
    /// BIP 310 bits, when rolling.
    pub version_bits: Option<u32>,
    /// Share difficulty the work was issued at.
    pub difficulty: f64,
    /// The board slot (device) that found it.
    pub slot: usize,
}

/// The current job, shared by all device slots.
pub struct WorkBoard {
    current: Mutex<Option<Arc<Work>>>,
    cancel: Vec<AtomicBool>,
    working: Vec<AtomicU64>,
    generation: AtomicU64,
    changed: Condvar,
    gate: Mutex<()>,
}

impl WorkBoard {
    /// A board for `slots` devices (threads); each slot owns a disjoint extranonce2 range.
    pub fn new(slots: usize) -> Arc<WorkBoard> {
        Arc::new(WorkBoard {
            current: Mutex::new(None),
            cancel: (0..slots.max(1)).map(|_| AtomicBool::new(false)).collect(),
            working: (0..slots.max(1)).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            changed: Condvar::new(),
            gate: Mutex::new(()),
        })
    }

    /// Number of device slots.
    pub fn slots(&self) -> usize {
        self.cancel.len()
    }

    /// Tells slot `slot` to drop the unit it scans (its device has other work now).
    pub fn interrupt(&self, slot: usize) {
        if let Some(c) = self.cancel.get(slot) {
            c.store(true, Ordering::SeqCst);
        }
    }

    fn bump(&self, work: Option<Arc<Work>>) {
        *lock(&self.current) = work;
        self.generation.fetch_add(1, Ordering::SeqCst);
        for c in &self.cancel {
            c.store(true, Ordering::SeqCst);
        }
        let _g = lock(&self.gate);
        self.changed.notify_all();
    }

    /// Makes `work` current and tells every device to drop what it is scanning.
    pub fn publish(&self, work: Arc<Work>) {
        self.bump(Some(work));
    }

    /// No work (pool lost): devices idle until the next publish.
    pub fn withdraw(&self) {
        self.bump(None);
    }

    /// The current work.
    pub fn current(&self) -> Option<Arc<Work>> {
        lock(&self.current).clone()
    }

    /// Counts publishes and withdrawals.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cancel flag of `slot` (a scanner polls it).
    pub fn cancel_flag(&self, slot: usize) -> Option<&AtomicBool> {
        self.cancel.get(slot)
    }

    /// Records that `slot` now works on what the board held at `generation`.
    pub fn mark_working(&self, slot: usize, generation: u64) {
        if let Some(w) = self.working.get(slot) {
            w.store(generation, Ordering::SeqCst);
        }
    }

    /// The board generation `slot` last started working on (how fresh its work is).
    pub fn slot_generation(&self, slot: usize) -> Option<u64> {
        self.working.get(slot).map(|w| w.load(Ordering::SeqCst))
    }

    /// Blocks until the generation moves past `seen` or `timeout` passes.
    pub fn wait_change(&self, seen: u64, timeout: Duration) {
        let g = lock(&self.gate);
        if self.generation() != seen {
            return;
        }
        let _ = self.changed.wait_timeout(g, timeout);
    }
}

/// Counters of one pool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolCounters {
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected (not counting stale).
    pub rejected: u64,
    /// Shares for jobs that were gone: dropped before submitting, or refused as stale.
    pub stale: u64,
    /// Sum of the difficulties of accepted shares.
    pub accepted_difficulty: f64,
    /// Lines from the pool that could not be understood.
    pub malformed: u64,
    /// Sessions opened (connections that completed TCP/TLS).
    pub connections: u64,
    /// Jobs received.
    pub jobs: u64,
    /// The last reason the pool was left.
    pub last_error: Option<String>,
    /// When the session now open was connected (None: no session).
    pub connected_at: Option<Instant>,
    /// When the pool last accepted a share.
    pub last_accepted: Option<Instant>,
}

/// Share counters of one device slot.
#[derive(Debug, Default)]
struct SlotCounters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    hw_errors: AtomicU64,
}

/// Counters of the whole engine.
pub struct MiningStats {
    pools: Vec<Mutex<PoolCounters>>,
    slots: Vec<SlotCounters>,
    started: Instant,
    hashes: AtomicU64,
    false_positives: AtomicU64,
    scan_errors: AtomicU64,
    active: AtomicUsize,
    economics: Mutex<Option<JobEconomics>>,
}

impl MiningStats {
    /// Counters for `pools` pools.
    pub fn new(pools: usize) -> Arc<MiningStats> {
        MiningStats::with_slots(pools, 0)
    }

    /// Counters for `pools` pools and `slots` device slots.
    pub fn with_slots(pools: usize, slots: usize) -> Arc<MiningStats> {
        Arc::new(MiningStats {
            pools: (0..pools)
                .map(|_| Mutex::new(PoolCounters::default()))
                .collect(),
            slots: (0..slots).map(|_| SlotCounters::default()).collect(),
            started: Instant::now(),
            hashes: AtomicU64::new(0),
            false_positives: AtomicU64::new(0),
            scan_errors: AtomicU64::new(0),
            active: AtomicUsize::new(usize::MAX),
            economics: Mutex::new(None),
        })
    }

    /// Applies `f` to pool `i`'s counters (ignored for an unknown index).
    pub fn update(&self, i: usize, f: impl FnOnce(&mut PoolCounters)) {
        if let Some(p) = self.pools.get(i) {
            f(&mut lock(p));
        }
    }

    /// A copy of pool `i`'s counters.
    pub fn pool(&self, i: usize) -> PoolCounters {
        self.pools
            .get(i)
            .map(|p| lock(p).clone())
            .unwrap_or_default()
    }

    /// Number of pools.
    pub fn pool_count(&self) -> usize {
        self.pools.len()
    }

    /// Counts the pool's verdict on a share slot `slot` found.
    pub fn slot_verdict(&self, slot: usize, accepted: bool) {
        if let Some(c) = self.slots.get(slot) {
            let n = if accepted { &c.accepted } else { &c.rejected };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a nonce slot `slot`'s device reported that misses the target.
    pub fn slot_hw_error(&self, slot: usize) {
        if let Some(c) = self.slots.get(slot) {
            c.hw_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `other`'s per-slot counts to this one's (a pool session restarted on a new list).
    pub fn absorb_slots(&self, other: &MiningStats) {
        for (mine, theirs) in self.slots.iter().zip(&other.slots) {
            for (a, b) in [
                (&mine.accepted, &theirs.accepted),
                (&mine.rejected, &theirs.rejected),
                (&mine.hw_errors, &theirs.hw_errors),
            ] {
                a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// (accepted, rejected, hardware errors) of slot `slot`.
    pub fn slot_counts(&self, slot: usize) -> (u64, u64, u64) {
        self.slots.get(slot).map_or((0, 0, 0), |c| {
            (
                c.accepted.load(Ordering::Relaxed),
                c.rejected.load(Ordering::Relaxed),
                c.hw_errors.load(Ordering::Relaxed),
            )
        })
    }

    /// Adds hashes done by a device.
    pub fn add_hashes(&self, n: u64) {
        self.hashes.fetch_add(n, Ordering::Relaxed);
    }

    /// Hashes done so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Counts a nonce a scanner reported that does not meet the target on re-check.
    pub fn add_false_positive(&self) {
        self.false_positives.fetch_add(1, Ordering::Relaxed);
    }

    /// Nonces reported by scanners that failed the re-check (should stay 0).
    pub fn false_positives(&self) -> u64 {
        self.false_positives.load(Ordering::Relaxed)
    }

    /// Counts a scan that failed (the scanner could not run); returns the count so far.
    pub fn add_scan_error(&self) -> u64 {
        self.scan_errors.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Scans that failed (nothing hashed; the thread backed off).
    pub fn scan_errors(&self) -> u64 {
        self.scan_errors.load(Ordering::Relaxed)
    }

    /// Records the pool now in use (`usize::MAX`: none).
    pub fn set_active(&self, i: usize) {
        self.active.store(i, Ordering::Relaxed);
    }

    /// The pool now in use.
    pub fn active(&self) -> Option<usize> {
        let a = self.active.load(Ordering::Relaxed);
        (a != usize::MAX).then_some(a)
    }

    /// Records the economics of the job now being mined.
    pub fn set_economics(&self, e: Option<JobEconomics>) {
        *lock(&self.economics) = e;
    }

    /// Coinbase value, network difficulty and satoshi per hash of the current job: what the
    /// rig's profit switching compares with paid transport work.
    pub fn economics(&self) -> Option<JobEconomics> {
        *lock(&self.economics)
    }

    /// Time since the engine started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Hashes per second measured on the devices.
    pub fn measured_hashrate(&self) -> f64 {
        let s = self.elapsed().as_secs_f64();
        if s > 0.0 {
            self.hashes() as f64 / s
        } else {
            0.0
        }
    }

    /// Hashes per second estimated from accepted shares: sum of D * 2^32 over time.
    pub fn estimated_hashrate(&self) -> f64 {
        let s = self.elapsed().as_secs_f64();
        let d: f64 = (0..self.pools.len())
            .map(|i| self.pool(i).accepted_difficulty)
            .sum();
        if s > 0.0 {
            d * 4_294_967_296.0 / s
        } else {
            0.0
        }
    }
}
