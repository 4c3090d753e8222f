//! Star ratings (1-5) in both directions: clients rate the rigs that worked on their jobs,
//! rigs rate the clients whose jobs they worked on. One rating per rater, subject and
//! direction: rating again replaces the earlier one, so a rater can neither stuff a mean nor
//! lose its say.
//!
//! Who may rate whom is decided by the market (the job's rigs, the rig's returned work); this
//! registry only keeps the ratings and their per-subject sums. It lives in memory: the redb
//! store keeps the durable copy (`trust::WriteTx::rate`) once the market is wired to it.

use std::collections::HashMap;

use compushare_protocol::msg::RatingSummary;
use compushare_protocol::types::PublicKey;

/// Which way a rating goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A client rates a rig that worked on its job.
    OfRig,
    /// A rig rates the client whose job it worked on.
    OfClient,
}

/// Why a rating was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// Stars must be 1 to 5.
    #[error("{0} stars: a rating is 1 to 5 stars")]
    BadStars(u8),
}

/// Whether a rating was new or replaced the rater's earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rated {
    /// The rater's first rating of this subject.
    New,
    /// Replaced the rater's earlier rating of this subject (given here).
    Replaced { old: u8 },
}

/// Every rating given, and the sums per subject.
#[derive(Debug, Default)]
pub struct Ratings {
    given: HashMap<(PublicKey, PublicKey, Direction), u8>,
    of_rigs: HashMap<PublicKey, RatingSummary>,
    of_clients: HashMap<PublicKey, RatingSummary>,
}

impl Ratings {
    /// Records `rater`'s rating of `subject`.
    pub fn rate(
        &mut self,
        rater: &PublicKey,
        subject: &PublicKey,
        direction: Direction,
        stars: u8,
    ) -> Result<Rated, RatingError> {
        if !(1..=5).contains(&stars) {
            return Err(RatingError::BadStars(stars));
        }
        let old = self.given.insert((*rater, *subject, direction), stars);
        let sums = match direction {
            Direction::OfRig => &mut self.of_rigs,
            Direction::OfClient => &mut self.of_clients,
        };
        let sum = sums.entry(*subject).or_default();
        if let Some(old) = old {
            sum.remove(old);
        }
        sum.add(stars);
        Ok(match old {
            Some(old) => Rated::Replaced { old },
            None => Rated::New,
        })
    }

    /// Stars `key` received as a rig (from clients) and as a client (from rigs).
    pub fn of(&self, key: &PublicKey) -> (RatingSummary, RatingSummary) {
        (
            self.of_rigs.get(key).copied().unwrap_or_default(),
            self.of_clients.get(key).copied().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rating_per_rater_subject_and_direction() {
        let mut r = Ratings::default();
        let (a, b, rig) = ([1; 32], [2; 32], [9; 32]);
        assert_eq!(r.rate(&a, &rig, Direction::OfRig, 5), Ok(Rated::New));
        assert_eq!(r.rate(&b, &rig, Direction::OfRig, 2), Ok(Rated::New));
        assert_eq!(r.of(&rig).0.mean_centi(), Some(350));
        // Rating again replaces: still two ratings.
        assert_eq!(
            r.rate(&a, &rig, Direction::OfRig, 3),
            Ok(Rated::Replaced { old: 5 })
        );
        assert_eq!(r.of(&rig).0, RatingSummary { count: 2, sum: 5 });
        // The other direction is counted apart.
        assert_eq!(r.rate(&a, &rig, Direction::OfClient, 1), Ok(Rated::New));
        assert_eq!(r.of(&rig).1, RatingSummary { count: 1, sum: 1 });
        assert_eq!(r.of(&rig).0.count, 2);
        assert_eq!(
            r.rate(&a, &rig, Direction::OfRig, 0),
            Err(RatingError::BadStars(0))
        );
        assert_eq!(
            r.rate(&a, &rig, Direction::OfRig, 6),
            Err(RatingError::BadStars(6))
        );
        assert_eq!(r.of(&[7; 32]), Default::default());
    }
}
