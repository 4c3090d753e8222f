//! From a `mining.notify` to 80-byte headers: coinbase, merkle root, header byte order,
//! BIP 310 version rolling, the split of the extranonce2 space between devices, and the
//! job's economics (coinbase value and network difficulty, for profit switching).
//!
//! Byte-order rules (../shared/reference/stratum.md): the notify prevhash has each 4-byte
//! word swapped relative to the header; merkle branches are in header order; version,
//! nbits and ntime arrive big-endian and go into the header little-endian; the submitted
//! nonce and ntime are the byte-reverse of the header bytes.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use super::message::Notify;
use super::target::{sha256d, ShareTarget, TargetError};

/// Why a job cannot be turned into work or economics.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum JobError {
    /// The extranonce2 given has the wrong size.
    #[error("extranonce2 is {got} bytes, the pool asked for {expected}")]
    Extranonce2Size {
        /// Size the pool set.
        expected: usize,
        /// Size supplied.
        got: usize,
    },
    /// The coinbase transaction cannot be parsed.
    #[error("coinbase transaction: {0}")]
    Coinbase(&'static str),
    /// The job's nbits or share difficulty is invalid.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The notify prevhash in header byte order (each 4-byte word reversed).
pub fn prevhash_header_order(wire: &[u8; 32]) -> [u8; 32] {
    let mut out = *wire;
    for w in out.chunks_exact_mut(4) {
        w.reverse();
    }
    out
}

/// coinb1 || extranonce1 || extranonce2 || coinb2.
pub fn coinbase(n: &Notify, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
    let mut c =
        Vec::with_capacity(n.coinb1.len() + extranonce1.len() + extranonce2.len() + n.coinb2.len());
    c.extend_from_slice(&n.coinb1);
    c.extend_from_slice(extranonce1);
    c.extend_from_slice(extranonce2);
    c.extend_from_slice(&n.coinb2);
    c
}

/// Folds the coinbase hash up the branch: root = sha256d(root || branch[i]).
pub fn merkle_root(coinbase_hash: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    let mut root = coinbase_hash;
    let mut buf = [0u8; 64];
    for b in branch {
        buf[..32].copy_from_slice(&root);
        buf[32..].copy_from_slice(b);
        root = sha256d(&buf);
    }
    root
}

/// BIP 310: the version with the rollable bits replaced.
pub fn rolled_version(base: u32, bits: u32, mask: u32) -> u32 {
    (base & !mask) | (bits & mask)
}

/// The 80-byte header.
pub fn header(
    n: &Notify,
    merkle_root: &[u8; 32],
    version: u32,
    ntime: u32,
    nonce: u32,
) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[0..4].copy_from_slice(&version.to_le_bytes());
    h[4..36].copy_from_slice(&prevhash_header_order(&n.prevhash_wire));
    h[36..68].copy_from_slice(merkle_root);
    h[68..72].copy_from_slice(&ntime.to_le_bytes());
    h[72..76].copy_from_slice(&n.nbits.to_le_bytes());
    h[76..80].copy_from_slice(&nonce.to_le_bytes());
    h
}

/// Everything from a submitted share to its header: what a pool recomputes to validate.
pub fn share_header(
    n: &Notify,
    extranonce1: &[u8],
    extranonce2: &[u8],
    ntime: u32,
    version: u32,
    nonce: u32,
) -> [u8; 80] {
    let cb = coinbase(n, extranonce1, extranonce2);
    let root = merkle_root(sha256d(&cb), &n.merkle_branch);
    header(n, &root, version, ntime, nonce)
}

/// What mining a job earns: the inputs of revenue per hash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobEconomics {
    /// Sum of the coinbase outputs in satoshi (subsidy plus fees the pool included).
    pub coinbase_value_sat: u64,
    /// Network difficulty from nbits.
    pub network_difficulty: f64,
    /// Expected satoshi per hash if the whole block went to this miner:
    /// value / (network difficulty * 2^32). A pool's share payout is proportional to it.
    pub sat_per_hash: f64,
}

