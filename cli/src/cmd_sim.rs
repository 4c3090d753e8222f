//! `compushare sim`: run a transport job locally (CONTRACT.md).
//!
//! `compushare sim INPUT.json [--photons N] [--seed S] [--threads T] [--device cpu|cuda:K]
//! [--out FILE] [--json]`, or `--bench NAME` instead of INPUT for a built-in benchmark.
//! `--out FILE` writes the normalised fluence as `.mc2` (MCX raw float32) or `.nii`
//! (NIfTI-1), or a log-scale picture of the plane through the source as `.png`, chosen by
//! extension, and, when the job has detectors, the detected photons as
//! `FILE` with extension `.detp.json`. The summary goes to stdout (one JSON object with
//! `--json`); a progress bar goes to stderr only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::{load_job, ParseOptions};
use compushare_kernels::transport::job::{Job, FACE_NAMES};
use compushare_kernels::transport::output::{write_outputs, RunInfo, Summary, VolumeFormat};
use compushare_kernels::transport::simulate;

/// Arguments of `compushare sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// MCX JSON input file.
    #[arg(
        value_name = "INPUT.json",
        required_unless_present = "bench",
        conflicts_with = "bench"
    )]
    pub input: Option<PathBuf>,
    /// Run a built-in benchmark instead of INPUT: cube60, cube60b, cubesph60b, cube60planar.
    #[arg(long, value_name = "NAME")]
    pub bench: Option<String>,
    /// Photons to launch (overrides Session.Photons).
    #[arg(long, value_name = "N")]
    pub photons: Option<u64>,
    /// RNG seed (overrides Session.RNGSeed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Worker threads (default: available parallelism).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Device to run on: cpu, or cuda:K.
    #[arg(long, value_name = "cpu|cuda:K", default_value = "cpu")]
    pub device: String,
    /// Write the fluence volume here (.mc2 or .nii) and detected photons next to it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Checks `--device` before any work: `cpu`, or `cuda:K` naming a usable GPU.
fn check_device(device: &str) -> anyhow::Result<()> {
    if device == "cpu" {
        return Ok(());
    }
    crate::cmd_cuda::cuda_index(device).map(|_| ())
}

/// An input file's error, naming the file once: errors about reading a file name it
/// themselves; the parser's name a JSON field, and get the file in front.
pub(crate) fn input_error(
    path: &std::path::Path,
    e: compushare_kernels::transport::input::InputError,
) -> anyhow::Error {
    use compushare_kernels::transport::input::InputError;
    match e {
        InputError::Io { .. } | InputError::IsDirectory { .. } | InputError::FileSize { .. } => {
            anyhow::Error::new(e).context("input")
        }
        e => anyhow::Error::new(e).context(format!("input {}", path.display())),
    }
}

fn load(args: &SimArgs) -> anyhow::Result<Job> {
    let opts = ParseOptions {
        photons: args.photons,
        ..ParseOptions::default()
    };
    let mut job = match (&args.bench, &args.input) {
        (Some(name), _) => builtin_job(name, &opts).context("--bench")?,
        (None, Some(path)) => load_job(path, &opts).map_err(|e| input_error(path, e))?,
        (None, None) => bail!("give an INPUT.json file or --bench NAME"),
    };
    if let Some(seed) = args.seed {
        job.seed = seed;
    }
    Ok(job)
}

/// Draws `[#####.....] 45% 450000/1000000 photons` on stderr, redrawing on each new permille.
struct ProgressBar {
    total: u64,
    shown: AtomicU64,
}

impl ProgressBar {
    const WIDTH: u64 = 40;

    fn update(&self, done: u64) {
        let permille = (u128::from(done.min(self.total)) * 1000)
            .checked_div(u128::from(self.total))
            .map_or(1000, |p| p as u64);
        if self.shown.swap(permille + 1, Ordering::Relaxed) == permille + 1 {
            return;
        }
        let filled = (permille * Self::WIDTH / 1000) as usize;
        let bar = format!(
            "\r[{}{}] {:5.1}% {done}/{} photons",
            "#".repeat(filled),
            ".".repeat(Self::WIDTH as usize - filled),
            permille as f64 / 10.0,
            self.total
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bar.as_bytes());
        let _ = err.flush();
    }

    fn clear(&self) {
        let blank = format!("\r{}\r", " ".repeat(Self::WIDTH as usize + 40));
        let _ = std::io::stderr().write_all(blank.as_bytes());
    }
}

/// Runs `compushare sim`.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    check_device(&args.device)?;
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.photons == Some(0) {
        bail!("--photons must be at least 1");
    }
    if let Some(out) = &args.out {
        VolumeFormat::from_path(out).context("--out")?;
    }
    let job = load(&args)?;

    let bar = std::io::stderr().is_terminal().then(|| ProgressBar {
        total: job.photons,
        shown: AtomicU64::new(0),
    });
    let report = |done: u64| {
        if let Some(b) = &bar {
            b.update(done);
        }
    };
    let progress: Option<&(dyn Fn(u64) + Sync)> = if bar.is_some() { Some(&report) } else { None };

    let start = Instant::now();
    let tally = if args.device == "cpu" {
        simulate(&job, 0..job.photons, threads, progress).context("simulation")?
    } else {
        crate::cmd_cuda::simulate(&job, 0..job.photons, &args.device)?
    };
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(b) = &bar {
        b.clear();
    }

    let summary = Summary::new(&tally);
    let run = RunInfo {
        seed: job.seed,
        threads,
        device: args.device.clone(),
        elapsed_ms,
        digest: tally.digest(),
    };
    let written = match &args.out {
        Some(out) => write_outputs(out, &job, &tally).context("--out")?,
        None => Vec::new(),
    };

    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", summary.to_json(&run))?;
    } else {
        print_human(&mut stdout, &job, &summary, &run, &written)?;
    }
    Ok(())
}

fn print_human(
    w: &mut impl Write,
    job: &Job,
    s: &Summary,
    run: &RunInfo,
    written: &[PathBuf],
) -> std::io::Result<()> {
    let digest: String = run.digest.iter().map(|b| format!("{b:02x}")).collect();
    let per_ms = if run.elapsed_ms > 0.0 {
        s.photons as f64 / run.elapsed_ms
    } else {
        0.0
    };
    writeln!(
        w,
        "{}: {} photons, seed {}, {} thread(s) on {}",
        job.id, s.photons, run.seed, run.threads, run.device
    )?;
    writeln!(
        w,
        "  absorbed fraction  {:.6}  (1 - escaped - specular)",
        s.absorbed_fraction
    )?;
    writeln!(w, "  deposited          {:.6}", s.deposited)?;
    writeln!(w, "  alive at T1        {:.6}", s.alive_at_t1)?;
    writeln!(w, "  specular           {:.6}", s.specular)?;
    let faces: Vec<String> = FACE_NAMES
        .iter()
        .zip(s.escaped)
        .map(|(n, e)| format!("{n} {e:.6}"))
        .collect();
    writeln!(
        w,
        "  escaped            {:.6}  ({})",
        s.escaped_total(),
        faces.join(", ")
    )?;
    writeln!(w, "  detected           {} photons", s.detected)?;
    writeln!(
        w,
        "  time               {:.1} ms  ({per_ms:.1} photon/ms)",
        run.elapsed_ms
    )?;
    writeln!(w, "  digest             {digest}")?;
    for p in written {
        writeln!(w, "  wrote              {}", p.display())?;
    }
    Ok(())
}
