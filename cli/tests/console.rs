//! `compushare console` against a rig's network console (the controller's ops surfaces on
//! loopback, with a test double of the rig core answering commands): one-shot, piped lines,
//! pinned and unpinned rig keys, a refused operator key.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use compushare_controller::command::{self, Command as RigCommand};
use compushare_controller::ops::{self, OpsConfig};
use compushare_controller::status::{self, RigStatus};
use compushare_protocol::hex;
use compushare_protocol::secure::Identity;

fn status() -> RigStatus {
    RigStatus {
        uptime_s: 10,
        at_unix_s: 1_796_164_509,
        ..RigStatus::empty("cli-rig", [1; 32], "0.1.0", None)
    }
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("compushare-console-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn console_cli_talks_to_a_rig() {
    let dir = tempdir("cli");
    let key = dir.join("operator.key");
    let (operator, _) = Identity::load_or_create(&key).unwrap();
    let rig = Arc::new(Identity::generate().unwrap());
    let rig_hex = hex::encode(&rig.public());

    let rt = tokio::runtime::Runtime::new().unwrap();
    // A test double of the rig core: answers Reboot, records every command.
    let (tx, mut rx) = command::channel();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    rt.spawn(async move {
        while let Some((cmd, reply)) = rx.recv().await {
            s2.lock().unwrap().push(cmd.clone());
            let _ = reply.send(match cmd {
                RigCommand::Reboot => Ok("rebooting".into()),
                _ => Err(command::CommandError::NoSuchDevice(9)),
            });
        }
    });
    let (_stx, srx) = status::channel(status());
    let cfg = OpsConfig {
        serial_console: None,
        console_listen: Some("127.0.0.1:0".parse().unwrap()),
        console_keys: vec![operator.public()],
        api_listen: None,
        metrics_listen: None,
    };
    let h = rt
        .block_on(ops::spawn_with(&cfg, srx, tx, rig.clone()))
        .unwrap();
    let addr = h.console_addr.unwrap().to_string();
    let bin = env!("CARGO_BIN_EXE_compushare");
    // `compushare console ADDR --key KEY [--rig-key PIN] --command reboot`
    let one_shot = |key: &std::path::Path, pin: Option<&str>| {
        let mut c = Command::new(bin);
        c.args(["console", &addr, "--key", key.to_str().unwrap()]);
        if let Some(pin) = pin {
            c.args(["--rig-key", pin]);
        }
        c.args(["--command", "reboot"]).output().unwrap()
    };

    // One shot, pinned.
    let out = one_shot(&key, Some(&rig_hex));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rebooting");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Piped lines, unpinned: the rig's key is printed for pinning; a failed command makes
    // the exit status non-zero after every line ran.
    let mut child = Command::new(bin)
        .args(["console", &addr, "--key", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let long = "x".repeat(300);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("help\n\nrole 9 mine\n{long}\nstatus\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("--rig-key {rig_hex}")), "{stderr}");
    assert!(stderr.contains("2 command(s) failed"), "{stderr}");
    assert!(stdout.contains("pool add URL USER"), "{stdout}");
    assert!(stdout.contains("error: no device 9"));
    assert!(stdout.contains("error: line of 300 bytes refused"));
    assert!(stdout.contains("rig       cli-rig"), "{stdout}");

    // A wrong pin fails before anything is sent.
    let out = one_shot(&key, Some(&"00".repeat(32)));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key mismatch"));

    // An operator key the rig does not list is refused, and says so.
    let other = dir.join("other.key");
    Identity::load_or_create(&other).unwrap();
    let out = one_shot(&other, None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused the session") && stderr.contains("CONSOLE_KEYS"),
        "{stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "reboot once, role once");
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}
