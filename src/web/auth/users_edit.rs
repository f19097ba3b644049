//! Changes to a users file as `runbook users` makes them: an entry added, replaced or
//! removed by editing the text, so that the file's other entries, its comments and its
//! layout stay as they were. A file laid out in a way the editor does not follow (a flow
//! sequence with entries, `users: [{...}]`) is written anew from its content instead, which
//! drops its comments; the caller is told.

use super::Role;
use super::users::{PasswordEntry, TokenEntry, UsersError, UsersFile};

/// What became of the file's text.
#[derive(Debug)]
pub struct Edited {
    pub text: String,
    /// Whether the comments and layout could not be kept (the file was written anew).
    pub rewritten: bool,
    /// How many entries the edit replaced or removed.
    pub replaced: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Invalid(#[from] UsersError),
    #[error("{0:?} is not a user name: use letters, digits, '.', '_', '-' and '@'")]
    BadName(String),
    #[error("{name} is not in {path}")]
    NotFound { name: String, path: String },
}

/// A name as the journal records it: plain, so that it reads the same everywhere.
pub fn check_name(name: &str) -> Result<(), EditError> {
    let fine = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if fine {
        Ok(())
    } else {
        Err(EditError::BadName(name.to_owned()))
    }
}

/// Sets the password of `name` (a new person, or one whose password or role changes).
pub fn set_password(
    text: &str,
    shown: &str,
    name: &str,
    role: Role,
    hash: &str,
) -> Result<Edited, EditError> {
    check_name(name)?;
    let line = format!(
        "{{name: {}, role: {role}, password: {}}}",
        quoted(name),
        quoted(hash)
    );
    edit(text, shown, |sections| {
        let replaced = sections.remove_named("users", name);
        sections.append("users", &line);
        replaced
    })
}

/// Adds a token of `name`, kept as its SHA-256 (`sha256:<hex>`).
pub fn add_token(
    text: &str,
    shown: &str,
    name: &str,
    role: Role,
    digest: &str,
) -> Result<Edited, EditError> {
    check_name(name)?;
    let line = format!(
        "{{name: {}, role: {role}, sha256: {}}}",
        quoted(name),
        quoted(digest)
    );
    edit(text, shown, |sections| {
        sections.append("tokens", &line);
        0
    })
}

/// Removes `name`: its password and every token of it.
pub fn remove(text: &str, shown: &str, name: &str) -> Result<Edited, EditError> {
    let edited = edit(text, shown, |sections| {
        sections.remove_named("users", name) + sections.remove_named("tokens", name)
    })?;
    if edited.replaced == 0 {
        return Err(EditError::NotFound {
            name: name.to_owned(),
            path: shown.to_owned(),
        });
    }
    Ok(edited)
}

/// A YAML double-quoted scalar (JSON's string syntax is YAML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn edit(
    text: &str,
    shown: &str,
    change: impl Fn(&mut Lines) -> usize,
) -> Result<Edited, EditError> {
    let before = UsersFile::parse(text, shown)?;
    if let Some(mut lines) = Lines::read(text) {
        let replaced = change(&mut lines);
        let edited = lines.text();
        // The edit is checked by reading it back; a layout the editor misread falls back to
        // writing the file anew.
        if UsersFile::parse(&edited, shown).is_ok() {
            return Ok(Edited {
                text: edited,
                rewritten: false,
                replaced,
            });
        }
    }
    let mut lines = Lines::read(&render(&before)).expect("a file written by render is read");
    let replaced = change(&mut lines);
    let text = lines.text();
    UsersFile::parse(&text, shown)?;
    Ok(Edited {
        text,
        rewritten: true,
        replaced,
    })
}

/// The file written anew from its content.
fn render(file: &UsersFile) -> String {
    let mut text = String::new();
    let users: Vec<String> = file.users.iter().map(password_line).collect();
    let tokens: Vec<String> = file.tokens.iter().map(token_line).collect();
    for (key, items) in [("users", users), ("tokens", tokens)] {
        if items.is_empty() {
            continue;
        }
        text.push_str(key);
        text.push_str(":\n");
        for item in items {
            text.push_str("  - ");
            text.push_str(&item);
            text.push('\n');
        }
    }
    text
}

fn password_line(entry: &PasswordEntry) -> String {
    format!(
        "{{name: {}, role: {}, password: {}}}",
        quoted(&entry.name),
        entry.role,
        quoted(&entry.password)
    )
}

