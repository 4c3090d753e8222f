//! Who may administer a running node (issue 14): a key that is not an operator's (a stranger,
//! a client, a rig) is refused every admin command; an operator of farm A cannot reach farm
//! B, its rigs, money, client jobs, the ledger, settings or operators; every request is
//! audited, allowed or not; a replayed or altered admin frame ends the session and is never
//! executed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::serve_on;
use compushare_client::admin::{AdminClient, AdminClientError};
use compushare_manager::fleet::store::{FleetTables, FleetWrites};
use compushare_manager::market::MarketConfig;
use compushare_manager::{Config, Store};
use compushare_protocol::msg::{
    refusal, AdminError, AdminToManager, ManagerToAdmin, Scope, SettingsChange, ADMIN_DOOR,
    PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::SheetSettings;
use compushare_protocol::types::{bounded, Amount, JobId, PublicKey, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every admin command once (rig commands aimed at `rig`, farm ones at `farm`).
fn every_command(farm: &str, rig: PublicKey) -> Vec<AdminToManager> {
    vec![
        AdminToManager::FarmCreate {
            name: bounded("intruder"),
        },
        AdminToManager::Farms,
        AdminToManager::SheetGet {
            farm: bounded(farm),
        },
        AdminToManager::SheetSet {
            farm: bounded(farm),
            settings: SheetSettings {
                min_price: Some(Amount(9)),
                ..SheetSettings::default()
            },
        },
        AdminToManager::OverrideSet {
            farm: bounded(farm),
            rig,
            settings: Some(SheetSettings::default()),
        },
        AdminToManager::Rigs {
            farm: Some(bounded(farm)),
            after: None,
        },
        AdminToManager::Grant {
            account: [5; 32],
            amount: Amount(1_000_000),
        },
        AdminToManager::Role {
            rig,
            device: None,
            role: Role::Off,
        },
        AdminToManager::Console {
            rig,
            line: bounded("reboot"),
        },
        AdminToManager::OperatorAdd {
            key: [6; 32],
            farm: None,
        },
        AdminToManager::OperatorRemove { key: [6; 32] },
        AdminToManager::Audit { from: 0 },
        AdminToManager::Jobs {
            state: None,
            client: None,
            after: None,
        },
        AdminToManager::JobCancel { job: JobId(1) },
        AdminToManager::Ledger,
        AdminToManager::Settings,
        AdminToManager::SettingsSet(SettingsChange {
            fee_bp: Some(1),
            price_per_unit: Some(Amount(7)),
            credit_msat: Some(7),
        }),
    ]
}

struct Node {
    m: compushare_manager::server::Running,
    store: Arc<Store>,
    root: Identity,
    rig_a: PublicKey,
    rig_b: PublicKey,
}

async fn node() -> Node {
    let root = Identity::generate().unwrap();
    let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
    let (rig_a, rig_b) = ([0xaa; 32], [0xbb; 32]);
    store
        .write(|tx| {
            tx.set_operator(&root.public(), Some(&Scope::Node))?;
            tx.create_farm("farm-a", &[1; 32], 0)?;
            tx.create_farm("farm-b", &[2; 32], 0)?;
            tx.enrol(&rig_a, "farm-a")?;
            tx.enrol(&rig_b, "farm-b")
        })
        .unwrap();
    let m = serve_on(store.clone(), 1, MarketConfig::default()).await;
    Node {
        m,
        store,
        root,
        rig_a,
        rig_b,
    }
}

/// What a node holds that an admin command could change.
fn snapshot(store: &Store) -> (Vec<(String, u64)>, i128, bool, Config) {
    let r = store.read().unwrap();
    let farms = r
        .farms()
        .unwrap()
        .into_iter()
        .map(|(n, f)| (n, f.version))
        .collect();
    let bal = r
        .balance(&compushare_manager::Account::Client([5; 32]))
        .unwrap();
    (
        farms,
        bal,
        r.operator(&[6; 32]).unwrap().is_some(),
        store.config().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_operators_are_refused_every_admin_command() {
    let n = node().await;
    let addr = n.m.addr;
    let mkey = n.m.shared.identity.public();
    // A client of the node (it has a balance), a rig of farm A, and a stranger.
    let client = Identity::generate().unwrap();
    n.store
        .write(|tx| tx.grant(&client.public(), Amount(10)))
        .unwrap();
    let rig = Identity::generate().unwrap();
    n.store
        .write(|tx| tx.enrol(&rig.public(), "farm-a"))
        .unwrap();
    let before = snapshot(&n.store);
    for (who, id) in [
        ("stranger", Identity::generate().unwrap()),
        ("client", client),
        ("rig", rig),
    ] {
        let e = AdminClient::connect(addr, &id, &mkey).await.err();
        assert!(
            matches!(
                e,
                Some(AdminClientError::Refused {
                    code: refusal::NOT_ALLOWED,
                    ..
                })
            ),
            "{who}: {e:?}"
        );
        // Pipelined commands after the Hello are never read.
        let mut ch = connect_tcp(addr, &id, &mkey, HANDSHAKE_TIMEOUT)
            .await
            .unwrap();
        ch.send(&AdminToManager::Hello {
            version: PROTOCOL_VERSION,
            door: ADMIN_DOOR,
        })
        .await
        .unwrap();
        for cmd in every_command("farm-a", n.rig_a) {
            if ch.send(&cmd).await.is_err() {
                break;
            }
        }
        let first = ch.recv::<ManagerToAdmin>().await.unwrap();
        assert!(
            matches!(*first, ManagerToAdmin::Refused(_)),
            "{who}: {first:?}"
        );
        assert!(
            ch.recv::<ManagerToAdmin>().await.is_err(),
            "{who}: the session is closed"
        );
    }
    assert_eq!(snapshot(&n.store), before, "nothing changed");
    // The attempts are audited.
    let denied = n.store.read().unwrap().audit(0, 100).unwrap();
    assert_eq!(denied.iter().filter(|r| !r.allowed).count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_operator_reaches_only_its_farm() {
    let n = node().await;
    let addr = n.m.addr;
    let mkey = n.m.shared.identity.public();
    let op_a = Identity::generate().unwrap();
    let mut root = AdminClient::connect(addr, &n.root, &mkey).await.unwrap();
    root.request(&AdminToManager::OperatorAdd {
        key: op_a.public(),
        farm: Some(bounded("farm-a")),
    })
    .await
    .expect("node operators add farm operators");
    let mut a = AdminClient::connect(addr, &op_a, &mkey).await.unwrap();
    assert_eq!(a.scope(), &Scope::Farm(bounded("farm-a")));
    let before = snapshot(&n.store);
    // Farm B's sheet and rigs, and everything node-wide: not allowed.
    let mut denied = 0;
    for cmd in every_command("farm-b", n.rig_b) {
        let what = format!("{cmd:?}");
        match a.request(&cmd).await {
            Err(AdminClientError::Failed {
                code: AdminError::NotAllowed,
                ..
            }) => denied += 1,
            Ok(ManagerToAdmin::Farms { farms }) => {
                let names: Vec<&str> = farms.iter().map(|f| f.name.as_str()).collect();
                assert_eq!(names, ["farm-a"], "only its own farm is listed");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // Everything but the farm list: farm B, money, operators, the audit table, client jobs,
    // the ledger and the node's settings.
    assert_eq!(denied, 16);
    // Its own farm, with a rig of farm B: not allowed either.
    let e = a
        .request(&AdminToManager::OverrideSet {
            farm: bounded("farm-a"),
            rig: n.rig_b,
            settings: Some(SheetSettings::default()),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AdminClientError::Failed {
                code: AdminError::NotAllowed,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(snapshot(&n.store), before, "nothing changed");
    // Its own farm: allowed. Its rig list holds its rigs only.
    let r = a
        .request(&AdminToManager::SheetSet {
            farm: bounded("farm-a"),
            settings: SheetSettings {
                min_price: Some(Amount(3)),
                ..SheetSettings::default()
            },
        })
        .await
        .unwrap();
    assert!(
        matches!(r, ManagerToAdmin::SheetStored { version: 2, .. }),
        "{r:?}"
    );
    match a
        .request(&AdminToManager::Rigs {
            farm: None,
            after: None,
        })
        .await
        .unwrap()
    {
        ManagerToAdmin::Rigs { rigs, more } => {
            assert!(!more);
            let keys: Vec<PublicKey> = rigs.iter().map(|r| r.key).collect();
            assert_eq!(keys, [n.rig_a]);
        }
        other => panic!("{other:?}"),
    }
    // An allowed command on a rig that is not connected says so.
    let e = a
        .request(&AdminToManager::Console {
            rig: n.rig_a,
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
    // Every request is audited with its operator and verdict.
    let audit = n.store.read().unwrap().audit(0, 100).unwrap();
    let by_a: Vec<_> = audit
        .iter()
        .filter(|r| r.operator == op_a.public())
        .collect();
    assert_eq!(by_a.iter().filter(|r| !r.allowed).count(), 17);
    assert!(by_a
        .iter()
        .any(|r| r.allowed && r.request.as_str() == "sheet-set farm-a"));
    // Withdrawn rights end at the next session.
    root.request(&AdminToManager::OperatorRemove { key: op_a.public() })
        .await
        .unwrap();
    let e = AdminClient::connect(addr, &op_a, &mkey).await.err();
    assert!(matches!(e, Some(AdminClientError::Refused { .. })), "{e:?}");
}

#[derive(Clone, Copy)]
enum Attack {
    Replay,
    Alter,
}

/// A TCP relay to `to` that passes the handshake and the Hello, then replays or alters the
/// first request's frame.
async fn relay(to: std::net::SocketAddr, attack: Attack) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (c, _) = l.accept().await.unwrap();
        let s = TcpStream::connect(to).await.unwrap();
        let (mut cr, mut cw) = c.into_split();
        let (mut sr, mut sw) = s.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut index = 0;
        loop {
            let mut head = [0u8; 2];
            if cr.read_exact(&mut head).await.is_err() {
                break;
            }
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(head))];
            if cr.read_exact(&mut body).await.is_err() {
                break;
            }
            // Frames 0 and 1: the handshake; 2: Hello; 3: the first request.
            let mut out = vec![body.clone()];
            if index == 3 {
                match attack {
                    Attack::Replay => out.push(body),
                    Attack::Alter => {
                        let mid = out[0].len() / 2;
                        out[0][mid] ^= 0x04;
                    }
                }
            }
            index += 1;
            for f in out {
                let len = u16::try_from(f.len()).unwrap().to_be_bytes();
                if sw.write_all(&len).await.is_err() || sw.write_all(&f).await.is_err() {
                    return;
                }
            }
        }
    });
    addr
}

fn sheet_set(price: u64) -> AdminToManager {
    AdminToManager::SheetSet {
        farm: bounded("farm-a"),
        settings: SheetSettings {
            min_price: Some(Amount(price)),
            ..SheetSettings::default()
        },
    }
}

fn version(store: &Store) -> u64 {
    store
        .read()
        .unwrap()
        .farm("farm-a")
        .unwrap()
        .unwrap()
        .version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_or_altered_admin_frames_are_rejected() {
    let n = node().await;
    let mkey = n.m.shared.identity.public();
    let audited = |s: &Store| s.read().unwrap().audit(0, 1000).unwrap().len();

    // Replay: the request runs once; its copy fails authentication and ends the session.
    let via = relay(n.m.addr, Attack::Replay).await;
    let mut c = AdminClient::connect(via, &n.root, &mkey).await.unwrap();
    let v0 = version(&n.store);
    let r = c.request(&sheet_set(4)).await.unwrap();
    assert!(matches!(r, ManagerToAdmin::SheetStored { .. }), "{r:?}");
    let after = c.request(&sheet_set(5)).await;
    assert!(
        after.is_err(),
        "the session ended at the replayed frame: {after:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(version(&n.store), v0 + 1, "executed exactly once");
    let sheet = n
        .store
        .read()
        .unwrap()
        .farm("farm-a")
        .unwrap()
        .unwrap()
        .sheet;
    assert_eq!(sheet.min_price, Some(Amount(4)));

    // Altered: nothing runs, nothing is audited, the session ends.
    let count = audited(&n.store);
    let via = relay(n.m.addr, Attack::Alter).await;
    let mut c = AdminClient::connect(via, &n.root, &mkey).await.unwrap();
    let r = c.request(&sheet_set(6)).await;
    assert!(r.is_err(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(version(&n.store), v0 + 1, "the altered request did not run");
    assert_eq!(audited(&n.store), count);
}
