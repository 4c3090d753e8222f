//! The keys of rig.conf that PID 1 needs before the controller runs: how to bring the
//! network up, where time comes from, and where the controller's API and serial console are.
//!
//! The controller validates the whole file (unknown keys, every value) and owns the errors an
//! operator sees for it. The init reads leniently: lines it cannot use are skipped and
//! reported as [`Problem`]s (named by line and key), never fatal: a rig with a typo in
//! rig.conf must still come up on DHCP so that its console and API are reachable.
//!
//! Keys read here (all optional; the defaults give DHCP on the first wired interface):
//! - `NET_INTERFACE`: the interface to configure (default: the first with a carrier).
//! - `NET_ADDRESS`: `dhcp` (default) or a static `a.b.c.d/prefix`.
//! - `NET_GATEWAY`: static default gateway (with a static `NET_ADDRESS`).
//! - `NET_DNS`: name servers, comma separated (static, or instead of DHCP's).
//! - `NTP_SERVERS`: `host[:port]` list, comma separated (default: DHCP's option 42, then
//!   the default gateway, then pool.ntp.org).
//! - `RIG_NAME` (host name), `API_LISTEN` (status source) and `SERIAL_CONSOLE`: read as the
//!   controller reads them.

use std::net::{Ipv4Addr, SocketAddr};

/// Largest rig.conf read (as the controller's limit).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most name or time servers kept from one key.
pub const MAX_SERVERS: usize = 8;

/// How the interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// DHCP (RFC 2131), the default.
    Dhcp,
    /// A fixed address and prefix length.
    Static { addr: Ipv4Addr, prefix: u8 },
}

/// What the init takes from rig.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct InitConf {
    pub interface: Option<String>,
    pub addressing: Addressing,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<String>,
    pub rig_name: Option<String>,
    pub api_listen: SocketAddr,
    pub serial_console: Option<String>,
}

impl Default for InitConf {
    fn default() -> Self {
        InitConf {
            interface: None,
            addressing: Addressing::Dhcp,
            gateway: None,
            dns: Vec::new(),
            ntp: Vec::new(),
            rig_name: None,
            api_listen: SocketAddr::from(([127, 0, 0, 1], 4028)),
            serial_console: None,
        }
    }
}

/// A line the init could not use (the controller reports its own view of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    pub key: String,
    /// What the value should look like.
    pub expected: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rig.conf:{}: {}: expected {}",
            self.line, self.key, self.expected
        )
    }
}

/// Reads the init's keys from rig.conf bytes. Any bytes give a result, never a panic.
pub fn parse(bytes: &[u8]) -> (InitConf, Vec<Problem>) {
    let mut conf = InitConf::default();
    let mut problems = Vec::new();
    let bytes = &bytes[..bytes.len().min(MAX_FILE_BYTES)];
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            continue;
        };
        let text = text.trim();
        if text.starts_with('#') {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let mut bad = |expected| {
            problems.push(Problem {
                line: i + 1,
                key: key.to_owned(),
                expected,
            })
        };
        match key {
            "NET_INTERFACE" => match valid_ifname(value) {
                true => conf.interface = Some(value.to_owned()),
                false => bad("an interface name such as eth0 (at most 15 bytes)"),
            },
            "NET_ADDRESS" => match addressing(value) {
                Some(a) => conf.addressing = a,
                None => bad("dhcp, or a static address such as 192.168.1.20/24"),
            },
            "NET_GATEWAY" => match value.parse::<Ipv4Addr>() {
                Ok(g) => conf.gateway = Some(g),
                Err(_) => bad("an IPv4 address"),
            },
            "NET_DNS" => match list(value, |s| s.parse::<Ipv4Addr>().ok()) {
                Some(v) => conf.dns = v,
                None => bad("IPv4 addresses, comma separated"),
            },
            "NTP_SERVERS" => match list(value, |s| valid_server(s).then(|| s.to_owned())) {
                Some(v) => conf.ntp = v,
                None => bad("host or host:port, comma separated"),
            },
            "RIG_NAME" if !value.is_empty() => conf.rig_name = Some(value.to_owned()),
            "API_LISTEN" => match value.parse::<SocketAddr>() {
                Ok(a) => conf.api_listen = a,
                Err(_) => bad("ip:port"),
            },
            "SERIAL_CONSOLE" if value.starts_with('/') => {
                conf.serial_console = Some(value.to_owned())
            }
            _ => {}
        }
    }
    (conf, problems)
}

