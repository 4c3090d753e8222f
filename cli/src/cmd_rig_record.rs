//! How `compushare status --rig KEY` shows a key's public record: a few human lines, or with
//! `--json` one object whose field names scripts may rely on.

use std::fmt::Write as _;

use compushare_protocol::hex;
use compushare_protocol::msg::{PublicRecord, RatingSummary, TrustEvent, TrustEventKind};
use compushare_protocol::types::TrustLevel;
use serde_json::{json, Value};

fn trust(t: TrustLevel) -> &'static str {
    match t {
        TrustLevel::Trusted => "trusted",
        TrustLevel::Untrusted => "untrusted",
    }
}

/// Mean stars as a decimal string ("4.25"), from the exact hundredths.
fn mean(r: &RatingSummary) -> Option<String> {
    r.mean_centi()
        .map(|c| format!("{}.{:02}", c / 100, c % 100))
}

fn event_text(e: &TrustEvent) -> String {
    match e.kind {
        TrustEventKind::Joined => "joined".into(),
        TrustEventKind::Promoted => "promoted to trusted".into(),
        TrustEventKind::Error { kind, assignment } => match assignment {
            Some(a) => format!("error {kind:?} on assignment {}", a.0),
            None => format!("error {kind:?}"),
        },
        TrustEventKind::Late { assignment } => format!("late with assignment {}", assignment.0),
    }
}

fn event_json(e: &TrustEvent) -> Value {
    let (kind, error, assignment) = match e.kind {
        TrustEventKind::Joined => ("joined", None, None),
        TrustEventKind::Promoted => ("promoted", None, None),
        TrustEventKind::Error { kind, assignment } => {
            ("error", Some(format!("{kind:?}")), assignment.map(|a| a.0))
        }
        TrustEventKind::Late { assignment } => ("late", None, Some(assignment.0)),
    };
    json!({ "time_unix_s": e.time_unix_s, "kind": kind, "error": error, "assignment": assignment })
}

fn rating_json(r: &RatingSummary) -> Value {
    json!({ "count": r.count, "sum": r.sum, "mean": mean(r) })
}

/// The record as one JSON object.
pub fn to_json(r: &PublicRecord) -> Value {
    let rig = r.rig.as_ref().map(|s| {
        json!({
            "label": s.label.as_str(),
            "trust": trust(s.trust),
            "histories_verified": s.histories_verified,
            "consecutive_verified": s.consecutive_verified,
            "errors": {
                "verification": s.errors.verification,
                "late": s.errors.late,
                "demotions": s.errors.demotions,
            },
            "time_to_return_ns_per_cost_unit": {
                "count": s.returns.count,
                "recent": s.returns.recent_ns_per_unit,
                "mean": s.returns.mean_ns_per_unit,
                "min": s.returns.min_ns_per_unit,
                "max": s.returns.max_ns_per_unit,
            },
            "events": s.events.iter().map(event_json).collect::<Vec<_>>(),
            "paid": s.paid.0,
            "forfeited": s.forfeited.0,
        })
    });
    json!({
        "key": hex::encode(&r.key),
        "rig": rig,
        "ratings_from_clients": rating_json(&r.as_rig),
        "ratings_from_rigs": rating_json(&r.as_client),
    })
}

fn stars(r: &RatingSummary, from: &str) -> String {
    match mean(r) {
        Some(m) => format!("{m} stars from {} {from}", r.count),
        None => format!("not rated by {from}"),
    }
}

