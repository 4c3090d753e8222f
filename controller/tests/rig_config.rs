//! rig.conf parsing: a complete good file, every kind of error naming its line and key, and
//! random or mutated files that never panic.

use std::path::Path;

use compushare_controller::config::{ConfigError, PoolConfig, Problem, RigConfig, Roles};
use compushare_protocol::types::Role;
use proptest::prelude::*;

const KEY_A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const KEY_B: &str = "abababababababababababababababababababababababababababababababab";

fn good() -> String {
    format!(
        "# CompuShare rig configuration\r\n\
         \r\n\
         MANAGER=manager.example.org:7733\r\n\
         MANAGER_KEY={KEY_A}\r\n\
         RIG_NAME = garage-rig-1\r\n\
         PAYOUT={KEY_B}\r\n\
         POOL2=stratum+tcp://backup.example.org:3333\r\n\
         POOL1=stratum+tcp://pool.example.org:3333\r\n\
         POOL1_USER=worker.1\r\n\
         POOL1_PASS=\r\n\
         POOL2_USER=worker.2\r\n\
         POOL2_PASS=x\r\n\
         ROLES=auto,transport,mine,off\r\n\
         CPU_DEVICES=2\r\n\
         VAULT_SLOTS=16\r\n\
         VAULT_SLOT_BYTES=64M\r\n\
         SERIAL_CONSOLE=/dev/ttyS0\r\n\
         CONSOLE_LISTEN=0.0.0.0:7734\r\n\
         CONSOLE_KEYS={KEY_A}, {KEY_B}\r\n\
         API_LISTEN=0.0.0.0:4028\r\n\
         STATE_DIR=/var/lib/compushare\r\n\
         SWITCH_MARGIN=0.1\r\n\
         SWITCH_DWELL_S=60\r\n\
         SWITCH_EVALUATIONS=4\r\n\
         POOL_FEE=0.02\r\n\
         WATCHDOG_SICK_S=90\r\n\
         WATCHDOG_DEAD_S=300\r\n\
         TEMP_LIMIT_C=85\r\n\
         TEMP_RESUME_C=70\r\n\
         NET_INTERFACE=enp3s0\r\n\
         NET_ADDRESS=192.168.1.20/24\r\n\
         NET_GATEWAY=192.168.1.1\r\n\
         NET_DNS=1.1.1.1, 9.9.9.9\r\n\
         NTP_SERVERS=pool.ntp.org,10.0.0.1:123\r\n"
    )
}

fn parse(text: &str) -> Result<RigConfig, ConfigError> {
    RigConfig::parse(Path::new("rig.conf"), text.as_bytes())
}

#[test]
fn good_file_sets_every_key() {
    let c = parse(&good()).unwrap();
    assert_eq!(c.manager.as_deref(), Some("manager.example.org:7733"));
    assert_eq!(c.manager_key, Some([1u8; 32]));
    assert_eq!(c.rig_name.as_deref(), Some("garage-rig-1"));
    assert_eq!(c.payout_key().unwrap(), [0xab; 32]);
    assert_eq!(
        c.pools,
        vec![
            PoolConfig {
                number: 1,
                url: "stratum+tcp://pool.example.org:3333".into(),
                user: "worker.1".into(),
                pass: "".into()
            },
            PoolConfig {
                number: 2,
                url: "stratum+tcp://backup.example.org:3333".into(),
                user: "worker.2".into(),
                pass: "x".into()
            },
        ]
    );
    assert_eq!(
        c.roles,
        Roles::PerDevice(vec![Role::Auto, Role::Transport, Role::Mine, Role::Off])
    );
    assert_eq!(c.roles.of(5), Role::Auto);
    assert_eq!(c.cpu_devices, 2);
    assert_eq!(c.vault_slots, Some(16));
    assert_eq!(c.vault_slot_bytes, Some(64 << 20));
    assert_eq!(c.serial_console.as_deref(), Some(Path::new("/dev/ttyS0")));
    assert_eq!(c.console_listen, Some("0.0.0.0:7734".parse().unwrap()));
    assert_eq!(c.console_keys, vec![[1u8; 32], [0xab; 32]]);
    assert_eq!(c.api_listen, "0.0.0.0:4028".parse().unwrap());
    assert_eq!(
        c.state_dir.as_deref(),
        Some(Path::new("/var/lib/compushare"))
    );
    assert_eq!(c.switch_margin, 0.1);
    assert_eq!((c.switch_dwell_s, c.switch_evaluations), (60, 4));
    assert_eq!(c.pool_fee, 0.02);
    assert_eq!((c.watchdog_sick_s, c.watchdog_dead_s), (90, 300));
    assert_eq!((c.temp_limit_c, c.temp_resume_c), (85, 70));
    assert_eq!(c.payout_account(), Some([0xab; 32]));
    assert_eq!(c.state_dir_or_default(), Path::new("/var/lib/compushare"));
    assert_eq!(c.network.interface.as_deref(), Some("enp3s0"));
    assert_eq!(c.network.address.as_deref(), Some("192.168.1.20/24"));
    assert_eq!(c.network.gateway, Some([192, 168, 1, 1].into()));
    assert_eq!(c.network.dns.len(), 2);
    assert_eq!(c.network.ntp_servers, vec!["pool.ntp.org", "10.0.0.1:123"]);
}

