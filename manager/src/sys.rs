//! The manager's one use of the C library: glibc malloc's settings, and giving freed heap
//! memory back to the OS.
//!
//! glibc's malloc keeps what a program frees in its arenas (one per thread that allocated, up
//! to eight per core) and returns to the OS only what its thresholds allow. A node whose jobs
//! and rigs come and go frees most of what they took, yet its resident memory kept growing:
//! `compushare bench manager-memory --jobs 1000 --rigs 10000` held a live heap of about 2 MB
//! (heaptrack) from start to end while the resident memory grew by 7 MB, all of it anonymous
//! memory in the arenas (BENCHMARKS.md, "Manager memory after churn"). Three things held it:
//! - Free pages inside an arena's heap: [`trim_heap`] (`malloc_trim`) releases those, in every
//!   arena, after jobs or rigs left memory.
//! - The free top of each thread's arena, which `malloc_trim` does not release (glibc trims
//!   only the main arena's top), and which `free` releases only above the trim threshold.
//!   glibc raises that threshold by itself to twice the largest mapped block freed so far
//!   and never lowers it; that run freed blocks of 0.8 to 1.6 MB (heaptrack's size
//!   histogram: redb's buffers, the rigs table after a burst), and `malloc_info` at its end
//!   showed 4.5 MB of free arena tops kept below the raised threshold. [`tune_heap`] fixes
//!   both thresholds, which turns the raising off.
//! - Arenas themselves: each holds its own free chunks between live ones, and a thread made
//!   while another is still exiting gets a new arena (10 arenas for 8 threads at the end of
//!   that run, up to 16 on 2 cores). [`tune_heap`] caps them at one per core.

#![allow(unsafe_code)]

/// Allocations of this size or more get their own mapping, returned to the OS when freed
/// (glibc's default starting value, kept fixed by [`tune_heap`]).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// An arena's free top larger than this is returned to the OS when a free reaches it
/// (glibc's default starting value, kept fixed by [`tune_heap`]).
pub const TRIM_THRESHOLD: usize = 128 * 1024;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    /// `M_TRIM_THRESHOLD` of glibc's malloc.h.
    pub const M_TRIM_THRESHOLD: c_int = -1;
    /// `M_MMAP_THRESHOLD` of glibc's malloc.h.
    pub const M_MMAP_THRESHOLD: c_int = -3;
    /// `M_ARENA_MAX` of glibc's malloc.h.
    pub const M_ARENA_MAX: c_int = -8;

    /// glibc's `struct mallinfo2` (malloc.h, glibc 2.33 and later).
    #[repr(C)]
    pub struct Mallinfo2 {
        /// Bytes of the arenas' heaps (mapped blocks not included).
        pub arena: usize,
        pub ordblks: usize,
        pub smblks: usize,
        pub hblks: usize,
        pub hblkhd: usize,
        pub usmblks: usize,
        pub fsmblks: usize,
        pub uordblks: usize,
        pub fordblks: usize,
        pub keepcost: usize,
    }

    extern "C" {
        pub fn mallinfo2() -> Mallinfo2;
        pub fn malloc_trim(pad: usize) -> c_int;
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
    }
}

/// Why [`tune_heap`] did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// glibc refused a `mallopt` setting (its name in malloc.h), or its value does not fit
    /// one; the allocator keeps its own setting for it (self-raising thresholds, eight arenas
    /// per core).
    #[error("malloc refused {0}")]
    Refused(&'static str),
}

/// Fixes malloc's trim and mapping thresholds at [`TRIM_THRESHOLD`] and [`MMAP_THRESHOLD`]
/// and its arenas at `arenas` (at least 1; glibc; elsewhere there is nothing to set): the
/// free top of every arena above 128 KiB goes back to the OS when freed, however large the
/// blocks freed before were, and threads past `arenas` share arenas (under their locks)
/// rather than each keeping free memory of its own. Process-wide: call it once at the start
/// of a node's process (`compushare manager run`), not from a library user's process.
pub fn tune_heap(arenas: usize) -> Result<(), TuneError> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        for (param, name, value) in [
            (glibc::M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD", TRIM_THRESHOLD),
            (glibc::M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD", MMAP_THRESHOLD),
            (glibc::M_ARENA_MAX, "M_ARENA_MAX", arenas.max(1)),
        ] {
            let value =
                std::os::raw::c_int::try_from(value).map_err(|_| TuneError::Refused(name))?;
            // SAFETY: mallopt takes two integers and changes malloc's parameters under the
            // main arena's lock; any thread may call it at any time. It returns 1 on success.
            if unsafe { glibc::mallopt(param, value) } != 1 {
                return Err(TuneError::Refused(name));
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
    Ok(())
}

/// Returns freed heap memory to the OS (glibc); elsewhere does nothing. Returns whether any
/// memory was released. Walks every arena under its lock: call it off the market's lock, after
/// memory was let go (jobs finished, rigs gone), not on every request.
pub fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointer and touches only the allocator's free lists;
        // glibc locks each arena while it trims it, so it is safe from any thread at any time.
        unsafe { glibc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Bytes malloc holds in its arenas' heaps, every arena together, blocks with their own
/// mapping left out (glibc's `mallinfo2().arena`); `None` elsewhere. What the thresholds of
/// [`tune_heap`] act on; for tests and diagnostics.
pub fn arena_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes nothing and returns a plain struct by value; it reads each
        // arena under its lock.
        Some(unsafe { glibc::mallinfo2() }.arena)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}
