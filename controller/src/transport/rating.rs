//! Star ratings a rig gives the clients whose jobs it worked on.
//!
//! A [`RatingHandle`] (from [`crate::rig::Rig::rating_handle`]) queues a rating for the rig's
//! session task, which sends `RigToManager::RateClient` and hands back the manager's
//! `ManagerToRig::Rated` answer. The manager accepts a rating only for an assignment this rig
//! returned work on, one per rig and client (a second replaces the first). A rating queued
//! while the rig is disconnected goes out on the next session; one sent on a session that
//! ends before the answer fails with [`RateError::NoAnswer`] and may simply be sent again.
//!
//! Bounded: [`RATING_QUEUE`] ratings wait for the session at most; a caller waits for room.

use std::collections::HashMap;

use compushare_protocol::msg::RatingOutcome;
use compushare_protocol::types::AssignmentId;
use tokio::sync::{mpsc, oneshot};

/// Ratings queued for the session at most.
pub const RATING_QUEUE: usize = 16;

/// Why a rating got no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// The rig is no longer running.
    #[error("the rig is not running")]
    Stopped,
    /// The session ended before the manager answered; rating again is safe (it replaces).
    #[error("the session with the manager ended before it answered")]
    NoAnswer,
}

/// One rating on its way to the session task.
#[derive(Debug)]
pub struct Request {
    pub assignment: AssignmentId,
    pub stars: u8,
    reply: oneshot::Sender<RatingOutcome>,
}

/// Rates clients on behalf of a running rig; cheap to clone.
#[derive(Debug, Clone)]
pub struct RatingHandle {
    tx: mpsc::Sender<Request>,
}

/// A new rating queue: the handle side and the session side.
pub fn channel() -> (RatingHandle, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(RATING_QUEUE);
    (RatingHandle { tx }, rx)
}

impl RatingHandle {
    /// Rates (1-5 stars) the client whose job `assignment` belonged to, and waits for the
    /// manager's outcome (`Recorded`, `Replaced`, or why it refused).
    pub async fn rate_client(
        &self,
        assignment: AssignmentId,
        stars: u8,
    ) -> Result<RatingOutcome, RateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                assignment,
                stars,
                reply,
            })
            .await
            .map_err(|_| RateError::Stopped)?;
        answer.await.map_err(|_| RateError::NoAnswer)
    }
}

/// Ratings sent on the current session, waiting for the manager's answer (answered in order
/// per assignment).
#[derive(Debug, Default)]
pub struct Pending {
    waiting: HashMap<AssignmentId, Vec<oneshot::Sender<RatingOutcome>>>,
}

impl Pending {
    /// Remembers a request that was just sent.
    pub fn sent(&mut self, r: Request) {
        self.waiting.entry(r.assignment).or_default().push(r.reply);
    }

    /// Delivers the manager's answer to the oldest request about `assignment`; an answer
    /// nobody waits for is ignored.
    pub fn answered(&mut self, assignment: AssignmentId, outcome: RatingOutcome) {
        if let Some(list) = self.waiting.get_mut(&assignment) {
            if !list.is_empty() {
                let _ = list.remove(0).send(outcome);
            }
            if list.is_empty() {
                self.waiting.remove(&assignment);
            }
        }
    }

    /// The session ended: every waiting request fails with [`RateError::NoAnswer`].
    pub fn session_ended(&mut self) {
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_go_to_the_oldest_request_and_a_lost_session_says_so() {
        let (h, mut rx) = channel();
        let a = AssignmentId(5);
        let first = tokio::spawn({
            let h = h.clone();
            async move { h.rate_client(a, 4).await }
        });
        let mut pending = Pending::default();
        let r = rx.recv().await.unwrap();
        assert_eq!((r.assignment, r.stars), (a, 4));
        pending.sent(r);
        let second = tokio::spawn({
            let h = h.clone();
            async move { h.rate_client(a, 2).await }
        });
        pending.sent(rx.recv().await.unwrap());
        pending.answered(a, RatingOutcome::Recorded);
        pending.answered(AssignmentId(6), RatingOutcome::NotYourWork); // nobody waits
        assert_eq!(first.await.unwrap(), Ok(RatingOutcome::Recorded));
        pending.session_ended();
        assert_eq!(second.await.unwrap(), Err(RateError::NoAnswer));
        drop(rx);
        assert_eq!(h.rate_client(a, 1).await, Err(RateError::Stopped));
    }
}
