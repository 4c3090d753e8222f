//! A rig session's outgoing queue: what the market has said to a rig and its session's writer
//! has not yet sent.
//!
//! The market runs under one mutex and never awaits, so it cannot wait for a slow socket; it
//! pushes here and the session's writer task drains. The queue is bounded twice, by entries
//! and by bytes, and a push that would exceed either is refused: the market then drops the
//! session of a rig too slow to serve rather than buffer for it without bound.
//!
//! Entries are small. A message is queued encoded (postcard, exactly its length: an `Ack` is a
//! few bytes where the message enum is ~60 KiB because its largest variant holds a chunk
//! inline), and a job's geometry is queued as a shared reference to the input that the writer
//! cuts into `GeometryChunk` messages as the socket takes them. So a rig fetching a large
//! volume costs one entry and no copy, whatever the volume's size.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use compushare_protocol::chunk::Chunker;
use compushare_protocol::msg::ManagerToRig;
use compushare_protocol::types::Digest;
use tokio::sync::mpsc;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The queue holds its maximum of entries or bytes: the rig does not read fast enough.
    #[error("send queue full")]
    Full,
    /// The session has ended (its writer is gone).
    #[error("session closed")]
    Closed,
    /// The message does not encode (never expected for the manager's own messages).
    #[error("message does not encode")]
    Encode,
}

/// One queued entry.
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded `ManagerToRig`; with `last`, the writer closes the session after it.
    Message { bytes: Box<[u8]>, last: bool },
    /// A job input to send as `GeometryChunk` messages, in order, with its content address
    /// (known since the job was accepted: not hashed again for every rig that fetches it).
    Geometry {
        input: Arc<Vec<u8>>,
        content: Digest,
    },
}

/// The market's end of a session's queue.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Set by [`Outbox::close`]: the market gave up on the rig, and its session must end.
    closed: Arc<AtomicBool>,
}

/// The writer's end of a session's queue.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
}

/// A queue of at most `max_entries` entries and `max_bytes` bytes of encoded messages.
pub fn outbox(max_entries: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(max_entries.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued_bytes: Arc::clone(&queued_bytes),
            max_bytes,
            closed: Arc::new(AtomicBool::new(false)),
        },
        Inbox { rx, queued_bytes },
    )
}

/// `msg` encoded, exactly its length.
pub fn encode(msg: &ManagerToRig) -> Result<Box<[u8]>, PushError> {
    postcard::to_allocvec(msg)
        .map(Vec::into_boxed_slice)
        .map_err(|_| PushError::Encode)
}

impl Outbox {
    /// Queues `msg`.
    pub fn push(&self, msg: &ManagerToRig) -> Result<(), PushError> {
        self.push_encoded(encode(msg)?, false)
    }

    /// Queues `msg` as the session's last: the writer sends it and closes.
    pub fn push_last(&self, msg: &ManagerToRig) -> Result<(), PushError> {
        self.push_encoded(encode(msg)?, true)
    }

    /// Queues a job input to be sent as geometry chunks.
    pub fn push_geometry(&self, input: Arc<Vec<u8>>, content: Digest) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        self.tx
            .try_send(Outgoing::Geometry { input, content })
            .map_err(full_or_closed)
    }

    /// Gives up on the session: later pushes are refused, and the session, which checks
    /// [`Outbox::is_closed`] on every frame it reads, ends (the rig may reconnect).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`Outbox::close`] was called on any clone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn push_encoded(&self, bytes: Box<[u8]>, last: bool) -> Result<(), PushError> {
        if self.is_closed() {
            return Err(PushError::Closed);
        }
        let len = bytes.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(PushError::Full);
        }
        self.tx
            .try_send(Outgoing::Message { bytes, last })
            .map_err(|e| {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                full_or_closed(e)
            })
    }

    /// Bytes of encoded messages queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }
}

fn full_or_closed<T>(e: mpsc::error::TrySendError<T>) -> PushError {
    match e {
        mpsc::error::TrySendError::Full(_) => PushError::Full,
        mpsc::error::TrySendError::Closed(_) => PushError::Closed,
    }
}

