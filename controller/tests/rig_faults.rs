//! One device's fault never stops the others: a real rig with two CPU devices and one
//! faulty test double (testkit) hashing at the validating test pool. The faulty device hangs:
//! it is restarted (SICK) and then disabled (DEAD) while the others keep hashing and their
//! shares stay valid; a device over its temperature limit is paused and resumes after
//! cooling. Thresholds are tiny here (rig.conf keys), so nothing waits for minutes.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_clean, pool, settings, wait_for};
use compushare_controller::command::{Command, CommandError};
use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::DeviceRef;
use compushare_controller::mining::NumberedPool;
use compushare_controller::rig::Rig;
use compushare_controller::settings::RigSettings;
use compushare_controller::status::{Health, RigStatus, StatusRx};
use compushare_controller::stratum::client::PoolConfig;
use compushare_controller::stratum::conn::PoolUrl;
use compushare_controller::watchdog::WatchdogConfig;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::Role;
use compushare_testkit::devices::FaultyDevice;

const LIMIT: Duration = Duration::from_secs(60);

fn snap(s: &StatusRx) -> RigStatus {
    (**s.borrow()).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_device_is_restarted_then_disabled_and_a_hot_one_pauses() {
    let p = pool(settings()).await;
    let dir = std::env::temp_dir().join(format!("rig-faults-{}", std::process::id()));
    let (faulty, faults) = FaultyDevice::new(2);
    let devices: Vec<DeviceRef> = vec![
        Arc::new(CpuDevice::new(0, 1, 1 << 30, "test CPU")),
        Arc::new(CpuDevice::new(1, 1, 1 << 30, "test CPU")),
        Arc::new(faulty),
    ];
    let mut options = compushare_testkit::rig::test_options();
    options.devices = Some(devices);
    options.calibration_photons = 16;
    options.client = common::client();
    let s = RigSettings {
        pools: vec![NumberedPool {
            number: 1,
            pool: PoolConfig {
                url: PoolUrl::parse(&p.url()).unwrap(),
                user: "w".into(),
                pass: "x".into(),
            },
        }],
        watchdog: WatchdogConfig {
            sick: Duration::from_secs(2),
            dead: Duration::from_secs(5),
            temp_limit_dc: 900,
            temp_resume_dc: 800,
        },
        ..compushare_testkit::rig::local_rig("faults", dir.clone(), options)
    };
    let rig = tokio::task::spawn_blocking(move || Rig::new(s, Identity::generate().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let status = rig.status();
    let commands = rig.commands();
    let task = tokio::spawn(rig.run());

    // All three hash.
    wait_for("every device hashing", LIMIT, || {
        let s = snap(&status);
        s.devices.len() == 3 && s.devices.iter().all(|d| d.hashes > 0)
    })
    .await;

    // Device 2 overheats: paused (its role reads off) while the others hash on.
    faults.temperature_dc.store(950, Ordering::Relaxed);
    wait_for("device 2 paused hot", LIMIT, || {
        let d = &snap(&status).devices[2];
        d.health == Health::Hot && d.role == Role::Off
    })
    .await;
    // The unit it was scanning stops at its next cancel check and is counted; after that,
    // nothing (snapshots are a quarter second apart).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let h = snap(&status).devices[2].hashes;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        snap(&status).devices[2].hashes,
        h,
        "a hot device does not hash"
    );
    faults.temperature_dc.store(790, Ordering::Relaxed);
    wait_for("device 2 resumed", LIMIT, || {
        let d = &snap(&status).devices[2];
        d.health == Health::Ok && d.hashes > h
    })
    .await;

    // Device 2 hangs: SICK (restarted) within the sick threshold, then DEAD.
    faults.hang.store(true, Ordering::Relaxed);
    wait_for("device 2 sick", LIMIT, || {
        snap(&status).devices[2].health == Health::Sick
    })
    .await;
    let before: Vec<u64> = snap(&status).devices.iter().map(|d| d.hashes).collect();
    wait_for("device 2 dead", LIMIT, || {
        snap(&status).devices[2].health == Health::Dead
    })
    .await;
    // The others never stopped.
    wait_for("devices 0 and 1 still hashing", LIMIT, || {
        let now = snap(&status);
        now.devices[0].hashes > before[0] && now.devices[1].hashes > before[1]
    })
    .await;
    let d2 = snap(&status).devices[2].clone();
    assert_eq!(d2.role, Role::Off);
    // A dead device takes no role; the operator is told why.
    assert_eq!(
        commands
            .call(Command::Role {
                device: Some(2),
                role: Role::Mine
            })
            .await,
        Err(CommandError::DeviceDead(2))
    );
    // Unhang the stuck thread: it must not come back to life.
    faults.hang.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d2b = snap(&status).devices[2].clone();
    assert_eq!(d2b.health, Health::Dead);
    assert_eq!(d2b.hashes, d2.hashes, "a disabled device stays off");
    assert!(p.stats().accepted > 0);
    assert_clean("faults pool", &p.stats());
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
