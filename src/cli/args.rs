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
    /// Print the JSON Schema of the runbook language.
    Schema,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbook files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
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
    pub inputs: InputArgs,
    /// Actions running at once, run-wide (overrides the runbook's max_parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// human: progress and a summary on stderr, outputs on stdout; json: one event per line on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// The run's id (default: generated from the time and a random suffix).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}
