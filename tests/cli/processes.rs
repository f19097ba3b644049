//! No process a run starts outlives it or runs twice: kill -9 of the engine (and of its
//! supervisor), SIGHUP, a second Ctrl-C, a step that leaves a process behind, and a long
//! command while the engine is otherwise idle. What is alive is found by walking /proc for
//! every process carrying the test's own environment mark, not only by the shell's pid.

use crate::durable::{Bench, finish, signal};
use crate::events::process_is_gone;
use runbook::event::RunStatus;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The processes one test starts: each carries `RUNBOOK_TEST_MARK=<unique>` in its
/// environment (the engine, its supervisor, every step process and their descendants inherit
/// it). Dropped, it SIGKILLs whatever is still marked, so a failing test leaves nothing behind.
struct Marked {
    mark: String,
}

impl Marked {
    fn new() -> Marked {
        Marked {
            mark: format!("{}-{:x}", std::process::id(), rand_u64()),
        }
    }

    /// Starts the binary in the bench's directory, marked.
    fn spawn(&self, bench: &Bench, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(args)
            .current_dir(bench.path())
            .env("RUNBOOK_STORE", format!("sqlite:{}", bench.db().display()))
            .env("NO_COLOR", "1")
            .env("RUNBOOK_TEST_MARK", &self.mark)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the runbook binary")
    }

    /// Runs the binary to its end: (exit code, stdout, stderr).
    fn run(&self, bench: &Bench, args: &[&str]) -> (i32, String, String) {
        finish(self.spawn(bench, args))
    }

    /// Every live process (zombies are dead) carrying this test's mark.
    fn alive(&self) -> Vec<u32> {
        alive_carrying(&format!("RUNBOOK_TEST_MARK={}", self.mark))
    }

