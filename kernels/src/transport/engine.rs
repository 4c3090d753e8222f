//! Running photon ranges on CPU threads into one integer tally.
//!
//! Threads take chunks of photon indices from an atomic counter; each photon uses its own RNG
//! stream `(seed, index)`, so which thread runs it changes nothing. Deposits go into one shared
//! array of `AtomicU64` (`gate x voxel`, 8 bytes per cell whatever the thread count) by integer
//! `fetch_add`, which commutes; the per-photon totals (escaped per face, specular, alive at t1,
//! roulette) are integers summed per thread and then across threads. Detected photons are
//! sorted by photon index at the end. The result is therefore bit-identical for any thread
//! count, chunking or split of the range.
//!
//! Each thread walks its photons on a [`CpuPath`]: one at a time (`Scalar`, the reference), or
//! 8 or 16 side by side in SIMD lanes (`lanes`, `sys_lanes`), chosen at run time from the CPU's
//! features (or `COMPUSHARE_TRANSPORT_PATH`). Every path gives the same bits; photons finish in
//! a different order on the lane paths, which the integer sums and the final sorts absorb.
//!
//! Memory: the shared tally (`tally_bytes`: cells x 8 bytes plus the 1-byte-per-voxel distance
//! map) once, plus a fixed 64 KiB deposit cache, at most 16 photons in flight and a few small
//! buffers per thread; records,
//! when asked for, take 64 bytes-ish per photon.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::error::TransportError;
use super::job::Job;
use super::lanes::{self, Emit};
use super::model::Model;
use super::photon::{run_photon, DepositSink, Extras, Fate, NoSink, PhotonRecord};
use super::tally::{DetectedPhoton, Tally};
use super::tally_ops::{tally_bytes, tally_cells};

/// Photons a thread takes at a time: large enough that the shared counter is not contended,
/// small enough that threads finish together.
const CHUNK: u64 = 256;

/// How often the progress callback is called at most.
const PROGRESS_PERIOD: Duration = Duration::from_millis(20);

/// A job prepared once (distance map, constants) and run many times.
#[derive(Debug, Clone)]
pub struct Engine<'a> {
    model: Model<'a>,
    path: CpuPath,
}

/// How the CPU walks photons. Every path gives the same bits (records, tallies, digests); they
/// differ only in speed. `Scalar` is the reference the others are tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPath {
    /// One photon at a time (`photon::run_photon`).
    Scalar,
    /// 8 photons in lanes, baseline instruction set (SSE2 on x86-64).
    Lanes,
    /// 8 photons in AVX2 lanes.
    Avx2,
    /// 16 photons in AVX-512 lanes.
    Avx512,
}

/// Environment variable that forces a path (`scalar`, `lanes`, `avx2`, `avx512`), e.g. to
/// count instructions under valgrind, which cannot run AVX-512; an unavailable or unknown
/// value falls back to the automatic choice.
pub const PATH_ENV: &str = "COMPUSHARE_TRANSPORT_PATH";

impl CpuPath {
    /// Every path, reference first.
    pub const ALL: [CpuPath; 4] = [
        CpuPath::Scalar,
        CpuPath::Lanes,
        CpuPath::Avx2,
        CpuPath::Avx512,
    ];

    /// Name as accepted by [`PATH_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Scalar => "scalar",
            CpuPath::Lanes => "lanes",
            CpuPath::Avx2 => "avx2",
            CpuPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            CpuPath::Scalar | CpuPath::Lanes => true,
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx2 => super::sys_lanes::avx2_available(),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx512 => super::sys_lanes::avx512_available(),
            #[cfg(not(target_arch = "x86_64"))]
            CpuPath::Avx2 | CpuPath::Avx512 => false,
        }
    }

    /// The fastest available path, unless [`PATH_ENV`] names an available one.
    pub fn auto() -> CpuPath {
        if let Ok(name) = std::env::var(PATH_ENV) {
            if let Some(p) = CpuPath::ALL
                .into_iter()
                .find(|p| p.name() == name && p.available())
            {
                return p;
            }
        }
        [CpuPath::Avx512, CpuPath::Avx2]
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(CpuPath::Lanes)
    }
}

