//! Crash safety: a child process running ledger operations in a loop is killed with SIGKILL at
//! random moments; after each kill the database reopens, the ledger verifies, payments match
//! the paid index and the assignments' own flags, and no assignment is paid twice.

mod statekit;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_manager::escrow::{Bank, BankError};
use compushare_manager::ledger::{EntryKind, LedgerError};
use compushare_manager::persist::PersistError;
use compushare_manager::store_bank::StoreBank;
use compushare_manager::{Config, Store};
use compushare_protocol::types::{Amount, AssignmentId, JobId};
use statekit::*;

const CHILD_ENV: &str = "COMPUSHARE_MANAGER_CRASH_CHILD_DB";
/// Exit code of the child when a second payment was not refused.
const DOUBLE_PAY: i32 = 3;

/// Not a test on its own: the body of the child process (does nothing unless spawned by
/// `kill_9_at_random_moments`).
#[test]
fn crash_child_loop() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(Store::open(Path::new(&path)).expect("child: open"));
    let mut bank = StoreBank::new(Arc::clone(&store));
    let mut round = 0u64;
    loop {
        round += 1;
        store
            .write(|tx| tx.grant(&CLIENT, Amount(10_000)))
            .expect("grant");
        let job = create_job(&store, 1000, 10_000, &round.to_le_bytes()).expect("job");
        for (i, rig) in [RIG_A, RIG_B, RIG_A, RIG_B].into_iter().enumerate() {
            let a = verified_assignment(&store, job.id, rig, i as u64 * 250, 250).expect("a");
            // Pay and count the rig's histories in one transaction (the market's path).
            pay(&store, &a).expect("pay");
            match pay(&store, &a) {
                Err(PersistError::Ledger(LedgerError::AlreadyPaid { .. })) => {}
                _ => std::process::exit(DOUBLE_PAY),
            }
        }
        if round.is_multiple_of(3) {
            store
                .write(|tx| tx.forfeit_pending(&RIG_A))
                .expect("forfeit");
        }
        store.write(|tx| tx.release(&RIG_B)).expect("release");
        // The market's path: the same ledger through `StoreBank`, without job records.
        let bank_job = JobId(1_000_000 + round);
        bank.escrow(&CLIENT, bank_job, 3_000).expect("bank escrow");
        for _ in 0..3 {
            let a = AssignmentId(
                store
                    .write(|tx| tx.reserve_assignment_ids(1))
                    .expect("id")
                    .start,
            );
            bank.pay(bank_job, a, &RIG_B, 900, round.is_multiple_of(2))
                .expect("bank pay");
            match bank.pay(bank_job, a, &RIG_B, 900, true) {
                Err(BankError::AlreadyPaid(_)) => {}
                _ => std::process::exit(DOUBLE_PAY),
            }
        }
        bank.close(bank_job, &CLIENT, 100).expect("bank close");
        finish(&store, job.id).expect("finish");
    }
}

fn rand_between(state: &mut u64, lo: u64, hi: u64) -> u64 {
    // xorshift64*: enough to scatter kill times.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    lo + r % (hi - lo)
}

fn check(path: &Path) -> u64 {
    let store = Store::open(path).expect("reopen after kill");
    let summary = store.verify_ledger().expect("ledger verifies after kill");
    let r = store.read().expect("read");
    for a in r.assignments().expect("assignments") {
        let indexed = r.paid_by(a.id).expect("paid index");
        assert_eq!(
            a.paid,
            indexed.is_some(),
            "assignment {} flag vs index",
            a.id.0
        );
    }
    for j in r.jobs().expect("jobs") {
        if j.state.is_closed() {
            assert_eq!(
                r.balance(&compushare_manager::Account::Escrow(j.id))
                    .expect("b"),
                0,
                "closed job {} keeps escrow",
                j.id.0
            );
        }
    }
    summary.entries
}

#[test]
fn kill_9_at_random_moments() {
    let dir = temp_dir("crash");
    let path: PathBuf = dir.join("manager.redb");
    let config = Config {
        spendable_after: 2_000,
        ..Config::default()
    };
    drop(Store::init(&path, &config).expect("init"));
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut last = 0u64;
    let mut grew = 0;
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_loop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        // Let it get going, then kill at a random moment.
        let start = Instant::now();
        let wait = Duration::from_millis(rand_between(&mut seed, 150, 700));
        while start.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("round {round}: child exited by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_ne!(
            status.code(),
            Some(DOUBLE_PAY),
            "a second payment was accepted"
        );
        let entries = check(&path);
        assert!(entries >= last, "ledger shrank");
        if entries > last {
            grew += 1;
        }
        last = entries;
    }
    assert!(grew >= 4, "the child made progress in only {grew} rounds");
    // Both paths ran: job-record payments and the market's bank payments.
    let store = Store::open(&path).expect("open");
    let entries = store
        .read()
        .expect("read")
        .entries(0, usize::MAX)
        .expect("entries");
    let pays = |bank: bool| {
        entries
            .iter()
            .filter(|e| e.entry.kind == EntryKind::Pay)
            .filter(|e| e.entry.job.is_some_and(|j| (j.0 >= 1_000_000) == bank))
            .count()
    };
    assert!(
        pays(false) > 0 && pays(true) > 0,
        "{} / {}",
        pays(false),
        pays(true)
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
