//! A picture of a result: the time-integrated fluence on the grid plane through the source,
//! log scale, as a PNG.
//!
//! The plane is the one that contains the source and its launch direction, so a pencil beam
//! entering the top face shows its whole depth profile: the plane's normal is the axis along
//! which the launch direction moves least (ties go to y, then x, then z), at the source's voxel
//! (the centre of the parallelogram for planar and pattern sources). Within the plane, the
//! lower-numbered axis runs left to right and the higher one top to bottom, so for a source on
//! the `-z` face pointing `+z` the picture is an x-z section with depth increasing downwards.
//!
//! Values are the fluence of [`super::fluence`] summed over gates times the gate width (1/mm^2
//! per unit launched energy), drawn on a log scale spanning [`DECADES`] decades below the
//! slice's maximum with a perceptual colour map (dark blue to yellow); voxels below that range,
//! and voxels with no fluence, are drawn in the darkest colour. A colour bar on the right spans
//! the same range, bottom (faint) to top (the maximum). Small grids are scaled up by whole
//! pixels so that the longer side is at least [`MIN_SIDE_PX`] pixels.

use std::path::Path;

use super::{fluence, io_error, OutputError};
use crate::transport::job::{Job, SourceKind};
use crate::transport::tally::Tally;

/// Decades of fluence the colour scale spans below the slice's maximum.
pub const DECADES: f32 = 6.0;
/// Smallest length of the picture's longer side, pixels (grids are scaled up to it).
pub const MIN_SIDE_PX: u32 = 480;
/// Largest scale factor (a 1-voxel grid does not become a 480-pixel square).
const MAX_SCALE: u32 = 16;
/// Width of the colour bar and of the gap before it, pixels.
const BAR_PX: u32 = 24;
const GAP_PX: u32 = 8;

/// What a written picture shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceInfo {
    /// Axis normal to the plane (0 = x, 1 = y, 2 = z).
    pub normal: usize,
    /// Voxel index of the plane along `normal`.
    pub index: u32,
    /// Axes along the picture's width and height.
    pub across: usize,
    pub down: usize,
    /// Largest time-integrated fluence in the plane (the top of the colour scale), 1/mm^2.
    pub max: f32,
    /// Pixels per voxel.
    pub scale: u32,
    /// Picture size, pixels.
    pub width: u32,
    pub height: u32,
}

/// The plane through the source: (normal axis, index along it).
pub fn source_plane(job: &Job) -> (usize, u32) {
    let d = job.source.dir.map(f32::abs);
    let dominant = (0..3).fold(0, |best, a| if d[a] > d[best] { a } else { best });
    let normal = [1usize, 0, 2]
        .into_iter()
        .filter(|&a| a != dominant)
        .fold(None, |best: Option<usize>, a| match best {
            Some(b) if d[b] <= d[a] => Some(b),
            _ => Some(a),
        })
        .unwrap_or(1);
    let mut centre = job.source.pos;
    if let SourceKind::Planar { v1, v2 } | SourceKind::Pattern { v1, v2, .. } = &job.source.kind {
        for a in 0..3 {
            centre[a] += 0.5 * (v1[a] + v2[a]);
        }
    }
    let max = job.dim[normal].saturating_sub(1);
    // Grid units: voxel i spans [i, i+1). NaN or negative positions land on voxel 0.
    let index = if centre[normal] >= 0.0 {
        (centre[normal].floor() as u32).min(max)
    } else {
        0
    };
    (normal, index)
}

