//! Fleets on loopback (issue 14): a manager, a farm, three rigs whose rig.conf holds only
//! MANAGER, MANAGER_KEY and FARM_KEY. They enrol, receive the farm's sheet and mine at the
//! validating pool it names; the operator changes the sheet's pool and every rig moves to the
//! new pool within 10 s without a restart; a sheet a rig cannot apply is refused with the
//! reason the operator sees, and the rig keeps the previous one; a grant made while the node
//! runs lets a client's job through; a console line relayed through the manager is answered;
//! a role pinned through the manager reaches the rig.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, serve_on, TempDir, JOB};
use compushare_client::admin::{AdminClient, AdminClientError};
use compushare_client::Client;
use compushare_controller::config::RigConfig;
use compushare_controller::rig::Rig;
use compushare_controller::settings::{ConsoleHook, RigSettings};
use compushare_manager::fleet::store::FleetWrites;
use compushare_manager::market::MarketConfig;
use compushare_manager::{Config, Store};
use compushare_protocol::hex;
use compushare_protocol::msg::{
    AdminError, AdminToManager, ErrorCode, ManagerToAdmin, RigSummary, Scope, SheetState,
};
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::{Setting, SheetPool, SheetSettings};
use compushare_protocol::types::{bounded, Amount, Mode, PublicKey, Role};
use compushare_testkit::pool::{PoolSettings, StratumPool};

fn console_hook() -> ConsoleHook {
    Arc::new(|line, status, commands| {
        Box::pin(async move {
            let r =
                compushare_controller::console::answer(line.as_bytes(), &status, &commands).await;
            (r.ok, r.text)
        })
    })
}

async fn pool() -> StratumPool {
    StratumPool::start(
        "127.0.0.1:0",
        PoolSettings {
            difficulty: 2e-5,
            job_interval: Some(Duration::from_millis(700)),
            ..PoolSettings::default()
        },
    )
    .await
    .expect("pool starts")
}

fn pools(list: &[(&StratumPool, &str)]) -> SheetSettings {
    SheetSettings {
        pools: Some(
            list.iter()
                .map(|(p, user)| SheetPool {
                    url: bounded(&p.url()),
                    user: bounded(user),
                    pass: bounded("x"),
                })
                .collect(),
        ),
        ..SheetSettings::default()
    }
}

