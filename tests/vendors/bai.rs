//! runbooks/bai/restart-from-snapshot.yaml against the BAI management double on the real Flink.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::bai_api::{
    BaiConfig, BaiManagement, INSIGHTS_ENGINE, SECRET, register_kinds, used_marker,
};
use crate::harness::{
    FlinkWorld, Run, run_args, runbook_file, runbook_within, same_path, str_at, wait_until,
};
use crate::kube_api::KubeApi;

const RUNBOOK: &str = "runbooks/bai/restart-from-snapshot.yaml";
const NAMESPACE: &str = "bai";
const ENGINE: &str = "icp4adeploy";
const AUTH_SECRET: &str = "icp4adeploy-bai-management-auth";
const USERNAME: &str = "bai-admin";
const PASSWORD: &str = "pv-Secr3t-of-the-management-service";

/// The sandbox Flink with BAI's processing jobs running on it.
struct Bai {
    // Dropped first: cancels the jobs it started while the world still holds the sandbox.
    bai: BaiManagement,
    /// The Kubernetes API double over HTTPS: kubectl sends no bearer token over plain HTTP.
    api: KubeApi,
    kubeconfig: PathBuf,
    world: FlinkWorld,
    pv: PathBuf,
}

impl Bai {
    fn start(jobs: &[&str]) -> Bai {
        Self::start_with(jobs, false)
    }

    fn start_with(jobs: &[&str], tls: bool) -> Bai {
        let world = FlinkWorld::start();
        let api = KubeApi::start_tls(world.kube.path());
        register_kinds(&api);
        let kubeconfig = world.kube.path().join("kubeconfig-bai");
        api.write_kubeconfig(&kubeconfig, &[("bai", NAMESPACE)])
            .expect("write the kubeconfig");
        let pv = world.kube.path().join("pv");
        std::fs::create_dir_all(&pv).expect("the PV directory");
        let bai = BaiManagement::start(
            &api,
            BaiConfig {
                namespace: NAMESPACE.into(),
                engine: ENGINE.into(),
                auth_secret: AUTH_SECRET.into(),
                username: USERNAME.into(),
                password: PASSWORD.into(),
                jobs: jobs.iter().map(|j| j.to_string()).collect(),
                pv: pv.clone(),
                flink_url: world.flink.url.clone(),
                job_jar: world.flink.job_jar.clone(),
                tls,
            },
        );
        let bai = Bai {
            bai,
            api,
            kubeconfig,
            world,
            pv,
        };
        for job in jobs {
            bai.wait_checkpointed(&bai.bai.jid(job));
        }
        bai
    }

    /// Waits until the job runs and has retained checkpoints.
    fn wait_checkpointed(&self, jid: &str) {
        wait_until(
            Duration::from_secs(120),
            &format!("job {jid} checkpointed"),
            || {
                let checkpoints = self.world.get(&format!("/jobs/{jid}/checkpoints"));
                // A few checkpoints in, so that the latest one holds counted events.
                let id = checkpoints
                    .pointer("/latest/completed/id")
                    .and_then(Value::as_i64);
                let done = self.world.job_state(jid) == "RUNNING" && id.is_some_and(|id| id >= 3);
                (done, checkpoints)
            },
        );
    }

    fn run(&self, inputs: &[(&str, String)]) -> Run {
        let mut all = vec![
            ("namespace", NAMESPACE.to_owned()),
            ("pv_root", self.pv.display().to_string()),
        ];
        all.extend(inputs.iter().cloned());
        let args = run_args(&runbook_file(RUNBOOK).display().to_string(), &all, false);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = runbook_within(
            self.world.kube.path(),
            &self.kubeconfig,
            &args,
            Duration::from_secs(600),
        );
        if run.code != 0 {
            eprintln!("BAI double events:\n{}", self.bai.events().join("\n"));
        }
        run
    }

    fn engine(&self) -> Value {
        self.api
            .get_object(INSIGHTS_ENGINE, NAMESPACE, ENGINE)
            .expect("the insightsengine resource")
    }

    /// No secret of the run in its store, its output, or the files next to it.
    fn assert_never_written(&self, run: &Run, secret: &str) {
        assert!(
            !run.stdout.contains(secret),
            "the password is on stdout:\n{run}"
        );
        assert!(
            !run.stderr.contains(secret),
            "the password is on stderr:\n{run}"
        );
        for entry in std::fs::read_dir(self.world.kube.path()).expect("the test directory") {
            let path = entry.expect("an entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read a file of the test");
                assert!(
                    !contains(&bytes, secret.as_bytes()),
                    "the password is in {}",
                    path.display()
                );
            }
        }
    }
}

