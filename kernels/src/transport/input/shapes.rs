//! `Shapes`: MCX's constructive description of the label volume, drawn in order.
//!
//! `Shapes` is an array of one-key objects:
//! - `{"Name": "..."}`: a label for people, no effect.
//! - `{"Origin": [x, y, z]}`: offset added to the coordinates of the shapes after it.
//! - `{"Grid": {"Tag": t, "Size": [nx, ny, nz]}}`: fills the whole grid with `t`; `Size` must
//!   equal `Domain.Dim` (or gives it when `Dim` is absent).
//! - `{"Sphere": {"Tag": t, "O": [x, y, z], "R": r}}`
//! - `{"Box": {"Tag": t, "O": [x, y, z], "Size": [sx, sy, sz]}}`: `O <= centre < O + Size`.
//! - `{"Cylinder": {"Tag": t, "C0": [..], "C1": [..], "R": r}}`: finite cylinder on the axis
//!   from `C0` to `C1`.
//! - `{"XLayers" | "YLayers" | "ZLayers": [[start, end, tag], ...]}` (or one `[start, end,
//!   tag]`): voxel planes `start..=end`, 1-based as in MCX.
//!
//! As in MCX, a voxel takes a shape's tag when its centre `(i+0.5, j+0.5, k+0.5)` lies inside
//! the shape (on the surface counts as inside); later shapes overwrite earlier ones.

use serde_json::Value;

use super::json::{numbers, uint, vec3, Obj};
use super::InputError;

/// One validated drawing step.
pub(super) enum Shape {
    Origin([f64; 3]),
    Grid {
        tag: u16,
        size: [u32; 3],
        path: String,
    },
    Sphere {
        tag: u16,
        o: [f64; 3],
        r: f64,
    },
    Box {
        tag: u16,
        o: [f64; 3],
        size: [f64; 3],
    },
    Cylinder {
        tag: u16,
        c0: [f64; 3],
        c1: [f64; 3],
        r: f64,
    },
    /// `(first, last, tag)`, 0-based inclusive plane indices, along `axis`.
    Layers {
        axis: usize,
        layers: Vec<(u64, u64, u16)>,
    },
}

/// The `Size` of the first `Grid` shape, which stands in for a missing `Domain.Dim`.
pub(super) fn grid_size(shapes: &[Shape]) -> Option<[u32; 3]> {
    shapes.iter().find_map(|s| match s {
        Shape::Grid { size, .. } => Some(*size),
        _ => None,
    })
}

