//! Operators acting on a running node: the admin session (`AdminToManager`) and its client.
//!
//! - [`auth`]: which requests an operator's scope allows, and how each is summarised for the
//!   audit table.
//! - [`jobs`]: the job list and the durable half of a cancel.
//! - [`terms`]: the ledger's summary and the node's market settings (fee, price, credit value).
//!
//! The operator's side is `compushare_client::admin::AdminClient`.
//!
//! A session is served only for a key in the operators table; anyone else gets the frozen
//! `Refused` (code `NOT_ALLOWED`) and the attempt is audited. Then each request is
//! authorised on its own, executed, and written to the audit table with its outcome, allowed
//! or not. A frame that fails authentication (altered, replayed, reordered) ends the session
//! in the secure channel before anything is decoded; one that authenticates but does not
//! decode is answered `Refused(PROTOCOL)` and ends it too. Requests are served one at a time;
//! a session idle for the node's idle limit is closed.

pub mod auth;
pub mod jobs;
pub mod terms;

use std::sync::Arc;
use std::time::Duration;

use compushare_protocol::limits::{AUDIT_PER_PAGE, JOBS_PER_PAGE, RIGS_PER_PAGE};
use compushare_protocol::msg::{
    self, refusal, AdminError, AdminToManager, AuditRecord, FarmSummary, ManagerToAdmin, Refusal,
    Scope,
};
use compushare_protocol::secure::{SecureReader, SecureWriter};
use compushare_protocol::sheet::FarmKey;
use compushare_protocol::types::{bounded, PublicKey};
use embedded_io_adapters::tokio_1::FromTokio;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::fleet::store::{FleetError, FleetTables, FleetWrites};
use crate::fleet::{Fleet, RigActionError};
use crate::ledger::LedgerError;
use crate::node::Shared;
use crate::store::StoreError;
use compushare_protocol::hex::short;

/// The receiving half of an admin session.
pub type Reader = SecureReader<FromTokio<OwnedReadHalf>>;
/// The sending half of an admin session.
pub type Writer = SecureWriter<FromTokio<OwnedWriteHalf>>;

/// Sends one reply, boxed before the future exists (a reply enum is ~11 KiB).
fn reply(wr: &mut Writer, m: ManagerToAdmin) -> impl std::future::Future<Output = bool> + '_ {
    let m = Box::new(m);
    async move { wr.send(&*m).await.is_ok() }
}

fn error(code: AdminError, message: &str) -> ManagerToAdmin {
    ManagerToAdmin::Error {
        code,
        message: bounded(message),
    }
}

/// Writes one audit record; a failure is logged (the request already happened).
fn audit(fleet: &Fleet, operator: &PublicKey, request: &str, allowed: bool, outcome: &str) {
    let record = AuditRecord {
        seq: 0,
        at_unix_s: crate::store::now_unix_s(),
        operator: *operator,
        request: bounded(request),
        allowed,
        outcome: bounded(outcome),
    };
    if let Err(e) = fleet.store().write(|tx| tx.append_audit(record)) {
        compushare_protocol::warn!(
            "audit of {request:?} by {}: not recorded: {e}",
            short(operator)
        );
    }
}

