//! Photon transport on a CUDA GPU: the CPU engine's walk (kernels/cuda/transport.cu, built on
//! the cs_photon.cuh port of `transport::photon`), so for any job, seed and photon range the
//! tally, and therefore its digest, equals the CPU engine's.
//!
//! `ModelBlock` flattens the very `Model` the CPU engine builds (constants already folded to
//! f32 there) into the arrays the kernel reads, so the two sides can only differ in the walk
//! itself, which the host test runs as C against the CPU engine. `assemble` turns the kernel's
//! integer outputs into a `Tally` exactly as `Engine::run` does (detected photons sorted by
//! index, path lengths scaled to mm with the same f32 multiply).

use core::ops::Range;

use cudarc::driver::CudaSlice;

use super::device::Gpu;
use super::sys;
use super::CudaError;
use crate::transport::job::{FaceBoundary, Job, SourceKind};
use crate::transport::model::Model;
use crate::transport::photon::PhotonRecord;
use crate::transport::tally::{DetectedPhoton, Tally};
use crate::transport::tally_ops::tally_cells;

/// Words of the scalar block (`CS_P_WORDS` in cs_model.cuh).
pub const PARAM_WORDS: usize = 51;
/// Floats per medium (`CS_MEDIUM_FLOATS`).
pub const MEDIUM_FLOATS: usize = 13;
/// u64 totals per run (`CS_T_COUNT`).
pub const TOTALS: usize = 12;
/// Header words of a detected photon (`CS_DET_HEAD`).
pub const DET_HEAD: usize = 12;
/// Most media a job with detectors may have on the GPU (`CS_MAX_TRACK`).
pub const MAX_TRACKED_MEDIA: usize = 32;
/// u32 words of one photon's record (`CS_RECORD_WORDS`): its 64-byte canonical encoding.
pub const RECORD_WORDS: usize = 16;

/// Photons per kernel launch: bounds the detected-photon buffer (one slot per photon, so it
/// can never overflow) and keeps each launch well under a second.
const BATCH: u64 = 1 << 20;

/// Threads per block (the kernel's `__launch_bounds__`).
const BLOCK: u32 = 128;

/// A job flattened for the kernel (layouts in kernels/cuda/cs_model.cuh).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBlock {
    /// The scalar block, `PARAM_WORDS` words (floats as bits).
    pub params: Vec<u32>,
    /// Voxel labels, x fastest.
    pub labels: Vec<u16>,
    /// The distance map the CPU engine computed.
    pub dist: Vec<u8>,
    /// `MEDIUM_FLOATS` per medium.
    pub media: Vec<f32>,
    /// Pattern source weights (one 0 when none: the kernel never reads it then).
    pub pattern: Vec<f32>,
    /// Detectors: x, y, z, radius (one 0 when none).
    pub detectors: Vec<f32>,
    /// Deposit cells (gates x voxels).
    pub cells: usize,
    /// Media rows.
    pub nmedia: usize,
    /// Voxel size (mm), to scale detector path lengths.
    pub unit_mm: f32,
}

fn face_code(f: FaceBoundary) -> u32 {
    match f {
        FaceBoundary::Absorb => 0,
        FaceBoundary::Fresnel => 1,
        FaceBoundary::Mirror => 2,
        FaceBoundary::Cyclic => 3,
    }
}

