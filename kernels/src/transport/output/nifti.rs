//! NIfTI-1 single-file (.nii) writer for fluence volumes.
//!
//! Layout: the 348-byte NIfTI-1 header, a 4-byte extension flag (all zero: no extensions),
//! then float32 little-endian data in x, y, z, t order. `dim = [4, nx, ny, nz, gates, 1, 1,
//! 1]`; `pixdim[1..4]` the voxel edge in mm and `pixdim[4]` the gate width in seconds
//! (`xyzt_units` = mm | s); qform and sform both map voxel indices to millimetres by scaling
//! only, so viewers place the grid at the origin with the right voxel size.

use std::io::Write;

use super::OutputError;
use crate::transport::job::Job;

/// Header plus extension flag: where the data starts (`vox_offset`).
pub const NIFTI_HEADER_BYTES: usize = 352;

const DT_FLOAT32: i16 = 16;
const UNITS_MM: u8 = 2;
const UNITS_SEC: u8 = 8;

fn put_i16(h: &mut [u8; NIFTI_HEADER_BYTES], at: usize, v: i16) {
    if let Some(s) = h.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_i32(h: &mut [u8; NIFTI_HEADER_BYTES], at: usize, v: i32) {
    if let Some(s) = h.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_f32(h: &mut [u8; NIFTI_HEADER_BYTES], at: usize, v: f32) {
    if let Some(s) = h.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_str(h: &mut [u8; NIFTI_HEADER_BYTES], at: usize, max: usize, s: &str) {
    for (i, b) in s.bytes().take(max - 1).enumerate() {
        if let Some(slot) = h.get_mut(at + i) {
            *slot = b;
        }
    }
}

/// The header and extension flag for a job's fluence volume.
pub fn nifti_header(job: &Job) -> Result<[u8; NIFTI_HEADER_BYTES], OutputError> {
    let too_large = || OutputError::NiftiTooLarge {
        dim: job.dim,
        gates: job.time.gates,
    };
    let to16 = |n: u32| i16::try_from(n).map_err(|_| too_large());
    let dims = [
        to16(job.dim[0])?,
        to16(job.dim[1])?,
        to16(job.dim[2])?,
        to16(job.time.gates)?,
    ];
    let mut h = [0u8; NIFTI_HEADER_BYTES];
    put_i32(&mut h, 0, 348); // sizeof_hdr
    h[38] = b'r'; // regular
    put_i16(&mut h, 40, 4); // dim[0]
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 42 + 2 * i, *d);
    }
    for i in 4..7 {
        put_i16(&mut h, 42 + 2 * i, 1);
    }
    put_i16(&mut h, 70, DT_FLOAT32);
    put_i16(&mut h, 72, 32); // bitpix
    let unit = job.unit_mm;
    put_f32(&mut h, 76, 1.0); // pixdim[0]: qfac
    put_f32(&mut h, 80, unit);
    put_f32(&mut h, 84, unit);
    put_f32(&mut h, 88, unit);
    put_f32(&mut h, 92, job.time.dt as f32);
    for i in 5..8 {
        put_f32(&mut h, 76 + 4 * i, 1.0);
    }
    put_f32(&mut h, 108, NIFTI_HEADER_BYTES as f32); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = UNITS_MM | UNITS_SEC; // xyzt_units
    put_f32(&mut h, 136, job.time.t0 as f32); // toffset
    put_str(&mut h, 148, 80, &format!("compushare fluence {}", job.id));
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    put_f32(&mut h, 280, unit); // srow_x[0]
    put_f32(&mut h, 300, unit); // srow_y[1]
    put_f32(&mut h, 320, unit); // srow_z[2]
    put_str(&mut h, 344, 4, "n+1");
    Ok(h)
}

/// Writes a NIfTI-1 file: header, extension flag, then `volume` as float32.
pub fn write_nifti<W: Write>(mut w: W, job: &Job, volume: &[f32]) -> Result<(), OutputError> {
    let header = nifti_header(job)?;
    let io = |error| OutputError::Io {
        path: std::path::PathBuf::new(),
        error,
    };
    w.write_all(&header).map_err(io)?;
    super::write_mc2(w, volume).map_err(io)
}