/// Serves an operator's session until it leaves, breaks the protocol or goes silent.
pub async fn session(
    shared: Arc<Shared>,
    peer: PublicKey,
    idle: Duration,
    mut rd: Reader,
    mut wr: Writer,
) {
    let fleet = shared.fleet.clone();
    let scope = match fleet.store().read().and_then(|r| r.operator(&peer)) {
        Ok(s) => s,
        Err(e) => {
            compushare_protocol::warn!("operator lookup for {}: {e}", short(&peer));
            let r = Refusal::new(
                refusal::UNAVAILABLE,
                "the node could not read its operators",
            );
            let _ = reply(&mut wr, ManagerToAdmin::Refused(r)).await;
            return;
        }
    };
    let Some(scope) = scope else {
        compushare_protocol::warn!(
            "admin session from {}: not an operator; refused",
            short(&peer)
        );
        audit(&fleet, &peer, "hello", false, "not an operator");
        let r = Refusal::new(
            refusal::NOT_ALLOWED,
            "this key is not an operator of this node",
        );
        let _ = reply(&mut wr, ManagerToAdmin::Refused(r)).await;
        return;
    };
    let welcome = ManagerToAdmin::Welcome {
        version: msg::PROTOCOL_VERSION,
        scope: scope.clone(),
    };
    if !reply(&mut wr, welcome).await {
        return;
    }
    loop {
        let bytes = match tokio::time::timeout(idle, rd.recv_bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                // Altered, replayed or reordered frames end here, before any decoding.
                compushare_protocol::debug!("admin session of {} ended: {e}", short(&peer));
                break;
            }
            Err(_) => break,
        };
        let req = match msg::decode_boxed::<AdminToManager>(bytes) {
            Ok(r) => r,
            Err(e) => {
                compushare_protocol::warn!(
                    "admin {}: undecodable frame: {e}; closing",
                    short(&peer)
                );
                audit(&fleet, &peer, "undecodable frame", false, &e.to_string());
                let r = Refusal::new(refusal::PROTOCOL, &e.to_string());
                let _ = reply(&mut wr, ManagerToAdmin::Refused(r)).await;
                break;
            }
        };
        let what = auth::summary(&req);
        let rig_farm = |k: &PublicKey| {
            fleet
                .store()
                .read()
                .and_then(|r| r.enrolled(k))
                .ok()
                .flatten()
        };
        if let Err(denied) = auth::authorise(&scope, &req, rig_farm) {
            compushare_protocol::warn!("admin {}: {what}: {denied}", short(&peer));
            audit(&fleet, &peer, &what, false, &denied.to_string());
            if !reply(&mut wr, error(AdminError::NotAllowed, &denied.to_string())).await {
                break;
            }
            continue;
        }
        let answer = execute(&shared, &scope, *req).await;
        let outcome = match &answer {
            ManagerToAdmin::Error { message, .. } => message.as_str().to_owned(),
            _ => "ok".to_owned(),
        };
        compushare_protocol::info!("admin {}: {what}: {outcome}", short(&peer));
        audit(&fleet, &peer, &what, true, &outcome);
        if !reply(&mut wr, answer).await {
            break;
        }
    }
}

fn fleet_error(e: FleetError) -> ManagerToAdmin {
    let code = match &e {
        FleetError::UnknownFarm(_) => AdminError::UnknownFarm,
        FleetError::FarmExists(_) => AdminError::FarmExists,
        FleetError::BadSheet(_) => AdminError::BadSheet,
        FleetError::NotInFarm(..) => AdminError::UnknownRig,
        FleetError::BadName(_) | FleetError::TooManyFarms => AdminError::BadRequest,
        FleetError::Store(_) => AdminError::Internal,
    };
    error(code, &e.to_string())
}

fn store_error(e: StoreError) -> ManagerToAdmin {
    compushare_protocol::warn!("admin request: {e}");
    error(
        AdminError::Internal,
        "the node's database failed; try again",
    )
}

fn rig_error(e: RigActionError) -> ManagerToAdmin {
    let code = match &e {
        RigActionError::Offline(_) => AdminError::RigOffline,
        RigActionError::Timeout(_) => AdminError::Timeout,
        _ => AdminError::Internal,
    };
    error(code, &e.to_string())
}

/// The answer to a stored sheet or override: the farm's version moved, so every connected rig
/// of the farm is sent its sheet at the new version.
fn stored(
    fleet: &Fleet,
    farm: compushare_protocol::types::Name,
    r: Result<u64, FleetError>,
) -> ManagerToAdmin {
    match r {
        Ok(version) => {
            let pushed = fleet.push_farm(farm.as_str());
            ManagerToAdmin::SheetStored {
                farm,
                version,
                pushed,
            }
        }
        Err(e) => fleet_error(e),
    }
}

fn new_farm_key() -> Result<FarmKey, rand_core::Error> {
    use rand_core::RngCore;
    let mut k = [0u8; 32];
    rand_core::OsRng.try_fill_bytes(&mut k)?;
    Ok(k)
}

