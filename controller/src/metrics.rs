//! Prometheus metrics (`METRICS_LISTEN`, off by default): the rig's snapshot and the
//! operator surfaces' counters in the text exposition format 0.0.4.
//!
//! Per device: role (one series per role, 1 for the current one), pin, health, hash rate,
//! histories/s, temperature, power, fan, totals, switches and the revenue the scheduler last
//! computed; per pool: state and shares; the manager link, the vault, earnings, and one
//! counter per way a console, API or metrics request can fail. A value the device does not
//! report (temperature without NVML) is left out rather than shown as 0.
//!
//! HTTP is the least Prometheus needs: `GET /metrics` (HTTP/1.0 or 1.1), one request per
//! connection, a head of at most [`MAX_HEAD`] bytes within [`TIME_LIMIT`], [`CONNECTIONS`]
//! at once. Anything else gets 404, 405 or 400 and is counted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::hex;
use compushare_protocol::types::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::console::render;
use crate::ops::{bump, Door, OpsStats};
use crate::status::{Health, LinkState, RigStatus, StatusRx};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once.
pub const CONNECTIONS: usize = 4;
/// Longest one connection may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// A label value, escaped as the format requires (`\`, `"` and newline).
fn label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Writes families: HELP and TYPE once, then every sample of the family together.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                label(&mut self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value(&mut self.out, v);
        self.out.push('\n');
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::Ok => "ok",
        Health::Sick => "sick",
        Health::Dead => "dead",
        Health::Hot => "hot",
        #[allow(unreachable_patterns)]
        _ => "unknown",
    }
}

fn load(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64
}

