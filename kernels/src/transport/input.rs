//! MCX JSON input: text in, validated [`Job`] out.
//!
//! The accepted subset of MCX's JSON format, part by part (every other key, and every value
//! outside what is listed, is an error naming its JSON path; nothing is silently ignored):
//!
//! - `Session`: `ID` (string, names output files; default `"default"`), `Photons` (required
//!   unless [`ParseOptions::photons`] overrides it), `RNGSeed` (non-negative; default MCX's
//!   1648335518), `DoMismatch` (default 1, as MCX), `DoSpecular` (default 0, as MCX),
//!   `BCFlags` (see below), `RussianRoulette` (this project's key, see below), and three keys
//!   accepted only with the value this engine implements: `DoNormalize` (1), `OutputType`
//!   (`"x"`, fluence rate), `DoAutoThread` (any flag: a GPU launch hint with no effect on
//!   results).
//! - `Forward`: `T0`, `T1`, `Dt` (seconds, required; `T1 > T0`, `Dt > 0`); the number of gates
//!   is `(T1 - T0) / Dt` rounded up (a ratio within 1e-9 of an integer counts as that integer).
//! - `Domain`: see [`domain`]. `Shapes`: see [`shapes`]. `Optode`: see [`optode`].
//! - `BCFlags` (in `Session` or `Domain`, not both): up to six characters in face order
//!   `-x -y -z +x +y +z`; `r` Fresnel, `a` absorb, `m` mirror, `c` cyclic, `_` the default.
//!   Faces not given, and `_`, take the default: Fresnel when `DoMismatch` is on, else absorb.
//! - `RussianRoulette`: `0`/`false` (off, the default), `1`/`true` (threshold 1e-4, survival
//!   factor 10, MCX's constants), or `{"Threshold": w, "Survival": m}` with `0 < w < 1` and
//!   `m > 1`: a photon whose weight drops below `w` survives with probability `1/m` and
//!   carries `m` times its weight.
//!
//! Memory is checked before any per-voxel allocation: tally (`voxels x gates x 8` bytes) plus
//! label volume (`voxels x 2`) must fit [`ParseOptions::max_job_bytes`]; [`bound`] gives an
//! upper bound of a job's memory and photons from its JSON alone, before any grid exists.
//!
//! **Where volumes come from** is a type, [`VolumeSource`]: bytes that travelled with the job
//! ([`VolumeSource::Attached`], from a [`bundle`]), none, or a directory on this machine
//! ([`VolumeSource::Directory`]). The last can only be made by [`load_job`] and
//! [`load_bundle`], from a JSON file the local user named: code that parses bytes from the
//! network ([`parse_job_bytes`], [`parse_bundle`]) cannot read this machine's disk, and its
//! errors name JSON fields and the job's own data, never a local file.

pub mod bundle;
mod domain;
mod json;
mod optode;
mod shapes;

use std::path::{Path, PathBuf};

use serde_json::Value;

use self::bundle::{BundleError, JobBundle, MAX_BUNDLE_JSON};

use self::json::{flag, num, num32, string, uint, Obj};
use super::job::{FaceBoundary, Job, Roulette, TimeGates};

/// MCX's default `RNGSeed` (0x623F9A9E).
pub const DEFAULT_SEED: u64 = 1_648_335_518;

/// Default memory limit for one job's tally plus label volume: 8 GiB.
pub const DEFAULT_MAX_JOB_BYTES: u64 = 8 << 30;

/// Largest JSON input file read (the text itself; volumes go through `VolumeFile`).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Most time gates a job may have (the memory limit usually bites first).
const MAX_GATES: u64 = 1 << 20;

