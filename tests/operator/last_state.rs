//! Risk 3 of a real cluster: after a last-state upgrade (the operator's fallback when it cannot
//! take a savepoint) `status.jobStatus.upgradeSavepointPath` is the placeholder
//! `KUBERNETES_OPERATOR_LAST_STATE`, not a path. The runbooks must neither verify a restore
//! against it nor roll back to it.
//!
//! Risk 4 meets it here: in application mode the operator deletes the old JobManager when it
//! redeploys, so after a last-state upgrade that did not come up `flink_url/jobs/OLD` answers
//! 404 (or nothing, with no JobManager ready). The rollback must not need the old job's REST
//! endpoint: it redeploys from the HA metadata, checked against what upgrade.yaml recorded
//! before the upgrade.

use serde_json::json;

use crate::flink_operator::LAST_STATE_PLACEHOLDER;
use crate::harness::*;

#[test]
fn a_last_state_upgrade_is_verified_against_its_checkpoint_not_the_placeholder() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-last-state", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    let patch = json!({"spec": {"image": "flink:2.3.1", "job": {"upgradeMode": "last-state"}}});
    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/lib/apply-upgrade.yaml"),
        &[
            ("deployment", "orders-last-state".to_owned()),
            ("namespace", NS.to_owned()),
            ("patch", patch.to_string()),
            ("flink_url", world.rest_url("orders-last-state")),
        ],
    );
    let outputs = run.outputs();
    eprintln!("apply-upgrade outputs: {outputs:#}");
    let after = world.kube.deployment("orders-last-state");
    assert_eq!(
        str_at(&after, "/status/jobStatus/upgradeSavepointPath"),
        LAST_STATE_PLACEHOLDER,
        "the operator took no savepoint: {after:#}"
    );
    assert_eq!(outputs["last_state"], true, "{outputs:#}");
    assert_eq!(outputs["checkpointed"], true, "{outputs:#}");
    let snapshot = outputs["snapshot"].as_str().expect("a snapshot").to_owned();
    assert!(
        snapshot.contains(&format!("{old_job}/chk-")),
        "the new job restored from a checkpoint of {old_job}, not from {snapshot}"
    );
    let new_job = outputs["job_id"].as_str().expect("a job").to_owned();
    assert_ne!(new_job, old_job);
    assert!(same_path(&world.restored_from(&new_job), &snapshot));
    world.assert_state_continues(&new_job);
}

#[test]
fn a_rollback_after_a_last_state_upgrade_restores_a_checkpoint_not_the_placeholder() {
    let world = FlinkWorld::start();
    let deployed = world.deploy("orders-last-state-back", job_spec("flink:2.3"));
    let old_job = str_at(&deployed, "/status/jobStatus/jobId").to_owned();
    // What upgrade.yaml records before it changes anything: the latest checkpoint's id.
    let recorded = world.get(&format!("/jobs/{old_job}/checkpoints"))["latest"]["completed"]["id"]
        .as_u64()
        .expect("a completed checkpoint");
    // A last-state upgrade to an image that cannot be pulled: the old job is cancelled (its
    // checkpoints retained), the placeholder recorded, the new JobManager never comes.
    world
        .kube
        .api
        .update_object(DEPLOYMENT, NS, "orders-last-state-back", |object| {
            object["spec"]["image"] = json!("flink:2.3-broken");
            object["spec"]["job"]["upgradeMode"] = json!("last-state");
        })
        .expect("change the spec");
    world.wait_deployment(
        "orders-last-state-back",
        "the placeholder and the JobManager in ERROR",
        |o| {
            str_at(o, "/status/jobStatus/upgradeSavepointPath") == LAST_STATE_PLACEHOLDER
                && str_at(o, "/status/jobManagerDeploymentStatus") == "ERROR"
        },
    );
    assert_eq!(world.job_state(&old_job), "CANCELED");

    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/lib/rollback.yaml"),
        &[
            ("deployment", "orders-last-state-back".to_owned()),
            ("namespace", NS.to_owned()),
            ("old_job", old_job.clone()),
            ("image", "flink:2.3".to_owned()),
            ("checkpoint_id", recorded.to_string()),
            ("flink_url", world.rest_url("orders-last-state-back")),
        ],
    );
    let outputs = run.outputs();
    eprintln!("rollback outputs: {outputs:#}");
    // Application mode: the old job's JobManager is gone, its REST endpoint answers for the
    // deployment's JobManager only. The rollback goes through the HA metadata instead.
    assert_eq!(outputs["via"], "last state", "{outputs:#}");
    assert_eq!(outputs["kind"], "checkpoint", "{outputs:#}");
    let snapshot = outputs["snapshot"].as_str().expect("a snapshot").to_owned();
    assert!(
        snapshot.contains(&format!("{old_job}/chk-")),
        "rolled back to {snapshot}, not a checkpoint of {old_job}"
    );
    let restored_id = world.get(&format!(
        "/jobs/{}/checkpoints",
        outputs["job_id"].as_str().unwrap_or("")
    ))["latest"]["restored"]["id"]
        .as_u64()
        .expect("a restored checkpoint");
    assert!(
        restored_id >= recorded,
        "restored checkpoint {restored_id}, older than {recorded} recorded before the upgrade"
    );
    let after = world.kube.deployment("orders-last-state-back");
    assert_eq!(str_at(&after, "/spec/image"), "flink:2.3");
    assert_eq!(
        str_at(&after, "/status/lifecycleState"),
        "STABLE",
        "{after:#}"
    );
    let new_job = outputs["job_id"].as_str().expect("a job").to_owned();
    assert!(same_path(&world.restored_from(&new_job), &snapshot));
    world.assert_state_continues(&new_job);
}

#[test]
fn restore_refuses_the_placeholder_as_a_path() {
    let kube = Kube::start();
    kube.create_deployment("orders-placeholder", job_spec("flink:2.3"));
    let run = kube.run(
        &runbook_file("runbooks/flink/operator/restore.yaml"),
        &[
            ("deployment", "orders-placeholder".to_owned()),
            ("namespace", NS.to_owned()),
            ("savepoint_path", LAST_STATE_PLACEHOLDER.to_owned()),
            ("flink_url", "http://127.0.0.1:9".to_owned()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("is not a snapshot path"), "{run}");
    // Nothing was changed.
    assert!(
        kube.api.requests().iter().all(|r| r.method != "PATCH"),
        "{:#?}",
        kube.api.requests()
    );
}
