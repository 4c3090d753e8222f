//! Ledger behaviour: double entry, refusals, pay-once, refunds, release/forfeit, verify.

mod statekit;

use compushare_manager::ledger::{Account, EntryKind, LedgerError};
use compushare_manager::persist::PersistError;
use compushare_manager::records::AssignmentState;
use compushare_manager::{Config, StoreError};
use compushare_protocol::types::Amount;
use statekit::*;

fn sum_of_balances(store: &compushare_manager::Store, accounts: &[Account]) -> i128 {
    let r = store.read().expect("read");
    accounts
        .iter()
        .map(|a| r.balance(a).expect("balance"))
        .sum()
}

#[test]
fn job_lifecycle_moves_money_exactly() {
    let config = Config {
        spendable_after: 1_000,
        ..Config::default()
    };
    let (store, _path) = store_with("lifecycle", &config);
    let bal = store
        .write(|tx| tx.grant(&CLIENT, Amount(1_000_000)))
        .expect("grant");
    assert_eq!(bal, 1_000_000);
    // 1000 photons x 2 µc = 2000 µc max cost, fee 5% = 100: escrow 2100.
    let job = create_job(&store, 1000, 10_000, b"{\"job\":1}").expect("create job");
    assert_eq!(job.escrowed, Amount(2_100));
    let r = store.read().expect("read");
    assert_eq!(
        r.balance(&Account::Client(CLIENT)).expect("b"),
        1_000_000 - 2_100
    );
    assert_eq!(r.balance(&Account::Escrow(job.id)).expect("b"), 2_100);
    assert_eq!(
        r.input(&job.input).expect("input").as_deref(),
        Some(&b"{\"job\":1}"[..])
    );
    drop(r);

    // Two assignments of 300 histories each: 600 µc each.
    let a1 = verified_assignment(&store, job.id, RIG_A, 0, 300).expect("a1");
    let a2 = verified_assignment(&store, job.id, RIG_B, 300, 300).expect("a2");
    assert_eq!(a1.payout, Amount(600));
    let p1 = pay(&store, &a1).expect("pay a1");
    assert!(!p1.spendable, "new rig: pending");
    // Paying twice is refused and changes nothing.
    let before = store.read().expect("read").ledger_len().expect("len");
    match pay(&store, &a1) {
        Err(PersistError::Ledger(LedgerError::AlreadyPaid { assignment, .. })) => {
            assert_eq!(assignment, a1.id.0)
        }
        other => panic!("second payment not refused: {other:?}"),
    }
    assert_eq!(
        store.read().expect("read").ledger_len().expect("len"),
        before
    );

    // RIG_B has enough verified histories: straight to spendable.
    store
        .write(|tx| tx.trust_verified(&RIG_B, 5_000).map(|_| ()))
        .expect("trust");
    let p2 = pay(&store, &a2).expect("pay a2");
    assert!(p2.spendable);
    let r = store.read().expect("read");
    assert_eq!(r.balance(&Account::WorkerPending(RIG_A)).expect("b"), 600);
    assert_eq!(r.balance(&Account::WorkerSpendable(RIG_B)).expect("b"), 600);
    drop(r);

    // Release is refused for RIG_A until it has 1000 verified histories (it has 300).
    assert_eq!(store.write(|tx| tx.release(&RIG_A)).expect("release"), None);
    store
        .write(|tx| tx.trust_verified(&RIG_A, 700).map(|_| ()))
        .expect("trust");
    assert_eq!(
        store.write(|tx| tx.release(&RIG_A)).expect("release"),
        Some(Amount(600))
    );

    // Finish with 1200 paid: fee 60, refund 2100 - 1200 - 60 = 840.
    let (fee, refund) = finish(&store, job.id).expect("finish");
    assert_eq!((fee, refund), (60, 840));
    let r = store.read().expect("read");
    assert_eq!(r.balance(&Account::Escrow(job.id)).expect("b"), 0);
    assert_eq!(r.balance(&Account::Fee).expect("b"), 60);
    assert_eq!(
        r.balance(&Account::Client(CLIENT)).expect("b"),
        1_000_000 - 2_100 + 840
    );
    drop(r);
    let all = [
        Account::External,
        Account::Client(CLIENT),
        Account::Escrow(job.id),
        Account::WorkerPending(RIG_A),
        Account::WorkerSpendable(RIG_A),
        Account::WorkerPending(RIG_B),
        Account::WorkerSpendable(RIG_B),
        Account::Fee,
    ];
    assert_eq!(
        sum_of_balances(&store, &all),
        0,
        "double entry sums to zero"
    );
    let summary = store.verify_ledger().expect("verify");
    assert_eq!(summary.granted, 1_000_000);
    assert!(summary.entries >= 7);
}

