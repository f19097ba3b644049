/// How the process ends. The numbers are part of the interface: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command (or the run) succeeded.
    Success,
    /// The run failed.
    Failure,
    /// The runbook, its inputs or the command line are invalid.
    Invalid,
    /// The run is parked (waiting for an approval, or interrupted) and can be resumed.
    Parked,
    /// The run's journal cannot be used right now: another live process owns the run, or the
    /// store is full, unreachable or damaged. The message says which; nothing recorded is lost.
    Unavailable,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Invalid => 2,
            ExitStatus::Parked => 3,
            ExitStatus::Unavailable => 4,
        })
    }
}
