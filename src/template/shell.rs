//! Where a template value lands in an exec script, as a POSIX shell reads the script.
//!
//! Values never become script text. Each `{{value}}` in a script is passed to the shell
//! as an environment variable (`RUNBOOK_V1`, `RUNBOOK_V2`, ...) and the script gets a
//! parameter expansion in its place. The shell never re-reads the result of a parameter
//! expansion for `$(...)`, backticks, quotes or `;`, so a value cannot run a command
//! whatever it contains. What the expansion looks like depends on where it stands:
//!
//! - where a word goes (`echo {{x}}`, `a={{x}}`, inside `$(...)`): `"${RUNBOOK_V1}"`, one
//!   word, no field splitting or globbing;
//! - inside double quotes, an unquoted heredoc body or a comment: `${RUNBOOK_V1}`.
//!
//! Some places cannot hold a value: inside single quotes or a heredoc whose delimiter is
//! quoted (the expansion would stay literal text), backticks, `${...}`, arithmetic
//! (`$((...))`, `((...))`, `[[ ]]`, where bash evaluates a value's text as code), right
//! after `\` or `$`, and in a heredoc delimiter. [`ScriptScanner`] finds which is which; the
//! validator reports the unsafe ones at their position and rendering refuses them.

/// Where a value stands in a script, which decides the expansion written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Where a shell word goes: the expansion is double-quoted to stay one word.
    Word,
    /// Inside double quotes, an unquoted heredoc body or a comment: already one piece.
    Quoted,
}

impl Placement {
    /// The parameter expansion of variable `name` for this placement.
    pub fn expansion(self, name: &str) -> String {
        match self {
            Placement::Word => format!("\"${{{name}}}\""),
            Placement::Quoted => format!("${{{name}}}"),
        }
    }
}

/// A place in a script where a value cannot be put safely, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UnsafePlacement {
    /// What is wrong, phrased for the runbook author.
    pub reason: &'static str,
    /// How to write it instead.
    pub help: &'static str,
}

/// The name of the environment variable that carries the `index`-th value (0-based) of a
/// script: `RUNBOOK_V1` for the first.
pub fn variable_name(index: usize) -> String {
    format!("RUNBOOK_V{}", index + 1)
}

