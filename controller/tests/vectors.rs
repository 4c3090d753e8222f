//! Known-answer tests from ../shared/reference/stratum.md: V1, V2 (header hashing), V3 and
//! V7 (notify -> coinbase -> merkle root -> header -> hash, ntime rolling in V3), V8
//! (difficulty -> target), plus nbits, economics and the extranonce2 split.

use std::sync::Arc;
use std::time::Instant;

use compushare_controller::stratum::hex::{decode, decode_u32_be, encode};
use compushare_controller::stratum::job::{
    coinbase, economics, merkle_root, prevhash_header_order, share_header, Work,
};
use compushare_controller::stratum::message::{parse_line, Message, Notify, ServerMessage};
use compushare_controller::stratum::target::{reversed, sha256d, ShareTarget};
use serde_json::json;

fn h(s: &str) -> Vec<u8> {
    decode(&s.replace([' ', '\n'], ""), 1 << 20).unwrap()
}

fn v3_notify() -> Notify {
    let line = json!({"id": null, "method": "mining.notify", "params": ["bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
       "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
       "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
       [], "00000002", "1c2ac4af", "504e86b9", false]}).to_string();
    let Message::Request(r) = parse_line(&line).unwrap() else {
        panic!("not a request")
    };
    let ServerMessage::Notify(n) = ServerMessage::from_request(&r).unwrap() else {
        panic!("not a notify")
    };
    n
}

fn v7_notify() -> Notify {
    let p = json!(["674320f700005d59",
       "1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000",
       "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff08044c86041b",
       "ffffffff0100f2052a010000004341041b0e8c2567c12536aa13357b79a073dc4444acb83c4ec7a0e2f99dd7457516c5817242da796924ca4e99947d087fedf9ce467cb9f7c6287078f801df276fdf84ac00000000",
       ["c40297f730dd7b5a99567eb8d27b78758f607507c52292d02d4031895b52f2ff",
        "49aef42d78e3e9999c9e6ec9e1dddd6cb880bf3b076a03be1318ca789089308e"],
       "00000001", "1b04864c", "4d1b2237", true]);
    Notify::from_params(p.as_array().unwrap()).unwrap()
}

