//! Output tests: normalisation identity, .mc2 order, NIfTI header read back, detected photons,
//! summary keys.

use super::*;
use crate::transport::builtin::builtin_job;
use crate::transport::input::{parse_job, ParseOptions};
use crate::transport::job::FACE_NAMES;
use crate::transport::tally::{DetectedPhoton, WEIGHT_ONE};

/// A 4x3x2 grid, 3 gates, labels 0..=2 so one voxel class has mua = 0.
fn small_job() -> Job {
    let text = r#"{
      "Session": { "ID": "small", "Photons": 10 },
      "Forward": { "T0": 0, "T1": 3e-9, "Dt": 1e-9 },
      "Domain": { "Dim": [4, 3, 2], "OriginType": 1, "LengthUnit": 0.5,
        "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 },
                   { "mua": 0.5, "mus": 1, "g": 0, "n": 1 },
                   { "mua": 0, "mus": 2, "g": 0, "n": 1 } ] },
      "Shapes": [ { "Grid": { "Tag": 1, "Size": [4, 3, 2] } },
                  { "Box": { "Tag": 2, "O": [0, 0, 1], "Size": [1, 1, 1] } } ],
      "Optode": { "Source": { "Pos": [2, 1, 0], "Dir": [0, 0, 1] },
                  "Detector": [ { "Pos": [0, 0, 0], "R": 1 } ] }
    }"#;
    parse_job(text, &ParseOptions::default()).unwrap()
}

fn hand_tally(job: &Job) -> Tally {
    let cells = job.voxels() * job.time.gates as usize;
    Tally {
        photons: 10,
        launched: 10 * WEIGHT_ONE,
        deposit: (0..cells as u64).map(|i| i * 1000 + 7).collect(),
        escaped: [WEIGHT_ONE, 0, 2 * WEIGHT_ONE, 0, 0, WEIGHT_ONE / 2],
        specular: WEIGHT_ONE / 4,
        alive_at_t1: WEIGHT_ONE / 8,
        ..Tally::default()
    }
}

fn identity_sum(job: &Job, f: &[f32]) -> f64 {
    let voxels = job.voxels();
    let vol = f64::from(job.unit_mm).powi(3);
    f.iter()
        .enumerate()
        .map(|(i, &x)| {
            let label = job.labels[i % voxels];
            f64::from(job.media[usize::from(label)].mua) * f64::from(x) * job.time.dt * vol
        })
        .sum()
}

#[test]
fn normalisation_identity_on_a_hand_tally() {
    let job = small_job();
    let mut t = hand_tally(&job);
    // Deposit only where mua > 0, as the engine does.
    let voxels = job.voxels();
    for (i, d) in t.deposit.iter_mut().enumerate() {
        if job.media[usize::from(job.labels[i % voxels])].mua == 0.0 {
            *d = 0;
        }
    }
    let f = fluence(&job, &t).unwrap();
    let deposited = Summary::new(&t).deposited;
    assert!(deposited > 0.0);
    assert!((identity_sum(&job, &f) - deposited).abs() <= 1e-5 * deposited);
    // The mua = 0 voxel (label 2 at x=0,y=0,z=1) reads 0 in every gate.
    let v = job.voxel_index(0, 0, 1);
    assert_eq!(job.labels[v], 2);
    for g in 0..3 {
        assert_eq!(f[g * voxels + v], 0.0);
    }
    // One cell by hand: deposit / launched / (mua * dt * V).
    let c = 5 * voxels / 3;
    let expect = t.deposit[c] as f64 / (10.0 * WEIGHT_ONE as f64) / (0.5 * 1e-9 * 0.125);
    assert_eq!(f[c], expect as f32);
}

#[test]
fn normalisation_identity_on_an_engine_run() {
    let mut job = builtin_job("cubesph60b", &ParseOptions::default()).unwrap();
    job.time = crate::transport::job::TimeGates {
        t0: 0.0,
        t1: 2e-9,
        dt: 0.5e-9,
        gates: 4,
    };
    let tally = crate::transport::simulate(&job, 0..3000, 2, None).unwrap();
    let f = fluence(&job, &tally).unwrap();
    let deposited = Summary::new(&tally).deposited;
    assert!(deposited > 0.01, "{deposited}");
    let sum = identity_sum(&job, &f);
    assert!(
        (sum - deposited).abs() <= 1e-5 * deposited,
        "{sum} vs {deposited}"
    );
}

