//! Newline-delimited reading with a hard cap on line length.
//!
//! A peer that sends a line longer than the cap does not make us buffer it: the excess is
//! skipped up to the next newline and reported as [`Line::TooLong`], and the connection
//! stays usable, since one bad message from a pool is no reason to drop it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What the next read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Text(String),
    /// A line over the cap was skipped; its length.
    TooLong(usize),
    /// A line that is not UTF-8 was skipped.
    NotUtf8,
    /// The peer closed the stream.
    Eof,
}

/// Reads capped lines from a buffered stream.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    skipping: Option<usize>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Wraps `inner`, allowing lines of at most `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            max,
            skipping: None,
        }
    }

    /// The next line. Cancel-safe: bytes already consumed stay in the internal buffer.
    pub async fn next_line(&mut self) -> std::io::Result<Line> {
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                return Ok(Line::Eof);
            }
            let (chunk_len, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let chunk = avail.get(..chunk_len).unwrap_or(&[]);
            match self.skipping.as_mut() {
                Some(skipped) => *skipped = skipped.saturating_add(chunk_len),
                None if self.buf.len() + chunk_len > self.max => {
                    self.skipping = Some(self.buf.len() + chunk_len);
                    self.buf = Vec::new();
                }
                None => self.buf.extend_from_slice(chunk),
            }
            self.inner.consume(chunk_len + usize::from(done));
            if !done {
                continue;
            }
            if let Some(len) = self.skipping.take() {
                return Ok(Line::TooLong(len));
            }
            let mut raw = std::mem::take(&mut self.buf);
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(match String::from_utf8(raw) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::NotUtf8,
            });
        }
    }
}
