//! Declarations from TOML: a valid file opens; an invalid one is an error
//! naming the file, the flag and the problem.

use foundation_error::ErrorCode;
use foundation_flags::{
    FlagValue, Flags, declarations_from_toml, declarations_from_toml_file, normalized_bucket,
};

use crate::support::percent;

const VALID: &str = r#"
[flags.use_v2_coordinator]
description = "Route new workflows to the V2 coordinator"
default = 25
group_id = "coordinators"

[flags.use_reliable_messaging]
description = "Acknowledged delivery"
default = "on"

[flags.use_sync_test_apis]
description = "Synchronous test APIs"
default = false

[flags.enforce_supervised_tasks]
description = "Only supervised tasks"
default = "40%"
"#;

#[tokio::test]
async fn a_valid_file_declares_flags() {
    let declarations = declarations_from_toml("flags.toml", VALID).unwrap();
    let mut builder = Flags::builder();
    builder.declare_all(declarations);
    let flags = builder.open().await.unwrap();
    assert_eq!(flags.value("use_v2_coordinator").unwrap(), percent(25));
    assert_eq!(
        flags.value("use_reliable_messaging").unwrap(),
        FlagValue::On
    );
    assert_eq!(flags.value("use_sync_test_apis").unwrap(), FlagValue::Off);
    assert_eq!(
        flags.value("enforce_supervised_tasks").unwrap(),
        percent(40)
    );
    let v2 = flags.handle("use_v2_coordinator").unwrap();
    assert_eq!(v2.declaration().group_id(), "coordinators");
    assert_eq!(v2.bucket("c-1"), normalized_bucket("coordinators", "c-1"));
    assert_eq!(
        v2.declaration().description(),
        "Route new workflows to the V2 coordinator"
    );
}

#[test]
fn a_file_is_read_from_disk_and_a_missing_one_is_named() {
    let directory = std::env::temp_dir().join(format!("foundation-flags-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("flags.toml");
    std::fs::write(&path, VALID).unwrap();
    assert_eq!(declarations_from_toml_file(&path).unwrap().len(), 4);

    std::fs::write(&path, "[flags.x]\ndescription = \"d\"\ndefault = 300\n").unwrap();
    let error = declarations_from_toml_file(&path).unwrap_err();
    assert_eq!(error.code(), ErrorCode::RANGE_ERROR);
    assert!(
        error.message().starts_with(&path.display().to_string()),
        "{error}"
    );
    assert!(error.message().contains("flag `x`"), "{error}");
    std::fs::remove_dir_all(&directory).unwrap();

    let missing = directory.join("missing.toml");
    let error = declarations_from_toml_file(&missing).unwrap_err();
    assert_eq!(error.code(), ErrorCode::CONFIG_NOT_FOUND);
    assert!(error.message().contains("missing.toml"));
}

#[test]
fn invalid_files_name_the_file_the_flag_and_the_problem() {
    let cases = [
        (
            "[flags.a]\ndescription = \"d\"\ndefault = 101\n",
            ErrorCode::RANGE_ERROR,
            "flags.toml: flag `a`: default 101 is out of range 0..=100",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = -1\n",
            ErrorCode::RANGE_ERROR,
            "flags.toml: flag `a`: default -1 is out of range 0..=100",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = \"sometimes\"\n",
            ErrorCode::INVALID_CONFIG_VALUE,
            "flags.toml: flag `a`: default `sometimes`: expected on, off or a percentage 0..=100",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = \"130%\"\n",
            ErrorCode::RANGE_ERROR,
            "flags.toml: flag `a`: default `130%`: expected on, off or a percentage 0..=100",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = 1.5\n",
            ErrorCode::INVALID_CONFIG_VALUE,
            "flags.toml: flag `a`: default must be on, off or a percentage 0..=100, not float",
        ),
        (
            "[flags.a]\ndefault = \"on\"\n",
            ErrorCode::MISSING_REQUIRED_FIELD,
            "flags.toml: flag `a`: missing `description`",
        ),
        (
            "[flags.a]\ndescription = \"d\"\n",
            ErrorCode::MISSING_REQUIRED_FIELD,
            "flags.toml: flag `a`: missing `default` (on, off or a percentage 0..=100)",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = \"on\"\ngroupid = \"g\"\n",
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            "flags.toml: flag `a`: unknown key `groupid` (expected description, default, group_id)",
        ),
        (
            "[flags.\"a b\"]\ndescription = \"d\"\ndefault = \"on\"\n",
            ErrorCode::INVALID_CONFIG_VALUE,
            "flags.toml: flag `a b`: `a b` is not a valid flag name: use 1 to 128 ASCII letters, digits, `_`, `-` or `.`",
        ),
        (
            "[flags.a]\ndescription = \"d\"\ndefault = \"on\"\ngroup_id = 7\n",
            ErrorCode::INVALID_CONFIG_VALUE,
            "flags.toml: flag `a`: group_id must be a string, not integer",
        ),
        (
            "[flags]\na = 1\n",
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            "flags.toml: flag `a`: must be a table with `description` and `default`",
        ),
        (
            "[flag.a]\n",
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            "flags.toml: unknown top-level key `flag` (expected only `flags`)",
        ),
        (
            "",
            ErrorCode::MISSING_REQUIRED_FIELD,
            "flags.toml: no `flags` table",
        ),
    ];
    for (text, code, message) in cases {
        let error = declarations_from_toml("flags.toml", text).unwrap_err();
        assert_eq!(error.code(), code, "{text}");
        assert_eq!(error.message(), message, "{text}");
        assert_eq!(error.context_value("file"), Some("flags.toml"));
    }

    let syntax = declarations_from_toml("flags.toml", "[flags.a\n").unwrap_err();
    assert_eq!(syntax.code(), ErrorCode::INVALID_CONFIG_STRUCTURE);
    assert!(
        syntax.message().starts_with("flags.toml: invalid TOML:"),
        "{syntax}"
    );
    assert!(syntax.message().contains("line 1"), "{syntax}");
}
