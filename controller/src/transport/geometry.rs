//! Fetching a job's geometry: reassembly of `GeometryChunk`s into a bounded buffer, the
//! content-address check, and parsing into a job.
//!
//! The geometry is the job's bundle (MCX JSON plus the label volume the client attached, see
//! `compushare_kernels::transport::input::bundle`). It is parsed with `parse_bundle`, which
//! takes volumes only from the bundle: a `Domain.VolumeFile` never names a file on the rig.
//!
//! The buffer is sized once from the announced length (which the caller bounds by
//! `max_geometry_bytes`); chunks must sit where the sender's `Chunker` puts them, so a peer
//! can neither grow the buffer nor write outside it.

use std::sync::Arc;

use compushare_kernels::transport::input::{parse_bundle, ParseOptions};
use compushare_kernels::transport::job::Job;
use compushare_protocol::chunk::{content_address, Chunk};
use compushare_protocol::limits::CHUNK_DATA;
use compushare_protocol::types::Digest;

/// Why a chunk was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The chunk names another payload or another length.
    #[error("chunk of another payload or length")]
    WrongPayload,
    /// The chunk is not where the chunker would have put it.
    #[error("chunk at offset {offset} ({len} bytes) does not fit the payload")]
    Misplaced { offset: u32, len: usize },
}

/// Geometry being reassembled.
#[derive(Debug)]
pub struct Fetch {
    content: Digest,
    total_len: u32,
    buf: Vec<u8>,
    seen: Vec<bool>,
    missing: usize,
}

impl Fetch {
    /// Starts a fetch of `len` bytes named `content` (the caller bounds `len`).
    pub fn new(content: Digest, len: u32) -> Self {
        let chunks = (len as usize).div_ceil(CHUNK_DATA).max(1);
        Fetch {
            content,
            total_len: len,
            buf: vec![0; len as usize],
            seen: vec![false; chunks],
            missing: chunks,
        }
    }

    /// Takes one chunk; `Ok(true)` once every chunk has arrived.
    pub fn accept(&mut self, c: &Chunk) -> Result<bool, FetchError> {
        if c.content != self.content || c.total_len != self.total_len {
            return Err(FetchError::WrongPayload);
        }
        let len = c.data.len();
        let off = c.offset as usize;
        let total = self.total_len as usize;
        // Every chunk but the last is full; the last ends exactly at the payload's end.
        let placed = off.is_multiple_of(CHUNK_DATA)
            && (off < total || total == 0)
            && off.checked_add(len) == Some(off.saturating_add(CHUNK_DATA).min(total));
        let bad = FetchError::Misplaced {
            offset: c.offset,
            len,
        };
        let dst = placed
            .then(|| self.buf.get_mut(off..off + len))
            .flatten()
            .ok_or(bad)?;
        dst.copy_from_slice(&c.data);
        if let Some(s) = self.seen.get_mut(off / CHUNK_DATA) {
            if !*s {
                *s = true;
                self.missing = self.missing.saturating_sub(1);
            }
        }
        Ok(self.missing == 0)
    }

    /// Checks the complete payload against its content address and parses it (heavy for a
    /// large volume: call on a blocking thread).
    pub fn into_job(self) -> Result<Arc<Job>, String> {
        if self.missing > 0 {
            return Err(format!(
                "geometry incomplete: {} chunks missing",
                self.missing
            ));
        }
        if content_address(&self.buf) != self.content {
            return Err("geometry does not match its content address".to_owned());
        }
        // The assignment's seed and photon range replace the JSON's; Photons may be absent.
        let opts = ParseOptions {
            photons: Some(1),
            ..ParseOptions::default()
        };
        parse_bundle(&self.buf, &opts)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }
}
