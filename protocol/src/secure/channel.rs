//! The Noise handshake and the sealed transport that follows it.
//!
//! Transport uses snow's stateless mode with counters kept here, one per direction, so a
//! session splits into a [`SecureReader`] and a [`SecureWriter`] that tasks own separately (a
//! rig heartbeats while it waits for orders). The receive counter only moves forward on a frame
//! that authenticates, and any failure poisons the reader: a replayed, reordered or altered frame
//! ends the session.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::boxed::Box;
use std::sync::Arc;

use snow::{HandshakeState, StatelessTransportState};

use super::{ChannelError, Identity, NOISE_PARAMS, PROLOGUE};
use crate::frame::{read_frame_async, write_frame_async, FrameBuf};
use crate::limits::{MAX_FRAME, MAX_MESSAGE, SEAL_OVERHEAD};
use crate::msg::{self, Message};
use crate::types::PublicKey;

fn new_buf() -> Box<FrameBuf> {
    Box::new([0u8; MAX_FRAME])
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
    buf: &mut FrameBuf,
) -> Result<(), ChannelError> {
    let n = hs.write_message(&[], buf).map_err(noise_err)?;
    write_frame_async(w, &buf[..n]).await?;
    Ok(())
}

async fn recv_hs<R: embedded_io_async::Read>(
    r: &mut R,
    hs: &mut HandshakeState,
    buf: &mut FrameBuf,
    scratch: &mut FrameBuf,
) -> Result<(), ChannelError> {
    let frame = read_frame_async(r, buf).await?;
    hs.read_message(frame, scratch).map_err(noise_err)?;
    Ok(())
}

/// Initiator side (rig or client): runs the handshake and checks that the manager proves the
/// pinned key before revealing our own identity.
pub async fn connect<R, W>(
    mut r: R,
    mut w: W,
    me: &Identity,
    pinned: &PublicKey,
) -> Result<SecureChannel<R, W>, ChannelError>
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    let mut hs = builder(me)?.build_initiator().map_err(noise_err)?;
    let (mut buf, mut scratch) = (new_buf(), new_buf());
    send_hs(&mut w, &mut hs, &mut buf).await?; // -> e
    recv_hs(&mut r, &mut hs, &mut buf, &mut scratch).await?; // <- e, ee, s, es
    let got = remote_key(&hs)?;
    if got != *pinned {
        return Err(ChannelError::WrongPeerKey {
            expected: *pinned,
            got,
        });
    }
    send_hs(&mut w, &mut hs, &mut buf).await?; // -> s, se
    SecureChannel::new(r, w, hs, got, buf, scratch)
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
    let (mut buf, mut scratch) = (new_buf(), new_buf());
    recv_hs(&mut r, &mut hs, &mut buf, &mut scratch).await?; // -> e
    send_hs(&mut w, &mut hs, &mut buf).await?; // <- e, ee, s, es
    recv_hs(&mut r, &mut hs, &mut buf, &mut scratch).await?; // -> s, se
    let peer = remote_key(&hs)?;
    SecureChannel::new(r, w, hs, peer, buf, scratch)
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
    noise: Arc<StatelessTransportState>,
    nonce: u64,
    frame: Box<FrameBuf>,
    plain: Box<FrameBuf>,
    poisoned: bool,
    peer: PublicKey,
}

/// The sending half of a session.
pub struct SecureWriter<W> {
    io: W,
    noise: Arc<StatelessTransportState>,
    nonce: u64,
    plain: Box<FrameBuf>,
    frame: Box<FrameBuf>,
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
        hs: HandshakeState,
        peer: PublicKey,
        buf: Box<FrameBuf>,
        scratch: Box<FrameBuf>,
    ) -> Result<Self, ChannelError> {
        let noise = Arc::new(hs.into_stateless_transport_mode().map_err(noise_err)?);
        Ok(SecureChannel {
            reader: SecureReader {
                io: r,
                noise: noise.clone(),
                nonce: 0,
                frame: buf,
                plain: scratch,
                poisoned: false,
                peer,
            },
            writer: SecureWriter {
                io: w,
                noise,
                nonce: 0,
                plain: new_buf(),
                frame: new_buf(),
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

    /// Receives and opens one message.
    pub async fn recv<M: Message>(&mut self) -> Result<M, ChannelError> {
        self.reader.recv().await
    }

    /// Receives the first message of a session: its version is checked before the rest is
    /// decoded (see [`msg::decode_hello`]).
    pub async fn recv_hello<M: Message>(&mut self) -> Result<M, ChannelError> {
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
        let frame = read_frame_async(&mut self.io, &mut self.frame).await?;
        if frame.len() < SEAL_OVERHEAD {
            return Err(ChannelError::Decrypt);
        }
        let n = self
            .noise
            .read_message(self.nonce, frame, &mut self.plain[..])
            .map_err(|_| ChannelError::Decrypt)?;
        self.nonce = self
            .nonce
            .checked_add(1)
            .ok_or(ChannelError::NonceExhausted)?;
        self.poisoned = false;
        Ok(&self.plain[..n])
    }

    /// Receives and opens one message. A message that authenticates but does not decode is
    /// reported as `Codec` and leaves the session usable (the caller decides whether to close).
    pub async fn recv<M: Message>(&mut self) -> Result<M, ChannelError> {
        let bytes = self.recv_bytes().await?;
        Ok(msg::decode(bytes)?)
    }

    /// Receives the first message of a session, checking its version first.
    pub async fn recv_hello<M: Message>(&mut self) -> Result<M, ChannelError> {
        let bytes = self.recv_bytes().await?;
        Ok(msg::decode_hello(bytes)?)
    }
}

impl<W: embedded_io_async::Write> SecureWriter<W> {
    /// Seals and sends `plain` as one frame.
    pub async fn send_bytes(&mut self, plain: &[u8]) -> Result<(), ChannelError> {
        seal_and_send(
            &mut self.io,
            &self.noise,
            &mut self.nonce,
            &mut self.frame,
            &mut self.poisoned,
            plain,
        )
        .await
    }

    /// Seals and sends one message.
    pub async fn send<M: Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        let plain = msg::encode(msg, &mut self.plain[..MAX_MESSAGE])?;
        seal_and_send(
            &mut self.io,
            &self.noise,
            &mut self.nonce,
            &mut self.frame,
            &mut self.poisoned,
            plain,
        )
        .await
    }
}

/// Seals `plain` under the next nonce and writes it as one frame. Takes the writer's fields
/// apart so a message can be encoded into the writer's own buffer and sealed from there.
async fn seal_and_send<W: embedded_io_async::Write>(
    io: &mut W,
    noise: &StatelessTransportState,
    nonce: &mut u64,
    frame: &mut FrameBuf,
    poisoned: &mut bool,
    plain: &[u8],
) -> Result<(), ChannelError> {
    if *poisoned {
        return Err(ChannelError::Poisoned);
    }
    if plain.len() > MAX_MESSAGE {
        return Err(ChannelError::FrameLength(plain.len() + SEAL_OVERHEAD));
    }
    // A write that fails half-way leaves the peer's nonce out of step: poison until done.
    *poisoned = true;
    let n = noise
        .write_message(*nonce, plain, frame)
        .map_err(noise_err)?;
    *nonce = nonce.checked_add(1).ok_or(ChannelError::NonceExhausted)?;
    write_frame_async(io, &frame[..n]).await?;
    *poisoned = false;
    Ok(())
}
