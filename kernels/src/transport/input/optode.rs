//! `Optode`: the source and the detectors.
//!
//! `Source`: `Type` (default `"pencil"`), `Pos` (required), `Dir` (required; normalised; a
//! fourth element, MCX's focal length, must be 0), `Param1`/`Param2` (up to 4 numbers, as
//! MCX), `Pattern`. Per type:
//! - `pencil`, `isotropic`: `Param1`/`Param2` must be all zero if present.
//! - `cone`: `Param1[0]` half angle in radians, in (0, pi].
//! - `gaussian`: `Param1[0]` waist radius in grid units, > 0.
//! - `disk`: `Param1[0]` radius in grid units, > 0.
//! - `planar`: `Param1[0..3]` and `Param2[0..3]` the two edge vectors (not parallel).
//! - `pattern`: as planar, plus `Pattern: {"Nx": w, "Ny": h, "Data": [w*h values in [0,1]]}`
//!   (row-major in x); `Param1[3]`/`Param2[3]`, when non-zero, must equal `Nx`/`Ny`.
//!
//! `Detector`: an array of `{"Pos": [x, y, z], "R": r}`.
//! With `Domain.OriginType` 0, every position is shifted by -1 (MCX's 1-based convention).

use serde_json::Value;

use super::json::{num32, numbers, string, to_f32x3, uint, vec3, Obj};
use super::InputError;
use crate::transport::job::{Detector, Source, SourceKind};

/// Largest pattern (pixels) a pattern source may carry.
const MAX_PATTERN: u64 = 1 << 24;

pub(super) struct Optode {
    pub source: Source,
    pub detectors: Vec<Detector>,
}

pub(super) fn parse(o: &Obj<'_>, shift: f32) -> Result<Optode, InputError> {
    o.deny_unknown(&["Source", "Detector"])?;
    let source = parse_source(&Obj::new(o.req("Source")?, &o.path("Source"))?, shift)?;
    let detectors = match o.get("Detector") {
        None => Vec::new(),
        Some(v) => parse_detectors(v, &o.path("Detector"), shift)?,
    };
    Ok(Optode { source, detectors })
}

fn shifted(v: [f64; 3], shift: f32, path: &str) -> Result<[f32; 3], InputError> {
    let p = to_f32x3(v, path)?;
    Ok(p.map(|x| x + shift))
}

fn parse_source(s: &Obj<'_>, shift: f32) -> Result<Source, InputError> {
    s.deny_unknown(&["Type", "Pos", "Dir", "Param1", "Param2", "Pattern"])?;
    let pos = shifted(vec3(s.req("Pos")?, &s.path("Pos"))?, shift, &s.path("Pos"))?;
    let dir_path = s.path("Dir");
    let d = numbers(s.req("Dir")?, &dir_path, 3, 4)?;
    if d.get(3).is_some_and(|&f| f != 0.0) {
        return Err(InputError::invalid(
            &format!("{dir_path}[3]"),
            "a focal length (4th element) is not supported; use 0 or 3 elements",
        ));
    }
    let norm = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(InputError::invalid(
            &dir_path,
            "must be a non-zero finite vector",
        ));
    }
    let dir = to_f32x3([d[0] / norm, d[1] / norm, d[2] / norm], &dir_path)?;

    let params = |key: &str| -> Result<[f64; 4], InputError> {
        let mut out = [0.0; 4];
        if let Some(v) = s.get(key) {
            for (slot, x) in out.iter_mut().zip(numbers(v, &s.path(key), 1, 4)?) {
                *slot = x;
            }
        }
        Ok(out)
    };
    let p1 = params("Param1")?;
    let p2 = params("Param2")?;
    let type_path = s.path("Type");
    let ty = match s.get("Type") {
        Some(v) => string(v, &type_path)?,
        None => "pencil",
    };
    let unused = |key: &str, p: [f64; 4]| -> Result<(), InputError> {
        if p.iter().any(|&x| x != 0.0) {
            Err(InputError::invalid(
                &s.path(key),
                format!("not used by a {ty} source; leave it zero"),
            ))
        } else {
            Ok(())
        }
    };
    let first_positive = |what: &str| -> Result<f32, InputError> {
        let x = p1[0] as f32;
        if x > 0.0 && x.is_finite() {
            Ok(x)
        } else {
            Err(InputError::invalid(
                &format!("{}[0]", s.path("Param1")),
                format!("{what} must be positive"),
            ))
        }
    };
    if ty != "pattern" && s.get("Pattern").is_some() {
        return Err(InputError::invalid(
            &s.path("Pattern"),
            "only used by a pattern source",
        ));
    }
    let kind = match ty {
        "pencil" | "isotropic" => {
            unused("Param1", p1)?;
            unused("Param2", p2)?;
            if ty == "pencil" {
                SourceKind::Pencil
            } else {
                SourceKind::Isotropic
            }
        }
        "cone" | "gaussian" | "disk" => {
            unused("Param2", p2)?;
            if p1[1..].iter().any(|&x| x != 0.0) {
                return Err(InputError::invalid(
                    &s.path("Param1"),
                    format!("a {ty} source uses only Param1[0]"),
                ));
            }
            match ty {
                "cone" => {
                    let a = first_positive("the cone half angle")?;
                    if f64::from(a) > std::f64::consts::PI {
                        return Err(InputError::invalid(
                            &format!("{}[0]", s.path("Param1")),
                            "the cone half angle must be at most pi (radians)",
                        ));
                    }
                    SourceKind::Cone { half_angle: a }
                }
                "gaussian" => SourceKind::Gaussian {
                    waist: first_positive("the waist radius")?,
                },
                _ => SourceKind::Disk {
                    radius: first_positive("the disk radius")?,
                },
            }
        }
        "planar" | "pattern" => {
            let v1 = to_f32x3([p1[0], p1[1], p1[2]], &s.path("Param1"))?;
            let v2 = to_f32x3([p2[0], p2[1], p2[2]], &s.path("Param2"))?;
            let cross = [
                p1[1] * p2[2] - p1[2] * p2[1],
                p1[2] * p2[0] - p1[0] * p2[2],
                p1[0] * p2[1] - p1[1] * p2[0],
            ];
            if cross.iter().all(|&c| c == 0.0) {
                return Err(InputError::invalid(
                    &s.path("Param2"),
                    "Param1[0..3] and Param2[0..3] must be non-zero and not parallel",
                ));
            }
            if ty == "planar" {
                if p1[3] != 0.0 || p2[3] != 0.0 {
                    return Err(InputError::invalid(
                        &s.path("Param1"),
                        "a planar source does not use the 4th elements of Param1/Param2",
                    ));
                }
                SourceKind::Planar { v1, v2 }
            } else {
                let (width, height, pattern) = parse_pattern(s, p1[3], p2[3])?;
                SourceKind::Pattern {
                    v1,
                    v2,
                    width,
                    height,
                    pattern,
                }
            }
        }
        other => {
            return Err(InputError::invalid(
                &type_path,
                format!(
                    "source type {other:?} is not supported (pencil, isotropic, cone, gaussian, \
                     disk, planar, pattern)"
                ),
            ))
        }
    };
    Ok(Source { pos, dir, kind })
}

