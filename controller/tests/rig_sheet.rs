//! A farm rig's flight sheet reaches its own surfaces (issue 14): the real rig core behind a
//! scripted manager (a named test double of the management node written on the protocol
//! here, real Noise over loopback TCP) that pushes sheets, with the operator surfaces started
//! from the rig's rig.conf as `compushare rig` starts them.
//! - A sheet that lists operator key K opens the network console to K (the rig's rig.conf
//!   sets CONSOLE_LISTEN but no CONSOLE_KEYS); the next sheet without K closes K's open
//!   session and refuses its next handshake.
//! - rig.conf's CONSOLE_KEYS wins over a sheet's, as every key does.
//! - The applied version, the farm and a refused version with its reason show on the
//!   console's `status`, the cgminer API and the metrics; a newer sheet that applies clears
//!   the refusal. A sheet kept in STATE_DIR that no longer fits rig.conf shows refused at start.

mod ops_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use compushare_controller::config::RigConfig;
use compushare_controller::ops::{self, OpsConfig, OpsHandles};
use compushare_controller::rig::Rig;
use compushare_controller::settings::RigSettings;
use compushare_controller::status::StatusRx;
use compushare_protocol::hex;
use compushare_protocol::msg::{refusal, ManagerToRig, OperatorToRig, RigToManager, RigToOperator};
use compushare_protocol::secure::net::TcpChannel;
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::{FlightSheet, SheetPool, SheetSettings};
use compushare_protocol::types::{bounded, PublicKey};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);
const FARM_KEY: [u8; 32] = [2; 32];

/// The scripted manager's side of one rig session.
struct Manager {
    ch: TcpChannel,
}

impl Manager {
    async fn accept(listener: &TcpListener, me: &Identity) -> Manager {
        let (ch, h) = compushare_testkit::scripted::accept_rig(listener, me).await;
        assert_eq!(h.farm, Some(FARM_KEY), "a farm rig names its farm");
        Manager { ch }
    }

    /// Pushes `fs`; the rig's verdict (`Err`: refused with the reason).
    async fn push(&mut self, fs: FlightSheet) -> Result<(), String> {
        let version = fs.version;
        self.ch.send(&ManagerToRig::Sheet(fs)).await.unwrap();
        loop {
            let m: RigToManager = *tokio::time::timeout(WAIT, self.ch.recv())
                .await
                .expect("the rig answers the sheet")
                .unwrap();
            match m {
                RigToManager::SheetApplied { version: v } if v == version => return Ok(()),
                RigToManager::SheetRefused { version: v, reason } if v == version => {
                    return Err(reason.as_str().to_owned())
                }
                _ => {}
            }
        }
    }
}

fn sheet(version: u64, console_keys: &[PublicKey]) -> FlightSheet {
    FlightSheet {
        farm: bounded("farm-a"),
        version,
        settings: SheetSettings {
            console_keys: Some(heapless::Vec::from_slice(console_keys).unwrap()),
            ..SheetSettings::default()
        },
    }
}

