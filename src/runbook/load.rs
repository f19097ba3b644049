//! Reading a runbook file into the typed model, collecting every problem on the way.

use super::bounded_read::{BoundedReadError, read_bounded};
use super::de::{DeError, Sink, from_node};
use super::diagnostic::{Diagnostic, SourceFile, display_path};
use super::model::{Input, Objective, Runbook, Secret, Step};
use super::node::{self, Node, NodeKind, Span};
use super::spanned::{Spanned, SpannedMap};
use std::collections::HashSet;
use std::path::Path;

/// Runbooks are configuration, not data: anything larger is a mistake, and refusing it early
/// keeps memory and time bounded.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A runbook read from a file, with what could not be read of it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: SourceFile,
    pub runbook: Runbook,
    /// Steps and inputs that are in the file but did not load (their problems are already
    /// reported), so checks of references to them stay quiet.
    pub unloaded: Unloaded,
}

#[derive(Debug, Clone, Default)]
pub struct Unloaded {
    pub steps: HashSet<String>,
    pub inputs: HashSet<String>,
    pub secrets: HashSet<String>,
    /// Steps that loaded with some keys set aside because their values were wrong: a check
    /// that would only repeat that (such as "no action") stays quiet for them.
    pub damaged_steps: HashSet<String>,
}

/// Reads a runbook file as text, with a clear message for each way that can fail. Only a
/// regular file is read (a FIFO or a device, through a symbolic link or not, is refused), and
/// never more than [`MAX_FILE_BYTES`] of it, whatever size it reports.
pub fn read_source(path: &Path) -> Result<SourceFile, Diagnostic> {
    let shown = display_path(path);
    let bytes = read_bounded(path, MAX_FILE_BYTES).map_err(|error| match error {
        BoundedReadError::Directory => {
            Diagnostic::plain(format!("{shown} is a directory, not a runbook file"))
        }
        BoundedReadError::TooLarge { .. } => Diagnostic::plain(format!(
            "{shown} is too large: a runbook may be at most {MAX_FILE_BYTES} bytes (16 MiB)"
        )),
        BoundedReadError::NotRegular(kind) => Diagnostic::plain(format!(
            "{shown} is {kind}, not a runbook file: only regular files are read"
        )),
        other => Diagnostic::plain(format!("cannot read {shown}: {other}")),
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(path, text)),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            let prefix = String::from_utf8_lossy(&bytes[..valid]);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(Diagnostic::plain(format!(
                "{shown}:{line}:{column}: the file is not valid UTF-8 (byte 0x{:02x} at offset {valid})",
                bytes[valid]
            ))
            .with_help("runbooks are UTF-8 text; re-save the file as UTF-8"))
        }
    }
}

