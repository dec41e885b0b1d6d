//! Definitions: parsing, validation with paths, limits, hostile input,
//! content hashes.

use foundation_error::ErrorCode;
use jido_workflow::{Delivery, Limits, Step, WorkRegistry, WorkflowDefinition};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{PLAN, plan};

fn error_of(text: &str) -> foundation_error::Error {
    WorkflowDefinition::from_json(text).expect_err("the definition is invalid")
}

#[test]
fn the_plan_parses_with_paths_and_defaults() {
    let definition = plan();
    assert_eq!(definition.name(), "integration_test_workflow");
    let paths: Vec<&str> = definition
        .tasks()
        .iter()
        .map(|task| task.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "steps[0].parallel[0]",
            "steps[0].parallel[1]",
            "steps[0].parallel[2]",
            "steps[1].sequential[0]",
            "steps[1].sequential[1]"
        ]
    );
    assert!(matches!(&definition.steps()[0], Step::Parallel(children) if children.len() == 3));
    let task = &definition.tasks()[0];
    assert_eq!(task.retry.attempts, 1);
    assert_eq!(task.delivery, Delivery::AtLeastOnce);
    assert_eq!(task.params, Value::Null);
}

#[test]
fn toml_and_json_of_the_same_content_have_the_same_hash() {
    let toml = r#"
name = "integration_test_workflow"

[[steps]]
parallel = [
  { task = { id = "task1", work = "process_data" } },
  { task = { id = "task2", work = "validate_data" } },
  { task = { id = "task3", work = "transform_data" } },
]

[[steps]]
sequential = [
  { task = { id = "task4", work = "aggregate_results", timeout_ms = 30000 } },
  { task = { id = "task5", work = "save_results" } },
]
"#;
    let from_toml = WorkflowDefinition::from_toml(toml).expect("valid TOML");
    assert_eq!(from_toml.hash(), plan().hash());
    // Reordered keys, same content.
    let reordered = PLAN.replace(
        r#"{"id": "task1", "work": "process_data"}"#,
        r#"{"work": "process_data", "id": "task1"}"#,
    );
    assert_eq!(
        WorkflowDefinition::from_json(&reordered)
            .expect("valid")
            .hash(),
        plan().hash()
    );
    // Different content, different hash.
    let changed = PLAN.replace("save_results\"}", "save_results\", \"timeout_ms\": 5}");
    assert_ne!(
        WorkflowDefinition::from_json(&changed)
            .expect("valid")
            .hash(),
        plan().hash()
    );
    assert_eq!(plan().hash().as_str().len(), 32);
}

#[test]
fn errors_name_the_step_and_the_field() {
    let cases = [
        (r#"{"name": "x", "steps": []}"#, "", "steps"),
        (
            r#"{"name": "x", "steps": [{"parallel": []}]}"#,
            "steps[0]",
            "parallel",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "w"}}, {"sequential": [{"task": {"id": "a", "work": "w"}}]}]}"#,
            "steps[1].sequential[0]",
            "id",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": 7}}]}"#,
            "steps[0]",
            "work",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "w", "timeout_ms": 0}}]}"#,
            "steps[0]",
            "timeout_ms",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "w", "timeout_ms": -5}}]}"#,
            "steps[0]",
            "timeout_ms",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "w", "retry": {"attempts": 0}}}]}"#,
            "steps[0]",
            "retry.attempts",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "w", "colour": 1}}]}"#,
            "steps[0]",
            "colour",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "delay"}}]}"#,
            "steps[0]",
            "params.duration_ms",
        ),
        (
            r#"{"name": "x", "steps": [{"task": {"id": "a", "work": "await_signal"}}]}"#,
            "steps[0]",
            "params.signal",
        ),
        (r#"{"name": "x", "steps": [{"loop": []}]}"#, "steps[0]", ""),
        (
            r#"{"name": "", "steps": [{"task": {"id": "a", "work": "w"}}]}"#,
            "",
            "name",
        ),
        (r#"[1, 2]"#, "", ""),
    ];
    for (text, path, field) in cases {
        let error = error_of(text);
        assert_eq!(
            error.code(),
            ErrorCode::VALIDATION_FAILED,
            "{text}: {error}"
        );
        assert_eq!(error.context_value("path"), Some(path), "{text}: {error}");
        assert_eq!(error.context_value("field"), Some(field), "{text}: {error}");
    }
    assert_eq!(error_of("{not json").code(), ErrorCode::FORMAT_ERROR);
    assert_eq!(
        WorkflowDefinition::from_toml("name = ").unwrap_err().code(),
        ErrorCode::FORMAT_ERROR
    );
}

#[test]
fn unknown_works_are_found_against_the_registry() {
    let mut works = WorkRegistry::new();
    works.register("process_data", |_input: jido_workflow::StepInput| async {
        Ok(Value::Null)
    });
    let error = plan().check_works(&works).unwrap_err();
    assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
    assert_eq!(error.context_value("path"), Some("steps[0].parallel[1]"));
    assert_eq!(error.context_value("field"), Some("work"));
}

