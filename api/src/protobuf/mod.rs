//! Kubernetes' protobuf encoding of request bodies
//! (`application/vnd.kubernetes.protobuf`), which client-go's typed clients
//! send: `kubectl create deployment|configmap|namespace ...`, `kubectl
//! expose`, and every Go controller. A body is the magic `k8s\0` and a
//! `runtime.Unknown` envelope (the apiVersion and kind, and the message);
//! the message decodes to the JSON the rest of the server handles.
//!
//! The field numbers come from the messages' `.proto` definitions, by way
//! of a generated table (`fields.rs`); the JSON names come from the OpenAPI
//! schemas. A handful of messages have their own JSON form (quantities,
//! int-or-strings, times). As Go's JSON encoding would, empty strings are
//! left out: Go's protobuf encoder writes every non-pointer string, and an
//! empty one means "unset" (which defaulting must then see as absent).

#[rustfmt::skip]
pub(crate) mod fields;

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::openapi::OpenApi;

/// How a field is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Wire {
    /// A UTF-8 string.
    String,
    /// Bytes (base64 in JSON).
    Bytes,
    /// A varint int32.
    Int32,
    /// A varint int64.
    Int64,
    /// A varint bool.
    Bool,
    /// A fixed64 double.
    Double,
    /// An embedded message of this schema.
    M(&'static str),
    /// A map of strings to strings.
    MapString,
    /// A map of strings to bytes.
    MapBytes,
    /// A map of strings to messages of this schema.
    MapMessage(&'static str),
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    tag: u32,
    pub(crate) name: &'static str,
    pub(crate) wire: Wire,
    repeated: bool,
}

/// The envelope of a protobuf body.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The object's apiVersion.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The encoded message.
    pub raw: Vec<u8>,
}

