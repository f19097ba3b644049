//! The filters every program may call: jaq's definitions, and its native filters minus those
//! that reach outside a pure function.

use std::sync::LazyLock;

use jaq_core::box_iter::box_once;
use jaq_core::load::parse::Def;
use jaq_core::native::Fun;
use jaq_core::{Cv, DataT, Native, RunPtr, ValXs};
use jaq_json::Val;

use super::Data;

/// The definitions every program may call (`map`, `select`, `test`, …), parsed once.
pub(super) static PRELUDE: LazyLock<Vec<Def<&'static str>>> = LazyLock::new(|| {
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
pub(super) fn natives() -> impl Iterator<Item = Fun<Data>> {
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

#[cfg(test)]
mod tests {

    use crate::template::jq::tests::run1;

    use serde_json::json;

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
}
