//! Read-only console answers, rendered from one status snapshot.
//!
//! Plain text for an 80-column serial terminal: one fact per line for `status`, `manager`
//! and `vault`; a table for `devices` and `pools`. Rates carry SI units, money is shown in
//! satoshi, temperatures in degrees Celsius; a value the device does not report is `-`.

use std::fmt::Write as _;

use compushare_protocol::hex;
use compushare_protocol::types::{DeviceKind, Role};

use crate::status::{Health, LinkState, RigStatus};

/// `12.35 MH/s`-style rate with an SI prefix.
pub fn si_rate(per_s: f64, unit: &str) -> String {
    let v = if per_s.is_finite() {
        per_s.max(0.0)
    } else {
        0.0
    };
    let (scaled, prefix) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .iter()
        .find(|(s, _)| v >= *s)
        .map_or((v, ""), |(s, p)| (v / s, *p));
    format!("{scaled:.2} {prefix}{unit}")
}

/// Millisatoshi as satoshi with three decimals.
pub fn sat(msat: f64) -> String {
    let v = if msat.is_finite() { msat } else { 0.0 };
    format!("{:.3} sat", v / 1000.0)
}

/// `1d 02:03:04`, `02:03:04`.
pub fn duration(s: u64) -> String {
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

pub fn role(r: Role) -> &'static str {
    match r {
        Role::Auto => "auto",
        Role::Mine => "mine",
        Role::Transport => "transport",
        Role::Off => "off",
    }
}

pub fn health(h: Health) -> &'static str {
    match h {
        Health::Ok => "ok",
        Health::Sick => "SICK",
        Health::Dead => "DEAD",
        Health::Hot => "HOT",
        #[allow(unreachable_patterns)]
        _ => "?",
    }
}

pub fn kind(k: DeviceKind) -> &'static str {
    match k {
        DeviceKind::Cpu => "cpu",
        DeviceKind::CudaGpu => "gpu",
    }
}

pub fn link(state: &LinkState) -> String {
    match state {
        LinkState::Disabled => "not configured".into(),
        LinkState::Connecting => "connecting".into(),
        LinkState::Connected { for_s } => format!("connected for {}", duration(*for_s)),
        LinkState::Down { error, retry_in_s } => {
            format!("down ({error}), retrying in {retry_in_s} s")
        }
        #[allow(unreachable_patterns)]
        _ => "unknown".into(),
    }
}

fn temperature(dc: Option<i16>) -> String {
    dc.map_or_else(|| "-".into(), |t| format!("{:.1}C", f64::from(t) / 10.0))
}

pub fn status(s: &RigStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "rig       {}", s.name);
    let _ = writeln!(o, "key       {}", hex::encode(&s.key));
    let _ = writeln!(o, "firmware  {}, up {}", s.firmware, duration(s.uptime_s));
    if let Some(m) = &s.maintenance {
        let _ = writeln!(o, "MAINTENANCE MODE: {m}");
        let _ = writeln!(
            o,
            "          (fix rig.conf and reboot; devices do not work meanwhile)"
        );
    }
    let _ = writeln!(
        o,
        "manager   {}: {}",
        s.manager.addr.as_deref().unwrap_or("none"),
        link(&s.manager.state)
    );
    sheet(&mut o, s);
    match s.pools.iter().find(|p| p.active) {
        Some(p) => {
            let _ = writeln!(
                o,
                "pool      #{} {} ({}), {} accepted, {} rejected",
                p.number,
                p.url,
                link(&p.state),
                p.accepted,
                p.rejected
            );
        }
        None => {
            let _ = writeln!(o, "pool      none active ({} configured)", s.pools.len());
        }
    }
    let count = |r: Role| s.devices.iter().filter(|d| d.role == r).count();
    let hash: f64 = s.devices.iter().map(|d| d.hash_rate).sum();
    let hist: f64 = s.devices.iter().map(|d| d.histories_per_s).sum();
    let unwell = s.devices.iter().filter(|d| d.health != Health::Ok).count();
    let _ = writeln!(
        o,
        "devices   {}: {} mining at {}, {} transport at {}, {} off, {} not ok",
        s.devices.len(),
        count(Role::Mine),
        si_rate(hash, "H/s"),
        count(Role::Transport),
        si_rate(hist, "hist/s"),
        count(Role::Off),
        unwell
    );
    let _ = writeln!(
        o,
        "vault     {}/{} slots in use",
        s.vault.used, s.vault.slots
    );
    let failed = s.calibration_failures.total();
    if failed > 0 {
        let by: Vec<String> = s
            .calibration_failures
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "calibrate {failed} failed ({}); those figures stay 0",
            by.join(", ")
        );
    }
    let _ = write!(
        o,
        "earnings  mining {}, transport {}",
        sat(s.earnings.mining_msat),
        sat(s.earnings.transport_msat)
    );
    o
}

