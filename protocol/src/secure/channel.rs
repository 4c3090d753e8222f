//! The Noise handshake and the sealed transport that follows it.
//!
//! After the handshake each direction has its own key and counter ([`super::cipher`]), so a
//! session splits into a [`SecureReader`] and a [`SecureWriter`] that tasks own separately (a
//! rig heartbeats while it waits for orders). The receive counter only moves forward on a frame
//! that authenticates, and any failure poisons the reader: a replayed, reordered or altered frame
//! ends the session.
//!
//! Memory: each half owns one buffer, and a frame is sealed and opened in place in it (length
//! prefix, ciphertext and tag side by side, written with one call). A buffer grows to the
//! largest frame in flight (at most 65,537 bytes) and shrinks back when small frames follow, so
//! an idle session or one that only heartbeats holds about 2 KiB of frame buffers, not the
//! four 64 KiB buffers a separate plaintext and ciphertext buffer per direction would need.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use snow::HandshakeState;
use zeroize::Zeroizing;

use super::cipher::Cipher;
use super::{ChannelError, Identity, NOISE_PARAMS, PROLOGUE};
use crate::frame::FrameError;
use crate::limits::{MAX_FRAME, MAX_MESSAGE, SEAL_OVERHEAD};
use crate::msg::{self, CodecError, Message};
use crate::types::PublicKey;

/// Bytes of the length prefix.
const HEADER: usize = 2;
/// Capacity a buffer keeps between bursts of large frames: enough for heartbeats, bids and
/// acknowledgements, so that the common session never reallocates.
const IDLE_CAPACITY: usize = 1024;
/// Longest Noise XX handshake message we send or accept: ours carry no payload (at most 96
/// bytes); the slack allows for nothing but bigger keys.
const MAX_HANDSHAKE: usize = 1024;

/// Makes `buf` exactly able to hold `len` bytes and returns them. Grows without amortised
/// doubling (a 64 KiB frame must not leave a 128 KiB buffer behind) and gives memory back once
/// a small frame follows large ones.
fn fit(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if len <= IDLE_CAPACITY && buf.capacity() > IDLE_CAPACITY {
        buf.truncate(IDLE_CAPACITY);
        buf.shrink_to(IDLE_CAPACITY);
    }
    if buf.len() < len {
        buf.reserve_exact(len - buf.len());
        buf.resize(len, 0);
    }
    // In bounds: `buf.len() >= len` from here on.
    &mut buf[..len]
}

fn new_buf() -> Vec<u8> {
    Vec::with_capacity(IDLE_CAPACITY)
}

fn io_err<E: embedded_io::Error>(e: E) -> ChannelError {
    FrameError::Io(e).into()
}

fn exact_err<E: embedded_io::Error>(e: embedded_io::ReadExactError<E>) -> ChannelError {
    match e {
        embedded_io::ReadExactError::UnexpectedEof => ChannelError::Truncated,
        embedded_io::ReadExactError::Other(e) => io_err(e),
    }
}

