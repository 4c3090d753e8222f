//! `Domain`: grid size, voxel size, media table and the label volume.
//!
//! Keys: `Dim` (three positive integers; may be left out when a `Grid` shape gives the size),
//! `OriginType` (1: grid origin at `[0,0,0]`; 0, MCX's default: positions are 1-based and
//! shifted by -1), `LengthUnit` (voxel edge in mm, default 1), `Media` (rows of
//! `{mua, mus, g, n}`, row 0 the background), `VolumeFile` (raw labels, x fastest, relative
//! to the JSON file), `MediaFormat` (`"byte"` uint8 or `"short"` little-endian uint16; when
//! absent the width follows from the file size), and `BCFlags` (see the parent module).
//!
//! The label volume starts as `VolumeFile` (or all zeros) and then `Shapes` are drawn over it
//! in order. Memory (tally plus labels) is checked before the volume is allocated.

use std::io::Read;

use serde_json::Value;

use super::json::{num, num32, string, uint, Obj};
use super::{job_memory_bytes, shapes, InputError, ParseOptions, VolumeSource};
use crate::transport::job::Medium;

/// Most rows a media table may have (labels are `u16`).
const MAX_MEDIA: usize = 1 << 16;

/// What `Domain` (with `Shapes`) contributes to a job.
pub(super) struct Domain {
    pub dim: [u32; 3],
    pub unit_mm: f32,
    pub media: Vec<Medium>,
    pub labels: Vec<u16>,
    /// Amount added to source and detector positions (-1 for `OriginType` 0).
    pub origin_shift: f32,
}

pub(super) fn parse(
    d: &Obj<'_>,
    shapes_value: Option<&Value>,
    gates: u32,
    volumes: VolumeSource<'_>,
    opts: &ParseOptions,
) -> Result<Domain, InputError> {
    d.deny_unknown(&[
        "Dim",
        "OriginType",
        "LengthUnit",
        "Media",
        "VolumeFile",
        "MediaFormat",
        "BCFlags",
    ])?;
    let origin_shift = match d.get("OriginType") {
        None => -1.0,
        Some(v) => match uint(v, &d.path("OriginType")) {
            Ok(0) => -1.0,
            Ok(1) => 0.0,
            _ => {
                return Err(InputError::invalid(
                    &d.path("OriginType"),
                    "expected 0 or 1",
                ))
            }
        },
    };
    let unit_mm = match d.get("LengthUnit") {
        None => 1.0,
        Some(v) => {
            let u = num32(v, &d.path("LengthUnit"))?;
            if u <= 0.0 {
                return Err(InputError::invalid(
                    &d.path("LengthUnit"),
                    "must be positive",
                ));
            }
            u
        }
    };
    let media = parse_media(d)?;

    let shapes = match shapes_value {
        Some(v) => shapes::parse(v, media.len())?,
        None => Vec::new(),
    };
    let dim = dim_from(d, &shapes)?;

    let dim64 = dim.map(u64::from);
    let bytes = job_memory_bytes(dim64, u64::from(gates));
    let voxels = dim64.iter().product::<u64>();
    if bytes > u128::from(opts.max_job_bytes) || usize::try_from(voxels).is_err() {
        return Err(InputError::TooLarge {
            dim: dim64,
            gates: u64::from(gates),
            bytes,
            limit: opts.max_job_bytes,
        });
    }
    // Fits in usize: checked just above.
    let voxels = voxels as usize;

    let mut labels = match d.get("VolumeFile") {
        Some(v) => read_volume(d, v, voxels, volumes)?,
        None if matches!(volumes, VolumeSource::Attached(_)) => {
            return Err(InputError::invalid(
                d.own_path(),
                "a volume travels with this job but Domain.VolumeFile is not set",
            ))
        }
        None => {
            if let Some(v) = d.get("MediaFormat") {
                string(v, &d.path("MediaFormat"))?;
                return Err(InputError::invalid(
                    &d.path("MediaFormat"),
                    "only meaningful with Domain.VolumeFile",
                ));
            }
            vec![0u16; voxels]
        }
    };
    check_labels(&labels, media.len(), &d.path("VolumeFile"))?;
    shapes::rasterise(&shapes, dim, &mut labels)?;
    Ok(Domain {
        dim,
        unit_mm,
        media,
        labels,
        origin_shift,
    })
}

