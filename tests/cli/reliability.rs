//! What the journal promises when things go wrong: kill -9 at any moment, a torn or damaged
//! store file, a full disk. Everything runs through the binary; the journal is then read
//! back with the library's own store to check it.

use crate::durable::{Bench, finish, signal};
use runbook::engine::{Envelope, RunEvent, StepStatus};
use runbook::store::Store;
use runbook::store::sqlite::SqliteStore;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The journal of a run, read and checked (hash chain, numbering) by the store.
pub(crate) fn journal(db: &Path, run_id: &str) -> Vec<Envelope> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = SqliteStore::open(db).await.expect("the store opens");
            store.events(run_id).await.expect("the journal is valid")
        })
}

/// 34 steps: two parallel chains, a `for_each` of six items, a step whose action always
/// fails and whose fallback succeeds, a join, and `finally`. Every step appends
/// "<path> start" and "<path> done" to the side-effect file, sleeping 0.1 to 0.4 s between.
fn torture_runbook() -> String {
    let mut text =
        String::from("version: 1\nname: torture\ninputs:\n  side: { type: string }\nsteps:\n");
    let work = |path: &str| {
        format!(
            "    exec:\n      script: |\n        echo \"{path} start\" >> {{{{inputs.side}}}}\n        sleep 0.$(( $$ % 4 + 1 ))\n        echo \"{path} done\" >> {{{{inputs.side}}}}\n"
        )
    };
    for chain in ["a", "b"] {
        for i in 0..12 {
            text.push_str(&format!("  - id: {chain}{i}\n"));
            if i > 0 {
                text.push_str(&format!("    needs: [{chain}{}]\n", i - 1));
            } else {
                text.push_str("    needs: []\n");
            }
            text.push_str(&work(&format!("{chain}{i}")));
            text.push_str(&format!("    outputs: {{ n: '{i}' }}\n"));
        }
    }
    text.push_str("  - id: fan\n    needs: [a3]\n    for_each: '[10, 20, 30, 40, 50, 60]'\n");
    text.push_str(&work("fan[{{index}}]"));
    text.push_str("    outputs: { doubled: '$ctx.item * 2' }\n");
    text.push_str(
        "  - id: flaky\n    needs: [b2]\n    exec:\n      script: |\n        echo 'flaky start' >> {{inputs.side}}\n        echo 'flaky done' >> {{inputs.side}}\n        exit 1\n    retry: { attempts: 2, delay: 1ms }\n    outputs: { via: '\"action\"' }\n    fallback:\n",
    );
    text.push_str(
        &work("flaky")
            .replace("    exec:", "      exec:")
            .replace("      script", "        script")
            .replace("        echo", "          echo")
            .replace("        sleep", "          sleep")
            .replace("flaky start", "flaky-fallback start")
            .replace("flaky done", "flaky-fallback done"),
    );
    text.push_str("      outputs: { via: '\"fallback\"' }\n");
    text.push_str("  - id: join\n    needs: [a11, b11, fan, flaky]\n");
    text.push_str(&work("join"));
    text.push_str("finally:\n  - id: cleanup\n");
    text.push_str(&work("cleanup"));
    text.push_str(
        "outputs:\n  chains: '[.steps.a11.outputs.n, .steps.b11.outputs.n]'\n  fan: '[.steps.fan.items[].outputs.doubled]'\n  flaky: .steps.flaky.outputs.via\n  flaky_via: .steps.flaky.via\n",
    );
    text
}

/// Completions ("<path> done" lines) per step path in a side-effect file.
fn completions(side: &str) -> BTreeMap<String, usize> {
    let mut done = BTreeMap::new();
    for line in side.lines() {
        if let Some(path) = line.strip_suffix(" done") {
            *done.entry(path.to_owned()).or_default() += 1;
        }
    }
    done
}