/// Reads one length-prefixed frame into `buf` (resized to it); returns its length.
async fn read_frame<R: embedded_io_async::Read>(
    io: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, ChannelError> {
    let mut head = [0u8; HEADER];
    // The first byte tells a clean close from a truncated frame.
    let (first, second) = head.split_at_mut(1);
    if io.read(first).await.map_err(io_err)? == 0 {
        return Err(ChannelError::Closed);
    }
    io.read_exact(second).await.map_err(exact_err)?;
    let len = usize::from(u16::from_be_bytes(head));
    if len == 0 {
        return Err(ChannelError::EmptyFrame);
    }
    io.read_exact(fit(buf, len)).await.map_err(exact_err)?;
    Ok(len)
}

/// Writes `frame` (header included) and flushes.
async fn write_all<W: embedded_io_async::Write>(
    io: &mut W,
    frame: &[u8],
) -> Result<(), ChannelError> {
    io.write_all(frame).await.map_err(io_err)?;
    io.flush().await.map_err(io_err)
}

/// Puts the length prefix of a `body`-byte frame in front of it.
fn put_header(frame: &mut [u8], body: usize) -> Result<(), ChannelError> {
    let n = u16::try_from(body)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(ChannelError::FrameLength(body))?;
    if let Some(h) = frame.get_mut(..HEADER) {
        h.copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

fn builder(me: &Identity) -> Result<snow::Builder<'_>, ChannelError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| ChannelError::Handshake(e.to_string()))?;
    Ok(snow::Builder::new(params)
        .local_private_key(me.secret())
        .prologue(PROLOGUE))
}

fn noise_err(e: snow::Error) -> ChannelError {
    ChannelError::Handshake(e.to_string())
}

fn remote_key(hs: &HandshakeState) -> Result<PublicKey, ChannelError> {
    hs.get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| ChannelError::Handshake("peer sent no static key".into()))
}

async fn send_hs<W: embedded_io_async::Write>(
    w: &mut W,
    hs: &mut HandshakeState,
    buf: &mut Vec<u8>,
) -> Result<(), ChannelError> {
    let frame = fit(buf, HEADER + MAX_HANDSHAKE);
    let body = frame.get_mut(HEADER..).unwrap_or_default();
    let n = hs.write_message(&[], body).map_err(noise_err)?;
    put_header(frame, n)?;
    write_all(w, frame.get(..HEADER + n).unwrap_or_default()).await
}

async fn recv_hs<R: embedded_io_async::Read>(
    r: &mut R,
    hs: &mut HandshakeState,
    buf: &mut Vec<u8>,
) -> Result<(), ChannelError> {
    let len = read_frame(r, buf).await?;
    if len > MAX_HANDSHAKE {
        return Err(ChannelError::Handshake(format!(
            "handshake message of {len} bytes (at most {MAX_HANDSHAKE})"
        )));
    }
    // Our handshake messages carry no payload; room for one anyway keeps snow's checks happy.
    let mut payload = [0u8; MAX_HANDSHAKE];
    let frame = buf.get(..len).unwrap_or_default();
    hs.read_message(frame, &mut payload).map_err(noise_err)?;
    Ok(())
}

/// Initiator side (rig or client): runs the handshake and checks that the manager proves the
/// pinned key before revealing our own identity.
pub async fn connect<R, W>(
    r: R,
    w: W,
    me: &Identity,
    pinned: &PublicKey,
) -> Result<SecureChannel<R, W>, ChannelError>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    initiate(r, w, me, Some(pinned)).await
}

/// Initiator side without a pinned key: the responder's key is learnt from the handshake
/// ([`SecureChannel::peer`]) and trusted on first use. Only for a peer whose key the user
/// has no way to know yet (an operator's first console session to a rig); the caller shows
/// the key so that it can be pinned from then on.
pub async fn connect_unpinned<R, W>(
    r: R,
    w: W,
    me: &Identity,
) -> Result<SecureChannel<R, W>, ChannelError>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    initiate(r, w, me, None).await
}

async fn initiate<R, W>(
    mut r: R,
    mut w: W,
    me: &Identity,
    pinned: Option<&PublicKey>,
) -> Result<SecureChannel<R, W>, ChannelError>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    let mut hs = builder(me)?.build_initiator().map_err(noise_err)?;
    let (mut rbuf, mut wbuf) = (new_buf(), new_buf());
    send_hs(&mut w, &mut hs, &mut wbuf).await?; // -> e
    recv_hs(&mut r, &mut hs, &mut rbuf).await?; // <- e, ee, s, es
    let got = remote_key(&hs)?;
    if let Some(pinned) = pinned {
        if got != *pinned {
            return Err(ChannelError::WrongPeerKey {
                expected: *pinned,
                got,
            });
        }
    }
    send_hs(&mut w, &mut hs, &mut wbuf).await?; // -> s, se
    SecureChannel::new(r, w, hs, got, rbuf, wbuf)
}