#[test]
fn v1_genesis_header_hash() {
    let header = h("01000000 0000000000000000000000000000000000000000000000000000000000000000
        3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a 29ab5f49 ffff001d 1dac2b7c");
    assert_eq!(
        encode(&reversed(&sha256d(&header))),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
}

#[test]
fn v2_block_125552_hash() {
    let header = h("01000000 81cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000
        e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122b c7f5d74d f2b9441a 42a14695");
    let raw = sha256d(&header);
    assert_eq!(
        encode(&raw),
        "1dbd981fe6985776b644b173a4d0385ddc1aa2a829688d1e0000000000000000"
    );
    assert!(ShareTarget::from_nbits(0x1a44b9f2).unwrap().is_met_by(&raw));
}

#[test]
fn v3_notify_to_header_with_rolled_ntime() {
    let n = v3_notify();
    let en1 = h("08000002");
    let en2 = h("00000001");
    let cb = coinbase(&n, &en1, &en2);
    let cb_hash = sha256d(&cb);
    assert_eq!(
        encode(&reversed(&cb_hash)),
        "ec9d69b1c30dd91529e2f5a5636354a310a79b9b83622cfd79c8da9daa4d4132"
    );
    let root = merkle_root(cb_hash, &n.merkle_branch);
    assert_eq!(
        encode(&root),
        "32414daa9ddac879fd2c62839b9ba710a3546363a5f5e22915d90dc3b1699dec"
    );
    // The miner rolled ntime: the header carries the submitted one, not the job's.
    let ntime = decode_u32_be("504e86ed").unwrap();
    let nonce = decode_u32_be("b2957c02").unwrap();
    assert_ne!(ntime, n.ntime);
    let header = share_header(&n, &en1, &en2, ntime, n.version, nonce);
    assert_eq!(
        encode(&header),
        "02000000f8b6164d19e2f65a2aae448f787fe66d61e57a48c0c6771b1e920b4400000000\
         32414daa9ddac879fd2c62839b9ba710a3546363a5f5e22915d90dc3b1699deced864e50afc42a1c027c95b2"
    );
    let hash = sha256d(&header);
    assert_eq!(
        encode(&reversed(&hash)),
        "000000002076870fe65a2b6eeed84fa892c0db924f1482243a6247d931dcab32"
    );
    assert!(ShareTarget::from_difficulty(1.0).unwrap().is_met_by(&hash));
    // The job's own ntime gives a different header, hence a different hash.
    assert_ne!(
        sha256d(&share_header(&n, &en1, &en2, n.ntime, n.version, nonce)),
        hash
    );
    // Economics: 50 BTC coinbase, difficulty of nbits 1c2ac4af.
    let e = economics(&n, &en1, 4).unwrap();
    assert_eq!(e.coinbase_value_sat, 5_000_000_000);
    assert!(
        (e.network_difficulty - 5.987).abs() < 0.01,
        "{}",
        e.network_difficulty
    );
    assert!(e.sat_per_hash > 0.0);
}

#[test]
fn v7_block_100000_as_a_stratum_job() {
    let n = v7_notify();
    assert!(n.clean_jobs);
    let en1 = h("02");
    let en2 = h("0602");
    let cb_hash = sha256d(&coinbase(&n, &en1, &en2));
    assert_eq!(
        encode(&reversed(&cb_hash)),
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"
    );
    let root = merkle_root(cb_hash, &n.merkle_branch);
    assert_eq!(
        encode(&reversed(&root)),
        "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
    );
    let nonce = decode_u32_be("10572b0f").unwrap();
    let header = share_header(&n, &en1, &en2, n.ntime, n.version, nonce);
    assert_eq!(
        encode(&header),
        "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710"
    );
    let hash = sha256d(&header);
    assert_eq!(
        encode(&reversed(&hash)),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    );
    assert!(ShareTarget::from_nbits(n.nbits).unwrap().is_met_by(&hash));
    let e = economics(&n, &en1, 2).unwrap();
    assert_eq!(e.coinbase_value_sat, 5_000_000_000);
    assert!(
        (e.network_difficulty - 14484.16).abs() < 0.01,
        "{}",
        e.network_difficulty
    );
}

#[test]
fn v7_work_unit_zero_version_bits_matches_the_vector() {
    let n = v7_notify();
    let work = Work {
        pool: 0,
        session: 1,
        notify: Arc::new(n),
        extranonce1: h("02"),
        extranonce2_size: 2,
        difficulty: 1.0,
        target: ShareTarget::from_difficulty(1.0).unwrap(),
        version_mask: None,
        received: Instant::now(),
    };
    // extranonce2 0x0602 is counter value 0x0602 in a one-slot split.
    let range = work.slot_range(0, 1);
    assert_eq!(range, 0..65536);
    let unit = work.unit(&range, 0x0602, 32).unwrap();
    assert_eq!(unit.extranonce2, h("0602"));
    assert_eq!(unit.nonces, 0..1 << 32);
    let nonce = decode_u32_be("10572b0f").unwrap();
    let hash = sha256d(&compushare_controller::stratum::job::with_nonce(
        &unit.header,
        nonce,
    ));
    assert_eq!(
        encode(&reversed(&hash)),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    );
}

#[test]
fn prevhash_words_are_swapped() {
    let wire: [u8; 32] = h("4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000")
        .try_into()
        .unwrap();
    assert_eq!(
        encode(&prevhash_header_order(&wire)),
        "f8b6164d19e2f65a2aae448f787fe66d61e57a48c0c6771b1e920b4400000000"
    );
}

#[test]
fn v8_difficulty_to_target() {
    let cases = [
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
    for (d, want) in cases {
        let t = ShareTarget::from_difficulty(d).unwrap();
        assert_eq!(encode(&t.to_be_bytes()), want, "difficulty {d}");
        assert!((t.difficulty() - d).abs() / d < 1e-9);
    }
    assert_eq!(
        ShareTarget::from_difficulty(1e-30).unwrap().to_be_bytes(),
        [0xff; 32]
    );
    assert!(ShareTarget::from_difficulty(0.0).is_err());
    assert!(ShareTarget::from_difficulty(f64::NAN).is_err());
    assert!(ShareTarget::from_difficulty(-1.0).is_err());
}

#[test]
fn nbits_to_target() {
    assert_eq!(
        encode(&ShareTarget::from_nbits(0x1d00ffff).unwrap().to_be_bytes()),
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    );
    assert!((ShareTarget::from_nbits(0x1d00ffff).unwrap().difficulty() - 1.0).abs() < 1e-12);
    assert!(ShareTarget::from_nbits(0x1d80ffff).is_err());
    assert!(ShareTarget::from_nbits(0x2300ffff).is_err());
}

#[test]
fn extranonce2_split_is_disjoint_and_covers_the_space() {
    let mut work = Work {
        pool: 0,
        session: 1,
        notify: Arc::new(v7_notify()),
        extranonce1: h("02"),
        extranonce2_size: 2,
        difficulty: 1.0,
        target: ShareTarget::from_difficulty(1.0).unwrap(),
        version_mask: Some(0x1fffe000),
        received: Instant::now(),
    };
    for slots in [1usize, 2, 3, 7, 16] {
        let ranges: Vec<_> = (0..slots).map(|s| work.slot_range(s, slots)).collect();
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[slots - 1].end, 65536);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }
    // Units are distinct headers-and-nonce-ranges across slots and indices.
    let mut seen = std::collections::HashSet::new();
    for slot in 0..3 {
        let r = work.slot_range(slot, 3);
        for i in 0..300u64 {
            let u = work.unit(&r, i, 20).unwrap();
            assert_eq!(u.version & !0x1fffe000, 0x00000001 & !0x1fffe000);
            assert!(
                seen.insert((u.header, u.nonces.start)),
                "slot {slot} unit {i} repeats"
            );
        }
    }
    // Past the end there is no unit.
    work.extranonce2_size = 0;
    let r = work.slot_range(0, 2);
    assert_eq!(r, 0..0);
    assert!(work.unit(&r, 0, 32).is_none());
    let r = work.slot_range(0, 1);
    let last = work.unit_count(&r, 32) as u64;
    assert!(work.unit(&r, last - 1, 32).is_some());
    assert!(work.unit(&r, last, 32).is_none());
}
