//! Any bytes through load, validate and the diagnostic renderer: nothing may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::runbook::diagnostic::SourceFile;
use runbook::runbook::validate::validate_source;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let validation = validate_source(SourceFile::new("fuzz/input.yaml", text));
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    for problem in &validation.problems {
        let _ = problem.location();
        let mut out = String::new();
        let _ = handler.render_report(&mut out, &problem.to_miette());
    }
});
