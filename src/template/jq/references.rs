//! The context paths a program reads, for the validator.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use jaq_core::Bind;
use jaq_core::load::lex::{self, StrPart};
use jaq_core::load::parse::{self, BinaryOp, Pattern, Term};
use jaq_core::path::Part;

use super::errors::slice_span;
use super::natives::{PRELUDE, natives};
use super::nesting::check_nesting;
use super::{CTX_VAR, Root};
use crate::template::Reference;

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
pub(super) static BUILTINS: LazyLock<HashMap<(&'static str, usize), Vec<bool>>> =
    LazyLock::new(|| {
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

#[cfg(test)]
mod tests {

    use crate::template::jq::tests::{pairs, refs};
    use crate::template::jq::*;

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
}
