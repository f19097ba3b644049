//! Every flag of every subcommand, in one place.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Run declarative YAML runbooks: a DAG of steps with retries, fallbacks and deadlines.
#[derive(Debug, Parser)]
#[command(name = "runbook", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks and report every problem, with file:line:col.
    Validate(ValidateArgs),
    /// Run a runbook.
    Run(RunArgs),
    /// Show what a run would do: the steps in order, rendered where the values are known.
    Plan(PlanArgs),
    /// Draw the DAG of a runbook as Mermaid or Graphviz dot.
    Graph(GraphArgs),
    /// Continue a run that was interrupted, crashed or parked, from its journal.
    Resume(ResumeArgs),
    /// Answer an approval step of a run: approve it, or reject it with --reject.
    Approve(ApproveArgs),
    /// Mark a failed or not-yet-run step of a stopped run done by hand, with its outputs.
    Skip(super::controls::SkipArgs),
    /// Run a stopped run again from a step (default: every failed step) and downstream.
    Retry(super::controls::RetryArgs),
    /// Ask the process running a live run to stop starting steps and park it (exit 3 there).
    Pause(super::controls::PauseArgs),
    /// Stop a run for good: no step starts again; with --undo, run the undo of every step
    /// that succeeded, in reverse order; then `finally`.
    Abort(super::controls::AbortArgs),
    /// List runs, or show one.
    Runs(RunsArgs),
    /// List the locks runs hold (`locks:` in runbooks): lock, run, runbook, host, since,
    /// expires.
    Locks(LocksArgs),
    /// Show what the steps of a run printed (stdout and stderr, from its journal).
    Logs(LogsArgs),
    /// Reports across runs: `report trend RUNBOOK`.
    Report(ReportArgs),
    /// Write NAME.yaml, a commented starter runbook that validates (never overwrites).
    Init(InitArgs),
    /// Print the JSON Schema of the runbook language.
    Schema,
    /// Run runbooks on schedules (a long-running process; see docs/serve.md).
    Serve(ServeArgs),
    /// Print each schedule's next fire times, blackouts taken into account; `check`
    /// validates a serve configuration.
    Schedules(SchedulesArgs),
    /// Manage the users file of serve's web side: passwords and API tokens.
    Users(super::users::UsersArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand with --dir.
    Man(ManArgs),
    /// Internal: the process supervisor a run starts beside itself.
    #[command(name = crate::process::supervisor::SUBCOMMAND, hide = true)]
    Supervise {
        /// The mark of the run's processes.
        mark: String,
    },
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where runs are kept: sqlite:PATH [default: sqlite:$XDG_STATE_HOME/runbook/runbook.db,
    /// else ~/.local/state/runbook/runbook.db].
    #[arg(long, env = "RUNBOOK_STORE", value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to continue (`runbook runs list` shows them).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Continue with this edited runbook instead of the one kept in the journal: the
    /// changes are shown step by step and journaled; finished steps keep their ends.
    #[arg(long, value_name = "FILE", requires = "reason")]
    pub runbook: Option<std::path::PathBuf>,
    /// With --runbook: steps that had ended (or were running) whose body changed run again
    /// with the new body, and everything downstream of them.
    #[arg(long, requires = "runbook")]
    pub rerun_changed: bool,
    /// With --runbook: why the runbook was edited, kept in the journal.
    #[arg(long, value_name = "TEXT", requires = "runbook")]
    pub reason: Option<String>,
    /// With --runbook: who edits it [default: $USER@host].
    #[arg(long = "as", value_name = "NAME", requires = "runbook")]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    #[command(flatten)]
    pub window: WindowArgs,
}

/// How a command that runs an existing run in this process runs and shows it.
#[derive(Debug, Args)]
pub struct ExecutionArgs {
    /// Actions running at once, run-wide (overrides the runbook's max_parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// human: progress and a summary on stderr, outputs on stdout; json: one event per line on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub verbose: VerboseArgs,
}

/// A run's maintenance window: gated steps start only while they fit before it closes.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// The run's window, from now: steps with `window:` start only while what they need
    /// fits in what is left of it (2h, 1h30m, 45m).
    #[arg(long, value_name = "DURATION", value_parser = parse_window_length, conflicts_with = "window_until")]
    pub window: Option<std::time::Duration>,
    /// The run's window, until this time: RFC 3339 (2026-12-06T04:00:00+01:00) or with a
    /// time zone (2026-12-06T04:00+01:00[Europe/Berlin], 2026-12-06T04:00[Europe/Berlin]).
    #[arg(long, value_name = "TIME", value_parser = parse_window_end)]
    pub window_until: Option<jiff::Timestamp>,
}

impl WindowArgs {
    /// How long the window is from now, if one was given: `--window` as given, the time
    /// until `--window-until` to the second.
    pub fn length(&self) -> Option<std::time::Duration> {
        match (self.window, self.window_until) {
            (Some(length), _) => Some(length),
            (None, Some(until)) => {
                let left = until.duration_since(jiff::Timestamp::now());
                let left = std::time::Duration::try_from(left).unwrap_or_default();
                Some(std::time::Duration::from_secs(
                    left.as_secs_f64().round() as u64
                ))
            }
            (None, None) => None,
        }
    }

