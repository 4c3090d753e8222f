//! Run-time compilation of kernels/cuda/ with NVRTC, to CUBIN for the exact `sm_XX` of the
//! device (a CUBIN loads on any driver of the same CUDA major version, where PTX from a newer
//! NVRTC does not load on an older driver), and the on-disk cache of the results.
//!
//! Options are fixed, not tunable: `--fmad=false` (no contraction of a*b+c: the CPU engine
//! never fuses, so neither may the GPU), `--prec-div=true`, `--prec-sqrt=true`,
//! `--ftz=false`, no fast math. Any log output (a warning) is an error: a warning in this code
//! is a determinism or correctness question someone must look at.
//!
//! Cache: `<dir>/cuda/<sha256>.cubin` where the hash covers the expanded source, the
//! architecture, the NVRTC version and the options; `<dir>` is `$COMPUSHARE_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/compushare`, else `~/.cache/compushare`. A cache that cannot be read or
//! written only costs a compile.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::source;
use super::sys;
use super::CudaError;

/// Environment variable naming the cache directory (overrides the XDG default).
pub const CACHE_DIR_ENV: &str = "COMPUSHARE_CACHE_DIR";

/// A CUDA architecture as NVRTC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Compute capability major.
    pub major: u32,
    /// Compute capability minor.
    pub minor: u32,
}

impl Arch {
    /// `sm_{major}{minor}`.
    pub fn sm(&self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

/// The fixed NVRTC options for `arch`.
pub fn options(arch: Arch) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", arch.sm()),
        "--fmad=false".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
        "--ftz=false".to_string(),
        "--std=c++17".to_string(),
    ]
}

/// Whether libnvrtc can be loaded on this machine.
pub fn available() -> bool {
    sys::nvrtc_library_present()
}

/// NVRTC's version, or `NoNvrtc`.
pub fn version() -> Result<(i32, i32), CudaError> {
    if !available() {
        return Err(CudaError::NoNvrtc);
    }
    sys::nvrtc_version().map_err(|e| CudaError::driver("nvrtcVersion", e))
}

/// Compiles kernel `name` (a `.cu` of kernels/cuda/) for `arch`, without the cache. Fails on
/// any error or warning.
pub fn compile(name: &str, arch: Arch) -> Result<Vec<u8>, CudaError> {
    if !available() {
        return Err(CudaError::NoNvrtc);
    }
    let src = source::expand(name)?;
    compile_text(name, &src, arch)
}

/// Compiles a given source text (not one of kernels/cuda/) with the production options; for
/// tests of the compile checks themselves.
pub fn compile_source(name: &str, src: &str, arch: Arch) -> Result<Vec<u8>, CudaError> {
    if !available() {
        return Err(CudaError::NoNvrtc);
    }
    compile_text(name, src, arch)
}

fn compile_text(name: &str, src: &str, arch: Arch) -> Result<Vec<u8>, CudaError> {
    let (c_src, c_name) = match (sys::cstring(src), sys::cstring(name)) {
        (Some(s), Some(n)) => (s, n),
        _ => {
            return Err(CudaError::UnknownKernel(format!(
                "{name} (holds a NUL byte)"
            )))
        }
    };
    let out =
        sys::nvrtc_compile(&c_src, &c_name, &options(arch)).map_err(|e| CudaError::Compile {
            file: name.to_string(),
            arch: arch.sm(),
            status: format!("{e:?}"),
            log: String::new(),
        })?;
    match (out.ok, out.log.is_empty()) {
        (None, true) if !out.cubin.is_empty() => Ok(out.cubin),
        (None, _) => Err(CudaError::Compile {
            file: name.to_string(),
            arch: arch.sm(),
            status: "warnings (treated as errors)".to_string(),
            log: out.log,
        }),
        (Some(e), _) => Err(CudaError::Compile {
            file: name.to_string(),
            arch: arch.sm(),
            status: format!("{e:?}"),
            log: out.log,
        }),
    }
}

/// The cache directory in use (it may not exist yet).
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env(CACHE_DIR_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("compushare")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("compushare")))
}

/// The cache key of (source, arch, NVRTC version, options), hex.
pub fn cache_key(src: &str, arch: Arch, nvrtc: (i32, i32)) -> String {
    let mut h = Sha256::new();
    // Length-prefixed parts so no two different tuples hash the same bytes.
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(src.as_bytes());
    part(arch.sm().as_bytes());
    part(format!("{}.{}", nvrtc.0, nvrtc.1).as_bytes());
    for o in options(arch) {
        part(o.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Kernel `name` for `arch`: from the cache when present, else compiled and stored.
pub fn cubin(name: &str, arch: Arch) -> Result<Vec<u8>, CudaError> {
    cubin_in(name, arch, cache_dir().as_deref())
}

/// As [`cubin`] with an explicit cache directory (`None`: no cache).
pub fn cubin_in(name: &str, arch: Arch, dir: Option<&Path>) -> Result<Vec<u8>, CudaError> {
    let ver = version()?;
    let src = source::expand(name)?;
    let key = cache_key(&src, arch, ver);
    let file = dir.map(|d| d.join("cuda").join(format!("{key}.cubin")));
    if let Some(bytes) = file.as_deref().and_then(|f| fs::read(f).ok()) {
        // A CUBIN is an ELF file; anything else is a damaged entry, recompiled below.
        if bytes.starts_with(b"\x7fELF") {
            return Ok(bytes);
        }
    }
    let bin = compile_text(name, &src, arch)?;
    if let Some(f) = &file {
        store(f, &bin);
    }
    Ok(bin)
}

/// Writes a cache entry atomically (temp file + rename); failures are ignored on purpose:
/// the cache only saves time.
fn store(file: &Path, bytes: &[u8]) {
    let Some(dir) = file.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, file).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_the_determinism_set() {
        let o = options(Arch { major: 9, minor: 0 });
        assert!(o.contains(&"--gpu-architecture=sm_90".to_string()));
        assert!(o.contains(&"--fmad=false".to_string()));
        assert!(o.contains(&"--prec-div=true".to_string()));
        assert!(o.contains(&"--prec-sqrt=true".to_string()));
        assert!(!o
            .iter()
            .any(|x| x.contains("fast-math") || x == "--ftz=true"));
    }

    #[test]
    fn cache_key_separates_every_input() {
        let a = Arch { major: 8, minor: 6 };
        let b = Arch { major: 9, minor: 0 };
        let k = cache_key("x", a, (12, 2));
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key("x", a, (12, 2)));
        assert_ne!(k, cache_key("y", a, (12, 2)));
        assert_ne!(k, cache_key("x", b, (12, 2)));
        assert_ne!(k, cache_key("x", a, (12, 3)));
    }
}
