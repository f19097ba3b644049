//! The floor of one step of a durable chain of `exec` steps, for `scripts/bench.sh`: what
//! any engine that journals each step before the next must do, and nothing else. A step's
//! start must be on disk before its program runs, and the next step is only known once the
//! program ended, so a chain can overlap neither: each step is one start and wait of the
//! program (as the shell does it: `posix_spawn` and `waitpid`, no runtime) and one commit's
//! disk work, an 8 KiB write and its `fdatasync` (SQLite's log is written over in place once
//! a checkpoint restarted it).
//!
//! Usage: `durable_floor DIR [COUNT]` (COUNT defaults to 1000); prints nothing, so that it is
//! timed from outside like the runbook and the shell loop beside it. A process of its own,
//! not a criterion benchmark: inside the criterion harness the same start and wait of
//! `/bin/true` takes about 0.2 ms longer than in a small program, which would raise the floor.

use std::io::{Seek, Write};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), count) = (args.next(), args.next()) else {
        eprintln!("usage: durable_floor DIR [COUNT]");
        return ExitCode::from(2);
    };
    let count: u32 = match count.as_deref().unwrap_or("1000").parse() {
        Ok(count) => count,
        Err(error) => {
            eprintln!("durable_floor: COUNT: {error}");
            return ExitCode::from(2);
        }
    };
    match run(std::path::Path::new(&dir), count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("durable_floor: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &std::path::Path, count: u32) -> std::io::Result<()> {
    let path = dir.join("durable-floor.log");
    let mut log = std::fs::File::create(&path)?;
    let page = [0u8; 8192];
    for _ in 0..count {
        let status = Command::new("/bin/true").status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("/bin/true: {status}")));
        }
        log.rewind()?;
        log.write_all(&page)?;
        log.sync_data()?;
    }
    drop(log);
    std::fs::remove_file(path)
}
