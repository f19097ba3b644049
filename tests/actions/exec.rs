use std::time::{Duration, Instant};

use runbook::actions::ActionErrorKind;
use runbook::actions::exec::Exec;
use serde_json::{Value, json};

use crate::support::{Runner, eventually, process_is_gone};

fn exec() -> Runner {
    Runner::new("exec")
}

fn stdout_of(result: &Option<Value>) -> Option<&Value> {
    result.as_ref().map(|r| &r["stdout"])
}

#[tokio::test]
async fn command_runs_without_a_shell_and_renders_arguments_plainly() {
    let evil = "it's $(touch pwned) `id` ; *";
    let dir = tempfile::tempdir().expect("temp dir");
    let result = exec()
        .input("evil", json!(evil))
        .ok(json!({
            "command": ["printf", "%s|%s|%s", "{{inputs.evil}}", "{{inputs.port}}", "{{inputs.name}}"],
            "cwd": dir.path(),
        }))
        .await;
    // No shell saw the value: it arrives as one argument, byte for byte; a number from a
    // whole-string template is passed as its text.
    assert_eq!(result["stdout"], json!(format!("{evil}|5432|world")));
    assert_eq!(result["exit_code"], json!(0));
    assert_eq!(result["stderr"], json!(""));
    assert!(!dir.path().join("pwned").exists());
}

#[tokio::test]
async fn script_values_are_data_and_triple_braces_are_raw() {
    let evil = "a'b; touch pwned; $(touch pwned2) `touch pwned3` \"q\" *";
    let dir = tempfile::tempdir().expect("temp dir");
    let result = exec()
        .input("evil", json!(evil))
        .input("raw", json!("echo one; echo two"))
        .ok(json!({
            "script": "printf '%s\\n' {{inputs.evil}}\n{{{inputs.raw}}}",
            "cwd": dir.path(),
        }))
        .await;
    assert_eq!(result["stdout"], json!(format!("{evil}\none\ntwo\n")));
    for file in ["pwned", "pwned2", "pwned3"] {
        assert!(!dir.path().join(file).exists(), "{file} was created");
    }
}

#[tokio::test]
async fn script_runs_with_sh_eu() {
    // -u: an unset variable is an error; -e: the first failing command stops the script.
    let unset = exec()
        .err(json!({"script": "echo \"$NOT_SET_ANYWHERE_RUNBOOK\"\necho after"}))
        .await;
    assert_eq!(unset.kind, ActionErrorKind::Failed);
    assert_eq!(stdout_of(&unset.result), Some(&json!("")));
    let failing = exec().err(json!({"script": "false\necho after"})).await;
    assert_eq!(stdout_of(&failing.result), Some(&json!("")));
}

#[tokio::test]
async fn env_cwd_and_stdin_reach_the_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cwd = dir.path().canonicalize().expect("canonical temp dir");
    let result = exec()
        .input("dir", json!(cwd))
        .ok(json!({
            "script": "test -n \"$PATH\"\nprintf '%s|%s|%s|' \"$GREETING\" \"$PORT\" \"$(pwd -P)\"\ncat",
            "env": {"GREETING": "hello {{inputs.name}}", "PORT": "{{inputs.port}}"},
            "cwd": "{{inputs.dir}}",
            "stdin": "line one\nline two\n",
        }))
        .await;
    // `test -n "$PATH"` passing shows the variables are added to the inherited environment.
    assert_eq!(
        result["stdout"],
        json!(format!(
            "hello world|5432|{}|line one\nline two\n",
            cwd.display()
        ))
    );
}

#[tokio::test]
async fn stdin_is_empty_unless_given() {
    let result = exec().ok(json!({"command": ["wc", "-c"]})).await;
    assert_eq!(result["stdout"].as_str().map(str::trim), Some("0"));
}

#[tokio::test]
async fn large_stdin_for_a_program_that_does_not_read_it_does_not_hang() {
    // Several times a pipe's buffer (64 KiB on Linux), so writing it all would block.
    let big = "x".repeat(512 * 1024);
    let result = exec().ok(json!({"command": ["true"], "stdin": big})).await;
    assert_eq!(result["exit_code"], json!(0));
}

#[tokio::test]
async fn non_zero_exit_fails_with_the_last_stderr_line_and_the_result() {
    let error = exec()
        .err(json!({
            "script": "echo partial\necho 'first problem' >&2\necho 'job not found' >&2\necho >&2\nexit 3",
        }))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Failed);
    assert_eq!(error.message, "script exited with status 3: job not found");
    let result = error.result.expect("result attached");
    assert_eq!(result["exit_code"], json!(3));
    assert_eq!(result["stdout"], json!("partial\n"));
    assert_eq!(result["stderr"], json!("first problem\njob not found\n\n"));

    let named = exec().err(json!({"command": ["sh", "-c", "exit 7"]})).await;
    assert_eq!(named.message, "`sh` exited with status 7");
}

