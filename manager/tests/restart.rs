//! The market's state lives in the store and survives restarts: a manager stopped between
//! "results verified" and "job finished" completes the job on restart without paying again;
//! trust records, ratings and a partly verified job come back; job and assignment numbers
//! strictly increase across restarts. Each restart reopens the same database file, as a
//! process restarted after `kill -9` would (redb commits are durable when they return).
//! A rig's standing (passed duplicate, public counters) and its results' payout key survive
//! too: a restart changes nothing a rig or a client can observe.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use compushare_kernels::transport::simulate;
use compushare_kernels::transport::tally::Tally;
use compushare_manager::ledger::{Account, EntryKind};
use compushare_manager::market::{Market, MarketConfig};
use compushare_manager::persist::{JobTerms, Persist, Recorded, Verified};
use compushare_manager::records::{AssignmentRecord, AssignmentState, JobState, Verification};
use compushare_manager::{Config, Store};
use compushare_protocol::msg::JobState as WireState;
use compushare_protocol::types::{Amount, AssignmentId, JobId, Mode, PhotonRange, PublicKey};

const SEED: u64 = 99;
const PHOTONS: u64 = 3_000;
const CLIENT: PublicKey = [1; 32];
const RIG: PublicKey = [2; 32];
const PAYOUT: PublicKey = [3; 32];
/// Cost 5 units per history at 1 micro-credit per unit: 5 per history.
const COST_MILLI: u64 = 5_000;
const PPH: u64 = 5;
const GRANT: u64 = 1_000_000_000;

fn db(name: &str) -> PathBuf {
    common::fresh_dir(&format!("restart-{name}")).join("manager.redb")
}

fn open(path: &Path) -> Arc<Store> {
    Arc::new(Store::init(path, &Config::default()).unwrap().0)
}

fn cfg() -> MarketConfig {
    MarketConfig::default()
}

fn fee(paid: u64) -> u64 {
    paid * cfg().fee_bp / 10_000
}

fn accept(p: &Persist) -> JobId {
    let work = PHOTONS * PPH;
    let terms = JobTerms {
        client: CLIENT,
        photons: PHOTONS,
        seed: SEED,
        mode: Mode::Cheapest,
        max_price: Amount(u64::MAX),
        cost_per_history_milli: COST_MILLI,
        price_per_unit: Amount(1),
        escrow: Amount(work + fee(work)),
        fee_bp: cfg().fee_bp,
        // This escrow carries no check allowance.
        check_allowance_permille: 0,
    };
    p.accept_job(&terms, common::JOB.as_bytes()).unwrap()
}

fn job_spec() -> compushare_kernels::transport::job::Job {
    let mut j = common::job_for(common::JOB.as_bytes(), SEED);
    j.photons = PHOTONS;
    j
}

fn record(id: AssignmentId, job: JobId, start: u64, count: u64) -> AssignmentRecord {
    AssignmentRecord {
        id,
        job,
        rig: RIG,
        payout_to: PAYOUT,
        device: 0,
        photons: PhotonRange { start, count },
        seed: SEED,
        issued_unix_s: 0,
        deadline_unix_s: 0,
        payout: Amount(count * PPH),
        state: AssignmentState::Verified,
        commit: None,
        verification: Verification::SamplePassed { k: 1 },
        duplicate_of: None,
        paid: false,
    }
}

/// The next assignment number, reserving a block first as the market does when it opens.
fn next_id(p: &mut Persist) -> AssignmentId {
    if let Some(id) = p.next_assignment_id() {
        return id;
    }
    let block = p.reserve_ids();
    p.ids_reserved(block).unwrap();
    p.next_assignment_id().unwrap()
}

