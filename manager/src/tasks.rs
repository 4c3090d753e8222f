//! The market's heavy tasks, run off its lock: opening a sealed result, checking sample
//! proofs, a duplicate run on the manager's own engine. Each outcome goes back into the
//! market, which may hand out more.
//!
//! Bounded: at most [`crate::node::ServerConfig::max_tasks`] run at once, each on a blocking
//! thread; the others wait for a permit as small async tasks (no thread, no stack). How many
//! can wait is bounded by the market itself, not by peers: one open per uploaded result, one
//! duplicate per result, and one check per sample-proof message that proves photons still
//! asked for (each photon is asked once), so at most `sample_k` per result being checked.
//!
//! The market's durable writes ([`crate::journal`]) are drained here too, after every batch
//! of tasks handed out: on a blocking thread of their own, without a task permit (a commit
//! must not wait behind a duplicate run). One lane: at most one drain commits and at most one
//! more is scheduled ([`crate::journal::Journal::schedule`]).

use std::sync::Arc;

use compushare_kernels::transport::engine::Engine;
use compushare_kernels::transport::simulate;
use tokio::runtime::Handle;

use crate::market::{CheckError, Task};
use crate::node::Shared;
use crate::sealed::open_result;
use crate::verify;

/// Runs `tasks` off the market's lock; their outcomes go back into the market and any task
/// those hand out runs the same way.
pub fn dispatch(handle: &Handle, shared: &Arc<Shared>, tasks: Vec<Task>) {
    if shared.journal.schedule() {
        let s = shared.clone();
        let h = handle.clone();
        handle.spawn(async move {
            let s2 = s.clone();
            let more =
                tokio::task::spawn_blocking(move || s2.journal.drain(|w| s2.market().applied(w)))
                    .await;
            match more {
                Ok(more) => dispatch(&h, &s, more),
                Err(e) => compushare_protocol::warn!("the market's commits ended abnormally: {e}"),
            }
        });
    }
    for task in tasks {
        let s = shared.clone();
        let h = handle.clone();
        handle.spawn(async move {
            // Closed never: the semaphore lives as long as `Shared`.
            let Ok(permit) = s.tasks.clone().acquire_owned().await else {
                return;
            };
            let s2 = s.clone();
            let more = tokio::task::spawn_blocking(move || {
                let more = run(&s2, task);
                drop(permit);
                more
            })
            .await;
            match more {
                Ok(more) => dispatch(&h, &s, more),
                Err(e) => compushare_protocol::warn!("a market task ended abnormally: {e}"),
            }
        });
    }
}

/// Runs one task and reports its outcome to the market (locked only for that).
fn run(shared: &Shared, task: Task) -> Vec<Task> {
    match task {
        Task::Open {
            assignment,
            spec,
            sealed,
            commit,
        } => {
            let r = open_result(
                &shared.identity,
                &sealed,
                &commit.tally,
                commit.histories,
                spec.cells,
            );
            drop(sealed);
            shared.market().opened(assignment, r)
        }
        Task::Check {
            assignment,
            spec,
            range,
            root,
            proofs,
        } => {
            let n = proofs.len();
            let r = match Engine::new(&spec.job) {
                Ok(engine) => {
                    verify::check_proofs(&engine, range, &root, &proofs).map_err(CheckError::from)
                }
                Err(e) => Err(CheckError::from(e)),
            };
            shared.market().checked(assignment, n, r)
        }
        Task::Duplicate {
            assignment,
            spec,
            range,
        } => {
            let r = simulate(
                &spec.job,
                range.start..range.start.saturating_add(range.count),
                shared.cfg.engine_threads.max(1),
                None,
            )
            .map(|t| t.digest());
            shared.market().duplicated(assignment, r)
        }
    }
}