/// The record as human lines.
pub fn to_text(r: &PublicRecord) -> String {
    let mut out = String::new();
    let key = hex::encode(&r.key);
    match &r.rig {
        Some(s) => {
            let _ = writeln!(out, "rig {key} ({}): {}", s.label.as_str(), trust(s.trust));
            let _ = writeln!(
                out,
                "  histories verified: {} ({} consecutive)",
                s.histories_verified, s.consecutive_verified
            );
            let _ = writeln!(
                out,
                "  errors: {} verification, {} late, {} demotions",
                s.errors.verification, s.errors.late, s.errors.demotions
            );
            let ret = &s.returns;
            let mut line = match ret.recent_ns_per_unit {
                Some(ns) => format!("  time to return: {ns} ns per cost unit (recent)"),
                None => "  time to return: no return yet".to_owned(),
            };
            if let (Some(mean), Some(min), Some(max)) = (
                ret.mean_ns_per_unit,
                ret.min_ns_per_unit,
                ret.max_ns_per_unit,
            ) {
                let _ = write!(
                    line,
                    "; mean {mean}, min {min}, max {max} over {} returns",
                    ret.count
                );
            }
            let _ = writeln!(out, "{line}");
            let _ = writeln!(out, "  paid {}, forfeited {}", s.paid.0, s.forfeited.0);
            for e in &s.events {
                let _ = writeln!(out, "  event at {}: {}", e.time_unix_s, event_text(e));
            }
        }
        None => {
            let _ = writeln!(out, "key {key}: not a rig this manager knows");
        }
    }
    let _ = writeln!(out, "  as a rig: {}", stars(&r.as_rig, "clients"));
    let _ = writeln!(out, "  as a client: {}", stars(&r.as_client, "rigs"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use compushare_protocol::msg::{ErrorCounts, ReturnStats, RigErrorKind, RigStanding};
    use compushare_protocol::types::{Amount, AssignmentId};

    fn record() -> PublicRecord {
        let mut events = heapless::Vec::new();
        let _ = events.push(TrustEvent {
            time_unix_s: 10,
            kind: TrustEventKind::Error {
                kind: RigErrorKind::BadProof,
                assignment: Some(AssignmentId(7)),
            },
        });
        PublicRecord {
            key: [0xab; 32],
            rig: Some(RigStanding {
                label: heapless::String::from("rig-x"),
                trust: TrustLevel::Untrusted,
                histories_verified: 1200,
                consecutive_verified: 200,
                errors: ErrorCounts {
                    verification: 1,
                    late: 2,
                    demotions: 1,
                },
                returns: ReturnStats {
                    count: 3,
                    recent_ns_per_unit: Some(40),
                    mean_ns_per_unit: Some(50),
                    min_ns_per_unit: Some(30),
                    max_ns_per_unit: Some(80),
                },
                events,
                paid: Amount(900),
                forfeited: Amount(12),
            }),
            as_rig: RatingSummary { count: 4, sum: 17 },
            as_client: RatingSummary::default(),
        }
    }

    #[test]
    fn text_names_every_figure() {
        let t = to_text(&record());
        assert!(t.starts_with(&format!("rig {} (rig-x): untrusted\n", "ab".repeat(32))));
        assert!(t.contains("histories verified: 1200 (200 consecutive)"));
        assert!(t.contains("errors: 1 verification, 2 late, 1 demotions"));
        assert!(t.contains("40 ns per cost unit (recent); mean 50, min 30, max 80 over 3 returns"));
        assert!(t.contains("event at 10: error BadProof on assignment 7"));
        assert!(t.contains("as a rig: 4.25 stars from 4 clients"));
        assert!(t.contains("as a client: not rated by rigs"));
    }

    #[test]
    fn json_fields() {
        let j = to_json(&record());
        assert_eq!(j["key"], "ab".repeat(32));
        assert_eq!(j["rig"]["trust"], "untrusted");
        assert_eq!(j["rig"]["errors"]["late"], 2);
        assert_eq!(j["rig"]["time_to_return_ns_per_cost_unit"]["mean"], 50);
        assert_eq!(j["rig"]["events"][0]["error"], "BadProof");
        assert_eq!(j["ratings_from_clients"]["mean"], "4.25");
        assert_eq!(j["ratings_from_rigs"]["mean"], Value::Null);
    }
}
