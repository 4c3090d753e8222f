//! The node's money and terms as an operator reads and sets them on a running node: the
//! ledger's summary (`admin ledger`) and the market settings (`admin settings`): the fee, the
//! price per cost unit and the credit value.
//!
//! Settings are the stored [`Config`]'s fields, changed in one transaction and validated by
//! [`Config::validate`] (the error names the field) before anything is written; the caller
//! then gives them to the running market ([`crate::market::Market::set_terms`]). A job keeps
//! the fee and price it was accepted with (its record holds them), so a change reaches jobs
//! submitted after it only. Connected rigs are told a new credit value at once
//! (`ManagerToRig::CreditValue`), rigs that connect later in `Welcome`.

use compushare_protocol::msg::{LedgerReport, NodeSettings, SettingsChange};
use compushare_protocol::types::bounded;

use crate::config::{Config, ConfigError};
use crate::ledger::Head;
use crate::store::{Store, StoreError, META_HEAD};

/// Why settings were not changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is out of range (the error names the field); nothing was written.
    #[error(transparent)]
    Invalid(ConfigError),
    /// The database failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The settings an operator sees, from the stored config.
pub fn shown(c: &Config) -> NodeSettings {
    NodeSettings {
        fee_bp: c.fee_bp,
        price_per_unit: c.price_per_unit,
        credit_msat: c.credit_msat,
    }
}

/// Applies `change` to the stored config (validated first; one durable transaction) and
/// returns the new config.
pub fn set(store: &Store, change: SettingsChange) -> Result<Config, SettingsError> {
    store.write(|tx| {
        let mut c = tx.config().clone();
        if let Some(v) = change.fee_bp {
            c.fee_bp = v;
        }
        if let Some(v) = change.price_per_unit {
            c.price_per_unit = v;
        }
        if let Some(v) = change.credit_msat {
            c.credit_msat = v;
        }
        c.validate().map_err(SettingsError::Invalid)?;
        tx.set_config(c.clone())?;
        Ok(c)
    })
}

fn sat(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The ledger's summary: [`crate::ledger::verify`]'s recomputed totals when it passes; when
/// it does not, the fault, and the head as stored.
pub fn ledger(store: &Store) -> Result<LedgerReport, StoreError> {
    let read = store.read()?;
    match crate::ledger::verify(&read) {
        Ok(s) => Ok(LedgerReport {
            entries: s.entries,
            head: s.head,
            verified: true,
            fault: bounded(""),
            granted: sat(s.granted),
            clients: sat(s.totals.clients),
            escrow: sat(s.totals.escrow),
            pending: sat(s.totals.pending),
            spendable: sat(s.totals.spendable),
            fees: sat(s.totals.fees),
            paid: sat(s.totals.paid),
            refunded: sat(s.totals.refunded),
            forfeited: sat(s.totals.forfeited),
        }),
        Err(crate::ledger::LedgerFault::Store(e)) => Err(e),
        Err(fault) => {
            compushare_protocol::warn!("ledger summary: verification failed: {fault}");
            let head: Head = read.meta(META_HEAD)?.unwrap_or_else(Head::genesis);
            Ok(LedgerReport {
                entries: head.next_seq,
                head: head.hash,
                verified: false,
                fault: bounded(&fault.to_string()),
                granted: 0,
                clients: 0,
                escrow: 0,
                pending: 0,
                spendable: 0,
                fees: 0,
                paid: 0,
                refunded: 0,
                forfeited: 0,
            })
        }
    }
}
