use foundation_error::{Error, ErrorCode, ErrorContext, PortableError, Severity, scope};

#[tokio::test]
async fn the_portable_form_round_trips_through_json() {
    let error = scope(
        ErrorContext::new()
            .with_operation_id("op-1")
            .with_breadcrumb("loading"),
        async {
            Error::new(ErrorCode::DATA_CORRUPTION, "bad page")
                .with_context("key", "orders/7")
                .with_context("keyspace", "state")
                .with_correlation_id("req-9")
                .with_severity(Severity::Critical)
                .with_cause(std::io::Error::other("checksum mismatch"))
        },
    )
    .await;
    let portable = error.to_portable();
    let json = serde_json::to_string(&portable).unwrap();
    assert!(
        json.contains(r#""context":{"key":"orders/7","keyspace":"state"}"#),
        "{json}"
    );
    let decoded: PortableError = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, portable);

    let rebuilt = decoded.into_error(&[]);
    assert_eq!(rebuilt.code(), ErrorCode::DATA_CORRUPTION);
    assert_eq!(rebuilt.severity(), Severity::Critical);
    assert_eq!(rebuilt.correlation_id(), Some("req-9"));
    assert_eq!(rebuilt.operation_id(), Some("op-1"));
    assert_eq!(rebuilt.breadcrumbs(), ["loading"]);
    assert_eq!(rebuilt.cause_messages(), vec!["checksum mismatch"]);
    assert_eq!(rebuilt.to_portable(), portable);
}

#[test]
fn a_minimal_json_document_is_accepted() {
    let json = r#"{"code":4301,"name":"timeout","category":"infrastructure","severity":"medium",
                  "message":"slow","timestamp_unix_micros":0}"#;
    let portable: PortableError = serde_json::from_str(json).unwrap();
    assert!(portable.context.is_empty());
    assert_eq!(portable.into_error(&[]).code(), ErrorCode::TIMEOUT);
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    let result: Result<PortableError, _> = serde_json::from_str(r#"{"code":"x"}"#);
    assert!(result.is_err());
}

fn full_portable() -> PortableError {
    Error::new(ErrorCode::DATA_CORRUPTION, "bad page")
        .with_context("key", "orders/7")
        .with_correlation_id("req-9")
        .with_cause(std::io::Error::other("checksum mismatch"))
        .to_portable()
}

#[test]
fn the_portable_form_round_trips_through_postcard() {
    let minimal = Error::new(ErrorCode::TIMEOUT, "slow").to_portable();
    assert_eq!(minimal.correlation_id, None);
    assert!(minimal.breadcrumbs.is_empty() && minimal.causes.is_empty());
    for portable in [full_portable(), minimal] {
        let bytes = postcard::to_allocvec(&portable).unwrap();
        let back: PortableError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, portable);
    }
}

#[test]
fn the_json_form_writes_absent_fields_as_null_and_empty() {
    let json = serde_json::to_value(Error::new(ErrorCode::TIMEOUT, "slow").to_portable()).unwrap();
    assert_eq!(json["correlation_id"], serde_json::Value::Null);
    assert_eq!(json["operation_id"], serde_json::Value::Null);
    assert_eq!(json["breadcrumbs"], serde_json::json!([]));
    assert_eq!(json["causes"], serde_json::json!([]));
    assert_eq!(json["context"], serde_json::json!({}));
}

#[test]
fn categories_and_severities_round_trip_through_postcard() {
    use foundation_error::Category;
    for category in [
        Category::Validation,
        Category::Business,
        Category::Infrastructure,
        Category::System,
    ] {
        let bytes = postcard::to_allocvec(&category).unwrap();
        assert_eq!(postcard::from_bytes::<Category>(&bytes).unwrap(), category);
    }
    for severity in [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        let bytes = postcard::to_allocvec(&severity).unwrap();
        assert_eq!(postcard::from_bytes::<Severity>(&bytes).unwrap(), severity);
    }
}
