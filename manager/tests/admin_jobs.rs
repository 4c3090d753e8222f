//! Operators acting on a running node's money and jobs (issue 14): `admin jobs` lists jobs,
//! `admin jobs cancel` stops one mid-run with real rigs working on it (verified work paid,
//! nothing paid for work after the cancel, the rest of the escrow refunded, the ledger
//! verifying, the client seeing `Cancelled`, the cancel surviving a restart), `admin ledger`
//! sums the ledger up, and `admin settings` changes the fee, price and credit value for jobs
//! submitted afterwards only (connected rigs are told the new credit value at once).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{real_rig, serve_on, JOB};
use compushare_client::admin::{AdminClient, AdminClientError};
use compushare_client::Client;
use compushare_manager::fleet::store::{FleetTables, FleetWrites};
use compushare_manager::ledger::Account;
use compushare_manager::market::MarketConfig;
use compushare_manager::server::Running;
use compushare_manager::{Config, EntryKind, Store};
use compushare_protocol::msg::{
    AdminError, AdminToManager, JobFilter, JobState, JobSummary, ManagerToAdmin, NodeSettings,
    Scope, SettingsChange,
};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};

const GRANT: u64 = 1 << 40;

/// A node on `store` whose operator is `root`, with `client` granted [`GRANT`].
async fn node(store: Arc<Store>, root: &Identity, client: &PublicKey) -> Running {
    store
        .write(|tx| tx.set_operator(&root.public(), Some(&Scope::Node)))
        .unwrap();
    store.write(|tx| tx.grant(client, Amount(GRANT))).unwrap();
    serve_on(store, 2, market()).await
}

fn market() -> MarketConfig {
    MarketConfig {
        spendable_after: 0,
        ..common::market(40)
    }
}

async fn admin(m: &Running, who: &Identity) -> AdminClient {
    AdminClient::connect(m.addr, who, &m.shared.identity.public())
        .await
        .unwrap()
}

