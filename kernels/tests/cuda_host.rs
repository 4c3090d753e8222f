//! The CUDA kernels' arithmetic, checked bit for bit against the Rust engines without a GPU.
//!
//! The kernels' shared headers (kernels/cuda/cs_*.cuh) are portable C: this test compiles them
//! with the host C compiler (`cc`, IEEE single precision on SSE, `-ffp-contract=off`, no fast
//! math: the same rules NVRTC follows under `--fmad=false --prec-div=true --prec-sqrt=true`)
//! through tests/cuda_host/harness.c, runs them, and compares every output word with the Rust
//! implementation: the Philox streams, the own exp/ln/-ln(1-y)/sincos over millions of inputs,
//! and the sha256d scan core's H7 against the reference hash. What this cannot show is the GPU
//! compiler's code generation; that is the on-GPU digest test's job.

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod common;

use compushare_kernels::cuda::sha256d::work_constants;
use compushare_kernels::cuda::transport::{
    assemble, decode_records, ModelBlock, RECORD_WORDS, TOTALS,
};
use compushare_kernels::sha256d::{sha256d, ScanWork, Target};
use compushare_kernels::transport::job::Job;
use compushare_kernels::transport::math;
use compushare_kernels::transport::rng::PhotonRng;
use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::{simulate_with_records, PhotonRecord};

fn harness(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out =
        std::env::temp_dir().join(format!("compushare-cuda-host-{tag}-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-fexcess-precision=standard",
        ])
        .arg("-I")
        .arg(root.join("cuda"))
        .arg(root.join("tests/cuda_host/harness.c"))
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .status()
        .unwrap_or_else(|e| panic!("running the host C compiler `{cc}`: {e}"));
    assert!(
        status.success(),
        "compiling tests/cuda_host/harness.c failed"
    );
    out
}

/// Runs the harness and hands each output word to `check` (streamed: outputs are large).
fn run(bin: &PathBuf, args: &[String], stdin: &str, mut check: impl FnMut(u64, u32)) -> u64 {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let mut r = BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    let mut w = [0u8; 4];
    let mut n = 0u64;
    while r.read_exact(&mut w).is_ok() {
        check(n, u32::from_le_bytes(w));
        n += 1;
    }
    assert!(child.wait().unwrap().success());
    n
}

