//! `compushare bench protocol`: cost of the wire path for the two messages that dominate
//! traffic, a rig's Heartbeat and a 60 KiB ResultChunk.
//!
//! Each message goes the whole way a real one does: encode, seal, frame, an in-memory pipe,
//! unframe, open, decode, on one thread. Rounds are timed separately and the median is
//! reported, so one noisy round on a shared machine does not move the figure.

use std::time::{Duration, Instant};

use compushare_protocol::chunk::Chunker;
use compushare_protocol::limits::{CHUNK_DATA, SEAL_OVERHEAD};
use compushare_protocol::msg::{self, Heartbeat, Message, RigToManager};
use compushare_protocol::secure::{accept, connect, Identity};
use compushare_protocol::types::{DeviceStatus, Role};
use embedded_io_adapters::tokio_1::FromTokio;
use serde_json::json;

/// Arguments of `compushare bench protocol`.
#[derive(clap::Args)]
pub struct BenchProtocolArgs {
    /// Seconds to spend on each message type.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

const ROUNDS: usize = 5;

/// A rig with eight GPUs, all mining, reporting temperature and power.
fn heartbeat() -> RigToManager {
    let devices = (0..8)
        .map(|i| DeviceStatus {
            index: i,
            role: Role::Mine,
            hash_rate: 9_400_000_000 + u64::from(i) * 1_000_003,
            histories_per_s: 0,
            temperature_dc: Some(640 + i16::from(i)),
            power_w: Some(310),
        })
        .collect();
    RigToManager::Heartbeat(Heartbeat {
        uptime_s: 86_400 * 3 + 1234,
        devices,
        vault_used: 3,
        vault_slots: 64,
    })
}

fn result_chunk() -> anyhow::Result<RigToManager> {
    let payload: Vec<u8> = (0..CHUNK_DATA).map(|i| (i * 131 % 251) as u8).collect();
    let chunk = Chunker::new(&payload)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty chunker"))?;
    Ok(RigToManager::ResultChunk(chunk))
}

fn encoded_len<M: Message>(m: &M) -> anyhow::Result<usize> {
    let mut buf = vec![0u8; M::POSTCARD_MAX_SIZE];
    Ok(msg::encode(m, &mut buf)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .len())
}

/// Median messages/s over rounds of `seconds / ROUNDS` each.
async fn measure(m: &RigToManager, seconds: f64) -> anyhow::Result<f64> {
    let (rig, manager) = (Identity::generate()?, Identity::generate()?);
    let (a, b) = tokio::io::duplex(256 * 1024);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let pinned = manager.public();
    let (c, s) = tokio::join!(
        connect(FromTokio::new(ar), FromTokio::new(aw), &rig, &pinned),
        accept(FromTokio::new(br), FromTokio::new(bw), &manager)
    );
    let (mut tx, mut rx) = (c?, s?);
    let round = Duration::from_secs_f64(seconds / ROUNDS as f64);
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < round {
            // Batches of 64 keep the clock out of the measurement.
            for _ in 0..64 {
                tx.send(m).await?;
                let back: Box<RigToManager> = rx.recv().await?;
                std::hint::black_box(&back);
            }
            n += 64;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[ROUNDS / 2])
}

/// The heartbeat as a Stratum-style JSON-RPC line: keyed objects, and positional arrays as
/// Stratum's own methods use.
fn json_sizes(m: &RigToManager) -> anyhow::Result<(usize, usize)> {
    let RigToManager::Heartbeat(h) = m else {
        anyhow::bail!("not a heartbeat")
    };
    let keyed = json!({"id": 17, "method": "rig.heartbeat", "params": h});
    let positional = json!({"id": 17, "method": "rig.heartbeat", "params": positional(serde_json::to_value(h)?)});
    Ok((
        serde_json::to_string(&keyed)?.len() + 1,
        serde_json::to_string(&positional)?.len() + 1,
    ))
}

fn positional(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            serde_json::Value::Array(map.into_iter().map(|(_, v)| positional(v)).collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(positional).collect())
        }
        other => other,
    }
}

pub fn run(args: BenchProtocolArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        anyhow::bail!("--seconds must be a positive number, got {}", args.seconds);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hb = heartbeat();
    let chunk = result_chunk()?;
    let hb_len = encoded_len(&hb)?;
    let chunk_len = encoded_len(&chunk)?;
    // On the wire: 2-byte length prefix + sealed message (+16-byte tag).
    let (hb_wire, chunk_wire) = (2 + hb_len + SEAL_OVERHEAD, 2 + chunk_len + SEAL_OVERHEAD);
    let (json_keyed, json_positional) = json_sizes(&hb)?;
    let hb_rate = rt.block_on(measure(&hb, args.seconds))?;
    let chunk_rate = rt.block_on(measure(&chunk, args.seconds))?;
    let chunk_mib_s = chunk_rate * CHUNK_DATA as f64 / (1024.0 * 1024.0);
    if args.json {
        let out = json!({
            "heartbeat": {
                "devices": 8, "encoded_bytes": hb_len, "wire_bytes": hb_wire,
                "json_keyed_bytes": json_keyed, "json_positional_bytes": json_positional,
                "messages_per_s": hb_rate,
            },
            "result_chunk": {
                "payload_bytes": CHUNK_DATA, "encoded_bytes": chunk_len, "wire_bytes": chunk_wire,
                "messages_per_s": chunk_rate, "payload_mib_per_s": chunk_mib_s,
            },
            "rounds": ROUNDS, "seconds": args.seconds,
        });
        println!("{out}");
    } else {
        println!(
            "path: encode + seal + frame + in-memory pipe + unframe + open + decode, one thread"
        );
        println!(
            "Heartbeat (8 GPUs): {hb_len} B encoded, {hb_wire} B on the wire; as JSON-RPC {json_keyed} B keyed, {json_positional} B positional; {:.0} messages/s",
            hb_rate
        );
        println!(
            "ResultChunk (60 KiB): {chunk_wire} B on the wire; {:.0} messages/s = {:.0} MiB/s of payload",
            chunk_rate, chunk_mib_s
        );
        println!("median of {ROUNDS} rounds");
    }
    Ok(())
}