async fn jobs(a: &mut AdminClient, state: Option<JobFilter>) -> Vec<JobSummary> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        match a
            .request(&AdminToManager::Jobs {
                state,
                client: None,
                after,
            })
            .await
            .unwrap()
        {
            ManagerToAdmin::Jobs { jobs, more } => {
                after = jobs.last().map(|j| j.job);
                all.extend(jobs);
                if !more {
                    return all;
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

fn balance(store: &Store, account: Account) -> i128 {
    store.read().unwrap().balance(&account).unwrap()
}

/// The sum of the ledger's entries of `kind` for `job`.
fn entries(store: &Store, kind: EntryKind, job: JobId) -> u64 {
    store
        .read()
        .unwrap()
        .entries(0, usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| e.entry.kind == kind && e.entry.job == Some(job))
        .map(|e| e.entry.amount)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_run_pays_verified_work_and_refunds_the_rest() {
    let root = Identity::generate().unwrap();
    let client = Identity::generate().unwrap();
    let ckey = client.public();
    let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
    let m = node(store.clone(), &root, &ckey).await;
    let rigs = [
        real_rig(&m, "cancel0", None).await,
        real_rig(&m, "cancel1", None).await,
    ];
    let mkey = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &mkey).await.unwrap();
    // Far more photons than the rigs finish during the test.
    let (job, _, escrow) =
        common::submit_input(&mut c, JOB.as_bytes(), 200_000_000, 5, Mode::Cheapest).await;
    let t0 = Instant::now();
    loop {
        let s = c.status(job).await.unwrap();
        if s.photons_done > 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no verified work: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut a = admin(&m, &root).await;
    let listed = jobs(&mut a, Some(JobFilter::Open)).await;
    assert_eq!(listed.len(), 1);
    let j = &listed[0];
    assert_eq!((j.job, j.client, j.photons_total), (job, ckey, 200_000_000));
    assert!(matches!(j.state, JobState::Running), "{j:?}");
    assert!(j.escrow.0 > 0 && j.escrow.0 <= escrow.0, "{j:?}");

    let (paid, fee, refund) = match a.request(&AdminToManager::JobCancel { job }).await.unwrap() {
        ManagerToAdmin::JobCancelled {
            job: j,
            paid,
            fee,
            refund,
        } => {
            assert_eq!(j, job);
            (paid.0, fee.0, refund.0)
        }
        other => panic!("{other:?}"),
    };
    assert!(paid > 0, "verified work was paid");
    assert!(refund > 0);
    // The escrow is settled: verified work paid, the node's fee on it, the rest refunded.
    assert_eq!(paid + fee + refund, escrow.0);
    common::assert_settled(&store, job);
    assert_eq!(entries(&store, EntryKind::Refund, job), refund);
    assert_eq!(
        balance(&store, Account::Client(ckey)),
        i128::from(GRANT - paid - fee)
    );
    // The rigs' accounts hold exactly what the job paid.
    let earned: i128 = rigs
        .iter()
        .map(|r| {
            balance(&store, Account::WorkerPending(r.payout))
                + balance(&store, Account::WorkerSpendable(r.payout))
        })
        .sum();
    assert_eq!(earned, i128::from(paid));
    // The rigs keep running and delivering for a while: nothing more is paid for the job,
    // no new work of it is handed out, and the market has let it go.
    // (Records of assignments are written at each tick: one now, so every record of work
    // handed out before the cancel is in.)
    let _ = m.shared.market().tick(Instant::now());
    settle(&m.shared);
    let rec = store.read().unwrap().job(job).unwrap().unwrap();
    let issued = store.read().unwrap().job_assignments(job).unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = m.shared.market().tick(Instant::now());
    settle(&m.shared);
    assert_eq!(
        m.shared.market().in_memory().0,
        0,
        "the job left the market"
    );
    let after = store.read().unwrap().job(job).unwrap().unwrap();
    assert_eq!(after.paid.0, paid, "work after the cancel was paid");
    assert_eq!(after.paid, rec.paid);
    assert_eq!(entries(&store, EntryKind::Pay, job), paid);
    assert_eq!(
        store.read().unwrap().job_assignments(job).unwrap().len(),
        issued,
        "work was handed out after the cancel"
    );
    assert_eq!(after.state, compushare_manager::JobState::Cancelled);
    store.verify_ledger().unwrap();
    // The client sees it cancelled; its result never comes.
    let s = c.status(job).await.unwrap();
    assert_eq!(s.state, JobState::Cancelled);
    assert!(s.photons_done > 0 && s.photons_done < s.photons_total);
    assert!(c.fetch(job).await.is_err());
    // A second cancel is refused with a typed error; so is an unknown job.
    let e = a
        .request(&AdminToManager::JobCancel { job })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AdminClientError::Failed {
                code: AdminError::JobEnded,
                ..
            }
        ),
        "{e}"
    );
    let e = a
        .request(&AdminToManager::JobCancel { job: JobId(999) })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AdminClientError::Failed {
                code: AdminError::UnknownJob,
                ..
            }
        ),
        "{e}"
    );
    // Listed as cancelled, its escrow empty; and audited.
    let listed = jobs(&mut a, Some(JobFilter::Cancelled)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, JobState::Cancelled);
    assert_eq!(listed[0].escrow.0, 0);
    assert_eq!(listed[0].spent.0, paid);
    assert!(jobs(&mut a, Some(JobFilter::Open)).await.is_empty());
    let audit = store.read().unwrap().audit(0, 100).unwrap();
    assert!(audit
        .iter()
        .any(|r| r.allowed && r.request.as_str() == format!("job-cancel {}", job.0)));
    // The ledger's summary agrees.
    match a.request(&AdminToManager::Ledger).await.unwrap() {
        ManagerToAdmin::Ledger(r) => {
            assert!(r.verified, "{}", r.fault);
            assert_eq!(r.granted, GRANT);
            assert_eq!(r.escrow, 0);
            assert_eq!(r.refunded, refund);
            assert_eq!(r.fees, fee);
            assert_eq!(r.paid, paid);
            assert_eq!(u128::from(r.pending + r.spendable), earned as u128);
            assert_eq!(r.clients, GRANT - paid - fee);
            assert_eq!(
                r.granted,
                r.clients + r.escrow + r.pending + r.spendable + r.fees
            );
            let head = store.read().unwrap().ledger_len().unwrap();
            assert_eq!(r.entries, head);
        }
        other => panic!("{other:?}"),
    }

    // A restart keeps it: the job stays cancelled, nothing is resumed or paid again.
    drop(a);
    m.stop();
    drop(rigs);
    drop(m);
    let m = serve_on(store.clone(), 2, market()).await;
    assert_eq!(
        m.shared.market().in_memory().0,
        0,
        "the cancelled job resumed"
    );
    let mut a = admin(&m, &root).await;
    let listed = jobs(&mut a, None).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, JobState::Cancelled);
    assert_eq!(
        m.shared
            .market()
            .status(&ckey, job)
            .map(|s| (s.state, s.spent.0)),
        Some((JobState::Cancelled, paid))
    );
    store.verify_ledger().unwrap();
    assert_eq!(
        balance(&store, Account::Client(ckey)),
        i128::from(GRANT - paid - fee)
    );
}

