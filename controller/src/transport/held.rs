//! The rig's assignments: those accepted and not finished (with their vault slot and cancel
//! flag), and those finished, kept to answer the manager's sample requests until it settles
//! them (verified, failed or paid).
//!
//! Bounded: one running assignment per device (the session never accepts a second), and
//! `max_done` finished ones (the oldest forgotten beyond it: its proofs can no longer be made,
//! which the manager counts as a failed check, so the limit sits well above the vault's slots).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use compushare_kernels::transport::job::Job;
use compushare_protocol::msg::Assign;
use compushare_protocol::types::{AssignmentId, Digest};

use super::proofs::Commitments;
use crate::vault::SlotId;

/// An accepted assignment.
#[derive(Debug)]
pub struct Running {
    pub assign: Assign,
    pub slot: SlotId,
    pub cancel: Arc<AtomicBool>,
    /// Handed to its device (false while its geometry is fetched).
    pub started: bool,
}

/// A finished assignment.
#[derive(Debug)]
pub struct Done {
    pub commitments: Commitments,
    pub job: Arc<Job>,
    pub device: usize,
    pub geometry: Digest,
}

/// Running and finished assignments.
#[derive(Debug)]
pub struct Assignments {
    running: HashMap<AssignmentId, Running>,
    done: HashMap<AssignmentId, Done>,
    order: VecDeque<AssignmentId>,
    max_done: usize,
}

impl Assignments {
    pub fn new(max_done: usize) -> Assignments {
        Assignments {
            running: HashMap::new(),
            done: HashMap::new(),
            order: VecDeque::new(),
            max_done: max_done.max(1),
        }
    }

    /// Whether `id` is known (running or finished).
    pub fn knows(&self, id: AssignmentId) -> bool {
        self.running.contains_key(&id) || self.done.contains_key(&id)
    }

    /// The running assignment on `device`, if any.
    pub fn on_device(&self, device: u8) -> Option<AssignmentId> {
        self.running
            .iter()
            .find(|(_, r)| r.assign.device == device)
            .map(|(id, _)| *id)
    }

    pub fn start(&mut self, r: Running) {
        self.running.insert(r.assign.assignment, r);
    }

    pub fn running(&self, id: AssignmentId) -> Option<&Running> {
        self.running.get(&id)
    }

    pub fn running_mut(&mut self, id: AssignmentId) -> Option<&mut Running> {
        self.running.get_mut(&id)
    }

    /// Running assignments still waiting for their geometry.
    pub fn waiting_for(&self, geometry: Option<&Digest>) -> Vec<Assign> {
        let mut v: Vec<Assign> = self
            .running
            .values()
            .filter(|r| !r.started && geometry.is_none_or(|g| r.assign.geometry == *g))
            .map(|r| r.assign)
            .collect();
        v.sort_by_key(|a| a.assignment.0);
        v
    }

    /// Stops tracking a running assignment (finished, failed, cancelled); sets its cancel
    /// flag so a device still running it stops at its next batch.
    pub fn end(&mut self, id: AssignmentId) -> Option<Running> {
        let r = self.running.remove(&id)?;
        r.cancel.store(true, Ordering::Relaxed);
        Some(r)
    }

    /// Keeps a finished assignment for sample requests.
    pub fn finish(&mut self, id: AssignmentId, d: Done) {
        while self.done.len() >= self.max_done {
            match self.order.pop_front() {
                Some(old) => {
                    self.done.remove(&old);
                }
                None => break,
            }
        }
        self.done.insert(id, d);
        self.order.push_back(id);
    }

    pub fn done(&self, id: AssignmentId) -> Option<&Done> {
        self.done.get(&id)
    }

    /// The manager settled a finished assignment.
    pub fn settle(&mut self, id: AssignmentId) {
        if self.done.remove(&id).is_some() {
            self.order.retain(|a| *a != id);
        }
    }
}
