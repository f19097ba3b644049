//! A schedule ready to fire: its cron expression read in its time zone, its runbook loaded,
//! its inputs checked, its blackouts in absolute time.

use super::blackout::{self, Blackout};
use super::config::{BlackoutConfig, Missed, Overlap, ScheduleConfig, plain_name};
use crate::runbook::diagnostic::{Diagnostic, SourceFile};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// The runbook file, resolved against the configuration's directory.
    pub runbook: PathBuf,
    /// Checked against the runbook's inputs when the configuration was loaded; checked again
    /// at each fire, since the runbook may have changed.
    pub inputs: Map<String, Value>,
    pub cron_text: String,
    pub cron: Cron,
    pub zone_name: String,
    pub zone: TimeZone,
    pub window: Option<std::time::Duration>,
    pub overlap: Overlap,
    pub missed: Missed,
    pub enabled: bool,
    pub blackouts: Vec<Blackout>,
}

/// Why a due fire does not start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Blackout(String),
    Disabled,
    /// The previous run of the schedule still runs and the policy is `skip`.
    Overlap {
        running: String,
    },
    /// The fire fell while serve was not running, and the missed-run policy drops it.
    Missed,
    /// The policy is `queue` and as many fires as may wait already do.
    QueueFull,
    /// The run could not be started (an invalid runbook, a missing secret).
    Failed(String),
}

impl SkipReason {
    pub fn name(&self) -> &'static str {
        match self {
            SkipReason::Blackout(_) => "blackout",
            SkipReason::Disabled => "disabled",
            SkipReason::Overlap { .. } => "overlap",
            SkipReason::Missed => "missed",
            SkipReason::QueueFull => "queue_full",
            SkipReason::Failed(_) => "failed",
        }
    }
}

impl Schedule {
    /// The first cron time strictly after `after`, in the schedule's zone, blackouts not
    /// considered. Cron times are wall-clock times in the zone: on a spring-forward day a
    /// time the clocks skip fires at the first instant after the gap; on a fall-back day a
    /// repeated time fires once, at its first occurrence (croner's rules, tested below).
    pub fn next_after(&self, after: Timestamp) -> Option<Zoned> {
        let start = after.to_zoned(self.zone.clone());
        self.cron.find_next_occurrence(&start, false).ok()
    }

    /// The blackout a fire at `at` falls in, if any.
    pub fn blackout_at(&self, at: Timestamp) -> Option<&Blackout> {
        self.blackouts.iter().find(|b| b.contains(at))
    }

    /// When the maintenance window of a fire at `fire` closes: the fire time plus the
    /// schedule's window length. A run of that fire gets it as its window end.
    pub fn window_until(&self, fire: Timestamp) -> Option<Timestamp> {
        let window = self.window?;
        let length = jiff::SignedDuration::try_from(window).ok()?;
        fire.checked_add(length).ok()
    }

    /// The next `count` fire times after `after` that no blackout suppresses.
    pub fn upcoming(&self, after: Timestamp, count: usize) -> Vec<Zoned> {
        let mut fires = Vec::with_capacity(count);
        let mut cursor = after;
        // A calendar can black out years of a frequent schedule: bound the search.
        for _ in 0..1_000_000 {
            if fires.len() == count {
                break;
            }
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            cursor = next.timestamp();
            if self.blackout_at(cursor).is_none() {
                fires.push(next);
            }
        }
        fires
    }