/// The side-effect name of the attempts of a step path: the fallback writes its own.
fn side_name(path: &str, fallback: bool) -> String {
    if fallback {
        format!("{path}-fallback")
    } else {
        path.to_owned()
    }
}

#[test]
fn crash_torture_kill_9_at_random_moments_and_resume_until_done() {
    let bench = Bench::new();
    bench.write("torture.yaml", &torture_runbook());
    let validate = bench.runbook(&["validate", "torture.yaml"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);

    // The reference: the same runbook, never interrupted.
    let clean = bench.runbook(&[
        "run",
        "torture.yaml",
        "--run-id",
        "clean",
        "--input",
        "side=clean-side",
    ]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    let clean_outputs: Value = serde_json::from_str(&clean.stdout).unwrap();
    assert_eq!(clean_outputs["flaky"], "fallback");

    let mut kills = 0;
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let started = Instant::now();
    let final_stdout = loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the torture did not finish"
        );
        let exists = bench
            .runbook(&["runs", "show", "t", "--format", "json"])
            .code
            == 0;
        let args: Vec<&str> = if exists {
            vec!["resume", "t"]
        } else {
            vec![
                "run",
                "torture.yaml",
                "--run-id",
                "t",
                "--input",
                "side=side",
            ]
        };
        let child = bench.spawn(&args);
        if kills < 60 {
            // Kill at a random moment: before the store opens, while it is being written,
            // while steps run.
            let delay = random() % 300;
            std::thread::sleep(Duration::from_millis(delay));
            signal(&child, libc::SIGKILL);
            let (code, stdout, stderr) = finish(child);
            if code == 0 {
                break stdout; // It finished before the kill.
            }
            assert_eq!(code, -1, "only the kill stops it: {stderr}");
            kills += 1;
        } else {
            let (code, stdout, stderr) = finish(child);
            assert_eq!(code, 0, "{stderr}");
            break stdout;
        }
    };
    assert!(kills >= 50, "only {kills} kills landed");

    let outputs: Value = serde_json::from_str(&final_stdout).unwrap();
    assert_eq!(
        outputs, clean_outputs,
        "the outputs equal an uninterrupted run's"
    );

    let events = journal(&bench.db(), "t");
    assert!(matches!(events[0].event, RunEvent::RunStarted { .. }));
    let resumes = events
        .iter()
        .filter(|e| matches!(e.event, RunEvent::RunResumed { .. }))
        .count();
    assert!(resumes >= 10, "the run was resumed many times: {resumes}");

    // Per step path and body: attempts started, attempts ended (failed or succeeded), and
    // whether the step ended for good.
    let mut started_attempts: BTreeMap<String, usize> = BTreeMap::new();
    let mut ended_attempts: BTreeMap<String, usize> = BTreeMap::new();
    let mut ended_for_good: BTreeSet<String> = BTreeSet::new();
    let mut running_fallback: BTreeMap<String, bool> = BTreeMap::new();
    for envelope in &events {
        match &envelope.event {
            RunEvent::StepStarted { path, fallback, .. } => {
                assert!(
                    !ended_for_good.contains(path),
                    "{path} started again after it had ended"
                );
                running_fallback.insert(path.clone(), *fallback);
                *started_attempts
                    .entry(side_name(path, *fallback))
                    .or_default() += 1;
            }
            RunEvent::StepAttemptFailed { path, fallback, .. } => {
                *ended_attempts
                    .entry(side_name(path, *fallback))
                    .or_default() += 1;
            }
            RunEvent::StepEnded { path, status, .. } => {
                if *status != StepStatus::Cancelled {
                    ended_for_good.insert(path.clone());
                }
                if *status == StepStatus::Succeeded && !path.ends_with("fan") {
                    let fallback = running_fallback.get(path).copied().unwrap_or(false);
                    *ended_attempts.entry(side_name(path, fallback)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    let side = bench.read("side");
    let done = completions(&side);
    let mut expected: Vec<String> = Vec::new();
    for chain in ["a", "b"] {
        expected.extend((0..12).map(|i| format!("{chain}{i}")));
    }
    expected.extend((0..6).map(|i| format!("fan[{i}]")));
    expected.extend(["flaky", "flaky-fallback", "join", "cleanup"].map(String::from));
    assert_eq!(expected.len(), 34);
    for name in &expected {
        let completed = done.get(name).copied().unwrap_or(0);
        let ended = ended_attempts.get(name).copied().unwrap_or(0);
        let started = started_attempts.get(name).copied().unwrap_or(0);
        assert!(completed >= 1, "{name} never completed:\n{side}");
        // Every attempt the journal saw end did complete; no completion happened without a
        // start on record first; anything beyond the ended attempts is an attempt that a
        // kill cut short before its end was recorded.
        assert!(
            completed >= ended,
            "{name}: {ended} attempts ended but only {completed} completed"
        );
        assert!(
            completed <= started,
            "{name}: {completed} completions for {started} recorded starts"
        );
    }
    // Every line belongs to an expected step: nothing ran that should not have.
    for name in done.keys() {
        assert!(expected.contains(name), "unexpected side effect {name}");
    }
}

/// Makes a run with a journal still in the write-ahead log: killed, so never checkpointed.
fn killed_run(bench: &Bench) {
    bench.write(
        "slow.yaml",
        "version: 1\nname: slow\nsteps:\n  - id: a\n    for_each: '[range(40)]'\n    exec: { script: 'echo {{item}}' }\n  - id: wait\n    needs: [a]\n    exec: { script: 'echo waiting >> side; sleep 30' }\n",
    );
    let child = bench.spawn(&["run", "slow.yaml", "--run-id", "w"]);
    bench.wait_for("side", "waiting");
    signal(&child, libc::SIGKILL);
    finish(child);
}

#[test]
fn a_torn_write_ahead_log_is_reported_never_resumed_from() {
    let bench = Bench::new();
    killed_run(&bench);
    let wal = bench.db().with_extension("db-wal");
    let length = std::fs::metadata(&wal).expect("the log is there").len();
    assert!(length > 32 * 1024, "the log holds the run: {length} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(length / 2).unwrap();
    drop(file);
    for args in [
        &["resume", "w"][..],
        &["runs", "show", "w"],
        &["runs", "list"],
    ] {
        let output = bench.runbook(args);
        assert_eq!(output.code, 4, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains("write-ahead log is torn"),
            "{args:?}: {}",
            output.stderr
        );
    }
    assert!(
        !bench.read("side").contains("waiting\nwaiting"),
        "nothing ran again"
    );
}

#[test]
fn an_emptied_database_beside_its_log_is_refused_not_started_afresh() {
    let bench = Bench::new();
    killed_run(&bench);
    let wal = bench.db().with_extension("db-wal");
    let logged = std::fs::metadata(&wal).expect("the log is there").len();
    assert!(logged > 32 * 1024, "the log holds the run: {logged} bytes");
    // Truncated, as by `> runs.db` or a copy that failed half way.
    std::fs::File::create(bench.db()).unwrap();
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "w"],
        &["resume", "w"],
        &["run", "slow.yaml", "--run-id", "w2"],
    ] {
        let output = bench.runbook(args);
        assert_eq!(output.code, 4, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains(&format!(
                "the database file is empty but its write-ahead log holds {logged} bytes"
            )),
            "{args:?}: {}",
            output.stderr
        );
        assert!(output.stderr.contains("runs.db-wal"), "{}", output.stderr);
    }
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).ok(),
        Some(logged),
        "the log, and the runs it holds, are kept"
    );
}

#[test]
fn a_damaged_page_is_reported_never_resumed_from() {
    let bench = Bench::new();
    bench.write(
        "marked.yaml",
        "version: 1\nname: marked\nsteps:\n  - id: a\n    exec: { script: 'echo MARK-2f7c1d' }\n    outputs: { said: .stdout }\n  - id: b\n    needs: [a]\n    exec: { script: 'exit 1' }\n",
    );
    let output = bench.runbook(&["run", "marked.yaml", "--run-id", "d"]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    // The store closed cleanly: everything is in the database file itself.
    let mut bytes = std::fs::read(bench.db()).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"MARK-2f7c1d")
        .expect("the output is in the file");
    bytes[at + 5] = b'X';
    std::fs::write(bench.db(), &bytes).unwrap();
    let shown = bench.runbook(&["runs", "show", "d"]);
    assert_eq!(shown.code, 4, "{}", shown.stderr);
    assert!(
        shown.stderr.contains("the journal of run `d` is corrupt"),
        "{}",
        shown.stderr
    );
}

/// A small file system of its own, unmounted when dropped. Mounting needs root, so the tests
/// that use it are ignored by a plain `cargo test`: scripts/test-all.sh runs them with
/// `--ignored` as root and reports them as skipped otherwise.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill it: it needs root (or CAP_SYS_ADMIN)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test-all.sh runs it as root)"]
fn a_full_disk_stops_the_run_with_a_clear_error_and_it_resumes_once_there_is_room() {
    let disk = SmallDisk::mount("3m");
    let bench = Bench::new();
    let db = disk.path().join("runs.db");
    let filler = disk.path().join("filler");
    bench.write(
        "fill.yaml",
        &format!(
            r#"version: 1
name: fill
steps:
  - id: before
    exec: {{ script: 'echo before >> side' }}
  - id: fill
    needs: [before]
    exec:
      script: |
        if [ ! -e filled ]; then touch filled; dd if=/dev/zero of={filler} bs=64k 2>/dev/null || true; fi
        echo fill >> side
  - id: after
    needs: [fill]
    for_each: '[1, 2, 3]'
    exec: {{ script: 'echo after-{{{{item}}}} >> side' }}
"#,
            filler = filler.display()
        ),
    );
    let store = format!("sqlite:{}", db.display());
    let run = crate::support::Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", &store)
        .args(["run", "fill.yaml", "--run-id", "f"])
        .run();
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("full"), "{}", run.stderr);
    assert!(run.stderr.contains("runbook resume f"), "{}", run.stderr);
    assert!(
        !bench.read("side").contains("after"),
        "nothing ran past the failed write"
    );

    std::fs::remove_file(&filler).unwrap();
    let resumed = crate::support::Test::new()
        .current_dir(bench.path())
        .env("RUNBOOK_STORE", &store)
        .args(["resume", "f"])
        .run();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let side = bench.read("side");
    assert_eq!(side.matches("before").count(), 1, "{side}");
    for item in 1..=3 {
        assert_eq!(side.matches(&format!("after-{item}")).count(), 1, "{side}");
    }
    let events = journal(&db, "f");
    assert!(matches!(
        events.last().map(|e| &e.event),
        Some(RunEvent::RunEnded { .. })
    ));
}

#[test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test-all.sh runs it as root)"]
fn a_disk_already_full_before_a_run_is_reported_as_full() {
    let disk = SmallDisk::mount("1m");
    let bench = Bench::new();
    bench.write(
        "one.yaml",
        "version: 1\nname: one\nsteps:\n  - id: a\n    exec: { script: 'echo ran >> side' }\n",
    );
    let store = format!("sqlite:{}", disk.path().join("runs.db").display());
    let run_once = |run_id: &str| {
        crate::support::Test::new()
            .current_dir(bench.path())
            .env("RUNBOOK_STORE", &store)
            .args(["run", "one.yaml", "--run-id", run_id])
            .run()
    };
    // A store that exists and was closed cleanly: the next run has its -wal and -shm files
    // to make again, on a disk that has no room left.
    let first = run_once("first");
    assert_eq!(first.code, 0, "{}", first.stderr);
    std::fs::remove_file(bench.path().join("side")).unwrap();
    let filler = disk.path().join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run dd");
    let run = run_once("f");
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("the store is full"), "{}", run.stderr);
    assert!(run.stderr.contains("free some space"), "{}", run.stderr);
    assert!(!run.stderr.contains("I/O error"), "{}", run.stderr);
    assert_eq!(bench.read("side"), "", "nothing ran");
}