/// Loads runbook text into the model. Returns the model when its top level could be read,
/// and every problem found, in file order.
pub fn load(file: SourceFile) -> (Option<Loaded>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let root = match node::parse(&file.text) {
        Ok(root) => root,
        Err(error) => {
            let problem = yaml_problem(&file, &error);
            let looks_like_a_runbook = file.text.lines().any(|line| {
                REQUIRED_TOP_LEVEL
                    .iter()
                    .any(|key| line.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
            });
            return (
                None,
                vec![if looks_like_a_runbook {
                    problem
                } else {
                    without_source(problem)
                }],
            );
        }
    };
    let NodeKind::Map(entries) = &root.kind else {
        let found = if matches!(root.kind, NodeKind::Null) {
            "an empty document".to_owned()
        } else {
            root.kind_name().to_owned()
        };
        let problem = Diagnostic::at(
            &file,
            root.visible_span(),
            format!("expected a runbook (a mapping with version, name and steps), found {found}"),
        );
        let mut problem = without_source(problem);
        if matches!(root.kind, NodeKind::Null) {
            problem.help = None; // Nothing was there to show.
        }
        return (None, vec![problem]);
    };
    if !entries
        .iter()
        .any(|(key, _)| REQUIRED_TOP_LEVEL.contains(&key.name.as_str()))
    {
        let problem = Diagnostic::at(
            &file,
            root.visible_span(),
            "expected a runbook, found a mapping with none of its keys (version, name, steps)",
        );
        return (None, vec![without_source(problem)]);
    }

    let sink = Sink::default();
    let mut unloaded = Unloaded::default();
    let mut rest = root;
    // Steps, inputs and secrets load one by one, so a mistake in one does not hide the others.
    let steps = take_list(&mut rest, "steps")
        .map(|items| load_steps(&file, &items, &sink, &mut unloaded, &mut problems));
    let finally = take_list(&mut rest, "finally")
        .map(|items| load_steps(&file, &items, &sink, &mut unloaded, &mut problems));
    let inputs = take_map(&mut rest, "inputs").map(|entries| {
        load_entries::<Input>(&file, &entries, &sink, &mut unloaded.inputs, &mut problems)
    });
    let secrets = take_map(&mut rest, "secrets").map(|entries| {
        load_entries::<Spanned<Secret>>(
            &file,
            &entries,
            &sink,
            &mut unloaded.secrets,
            &mut problems,
        )
    });
    // Objectives too: a bad target in one leaves the others (and the rest) checked.
    let objectives = take_map(&mut rest, "objectives").map(|entries| {
        load_entries::<Objective>(&file, &entries, &sink, &mut HashSet::new(), &mut problems)
    });

    let missing: Vec<&str> = REQUIRED_TOP_LEVEL
        .iter()
        .copied()
        .filter(|key| rest.get(key).is_none())
        .collect();
    for key in &missing {
        problems.push(
            Diagnostic::at(&file, rest.visible_span(), format!("{MISSING_KEY} `{key}`"))
                .with_label("in this runbook"),
        );
    }
    let (runbook, errors) = from_node_recovering::<Runbook>(&rest, &sink, &missing);
    problems.extend(errors.into_iter().map(|e| de_problem(&file, e)));
    let runbook = match runbook {
        Some(mut runbook) => {
            if let Some(steps) = steps {
                runbook.steps = steps;
            }
            if let Some(finally) = finally {
                runbook.finally = finally;
            }
            if let Some(inputs) = inputs {
                runbook.inputs = inputs;
            }
            if let Some(secrets) = secrets {
                runbook.secrets = secrets;
            }
            if let Some(objectives) = objectives {
                runbook.objectives = objectives;
            }
            Some(runbook)
        }
        None => None,
    };
    problems.extend(sink.take().into_iter().map(|e| de_problem(&file, e)));
    problems.sort_by_key(Diagnostic::offset);
    let loaded = runbook.map(|runbook| Loaded {
        file,
        runbook,
        unloaded,
    });
    (loaded, problems)
}

/// Takes `key` out of the root mapping when it is a list, leaving an empty list behind so the
/// rest still deserialises; anything else stays for the typed pass to report.
fn take_list(root: &mut Node, key: &str) -> Option<Vec<Node>> {
    let value = value_mut(root, key)?;
    match &mut value.kind {
        NodeKind::Seq(items) => Some(std::mem::take(items)),
        _ => None,
    }
}

fn take_map(root: &mut Node, key: &str) -> Option<Vec<(node::Key, Node)>> {
    let value = value_mut(root, key)?;
    match &mut value.kind {
        NodeKind::Map(entries) => Some(std::mem::take(entries)),
        _ => None,
    }
}

fn value_mut<'a>(root: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut root.kind {
        NodeKind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

fn load_steps(
    file: &SourceFile,
    items: &[Node],
    sink: &Sink,
    unloaded: &mut Unloaded,
    problems: &mut Vec<Diagnostic>,
) -> Vec<Step> {
    let mut steps = Vec::with_capacity(items.len());
    for item in items {
        let (step, errors) = from_node_recovering::<Step>(item, sink, &[]);
        let damaged = !errors.is_empty();
        problems.extend(errors.into_iter().map(|e| de_problem(file, e)));
        match step {
            Some(mut step) => {
                if damaged {
                    unloaded.damaged_steps.insert(step.id.value.clone());
                }
                step.node = item.clone();
                steps.push(step);
            }
            None => {
                if let Some(id) = item.get("id").and_then(Node::as_str) {
                    unloaded.steps.insert(id.to_owned());
                }
            }
        }
    }
    steps
}

fn load_entries<T: for<'de> serde::Deserialize<'de>>(
    file: &SourceFile,
    entries: &[(node::Key, Node)],
    sink: &Sink,
    unloaded: &mut HashSet<String>,
    problems: &mut Vec<Diagnostic>,
) -> SpannedMap<T> {
    let mut map = SpannedMap::default();
    for (key, value) in entries {
        let (loaded, errors) = from_node_recovering::<T>(value, sink, &[]);
        problems.extend(errors.into_iter().map(|e| de_problem(file, e)));
        match loaded {
            Some(loaded) => map
                .entries
                .push((Spanned::new(key.name.clone(), key.span), loaded)),
            None => {
                unloaded.insert(key.name.clone());
            }
        }
    }
    map
}

/// How many faulty keys one mapping may have before the rest goes unreported: enough for
/// any real mistake, small enough that a hostile file cannot make this quadratic.
const MAX_RETRIES: usize = 32;

/// How serde's derive reports an absent field (see `DeError::missing_field`).
const MISSING_KEY: &str = "missing required key";

/// The top-level keys every runbook has; all absent ones are reported at once.
const REQUIRED_TOP_LEVEL: &[&str] = &["version", "name", "steps"];

/// Deserialises `T` from a mapping, reporting every key whose value is wrong, not just the
/// first: after an error the key that holds it is set aside and the rest is read again.
/// The value read without the faulty keys is returned too, so later checks (templates,
/// references) still look at the rest.
pub(crate) fn from_node_recovering<T: for<'de> serde::Deserialize<'de>>(
    node: &Node,
    sink: &Sink,
    already_missing: &[&str],
) -> (Option<T>, Vec<DeError>) {
    let mut errors: Vec<DeError> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(node);
    let mut value_read = None;
    for _ in 0..MAX_RETRIES {
        let attempt_sink = Sink::default();
        let result = from_node::<T>(&current, &attempt_sink);
        for error in attempt_sink.take() {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        let error = match result {
            Ok(value) => {
                value_read = Some(value);
                break;
            }
            Err(error) => error,
        };
        // Setting a key aside can make it "missing"; that was already reported. A missing
        // key is not in any entry, so reading again would not find more.
        if error.message.starts_with(MISSING_KEY) {
            let consequence = removed
                .iter()
                .map(String::as_str)
                .chain(already_missing.iter().copied())
                .any(|key| error.message == format!("{MISSING_KEY} `{key}`"));
            if !consequence {
                errors.push(error);
            }
            break;
        }
        let culprit = error.span.and_then(|span| entry_holding(&current, span));
        errors.push(error);
        let Some(index) = culprit else { break };
        let mut next = current.into_owned();
        if let NodeKind::Map(entries) = &mut next.kind {
            removed.push(entries.remove(index).0.name);
        }
        current = std::borrow::Cow::Owned(next);
    }
    // Unknown keys go to the shared sink; hard errors are returned.
    let (unknown, hard): (Vec<_>, Vec<_>) = errors
        .into_iter()
        .partition(|e| e.message.starts_with("unknown key"));
    unknown.into_iter().for_each(|e| sink.push(e));
    (value_read, hard)
}

/// Which entry of a mapping a span falls in: from its key up to the next key.
fn entry_holding(node: &Node, span: Span) -> Option<usize> {
    let NodeKind::Map(entries) = &node.kind else {
        return None;
    };
    entries.iter().enumerate().position(|(index, (key, _))| {
        let end = entries
            .get(index + 1)
            .map_or(usize::MAX, |(next, _)| next.span.offset);
        key.span.offset <= span.offset && span.offset < end
    })
}

/// A problem in a file that does not look like a runbook, said without its text: a `uses`
/// or a symbolic link can point anywhere (`/etc/shadow`, a key), and a diagnostic must not
/// copy such a file to a terminal or a CI log. Its path and position are enough to act on.
fn without_source(problem: Diagnostic) -> Diagnostic {
    let help = "the file's contents are not shown, since it does not look like a runbook";
    match problem.location() {
        Some(location) => {
            Diagnostic::plain(format!("{location}: {}", problem.message)).with_help(help)
        }
        None => Diagnostic::plain(problem.message).with_help(help),
    }
}

pub(crate) fn de_problem(file: &SourceFile, error: DeError) -> Diagnostic {
    Diagnostic::at(file, error.span.unwrap_or_default(), error.message).with_help_opt(error.help)
}

/// serde-saphyr's safety limits, said in a runbook author's words; the position is shown by
/// the snippet, so the " at line L, column C" tail is dropped. `aliased`: whether the
/// document uses aliases at all, which decides what a too-large document is blamed on.
fn plain_yaml_message(message: &str, aliased: bool) -> String {
    let head = message.split(" at line ").next().unwrap_or(message);
    if let Some(budget) = head.strip_prefix("budget breached: ") {
        let what = budget.split([' ', '{', '(']).next().unwrap_or(budget);
        return match what {
            "Depth" => "the document nests deeper than 64 levels".to_owned(),
            "Nodes" if aliased => "the document has more than 250000 values once its aliases are expanded (are aliases multiplying it?)".to_owned(),
            "Nodes" => "the document has more than 250000 values, more than a runbook may hold; split it into runbooks called with `uses`".to_owned(),
            "Aliases" | "Anchors" => "the document uses more aliases or anchors than a runbook may".to_owned(),
            other => format!("the document exceeds a safety limit of the YAML reader ({other})"),
        };
    }
    if head.starts_with("recursion limit exceeded") {
        return "the document nests too deeply".to_owned();
    }
    head.to_owned()
}

/// A YAML syntax error, placed at the position serde-saphyr reports.
pub(crate) fn yaml_problem(file: &SourceFile, error: &serde_saphyr::Error) -> Diagnostic {
    let first_line = error.without_snippet().to_string();
    let first_line = first_line.lines().next().unwrap_or_default().to_owned();
    // serde-saphyr prefixes "error: line L column C: " and may suggest its own options.
    let mut message = first_line
        .strip_prefix("error: ")
        .unwrap_or(&first_line)
        .to_owned();
    if let Some(rest) = message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .map(|(_, rest)| rest.to_owned())
    {
        message = rest;
    }
    if let Some((head, _)) = message.split_once(", set DuplicateKeyPolicy") {
        message = head.to_owned();
    }
    // Aliases need an anchor: `&name` after a space, `[`, `,`, `{` or a line break (a
    // shell's `&&` or ` & ` is not one).
    let aliased = file.text.as_bytes().windows(3).any(|w| {
        matches!(w[0], b' ' | b'[' | b',' | b'{' | b'\n')
            && w[1] == b'&'
            && w[2].is_ascii_alphanumeric()
    });
    let tag = message
        .strip_prefix("unsupported tag `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(tag, _)| tag.to_owned());
    let message = format!("invalid YAML: {}", plain_yaml_message(&message, aliased));
    match error.location() {
        Some(location) if location.line() > 0 => {
            let offset = file.offset_of(location.line() as usize, location.column() as usize);
            let len = file.text[offset..].chars().next().map_or(0, char::len_utf8);
            if let Some(tag) = tag {
                // The reader places the error on the tagged value: show the tag itself, which
                // comes before it.
                let span = file.text[..offset]
                    .rfind(tag.as_str())
                    .map_or(Span::new(offset, len), |at| Span::new(at, tag.len()));
                return Diagnostic::at(file, span, message).with_help(
                    "remove the tag: only the YAML core tags (!!str, !!int, !!map...) are allowed",
                );
            }
            Diagnostic::at(file, Span::new(offset, len), message)
        }
        _ => Diagnostic::plain(format!("{}: {message}", display_path(&file.path))),
    }
}
