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

    // Risk 8: once, ever. A later run that restores the same snapshot again is refused,
    // from the store's record of what earlier runs restored, before anything changes.
    kube.api.clear_requests();
    let again = kube.run(
        &runbook_file("runbooks/flink/operator/restore.yaml"),
        &[
            ("deployment", "orders-backup".to_owned()),
            ("namespace", NS.to_owned()),
            // The same file, as another spelling of its path.
            (
                "savepoint_path",
                format!("file://{}", local_path(&path).display()),
            ),
            ("flink_url", world.rest_url("orders-backup")),
        ],
    );
    assert_eq!(again.code, 1, "{again}");
    assert!(
        again.stderr.contains("restored it already"),
        "the refusal names the earlier run: {again}"
    );
    assert!(
        kube.api.requests().iter().all(|r| r.method != "PATCH"),
        "nothing patched: {:#?}",
        kube.api.requests()
    );
    assert_eq!(world.job_state(&new_job), "RUNNING");
}

/// A spec as seed 003 asks for one: checkpoint and savepoint directories in
/// `spec.flinkConfiguration`, the state on a PersistentVolumeClaim the pods mount.
fn spec_with_state_dirs(world: &FlinkWorld, claim: &str) -> Value {
    let mut spec = job_spec("flink:2.3");
    spec["flinkConfiguration"]["state.checkpoints.dir"] = world.flink.checkpoints.clone().into();
    spec["flinkConfiguration"]["state.savepoints.dir"] = world.flink.savepoints.clone().into();
    spec["podTemplate"] = serde_json::json!({"spec": {
        "containers": [{"name": "flink-main-container",
                        "volumeMounts": [{"name": "state", "mountPath": "/opt/flink/volume"}]}],
        "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": claim}}],
    }});
    spec
}

fn bound_claim(kube: &Kube, name: &str) {
    kube.api
        .create_object(
            "PersistentVolumeClaim",
            serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"accessModes": ["ReadWriteMany"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            }),
        )
        .expect("create the claim");
    kube.api
        .put_status(
            "PersistentVolumeClaim",
            NS,
            name,
            serde_json::json!({"phase": "Bound"}),
        )
        .expect("bind the claim");
}

fn recreate(world: &FlinkWorld, deployment_copy: &str, snapshot_copy: &str, name: &str) -> Run {
    world.kube.run(
        &runbook_file("runbooks/flink/operator/recreate.yaml"),
        &[
            ("deployment_copy", deployment_copy.to_owned()),
            ("snapshot_copy", snapshot_copy.to_owned()),
            ("namespace", NS.to_owned()),
            ("flink_url", world.rest_url(name)),
        ],
    )
}

fn creates(kube: &Kube) -> usize {
    kube.api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/flinkdeployments"))
        .count()
}

/// Risk 6: the FlinkDeployment was deleted after its backup (seed 003: "apply the saved
/// copy"). restore.yaml needs the live resource; recreate.yaml creates it again from the copy,
/// without the metadata the API server set (a create with a resourceVersion is refused), and
/// only once the prerequisites hold.
#[test]
fn a_deleted_deployment_is_recreated_from_its_backup_copy() {
    let world = FlinkWorld::start();
    let kube = &world.kube;
    let name = "orders-deleted";
    bound_claim(kube, "orders-state");
    let deployed = world.deploy(name, spec_with_state_dirs(&world, "orders-state"));
    let first_uid = str_at(&deployed, "/metadata/uid").to_owned();
    let backup_dir = kube.path().join("backups");
    let backup = kube.run(
        &runbook_file("runbooks/flink/operator/backup.yaml"),
        &[
            ("deployment", name.to_owned()),
            ("namespace", NS.to_owned()),
            ("backup_dir", backup_dir.display().to_string()),
        ],
    );
    let backup = backup.outputs();
    let savepoint = backup["path"].as_str().expect("a savepoint").to_owned();
    let deployment_copy = backup["deployment_copy"]
        .as_str()
        .expect("a copy")
        .to_owned();
    let snapshot_copy = backup["snapshot_copy"].as_str().expect("a copy").to_owned();
    let copy: Value =
        serde_json::from_str(&std::fs::read_to_string(&deployment_copy).expect("the copy"))
            .expect("JSON");
    assert!(
        copy.pointer("/metadata/resourceVersion").is_some() && copy.get("status").is_some(),
        "the copy carries what the API server set: {copy:#}"
    );

    kube.api
        .delete_object(DEPLOYMENT, NS, name)
        .expect("delete the deployment");
    wait_until(
        std::time::Duration::from_secs(60),
        "the deployment gone",
        || {
            let gone = kube.api.get_object(DEPLOYMENT, NS, name).is_none();
            (gone, gone)
        },
    );

    // What there was before: restore.yaml needs the live resource.
    let run = kube.run(
        &runbook_file("runbooks/flink/operator/restore.yaml"),
        &[
            ("deployment", name.to_owned()),
            ("namespace", NS.to_owned()),
            ("savepoint_path", savepoint.clone()),
            ("flink_url", world.rest_url(name)),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not found"), "{run}");

    // A changed copy is refused before anything is created: the message names the reason.
    let refused = |file: &str, changed: Value, reason: &str| {
        let file = kube.write(file, &changed.to_string());
        let run = recreate(&world, &file.display().to_string(), &snapshot_copy, name);
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stderr.contains(reason), "{run}");
        assert_eq!(creates(kube), 0, "nothing created");
    };
    let mut no_dirs = copy.clone();
    no_dirs["spec"]["flinkConfiguration"]
        .as_object_mut()
        .expect("a configuration")
        .remove("state.checkpoints.dir");
    refused("no-dirs.json", no_dirs, "a checkpoint directory");
    let mut other_claim = copy.clone();
    other_claim["spec"]["podTemplate"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] =
        "orders-state-gone".into();
    refused("other-claim.json", other_claim, "orders-state-gone");

    // The copy as saved: recreated, and the job restored from the backup's savepoint.
    let run = recreate(&world, &deployment_copy, &snapshot_copy, name);
    let outputs = run.outputs();
    eprintln!("recreate outputs: {outputs:#}");
    assert_eq!(creates(kube), 1);
    assert!(same_path(
        outputs["snapshot"].as_str().unwrap_or(""),
        &savepoint
    ));
    let after = kube.deployment(name);
    assert_ne!(str_at(&after, "/metadata/uid"), first_uid, "a new resource");
    assert_eq!(
        str_at(&after, "/status/lifecycleState"),
        "STABLE",
        "{after:#}"
    );
    assert_eq!(str_at(&after, "/spec/job/state"), "running");
    assert_eq!(
        after["spec"]["flinkConfiguration"],
        copy["spec"]["flinkConfiguration"]
    );
    let job = outputs["job_id"].as_str().expect("a job").to_owned();
    assert_eq!(str_at(&after, "/status/jobStatus/jobId"), job);
    assert!(
        same_path(&world.restored_from(&job), &savepoint),
        "restored from the backup's savepoint"
    );
    world.assert_state_continues(&job);
}
