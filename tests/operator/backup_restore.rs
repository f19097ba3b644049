//! `backup.yaml` then `restore.yaml`: a FlinkStateSnapshot savepoint of a running job, kept
//! with copies of both resources, and the job redeployed from it.

use serde_json::Value;

use crate::harness::*;

#[test]
fn backup_then_restore_brings_the_job_back_from_the_snapshot() {
    let world = FlinkWorld::start();
    let kube = &world.kube;
    let deployed = world.deploy("orders-backup", job_spec("flink:2.3"));
    let first_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();

    // Backup.
    let backup_dir = kube.path().join("backups");
    let backup = kube.run(
        &runbook_file("runbooks/flink/operator/backup.yaml"),
        &[
            ("deployment", "orders-backup".to_owned()),
            ("namespace", NS.to_owned()),
            ("backup_dir", backup_dir.display().to_string()),
        ],
    );
    let outputs = backup.outputs();
    eprintln!("backup outputs: {outputs:#}");
    assert_eq!(outputs["job_id"], first_job.as_str(), "{outputs:#}");
    let path = outputs["path"]
        .as_str()
        .expect("a savepoint path")
        .to_owned();
    assert!(
        local_path(&path).join("_metadata").is_file(),
        "{path} is a savepoint on disk"
    );
    assert!(
        local_path(&path).starts_with(local_path(&world.flink.savepoints)),
        "{path} is in the sandbox's savepoint directory"
    );

    // The FlinkStateSnapshot, as the double holds it.
    let name = outputs["snapshot"].as_str().expect("a snapshot name");
    assert!(name.starts_with("orders-backup-backup-"), "{name}");
    let snapshot = kube
        .api
        .get_object(SNAPSHOT, NS, name)
        .unwrap_or_else(|| panic!("no FlinkStateSnapshot {NS}/{name}"));
    assert_eq!(
        str_at(&snapshot, "/status/state"),
        "COMPLETED",
        "{snapshot:#}"
    );
    assert_eq!(str_at(&snapshot, "/status/path"), path);
    assert_eq!(
        str_at(&snapshot, "/spec/jobReference/name"),
        "orders-backup"
    );
    assert_eq!(
        snapshot.pointer("/spec/savepoint/disposeOnDelete"),
        Some(&Value::Bool(false)),
        "the savepoint must outlive the resource"
    );
    assert_eq!(
        str_at(&snapshot, "/metadata/labels/app.kubernetes.io~1managed-by"),
        "runbook"
    );

    // The copies: both resources, as the API server returned them.
    let copy = |key: &str| -> Value {
        let file = outputs[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {outputs:#}"));
        assert!(
            std::path::Path::new(file).starts_with(&backup_dir),
            "{file} is in {}",
            backup_dir.display()
        );
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON ({e}): {text}"))
    };
    let deployment_copy = copy("deployment_copy");
    assert_eq!(deployment_copy["apiVersion"], API_VERSION);
    assert_eq!(deployment_copy["kind"], DEPLOYMENT);
    assert_eq!(deployment_copy["metadata"]["name"], "orders-backup");
    assert_eq!(deployment_copy["metadata"]["namespace"], NS);
    assert_eq!(deployment_copy["spec"], deployed["spec"]);
    assert_eq!(
        str_at(&deployment_copy, "/status/jobStatus/jobId"),
        first_job
    );
    assert!(deployment_copy["metadata"].get("managedFields").is_none());
    let snapshot_copy = copy("snapshot_copy");
    assert_eq!(snapshot_copy["kind"], SNAPSHOT);
    assert_eq!(snapshot_copy["metadata"]["name"], name);
    assert_eq!(snapshot_copy["spec"], snapshot["spec"]);
    assert_eq!(str_at(&snapshot_copy, "/status/state"), "COMPLETED");
    assert_eq!(str_at(&snapshot_copy, "/status/path"), path);

    // Let the job move on past the savepoint, so that a restore from it is told apart.
    std::thread::sleep(std::time::Duration::from_secs(2));

    // Restore.
    let restore = kube.run(
        &runbook_file("runbooks/flink/operator/restore.yaml"),
        &[
            ("deployment", "orders-backup".to_owned()),
            ("namespace", NS.to_owned()),
            ("savepoint_path", path.clone()),
            ("flink_url", world.rest_url("orders-backup")),
        ],
    );
    let restored = restore.outputs();
    eprintln!("restore outputs: {restored:#}");
    let new_job = restored["job_id"].as_str().expect("a job id").to_owned();
    assert_ne!(new_job, first_job, "the job was redeployed");
    assert!(same_path(
        restored["restored_from"].as_str().unwrap_or(""),
        &path
    ));
    assert!(restored["checkpoint_id"].as_u64().is_some(), "{restored:#}");

    // What Flink says, independently of the runbook.
    assert!(
        same_path(&world.restored_from(&new_job), &path),
        "Flink says {new_job} restored from {}, not {path}",
        world.restored_from(&new_job)
    );
    assert_eq!(world.job_state(&new_job), "RUNNING");
    assert_eq!(
        world.job_state(&first_job),
        "CANCELED",
        "a redeploy cancels the old job"
    );
    world.assert_state_continues(&new_job);

    // And what the resource says.
    let after = kube.deployment("orders-backup");
    assert_eq!(str_at(&after, "/spec/job/initialSavepointPath"), path);
    assert_eq!(
        after.pointer("/spec/job/savepointRedeployNonce"),
        Some(&1.into())
    );
    assert_eq!(str_at(&after, "/status/lifecycleState"), "STABLE");
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), new_job);
    let patches: Vec<_> = kube
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "one patch: {patches:#?}");
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patches[0].status, 200);
}
