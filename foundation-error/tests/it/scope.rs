use std::time::Duration;

use foundation_error::{Error, ErrorContext, breadcrumb, isolate, scope};

#[tokio::test]
async fn errors_created_in_a_scope_carry_its_context() {
    let error = scope(
        ErrorContext::new()
            .with_operation_id("checkout")
            .with_correlation_id("req-1"),
        async {
            breadcrumb("validated cart");
            breadcrumb("charging card");
            Error::timeout("card processor")
        },
    )
    .await;
    assert_eq!(error.operation_id(), Some("checkout"));
    assert_eq!(error.correlation_id(), Some("req-1"));
    assert_eq!(error.breadcrumbs(), ["validated cart", "charging card"]);
}

#[tokio::test]
async fn normalised_errors_pick_up_the_scope_too() {
    let error = scope(ErrorContext::new().with_correlation_id("req-2"), async {
        Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
    })
    .await;
    assert_eq!(error.correlation_id(), Some("req-2"));
}

#[tokio::test]
async fn an_explicit_correlation_id_wins_over_the_scope() {
    let error = scope(ErrorContext::new().with_correlation_id("scope"), async {
        Error::validation("x").with_correlation_id("explicit")
    })
    .await;
    assert_eq!(error.correlation_id(), Some("explicit"));
}

#[tokio::test]
async fn scopes_nest_and_do_not_leak() {
    let outer = ErrorContext::new()
        .with_operation_id("outer")
        .with_correlation_id("req-3")
        .with_breadcrumb("outer step");
    let error = scope(outer, async {
        scope(ErrorContext::new().with_operation_id("inner"), async {
            breadcrumb("inner step");
            Error::system("x")
        })
        .await
    })
    .await;
    assert_eq!(error.operation_id(), Some("inner"));
    assert_eq!(error.correlation_id(), Some("req-3"));
    assert_eq!(error.breadcrumbs(), ["outer step", "inner step"]);

    let outside = Error::system("after the scope");
    assert_eq!(outside.operation_id(), None);
    assert!(outside.breadcrumbs().is_empty());
}

#[tokio::test]
async fn isolate_carries_the_scope_into_its_task() {
    let result = scope(ErrorContext::new().with_correlation_id("req-4"), async {
        isolate(Duration::from_secs(1), async {
            Err::<(), _>(Error::business("refused"))
        })
        .await
    })
    .await;
    assert_eq!(result.unwrap_err().correlation_id(), Some("req-4"));
}