/// Records `start..start+count` of `job` as verified on `RIG` (promoted after
/// `promote_after` histories).
fn verify(p: &mut Persist, job: JobId, start: u64, count: u64, promote_after: u64) -> Recorded {
    let id = next_id(p);
    let tally = simulate(&job_spec(), start..start + count, 2, None).unwrap();
    p.verified(
        &[],
        &Verified {
            record: record(id, job, start, count),
            payout_to: PAYOUT,
            tally: tally.canonical_bytes(),
            elapsed_ms: 500,
            cost_milli: count * COST_MILLI,
            trust_histories: count,
            promote_after,
            spendable_after: u64::MAX,
            primary: true,
        },
    )
    .unwrap()
}

fn full_digest() -> [u8; 32] {
    simulate(&job_spec(), 0..PHOTONS, 2, None).unwrap().digest()
}

fn pays(store: &Store) -> (u64, usize) {
    let read = store.read().unwrap();
    let entries = read.entries(0, usize::MAX).unwrap();
    let pays: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.kind == EntryKind::Pay)
        .collect();
    (pays.iter().map(|e| e.entry.amount).sum(), pays.len())
}

#[test]
fn stopped_between_verified_and_finished_completes_without_paying_again() {
    let path = db("finish");
    let job;
    let stale;
    {
        let store = open(&path);
        store.write(|tx| tx.grant(&CLIENT, Amount(GRANT))).unwrap();
        let mut p = Persist::new(Arc::clone(&store));
        job = accept(&p);
        // An assignment still out when the manager stops: abandoned on restart.
        stale = next_id(&mut p);
        let mut out = record(stale, job, 0, 10);
        out.state = AssignmentState::Issued;
        out.verification = Verification::Pending;
        p.records(&[out]).unwrap();
        let first = verify(&mut p, job, 0, 1_000, 2_500);
        assert_eq!(first.rig.histories_verified, 1_000);
        assert!(!first.promoted);
        verify(&mut p, job, 1_000, 1_000, 2_500);
        let last = verify(&mut p, job, 2_000, 1_000, 2_500);
        assert!(
            last.promoted,
            "3000 consecutive verified histories promote at 2500"
        );
        // Paid per verified result, before the job finished.
        assert_eq!(pays(&store), (PHOTONS * PPH, 3));
        let read = store.read().unwrap();
        assert_eq!(read.job(job).unwrap().unwrap().state, JobState::Running);
        assert_eq!(read.job(job).unwrap().unwrap().photons_verified, PHOTONS);
        // Stopped here: nothing finished the job.
    }
    let entries_after_finish;
    {
        let store = open(&path);
        // The operator lowered the fee while the manager was down: the job keeps the rate it
        // was accepted (and escrowed) at.
        let lowered = MarketConfig {
            fee_bp: cfg().fee_bp / 5,
            ..cfg()
        };
        let mut m = Market::open(lowered, Arc::clone(&store)).unwrap();
        let read = store.read().unwrap();
        let rec = read.job(job).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Done, "the restart finished the job");
        assert_eq!(rec.result, Some(full_digest()));
        let merged = read.client_result(job).unwrap().unwrap();
        assert_eq!(
            Tally::from_canonical_bytes(&merged).unwrap().digest(),
            full_digest(),
            "merged result differs from a local run"
        );
        assert_eq!(
            read.assignment(stale).unwrap().unwrap().state,
            AssignmentState::Abandoned
        );
        // Paid once: no new payment, fee on the work at the job's own rate, the rest refunded.
        assert_eq!(pays(&store), (PHOTONS * PPH, 3));
        let work = PHOTONS * PPH;
        assert_eq!(read.balance(&Account::Escrow(job)).unwrap(), 0);
        assert_eq!(read.balance(&Account::Fee).unwrap(), i128::from(fee(work)));
        assert_eq!(
            read.balance(&Account::Client(CLIENT)).unwrap(),
            i128::from(GRANT - work - fee(work))
        );
        assert_eq!(
            read.balance(&Account::WorkerPending(PAYOUT)).unwrap(),
            i128::from(work)
        );
        drop(read);
        store.verify_ledger().unwrap();
        // The client rates the rig; the client sees its job done.
        m.rate(&CLIENT, job, &RIG, 4).unwrap();
        assert!(m.rate(&CLIENT, job, &[9; 32], 4).is_err());
        assert_eq!(m.status(&CLIENT, job).unwrap().state, WireState::Done);
        entries_after_finish = store.read().unwrap().ledger_len().unwrap();
    }
    {
        // Another restart repeats nothing and keeps everything.
        let store = open(&path);
        let mut m = Market::open(cfg(), Arc::clone(&store)).unwrap();
        assert_eq!(
            store.read().unwrap().ledger_len().unwrap(),
            entries_after_finish
        );
        store.verify_ledger().unwrap();
        let rec = m.rig_record(&RIG).expect("stored rig record");
        assert!(rec.trusted, "trust survives a restart");
        assert_eq!(
            (rec.verified, rec.streak, rec.errors),
            (PHOTONS, PHOTONS, 0)
        );
        assert!(rec.s_per_milli.is_some(), "time to return / cost survives");
        assert_eq!(rec.ratings, vec![4], "ratings survive a restart");
        let st = m.status(&CLIENT, job).unwrap();
        assert_eq!((st.state, st.photons_done), (WireState::Done, PHOTONS));
        assert_eq!(st.spent, Amount(PHOTONS * PPH));
        assert_eq!(
            Tally::from_canonical_bytes(&m.client_result(&CLIENT, job).unwrap())
                .unwrap()
                .digest(),
            full_digest()
        );
        assert!(m.status(&[8; 32], job).is_none(), "another client's job");
        // Rating again replaces the client's rating (one per client and rig).
        m.rate(&CLIENT, job, &RIG, 2).unwrap();
        assert_eq!(m.rig_record(&RIG).unwrap().ratings, vec![2]);
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn restart_resumes_a_partly_verified_job() {
    let path = db("partial");
    let job;
    {
        let store = open(&path);
        store.write(|tx| tx.grant(&CLIENT, Amount(GRANT))).unwrap();
        let mut p = Persist::new(Arc::clone(&store));
        job = accept(&p);
        verify(&mut p, job, 1_000, 1_000, u64::MAX);
    }
    let store = open(&path);
    let m = Market::open(cfg(), Arc::clone(&store)).unwrap();
    let st = m.status(&CLIENT, job).unwrap();
    assert_eq!(st.state, WireState::Running);
    assert_eq!((st.photons_done, st.photons_total), (1_000, PHOTONS));
    let rec = m.rig_record(&RIG).unwrap();
    assert!(!rec.trusted);
    assert_eq!(rec.verified, 1_000);
    assert_eq!(rec.paid, 1_000 * PPH, "pay counter survives a restart");
    let kept = store.read().unwrap().assignments().unwrap();
    assert!(
        kept.iter()
            .filter(|a| a.state == AssignmentState::Verified)
            .all(|a| a.payout_to == PAYOUT),
        "held results keep their payout key, not the rig key"
    );
    assert_eq!(pays(&store), (1_000 * PPH, 1));
    store.verify_ledger().unwrap();
    drop(m);
    drop(store);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn numbers_strictly_increase_across_restarts() {
    let path = db("ids");
    let mut last_job = 0u64;
    let mut last_assignment = 0u64;
    for _ in 0..3 {
        let store = open(&path);
        store.write(|tx| tx.grant(&CLIENT, Amount(GRANT))).unwrap();
        // The market itself takes numbers from the same counters.
        drop(Market::open(cfg(), Arc::clone(&store)).unwrap());
        let mut p = Persist::new(Arc::clone(&store));
        let job = accept(&p);
        assert!(job.0 > last_job, "job {} after {last_job}", job.0);
        last_job = job.0;
        for _ in 0..3 {
            let id = next_id(&mut p);
            assert!(
                id.0 > last_assignment,
                "assignment {} after {last_assignment}",
                id.0
            );
            last_assignment = id.0;
        }
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A server on `store` for [`standing_survives_a_restart`]: every untrusted rig's first result
/// is duplicated (on the manager's engine: no rig is trusted), no other duplicates.
async fn serve(store: Arc<Store>) -> compushare_manager::server::Running {
    let market = MarketConfig {
        duplicate_ppm: 0,
        spendable_after: 1_000,
        ..common::market(50)
    };
    common::serve_on(store, 2, market).await
}

/// Runs a job of `client` (an identity saved at that path) to completion.
async fn run_job(m: &compushare_manager::server::Running, client: &Path, seed: u64) {
    use compushare_client::Client;
    let key = m.shared.identity.public();
    let me = compushare_protocol::secure::Identity::load(client).unwrap();
    let mut c = Client::connect(m.addr, me, &key).await.unwrap();
    let job = common::submit(&mut c, seed, 4_000).await;
    common::wait_done(&mut c, job, std::time::Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_survives_a_restart() {
    use common::{Behaviour, ScriptedRig};
    use compushare_protocol::secure::Identity;
    let path = db("standing");
    let keys = path.parent().unwrap();
    let (client_key, rig_key) = (keys.join("client.key"), keys.join("rig.key"));
    let client = Identity::generate().unwrap();
    client.save_new(&client_key).unwrap();
    Identity::generate().unwrap().save_new(&rig_key).unwrap();
    let rig_id = || Identity::load(&rig_key).unwrap();
    let store = open(&path);
    store
        .write(|tx| tx.grant(&client.public(), Amount(GRANT)))
        .unwrap();

    // Before: an honest rig passes its first duplicate and is paid; a fabricator is caught.
    let m = serve(Arc::clone(&store)).await;
    let key = m.shared.identity.public();
    let honest = ScriptedRig::start_as(m.addr, key, "honest", Behaviour::honest(), rig_id()).await;
    let cheat = ScriptedRig::start(
        m.addr,
        key,
        "cheat",
        Behaviour {
            fabricate_every: Some(1),
            ..Behaviour::honest()
        },
    )
    .await;
    run_job(&m, &client_key, 1).await;
    let (h, c) = (honest.report(), cheat.report());
    let before: Vec<_> = [h.key, c.key]
        .iter()
        .map(|k| m.shared.market().rig_record(k).unwrap())
        .collect();
    assert!(
        m.shared.market().stats.duplicates >= 1,
        "first result duplicated"
    );
    assert!(before[0].paid > 0);
    assert_eq!(
        before[0].paid,
        h.payments.iter().map(|p| p.1 .0).sum::<u64>()
    );
    assert!(before[1].errors >= 1, "the fabricator was caught");
    m.stop();
    drop((honest, cheat));
    drop(m);

    // After: a new market on the same store shows the same records before the rig is back...
    let m = serve(Arc::clone(&store)).await;
    for (k, b) in [h.key, c.key].iter().zip(&before) {
        let a = m.shared.market().rig_record(k).unwrap();
        assert_eq!(
            (a.trusted, a.verified, a.streak, a.errors, a.late),
            (b.trusted, b.verified, b.streak, b.errors, b.late)
        );
        assert_eq!(
            (a.demotions, a.paid, a.forfeited),
            (b.demotions, b.paid, b.forfeited),
            "public counters survive a restart"
        );
    }
    // ...and the rig, back with the same key, is not duplicated again: its pay is spendable.
    let key = m.shared.identity.public();
    let honest = ScriptedRig::start_as(m.addr, key, "honest", Behaviour::honest(), rig_id()).await;
    run_job(&m, &client_key, 2).await;
    assert_eq!(
        m.shared.market().stats.duplicates,
        0,
        "a rig that passed a duplicate is not duplicated again after a restart"
    );
    let r = honest.report();
    assert!(!r.payments.is_empty());
    assert!(
        r.payments.iter().all(|p| p.2),
        "pay after a restart is spendable at once: {:?}",
        r.payments
    );
    let after = m.shared.market().rig_record(&h.key).unwrap();
    assert_eq!(
        after.paid,
        before[0].paid + r.payments.iter().map(|p| p.1 .0).sum::<u64>()
    );
    m.stop();
    drop(honest);
    drop(m);
    store.verify_ledger().unwrap();
    let _ = std::fs::remove_dir_all(keys);
}

/// Issue 12: after a restart no rig is connected yet, and `try_finish` used to skip the
/// duplicate rule for rigs it did not know: a job whose only contributor was untrusted and
/// had never passed a duplicate finished on restart, unchecked. Seen failing on the old code:
/// the job was `Done` right after `Market::open`. Now the rig's stored standing decides: a
/// duplicate runs on the manager's engine first, and the job finishes once it matched.
#[test]
fn a_restart_does_not_finish_a_job_whose_untrusted_rig_never_passed_a_duplicate() {
    let path = db("dup-hole");
    let job;
    {
        let store = open(&path);
        store.write(|tx| tx.grant(&CLIENT, Amount(GRANT))).unwrap();
        let mut p = Persist::new(Arc::clone(&store));
        job = accept(&p);
        for start in [0, 1_000, 2_000] {
            let r = verify(&mut p, job, start, 1_000, u64::MAX);
            assert!(!r.promoted && !r.rig.dup_passed);
        }
    }
    let store = open(&path);
    let mut m = Market::open(cfg(), Arc::clone(&store)).unwrap();
    let state = store.read().unwrap().job(job).unwrap().unwrap().state;
    assert_eq!(state, JobState::Running, "finished without a duplicate");
    let work = m.tick(std::time::Instant::now());
    let dup = work
        .into_iter()
        .find_map(|w| match w {
            compushare_manager::market::Task::Duplicate {
                assignment, range, ..
            } => Some((assignment, range)),
            _ => None,
        })
        .expect("a duplicate of the unchecked rig's result is run");
    // The manager's engine agrees: the job finishes, merged to the local digest.
    let digest = simulate(&job_spec(), dup.1.start..dup.1.start + dup.1.count, 2, None)
        .unwrap()
        .digest();
    let more = m.duplicated(dup.0, Ok(digest));
    assert!(more.is_empty());
    // Its merge and settlement commit off the market's lock (nobody else shares it here).
    assert!(m.commit_planned().is_empty());
    let read = store.read().unwrap();
    let rec = read.job(job).unwrap().unwrap();
    assert_eq!(rec.state, JobState::Done);
    assert_eq!(rec.result, Some(full_digest()));
    assert!(read.rig(&RIG).unwrap().unwrap().dup_passed);
}

/// Issue 12 (no blocking work under the market's lock): a job's merge and settlement, like
/// every durable write of the market, used to be committed while the market's lock was held,
/// so while a commit waited for the disk no rig and no client was answered. Now the market
/// decides under the lock and the journal commits off it, in order. Here another job's slow
/// commit (the store's one write transaction, held open) delays the settlement of a job, and
/// a client's status read is answered meanwhile (the job not yet done: nothing is told
/// before the settlement is durable); released, the job is done. Seen failing by committing
/// under the lock (`commit_planned` inside the locked section, as the old code did): the
/// status read got no answer in 60 s.
#[test]
fn the_market_answers_while_a_settlement_waits_for_the_disk() {
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    let path = db("lock");
    let job;
    {
        let store = open(&path);
        store.write(|tx| tx.grant(&CLIENT, Amount(GRANT))).unwrap();
        let mut p = Persist::new(Arc::clone(&store));
        job = accept(&p);
        for start in [0, 1_000, 2_000] {
            verify(&mut p, job, start, 1_000, u64::MAX);
        }
    }
    let store = open(&path);
    let mut m = Market::open(cfg(), Arc::clone(&store)).unwrap();
    // The rig never passed a duplicate: its result is duplicated, and the job finishes once
    // the duplicate matched.
    let (dup, range) = m
        .tick(std::time::Instant::now())
        .into_iter()
        .find_map(|w| match w {
            compushare_manager::market::Task::Duplicate {
                assignment, range, ..
            } => Some((assignment, range)),
            _ => None,
        })
        .expect("a duplicate of the unchecked rig's result");
    let digest = simulate(&job_spec(), range.start..range.start + range.count, 2, None)
        .unwrap()
        .digest();
    let market = Arc::new(Mutex::new(m));

    // Another job's slow commit holds the store's write transaction until released.
    let (entered, entered_rx) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let s = Arc::clone(&store);
    let slow = std::thread::spawn(move || {
        s.write(|tx| {
            tx.grant(&[7; 32], Amount(1))?;
            entered.send(()).unwrap();
            let _ = release_rx.recv();
            Ok::<_, compushare_manager::ledger::LedgerError>(())
        })
    });
    entered_rx.recv().unwrap();

    // The duplicate's outcome finishes the job, as a node's task does: decided under the
    // lock, committed off it.
    let (locked, locked_rx) = mpsc::channel();
    let mk = Arc::clone(&market);
    let finisher = std::thread::spawn(move || {
        let mut m = mk.lock().unwrap();
        locked.send(()).unwrap();
        let mut work = m.duplicated(dup, Ok(digest));
        let journal = Arc::clone(m.journal());
        drop(m);
        work.extend(journal.drain(|w| mk.lock().unwrap().applied(w)));
        work
    });
    locked_rx.recv().unwrap();

    // A client's status read while the settlement waits for the disk.
    let (answer, answer_rx) = mpsc::channel();
    let mk = Arc::clone(&market);
    std::thread::spawn(move || {
        let st = mk.lock().unwrap().status(&CLIENT, job);
        let _ = answer.send(st);
    });
    let st = answer_rx.recv_timeout(Duration::from_secs(60));
    release.send(()).unwrap();
    let st = st.expect("no answer while a commit was waiting: the market's lock was held");
    assert_ne!(
        st.expect("the client's job").state,
        WireState::Done,
        "told done before the settlement was durable"
    );

    slow.join().unwrap().unwrap();
    assert!(finisher.join().unwrap().is_empty());
    let rec = store.read().unwrap().job(job).unwrap().unwrap();
    assert_eq!(rec.state, JobState::Done);
    assert_eq!(rec.result, Some(full_digest()));
    let st = market.lock().unwrap().status(&CLIENT, job).unwrap();
    assert_eq!(st.state, WireState::Done);
}

/// A client's job waits for its escrow's commit off the market's lock: while the database's
/// write transaction is held by another writer, a submit waiting for its commit does not stop
/// another client's status read from being answered; once the writer lets go, the job is
/// accepted and offered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submit_waiting_for_its_escrow_leaves_the_market_answering() {
    use compushare_client::Client;
    use compushare_protocol::secure::Identity;
    use std::sync::mpsc;
    use std::time::Duration;

    let me = Identity::generate().unwrap();
    let me_key = me.public();
    let other = Identity::generate().unwrap();
    let store = common::store_granting(&me_key, GRANT);
    store
        .write(|tx| tx.grant(&other.public(), Amount(GRANT)))
        .unwrap();
    let m = common::serve_on(Arc::clone(&store), 1, common::market(300)).await;
    let (addr, key) = (m.addr, m.shared.identity.public());
    let mut other_c = Client::connect(addr, other, &key).await.unwrap();
    let first = common::submit(&mut other_c, 1, 2_000).await;

    // Another writer holds the store's write transaction until released.
    let (entered, entered_rx) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let s = Arc::clone(&store);
    let slow = std::thread::spawn(move || {
        s.write(|tx| {
            tx.grant(&[7; 32], Amount(1))?;
            entered.send(()).unwrap();
            let _ = release_rx.recv();
            Ok::<_, compushare_manager::ledger::LedgerError>(())
        })
    });
    entered_rx.recv().unwrap();

    // A job submitted now waits for its escrow's commit.
    let submitting = tokio::spawn(async move {
        let mut c = Client::connect(addr, me, &key).await.unwrap();
        common::submit(&mut c, 2, 2_000).await
    });
    // Time for the upload to arrive and the submit to reach its commit (a thread's sleep: on
    // the old code a timer of the runtime may sit on a worker blocked by the market's lock).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !submitting.is_finished(),
        "accepted while the store was held"
    );

    // The other client's status read, from its own thread and runtime (on the old code its
    // session blocks on the market's lock, and so may every worker of the node's runtime).
    let (answer, answer_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let st = rt.block_on(other_c.status(first));
        let _ = answer.send(st);
    });
    let st = answer_rx.recv_timeout(Duration::from_secs(30));
    release.send(()).unwrap();
    slow.join().unwrap().unwrap();
    let job = tokio::time::timeout(Duration::from_secs(60), submitting)
        .await
        .expect("the submit was answered once the store was free")
        .unwrap();
    m.stop();
    let st = st.expect("no answer while a submit waited for the disk: the market's lock was held");
    assert_eq!(st.unwrap().job, first);
    assert!(job.0 > first.0);
    let rec = store.read().unwrap().job(job).unwrap().unwrap();
    assert_eq!(rec.state, JobState::Running);
    assert!(m.shared.market().status(&me_key, job).is_some());
}

/// Issue 12 (no durable write under the market's lock): assignment numbers used to be
/// reserved, 1,024 at a time, by a store write inside `next_assignment_id`, under the market's
/// lock. Now a number is taken without any I/O: the next block is asked for (through the
/// journal, off the lock) when half the block in use is gone, and when it has not committed
/// yet, no number comes (the bid waits) instead of the lock waiting for the disk. Here another
/// commit holds the store's write transaction the whole time: a block's numbers still come,
/// the reservation is asked once, and the exhausted block answers `None` at once. Seen failing
/// with the old rule put back (a store write when the block runs out): the call after the
/// block's last number waited for the writer, no answer in 60 s.
#[test]
fn assignment_numbers_never_wait_for_the_disk() {
    use std::sync::mpsc;
    use std::time::Duration;

    let store = open(&db("ids"));
    let mut p = Persist::new(Arc::clone(&store));
    let block = p.reserve_ids();
    p.ids_reserved(block).unwrap();

    let (entered, entered_rx) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let s = Arc::clone(&store);
    let slow = std::thread::spawn(move || {
        s.write(|tx| {
            tx.grant(&[7; 32], Amount(1))?;
            entered.send(()).unwrap();
            let _ = release_rx.recv();
            Ok::<_, compushare_manager::ledger::LedgerError>(())
        })
    });
    entered_rx.recv().unwrap();

    let (answer, answer_rx) = mpsc::channel();
    let taker = std::thread::spawn(move || {
        let mut ids = Vec::new();
        let mut asked = 0;
        while let Some(id) = p.next_assignment_id() {
            ids.push(id.0);
            if p.wants_ids() {
                asked += 1;
            }
        }
        let _ = answer.send((ids, asked));
        p
    });
    let got = answer_rx.recv_timeout(Duration::from_secs(60));
    release.send(()).unwrap();
    let (ids, asked) = got.expect("a number waited for the disk: no answer in 60 s");
    slow.join().unwrap().unwrap();
    let mut p = taker.join().unwrap();
    assert_eq!(ids.len(), 1024, "the reserved block, every number once");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(asked, 1, "the next block is asked for once, half-way");
    // The reservation commits (the journal's job); numbers go on above every one handed out.
    let next = p.reserve_ids();
    p.ids_reserved(next).unwrap();
    let id = p.next_assignment_id().expect("the next block");
    assert!(id.0 > *ids.last().unwrap());
}
