//! No process a run starts outlives it or runs twice: kill -9 of the engine (and of its
//! supervisor), SIGHUP, a second Ctrl-C, a step that leaves a process behind, and a long
//! command while the engine is otherwise idle. What is alive is found by walking /proc for
//! every process carrying the test's own environment mark, not only by the shell's pid.

use crate::durable::{Bench, finish, signal};
use crate::events::process_is_gone;
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
        let entry = format!("RUNBOOK_TEST_MARK={}", self.mark);
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
    /// supervisor, all at once, as `kill -9` of everything would.
    fn kill_engine_and_supervisor(&self) -> usize {
        let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_runbook")).unwrap();
        let ours: Vec<u32> = self
            .alive()
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).ok() == Some(binary.clone())
            })
            .collect();
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
    signal(&engine, libc::SIGKILL);
    let (code, _, _) = finish(engine);
    assert_eq!(code, -1, "killed by the signal");
    let left = marked.survivors_after(Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "alive after kill -9 of the engine: {left:?}"
    );

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
    let pid: u32 = bench.read("bg").trim().parse().unwrap();
    assert!(process_is_gone(pid));
    let left = marked.survivors_after(Duration::from_secs(2));
    assert!(left.is_empty(), "alive after the run: {left:?}");
}