/// log2 of the per-thread deposit cache size (entries of 16 bytes: 64 KiB per thread).
const CACHE_BITS: u32 = 12;

/// Deposits into the shared atomic array through a small per-thread direct-mapped cache: most
/// deposits land in few voxels near the source, and an uncontended `lock add` still costs tens
/// of cycles. Integer sums commute, so when a cached amount is flushed changes nothing.
struct AtomicSink<'t> {
    shared: &'t [AtomicU64],
    /// `(cell + 1, amount)`; cell 0 in the tag means empty.
    cache: Vec<(usize, u64)>,
    /// Evicted `(cell, amount)` pairs waiting for their atomic add.
    log: Vec<(usize, u64)>,
    /// Sum of the values read while warming cache lines (kept so the reads are not elided).
    warm: u64,
}

/// Evictions batched before their atomic adds. A `lock add` to a line not in cache stalls the
/// core for the whole miss; in a batch, plain loads bring all lines in first (their misses
/// overlap) and the adds then hit.
const LOG_LEN: usize = 256;

impl<'t> AtomicSink<'t> {
    fn new(shared: &'t [AtomicU64]) -> Self {
        AtomicSink {
            shared,
            cache: vec![(0, 0); 1 << CACHE_BITS],
            log: Vec::with_capacity(LOG_LEN),
            warm: 0,
        }
    }

    fn flush_one(shared: &[AtomicU64], tag: usize, amount: u64) {
        if tag != 0 && amount != 0 {
            if let Some(c) = shared.get(tag - 1) {
                c.fetch_add(amount, Ordering::Relaxed);
            }
        }
    }

    fn flush_log(&mut self) {
        for &(cell, _) in &self.log {
            if let Some(c) = self.shared.get(cell) {
                self.warm = self.warm.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        for &(cell, amount) in &self.log {
            if let Some(c) = self.shared.get(cell) {
                c.fetch_add(amount, Ordering::Relaxed);
            }
        }
        self.log.clear();
    }

    fn flush(&mut self) {
        for slot in self.cache.iter_mut() {
            Self::flush_one(self.shared, slot.0, slot.1);
            *slot = (0, 0);
        }
        self.flush_log();
    }
}

impl DepositSink for AtomicSink<'_> {
    #[inline(always)]
    fn add(&mut self, cell: usize, amount: u64) {
        let h = (cell as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_BITS);
        let tag = cell + 1;
        if let Some(slot) = self.cache.get_mut(h as usize) {
            if slot.0 == tag {
                slot.1 += amount;
            } else {
                if slot.0 != 0 && slot.1 != 0 {
                    self.log.push((slot.0 - 1, slot.1));
                }
                *slot = (tag, amount);
                if self.log.len() >= LOG_LEN {
                    self.flush_log();
                }
            }
        }
    }
}

/// A thread's share of the non-voxel totals.
#[derive(Default)]
struct Partial {
    tally: Tally,
    records: Vec<PhotonRecord>,
}

impl Partial {
    fn add(&mut self, r: &PhotonRecord) {
        let t = &mut self.tally;
        t.photons += 1;
        t.launched += r.launched;
        t.specular += r.specular;
        t.roulette_gained += r.roulette_gain;
        match r.fate {
            Fate::Escaped { face } | Fate::NeverEntered { face } => {
                if let Some(e) = t.escaped.get_mut(usize::from(face)) {
                    *e += r.exit_weight;
                }
            }
            Fate::AliveAtT1 | Fate::StepLimit => t.alive_at_t1 += r.exit_weight,
            Fate::RouletteKilled => t.roulette_killed += r.exit_weight,
            Fate::WeightExhausted => {}
        }
    }
}

impl<'a> Engine<'a> {
    /// Validates `job` and precomputes what every photon needs.
    pub fn new(job: &'a Job) -> Result<Self, TransportError> {
        Ok(Engine {
            model: Model::new(job)?,
            path: CpuPath::auto(),
        })
    }

