//! The wire format of kube-apiserver, derived from the types.
//!
//! kube-apiserver decodes every body into its Go struct and writes the
//! struct back: a wrong type anywhere is a decode error
//! (`json: cannot unmarshal string into Go struct field Pod.spec of type
//! v1.PodSpec`), and every response lists its fields in Go struct order with
//! the fields Go writes without `omitempty` present even when zero.
//! [`Types`] compiles the kinds' OpenAPI schemas (k8s-openapi with
//! schemars) into one tree of Go-like types that [`decode`] checks bodies
//! against and [`encode`] writes objects along. The Go field order comes
//! from the protobuf messages (go-to-protobuf numbers a struct's fields in
//! its Go order; `api/src/protobuf/fields.rs`), the non-`omitempty` fields
//! from the schemas' `required` lists (kube-openapi derives them from the
//! `omitempty` tags).

pub mod decode;
pub mod encode;
mod go;

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::Resource;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::protobuf::{fields::MESSAGES, normalized, Wire};
use crate::Registry;

const SCHEMAS: &str = "#/components/schemas/";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// A Go type, as far as its JSON form goes.
#[derive(Debug)]
enum Node {
    /// A struct: its fields by JSON name.
    Struct(Struct),
    /// A slice of the node.
    Slice(usize),
    /// A `map[string]` of the node.
    Map(usize),
    /// A scalar or a type with its own JSON decoding.
    Leaf(Leaf),
}

/// The types with their own JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    String,
    /// `[]byte`: base64 in JSON.
    Bytes,
    Int32,
    Int64,
    Float64,
    Bool,
    /// `metav1.Time`: RFC 3339.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `resource.Quantity`.
    Quantity,
    /// `intstr.IntOrString`.
    IntOrString,
    /// Any JSON (`runtime.RawExtension`, `FieldsV1`, free-form objects).
    Any,
}

