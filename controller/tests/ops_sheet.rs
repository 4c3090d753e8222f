//! The operator surfaces and the farm's flight sheet (issue 14), on loopback over a status
//! channel the test drives as the rig core would:
//! - the network console admits the keys in force in the snapshot (a sheet's) from the next
//!   handshake, refuses them from the next handshake once dropped, closes an open session
//!   whose key was dropped (Refused NOT_ALLOWED, counted), and always admits the keys it was
//!   started with (rig.conf's);
//! - a farm rig whose operator keys all come from its sheet starts its console when a sheet
//!   first lists one (CONSOLE_LISTEN without keys is no error there);
//! - the sheet in force, the newest refused one with its reason and the refusals count show
//!   on the console's `status`, the cgminer API (`summary`, `config`, JSON and text) and the
//!   metrics.

mod ops_common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use compushare_controller::ops::{self, OpsConfig, OpsStats};
use compushare_controller::status::{RigStatus, SheetId, SheetRefusal, StatusTx};
use compushare_protocol::msg::{refusal, OperatorToRig, RigToOperator};
use compushare_protocol::secure::Identity;

const WAIT: Duration = Duration::from_secs(10);

use ops_common::hello_as as hello;

fn welcomed(m: &RigToOperator) -> bool {
    matches!(m, RigToOperator::Welcome(_))
}

fn not_allowed(m: &RigToOperator) -> bool {
    matches!(m, RigToOperator::Refused(r) if r.code == refusal::NOT_ALLOWED)
}

/// Publishes the sample snapshot with `keys` in force, as the rig core does after a sheet.
fn publish_keys(tx: &StatusTx, keys: Vec<[u8; 32]>) {
    tx.send_modify(|s| {
        let mut next = (**s).clone();
        next.console_keys = keys;
        *s = Arc::new(next);
    });
}