/// The flight sheet's lines of `status`: only on a farm rig, or one that holds a sheet.
fn sheet(o: &mut String, s: &RigStatus) {
    let v = &s.sheet;
    if !v.enrolled && v.applied.is_none() && v.refused.is_none() {
        return;
    }
    let _ = match &v.applied {
        Some(a) => writeln!(o, "sheet     {} v{} applied", a.farm, a.version),
        None => writeln!(o, "sheet     none applied (rig.conf alone)"),
    };
    if let Some(r) = &v.refused {
        let _ = writeln!(
            o,
            "          {} v{} REFUSED: {}",
            r.farm, r.version, r.reason
        );
    }
}

pub fn devices(s: &RigStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<3} {:<4} {:<16} {:<9} {:<9} {:<6} {:>12} {:>14} {:>6} {:>5} {:>4} {:>5}",
        "DEV",
        "KIND",
        "NAME",
        "ROLE",
        "PIN",
        "HEALTH",
        "HASH RATE",
        "HISTORIES",
        "TEMP",
        "POWER",
        "FAN",
        "SWTCH"
    );
    for d in &s.devices {
        let name: String = d.name.chars().take(16).collect();
        let _ = writeln!(
            o,
            "{:<3} {:<4} {:<16} {:<9} {:<9} {:<6} {:>12} {:>14} {:>6} {:>5} {:>4} {:>5}",
            d.index,
            kind(d.kind),
            name,
            role(d.role),
            role(d.pin),
            health(d.health),
            si_rate(d.hash_rate, "H/s"),
            si_rate(d.histories_per_s, "hist/s"),
            temperature(d.temperature_dc),
            d.power_w.map_or_else(|| "-".into(), |w| format!("{w}W")),
            d.fan_percent
                .map_or_else(|| "-".into(), |f| format!("{f}%")),
            d.switches
        );
    }
    if s.devices.is_empty() {
        let _ = writeln!(o, "(no devices)");
    }
    let _ = write!(
        o,
        "revenue now (msat/s, mine/transport): {}",
        s.devices
            .iter()
            .map(|d| format!(
                "{}: {:.3}/{:.3}",
                d.index, d.mining_msat_per_s, d.transport_msat_per_s
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    o
}

pub fn pools(s: &RigStatus) -> String {
    if s.pools.is_empty() {
        return "no pools configured (pool add URL USER [PASS])".into();
    }
    let mut o = String::new();
    for p in &s.pools {
        let _ = writeln!(
            o,
            "#{} {}{}",
            p.number,
            p.url,
            if p.active { "  [active]" } else { "" }
        );
        let _ = writeln!(o, "    user {}, {}", p.user, link(&p.state));
        let net = p
            .network_difficulty
            .map_or_else(|| "-".into(), |d| format!("{d:.0}"));
        let last = p
            .last_share_s
            .map_or_else(|| "never".into(), |s| format!("{s} s ago"));
        let _ = writeln!(
            o,
            "    shares {} accepted, {} rejected, {} stale; difficulty {} (network {net}); last share {last}",
            p.accepted, p.rejected, p.stale, p.difficulty
        );
    }
    o.truncate(o.trim_end().len());
    o
}

pub fn manager(s: &RigStatus) -> String {
    let m = &s.manager;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "address   {}",
        m.addr.as_deref().unwrap_or("none (mining only)")
    );
    let _ = writeln!(
        o,
        "key       {}",
        m.key
            .as_ref()
            .map_or_else(|| "-".into(), |k| hex::encode(k))
    );
    let _ = writeln!(o, "state     {}", link(&m.state));
    let _ = writeln!(
        o,
        "credit    {}",
        m.credit_msat.map_or_else(
            || "unknown until Welcome".into(),
            |c| format!("1 credit = {c} msat")
        )
    );
    let _ = write!(o, "delivered {} results", m.results_delivered);
    o
}

pub fn vault(s: &RigStatus) -> String {
    let v = &s.vault;
    format!(
        "slots     {} used of {}, {} bytes each\nsealed    {} results since start\nfull      {} times (transport paused until a slot freed)",
        v.used, v.slots, v.slot_bytes, v.sealed, v.full_events
    )
}
