//! Nonce scanning behind one interface (`Scanner`) that CPU paths implement today and the
//! CUDA backend will implement later: scan(work, nonce range, cancel flag) -> found nonces.
//!
//! The CPU scanner picks its instruction-set path at run time (`CpuPath::detect`), hashes in
//! chunks of `CANCEL_CHUNK` nonces and looks at the cancel flag between chunks, so a new job
//! (Stratum clean_jobs) takes over within a few milliseconds on every path. Every candidate
//! that survives a path's early reject is re-hashed in full with the reference code and
//! compared with the whole 256-bit target before it is reported, so all paths report exactly
//! the same nonces.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

use super::compress::sha256d;
use super::lanes::scan_portable;
use super::work::{Prepared, ScanWork};

/// Nonces hashed between two looks at the cancel flag on the vector paths: about 2-10 ms.
pub const CANCEL_CHUNK: u64 = 1 << 16;

/// The same for the portable path, which is several times slower.
const PORTABLE_CANCEL_CHUNK: u64 = 1 << 13;

/// One past the largest nonce.
const NONCE_END: u64 = 1 << 32;

/// Why a scan could not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The nonce range must lie within 0..=2^32 (nonces are 32-bit) and not run backwards.
    #[error("nonce range {start}..{end} is not within 0..4294967296")]
    NonceRange {
        /// First nonce asked for.
        start: u64,
        /// One past the last nonce asked for.
        end: u64,
    },
    /// The requested instruction-set path is not supported by this CPU.
    #[error("hashing path `{0}` is not supported by this CPU")]
    PathUnavailable(CpuPath),
    /// A GPU backend failed during the scan (driver error, lost device); the text says what.
    #[error("device failed during the scan: {0}")]
    Device(String),
}

/// What one scan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    /// Nonces hashed.
    pub hashes: u64,
    /// True when the scan stopped early because the cancel flag was set.
    pub cancelled: bool,
}

/// Anything that can search a nonce range of a header for hashes meeting a target.
pub trait Scanner: Send + Sync {
    /// Short name of the backend/path, for logs and benchmarks.
    fn name(&self) -> &'static str;

    /// Hashes every nonce in `nonces` (a sub-range of 0..2^32) for `work`, calling `found`
    /// with each nonce whose sha256d meets the target, in increasing order. Stops soon
    /// after `cancel` becomes true.
    fn scan(
        &self,
        work: &ScanWork,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> Result<ScanStats, ScanError>;
}

/// The CPU instruction-set paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CpuPath {
    /// AVX-512F/BW software SHA-256, 16 nonces per step.
    Avx512,
    /// SHA extensions, several nonces interleaved per step.
    ShaNi,
    /// AVX2 software SHA-256, 8 nonces per step.
    Avx2,
    /// Plain Rust, one nonce at a time; runs everywhere.
    Portable,
}

