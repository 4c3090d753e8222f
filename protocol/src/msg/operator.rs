//! Messages between an operator's console client and a rig's network console
//! (`compushare console HOST --key FILE`, port 7734).
//!
//! The rig is the Noise responder and accepts only operator keys listed in its
//! `CONSOLE_KEYS`; anyone else gets `Refused` (the frozen first variant, as everywhere).
//! The operator speaks first with `Hello`; after `Welcome` each `Line` is answered by exactly
//! one `Reply` carrying the same request number.

use heapless::String;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use super::{ConsoleReply, Refusal};
use crate::limits::CONSOLE_LINE;
use crate::types::{Firmware, Name, PublicKey};

/// Everything an operator's client says to a rig. The first message is always `Hello`.
///
/// Variant order is part of the wire format: append, never reorder.
// No allocator in the core: the line lives inline, bounded by its capacity.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum OperatorToRig {
    /// First message; its first field is the protocol version.
    Hello { version: u16 },
    /// One console line (without its line ending).
    Line {
        request: u32,
        text: String<CONSOLE_LINE>,
    },
}

/// Everything a rig says to an operator's client.
///
/// Variant 0 (`Refused`) and the layout of [`Refusal`] are frozen across protocol versions.
/// Append, never reorder.
// No allocator in the core: the reply lives inline, bounded by its capacity.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum RigToOperator {
    /// The session is refused (unknown version, key not in `CONSOLE_KEYS`, too many
    /// sessions); the rig closes it.
    Refused(Refusal),
    /// The operator is accepted.
    Welcome(OperatorWelcome),
    /// The answer to one `Line`.
    Reply(ConsoleReply),
}

/// What a rig tells an accepted operator about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct OperatorWelcome {
    /// The version the session will speak.
    pub version: u16,
    /// The rig's name (`RIG_NAME`).
    pub name: Name,
    pub firmware: Firmware,
    /// The rig's static key: the same the handshake proved, stated so that a client that
    /// did not pin it can show it for pinning next time.
    pub key: PublicKey,
}
