//! A tour of the error model: classify a foreign error, retry a flaky
//! dependency, isolate a crashing operation, track errors until an alert
//! fires, and print the portable JSON form.
//!
//! Run with `cargo run -p foundation-error --example error_tour`.

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use foundation_error::{
    Error, ErrorCode, ErrorContext, ErrorTracker, RetryPolicy, isolate, retry, scope,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // 1. A foreign error becomes a classified one, and keeps its cause.
    let missing = std::fs::read("/no/such/file.toml").map_err(Error::from);
    if let Err(error) = &missing {
        println!("normalised io error:  {error}");
        println!(
            "  category {}, cause: {:?}",
            error.category(),
            error.cause_messages()
        );
    }

    // 2. Retry rides through two transient failures.
    let calls = AtomicU32::new(0);
    let policy = RetryPolicy::default().base_delay(Duration::from_millis(10));
    let answer = retry(&policy, || async {
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(Error::new(ErrorCode::NETWORK_ERROR, "connection reset")),
            _ => Ok(42),
        }
    })
    .await?;
    println!(
        "retry:                {answer} after {} calls",
        calls.load(Ordering::SeqCst)
    );

    // ...but a business error is returned at once.
    let refused = retry(&policy, || async {
        Err::<(), _>(Error::new(ErrorCode::INSUFFICIENT_FUNDS, "balance too low"))
    })
    .await;
    if let Err(error) = refused {
        println!("not retried:          {error}");
    }

    // 3. A panic inside an isolated operation becomes an error, inside a
    //    scope whose correlation id the error picks up. (The hook keeps the
    //    demo's output short; the panic is still caught the same way.)
    std::panic::set_hook(Box::new(|info| println!("panic hook:           {info}")));
    let crashed = scope(
        ErrorContext::new().with_correlation_id("req-7"),
        isolate(Duration::from_secs(1), async {
            let rows: Vec<u32> = Vec::new();
            Ok::<u32, Error>(rows[0])
        }),
    )
    .await;
    if let Err(error) = crashed {
        println!("isolated panic:       {error}");
        println!("  correlation id {:?}", error.correlation_id());

        // 4. The portable form is what the HTTP API will serve.
        let json = serde_json::to_string_pretty(&error.to_portable())
            .map_err(|json| Error::wrap_as(ErrorCode::SERIALIZATION_FAILED, json))?;
        println!("portable form:\n{json}");
    }

    // 5. Ten timeouts of one code within five minutes raise one alert.
    let tracker = ErrorTracker::new();
    let mut alerts = tracker.subscribe();
    for attempt in 0..15 {
        tracker.track(&Error::timeout(format!("database timeout #{attempt}")));
    }
    while let Ok(alert) = alerts.try_recv() {
        println!(
            "alert:                {} x{} within {:?} (threshold {})",
            alert.code, alert.count, alert.window, alert.threshold
        );
    }
    println!(
        "tracked:              {} timeouts in the last minute",
        tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(60))
    );
    Ok(())
}
