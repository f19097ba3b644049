//! `upgrade.yaml`: a new image through the operator's savepoint upgrade, and the way back
//! when the new spec does not come up (lib/rollback.yaml: restore.yaml with the old image from
//! the old job's newest snapshot).

use crate::harness::*;

fn upgrade(world: &FlinkWorld, deployment: &str, image: &str) -> Run {
    world.kube.run(
        &runbook_file("runbooks/flink/operator/upgrade.yaml"),
        &[
            ("deployment", deployment.to_owned()),
            ("namespace", NS.to_owned()),
            ("image", image.to_owned()),
            ("flink_url", world.rest_url(deployment)),
            ("backup", "false".to_owned()),
        ],
    )
}

#[test]
fn an_upgrade_that_cannot_start_rolls_back_to_the_newest_snapshot() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-rollback", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();

    let started = std::time::Instant::now();
    let run = upgrade(&world, "orders-rollback", "flink:2.3-broken");
    // The operator reports the image as it really does (lifecycle DEPLOYED, the JobManager
    // deployment in ERROR), never FAILED: the upgrade must see that at once, not after its
    // 15-minute wait.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(200),
        "the upgrade and its rollback took {:?}\n{run}",
        started.elapsed()
    );
    let outputs = run.outputs();
    eprintln!("upgrade outputs: {outputs:#}");
    // The operator stopped the old job with a savepoint before the new image failed: that
    // savepoint is the old job's newest state, and the stop discarded its checkpoints.
    assert_eq!(
        outputs["via"], "latest savepoint (rolled back)",
        "{outputs:#}"
    );
    assert_eq!(outputs["upgraded"], false);
    assert!(
        run.stderr
            .contains(r#"Back-off pulling image \"flink:2.3-broken\": ErrImagePull"#)
            && run.stderr.contains("upgrade succeeded via fallback"),
        "the upgrade failed on the image, then the fallback ran:\n{run}"
    );
    assert_eq!(outputs["old_job_id"], old_job.as_str());
    assert!(outputs["backup_path"].is_null(), "no backup was asked for");
    let snapshot = outputs["snapshot"].as_str().expect("a snapshot").to_owned();
    assert!(
        local_path(&snapshot).join("_metadata").is_file(),
        "{snapshot} is on disk"
    );
    assert_eq!(
        world.job_state(&old_job),
        "FINISHED",
        "stopped with a savepoint"
    );
    // Flink caches checkpoint statistics for a few seconds: poll for the final ones.
    let old_checkpoints = wait_until(
        std::time::Duration::from_secs(30),
        "the old job's final checkpoint statistics",
        || {
            let stats = world.get(&format!("/jobs/{old_job}/checkpoints"));
            (
                stats.pointer("/latest/savepoint/external_path").is_some(),
                stats,
            )
        },
    );
    assert!(
        same_path(
            str_at(&old_checkpoints, "/latest/savepoint/external_path"),
            &snapshot
        ),
        "{snapshot} is the savepoint that stopped {old_job}: {old_checkpoints:#}"
    );
    assert_eq!(
        old_checkpoints.pointer("/latest/completed/discarded"),
        Some(&true.into()),
        "the stop with savepoint discarded the checkpoints: {old_checkpoints:#}"
    );
    let new_job = outputs["new_job_id"]
        .as_str()
        .expect("a new job")
        .to_owned();
    assert_ne!(new_job, old_job);

    // The resource is back on the old image, STABLE, running the new job.
    let after = world.kube.deployment("orders-rollback");
    assert_eq!(str_at(&after, "/spec/image"), "flink:2.3", "{after:#}");
    assert_eq!(str_at(&after, "/spec/flinkVersion"), "v2_3");
    assert_eq!(
        str_at(&after, "/status/lifecycleState"),
        "STABLE",
        "{after:#}"
    );
    assert_eq!(str_at(&after, "/status/jobStatus/state"), "RUNNING");
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), new_job);
    assert!(same_path(
        str_at(&after, "/spec/job/initialSavepointPath"),
        &snapshot
    ));

    // Flink: the new job runs, restored from that snapshot, with its state.
    assert_eq!(world.job_state(&new_job), "RUNNING");
    let restored = world.restored_from(&new_job);
    assert!(
        same_path(&restored, &snapshot),
        "Flink says {new_job} restored from {restored}, not {snapshot}"
    );
    world.assert_state_continues(&new_job);

    // The broken image was tried first: two patches, the upgrade's then the rollback's.
    let patches: Vec<String> = world
        .kube
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.status == 200)
        .map(|r| r.body)
        .collect();
    assert_eq!(patches.len(), 2, "{patches:#?}");
    assert!(patches[0].contains("flink:2.3-broken"), "{}", patches[0]);
    assert!(
        patches[1].contains(r#""image":"flink:2.3""#),
        "{}",
        patches[1]
    );
}

