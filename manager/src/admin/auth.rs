//! Who may do what: every admin request is checked on its own against the operator's scope.
//!
//! A node operator (`manager init --operator KEY`, or `admin operator add KEY`) may do
//! everything. A farm operator (`admin operator add KEY --farm NAME`) may read and change its
//! farm's sheet and overrides, list its farm's rigs, pin their roles and use their consoles;
//! nothing about money, operators, the audit table, other farms or their rigs, and nothing
//! about client jobs, the ledger or the node's settings (those are the node's business, not a
//! farm's: a farm operator sees no client's jobs). A request for
//! a rig is judged by the farm the rig is enrolled in (the store's record, not what the rig
//! says now).

use compushare_protocol::msg::{AdminToManager, Scope};
use compushare_protocol::types::PublicKey;

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The request needs a node operator.
    #[error("{0} needs a node operator")]
    NodeOnly(&'static str),
    /// The farm is not the operator's.
    #[error("farm {0:?} is not yours")]
    OtherFarm(String),
    /// The rig is not in the operator's farm (or in no farm).
    #[error("rig {0} is not in your farm")]
    OtherRig(String),
    /// A second Hello.
    #[error("Hello after the session started")]
    Hello,
}

/// Decides `req` for an operator of `scope`; `rig_farm` gives the farm a rig is enrolled in.
pub fn authorise(
    scope: &Scope,
    req: &AdminToManager,
    rig_farm: impl Fn(&PublicKey) -> Option<String>,
) -> Result<(), Denied> {
    let mine = match scope {
        Scope::Node => {
            return match req {
                AdminToManager::Hello { .. } => Err(Denied::Hello),
                _ => Ok(()),
            }
        }
        Scope::Farm(f) => f.as_str(),
    };
    let farm = |name: &str| {
        if name == mine {
            Ok(())
        } else {
            Err(Denied::OtherFarm(name.to_owned()))
        }
    };
    let rig = |key: &PublicKey| {
        if rig_farm(key).as_deref() == Some(mine) {
            Ok(())
        } else {
            Err(Denied::OtherRig(compushare_protocol::hex::short(key)))
        }
    };
    match req {
        AdminToManager::Hello { .. } => Err(Denied::Hello),
        AdminToManager::FarmCreate { .. } => Err(Denied::NodeOnly("farm create")),
        AdminToManager::Farms => Ok(()),
        AdminToManager::SheetGet { farm: f } | AdminToManager::SheetSet { farm: f, .. } => farm(f),
        AdminToManager::OverrideSet {
            farm: f, rig: r, ..
        } => farm(f).and_then(|()| rig(r)),
        AdminToManager::Rigs { farm: f, .. } => match f {
            Some(f) => farm(f),
            // Read as "my farm's rigs" by the session.
            None => Ok(()),
        },
        AdminToManager::Role { rig: r, .. } | AdminToManager::Console { rig: r, .. } => rig(r),
        AdminToManager::Grant { .. } => Err(Denied::NodeOnly("grant")),
        AdminToManager::OperatorAdd { .. } | AdminToManager::OperatorRemove { .. } => {
            Err(Denied::NodeOnly("operator changes"))
        }
        AdminToManager::Audit { .. } => Err(Denied::NodeOnly("the audit table")),
        AdminToManager::Jobs { .. } | AdminToManager::JobCancel { .. } => {
            Err(Denied::NodeOnly("client jobs"))
        }
        AdminToManager::Ledger => Err(Denied::NodeOnly("the ledger")),
        AdminToManager::Settings | AdminToManager::SettingsSet(_) => {
            Err(Denied::NodeOnly("the node's settings"))
        }
    }
}

/// A request summarised for the audit table (no secrets: sheets by farm name only).
pub fn summary(req: &AdminToManager) -> String {
    use compushare_protocol::hex::short;
    match req {
        AdminToManager::Hello { .. } => "hello".into(),
        AdminToManager::FarmCreate { name } => format!("farm-create {}", name.as_str()),
        AdminToManager::Farms => "farms".into(),
        AdminToManager::SheetGet { farm } => format!("sheet-get {}", farm.as_str()),
        AdminToManager::SheetSet { farm, .. } => format!("sheet-set {}", farm.as_str()),
        AdminToManager::OverrideSet {
            farm,
            rig,
            settings,
        } => format!(
            "override-{} {} {}",
            if settings.is_some() { "set" } else { "clear" },
            farm.as_str(),
            short(rig)
        ),
        AdminToManager::Rigs { farm, .. } => {
            format!("rigs {}", farm.as_ref().map_or("*", |f| f.as_str()))
        }
        AdminToManager::Grant { account, amount } => {
            format!("grant {} {}", short(account), amount.0)
        }
        AdminToManager::Role { rig, device, role } => format!(
            "role {} {} {role:?}",
            short(rig),
            device.map_or("all".to_owned(), |d| d.to_string())
        ),
        AdminToManager::Console { rig, line } => {
            format!("console {} {}", short(rig), line.as_str())
        }
        AdminToManager::OperatorAdd { key, farm } => format!(
            "operator-add {} {}",
            short(key),
            farm.as_ref().map_or("node", |f| f.as_str())
        ),
        AdminToManager::OperatorRemove { key } => format!("operator-remove {}", short(key)),
        AdminToManager::Audit { from } => format!("audit {from}"),
        AdminToManager::Jobs { state, client, .. } => format!(
            "jobs {} {}",
            state.map_or("*".to_owned(), |s| format!("{s:?}").to_lowercase()),
            client.as_ref().map_or("*".to_owned(), |c| short(c))
        ),
        AdminToManager::JobCancel { job } => format!("job-cancel {}", job.0),
        AdminToManager::Ledger => "ledger".into(),
        AdminToManager::Settings => "settings".into(),
        AdminToManager::SettingsSet(c) => {
            let mut s = "settings-set".to_owned();
            if let Some(v) = c.fee_bp {
                s.push_str(&format!(" fee_bp={v}"));
            }
            if let Some(v) = c.price_per_unit {
                s.push_str(&format!(" price_per_unit={}", v.0));
            }
            if let Some(v) = c.credit_msat {
                s.push_str(&format!(" credit_msat={v}"));
            }
            s
        }
    }
}
