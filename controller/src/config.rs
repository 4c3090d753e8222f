//! rig.conf: the operator-editable `KEY=VALUE` file on the USB stick (CONTRACT.md).
//!
//! Owns parsing and validation of every key, including keys whose features arrive later
//! (pools, vault, console, API): a typo is caught when the rig boots, not when the feature
//! first reads it. Every error names the file, the line and the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use compushare_protocol::hex;
use compushare_protocol::types::{PublicKey, Role};

/// Largest rig.conf accepted: a FAT partition can hold anything, the parser need not.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest line accepted.
pub const MAX_LINE_BYTES: usize = 4096;
/// Highest pool number (`POOL1` .. `POOL16`).
pub const MAX_POOLS: u32 = 16;
/// Most CPU worker devices (the protocol's device limit).
pub const MAX_CPU_DEVICES: u32 = 32;
/// Default cgminer-compatible API address.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:4028";
/// Default margin by which another role must be more profitable before a device switches.
pub const DEFAULT_SWITCH_MARGIN: f64 = 0.05;

/// One mining pool of rig.conf (`POOLn`, `POOLn_USER`, `POOLn_PASS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The `n` of `POOLn`; pools are tried in increasing order.
    pub number: u32,
    pub url: String,
    pub user: String,
    pub pass: String,
}

/// Device roles: one for all devices, or one per device in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roles {
    /// The same role for every device (`ROLES=auto` is the default).
    All(Role),
    /// One role per device, comma separated in the file.
    PerDevice(Vec<Role>),
}

impl Roles {
    /// The role of device `index`; devices beyond a per-device list are `Auto`.
    pub fn of(&self, index: usize) -> Role {
        match self {
            Roles::All(r) => *r,
            Roles::PerDevice(v) => v.get(index).copied().unwrap_or(Role::Auto),
        }
    }
}

/// A parsed, validated rig.conf. Keys the file does not set are `None` or their default.
#[derive(Debug, Clone, PartialEq)]
pub struct RigConfig {
    /// The file it came from (for errors about missing keys).
    pub path: PathBuf,
    /// `MANAGER`: management node, `host:port`.
    pub manager: Option<String>,
    /// `MANAGER_KEY`: the management node's pinned static key.
    pub manager_key: Option<PublicKey>,
    /// `RIG_NAME`.
    pub rig_name: Option<String>,
    /// `PAYOUT`: worker account key (64 hex digits) or payout address.
    pub payout: Option<String>,
    /// `POOLn` with their users and passwords, sorted by `n`.
    pub pools: Vec<PoolConfig>,
    /// `ROLES` (default `auto`).
    pub roles: Roles,
    /// `CPU_DEVICES` (default 1; 0 on GPU rigs).
    pub cpu_devices: u32,
    /// `VAULT_SLOTS`.
    pub vault_slots: Option<u32>,
    /// `VAULT_SLOT_BYTES`.
    pub vault_slot_bytes: Option<u64>,
    /// `SERIAL_CONSOLE`: tty path.
    pub serial_console: Option<PathBuf>,
    /// `CONSOLE_LISTEN`: network console address.
    pub console_listen: Option<SocketAddr>,
    /// `CONSOLE_KEYS`: operator public keys.
    pub console_keys: Vec<PublicKey>,
    /// `API_LISTEN` (default 127.0.0.1:4028).
    pub api_listen: SocketAddr,
    /// `METRICS_LISTEN`: Prometheus text metrics (off when unset).
    pub metrics_listen: Option<SocketAddr>,
    /// `STATE_DIR`.
    pub state_dir: Option<PathBuf>,
    /// `SWITCH_MARGIN` (default 0.05), a fraction in [0, 1].
    pub switch_margin: f64,
}

/// What is wrong with one line (or one key) of rig.conf.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line is longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// The line is neither a comment, blank, nor `KEY=VALUE`.
    NoEquals,
    /// The key is not one CONTRACT.md defines.
    UnknownKey,
    /// The key was already set on an earlier line.
    Duplicate { first_line: usize },
    /// The key needs a value.
    Empty,
    /// The value does not have the key's form.
    Invalid { expected: &'static str },
    /// `POOLn_USER` or `POOLn_PASS` without its `POOLn`.
    PoolWithoutUrl,
    /// A required key is absent (line 0: not in the file).
    Missing,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotUtf8 => write!(f, "line is not valid UTF-8"),
            Problem::LineTooLong => write!(f, "line longer than {MAX_LINE_BYTES} bytes"),
            Problem::NoEquals => write!(f, "expected KEY=VALUE or a # comment"),
            Problem::UnknownKey => write!(f, "unknown key"),
            Problem::Duplicate { first_line } => {
                write!(f, "key set twice (first on line {first_line})")
            }
            Problem::Empty => write!(f, "empty value"),
            Problem::Invalid { expected } => write!(f, "expected {expected}"),
            Problem::PoolWithoutUrl => write!(f, "pool user/password without its POOLn URL"),
            Problem::Missing => write!(f, "required key is not set"),
        }
    }
}