#[tokio::test]
async fn a_signal_exit_is_reported_as_such() {
    let error = exec().err(json!({"script": "kill -KILL $$"})).await;
    assert_eq!(error.message, "script was killed by signal 9 (SIGKILL)");
    assert_eq!(
        error.result.map(|r| r["exit_code"].clone()),
        Some(json!(137))
    );
}

#[tokio::test]
async fn output_is_capped_per_stream_without_deadlock() {
    // Both streams far beyond a pipe's buffer, written at the same time: reading one
    // stream after the other would deadlock.
    let result = exec()
        .ok(json!({
            "script": "head -c 3000000 /dev/zero | tr '\\0' a &\nhead -c 2500000 /dev/zero | tr '\\0' b >&2\nwait",
        }))
        .await;
    let mib = 1024 * 1024;
    let stdout = result["stdout"].as_str().expect("stdout text");
    let stderr = result["stderr"].as_str().expect("stderr text");
    assert_eq!(
        stdout,
        format!("{}…[truncated {} bytes]", "a".repeat(mib), 3_000_000 - mib)
    );
    assert_eq!(
        stderr,
        format!("{}…[truncated {} bytes]", "b".repeat(mib), 2_500_000 - mib)
    );
    assert_eq!(result["json"], Value::Null);
}

#[tokio::test]
async fn a_character_cut_by_the_cap_is_dropped_whole() {
    static SMALL: Exec = Exec {
        max_output: 4,
        ..Exec::DEFAULT
    };
    // "aaé" is 4 bytes; "aaaé" is 5: the cap falls inside "é".
    let result = Runner::with(&SMALL)
        .ok(json!({"command": ["printf", "aaaé!"]}))
        .await;
    assert_eq!(result["stdout"], json!("aaa…[truncated 3 bytes]"));
}

#[tokio::test]
async fn json_stdout_is_parsed_and_other_stdout_is_not() {
    let result = exec()
        .ok(json!({"script": "printf '{\"path\": \"%s\", \"n\": [1, 2]}\\n' /savepoints/sp-1"}))
        .await;
    assert_eq!(
        result["json"],
        json!({"path": "/savepoints/sp-1", "n": [1, 2]})
    );
    let plain = exec().ok(json!({"command": ["echo", "done"]})).await;
    assert_eq!(plain["json"], Value::Null);
    assert_eq!(plain["stdout"], json!("done\n"));
}

#[tokio::test]
async fn a_missing_program_is_named() {
    let error = exec()
        .err(json!({"command": ["no-such-program-for-runbook-tests", "x"]}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Invalid);
    assert_eq!(
        error.message,
        "program `no-such-program-for-runbook-tests` not found on PATH"
    );
    let by_path = exec().err(json!({"command": ["./no/such/file"]})).await;
    assert_eq!(by_path.message, "program `./no/such/file` does not exist");
}

#[tokio::test]
async fn a_program_is_looked_up_on_the_path_the_step_sets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let tool = dir.path().join("runbook-test-tool");
    std::fs::write(&tool, "#!/bin/sh\necho \"tool $1\"\n").expect("written");
    let bin = dir.path().to_str().expect("a text path");
    let path = format!("/no/such/dir:{bin}:/usr/bin:/bin");

    // There, but not executable: said as such, not as missing.
    let denied = exec()
        .err(json!({"command": ["runbook-test-tool", "x"], "env": {"PATH": path}}))
        .await;
    assert_eq!(denied.kind, ActionErrorKind::Invalid);
    assert_eq!(
        denied.message,
        "cannot run `runbook-test-tool`: permission denied (is it an executable file?)"
    );

    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("made runnable");
    let result = exec()
        .ok(json!({"command": ["runbook-test-tool", "x"], "env": {"PATH": path}}))
        .await;
    assert_eq!(result["stdout"], json!("tool x\n"));
    // The engine's own PATH does not have it.
    let error = exec()
        .err(json!({"command": ["runbook-test-tool", "x"]}))
        .await;
    assert_eq!(
        error.message,
        "program `runbook-test-tool` not found on PATH"
    );
}

