//! Stratum v1 wire messages: one JSON object per line, JSON-RPC 1.0 style.
//!
//! This module owns parsing a line into a [`Message`] (response or request/notification),
//! turning requests into typed server ([`ServerMessage`]) or client ([`ClientMessage`])
//! messages, and serialising every line either side sends. Ids may be numbers, strings or
//! null; errors may be `[code, message]`, `[code, message, traceback]`, an object or null.
//! Every decoder bounds what it accepts so a hostile peer cannot make it allocate without
//! limit: lines are at most [`MAX_LINE_BYTES`], fields have their own caps.

use serde_json::{json, Map, Value};
use thiserror::Error;

use super::hex::{self, HexError};

/// The longest line either side accepts. Real notify lines are a few kilobytes; this leaves
/// room for large coinbases (many payout outputs) while bounding memory per connection.
pub const MAX_LINE_BYTES: usize = 128 * 1024;
/// Longest job id, worker name, password or method name accepted.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest coinbase part (coinb1 or coinb2) accepted, in bytes.
pub const MAX_COINBASE_PART: usize = 32 * 1024;
/// Most merkle branch entries (2^32 transactions would need 32).
pub const MAX_MERKLE_BRANCH: usize = 32;
/// Longest extranonce1 accepted, in bytes.
pub const MAX_EXTRANONCE1: usize = 32;
/// Largest extranonce2 size accepted, in bytes.
pub const MAX_EXTRANONCE2: usize = 32;

/// Why a line or a message could not be understood.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line of {0} bytes exceeds the {MAX_LINE_BYTES}-byte limit")]
    LineTooLong(usize),
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The line is JSON but not an object.
    #[error("message is not a JSON object")]
    NotObject,
    /// The id is neither a number, a string nor null.
    #[error("id must be a number, a string or null")]
    BadId,
    /// The object has neither `method` nor `result`/`error`.
    #[error("message has neither a method nor a result")]
    Shapeless,
    /// `params` is present but not an array.
    #[error("params of {method} must be an array")]
    ParamsNotArray {
        /// The method whose params are wrong.
        method: String,
    },
    /// A parameter is missing.
    #[error("{method}: parameter {index} ({field}) is missing")]
    MissingParam {
        /// The method.
        method: &'static str,
        /// Position in params.
        index: usize,
        /// What the parameter means.
        field: &'static str,
    },
    /// A parameter has the wrong JSON type or an impossible value.
    #[error("{method}: parameter {index} ({field}) is invalid: {why}")]
    BadParam {
        /// The method.
        method: &'static str,
        /// Position in params.
        index: usize,
        /// What the parameter means.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A hex parameter does not decode.
    #[error("{method}: parameter {index} ({field}): {err}")]
    BadHex {
        /// The method.
        method: &'static str,
        /// Position in params.
        index: usize,
        /// What the parameter means.
        field: &'static str,
        /// The hex error.
        err: HexError,
    },
    /// A response result does not have the expected shape.
    #[error("{what}: unexpected result: {why}")]
    BadResult {
        /// Which response.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// A JSON-RPC id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// `null`: a notification, or an error the peer could not tie to a request.
    Null,
    /// An integer id (what this client sends).
    Num(i64),
    /// A string id (some pools use them).
    Str(String),
}

impl Id {
    fn from_value(v: Option<&Value>) -> Result<Id, MessageError> {
        match v {
            None | Some(Value::Null) => Ok(Id::Null),
            Some(Value::Number(n)) => n.as_i64().map(Id::Num).ok_or(MessageError::BadId),
            Some(Value::String(s)) if s.len() <= MAX_NAME_BYTES => Ok(Id::Str(s.clone())),
            Some(_) => Err(MessageError::BadId),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Id::Null => Value::Null,
            Id::Num(n) => json!(n),
            Id::Str(s) => json!(s),
        }
    }
}

/// An error object in a response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The pool's code (20 other, 21 job not found, 22 duplicate, 23 low difficulty,
    /// 24 unauthorized, 25 not subscribed by convention); 0 when the pool gave none.
    pub code: i64,
    /// The pool's text.
    pub message: String,
}

