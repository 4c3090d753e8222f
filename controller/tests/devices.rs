//! The device trait on CPU devices (the CUDA device implements the same trait; no GPU here):
//! a scan finds exactly the nonces a one-at-a-time reference finds, across the device's
//! threads, and stops when cancelled; a transport run gives the engine's tally and records
//! bit for bit, on any core count; discovery splits the cores; calibration measures both.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use compushare_controller::device::calibrate;
use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::{discover, Device, DiscoverOptions, Output, Scan};
use compushare_kernels::sha256d::{sha256d, ScanWork, Target};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::{simulate, simulate_with_records, Engine};
use compushare_protocol::types::DeviceKind;

fn header() -> [u8; 80] {
    let mut h = [0u8; 80];
    for (i, b) in h.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    h
}

/// Scans `nonces` uncancelled: how many were hashed, and the nonces found (sorted, once each).
fn scan_all(d: &dyn Device, work: &ScanWork, nonces: std::ops::Range<u64>) -> (u64, Vec<u32>) {
    let found = Mutex::new(Vec::new());
    let never = AtomicBool::new(false);
    let hashed = d
        .scan(Scan {
            work,
            nonces,
            cancel: &never,
            found: &|n| found.lock().unwrap().push(n),
        })
        .unwrap();
    let mut got = found.into_inner().unwrap();
    got.sort_unstable();
    got.dedup();
    (hashed, got)
}

#[test]
fn scan_matches_the_reference_on_every_thread_count() {
    // Difficulty 2^-14: about one nonce in 2^18 meets it.
    let target = Target::from_difficulty(1.0 / 16384.0).unwrap();
    let work = ScanWork::new(header(), target);
    let range = 0u64..(1 << 20);
    let want: Vec<u32> = range
        .clone()
        .map(|n| n as u32)
        .filter(|&n| target.is_met_by(&sha256d(&work.header_with_nonce(n))))
        .collect();
    assert!(!want.is_empty());
    for cores in [1usize, 2, 3] {
        let d = CpuDevice::new(0, cores, 1 << 30, "test CPU");
        let (hashed, got) = scan_all(&d, &work, range.clone());
        assert_eq!(hashed, range.end - range.start, "{cores} cores");
        assert_eq!(got, want, "{cores} cores");
    }
    // Cancelled before it starts: stops within its first check.
    let d = CpuDevice::new(0, 2, 1 << 30, "test CPU");
    let cancel = AtomicBool::new(true);
    let hashed = d
        .scan(Scan {
            work: &work,
            nonces: 0..(1 << 30),
            cancel: &cancel,
            found: &|_| {},
        })
        .unwrap();
    assert!(hashed < 1 << 24, "{hashed}");
}

#[test]
fn transport_runs_equal_the_engine_bit_for_bit() {
    let opts = ParseOptions {
        photons: Some(300),
        ..ParseOptions::default()
    };
    let mut job = builtin_job("cube60", &opts).unwrap();
    job.seed = 11;
    let range = 40u64..340;
    let tally = simulate(&job, range.clone(), 1, None).unwrap();
    let (_, records) = simulate_with_records(&job, range.clone(), 1, None).unwrap();
    for cores in [1usize, 2, 4] {
        let d = CpuDevice::new(0, cores, 1 << 30, "test CPU");
        let mut loaded = d.load(&job).unwrap();
        let out = loaded.run(range.clone(), Output::Tally).unwrap();
        assert_eq!(out.tally.unwrap().digest(), tally.digest(), "{cores} cores");
        assert!(out.records.is_empty());
        let out = loaded.run(range.clone(), Output::TallyAndRecords).unwrap();
        assert_eq!(out.tally.unwrap().digest(), tally.digest());
        assert_eq!(out.records, records);
        let out = loaded.run(range.clone(), Output::RecordsOnly).unwrap();
        assert!(out.tally.is_none());
        assert_eq!(out.records, records);
    }
    // And each record is the photon simulated alone.
    let engine = Engine::new(&job).unwrap();
    assert_eq!(records[7], engine.simulate_photon(range.start + 7));
}

#[test]
fn discovery_splits_the_cores_and_calibration_measures() {
    let (devices, _notes) = discover(&DiscoverOptions {
        cpu_devices: 3,
        cores: Some(4),
        no_gpus: true,
    });
    let cores: Vec<u32> = devices.iter().map(|d| d.describe().cores).collect();
    assert_eq!(cores, vec![2, 1, 1]);
    assert!(devices
        .iter()
        .all(|d| d.describe().kind == DeviceKind::Cpu && d.describe().no_paid_transport.is_none()));
    let (more, _) = discover(&DiscoverOptions {
        cpu_devices: 4,
        cores: Some(2),
        no_gpus: true,
    });
    assert!(
        more.iter().all(|d| d.describe().cores == 1),
        "every device gets a core"
    );
    let d = &devices[1];
    assert!(calibrate::hash_rate(d.as_ref()).unwrap() > 0);
    assert!(calibrate::reference_histories_per_s(d.as_ref(), 16).unwrap() > 0);
    // The CPU reads no power or fan; its temperature only where the machine exposes one.
    let t = d.telemetry();
    assert_eq!((t.power_w, t.fan_percent), (None, None));
}