    /// When the window closes, if one was given.
    pub fn until(&self) -> Option<jiff::Timestamp> {
        match (self.window, self.window_until) {
            // To the second: the end is shown and journaled, and nanoseconds mean nothing.
            (Some(length), _) => jiff::Timestamp::now()
                .checked_add(length)
                .ok()
                .and_then(|end| jiff::Timestamp::from_second(end.as_second()).ok()),
            (None, until) => until,
        }
    }
}

/// `--window 2h`: a duration as runbooks write them, longer than nothing.
fn parse_window_length(text: &str) -> Result<std::time::Duration, String> {
    match crate::runbook::Duration::parse(text) {
        Some(length) if !length.0.is_zero() => Ok(length.0),
        Some(_) => Err("a window must be longer than 0s".to_owned()),
        None => Err(format!(
            "`{text}` is not a duration: expected one such as 2h, 1h30m or 45m"
        )),
    }
}

/// `--window-until`: an instant with its offset, or a civil time in a named time zone (jiff
/// resolves DST: a time that does not exist or exists twice is taken as the offset says, or
/// as jiff's default, the earlier one, without an offset); it must lie ahead.
fn parse_window_end(text: &str) -> Result<jiff::Timestamp, String> {
    let until = text
        .parse::<jiff::Timestamp>()
        .or_else(|_| text.parse::<jiff::Zoned>().map(|zoned| zoned.timestamp()))
        .map_err(|_| {
            format!(
                "`{text}` is not a time: expected RFC 3339 such as 2026-12-06T04:00:00+01:00,                  or a time in a zone such as 2026-12-06T04:00+01:00[Europe/Berlin]"
            )
        })?;
    if until <= jiff::Timestamp::now() {
        return Err(format!(
            "the window would end at {until}, which has already passed"
        ));
    }
    Ok(until)
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The runbook's name; the file is NAME.yaml (a path is fine: ops/restart-job).
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write runbook.1 and runbook-<subcommand>.1 into this directory instead of printing
    /// runbook.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run (`runbook runs list` shows them).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Only this step, with its `for_each` items and the steps of a runbook it `uses`.
    #[arg(value_name = "STEP")]
    pub step: Option<String>,
    /// Keep showing output as the run goes on, until it ends or parks.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What a run shows on the terminal besides progress.
#[derive(Debug, Args)]
pub struct VerboseArgs {
    /// Also show what each step prints (stdout and stderr), each line prefixed by its step,
    /// as each run of its action ends.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// The approval step's path, as progress and `runbook runs show` print it.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Reject instead of approving: the step fails.
    #[arg(long)]
    pub reject: bool,
    /// A note kept with the answer.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Who answers [default: $USER@host].
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The runs of one runbook over time: durations and objectives, a table and charts.
    /// Exits 1 when the latest run missed a target (or could not measure one).
    Trend(TrendArgs),
}

#[derive(Debug, Args)]
pub struct TrendArgs {
    /// The runbook: its `name`, or its file (its name is read from it).
    #[arg(value_name = "RUNBOOK")]
    pub runbook: String,
    /// Only the newest N runs.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub last: u32,
    /// text for the terminal, json for tools, html for a page with charts.
    #[arg(long, value_enum, default_value_t = TrendFormat::Text)]
    pub format: TrendFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrendFormat {
    Text,
    Json,
    Html,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Every run, newest first: id, runbook, status, started, duration.
    List(RunsListArgs),
    /// One run: every step with its status, attempts, timings, outputs and error.
    Show(RunsShowArgs),
    /// Delete runs that are over (succeeded, failed, cancelled) and ended long enough ago,
    /// and shrink the store; never a running, interrupted, waiting or parked run.
    Prune(RunsPruneArgs),
}

#[derive(Debug, Args)]
pub struct RunsPruneArgs {
    /// Delete runs that ended before this: an age (90d, 2w, 12h) or a date (2026-11-01).
    #[arg(long, value_name = "AGE|DATE", value_parser = super::housekeeping::parse_moment)]
    pub older_than: jiff::Timestamp,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A run status as `runs list --status` takes it: `succeeded`, `waiting`, ...
fn parse_status(text: &str) -> Result<crate::engine::RunStatus, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        "expected one of running, succeeded, failed, cancelled, interrupted, waiting, parked, undone"
            .to_owned()
    })
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only runs of the runbook with this `name`.
    #[arg(long, value_name = "NAME")]
    pub runbook: Option<String>,
    /// Only runs with this status: running, succeeded, failed, cancelled, interrupted,
    /// waiting, parked or undone.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<crate::engine::RunStatus>,
    /// Only runs started since: an age (7d, 12h) or a date (2026-11-01).
    #[arg(long, value_name = "AGE|DATE", value_parser = super::housekeeping::parse_moment)]
    pub since: Option<jiff::Timestamp>,
    /// At most this many runs (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunsShowArgs {
    /// The run.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// text for the terminal, json for tools, markdown for a report to file, html for a
    /// self-contained page with a timeline (prints to PDF), junit for CI systems.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
    Html,
    Junit,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbook files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub uses: UsesArgs,
}

