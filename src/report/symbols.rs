//! The marks progress lines start with: Unicode where the terminal can show it, plain ASCII
//! where it cannot (a locale that is not UTF-8, `TERM=dumb`), or as `RUNBOOK_SYMBOLS` says.

/// One mark per kind of progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbols {
    pub started: &'static str,
    pub retrying: &'static str,
    pub succeeded: &'static str,
    pub failed: &'static str,
    pub skipped: &'static str,
    pub cancelled: &'static str,
    /// Whether the set is Unicode: diagnostics then draw their frames in Unicode too.
    pub unicode: bool,
}

impl Symbols {
    pub const UNICODE: Symbols = Symbols {
        started: "▶",
        retrying: "↻",
        succeeded: "✓",
        failed: "✗",
        skipped: "–",
        cancelled: "⊘",
        unicode: true,
    };

    pub const ASCII: Symbols = Symbols {
        started: ">",
        retrying: "~",
        succeeded: "+",
        failed: "x",
        skipped: "-",
        cancelled: "!",
        unicode: false,
    };

    /// The set for this process's environment.
    pub fn from_env() -> Symbols {
        Self::choose(|name| std::env::var(name).ok())
    }

    /// `RUNBOOK_SYMBOLS=ascii|unicode` decides; else ASCII when `TERM=dumb` or when the
    /// locale (the first of `LC_ALL`, `LC_CTYPE`, `LANG` that is set) is not UTF-8. With no
    /// locale set at all, Unicode: most terminals show it, and the override is there.
    pub fn choose(env: impl Fn(&str) -> Option<String>) -> Symbols {
        let set = |name: &str| env(name).filter(|value| !value.is_empty());
        match set("RUNBOOK_SYMBOLS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("ascii") => return Self::ASCII,
            Some("unicode") => return Self::UNICODE,
            _ => {}
        }
        if set("TERM").as_deref() == Some("dumb") {
            return Self::ASCII;
        }
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"].into_iter().find_map(set);
        match locale {
            Some(locale) => {
                let locale = locale.to_ascii_lowercase();
                if locale.contains("utf-8") || locale.contains("utf8") {
                    Self::UNICODE
                } else {
                    Self::ASCII
                }
            }
            None => Self::UNICODE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Symbols {
        Symbols::choose(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn follows_the_locale_the_terminal_and_the_override() {
        assert_eq!(with(&[("LANG", "en_US.UTF-8")]), Symbols::UNICODE);
        assert_eq!(with(&[("LANG", "C.utf8")]), Symbols::UNICODE);
        assert_eq!(with(&[("LANG", "C")]), Symbols::ASCII);
        assert_eq!(
            with(&[("LANG", "en_US.UTF-8"), ("LC_ALL", "POSIX")]),
            Symbols::ASCII
        );
        assert_eq!(
            with(&[("LANG", "C"), ("LC_CTYPE", "de_DE.UTF-8")]),
            Symbols::UNICODE
        );
        assert_eq!(
            with(&[("LANG", "C.UTF-8"), ("TERM", "dumb")]),
            Symbols::ASCII
        );
        assert_eq!(with(&[]), Symbols::UNICODE);
        assert_eq!(
            with(&[("LANG", "C"), ("RUNBOOK_SYMBOLS", "unicode")]),
            Symbols::UNICODE
        );
        assert_eq!(with(&[("RUNBOOK_SYMBOLS", "ASCII")]), Symbols::ASCII);
    }
}