/// Perceptual colour map (viridis-like), `t` in [0, 1]: anchors interpolated linearly.
fn colour(t: f32) -> [u8; 3] {
    const ANCHORS: [[f32; 3]; 6] = [
        [68.0, 1.0, 84.0],
        [65.0, 68.0, 135.0],
        [42.0, 120.0, 142.0],
        [34.0, 168.0, 132.0],
        [122.0, 209.0, 81.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (ANCHORS.len() - 1) as f32;
    let i = (x.floor() as usize).min(ANCHORS.len() - 2);
    let f = x - i as f32;
    let mut rgb = [0u8; 3];
    for (c, out) in rgb.iter_mut().enumerate() {
        let v = ANCHORS[i][c] + (ANCHORS[i + 1][c] - ANCHORS[i][c]) * f;
        *out = v.round().clamp(0.0, 255.0) as u8;
    }
    rgb
}

/// The picture's pixels (RGB, row-major) and what they show.
pub fn render_slice(job: &Job, tally: &Tally) -> Result<(Vec<u8>, SliceInfo), OutputError> {
    let volume = fluence(job, tally)?;
    let (normal, index) = source_plane(job);
    let (across, down) = match normal {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let (w, h) = (job.dim[across], job.dim[down]);
    let voxels = job.voxels();
    let dt = job.time.dt as f32;
    let mut plane = vec![0f32; w as usize * h as usize];
    for r in 0..h {
        for c in 0..w {
            let mut xyz = [0u32; 3];
            xyz[normal] = index;
            xyz[across] = c;
            xyz[down] = r;
            let i = job.voxel_index(xyz[0], xyz[1], xyz[2]);
            // The same voxel in every gate, integrated over time.
            plane[(r * w + c) as usize] = volume
                .iter()
                .skip(i)
                .step_by(voxels.max(1))
                .map(|&f| f * dt)
                .sum();
        }
    }
    let max = plane
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f32, f32::max);
    let top = if max > 0.0 { max.log10() } else { 0.0 };
    let shade = |v: f32| {
        if v > 0.0 && max > 0.0 {
            colour(1.0 - (top - v.log10()) / DECADES)
        } else {
            colour(0.0)
        }
    };
    let longer = w.max(h).max(1);
    let scale = MIN_SIDE_PX.div_ceil(longer).clamp(1, MAX_SCALE);
    let (img_w, img_h) = (w * scale, h * scale);
    let width = img_w + GAP_PX + BAR_PX;
    let height = img_h;
    let mut px = vec![255u8; width as usize * height as usize * 3];
    for y in 0..height {
        let row = &mut px[(y * width * 3) as usize..((y + 1) * width * 3) as usize];
        for x in 0..img_w {
            let v = plane[((y / scale) * w + x / scale) as usize];
            row[(x * 3) as usize..(x * 3 + 3) as usize].copy_from_slice(&shade(v));
        }
        let t = if height > 1 {
            1.0 - y as f32 / (height - 1) as f32
        } else {
            1.0
        };
        let bar = colour(t);
        for x in img_w + GAP_PX..width {
            row[(x * 3) as usize..(x * 3 + 3) as usize].copy_from_slice(&bar);
        }
    }
    let info = SliceInfo {
        normal,
        index,
        across,
        down,
        max,
        scale,
        width,
        height,
    };
    Ok((px, info))
}

/// Writes the picture of [`render_slice`] to `path` as an 8-bit RGB PNG.
pub fn write_fluence_png(path: &Path, job: &Job, tally: &Tally) -> Result<SliceInfo, OutputError> {
    let (px, info) = render_slice(job, tally)?;
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut enc = ::png::Encoder::new(std::io::BufWriter::new(file), info.width, info.height);
    enc.set_color(::png::ColorType::Rgb);
    enc.set_depth(::png::BitDepth::Eight);
    let as_io = |e: ::png::EncodingError| match e {
        ::png::EncodingError::IoError(e) => e,
        other => std::io::Error::other(other.to_string()),
    };
    let mut w = enc.write_header().map_err(as_io).map_err(io_error(path))?;
    w.write_image_data(&px)
        .map_err(as_io)
        .map_err(io_error(path))?;
    w.finish().map_err(as_io).map_err(io_error(path))?;
    Ok(info)
}
