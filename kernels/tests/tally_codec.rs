//! `Tally::from_canonical_bytes`: round trips of real and random tallies, and arbitrary or
//! mutated bytes never panic and never decode to something that re-encodes differently.

use compushare_kernels::transport::input::{parse_job, ParseOptions};
use compushare_kernels::transport::tally::{DetectedPhoton, Tally};
use compushare_kernels::transport::{simulate, TallyCodecError};
use proptest::prelude::*;

const JOB: &str = r#"{
  "Session": { "ID": "codec", "Photons": 300, "RNGSeed": 7 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [6, 5, 4], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.05, "mus": 2, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [6, 5, 4] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [3, 2, 0], "Dir": [0, 0, 1] },
              "Detector": [ { "Pos": [3, 2, 0], "R": 3 } ] }
}"#;

fn real_tally() -> Tally {
    let job = parse_job(JOB, &ParseOptions::default()).unwrap();
    simulate(&job, 0..job.photons, 2, None).unwrap()
}

#[test]
fn real_tally_round_trips_and_keeps_its_digest() {
    let t = real_tally();
    assert!(!t.detected.is_empty(), "the job should detect photons");
    let bytes = t.canonical_bytes();
    let back = Tally::from_canonical_bytes(&bytes).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.digest(), t.digest());
    // Every strict prefix is refused, never panics.
    for cut in 0..bytes.len() {
        assert!(Tally::from_canonical_bytes(&bytes[..cut]).is_err(), "{cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Tally::from_canonical_bytes(&long),
        Err(TallyCodecError::TrailingBytes(1))
    );
}

#[test]
fn write_canonical_matches_canonical_bytes_and_refuses_short_buffers() {
    let mut t = real_tally();
    let bytes = t.canonical_bytes();
    assert_eq!(t.canonical_len(), bytes.len());
    let mut out = vec![0xAAu8; bytes.len() + 7];
    assert_eq!(t.write_canonical(&mut out), Some(bytes.len()));
    assert_eq!(&out[..bytes.len()], &bytes[..]);
    assert!(
        out[bytes.len()..].iter().all(|&b| b == 0xAA),
        "nothing written past the end"
    );
    assert_eq!(t.write_canonical(&mut out[..bytes.len() - 1]), None);
    // Out-of-order detected photons still encode canonically (sorted).
    t.detected.reverse();
    let mut again = vec![0u8; bytes.len()];
    assert_eq!(t.write_canonical(&mut again), Some(bytes.len()));
    assert_eq!(again, bytes);
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut b = Tally::default().canonical_bytes();
    // deposit.len sits after magic (16), version (4), photons (8), launched (8).
    b[36..44].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Tally::from_canonical_bytes(&b),
        Err(TallyCodecError::CountTooLarge {
            field: "deposit.len",
            ..
        })
    ));
}

fn detected() -> impl Strategy<Value = DetectedPhoton> {
    (
        any::<u64>(),
        any::<u16>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..4),
        any::<[u32; 6]>(),
        any::<u64>(),
    )
        .prop_map(
            |(photon, detector, scatters, path, e, weight)| DetectedPhoton {
                photon,
                detector,
                scatters,
                path_mm: path.into_iter().map(f32::from_bits).collect(),
                exit_pos: [e[0], e[1], e[2]].map(f32::from_bits),
                exit_dir: [e[3], e[4], e[5]].map(f32::from_bits),
                weight,
            },
        )
}

fn tally() -> impl Strategy<Value = Tally> {
    (
        any::<[u64; 7]>(),
        prop::collection::vec(any::<u64>(), 0..40),
        any::<[u64; 6]>(),
        prop::collection::vec(detected(), 0..5),
    )
        .prop_map(|(s, deposit, escaped, mut det)| {
            det.sort_by_key(|d| d.photon);
            det.dedup_by_key(|d| d.photon);
            Tally {
                photons: s[0],
                launched: s[1],
                specular: s[2],
                alive_at_t1: s[3],
                roulette_gained: s[4],
                roulette_killed: s[5],
                deposit,
                escaped,
                detected: det,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_tallies_round_trip_bit_for_bit(t in tally()) {
        let bytes = t.canonical_bytes();
        let back = Tally::from_canonical_bytes(&bytes).unwrap();
        // Compare encodings: NaN path lengths are equal bit for bit but not as f32.
        prop_assert_eq!(back.canonical_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Tally::from_canonical_bytes(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic_and_stay_canonical(
        t in tally(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = t.canonical_bytes();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(back) = Tally::from_canonical_bytes(&bytes) {
            // Whatever decodes is the one canonical form of its value.
            prop_assert_eq!(back.canonical_bytes(), bytes);
        }
    }
}
