//! The CUDA C sources (kernels/cuda/), embedded in the binary so a rig needs no files beside
//! it, and the `#include "..."` resolution NVRTC would otherwise need headers passed for.
//! Each header is inlined once (they also carry include guards), so the text NVRTC compiles,
//! and hashes for the cache, is one self-contained translation unit.

use super::CudaError;

/// Every file of kernels/cuda/: (name, text).
pub const FILES: &[(&str, &str)] = &[
    ("cs_types.cuh", include_str!("../../cuda/cs_types.cuh")),
    (
        "cs_sha256d_core.cuh",
        include_str!("../../cuda/cs_sha256d_core.cuh"),
    ),
    ("sha256d.cu", include_str!("../../cuda/sha256d.cu")),
    ("cs_philox.cuh", include_str!("../../cuda/cs_philox.cuh")),
    ("cs_math.cuh", include_str!("../../cuda/cs_math.cuh")),
    ("cs_model.cuh", include_str!("../../cuda/cs_model.cuh")),
    ("cs_photon.cuh", include_str!("../../cuda/cs_photon.cuh")),
    ("transport.cu", include_str!("../../cuda/transport.cu")),
];

/// The compilable kernels (the `.cu` files); the rest are headers.
pub fn kernels() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n).filter(|n| n.ends_with(".cu"))
}

fn text(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The kernel `name` with every include inlined.
pub fn expand(name: &str) -> Result<String, CudaError> {
    let src = text(name).ok_or_else(|| CudaError::UnknownKernel(name.to_string()))?;
    let mut out = String::with_capacity(src.len() * 2);
    let mut seen = Vec::new();
    inline(name, src, &mut out, &mut seen, 0)?;
    Ok(out)
}

fn inline(
    file: &str,
    src: &str,
    out: &mut String,
    seen: &mut Vec<String>,
    depth: u32,
) -> Result<(), CudaError> {
    out.push_str(&format!("#line 1 \"{file}\"\n"));
    for (i, line) in src.lines().enumerate() {
        let included = line
            .trim()
            .strip_prefix("#include")
            .map(str::trim)
            .and_then(|r| r.strip_prefix('"'))
            .and_then(|r| r.split_once('"'))
            .map(|(n, _)| n);
        match included {
            Some(inc) => {
                let body = text(inc).ok_or_else(|| CudaError::MissingInclude {
                    file: file.to_string(),
                    include: inc.to_string(),
                })?;
                // Depth guard: the files are ours and acyclic; this only stops a mistake.
                if depth > 8 {
                    return Err(CudaError::MissingInclude {
                        file: file.to_string(),
                        include: format!("{inc} (nested too deep)"),
                    });
                }
                if !seen.iter().any(|s| s == inc) {
                    seen.push(inc.to_string());
                    inline(inc, body, out, seen, depth + 1)?;
                }
                // Back in this file: keep NVRTC's file:line in the log right.
                out.push_str(&format!("#line {} \"{file}\"\n", i + 2));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_expands_without_includes_left() {
        let mut n = 0;
        for k in kernels() {
            let s = expand(k).unwrap();
            assert!(!s.contains("#include \""), "{k}");
            n += 1;
        }
        assert!(n >= 1);
        assert!(matches!(
            expand("nope.cu"),
            Err(CudaError::UnknownKernel(_))
        ));
    }
}
