//! Kill -9 of the manager mid-change (issue 14): `compushare manager run` as a child process
//! with three farm rigs (rig.conf: MANAGER, MANAGER_KEY, FARM_KEY only). The operator stores
//! sheet after sheet and the manager is killed with SIGKILL at a different moment after each
//! request, then restarted on the same port. Throughout, each rig's kept sheet (STATE_DIR)
//! is always one whole sheet the operator sent, never a mix of two; after each restart the
//! node's stored sheet is the old or the new one, and every rig converges to exactly it.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_client::admin::AdminClient;
use compushare_controller::config::RigConfig;
use compushare_controller::rig::Rig;
use compushare_controller::settings::RigSettings;
use compushare_controller::sheet;
use compushare_protocol::hex;
use compushare_protocol::msg::{AdminToManager, ManagerToAdmin};
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::{SheetPool, SheetSettings};
use compushare_protocol::types::{bounded, Amount};
use compushare_testkit::node::Node;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_compushare")
}

fn manager(node: &Node, addr: &str) -> Child {
    node.run(addr, &[]).expect("spawn manager")
}

/// Sheet `k`: every field it sets says `k`, so a mix of two sheets cannot pass for either.
fn sheet_k(k: u64) -> SheetSettings {
    SheetSettings {
        pools: Some(
            [SheetPool {
                url: bounded("stratum+tcp://127.0.0.1:1"),
                user: bounded(&format!("w{k}")),
                pass: bounded("x"),
            }]
            .into_iter()
            .collect(),
        ),
        min_price: Some(Amount(100 + k)),
        watchdog_sick_s: Some(100 + k as u32),
        watchdog_dead_s: Some(1000 + k as u32),
        ..SheetSettings::default()
    }
}

fn which(s: &SheetSettings, sent: u64) -> Option<u64> {
    (0..=sent).find(|k| *s == sheet_k(*k))
}