fn nested(depth: usize) -> Value {
    let mut step = json!({"task": {"id": "leaf", "work": "w"}});
    for _ in 1..depth {
        step = json!({"sequential": [step]});
    }
    json!({"name": "deep", "steps": [step]})
}

#[test]
fn depth_and_step_limits_hold() {
    assert!(WorkflowDefinition::from_value(&nested(32)).is_ok());
    let error = WorkflowDefinition::from_value(&nested(33)).unwrap_err();
    assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
    assert!(error.message().contains("nest deeper"), "{error}");

    let tasks: Vec<Value> = (0..10_000)
        .map(|index| json!({"task": {"id": format!("t{index}"), "work": "w"}}))
        .collect();
    // 10,000 tasks plus their parallel group is 10,001 steps.
    let too_many = json!({"name": "wide", "steps": [{"parallel": tasks}]});
    let error = WorkflowDefinition::from_value(&too_many).unwrap_err();
    assert!(error.message().contains("more than 10000 steps"), "{error}");
    let tasks: Vec<Value> = (0..9_999)
        .map(|index| json!({"task": {"id": format!("t{index}"), "work": "w"}}))
        .collect();
    let definition =
        WorkflowDefinition::from_value(&json!({"name": "wide", "steps": [{"parallel": tasks}]}))
            .expect("9,999 tasks and one group fit");
    assert_eq!(definition.tasks().len(), 9_999);
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    // Nesting far beyond any parser's recursion, in both formats.
    let deep_json = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    assert!(WorkflowDefinition::from_json(&deep_json).is_err());
    let deep_toml = format!(
        "name = \"x\"\nsteps = {}{}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert_eq!(
        WorkflowDefinition::from_toml(&deep_toml)
            .unwrap_err()
            .code(),
        ErrorCode::VALIDATION_FAILED
    );
    let deep_inline = format!(
        "name = \"x\"\nsteps = [{}1{}]",
        "{a = ".repeat(50_000),
        "}".repeat(50_000)
    );
    assert!(WorkflowDefinition::from_toml(&deep_inline).is_err());

    // Parameters built in memory deeper than any parser would allow.
    // (Built by hand: `json!` would serialise the value recursively.)
    let mut params = json!(1);
    for _ in 0..100_000 {
        params = Value::Array(vec![params]);
    }
    let mut task = json!({"id": "a", "work": "w"});
    task.as_object_mut()
        .expect("an object")
        .insert("params".into(), params);
    let mut step = serde_json::Map::new();
    step.insert("task".into(), task);
    let mut definition = json!({"name": "x"});
    definition
        .as_object_mut()
        .expect("an object")
        .insert("steps".into(), Value::Array(vec![Value::Object(step)]));
    let error = WorkflowDefinition::from_value(&definition).unwrap_err();
    assert_eq!(error.context_value("field"), Some("params"));
    // Dropping a 100,000-deep serde_json value recurses in serde_json's own
    // Drop; leak it rather than test serde_json's stack here.
    std::mem::forget(definition);

    // Huge strings.
    let long_id = "a".repeat(100_000);
    let error = error_of(&format!(
        r#"{{"name": "x", "steps": [{{"task": {{"id": "{long_id}", "work": "w"}}}}]}}"#
    ));
    assert_eq!(error.context_value("field"), Some("id"));
    let big = "x".repeat(9 * 1024 * 1024);
    assert!(
        error_of(&format!(r#"{{"name": "{big}"}}"#))
            .message()
            .contains("bytes")
    );

    // Smaller limits are honoured.
    let mut limits = Limits::default();
    limits.max_depth = 2;
    assert!(WorkflowDefinition::from_value_with(&nested(3), &limits).is_err());
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("task"),
            Just("parallel"),
            Just("sequential"),
            Just("id"),
            Just("work")
        ]
        .prop_map(|key| Value::String(key.to_owned())),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("task".to_owned()),
                    Just("parallel".to_owned()),
                    Just("sequential".to_owned()),
                    Just("id".to_owned()),
                    Just("work".to_owned()),
                    Just("params".to_owned()),
                    Just("timeout_ms".to_owned()),
                    Just("retry".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random definitions are either valid (and then hash stably and
    /// re-parse from their canonical form to the same hash) or a
    /// classified error with a path; never a panic.
    #[test]
    fn random_definitions_never_panic(steps in arbitrary_json(), name in "[a-z]{0,4}") {
        let definition = json!({"name": name, "steps": steps});
        match WorkflowDefinition::from_value(&definition) {
            Ok(parsed) => {
                let again = WorkflowDefinition::from_json(parsed.canonical_json()).expect("canonical form parses");
                prop_assert_eq!(again.hash(), parsed.hash());
            }
            Err(error) => {
                prop_assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
                prop_assert!(error.context_value("path").is_some());
            }
        }
        let text = definition.to_string();
        let _ = WorkflowDefinition::from_json(&text);
    }
}
