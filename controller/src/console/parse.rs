//! The console's command language: one line in, one [`Request`] or a [`ParseError`] that
//! names what was wrong.
//!
//! The same parser serves the serial port, the network console and lines relayed by the
//! manager, so every door refuses the same inputs the same way. It takes raw bytes (a serial
//! line may hold anything) and never allocates beyond the words it returns.

use std::fmt;

use compushare_protocol::limits::CONSOLE_LINE;
use compushare_protocol::types::Role;

/// Lines `log` shows when no count is given.
pub const LOG_DEFAULT: usize = 20;
/// Most lines `log N` accepts.
pub const LOG_MAX: usize = 1000;

/// A parsed console line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// A blank line: nothing to do.
    Nothing,
    Status,
    Devices,
    /// `role DEV ROLE`; `device: None` is `all`.
    Role {
        device: Option<u8>,
        role: Role,
    },
    Pools,
    PoolAdd {
        url: String,
        user: String,
        pass: String,
    },
    PoolRemove {
        number: u32,
    },
    Manager,
    Vault,
    Log {
        lines: usize,
    },
    Reboot,
    Help,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is longer than the protocol's console line.
    TooLong { len: usize },
    /// The line is not UTF-8 (byte offset of the first bad byte).
    NotUtf8 { at: usize },
    /// The line holds a control character (byte offset).
    ControlCharacter { at: usize },
    /// The first word is not a command.
    UnknownCommand(String),
    /// A command lacks an argument.
    Missing {
        command: &'static str,
        what: &'static str,
    },
    /// A command got more arguments than it takes.
    Extra { command: &'static str, arg: String },
    /// `pool` followed by something other than `add` or `remove`.
    UnknownPoolAction(String),
    /// A device is neither an index (0-255) nor `all`.
    BadDevice(String),
    /// A role is not auto, mine, transport or off.
    BadRole(String),
    /// A number is out of range or not a number.
    BadNumber {
        what: &'static str,
        got: String,
        range: &'static str,
    },
}

/// Cuts an echoed word so that an error message stays short whatever was typed.
fn shown(word: &str) -> String {
    const MAX: usize = 40;
    if word.chars().count() <= MAX {
        word.to_owned()
    } else {
        let mut s: String = word.chars().take(MAX).collect();
        s.push_str("...");
        s
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong { len } => write!(
                f,
                "line of {len} bytes refused: a console line is at most {CONSOLE_LINE} bytes"
            ),
            ParseError::NotUtf8 { at } => write!(f, "line is not UTF-8 (bad byte at offset {at})"),
            ParseError::ControlCharacter { at } => {
                write!(f, "control character at offset {at}")
            }
            ParseError::UnknownCommand(w) => {
                write!(f, "unknown command {:?} (type help)", shown(w))
            }
            ParseError::Missing { command, what } => {
                write!(f, "{command}: missing {what} (type help)")
            }
            ParseError::Extra { command, arg } => {
                write!(f, "{command}: unexpected argument {:?}", shown(arg))
            }
            ParseError::UnknownPoolAction(w) => {
                write!(f, "pool: expected add or remove, got {:?}", shown(w))
            }
            ParseError::BadDevice(w) => {
                write!(
                    f,
                    "role: device must be an index (0-255) or all, got {:?}",
                    shown(w)
                )
            }
            ParseError::BadRole(w) => write!(
                f,
                "role: role must be auto, mine, transport or off, got {:?}",
                shown(w)
            ),
            ParseError::BadNumber { what, got, range } => {
                write!(f, "{what} must be a number {range}, got {:?}", shown(got))
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one console line (without its line ending). Any bytes give a request or an error,
/// never a panic.
pub fn parse(line: &[u8]) -> Result<Request, ParseError> {
    if line.len() > CONSOLE_LINE {
        return Err(ParseError::TooLong { len: line.len() });
    }
    let text = std::str::from_utf8(line).map_err(|e| ParseError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    if let Some(at) = text.char_indices().find_map(|(i, c)| {
        // Tabs separate words like spaces; every other control character is refused.
        (c.is_control() && c != '\t').then_some(i)
    }) {
        return Err(ParseError::ControlCharacter { at });
    }
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(Request::Nothing);
    };
    let command = first.to_ascii_lowercase();
    let req = match command.as_str() {
        "status" => Request::Status,
        "devices" => Request::Devices,
        "pools" => Request::Pools,
        "manager" => Request::Manager,
        "vault" => Request::Vault,
        "reboot" => Request::Reboot,
        "help" | "?" => {
            // `help anything` shows the same list: never an error for asking.
            return Ok(Request::Help);
        }
        "log" => {
            let lines = match words.next() {
                None => LOG_DEFAULT,
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=LOG_MAX).contains(n))
                    .ok_or_else(|| ParseError::BadNumber {
                        what: "log: line count",
                        got: n.to_owned(),
                        range: "from 1 to 1000",
                    })?,
            };
            no_more("log", &mut words)?;
            return Ok(Request::Log { lines });
        }
        "role" => {
            let dev = words.next().ok_or(ParseError::Missing {
                command: "role",
                what: "device (an index or all)",
            })?;
            let device = if dev.eq_ignore_ascii_case("all") {
                None
            } else {
                Some(
                    dev.parse::<u8>()
                        .map_err(|_| ParseError::BadDevice(dev.to_owned()))?,
                )
            };
            let r = words.next().ok_or(ParseError::Missing {
                command: "role",
                what: "role (auto, mine, transport or off)",
            })?;
            let role = match r.to_ascii_lowercase().as_str() {
                "auto" => Role::Auto,
                "mine" => Role::Mine,
                "transport" => Role::Transport,
                "off" => Role::Off,
                _ => return Err(ParseError::BadRole(r.to_owned())),
            };
            no_more("role", &mut words)?;
            return Ok(Request::Role { device, role });
        }
        "pool" => {
            let action = words.next().ok_or(ParseError::Missing {
                command: "pool",
                what: "action (add or remove)",
            })?;
            match action.to_ascii_lowercase().as_str() {
                "add" => {
                    let url = words.next().ok_or(ParseError::Missing {
                        command: "pool add",
                        what: "URL (stratum+tcp://host:port)",
                    })?;
                    let user = words.next().ok_or(ParseError::Missing {
                        command: "pool add",
                        what: "user",
                    })?;
                    // Many pools ignore the password: it may be left out (empty).
                    let pass = words.next().unwrap_or_default();
                    no_more("pool add", &mut words)?;
                    return Ok(Request::PoolAdd {
                        url: url.to_owned(),
                        user: user.to_owned(),
                        pass: pass.to_owned(),
                    });
                }
                "remove" => {
                    let n = words.next().ok_or(ParseError::Missing {
                        command: "pool remove",
                        what: "pool number",
                    })?;
                    let number = n.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                        ParseError::BadNumber {
                            what: "pool remove: pool number",
                            got: n.to_owned(),
                            range: "from 1 (see pools)",
                        }
                    })?;
                    no_more("pool remove", &mut words)?;
                    return Ok(Request::PoolRemove { number });
                }
                _ => return Err(ParseError::UnknownPoolAction(action.to_owned())),
            }
        }
        _ => return Err(ParseError::UnknownCommand(first.to_owned())),
    };
    let name = match req {
        Request::Status => "status",
        Request::Devices => "devices",
        Request::Pools => "pools",
        Request::Manager => "manager",
        Request::Vault => "vault",
        _ => "reboot",
    };
    no_more(name, &mut words)?;
    Ok(req)
}

