//! `compushare rig --config rig.conf` end to end: config problems are reported with the
//! file, line and key and the rig stays up in maintenance mode; a good config creates
//! STATE_DIR/rig.key (0600) and the rig says Hello to a scripted manager (a test double of
//! the management node, real Noise).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use compushare_protocol::hex;
use compushare_protocol::msg::RigToManager;
use compushare_protocol::secure::net::{accept_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;

fn tmp(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("cli-rig-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the rig on `conf` and returns the first stderr line containing "maintenance
/// mode", checking the process is still running afterwards.
fn maintenance_line(conf: &str, dir: &std::path::Path) -> String {
    maintenance_with(conf, dir, |_| {})
}

/// As [`maintenance_line`], running `check` while the rig is up.
fn maintenance_with(conf: &str, dir: &std::path::Path, check: impl FnOnce(&str)) -> String {
    use std::io::BufRead;
    let path = dir.join("rig.conf");
    std::fs::write(&path, conf).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(["rig", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run compushare");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("maintenance mode") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a maintenance-mode line on stderr");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a bad rig.conf must not stop the rig"
    );
    check(&line);
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn config_errors_name_file_line_and_key_and_the_rig_stays_up() {
    let d = tmp("bad");
    let err = maintenance_line("# rig\nMANAGER=127.0.0.1:7733\nMANAGER_KEY=nothex\n", &d);
    assert!(err.contains("rig.conf:3: MANAGER_KEY"), "{err}");

    let err = maintenance_line("MANAGER=127.0.0.1:7733\nCOLOUR=red\n", &d);
    assert!(err.contains("rig.conf:2: COLOUR: unknown key"), "{err}");

    // The good lines still count: the cgminer API runs where rig.conf says, and its summary
    // carries the error (what dashboards and the image's PID 1 read).
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let conf = format!("API_LISTEN={api}\nCPU_DEVICES=lots\n");
    maintenance_with(&conf, &d, |_| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(api).expect("the API answers");
        s.write_all(br#"{"command":"summary"}"#).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("Maintenance"), "{text}");
        assert!(text.contains("rig.conf:2: CPU_DEVICES"), "{text}");
    });

    let key = "11".repeat(32);
    let err = maintenance_line(&format!("MANAGER_KEY={key}\nPAYOUT={key}\n"), &d);
    assert!(err.contains("rig.conf:1: MANAGER_KEY"), "{err}");
    assert!(err.contains("MANAGER (host:port)"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn good_config_connects_and_says_hello() {
    let d = tmp("good");
    let state = d.join("state");
    let manager = Identity::generate().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let conf = format!(
        "MANAGER=127.0.0.1:{port}\nMANAGER_KEY={}\nRIG_NAME=cli-rig\nPAYOUT={}\nCPU_DEVICES=1\nSTATE_DIR={}\n",
        hex::encode(&manager.public()),
        "22".repeat(32),
        state.display()
    );
    let path = d.join("rig.conf");
    std::fs::write(&path, conf).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(["rig", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hello = rt.block_on(async {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
            .await
            .expect("rig connects")
            .unwrap();
        let mut ch = accept_tcp(stream, &manager, HANDSHAKE_TIMEOUT)
            .await
            .unwrap();
        ch.recv_hello::<RigToManager>().await.unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    let RigToManager::Hello(h) = *hello else {
        panic!("expected Hello, got {hello:?}");
    };
    assert_eq!(h.name.as_str(), "cli-rig");
    assert_eq!(h.payout, [0x22; 32]);
    assert_eq!(h.devices.len(), 1);
    let mode = std::fs::metadata(state.join("rig.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&d);
}
