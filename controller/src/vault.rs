//! The result vault: finished transport results, sealed for the manager, in slots allocated
//! once at start.
//!
//! `VAULT_SLOTS` buffers of `VAULT_SLOT_BYTES` are allocated when the rig starts and never
//! again: a slot is reserved when an assignment is accepted (so its result always has a place:
//! a full vault turns work down with `VaultFull` and the devices keep hashing), lent to the
//! device that runs the assignment ([`SlotBuf`], moved, never copied), filled with the tally's
//! canonical encoding and sealed in place for the manager's key (ChaCha20-Poly1305 with a
//! fresh X25519 ephemeral key, `protocol::secure::seal`: the derived key lives in a type that
//! zeroizes on drop, and the plaintext is overwritten by its own ciphertext), then returned
//! sealed. A sealed result waits in its slot, through any number of lost sessions, until the
//! manager acknowledges it for good (verified, failed, unknown to it, or paid); only then is
//! the slot free again. A manager's "received" alone does not free it: a manager that
//! restarts may have lost an upload it had acknowledged, and gets it again. Nothing on this path
//! allocates: encoding writes into the slot, sealing encrypts in place, and chunks for the
//! wire are views of the slot.
//!
//! Capacity: `slots` results at once. Full: [`Vault::reserve`] refuses (the session turns the
//! assignment down with `VaultFull` and stops bidding) until a slot frees.

use compushare_kernels::transport::tally::Tally;
use compushare_protocol::msg::ResultCommit;
use compushare_protocol::secure::seal::{self, SEAL_BOX_OVERHEAD, SEAL_PAYLOAD_OFFSET};
use compushare_protocol::types::{AssignmentId, PublicKey};
use zeroize::Zeroize;

/// Default number of slots (rig.conf VAULT_SLOTS).
pub const DEFAULT_SLOTS: u32 = 8;
/// Default slot size (rig.conf VAULT_SLOT_BYTES): a 2-million-cell tally with room to spare.
pub const DEFAULT_SLOT_BYTES: u64 = 16 << 20;

/// Why the vault could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Every slot is reserved or holds a result the manager has not acknowledged.
    #[error("vault full ({0} slots)")]
    Full(u32),
    /// The vault would take more than half of the machine's memory (VAULT_SLOTS x
    /// VAULT_SLOT_BYTES), or its size overflows.
    #[error("VAULT_SLOTS x VAULT_SLOT_BYTES = {slots} x {slot_bytes} bytes is more than half of this machine's {memory} bytes of memory")]
    Alloc {
        slots: u32,
        slot_bytes: u64,
        memory: u64,
    },
    /// The result's canonical encoding plus the seal's overhead is larger than a slot.
    #[error("result of {bytes} bytes does not fit a {slot_bytes}-byte vault slot")]
    TooLarge { bytes: u64, slot_bytes: u64 },
    /// Sealing failed (the manager's key is not a usable X25519 key).
    #[error("sealing failed: {0}")]
    Seal(seal::SealError),
    /// The slot is not in the state the call needs (a bug in the caller, refused).
    #[error("vault slot {0} is not in the expected state")]
    State(u32),
}

/// A slot's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId(pub u32);

/// A slot's storage, lent to the device that runs its assignment.
#[derive(Debug)]
pub struct SlotBuf {
    id: SlotId,
    buf: Box<[u8]>,
    sealed_len: usize,
}

impl SlotBuf {
    /// The slot it belongs to.
    pub fn id(&self) -> SlotId {
        self.id
    }

    /// Encodes `tally` into the slot and seals it in place for `recipient`; returns the
    /// sealed length. On any error the slot holds no plaintext (zeroized).
    pub fn seal(&mut self, tally: &Tally, recipient: &PublicKey) -> Result<usize, VaultError> {
        let len = tally.canonical_len();
        let too_large = VaultError::TooLarge {
            bytes: (len as u64).saturating_add(SEAL_BOX_OVERHEAD as u64),
            slot_bytes: self.buf.len() as u64,
        };
        if len.saturating_add(SEAL_BOX_OVERHEAD) > self.buf.len() {
            return Err(too_large);
        }
        let written = self
            .buf
            .get_mut(SEAL_PAYLOAD_OFFSET..)
            .and_then(|staging| tally.write_canonical(staging));
        if written != Some(len) {
            self.wipe();
            return Err(too_large);
        }
        match seal::seal_in_place(recipient, &mut self.buf, len) {
            Ok(n) => {
                self.sealed_len = n;
                Ok(n)
            }
            Err(e) => {
                self.wipe();
                Err(VaultError::Seal(e))
            }
        }
    }

