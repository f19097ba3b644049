//! `runbook completions SHELL` and `runbook man`: shell completions and a man page, both
//! generated from the command-line definitions, so they never drift from the flags.

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::{ExitStatus, Printer};
use clap::CommandFactory;

pub fn completions(args: &CompletionsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "runbook", &mut script);
    printer.out(&String::from_utf8(script)?);
    Ok(ExitStatus::Success)
}

pub fn man(args: &ManArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)?;
            printer.note(&format!(
                "wrote runbook.1 and a page per subcommand (runbook-run.1, ...) into {}",
                dir.display()
            ));
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            printer.out(&String::from_utf8(page)?);
        }
    }
    Ok(ExitStatus::Success)
}
