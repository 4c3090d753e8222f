//! Decoding of the canonical tally encoding (the inverse of `Tally::canonical_bytes`).
//!
//! Tallies travel between machines (a rig's result sealed for the manager, the merged result
//! sealed for the client), so this decoder takes bytes from the network: it checks every length
//! against the bytes actually present before allocating, refuses trailing bytes, and refuses
//! detected photons out of ascending order (the encoding is canonical, so one value has exactly
//! one byte form and `from_canonical_bytes(b)?.canonical_bytes() == b`).

use super::tally::{DetectedPhoton, Tally};

/// The magic bytes that open every canonical tally.
const MAGIC: &[u8; 16] = b"compushare-tally";
/// The only format version written today.
const FORMAT: u32 = 1;
/// Bytes of a detected photon without its path list.
const DETECTED_FIXED: usize = 8 + 2 + 4 + 4 + 6 * 4 + 8;

/// Why bytes are not a canonical tally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyCodecError {
    /// The bytes do not start with `compushare-tally`.
    #[error("not a canonical tally (bad magic)")]
    BadMagic,
    /// The format version is not one this build reads.
    #[error("tally format version {0} is not supported (expected 1)")]
    Version(u32),
    /// The bytes end inside the named field.
    #[error("tally truncated in field `{field}` at byte {offset}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// A count announces more items than the remaining bytes can hold.
    #[error("tally field `{field}` announces {count} items, more than the {remaining} bytes left can hold")]
    CountTooLarge {
        /// The count's field.
        field: &'static str,
        /// The announced count.
        count: u64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// Detected photons are not in strictly ascending photon order.
    #[error("detected photon {index} is out of order (photon {photon})")]
    DetectedOrder {
        /// Position in the list.
        index: usize,
        /// Its photon index.
        photon: u64,
    },
    /// Bytes follow the last field.
    #[error("{0} unexpected bytes after the tally")]
    TrailingBytes(usize),
}

/// A cursor over the input that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TallyCodecError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|e| self.bytes.get(self.at..e)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(TallyCodecError::Truncated {
                field,
                offset: self.at,
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], TallyCodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, TallyCodecError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, TallyCodecError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TallyCodecError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn f32(&mut self, field: &'static str) -> Result<f32, TallyCodecError> {
        Ok(f32::from_bits(self.u32(field)?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// A count of items of at least `item_bytes` each, refused when the rest cannot hold them
    /// (so no allocation is ever larger than the input).
    fn count(&mut self, field: &'static str, item_bytes: usize) -> Result<usize, TallyCodecError> {
        let count = self.u64(field)?;
        let remaining = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .filter(|&c| c.checked_mul(item_bytes).is_some_and(|b| b <= remaining));
        fits.ok_or(TallyCodecError::CountTooLarge {
            field,
            count,
            remaining,
        })
    }
}

impl Tally {
    /// Decodes the canonical encoding written by [`Tally::canonical_bytes`].
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Tally, TallyCodecError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(TallyCodecError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != FORMAT {
            return Err(TallyCodecError::Version(version));
        }
        let photons = r.u64("photons")?;
        let launched = r.u64("launched")?;
        let cells = r.count("deposit.len", 8)?;
        let mut deposit = Vec::with_capacity(cells);
        for _ in 0..cells {
            deposit.push(r.u64("deposit")?);
        }
        let mut escaped = [0u64; 6];
        for e in &mut escaped {
            *e = r.u64("escaped")?;
        }
        let specular = r.u64("specular")?;
        let alive_at_t1 = r.u64("alive_at_t1")?;
        let roulette_gained = r.u64("roulette_gained")?;
        let roulette_killed = r.u64("roulette_killed")?;
        let n = r.count("detected.len", DETECTED_FIXED)?;
        let mut detected: Vec<DetectedPhoton> = Vec::with_capacity(n);
        for index in 0..n {
            let photon = r.u64("detected.photon")?;
            if detected.last().is_some_and(|d| d.photon >= photon) {
                return Err(TallyCodecError::DetectedOrder { index, photon });
            }
            let detector = r.u16("detected.detector")?;
            let scatters = r.u32("detected.scatters")?;
            let paths = r.u32("detected.path_mm.len")? as u64;
            let remaining = r.remaining();
            let paths = usize::try_from(paths)
                .ok()
                .filter(|&p| p.checked_mul(4).is_some_and(|b| b <= remaining))
                .ok_or(TallyCodecError::CountTooLarge {
                    field: "detected.path_mm.len",
                    count: paths,
                    remaining,
                })?;
            let mut path_mm = Vec::with_capacity(paths);
            for _ in 0..paths {
                path_mm.push(r.f32("detected.path_mm")?);
            }
            let mut exit_pos = [0f32; 3];
            for x in &mut exit_pos {
                *x = r.f32("detected.exit_pos")?;
            }
            let mut exit_dir = [0f32; 3];
            for x in &mut exit_dir {
                *x = r.f32("detected.exit_dir")?;
            }
            let weight = r.u64("detected.weight")?;
            detected.push(DetectedPhoton {
                photon,
                detector,
                scatters,
                path_mm,
                exit_pos,
                exit_dir,
                weight,
            });
        }
        if r.remaining() != 0 {
            return Err(TallyCodecError::TrailingBytes(r.remaining()));
        }
        Ok(Tally {
            photons,
            deposit,
            escaped,
            specular,
            alive_at_t1,
            detected,
            launched,
            roulette_gained,
            roulette_killed,
        })
    }
}