impl Drop for Bai {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("BAI double events:\n{}", self.bai.events().join("\n"));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn restarted<'a>(outputs: &'a Value, job: &str) -> &'a Value {
    outputs["restarted"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["job"] == job))
        .unwrap_or_else(|| panic!("no restarted entry for {job} in {outputs:#}"))
}

/// Seed 000 for an upgrade: savepoints with cancelJob=true; the savepoint of `icm` really fails
/// (its savepoint directory cannot be created), so `icm` is cancelled and restarts from its
/// latest checkpoint; `bpmn` restarts from its savepoint; `odm` gets no recovery path.
#[test]
fn upgrade_restarts_from_savepoints_and_a_failed_job_from_its_checkpoint() {
    let bai = Bai::start(&["bpmn", "icm", "odm"]);
    let (old_bpmn, old_icm, old_odm) =
        (bai.bai.jid("bpmn"), bai.bai.jid("icm"), bai.bai.jid("odm"));
    // A file where Flink must create icm's savepoint directory: a real savepoint failure.
    let blocked = bai.pv.join("savepoints/dba/bai-icm");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not a directory").unwrap();

    let run = bai.run(&[("upgrade", "true".into())]);
    let outputs = run.outputs();

    // The management service named icm as failed, with the others' locations.
    let savepoints = outputs["savepoints"]
        .as_array()
        .expect("the savepoints answer");
    let state_of = |name: &str| {
        savepoints
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| str_at(s, "/state").to_owned())
    };
    assert_eq!(
        state_of("dba/bai-icm").as_deref(),
        Some("FAILED"),
        "{outputs:#}"
    );
    assert_eq!(state_of("dba/bai-bpmn").as_deref(), Some("COMPLETED"));
    assert_eq!(state_of("dba/bai-odm").as_deref(), Some("COMPLETED"));

    let bpmn = restarted(&outputs, "bpmn");
    let icm = restarted(&outputs, "icm");
    assert_eq!(bpmn["source"], "savepoint");
    assert_eq!(icm["source"], "checkpoint");
    assert!(
        outputs["restarted"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["job"] != "odm"),
        "the ODM job must not be restarted from a recovery path: {outputs:#}"
    );

    // The custom resource: plain paths (no file:), the savepoint for bpmn, the old job's
    // checkpoint for icm, nothing for odm.
    let engine = bai.engine();
    let config = &engine["spec"]["bai_configuration"];
    let bpmn_path = str_at(config, "/bpmn/recovery_path");
    let icm_path = str_at(config, "/icm/recovery_path");
    assert!(
        bpmn_path.starts_with('/') && !bpmn_path.contains("file:"),
        "{config:#}"
    );
    assert!(
        bpmn_path.contains("/savepoints/dba/bai-bpmn/savepoint-"),
        "{config:#}"
    );
    assert!(
        icm_path.contains(&format!("/checkpoints/dba/bai-icm/{old_icm}/chk-")),
        "{config:#}"
    );
    assert!(
        config.get("odm").is_none(),
        "odm got a recovery path: {config:#}"
    );

    // The real jobs: old ones cancelled, new ones restored from those paths, state kept.
    for old in [&old_bpmn, &old_icm, &old_odm] {
        assert_eq!(bai.world.job_state(old), "CANCELED", "old job {old}");
    }
    for (job, path) in [("bpmn", bpmn_path), ("icm", icm_path)] {
        let jid = bai.bai.jid(job);
        assert_eq!(restarted(&outputs, job)["jid"], json!(jid));
        assert!(
            same_path(&bai.world.restored_from(&jid), path),
            "{job} restored elsewhere"
        );
        bai.world.assert_state_continues(&jid);
        assert!(
            used_marker(&bai.pv, job, path).is_dir(),
            "{job}'s path not marked used"
        );
    }
    assert_eq!(
        bai.world.job_state(&bai.bai.jid("odm")),
        "RUNNING",
        "odm runs again"
    );
    bai.assert_never_written(&run, PASSWORD);
}