/// A farm rig from a rig.conf with `extra` lines, its manager session accepted, and its
/// operator surfaces started as `compushare rig` starts them.
struct FarmRig {
    status: StatusRx,
    ops: OpsHandles,
    manager: Manager,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

impl Drop for FarmRig {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rig (not yet running) from rig.conf `text`, with testkit's quick options.
async fn start_rig(text: &str) -> (RigConfig, Rig) {
    let cfg = RigConfig::parse(Path::new("rig.conf"), text.as_bytes()).expect("rig.conf");
    let settings =
        RigSettings::from_config(&cfg, compushare_testkit::rig::test_options()).expect("settings");
    let rig =
        tokio::task::spawn_blocking(move || Rig::new(settings, Identity::generate().unwrap()))
            .await
            .unwrap()
            .expect("rig");
    (cfg, rig)
}

async fn farm_rig(tag: &str, extra: &str) -> FarmRig {
    let dir = std::env::temp_dir().join(format!("rig-sheet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let me = Identity::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = format!(
        "MANAGER={}\nMANAGER_KEY={}\nFARM_KEY={}\nSTATE_DIR={}\nCONSOLE_LISTEN=127.0.0.1:0\nAPI_LISTEN=127.0.0.1:0\nMETRICS_LISTEN=127.0.0.1:0\n{extra}",
        listener.local_addr().unwrap(),
        hex::encode(&me.public()),
        hex::encode(&FARM_KEY),
        dir.join("state").display(),
    );
    let (cfg, rig) = start_rig(&text).await;
    let status = rig.status();
    let ops = ops::spawn_with(
        &OpsConfig::from_rig(&cfg),
        rig.status(),
        rig.commands(),
        rig.identity(),
    )
    .await
    .expect("surfaces start");
    let task = tokio::spawn(async move {
        let _ = rig.run().await;
    });
    let manager = Manager::accept(&listener, &me).await;
    FarmRig {
        status,
        ops,
        manager,
        task,
        dir,
    }
}

use ops_common::hello_as as hello;

async fn line(ch: &mut TcpChannel, request: u32, text: &str) -> String {
    ch.send(&OperatorToRig::Line {
        request,
        text: text.into(),
    })
    .await
    .unwrap();
    match *tokio::time::timeout(WAIT, ch.recv::<RigToOperator>())
        .await
        .expect("a reply")
        .unwrap()
    {
        RigToOperator::Reply(r) => {
            assert!(r.ok, "{}", r.text);
            r.text.as_str().to_owned()
        }
        other => panic!("{other:?}"),
    }
}

/// A raw request to the cgminer API.
async fn api(addr: std::net::SocketAddr, request: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let end = out.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    serde_json::from_slice(&out[..end]).expect("JSON")
}

/// A scrape of the metrics endpoint (the body).
async fn metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheets_console_keys_open_and_close_the_network_console() {
    let mut r = farm_rig("keys", "").await;
    let k = Identity::generate().unwrap();
    // No key anywhere yet: nothing listens.
    assert_eq!(*r.ops.console_bound.borrow(), None);

    // Sheet v1 lists K: the console opens and K is welcomed.
    r.manager
        .push(sheet(1, &[k.public()]))
        .await
        .expect("v1 applies");
    let mut bound = r.ops.console_bound.clone();
    let addr = tokio::time::timeout(WAIT, bound.wait_for(Option::is_some))
        .await
        .expect("the console opens")
        .unwrap()
        .expect("bound");
    let (mut ch, m) = hello(addr, &k).await;
    assert!(matches!(m, RigToOperator::Welcome(_)), "{m:?}");
    let status = line(&mut ch, 1, "status").await;
    assert!(status.contains("sheet     farm-a v1 applied"), "{status}");
    let stranger = Identity::generate().unwrap();
    let (_, m) = hello(addr, &stranger).await;
    assert!(
        matches!(&m, RigToOperator::Refused(r) if r.code == refusal::NOT_ALLOWED),
        "{m:?}"
    );

    // Sheet v2 drops K: its open session is closed, its next handshake refused.
    r.manager.push(sheet(2, &[])).await.expect("v2 applies");
    let m = *tokio::time::timeout(WAIT, ch.recv::<RigToOperator>())
        .await
        .expect("closed at once")
        .unwrap();
    assert!(
        matches!(&m, RigToOperator::Refused(r) if r.code == refusal::NOT_ALLOWED),
        "{m:?}"
    );
    let (_, m) = hello(addr, &k).await;
    assert!(
        matches!(&m, RigToOperator::Refused(r) if r.code == refusal::NOT_ALLOWED),
        "{m:?}"
    );
    assert!(r.status.borrow().console_keys.is_empty());

    // Sheet v3 cannot apply: refused with the reason, v2 stays; every surface shows it.
    let mut bad = sheet(3, &[k.public()]);
    bad.settings.pools = Some(
        heapless::Vec::from_slice(&[SheetPool {
            url: bounded("http://not-stratum"),
            user: bounded("w"),
            pass: bounded("x"),
        }])
        .unwrap(),
    );
    let reason = r.manager.push(bad).await.expect_err("v3 refused");
    assert!(reason.contains("POOL1"), "{reason}");
    let (_, m) = hello(addr, &k).await;
    assert!(
        matches!(&m, RigToOperator::Refused(_)),
        "a refused sheet's keys do not apply: {m:?}"
    );
    let mut rx = r.status.clone();
    let s = tokio::time::timeout(WAIT, rx.wait_for(|s| s.sheet.refused.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(s.sheet.applied.as_ref().map(|a| a.version), Some(2));
    assert_eq!(s.sheet.refused.as_ref().map(|r| r.version), Some(3));
    assert_eq!(s.sheet.refusals, 1);
    let v = api(r.ops.api_addr.unwrap(), r#"{"command":"summary"}"#).await;
    let sum = &v["SUMMARY"][0];
    assert_eq!(sum["Sheet Farm"], "farm-a", "{v}");
    assert_eq!(sum["Sheet Version"], 2);
    assert_eq!(sum["Sheet Refused Version"], 3);
    assert!(
        sum["Sheet Refused Reason"]
            .as_str()
            .is_some_and(|t| t.contains("POOL1")),
        "{v}"
    );
    let m = metrics(r.ops.metrics_addr.unwrap()).await;
    assert!(
        m.lines()
            .any(|l| l == "compushare_rig_sheet_version{farm=\"farm-a\"} 2"),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l
            .starts_with("compushare_rig_sheet_refused_version{farm=\"farm-a\",reason=\"")
            && l.contains("POOL1")
            && l.ends_with("} 3")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l == "compushare_console_refused_total{reason=\"key_removed\"} 1"),
        "{m}"
    );

    // A newer sheet that applies clears the refusal.
    r.manager
        .push(sheet(4, &[k.public()]))
        .await
        .expect("v4 applies");
    let s = tokio::time::timeout(
        WAIT,
        rx.wait_for(|s| s.sheet.applied.as_ref().is_some_and(|a| a.version == 4)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(s.sheet.refused, None);
    assert_eq!(s.sheet.refusals, 1);
    let (_, m) = hello(addr, &k).await;
    assert!(matches!(m, RigToOperator::Welcome(_)), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rig_conf_console_keys_win_over_the_sheets() {
    let j = Identity::generate().unwrap();
    let k = Identity::generate().unwrap();
    let mut r = farm_rig(
        "conf",
        &format!("CONSOLE_KEYS={}\n", hex::encode(&j.public())),
    )
    .await;
    let addr = r
        .ops
        .console_addr
        .expect("rig.conf's key opens it at start");
    r.manager
        .push(sheet(1, &[k.public()]))
        .await
        .expect("v1 applies");
    let mut rx = r.status.clone();
    let s = tokio::time::timeout(WAIT, rx.wait_for(|s| s.sheet.applied.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(
        s.console_keys,
        vec![j.public()],
        "rig.conf's CONSOLE_KEYS stay"
    );
    let (_, m) = hello(addr, &k).await;
    assert!(
        matches!(&m, RigToOperator::Refused(r) if r.code == refusal::NOT_ALLOWED),
        "{m:?}"
    );
    let (_, m) = hello(addr, &j).await;
    assert!(matches!(m, RigToOperator::Welcome(_)), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_sheet_that_no_longer_fits_shows_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("rig-sheet-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    let mut kept = sheet(7, &[]);
    kept.settings.temp_resume_c = Some(88);
    compushare_controller::sheet::store(&state, &kept).unwrap();
    // rig.conf was edited since: its TEMP_LIMIT_C is now below the kept sheet's resume.
    let text = format!(
        "MANAGER=127.0.0.1:1\nMANAGER_KEY={}\nFARM_KEY={}\nSTATE_DIR={}\nTEMP_LIMIT_C=85\n",
        hex::encode(&[1; 32]),
        hex::encode(&FARM_KEY),
        state.display(),
    );
    // The rig starts on rig.conf alone.
    let (_, rig) = start_rig(&text).await;
    let s = rig.status().borrow().clone();
    assert!(s.sheet.enrolled);
    assert_eq!(s.sheet.applied, None);
    let r = s.sheet.refused.as_ref().expect("shown refused");
    assert_eq!((r.farm.as_str(), r.version), ("farm-a", 7));
    assert!(r.reason.contains("TEMP_RESUME_C"), "{}", r.reason);
    assert_eq!(s.sheet.refusals, 1);
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}
