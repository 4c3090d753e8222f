//! Known-answer tests for the SHA-256d kernel: vectors V1, V2, V3, V7 and V8 of
//! shared/reference/stratum.md (header -> hash, difficulty -> target), and scans that must
//! find each block's real nonce in a small range around it with that block's target.

use std::sync::atomic::AtomicBool;

use compushare_kernels::sha256d::{sha256d, CpuPath, CpuScanner, ScanWork, Scanner, Target};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn header(s: &str) -> [u8; 80] {
    unhex(s).try_into().expect("80-byte header")
}

fn display(hash: [u8; 32]) -> String {
    hash.iter().rev().map(|b| format!("{b:02x}")).collect()
}

fn raw(hash: [u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

const V1: &str = "01000000 0000000000000000000000000000000000000000000000000000000000000000
  3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a
  29ab5f49 ffff001d 1dac2b7c";
const V2: &str = "01000000 81cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000
  e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122b
  c7f5d74d f2b9441a 42a14695";
const V3: &str = "02000000f8b6164d19e2f65a2aae448f787fe66d61e57a48c0c6771b1e920b44000000003241
  4daa9ddac879fd2c62839b9ba710a3546363a5f5e22915d90dc3b1699deced864e50afc42a1c027c95b2";
const V7: &str = "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710";

#[test]
fn v1_genesis_hash() {
    assert_eq!(
        display(sha256d(&header(V1))),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
}

#[test]
fn v2_block_125552_hash() {
    let h = sha256d(&header(V2));
    assert_eq!(
        raw(h),
        "1dbd981fe6985776b644b173a4d0385ddc1aa2a829688d1e0000000000000000"
    );
    assert_eq!(
        display(h),
        "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
    );
}

#[test]
fn v3_and_v7_header_hashes() {
    assert_eq!(
        display(sha256d(&header(V3))),
        "000000002076870fe65a2b6eeed84fa892c0db924f1482243a6247d931dcab32"
    );
    assert_eq!(
        display(sha256d(&header(V7))),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    );
}

#[test]
fn v8_difficulty_to_target() {
    let table: [(f64, &str); 5] = [
        (
            1.0,
            "00000000ffff0000000000000000000000000000000000000000000000000000",
        ),
        (
            2.0,
            "000000007fff8000000000000000000000000000000000000000000000000000",
        ),
        (
            1024.0,
            "00000000003fffc0000000000000000000000000000000000000000000000000",
        ),
        (
            65536.0,
            "000000000000ffff000000000000000000000000000000000000000000000000",
        ),
        (
            0.5,
            "00000001fffe0000000000000000000000000000000000000000000000000000",
        ),
    ];
    for (d, hex) in table {
        let t = Target::from_difficulty(d).expect("valid difficulty");
        assert_eq!(raw(t.to_be_bytes()), hex, "difficulty {d}");
    }
    assert_eq!(Target::from_difficulty(1.0).ok(), Some(Target::DIFF1));
}

#[test]
fn difficulty_edge_cases() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(Target::from_difficulty(bad).is_err(), "{bad}");
    }
    // Tiny difficulties saturate instead of wrapping.
    assert_eq!(Target::from_difficulty(1e-300).ok(), Some(Target::MAX));
    assert_eq!(
        Target::from_difficulty(f64::MIN_POSITIVE / 4.0).ok(),
        Some(Target::MAX)
    );
    // Huge difficulties go to zero, not to garbage.
    assert_eq!(
        Target::from_difficulty(1e300).map(|t| t.to_be_bytes()).ok(),
        Some([0u8; 32])
    );
    // 3 is not a power of two: floor(0xFFFF * 2^208 / 3) = 0x5555 * 2^208.
    let t = Target::from_difficulty(3.0).expect("valid");
    assert_eq!(
        raw(t.to_be_bytes()),
        "0000000055550000000000000000000000000000000000000000000000000000"
    );
    // 1/3 is rounded in f64, so the exact quotient is not a clean hex pattern; the target
    // must still lie between D = 0.3333 and 0.3334 ones and be monotone.
    let lo = Target::from_difficulty(0.3334)
        .expect("valid")
        .to_be_bytes();
    let mid = Target::from_difficulty(1.0 / 3.0)
        .expect("valid")
        .to_be_bytes();
    let hi = Target::from_difficulty(0.3333)
        .expect("valid")
        .to_be_bytes();
    assert!(lo < mid && mid < hi);
}

/// Scans `radius` nonces either side of the header's own nonce with its block target
/// (from nbits) on every path this CPU has, and expects exactly that nonce.
fn scan_finds_own_nonce(hex: &str, radius: u64) {
    let h = header(hex);
    let nonce = u32::from_le_bytes([h[76], h[77], h[78], h[79]]);
    let nbits = u32::from_le_bytes([h[72], h[73], h[74], h[75]]);
    let target = Target::from_compact(nbits).expect("valid nbits");
    let mut blank = h;
    blank[76..80].fill(0xAA); // the scanner must ignore the nonce bytes it is given
    let work = ScanWork::new(blank, target);
    let start = u64::from(nonce).saturating_sub(radius);
    let end = (u64::from(nonce) + radius + 1).min(1 << 32);
    let cancel = AtomicBool::new(false);
    for path in CpuPath::ALL.into_iter().filter(|p| p.is_available()) {
        let scanner = CpuScanner::with_path(path).expect("available");
        let mut found = Vec::new();
        let stats = scanner
            .scan(&work, start..end, &cancel, &mut |n| found.push(n))
            .expect("valid range");
        assert_eq!(found, vec![nonce], "path {path}");
        assert_eq!(stats.hashes, end - start, "path {path}");
        assert!(!stats.cancelled);
    }
}

#[test]
fn scan_finds_v1_nonce() {
    scan_finds_own_nonce(V1, 3000);
}

#[test]
fn scan_finds_v2_nonce() {
    scan_finds_own_nonce(V2, 3000);
}

#[test]
fn scan_finds_v3_and_v7_nonces() {
    scan_finds_own_nonce(V3, 2000);
    scan_finds_own_nonce(V7, 2000);
}
