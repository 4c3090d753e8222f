//! Every CPU path must report exactly the nonces the reference finds by hashing each nonce
//! in full, on random headers and easy targets (so that many nonces pass, exercising the
//! early reject and the candidate re-check), on odd range boundaries and at the top of the
//! nonce space; and the scan API's range checks and cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_kernels::sha256d::{
    sha256, sha256d, CpuPath, CpuScanner, ScanError, ScanWork, Scanner, Target,
};
use sha2::{Digest, Sha256};

/// splitmix64: deterministic pseudo-random test inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        out
    }
}

/// A target whose top 32 bits are `top` and the rest random.
fn target_with_top(rng: &mut Rng, top: u32) -> Target {
    let mut be: [u8; 32] = rng.bytes();
    be[..4].copy_from_slice(&top.to_be_bytes());
    Target::from_be_bytes(be)
}

fn reference_scan(work: &ScanWork, start: u64, end: u64) -> Vec<u32> {
    (start..end)
        .map(|n| n as u32)
        .filter(|&n| {
            work.target()
                .is_met_by(&sha256d(&work.header_with_nonce(n)))
        })
        .collect()
}

fn available_paths() -> Vec<CpuPath> {
    CpuPath::ALL
        .into_iter()
        .filter(|p| p.is_available())
        .collect()
}

#[test]
fn reference_sha256_matches_sha2_crate() {
    let mut rng = Rng(7);
    for len in [0usize, 1, 55, 56, 63, 64, 65, 80, 119, 120, 128, 1000] {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let expect: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(sha256(&data), expect, "len {len}");
        let expect_d: [u8; 32] = Sha256::digest(Sha256::digest(&data)).into();
        assert_eq!(sha256d(&data), expect_d, "len {len}");
    }
}

#[test]
fn all_paths_agree_with_reference_on_easy_targets() {
    let mut rng = Rng(42);
    // Top words: 0 (realistic: early reject is "H7 == 0"), and easier ones where the
    // byte-swapped comparison and the full 256-bit re-check both matter.
    let tops = [
        0x0000_0000u32,
        0x0300_0000,
        0x0400_ffff,
        0x7fff_ffff,
        0xffff_ffff,
    ];
    for (i, &top) in tops.iter().enumerate() {
        let header: [u8; 80] = rng.bytes();
        let mut target = target_with_top(&mut rng, top);
        if top == 0 {
            // With a top word of 0, 1 hash in 2^32 passes: make such a target reachable by
            // using the exact full hash of some nonce in range as the target.
            let probe = ScanWork::new(header, Target::MAX);
            let mut h = sha256d(&probe.header_with_nonce(1000 + i as u32));
            h[28..].fill(0);
            let mut be = h;
            be.reverse();
            target = Target::from_be_bytes(be);
        }
        let work = ScanWork::new(header, target);
        let (start, end) = (997u64, 997 + 2_000 + 13);
        let expect = reference_scan(&work, start, end);
        for path in available_paths() {
            let scanner = CpuScanner::with_path(path).expect("available");
            let mut got = Vec::new();
            let stats = scanner
                .scan(&work, start..end, &AtomicBool::new(false), &mut |n| {
                    got.push(n)
                })
                .expect("valid range");
            assert_eq!(got, expect, "path {path}, top {top:#x}");
            assert_eq!(stats.hashes, end - start);
        }
    }
}

#[test]
fn all_paths_agree_at_the_top_of_the_nonce_space() {
    let mut rng = Rng(99);
    let header: [u8; 80] = rng.bytes();
    let target = target_with_top(&mut rng, 0x0800_0000);
    let work = ScanWork::new(header, target);
    let (start, end) = ((1u64 << 32) - 1_037, 1u64 << 32);
    let expect = reference_scan(&work, start, end);
    assert!(!expect.is_empty());
    for path in available_paths() {
        let scanner = CpuScanner::with_path(path).expect("available");
        let mut got = Vec::new();
        scanner
            .scan(&work, start..end, &AtomicBool::new(false), &mut |n| {
                got.push(n)
            })
            .expect("valid range");
        assert_eq!(got, expect, "path {path}");
    }
}

#[test]
fn every_nonce_meets_the_max_target() {
    let work = ScanWork::new([0x5a; 80], Target::MAX);
    for path in available_paths() {
        let scanner = CpuScanner::with_path(path).expect("available");
        let mut got = Vec::new();
        scanner
            .scan(&work, 5..70, &AtomicBool::new(false), &mut |n| got.push(n))
            .expect("valid range");
        assert_eq!(got, (5..70).collect::<Vec<u32>>(), "path {path}");
    }
}

#[test]
fn bad_ranges_are_errors() {
    let work = ScanWork::new([0; 80], Target::DIFF1);
    let scanner = CpuScanner::auto();
    let cancel = AtomicBool::new(false);
    let mut sink = |_n: u32| {};
    let over = scanner.scan(&work, 0..(1 << 32) + 1, &cancel, &mut sink);
    assert!(matches!(over, Err(ScanError::NonceRange { .. })));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = scanner.scan(&work, 10..5, &cancel, &mut sink);
    assert!(matches!(backwards, Err(ScanError::NonceRange { .. })));
    let empty = scanner
        .scan(&work, 7..7, &cancel, &mut sink)
        .expect("empty is fine");
    assert_eq!(empty.hashes, 0);
}

#[test]
fn cancel_stops_a_full_range_scan() {
    let work = Arc::new(ScanWork::new([1; 80], Target::DIFF1));
    for path in available_paths() {
        let cancel = Arc::new(AtomicBool::new(false));
        let (w, c) = (Arc::clone(&work), Arc::clone(&cancel));
        let worker = std::thread::spawn(move || {
            let scanner = CpuScanner::with_path(path).expect("available");
            scanner.scan(&w, 0..1 << 32, &c, &mut |_| {})
        });
        std::thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        cancel.store(true, Ordering::Relaxed);
        let stats = worker.join().expect("no panic").expect("valid range");
        let waited = asked.elapsed();
        assert!(stats.cancelled, "path {path}");
        assert!(stats.hashes < 1 << 32, "path {path}");
        // Informational: the guarantee (100 ms) is shown in the benchmark report; a loaded
        // CI machine may deschedule the worker, so only a gross failure is asserted.
        assert!(waited < Duration::from_secs(10), "path {path}: {waited:?}");
    }
}

#[test]
fn pre_cancelled_scan_hashes_nothing() {
    let work = ScanWork::new([1; 80], Target::DIFF1);
    let stats = CpuScanner::auto()
        .scan(&work, 0..1 << 20, &AtomicBool::new(true), &mut |_| {})
        .expect("valid range");
    assert!(stats.cancelled);
    assert_eq!(stats.hashes, 0);
}

#[test]
fn path_names_round_trip() {
    for path in CpuPath::ALL {
        assert_eq!(CpuPath::from_name(path.name()), Some(path));
    }
    assert!(CpuPath::Portable.is_available());
    assert!(CpuPath::detect().is_available());
}
