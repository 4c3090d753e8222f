//! Errors of the CUDA backend: every way a GPU run can fail before or while it runs.

use thiserror::Error;

/// Why a CUDA operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CudaError {
    /// The device named is not usable (no driver, no such GPU); the message is the hardware
    /// crate's one line, e.g. "cuda:0: no NVIDIA driver (libcuda.so.1 not found)".
    #[error("{0}")]
    Unavailable(String),
    /// libnvrtc could not be loaded, so kernels cannot be compiled.
    #[error("NVRTC not found (libnvrtc.so.12): install the CUDA runtime compiler, e.g. `pip install nvidia-cuda-nvrtc-cu12`, and add its lib directory to LD_LIBRARY_PATH")]
    NoNvrtc,
    /// A kernel source names an `#include` that is not one of kernels/cuda/'s files.
    #[error("{file}: #include \"{include}\" is not a file of kernels/cuda/")]
    MissingInclude {
        /// The file holding the include.
        file: String,
        /// The name it includes.
        include: String,
    },
    /// No kernel of that name exists in kernels/cuda/.
    #[error("no CUDA kernel source named `{0}`")]
    UnknownKernel(String),
    /// NVRTC failed or printed anything (warnings are errors here); the log names file:line.
    #[error("NVRTC compiling {file} for {arch}: {status}\n{log}")]
    Compile {
        /// The kernel source file.
        file: String,
        /// Target architecture, e.g. "sm_90".
        arch: String,
        /// NVRTC's status ("warnings" when it succeeded but printed a log).
        status: String,
        /// The compiler's log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver: {context}: {error}")]
    Driver {
        /// What we were doing.
        context: &'static str,
        /// The driver's error code.
        error: String,
    },
    /// The transport job failed the engine's validation.
    #[error("invalid job: {0}")]
    Job(String),
    /// The work does not fit what a launch can describe (e.g. too many cells).
    #[error("{0}")]
    TooLarge(String),
    /// The kernel returned a photon record that is not a canonical encoding (a kernel or
    /// memory fault): the run fails rather than commit leaves the manager would reject.
    #[error("the GPU returned a malformed record for photon {photon}")]
    BadRecord {
        /// The photon index the record was expected for.
        photon: u64,
    },
}

impl CudaError {
    pub(crate) fn driver(context: &'static str, e: impl core::fmt::Debug) -> CudaError {
        CudaError::Driver {
            context,
            error: format!("{e:?}"),
        }
    }
}
