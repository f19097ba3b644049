//! `runbook users`: the users file of serve's web side. `add` sets a person's password
//! (kept as its argon2id hash), `token` makes an API token (kept as its SHA-256, printed
//! once), `remove` takes a name out. The file's comments and other entries are kept.

use super::{ExitStatus, Printer};
use crate::web::auth::Role;
use crate::web::auth::password;
use crate::web::auth::users_edit::{self, EditError, Edited};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a person who signs in with a password, or change their password or role. The
    /// password is asked for on the terminal (not echoed), or read from standard input with
    /// --password-stdin.
    Add(AddArgs),
    /// Make an API token for NAME (`Authorization: Bearer TOKEN`). The token is printed once
    /// on standard output; the file keeps only its SHA-256.
    Token(TokenArgs),
    /// Remove NAME: their password and every token of theirs.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The name signed in with, and recorded in the journal for what they do.
    pub name: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub file: FileArg,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Who the token acts as, in the journal.
    pub name: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
    #[command(flatten)]
    pub file: FileArg,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub name: String,
    #[command(flatten)]
    pub file: FileArg,
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The users file (`http.users_file` in serve.yaml); made if missing.
    #[arg(long, value_name = "FILE", default_value = "users.yaml")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub fn users(args: &UsersArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match &args.command {
        UsersCommand::Add(args) => add(args, printer),
        UsersCommand::Token(args) => token(args, printer),
        UsersCommand::Remove(args) => remove(args, printer),
    }
}

fn add(args: &AddArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if let Err(problem) = users_edit::check_name(&args.name) {
        printer.error(&problem.to_string());
        return Ok(ExitStatus::Invalid);
    }
    let password = match read_password(args.password_stdin) {
        Ok(password) => password,
        Err(problem) => {
            printer.error(&problem);
            return Ok(ExitStatus::Invalid);
        }
    };
    let hash = password::hash(&password)?;
    let role = Role::from(args.role);
    let status = change(&args.file.file, printer, |text, shown| {
        users_edit::set_password(text, shown, &args.name, role, &hash)
    })?;
    if status == ExitStatus::Success {
        printer.note(&format!(
            "{} can sign in as {role} (password set in {})",
            args.name,
            args.file.file.display()
        ));
    }
    Ok(status)
}

fn token(args: &TokenArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let token = format!("rbk_{}", crate::web::auth::random_token());
    let digest = format!("sha256:{}", crate::web::auth::sha256_hex(&token));
    let role = Role::from(args.role);
    let status = change(&args.file.file, printer, |text, shown| {
        users_edit::add_token(text, shown, &args.name, role, &digest)
    })?;
    if status == ExitStatus::Success {
        printer.note(&format!(
            "a token for {} as {role}, kept as its SHA-256 in {}; it is shown only now:",
            args.name,
            args.file.file.display()
        ));
        printer.out(&format!("{token}\n"));
    }
    Ok(status)
}

fn remove(args: &RemoveArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let status = change(&args.file.file, printer, |text, shown| {
        users_edit::remove(text, shown, &args.name)
    })?;
    if status == ExitStatus::Success {
        printer.note(&format!(
            "{} removed from {}; a serve running reads the file when it starts",
            args.name,
            args.file.file.display()
        ));
    }
    Ok(status)
}

/// Reads the file (empty when missing), edits it, writes it back whole.
fn change(
    path: &Path,
    printer: &Printer,
    edit: impl FnOnce(&str, &str) -> Result<Edited, EditError>,
) -> anyhow::Result<ExitStatus> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            printer.error(&format!("cannot read the users file {shown}: {error}"));
            return Ok(ExitStatus::Failure);
        }
    };
    let edited = match edit(&text, &shown) {
        Ok(edited) => edited,
        Err(problem) => {
            printer.error(&problem.to_string());
            return Ok(ExitStatus::Invalid);
        }
    };
    if edited.rewritten {
        printer.note(&format!(
            "note: {shown} was written anew from its entries; its comments were not kept"
        ));
    }
    if let Err(error) = write_replacing(path, &edited.text) {
        printer.error(&format!("cannot write the users file {shown}: {error}"));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

/// Writes beside the file and renames over it, so that a serve starting meanwhile never
/// reads half a file. A new file is readable by its owner only.
fn write_replacing(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "users.yaml".to_owned());
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The password: the first line of stdin, or asked twice on the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Password again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ; nothing was changed".to_owned());
        }
        first
    } else {
        return Err(
            "no terminal to ask the password on: give it on standard input with --password-stdin"
                .to_owned(),
        );
    };
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    Ok(password)
}
