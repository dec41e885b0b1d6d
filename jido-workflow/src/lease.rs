//! Workflow ownership on the store's leases
//! ([`foundation_persist::Leases`]): which engine (node) runs a workflow,
//! fenced so that an engine that lost a workflow cannot write to it.
//!
//! In multi-node mode every workflow process holds the lease
//! `workflow/<id>` of the engine's owner id: it acquires it (or is handed a claimed one) before it reads
//! the journal, and every journal batch it writes carries
//! [`WriteBatch::fence`](foundation_persist::WriteBatch::fence), so the
//! store refuses the batch once another grant of the lease exists (a
//! restarted instance on the same engine, another engine that claimed it
//! after expiry). A process whose fenced write or renewal is refused
//! gives the workflow up: it stops without writing, is not restarted, does
//! not report the workflow failed, and counts
//! [`LEASE_LOST_TOTAL`](crate::metrics::LEASE_LOST_TOTAL).
//!
//! In multi-node mode ([`WorkflowEngineBuilder::multi_node`](crate::WorkflowEngineBuilder::multi_node))
//! the engine runs one [`Heartbeat`] actor under its supervisor that, every
//! `lease_ttl / 3`:
//!
//! 1. renews every lease its processes hold, in batches of up to
//!    [`MAX_READ_LIMIT`] (a lease lost there makes its process give up);
//! 2. claims up to [`CLAIM_BATCH`] expired `workflow/` leases (of engines
//!    that died or paused) and resumes each claimed workflow from its
//!    journal.
//!
//! So a dead engine's workflows run elsewhere within `ttl` (its leases
//! expire) plus one tick (`ttl / 3`), plus the resume itself. On graceful
//! shutdown a multi-node engine hands its unfinished workflows over
//! (their leases expire at once, the next claim takes them); a finished
//! workflow's lease is released.
//!
//! In single-node mode (the default) the engine holds no store leases at
//! all: no heartbeat, no claim, no lease write per workflow. One process
//! owns the store (redb's file lock), its registry keeps one process per
//! workflow, and every journal append names the sequence number it must
//! get, so the late write of a predecessor instance is refused by the
//! journal itself. It resumes every unfinished workflow at start-up.
//! (Acquiring a store lease per workflow there cost a read and two writes
//! per workflow and made the resume of 10,000 workflows 20 times slower,
//! for no protection the journal does not already give.)
//!
//! **Hand-over wake-ups.** A multi-node engine that shuts down gracefully
//! hands its workflows over (their leases expire at once) and then writes
//! its owner id to the state keyspace [`HANDOVER_KEYSPACE`]. When the store
//! watches that keyspace ([`StoreOptions::watch`](foundation_persist::StoreOptions::watch);
//! on PostgreSQL the notification is a `NOTIFY` in the write's transaction,
//! heard by every node), the other engines' heartbeats see the change at
//! their next poll (every `lease_ttl / 12`) and claim at once instead of at
//! their next tick. A node that dies writes nothing: its workflows wait
//! for their leases to expire, as they must.
//!
//! This module is not for the journal itself (see `record`) or for the
//! lease storage (foundation-persist and its backends).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use foundation_core::{Actor, Context, DynamicSupervisor};
use foundation_error::{Error, ErrorCode};
use foundation_persist::{Change, Changes, Lease, MAX_READ_LIMIT};

use crate::engine::Shared;
use crate::metrics;
use crate::process::{ProcessArgs, StepMessage, WorkflowProcess};

/// The default lease time of a workflow.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The shortest lease time an engine accepts (the heartbeat runs every
/// third of it).
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

/// How many expired leases one heartbeat claims at most.
pub const CLAIM_BATCH: usize = 256;

/// The prefix of every workflow lease name.
pub(crate) const LEASE_PREFIX: &str = "workflow/";

/// The lease name of workflow `id`.
pub(crate) fn lease_name(id: &str) -> String {
    format!("{LEASE_PREFIX}{id}")
}

/// A lease a live process holds, for the heartbeat to renew.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) lease: Lease,
    /// The process instance that holds it.
    pub(crate) instance: u64,
}

/// The leases the engine's live processes hold, by workflow id.
pub(crate) type HeldLeases = std::sync::Mutex<HashMap<Arc<str>, Held>>;

/// Whether `error` says a lease (or the journal it guards) was taken over:
/// a refused fence or renewal, or a journal that moved under the process.
pub(crate) fn is_lost(error: &Error) -> bool {
    error.code() == ErrorCode::VERSION_CONFLICT
}

