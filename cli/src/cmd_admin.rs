//! `compushare farm ...` and `compushare admin ...`: operator actions on a running management
//! node, over an admin session (Noise, the operator's key; the node authorises each request
//! and audits it). Offline operations on a stopped node's data directory stay under
//! `compushare manager`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use compushare_client::admin::AdminClient;
use compushare_manager::ledger::{format_credits, parse_credits};
use compushare_protocol::hex;
use compushare_protocol::msg::{
    AdminToManager, JobFilter, JobSummary, LedgerReport, ManagerToAdmin, NodeSettings, RigSummary,
    SettingsChange, SheetState,
};
use compushare_protocol::secure::Identity;
use compushare_protocol::sheet::{Setting, SheetPool, SheetSettings};
use compushare_protocol::types::{Amount, JobId, PublicKey, Role};

/// How to reach the node, as whom.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// The management node, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    manager: String,
    /// The node's public key (64 hex digits).
    #[arg(long = "manager-key", value_name = "HEX")]
    manager_key: String,
    /// The operator's key file (`compushare keygen`; listed by `manager init --operator`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// A sheet's settings on the command line (each flag sets one field; unset flags leave the
/// field unset, so a rig keeps its rig.conf's value or default).
#[derive(clap::Args, Debug, Default)]
pub struct SheetArgs {
    /// A pool, "URL USER [PASS]" (repeat in failover order).
    #[arg(long = "pool", value_name = "URL USER [PASS]")]
    pools: Vec<String>,
    /// Worker account key for transport earnings (64 hex digits).
    #[arg(long, value_name = "HEX")]
    payout: Option<String>,
    /// auto, or auto/mine/transport/off per device, comma separated.
    #[arg(long, value_name = "ROLES")]
    roles: Option<String>,
    /// SWITCH_MARGIN, a fraction between 0 and 1.
    #[arg(long = "switch-margin", value_name = "F")]
    switch_margin: Option<f64>,
    /// MIN_PRICE, micro-credits per cost unit.
    #[arg(long = "min-price", value_name = "N")]
    min_price: Option<u64>,
    /// An operator key for the rigs' network consoles (repeat).
    #[arg(long = "console-key", value_name = "HEX")]
    console_keys: Vec<String>,
    #[arg(long = "watchdog-sick-s", value_name = "S")]
    watchdog_sick_s: Option<u32>,
    #[arg(long = "watchdog-dead-s", value_name = "S")]
    watchdog_dead_s: Option<u32>,
    #[arg(long = "temp-limit-c", value_name = "C")]
    temp_limit_c: Option<u8>,
    #[arg(long = "temp-resume-c", value_name = "C")]
    temp_resume_c: Option<u8>,
    /// Another rig.conf setting, KEY=VALUE (repeat); the rigs refuse keys they do not know.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn key_arg(what: &str, h: &str) -> anyhow::Result<PublicKey> {
    hex::decode_array::<32>(h)
        .map_err(|_| anyhow::anyhow!("{what}: expected 64 hex digits, got {h:?}"))
}

fn role_arg(s: &str) -> anyhow::Result<Role> {
    Ok(match s {
        "auto" => Role::Auto,
        "mine" => Role::Mine,
        "transport" => Role::Transport,
        "off" => Role::Off,
        _ => bail!("role {s:?}: expected auto, mine, transport or off"),
    })
}

fn fits<const N: usize>(what: &str, s: &str) -> anyhow::Result<heapless::String<N>> {
    let mut h = heapless::String::new();
    h.push_str(s)
        .map_err(|_| anyhow::anyhow!("{what}: longer than {N} bytes"))?;
    Ok(h)
}