impl RpcError {
    /// Stratum's "job not found (stale)".
    pub const JOB_NOT_FOUND: i64 = 21;
    /// Stratum's "duplicate share".
    pub const DUPLICATE: i64 = 22;
    /// Stratum's "low difficulty share".
    pub const LOW_DIFFICULTY: i64 = 23;
    /// Stratum's "unauthorized worker".
    pub const UNAUTHORIZED: i64 = 24;
    /// Stratum's "not subscribed".
    pub const NOT_SUBSCRIBED: i64 = 25;
    /// Stratum's "other/unknown".
    pub const OTHER: i64 = 20;

    fn from_value(v: &Value) -> Option<RpcError> {
        let truncate = |s: &str| s.chars().take(MAX_NAME_BYTES).collect::<String>();
        match v {
            Value::Null => None,
            Value::Array(a) => Some(RpcError {
                code: a.first().and_then(Value::as_i64).unwrap_or(0),
                message: a
                    .get(1)
                    .map(|m| m.as_str().map(truncate).unwrap_or_else(|| m.to_string()))
                    .unwrap_or_default(),
            }),
            Value::Object(o) => Some(RpcError {
                code: o.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: o
                    .get("message")
                    .and_then(Value::as_str)
                    .map(truncate)
                    .unwrap_or_default(),
            }),
            Value::String(s) => Some(RpcError {
                code: 0,
                message: truncate(s),
            }),
            other => Some(RpcError {
                code: 0,
                message: truncate(&other.to_string()),
            }),
        }
    }

    /// Whether the pool is saying the share was for a job it no longer has.
    pub fn is_stale(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        self.code == Self::JOB_NOT_FOUND || m.contains("stale") || m.contains("job not found")
    }
}

/// A response to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request it answers (null for errors the peer could not tie to one).
    pub id: Id,
    /// The result (null on error).
    pub result: Value,
    /// The error, if any.
    pub error: Option<RpcError>,
}

/// A request (id non-null) or notification (id null).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to answer with.
    pub id: Id,
    /// The method name.
    pub method: String,
    /// The positional parameters.
    pub params: Vec<Value>,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A response to an earlier request.
    Response(Response),
    /// A request or notification.
    Request(Request),
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Message, MessageError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(MessageError::LineTooLong(line.len()));
    }
    // serde_json bounds nesting depth (128) itself, so deep garbage cannot blow the stack.
    let v: Value = serde_json::from_str(line).map_err(|e| MessageError::Json(e.to_string()))?;
    let Value::Object(mut o) = v else {
        return Err(MessageError::NotObject);
    };
    let id = Id::from_value(o.get("id"))?;
    match o.remove("method") {
        Some(Value::String(method)) => {
            if method.len() > MAX_NAME_BYTES {
                return Err(MessageError::BadParam {
                    method: "request",
                    index: 0,
                    field: "method",
                    why: format!("method name of {} bytes", method.len()),
                });
            }
            let params = match o.remove("params") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a,
                Some(_) => return Err(MessageError::ParamsNotArray { method }),
            };
            Ok(Message::Request(Request { id, method, params }))
        }
        Some(Value::Null) | None => {
            if !o.contains_key("result") && !o.contains_key("error") {
                return Err(MessageError::Shapeless);
            }
            let result = o.remove("result").unwrap_or(Value::Null);
            let error = o.get("error").and_then(RpcError::from_value);
            Ok(Message::Response(Response { id, result, error }))
        }
        Some(_) => Err(MessageError::Shapeless),
    }
}

// ----- parameter helpers -----------------------------------------------------------------

fn param<'a>(
    p: &'a [Value],
    method: &'static str,
    index: usize,
    field: &'static str,
) -> Result<&'a Value, MessageError> {
    p.get(index).ok_or(MessageError::MissingParam {
        method,
        index,
        field,
    })
}

fn str_param<'a>(
    p: &'a [Value],
    method: &'static str,
    index: usize,
    field: &'static str,
) -> Result<&'a str, MessageError> {
    let s = param(p, method, index, field)?
        .as_str()
        .ok_or_else(|| MessageError::BadParam {
            method,
            index,
            field,
            why: "not a string".into(),
        })?;
    Ok(s)
}

