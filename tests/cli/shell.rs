//! What the command offers a shell and a terminal: completions and a man page generated from
//! the command-line definitions, and plain ASCII marks where Unicode cannot be shown.

use crate::support::Test;

#[test]
fn completions_cover_every_subcommand_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _runbook"),
        ("zsh", "#compdef runbook"),
        ("fish", "complete -c runbook"),
    ] {
        let output = Test::new().args(["completions", shell]).run();
        assert_eq!(output.code, 0, "{shell}: {}", output.stderr);
        assert!(output.stdout.contains(marker), "{shell}: {}", output.stdout);
        for subcommand in ["run", "resume", "logs", "validate", "completions"] {
            assert!(
                output.stdout.contains(subcommand),
                "{shell} completions lack `{subcommand}`"
            );
        }
    }
    let wrong = Test::new().args(["completions", "cmd.exe"]).run();
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("possible values: bash"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn man_prints_a_page_and_writes_one_per_subcommand() {
    let output = Test::new().args(["man"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.starts_with(".ie"), "{}", output.stdout);
    assert!(output.stdout.contains(".TH runbook 1"), "{}", output.stdout);
    assert!(
        output.stdout.contains("runbook\\-logs"),
        "{}",
        output.stdout
    );

    let written = Test::new().args(["man", "--dir", "pages"]).run();
    assert_eq!(written.code, 0, "{}", written.stderr);
    let page = std::fs::read_to_string(written.dir().join("pages/runbook-run.1"))
        .expect("a page for `runbook run`");
    assert!(page.contains("\\-\\-verbose"), "{page}");
    assert!(written.dir().join("pages/runbook.1").is_file());
}

const ONE_STEP: &str = "version: 1\nname: one\nsteps:\n  - id: a\n    exec: { script: 'true' }\n  - id: b\n    needs: [a]\n    exec: { script: 'exit 1' }\n";

/// `runbook ARGS` with the locale and terminal given, and no other locale variable.
fn with_locale(lang: &str, term: &str, extra: &[(&str, &str)], args: &[&str]) -> String {
    let mut test = Test::new()
        .write("one.yaml", ONE_STEP)
        .write(
            "bad.yaml",
            "version: 1\nname: bad\nsteps:\n  - id: a\n    exec: { scrpt: x }\n",
        )
        .env("LC_ALL", "")
        .env("LC_CTYPE", "")
        .env("LANG", lang)
        .env("TERM", term)
        .env("RUNBOOK_SYMBOLS", "");
    for (name, value) in extra {
        test = test.env(*name, *value);
    }
    test.args(args.iter().copied()).run().stderr
}

#[test]
fn progress_marks_are_ascii_where_the_terminal_cannot_show_unicode() {
    let run = ["run", "one.yaml"];
    let unicode = with_locale("en_US.UTF-8", "xterm", &[], &run);
    assert!(
        unicode.contains("▶ a") && unicode.contains("✓ a succeeded"),
        "{unicode}"
    );
    assert!(unicode.contains("✗ b failed"), "{unicode}");

    for stderr in [
        with_locale("C", "xterm", &[], &run),
        with_locale("en_US.UTF-8", "dumb", &[], &run),
        with_locale(
            "en_US.UTF-8",
            "xterm",
            &[("RUNBOOK_SYMBOLS", "ascii")],
            &run,
        ),
    ] {
        assert!(stderr.contains("> a\n"), "{stderr}");
        assert!(stderr.contains("+ a succeeded"), "{stderr}");
        assert!(stderr.contains("x b failed"), "{stderr}");
        assert!(stderr.is_ascii(), "{stderr}");
    }
    let forced = with_locale("C", "xterm", &[("RUNBOOK_SYMBOLS", "unicode")], &run);
    assert!(forced.contains("✓ a succeeded"), "{forced}");
}

#[test]
fn diagnostics_are_drawn_in_ascii_where_the_terminal_cannot_show_unicode() {
    let stderr = with_locale("C", "xterm", &[], &["validate", "bad.yaml"]);
    assert!(stderr.is_ascii(), "{stderr}");
    insta::assert_snapshot!(stderr);
}