impl SheetArgs {
    /// The sheet the flags describe (checked like the node checks it).
    pub fn settings(&self) -> anyhow::Result<SheetSettings> {
        let mut s = SheetSettings::default();
        if !self.pools.is_empty() {
            let mut pools = heapless::Vec::new();
            for p in &self.pools {
                let mut parts = p.splitn(3, ' ');
                let url = parts.next().unwrap_or_default();
                let user = parts.next().unwrap_or_default();
                let pass = parts.next().unwrap_or_default();
                pools
                    .push(SheetPool {
                        url: fits("--pool URL", url)?,
                        user: fits("--pool USER", user)?,
                        pass: fits("--pool PASS", pass)?,
                    })
                    .map_err(|_| anyhow::anyhow!("--pool: at most 8 pools"))?;
            }
            s.pools = Some(pools);
        }
        s.payout = self
            .payout
            .as_deref()
            .map(|h| key_arg("--payout", h))
            .transpose()?;
        if let Some(r) = &self.roles {
            let mut roles = heapless::Vec::new();
            for one in r.split(',') {
                roles
                    .push(role_arg(one.trim())?)
                    .map_err(|_| anyhow::anyhow!("--roles: at most 32 devices"))?;
            }
            s.roles = Some(roles);
        }
        if let Some(m) = self.switch_margin {
            if !(0.0..=1.0).contains(&m) {
                bail!("--switch-margin: a fraction between 0 and 1, got {m}");
            }
            s.switch_margin_ppm = Some((m * 1e6).round() as u32);
        }
        s.min_price = self.min_price.map(Amount);
        if !self.console_keys.is_empty() {
            let mut keys = heapless::Vec::new();
            for k in &self.console_keys {
                keys.push(key_arg("--console-key", k)?)
                    .map_err(|_| anyhow::anyhow!("--console-key: at most 8 keys"))?;
            }
            s.console_keys = Some(keys);
        }
        s.watchdog_sick_s = self.watchdog_sick_s;
        s.watchdog_dead_s = self.watchdog_dead_s;
        s.temp_limit_c = self.temp_limit_c;
        s.temp_resume_c = self.temp_resume_c;
        for kv in &self.set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set {kv:?}: expected KEY=VALUE"))?;
            s.extra
                .push(Setting {
                    key: fits("--set KEY", k.trim())?,
                    value: fits("--set VALUE", v.trim())?,
                })
                .map_err(|_| anyhow::anyhow!("--set: at most 8 settings"))?;
        }
        s.check().map_err(|p| anyhow::anyhow!("sheet: {p}"))?;
        Ok(s)
    }
}

