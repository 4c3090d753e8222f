//! Serde for bounded byte buffers as byte strings.
//!
//! postcard writes a `heapless::Vec<u8, N>` as a sequence: a varint length and then each byte
//! through the serializer one call at a time. As a byte string the wire form is the same (varint
//! length, raw bytes) but it is copied in one move, which is what makes 60 KiB chunks cheap.
//! The deserializer also accepts a sequence, so self-describing formats (JSON) still work.

use heapless::Vec;
use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer, const N: usize>(v: &Vec<u8, N>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    d: D,
) -> Result<Vec<u8, N>, D::Error> {
    d.deserialize_bytes(BytesVisitor::<N>)
}

struct BytesVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for BytesVisitor<N> {
    type Value = Vec<u8, N>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "at most {N} bytes")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Vec::from_slice(v).map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b)
                .map_err(|_| A::Error::invalid_length(N + 1, &self))?;
        }
        Ok(out)
    }
}