/// The rollback when the old job ended without a savepoint (cancelled, or failed): its
/// latest retained checkpoint, read once it has ended.
#[test]
fn a_rollback_without_an_upgrade_savepoint_restores_the_latest_checkpoint() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-cancelled", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    // Let a few checkpoints subsume each other, then end the job without a savepoint.
    std::thread::sleep(std::time::Duration::from_secs(2));
    world.cancel_job(&old_job);
    // The retained checkpoint, from the disk (Flink's statistics are cached for a while).
    let job_dir = local_path(&world.flink.checkpoints).join(&old_job);
    let retained: Vec<String> = std::fs::read_dir(&job_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", job_dir.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("chk-"))
        .collect();
    assert_eq!(retained.len(), 1, "one retained checkpoint: {retained:?}");
    assert_ne!(retained[0], "chk-1", "newer checkpoints subsumed the first");
    let latest = job_dir.join(&retained[0]).display().to_string();

    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/lib/rollback.yaml"),
        &[
            ("deployment", "orders-cancelled".to_owned()),
            ("namespace", NS.to_owned()),
            ("old_job", old_job.clone()),
            ("image", "flink:2.3".to_owned()),
            ("flink_url", world.rest_url("orders-cancelled")),
        ],
    );
    let outputs = run.outputs();
    eprintln!("rollback outputs: {outputs:#}");
    assert_eq!(outputs["kind"], "checkpoint", "{outputs:#}");
    let snapshot = outputs["snapshot"].as_str().expect("a snapshot").to_owned();
    assert!(same_path(&snapshot, &latest), "{snapshot} is not {latest}");
    assert!(local_path(&snapshot).join("_metadata").is_file());
    let new_job = outputs["job_id"].as_str().expect("a job").to_owned();
    assert_ne!(new_job, old_job);
    let restored = world.restored_from(&new_job);
    assert!(
        same_path(&restored, &latest),
        "Flink says {new_job} restored from {restored}, not {latest}"
    );
    world.assert_state_continues(&new_job);
    let after = world.kube.deployment("orders-cancelled");
    assert_eq!(str_at(&after, "/status/lifecycleState"), "STABLE");
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), new_job);
}

#[test]
fn a_good_upgrade_restores_from_the_upgrade_savepoint() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-upgrade", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();

    let run = upgrade(&world, "orders-upgrade", "flink:2.3.1");
    let outputs = run.outputs();
    eprintln!("upgrade outputs: {outputs:#}");
    assert_eq!(outputs["via"], "upgrade savepoint", "{outputs:#}");
    assert_eq!(outputs["upgraded"], true);
    let new_job = outputs["new_job_id"]
        .as_str()
        .expect("a new job")
        .to_owned();
    assert_ne!(new_job, old_job);

    let after = world.kube.deployment("orders-upgrade");
    assert_eq!(str_at(&after, "/spec/image"), "flink:2.3.1");
    assert_eq!(str_at(&after, "/spec/job/upgradeMode"), "savepoint");
    assert_eq!(str_at(&after, "/status/lifecycleState"), "STABLE");
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), new_job);
    let savepoint = str_at(&after, "/status/jobStatus/upgradeSavepointPath").to_owned();
    assert!(!savepoint.is_empty(), "{after:#}");
    assert!(same_path(
        outputs["snapshot"].as_str().unwrap_or(""),
        &savepoint
    ));
    assert!(
        local_path(&savepoint).join("_metadata").is_file(),
        "{savepoint} is a savepoint on disk"
    );

    assert_eq!(
        world.job_state(&old_job),
        "FINISHED",
        "stopped with a savepoint"
    );
    let restored = world.restored_from(&new_job);
    assert!(
        same_path(&restored, &savepoint),
        "Flink says {new_job} restored from {restored}, not {savepoint}"
    );
    world.assert_state_continues(&new_job);
}