    /// Like [`Engine::new`] on a chosen path (an unavailable one runs as [`CpuPath::Lanes`]).
    pub fn with_path(job: &'a Job, path: CpuPath) -> Result<Self, TransportError> {
        Ok(Engine {
            model: Model::new(job)?,
            path: if path.available() {
                path
            } else {
                CpuPath::Lanes
            },
        })
    }

    /// The path this engine runs.
    pub fn path(&self) -> CpuPath {
        self.path
    }

    /// The same job walked voxel by voxel (distance map disabled). Statistically equivalent to
    /// [`Engine::new`] but not bit-identical (the acceleration is part of the walk's
    /// definition); exists so tests can check that the acceleration does not change physics.
    pub fn new_voxel_stepping(job: &'a Job) -> Result<Self, TransportError> {
        let mut model = Model::new(job)?;
        model.dist.iter_mut().for_each(|d| *d = 1);
        Ok(Engine {
            model,
            path: CpuPath::auto(),
        })
    }

    /// Re-simulates photon `index` alone; equals its record from any range run.
    pub fn simulate_photon(&self, index: u64) -> PhotonRecord {
        let mut path = Vec::new();
        let mut extras = Extras {
            path: &mut path,
            detected: None,
        };
        run_photon(&self.model, index, &mut NoSink, &mut extras)
    }

    /// Simulates photon indices `photons` on `threads` threads.
    pub fn simulate(
        &self,
        photons: Range<u64>,
        threads: usize,
        progress: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<Tally, TransportError> {
        self.run(photons, threads, progress, false).map(|(t, _)| t)
    }

    /// Like [`Engine::simulate`], also returning every photon's record in index order (for
    /// the management node's Merkle tree of spot-checkable records).
    pub fn simulate_with_records(
        &self,
        photons: Range<u64>,
        threads: usize,
        progress: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<(Tally, Vec<PhotonRecord>), TransportError> {
        self.run(photons, threads, progress, true)
    }

    fn run(
        &self,
        photons: Range<u64>,
        threads: usize,
        progress: Option<&(dyn Fn(u64) + Sync)>,
        keep_records: bool,
    ) -> Result<(Tally, Vec<PhotonRecord>), TransportError> {
        if threads == 0 {
            return Err(TransportError::ZeroThreads);
        }
        let job = self.model.job;
        let bytes = tally_bytes(job);
        let cells = tally_cells(job)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or(TransportError::TallyTooLarge {
                bytes,
                reason: "size overflows",
            })?;
        let mut shared: Vec<AtomicU64> = Vec::new();
        shared
            .try_reserve_exact(cells)
            .map_err(|_| TransportError::TallyTooLarge {
                bytes,
                reason: "allocation failed",
            })?;
        shared.resize_with(cells, || AtomicU64::new(0));
        let count = photons.end.saturating_sub(photons.start);
        let mut records: Vec<PhotonRecord> = Vec::new();
        if keep_records {
            let n = usize::try_from(count).map_err(|_| TransportError::TallyTooLarge {
                bytes: count.saturating_mul(64),
                reason: "record list overflows",
            })?;
            records
                .try_reserve_exact(n)
                .map_err(|_| TransportError::TallyTooLarge {
                    bytes: count.saturating_mul(64),
                    reason: "record list allocation failed",
                })?;
        }
        let next = AtomicU64::new(photons.start);
        let done = AtomicU64::new(0);
        let finished = AtomicUsize::new(0);
        let end = photons.end;
        let model = &self.model;
        let shared_ref = &shared[..];
        let partials: Vec<Result<Partial, TransportError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut part = Partial::default();
                        let mut sink = AtomicSink::new(shared_ref);
                        let mut paths = vec![Vec::new(); 16];
                        let claim = |x: u64| (x < end).then(|| x.saturating_add(CHUNK));
                        let (mut at, mut stop) = (0u64, 0u64);
                        let mut next_index = || {
                            if at >= stop {
                                let start = next
                                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, claim)
                                    .ok()?;
                                (at, stop) = (start, start.saturating_add(CHUNK).min(end));
                            }
                            at += 1;
                            Some(at - 1)
                        };
                        let mut finished_here = 0u64;
                        let mut emit = |rec: PhotonRecord, det: Option<DetectedPhoton>| {
                            part.add(&rec);
                            if let Some(d) = det {
                                part.tally.detected.push(d);
                            }
                            if keep_records {
                                part.records.push(rec);
                            }
                            finished_here += 1;
                            if finished_here == CHUNK {
                                done.fetch_add(finished_here, Ordering::Relaxed);
                                finished_here = 0;
                            }
                        };
                        run_path(
                            self.path,
                            model,
                            &mut next_index,
                            &mut sink,
                            &mut paths,
                            &mut emit,
                        );
                        done.fetch_add(finished_here, Ordering::Relaxed);
                        sink.flush();
                        finished.fetch_add(1, Ordering::Release);
                        part
                    })
                })
                .collect();
            if let Some(report) = progress {
                while finished.load(Ordering::Acquire) < threads {
                    std::thread::sleep(PROGRESS_PERIOD);
                    report(done.load(Ordering::Relaxed));
                }
            }
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| TransportError::WorkerFailed))
                .collect()
        });
        let mut tally = Tally::default();
        let mut detected = Vec::new();
        for p in partials {
            let p = p?;
            let t = p.tally;
            tally.photons += t.photons;
            tally.launched += t.launched;
            tally.specular += t.specular;
            tally.alive_at_t1 += t.alive_at_t1;
            tally.roulette_gained += t.roulette_gained;
            tally.roulette_killed += t.roulette_killed;
            for (a, b) in tally.escaped.iter_mut().zip(t.escaped) {
                *a += b;
            }
            detected.extend(t.detected);
            records.extend(p.records);
        }
        detected.sort_by_key(|d| d.photon);
        tally.detected = detected;
        // In-place conversion: same size and alignment, so no second allocation.
        tally.deposit = shared.into_iter().map(AtomicU64::into_inner).collect();
        records.sort_unstable_by_key(|r| r.index);
        Ok((tally, records))
    }
}