#[test]
fn defaults_apply_to_an_empty_file() {
    let c = parse("# nothing\n\n").unwrap();
    assert_eq!(c.api_listen, "127.0.0.1:4028".parse().unwrap());
    assert_eq!(c.switch_margin, 0.05);
    assert_eq!(c.cpu_devices, 1);
    assert_eq!(c.roles, Roles::All(Role::Auto));
    assert!(c.manager.is_none() && c.pools.is_empty());
    let e = c.payout_key().unwrap_err();
    assert_eq!((e.line(), e.key()), (Some(0), Some("PAYOUT")));
    assert!(e.to_string().contains("PAYOUT"), "{e}");
    // No key is required on its own: PAYOUT defaults to the rig's key, STATE_DIR sits
    // beside rig.conf, the thresholds take the defaults.
    assert_eq!(c.payout_account(), None);
    assert_eq!(c.state_dir_or_default(), Path::new("./compushare"));
    let c = RigConfig::parse(Path::new("/boot/rig.conf"), b"").unwrap();
    assert_eq!(c.state_dir_or_default(), Path::new("/boot/compushare"));
    assert_eq!((c.watchdog_sick_s, c.watchdog_dead_s), (120, 600));
    assert_eq!((c.temp_limit_c, c.temp_resume_c), (90, 80));
    assert_eq!((c.switch_dwell_s, c.switch_evaluations), (30, 3));
    assert_eq!(c.pool_fee, 0.0);
    // A payout address (not an account key) is kept for the pools, not used for transport.
    let c = parse("PAYOUT=bc1qexampleaddress0000000000000000000000\n").unwrap();
    assert_eq!(c.payout_account(), None);
    assert!(c.payout.is_some());
}

/// Replaces line `n` (1-based) of the good file, or appends when `n` is past its end.
fn with_line(n: usize, line: &str) -> String {
    let mut lines: Vec<String> = good().lines().map(str::to_owned).collect();
    if n <= lines.len() {
        lines[n - 1] = line.to_owned();
    } else {
        lines.push(line.to_owned());
    }
    lines.join("\n")
}

fn check(text: &str, line: usize, key: &str, problem: fn(&Problem) -> bool) {
    let e = parse(text).expect_err(text);
    assert_eq!(e.line(), Some(line), "{e}");
    assert_eq!(e.key(), Some(key), "{e}");
    assert!(problem(e.problem().unwrap()), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("rig.conf:{line}: {key}")),
        "{shown}"
    );
}

