//! Large payloads (geometry, job input, sealed results) split into content-addressed chunks.
//!
//! A payload is named by the SHA-256 of its bytes. Each [`Chunk`] carries that name, the
//! payload's total length and its own offset, so chunks may arrive in any order and a receiver
//! can check each one on arrival. [`Reassembler`], the workspace's one reassembler, writes into a
//! caller-provided buffer (it never allocates) or into memory that grows only as bytes arrive,
//! rejects anything that does not fit, and checks the whole against its name.

use heapless::Vec;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::limits::{CHUNK_DATA, MAX_PAYLOAD};
use crate::types::Digest;

/// One piece of a content-addressed payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Chunk {
    /// SHA-256 of the whole payload.
    pub content: Digest,
    /// Length of the whole payload, bytes.
    pub total_len: u32,
    /// Offset of `data` in the payload; a multiple of [`CHUNK_DATA`].
    pub offset: u32,
    #[serde(with = "crate::bytes")]
    pub data: Vec<u8, CHUNK_DATA>,
}

/// SHA-256 of a payload: its content address.
pub fn content_address(payload: &[u8]) -> Digest {
    Sha256::digest(payload).into()
}

/// Number of chunks a payload of `len` bytes is split into (an empty payload is one chunk).
pub fn chunk_count(len: u32) -> u32 {
    len.div_ceil(CHUNK_DATA as u32).max(1)
}

/// Why a payload cannot be chunked or a chunk cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The payload is longer than [`MAX_PAYLOAD`] or than the receiver's buffer.
    TooLarge { len: u32, capacity: u32 },
    /// The chunk belongs to another payload than the one being reassembled.
    WrongContent,
    /// The chunk's total length differs from the one being reassembled.
    LengthChanged { expected: u32, got: u32 },
    /// The offset is not on a chunk boundary, or the data runs past the end, or a non-final
    /// chunk is short.
    BadPlacement { offset: u32, len: u32 },
    /// Every chunk arrived but the bytes do not hash to the payload's name.
    DigestMismatch,
}

impl core::error::Error for ChunkError {}

impl core::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChunkError::TooLarge { len, capacity } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the limit of {capacity} bytes"
                )
            }
            ChunkError::WrongContent => write!(f, "chunk belongs to a different payload"),
            ChunkError::LengthChanged { expected, got } => {
                write!(
                    f,
                    "chunk says the payload is {got} bytes, earlier chunks said {expected}"
                )
            }
            ChunkError::BadPlacement { offset, len } => {
                write!(
                    f,
                    "chunk of {len} bytes at offset {offset} does not fit the payload"
                )
            }
            ChunkError::DigestMismatch => {
                write!(f, "reassembled payload does not match its SHA-256")
            }
        }
    }
}

/// Splits a payload into chunks, in order.
pub struct Chunker<'a> {
    payload: &'a [u8],
    content: Digest,
    next: usize,
    done: bool,
}

impl<'a> Chunker<'a> {
    /// Prepares to chunk `payload`, hashing it once.
    pub fn new(payload: &'a [u8]) -> Result<Self, ChunkError> {
        Self::with_content(payload, content_address(payload))
    }

    /// Prepares to chunk `payload` whose content address the caller already holds (computed
    /// by [`content_address`] when the payload was received), so a payload sent many times
    /// is hashed once. A wrong `content` makes every receiver refuse the reassembled payload.
    pub fn with_content(payload: &'a [u8], content: Digest) -> Result<Self, ChunkError> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        if len > MAX_PAYLOAD {
            return Err(ChunkError::TooLarge {
                len,
                capacity: MAX_PAYLOAD,
            });
        }
        Ok(Chunker {
            payload,
            content,
            next: 0,
            done: false,
        })
    }

    /// The payload's content address.
    pub fn content(&self) -> Digest {
        self.content
    }
}

impl Iterator for Chunker<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.done {
            return None;
        }
        let start = self.next;
        let end = (start + CHUNK_DATA).min(self.payload.len());
        self.next = end;
        self.done = end >= self.payload.len();
        let mut data = Vec::new();
        // The slice is at most CHUNK_DATA long, so it always fits.
        let _ = data.extend_from_slice(&self.payload[start..end]);
        Some(Chunk {
            content: self.content,
            // Both fit: `new` checked the payload against MAX_PAYLOAD.
            total_len: self.payload.len() as u32,
            offset: start as u32,
            data,
        })
    }
}

