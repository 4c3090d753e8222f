//! The cgminer-compatible read-only API (`API_LISTEN`, default 127.0.0.1:4028).
//!
//! Farm dashboards and exporters written for cgminer read a rig unchanged: the commands
//! `version`, `config`, `summary`, `devs` (and `edevs`), `pools`, `stats` (and `estats`),
//! `devdetails`, `check`, `pgacount`, `asccount`, in cgminer's JSON and text request forms,
//! with its STATUS envelope, `+` joined replies and the trailing NUL; one request per
//! connection, then the rig closes it (cgminer's protocol). Every command that would change
//! the miner (`switchpool`, `addpool`, `restart`, `quit`, ...) is refused with cgminer's
//! access-denied status: changes go through the authenticated console.
//!
//! Devices appear as cgminer 3's `GPU=N` records (CUDA GPUs) and `CPU=N` records (CPU
//! devices), with the rig's own fields (role, histories/s, power, switches) after cgminer's;
//! `summary` ends with the rig's own too: transport rate and earnings, vault, maintenance
//! mode, and the manager session (`Manager`, `Manager Status`: Connected, Connecting, Down
//! or Disabled, `Manager Error`).
//! Fields cgminer has and the rig does not measure are left out, not filled with zeros.
//!
//! Bounds: [`CONNECTIONS`] at once, [`TIME_LIMIT`] per connection, a request of at most
//! [`request::MAX_REQUEST`] bytes.

pub mod format;
pub mod request;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::types::{DeviceKind, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ops::{bump, Door, OpsStats};
use crate::status::{Health, LinkState, RigStatus, StatusRx};
use format::{Envelope, Record, Section, Severity, Status, Val};
use request::{RequestError, MAX_REQUEST};

/// The cgminer API version this API follows.
pub const API_VERSION: &str = "3.7";
/// Connections served at once.
pub const CONNECTIONS: usize = 8;
/// Longest one connection may take (request and reply).
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
/// How long the rest of a JSON request that arrived in pieces is waited for.
pub const REST_WAIT: Duration = Duration::from_millis(500);

// cgminer's message codes (api.c).
const MSG_POOL: i64 = 7;
const MSG_NOPOOL: i64 = 8;
const MSG_DEVS: i64 = 9;
const MSG_NODEVS: i64 = 10;
const MSG_SUMM: i64 = 11;
pub(crate) const MSG_INVCMD: i64 = 14;
const MSG_VERSION: i64 = 22;
const MSG_INVJSON: i64 = 23;
const MSG_MISCMD: i64 = 24;
const MSG_MINECONFIG: i64 = 33;
const MSG_ACCDENY: i64 = 45;
const MSG_NUMPGA: i64 = 59;
const MSG_DEVDETAILS: i64 = 69;
const MSG_MINESTATS: i64 = 70;
const MSG_MISCHK: i64 = 71;
const MSG_CHECK: i64 = 72;
const MSG_NUMASC: i64 = 104;

/// cgminer's commands that change the miner: always refused here.
const PRIVILEGED: &[&str] = &[
    "switchpool",
    "enablepool",
    "addpool",
    "poolpriority",
    "poolquota",
    "disablepool",
    "removepool",
    "save",
    "quit",
    "privileged",
    "pgaenable",
    "pgadisable",
    "pgaidentify",
    "restart",
    "failover-only",
    "debug",
    "setconfig",
    "pgaset",
    "zero",
    "hotplug",
    "ascenable",
    "ascdisable",
    "ascidentify",
    "ascset",
    "lockstats",
];

/// Report commands answered here (all joinable).
const REPORTS: &[&str] = &[
    "version",
    "config",
    "summary",
    "devs",
    "edevs",
    "pools",
    "stats",
    "estats",
    "devdetails",
    "pgacount",
    "asccount",
];

fn status(severity: Severity, code: i64, msg: impl Into<String>) -> Status {
    Status {
        severity,
        code,
        msg: msg.into(),
    }
}

fn only_status(s: Status) -> Section {
    Section {
        status: s,
        name: None,
        text_header: false,
        records: Vec::new(),
    }
}

fn denied(cmd: &str) -> Section {
    only_status(status(
        Severity::Error,
        MSG_ACCDENY,
        format!("Access denied to '{cmd}' command"),
    ))
}

fn invalid() -> Section {
    only_status(status(Severity::Error, MSG_INVCMD, "Invalid command"))
}

fn k(s: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(s)
}

fn mhs(hashes_per_s: f64) -> Val {
    Val::Fixed(hashes_per_s / 1e6, 2)
}

/// Seconds the rig has run, at least 1 (cgminer's guard against dividing by zero).
fn elapsed(s: &RigStatus) -> f64 {
    s.uptime_s.max(1) as f64
}

fn device_id(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::CudaGpu => "GPU",
        DeviceKind::Cpu => "CPU",
    }
}