/// Reads the coinbase's outputs and the network difficulty.
pub fn economics(
    n: &Notify,
    extranonce1: &[u8],
    extranonce2_size: usize,
) -> Result<JobEconomics, JobError> {
    let tx = coinbase(n, extranonce1, &vec![0u8; extranonce2_size]);
    let value = coinbase_output_value(&tx)?;
    let network_difficulty = ShareTarget::from_nbits(n.nbits)?.difficulty();
    Ok(JobEconomics {
        coinbase_value_sat: value,
        network_difficulty,
        sat_per_hash: value as f64 / (network_difficulty * 4_294_967_296.0),
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JobError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(JobError::Coinbase("truncated"))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(JobError::Coinbase("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, JobError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn varint(&mut self) -> Result<u64, JobError> {
        let le = |s: &[u8]| s.iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b));
        Ok(match self.u8()? {
            0xfd => le(self.take(2)?),
            0xfe => le(self.take(4)?),
            0xff => le(self.take(8)?),
            x => u64::from(x),
        })
    }
    fn skip_var(&mut self) -> Result<(), JobError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| JobError::Coinbase("length overflows"))?;
        self.take(n).map(|_| ())
    }
}

/// Sum of the outputs of a (non-witness serialised) coinbase transaction.
pub fn coinbase_output_value(tx: &[u8]) -> Result<u64, JobError> {
    let mut c = Cursor { b: tx, pos: 0 };
    c.take(4)?; // version
    let inputs = c.varint()?;
    if inputs != 1 {
        return Err(JobError::Coinbase("a coinbase has exactly one input"));
    }
    c.take(36)?; // null prevout
    c.skip_var()?; // script
    c.take(4)?; // sequence
    let outputs = c.varint()?;
    if outputs > 10_000 {
        return Err(JobError::Coinbase("implausible output count"));
    }
    let mut total: u64 = 0;
    for _ in 0..outputs {
        let v = c.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(v);
        total = total
            .checked_add(u64::from_le_bytes(a))
            .ok_or(JobError::Coinbase("output values overflow"))?;
        c.skip_var()?;
    }
    c.take(4)?; // lock time
    Ok(total)
}

/// A job as the devices see it: everything needed to make headers and check shares.
#[derive(Debug, Clone)]
pub struct Work {
    /// Index of the pool (priority order) this came from.
    pub pool: usize,
    /// Which connection session produced it (shares from older sessions are stale).
    pub session: u64,
    /// The job.
    pub notify: Arc<Notify>,
    /// The session's extranonce1 when the job arrived.
    pub extranonce1: Vec<u8>,
    /// extranonce2 size when the job arrived.
    pub extranonce2_size: usize,
    /// Share difficulty for this job.
    pub difficulty: f64,
    /// Share target for this job.
    pub target: ShareTarget,
    /// Negotiated BIP 310 mask (None: no rolling).
    pub version_mask: Option<u32>,
    /// When the client received the job.
    pub received: Instant,
}

/// One header's worth of work: the header (nonce field zero) and the nonces to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkUnit {
    /// extranonce2 used.
    pub extranonce2: Vec<u8>,
    /// BIP 310 bits sent with a share (Some when rolling is negotiated).
    pub version_bits: Option<u32>,
    /// The header's version.
    pub version: u32,
    /// The header's time.
    pub ntime: u32,
    /// The header with nonce 0.
    pub header: [u8; 80],
    /// The nonces this unit covers.
    pub nonces: Range<u64>,
}

/// Most rolled version bits used (2^16 headers per extranonce2 and nonce chunk).
const MAX_ROLL_BITS: u32 = 16;

/// Spreads the low bits of `index` over the set bits of `mask`, lowest first.
fn deposit(mut index: u32, mask: u32) -> u32 {
    let mut out = 0;
    let mut m = mask;
    while m != 0 && index != 0 {
        let low = m & m.wrapping_neg();
        if index & 1 == 1 {
            out |= low;
        }
        index >>= 1;
        m &= m - 1;
    }
    out
}

impl Work {
    /// How many distinct extranonce2 values exist (capped at 2^64).
    pub fn extranonce2_space(&self) -> u128 {
        if self.extranonce2_size >= 8 {
            1u128 << 64
        } else {
            1u128 << (8 * self.extranonce2_size)
        }
    }