impl Leaf {
    /// The zero value Go writes for a field of this type without
    /// `omitempty`, for the scalars (a nil pointer, slice or map writes
    /// `null`, which is left out rather than invented).
    fn zero(self) -> Option<Value> {
        match self {
            Leaf::String => Some(Value::String(String::new())),
            Leaf::Int32 | Leaf::Int64 => Some(Value::from(0)),
            Leaf::Float64 => Some(Value::from(0.0)),
            Leaf::Bool => Some(Value::Bool(false)),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Struct {
    /// The Go type's name (`PodSpec`), as decode errors name the struct.
    name: String,
    /// Its package-qualified name (`v1.PodSpec`), as `reflect` prints it.
    go: String,
    fields: HashMap<String, Field>,
    /// The scalar fields Go writes even when zero, with their zero value.
    zero: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    /// The position in Go struct order.
    rank: u32,
    node: usize,
}

/// Every served kind's Go-like type tree.
#[derive(Debug)]
pub struct Types {
    nodes: Vec<Node>,
    /// The root node of each `(apiVersion, kind)`, lists included.
    kinds: HashMap<(String, String), usize>,
}

impl Types {
    /// The types of the kinds in `registry`, their lists, and the other
    /// objects responses hold (Status, Scale, PartialObjectMetadata).
    pub fn build(registry: &Registry) -> Self {
        let mut generator = SchemaSettings::openapi3().into_generator();
        for kind in registry.types() {
            (kind.schema)(&mut generator);
        }
        generator.subschema_for::<meta::Status>();
        generator.subschema_for::<meta::ListMeta>();
        generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
        generator.subschema_for::<k8s_openapi::api::core::v1::Binding>();
        let definitions = generator.take_definitions(true);
        let mut compiler = Compiler {
            definitions: &definitions,
            nodes: Vec::new(),
            named: HashMap::new(),
            messages: MESSAGES
                .iter()
                .map(|(name, fields)| (name.to_lowercase(), *fields))
                .collect(),
        };
        let mut kinds = HashMap::new();
        let list_meta = compiler.definition(&format!("{META}ListMeta"));
        let object_meta = compiler.definition(&format!("{META}ObjectMeta"));
        let add = |kinds: &mut HashMap<(String, String), usize>,
                   compiler: &mut Compiler,
                   api_version: String,
                   kind: &str,
                   root: usize| {
            let list = compiler.list(&format!("{kind}List"), list_meta, root);
            kinds.insert((api_version.clone(), format!("{kind}List")), list);
            kinds.insert((api_version, kind.to_owned()), root);
        };
        for kind in registry.types() {
            let root = compiler.definition(&kind.schema_name);
            add(
                &mut kinds,
                &mut compiler,
                kind.api_version(),
                kind.kind,
                root,
            );
        }
        for (api_version, kind, name) in [
            resource::<meta::Status>(),
            resource::<k8s_openapi::api::autoscaling::v1::Scale>(),
            resource::<k8s_openapi::api::core::v1::Binding>(),
        ] {
            let root = compiler.definition(&name);
            kinds.insert((api_version.to_owned(), kind.to_owned()), root);
        }
        // PartialObjectMetadata: TypeMeta and ObjectMeta (meta/v1 types.go).
        let partial = compiler.push(Node::Struct(Struct::typed(
            "PartialObjectMetadata",
            [("metadata", object_meta)],
        )));
        add(
            &mut kinds,
            &mut compiler,
            "meta.k8s.io/v1".into(),
            "PartialObjectMetadata",
            partial,
        );
        Self {
            nodes: compiler.nodes,
            kinds,
        }
    }

    /// The root type of an object, by its `apiVersion` and `kind`.
    fn root(&self, object: &Value) -> Option<usize> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        self.kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
            .copied()
    }

    /// The root type of `kind` in `api_version`.
    fn kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
            .copied()
    }

    /// Sets the scalar fields Go writes without `omitempty` to their zero
    /// value where they are absent, in every struct of `object` (a
    /// ReplicaSet's `status.replicas: 0`), as a Go struct written to the
    /// store holds them.
    pub fn fill_zero(&self, object: &mut Value) {
        if let Some(root) = self.root(object) {
            self.fill(root, object);
        }
    }

    fn fill(&self, node: usize, value: &mut Value) {
        match (&self.nodes[node], value) {
            (Node::Struct(s), Value::Object(map)) => {
                for (field, zero) in &s.zero {
                    if !map.contains_key(field) {
                        map.insert(field.clone(), zero.clone());
                    }
                }
                for (key, value) in map.iter_mut() {
                    if let Some(field) = s.fields.get(key) {
                        self.fill(field.node, value);
                    }
                }
            }
            (Node::Slice(item), Value::Array(items)) => {
                for value in items {
                    self.fill(*item, value);
                }
            }
            (Node::Map(item), Value::Object(map)) => {
                for value in map.values_mut() {
                    self.fill(*item, value);
                }
            }
            _ => {}
        }
    }
}

impl Struct {
    /// A struct embedding TypeMeta (`kind`, `apiVersion`) then `fields`.
    fn typed<const N: usize>(name: &str, fields: [(&str, usize); N]) -> Self {
        let mut all = HashMap::new();
        all.insert("kind".into(), Field { rank: 0, node: 0 });
        all.insert("apiVersion".into(), Field { rank: 1, node: 0 });
        for (i, (field, node)) in fields.into_iter().enumerate() {
            all.insert(
                field.into(),
                Field {
                    rank: 2 + i as u32,
                    node,
                },
            );
        }
        Self {
            name: name.into(),
            go: format!("v1.{name}"),
            fields: all,
            zero: Vec::new(),
        }
    }
}

struct Compiler<'a> {
    definitions: &'a Map<String, Value>,
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
    messages: HashMap<String, &'static [crate::protobuf::Field]>,
}

