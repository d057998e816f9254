//! A JSON document parsed without copying its strings, and written back compact with the
//! keys of every object sorted: the bytes `serde_json` gives for the same document read
//! into a [`serde_json::Value`] (a `BTreeMap` per object, the last of repeated keys
//! kept), at a fraction of the allocations. The hot path parses each page once into this
//! tree and keeps each event only as its sorted text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One JSON value borrowing its strings from the parsed bytes where they have no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Entries as sent, repeats included, until [`Node::sort`].
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// Parses one JSON document. The errors are serde_json's.
    pub fn parse(bytes: &'a [u8]) -> Result<Node<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Orders the keys of every object bytewise and keeps the last of repeated keys, as a
    /// `serde_json::Map` does.
    pub fn sort(&mut self) {
        match self {
            Node::Array(items) => items.iter_mut().for_each(Node::sort),
            Node::Object(entries) => {
                // Stable, so among repeats the last sent stays last and is the one kept.
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                entries.dedup_by(|later, kept| {
                    let same = later.0 == kept.0;
                    if same {
                        std::mem::swap(later, kept);
                    }
                    same
                });
                entries.iter_mut().for_each(|(_, v)| v.sort());
            }
            _ => {}
        }
    }

    /// The entry under `key` of a sorted object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(entries) => entries
                .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
                .ok()
                .map(|i| &entries[i].1),
            _ => None,
        }
    }

    /// Appends the compact JSON of a sorted tree: byte for byte what `serde_json` writes for
    /// the same value.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to memory"),
            Node::String(s) => write_str(out, s),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Node::Object(entries) => {
                out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }

    /// The compact JSON text of a sorted tree.
    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// The same document as a `serde_json::Value` (for the rare item set apart).
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// A JSON string as `serde_json` writes it. Only `"`, `\` and control characters are
/// escaped there, so text without them is written as it is.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to memory");
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        // As serde_json's Value: a float JSON can carry is always finite.
        Ok(Number::from_f64(n).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(Key(k)) = map.next_key()? {
            entries.push((k, map.next_value()?));
        }
        Ok(Node::Object(entries))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strategies::json_value;

    fn same_as_value(text: &str) {
        let mut node = Node::parse(text.as_bytes()).unwrap();
        node.sort();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(node.to_text(), serde_json::to_string(&value).unwrap(), "{text}");
        assert_eq!(node.to_value(), value, "{text}");
    }

    #[test]
    fn writes_what_serde_json_writes_for_the_value() {
        for text in [
            r#"{"b": 1, "a": {"y": [1, 2.5, -3, 1e3, 1.0, -0.0, 18446744073709551615], "x": null}, "a\u0000": true}"#,
            r#"{"k": 1, "k": 2, "j": {"z": 1, "z": {"q": "last"}}}"#,
            r#"{"s": "tab\there \"quoted\" back\\slash \/ \u00e9 é \u2028 \ud83d\ude00 \u007f"}"#,
            r#"[{"b": 1, "a": 2}, "x", false, {}, []]"#,
            r#""just a string""#,
            r#"{"é": 1, "e": 2, "E": 3, "": 4, "\u0001": 5}"#,
            r#"{"n": 123456789012345678901234567890, "f": 0.1, "g": 1.7976931348623157e308}"#,
        ] {
            same_as_value(text);
        }
    }

    /// Compact JSON with the keys of every object in reverse order.
    fn reversed(v: &Value) -> String {
        match v {
            Value::Array(items) => format!("[{}]", items.iter().map(reversed).collect::<Vec<_>>().join(",")),
            Value::Object(m) => format!(
                "{{{}}}",
                m.iter()
                    .rev()
                    .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), reversed(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => other.to_string(),
        }
    }

    proptest! {
        #![proptest_config(strategies::config(9))]
        /// Any document, written by serde_json in any key order (pretty or compact), comes
        /// back as serde_json writes its Value.
        #[test]
        fn any_document_round_trips(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { reversed(&v) };
            same_as_value(&text);
        }

        /// Text no serializer writes: repeated keys, and numbers in every JSON form.
        #[test]
        fn repeated_keys_and_any_number_form(entries in prop::collection::vec(("[ab]", 0usize..12), 0..8)) {
            const LITERALS: [&str; 12] = [
                "-0", "-0.0", "1e3", "1E+2", "2.50", "0.1", "18446744073709551616", "-9223372036854775809",
                "1e400", "{\"b\":1,\"a\":{\"b\":2,\"b\":3}}", "[1,{\"z\":0,\"y\":0}]", "\"\\u00e9\\/\"",
            ];
            let body: Vec<String> = entries.iter().map(|(k, i)| format!("\"{k}\":{}", LITERALS[*i])).collect();
            let text = format!("{{{}}}", body.join(","));
            if serde_json::from_str::<Value>(&text).is_ok() {
                same_as_value(&text);
            } else {
                prop_assert!(Node::parse(text.as_bytes()).is_err(), "{}", text);
            }
        }
    }
}

/// Arbitrary JSON documents for property tests.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use serde_json::Value;

    /// 256 cases on a fixed seed: the same cases on every machine, nothing persisted.
    pub fn config(seed: u64) -> Config {
        Config {
            cases: 256,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            ..Config::default()
        }
    }

    pub fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "(?s).{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c\"\\\\é\n]{0,3}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// An audit event: a valid timestamp in any of the Hub's forms, and fields whose names
    /// sort around (and sometimes collide with) the ones the collector adds.
    pub fn event() -> impl Strategy<Value = Value> {
        let names = prop_oneof![
            Just("action"),
            Just("actor"),
            Just("cat"),
            Just("category"),
            Just("collector"),
            Just("d"),
            Just("data"),
            Just("event_id"),
            Just("eventz"),
            Just("o"),
            Just("org"),
            Just("org_"),
            Just("zz"),
            Just(""),
            Just("é"),
        ];
        let stamps = prop_oneof![
            Just("2026-01-02T03:04:05Z"),
            Just("2026-01-02T03:04:05.250000Z"),
            Just("2026-01-02T03:04:05.25+00:00"),
            Just("2026-01-02T05:04:05+02:00"),
        ];
        (
            prop::collection::vec((names, json_value()), 0..8),
            stamps,
            any::<bool>(),
        )
            .prop_map(|(fields, stamp, with_action)| {
                let mut m: serde_json::Map<String, Value> = fields
                    .into_iter()
                    .filter(|(k, _)| *k != "action")
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                m.insert("timestamp".into(), Value::from(stamp));
                if with_action {
                    m.insert("action".into(), Value::from("repo.tag.push"));
                }
                Value::Object(m)
            })
    }
}