/// A rig started from a rig.conf with only the three farm keys (STATE_DIR beside it).
struct FarmRig {
    key: PublicKey,
    dir: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FarmRig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn farm_rig(
    manager: &str,
    manager_key: &PublicKey,
    farm_key: &[u8; 32],
    i: usize,
) -> FarmRig {
    let dir = TempDir::new(&format!("farm-rig{i}"));
    let conf = dir.path().join("rig.conf");
    std::fs::write(
        &conf,
        format!(
            "MANAGER={manager}\nMANAGER_KEY={}\nFARM_KEY={}\n",
            hex::encode(manager_key),
            hex::encode(farm_key)
        ),
    )
    .unwrap();
    let cfg = RigConfig::load(&conf).expect("three keys are a valid rig.conf");
    let mut options = compushare_testkit::rig::test_options();
    options.console = Some(console_hook());
    let settings = RigSettings::from_config(&cfg, options).expect("settings");
    assert_eq!(settings.state_dir, dir.path().join("compushare"));
    let id = Identity::generate().unwrap();
    let key = id.public();
    let rig = tokio::task::spawn_blocking(move || Rig::new(settings, id))
        .await
        .unwrap()
        .expect("rig");
    let task = tokio::spawn(async move {
        let _ = rig.run().await;
    });
    FarmRig { key, dir, task }
}

async fn rigs(admin: &mut AdminClient, farm: &str) -> Vec<RigSummary> {
    match admin
        .request(&AdminToManager::Rigs {
            farm: Some(bounded(farm)),
            after: None,
        })
        .await
        .expect("rigs")
    {
        ManagerToAdmin::Rigs { rigs, .. } => rigs.into_iter().collect(),
        other => panic!("{other:?}"),
    }
}

/// Polls the rig list until `ok` holds for it, for at most `limit`.
async fn until_rigs(
    admin: &mut AdminClient,
    farm: &str,
    what: &str,
    limit: Duration,
    ok: impl Fn(&[RigSummary]) -> bool,
) -> Vec<RigSummary> {
    let t0 = Instant::now();
    loop {
        let r = rigs(admin, farm).await;
        if ok(&r) {
            return r;
        }
        assert!(t0.elapsed() < limit, "{what}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stores `settings` as farm-a's sheet; checks the version stored and the rigs it was sent to.
async fn set_sheet(admin: &mut AdminClient, settings: SheetSettings, version: u64, pushed: u32) {
    let r = admin
        .request(&AdminToManager::SheetSet {
            farm: bounded("farm-a"),
            settings,
        })
        .await
        .unwrap();
    match r {
        ManagerToAdmin::SheetStored {
            version: v,
            pushed: p,
            ..
        } => assert_eq!((v, p), (version, pushed)),
        other => panic!("{other:?}"),
    }
}

fn distinct_connections(p: &StratumPool) -> usize {
    let mut en1: Vec<Vec<u8>> = p
        .accepted_shares()
        .iter()
        .map(|a| a.extranonce1.clone())
        .collect();
    en1.sort();
    en1.dedup();
    en1.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_farm_rigs_enrol_mine_and_follow_their_sheet() {
    let operator = Identity::generate().unwrap();
    let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
    store
        .write(|tx| tx.set_operator(&operator.public(), Some(&Scope::Node)))
        .unwrap();
    let m = serve_on(store, 1, MarketConfig::default()).await;
    let addr = m.addr.to_string();
    let mkey = m.shared.identity.public();
    let (pool_a, pool_b) = (pool().await, pool().await);

    let mut admin = AdminClient::connect(addr.as_str(), &operator, &mkey)
        .await
        .expect("operator session");
    assert_eq!(admin.scope(), &Scope::Node);
    let farm_key = match admin
        .request(&AdminToManager::FarmCreate {
            name: bounded("farm-a"),
        })
        .await
        .unwrap()
    {
        ManagerToAdmin::FarmCreated { key, .. } => key,
        other => panic!("{other:?}"),
    };
    set_sheet(&mut admin, pools(&[(&pool_a, "farm.w")]), 2, 0).await;

    let mut farm = Vec::new();
    for i in 0..3 {
        farm.push(farm_rig(&addr, &mkey, &farm_key, i).await);
    }
    // They enrol and apply the sheet; then each mines at the pool it names.
    until_rigs(
        &mut admin,
        "farm-a",
        "three rigs on sheet v2",
        Duration::from_secs(60),
        |r| {
            r.len() == 3
                && r.iter()
                    .all(|x| x.online && x.sheet == SheetState::Applied { version: 2 })
        },
    )
    .await;
    eventually("shares at pool A from every rig", || {
        distinct_connections(&pool_a) == 3
    })
    .await;
    assert!(pool_a
        .accepted_shares()
        .iter()
        .all(|s| s.submit.worker == "farm.w"));
    assert_eq!(pool_b.stats().connections, 0);

    // A per-rig override reaches only its rig (its own pool user), at the farm's new version.
    let special = farm[0].key;
    let mut over = pools(&[(&pool_a, "farm.special")]);
    over.temp_limit_c = Some(85);
    let stored = admin
        .request(&AdminToManager::OverrideSet {
            farm: bounded("farm-a"),
            rig: special,
            settings: Some(over),
        })
        .await
        .unwrap();
    assert!(
        matches!(
            stored,
            ManagerToAdmin::SheetStored {
                version: 3,
                pushed: 3,
                ..
            }
        ),
        "{stored:?}"
    );
    eventually("shares from the overridden worker", || {
        pool_a
            .accepted_shares()
            .iter()
            .any(|s| s.submit.worker == "farm.special")
    })
    .await;
    let _ = admin
        .request(&AdminToManager::OverrideSet {
            farm: bounded("farm-a"),
            rig: special,
            settings: None,
        })
        .await
        .unwrap();

    // The operator moves the farm to pool B: every rig follows within 10 s, no restart.
    let t0 = Instant::now();
    set_sheet(&mut admin, pools(&[(&pool_b, "farm.w")]), 5, 3).await;
    let limit = Duration::from_secs(10);
    loop {
        if pool_b.stats().authorized >= 3 {
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "rigs on pool B after {:?}: {}",
            t0.elapsed(),
            pool_b.stats().authorized
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = t0.elapsed();
    println!("three rigs moved to the new pool in {moved:?}");
    eventually("shares at pool B from every rig", || {
        distinct_connections(&pool_b) == 3
    })
    .await;
    until_rigs(
        &mut admin,
        "farm-a",
        "sheet v5 applied",
        Duration::from_secs(10),
        |r| {
            r.iter()
                .all(|x| x.sheet == SheetState::Applied { version: 5 })
        },
    )
    .await;
    // Each rig keeps what it applied in STATE_DIR.
    for r in &farm {
        let kept = compushare_controller::sheet::load(&r.dir.path().join("compushare"))
            .expect("kept sheet")
            .expect("a sheet");
        assert_eq!(kept.version, 5);
        assert_eq!(kept.settings, pools(&[(&pool_b, "farm.w")]));
    }

    // A sheet the rigs cannot apply: refused with the reason, previous sheet kept.
    let mut bad = pools(&[(&pool_b, "farm.w")]);
    bad.extra = [Setting {
        key: bounded("GPU_OVERCLOCK"),
        value: bounded("1"),
    }]
    .into_iter()
    .collect();
    set_sheet(&mut admin, bad, 6, 3).await;
    let listed = until_rigs(
        &mut admin,
        "farm-a",
        "sheet v6 refused",
        Duration::from_secs(10),
        |r| {
            r.iter()
                .all(|x| matches!(&x.sheet, SheetState::Refused { version: 6, .. }))
        },
    )
    .await;
    for r in &listed {
        let SheetState::Refused { reason, .. } = &r.sheet else {
            unreachable!()
        };
        assert!(
            reason.contains("GPU_OVERCLOCK") && reason.contains("unknown key"),
            "{reason}"
        );
    }
    for r in &farm {
        let kept = compushare_controller::sheet::load(&r.dir.path().join("compushare"))
            .unwrap()
            .unwrap();
        assert_eq!(kept.version, 5, "the refused sheet is not kept");
    }
    let before = pool_b.stats().accepted;
    eventually("still mining at pool B", || {
        pool_b.stats().accepted > before
    })
    .await;

    // A console line relayed through the manager is answered by the rig's shell.
    let reply = admin
        .request(&AdminToManager::Console {
            rig: farm[1].key,
            line: bounded("pools"),
        })
        .await
        .expect("relayed console");
    match reply {
        ManagerToAdmin::ConsoleReply(r) => {
            assert!(r.ok, "{}", r.text);
            assert!(r.text.contains(&pool_b.url()), "{}", r.text);
        }
        other => panic!("{other:?}"),
    }
    // A role pinned through the manager reaches the rig.
    admin
        .request(&AdminToManager::Role {
            rig: farm[2].key,
            device: Some(0),
            role: Role::Off,
        })
        .await
        .expect("role");
    until_rigs(
        &mut admin,
        "farm-a",
        "device 0 of rig 2 off",
        Duration::from_secs(10),
        |r| {
            r.iter().any(|x| {
                x.key == farm[2].key && x.devices.first().is_some_and(|d| d.role == Role::Off)
            })
        },
    )
    .await;
    // An offline rig is named as such.
    let e = admin
        .request(&AdminToManager::Console {
            rig: [7; 32],
            line: bounded("status"),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AdminClientError::Failed {
                code: AdminError::RigOffline,
                ..
            }
        ),
        "{e}"
    );

    // A grant made while the node runs lets a client's job through.
    let secret = zeroize::Zeroizing::new([42u8; 32]);
    let client = Identity::from_secret(secret.clone());
    let ckey = client.public();
    let mut c = Client::connect(addr.as_str(), client, &mkey).await.unwrap();
    let refused = c
        .submit(
            JOB.as_bytes(),
            20_000,
            Some(1),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            compushare_client::ClientError::Manager {
                code: ErrorCode::InsufficientFunds,
                ..
            }
        ),
        "{refused}"
    );
    let granted = admin
        .request(&AdminToManager::Grant {
            account: ckey,
            amount: Amount(100_000_000_000),
        })
        .await
        .unwrap();
    assert!(matches!(
        granted,
        ManagerToAdmin::Granted {
            balance: 100_000_000_000,
            ..
        }
    ));
    // A new session: the refused upload's chunks were answered on the old one.
    let client = Identity::from_secret(secret);
    let mut c = Client::connect(addr.as_str(), client, &mkey).await.unwrap();
    let (job, _, escrowed) = c
        .submit(
            JOB.as_bytes(),
            20_000,
            Some(1),
            Mode::Cheapest,
            Amount(u64::MAX),
        )
        .await
        .expect("the granted client's job is accepted");
    assert!(escrowed.0 > 0, "job {job:?}");

    // Every request is in the audit table (paged).
    let mut records = Vec::new();
    let mut from = 0;
    loop {
        match admin
            .request(&AdminToManager::Audit { from })
            .await
            .unwrap()
        {
            ManagerToAdmin::Audit {
                records: page,
                next,
                more,
            } => {
                records.extend(page);
                from = next;
                if !more {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    let requests: Vec<&str> = records.iter().map(|r| r.request.as_str()).collect();
    assert!(requests.contains(&"farm-create farm-a"), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.starts_with("grant ")),
        "{requests:?}"
    );
    assert!(records
        .iter()
        .all(|r| r.operator == operator.public() && r.allowed));
    assert!(records.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}