/// The state keyspace a multi-node engine writes its owner id to after it
/// handed its workflows over on shutdown. Watch it on a shared store so
/// that the other engines claim the workflows at once.
pub const HANDOVER_KEYSPACE: &str = "jido_workflow_handover";

/// The record of a hand-over: when it happened (wall clock, milliseconds).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct HandOver {
    pub(crate) at_ms: u64,
}

impl foundation_persist::Record for HandOver {
    const TYPE_TAG: &'static str = "jido_workflow_handover";
    const SCHEMA_VERSION: u32 = 1;
}

/// The heartbeat's arguments.
#[derive(Clone)]
pub(crate) struct HeartbeatArgs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) workflows: DynamicSupervisor<WorkflowProcess>,
}

/// Renews the engine's leases and claims expired ones, every third of the
/// lease time (multi-node mode). A child of the engine's top supervisor,
/// started after the WorkflowSupervisor; its ticks are the actor's own
/// timer messages.
pub(crate) struct Heartbeat {
    args: HeartbeatArgs,
    /// The store's change feed, for hand-over wake-ups (`None` when the
    /// store has none).
    changes: Option<Changes>,
}

/// The heartbeat's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tick {
    /// Renew and claim (every `lease_ttl / 3`).
    Beat,
    /// Look at the change feed for a hand-over (every `lease_ttl / 12`).
    Poll,
}

impl Actor for Heartbeat {
    type Args = HeartbeatArgs;
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = Tick;

    async fn init(args: HeartbeatArgs, ctx: &mut Context<Self>) -> Result<Self, Error> {
        ctx.send_after(interval(&args.shared), Tick::Beat);
        ctx.send_after(interval(&args.shared) / 4, Tick::Poll);
        // Without a feed (a store that cannot have one) claims wait for
        // the beat.
        let changes = args.shared.keyspaces.store.changes().ok();
        Ok(Heartbeat { args, changes })
    }

    async fn handle_info(&mut self, tick: Tick, ctx: &mut Context<Self>) -> Result<(), Error> {
        let handed_over = matches!(tick, Tick::Poll) && self.handed_over();
        let shared = &self.args.shared;
        match tick {
            Tick::Beat => {
                if !shared.heartbeat_suspended.load(Ordering::Acquire) {
                    renew(shared).await;
                    claim(shared, &self.args.workflows).await;
                }
                shared.heartbeats.send_modify(|beats| *beats += 1);
                ctx.send_after(interval(shared), Tick::Beat);
            }
            Tick::Poll => {
                if handed_over && !shared.heartbeat_suspended.load(Ordering::Acquire) {
                    claim(shared, &self.args.workflows).await;
                }
                ctx.send_after(interval(shared) / 4, Tick::Poll);
            }
        }
        Ok(())
    }
}

impl Heartbeat {
    /// Whether another engine announced a hand-over since the last poll
    /// (or the feed lagged, so one may have been missed).
    fn handed_over(&mut self) -> bool {
        let Some(changes) = &mut self.changes else {
            return false;
        };
        let owner = &self.args.shared.owner;
        let mut seen = false;
        while let Some(change) = changes.try_next() {
            seen |= match change {
                Change::Key { keyspace, key } => keyspace == HANDOVER_KEYSPACE && key != *owner,
                Change::Resync => true,
                _ => false,
            };
        }
        seen
    }
}

/// Announces that this engine handed its workflows over (see
/// [`HANDOVER_KEYSPACE`]). Best effort, bounded by the lease time: without
/// it the other engines claim at their next beat.
pub(crate) async fn announce_handover(shared: &Shared) {
    let announce = async {
        let keyspace = shared
            .keyspaces
            .store
            .state::<HandOver>(HANDOVER_KEYSPACE)?;
        let record = HandOver {
            at_ms: crate::record::wall_millis(shared.clock.as_ref()),
        };
        keyspace.put(&shared.owner, &record).await.map(drop)
    };
    match tokio::time::timeout(shared.lease_ttl, announce).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not announce the workflows' hand-over"),
        Err(_) => {
            tracing::warn!("announcing the workflows' hand-over took longer than the lease time")
        }
    }
}

/// The heartbeat's period: a third of the lease time.
pub(crate) fn interval(shared: &Shared) -> Duration {
    shared.lease_ttl / 3
}

