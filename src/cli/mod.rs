//! The command line: flags are parsed here, each subcommand lives in its own file, and
//! every outcome becomes one [`ExitStatus`].

mod approve;
mod args;
mod completions;
mod controls;
mod execute;
mod exit_status;
mod graph;
mod housekeeping;
mod init;
mod locks;
mod logs;
mod plan;
mod printer;
mod report;
mod resume;
mod run;
mod runs;
mod schedules;
mod schema;
mod serve;
mod users;
mod validate;

pub use args::{Cli, Command};
pub use exit_status::ExitStatus;
pub use printer::Printer;

use clap::Parser;

/// Runs the binary: parse the command line, run the subcommand, map the outcome to an exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with success; real errors exit 2.
            let _ = error.print();
            return if error.use_stderr() {
                ExitStatus::Invalid.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    let printer = Printer::new();
    run(cli, &printer).into()
}

/// Runs one parsed command.
pub fn run(cli: Cli, printer: &Printer) -> ExitStatus {
    let outcome = match cli.command {
        Command::Validate(args) => validate::validate(&args, printer),
        Command::Run(args) => run::run(&args, printer),
        Command::Plan(args) => plan::plan(&args, printer),
        Command::Graph(args) => graph::graph(&args, printer),
        Command::Resume(args) => resume::resume(&args, printer),
        Command::Approve(args) => approve::approve(&args, printer),
        Command::Skip(args) => controls::skip(&args, printer),
        Command::Retry(args) => controls::retry(&args, printer),
        Command::Pause(args) => controls::pause(&args, printer),
        Command::Abort(args) => controls::abort(&args, printer),
        Command::Runs(args) => runs::runs(&args, printer),
        Command::Locks(args) => locks::locks(&args, printer),
        Command::Logs(args) => logs::logs(&args, printer),
        Command::Report(args) => report::report(&args, printer),
        Command::Init(args) => init::init(&args, printer),
        Command::Schema => schema::schema(printer),
        Command::Serve(args) => serve::serve(&args, printer),
        Command::Schedules(args) => schedules::schedules(&args, printer),
        Command::Users(args) => users::users(&args, printer),
        Command::Completions(args) => completions::completions(&args, printer),
        Command::Man(args) => completions::man(&args, printer),
        Command::Supervise { mark } => {
            crate::process::supervisor::serve(&mark);
            Ok(ExitStatus::Success)
        }
    };
    match outcome {
        Ok(status) => status,
        Err(error) => {
            printer.error(&format!("{error:#}"));
            ExitStatus::Invalid
        }
    }
}
