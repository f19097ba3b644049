//! Paths that an expression or template reads from the context.

use std::fmt;
use std::ops::Range;

use serde_json::Value;

/// A path read from the context, such as `["steps", "snapshot", "outputs", "location"]`,
/// with the byte range in the source string where it appears.
///
/// A validator checks each one against what the runbook declares (an input, a step, an
/// output of that step), and uses the span to point at the offending text.
/// Array indices appear as decimal strings (`["steps", "a", "items", "0"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Keys from the root of the context, outermost first; never empty.
    pub path: Vec<String>,
    /// Byte range of the reference in the source string.
    pub span: Range<usize>,
}

impl Reference {
    /// The path in dotted form (`steps.a.outputs.x`), as messages and plans show it.
    pub fn dotted(&self) -> String {
        dotted(&self.path)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

/// Join path keys with dots; a key that is not a plain word is bracketed (`a.[b c]`) so the
/// result reads like the template syntax that would reach it.
pub fn dotted(path: &[String]) -> String {
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$' || c == ':')
    };
    let keys: Vec<String> = path
        .iter()
        .map(|k| {
            if plain(k) {
                k.clone()
            } else {
                format!("[{k}]")
            }
        })
        .collect();
    keys.join(".")
}

/// Follow `path` from `root` the way a template does: objects by key, arrays by decimal
/// index. `None` when any step is missing, which is what "unknown until run time" means.
pub fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(root, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(path: &[&str]) -> Vec<String> {
        path.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn lookup_follows_objects_and_array_indices() {
        let ctx = json!({"steps": {"a": {"items": [{"outputs": {"x": 1}}]}}});
        assert_eq!(
            lookup(&ctx, &keys(&["steps", "a", "items", "0", "outputs", "x"])),
            Some(&json!(1))
        );
        assert_eq!(lookup(&ctx, &keys(&["steps", "b"])), None);
        assert_eq!(lookup(&ctx, &keys(&["steps", "a", "items", "x"])), None);
        assert_eq!(lookup(&ctx, &keys(&["steps", "a", "items", "1"])), None);
    }

    #[test]
    fn dotted_brackets_keys_that_are_not_words() {
        assert_eq!(dotted(&keys(&["inputs", "host"])), "inputs.host");
        assert_eq!(dotted(&keys(&["a", "b c", "d.e"])), "a.[b c].[d.e]");
    }
}