fn name_param(
    p: &[Value],
    method: &'static str,
    index: usize,
    field: &'static str,
) -> Result<String, MessageError> {
    let s = str_param(p, method, index, field)?;
    if s.len() > MAX_NAME_BYTES {
        return Err(MessageError::BadParam {
            method,
            index,
            field,
            why: format!("{} bytes is longer than {MAX_NAME_BYTES}", s.len()),
        });
    }
    Ok(s.to_owned())
}

fn hex_param(
    p: &[Value],
    method: &'static str,
    index: usize,
    field: &'static str,
    limit: usize,
) -> Result<Vec<u8>, MessageError> {
    hex::decode(str_param(p, method, index, field)?, limit).map_err(|err| MessageError::BadHex {
        method,
        index,
        field,
        err,
    })
}

fn word_param(
    p: &[Value],
    method: &'static str,
    index: usize,
    field: &'static str,
) -> Result<u32, MessageError> {
    hex::decode_u32_be(str_param(p, method, index, field)?).map_err(|err| MessageError::BadHex {
        method,
        index,
        field,
        err,
    })
}

fn usize_param(
    p: &[Value],
    method: &'static str,
    index: usize,
    field: &'static str,
    max: usize,
) -> Result<usize, MessageError> {
    let v = param(p, method, index, field)?;
    let n = v.as_u64().ok_or_else(|| MessageError::BadParam {
        method,
        index,
        field,
        why: "not a non-negative integer".into(),
    })?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| MessageError::BadParam {
            method,
            index,
            field,
            why: format!("{n} is more than {max}"),
        })
}

// ----- server -> client ------------------------------------------------------------------

/// The content of a `mining.notify`, decoded and with every length checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The pool's job id (echoed in submits).
    pub job_id: String,
    /// Previous block hash as it appears on the wire (each 4-byte word swapped relative
    /// to header order; see [`super::job`]).
    pub prevhash_wire: [u8; 32],
    /// Coinbase part before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase part after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch, each entry in header (internal) byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version as a number (sent big-endian hex).
    pub version: u32,
    /// Compact network target as a number.
    pub nbits: u32,
    /// Block time as a number.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

impl Notify {
    const M: &'static str = "mining.notify";

    /// Decodes `mining.notify` params.
    pub fn from_params(p: &[Value]) -> Result<Notify, MessageError> {
        let m = Self::M;
        let job_id = name_param(p, m, 0, "job_id")?;
        let prevhash_wire =
            hex::decode_array::<32>(str_param(p, m, 1, "prevhash")?).map_err(|err| {
                MessageError::BadHex {
                    method: m,
                    index: 1,
                    field: "prevhash",
                    err,
                }
            })?;
        let coinb1 = hex_param(p, m, 2, "coinb1", MAX_COINBASE_PART)?;
        let coinb2 = hex_param(p, m, 3, "coinb2", MAX_COINBASE_PART)?;
        let branch =
            param(p, m, 4, "merkle_branch")?
                .as_array()
                .ok_or_else(|| MessageError::BadParam {
                    method: m,
                    index: 4,
                    field: "merkle_branch",
                    why: "not an array".into(),
                })?;
        if branch.len() > MAX_MERKLE_BRANCH {
            return Err(MessageError::BadParam {
                method: m,
                index: 4,
                field: "merkle_branch",
                why: format!("{} entries, at most {MAX_MERKLE_BRANCH}", branch.len()),
            });
        }
        let mut merkle_branch = Vec::with_capacity(branch.len());
        for (i, b) in branch.iter().enumerate() {
            let s = b.as_str().ok_or_else(|| MessageError::BadParam {
                method: m,
                index: 4,
                field: "merkle_branch",
                why: format!("entry {i} is not a string"),
            })?;
            merkle_branch.push(
                hex::decode_array::<32>(s).map_err(|err| MessageError::BadHex {
                    method: m,
                    index: 4,
                    field: "merkle_branch",
                    err,
                })?,
            );
        }
        let version = word_param(p, m, 5, "version")?;
        let nbits = word_param(p, m, 6, "nbits")?;
        let ntime = word_param(p, m, 7, "ntime")?;
        let clean_jobs = match param(p, m, 8, "clean_jobs")? {
            Value::Bool(b) => *b,
            other => {
                return Err(MessageError::BadParam {
                    method: m,
                    index: 8,
                    field: "clean_jobs",
                    why: format!("not a boolean: {other}"),
                })
            }
        };
        Ok(Notify {
            job_id,
            prevhash_wire,
            coinb1,
            coinb2,
            merkle_branch,
            version,
            nbits,
            ntime,
            clean_jobs,
        })
    }

