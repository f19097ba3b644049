//! The configuration of `runbook serve`: its schedules, as written in YAML. The types here
//! are the schema (`schemas/serve.schema.json` is generated from them); [`load`] reads a
//! file with the runbook loader's node tree and diagnostics, and compiles each schedule.

use super::schedule::Schedule;
use crate::runbook::diagnostic::Diagnostic;
use crate::runbook::load::{de_problem, from_node_recovering, read_source, yaml_problem};
use crate::runbook::node::{self, Node, NodeKind};
use crate::runbook::{Duration, Spanned, SpannedMap};
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::Path;

/// A `serve.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runbook serve configuration")]
pub struct ServeConfig {
    /// The schedules; each fires its runbook on its cron expression.
    pub schedules: Vec<ScheduleConfig>,
    /// Where the web pages and the HTTP API listen: `127.0.0.1:8080`, or `:8080` for
    /// 127.0.0.1. Without it (and without `--listen`) serve opens no port.
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// Who may use the web pages and the HTTP API, and how they sign in.
    #[serde(default)]
    pub http: HttpConfig,
}

/// The HTTP side of serve: sign-in, roles, TLS.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The users file (relative to this configuration file): who may sign in, with which
    /// role. Without one, nobody can sign in and every page and API route is refused.
    #[serde(default)]
    pub users_file: Option<String>,
    /// How long a browser's sign-in lasts unused: `12h` [default: 12h]. Sessions are kept in
    /// serve's memory: a restart of serve signs everyone out.
    #[serde(default)]
    pub session_idle: Option<Duration>,
    /// Marks the session cookie `Secure` (sent over HTTPS only) even without `tls:`, for a
    /// serve behind a proxy that terminates TLS. Always on with `tls:`.
    #[serde(default)]
    pub secure_cookies: bool,
    /// The runbooks the web pages and the HTTP API may start: files, or folders (each
    /// `.yaml`/`.yml` runbook directly in it), relative to this configuration file. Every
    /// schedule's runbook may be started too. No other runbook is ever read for a start.
    #[serde(default)]
    pub runbooks: Vec<String>,
}

/// A serve configuration, compiled: what `runbook serve` runs with.
#[derive(Debug, Clone, Default)]
pub struct ServeSetup {
    pub schedules: Vec<Schedule>,
    /// `listen:` as written (`--listen` wins over it).
    pub listen: Option<String>,
    pub http: HttpConfig,
    /// The configuration file's folder: relative paths in it are read from there.
    pub base: std::path::PathBuf,
}

/// One schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique among the schedules of every serve sharing the store: runs are told apart by it.
    /// Letters, digits, `-`, `_` and `.`.
    pub name: Spanned<String>,
    /// The runbook file, relative to this configuration file.
    pub runbook: Spanned<String>,
    /// Values of the runbook's inputs. Secrets are never given here: the runbook declares
    /// where each is read from (`secrets: {token: {env: TOKEN}}`).
    #[serde(default)]
    pub inputs: SpannedMap<Node>,
    /// A cron expression, with an optional seconds field first: `0 2 * * Sun` (02:00 every
    /// Sunday), `*/2 * * * * *` (every 2 seconds).
    pub cron: Spanned<String>,
    /// The IANA time zone the cron expression is read in [default: UTC].
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// How long the maintenance window of each fire lasts, from its fire time: `2h`.
    #[serde(default)]
    pub window: Option<Spanned<Duration>>,
    /// What a fire does while the previous run of the schedule still runs [default: skip].
    #[serde(default)]
    pub overlap: Overlap,
    /// What to do about fires that fell while serve was not running [default: skip].
    #[serde(default)]
    pub missed: Option<Spanned<Missed>>,
    /// A disabled schedule never fires (each fire it would have made is logged as skipped).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Periods in which the schedule does not fire.
    #[serde(default)]
    pub blackouts: Vec<Spanned<BlackoutConfig>>,
}

fn enabled() -> bool {
    true
}