#[test]
fn headers_match_rust_bit_for_bit() {
    let bin = harness("headers");

    // Philox streams: several seeds and photon indices, across many blocks.
    for (seed, index) in [
        (0u64, 0u64),
        (1_648_335_518, 7),
        (u64::MAX, u64::MAX),
        (0x0102_0304_0506_0708, 0x1112_1314_1516_1718),
    ] {
        let n = 1000u32;
        let mut words = PhotonRng::new(seed, index);
        let mut uni = PhotonRng::new(seed, index);
        let mut expect = Vec::new();
        for _ in 0..n {
            expect.push(words.next_u32());
        }
        for _ in 0..n {
            expect.push(uni.uniform().to_bits());
            expect.push(uni.uniform_open().to_bits());
        }
        let args: Vec<String> = vec![
            "philox".into(),
            (seed >> 32).to_string(),
            (seed as u32).to_string(),
            (index >> 32).to_string(),
            (index as u32).to_string(),
            n.to_string(),
        ];
        let got = run(&bin, &args, "", |i, w| {
            assert_eq!(
                w, expect[i as usize],
                "philox seed {seed} index {index} word {i}"
            );
        });
        assert_eq!(got, expect.len() as u64);
    }

    // Own math over a stride through every f32 bit pattern (NaN, infinities, subnormals
    // included), mapped into each function's domain exactly as harness.c does.
    let stride: u64 = 1021;
    let mut count = 0u64;
    let mut expect = [0u32; 5];
    let got = run(&bin, &["math".into(), stride.to_string()], "", |i, w| {
        let k = i % 5;
        if k == 0 {
            let b = (i / 5) * stride;
            let x = f32::from_bits(b as u32);
            let y = f32::from_bits((b % 0x3f80_0000) as u32);
            let sign = if b & 1 == 1 { -1.0f32 } else { 1.0 };
            let u = f32::from_bits((b % 0x4080_0000) as u32) * sign;
            let (s, c) = math::sincos_turns(u);
            expect = [
                math::exp(x).to_bits(),
                math::ln(x).to_bits(),
                math::neg_ln_1m(y).to_bits(),
                s.to_bits(),
                c.to_bits(),
            ];
        }
        let names = ["exp", "ln", "neg_ln_1m", "sin", "cos"];
        let b = (i / 5) * stride;
        // NaN results must be NaN on both sides; every other result must match exactly.
        let want = expect[k as usize];
        let both_nan = f32::from_bits(w).is_nan() && f32::from_bits(want).is_nan();
        assert!(
            w == want || both_nan,
            "{} at input bits {b:#010x}: C {w:#010x}, Rust {want:#010x}",
            names[k as usize]
        );
        count += 1;
    });
    assert_eq!(got, count);
    assert_eq!(got / 5, (1u64 << 32).div_ceil(stride));

    // sha256d scan core: H7 of the final hash for consecutive nonces of several headers.
    for seed in 0u8..4 {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed.wrapping_mul(97));
        }
        let work = ScanWork::new(header, Target::from_difficulty(1.0).unwrap());
        let base = 0xffff_f000u32.wrapping_add(u32::from(seed) * 1_000_003);
        let mut input = String::new();
        for w in work_constants(&work) {
            input.push_str(&format!("{w:x} "));
        }
        input.push_str(&format!("{base:x}\n"));
        let n = 20_000u32;
        let got = run(&bin, &["sha".into(), n.to_string()], &input, |i, h7| {
            let nonce = base.wrapping_add(i as u32);
            let h = sha256d(&work.header_with_nonce(nonce));
            let want = u32::from_be_bytes([h[28], h[29], h[30], h[31]]);
            assert_eq!(h7, want, "header {seed} nonce {nonce:#x}");
        });
        assert_eq!(got, u64::from(n));
    }
    let _ = std::fs::remove_file(&bin);
}

fn put_array<T: Copy>(out: &mut Vec<u8>, v: &[T], bytes: impl Fn(T) -> Vec<u8>) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    for &x in v {
        out.extend_from_slice(&bytes(x));
    }
}

/// Runs photons `first..first + count` of `job` through the C port of the walk (the code the
/// CUDA kernel runs) and assembles the tally and decodes the records as the GPU driver does.
fn c_port_run(bin: &PathBuf, job: &Job, first: u64, count: u64) -> (Tally, Vec<PhotonRecord>) {
    let block = ModelBlock::new(job).unwrap();
    let mut file = Vec::new();
    put_array(&mut file, &block.params, |x| x.to_le_bytes().to_vec());
    put_array(&mut file, &block.labels, |x| x.to_le_bytes().to_vec());
    put_array(&mut file, &block.dist, |x| vec![x]);
    put_array(&mut file, &block.media, |x| x.to_le_bytes().to_vec());
    put_array(&mut file, &block.pattern, |x| x.to_le_bytes().to_vec());
    put_array(&mut file, &block.detectors, |x| x.to_le_bytes().to_vec());
    for v in [block.cells as u64, first, count] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    let path = std::env::temp_dir().join(format!(
        "compushare-cuda-host-model-{}-{first}",
        std::process::id()
    ));
    std::fs::write(&path, &file).unwrap();
    let out = Command::new(bin)
        .arg("transport")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "harness transport failed");
    let b = out.stdout;
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let deposit: Vec<u64> = (0..block.cells).map(|k| u64_at(8 * k)).collect();
    let mut o = 8 * block.cells;
    let mut totals = [0u64; TOTALS];
    for t in totals.iter_mut() {
        *t = u64_at(o);
        o += 8;
    }
    let n = u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    o += 4;
    let words: Vec<u32> = b[o..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let det = n * block.det_words();
    assert_eq!(words.len(), det + count as usize * RECORD_WORDS);
    let mut records = Vec::new();
    decode_records(first, &words[det..], &mut records).expect("canonical records");
    (assemble(&block, deposit, &totals, &words[..det]), records)
}

