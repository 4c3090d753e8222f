//! Farms, flight sheets, enrolments, operators and the audit table, in the node's redb
//! database next to the market's tables.
//!
//! Every change is one write transaction: a farm's sheet or a rig's override is stored
//! together with the farm's new version, so a `kill -9` mid-change leaves the old sheet and
//! version or the new ones, never a mix. What a rig receives is computed from these tables at
//! the moment it is sent ([`FleetTables::sheet_for`]).

use compushare_protocol::msg::{AuditRecord, Scope};
use compushare_protocol::sheet::{FarmKey, FlightSheet, SheetSettings};
use compushare_protocol::types::{bounded, PublicKey};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::codec;
use crate::store::{ReadTx, StoreError, WriteTx};

/// Farm name to encoded [`FarmRecord`].
pub const FARMS: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet_farms");
/// SHA-256 of a farm enrolment key (32 bytes) to the farm's name.
pub const FARM_KEYS: TableDefinition<&[u8], &str> = TableDefinition::new("fleet_farm_keys");
/// Rig key (32 bytes) to the farm it enrolled in.
pub const ENROLLED: TableDefinition<&[u8], &str> = TableDefinition::new("fleet_enrolled");
/// Rig key (32 bytes) to its encoded override ([`SheetSettings`]) of its farm's sheet.
pub const OVERRIDES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fleet_overrides");
/// Operator key (32 bytes) to its encoded [`Scope`].
pub const OPERATORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fleet_operators");
/// Sequence number to encoded [`AuditRecord`]: every admin request, allowed or not.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("fleet_audit");

/// Most farms a node keeps (a farm is a few KiB; the limit keeps a list one page).
pub const MAX_FARMS: usize = compushare_protocol::limits::FARMS_PER_PAGE;
/// Most audit records kept; the oldest are dropped first (each is < 1 KiB).
pub const MAX_AUDIT: u64 = 1_000_000;

/// A farm as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmRecord {
    /// SHA-256 of its enrolment key (the key itself is shown once, at creation).
    pub key_hash: [u8; 32],
    /// Grows with every change to the sheet or an override.
    pub version: u64,
    pub sheet: SheetSettings,
    pub created_unix_s: u64,
}

/// Why a fleet change was refused (the store's own failures aside).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No farm of this name.
    #[error("no farm named {0:?}")]
    UnknownFarm(String),
    /// A farm of this name exists.
    #[error("a farm named {0:?} exists")]
    FarmExists(String),
    /// The node holds [`MAX_FARMS`] farms.
    #[error("this node holds {MAX_FARMS} farms, the most it keeps")]
    TooManyFarms,
    /// The name is empty or has characters other than letters, digits, `.`, `_`, `-`.
    #[error("farm name {0:?}: 1 to 48 letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// The sheet cannot be applied by any rig.
    #[error("sheet: {0}")]
    BadSheet(compushare_protocol::sheet::SheetProblem),
    /// The rig is not enrolled in this farm.
    #[error("rig {0} is not in farm {1:?}")]
    NotInFarm(String, String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn db(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: "fleet tables".into(),
        error: Box::new(e.into()),
    }
}

fn corrupt(table: &'static str, key: &str, source: codec::CodecError) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        source,
    }
}

/// The hash under which an enrolment key is stored.
pub fn key_hash(key: &FarmKey) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// A farm name is what an operator types: short, no spaces, no path characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= compushare_protocol::limits::NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Read access to the fleet tables (a missing table reads as empty: a node from before
/// flight sheets has none until its first change).
pub trait FleetTables {
    fn rtx(&self) -> Tables<'_>;

    /// A farm by name.
    fn farm(&self, name: &str) -> Result<Option<FarmRecord>, StoreError> {
        self.rtx().farm(name)
    }

    /// Every farm, by name.
    fn farms(&self) -> Result<Vec<(String, FarmRecord)>, StoreError> {
        self.rtx().farms()
    }