    /// The extranonce2 values slot `slot` of `slots` owns: disjoint for different slots, so
    /// no two devices or threads ever build the same header. Empty when there are more
    /// slots than values.
    pub fn slot_range(&self, slot: usize, slots: usize) -> Range<u64> {
        let space = self.extranonce2_space();
        let slots = slots.max(1) as u128;
        let slot = slot as u128;
        if slot >= slots {
            return 0..0;
        }
        let start = space * slot / slots;
        let end = space * (slot + 1) / slots;
        // space <= 2^64, so end - 1 fits; end itself is clamped for the last slot.
        let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        clamp(start)..clamp(end)
    }

    /// Encodes an extranonce2 counter value big-endian into the pool's size.
    pub fn extranonce2_bytes(&self, value: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.extranonce2_size];
        let be = value.to_be_bytes();
        let n = self.extranonce2_size.min(8);
        let (dst_start, src_start) = (self.extranonce2_size - n, 8 - n);
        out[dst_start..].copy_from_slice(&be[src_start..]);
        out
    }

    fn roll_count(&self) -> u64 {
        match self.version_mask {
            Some(m) if m != 0 => 1u64 << m.count_ones().min(MAX_ROLL_BITS),
            _ => 1,
        }
    }

    /// How many units `range` holds with nonce chunks of 2^`chunk_bits`.
    pub fn unit_count(&self, range: &Range<u64>, chunk_bits: u32) -> u128 {
        let chunks = 1u128 << (32 - chunk_bits.clamp(1, 32));
        u128::from(range.end.saturating_sub(range.start)) * chunks * u128::from(self.roll_count())
    }

    /// Unit number `index` of `range`: version bits vary fastest, then the nonce chunk,
    /// then extranonce2. A bijection onto (extranonce2, version bits, nonce chunk), so
    /// distinct indices never repeat a (header, nonce) pair. None past the end.
    pub fn unit(&self, range: &Range<u64>, index: u64, chunk_bits: u32) -> Option<WorkUnit> {
        let chunk_bits = chunk_bits.clamp(1, 32);
        let rolls = self.roll_count();
        let chunks = 1u64 << (32 - chunk_bits);
        let roll = index % rolls;
        let rest = index / rolls;
        let chunk = rest % chunks;
        let en2_off = rest / chunks;
        let en2 = range
            .start
            .checked_add(en2_off)
            .filter(|e| *e < range.end)?;
        let extranonce2 = self.extranonce2_bytes(en2);
        let n = &self.notify;
        let (version, version_bits) = match self.version_mask {
            Some(mask) if mask != 0 => {
                let bits = deposit(roll as u32, mask);
                (rolled_version(n.version, bits, mask), Some(bits))
            }
            _ => (n.version, None),
        };
        let header = share_header(n, &self.extranonce1, &extranonce2, n.ntime, version, 0);
        let size = 1u64 << chunk_bits;
        Some(WorkUnit {
            extranonce2,
            version_bits,
            version,
            ntime: n.ntime,
            header,
            nonces: chunk * size..(chunk + 1) * size,
        })
    }

    /// Whether `other` spans the same headers (same job content, extranonce1, extranonce2
    /// size and version mask), differing at most in difficulty or the clean flag. A device
    /// keeps its place in such work instead of starting over and repeating headers.
    pub fn same_space(&self, other: &Work) -> bool {
        let (a, b) = (&*self.notify, &*other.notify);
        a.job_id == b.job_id
            && a.prevhash_wire == b.prevhash_wire
            && a.coinb1 == b.coinb1
            && a.coinb2 == b.coinb2
            && a.merkle_branch == b.merkle_branch
            && a.version == b.version
            && a.nbits == b.nbits
            && a.ntime == b.ntime
            && self.extranonce1 == other.extranonce1
            && self.extranonce2_size == other.extranonce2_size
            && self.version_mask == other.version_mask
            && self.pool == other.pool
            && self.session == other.session
    }

    /// Economics of this job.
    pub fn economics(&self) -> Result<JobEconomics, JobError> {
        economics(&self.notify, &self.extranonce1, self.extranonce2_size)
    }
}

/// Sets the nonce field of a header.
pub fn with_nonce(header: &[u8; 80], nonce: u32) -> [u8; 80] {
    let mut h = *header;
    h[76..80].copy_from_slice(&nonce.to_le_bytes());
    h
}
