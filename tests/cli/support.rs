//! A builder over the real `runbook` binary: write files into a fresh directory, run a
//! command there, and look at what a user would see.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Keeps the test directory until the test has looked at what the run left in it.
    dir: Option<tempfile::TempDir>,
}

impl Output {
    /// The directory the command ran in.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the command ran in its own directory")
            .path()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("a temporary directory"),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
        }
    }

    /// The directory the command runs in (a fresh temporary one by default).
    pub fn dir(&self) -> &Path {
        self.cwd.as_deref().unwrap_or(self.dir.path())
    }

    /// Runs in an existing directory instead of the temporary one.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Test {
        self.cwd = Some(dir.into());
        self
    }

    pub fn write(self, name: &str, text: impl AsRef<[u8]>) -> Test {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the parent directory");
        }
        std::fs::write(path, text).expect("write the test file");
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Test {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn run(self) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(&self.args)
            // Runs are kept in the test's own state directory unless a test names a store.
            .env_remove("RUNBOOK_STORE")
            .env("XDG_STATE_HOME", self.dir.path().join(".state"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir())
            .env_remove("COLUMNS")
            .env("NO_COLOR", "1")
            .output()
            .expect("run the runbook binary");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            dir: self.cwd.is_none().then_some(self.dir),
        }
    }
}

/// The repository root, where `runbooks/` and `tests/corpus/` live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