    /// The farm an enrolment key belongs to.
    fn farm_of_key(&self, key: &FarmKey) -> Result<Option<String>, StoreError> {
        self.rtx().farm_of_key(key)
    }

    /// The farm a rig enrolled in.
    fn enrolled(&self, rig: &PublicKey) -> Result<Option<String>, StoreError> {
        self.rtx().enrolled(rig)
    }

    /// Every enrolment (rig, farm).
    fn enrolments(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
        self.rtx().enrolments()
    }

    /// A rig's override.
    fn override_of(&self, rig: &PublicKey) -> Result<Option<SheetSettings>, StoreError> {
        self.rtx().override_of(rig)
    }

    /// An operator's scope.
    fn operator(&self, key: &PublicKey) -> Result<Option<Scope>, StoreError> {
        self.rtx().operator(key)
    }

    /// What rig `rig` of farm `farm` receives: the farm's sheet with the rig's override.
    fn sheet_for(&self, farm: &str, rig: &PublicKey) -> Result<Option<FlightSheet>, StoreError> {
        let Some(f) = self.farm(farm)? else {
            return Ok(None);
        };
        let settings = match self.override_of(rig)? {
            Some(o) => f.sheet.overlay(&o),
            None => f.sheet,
        };
        Ok(Some(FlightSheet {
            farm: bounded(farm),
            version: f.version,
            settings,
        }))
    }

    /// Audit records from sequence number `from`, at most `n`.
    fn audit(&self, from: u64, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.rtx().audit(from, n)
    }
}

/// The fleet tables open in one read or write transaction.
pub enum Tables<'a> {
    Read(&'a redb::ReadTransaction),
    Write(&'a redb::WriteTransaction),
}

macro_rules! with_table {
    ($t:expr, $def:expr, |$tab:ident| $body:expr, $empty:expr) => {
        match $t {
            Tables::Read(r) => match r.open_table($def) {
                Ok($tab) => {
                    let out = $body;
                    out
                }
                Err(redb::TableError::TableDoesNotExist(_)) => Ok($empty),
                Err(e) => Err(db(e)),
            },
            Tables::Write(w) => {
                let $tab = w.open_table($def).map_err(db)?;
                let out = $body;
                out
            }
        }
    };
}

impl Tables<'_> {
    fn farm(&self, name: &str) -> Result<Option<FarmRecord>, StoreError> {
        with_table!(
            self,
            FARMS,
            |t| match t.get(name).map_err(db)? {
                Some(v) => codec::decode::<FarmRecord>("farm", v.value())
                    .map(Some)
                    .map_err(|e| corrupt("fleet_farms", name, e)),
                None => Ok(None),
            },
            None
        )
    }

    fn farms(&self) -> Result<Vec<(String, FarmRecord)>, StoreError> {
        with_table!(
            self,
            FARMS,
            |t| {
                let mut out = Vec::new();
                for row in t.iter().map_err(db)? {
                    let (k, v) = row.map_err(db)?;
                    let name = k.value().to_owned();
                    let f = codec::decode::<FarmRecord>("farm", v.value())
                        .map_err(|e| corrupt("fleet_farms", &name, e))?;
                    out.push((name, f));
                }
                Ok(out)
            },
            Vec::new()
        )
    }

    fn farm_of_key(&self, key: &FarmKey) -> Result<Option<String>, StoreError> {
        let h = key_hash(key);
        with_table!(
            self,
            FARM_KEYS,
            |t| Ok(t
                .get(h.as_slice())
                .map_err(db)?
                .map(|v| v.value().to_owned())),
            None
        )
    }

    fn enrolled(&self, rig: &PublicKey) -> Result<Option<String>, StoreError> {
        with_table!(
            self,
            ENROLLED,
            |t| Ok(t
                .get(rig.as_slice())
                .map_err(db)?
                .map(|v| v.value().to_owned())),
            None
        )
    }

    fn enrolments(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
        with_table!(
            self,
            ENROLLED,
            |t| {
                let mut out = Vec::new();
                for row in t.iter().map_err(db)? {
                    let (k, v) = row.map_err(db)?;
                    if let Ok(key) = <PublicKey>::try_from(k.value()) {
                        out.push((key, v.value().to_owned()));
                    }
                }
                Ok(out)
            },
            Vec::new()
        )
    }

    fn override_of(&self, rig: &PublicKey) -> Result<Option<SheetSettings>, StoreError> {
        with_table!(
            self,
            OVERRIDES,
            |t| match t.get(rig.as_slice()).map_err(db)? {
                Some(v) => codec::decode::<SheetSettings>("override", v.value())
                    .map(Some)
                    .map_err(|e| corrupt("fleet_overrides", "rig", e)),
                None => Ok(None),
            },
            None
        )
    }

    fn operator(&self, key: &PublicKey) -> Result<Option<Scope>, StoreError> {
        with_table!(
            self,
            OPERATORS,
            |t| match t.get(key.as_slice()).map_err(db)? {
                Some(v) => codec::decode::<Scope>("operator", v.value())
                    .map(Some)
                    .map_err(|e| corrupt("fleet_operators", "operator", e)),
                None => Ok(None),
            },
            None
        )
    }

    fn audit(&self, from: u64, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        with_table!(
            self,
            AUDIT,
            |t| {
                let mut out = Vec::new();
                for row in t.range(from..).map_err(db)?.take(n) {
                    let (_, v) = row.map_err(db)?;
                    out.push(
                        codec::decode::<AuditRecord>("audit", v.value())
                            .map_err(|e| corrupt("fleet_audit", "record", e))?,
                    );
                }
                Ok(out)
            },
            Vec::new()
        )
    }
}

