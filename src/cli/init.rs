//! `runbook init NAME`: a commented starter runbook, `NAME.yaml`, that `runbook validate`
//! accepts, with the JSON Schema beside it for editors.

use super::args::InitArgs;
use super::{ExitStatus, Printer};
use std::io::Write;
use std::path::PathBuf;

/// The starter, with `@NAME@` and `@FILE@` to fill in.
const STARTER: &str = include_str!("starter.yaml");

/// The file the schema line of the starter names, beside it.
const SCHEMA_FILE: &str = "runbook.schema.json";

pub fn init(args: &InitArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let file = runbook_file(&args.name);
    let name = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default()
        .to_owned();
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !name.chars().all(plain)
    {
        printer.error(&format!(
            "`{name}` cannot name a runbook: a name uses lowercase letters, digits, `-` and `_`, \
             and starts with a letter or digit (for example `restart-job`)"
        ));
        return Ok(ExitStatus::Invalid);
    }
    let text = STARTER
        .replace("@NAME@", &name)
        .replace("@FILE@", &file.display().to_string());
    // Refused, never overwritten, when the file exists: it may be someone's work.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file);
    let mut out = match created {
        Ok(out) => out,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            printer.error(&format!(
                "{} already exists: not overwritten (remove it or choose another name)",
                file.display()
            ));
            return Ok(ExitStatus::Invalid);
        }
        Err(error) => {
            printer.error(&format!("cannot create {}: {error}", file.display()));
            return Ok(ExitStatus::Invalid);
        }
    };
    out.write_all(text.as_bytes())?;
    let schema = file.with_file_name(SCHEMA_FILE);
    let schema_note = if schema.exists() {
        String::new()
    } else {
        std::fs::write(&schema, crate::runbook::schema::json_schema())?;
        format!(" and {} (for editors)", schema.display())
    };
    printer.note(&format!(
        "wrote {}{schema_note}\nnext: runbook validate {}",
        file.display(),
        file.display()
    ));
    Ok(ExitStatus::Success)
}

/// `NAME.yaml`, unless the name already ends in `.yaml` or `.yml`.
fn runbook_file(name: &str) -> PathBuf {
    let path = PathBuf::from(name);
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => path,
        _ => PathBuf::from(format!("{name}.yaml")),
    }
}