impl Compiler<'_> {
    fn push(&mut self, node: Node) -> usize {
        if self.nodes.is_empty() {
            // Node 0 is a string: TypeMeta's fields point at it.
            self.nodes.push(Node::Leaf(Leaf::String));
        }
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// A `XList`: TypeMeta, ListMeta and `items` (every list type in
    /// upstream's types.go has this shape).
    fn list(&mut self, name: &str, list_meta: usize, item: usize) -> usize {
        let items = self.push(Node::Slice(item));
        self.push(Node::Struct(Struct::typed(
            name,
            [("metadata", list_meta), ("items", items)],
        )))
    }

    /// The node of a named definition, compiled once (types recurse).
    fn definition(&mut self, name: &str) -> usize {
        if let Some(id) = self.named.get(name) {
            return *id;
        }
        let leaf = match name {
            "io.k8s.apimachinery.pkg.api.resource.Quantity" => Some(Leaf::Quantity),
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => Some(Leaf::IntOrString),
            _ if name == format!("{META}Time") => Some(Leaf::Time),
            _ if name == format!("{META}MicroTime") => Some(Leaf::MicroTime),
            _ => None,
        };
        let id = self.push(Node::Leaf(leaf.unwrap_or(Leaf::Any)));
        self.named.insert(name.to_owned(), id);
        if leaf.is_none() {
            let definitions = self.definitions;
            if let Some(schema) = definitions.get(name) {
                self.nodes[id] = self.inline(schema, Some(name));
            }
        }
        id
    }

    /// The node of a property's schema.
    fn schema(&mut self, schema: &Value) -> usize {
        match reference(schema) {
            Some(name) => self.definition(name),
            None => {
                let node = self.inline(schema, None);
                self.push(node)
            }
        }
    }

    fn inline(&mut self, schema: &Value, name: Option<&str>) -> Node {
        let format = schema.get("format").and_then(Value::as_str);
        match schema.get("type").and_then(Value::as_str) {
            Some("string") if format == Some("byte") => Node::Leaf(Leaf::Bytes),
            Some("string") => Node::Leaf(Leaf::String),
            Some("integer") if format == Some("int32") => Node::Leaf(Leaf::Int32),
            Some("integer") => Node::Leaf(Leaf::Int64),
            Some("number") => Node::Leaf(Leaf::Float64),
            Some("boolean") => Node::Leaf(Leaf::Bool),
            Some("array") => match schema.get("items") {
                Some(items) => Node::Slice(self.schema(items)),
                None => Node::Leaf(Leaf::Any),
            },
            _ => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    Node::Struct(self.structure(name.unwrap_or_default(), schema, properties))
                } else if let Some(values) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    Node::Map(self.schema(values))
                } else {
                    Node::Leaf(Leaf::Any)
                }
            }
        }
    }

    fn structure(&mut self, name: &str, schema: &Value, properties: &Map<String, Value>) -> Struct {
        let order = self.order(name, properties);
        let mut fields = HashMap::new();
        for (rank, key) in order.iter().enumerate() {
            let node = self.schema(&properties[key.as_str()]);
            fields.insert(
                key.clone(),
                Field {
                    rank: rank as u32,
                    node,
                },
            );
        }
        let required = schema.get("required").and_then(Value::as_array);
        let zero = order
            .iter()
            .filter(|key| required.is_some_and(|r| r.iter().any(|f| f == key.as_str())))
            .filter_map(|key| match &self.nodes[fields[key.as_str()].node] {
                Node::Leaf(leaf) => leaf.zero().map(|zero| (key.clone(), zero)),
                _ => None,
            })
            .collect();
        let mut parts = name.rsplit('.');
        let short = parts.next().unwrap_or_default().to_owned();
        let package = parts.next().unwrap_or_default();
        Struct {
            go: format!("{package}.{short}"),
            name: short,
            fields,
            zero,
        }
    }

    /// The JSON names of a struct's fields in Go order: TypeMeta's first
    /// (it is embedded first in every kind), then the protobuf message's
    /// fields (embedded structs, which JSON inlines, in place), then any
    /// the message lacks, alphabetically.
    fn order(&self, name: &str, properties: &Map<String, Value>) -> Vec<String> {
        let message = self.messages.get(&name.to_lowercase());
        // TypeMeta is no protobuf field: a message that has its own `kind`
        // (StatusDetails, OwnerReference) embeds none.
        let own_kind = message.is_some_and(|fields| fields.iter().any(|f| f.name == "kind"));
        let type_meta =
            !own_kind && properties.contains_key("kind") && properties.contains_key("apiVersion");
        let mut order: Vec<String> = match type_meta {
            true => vec!["kind".into(), "apiVersion".into()],
            false => Vec::new(),
        };
        if let Some(fields) = message {
            self.expand(fields, properties, &mut order);
        }
        for key in properties.keys() {
            if !order.contains(key) {
                order.push(key.clone());
            }
        }
        order
    }

    fn expand(
        &self,
        fields: &[crate::protobuf::Field],
        properties: &Map<String, Value>,
        order: &mut Vec<String>,
    ) {
        for field in fields {
            let wanted = normalized(field.name);
            match properties.keys().find(|p| normalized(p) == wanted) {
                Some(key) if !order.contains(key) => order.push(key.clone()),
                Some(_) => {}
                None => {
                    if let Wire::M(inner) = field.wire {
                        if let Some(inner) = self.messages.get(&inner.to_lowercase()) {
                            self.expand(inner, properties, order);
                        }
                    }
                }
            }
        }
    }
}

