//! CompuShare client library: what `compushare submit`, `status` and `fetch` (and any program
//! of a scientist's) use to talk to a management node.
//!
//! A [`Client`] is one Noise session with a node whose key the caller pins: it submits a job
//! as its bundle (see `compushare_kernels::transport::input::bundle`), asks for status,
//! fetches the merged tally (sealed for this client's key, opened here), rates rigs and reads
//! their public records. It depends on the protocol and the kernels' tally only: no database,
//! no market.
//!
//! A result is reassembled by the workspace's one reassembler, growing with the bytes that
//! arrived (a node's announced length allocates nothing), bounded by the protocol's largest
//! payload.

#![deny(unsafe_code)]

use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::TallyCodecError;
use compushare_protocol::chunk::{ChunkError, Chunker, Reassembler};
use compushare_protocol::msg::{
    ClientToManager, ErrorCode, JobStatus, ManagerToClient, PublicRecord, SubmitJob,
    PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{seal, ChannelError, Identity};
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The secure channel failed (connect, handshake, I/O).
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
    /// The manager refused the session.
    #[error("manager refused the session: {0}")]
    Refused(String),
    /// The manager answered with an error.
    #[error("manager: {code:?}: {message}")]
    Manager {
        /// Its code.
        code: ErrorCode,
        /// Its text.
        message: String,
    },
    /// The manager sent something out of order.
    #[error("unexpected reply from the manager: {0}")]
    Unexpected(&'static str),
    /// The result could not be reassembled (a chunk that does not fit, a wrong digest).
    #[error("result: {0}")]
    Result(#[from] ChunkError),
    /// The result does not open with this client's key.
    #[error("result does not open: {0}")]
    Seal(#[from] seal::SealError),
    /// The result is not a valid tally.
    #[error("result: {0}")]
    Tally(#[from] TallyCodecError),
    /// The job input is too large to send.
    #[error("job input too large")]
    TooLarge,
}

/// A client session with a manager.
pub struct Client {
    ch: TcpChannel,
    me: Identity,
}

impl Client {
    /// Connects, checks the manager's key and says Hello.
    pub async fn connect(
        addr: impl tokio::net::ToSocketAddrs,
        me: Identity,
        manager: &PublicKey,
    ) -> Result<Self, ClientError> {
        let mut ch = connect_tcp(addr, &me, manager, HANDSHAKE_TIMEOUT).await?;
        ch.send(&ClientToManager::Hello {
            version: PROTOCOL_VERSION,
        })
        .await?;
        // Boxed by the channel: a reply is up to ~60 KiB (a result chunk inline).
        let first = ch.recv::<ManagerToClient>().await?;
        match *first {
            ManagerToClient::Welcome { .. } => Ok(Client { ch, me }),
            ManagerToClient::Refused(r) => Err(ClientError::Refused(r.reason.as_str().to_owned())),
            _ => Err(ClientError::Unexpected("expected Welcome")),
        }
    }

    async fn next(&mut self) -> Result<Box<ManagerToClient>, ClientError> {
        let m = self.ch.recv::<ManagerToClient>().await?;
        match *m {
            ManagerToClient::Error { code, message } => Err(ClientError::Manager {
                code,
                message: message.as_str().to_owned(),
            }),
            ManagerToClient::Refused(r) => Err(ClientError::Refused(r.reason.as_str().to_owned())),
            m => Ok(Box::new(m)),
        }
    }

    /// Submits a job given as its bundle (see
    /// [`compushare_kernels::transport::input::bundle`]: MCX JSON alone is the bundle of a
    /// job without a volume; `load_bundle` makes one from a local file and the volume it
    /// names); returns its id, the price per history and the escrowed amount.
    pub async fn submit(
        &mut self,
        input: &[u8],
        photons: u64,
        seed: Option<u64>,
        mode: Mode,
        max_price: Amount,
    ) -> Result<(JobId, Amount, Amount), ClientError> {
        let chunker = Chunker::new(input).map_err(|_| ClientError::TooLarge)?;
        let submit = SubmitJob {
            input: chunker.content(),
            input_len: u32::try_from(input.len()).map_err(|_| ClientError::TooLarge)?,
            photons,
            seed,
            mode,
            max_price,
        };
        self.ch.send(&ClientToManager::SubmitJob(submit)).await?;
        for c in chunker {
            self.ch.send(&ClientToManager::JobData(c)).await?;
        }
        match *self.next().await? {
            ManagerToClient::JobAccepted {
                job,
                price_per_history,
                escrowed,
            } => Ok((job, price_per_history, escrowed)),
            _ => Err(ClientError::Unexpected("expected JobAccepted")),
        }
    }

    /// A job's status.
    pub async fn status(&mut self, job: JobId) -> Result<JobStatus, ClientError> {
        self.ch.send(&ClientToManager::JobStatus { job }).await?;
        match *self.next().await? {
            ManagerToClient::JobStatus(s) => Ok(s),
            _ => Err(ClientError::Unexpected("expected JobStatus")),
        }
    }

    /// Rates a rig that worked on `job` (1-5 stars).
    pub async fn rate(&mut self, job: JobId, rig: PublicKey, stars: u8) -> Result<(), ClientError> {
        self.ch
            .send(&ClientToManager::Rate { job, rig, stars })
            .await?;
        match *self.next().await? {
            ManagerToClient::JobStatus(_) => Ok(()),
            _ => Err(ClientError::Unexpected("expected JobStatus")),
        }
    }

    /// A key's public record (`None`: the manager knows no rig by that key and holds no
    /// rating of it).
    pub async fn rig_record(
        &mut self,
        rig: PublicKey,
    ) -> Result<Option<PublicRecord>, ClientError> {
        self.ch.send(&ClientToManager::RigRecord { rig }).await?;
        match *self.next().await? {
            ManagerToClient::Record(r) => Ok(Some(r)),
            ManagerToClient::UnknownRig { .. } => Ok(None),
            _ => Err(ClientError::Unexpected("expected Record or UnknownRig")),
        }
    }

    /// Fetches a finished job's merged tally (sealed for this client; opened here).
    pub async fn fetch(&mut self, job: JobId) -> Result<Tally, ClientError> {
        self.ch.send(&ClientToManager::FetchResult { job }).await?;
        let (content, len) = match *self.next().await? {
            ManagerToClient::ResultReady { content, len, .. } => (content, len),
            _ => return Err(ClientError::Unexpected("expected ResultReady")),
        };
        let mut asm = Reassembler::growing(content, len, compushare_protocol::limits::MAX_PAYLOAD)?;
        loop {
            match *self.next().await? {
                ManagerToClient::ResultChunk(c) => {
                    if asm.accept(&c)? {
                        break;
                    }
                }
                _ => return Err(ClientError::Unexpected("expected ResultChunk")),
            }
        }
        let plain = seal::open(&self.me, &asm.into_payload())?;
        Ok(Tally::from_canonical_bytes(&plain)?)
    }
}