/// Runs a runbook whose second step fills the disk: its end cannot be written.
fn run_until_the_disk_fills(
    disk: &SmallDisk,
    bench: &Bench,
    output: &str,
) -> crate::support::Output {
    bench.write(
        "fill.yaml",
        &format!(
            r#"version: 1
name: fill
steps:
  - id: before
    exec: {{ script: 'true' }}
  - id: fill
    needs: [before]
    exec: {{ script: 'dd if=/dev/zero of={filler} bs=64k 2>/dev/null || true' }}
  - id: after
    needs: [fill]
    exec: {{ script: 'true' }}
"#,
            filler = disk.path().join("filler").display()
        ),
    );
    crate::support::Test::new()
        .current_dir(bench.path())
        .env(
            "RUNBOOK_STORE",
            format!("sqlite:{}", disk.path().join("runs.db").display()),
        )
        .args(["run", "fill.yaml", "--run-id", "f", "--output", output])
        .run()
}

/// The status a run's summary on the terminal gives a step.
fn summary_status(stderr: &str, step: &str) -> Option<String> {
    let table = stderr.split("step    status").nth(1)?;
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(step))
        .and_then(|line| line.split_whitespace().nth(1))
        .map(str::to_owned)
}

#[test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test-all.sh runs it as root)"]
fn after_a_full_disk_the_summary_shows_ended_only_the_steps_the_journal_holds_as_ended() {
    let disk = SmallDisk::mount("3m");
    let bench = Bench::new();
    let run = run_until_the_disk_fills(&disk, &bench, "human");
    assert_eq!(run.code, 4, "{}", run.stderr);
    let ended: BTreeMap<String, StepStatus> = journal(&disk.path().join("runs.db"), "f")
        .into_iter()
        .filter_map(|e| match e.event {
            RunEvent::StepEnded { path, status, .. } => Some((path, status)),
            _ => None,
        })
        .collect();
    assert_eq!(ended.get("before"), Some(&StepStatus::Succeeded));
    assert_eq!(ended.get("fill"), None, "the disk filled before its end");
    assert_eq!(
        summary_status(&run.stderr, "before").as_deref(),
        Some("succeeded"),
        "{}",
        run.stderr
    );
    assert_eq!(
        summary_status(&run.stderr, "fill").as_deref(),
        Some("unfinished"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the end of fill was not recorded: resume runs it again"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Once there is room on the disk again, continue with: runbook resume f"),
        "{}",
        run.stderr
    );

    // `runs show` reads the journal: it agrees.
    let shown = crate::support::Test::new()
        .env(
            "RUNBOOK_STORE",
            format!("sqlite:{}", disk.path().join("runs.db").display()),
        )
        .args(["runs", "show", "f"])
        .run();
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let fill = shown
        .stdout
        .lines()
        .find(|line| line.starts_with("fill "))
        .unwrap_or_default()
        .to_owned();
    assert!(!fill.contains("succeeded"), "{}", shown.stdout);
}

#[test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test-all.sh runs it as root)"]
fn after_a_full_disk_the_json_run_ended_says_interrupted_and_names_the_unrecorded_end() {
    let disk = SmallDisk::mount("3m");
    let bench = Bench::new();
    let run = run_until_the_disk_fills(&disk, &bench, "json");
    assert_eq!(run.code, 4, "{}", run.stderr);
    let ended: Value = run
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["event"] == "run_ended")
        .expect("a run_ended line");
    assert_eq!(ended["status"], "interrupted", "{ended}");
    let reason = ended["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the end of fill was not recorded"),
        "{reason}"
    );
}
