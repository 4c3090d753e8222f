//! The market's durable writes: decided under the market's lock, committed off it, in the
//! order they were decided.
//!
//! The market ([`crate::market`]) never waits for the disk. A decision that must survive a
//! crash (a result verified and paid, a rig caught, a job merged and settled, a duplicate
//! passed, an assignment late or issued) becomes a [`Write`] pushed here, which costs a short
//! lock of this queue and no I/O. Whoever released the market's lock then runs
//! [`Journal::drain`] on a blocking thread (see [`crate::tasks`]): it commits the queued writes
//! in order, one redb transaction each (tallies are merged here too, for a finished job), and
//! hands what each commit did ([`Written`]) back to the market, which finishes the transition
//! (moves the assignment on, tells the rig, evicts the job).
//!
//! What holds:
//! - **Order.** One drainer at a time (the `lane`), and writes leave the queue in the order
//!   they were pushed, which is the order the market decided them (pushes happen under the
//!   market's lock). The store therefore always holds a prefix of the market's decisions, as
//!   it did when every commit ran under the lock: a rig caught after one of its results was
//!   decided verified forfeits that result's pending pay, because the payment commits first.
//! - **Durable before visible.** What a rig or a client is told about money or a finished job
//!   (`Verified`, `PaymentNotice`, a closed offer, `Done`) is sent when the outcome comes back,
//!   after the commit. A `kill -9` between a decision and its commit loses the decision only;
//!   a restart recomputes what was not committed (see [`crate::persist`]).
//! - **Idempotent outcomes.** The market applies an outcome only to an assignment or a job
//!   still in the stage that planned it (`Recording`, finishing); anything that moved meanwhile
//!   (its rig caught, its job gone) keeps what the newer decision made of it.
//! - **Bounded.** A write stands for one transition of one assignment or job (an assignment is
//!   recorded once, a job finished once, a rig caught at most once per failed result), so the
//!   queue never holds more than the market's own tables; records of issued assignments are
//!   batched and a flush is forced at [`MAX_RECORDS`].
//!
//! Records of issued or abandoned assignments carry no money: they are written with the next
//! write, or at the next tick ([`Journal::flush`]), so the hot path does not fsync per
//! assignment.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use compushare_kernels::transport::tally::Tally;
use compushare_kernels::transport::TransportError;
use compushare_protocol::types::{AssignmentId, Digest, JobId, PublicKey};

use crate::costing;
use crate::persist::{Caught, Persist, PersistError, Recorded, Verified};
use crate::records::AssignmentRecord;
use crate::store::{Store, StoreError};
use crate::trust::RigRecord;

/// Records of issued assignments queued before a flush is forced.
pub const MAX_RECORDS: usize = 4096;

/// A durable write the market decided.
#[derive(Debug)]
#[non_exhaustive]
pub enum Write {
    /// An assignment's state that moves no money (issued, abandoned): batched.
    Record(AssignmentRecord),
    /// Writes the batched records now (every tick).
    Flush,
    /// An assignment missed its deadline; its rig's record counts it.
    Late(AssignmentRecord),
    /// A result (or a check run) verified: recorded, its rig's record updated, paid.
    Verified(Box<Verified>),
    /// A rig caught: demoted, its discarded work ended, its pending pay forfeited.
    Caught(Box<Caught>),
    /// A rig passed a duplicate; with `release` its pending pay becomes spendable.
    DuplicatePassed {
        rig: PublicKey,
        payout_to: PublicKey,
        release: bool,
    },
    /// A job whose every photon is held: its tallies merged, result stored, settled.
    Finish(Finish),
    /// The next block of assignment numbers, reserved ahead of need.
    ReserveIds,
}

/// What finishing a job needs: its held tallies in photon order and its terms.
#[derive(Debug)]
pub struct Finish {
    pub job: JobId,
    /// Held tallies by start photon (merged in this order: the merge is exact either way).
    pub tallies: Vec<Arc<Tally>>,
    /// The held results' assignments (their tallies are dropped from the store).
    pub held: Vec<AssignmentId>,
    /// What the job paid its workers, and its fee rate.
    pub spent: u64,
    pub fee_bp: u64,
}