impl ModelBlock {
    /// Validates `job` (the CPU engine's checks) and flattens it.
    pub fn new(job: &Job) -> Result<ModelBlock, CudaError> {
        let m = Model::new(job).map_err(|e| CudaError::Job(e.to_string()))?;
        let cells = tally_cells(job)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| CudaError::TooLarge("deposit array size overflows".into()))?;
        if !job.detectors.is_empty() && m.media.len() > MAX_TRACKED_MEDIA {
            return Err(CudaError::TooLarge(format!(
                "{} media with detectors: the CUDA kernel tracks path lengths for at most {MAX_TRACKED_MEDIA}",
                m.media.len()
            )));
        }
        let mut p = vec![0u32; PARAM_WORDS];
        let f = |x: f32| x.to_bits();
        for a in 0..3 {
            p[a] = m.dim[a] as u32;
            p[22 + a] = f(m.dimf[a]);
            p[29 + a] = f(m.src.pos[a]);
            p[32 + a] = f(m.src.dir[a]);
            p[35 + a] = f(m.src.e1[a]);
            p[38 + a] = f(m.src.e2[a]);
        }
        p[3] = m.gates;
        p[4] = m.media.len() as u32;
        p[5] = m.voxels as u32;
        p[6] = (m.voxels as u64 >> 32) as u32;
        for (k, face) in m.faces.iter().enumerate() {
            p[7 + k] = face_code(*face);
        }
        p[13] = u32::from(job.do_specular);
        p[14] = u32::from(job.do_mismatch);
        let mut pattern = vec![0.0f32];
        let (kind, radius, v1, v2, pw, ph) = match &m.src.kind {
            SourceKind::Pencil => (0, 0.0, [0.0; 3], [0.0; 3], 0, 0),
            SourceKind::Isotropic => (1, 0.0, [0.0; 3], [0.0; 3], 0, 0),
            SourceKind::Cone { .. } => (2, 0.0, [0.0; 3], [0.0; 3], 0, 0),
            SourceKind::Gaussian { waist } => (3, *waist, [0.0; 3], [0.0; 3], 0, 0),
            SourceKind::Disk { radius } => (4, *radius, [0.0; 3], [0.0; 3], 0, 0),
            SourceKind::Planar { v1, v2 } => (5, 0.0, *v1, *v2, 0, 0),
            SourceKind::Pattern {
                v1,
                v2,
                width,
                height,
                pattern: pat,
            } => {
                pattern = pat.clone();
                (6, 0.0, *v1, *v2, *width, *height)
            }
        };
        p[15] = kind;
        p[16] = pw;
        p[17] = ph;
        p[18] = job.detectors.len() as u32;
        p[19] = u32::from(job.roulette.is_some());
        p[20] = job.seed as u32;
        p[21] = (job.seed >> 32) as u32;
        p[25] = f(m.n0);
        p[26] = f(m.l0);
        p[27] = f(m.l1);
        p[28] = f(m.inv_ldt);
        p[41] = f(m.src.cos_half);
        p[42] = f(radius);
        for a in 0..3 {
            p[43 + a] = f(v1[a]);
            p[46 + a] = f(v2[a]);
        }
        if let Some(r) = job.roulette {
            p[49] = f(r.threshold);
            p[50] = f(r.survival_factor);
        }
        let mut media = Vec::with_capacity(m.media.len() * MEDIUM_FLOATS);
        for md in &m.media {
            media.extend_from_slice(&[
                md.mua_g,
                md.mus_g,
                md.inv_mus_g,
                md.g,
                md.n,
                md.nl,
                md.inv_nl,
                md.inv_mua_g,
            ]);
            media.extend_from_slice(&md.hg);
        }
        let mut detectors: Vec<f32> = job
            .detectors
            .iter()
            .flat_map(|d| [d.pos[0], d.pos[1], d.pos[2], d.radius])
            .collect();
        if detectors.is_empty() {
            detectors.push(0.0);
        }
        Ok(ModelBlock {
            params: p,
            labels: m.labels.to_vec(),
            dist: m.dist.clone(),
            media,
            pattern,
            detectors,
            cells,
            nmedia: m.media.len(),
            unit_mm: m.unit,
        })
    }

    /// u32 words per detected-photon record.
    pub fn det_words(&self) -> usize {
        DET_HEAD + self.nmedia
    }
}

/// Builds a `Tally` from the kernel's outputs: deposit cells, the `TOTALS` u64 totals and
/// `det_words()`-word detected records (any order).
pub fn assemble(
    block: &ModelBlock,
    deposit: Vec<u64>,
    totals: &[u64; TOTALS],
    detected_words: &[u32],
) -> Tally {
    let w = block.det_words();
    let mut detected: Vec<DetectedPhoton> = detected_words
        .chunks_exact(w)
        .map(|r| {
            let f = |i: usize| f32::from_bits(r.get(i).copied().unwrap_or(0));
            let u = |i: usize| r.get(i).copied().unwrap_or(0);
            DetectedPhoton {
                photon: u64::from(u(0)) | (u64::from(u(1)) << 32),
                detector: u(2) as u16,
                scatters: u(3),
                path_mm: (0..block.nmedia)
                    .map(|k| f(DET_HEAD + k) * block.unit_mm)
                    .collect(),
                exit_pos: [f(4), f(5), f(6)],
                exit_dir: [f(7), f(8), f(9)],
                weight: u64::from(u(10)) | (u64::from(u(11)) << 32),
            }
        })
        .collect();
    detected.sort_by_key(|d| d.photon);
    Tally {
        photons: totals[0],
        deposit,
        escaped: [
            totals[6], totals[7], totals[8], totals[9], totals[10], totals[11],
        ],
        specular: totals[2],
        alive_at_t1: totals[5],
        detected,
        launched: totals[1],
        roulette_gained: totals[3],
        roulette_killed: totals[4],
    }
}

