//! Message delivery success from the signal router's counters: the deltas
//! of `routed` (attempted) and `delivered` since the last drain.
//!
//! A signal is counted as routed when `route` queues it and as delivered
//! when its forwarder hands it over, a moment later, so one drain can see
//! more deliveries than routings; the health report clamps the ratio to 1.
//!
//! This module is not for per-cohort deliveries; the router has no cohorts,
//! so its counts are unassigned (the `Recorder` takes cohorts).

use foundation_core::signal::SignalRouter;

use crate::cohort::Cohort;
use crate::window::{SlidingWindow, field};

pub(crate) struct DeliverySource {
    router: SignalRouter,
    routed: u64,
    delivered: u64,
}

impl DeliverySource {
    pub(crate) fn new(router: SignalRouter) -> DeliverySource {
        let stats = router.stats();
        DeliverySource {
            router,
            routed: stats.routed,
            delivered: stats.delivered,
        }
    }

    pub(crate) fn drain(&mut self, window: &SlidingWindow) {
        let stats = self.router.stats();
        let routed = stats.routed.saturating_sub(self.routed);
        let delivered = stats.delivered.saturating_sub(self.delivered);
        self.routed = stats.routed;
        self.delivered = stats.delivered;
        if routed > 0 {
            window.add(Cohort::Unassigned, field::DELIVERY_ATTEMPTS, routed);
        }
        if delivered > 0 {
            window.add(Cohort::Unassigned, field::DELIVERED, delivered);
        }
    }
}
