//! runbooks/flink/upgrade.yaml (and its lib/ runbooks) against the sandbox cluster.

use crate::flink::{Cluster, call, cluster, refused_url, same_path, wait_for, with_flink_url};
use crate::runbook::{Runbook, inputs, wait_event};
use serde_json::{Value, json};
use std::time::Duration;

const UPGRADE: &str = "runbooks/flink/upgrade.yaml";

/// `jobs` for upgrade.yaml: each name started again with `--name NAME`.
fn jobs_input(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| (n.to_string(), json!({ "args": ["--name", n] })))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn upgrade_args(
    cluster: &Cluster,
    run_id: &str,
    jobs: &Value,
    extra: &[(&str, String)],
) -> Vec<String> {
    let mut args: Vec<String> = ["run", UPGRADE, "--run-id", run_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut pairs = vec![
        ("flink_url", cluster.url.clone()),
        ("savepoint_dir", cluster.savepoints.clone()),
        ("jobs", jobs.to_string()),
    ];
    pairs.extend(extra.iter().cloned());
    if !pairs.iter().any(|(k, _)| *k == "jar" || *k == "jar_id") {
        pairs.push(("jar_id", cluster.jar_id.clone()));
    }
    args.extend(inputs(&pairs));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The entry of the upgrade's `jobs` output for one job name.
fn entry<'a>(outputs: &'a Value, name: &str) -> &'a Value {
    outputs["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job {name} in {outputs:#}"))
}

/// A job the upgrade restarted: RUNNING, restored from exactly `snapshot`, state going on.
fn assert_restored(cluster: &Cluster, job: &Value) {
    let new = job["new_job_id"].as_str().expect("a new job id");
    let snapshot = job["snapshot"].as_str().expect("a snapshot");
    assert_ne!(job["old_job_id"], job["new_job_id"]);
    assert_eq!(cluster.state(new), "RUNNING", "{job}");
    let restored = cluster.checkpoints(new)["latest"]["restored"].clone();
    let path = restored["external_path"].as_str().unwrap_or_default();
    assert!(
        same_path(path, snapshot),
        "{new} restored from {restored}, not {snapshot}"
    );
    assert!(
        job["checkpoint_id"].as_u64() > job["restored_checkpoint_id"].as_u64(),
        "no checkpoint after the restore: {job}"
    );
    cluster.assert_state_continues(new);
}

fn assert_savepoint_of(cluster: &Cluster, job: &Value, old: &str) {
    assert_eq!(job["via"], "savepoint", "{job}");
    assert_eq!(job["fallback"], false, "{job}");
    let snapshot = job["snapshot"].as_str().unwrap();
    let dir = Cluster::local(snapshot);
    assert!(
        dir.starts_with(Cluster::local(&cluster.savepoints))
            && dir.file_name().is_some_and(|n| n
                .to_string_lossy()
                .starts_with(&format!("savepoint-{}-", &old[..6]))),
        "not a savepoint of {old}: {snapshot}"
    );
    assert!(
        dir.join("_metadata").is_file(),
        "{snapshot} has no _metadata"
    );
    assert_eq!(
        cluster.state(old),
        "FINISHED",
        "stop with savepoint ends the job"
    );
}