/// Seed 000 steps 6 and 7: a path restarts a job once. Going back to a savepoint a job was
/// already restarted from is refused before anything changes, and allowed with
/// reuse_snapshots (its marker deleted).
#[test]
fn a_used_path_is_refused_unless_reuse_is_asked_for() {
    let bai = Bai::start(&["bpmn"]);
    let first = bai.run(&[]).outputs();
    let used = restarted(&first, "bpmn")["path"]
        .as_str()
        .unwrap()
        .to_owned();
    bai.wait_checkpointed(&bai.bai.jid("bpmn"));
    // A second restart: the resource now holds a newer savepoint.
    let second = bai.run(&[]).outputs();
    assert_ne!(restarted(&second, "bpmn")["path"], json!(used));
    let jid = bai.bai.jid("bpmn");
    bai.wait_checkpointed(&jid);
    let before = bai.engine();

    let paths = json!({"bpmn": used}).to_string();
    let refused = bai.run(&[("recovery_paths", paths.clone())]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains(&format!(
            "Error: The savepoint {used} was already used. The Job won't be run from there."
        )) && refused.stderr.contains("reuse_snapshots=true"),
        "the refusal does not say why and what to do:\n{refused}"
    );
    assert_eq!(
        bai.engine()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"],
        "the custom resource changed although the path was refused"
    );
    assert_eq!(bai.bai.jid("bpmn"), jid, "the job was restarted");
    assert_eq!(bai.world.job_state(&jid), "RUNNING");
    assert!(used_marker(&bai.pv, "bpmn", &used).is_dir());

    let reused = bai.run(&[
        ("recovery_paths", paths),
        ("reuse_snapshots", "true".into()),
    ]);
    let outputs = reused.outputs();
    let new_jid = bai.bai.jid("bpmn");
    assert_ne!(new_jid, jid, "the job was not restarted");
    assert_eq!(restarted(&outputs, "bpmn")["source"], "given");
    assert_eq!(
        str_at(&bai.engine(), "/spec/bai_configuration/bpmn/recovery_path"),
        used
    );
    assert!(same_path(&bai.world.restored_from(&new_jid), &used));
    bai.world.assert_state_continues(&new_jid);
    assert!(
        !bai.bai
            .events()
            .iter()
            .any(|e| e.contains("was already used")),
        "the job submitter refused the path: {:#?}",
        bai.bai.events()
    );
}

/// Wrong credentials in the secret: the first call is refused (401), the run fails saying so,
/// and nothing changed: no savepoint, the same jobs, the custom resource untouched.
#[test]
fn wrong_credentials_fail_clearly_and_change_nothing() {
    let bai = Bai::start(&["bpmn"]);
    let jid = bai.bai.jid("bpmn");
    let wrong = "not-the-management-password";
    let store = bai.api.store();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(wrong);
    store
        .update_object(SECRET, NAMESPACE, AUTH_SECRET, |secret| {
            secret["data"]["password"] = json!(encoded);
        })
        .expect("write the wrong password");
    let before = bai.engine();

    let run = bai.run(&[("upgrade", "true".into())]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("401 Unauthorized")
            && run.stderr.contains(&format!(
                "refused the username and password of secret {NAMESPACE}/{AUTH_SECRET}"
            )),
        "the error does not say the credentials were refused:\n{run}"
    );
    let events = bai.bai.events();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("401 GET /api/v1/processing/jobs")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("savepoints")),
        "a savepoint was taken: {events:#?}"
    );
    assert_eq!(
        bai.engine()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(bai.bai.jid("bpmn"), jid);
    assert_eq!(bai.world.job_state(&jid), "RUNNING");
    bai.assert_never_written(&run, wrong);
}

/// The management service behind a certificate nobody trusts: refused while TLS is verified
/// (nothing changes), accepted with insecure=true (the seed's `curl -k`), which the run warns
/// about.
#[test]
fn tls_is_verified_unless_insecure_is_set_and_then_the_run_warns() {
    let bai = Bai::start_with(&["bpmn"], true);
    let jid = bai.bai.jid("bpmn");
    let before = bai.engine();

    let refused = bai.run(&[]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("certificate"),
        "the failure does not name the certificate:\n{refused}"
    );
    assert!(
        bai.bai.events().is_empty(),
        "a request got through: {:#?}",
        bai.bai.events()
    );
    assert_eq!(
        bai.engine()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(bai.bai.jid("bpmn"), jid);

    let insecure = bai.run(&[("insecure", "true".into())]);
    let outputs = insecure.outputs();
    assert!(
        insecure
            .stderr
            .contains("TLS certificate verification of the management service"),
        "the run does not warn that TLS was off:\n{insecure}"
    );
    let new_jid = bai.bai.jid("bpmn");
    assert_ne!(new_jid, jid);
    assert_eq!(restarted(&outputs, "bpmn")["jid"], json!(new_jid));
}
