//! Per-rig trust records and star ratings, and the trust rules:
//! a rig is untrusted on joining; it becomes trusted after `promote_after` consecutive verified
//! histories (only histories that were checked, or covered by a passed check window, are
//! counted: the caller passes exactly those); any error demotes it at once and restarts the
//! count. Late returns are recorded (and lengthen its time-to-return statistics) but are not
//! errors.

use compushare_protocol::types::{AssignmentId, PublicKey, TrustLevel};
use serde::{Deserialize, Serialize};

use crate::codec;
use compushare_protocol::hex::encode as hex32;
use redb::ReadableTable;

use crate::store::{tables::*, ReadTx, Result, StoreError, WriteTx};

/// Why a rating was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A star rating outside 1..=5.
    #[error("rating {0} not in 1..=5")]
    BadRating(u8),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TrustError {
    /// The variant's name (`trust.` and its own, or the database's), for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            TrustError::BadRating(_) => "trust.bad_rating",
            TrustError::Store(e) => e.kind(),
        }
    }
}

/// Most recent trust events kept per rig (older ones are dropped; counters keep totals).
pub const MAX_EVENTS: usize = 64;

/// What a rig did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// A sampled history did not re-simulate to the committed record.
    SampleMismatch,
    /// A Merkle proof did not verify against the committed root.
    BadProof,
    /// Its result differed from a duplicate run and the arbitration went against it.
    DuplicateMismatch,
    /// The uploaded result did not match its commitment or did not decode.
    BadResult,
}

/// Something that changed a rig's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// First seen.
    Joined,
    /// Became trusted.
    Promoted,
    /// An error; demoted if it was trusted.
    Error {
        kind: ErrorKind,
        assignment: Option<AssignmentId>,
    },
    /// Missed an assignment's deadline.
    Late { assignment: AssignmentId },
}

/// A dated trust event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEvent {
    pub time_unix_s: u64,
    pub kind: EventKind,
}

/// Statistics of (time to return) / (cost), in microseconds per cost unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RatioStats {
    pub count: u64,
    pub sum: u128,
    pub sum_sq: u128,
    pub min: u64,
    pub max: u64,
    /// Exponentially weighted recent value (weight 1/8 per sample), for assignment sizing.
    pub recent: u64,
}

impl RatioStats {
    /// Adds one return: `elapsed_ms` for work of `cost_milli` milli cost units.
    pub fn add(&mut self, elapsed_ms: u64, cost_milli: u64) {
        if cost_milli == 0 {
            return;
        }
        // us per unit = ms * 1000 / (milli / 1000).
        let r = u128::from(elapsed_ms) * 1_000_000 / u128::from(cost_milli);
        let r = u64::try_from(r).unwrap_or(u64::MAX);
        self.recent = if self.count == 0 {
            r
        } else {
            let blended = (u128::from(self.recent) * 7 + u128::from(r)) / 8;
            u64::try_from(blended).unwrap_or(u64::MAX)
        };
        self.min = if self.count == 0 { r } else { self.min.min(r) };
        self.max = self.max.max(r);
        self.count += 1;
        self.sum = self.sum.saturating_add(u128::from(r));
        self.sum_sq = self.sum_sq.saturating_add(u128::from(r) * u128::from(r));
    }

    /// Mean microseconds per cost unit.
    pub fn mean(&self) -> Option<u64> {
        (self.count > 0)
            .then(|| u64::try_from(self.sum / u128::from(self.count)).unwrap_or(u64::MAX))
    }

    /// Expected milliseconds for `cost_milli` milli cost units at the recent rate.
    pub fn expected_ms(&self, cost_milli: u64) -> Option<u64> {
        (self.count > 0).then(|| {
            let ms = u128::from(self.recent) * u128::from(cost_milli) / 1_000_000;
            u64::try_from(ms).unwrap_or(u64::MAX)
        })
    }
}

/// Star ratings (1-5) of one kind of rater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RatingStats {
    pub count: u64,
    pub sum: u64,
}

impl RatingStats {
    /// Mean stars, if rated.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// Who gives a rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rater {
    /// A client whose job the rig worked on.
    Client,
    /// Another worker.
    Worker,
}

/// A rig's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RigRecord {
    pub key: PublicKey,
    pub first_seen_unix_s: u64,
    pub trust: TrustLevel,
    /// Verified histories since the last error.
    pub consecutive_verified: u64,
    /// All verified histories.
    pub histories_verified: u64,
    pub errors: u64,
    pub late: u64,
    pub returns: RatioStats,
    /// Most recent events, oldest first, at most [`MAX_EVENTS`].
    pub events: Vec<TrustEvent>,
    pub client_ratings: RatingStats,
    pub worker_ratings: RatingStats,
    /// Whether a duplicate of its work agreed with it since it joined or was last demoted
    /// (its pay can become spendable, and it can be promoted, only after one).
    pub dup_passed: bool,
    /// Times it lost trust.
    pub demotions: u64,
    /// Micro-credits paid for its verified work, ever (pending or spendable).
    pub paid: u64,
    /// Micro-credits of its pending pay forfeited when it was caught, ever.
    pub forfeited: u64,
}

