//! Rig records and ratings over the network, with the real rig transport client: a client
//! rates the rig that worked on its job and reads the rig's public record; the rig rates the
//! client through its `RatingHandle`, only for work it returned, one rating per rig and client.

mod common;

use std::time::Duration;

use compushare_client::Client;
use compushare_controller::transport::state::{parse_record, PAYMENTS_FILE};
use compushare_manager::market::MarketConfig;
use compushare_protocol::msg::{RatingOutcome, RatingSummary};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{AssignmentId, TrustLevel};

const PHOTONS: u64 = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_rigs_rate_each_other_and_records_are_public() {
    let client_id = Identity::generate().unwrap();
    let client_key = client_id.public();
    let market = MarketConfig {
        spendable_after: 0,
        ..common::market(100)
    };
    let m = common::manager_granting(&client_key, 1 << 40, market).await;
    let manager_key = m.shared.identity.public();
    let rig = common::real_rig(&m, "rater", None).await;
    let (rig_key, handle) = (rig.key, &rig.ratings);

    // Before any work: the rig rates nobody, and an unknown key has no record.
    let mut c = Client::connect(m.addr, client_id, &manager_key)
        .await
        .unwrap();
    assert_eq!(c.rig_record([0xee; 32]).await.unwrap(), None);

    let job = common::submit(&mut c, 5, PHOTONS).await;
    let status = common::wait_done(&mut c, job, Duration::from_secs(120)).await;
    assert_eq!(status.rigs.as_slice(), &[rig_key]);

    // The client rates the rig; rating again replaces (one per client and rig).
    c.rate(job, rig_key, 5).await.unwrap();
    c.rate(job, rig_key, 3).await.unwrap();
    assert!(c.rate(job, rig_key, 0).await.is_err());
    let rec = c
        .rig_record(rig_key)
        .await
        .unwrap()
        .expect("rig has a record");
    assert_eq!(rec.key, rig_key);
    assert_eq!(rec.as_rig, RatingSummary { count: 1, sum: 3 });
    let standing = rec.rig.expect("a rig's standing");
    assert_eq!(standing.label.as_str(), "rater");
    assert_eq!(standing.trust, TrustLevel::Untrusted);
    assert_eq!(standing.histories_verified, PHOTONS);
    assert_eq!(standing.consecutive_verified, PHOTONS);
    assert_eq!(standing.errors.verification, 0);
    assert!(standing.returns.recent_ns_per_unit.is_some());
    assert!(standing.paid.0 > 0);

    // The rig rates the client of work it returned (ids from its payment record).
    let paid = parse_record(&std::fs::read(rig.dir.path().join(PAYMENTS_FILE)).unwrap());
    let a = paid.first().expect("the rig was paid").assignment;
    assert_eq!(handle.rate_client(a, 4).await, Ok(RatingOutcome::Recorded));
    assert_eq!(handle.rate_client(a, 2).await, Ok(RatingOutcome::Replaced));
    assert_eq!(
        handle.rate_client(AssignmentId(u64::MAX), 5).await,
        Ok(RatingOutcome::NotYourWork)
    );
    assert_eq!(handle.rate_client(a, 6).await, Ok(RatingOutcome::BadStars));
    let me = c
        .rig_record(client_key)
        .await
        .unwrap()
        .expect("rated client");
    assert!(me.rig.is_none());
    assert_eq!(me.as_client, RatingSummary { count: 1, sum: 2 });
}
