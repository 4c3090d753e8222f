//! MCX JSON parser: built-in benchmarks, every shape and source, and clear errors.

use compushare_kernels::transport::builtin::{builtin_job, builtin_json, BUILTIN_NAMES};
use compushare_kernels::transport::input::bundle::JobBundle;
use compushare_kernels::transport::input::{
    bound, load_bundle, load_job, parse_bundle, parse_job, parse_job_bytes, InputError,
    ParseOptions, DEFAULT_SEED,
};
use compushare_kernels::transport::job::{FaceBoundary, Job, SourceKind};
use serde_json::{json, Value};

fn opts() -> ParseOptions {
    ParseOptions::default()
}

/// A small valid job to mutate in tests.
fn base() -> Value {
    json!({
        "Session": { "ID": "t", "Photons": 1000, "RNGSeed": 7, "DoMismatch": 1 },
        "Forward": { "T0": 0, "T1": 5e-9, "Dt": 5e-9 },
        "Domain": {
            "Dim": [10, 8, 6], "OriginType": 1, "LengthUnit": 0.5,
            "Media": [
                { "mua": 0, "mus": 0, "g": 1, "n": 1 },
                { "mua": 0.01, "mus": 1, "g": 0.9, "n": 1.37 },
                { "mua": 0.02, "mus": 2, "g": 0.8, "n": 1.4 }
            ]
        },
        "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 8, 6] } } ],
        "Optode": { "Source": { "Pos": [5, 4, 0], "Dir": [0, 0, 1] } }
    })
}

fn parse(v: &Value) -> Result<Job, InputError> {
    parse_job(&v.to_string(), &opts())
}

fn err(v: &Value) -> String {
    match parse(v) {
        Ok(_) => panic!("expected an error for {v}"),
        Err(e) => e.to_string(),
    }
}

fn label(job: &Job, x: u32, y: u32, z: u32) -> u16 {
    job.labels[job.voxel_index(x, y, z)]
}

