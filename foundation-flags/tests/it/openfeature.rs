//! The OpenFeature provider through the standard client API.

use foundation_flags::{FlagValue, FlagsProvider, PROVIDER_NAME, normalized_bucket};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};

use crate::support::{by, open, percent};

#[tokio::test]
async fn openfeature_clients_evaluate_our_flags() {
    let flags = open().await;
    flags
        .set("use_v2_coordinator", percent(40), by("t"))
        .await
        .unwrap();
    flags
        .set("use_reliable_messaging", FlagValue::On, by("t"))
        .await
        .unwrap();

    let mut api = OpenFeature::default();
    api.set_provider(FlagsProvider::new(flags.clone())).await;
    assert_eq!(api.provider_metadata().await.name, PROVIDER_NAME);
    let client = api.create_client();

    for n in 0..200 {
        let id = format!("coordinator-{n}");
        let context = EvaluationContext::default().with_targeting_key(id.clone());
        let details = client
            .get_bool_details("use_v2_coordinator", Some(&context), None)
            .await
            .unwrap();
        let bucket = normalized_bucket("use_v2_coordinator", &id);
        assert_eq!(details.value, bucket <= 40);
        assert_eq!(
            details.value,
            flags.is_enabled_for("use_v2_coordinator", &id)
        );
        assert_eq!(details.reason, Some(EvaluationReason::Split));
        assert_eq!(
            details.flag_metadata.values.get("bucket"),
            Some(&i64::from(bucket).into())
        );
        assert_eq!(
            details.flag_metadata.values.get("rollout_percentage"),
            Some(&40i64.into())
        );
    }

    let details = client
        .get_bool_details("use_reliable_messaging", None, None)
        .await
        .unwrap();
    assert!(details.value);
    assert_eq!(details.reason, Some(EvaluationReason::Static));
    assert_eq!(details.variant.as_deref(), Some("on"));

    let details = client
        .get_bool_details("use_sync_test_apis", None, None)
        .await
        .unwrap();
    assert_eq!(
        (details.value, details.reason),
        (false, Some(EvaluationReason::Disabled))
    );

    // Without a targeting key: the keyless answer, reason DEFAULT.
    let details = client
        .get_bool_details("use_v2_coordinator", None, None)
        .await
        .unwrap();
    assert_eq!(
        (details.value, details.reason),
        (false, Some(EvaluationReason::Default))
    );
}

#[tokio::test]
async fn openfeature_errors_are_flag_not_found_and_type_mismatch() {
    let flags = open().await;
    let mut api = OpenFeature::default();
    api.set_provider(FlagsProvider::new(flags)).await;
    let client = api.create_client();

    let error = client
        .get_bool_value("no_such_flag", None, None)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    // The usual client pattern falls back on the caller's default.
    assert!(
        client
            .get_bool_value("no_such_flag", None, None)
            .await
            .unwrap_or(true)
    );

    let error = client
        .get_int_value("use_v2_coordinator", None, None)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);
    let error = client
        .get_string_value("no_such_flag", None, None)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    let error = client
        .get_float_value("use_v2_coordinator", None, None)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);
}
