//! The messages of the system, one enum per direction, and their postcard codec.
//!
//! Every enum's largest encoding is known at compile time (postcard's `MaxSize`) and checked
//! below against [`MAX_MESSAGE`], so a sealed message always fits one frame. The first message
//! of every session is a `Hello` whose first field is the protocol version: [`peek_version`]
//! reads it before anything else, so a peer of another version gets a [`Refusal`] that says so
//! instead of a decode error.

mod admin;
mod canonical;
mod client;
mod manager;
mod operator;
mod record;
mod rig;

pub use admin::{
    AdminError, AdminToManager, AuditRecord, FarmSummary, JobFilter, JobSummary, LedgerReport,
    ManagerToAdmin, NodeSettings, RigSummary, Scope, SettingsChange, SheetState, ADMIN_DOOR,
};
pub use client::{ClientToManager, ErrorCode, JobState, JobStatus, ManagerToClient, SubmitJob};
pub use manager::{AckStatus, Assign, ManagerToRig, Offer, Welcome};
pub use operator::{OperatorToRig, OperatorWelcome, RigToOperator};
pub use record::{
    ErrorCounts, PublicRecord, RatingOutcome, RatingSummary, ReturnStats, RigErrorKind,
    RigStanding, TrustEvent, TrustEventKind,
};
pub use rig::{
    Bid, ConsoleReply, CostStats, Heartbeat, HistoryProof, PaymentClaim, RejectReason,
    ResultCommit, RigHello, RigToManager, SampleProof,
};

use heapless::String;
pub use postcard::experimental::max_size::MaxSize;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::limits::{MAX_MESSAGE, REASON_LEN};

/// The protocol version this build speaks.
///
/// 2: flight sheets (`RigHello` carries the farm key and the sheet held; `ManagerToRig::Sheet`,
/// `RigToManager::SheetApplied`/`SheetRefused` appended) and the admin family
/// (`AdminToManager`, `ManagerToAdmin`).
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest version this build still accepts: a version-1 rig's `Hello` has another layout,
/// so it is told `UNSUPPORTED_VERSION` in the frozen `Refused`.
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// Why a session was turned away. Frozen layout: readable by every protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Refusal {
    /// One of the [`refusal`] codes (a number, not an enum, so that old peers can read codes
    /// added later).
    pub code: u16,
    /// The versions the refusing side accepts.
    pub min_version: u16,
    pub max_version: u16,
    pub reason: String<REASON_LEN>,
}

/// Refusal codes.
pub mod refusal {
    /// The peer's protocol version is outside `[min_version, max_version]`.
    pub const UNSUPPORTED_VERSION: u16 = 1;
    /// The peer's identity is not allowed (banned, or unknown where registration is required).
    pub const NOT_ALLOWED: u16 = 2;
    /// The first message was not a `Hello`, or the session broke the protocol.
    pub const PROTOCOL: u16 = 3;
    /// The node is shutting down or overloaded; try again later.
    pub const UNAVAILABLE: u16 = 4;
}

impl Refusal {
    /// A refusal with this build's version range.
    pub fn new(code: u16, reason: &str) -> Self {
        Refusal {
            code,
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            // As much of the reason as fits, cut at a character boundary.
            reason: crate::types::bounded(reason),
        }
    }
}

/// A message enum of one direction.
pub trait Message: Serialize + DeserializeOwned + MaxSize {
    /// Name used in errors and logs.
    const NAME: &'static str;
}

impl Message for RigToManager {
    const NAME: &'static str = "RigToManager";
}
impl Message for ManagerToRig {
    const NAME: &'static str = "ManagerToRig";
}
impl Message for ClientToManager {
    const NAME: &'static str = "ClientToManager";
}
impl Message for ManagerToClient {
    const NAME: &'static str = "ManagerToClient";
}
impl Message for OperatorToRig {
    const NAME: &'static str = "OperatorToRig";
}
impl Message for RigToOperator {
    const NAME: &'static str = "RigToOperator";
}
impl Message for AdminToManager {
    const NAME: &'static str = "AdminToManager";
}
impl Message for ManagerToAdmin {
    const NAME: &'static str = "ManagerToAdmin";
}