#[derive(Debug, Args)]
pub struct UsesArgs {
    /// A directory whose runbooks `uses` may name, besides the runbook's own tree (its git
    /// work tree, else its directory). Repeatable.
    #[arg(long = "allow-uses-dir", value_name = "DIR")]
    pub allowed: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// An input value, as name=value; arrays and objects take JSON. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// A YAML or JSON file mapping input names to values; --input values win over it.
    #[arg(long = "inputs-file", value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The runbook.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub uses: UsesArgs,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// text for people, json for tools.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// A window to check the gated steps against; with it (or without), the plan shows each
    /// step's need and how long steps took in earlier runs, from the store.
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The runbook.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub uses: UsesArgs,
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runbook.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub uses: UsesArgs,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Actions running at once, run-wide (overrides the runbook's max_parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// human: progress and a summary on stderr, outputs on stdout; json: one event per line on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub verbose: VerboseArgs,
    /// The run's id (default: generated from the time and a random suffix).
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Enqueue the run instead of running it: it is created in the store as `queued`, its
    /// id printed, and a `runbook serve` worker sharing the store claims and runs it.
    #[arg(long, conflicts_with_all = ["max_parallel", "window", "window_until"])]
    pub queue: bool,
}

/// A run lease as `serve --lease` takes it.
fn run_lease(text: &str) -> Result<std::time::Duration, String> {
    crate::store::parse_run_lease(text)
}

/// Run ids appear in commands, file names and URLs: keep them plain.
fn parse_run_id(value: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > 128 || !value.chars().all(plain) {
        return Err("a run id is 1 to 128 letters, digits, `-`, `_` or `.`".to_owned());
    }
    Ok(value.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The serve configuration (YAML): its schedules. Without one, serve only works the
    /// queue (runs enqueued with `runbook run --queue`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long this process's claim on a run lasts without renewal (renewed every third
    /// of it): another worker takes a run over once its owner's lease ran out.
    #[arg(long, value_name = "DURATION", env = "RUNBOOK_RUN_LEASE", value_parser = run_lease)]
    pub lease: Option<std::time::Duration>,
    /// Runs this process executes at once, queued and scheduled alike.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// Serve the web pages and the HTTP API on this address: `127.0.0.1:8080`, or `:8080`
    /// for 127.0.0.1 (`:0` picks a free port, logged). Wins over `listen:` in the config.
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<crate::web::ListenAddress>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// text: one readable line per event on stderr; json: one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: Option<SchedulesCommand>,
    /// The serve configuration (YAML).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// How many fire times to print per schedule.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub count: usize,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Validate a serve configuration and the runbooks it names: exit 2 with diagnostics
    /// when it is invalid.
    Check,
    /// Print the JSON Schema of the serve configuration.
    Schema,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(text: &str) -> String {
        parse_window_end(text).unwrap().to_string()
    }

    #[test]
    fn a_window_end_takes_rfc_3339_or_a_time_in_a_zone_dst_included() {
        assert_eq!(end("2099-12-06T04:00:00+01:00"), "2099-12-06T03:00:00Z");
        assert_eq!(
            end("2099-12-06T04:00+01:00[Europe/Berlin]"),
            "2099-12-06T03:00:00Z"
        );
        // Summer time in Berlin: +02:00.
        assert_eq!(
            end("2099-07-05T04:00[Europe/Berlin]"),
            "2099-07-05T02:00:00Z"
        );
        // 02:30 does not exist on the night clocks go forward: it is taken as 03:30 CEST.
        assert_eq!(
            end("2099-03-29T02:30[Europe/Berlin]"),
            "2099-03-29T01:30:00Z"
        );
        // 02:30 happens twice on the night clocks go back: the first (CEST), unless the
        // offset says which.
        assert_eq!(
            end("2099-10-25T02:30[Europe/Berlin]"),
            "2099-10-25T00:30:00Z"
        );
        assert_eq!(
            end("2099-10-25T02:30+01:00[Europe/Berlin]"),
            "2099-10-25T01:30:00Z"
        );
        assert_eq!(
            end("2099-11-01T02:00[America/New_York]"),
            "2099-11-01T07:00:00Z"
        );
    }

    #[test]
    fn a_window_that_is_over_or_not_a_time_is_refused() {
        let past = parse_window_end("2020-01-01T00:00:00Z").unwrap_err();
        assert!(past.contains("has already passed"), "{past}");
        let garbage = parse_window_end("next sunday").unwrap_err();
        assert!(garbage.contains("is not a time"), "{garbage}");
        assert!(parse_window_end("2099-12-06T04:00[Mars/Olympus]").is_err());
        assert!(parse_window_length("0s").is_err());
        assert_eq!(
            parse_window_length("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
    }
}
