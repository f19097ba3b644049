//! runbooks/flink/dr-drill.yaml: two drills on one job, two reports.

use crate::flink::{Cluster, cluster, same_path, wait_for};
use crate::runbook::{Output, Runbook, inputs};
use crate::upgrade::notices;
use serde_json::Value;
use std::time::Duration;

/// One drill on the job named `job`, with these inputs besides flink_url and job.
fn drill(
    runbook: &Runbook,
    cluster: &Cluster,
    run_id: &str,
    job: &str,
    extra: &[(&str, String)],
) -> Output {
    let mut args: Vec<String> = ["run", "runbooks/flink/dr-drill.yaml", "--run-id", run_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut pairs = vec![("flink_url", cluster.url.clone()), ("job", job.to_owned())];
    pairs.extend(extra.iter().cloned());
    args.extend(inputs(&pairs));
    runbook.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_drill_run_twice_gives_two_reports_with_the_measured_recovery_time() {
    let (cluster, _serial) = cluster();
    let first_job = cluster.start_job("drill-a", &[], None);
    let runbook = Runbook::new(cluster);
    let drill = |run_id: &str| -> Value {
        drill(
            &runbook,
            cluster,
            run_id,
            "drill-a",
            &[
                ("jar_id", cluster.jar_id.clone()),
                ("args", r#"["--name", "drill-a"]"#.into()),
            ],
        )
        .outputs()
    };
    let first = drill("drill-1");
    let second = drill("drill-2");

    // The second drill works on the job the first one restored.
    assert_eq!(first["old_job_id"], first_job.as_str());
    assert_eq!(second["old_job_id"], first["new_job_id"]);
    for (run_id, drill) in [("drill-1", &first), ("drill-2", &second)] {
        let old = drill["old_job_id"].as_str().unwrap();
        assert_eq!(
            cluster.state(old),
            "CANCELED",
            "the disaster: a cancel, no savepoint"
        );
        assert!(
            cluster.savepoints_of(old).is_empty(),
            "no savepoint of {old}"
        );
        let restored = drill["restored_from"].as_str().expect("a restored path");
        assert!(
            Cluster::local(restored).starts_with(Cluster::local(&cluster.checkpoints).join(old)),
            "restored from a checkpoint of {old}: {drill:#}"
        );
        let restored_id = drill["restored_checkpoint_id"].as_u64().unwrap();
        assert!(
            restored_id >= drill["checkpoint_before"]["id"].as_u64().unwrap(),
            "{drill:#}"
        );
        assert!(drill["first_checkpoint_id"].as_u64().unwrap() > restored_id);
        let recovery = drill["recovery_ms"].as_i64().expect("recovery_ms");
        let running = drill["time_to_running_ms"]
            .as_i64()
            .expect("time_to_running_ms");
        assert!(
            0 < running && running < recovery && recovery < 120_000,
            "{drill:#}"
        );
        // Measured on Flink's clock, without the drill's own wait for the REST cache.
        let waited = drill["drill_wait_ms"].as_i64().expect("drill_wait_ms");
        let new = drill["new_job_id"].as_str().unwrap();
        let cancelling = cluster.get(&format!("/jobs/{old}"))["timestamps"]["CANCELLING"]
            .as_i64()
            .expect("the old job's CANCELLING time");
        let running_at = cluster.get(&format!("/jobs/{new}"))["timestamps"]["RUNNING"]
            .as_i64()
            .expect("the new job's RUNNING time");
        assert!(waited > 0, "{drill:#}");
        assert_eq!(running + waited, running_at - cancelling, "{drill:#}");
        eprintln!(
            "{run_id}: recovery {recovery} ms (RUNNING after {running} ms; the drill waited {waited} ms)"
        );

        let report = runbook.markdown(run_id);
        assert!(
            report.starts_with(&format!("# Run `{run_id}` of `flink-dr-drill`")),
            "{report}"
        );
        assert!(report.contains("| Status | **succeeded** |"), "{report}");
        assert!(
            report.contains(&format!("\"recovery_ms\": {recovery}")),
            "{report}"
        );
        assert!(report.contains("`disaster/request_cancel`"), "{report}");
        // The runbook's objectives, measured from the journal: recovery well within 15m,
        // and the checkpoint restored from younger than 5m when the disaster struck.
        for objective in ["rto", "rpo"] {
            assert!(
                report
                    .lines()
                    .any(|line| line.starts_with(&format!("| `{objective}`: "))
                        && line.contains("| **met** |")),
                "{objective} met: {report}"
            );
        }
        let new = drill["new_job_id"].as_str().unwrap();
        let path = cluster.checkpoints(new)["latest"]["restored"]["external_path"].clone();
        assert!(same_path(path.as_str().unwrap(), restored));
    }
    assert_eq!(
        cluster.state(second["new_job_id"].as_str().unwrap()),
        "RUNNING"
    );
    cluster.assert_state_continues(second["new_job_id"].as_str().unwrap());

    let listed = runbook.run(&["runs", "list"]);
    let drills = listed
        .stdout
        .lines()
        .filter(|l| l.contains("flink-dr-drill"))
        .count();
    assert_eq!(drills, 2, "{}", listed.stdout);
}

#[test]
fn the_drill_refuses_a_jar_id_not_on_the_cluster_before_the_disaster() {
    let (cluster, _serial) = cluster();
    let job = cluster.start_job("drill-nojar", &[], None);
    let runbook = Runbook::new(cluster);
    let gone = "00000000-0000-0000-0000-000000000000_gone.jar";
    let run = drill(
        &runbook,
        cluster,
        "drill-nojar-1",
        "drill-nojar",
        &[
            ("jar_id", gone.into()),
            ("args", r#"["--name", "drill-nojar"]"#.into()),
        ],
    );
    cluster.assert_all_running(&[&job], &run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("jar_id {gone} is not on the cluster")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_drill_that_cannot_restore_names_the_checkpoint_and_the_command_that_does() {
    let (cluster, _serial) = cluster();
    let old = cluster.start_job("drill-lost", &[], None);
    let runbook = Runbook::new(cluster);
    // A main class that does not exist: the restore fails after the disaster.
    let run = drill(
        &runbook,
        cluster,
        "drill-lost-1",
        "drill-lost",
        &[
            ("jar_id", cluster.jar_id.clone()),
            ("entry_class", "runbook.sandbox.NoSuchJob".into()),
            ("args", r#"["--name", "drill-lost"]"#.into()),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cluster.state(&old), "CANCELED", "the disaster happened");
    let said = notices(&run.stderr);
    assert!(
        said.contains(&format!(
            "The drill cancelled drill-lost ({old}) and did not bring it back."
        )),
        "{said}"
    );
    let checkpoint = said
        .split("Restore the job from its checkpoint ")
        .nth(1)
        .and_then(|rest| {
            rest.split(':')
                .collect::<Vec<_>>()
                .get(..2)
                .map(|p| p.join(":"))
        })
        .unwrap_or_else(|| panic!("no checkpoint in the notice:\n{said}"));
    assert!(
        Cluster::local(&checkpoint).join("_metadata").is_file(),
        "{checkpoint} is not a checkpoint:\n{said}"
    );
    assert!(
        Cluster::local(&checkpoint).starts_with(Cluster::local(&cluster.checkpoints).join(&old)),
        "{checkpoint}"
    );
    // The command the notice gives, with the main class put right, brings the job back.
    let body = said
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no request body in the notice:\n{said}"));
    let mut body: Value = serde_json::from_str(body).expect("the body is JSON");
    assert!(same_path(
        body["savepointPath"].as_str().unwrap(),
        &checkpoint
    ));
    assert!(
        said.contains(&format!("{}/jars/{}/run", cluster.url, cluster.jar_id)),
        "{said}"
    );
    body.as_object_mut().unwrap().remove("entryClass");
    let (status, answer) = cluster.post(&format!("/jars/{}/run", cluster.jar_id), body);
    assert_eq!(status, 200, "{answer}");
    let new = answer["jobid"].as_str().expect("a job id").to_owned();
    wait_for(Duration::from_secs(60), "the restored job runs", || {
        cluster.state(&new) == "RUNNING"
    });
    cluster.wait_checkpointing(&new);
    let restored = cluster.checkpoints(&new)["latest"]["restored"]["external_path"].clone();
    assert!(
        same_path(restored.as_str().unwrap_or_default(), &checkpoint),
        "{restored}"
    );
}
