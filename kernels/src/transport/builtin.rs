//! The built-in MCX benchmarks (cube60, cube60b, cubesph60b, cube60planar), as MCX JSON text.
//!
//! They are kept as JSON, not as `Job` values, so every benchmark run goes through the same
//! parser as user input. Definitions: reference `transport.md` section 1 (MCX's built-in
//! benchmark family): a 60^3 grid of 1 mm voxels filled with label 1, one 5 ns gate, MCX's
//! default seed, 1e6 photons, four radius-1 detectors on the top face.

use super::input::{parse_job, InputError, ParseOptions};
use super::job::Job;

/// Names accepted by [`builtin_json`] and [`builtin_job`], in the reference's order.
pub const BUILTIN_NAMES: [&str; 4] = ["cube60", "cube60b", "cubesph60b", "cube60planar"];

const CUBE60: &str = r#"{
  "Session": { "ID": "cube60", "Photons": 1000000, "RNGSeed": 1648335518, "DoMismatch": 0 },
  "Forward": { "T0": 0.0, "T1": 5.0e-9, "Dt": 5.0e-9 },
  "Domain": {
    "Dim": [60, 60, 60], "OriginType": 1, "LengthUnit": 1,
    "Media": [
      { "mua": 0.0, "mus": 0.0, "g": 1.0, "n": 1.0 },
      { "mua": 0.005, "mus": 1.0, "g": 0.01, "n": 1.37 },
      { "mua": 0.002, "mus": 5.0, "g": 0.90, "n": 1.0 }
    ]
  },
  "Shapes": [ { "Name": "cube60" }, { "Grid": { "Tag": 1, "Size": [60, 60, 60] } } ],
  "Optode": {
    "Source": { "Type": "pencil", "Pos": [29, 29, 0], "Dir": [0, 0, 1] },
    "Detector": [
      { "Pos": [29, 19, 0], "R": 1 }, { "Pos": [29, 39, 0], "R": 1 },
      { "Pos": [19, 29, 0], "R": 1 }, { "Pos": [39, 29, 0], "R": 1 }
    ]
  }
}"#;

const CUBE60B: &str = r#"{
  "Session": { "ID": "cube60b", "Photons": 1000000, "RNGSeed": 1648335518, "DoMismatch": 1 },
  "Forward": { "T0": 0.0, "T1": 5.0e-9, "Dt": 5.0e-9 },
  "Domain": {
    "Dim": [60, 60, 60], "OriginType": 1, "LengthUnit": 1,
    "Media": [
      { "mua": 0.0, "mus": 0.0, "g": 1.0, "n": 1.0 },
      { "mua": 0.005, "mus": 1.0, "g": 0.01, "n": 1.37 },
      { "mua": 0.002, "mus": 5.0, "g": 0.90, "n": 1.0 }
    ]
  },
  "Shapes": [ { "Name": "cube60b" }, { "Grid": { "Tag": 1, "Size": [60, 60, 60] } } ],
  "Optode": {
    "Source": { "Type": "pencil", "Pos": [29, 29, 0], "Dir": [0, 0, 1] },
    "Detector": [
      { "Pos": [29, 19, 0], "R": 1 }, { "Pos": [29, 39, 0], "R": 1 },
      { "Pos": [19, 29, 0], "R": 1 }, { "Pos": [39, 29, 0], "R": 1 }
    ]
  }
}"#;

const CUBESPH60B: &str = r#"{
  "Session": { "ID": "cubesph60b", "Photons": 1000000, "RNGSeed": 1648335518, "DoMismatch": 1 },
  "Forward": { "T0": 0.0, "T1": 5.0e-9, "Dt": 5.0e-9 },
  "Domain": {
    "Dim": [60, 60, 60], "OriginType": 1, "LengthUnit": 1,
    "Media": [
      { "mua": 0.0, "mus": 0.0, "g": 1.0, "n": 1.0 },
      { "mua": 0.005, "mus": 1.0, "g": 0.01, "n": 1.37 },
      { "mua": 0.002, "mus": 5.0, "g": 0.90, "n": 1.0 }
    ]
  },
  "Shapes": [
    { "Name": "cubesph60b" },
    { "Grid": { "Tag": 1, "Size": [60, 60, 60] } },
    { "Sphere": { "Tag": 2, "O": [30, 30, 30], "R": 15 } }
  ],
  "Optode": {
    "Source": { "Type": "pencil", "Pos": [29, 29, 0], "Dir": [0, 0, 1] },
    "Detector": [
      { "Pos": [29, 19, 0], "R": 1 }, { "Pos": [29, 39, 0], "R": 1 },
      { "Pos": [19, 29, 0], "R": 1 }, { "Pos": [39, 29, 0], "R": 1 }
    ]
  }
}"#;

const CUBE60PLANAR: &str = r#"{
  "Session": { "ID": "cube60planar", "Photons": 1000000, "RNGSeed": 1648335518, "DoMismatch": 1 },
  "Forward": { "T0": 0.0, "T1": 5.0e-9, "Dt": 5.0e-9 },
  "Domain": {
    "Dim": [60, 60, 60], "OriginType": 1, "LengthUnit": 1,
    "Media": [
      { "mua": 0.0, "mus": 0.0, "g": 1.0, "n": 1.0 },
      { "mua": 0.005, "mus": 1.0, "g": 0.01, "n": 1.37 },
      { "mua": 0.002, "mus": 5.0, "g": 0.90, "n": 1.0 }
    ]
  },
  "Shapes": [ { "Name": "cube60planar" }, { "Grid": { "Tag": 1, "Size": [60, 60, 60] } } ],
  "Optode": {
    "Source": {
      "Type": "planar", "Pos": [10, 10, -10], "Dir": [0, 0, 1],
      "Param1": [40, 0, 0, 0], "Param2": [0, 40, 0, 0]
    },
    "Detector": [
      { "Pos": [29, 19, 0], "R": 1 }, { "Pos": [29, 39, 0], "R": 1 },
      { "Pos": [19, 29, 0], "R": 1 }, { "Pos": [39, 29, 0], "R": 1 }
    ]
  }
}"#;

/// The MCX JSON text of a built-in benchmark, or `None` for an unknown name.
pub fn builtin_json(name: &str) -> Option<&'static str> {
    match name {
        "cube60" => Some(CUBE60),
        "cube60b" => Some(CUBE60B),
        "cubesph60b" => Some(CUBESPH60B),
        "cube60planar" => Some(CUBE60PLANAR),
        _ => None,
    }
}

/// Why a built-in benchmark could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuiltinError {
    /// No benchmark has this name.
    #[error("unknown benchmark {name:?} (known: cube60, cube60b, cubesph60b, cube60planar)")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The embedded JSON did not parse under the given options (e.g. a memory limit).
    #[error("benchmark {name}: {error}")]
    Input {
        /// The benchmark.
        name: String,
        /// The parser's error (in this error's text, so not its `source`).
        error: InputError,
    },
}

/// Parses a built-in benchmark into a job.
pub fn builtin_job(name: &str, opts: &ParseOptions) -> Result<Job, BuiltinError> {
    let text = builtin_json(name).ok_or_else(|| BuiltinError::Unknown {
        name: name.to_owned(),
    })?;
    parse_job(text, opts).map_err(|error| BuiltinError::Input {
        name: name.to_owned(),
        error,
    })
}