/// The whole exposition for one snapshot and the surfaces' counters.
pub fn render(s: &RigStatus, ops: &OpsStats) -> String {
    let mut e = Exposition {
        out: String::with_capacity(8192),
    };
    let key = hex::encode(&s.key);
    e.family(
        "compushare_rig_info",
        "gauge",
        "The rig: name, firmware and identity key (always 1).",
    );
    e.sample(
        "compushare_rig_info",
        &[("name", &s.name), ("firmware", &s.firmware), ("key", &key)],
        1.0,
    );
    e.single(
        "compushare_uptime_seconds",
        "gauge",
        "Seconds since the controller started.",
        s.uptime_s as f64,
    );
    e.single(
        "compushare_maintenance",
        "gauge",
        "1 when the rig is in maintenance mode (bad rig.conf: devices do not work).",
        f64::from(u8::from(s.maintenance.is_some())),
    );

    let devs: Vec<(String, &crate::status::DeviceView)> =
        s.devices.iter().map(|d| (d.index.to_string(), d)).collect();
    e.family(
        "compushare_device_info",
        "gauge",
        "Each device: kind, name and the operator's pin (always 1).",
    );
    for (i, d) in &devs {
        e.sample(
            "compushare_device_info",
            &[
                ("device", i),
                ("kind", render::kind(d.kind)),
                ("name", &d.name),
                ("pin", render::role(d.pin)),
            ],
            1.0,
        );
    }
    e.family(
        "compushare_device_role",
        "gauge",
        "What each device does now: 1 for its current role, 0 for the others.",
    );
    for (i, d) in &devs {
        for r in [Role::Mine, Role::Transport, Role::Off] {
            e.sample(
                "compushare_device_role",
                &[("device", i), ("role", render::role(r))],
                f64::from(u8::from(d.role == r)),
            );
        }
    }
    e.family(
        "compushare_device_health",
        "gauge",
        "Watchdog state of each device: 1 for its current state, 0 for the others.",
    );
    for (i, d) in &devs {
        for h in [Health::Ok, Health::Sick, Health::Dead, Health::Hot] {
            e.sample(
                "compushare_device_health",
                &[("device", i), ("state", health_name(h))],
                f64::from(u8::from(d.health == h)),
            );
        }
    }
    type Gauge = fn(&crate::status::DeviceView) -> Option<f64>;
    let gauges: [(&str, &str, Gauge); 8] = [
        (
            "compushare_device_hash_rate_hashes_per_second",
            "SHA-256d hash rate over the last few seconds.",
            |d| Some(d.hash_rate),
        ),
        (
            "compushare_device_histories_per_second",
            "Photon-transport histories per second over the last few seconds.",
            |d| Some(d.histories_per_s),
        ),
        (
            "compushare_device_temperature_celsius",
            "Device temperature (only devices that report it).",
            |d| d.temperature_dc.map(|t| f64::from(t) / 10.0),
        ),
        (
            "compushare_device_power_watts",
            "Device power draw (only devices that report it).",
            |d| d.power_w.map(f64::from),
        ),
        (
            "compushare_device_fan_percent",
            "Device fan speed (only devices that report it).",
            |d| d.fan_percent.map(f64::from),
        ),
        (
            "compushare_device_mining_revenue_msat_per_second",
            "Mining revenue the scheduler last computed for the device.",
            |d| Some(d.mining_msat_per_s),
        ),
        (
            "compushare_device_transport_revenue_msat_per_second",
            "Transport revenue the scheduler last computed for the device.",
            |d| Some(d.transport_msat_per_s),
        ),
        (
            "compushare_device_idle_seconds",
            "Seconds since the device last made progress.",
            |d| Some(d.idle_s as f64),
        ),
    ];
    for (name, help, get) in gauges {
        e.family(name, "gauge", help);
        for (i, d) in &devs {
            if let Some(v) = get(d) {
                e.sample(name, &[("device", i)], v);
            }
        }
    }
    type Counter = fn(&crate::status::DeviceView) -> u64;
    let counters: [(&str, &str, Counter); 5] = [
        (
            "compushare_device_hashes_total",
            "Hashes computed since start.",
            |d| d.hashes,
        ),
        (
            "compushare_device_histories_total",
            "Photon histories simulated since start.",
            |d| d.histories,
        ),
        (
            "compushare_device_hardware_errors_total",
            "Results the device computed wrong (failed the CPU recheck).",
            |d| d.hw_errors,
        ),
        (
            "compushare_device_switches_total",
            "Role switches since start.",
            |d| d.switches,
        ),
        (
            "compushare_device_shares_accepted_total",
            "Shares found by the device and accepted by the pool.",
            |d| d.shares_accepted,
        ),
    ];
    for (name, help, get) in counters {
        e.family(name, "counter", help);
        for (i, d) in &devs {
            e.sample(name, &[("device", i)], get(d) as f64);
        }
    }
    e.family(
        "compushare_device_shares_rejected_total",
        "counter",
        "Shares found by the device and rejected by the pool.",
    );
    for (i, d) in &devs {
        e.sample(
            "compushare_device_shares_rejected_total",
            &[("device", i)],
            d.shares_rejected as f64,
        );
    }

    let pools: Vec<(String, &crate::status::PoolView)> =
        s.pools.iter().map(|p| (p.number.to_string(), p)).collect();
    e.family(
        "compushare_pool_up",
        "gauge",
        "1 when the pool session is connected.",
    );
    for (n, p) in &pools {
        let up = matches!(p.state, LinkState::Connected { .. });
        e.sample(
            "compushare_pool_up",
            &[("pool", n), ("url", &p.url), ("user", &p.user)],
            f64::from(u8::from(up)),
        );
    }
    e.family(
        "compushare_pool_active",
        "gauge",
        "1 for the pool work comes from now.",
    );
    for (n, p) in &pools {
        e.sample(
            "compushare_pool_active",
            &[("pool", n)],
            f64::from(u8::from(p.active)),
        );
    }
    e.family(
        "compushare_pool_shares_total",
        "counter",
        "Shares submitted to the pool, by result.",
    );
    for (n, p) in &pools {
        for (result, v) in [
            ("accepted", p.accepted),
            ("rejected", p.rejected),
            ("stale", p.stale),
        ] {
            e.sample(
                "compushare_pool_shares_total",
                &[("pool", n), ("result", result)],
                v as f64,
            );
        }
    }
    e.family(
        "compushare_pool_difficulty",
        "gauge",
        "Share difficulty in force at the pool.",
    );
    for (n, p) in &pools {
        e.sample("compushare_pool_difficulty", &[("pool", n)], p.difficulty);
    }

    e.single(
        "compushare_manager_connected",
        "gauge",
        "1 when the session with the management node is up.",
        f64::from(u8::from(matches!(
            s.manager.state,
            LinkState::Connected { .. }
        ))),
    );
    e.single(
        "compushare_manager_results_delivered_total",
        "counter",
        "Transport results delivered to the manager since start.",
        s.manager.results_delivered as f64,
    );
    e.single(
        "compushare_vault_slots",
        "gauge",
        "Slots of the sealed result vault.",
        f64::from(s.vault.slots),
    );
    e.single(
        "compushare_vault_slots_used",
        "gauge",
        "Vault slots holding a result not yet acknowledged.",
        f64::from(s.vault.used),
    );
    e.single(
        "compushare_vault_sealed_total",
        "counter",
        "Results sealed since start.",
        s.vault.sealed as f64,
    );
    e.single(
        "compushare_vault_full_total",
        "counter",
        "Seals refused because the vault was full.",
        s.vault.full_events as f64,
    );
    e.family(
        "compushare_earnings_msat_total",
        "counter",
        "Earnings since start in millisatoshi, by source.",
    );
    e.sample(
        "compushare_earnings_msat_total",
        &[("source", "mining")],
        s.earnings.mining_msat,
    );
    e.sample(
        "compushare_earnings_msat_total",
        &[("source", "transport")],
        s.earnings.transport_msat,
    );

    e.family(
        "compushare_rig_sheet_version",
        "gauge",
        "Version of the farm's flight sheet in force (no sample when none).",
    );
    if let Some(a) = &s.sheet.applied {
        e.sample(
            "compushare_rig_sheet_version",
            &[("farm", &a.farm)],
            a.version as f64,
        );
    }
    e.family(
        "compushare_rig_sheet_refused_version",
        "gauge",
        "Version of the newest flight sheet refused since the one in force, with why (no sample when none).",
    );
    if let Some(r) = &s.sheet.refused {
        e.sample(
            "compushare_rig_sheet_refused_version",
            &[("farm", &r.farm), ("reason", &r.reason)],
            r.version as f64,
        );
    }
    e.single(
        "compushare_rig_sheet_refused_total",
        "counter",
        "Flight sheets refused since start (the rig kept the previous one).",
        s.sheet.refusals as f64,
    );
    e.family(
        "compushare_calibration_failures_total",
        "counter",
        "Device calibrations that failed since start (their figures stayed 0), by device error.",
    );
    for (kind, n) in s.calibration_failures.iter() {
        e.sample(
            "compushare_calibration_failures_total",
            &[("error", kind)],
            n as f64,
        );
    }
    e.family(
        "compushare_ops_connections_total",
        "counter",
        "Connections to the operator surfaces, by door and outcome.",
    );
    for (door, d) in [
        ("console", &ops.console),
        ("api", &ops.api),
        ("metrics", &ops.metrics),
    ] {
        for (outcome, c) in [
            ("accepted", &d.accepted),
            ("busy", &d.busy),
            ("timed_out", &d.timed_out),
            ("accept_error", &d.accept_errors),
            ("bind_error", &d.bind_errors),
        ] {
            e.sample(
                "compushare_ops_connections_total",
                &[("door", door), ("outcome", outcome)],
                load(c),
            );
        }
    }
    e.family(
        "compushare_console_lines_total",
        "counter",
        "Console lines answered (every door), by result.",
    );
    e.sample(
        "compushare_console_lines_total",
        &[("result", "ok")],
        load(&ops.console_ok),
    );
    e.sample(
        "compushare_console_lines_total",
        &[("result", "error")],
        load(&ops.console_err),
    );
    e.single(
        "compushare_console_sessions_total",
        "counter",
        "Network console sessions welcomed.",
        load(&ops.console_sessions),
    );
    e.family(
        "compushare_console_refused_total",
        "counter",
        "Network console sessions refused or ended, by reason.",
    );
    for (reason, c) in [
        ("key_not_allowed", &ops.console_refused_key),
        ("version", &ops.console_refused_version),
        ("protocol", &ops.console_protocol_errors),
        ("handshake", &ops.console_handshake_errors),
        ("authentication", &ops.console_auth_errors),
        ("idle", &ops.console_idle),
        ("key_removed", &ops.console_key_removed),
    ] {
        e.sample(
            "compushare_console_refused_total",
            &[("reason", reason)],
            load(c),
        );
    }
    e.family(
        "compushare_serial_errors_total",
        "counter",
        "Serial console port failures, by kind.",
    );
    for (kind, c) in [
        ("open", &ops.serial_open_errors),
        ("io", &ops.serial_io_errors),
        ("hangup", &ops.serial_hangups),
    ] {
        e.sample("compushare_serial_errors_total", &[("kind", kind)], load(c));
    }
    e.family(
        "compushare_api_requests_total",
        "counter",
        "cgminer API requests, by outcome.",
    );
    for (outcome, c) in [
        ("answered", &ops.api_requests),
        ("bad_request", &ops.api_bad_requests),
        ("denied", &ops.api_denied),
        ("unknown_command", &ops.api_unknown),
    ] {
        e.sample(
            "compushare_api_requests_total",
            &[("outcome", outcome)],
            load(c),
        );
    }
    e.family(
        "compushare_metrics_requests_total",
        "counter",
        "Metrics requests, by outcome.",
    );
    e.sample(
        "compushare_metrics_requests_total",
        &[("outcome", "scraped")],
        load(&ops.metrics_scrapes),
    );
    e.sample(
        "compushare_metrics_requests_total",
        &[("outcome", "bad_request")],
        load(&ops.metrics_bad_requests),
    );
    e.out
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(head.get(..line_end).unwrap_or_default()) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics { head_only: false },
        ("HEAD", "/metrics") => Route::Metrics { head_only: true },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// The metrics door: its limits and counters.
pub(crate) const DOOR: Door = Door {
    name: "metrics",
    connections: CONNECTIONS,
    time: TIME_LIMIT,
    counts: |s| &s.metrics,
};

/// Serves one connection: one request, one reply, then close.
pub(crate) async fn connection(mut stream: TcpStream, status: StatusRx, stats: Arc<OpsStats>) {
    let mut head = vec![0u8; MAX_HEAD];
    let mut len = 0usize;
    // Read until the blank line that ends the head (or the head is too big).
    let complete = loop {
        let Some(room) = head.get_mut(len..) else {
            break false;
        };
        if room.is_empty() {
            break false;
        }
        match stream.read(room).await {
            Ok(0) | Err(_) => break false,
            Ok(n) => len += n,
        }
        let got = head.get(..len).unwrap_or_default();
        if got.windows(4).any(|w| w == b"\r\n\r\n") || got.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
    };
    let r = if complete {
        route(head.get(..len).unwrap_or_default())
    } else {
        Route::BadRequest
    };
    let (code, body, head_only) = match r {
        Route::Metrics { head_only } => {
            bump(&stats.metrics_scrapes);
            let snapshot = status.borrow().clone();
            ("200 OK", render(&snapshot, &stats), head_only)
        }
        Route::NotFound => ("404 Not Found", "metrics are at /metrics\n".into(), false),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "use GET\n".into(), false),
        Route::BadRequest => ("400 Bad Request", "bad request\n".into(), false),
    };
    if !matches!(r, Route::Metrics { .. }) {
        bump(&stats.metrics_bad_requests);
    }
    let mut reply = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        reply.push_str(&body);
    }
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
    }
}