/// Renews every held lease; a process whose lease was lost is told to give
/// the workflow up. Store failures are logged: the next tick tries again,
/// and if the leases expire meanwhile, the fence refuses the stale writes.
async fn renew(shared: &Arc<Shared>) {
    let held: Vec<(Arc<str>, Held)> = shared
        .held
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(id, held)| (Arc::clone(id), held.clone()))
        .collect();
    for chunk in held.chunks(MAX_READ_LIMIT) {
        let leases: Vec<Lease> = chunk.iter().map(|(_, held)| held.lease.clone()).collect();
        let renewal = shared.leases.renew_all(&leases, shared.lease_ttl);
        // Bounded by the lease time: a renewal later than that is worth
        // nothing (the store's own timeouts bound it too).
        let answers = match tokio::time::timeout(shared.lease_ttl, renewal).await {
            Ok(Ok(answers)) => answers,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not renew the workflow leases");
                ::metrics::counter!(metrics::LEASE_RENEW_FAILURES_TOTAL).increment(1);
                return;
            }
            Err(_) => {
                tracing::warn!("renewing the workflow leases took longer than the lease time");
                ::metrics::counter!(metrics::LEASE_RENEW_FAILURES_TOTAL).increment(1);
                return;
            }
        };
        let mut lost = Vec::new();
        {
            let mut map = shared
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((id, held), answer) in chunk.iter().zip(answers) {
                match answer {
                    Ok(renewed) => {
                        if let Some(current) = map.get_mut(id)
                            && current.instance == held.instance
                        {
                            current.lease = renewed;
                        }
                    }
                    Err(error) if is_lost(&error) => {
                        if map
                            .get(id)
                            .is_some_and(|current| current.instance == held.instance)
                        {
                            map.remove(id);
                        }
                        lost.push((Arc::clone(id), held.lease.token));
                    }
                    Err(error) => {
                        tracing::warn!(workflow = %id, %error, "could not renew a workflow lease");
                    }
                }
            }
        }
        for (id, token) in lost {
            if let Some(process) = shared.registry.lookup_actor::<WorkflowProcess>(&id) {
                // A process whose mailbox is closed is ending anyway; its
                // next fenced write would be refused too.
                // A process whose mailbox is closed is ending anyway; its next
                // fenced write would be refused too.
                let _ = process.try_send_info(StepMessage::LeaseLost { token });
            }
        }
    }
}

/// Claims expired workflow leases and resumes each claimed workflow.
async fn claim(shared: &Arc<Shared>, workflows: &DynamicSupervisor<WorkflowProcess>) {
    let claiming =
        shared
            .leases
            .claim_expired(LEASE_PREFIX, &shared.owner, shared.lease_ttl, CLAIM_BATCH);
    let claimed = match tokio::time::timeout(shared.lease_ttl, claiming).await {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not claim expired workflow leases");
            return;
        }
        Err(_) => {
            tracing::warn!("claiming expired workflow leases took longer than the lease time");
            return;
        }
    };
    if claimed.is_empty() {
        return;
    }
    ::metrics::counter!(metrics::LEASES_CLAIMED_TOTAL).increment(claimed.len() as u64);
    shared
        .leases_claimed
        .fetch_add(claimed.len() as u64, Ordering::AcqRel);
    for lease in claimed {
        let Some(id) = lease.name.strip_prefix(LEASE_PREFIX) else {
            continue;
        };
        if let Some(process) = shared.registry.lookup_actor::<WorkflowProcess>(id) {
            // This engine's own lease had expired (its heartbeat was late)
            // and the claim bumped the token under a live process: that
            // process gives up, and the lease is handed on at once (the
            // next claim, here or elsewhere, resumes the workflow).
            let _ = process.try_send_info(StepMessage::LeaseLost {
                token: lease.token.saturating_sub(1),
            });
            if let Err(error) = shared.leases.renew(&lease, Duration::ZERO).await {
                tracing::warn!(workflow = %id, %error, "could not hand a claimed lease on");
            }
            continue;
        }
        let args = ProcessArgs::claimed(Arc::clone(shared), id.into(), lease.clone());
        match workflows.start_child(args).await {
            Ok(_) => {}
            Err(error) if error.code() == ErrorCode::DATA_NOT_FOUND => {
                // The lease of a start that never committed (its engine
                // died between the grant and the start's fenced batch):
                // there is nothing to resume. Released, the lease fences
                // that batch out for good.
                // Best effort: unreleased, the lease expires and is
                // claimed (and released) again.
                let _ = shared.leases.release(&lease).await;
            }
            Err(error) => {
                tracing::warn!(workflow = %id, %error, "could not resume a claimed workflow");
                // Hand it on rather than sit on it until it expires (best
                // effort: otherwise it expires after the lease time).
                let _ = shared.leases.renew(&lease, Duration::ZERO).await;
            }
        }
    }
}