/// The magic that starts every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Opens a body's envelope.
pub fn envelope(body: &[u8]) -> Result<Envelope, String> {
    let message = body
        .strip_prefix(MAGIC)
        .ok_or("a protobuf body starts with the magic \"k8s\\x00\"")?;
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: Vec::new(),
    };
    for item in Reader(message) {
        match item? {
            (1, Value_::Bytes(type_meta)) => {
                for item in Reader(type_meta) {
                    match item? {
                        (1, Value_::Bytes(b)) => envelope.api_version = text(b)?,
                        (2, Value_::Bytes(b)) => envelope.kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Value_::Bytes(raw)) => envelope.raw = raw.to_vec(),
            (3, Value_::Bytes(encoding)) if !encoding.is_empty() => {
                return Err("compressed protobuf bodies are not supported".into())
            }
            _ => {}
        }
    }
    if envelope.kind.is_empty() {
        return Err("the protobuf envelope names no kind".into());
    }
    Ok(envelope)
}

/// A field of a message as the decoder knows it: its JSON name and wire.
struct Known {
    /// `None` for an embedded Go struct, whose fields JSON inlines into
    /// the parent's (a Volume's VolumeSource, a Probe's ProbeHandler).
    json: Option<String>,
    field: &'static Field,
}

/// Decodes messages to JSON; built once from the OpenAPI schemas.
pub struct Decoder {
    /// Messages by lower-cased schema name: their fields by tag.
    messages: HashMap<String, HashMap<u32, Known>>,
}

pub(crate) fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

impl Decoder {
    /// The decoder of every message in the table, with the JSON names the
    /// schemas in `openapi` give their fields.
    pub fn new(openapi: &OpenApi) -> Self {
        let table: HashMap<String, &[Field]> = fields::MESSAGES
            .iter()
            .map(|(message, fields)| (message.to_lowercase(), *fields))
            .collect();
        let named = |properties: &[&str], field: &str| {
            properties
                .iter()
                .find(|p| normalized(p) == normalized(field))
                .map(|p| p.to_string())
        };
        // Embedded Go structs have no schema of their own (JSON inlines
        // them): a message field whose name the parent's schema lacks but
        // whose message's fields it has. The embedded message's fields
        // take their names from the parent's schema.
        let mut inlined: HashMap<String, Vec<&str>> = HashMap::new();
        for (message, fields) in fields::MESSAGES {
            let properties = openapi.properties_like(message);
            for field in fields.iter() {
                let Wire::M(inner) = field.wire else { continue };
                let inner_fields = table
                    .get(&inner.to_lowercase())
                    .copied()
                    .unwrap_or_default();
                let embedded = !properties.is_empty()
                    && named(&properties, field.name).is_none()
                    && inner_fields
                        .iter()
                        .any(|f| named(&properties, f.name).is_some());
                if embedded {
                    inlined
                        .entry(inner.to_lowercase())
                        .or_default()
                        .extend(&properties);
                }
            }
        }
        let messages = fields::MESSAGES
            .iter()
            .map(|(message, fields)| {
                let own = openapi.properties_like(message);
                let properties = match inlined.get(&message.to_lowercase()) {
                    Some(parent) if own.is_empty() => parent.clone(),
                    _ => own,
                };
                let known = fields
                    .iter()
                    .filter_map(|field| {
                        let json = match named(&properties, field.name) {
                            Some(property) => Some(property),
                            // No schema (DeleteOptions): the proto name.
                            None if properties.is_empty() => Some(camel(field.name)),
                            None => match field.wire {
                                Wire::M(inner) if inlined.contains_key(&inner.to_lowercase()) => {
                                    None
                                }
                                // A field newer than the served API: ignored,
                                // as upstream ignores unknown protobuf fields.
                                _ => return None,
                            },
                        };
                        Some((field.tag, Known { json, field }))
                    })
                    .collect();
                (message.to_lowercase(), known)
            })
            .collect();
        Decoder { messages }
    }

    /// Decodes a message of the schema `schema_name` (an OpenAPI name, such
    /// as `io.k8s.api.apps.v1.Deployment`).
    pub fn decode(&self, schema_name: &str, bytes: &[u8]) -> Result<Value, String> {
        self.message(&schema_name.to_lowercase(), bytes)
    }

    fn message(&self, schema: &str, bytes: &[u8]) -> Result<Value, String> {
        if let Some(special) = special(schema, bytes)? {
            return Ok(special);
        }
        let fields = self
            .messages
            .get(schema)
            .ok_or_else(|| format!("no protobuf decoding is known for {schema}"))?;
        let mut object = Map::new();
        for item in Reader(bytes) {
            let (tag, value) = item?;
            let Some(known) = fields.get(&tag) else {
                continue;
            };
            let Some(decoded) = self.field(known.field.wire, value)? else {
                continue;
            };
            let Some(json) = &known.json else {
                if let Value::Object(inlined) = decoded {
                    object.extend(inlined);
                }
                continue;
            };
            match (known.field.repeated, &known.field.wire) {
                (_, Wire::MapString | Wire::MapBytes | Wire::MapMessage(_)) => {
                    let entry = object.entry(json.clone()).or_insert_with(|| json!({}));
                    if let (Some(map), Value::Array(pair)) = (entry.as_object_mut(), decoded) {
                        if let [Value::String(key), value] = &pair[..] {
                            map.insert(key.clone(), value.clone());
                        }
                    }
                }
                (true, _) => match decoded {
                    // A packed run of numbers.
                    Value::Array(items) if !matches!(known.field.wire, Wire::M(_)) => object
                        .entry(json.clone())
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                        .expect("a list")
                        .extend(items),
                    item => object
                        .entry(json.clone())
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                        .expect("a list")
                        .push(item),
                },
                (false, _) => {
                    object.insert(json.clone(), decoded);
                }
            }
        }
        // Empty strings stand for unset fields (see the module's notes), as
        // does an object template's zero generation.
        object.retain(|_, v| v.as_str() != Some(""));
        if schema == "io.k8s.apimachinery.pkg.apis.meta.v1.objectmeta"
            && object.get("generation") == Some(&json!(0))
        {
            object.remove("generation");
        }
        Ok(Value::Object(object))
    }

    /// One field's value; `None` for a value that means "unset". Map
    /// entries come back as `[key, value]`; packed numbers as a list.
    fn field(&self, wire: Wire, value: Value_<'_>) -> Result<Option<Value>, String> {
        Ok(Some(match (wire, value) {
            (Wire::String, Value_::Bytes(b)) => json!(text(b)?),
            (Wire::Bytes, Value_::Bytes(b)) => {
                json!(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (Wire::Int32, Value_::Varint(v)) => json!(v as i64 as i32),
            (Wire::Int64, Value_::Varint(v)) => json!(v as i64),
            (Wire::Bool, Value_::Varint(v)) => json!(v != 0),
            (Wire::Double, Value_::Fixed64(v)) => json!(f64::from_bits(v)),
            (Wire::Int32 | Wire::Int64 | Wire::Bool, Value_::Bytes(packed)) => {
                let mut items = Vec::new();
                let mut rest = packed;
                while !rest.is_empty() {
                    let (v, used) = varint(rest)?;
                    rest = &rest[used..];
                    items.push(match wire {
                        Wire::Int32 => json!(v as i64 as i32),
                        Wire::Int64 => json!(v as i64),
                        _ => json!(v != 0),
                    });
                }
                Value::Array(items)
            }
            (Wire::M(schema), Value_::Bytes(b)) => {
                let decoded = self.message(&schema.to_lowercase(), b)?;
                if decoded.is_null() {
                    return Ok(None);
                }
                decoded
            }
            (Wire::MapString | Wire::MapBytes | Wire::MapMessage(_), Value_::Bytes(entry)) => {
                let (mut key, mut value) = (String::new(), Value::Null);
                for item in Reader(entry) {
                    match item? {
                        (1, Value_::Bytes(b)) => key = text(b)?,
                        (2, v) => {
                            let value_wire = match wire {
                                Wire::MapString => Wire::String,
                                Wire::MapBytes => Wire::Bytes,
                                Wire::MapMessage(schema) => Wire::M(schema),
                                _ => unreachable!("a map"),
                            };
                            value = self.field(value_wire, v)?.unwrap_or(Value::Null);
                        }
                        _ => {}
                    }
                }
                if value.is_null() {
                    value = match wire {
                        Wire::MapMessage(_) => json!({}),
                        _ => json!(""),
                    };
                }
                json!([key, value])
            }
            (wire, _) => return Err(format!("a field of type {wire:?} has the wrong wire type")),
        }))
    }
}

/// The messages whose JSON form is not an object.
fn special(schema: &str, bytes: &[u8]) -> Result<Option<Value>, String> {
    let fields = || -> Result<HashMap<u64, Value_<'_>>, String> {
        Reader(bytes).collect::<Result<Vec<_>, _>>().map(|v| {
            v.into_iter()
                .map(|(tag, value)| (u64::from(tag), value))
                .collect()
        })
    };
    let varint_of = |fields: &HashMap<u64, Value_<'_>>, tag| match fields.get(&tag) {
        Some(Value_::Varint(v)) => *v,
        _ => 0,
    };
    let text_of = |fields: &HashMap<u64, Value_<'_>>, tag| match fields.get(&tag) {
        Some(Value_::Bytes(b)) => text(b),
        _ => Ok(String::new()),
    };
    Ok(Some(match schema {
        "io.k8s.apimachinery.pkg.api.resource.quantity" => json!(text_of(&fields()?, 1)?),
        "io.k8s.apimachinery.pkg.util.intstr.intorstring" => {
            let f = fields()?;
            match varint_of(&f, 1) {
                0 => json!(varint_of(&f, 2) as i64 as i32),
                _ => json!(text_of(&f, 3)?),
            }
        }
        "io.k8s.apimachinery.pkg.apis.meta.v1.time"
        | "io.k8s.apimachinery.pkg.apis.meta.v1.microtime" => {
            if bytes.is_empty() {
                // Go writes a zero time as an empty message: unset.
                return Ok(Some(Value::Null));
            }
            let f = fields()?;
            let seconds = varint_of(&f, 1) as i64;
            let nanos = varint_of(&f, 2) as i64 as i32;
            let time = jiff::Timestamp::new(seconds, nanos)
                .map_err(|e| format!("a time out of range: {e}"))?;
            match schema.ends_with("microtime") {
                true => json!(format!("{:.6}", time)),
                false => json!(format!("{:.0}", time)),
            }
        }
        "io.k8s.apimachinery.pkg.apis.meta.v1.fieldsv1" => {
            let raw = text_of(&fields()?, 1)?;
            serde_json::from_str(&raw).map_err(|e| format!("a FieldsV1 that is not JSON: {e}"))?
        }
        _ => return Ok(None),
    }))
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a protobuf string is not UTF-8".into())
}