#[test]
fn escrow_refused_without_balance_and_above_max_price() {
    let (store, _path) = store_with("refusals", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(1_000)))
        .expect("grant");
    match create_job(&store, 1000, 10_000, b"x") {
        Err(PersistError::Ledger(LedgerError::InsufficientBalance {
            balance, needed, ..
        })) => {
            assert_eq!((balance, needed), (1_000, 2_100));
        }
        other => panic!("escrow without balance not refused: {other:?}"),
    }
    match create_job(&store, 1000, 2_099, b"x") {
        Err(PersistError::PriceAboveMax { needed, max }) => {
            assert_eq!((needed, max), (2_100, 2_099))
        }
        other => panic!("price above max not refused: {other:?}"),
    }
    // Nothing of the refused jobs was kept.
    let r = store.read().expect("read");
    assert!(r.jobs().expect("jobs").is_empty());
    assert_eq!(r.balance(&Account::Client(CLIENT)).expect("b"), 1_000);
    assert_eq!(r.ledger_len().expect("len"), 1);
    drop(r);
    store.verify_ledger().expect("verify");
}

#[test]
fn forfeit_returns_pending_to_escrow_and_refund_returns_the_rest() {
    let (store, _path) = store_with("forfeit", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(100_000)))
        .expect("grant");
    let job = create_job(&store, 1000, 100_000, b"j").expect("job");
    let a = verified_assignment(&store, job.id, RIG_A, 0, 500).expect("a");
    pay(&store, &a).expect("pay");
    assert_eq!(
        store.write(|tx| tx.pending_total(&RIG_A)).expect("p"),
        1_000
    );
    let forfeited = store
        .write(|tx| tx.forfeit_pending(&RIG_A))
        .expect("forfeit");
    assert_eq!(forfeited, Amount(1_000));
    let r = store.read().expect("read");
    assert_eq!(r.balance(&Account::WorkerPending(RIG_A)).expect("b"), 0);
    assert_eq!(r.balance(&Account::Escrow(job.id)).expect("b"), 2_100);
    assert_eq!(r.job(job.id).expect("job").map(|j| j.paid), Some(Amount(0)));
    drop(r);
    // The forfeited assignment is still never paid again.
    assert!(matches!(
        pay(&store, &a),
        Err(PersistError::Ledger(LedgerError::AlreadyPaid { .. }))
    ));
    // Nothing paid in the end: no fee, everything back.
    let (fee, refund) = finish(&store, job.id).expect("finish");
    assert_eq!((fee, refund), (0, 2_100));
    assert_eq!(
        store
            .read()
            .expect("r")
            .balance(&Account::Client(CLIENT))
            .expect("b"),
        100_000
    );
    let s = store.verify_ledger().expect("verify");
    assert_eq!(s.entries, 5, "grant, escrow, pay, forfeit, refund");
    // Entry kinds in order.
    let _ = EntryKind::Forfeit;
}

#[test]
fn forfeit_after_close_goes_back_to_the_client() {
    let (store, _path) = store_with("forfeit-closed", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(100_000)))
        .expect("grant");
    let job = create_job(&store, 1000, 100_000, b"j").expect("job");
    let a = verified_assignment(&store, job.id, RIG_A, 0, 1000).expect("a");
    pay(&store, &a).expect("pay");
    finish(&store, job.id).expect("finish");
    let client_before = store
        .read()
        .expect("r")
        .balance(&Account::Client(CLIENT))
        .expect("b");
    store
        .write(|tx| tx.forfeit_pending(&RIG_A))
        .expect("forfeit");
    let r = store.read().expect("r");
    assert_eq!(
        r.balance(&Account::Client(CLIENT)).expect("b"),
        client_before + 2_000
    );
    assert_eq!(r.balance(&Account::Escrow(job.id)).expect("b"), 0);
    drop(r);
    store.verify_ledger().expect("verify");
}

#[test]
fn unverified_assignment_is_not_paid() {
    let (store, _path) = store_with("unverified", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(100_000)))
        .expect("grant");
    let job = create_job(&store, 1000, 100_000, b"j").expect("job");
    let a = assignment(&store, job.id, RIG_A, 0, 10, AssignmentState::Issued).expect("a");
    assert!(matches!(
        pay(&store, &a),
        Err(PersistError::NotVerified { .. })
    ));
    assert_eq!(store.read().expect("r").paid_by(a.id).expect("paid"), None);
}

