//! `runbook serve --config FILE`: runs runbooks on schedules until stopped.

use super::args::{LogFormat, ServeArgs};
use super::execute::{runtime, store_failure};
use super::{ExitStatus, Printer};
use crate::serve::clock::SystemClock;
use crate::serve::runner::ServeError;
use crate::serve::{ServeOptions, ServeSetup, serve as run_schedules};
use crate::store::StoreLocation;
use crate::web::auth::{SignIn, Users};
use crate::web::{ListenAddress, WebServer, WebState};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub fn serve(args: &ServeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let setup = match args.config.as_deref().map(crate::serve::load) {
        None => ServeSetup::default(),
        Some(Ok(setup)) => setup,
        Some(Err(problems)) => {
            printer.diagnostics(&problems);
            return Ok(ExitStatus::Invalid);
        }
    };
    let listen = match (args.listen, &setup.listen) {
        (Some(listen), _) => Some(listen),
        (None, Some(written)) => match written.parse::<ListenAddress>() {
            Ok(listen) => Some(listen),
            Err(problem) => {
                printer.error(&format!("listen: {problem}"));
                return Ok(ExitStatus::Invalid);
            }
        },
        (None, None) => None,
    };
    let users = match &setup.http.users_file {
        None => Users::default(),
        Some(file) => match Users::load(&setup.base.join(file)) {
            Ok(users) => users,
            Err(problem) => {
                printer.error(&problem.to_string());
                return Ok(ExitStatus::Invalid);
            }
        },
    };
    if let Some(lease) = args.lease {
        crate::store::set_run_lease(lease);
    }
    init_logs(args.log_format);
    let runtime = runtime()?;
    let stop = CancellationToken::new();
    let options = ServeOptions {
        store: args.store.store.clone(),
        stop: stop.clone(),
        workers: args.workers as usize,
    };
    let local = tokio::task::LocalSet::new();
    let schedules = setup.schedules;
    let served = runtime.block_on(local.run_until(async {
        watch_signals(stop.clone())?;
        // Runs the web claimed (a retry, a resume): serve waits for them to park too.
        let mut web_runs_done = None;
        if let Some(listen) = listen {
            let web = match WebServer::bind(listen).await {
                Ok(web) => web,
                Err(problem) => {
                    printer.error(&problem.to_string());
                    return Ok(Err(ExitStatus::Failure));
                }
            };
            let location = StoreLocation::resolve(args.store.store.as_deref())
                .map_err(|e| anyhow::anyhow!(e.to_string()))?;
            let store = match crate::store::open(&location).await {
                Ok(store) => store,
                Err(error) => return Ok(Err(store_failure(&error, printer))),
            };
            let (web_runs, web_runs_loop) = crate::web::api::WebRuns::new(stop.clone());
            web_runs_done = Some(tokio::task::spawn_local(web_runs_loop));
            let state = WebState {
                store,
                store_url: args.store.store.clone(),
                schedules: Arc::new(schedules.clone()),
                base: Arc::from(setup.base.as_path()),
                users: Arc::new(users),
                sign_in: Arc::new(SignIn::new(&setup.http, false)),
                catalog: Arc::new(crate::web::catalog::Catalog::new(
                    &setup.base,
                    &setup.http.runbooks,
                    &schedules
                        .iter()
                        .map(|s| s.runbook.clone())
                        .collect::<Vec<_>>(),
                )),
                live: Default::default(),
                runs: web_runs,
                stop: stop.clone(),
            };
            if let Some(address) = web.local_address() {
                tracing::info!(address = %address, "listening: http://{address}/");
            }
            let web_stop = stop.clone();
            tokio::spawn(async move {
                if let Err(problem) = web.serve(state, web_stop.clone()).await {
                    tracing::error!("{problem}");
                    web_stop.cancel();
                }
            });
        }
        let served = run_schedules(schedules, options, Arc::new(SystemClock)).await;
        if let Some(done) = web_runs_done {
            let _ = done.await;
        }
        anyhow::Ok(Ok(served))
    }));
    // Runs have parked; what a cancelled step left behind is its supervisor's to stop.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let served = match served? {
        Ok(served) => served,
        Err(status) => return Ok(status),
    };
    match served {
        Ok(()) => Ok(ExitStatus::Success),
        // A store that cannot be reached or used: exit 4, as for a run.
        Err(ServeError::Store(error)) => Ok(store_failure(&error, printer)),
        Err(ServeError::StoreLocation(problem)) => {
            printer.error(&problem);
            Ok(ExitStatus::Invalid)
        }
    }
}

/// Logs go to stderr through `tracing`: a line of text per event, or a JSON object per line.
fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// SIGTERM, Ctrl-C or SIGHUP drains: no new fire, every run interrupted and journaled, then
/// serve exits. A second one exits at once (the runs' supervisors stop their processes).
fn watch_signals(stop: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
                _ = hangup.recv() => {}
            }
            seen += 1;
            if seen == 1 {
                tracing::info!("stop requested: draining");
                stop.cancel();
            } else {
                tracing::warn!("second stop request: exiting now");
                std::process::exit(3); // ExitStatus::Parked: runs are left to resume
            }
        }
    });
    Ok(())
}
