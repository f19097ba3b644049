//! The YAML document as a tree of nodes that remember where they came from.
//!
//! serde-saphyr parses the YAML (with its budgets against alias bombs and deep nesting);
//! this module keeps the result as an owned tree with byte spans, so that every later check
//! (types, unknown keys, references inside templates) can point at the exact source text.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }

    pub fn end(&self) -> usize {
        self.offset + self.len
    }

    /// A sub-range of this span, given as a byte range inside the spanned text.
    /// Used to point inside a template or a jq expression; when the scalar was quoted or
    /// folded the inner offsets no longer line up, so the caller passes whether they do.
    pub fn narrow(&self, inner: std::ops::Range<usize>) -> Span {
        let start = (self.offset + inner.start).min(self.end());
        let end = (self.offset + inner.end).min(self.end()).max(start);
        Span::new(start, end - start)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.offset.into(), span.len)
    }
}

/// One YAML node with its span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum NodeKind {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always a string in a runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    /// What a person calls this kind of value, for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The key node under which `key` is stored, for pointing at the key itself.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k)
    }

    /// A span a person can see: block mappings and sequences start with an empty span,
    /// so point at their first key or item instead.
    pub fn visible_span(&self) -> Span {
        if self.span.len > 0 {
            return self.span;
        }
        match &self.kind {
            NodeKind::Map(entries) => entries.first().map_or(self.span, |(k, _)| k.span),
            NodeKind::Seq(items) => items.first().map_or(self.span, Node::visible_span),
            _ => self.span,
        }
    }

    /// The node as plain JSON, spans dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Every string scalar below this node (itself included), in document order.
    pub fn for_each_string<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a Node)) {
        match &self.kind {
            NodeKind::Str(s) => f(s, self),
            NodeKind::Seq(items) => items.iter().for_each(|n| n.for_each_string(f)),
            NodeKind::Map(entries) => entries.iter().for_each(|(_, n)| n.for_each_string(f)),
            _ => {}
        }
    }
}

/// Parses YAML text into a node tree. The error is serde-saphyr's, with its location.
pub fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
    // serde-saphyr's default options reject duplicate keys and bound depth, node count and
    // alias replay, which is what keeps an alias bomb or deep nesting from hanging us.
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans: only true and false. `jobs: [x, y, n]` keeps its strings.
    options.strict_booleans = true;
    // A tag asks for a type the engine does not have (`!!python/object`, `!Ref`): refuse it
    // rather than drop it silently. The YAML core tags (`!!str`, `!!int`...) stay allowed.
    options.reject_unsupported_tags = true;
    serde_saphyr::from_str_with_options::<Option<SaphyrNode>>(text, options).map(|node| {
        node.map_or(
            Node {
                span: Span::default(),
                kind: NodeKind::Null,
            },
            |n| n.0,
        )
    })
}

/// Converts serde-saphyr's location into a byte span of `text`.
fn span_of(location: &serde_saphyr::Location) -> Span {
    let span = location.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(offset), Some(len)) => Span::new(offset as usize, len as usize),
        _ => Span::default(),
    }
}

/// The private deserialisation target that captures spans from serde-saphyr.
struct SaphyrNode(Node);

impl<'de> Deserialize<'de> for SaphyrNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<SaphyrKind>::deserialize(deserializer)?;
        Ok(SaphyrNode(Node {
            span: span_of(&spanned.referenced),
            kind: spanned.value.0,
        }))
    }
}

impl From<SaphyrNode> for Node {
    fn from(node: SaphyrNode) -> Node {
        node.0
    }
}

struct SaphyrKind(NodeKind);

impl<'de> Deserialize<'de> for SaphyrKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(KindVisitor::<SaphyrNode, SaphyrKey>(PhantomData))
            .map(SaphyrKind)
    }
}

/// A node re-read from our own node deserialiser, so runbook values such as `with:` or an
/// HTTP `json:` body keep the spans of every string inside them.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Kind(NodeKind);
        impl<'de> Deserialize<'de> for Kind {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(KindVisitor::<Node, NodeKey>(PhantomData))
                    .map(Kind)
            }
        }
        let spanned = super::spanned::Spanned::<Kind>::deserialize(deserializer)?;
        Ok(Node {
            span: spanned.span,
            kind: spanned.value.0,
        })
    }
}

/// Builds a node's kind; `C` is the child type that captures each child's span.
struct KindVisitor<C, K>(PhantomData<(C, K)>);

impl<'de, C, K> Visitor<'de> for KindVisitor<C, K>
where
    C: Deserialize<'de> + Into<Node>,
    K: Deserialize<'de> + Into<Key>,
{
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<C>()? {
            items.push(node.into());
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<K>()? {
            let value: C = map.next_value()?;
            entries.push((key.into(), value.into()));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// A mapping key with its span, as serde-saphyr reports it.
struct SaphyrKey(Key);

impl<'de> Deserialize<'de> for SaphyrKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = serde_saphyr::Spanned::<KeyText>::deserialize(deserializer)?;
        Ok(SaphyrKey(Key {
            name: key.value.0,
            span: span_of(&key.referenced),
        }))
    }
}

impl From<SaphyrKey> for Key {
    fn from(key: SaphyrKey) -> Key {
        key.0
    }
}

/// A mapping key with its span, as our own node deserialiser reports it.
struct NodeKey(Key);

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = super::spanned::Spanned::<KeyText>::deserialize(deserializer)?;
        Ok(NodeKey(Key {
            name: key.value.0,
            span: key.span,
        }))
    }
}

impl From<NodeKey> for Key {
    fn from(key: NodeKey) -> Key {
        key.0
    }
}

/// A mapping key read as text whatever its YAML type (`1: x` has the key "1").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_bool<E>(self, v: bool) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_unit<E>(self) -> Result<String, E> {
                Ok("null".to_owned())
            }
        }
        deserializer.deserialize_any(KeyVisitor).map(KeyText)
    }
}
