use super::{ExitStatus, Printer};

/// `runbook schema`: the JSON Schema that editors use to complete and check runbooks.
pub fn schema(printer: &Printer) -> anyhow::Result<ExitStatus> {
    printer.out(&crate::runbook::schema::json_schema());
    Ok(ExitStatus::Success)
}
