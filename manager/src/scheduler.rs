//! Matching and sizing: which device gets the next photon range of a job, and how many photons.
//!
//! Pure functions over bids and rig records, so the rules are unit-tested without a network.
//! A range is a whole multiple of the device's core count (every core gets the same share) and
//! sized so the device should return it in about the target duration, judged from what the rig
//! has actually delivered before (seconds per cost unit) or, for a rig without a record yet,
//! from its bid's measured histories per second.

use std::cmp::Ordering;
use std::time::Duration;

use compushare_protocol::types::{Amount, Mode, PhotonRange};

/// One device willing to run part of a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Index of the rig in the caller's list.
    pub rig: usize,
    pub device: u8,
    pub cores: u32,
    /// Histories per second the device should reach on this job.
    pub histories_per_s: f64,
    /// Lowest price per cost unit the rig accepts.
    pub min_price: Amount,
}

/// Orders candidates best first for the client's mode: cheapest then fastest, or fastest then
/// cheapest. Ties keep a stable order (the caller's), so matching is reproducible.
pub fn order(candidates: &mut [Candidate], mode: Mode) {
    let speed = |a: &Candidate, b: &Candidate| {
        b.histories_per_s
            .partial_cmp(&a.histories_per_s)
            .unwrap_or(Ordering::Equal)
    };
    candidates.sort_by(|a, b| match mode {
        Mode::Cheapest => a.min_price.cmp(&b.min_price).then_with(|| speed(a, b)),
        Mode::Fastest => speed(a, b).then_with(|| a.min_price.cmp(&b.min_price)),
    });
}

/// Expected histories per second of a device on a job of `cost_milli` per history: from the
/// rig's record (seconds per thousandth cost unit) when it has one, else from its bid.
pub fn expected_rate(record_s_per_milli: Option<f64>, bid_hps: u64, cost_milli: u64) -> f64 {
    match record_s_per_milli {
        Some(s) if s > 0.0 && s.is_finite() => 1.0 / (s * cost_milli.max(1) as f64),
        _ => bid_hps.max(1) as f64,
    }
}

/// Photons for one assignment: `rate * target`, rounded down to a multiple of `cores` (at least
/// one per core), never more than `available`. The last range of a job may be shorter than a
/// multiple of the cores; that is the only exception.
pub fn size(rate: f64, target: Duration, cores: u32, available: u64) -> u64 {
    let cores = u64::from(cores.max(1));
    let want = (rate.max(0.0) * target.as_secs_f64()).min(u64::MAX as f64 / 2.0) as u64;
    let rounded = (want / cores).max(1).saturating_mul(cores);
    rounded.min(available)
}

/// Deadline allowance for an assignment expected to take `expected`: the expected time plus
/// `slack_percent` of it, at least `min` (geometry fetch and upload), so a slow start or a
/// busy network does not count as lateness. The stored settings `deadline_slack_percent` and
/// `deadline_min_s` ([`crate::Config`]) give both.
pub fn allowance(expected: Duration, slack_percent: u32, min: Duration) -> Duration {
    let slack = expected.saturating_mul(slack_percent) / 100;
    expected.saturating_add(slack).max(min)
}

/// Takes `count` photons from the front of the first pending range.
pub fn take(pending: &mut Vec<PhotonRange>, count: u64) -> Option<PhotonRange> {
    let first = pending.first_mut()?;
    let n = count.min(first.count).max(1).min(first.count);
    let out = PhotonRange {
        start: first.start,
        count: n,
    };
    first.start += n;
    first.count -= n;
    if first.count == 0 {
        pending.remove(0);
    }
    Some(out)
}

/// Returns a range to the pending list, keeping it sorted and merging neighbours.
pub fn give_back(pending: &mut Vec<PhotonRange>, range: PhotonRange) {
    if range.count == 0 {
        return;
    }
    let at = pending.partition_point(|r| r.start < range.start);
    pending.insert(at, range);
    let mut merged: Vec<PhotonRange> = Vec::with_capacity(pending.len());
    for r in pending.drain(..) {
        match merged.last_mut() {
            Some(last) if last.start + last.count == r.start => last.count += r.count,
            _ => merged.push(r),
        }
    }
    *pending = merged;
}

