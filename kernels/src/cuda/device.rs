//! One CUDA device opened for work: its context and stream, its architecture (what NVRTC
//! compiles for), module loading and launch sizing from the driver's occupancy calculator.
//! Opening goes through the hardware crate's probe first, so a machine without a driver or
//! without that GPU gets `CudaError::Unavailable` with the operator's one-line message.

use std::sync::Arc;

use compushare_hardware::{discover, DeviceSpec};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;

use super::nvrtc::{self, Arch};
use super::CudaError;

/// An opened CUDA device.
#[derive(Debug, Clone)]
pub struct Gpu {
    index: u32,
    name: String,
    arch: Arch,
    sms: u32,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

impl Gpu {
    /// Opens `cuda:index`, or says in one line why it cannot.
    pub fn open(index: u32) -> Result<Gpu, CudaError> {
        let inv = discover();
        let info = inv
            .select(DeviceSpec::Cuda(index))
            .map_err(|e| CudaError::Unavailable(e.to_string()))?;
        let (major, minor) = info.compute_capability.unwrap_or((0, 0));
        let ctx = CudaContext::new(index as usize)
            .map_err(|e| CudaError::driver("creating the device context", e))?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            index,
            name: info.name.clone(),
            arch: Arch { major, minor },
            sms: info.compute_units.max(1),
            ctx,
            stream,
        })
    }

    /// The device number K of `cuda:K`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The architecture kernels are compiled for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Streaming multiprocessors.
    pub fn sms(&self) -> u32 {
        self.sms
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Compiles (or takes from the cache) kernel file `file` for this device and returns its
    /// entry point `function`.
    pub(crate) fn load(&self, file: &str, function: &str) -> Result<CudaFunction, CudaError> {
        let cubin = nvrtc::cubin(file, self.arch)?;
        let module = self
            .ctx
            .load_module(Ptx::from_binary(cubin))
            .map_err(|e| CudaError::driver("loading a compiled module", e))?;
        module
            .load_function(function)
            .map_err(|e| CudaError::driver("finding a kernel in its module", e))
    }

    /// A launch of `block` threads per block and as many blocks as fill every SM at the
    /// occupancy the driver computes for `func` (kernels loop grid-stride over their work).
    pub(crate) fn fill_config(
        &self,
        func: &CudaFunction,
        block: u32,
    ) -> Result<LaunchConfig, CudaError> {
        let per_sm = func
            .occupancy_max_active_blocks_per_multiprocessor(block, 0, None)
            .map_err(|e| CudaError::driver("querying occupancy", e))?
            .max(1);
        Ok(LaunchConfig {
            grid_dim: (self.sms.saturating_mul(per_sm), 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}
