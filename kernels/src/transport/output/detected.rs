//! Detected photons as one JSON document (`.detp.json`).
//!
//! ```text
//! { "format": "compushare-detected-photons", "version": 1,
//!   "id": "cube60", "photons": 1000000, "seed": 1648335518, "unit_mm": 1.0,
//!   "weight_one": 4294967296,
//!   "detectors": [ { "pos": [29, 19, 0], "r": 1 }, ... ],
//!   "records": [ { "photon": 17, "detector": 0, "scatters": 12, "weight": 123456,
//!                  "path_mm": [0, 34.5, 0], "exit_pos": [x, y, z], "exit_dir": [x, y, z] },
//!                ... ] }
//! ```
//! Positions are in grid units (origin at the grid corner); `path_mm[m]` is the path length
//! in medium `m` (entry 0, the background, is always 0); `weight / weight_one` is the exit
//! weight as a fraction of one launched photon. Records are in photon order. Floats are
//! printed as the shortest decimal that reads back to the same `f32`.

use std::fmt::Write as _;
use std::io::Write;

use crate::transport::job::Job;
use crate::transport::tally::{Tally, WEIGHT_ONE};

fn push_f32(s: &mut String, x: f32) {
    // JSON has no NaN or infinity; such a value would be an engine bug, shown as null.
    if x.is_finite() {
        let _ = write!(s, "{x}");
    } else {
        s.push_str("null");
    }
}

fn push_vec(s: &mut String, v: &[f32]) {
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_f32(s, *x);
    }
    s.push(']');
}

/// Writes the detected photons of `tally` (see the module header for the format).
pub fn write_detected<W: Write>(mut w: W, job: &Job, tally: &Tally) -> std::io::Result<()> {
    let mut s = String::with_capacity(4096);
    let id = serde_json::Value::String(job.id.clone());
    let _ = write!(
        s,
        "{{\"format\":\"compushare-detected-photons\",\"version\":1,\"id\":{id},\
         \"photons\":{},\"seed\":{},\"unit_mm\":",
        tally.photons, job.seed
    );
    push_f32(&mut s, job.unit_mm);
    let _ = write!(s, ",\"weight_one\":{WEIGHT_ONE},\"detectors\":[");
    for (i, d) in job.detectors.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"pos\":");
        push_vec(&mut s, &d.pos);
        s.push_str(",\"r\":");
        push_f32(&mut s, d.radius);
        s.push('}');
    }
    s.push_str("],\"records\":[");
    w.write_all(s.as_bytes())?;
    for (i, p) in tally.detected.iter().enumerate() {
        s.clear();
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\n{{\"photon\":{},\"detector\":{},\"scatters\":{},\"weight\":{},\"path_mm\":",
            p.photon, p.detector, p.scatters, p.weight
        );
        push_vec(&mut s, &p.path_mm);
        s.push_str(",\"exit_pos\":");
        push_vec(&mut s, &p.exit_pos);
        s.push_str(",\"exit_dir\":");
        push_vec(&mut s, &p.exit_dir);
        s.push('}');
        w.write_all(s.as_bytes())?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush()
}
