//! Static X25519 identities and their key files.
//!
//! The private key lives in a zeroizing buffer and is never printed (`Debug` shows the public
//! key only). Key files are created with mode 0600 and refused when group or others can read
//! them, as ssh does, because a leaked rig key lets anyone collect that rig's pay.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::RngCore as _;
use zeroize::Zeroizing;

use crate::hex;
use crate::types::PublicKey;

const FILE_MAGIC: &str = "compushare-identity-v1";

/// A static X25519 key pair.
pub struct Identity {
    secret: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Identity({})", hex::encode(&self.public))
    }
}

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
    /// The key file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        /// The operating-system error (in this error's text, so not its `source`: a chain
        /// printer would print it twice).
        error: std::io::Error,
    },
    /// The key file path is a directory.
    #[error("{path}: is a directory, not a key file")]
    IsDirectory { path: PathBuf },
    /// The key file is readable by group or others.
    #[error(
        "{path}: key file is accessible by group or others (mode {mode:o}); run chmod 600 on it"
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// The key file's contents are not an identity.
    #[error("{path}: line {line}: {what}")]
    Format {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Result<Self, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand_core::OsRng
            .try_fill_bytes(secret.as_mut())
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_secret(secret))
    }

    /// The identity with this private key.
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> Self {
        let scalar = x25519_dalek::StaticSecret::from(*secret);
        let public = x25519_dalek::PublicKey::from(&scalar).to_bytes();
        Identity { secret, public }
    }

    /// The public key: this identity's name on the network.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private key, for the Noise handshake only.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Reads an identity from a key file, refusing files others can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |error| KeyError::Io {
            path: path.to_owned(),
            error,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(KeyError::IsDirectory {
                path: path.to_owned(),
            });
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let mut text = Zeroizing::new(String::new());
        // A key file is two short lines; more than a few hundred bytes is not one.
        Read::by_ref(&mut file)
            .take(4096)
            .read_to_string(&mut text)
            .map_err(io)?;
        let format = |line, what: &str| KeyError::Format {
            path: path.to_owned(),
            line,
            what: what.into(),
        };
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(FILE_MAGIC) {
            return Err(format(1, &format!("expected '{FILE_MAGIC}'")));
        }
        let line = lines
            .next()
            .map(str::trim)
            .ok_or_else(|| format(2, "missing private key"))?;
        let secret =
            hex::decode_array::<32>(line).map_err(|e| format(2, &format!("private key: {e}")))?;
        Ok(Self::from_secret(Zeroizing::new(secret)))
    }

    /// Writes this identity to a new key file with mode 0600; never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let io = |error| KeyError::Io {
            path: path.to_owned(),
            error,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let secret_hex = Zeroizing::new(hex::encode(self.secret.as_ref()));
        let text = Zeroizing::new(format!("{FILE_MAGIC}\n{}\n", secret_hex.as_str()));
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Loads the identity at `path`, creating it first if the file does not exist.
    /// Returns the identity and whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Self::generate()?;
                id.save_new(path)?;
                Ok((id, true))
            }
            Err(error) => Err(KeyError::Io {
                path: path.to_owned(),
                error,
            }),
        }
    }
}