#[test]
fn mc2_is_float32_x_fastest_then_y_z_gate() {
    let job = small_job();
    let t = hand_tally(&job);
    let f = fluence(&job, &t).unwrap();
    let mut bytes = Vec::new();
    write_mc2(&mut bytes, &f).unwrap();
    assert_eq!(bytes.len(), 4 * 3 * 2 * 3 * 4);
    let (nx, ny, nz) = (4usize, 3usize, 2usize);
    let at = |x: usize, y: usize, z: usize, g: usize| {
        let i = ((g * nz + z) * ny + y) * nx + x;
        f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap())
    };
    let scale = 1.0 / (10.0 * WEIGHT_ONE as f64) / (0.5 * 1e-9 * 0.125);
    let cell = |x: usize, y: usize, z: usize, g: usize| {
        let i = g * 24 + x + 4 * (y + 3 * z);
        ((i as u64 * 1000 + 7) as f64 * scale) as f32
    };
    for (x, y, z, g) in [(1, 0, 0, 0), (3, 2, 1, 2), (2, 1, 0, 1), (0, 2, 1, 1)] {
        assert_eq!(at(x, y, z, g), cell(x, y, z, g), "{x},{y},{z},{g}");
    }
}

#[test]
fn nifti_header_reads_back() {
    let job = small_job();
    let t = hand_tally(&job);
    let f = fluence(&job, &t).unwrap();
    let mut bytes = Vec::new();
    write_nifti(&mut bytes, &job, &f).unwrap();
    assert_eq!(bytes.len(), 352 + 4 * f.len());
    let i16_at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let i32_at = |o: usize| i32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let f32_at = |o: usize| f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    assert_eq!(i32_at(0), 348);
    let dims: Vec<i16> = (0..8).map(|i| i16_at(40 + 2 * i)).collect();
    assert_eq!(dims, [4, 4, 3, 2, 3, 1, 1, 1]);
    assert_eq!(i16_at(70), 16, "datatype FLOAT32");
    assert_eq!(i16_at(72), 32, "bitpix");
    assert_eq!([f32_at(80), f32_at(84), f32_at(88)], [0.5; 3]);
    assert_eq!(f32_at(92), 1e-9);
    assert_eq!(f32_at(108), 352.0, "vox_offset");
    assert_eq!(f32_at(112), 1.0, "scl_slope");
    assert_eq!(bytes[123], 2 | 8, "mm and seconds");
    assert_eq!(&bytes[344..348], b"n+1\0");
    assert_eq!(&bytes[348..352], &[0, 0, 0, 0], "no extensions");
    let mut mc2 = Vec::new();
    write_mc2(&mut mc2, &f).unwrap();
    assert_eq!(&bytes[352..], &mc2[..]);

    let mut big = job.clone();
    big.dim = [40_000, 1, 1];
    assert!(matches!(
        nifti_header(&big),
        Err(OutputError::NiftiTooLarge { .. })
    ));
}

#[test]
fn summary_fractions_and_contract_keys() {
    let job = small_job();
    let t = hand_tally(&job);
    let s = Summary::new(&t);
    assert_eq!(s.escaped, [0.1, 0.0, 0.2, 0.0, 0.0, 0.05]);
    assert_eq!(s.specular, 0.025);
    assert_eq!(s.alive_at_t1, 0.0125);
    assert!((s.absorbed_fraction - (1.0 - 0.35 - 0.025)).abs() < 1e-15);
    let run = RunInfo {
        seed: 9,
        threads: 2,
        device: "cpu".into(),
        elapsed_ms: 4.0,
        digest: [0xab; 32],
    };
    let v = s.to_json(&run);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "photons",
        "seed",
        "threads",
        "device",
        "absorbed_fraction",
        "deposited",
        "alive_at_t1",
        "specular",
        "escaped",
        "detected",
        "elapsed_ms",
        "photons_per_ms",
        "digest",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(keys.len(), 13);
    for name in FACE_NAMES {
        assert!(v["escaped"][name].is_f64());
    }
    assert_eq!(v["escaped"]["-z"], 0.2);
    assert_eq!(v["photons_per_ms"], 2.5);
    assert_eq!(v["digest"], "ab".repeat(32));
    assert_eq!(v["device"], "cpu");
}

