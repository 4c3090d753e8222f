//! Device workers: one OS thread per device that does whatever the device's role asks.
//!
//! A worker runs the transport assignment handed to it, if any; otherwise it hashes units of
//! the board's work while its role allows (mining, or transport with no assignment: idle
//! devices hash); otherwise it waits. It polls for a new assignment between units and every
//! [`POLL`] while idle, and whoever hands it one also interrupts the unit it scans, so an
//! assignment starts within milliseconds and a device whose assignment ends is hashing again
//! within one poll.
//!
//! The rig core talks to a worker only through its [`DeviceCell`]: the role and pause flags
//! it sets, the counters the worker keeps (hashes, histories, last progress: what the
//! watchdog watches), and the single-place task queue. A worker that panics is caught and
//! counted and carries on; one that hangs is abandoned by the watchdog, which starts a fresh
//! thread under a new generation (the old one exits when it comes back, its result dropped).
//!
//! Bounded: a device holds one assignment queued (`sync_channel(1)`: the session never sends
//! a second while one runs); events back to the session go through a channel of
//! [`EVENT_QUEUE`] places, one per device at least, since a device produces one event per
//! assignment.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_kernels::sha256d::{ScanWork, Target};
use compushare_kernels::transport::job::Job;
use compushare_protocol::msg::Assign;
use compushare_protocol::types::PublicKey;
use tokio::sync::mpsc;

use crate::device::{DeviceRef, Scan};
use crate::mining::MiningLink;
use crate::scheduler::Stance;
use crate::stratum::miner::{submit_share, Next, SlotCursor};
use crate::sync::lock;
use crate::transport::assignment::RunError;
use crate::transport::work::{run_assignment, Finished};
use crate::vault::SlotBuf;
use crate::{debug, warn};

/// How often an idle worker looks for work.
pub const POLL: Duration = Duration::from_millis(20);
/// Worker events queued for the session at most (per rig; each device has at most one
/// assignment, so this never fills with fewer devices than places).
pub const EVENT_QUEUE: usize = 64;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activity {
    Idle = 0,
    Mining = 1,
    Transport = 2,
}

/// An assignment for a device.
#[derive(Debug)]
pub struct TransportTask {
    pub assign: Assign,
    /// The job with the assignment's seed applied.
    pub job: Arc<Job>,
    pub slot: SlotBuf,
    pub manager_key: PublicKey,
    /// Fixed proof block size (tests); `None` sizes blocks from the assignment.
    pub block_log2: Option<u32>,
    pub cancel: Arc<AtomicBool>,
}

/// What a worker reports to the session.
pub enum WorkerEvent {
    /// An assignment ended: sealed into its slot, or failed (the slot comes back wiped).
    Finished {
        device: usize,
        assign: Assign,
        job: Arc<Job>,
        slot: SlotBuf,
        result: Result<Box<Finished>, RunError>,
        elapsed: Duration,
    },
}

/// Why a task could not be handed to a worker.
#[derive(Debug)]
pub enum HandError {
    /// The device already holds one.
    Busy(Box<TransportTask>),
    /// The worker is gone (restarting or stopped).
    Gone(Box<TransportTask>),
}

/// The state shared between the rig core, the session and one device's worker.
pub struct DeviceCell {
    pub index: usize,
    pub device: DeviceRef,
    stance: AtomicU8,
    paused: AtomicBool,
    stop: AtomicBool,
    generation: AtomicU64,
    activity: AtomicU8,
    hashes: AtomicU64,
    histories: AtomicU64,
    /// Milliseconds since the rig's epoch of the last progress.
    progress_ms: AtomicU64,
    /// Whether the worker had work at its last look (the watchdog's stall clock runs only then).
    has_work: AtomicBool,
    /// Assignment running or queued, + 1 (0: none).
    assignment: AtomicU64,
    faults: AtomicU64,
    /// Nanoseconds since the epoch when the last transport run ended, and when the last
    /// unit of hashing started: how fast a device goes back to hashing.
    transport_end_ns: AtomicU64,
    unit_start_ns: AtomicU64,
    tasks: Mutex<Option<SyncSender<TransportTask>>>,
    epoch: Instant,
}