    /// Waits up to `limit` for every marked process to be gone; the ones left, with what
    /// they run.
    fn survivors_after(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let alive = self.alive();
            if alive.is_empty() || Instant::now() >= deadline {
                return alive.into_iter().map(describe).collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the marked processes running the runbook binary itself: the engine and its
    /// supervisor, all at once, as `kill -9` of everything would. The supervisors first: one
    /// that saw its engine die before its own end came would do its job and stop the step's
    /// processes, which a busy machine gives it time for between two signals.
    fn kill_engine_and_supervisor(&self) -> usize {
        let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_runbook")).unwrap();
        let mut ours: Vec<u32> = self
            .alive()
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).ok() == Some(binary.clone())
            })
            .collect();
        let supervises = |pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|arg| arg == b"__supervise"))
        };
        ours.sort_by_key(|pid| !supervises(pid));
        for pid in &ours {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        ours.len()
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        for pid in self.alive() {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Every live process (zombies are dead) whose environment holds `entry` (`NAME=value`).
fn alive_carrying(entry: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = dir.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let marked = environ
            .split(|b| *b == 0)
            .any(|var| var == entry.as_bytes());
        if marked && !process_is_gone(pid) {
            found.push(pid);
        }
    }
    found
}

fn describe(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    format!("{pid} ({})", words.join(" "))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// A step whose first attempt leaves a background `sleep 300` and waits on a foreground one;
/// every attempt appends `start` to `starts`, and `overlap` when a process of an earlier
/// attempt is still alive (not a zombie) as it starts. Later attempts end at once.
const TWICE: &str = r#"version: 1
name: twice
steps:
  - id: work
    exec:
      script: |
        echo start >> starts
        for pid in $(cat pids 2>/dev/null); do
          state=$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null || true)
          if [ -n "$state" ] && [ "$state" != Z ]; then echo "overlap $pid" >> starts; fi
        done
        if [ ! -e again ]; then
          touch again
          echo $$ >> pids
          sleep 300 &
          echo $! >> pids
          sleep 300 &
          echo $! >> pids
          echo running > ready
          wait
        fi
"#;

/// kill -9 of the engine alone: its supervisor stops every marked process within seconds.
fn kill_engine_and_expect_nothing_left(marked: &Marked, engine: Child) {
    signal(&engine, libc::SIGKILL);
    let (code, _, _) = finish(engine);
    assert_eq!(code, -1, "killed by the signal");
    let left = marked.survivors_after(Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "alive after kill -9 of the engine: {left:?}"
    );
}

fn starts(bench: &Bench) -> String {
    bench.read("starts")
}

#[test]
fn a_killed_engine_takes_every_process_of_its_step_with_it_and_resume_runs_the_step_once() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write("twice.yaml", TWICE);
    let engine = marked.spawn(&bench, &["run", "twice.yaml", "--run-id", "p1"]);
    bench.wait_for("ready", "running");
    kill_engine_and_expect_nothing_left(&marked, engine);

    let (code, _, stderr) = marked.run(&bench, &["resume", "p1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        starts(&bench),
        "start\nstart\n",
        "the step ran once at a time"
    );
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the run: {left:?}");
}

#[test]
fn resume_stops_what_a_killed_engine_and_supervisor_left_behind_before_running_the_step() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write("twice.yaml", TWICE);
    let engine = marked.spawn(&bench, &["run", "twice.yaml", "--run-id", "p2"]);
    bench.wait_for("ready", "running");
    assert!(marked.kill_engine_and_supervisor() >= 1);
    finish(engine);
    // With nothing left to watch them, the step's processes keep running.
    std::thread::sleep(Duration::from_millis(300));
    let left = marked.alive();
    assert!(
        left.len() >= 2,
        "the step's sleeps should still run: {left:?}"
    );

    let (code, _, stderr) = marked.run(&bench, &["resume", "p2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        starts(&bench),
        "start\nstart\n",
        "the step ran once at a time"
    );
    // The shell and its two sleeps.
    assert!(
        stderr.contains("stopped 3 processes left running by run p2 before resuming it"),
        "{stderr}"
    );
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the resumed run: {left:?}");
}

/// The supervisor of an engine that died can still be stopping what carries the run's mark
/// when the run is resumed; the resumed steps carry the same mark, so it would stop them too.
/// A resume kills such a supervisor before its first step. Here one is kept alive on purpose
/// (its engine's end of the pipe held open), as a slow one would be.
#[test]
fn resume_kills_a_supervisor_left_from_the_engine_before_so_it_cannot_stop_the_new_steps() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write("twice.yaml", TWICE);
    bench.write(
        "mark.yaml",
        &TWICE.replace(
            "echo running > ready",
            "echo \"$RUNBOOK_RUN_MARK\" > mark\n          echo running > ready",
        ),
    );
    let engine = marked.spawn(&bench, &["run", "mark.yaml", "--run-id", "p5"]);
    bench.wait_for("ready", "running");
    assert!(marked.kill_engine_and_supervisor() >= 1);
    finish(engine);
    let mark = bench.read("mark").trim().to_owned();
    assert_eq!(mark.len(), 32, "the run's mark: {mark:?}");
    let mut old_supervisor = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["__supervise", &mark])
        .env("RUNBOOK_TEST_MARK", &marked.mark)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a supervisor");

    let (code, _, stderr) = marked.run(&bench, &["resume", "p5"]);
    assert_eq!(code, 0, "{stderr}");
    let killed = old_supervisor
        .try_wait()
        .expect("wait for the old supervisor");
    assert!(
        killed.is_some(),
        "the old supervisor of run p5 is still alive after the resume"
    );
    assert_eq!(
        starts(&bench),
        "start\nstart\n",
        "the step ran once at a time"
    );
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the resumed run: {left:?}");
}