fn role_name(r: Role) -> &'static str {
    crate::console::render::role(r)
}

/// The reply to one command of a request.
fn command(cmd: &str, parameter: Option<&str>, joined: bool, s: &RigStatus) -> Section {
    if PRIVILEGED.contains(&cmd) {
        return denied(cmd);
    }
    match cmd {
        "version" => Section {
            status: status(Severity::Success, MSG_VERSION, "CGMiner versions"),
            name: Some("VERSION"),
            text_header: true,
            records: vec![vec![
                (k("CGMiner"), Val::Str(s.firmware.clone())),
                (k("API"), Val::Str(API_VERSION.into())),
            ]],
        },
        "config" => config(s),
        "summary" => summary(s),
        "devs" | "edevs" => devs(s),
        "pools" => pools(s),
        "stats" | "estats" => stats(s),
        "devdetails" => devdetails(s),
        "pgacount" | "asccount" => {
            let (code, msg, name) = if cmd == "pgacount" {
                (MSG_NUMPGA, "PGA count", "PGAS")
            } else {
                (MSG_NUMASC, "ASC count", "ASCS")
            };
            Section {
                status: status(Severity::Success, code, msg),
                name: Some(name),
                text_header: true,
                records: vec![vec![(k("Count"), Val::Int(0))]],
            }
        }
        // `check` takes a parameter, so cgminer refuses it inside a joined request.
        "check" if joined => denied(cmd),
        "check" => match parameter.filter(|p| !p.is_empty()) {
            None => only_status(status(Severity::Error, MSG_MISCHK, "Missing check cmd")),
            Some(p) => {
                let exists = REPORTS.contains(&p) || PRIVILEGED.contains(&p) || p == "check";
                let access = exists && !PRIVILEGED.contains(&p);
                let yn = |b: bool| Val::Str(if b { "Y" } else { "N" }.into());
                Section {
                    status: status(Severity::Success, MSG_CHECK, "Check command"),
                    name: Some("CHECK"),
                    text_header: true,
                    records: vec![vec![(k("Exists"), yn(exists)), (k("Access"), yn(access))]],
                }
            }
        },
        _ => invalid(),
    }
}

fn config(s: &RigStatus) -> Section {
    let count = |kind| s.devices.iter().filter(|d| d.kind == kind).count() as i64;
    Section {
        status: status(Severity::Success, MSG_MINECONFIG, "CGMiner config"),
        name: Some("CONFIG"),
        text_header: true,
        records: vec![vec![
            (k("GPU Count"), Val::Int(count(DeviceKind::CudaGpu))),
            (k("CPU Count"), Val::Int(count(DeviceKind::Cpu))),
            (k("ASC Count"), Val::Int(0)),
            (k("PGA Count"), Val::Int(0)),
            (k("Pool Count"), Val::Int(s.pools.len() as i64)),
            (k("Strategy"), Val::Str("Failover".into())),
            (k("Device Code"), Val::Str("GPU CPU ".into())),
            (k("OS"), Val::Str("Linux".into())),
            (k("Hotplug"), Val::Str("None".into())),
            (k("Sheet Farm"), sheet_farm(s)),
            (k("Sheet Version"), sheet_version(s)),
        ]],
    }
}

