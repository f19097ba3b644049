//! The binary against a real PostgreSQL: the server `RUNBOOK_TEST_POSTGRES_URL` names
//! (`scripts/pg-sandbox.sh start DIR` starts one and writes the variable in `DIR/env`;
//! scripts/test-all.sh always does). Each test works in a database of its own, made here and
//! dropped at the end. Without the variable every test fails, saying how to get a server.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod faults;
mod notify;
mod workers;

const URL_VAR: &str = "RUNBOOK_TEST_POSTGRES_URL";

fn server_url() -> String {
    std::env::var(URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{URL_VAR} is not set: these tests need a PostgreSQL server. Start one with \
                 `scripts/pg-sandbox.sh start DIR` and `source DIR/env` (scripts/test-all.sh \
                 does both), then run them again"
            )
        })
}

/// A database of its own on the sandbox server, with a directory for runbooks; the
/// database is dropped when the test ends, however it ends.
struct Scratch {
    dir: tempfile::TempDir,
    name: String,
    url: String,
}

impl Scratch {
    fn new() -> Scratch {
        let server = server_url();
        let name = format!("runbook_e2e_{:016x}", rand::random::<u64>());
        admin(&server, &format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        Scratch {
            dir: tempfile::tempdir().unwrap(),
            name,
            url: url.to_string(),
        }
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    /// Runs the binary to its end with `--store` naming this database.
    fn runbook(&self, args: &[&str]) -> Output {
        run_binary(self.dir.path(), args, Some(&self.url))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        admin(
            &server_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// One statement on the server's own database (the name is made here of hex digits).
fn admin(server: &str, statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut connection = sqlx::postgres::PgConnection::connect(server)
            .await
            .unwrap_or_else(|error| panic!("cannot reach the server {URL_VAR} names: {error}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
    });
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_binary(dir: &Path, args: &[&str], store: Option<&str>) -> Output {
    run_binary_with(dir, args, store, &[])
}

fn run_binary_with(
    dir: &Path,
    args: &[&str],
    store: Option<&str>,
    env: &[(&str, &Path)],
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // Nothing falls back to a store in the user's home.
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("RUNBOOK_STORE")
        .env_remove("PGPASSWORD")
        .env_remove("RUNBOOK_STORE_PASSWORD_FILE");
    if let Some(store) = store {
        command.env("RUNBOOK_STORE", store);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the runbook binary");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const GATED: &str = r#"version: 1
name: gated
locks: ["cluster-{{inputs.cluster}}"]
steps:
  - id: prepare
    exec: { script: 'echo prepare >> side' }
  - id: gate
    needs: [prepare]
    approval:
      prompt: "Cancel the jobs of {{inputs.cluster}}?"
      timeout: 1h
  - id: act
    needs: [gate]
    exec: { script: 'echo act >> side' }
inputs:
  cluster: { type: string, default: prod-eu }
outputs:
  approved_by: .steps.gate.outputs.approved_by
"#;

#[test]
fn a_run_parks_for_approval_and_resumes_with_its_journal_and_locks_in_postgres() {
    let scratch = Scratch::new();
    scratch.write("gated.yaml", GATED);

    let parked = scratch.runbook(&["run", "gated.yaml", "--run-id", "g1"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    assert!(
        parked.stderr.contains("runbook approve g1 gate"),
        "{}",
        parked.stderr
    );
    assert_eq!(scratch.read("side"), "prepare\n");

    let listed = scratch.runbook(&["runs", "list", "--format", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let runs: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(runs[0]["id"], "g1", "{runs:#}");
    assert_eq!(runs[0]["status"], "waiting", "{runs:#}");

    // The parked run keeps its lock, without a lease.
    let locks = scratch.runbook(&["locks", "--format", "json"]);
    assert_eq!(locks.code, 0, "{}", locks.stderr);
    let locks: Value = serde_json::from_str(&locks.stdout).unwrap();
    let held = locks.as_array().unwrap();
    assert_eq!(held.len(), 1, "{locks:#}");
    assert_eq!(held[0]["lock"], "cluster-prod-eu", "{locks:#}");
    assert_eq!(held[0]["run_id"], "g1", "{locks:#}");
    assert_eq!(held[0]["expires_at"], Value::Null, "{locks:#}");

    let approved = scratch.runbook(&["approve", "g1", "gate", "--as", "alice"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let twice = scratch.runbook(&["approve", "g1", "gate"]);
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(
        twice.stderr.contains("already approved by alice"),
        "{}",
        twice.stderr
    );

    let resumed = scratch.runbook(&["resume", "g1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(scratch.read("side"), "prepare\nact\n");
    assert_eq!(resumed.stdout.trim(), "{\n  \"approved_by\": \"alice\"\n}");

    let shown = scratch.runbook(&["runs", "show", "g1", "--format", "json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let report: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(report["status"], "succeeded", "{report:#}");
    assert_eq!(report["approvals"][0]["by"], "alice", "{report:#}");

    let text = scratch.runbook(&["runs", "show", "g1"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("succeeded"), "{}", text.stdout);

    // The run is over: its lock is let go.
    let locks = scratch.runbook(&["locks", "--format", "json"]);
    let locks: Value = serde_json::from_str(&locks.stdout).unwrap();
    assert_eq!(locks, serde_json::json!([]), "{locks:#}");
}

#[test]
fn a_refused_connection_is_a_clear_error_with_exit_4_and_no_password() {
    // A port nothing listens on: bound, read, and let go.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = format!("postgres://runbook:hunter2@127.0.0.1:{port}/runbook?sslmode=disable");
    std::fs::write(
        dir.path().join("hello.yaml"),
        "version: 1\nname: hello\nsteps:\n  - id: hi\n    exec: { script: 'echo hi' }\n",
    )
    .unwrap();
    for args in [
        vec!["run", "hello.yaml", "--store", store.as_str()],
        vec!["runs", "list", "--store", store.as_str()],
    ] {
        let refused = run_binary(dir.path(), &args, None);
        assert_eq!(refused.code, 4, "{args:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("cannot reach the server"),
            "{args:?}: {}",
            refused.stderr
        );
        assert!(
            refused
                .stderr
                .contains(&format!("postgres://runbook:***@127.0.0.1:{port}/runbook")),
            "{args:?}: {}",
            refused.stderr
        );
        assert!(
            !refused.stderr.contains("hunter2") && !refused.stdout.contains("hunter2"),
            "{args:?}: {}",
            refused.stderr
        );
    }
}

#[test]
fn plain_text_to_another_host_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let refused = run_binary(
        dir.path(),
        &[
            "runs",
            "list",
            "--store",
            "postgres://runbook:hunter2@db.example.com/runs?sslmode=disable",
        ],
        None,
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("sslmode=disable") && refused.stderr.contains("plain text"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
}

#[test]
fn the_password_can_come_from_the_file_runbook_store_password_file_names() {
    let scratch = Scratch::new();
    let with_password = url::Url::parse(&scratch.url).unwrap();
    let password = with_password
        .password()
        .expect("the sandbox URL has a password");
    let mut without = with_password.clone();
    without.set_password(None).unwrap();
    let file = scratch.dir.path().join("store-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();

    let listed = run_binary_with(
        scratch.dir.path(),
        &["runs", "list", "--store", without.as_str()],
        None,
        &[("RUNBOOK_STORE_PASSWORD_FILE", &file)],
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);

    std::fs::write(&file, "not-the-password\n").unwrap();
    let refused = run_binary_with(
        scratch.dir.path(),
        &["runs", "list", "--store", without.as_str()],
        None,
        &[("RUNBOOK_STORE_PASSWORD_FILE", &file)],
    );
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("refused the user or password"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("not-the-password"),
        "{}",
        refused.stderr
    );

    // Without the file, nothing to log in with.
    let none = run_binary(
        scratch.dir.path(),
        &["runs", "list", "--store", without.as_str()],
        None,
    );
    assert_eq!(none.code, 4, "{}", none.stderr);
}
