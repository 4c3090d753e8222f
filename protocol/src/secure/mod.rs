//! The secure channel: Noise XX (25519 / ChaChaPoly / SHA256) with pinned manager keys.
//!
//! Every rig, client and manager has a static X25519 identity ([`Identity`]). The initiator (a
//! rig or client) pins the manager's public key and aborts the handshake, with an error that
//! names both keys, when the manager proves another one. The responder learns the initiator's
//! static key, which is its identity. After the handshake each frame is one ChaCha20-Poly1305
//! sealed message under an implicit, strictly increasing nonce, so a replayed, reordered,
//! dropped or altered frame fails authentication and poisons the session.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

mod channel;
mod cipher;
mod error;
mod identity;
pub mod net;
pub mod seal;

pub use channel::{accept, connect, connect_unpinned, SecureChannel, SecureReader, SecureWriter};
pub use error::ChannelError;
pub use identity::{Identity, KeyError};

/// The Noise protocol name; changing it changes every handshake.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Bound into every handshake so that a CompuShare session cannot be confused with another
/// protocol's Noise session using the same keys.
pub const PROLOGUE: &[u8] = b"compushare/1";
