//! `--device` values: `cpu` or `cuda:K` (CONTRACT.md), parsed without looking at the
//! hardware; whether the device exists is `Inventory::select`'s question.

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU (all its worker threads).
    Cpu,
    /// CUDA device number K, as the driver numbers them.
    Cuda(u32),
}

/// Why a `--device` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Neither `cpu` nor `cuda:K`.
    #[error("device `{0}`: expected `cpu` or `cuda:K` (K = 0, 1, ...)")]
    Unknown(String),
    /// `cuda:` followed by something that is not a device number.
    #[error("device `{0}`: the CUDA device number must be a non-negative integer, as in `cuda:0`")]
    BadIndex(String),
}

impl FromStr for DeviceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<DeviceSpec, SpecError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("cpu") {
            return Ok(DeviceSpec::Cpu);
        }
        let Some((kind, index)) = t.split_once(':') else {
            return Err(SpecError::Unknown(s.to_string()));
        };
        if !kind.eq_ignore_ascii_case("cuda") {
            return Err(SpecError::Unknown(s.to_string()));
        }
        // Digits only: `u32::from_str` would also take a leading `+`.
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpecError::BadIndex(s.to_string()));
        }
        index
            .parse::<u32>()
            .map(DeviceSpec::Cuda)
            .map_err(|_| SpecError::BadIndex(s.to_string()))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(k) => write!(f, "cuda:{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_forms() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CPU".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda:0".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:12".parse(), Ok(DeviceSpec::Cuda(12)));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        assert_eq!(DeviceSpec::Cpu.to_string(), "cpu");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "gpu", "cuda", "opencl:0", "cpu:0x"] {
            assert!(
                matches!(bad.parse::<DeviceSpec>(), Err(SpecError::Unknown(_))),
                "{bad}"
            );
        }
        for bad in ["cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda:99999999999"] {
            assert!(
                matches!(bad.parse::<DeviceSpec>(), Err(SpecError::BadIndex(_))),
                "{bad}"
            );
        }
        let msg = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(msg.contains("cuda:x") && msg.contains("cuda:0"), "{msg}");
    }
}
