//! A farm's flight sheet: the rig settings a management node keeps for a farm and pushes to
//! every rig enrolled in it (HiveOS's habit: the stick holds only the manager and a farm key).
//!
//! [`SheetSettings`] is one partial set of rig.conf settings: every field is optional, and a
//! field left `None` says nothing. The same type serves as a farm's sheet and as a per-rig
//! override (stored apart, keyed by rig key); what a rig receives is the farm's sheet with its
//! override laid over it ([`SheetSettings::overlay`]), numbered by the farm's sheet version.
//! On the rig, a key set in rig.conf wins over the sheet for that rig.
//!
//! Everything is bounded (heapless, capacities in [`crate::limits`]) and decodes canonically
//! like every message. [`SheetSettings::check`] refuses what no rig could apply whatever its
//! rig.conf (a margin above 1, a resume temperature at or above the limit, an empty pool
//! list, a malformed key name); what only a rig can judge (pool URL syntax, keys its firmware
//! does not know, a conflict with its own rig.conf) the rig refuses with a reason.

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::limits::{
    MAX_DEVICES, POOL_PASS_LEN, POOL_URL_LEN, POOL_USER_LEN, SETTING_KEY_LEN, SETTING_VALUE_LEN,
    SHEET_CONSOLE_KEYS, SHEET_EXTRA, SHEET_POOLS,
};
use crate::types::{Amount, Name, PublicKey, Role};

/// A farm's enrolment key (rig.conf's `FARM_KEY`): a random secret the manager hands out at
/// `farm create`. Whoever holds it can enrol a rig into the farm, so it travels only inside
/// the Noise session and the manager stores only its SHA-256.
pub type FarmKey = [u8; 32];

/// One mining pool of a sheet (rig.conf's `POOLn`, `POOLn_USER`, `POOLn_PASS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct SheetPool {
    pub url: String<POOL_URL_LEN>,
    pub user: String<POOL_USER_LEN>,
    pub pass: String<POOL_PASS_LEN>,
}

/// Another rig.conf setting by name (for keys without a field here, such as `SWITCH_DWELL_S`
/// or `POOL_FEE`): the rig parses it as rig.conf would and refuses the sheet, naming the key,
/// when its firmware does not know it or cannot apply it while running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Setting {
    pub key: String<SETTING_KEY_LEN>,
    pub value: String<SETTING_VALUE_LEN>,
}

/// A partial set of rig settings (a farm's sheet, or one rig's override). `None`: not set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct SheetSettings {
    /// Pools in failover order (`POOL1`, `POOL2`, ...): the whole list is one setting.
    pub pools: Option<Vec<SheetPool, SHEET_POOLS>>,
    /// `PAYOUT`: the worker account the rigs' transport earnings go to.
    pub payout: Option<PublicKey>,
    /// `ROLES`: one role for every device, or one per device in index order.
    pub roles: Option<Vec<Role, MAX_DEVICES>>,
    /// `SWITCH_MARGIN`, in parts per million (50,000 = 0.05).
    pub switch_margin_ppm: Option<u32>,
    /// `MIN_PRICE`: the lowest price per cost unit the rigs bid for, micro-credits.
    pub min_price: Option<Amount>,
    /// `CONSOLE_KEYS`: operators allowed on the rigs' network consoles.
    pub console_keys: Option<Vec<PublicKey, SHEET_CONSOLE_KEYS>>,
    /// `WATCHDOG_SICK_S`, `WATCHDOG_DEAD_S`.
    pub watchdog_sick_s: Option<u32>,
    pub watchdog_dead_s: Option<u32>,
    /// `TEMP_LIMIT_C`, `TEMP_RESUME_C`.
    pub temp_limit_c: Option<u8>,
    pub temp_resume_c: Option<u8>,
    /// Other rig.conf keys by name (empty: none).
    pub extra: Vec<Setting, SHEET_EXTRA>,
}