#[test]
fn the_upgrade_restarts_three_jobs_each_from_its_own_savepoint() {
    let (cluster, _serial) = cluster();
    let names = ["upgrade-a", "upgrade-b", "upgrade-c"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    let hook_file = runbook.dir().join("hook.json");
    let args = upgrade_args(
        cluster,
        "upgrade-1",
        &jobs_input(&names),
        &[
            // The jar is uploaded after the hook, as a new version would be.
            ("jar", cluster.jar.display().to_string()),
            (
                "hook",
                format!("printf '%s' \"$UPGRADE_JOBS\" > {}", hook_file.display()),
            ),
            ("approve_before_restart", "true".into()),
            // No other job runs: the whole cluster is upgraded.
            ("all_jobs", "true".into()),
        ],
    );

    // The run parks at the approval, with every job stopped and none started again.
    let parked = runbook.run(&strs(&args));
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert!(
        parked.stderr.contains("runbook approve upgrade-1 approve"),
        "{}",
        parked.stderr
    );
    for jid in &old {
        assert_eq!(cluster.state(jid), "FINISHED");
    }
    let running: Vec<Value> = cluster
        .jobs()
        .into_iter()
        .filter(|j| j["state"] == "RUNNING")
        .collect();
    assert!(
        running.is_empty(),
        "nothing restarts before the approval: {running:?}"
    );
    let hooked: Value =
        serde_json::from_str(&std::fs::read_to_string(&hook_file).unwrap()).unwrap();
    assert_eq!(
        hooked.as_array().map(Vec::len),
        Some(3),
        "the hook saw every job: {hooked}"
    );

    let approved = runbook.run(&[
        "approve",
        "upgrade-1",
        "approve",
        "--comment",
        "jar swapped",
    ]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let outputs = runbook.run(&["resume", "upgrade-1"]).outputs();

    assert_eq!(
        outputs["jobs"].as_array().map(Vec::len),
        Some(3),
        "{outputs:#}"
    );
    for (name, old) in names.iter().zip(&old) {
        let job = entry(&outputs, name);
        assert_eq!(job["old_job_id"], old.as_str());
        assert_savepoint_of(cluster, job, old);
        assert_restored(cluster, job);
    }
    let snapshots: std::collections::HashSet<&str> = outputs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(snapshots.len(), 3, "each job has its own savepoint");
}

#[test]
fn a_savepoint_that_fails_falls_back_to_that_jobs_latest_checkpoint() {
    let (cluster, _serial) = cluster();
    let names = ["fallback-a", "fallback-b", "fallback-c"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let mut jobs = jobs_input(&names);
    // Root can write anywhere but /proc: this job's savepoint cannot be written.
    jobs["fallback-b"]["savepoint_dir"] = json!("file:///proc/runbook-flink-tests");
    let runbook = Runbook::new(cluster);
    let run = runbook.run(&strs(&upgrade_args(cluster, "fallback-1", &jobs, &[])));
    let outputs = run.outputs();
    assert!(
        run.stderr
            .contains("Failed to create savepoint directory at file:/proc/runbook-flink-tests"),
        "the savepoint failure is reported: {}",
        run.stderr
    );

    for (name, old) in names.iter().zip(&old) {
        let job = entry(&outputs, name);
        assert_eq!(job["old_job_id"], old.as_str());
        if *name == "fallback-b" {
            assert_eq!(job["via"], "checkpoint", "{job}");
            assert_eq!(job["fallback"], true, "{job}");
            let dir = Cluster::local(job["snapshot"].as_str().unwrap());
            assert!(
                dir.starts_with(Cluster::local(&cluster.checkpoints).join(old))
                    && dir
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("chk-"),
                "not a checkpoint of {old}: {job}"
            );
            assert!(dir.join("_metadata").is_file());
            assert_eq!(
                cluster.state(old),
                "CANCELED",
                "the fallback cancels the job"
            );
            assert!(cluster.savepoints_of(old).is_empty());
        } else {
            assert_savepoint_of(cluster, job, old);
        }
        assert_restored(cluster, job);
    }
}

/// The parallelism of each vertex, by name.
fn vertex_parallelism(cluster: &Cluster, jid: &str) -> Vec<(String, u64)> {
    let job = cluster.get(&format!("/jobs/{jid}"));
    job["vertices"]
        .as_array()
        .unwrap_or_else(|| panic!("no vertices: {job}"))
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_owned(),
                v["parallelism"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Seed 000: a job restored from a checkpoint keeps its parallelism. Its own default
/// parallelism, not the largest of its vertices': a job whose keyed function runs at 2 while
/// the job's default is 1 used to restart with 2 everywhere, rescaling source and sink.
#[test]
fn a_checkpoint_restore_keeps_the_parallelism_of_every_vertex() {
    let (cluster, _serial) = cluster();
    let old = cluster.start_job("mixed-parallelism", &["--counter-parallelism", "2"], None);
    let before = vertex_parallelism(cluster, &old);
    assert!(
        before.iter().any(|(_, p)| *p == 1) && before.iter().any(|(_, p)| *p == 2),
        "a mixed-parallelism job: {before:?}"
    );
    let mut jobs = json!({"mixed-parallelism": {
        "args": ["--name", "mixed-parallelism", "--counter-parallelism", "2"],
    }});
    // The savepoint cannot be written: the job is restored from its latest checkpoint.
    jobs["mixed-parallelism"]["savepoint_dir"] = json!("file:///proc/runbook-flink-tests");
    let runbook = Runbook::new(cluster);
    // The restarted job's id derives from the run id: one of its own on a reused sandbox.
    let run_id = format!("mixed-{}", std::process::id());
    let run = runbook.run(&strs(&upgrade_args(cluster, &run_id, &jobs, &[])));
    let outputs = run.outputs();
    let job = entry(&outputs, "mixed-parallelism");
    assert_eq!(job["via"], "checkpoint", "{job}");
    let new = job["new_job_id"].as_str().expect("a new job id");
    assert_eq!(
        vertex_parallelism(cluster, new),
        before,
        "the restored job was rescaled: {job}"
    );
    assert_restored(cluster, job);
}

/// Starts the backpressured job `name`, runs the upgrade on it as `run_id`, and SIGKILLs the
/// engine while it polls the job's savepoint: the job's id and the savepoint's trigger id.
fn kill_while_polling_a_savepoint(
    cluster: &Cluster,
    runbook: &Runbook,
    name: &str,
    run_id: &str,
) -> (String, String) {
    // Backpressured (one event per key every 1 ms, 1 ms of work each): its aligned savepoint
    // waits for the buffered events, seconds long, like a checkpoint of it.
    let old = cluster.start_job(name, &["--rate-ms", "1", "--process-delay-ms", "1"], None);
    wait_for(Duration::from_secs(120), "a slow checkpoint", || {
        cluster.checkpoints(&old)["latest"]["completed"]["end_to_end_duration"]
            .as_u64()
            .unwrap_or(0)
            > 2000
    });
    let args = upgrade_args(cluster, run_id, &jobs_input(&[name]), &[]);
    let (mut child, events) = runbook.spawn(&strs(&args));
    let mut seen = Vec::new();
    let accepted = wait_event(&events, &mut seen, Duration::from_secs(120), |e| {
        e["event"] == "step_ended" && e["path"] == "snapshot[0]/accepted"
    });
    let trigger = accepted["outputs"]["request"]
        .as_str()
        .expect("a trigger id")
        .to_owned();
    wait_event(&events, &mut seen, Duration::from_secs(60), |e| {
        e["event"] == "step_polling" && e["path"] == "snapshot[0]/wait_savepoint"
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap the killed run");
    (old, trigger)
}

#[test]
fn a_run_killed_while_polling_a_savepoint_resumes_polling_the_same_savepoint() {
    let (cluster, _serial) = cluster();
    let runbook = Runbook::new(cluster);
    let (old, trigger) = kill_while_polling_a_savepoint(cluster, &runbook, "killed-a", "killed-1");
    let operation = cluster.get(&format!("/jobs/{old}/savepoints/{trigger}"));
    assert_eq!(
        operation["status"]["id"], "IN_PROGRESS",
        "killed mid-savepoint: {operation}"
    );

    let resumed = runbook.run(&["resume", "killed-1", "--output", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stdout);
    let events = resumed.events();
    let started = |path: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "step_started" && e["path"] == path)
            .count()
    };
    assert_eq!(started("snapshot[0]/trigger_stop"), 0, "no second trigger");
    assert!(
        started("snapshot[0]/wait_savepoint") >= 1,
        "the poll is taken up again"
    );
    let ended = events.last().expect("events");
    assert_eq!(ended["event"], "run_ended");
    let job = entry(&ended["outputs"], "killed-a");

    // The savepoint is the one the killed run triggered, and the only one of that job.
    let operation = cluster.get(&format!("/jobs/{old}/savepoints/{trigger}"));
    let location = operation["operation"]["location"]
        .as_str()
        .expect("completed");
    assert!(
        same_path(location, job["snapshot"].as_str().unwrap()),
        "{operation} {job}"
    );
    assert_eq!(
        cluster.savepoints_of(&old).len(),
        1,
        "{:?}",
        cluster.savepoints_of(&old)
    );
    let history = cluster.checkpoints(&old)["history"].clone();
    let savepoints = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["is_savepoint"] == true)
        .count();
    assert_eq!(savepoints, 1, "one savepoint in Flink's history: {history}");
    assert_savepoint_of(cluster, job, &old);
    assert_restored(cluster, job);
}

#[test]
fn the_already_used_guard_refuses_a_snapshot_a_running_job_restored_from() {
    let (cluster, _serial) = cluster();
    // Run ids of their own: the restarted jobs' ids derive from them, on a reused sandbox too.
    let run_id = |n: &str| format!("{n}-{}", std::process::id());
    let a = cluster.start_job("guard-a", &[], None);
    let runbook = Runbook::new(cluster);
    // A savepoint of guard-a that leaves it running (lib/savepoint.yaml on its own)...
    let savepoint = runbook
        .run(&strs(
            &["run", "runbooks/flink/lib/savepoint.yaml"]
                .iter()
                .map(|s| s.to_string())
                .chain(inputs(&[
                    ("flink_url", cluster.url.clone()),
                    ("job", a.clone()),
                    ("target_dir", cluster.savepoints.clone()),
                ]))
                .collect::<Vec<_>>(),
        ))
        .outputs();
    let snapshot = savepoint["location"]
        .as_str()
        .expect("a savepoint")
        .to_owned();
    assert_eq!(cluster.state(&a), "RUNNING");
    // ...and another job already running from it.
    let b = cluster.start_job("guard-b", &[], Some(&snapshot));

    let jobs = json!({ "guard-a": { "args": ["--name", "guard-a"], "restore_from": snapshot } });
    let refused = runbook.run(&strs(&upgrade_args(
        cluster,
        &run_id("guard-1"),
        &jobs,
        &[],
    )));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "running job guard-b ({b}) was already restored from it"
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(cluster.state(&a), "RUNNING", "nothing was stopped");

    let allowed = runbook.run(&strs(&upgrade_args(
        cluster,
        &run_id("guard-2"),
        &jobs,
        &[("allow_reused_snapshot", "true".into())],
    )));
    let outputs = allowed.outputs();
    let job = entry(&outputs, "guard-a");
    assert_eq!(job["via"], "given", "{job}");
    assert_eq!(job["old_job_id"], a.as_str());
    assert!(same_path(job["snapshot"].as_str().unwrap(), &snapshot));
    assert_eq!(
        cluster.state(&a),
        "CANCELED",
        "cancelled without a savepoint"
    );
    assert!(cluster.savepoints_of(&a).len() == 1, "no new savepoint");
    assert_restored(cluster, job);
    assert_eq!(cluster.state(&b), "RUNNING");

    // Once, ever: with both jobs that restored from it gone, no running job shows the reuse,
    // yet a later run refuses the snapshot, from the store's record of run guard-2.
    let restored = job["new_job_id"].as_str().expect("a job").to_owned();
    cluster.cancel(&restored);
    cluster.cancel(&b);
    wait_for(Duration::from_secs(60), "both jobs cancelled", || {
        cluster.state(&restored) == "CANCELED" && cluster.state(&b) == "CANCELED"
    });
    let later = runbook.run(&strs(&upgrade_args(
        cluster,
        &run_id("guard-3"),
        &jobs,
        &[],
    )));
    assert_eq!(later.code, 1, "{}", later.stderr);
    assert!(
        later
            .stderr
            .contains(&format!("run {} restored it already", run_id("guard-2"))),
        "{}",
        later.stderr
    );
    assert!(
        !later.stderr.contains("✓ restart"),
        "nothing restarted: {}",
        later.stderr
    );
}

#[test]
fn a_restore_from_snapshot_that_does_not_exist_is_refused_before_anything_stops() {
    let (cluster, _serial) = cluster();
    let names = ["nosnap-a", "nosnap-b"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let missing = format!("{}/savepoint-000000-nosuchsnapshot", cluster.savepoints);
    let mut jobs = jobs_input(&names);
    jobs["nosnap-a"]["restore_from"] = json!(missing);
    let runbook = Runbook::new(cluster);
    let run = runbook.run(&strs(&upgrade_args(cluster, "nosnap-1", &jobs, &[])));
    cluster.assert_all_running(&old, &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "restore_from of nosnap-a is not a snapshot: no _metadata in {missing}"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_jar_id_not_on_the_cluster_is_refused_before_anything_stops() {
    let (cluster, _serial) = cluster();
    let names = ["nojarid-a", "nojarid-b"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    let run = runbook.run(&strs(&upgrade_args(
        cluster,
        "nojarid-1",
        &jobs_input(&names),
        &[(
            "jar_id",
            "00000000-0000-0000-0000-000000000000_gone.jar".into(),
        )],
    )));
    cluster.assert_all_running(&old, &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("jar_id 00000000-0000-0000-0000-000000000000_gone.jar is not on the cluster"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_jar_file_that_does_not_exist_is_refused_before_anything_stops() {
    let (cluster, _serial) = cluster();
    let names = ["nojar-a", "nojar-b"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    let missing = runbook.dir().join("no-such-job.jar").display().to_string();
    let run = runbook.run(&strs(&upgrade_args(
        cluster,
        "nojar-1",
        &jobs_input(&names),
        &[("jar", missing.clone())],
    )));
    cluster.assert_all_running(&old, &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("jar: no readable file at {missing}")),
        "{}",
        run.stderr
    );
}

/// What follows the summary's `Notices` heading, up to the run's last line.
pub fn notices(stderr: &str) -> &str {
    let block = stderr
        .split("\nNotices\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Notices block:\n{stderr}"));
    block.split("\nrun ").next().unwrap_or(block)
}

#[test]
fn an_unknown_job_name_is_named_without_a_dump_or_all_jobs() {
    let (cluster, _serial) = cluster();
    let known = cluster.start_job("named-a", &[], None);
    let runbook = Runbook::new(cluster);
    let run = runbook.run(&strs(&upgrade_args(
        cluster,
        "named-1",
        &jobs_input(&["named-a", "named-ghost", "named-phantom"]),
        &[],
    )));
    cluster.assert_all_running(&[&known], &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let refused = run
        .stderr
        .lines()
        .find(|l| l.starts_with("✗ targets_ok failed"))
        .unwrap_or_else(|| panic!("targets_ok did not fail:\n{}", run.stderr));
    assert!(
        refused.contains(&format!(
            "Not RUNNING on {}: named-ghost, named-phantom (jobs are matched by name",
            cluster.url
        )),
        "{refused}"
    );
    for unwanted in ["all_jobs", "{\"", "named-a"] {
        assert!(!refused.contains(unwanted), "{unwanted}: {refused}");
    }
}

#[test]
fn nothing_listening_at_flink_url_fails_the_preflight_at_once_with_one_message() {
    let (cluster, _serial) = cluster();
    let url = refused_url();
    let runbook = Runbook::new(cluster);
    let args = with_flink_url(
        upgrade_args(cluster, "refused-1", &jobs_input(&["refused-a"]), &[]),
        &url,
    );
    let started = std::time::Instant::now();
    let run = runbook.run(&strs(&args));
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}:\n{}",
        run.stderr
    );
    let said = notices(&run.stderr);
    assert!(
        said.contains(&format!("Nothing usable answers at flink_url {url}"))
            && said.contains("Connection refused")
            && said.contains("no job was stopped"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_run_that_fails_after_the_stop_says_how_to_restart_the_jobs_and_that_works() {
    let (cluster, _serial) = cluster();
    let names = ["told-a", "told-b"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    // The hook fails once every job has stopped: the jobs are down, each with a snapshot.
    let run = runbook.run(&strs(&upgrade_args(
        cluster,
        "told-1",
        &jobs_input(&names),
        &[("hook", "echo the new jar is broken >&2; exit 1".into())],
    )));
    assert_eq!(run.code, 1, "{}", run.stderr);
    for jid in &old {
        assert_ne!(cluster.state(jid), "RUNNING", "{jid} was not stopped");
    }
    let said = notices(&run.stderr);
    assert!(
        said.contains("stopped_not_restarted:")
            && said.contains("The jobs were stopped but not all of them came back"),
        "{}",
        run.stderr
    );
    let jobs = said
        .split("--input 'jobs=")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no jobs input in the notice:\n{said}"));
    let jobs: Value = serde_json::from_str(jobs).expect("the jobs input is JSON");

    // Run again as the notice says: every job comes back from the snapshot it stopped with.
    let again = runbook.run(&strs(&upgrade_args(cluster, "told-2", &jobs, &[])));
    let outputs = again.outputs();
    for name in names {
        let job = entry(&outputs, name);
        assert_eq!(job["via"], "given", "{job}");
        assert!(
            same_path(
                job["snapshot"].as_str().unwrap(),
                jobs[name]["restore_from"].as_str().unwrap()
            ),
            "{job}"
        );
        assert_restored(cluster, job);
    }
}

#[test]
fn a_run_resumed_after_flink_forgot_its_savepoint_says_it_used_that_savepoint() {
    let (cluster, _serial) = cluster();
    let runbook = Runbook::new(cluster);
    let (old, trigger) = kill_while_polling_a_savepoint(cluster, &runbook, "forgot-a", "forgot-1");
    // The stop completes without the run; then Flink forgets the operation (the sandbox
    // keeps finished ones for 20 s: rest.async.store-duration).
    wait_for(
        Duration::from_secs(120),
        "Flink forgets the savepoint operation",
        || {
            matches!(
                call(
                    &cluster.url,
                    "GET",
                    &format!("/jobs/{old}/savepoints/{trigger}"),
                    None
                ),
                Ok((404, _))
            )
        },
    );
    assert_eq!(
        cluster.state(&old),
        "FINISHED",
        "stopped with its savepoint"
    );
    let savepoint = cluster.checkpoints(&old)["latest"]["savepoint"]["external_path"]
        .as_str()
        .expect("the job's savepoint")
        .to_owned();

    let resumed = runbook.run(&["resume", "forgot-1"]);
    let outputs = resumed.outputs();
    let job = entry(&outputs, "forgot-a");
    assert_eq!(job["via"], "savepoint", "{job}");
    assert_eq!(job["fallback"], false, "no savepoint failed: {job}");
    assert!(
        same_path(job["snapshot"].as_str().unwrap(), &savepoint),
        "{job} {savepoint}"
    );
    assert_eq!(cluster.savepoints_of(&old).len(), 1, "no second savepoint");
    assert_restored(cluster, job);
}

/// The point of no return waits for a window that holds the restart: with too little of the
/// window left (no history yet: the 30m estimate), the run parks before any job stops; a
/// resume in a longer window upgrades the job as usual.
#[test]
fn a_window_too_short_for_the_restart_parks_before_any_job_stops() {
    let (cluster, _serial) = cluster();
    let names = ["window-a"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    let mut args = upgrade_args(cluster, "window-1", &jobs_input(&names), &[]);
    args.extend(["--window".to_owned(), "10m".to_owned()]);
    let parked = runbook.run(&strs(&args));
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    cluster.assert_all_running(&old, &parked.stderr);
    assert!(
        parked
            .stderr
            .contains("step `snapshot` needs 30m (estimate"),
        "{}",
        parked.stderr
    );

    let resumed = runbook.run(&["resume", "window-1", "--window", "2h"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let outputs: Value = serde_json::from_str(&resumed.stdout).expect("the run's outputs");
    let job = entry(&outputs, "window-a");
    assert_eq!(job["old_job_id"], old[0]);
    assert_restored(cluster, job);
}

/// The RUNNING job named `name`, once there is exactly one.
fn running_job(cluster: &Cluster, name: &str) -> String {
    let mut found = None;
    wait_for(
        Duration::from_secs(60),
        &format!("one RUNNING job named {name}"),
        || {
            let running: Vec<String> = cluster
                .jobs()
                .into_iter()
                .filter(|j| j["name"] == name && j["state"] == "RUNNING")
                .filter_map(|j| j["jid"].as_str().map(str::to_owned))
                .collect();
            found = (running.len() == 1).then(|| running[0].clone());
            found.is_some()
        },
    );
    found.unwrap()
}

#[test]
fn an_upgrade_that_fails_after_the_stop_is_undone_and_the_old_jobs_run_again_from_their_savepoints()
{
    let (cluster, _serial) = cluster();
    let names = ["undone-a", "undone-b"];
    let old: Vec<String> = names
        .iter()
        .map(|n| cluster.start_job(n, &[], None))
        .collect();
    let runbook = Runbook::new(cluster);
    // The restarted jobs' ids come from the run id: one of its own on a long-lived sandbox.
    let run_id = format!("undo-{}", std::process::id());
    // The hook fails once every job has stopped with a savepoint.
    let run = runbook.run(&strs(&upgrade_args(
        cluster,
        &run_id,
        &jobs_input(&names),
        &[("hook", "echo the new jar is broken >&2; exit 1".into())],
    )));
    assert_eq!(run.code, 1, "{}", run.stderr);
    for jid in &old {
        assert_eq!(cluster.state(jid), "FINISHED", "{jid} was stopped");
    }

    let undone = runbook.run(&[
        "abort",
        &run_id,
        "--undo",
        "--reason",
        "the new jar is broken",
    ]);
    assert_eq!(undone.code, 1, "{}", undone.stderr);
    assert!(
        undone.stderr.contains(&format!("run {run_id} undone")),
        "{}",
        undone.stderr
    );
    // Undone: no notice tells to restart the jobs by hand.
    assert!(
        !undone
            .stderr
            .contains("The jobs were stopped but not all of them came back"),
        "{}",
        undone.stderr
    );
    for (name, old) in names.iter().zip(&old) {
        let new = running_job(cluster, name);
        assert_ne!(&new, old);
        cluster.wait_checkpointing(&new);
        // Restored from the savepoint its own old job stopped with.
        let restored = cluster.checkpoints(&new)["latest"]["restored"].clone();
        let path = restored["external_path"].as_str().unwrap_or_default();
        let dir = Cluster::local(path);
        assert!(
            dir.file_name().is_some_and(|n| n
                .to_string_lossy()
                .starts_with(&format!("savepoint-{}-", &old[..6]))),
            "{name} ({new}) restored from {restored}, not a savepoint of {old}"
        );
        cluster.assert_state_continues(&new);
        cluster.cancel(&new);
    }
    let listed = runbook.run(&["runs", "list"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("{run_id} ")) && l.contains("undone")),
        "{}",
        listed.stdout
    );
}