impl CpuPath {
    /// Every path, in the order `detect` prefers them. AVX-512 first: on the Xeons this runs
    /// on it is about twice the SHA-NI rate (the SHA unit there does one `sha256rnds2`
    /// every ~3 cycles whatever the interleave); SHA-NI before AVX2 for CPUs whose SHA unit
    /// is quicker (AMD Zen, Intel client cores without AVX-512).
    pub const ALL: [CpuPath; 4] = [
        CpuPath::Avx512,
        CpuPath::ShaNi,
        CpuPath::Avx2,
        CpuPath::Portable,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::ShaNi => "shani",
            CpuPath::Avx512 => "avx512",
            CpuPath::Avx2 => "avx2",
            CpuPath::Portable => "portable",
        }
    }

    /// Parses a name as given by [`CpuPath::name`].
    pub fn from_name(name: &str) -> Option<CpuPath> {
        CpuPath::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuPath::ShaNi => super::sys_shani::available(),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx512 => super::sys_avx512::available(),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx2 => super::sys_avx2::available(),
            #[cfg(not(target_arch = "x86_64"))]
            CpuPath::ShaNi | CpuPath::Avx512 | CpuPath::Avx2 => false,
            CpuPath::Portable => true,
        }
    }

    /// The fastest path this CPU can run.
    pub fn detect() -> CpuPath {
        CpuPath::ALL
            .into_iter()
            .find(|p| p.is_available())
            .unwrap_or(CpuPath::Portable)
    }

    /// Nonces per inner-loop step; the scanner hands each path whole multiples of it.
    fn lanes(self) -> u32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuPath::ShaNi => super::sys_shani::STREAMS as u32,
            #[cfg(not(target_arch = "x86_64"))]
            CpuPath::ShaNi => 1,
            CpuPath::Avx512 => 16,
            CpuPath::Avx2 => 8,
            CpuPath::Portable => 1,
        }
    }

    /// Runs `blocks` steps of `lanes()` nonces from `start`, reporting early-reject survivors.
    fn run(self, p: &Prepared, start: u32, blocks: u32, top: u32, cand: &mut dyn FnMut(u32)) {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuPath::ShaNi => super::sys_shani::scan(p, start, blocks, top, cand),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx512 => super::sys_avx512::scan(p, start, blocks, top, cand),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx2 => super::sys_avx2::scan(p, start, blocks, top, cand),
            #[cfg(not(target_arch = "x86_64"))]
            CpuPath::ShaNi | CpuPath::Avx512 | CpuPath::Avx2 => {}
            CpuPath::Portable => scan_portable(p, start, blocks, top, cand),
        }
    }
}

impl core::fmt::Display for CpuPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A CPU scanner bound to one instruction-set path (one thread; run one per thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuScanner {
    path: CpuPath,
}

impl CpuScanner {
    /// The fastest path this CPU supports.
    pub fn auto() -> CpuScanner {
        CpuScanner {
            path: CpuPath::detect(),
        }
    }

    /// A given path, if this CPU supports it.
    pub fn with_path(path: CpuPath) -> Result<CpuScanner, ScanError> {
        if path.is_available() {
            Ok(CpuScanner { path })
        } else {
            Err(ScanError::PathUnavailable(path))
        }
    }

    /// The path in use.
    pub fn path(&self) -> CpuPath {
        self.path
    }
}

impl Scanner for CpuScanner {
    fn name(&self) -> &'static str {
        self.path.name()
    }

    fn scan(
        &self,
        work: &ScanWork,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        found: &mut dyn FnMut(u32),
    ) -> Result<ScanStats, ScanError> {
        let Range { start, end } = nonces;
        if start > end || end > NONCE_END {
            return Err(ScanError::NonceRange { start, end });
        }
        let prepared = Prepared::new(work);
        let target = work.target();
        let top = target.top_word();
        let mut verify = |nonce: u32| {
            if target.is_met_by(&sha256d(&work.header_with_nonce(nonce))) {
                found(nonce);
            }
        };
        let lanes = u64::from(self.path.lanes());
        let chunk = match self.path {
            CpuPath::Portable => PORTABLE_CANCEL_CHUNK,
            _ => CANCEL_CHUNK,
        };
        let mut stats = ScanStats::default();
        let mut next = start;
        while next < end {
            if cancel.load(Ordering::Relaxed) {
                stats.cancelled = true;
                return Ok(stats);
            }
            let chunk_end = end.min(next.saturating_add(chunk));
            let count = chunk_end - next;
            let blocks = count / lanes;
            // Both fit in u32: next < 2^32 and blocks * lanes <= CANCEL_CHUNK.
            let first = next as u32;
            self.path
                .run(&prepared, first, blocks as u32, top, &mut verify);
            let tail = count - blocks * lanes;
            if tail > 0 {
                let tail_start = first.wrapping_add((blocks * lanes) as u32);
                scan_portable(&prepared, tail_start, tail as u32, top, &mut verify);
            }
            stats.hashes += count;
            next = chunk_end;
        }
        Ok(stats)
    }
}