/// The farm of the flight sheet in force (`""`: none).
fn sheet_farm(s: &RigStatus) -> Val {
    Val::Str(
        s.sheet
            .applied
            .as_ref()
            .map_or_else(String::new, |a| a.farm.clone()),
    )
}

/// The version of the flight sheet in force (0: none; versions start at 1).
fn sheet_version(s: &RigStatus) -> Val {
    Val::Uint(s.sheet.applied.as_ref().map_or(0, |a| a.version))
}

fn percent(part: u64, whole: u64) -> Val {
    let p = if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    };
    Val::Fixed(p, 4)
}

fn summary(s: &RigStatus) -> Section {
    let hashes: u64 = s.devices.iter().map(|d| d.hashes).sum();
    let rate: f64 = s.devices.iter().map(|d| d.hash_rate).sum();
    let hist_rate: f64 = s.devices.iter().map(|d| d.histories_per_s).sum();
    let histories: u64 = s.devices.iter().map(|d| d.histories).sum();
    let accepted: u64 = s.pools.iter().map(|p| p.accepted).sum();
    let rejected: u64 = s.pools.iter().map(|p| p.rejected).sum();
    let stale: u64 = s.pools.iter().map(|p| p.stale).sum();
    let hw: u64 = s.devices.iter().map(|d| d.hw_errors).sum();
    let secs = elapsed(s);
    let shares = accepted + rejected + stale;
    Section {
        status: status(Severity::Success, MSG_SUMM, "Summary"),
        name: Some("SUMMARY"),
        text_header: true,
        records: vec![vec![
            (k("Elapsed"), Val::Fixed(s.uptime_s as f64, 0)),
            (k("MHS av"), mhs(hashes as f64 / secs)),
            (k("MHS 5s"), mhs(rate)),
            (k("Getworks"), Val::Uint(0)),
            (k("Accepted"), Val::Uint(accepted)),
            (k("Rejected"), Val::Uint(rejected)),
            (k("Hardware Errors"), Val::Uint(hw)),
            (k("Utility"), Val::Fixed(accepted as f64 / secs * 60.0, 2)),
            (k("Stale"), Val::Uint(stale)),
            (k("Total MH"), Val::Fixed(hashes as f64 / 1e6, 4)),
            (k("Pool Rejected%"), percent(rejected, shares)),
            (k("Pool Stale%"), percent(stale, shares)),
            (k("Histories/s"), Val::Fixed(hist_rate, 2)),
            (k("Total Histories"), Val::Uint(histories)),
            (
                k("Mining Earned msat"),
                Val::Fixed(s.earnings.mining_msat, 3),
            ),
            (
                k("Transport Earned msat"),
                Val::Fixed(s.earnings.transport_msat, 3),
            ),
            (k("Vault Used"), Val::Uint(u64::from(s.vault.used))),
            (k("Vault Slots"), Val::Uint(u64::from(s.vault.slots))),
            (k("Sheet Farm"), sheet_farm(s)),
            (k("Sheet Version"), sheet_version(s)),
            (
                k("Sheet Refused Version"),
                Val::Uint(s.sheet.refused.as_ref().map_or(0, |r| r.version)),
            ),
            (
                k("Sheet Refused Reason"),
                Val::Str(
                    s.sheet
                        .refused
                        .as_ref()
                        .map_or_else(String::new, |r| r.reason.clone()),
                ),
            ),
            (
                k("Calibration Failures"),
                Val::Uint(s.calibration_failures.total()),
            ),
            (
                k("Maintenance"),
                Val::Str(s.maintenance.clone().unwrap_or_default()),
            ),
            (
                k("Manager"),
                Val::Str(s.manager.addr.clone().unwrap_or_default()),
            ),
            (
                k("Manager Status"),
                Val::Str(manager_status(&s.manager.state).into()),
            ),
            (
                k("Manager Error"),
                Val::Str(match &s.manager.state {
                    LinkState::Down { error, .. } => error.clone(),
                    _ => String::new(),
                }),
            ),
        ]],
    }
}