impl Inbox {
    /// The next entry; `None` once every `Outbox` is gone and the queue is empty.
    pub async fn next(&mut self) -> Option<Outgoing> {
        let out = self.rx.recv().await?;
        if let Outgoing::Message { bytes, .. } = &out {
            self.queued_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
        Some(out)
    }
}

/// The frames of a geometry entry, encoded one at a time as the writer asks (so at most one
/// chunk is in memory beyond the shared input).
pub struct GeometryFrames<'a> {
    chunks: Option<Chunker<'a>>,
}

impl<'a> GeometryFrames<'a> {
    /// The frames of `input`, whose content address is `content` (none if it is larger than
    /// a payload may be).
    pub fn new(input: &'a [u8], content: Digest) -> Self {
        GeometryFrames {
            chunks: Chunker::with_content(input, content).ok(),
        }
    }
}

impl Iterator for GeometryFrames<'_> {
    type Item = Result<Box<[u8]>, PushError>;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.chunks.as_mut()?.next()?;
        Some(encode(&ManagerToRig::GeometryChunk(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::chunk::Reassembler;
    use compushare_protocol::types::AssignmentId;

    fn cancel(n: u64) -> ManagerToRig {
        ManagerToRig::Cancel {
            assignment: AssignmentId(n),
        }
    }

    #[tokio::test]
    async fn bounded_by_entries_and_by_bytes() {
        let (out, mut inbox) = outbox(3, 1 << 20);
        for n in 0..3 {
            out.push(&cancel(n)).unwrap();
        }
        assert_eq!(out.push(&cancel(3)), Err(PushError::Full));
        let one = encode(&cancel(0)).unwrap().len();
        assert_eq!(out.queued_bytes(), 3 * one);
        inbox.next().await.unwrap();
        assert_eq!(out.queued_bytes(), 2 * one);
        out.push(&cancel(3)).unwrap();

        let (out, _inbox) = outbox(100, 2 * one);
        out.push(&cancel(0)).unwrap();
        out.push(&cancel(1)).unwrap();
        assert_eq!(out.push(&cancel(2)), Err(PushError::Full));
        assert_eq!(
            out.queued_bytes(),
            2 * one,
            "a refused push leaves the count"
        );
    }

    #[test]
    fn a_closed_outbox_refuses_every_push_on_every_clone() {
        let (out, _inbox) = outbox(4, 1 << 20);
        let market_side = out.clone();
        out.push(&cancel(0)).unwrap();
        market_side.close();
        assert!(out.is_closed());
        assert_eq!(out.push(&cancel(1)), Err(PushError::Closed));
        assert_eq!(
            out.push_geometry(Arc::new(vec![1, 2, 3]), [0; 32]),
            Err(PushError::Closed)
        );
    }

    #[tokio::test]
    async fn closed_once_the_writer_is_gone() {
        let (out, inbox) = outbox(4, 1 << 20);
        drop(inbox);
        assert_eq!(out.push(&cancel(0)), Err(PushError::Closed));
        assert_eq!(out.queued_bytes(), 0);
    }

    #[test]
    fn a_message_is_queued_at_its_encoded_size_not_the_enums() {
        let bytes = encode(&cancel(7)).unwrap();
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
        assert!(std::mem::size_of::<ManagerToRig>() > 32 * 1024);
        let back: ManagerToRig = compushare_protocol::msg::decode(&bytes).unwrap();
        assert!(matches!(back, ManagerToRig::Cancel { assignment } if assignment.0 == 7));
    }

    #[test]
    fn geometry_frames_reassemble_to_the_input() {
        // Larger than the entry bound of a session queue times a chunk: it used to overflow.
        let input: Vec<u8> = (0..300 * 61_440u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut buf = vec![0u8; input.len()];
        let mut bitmap = vec![0u8; Reassembler::bitmap_len(input.len())];
        let content = Chunker::new(&input).unwrap().content();
        let mut re = Reassembler::new(&mut buf, &mut bitmap, content, input.len() as u32).unwrap();
        let mut frames = 0;
        let mut complete = false;
        for f in GeometryFrames::new(&input, content) {
            let m: ManagerToRig = compushare_protocol::msg::decode(&f.unwrap()).unwrap();
            let ManagerToRig::GeometryChunk(c) = m else {
                panic!("not a chunk")
            };
            complete = re.accept(&c).unwrap();
            frames += 1;
        }
        assert_eq!(frames, 300);
        assert!(complete, "the digest checked out");
        assert_eq!(re.payload(), input.as_slice());
    }
}