/// The grid size: `Dim`, or the size of a `Grid` shape.
fn dim_from(d: &Obj<'_>, shapes: &[shapes::Shape]) -> Result<[u32; 3], InputError> {
    match d.get("Dim") {
        Some(v) => parse_dim(v, &d.path("Dim")),
        None => shapes::grid_size(shapes).ok_or_else(|| InputError::Missing {
            path: d.path("Dim"),
        }),
    }
}

/// The grid size of a `Domain` (with its `Shapes`, which may give it) without building
/// anything per voxel.
pub(super) fn dim_of(
    d: &Obj<'_>,
    shapes_value: Option<&Value>,
    media: usize,
) -> Result<[u32; 3], InputError> {
    let shapes = match shapes_value {
        Some(v) => shapes::parse(v, media)?,
        None => Vec::new(),
    };
    dim_from(d, &shapes)
}

fn parse_dim(v: &Value, path: &str) -> Result<[u32; 3], InputError> {
    let arr = v
        .as_array()
        .ok_or_else(|| InputError::invalid(path, "expected [nx, ny, nz]"))?;
    if arr.len() != 3 {
        return Err(InputError::invalid(
            path,
            format!("expected 3 sizes, found {}", arr.len()),
        ));
    }
    let mut dim = [0u32; 3];
    for (i, (slot, x)) in dim.iter_mut().zip(arr).enumerate() {
        let p = format!("{path}[{i}]");
        if x.as_f64().is_some_and(|f| f <= 0.0) {
            return Err(InputError::invalid(&p, "grid sizes must be positive"));
        }
        let n = uint(x, &p)?;
        *slot = u32::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| InputError::invalid(&p, "grid size must be between 1 and 2^32-1"))?;
    }
    Ok(dim)
}

fn parse_media(d: &Obj<'_>) -> Result<Vec<Medium>, InputError> {
    let path = d.path("Media");
    let rows = d
        .req("Media")?
        .as_array()
        .ok_or_else(|| InputError::invalid(&path, "expected an array of {mua, mus, g, n}"))?;
    if rows.is_empty() {
        return Err(InputError::invalid(
            &path,
            "needs at least row 0 (the background)",
        ));
    }
    if rows.len() > MAX_MEDIA {
        return Err(InputError::invalid(
            &path,
            format!("more than {MAX_MEDIA} media"),
        ));
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let r = Obj::new(row, &format!("{path}[{i}]"))?;
            r.deny_unknown(&["mua", "mus", "g", "n"])?;
            let get = |k: &str| num32(r.req(k)?, &r.path(k));
            let m = Medium {
                mua: get("mua")?,
                mus: get("mus")?,
                g: get("g")?,
                n: get("n")?,
            };
            if m.mua < 0.0 {
                return Err(InputError::invalid(&r.path("mua"), "must not be negative"));
            }
            if m.mus < 0.0 {
                return Err(InputError::invalid(&r.path("mus"), "must not be negative"));
            }
            if !(-1.0..=1.0).contains(&m.g) {
                return Err(InputError::invalid(&r.path("g"), "must be in [-1, 1]"));
            }
            if m.n <= 0.0 {
                return Err(InputError::invalid(&r.path("n"), "must be positive"));
            }
            Ok(m)
        })
        .collect()
}