#[test]
fn detected_photons_json_reads_back() {
    let job = small_job();
    let mut t = hand_tally(&job);
    t.detected = vec![
        DetectedPhoton {
            photon: 3,
            detector: 0,
            scatters: 12,
            path_mm: vec![0.0, 1.25, 0.1],
            exit_pos: [0.5, 0.25, 0.0],
            exit_dir: [0.0, 0.6, -0.8],
            weight: 123,
        },
        DetectedPhoton {
            photon: 8,
            detector: 0,
            scatters: 1,
            path_mm: vec![0.0, 0.3, 0.0],
            exit_pos: [0.1, 0.2, 0.0],
            exit_dir: [0.0, 0.0, -1.0],
            weight: WEIGHT_ONE,
        },
    ];
    let mut out = Vec::new();
    write_detected(&mut out, &job, &t).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["format"], "compushare-detected-photons");
    assert_eq!(v["id"], "small");
    assert_eq!(v["weight_one"], WEIGHT_ONE);
    assert_eq!(v["detectors"][0]["r"], 1.0);
    let r = v["records"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["photon"], 3);
    assert_eq!(r[0]["scatters"], 12);
    assert_eq!(r[0]["weight"], 123);
    assert_eq!(r[0]["path_mm"][1].as_f64().unwrap() as f32, 1.25);
    assert_eq!(r[0]["exit_dir"][2].as_f64().unwrap() as f32, -0.8);
    assert_eq!(r[1]["weight"], WEIGHT_ONE);
}

#[test]
fn formats_and_paths() {
    use std::path::Path;
    assert_eq!(
        VolumeFormat::from_path(Path::new("a/b.mc2")).unwrap(),
        VolumeFormat::Mc2
    );
    assert_eq!(
        VolumeFormat::from_path(Path::new("b.NII")).unwrap(),
        VolumeFormat::Nifti
    );
    assert_eq!(
        VolumeFormat::from_path(Path::new("c.png")).unwrap(),
        VolumeFormat::Png
    );
    assert!(VolumeFormat::from_path(Path::new("b.nii.gz")).is_err());
    assert!(VolumeFormat::from_path(Path::new("b")).is_err());
    assert_eq!(
        detected_path(Path::new("x/out.mc2")),
        Path::new("x/out.detp.json")
    );
    let job = small_job();
    let mut t = hand_tally(&job);
    t.deposit.pop();
    assert!(matches!(
        fluence(&job, &t),
        Err(OutputError::TallyShape { .. })
    ));
    let empty = Tally {
        deposit: vec![0; 72],
        ..Tally::default()
    };
    assert!(matches!(fluence(&job, &empty), Err(OutputError::NoPhotons)));
}

/// The picture is the plane through the source; its brightest voxel is where the beam enters
/// and the file decodes as the PNG it claims to be.
#[test]
fn picture_of_the_source_plane() {
    use crate::transport::engine::simulate;
    let mut job = builtin_job(
        "cube60",
        &ParseOptions {
            photons: Some(2000),
            ..ParseOptions::default()
        },
    )
    .unwrap();
    job.photons = 2000;
    // Pencil at (29, 29, 0) along +z: the x-z plane y = 29, depth downwards.
    assert_eq!(source_plane(&job), (1, 29));
    let tally = simulate(&job, 0..job.photons, 1, None).unwrap();
    let (px, info) = render_slice(&job, &tally).unwrap();
    assert_eq!(
        (info.normal, info.index, info.across, info.down),
        (1, 29, 0, 2)
    );
    assert_eq!(info.scale, 8);
    assert_eq!(info.height, 60 * 8);
    assert_eq!(px.len(), (info.width * info.height * 3) as usize);
    assert!(info.max > 0.0);
    // The brightest picture pixel (yellow end of the map) lies near the entry point.
    let img_w = 60 * info.scale;
    let brightest = (0..info.height)
        .flat_map(|y| (0..img_w).map(move |x| (x, y)))
        .max_by_key(|&(x, y)| {
            let i = ((y * info.width + x) * 3) as usize;
            u32::from(px[i]) + u32::from(px[i + 1])
        })
        .unwrap();
    let (vx, vz) = (brightest.0 / info.scale, brightest.1 / info.scale);
    assert!(
        (27..=31).contains(&vx) && vz <= 3,
        "brightest voxel at x {vx}, z {vz}"
    );

    let dir = std::env::temp_dir().join(format!("cs-picture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cube60.png");
    let written = write_outputs(&path, &job, &tally).unwrap();
    assert_eq!(written[0], path);
    let decoder = ::png::Decoder::new(std::fs::File::open(&path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    assert_eq!((frame.width, frame.height), (info.width, info.height));
    assert_eq!(frame.color_type, ::png::ColorType::Rgb);
    assert_eq!(&buf[..frame.buffer_size()], &px[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}