/// Responder side (manager): runs the handshake and learns the initiator's identity.
pub async fn accept<R, W>(
    mut r: R,
    mut w: W,
    me: &Identity,
) -> Result<SecureChannel<R, W>, ChannelError>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    let mut hs = builder(me)?.build_responder().map_err(noise_err)?;
    let (mut rbuf, mut wbuf) = (new_buf(), new_buf());
    recv_hs(&mut r, &mut hs, &mut rbuf).await?; // -> e
    send_hs(&mut w, &mut hs, &mut wbuf).await?; // <- e, ee, s, es
    recv_hs(&mut r, &mut hs, &mut rbuf).await?; // -> s, se
    let peer = remote_key(&hs)?;
    SecureChannel::new(r, w, hs, peer, rbuf, wbuf)
}

/// An established session; [`SecureChannel::split`] it to read and write from separate tasks.
pub struct SecureChannel<R, W> {
    reader: SecureReader<R>,
    writer: SecureWriter<W>,
}

impl<R, W> core::fmt::Debug for SecureChannel<R, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SecureChannel(peer {})",
            crate::hex::encode(&self.reader.peer)
        )
    }
}

/// The receiving half of a session.
pub struct SecureReader<R> {
    io: R,
    cipher: Cipher,
    /// The frame as read, then (in place) its plaintext.
    buf: Vec<u8>,
    poisoned: bool,
    peer: PublicKey,
}

/// The sending half of a session.
pub struct SecureWriter<W> {
    io: W,
    cipher: Cipher,
    /// Length prefix, then the message, sealed in place, then its tag.
    buf: Vec<u8>,
    poisoned: bool,
}

impl<R, W> SecureChannel<R, W>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    fn new(
        r: R,
        w: W,
        mut hs: HandshakeState,
        peer: PublicKey,
        rbuf: Vec<u8>,
        wbuf: Vec<u8>,
    ) -> Result<Self, ChannelError> {
        if !hs.is_handshake_finished() {
            return Err(ChannelError::Handshake("handshake not finished".into()));
        }
        // Noise's Split: the first key seals what the initiator sends, the second what the
        // responder sends.
        let (k1, k2) = hs.dangerously_get_raw_split();
        let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
        let (send, recv) = if hs.is_initiator() {
            (k1, k2)
        } else {
            (k2, k1)
        };
        Ok(SecureChannel {
            reader: SecureReader {
                io: r,
                cipher: Cipher::new(recv),
                buf: rbuf,
                poisoned: false,
                peer,
            },
            writer: SecureWriter {
                io: w,
                cipher: Cipher::new(send),
                buf: wbuf,
                poisoned: false,
            },
        })
    }

    /// The peer's static public key (its identity).
    pub fn peer(&self) -> PublicKey {
        self.reader.peer
    }

    /// Seals and sends one message.
    pub async fn send<M: Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        self.writer.send(msg).await
    }

    /// Receives and opens one message, boxed (see [`SecureReader::recv`]).
    pub async fn recv<M: Message>(&mut self) -> Result<Box<M>, ChannelError> {
        self.reader.recv().await
    }

    /// Receives the first message of a session: its version is checked before the rest is
    /// decoded (see [`msg::decode_hello`]).
    pub async fn recv_hello<M: Message>(&mut self) -> Result<Box<M>, ChannelError> {
        self.reader.recv_hello().await
    }

    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (SecureReader<R>, SecureWriter<W>) {
        (self.reader, self.writer)
    }
}

impl<R: embedded_io_async::Read> SecureReader<R> {
    /// The peer's static public key (its identity).
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// Receives and opens one frame, returning the plaintext.
    pub async fn recv_bytes(&mut self) -> Result<&[u8], ChannelError> {
        if self.poisoned {
            return Err(ChannelError::Poisoned);
        }
        // Poisoned until proven otherwise: any early return below leaves it set.
        self.poisoned = true;
        let len = read_frame(&mut self.io, &mut self.buf).await?;
        let frame = self.buf.get_mut(..len).ok_or(ChannelError::Decrypt)?;
        let n = self.cipher.open(frame)?;
        self.poisoned = false;
        Ok(self.buf.get(..n).unwrap_or_default())
    }

