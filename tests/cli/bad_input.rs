//! Whatever bytes a user hands us, the answer is a clear error with exit 2, never a panic
//! or a hang. A run that takes longer than `LIMIT` is killed and fails the test.

use crate::support::Test;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `runbook validate FILE` in `dir` with a hard time limit.
fn validate_bounded(dir: &std::path::Path, file: &str) -> (i32, String) {
    runbook_bounded(dir, &["validate", file], LIMIT)
}

/// Runs the binary in `dir` with a hard time limit, and its runs in a store of that
/// directory; the limit's process is killed and the test fails past it.
fn runbook_bounded(dir: &std::path::Path, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .env("RUNBOOK_STORE", "sqlite:store/runs.db")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runbook");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = reader.join().unwrap();
            return (status.code().unwrap_or(-1), text);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runbook {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_clear_error(code: i32, stderr: &str, expected: &str) {
    assert_eq!(code, 2, "exit code 2 expected:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn a_directory_is_not_a_runbook() {
    let test = Test::new().write("dir/keep", "");
    let (code, stderr) = validate_bounded(test.dir(), "dir");
    assert_clear_error(code, &stderr, "dir is a directory, not a runbook file");
}

#[test]
fn a_missing_file_is_named() {
    let test = Test::new();
    let (code, stderr) = validate_bounded(test.dir(), "nowhere.yaml");
    assert_clear_error(code, &stderr, "cannot read nowhere.yaml: no such file");
}

#[test]
fn non_utf8_is_located() {
    let test = Test::new().write("latin1.yaml", b"version: 1\nname: caf\xe9\nsteps: []\n");
    let (code, stderr) = validate_bounded(test.dir(), "latin1.yaml");
    assert_clear_error(
        code,
        &stderr,
        "latin1.yaml:2:10: the file is not valid UTF-8",
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 100_000;
    let text = format!(
        "version: 1\nname: deep\nsteps: []\nx: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let test = Test::new().write("deep.yaml", text);
    let (code, stderr) = validate_bounded(test.dir(), "deep.yaml");
    assert_clear_error(code, &stderr, "invalid YAML");
}

#[test]
fn deep_block_nesting_is_refused() {
    let mut text = String::from("version: 1\nname: deep\nsteps: []\nx:\n");
    for level in 1..2_000 {
        text.push_str(&" ".repeat(level));
        text.push_str("- \n");
    }
    let test = Test::new().write("deep.yaml", text);
    let (code, stderr) = validate_bounded(test.dir(), "deep.yaml");
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_without_reading_it_all() {
    let text = format!(
        "version: 1\nname: big\nsteps: []\n# {}\n",
        "x".repeat(17 * 1024 * 1024)
    );
    let test = Test::new().write("big.yaml", text);
    let (code, stderr) = validate_bounded(test.dir(), "big.yaml");
    assert_clear_error(
        code,
        &stderr,
        "big.yaml is too large: a runbook may be at most 16777216 bytes",
    );
}

#[test]
fn a_ten_megabyte_runbook_gets_an_answer() {
    // 10 MB of steps: either it validates or it hits a documented limit, with a message.
    let mut text = String::from("version: 1\nname: big\nsteps:\n");
    let mut index = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!(
            "  - id: s{index}\n    exec: {{ command: [echo, \"{}\"] }}\n",
            "y".repeat(200)
        ));
        index += 1;
    }
    let test = Test::new().write("ten.yaml", text);
    let (code, stderr) = validate_bounded(test.dir(), "ten.yaml");
    assert!(code == 0 || code == 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn random_bytes_never_panic() {
    // A fixed-seed generator keeps the test repeatable; the fuzz target explores further.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: &[u8] = b"version: 1\nname steps - id {{}} [] :&*!|>'\"\t#%@`\\\x00\xff";
    let test = Test::new();
    for round in 0..40 {
        let len = (next() % 400) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let name = format!("r{round}.yaml");
        std::fs::write(test.dir().join(&name), &bytes).unwrap();
        let (code, stderr) = validate_bounded(test.dir(), &name);
        assert!(
            code == 0 || code == 2,
            "round {round}: exit {code}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "round {round}:\n{stderr}");
    }
}

/// Files that never end or never start: each is refused at once, before it is read.
const QUICK: Duration = Duration::from_secs(10);

fn mkfifo(path: &std::path::Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_runbook_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let test = Test::new();
    std::os::unix::fs::symlink("/dev/zero", test.dir().join("zero.yaml")).unwrap();
    mkfifo(&test.dir().join("pipe.yaml"));
    let (code, stderr) = runbook_bounded(test.dir(), &["validate", "zero.yaml"], QUICK);
    assert_clear_error(
        code,
        &stderr,
        "zero.yaml is a character device, not a runbook file",
    );
    for command in ["validate", "plan", "run"] {
        let (code, stderr) = runbook_bounded(test.dir(), &[command, "pipe.yaml"], QUICK);
        assert_clear_error(
            code,
            &stderr,
            "pipe.yaml is a FIFO (named pipe), not a runbook file",
        );
    }
}

#[test]
fn a_used_runbook_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let test = Test::new()
        .write(
            "main.yaml",
            "version: 1\nname: main\nsteps:\n  - id: a\n    uses: lib/pipe.yaml\n",
        )
        .write(
            "zero.yaml",
            "version: 1\nname: zero\nsteps:\n  - id: a\n    uses: /dev/zero\n",
        )
        .write("lib/keep", "");
    mkfifo(&test.dir().join("lib/pipe.yaml"));
    let (code, stderr) = runbook_bounded(test.dir(), &["validate", "main.yaml"], QUICK);
    assert_clear_error(
        code,
        &stderr,
        "lib/pipe.yaml is a FIFO (named pipe), not a runbook file",
    );
    assert!(stderr.contains("main.yaml:5:11"), "{stderr}");
    let (code, stderr) = runbook_bounded(
        test.dir(),
        &["validate", "zero.yaml", "--allow-uses-dir", "/dev"],
        QUICK,
    );
    assert_clear_error(
        code,
        &stderr,
        "/dev/zero is a character device, not a runbook file",
    );
}

#[test]
fn an_inputs_file_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let test = Test::new().write(
        "one.yaml",
        "version: 1\nname: one\ninputs:\n  x: { type: string, default: a }\nsteps:\n  - id: a\n    exec: { script: 'echo ran >> side' }\n",
    );
    mkfifo(&test.dir().join("inputs.yaml"));
    for (file, kind) in [
        ("/dev/zero", "a character device"),
        ("inputs.yaml", "a FIFO (named pipe)"),
    ] {
        for command in ["plan", "run"] {
            let (code, stderr) = runbook_bounded(
                test.dir(),
                &[command, "one.yaml", "--inputs-file", file],
                QUICK,
            );
            assert_clear_error(
                code,
                &stderr,
                &format!("cannot read the inputs file {file}: it is {kind}, not a regular file"),
            );
        }
    }
    assert!(!test.dir().join("side").exists(), "nothing ran");
}

#[test]
fn a_secret_file_that_is_a_device_a_fifo_or_too_large_is_refused_at_once() {
    let test = Test::new().write(
        "secret.yaml",
        "version: 1\nname: secret\nsecrets:\n  token: { file: token }\nsteps:\n  - id: a\n    exec: { script: 'echo ran >> side' }\n",
    );
    let token = test.dir().join("token");
    std::os::unix::fs::symlink("/dev/zero", &token).unwrap();
    let (code, stderr) = runbook_bounded(test.dir(), &["run", "secret.yaml"], QUICK);
    assert_clear_error(
        code,
        &stderr,
        "secret `token` of runbook `secret` reads the file token: it is a character device, not a regular file",
    );
    std::fs::remove_file(&token).unwrap();
    mkfifo(&token);
    let (code, stderr) = runbook_bounded(test.dir(), &["run", "secret.yaml"], QUICK);
    assert_clear_error(
        code,
        &stderr,
        "reads the file token: it is a FIFO (named pipe)",
    );
    std::fs::remove_file(&token).unwrap();
    std::fs::write(&token, vec![b'k'; 1024 * 1024 + 1]).unwrap();
    let (code, stderr) = runbook_bounded(test.dir(), &["run", "secret.yaml"], QUICK);
    assert_clear_error(
        code,
        &stderr,
        "reads the file token: it is larger than 1048576 bytes",
    );
    assert!(!test.dir().join("side").exists(), "nothing ran");
}

#[test]
fn an_input_given_twice_is_refused_by_name() {
    let test = Test::new().write(
        "one.yaml",
        "version: 1\nname: one\ninputs:\n  env: { type: string }\nsteps:\n  - id: a\n    exec: { script: 'echo {{inputs.env}} >> side' }\n",
    );
    for command in ["plan", "run"] {
        let (code, stderr) = runbook_bounded(
            test.dir(),
            &[
                command,
                "one.yaml",
                "--input",
                "env=staging",
                "--input",
                "env=prod",
            ],
            LIMIT,
        );
        assert_clear_error(
            code,
            &stderr,
            "input `env` is given more than once with --input",
        );
    }
    assert!(!test.dir().join("side").exists(), "nothing ran");
}

#[test]
fn a_plain_runbook_too_large_to_read_is_not_blamed_on_aliases() {
    let mut text = String::from("version: 1\nname: huge\nsteps:\n");
    for index in 0..100_000 {
        text.push_str(&format!(
            "  - id: s{index}\n    exec: {{ script: 'test -f a && echo $((2 * 3)) &' }}\n"
        ));
    }
    let test = Test::new().write("huge.yaml", text);
    let (code, stderr) = validate_bounded(test.dir(), "huge.yaml");
    assert_clear_error(
        code,
        &stderr,
        "the document has more than 250000 values, more than a runbook may hold",
    );
    assert!(!stderr.contains("aliases"), "{stderr}");
}

#[test]
fn a_ca_file_that_is_a_device_or_a_fifo_fails_its_step_at_once() {
    let test = Test::new().write(
        "tls.yaml",
        "version: 1\nname: tls\ninputs:\n  ca: { type: string }\nsteps:\n  - id: call\n    http: { url: 'https://127.0.0.1:1/', tls: { ca_file: '{{inputs.ca}}' } }\n",
    );
    mkfifo(&test.dir().join("pipe.pem"));
    for (file, kind) in [
        ("/dev/zero", "a character device"),
        ("pipe.pem", "a FIFO (named pipe)"),
    ] {
        let (code, stderr) = runbook_bounded(
            test.dir(),
            &["run", "tls.yaml", "--input", &format!("ca={file}")],
            QUICK,
        );
        assert_eq!(code, 1, "the step fails:\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot read `http.tls.ca_file` `{file}`: it is {kind}, not a regular file"
            )),
            "{stderr}"
        );
    }
}
