//! [`EventLog`]: the application's subscriber to its own signals
//! (`jido.*`): it acknowledges each delivery and keeps counts by type and
//! the most recent signals, for `GET /api/v1/agents` and the tests of
//! `use_reliable_messaging`.
//!
//! This module is not for routing (foundation-core's `SignalRouter`).

use std::collections::{BTreeMap, VecDeque};

use foundation_core::signal::{Delivery, Signal};
use foundation_core::{Actor, Context};
use foundation_error::Result;
use serde::Serialize;

/// How many recent signals the log keeps.
pub(crate) const RECENT_SIGNALS: usize = 100;

/// The event log actor.
#[derive(Debug, Default)]
pub struct EventLog {
    counts: BTreeMap<String, u64>,
    recent: VecDeque<Signal>,
}

/// What the event log reports.
#[derive(Debug, Clone, Serialize)]
pub struct EventLogSummary {
    /// Signals received, by type.
    pub counts: BTreeMap<String, u64>,
    /// The most recent signals' types and ids, oldest first.
    pub recent: Vec<(String, String)>,
}

impl Actor for EventLog {
    type Args = ();
    type Call = ();
    type Reply = EventLogSummary;
    type Cast = ();
    type Info = Delivery;

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self> {
        Ok(EventLog::default())
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<EventLogSummary> {
        Ok(EventLogSummary {
            counts: self.counts.clone(),
            recent: self
                .recent
                .iter()
                .map(|signal| (signal.signal_type.clone(), signal.id.clone()))
                .collect(),
        })
    }

    async fn handle_info(&mut self, delivery: Delivery, _ctx: &mut Context<Self>) -> Result<()> {
        let signal = delivery.signal().clone();
        *self.counts.entry(signal.signal_type.clone()).or_default() += 1;
        if self.recent.len() == RECENT_SIGNALS {
            self.recent.pop_front();
        }
        self.recent.push_back(signal);
        delivery.ack();
        Ok(())
    }
}
