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
/// Default seconds without progress before the watchdog restarts a device (SICK).
pub const DEFAULT_WATCHDOG_SICK_S: u32 = 120;
/// Default seconds without progress before the watchdog disables a device (DEAD).
pub const DEFAULT_WATCHDOG_DEAD_S: u32 = 600;
/// Default temperature at which a device pauses, degrees Celsius.
pub const DEFAULT_TEMP_LIMIT_C: u32 = 90;
/// Default temperature at or below which a paused device resumes, degrees Celsius.
pub const DEFAULT_TEMP_RESUME_C: u32 = 80;
/// Default least seconds a device holds a role before prices may move it (SWITCH_DWELL_S).
pub const DEFAULT_SWITCH_DWELL_S: u32 = 30;
/// Default evaluations in a row another role must lead by the margin (SWITCH_EVALUATIONS).
pub const DEFAULT_SWITCH_EVALUATIONS: u32 = 3;
/// Where STATE_DIR is, relative to rig.conf's directory, when the file does not say (on the
/// image: the stick's FAT partition).
pub const DEFAULT_STATE_SUBDIR: &str = "compushare";

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
    /// `SWITCH_DWELL_S` (default 30): least seconds in a role before prices may move a device.
    pub switch_dwell_s: u32,
    /// `SWITCH_EVALUATIONS` (default 3): evaluations (every 2 s) in a row the other role must
    /// lead by SWITCH_MARGIN before a device switches to it.
    pub switch_evaluations: u32,
    /// `POOL_FEE` (default 0): the pool's fee, a fraction in [0, 1), taken off mining revenue.
    pub pool_fee: f64,
    /// `WATCHDOG_SICK_S` (default 120): seconds without progress before a device restarts.
    pub watchdog_sick_s: u32,
    /// `WATCHDOG_DEAD_S` (default 600): seconds without progress before a device is disabled;
    /// more than `watchdog_sick_s`.
    pub watchdog_dead_s: u32,
    /// `TEMP_LIMIT_C` (default 90): a device at or above this many degrees pauses.
    pub temp_limit_c: u32,
    /// `TEMP_RESUME_C` (default 80): a paused device resumes at or below this; less than
    /// `temp_limit_c`.
    pub temp_resume_c: u32,
    /// The network settings the image's PID 1 applies before the controller starts
    /// (`NET_INTERFACE`, `NET_ADDRESS`, `NET_GATEWAY`, `NET_DNS`, `NTP_SERVERS`): validated
    /// here so a typo is named at its line, otherwise not used by the controller.
    pub network: NetworkConfig,
}