#[tokio::test]
async fn console_keys_follow_the_sheet_in_force() {
    let fixed = Identity::generate().unwrap();
    let k = Identity::generate().unwrap();
    let fixed_key = fixed.public();
    let r = ops_common::start(|c| {
        c.console_keys = vec![fixed_key];
        c.console_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = r.h.console_addr.expect("listens");

    // K is in no list: refused.
    let (_, m) = hello(addr, &k).await;
    assert!(not_allowed(&m), "{m:?}");
    // A sheet lists K: admitted from the next handshake; it works.
    publish_keys(&r.status, vec![k.public()]);
    let (mut ch, m) = hello(addr, &k).await;
    assert!(welcomed(&m), "{m:?}");
    ch.send(&OperatorToRig::Line {
        request: 1,
        text: "status".into(),
    })
    .await
    .unwrap();
    let RigToOperator::Reply(rep) = *ch.recv::<RigToOperator>().await.unwrap() else {
        panic!("no reply")
    };
    assert!(rep.ok && rep.text.contains("rig-7"), "{}", rep.text);
    // rig.conf's key is admitted all along.
    let (mut fixed_ch, m) = hello(addr, &fixed).await;
    assert!(welcomed(&m), "{m:?}");

    // A new sheet without K: K's open session is closed at once, told why.
    publish_keys(&r.status, Vec::new());
    let m = *tokio::time::timeout(WAIT, ch.recv::<RigToOperator>())
        .await
        .expect("closed promptly, not at the idle limit")
        .unwrap();
    let RigToOperator::Refused(why) = m else {
        panic!("{m:?}")
    };
    assert_eq!(why.code, refusal::NOT_ALLOWED);
    assert!(why.reason.contains("removed"), "{}", why.reason);
    assert!(ch.recv::<RigToOperator>().await.is_err(), "session ended");
    assert_eq!(r.h.stats.console_key_removed.load(Ordering::Relaxed), 1);
    // ... and its next handshake is refused.
    let (_, m) = hello(addr, &k).await;
    assert!(not_allowed(&m), "{m:?}");
    // rig.conf's key's session is untouched by the sheet.
    fixed_ch
        .send(&OperatorToRig::Line {
            request: 2,
            text: "devices".into(),
        })
        .await
        .unwrap();
    let RigToOperator::Reply(rep) = *fixed_ch.recv::<RigToOperator>().await.unwrap() else {
        panic!("no reply")
    };
    assert!(rep.ok, "{}", rep.text);
    let m = compushare_controller::metrics::render(&r.status.borrow(), &r.h.stats);
    assert!(
        m.lines()
            .any(|l| l == "compushare_console_refused_total{reason=\"key_removed\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_farm_rigs_console_opens_when_its_sheet_lists_a_key() {
    let (tx, rx) = ops_common::status_channel();
    tx.send_modify(|s| {
        let mut next = (**s).clone();
        next.sheet.enrolled = true;
        *s = Arc::new(next);
    });
    let core = ops_common::RigCoreDouble::start();
    let rig = Arc::new(Identity::generate().unwrap());
    let mut cfg = OpsConfig::maintenance(None);
    cfg.api_listen = None;
    // CONSOLE_LISTEN without CONSOLE_KEYS is no error on a farm rig: its sheet may list some.
    cfg.console_listen = Some("127.0.0.1:0".parse().unwrap());
    let h = ops::spawn_with(&cfg, rx, core.tx.clone(), rig.clone())
        .await
        .expect("a farm rig may wait for its sheet's keys");
    assert_eq!(h.console_addr, None);
    assert_eq!(*h.console_bound.borrow(), None, "nobody may log in yet");
    let k = Identity::generate().unwrap();
    publish_keys(&tx, vec![k.public()]);
    let mut bound = h.console_bound.clone();
    let addr = tokio::time::timeout(WAIT, bound.wait_for(Option::is_some))
        .await
        .expect("bound once a key is listed")
        .unwrap()
        .expect("an address");
    let (_, m) = hello(addr, &k).await;
    assert!(welcomed(&m), "{m:?}");
    let stranger = Identity::generate().unwrap();
    let (_, m) = hello(addr, &stranger).await;
    assert!(not_allowed(&m), "{m:?}");
}

/// The sample snapshot of a farm rig holding sheet v5, v6 refused, three refusals.
fn farm_status() -> RigStatus {
    let mut s = ops_common::sample_status();
    s.sheet.enrolled = true;
    s.sheet.applied = Some(SheetId {
        farm: "farm-a".into(),
        version: 5,
    });
    s.sheet.refused = Some(SheetRefusal {
        farm: "farm-a".into(),
        version: 6,
        reason: "flight sheet farm-a v6, POOL1: expected a pool URL".into(),
    });
    s.sheet.refusals = 3;
    s
}

#[tokio::test]
async fn the_sheet_shows_on_console_api_and_metrics() {
    let core = ops_common::RigCoreDouble::start();
    let s = farm_status();
    let text = compushare_controller::console::answer(b"status", &s, &core.tx)
        .await
        .text;
    assert!(text.contains("\nsheet     farm-a v5 applied\n"), "{text}");
    assert!(
        text.contains("farm-a v6 REFUSED: flight sheet farm-a v6, POOL1: expected a pool URL"),
        "{text}"
    );
    // A rig in no farm, holding no sheet, shows no sheet line; a farm rig with none says so.
    let plain = ops_common::sample_status();
    let text = compushare_controller::console::answer(b"status", &plain, &core.tx)
        .await
        .text;
    assert!(!text.contains("sheet"), "{text}");
    let mut waiting = plain.clone();
    waiting.sheet.enrolled = true;
    let text = compushare_controller::console::answer(b"status", &waiting, &core.tx)
        .await
        .text;
    assert!(text.contains("sheet     none applied"), "{text}");

    // cgminer API: summary and config, JSON and text, still cgminer's shapes.
    let stats = OpsStats::default();
    let api = |req: &[u8], s: &RigStatus| {
        // cgminer ends a reply with a NUL.
        let out = compushare_controller::api::respond(req, s, &stats);
        String::from_utf8(out)
            .unwrap()
            .trim_end_matches('\0')
            .to_owned()
    };
    let v: serde_json::Value =
        serde_json::from_str(&api(br#"{"command":"summary+config"}"#, &s)).unwrap();
    let sum = &v["summary"][0]["SUMMARY"][0];
    assert_eq!(sum["Sheet Farm"], "farm-a", "{v}");
    assert_eq!(sum["Sheet Version"], 5);
    assert_eq!(sum["Sheet Refused Version"], 6);
    assert_eq!(
        sum["Sheet Refused Reason"],
        "flight sheet farm-a v6, POOL1: expected a pool URL"
    );
    assert_eq!(sum["Elapsed"], 3725, "cgminer's fields unchanged");
    let conf = &v["config"][0]["CONFIG"][0];
    assert_eq!(
        (conf["Sheet Farm"].as_str(), conf["Sheet Version"].as_u64()),
        (Some("farm-a"), Some(5))
    );
    assert_eq!(v["config"][0]["STATUS"][0]["STATUS"], "S");
    let text = api(b"summary", &s);
    assert!(
        text.contains(",Sheet Farm=farm-a,Sheet Version=5,Sheet Refused Version=6,Sheet Refused Reason=flight sheet farm-a v6\\, POOL1: expected a pool URL,"),
        "{text}"
    );
    // No sheet: empty farm and version 0 (versions start at 1).
    let v: serde_json::Value =
        serde_json::from_str(&api(br#"{"command":"summary"}"#, &plain)).unwrap();
    let sum = &v["SUMMARY"][0];
    assert_eq!(
        (sum["Sheet Farm"].as_str(), sum["Sheet Version"].as_u64()),
        (Some(""), Some(0))
    );
    assert_eq!(sum["Sheet Refused Version"], 0);

    // Metrics.
    let m = compushare_controller::metrics::render(&s, &stats);
    for line in [
        "compushare_rig_sheet_version{farm=\"farm-a\"} 5",
        "compushare_rig_sheet_refused_version{farm=\"farm-a\",reason=\"flight sheet farm-a v6, POOL1: expected a pool URL\"} 6",
        "compushare_rig_sheet_refused_total 3",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    let m = compushare_controller::metrics::render(&plain, &stats);
    assert!(
        !m.lines()
            .any(|l| l.starts_with("compushare_rig_sheet_version{")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l == "compushare_rig_sheet_refused_total 0"),
        "{m}"
    );
}
