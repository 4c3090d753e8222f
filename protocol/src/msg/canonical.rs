//! Checks that received bytes are the canonical encoding of what they decoded to.
//!
//! postcard accepts overlong varints, so without this check one message could travel in many
//! byte forms. The check re-serialises the decoded value into a flavor that compares each byte
//! with the input as it goes: no buffer, no allocation, stops at the first difference.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
}

impl Flavor for Compare<'_> {
    type Output = bool;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.pos + data.len();
        match self.expected.get(self.pos..end) {
            Some(same) if same == data => {
                self.pos = end;
                Ok(())
            }
            // Any error stops serialisation; which one does not matter here.
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.pos == self.expected.len())
    }
}

/// True when serialising `value` yields exactly `bytes`.
pub fn matches<T: Serialize>(value: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(
        value,
        Compare {
            expected: bytes,
            pos: 0,
        },
    )
    .unwrap_or(false)
}
