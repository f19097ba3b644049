//! Typed deserialisation from a [`Node`] tree, keeping spans.
//!
//! serde's derive stops at the first error of a struct. To report every problem at once the
//! loader deserialises pieces (each step, each input) on their own, and this deserialiser
//! reports unknown keys to a shared sink instead of failing, so one typo does not hide the next.

use super::node::{Key, Node, NodeKind, Span};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::fmt;

/// Struct name that asks this deserialiser for a value together with its span.
pub(crate) const SPANNED_MARKER: &str = "$runbook::Spanned";
pub(crate) const SPANNED_FIELDS: &[&str] = &["offset", "len", "value"];

/// A problem found while turning the node tree into the typed model.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
}

impl DeError {
    fn at(mut self, span: Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            span: None,
            help: None,
        }
    }

    fn invalid_type(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Self {
        let expected = plain_expected(&expected.to_string());
        let mut error = Self::custom(format_args!(
            "expected {expected}, found {}",
            describe(&unexpected)
        ));
        if let de::Unexpected::Str(text) = unexpected
            && expected == "a boolean"
        {
            error.help = yaml_1_1_boolean_hint(text);
        }
        error
    }

    fn invalid_value(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value {}: expected {expected}",
            describe(&unexpected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut error = Self::custom(format_args!("unknown value `{variant}`"));
        error.help = Some(did_you_mean(variant, expected));
        error
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut error = Self::custom(format_args!("unknown key `{field}`"));
        error.help = Some(did_you_mean(field, expected));
        error
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("missing required key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format_args!("key `{field}` is given twice"))
    }
}

/// The help for a key the language has, written where it does not belong: said plainly
/// rather than as a misspelling of some other key.
fn misplaced_key_help(body: &str, key: &str) -> Option<String> {
    match (body, key) {
        ("Undo", "undo") => Some(
            "an undo cannot have an undo of its own: what takes it back is a step's `undo`, \
             and an undo that fails is reported, not undone"
                .to_owned(),
        ),
        ("Undo", "outputs" | "fallback" | "verify" | "needs" | "when" | "for_each" | "id") => {
            Some(format!(
                "an undo is one action with its own `retry`, `timeout`, `until` and `poll`; \
                 `{key}` belongs to the step"
            ))
        }
        ("Fallback" | "Verify", "undo") => {
            Some("`undo` belongs to the step, beside its action".to_owned())
        }
        _ => None,
    }
}

/// The help for `yes`, `no`, `on`, `off` where a boolean belongs: YAML 1.1 read them as
/// booleans, YAML 1.2 (which runbooks are) reads them as strings.
pub fn yaml_1_1_boolean_hint(text: &str) -> Option<String> {
    let meant = match text.to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" => "true",
        "no" | "n" | "off" => "false",
        _ => return None,
    };
    Some(format!(
        "runbooks are YAML 1.2, where `{text}` is a string, not a boolean: write `{meant}`"
    ))
}

/// serde names Rust types ("u32"); a runbook author thinks in YAML values.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a string" | "a borrowed string" => "a string".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a mapping".to_owned(),
        other if other.starts_with("struct ") => "a mapping".to_owned(),
        other => other.to_owned(),
    }
}

fn describe(unexpected: &de::Unexpected) -> String {
    match unexpected {
        de::Unexpected::Map => "a mapping".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Unit => "null".to_owned(),
        de::Unexpected::Str(s) => format!("the string \"{s}\""),
        de::Unexpected::Signed(i) => format!("the integer {i}"),
        de::Unexpected::Unsigned(i) => format!("the integer {i}"),
        de::Unexpected::Float(f) => format!("the number {f}"),
        de::Unexpected::Bool(b) => format!("the boolean {b}"),
        other => other.to_string(),
    }
}

