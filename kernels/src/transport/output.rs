//! What a run writes: normalised fluence volumes (.mc2, .nii), detected photons, the summary.
//!
//! Fluence follows MCX's normalisation of continuous-wave output per time gate:
//!
//! `fluence(v, g) = deposit(v, g) / launched / (mua(v) * Dt * voxel_volume_mm3)`
//!
//! in 1/(mm^2 s) per unit launched energy, where `launched` is `Tally::launched`
//! (`WEIGHT_ONE * photons`, except for pattern sources whose photons start with their pattern
//! weight, so the launched energy stays the denominator as in MCX), so that `sum over v, g of mua * fluence * Dt *
//! voxel_volume` equals the deposited fraction. A voxel with `mua = 0` absorbs nothing, so
//! its fluence cannot be recovered from deposited energy: it is written as `0.0` (the identity
//! above is unaffected, since such voxels contribute `mua * fluence = 0` either way).
//!
//! Volumes are float32, little-endian, x fastest, then y, z, gate (MCX's column-major order).
//! `--out FILE` picks the format from the extension: `.mc2` raw MCX volume, `.nii` NIfTI-1,
//! `.png` a picture of the plane through the source ([`picture`]).

mod detected;
mod nifti;
pub mod picture;
mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use self::detected::write_detected;
pub use self::nifti::{nifti_header, write_nifti, NIFTI_HEADER_BYTES};
pub use self::picture::{render_slice, source_plane, write_fluence_png, SliceInfo};
pub use self::summary::{RunInfo, Summary};

use super::job::Job;
use super::tally::Tally;

/// Why output could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The tally's deposit array does not match the job's voxels x gates.
    #[error("tally holds {found} deposit cells, the job has {expected} (voxels x gates)")]
    TallyShape {
        /// Cells the job needs.
        expected: usize,
        /// Cells the tally has.
        found: usize,
    },
    /// The tally holds no launched energy, so nothing can be normalised.
    #[error("the tally holds no launched photons")]
    NoPhotons,
    /// `--out` names a file whose extension selects no format.
    #[error("{}: unknown output format (use a .mc2, .nii or .png file name)", path.display())]
    UnknownFormat {
        /// The file name given.
        path: PathBuf,
    },
    /// A dimension does not fit a NIfTI-1 header (16-bit signed sizes).
    #[error(
        "grid {dim:?} x {gates} gates does not fit NIfTI-1 (each size at most 32767); use .mc2"
    )]
    NiftiTooLarge {
        /// Grid size.
        dim: [u32; 3],
        /// Time gates.
        gates: u32,
    },
    /// Writing failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The operating-system error (in this error's text, so not its `source`).
        error: std::io::Error,
    },
}

/// Output file formats, chosen by the file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VolumeFormat {
    /// MCX raw float32 volume (`.mc2`).
    Mc2,
    /// NIfTI-1 single file (`.nii`).
    Nifti,
    /// A picture of the time-integrated fluence on the plane through the source, log scale
    /// (`.png`; see [`picture`]).
    Png,
}

impl VolumeFormat {
    /// The format selected by a file name's extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self, OutputError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("mc2") => Ok(VolumeFormat::Mc2),
            Some("nii") => Ok(VolumeFormat::Nifti),
            Some("png") => Ok(VolumeFormat::Png),
            _ => Err(OutputError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }
}

/// Where the detected photons go when the volume goes to `volume_path`: the same name with
/// its extension replaced by `.detp.json`.
pub fn detected_path(volume_path: &Path) -> PathBuf {
    volume_path.with_extension("detp.json")
}

/// Normalised fluence per voxel and gate (see the module header), in volume order.
pub fn fluence(job: &Job, tally: &Tally) -> Result<Vec<f32>, OutputError> {
    let voxels = job.voxels();
    let expected = voxels.saturating_mul(job.time.gates as usize);
    if tally.deposit.len() != expected || job.labels.len() != voxels {
        return Err(OutputError::TallyShape {
            expected,
            found: tally.deposit.len(),
        });
    }
    if tally.launched == 0 {
        return Err(OutputError::NoPhotons);
    }
    let voxel_volume = f64::from(job.unit_mm).powi(3);
    let launched = tally.launched as f64;
    // 1 / (launched * mua * Dt * V) per label; 0 where mua = 0 (see module header).
    let scale: Vec<f64> = job
        .media
        .iter()
        .map(|m| {
            let denom = launched * f64::from(m.mua) * job.time.dt * voxel_volume;
            if denom > 0.0 {
                1.0 / denom
            } else {
                0.0
            }
        })
        .collect();
    let mut out = Vec::with_capacity(expected);
    if voxels == 0 {
        return Ok(out);
    }
    for gate in tally.deposit.chunks_exact(voxels) {
        out.extend(gate.iter().zip(&job.labels).map(|(&d, &label)| {
            let s = scale.get(usize::from(label)).copied().unwrap_or(0.0);
            (d as f64 * s) as f32
        }));
    }
    Ok(out)
}

/// Writes a volume as MCX .mc2: raw little-endian float32, no header.
pub fn write_mc2<W: Write>(mut w: W, volume: &[f32]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in volume.chunks(16 * 1024) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    w.flush()
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> OutputError + '_ {
    move |error| OutputError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Writes the fluence volume to `path` in the format its extension selects, and, when the job
/// has detectors, the detected photons to [`detected_path`]. Returns the files written.
pub fn write_outputs(path: &Path, job: &Job, tally: &Tally) -> Result<Vec<PathBuf>, OutputError> {
    let format = VolumeFormat::from_path(path)?;
    if format == VolumeFormat::Png {
        write_fluence_png(path, job, tally)?;
    } else {
        let volume = fluence(job, tally)?;
        let file = std::fs::File::create(path).map_err(io_error(path))?;
        let w = std::io::BufWriter::new(file);
        match format {
            VolumeFormat::Nifti => match write_nifti(w, job, &volume) {
                Err(OutputError::Io { error, .. }) => return Err(io_error(path)(error)),
                other => other?,
            },
            _ => write_mc2(w, &volume).map_err(io_error(path))?,
        }
    }
    let mut written = vec![path.to_owned()];
    if !job.detectors.is_empty() {
        let dpath = detected_path(path);
        let file = std::fs::File::create(&dpath).map_err(io_error(&dpath))?;
        write_detected(std::io::BufWriter::new(file), job, tally).map_err(io_error(&dpath))?;
        written.push(dpath);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