#[test]
fn transport_walk_port_matches_the_cpu_engine() {
    let bin = harness("transport");
    let mut jobs = vec![
        (common::cube60(false), 0u64, 20_000u64),
        (common::cube60(true), 5_000_000, 20_000),
        (common::cubesph60b(), 0, 20_000),
        (common::cube60planar(), 123_456, 20_000),
        // Photon indices across 2^32: the 64-bit index reaches the RNG counter.
        (common::cube60(false), (1u64 << 32) - 2_000, 4_000),
    ];
    // Every source kind, mirror/cyclic/Fresnel faces, roulette, several time gates.
    let mut j = common::cube60(true);
    j.time.gates = 5;
    j.time.dt = 1e-9;
    j.roulette = Some(compushare_kernels::transport::job::Roulette {
        threshold: 0.05,
        survival_factor: 10.0,
    });
    j.faces = [
        compushare_kernels::transport::job::FaceBoundary::Mirror,
        compushare_kernels::transport::job::FaceBoundary::Cyclic,
        compushare_kernels::transport::job::FaceBoundary::Absorb,
        compushare_kernels::transport::job::FaceBoundary::Fresnel,
        compushare_kernels::transport::job::FaceBoundary::Cyclic,
        compushare_kernels::transport::job::FaceBoundary::Fresnel,
    ];
    jobs.push((j.clone(), 0, 5_000));
    use compushare_kernels::transport::job::SourceKind;
    for kind in [
        SourceKind::Isotropic,
        SourceKind::Cone { half_angle: 0.5 },
        SourceKind::Gaussian { waist: 3.0 },
        SourceKind::Disk { radius: 4.0 },
        SourceKind::Pattern {
            v1: [10.0, 0.0, 0.0],
            v2: [0.0, 10.0, 0.0],
            width: 3,
            height: 2,
            pattern: vec![0.0, 0.25, 0.5, 0.75, 1.0, 0.125],
        },
    ] {
        let mut k = common::cubesph60b();
        k.source.kind = kind;
        k.source.pos = [25.0, 25.0, 0.0];
        if matches!(k.source.kind, SourceKind::Isotropic) {
            k.source.pos = [30.0, 30.0, 30.0];
        }
        jobs.push((k, 77, 5_000));
    }
    for (job, first, count) in jobs {
        let (cpu, cpu_records) =
            simulate_with_records(&job, first..first + count, 2, None).unwrap();
        let (c, c_records) = c_port_run(&bin, &job, first, count);
        // Every photon's record (the Merkle leaves of paid work) equal to the CPU engine's.
        assert_eq!(c_records.len(), cpu_records.len(), "{} records", job.id);
        for (a, b) in c_records.iter().zip(&cpu_records) {
            assert_eq!(
                a.to_bytes(),
                b.to_bytes(),
                "{} photon {} record",
                job.id,
                b.index
            );
        }
        assert_eq!(c.photons, cpu.photons, "{}", job.id);
        assert_eq!(c.escaped, cpu.escaped, "{} escaped", job.id);
        assert_eq!(c.specular, cpu.specular, "{} specular", job.id);
        assert_eq!(c.alive_at_t1, cpu.alive_at_t1, "{} alive", job.id);
        assert_eq!(
            c.roulette_gained, cpu.roulette_gained,
            "{} roulette",
            job.id
        );
        assert_eq!(c.detected, cpu.detected, "{} detected", job.id);
        assert!(c.deposit == cpu.deposit, "{} deposit differs", job.id);
        assert_eq!(c.digest(), cpu.digest(), "{} digest", job.id);
        eprintln!(
            "{} photons {first}..{}: C port digest and records = CPU's, {} detected",
            job.id,
            first + count,
            c.detected.len()
        );
    }
    let _ = std::fs::remove_file(&bin);
}