/// Why rig.conf could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: file of {len} bytes is larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    /// A line or key is wrong; `line` is 1-based (0 for a required key that is absent).
    #[error("{}", line_message(path, *line, key, problem, value.as_deref()))]
    Line {
        path: PathBuf,
        line: usize,
        /// The key concerned (empty where the line has none).
        key: String,
        problem: Problem,
        /// The offending value, cut to 80 characters.
        value: Option<String>,
    },
}

/// `rig.conf:12: MANAGER_KEY: expected ..., got "xyz"` (the key left out when the line has
/// none).
fn line_message(
    path: &Path,
    line: usize,
    key: &str,
    problem: &Problem,
    value: Option<&str>,
) -> String {
    let key = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    let got = value.map(|v| format!(", got {v:?}")).unwrap_or_default();
    format!("{}:{line}: {key}{problem}{got}", path.display())
}

impl ConfigError {
    /// The line concerned, when the error is about one (0: a required key is absent).
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The key concerned, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Line { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The problem, when the error is about a line or key.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::Line { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

impl RigConfig {
    /// Reads and parses the rig.conf at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Self::parse(path, &bytes)
    }

    /// Parses rig.conf bytes; `path` only names the file in errors. Any bytes give a config
    /// or an error, never a panic.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len: bytes.len() as u64,
            });
        }
        let mut p = Parser {
            path,
            cfg: RigConfig::defaults(path),
            seen: Vec::new(),
            pool_parts: Vec::new(),
        };
        // Editors on FAT partitions write BOMs and CRLF: both are harmless, so accept them.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            p.line(i + 1, raw)?;
        }
        p.finish()
    }

    fn defaults(path: &Path) -> Self {
        RigConfig {
            path: path.to_owned(),
            manager: None,
            manager_key: None,
            rig_name: None,
            payout: None,
            pools: Vec::new(),
            roles: Roles::All(Role::Auto),
            cpu_devices: 1,
            vault_slots: None,
            vault_slot_bytes: None,
            serial_console: None,
            console_listen: None,
            console_keys: Vec::new(),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 4028)),
            metrics_listen: None,
            state_dir: None,
            switch_margin: DEFAULT_SWITCH_MARGIN,
        }
    }

    /// The error for a required key that the file does not set.
    pub fn missing(&self, key: &str) -> ConfigError {
        ConfigError::Line {
            path: self.path.clone(),
            line: 0,
            key: key.to_owned(),
            problem: Problem::Missing,
            value: None,
        }
    }

    /// `PAYOUT` as a worker account key (what the transport client announces), or an error
    /// naming the key when it is absent or is not 64 hex digits.
    pub fn payout_key(&self) -> Result<PublicKey, ConfigError> {
        let v = self
            .payout
            .as_deref()
            .ok_or_else(|| self.missing("PAYOUT"))?;
        hex::decode_array::<32>(v).map_err(|_| ConfigError::Line {
            path: self.path.clone(),
            line: 0,
            key: "PAYOUT".into(),
            problem: Problem::Invalid {
                expected: "a worker account key (64 hex digits) for the transport client",
            },
            value: Some(cut(v)),
        })
    }
}

