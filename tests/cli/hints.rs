//! Mistakes a newcomer makes, and what they are told: numbers in `command`, YAML 1.1
//! booleans, a plain word for a JSON input.

use crate::support::Test;

#[test]
fn numbers_and_booleans_in_a_command_are_arguments() {
    let output = Test::new()
        .write(
            "nap.yaml",
            "version: 1\nname: nap\nsteps:\n  - id: nap\n    exec: { command: [sleep, 0] }\n  - id: say\n    exec: { command: [echo, 1, 2.5, true] }\n    outputs: { said: '.stdout' }\noutputs:\n  said: .steps.say.outputs.said\n",
        )
        .args(["run", "nap.yaml"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.stdout, "{\n  \"said\": \"1 2.5 true\\n\"\n}\n");
}

const LISTS: &str = "version: 1\nname: lists\ninputs:\n  jobs: { type: array }\n  target: { type: object, default: {} }\nsteps:\n  - id: a\n    exec: { command: [echo, '{{inputs.jobs}}'] }\n";

#[test]
fn a_plain_word_for_a_json_input_says_what_is_expected_with_an_example() {
    let word = Test::new()
        .write("lists.yaml", LISTS)
        .args(["plan", "lists.yaml", "--input", "jobs=orders"])
        .run();
    assert_eq!(word.code, 2);
    insta::assert_snapshot!(word.stderr);
    let broken = Test::new()
        .write("lists.yaml", LISTS)
        .args([
            "plan",
            "lists.yaml",
            "--input",
            "jobs=[\"orders\",",
            "--input",
            "target=[]",
        ])
        .run();
    assert_eq!(broken.code, 2);
    insta::assert_snapshot!(broken.stderr);
}
