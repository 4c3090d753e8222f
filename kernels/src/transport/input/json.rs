//! Typed, path-aware reads from a `serde_json::Value` tree.
//!
//! Every accessor takes the JSON path of the value it reads (e.g. `Domain.Media[2].mua`) so
//! that each error names the exact field; objects are read through [`Obj`], which rejects keys
//! that no part of the parser consumes, so unsupported MCX options are never silently ignored.

use serde_json::{Map, Value};

use super::InputError;

/// Largest integer a JSON number may carry exactly through an `f64` (2^53).
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// A JSON object together with its path, for reads that name their field on error.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// Views `value` as an object, or fails naming `path`.
    pub(crate) fn new(value: &'a Value, path: &str) -> Result<Self, InputError> {
        match value {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_owned(),
            }),
            _ => Err(InputError::invalid(path, "expected a JSON object")),
        }
    }

    /// The path of a member of this object.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The path of this object itself.
    pub(crate) fn own_path(&self) -> &str {
        &self.path
    }

    /// An optional member (JSON `null` counts as absent, as MCX's reader treats it).
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A required member.
    pub(crate) fn req(&self, key: &str) -> Result<&'a Value, InputError> {
        self.get(key).ok_or_else(|| InputError::Missing {
            path: self.path(key),
        })
    }

    /// Fails on the first key (in document order) that is not in `allowed`.
    pub(crate) fn deny_unknown(&self, allowed: &[&str]) -> Result<(), InputError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(InputError::Unsupported { path: self.path(k) }),
            None => Ok(()),
        }
    }

    /// Member names, in document order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a String> {
        self.map.keys()
    }
}

/// A finite number.
pub(crate) fn num(v: &Value, path: &str) -> Result<f64, InputError> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(InputError::invalid(path, "expected a finite number")),
    }
}

/// A finite number that also fits an `f32` (the engine's working precision).
pub(crate) fn num32(v: &Value, path: &str) -> Result<f32, InputError> {
    let x = num(v, path)?;
    let y = x as f32;
    if y.is_finite() {
        Ok(y)
    } else {
        Err(InputError::invalid(
            path,
            "number out of single-precision range",
        ))
    }
}

/// A non-negative integer; accepts MCX's habit of writing counts as `1e6`.
pub(crate) fn uint(v: &Value, path: &str) -> Result<u64, InputError> {
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= MAX_EXACT_INT => {
            Ok(x as u64)
        }
        _ => Err(InputError::invalid(path, "expected a non-negative integer")),
    }
}

/// An MCX flag: `0`/`1` or `false`/`true`.
pub(crate) fn flag(v: &Value, path: &str) -> Result<bool, InputError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => match v.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(InputError::invalid(path, "expected 0, 1, true or false")),
        },
    }
}

/// A string.
pub(crate) fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, InputError> {
    v.as_str()
        .ok_or_else(|| InputError::invalid(path, "expected a string"))
}

/// An array of `min..=max` finite numbers.
pub(crate) fn numbers(
    v: &Value,
    path: &str,
    min: usize,
    max: usize,
) -> Result<Vec<f64>, InputError> {
    let arr = v
        .as_array()
        .ok_or_else(|| InputError::invalid(path, "expected an array of numbers"))?;
    if arr.len() < min || arr.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(InputError::invalid(
            path,
            format!("expected {want} numbers, found {}", arr.len()),
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, x)| num(x, &format!("{path}[{i}]")))
        .collect()
}

/// Exactly three finite numbers.
pub(crate) fn vec3(v: &Value, path: &str) -> Result<[f64; 3], InputError> {
    let n = numbers(v, path, 3, 3)?;
    Ok([n[0], n[1], n[2]])
}

/// Converts a vector to `f32`, failing (naming `path`) where a component overflows.
pub(crate) fn to_f32x3(v: [f64; 3], path: &str) -> Result<[f32; 3], InputError> {
    let out = [v[0] as f32, v[1] as f32, v[2] as f32];
    if out.iter().all(|x| x.is_finite()) {
        Ok(out)
    } else {
        Err(InputError::invalid(
            path,
            "number out of single-precision range",
        ))
    }
}
