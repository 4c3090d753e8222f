//! Small value types shared by all messages: identifiers, keys, digests, device descriptions.

use heapless::String;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::limits::{FIRMWARE_LEN, NAME_LEN};

/// A SHA-256 digest (content address of a payload, a tally, a Merkle root).
pub type Digest = [u8; 32];
/// An X25519 static public key: the identity of a rig, client or manager.
pub type PublicKey = [u8; 32];

/// `s` as a bounded string, cut at a character boundary when longer than `N` bytes (names,
/// reasons and console text that must fit their wire capacity).
pub fn bounded<const N: usize>(s: &str) -> String<N> {
    let mut out = String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Bounded name (rig, device, label).
pub type Name = String<NAME_LEN>;
/// Bounded firmware version string.
pub type Firmware = String<FIRMWARE_LEN>;

/// A client job, numbered by the manager that accepted it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, MaxSize,
)]
pub struct JobId(pub u64);

/// One assignment (a photon range of a job given to one device), numbered by the manager.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, MaxSize,
)]
pub struct AssignmentId(pub u64);

/// Money in the manager's internal credit unit (micro-credits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, MaxSize)]
pub struct Amount(pub u64);

/// A contiguous range of photon indices `[start, start + count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct PhotonRange {
    pub start: u64,
    pub count: u64,
}

/// What kind of compute device a rig reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum DeviceKind {
    /// A group of CPU cores run as one worker device.
    Cpu,
    /// An NVIDIA GPU driven through CUDA.
    CudaGpu,
}

/// A device as a rig announces it in `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct DeviceInfo {
    /// Index of the device on the rig; later messages refer to it.
    pub index: u8,
    pub kind: DeviceKind,
    pub name: Name,
    /// Streaming multiprocessors on a GPU, cores on a CPU device.
    pub compute_units: u32,
    /// Threads that run in parallel (CUDA cores, CPU threads): assignments are sized in
    /// multiples of this.
    pub cores: u32,
    /// Device memory, bytes.
    pub memory: u64,
    /// Measured SHA-256d rate, hashes/s.
    pub hash_rate: u64,
    /// Measured transport rate on the reference benchmark (cube60), photon histories/s.
    pub histories_per_s: u64,
}

/// What a device is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Role {
    /// Choose by profit (the default).
    Auto,
    /// Hash for the configured pools.
    Mine,
    /// Run paid photon transport.
    Transport,
    /// Neither: the operator switched it off.
    Off,
}

/// One device's state in a `Heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct DeviceStatus {
    pub index: u8,
    /// The role the device has now (never `Auto`: auto resolves to what it does).
    pub role: Role,
    /// Current hash rate, hashes/s (0 when not mining).
    pub hash_rate: u64,
    /// Current transport rate, histories/s (0 when not transporting).
    pub histories_per_s: u64,
    /// Temperature in tenths of a degree Celsius, when the device reports it.
    pub temperature_dc: Option<i16>,
    /// Power draw in watts, when the device reports it.
    pub power_w: Option<u16>,
}

/// Trust a manager places in a rig (see the manager's verification rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum TrustLevel {
    Untrusted,
    Trusted,
}

/// How a client wants its job matched to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Mode {
    /// Cheapest devices first, then the fastest among equal prices.
    Cheapest,
    /// Fastest devices first, then the cheapest among equal speeds.
    Fastest,
}