/// The manager session in one word, for dashboards and the image's status line.
fn manager_status(state: &LinkState) -> &'static str {
    match state {
        LinkState::Connected { .. } => "Connected",
        LinkState::Connecting => "Connecting",
        LinkState::Down { .. } => "Down",
        LinkState::Disabled => "Disabled",
        #[allow(unreachable_patterns)]
        _ => "Unknown",
    }
}

fn device_status(h: Health) -> &'static str {
    match h {
        Health::Ok => "Alive",
        Health::Dead => "Dead",
        // Hot devices are paused until they cool: cgminer's word for a device in trouble.
        _ => "Sick",
    }
}

fn devs(s: &RigStatus) -> Section {
    let gpus = s
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::CudaGpu)
        .count();
    let cpus = s.devices.len() - gpus;
    if s.devices.is_empty() {
        return only_status(status(Severity::Error, MSG_NODEVS, "No GPUs/CPUs"));
    }
    let secs = elapsed(s);
    let records = s
        .devices
        .iter()
        .map(|d| {
            let enabled = d.role != Role::Off && d.health != Health::Dead;
            vec![
                (k(device_id(d.kind)), Val::Int(i64::from(d.index))),
                (k("Name"), Val::Str(d.name.clone())),
                (k("ID"), Val::Int(i64::from(d.index))),
                (
                    k("Enabled"),
                    Val::Str(if enabled { "Y" } else { "N" }.into()),
                ),
                (k("Status"), Val::Str(device_status(d.health).into())),
                (
                    k("Temperature"),
                    Val::Fixed(d.temperature_dc.map_or(0.0, |t| f64::from(t) / 10.0), 2),
                ),
                (
                    k("Fan Percent"),
                    Val::Int(d.fan_percent.map_or(0, i64::from)),
                ),
                (k("MHS av"), mhs(d.hashes as f64 / secs)),
                (k("MHS 5s"), mhs(d.hash_rate)),
                (k("Accepted"), Val::Uint(d.shares_accepted)),
                (k("Rejected"), Val::Uint(d.shares_rejected)),
                (k("Hardware Errors"), Val::Uint(d.hw_errors)),
                (
                    k("Utility"),
                    Val::Fixed(d.shares_accepted as f64 / secs * 60.0, 2),
                ),
                (k("Total MH"), Val::Fixed(d.hashes as f64 / 1e6, 4)),
                (k("Device Elapsed"), Val::Fixed(s.uptime_s as f64, 0)),
                (k("Role"), Val::Str(role_name(d.role).into())),
                (k("Pin"), Val::Str(role_name(d.pin).into())),
                (k("Histories/s"), Val::Fixed(d.histories_per_s, 2)),
                (k("Total Histories"), Val::Uint(d.histories)),
                (k("Power"), Val::Int(d.power_w.map_or(0, i64::from))),
                (k("Switches"), Val::Uint(d.switches)),
            ]
        })
        .collect();
    Section {
        status: status(
            Severity::Success,
            MSG_DEVS,
            format!("{gpus} GPU(s) - {cpus} CPU(s)"),
        ),
        name: Some("DEVS"),
        text_header: false,
        records,
    }
}

fn pool_status(state: &LinkState) -> &'static str {
    match state {
        LinkState::Connected { .. } => "Alive",
        LinkState::Disabled => "Disabled",
        _ => "Dead",
    }
}