impl FleetTables for ReadTx {
    fn rtx(&self) -> Tables<'_> {
        Tables::Read(self.redb())
    }
}

impl FleetTables for WriteTx {
    fn rtx(&self) -> Tables<'_> {
        Tables::Write(self.redb())
    }
}

fn enc<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(what, v).map_err(|e| corrupt("fleet", what, e))
}

/// Fleet changes inside one [`WriteTx`].
pub trait FleetWrites: FleetTables {
    /// Creates farm `name` with an empty sheet (version 1) and enrolment key `key`.
    fn create_farm(&mut self, name: &str, key: &FarmKey, now: u64) -> Result<(), FleetError>;
    /// Replaces a farm's sheet; returns the new version.
    fn set_sheet(&mut self, name: &str, sheet: &SheetSettings) -> Result<u64, FleetError>;
    /// Sets or removes a rig's override; returns the farm's new version.
    fn set_override(
        &mut self,
        farm: &str,
        rig: &PublicKey,
        over: Option<&SheetSettings>,
    ) -> Result<u64, FleetError>;
    /// Enrols `rig` in `farm` (a rig moves when it presents another farm's key).
    fn enrol(&mut self, rig: &PublicKey, farm: &str) -> Result<(), FleetError>;
    /// Sets or removes an operator.
    fn set_operator(&mut self, key: &PublicKey, scope: Option<&Scope>) -> Result<(), FleetError>;
    /// Appends an audit record (its `seq` is assigned here); returns it.
    fn append_audit(&mut self, record: AuditRecord) -> Result<u64, FleetError>;
}

impl FleetWrites for WriteTx {
    fn create_farm(&mut self, name: &str, key: &FarmKey, now: u64) -> Result<(), FleetError> {
        if !valid_name(name) {
            return Err(FleetError::BadName(name.to_owned()));
        }
        if self.farm(name)?.is_some() {
            return Err(FleetError::FarmExists(name.to_owned()));
        }
        if self.farms()?.len() >= MAX_FARMS {
            return Err(FleetError::TooManyFarms);
        }
        let rec = FarmRecord {
            key_hash: key_hash(key),
            version: 1,
            sheet: SheetSettings::default(),
            created_unix_s: now,
        };
        let bytes = enc("farm", &rec)?;
        let w = self.redb();
        w.open_table(FARMS)
            .map_err(db)?
            .insert(name, bytes.as_slice())
            .map_err(db)?;
        w.open_table(FARM_KEYS)
            .map_err(db)?
            .insert(rec.key_hash.as_slice(), name)
            .map_err(db)?;
        Ok(())
    }

