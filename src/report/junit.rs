//! `runbook runs show --format junit`: the run as a JUnit XML report, so that CI systems
//! (Jenkins, GitLab, GitHub Actions' test reporters) show a run natively: one test suite for
//! the run, one test case per step; a failed step is a failure carrying its error, a skipped
//! one is skipped, and a step that never ended (cancelled, interrupted, still waiting) is an
//! error. The objectives are test cases too, so that a missed target fails the build.

use super::html::escape;
use super::objectives::Outcome;
use super::run_report::{RunReport, StepState, duration};
use std::fmt::Write;

/// Seconds with millisecond precision, as JUnit's `time` attributes take them.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

impl RunReport {
    pub fn junit(&self) -> String {
        // XML cannot carry most control characters at all, escaped or not.
        let text = |text: &str| -> String {
            escape(
                &text
                    .chars()
                    .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
                    .collect::<String>(),
            )
        };
        let classname = text(&format!("runbook.{}", self.runbook));
        let mut cases = String::new();
        let (mut failures, mut errors, mut skipped) = (0, 0, 0);
        for step in &self.steps {
            let time = seconds(step.duration_ms.unwrap_or(0));
            let _ = write!(
                cases,
                "    <testcase name=\"{}\" classname=\"{classname}\" time=\"{time}\"",
                text(&step.path)
            );
            let error = step.error.as_deref().unwrap_or("");
            // An approval step carries each person's answer, so that the build shows who let
            // the run through.
            let answers: Vec<String> = self
                .approvals
                .iter()
                .rev()
                .find(|a| a.path == step.path)
                .map(|a| a.answers.iter().map(|answer| answer.line()).collect())
                .unwrap_or_default();
            let system_out = if answers.is_empty() {
                String::new()
            } else {
                format!(
                    "      <system-out>{}</system-out>\n",
                    text(&answers.join("\n"))
                )
            };
            match step.status {
                StepState::Succeeded if system_out.is_empty() => cases.push_str("/>\n"),
                StepState::Succeeded => {
                    let _ = write!(cases, ">\n{system_out}    </testcase>\n");
                }
                StepState::Failed => {
                    failures += 1;
                    let _ = writeln!(
                        cases,
                        ">\n      <failure message=\"{}\" type=\"failed\">{}</failure>\n{system_out}    </testcase>",
                        text(first_line(error)),
                        text(&format!(
                            "step {} failed after {} attempt(s): {error}",
                            step.path, step.attempts
                        ))
                    );
                }
                StepState::Skipped => {
                    skipped += 1;
                    let message = match &step.skipped_by_hand {
                        Some(by) => format!("skipped by hand by {by}"),
                        None => {
                            "its `when` did not hold, or a step it needs did not succeed".to_owned()
                        }
                    };
                    let _ = writeln!(
                        cases,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        text(&message)
                    );
                }
                other => {
                    errors += 1;
                    let _ = writeln!(
                        cases,
                        ">\n      <error message=\"the step {state}\" type=\"{state}\">{}</error>\n{system_out}    </testcase>",
                        text(error),
                        state = other.name()
                    );
                }
            }
        }
        for objective in &self.objectives {
            let _ = write!(
                cases,
                "    <testcase name=\"objective {}\" classname=\"{classname}.objectives\" time=\"0.000\"",
                text(&objective.name)
            );
            let measured = objective.measured_ms.map(duration).unwrap_or_default();
            let target = duration(objective.target_ms);
            match objective.outcome {
                Outcome::Met => cases.push_str("/>\n"),
                Outcome::Missed => {
                    failures += 1;
                    let _ = writeln!(
                        cases,
                        ">\n      <failure message=\"{} missed: {measured} against a target of {target}\" type=\"missed\">{}</failure>\n    </testcase>",
                        text(&objective.name),
                        text(&objective.detail)
                    );
                }
                Outcome::NotMeasurable => {
                    errors += 1;
                    let _ = writeln!(
                        cases,
                        ">\n      <error message=\"{} not measurable: {}\" type=\"not_measurable\"/>\n    </testcase>",
                        text(&objective.name),
                        text(&objective.detail)
                    );
                }
            }
        }
        let tests = self.steps.len() + self.objectives.len();
        let time = seconds(self.duration_ms.unwrap_or(0));
        let timestamp = self.created_at.get(..19).unwrap_or(&self.created_at);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"runbook\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\">"
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" id=\"0\" package=\"runbook\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{}\" hostname=\"localhost\">",
            text(&self.runbook),
            text(timestamp)
        );
        let _ = writeln!(out, "    <properties>");
        for (name, value) in [
            ("run_id", self.id.as_str()),
            ("file", self.file.as_str()),
            ("status", self.status.name()),
        ] {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                text(value)
            );
        }
        // Every control (skip, retry, pause, edit) with when, who, what and why, in order.
        for control in &self.controls {
            let _ = writeln!(
                out,
                "      <property name=\"control\" value=\"{}\"/>",
                text(&control.describe())
            );
        }
        let _ = writeln!(out, "    </properties>");
        out.push_str(&cases);
        let _ = writeln!(out, "  </testsuite>\n</testsuites>");
        out
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