#[test]
fn builtins_parse_as_the_reference_defines_them() {
    for name in BUILTIN_NAMES {
        let job = builtin_job(name, &opts()).unwrap();
        assert_eq!(job.id, name);
        assert_eq!(job.dim, [60, 60, 60]);
        assert_eq!(job.unit_mm, 1.0);
        assert_eq!(job.photons, 1_000_000);
        assert_eq!(job.seed, 1_648_335_518);
        assert_eq!(job.time.gates, 1);
        assert_eq!((job.time.t0, job.time.t1, job.time.dt), (0.0, 5e-9, 5e-9));
        assert_eq!(job.media.len(), 3);
        assert_eq!(
            (
                job.media[1].mua,
                job.media[1].mus,
                job.media[1].g,
                job.media[1].n
            ),
            (0.005, 1.0, 0.01, 1.37)
        );
        assert_eq!(
            (
                job.media[2].mua,
                job.media[2].mus,
                job.media[2].g,
                job.media[2].n
            ),
            (0.002, 5.0, 0.9, 1.0)
        );
        assert_eq!(job.detectors.len(), 4);
        assert_eq!(job.detectors[0].pos, [29.0, 19.0, 0.0]);
        assert_eq!(job.detectors[3].pos, [39.0, 29.0, 0.0]);
        assert!(job.detectors.iter().all(|d| d.radius == 1.0));
        assert_eq!(job.source.dir, [0.0, 0.0, 1.0]);
        assert!(job.roulette.is_none());
        assert!(!job.do_specular);
        let mismatch = name != "cube60";
        assert_eq!(job.do_mismatch, mismatch);
        let face = if mismatch {
            FaceBoundary::Fresnel
        } else {
            FaceBoundary::Absorb
        };
        assert_eq!(job.faces, [face; 6]);
        assert!(job
            .labels
            .iter()
            .all(|&l| l == 1 || (name == "cubesph60b" && l == 2)));
    }
    let planar = builtin_job("cube60planar", &opts()).unwrap();
    assert_eq!(planar.source.pos, [10.0, 10.0, -10.0]);
    assert_eq!(
        planar.source.kind,
        SourceKind::Planar {
            v1: [40.0, 0.0, 0.0],
            v2: [0.0, 40.0, 0.0]
        }
    );
    let pencil = builtin_job("cube60", &opts()).unwrap();
    assert_eq!(pencil.source.pos, [29.0, 29.0, 0.0]);
    assert_eq!(pencil.source.kind, SourceKind::Pencil);
    assert!(builtin_json("cube61").is_none());
    assert!(builtin_job("nope", &opts())
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn cubesph60b_sphere_is_rasterised_by_voxel_centres() {
    let job = builtin_job("cubesph60b", &opts()).unwrap();
    // Independent count: voxel centres within 15 of (30,30,30).
    let mut expect = 0usize;
    for k in 0..60 {
        for j in 0..60 {
            for i in 0..60 {
                let d = |a: u32| (f64::from(a) + 0.5 - 30.0).powi(2);
                let inside = d(i) + d(j) + d(k) <= 225.0;
                assert_eq!(
                    label(&job, i, j, k),
                    if inside { 2 } else { 1 },
                    "voxel {i},{j},{k}"
                );
                expect += usize::from(inside);
            }
        }
    }
    let volume = 4.0 / 3.0 * std::f64::consts::PI * 15f64.powi(3);
    assert_eq!(
        expect, 14328,
        "count of centres within R, computed independently"
    );
    assert!((expect as f64 - volume).abs() / volume < 0.02);
    assert_eq!(label(&job, 44, 30, 30), 2);
    assert_eq!(label(&job, 45, 30, 30), 1);
    assert_eq!(label(&job, 15, 30, 30), 2);
    assert_eq!(label(&job, 14, 30, 30), 1);
}

#[test]
fn defaults_follow_mcx() {
    let mut v = base();
    let s = v["Session"].as_object_mut().unwrap();
    s.remove("RNGSeed");
    s.remove("DoMismatch");
    s.remove("ID");
    v["Domain"].as_object_mut().unwrap().remove("OriginType");
    let job = parse(&v).unwrap();
    assert_eq!(job.seed, DEFAULT_SEED);
    assert!(job.do_mismatch);
    assert_eq!(job.faces, [FaceBoundary::Fresnel; 6]);
    assert_eq!(job.id, "default");
    // OriginType 0 (MCX's default): 1-based positions.
    assert_eq!(job.source.pos, [4.0, 3.0, -1.0]);
    assert_eq!(job.unit_mm, 0.5);
}

#[test]
fn dim_may_come_from_the_grid_shape() {
    let mut v = base();
    v["Domain"].as_object_mut().unwrap().remove("Dim");
    assert_eq!(parse(&v).unwrap().dim, [10, 8, 6]);
    v["Shapes"] = json!([]);
    assert!(err(&v).contains("missing field `Domain.Dim`"));
}

#[test]
fn shapes_box_cylinder_layers_origin() {
    let mut v = base();
    v["Shapes"] = json!([
        { "Name": "mix" },
        { "Grid": { "Tag": 1, "Size": [10, 8, 6] } },
        { "ZLayers": [[1, 2, 2], [6, 6, 0]] },
        { "Origin": [1, 1, 1] },
        { "Box": { "Tag": 0, "O": [2, 2, 2], "Size": [2, 1, 1] } },
        { "Origin": [0, 0, 0] },
        { "Cylinder": { "Tag": 2, "C0": [8.5, 0, 3.5], "C1": [8.5, 8, 3.5], "R": 0.6 } },
        { "XLayers": [1, 1, 2] }
    ]);
    let job = parse(&v).unwrap();
    // ZLayers 1-based: planes 0 and 1 are label 2, plane 5 is label 0.
    assert_eq!(label(&job, 5, 5, 0), 2);
    assert_eq!(label(&job, 5, 5, 1), 2);
    assert_eq!(label(&job, 5, 5, 2), 1);
    assert_eq!(label(&job, 5, 5, 5), 0);
    // Box at O + Origin = [3,3,3], size [2,1,1]: voxels x 3..5, y 3, z 3.
    assert_eq!(label(&job, 3, 3, 3), 0);
    assert_eq!(label(&job, 4, 3, 3), 0);
    assert_eq!(label(&job, 5, 3, 3), 1);
    assert_eq!(label(&job, 3, 4, 3), 1);
    assert_eq!(label(&job, 2, 3, 3), 1);
    // Cylinder along y through voxel column x=8, z=3 (centre 8.5, 3.5) of radius 0.6.
    for y in 0..8 {
        assert_eq!(label(&job, 8, y, 3), 2);
        assert_eq!(label(&job, 7, y, 3), 1);
        assert_eq!(label(&job, 8, y, 4), 1);
        assert_eq!(label(&job, 9, y, 3), 1);
    }
    // XLayers [1,1,2] is plane x = 0.
    assert!((0..8).all(|y| (0..6).all(|z| label(&job, 0, y, z) == 2)));
}

#[test]
fn every_source_type_parses() {
    let cases = [
        (
            json!({ "Type": "isotropic", "Pos": [5, 4, 3], "Dir": [0, 0, 1] }),
            SourceKind::Isotropic,
        ),
        (
            json!({ "Type": "cone", "Pos": [5, 4, 0], "Dir": [0, 0, 2], "Param1": [0.5] }),
            SourceKind::Cone { half_angle: 0.5 },
        ),
        (
            json!({ "Type": "gaussian", "Pos": [5, 4, 0], "Dir": [0, 0, 1], "Param1": [2, 0, 0, 0] }),
            SourceKind::Gaussian { waist: 2.0 },
        ),
        (
            json!({ "Type": "disk", "Pos": [5, 4, 0], "Dir": [0, 0, 1, 0], "Param1": [1.5] }),
            SourceKind::Disk { radius: 1.5 },
        ),
        (
            json!({ "Type": "pattern", "Pos": [0, 0, 0], "Dir": [0, 0, 1], "Param1": [4, 0, 0, 2], "Param2": [0, 4, 0],
                    "Pattern": { "Nx": 2, "Ny": 3, "Data": [0, 0.5, 1, 1, 0.25, 0] } }),
            SourceKind::Pattern {
                v1: [4.0, 0.0, 0.0],
                v2: [0.0, 4.0, 0.0],
                width: 2,
                height: 3,
                pattern: vec![0.0, 0.5, 1.0, 1.0, 0.25, 0.0],
            },
        ),
    ];
    for (src, kind) in cases {
        let mut v = base();
        v["Optode"]["Source"] = src;
        let job = parse(&v).unwrap();
        assert_eq!(job.source.kind, kind);
        assert_eq!(job.source.dir, [0.0, 0.0, 1.0], "direction normalised");
    }
}

#[test]
fn bcflags_roulette_gates_and_overrides() {
    let mut v = base();
    v["Session"]["BCFlags"] = json!("ccacc");
    v["Session"]["RussianRoulette"] = json!({ "Threshold": 0.001, "Survival": 20 });
    v["Forward"]["Dt"] = json!(1e-9);
    let job = parse(&v).unwrap();
    use FaceBoundary::*;
    assert_eq!(job.faces, [Cyclic, Cyclic, Absorb, Cyclic, Cyclic, Fresnel]);
    let r = job.roulette.unwrap();
    assert_eq!((r.threshold, r.survival_factor), (0.001, 20.0));
    assert_eq!(job.time.gates, 5, "5e-9 / 1e-9 is 5 gates despite rounding");
    v["Forward"]["Dt"] = json!(2e-9);
    assert_eq!(
        parse(&v).unwrap().time.gates,
        3,
        "a partial last gate counts"
    );
    v["Session"]["RussianRoulette"] = json!(1);
    assert_eq!(parse(&v).unwrap().roulette.unwrap().survival_factor, 10.0);

    v["Session"].as_object_mut().unwrap().remove("Photons");
    assert!(err(&v).contains("missing field `Session.Photons`"));
    let job = parse_job(
        &v.to_string(),
        &ParseOptions {
            photons: Some(42),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(job.photons, 42);
    assert_eq!(
        parse_job(
            &base().to_string(),
            &ParseOptions {
                photons: Some(9),
                ..opts()
            }
        )
        .unwrap()
        .photons,
        9
    );
}

#[test]
fn malformed_inputs_name_the_field() {
    type Case = (fn(&mut Value), &'static str);
    let cases: Vec<Case> = vec![
        (
            |v| {
                v["Domain"].as_object_mut().unwrap().remove("Media");
            },
            "missing field `Domain.Media`",
        ),
        (
            |v| {
                v.as_object_mut().unwrap().remove("Forward");
            },
            "missing field `Forward`",
        ),
        (
            |v| {
                v["Optode"]["Source"].as_object_mut().unwrap().remove("Dir");
            },
            "missing field `Optode.Source.Dir`",
        ),
        (
            |v| v["Domain"]["Dim"] = json!([10, -8, 6]),
            "`Domain.Dim[1]`: grid sizes must be positive",
        ),
        (
            |v| v["Domain"]["Dim"] = json!([10, 0, 6]),
            "`Domain.Dim[1]`",
        ),
        (
            |v| v["Domain"]["Dim"] = json!([10, 8]),
            "`Domain.Dim`: expected 3 sizes",
        ),
        (
            |v| v["Domain"]["LengthUnit"] = json!(-1),
            "`Domain.LengthUnit`: must be positive",
        ),
        (
            |v| v["Domain"]["Media"][1]["mua"] = json!(-0.1),
            "`Domain.Media[1].mua`",
        ),
        (
            |v| v["Domain"]["Media"][2]["g"] = json!(1.5),
            "`Domain.Media[2].g`",
        ),
        (
            |v| v["Domain"]["Media"][2]["n"] = json!(0),
            "`Domain.Media[2].n`",
        ),
        (
            |v| {
                v["Domain"]["Media"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("mus");
            },
            "missing field `Domain.Media[1].mus`",
        ),
        (
            |v| v["Shapes"][0]["Grid"]["Tag"] = json!(3),
            "`Shapes[0].Grid.Tag`: label 3 is outside the media table",
        ),
        (
            |v| v["Shapes"] = json!([{ "Sphere": { "Tag": 9, "O": [1, 1, 1], "R": 1 } }]),
            "`Shapes[0].Sphere.Tag`: label 9",
        ),
        (
            |v| v["Shapes"] = json!([{ "ZLayers": [[1, 2, 7]] }]),
            "`Shapes[0].ZLayers[0]`: label 7",
        ),
        (
            |v| v["Shapes"] = json!([{ "Sphere": { "Tag": 1, "O": [1, 1, 1], "R": -2 } }]),
            "`Shapes[0].Sphere.R`: must be positive",
        ),
        (
            |v| v["Shapes"] = json!([{ "Box": { "Tag": 1, "O": [1, 1, 1], "Size": [1, 0, 1] } }]),
            "`Shapes[0].Box.Size`",
        ),
        (
            |v| v["Shapes"] = json!([{ "Subgrid": { "Tag": 1 } }]),
            "unsupported field `Shapes[0].Subgrid`",
        ),
        (
            |v| v["Shapes"][0]["Grid"]["Size"] = json!([10, 8, 7]),
            "`Shapes[0].Grid.Size`: Grid size",
        ),
        (
            |v| v["Session"]["DoSaveExit"] = json!(1),
            "unsupported field `Session.DoSaveExit`",
        ),
        (
            |v| v["Session"]["Photons"] = json!(-5),
            "`Session.Photons`: expected a non-negative integer",
        ),
        (
            |v| v["Session"]["Photons"] = json!(0),
            "`Session.Photons`: must be at least 1",
        ),
        (
            |v| v["Session"]["RNGSeed"] = json!(-1),
            "`Session.RNGSeed`: negative seeds",
        ),
        (|v| v["Session"]["ID"] = json!("../x"), "`Session.ID`"),
        (
            |v| v["Session"]["DoNormalize"] = json!(0),
            "`Session.DoNormalize`",
        ),
        (
            |v| v["Session"]["BCFlags"] = json!("rrx"),
            "`Session.BCFlags`: unknown boundary flag 'x'",
        ),
        (
            |v| v["Session"]["BCFlags"] = json!("rrrrrr001000"),
            "`Session.BCFlags`: at most 6",
        ),
        (
            |v| v["Forward"]["T1"] = json!(0),
            "`Forward.T1`: must be greater than T0",
        ),
        (
            |v| v["Forward"]["Dt"] = json!(0),
            "`Forward.Dt`: must be positive",
        ),
        (|v| v["Forward"]["Dt"] = json!(1e-30), "`Forward.Dt`"),
        (
            |v| v["Optode"]["Source"]["Type"] = json!("fourier"),
            "`Optode.Source.Type`: source type \"fourier\" is not supported",
        ),
        (
            |v| v["Optode"]["Source"]["Dir"] = json!([0, 0, 0]),
            "`Optode.Source.Dir`: must be a non-zero",
        ),
        (
            |v| v["Optode"]["Source"]["Dir"] = json!([0, 0, 1, 5]),
            "`Optode.Source.Dir[3]`",
        ),
        (
            |v| v["Optode"]["Source"]["Param1"] = json!([1, 0, 0, 0]),
            "`Optode.Source.Param1`: not used by a pencil source",
        ),
        (
            |v| {
                v["Optode"]["Source"] =
                    json!({ "Type": "cone", "Pos": [0, 0, 0], "Dir": [0, 0, 1], "Param1": [4] })
            },
            "`Optode.Source.Param1[0]`",
        ),
        (
            |v| v["Optode"]["Source"] = json!({ "Type": "planar", "Pos": [0, 0, 0], "Dir": [0, 0, 1], "Param1": [1, 0, 0], "Param2": [2, 0, 0] }),
            "`Optode.Source.Param2`",
        ),
        (
            |v| {
                v["Optode"]["Source"] = json!({ "Type": "pattern", "Pos": [0, 0, 0], "Dir": [0, 0, 1], "Param1": [1, 0, 0], "Param2": [0, 1, 0],
              "Pattern": { "Nx": 2, "Ny": 2, "Data": [0, 1, 1] } })
            },
            "`Optode.Source.Pattern.Data`: expected Nx x Ny = 4",
        ),
        (
            |v| v["Optode"]["Detector"] = json!([{ "Pos": [1, 1, 0], "R": 0 }]),
            "`Optode.Detector[0].R`: must be positive",
        ),
        (
            |v| v["Optode"]["Detector"] = json!([{ "Pos": [1, 1, 0], "R": 1, "Z": 2 }]),
            "unsupported field `Optode.Detector[0].Z`",
        ),
        (
            |v| v["Domain"]["MediaFormat"] = json!("byte"),
            "`Domain.MediaFormat`: only meaningful with Domain.VolumeFile",
        ),
        (
            |v| v["Comment"] = json!("hi"),
            "unsupported field `Comment`",
        ),
    ];
    for (mutate, needle) in cases {
        let mut v = base();
        mutate(&mut v);
        let e = err(&v);
        assert!(e.contains(needle), "error {e:?} should contain {needle:?}");
    }
    let e = parse_job("{ \"Session\": {\n  \"ID\": }", &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn huge_dim_is_refused_before_allocation() {
    let mut v = base();
    v["Domain"]["Dim"] = json!([100000, 100000, 100000]);
    v["Shapes"] = json!([]);
    let e = parse(&v).unwrap_err();
    assert!(matches!(e, InputError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("`Domain.Dim`"));
    // The limit is the caller's: a small limit refuses a small grid with many gates.
    let mut v = base();
    v["Forward"]["Dt"] = json!(5e-12);
    let small = ParseOptions {
        max_job_bytes: 100_000,
        ..opts()
    };
    let e = parse_job(&v.to_string(), &small).unwrap_err();
    assert!(e.to_string().contains("1000 time gate(s)"), "{e}");
    assert!(parse_job(&v.to_string(), &opts()).is_ok());
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("compushare-input-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn volume_files_uint8_uint16_and_bad_sizes() {
    let dir = temp_dir("volume");
    let voxels = 10 * 8 * 6;
    let mut bytes: Vec<u8> = (0..voxels).map(|i| (i % 3) as u8).collect();
    std::fs::write(dir.join("vol8.bin"), &bytes).unwrap();
    let wide: Vec<u8> = (0..voxels)
        .flat_map(|i| ((i % 3) as u16).to_le_bytes())
        .collect();
    std::fs::write(dir.join("vol16.bin"), &wide).unwrap();

    let mut v = base();
    v["Shapes"] = json!([{ "Sphere": { "Tag": 2, "O": [0, 0, 0], "R": 1 } }]);
    v["Domain"]["VolumeFile"] = json!("vol8.bin");
    let path = dir.join("job.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let job = load_job(&path, &opts()).unwrap();
    assert_eq!(label(&job, 0, 0, 0), 2, "shapes drawn over the volume");
    assert_eq!(label(&job, 1, 0, 0), 1);
    assert_eq!(label(&job, 2, 0, 0), 2);
    assert_eq!(label(&job, 3, 0, 0), 0);
    assert_eq!(label(&job, 5, 0, 1), ((5 + 80) % 3) as u16);

    v["Domain"]["VolumeFile"] = json!("vol16.bin");
    std::fs::write(&path, v.to_string()).unwrap();
    let job16 = load_job(&path, &opts()).unwrap();
    assert_eq!(job16.labels, job.labels);
    v["Domain"]["MediaFormat"] = json!("byte");
    std::fs::write(&path, v.to_string()).unwrap();
    let e = load_job(&path, &opts()).unwrap_err().to_string();
    assert!(e.contains("vol16.bin") && e.contains("expected 480"), "{e}");

    bytes.pop();
    std::fs::write(dir.join("vol8.bin"), &bytes).unwrap();
    v["Domain"].as_object_mut().unwrap().remove("MediaFormat");
    v["Domain"]["VolumeFile"] = json!("vol8.bin");
    std::fs::write(&path, v.to_string()).unwrap();
    let e = load_job(&path, &opts()).unwrap_err().to_string();
    assert!(e.contains("vol8.bin") && e.contains("479 bytes"), "{e}");

    bytes.push(7);
    std::fs::write(dir.join("vol8.bin"), &bytes).unwrap();
    let e = load_job(&path, &opts()).unwrap_err().to_string();
    assert!(e.contains("`Domain.VolumeFile`: label 7 is outside"), "{e}");

    v["Domain"]["VolumeFile"] = json!("missing.bin");
    std::fs::write(&path, v.to_string()).unwrap();
    let e = load_job(&path, &opts()).unwrap_err().to_string();
    assert!(e.contains("missing.bin"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_volume_travels_in_the_bundle_and_the_parse_never_reads_a_file() {
    let dir = temp_dir("bundle");
    let voxels = 10 * 8 * 6;
    let bytes: Vec<u8> = (0..voxels).map(|i| (i % 3) as u8).collect();
    std::fs::write(dir.join("vol8.bin"), &bytes).unwrap();
    let mut v = base();
    v["Domain"]["VolumeFile"] = json!("vol8.bin");
    let path = dir.join("job.json");
    std::fs::write(&path, v.to_string()).unwrap();
    // The client side: the JSON and the volume next to it, as one bundle.
    let local = load_bundle(&path, &opts()).unwrap();
    assert_eq!(local.job, load_job(&path, &opts()).unwrap());
    let b = JobBundle::decode(&local.bytes).unwrap();
    assert_eq!(b.volume, Some(bytes.as_slice()));
    // The receiving side: the same job from the bytes alone, anywhere.
    assert_eq!(parse_bundle(&local.bytes, &opts()).unwrap(), local.job);
    // The JSON without its volume names a file that exists, and is not read.
    let e = parse_job_bytes(v.to_string().as_bytes(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("`Domain.VolumeFile`: names a volume file"),
        "{e}"
    );
    assert!(!e.contains("vol8") && !e.contains("480"), "{e}");
    // A volume that does not fit is described as the job's own bytes.
    let short = JobBundle {
        json: v.to_string().as_bytes(),
        volume: Some(&bytes[..100]),
    }
    .encode()
    .unwrap();
    let e = parse_bundle(&short, &opts()).unwrap_err().to_string();
    assert!(e.contains("the attached volume holds 100 bytes"), "{e}");
    // A volume with no VolumeFile to use it is refused.
    let stray = JobBundle {
        json: base().to_string().as_bytes(),
        volume: Some(&bytes),
    }
    .encode()
    .unwrap();
    let e = parse_bundle(&stray, &opts()).unwrap_err().to_string();
    assert!(e.contains("Domain.VolumeFile is not set"), "{e}");
    // A directory given as the volume says so.
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    v["Domain"]["VolumeFile"] = json!("adir");
    std::fs::write(&path, v.to_string()).unwrap();
    let e = load_job(&path, &opts()).unwrap_err().to_string();
    assert!(e.ends_with("adir: is a directory, not a file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bound_reads_the_json_alone() {
    let mut v = base();
    v["Domain"]["Dim"] = json!([800, 800, 800]);
    v["Shapes"] = json!([]);
    v["Forward"]["Dt"] = json!(2.5e-9);
    let b = bound(v.to_string().as_bytes(), &opts()).unwrap();
    assert_eq!((b.dim, b.gates, b.media, b.photons), ([800; 3], 2, 3, 1000));
    let voxels = 800u128 * 800 * 800;
    assert_eq!(b.memory_bytes, voxels * (2 * 8 + 2 + 3));
    // The Grid shape gives the size when Dim is absent.
    let mut v = base();
    v["Domain"].as_object_mut().unwrap().remove("Dim");
    let b = bound(v.to_string().as_bytes(), &opts()).unwrap();
    assert_eq!(b.dim, [10, 8, 6]);
}

#[path = "common/mod.rs"]
mod common;

#[test]
fn builtins_equal_the_engines_hand_built_jobs() {
    // cube60 without mismatch: the engine's hand-built job marks faces Fresnel, which the
    // engine treats as leaving when DoMismatch is off; the parser writes Absorb. Same physics.
    let mut hand = common::cube60(false);
    hand.faces = [FaceBoundary::Absorb; 6];
    assert_eq!(builtin_job("cube60", &opts()).unwrap(), hand);
    assert_eq!(
        builtin_job("cube60b", &opts()).unwrap(),
        common::cube60(true)
    );
    assert_eq!(
        builtin_job("cubesph60b", &opts()).unwrap(),
        common::cubesph60b()
    );
    assert_eq!(
        builtin_job("cube60planar", &opts()).unwrap(),
        common::cube60planar()
    );
}
