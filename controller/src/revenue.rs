//! What each role earns a device, in one unit: millisatoshi per second.
//!
//! - Mining: hash rate x satoshi per hash of the active pool's job (the coinbase outputs over
//!   network difficulty x 2^32, see `stratum::job::JobEconomics`) x (1 - POOL_FEE) x 1000.
//!   A pool's share payout is proportional to that figure, so it is what hashing earns.
//! - Transport: histories/s on this job x the offer's price per history (micro-credits) x the
//!   manager's credit value (millisatoshi per credit, from Welcome) / 10^6.
//!
//! Rates are measured: [`RateMeter`] turns a device's running counter (hashes, histories)
//! into a rate over the last few seconds.

use std::time::Duration;

use compushare_protocol::msg::Offer;

use crate::stratum::job::JobEconomics;

/// Micro-credits per credit.
const MICRO: f64 = 1e6;

/// Millisatoshi per second that `hashes_per_s` earn on a job of economics `e` after the
/// pool's fee (a fraction).
pub fn mining_msat_per_s(hashes_per_s: f64, e: &JobEconomics, pool_fee: f64) -> f64 {
    hashes_per_s * e.sat_per_hash * (1.0 - pool_fee.clamp(0.0, 1.0)) * 1000.0
}

/// Millisatoshi per second that `histories_per_s` earn on `offer` when a credit is worth
/// `credit_msat` millisatoshi.
pub fn transport_msat_per_s(histories_per_s: f64, offer: &Offer, credit_msat: u64) -> f64 {
    histories_per_s * offer.price_per_history() as f64 * credit_msat as f64 / MICRO
}

/// A rate over a sliding window from samples of a monotone counter.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    /// (time, counter) samples, oldest first; at most `CAP`.
    samples: [(Duration, u64); CAP],
    len: usize,
}

/// Samples kept: one per second covers a 30 s window.
const CAP: usize = 32;

impl RateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: [(Duration::ZERO, 0); CAP],
            len: 0,
        }
    }

    /// Adds a sample of the counter at time `now`.
    pub fn sample(&mut self, now: Duration, counter: u64) {
        if self.len == CAP {
            self.samples.copy_within(1.., 0);
            self.len -= 1;
        }
        self.samples[self.len] = (now, counter);
        self.len += 1;
        // Drop samples older than the window, keeping one at or before its start.
        let start = now.saturating_sub(self.window);
        while self.len > 2 && self.samples[1].0 <= start {
            self.samples.copy_within(1..self.len, 0);
            self.len -= 1;
        }
    }

    /// Units per second over the window (0 with fewer than two samples).
    pub fn rate(&self) -> f64 {
        if self.len < 2 {
            return 0.0;
        }
        let (t0, c0) = self.samples[0];
        let (t1, c1) = self.samples[self.len - 1];
        let dt = t1.saturating_sub(t0).as_secs_f64();
        if dt <= 0.0 {
            return 0.0;
        }
        c1.saturating_sub(c0) as f64 / dt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::types::{Amount, JobId};

    #[test]
    fn units_line_up() {
        // 2^32 hashes per difficulty-1 share; a block of 3.125 BTC at difficulty 1e12.
        let e = JobEconomics {
            coinbase_value_sat: 312_500_000,
            network_difficulty: 1e12,
            sat_per_hash: 312_500_000.0 / (1e12 * 4_294_967_296.0),
        };
        let m = mining_msat_per_s(1e12, &e, 0.02);
        assert!((m - 312_500_000.0 / 4_294_967_296.0 * 0.98 * 1000.0).abs() < 1e-6);
        let offer = Offer {
            job: JobId(1),
            cost_per_history_milli: 2_500,
            price_per_unit: Amount(4),
            geometry: [0; 32],
            geometry_len: 1,
            photons_left: 10,
        };
        assert_eq!(offer.price_per_history(), 10);
        // 1000 histories/s x 10 micro-credits x 1000 msat per credit = 10 msat/s.
        assert_eq!(transport_msat_per_s(1000.0, &offer, 1000), 10.0);
    }

    #[test]
    fn meter_averages_over_its_window() {
        let mut m = RateMeter::new(Duration::from_secs(5));
        assert_eq!(m.rate(), 0.0);
        for s in 0..=20u64 {
            m.sample(Duration::from_secs(s), s * 100);
        }
        assert!((m.rate() - 100.0).abs() < 1e-9);
        // A counter that stops: the rate falls to 0 within the window.
        for s in 21..=30u64 {
            m.sample(Duration::from_secs(s), 2000);
        }
        assert_eq!(m.rate(), 0.0);
    }
}
