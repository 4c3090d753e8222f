//! `compushare submit | status | fetch`: a client of a management node (CONTRACT.md).
//!
//! The client key defaults to `~/.compushare/client.key` (created 0600 when missing). Results
//! arrive sealed for that key; `fetch` (and `submit --wait --out`) opens them, re-parses the
//! job input and writes the fluence (`result.mc2` and `result.nii`), the detected photons when
//! the job has detectors, and `summary.json`: the same JSON object `compushare sim --json`
//! prints, whose `digest` equals a local `sim` of the same job, seed and photon count.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compushare_client::Client;
use compushare_kernels::transport::input::{load_bundle, load_job, ParseOptions};
use compushare_kernels::transport::output::{write_outputs, RunInfo, Summary};
use compushare_kernels::transport::tally::Tally;
use compushare_protocol::hex;
use compushare_protocol::msg::{JobState, JobStatus};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode};

/// Where to reach the manager and who we are.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// Manager address, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub manager: String,
    /// The manager's public key (64 hex digits), pinned for the handshake.
    #[arg(long = "manager-key", value_name = "HEX")]
    pub manager_key: String,
    /// Client key file (default ~/.compushare/client.key, created 0600 if missing).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Arguments of `compushare submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// MCX JSON job input.
    #[arg(value_name = "JOB.json")]
    pub input: PathBuf,
    #[command(flatten)]
    pub conn: Conn,
    /// Photons to simulate (default: the input's Session.Photons).
    #[arg(long, value_name = "N")]
    pub photons: Option<u64>,
    /// RNG seed (default: the input's Session.RNGSeed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Matching: cheapest devices first, or fastest first.
    #[arg(long, value_name = "cheapest|fastest", default_value = "cheapest")]
    pub mode: String,
    /// Most the whole job may cost (micro-credits), fee included.
    #[arg(long = "max-price", value_name = "P", default_value_t = u64::MAX)]
    pub max_price: u64,
    /// Wait until the job is done (and fetch it when --out is given).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: write the result here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Arguments of `compushare status`: a job's state, or with `--rig` a rig's public record.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Job number.
    #[arg(required_unless_present = "rig", conflicts_with = "rig")]
    pub job: Option<u64>,
    /// Show this key's public record instead (64 hex digits): trust, verified histories,
    /// errors, time to return per cost, recent trust events and star ratings.
    #[arg(long, value_name = "KEY")]
    pub rig: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `compushare rate`: a client's star rating of a rig that worked on its job.
#[derive(clap::Args, Debug)]
pub struct RateArgs {
    /// Job number (one of this client's jobs).
    pub job: u64,
    /// The rig's key (64 hex digits), as `status --rig` shows it.
    pub rig: String,
    /// Stars, 1 to 5. Rating the same rig again replaces the earlier rating.
    pub stars: u8,
    #[command(flatten)]
    pub conn: Conn,
}

/// Arguments of `compushare fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Job number.
    pub job: u64,
    #[command(flatten)]
    pub conn: Conn,
    /// The job's MCX JSON input (needed to shape the output volume).
    #[arg(long, value_name = "JOB.json")]
    pub input: PathBuf,
    /// The seed the job ran with (for the summary; default: the input's).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn client_key(path: &Option<PathBuf>) -> anyhow::Result<Identity> {
    let path = match path {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; give --key")?;
            let dir = Path::new(&home).join(".compushare");
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            dir.join("client.key")
        }
    };
    let (id, created) =
        Identity::load_or_create(&path).with_context(|| format!("--key {}", path.display()))?;
    if created {
        eprintln!("created client key {}", path.display());
    }
    Ok(id)
}

