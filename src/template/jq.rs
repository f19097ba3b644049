//! jq expressions, compiled and run by jaq (core + std + json definitions).
//!
//! Fields such as `when`, `for_each` and runbook `outputs` are jq over the context
//! (`.` is the context). Fields `outputs` and `until` of an action are jq over the action's
//! result (`.` is the result) and reach the context through the global variable `$ctx`.
//! `$ctx` is declared in every program so one compiler serves both.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use jaq_core::box_iter::box_once;
use jaq_core::compile::Undefined;
use jaq_core::data::JustLut;
use jaq_core::load::lex::{self, StrPart};
use jaq_core::load::parse::{self, BinaryOp, Def, Pattern, Term};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::Fun;
use jaq_core::path::Part;
use jaq_core::{Bind, Compiler, Ctx, Cv, DataT, Native, RunPtr, ValXs, Vars};
use jaq_json::{Num, Val};
use serde_json::Value;

use super::{MAX_NESTING, Reference, SyntaxError, char_span, close_enough};

/// The global variable through which `outputs` and `until` programs read the context.
pub const CTX_VAR: &str = "$ctx";

type Data = JustLut<Val>;

/// What `.` is bound to when a program starts, which decides which of its paths read the
/// context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `.` is the context (`when`, `for_each`, runbook outputs).
    Context,
    /// `.` is an action's result; the context is only reachable as `$ctx`
    /// (`outputs` and `until` of an action).
    Result,
}

/// A compiled jq program, ready to run many times (once per item, once per poll).
pub struct Program {
    filter: jaq_core::Filter<Data>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program").finish_non_exhaustive()
    }
}

/// Compile a jq program and report the paths it reads from the context, or every
/// compile error.
///
/// A validator calls this at load time: syntax errors and undefined names come back with
/// byte spans, and each [`Reference`] can be checked against the declared inputs, steps
/// and outputs. See [`references`] for which paths count.
pub fn check(src: &str, root: Root) -> Result<Vec<Reference>, Vec<SyntaxError>> {
    compile(src)?;
    Ok(references(src, root))
}

/// [`check`] many programs at once: the result for each item is exactly what
/// `check(src, root)` returns for it, in the same order.
///
/// Compiling a program means compiling jaq's whole prelude (`map`, `select`, …) along with
/// it, which costs far more than the program itself. Here every program that parses is
/// instead appended to the prelude as a definition of its own, and the prelude is compiled
/// once per batch of 500 programs. Each program is lexed and parsed on its own,
/// so comments, local `def`s and names cannot leak from one program into another, and every
/// compile error points into exactly one program's text. Programs that do not parse (or
/// start with a module header) take the path of [`check`], and a batch whose errors cannot
/// all be attributed falls back to [`check`] for each of its programs.
pub fn check_many(items: &[(&str, Root)]) -> Vec<Result<Vec<Reference>, Vec<SyntaxError>>> {
    check_in_batches(items, CHECK_BATCH)
}

/// How many programs [`check_many`] compiles together with one copy of the prelude.
const CHECK_BATCH: usize = 500;

/// The name under which [`check_many`] appends a program to the prelude. It is not an
/// identifier the lexer accepts, so no program can call it (or clash with it); every
/// program gets the same name, each definition shadowing the previous one unseen.
const BATCH_DEF: &str = "!runbook_check";

type Checked = Result<Vec<Reference>, Vec<SyntaxError>>;

fn check_in_batches(items: &[(&str, Root)], batch: usize) -> Vec<Checked> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch.max(1)) {
        out.extend(check_batch(chunk));
    }
    out
}

fn check_batch(items: &[(&str, Root)]) -> Vec<Checked> {
    // A copy of every program in one buffer, one byte apart: the callers' strings may be
    // the same or overlap (slices of one file), and errors are attributed by address.
    let mut buf = String::with_capacity(items.iter().map(|(src, _)| src.len() + 1).sum());
    let mut ranges = Vec::with_capacity(items.len());
    for (src, _) in items {
        let start = buf.len();
        buf.push_str(src);
        ranges.push(start..buf.len());
        buf.push('\n');
    }

    let mut results: Vec<Option<Checked>> = items.iter().map(|_| None).collect();
    // The programs compiled together, by index into `items`, with their parsed bodies.
    let mut batched = Vec::new();
    let mut defs = Vec::new();
    for (i, ((orig, root), range)) in items.iter().zip(&ranges).enumerate() {
        let src = &buf[range.clone()];
        if let Err(e) = check_nesting(src) {
            results[i] = Some(Err(vec![e]));
            continue;
        }
        match parse_body(src) {
            Some(body) => {
                batched.push(i);
                defs.push(Def {
                    name: BATCH_DEF,
                    args: Vec::new(),
                    body,
                });
            }
            // Syntax errors do not depend on the prelude: report them as `check` does,
            // without compiling it. Anything else (a module header) is left to `check`.
            None => {
                results[i] = Some(match load_only(src) {
                    Err(errs) => Err(errs),
                    Ok(()) => check(orig, *root),
                });
            }
        }
    }

    if !batched.is_empty() {
        let arena = Arena::default();
        let per_item = compile_batch(&arena, defs).and_then(|errs| {
            // Each error names a slice of exactly one program's text.
            let mut per_item: Vec<Vec<(&str, Undefined)>> =
                batched.iter().map(|_| Vec::new()).collect();
            let base = buf.as_ptr() as usize;
            for (name, undefined) in errs {
                let start = (name.as_ptr() as usize).checked_sub(base).ok_or(())?;
                let end = start.checked_add(name.len()).ok_or(())?;
                let at = batched.partition_point(|&i| ranges[i].end < start);
                let owner = batched.get(at).ok_or(())?;
                let range = &ranges[*owner];
                if !(range.start <= start && end <= range.end) {
                    return Err(());
                }
                per_item[at].push((name, undefined));
            }
            Ok(per_item)
        });
        match per_item {
            Ok(per_item) => {
                for (i, errs) in batched.iter().zip(per_item) {
                    let (orig, root) = items[*i];
                    results[*i] = Some(if errs.is_empty() {
                        Ok(references(orig, root))
                    } else {
                        Err(compile_errors(&buf[ranges[*i].clone()], errs))
                    });
                }
            }
            // Correctness first: what cannot be attributed is checked one by one.
            Err(()) => {
                for i in &batched {
                    let (orig, root) = items[*i];
                    results[*i] = Some(check(orig, root));
                }
            }
        }
    }

    results
        .into_iter()
        .zip(items)
        .map(|(result, (orig, root))| result.unwrap_or_else(|| check(orig, *root)))
        .collect()
}

/// The term a program consists of, when it lexes and parses as one and has no module
/// header (`module`, `include`, `import`), so that it is exactly what
/// `Loader::load` would make the body of its main module.
fn parse_body(src: &str) -> Option<Term<&str>> {
    let tokens = lex::Lexer::new(src).lex().ok()?;
    if matches!(
        tokens.first(),
        Some(lex::Token("module" | "include" | "import", _))
    ) {
        return None;
    }
    parse::Parser::new(&tokens).parse(|p| p.term()).ok()
}

/// The syntax errors of a program as [`compile`] reports them. They come from lexing and
/// parsing the program alone, so no prelude is needed to find them.
fn load_only(src: &str) -> Result<(), Vec<SyntaxError>> {
    let arena = Arena::default();
    Loader::new(core::iter::empty())
        .load(
            &arena,
            File {
                code: src,
                path: (),
            },
        )
        .map(drop)
        .map_err(|errs| load_errors(src, errs))
}