/// Decodes the kernel's records of photons `first..`: `RECORD_WORDS` words each, in photon
/// order, appended to `out`. A record that is not canonical or not of its photon fails.
pub fn decode_records(
    first: u64,
    words: &[u32],
    out: &mut Vec<PhotonRecord>,
) -> Result<(), CudaError> {
    for (photon, w) in (first..).zip(words.chunks_exact(RECORD_WORDS)) {
        let mut b = [0u8; 64];
        for (dst, word) in b.chunks_exact_mut(4).zip(w) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
        match PhotonRecord::from_bytes(&b) {
            Some(r) if r.index == photon => out.push(r),
            _ => return Err(CudaError::BadRecord { photon }),
        }
    }
    Ok(())
}

fn up<T: cudarc::driver::DeviceRepr>(gpu: &Gpu, v: &[T]) -> Result<CudaSlice<T>, CudaError> {
    gpu.stream()
        .clone_htod(v)
        .map_err(|e| CudaError::driver("uploading the model", e))
}

/// Simulates photon indices `photons` of `job` on `cuda:device`; the tally equals the CPU
/// engine's for the same job and range.
pub fn simulate(job: &Job, photons: Range<u64>, device: u32) -> Result<Tally, CudaError> {
    let gpu = Gpu::open(device)?;
    simulate_on(&gpu, job, photons)
}

/// As [`simulate`] on an opened device.
pub fn simulate_on(gpu: &Gpu, job: &Job, photons: Range<u64>) -> Result<Tally, CudaError> {
    GpuTransport::new(gpu, job)?.run(photons)
}

/// A job uploaded to a GPU with its kernel loaded and its tally buffers allocated, for
/// running several photon ranges (benchmarks, a rig's successive assignments) without
/// re-uploading.
#[derive(Debug)]
pub struct GpuTransport {
    gpu: Gpu,
    func: cudarc::driver::CudaFunction,
    cfg: cudarc::driver::LaunchConfig,
    block: ModelBlock,
    track: bool,
    prm: CudaSlice<u32>,
    labels: CudaSlice<u16>,
    dist: CudaSlice<u8>,
    media: CudaSlice<f32>,
    pattern: CudaSlice<f32>,
    dets: CudaSlice<f32>,
    deposit: CudaSlice<u64>,
    totals: CudaSlice<u64>,
    det_count: CudaSlice<u32>,
    det_buf: CudaSlice<u32>,
    det_cap: usize,
    /// One batch of records (`BATCH` x `RECORD_WORDS` words, 64 MiB) once a run asked for
    /// records; one word before.
    records: CudaSlice<u32>,
}

impl GpuTransport {
    /// Validates and uploads `job`, loads (compiling or from cache) the kernel.
    pub fn new(gpu: &Gpu, job: &Job) -> Result<GpuTransport, CudaError> {
        let block = ModelBlock::new(job)?;
        let func = gpu.load("transport.cu", "transport_run")?;
        let cfg = gpu.fill_config(&func, BLOCK)?;
        let stream = gpu.stream();
        let track = !job.detectors.is_empty();
        let det_cap = if track { BATCH as usize } else { 1 };
        let alloc64 = |n: usize| {
            stream
                .alloc_zeros::<u64>(n)
                .map_err(|e| CudaError::driver("allocating the tally", e))
        };
        let alloc32 = |n: usize| {
            stream
                .alloc_zeros::<u32>(n)
                .map_err(|e| CudaError::driver("allocating the detector buffer", e))
        };
        Ok(GpuTransport {
            prm: up(gpu, &block.params)?,
            labels: up(gpu, &block.labels)?,
            dist: up(gpu, &block.dist)?,
            media: up(gpu, &block.media)?,
            pattern: up(gpu, &block.pattern)?,
            dets: up(gpu, &block.detectors)?,
            deposit: alloc64(block.cells.max(1))?,
            totals: alloc64(TOTALS)?,
            det_count: alloc32(1)?,
            det_buf: alloc32(det_cap * block.det_words())?,
            records: alloc32(1)?,
            gpu: gpu.clone(),
            func,
            cfg,
            block,
            track,
            det_cap,
        })
    }

