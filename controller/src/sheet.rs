//! The farm's flight sheet on the rig: what it says in rig.conf's language, how it lays over
//! rig.conf, and the copy kept in STATE_DIR.
//!
//! A sheet is turned into `KEY=VALUE` lines ([`lines`]) and parsed by rig.conf's own parser on
//! top of the file ([`RigConfig::with_sheet`]): one validation for both, every error naming
//! the key, and the precedence by construction (a key set in rig.conf wins; any `POOLn` in the
//! file keeps the file's whole pool list).
//!
//! The last applied sheet is kept in `STATE_DIR/sheet.bin` (magic, SHA-256 of the body, the
//! sheet as the canonical `ManagerToRig::Sheet` encoding), written to a temporary file, synced
//! and renamed over the old one, then the directory synced: a power cut leaves the old sheet
//! or the new one, never a mix. The rig reads it at start, so it mines with the last known
//! pools while its manager is down.

use std::io::Write;
use std::path::{Path, PathBuf};

use compushare_protocol::hex;
use compushare_protocol::msg::{self, ManagerToRig, MaxSize};
use compushare_protocol::sheet::{FlightSheet, SheetSettings};
use compushare_protocol::types::Role;
use sha2::{Digest as _, Sha256};

use crate::config::{ConfigError, RigConfig};

/// File name of the kept sheet inside STATE_DIR.
pub const SHEET_FILE: &str = "sheet.bin";
const MAGIC: &[u8; 8] = b"CSSHEET\x01";

/// Why the kept sheet could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SheetFileError {
    /// The file could not be read, written, synced or renamed.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not a sheet this firmware wrote, or its checksum does not match (torn or
    /// altered): the rig starts without it and takes the farm's sheet from its manager.
    #[error("{}: not a valid kept flight sheet ({why})", path.display())]
    Corrupt { path: PathBuf, why: &'static str },
}

/// The sheet's settings as rig.conf lines, in a fixed order.
pub fn lines(s: &SheetSettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(pools) = &s.pools {
        for (i, p) in pools.iter().enumerate() {
            let n = i + 1;
            out.push((format!("POOL{n}"), p.url.as_str().to_owned()));
            if !p.user.is_empty() {
                out.push((format!("POOL{n}_USER"), p.user.as_str().to_owned()));
            }
            if !p.pass.is_empty() {
                out.push((format!("POOL{n}_PASS"), p.pass.as_str().to_owned()));
            }
        }
    }
    if let Some(k) = &s.payout {
        out.push(("PAYOUT".into(), hex::encode(k)));
    }
    if let Some(roles) = &s.roles {
        let r: Vec<&str> = roles.iter().map(|r| role_word(*r)).collect();
        out.push(("ROLES".into(), r.join(",")));
    }
    if let Some(m) = s.switch_margin_ppm {
        out.push((
            "SWITCH_MARGIN".into(),
            format!("{}.{:06}", m / 1_000_000, m % 1_000_000),
        ));
    }
    if let Some(p) = s.min_price {
        out.push(("MIN_PRICE".into(), p.0.to_string()));
    }
    if let Some(keys) = &s.console_keys {
        let k: Vec<String> = keys.iter().map(|k| hex::encode(k)).collect();
        // An empty list is "nobody": rig.conf has no empty value, so it is left unset.
        if !k.is_empty() {
            out.push(("CONSOLE_KEYS".into(), k.join(",")));
        }
    }
    for (key, v) in [
        ("WATCHDOG_SICK_S", s.watchdog_sick_s),
        ("WATCHDOG_DEAD_S", s.watchdog_dead_s),
        ("TEMP_LIMIT_C", s.temp_limit_c.map(u32::from)),
        ("TEMP_RESUME_C", s.temp_resume_c.map(u32::from)),
    ] {
        if let Some(v) = v {
            out.push((key.into(), v.to_string()));
        }
    }
    for e in &s.extra {
        out.push((e.key.as_str().to_owned(), e.value.as_str().to_owned()));
    }
    out
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Auto => "auto",
        Role::Mine => "mine",
        Role::Transport => "transport",
        Role::Off => "off",
    }
}

/// rig.conf with `sheet` laid over it (see [`RigConfig::with_sheet`]); errors name the sheet
/// (`flight sheet FARM vN`) and the key.
pub fn overlay(
    conf: &RigConfig,
    sheet: &FlightSheet,
) -> Result<(RigConfig, Vec<String>), ConfigError> {
    let origin = PathBuf::from(format!(
        "flight sheet {} v{}",
        sheet.farm.as_str(),
        sheet.version
    ));
    sheet.settings.check().map_err(|p| ConfigError::Line {
        path: origin.clone(),
        line: 0,
        key: String::new(),
        problem: crate::config::Problem::Invalid {
            expected: sheet_problem(p),
        },
        value: None,
    })?;
    conf.with_sheet(&origin, &lines(&sheet.settings))
}

fn sheet_problem(p: compushare_protocol::sheet::SheetProblem) -> &'static str {
    use compushare_protocol::sheet::SheetProblem as P;
    match p {
        P::NoPools => "at least one pool when pools are set",
        P::NoRoles => "at least one role when roles are set",
        P::MarginAboveOne => "a switch margin between 0 and 1",
        P::ResumeNotBelowLimit => "TEMP_RESUME_C below TEMP_LIMIT_C",
        P::DeadNotAboveSick => "WATCHDOG_DEAD_S more than WATCHDOG_SICK_S",
        P::ZeroLimit { .. } => "limits above 0",
        P::BadKey => "rig.conf key names (A-Z, 0-9, _)",
        P::DuplicateKey => "each setting once",
        _ => "a sheet this firmware can read",
    }
}

/// Reads the kept sheet in `dir` (`Ok(None)` when there is none).
pub fn load(dir: &Path) -> Result<Option<FlightSheet>, SheetFileError> {
    let path = dir.join(SHEET_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(SheetFileError::Io { path, error }),
    };
    let corrupt = |why| SheetFileError::Corrupt {
        path: path.clone(),
        why,
    };
    if bytes.len() > MAGIC.len() + 32 + ManagerToRig::POSTCARD_MAX_SIZE {
        return Err(corrupt("too large"));
    }
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("no header"))?;
    let (sum, body) = body.split_at_checked(32).ok_or_else(|| corrupt("short"))?;
    if Sha256::digest(body).as_slice() != sum {
        return Err(corrupt("checksum mismatch"));
    }
    match msg::decode::<ManagerToRig>(body) {
        Ok(ManagerToRig::Sheet(s)) => Ok(Some(s)),
        _ => Err(corrupt("not a sheet")),
    }
}

/// Keeps `sheet` in `dir`, replacing the one there atomically (see the module's notes).
pub fn store(dir: &Path, sheet: &FlightSheet) -> Result<(), SheetFileError> {
    let path = dir.join(SHEET_FILE);
    let tmp = dir.join(format!("{SHEET_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |error| SheetFileError::Io { path: p, error }
    };
    let mut buf = vec![0u8; ManagerToRig::POSTCARD_MAX_SIZE];
    let m = ManagerToRig::Sheet(sheet.clone());
    let body = msg::encode(&m, &mut buf).map_err(|_| SheetFileError::Corrupt {
        path: path.clone(),
        why: "does not encode",
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(MAGIC).map_err(io(&tmp))?;
    f.write_all(&Sha256::digest(&*body)).map_err(io(&tmp))?;
    f.write_all(body).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    // The rename itself is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}