/// Where a [`Reassembler`] keeps the bytes of a payload: a caller's fixed buffer
/// ([`Borrowed`], no allocation: the rig's vault and embedded receivers) or memory that grows
/// only with the bytes that arrived ([`Growing`], feature `std`: the manager's uploads, the
/// client's results, the rig's geometry). The reassembler checks every chunk's name, length and
/// placement before the storage sees it; the storage places the data and says whether the
/// chunk is new.
pub trait Storage {
    /// Bytes this storage can ever hold.
    fn capacity(&self) -> u32;
    /// Places `data` (a chunk the reassembler checked) as chunk number `index`, at `offset`.
    /// Returns whether it was not seen before (a retransmission overwrites the same bytes).
    fn place(&mut self, index: usize, offset: usize, data: &[u8]) -> Result<bool, ChunkError>;
    /// The first `len` bytes (all of them placed once every chunk is in).
    fn bytes(&self, len: usize) -> &[u8];
}

/// A caller's buffer and chunk bitmap (see [`Reassembler::new`]).
pub struct Borrowed<'b> {
    buf: &'b mut [u8],
    /// One bit per chunk received.
    received: &'b mut [u8],
}

impl Storage for Borrowed<'_> {
    fn capacity(&self) -> u32 {
        let chunks = self.received.len().saturating_mul(8);
        let by_bitmap = chunks.saturating_mul(CHUNK_DATA);
        u32::try_from(self.buf.len().min(by_bitmap)).unwrap_or(u32::MAX)
    }

    fn place(&mut self, index: usize, offset: usize, data: &[u8]) -> Result<bool, ChunkError> {
        let bad = ChunkError::BadPlacement {
            offset: offset as u32,
            len: data.len() as u32,
        };
        let (byte, bit) = (index / 8, 1u8 << (index % 8));
        let flags = self.received.get_mut(byte).ok_or(bad)?;
        let dst = self.buf.get_mut(offset..offset + data.len()).ok_or(bad)?;
        dst.copy_from_slice(data);
        let new = *flags & bit == 0;
        *flags |= bit;
        Ok(new)
    }

    fn bytes(&self, len: usize) -> &[u8] {
        &self.buf[..len.min(self.buf.len())]
    }
}

/// Memory that grows with what arrived, never with what a peer announced: the chunks received
/// in order are appended to one buffer; a chunk that arrives early waits on its own until the
/// buffer reaches it. Either way the memory held is the bytes received (the senders in this
/// workspace send in order, so nothing waits and nothing is copied twice).
#[cfg(feature = "std")]
pub struct Growing {
    /// The payload's first bytes, every chunk up to the first missing one.
    prefix: std::vec::Vec<u8>,
    /// Chunks past the first missing one, by offset.
    early: std::collections::BTreeMap<usize, std::vec::Vec<u8>>,
    /// Most bytes accepted (the caller's bound, checked against the announced length).
    max: u32,
}

#[cfg(feature = "std")]
impl Storage for Growing {
    fn capacity(&self) -> u32 {
        self.max
    }

    fn place(&mut self, _index: usize, offset: usize, data: &[u8]) -> Result<bool, ChunkError> {
        let have = self.prefix.len();
        if offset < have {
            // Below the prefix: a retransmission (the reassembler checked its placement).
            let end = (offset + data.len()).min(have);
            self.prefix[offset..end].copy_from_slice(&data[..end - offset]);
            return Ok(false);
        }
        if offset > have {
            return Ok(self.early.insert(offset, data.to_vec()).is_none());
        }
        self.prefix.extend_from_slice(data);
        // The chunks that waited for this one follow it now.
        while let Some(next) = self.early.remove(&self.prefix.len()) {
            self.prefix.extend_from_slice(&next);
        }
        Ok(true)
    }

    fn bytes(&self, len: usize) -> &[u8] {
        &self.prefix[..len.min(self.prefix.len())]
    }
}

/// Reassembles one payload into a [`Storage`].
///
/// Chunks may arrive in any order; each is checked on arrival (its payload's name and length,
/// its place: every chunk but the last is full and on a chunk boundary). Duplicated chunks are
/// accepted if identical in placement (a retransmission overwrites the same bytes);
/// completeness is tracked per chunk, and the digest decides at the end. This is the
/// workspace's one reassembler (like smoltcp's one `Assembler` for TCP and IP fragments).
pub struct Reassembler<S> {
    storage: S,
    content: Digest,
    total_len: u32,
    missing: u32,
}