/// The label volume named by `Domain.VolumeFile`, from where `volumes` says: the attached
/// bytes, or (local runs only) the file next to the JSON, its size checked before reading.
fn read_volume(
    d: &Obj<'_>,
    v: &Value,
    voxels: usize,
    volumes: VolumeSource<'_>,
) -> Result<Vec<u16>, InputError> {
    let path = d.path("VolumeFile");
    let rel = string(v, &path)?;
    let format = match d.get("MediaFormat") {
        Some(f) => match string(f, &d.path("MediaFormat"))? {
            "byte" | "uint8" => Some(1u64),
            "short" | "uint16" => Some(2),
            _ => {
                return Err(InputError::invalid(
                    &d.path("MediaFormat"),
                    "only \"byte\" (uint8) and \"short\" (uint16) label volumes are supported",
                ))
            }
        },
        None => None,
    };
    let voxels64 = voxels as u64;
    let width_for = |len: u64| match format {
        Some(w) => Some(w),
        None if len == voxels64 => Some(1),
        None if len == 2 * voxels64 => Some(2),
        None => None,
    };
    let expected_text = |len: u64, width: Option<u64>| match width {
        Some(w) => format!(
            "{len} bytes, expected {} ({voxels} voxels x {w} byte(s))",
            voxels64 * w
        ),
        None => format!(
            "{len} bytes, but Domain.Dim holds {voxels} voxels: expected {voxels} (uint8) or \
             {} (uint16) bytes",
            2 * voxels64
        ),
    };
    let raw: Vec<u8>;
    let bytes: &[u8] = match volumes {
        // The job's own bytes: errors speak of them, never of a file.
        VolumeSource::Attached(b) => {
            let len = b.len() as u64;
            let width = width_for(len);
            if width.map(|w| w * voxels64) != Some(len) {
                return Err(InputError::invalid(
                    &path,
                    format!("the attached volume holds {}", expected_text(len, width)),
                ));
            }
            b
        }
        // Nothing is read: the value names a file, and this job brought none.
        VolumeSource::None => {
            return Err(InputError::invalid(
                &path,
                "names a volume file, but no volume travels with this job (a job sent to a \
                 node carries its volume: `compushare submit` attaches the file it names)",
            ))
        }
        VolumeSource::Directory(dir) => {
            let file = dir.0.join(rel);
            let io_err = |error| InputError::Io {
                file: file.clone(),
                error,
            };
            let meta = std::fs::metadata(&file).map_err(io_err)?;
            if meta.is_dir() {
                return Err(InputError::IsDirectory { file });
            }
            let len = meta.len();
            let width = width_for(len);
            let Some(expected) = width.map(|w| w * voxels64).filter(|&e| e == len) else {
                return Err(InputError::FileSize {
                    reason: expected_text(len, width),
                    file,
                });
            };
            let mut buf = Vec::with_capacity(voxels * width.unwrap_or(1) as usize);
            std::fs::File::open(&file)
                .and_then(|f| f.take(expected).read_to_end(&mut buf))
                .map_err(io_err)?;
            if buf.len() as u64 != expected {
                return Err(InputError::FileSize {
                    file,
                    reason: format!(
                        "changed while reading: got {} bytes, expected {expected}",
                        buf.len()
                    ),
                });
            }
            raw = buf;
            &raw
        }
    };
    Ok(if bytes.len() == voxels {
        bytes.iter().map(|&b| u16::from(b)).collect()
    } else {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    })
}

fn check_labels(labels: &[u16], media: usize, path: &str) -> Result<(), InputError> {
    match labels.iter().find(|&&l| usize::from(l) >= media) {
        Some(&l) => Err(InputError::LabelOutOfRange {
            path: path.to_owned(),
            label: u32::from(l),
            media,
        }),
        None => Ok(()),
    }
}

/// Reads a number that must be finite and positive.
pub(super) fn positive(v: &Value, path: &str) -> Result<f64, InputError> {
    let x = num(v, path)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(InputError::invalid(path, "must be positive"))
    }
}