#[tokio::test]
async fn a_program_starts_with_no_signal_blocked_and_sigpipe_at_its_default() {
    // The engine ignores SIGPIPE (the Rust runtime does), and an ignored signal stays ignored
    // across exec: a program must get it back, or `yes | head -1` never ends `yes` by it.
    let result = exec()
        .ok(json!({"command": ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]}))
        .await;
    let text = result["stdout"].as_str().expect("text");
    assert_eq!(signal_mask(text, "SigBlk:"), 0, "{text}");
    let sigpipe = signal_bit(libc::SIGPIPE);
    assert_eq!(
        signal_mask(text, "SigIgn:") & sigpipe,
        0,
        "SIGPIPE ignored: {text}"
    );
}

/// A signal mask of `/proc/self/status` (`SigBlk:`, `SigIgn:`), from the lines in `text`.
fn signal_mask(text: &str, name: &str) -> u64 {
    let line = text
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {text:?}"));
    u64::from_str_radix(line[name.len()..].trim(), 16).expect("a hex mask")
}

/// The bit of `signal` in such a mask.
fn signal_bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

#[tokio::test]
async fn a_signal_the_engine_ignores_stays_ignored_in_the_program() {
    // Ignored across exec, as by `nohup`: a program started by an engine that ignores SIGXFSZ
    // ignores it too (nothing in these tests raises it, and another test's program that
    // starts meanwhile only ignores it as well). SIGPIPE is the exception, the Rust
    // runtime's own.
    // SAFETY: sets no handler, only ignores the signal; the former one is put back below.
    let former = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let result = exec()
        .ok(json!({"command": ["grep", "^SigIgn:", "/proc/self/status"]}))
        .await;
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGXFSZ, former) };
    let text = result["stdout"].as_str().expect("text");
    let ignored = signal_mask(text, "SigIgn:");
    assert_ne!(
        ignored & signal_bit(libc::SIGXFSZ),
        0,
        "SIGXFSZ not ignored: {text}"
    );
    assert_eq!(
        ignored & signal_bit(libc::SIGPIPE),
        0,
        "SIGPIPE ignored: {text}"
    );
    assert_eq!(
        ignored & signal_bit(libc::SIGTERM),
        0,
        "SIGTERM ignored: {text}"
    );
}

#[tokio::test]
async fn a_nul_byte_in_an_argument_or_a_variable_is_invalid_and_its_value_not_shown() {
    let argument = exec()
        .err(json!({"command": ["echo", "secret\0value"]}))
        .await;
    assert_eq!(argument.kind, ActionErrorKind::Invalid);
    assert_eq!(
        argument.message,
        "cannot run `echo`: argument 1 holds a NUL byte"
    );
    let variable = exec()
        .err(json!({"command": ["true"], "env": {"TOKEN": "secret\0value"}}))
        .await;
    assert_eq!(variable.kind, ActionErrorKind::Invalid);
    assert_eq!(
        variable.message,
        "cannot run `true`: variable `TOKEN` holds a NUL byte"
    );
}

#[tokio::test]
async fn a_missing_working_directory_is_named_not_mistaken_for_the_program() {
    let error = exec()
        .err(json!({"command": ["true"], "cwd": "/no/such/dir/for/runbook"}))
        .await;
    assert_eq!(error.kind, ActionErrorKind::Invalid);
    assert_eq!(
        error.message,
        "working directory `/no/such/dir/for/runbook` does not exist"
    );
}

#[tokio::test]
async fn wrong_template_types_and_missing_names_are_invalid() {
    let list = exec()
        .err(json!({"command": ["true"], "cwd": "{{inputs.list}}"}))
        .await;
    assert_eq!(list.kind, ActionErrorKind::Invalid);
    assert_eq!(list.message, "`exec.cwd` must be a string, not a list");

    let missing = exec().err(json!({"script": "echo {{inputs.nope}}"})).await;
    assert_eq!(missing.kind, ActionErrorKind::Invalid);
    assert!(
        missing.message.contains("inputs.nope"),
        "{}",
        missing.message
    );

    let both = exec()
        .err(json!({"command": ["true"], "script": "true"}))
        .await;
    assert_eq!(both.kind, ActionErrorKind::Invalid);
    let empty = exec().err(json!({"command": []})).await;
    assert_eq!(empty.kind, ActionErrorKind::Invalid);
}