async fn connect(conn: &Conn) -> anyhow::Result<Client> {
    let key: [u8; 32] =
        hex::decode_array(&conn.manager_key).map_err(|e| anyhow::anyhow!("--manager-key: {e}"))?;
    let me = client_key(&conn.key)?;
    Client::connect(conn.manager.as_str(), me, &key)
        .await
        .with_context(|| format!("--manager {}", conn.manager))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn print_status(s: &JobStatus) {
    println!(
        "job {}: {:?}, {}/{} photons, spent {}",
        s.job.0, s.state, s.photons_done, s.photons_total, s.spent.0
    );
    for r in &s.rigs {
        println!("  rig {}", hex::encode(r));
    }
}

/// Writes a fetched result like `compushare sim --out` does, plus `summary.json`.
fn write_result(dir: &Path, input: &Path, seed: Option<u64>, tally: &Tally) -> anyhow::Result<()> {
    let opts = ParseOptions {
        photons: Some(tally.photons),
        ..ParseOptions::default()
    };
    let mut job = load_job(input, &opts).map_err(|e| crate::cmd_sim::input_error(input, e))?;
    if let Some(s) = seed {
        job.seed = s;
    }
    for p in write_job_result(dir, &job, tally)? {
        println!("wrote {}", p.display());
    }
    println!("digest {}", hex::encode(&tally.digest()));
    Ok(())
}

/// Writes `tally` of `job` under `dir`: `result.mc2`, `result.nii` (with the detected photons
/// beside them when the job has detectors) and `summary.json`; the paths written.
pub(crate) fn write_job_result(
    dir: &Path,
    job: &compushare_kernels::transport::job::Job,
    tally: &Tally,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    let mut written = write_outputs(&dir.join("result.mc2"), job, tally).context("--out")?;
    written.extend(write_outputs(&dir.join("result.nii"), job, tally).context("--out")?);
    let run = RunInfo {
        seed: job.seed,
        threads: 0,
        device: "compushare".into(),
        elapsed_ms: 0.0,
        digest: tally.digest(),
    };
    let summary = Summary::new(tally).to_json(&run);
    let path = dir.join("summary.json");
    std::fs::write(&path, format!("{summary}\n")).with_context(|| format!("{}", path.display()))?;
    written.push(path);
    Ok(written)
}

/// Runs `compushare submit`.
pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let mode = match args.mode.as_str() {
        "cheapest" => Mode::Cheapest,
        "fastest" => Mode::Fastest,
        m => bail!("--mode {m:?}: expected cheapest or fastest"),
    };
    if args.out.is_some() && !args.wait {
        bail!("--out needs --wait (or use compushare fetch later)");
    }
    // The job travels as data: its JSON and the volume file it names, read here next to
    // the input (as MCX resolves it). Validated locally first: the same parser the manager
    // uses names the bad field.
    let bundle = load_bundle(&args.input, &ParseOptions::default())
        .map_err(|e| crate::cmd_sim::input_error(&args.input, e))?;
    let (bytes, job) = (bundle.bytes, bundle.job);
    let photons = args.photons.unwrap_or(job.photons);
    let seed = args.seed.unwrap_or(job.seed);
    runtime()?.block_on(async {
        let mut c = connect(&args.conn).await?;
        let (id, price, escrowed) = c
            .submit(&bytes, photons, Some(seed), mode, Amount(args.max_price))
            .await?;
        println!(
            "job {}: {photons} photons, seed {seed}, {} per history, {} in escrow",
            id.0, price.0, escrowed.0
        );
        if !args.wait {
            return Ok(());
        }
        let status = wait(&mut c, id).await?;
        print_status(&status);
        if let Some(out) = &args.out {
            let tally = c.fetch(id).await?;
            write_result(out, &args.input, Some(seed), &tally)?;
        }
        Ok(())
    })
}

async fn wait(c: &mut Client, id: JobId) -> anyhow::Result<JobStatus> {
    let start = Instant::now();
    let mut last = u64::MAX;
    loop {
        let s = c.status(id).await?;
        match s.state {
            JobState::Done => return Ok(s),
            JobState::Failed => bail!("job {} failed", id.0),
            JobState::Cancelled => bail!(
                "job {} was cancelled by the node's operator (verified work paid, the rest of the escrow refunded)",
                id.0
            ),
            _ => {}
        }
        if s.photons_done != last {
            eprintln!(
                "job {}: {:?} {}/{} photons ({:.0} s)",
                id.0,
                s.state,
                s.photons_done,
                s.photons_total,
                start.elapsed().as_secs_f64()
            );
            last = s.photons_done;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `compushare status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let rig = match &args.rig {
        Some(k) => {
            Some(hex::decode_array::<32>(k).map_err(|e| anyhow::anyhow!("--rig {k:?}: {e}"))?)
        }
        None => None,
    };
    runtime()?.block_on(async {
        let mut c = connect(&args.conn).await?;
        if let Some(key) = rig {
            let Some(record) = c.rig_record(key).await? else {
                bail!(
                    "--rig {}: unknown rig (the manager knows no rig by this key and holds no rating of it)",
                    hex::encode(&key)
                );
            };
            if args.json {
                println!("{}", crate::cmd_rig_record::to_json(&record));
            } else {
                print!("{}", crate::cmd_rig_record::to_text(&record));
            }
            return Ok(());
        }
        let Some(job) = args.job else {
            bail!("give a JOB_ID or --rig KEY");
        };
        let s = c.status(JobId(job)).await?;
        if args.json {
            println!("{}", status_json(&s));
        } else {
            print_status(&s);
        }
        Ok(())
    })
}

pub fn rate(args: RateArgs) -> anyhow::Result<()> {
    let rig = hex::decode_array::<32>(&args.rig)
        .map_err(|e| anyhow::anyhow!("RIG {:?}: {e}", args.rig))?;
    if !(1..=5).contains(&args.stars) {
        bail!("STARS {}: a rating is 1 to 5 stars", args.stars);
    }
    runtime()?.block_on(async {
        let mut c = connect(&args.conn).await?;
        c.rate(JobId(args.job), rig, args.stars)
            .await
            .with_context(|| format!("rating rig {} on job {}", args.rig, args.job))?;
        println!(
            "rated rig {} {} stars (job {})",
            args.rig, args.stars, args.job
        );
        Ok(())
    })
}

fn status_json(s: &JobStatus) -> serde_json::Value {
    serde_json::json!({
        "job": s.job.0,
        "state": format!("{:?}", s.state).to_lowercase(),
        "photons_done": s.photons_done,
        "photons_total": s.photons_total,
        "spent": s.spent.0,
        "rigs": s.rigs.iter().map(|r| hex::encode(r)).collect::<Vec<_>>(),
    })
}

/// Runs `compushare fetch`.
pub fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let mut c = connect(&args.conn).await?;
        let tally = c.fetch(JobId(args.job)).await?;
        write_result(&args.out, &args.input, args.seed, &tally)
    })
}
