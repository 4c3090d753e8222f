//! One direction of a Noise transport, sealing and opening in place.
//!
//! Noise's ChaChaPoly cipher is ChaCha20-Poly1305 with an empty associated data on transport
//! messages and a 96-bit nonce of four zero bytes followed by the 64-bit message counter,
//! little-endian. Done here with the keys of the finished handshake (snow's raw split) so
//! that a frame is sealed in the buffer that holds its plaintext and opened in the buffer it
//! was read into: one buffer per direction instead of a plaintext and a ciphertext buffer.
//! The bytes on the wire are exactly what snow's transport mode produces (checked against
//! snow in the protocol's tests).

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use super::ChannelError;
use crate::limits::SEAL_OVERHEAD;

/// A direction's key and its next nonce.
pub(super) struct Cipher {
    // Zeroizes its key on drop (chacha20poly1305's own `Drop`).
    aead: ChaCha20Poly1305,
    nonce: u64,
}

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

impl Cipher {
    pub(super) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Cipher {
            aead: ChaCha20Poly1305::new(key.as_ref().into()),
            nonce: 0,
        }
    }

    /// Takes the next nonce; the last one (2^64 - 1) is reserved by Noise.
    fn next(&mut self) -> Result<u64, ChannelError> {
        let n = self.nonce;
        if n == u64::MAX {
            return Err(ChannelError::NonceExhausted);
        }
        self.nonce = n + 1;
        Ok(n)
    }

    /// Seals `buf[..len - SEAL_OVERHEAD]` in place and writes the tag after it.
    pub(super) fn seal(&mut self, buf: &mut [u8]) -> Result<(), ChannelError> {
        let split = buf
            .len()
            .checked_sub(SEAL_OVERHEAD)
            .ok_or(ChannelError::FrameLength(buf.len()))?;
        let n = self.next()?;
        let (plain, tag_out) = buf.split_at_mut(split);
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce(n), &[], plain)
            .map_err(|_| ChannelError::FrameLength(split))?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Opens a sealed frame in place; on success `buf[..len - SEAL_OVERHEAD]` is the
    /// plaintext. The nonce moves only on success, but the caller poisons on failure anyway.
    pub(super) fn open(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        let split = buf
            .len()
            .checked_sub(SEAL_OVERHEAD)
            .ok_or(ChannelError::Decrypt)?;
        let (sealed, tag) = buf.split_at_mut(split);
        let tag = Tag::clone_from_slice(tag);
        if self.nonce == u64::MAX {
            return Err(ChannelError::NonceExhausted);
        }
        self.aead
            .decrypt_in_place_detached(&nonce(self.nonce), &[], sealed, &tag)
            .map_err(|_| ChannelError::Decrypt)?;
        self.next()?;
        Ok(split)
    }
}