/// Why an MCX JSON input was rejected. Every variant names the JSON path or file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The text is not valid JSON (or not UTF-8).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON reader found wrong.
        message: String,
    },
    /// A required field is absent.
    #[error("missing field `{path}`")]
    Missing {
        /// JSON path of the absent field.
        path: String,
    },
    /// A field this parser does not implement (an MCX option outside the supported subset, or
    /// a misspelt key).
    #[error("unsupported field `{path}`")]
    Unsupported {
        /// JSON path of the field.
        path: String,
    },
    /// A field has the wrong type or a value outside what is valid or supported.
    #[error("`{path}`: {reason}")]
    Invalid {
        /// JSON path of the field.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A voxel or shape label names no row of `Domain.Media`.
    #[error("`{path}`: label {label} is outside the media table (valid labels are 0..{media})")]
    LabelOutOfRange {
        /// JSON path of the shape or volume file that set the label.
        path: String,
        /// The offending label.
        label: u32,
        /// Number of rows in `Domain.Media`.
        media: usize,
    },
    /// The job would need more memory than the limit allows; nothing was allocated.
    #[error(
        "`Domain.Dim` {dim:?} with {gates} time gate(s) needs {bytes} bytes \
         (tally voxels x gates x 8 + label volume voxels x 2), over the limit of {limit} bytes"
    )]
    TooLarge {
        /// Grid size requested.
        dim: [u64; 3],
        /// Time gates requested.
        gates: u64,
        /// Bytes the job would need.
        bytes: u128,
        /// The limit in force.
        limit: u64,
    },
    /// A file (the input itself or `Domain.VolumeFile`) could not be read.
    #[error("{}: {error}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The operating-system error (shown in this error's text, so not its `source`:
        /// a chain printer would print it twice).
        error: std::io::Error,
    },
    /// A file named as input or volume is a directory.
    #[error("{}: is a directory, not a file", file.display())]
    IsDirectory {
        /// The directory.
        file: PathBuf,
    },
    /// The bytes are not a job bundle (see [`bundle`]).
    #[error("{0}")]
    Bundle(#[from] BundleError),
    /// A file is too large, or `Domain.VolumeFile` does not hold `Dim` voxels.
    #[error("{}: {reason}", file.display())]
    FileSize {
        /// The file.
        file: PathBuf,
        /// Its size and what was expected.
        reason: String,
    },
}