/// "did you mean `x`?" when a known name is close, otherwise the list of known names.
pub fn did_you_mean(given: &str, known: &[&str]) -> String {
    match closest(given, known.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None if known.is_empty() => "no keys are allowed here".to_owned(),
        None => format!(
            "expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The known name nearest to `given`, if it is near enough to be a likely typo.
pub fn closest<'k>(given: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    known
        .map(|k| (strsim::jaro_winkler(given, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Where unknown keys are reported while deserialisation goes on.
#[derive(Default)]
pub struct Sink {
    errors: RefCell<Vec<DeError>>,
}

impl Sink {
    pub fn push(&self, error: DeError) {
        self.errors.borrow_mut().push(error);
    }

    pub fn take(&self) -> Vec<DeError> {
        std::mem::take(&mut self.errors.borrow_mut())
    }
}

/// Deserialises `T` from a node; unknown keys go to the sink, the first hard error is returned.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node, sink: &Sink) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node, sink })
}

#[derive(Clone, Copy)]
pub struct NodeDeserializer<'a> {
    node: &'a Node,
    sink: &'a Sink,
}

impl<'a> NodeDeserializer<'a> {
    fn span(&self) -> Span {
        self.node.visible_span()
    }

    fn child(&self, node: &'a Node) -> Self {
        NodeDeserializer {
            node,
            sink: self.sink,
        }
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAccess {
                items: items.iter(),
                parent: self,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                value: None,
                parent: self,
            }),
        };
        result.map_err(|e| e.at(self.span()))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED_MARKER {
            return visitor.visit_map(SpannedAccess::new(self.span(), self));
        }
        let NodeKind::Map(entries) = &self.node.kind else {
            return self.deserialize_any(visitor);
        };
        // Unknown keys are reported and skipped, so the rest of the struct is still checked.
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            if fields.contains(&entry.0.name.as_str()) {
                known.push(entry);
            } else {
                let mut error =
                    <DeError as de::Error>::custom(format_args!("unknown key `{}`", entry.0.name));
                error.help = Some(
                    misplaced_key_help(name, &entry.0.name)
                        .unwrap_or_else(|| did_you_mean(&entry.0.name, fields)),
                );
                self.sink.push(error.at(entry.0.span));
            }
        }
        visitor
            .visit_map(MapAccess {
                entries: known.into_iter(),
                value: None,
                parent: self,
            })
            .map_err(|e| e.at(self.span()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccess {
                key: &entries[0].0,
                value: self.child(&entries[0].1),
            }),
            NodeKind::Map(entries) if entries.len() > 1 => {
                let mut error = <DeError as de::Error>::custom(format_args!(
                    "expected exactly one of {}, found {} keys",
                    quoted_list(variants),
                    entries.len()
                ));
                error.span = Some(entries[1].0.span);
                Err(error)
            }
            _ => Err(<DeError as de::Error>::custom(format_args!(
                "expected one of {}, found {}",
                quoted_list(variants),
                self.node.kind_name()
            ))),
        };
        result.map_err(|e| e.at(self.span()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
    parent: NodeDeserializer<'a>,
}

impl<'de, 'a> de::SeqAccess<'de> for SeqAccess<'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(self.parent.child(node)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::vec::IntoIter<&'a (Key, Node)>,
    value: Option<&'a Node>,
    parent: NodeDeserializer<'a>,
}

impl<'de, 'a> de::MapAccess<'de> for MapAccess<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(KeyDeserializer { key }).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .expect("serde calls next_value only after next_key");
        seed.deserialize(self.parent.child(node))
    }
}

/// A mapping key; it can be asked for its span like any node.
struct KeyDeserializer<'a> {
    key: &'a Key,
}

impl<'de, 'a> de::Deserializer<'de> for KeyDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor
            .visit_str(&self.key.name)
            .map_err(|e: DeError| e.at(self.key.span))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED_MARKER {
            let span = self.key.span;
            return visitor.visit_map(SpannedAccess::new(span, self));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Presents a value as `{offset, len, value}` to [`super::spanned::Spanned`].
struct SpannedAccess<D> {
    span: Span,
    state: u8,
    value: Option<D>,
}

impl<D> SpannedAccess<D> {
    fn new(span: Span, value: D) -> Self {
        SpannedAccess {
            span,
            state: 0,
            value: Some(value),
        }
    }
}

impl<'de, D: de::Deserializer<'de, Error = DeError>> de::MapAccess<'de> for SpannedAccess<D> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(field) = SPANNED_FIELDS.get(self.state as usize) else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let state = self.state;
        self.state += 1;
        match state {
            0 => seed.deserialize(self.span.offset.into_deserializer()),
            1 => seed.deserialize(self.span.len.into_deserializer()),
            _ => seed.deserialize(
                self.value
                    .take()
                    .expect("the value field is read once, last"),
            ),
        }
    }
}

struct EnumAccess<'a> {
    key: &'a Key,
    value: NodeDeserializer<'a>,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = DeError;
    type Variant = NodeDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let variant = seed.deserialize(KeyDeserializer { key: self.key })?;
        Ok((variant, self.value))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for NodeDeserializer<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