/// Risk 1: a job that checkpoints every few minutes (as production jobs do) completes its first
/// checkpoint after the upgrade minutes later. Waiting a fixed 5 minutes for it rolled a
/// healthy upgrade back; the wait now comes from the job's checkpoint configuration.
#[test]
fn a_healthy_upgrade_is_not_rolled_back_while_its_first_checkpoint_is_minutes_away() {
    // 5m30s between checkpoints, and as long before the first (min-pause: Flink delays the
    // first checkpoint by a random time between min-pause and the interval).
    const INTERVAL_S: u64 = 330;
    let world = FlinkWorld::start();
    let mut spec = job_spec("flink:2.3");
    spec["flinkConfiguration"]["execution.checkpointing.interval"] =
        format!("{INTERVAL_S} s").into();
    spec["flinkConfiguration"]["execution.checkpointing.min-pause"] =
        format!("{INTERVAL_S} s").into();
    // The job's program leaves checkpointing to the configuration.
    spec["job"]["args"] = serde_json::json!(["--rate-ms", "50", "--checkpoint-ms", "0"]);
    world
        .kube
        .create_deployment("orders-slow-checkpoints", spec);
    let deployed = world.wait_deployment("orders-slow-checkpoints", "STABLE and RUNNING", |o| {
        str_at(o, "/status/lifecycleState") == "STABLE"
            && str_at(o, "/status/jobStatus/state") == "RUNNING"
    });
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    let config = world.get(&format!("/jobs/{old_job}/checkpoints/config"));
    assert_eq!(
        config["interval"].as_u64(),
        Some(INTERVAL_S * 1000),
        "the job checkpoints as its resource says: {config:#}"
    );
    // The upgrade needs a checkpoint to go back to: taken by hand, not waited for.
    world.checkpoint_now(&old_job);

    // The first checkpoint of the new job comes 5m30s after it started.
    let run = world.kube.run_within(
        &runbook_file("runbooks/flink/operator/upgrade.yaml"),
        &[
            ("deployment", "orders-slow-checkpoints".to_owned()),
            ("namespace", NS.to_owned()),
            ("image", "flink:2.3.1".to_owned()),
            ("flink_url", world.rest_url("orders-slow-checkpoints")),
            ("backup", "false".to_owned()),
        ],
        std::time::Duration::from_secs(600),
    );
    let outputs = run.outputs();
    eprintln!("upgrade outputs: {outputs:#}");
    assert_eq!(
        outputs["via"], "upgrade savepoint",
        "rolled back: {outputs:#}\n{run}"
    );
    assert_eq!(outputs["upgraded"], true);
    assert_eq!(outputs["checkpointed"], true, "{outputs:#}");
    let new_job = outputs["new_job_id"]
        .as_str()
        .expect("a new job")
        .to_owned();
    assert_ne!(new_job, old_job);
    let after = world.kube.deployment("orders-slow-checkpoints");
    assert_eq!(str_at(&after, "/spec/image"), "flink:2.3.1", "{after:#}");
    assert_eq!(world.job_state(&new_job), "RUNNING");
    // The scenario really happened: the new job's first checkpoint came more than 5 minutes
    // after it started running.
    let details = world.get(&format!("/jobs/{new_job}"));
    let running_at = details
        .pointer("/timestamps/RUNNING")
        .and_then(serde_json::Value::as_i64)
        .expect("when the job ran");
    let checkpoints = world.get(&format!("/jobs/{new_job}/checkpoints"));
    let first_checkpoint_at = checkpoints
        .pointer("/latest/completed/latest_ack_timestamp")
        .and_then(serde_json::Value::as_i64)
        .expect("a completed checkpoint");
    assert!(
        first_checkpoint_at - running_at > 300_000,
        "the first checkpoint came {} ms after the job ran",
        first_checkpoint_at - running_at
    );
}

/// An "upgrade" to the image already running changes nothing the operator restarts the job
/// for (a change of upgradeMode alone restarts nothing): no upgrade savepoint would come, and
/// the rollback would go after a healthy job. Pre-flight refuses it; nothing is patched.
#[test]
fn an_upgrade_to_the_running_image_is_refused_before_anything_changes() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-same-image", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    let run = upgrade(&world, "orders-same-image", "flink:2.3");
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("differs from the current flink:2.3"),
        "{run}"
    );
    assert!(
        world
            .kube
            .api
            .requests()
            .iter()
            .all(|r| r.method != "PATCH"),
        "nothing is patched: {:#?}",
        world.kube.api.requests()
    );
    assert_eq!(world.job_state(&old_job), "RUNNING");
    let after = world.kube.deployment("orders-same-image");
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), old_job);
}