impl InputError {
    pub(crate) fn invalid(path: &str, reason: impl Into<String>) -> Self {
        InputError::Invalid {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A directory on this machine that `Domain.VolumeFile` is relative to. Only [`load_job`]
/// and [`load_bundle`] make one, from the JSON file a local user named, so no code that
/// parses bytes received from a peer can point the parser at this machine's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDir(PathBuf);

impl LocalDir {
    /// The directory of a local JSON file (the current directory for a bare file name).
    fn of_input(path: &Path) -> LocalDir {
        LocalDir(path.parent().map(Path::to_path_buf).unwrap_or_default())
    }
}

/// Where the label volume named by `Domain.VolumeFile` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeSource<'a> {
    /// Relative to a directory on this machine: local runs only (see [`LocalDir`]).
    Directory(&'a LocalDir),
    /// The volume's bytes, as they travelled with the job (a [`bundle`]).
    Attached(&'a [u8]),
    /// No volume travels with the job: `Domain.VolumeFile` is refused.
    None,
}

/// How to parse: what a job may cost.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Memory limit for tally plus label volume, bytes.
    pub max_job_bytes: u64,
    /// Photon count overriding `Session.Photons` (which then becomes optional).
    pub photons: Option<u64>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_job_bytes: DEFAULT_MAX_JOB_BYTES,
            photons: None,
        }
    }
}

/// Bytes a job of this size needs: tally cells x 8 plus the `u16` label volume.
pub fn job_memory_bytes(dim: [u64; 3], gates: u64) -> u128 {
    let voxels = dim.iter().map(|&d| u128::from(d)).product::<u128>();
    voxels * u128::from(gates) * 8 + voxels * 2
}

/// Parses MCX JSON text into a validated job (no volume: `Domain.VolumeFile` is refused).
pub fn parse_job(text: &str, opts: &ParseOptions) -> Result<Job, InputError> {
    parse_job_bytes(text.as_bytes(), opts)
}

/// Parses MCX JSON bytes (any bytes: invalid UTF-8 or JSON is an error, never a panic); no
/// volume travels with them, so `Domain.VolumeFile` is refused.
pub fn parse_job_bytes(bytes: &[u8], opts: &ParseOptions) -> Result<Job, InputError> {
    parse_job_with(bytes, VolumeSource::None, opts)
}

/// Parses MCX JSON bytes with the label volume from `volumes`.
pub fn parse_job_with(
    bytes: &[u8],
    volumes: VolumeSource<'_>,
    opts: &ParseOptions,
) -> Result<Job, InputError> {
    job_from_value_with(&json_tree(bytes)?, volumes, opts)
}

/// Parses a job bundle (see [`bundle`]): its JSON with its attached volume, if any. This is
/// what every network-facing reader of a job calls; it never touches the disk.
pub fn parse_bundle(bytes: &[u8], opts: &ParseOptions) -> Result<Job, InputError> {
    let b = JobBundle::decode(bytes)?;
    let volumes = b.volume.map_or(VolumeSource::None, VolumeSource::Attached);
    parse_job_with(b.json, volumes, opts)
}

fn json_tree(bytes: &[u8]) -> Result<Value, InputError> {
    serde_json::from_slice(bytes).map_err(|e| InputError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Reads a local file whole, at most `limit` bytes, naming it in every error.
fn read_local(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, InputError> {
    let io_err = |error| InputError::Io {
        file: path.to_owned(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(InputError::IsDirectory {
            file: path.to_owned(),
        });
    }
    if meta.len() > limit {
        return Err(InputError::FileSize {
            file: path.to_owned(),
            reason: format!(
                "{} bytes, over the {limit}-byte limit for {what}",
                meta.len()
            ),
        });
    }
    std::fs::read(path).map_err(io_err)
}

/// Reads and parses an MCX JSON file on this machine; `VolumeFile` is resolved against its
/// directory (as MCX does). For local runs only (`compushare sim`).
pub fn load_job(path: &Path, opts: &ParseOptions) -> Result<Job, InputError> {
    let bytes = read_local(path, MAX_JSON_BYTES, "JSON input")?;
    parse_job_with(
        &bytes,
        VolumeSource::Directory(&LocalDir::of_input(path)),
        opts,
    )
}

/// A local job made ready to travel: its bundle and the job it parses to.
#[derive(Debug)]
pub struct LocalBundle {
    /// The canonical bundle (JSON plus the volume it names, read here).
    pub bytes: Vec<u8>,
    /// The parsed job (validated exactly as the receiver will parse the bundle).
    pub job: Job,
}

/// Most bytes of a volume file put in a bundle (a 512^3 uint16 volume is exactly this).
pub const MAX_VOLUME_BYTES: u64 = 256 << 20;

/// Reads an MCX JSON file on this machine and the volume file it names (next to it, as MCX
/// resolves it) into a [`bundle`], for `compushare submit`: the receiver gets the volume's
/// bytes, never a path. The bundle is parsed back before it is returned, so an error is seen
/// here (naming the file) rather than by the manager.
pub fn load_bundle(path: &Path, opts: &ParseOptions) -> Result<LocalBundle, InputError> {
    let json = read_local(path, MAX_BUNDLE_JSON as u64, "a job's JSON")?;
    let dir = LocalDir::of_input(path);
    // Validates the JSON and its volume with errors that name the local files.
    parse_job_with(&json, VolumeSource::Directory(&dir), opts)?;
    let volume = match json_tree(&json)?
        .get("Domain")
        .and_then(|d| d.get("VolumeFile"))
        .and_then(Value::as_str)
    {
        Some(rel) => Some(read_local(&dir.0.join(rel), MAX_VOLUME_BYTES, "a volume")?),
        None => None,
    };
    let bytes = JobBundle {
        json: &json,
        volume: volume.as_deref(),
    }
    .encode()
    .ok_or_else(|| InputError::FileSize {
        file: path.to_owned(),
        reason: "cannot be bundled (an empty volume file, or JSON starting with NUL)".into(),
    })?;
    let job = parse_bundle(&bytes, opts)?;
    Ok(LocalBundle { bytes, job })
}

/// Validates a parsed JSON tree into a job (no volume: `Domain.VolumeFile` is refused).
pub fn job_from_value(root: &Value, opts: &ParseOptions) -> Result<Job, InputError> {
    job_from_value_with(root, VolumeSource::None, opts)
}

/// Bytes of working memory per voxel beyond the tally and the label volume: a second copy of
/// the labels (the calibration's copy of the job) and the engine's one-byte distance map.
pub const WORKING_BYTES_PER_VOXEL: u128 = 3;

/// What a job will cost at most, read from its JSON alone: no grid is built and no volume
/// is read (the caller bounds the JSON's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBound {
    /// Grid size (`Domain.Dim`, or the `Grid` shape's size).
    pub dim: [u64; 3],
    /// Time gates from `Forward`.
    pub gates: u64,
    /// Rows of `Domain.Media`.
    pub media: usize,
    /// Photons (`ParseOptions::photons`, else `Session.Photons`).
    pub photons: u64,
    /// Upper bound of the memory a parse and a run take: tally, labels and
    /// [`WORKING_BYTES_PER_VOXEL`].
    pub memory_bytes: u128,
}

/// The [`JobBound`] of MCX JSON bytes: only `Session.Photons`, `Forward`, `Domain.Dim` (or
/// the `Grid` shape) and `Domain.Media` are read; every other field is checked by the parse.
pub fn bound(json: &[u8], opts: &ParseOptions) -> Result<JobBound, InputError> {
    let root = json_tree(json)?;
    let top = Obj::new(&root, "")?;
    let session = Obj::new(top.req("Session")?, "Session")?;
    let photons = match (opts.photons, session.get("Photons")) {
        (Some(n), _) => n,
        (None, Some(v)) => uint(v, &session.path("Photons"))?,
        (None, None) => {
            return Err(InputError::Missing {
                path: session.path("Photons"),
            })
        }
    };
    let time = parse_forward(&Obj::new(top.req("Forward")?, "Forward")?)?;
    let d = Obj::new(top.req("Domain")?, "Domain")?;
    let media = d
        .req("Media")?
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| InputError::invalid(&d.path("Media"), "expected an array"))?;
    let dim = domain::dim_of(&d, top.get("Shapes"), media)?.map(u64::from);
    let gates = u64::from(time.gates);
    let voxels = dim.iter().map(|&n| u128::from(n)).product::<u128>();
    Ok(JobBound {
        dim,
        gates,
        media,
        photons,
        memory_bytes: job_memory_bytes(dim, gates) + voxels * WORKING_BYTES_PER_VOXEL,
    })
}

/// Validates a parsed JSON tree into a job, with the label volume from `volumes`.
pub fn job_from_value_with(
    root: &Value,
    volumes: VolumeSource<'_>,
    opts: &ParseOptions,
) -> Result<Job, InputError> {
    let top = Obj::new(root, "")?;
    top.deny_unknown(&["Session", "Domain", "Shapes", "Forward", "Optode"])?;

    let session = Obj::new(top.req("Session")?, "Session")?;
    let session_fields = parse_session(&session, opts)?;
    let time = parse_forward(&Obj::new(top.req("Forward")?, "Forward")?)?;

    let domain_obj = Obj::new(top.req("Domain")?, "Domain")?;
    let shapes = top.get("Shapes");
    let domain = domain::parse(&domain_obj, shapes, time.gates, volumes, opts)?;

    let optode = optode::parse(
        &Obj::new(top.req("Optode")?, "Optode")?,
        domain.origin_shift,
    )?;

    let bc = match (session.get("BCFlags"), domain_obj.get("BCFlags")) {
        (Some(_), Some(_)) => {
            return Err(InputError::invalid(
                "Domain.BCFlags",
                "BCFlags given in both Session and Domain; give it once",
            ))
        }
        (Some(v), None) => Some((v, session.path("BCFlags"))),
        (None, Some(v)) => Some((v, domain_obj.path("BCFlags"))),
        (None, None) => None,
    };
    let faces = parse_bcflags(bc, session_fields.do_mismatch)?;

    let labels = domain.labels;
    Ok(Job {
        id: session_fields.id,
        dim: domain.dim,
        unit_mm: domain.unit_mm,
        media: domain.media,
        labels,
        time,
        source: optode.source,
        detectors: optode.detectors,
        do_mismatch: session_fields.do_mismatch,
        do_specular: session_fields.do_specular,
        faces,
        roulette: session_fields.roulette,
        photons: session_fields.photons,
        seed: session_fields.seed,
    })
}

/// The `Session` fields that end up in a [`Job`].
struct SessionFields {
    id: String,
    photons: u64,
    seed: u64,
    do_mismatch: bool,
    do_specular: bool,
    roulette: Option<Roulette>,
}

fn parse_session(s: &Obj<'_>, opts: &ParseOptions) -> Result<SessionFields, InputError> {
    s.deny_unknown(&[
        "ID",
        "Photons",
        "RNGSeed",
        "DoMismatch",
        "DoSpecular",
        "BCFlags",
        "RussianRoulette",
        "DoNormalize",
        "OutputType",
        "DoAutoThread",
    ])?;
    let id = match s.get("ID") {
        Some(v) => {
            let p = s.path("ID");
            let id = string(v, &p)?;
            let ok = !id.is_empty()
                && id.len() <= 128
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
                && !id.starts_with('.');
            if !ok {
                return Err(InputError::invalid(
                    &p,
                    "expected 1 to 128 characters from A-Z a-z 0-9 - _ . + (it names output \
                     files), not starting with '.'",
                ));
            }
            id.to_owned()
        }
        None => "default".to_owned(),
    };
    let json_photons = match s.get("Photons") {
        Some(v) => {
            let p = s.path("Photons");
            let n = uint(v, &p)?;
            if n == 0 {
                return Err(InputError::invalid(&p, "must be at least 1"));
            }
            Some(n)
        }
        None => None,
    };
    let photons = match (opts.photons, json_photons) {
        (Some(0), _) => {
            return Err(InputError::invalid(
                "Session.Photons",
                "override must be at least 1",
            ))
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => {
            return Err(InputError::Missing {
                path: s.path("Photons"),
            })
        }
    };
    let seed = match s.get("RNGSeed") {
        Some(v) => {
            let p = s.path("RNGSeed");
            if v.as_i64().is_some_and(|x| x < 0) {
                return Err(InputError::invalid(
                    &p,
                    "negative seeds (MCX's random seeding) are not supported: results must be \
                     reproducible; give a non-negative integer",
                ));
            }
            uint(v, &p)?
        }
        None => DEFAULT_SEED,
    };
    let opt_flag = |key: &str, default: bool| -> Result<bool, InputError> {
        s.get(key).map_or(Ok(default), |v| flag(v, &s.path(key)))
    };
    let do_mismatch = opt_flag("DoMismatch", true)?;
    let do_specular = opt_flag("DoSpecular", false)?;
    if !opt_flag("DoNormalize", true)? {
        return Err(InputError::invalid(
            &s.path("DoNormalize"),
            "only normalised output (1) is supported",
        ));
    }
    opt_flag("DoAutoThread", true)?;
    if let Some(v) = s.get("OutputType") {
        let p = s.path("OutputType");
        if !matches!(string(v, &p)?, "x" | "X") {
            return Err(InputError::invalid(
                &p,
                "only \"x\" (fluence rate) is supported",
            ));
        }
    }
    let roulette = match s.get("RussianRoulette") {
        None => None,
        Some(v) => parse_roulette(v, &s.path("RussianRoulette"))?,
    };
    Ok(SessionFields {
        id,
        photons,
        seed,
        do_mismatch,
        do_specular,
        roulette,
    })
}

fn parse_roulette(v: &Value, path: &str) -> Result<Option<Roulette>, InputError> {
    const DEFAULT: Roulette = Roulette {
        threshold: 1e-4,
        survival_factor: 10.0,
    };
    if !v.is_object() {
        return Ok(flag(v, path)?.then_some(DEFAULT));
    }
    let o = Obj::new(v, path)?;
    o.deny_unknown(&["Threshold", "Survival"])?;
    let threshold = match o.get("Threshold") {
        Some(t) => num32(t, &o.path("Threshold"))?,
        None => DEFAULT.threshold,
    };
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(InputError::invalid(
            &o.path("Threshold"),
            "must be in (0, 1)",
        ));
    }
    let survival_factor = match o.get("Survival") {
        Some(m) => num32(m, &o.path("Survival"))?,
        None => DEFAULT.survival_factor,
    };
    if survival_factor <= 1.0 {
        return Err(InputError::invalid(
            &o.path("Survival"),
            "must be greater than 1",
        ));
    }
    Ok(Some(Roulette {
        threshold,
        survival_factor,
    }))
}

fn parse_forward(f: &Obj<'_>) -> Result<TimeGates, InputError> {
    f.deny_unknown(&["T0", "T1", "Dt"])?;
    let t0 = num(f.req("T0")?, &f.path("T0"))?;
    let t1 = num(f.req("T1")?, &f.path("T1"))?;
    let dt = num(f.req("Dt")?, &f.path("Dt"))?;
    if t0 < 0.0 {
        return Err(InputError::invalid(&f.path("T0"), "must not be negative"));
    }
    if t1 <= t0 {
        return Err(InputError::invalid(
            &f.path("T1"),
            "must be greater than T0",
        ));
    }
    if dt <= 0.0 {
        return Err(InputError::invalid(&f.path("Dt"), "must be positive"));
    }
    let ratio = (t1 - t0) / dt;
    let nearest = ratio.round();
    let gates_f = if (ratio - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        ratio.ceil()
    };
    let gates_f = gates_f.max(1.0);
    // Also catches an infinite ratio (T1 - T0 overflowing against a tiny Dt).
    if gates_f > MAX_GATES as f64 {
        return Err(InputError::invalid(
            &f.path("Dt"),
            format!("(T1 - T0) / Dt gives {ratio:e} time gates, more than the {MAX_GATES} allowed"),
        ));
    }
    Ok(TimeGates {
        t0,
        t1,
        dt,
        gates: gates_f as u32,
    })
}

fn parse_bcflags(
    bc: Option<(&Value, String)>,
    do_mismatch: bool,
) -> Result<[FaceBoundary; 6], InputError> {
    let default = if do_mismatch {
        FaceBoundary::Fresnel
    } else {
        FaceBoundary::Absorb
    };
    let mut faces = [default; 6];
    let Some((v, path)) = bc else {
        return Ok(faces);
    };
    let text = string(v, &path)?;
    if text.chars().count() > 6 {
        return Err(InputError::invalid(
            &path,
            "at most 6 characters (one per face, -x -y -z +x +y +z); detector flags beyond the \
             sixth are not supported",
        ));
    }
    for (face, c) in faces.iter_mut().zip(text.chars()) {
        *face = match c {
            'r' | 'R' => FaceBoundary::Fresnel,
            'a' | 'A' => FaceBoundary::Absorb,
            'm' | 'M' => FaceBoundary::Mirror,
            'c' | 'C' => FaceBoundary::Cyclic,
            '_' => default,
            other => {
                return Err(InputError::invalid(
                    &path,
                    format!("unknown boundary flag '{other}' (expected r, a, m, c or _)"),
                ))
            }
        };
    }
    Ok(faces)
}