/// Whether an environment variable name is one that scripts' values use.
pub fn is_value_variable(name: &str) -> bool {
    name.strip_prefix("RUNBOOK_V")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// Shell code: the script itself, or the inside of `$(...)` (which ends at the `)` that
    /// closes it, `depth` counting the parentheses opened inside).
    Code {
        substitution: bool,
        depth: usize,
    },
    DoubleQuoted,
    SingleQuoted,
    Backtick,
    /// `${...}`, `depth` counting braces opened inside.
    Parameter {
        depth: usize,
    },
    /// `$((...))` or `((...))`.
    Arithmetic {
        depth: usize,
    },
    /// bash's `[[ ... ]]`.
    Test,
    Comment,
    /// The word after `<<`, being read.
    HeredocDelimiter(DelimiterWord),
    /// The lines of a heredoc, up to its delimiter line.
    HeredocBody(Heredoc),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct DelimiterWord {
    strip_tabs: bool,
    text: String,
    quoted: bool,
    started: bool,
    quote: Option<char>,
    escaped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Heredoc {
    delimiter: String,
    quoted: bool,
    strip_tabs: bool,
}

/// Reads a script in pieces (text, then a value, then text...) and says, for each value,
/// how it can stand there.
///
/// The scanner knows the POSIX shell's quoting, substitutions, comments and heredocs, and
/// bash's arithmetic and `[[`; it is conservative where it is unsure, since a misread
/// can at worst turn one word into several (an expansion is never run as code).
#[derive(Debug, Clone)]
pub struct ScriptScanner {
    frames: Vec<Frame>,
    pending_heredocs: Vec<Heredoc>,
    /// The last character was an unescaped `\` (it escapes whatever comes next).
    escaped: bool,
    /// The last character was a `$` that began nothing yet.
    dollar: bool,
    /// The next character starts a word (for `#` comments, `((` and `[[`).
    word_start: bool,
    /// The heredoc line read so far, and whether a value stands in it.
    line: String,
    line_has_value: bool,
}

impl Default for ScriptScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptScanner {
    /// A scanner at the start of a script.
    pub fn new() -> Self {
        Self {
            frames: vec![Frame::Code {
                substitution: false,
                depth: 0,
            }],
            pending_heredocs: Vec::new(),
            escaped: false,
            dollar: false,
            word_start: true,
            line: String::new(),
            line_has_value: false,
        }
    }

    /// Where a value placed at the current position stands, or why it cannot stand there.
    pub fn value(&mut self) -> Result<Placement, UnsafePlacement> {
        let placement = self.placement();
        self.escaped = false;
        self.dollar = false;
        self.word_start = false;
        if matches!(self.top(), Frame::HeredocBody(_)) {
            self.line_has_value = true;
        }
        if let Some(Frame::HeredocDelimiter(word)) = self.frames.last_mut() {
            word.started = true;
        }
        placement
    }

    fn placement(&self) -> Result<Placement, UnsafePlacement> {
        if self.escaped {
            return Err(UnsafePlacement {
                reason: "a template right after `\\` in a script: the backslash would quote the start of the value's expansion",
                help: "remove the backslash: the value arrives as it is, with no escaping needed",
            });
        }
        if self.dollar {
            return Err(UnsafePlacement {
                reason: "a template right after `$` in a script",
                help: "a value cannot name a shell variable; if a `$` should precede the value, write it as `\\$`",
            });
        }
        for frame in &self.frames {
            match frame {
                Frame::Backtick => {
                    return Err(UnsafePlacement {
                        reason: "a template inside backticks in a script",
                        help: "write the command substitution as $(...): values inside it are safe",
                    });
                }
                Frame::Arithmetic { .. } | Frame::Test => {
                    return Err(UnsafePlacement {
                        reason: "a template inside shell arithmetic ($((...)), ((...)) or [[ ]]) in a script: bash evaluates the value's text as code there",
                        help: "compute outside the shell (jq in `with` or `outputs`), or compare with test: [ {{...}} -eq 3 ]",
                    });
                }
                Frame::Parameter { .. } => {
                    return Err(UnsafePlacement {
                        reason: "a template inside ${...} in a script",
                        help: "assign the value to a shell variable first (v={{...}}) and use ${v:-default}",
                    });
                }
                _ => {}
            }
        }
        match self.top() {
            Frame::Code { .. } => Ok(Placement::Word),
            Frame::DoubleQuoted | Frame::Comment => Ok(Placement::Quoted),
            Frame::HeredocBody(heredoc) if !heredoc.quoted => Ok(Placement::Quoted),
            Frame::HeredocBody(_) => Err(UnsafePlacement {
                reason: "a template inside a heredoc with a quoted delimiter (<<'EOF') in a script: the shell expands nothing there",
                help: "unquote the delimiter (<<EOF), and write the body's own `$`, backquotes and backslashes as `\\$`, `\\``, `\\\\`",
            }),
            Frame::SingleQuoted => Err(UnsafePlacement {
                reason: "a template inside single quotes in a script: the shell expands nothing there",
                help: "use double quotes (\"text {{...}}\"); if the quotes hold a program for another tool (awk, sed, jq, sh -c), pass the value as its argument or variable instead (awk -v job={{...}} '...')",
            }),
            Frame::HeredocDelimiter(_) => Err(UnsafePlacement {
                reason: "a template in a heredoc delimiter in a script",
                help: "write the delimiter literally (<<EOF)",
            }),
            Frame::Backtick | Frame::Arithmetic { .. } | Frame::Test | Frame::Parameter { .. } => {
                unreachable!("frames checked above")
            }
        }
    }

    /// Read a piece of script text.
    pub fn text(&mut self, text: &str) {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            i += self.step(chars[i], &chars[i + 1..]);
        }
    }

    fn top(&self) -> &Frame {
        // The bottom frame is never popped.
        self.frames.last().unwrap_or(&Frame::Code {
            substitution: false,
            depth: 0,
        })
    }

    fn pop(&mut self) {
        if self.frames.len() > 1 {
            self.frames.pop();
        }
    }

    /// Read one character, with what follows it in the same piece; returns how many
    /// characters were used.
    fn step(&mut self, c: char, next: &[char]) -> usize {
        let escaped = std::mem::take(&mut self.escaped);
        // A `$` only matters right before a value.
        self.dollar = false;
        if matches!(self.top(), Frame::HeredocBody(_)) {
            return self.heredoc_body(c, next, escaped);
        }
        match self.frames.last_mut() {
            Some(Frame::HeredocDelimiter(word)) => {
                if Self::delimiter(word, c, escaped) {
                    self.escaped = word.escaped;
                    return 1;
                }
                // The word ended: it is the delimiter of the next heredoc; `c` is code again.
                let word = std::mem::take(word);
                self.pending_heredocs.push(Heredoc {
                    delimiter: word.text,
                    quoted: word.quoted,
                    strip_tabs: word.strip_tabs,
                });
                self.pop();
                return self.step(c, next);
            }
            Some(Frame::Comment) => {
                if c == '\n' {
                    self.pop();
                    return self.step(c, next);
                }
                return 1;
            }
            Some(Frame::SingleQuoted) => {
                if c == '\'' {
                    self.pop();
                }
                return 1;
            }
            _ => {}
        }
        if escaped {
            self.word_start = false;
            return 1;
        }
        if c == '\\' {
            self.escaped = true;
            self.word_start = false;
            return 1;
        }
        match self.top().clone() {
            Frame::Code { .. } => self.code(c, next),
            Frame::DoubleQuoted => match c {
                '"' => {
                    self.pop();
                    1
                }
                '$' => self.dollar_sign(next, false),
                '`' => {
                    self.frames.push(Frame::Backtick);
                    1
                }
                _ => 1,
            },
            Frame::Backtick => {
                if c == '`' {
                    self.pop();
                }
                1
            }
            Frame::Parameter { depth } => match c {
                '{' => {
                    self.set_depth(depth + 1);
                    1
                }
                '}' if depth == 0 => {
                    self.pop();
                    1
                }
                '}' => {
                    self.set_depth(depth - 1);
                    1
                }
                '"' => {
                    self.frames.push(Frame::DoubleQuoted);
                    1
                }
                '\'' => {
                    self.frames.push(Frame::SingleQuoted);
                    1
                }
                '`' => {
                    self.frames.push(Frame::Backtick);
                    1
                }
                '$' => self.dollar_sign(next, false),
                _ => 1,
            },
            Frame::Arithmetic { depth } => match c {
                '(' => {
                    self.set_depth(depth + 1);
                    1
                }
                ')' if depth == 0 && next.first() == Some(&')') => {
                    self.pop();
                    2
                }
                ')' => {
                    self.set_depth(depth.saturating_sub(1));
                    1
                }
                '$' => self.dollar_sign(next, false),
                '`' => {
                    self.frames.push(Frame::Backtick);
                    1
                }
                _ => 1,
            },
            Frame::Test => match c {
                ']' if next.first() == Some(&']') => {
                    self.pop();
                    2
                }
                '"' => {
                    self.frames.push(Frame::DoubleQuoted);
                    1
                }
                '\'' => {
                    self.frames.push(Frame::SingleQuoted);
                    1
                }
                '$' => self.dollar_sign(next, false),
                _ => 1,
            },
            Frame::Comment
            | Frame::SingleQuoted
            | Frame::HeredocDelimiter(_)
            | Frame::HeredocBody(_) => 1,
        }
    }

    fn set_depth(&mut self, new: usize) {
        if let Some(
            Frame::Code { depth, .. } | Frame::Parameter { depth } | Frame::Arithmetic { depth },
        ) = self.frames.last_mut()
        {
            *depth = new;
        }
    }

    /// A `$` in code, double quotes, `${...}` or arithmetic: what it begins.
    fn dollar_sign(&mut self, next: &[char], ansi_quote: bool) -> usize {
        match next {
            ['(', '(', ..] => {
                self.frames.push(Frame::Arithmetic { depth: 0 });
                3
            }
            ['(', ..] => {
                self.frames.push(Frame::Code {
                    substitution: true,
                    depth: 0,
                });
                self.word_start = true;
                2
            }
            ['{', ..] => {
                self.frames.push(Frame::Parameter { depth: 0 });
                2
            }
            // bash's $'...': backslash escapes, no expansion; as single quotes for values.
            ['\'', ..] if ansi_quote => {
                self.frames.push(Frame::SingleQuoted);
                2
            }
            _ => {
                self.dollar = true;
                1
            }
        }
    }

    fn code(&mut self, c: char, next: &[char]) -> usize {
        let word_start = std::mem::replace(&mut self.word_start, false);
        let Frame::Code {
            substitution,
            depth,
        } = self.top().clone()
        else {
            return 1;
        };
        match c {
            '\'' => self.frames.push(Frame::SingleQuoted),
            '"' => self.frames.push(Frame::DoubleQuoted),
            '`' => self.frames.push(Frame::Backtick),
            '$' => return self.dollar_sign(next, true),
            '#' if word_start => self.frames.push(Frame::Comment),
            '(' if word_start && next.first() == Some(&'(') => {
                self.frames.push(Frame::Arithmetic { depth: 0 });
                return 2;
            }
            '[' if word_start
                && next.first() == Some(&'[')
                && next.get(1).is_none_or(|c| c.is_whitespace()) =>
            {
                self.frames.push(Frame::Test);
                return 2;
            }
            '<' if next.first() == Some(&'<') => {
                // `<<<` is bash's here-string: a plain word follows.
                if next.get(1) == Some(&'<') {
                    self.word_start = true;
                    return 3;
                }
                let strip_tabs = next.get(1) == Some(&'-');
                self.frames.push(Frame::HeredocDelimiter(DelimiterWord {
                    strip_tabs,
                    ..DelimiterWord::default()
                }));
                return if strip_tabs { 3 } else { 2 };
            }
            '(' => {
                self.set_depth(depth + 1);
                self.word_start = true;
            }
            ')' if substitution && depth == 0 => self.pop(),
            ')' => {
                self.set_depth(depth.saturating_sub(1));
                self.word_start = true;
            }
            '\n' => {
                self.word_start = true;
                if !self.pending_heredocs.is_empty() {
                    let heredoc = self.pending_heredocs.remove(0);
                    self.frames.push(Frame::HeredocBody(heredoc));
                    self.line.clear();
                    self.line_has_value = false;
                }
            }
            c if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '<' | '>') => {
                self.word_start = true;
            }
            _ => {}
        }
        1
    }

    /// One character of a heredoc delimiter word; false when the word has ended before it.
    fn delimiter(word: &mut DelimiterWord, c: char, escaped: bool) -> bool {
        word.escaped = false;
        if escaped {
            word.text.push(c);
            word.started = true;
            return true;
        }
        if let Some(q) = word.quote {
            if c == q {
                word.quote = None;
            } else if c == '\\' && q == '"' {
                word.escaped = true;
            } else {
                word.text.push(c);
            }
            return true;
        }
        match c {
            ' ' | '\t' if !word.started => true,
            '\'' | '"' => {
                word.quote = Some(c);
                word.quoted = true;
                word.started = true;
                true
            }
            '\\' => {
                word.quoted = true;
                word.escaped = true;
                word.started = true;
                true
            }
            c if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '<' | '>' | '(' | ')') => {
                !word.started && c != '\n'
            }
            c => {
                word.text.push(c);
                word.started = true;
                true
            }
        }
    }

    fn heredoc_body(&mut self, c: char, next: &[char], escaped: bool) -> usize {
        let Frame::HeredocBody(heredoc) = self.top().clone() else {
            return 1;
        };
        if c == '\n' {
            let line = if heredoc.strip_tabs {
                self.line.trim_start_matches('\t')
            } else {
                self.line.as_str()
            };
            let ends = !self.line_has_value && line == heredoc.delimiter;
            self.line.clear();
            self.line_has_value = false;
            if ends {
                self.pop();
                self.word_start = true;
                if !self.pending_heredocs.is_empty() {
                    let heredoc = self.pending_heredocs.remove(0);
                    self.frames.push(Frame::HeredocBody(heredoc));
                }
            }
            return 1;
        }
        self.line.push(c);
        if heredoc.quoted || escaped {
            return 1;
        }
        match c {
            '\\' => {
                self.escaped = true;
                1
            }
            '`' => {
                self.frames.push(Frame::Backtick);
                1
            }
            '$' => {
                let used = self.dollar_sign(next, false);
                self.line.extend(&next[..used - 1]);
                used
            }
            _ => 1,
        }
    }
}

