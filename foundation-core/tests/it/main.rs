//! foundation-core's integration tests, one binary with a module per area.
//! Time-dependent tests run under paused tokio time or on a manually
//! advanced clock; nothing sleeps for real.

mod circuit_breaker;
mod rate_limiter;

mod support {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use metrics_util::debugging::{DebugValue, Snapshotter};

    /// Yields to the scheduler until `condition` holds, at most 10,000 times.
    pub(crate) async fn yield_until(condition: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if condition() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the condition did not hold after 10,000 yields");
    }

    /// Polls a future outside any runtime, at most 1,000 times.
    pub(crate) fn block_on_without_runtime<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
        panic!("the future did not complete without a runtime");
    }

    /// Sorted `(name, value)` label pairs.
    pub(crate) type Labels = Vec<(String, String)>;

    /// A snapshot of a debugging recorder (taking one resets its values).
    pub(crate) struct Metrics(Vec<(String, Labels, DebugValue)>);

    impl Metrics {
        pub(crate) fn take(snapshotter: &Snapshotter) -> Metrics {
            let metrics = snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, _, _, value)| {
                    let mut labels: Labels = key
                        .key()
                        .labels()
                        .map(|label| (label.key().to_owned(), label.value().to_owned()))
                        .collect();
                    labels.sort();
                    (key.key().name().to_owned(), labels, value)
                })
                .collect();
            Metrics(metrics)
        }

        /// Takes every metric named `name` out of the snapshot: its labels
        /// (sorted) and value, sorted by labels.
        pub(crate) fn named(&mut self, name: &str) -> Vec<(Labels, DebugValue)> {
            let (named, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0)
                .into_iter()
                .partition(|(metric, _, _)| metric == name);
            self.0 = rest;
            let mut found: Vec<_> = named
                .into_iter()
                .map(|(_, labels, value)| (labels, value))
                .collect();
            found.sort_by(|left, right| left.0.cmp(&right.0));
            found
        }
    }

    /// The labels as owned pairs, for comparisons.
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut labels: Labels = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        labels.sort();
        labels
    }
}