fn no_more<'a>(
    command: &'static str,
    words: &mut impl Iterator<Item = &'a str>,
) -> Result<(), ParseError> {
    match words.next() {
        None => Ok(()),
        Some(arg) => Err(ParseError::Extra {
            command,
            arg: arg.to_owned(),
        }),
    }
}

/// The `help` text.
pub const HELP: &str = "\
commands:
  status                      the rig at a glance
  devices                     every device: role, pin, health, rates, temperature
  role DEV auto|mine|transport|off
                              pin a device's role (DEV: an index or all; auto: the scheduler chooses)
  pools                       mining pools in priority order
  pool add URL USER [PASS]    add a pool at the lowest priority (URL: stratum+tcp://host:port)
  pool remove N               remove pool N (see pools)
  manager                     the management-node session
  vault                       the sealed result vault
  log [N]                     the last N lines of the rig's log (default 20, at most 1000)
  reboot                      restart the controller
  help                        this list";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b""), Ok(Request::Nothing));
        assert_eq!(parse(b"  \t "), Ok(Request::Nothing));
        assert_eq!(parse(b"STATUS"), Ok(Request::Status));
        assert_eq!(
            parse(b"role all mine"),
            Ok(Request::Role {
                device: None,
                role: Role::Mine
            })
        );
        assert_eq!(
            parse(b"role 3\tauto"),
            Ok(Request::Role {
                device: Some(3),
                role: Role::Auto
            })
        );
        assert_eq!(parse(b"log"), Ok(Request::Log { lines: 20 }));
        assert_eq!(parse(b"log 5"), Ok(Request::Log { lines: 5 }));
        assert_eq!(
            parse(b"pool add stratum+tcp://p:3333 w x"),
            Ok(Request::PoolAdd {
                url: "stratum+tcp://p:3333".into(),
                user: "w".into(),
                pass: "x".into()
            })
        );
        assert_eq!(
            parse(b"pool remove 2"),
            Ok(Request::PoolRemove { number: 2 })
        );
    }

    #[test]
    fn refusals_name_what_was_wrong() {
        let e = |l: &[u8]| parse(l).unwrap_err().to_string();
        assert!(e(&[b'a'; 257]).contains("257 bytes") && e(&[b'a'; 257]).contains("256"));
        assert!(e(b"frobnicate").contains("\"frobnicate\""));
        assert!(e(b"role 300 mine").contains("\"300\""));
        assert!(e(b"role 1 dance").contains("\"dance\""));
        assert!(e(b"role").contains("missing device"));
        assert!(e(b"log 0").contains("line count"));
        assert!(e(b"status now").contains("\"now\""));
        assert!(e(b"pool swim").contains("\"swim\""));
        assert!(e(b"pool remove x").contains("pool number"));
        assert!(e(b"\xffabc").contains("offset 0"));
        assert!(e(b"sta\x1btus").contains("offset 3"));
    }
}