/// The rig's CUDA device through the same trait, on a machine with an NVIDIA GPU
/// (kernels/tests/gpu_checks.sh runs this binary there): scans find the reference's nonces,
/// transport gives the CPU engine's tally and records bit for bit in all three outputs, and
/// calibration measures both rates. Without a GPU (CI) it says SKIPPED loudly and checks that
/// discovery left no GPU device behind.
#[test]
fn cuda_devices_equal_the_cpu_through_the_trait() {
    let (devices, notes) = discover(&DiscoverOptions {
        cpu_devices: 0,
        cores: Some(1),
        no_gpus: false,
    });
    let gpus: Vec<_> = devices
        .iter()
        .filter(|d| d.describe().kind == DeviceKind::CudaGpu)
        .collect();
    if gpus.is_empty() {
        eprintln!("######## SKIPPED (no CUDA GPU device: {notes:?}) ########");
        assert!(devices.is_empty(), "no CPU devices were asked for");
        return;
    }
    let target = Target::from_difficulty(1.0 / 16384.0).unwrap();
    let work = ScanWork::new(header(), target);
    let range = 0u64..(1 << 22);
    let mut want: Vec<u32> = range
        .clone()
        .map(|n| n as u32)
        .filter(|&n| target.is_met_by(&sha256d(&work.header_with_nonce(n))))
        .collect();
    want.sort_unstable();
    let opts = ParseOptions {
        photons: Some(200_000),
        ..ParseOptions::default()
    };
    let job = builtin_job("cubesph60b", &opts).unwrap();
    let photons = 1_000u64..201_000;
    let (tally, records) = simulate_with_records(&job, photons.clone(), 2, None).unwrap();
    for d in gpus {
        let name = d.describe().name.to_string();
        assert!(d.describe().no_paid_transport.is_none(), "{name}");
        let (hashed, got) = scan_all(d.as_ref(), &work, range.clone());
        assert!(hashed >= range.end - range.start, "{name}: {hashed}");
        assert_eq!(got, want, "{name}: nonces");
        let mut loaded = d.load(&job).unwrap();
        let out = loaded.run(photons.clone(), Output::Tally).unwrap();
        assert_eq!(out.tally.unwrap().digest(), tally.digest(), "{name}: tally");
        let out = loaded
            .run(photons.clone(), Output::TallyAndRecords)
            .unwrap();
        assert_eq!(out.tally.unwrap().digest(), tally.digest(), "{name}: tally");
        assert!(out.records == records, "{name}: records");
        let block = 5_000u64..5_064;
        let out = loaded.run(block.clone(), Output::RecordsOnly).unwrap();
        assert!(out.tally.is_none());
        assert!(
            out.records[..] == records[4_000..4_064],
            "{name}: sample block"
        );
        let h = calibrate::hash_rate(d.as_ref()).unwrap();
        let t = calibrate::reference_histories_per_s(d.as_ref(), 100_000).unwrap();
        eprintln!("{name}: scan, tally, records and a sample block equal the CPU's; {h} H/s, {t} histories/s; {:?}", d.telemetry());
    }
}

/// A scan the backend refuses comes back typed, with the backend's error kept as its source
/// (no string across the boundary); its variant names the counters' label.
#[test]
fn scan_errors_are_typed_and_keep_their_source() {
    use compushare_controller::device::{DeviceError, ScanFault};
    use compushare_kernels::sha256d::ScanError;
    use std::error::Error as _;

    let d = CpuDevice::new(0, 2, 1 << 30, "test CPU");
    let work = ScanWork::new(header(), Target::from_be_bytes([0; 32]));
    let never = AtomicBool::new(false);
    let e = d
        .scan(Scan {
            work: &work,
            nonces: (1u64 << 32) - 8..(1u64 << 32) + 8,
            cancel: &never,
            found: &|_| {},
        })
        .expect_err("a range past 2^32 is refused");
    assert!(
        matches!(
            &e,
            DeviceError::Scan(ScanFault::Backend(ScanError::NonceRange { .. }))
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), "scan");
    // The display is what the logs always said; the chain reaches the kernels' error.
    assert!(e.to_string().starts_with("scan: nonce range "), "{e}");
    let inner = e
        .source()
        .and_then(|s| s.source())
        .expect("backend error kept");
    assert!(inner.downcast_ref::<ScanError>().is_some(), "{inner:?}");
    assert_eq!(DeviceError::KINDS.len(), 6);
}
