//! `runbook users`: a users file made by the command line, then used by a real serve.

use crate::support::WebServe;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn users(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .arg("users")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runbook users");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        // A command that refuses before reading its input may have exited already: what it
        // says and its exit code are what the test looks at.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    child.wait_with_output().expect("runbook users ends")
}

#[test]
fn people_and_tokens_made_by_the_command_line_sign_in_and_a_removed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        "# Kept by runbook users.\nusers: []\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(
        dir.path().join("users.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let added = users(
        dir.path(),
        &[
            "add",
            "otto",
            "--role",
            "operator",
            "--password-stdin",
            "--file",
            "users.yaml",
        ],
        Some("correct horse battery\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let token = users(
        dir.path(),
        &[
            "token",
            "ci-bot",
            "--role",
            "viewer",
            "--file",
            "users.yaml",
        ],
        None,
    );
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("rbk_") && token.len() > 40, "{token}");

    let text = std::fs::read_to_string(dir.path().join("users.yaml")).unwrap();
    assert!(text.starts_with("# Kept by runbook users.\n"), "{text}");
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(
        !text.contains("correct horse battery"),
        "the password in clear: {text}"
    );
    assert!(!text.contains(&token), "the token in clear: {text}");
    assert_eq!(
        mode(&dir.path().join("users.yaml")),
        0o640,
        "the file's mode is kept"
    );
    let fresh = tempfile::tempdir().unwrap();
    let made = users(fresh.path(), &["token", "x", "--role", "viewer"], None);
    assert!(made.status.success());
    assert_eq!(
        mode(&fresh.path().join("users.yaml")),
        0o600,
        "a new file is the owner's"
    );

    let serve = WebServe::new().users(text.clone()).start();
    let browser = serve.sign_in("otto", "correct horse battery");
    assert_eq!(browser.get("/api/whoami").json()["role"], "operator");
    let bot = serve.get("/api/whoami", Some(&token));
    assert_eq!(bot.status, 200, "{}", bot.body);
    assert_eq!(bot.json()["name"], "ci-bot");
    assert_eq!(bot.json()["role"], "viewer");
    drop(serve);

    let removed = users(
        dir.path(),
        &["remove", "otto", "--file", "users.yaml"],
        None,
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let again = users(
        dir.path(),
        &["remove", "otto", "--file", "users.yaml"],
        None,
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("otto is not in users.yaml"));
    let text = std::fs::read_to_string(dir.path().join("users.yaml")).unwrap();
    let serve = WebServe::new().users(text).start();
    assert_eq!(
        serve
            .post_login("otto", "correct horse battery", "/")
            .status,
        401
    );
    assert_eq!(
        serve.get("/api/whoami", Some(&token)).status,
        200,
        "the token stays"
    );
}

#[test]
fn without_a_terminal_or_stdin_the_password_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let output = users(dir.path(), &["add", "ada", "--role", "admin"], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--password-stdin"), "{stderr}");
    assert!(!dir.path().join("users.yaml").exists());
    let empty = users(
        dir.path(),
        &["add", "ada", "--role", "admin", "--password-stdin"],
        Some("\n"),
    );
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty"));
    let odd = users(
        dir.path(),
        &["add", "a b", "--role", "admin", "--password-stdin"],
        Some("pw\n"),
    );
    assert_eq!(odd.status.code(), Some(2));
    assert!(!dir.path().join("users.yaml").exists());
}

#[test]
fn a_users_file_with_a_password_that_is_not_an_argon2id_hash_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        "users:\n  - {name: otto, role: operator, password: hunter2}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("serve.yaml"),
        "schedules: []\nhttp:\n  users_file: users.yaml\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["serve", "--config", "serve.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join(".state"))
        .output()
        .expect("run serve");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("argon2id"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the bad password echoed: {stderr}"
    );
}