/// `compushare farm` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum FarmCmd {
    /// Create a farm; print its enrolment key (rig.conf's FARM_KEY).
    Create {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The farms you may see, with their sheet versions and rigs.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// A farm's sheet.
    Show {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Replace a farm's sheet (pushed to its rigs at once).
    Sheet {
        name: String,
        #[command(flatten)]
        sheet: SheetArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set (or with --clear remove) one rig's override of its farm's sheet.
    Override {
        name: String,
        /// The rig's public key (64 hex digits).
        rig: String,
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        sheet: SheetArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// A farm's rigs: live state, sheet, trust, earnings.
    Rigs {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `compushare admin` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Credit a client account on the running node; print its new balance.
    Grant {
        /// The client's public key (64 hex digits).
        account: String,
        /// Credits, up to 6 decimals.
        amount: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Every rig (or one farm's): live state, sheet, trust, earnings.
    Rigs {
        #[arg(long)]
        farm: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Pin a device's role on a connected rig (DEVICE: an index, or `all`).
    Role {
        rig: String,
        device: String,
        role: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Operators: `add KEY [--farm NAME]`, `remove KEY`.
    Operator {
        #[command(subcommand)]
        what: OperatorCmd,
    },
    /// The audit table of admin requests.
    Audit {
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Client jobs: id, client, state, photons, escrow held, spent, submitted (node
    /// operators). `jobs cancel JOB` stops one.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Jobs {
        #[command(subcommand)]
        what: Option<JobsCmd>,
        /// open (queued, running, verifying), done or cancelled.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// One client's jobs (its public key, 64 hex digits).
        #[arg(long, value_name = "HEX")]
        client: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Option<Conn>,
    },
    /// The ledger: totals, head, and whether it verifies (node operators).
    Ledger {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The node's fee, price and credit value; `settings set KEY=VALUE ...` changes them for
    /// jobs submitted afterwards (node operators).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Settings {
        #[command(subcommand)]
        what: Option<SettingsCmd>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Option<Conn>,
    },
}

/// `compushare admin jobs` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum JobsCmd {
    /// Stop a running job: work out with rigs is cancelled, verified work stays paid, the
    /// rest of the escrow is refunded to the client.
    Cancel {
        job: u64,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `compushare admin settings` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SettingsCmd {
    /// Change settings: fee_bp=N (basis points of the work paid), price=N (micro-credits per
    /// cost unit), credit_sat=S (what one credit is worth in satoshi, up to 3 decimals).
    Set {
        #[arg(value_name = "KEY=VALUE", required = true)]
        changes: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `compushare admin operator` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum OperatorCmd {
    /// Allow a key to administer the node, or with --farm one farm.
    Add {
        key: String,
        #[arg(long)]
        farm: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Withdraw a key's operator rights.
    Remove {
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Connects, sends each request in turn, hands each reply to `show`.
fn with_node(
    conn: &Conn,
    reqs: Vec<AdminToManager>,
    mut show: impl FnMut(ManagerToAdmin) -> anyhow::Result<Option<AdminToManager>>,
) -> anyhow::Result<()> {
    let me = Identity::load(&conn.key).with_context(|| format!("--key {}", conn.key.display()))?;
    let manager = key_arg("--manager-key", &conn.manager_key)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut c = AdminClient::connect(conn.manager.as_str(), &me, &manager)
            .await
            .with_context(|| format!("--manager {}", conn.manager))?;
        for req in reqs {
            let mut next = Some(req);
            while let Some(r) = next.take() {
                let reply = c.request(&r).await?;
                next = show(reply)?;
            }
        }
        Ok(())
    })
}

fn name(what: &str, s: &str) -> anyhow::Result<compushare_protocol::types::Name> {
    fits(what, s)
}

fn sheet_line(s: &SheetState) -> String {
    match s {
        SheetState::None => "-".into(),
        SheetState::Pushed { version } => format!("v{version} pushed"),
        SheetState::Applied { version } => format!("v{version}"),
        SheetState::Refused { version, reason } => format!("v{version} REFUSED: {reason}"),
    }
}

fn rig_json(r: &RigSummary) -> serde_json::Value {
    let (state, version, reason) = match &r.sheet {
        SheetState::None => ("none", None, None),
        SheetState::Pushed { version } => ("pushed", Some(*version), None),
        SheetState::Applied { version } => ("applied", Some(*version), None),
        SheetState::Refused { version, reason } => {
            ("refused", Some(*version), Some(reason.to_string()))
        }
    };
    serde_json::json!({
        "key": hex::encode(&r.key),
        "name": r.name.as_str(),
        "farm": r.farm.as_ref().map(|f| f.as_str()),
        "online": r.online,
        "last_seen_unix_s": r.last_seen_unix_s,
        "firmware": r.firmware.as_str(),
        "trust": format!("{:?}", r.trust).to_lowercase(),
        "earned": format_credits(i128::from(r.earned.0)),
        "sheet": { "state": state, "version": version, "reason": reason },
        "devices": r.devices.iter().map(|d| serde_json::json!({
            "index": d.index,
            "role": format!("{:?}", d.role).to_lowercase(),
            "hash_rate": d.hash_rate,
            "histories_per_s": d.histories_per_s,
            "temperature_c": d.temperature_dc.map(|t| f64::from(t) / 10.0),
            "power_w": d.power_w,
        })).collect::<Vec<_>>(),
    })
}

fn list_rigs(conn: &Conn, farm: Option<&str>, json: bool) -> anyhow::Result<()> {
    let farm = farm.map(|f| name("farm", f)).transpose()?;
    let mut all = Vec::new();
    let first = AdminToManager::Rigs {
        farm: farm.clone(),
        after: None,
    };
    with_node(conn, vec![first], |reply| match reply {
        ManagerToAdmin::Rigs { rigs, more } => {
            let last = rigs.last().map(|r| r.key);
            all.extend(rigs);
            Ok(match (more, last) {
                (true, Some(after)) => Some(AdminToManager::Rigs {
                    farm: farm.clone(),
                    after: Some(after),
                }),
                _ => None,
            })
        }
        _ => bail!("unexpected reply"),
    })?;
    if json {
        let v: Vec<_> = all.iter().map(rig_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    for r in &all {
        let roles: Vec<String> = r
            .devices
            .iter()
            .map(|d| format!("{:?}", d.role).to_lowercase())
            .collect();
        println!(
            "{}  {:<16} {:<12} {:<7} sheet {:<10} {:?} earned {} devices [{}]",
            hex::encode(&r.key),
            r.name.as_str(),
            r.farm.as_ref().map_or("-", |f| f.as_str()),
            if r.online { "online" } else { "offline" },
            sheet_line(&r.sheet),
            r.trust,
            format_credits(i128::from(r.earned.0)),
            roles.join(",")
        );
    }
    Ok(())
}

fn state_arg(s: &str) -> anyhow::Result<JobFilter> {
    Ok(match s {
        "open" => JobFilter::Open,
        "done" => JobFilter::Done,
        "cancelled" => JobFilter::Cancelled,
        _ => bail!("--state {s:?}: expected open, done or cancelled"),
    })
}

fn credits(a: Amount) -> String {
    format_credits(i128::from(a.0))
}

fn job_json(j: &JobSummary) -> serde_json::Value {
    serde_json::json!({
        "job": j.job.0,
        "client": hex::encode(&j.client),
        "state": format!("{:?}", j.state).to_lowercase(),
        "photons_done": j.photons_done,
        "photons_total": j.photons_total,
        "escrow": credits(j.escrow),
        "spent": credits(j.spent),
        "price_per_history": j.price_per_history.0,
        "fee_bp": j.fee_bp,
        "submitted_unix_s": j.submitted_unix_s,
    })
}

fn list_jobs(
    conn: &Conn,
    state: Option<&str>,
    client: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let state = state.map(state_arg).transpose()?;
    let client = client.map(|c| key_arg("--client", c)).transpose()?;
    let mut all: Vec<JobSummary> = Vec::new();
    let first = AdminToManager::Jobs {
        state,
        client,
        after: None,
    };
    with_node(conn, vec![first], |reply| match reply {
        ManagerToAdmin::Jobs { jobs, more } => {
            let last = jobs.last().map(|j| j.job);
            all.extend(jobs);
            Ok(match (more, last) {
                (true, Some(after)) => Some(AdminToManager::Jobs {
                    state,
                    client,
                    after: Some(after),
                }),
                _ => None,
            })
        }
        other => bail!("unexpected reply: {other:?}"),
    })?;
    if json {
        let v: Vec<_> = all.iter().map(job_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    for j in &all {
        println!(
            "job {:<6} client {} {:<10} {}/{} photons escrow {} spent {} submitted {}",
            j.job.0,
            hex::short(&j.client),
            format!("{:?}", j.state).to_lowercase(),
            j.photons_done,
            j.photons_total,
            credits(j.escrow),
            credits(j.spent),
            j.submitted_unix_s
        );
    }
    Ok(())
}

fn ledger_json(r: &LedgerReport) -> serde_json::Value {
    let c = |v: u64| format_credits(i128::from(v));
    serde_json::json!({
        "verified": r.verified,
        "fault": (!r.verified).then(|| r.fault.as_str()),
        "entries": r.entries,
        "head_seq": r.entries.checked_sub(1),
        "head_hash": hex::encode(&r.head),
        "granted": c(r.granted),
        "clients": c(r.clients),
        "escrow": c(r.escrow),
        "worker_pending": c(r.pending),
        "worker_spendable": c(r.spendable),
        "fees": c(r.fees),
        "paid": c(r.paid),
        "refunded": c(r.refunded),
        "forfeited": c(r.forfeited),
    })
}

/// Millisatoshi as satoshi, exactly (`1500` -> `1.5`).
fn msat_as_sat(msat: u64) -> String {
    let (whole, frac) = (msat / 1000, msat % 1000);
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:03}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Satoshi with up to 3 decimals as millisatoshi.
fn sat_as_msat(s: &str) -> anyhow::Result<u64> {
    let bad = || anyhow::anyhow!("credit_sat={s:?}: satoshi with up to 3 decimals, e.g. 0.5");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || frac.len() > 3 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

fn settings_change(changes: &[String]) -> anyhow::Result<SettingsChange> {
    let mut c = SettingsChange::default();
    for kv in changes {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{kv:?}: expected KEY=VALUE"))?;
        let int = |what: &str| {
            v.parse::<u64>()
                .map_err(|_| anyhow::anyhow!("{what}={v:?}: expected a whole number"))
        };
        match k {
            "fee_bp" => {
                c.fee_bp = Some(
                    u32::try_from(int("fee_bp")?)
                        .map_err(|_| anyhow::anyhow!("fee_bp={v}: too large"))?,
                )
            }
            "price" => c.price_per_unit = Some(Amount(int("price")?)),
            "credit_sat" => c.credit_msat = Some(sat_as_msat(v)?),
            _ => bail!("{k:?}: not a setting (fee_bp, price, credit_sat)"),
        }
    }
    Ok(c)
}

fn show_settings(s: &NodeSettings, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "fee_bp": s.fee_bp,
                "price": s.price_per_unit.0,
                "credit_msat": s.credit_msat,
                "credit_sat": msat_as_sat(s.credit_msat),
            })
        );
    } else {
        println!("fee_bp={}", s.fee_bp);
        println!("price={}", s.price_per_unit.0);
        println!("credit_sat={}", msat_as_sat(s.credit_msat));
    }
}

fn done(reply: ManagerToAdmin) -> anyhow::Result<Option<AdminToManager>> {
    match reply {
        ManagerToAdmin::Done { message } => println!("{message}"),
        ManagerToAdmin::SheetStored {
            farm,
            version,
            pushed,
        } => println!("farm {farm}: sheet v{version} stored, sent to {pushed} connected rig(s)"),
        other => bail!("unexpected reply: {other:?}"),
    }
    Ok(None)
}

pub fn farm(cmd: FarmCmd) -> anyhow::Result<()> {
    match cmd {
        FarmCmd::Create { name: n, conn } => {
            let req = AdminToManager::FarmCreate {
                name: name("NAME", &n)?,
            };
            with_node(&conn, vec![req], |reply| match reply {
                ManagerToAdmin::FarmCreated { farm, key } => {
                    eprintln!(
                        "farm {farm} created; its rigs need only MANAGER, MANAGER_KEY and this FARM_KEY (shown once):"
                    );
                    println!("{}", hex::encode(&key));
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
        FarmCmd::List { conn } => {
            with_node(&conn, vec![AdminToManager::Farms], |reply| match reply {
                ManagerToAdmin::Farms { farms } => {
                    for f in farms {
                        println!(
                            "{:<20} sheet v{:<6} rigs {:>5} online {:>5}",
                            f.name.as_str(),
                            f.version,
                            f.rigs,
                            f.online
                        );
                    }
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
        FarmCmd::Show { name: n, conn } => {
            let req = AdminToManager::SheetGet {
                farm: name("NAME", &n)?,
            };
            with_node(&conn, vec![req], |reply| match reply {
                ManagerToAdmin::Sheet {
                    farm,
                    version,
                    settings,
                    overrides,
                } => {
                    println!("farm {farm} sheet v{version} ({overrides} rig override(s))");
                    for (k, v) in compushare_controller::sheet::lines(&settings) {
                        let v = if k.ends_with("_PASS") {
                            "***".into()
                        } else {
                            v
                        };
                        println!("{k}={v}");
                    }
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
        FarmCmd::Sheet {
            name: n,
            sheet,
            conn,
        } => {
            let req = AdminToManager::SheetSet {
                farm: name("NAME", &n)?,
                settings: sheet.settings()?,
            };
            with_node(&conn, vec![req], done)
        }
        FarmCmd::Override {
            name: n,
            rig,
            clear,
            sheet,
            conn,
        } => {
            let req = AdminToManager::OverrideSet {
                farm: name("NAME", &n)?,
                rig: key_arg("RIG", &rig)?,
                settings: if clear { None } else { Some(sheet.settings()?) },
            };
            with_node(&conn, vec![req], done)
        }
        FarmCmd::Rigs {
            name: n,
            json,
            conn,
        } => list_rigs(&conn, Some(&n), json),
    }
}

pub fn admin(cmd: AdminCmd) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::Grant {
            account,
            amount,
            conn,
        } => {
            let req = AdminToManager::Grant {
                account: key_arg("ACCOUNT", &account)?,
                amount: parse_credits(&amount).map_err(|e| anyhow::anyhow!("AMOUNT: {e}"))?,
            };
            with_node(&conn, vec![req], |reply| match reply {
                ManagerToAdmin::Granted { balance, .. } => {
                    println!("{}", format_credits(i128::from(balance)));
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
        AdminCmd::Rigs { farm, json, conn } => list_rigs(&conn, farm.as_deref(), json),
        AdminCmd::Role {
            rig,
            device,
            role,
            conn,
        } => {
            let device = match device.as_str() {
                "all" => None,
                d => Some(
                    d.parse::<u8>()
                        .map_err(|_| anyhow::anyhow!("DEVICE: an index or `all`, got {d:?}"))?,
                ),
            };
            let req = AdminToManager::Role {
                rig: key_arg("RIG", &rig)?,
                device,
                role: role_arg(&role)?,
            };
            with_node(&conn, vec![req], done)
        }
        AdminCmd::Operator { what } => {
            let (conn, req) = match what {
                OperatorCmd::Add { key, farm, conn } => {
                    let req = AdminToManager::OperatorAdd {
                        key: key_arg("KEY", &key)?,
                        farm: farm.as_deref().map(|f| name("--farm", f)).transpose()?,
                    };
                    (conn, req)
                }
                OperatorCmd::Remove { key, conn } => (
                    conn,
                    AdminToManager::OperatorRemove {
                        key: key_arg("KEY", &key)?,
                    },
                ),
            };
            with_node(&conn, vec![req], done)
        }
        AdminCmd::Audit { from, conn } => with_node(
            &conn,
            vec![AdminToManager::Audit { from }],
            |reply| match reply {
                ManagerToAdmin::Audit {
                    records,
                    next,
                    more,
                } => {
                    for r in records {
                        println!(
                            "{:>6} {} {} {:<7} {} -> {}",
                            r.seq,
                            r.at_unix_s,
                            hex::short(&r.operator),
                            if r.allowed { "allowed" } else { "DENIED" },
                            r.request,
                            r.outcome
                        );
                    }
                    Ok(more.then_some(AdminToManager::Audit { from: next }))
                }
                other => bail!("unexpected reply: {other:?}"),
            },
        ),
        AdminCmd::Jobs {
            what: Some(JobsCmd::Cancel { job, conn }),
            ..
        } => with_node(
            &conn,
            vec![AdminToManager::JobCancel { job: JobId(job) }],
            |reply| match reply {
                ManagerToAdmin::JobCancelled {
                    job,
                    paid,
                    fee,
                    refund,
                } => {
                    println!(
                        "job {} cancelled: paid {} for verified work, fee {}, refunded {}",
                        job.0,
                        credits(paid),
                        credits(fee),
                        credits(refund)
                    );
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            },
        ),
        AdminCmd::Jobs {
            what: None,
            state,
            client,
            json,
            conn,
        } => {
            let conn = conn.context("--manager, --manager-key and --key are required")?;
            list_jobs(&conn, state.as_deref(), client.as_deref(), json)
        }
        AdminCmd::Ledger { json, conn } => {
            let mut report = None;
            with_node(&conn, vec![AdminToManager::Ledger], |reply| match reply {
                ManagerToAdmin::Ledger(r) => {
                    report = Some(r);
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })?;
            let r = report.context("no ledger summary")?;
            if json {
                println!("{}", ledger_json(&r));
            } else {
                let c = |v: u64| format_credits(i128::from(v));
                match r.entries.checked_sub(1) {
                    Some(seq) => println!(
                        "ledger: {} entries, head #{seq} {}",
                        r.entries,
                        hex::encode(&r.head)
                    ),
                    None => println!("ledger: empty"),
                }
                if r.verified {
                    println!("verify: ok");
                    println!("granted           {}", c(r.granted));
                    println!("client balances   {}", c(r.clients));
                    println!("held in escrow    {}", c(r.escrow));
                    println!("worker pending    {}", c(r.pending));
                    println!("worker spendable  {}", c(r.spendable));
                    println!("fees              {}", c(r.fees));
                    println!("paid to workers   {}", c(r.paid));
                    println!("refunded          {}", c(r.refunded));
                    println!("forfeited         {}", c(r.forfeited));
                }
            }
            if !r.verified {
                bail!("ledger verification FAILED: {}", r.fault);
            }
            Ok(())
        }
        AdminCmd::Settings {
            what: Some(SettingsCmd::Set { changes, conn }),
            json,
            ..
        } => {
            let req = AdminToManager::SettingsSet(settings_change(&changes)?);
            with_node(&conn, vec![req], |reply| match reply {
                ManagerToAdmin::Settings(s) => {
                    show_settings(&s, json);
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
        AdminCmd::Settings {
            what: None,
            json,
            conn,
        } => {
            let conn = conn.context("--manager, --manager-key and --key are required")?;
            with_node(&conn, vec![AdminToManager::Settings], |reply| match reply {
                ManagerToAdmin::Settings(s) => {
                    show_settings(&s, json);
                    Ok(None)
                }
                other => bail!("unexpected reply: {other:?}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satoshi_and_millisatoshi() {
        assert_eq!(sat_as_msat("1").unwrap(), 1000);
        assert_eq!(sat_as_msat("0.5").unwrap(), 500);
        assert_eq!(sat_as_msat("2.001").unwrap(), 2001);
        assert!(sat_as_msat("0.0005").is_err());
        assert!(sat_as_msat("-1").is_err());
        assert!(sat_as_msat(".5").is_err());
        assert!(sat_as_msat("1.x").is_err());
        assert_eq!(msat_as_sat(1500), "1.5");
        assert_eq!(msat_as_sat(1), "0.001");
        assert_eq!(msat_as_sat(3000), "3");
        let c = settings_change(&["fee_bp=250".into(), "credit_sat=0.25".into()]).unwrap();
        assert_eq!(c.fee_bp, Some(250));
        assert_eq!(c.credit_msat, Some(250));
        assert_eq!(c.price_per_unit, None);
        assert!(settings_change(&["fee=1".into()]).is_err());
    }
}
