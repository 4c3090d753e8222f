//! Length-prefixed frames over byte streams.
//!
//! A frame is a big-endian `u16` length followed by that many bytes (1 to 65,535; an empty
//! frame is never valid, since neither a message nor a sealed message is empty). Written once
//! over the embedded-io traits, blocking and async, so the same code serves tokio TCP (through
//! `embedded-io-adapters`), serial lines and in-memory pipes. Readers write into a buffer the
//! caller owns and never read past the frame they announced.

use crate::limits::MAX_FRAME;

/// A buffer that holds any frame.
pub type FrameBuf = [u8; MAX_FRAME];

/// Why a frame could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError<E> {
    /// The stream ended cleanly between frames.
    Closed,
    /// The stream ended inside a frame.
    Truncated,
    /// A frame announced length 0.
    Empty,
    /// The body to write is longer than 65,535 bytes (or empty).
    BadLength(usize),
    /// The underlying stream failed.
    Io(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for FrameError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Closed => write!(f, "connection closed"),
            FrameError::Truncated => write!(f, "connection closed in the middle of a frame"),
            FrameError::Empty => write!(f, "peer sent an empty frame"),
            FrameError::BadLength(n) => write!(f, "frame body of {n} bytes is not in 1..=65535"),
            FrameError::Io(e) => write!(f, "i/o error: {e:?}"),
        }
    }
}

fn header(len: usize) -> Result<[u8; 2], FrameError<core::convert::Infallible>> {
    match u16::try_from(len) {
        Ok(n) if n > 0 => Ok(n.to_be_bytes()),
        _ => Err(FrameError::BadLength(len)),
    }
}

fn relabel<E>(e: FrameError<core::convert::Infallible>) -> FrameError<E> {
    match e {
        FrameError::BadLength(n) => FrameError::BadLength(n),
        FrameError::Closed => FrameError::Closed,
        FrameError::Truncated => FrameError::Truncated,
        FrameError::Empty => FrameError::Empty,
        FrameError::Io(never) => match never {},
    }
}

/// Reads one frame into `buf`, returning its body.
pub fn read_frame<'b, R: embedded_io::Read>(
    r: &mut R,
    buf: &'b mut FrameBuf,
) -> Result<&'b [u8], FrameError<R::Error>> {
    let mut len = [0u8; 2];
    // The first byte distinguishes a clean close from a truncated frame.
    let n = r.read(&mut len[..1]).map_err(FrameError::Io)?;
    if n == 0 {
        return Err(FrameError::Closed);
    }
    read_exact(r, &mut len[1..])?;
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let body = &mut buf[..len];
    read_exact(r, body)?;
    Ok(body)
}

fn read_exact<R: embedded_io::Read>(r: &mut R, buf: &mut [u8]) -> Result<(), FrameError<R::Error>> {
    r.read_exact(buf).map_err(|e| match e {
        embedded_io::ReadExactError::UnexpectedEof => FrameError::Truncated,
        embedded_io::ReadExactError::Other(e) => FrameError::Io(e),
    })
}

/// Writes one frame and flushes.
pub fn write_frame<W: embedded_io::Write>(
    w: &mut W,
    body: &[u8],
) -> Result<(), FrameError<W::Error>> {
    let head = header(body.len()).map_err(relabel)?;
    w.write_all(&head).map_err(FrameError::Io)?;
    w.write_all(body).map_err(FrameError::Io)?;
    w.flush().map_err(FrameError::Io)
}

/// Async [`read_frame`].
pub async fn read_frame_async<'b, R: embedded_io_async::Read>(
    r: &mut R,
    buf: &'b mut FrameBuf,
) -> Result<&'b [u8], FrameError<R::Error>> {
    let mut len = [0u8; 2];
    let n = r.read(&mut len[..1]).await.map_err(FrameError::Io)?;
    if n == 0 {
        return Err(FrameError::Closed);
    }
    read_exact_async(r, &mut len[1..]).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let body = &mut buf[..len];
    read_exact_async(r, body).await?;
    Ok(body)
}

async fn read_exact_async<R: embedded_io_async::Read>(
    r: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError<R::Error>> {
    r.read_exact(buf).await.map_err(|e| match e {
        embedded_io::ReadExactError::UnexpectedEof => FrameError::Truncated,
        embedded_io::ReadExactError::Other(e) => FrameError::Io(e),
    })
}

/// Async [`write_frame`]. The header and body go out in one write where the buffer allows,
/// so a frame is rarely split across two TCP segments.
pub async fn write_frame_async<W: embedded_io_async::Write>(
    w: &mut W,
    body: &[u8],
) -> Result<(), FrameError<W::Error>> {
    let head = header(body.len()).map_err(relabel)?;
    w.write_all(&head).await.map_err(FrameError::Io)?;
    w.write_all(body).await.map_err(FrameError::Io)?;
    w.flush().await.map_err(FrameError::Io)
}
