//! The process group one step command leads.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::scan;
use super::{RunProcesses, StepChild};

/// The process group a step command leads. Dropped while armed (the step's future was
/// dropped mid-run), it kills all of it at once: nothing can be awaited in a destructor, so
/// there is no grace.
pub struct StepGroup {
    pub(super) leader: i32,
    pub(super) armed: bool,
    /// The run it belongs to, told when the group is gone.
    pub(super) run: RunProcesses,
}

impl StepGroup {
    fn pgid(&self) -> Pid {
        Pid::from_raw(self.leader)
    }

    /// Signals every process of the group.
    fn signal(&self, signal: Signal) {
        // ESRCH: the group is already gone, which is what we want.
        let _ = killpg(self.pgid(), signal);
    }

    /// SIGTERM to everything the step runs, SIGKILL once the leader exits or `grace` runs
    /// out (whichever comes first: what the leader leaves behind when it is told to stop is
    /// meant to stop too), then reap the leader. Returns its exit status when it could be
    /// read.
    pub async fn terminate(
        &mut self,
        child: &mut StepChild,
        grace: Duration,
    ) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(_)) | Err(_) => None,
        };
        self.signal(Signal::SIGKILL);
        self.armed = false;
        match status {
            Some(status) => Some(status),
            None => child.wait().await.ok(),
        }
    }

    /// After the leader exited by itself: stops what it left running in its group (SIGTERM,
    /// up to `grace`, SIGKILL). A step may not leave processes behind.
    pub async fn end(&mut self, grace: Duration) {
        // The common case, an empty group, costs this one system call.
        if killpg(self.pgid(), Signal::SIGTERM).is_ok() {
            let leader = self.leader;
            let deadline = tokio::time::Instant::now() + grace;
            // Zombies count as gone: once dead, their reaping is their parent's business.
            while !scan::find(&|_, stat| stat.pgid == leader).is_empty() {
                if tokio::time::Instant::now() >= deadline {
                    let _ = killpg(self.pgid(), Signal::SIGKILL);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Only now: if this future is dropped half way, the group is killed on drop.
        self.armed = false;
    }
}

impl Drop for StepGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
        self.run.forget(self.leader);
    }
}
