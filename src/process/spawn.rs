//! Starting a step command with `posix_spawn`, given an environment made once for the run.
//!
//! What `std::process::Command` does when no code of ours runs between fork and exec, with
//! the same attributes: a process group of its own, an empty signal mask, SIGPIPE back to
//! its default (the Rust runtime ignores it, and an ignored signal stays ignored across
//! exec), stdin, stdout and stderr set by `dup2`. What it does not do is read the engine's
//! environment again at every start (see [`super::run_environment::RunEnvironment`]), nor
//! have glibc read every signal's disposition in the new process before setting it (see
//! [`super::signal_defaults::SignalDefaults`]).
//!
//! The program is looked up as the standard library looks it up: a name with a slash is a
//! path; a bare name is searched on the engine's `PATH` by `posix_spawnp`, or, when the step
//! sets a `PATH` of its own, on that one, as the program itself would see it.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::signal_defaults::SignalDefaults;
use super::step_command::StepCommand;

/// The descriptors a step command gets as its stdin, stdout and stderr.
pub(super) struct StandardFds<'a> {
    pub(super) stdin: BorrowedFd<'a>,
    pub(super) stdout: BorrowedFd<'a>,
    pub(super) stderr: BorrowedFd<'a>,
}

/// Starts `command` with `env` (`NAME=value` each) and `fds`, as the leader of a new process
/// group, with `signal_defaults` at their default disposition. Returns its pid. A program
/// that cannot be started (missing, not executable) is the error, with the kind the standard
/// library gives it.
pub(super) fn spawn(
    command: &StepCommand,
    env: &[CString],
    fds: &StandardFds<'_>,
    signal_defaults: &SignalDefaults,
) -> io::Result<libc::pid_t> {
    let program = command.program();
    let step_path = command
        .env
        .iter()
        .rev()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.as_str());
    // Searched here only on a `PATH` the step sets; on the engine's, by posix_spawnp.
    let resolved = match step_path {
        Some(path) if !program.as_bytes().contains(&b'/') => {
            Some(look_up(program, path, command.cwd.as_deref())?)
        }
        _ => None,
    };

    let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: initialises the object in place; it is destroyed by the guard.
    check(unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) })?;
    let actions = FileActions(&mut actions);
    for (fd, target) in [
        (fds.stdin, libc::STDIN_FILENO),
        (fds.stdout, libc::STDOUT_FILENO),
        (fds.stderr, libc::STDERR_FILENO),
    ] {
        // SAFETY: an initialised object; the descriptor stays open until the start.
        check(unsafe {
            libc::posix_spawn_file_actions_adddup2(actions.0.as_mut_ptr(), fd.as_raw_fd(), target)
        })?;
    }
    if let Some(cwd) = &command.cwd {
        // SAFETY: an initialised object and a C string; glibc copies the string.
        check(unsafe {
            libc::posix_spawn_file_actions_addchdir_np(actions.0.as_mut_ptr(), cwd.as_ptr())
        })?;
    }

    let mut attributes = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: initialises the object in place; it is destroyed by the guard.
    check(unsafe { libc::posix_spawnattr_init(attributes.as_mut_ptr()) })?;
    let attributes = Attributes(&mut attributes);
    let mut signals = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; the calls after it read and write it, and
    // the attributes object is initialised.
    unsafe {
        check_errno(libc::sigemptyset(signals.as_mut_ptr()))?;
        check(libc::posix_spawnattr_setsigmask(
            attributes.0.as_mut_ptr(),
            signals.as_ptr(),
        ))?;
        check(libc::posix_spawnattr_setsigdefault(
            attributes.0.as_mut_ptr(),
            signal_defaults.as_ptr(),
        ))?;
        check(libc::posix_spawnattr_setpgroup(
            attributes.0.as_mut_ptr(),
            0,
        ))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            attributes.0.as_mut_ptr(),
            flags as libc::c_short,
        ))?;
    }

    let argv = pointers(&command.argv);
    let envp = pointers(env);
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is to a NUL-terminated string or a NULL-terminated array of
    // them, alive until the call returns; the file actions and attributes are initialised.
    let started = unsafe {
        match &resolved {
            Some(path) => libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.0.as_ptr(),
                attributes.0.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            ),
            None => libc::posix_spawnp(
                &mut pid,
                program.as_ptr(),
                actions.0.as_ptr(),
                attributes.0.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            ),
        }
    };
    check(started)?;
    Ok(pid)
}

/// The file actions object, destroyed when this is dropped.
struct FileActions<'a>(&'a mut MaybeUninit<libc::posix_spawn_file_actions_t>);

impl Drop for FileActions<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised when the guard was made, and destroyed only here.
        unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
    }
}

/// The attributes object, destroyed when this is dropped.
struct Attributes<'a>(&'a mut MaybeUninit<libc::posix_spawnattr_t>);

impl Drop for Attributes<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised when the guard was made, and destroyed only here.
        unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
    }
}

/// The NULL-terminated array of pointers `execve` takes.
fn pointers(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// The posix_spawn family returns an error number rather than setting `errno`.
fn check(returned: libc::c_int) -> io::Result<()> {
    if returned == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(returned))
    }
}

/// The sigset calls set `errno` and return -1.
fn check_errno(returned: libc::c_int) -> io::Result<()> {
    if returned == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `program` searched on `path` as `execvp` searches it: each directory in turn (an empty
/// one is the working directory), the first executable file found. Relative directories are
/// taken from `cwd`, where the program starts. `NotFound` if no directory has it,
/// `PermissionDenied` if one has it but it cannot be run.
fn look_up(program: &CStr, path: &str, cwd: Option<&CStr>) -> io::Result<CString> {
    let name = Path::new(std::ffi::OsStr::from_bytes(program.to_bytes()));
    let mut denied = false;
    for dir in path.split(':') {
        let candidate = if dir.is_empty() {
            PathBuf::from(".").join(name)
        } else {
            Path::new(dir).join(name)
        };
        let seen_from = match cwd {
            Some(cwd) if candidate.is_relative() => {
                Path::new(std::ffi::OsStr::from_bytes(cwd.to_bytes())).join(&candidate)
            }
            _ => candidate.clone(),
        };
        match std::fs::metadata(&seen_from) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                return CString::new(candidate.as_os_str().as_bytes()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in PATH")
                });
            }
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_looked_up_on_the_steps_path_as_execvp_does() {
        let dir = tempfile::tempdir().expect("a directory");
        let program = dir.path().join("hello");
        std::fs::write(&program, "#!/bin/sh\necho hi\n").expect("written");
        let name = CString::new("hello").expect("text");
        let bin = dir.path().to_str().expect("text");

        let error = look_up(&name, &format!("/nonexistent:{bin}"), None).expect_err("not yet");
        assert_eq!(
            error.kind(),
            io::ErrorKind::PermissionDenied,
            "there, not runnable"
        );

        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("set");
        let found = look_up(&name, &format!("/nonexistent:{bin}"), None).expect("found");
        assert_eq!(found.to_bytes(), program.as_os_str().as_bytes());

        let error = look_up(&name, "/nonexistent", None).expect_err("missing");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);

        // An empty entry is the directory the program starts in.
        let cwd = CString::new(bin).expect("text");
        let found = look_up(&name, "/nonexistent:", Some(&cwd)).expect("found in cwd");
        assert_eq!(found.to_bytes(), b"./hello");
    }
}