/// Compile the prelude followed by `defs`, as [`compile`] compiles the prelude before a
/// program: every undefined name in order, or `Err` if the batch failed in another way.
fn compile_batch<'s>(
    arena: &'s Arena,
    defs: Vec<Def<&'s str>>,
) -> Result<Vec<(&'s str, Undefined)>, ()> {
    let prelude: Vec<Def<&'s str>> = PRELUDE.iter().cloned().chain(defs).collect();
    let modules = Loader::new(prelude)
        .load(
            arena,
            File {
                code: ".",
                path: (),
            },
        )
        .map_err(drop)?;
    match Compiler::default()
        .with_funs(natives())
        .with_global_vars([CTX_VAR])
        .compile(modules)
    {
        Ok(_) => Ok(Vec::new()),
        Err(errs) => Ok(errs.into_iter().flat_map(|(_file, errs)| errs).collect()),
    }
}

/// Compile a jq program for [`Program::run`].
pub fn compile(src: &str) -> Result<Program, Vec<SyntaxError>> {
    check_nesting(src).map_err(|e| vec![e])?;
    let arena = Arena::default();
    let prelude = PRELUDE.iter().cloned();
    let modules = Loader::new(prelude)
        .load(
            &arena,
            File {
                code: src,
                path: (),
            },
        )
        .map_err(|errs| load_errors(src, errs))?;
    let filter = Compiler::default()
        .with_funs(natives())
        .with_global_vars([CTX_VAR])
        .compile(modules)
        .map_err(|errs| compile_errors(src, errs.into_iter().flat_map(|(_file, errs)| errs)))?;
    Ok(Program { filter })
}

impl Program {
    /// Run the program on `input` with `ctx` bound to `$ctx`; every output in order, or
    /// the first runtime error as a message.
    ///
    /// The message is jq's own and may quote the value that failed: callers that show it
    /// must mask secrets as they do for any other output.
    pub fn run(&self, input: &Value, ctx: &Value) -> Result<Vec<Value>, String> {
        let mut outputs = Vec::new();
        self.each(input, ctx, |value| {
            outputs.push(value);
            true
        })?;
        Ok(outputs)
    }

    /// The first output, or `null` when there is none (jq's convention for a condition or
    /// an output value). Stops after the first output, so `first`-style programs over
    /// long or endless streams still finish.
    pub fn first(&self, input: &Value, ctx: &Value) -> Result<Value, String> {
        let mut first = Value::Null;
        self.each(input, ctx, |value| {
            first = value;
            false
        })?;
        Ok(first)
    }

    /// Feed outputs to `sink` until it returns false or the stream ends.
    /// Like [`Program::first`], with the context already converted: a run keeps its
    /// context as a [`Val`], whose objects are shared, so evaluating does not copy it.
    pub fn first_with(&self, input: Val, ctx: &Val) -> Result<Value, String> {
        let mut first = Value::Null;
        self.each_val(input, ctx.clone(), |value| {
            first = value;
            false
        })?;
        Ok(first)
    }

    fn each(
        &self,
        input: &Value,
        ctx: &Value,
        sink: impl FnMut(Value) -> bool,
    ) -> Result<(), String> {
        self.each_val(to_val(input), to_val(ctx), sink)
    }

    fn each_val(
        &self,
        input: Val,
        ctx: Val,
        mut sink: impl FnMut(Value) -> bool,
    ) -> Result<(), String> {
        let vars = Vars::new([ctx]);
        let outputs = self
            .filter
            .id
            .run((Ctx::<Data>::new(&self.filter.lut, vars), input));
        for output in outputs {
            // Not `jaq_core::unwrap_valr`: on `halt` it calls `std::process::exit`, which
            // would let any runbook expression end the engine.
            let value = output.map_err(|exn| match exn.get_err() {
                Ok(error) => match error.into_val() {
                    Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
                    other => other.to_string(),
                },
                Err(exn) => match exn.get_halt() {
                    Ok(code) => format!("the program called halt (exit code {code})"),
                    Err(_) => "the program ended with an unexpected jaq exception".to_owned(),
                },
            })?;
            if !sink(from_val(&value)) {
                break;
            }
        }
        Ok(())
    }
}

/// The definitions every program may call (`map`, `select`, `test`, …), parsed once.
static PRELUDE: LazyLock<Vec<Def<&'static str>>> = LazyLock::new(|| {
    jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .collect()
});

/// The native filters, minus those that reach outside the pure function a runbook
/// expression must be.
///
/// `debug`, `stderr` and `halt_error` write values to the log; values include secrets.
/// `env` would expose the engine's environment (cloud credentials, tokens) to any runbook.
/// They are replaced rather than removed so that the prelude definitions built on them
/// still compile: logging becomes a no-op and `env` an empty object.
fn natives() -> impl Iterator<Item = Fun<Data>> {
    // Spelled with the projection `V<'a>`, which is what the fn pointer type expects.
    fn no_output<'a>(_: Cv<'a, Data>) -> ValXs<'a, <Data as DataT>::V<'a>> {
        Box::new(core::iter::empty())
    }
    fn empty_env<'a>(_: Cv<'a, Data>) -> ValXs<'a, <Data as DataT>::V<'a>> {
        box_once(Ok(Val::obj(jaq_json::Map::default())))
    }
    let replaced = ["debug_empty", "stderr_empty", "env"];
    let replacements: [Fun<Data>; 3] = [
        (
            "debug_empty",
            jaq_core::native::v(0),
            Native::<Data>::new(no_output as RunPtr<Data>),
        ),
        (
            "stderr_empty",
            jaq_core::native::v(0),
            Native::<Data>::new(no_output as RunPtr<Data>),
        ),
        (
            "env",
            jaq_core::native::v(0),
            Native::<Data>::new(empty_env as RunPtr<Data>),
        ),
    ];
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(move |(name, _, _)| !replaced.contains(name))
        .chain(replacements)
}

// ---------------------------------------------------------------------------------------
// Errors

/// Byte range of `part` within `src`, when `part` is a slice of it (jaq reports errors as
/// slices of the source).
fn slice_span(src: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(src.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= src.len()).then_some(start..end)
}

/// Shorten a token for a message: a whole `( … )` block can be the "found" token.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 24;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn load_errors(src: &str, errs: jaq_core::load::Errors<&str, ()>) -> Vec<SyntaxError> {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_file, error) in errs {
        match error {
            Error::Lex(errs) => {
                for (expect, rest) in errs {
                    // The lexer reports the unread rest of the input; underline its first char.
                    let at = slice_span(src, rest).map_or(src.len(), |s| s.start);
                    let message = match expect {
                        lex::Expect::Delim(open) => match open {
                            "(" => "unclosed `(`: expected `)`".to_owned(),
                            "[" => "unclosed `[`: expected `]`".to_owned(),
                            "{" => "unclosed `{`: expected `}`".to_owned(),
                            _ => "unterminated string: expected `\"`".to_owned(),
                        },
                        lex::Expect::Digit => "expected a digit".to_owned(),
                        lex::Expect::Ident => "expected an identifier".to_owned(),
                        lex::Expect::Escape => "invalid escape sequence in string".to_owned(),
                        lex::Expect::Unicode => {
                            "expected 4 hexadecimal digits of a unicode code point".to_owned()
                        }
                        _ => format!("unexpected character {}", excerpt(rest)),
                    };
                    out.push(SyntaxError::new(message, char_span(src, at), src));
                }
            }
            Error::Parse(errs) => {
                for (expect, found) in errs {
                    let span = slice_span(src, found).unwrap_or(src.len()..src.len());
                    let found = if found.is_empty() {
                        "end of input".to_owned()
                    } else {
                        format!("`{}`", excerpt(found))
                    };
                    let message = format!("expected {}, found {found}", expect.as_str());
                    out.push(SyntaxError::new(message, span, src));
                }
            }
            Error::Io(errs) => {
                for (path, why) in errs {
                    let span = slice_span(src, path).unwrap_or(0..src.len());
                    let message = format!("cannot load module `{path}`: {why}");
                    out.push(SyntaxError::new(message, span, src));
                }
            }
        }
    }
    if out.is_empty() {
        out.push(SyntaxError::new("invalid jq program", 0..src.len(), src));
    }
    out
}