struct Parser<'a> {
    path: &'a Path,
    cfg: RigConfig,
    /// Keys set so far with their lines.
    seen: Vec<(String, usize)>,
    /// `(pool number, part, line, value)` for POOLn / POOLn_USER / POOLn_PASS.
    pool_parts: Vec<(u32, PoolPart, usize, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolPart {
    Url,
    User,
    Pass,
}

fn cut(v: &str) -> String {
    v.chars().take(80).collect()
}

impl Parser<'_> {
    fn err(&self, line: usize, key: &str, problem: Problem, value: Option<&str>) -> ConfigError {
        ConfigError::Line {
            path: self.path.to_owned(),
            line,
            key: key.to_owned(),
            problem,
            value: value.map(cut),
        }
    }

    fn line(&mut self, n: usize, raw: &[u8]) -> Result<(), ConfigError> {
        if raw.len() > MAX_LINE_BYTES {
            return Err(self.err(n, "", Problem::LineTooLong, None));
        }
        let text = std::str::from_utf8(raw).map_err(|_| self.err(n, "", Problem::NotUtf8, None))?;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(());
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(self.err(n, "", Problem::NoEquals, Some(text)));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(&(_, first_line)) = self.seen.iter().find(|(k, _)| k == key) {
            return Err(self.err(n, key, Problem::Duplicate { first_line }, None));
        }
        self.set(n, key, value)?;
        self.seen.push((key.to_owned(), n));
        Ok(())
    }

    fn set(&mut self, n: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid =
            |p: &Self, expected| p.err(n, key, Problem::Invalid { expected }, Some(value));
        if let Some((number, part)) = pool_key(key) {
            if number == 0 || number > MAX_POOLS {
                return Err(self.err(n, key, Problem::UnknownKey, None));
            }
            if value.is_empty() && part != PoolPart::Pass {
                return Err(self.err(n, key, Problem::Empty, None));
            }
            if part == PoolPart::Url && !valid_pool_url(value) {
                return Err(invalid(self, "a pool URL such as stratum+tcp://host:port"));
            }
            self.pool_parts.push((number, part, n, value.to_owned()));
            return Ok(());
        }
        if !KEYS.contains(&key) {
            return Err(self.err(n, key, Problem::UnknownKey, None));
        }
        if value.is_empty() {
            return Err(self.err(n, key, Problem::Empty, None));
        }
        match key {
            "MANAGER" => {
                if !valid_host_port(value) {
                    return Err(invalid(self, "host:port"));
                }
                self.cfg.manager = Some(value.to_owned());
            }
            "MANAGER_KEY" => {
                let k = hex::decode_array::<32>(value)
                    .map_err(|_| invalid(self, "the manager's public key, 64 hex digits"))?;
                self.cfg.manager_key = Some(k);
            }
            "RIG_NAME" => {
                if value.len() > compushare_protocol::limits::NAME_LEN || value.contains('\0') {
                    return Err(invalid(self, "a name of at most 48 bytes"));
                }
                self.cfg.rig_name = Some(value.to_owned());
            }
            "PAYOUT" => {
                if value.len() > 128 || value.chars().any(char::is_whitespace) {
                    return Err(invalid(self, "a worker account key or payout address"));
                }
                self.cfg.payout = Some(value.to_owned());
            }
            "ROLES" => {
                let roles: Option<Vec<Role>> = value.split(',').map(|r| role(r.trim())).collect();
                let roles = match roles {
                    Some(r) if !r.is_empty() && r.len() <= MAX_CPU_DEVICES as usize => r,
                    _ => {
                        return Err(invalid(
                            self,
                            "auto, or auto/mine/transport/off per device, comma separated",
                        ))
                    }
                };
                self.cfg.roles = match roles.as_slice() {
                    [one] => Roles::All(*one),
                    _ => Roles::PerDevice(roles),
                };
            }
            "CPU_DEVICES" => {
                self.cfg.cpu_devices = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&d| d <= MAX_CPU_DEVICES)
                    .ok_or_else(|| invalid(self, "a number of CPU devices, 0 to 32"))?;
            }
            "VAULT_SLOTS" => {
                self.cfg.vault_slots = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|&v| (1..=1_000_000).contains(&v))
                        .ok_or_else(|| invalid(self, "a slot count, 1 to 1000000"))?,
                );
            }
            "VAULT_SLOT_BYTES" => {
                self.cfg.vault_slot_bytes =
                    Some(parse_bytes(value).filter(|&v| v >= 4096).ok_or_else(|| {
                        invalid(
                            self,
                            "a size in bytes (K/M/G suffix allowed), at least 4096",
                        )
                    })?);
            }
            "SERIAL_CONSOLE" => {
                if !value.starts_with('/') {
                    return Err(invalid(self, "an absolute tty path such as /dev/ttyS0"));
                }
                self.cfg.serial_console = Some(PathBuf::from(value));
            }
            "CONSOLE_LISTEN" => {
                self.cfg.console_listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|_| invalid(self, "ip:port"))?,
                );
            }
            "CONSOLE_KEYS" => {
                let keys: Result<Vec<PublicKey>, _> = value
                    .split(',')
                    .map(|k| hex::decode_array::<32>(k.trim()))
                    .collect();
                self.cfg.console_keys = keys.map_err(|_| {
                    invalid(self, "operator keys, 64 hex digits each, comma separated")
                })?;
            }
            "API_LISTEN" => {
                self.cfg.api_listen = value
                    .parse::<SocketAddr>()
                    .map_err(|_| invalid(self, "ip:port"))?;
            }
            "METRICS_LISTEN" => {
                self.cfg.metrics_listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|_| invalid(self, "ip:port"))?,
                );
            }
            "STATE_DIR" => {
                let dir = PathBuf::from(value);
                // A file where the directory should be: named here, at its line, rather than
                // by the first write into it.
                if dir.exists() && !dir.is_dir() {
                    return Err(invalid(self, "a directory (this path is a file)"));
                }
                self.cfg.state_dir = Some(dir);
            }
            "SWITCH_MARGIN" => {
                self.cfg.switch_margin = value
                    .parse::<f64>()
                    .ok()
                    .filter(|m| (0.0..=1.0).contains(m))
                    .ok_or_else(|| invalid(self, "a fraction between 0 and 1"))?;
            }
            _ => return Err(self.err(n, key, Problem::UnknownKey, None)),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<RigConfig, ConfigError> {
        let mut parts = std::mem::take(&mut self.pool_parts);
        // The URL first within each pool, whatever the line order.
        parts.sort_by_key(|p| (p.0, p.1 != PoolPart::Url, p.2));
        for (number, part, line, value) in &parts {
            let pool = self.cfg.pools.iter().position(|p| p.number == *number);
            match (part, pool) {
                (PoolPart::Url, _) => self.cfg.pools.push(PoolConfig {
                    number: *number,
                    url: value.clone(),
                    user: String::new(),
                    pass: String::new(),
                }),
                (PoolPart::User, Some(i)) => {
                    if let Some(p) = self.cfg.pools.get_mut(i) {
                        p.user = value.clone();
                    }
                }
                (PoolPart::Pass, Some(i)) => {
                    if let Some(p) = self.cfg.pools.get_mut(i) {
                        p.pass = value.clone();
                    }
                }
                (_, None) => {
                    let key = match part {
                        PoolPart::User => format!("POOL{number}_USER"),
                        _ => format!("POOL{number}_PASS"),
                    };
                    return Err(self.err(*line, &key, Problem::PoolWithoutUrl, None));
                }
            }
        }
        Ok(self.cfg)
    }
}