/// Removes `range` from the pending list, if it lies wholly inside one pending piece (a
/// verified range restored after a restart). Returns whether it did.
pub fn carve(pending: &mut Vec<PhotonRange>, range: PhotonRange) -> bool {
    let end = range.start.saturating_add(range.count);
    let Some(at) = pending
        .iter()
        .position(|p| range.start >= p.start && end <= p.start.saturating_add(p.count))
    else {
        return false;
    };
    let p = pending.remove(at);
    let after = PhotonRange {
        start: end,
        count: p.start + p.count - end,
    };
    let before = PhotonRange {
        start: p.start,
        count: range.start - p.start,
    };
    for piece in [after, before] {
        if piece.count > 0 {
            pending.insert(at, piece);
        }
    }
    true
}

/// Photons in a pending list.
pub fn pending_total(pending: &[PhotonRange]) -> u64 {
    pending.iter().map(|r| r.count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_splits_and_refuses_overlaps() {
        let r = |start, count| PhotonRange { start, count };
        let mut p = vec![r(0, 100)];
        assert!(carve(&mut p, r(10, 20)));
        assert_eq!(p, vec![r(0, 10), r(30, 70)]);
        assert!(!carve(&mut p, r(5, 10)));
        assert!(carve(&mut p, r(0, 10)));
        assert!(carve(&mut p, r(90, 10)));
        assert_eq!(p, vec![r(30, 60)]);
    }

    fn c(rig: usize, hps: f64, price: u64) -> Candidate {
        Candidate {
            rig,
            device: 0,
            cores: 8,
            histories_per_s: hps,
            min_price: Amount(price),
        }
    }

    #[test]
    fn modes_order_by_price_or_speed_first() {
        let mut v = vec![
            c(0, 100.0, 5),
            c(1, 300.0, 5),
            c(2, 50.0, 1),
            c(3, 300.0, 9),
        ];
        order(&mut v, Mode::Cheapest);
        assert_eq!(v.iter().map(|x| x.rig).collect::<Vec<_>>(), [2, 1, 0, 3]);
        order(&mut v, Mode::Fastest);
        assert_eq!(v.iter().map(|x| x.rig).collect::<Vec<_>>(), [1, 3, 0, 2]);
    }

    #[test]
    fn sizes_are_core_multiples_of_the_target_duration() {
        let t = Duration::from_secs(60);
        assert_eq!(size(1000.0, t, 8, u64::MAX), 60_000);
        assert_eq!(size(1001.0, t, 7, u64::MAX) % 7, 0);
        // Too slow for one photon per core: still one per core.
        assert_eq!(size(0.01, t, 16, u64::MAX), 16);
        // Capped by what is left.
        assert_eq!(size(1000.0, t, 8, 100), 100);
        // A record beats the bid: 1 ms per milli-unit at 10 milli-units a history = 100/s.
        assert!((expected_rate(Some(0.001), 5, 10) - 100.0).abs() < 1e-9);
        assert_eq!(expected_rate(None, 5, 10), 5.0);
        assert_eq!(expected_rate(Some(f64::NAN), 5, 10), 5.0);
    }

    #[test]
    fn ranges_split_and_merge_back() {
        let mut p = vec![PhotonRange {
            start: 0,
            count: 100,
        }];
        let a = take(&mut p, 30).unwrap();
        let b = take(&mut p, 30).unwrap();
        assert_eq!((a.start, a.count, b.start), (0, 30, 30));
        give_back(&mut p, a);
        assert_eq!(
            p,
            vec![
                PhotonRange {
                    start: 0,
                    count: 30
                },
                PhotonRange {
                    start: 60,
                    count: 40
                }
            ]
        );
        give_back(&mut p, b);
        assert_eq!(
            p,
            vec![PhotonRange {
                start: 0,
                count: 100
            }]
        );
        assert_eq!(pending_total(&p), 100);
        assert!(take(&mut Vec::new(), 5).is_none());
        assert_eq!(
            allowance(Duration::from_secs(1), 200, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            allowance(Duration::from_secs(60), 50, Duration::from_secs(10)),
            Duration::from_secs(90)
        );
    }
}