fn compile_errors<'s>(
    src: &str,
    errs: impl IntoIterator<Item = (&'s str, Undefined)>,
) -> Vec<SyntaxError> {
    let mut out = Vec::new();
    for (name, undefined) in errs {
        let span = slice_span(src, name).unwrap_or(0..src.len());
        let message = match undefined {
            Undefined::Var if name == "$__loc__" => "`$__loc__` is not supported".to_owned(),
            Undefined::Var => format!("undefined variable `{name}`{}", suggest_var(name)),
            Undefined::Filter(arity) => format!(
                "undefined function `{name}/{arity}`{}",
                suggest_filter(name, arity)
            ),
            Undefined::Label => format!("undefined label `{name}`"),
            Undefined::Mod => format!("undefined module `{name}`"),
            _ => format!("undefined name `{name}`"),
        };
        out.push(SyntaxError::new(message, span, src));
    }
    out
}

fn suggest_var(name: &str) -> String {
    if strsim::damerau_levenshtein(name, CTX_VAR) <= 1 {
        format!(" (did you mean `{CTX_VAR}`?)")
    } else {
        String::new()
    }
}

fn suggest_filter(name: &str, arity: usize) -> String {
    let best = BUILTINS
        .keys()
        .filter(|(_, a)| *a == arity)
        .map(|(candidate, _)| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= close_enough(name))
        .min();
    match best {
        Some((_, candidate)) => format!(" (did you mean `{candidate}`?)"),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Nesting bound

/// Reject programs whose syntax tree would be deeper than [`MAX_NESTING`] before jaq sees
/// them.
///
/// jaq's lexer, parser, compiler, evaluator and even the tree's destructor recurse once
/// per level; in a debug build each level of brackets costs about 10 KiB of stack while
/// parsing, so about 190 nested parentheses overflow a 2 MiB thread and abort the process.
/// Depth comes from brackets, but equally from flat chains: `1 + 1 + … + 1` and
/// `[1, 1, …, 1]` are left-deep trees, `. | . | … | .` a right-deep one, and `if`, `try`,
/// `reduce` or `def` nest their operands without brackets.
///
/// So this estimates the depth with a scanner of its own (jaq's lexer already recurses):
/// each bracket, `\( … )` interpolation or the top level is a frame, every operator and
/// nesting keyword in a frame counts one level, and a frame is as deep as its count plus
/// its deepest child frame. Brackets inside strings and comments do not count. The
/// estimate over-counts (`{a: 1, b: 2}` counts its comma) but never under-counts.
fn check_nesting(src: &str) -> Result<(), SyntaxError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Open {
        Top,
        Paren,
        Bracket,
        Brace,
        Str,
        Interp,
    }
    struct Frame {
        open: Open,
        /// Operators and keywords counted directly in this frame.
        levels: usize,
        /// Depth of the deepest frame closed inside this one.
        deepest_child: usize,
    }
    impl Frame {
        fn new(open: Open) -> Self {
            Self {
                open,
                levels: 0,
                deepest_child: 0,
            }
        }
        fn depth(&self) -> usize {
            // A string frame is not a level of its own; its interpolations are.
            let own = usize::from(self.open != Open::Str);
            own + self.levels + self.deepest_child
        }
    }
    let too_deep = |at: Range<usize>| {
        SyntaxError::new(
            format!(
                "expression nested too deeply (more than {MAX_NESTING} levels of brackets, \
                 operators and keywords); split it up"
            ),
            at,
            src,
        )
    };
    let close = |stack: &mut Vec<Frame>| {
        if let Some(frame) = stack.pop()
            && let Some(parent) = stack.last_mut()
        {
            parent.deepest_child = parent.deepest_child.max(frame.depth());
        }
    };

    let mut stack = vec![Frame::new(Open::Top)];
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let top = stack.last().map_or(Open::Top, |f| f.open);
        if top == Open::Str {
            match b {
                b'\\' if bytes.get(i + 1) == Some(&b'(') => {
                    stack.push(Frame::new(Open::Interp));
                    i += 1;
                }
                b'\\' => i += 1,
                b'"' => close(&mut stack),
                _ => {}
            }
        } else {
            let mut level = false;
            match b {
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' => stack.push(Frame::new(Open::Str)),
                b'(' => stack.push(Frame::new(Open::Paren)),
                b'[' => stack.push(Frame::new(Open::Bracket)),
                b'{' => stack.push(Frame::new(Open::Brace)),
                b')' | b']' | b'}' => {
                    let closes = matches!(
                        (b, top),
                        (b')', Open::Paren | Open::Interp)
                            | (b']', Open::Bracket)
                            | (b'}', Open::Brace)
                    );
                    // An unbalanced closer is left for jaq to report with a proper message.
                    if closes {
                        close(&mut stack);
                    }
                }
                b'|' | b',' | b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<' | b'>' | b'?' => {
                    level = true;
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = i;
                    while i + 1 < bytes.len()
                        && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
                    {
                        i += 1;
                    }
                    level = matches!(
                        &src[start..=i],
                        "and"
                            | "or"
                            | "as"
                            | "if"
                            | "elif"
                            | "try"
                            | "def"
                            | "label"
                            | "reduce"
                            | "foreach"
                    );
                }
                _ => {}
            }
            if level && let Some(frame) = stack.last_mut() {
                frame.levels += 1;
            }
        }
        // What is open right now is at least this deep (closed children aside, as they are
        // alternatives rather than additions): fail at the spot where it happens.
        let open_depth: usize = stack.iter().map(|f| f.depth() - f.deepest_child).sum();
        if open_depth > MAX_NESTING {
            return Err(too_deep(char_span(src, i)));
        }
        i += 1;
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    // Levels counted after a child closed (`(…) + 1 + 1`) only add up at the end.
    if stack.last().map_or(0, Frame::depth) > MAX_NESTING {
        return Err(too_deep(0..src.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// References

/// The paths `src` reads from the context, in source order; empty if it does not parse.
///
/// A path is a chain of literal keys (`.steps.a.outputs.b`, `.a["b"]`, `.a?`, `.items[0]`)
/// starting either from `$ctx` (anywhere, with either root) or, with [`Root::Context`],
/// from `.` while `.` is still the program's input. Chains stop at the first key that is
/// not a literal (`.steps[$id]` reads `["steps"]`).
///
/// `.` stays the input across `,`, arithmetic, comparisons, `and`/`or`, `//`, `if`
/// conditions and branches, `try` bodies, object and array construction, string
/// interpolation, `reduce`/`foreach` sources and initial values, index expressions, the
/// right side of `… as $x |`, and the arguments that a builtin evaluates on its own input
/// (`select(f)`, `test(re)`, every `$arg`). After `l | r`, `.` inside `r` is the output of
/// `l`: when `l` is itself a literal chain (`.steps.a | .outputs.b`, `$ctx | .inputs`) the
/// paths in `r` are reported under it, otherwise `r` is only searched for `$ctx`.
/// Bodies of `def`, `|=` right sides, `catch` handlers and `reduce`/`foreach` updates see
/// other inputs and are only searched for `$ctx`, and a `$ctx` rebound by `as` or a
/// parameter no longer counts.
pub fn references(src: &str, root: Root) -> Vec<Reference> {
    if check_nesting(src).is_err() {
        return Vec::new();
    }
    let Ok(tokens) = lex::Lexer::new(src).lex() else {
        return Vec::new();
    };
    let Ok(term) = parse::Parser::new(&tokens).parse(|p| p.term()) else {
        return Vec::new();
    };
    let mut walk = Walk {
        src,
        refs: Vec::new(),
        locals: Vec::new(),
    };
    let input = match root {
        Root::Context => Some(Vec::new()),
        Root::Result => None,
    };
    walk.term(&term, input.as_deref(), true);
    walk.refs.sort_by_key(|r| (r.span.start, r.span.end));
    walk.refs
}

/// Which arguments of a builtin run on the builtin's own input, by (name, arity).
///
/// `$`-parameters always do (jq evaluates them on the caller's input); filter parameters
/// only for the builtins listed in [`SAME_INPUT_FILTER_ARGS`], read off jaq's definitions.
static BUILTINS: LazyLock<HashMap<(&'static str, usize), Vec<bool>>> = LazyLock::new(|| {
    let listed = |name: &str, arity: usize, i: usize| {
        SAME_INPUT_FILTER_ARGS
            .iter()
            .any(|(n, a, args)| *n == name && *a == arity && args.contains(&i))
    };
    let mut builtins = HashMap::new();
    for (name, binds, _) in natives() {
        let args = binds
            .iter()
            .enumerate()
            .map(|(i, bind)| matches!(bind, Bind::Var(())) || listed(name, binds.len(), i))
            .collect();
        builtins.insert((name, binds.len()), args);
    }
    // Definitions shadow natives of the same name and arity, as in jaq's compiler.
    for def in PRELUDE.iter() {
        let arity = def.args.len();
        let args = def
            .args
            .iter()
            .enumerate()
            .map(|(i, arg)| arg.starts_with('$') || listed(def.name, arity, i))
            .collect();
        builtins.insert((def.name, arity), args);
    }
    builtins
});

/// Filter arguments that builtins evaluate on their own input: (name, arity, indices).
/// For example `def select(f): if f then . else empty end` runs `f` on its input, while
/// `map(f)` runs `f` on each element.
const SAME_INPUT_FILTER_ARGS: &[(&str, usize, &[usize])] = &[
    ("select", 1, &[0]),
    ("error", 1, &[0]),
    ("debug", 1, &[0]),
    ("del", 1, &[0]),
    ("path", 1, &[0]),
    ("path_value", 1, &[0]),
    ("pick", 1, &[0]),
    ("first", 1, &[0]),
    ("last", 1, &[0]),
    ("limit", 2, &[1]),
    ("skip", 2, &[1]),
    ("nth", 1, &[0]),
    ("nth", 2, &[0, 1]),
    ("isempty", 1, &[0]),
    ("all", 2, &[0]),
    ("any", 2, &[0]),
    ("add", 1, &[0]),
    ("range", 1, &[0]),
    ("range", 2, &[0, 1]),
    ("in", 1, &[0]),
    ("inside", 1, &[0]),
    ("test", 1, &[0]),
    ("test", 2, &[0, 1]),
    ("match", 1, &[0]),
    ("match", 2, &[0, 1]),
    ("capture", 1, &[0]),
    ("capture", 2, &[0, 1]),
    ("scan", 1, &[0]),
    ("scan", 2, &[0, 1]),
    ("splits", 1, &[0]),
    ("splits", 2, &[0, 1]),
    ("split", 2, &[0, 1]),
    ("sub", 2, &[0]),
    ("sub", 3, &[0, 2]),
    ("gsub", 2, &[0]),
    ("gsub", 3, &[0, 2]),
];

/// Where a chain of keys starts.
enum Base {
    /// `.`, the current input.
    Input,
    /// `$ctx`, the context.
    Ctx,
}

/// A path expression split into its base, its leading literal keys, and the index
/// expressions it also evaluates.
struct Chain<'t, 's> {
    base: Base,
    keys: Vec<String>,
    span: Option<Range<usize>>,
    /// True when every part was a literal key, so the chain's value is the context at
    /// `keys` (and a following `|` keeps tracking it).
    complete: bool,
    /// Index and slice expressions that were not literal keys, to be walked as terms.
    rest: Vec<&'t Term<&'s str>>,
}

struct Walk<'s> {
    src: &'s str,
    refs: Vec<Reference>,
    /// Functions defined by the program in the current scope, by (name, arity): a call to
    /// one of them is not a builtin, whatever its name.
    locals: Vec<(&'s str, usize)>,
}

impl<'s> Walk<'s> {
    /// Walk `t`, where `input` is the context path `.` is bound to (`None`: not the
    /// context) and `ctx_live` says whether `$ctx` still means the context.
    fn term(&mut self, t: &Term<&'s str>, input: Option<&[String]>, ctx_live: bool) {
        match t {
            Term::Id
            | Term::Recurse
            | Term::Num(_)
            | Term::Var(_)
            | Term::Break(_)
            | Term::Arr(None) => {}
            Term::Path(..) | Term::TryCatch(_, None) => {
                if let Some(chain) = self.chain(t, ctx_live) {
                    self.report(&chain, input);
                    for part in chain.rest {
                        self.term(part, input, ctx_live);
                    }
                } else if let Term::Path(head, path) = t {
                    self.term(head, input, ctx_live);
                    for (part, _) in &path.0 {
                        self.part(part, input, ctx_live);
                    }
                } else if let Term::TryCatch(body, None) = t {
                    self.term(body, input, ctx_live);
                }
            }
            Term::TryCatch(body, Some(catch)) => {
                self.term(body, input, ctx_live);
                // The handler's input is the error.
                self.term(catch, None, ctx_live);
            }
            Term::Str(_, parts) => {
                for part in parts {
                    if let StrPart::Term(t) = part {
                        self.term(t, input, ctx_live);
                    }
                }
            }
            Term::Arr(Some(t)) | Term::Neg(t) | Term::Label(_, t) => self.term(t, input, ctx_live),
            Term::Obj(entries) => {
                for (key, value) in entries {
                    match (key, value) {
                        (Term::Var(_), None) => {}
                        // `{a}` and `{"a"}` are `{a: .a}`.
                        (key, None) => match self.literal_key(key) {
                            Some((name, span)) => {
                                if let Some(prefix) = input {
                                    let mut path = prefix.to_vec();
                                    path.push(name);
                                    let span = span.unwrap_or(0..self.src.len());
                                    self.push(path, self.widen(span));
                                }
                            }
                            None => self.term(key, input, ctx_live),
                        },
                        (key, Some(value)) => {
                            self.term(key, input, ctx_live);
                            self.term(value, input, ctx_live);
                        }
                    }
                }
            }
            Term::BinOp(l, op, r) => match op {
                BinaryOp::Pipe(None) => {
                    self.term(l, input, ctx_live);
                    let next = self.value_path(l, input, ctx_live);
                    self.term(r, next.as_deref(), ctx_live);
                }
                BinaryOp::Pipe(Some(pattern)) => {
                    self.term(l, input, ctx_live);
                    self.pattern(pattern, ctx_live);
                    let live = ctx_live && !binds_ctx(pattern);
                    self.term(r, input, live);
                }
                BinaryOp::Update => {
                    self.term(l, input, ctx_live);
                    self.term(r, None, ctx_live);
                }
                _ => {
                    self.term(l, input, ctx_live);
                    self.term(r, input, ctx_live);
                }
            },
            Term::Fold(_, source, pattern, args) => {
                self.term(source, input, ctx_live);
                self.pattern(pattern, ctx_live);
                let live = ctx_live && !binds_ctx(pattern);
                for (i, arg) in args.iter().enumerate() {
                    if i == 0 {
                        // The initial value runs on the fold's input, outside the binding.
                        self.term(arg, input, ctx_live);
                    } else {
                        self.term(arg, None, live);
                    }
                }
            }
            Term::IfThenElse(branches, otherwise) => {
                for (cond, then) in branches {
                    self.term(cond, input, ctx_live);
                    self.term(then, input, ctx_live);
                }
                if let Some(otherwise) = otherwise {
                    self.term(otherwise, input, ctx_live);
                }
            }
            Term::Def(defs, body) => {
                let scope = self.locals.len();
                self.locals
                    .extend(defs.iter().map(|def| (def.name, def.args.len())));
                for def in defs {
                    let live = ctx_live && !def.args.contains(&CTX_VAR);
                    self.term(&def.body, None, live);
                }
                self.term(body, input, ctx_live);
                self.locals.truncate(scope);
            }
            Term::Call(name, args) => {
                let same_input = self.same_input_args(name, args.len());
                for (i, arg) in args.iter().enumerate() {
                    let arg_input = if same_input.get(i).copied().unwrap_or(false) {
                        input
                    } else {
                        None
                    };
                    self.term(arg, arg_input, ctx_live);
                }
            }
        }
    }

    fn part(&mut self, part: &Part<Term<&'s str>>, input: Option<&[String]>, ctx_live: bool) {
        match part {
            Part::Index(t) => self.term(t, input, ctx_live),
            Part::Range(from, upto) => {
                for t in from.iter().chain(upto) {
                    self.term(t, input, ctx_live);
                }
            }
        }
    }

    /// Walk the key expressions of an object pattern (`. as {(f): $x}`); which input they
    /// see is not worth tracking, but they may use `$ctx`.
    fn pattern(&mut self, pattern: &Pattern<&'s str>, ctx_live: bool) {
        match pattern {
            Pattern::Var(_) => {}
            Pattern::Arr(items) => {
                for item in items {
                    self.pattern(item, ctx_live);
                }
            }
            Pattern::Obj(entries) => {
                for (key, value) in entries {
                    self.term(key, None, ctx_live);
                    self.pattern(value, ctx_live);
                }
            }
        }
    }

    fn same_input_args(&self, name: &str, arity: usize) -> Vec<bool> {
        if self.locals.iter().any(|&(n, a)| n == name && a == arity) {
            return Vec::new();
        }
        BUILTINS.get(&(name, arity)).cloned().unwrap_or_default()
    }

    /// The context path that `t` evaluates to, when it is `.`, `$ctx` or a complete
    /// literal chain from either: what `.` is on the right of `t | …`.
    fn value_path(
        &self,
        t: &Term<&'s str>,
        input: Option<&[String]>,
        ctx_live: bool,
    ) -> Option<Vec<String>> {
        match t {
            Term::Id => input.map(<[String]>::to_vec),
            Term::Var(name) if *name == CTX_VAR && ctx_live => Some(Vec::new()),
            Term::Path(..) | Term::TryCatch(_, None) => {
                let chain = self.chain(t, ctx_live)?;
                if !chain.complete {
                    return None;
                }
                let mut path = match chain.base {
                    Base::Input => input?.to_vec(),
                    Base::Ctx => Vec::new(),
                };
                path.extend(chain.keys);
                Some(path)
            }
            _ => None,
        }
    }

    /// Split a path expression into base and literal keys, if it starts at `.` or `$ctx`.
    fn chain<'t>(&self, t: &'t Term<&'s str>, ctx_live: bool) -> Option<Chain<'t, 's>> {
        // `a.b[c]` nests as Path(Path(a, [b]), [c]) when brackets follow a parenthesised
        // head, and `x?` wraps x in a try: unwrap both, outermost parts last.
        let mut paths = Vec::new();
        let mut head = t;
        loop {
            match head {
                Term::Path(inner, path) => {
                    paths.push(path);
                    head = inner;
                }
                Term::TryCatch(inner, None) => head = inner,
                _ => break,
            }
        }
        let (base, mut span) = match head {
            Term::Id => (Base::Input, None),
            Term::Var(name) if *name == CTX_VAR && ctx_live => {
                (Base::Ctx, slice_span(self.src, name))
            }
            _ => return None,
        };
        let mut chain = Chain {
            base,
            keys: Vec::new(),
            span: None,
            complete: true,
            rest: Vec::new(),
        };
        for (part, _) in paths.iter().rev().flat_map(|path| &path.0) {
            if chain.complete
                && let Part::Index(key) = part
                && let Some((name, key_span)) = self.literal_key(key)
            {
                chain.keys.push(name);
                if let Some(key_span) = key_span {
                    let key_span = self.widen(key_span);
                    span = Some(match span {
                        Some(s) => s.start..key_span.end,
                        None => key_span,
                    });
                }
                continue;
            }
            chain.complete = false;
            match part {
                Part::Index(t) => chain.rest.push(t),
                Part::Range(from, upto) => chain.rest.extend(from.iter().chain(upto)),
            }
        }
        chain.span = span;
        Some(chain)
    }

    fn report(&mut self, chain: &Chain<'_, 's>, input: Option<&[String]>) {
        if chain.keys.is_empty() {
            return;
        }
        let mut path = match chain.base {
            Base::Input => match input {
                Some(prefix) => prefix.to_vec(),
                None => return,
            },
            Base::Ctx => Vec::new(),
        };
        path.extend(chain.keys.iter().cloned());
        let span = chain.span.clone().unwrap_or(0..self.src.len());
        self.push(path, span);
    }

    fn push(&mut self, path: Vec<String>, span: Range<usize>) {
        self.refs.push(Reference { path, span });
    }

    /// A key that is known without running anything: a string without interpolation or
    /// a non-negative integer. Returns the key and, when it can, its span in the source.
    fn literal_key(&self, t: &Term<&'s str>) -> Option<(String, Option<Range<usize>>)> {
        match t {
            Term::Str(None, parts) => {
                let mut key = String::new();
                let mut span: Option<Range<usize>> = None;
                for part in parts {
                    match part {
                        StrPart::Str(s) => {
                            key.push_str(s);
                            if let Some(s) = slice_span(self.src, s) {
                                span = Some(match span {
                                    Some(prev) => prev.start..s.end,
                                    None => s,
                                });
                            }
                        }
                        StrPart::Char(c) => key.push(*c),
                        StrPart::Term(_) => return None,
                    }
                }
                Some((key, span))
            }
            Term::Num(n) => {
                let index: usize = n.parse().ok()?;
                Some((index.to_string(), slice_span(self.src, n)))
            }
            _ => None,
        }
    }

    /// Grow a key's span over the punctuation that belongs to it: the leading `.`, the
    /// quotes and brackets of `.["a"]` (only as many as it opened), and a trailing `?`.
    fn widen(&self, span: Range<usize>) -> Range<usize> {
        let bytes = self.src.as_bytes();
        let (mut start, mut end) = (span.start, span.end);
        let skip_space_left = |mut i: usize| {
            while i > 0 && bytes[i - 1].is_ascii_whitespace() {
                i -= 1;
            }
            i
        };
        let skip_space_right = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        };
        if start > 0 && bytes[start - 1] == b'"' && bytes.get(end) == Some(&b'"') {
            start -= 1;
            end += 1;
        }
        let open = skip_space_left(start);
        let close = skip_space_right(end);
        if open > 0 && bytes[open - 1] == b'[' && bytes.get(close) == Some(&b']') {
            start = open - 1;
            end = close + 1;
        }
        if start > 0 && bytes[start - 1] == b'.' {
            start -= 1;
        }
        while bytes.get(end) == Some(&b'?') {
            end += 1;
        }
        start..end
    }
}

/// Whether a pattern binds `$ctx`, hiding the context from the code it scopes over.
fn binds_ctx(pattern: &Pattern<&str>) -> bool {
    match pattern {
        Pattern::Var(name) => *name == CTX_VAR,
        Pattern::Arr(items) => items.iter().any(binds_ctx),
        Pattern::Obj(entries) => entries.iter().any(|(_, p)| binds_ctx(p)),
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// Convert a JSON value to jaq's value type.
pub fn to_val(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64().and_then(|i| isize::try_from(i).ok()) {
                Val::from(i)
            } else if let Some(u) = n.as_u64() {
                Val::Num(Num::from_integral(u))
            } else {
                Val::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(k, v)| (Val::from(k.clone()), to_val(v)))
                .collect(),
        ),
    }
}

/// Convert a jaq value back to JSON.
///
/// jaq's values are a superset of JSON: byte strings become (lossy) text, NaN and the
/// infinities become `null` as in jq, and non-string object keys their JSON text.
pub fn from_val(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => match n {
            Num::Int(i) => Value::from(*i as i64),
            Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            // Big integers and decimals keep their text; serde_json reads them back.
            other => {
                let text = other.to_string();
                serde_json::from_str::<serde_json::Number>(&text)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        },
        Val::TStr(bytes) | Val::BStr(bytes) => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Val::Arr(items) => Value::Array(items.iter().map(from_val).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(bytes) | Val::BStr(bytes) => {
                            String::from_utf8_lossy(bytes).into_owned()
                        }
                        other => other.to_string(),
                    };
                    (key, from_val(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// References as (dotted path, source text of the span), which is what a validator
    /// shows.
    fn refs(src: &str, root: Root) -> Vec<(String, String)> {
        check(src, root)
            .unwrap_or_else(|errs| panic!("{src:?} should compile: {errs:?}"))
            .into_iter()
            .map(|r| (r.dotted(), src[r.span.clone()].to_owned()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    fn errors(src: &str) -> Vec<(String, String)> {
        match check(src, Root::Context) {
            Ok(refs) => panic!("{src:?} should not compile, got {refs:?}"),
            Err(errs) => errs
                .into_iter()
                .map(|e| (e.message.clone(), src[e.span].to_owned()))
                .collect(),
        }
    }

    fn run1(src: &str, input: Value, ctx: Value) -> Result<Vec<Value>, String> {
        compile(src).expect("compiles").run(&input, &ctx)
    }

    #[test]
    fn valid_programs_compile_and_run() {
        let program = compile(".json.location").unwrap();
        let result = json!({"exit_code": 0, "json": {"location": "/sp/7"}});
        assert_eq!(program.run(&result, &json!({})), Ok(vec![json!("/sp/7")]));
        assert_eq!(
            run1(".[] | . * 2", json!([1, 2.5]), json!({})),
            Ok(vec![json!(2), json!(5.0)])
        );
        assert_eq!(
            run1("map(select(. > 1)) | length", json!([1, 2, 3]), json!({})),
            Ok(vec![json!(2)])
        );
    }

    #[test]
    fn ctx_is_bound_to_the_context_in_every_program() {
        let ctx = json!({"inputs": {"n": 20}});
        assert_eq!(
            run1(
                "$ctx.inputs.n + .exit_code",
                json!({"exit_code": 1}),
                ctx.clone()
            ),
            Ok(vec![json!(21)])
        );
        assert_eq!(
            compile(".inputs.n == $ctx.inputs.n")
                .unwrap()
                .first(&ctx, &ctx),
            Ok(json!(true))
        );
    }

    #[test]
    fn syntax_errors_point_at_the_offending_text() {
        assert_eq!(
            errors(".a | foo"),
            vec![("undefined function `foo/0`".to_owned(), "foo".to_owned())]
        );
        assert_eq!(
            errors("1 +"),
            vec![(
                "expected term, found end of input".to_owned(),
                String::new()
            )]
        );
        let unclosed = check("map(.a", Root::Context).unwrap_err();
        assert_eq!(unclosed[0].message, "unclosed `(`: expected `)`");
        assert_eq!(unclosed[0].span, 6..6);
        assert_eq!(
            errors(r#""a\qb""#),
            vec![(
                "invalid escape sequence in string".to_owned(),
                "q".to_owned()
            )]
        );
        assert_eq!(
            errors("if . then 1 else 2"),
            vec![("expected end, found end of input".to_owned(), String::new())]
        );
    }

    #[test]
    fn every_undefined_name_is_reported_with_a_suggestion() {
        let errs = errors(". as $a | $b + $cxt + lenght");
        let messages: Vec<&str> = errs.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "undefined variable `$b`",
                "undefined variable `$cxt` (did you mean `$ctx`?)",
                "undefined function `lenght/0` (did you mean `length`?)",
            ]
        );
        let spans: Vec<&str> = errs.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(spans, vec!["$b", "$cxt", "lenght"]);
    }

    #[test]
    fn context_paths_are_reported_from_each_side_of_operators() {
        assert_eq!(
            refs(".inputs.x + .steps.a.outputs.b", Root::Context),
            pairs(&[
                ("inputs.x", ".inputs.x"),
                ("steps.a.outputs.b", ".steps.a.outputs.b")
            ])
        );
        assert_eq!(
            refs(
                r#"if .inputs.a == "x" then .inputs.b // .inputs.c else [.d, {k: .e}] end"#,
                Root::Context
            ),
            pairs(&[
                ("inputs.a", ".inputs.a"),
                ("inputs.b", ".inputs.b"),
                ("inputs.c", ".inputs.c"),
                ("d", ".d"),
                ("e", ".e"),
            ])
        );
        assert_eq!(
            refs(r#""\(.inputs.name)!" | test(.x)"#, Root::Context),
            pairs(&[("inputs.name", ".inputs.name")])
        );
    }

    #[test]
    fn bracket_and_optional_keys_are_part_of_the_chain() {
        assert_eq!(
            refs(r#".a["b c"]?.d"#, Root::Context),
            pairs(&[("a.[b c].d", r#".a["b c"]?.d"#)])
        );
        assert_eq!(
            refs(".steps.s.items[0].outputs", Root::Context),
            pairs(&[("steps.s.items.0.outputs", ".steps.s.items[0].outputs")])
        );
    }

    #[test]
    fn chains_stop_at_the_first_key_that_is_not_literal() {
        assert_eq!(
            refs(r#""a" as $id | .steps[$id].outputs"#, Root::Context),
            pairs(&[("steps", ".steps")])
        );
        assert_eq!(
            refs("[.steps.s.items[].outputs.location]", Root::Context),
            pairs(&[("steps.s.items", ".steps.s.items")])
        );
        // The index expression itself runs on the same input.
        assert_eq!(
            refs(".steps[.inputs.id]", Root::Context),
            pairs(&[("steps", ".steps"), ("inputs.id", ".inputs.id")])
        );
    }

    #[test]
    fn the_right_of_a_pipe_sees_the_left_value() {
        // A literal chain on the left: paths on the right continue it.
        assert_eq!(
            refs(".steps.a | .outputs.b", Root::Context),
            pairs(&[("steps.a", ".steps.a"), ("steps.a.outputs.b", ".outputs.b")])
        );
        // Anything else on the left: `.` on the right is not the context.
        assert_eq!(
            refs(".inputs.list | map(.name) | .[0].x", Root::Context),
            pairs(&[("inputs.list", ".inputs.list")])
        );
        assert_eq!(
            refs(".steps.a.items[] | .outputs", Root::Context),
            pairs(&[("steps.a.items", ".steps.a.items")])
        );
        // `as` keeps the input.
        assert_eq!(
            refs(".inputs.a as $a | .inputs.b", Root::Context),
            pairs(&[("inputs.a", ".inputs.a"), ("inputs.b", ".inputs.b")])
        );
    }

    #[test]
    fn builtin_arguments_count_only_when_run_on_the_same_input() {
        assert_eq!(
            refs(
                "(.steps.s.items | all(.outputs.ok)) and (.inputs.name | ascii_downcase | test(\"^a\"))",
                Root::Context
            ),
            pairs(&[
                ("steps.s.items", ".steps.s.items"),
                ("inputs.name", ".inputs.name")
            ])
        );
        assert_eq!(
            refs("select(.inputs.on) | has(.inputs.key)", Root::Context),
            pairs(&[("inputs.on", ".inputs.on")])
        );
        assert_eq!(
            refs("has(.inputs.key)", Root::Context),
            pairs(&[("inputs.key", ".inputs.key")])
        );
        // A `$`-argument runs on the builtin's input, here the value of `.inputs.x`.
        assert_eq!(
            refs(".inputs.x | ltrimstr(.prefix)", Root::Context),
            pairs(&[("inputs.x", ".inputs.x"), ("inputs.x.prefix", ".prefix")])
        );
        // A local definition shadows the builtin of the same name.
        assert_eq!(
            refs("def select(f): .[] | f; select(.x)", Root::Context),
            vec![]
        );
    }

    #[test]
    fn folds_definitions_and_handlers_see_other_inputs() {
        assert_eq!(
            refs("reduce .xs[] as $x (.init; . + .acc)", Root::Context),
            pairs(&[("xs", ".xs"), ("init", ".init")])
        );
        assert_eq!(
            refs("def f: .hidden; .inputs.x | f", Root::Context),
            pairs(&[("inputs.x", ".inputs.x")])
        );
        assert_eq!(
            refs("try .inputs.a catch .message", Root::Context),
            pairs(&[("inputs.a", ".inputs.a")])
        );
        assert_eq!(refs(".a |= .b", Root::Context), pairs(&[("a", ".a")]));
    }

    #[test]
    fn object_shorthand_reads_the_key() {
        assert_eq!(
            refs(r#"{inputs, "run", c: 1} | {a: .inputs.a}"#, Root::Context),
            pairs(&[("inputs", "inputs"), ("run", r#""run""#)])
        );
    }

    #[test]
    fn with_the_result_root_only_ctx_paths_are_references() {
        assert_eq!(refs(".json.location", Root::Result), vec![]);
        assert_eq!(
            refs(".status == $ctx.steps.a.outputs.code", Root::Result),
            pairs(&[("steps.a.outputs.code", "$ctx.steps.a.outputs.code")])
        );
        assert_eq!(
            refs("$ctx | .inputs.n", Root::Result),
            pairs(&[("inputs.n", ".inputs.n")])
        );
        assert_eq!(
            refs("map(. + $ctx.inputs.n)", Root::Result),
            pairs(&[("inputs.n", "$ctx.inputs.n")])
        );
    }

    #[test]
    fn a_rebound_ctx_is_not_the_context() {
        assert_eq!(refs(". as $ctx | $ctx.foo", Root::Result), vec![]);
        assert_eq!(refs("def f($ctx): $ctx.a; f(1)", Root::Result), vec![]);
        assert_eq!(
            refs("($ctx.a as $ctx | $ctx.b), $ctx.c", Root::Result),
            pairs(&[("a", "$ctx.a"), ("c", "$ctx.c")])
        );
    }

    #[test]
    fn outputs_keep_their_json_types() {
        let out = run1(
            r#"null, true, 3, -1.5, 12345678901234567890, "s", [1, "a"], {"k": {"n": null}}"#,
            json!(null),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                json!(null),
                json!(true),
                json!(3),
                json!(-1.5),
                json!(12345678901234567890u64),
                json!("s"),
                json!([1, "a"]),
                json!({"k": {"n": null}}),
            ]
        );
        // Input values survive the round trip too.
        let input = json!({"a": [1, 2.5, "x", {"b": false}], "big": u64::MAX});
        assert_eq!(run1(".", input.clone(), json!({})), Ok(vec![input]));
    }

    #[test]
    fn first_stops_early_and_defaults_to_null() {
        let ctx = json!({});
        let endless = compile("repeat(1)").unwrap();
        assert_eq!(endless.first(&json!(null), &ctx), Ok(json!(1)));
        let nothing = compile("empty").unwrap();
        assert_eq!(nothing.first(&json!(null), &ctx), Ok(json!(null)));
        assert_eq!(nothing.run(&json!(null), &ctx), Ok(vec![]));
    }

    #[test]
    fn runtime_errors_are_messages_and_halt_does_not_exit() {
        let ctx = json!({});
        assert_eq!(
            run1(r#"1, error("boom")"#, json!(null), ctx.clone()),
            Err("boom".to_owned())
        );
        let indexing = run1(".a.b", json!({"a": 5}), ctx.clone()).unwrap_err();
        assert!(indexing.contains("cannot index"), "{indexing}");
        let halted = run1("halt_error(3)", json!("bye"), ctx).unwrap_err();
        assert!(halted.contains("halt"), "{halted}");
    }

    #[test]
    fn env_and_logging_cannot_leak_values() {
        let ctx = json!({"secrets": {"token": "s3cr3t"}});
        // `debug` still passes its input through, but writes nothing anywhere.
        assert_eq!(
            run1(
                "$ctx.secrets.token | debug | length",
                json!(null),
                ctx.clone()
            ),
            Ok(vec![json!(6)])
        );
        assert_eq!(run1("env", json!(null), ctx), Ok(vec![json!({})]));
    }

    #[test]
    fn deep_nesting_is_rejected_before_parsing() {
        let deep = [
            format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{}1", "[".repeat(10_000)),
            format!("1{}", " + 1".repeat(10_000)),
            format!(".{}", " | .".repeat(10_000)),
            format!("[1{}]", ", 1".repeat(10_000)),
            format!("{}1", "-".repeat(10_000)),
            format!("{}1{}", "if . then ".repeat(5_000), " end".repeat(5_000)),
            format!("{}1{}", r#""\("#.repeat(5_000), r#")""#.repeat(5_000)),
            format!("({}) + 1{}", "(1)".repeat(3), " + 1".repeat(MAX_NESTING)),
        ];
        for src in &deep {
            let errs = check(src, Root::Context).unwrap_err();
            assert!(errs[0].message.contains("nested too deeply"), "{}", errs[0]);
            assert!(compile(src).is_err());
            assert!(references(src, Root::Context).is_empty());
        }
    }

    #[test]
    fn nesting_within_the_bound_parses_compiles_and_runs() {
        // Runs on the test harness's 2 MiB thread in a debug build: the bound must leave
        // room for the real recursion of jaq's parser, compiler and evaluator.
        let n = MAX_NESTING - 1;
        let within = [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "{a:".repeat(n), "}".repeat(n)),
            format!("1{}", " + 1".repeat(n - 1)),
            format!(".{}", " | .".repeat(n - 1)),
            format!("{}1{}", "if . then ".repeat(n / 2), " end".repeat(n / 2)),
            format!("{}1", "- ".repeat(n - 1)),
        ];
        for src in &within {
            let program = compile(src).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(program.first(&json!(true), &json!({})).is_ok());
            assert!(check(src, Root::Context).is_ok());
        }
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let src = format!("\"{}\" # {}\n| length", "(".repeat(500), "[".repeat(500));
        assert_eq!(run1(&src, json!(null), json!({})), Ok(vec![json!(500)]));
    }

    /// A small deterministic generator, so the fuzz cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            items[(self.0 % items.len() as u64) as usize]
        }
    }

    /// A random program: mostly well-formed (so that compiling and running get
    /// exercised), then mutated by inserting stray tokens.
    fn random_program(rng: &mut XorShift, depth: usize) -> String {
        const ATOMS: &[&str] = &[
            ".",
            ".a",
            ".inputs.x",
            ".inputs.list",
            "$ctx.steps",
            "$ctx",
            "1",
            "0.5",
            "1e999",
            "null",
            "\"s\"",
            "\"\\(.a)\"",
            "[]",
            "{}",
            "..",
            ".[0]",
            ".[1:]",
            ".[]?",
            "{a: 1, b}",
            "@base64",
            "$__loc__",
            "\"é💣\"",
        ];
        const OPS: &[&str] = &[
            " | ",
            ", ",
            " + ",
            " - ",
            " * ",
            " / ",
            " % ",
            " == ",
            " // ",
            " and ",
            " or ",
            " as $x | ",
            " |= ",
            " < ",
        ];
        const CALLS: &[&str] = &[
            "select", "map", "length", "not", "tostring", "keys", "first", "test", "has", "add",
            "error",
        ];
        if depth == 0 {
            return rng.pick(ATOMS).to_owned();
        }
        let mut sub = || random_program(rng, depth - 1);
        let (a, b, c) = (sub(), sub(), sub());
        match rng.pick(&[
            "op", "op", "paren", "call", "if", "reduce", "try", "arr", "atom",
        ]) {
            "op" => format!("{a}{}{b}", rng.pick(OPS)),
            "paren" => format!("({a})"),
            "call" => format!("{}({a})", rng.pick(CALLS)),
            "if" => format!("if {a} then {b} else {c} end"),
            "reduce" => format!("reduce {a} as $x ({b}; . + $x)"),
            "try" => format!("try {a} catch {b}"),
            "arr" => format!("[{a}, {b}]"),
            _ => rng.pick(ATOMS).to_owned(),
        }
    }

    /// Programs covering every path of `check`: valid, syntax errors, undefined names,
    /// comments, local definitions, `$ctx`, `$__loc__`, module headers, deep nesting.
    fn check_corpus() -> Vec<String> {
        let mut corpus: Vec<String> = [
            ".stdout",
            ".steps.a.outputs.b | length + 1",
            "$ctx.inputs.x",
            "$ctx.inputs.x # a comment ( [ {\n| . + 1",
            "# only a comment",
            "",
            "   ",
            ".a # trailing comment without newline",
            "def f: .a; f",
            "def f: .a; def g: f | undefined_g; g",
            "def map(f): 1; map(.) | map(.; .)",
            "def f($x): $x + $y; f(1)",
            "reduce .[] as $x (0; . + $x)",
            "reduce .[] as $x (0)",
            "foreach .[] as $x (0; . + $x; [$x, .])",
            "foreach .[] as $x (0; 1; 2; 3)",
            "label $out | .[] | if . then break $out else . end",
            "break $nowhere",
            "$__loc__",
            "$__loc__.line, $__loc__",
            "$ctxx.inputs",
            "$cxt",
            "lenght",
            "lenght + $nope + lenght(1; 2) + foo::bar",
            "mpa(.a)",
            "\"\\(.a) and \\(nope) é💣\"",
            "@base64 \"\\(.x)\"",
            "@nope \"x\"",
            "{a: nope, b: $nope, (nope2): 1}",
            ". as [$a, {b: $c}] | $a + $c + $d",
            ".a |= nope",
            "try error(\"x\") catch nope",
            "(",
            ")",
            "[1, 2",
            "{a: }",
            "\"unterminated",
            "\"bad \\q escape\"",
            "\"\\u12\"",
            ". |",
            "1 +",
            "if . then 1",
            "def f: 1;",
            "def: 1; 2",
            "`",
            "\u{0}",
            "1e",
            "$",
            ".[",
            "include \"a\"; .",
            "import \"a\" as a; a::f",
            "import \"data\" as $d; $d",
            "module {}; .",
            "include",
            "import",
            "module",
            "include + 1",
            "env, debug, stderr, halt_error(1)",
            "input, inputs",
            "$ENV",
            "$ctx as $ctx | $ctx",
            "!runbook_check",
            "__runbook_0",
            "def __runbook_0: 1; __runbook_0",
            "first(.[]), limit(2; .[]), nth(1), getpath([\"a\"]), paths, tojson",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        corpus.push(format!("{}1{}", "(".repeat(500), ")".repeat(500)));
        corpus.push(format!("1{}", " + 1".repeat(MAX_NESTING + 5)));
        corpus.push(format!("{}1{}", "(".repeat(50), ")".repeat(50)));
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let strays = [
            "(", ")", "]", "\"", "|", "$", "def", "#", "\n", "nope", "$y", "é",
        ];
        for round in 0..300 {
            let mut src = random_program(&mut rng, round % 4);
            if round % 3 == 0 {
                let at = (round * 7) % (src.len() + 1);
                if src.is_char_boundary(at) {
                    src.insert_str(at, rng.pick(&strays));
                }
            }
            corpus.push(src);
        }
        corpus
    }

    #[test]
    fn check_many_matches_check_item_by_item() {
        let corpus = check_corpus();
        // Slices of one string too, overlapping and repeated, as a YAML file would give.
        let shared = "nope | .a # c\n + $y";
        let mut items: Vec<(&str, Root)> = corpus
            .iter()
            .enumerate()
            .map(|(i, src)| {
                let root = if i % 2 == 0 {
                    Root::Context
                } else {
                    Root::Result
                };
                (src.as_str(), root)
            })
            .collect();
        for (start, end) in [(0, 4), (0, 4), (0, 9), (7, 9), (4, 4), (14, 19), (0, 19)] {
            items.push((&shared[start..end], Root::Context));
        }
        let expected: Vec<_> = items.iter().map(|(src, root)| check(src, *root)).collect();
        let (ok, err) = expected.iter().partition::<Vec<_>, _>(|r| r.is_ok());
        assert!(
            ok.len() > 50 && err.len() > 50,
            "{} ok, {} errors",
            ok.len(),
            err.len()
        );
        assert_eq!(check_many(&items), expected);
        // Batch boundaries must not matter.
        for batch in [1, 2, 7, 64] {
            assert_eq!(check_in_batches(&items, batch), expected, "batch {batch}");
        }
    }

    #[test]
    fn check_many_of_nothing_or_only_errors() {
        assert_eq!(check_many(&[]), Vec::new());
        let items = [
            ("nope", Root::Context),
            ("(", Root::Context),
            ("$nope | nope(1)", Root::Result),
            ("$__loc__", Root::Result),
            ("include \"x\"; .", Root::Context),
        ];
        let expected: Vec<_> = items.iter().map(|(src, root)| check(src, *root)).collect();
        assert!(expected.iter().all(Result::is_err));
        assert_eq!(check_many(&items), expected);
    }

    #[test]
    fn malformed_programs_never_panic() {
        let strays = [
            "(", ")", "[", "]", "{", "}", "\"", "\\(", "|", "$", "@", "?", ":", ";", "def", "if",
            "end", "as", "\u{0}", "`", "#", "\n", "é", ".", "..", "-",
        ];
        let ctx = json!({"inputs": {"x": 1, "list": [1, 2]}, "steps": {}});
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut compiled, mut rejected) = (0, 0);
        for round in 0..400 {
            let mut src = random_program(&mut rng, round % 4);
            for _ in 0..round % 3 {
                let at = (rng
                    .pick(&["0", "1", "2", "3", "5", "8"])
                    .parse::<usize>()
                    .unwrap_or(0)
                    * 7)
                    % (src.len() + 1);
                if src.is_char_boundary(at) {
                    src.insert_str(at, rng.pick(&strays));
                }
            }
            let _ = check(&src, Root::Context);
            let _ = check(&src, Root::Result);
            match compile(&src) {
                // The generator has no recursion or loops, so running always terminates.
                Ok(program) => {
                    compiled += 1;
                    let _ = program.first(&ctx, &ctx);
                    let _ = program.run(&ctx, &ctx);
                }
                Err(_) => rejected += 1,
            }
        }
        // Both paths must be exercised, or this test tests less than it claims.
        assert!(
            compiled > 100 && rejected > 50,
            "{compiled} compiled, {rejected} rejected"
        );
    }
}