async fn admin(addr: &str, me: &Identity, mkey: &[u8; 32]) -> AdminClient {
    let t0 = Instant::now();
    loop {
        match AdminClient::connect(addr, me, mkey).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(30), "admin session: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_change_leaves_old_or_new_and_rigs_converge() {
    let root = std::env::temp_dir().join(format!("cs-fleet-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let node = Node::init(Path::new(bin()), root.join("mgr")).unwrap();
    let op = Identity::generate().unwrap();
    // `manager init` again on the existing node only adds the operator.
    let out = Command::new(bin())
        .args(["manager", "init", "--data"])
        .arg(&node.data)
        .args(["--operator", &hex::encode(&op.public())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mkey = node.key;
    let addr = compushare_testkit::node::free_addr().unwrap();
    let mut child = manager(&node, &addr);

    let mut c = admin(&addr, &op, &mkey).await;
    let farm_key = match c
        .request(&AdminToManager::FarmCreate {
            name: bounded("crashfarm"),
        })
        .await
        .unwrap()
    {
        ManagerToAdmin::FarmCreated { key, .. } => key,
        other => panic!("{other:?}"),
    };
    c.request(&AdminToManager::SheetSet {
        farm: bounded("crashfarm"),
        settings: sheet_k(0),
    })
    .await
    .unwrap();

    // Three rigs from the three keys, each with its STATE_DIR beside its rig.conf.
    let mut tasks = Vec::new();
    let mut states = Vec::new();
    for i in 0..3 {
        let dir = root.join(format!("rig{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("rig.conf");
        std::fs::write(
            &conf,
            format!(
                "MANAGER={addr}\nMANAGER_KEY={}\nFARM_KEY={}\n",
                hex::encode(&mkey),
                hex::encode(&farm_key)
            ),
        )
        .unwrap();
        let cfg = RigConfig::load(&conf).unwrap();
        let settings =
            RigSettings::from_config(&cfg, compushare_testkit::rig::test_options()).unwrap();
        states.push(settings.state_dir.clone());
        let rig =
            tokio::task::spawn_blocking(move || Rig::new(settings, Identity::generate().unwrap()))
                .await
                .unwrap()
                .unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = rig.run().await;
        }));
    }

    // A watcher: every rig's kept sheet is always one whole sheet that was sent.
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seen_bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let (states, sent, stop, bad) =
            (states.clone(), sent.clone(), stop.clone(), seen_bad.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for s in &states {
                    match sheet::load(s) {
                        Ok(None) => {}
                        Ok(Some(f)) => {
                            if which(&f.settings, sent.load(Ordering::SeqCst)).is_none() {
                                bad.lock()
                                    .unwrap()
                                    .push(format!("{}: {:?}", s.display(), f));
                            }
                        }
                        Err(e) => bad.lock().unwrap().push(e.to_string()),
                    }
                    reads += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            reads
        })
    };

    let converged = |version: u64, settings: &SheetSettings| {
        states.iter().all(|s| {
            matches!(sheet::load(s), Ok(Some(f)) if f.version == version && f.settings == *settings)
        })
    };
    let wait_converged = |version: u64, settings: SheetSettings| {
        let states = states.clone();
        async move {
            let t0 = Instant::now();
            while !states.iter().all(|s| {
                matches!(sheet::load(s), Ok(Some(f)) if f.version == version && f.settings == settings)
            }) {
                assert!(t0.elapsed() < Duration::from_secs(60), "rigs converge to v{version}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_converged(2, sheet_k(0)).await;
    assert!(converged(2, &sheet_k(0)));

    let (mut stored_version, mut stored_k) = (2, 0);
    // Kill moments after the request is written: at once, then later and later.
    // `None`: killed as the request leaves (no yield); `Some(-1)`: killed just before it.
    let moments: [(u64, Option<i64>); 8] = [
        (1, Some(-1)),
        (2, None),
        (3, None),
        (4, Some(0)),
        (5, Some(1)),
        (6, Some(3)),
        (7, Some(8)),
        (8, Some(40)),
    ];
    for (k, delay_ms) in moments {
        sent.store(k, Ordering::SeqCst);
        let req = AdminToManager::SheetSet {
            farm: bounded("crashfarm"),
            settings: sheet_k(k),
        };
        // Sent without waiting for the answer: the kill lands mid-change.
        let ch = c.channel();
        if delay_ms == Some(-1) {
            child.kill().unwrap();
        }
        let _ = ch.send(&req).await;
        if let Some(ms) = delay_ms.filter(|d| *d >= 0) {
            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        child = manager(&node, &addr);
        c = admin(&addr, &op, &mkey).await;
        let (version, settings) = match c
            .request(&AdminToManager::SheetGet {
                farm: bounded("crashfarm"),
            })
            .await
            .unwrap()
        {
            ManagerToAdmin::Sheet {
                version, settings, ..
            } => (version, settings),
            other => panic!("{other:?}"),
        };
        // The node holds the old sheet or the new one, with its own version.
        let holds = which(&settings, k).expect("the stored sheet is one that was sent");
        assert!(
            holds == k || holds == stored_k,
            "after kill {k}: sheet {holds}, before it {stored_k}"
        );
        assert_eq!(
            version,
            stored_version + u64::from(holds == k),
            "after kill {k}: version and sheet agree"
        );
        println!("kill {k} at {delay_ms:?} ms: the node holds sheet {holds} as v{version}");
        (stored_version, stored_k) = (version, holds);
        wait_converged(version, settings).await;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = watcher.join().unwrap();
    let bad = seen_bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "a rig held a mixed or torn sheet: {bad:?}");
    assert!(
        reads > 100,
        "the watcher read the kept sheets {reads} times"
    );
    let _ = child.kill();
    let _ = child.wait();
    for t in tasks {
        t.abort();
    }
    let _ = std::fs::remove_dir_all(&root);
}