    /// The sealed bytes (empty before a successful [`SlotBuf::seal`]).
    pub fn sealed(&self) -> &[u8] {
        self.buf.get(..self.sealed_len).unwrap_or(&[])
    }

    /// Zeroes whatever the slot holds.
    pub fn wipe(&mut self) {
        self.buf.zeroize();
        self.sealed_len = 0;
    }

    /// The whole slot (tests check that no plaintext is left).
    pub fn raw(&self) -> &[u8] {
        &self.buf
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Reserved for an assignment; `lent` while its device holds the buffer.
    Reserved {
        assignment: AssignmentId,
        lent: bool,
    },
    /// A sealed result waiting for the manager to settle it (verified, failed, unknown or
    /// paid); `received` once the manager said it has the upload.
    Sealed {
        assignment: AssignmentId,
        commit: ResultCommit,
        received: bool,
    },
}

/// Counters for the operator surfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VaultStats {
    pub slots: u32,
    pub used: u32,
    pub slot_bytes: u64,
    /// Results sealed since start.
    pub sealed: u64,
    /// Reservations refused because the vault was full.
    pub full_events: u64,
}

/// The vault.
#[derive(Debug)]
pub struct Vault {
    slot_bytes: usize,
    states: Vec<State>,
    bufs: Vec<Option<Box<[u8]>>>,
    /// Free slot numbers (a stack: capacity fixed at start).
    free: Vec<u32>,
    sealed_total: u64,
    full_events: u64,
}

impl Vault {
    /// Allocates `slots` slots of `slot_bytes`, zeroed: fresh zero pages from the system,
    /// which become resident only as results are written into them, so an idle vault costs
    /// next to no memory. A vault of more than half the machine's memory is refused.
    pub fn new(slots: u32, slot_bytes: u64) -> Result<Vault, VaultError> {
        let memory = compushare_hardware::cpu_device().memory_bytes;
        let alloc = VaultError::Alloc {
            slots,
            slot_bytes,
            memory,
        };
        let total = u64::from(slots).checked_mul(slot_bytes);
        let bytes = usize::try_from(slot_bytes).map_err(|_| alloc.clone())?;
        if total.is_none_or(|t| memory > 0 && t > memory / 2) {
            return Err(alloc);
        }
        let n = slots as usize;
        let mut bufs = Vec::with_capacity(n);
        for _ in 0..n {
            bufs.push(Some(vec![0u8; bytes].into_boxed_slice()));
        }
        let mut free = Vec::with_capacity(n);
        // Lowest slot first out.
        free.extend((0..slots).rev());
        Ok(Vault {
            slot_bytes: bytes,
            states: vec![State::Free; n],
            bufs,
            free,
            sealed_total: 0,
            full_events: 0,
        })
    }

    /// Slot size, bytes.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Counters now.
    pub fn stats(&self) -> VaultStats {
        VaultStats {
            slots: self.states.len() as u32,
            used: (self.states.len() - self.free.len()) as u32,
            slot_bytes: self.slot_bytes as u64,
            sealed: self.sealed_total,
            full_events: self.full_events,
        }
    }

    /// Reserves a slot for `assignment`'s result.
    pub fn reserve(&mut self, assignment: AssignmentId) -> Result<SlotId, VaultError> {
        let Some(i) = self.free.pop() else {
            self.full_events += 1;
            return Err(VaultError::Full(self.states.len() as u32));
        };
        if let Some(s) = self.states.get_mut(i as usize) {
            *s = State::Reserved {
                assignment,
                lent: false,
            };
        }
        Ok(SlotId(i))
    }

    /// Lends a reserved slot's buffer to the device that will fill it.
    pub fn lend(&mut self, id: SlotId) -> Result<SlotBuf, VaultError> {
        let i = id.0 as usize;
        match self.states.get_mut(i) {
            Some(State::Reserved { lent, .. }) if !*lent => {
                let buf = self
                    .bufs
                    .get_mut(i)
                    .and_then(Option::take)
                    .ok_or(VaultError::State(id.0))?;
                *lent = true;
                Ok(SlotBuf {
                    id,
                    buf,
                    sealed_len: 0,
                })
            }
            _ => Err(VaultError::State(id.0)),
        }
    }

