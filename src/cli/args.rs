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
    /// List runs, or show one.
    Runs(RunsArgs),
    /// Show what the steps of a run printed (stdout and stderr, from its journal).
    Logs(LogsArgs),
    /// Write NAME.yaml, a commented starter runbook that validates (never overwrites).
    Init(InitArgs),
    /// Print the JSON Schema of the runbook language.
    Schema,
    /// Run runbooks on schedules (a long-running process; see docs/serve.md).
    Serve(ServeArgs),
    /// Print each schedule's next fire times, blackouts taken into account; `check`
    /// validates a serve configuration.
    Schedules(SchedulesArgs),
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
    #[command(flatten)]
    pub store: StoreArgs,
    /// Actions running at once, run-wide (overrides the runbook's max_parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// human: progress and a summary on stderr, outputs on stdout; json: one event per line on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub verbose: VerboseArgs,
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
    /// and shrink the store; never a running, interrupted or waiting run.
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
        "expected one of running, succeeded, failed, cancelled, interrupted, waiting".to_owned()
    })
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only runs of the runbook with this `name`.
    #[arg(long, value_name = "NAME")]
    pub runbook: Option<String>,
    /// Only runs with this status: running, succeeded, failed, cancelled, interrupted or
    /// waiting.
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
    /// text for the terminal, json for tools, markdown for a report to file.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
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
    /// The serve configuration (YAML): its schedules.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
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