fn token_line(entry: &TokenEntry) -> String {
    format!(
        "{{name: {}, role: {}, sha256: {}}}",
        quoted(&entry.name),
        entry.role,
        quoted(&entry.sha256)
    )
}

/// The file as lines, with where each top-level key's block sequence lies.
struct Lines {
    lines: Vec<String>,
}

impl Lines {
    /// `None` when a top-level `users:` or `tokens:` is written in a way this editor does not
    /// follow (a flow sequence with entries, an anchor).
    fn read(text: &str) -> Option<Lines> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let this = Lines { lines };
        for key in ["users", "tokens"] {
            if let Some(at) = this.key_line(key) {
                let value = this.lines[at][key.len() + 1..].trim();
                let value = value.split(" #").next().unwrap_or("").trim();
                if !(value.is_empty() || value == "[]") {
                    return None;
                }
            }
        }
        Some(this)
    }

    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    fn key_line(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(':'))
        })
    }

    /// The lines after the key line up to the next top-level key (comments and blank lines
    /// at the end are left to what follows).
    fn section(&self, key_line: usize) -> std::ops::Range<usize> {
        let start = key_line + 1;
        let mut end = start;
        for (at, line) in self.lines.iter().enumerate().skip(start) {
            let top_level_key = !line.is_empty()
                && !line.starts_with([' ', '\t', '#', '-'])
                && line.trim_start() == line;
            if top_level_key {
                break;
            }
            if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                end = at + 1;
            }
        }
        start..end
    }

    /// The entries of a section: for each, its lines.
    fn items(&self, key: &str) -> Vec<std::ops::Range<usize>> {
        let Some(key_line) = self.key_line(key) else {
            return Vec::new();
        };
        let section = self.section(key_line);
        let mut items: Vec<std::ops::Range<usize>> = Vec::new();
        let mut dash_indent = None;
        for at in section.clone() {
            let line = &self.lines[at];
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start();
            let is_dash = trimmed == "-" || trimmed.starts_with("- ");
            if is_dash && dash_indent.is_none_or(|d| d == indent) {
                dash_indent = Some(indent);
                items.push(at..at + 1);
            } else if let Some(last) = items.last_mut() {
                let continues = trimmed.is_empty()
                    || dash_indent.is_some_and(|d| indent > d)
                    || trimmed.starts_with('#');
                if continues {
                    last.end = at + 1;
                }
            }
        }
        // Trailing blank lines and comments are not part of the entry above them.
        for item in &mut items {
            while item.end > item.start + 1 {
                let last = self.lines[item.end - 1].trim();
                if last.is_empty() || last.starts_with('#') {
                    item.end -= 1;
                } else {
                    break;
                }
            }
        }
        items
    }

    fn item_indent(&self, key: &str) -> usize {
        self.items(key)
            .first()
            .map(|item| {
                let line = &self.lines[item.start];
                line.len() - line.trim_start().len()
            })
            .unwrap_or(2)
    }

    /// The name of the entry at `item`, read as YAML.
    fn name_of(&self, item: &std::ops::Range<usize>) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let text = self.lines[item.clone()].join("\n");
        let indent = text.len() - text.trim_start().len();
        let dedented: Vec<&str> = text
            .lines()
            .map(|line| {
                line.get(indent.min(line.len() - line.trim_start().len())..)
                    .unwrap_or(line)
            })
            .collect();
        let entries: Vec<Named> = serde_saphyr::from_str(&dedented.join("\n")).ok()?;
        entries.into_iter().next().map(|named| named.name)
    }

    /// Removes the entries of `name` from a section; how many.
    fn remove_named(&mut self, key: &str, name: &str) -> usize {
        let doomed: Vec<_> = self
            .items(key)
            .into_iter()
            .filter(|item| self.name_of(item).as_deref() == Some(name))
            .collect();
        for item in doomed.iter().rev() {
            self.lines.drain(item.clone());
        }
        doomed.len()
    }

    /// Adds an entry (a flow mapping) at the end of a section, made if missing.
    fn append(&mut self, key: &str, entry: &str) {
        let indent = " ".repeat(self.item_indent(key));
        let line = format!("{indent}- {entry}");
        match self.key_line(key) {
            Some(key_line) => {
                // `users: []` becomes a block sequence.
                let value = self.lines[key_line][key.len() + 1..].trim().to_owned();
                if value.starts_with("[]") {
                    let comment = value.trim_start_matches("[]").to_owned();
                    self.lines[key_line] = format!("{key}:{comment}");
                }
                let after = self
                    .items(key)
                    .last()
                    .map(|item| item.end)
                    .unwrap_or(key_line + 1);
                self.lines.insert(after, line);
            }
            None => {
                if self
                    .lines
                    .last()
                    .is_some_and(|last| !last.trim().is_empty())
                {
                    self.lines.push(String::new());
                }
                self.lines.push(format!("{key}:"));
                self.lines.push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# Who may use the web pages.
users:
  # the on-call
  - name: otto
    role: operator
    password: \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRmb3Jub2JvZHk$yY1Uuc6n1a/KAo0BFQ3hOqiAyA2tQuIcmhTdrxbqDE8\"
  - {name: vera, role: viewer, password: \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRmb3Jub2JvZHk$yY1Uuc6n1a/KAo0BFQ3hOqiAyA2tQuIcmhTdrxbqDE8\"}

# Machines.
tokens:
  - {name: ci, role: operator, sha256: \"sha256:00\"}
";
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRmb3Jub2JvZHk$yY1Uuc6n1a/KAo0BFQ3hOqiAyA2tQuIcmhTdrxbqDE8";

    #[test]
    fn adding_a_person_keeps_comments_and_the_other_entries() {
        let edited = set_password(FILE, "users.yaml", "ada", Role::Admin, HASH).unwrap();
        assert!(!edited.rewritten);
        assert_eq!(edited.replaced, 0);
        assert!(
            edited
                .text
                .starts_with("# Who may use the web pages.\nusers:\n  # the on-call\n")
        );
        assert!(
            edited.text.contains("# Machines.\ntokens:"),
            "{}",
            edited.text
        );
        let file = UsersFile::parse(&edited.text, "x").unwrap();
        let names: Vec<_> = file.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["otto", "vera", "ada"]);
        assert_eq!(file.tokens.len(), 1);
    }

    #[test]
    fn setting_a_password_again_replaces_the_entry() {
        let edited = set_password(FILE, "users.yaml", "otto", Role::Admin, HASH).unwrap();
        assert_eq!(edited.replaced, 1);
        let file = UsersFile::parse(&edited.text, "x").unwrap();
        let otto: Vec<_> = file.users.iter().filter(|u| u.name == "otto").collect();
        assert_eq!(otto.len(), 1);
        assert_eq!(otto[0].role, Role::Admin);
        assert!(edited.text.contains("# Machines."));
    }

    #[test]
    fn removing_a_name_removes_its_password_and_tokens_only() {
        let with_token = add_token(FILE, "u", "otto", Role::Operator, "sha256:11").unwrap();
        let edited = remove(&with_token.text, "u", "otto").unwrap();
        assert_eq!(edited.replaced, 2);
        let file = UsersFile::parse(&edited.text, "x").unwrap();
        assert_eq!(file.users.len(), 1);
        assert_eq!(file.tokens.len(), 1);
        assert!(
            edited.text.contains("# the on-call"),
            "comments stay: {}",
            edited.text
        );
        assert!(matches!(
            remove(FILE, "u", "nobody"),
            Err(EditError::NotFound { .. })
        ));
    }

    #[test]
    fn an_empty_or_missing_file_gets_its_sections() {
        let edited = add_token("", "u", "ci", Role::Viewer, "sha256:22").unwrap();
        assert_eq!(UsersFile::parse(&edited.text, "x").unwrap().tokens.len(), 1);
        let edited =
            set_password("users: []\ntokens: []\n", "u", "ada", Role::Admin, HASH).unwrap();
        assert!(!edited.rewritten);
        assert_eq!(UsersFile::parse(&edited.text, "x").unwrap().users.len(), 1);
    }

    #[test]
    fn a_flow_sequence_with_entries_is_written_anew() {
        let text = format!("users: [{{name: otto, role: operator, password: \"{HASH}\"}}]\n");
        let edited = set_password(&text, "u", "ada", Role::Admin, HASH).unwrap();
        assert!(edited.rewritten);
        assert_eq!(UsersFile::parse(&edited.text, "x").unwrap().users.len(), 2);
    }

    #[test]
    fn a_name_that_would_read_oddly_is_refused() {
        assert!(check_name("ada.lovelace@example").is_ok());
        for bad in ["", "a b", "x\ny", "{x}", "a:b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
