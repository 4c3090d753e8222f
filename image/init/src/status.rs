//! The live status line: what the init knows (uptime, network, clock, the controller
//! process) plus what the controller publishes on its cgminer-compatible API.
//!
//! The API (API_LISTEN, default 127.0.0.1:4028) is read with cgminer's own request form,
//! `{"command":"summary+pools"}`, so the line shows the same figures a farm dashboard does.
//! A controller without the API (or before it listens) leaves those fields out.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Largest API answer read.
pub const MAX_ANSWER: u64 = 64 * 1024;
/// Connect and read limits for one poll (the API is on this machine).
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Mining figures from the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mining {
    pub mhs: f64,
    pub accepted: u64,
    pub rejected: u64,
    /// Pools whose status is "Alive" / all pools.
    pub pools_alive: usize,
    pub pools: usize,
    /// The rig's own summary fields: the manager session in one word (Connected,
    /// Connecting, Down, Disabled) and why the rig is in maintenance mode (empty: it is not).
    pub manager: Option<String>,
    pub maintenance: Option<String>,
}

/// Asks the API at `addr` for summary and pools; `None` if it does not answer usably.
pub fn poll(addr: SocketAddr) -> Option<Mining> {
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    s.set_write_timeout(Some(TIMEOUT)).ok()?;
    s.write_all(br#"{"command":"summary+pools"}"#).ok()?;
    let mut buf = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut buf).ok()?;
    parse(&buf)
}

/// Reads cgminer's answer (one command's object, or `+`-joined commands each under its
/// name; a trailing NUL is allowed).
pub fn parse(bytes: &[u8]) -> Option<Mining> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let v: Value = serde_json::from_slice(&bytes[..end]).ok()?;
    let summary = find(&v, "SUMMARY")?.get(0)?;
    let num = |o: &Value, k: &str| o.get(k).and_then(Value::as_f64);
    let mut m = Mining {
        mhs: num(summary, "MHS 5s")
            .or_else(|| num(summary, "MHS av"))
            .unwrap_or(0.0),
        accepted: num(summary, "Accepted").unwrap_or(0.0) as u64,
        rejected: num(summary, "Rejected").unwrap_or(0.0) as u64,
        ..Mining::default()
    };
    let text = |k: &str| summary.get(k).and_then(Value::as_str).map(str::to_owned);
    m.manager = text("Manager Status").filter(|s| !s.is_empty());
    m.maintenance = text("Maintenance").filter(|s| !s.is_empty());
    if let Some(pools) = find(&v, "POOLS").and_then(Value::as_array) {
        m.pools = pools.len();
        m.pools_alive = pools
            .iter()
            .filter(|p| p.get("Status").and_then(Value::as_str) == Some("Alive"))
            .count();
    }
    Some(m)
}

/// The array under `key` at the top level or one level into a joined answer.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(key) {
        return Some(x);
    }
    v.as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .find_map(|inner| inner.get(key))
}

/// A hash rate in the largest unit that keeps it above 1.
pub fn rate(mhs: f64) -> String {
    let hs = mhs * 1e6;
    for (unit, scale) in [("TH/s", 1e12), ("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)] {
        if hs >= scale {
            return format!("{:.2} {unit}", hs / scale);
        }
    }
    format!("{hs:.0} H/s")
}

/// `h:mm:ss`.
pub fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_joined_and_single_answers() {
        let joined = br#"{"summary":[{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS 5s":1.5,"MHS av":1.2,"Accepted":7,"Rejected":1,"Maintenance":"","Manager Status":"Connected"}],"id":1}],"pools":[{"STATUS":[{"STATUS":"S"}],"POOLS":[{"POOL":0,"Status":"Alive"},{"POOL":1,"Status":"Dead"}],"id":1}],"id":1}"#;
        let mut with_nul = joined.to_vec();
        with_nul.push(0);
        let m = parse(&with_nul).unwrap();
        assert_eq!(
            m,
            Mining {
                mhs: 1.5,
                accepted: 7,
                rejected: 1,
                pools_alive: 1,
                pools: 2,
                manager: Some("Connected".into()),
                maintenance: None
            }
        );
        let single = br#"{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS av":0.25,"Accepted":0,"Rejected":0}],"id":1}"#;
        assert_eq!(parse(single).unwrap().mhs, 0.25);
        assert_eq!(parse(b"not json"), None);
        assert_eq!(parse(b"{}"), None);
    }

    #[test]
    fn units() {
        assert_eq!(rate(1.5), "1.50 MH/s");
        assert_eq!(rate(0.0123), "12.30 kH/s");
        assert_eq!(rate(2500.0), "2.50 GH/s");
        assert_eq!(rate(0.0), "0 H/s");
        assert_eq!(hms(Duration::from_secs(3725)), "1:02:05");
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_handled(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&b);
        }
    }
}