#[test]
fn every_error_names_line_and_key() {
    let n = good().lines().count();
    check(&with_line(4, "MANAGER_KEY=xyz"), 4, "MANAGER_KEY", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(3, "MANAGER=no-port"), 3, "MANAGER", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(3, "MANAGER=host:0"), 3, "MANAGER", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(n + 1, "COLOR=blue"), n + 1, "COLOR", |p| {
        *p == Problem::UnknownKey
    });
    check(
        &with_line(n + 1, "POOL0=stratum+tcp://a:1"),
        n + 1,
        "POOL0",
        |p| *p == Problem::UnknownKey,
    );
    check(
        &with_line(n + 1, "POOL1_WHAT=x"),
        n + 1,
        "POOL1_WHAT",
        |p| *p == Problem::UnknownKey,
    );
    check(&with_line(n + 1, "MANAGER=a:1"), n + 1, "MANAGER", |p| {
        *p == Problem::Duplicate { first_line: 3 }
    });
    check(&with_line(5, "RIG_NAME="), 5, "RIG_NAME", |p| {
        *p == Problem::Empty
    });
    check(&with_line(5, "just words"), 5, "", |p| {
        *p == Problem::NoEquals
    });
    check(&with_line(13, "ROLES=auto,fly"), 13, "ROLES", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(14, "CPU_DEVICES=-1"), 14, "CPU_DEVICES", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(14, "CPU_DEVICES=33"), 14, "CPU_DEVICES", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(&with_line(15, "VAULT_SLOTS=0"), 15, "VAULT_SLOTS", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(
        &with_line(16, "VAULT_SLOT_BYTES=12Q"),
        16,
        "VAULT_SLOT_BYTES",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(
        &with_line(17, "SERIAL_CONSOLE=ttyS0"),
        17,
        "SERIAL_CONSOLE",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(
        &with_line(18, "CONSOLE_LISTEN=everywhere"),
        18,
        "CONSOLE_LISTEN",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(
        &with_line(19, &format!("CONSOLE_KEYS={KEY_A},zz")),
        19,
        "CONSOLE_KEYS",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(&with_line(20, "API_LISTEN=4028"), 20, "API_LISTEN", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(
        &with_line(22, "SWITCH_MARGIN=1.5"),
        22,
        "SWITCH_MARGIN",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(
        &with_line(22, "SWITCH_MARGIN=NaN"),
        22,
        "SWITCH_MARGIN",
        |p| matches!(p, Problem::Invalid { .. }),
    );
    check(&with_line(7, "POOL2=http://x:1"), 7, "POOL2", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    check(
        &with_line(n + 1, "POOL3_USER=w"),
        n + 1,
        "POOL3_USER",
        |p| *p == Problem::PoolWithoutUrl,
    );
    check(&with_line(6, "PAYOUT=two words"), 6, "PAYOUT", |p| {
        matches!(p, Problem::Invalid { .. })
    });
    for (line, bad) in [
        (23, "SWITCH_DWELL_S=-1"),
        (24, "SWITCH_EVALUATIONS=0"),
        (25, "POOL_FEE=1"),
        (26, "WATCHDOG_SICK_S=0"),
        (27, "WATCHDOG_DEAD_S=one"),
        (28, "TEMP_LIMIT_C=200"),
        (29, "TEMP_RESUME_C=-5"),
        (30, "NET_INTERFACE=a-very-long-interface-name"),
        (31, "NET_ADDRESS=192.168.1.20"),
        (31, "NET_ADDRESS=dhcp6"),
        (32, "NET_GATEWAY=gateway"),
        (33, "NET_DNS=1.1.1.1,,2.2.2.2"),
        (34, "NTP_SERVERS=a b"),
        (34, "NTP_SERVERS=host:0"),
    ] {
        let key = bad.split('=').next().unwrap();
        check(&with_line(line, bad), line, key, |p| {
            matches!(p, Problem::Invalid { .. })
        });
    }
    // Keys that only make sense together: the later line is named.
    check(
        &with_line(27, "WATCHDOG_DEAD_S=60"),
        27,
        "WATCHDOG_DEAD_S",
        |p| matches!(p, Problem::Requires { .. }),
    );
    check(
        &with_line(29, "TEMP_RESUME_C=85"),
        29,
        "TEMP_RESUME_C",
        |p| matches!(p, Problem::Requires { .. }),
    );
    check(&with_line(4, "# no key"), 3, "MANAGER", |p| {
        matches!(
            p,
            Problem::Requires {
                other: "MANAGER_KEY",
                ..
            }
        )
    });
    check(&with_line(3, "# no manager"), 4, "MANAGER_KEY", |p| {
        matches!(
            p,
            Problem::Requires {
                other: "MANAGER",
                ..
            }
        )
    });
    let mut bytes = good().into_bytes();
    bytes.extend_from_slice(b"RIG_NAME=\xff\xfe\n");
    let e = RigConfig::parse(Path::new("rig.conf"), &bytes).unwrap_err();
    assert_eq!(e.line(), Some(n + 1));
    assert_eq!(e.problem(), Some(&Problem::NotUtf8));
    let long = format!("RIG_NAME={}", "x".repeat(5000));
    check(&with_line(5, &long), 5, "", |p| *p == Problem::LineTooLong);
    check(
        &with_line(5, &format!("RIG_NAME={}", "x".repeat(49))),
        5,
        "RIG_NAME",
        |p| matches!(p, Problem::Invalid { .. }),
    );
}

#[test]
fn lenient_parse_keeps_good_lines_and_names_every_bad_one() {
    let text = "API_LISTEN=0.0.0.0:4028\nCOLOR=blue\nSERIAL_CONSOLE=/dev/ttyS0\nCPU_DEVICES=x\n";
    let (c, errors) = RigConfig::parse_lenient(Path::new("rig.conf"), text.as_bytes());
    assert_eq!(c.api_listen, "0.0.0.0:4028".parse().unwrap());
    assert_eq!(c.serial_console.as_deref(), Some(Path::new("/dev/ttyS0")));
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line()).collect();
    assert_eq!(lines, vec![Some(2), Some(4)]);
    // A good file: no error, the same config as the strict parse.
    let (c, errors) = RigConfig::parse_lenient(Path::new("rig.conf"), good().as_bytes());
    assert!(errors.is_empty());
    assert_eq!(c, parse(&good()).unwrap());
}

#[test]
fn missing_file_and_missing_key_are_named() {
    let e = RigConfig::load(Path::new("/nonexistent/rig.conf")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/rig.conf"), "{e}");
    let c = parse("").unwrap();
    let e = c.missing("MANAGER");
    assert_eq!(
        e.to_string(),
        "rig.conf:0: MANAGER: required key is not set"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = RigConfig::parse(Path::new("rig.conf"), &bytes);
        let (_, errors) = RigConfig::parse_lenient(Path::new("rig.conf"), &bytes);
        let lines = bytes.split(|&b| b == b'\n').count();
        for e in errors {
            prop_assert!(e.line().is_some_and(|l| l >= 1 && l <= lines), "{}", e);
        }
    }

    #[test]
    fn mutated_good_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = good().into_bytes();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        if let Err(e) = RigConfig::parse(Path::new("rig.conf"), &bytes) {
            // Every error about a line names it, within the file.
            let lines = bytes.split(|&b| b == b'\n').count();
            prop_assert!(e.line().is_some_and(|l| l >= 1 && l <= lines), "{}", e);
        }
    }

    #[test]
    fn random_lines_of_known_keys_never_panic(
        key in prop::sample::select(vec![
            "MANAGER", "MANAGER_KEY", "RIG_NAME", "PAYOUT", "POOL1", "POOL1_USER", "POOL1_PASS",
            "POOL16", "POOL17", "ROLES", "CPU_DEVICES", "VAULT_SLOTS", "VAULT_SLOT_BYTES",
            "SERIAL_CONSOLE", "CONSOLE_LISTEN", "CONSOLE_KEYS", "API_LISTEN", "STATE_DIR",
            "SWITCH_MARGIN", "SWITCH_DWELL_S", "SWITCH_EVALUATIONS", "POOL_FEE",
            "WATCHDOG_SICK_S", "WATCHDOG_DEAD_S", "TEMP_LIMIT_C", "TEMP_RESUME_C",
            "NET_INTERFACE", "NET_ADDRESS", "NET_GATEWAY", "NET_DNS", "NTP_SERVERS",
        ]),
        value in "\\PC{0,80}",
    ) {
        let text = format!("{key}={value}\n");
        match parse(&text) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.line(), Some(1));
            }
        }
    }
}

#[test]
fn a_state_dir_that_is_a_file_names_its_line() {
    let file = std::env::temp_dir().join(format!("cs-state-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let text = format!(
        "MANAGER=127.0.0.1:7733\nMANAGER_KEY={KEY_A}\nSTATE_DIR={}\n",
        file.display()
    );
    let e = parse(&text).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.to_string().contains("STATE_DIR"), "{e}");
    assert!(e.to_string().contains("this path is a file"), "{e}");
}