    /// Simulates photon indices `photons`; the tally equals the CPU engine's.
    pub fn run(&mut self, photons: Range<u64>) -> Result<Tally, CudaError> {
        self.run_into(photons, None)
    }

    /// As [`GpuTransport::run`], with every photon's record in photon order (the Merkle
    /// leaves of paid work), equal to the CPU engine's `simulate_with_records`.
    pub fn run_with_records(
        &mut self,
        photons: Range<u64>,
    ) -> Result<(Tally, Vec<PhotonRecord>), CudaError> {
        let n = usize::try_from(photons.end.saturating_sub(photons.start))
            .map_err(|_| CudaError::TooLarge("photon range".into()))?;
        let mut records = Vec::new();
        records
            .try_reserve_exact(n)
            .map_err(|_| CudaError::TooLarge(format!("records of {n} photons")))?;
        let tally = self.run_into(photons, Some(&mut records))?;
        Ok((tally, records))
    }

    fn run_into(
        &mut self,
        photons: Range<u64>,
        mut records: Option<&mut Vec<PhotonRecord>>,
    ) -> Result<Tally, CudaError> {
        let stream = self.gpu.stream().clone();
        let want = records.is_some();
        let batch_words = BATCH as usize * RECORD_WORDS;
        if want && self.records.len() < batch_words {
            self.records = stream
                .alloc_zeros::<u32>(batch_words)
                .map_err(|e| CudaError::driver("allocating the record buffer", e))?;
        }
        let zero = |e| CudaError::driver("clearing the tally", e);
        stream.memset_zeros(&mut self.deposit).map_err(zero)?;
        stream.memset_zeros(&mut self.totals).map_err(zero)?;
        stream.memset_zeros(&mut self.det_count).map_err(zero)?;
        let words = self.block.det_words();
        let mut detected_words: Vec<u32> = Vec::new();
        let mut first = photons.start;
        while first < photons.end {
            let count = (photons.end - first).min(BATCH) as u32;
            sys::launch_transport(
                &stream,
                &self.func,
                self.cfg,
                sys::TransportArgs {
                    prm: &self.prm,
                    labels: &self.labels,
                    dist: &self.dist,
                    media: &self.media,
                    pattern: &self.pattern,
                    det: &self.dets,
                    first,
                    count,
                    deposit: &mut self.deposit,
                    totals: &mut self.totals,
                    det_count: &mut self.det_count,
                    det_buf: &mut self.det_buf,
                    det_cap: self.det_cap as u32,
                    records: &mut self.records,
                    want_records: u32::from(want),
                },
            )
            .map_err(|e| CudaError::driver("launching transport_run", e))?;
            if self.track {
                let mut n = [0u32; 1];
                stream
                    .memcpy_dtoh(&self.det_count, &mut n)
                    .map_err(|e| CudaError::driver("reading the detector counter", e))?;
                let n = n[0] as usize;
                if n > self.det_cap {
                    // Cannot happen (one slot per photon of a batch); refuse rather than lose
                    // photons.
                    return Err(CudaError::TooLarge(format!(
                        "{n} detected photons for {} slots",
                        self.det_cap
                    )));
                }
                if n > 0 {
                    let view = self.det_buf.slice(..n * words);
                    let got = stream
                        .clone_dtoh(&view)
                        .map_err(|e| CudaError::driver("reading detected photons", e))?;
                    detected_words.extend_from_slice(&got);
                }
                stream
                    .memset_zeros(&mut self.det_count)
                    .map_err(|e| CudaError::driver("clearing the detector counter", e))?;
            }
            if let Some(out) = records.as_deref_mut() {
                let view = self.records.slice(..count as usize * RECORD_WORDS);
                let words = stream
                    .clone_dtoh(&view)
                    .map_err(|e| CudaError::driver("reading the records", e))?;
                decode_records(first, &words, out)?;
            }
            first += u64::from(count);
        }
        let dep = stream
            .clone_dtoh(&self.deposit)
            .map_err(|e| CudaError::driver("reading the deposit array", e))?;
        let tot = stream
            .clone_dtoh(&self.totals)
            .map_err(|e| CudaError::driver("reading the totals", e))?;
        let mut t = [0u64; TOTALS];
        for (a, b) in t.iter_mut().zip(tot) {
            *a = b;
        }
        let dep = if self.block.cells == 0 {
            Vec::new()
        } else {
            dep
        };
        Ok(assemble(&self.block, dep, &t, &detected_words))
    }
}