    /// Compiles one schedule of the configuration, reporting every problem at its place.
    pub fn compile(
        config: &ScheduleConfig,
        file: &SourceFile,
        base: &Path,
    ) -> Result<Schedule, Vec<Diagnostic>> {
        let mut problems = Vec::new();
        let name = &config.name;
        if !plain_name(name) {
            problems.push(
                Diagnostic::at(
                    file,
                    name.span,
                    format!("`{}` is not a plain name", name.value),
                )
                .with_help("a schedule name is 1 to 100 letters, digits, `-`, `_` or `.`"),
            );
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(&config.cron)
            .map_err(|error| {
                Diagnostic::at(
                    file,
                    config.cron.span,
                    format!("invalid cron expression: {error}"),
                )
                .with_help(
                    "five fields (minute hour day month weekday), or six with seconds first: \
                         `0 2 * * Sun`, `*/2 * * * * *`",
                )
            });
        let (zone_name, zone) = match &config.time_zone {
            None => ("UTC".to_owned(), Ok(TimeZone::UTC)),
            Some(zone) => (
                zone.value.clone(),
                TimeZone::get(&zone.value).map_err(|_| {
                    Diagnostic::at(
                        file,
                        zone.span,
                        format!("unknown time zone `{}`", zone.value),
                    )
                    .with_help("an IANA time zone name: `Europe/Berlin`, `America/New_York`, `UTC`")
                }),
            ),
        };
        let missed = match &config.missed {
            Some(missed) => match &missed.value {
                Missed::RunLatestWithin(within) if within.0.is_zero() => {
                    problems.push(Diagnostic::at(
                        file,
                        missed.span,
                        "`run_latest_within` must be longer than 0s (or write `missed: skip`)",
                    ));
                    Missed::Skip
                }
                other => other.clone(),
            },
            None => Missed::Skip,
        };
        let runbook = base.join(&config.runbook.value);
        let inputs = match crate::app::load(&runbook, &[]) {
            Ok(bundle) => {
                let root = bundle.root().expect("a valid runbook has loaded");
                check_inputs(config, &root.runbook, file).unwrap_or_else(|mut errors| {
                    problems.append(&mut errors);
                    Map::new()
                })
            }
            Err(crate::app::AppError::InvalidRunbook(mut errors)) => {
                problems.push(
                    Diagnostic::at(
                        file,
                        config.runbook.span,
                        format!("runbook {} is not valid", runbook.display()),
                    )
                    .with_help("its problems follow"),
                );
                problems.append(&mut errors);
                Map::new()
            }
            Err(other) => {
                problems.push(Diagnostic::at(file, config.runbook.span, other.to_string()));
                Map::new()
            }
        };
        let zone = match zone {
            Ok(zone) => zone,
            Err(problem) => {
                problems.push(problem);
                TimeZone::UTC
            }
        };
        let blackouts = config
            .blackouts
            .iter()
            .flat_map(|entry| {
                compile_blackout(entry, &zone, base).unwrap_or_else(|error| {
                    problems.push(Diagnostic::at(file, entry.span, error));
                    Vec::new()
                })
            })
            .collect();
        let cron = match cron {
            Ok(cron) => cron,
            Err(problem) => {
                problems.push(problem);
                return Err(problems);
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Schedule {
            name: name.value.clone(),
            runbook,
            inputs,
            cron_text: config.cron.value.clone(),
            cron,
            zone_name,
            zone,
            window: config.window.as_ref().map(|w| w.value.0),
            overlap: config.overlap,
            missed,
            enabled: config.enabled,
            blackouts,
        })
    }
}

/// The schedule's inputs against the runbook's: a secret given inline is refused (the
/// runbook reads its secrets itself), and the rest is checked as `--inputs-file` is.
fn check_inputs(
    config: &ScheduleConfig,
    runbook: &crate::runbook::Runbook,
    file: &SourceFile,
) -> Result<Map<String, Value>, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut given = Map::new();
    for (key, value) in config.inputs.iter() {
        if let Some(secret) = runbook.secrets.get(&key.value) {
            let from = match &secret.value {
                crate::runbook::Secret::Env(name) => format!("the environment variable `{name}`"),
                crate::runbook::Secret::File(path) => format!("the file `{path}`"),
            };
            problems.push(
                Diagnostic::at(
                    file,
                    key.span,
                    format!("`{}` is a secret of the runbook: it is never given inline", key.value),
                )
                .with_help(format!(
                    "the runbook reads it from {from}; set that where serve runs, and remove it here"
                )),
            );
            continue;
        }
        given.insert(key.value.clone(), value.to_json());
    }
    let span = config
        .inputs
        .keys()
        .next()
        .map_or(config.runbook.span, |k| k.span);
    match crate::runbook::inputs::resolve(runbook, Some(&given), &[]) {
        Ok(values) if problems.is_empty() => Ok(values),
        Ok(_) => Err(problems),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| {
                Diagnostic::at(
                    file,
                    span,
                    e.message.replace("the inputs file", "the schedule"),
                )
            }));
            Err(problems)
        }
    }
}

fn compile_blackout(
    entry: &crate::runbook::Spanned<BlackoutConfig>,
    zone: &TimeZone,
    base: &Path,
) -> Result<Vec<Blackout>, String> {
    match &entry.value {
        BlackoutConfig::Date(text) => {
            let date: jiff::civil::Date = text
                .parse()
                .map_err(|_| format!("`{text}` is not a date: write 2026-12-24"))?;
            Ok(vec![Blackout::day(date, zone, format!("date {text}"))?])
        }
        BlackoutConfig::Range(range) => {
            let start = blackout::parse_moment(&range.from, zone)?;
            let end = blackout::parse_moment(&range.until, zone)?;
            if end <= start {
                return Err(format!(
                    "the range ends ({}) before it starts ({})",
                    range.until, range.from
                ));
            }
            Ok(vec![Blackout {
                start,
                end,
                what: format!("range {} - {}", range.from, range.until),
            }])
        }
        BlackoutConfig::Calendar(path) => {
            let resolved = base.join(path);
            super::ics::read_calendar(&resolved, zone)
                .map_err(|error| format!("calendar {}: {error}", resolved.display()))
        }
    }
}
