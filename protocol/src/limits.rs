//! Every capacity on the wire, in one place.
//!
//! Messages are bounded (heapless) so that a decoder can never be made to allocate, and each
//! message enum's largest encoding is checked at compile time against [`MAX_MESSAGE`].

/// Largest frame on a byte stream: the length prefix is a `u16`.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// ChaCha20-Poly1305 tag that sealing adds to every frame.
pub const SEAL_OVERHEAD: usize = 16;
/// Largest encoded message: a sealed message must still fit one frame.
pub const MAX_MESSAGE: usize = MAX_FRAME - SEAL_OVERHEAD;

/// Data bytes in one chunk of a large payload (geometry, job input, results).
pub const CHUNK_DATA: usize = 60 * 1024;
/// Largest payload that is chunked: 256 MiB (a 512^3 uint16 volume fits with room to spare).
pub const MAX_PAYLOAD: u32 = 256 * 1024 * 1024;

/// Devices one rig may report (GPUs plus CPU worker devices).
pub const MAX_DEVICES: usize = 32;
/// Bytes of a rig, device or label name.
pub const NAME_LEN: usize = 48;
/// Bytes of a firmware version string.
pub const FIRMWARE_LEN: usize = 32;
/// Bytes of an operator console command line.
pub const CONSOLE_LINE: usize = 256;
/// Bytes of an operator console reply.
pub const CONSOLE_REPLY: usize = 8 * 1024;
/// Bytes of a human-readable reason or error message.
pub const REASON_LEN: usize = 256;

/// Photon indices one `SampleRequest` may name.
pub const SAMPLES_PER_REQUEST: usize = 64;
/// History proofs in one `SampleProof` message (a request is answered in several).
pub const PROOFS_PER_MESSAGE: usize = 32;
/// Bytes of one per-history record (the engine's canonical `PhotonRecord` encoding).
pub const HISTORY_RECORD: usize = 96;
/// Depth of a Merkle proof: 2^40 histories per assignment is far beyond any real one.
pub const MERKLE_DEPTH: usize = 40;
/// Assignments one `PaymentClaim` may list.
pub const CLAIMS_PER_MESSAGE: usize = 64;
/// Trust events in a rig's public record (the most recent ones; counters keep the totals).
pub const RECORD_EVENTS: usize = 8;

/// Pools in a flight sheet (rig.conf's `POOL1`..`POOL16`: a sheet names the first 8).
pub const SHEET_POOLS: usize = 8;
/// Bytes of a pool URL in a flight sheet.
pub const POOL_URL_LEN: usize = 128;
/// Bytes of a pool user (worker name) in a flight sheet.
pub const POOL_USER_LEN: usize = 128;
/// Bytes of a pool password in a flight sheet.
pub const POOL_PASS_LEN: usize = 64;
/// Operator console keys in a flight sheet.
pub const SHEET_CONSOLE_KEYS: usize = 8;
/// Other rig.conf settings a flight sheet may carry by name.
pub const SHEET_EXTRA: usize = 8;
/// Bytes of a rig.conf key named in a flight sheet.
pub const SETTING_KEY_LEN: usize = 32;
/// Bytes of a rig.conf value named in a flight sheet.
pub const SETTING_VALUE_LEN: usize = 128;
/// Rigs in one page of an operator's rig list.
pub const RIGS_PER_PAGE: usize = 8;
/// Farms in an operator's farm list.
pub const FARMS_PER_PAGE: usize = 32;
/// Audit records in one page.
pub const AUDIT_PER_PAGE: usize = 16;
/// Jobs in one page of an operator's job list.
pub const JOBS_PER_PAGE: usize = 16;