/// A field's raw value.
#[derive(Debug, Clone, Copy)]
enum Value_<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A fixed32 (no decoded field has one: skipped).
    Fixed32,
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("a truncated or overlong protobuf varint".into())
}

/// The fields of an encoded message, in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Value_<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = (|| {
            let (key, used) = varint(self.0)?;
            let rest = &self.0[used..];
            let tag = u32::try_from(key >> 3).map_err(|_| "a protobuf tag out of range")?;
            let (value, used) = match key & 7 {
                0 => {
                    let (v, n) = varint(rest)?;
                    (Value_::Varint(v), n)
                }
                1 => {
                    let b: [u8; 8] = rest
                        .get(..8)
                        .ok_or("a truncated fixed64")?
                        .try_into()
                        .expect("8");
                    (Value_::Fixed64(u64::from_le_bytes(b)), 8)
                }
                2 => {
                    let (len, n) = varint(rest)?;
                    let len = usize::try_from(len).map_err(|_| "a protobuf length out of range")?;
                    let end = n.checked_add(len).ok_or("a protobuf length out of range")?;
                    let b = rest.get(n..end).ok_or("a truncated protobuf field")?;
                    (Value_::Bytes(b), end)
                }
                5 => {
                    rest.get(..4).ok_or("a truncated fixed32")?;
                    (Value_::Fixed32, 4)
                }
                other => return Err(format!("an unsupported protobuf wire type {other}")),
            };
            self.0 = &rest[used..];
            Ok((tag, value))
        })();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests;