/// What a rig receives: its farm's sheet with its own override laid over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct FlightSheet {
    /// The farm's name.
    pub farm: Name,
    /// The farm's sheet version: it grows with every change to the farm's sheet or to any of
    /// its overrides, so a rig holding version `v` holds exactly what the manager stored as `v`.
    pub version: u64,
    pub settings: SheetSettings,
}

/// Why a sheet cannot be applied by any rig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SheetProblem {
    /// `pools` is set but lists none.
    NoPools,
    /// `roles` is set but lists none.
    NoRoles,
    /// `switch_margin_ppm` is above 1,000,000 (a margin above 1).
    MarginAboveOne,
    /// `temp_resume_c` is not below `temp_limit_c`.
    ResumeNotBelowLimit,
    /// `watchdog_dead_s` is not above `watchdog_sick_s`.
    DeadNotAboveSick,
    /// A limit is zero.
    ZeroLimit { field: &'static str },
    /// An `extra` key is empty or not of rig.conf's form (`A-Z`, `0-9`, `_`).
    BadKey,
    /// An `extra` key appears twice, or names a setting that has a field of its own.
    DuplicateKey,
}

impl core::fmt::Display for SheetProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SheetProblem::NoPools => write!(f, "pools: set but empty"),
            SheetProblem::NoRoles => write!(f, "roles: set but empty"),
            SheetProblem::MarginAboveOne => write!(f, "switch margin: above 1"),
            SheetProblem::ResumeNotBelowLimit => {
                write!(f, "TEMP_RESUME_C must be below TEMP_LIMIT_C")
            }
            SheetProblem::DeadNotAboveSick => {
                write!(f, "WATCHDOG_DEAD_S must be more than WATCHDOG_SICK_S")
            }
            SheetProblem::ZeroLimit { field } => write!(f, "{field}: must not be 0"),
            SheetProblem::BadKey => write!(f, "extra: a key must be rig.conf's A-Z, 0-9 and _"),
            SheetProblem::DuplicateKey => write!(
                f,
                "extra: a key set twice, or one the sheet has a field for"
            ),
        }
    }
}

/// rig.conf keys that have a field of their own in [`SheetSettings`] (an `extra` entry may not
/// name them, so a sheet says each thing once).
pub const FIELD_KEYS: &[&str] = &[
    "PAYOUT",
    "ROLES",
    "SWITCH_MARGIN",
    "MIN_PRICE",
    "CONSOLE_KEYS",
    "WATCHDOG_SICK_S",
    "WATCHDOG_DEAD_S",
    "TEMP_LIMIT_C",
    "TEMP_RESUME_C",
];

