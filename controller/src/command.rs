//! Operator commands that change a running rig, and the bounded channel that carries them.
//!
//! The console (serial, network, or relayed by the manager as `ConsoleCommand`) parses a line
//! into a [`Command`] and sends it with a reply slot over a [`CommandTx`]; the rig core owns the
//! [`CommandRx`], executes each command against the state it owns and answers. Read-only
//! console commands (status, devices, pools, vault, log, help) are answered from the
//! [`crate::status`] snapshot and never come here.
//!
//! Capacity: [`COMMAND_QUEUE`] commands in flight; when full, `try_send` fails and the console
//! answers "busy" at once instead of waiting (an operator retries; a flood cannot grow memory).

use compushare_protocol::types::Role;
use tokio::sync::{mpsc, oneshot};

/// Commands queued for the rig core at once.
pub const COMMAND_QUEUE: usize = 16;

/// A change an operator asks of the rig.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Pin a device's role (`Auto` hands it back to the scheduler); `None` means every device.
    Role { device: Option<u8>, role: Role },
    /// Add a pool at the lowest priority (or at `number`, shifting none: the number must be
    /// free).
    PoolAdd {
        number: Option<u32>,
        url: String,
        user: String,
        pass: String,
    },
    /// Remove the pool `POOLn`.
    PoolRemove { number: u32 },
    /// Restart the controller (on the image, PID 1 starts it again).
    Reboot,
}

/// Why the rig refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No device has this index.
    #[error("no device {0}")]
    NoSuchDevice(u8),
    /// The device is disabled by the watchdog (DEAD) and takes no role until a restart.
    #[error("device {0} is disabled (dead)")]
    DeviceDead(u8),
    /// No pool has this number.
    #[error("no pool {0}")]
    NoSuchPool(u32),
    /// The pool number is taken, or all pool numbers are.
    #[error("pool number {0} is in use")]
    PoolNumberTaken(u32),
    /// Removing the last pool would leave mining devices with nothing to do.
    #[error("cannot remove the last pool")]
    LastPool,
    /// The pool URL is not `stratum+tcp://host:port` or `stratum+ssl://host:port`.
    #[error("bad pool URL {0:?}: expected stratum+tcp://host:port or stratum+ssl://host:port")]
    BadPoolUrl(String),
    /// The rig is in maintenance mode (a bad rig.conf): devices take no commands.
    #[error("maintenance mode: {0}")]
    Maintenance(String),
    /// The command queue is full; try again.
    #[error("busy, try again")]
    Busy,
    /// The rig core is shutting down.
    #[error("rig is shutting down")]
    ShuttingDown,
}

/// One queued command and where its answer goes (a line of text for the operator).
pub type Request = (Command, oneshot::Sender<Result<String, CommandError>>);

/// Sending side (cloned into every console).
#[derive(Debug, Clone)]
pub struct CommandTx(mpsc::Sender<Request>);
/// Receiving side (owned by the rig core).
pub type CommandRx = mpsc::Receiver<Request>;

/// A new command channel of [`COMMAND_QUEUE`] places.
pub fn channel() -> (CommandTx, CommandRx) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    (CommandTx(tx), rx)
}

impl CommandTx {
    /// Queues `cmd` without waiting for room and waits for the rig core's answer.
    pub async fn call(&self, cmd: Command) -> Result<String, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.0.try_send((cmd, tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::Busy,
            mpsc::error::TrySendError::Closed(_) => CommandError::ShuttingDown,
        })?;
        rx.await.map_err(|_| CommandError::ShuttingDown)?
    }
}