fn addressing(v: &str) -> Option<Addressing> {
    if v.eq_ignore_ascii_case("dhcp") {
        return Some(Addressing::Dhcp);
    }
    let (addr, prefix) = v.split_once('/')?;
    let addr = addr.parse::<Ipv4Addr>().ok()?;
    let prefix = prefix.parse::<u8>().ok().filter(|p| (1..=32).contains(p))?;
    (!addr.is_unspecified() && !addr.is_broadcast()).then_some(Addressing::Static { addr, prefix })
}

/// Up to [`MAX_SERVERS`] non-empty comma-separated items, each accepted by `item`.
fn list<T>(v: &str, item: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let out: Option<Vec<T>> = v.split(',').map(|s| item(s.trim())).collect();
    out.filter(|o| !o.is_empty() && o.len() <= MAX_SERVERS)
}

fn valid_ifname(v: &str) -> bool {
    !v.is_empty()
        && v.len() < 16
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `host` or `host:port` (a name, an IPv4 address, or `[v6]:port`).
fn valid_server(v: &str) -> bool {
    let host = match v.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            if !p.parse::<u16>().is_ok_and(|p| p != 0) {
                return false;
            }
            h
        }
        _ => v,
    };
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_dhcp() {
        let (c, p) = parse(b"MANAGER=m:7733\n# NET_ADDRESS=10.0.0.2/24\n");
        assert_eq!(c, InitConf::default());
        assert!(p.is_empty());
    }

    #[test]
    fn reads_static_settings() {
        let text = "\u{feff}NET_INTERFACE = enp3s0\r\nNET_ADDRESS=192.168.1.20/24\nNET_GATEWAY=192.168.1.1\nNET_DNS=1.1.1.1, 9.9.9.9\nNTP_SERVERS=ntp.lan,192.168.1.1:1123\nRIG_NAME=r7\nAPI_LISTEN=0.0.0.0:4028\nSERIAL_CONSOLE=/dev/ttyS1\n";
        let (c, p) = parse(text.as_bytes());
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.interface.as_deref(), Some("enp3s0"));
        assert_eq!(
            c.addressing,
            Addressing::Static {
                addr: Ipv4Addr::new(192, 168, 1, 20),
                prefix: 24
            }
        );
        assert_eq!(c.gateway, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(
            c.dns,
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)]
        );
        assert_eq!(
            c.ntp,
            vec!["ntp.lan".to_owned(), "192.168.1.1:1123".to_owned()]
        );
        assert_eq!(c.rig_name.as_deref(), Some("r7"));
        assert_eq!(c.api_listen, "0.0.0.0:4028".parse().unwrap());
        assert_eq!(c.serial_console.as_deref(), Some("/dev/ttyS1"));
    }

    #[test]
    fn bad_values_are_named_and_skipped() {
        let (c, p) =
            parse(b"NET_ADDRESS=10.0.0.300/24\nNET_DNS=\nNTP_SERVERS=a:0\nNET_INTERFACE=a b\n");
        assert_eq!(c.addressing, Addressing::Dhcp);
        let lines: Vec<_> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                (1, "NET_ADDRESS"),
                (2, "NET_DNS"),
                (3, "NTP_SERVERS"),
                (4, "NET_INTERFACE")
            ]
        );
        assert_eq!(
            p[0].to_string(),
            "rig.conf:1: NET_ADDRESS: expected dhcp, or a static address such as 192.168.1.20/24"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_key_value_lines_parse_without_panic(
            key in "(NET_INTERFACE|NET_ADDRESS|NET_GATEWAY|NET_DNS|NTP_SERVERS|API_LISTEN)",
            value in "[ -~]{0,40}",
        ) {
            let _ = parse(format!("{key}={value}\n").as_bytes());
        }
    }
}
