//! Flight sheets on the rig: laid over rig.conf by rig.conf's own parser (a key set in the
//! file wins, errors name the key), kept in STATE_DIR atomically and read back at start.

use std::path::Path;

use compushare_controller::config::RigConfig;
use compushare_controller::sheet;
use compushare_protocol::sheet::{FlightSheet, Setting, SheetPool, SheetSettings};
use compushare_protocol::types::{bounded, Amount, Role};

fn conf(text: &str) -> RigConfig {
    RigConfig::parse(Path::new("rig.conf"), text.as_bytes()).expect("rig.conf")
}

const FARM_RIG: &str = "MANAGER=127.0.0.1:7733\nMANAGER_KEY=0101010101010101010101010101010101010101010101010101010101010101\nFARM_KEY=0202020202020202020202020202020202020202020202020202020202020202\n";

fn pool(url: &str) -> SheetPool {
    SheetPool {
        url: bounded(url),
        user: bounded("farm.worker"),
        pass: bounded("x"),
    }
}

fn sheet(version: u64, settings: SheetSettings) -> FlightSheet {
    FlightSheet {
        farm: bounded("farm-a"),
        version,
        settings,
    }
}

fn full() -> SheetSettings {
    SheetSettings {
        pools: Some(
            heapless::Vec::from_slice(&[
                pool("stratum+tcp://pool-a:3333"),
                pool("stratum+tcp://pool-b:3333"),
            ])
            .unwrap(),
        ),
        payout: Some([9; 32]),
        roles: Some(heapless::Vec::from_slice(&[Role::Mine]).unwrap()),
        switch_margin_ppm: Some(120_000),
        min_price: Some(Amount(7)),
        console_keys: Some(heapless::Vec::from_slice(&[[5; 32]]).unwrap()),
        watchdog_sick_s: Some(60),
        watchdog_dead_s: Some(300),
        temp_limit_c: Some(85),
        temp_resume_c: Some(75),
        extra: heapless::Vec::from_slice(&[Setting {
            key: bounded("SWITCH_DWELL_S"),
            value: bounded("12"),
        }])
        .unwrap(),
    }
}

#[test]
fn farm_rig_needs_only_three_keys_and_farm_key_needs_a_manager() {
    let c = conf(FARM_RIG);
    assert_eq!(c.farm_key, Some([2; 32]));
    let e = RigConfig::parse(
        Path::new("rig.conf"),
        b"FARM_KEY=0202020202020202020202020202020202020202020202020202020202020202\n",
    )
    .unwrap_err();
    assert_eq!(e.line(), Some(1));
    assert_eq!(e.key(), Some("FARM_KEY"));
}

#[test]
fn every_sheet_field_lands_on_its_key() {
    let (eff, kept) = sheet::overlay(&conf(FARM_RIG), &sheet(3, full())).expect("applies");
    assert!(kept.is_empty());
    let urls: Vec<&str> = eff.pools.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(
        urls,
        ["stratum+tcp://pool-a:3333", "stratum+tcp://pool-b:3333"]
    );
    assert_eq!(eff.pools[0].user, "farm.worker");
    assert_eq!(eff.payout_account(), Some([9; 32]));
    assert_eq!(eff.roles.of(5), Role::Mine);
    assert!((eff.switch_margin - 0.12).abs() < 1e-12);
    assert_eq!(eff.min_price, Some(7));
    assert_eq!(eff.console_keys, vec![[5; 32]]);
    assert_eq!((eff.watchdog_sick_s, eff.watchdog_dead_s), (60, 300));
    assert_eq!((eff.temp_limit_c, eff.temp_resume_c), (85, 75));
    assert_eq!(eff.switch_dwell_s, 12);
    // The file's keys stay the file's.
    assert_eq!(eff.keys_set, conf(FARM_RIG).keys_set);
}

#[test]
fn a_key_set_in_rig_conf_wins() {
    let text =
        format!("{FARM_RIG}POOL1=stratum+tcp://own-pool:3333\nTEMP_LIMIT_C=95\nMIN_PRICE=3\n");
    let (eff, kept) = sheet::overlay(&conf(&text), &sheet(4, full())).expect("applies");
    let urls: Vec<&str> = eff.pools.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(
        urls,
        ["stratum+tcp://own-pool:3333"],
        "any POOLn keeps the file's list"
    );
    assert_eq!(eff.temp_limit_c, 95);
    assert_eq!(eff.temp_resume_c, 75, "the sheet's other keys still apply");
    assert_eq!(eff.min_price, Some(3));
    for k in ["POOL1", "TEMP_LIMIT_C", "MIN_PRICE"] {
        assert!(kept.iter().any(|x| x == k), "{k} in {kept:?}");
    }
}

#[test]
fn sheets_a_rig_cannot_apply_are_refused_naming_the_key() {
    let base = conf(FARM_RIG);
    let refused = |s: SheetSettings| {
        sheet::overlay(&base, &sheet(5, s))
            .expect_err("refused")
            .to_string()
    };
    let bad_url = SheetSettings {
        pools: Some(heapless::Vec::from_slice(&[pool("http://not-stratum")]).unwrap()),
        ..SheetSettings::default()
    };
    let e = refused(bad_url);
    assert!(
        e.contains("flight sheet farm-a v5") && e.contains("POOL1"),
        "{e}"
    );
    let unknown = SheetSettings {
        extra: heapless::Vec::from_slice(&[Setting {
            key: bounded("GPU_OVERCLOCK"),
            value: bounded("1"),
        }])
        .unwrap(),
        ..SheetSettings::default()
    };
    let e = refused(unknown);
    assert!(
        e.contains("GPU_OVERCLOCK") && e.contains("unknown key"),
        "{e}"
    );
    let not_live = SheetSettings {
        extra: heapless::Vec::from_slice(&[Setting {
            key: bounded("VAULT_SLOTS"),
            value: bounded("4"),
        }])
        .unwrap(),
        ..SheetSettings::default()
    };
    let e = refused(not_live);
    assert!(e.contains("VAULT_SLOTS") && e.contains("rig.conf"), "{e}");
    // A conflict with the file's own value is the sheet's to fix.
    let text = format!("{FARM_RIG}TEMP_LIMIT_C=85\n");
    let e = sheet::overlay(
        &conf(&text),
        &sheet(
            6,
            SheetSettings {
                temp_resume_c: Some(88),
                ..SheetSettings::default()
            },
        ),
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("TEMP_RESUME_C"), "{e}");
}

#[test]
fn kept_sheet_survives_and_a_torn_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("cs-sheet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(sheet::load(&dir).expect("no file is fine").is_none());
    let a = sheet(1, full());
    sheet::store(&dir, &a).expect("store");
    assert_eq!(sheet::load(&dir).expect("load"), Some(a.clone()));
    let mut b = sheet(2, full());
    b.settings.temp_limit_c = Some(80);
    sheet::store(&dir, &b).expect("store over");
    assert_eq!(sheet::load(&dir).expect("load"), Some(b));
    assert!(!dir.join(format!("{}.tmp", sheet::SHEET_FILE)).exists());
    // Any flipped byte or cut is detected, never read as a sheet.
    let bytes = std::fs::read(dir.join(sheet::SHEET_FILE)).unwrap();
    for i in [0, 9, 40, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        std::fs::write(dir.join(sheet::SHEET_FILE), &bad).unwrap();
        assert!(sheet::load(&dir).is_err(), "flip at {i}");
    }
    std::fs::write(dir.join(sheet::SHEET_FILE), &bytes[..bytes.len() / 2]).unwrap();
    assert!(sheet::load(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