fn parse_pattern(
    s: &Obj<'_>,
    nx_hint: f64,
    ny_hint: f64,
) -> Result<(u32, u32, Vec<f32>), InputError> {
    let p = Obj::new(s.req("Pattern")?, &s.path("Pattern"))?;
    p.deny_unknown(&["Nx", "Ny", "Data"])?;
    let dim = |key: &str, hint: f64, hint_path: String| -> Result<u32, InputError> {
        let n = uint(p.req(key)?, &p.path(key))?;
        if n == 0 || n > MAX_PATTERN {
            return Err(InputError::invalid(
                &p.path(key),
                format!("must be in 1..={MAX_PATTERN}"),
            ));
        }
        if hint != 0.0 && hint != n as f64 {
            return Err(InputError::invalid(
                &hint_path,
                format!("must be 0 or equal Pattern.{key} ({n})"),
            ));
        }
        Ok(n as u32)
    };
    let width = dim("Nx", nx_hint, format!("{}[3]", s.path("Param1")))?;
    let height = dim("Ny", ny_hint, format!("{}[3]", s.path("Param2")))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PATTERN {
        return Err(InputError::invalid(
            p.own_path(),
            format!("Nx x Ny over {MAX_PATTERN} pixels"),
        ));
    }
    let data_path = p.path("Data");
    let data = p
        .req("Data")?
        .as_array()
        .ok_or_else(|| InputError::invalid(&data_path, "expected an array of numbers"))?;
    if data.len() as u64 != pixels {
        return Err(InputError::invalid(
            &data_path,
            format!("expected Nx x Ny = {pixels} values, found {}", data.len()),
        ));
    }
    let pattern = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("{data_path}[{i}]");
            let x = num32(v, &path)?;
            if (0.0..=1.0).contains(&x) {
                Ok(x)
            } else {
                Err(InputError::invalid(
                    &path,
                    "pattern values must be in [0, 1]",
                ))
            }
        })
        .collect::<Result<Vec<f32>, _>>()?;
    Ok((width, height, pattern))
}

fn parse_detectors(v: &Value, path: &str, shift: f32) -> Result<Vec<Detector>, InputError> {
    let arr = v
        .as_array()
        .ok_or_else(|| InputError::invalid(path, "expected an array of {Pos, R}"))?;
    if arr.len() > usize::from(u16::MAX) + 1 {
        return Err(InputError::invalid(path, "more than 65536 detectors"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            let d = Obj::new(item, &format!("{path}[{i}]"))?;
            d.deny_unknown(&["Pos", "R"])?;
            let pos = shifted(vec3(d.req("Pos")?, &d.path("Pos"))?, shift, &d.path("Pos"))?;
            let radius = num32(d.req("R")?, &d.path("R"))?;
            if radius <= 0.0 {
                return Err(InputError::invalid(&d.path("R"), "must be positive"));
            }
            Ok(Detector { pos, radius })
        })
        .collect()
}
