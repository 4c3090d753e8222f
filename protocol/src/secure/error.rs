//! Errors of the secure channel.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use crate::frame::FrameError;
use crate::hex;
use crate::msg::CodecError;
use crate::types::PublicKey;

/// Why a secure session failed. Every variant but `Codec` closes the session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The transport failed (connection reset, refused, ...).
    #[error("network error: {0:?}")]
    Io(embedded_io::ErrorKind),
    /// The peer closed the connection between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the connection inside a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// A frame of length 0 arrived.
    #[error("peer sent an empty frame")]
    EmptyFrame,
    /// A frame to send was empty or longer than 65,535 bytes.
    #[error("frame of {0} bytes cannot be sent")]
    FrameLength(usize),
    /// The handshake (or a read during it) did not finish in time.
    #[error("handshake timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The manager proved a static key other than the pinned one.
    #[error("manager key mismatch: pinned {}, but the manager proved {}", hex::encode(.expected), hex::encode(.got))]
    WrongPeerKey { expected: PublicKey, got: PublicKey },
    /// A handshake message was malformed or failed authentication.
    #[error("Noise handshake failed: {0}")]
    Handshake(String),
    /// A sealed frame failed authentication: altered, replayed, reordered or dropped frames
    /// all end here. The session is unusable afterwards.
    #[error("sealed frame failed authentication (altered, replayed or reordered); session closed")]
    Decrypt,
    /// An earlier error poisoned this session.
    #[error("session already failed")]
    Poisoned,
    /// The frame decrypted but did not decode as the expected message.
    #[error("{0}")]
    Codec(CodecError),
    /// 2^64 - 1 frames were sent in one session.
    #[error("nonce space exhausted; reconnect")]
    NonceExhausted,
}

impl<E: embedded_io::Error> From<FrameError<E>> for ChannelError {
    fn from(e: FrameError<E>) -> Self {
        match e {
            FrameError::Closed => ChannelError::Closed,
            FrameError::Truncated => ChannelError::Truncated,
            FrameError::Empty => ChannelError::EmptyFrame,
            FrameError::BadLength(n) => ChannelError::FrameLength(n),
            FrameError::Io(e) => ChannelError::Io(e.kind()),
        }
    }
}

impl From<CodecError> for ChannelError {
    fn from(e: CodecError) -> Self {
        ChannelError::Codec(e)
    }
}