/// Waits until `job` is done, through the client.
async fn done(c: &mut Client, job: JobId) {
    common::wait_done(c, job, Duration::from_secs(150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changed_on_a_live_node_reach_new_jobs_only() {
    let root = Identity::generate().unwrap();
    let client = Identity::generate().unwrap();
    let ckey = client.public();
    let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
    let m = node(store.clone(), &root, &ckey).await;
    let mkey = m.shared.identity.public();
    let mut c = Client::connect(m.addr, client, &mkey).await.unwrap();
    // A rig connected before the change: it learns the credit value from its Welcome.
    let early = real_rig(&m, "early", None).await;
    let credit = |r: &common::RealRig| r.status.borrow().manager.credit_msat;
    common::eventually("the early rig welcomed", || credit(&early) == Some(1)).await;
    let mut a = admin(&m, &root).await;
    let before = match a.request(&AdminToManager::Settings).await.unwrap() {
        ManagerToAdmin::Settings(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        before,
        NodeSettings {
            fee_bp: 500,
            price_per_unit: Amount(1),
            credit_msat: 1
        }
    );
    // Job A, accepted at the old terms.
    let photons = 20_000;
    let (job_a, pph_a, _) =
        common::submit_input(&mut c, JOB.as_bytes(), photons, 1, Mode::Cheapest).await;

    // A bad value is refused, naming the field, and changes nothing.
    let e = a
        .request(&AdminToManager::SettingsSet(SettingsChange {
            fee_bp: Some(20_000),
            price_per_unit: Some(Amount(9)),
            credit_msat: None,
        }))
        .await
        .unwrap_err();
    match e {
        AdminClientError::Failed {
            code: AdminError::BadRequest,
            message,
        } => assert!(message.contains("fee_bp"), "{message}"),
        other => panic!("{other}"),
    }
    assert_eq!(store.config().unwrap().price_per_unit, Amount(1));
    let e = a
        .request(&AdminToManager::SettingsSet(SettingsChange {
            credit_msat: Some(0),
            ..SettingsChange::default()
        }))
        .await
        .unwrap_err();
    assert!(format!("{e}").contains("credit_msat"), "{e}");

    let new = NodeSettings {
        fee_bp: 1_000,
        price_per_unit: Amount(3),
        credit_msat: 7_000,
    };
    let r = a
        .request(&AdminToManager::SettingsSet(SettingsChange {
            fee_bp: Some(new.fee_bp),
            price_per_unit: Some(new.price_per_unit),
            credit_msat: Some(new.credit_msat),
        }))
        .await
        .unwrap();
    assert_eq!(r, ManagerToAdmin::Settings(new));
    // Stored (a restart keeps them) and in force in the running market.
    let stored = store.config().unwrap();
    assert_eq!(
        (stored.fee_bp, stored.price_per_unit, stored.credit_msat),
        (1_000, Amount(3), 7_000)
    );
    assert_eq!(m.shared.market().config().credit_msat, 7_000);
    // The rig connected before it is told at once, without a new session.
    common::eventually("the connected rig learned the credit value", || {
        credit(&early) == Some(7_000)
    })
    .await;
    assert!(store.read().unwrap().audit(0, 100).unwrap().iter().any(
        |r| r.request.as_str() == "settings-set fee_bp=1000 price_per_unit=3 credit_msat=7000"
    ));

    // Job B, after the change.
    let (job_b, pph_b, _) =
        common::submit_input(&mut c, JOB.as_bytes(), photons, 2, Mode::Cheapest).await;
    assert!(
        pph_b.0 > pph_a.0,
        "B is priced at the new price: {pph_a:?} {pph_b:?}"
    );
    let read = store.read().unwrap();
    let (ra, rb) = (
        read.job(job_a).unwrap().unwrap(),
        read.job(job_b).unwrap().unwrap(),
    );
    drop(read);
    assert_eq!((ra.fee_bp, ra.price_per_unit), (500, Amount(1)));
    assert_eq!((rb.fee_bp, rb.price_per_unit), (1_000, Amount(3)));

    // More rigs come; both jobs run, each paid and charged at its own terms.
    let _rigs = [early, real_rig(&m, "terms1", None).await];
    done(&mut c, job_a).await;
    done(&mut c, job_b).await;
    for (job, pph, fee_bp) in [(job_a, pph_a.0, 500u64), (job_b, pph_b.0, 1_000)] {
        let rec = store.read().unwrap().job(job).unwrap().unwrap();
        // Untrusted rigs: every check ran on the manager's engine, free; so the job paid
        // its photons at its own price.
        assert_eq!(rec.paid.0, photons * pph, "job {}", job.0);
        assert_eq!(
            entries(&store, EntryKind::Fee, job),
            rec.paid.0 * fee_bp / 10_000,
            "job {}",
            job.0
        );
    }
    store.verify_ledger().unwrap();
    // Rigs that connect now are told the new credit value.
    let (outbox, _inbox) = compushare_manager::outbox::outbox(8, 1 << 16);
    let mut market = m.shared.market();
    let session = market.new_session();
    let hello = common::hello("late", [7; 32], 1, 1000);
    let w = market.rig_hello(
        [7; 32],
        &hello,
        compushare_manager::market::RigLink { session, outbox },
    );
    assert_eq!(w.credit_msat, 7_000);
}

/// Waits until everything the market decided so far is on disk (its journal is committed off
/// the market's lock, by the node's own drains too); what the commits start runs as usual.
fn settle(shared: &std::sync::Arc<compushare_manager::node::Shared>) {
    let journal = std::sync::Arc::clone(shared.market().journal());
    let tasks = tokio::task::block_in_place(|| journal.settle(|w| shared.market().applied(w)));
    compushare_manager::tasks::dispatch(&tokio::runtime::Handle::current(), shared, tasks);
}
