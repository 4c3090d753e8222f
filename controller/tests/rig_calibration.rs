//! A calibration that fails is counted, not only logged (issue 12): a real rig whose one
//! device (testkit's faulty test double) fails its start-up hash measurement (a lost
//! device's scan error) and cannot load the reference transport job. Both figures stay 0,
//! and the failures show per device-error variant in the status snapshot, the console's
//! `status`, the cgminer API's `summary` and the Prometheus metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use compushare_controller::device::DeviceRef;
use compushare_controller::ops::OpsStats;
use compushare_controller::rig::Rig;
use compushare_protocol::secure::Identity;
use compushare_testkit::devices::FaultyDevice;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calibrations_are_counted_per_error_and_shown() {
    let dir = std::env::temp_dir().join(format!("rig-calibration-{}", std::process::id()));
    let (faulty, faults) = FaultyDevice::new(0);
    faults.fail_scan.store(true, Ordering::Relaxed);
    faults.fail_load.store(true, Ordering::Relaxed);
    let devices: Vec<DeviceRef> = vec![Arc::new(faulty)];
    let mut options = compushare_testkit::rig::test_options();
    options.devices = Some(devices);
    options.calibration_photons = 16;
    options.status_every = Duration::from_millis(50);
    let s = compushare_testkit::rig::local_rig("calibration", dir.clone(), options);
    let rig = tokio::task::spawn_blocking(move || Rig::new(s, Identity::generate().unwrap()))
        .await
        .unwrap()
        .expect("a failed calibration does not stop the rig");
    let status = rig.status();
    let commands = rig.commands();
    // Counted before the rig runs: the first snapshot carries them.
    let first = status.borrow().calibration_failures;
    assert_eq!((first.of("scan"), first.of("unsupported")), (1, 1));
    assert_eq!(first.total(), 2);
    faults.fail_scan.store(false, Ordering::Relaxed);
    let task = tokio::spawn(rig.run());
    // And every snapshot the running core publishes.
    let mut rx = status.clone();
    let snap = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            rx.changed().await.expect("core runs");
            let s = rx.borrow_and_update().clone();
            if s.uptime_s > 0 || !s.devices.is_empty() {
                return s;
            }
        }
    })
    .await
    .expect("a snapshot from the running core");
    assert_eq!(snap.calibration_failures, first);

    let text = compushare_controller::console::answer(b"status", &snap, &commands)
        .await
        .text;
    assert!(
        text.contains("calibrate 2 failed (scan 1, unsupported 1)"),
        "{text}"
    );
    let m = compushare_controller::metrics::render(&snap, &OpsStats::default());
    for line in [
        "compushare_calibration_failures_total{error=\"scan\"} 1",
        "compushare_calibration_failures_total{error=\"unsupported\"} 1",
        "compushare_calibration_failures_total{error=\"transport\"} 0",
        "compushare_calibration_failures_total{error=\"cuda\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    let api = compushare_controller::api::respond(
        br#"{"command":"summary"}"#,
        &snap,
        &OpsStats::default(),
    );
    let json = api.strip_suffix(b"\0").unwrap_or(&api);
    let v: serde_json::Value = serde_json::from_slice(json).expect("summary is JSON");
    assert_eq!(v["SUMMARY"][0]["Calibration Failures"], 2, "{v}");
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