fn stance_code(s: Stance) -> u8 {
    match s {
        Stance::Mine => 0,
        Stance::Transport => 1,
        Stance::Off => 2,
    }
}

impl DeviceCell {
    fn new(index: usize, device: DeviceRef, epoch: Instant) -> DeviceCell {
        DeviceCell {
            index,
            device,
            stance: AtomicU8::new(stance_code(Stance::Mine)),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            activity: AtomicU8::new(Activity::Idle as u8),
            hashes: AtomicU64::new(0),
            histories: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            has_work: AtomicBool::new(false),
            assignment: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            transport_end_ns: AtomicU64::new(0),
            unit_start_ns: AtomicU64::new(0),
            tasks: Mutex::new(None),
            epoch,
        }
    }

    /// The role the scheduler gave it.
    pub fn stance(&self) -> Stance {
        match self.stance.load(Ordering::Relaxed) {
            0 => Stance::Mine,
            1 => Stance::Transport,
            _ => Stance::Off,
        }
    }

    /// Sets its role; a device leaving hashing drops the unit it scans.
    pub fn set_stance(&self, s: Stance, board_interrupt: impl FnOnce(usize)) {
        self.stance.store(stance_code(s), Ordering::Relaxed);
        if s == Stance::Off {
            board_interrupt(self.index);
        }
    }

    /// Pauses (too hot, disabled) or resumes all of its work.
    pub fn set_paused(&self, p: bool, board_interrupt: impl FnOnce(usize)) {
        self.paused.store(p, Ordering::SeqCst);
        if p {
            board_interrupt(self.index);
        }
    }

    /// Whether it is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// What it does now.
    pub fn activity(&self) -> Activity {
        match self.activity.load(Ordering::Relaxed) {
            1 => Activity::Mining,
            2 => Activity::Transport,
            _ => Activity::Idle,
        }
    }

    /// Nonces hashed since start.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Histories simulated since start.
    pub fn histories(&self) -> u64 {
        self.histories.load(Ordering::Relaxed)
    }

    /// Time since the epoch of its last progress.
    pub fn last_progress(&self) -> Duration {
        Duration::from_millis(self.progress_ms.load(Ordering::Relaxed))
    }

    /// Whether it had work at its last look.
    pub fn has_work(&self) -> bool {
        self.has_work.load(Ordering::Relaxed)
    }

    /// The assignment it holds, if any.
    pub fn assignment(&self) -> Option<u64> {
        match self.assignment.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Faults (panics, device errors) since start.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Time from the end of the last transport run to the first unit of hashing after it,
    /// once the device is hashing again.
    pub fn back_to_hashing(&self) -> Option<Duration> {
        let end = self.transport_end_ns.load(Ordering::SeqCst);
        let start = self.unit_start_ns.load(Ordering::SeqCst);
        (end > 0 && start >= end).then(|| Duration::from_nanos(start - end))
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn progressed(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.progress_ms.store(ms, Ordering::Relaxed);
    }

    /// Hands an assignment to the worker and interrupts the unit it hashes.
    pub fn hand(
        &self,
        task: TransportTask,
        board_interrupt: impl FnOnce(usize),
    ) -> Result<(), HandError> {
        let guard = lock(&self.tasks);
        let Some(tx) = guard.as_ref() else {
            return Err(HandError::Gone(Box::new(task)));
        };
        let id = task.assign.assignment.0;
        match tx.try_send(task) {
            Ok(()) => {
                self.assignment
                    .store(id.saturating_add(1), Ordering::Relaxed);
                board_interrupt(self.index);
                Ok(())
            }
            Err(TrySendError::Full(t)) => Err(HandError::Busy(Box::new(t))),
            Err(TrySendError::Disconnected(t)) => Err(HandError::Gone(Box::new(t))),
        }
    }

    /// Whether an assignment is queued or running.
    pub fn busy(&self) -> bool {
        self.assignment().is_some()
    }

    /// Stops the worker (it exits after the work in hand).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        *lock(&self.tasks) = None;
    }
}

/// Everything a worker thread needs besides its cell.
#[derive(Clone)]
pub struct WorkerEnv {
    pub mining: Arc<MiningLink>,
    pub events: mpsc::Sender<WorkerEvent>,
}

/// The devices' cells, in device order.
pub type Cells = Arc<Vec<Arc<DeviceCell>>>;

/// Makes cells for `devices` and starts a worker on each.
pub fn start(devices: &[DeviceRef], env: &WorkerEnv, epoch: Instant) -> std::io::Result<Cells> {
    let cells: Vec<Arc<DeviceCell>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| Arc::new(DeviceCell::new(i, d.clone(), epoch)))
        .collect();
    for c in &cells {
        spawn(c, env)?;
    }
    Ok(Arc::new(cells))
}