    /// Takes back a lent buffer holding the sealed result that `commit` describes.
    pub fn store(&mut self, slot: SlotBuf, commit: ResultCommit) -> Result<(), VaultError> {
        let i = slot.id.0 as usize;
        let ok = matches!(self.states.get(i), Some(State::Reserved { lent: true, assignment }) if *assignment == commit.assignment)
            && slot.sealed_len > 0;
        if !ok {
            let id = slot.id.0;
            self.give_back(slot);
            return Err(VaultError::State(id));
        }
        if let (Some(s), Some(b)) = (self.states.get_mut(i), self.bufs.get_mut(i)) {
            *s = State::Sealed {
                assignment: commit.assignment,
                commit,
                received: false,
            };
            *b = Some(slot.buf);
        }
        self.sealed_total += 1;
        // The sealed length lives in the commit.
        Ok(())
    }

    /// Takes back a lent buffer that was never used (its device could not take the work
    /// yet): the slot stays reserved for the same assignment.
    pub fn unlend(&mut self, slot: SlotBuf) {
        let i = slot.id.0 as usize;
        if let (Some(State::Reserved { lent, .. }), Some(b)) =
            (self.states.get_mut(i), self.bufs.get_mut(i))
        {
            if *lent && b.is_none() {
                *lent = false;
                *b = Some(slot.buf);
                return;
            }
        }
        self.give_back(slot);
    }

    /// Takes back a lent buffer whose assignment produced no result (failed, cancelled): it
    /// is wiped and the slot freed.
    pub fn give_back(&mut self, mut slot: SlotBuf) {
        slot.wipe();
        let i = slot.id.0 as usize;
        if let Some(b) = self.bufs.get_mut(i) {
            if b.is_none() {
                *b = Some(slot.buf);
                self.set_free(i);
            }
        }
    }

    /// Frees the slot of `assignment` when it is reserved and not lent (an assignment
    /// cancelled before its device started it) or sealed (the manager acknowledged it).
    /// Returns whether a slot was freed.
    pub fn release(&mut self, assignment: AssignmentId) -> bool {
        let found = self.states.iter().position(|s| match s {
            State::Reserved {
                assignment: a,
                lent: false,
            } => *a == assignment,
            State::Sealed { assignment: a, .. } => *a == assignment,
            _ => false,
        });
        match found {
            Some(i) => {
                self.set_free(i);
                true
            }
            None => false,
        }
    }

    fn set_free(&mut self, i: usize) {
        if let Some(s) = self.states.get_mut(i) {
            if *s != State::Free {
                *s = State::Free;
                if self.free.len() < self.free.capacity() {
                    self.free.push(i as u32);
                }
            }
        }
    }

    /// Notes that the manager has the upload of `assignment`; true the first time. The result
    /// stays until the manager settles it: a manager that restarts may have lost an upload it
    /// had acknowledged, and is sent it again.
    pub fn mark_received(&mut self, assignment: AssignmentId) -> bool {
        for s in &mut self.states {
            if let State::Sealed {
                assignment: a,
                received,
                ..
            } = s
            {
                if *a == assignment {
                    return !std::mem::replace(received, true);
                }
            }
        }
        false
    }

    /// The sealed result of `assignment` and its commit, if the vault holds one.
    pub fn sealed(&self, assignment: AssignmentId) -> Option<(&ResultCommit, &[u8])> {
        self.states.iter().enumerate().find_map(|(i, s)| match s {
            State::Sealed {
                assignment: a,
                commit,
                ..
            } if *a == assignment => {
                let buf = self.bufs.get(i)?.as_deref()?;
                Some((commit, buf.get(..commit.sealed_len as usize)?))
            }
            _ => None,
        })
    }

    /// Assignments whose sealed results wait for the manager, in slot order.
    pub fn waiting(&self) -> impl Iterator<Item = AssignmentId> + '_ {
        self.states.iter().filter_map(|s| match s {
            State::Sealed { assignment, .. } => Some(*assignment),
            _ => None,
        })
    }
}
