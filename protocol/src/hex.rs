//! Hex for keys and digests, as operators see them in config files and on the command line.

/// Writes `bytes` as lowercase hex into `out` (which must be twice as long); returns it as str.
pub fn encode_into<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    let n = (bytes.len() * 2).min(out.len());
    // Only ASCII digits were written.
    core::str::from_utf8(&out[..n]).unwrap_or("")
}

/// Why a hex string is not a key or digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// The string has the wrong number of digits.
    Length { expected: usize, got: usize },
    /// A character is not a hex digit (byte offset given).
    Digit { at: usize },
}

impl core::fmt::Display for HexError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HexError::Length { expected, got } => {
                write!(f, "expected {expected} hex digits, got {got}")
            }
            HexError::Digit { at } => write!(f, "not a hex digit at position {at}"),
        }
    }
}

/// Parses exactly `2 * N` hex digits (either case) into `N` bytes.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            got: s.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = digit(s[2 * i]).ok_or(HexError::Digit { at: 2 * i })?;
        let lo = digit(s[2 * i + 1]).ok_or(HexError::Digit { at: 2 * i + 1 })?;
        *o = hi << 4 | lo;
    }
    Ok(out)
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(feature = "std")]
/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> std::string::String {
    let mut out = std::vec![0u8; bytes.len() * 2];
    encode_into(bytes, &mut out).into()
}

#[cfg(feature = "std")]
/// The first four bytes of a key in hex: how log lines name a rig or a client.
pub fn short(key: &[u8]) -> std::string::String {
    encode(&key[..key.len().min(4)])
}
