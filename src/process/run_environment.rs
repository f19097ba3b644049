//! The environment a run's step commands start with, made once for the run.
//!
//! `std::process::Command` given any variable of its own reads the engine's whole
//! environment into a map at every start, then writes the program's out of it: about a
//! tenth of the engine's work in a step of a chain of short commands, allocations included
//! (see docs/performance.md). Every step command of a run gets the same environment (the
//! engine's, which it never changes, and the run's id and mark), so it is made here once;
//! only a step with variables of its own gets a copy with them set.

use std::borrow::Cow;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;

use super::step_command::c_string;

/// `NAME=value` for each variable a run's step commands start with.
pub(super) struct RunEnvironment {
    entries: Vec<CString>,
    /// The names of the run's own variables, which a step's cannot replace.
    fixed: Vec<&'static str>,
}

impl RunEnvironment {
    /// The engine's environment as it is now, with `fixed` set (replacing any variable of
    /// the same name).
    pub(super) fn new(fixed: &[(&'static str, &str)]) -> RunEnvironment {
        let fixed_names: Vec<&'static str> = fixed.iter().map(|(name, _)| *name).collect();
        let mut entries: Vec<CString> = std::env::vars_os()
            .filter(|(name, _)| !fixed_names.iter().any(|fixed| name == OsStr::new(fixed)))
            .filter_map(|(name, value)| entry(name.as_bytes(), value.as_bytes()))
            .collect();
        entries.extend(
            fixed
                .iter()
                .filter_map(|(name, value)| entry(name.as_bytes(), value.as_bytes())),
        );
        RunEnvironment {
            entries,
            fixed: fixed_names,
        }
    }

    /// The environment of a step command that sets `vars` on top of the run's: the run's
    /// own when it sets none. A later variable of `vars` replaces an earlier one of the same
    /// name; none replaces the run's own variables.
    pub(super) fn for_step(&self, vars: &[(String, String)]) -> io::Result<Cow<'_, [CString]>> {
        if vars.is_empty() {
            return Ok(Cow::Borrowed(&self.entries));
        }
        let mut set: Vec<&(String, String)> = Vec::with_capacity(vars.len());
        for var in vars.iter().rev() {
            let taken = set.iter().any(|(name, _)| *name == var.0);
            if !taken && !self.fixed.contains(&var.0.as_str()) {
                set.push(var);
            }
        }
        let replaced = |entry: &CString| {
            let name = name_of(entry.as_bytes());
            set.iter().any(|(set, _)| set.as_bytes() == name)
        };
        let mut entries: Vec<CString> = self
            .entries
            .iter()
            .filter(|entry| !replaced(entry))
            .cloned()
            .collect();
        for (name, value) in set.into_iter().rev() {
            let what = || match name.contains('\0') {
                true => "the name of a variable".to_owned(),
                false => format!("variable `{name}`"),
            };
            entries.push(c_string(&format!("{name}={value}"), what)?);
        }
        Ok(Cow::Owned(entries))
    }
}

/// The name part of `NAME=value`.
fn name_of(entry: &[u8]) -> &[u8] {
    let end = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    &entry[..end]
}

/// `NAME=value`; `None` for what no environment can hold (a NUL byte).
fn entry(name: &[u8], value: &[u8]) -> Option<CString> {
    let mut bytes = Vec::with_capacity(name.len() + 1 + value.len());
    bytes.extend_from_slice(name);
    bytes.push(b'=');
    bytes.extend_from_slice(value);
    CString::new(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(entries: &[CString]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.to_str().expect("text").to_owned())
            .collect()
    }

    #[test]
    fn the_runs_variables_are_set_over_the_engines_and_a_steps_cannot_replace_them() {
        // The test's own process has PATH; the run's variables are added to it.
        let run = RunEnvironment::new(&[("RUNBOOK_RUN_ID", "r1"), ("PATH", "/run/bin")]);
        let all = texts(&run.entries);
        assert!(all.contains(&"RUNBOOK_RUN_ID=r1".to_owned()));
        assert_eq!(
            all.iter().filter(|e| e.starts_with("PATH=")).count(),
            1,
            "{all:?}"
        );
        assert!(all.contains(&"PATH=/run/bin".to_owned()));

        let none = run.for_step(&[]).expect("made");
        assert!(
            matches!(none, Cow::Borrowed(_)),
            "no copy without variables"
        );

        let vars = [
            ("RUNBOOK_RUN_ID".to_owned(), "other".to_owned()),
            ("GREETING".to_owned(), "hello".to_owned()),
            ("GREETING".to_owned(), "hi".to_owned()),
        ];
        let step = texts(&run.for_step(&vars).expect("made"));
        assert!(step.contains(&"RUNBOOK_RUN_ID=r1".to_owned()), "{step:?}");
        assert!(!step.iter().any(|e| e == "RUNBOOK_RUN_ID=other"));
        assert_eq!(
            step.iter()
                .filter(|e| e.starts_with("GREETING="))
                .collect::<Vec<_>>(),
            ["GREETING=hi"],
            "the later one wins"
        );
        assert_eq!(step.len(), all.len() + 1);
    }

    #[test]
    fn a_steps_variable_replaces_the_engines_of_the_same_name() {
        let run = RunEnvironment::new(&[("RUNBOOK_TEST_ONE", "engine")]);
        // Not fixed: stands for a variable of the engine's own environment.
        let run = RunEnvironment {
            fixed: Vec::new(),
            ..run
        };
        let step = texts(
            &run.for_step(&[("RUNBOOK_TEST_ONE".to_owned(), "step".to_owned())])
                .expect("made"),
        );
        assert_eq!(
            step.iter()
                .filter(|e| e.starts_with("RUNBOOK_TEST_ONE="))
                .collect::<Vec<_>>(),
            ["RUNBOOK_TEST_ONE=step"]
        );
    }

    #[test]
    fn a_nul_byte_in_a_steps_variable_is_invalid_input() {
        let run = RunEnvironment::new(&[]);
        let error = run
            .for_step(&[("BAD".to_owned(), "a\0b".to_owned())])
            .expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            error.to_string(),
            "variable `BAD` holds a NUL byte",
            "not its value"
        );
    }
}