    /// The params array of a `mining.notify` carrying this job.
    pub fn to_params(&self) -> Value {
        json!([
            self.job_id,
            hex::encode(&self.prevhash_wire),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.merkle_branch
                .iter()
                .map(|b| hex::encode(b))
                .collect::<Vec<_>>(),
            hex::encode_u32_be(self.version),
            hex::encode_u32_be(self.nbits),
            hex::encode_u32_be(self.ntime),
            self.clean_jobs
        ])
    }
}

/// What `client.reconnect` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// Host to reconnect to (absent: the same).
    pub host: Option<String>,
    /// Port to reconnect to (absent: the same).
    pub port: Option<u16>,
    /// Seconds to wait first.
    pub wait_s: u64,
}

/// A typed server-to-client request or notification.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `mining.notify`.
    Notify(Notify),
    /// `mining.set_difficulty`: share difficulty for jobs from the next notify on.
    SetDifficulty(f64),
    /// `mining.set_extranonce`: new extranonce1 and extranonce2 size from the next job on.
    SetExtranonce {
        /// New extranonce1.
        extranonce1: Vec<u8>,
        /// New extranonce2 size in bytes.
        extranonce2_size: usize,
    },
    /// `mining.set_version_mask` (BIP 310): the pool changed the rollable bits.
    SetVersionMask(u32),
    /// `client.reconnect`.
    Reconnect(Reconnect),
    /// `client.show_message`.
    ShowMessage(String),
    /// `client.get_version`: answer with our agent string.
    GetVersion,
    /// `mining.ping` (some pools): answer "pong".
    Ping,
    /// Anything else: logged and ignored (answered with an error if it has an id).
    Unknown(String),
}

impl ServerMessage {
    /// Types a request received by a client.
    pub fn from_request(r: &Request) -> Result<ServerMessage, MessageError> {
        let p = r.params.as_slice();
        Ok(match r.method.as_str() {
            "mining.notify" => ServerMessage::Notify(Notify::from_params(p)?),
            "mining.set_difficulty" => {
                let m = "mining.set_difficulty";
                let d = param(p, m, 0, "difficulty")?
                    .as_f64()
                    .filter(|d| d.is_finite() && *d > 0.0)
                    .ok_or_else(|| MessageError::BadParam {
                        method: m,
                        index: 0,
                        field: "difficulty",
                        why: "not a positive finite number".into(),
                    })?;
                ServerMessage::SetDifficulty(d)
            }
            "mining.set_extranonce" => {
                let m = "mining.set_extranonce";
                ServerMessage::SetExtranonce {
                    extranonce1: hex_param(p, m, 0, "extranonce1", MAX_EXTRANONCE1)?,
                    extranonce2_size: usize_param(p, m, 1, "extranonce2_size", MAX_EXTRANONCE2)?,
                }
            }
            "mining.set_version_mask" => {
                ServerMessage::SetVersionMask(word_param(p, "mining.set_version_mask", 0, "mask")?)
            }
            "client.reconnect" => {
                let m = "client.reconnect";
                let host = match p.first() {
                    Some(Value::String(s)) if !s.is_empty() => Some(name_param(p, m, 0, "host")?),
                    _ => None,
                };
                let port = match p.get(1) {
                    Some(Value::Number(n)) => Some(
                        n.as_u64()
                            .and_then(|n| u16::try_from(n).ok())
                            .ok_or_else(|| MessageError::BadParam {
                                method: m,
                                index: 1,
                                field: "port",
                                why: format!("{n} is not a port"),
                            })?,
                    ),
                    Some(Value::String(s)) if !s.is_empty() => {
                        Some(s.parse::<u16>().map_err(|_| MessageError::BadParam {
                            method: m,
                            index: 1,
                            field: "port",
                            why: "not a port number".into(),
                        })?)
                    }
                    _ => None,
                };
                let wait_s = match p.get(2) {
                    Some(Value::Number(n)) => n.as_u64().unwrap_or(0).min(3600),
                    Some(Value::String(s)) => s.parse::<u64>().unwrap_or(0).min(3600),
                    _ => 0,
                };
                ServerMessage::Reconnect(Reconnect { host, port, wait_s })
            }
            "client.show_message" => ServerMessage::ShowMessage(
                p.first()
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(1024)
                    .collect(),
            ),
            "client.get_version" => ServerMessage::GetVersion,
            "mining.ping" => ServerMessage::Ping,
            other => ServerMessage::Unknown(other.to_owned()),
        })
    }
}

