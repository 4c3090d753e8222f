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

use compushare_kernels::cuda::sha256d::work_constants;
use compushare_kernels::sha256d::{sha256d, ScanWork, Target};
use compushare_kernels::transport::math;
use compushare_kernels::transport::rng::PhotonRng;

fn harness() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("compushare-cuda-host-{}", std::process::id()));
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
        .status()
        .unwrap_or_else(|e| panic!("running the host C compiler `{cc}`: {e}"));
    assert!(status.success(), "compiling tests/cuda_host/harness.c failed");
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
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
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
    let bin = harness();

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
            assert_eq!(w, expect[i as usize], "philox seed {seed} index {index} word {i}");
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
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed.wrapping_mul(97));
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
