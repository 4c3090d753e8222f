//! The job bundle: a job as it travels over the network, data only.
//!
//! A job is its MCX JSON plus, when `Domain.VolumeFile` is set, the label volume's bytes as
//! the client read them on its own machine. A network peer never names a file on the node
//! that reads the job: the volume travels inside the bundle, and the bundle is what is
//! content-addressed (SHA-256 of these bytes), stored, priced and fetched by rigs.
//!
//! **Encoding** (one form per job, so the content address is canonical):
//! - a job without a volume is its JSON text itself, byte for byte;
//! - a job with a volume is [`MAGIC`], the JSON's length as a little-endian `u32`, the JSON,
//!   then the volume's bytes to the end (at least one byte).
//!
//! JSON text never starts with a NUL byte, so the two forms cannot be confused. The decoder
//! takes any bytes and never panics; it borrows from the input and allocates nothing, and a
//! length field is checked against the bytes present before it is used. A JSON part longer
//! than [`MAX_BUNDLE_JSON`] is refused. Whether the volume belongs with the JSON (attached
//! exactly when `Domain.VolumeFile` is set) is checked by the parser
//! ([`super::parse_bundle`]), which names the field.

/// First bytes of a bundle that carries a volume (a NUL first: no JSON text starts so).
pub const MAGIC: [u8; 8] = *b"\0CSJOB1\0";
/// Largest JSON part of a bundle. MCX inputs are kilobytes (volumes travel beside the JSON);
/// a bound here bounds the JSON tree the parser builds from a peer's bytes.
pub const MAX_BUNDLE_JSON: usize = 1 << 20;

/// A decoded bundle, borrowing the encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBundle<'a> {
    /// The MCX JSON text.
    pub json: &'a [u8],
    /// The label volume (`Domain.VolumeFile`'s bytes), when the job has one.
    pub volume: Option<&'a [u8]>,
}

/// Why bytes are not a job bundle. No variant carries any of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bytes are empty.
    #[error("job bundle is empty")]
    Empty,
    /// The bundle starts with a NUL but not with the bundle magic.
    #[error("job bundle: unknown format (neither MCX JSON nor a bundle with a volume)")]
    Magic,
    /// The header is cut short.
    #[error("job bundle: header cut short ({len} bytes)")]
    Header {
        /// Bytes present.
        len: usize,
    },
    /// The JSON part's announced length runs past the bytes present.
    #[error("job bundle: JSON part of {announced} bytes announced, {present} present")]
    JsonLength {
        /// The length field.
        announced: u64,
        /// Bytes after the header.
        present: usize,
    },
    /// The JSON part is longer than [`MAX_BUNDLE_JSON`].
    #[error("job bundle: JSON part of {len} bytes, over the {MAX_BUNDLE_JSON}-byte limit")]
    JsonTooLarge {
        /// Its length.
        len: usize,
    },
    /// The JSON part is empty.
    #[error("job bundle: empty JSON part")]
    EmptyJson,
    /// The volume form carries no volume byte (a job without a volume is its JSON alone).
    #[error("job bundle: volume form with an empty volume")]
    EmptyVolume,
}

impl<'a> JobBundle<'a> {
    /// Decodes `bytes` (any bytes: an error, never a panic; nothing allocated).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let Some(&first) = bytes.first() else {
            return Err(BundleError::Empty);
        };
        if first != 0 {
            if bytes.len() > MAX_BUNDLE_JSON {
                return Err(BundleError::JsonTooLarge { len: bytes.len() });
            }
            return Ok(JobBundle {
                json: bytes,
                volume: None,
            });
        }
        let header = MAGIC.len() + 4;
        let (Some(magic), Some(len)) = (bytes.get(..MAGIC.len()), bytes.get(MAGIC.len()..header))
        else {
            return Err(
                if bytes.starts_with(&MAGIC[..bytes.len().min(MAGIC.len())]) {
                    BundleError::Header { len: bytes.len() }
                } else {
                    BundleError::Magic
                },
            );
        };
        if magic != MAGIC {
            return Err(BundleError::Magic);
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(len);
        let announced = u32::from_le_bytes(n);
        let rest = &bytes[header..];
        let json_len = usize::try_from(announced)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or(BundleError::JsonLength {
                announced: u64::from(announced),
                present: rest.len(),
            })?;
        if json_len > MAX_BUNDLE_JSON {
            return Err(BundleError::JsonTooLarge { len: json_len });
        }
        let (json, volume) = rest.split_at(json_len);
        if json.is_empty() {
            return Err(BundleError::EmptyJson);
        }
        if volume.is_empty() {
            return Err(BundleError::EmptyVolume);
        }
        Ok(JobBundle {
            json,
            volume: Some(volume),
        })
    }

    /// The canonical encoding (see the module doc). `None` when it has no canonical form: an
    /// empty JSON part or volume, a JSON part over [`MAX_BUNDLE_JSON`] or starting with NUL.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.json.is_empty() || self.json.len() > MAX_BUNDLE_JSON || self.json[0] == 0 {
            return None;
        }
        let Some(volume) = self.volume else {
            return Some(self.json.to_vec());
        };
        if volume.is_empty() {
            return None;
        }
        let len = u32::try_from(self.json.len()).ok()?;
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + self.json.len() + volume.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.json);
        out.extend_from_slice(volume);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip_and_are_canonical() {
        let plain = JobBundle {
            json: b"{}",
            volume: None,
        };
        let bytes = plain.encode().unwrap();
        assert_eq!(bytes, b"{}");
        assert_eq!(JobBundle::decode(&bytes), Ok(plain));
        let with = JobBundle {
            json: b"{\"a\":1}",
            volume: Some(&[1, 2, 3]),
        };
        let bytes = with.encode().unwrap();
        assert_eq!(JobBundle::decode(&bytes), Ok(with));
        assert!(JobBundle {
            json: b"{}",
            volume: Some(&[])
        }
        .encode()
        .is_none());
    }

    #[test]
    fn lengths_are_checked_against_the_bytes_present() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(b"{}x");
        assert!(matches!(
            JobBundle::decode(&b),
            Err(BundleError::JsonLength { .. })
        ));
        assert_eq!(
            JobBundle::decode(&MAGIC[..5]),
            Err(BundleError::Header { len: 5 })
        );
        assert_eq!(JobBundle::decode(b"\0xyz"), Err(BundleError::Magic));
        assert_eq!(JobBundle::decode(b""), Err(BundleError::Empty));
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(b"{}");
        assert_eq!(JobBundle::decode(&b), Err(BundleError::EmptyVolume));
    }
}