#[test]
fn sighup_parks_the_run_runs_finally_and_leaves_no_process() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write(
        "hup.yaml",
        r#"version: 1
name: hup
steps:
  - id: work
    exec:
      script: |
        if [ ! -e again ]; then touch again; sleep 300 & echo running > ready; wait; fi
finally:
  - id: note
    exec: { script: 'echo "{{run.status}}" > finally-ran' }
"#,
    );
    let mut engine = marked.spawn(&bench, &["run", "hup.yaml", "--run-id", "h1"]);
    bench.wait_for("ready", "running");
    // The SSH session is gone: nothing reads what the engine writes to its terminal any more.
    drop(engine.stderr.take());
    signal(&engine, libc::SIGHUP);
    let (code, _, _) = finish(engine);
    assert_eq!(code, 3);
    assert_eq!(bench.read("finally-ran"), "interrupted\n");
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after SIGHUP: {left:?}");
    let listed = bench.runbook(&["runs", "list"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("h1 ") && l.contains("interrupted")),
        "{}",
        listed.stdout
    );
    let (code, _, stderr) = marked.run(&bench, &["resume", "h1"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_kills_children_that_ignore_sigterm() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write(
        "trap.yaml",
        r#"version: 1
name: trap
steps:
  - id: stubborn
    exec:
      script: |
        trap '' TERM
        sleep 300 &
        echo running > ready
        sleep 300
"#,
    );
    let engine = marked.spawn(&bench, &["run", "trap.yaml", "--run-id", "c1"]);
    bench.wait_for("ready", "running");
    signal(&engine, libc::SIGINT);
    // Inside the 2 s the first Ctrl-C gives the step to stop.
    std::thread::sleep(Duration::from_millis(300));
    signal(&engine, libc::SIGINT);
    let started = Instant::now();
    let (code, _, stderr) = finish(engine);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("exiting now"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // SIGKILL, not the TERM they ignore: gone well within the 2 s a TERM would be given.
    let left = marked.survivors_after(Duration::from_secs(1));
    assert!(left.is_empty(), "alive after the second Ctrl-C: {left:?}");
}

#[test]
fn a_command_running_longer_than_ten_seconds_while_the_engine_is_idle_is_not_killed() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write(
        "long.yaml",
        "version: 1\nname: long\nsteps:\n  - id: long\n    exec: { command: [sleep, '12'] }\n",
    );
    let (code, _, stderr) = marked.run(&bench, &["run", "long.yaml"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_process_a_step_leaves_behind_is_stopped_when_the_step_ends() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write(
        "leave.yaml",
        r#"version: 1
name: leave
steps:
  - id: leave
    exec:
      script: |
        sleep 300 &
        echo $! > bg
  - id: look
    needs: [leave]
    exec:
      script: |
        state=$(cut -d' ' -f3 /proc/$(cat bg)/stat 2>/dev/null || true)
        if [ -n "$state" ] && [ "$state" != Z ]; then echo alive > seen; else echo gone > seen; fi
        echo "$RUNBOOK_RUN_ID" > run-id
"#,
    );
    let (code, _, stderr) = marked.run(&bench, &["run", "leave.yaml", "--run-id", "l1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(bench.read("seen"), "gone\n", "the next step saw it alive");
    assert_eq!(bench.read("run-id"), "l1\n");
    assert_nothing_left(&bench, &marked);
}

/// The process whose pid a step wrote to `bg` is gone, and so is every other marked one.
fn assert_nothing_left(bench: &Bench, marked: &Marked) {
    let pid: u32 = bench.read("bg").trim().parse().unwrap();
    assert!(
        process_is_gone(pid),
        "alive after the run: {}",
        describe(pid)
    );
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the run: {left:?}");
}

#[test]
fn a_process_that_left_its_steps_group_is_stopped_by_the_runs_mark_when_the_run_ends() {
    let bench = Bench::new();
    let marked = Marked::new();
    // `setsid` takes it out of the step's process group: the step's end does not stop it,
    // only the supervisor's sweep for the run's mark at the run's end, which the engine
    // waits for before it exits.
    bench.write(
        "escape.yaml",
        r#"version: 1
name: escape
steps:
  - id: escape
    exec:
      script: |
        setsid sleep 300 > /dev/null 2>&1 &
        echo $! > bg
        # Out of the group before the step ends (the fifth field of its stat is its group).
        while [ "$(cut -d' ' -f5 /proc/$!/stat)" != "$!" ]; do sleep 0.01; done
"#,
    );
    let (code, _, stderr) = marked.run(&bench, &["run", "escape.yaml", "--run-id", "e1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_nothing_left(&bench, &marked);
}

/// Starts a run of `text` in this process through the application layer, its steps
/// supervised by the runbook binary (this test program cannot serve as supervisor).
async fn start_in_process(bench: &Bench, name: &str, text: &str) -> runbook::app::ClaimedRun {
    let file = bench.path().join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    runbook::app::start(runbook::app::StartRequest {
        bundle: runbook::app::load(&file, &[]).unwrap(),
        file: file.display().to_string(),
        inputs: Default::default(),
        run_id: Some(name.to_owned()),
        store: Some(format!("sqlite:{}", bench.db().display())),
        max_parallel: None,
        window_until: None,
        origin: None,
        started_by: None,
    })
    .await
    .unwrap()
    .supervised_by(env!("CARGO_BIN_EXE_runbook"))
}

fn watch() -> runbook::app::Watch {
    let (channel, _events) = runbook::app::EventChannel::new();
    runbook::app::Watch {
        sink: std::sync::Arc::new(channel),
        interrupt: tokio_util::sync::CancellationToken::new(),
    }
}

/// Polls until `pid` is gone, up to `limit`.
fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !process_is_gone(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Two runs in one process (as a server runs them), each running `exec` steps: each has
/// its own mark and supervisor; killing one run's steps at once (its second Ctrl-C) leaves
/// the other's running; one run ending does not end the other's supervision, so the steps
/// the other starts afterwards are still marked and supervised.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_in_one_process_each_supervise_and_kill_only_their_own_steps() {
    let bench = std::sync::Arc::new(Bench::new());
    let marked = Marked::new();
    let test_mark = &marked.mark;
    let dir = bench.path().display();
    // Ignores SIGTERM, children included: only a SIGKILL stops it.
    let first = format!(
        r#"version: 1
name: first
steps:
  - id: hold
    exec:
      env: {{ RUNBOOK_TEST_MARK: "{test_mark}" }}
      cwd: "{dir}"
      script: |
        trap '' TERM
        sleep 300 &
        echo $! > first-bg
        echo "$RUNBOOK_RUN_MARK" > first-mark
        echo running > first-ready
        sleep 300
"#
    );
    let second = format!(
        r#"version: 1
name: second
steps:
  - id: hold
    exec:
      env: {{ RUNBOOK_TEST_MARK: "{test_mark}" }}
      cwd: "{dir}"
      script: |
        sleep 300 &
        echo $! > second-bg
        echo "$RUNBOOK_RUN_MARK" > second-mark
        echo running > second-ready
        for _ in $(seq 600); do [ -e go ] && break; sleep 0.05; done
  - id: after
    needs: [hold]
    exec:
      env: {{ RUNBOOK_TEST_MARK: "{test_mark}" }}
      cwd: "{dir}"
      script: |
        echo "$RUNBOOK_RUN_ID $RUNBOOK_RUN_MARK" > second-after
"#
    );
    let first = start_in_process(&bench, "first", &first).await;
    let second = start_in_process(&bench, "second", &second).await;
    let (first_processes, second_processes) =
        (first.processes().clone(), second.processes().clone());
    let (first_ended, first_status) = std::sync::mpsc::channel();
    let first_run = async move {
        let result = first.execute(watch()).await;
        let _ = first_ended.send(result.outcome.status);
    };
    let runs = async { tokio::join!(first_run, second.execute(watch())) };
    // The runs' futures are polled here; what the test waits for, it waits for beside them.
    let driver = tokio::task::spawn_blocking({
        let bench = bench.clone();
        move || {
            bench.wait_for("first-ready", "running");
            bench.wait_for("second-ready", "running");
            let (first_mark, second_mark) = (bench.read("first-mark"), bench.read("second-mark"));
            assert_ne!(first_mark, second_mark, "each run marks its own steps");
            let first_supervisor = first_processes.supervisor_pid().expect("first supervised");
            let second_supervisor = second_processes
                .supervisor_pid()
                .expect("second supervised");
            assert_ne!(first_supervisor, second_supervisor, "one supervisor a run");
            let first_bg: u32 = bench.read("first-bg").trim().parse().unwrap();
            let second_bg: u32 = bench.read("second-bg").trim().parse().unwrap();

            // The first run's second Ctrl-C: its steps die though they ignore SIGTERM; the
            // second run's keep running.
            first_processes.kill_every_step_process();
            assert!(
                gone_within(first_bg, Duration::from_secs(2)),
                "the first run's step survived: {}",
                describe(first_bg)
            );
            let status = first_status
                .recv_timeout(Duration::from_secs(20))
                .expect("the first run ends");
            assert_eq!(status, RunStatus::Failed);
            let first_entry = format!("RUNBOOK_RUN_MARK={}", first_mark.trim());
            assert!(alive_carrying(&first_entry).is_empty());
            assert!(
                gone_within(first_supervisor, Duration::from_secs(2)),
                "the first run's supervisor outlived it"
            );

            // The first run is over; the second's step and supervisor are untouched.
            assert!(
                !process_is_gone(second_bg),
                "the second run's step was killed"
            );
            assert!(
                !process_is_gone(second_supervisor),
                "the second run lost its supervisor"
            );
            assert_eq!(second_processes.supervisor_pid(), Some(second_supervisor));
            bench.write("go", "");
            (second_supervisor, second_mark)
        }
    });
    tokio::pin!(runs, driver);
    let unwrap = |driven: Result<_, tokio::task::JoinError>| match driven {
        Ok(driven) => driven,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    // A failed check ends the test at once: dropping the runs stops their steps.
    let ((second_supervisor, second_mark), ((), second_result)) = tokio::select! {
        driven = &mut driver => (unwrap(driven), runs.await),
        ended = &mut runs => (unwrap(driver.await), ended),
    };
    assert_eq!(second_result.outcome.status, RunStatus::Succeeded);
    // A step started after the first run ended is still marked as the second run's.
    assert_eq!(bench.read("second-after"), format!("second {second_mark}"));
    assert!(gone_within(second_supervisor, Duration::from_secs(2)));
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after both runs: {left:?}");
}

/// Steps started all at once are started off the engine's main thread (one start would
/// otherwise wait for the other): what they start is tied to the run all the same.
const MANY: &str = r#"version: 1
name: many
steps:
  - id: work
    for_each: "[range(12)]"
    exec:
      script: |
        sleep 300 &
        echo running >> ready
        wait
"#;

/// Waits until `ready` has `lines` lines.
fn wait_for_lines(bench: &Bench, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while bench.read("ready").lines().count() < lines {
        assert!(
            Instant::now() < deadline,
            "only {} of {lines} steps started",
            bench.read("ready").lines().count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_engine_takes_every_process_of_steps_started_at_once_with_it() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write("many.yaml", MANY);
    let engine = marked.spawn(&bench, &["run", "many.yaml", "--run-id", "p9"]);
    wait_for_lines(&bench, 12);
    // Each step: its shell and its sleep, besides the engine and the supervisor.
    assert!(marked.alive().len() >= 2 + 12 * 2, "{:?}", marked.alive());
    kill_engine_and_expect_nothing_left(&marked, engine);
}

#[test]
fn a_timeout_stops_the_whole_group_of_each_step_started_at_once() {
    let bench = Bench::new();
    let marked = Marked::new();
    bench.write(
        "many.yaml",
        &MANY.replace("    exec:\n", "    timeout: 2s\n    exec:\n"),
    );
    let (code, _, stderr) = marked.run(&bench, &["run", "many.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(bench.read("ready").lines().count(), 12, "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the run: {left:?}");
}
