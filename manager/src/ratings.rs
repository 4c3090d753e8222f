//! Star ratings (1-5) that rigs give the clients whose jobs they worked on, kept in the
//! manager's database (table `client_ratings`) with their per-client sums in memory.
//!
//! The other direction, clients rating rigs, is part of a rig's trust record
//! ([`crate::trust`], table `ratings`), written by the market together with the check that
//! the rig worked on the client's job. Both keep one rating per rater and subject: rating
//! again replaces the earlier one, so a rater can neither stuff a mean nor lose its say.
//!
//! Who may rate whom is decided by the market (the rig's returned work); this registry only
//! keeps the ratings. Each rating is one durable write transaction, so a restart loses none;
//! [`ClientRatings::open`] rebuilds the sums from the table.

use std::collections::HashMap;
use std::sync::Arc;

use compushare_protocol::msg::RatingSummary;
use compushare_protocol::types::PublicKey;
use redb::{ReadableTable, TableDefinition};

use crate::store::{Store, StoreError};

/// Client key (32 bytes) || rig key (32 bytes) to stars (1-5).
const CLIENT_RATINGS: TableDefinition<&[u8], u8> = TableDefinition::new("client_ratings");

/// Why a rating was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RatingError {
    /// Stars must be 1 to 5.
    #[error("{0} stars: a rating is 1 to 5 stars")]
    BadStars(u8),
    /// The database refused the write (nothing was recorded).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a rating was new or replaced the rater's earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rated {
    /// The rater's first rating of this subject.
    New,
    /// Replaced the rater's earlier rating of this subject (given here).
    Replaced { old: u8 },
}

/// Rigs' ratings of clients: durable in the store, summed per client in memory.
pub struct ClientRatings {
    store: Arc<Store>,
    sums: HashMap<PublicKey, RatingSummary>,
}

fn key(client: &PublicKey, rig: &PublicKey) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(client);
    k[32..].copy_from_slice(rig);
    k
}

impl ClientRatings {
    /// Opens the registry on `store`, summing every stored rating. A stored value outside
    /// 1-5 (a corrupt byte) is reported, naming the table, rather than counted.
    pub fn open(store: Arc<Store>) -> Result<ClientRatings, StoreError> {
        store.write(|tx| {
            tx.redb()
                .open_table(CLIENT_RATINGS)
                .map(|_| ())
                .map_err(|e| tx.db(e))
        })?;
        let mut sums: HashMap<PublicKey, RatingSummary> = HashMap::new();
        {
            let read = store.read()?;
            let table = read
                .redb()
                .open_table(CLIENT_RATINGS)
                .map_err(|e| read.db(e))?;
            for item in table.iter().map_err(|e| read.db(e))? {
                let (k, v) = item.map_err(|e| read.db(e))?;
                let (k, stars) = (k.value(), v.value());
                let client: Option<PublicKey> = k.get(..32).and_then(|c| c.try_into().ok());
                match client {
                    Some(client) if k.len() == 64 && (1..=5).contains(&stars) => {
                        sums.entry(client).or_default().add(stars)
                    }
                    _ => {
                        return Err(StoreError::Corrupt {
                            table: "client_ratings",
                            key: format!("{k:02x?}"),
                            source: crate::codec::CodecError::Corrupt {
                                what: "rating",
                                reason: format!("{stars} stars (1-5 expected) or a bad key"),
                            },
                        })
                    }
                }
            }
        }
        Ok(ClientRatings { store, sums })
    }

    /// Records `rig`'s rating of `client`, replacing its earlier one.
    pub fn rate(
        &mut self,
        rig: &PublicKey,
        client: &PublicKey,
        stars: u8,
    ) -> Result<Rated, RatingError> {
        if !(1..=5).contains(&stars) {
            return Err(RatingError::BadStars(stars));
        }
        let k = key(client, rig);
        let old = self.store.write(|tx| {
            let mut t = tx.redb().open_table(CLIENT_RATINGS).map_err(|e| tx.db(e))?;
            let old = t
                .insert(k.as_slice(), stars)
                .map_err(|e| tx.db(e))?
                .map(|g| g.value());
            Ok::<_, StoreError>(old)
        })?;
        let sum = self.sums.entry(*client).or_default();
        if let Some(old) = old {
            sum.remove(old);
        }
        sum.add(stars);
        Ok(match old {
            Some(old) => Rated::Replaced { old },
            None => Rated::New,
        })
    }

    /// Stars `client` received from rigs.
    pub fn of(&self, client: &PublicKey) -> RatingSummary {
        self.sums.get(client).copied().unwrap_or_default()
    }
}

/// The summary of a list of stars (a rig's ratings from clients, as its record holds them).
pub fn summary(stars: &[u8]) -> RatingSummary {
    let mut s = RatingSummary::default();
    for &x in stars {
        s.add(x);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn one_rating_per_rig_and_client_survives_reopening() {
        let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
        let mut r = ClientRatings::open(store.clone()).unwrap();
        let (a, b, client) = ([1; 32], [2; 32], [9; 32]);
        assert_eq!(r.rate(&a, &client, 5).unwrap(), Rated::New);
        assert_eq!(r.rate(&b, &client, 2).unwrap(), Rated::New);
        assert_eq!(r.of(&client).mean_centi(), Some(350));
        // Rating again replaces: still two ratings.
        assert_eq!(r.rate(&a, &client, 3).unwrap(), Rated::Replaced { old: 5 });
        assert_eq!(r.of(&client), RatingSummary { count: 2, sum: 5 });
        assert!(matches!(
            r.rate(&a, &client, 0),
            Err(RatingError::BadStars(0))
        ));
        assert!(matches!(
            r.rate(&a, &client, 6),
            Err(RatingError::BadStars(6))
        ));
        assert_eq!(r.of(&[7; 32]), RatingSummary::default());
        // A new registry on the same database sees the same sums.
        let again = ClientRatings::open(store).unwrap();
        assert_eq!(again.of(&client), RatingSummary { count: 2, sum: 5 });
    }

    #[test]
    fn a_corrupt_stored_rating_is_an_error_naming_the_table() {
        let store = Arc::new(Store::in_memory(&Config::default()).unwrap());
        store
            .write(|tx| {
                let mut t = tx.redb().open_table(CLIENT_RATINGS).map_err(|e| tx.db(e))?;
                t.insert([0u8; 64].as_slice(), 9u8).map_err(|e| tx.db(e))?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let err = ClientRatings::open(store).err().unwrap();
        assert!(err.to_string().contains("client_ratings"), "{err}");
    }

    #[test]
    fn summary_of_stars() {
        assert_eq!(summary(&[5, 4, 1]), RatingSummary { count: 3, sum: 10 });
        assert_eq!(summary(&[]).mean_centi(), None);
    }
}