/// What a fire does while the previous run of its schedule still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is skipped (logged).
    #[default]
    Skip,
    /// The fire waits and starts when the previous run ends (at most 16 waiting).
    Queue,
    /// The previous run is interrupted (parked `interrupted`, left for a person to resume or
    /// not), then the fire starts.
    Cancel,
}

/// Fires that fell while serve was not running.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// None of them runs.
    Skip,
    /// The latest of them runs if it is no older than this: `1h`.
    RunLatestWithin(Duration),
}

/// A period without fires. Start inclusive, end exclusive.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlackoutConfig {
    /// A whole day in the schedule's time zone: `2026-12-24`.
    Date(String),
    /// From one moment to another: `2026-12-20T00:00` (the schedule's zone),
    /// `2026-12-20T00:00+01:00`, or with a zone `...[Europe/Berlin]`.
    Range(RangeConfig),
    /// An iCalendar file (relative to this configuration file): each event is a blackout.
    Calendar(String),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeConfig {
    pub from: String,
    pub until: String,
}

/// The configuration's JSON Schema, as checked in under `schemas/serve.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(ServeConfig);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serialises");
    text.push('\n');
    text
}

/// Reads a configuration file and compiles every schedule (loading its runbook, reading its
/// calendars). Every problem is reported, in file order.
pub fn load(path: &Path) -> Result<ServeSetup, Vec<Diagnostic>> {
    let file = read_source(path).map_err(|d| vec![d])?;
    let root = node::parse(&file.text).map_err(|e| vec![yaml_problem(&file, &e)])?;
    let mut problems = Vec::new();
    let Some(items) = root.get("schedules") else {
        let mut problem = Diagnostic::at(
            &file,
            root.visible_span(),
            "missing required key `schedules`",
        );
        if !matches!(root.kind, NodeKind::Map(_)) {
            problem.message = format!(
                "expected a serve configuration (a mapping with `schedules`), found {}",
                root.kind_name()
            );
        }
        return Err(vec![problem]);
    };
    let sink = crate::runbook::de::Sink::default();
    // The top level without its schedules, to catch unknown keys there.
    let mut top = root.clone();
    if let NodeKind::Map(entries) = &mut top.kind {
        entries.retain(|(key, _)| key.name != "schedules");
        entries.push((
            node::Key {
                name: "schedules".into(),
                span: Default::default(),
            },
            Node {
                span: Default::default(),
                kind: NodeKind::Seq(Vec::new()),
            },
        ));
    }
    let (top_config, errors) = from_node_recovering::<ServeConfig>(&top, &sink, &[]);
    problems.extend(errors.into_iter().map(|e| de_problem(&file, e)));
    let NodeKind::Seq(items) = &items.kind else {
        problems.push(Diagnostic::at(
            &file,
            items.visible_span(),
            format!("expected a list of schedules, found {}", items.kind_name()),
        ));
        return Err(problems);
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut schedules: Vec<Schedule> = Vec::new();
    for item in items {
        let (config, errors) = from_node_recovering::<ScheduleConfig>(item, &sink, &[]);
        problems.extend(errors.into_iter().map(|e| de_problem(&file, e)));
        let Some(config) = config else { continue };
        if let Some(first) = schedules.iter().find(|s| s.name == config.name.value) {
            problems.push(
                Diagnostic::at(
                    &file,
                    config.name.span,
                    format!("a schedule `{}` is already defined", first.name),
                )
                .with_help("schedule names must be unique: runs are told apart by them"),
            );
            continue;
        }
        match Schedule::compile(&config, &file, base) {
            Ok(schedule) => schedules.push(schedule),
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    problems.extend(sink.take().into_iter().map(|e| de_problem(&file, e)));
    if problems.is_empty() {
        let (listen, http) = top_config
            .map(|config| (config.listen.map(|listen| listen.value), config.http))
            .unwrap_or_default();
        Ok(ServeSetup {
            schedules,
            listen,
            http,
            base: base.to_path_buf(),
        })
    } else {
        problems.sort_by_key(|p| (p.file.is_none(), p.offset()));
        Err(problems)
    }
}

/// Whether a schedule name is plain enough for logs, record names and commands.
pub(super) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