/// What a `mining.subscribe` result gives the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResult {
    /// The connection's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 the client chooses.
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    /// Decodes `[subscriptions, extranonce1, extranonce2_size]`.
    pub fn from_result(v: &Value) -> Result<SubscribeResult, MessageError> {
        let bad = |why: &str| MessageError::BadResult {
            what: "mining.subscribe",
            why: why.into(),
        };
        let a = v.as_array().ok_or_else(|| bad("not an array"))?;
        let en1 = a
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| bad("extranonce1 missing"))?;
        let extranonce1 =
            hex::decode(en1, MAX_EXTRANONCE1).map_err(|e| bad(&format!("extranonce1: {e}")))?;
        let extranonce2_size = a
            .get(2)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= MAX_EXTRANONCE2)
            .ok_or_else(|| bad("extranonce2_size missing or too large"))?;
        Ok(SubscribeResult {
            extranonce1,
            extranonce2_size,
        })
    }
}

/// The version-rolling mask a `mining.configure` result grants, if any.
pub fn configure_result_mask(v: &Value) -> Result<Option<u32>, MessageError> {
    let Some(o) = v.as_object() else {
        return Err(MessageError::BadResult {
            what: "mining.configure",
            why: "not an object".into(),
        });
    };
    if o.get("version-rolling").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let mask = o
        .get("version-rolling.mask")
        .and_then(Value::as_str)
        .ok_or_else(|| MessageError::BadResult {
            what: "mining.configure",
            why: "version-rolling.mask missing".into(),
        })?;
    hex::decode_u32_be(mask)
        .map(Some)
        .map_err(|e| MessageError::BadResult {
            what: "mining.configure",
            why: format!("version-rolling.mask: {e}"),
        })
}

// ----- client -> server ------------------------------------------------------------------

/// A share as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Submit {
    /// Worker name.
    pub worker: String,
    /// The job it solves.
    pub job_id: String,
    /// The extranonce2 chosen.
    pub extranonce2: Vec<u8>,
    /// Header time as a number (sent big-endian hex).
    pub ntime: u32,
    /// Nonce as a number (sent big-endian hex).
    pub nonce: u32,
    /// BIP 310 rolled version bits, when rolling.
    pub version_bits: Option<u32>,
}

impl Submit {
    const M: &'static str = "mining.submit";

    /// The params array of `mining.submit`.
    pub fn to_params(&self) -> Value {
        let mut p = vec![
            json!(self.worker),
            json!(self.job_id),
            json!(hex::encode(&self.extranonce2)),
            json!(hex::encode_u32_be(self.ntime)),
            json!(hex::encode_u32_be(self.nonce)),
        ];
        if let Some(v) = self.version_bits {
            p.push(json!(hex::encode_u32_be(v)));
        }
        Value::Array(p)
    }