#[test]
fn relaxed_transactions_cannot_move_money() {
    let (store, _path) = store_with("relaxed", &Config::default());
    assert!(matches!(
        store.write_relaxed(|tx| tx.grant(&CLIENT, Amount(5))),
        Err(LedgerError::RelaxedMoney("grant"))
    ));
    store
        .write_relaxed(|tx| tx.trust_return(&RIG_A, 10, 1000).map(|_| ()))
        .expect("bookkeeping is fine");
    assert_eq!(store.read().expect("r").ledger_len().expect("len"), 0);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<compushare_manager::Store>();
}

#[test]
fn qualifying_payment_releases_earlier_pending() {
    let config = Config {
        spendable_after: 500,
        ..Config::default()
    };
    let (store, _path) = store_with("auto-release", &config);
    store
        .write(|tx| tx.grant(&CLIENT, Amount(100_000)))
        .expect("grant");
    let job = create_job(&store, 1000, 100_000, b"j").expect("job");
    // 400 verified histories: below 500, pending.
    let a1 = verified_assignment(&store, job.id, RIG_A, 0, 400).expect("a1");
    assert!(!pay(&store, &a1).expect("pay").spendable);
    // 800: spendable, and the earlier pending pay with it.
    let a2 = verified_assignment(&store, job.id, RIG_A, 400, 400).expect("a2");
    let p2 = pay(&store, &a2).expect("pay");
    assert!(p2.spendable);
    let r = store.read().expect("r");
    assert_eq!(r.balance(&Account::WorkerPending(RIG_A)).expect("b"), 0);
    assert_eq!(
        r.balance(&Account::WorkerSpendable(RIG_A)).expect("b"),
        1_600
    );
    drop(r);
    store.verify_ledger().expect("verify");
}

#[test]
fn a_second_opener_is_told_the_database_is_in_use() {
    let (store, path) = store_with("locked", &Config::default());
    match compushare_manager::Store::open(&path) {
        Err(StoreError::Locked { path: p }) => assert!(p.ends_with("manager.redb")),
        other => panic!("second open: {other:?}"),
    }
    drop(store);
    compushare_manager::Store::open(&path).expect("open after the first closed");
}

#[test]
fn id_counters_never_repeat_across_reopen() {
    let (store, path) = store_with("ids", &Config::default());
    let a = store.write(|tx| tx.allocate_job_id()).expect("id");
    let b = store
        .write(|tx| tx.reserve_assignment_ids(1))
        .expect("id")
        .start;
    // An aborted transaction gives its number back; a committed one never repeats.
    let aborted: Result<(), StoreError> = store.write(|tx| {
        tx.allocate_job_id()?;
        Err(StoreError::Overflow("test abort"))
    });
    assert!(aborted.is_err());
    drop(store);
    let store = compushare_manager::Store::open(&path).expect("reopen");
    let a2 = store.write(|tx| tx.allocate_job_id()).expect("id");
    let b2 = store
        .write(|tx| tx.reserve_assignment_ids(1))
        .expect("id")
        .start;
    assert_eq!(a2.0, a.0 + 1);
    assert_eq!(b2, b + 1);
}

#[test]
fn a_jobs_assignments_come_from_its_index_only() {
    let (store, _path) = store_with("job-index", &Config::default());
    store
        .write(|tx| tx.grant(&CLIENT, Amount(100_000)))
        .expect("grant");
    let j1 = create_job(&store, 1000, 100_000, b"a").expect("job");
    let j2 = create_job(&store, 1000, 100_000, b"b").expect("job");
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(
            verified_assignment(&store, j1.id, RIG_A, i * 10, 10)
                .expect("a")
                .id,
        );
        verified_assignment(&store, j2.id, RIG_B, i * 10, 10).expect("b");
    }
    // Rewriting a record (a new state) keeps one index entry.
    let mut a = store
        .read()
        .expect("r")
        .assignment(want[0])
        .expect("a")
        .expect("a");
    a.state = AssignmentState::Abandoned;
    store.write(|tx| tx.put_assignment(&a)).expect("put");
    let got: Vec<_> = store
        .read()
        .expect("r")
        .job_assignments(j1.id)
        .expect("index")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(got, want);
    assert!(store
        .read()
        .expect("r")
        .job_assignments(compushare_protocol::types::JobId(99))
        .expect("index")
        .is_empty());
}
