//! Fleets: farms, their flight sheets, the rigs enrolled in them, and the operator actions
//! that reach connected rigs (sheet pushes, role pins, relayed console lines).
//!
//! - [`store`]: the tables (farms with their sheets and versions, enrolment key hashes,
//!   enrolments, per-rig overrides, operators, the audit table), each change one transaction.
//! - [`Fleet`]: the connected rigs' side of it, in memory: for each rig session its send
//!   queue, farm, last heartbeat and where it stands with its sheet. A rig with `FARM_KEY`
//!   enrols on its `Hello`; every enrolled rig receives its sheet right after `Welcome` and
//!   again on every change, and answers `SheetApplied` or `SheetRefused`.
//!
//! Bounded: one entry per rig session (the node's session limit), at most
//! [`MAX_RELAYS`] console lines relayed and unanswered at once (more are refused at once), a
//! relayed line answered within [`RELAY_TIMEOUT`] or given up. The fleet's lock is never held
//! while the market's is taken, nor across a store transaction.

pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use compushare_protocol::limits::{CONSOLE_LINE, MAX_DEVICES};
use compushare_protocol::msg::{
    ConsoleReply, ManagerToRig, RigHello, RigSummary, RigToManager, SheetState,
};
use compushare_protocol::sheet::FlightSheet;
use compushare_protocol::types::{bounded, Amount, DeviceStatus, PublicKey, Role, TrustLevel};
use tokio::sync::oneshot;

use crate::outbox::Outbox;
use crate::store::{now_unix_s, Store, StoreError};
use store::FleetTables;

use compushare_protocol::hex::short;

/// Console lines relayed and not yet answered, node-wide.
pub const MAX_RELAYS: usize = 64;
/// How long a relayed console line waits for the rig's answer.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(15);

/// A connected rig as the fleet sees it.
struct Online {
    session: u64,
    farm: Option<String>,
    outbox: Outbox,
    name: String,
    firmware: String,
    last_seen_unix_s: u64,
    sheet: SheetState,
    devices: heapless::Vec<DeviceStatus, MAX_DEVICES>,
}

/// Why an action on a rig failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RigActionError {
    /// The rig has no session now.
    #[error("rig {0} is not connected")]
    Offline(String),
    /// The rig's send queue refused the message (it is not reading).
    #[error("rig {0} is not reading its session; try again")]
    QueueFull(String),
    /// [`MAX_RELAYS`] console lines are waiting for answers.
    #[error("too many console lines waiting for rigs; try again")]
    Busy,
    /// The rig did not answer within [`RELAY_TIMEOUT`].
    #[error("rig {0} did not answer within {RELAY_TIMEOUT:?}")]
    Timeout(String),
}

/// Why a rig's enrolment was refused (the session is refused with the reason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolError {
    /// The `FARM_KEY` is no farm's of this node.
    #[error("FARM_KEY is not the enrolment key of a farm on this node")]
    UnknownFarmKey,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters (exported in logs and tests).
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Sheets queued to rigs.
    pub pushed: AtomicU64,
    /// Sheets the rigs applied / refused.
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    /// Sheets that did not fit a rig's send queue (sent again on its next session).
    pub push_dropped: AtomicU64,
    /// Enrolments refused (unknown farm key).
    pub enrol_refused: AtomicU64,
}

/// The fleet's live state.
pub struct Fleet {
    store: Arc<Store>,
    online: Mutex<HashMap<PublicKey, Online>>,
    relays: Mutex<HashMap<u32, (PublicKey, oneshot::Sender<ConsoleReply>)>>,
    next_request: AtomicU32,
    next_session: AtomicU64,
    pub stats: FleetStats,
}

impl Fleet {
    /// The fleet of the node whose database is `store`.
    pub fn new(store: Arc<Store>) -> Fleet {
        Fleet {
            store,
            online: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            next_request: AtomicU32::new(1),
            next_session: AtomicU64::new(1),
            stats: FleetStats::default(),
        }
    }

    /// The database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn online(&self) -> MutexGuard<'_, HashMap<PublicKey, Online>> {
        self.online.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn relays(&self) -> MutexGuard<'_, HashMap<u32, (PublicKey, oneshot::Sender<ConsoleReply>)>> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enrols a rig that presents a `FARM_KEY` (before its Welcome): the farm it belongs to,
    /// or `None` for a rig without one (it runs on its own rig.conf).
    pub fn enrol(&self, rig: &PublicKey, hello: &RigHello) -> Result<Option<String>, EnrolError> {
        let Some(key) = hello.farm else {
            return Ok(None);
        };
        let read = self.store.read()?;
        let Some(farm) = read.farm_of_key(&key)? else {
            self.stats.enrol_refused.fetch_add(1, Ordering::Relaxed);
            return Err(EnrolError::UnknownFarmKey);
        };
        if read.enrolled(rig)?.as_deref() != Some(farm.as_str()) {
            drop(read);
            self.store.write(|tx| {
                use store::FleetWrites;
                tx.enrol(rig, &farm).map_err(|e| match e {
                    store::FleetError::Store(s) => s,
                    other => StoreError::Io {
                        path: "fleet".into(),
                        error: std::io::Error::other(other.to_string()),
                    },
                })
            })?;
            compushare_protocol::info!("rig {} enrolled in farm {farm}", short(rig));
        }
        Ok(Some(farm))
    }

