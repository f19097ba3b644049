//! runbooks/ververica/*.yaml against the Ververica Platform double on the real Flink.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    FlinkWorld, Run, local_path, repo, run_args, same_path, store_url, str_at, wait_until,
};
use crate::ververica_api::{SPEC_VERSION, Ververica, VervericaConfig};

const TOKEN: &str = "vvp-api-token-of-the-tests";
const LIMIT: Duration = Duration::from_secs(600);

struct Vvp {
    // Dropped first: cancels the jobs it started while the world still holds the sandbox.
    vvp: Ververica,
    world: FlinkWorld,
}

impl Vvp {
    fn start() -> Vvp {
        let world = FlinkWorld::start();
        let vvp = Ververica::start(VervericaConfig {
            namespace: "default".into(),
            token: TOKEN.into(),
            flink_url: world.flink.url.clone(),
            job_jar: world.flink.job_jar.clone(),
            checkpoints: world.flink.checkpoints.clone(),
        });
        Vvp { vvp, world }
    }

    fn spec(&self, state: &str, parallelism: i64) -> Value {
        json!({
            "state": state,
            "restoreStrategy": {"kind": "NONE"},
            "upgradeStrategy": {"kind": "STATEFUL"},
            "template": {"spec": {
                "artifact": {"kind": "JAR", "jarUri": "s3://artifacts/orders.jar"},
                "parallelism": parallelism,
                "flinkConfiguration": {"state.savepoints.dir": self.world.flink.savepoints},
            }},
        })
    }

    /// A RUNNING Deployment whose job has a retained checkpoint; answers its id and job.
    fn running_deployment(&self, name: &str) -> (String, String) {
        let id = self
            .vvp
            .create_deployment(name, self.spec("RUNNING", 1), true);
        let job = wait_until(Duration::from_secs(120), "the deployment's job", || {
            let job = self.vvp.flink_job(&id);
            (job.is_some(), job)
        })
        .unwrap();
        // A few checkpoints in, so that the latest one holds counted events, not the empty
        // state of a job whose source had not started yet.
        wait_until(Duration::from_secs(120), "a checkpoint with state", || {
            let checkpoints = self.world.get(&format!("/jobs/{job}/checkpoints"));
            let id = checkpoints
                .pointer("/latest/completed/id")
                .and_then(Value::as_i64);
            (id.is_some_and(|id| id >= 3), checkpoints)
        });
        (id, job)
    }

    /// `runbook run FILE` with the platform's URL and API token (`VVP_API_TOKEN`).
    fn run(&self, file: &str, inputs: &[(&str, String)]) -> Run {
        let mut all = vec![("vvp_url", self.vvp.url())];
        all.extend(inputs.iter().cloned());
        let run = runbook_with_token(self.world.kube.path(), file, &all);
        if run.code != 0 {
            eprintln!("Ververica double events:\n{}", self.vvp.events().join("\n"));
        }
        run
    }
}

