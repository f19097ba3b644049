//! jq expressions, compiled and run by jaq (core + std + json definitions).
//!
//! Fields such as `when`, `for_each` and runbook `outputs` are jq over the context
//! (`.` is the context). Fields `outputs` and `until` of an action are jq over the action's
//! result (`.` is the result) and reach the context through the global variable `$ctx`.
//! `$ctx` is declared in every program so one compiler serves both.

use std::fmt;

use jaq_core::compile::Undefined;
use jaq_core::data::JustLut;
use jaq_core::load::lex;
use jaq_core::load::parse::{self, Def, Term};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

use super::{Reference, SyntaxError};

mod convert;
mod errors;
mod natives;
mod nesting;
mod references;

pub use convert::{from_val, to_val};
use errors::{compile_errors, load_errors};
use natives::{PRELUDE, natives};
use nesting::check_nesting;
pub use references::references;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::MAX_NESTING;
    use serde_json::json;

    /// References as (dotted path, source text of the span), which is what a validator
    /// shows.
    pub(super) fn refs(src: &str, root: Root) -> Vec<(String, String)> {
        check(src, root)
            .unwrap_or_else(|errs| panic!("{src:?} should compile: {errs:?}"))
            .into_iter()
            .map(|r| (r.dotted(), src[r.span.clone()].to_owned()))
            .collect()
    }

    pub(super) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    pub(super) fn errors(src: &str) -> Vec<(String, String)> {
        match check(src, Root::Context) {
            Ok(refs) => panic!("{src:?} should not compile, got {refs:?}"),
            Err(errs) => errs
                .into_iter()
                .map(|e| (e.message.clone(), src[e.span].to_owned()))
                .collect(),
        }
    }

    pub(super) fn run1(src: &str, input: Value, ctx: Value) -> Result<Vec<Value>, String> {
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
    fn first_stops_early_and_defaults_to_null() {
        let ctx = json!({});
        let endless = compile("repeat(1)").unwrap();
        assert_eq!(endless.first(&json!(null), &ctx), Ok(json!(1)));
        let nothing = compile("empty").unwrap();
        assert_eq!(nothing.first(&json!(null), &ctx), Ok(json!(null)));
        assert_eq!(nothing.run(&json!(null), &ctx), Ok(vec![]));
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
