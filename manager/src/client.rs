//! Client requests: the manager's preparation of a submitted job (validation, calibration of its
//! machine-independent cost) and the client-side library the CLI uses (connect, submit,
//! status, fetch, rate, rig records).
//!
//! Cost of a history: the `costing` module's calibration batch on the manager's own engine,
//! the mean of (1 + scattering events) per photon, in thousandths. It depends only on the
//! job's physics, never on the machine, so every rig is paid the same for the same work.

use compushare_kernels::transport::input::bundle::JobBundle;
use compushare_kernels::transport::input::{bound, parse_bundle, InputError, ParseOptions};
use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::tally_ops::tally_cells;
use compushare_kernels::transport::{TallyCodecError, TransportError};
use compushare_protocol::chunk::{content_address, Chunker};
use compushare_protocol::msg::{
    ClientToManager, ErrorCode, JobStatus, ManagerToClient, PublicRecord, SubmitJob,
    PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{seal, ChannelError, Identity};
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};

use crate::market::JobSpec;
use crate::results::{Assembly, ResultError};

/// What this node accepts of a job and how it prices it (from its stored settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Most memory one job may take, bytes (`Config::max_job_bytes`).
    pub max_job_bytes: u64,
    /// Photons of the calibration batch (`Config::calibration_photons`).
    pub calibration_photons: u64,
    /// Wall-clock bound of the calibration batch (`Config::calibration_max_ms`).
    pub calibration_time: std::time::Duration,
}

impl JobLimits {
    /// The limits a node's settings give.
    pub fn of(config: &crate::Config) -> JobLimits {
        JobLimits {
            max_job_bytes: config.max_job_bytes,
            calibration_photons: config.calibration_photons,
            calibration_time: std::time::Duration::from_millis(config.calibration_max_ms),
        }
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits::of(&crate::Config::default())
    }
}

/// Why a submitted job was refused before pricing. Every message speaks of the client's own
/// job (JSON fields, its sizes, this node's limits), never of a file on the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The input does not parse (the message names the field).
    #[error("{0}")]
    Input(#[from] InputError),
    /// The job's upper bound of memory, from its JSON alone, is over this node's limit.
    #[error(
        "`Domain.Dim` {dim:?} with {gates} time gate(s) needs up to {needed} bytes, over this \
         node's limit of {limit} bytes per job"
    )]
    OverLimit {
        /// Grid size asked for.
        dim: [u64; 3],
        /// Time gates asked for.
        gates: u64,
        /// The bound.
        needed: u128,
        /// `max_job_bytes`.
        limit: u64,
    },
    /// The engine refuses the job (too large, inconsistent).
    #[error("{0}")]
    Engine(#[from] TransportError),
    /// The job's tally size overflows.
    #[error("the job's tally is too large")]
    TooLarge,
    /// The calibration batch failed.
    #[error("{0}")]
    Costing(#[from] crate::costing::CostingError),
}

/// A validated, priced job.
#[derive(Debug)]
pub struct PreparedJob {
    pub spec: JobSpec,
    /// Machine-independent cost of one history, thousandths of a cost unit.
    pub cost_milli: u64,
}

/// Prepares a job bundle as a client sent it (photons and seed overridden as the submission
/// says): an upper bound of its memory from the JSON alone is checked against the node's
/// limit before any grid is built, then it is parsed (its volume only from the bundle) and
/// its cost calibrated within the node's calibration bounds.
pub fn prepare_job(
    bundle: Vec<u8>,
    photons: u64,
    seed: Option<u64>,
    limits: &JobLimits,
) -> Result<PreparedJob, PrepareError> {
    let opts = ParseOptions {
        photons: Some(photons),
        max_job_bytes: limits.max_job_bytes,
    };
    let json = JobBundle::decode(&bundle).map_err(InputError::from)?.json;
    let b = bound(json, &opts)?;
    if b.memory_bytes > u128::from(limits.max_job_bytes) {
        return Err(PrepareError::OverLimit {
            dim: b.dim,
            gates: b.gates,
            needed: b.memory_bytes,
            limit: limits.max_job_bytes,
        });
    }
    let mut job = parse_bundle(&bundle, &opts)?;
    if let Some(s) = seed {
        job.seed = s;
    }
    let cells = tally_cells(&job)
        .and_then(|c| usize::try_from(c).ok())
        .ok_or(PrepareError::TooLarge)?;
    // The costing module's deterministic batch (fixed seed, bounded time): the price does not
    // depend on the client's seed or on this machine.
    let cal = crate::costing::calibrate(&job, limits.calibration_photons, limits.calibration_time)?;
    let cost_milli = cal.cost_per_history_milli.max(1);
    let content = content_address(&bundle);
    Ok(PreparedJob {
        spec: JobSpec {
            job,
            input: std::sync::Arc::new(bundle),
            content,
            cells,
        },
        cost_milli,
    })
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
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
    /// The result could not be reassembled.
    #[error("result: {0}")]
    Result(#[from] ResultError),
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
        let mut asm = Assembly::new(content, len, compushare_protocol::limits::MAX_PAYLOAD)?;
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
        let plain = seal::open(&self.me, &asm.into_bytes())?;
        Ok(Tally::from_canonical_bytes(&plain)?)
    }
}