    /// Receives and opens one message. A message that authenticates but does not decode is
    /// reported as `Codec` and leaves the session usable (the caller decides whether to close).
    ///
    /// Boxed, by [`msg::decode_boxed`]: a message enum is up to ~60 KiB, and one decoded by
    /// value in an async caller is copied through its frames (and matching it there met a
    /// compiler bug, BENCHMARKS.md). Only the box crosses an await.
    pub async fn recv<M: Message>(&mut self) -> Result<Box<M>, ChannelError> {
        let bytes = self.recv_bytes().await?;
        Ok(msg::decode_boxed(bytes)?)
    }

    /// Receives the first message of a session, checking its version first; boxed as
    /// [`Self::recv`].
    pub async fn recv_hello<M: Message>(&mut self) -> Result<Box<M>, ChannelError> {
        let bytes = self.recv_bytes().await?;
        msg::check_version(msg::peek_version(bytes)?)?;
        Ok(msg::decode_boxed(bytes)?)
    }
}

impl<W: embedded_io_async::Write> SecureWriter<W> {
    /// Seals and sends `plain` as one frame.
    pub async fn send_bytes(&mut self, plain: &[u8]) -> Result<(), ChannelError> {
        if self.poisoned {
            return Err(ChannelError::Poisoned);
        }
        if plain.len() > MAX_MESSAGE {
            return Err(ChannelError::FrameLength(plain.len() + SEAL_OVERHEAD));
        }
        let frame = fit(&mut self.buf, HEADER + plain.len() + SEAL_OVERHEAD);
        if let Some(body) = frame.get_mut(HEADER..HEADER + plain.len()) {
            body.copy_from_slice(plain);
        }
        self.seal_and_send(plain.len()).await
    }

    /// Seals and sends one message, encoded straight into the frame buffer.
    pub async fn send<M: Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        if self.poisoned {
            return Err(ChannelError::Poisoned);
        }
        let size = postcard::experimental::serialized_size(msg)
            .map_err(|_| ChannelError::Codec(CodecError::BufferTooSmall))?;
        if size > MAX_MESSAGE {
            return Err(ChannelError::FrameLength(size + SEAL_OVERHEAD));
        }
        let frame = fit(&mut self.buf, HEADER + size + SEAL_OVERHEAD);
        let body = frame.get_mut(HEADER..HEADER + size).unwrap_or_default();
        msg::encode(msg, body)?;
        self.seal_and_send(size).await
    }

    /// Seals the `plain`-byte message at the front of the buffer in place under the next
    /// nonce and writes header, ciphertext and tag as one frame.
    async fn seal_and_send(&mut self, plain: usize) -> Result<(), ChannelError> {
        let body = plain + SEAL_OVERHEAD;
        debug_assert!(HEADER + body <= HEADER + MAX_FRAME);
        // A write that fails half-way leaves the peer's nonce out of step: poison until done.
        self.poisoned = true;
        let frame = self
            .buf
            .get_mut(..HEADER + body)
            .ok_or(ChannelError::FrameLength(body))?;
        put_header(frame, body)?;
        self.cipher
            .seal(frame.get_mut(HEADER..).unwrap_or_default())?;
        write_all(&mut self.io, frame).await?;
        self.poisoned = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_grow_exactly_and_shrink_after_a_burst() {
        let mut b = new_buf();
        assert_eq!(fit(&mut b, 40).len(), 40);
        assert!(b.capacity() <= IDLE_CAPACITY);
        // The largest frame: no amortised doubling beyond it.
        let len = HEADER + MAX_FRAME;
        fit(&mut b, 61_000).fill(1);
        assert_eq!(fit(&mut b, len).len(), len);
        assert!(b.capacity() < len + 1024, "capacity {}", b.capacity());
        // A small frame after the burst gives the memory back.
        assert_eq!(fit(&mut b, 100).len(), 100);
        assert!(b.capacity() <= IDLE_CAPACITY, "capacity {}", b.capacity());
    }
}
