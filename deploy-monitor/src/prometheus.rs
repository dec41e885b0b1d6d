//! [`PrometheusExport`]: a `metrics-exporter-prometheus` recorder with
//! recommended naming, and the rendered text exposition.
//!
//! This crate renders; serving `/metrics` over HTTP is the integration
//! crate's job (nothing below jido-system knows HTTP). The recorder needs
//! its upkeep run on a timer or its histograms grow without bound:
//! [`MonitorActor`](crate::MonitorActor) runs it on every tick when given
//! the handle.
//!
//! This module is not for choosing metric names (`metrics.rs`).

use foundation_error::{Error, ErrorCode, Result};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// A Prometheus recorder and its handle.
///
/// ```
/// use deploy_monitor::PrometheusExport;
///
/// let export = PrometheusExport::new();
/// metrics::with_local_recorder(export.recorder(), || {
///     deploy_monitor::metrics::describe();
///     metrics::gauge!(deploy_monitor::metrics::PHASE).set(3.0);
/// });
/// assert!(export.render().contains("foundation_deploy_phase 3"));
/// ```
#[derive(Debug)]
pub struct PrometheusExport {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for PrometheusExport {
    fn default() -> Self {
        PrometheusExport::new()
    }
}

impl PrometheusExport {
    /// A recorder with recommended naming (`_total` on counters, unit
    /// suffixes), not installed.
    pub fn new() -> PrometheusExport {
        let recorder = PrometheusBuilder::new()
            .with_recommended_naming(true)
            .build_recorder();
        let handle = recorder.handle();
        PrometheusExport { recorder, handle }
    }

    /// The recorder, for `metrics::with_local_recorder` (tests, or an
    /// application that routes metrics itself).
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    /// The handle: renders and runs upkeep; cheap to clone.
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// The text exposition of every metric recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buckets so memory stays bounded; call it on a timer.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Installs the recorder as the process's global `metrics` recorder and
    /// returns the handle.
    ///
    /// # Errors
    ///
    /// `initialization_failed` when a global recorder is installed already.
    pub fn install(self) -> Result<PrometheusHandle> {
        let handle = self.handle;
        metrics::set_global_recorder(self.recorder).map_err(|cause| {
            Error::new(
                ErrorCode::INITIALIZATION_FAILED,
                format!("a global metrics recorder is installed already: {cause}"),
            )
        })?;
        Ok(handle)
    }
}