/// Reads a pid the script wrote to `file`, once it is there.
fn read_pid(file: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Runs `script` (which writes `$$` to `$LEADER` and a background child's pid to `$CHILD`),
/// cancels once both pids are known, and returns the outcome, the pids and the time from
/// cancel to return.
async fn cancel_once_started(
    runner: &Runner,
    script: &str,
) -> (runbook::actions::ActionError, u32, u32, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (leader_file, child_file) = (dir.path().join("leader"), dir.path().join("child"));
    let body = json!({
        "script": script,
        "env": {"LEADER": leader_file, "CHILD": child_file},
    });
    let mut pids = None;
    let mut cancelled_at = None;
    let run = runner.run(body);
    let watch = async {
        let started = eventually(Duration::from_secs(10), || {
            pids = read_pid(&leader_file).zip(read_pid(&child_file));
            pids.is_some()
        })
        .await;
        assert!(started, "the script never wrote its pids");
        cancelled_at = Some(Instant::now());
        runner.cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(run, watch);
    let took = cancelled_at.expect("cancelled").elapsed();
    let error = outcome.result.expect_err("a cancelled exec fails");
    let (leader, child) = pids.expect("pids");
    (error, leader, child, took)
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group_grandchildren_included() {
    let runner = exec();
    let (error, leader, grandchild, took) = cancel_once_started(
        &runner,
        "echo $$ > \"$LEADER\"\nsleep 30 &\necho $! > \"$CHILD\"\necho started\nwait",
    )
    .await;
    assert_eq!(error.kind, ActionErrorKind::Cancelled);
    assert_eq!(error.message, "script cancelled");
    // SIGTERM was enough here: no need to wait out the grace period.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let result = error.result.expect("partial result");
    assert_eq!(result["stdout"], json!("started\n"));
    assert_eq!(result["exit_code"], json!(128 + 15));
    assert!(process_is_gone(leader), "the script survived");
    assert!(
        eventually(Duration::from_secs(5), || process_is_gone(grandchild)).await,
        "the grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn cancel_escalates_to_sigkill_for_processes_that_ignore_sigterm() {
    static QUICK: Exec = Exec {
        kill_grace: Duration::from_millis(200),
        ..Exec::DEFAULT
    };
    let runner = Runner::with(&QUICK);
    // An ignored signal stays ignored in the children the shell starts.
    let (error, leader, grandchild, took) = cancel_once_started(
        &runner,
        "trap '' TERM\necho $$ > \"$LEADER\"\nsleep 30 &\necho $! > \"$CHILD\"\nwait",
    )
    .await;
    assert_eq!(error.kind, ActionErrorKind::Cancelled);
    assert!(took >= Duration::from_millis(200), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        error.result.map(|r| r["exit_code"].clone()),
        Some(json!(128 + 9))
    );
    assert!(process_is_gone(leader), "the script survived");
    assert!(
        eventually(Duration::from_secs(5), || process_is_gone(grandchild)).await,
        "the grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn dropping_the_future_kills_the_process_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let child_file = dir.path().join("child");
    let runner = exec();
    let body = json!({
        "script": "sleep 30 &\necho $! > \"$CHILD\"\nwait",
        "env": {"CHILD": child_file},
    });
    let mut grandchild = None;
    tokio::select! {
        outcome = runner.run(body) => panic!("the script ended: {:?}", outcome.result),
        started = eventually(Duration::from_secs(10), || {
            grandchild = read_pid(&child_file);
            grandchild.is_some()
        }) => assert!(started, "the script never started its child"),
    }
    // `select!` dropped the action's future on the way out.
    let grandchild = grandchild.expect("pid");
    assert!(
        eventually(Duration::from_secs(5), || process_is_gone(grandchild)).await,
        "the grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn a_background_process_that_keeps_stdout_open_does_not_hold_the_step() {
    static SHORT: Exec = Exec {
        drain: Duration::from_millis(100),
        ..Exec::DEFAULT
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let child_file = dir.path().join("child");
    let start = Instant::now();
    // `setsid` takes it out of the step's process group, so the end of the step does not
    // stop it; only the time limit on reading output lets the step end.
    let result = Runner::with(&SHORT)
        .ok(json!({
            "script": "echo before\nsetsid sh -c 'echo $$ > \"$CHILD\"; exec sleep 30' &\nwhile [ ! -s \"$CHILD\" ]; do sleep 0.01; done",
            "env": {"CHILD": child_file},
        }))
        .await;
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(result["stdout"], json!("before\n"));
    let pid = read_pid(&child_file).expect("pid");
    assert!(!process_is_gone(pid));
    // Started by this test: stopped by it.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[tokio::test]
async fn what_a_step_leaves_in_its_process_group_is_stopped_when_it_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let child_file = dir.path().join("child");
    let result = exec()
        .ok(json!({
            "script": "sleep 30 &\necho $! > \"$CHILD\"\necho done",
            "env": {"CHILD": child_file},
        }))
        .await;
    assert_eq!(result["stdout"], json!("done\n"));
    let pid = read_pid(&child_file).expect("pid");
    // Stopped before the step returned: not a moment later.
    let gone = process_is_gone(pid);
    if !gone {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(gone, "the background `sleep 30` ({pid}) outlived its step");
}
