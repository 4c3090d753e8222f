//! Encoding of values stored in the database (postcard), with typed errors.
//!
//! Everything read back from disk goes through [`decode`]: a corrupted or truncated value is a
//! [`CodecError`] naming what was being read, never a panic, and never an allocation larger than
//! the stored bytes (postcard reads lengths against the remaining input).

use serde::{de::DeserializeOwned, Serialize};

/// Why a stored value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The stored bytes are not a valid encoding of the expected type.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being decoded (type or table name).
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// The bytes decoded but were followed by unexpected trailing bytes.
    #[error("corrupt {what}: {extra} trailing bytes")]
    Trailing {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A value could not be encoded (never expected for the manager's own types).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's explanation.
        reason: String,
    },
}

/// Encodes `value` for storage.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|e| CodecError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes a stored value; the whole input must be consumed.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| CodecError::Corrupt {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}
