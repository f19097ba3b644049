use super::args::ValidateArgs;
use super::{ExitStatus, Printer};
use crate::runbook::diagnostic::display_path;
use crate::runbook::validate::validate_file_allowing;

/// `runbook validate FILE...`: silent when every file is valid; every problem otherwise.
pub fn validate(args: &ValidateArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut invalid = 0;
    for file in &args.files {
        let validation = validate_file_allowing(file, &args.uses.allowed);
        if !validation.is_valid() {
            invalid += 1;
            printer.diagnostics(&validation.problems);
            let count = validation.problems.len();
            printer.error(&format!(
                "{} is invalid: {count} problem{}",
                display_path(file),
                if count == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(if invalid == 0 {
        printer.note_on_terminal(&match args.files.as_slice() {
            [one] => format!("{} is valid", display_path(one)),
            all => format!("all {} runbooks are valid", all.len()),
        });
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    })
}
