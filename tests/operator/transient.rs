//! Risk 2 of a real cluster: an API server that is busy (429 with Retry-After), fails a
//! request (5xx) or drops the connection for a moment must not end a `kubernetes` wait: only a
//! definite state does. Otherwise a blip in the middle of an upgrade fails its `settled` wait
//! and the fallback rolls a healthy upgrade back.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::kube_api::Fault;

/// One wait on a FlinkDeployment until it is STABLE, as the operator runbooks wait.
const WAIT_RUNBOOK: &str = r#"
version: 1
name: wait-for-stable
inputs:
  deployment: { type: string }
steps:
  - id: stable
    kubernetes:
      wait:
        api_version: flink.apache.org/v1beta1
        kind: FlinkDeployment
        name: "{{inputs.deployment}}"
        condition: '.status.lifecycleState == "STABLE"'
        timeout: 60s
    outputs:
      lifecycle: '.status.lifecycleState'
outputs:
  lifecycle: '.steps.stable.outputs.lifecycle'
"#;

/// The statuses the double answered to the GETs of one FlinkDeployment (0: no answer).
fn get_statuses(kube: &Kube, name: &str) -> Vec<u16> {
    let path = format!("/apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/{name}");
    kube.api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .map(|r| r.status)
        .collect()
}

#[test]
fn a_wait_goes_on_through_429_5xx_and_dropped_connections() {
    let kube = Kube::start();
    kube.create_deployment("orders-blips", job_spec("flink:2.3"));
    kube.api.inject_faults(
        DEPLOYMENT,
        NS,
        "orders-blips",
        Some("GET"),
        &[
            Fault::InternalError,
            Fault::DropConnection,
            Fault::TooManyRequests {
                retry_after_seconds: 1,
            },
            Fault::ServiceUnavailable,
            Fault::DropConnection,
            Fault::InternalError,
        ],
    );
    // The deployment becomes STABLE once the API server is well again.
    let api = kube.api.store();
    let operator = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while api.faults_left() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        api.put_status(
            DEPLOYMENT,
            NS,
            "orders-blips",
            json!({"lifecycleState": "STABLE"}),
        )
        .expect("write the status");
    });
    let file = kube.write("wait.yaml", WAIT_RUNBOOK);
    let run = kube.run_json(&file, &[("deployment", "orders-blips".to_owned())]);
    operator.join().expect("the status writer");

    assert_eq!(run.code, 0, "the wait ended on a transient error:\n{run}");
    let ended = run.step_ended("stable");
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["outputs"]["lifecycle"], "STABLE");
    assert_eq!(
        run.attempts("stable"),
        1,
        "waited through, not retried as a step"
    );
    // Every fault was met (kube-rs itself retried the 429 and the 503 after Retry-After).
    let statuses = get_statuses(&kube, "orders-blips");
    for status in [500, 0, 429, 503] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    // The user is told (a warning, when the trouble changes) that the wait goes on.
    let warnings: Vec<String> = run
        .events()
        .into_iter()
        .filter(|e| e["event"] == "warning" && e["path"] == "stable")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    for part in [
        "Internal error occurred: etcdserver: request timed out (500 InternalError)",
        "connection closed before message completed",
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(part) && w.ends_with("(transient: the wait goes on)")),
            "no warning about `{part}`: {warnings:#?}"
        );
    }
}

#[test]
fn a_wait_that_only_meets_errors_says_so_when_it_times_out() {
    let kube = Kube::start();
    kube.create_deployment("orders-down", job_spec("flink:2.3"));
    kube.api.inject_faults(
        DEPLOYMENT,
        NS,
        "orders-down",
        Some("GET"),
        &vec![Fault::InternalError; 100],
    );
    let file = kube.write("wait.yaml", &WAIT_RUNBOOK.replace("60s", "3s"));
    let run = kube.run_json(&file, &[("deployment", "orders-down".to_owned())]);
    assert_eq!(run.code, 1, "{run}");
    let error = run.step_ended("stable")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("did not hold within 3s")
            && error.contains("requests failed: Internal error occurred"),
        "{error}"
    );
}

#[test]
fn a_definite_error_ends_a_wait_at_once() {
    let kube = Kube::start();
    kube.create_deployment("orders-forbidden", job_spec("flink:2.3"));
    let wrong = kube.path().join("wrong-token");
    kube.api
        .write_kubeconfig_with_token(&wrong, &[(CONTEXT, NS)], "not-the-token")
        .expect("write the kubeconfig");
    let file = kube.write("wait.yaml", WAIT_RUNBOOK);
    let started = std::time::Instant::now();
    let run = runbook(
        kube.path(),
        &wrong,
        &[
            "run",
            &file.display().to_string(),
            "--input",
            "deployment=orders-forbidden",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("Unauthorized"), "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a 401 is an answer, not a blip: {:?}",
        started.elapsed()
    );
}

/// The whole upgrade, with the API server failing requests while the upgrade is watched: the
/// upgrade goes through, nothing is rolled back.
#[test]
fn an_upgrade_watched_through_api_server_blips_is_not_rolled_back() {
    let world = FlinkWorld::start();
    world.deploy("orders-blips-upgrade", job_spec("flink:2.3"));
    let api = world.kube.api.store();
    // Once the upgrade's patch is in, the API server fails the GETs of the deployment a
    // while: the `settled` wait meets them.
    let injector = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if api
                .requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.status == 200)
            {
                api.inject_faults(
                    DEPLOYMENT,
                    NS,
                    "orders-blips-upgrade",
                    Some("GET"),
                    &[
                        Fault::DropConnection,
                        Fault::InternalError,
                        Fault::DropConnection,
                        Fault::InternalError,
                    ],
                );
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let run = world.kube.run(
        &runbook_file("runbooks/flink/operator/upgrade.yaml"),
        &[
            ("deployment", "orders-blips-upgrade".to_owned()),
            ("namespace", NS.to_owned()),
            ("image", "flink:2.3.1".to_owned()),
            ("flink_url", world.rest_url("orders-blips-upgrade")),
            ("backup", "false".to_owned()),
        ],
    );
    assert!(injector.join().expect("the injector"), "no patch was sent");
    let outputs = run.outputs();
    assert_eq!(outputs["via"], "upgrade savepoint", "{outputs:#}\n{run}");
    assert_eq!(outputs["upgraded"], true);
    assert_eq!(world.kube.api.faults_left(), 0, "the faults were met");
    let after = world.kube.deployment("orders-blips-upgrade");
    assert_eq!(str_at(&after, "/spec/image"), "flink:2.3.1", "{after:#}");
}