/// What a commit did, handed back to the market.
#[derive(Debug)]
#[non_exhaustive]
pub enum Written {
    /// Batched records (or a late assignment) written, or not.
    Records(Result<(), PersistError>),
    /// A verified result recorded and paid.
    Verified {
        assignment: AssignmentId,
        result: Result<Recorded, PersistError>,
    },
    /// A caught rig's demotion: its record and the pay forfeited.
    Caught {
        rig: PublicKey,
        result: Result<(RigRecord, u64), PersistError>,
    },
    /// A passed duplicate recorded.
    DuplicatePassed {
        rig: PublicKey,
        payout_to: PublicKey,
        release: bool,
        result: Result<RigRecord, PersistError>,
    },
    /// A block of assignment numbers reserved (or not).
    Ids(Result<std::ops::Range<u64>, StoreError>),
    /// A job merged and settled: (fee taken, refund).
    Finished {
        job: JobId,
        result: Result<Settled, FinishError>,
    },
}

/// A finished job's settlement.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// What the job paid its workers (the fee is taken on it).
    pub spent: u64,
    pub fee: u64,
    pub refund: u64,
    /// The merged result's digest.
    pub digest: Digest,
}

/// Why a job could not be finished.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinishError {
    /// Its held tallies do not merge (the job fails: its tallies disagree in shape).
    #[error("merge failed: {0}")]
    Merge(TransportError),
    /// It held no tally.
    #[error("no held result to merge")]
    Empty,
    /// The store refused the settlement (the job stays running and is finished again later).
    #[error(transparent)]
    Store(#[from] PersistError),
}

impl FinishError {
    /// The variant's name (`finish.` and its own, or the store's), for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            FinishError::Merge(_) => "finish.merge",
            FinishError::Empty => "finish.empty",
            FinishError::Store(e) => e.kind(),
        }
    }
}

/// The queue of durable writes and the lane that commits them.
#[derive(Debug)]
pub struct Journal {
    persist: Persist,
    queue: Mutex<Queue>,
    /// Held by the one drainer committing now.
    lane: Mutex<()>,
    /// A drain was started and has not begun taking writes yet (see [`Journal::schedule`]).
    scheduled: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    writes: VecDeque<Write>,
    /// Writes other than batched records queued now (what a drain commits up to).
    barriers: usize,
    /// Records queued since the last barrier.
    records: usize,
}