/// The binary with `VVP_API_TOKEN` set, a store in `dir`, bounded in time.
fn runbook_with_token(dir: &Path, file: &str, inputs: &[(&str, String)]) -> Run {
    let args = run_args(file, inputs, false);
    let stdout_path = dir.join("vvp-stdout.txt");
    let stderr_path = dir.join("vvp-stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(&args)
        .current_dir(repo())
        .env("VVP_API_TOKEN", TOKEN)
        .env("RUNBOOK_STORE", store_url(dir))
        .env("NO_COLOR", "1")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start the runbook binary");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for runbook") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runbook {args:?} took more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// Seed 001: a cancelled Deployment's retained checkpoint, registered as a Savepoint (COPIED,
/// with the Deployment's spec version), is what the Deployment really restarts from.
#[test]
fn restore_from_a_retained_checkpoint() {
    let vvp = Vvp::start();
    let (id, old_job) = vvp.running_deployment("orders");
    vvp.vvp
        .patch_spec(&id, &json!({"spec": {"state": "CANCELLED"}}));
    wait_until(Duration::from_secs(120), "the deployment cancelled", || {
        let deployment = vvp.vvp.deployment(&id);
        (
            str_at(&deployment, "/status/state") == "CANCELLED",
            deployment,
        )
    });
    // The job's details and checkpoint statistics share a cache: read both once it ended.
    let checkpoint = wait_until(Duration::from_secs(60), "the retained checkpoint", || {
        let ended = str_at(&vvp.world.get(&format!("/jobs/{old_job}")), "/state") == "CANCELED";
        let checkpoints = vvp.world.get(&format!("/jobs/{old_job}/checkpoints"));
        let path = str_at(&checkpoints, "/latest/completed/external_path").to_owned();
        // The statistics are cached: the path they name must still exist (not subsumed).
        let exists = local_path(&path).exists();
        (ended && !path.is_empty() && exists, path)
    });

    let run = vvp.run(
        "runbooks/ververica/restore-from-snapshot.yaml",
        &[
            ("deployment_id", id.clone()),
            ("savepoint_location", checkpoint.clone()),
        ],
    );
    let outputs = run.outputs();
    assert_eq!(outputs["restored_from"], json!(checkpoint));

    let savepoints = vvp.vvp.savepoints(&id);
    assert_eq!(savepoints.len(), 1, "{savepoints:#?}");
    let registered = &savepoints[0];
    assert_eq!(registered["metadata"]["origin"], "COPIED");
    assert_eq!(registered["spec"]["savepointLocation"], json!(checkpoint));
    assert_eq!(
        registered["metadata"]["annotations"][SPEC_VERSION],
        vvp.vvp.deployment(&id)["metadata"]["annotations"][SPEC_VERSION]
    );
    let deployment = vvp.vvp.deployment(&id);
    assert_eq!(
        str_at(&deployment, "/spec/restoreStrategy/kind"),
        "LATEST_SAVEPOINT"
    );

    let job = vvp.vvp.flink_job(&id).expect("the deployment runs");
    assert_eq!(outputs["flink_job_id"], json!(job));
    assert_ne!(job, old_job);
    assert!(same_path(&vvp.world.restored_from(&job), &checkpoint));
    vvp.world.assert_state_continues(&job);
}

/// A Deployment without the spec-version annotation: a Savepoint copied from it would not be
/// used during restore (seed 001's note). The run stops before registering anything.
#[test]
fn a_missing_spec_version_annotation_is_caught_and_explained() {
    let vvp = Vvp::start();
    let id = vvp
        .vvp
        .create_deployment("legacy", vvp.spec("CANCELLED", 1), false);
    let run = vvp.run(
        "runbooks/ververica/restore-from-snapshot.yaml",
        &[
            ("deployment_id", id.clone()),
            ("savepoint_location", "file:///backups/legacy/chk-7".into()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains(&format!("metadata.annotations.\"{SPEC_VERSION}\""))
            && said.contains("not used during restore")
            && said.contains("Nothing was registered"),
        "the failure does not explain the missing annotation:\n{run}"
    );
    assert!(
        vvp.vvp.savepoints(&id).is_empty(),
        "a Savepoint was registered"
    );
    assert!(vvp.vvp.jobs(&id).is_empty(), "the Deployment was started");
    assert_eq!(str_at(&vvp.vvp.deployment(&id), "/spec/state"), "CANCELLED");
}

/// Suspend (stop with savepoint), raise the parallelism, resume with LATEST_SAVEPOINT: the new
/// job runs with the new parallelism from the suspend savepoint, its state intact.
#[test]
fn suspend_upgrade_resume() {
    let vvp = Vvp::start();
    let (id, old_job) = vvp.running_deployment("payments");
    let run = vvp.run(
        "runbooks/ververica/suspend-upgrade-resume.yaml",
        &[
            ("deployment_id", id.clone()),
            (
                "spec_patch",
                json!({"spec": {"template": {"spec": {"parallelism": 2}}}}).to_string(),
            ),
        ],
    );
    let outputs = run.outputs();
    let savepoint = outputs["savepoint"]
        .as_str()
        .expect("the suspend savepoint")
        .to_owned();
    let suspend = vvp
        .vvp
        .savepoints(&id)
        .into_iter()
        .find(|s| s["metadata"]["origin"] == "SUSPEND")
        .expect("a SUSPEND savepoint");
    assert_eq!(suspend["spec"]["savepointLocation"], json!(savepoint));
    assert_eq!(
        vvp.world.job_state(&old_job),
        "FINISHED",
        "stopped with a savepoint"
    );

    let job = vvp.vvp.flink_job(&id).expect("the deployment runs");
    assert_eq!(outputs["flink_job_id"], json!(job));
    let details = vvp.world.get(&format!("/jobs/{job}"));
    let parallelism: Vec<i64> = details["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .filter_map(|v| v["parallelism"].as_i64())
        .collect();
    assert!(
        parallelism.iter().all(|p| *p == 2),
        "parallelism {parallelism:?}"
    );
    assert_eq!(
        str_at(
            &vvp.vvp.deployment(&id),
            &format!("/metadata/annotations/{SPEC_VERSION}")
        ),
        "2",
        "the spec version did not move with the template"
    );
    assert!(same_path(&vvp.world.restored_from(&job), &savepoint));
    vvp.world.assert_state_continues(&job);
}
