//! The node's malloc settings (`sys::tune_heap`): a thread's arena gives its free top back
//! to the OS even after a large block was freed. Untuned, glibc raises its trim threshold to
//! twice the largest mapped block freed so far, and a churning node kept megabytes of free
//! arena tops (BENCHMARKS.md, "Manager memory after churn").
//!
//! Alone in its binary: the figure read is the whole process's.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_thread_arena_gives_back_its_free_top_after_a_large_block_was_freed() {
    use compushare_manager::sys::{arena_bytes, tune_heap, TRIM_THRESHOLD};
    use std::hint::black_box;

    tune_heap(8).expect("malloc takes the thresholds");
    let (grown, after) = std::thread::spawn(|| {
        // A 4 MiB block has its own mapping; freeing it would raise an untuned threshold to
        // 8 MiB.
        drop(black_box(vec![1u8; 4 << 20]));
        // 2 MiB of small blocks in this thread's arena, then all freed: they merge into its
        // free top.
        let blocks: Vec<Vec<u8>> = (0..2048).map(|i| vec![i as u8; 1000]).collect();
        let grown = arena_bytes().expect("glibc");
        drop(black_box(blocks));
        (grown, arena_bytes().expect("glibc"))
    })
    .join()
    .expect("thread");
    let given_back = grown.saturating_sub(after);
    println!("arenas: {grown} B with the blocks, {after} B after they were freed");
    // All but the threshold and a little padding goes back.
    assert!(
        given_back + TRIM_THRESHOLD + (256 << 10) >= 2 << 20,
        "only {given_back} B of 2 MiB freed went back to the OS ({grown} -> {after} B)"
    );
}