/// Parses and validates `Shapes` (tags against a media table of `media` rows).
pub(super) fn parse(v: &Value, media: usize) -> Result<Vec<Shape>, InputError> {
    let list = v.as_array().ok_or_else(|| {
        InputError::invalid("Shapes", "expected an array of one-key shape objects")
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let obj = Obj::new(item, &format!("Shapes[{i}]"))?;
        let mut keys = obj.keys();
        let (Some(key), None) = (keys.next(), keys.next()) else {
            return Err(InputError::invalid(
                obj.own_path(),
                "each shape is an object with exactly one key",
            ));
        };
        let path = obj.path(key);
        let body = obj.req(key)?;
        let shape = match key.as_str() {
            "Name" => {
                super::json::string(body, &path)?;
                continue;
            }
            "Origin" => Shape::Origin(vec3(body, &path)?),
            "Grid" => {
                let o = Obj::new(body, &path)?;
                o.deny_unknown(&["Tag", "Size"])?;
                let size = vec3(o.req("Size")?, &o.path("Size"))?;
                let mut dims = [0u32; 3];
                for (d, s) in dims.iter_mut().zip(size) {
                    if !(s >= 1.0 && s <= f64::from(u32::MAX) && s.fract() == 0.0) {
                        return Err(InputError::invalid(
                            &o.path("Size"),
                            "sizes must be positive integers",
                        ));
                    }
                    *d = s as u32;
                }
                Shape::Grid {
                    tag: tag(&o, media)?,
                    size: dims,
                    path: o.path("Size"),
                }
            }
            "Sphere" => {
                let o = Obj::new(body, &path)?;
                o.deny_unknown(&["Tag", "O", "R"])?;
                Shape::Sphere {
                    tag: tag(&o, media)?,
                    o: vec3(o.req("O")?, &o.path("O"))?,
                    r: super::domain::positive(o.req("R")?, &o.path("R"))?,
                }
            }
            "Box" => {
                let o = Obj::new(body, &path)?;
                o.deny_unknown(&["Tag", "O", "Size"])?;
                let size = vec3(o.req("Size")?, &o.path("Size"))?;
                if size.iter().any(|&s| s <= 0.0) {
                    return Err(InputError::invalid(
                        &o.path("Size"),
                        "sizes must be positive",
                    ));
                }
                Shape::Box {
                    tag: tag(&o, media)?,
                    o: vec3(o.req("O")?, &o.path("O"))?,
                    size,
                }
            }
            "Cylinder" => {
                let o = Obj::new(body, &path)?;
                o.deny_unknown(&["Tag", "C0", "C1", "R"])?;
                let c0 = vec3(o.req("C0")?, &o.path("C0"))?;
                let c1 = vec3(o.req("C1")?, &o.path("C1"))?;
                if c0 == c1 {
                    return Err(InputError::invalid(&o.path("C1"), "must differ from C0"));
                }
                Shape::Cylinder {
                    tag: tag(&o, media)?,
                    c0,
                    c1,
                    r: super::domain::positive(o.req("R")?, &o.path("R"))?,
                }
            }
            "XLayers" | "YLayers" | "ZLayers" => {
                let axis = match key.as_str() {
                    "XLayers" => 0,
                    "YLayers" => 1,
                    _ => 2,
                };
                Shape::Layers {
                    axis,
                    layers: layers(body, &path, media)?,
                }
            }
            _ => return Err(InputError::Unsupported { path }),
        };
        out.push(shape);
    }
    Ok(out)
}

fn tag(o: &Obj<'_>, media: usize) -> Result<u16, InputError> {
    let p = o.path("Tag");
    let t = uint(o.req("Tag")?, &p)?;
    label(t, &p, media)
}

fn label(t: u64, path: &str, media: usize) -> Result<u16, InputError> {
    match u16::try_from(t) {
        Ok(l) if usize::from(l) < media => Ok(l),
        _ => Err(InputError::LabelOutOfRange {
            path: path.to_owned(),
            label: u32::try_from(t).unwrap_or(u32::MAX),
            media,
        }),
    }
}

fn layers(v: &Value, path: &str, media: usize) -> Result<Vec<(u64, u64, u16)>, InputError> {
    let arr = v
        .as_array()
        .ok_or_else(|| InputError::invalid(path, "expected [[start, end, tag], ...]"))?;
    let one = |item: &Value, p: &str| -> Result<(u64, u64, u16), InputError> {
        let n = numbers(item, p, 3, 3)?;
        let int = |x: f64, what: &str| -> Result<u64, InputError> {
            if x >= 1.0 && x.fract() == 0.0 && x <= 4_294_967_296.0 {
                Ok(x as u64)
            } else {
                Err(InputError::invalid(
                    p,
                    format!("{what} must be an integer >= 1 (1-based)"),
                ))
            }
        };
        let (start, end) = (int(n[0], "start")?, int(n[1], "end")?);
        if end < start {
            return Err(InputError::invalid(p, "end must not be before start"));
        }
        if !(n[2] >= 0.0 && n[2].fract() == 0.0) {
            return Err(InputError::invalid(p, "tag must be a non-negative integer"));
        }
        Ok((start - 1, end - 1, label(n[2] as u64, p, media)?))
    };
    if arr.first().is_some_and(Value::is_number) {
        return Ok(vec![one(v, path)?]);
    }
    arr.iter()
        .enumerate()
        .map(|(i, item)| one(item, &format!("{path}[{i}]")))
        .collect()
}

/// Voxel indices along one axis whose centres may lie in `[lo, hi]`.
fn span(lo: f64, hi: f64, n: u32) -> std::ops::Range<u32> {
    let n_f = f64::from(n);
    let a = (lo - 0.5).floor().clamp(0.0, n_f) as u32;
    let b = ((hi - 0.5).ceil() + 1.0).clamp(0.0, n_f) as u32;
    a..b.max(a)
}

/// Draws the shapes, in order, over `labels` (a grid of `dim`).
pub(super) fn rasterise(
    shapes: &[Shape],
    dim: [u32; 3],
    labels: &mut [u16],
) -> Result<(), InputError> {
    let [nx, ny, nz] = dim;
    let index =
        |i: u32, j: u32, k: u32| i as usize + nx as usize * (j as usize + ny as usize * k as usize);
    let mut origin = [0.0f64; 3];
    // Paints every voxel in the box of spans whose centre passes `inside`.
    let paint = |labels: &mut [u16],
                 tag: u16,
                 lo: [f64; 3],
                 hi: [f64; 3],
                 inside: &dyn Fn([f64; 3]) -> bool| {
        for k in span(lo[2], hi[2], nz) {
            for j in span(lo[1], hi[1], ny) {
                for i in span(lo[0], hi[0], nx) {
                    let c = [f64::from(i) + 0.5, f64::from(j) + 0.5, f64::from(k) + 0.5];
                    if inside(c) {
                        if let Some(slot) = labels.get_mut(index(i, j, k)) {
                            *slot = tag;
                        }
                    }
                }
            }
        }
    };
    for shape in shapes {
        match shape {
            Shape::Origin(o) => origin = *o,
            Shape::Grid { tag, size, path } => {
                if *size != dim {
                    return Err(InputError::invalid(
                        path,
                        format!("Grid size {size:?} differs from Domain.Dim {dim:?}"),
                    ));
                }
                labels.fill(*tag);
            }
            Shape::Sphere { tag, o, r } => {
                let c = add(*o, origin);
                let r2 = r * r;
                paint(labels, *tag, c.map(|x| x - r), c.map(|x| x + r), &|p| {
                    dist2(p, c) <= r2
                });
            }
            Shape::Box { tag, o, size } => {
                let lo = add(*o, origin);
                let hi = add(lo, *size);
                paint(labels, *tag, lo, hi, &|p| {
                    (0..3).all(|a| p[a] >= lo[a] && p[a] < hi[a])
                });
            }
            Shape::Cylinder { tag, c0, c1, r } => {
                let a = add(*c0, origin);
                let b = add(*c1, origin);
                let axis = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
                let len2 = dot(axis, axis);
                let r2 = r * r;
                let lo = [0, 1, 2].map(|d| a[d].min(b[d]) - r);
                let hi = [0, 1, 2].map(|d| a[d].max(b[d]) + r);
                paint(labels, *tag, lo, hi, &|p| {
                    let rel = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
                    let t = dot(rel, axis) / len2;
                    if !(0.0..=1.0).contains(&t) {
                        return false;
                    }
                    let foot = [a[0] + t * axis[0], a[1] + t * axis[1], a[2] + t * axis[2]];
                    dist2(p, foot) <= r2
                });
            }
            Shape::Layers { axis, layers } => {
                for &(first, last, tag) in layers {
                    let mut lo = [f64::NEG_INFINITY; 3];
                    let mut hi = [f64::INFINITY; 3];
                    // Centres of planes first..=last, as coordinates.
                    lo[*axis] = first as f64 + 0.5;
                    hi[*axis] = last as f64 + 0.5;
                    let (l, h) = (lo[*axis], hi[*axis]);
                    let ax = *axis;
                    paint(labels, tag, lo, hi, &|p| p[ax] >= l && p[ax] <= h);
                }
            }
        }
    }
    Ok(())
}

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn dist2(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    dot(d, d)
}