impl SheetSettings {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == SheetSettings::default()
    }

    /// `self` with every field `over` sets replaced by `over`'s (extra keys merged by name,
    /// `over`'s winning; those that do not fit are left out, which [`SheetSettings::check`]
    /// cannot see, so callers bound the sum first).
    pub fn overlay(&self, over: &SheetSettings) -> SheetSettings {
        let mut extra = over.extra.clone();
        for s in &self.extra {
            if !over.extra.iter().any(|o| o.key == s.key) {
                let _ = extra.push(s.clone());
            }
        }
        SheetSettings {
            pools: over.pools.clone().or_else(|| self.pools.clone()),
            payout: over.payout.or(self.payout),
            roles: over.roles.clone().or_else(|| self.roles.clone()),
            switch_margin_ppm: over.switch_margin_ppm.or(self.switch_margin_ppm),
            min_price: over.min_price.or(self.min_price),
            console_keys: over
                .console_keys
                .clone()
                .or_else(|| self.console_keys.clone()),
            watchdog_sick_s: over.watchdog_sick_s.or(self.watchdog_sick_s),
            watchdog_dead_s: over.watchdog_dead_s.or(self.watchdog_dead_s),
            temp_limit_c: over.temp_limit_c.or(self.temp_limit_c),
            temp_resume_c: over.temp_resume_c.or(self.temp_resume_c),
            extra,
        }
    }

    /// Refuses what no rig could apply (see the module's notes for what is left to the rig).
    pub fn check(&self) -> Result<(), SheetProblem> {
        if self.pools.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(SheetProblem::NoPools);
        }
        if self.roles.as_ref().is_some_and(|r| r.is_empty()) {
            return Err(SheetProblem::NoRoles);
        }
        if self.switch_margin_ppm.is_some_and(|m| m > 1_000_000) {
            return Err(SheetProblem::MarginAboveOne);
        }
        for (field, v) in [
            ("WATCHDOG_SICK_S", self.watchdog_sick_s),
            ("WATCHDOG_DEAD_S", self.watchdog_dead_s),
            ("TEMP_LIMIT_C", self.temp_limit_c.map(u32::from)),
            ("TEMP_RESUME_C", self.temp_resume_c.map(u32::from)),
        ] {
            if v == Some(0) {
                return Err(SheetProblem::ZeroLimit { field });
            }
        }
        if let (Some(limit), Some(resume)) = (self.temp_limit_c, self.temp_resume_c) {
            if resume >= limit {
                return Err(SheetProblem::ResumeNotBelowLimit);
            }
        }
        if let (Some(sick), Some(dead)) = (self.watchdog_sick_s, self.watchdog_dead_s) {
            if dead <= sick {
                return Err(SheetProblem::DeadNotAboveSick);
            }
        }
        for (i, s) in self.extra.iter().enumerate() {
            let well_formed = !s.key.is_empty()
                && s.key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                return Err(SheetProblem::BadKey);
            }
            let is_pool = s
                .key
                .strip_prefix("POOL")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
            if is_pool
                || FIELD_KEYS.contains(&s.key.as_str())
                || self.extra.iter().skip(i + 1).any(|o| o.key == s.key)
            {
                return Err(SheetProblem::DuplicateKey);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> Setting {
        Setting {
            key: crate::types::bounded(key),
            value: crate::types::bounded(value),
        }
    }

    #[test]
    fn check_refuses_what_no_rig_could_apply() {
        let ok = SheetSettings {
            temp_limit_c: Some(85),
            temp_resume_c: Some(70),
            extra: Vec::from_slice(&[setting("POOL_FEE", "0.01"), setting("SWITCH_DWELL_S", "10")])
                .unwrap_or_default(),
            ..SheetSettings::default()
        };
        assert_eq!(ok.check(), Ok(()));
        let cases = [
            (
                SheetSettings {
                    pools: Some(Vec::new()),
                    ..Default::default()
                },
                SheetProblem::NoPools,
            ),
            (
                SheetSettings {
                    switch_margin_ppm: Some(1_000_001),
                    ..Default::default()
                },
                SheetProblem::MarginAboveOne,
            ),
            (
                SheetSettings {
                    temp_limit_c: Some(70),
                    temp_resume_c: Some(70),
                    ..Default::default()
                },
                SheetProblem::ResumeNotBelowLimit,
            ),
            (
                SheetSettings {
                    watchdog_sick_s: Some(60),
                    watchdog_dead_s: Some(60),
                    ..Default::default()
                },
                SheetProblem::DeadNotAboveSick,
            ),
            (
                SheetSettings {
                    watchdog_sick_s: Some(0),
                    ..Default::default()
                },
                SheetProblem::ZeroLimit {
                    field: "WATCHDOG_SICK_S",
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.check(), Err(want));
        }
        for (key, want) in [
            ("pool_fee", SheetProblem::BadKey),
            ("", SheetProblem::BadKey),
            ("POOL1", SheetProblem::DuplicateKey),
            ("PAYOUT", SheetProblem::DuplicateKey),
        ] {
            let s = SheetSettings {
                extra: Vec::from_slice(&[setting(key, "x")]).unwrap_or_default(),
                ..Default::default()
            };
            assert_eq!(s.check(), Err(want), "{key}");
        }
        let twice = SheetSettings {
            extra: Vec::from_slice(&[setting("POOL_FEE", "0"), setting("POOL_FEE", "0.1")])
                .unwrap_or_default(),
            ..Default::default()
        };
        assert_eq!(twice.check(), Err(SheetProblem::DuplicateKey));
    }
}
