use super::args::{GraphArgs, GraphFormat};
use super::{ExitStatus, Printer};
use crate::plan::{Picture, dot, mermaid};
use crate::runbook::validate::validate_file_allowing;

/// `runbook graph FILE`: the DAG of a valid runbook as Mermaid or dot.
pub fn graph(args: &GraphArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let validation = validate_file_allowing(&args.file, &args.uses.allowed);
    if !validation.is_valid() {
        printer.diagnostics(&validation.problems);
        return Ok(ExitStatus::Invalid);
    }
    let picture = Picture::new(&validation.bundle).expect("a valid runbook has loaded");
    printer.out(&match args.format {
        GraphFormat::Mermaid => mermaid::render(&picture),
        GraphFormat::Dot => dot::render(&picture),
    });
    Ok(ExitStatus::Success)
}