impl RigRecord {
    /// A rig seen for the first time: untrusted.
    pub fn new(key: PublicKey, now: u64) -> RigRecord {
        let mut r = RigRecord {
            key,
            first_seen_unix_s: now,
            trust: TrustLevel::Untrusted,
            consecutive_verified: 0,
            histories_verified: 0,
            errors: 0,
            late: 0,
            returns: RatioStats::default(),
            events: Vec::new(),
            client_ratings: RatingStats::default(),
            worker_ratings: RatingStats::default(),
            dup_passed: false,
            demotions: 0,
            paid: 0,
            forfeited: 0,
        };
        r.push(now, EventKind::Joined);
        r
    }

    fn push(&mut self, now: u64, kind: EventKind) {
        if self.events.len() >= MAX_EVENTS {
            let excess = self.events.len() + 1 - MAX_EVENTS;
            self.events.drain(..excess);
        }
        self.events.push(TrustEvent {
            time_unix_s: now,
            kind,
        });
    }

    /// Counts `histories` that were checked or covered by a passed check window. Returns true
    /// if this promoted the rig.
    pub fn record_verified(&mut self, histories: u64, now: u64, promote_after: u64) -> bool {
        self.consecutive_verified = self.consecutive_verified.saturating_add(histories);
        self.histories_verified = self.histories_verified.saturating_add(histories);
        if self.trust == TrustLevel::Untrusted && self.consecutive_verified >= promote_after {
            self.trust = TrustLevel::Trusted;
            self.push(now, EventKind::Promoted);
            return true;
        }
        false
    }

    /// Records an error: demotes at once, restarts the consecutive count and clears the passed
    /// duplicate. Returns true if the rig was trusted.
    pub fn record_error(
        &mut self,
        kind: ErrorKind,
        assignment: Option<AssignmentId>,
        now: u64,
    ) -> bool {
        let was = self.trust == TrustLevel::Trusted;
        self.trust = TrustLevel::Untrusted;
        self.consecutive_verified = 0;
        self.errors = self.errors.saturating_add(1);
        self.demotions = self.demotions.saturating_add(u64::from(was));
        // A caught rig must pass a duplicate again before its pay is spendable.
        self.dup_passed = false;
        self.push(now, EventKind::Error { kind, assignment });
        was
    }

    /// Records a missed deadline.
    pub fn record_late(&mut self, assignment: AssignmentId, now: u64) {
        self.late = self.late.saturating_add(1);
        self.push(now, EventKind::Late { assignment });
    }

    /// Records a returned result: `elapsed_ms` from issue to commit for `cost_milli` of work.
    pub fn record_return(&mut self, elapsed_ms: u64, cost_milli: u64) {
        self.returns.add(elapsed_ms, cost_milli);
    }
}

fn rating_key(rig: &PublicKey, rater: &PublicKey) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(rig);
    k[32..].copy_from_slice(rater);
    k
}

/// A stored rating: stars in the low 4 bits, rater kind in bit 4.
fn rating_value(stars: u8, rater: Rater) -> u8 {
    stars | if rater == Rater::Worker { 0x10 } else { 0 }
}

