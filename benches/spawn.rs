//! What starting one step command costs, alone: spawn `/bin/true` in its own process group
//! (`RunProcesses::start`, as the `exec` action does), wait for it, stop what it left
//! (nothing). Through the run's `RunProcesses`, unsupervised, supervised (the supervisor
//! is the runbook binary, started once, outside the timed loop), and supervised and waited
//! for on the calling thread as `runbook run` does; against a plain spawn, and against the
//! same spawn with a `pre_exec` hook, which forces a full fork instead of `posix_spawn`.

use criterion::{Criterion, criterion_group, criterion_main};
use runbook::process::{RunMark, RunProcesses, StepCommand};
use std::time::Duration;
use tokio::process::Command;
use tokio::runtime::Runtime;

fn true_command() -> Command {
    let mut command = Command::new("/bin/true");
    command.kill_on_drop(true);
    command
}

fn through(runtime: &Runtime, processes: &RunProcesses) {
    runtime.block_on(async {
        // As `exec` starts it: alone, so on this thread (see `RunProcesses::start`), its
        // output piped to the engine, and first waited for right here when the run's thread
        // may be.
        let command = StepCommand::new(&["/bin/true".to_owned()]).expect("a command");
        let (mut child, mut group) = processes.start(command).await.expect("spawn");
        let ended_here = child
            .wait_here(processes.wait_here_budget(), |_, _| {})
            .expect("wait here");
        let status = match ended_here {
            Some(status) => status,
            None => child.wait().await.expect("wait"),
        };
        assert!(status.success());
        group.end(Duration::from_secs(2)).await;
    });
}

fn spawn_cost(c: &mut Criterion) {
    // Like the engine: a multi-threaded runtime, built outside the timed loop.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("spawn");
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("plain tokio spawn of /bin/true", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let status = true_command().status().await.expect("run");
                assert!(status.success());
            })
        })
    });

    group.bench_function("with a pre_exec hook (full fork)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut command = true_command();
                // SAFETY: the hook does nothing; it is there to rule out posix_spawn.
                unsafe { command.pre_exec(|| Ok(())) };
                let status = command.status().await.expect("run");
                assert!(status.success());
            })
        })
    });

    let unsupervised = RunProcesses::default();
    group.bench_function("step command, unsupervised", |b| {
        b.iter(|| through(&runtime, &unsupervised))
    });

    let supervised = RunProcesses::supervised(
        "bench",
        RunMark::new("bench", "2026-01-01T00:00:00Z"),
        env!("CARGO_BIN_EXE_runbook"),
    );
    // The supervisor starts with the first step command, once a run.
    through(&runtime, &supervised);
    group.bench_function("step command, marked and supervised", |b| {
        b.iter(|| through(&runtime, &supervised))
    });

    // As `runbook run` has it: a command started alone is waited for on the run's thread.
    let on_the_runs_thread = RunProcesses::supervised(
        "bench-here",
        RunMark::new("bench-here", "2026-01-01T00:00:00Z"),
        env!("CARGO_BIN_EXE_runbook"),
    );
    on_the_runs_thread.wait_on_the_runs_thread();
    through(&runtime, &on_the_runs_thread);
    group.bench_function("step command, waited for on the run's thread", |b| {
        b.iter(|| through(&runtime, &on_the_runs_thread))
    });
    group.finish();
    supervised.finish();
    on_the_runs_thread.finish();
}

criterion_group!(benches, spawn_cost);
criterion_main!(benches);