/// rig.conf's network keys, as written (validated).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkConfig {
    /// `NET_INTERFACE`: an interface name, at most 15 bytes of `[A-Za-z0-9._-]`.
    pub interface: Option<String>,
    /// `NET_ADDRESS`: `dhcp`, or a static `a.b.c.d/prefix`.
    pub address: Option<String>,
    /// `NET_GATEWAY`: an IPv4 address.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// `NET_DNS`: 1 to 8 IPv4 addresses.
    pub dns: Vec<std::net::Ipv4Addr>,
    /// `NTP_SERVERS`: 1 to 8 `host` or `host:port`.
    pub ntp_servers: Vec<String>,
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
    /// The key needs another key that the file does not set (or sets inconsistently).
    Requires {
        other: &'static str,
        why: &'static str,
    },
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
            Problem::Requires { other, why } => write!(f, "{why} (see {other})"),
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
            switch_dwell_s: DEFAULT_SWITCH_DWELL_S,
            switch_evaluations: DEFAULT_SWITCH_EVALUATIONS,
            pool_fee: 0.0,
            watchdog_sick_s: DEFAULT_WATCHDOG_SICK_S,
            watchdog_dead_s: DEFAULT_WATCHDOG_DEAD_S,
            temp_limit_c: DEFAULT_TEMP_LIMIT_C,
            temp_resume_c: DEFAULT_TEMP_RESUME_C,
            network: NetworkConfig::default(),
        }
    }

    /// STATE_DIR, or `compushare` beside rig.conf when the file does not set it (on the
    /// image: the stick's FAT partition, so payments and the identity survive a reflash).
    pub fn state_dir_or_default(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            self.path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(DEFAULT_STATE_SUBDIR)
        })
    }

    /// `PAYOUT` as a worker account key, when it is one (64 hex digits); `None` when the file
    /// does not set it or names a payout address instead (the rig then announces its own
    /// identity key as its account, and says so in its log).
    pub fn payout_account(&self) -> Option<PublicKey> {
        self.payout
            .as_deref()
            .and_then(|v| hex::decode_array::<32>(v).ok())
    }

    /// Parses like [`RigConfig::parse`], but keeps going past bad lines: the config of every
    /// line that parsed, and the errors of the others (empty when the file is good). A rig in
    /// maintenance mode uses it to bring up the operator surfaces the file asks for (console,
    /// API) even though the file as a whole is refused.
    pub fn parse_lenient(path: &Path, bytes: &[u8]) -> (Self, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let mut p = Parser {
            path,
            cfg: RigConfig::defaults(path),
            seen: Vec::new(),
            pool_parts: Vec::new(),
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            errors.push(ConfigError::TooLarge {
                path: path.to_owned(),
                len: bytes.len() as u64,
            });
            return (p.cfg, errors);
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            if let Err(e) = p.line(i + 1, raw) {
                errors.push(e);
            }
            // Bound what a hostile file can make us keep.
            if errors.len() >= 64 {
                break;
            }
        }
        let fallback = p.cfg.clone();
        match p.finish() {
            Ok(cfg) => (cfg, errors),
            Err(e) => {
                errors.push(e);
                (fallback, errors)
            }
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
            "SWITCH_DWELL_S" => {
                self.cfg.switch_dwell_s = value
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s <= 86_400)
                    .ok_or_else(|| invalid(self, "seconds, 0 to 86400"))?;
            }
            "SWITCH_EVALUATIONS" => {
                self.cfg.switch_evaluations = value
                    .parse::<u32>()
                    .ok()
                    .filter(|s| (1..=1000).contains(s))
                    .ok_or_else(|| invalid(self, "a number of evaluations, 1 to 1000"))?;
            }
            "NET_INTERFACE" => {
                let ok = value.len() <= 15
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(invalid(
                        self,
                        "an interface name, at most 15 letters, digits, '.', '_' or '-'",
                    ));
                }
                self.cfg.network.interface = Some(value.to_owned());
            }
            "NET_ADDRESS" => {
                let ok = value.eq_ignore_ascii_case("dhcp")
                    || value.split_once('/').is_some_and(|(ip, prefix)| {
                        ip.parse::<std::net::Ipv4Addr>().is_ok()
                            && prefix.parse::<u8>().is_ok_and(|p| (1..=32).contains(&p))
                    });
                if !ok {
                    return Err(invalid(self, "dhcp, or a static a.b.c.d/prefix"));
                }
                self.cfg.network.address = Some(value.to_owned());
            }
            "NET_GATEWAY" => {
                self.cfg.network.gateway = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(self, "an IPv4 address"))?,
                );
            }
            "NET_DNS" => {
                let dns: Option<Vec<std::net::Ipv4Addr>> =
                    value.split(',').map(|v| v.trim().parse().ok()).collect();
                self.cfg.network.dns = dns
                    .filter(|d| (1..=8).contains(&d.len()))
                    .ok_or_else(|| invalid(self, "1 to 8 IPv4 addresses, comma separated"))?;
            }
            "NTP_SERVERS" => {
                let servers: Vec<String> = value.split(',').map(|v| v.trim().to_owned()).collect();
                let host_ok = |h: &str| {
                    !h.is_empty()
                        && h.len() <= 253
                        && !h.chars().any(|c| c.is_whitespace() || c == '/')
                };
                let one = |s: &String| match s.rsplit_once(':') {
                    Some((h, p)) if p.parse::<u16>().is_ok_and(|p| p != 0) => host_ok(h),
                    _ => host_ok(s) && !s.contains(':'),
                };
                if !(1..=8).contains(&servers.len()) || !servers.iter().all(one) {
                    return Err(invalid(
                        self,
                        "1 to 8 NTP servers (host or host:port), comma separated",
                    ));
                }
                self.cfg.network.ntp_servers = servers;
            }
            "POOL_FEE" => {
                self.cfg.pool_fee = value
                    .parse::<f64>()
                    .ok()
                    .filter(|m| (0.0..1.0).contains(m))
                    .ok_or_else(|| invalid(self, "a fraction from 0 up to (not including) 1"))?;
            }
            "WATCHDOG_SICK_S" | "WATCHDOG_DEAD_S" => {
                let s = value
                    .parse::<u32>()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| invalid(self, "seconds, 1 to 86400"))?;
                if key == "WATCHDOG_SICK_S" {
                    self.cfg.watchdog_sick_s = s;
                } else {
                    self.cfg.watchdog_dead_s = s;
                }
            }
            "TEMP_LIMIT_C" | "TEMP_RESUME_C" => {
                let c = value
                    .parse::<u32>()
                    .ok()
                    .filter(|c| (20..=125).contains(c))
                    .ok_or_else(|| invalid(self, "degrees Celsius, 20 to 125"))?;
                if key == "TEMP_LIMIT_C" {
                    self.cfg.temp_limit_c = c;
                } else {
                    self.cfg.temp_resume_c = c;
                }
            }
            _ => return Err(self.err(n, key, Problem::UnknownKey, None)),
        }
        Ok(())
    }

    /// The line a key was set on (0 when the file does not set it).
    fn line_of(&self, key: &str) -> usize {
        self.seen
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |&(_, l)| l)
    }

    /// Keys that only make sense together; the error names the later of the two lines.
    fn cross_checks(&self) -> Result<(), ConfigError> {
        let c = &self.cfg;
        let pair = |a: &str, b: &str| self.line_of(a).max(self.line_of(b));
        let requires = |line: usize, key: &str, other: &'static str, why: &'static str| {
            self.err(line, key, Problem::Requires { other, why }, None)
        };
        if c.manager.is_some() && c.manager_key.is_none() {
            let line = self.line_of("MANAGER");
            return Err(requires(
                line,
                "MANAGER",
                "MANAGER_KEY",
                "a manager needs its public key, MANAGER_KEY",
            ));
        }
        if c.manager_key.is_some() && c.manager.is_none() {
            let line = self.line_of("MANAGER_KEY");
            return Err(requires(
                line,
                "MANAGER_KEY",
                "MANAGER",
                "MANAGER_KEY without MANAGER (host:port)",
            ));
        }
        if c.watchdog_dead_s <= c.watchdog_sick_s {
            let line = pair("WATCHDOG_SICK_S", "WATCHDOG_DEAD_S");
            let key = if line == self.line_of("WATCHDOG_DEAD_S") {
                "WATCHDOG_DEAD_S"
            } else {
                "WATCHDOG_SICK_S"
            };
            return Err(requires(
                line,
                key,
                "WATCHDOG_SICK_S, WATCHDOG_DEAD_S",
                "WATCHDOG_DEAD_S must be more than WATCHDOG_SICK_S",
            ));
        }
        if c.temp_resume_c >= c.temp_limit_c {
            let line = pair("TEMP_LIMIT_C", "TEMP_RESUME_C");
            let key = if line == self.line_of("TEMP_RESUME_C") {
                "TEMP_RESUME_C"
            } else {
                "TEMP_LIMIT_C"
            };
            return Err(requires(
                line,
                key,
                "TEMP_LIMIT_C, TEMP_RESUME_C",
                "TEMP_RESUME_C must be below TEMP_LIMIT_C",
            ));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<RigConfig, ConfigError> {
        self.cross_checks()?;
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
    "SWITCH_DWELL_S",
    "SWITCH_EVALUATIONS",
    "POOL_FEE",
    "WATCHDOG_SICK_S",
    "WATCHDOG_DEAD_S",
    "TEMP_LIMIT_C",
    "TEMP_RESUME_C",
    "NET_INTERFACE",
    "NET_ADDRESS",
    "NET_GATEWAY",
    "NET_DNS",
    "NTP_SERVERS",
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
