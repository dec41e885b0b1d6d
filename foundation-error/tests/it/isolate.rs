use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use foundation_error::{Category, Error, ErrorCode, isolate};

use crate::support::{block_on_without_runtime, yield_until};

#[tokio::test]
async fn a_result_passes_through() {
    let value = isolate(Duration::from_secs(1), async { Ok::<_, Error>(42) }).await;
    assert_eq!(value.unwrap(), 42);
    let error = isolate(Duration::from_secs(1), async {
        Err::<(), _>(Error::business("no"))
    })
    .await
    .unwrap_err();
    assert_eq!(error.category(), Category::Business);
}

#[tokio::test]
async fn a_panic_becomes_isolated_operation_failed() {
    let error = isolate(Duration::from_secs(1), async {
        let values: Vec<u32> = Vec::new();
        Ok::<u32, Error>(values[3])
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ISOLATED_OPERATION_FAILED);
    assert_eq!(error.category(), Category::System);
    assert!(
        error
            .context_value("panic")
            .unwrap()
            .contains("index out of bounds"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_aborts_the_task() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(Arc::clone(&dropped));
    let error = isolate(Duration::from_secs(5), async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok::<(), Error>(())
    })
    .await
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert_eq!(error.category(), Category::Infrastructure);
    // Abort completes at the task's next poll; yield until it has run.
    yield_until(|| dropped.load(Ordering::SeqCst)).await;
}

#[test]
fn outside_a_runtime_isolate_fails_cleanly() {
    let future = isolate(Duration::from_secs(1), async { Ok::<_, Error>(()) });
    let error = block_on_without_runtime(future).unwrap_err();
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
}