/// `stratum+tcp://host:port` -> `host:port`, as cgminer shows its Stratum URL.
fn stratum_host(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

fn pools(s: &RigStatus) -> Section {
    if s.pools.is_empty() {
        return only_status(status(Severity::Error, MSG_NOPOOL, "No pools"));
    }
    let records = s
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let live = p.active && matches!(p.state, LinkState::Connected { .. });
            let shares = p.accepted + p.rejected + p.stale;
            let last = p
                .last_share_s
                .map_or(0, |ago| s.at_unix_s.saturating_sub(ago));
            vec![
                (k("POOL"), Val::Int(i as i64)),
                (k("URL"), Val::Str(p.url.clone())),
                (k("Status"), Val::Str(pool_status(&p.state).into())),
                (k("Priority"), Val::Int(i as i64)),
                (k("Quota"), Val::Int(1)),
                (k("Long Poll"), Val::Str("N".into())),
                (k("Getworks"), Val::Uint(0)),
                (k("Accepted"), Val::Uint(p.accepted)),
                (k("Rejected"), Val::Uint(p.rejected)),
                (k("Stale"), Val::Uint(p.stale)),
                (k("User"), Val::Str(p.user.clone())),
                (k("Last Share Time"), Val::Uint(last)),
                (k("Work Difficulty"), Val::Fixed(p.difficulty, 8)),
                (k("Has Stratum"), Val::Bool(true)),
                (k("Stratum Active"), Val::Bool(live)),
                (
                    k("Stratum URL"),
                    Val::Str(if live {
                        stratum_host(&p.url).into()
                    } else {
                        String::new()
                    }),
                ),
                (
                    k("Stratum Difficulty"),
                    Val::Fixed(if live { p.difficulty } else { 0.0 }, 8),
                ),
                (k("Has GBT"), Val::Bool(false)),
                (k("Pool Rejected%"), percent(p.rejected, shares)),
                (k("Pool Stale%"), percent(p.stale, shares)),
                (k("Number"), Val::Uint(u64::from(p.number))),
                (
                    k("Network Difficulty"),
                    Val::Fixed(p.network_difficulty.unwrap_or(0.0), 8),
                ),
            ]
        })
        .collect();
    Section {
        status: status(
            Severity::Success,
            MSG_POOL,
            format!("{} Pool(s)", s.pools.len()),
        ),
        name: Some("POOLS"),
        text_header: false,
        records,
    }
}

fn stats(s: &RigStatus) -> Section {
    let mut records: Vec<Record> = Vec::new();
    for d in &s.devices {
        records.push(vec![
            (k("STATS"), Val::Int(records.len() as i64)),
            (
                k("ID"),
                Val::Str(format!("{}{}", device_id(d.kind), d.index)),
            ),
            (k("Elapsed"), Val::Fixed(s.uptime_s as f64, 0)),
            (k("Role"), Val::Str(role_name(d.role).into())),
            (k("Idle"), Val::Uint(d.idle_s)),
            (k("Mining msat/s"), Val::Fixed(d.mining_msat_per_s, 6)),
            (k("Transport msat/s"), Val::Fixed(d.transport_msat_per_s, 6)),
            (
                k("Assignment"),
                Val::Str(d.assignment.map(|a| a.to_string()).unwrap_or_default()),
            ),
        ]);
    }
    for (i, p) in s.pools.iter().enumerate() {
        records.push(vec![
            (k("STATS"), Val::Int(records.len() as i64)),
            (k("ID"), Val::Str(format!("POOL{i}"))),
            (k("Elapsed"), Val::Fixed(s.uptime_s as f64, 0)),
            (k("Work Diff"), Val::Fixed(p.difficulty, 8)),
        ]);
    }
    let v = &s.vault;
    records.push(vec![
        (k("STATS"), Val::Int(records.len() as i64)),
        (k("ID"), Val::Str("VAULT0".into())),
        (k("Elapsed"), Val::Fixed(s.uptime_s as f64, 0)),
        (k("Slots"), Val::Uint(u64::from(v.slots))),
        (k("Used"), Val::Uint(u64::from(v.used))),
        (k("Slot Bytes"), Val::Uint(v.slot_bytes)),
        (k("Sealed"), Val::Uint(v.sealed)),
        (k("Full Events"), Val::Uint(v.full_events)),
        (
            k("Results Delivered"),
            Val::Uint(s.manager.results_delivered),
        ),
    ]);
    Section {
        status: status(Severity::Success, MSG_MINESTATS, "CGMiner stats"),
        name: Some("STATS"),
        text_header: false,
        records,
    }
}

