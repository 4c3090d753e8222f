//! The secure channel over tokio TCP, with handshake time limits.
//!
//! The channel code is written over embedded-io-async; this module is the adapter to tokio
//! (`embedded-io-adapters`) and the place where a stalled handshake is cut off.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::time::Duration;

use embedded_io_adapters::tokio_1::FromTokio;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use super::{ChannelError, Identity, SecureChannel};
use crate::types::PublicKey;

/// A secure session over TCP.
pub type TcpChannel = SecureChannel<FromTokio<OwnedReadHalf>, FromTokio<OwnedWriteHalf>>;

/// How long a handshake may take by default, TCP connect included.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `fut`, turning a timeout into [`ChannelError::Timeout`].
pub async fn with_timeout<T>(
    limit: Duration,
    fut: impl core::future::Future<Output = Result<T, ChannelError>>,
) -> Result<T, ChannelError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(ChannelError::Timeout(limit)))
}

/// Connects to a manager at `addr` and runs the initiator handshake against its pinned key.
pub async fn connect_tcp(
    addr: impl ToSocketAddrs,
    me: &Identity,
    pinned: &PublicKey,
    limit: Duration,
) -> Result<TcpChannel, ChannelError> {
    connect_tcp_to(addr, me, Some(pinned), limit).await
}

/// [`connect_tcp`], or without a pinned key when `pinned` is `None` (see
/// [`super::connect_unpinned`]: the caller shows the key it learnt).
pub async fn connect_tcp_to(
    addr: impl ToSocketAddrs,
    me: &Identity,
    pinned: Option<&PublicKey>,
    limit: Duration,
) -> Result<TcpChannel, ChannelError> {
    with_timeout(limit, async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ChannelError::Io(io_kind(&e)))?;
        // Frames are small and latency matters more than segment count.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (r, w) = (FromTokio::new(r), FromTokio::new(w));
        match pinned {
            Some(key) => super::connect(r, w, me, key).await,
            None => super::connect_unpinned(r, w, me).await,
        }
    })
    .await
}

/// Runs the responder handshake on an accepted connection.
pub async fn accept_tcp(
    stream: TcpStream,
    me: &Identity,
    limit: Duration,
) -> Result<TcpChannel, ChannelError> {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    with_timeout(
        limit,
        super::accept(FromTokio::new(r), FromTokio::new(w), me),
    )
    .await
}

fn io_kind(e: &std::io::Error) -> embedded_io::ErrorKind {
    use embedded_io::ErrorKind as K;
    use std::io::ErrorKind as S;
    match e.kind() {
        S::NotFound => K::NotFound,
        S::PermissionDenied => K::PermissionDenied,
        S::ConnectionRefused => K::ConnectionRefused,
        S::ConnectionReset => K::ConnectionReset,
        S::ConnectionAborted => K::ConnectionAborted,
        S::NotConnected => K::NotConnected,
        S::AddrInUse => K::AddrInUse,
        S::AddrNotAvailable => K::AddrNotAvailable,
        S::BrokenPipe => K::BrokenPipe,
        S::TimedOut => K::TimedOut,
        S::Interrupted => K::Interrupted,
        _ => K::Other,
    }
}
