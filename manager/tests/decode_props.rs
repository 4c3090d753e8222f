//! Stored values are read back from disk: arbitrary or mutated bytes must decode to a typed
//! error (or a value), never a panic; the ledger verifier must survive corrupted entries too.

mod statekit;

use compushare_manager::codec;
use compushare_manager::config::Config;
use compushare_manager::ledger::{
    format_credits, parse_credits, Account, Head, PendingPay, StoredEntry,
};
use compushare_manager::records::{AssignmentRecord, JobRecord};
use compushare_manager::store::tables;
use compushare_manager::trust::RigRecord;
use compushare_manager::Store;
use compushare_protocol::types::Amount;
use proptest::prelude::*;
use statekit::*;

fn decode_all(bytes: &[u8]) {
    let _ = codec::decode::<StoredEntry>("e", bytes);
    let _ = codec::decode::<Head>("h", bytes);
    let _ = codec::decode::<PendingPay>("p", bytes);
    let _ = codec::decode::<Account>("a", bytes);
    let _ = codec::decode::<i128>("b", bytes);
    let _ = codec::decode::<JobRecord>("j", bytes);
    let _ = codec::decode::<AssignmentRecord>("as", bytes);
    let _ = codec::decode::<RigRecord>("r", bytes);
    let _ = codec::decode::<Config>("c", bytes);
}

/// Valid encodings of each stored type, taken from a real store.
fn samples() -> Vec<Vec<u8>> {
    let (store, _path) = store_with("props", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(50_000)))
        .expect("grant");
    let job = create_job(&store, 100, 50_000, b"j").expect("job");
    let a = verified_assignment(&store, job.id, RIG_A, 0, 100).expect("a");
    pay(&store, &a).expect("pay");
    store
        .write(|tx| tx.trust_verified(&RIG_A, 100).map(|_| ()))
        .expect("t");
    let r = store.read().expect("read");
    let mut out = Vec::new();
    for def in [tables::LEDGER, tables::JOBS, tables::ASSIGNMENTS] {
        let t = r.redb().open_table(def).expect("t");
        for item in redb::ReadableTable::iter(&t).expect("iter") {
            let (_, v) = item.expect("item");
            out.push(v.value().to_vec());
        }
    }
    for def in [tables::RIGS, tables::BALANCES, tables::PENDING] {
        let t = r.redb().open_table(def).expect("t");
        for item in redb::ReadableTable::iter(&t).expect("iter") {
            let (k, v) = item.expect("item");
            out.push(k.value().to_vec());
            out.push(v.value().to_vec());
        }
    }
    out.push(codec::encode("c", &Config::default()).expect("c"));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn credits_parse_never_panics_and_round_trips(s in "\\PC{0,30}", m in 1u64..u64::MAX / 2) {
        let _ = parse_credits(&s);
        prop_assert_eq!(parse_credits(&format_credits(i128::from(m))), Ok(Amount(m)));
    }
}

#[test]
fn mutated_stored_values_never_panic() {
    let samples = samples();
    assert!(samples.len() > 10);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(3000));
    let strategy = (
        0..samples.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(which, flips, cut, truncate)| {
            let mut b = samples[which].clone();
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            if truncate {
                b.truncate(cut.index(b.len() + 1));
            }
            decode_all(&b);
            Ok(())
        })
        .expect("no panic");
}

#[test]
fn verify_survives_garbage_entries_and_balances() {
    let (store, path) = store_with("garbage", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(1_000)))
        .expect("grant");
    store
        .write(|tx| tx.grant(&CLIENT, Amount(1_000)))
        .expect("grant");
    drop(store);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..40u64 {
        let dir = temp_dir("garbage-copy");
        let p = dir.join("manager.redb");
        std::fs::copy(&path, &p).expect("copy");
        let len = 1 + (round as usize * 7) % 90;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        {
            let db = redb::Database::create(&p).expect("raw");
            let w = db.begin_write().expect("w");
            if round % 2 == 0 {
                w.open_table(tables::LEDGER)
                    .expect("t")
                    .insert(round % 3, junk.as_slice())
                    .expect("i");
            } else {
                let key = codec::encode("a", &Account::Client(CLIENT)).expect("k");
                w.open_table(tables::BALANCES)
                    .expect("t")
                    .insert(key.as_slice(), junk.as_slice())
                    .expect("i");
            }
            w.commit().expect("c");
        }
        let store = Store::open(&p).expect("open");
        assert!(
            store.verify_ledger().is_err(),
            "round {round}: garbage verified"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn garbage_database_file_is_an_error() {
    let dir = temp_dir("garbage-file");
    let p = dir.join("manager.redb");
    std::fs::write(&p, vec![0x5au8; 10_000]).expect("write");
    assert!(Store::open(&p).is_err());
    std::fs::write(&p, b"").expect("write");
    assert!(Store::open(&p).is_err());
}