/// Starts a fresh worker for `cell` under a new generation; the previous one (if any) exits
/// when it next looks, and its assignment (if it ever finishes) is dropped. The assignment
/// the cell held is forgotten: the caller answers the manager for it.
pub fn spawn(cell: &Arc<DeviceCell>, env: &WorkerEnv) -> std::io::Result<()> {
    let generation = cell.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, rx) = sync_channel(1);
    *lock(&cell.tasks) = Some(tx);
    cell.assignment.store(0, Ordering::Relaxed);
    cell.activity.store(Activity::Idle as u8, Ordering::Relaxed);
    let worker = Worker {
        cell: cell.clone(),
        generation,
        rx,
        env: env.clone(),
    };
    std::thread::Builder::new()
        .name(format!("device-{}.{generation}", cell.index))
        .spawn(move || worker.run())
        .map(|_| ())
}

struct Worker {
    cell: Arc<DeviceCell>,
    generation: u64,
    rx: Receiver<TransportTask>,
    env: WorkerEnv,
}

impl Worker {
    fn current(&self) -> bool {
        !self.cell.stop.load(Ordering::SeqCst)
            && self.cell.generation.load(Ordering::SeqCst) == self.generation
    }

    fn run(self) {
        let desc = self.cell.device.describe().clone();
        let mut cursor = SlotCursor::new(self.cell.index, desc.scan_chunk_bits);
        let mut queued: Option<TransportTask> = None;
        while self.current() {
            let set = |a: Activity| self.cell.activity.store(a as u8, Ordering::Relaxed);
            if queued.is_none() {
                queued = match self.rx.try_recv() {
                    Ok(t) => Some(t),
                    Err(std::sync::mpsc::TryRecvError::Empty) => None,
                    // The cell was given to a fresh worker.
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        if !self.current() {
                            break;
                        }
                        None
                    }
                };
            }
            if self.cell.paused() {
                set(Activity::Idle);
                self.cell.has_work.store(false, Ordering::Relaxed);
                std::thread::sleep(POLL);
                continue;
            }
            if let Some(task) = queued.take() {
                set(Activity::Transport);
                self.cell.has_work.store(true, Ordering::Relaxed);
                self.cell.progressed();
                self.transport(task);
                set(Activity::Idle);
                continue;
            }
            if self.cell.stance() == Stance::Off {
                set(Activity::Idle);
                self.cell.has_work.store(false, Ordering::Relaxed);
                queued = self.wait_task();
                continue;
            }
            match cursor.next(self.env.mining.board()) {
                Next::Unit(work, unit) => {
                    self.cell
                        .unit_start_ns
                        .store(self.cell.now_ns(), Ordering::SeqCst);
                    set(Activity::Mining);
                    if !self.cell.has_work.swap(true, Ordering::Relaxed) {
                        // The stall clock starts now, not at the last progress before idling.
                        self.cell.progressed();
                    }
                    self.scan(&work, &unit);
                }
                Next::Wait(_) => {
                    set(Activity::Idle);
                    self.cell.has_work.store(false, Ordering::Relaxed);
                    queued = self.wait_task();
                }
            }
        }
        // Assignments handed over but never started go back with their vault slots.
        for task in queued.into_iter().chain(self.rx.try_iter()) {
            self.give_back(task);
        }
        debug!(
            "device {} worker {} exits",
            self.cell.index, self.generation
        );
    }

    /// Waits up to one poll for an assignment.
    fn wait_task(&self) -> Option<TransportTask> {
        match self.rx.recv_timeout(POLL) {
            Ok(t) => Some(t),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(POLL);
                None
            }
        }
    }

    fn scan(&self, work: &crate::stratum::job::Work, unit: &crate::stratum::job::WorkUnit) {
        let board = self.env.mining.board();
        let Some(cancel) = board.cancel_flag(self.cell.index) else {
            return;
        };
        let stats = self.env.mining.stats();
        let shares = self.env.mining.shares();
        let slot = self.cell.index;
        let name = &self.cell.device.describe().name;
        let scan_work = ScanWork::new(
            unit.header,
            Target::from_be_bytes(work.target.to_be_bytes()),
        );
        let found = |nonce: u32| submit_share(&stats, shares, work, unit, nonce, slot, name);
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.cell.device.scan(Scan {
                work: &scan_work,
                nonces: unit.nonces.clone(),
                cancel,
                found: &found,
            })
        }));
        match result {
            Ok(Ok(hashes)) => {
                self.cell.hashes.fetch_add(hashes, Ordering::Relaxed);
                stats.add_hashes(hashes);
                if hashes > 0 {
                    self.cell.progressed();
                }
            }
            Ok(Err(e)) => {
                self.cell.faults.fetch_add(1, Ordering::Relaxed);
                warn!("device {}: {e}", self.cell.index);
                std::thread::sleep(POLL);
            }
            Err(_) => {
                self.cell.faults.fetch_add(1, Ordering::Relaxed);
                warn!("device {}: hashing panicked; carrying on", self.cell.index);
            }
        }
    }

    /// Returns an assignment this worker will not run (it is stopping): its slot, wiped,
    /// goes back to the session as a cancelled run.
    fn give_back(&self, mut task: TransportTask) {
        task.slot.wipe();
        let ev = WorkerEvent::Finished {
            device: self.cell.index,
            assign: task.assign,
            job: task.job,
            slot: task.slot,
            result: Err(RunError::Cancelled),
            elapsed: Duration::ZERO,
        };
        let _ = self.env.events.blocking_send(ev);
    }

    fn transport(&self, mut task: TransportTask) {
        let began = Instant::now();
        let cell = &self.cell;
        let mut progress = |n: u64| {
            cell.histories.fetch_add(n, Ordering::Relaxed);
            cell.progressed();
            // Too hot: hold the assignment between batches until it cools (or is cancelled).
            while cell.paused() && !task.cancel.load(Ordering::Relaxed) && self.current() {
                std::thread::sleep(POLL);
            }
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_assignment(
                &task.assign,
                &task.job,
                cell.device.as_ref(),
                task.block_log2,
                &task.manager_key,
                &task.cancel,
                &mut task.slot,
                &mut progress,
            )
        }));
        cell.transport_end_ns.store(cell.now_ns(), Ordering::SeqCst);
        let result = match result {
            Ok(r) => r.map(Box::new),
            Err(_) => {
                cell.faults.fetch_add(1, Ordering::Relaxed);
                Err(RunError::Device(crate::device::DeviceError::Driver(
                    crate::device::DriverFault::TransportPanicked,
                )))
            }
        };
        if result.is_err() {
            task.slot.wipe();
        }
        // Clear the cell's assignment only if no newer one was handed meanwhile.
        let _ = cell.assignment.compare_exchange(
            task.assign.assignment.0.saturating_add(1),
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let ev = WorkerEvent::Finished {
            device: cell.index,
            assign: task.assign,
            job: task.job,
            slot: task.slot,
            result,
            elapsed: began.elapsed(),
        };
        // Blocks only if the session stopped reading (then the rig is stopping).
        let _ = self.env.events.blocking_send(ev);
    }
}
