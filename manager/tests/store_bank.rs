//! The market's `Bank` on the persistent ledger: same refusals as the in-memory bank, and a
//! payment made before a restart is still refused after it.

mod statekit;

use std::sync::Arc;

use compushare_manager::escrow::{Bank, BankError};
use compushare_manager::store_bank::StoreBank;
use compushare_manager::{Config, Store};
use compushare_protocol::types::{AssignmentId, JobId};
use statekit::*;

#[test]
fn escrow_pay_close_and_refusals_survive_restart() {
    let (store, path) = store_with("bank", &Config::default());
    let (client, worker) = ([1; 32], [2; 32]);
    let mut b = StoreBank::new(store);
    assert_eq!(
        b.escrow(&client, JobId(1), 10),
        Err(BankError::InsufficientFunds {
            balance: 0,
            needed: 10
        })
    );
    b.grant(&client, 100).expect("grant");
    b.escrow(&client, JobId(1), 60).expect("escrow");
    b.pay(JobId(1), AssignmentId(1), &worker, 20, true)
        .expect("pay");
    assert_eq!(
        b.pay(JobId(1), AssignmentId(1), &worker, 20, true),
        Err(BankError::AlreadyPaid(1))
    );
    assert_eq!(
        b.pay(JobId(1), AssignmentId(2), &worker, 50, true),
        Err(BankError::EscrowShort {
            job: 1,
            held: 40,
            amount: 50
        })
    );
    b.pay(JobId(1), AssignmentId(3), &worker, 5, false)
        .expect("pay pending");
    assert_eq!(b.balance(&worker).unwrap(), 20);
    assert_eq!(b.held(&worker).expect("held"), 5);
    drop(b);

    // Restart: the ledger remembers.
    let store = Arc::new(Store::open(&path).expect("reopen"));
    let mut b = StoreBank::new(Arc::clone(&store));
    assert_eq!(
        b.pay(JobId(1), AssignmentId(1), &worker, 20, true),
        Err(BankError::AlreadyPaid(1))
    );
    assert_eq!(b.escrowed(JobId(1)).expect("escrowed"), 35);
    // A caught worker's pending pay goes back to the escrow; a qualified one's is released.
    assert_eq!(b.forfeit(&worker).expect("forfeit"), 5);
    assert_eq!(b.escrowed(JobId(1)).expect("escrowed"), 40);
    b.pay(JobId(1), AssignmentId(4), &worker, 7, false)
        .expect("pay pending");
    assert_eq!(b.release(&worker).expect("release"), 7);
    assert_eq!(b.held(&worker).expect("held"), 0);
    assert_eq!(b.balance(&worker).unwrap(), 27);
    assert_eq!(b.close(JobId(1), &client, 3), Ok(30));
    assert_eq!(b.balance(&client).unwrap(), 40 + 30);
    assert_eq!(b.escrowed(JobId(1)).expect("escrowed"), 0);
    let s = store.verify_ledger().expect("verify");
    assert_eq!(
        s.entries, 9,
        "grant, escrow, pay, pay, forfeit, pay, release, fee, refund"
    );
}
