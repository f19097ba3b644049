use crate::support::{Test, repo};

/// The checked-in schema is what the binary generates: regenerate it with
/// `cargo run -- schema > schemas/runbook.schema.json` when the model changes.
#[test]
fn checked_in_schema_is_up_to_date() {
    let output = Test::new().args(["schema"]).run();
    assert_eq!(output.code, 0);
    let checked_in = std::fs::read_to_string(repo().join("schemas/runbook.schema.json"))
        .expect("schemas/runbook.schema.json exists");
    assert!(
        output.stdout == checked_in,
        "schemas/runbook.schema.json is stale: run `cargo run -- schema > schemas/runbook.schema.json`"
    );
}

#[test]
fn schema_describes_steps_and_rejects_unknown_keys() {
    let output = Test::new().args(["schema"]).run();
    let schema: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("the schema is JSON");
    let step = &schema["$defs"]["Step"];
    assert_eq!(step["additionalProperties"], serde_json::json!(false));
    for key in [
        "id", "needs", "when", "for_each", "retry", "exec", "http", "uses", "fallback", "verify",
    ] {
        assert!(
            step["properties"].get(key).is_some(),
            "Step has no `{key}` in the schema"
        );
    }
    assert!(
        step["properties"].get("node").is_none(),
        "internal fields stay out of the schema"
    );
    assert_eq!(
        schema["required"],
        serde_json::json!(["version", "name", "steps"])
    );
}