impl WriteTx {
    /// Stores a rig's record.
    pub fn put_rig(&mut self, rec: &RigRecord) -> Result<()> {
        let bytes = codec::encode("rigs", rec).map_err(|source| StoreError::Corrupt {
            table: "rigs",
            key: format!("{:02x?}", rec.key),
            source,
        })?;
        let mut t = self.txn.open_table(RIGS).map_err(|e| self.db(e))?;
        t.insert(rec.key.as_slice(), bytes.as_slice())
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// A rig's record, created (untrusted, "joined" now) if it is new.
    pub fn rig_or_join(&mut self, key: &PublicKey) -> Result<RigRecord> {
        if let Some(r) = self.rig(key)? {
            return Ok(r);
        }
        let r = RigRecord::new(*key, self.now);
        self.put_rig(&r)?;
        Ok(r)
    }

    /// Counts verified histories for a rig (see [`RigRecord::record_verified`]), with the
    /// configured promotion threshold. Returns the updated record.
    pub fn trust_verified(&mut self, key: &PublicKey, histories: u64) -> Result<RigRecord> {
        let mut r = self.rig_or_join(key)?;
        r.record_verified(histories, self.now, self.config.promote_after);
        self.put_rig(&r)?;
        Ok(r)
    }

    /// Records an error for a rig: demoted at once. Returns the updated record.
    pub fn trust_error(
        &mut self,
        key: &PublicKey,
        kind: ErrorKind,
        assignment: Option<AssignmentId>,
    ) -> Result<RigRecord> {
        let mut r = self.rig_or_join(key)?;
        r.record_error(kind, assignment, self.now);
        self.put_rig(&r)?;
        Ok(r)
    }

    /// Records a missed deadline for a rig.
    pub fn trust_late(&mut self, key: &PublicKey, assignment: AssignmentId) -> Result<RigRecord> {
        let mut r = self.rig_or_join(key)?;
        r.record_late(assignment, self.now);
        self.put_rig(&r)?;
        Ok(r)
    }

    /// Records a returned result's time per cost.
    pub fn trust_return(
        &mut self,
        key: &PublicKey,
        elapsed_ms: u64,
        cost_milli: u64,
    ) -> Result<RigRecord> {
        let mut r = self.rig_or_join(key)?;
        r.record_return(elapsed_ms, cost_milli);
        self.put_rig(&r)?;
        Ok(r)
    }

    /// Rates a rig 1-5 stars. One rating per rater and rig: rating again replaces it.
    pub fn rate(
        &mut self,
        rig: &PublicKey,
        rater_key: &PublicKey,
        rater: Rater,
        stars: u8,
    ) -> Result<RigRecord, TrustError> {
        if !(1..=5).contains(&stars) {
            return Err(TrustError::BadRating(stars));
        }
        let mut r = self.rig_or_join(rig)?;
        let key = rating_key(rig, rater_key);
        let old = {
            let mut t = self.txn.open_table(RATINGS).map_err(|e| self.db(e))?;
            let old = t
                .insert(key.as_slice(), rating_value(stars, rater))
                .map_err(|e| self.db(e))?
                .map(|g| g.value());
            old
        };
        if let Some(old) = old {
            let old_stars = u64::from(old & 0x0f);
            let stats = if old & 0x10 != 0 {
                &mut r.worker_ratings
            } else {
                &mut r.client_ratings
            };
            stats.count = stats.count.saturating_sub(1);
            stats.sum = stats.sum.saturating_sub(old_stars);
        }
        let stats = match rater {
            Rater::Client => &mut r.client_ratings,
            Rater::Worker => &mut r.worker_ratings,
        };
        stats.count += 1;
        stats.sum += u64::from(stars);
        self.put_rig(&r)?;
        Ok(r)
    }
}

/// Reads of trust records, for both kinds of transaction.
macro_rules! trust_reads {
    () => {
        /// A rig's trust record.
        pub fn rig(&self, key: &PublicKey) -> Result<Option<RigRecord>> {
            let t = self.txn.open_table(RIGS).map_err(|e| self.db(e))?;
            crate::store::get_decoded::<&[u8], _, _>(
                &t,
                "rigs",
                key.as_slice(),
                || hex32(key),
                &self.path,
            )
        }

        /// Every rig's record, in key order.
        pub fn rigs(&self) -> Result<Vec<RigRecord>> {
            let t = self.txn.open_table(RIGS).map_err(|e| self.db(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.db(e))? {
                let (k, v) = item.map_err(|e| self.db(e))?;
                out.push(codec::decode("rigs", v.value()).map_err(|source| {
                    StoreError::Corrupt {
                        table: "rigs",
                        key: format!("{:02x?}", k.value()),
                        source,
                    }
                })?);
            }
            Ok(out)
        }
    };
}

impl ReadTx {
    trust_reads!();
}

impl WriteTx {
    trust_reads!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_demotion_and_reset() {
        let mut r = RigRecord::new([7; 32], 10);
        assert_eq!(r.trust, TrustLevel::Untrusted);
        assert!(!r.record_verified(60, 11, 100));
        assert_eq!(r.trust, TrustLevel::Untrusted);
        assert!(r.record_verified(40, 12, 100));
        assert_eq!(r.trust, TrustLevel::Trusted);
        r.dup_passed = true;
        assert!(r.record_error(ErrorKind::SampleMismatch, Some(AssignmentId(3)), 13));
        assert_eq!(r.trust, TrustLevel::Untrusted);
        assert_eq!((r.demotions, r.dup_passed), (1, false));
        assert_eq!(r.consecutive_verified, 0);
        assert_eq!(r.histories_verified, 100);
        // The count restarts: 99 more is not enough, 100 is.
        assert!(!r.record_verified(99, 14, 100));
        assert!(r.record_verified(1, 15, 100));
        assert_eq!(r.errors, 1);
        assert!(r.record_error(ErrorKind::BadProof, None, 16));
        assert_eq!(r.demotions, 2);
        // An error while untrusted is not a demotion.
        assert!(!r.record_error(ErrorKind::BadProof, None, 17));
        assert_eq!((r.demotions, r.errors), (2, 3));
    }

    #[test]
    fn events_are_bounded() {
        let mut r = RigRecord::new([1; 32], 0);
        for i in 0..200 {
            r.record_late(AssignmentId(i), i);
        }
        assert_eq!(r.events.len(), MAX_EVENTS);
        assert_eq!(r.late, 200);
        assert_eq!(
            r.events.last().map(|e| e.kind),
            Some(EventKind::Late {
                assignment: AssignmentId(199)
            })
        );
    }

    #[test]
    fn ratio_stats() {
        let mut s = RatioStats::default();
        s.add(1000, 2_000_000); // 1 s for 2000 units: 500 us/unit
        s.add(3000, 2_000_000); // 1500 us/unit
        assert_eq!(s.mean(), Some(1000));
        assert_eq!(s.min, 500);
        assert_eq!(s.max, 1500);
        assert_eq!(s.recent, (500 * 7 + 1500) / 8);
        assert_eq!(s.expected_ms(1_000_000), Some(625));
    }
}
