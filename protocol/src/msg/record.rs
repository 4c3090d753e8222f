//! A key's public record as a manager tells it to clients: a rig's standing (trust, verified
//! histories, errors, time to return per cost, recent trust events) and the star ratings the
//! key received, as a rig from clients and as a client from rigs.
//!
//! Only counts and sums travel; means are computed by the reader from them, so nothing here
//! is a float and every record has exactly one encoding.

use heapless::Vec;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::limits::RECORD_EVENTS;
use crate::types::{Amount, AssignmentId, Name, PublicKey, TrustLevel};

/// Everything public about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct PublicRecord {
    pub key: PublicKey,
    /// The key's standing as a rig, when the manager knows it as one.
    pub rig: Option<RigStanding>,
    /// Stars from clients whose jobs this key worked on.
    pub as_rig: RatingSummary,
    /// Stars from rigs that worked on this key's jobs.
    pub as_client: RatingSummary,
}

/// A rig's standing with the manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct RigStanding {
    pub label: Name,
    pub trust: TrustLevel,
    /// Verified histories ever.
    pub histories_verified: u64,
    /// Verified histories since joining or the last error (what promotion counts).
    pub consecutive_verified: u64,
    pub errors: ErrorCounts,
    pub returns: ReturnStats,
    /// The most recent trust events, oldest first (empty where the manager keeps none).
    pub events: Vec<TrustEvent, RECORD_EVENTS>,
    /// Paid for verified work.
    pub paid: Amount,
    /// Pending pay lost to a failed check.
    pub forfeited: Amount,
}

/// A rig's faults, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct ErrorCounts {
    /// Results that failed verification (sample, proof, duplicate or decode).
    pub verification: u64,
    /// Assignments returned after their deadline (or never).
    pub late: u64,
    /// Times the rig lost trusted status.
    pub demotions: u64,
}

/// Time to return per unit of machine-independent cost, nanoseconds per cost unit (a fast
/// device needs well under a microsecond per unit).
///
/// `None` where the manager has no such figure (no return yet, or it keeps only the recent
/// value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct ReturnStats {
    /// Returns measured.
    pub count: u64,
    /// The recent value that sizes new assignments.
    pub recent_ns_per_unit: Option<u64>,
    pub mean_ns_per_unit: Option<u64>,
    pub min_ns_per_unit: Option<u64>,
    pub max_ns_per_unit: Option<u64>,
}

/// A dated change in a rig's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct TrustEvent {
    pub time_unix_s: u64,
    pub kind: TrustEventKind,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum TrustEventKind {
    /// First seen.
    Joined,
    /// Became trusted.
    Promoted,
    /// A verification error (demoted at once if it was trusted).
    Error {
        kind: RigErrorKind,
        assignment: Option<AssignmentId>,
    },
    /// Missed an assignment's deadline.
    Late { assignment: AssignmentId },
}

/// Which verification a rig's result failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum RigErrorKind {
    /// A sampled history did not re-simulate to the committed record.
    SampleMismatch,
    /// A Merkle proof did not verify against the committed root.
    BadProof,
    /// Its result differed from a duplicate run and lost the arbitration.
    DuplicateMismatch,
    /// The uploaded result did not match its commitment or did not decode.
    BadResult,
}

/// Star ratings (1-5) of one kind, one per rater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct RatingSummary {
    pub count: u64,
    /// Sum of the stars: the mean is `sum / count`.
    pub sum: u64,
}

impl RatingSummary {
    /// Mean stars in hundredths (e.g. 425 for 4.25), rounded to nearest; `None` if unrated.
    pub fn mean_centi(&self) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let centi =
            (u128::from(self.sum) * 100 + u128::from(self.count) / 2) / u128::from(self.count);
        Some(u64::try_from(centi).unwrap_or(u64::MAX))
    }

    /// Adds one rating.
    pub fn add(&mut self, stars: u8) {
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u64::from(stars));
    }

    /// Removes one rating given earlier (a rater replacing its rating).
    pub fn remove(&mut self, stars: u8) {
        self.count = self.count.saturating_sub(1);
        self.sum = self.sum.saturating_sub(u64::from(stars));
    }
}

/// The manager's answer to a rig's rating of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum RatingOutcome {
    /// Recorded: the rig's first rating of this client.
    Recorded,
    /// Recorded in place of this rig's earlier rating of this client (one per rater and subject).
    Replaced,
    /// Refused: the rig returned no work on that assignment (or it is not the rig's).
    NotYourWork,
    /// Refused: stars must be 1 to 5.
    BadStars,
    /// Not recorded: the manager could not store it (its log says why); the rig may rate again.
    NotRecorded,
}

#[cfg(test)]
mod tests {
    use super::RatingSummary;

    #[test]
    fn mean_is_rounded_hundredths() {
        let mut r = RatingSummary::default();
        assert_eq!(r.mean_centi(), None);
        for s in [5, 4, 4] {
            r.add(s);
        }
        assert_eq!(r.mean_centi(), Some(433));
        r.remove(4);
        assert_eq!(r.mean_centi(), Some(450));
        let huge = RatingSummary {
            count: 1,
            sum: u64::MAX,
        };
        assert_eq!(huge.mean_centi(), Some(u64::MAX));
    }
}
