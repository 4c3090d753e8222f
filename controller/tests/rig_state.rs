//! STATE_DIR payment record: survives restarts, ignores repeated notices and torn lines,
//! and its loader survives arbitrary bytes.

use compushare_controller::transport::state::{parse_record, Payment, Payments, PAYMENTS_FILE};
use compushare_protocol::types::{Amount, AssignmentId};
use proptest::prelude::*;

fn dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("rig-state-{tag}-{}-{nanos}", std::process::id()))
}

fn pay(a: u64, amount: u64, spendable: bool) -> Payment {
    Payment {
        unix_s: 1_700_000_000 + a,
        assignment: AssignmentId(a),
        amount: Amount(amount),
        spendable,
    }
}

#[test]
fn payments_survive_restart_once_each() {
    let d = dir("restart");
    {
        let mut p = Payments::open(&d).unwrap();
        assert!(p.record(pay(1, 100, false)).unwrap());
        assert!(p.record(pay(2, 50, true)).unwrap());
        assert!(!p.record(pay(1, 100, false)).unwrap(), "repeat ignored");
        assert_eq!((p.total(), p.spendable(), p.count_paid()), (150, 50, 2));
    }
    // A torn line from a power cut is skipped.
    let path = d.join(PAYMENTS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"1700000003 3 7");
    std::fs::write(&path, &bytes).unwrap();
    let mut p = Payments::open(&d).unwrap();
    assert_eq!((p.total(), p.spendable(), p.count_paid()), (150, 50, 2));
    assert!(
        !p.record(pay(2, 50, true)).unwrap(),
        "repeat after restart ignored"
    );
    assert_eq!(parse_record(&std::fs::read(&path).unwrap()).len(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

proptest! {
    #[test]
    fn record_loader_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let got = parse_record(&bytes);
        prop_assert!(got.len() <= bytes.len() / 8 + 1);
    }

    #[test]
    fn record_loader_reads_what_was_written(
        entries in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 0..20),
    ) {
        let mut text = String::new();
        for (a, amount, s) in &entries {
            text.push_str(&format!("{} {a} {amount} {}\n", 5, u8::from(*s)));
        }
        let got = parse_record(text.as_bytes());
        prop_assert_eq!(got.len(), entries.len());
        for (g, (a, amount, s)) in got.iter().zip(&entries) {
            prop_assert_eq!((g.assignment.0, g.amount.0, g.spendable), (*a, *amount, *s));
        }
    }
}