/// Walks every index `next` yields on `path`, handing each record to `emit`.
fn run_path<S: DepositSink>(
    path: CpuPath,
    model: &Model,
    next: &mut dyn FnMut() -> Option<u64>,
    sink: &mut S,
    paths: &mut [Vec<f32>],
    emit: &mut Emit,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let done = match path {
            CpuPath::Avx512 => super::sys_lanes::try_avx512(model, next, sink, paths, emit),
            CpuPath::Avx2 => super::sys_lanes::try_avx2(model, next, sink, paths, emit),
            CpuPath::Scalar | CpuPath::Lanes => false,
        };
        if done {
            return;
        }
    }
    if path == CpuPath::Scalar {
        let mut path_scratch = Vec::new();
        while let Some(i) = next() {
            let mut extras = Extras {
                path: &mut path_scratch,
                detected: None,
            };
            let rec = run_photon(model, i, sink, &mut extras);
            emit(rec, extras.detected.take());
        }
    } else {
        lanes::run::<8, S>(model, next, sink, paths, emit);
    }
}

/// Simulates photon indices `photons` of `job` on `threads` threads (see [`Engine::simulate`]).
pub fn simulate(
    job: &Job,
    photons: Range<u64>,
    threads: usize,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<Tally, TransportError> {
    Engine::new(job)?.simulate(photons, threads, progress)
}

/// Simulates `photons` of `job` and returns the tally with every photon's record, in index
/// order.
pub fn simulate_with_records(
    job: &Job,
    photons: Range<u64>,
    threads: usize,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<(Tally, Vec<PhotonRecord>), TransportError> {
    Engine::new(job)?.simulate_with_records(photons, threads, progress)
}

/// Re-simulates photon `index` of `job` alone. Builds the distance map each call: for many
/// spot checks of one job, build an [`Engine`] once and call [`Engine::simulate_photon`].
pub fn simulate_photon(job: &Job, index: u64) -> Result<PhotonRecord, TransportError> {
    Ok(Engine::new(job)?.simulate_photon(index))
}