/// Quote `value` so that a POSIX shell reads it back as exactly one word, unchanged.
///
/// Only for showing a command to a person; scripts get values through the environment.
/// Single quotes disable every shell expansion, and the only character they cannot
/// contain, `'`, is written as `'\''` (close, escaped quote, reopen). Words made only of
/// characters that are never special are left bare.
pub fn quote(value: &str) -> std::borrow::Cow<'_, str> {
    let never_special = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '+' | '@' | '%' | '=')
    };
    if !value.is_empty() && value.chars().all(never_special) {
        return std::borrow::Cow::Borrowed(value);
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
    std::borrow::Cow::Owned(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The placement of each `@` in `script` (a stand-in for a value).
    fn placements(script: &str) -> Vec<Result<Placement, &'static str>> {
        let mut scanner = ScriptScanner::new();
        let mut found = Vec::new();
        for (i, piece) in script.split('@').enumerate() {
            if i > 0 {
                found.push(scanner.value().map_err(|e| e.reason));
            }
            scanner.text(piece);
        }
        found
    }

    fn word() -> Result<Placement, &'static str> {
        Ok(Placement::Word)
    }

    fn quoted() -> Result<Placement, &'static str> {
        Ok(Placement::Quoted)
    }

    #[test]
    fn words_quotes_and_substitutions() {
        assert_eq!(placements("echo @ a=@ x@y"), vec![word(), word(), word()]);
        assert_eq!(placements("echo \"a @ b\" @"), vec![quoted(), word()]);
        assert_eq!(placements("echo \"$(cat @)\""), vec![word()]);
        assert_eq!(placements("x=$(printf '%s' @ | tr a b)"), vec![word()]);
        assert_eq!(placements("marker=${TMPDIR:-/tmp}/x-@"), vec![word()]);
        assert_eq!(
            placements("echo 'it''s' @ # note @\necho @"),
            vec![word(), quoted(), word()]
        );
        assert_eq!(placements("echo a#@"), vec![word()]);
        assert_eq!(placements("echo \"\\\"\" @"), vec![word()]);
        assert_eq!(placements("echo \\' @"), vec![word()]);
    }

    #[test]
    fn heredocs() {
        assert_eq!(
            placements("cat <<EOF\nhi @ \"@\" '@'\nEOF\necho @"),
            vec![quoted(), quoted(), quoted(), word()]
        );
        assert_eq!(
            placements("cat <<-EOF >f\n\thi @\n\tEOF\necho @"),
            vec![quoted(), word()]
        );
        assert_eq!(placements("cat <<'EOF'\n@\nEOF\necho @").len(), 2);
        assert!(placements("cat <<'EOF'\n@\nEOF\necho @")[0].is_err());
        assert_eq!(placements("cat <<'EOF'\n@\nEOF\necho @")[1], word());
        assert!(placements("cat <<\"E\"\n@\nE\n")[0].is_err());
        assert!(placements("cat <<\\E\n@\nE\n")[0].is_err());
        assert!(placements("cat <<@\nx\n")[0].is_err());
        assert_eq!(
            placements("cat <<A <<B\na @\nA\nb @\nB\n@"),
            vec![quoted(), quoted(), word()]
        );
        assert_eq!(placements("cat <<< @"), vec![word()]);
        assert_eq!(
            placements("x=$(cat <<EOF\n@\nEOF\n)\necho @"),
            vec![quoted(), word()]
        );
    }

    #[test]
    fn unsafe_places() {
        for script in [
            "echo '@'",
            "echo `echo @`",
            "echo \"`echo @`\"",
            "echo $((1 + @))",
            "(( @ > 1 ))",
            "[[ @ -eq 1 ]]",
            "echo ${x:-@}",
            "echo \\@",
            "echo \"\\@\"",
            "echo $@",
            "echo \"$@\"",
            "echo $'@'",
        ] {
            assert!(placements(script)[0].is_err(), "{script}");
        }
        // What follows an unsafe place is read normally again.
        assert_eq!(placements("echo '@' @")[1], word());
        assert_eq!(placements("echo $((1+2)) @")[0], word());
        assert_eq!(placements("[ a = b ] && [[ -n x ]] && echo @")[0], word());
    }

    #[test]
    fn expansions_for_each_placement() {
        assert_eq!(Placement::Word.expansion("RUNBOOK_V1"), "\"${RUNBOOK_V1}\"");
        assert_eq!(Placement::Quoted.expansion("RUNBOOK_V2"), "${RUNBOOK_V2}");
        assert_eq!(variable_name(0), "RUNBOOK_V1");
        assert!(is_value_variable("RUNBOOK_V12"));
        assert!(!is_value_variable("RUNBOOK_V"));
        assert!(!is_value_variable("RUNBOOK_VERSION"));
    }

    #[test]
    fn quote_is_for_people() {
        assert_eq!(quote("orders-2024.v1"), "orders-2024.v1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
