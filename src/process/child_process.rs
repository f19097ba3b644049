//! A started program, by its pid, until it is reaped: what `std::process::Child` is, for a
//! program the engine started itself (see [`super::spawn`]).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// A child of this process. Its pid stays its own until it is reaped, so until then a
/// signal sent to it cannot reach another process. Dropping it neither kills nor reaps it
/// ([`super::StepChild`] does both).
#[derive(Debug)]
pub(super) struct ChildProcess {
    pid: libc::pid_t,
    /// Known once reaped; every later wait returns it.
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Takes over `pid`, a child of this process not reaped yet.
    pub(super) fn new(pid: libc::pid_t) -> ChildProcess {
        ChildProcess { pid, status: None }
    }

    pub(super) fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// SIGKILL, unless it was already reaped.
    pub(super) fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: kill takes a pid and a signal number.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits for its end and reaps it. Blocking.
    pub(super) fn wait(&mut self) -> io::Result<ExitStatus> {
        match self.reap(0)? {
            Some(status) => Ok(status),
            None => Err(io::Error::other("waitpid returned without a status")),
        }
    }

    /// Reaps it if it has ended.
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    fn reap(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            // SAFETY: waitpid writes the status into `raw`, alive for the call.
            let reaped = unsafe { libc::waitpid(self.pid, &mut raw, flags) };
            if reaped == self.pid {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                return Ok(Some(status));
            }
            if reaped == 0 {
                return Ok(None);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}