/// Every non-pool key of CONTRACT.md.
const KEYS: &[&str] = &[
    "MANAGER",
    "MANAGER_KEY",
    "RIG_NAME",
    "PAYOUT",
    "ROLES",
    "CPU_DEVICES",
    "VAULT_SLOTS",
    "VAULT_SLOT_BYTES",
    "SERIAL_CONSOLE",
    "CONSOLE_LISTEN",
    "CONSOLE_KEYS",
    "API_LISTEN",
    "METRICS_LISTEN",
    "STATE_DIR",
    "SWITCH_MARGIN",
];

/// `POOLn`, `POOLn_USER`, `POOLn_PASS` with `n` written without leading zeros.
fn pool_key(key: &str) -> Option<(u32, PoolPart)> {
    let rest = key.strip_prefix("POOL")?;
    let (num, part) = match rest.split_once('_') {
        None => (rest, PoolPart::Url),
        Some((num, "USER")) => (num, PoolPart::User),
        Some((num, "PASS")) => (num, PoolPart::Pass),
        Some(_) => return None,
    };
    if num.is_empty() || num.starts_with('0') || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((num.parse().ok()?, part))
}

fn role(s: &str) -> Option<Role> {
    match s {
        "auto" => Some(Role::Auto),
        "mine" => Some(Role::Mine),
        "transport" => Some(Role::Transport),
        "off" => Some(Role::Off),
        _ => None,
    }
}

fn valid_host_port(v: &str) -> bool {
    let Some((host, port)) = v.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && !host.chars().any(|c| c.is_whitespace() || c == '/')
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

fn valid_pool_url(v: &str) -> bool {
    let rest = v
        .strip_prefix("stratum+tcp://")
        .or_else(|| v.strip_prefix("stratum+ssl://"))
        .or_else(|| v.strip_prefix("stratum+tls://"));
    rest.is_some_and(|r| valid_host_port(r.trim_end_matches('/')))
}

/// `4096`, `64K`, `16M`, `2G` (binary multiples).
fn parse_bytes(v: &str) -> Option<u64> {
    let (num, mul) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&v[..v.len() - 1], 1 << 20),
        b'G' | b'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}
