//! The result vault: no allocation on the result path after start (a counting allocator
//! watches this thread), back-pressure when full, tampered ciphertext detected, no plaintext
//! left in a slot after sealing or after a failed seal.

use std::sync::atomic::AtomicU64;

use compushare_controller::vault::{Vault, VaultError};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::simulate;
use compushare_kernels::transport::tally::Tally;
use compushare_protocol::chunk::{content_address, Chunker, Reassembler};
use compushare_protocol::msg::{CostStats, ResultCommit};
use compushare_protocol::secure::seal::{self, SealError, SEAL_PAYLOAD_OFFSET};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::AssignmentId;

/// A TEST allocator that counts the allocations made by the thread that asked it to.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::Ordering;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
    }

    pub struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator; the counter is an
    // atomic and the thread-local flag is a const-initialised Cell, neither of which allocates.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
            note();
            unsafe { System.realloc(ptr, layout, new) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn note() {
        if ON.try_with(Cell::get).unwrap_or(false) {
            super::ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Allocations this thread makes while `f` runs.
    pub fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
        let before = super::ALLOCATIONS.load(Ordering::Relaxed);
        ON.with(|c| c.set(true));
        let r = f();
        ON.with(|c| c.set(false));
        (super::ALLOCATIONS.load(Ordering::Relaxed) - before, r)
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn tally() -> Tally {
    // The built-in cube60 (a 60^3 grid, four detectors): a 1.7 MB tally with detections.
    let opts = ParseOptions {
        photons: Some(3000),
        ..ParseOptions::default()
    };
    let job = builtin_job("cube60", &opts).unwrap();
    let t = simulate(&job, 0..job.photons, 2, None).unwrap();
    assert!(
        !t.detected.is_empty(),
        "detected photons exercise the encoder's other half"
    );
    t
}

fn commit(a: AssignmentId, tally: &Tally, sealed: &[u8]) -> ResultCommit {
    ResultCommit {
        assignment: a,
        histories: tally.photons,
        tally: tally.digest(),
        merkle_root: [0; 32],
        sealed: content_address(sealed),
        sealed_len: sealed.len() as u32,
        stats: CostStats {
            elapsed_ms: 1,
            voxel_steps: 0,
            scatters: 0,
        },
    }
}

#[test]
fn the_result_path_allocates_nothing_after_start() {
    let manager = Identity::generate().unwrap();
    let key = manager.public();
    let t = tally();
    let mut vault = Vault::new(4, 4 << 20).unwrap();
    let mut chunks_seen = 0usize;
    let mut last = Vec::new();
    // Warm-up: the OS RNG and thread-locals of the crypto open lazily on first use.
    {
        let s = vault.reserve(AssignmentId(0)).unwrap();
        let mut b = vault.lend(s).unwrap();
        b.seal(&t, &key).unwrap();
        vault.give_back(b);
    }
    let (allocations, ()) = counting::count(|| {
        for round in 1..=20u64 {
            let a = AssignmentId(round);
            let s = vault.reserve(a).unwrap();
            let mut buf = vault.lend(s).unwrap();
            let n = buf.seal(&t, &key).unwrap();
            let c = commit(a, &t, buf.sealed());
            assert_eq!(n, c.sealed_len as usize);
            vault.store(buf, c).unwrap();
            let (stored, sealed) = vault.sealed(a).unwrap();
            for chunk in Chunker::with_content(sealed, stored.sealed).unwrap() {
                chunks_seen += chunk.data.len();
            }
            assert!(vault.release(a));
        }
    });
    assert_eq!(allocations, 0, "allocations on the result path");
    // The counter does see allocations: the old path (a Vec per encoding and per box) would
    // have failed this test.
    let (n, _) = counting::count(|| seal::seal(&key, &t.canonical_bytes()));
    assert!(n >= 2, "{n}");
    assert!(chunks_seen > 0);
    // And what went out opens, for the manager, to the canonical tally.
    let a = AssignmentId(99);
    let s = vault.reserve(a).unwrap();
    let mut buf = vault.lend(s).unwrap();
    buf.seal(&t, &key).unwrap();
    last.extend_from_slice(buf.sealed());
    let c = commit(a, &t, buf.sealed());
    vault.store(buf, c).unwrap();
    let (stored, sealed) = vault.sealed(a).unwrap();
    let mut out = vec![0u8; sealed.len()];
    let mut bitmap = vec![0u8; Reassembler::bitmap_len(out.len())];
    let mut r = Reassembler::new(&mut out, &mut bitmap, stored.sealed, stored.sealed_len).unwrap();
    let mut done = false;
    for chunk in Chunker::with_content(sealed, stored.sealed).unwrap() {
        done = r.accept(&chunk).unwrap();
    }
    assert!(done);
    assert_eq!(seal::open(&manager, &last).unwrap(), t.canonical_bytes());
}

#[test]
fn a_full_vault_refuses_until_a_result_is_acknowledged() {
    let key = Identity::generate().unwrap().public();
    let t = tally();
    let mut vault = Vault::new(2, 4 << 20).unwrap();
    for a in [1, 2] {
        let s = vault.reserve(AssignmentId(a)).unwrap();
        let mut b = vault.lend(s).unwrap();
        b.seal(&t, &key).unwrap();
        let c = commit(AssignmentId(a), &t, b.sealed());
        vault.store(b, c).unwrap();
    }
    assert_eq!(vault.reserve(AssignmentId(3)), Err(VaultError::Full(2)));
    assert_eq!(vault.stats().full_events, 1);
    assert_eq!(vault.stats().used, 2);
    // Results wait, whatever happens to sessions, until acknowledged.
    assert_eq!(
        vault.waiting().collect::<Vec<_>>(),
        vec![AssignmentId(1), AssignmentId(2)]
    );
    // A release for something the vault does not hold frees nothing.
    assert!(!vault.release(AssignmentId(7)));
    assert!(vault.reserve(AssignmentId(3)).is_err());
    assert!(vault.release(AssignmentId(1)));
    assert!(vault.reserve(AssignmentId(3)).is_ok());
    assert_eq!(vault.stats().sealed, 2);
}

#[test]
fn tampered_ciphertext_is_detected() {
    let manager = Identity::generate().unwrap();
    let t = tally();
    let mut vault = Vault::new(1, 4 << 20).unwrap();
    let s = vault.reserve(AssignmentId(1)).unwrap();
    let mut b = vault.lend(s).unwrap();
    b.seal(&t, &manager.public()).unwrap();
    let good = b.sealed().to_vec();
    assert_eq!(seal::open(&manager, &good).unwrap(), t.canonical_bytes());
    for at in [0, 1, 33, good.len() / 2, good.len() - 17, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert!(seal::open(&manager, &bad).is_err(), "byte {at} flipped");
        // The content address the commit carries catches it before decryption, too.
        assert_ne!(content_address(&bad), content_address(&good));
    }
    assert_eq!(
        seal::open(&manager, &good[..good.len() - 1]),
        Err(SealError::Auth)
    );
    // Another key cannot open it.
    let other = Identity::generate().unwrap();
    assert_eq!(seal::open(&other, &good), Err(SealError::Auth));
}

#[test]
fn no_plaintext_is_left_in_a_slot() {
    let key = Identity::generate().unwrap().public();
    let t = tally();
    let plain = t.canonical_bytes();
    let mut vault = Vault::new(1, 4 << 20).unwrap();
    let s = vault.reserve(AssignmentId(1)).unwrap();
    let mut b = vault.lend(s).unwrap();
    b.seal(&t, &key).unwrap();
    let raw = b.raw();
    assert!(
        !raw.windows(16).any(|w| w == b"compushare-tally"),
        "the magic of the plaintext is gone"
    );
    // No 32-byte run of the plaintext survives where it was written (encrypted in place).
    for (k, piece) in plain.chunks_exact(32).enumerate() {
        if piece.iter().any(|&b| b != 0) {
            let at = SEAL_PAYLOAD_OFFSET + 32 * k;
            assert_ne!(&raw[at..at + 32], piece, "plaintext left at byte {at}");
        }
    }
    // A seal that fails after the plaintext was written (a recipient key that agrees no
    // secret) leaves the slot all zeros.
    let err = b.seal(&t, &[0u8; 32]).unwrap_err();
    assert_eq!(err, VaultError::Seal(SealError::WeakKey));
    assert!(b.raw().iter().all(|&x| x == 0));
    assert!(b.sealed().is_empty());
    // Too large for the slot: refused before anything is written.
    let mut small = Vault::new(1, 4096).unwrap();
    let s = small.reserve(AssignmentId(2)).unwrap();
    let mut b = small.lend(s).unwrap();
    assert!(matches!(b.seal(&t, &key), Err(VaultError::TooLarge { .. })));
    assert!(b.raw().iter().all(|&x| x == 0));
}
