//! What a step printed: kept in the journal (masked, bounded), shown by `runbook logs`, and
//! streamed by `run --verbose`.

use crate::durable::{Bench, finish};
use std::time::{Duration, Instant};

const PRINTS: &str = r#"version: 1
name: prints
secrets:
  token: { env: LOGS_TOKEN }
steps:
  - id: build
    exec:
      script: |
        echo "compiling"
        echo "token is {{secrets.token}}"
        echo "warning: slow disk" >&2
  - id: check
    needs: [build]
    retry: { attempts: 2, delay: 10ms }
    exec: { script: 'echo "checking"; echo "no good" >&2; exit 1' }
"#;

const TOKEN: &str = "tok-5ecret-value";

/// `runbook logs ARGS...`, which must succeed: its standard output.
fn logs(bench: &Bench, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let shown = bench.runbook(&all);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    shown.stdout
}

fn run_prints(bench: &Bench, extra: &[&str]) -> crate::support::Output {
    bench.write("prints.yaml", PRINTS);
    let mut args = vec!["run", "prints.yaml", "--run-id", "p"];
    args.extend_from_slice(extra);
    crate::support::Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
        .env("LOGS_TOKEN", TOKEN)
        .args(args)
        .run()
}

#[test]
fn logs_shows_what_every_attempt_printed_with_secrets_masked() {
    let bench = Bench::new();
    let run = run_prints(&bench, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains("compiling"),
        "without --verbose the output is not on the terminal: {}",
        run.stderr
    );
    insta::assert_snapshot!(logs(&bench, &["p"]));
    let store = std::fs::read(bench.db()).expect("the store file");
    assert!(
        !store.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the secret reached the store file"
    );

    let one = logs(&bench, &["p", "check"]);
    assert!(one.contains("check | checking"), "{one}");
    assert!(!one.contains("build"), "{one}");

    let missing = bench.runbook(&["logs", "p", "nope"]);
    assert_eq!(missing.code, 2);
    insta::assert_snapshot!(missing.stderr);
}

#[test]
fn run_verbose_shows_step_output_prefixed_by_step() {
    let bench = Bench::new();
    let run = run_prints(&bench, &["--verbose"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("build | compiling\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("build | token is ***\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("build ! warning: slow disk\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("check ! no good\n"), "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN), "{}", run.stderr);
}

#[test]
fn the_journal_keeps_only_the_end_of_a_long_output() {
    let bench = Bench::new();
    bench.write(
        "long.yaml",
        r#"version: 1
name: long
steps:
  - id: chatty
    exec: { script: 'head -c 300000 /dev/zero | tr "\0" x; echo; echo THE-END' }
"#,
    );
    let run = bench.runbook(&["run", "long.yaml", "--run-id", "l"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = logs(&bench, &["l"]);
    assert!(shown.contains("chatty | THE-END"), "the end is kept");
    assert!(shown.contains("earlier bytes not kept"), "the cut is said");
    assert!(
        shown.len() < 70 * 1024,
        "64 KiB of the stream at most, not {} bytes",
        shown.len()
    );
}

#[test]
fn output_from_before_and_after_a_resume_is_all_kept() {
    let bench = Bench::new();
    bench.write(
        "two.yaml",
        r#"version: 1
name: two
steps:
  - id: a
    exec: { script: 'echo from-a' }
  - id: b
    needs: [a]
    exec: { script: 'if [ -e side ]; then echo from-b-resumed; exit 0; fi; echo started > side; sleep 30' }
"#,
    );
    bench.run_until_interrupted(&["run", "two.yaml", "--run-id", "t"]);
    let resumed = bench.runbook(&["resume", "t"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    insta::assert_snapshot!(logs(&bench, &["t"]));
}

#[test]
fn logs_follow_shows_output_of_a_live_run_and_stops_when_it_ends() {
    let bench = Bench::new();
    bench.write(
        "live.yaml",
        r#"version: 1
name: live
steps:
  - id: early
    exec: { script: 'echo early-output; echo started > side' }
  - id: late
    needs: [early]
    exec: { script: 'while [ ! -e go ]; do sleep 0.05; done; echo late-output' }
"#,
    );
    let run = bench.spawn(&["run", "live.yaml", "--run-id", "v"]);
    bench.wait_for("side", "started");
    // The run's first event is on disk before any step starts; `early` has ended once its
    // file exists, but its output event may still be on its way to the journal.
    std::thread::sleep(Duration::from_millis(300));
    let mut follow = bench.spawn(&["logs", "v", "--follow"]);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        follow.try_wait().expect("poll logs --follow").is_none(),
        "logs --follow stopped while the run was still going"
    );
    bench.write("go", "");
    let deadline = Instant::now() + Duration::from_secs(20);
    while follow.try_wait().expect("poll logs --follow").is_none() {
        assert!(
            Instant::now() < deadline,
            "logs --follow did not stop when the run ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stdout, stderr) = finish(follow);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("early | early-output"), "{stdout}");
    assert!(stdout.contains("late | late-output"), "{stdout}");
    let (code, _, stderr) = finish(run);
    assert_eq!(code, 0, "{stderr}");
}
