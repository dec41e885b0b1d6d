//! foundation-error's integration tests, one binary with a module per area.
//! Time-dependent tests run under paused tokio time; nothing sleeps for
//! real.

mod degrade;
mod isolate;
mod normalize;
mod portable;
mod retry;
mod scope;
mod tracker;

mod support {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Yields to the scheduler until `condition` holds, at most 1,000 times.
    pub(crate) async fn yield_until(condition: impl Fn() -> bool) {
        for _ in 0..1_000 {
            if condition() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the condition did not hold after 1,000 yields");
    }

    /// Polls a future that completes without waiting, outside any runtime.
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
}