impl<S> core::fmt::Debug for Reassembler<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reassembler")
            .field("total_len", &self.total_len)
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl<'b> Reassembler<Borrowed<'b>> {
    /// Bytes of bitmap needed for a buffer of `capacity` bytes.
    pub const fn bitmap_len(capacity: usize) -> usize {
        let bytes = capacity.div_ceil(CHUNK_DATA).div_ceil(8);
        if bytes == 0 {
            1
        } else {
            bytes
        }
    }

    /// Starts reassembling the payload named `content` of `total_len` bytes into `buf`, using
    /// `bitmap` (at least [`Self::bitmap_len`]`(buf.len())` bytes) to track chunks. Nothing is
    /// allocated.
    pub fn new(
        buf: &'b mut [u8],
        bitmap: &'b mut [u8],
        content: Digest,
        total_len: u32,
    ) -> Result<Self, ChunkError> {
        bitmap.fill(0);
        Reassembler::with_storage(
            Borrowed {
                buf,
                received: bitmap,
            },
            content,
            total_len,
        )
    }
}

#[cfg(feature = "std")]
impl Reassembler<Growing> {
    /// Starts reassembling the payload named `content` that its sender says is `total_len`
    /// bytes, refused at once above `max` (the receiver's bound for this payload). Memory
    /// grows only as chunks arrive: an announced length allocates nothing.
    pub fn growing(content: Digest, total_len: u32, max: u32) -> Result<Self, ChunkError> {
        Reassembler::with_storage(
            Growing {
                prefix: std::vec::Vec::new(),
                early: std::collections::BTreeMap::new(),
                max,
            },
            content,
            total_len,
        )
    }

    /// The payload (complete once [`Reassembler::accept`] returned `Ok(true)`).
    pub fn into_payload(self) -> std::vec::Vec<u8> {
        self.storage.prefix
    }

    /// Bytes held now (received, in order or not).
    pub fn held(&self) -> usize {
        self.storage.prefix.len() + self.storage.early.values().map(|c| c.len()).sum::<usize>()
    }
}

impl<S: Storage> Reassembler<S> {
    /// Starts reassembling into `storage`; refused when the payload is longer than it or than
    /// [`MAX_PAYLOAD`].
    pub fn with_storage(storage: S, content: Digest, total_len: u32) -> Result<Self, ChunkError> {
        let capacity = storage.capacity().min(MAX_PAYLOAD);
        if total_len > capacity {
            return Err(ChunkError::TooLarge {
                len: total_len,
                capacity,
            });
        }
        Ok(Reassembler {
            storage,
            content,
            total_len,
            missing: chunk_count(total_len),
        })
    }

    /// Accepts one chunk. Returns `Ok(true)` once the payload is complete and verified.
    pub fn accept(&mut self, chunk: &Chunk) -> Result<bool, ChunkError> {
        if chunk.content != self.content {
            return Err(ChunkError::WrongContent);
        }
        if chunk.total_len != self.total_len {
            return Err(ChunkError::LengthChanged {
                expected: self.total_len,
                got: chunk.total_len,
            });
        }
        let len = chunk.data.len() as u32;
        let bad = ChunkError::BadPlacement {
            offset: chunk.offset,
            len,
        };
        if !chunk.offset.is_multiple_of(CHUNK_DATA as u32) {
            return Err(bad);
        }
        let end = chunk.offset.checked_add(len).ok_or(bad)?;
        // Every chunk but the last is full; the last ends exactly at the payload's end.
        let expected_end = chunk
            .offset
            .saturating_add(CHUNK_DATA as u32)
            .min(self.total_len);
        if end != expected_end || (chunk.offset >= self.total_len && self.total_len != 0) {
            return Err(bad);
        }
        let index = (chunk.offset / CHUNK_DATA as u32) as usize;
        if self.missing == 0 {
            // Complete already: a late retransmission changes nothing.
            return Ok(true);
        }
        if self
            .storage
            .place(index, chunk.offset as usize, &chunk.data)?
        {
            self.missing -= 1;
        }
        if self.missing > 0 {
            return Ok(false);
        }
        if content_address(self.payload()) != self.content {
            return Err(ChunkError::DigestMismatch);
        }
        Ok(true)
    }

    /// Chunks still missing.
    pub fn missing(&self) -> u32 {
        self.missing
    }

    /// The payload's name.
    pub fn content(&self) -> Digest {
        self.content
    }

    /// The payload bytes (complete once `accept` returned `Ok(true)`).
    pub fn payload(&self) -> &[u8] {
        self.storage.bytes(self.total_len as usize)
    }
}
