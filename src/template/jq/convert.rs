//! Conversion between JSON values and jaq's value type.

use jaq_json::{Num, Val};
use serde_json::Value;

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

    use crate::template::jq::tests::run1;

    use serde_json::json;

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
}
