//! cgminer API requests, in both of cgminer's forms.
//!
//! - JSON: `{"command":"summary+devs","parameter":""}` (the parameter may be a string or a
//!   number); the reply is JSON.
//! - Plain: `summary|` or `pools` or `check|summary`; the reply is cgminer's text form.
//!
//! A request is at most [`MAX_REQUEST`] bytes (cgminer reads about half its 8 KiB buffer).
//! Commands joined with `+` are split here; duplicates and blanks are dropped, as cgminer
//! does.

use std::fmt;

/// Largest request accepted.
pub const MAX_REQUEST: usize = 4096;
/// Most commands one joined request may name (cgminer has fewer report commands).
pub const MAX_JOINED: usize = 32;

/// A parsed API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request was JSON, so the reply is too.
    pub json: bool,
    /// The command as sent (for a single command) or the joined commands, deduplicated in
    /// order.
    pub commands: Vec<String>,
    /// Whether the request joined commands with `+` (the reply then has one section per
    /// command, even when only one is left).
    pub joined: bool,
    /// The parameter (ignored for joined requests, as cgminer does).
    pub parameter: Option<String>,
}

/// Why bytes are not a request. Each maps to one of cgminer's error statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Nothing was sent.
    Empty,
    /// More than [`MAX_REQUEST`] bytes.
    TooLong { len: usize },
    /// The request is not UTF-8 (byte offset).
    NotUtf8 { at: usize },
    /// It starts with `{` but is not a JSON object.
    InvalidJson { why: String },
    /// A JSON object without `"command"`.
    MissingCommand,
    /// `"command"` is not a string.
    CommandNotString,
    /// More than [`MAX_JOINED`] commands joined.
    TooManyCommands { count: usize },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Empty => write!(f, "empty request"),
            RequestError::TooLong { len } => {
                write!(f, "request of {len} bytes exceeds {MAX_REQUEST} bytes")
            }
            RequestError::NotUtf8 { at } => write!(f, "request is not UTF-8 (offset {at})"),
            RequestError::InvalidJson { why } => write!(f, "invalid JSON: {why}"),
            RequestError::MissingCommand => write!(f, "JSON request without \"command\""),
            RequestError::CommandNotString => write!(f, "JSON \"command\" is not a string"),
            RequestError::TooManyCommands { count } => {
                write!(f, "{count} joined commands (at most {MAX_JOINED})")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Whether `bytes` so far could still grow into a longer request: a JSON object not yet
/// closed. Plain requests end with what the first read brought, as in cgminer.
pub fn incomplete(bytes: &[u8]) -> bool {
    let body = trim(bytes);
    if body.first() != Some(&b'{') || bytes.contains(&0) || bytes.len() >= MAX_REQUEST {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => false,
        Err(e) => e.is_eof(),
    }
}

/// Drops a trailing NUL, line end and surrounding whitespace.
fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let b = bytes.get(..end).unwrap_or_default();
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let stop = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    b.get(start..stop).unwrap_or_default()
}

/// Whether the reply to `bytes` should be JSON, even when they are not a valid request.
pub fn wants_json(bytes: &[u8]) -> bool {
    trim(bytes).first() == Some(&b'{')
}

/// Parses one request. Any bytes give a request or an error, never a panic.
pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
    if bytes.len() > MAX_REQUEST {
        return Err(RequestError::TooLong { len: bytes.len() });
    }
    let body = trim(bytes);
    let text = std::str::from_utf8(body).map_err(|e| RequestError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    if text.is_empty() {
        return Err(RequestError::Empty);
    }
    let (json, command, parameter) = if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| RequestError::InvalidJson { why: e.to_string() })?;
        let obj = v.as_object().ok_or_else(|| RequestError::InvalidJson {
            why: "not an object".into(),
        })?;
        let command = obj
            .get("command")
            .ok_or(RequestError::MissingCommand)?
            .as_str()
            .ok_or(RequestError::CommandNotString)?
            .to_owned();
        let parameter = match obj.get("parameter") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        (true, command, parameter)
    } else {
        match text.split_once('|') {
            Some((c, p)) => (false, c.to_owned(), Some(p.to_owned())),
            None => (false, text.to_owned(), None),
        }
    };
    if command.contains('+') {
        let mut commands: Vec<String> = Vec::new();
        for c in command.split('+').filter(|c| !c.is_empty()) {
            if !commands.iter().any(|k| k == c) {
                commands.push(c.to_owned());
            }
            if commands.len() > MAX_JOINED {
                return Err(RequestError::TooManyCommands {
                    count: command.split('+').filter(|c| !c.is_empty()).count(),
                });
            }
        }
        return Ok(Request {
            json,
            commands,
            joined: true,
            parameter: None,
        });
    }
    Ok(Request {
        json,
        commands: vec![command],
        joined: false,
        parameter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let r = parse(br#"{"command":"summary+devs","parameter":""}"#).unwrap();
        assert!(r.json && r.joined);
        assert_eq!(r.commands, ["summary", "devs"]);
        let r = parse(b"summary|").unwrap();
        assert!(!r.json && !r.joined);
        assert_eq!(r.commands, ["summary"]);
        assert_eq!(r.parameter.as_deref(), Some(""));
        let r = parse(b"+devs++devs+\n").unwrap();
        assert!(r.joined);
        assert_eq!(r.commands, ["devs"]);
        let r = parse(br#"{"command":"check","parameter":5}"#).unwrap();
        assert_eq!(r.parameter.as_deref(), Some("5"));
        assert_eq!(parse(b"pools\0").unwrap().commands, ["pools"]);
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b""), Err(RequestError::Empty));
        assert_eq!(
            parse(br#"{"parameter":1}"#),
            Err(RequestError::MissingCommand)
        );
        assert_eq!(
            parse(br#"{"command":1}"#),
            Err(RequestError::CommandNotString)
        );
        assert!(matches!(
            parse(b"{nope"),
            Err(RequestError::InvalidJson { .. })
        ));
        assert!(parse(b"[1]").is_ok()); // plain text, an unknown command
        assert!(matches!(
            parse(b"{}]"),
            Err(RequestError::InvalidJson { .. })
        ));
        assert!(incomplete(br#"{"command":"su"#));
        assert!(!incomplete(br#"{"command":"summary"}"#));
        assert!(!incomplete(b"summary"));
    }
}
