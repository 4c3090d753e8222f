//! `verify` passes on a healthy ledger and fails, naming the entry or account, when the redb
//! file is altered behind the store's back.

mod statekit;

use std::path::{Path, PathBuf};

use compushare_manager::codec;
use compushare_manager::ledger::{Account, LedgerFault, StoredEntry};
use compushare_manager::store::tables;
use compushare_manager::{Config, Store};
use compushare_protocol::types::Amount;
use redb::ReadableTable;
use statekit::*;

/// A small healthy ledger: grant, escrow, two pays, fee, refund. Returns the db path.
fn healthy(name: &str) -> PathBuf {
    let (store, path) = store_with(name, &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(50_000)))
        .expect("grant");
    let job = create_job(&store, 1000, 50_000, b"j").expect("job");
    for (i, rig) in [RIG_A, RIG_B].into_iter().enumerate() {
        let a = verified_assignment(&store, job.id, rig, i as u64 * 400, 400).expect("a");
        pay(&store, &a).expect("pay");
    }
    finish(&store, job.id).expect("finish");
    let s = store.verify_ledger().expect("healthy ledger verifies");
    assert_eq!(s.entries, 6);
    path
}

fn copy_to(path: &Path, name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let to = dir.join("manager.redb");
    std::fs::copy(path, &to).expect("copy db");
    to
}

/// Rewrites ledger entry `seq` through `f` (raw stored bytes).
fn edit_entry_bytes(path: &Path, seq: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let db = redb::Database::create(path).expect("open raw");
    let w = db.begin_write().expect("write");
    {
        let mut t = w.open_table(tables::LEDGER).expect("table");
        let mut bytes = t.get(seq).expect("get").expect("entry").value().to_vec();
        f(&mut bytes);
        t.insert(seq, bytes.as_slice()).expect("insert");
    }
    w.commit().expect("commit");
}

fn edit_entry(path: &Path, seq: u64, f: impl FnOnce(&mut StoredEntry)) {
    edit_entry_bytes(path, seq, |bytes| {
        let mut e: StoredEntry = codec::decode("entry", bytes).expect("decode");
        f(&mut e);
        *bytes = codec::encode("entry", &e).expect("encode");
    });
}

fn fault(path: &Path) -> LedgerFault {
    let store = Store::open(path).expect("reopen");
    match store.verify_ledger() {
        Ok(s) => panic!("tampered ledger verified: {s}"),
        Err(f) => f,
    }
}

#[test]
fn altered_amount_names_the_entry() {
    let path = copy_to(&healthy("t-amount-src"), "t-amount");
    edit_entry(&path, 2, |e| e.entry.amount += 1);
    match fault(&path) {
        LedgerFault::Entry { seq, reason } => {
            assert_eq!(seq, 2, "{reason}");
            assert!(reason.contains("hash"), "{reason}");
        }
        other => panic!("wrong fault: {other}"),
    }
}

#[test]
fn rehashed_entry_breaks_the_next_link() {
    let path = copy_to(&healthy("t-rehash-src"), "t-rehash");
    edit_entry(&path, 1, |e| {
        e.entry.amount -= 1;
        e.hash = compushare_manager::ledger::entry_hash(&e.entry).expect("hash");
    });
    match fault(&path) {
        LedgerFault::Entry { seq, reason } => {
            assert_eq!(seq, 2, "{reason}");
            assert!(reason.contains("previous hash"), "{reason}");
        }
        other => panic!("wrong fault: {other}"),
    }
}

#[test]
fn every_flipped_byte_of_an_entry_is_caught() {
    let src = healthy("t-flip-src");
    let len = {
        let store = Store::open(&src).expect("open");
        let r = store.read().expect("read");
        let t = r.redb().open_table(tables::LEDGER).expect("t");
        let n = t.get(3u64).expect("get").expect("entry").value().len();
        n
    };
    for i in 0..len {
        let path = copy_to(&src, "t-flip");
        edit_entry_bytes(&path, 3, |b| b[i] ^= 0x01);
        match fault(&path) {
            LedgerFault::Entry { seq, .. } => assert!(seq == 3 || seq == 4, "byte {i}: seq {seq}"),
            LedgerFault::Head(_) => {}
            other => panic!("byte {i}: wrong fault: {other}"),
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}

#[test]
fn altered_balance_names_the_account() {
    let path = copy_to(&healthy("t-bal-src"), "t-bal");
    {
        let db = redb::Database::create(&path).expect("open raw");
        let w = db.begin_write().expect("write");
        {
            let mut t = w.open_table(tables::BALANCES).expect("table");
            let key = codec::encode("a", &Account::Client(CLIENT)).expect("key");
            let v: i128 = codec::decode("b", t.get(key.as_slice()).expect("g").expect("v").value())
                .expect("decode");
            let nv = codec::encode("b", &(v + 1_000_000)).expect("enc");
            t.insert(key.as_slice(), nv.as_slice()).expect("insert");
        }
        w.commit().expect("commit");
    }
    match fault(&path) {
        LedgerFault::Balance {
            account,
            stored,
            computed,
        } => {
            assert!(account.starts_with("client:c1c1"), "{account}");
            assert_eq!(stored.parse::<i128>().ok(), Some(computed + 1_000_000));
        }
        other => panic!("wrong fault: {other}"),
    }
}

#[test]
fn removed_entry_and_paid_index_are_caught() {
    let src = healthy("t-rm-src");
    let path = copy_to(&src, "t-rm");
    {
        let db = redb::Database::create(&path).expect("open raw");
        let w = db.begin_write().expect("write");
        w.open_table(tables::LEDGER)
            .expect("t")
            .remove(4u64)
            .expect("rm");
        w.commit().expect("commit");
    }
    match fault(&path) {
        LedgerFault::Entry { seq, reason } => assert_eq!(seq, 4, "{reason}"),
        other => panic!("wrong fault: {other}"),
    }
    let path = copy_to(&src, "t-paid");
    {
        let db = redb::Database::create(&path).expect("open raw");
        let w = db.begin_write().expect("write");
        w.open_table(tables::PAID)
            .expect("t")
            .remove(1u64)
            .expect("rm");
        w.commit().expect("commit");
    }
    match fault(&path) {
        LedgerFault::PaidIndex { assignment, .. } => assert_eq!(assignment, 1),
        other => panic!("wrong fault: {other}"),
    }
}
