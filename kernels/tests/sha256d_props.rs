//! Property tests for the parts of the hashing kernel fed by the network: share difficulty
//! (a pool's mining.set_difficulty, any f64), compact nbits (from a job), arbitrary headers
//! and targets. None may panic, and each must keep its arithmetic identities.

use std::sync::atomic::AtomicBool;

use compushare_kernels::sha256d::{sha256d, CpuPath, CpuScanner, ScanWork, Scanner, Target};
use proptest::prelude::*;

/// The target as a big-endian byte array compares like the integer it is.
fn be(t: Target) -> [u8; 32] {
    t.to_be_bytes()
}

/// Integer shift right by one bit of a big-endian 256-bit number.
fn shr1(x: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u8;
    for (o, b) in out.iter_mut().zip(x) {
        *o = (b >> 1) | (carry << 7);
        carry = b & 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn difficulty_never_panics(bits in any::<u64>()) {
        let d = f64::from_bits(bits);
        let r = Target::from_difficulty(d);
        prop_assert_eq!(r.is_ok(), d.is_finite() && d > 0.0);
    }

    #[test]
    fn doubling_difficulty_halves_the_target(d in 1e-9f64..1e15) {
        // floor(floor(X / d) / 2) == floor(X / 2d) exactly, so this holds bit for bit.
        let t1 = Target::from_difficulty(d).unwrap();
        let t2 = Target::from_difficulty(d * 2.0).unwrap();
        if t1 != Target::MAX {
            prop_assert_eq!(be(t2), shr1(be(t1)));
        }
    }

    #[test]
    fn higher_difficulty_never_raises_the_target(a in 1e-6f64..1e12, b in 1e-6f64..1e12) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let t_lo = Target::from_difficulty(lo).unwrap();
        let t_hi = Target::from_difficulty(hi).unwrap();
        prop_assert!(be(t_hi) <= be(t_lo));
    }

    #[test]
    fn compact_never_panics_and_matches_shift(nbits in any::<u32>()) {
        let exp = nbits >> 24;
        let mant = nbits & 0x007f_ffff;
        match Target::from_compact(nbits) {
            Ok(t) => {
                // Rebuild mant * 256^(exp - 3) independently.
                let mut want = [0u8; 32];
                let m = mant.to_be_bytes();
                for k in 0..3usize {
                    let pos = 32 + k as i64 - exp as i64;
                    if (0..32).contains(&pos) {
                        want[pos as usize] = m[1 + k];
                    }
                }
                prop_assert_eq!(be(t), want);
            }
            Err(_) => {
                let negative = nbits & 0x0080_0000 != 0 && mant != 0;
                prop_assert!(negative || (mant != 0 && exp > 32));
            }
        }
    }

    #[test]
    fn is_met_by_is_little_endian_compare(target in any::<[u8; 32]>(), hash in any::<[u8; 32]>()) {
        let t = Target::from_be_bytes(target);
        prop_assert_eq!(Target::from_be_bytes(t.to_be_bytes()), t);
        let mut hash_be = hash;
        hash_be.reverse();
        prop_assert_eq!(t.is_met_by(&hash), hash_be <= target);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn paths_agree_on_arbitrary_headers(
        header in prop::collection::vec(any::<u8>(), 80),
        top in prop_oneof![Just(0u32), Just(0x0100_0000u32), any::<u32>()],
        start in 0u64..(1u64 << 32) - 300,
        len in 0u64..300,
    ) {
        let header: [u8; 80] = header.try_into().unwrap();
        let mut t = [0xffu8; 32];
        t[..4].copy_from_slice(&top.to_be_bytes());
        let work = ScanWork::new(header, Target::from_be_bytes(t));
        let expect: Vec<u32> = (start..start + len)
            .map(|n| n as u32)
            .filter(|&n| work.target().is_met_by(&sha256d(&work.header_with_nonce(n))))
            .collect();
        for path in CpuPath::ALL.into_iter().filter(|p| p.is_available()) {
            let mut got = Vec::new();
            let stats = CpuScanner::with_path(path)
                .unwrap()
                .scan(&work, start..start + len, &AtomicBool::new(false), &mut |n| got.push(n))
                .unwrap();
            prop_assert_eq!(&got, &expect, "path {}", path);
            prop_assert_eq!(stats.hashes, len);
        }
    }
}
