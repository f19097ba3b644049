//! runbooks/flink/upgrade-cli.yaml: the upgrade through the `flink` command-line client.

use crate::flink::{Cluster, cluster, refused_url, same_path, with_flink_url};
use crate::runbook::{Runbook, inputs};
use crate::upgrade::notices;
use serde_json::json;

#[test]
fn the_cli_upgrade_restarts_jobs_from_savepoints_or_their_latest_checkpoint() {
    let (cluster, _serial) = cluster();
    let a = cluster.start_job("cli-a", &[], None);
    let b = cluster.start_job("cli-b", &[], None);
    let jobs = json!({
        "cli-a": { "args": ["--name", "cli-a"] },
        // Its savepoint cannot be written: `flink stop` fails, the fallback cancels it and
        // picks its newest retained checkpoint on disk.
        "cli-b": { "args": ["--name", "cli-b"], "savepoint_dir": "file:///proc/runbook-flink-tests" },
    });
    let runbook = Runbook::new(cluster);
    let mut args: Vec<String> = [
        "run",
        "runbooks/flink/upgrade-cli.yaml",
        "--run-id",
        "cli-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(inputs(&[
        ("flink", cluster.flink_cli().display().to_string()),
        ("jar", cluster.jar.display().to_string()),
        ("savepoint_dir", cluster.savepoints.clone()),
        ("checkpoint_dir", cluster.checkpoints.clone()),
        ("flink_url", cluster.url.clone()),
        ("jobs", jobs.to_string()),
    ]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outputs = runbook.run(&args).outputs();

    let jobs = outputs["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{outputs:#}");
    for job in jobs {
        let (old, via, base) = if job["name"] == "cli-a" {
            (&a, "savepoint", Cluster::local(&cluster.savepoints))
        } else {
            (
                &b,
                "checkpoint",
                Cluster::local(&cluster.checkpoints).join(&b),
            )
        };
        assert_eq!(job["old_job_id"], old.as_str());
        assert_eq!(job["via"], via, "{job}");
        let snapshot = job["snapshot"].as_str().unwrap();
        assert!(Cluster::local(snapshot).starts_with(&base), "{job}");
        assert!(
            Cluster::local(snapshot).join("_metadata").is_file(),
            "{job}"
        );
        let new = job["new_job_id"].as_str().expect("a new job id");
        assert_eq!(cluster.state(new), "RUNNING");
        let restored = cluster.checkpoints(new)["latest"]["restored"]["external_path"].clone();
        assert!(
            same_path(restored.as_str().unwrap_or_default(), snapshot),
            "{restored} {job}"
        );
        assert!(
            job["checkpoint_id"].as_u64() > job["restored_checkpoint_id"].as_u64(),
            "{job}"
        );
        cluster.assert_state_continues(new);
    }
    assert_eq!(cluster.state(&a), "FINISHED");
    assert_eq!(cluster.state(&b), "CANCELED");
}

