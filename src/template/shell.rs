//! POSIX shell quoting for values rendered into exec scripts.

use std::borrow::Cow;

/// Quote `value` so that a POSIX shell reads it back as exactly one word, unchanged.
///
/// Scripts are run by `sh`; a value such as `a'b; rm -rf /` pasted in verbatim would run
/// a second command. Single quotes disable every shell expansion, and the only character
/// they cannot contain, `'`, is written as `'\''` (close, escaped quote, reopen).
/// Words made only of characters that are never special are left bare so that rendered
/// scripts stay readable (`echo 42`, not `echo '42'`); the empty string becomes `''` so it
/// still counts as an argument.
pub fn quote(value: &str) -> Cow<'_, str> {
    let never_special = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '+' | '@' | '%' | '=')
    };
    // `=` is only special in the command-name position of `a=b cmd`, where a value
    // never lands alone; a leading `-` is not a shell concern (the program parses flags).
    if !value.is_empty() && value.chars().all(never_special) {
        return Cow::Borrowed(value);
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    Cow::Owned(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh` sees: the words of `echo-args <quoted>` printed one per line.
    fn shell_words(script_fragment: &str) -> Option<Vec<String>> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for w in {script_fragment}; do printf '%s\\n' \"$w\"; done"
            ))
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    #[test]
    fn dangerous_value_becomes_one_literal_word() {
        let value = "a'b; rm -rf / $(whoami) `id` \"q\" *";
        let quoted = quote(value);
        assert_eq!(quoted, "'a'\\''b; rm -rf / $(whoami) `id` \"q\" *'");
        if let Some(words) = shell_words(&quoted) {
            assert_eq!(words, vec![value.to_owned()]);
        }
    }

    #[test]
    fn plain_words_stay_bare_and_empty_stays_an_argument() {
        assert_eq!(quote("orders-2024.v1"), "orders-2024.v1");
        assert_eq!(quote("42"), "42");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("line\nbreak"), "'line\nbreak'");
    }
}