impl Journal {
    /// A journal committing to `store`.
    pub fn new(store: Arc<Store>) -> Arc<Journal> {
        Arc::new(Journal {
            persist: Persist::new(store),
            queue: Mutex::new(Queue::default()),
            lane: Mutex::new(()),
            scheduled: AtomicBool::new(false),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Pushes and takes keep the queue whole at every step: a poisoned lock is still used.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write` after everything queued before it (no I/O).
    pub fn push(&self, write: Write) {
        let mut q = self.queue();
        match write {
            Write::Record(_) => q.records += 1,
            _ => {
                q.barriers += 1;
                q.records = 0;
            }
        }
        q.writes.push_back(write);
        if q.records >= MAX_RECORDS {
            q.barriers += 1;
            q.records = 0;
            q.writes.push_back(Write::Flush);
        }
    }

    /// Queues the batched records to be written at the next drain (the market's tick).
    pub fn flush(&self) {
        let q = self.queue();
        if q.records > 0 {
            drop(q);
            self.push(Write::Flush);
        }
    }

    /// Whether a drain has something to commit (batched records alone wait for a flush).
    pub fn has_work(&self) -> bool {
        self.queue().barriers > 0
    }

    /// Whether the caller should start a drain: there is work and no drain started before
    /// is still to begin (so a burst of decisions starts one drain, not one each).
    pub fn schedule(&self) -> bool {
        self.has_work() && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Takes every write up to the last one that is not a batched record.
    fn take(&self) -> Vec<Write> {
        let mut q = self.queue();
        if q.barriers == 0 {
            return Vec::new();
        }
        let keep = q.records;
        let n = q.writes.len() - keep;
        q.barriers = 0;
        q.writes.drain(..n).collect()
    }

    /// Commits what is queued, in order, and hands the outcomes to `apply` (which locks the
    /// market); repeats while applying queued more. Returns what `apply` returned. Runs on a
    /// blocking thread. If another drain is committing, returns at once: that one commits
    /// whatever is queued before it lets go, and checks again after.
    pub fn drain<T>(&self, mut apply: impl FnMut(Vec<Written>) -> Vec<T>) -> Vec<T> {
        let mut out = Vec::new();
        // Writes pushed from now on are left to this drain or schedule the next.
        self.scheduled.store(false, Ordering::Release);
        loop {
            let Ok(lane) = self.lane.try_lock() else {
                return out;
            };
            loop {
                let writes = self.take();
                if writes.is_empty() {
                    break;
                }
                let written = self.commit(writes);
                out.extend(apply(written));
            }
            drop(lane);
            // A write queued after the last take but before the lane was let go found the
            // lane busy and left it to this drain.
            if !self.has_work() {
                return out;
            }
        }
    }

    /// Like [`Journal::drain`], but waits for a drain under way instead of leaving the writes
    /// to it, and flushes batched records too: when it returns, everything pushed before the
    /// call is committed and applied. For shutdown and tests; the caller must not hold the
    /// market's lock (`apply` takes it, and so does the drain it waits for).
    pub fn settle<T>(&self, mut apply: impl FnMut(Vec<Written>) -> Vec<T>) -> Vec<T> {
        self.flush();
        let mut out = Vec::new();
        let _lane = self.lane.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let writes = self.take();
            if writes.is_empty() {
                return out;
            }
            let written = self.commit(writes);
            out.extend(apply(written));
        }
    }

    /// Commits `writes` in order: batched records go into the next transaction.
    fn commit(&self, writes: Vec<Write>) -> Vec<Written> {
        let mut records: Vec<AssignmentRecord> = Vec::new();
        let mut out = Vec::new();
        for w in writes {
            let p = &self.persist;
            let done = match w {
                Write::Record(rec) => {
                    records.push(rec);
                    continue;
                }
                Write::Flush => Written::Records(p.records(&records)),
                Write::Late(rec) => Written::Records(p.late(&records, &rec)),
                Write::Verified(v) => Written::Verified {
                    assignment: v.record.id,
                    result: p.verified(&records, &v),
                },
                Write::Caught(c) => Written::Caught {
                    rig: c.rig,
                    result: p.caught(&records, &c),
                },
                Write::DuplicatePassed {
                    rig,
                    payout_to,
                    release,
                } => Written::DuplicatePassed {
                    rig,
                    payout_to,
                    release,
                    result: p.duplicate_passed(&records, &rig, &payout_to, release),
                },
                Write::Finish(f) => Written::Finished {
                    job: f.job,
                    result: finish(p, &records, &f),
                },
                Write::ReserveIds => {
                    // Its own transaction; batched records before it stay queued for the
                    // next write (they carry no money and no number depends on them).
                    out.push(Written::Ids(p.reserve_ids()));
                    continue;
                }
            };
            records.clear();
            out.push(done);
        }
        if !records.is_empty() {
            // Only batched records after the last barrier are left queued by `take`.
            out.push(Written::Records(self.persist.records(&records)));
        }
        out
    }
}

/// Merges a job's held tallies and settles it in one transaction (see
/// [`Persist::finished`]).
fn finish(p: &Persist, records: &[AssignmentRecord], f: &Finish) -> Result<Settled, FinishError> {
    let mut tallies = f.tallies.iter();
    let mut merged = match tallies.next() {
        Some(t) => (**t).clone(),
        None => return Err(FinishError::Empty),
    };
    for t in tallies {
        merged.merge(t).map_err(FinishError::Merge)?;
    }
    let bytes = merged.canonical_bytes();
    let digest = merged.digest();
    drop(merged);
    let fee = costing::fee(f.spent, f.fee_bp);
    let (fee, refund) = p.finished(records, f.job, &bytes, digest, fee, &f.held)?;
    Ok(Settled {
        spent: f.spent,
        fee,
        refund,
        digest,
    })
}
