//! The manager's one use of the C library: giving freed heap memory back to the OS.
//!
//! glibc's malloc keeps what a program frees in its arenas (one per thread that allocated, up
//! to eight per core) and returns to the OS only the free memory at the top of each heap. A
//! node whose jobs and rigs come and go frees most of what they took, yet its resident memory
//! kept growing: `compushare bench manager-memory --jobs 300 --rigs 0` measured the live heap
//! (heaptrack) at a 3.75 MB peak while the resident memory grew from 15.0 to 21.5 MB; with one
//! arena (`MALLOC_ARENA_MAX=1`) it grew to 14.8 MB from 13.3. `malloc_trim` releases the free
//! pages of every arena, wherever they are in it.

#![allow(unsafe_code)]

/// Returns freed heap memory to the OS (glibc); elsewhere does nothing. Returns whether any
/// memory was released. Walks every arena under its lock: call it off the market's lock, after
/// memory was let go (jobs finished, rigs gone), not on every request.
pub fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim takes no pointer and touches only the allocator's free lists;
        // glibc locks each arena while it trims it, so it is safe from any thread at any time.
        unsafe { malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
