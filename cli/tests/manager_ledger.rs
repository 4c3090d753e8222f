//! `compushare manager init|grant` and `compushare ledger verify` as an operator runs them.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn compushare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args(args)
        .output()
        .expect("run compushare")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_grant_verify() {
    let dir = std::env::temp_dir().join(format!("compushare-manager-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let d = data.to_str().expect("utf-8 path");

    let init = compushare(&["manager", "init", "--data", d]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let public = text(&init.stdout);
    assert_eq!(public.trim().len(), 64);
    let key = data.join("manager.key");
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert!(data.join("manager.redb").exists());
    // Idempotent: same key.
    let again = compushare(&["manager", "init", "--data", d]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), public);

    let client = "c1".repeat(32);
    let g = compushare(&["manager", "grant", "--data", d, &client, "12.5"]);
    assert!(g.status.success(), "{}", text(&g.stderr));
    assert_eq!(text(&g.stdout).trim(), "12.500000");
    let g = compushare(&["manager", "grant", "--data", d, &client, "0.000001"]);
    assert_eq!(text(&g.stdout).trim(), "12.500001");

    let bad = compushare(&["manager", "grant", "--data", d, &client, "1.0000001"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("AMOUNT"),
        "{}",
        text(&bad.stderr)
    );
    let bad = compushare(&["manager", "grant", "--data", d, "zz", "1"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("ACCOUNT_KEY"),
        "{}",
        text(&bad.stderr)
    );

    let v = compushare(&["ledger", "verify", "--data", d]);
    assert!(v.status.success(), "{}", text(&v.stderr));
    let line = text(&v.stdout);
    assert!(line.starts_with("ledger ok: 2 entries"), "{line}");
    assert!(line.contains("12.500001 credits granted"), "{line}");

    // Alter the client's stored balance behind the ledger's back: verify names the account.
    {
        use compushare_manager::{codec, ledger::Account, store::tables};
        use redb::ReadableTable;
        let db = redb::Database::open(data.join("manager.redb")).expect("open raw");
        let w = db.begin_write().expect("write");
        {
            let mut t = w.open_table(tables::BALANCES).expect("table");
            let key = codec::encode("a", &Account::Client([0xc1; 32])).expect("key");
            let v: i128 = codec::decode("b", t.get(key.as_slice()).expect("g").expect("v").value())
                .expect("decode");
            let nv = codec::encode("b", &(v * 2)).expect("enc");
            t.insert(key.as_slice(), nv.as_slice()).expect("insert");
        }
        w.commit().expect("commit");
    }
    let v = compushare(&["ledger", "verify", "--data", d]);
    assert!(!v.status.success());
    let err = text(&v.stderr);
    assert!(
        err.contains("account client:c1c1") && err.contains("12500001"),
        "{err}"
    );

    let missing = compushare(&[
        "ledger",
        "verify",
        "--data",
        dir.join("nope").to_str().expect("p"),
    ]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("manager init"),
        "{}",
        text(&missing.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