fn cli_args(cluster: &Cluster, run_id: &str, jobs: &serde_json::Value, jar: &str) -> Vec<String> {
    let mut args: Vec<String> = ["run", "runbooks/flink/upgrade-cli.yaml", "--run-id", run_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(inputs(&[
        ("flink", cluster.flink_cli().display().to_string()),
        ("jar", jar.to_owned()),
        ("savepoint_dir", cluster.savepoints.clone()),
        ("checkpoint_dir", cluster.checkpoints.clone()),
        ("flink_url", cluster.url.clone()),
        ("jobs", jobs.to_string()),
    ]));
    args
}

#[test]
fn the_cli_upgrade_refuses_a_job_that_deletes_its_checkpoints_on_cancel_before_anything_stops() {
    let (cluster, _serial) = cluster();
    let kept = cluster.start_job("cli-kept", &[], None);
    let deleting = cluster.start_job(
        "cli-deleting",
        &["--checkpoint-retention", "DELETE_ON_CANCELLATION"],
        None,
    );
    let jobs = json!({
        "cli-kept": { "args": ["--name", "cli-kept"] },
        // Were it stopped, its savepoint would fail and the fallback's cancel would delete
        // its checkpoints: its state would be gone.
        "cli-deleting": { "args": ["--name", "cli-deleting"], "savepoint_dir": "file:///proc/runbook-flink-tests" },
    });
    let runbook = Runbook::new(cluster);
    let args = cli_args(
        cluster,
        "cli-retention-1",
        &jobs,
        &cluster.jar.display().to_string(),
    );
    let run = runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cluster.assert_all_running(&[&kept, &deleting], &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "job cli-deleting ({deleting}) does not retain its checkpoints on cancellation"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn the_cli_upgrade_refuses_a_jar_file_that_does_not_exist_before_anything_stops() {
    let (cluster, _serial) = cluster();
    let a = cluster.start_job("cli-nojar-a", &[], None);
    let b = cluster.start_job("cli-nojar-b", &[], None);
    let jobs = json!({
        "cli-nojar-a": { "args": ["--name", "cli-nojar-a"] },
        "cli-nojar-b": { "args": ["--name", "cli-nojar-b"] },
    });
    let runbook = Runbook::new(cluster);
    let missing = runbook.dir().join("no-such-job.jar").display().to_string();
    let args = cli_args(cluster, "cli-nojar-1", &jobs, &missing);
    let run = runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cluster.assert_all_running(&[&a, &b], &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("jar: no readable file at {missing}")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cli_restart_whose_job_was_already_submitted_counts_as_done() {
    let (cluster, _serial) = cluster();
    let old = cluster.start_job("cli-again", &[], None);
    let jobs = json!({ "cli-again": { "args": ["--name", "cli-again"] } });
    // The job id follows from the run id, and Flink remembers the ids it ran: a run id of
    // its own for every test run.
    let run_id = &format!(
        "cli-again-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    // The id the restart gives the new job: its step key.
    let key = runbook::engine::step_key(run_id, "restart[0]");
    // What a run stopped right after `flink run` leaves for its resume: the job submitted
    // under the restart's id, which Flink then refuses to take a second time. The hook (run
    // once the job has stopped, just before the restart) submits it the same way.
    let hook = format!(
        "snapshot=$(printf '%s' \"$UPGRADE_JOBS\" | jq -r '.[0].snapshot') && \
         '{flink}' run -d -s \"$snapshot\" -D '$internal.pipeline.job-id={key}' '{jar}' --name cli-again >&2",
        flink = cluster.flink_cli().display(),
        jar = cluster.jar.display(),
    );
    let runbook = Runbook::new(cluster);
    let mut args = cli_args(cluster, run_id, &jobs, &cluster.jar.display().to_string());
    args.extend(inputs(&[("hook", hook)]));
    let run = runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let outputs = run.outputs();
    let shown = runbook.run(&["runs", "show", run_id, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
    let hook = report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == "hook"))
        .expect("the hook step");
    assert_eq!(
        hook["status"], "succeeded",
        "the hook submitted the job first"
    );
    let job = &outputs["jobs"][0];
    assert_eq!(job["old_job_id"], old.as_str());
    assert_eq!(job["new_job_id"], key.as_str(), "{outputs:#}");
    assert_eq!(cluster.state(&key), "RUNNING");
    let restored = cluster.checkpoints(&key)["latest"]["restored"]["external_path"].clone();
    assert!(
        same_path(
            restored.as_str().unwrap_or_default(),
            job["snapshot"].as_str().unwrap()
        ),
        "{restored} {job}"
    );
    let running: Vec<_> = cluster
        .jobs()
        .into_iter()
        .filter(|j| j["name"] == "cli-again" && j["state"] == "RUNNING")
        .collect();
    assert_eq!(running.len(), 1, "one copy of the job runs: {running:?}");
}

#[test]
fn a_cli_failure_shows_the_exception_message_and_how_to_restart() {
    let (cluster, _serial) = cluster();
    let old = cluster.start_job("cli-broken", &[], None);
    // A main class the jar does not have: the stop works, the restart fails.
    let jobs = json!({
        "cli-broken": { "args": ["--name", "cli-broken"], "entry_class": "runbook.sandbox.NoSuchJob" }
    });
    let runbook = Runbook::new(cluster);
    let args = cli_args(
        cluster,
        "cli-broken-1",
        &jobs,
        &cluster.jar.display().to_string(),
    );
    let run = runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cluster.state(&old), "FINISHED", "stopped with a savepoint");
    let failed = run
        .stderr
        .lines()
        .find(|l| l.starts_with("✗ restart[0] failed"))
        .unwrap_or_else(|| panic!("the restart did not fail:\n{}", run.stderr));
    assert!(
        failed.ends_with("java.lang.ClassNotFoundException: runbook.sandbox.NoSuchJob"),
        "{failed}"
    );
    assert!(!failed.contains(" more"), "{failed}");
    let said = notices(&run.stderr);
    let shown = runbook.run(&["runs", "show", "cli-broken-1", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
    let snapshot = report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == "stop[0]"))
        .and_then(|s| s["outputs"]["location"].as_str())
        .unwrap_or_else(|| panic!("no savepoint in {report:#}"))
        .to_owned();
    assert!(
        Cluster::local(&snapshot).join("_metadata").is_file(),
        "{snapshot}"
    );
    assert!(
        said.contains("The jobs were stopped but not all of them came back")
            && said.contains("# cli-broken")
            && said.contains(&format!(
                "run -d -c runbook.sandbox.NoSuchJob -s {snapshot} {}",
                cluster.jar.display()
            ))
            && said.contains("--name cli-broken"),
        "{said}"
    );
}

#[test]
fn the_cli_upgrade_fails_at_once_when_nothing_listens_at_flink_url() {
    let (cluster, _serial) = cluster();
    let url = refused_url();
    let jobs = json!({ "cli-refused": { "args": ["--name", "cli-refused"] } });
    let runbook = Runbook::new(cluster);
    let args = with_flink_url(
        cli_args(
            cluster,
            "cli-refused-1",
            &jobs,
            &cluster.jar.display().to_string(),
        ),
        &url,
    );
    let started = std::time::Instant::now();
    let run = runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?}:\n{}",
        run.stderr
    );
    let said = notices(&run.stderr);
    assert!(
        said.contains(&format!("Nothing usable answers at {url}"))
            && said.contains("no job was stopped"),
        "{}",
        run.stderr
    );
}
