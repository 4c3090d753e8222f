//! A key's public record for clients (`compushare status --rig`): the wire form of a rig's
//! standing, built from the record the manager keeps, plus the ratings the key received.
//!
//! Two sources are mapped: the market's in-memory [`RigPublic`] (which keeps counters and the
//! recent time-per-cost, but no event history) and the store's [`trust::RigRecord`] (full
//! return statistics and the recent trust events).

use compushare_protocol::msg::{
    ErrorCounts, PublicRecord, RatingSummary, ReturnStats, RigErrorKind, RigStanding, TrustEvent,
    TrustEventKind,
};
use compushare_protocol::types::{Amount, PublicKey, TrustLevel};

use crate::market::RigPublic;
use crate::trust;

use compushare_protocol::types::bounded as name;

/// Seconds per thousandth cost unit as nanoseconds per cost unit; `None` for a value that is
/// not a finite non-negative number.
fn ns_per_unit(s_per_milli: f64) -> Option<u64> {
    let ns = (s_per_milli * 1e12).round();
    // `as` saturates at u64::MAX for finite values too large: no panic, no wrap.
    (ns.is_finite() && ns >= 0.0).then_some(ns as u64)
}

/// The store's microseconds per cost unit as nanoseconds.
fn us_to_ns(us: u64) -> u64 {
    us.saturating_mul(1000)
}

/// The standing of a rig as the market keeps it.
pub fn standing_from_market(p: &RigPublic) -> RigStanding {
    let recent = p.s_per_milli.and_then(ns_per_unit);
    RigStanding {
        label: name(&p.label),
        trust: if p.trusted {
            TrustLevel::Trusted
        } else {
            TrustLevel::Untrusted
        },
        histories_verified: p.verified,
        consecutive_verified: p.streak,
        errors: ErrorCounts {
            verification: p.errors,
            late: p.late,
            demotions: p.demotions,
        },
        returns: ReturnStats {
            // The market keeps only the recent blended value, not the count or extremes.
            count: 0,
            recent_ns_per_unit: recent,
            mean_ns_per_unit: None,
            min_ns_per_unit: None,
            max_ns_per_unit: None,
        },
        events: heapless::Vec::new(),
        paid: Amount(p.paid),
        forfeited: Amount(p.forfeited),
    }
}

fn event(e: &trust::TrustEvent) -> TrustEvent {
    let kind = match e.kind {
        trust::EventKind::Joined => TrustEventKind::Joined,
        trust::EventKind::Promoted => TrustEventKind::Promoted,
        trust::EventKind::Error { kind, assignment } => TrustEventKind::Error {
            kind: match kind {
                trust::ErrorKind::SampleMismatch => RigErrorKind::SampleMismatch,
                trust::ErrorKind::BadProof => RigErrorKind::BadProof,
                trust::ErrorKind::DuplicateMismatch => RigErrorKind::DuplicateMismatch,
                trust::ErrorKind::BadResult => RigErrorKind::BadResult,
            },
            assignment,
        },
        trust::EventKind::Late { assignment } => TrustEventKind::Late { assignment },
    };
    TrustEvent {
        time_unix_s: e.time_unix_s,
        kind,
    }
}

/// The standing of a rig as the store keeps it (`label`: how the manager names the rig).
pub fn standing_from_store(r: &trust::RigRecord, label: &str) -> RigStanding {
    let mut events = heapless::Vec::new();
    let skip = r
        .events
        .len()
        .saturating_sub(compushare_protocol::limits::RECORD_EVENTS);
    for e in r.events.iter().skip(skip) {
        // Cannot fail: at most RECORD_EVENTS remain after the skip.
        let _ = events.push(event(e));
    }
    // A demotion is an error while trusted; replayed from the kept events (a lower bound once
    // old events have been dropped).
    let mut trusted = false;
    let mut demotions = 0u64;
    for e in &r.events {
        match e.kind {
            trust::EventKind::Promoted => trusted = true,
            trust::EventKind::Error { .. } if trusted => {
                trusted = false;
                demotions += 1;
            }
            _ => {}
        }
    }
    let s = &r.returns;
    let seen = s.count > 0;
    RigStanding {
        label: name(label),
        trust: r.trust,
        histories_verified: r.histories_verified,
        consecutive_verified: r.consecutive_verified,
        errors: ErrorCounts {
            verification: r.errors,
            late: r.late,
            demotions,
        },
        returns: ReturnStats {
            count: s.count,
            recent_ns_per_unit: seen.then_some(us_to_ns(s.recent)),
            mean_ns_per_unit: s.mean().map(us_to_ns),
            min_ns_per_unit: seen.then_some(us_to_ns(s.min)),
            max_ns_per_unit: seen.then_some(us_to_ns(s.max)),
        },
        events,
        paid: Amount(0),
        forfeited: Amount(0),
    }
}