fn devdetails(s: &RigStatus) -> Section {
    if s.devices.is_empty() {
        return only_status(status(Severity::Error, MSG_NODEVS, "No GPUs/CPUs"));
    }
    let records = s
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (driver, kernel) = match d.kind {
                DeviceKind::CudaGpu => ("cuda", "sha256d/transport (NVRTC)"),
                DeviceKind::Cpu => ("cpu", "sha256d/transport"),
            };
            vec![
                (k("DEVDETAILS"), Val::Int(i as i64)),
                (k("Name"), Val::Str(device_id(d.kind).into())),
                (k("ID"), Val::Int(i64::from(d.index))),
                (k("Driver"), Val::Str(driver.into())),
                (k("Kernel"), Val::Str(kernel.into())),
                (k("Model"), Val::Str(d.name.clone())),
                (k("Device Path"), Val::Str(String::new())),
            ]
        })
        .collect();
    Section {
        status: status(Severity::Success, MSG_DEVDETAILS, "Device Details"),
        name: Some("DEVDETAILS"),
        text_header: false,
        records,
    }
}

/// What a request that is not one gets, in the form it asked for.
fn request_error(e: &RequestError) -> Section {
    match e {
        RequestError::InvalidJson { .. } => {
            only_status(status(Severity::Error, MSG_INVJSON, "Invalid JSON"))
        }
        RequestError::MissingCommand => only_status(status(
            Severity::Error,
            MSG_MISCMD,
            "Missing JSON 'command'",
        )),
        _ => invalid(),
    }
}

/// Answers one request (the bytes as read, without the connection). The reply ends with
/// cgminer's NUL.
pub fn respond(bytes: &[u8], s: &RigStatus, stats: &OpsStats) -> Vec<u8> {
    // cgminer's When is the time of the request, not of the data.
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(s.at_unix_s, |d| d.as_secs());
    let description = format!("compushare {}", s.firmware);
    let env = Envelope {
        when,
        description: &description,
    };
    let mut text = match request::parse(bytes) {
        Err(e) => {
            bump(&stats.api_bad_requests);
            crate::debug!("api: {e}");
            format::reply(
                request::wants_json(bytes),
                false,
                &[(String::new(), request_error(&e))],
                env,
            )
        }
        Ok(req) => {
            bump(&stats.api_requests);
            let sections: Vec<(String, Section)> = req
                .commands
                .iter()
                .map(|c| {
                    let sec = command(c, req.parameter.as_deref(), req.joined, s);
                    if sec.status.code == MSG_ACCDENY {
                        bump(&stats.api_denied);
                    } else if sec.status.code == MSG_INVCMD {
                        bump(&stats.api_unknown);
                    }
                    (c.clone(), sec)
                })
                .collect();
            format::reply(req.json, req.joined, &sections, env)
        }
    };
    text.push('\0');
    text.into_bytes()
}

/// The API door: its limits and counters.
pub(crate) const DOOR: Door = Door {
    name: "api",
    connections: CONNECTIONS,
    time: TIME_LIMIT,
    counts: |s| &s.api,
};

/// Serves one connection: one request, one reply, then close.
pub(crate) async fn connection(mut stream: TcpStream, status: StatusRx, stats: Arc<OpsStats>) {
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    let mut len = 0usize;
    while let Some(room) = buf.get_mut(len..) {
        // The first bytes may take until the connection's limit; a JSON object still open
        // after them gets [`REST_WAIT`] for the rest, then is answered as it stands (cgminer
        // answers what one read brought).
        let read = if len == 0 {
            stream.read(room).await
        } else {
            match tokio::time::timeout(REST_WAIT, stream.read(room)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => {
                crate::debug!("api: read: {e}");
                return;
            }
        }
        if !request::incomplete(buf.get(..len).unwrap_or_default()) {
            break;
        }
    }
    if len == 0 {
        return;
    }
    let snapshot = status.borrow().clone();
    let reply = respond(buf.get(..len).unwrap_or_default(), &snapshot, &stats);
    if let Err(e) = stream.write_all(&reply).await {
        crate::debug!("api: write: {e}");
    }
    let _ = stream.shutdown().await;
}