// Every message, sealed, fits one frame: checked when the crate compiles.
const _: () = assert!(RigToManager::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(ManagerToRig::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(ClientToManager::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(ManagerToClient::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(OperatorToRig::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(RigToOperator::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(AdminToManager::POSTCARD_MAX_SIZE <= MAX_MESSAGE);
const _: () = assert!(ManagerToAdmin::POSTCARD_MAX_SIZE <= MAX_MESSAGE);

/// Why bytes could not become a message, or a message could not become bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The output buffer is smaller than the encoding (give it `M::POSTCARD_MAX_SIZE`).
    BufferTooSmall,
    /// The bytes are not a valid encoding of the message type named.
    Malformed { message: &'static str },
    /// The bytes decode, but are not the one canonical encoding of their value (for example
    /// an overlong varint): refused so that every message has exactly one byte form.
    NonCanonical { message: &'static str },
    /// A valid message was followed by extra bytes.
    TrailingBytes { message: &'static str, extra: usize },
    /// The bytes are longer than any message of the type could be.
    TooLong {
        message: &'static str,
        len: usize,
        max: usize,
    },
    /// The first message of a session was not a `Hello`.
    NotHello,
    /// The peer speaks a protocol version this build does not accept.
    UnsupportedVersion { got: u16, min: u16, max: u16 },
}

impl core::fmt::Display for CodecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CodecError::BufferTooSmall => write!(f, "encode buffer too small"),
            CodecError::Malformed { message } => write!(f, "malformed {message} message"),
            CodecError::NonCanonical { message } => {
                write!(f, "non-canonical encoding of a {message} message")
            }
            CodecError::TrailingBytes { message, extra } => {
                write!(f, "{extra} unexpected bytes after a {message} message")
            }
            CodecError::TooLong { message, len, max } => {
                write!(
                    f,
                    "{len}-byte {message} message exceeds its maximum of {max} bytes"
                )
            }
            CodecError::NotHello => write!(f, "the first message of a session must be Hello"),
            CodecError::UnsupportedVersion { got, min, max } => write!(
                f,
                "peer speaks protocol version {got}; this build accepts versions {min} to {max}"
            ),
        }
    }
}

/// Encodes `msg` into `buf`, returning the bytes written.
pub fn encode<'b, M: Message>(msg: &M, buf: &'b mut [u8]) -> Result<&'b mut [u8], CodecError> {
    postcard::to_slice(msg, buf).map_err(|_| CodecError::BufferTooSmall)
}

/// Decodes exactly one message from `bytes` (trailing bytes are an error: a frame holds one
/// message and nothing else).
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, CodecError> {
    if bytes.len() > M::POSTCARD_MAX_SIZE {
        return Err(CodecError::TooLong {
            message: M::NAME,
            len: bytes.len(),
            max: M::POSTCARD_MAX_SIZE,
        });
    }
    let (msg, rest) = postcard::take_from_bytes::<M>(bytes)
        .map_err(|_| CodecError::Malformed { message: M::NAME })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            message: M::NAME,
            extra: rest.len(),
        });
    }
    if !canonical::matches(&msg, bytes) {
        return Err(CodecError::NonCanonical { message: M::NAME });
    }
    Ok(msg)
}

/// [`decode`] straight onto the heap, in a frame of its own.
///
/// A message enum whose largest variant holds a chunk inline is ~60 KiB. Decoded by value
/// inside an async fn it is copied through the future's frames and may be held in its state;
/// and matching such a value there is where rustc 1.95's jump threading once miscompiled a
/// variant read (BENCHMARKS.md). Never inlined, so the by-value decode stays out of callers.
#[cfg(feature = "std")]
#[inline(never)]
pub fn decode_boxed<M: Message>(bytes: &[u8]) -> Result<std::boxed::Box<M>, CodecError> {
    decode(bytes).map(std::boxed::Box::new)
}

/// Reads the protocol version from the first message of a session (a `RigToManager::Hello`,
/// `ClientToManager::Hello`, `OperatorToRig::Hello` or `AdminToManager::Hello`) without decoding the rest, whose layout may be another
/// version's.
pub fn peek_version(bytes: &[u8]) -> Result<u16, CodecError> {
    let (tag, rest) = read_varint(bytes).ok_or(CodecError::NotHello)?;
    if tag != 0 {
        return Err(CodecError::NotHello);
    }
    let (version, _) = read_varint(rest).ok_or(CodecError::NotHello)?;
    u16::try_from(version).map_err(|_| CodecError::NotHello)
}

/// Checks a peer's version against the range this build accepts.
pub fn check_version(version: u16) -> Result<(), CodecError> {
    if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(CodecError::UnsupportedVersion {
            got: version,
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        })
    }
}

/// Decodes the first message of a session: checks its version first, then decodes it.
pub fn decode_hello<M: Message>(bytes: &[u8]) -> Result<M, CodecError> {
    check_version(peek_version(bytes)?)?;
    decode(bytes)
}

/// Reads a postcard (LEB128) varint of at most 32 bits.
fn read_varint(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        let part = u32::from(b & 0x7f);
        if i == 4 && part > 0x0f {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_varint_is_refused() {
        // Hello { version: 1 } is [0, 1]; [0, 0x81, 0x00] decodes to the same value.
        assert_eq!(
            decode::<ClientToManager>(&[0, 1]),
            Ok(ClientToManager::Hello { version: 1 })
        );
        assert_eq!(
            decode::<ClientToManager>(&[0, 0x81, 0x00]),
            Err(CodecError::NonCanonical {
                message: "ClientToManager"
            })
        );
    }

    #[test]
    fn version_is_read_before_the_rest() {
        // A version-9 Hello whose body this build could not decode still yields its version.
        let bytes = [0, 9, 0xff, 0xff, 0xff];
        assert_eq!(peek_version(&bytes), Ok(9));
        assert_eq!(
            decode_hello::<RigToManager>(&bytes),
            Err(CodecError::UnsupportedVersion {
                got: 9,
                min: MIN_PROTOCOL_VERSION,
                max: PROTOCOL_VERSION
            })
        );
        assert_eq!(peek_version(&[1, 1]), Err(CodecError::NotHello));
        assert_eq!(
            peek_version(&[0, 0x80, 0x80, 0x04]),
            Err(CodecError::NotHello)
        ); // > u16
        assert_eq!(peek_version(&[]), Err(CodecError::NotHello));
        assert_eq!(
            decode::<ClientToManager>(&[0, 1, 0]),
            Err(CodecError::TrailingBytes {
                message: "ClientToManager",
                extra: 1
            })
        );
    }

    #[test]
    fn refusal_reason_is_cut_at_a_character_boundary() {
        let long = "é".repeat(400);
        let r = Refusal::new(refusal::PROTOCOL, &long);
        assert_eq!(r.reason.len(), 256);
        assert!(r.reason.chars().all(|c| c == 'é'));
    }
}