fn resource<T: Resource + schemars::JsonSchema>() -> (&'static str, &'static str, String) {
    (T::API_VERSION, T::KIND, T::schema_name().into_owned())
}

/// The definition a schema refers to, directly or as its one `allOf` part.
fn reference(schema: &Value) -> Option<&str> {
    let direct = schema.get("$ref").and_then(Value::as_str);
    let wrapped = || schema.get("allOf")?.get(0)?.get("$ref")?.as_str();
    direct.or_else(wrapped)?.strip_prefix(SCHEMAS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    pub(crate) static TYPES: LazyLock<Types> = LazyLock::new(|| Types::build(&Registry::builtin()));

    fn names(node: usize) -> Vec<String> {
        let Node::Struct(s) = &TYPES.nodes[node] else {
            panic!("not a struct")
        };
        let mut fields: Vec<(&String, &Field)> = s.fields.iter().collect();
        fields.sort_by_key(|(_, f)| f.rank);
        fields.into_iter().map(|(k, _)| k.clone()).collect()
    }

    fn field(node: usize, name: &str) -> usize {
        let Node::Struct(s) = &TYPES.nodes[node] else {
            panic!("not a struct")
        };
        s.fields[name].node
    }

    #[test]
    fn fields_come_in_go_struct_order() {
        // staging/src/k8s.io/api/apps/v1/types.go: type DeploymentCondition.
        let deployment = TYPES.kind("apps/v1", "Deployment").unwrap();
        assert_eq!(
            names(deployment),
            ["kind", "apiVersion", "metadata", "spec", "status"]
        );
        let status = field(deployment, "status");
        let Node::Slice(condition) = TYPES.nodes[field(status, "conditions")] else {
            panic!()
        };
        assert_eq!(
            names(condition),
            [
                "type",
                "status",
                "lastUpdateTime",
                "lastTransitionTime",
                "reason",
                "message"
            ]
        );
        // staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go: ObjectMeta.
        let meta = field(deployment, "metadata");
        assert_eq!(
            names(meta)[..8],
            [
                "name",
                "generateName",
                "namespace",
                "selfLink",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp"
            ]
        );
        let status = TYPES.kind("v1", "Status").unwrap();
        assert_eq!(
            names(status),
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "details",
                "code"
            ]
        );
    }

    #[test]
    fn embedded_structs_are_inlined_in_place() {
        // core/v1 types.go: Volume is Name then the embedded VolumeSource.
        let pod = TYPES.kind("v1", "Pod").unwrap();
        let Node::Slice(volume) = TYPES.nodes[field(field(pod, "spec"), "volumes")] else {
            panic!()
        };
        let order = names(volume);
        assert_eq!(order[..3], ["name", "hostPath", "emptyDir"]);
    }

    #[test]
    fn required_scalars_are_filled_with_their_zero() {
        let mut rs = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": { "name": "x" },
            "status": { "readyReplicas": 1 },
        });
        TYPES.fill_zero(&mut rs);
        assert_eq!(
            rs["status"],
            serde_json::json!({ "readyReplicas": 1, "replicas": 0 })
        );
        let mut ds =
            serde_json::json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "status": {} });
        TYPES.fill_zero(&mut ds);
        for field in [
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ] {
            assert_eq!(ds["status"][field], 0, "{field}");
        }
        // An absent struct stays absent: only present structs are Go values.
        let mut rc = serde_json::json!({ "apiVersion": "v1", "kind": "ReplicationController" });
        TYPES.fill_zero(&mut rc);
        assert!(rc.get("status").is_none());
    }
}
