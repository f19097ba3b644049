//! Risk 5 of a real cluster: failure states that never come. Each must end the runbook at
//! once, with the operator's reason, instead of a 15-minute wait for a state the real operator
//! never reports (the run limit of these tests is 5 minutes).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[test]
fn a_spec_the_operator_rejects_fails_the_upgrade_at_once() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-rejected", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    let generation = deployed["metadata"]["generation"]
        .as_i64()
        .expect("a generation");
    let patch = json!({"spec": {"image": "flink:2.3.1", "job": {"parallelism": 0}}});
    let started = Instant::now();
    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/lib/apply-upgrade.yaml"),
        &[
            ("deployment", "orders-rejected".to_owned()),
            ("namespace", NS.to_owned()),
            ("patch", patch.to_string()),
            ("flink_url", world.rest_url("orders-rejected")),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the rejection took {:?} to be seen",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("Job parallelism must be larger than 0"),
        "the operator's reason is shown:\n{run}"
    );
    // The operator never took the new generation; the old job runs on.
    let after = world.kube.deployment("orders-rejected");
    assert_eq!(
        after["status"]["observedGeneration"], generation,
        "{after:#}"
    );
    assert_eq!(world.job_state(&old_job), "RUNNING");
}

#[test]
fn a_savepoint_that_keeps_failing_ends_the_backup_after_its_retries() {
    let world = FlinkWorld::start();
    let mut spec = job_spec("flink:2.3");
    // A savepoint directory Flink cannot create: every savepoint attempt fails.
    spec["flinkConfiguration"]["execution.checkpointing.savepoint-dir"] =
        json!("file:///proc/no-such-dir/savepoints");
    world.deploy("orders-no-savepoint", spec);
    let backups = world.kube.path().join("backups");
    let started = Instant::now();
    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/backup.yaml"),
        &[
            ("deployment", "orders-no-savepoint".to_owned()),
            ("namespace", NS.to_owned()),
            ("backup_dir", backups.display().to_string()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the failed snapshot took {:?} to be seen",
        started.elapsed()
    );
    let snapshots = world.kube.api.list_objects(SNAPSHOT, Some(NS));
    let snapshot = snapshots
        .iter()
        .find(|s| str_at(s, "/metadata/name").starts_with("orders-no-savepoint-backup-"))
        .unwrap_or_else(|| panic!("no backup snapshot: {snapshots:#?}"));
    assert_eq!(snapshot["spec"]["backoffLimit"], 2, "{snapshot:#}");
    assert_eq!(str_at(snapshot, "/status/state"), "FAILED", "{snapshot:#}");
    assert_eq!(snapshot["status"]["failures"], 3, "{snapshot:#}");
    assert!(
        run.stderr.contains("ended FAILED"),
        "the snapshot's end is named:\n{run}"
    );
    assert!(!backups.exists(), "no copies of a failed backup");
}

/// The operator retries a failed savepoint 10 s later, doubling each time, without a cap: with
/// many retries the snapshot ends FAILED only after the backup's 15-minute wait. backup.yaml
/// refuses more than 5 before creating anything.
#[test]
fn more_snapshot_retries_than_the_wait_holds_are_refused_before_anything_is_created() {
    use crate::flink_operator::snapshot_retry_delay;
    // The double waits as the operator does, scaled down: 6 retries would take 630 s there.
    let waited: std::time::Duration = (1..=6).map(snapshot_retry_delay).sum();
    assert_eq!(waited * 10, Duration::from_secs(630));
    let kube = Kube::start();
    kube.create_deployment("orders-retries", job_spec("flink:2.3"));
    let run = kube.run(
        &runbook_file("runbooks/flink/operator/backup.yaml"),
        &[
            ("deployment", "orders-retries".to_owned()),
            ("namespace", NS.to_owned()),
            (
                "backup_dir",
                kube.path().join("backups").display().to_string(),
            ),
            ("snapshot_retries", "6".to_owned()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("snapshot_retries is 6: give 0 to 5"),
        "{run}"
    );
    assert!(
        kube.api.requests().iter().all(|r| r.method != "POST"),
        "nothing created: {:#?}",
        kube.api.requests()
    );
}