    /// A rig's session started (after Welcome): registers it and, for a farm rig, queues its
    /// sheet. Returns the session's number for [`Fleet::rig_gone`].
    pub fn rig_joined(
        &self,
        rig: PublicKey,
        farm: Option<String>,
        hello: &RigHello,
        outbox: Outbox,
    ) -> u64 {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let entry = Online {
            session,
            farm: farm.clone(),
            outbox,
            name: hello.name.as_str().to_owned(),
            firmware: hello.firmware.as_str().to_owned(),
            last_seen_unix_s: now_unix_s(),
            sheet: match (&farm, hello.sheet) {
                (Some(_), Some(v)) => SheetState::Applied { version: v },
                _ => SheetState::None,
            },
            devices: heapless::Vec::new(),
        };
        self.online().insert(rig, entry);
        if let Some(f) = farm {
            self.push_rig(&rig, &f);
        }
        session
    }

    /// A rig's session ended (a newer session of the same rig is left alone).
    pub fn rig_gone(&self, rig: &PublicKey, session: u64) {
        let mut online = self.online();
        if online.get(rig).is_some_and(|o| o.session == session) {
            online.remove(rig);
        }
    }

    /// Notes a message from a rig. `true`: the fleet answered it (sheet results, relayed
    /// console replies), the market need not see it.
    pub fn rig_message(&self, rig: &PublicKey, m: &RigToManager) -> bool {
        let mut online = self.online();
        let Some(o) = online.get_mut(rig) else {
            return false;
        };
        o.last_seen_unix_s = now_unix_s();
        match m {
            RigToManager::Heartbeat(h) => {
                o.devices = h.devices.clone();
                false
            }
            RigToManager::SheetApplied { version } => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                compushare_protocol::info!("rig {} applied sheet v{version}", short(rig));
                o.sheet = SheetState::Applied { version: *version };
                true
            }
            RigToManager::SheetRefused { version, reason } => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                compushare_protocol::warn!(
                    "rig {} refused sheet v{version}: {}",
                    short(rig),
                    reason.as_str()
                );
                o.sheet = SheetState::Refused {
                    version: *version,
                    reason: reason.clone(),
                };
                true
            }
            RigToManager::ConsoleReply(r) => {
                drop(online);
                let waiting = {
                    let mut relays = self.relays();
                    match relays.get(&r.request) {
                        Some((k, _)) if k == rig => relays.remove(&r.request),
                        _ => None,
                    }
                };
                match waiting {
                    Some((_, tx)) => {
                        let _ = tx.send(r.clone());
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// Queues rig `rig`'s sheet of farm `farm` (if it is connected).
    fn push_rig(&self, rig: &PublicKey, farm: &str) -> bool {
        let sheet = match self.store.read().and_then(|r| r.sheet_for(farm, rig)) {
            Ok(Some(s)) => s,
            Ok(None) => return false,
            Err(e) => {
                compushare_protocol::warn!("sheet for rig {}: {e}", short(rig));
                return false;
            }
        };
        self.send_sheet(rig, sheet)
    }

    fn send_sheet(&self, rig: &PublicKey, sheet: FlightSheet) -> bool {
        let version = sheet.version;
        let mut online = self.online();
        let Some(o) = online.get_mut(rig) else {
            return false;
        };
        // A rig that holds this version already is told again (it answers at once): the
        // manager never guesses what the rig holds.
        match o.outbox.push(&ManagerToRig::Sheet(sheet)) {
            Ok(()) => {
                self.stats.pushed.fetch_add(1, Ordering::Relaxed);
                if !matches!(o.sheet, SheetState::Applied { version: v } if v == version) {
                    o.sheet = SheetState::Pushed { version };
                }
                true
            }
            Err(_) => {
                // The rig reconnects (the market drops a session whose queue refuses) and
                // gets the sheet on its next Welcome.
                self.stats.push_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues the current sheet to every connected rig of `farm`; returns how many.
    pub fn push_farm(&self, farm: &str) -> u32 {
        let rigs: Vec<PublicKey> = self
            .online()
            .iter()
            .filter(|(_, o)| o.farm.as_deref() == Some(farm))
            .map(|(k, _)| *k)
            .collect();
        // One read for the farm: every rig's sheet is the same version.
        let read = match self.store.read() {
            Ok(r) => r,
            Err(e) => {
                compushare_protocol::warn!("sheets of farm {farm}: {e}");
                return 0;
            }
        };
        let mut n = 0;
        for rig in rigs {
            match read.sheet_for(farm, &rig) {
                Ok(Some(s)) => n += u32::from(self.send_sheet(&rig, s)),
                Ok(None) => {}
                Err(e) => compushare_protocol::warn!("sheet for rig {}: {e}", short(&rig)),
            }
        }
        n
    }

    /// The farm of a connected rig (`None`: not connected; `Some(None)`: in no farm).
    pub fn farm_of_online(&self, rig: &PublicKey) -> Option<Option<String>> {
        self.online().get(rig).map(|o| o.farm.clone())
    }

    /// Rigs connected now, per farm name (`None`: no farm).
    pub fn online_counts(&self) -> HashMap<Option<String>, u32> {
        let mut m = HashMap::new();
        for o in self.online().values() {
            *m.entry(o.farm.clone()).or_insert(0) += 1;
        }
        m
    }

    /// Pins a device's role on a connected rig (the rig applies it like its console's).
    pub fn role(
        &self,
        rig: &PublicKey,
        device: Option<u8>,
        role: Role,
    ) -> Result<(), RigActionError> {
        let online = self.online();
        let o = online
            .get(rig)
            .ok_or_else(|| RigActionError::Offline(short(rig)))?;
        o.outbox
            .push(&ManagerToRig::RoleCommand { device, role })
            .map_err(|_| RigActionError::QueueFull(short(rig)))
    }

    /// Relays one console line to a connected rig and waits for its answer.
    pub async fn console(
        &self,
        rig: &PublicKey,
        line: heapless::String<CONSOLE_LINE>,
    ) -> Result<ConsoleReply, RigActionError> {
        let (tx, rx) = oneshot::channel();
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        {
            let mut relays = self.relays();
            if relays.len() >= MAX_RELAYS {
                return Err(RigActionError::Busy);
            }
            relays.insert(request, (*rig, tx));
        }
        let sent = {
            let online = self.online();
            match online.get(rig) {
                None => Err(RigActionError::Offline(short(rig))),
                Some(o) => o
                    .outbox
                    .push(&ManagerToRig::ConsoleCommand { request, line })
                    .map_err(|_| RigActionError::QueueFull(short(rig))),
            }
        };
        if let Err(e) = sent {
            self.relays().remove(&request);
            return Err(e);
        }
        let r = tokio::time::timeout(RELAY_TIMEOUT, rx).await;
        self.relays().remove(&request);
        match r {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(RigActionError::Timeout(short(rig))),
        }
    }

    /// Rigs as operators see them, in key order after `after`, at most `n`, of `farm` (or of
    /// every farm and none when `None`). Returns the page and whether more follow.
    pub fn rigs(
        &self,
        farm: Option<&str>,
        after: Option<PublicKey>,
        n: usize,
    ) -> Result<(Vec<RigSummary>, bool), StoreError> {
        let read = self.store.read()?;
        let mut keys: std::collections::BTreeMap<PublicKey, Option<String>> = read
            .enrolments()?
            .into_iter()
            .map(|(k, f)| (k, Some(f)))
            .collect();
        {
            let online = self.online();
            for (k, o) in online.iter() {
                keys.entry(*k).or_insert_with(|| o.farm.clone());
            }
        }
        let mut page = Vec::new();
        let mut more = false;
        for (key, f) in keys {
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            if farm.is_some() && f.as_deref() != farm {
                continue;
            }
            if page.len() == n {
                more = true;
                break;
            }
            let stored = read.rig(&key)?;
            let online = self.online();
            let o = online.get(&key);
            page.push(RigSummary {
                key,
                name: bounded(o.map_or("", |o| o.name.as_str())),
                farm: f.as_deref().map(bounded),
                online: o.is_some(),
                last_seen_unix_s: o
                    .map_or(stored.as_ref().map_or(0, |r| r.first_seen_unix_s), |o| {
                        o.last_seen_unix_s
                    }),
                firmware: bounded(o.map_or("", |o| o.firmware.as_str())),
                trust: stored.as_ref().map_or(TrustLevel::Untrusted, |r| r.trust),
                earned: Amount(stored.as_ref().map_or(0, |r| r.paid)),
                sheet: o.map_or(SheetState::None, |o| o.sheet.clone()),
                devices: o.map(|o| o.devices.clone()).unwrap_or_default(),
            });
        }
        Ok((page, more))
    }
}
