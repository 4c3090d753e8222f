//! The offers this rig can bid on, what they would pay each device, and which bids stand.
//!
//! An offer arrives once (when the job opens, or when a session starts); the manager never
//! says when it closes. So an offer counts as open while there are signs of it: it is dropped
//! `linger` after this rig's last assignment of the job ended with no new assignment (the
//! manager assigns the next range the moment a result is committed, when one is left), or
//! `ttl` after the last sign when no assignment ever came (others took it, or our price was
//! not met), or when the session that carried it ends. A dropped offer stops paying, so the
//! scheduler puts its devices back on hashing at once.
//!
//! Speeds: an offer's job is calibrated once per geometry on a device (histories/s per
//! core); a device that finished an assignment of the job replaces the estimate with what it
//! measured.
//!
//! Bounded: [`MAX_OFFERS`] offers (more are ignored until one closes), [`MAX_RATES`]
//! geometries' rates (the oldest forgotten).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use compushare_protocol::msg::Offer;
use compushare_protocol::types::{Digest, JobId};

use crate::revenue::transport_msat_per_s;
use crate::scheduler::Revenue;

/// Offers kept open at once.
pub const MAX_OFFERS: usize = 64;
/// Geometries whose speeds are remembered.
pub const MAX_RATES: usize = 16;

/// An offer and the signs that it is still open.
#[derive(Debug, Clone)]
struct Open {
    offer: Offer,
    /// Time of the last sign (offer, assignment).
    last_sign: Duration,
    /// Set when an assignment of the job ended; cleared by a new assignment.
    closing_at: Option<Duration>,
    /// Assignments of the job this rig runs now.
    running: u32,
}

/// Speeds known for one geometry.
#[derive(Debug, Clone, Default)]
struct Rates {
    /// Calibrated histories/s per core.
    per_core: Option<f64>,
    /// Measured histories/s per device.
    measured: HashMap<usize, f64>,
}

/// Open offers, speeds and bids.
#[derive(Debug, Default)]
pub struct Offers {
    open: HashMap<JobId, Open>,
    rates: HashMap<Digest, Rates>,
    rate_order: VecDeque<Digest>,
    /// Geometries being calibrated.
    calibrating: HashSet<Digest>,
    /// (job, device) bids sent on this session.
    bids: HashSet<(JobId, usize)>,
    /// Jobs this rig cannot run (geometry refused, result larger than a vault slot), oldest
    /// first: never bid for again.
    refused: VecDeque<JobId>,
}

/// Refused jobs remembered.
pub const MAX_REFUSED: usize = 256;

impl Offers {
    /// Takes an offer; returns false when it is closed (nothing left), refused, or the table
    /// is full.
    pub fn offered(&mut self, o: Offer, now: Duration) -> bool {
        if self.refused.contains(&o.job) {
            return false;
        }
        if o.photons_left == 0 {
            self.close(o.job);
            return false;
        }
        if let Some(e) = self.open.get_mut(&o.job) {
            e.offer = o;
            e.last_sign = now;
            return true;
        }
        if self.open.len() >= MAX_OFFERS {
            return false;
        }
        self.open.insert(
            o.job,
            Open {
                offer: o,
                last_sign: now,
                closing_at: None,
                running: 0,
            },
        );
        true
    }

    /// The open offer of `job`.
    pub fn get(&self, job: JobId) -> Option<&Offer> {
        self.open.get(&job).map(|e| &e.offer)
    }

    /// Open offers, in job order.
    pub fn open(&self) -> Vec<Offer> {
        let mut v: Vec<Offer> = self.open.values().map(|e| e.offer).collect();
        v.sort_by_key(|o| o.job.0);
        v
    }

    /// A new price for every open offer (PriceAnnounce).
    pub fn reprice(&mut self, price_per_unit: compushare_protocol::types::Amount) {
        for e in self.open.values_mut() {
            e.offer.price_per_unit = price_per_unit;
        }
    }

    /// An assignment of `job` started on this rig.
    pub fn assigned(&mut self, job: JobId, now: Duration) {
        if let Some(e) = self.open.get_mut(&job) {
            e.last_sign = now;
            e.closing_at = None;
            e.running = e.running.saturating_add(1);
        }
    }

    /// An assignment of `job` ended on this rig: the offer lingers `linger` for the next one.
    pub fn ended(&mut self, job: JobId, now: Duration, linger: Duration) {
        if let Some(e) = self.open.get_mut(&job) {
            e.running = e.running.saturating_sub(1);
            e.last_sign = now;
            if e.running == 0 {
                e.closing_at = Some(now + linger);
            }
        }
    }

    /// Drops offers past their signs; returns the jobs dropped.
    pub fn expire(&mut self, now: Duration, ttl: Duration) -> Vec<JobId> {
        let gone: Vec<JobId> = self
            .open
            .iter()
            .filter(|(_, e)| {
                e.running == 0
                    && (e.closing_at.is_some_and(|t| now >= t)
                        || now.saturating_sub(e.last_sign) >= ttl)
            })
            .map(|(j, _)| *j)
            .collect();
        for j in &gone {
            self.close(*j);
        }
        gone
    }

    /// Closes `job`'s offer for good: this rig cannot run it.
    pub fn refuse(&mut self, job: JobId) {
        self.close(job);
        if !self.refused.contains(&job) {
            if self.refused.len() >= MAX_REFUSED {
                self.refused.pop_front();
            }
            self.refused.push_back(job);
        }
    }

