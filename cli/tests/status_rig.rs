//! `compushare status --rig KEY` against a running manager with a real rig joined: the rig's
//! public record as text and as JSON, a clear error for an unknown key, and `status JOB_ID`
//! still parsed as before; `compushare rate` refusals.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use compushare_controller::rig::Rig;
use std::sync::Arc;

use compushare_manager::server::{start, ServerConfig};
use compushare_manager::{Config, Store};
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

async fn compushare(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_compushare"))
            .args(&args)
            .output()
            .expect("run compushare")
    })
    .await
    .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_rig_shows_a_joined_rig() {
    let dir = std::env::temp_dir().join(format!("cs-status-rig-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let m = start(
        cfg,
        Identity::generate().unwrap(),
        Arc::new(Store::in_memory(&Config::default()).unwrap()),
    )
    .await
    .unwrap();
    let mkey = hex::encode(&m.shared.identity.public());
    let settings = compushare_testkit::rig::transport_rig(
        &m.addr.to_string(),
        m.shared.identity.public(),
        "cli-rig",
        Identity::generate().unwrap().public(),
        dir.join("rig"),
    );
    std::fs::create_dir_all(dir.join("rig")).unwrap();
    let rig_id = Identity::generate().unwrap();
    let rig_key = hex::encode(&rig_id.public());
    let rig = tokio::task::spawn_blocking(move || Rig::new(settings, rig_id))
        .await
        .unwrap()
        .unwrap();
    let task = tokio::spawn(rig.run());
    let t0 = Instant::now();
    while m.shared.market().connected() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "rig never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let key_file = dir.join("client.key").to_string_lossy().into_owned();
    let conn = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["status".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend([
            "--manager".into(),
            m.addr.to_string(),
            "--manager-key".into(),
            mkey.clone(),
            "--key".into(),
            key_file.clone(),
        ]);
        v
    };

    let out = compushare(conn(&["--rig", &rig_key, "--json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(j["key"], rig_key);
    assert_eq!(j["rig"]["label"], "cli-rig");
    assert_eq!(j["rig"]["trust"], "untrusted");
    assert_eq!(j["rig"]["histories_verified"], 0);
    assert_eq!(j["rig"]["errors"]["verification"], 0);
    assert_eq!(j["ratings_from_clients"]["count"], 0);

    let out = compushare(conn(&["--rig", &rig_key])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.starts_with(&format!("rig {rig_key} (cli-rig): untrusted")),
        "{t}"
    );
    assert!(t.contains("as a rig: not rated by clients"), "{t}");

    let unknown = "ee".repeat(32);
    let out = compushare(conn(&["--rig", &unknown])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("--rig {unknown}: unknown rig")),
        "{}",
        text(&out.stderr)
    );

    let out = compushare(conn(&["--rig", "zz"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--rig \"zz\""),
        "{}",
        text(&out.stderr)
    );

    // `status JOB_ID` is unchanged: an unknown job is the manager's error, named.
    let out = compushare(conn(&["41"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("UnknownJob"),
        "{}",
        text(&out.stderr)
    );
    // Neither or both is a usage error.
    let out = compushare(conn(&[])).await;
    assert!(!out.status.success());
    let out = compushare(conn(&["41", "--rig", &rig_key])).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--rig"), "{}", text(&out.stderr));

    // `rate`: the manager refuses a rating for a job that is not the client's, and stars
    // outside 1-5 never leave the machine.
    let rate = |extra: &[&str]| -> Vec<String> {
        let mut v = conn(extra);
        v[0] = "rate".into();
        v
    };
    let out = compushare(rate(&["41", &rig_key, "4"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rating rig") && text(&out.stderr).contains("job 41"),
        "{}",
        text(&out.stderr)
    );
    let out = compushare(rate(&["41", &rig_key, "9"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("STARS 9"),
        "{}",
        text(&out.stderr)
    );

    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
