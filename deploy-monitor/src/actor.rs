//! [`MonitorActor`]: the evaluation loop as an actor, driven by its own
//! timer. Spawn it under a supervisor (or with `foundation_core::spawn`);
//! every slot width it moves the window, reads the sources, evaluates when
//! an interval is due, publishes the metrics and runs the Prometheus
//! upkeep.
//!
//! This module is not for the rules themselves (`monitor.rs`).

use std::time::Duration;

use foundation_core::{Actor, Context};
use foundation_error::Result;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::monitor::{DeployMonitor, RolloutStatus};

/// What [`MonitorActor`] starts from.
#[derive(Debug, Clone)]
pub struct MonitorActorArgs {
    /// The monitor to drive.
    pub monitor: DeployMonitor,
    /// The Prometheus handle whose upkeep to run, if any.
    pub prometheus: Option<PrometheusHandle>,
    /// How often to tick (default: the monitor's slot width).
    pub tick: Option<Duration>,
}

impl MonitorActorArgs {
    /// Arguments that drive `monitor` at its slot width.
    pub fn new(monitor: DeployMonitor) -> MonitorActorArgs {
        MonitorActorArgs {
            monitor,
            prometheus: None,
            tick: None,
        }
    }
}

/// The timer message.
#[derive(Debug, Clone, Copy)]
pub struct Tick;

/// Requests to the actor.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum MonitorRequest {
    /// Where the rollout stands.
    Status,
}

/// The evaluation loop.
#[derive(Debug)]
pub struct MonitorActor {
    monitor: DeployMonitor,
    prometheus: Option<PrometheusHandle>,
}

impl Actor for MonitorActor {
    type Args = MonitorActorArgs;
    type Call = MonitorRequest;
    type Reply = RolloutStatus;
    type Cast = ();
    type Info = Tick;

    async fn init(args: MonitorActorArgs, ctx: &mut Context<Self>) -> Result<Self> {
        let period = args.tick.unwrap_or_else(|| args.monitor.slot_width());
        ctx.send_interval(period, Tick);
        Ok(MonitorActor {
            monitor: args.monitor,
            prometheus: args.prometheus,
        })
    }

    async fn handle_call(
        &mut self,
        request: MonitorRequest,
        _ctx: &mut Context<Self>,
    ) -> Result<RolloutStatus> {
        match request {
            MonitorRequest::Status => self.monitor.status().await,
        }
    }

    async fn handle_info(&mut self, _tick: Tick, _ctx: &mut Context<Self>) -> Result<()> {
        // A failed evaluation was raised as an alert; the loop goes on (a
        // pending transition is completed by the next tick).
        if let Err(error) = self.monitor.tick().await {
            tracing::warn!(%error, "deploy monitor tick failed");
        }
        self.monitor.publish_metrics();
        if let Some(prometheus) = &self.prometheus {
            prometheus.run_upkeep();
        }
        Ok(())
    }
}
