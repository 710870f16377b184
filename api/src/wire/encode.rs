//! Objects written as kube-apiserver writes them: `encoding/json` of the Go
//! struct (runtime/serializer/json `Serializer.doEncode`), so fields in Go
//! struct order, map keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped
//! as `\u003c`..., a newline after the value; and `json.MarshalIndent`
//! with two spaces when the client asked for pretty output.
//!
//! Keys a type does not know (and objects of unknown kinds: Tables) come
//! after the known ones, sorted.

use serde_json::{Map, Value};

use super::{go, Node, Types};

impl Types {
    /// `value` as kube-apiserver's JSON serializer writes it, with the
    /// trailing newline of `json.Encoder`.
    pub fn to_json(&self, value: &Value) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write(&mut out, value);
        out.push(b'\n');
        out
    }

    /// Appends `value` in Go field order (its type found by its
    /// `apiVersion` and `kind`), without a newline.
    pub fn write(&self, out: &mut Vec<u8>, value: &Value) {
        self.value(out, self.root(value), value);
    }

    fn value(&self, out: &mut Vec<u8>, node: Option<usize>, value: &Value) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
                Some(f) => out.extend_from_slice(go::float(f).as_bytes()),
                None => out.extend_from_slice(n.to_string().as_bytes()),
            },
            Value::String(s) => string(out, s),
            Value::Array(items) => {
                let item = match node.map(|n| &self.nodes[n]) {
                    Some(Node::Slice(item)) => Some(*item),
                    _ => None,
                };
                out.push(b'[');
                for (i, value) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(out, item, value);
                }
                out.push(b']');
            }
            Value::Object(map) => match node.map(|n| &self.nodes[n]) {
                Some(Node::Struct(s)) => {
                    let mut fields: Vec<(u32, &String, &Value, Option<usize>)> = map
                        .iter()
                        .map(|(key, value)| match s.fields.get(key) {
                            Some(field) => (field.rank, key, value, Some(field.node)),
                            None => (u32::MAX, key, value, None),
                        })
                        .collect();
                    // Stable: unknown keys keep their sorted order.
                    fields.sort_by_key(|field| field.0);
                    self.object(out, fields.into_iter().map(|(_, k, v, n)| (k, v, n)));
                }
                Some(Node::Map(item)) => {
                    let item = Some(*item);
                    self.object(out, map.iter().map(|(k, v)| (k, v, item)));
                }
                _ => self.plain(out, map),
            },
        }
    }

    fn plain(&self, out: &mut Vec<u8>, map: &Map<String, Value>) {
        self.object(out, map.iter().map(|(k, v)| (k, v, None)));
    }

    fn object<'v>(
        &self,
        out: &mut Vec<u8>,
        fields: impl Iterator<Item = (&'v String, &'v Value, Option<usize>)>,
    ) {
        out.push(b'{');
        for (i, (key, value, node)) in fields.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, key);
            out.push(b':');
            self.value(out, node, value);
        }
        out.push(b'}');
    }
}

/// A string as encoding/json escapes it (encode.go `appendString` with
/// HTML escaping, as `json.Encoder` does by default).
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        let line_separator = b == 0xe2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9));
        if escaped.is_none() && !line_separator && b >= 0x20 && !matches!(b, b'<' | b'>' | b'&') {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match escaped {
            Some(escape) => out.extend_from_slice(escape),
            None if line_separator => {
                out.extend_from_slice(b"\\u202");
                out.push(HEX[usize::from(bytes[i + 2] & 0xf)]);
                i += 2;
            }
            None => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `json.Indent(compact, "", "  ")` (encoding/json indent.go): a newline
/// and indentation after `{`, `[` and `,`, a space after `:`; empty
/// objects and lists stay `{}` and `[]`. `compact` is JSON written by
/// [`Types::to_json`]; a trailing newline is dropped, as MarshalIndent has
/// none.
pub fn indent(compact: &[u8]) -> Vec<u8> {
    let compact = compact.strip_suffix(b"\n").unwrap_or(compact);
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut i = 0;
    while i < compact.len() {
        let b = compact[i];
        out.push(b);
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    if matches!(compact.get(i + 1), Some(b'}' | b']')) {
                        out.push(compact[i + 1]);
                        i += 1;
                    } else {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
                b'}' | b']' => {
                    out.pop();
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                    out.push(b);
                }
                b',' => newline(&mut out, depth),
                b':' => out.push(b' '),
                _ => {}
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::indent;
    use crate::wire::tests::TYPES;

    fn text(value: serde_json::Value) -> String {
        String::from_utf8(TYPES.to_json(&value)).unwrap()
    }

    #[test]
    fn objects_come_out_in_go_struct_order() {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "status": { "replicas": 0, "availableReplicas": 0, "fullyLabeledReplicas": 0 },
            "spec": { "template": {}, "selector": { "matchLabels": { "b": "1", "a": "2" } }, "replicas": 1 },
            "metadata": { "uid": "u", "name": "n", "namespace": "d" },
        });
        assert_eq!(
            text(rs),
            concat!(
                r#"{"kind":"ReplicaSet","apiVersion":"apps/v1","metadata":{"name":"n","namespace":"d","uid":"u"},"#,
                r#""spec":{"replicas":1,"selector":{"matchLabels":{"a":"2","b":"1"}},"template":{}},"#,
                r#""status":{"replicas":0,"fullyLabeledReplicas":0,"availableReplicas":0}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn lists_and_unknown_kinds() {
        let list = json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "5" },
            "items": [{ "metadata": { "namespace": "a", "name": "b" }, "spec": {} }] });
        assert_eq!(
            text(list),
            "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[{\"metadata\":{\"name\":\"b\",\"namespace\":\"a\"},\"spec\":{}}]}\n"
        );
        let table = json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [] });
        assert_eq!(
            text(table),
            "{\"apiVersion\":\"meta.k8s.io/v1\",\"kind\":\"Table\",\"rows\":[]}\n"
        );
    }

    #[test]
    fn a_status_is_written_in_go_order() {
        let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "m", "reason": "NotFound", "details": { "name": "x", "kind": "pods" }, "code": 404 });
        assert_eq!(
            text(status),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"m\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"pods\"},\"code\":404}\n"
        );
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let value = json!({ "a": "<b> & \"c\"\n\u{8}\u{1}\u{2028}é" });
        assert_eq!(
            text(value),
            "{\"a\":\"\\u003cb\\u003e \\u0026 \\\"c\\\"\\n\\b\\u0001\\u2028é\"}\n"
        );
    }

    #[test]
    fn indent_is_go_s_json_indent() {
        let compact = b"{\"a\":[1,{}],\"b\":{\"c\":\"x,{\\\"\"},\"d\":[]}\n";
        assert_eq!(
            String::from_utf8(indent(compact)).unwrap(),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": {\n    \"c\": \"x,{\\\"\"\n  },\n  \"d\": []\n}"
        );
    }
}