    /// Forgets `job`'s offer and bids.
    pub fn close(&mut self, job: JobId) {
        self.open.remove(&job);
        self.bids.retain(|(j, _)| *j != job);
    }

    /// The session ended: its offers and bids go with it (speeds stay).
    pub fn session_ended(&mut self) {
        self.open.clear();
        self.bids.clear();
        self.calibrating.clear();
    }

    /// Whether `geometry` needs a calibration (not known, not under way); marks it under way.
    pub fn start_calibration(&mut self, geometry: Digest) -> bool {
        if self.per_core(&geometry).is_some() {
            return false;
        }
        self.calibrating.insert(geometry)
    }

    /// A calibration finished.
    pub fn calibrated(&mut self, geometry: Digest, per_core: f64) {
        self.calibrating.remove(&geometry);
        if per_core > 0.0 && per_core.is_finite() {
            self.rates_mut(geometry).per_core = Some(per_core);
        }
    }

    /// A device measured `histories_per_s` on `geometry`.
    pub fn measured(&mut self, geometry: Digest, device: usize, histories_per_s: f64) {
        if histories_per_s > 0.0 && histories_per_s.is_finite() {
            self.rates_mut(geometry)
                .measured
                .insert(device, histories_per_s);
        }
    }

    fn rates_mut(&mut self, g: Digest) -> &mut Rates {
        if !self.rates.contains_key(&g) {
            if self.rates.len() >= MAX_RATES {
                if let Some(old) = self.rate_order.pop_front() {
                    self.rates.remove(&old);
                }
            }
            self.rate_order.push_back(g);
        }
        self.rates.entry(g).or_default()
    }

    fn per_core(&self, g: &Digest) -> Option<f64> {
        self.rates.get(g).and_then(|r| r.per_core)
    }

    /// Histories/s of `device` (of `cores` cores) on `geometry`, when known.
    pub fn speed(&self, geometry: &Digest, device: usize, cores: u32) -> Option<f64> {
        let r = self.rates.get(geometry)?;
        r.measured
            .get(&device)
            .copied()
            .or_else(|| r.per_core.map(|p| p * f64::from(cores.max(1))))
    }

    /// Whether the offer's speed is known for bidding.
    pub fn ready(&self, job: JobId) -> bool {
        self.open
            .get(&job)
            .is_some_and(|e| self.per_core(&e.offer.geometry).is_some())
    }

    /// What the best open offer would pay `device` now.
    pub fn best(&self, device: usize, cores: u32, credit_msat: u64) -> Revenue {
        let mut best: Option<f64> = None;
        for e in self.open.values() {
            if let Some(speed) = self.speed(&e.offer.geometry, device, cores) {
                let r = transport_msat_per_s(speed, &e.offer, credit_msat);
                best = Some(best.map_or(r, |b: f64| b.max(r)));
            }
        }
        match best {
            Some(r) => Revenue::Pays(r),
            None if self.open.is_empty() => Revenue::Unavailable("no open offer"),
            None => Revenue::Unavailable("offer not measured yet"),
        }
    }

    /// Whether a bid for (job, device) was sent on this session; marks it sent.
    pub fn mark_bid(&mut self, job: JobId, device: usize) -> bool {
        self.bids.insert((job, device))
    }

    /// The manager forgot `device`'s bids (it turned an assignment down, or left transport):
    /// it bids again when it wants work.
    pub fn forget_bids(&mut self, device: usize) {
        self.bids.retain(|(_, d)| *d != device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::types::Amount;

    fn offer(job: u64, left: u64) -> Offer {
        Offer {
            job: JobId(job),
            cost_per_history_milli: 1000,
            price_per_unit: Amount(2),
            geometry: [job as u8; 32],
            geometry_len: 10,
            photons_left: left,
        }
    }

    #[test]
    fn offers_close_on_their_signs() {
        let s = Duration::from_secs;
        let mut o = Offers::default();
        assert!(o.offered(offer(1, 100), s(0)));
        assert!(!o.offered(offer(2, 0), s(0)));
        assert_eq!(
            o.best(0, 1, 1),
            Revenue::Unavailable("offer not measured yet")
        );
        assert!(o.start_calibration([1; 32]));
        assert!(!o.start_calibration([1; 32]));
        o.calibrated([1; 32], 500.0);
        // 1000 histories/s x 2 micro-credits x 1000 msat/credit / 1e6 = 2 msat/s.
        assert_eq!(o.best(0, 2, 1000), Revenue::Pays(2.0));
        o.measured([1; 32], 0, 250.0);
        assert_eq!(o.best(0, 2, 1000), Revenue::Pays(0.5));
        o.assigned(JobId(1), s(10));
        assert!(o.expire(s(100), s(30)).is_empty(), "running: never expires");
        o.ended(JobId(1), s(100), s(3));
        assert!(o.expire(s(102), s(30)).is_empty());
        assert_eq!(o.expire(s(103), s(30)), vec![JobId(1)]);
        assert_eq!(o.best(0, 2, 1000), Revenue::Unavailable("no open offer"));
        // No assignment at all: the ttl closes it.
        assert!(o.offered(offer(3, 5), s(200)));
        assert!(o.mark_bid(JobId(3), 0));
        assert!(!o.mark_bid(JobId(3), 0));
        assert_eq!(o.expire(s(230), s(30)), vec![JobId(3)]);
        assert!(o.mark_bid(JobId(3), 0), "bids go with the offer");
        // A refused job is not taken again.
        o.refuse(JobId(4));
        assert!(!o.offered(offer(4, 10), s(300)));
    }
}