/// `key`'s public record from its standing as a rig, the stars clients gave it (`as_rig`) and
/// the stars rigs gave it as a client (`as_client`); `None` when it is no rig the manager knows
/// and holds no rating.
pub fn record(
    key: PublicKey,
    rig: Option<RigStanding>,
    as_rig: RatingSummary,
    as_client: RatingSummary,
) -> Option<PublicRecord> {
    if rig.is_none() && as_rig.count == 0 && as_client.count == 0 {
        return None;
    }
    Some(PublicRecord {
        key,
        rig,
        as_rig,
        as_client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::types::AssignmentId;

    #[test]
    fn market_standing_maps_counters_and_time_per_cost() {
        let p = RigPublic {
            label: "rig-a".into(),
            trusted: true,
            streak: 7,
            verified: 9,
            errors: 1,
            late: 2,
            demotions: 1,
            s_per_milli: Some(2.5e-6),
            ratings: vec![5],
            paid: 40,
            forfeited: 3,
        };
        let s = standing_from_market(&p);
        assert_eq!(s.label.as_str(), "rig-a");
        assert_eq!(s.trust, TrustLevel::Trusted);
        assert_eq!((s.histories_verified, s.consecutive_verified), (9, 7));
        assert_eq!(
            s.errors,
            ErrorCounts {
                verification: 1,
                late: 2,
                demotions: 1
            }
        );
        assert_eq!(s.returns.recent_ns_per_unit, Some(2_500_000));
        assert_eq!((s.paid, s.forfeited), (Amount(40), Amount(3)));
        let nan = RigPublic {
            s_per_milli: Some(f64::NAN),
            ..RigPublic::default()
        };
        assert_eq!(standing_from_market(&nan).returns.recent_ns_per_unit, None);
    }

    #[test]
    fn store_standing_keeps_the_latest_events_and_counts_demotions() {
        let mut r = trust::RigRecord::new([3; 32], 100);
        r.record_verified(10, 101, 10); // promoted
        r.record_late(AssignmentId(3), 101);
        r.record_error(trust::ErrorKind::BadProof, Some(AssignmentId(4)), 102);
        r.record_error(trust::ErrorKind::BadResult, Some(AssignmentId(5)), 102); // already down
        r.record_return(1000, 2_000_000);
        for i in 0..20 {
            r.record_late(AssignmentId(i), 200 + i);
        }
        let s = standing_from_store(&r, "rig-b");
        assert_eq!(s.trust, TrustLevel::Untrusted);
        assert_eq!(s.errors.demotions, 1);
        assert_eq!(s.errors.late, 21);
        assert_eq!(s.errors.verification, 2);
        assert_eq!(s.events.len(), compushare_protocol::limits::RECORD_EVENTS);
        assert_eq!(
            s.events.last().map(|e| e.kind),
            Some(TrustEventKind::Late {
                assignment: AssignmentId(19)
            })
        );
        assert_eq!(s.returns.count, 1);
        assert_eq!(s.returns.mean_ns_per_unit, Some(500_000));
    }

    #[test]
    fn unknown_keys_have_no_record() {
        let none = RatingSummary::default();
        assert_eq!(record([1; 32], None, none, none), None);
        let rated = RatingSummary { count: 1, sum: 4 };
        let r = record([1; 32], None, none, rated).unwrap();
        assert_eq!(r.as_client.count, 1);
        assert!(r.rig.is_none());
    }
}