/// Carries out an authorised request.
async fn execute(shared: &Arc<Shared>, scope: &Scope, req: AdminToManager) -> ManagerToAdmin {
    let fleet = &shared.fleet;
    let store = fleet.store().clone();
    match req {
        AdminToManager::Hello { .. } => error(AdminError::Protocol, "second Hello"),
        AdminToManager::FarmCreate { name } => {
            let key = match new_farm_key() {
                Ok(k) => k,
                Err(e) => {
                    compushare_protocol::warn!("farm key: {e}");
                    return error(AdminError::Internal, "no randomness for a farm key");
                }
            };
            let r = store.write(|tx| {
                let now = tx.now();
                tx.create_farm(name.as_str(), &key, now)
            });
            match r {
                Ok(()) => ManagerToAdmin::FarmCreated { farm: name, key },
                Err(e) => fleet_error(e),
            }
        }
        AdminToManager::Farms => {
            let (farms, enrolments) =
                match store.read().and_then(|r| Ok((r.farms()?, r.enrolments()?))) {
                    Ok(x) => x,
                    Err(e) => return store_error(e),
                };
            let online = fleet.online_counts();
            let mut out = heapless::Vec::new();
            for (name, f) in farms {
                if matches!(scope, Scope::Farm(mine) if mine.as_str() != name) {
                    continue;
                }
                let rigs = enrolments.iter().filter(|(_, n)| *n == name).count();
                let _ = out.push(FarmSummary {
                    name: bounded(&name),
                    version: f.version,
                    rigs: u32::try_from(rigs).unwrap_or(u32::MAX),
                    online: online.get(&Some(name.clone())).copied().unwrap_or(0),
                });
            }
            ManagerToAdmin::Farms { farms: out }
        }
        AdminToManager::SheetGet { farm } => {
            let r = store.read().and_then(|r| {
                let f = r.farm(farm.as_str())?;
                let mut overrides = 0u32;
                for (k, n) in r.enrolments()? {
                    if n == farm.as_str() && r.override_of(&k)?.is_some() {
                        overrides += 1;
                    }
                }
                Ok(f.map(|f| (f, overrides)))
            });
            match r {
                Ok(Some((f, overrides))) => ManagerToAdmin::Sheet {
                    farm,
                    version: f.version,
                    settings: f.sheet,
                    overrides,
                },
                Ok(None) => fleet_error(FleetError::UnknownFarm(farm.as_str().to_owned())),
                Err(e) => store_error(e),
            }
        }
        AdminToManager::SheetSet { farm, settings } => {
            let r = store.write(|tx| tx.set_sheet(farm.as_str(), &settings));
            stored(fleet, farm, r)
        }
        AdminToManager::OverrideSet {
            farm,
            rig,
            settings,
        } => {
            let r = store.write(|tx| tx.set_override(farm.as_str(), &rig, settings.as_ref()));
            stored(fleet, farm, r)
        }
        AdminToManager::Rigs { farm, after } => {
            let farm = match (farm, scope) {
                (Some(f), _) => Some(f.as_str().to_owned()),
                (None, Scope::Farm(mine)) => Some(mine.as_str().to_owned()),
                (None, Scope::Node) => None,
            };
            match fleet.rigs(farm.as_deref(), after, RIGS_PER_PAGE) {
                Ok((rigs, more)) => ManagerToAdmin::Rigs {
                    rigs: rigs.into_iter().collect(),
                    more,
                },
                Err(e) => store_error(e),
            }
        }
        AdminToManager::Grant { account, amount } => {
            if amount.0 == 0 {
                return error(AdminError::BadRequest, "amount: must be at least 1");
            }
            match store.write(|tx| tx.grant(&account, amount)) {
                Ok(balance) => ManagerToAdmin::Granted {
                    account,
                    balance: i64::try_from(balance).unwrap_or(i64::MAX),
                },
                Err(LedgerError::Store(e)) => store_error(e),
                Err(e) => {
                    compushare_protocol::warn!("admin grant: {e}");
                    error(AdminError::Internal, &e.to_string())
                }
            }
        }
        AdminToManager::Role { rig, device, role } => match fleet.role(&rig, device, role) {
            Ok(()) => ManagerToAdmin::Done {
                message: bounded(&format!(
                    "rig {}: {} set to {role:?}",
                    short(&rig),
                    device.map_or("every device".to_owned(), |d| format!("device {d}"))
                )),
            },
            Err(e) => rig_error(e),
        },
        AdminToManager::Console { rig, line } => match fleet.console(&rig, line).await {
            Ok(r) => ManagerToAdmin::ConsoleReply(r),
            Err(e) => rig_error(e),
        },
        AdminToManager::OperatorAdd { key, farm } => {
            let scope = match farm {
                Some(f) => Scope::Farm(f),
                None => Scope::Node,
            };
            let r = store.write(|tx| {
                if let Scope::Farm(f) = &scope {
                    if tx.farm(f.as_str())?.is_none() {
                        return Err(FleetError::UnknownFarm(f.as_str().to_owned()));
                    }
                }
                tx.set_operator(&key, Some(&scope))
            });
            match r {
                Ok(()) => ManagerToAdmin::Done {
                    message: bounded(&format!("operator {} added ({scope:?})", short(&key))),
                },
                Err(e) => fleet_error(e),
            }
        }
        AdminToManager::OperatorRemove { key } => {
            match store.write(|tx| tx.set_operator(&key, None)) {
                Ok(()) => ManagerToAdmin::Done {
                    message: bounded(&format!("operator {} removed", short(&key))),
                },
                Err(e) => fleet_error(e),
            }
        }
        AdminToManager::Audit { from } => {
            match store.read().and_then(|r| r.audit(from, AUDIT_PER_PAGE + 1)) {
                Ok(mut records) => {
                    let more = records.len() > AUDIT_PER_PAGE;
                    records.truncate(AUDIT_PER_PAGE);
                    let next = records.last().map_or(from, |r| r.seq.saturating_add(1));
                    ManagerToAdmin::Audit {
                        records: records.into_iter().collect(),
                        next,
                        more,
                    }
                }
                Err(e) => store_error(e),
            }
        }
        AdminToManager::Jobs {
            state,
            client,
            after,
        } => match jobs::page(&store, state, client, after, JOBS_PER_PAGE) {
            Ok((page, more)) => {
                // The market's lock once for the page, for the open jobs' finer state.
                let market = shared.market();
                let jobs = page
                    .iter()
                    .map(|(rec, escrow)| {
                        let live = (!rec.state.is_closed())
                            .then(|| market.status(&rec.client, rec.id))
                            .flatten();
                        jobs::summary(rec, *escrow, live.as_ref())
                    })
                    .collect();
                ManagerToAdmin::Jobs { jobs, more }
            }
            Err(e) => store_error(e),
        },
        AdminToManager::JobCancel { job } => {
            // Durable first, without the market's lock (see `jobs`); then the market lets go.
            let c = match jobs::cancel(&store, job) {
                Ok(c) => c,
                Err(jobs::CancelError::Unknown(_)) => {
                    return error(AdminError::UnknownJob, &format!("no job {}", job.0))
                }
                Err(e @ jobs::CancelError::Ended { .. }) => {
                    return error(AdminError::JobEnded, &e.to_string())
                }
                Err(
                    jobs::CancelError::Store(e) | jobs::CancelError::Ledger(LedgerError::Store(e)),
                ) => return store_error(e),
                Err(e) => {
                    compushare_protocol::warn!("admin cancel of job {}: {e}", job.0);
                    return error(AdminError::Internal, &e.to_string());
                }
            };
            let out = shared.market().cancelled(job);
            compushare_protocol::info!(
                "job {} cancelled by an operator: paid {}, fee {}, refund {}, {out} assignment(s) stopped",
                job.0,
                c.paid.0,
                c.fee.0,
                c.refund.0
            );
            ManagerToAdmin::JobCancelled {
                job,
                paid: c.paid,
                fee: c.fee,
                refund: c.refund,
            }
        }
        AdminToManager::Ledger => match terms::ledger(&store) {
            Ok(r) => ManagerToAdmin::Ledger(r),
            Err(e) => store_error(e),
        },
        AdminToManager::Settings => match store.config() {
            Ok(c) => ManagerToAdmin::Settings(terms::shown(&c)),
            Err(e) => store_error(e),
        },
        AdminToManager::SettingsSet(change) => match terms::set(&store, change) {
            Ok(c) => {
                // Read again under the market's lock: of two operators changing settings at
                // once, the market ends with what the store holds last, whatever the order
                // their sessions reach this line.
                let mut market = shared.market();
                match store.config() {
                    Ok(latest) => market.set_terms(&latest),
                    Err(e) => {
                        compushare_protocol::warn!("settings stored, market not updated: {e}");
                        drop(market);
                        return store_error(e);
                    }
                }
                ManagerToAdmin::Settings(terms::shown(&c))
            }
            Err(terms::SettingsError::Invalid(e)) => error(AdminError::BadRequest, &e.to_string()),
            Err(terms::SettingsError::Store(e)) => store_error(e),
        },
    }
}