    /// Decodes `mining.submit` params.
    pub fn from_params(p: &[Value]) -> Result<Submit, MessageError> {
        let m = Self::M;
        Ok(Submit {
            worker: name_param(p, m, 0, "worker")?,
            job_id: name_param(p, m, 1, "job_id")?,
            extranonce2: hex_param(p, m, 2, "extranonce2", MAX_EXTRANONCE2)?,
            ntime: word_param(p, m, 3, "ntime")?,
            nonce: word_param(p, m, 4, "nonce")?,
            version_bits: match p.get(5) {
                None | Some(Value::Null) => None,
                Some(_) => Some(word_param(p, m, 5, "version_bits")?),
            },
        })
    }
}

/// A typed client-to-server request (what the pool server understands).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `mining.subscribe`.
    Subscribe,
    /// `mining.authorize`.
    Authorize {
        /// Worker name.
        worker: String,
        /// Password.
        password: String,
    },
    /// `mining.configure`: the extensions asked for and the version mask requested.
    Configure {
        /// Extension names.
        extensions: Vec<String>,
        /// `version-rolling.mask`, when asked.
        version_mask: Option<u32>,
    },
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// `mining.submit`.
    Submit(Submit),
    /// Anything else.
    Unknown(String),
}

impl ClientMessage {
    /// Types a request received by a pool.
    pub fn from_request(r: &Request) -> Result<ClientMessage, MessageError> {
        let p = r.params.as_slice();
        Ok(match r.method.as_str() {
            "mining.subscribe" => ClientMessage::Subscribe,
            "mining.authorize" => ClientMessage::Authorize {
                worker: name_param(p, "mining.authorize", 0, "worker")?,
                password: match p.get(1) {
                    Some(Value::String(_)) => name_param(p, "mining.authorize", 1, "password")?,
                    _ => String::new(),
                },
            },
            "mining.configure" => {
                let m = "mining.configure";
                let ext = param(p, m, 0, "extensions")?.as_array().ok_or_else(|| {
                    MessageError::BadParam {
                        method: m,
                        index: 0,
                        field: "extensions",
                        why: "not an array".into(),
                    }
                })?;
                let extensions = ext
                    .iter()
                    .filter_map(Value::as_str)
                    .take(16)
                    .map(|s| s.chars().take(64).collect())
                    .collect();
                let version_mask = match p.get(1).and_then(|o| o.get("version-rolling.mask")) {
                    Some(Value::String(s)) => {
                        Some(hex::decode_u32_be(s).map_err(|err| MessageError::BadHex {
                            method: m,
                            index: 1,
                            field: "version-rolling.mask",
                            err,
                        })?)
                    }
                    _ => None,
                };
                ClientMessage::Configure {
                    extensions,
                    version_mask,
                }
            }
            "mining.extranonce.subscribe" => ClientMessage::ExtranonceSubscribe,
            "mining.submit" => ClientMessage::Submit(Submit::from_params(p)?),
            other => ClientMessage::Unknown(other.to_owned()),
        })
    }
}

// ----- serialisation ---------------------------------------------------------------------

/// A request line (newline included).
pub fn request_line(id: &Id, method: &str, params: Value) -> String {
    line(json!({ "id": id.to_value(), "method": method, "params": params }))
}

/// A notification line: a request with a null id.
pub fn notification_line(method: &str, params: Value) -> String {
    request_line(&Id::Null, method, params)
}

/// A successful response line.
pub fn result_line(id: &Id, result: Value) -> String {
    line(json!({ "id": id.to_value(), "result": result, "error": Value::Null }))
}

/// An error response line, `[code, message, null]` as most pools send it.
pub fn error_line(id: &Id, code: i64, message: &str) -> String {
    line(
        json!({ "id": id.to_value(), "result": Value::Null, "error": [code, message, Value::Null] }),
    )
}

fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// The `mining.configure` params asking for version rolling with `mask`.
pub fn configure_params(mask: u32) -> Value {
    let mut o = Map::new();
    o.insert(
        "version-rolling.mask".into(),
        json!(hex::encode_u32_be(mask)),
    );
    o.insert("version-rolling.min-bit-count".into(), json!(2));
    json!([["version-rolling"], Value::Object(o)])
}
