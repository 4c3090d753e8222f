//! `compushare sim` end to end: the built binary, its JSON summary, outputs and errors.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compushare"))
        .arg("sim")
        .args(args)
        .output()
        .expect("spawn compushare")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn stderr_of(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("compushare-sim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bench_cube60_json_summary() {
    let v = json_of(&sim(&[
        "--bench",
        "cube60",
        "--photons",
        "20000",
        "--threads",
        "2",
        "--json",
    ]));
    assert_eq!(v["photons"], 20000);
    assert_eq!(v["seed"], 1_648_335_518u64);
    assert_eq!(v["threads"], 2);
    assert_eq!(v["device"], "cpu");
    let absorbed = v["absorbed_fraction"].as_f64().unwrap();
    // Reference 0.1769; 20000 photons give a standard error well under 0.01.
    assert!((absorbed - 0.1769).abs() < 0.02, "{absorbed}");
    let escaped: f64 = ["-x", "+x", "-y", "+y", "-z", "+z"]
        .iter()
        .map(|k| v["escaped"][k].as_f64().unwrap())
        .sum();
    let specular = v["specular"].as_f64().unwrap();
    assert!((absorbed - (1.0 - escaped - specular)).abs() < 1e-12);
    let deposited = v["deposited"].as_f64().unwrap();
    let alive = v["alive_at_t1"].as_f64().unwrap();
    assert!(
        (deposited + alive + escaped + specular - 1.0).abs() < 1e-6,
        "energy identity"
    );
    assert!(v["detected"].as_u64().is_some());
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert!(v["photons_per_ms"].as_f64().unwrap() > 0.0);
    let digest = v["digest"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn digest_is_independent_of_threads_and_follows_the_seed() {
    let digest = |extra: &[&str]| {
        let mut args = vec!["--bench", "cubesph60b", "--photons", "3000", "--json"];
        args.extend_from_slice(extra);
        json_of(&sim(&args))["digest"].as_str().unwrap().to_owned()
    };
    let one = digest(&["--threads", "1"]);
    assert_eq!(one, digest(&["--threads", "2"]));
    assert_eq!(one, digest(&["--threads", "3"]));
    assert_ne!(one, digest(&["--threads", "2", "--seed", "5"]));
}

#[test]
fn human_summary_without_json() {
    let out = sim(&[
        "--bench",
        "cube60planar",
        "--photons",
        "2000",
        "--threads",
        "2",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("cube60planar: 2000 photons"), "{text}");
    assert!(
        text.contains("absorbed fraction") && text.contains("digest"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
}

#[test]
fn out_writes_mc2_nii_and_detected_photons() {
    let dir = temp_dir("out");
    let mc2 = dir.join("run.mc2");
    let v = json_of(&sim(&[
        "--bench",
        "cube60",
        "--photons",
        "3000",
        "--json",
        "--out",
        mc2.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::metadata(&mc2).unwrap().len(), 60 * 60 * 60 * 4);
    let detp: Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.detp.json")).unwrap()).unwrap();
    assert_eq!(
        detp["records"].as_array().unwrap().len() as u64,
        v["detected"].as_u64().unwrap()
    );
    let nii = dir.join("run.nii");
    json_of(&sim(&[
        "--bench",
        "cube60",
        "--photons",
        "3000",
        "--json",
        "--out",
        nii.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&nii).unwrap();
    assert_eq!(bytes.len(), 352 + 60 * 60 * 60 * 4);
    assert_eq!(&bytes[344..348], b"n+1\0");
    assert_eq!(
        &bytes[352..],
        &std::fs::read(&mc2).unwrap()[..],
        "same run, same fluence"
    );
    let e = stderr_of(&sim(&[
        "--bench",
        "cube60",
        "--photons",
        "10",
        "--out",
        "x.txt",
    ]));
    assert!(e.contains("x.txt") && e.contains(".mc2"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn input_file_runs_and_bad_inputs_name_the_field() {
    let dir = temp_dir("input");
    let good = r#"{
      "Session": { "ID": "tiny", "Photons": 500, "RNGSeed": 3 },
      "Forward": { "T0": 0, "T1": 1e-9, "Dt": 1e-9 },
      "Domain": { "Dim": [8, 8, 8], "OriginType": 1,
        "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.1, "mus": 1, "g": 0.9, "n": 1.37 } ] },
      "Shapes": [ { "Grid": { "Tag": 1, "Size": [8, 8, 8] } } ],
      "Optode": { "Source": { "Type": "disk", "Pos": [4, 4, 0], "Dir": [0, 0, 1], "Param1": [2] } }
    }"#;
    let path = dir.join("good.json");
    std::fs::write(&path, good).unwrap();
    let v = json_of(&sim(&[path.to_str().unwrap(), "--json", "--threads", "1"]));
    assert_eq!(v["photons"], 500);
    assert_eq!(v["seed"], 3);
    let v = json_of(&sim(&[path.to_str().unwrap(), "--json", "--photons", "40"]));
    assert_eq!(v["photons"], 40);

    let cases = [
        (
            good.replace("\"Dim\": [8, 8, 8]", "\"Dim\": [8, -8, 8]"),
            "Domain.Dim[1]",
        ),
        (
            good.replace("\"Tag\": 1", "\"Tag\": 4"),
            "Shapes[0].Grid.Tag",
        ),
        (
            good.replace("\"Type\": \"disk\"", "\"Type\": \"slit\""),
            "Optode.Source.Type",
        ),
        (
            good.replace("\"RNGSeed\": 3", "\"RNGSeed\": 3, \"DoSaveExit\": 1"),
            "Session.DoSaveExit",
        ),
        (
            good.replace("\"Dim\": [8, 8, 8]", "\"Dim\": [100000, 100000, 100000]")
                .replace("\"Size\": [8, 8, 8]", "\"Size\": [100000, 100000, 100000]"),
            "over the limit",
        ),
        (good.replace(", \"mus\": 1", ""), "Domain.Media[1].mus"),
        (
            good.replace("\"Forward\"", "\"forward\""),
            "unsupported field `forward`",
        ),
        (good[..200].to_owned(), "invalid JSON"),
    ];
    for (text, needle) in cases {
        std::fs::write(&path, text).unwrap();
        let e = stderr_of(&sim(&[path.to_str().unwrap(), "--json"]));
        assert!(
            e.contains(needle) && e.contains("good.json"),
            "{e:?} should name {needle:?}"
        );
    }
    let e = stderr_of(&sim(&[dir.join("absent.json").to_str().unwrap()]));
    assert!(e.contains("absent.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_fail_clearly() {
    // With GPUs hidden (as on a machine without a driver), cuda:0 is a one-line device error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_compushare"))
        .args([
            "sim",
            "--bench",
            "cube60",
            "--photons",
            "1000",
            "--device",
            "cuda:0",
        ])
        .env("COMPUSHARE_NO_CUDA", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cuda:0") && e.lines().count() == 1, "{e}");
    let e = stderr_of(&sim(&["--bench", "cube60", "--device", "gpu"]));
    assert!(e.contains("--device"), "{e}");
    let e = stderr_of(&sim(&["--bench", "cube99"]));
    assert!(e.contains("cube99"), "{e}");
    let e = stderr_of(&sim(&["--bench", "cube60", "--threads", "0"]));
    assert!(e.contains("--threads"), "{e}");
    let e = stderr_of(&sim(&["--bench", "cube60", "--photons", "0"]));
    assert!(e.contains("--photons"), "{e}");
    stderr_of(&sim(&[]));
    stderr_of(&sim(&["x.json", "--bench", "cube60"]));
}
