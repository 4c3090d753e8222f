//! Trust through the store: promotion at the threshold, demotion on error, count reset,
//! ratings, persistence across reopen.

mod statekit;

use compushare_manager::trust::{ErrorKind, EventKind, Rater, TrustError};
use compushare_manager::{Config, Store};
use compushare_protocol::types::{AssignmentId, TrustLevel};
use statekit::*;

#[test]
fn promote_demote_reset_and_persist() {
    let config = Config {
        promote_after: 1_000,
        ..Config::default()
    };
    let (store, path) = store_with("trust", &config);
    let r = store.write(|tx| tx.rig_or_join(&RIG_A)).expect("join");
    assert_eq!(r.trust, TrustLevel::Untrusted);
    let r = store.write(|tx| tx.trust_verified(&RIG_A, 999)).expect("v");
    assert_eq!(r.trust, TrustLevel::Untrusted);
    let r = store.write(|tx| tx.trust_verified(&RIG_A, 1)).expect("v");
    assert_eq!(r.trust, TrustLevel::Trusted);
    let r = store
        .write(|tx| tx.trust_error(&RIG_A, ErrorKind::BadProof, Some(AssignmentId(9))))
        .expect("e");
    assert_eq!(r.trust, TrustLevel::Untrusted);
    assert_eq!(r.consecutive_verified, 0);
    assert_eq!(r.histories_verified, 1_000);
    let r = store.write(|tx| tx.trust_verified(&RIG_A, 999)).expect("v");
    assert_eq!(
        r.trust,
        TrustLevel::Untrusted,
        "count restarted after the error"
    );
    store
        .write(|tx| tx.trust_late(&RIG_A, AssignmentId(10)).map(|_| ()))
        .expect("late");
    store
        .write(|tx| tx.trust_return(&RIG_A, 2_000, 4_000_000).map(|_| ()))
        .expect("ret");
    drop(store);

    let store = Store::open(&path).expect("reopen");
    let r = store
        .read()
        .expect("r")
        .rig(&RIG_A)
        .expect("rig")
        .expect("exists");
    assert_eq!(r.trust, TrustLevel::Untrusted);
    assert_eq!((r.errors, r.late, r.consecutive_verified), (1, 1, 999));
    assert_eq!(r.returns.mean(), Some(500));
    let kinds: Vec<_> = r.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&EventKind::Joined));
    assert!(kinds.contains(&EventKind::Promoted));
}

#[test]
fn ratings_one_per_rater() {
    let (store, _path) = store_with("ratings", &Config::default());
    store
        .write(|tx| tx.rate(&RIG_B, &[1; 32], Rater::Client, 5))
        .expect("rate");
    store
        .write(|tx| tx.rate(&RIG_B, &[2; 32], Rater::Client, 3))
        .expect("rate");
    store
        .write(|tx| tx.rate(&RIG_B, &[3; 32], Rater::Worker, 2))
        .expect("rate");
    // Rater 1 changes its mind: replaced, not added.
    let r = store
        .write(|tx| tx.rate(&RIG_B, &[1; 32], Rater::Client, 1))
        .expect("rate");
    assert_eq!(r.client_ratings.count, 2);
    assert_eq!(r.client_ratings.mean(), Some(2.0));
    assert_eq!(r.worker_ratings.mean(), Some(2.0));
    for bad in [0u8, 6] {
        assert!(matches!(
            store.write(|tx| tx.rate(&RIG_B, &[4; 32], Rater::Client, bad)),
            Err(TrustError::BadRating(_))
        ));
    }
}
