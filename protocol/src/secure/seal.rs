//! Sealed boxes: a payload encrypted to one recipient's static X25519 key.
//!
//! Rigs seal results for the manager (they may wait in the rig's vault and travel in many
//! chunks, outside any one session), and the manager re-seals verified results for the
//! client's key. Each box uses a fresh ephemeral key, so the derived ChaCha20-Poly1305 key is
//! never reused and a zero nonce is safe; both public keys are bound as associated data and in
//! the key derivation, so a box cannot be re-addressed.
//!
//! Layout: `version (1) | ephemeral public key (32) | ciphertext | tag (16)`.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::Identity;
use crate::types::PublicKey;

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"compushare/seal/1";
/// Bytes a sealed box adds to its payload.
pub const SEAL_BOX_OVERHEAD: usize = 1 + 32 + 16;

/// Why a box could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Shorter than the fixed overhead, or of an unknown layout version.
    #[error("not a sealed box (too short or unknown version)")]
    Malformed,
    /// The recipient key is a low-order point: no secret could be agreed.
    #[error("recipient key is not a usable X25519 public key")]
    WeakKey,
    /// Authentication failed: altered, truncated, or sealed for another key.
    #[error("sealed box failed authentication (altered, or sealed for another key)")]
    Auth,
}

fn derive(shared: &[u8; 32], ephemeral: &PublicKey, recipient: &PublicKey) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(shared);
    h.update(ephemeral);
    h.update(recipient);
    Zeroizing::new(h.finalize().into())
}

fn aad(ephemeral: &PublicKey, recipient: &PublicKey) -> [u8; 64] {
    let mut a = [0u8; 64];
    a[..32].copy_from_slice(ephemeral);
    a[32..].copy_from_slice(recipient);
    a
}

/// Where the payload starts inside a sealed box (after the version and the ephemeral key).
pub const SEAL_PAYLOAD_OFFSET: usize = 1 + 32;

/// Seals `plaintext` so that only the holder of `recipient`'s private key can open it.
pub fn seal(recipient: &PublicKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut out = vec![0u8; plaintext.len() + SEAL_BOX_OVERHEAD];
    out[SEAL_PAYLOAD_OFFSET..SEAL_PAYLOAD_OFFSET + plaintext.len()].copy_from_slice(plaintext);
    let len = seal_in_place(recipient, &mut out, plaintext.len())?;
    out.truncate(len);
    Ok(out)
}

/// Seals in place, allocating nothing: `buf[SEAL_PAYLOAD_OFFSET..][..plaintext_len]` holds the
/// plaintext, which is encrypted where it lies; the version and ephemeral key are written in
/// front and the tag behind, so `buf[..returned length]` is the same box [`seal`] makes.
/// `buf` must hold `plaintext_len + SEAL_BOX_OVERHEAD` bytes ([`SealError::Malformed`]
/// otherwise, with `buf` untouched). The derived key is zeroized when this returns.
pub fn seal_in_place(
    recipient: &PublicKey,
    buf: &mut [u8],
    plaintext_len: usize,
) -> Result<usize, SealError> {
    use chacha20poly1305::aead::AeadInPlace;
    let total = plaintext_len
        .checked_add(SEAL_BOX_OVERHEAD)
        .filter(|&t| t <= buf.len())
        .ok_or(SealError::Malformed)?;
    let secret = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
    let ephemeral = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*recipient));
    if !shared.was_contributory() {
        return Err(SealError::WeakKey);
    }
    let key = derive(shared.as_bytes(), &ephemeral, recipient);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let (head, rest) = buf.split_at_mut(SEAL_PAYLOAD_OFFSET);
    let (payload, tail) = rest.split_at_mut(plaintext_len);
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&[0; 12]),
            &aad(&ephemeral, recipient),
            payload,
        )
        .map_err(|_| SealError::Malformed)?;
    head[0] = VERSION;
    head[1..].copy_from_slice(&ephemeral);
    tail[..16].copy_from_slice(&tag);
    Ok(total)
}

/// Opens a box sealed for `me`.
pub fn open(me: &Identity, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_BOX_OVERHEAD || sealed[0] != VERSION {
        return Err(SealError::Malformed);
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&sealed[1..33]);
    let secret = x25519_dalek::StaticSecret::from(*me.secret());
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    if !shared.was_contributory() {
        return Err(SealError::Auth);
    }
    let recipient = me.public();
    let key = derive(shared.as_bytes(), &ephemeral, &recipient);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &sealed[33..],
                aad: &aad(&ephemeral, &recipient),
            },
        )
        .map_err(|_| SealError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_only_for_the_recipient() {
        let (alice, mallory) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        for len in [0usize, 1, 100, 70_000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let boxed = seal(&alice.public(), &msg).unwrap();
            assert_eq!(boxed.len(), len + SEAL_BOX_OVERHEAD);
            assert_eq!(open(&alice, &boxed).unwrap(), msg);
            assert_eq!(open(&mallory, &boxed), Err(SealError::Auth));
            // Any single altered byte is caught.
            for at in [0, 1, 32, 33, boxed.len() - 1] {
                let mut bad = boxed.clone();
                bad[at] ^= 0x20;
                assert!(open(&alice, &bad).is_err(), "byte {at}");
            }
            assert!(open(&alice, &boxed[..boxed.len() - 1]).is_err());
        }
        // Two boxes of the same message differ (fresh ephemeral keys).
        assert_ne!(
            seal(&alice.public(), b"x").unwrap(),
            seal(&alice.public(), b"x").unwrap()
        );
    }

    #[test]
    fn in_place_seal_opens_like_a_box_and_checks_room() {
        let alice = Identity::generate().unwrap();
        let msg = b"tally bytes";
        let mut buf = [0u8; 200];
        buf[SEAL_PAYLOAD_OFFSET..SEAL_PAYLOAD_OFFSET + msg.len()].copy_from_slice(msg);
        let n = seal_in_place(&alice.public(), &mut buf, msg.len()).unwrap();
        assert_eq!(n, msg.len() + SEAL_BOX_OVERHEAD);
        assert_eq!(open(&alice, &buf[..n]).unwrap(), msg);
        assert!(
            !buf[..n].windows(msg.len()).any(|w| w == msg),
            "plaintext left behind"
        );
        let mut small = [0u8; 40];
        assert_eq!(
            seal_in_place(&alice.public(), &mut small, 8),
            Err(SealError::Malformed)
        );
        assert_eq!(small, [0u8; 40]);
    }

    #[test]
    fn low_order_recipient_is_refused() {
        assert_eq!(seal(&[0; 32], b"x"), Err(SealError::WeakKey));
        assert_eq!(
            open(&Identity::generate().unwrap(), &[1; 10]),
            Err(SealError::Malformed)
        );
    }
}
