//! Hex text <-> bytes for Stratum fields, with errors that say what was wrong.

use thiserror::Error;

/// Why a hex field could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HexError {
    /// The text has an odd number of digits.
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    /// A character is not a hex digit.
    #[error("not a hex digit at position {0}")]
    BadDigit(usize),
    /// The decoded length is not the one the field needs.
    #[error("expected {expected} bytes, got {got}")]
    WrongLength {
        /// Bytes the field must have.
        expected: usize,
        /// Bytes the text encodes.
        got: usize,
    },
    /// The field is longer than this decoder accepts.
    #[error("{got} bytes is more than the limit of {limit}")]
    TooLong {
        /// Bytes the text encodes.
        got: usize,
        /// The most this field may hold.
        limit: usize,
    },
}

fn nibble(c: u8, pos: usize) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError::BadDigit(pos)),
    }
}

/// Decodes hex text of at most `limit` bytes.
pub fn decode(text: &str, limit: usize) -> Result<Vec<u8>, HexError> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(HexError::OddLength(b.len()));
    }
    if b.len() / 2 > limit {
        return Err(HexError::TooLong {
            got: b.len() / 2,
            limit,
        });
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0], 2 * i)?;
        let lo = nibble(pair[1], 2 * i + 1)?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

/// Decodes hex text of exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    if text.len() != 2 * N {
        if !text.len().is_multiple_of(2) {
            return Err(HexError::OddLength(text.len()));
        }
        return Err(HexError::WrongLength {
            expected: N,
            got: text.len() / 2,
        });
    }
    let v = decode(text, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

/// Decodes an 8-digit big-endian hex word (version, nbits, ntime, nonce on the wire).
pub fn decode_u32_be(text: &str) -> Result<u32, HexError> {
    decode_array::<4>(text).map(u32::from_be_bytes)
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The 8-digit big-endian hex form of a 32-bit word.
pub fn encode_u32_be(v: u32) -> String {
    encode(&v.to_be_bytes())
}