    fn set_sheet(&mut self, name: &str, sheet: &SheetSettings) -> Result<u64, FleetError> {
        sheet.check().map_err(FleetError::BadSheet)?;
        let mut f = self
            .farm(name)?
            .ok_or_else(|| FleetError::UnknownFarm(name.to_owned()))?;
        f.version = f.version.saturating_add(1);
        f.sheet = sheet.clone();
        let bytes = enc("farm", &f)?;
        self.redb()
            .open_table(FARMS)
            .map_err(db)?
            .insert(name, bytes.as_slice())
            .map_err(db)?;
        Ok(f.version)
    }

    fn set_override(
        &mut self,
        farm: &str,
        rig: &PublicKey,
        over: Option<&SheetSettings>,
    ) -> Result<u64, FleetError> {
        let mut f = self
            .farm(farm)?
            .ok_or_else(|| FleetError::UnknownFarm(farm.to_owned()))?;
        if self.enrolled(rig)?.as_deref() != Some(farm) {
            return Err(FleetError::NotInFarm(
                compushare_protocol::hex::short(rig),
                farm.to_owned(),
            ));
        }
        if let Some(o) = over {
            o.check().map_err(FleetError::BadSheet)?;
            f.sheet.overlay(o).check().map_err(FleetError::BadSheet)?;
        }
        f.version = f.version.saturating_add(1);
        let bytes = enc("farm", &f)?;
        let w = self.redb();
        {
            let mut t = w.open_table(OVERRIDES).map_err(db)?;
            match over {
                Some(o) => {
                    let ob = enc("override", o)?;
                    t.insert(rig.as_slice(), ob.as_slice()).map_err(db)?;
                }
                None => {
                    t.remove(rig.as_slice()).map_err(db)?;
                }
            }
        }
        w.open_table(FARMS)
            .map_err(db)?
            .insert(farm, bytes.as_slice())
            .map_err(db)?;
        Ok(f.version)
    }

    fn enrol(&mut self, rig: &PublicKey, farm: &str) -> Result<(), FleetError> {
        let w = self.redb();
        let moved = {
            let mut t = w.open_table(ENROLLED).map_err(db)?;
            let old = t
                .insert(rig.as_slice(), farm)
                .map_err(db)?
                .map(|v| v.value().to_owned());
            old.is_some_and(|o| o != farm)
        };
        // An override belongs to the farm that set it.
        if moved {
            w.open_table(OVERRIDES)
                .map_err(db)?
                .remove(rig.as_slice())
                .map_err(db)?;
        }
        Ok(())
    }

    fn set_operator(&mut self, key: &PublicKey, scope: Option<&Scope>) -> Result<(), FleetError> {
        let w = self.redb();
        let mut t = w.open_table(OPERATORS).map_err(db)?;
        match scope {
            Some(s) => {
                let b = enc("operator", s)?;
                t.insert(key.as_slice(), b.as_slice()).map_err(db)?;
            }
            None => {
                t.remove(key.as_slice()).map_err(db)?;
            }
        }
        Ok(())
    }

    fn append_audit(&mut self, mut record: AuditRecord) -> Result<u64, FleetError> {
        let w = self.redb();
        let mut t = w.open_table(AUDIT).map_err(db)?;
        let seq = t
            .last()
            .map_err(db)?
            .map_or(0, |(k, _)| k.value().saturating_add(1));
        record.seq = seq;
        let b = enc("audit", &record)?;
        t.insert(seq, b.as_slice()).map_err(db)?;
        // Bounded: the oldest record goes when the table is full.
        if seq >= MAX_AUDIT {
            t.remove(seq - MAX_AUDIT).map_err(db)?;
        }
        Ok(seq)
    }
}
