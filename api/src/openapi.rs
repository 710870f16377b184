//! The OpenAPI v3 documents of every group version, generated from the
//! types' schemas (`k8s-openapi` with `schemars`), and the strict check of
//! a body against them (unknown fields), as `fieldValidation=Strict` asks.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::{Registry, ResourceType};

const SCHEMAS: &str = "#/components/schemas/";

/// The documents, by group-version path (`api/v1`, `apis/apps/v1`), and
/// every definition they hold.
#[derive(Debug, Clone)]
pub struct OpenApi {
    documents: BTreeMap<String, (Value, String)>,
    definitions: Map<String, Value>,
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string", "uniqueItems": true } })
}

fn write_parameters() -> Vec<Value> {
    vec![
        query_parameter("dryRun", "When present, indicates that modifications should not be persisted."),
        query_parameter("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query_parameter(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        ),
    ]
}

fn operation(
    resource: &ResourceType,
    action: &str,
    verb: &str,
    parameters: Vec<Value>,
    response: &str,
) -> Value {
    let gvk =
        json!({ "group": resource.group, "version": resource.version, "kind": resource.kind });
    json!({
        "operationId": format!("{verb}{}", resource.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": parameters,
        "responses": { "200": { "description": "OK", "content": {
            "application/json": { "schema": { "$ref": format!("{SCHEMAS}{response}") } }
        } } },
    })
}

fn paths(resource: &ResourceType, prefix: &str) -> Vec<(String, Value)> {
    let collection = if resource.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{prefix}/{}", resource.plural)
    };
    let mut path_parameters = vec![];
    if resource.namespaced {
        path_parameters.push(json!({ "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    let schema = resource.schema_name.as_str();
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    let body = json!({ "content": { "application/json": { "schema": { "$ref": format!("{SCHEMAS}{schema}") } } }, "required": true });
    let mut create = operation(resource, "post", "create", write_parameters(), schema);
    create["requestBody"] = body.clone();
    let collection_item = json!({
        "parameters": path_parameters,
        "get": operation(resource, "list", "list", vec![
            query_parameter("labelSelector", "A selector to restrict the list of returned objects by their labels."),
            query_parameter("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
            query_parameter("limit", "The maximum number of responses to return for a list call."),
            query_parameter("continue", "The continue option should be set when retrieving more results from the server."),
            query_parameter("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from."),
            query_parameter("watch", "Watch for changes to the described resources."),
        ], schema),
        "post": create,
        "delete": operation(resource, "deletecollection", "deleteCollection", vec![], status),
    });
    let mut named = path_parameters;
    named.insert(
        0,
        json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }),
    );
    let mut replace = operation(resource, "put", "replace", write_parameters(), schema);
    replace["requestBody"] = body;
    let mut patch_parameters = write_parameters();
    patch_parameters.push(query_parameter(
        "force",
        "Force is going to \"force\" Apply requests.",
    ));
    let mut patch = operation(resource, "patch", "patch", patch_parameters, schema);
    let patch_body = json!({ "schema": { "type": "object" } });
    patch["requestBody"] = json!({ "content": {
        "application/json-patch+json": patch_body,
        "application/merge-patch+json": patch_body,
        "application/strategic-merge-patch+json": patch_body,
        "application/apply-patch+yaml": patch_body,
    }, "required": true });
    let item = json!({
        "parameters": named,
        "get": operation(resource, "get", "read", vec![], schema),
        "put": replace,
        "patch": patch,
        "delete": operation(resource, "delete", "delete", vec![], schema),
    });
    vec![
        (collection.clone(), collection_item),
        (format!("{collection}/{{name}}"), item),
    ]
}

impl OpenApi {
    /// Generates the documents of every group version in `registry`.
    pub fn build(registry: &Registry) -> Self {
        let mut versions: Vec<(&str, &str)> = vec![("", "v1")];
        versions.extend(registry.groups());
        let mut documents = BTreeMap::new();
        let mut definitions = Map::new();
        for (group, version) in versions {
            let (key, prefix) = if group.is_empty() {
                (format!("api/{version}"), format!("/api/{version}"))
            } else {
                (
                    format!("apis/{group}/{version}"),
                    format!("/apis/{group}/{version}"),
                )
            };
            let mut generator = SchemaSettings::openapi3().into_generator();
            let kinds: Vec<&ResourceType> = registry
                .types()
                .iter()
                .filter(|t| t.group == group && t.version == version)
                .collect();
            let mut paths = Map::new();
            for kind in &kinds {
                (kind.schema)(&mut generator);
                for (path, item) in self::paths(kind, &prefix) {
                    paths.insert(path, item);
                }
            }
            // The body of `serviceaccounts/NAME/token`, served beside them.
            if kinds.iter().any(|k| k.has(crate::Subresource::Token)) {
                generator.subschema_for::<k8s_openapi::api::authentication::v1::TokenRequest>();
            }
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
            generator
                .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
            let mut schemas = generator.take_definitions(true);
            for kind in &kinds {
                if let Some(Value::Object(schema)) = schemas.get_mut(&kind.schema_name) {
                    let gvk = json!([{ "group": kind.group, "version": kind.version, "kind": kind.kind }]);
                    schema.insert("x-kubernetes-group-version-kind".into(), gvk);
                }
            }
            annotate_patch_strategies(&mut schemas);
            definitions.extend(schemas.clone());
            let document = json!({
                "openapi": "3.0.0",
                "info": { "title": "Kubernetes", "version": "v1.33.0" },
                "paths": paths,
                "components": { "schemas": schemas },
            });
            let mut hasher = std::hash::DefaultHasher::new();
            document.to_string().hash(&mut hasher);
            documents.insert(key, (document, format!("{:016X}", hasher.finish())));
        }
        Self {
            documents,
            definitions,
        }
    }

    /// The `/openapi/v3` index: each group version's document and its hash.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .documents
            .iter()
            .map(|(key, (_, hash))| {
                (
                    key.clone(),
                    json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}") }),
                )
            })
            .collect();
        json!({ "paths": paths })
    }

    /// The document of `api/v1` or `apis/GROUP/VERSION`.
    pub fn document(&self, key: &str) -> Option<&Value> {
        self.documents.get(key).map(|(document, _)| document)
    }

    /// The definition named `name` (`io.k8s.api.core.v1.Pod`).
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The fields of `value` that the schema `schema_name` does not know,
    /// as dotted paths (`spec.containers[0].imagePullPolcy`).
    pub fn unknown_fields(&self, schema_name: &str, value: &Value) -> Vec<String> {
        let mut unknown = Vec::new();
        if let Some(schema) = self.definitions.get(schema_name) {
            self.walk(schema, value, "", &mut unknown);
        }
        unknown
    }

    /// The definition name of the object held in `field` of `schema_name`,
    /// if it is a reference to one.
    pub fn field_schema(&self, schema_name: &str, field: &str) -> Option<String> {
        let property = self
            .definitions
            .get(schema_name)?
            .get("properties")?
            .get(field)?;
        reference(property)
    }

    /// The property names of the definition named `name`, compared without
    /// regard to case (protobuf message names spell `PodDNSConfig` as
    /// `PodDnsConfig`).
    pub fn properties_like(&self, name: &str) -> Vec<&str> {
        let definition = self.definitions.get(name).or_else(|| {
            self.definitions
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, definition)| definition)
        });
        definition
            .and_then(|d| d.get("properties"))
            .and_then(Value::as_object)
            .map(|properties| properties.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The definition name of the elements of the list `field` of
    /// `schema_name`, if they are references to one.
    pub fn item_schema(&self, schema_name: &str, field: &str) -> Option<String> {
        let property = self
            .definitions
            .get(schema_name)?
            .get("properties")?
            .get(field)?;
        reference(property.get("items")?)
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(SCHEMAS))
        {
            Some(name) => self.definitions.get(name).unwrap_or(schema),
            None => schema,
        }
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, unknown: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.walk(part, value, path, unknown);
            }
        }
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::Object(object) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (key, field) in object {
                    match (properties.and_then(|p| p.get(key)), additional) {
                        (Some(property), _) => self.walk(property, field, &join(key), unknown),
                        (None, Some(additional)) => {
                            self.walk(additional, field, &join(key), unknown)
                        }
                        (None, None) if properties.is_some() => unknown.push(join(key)),
                        // A free-form object (no properties, no value schema).
                        (None, None) => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &format!("{path}[{i}]"), unknown);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Marks the fields that merge (and their keys) as upstream's documents do.
fn annotate_patch_strategies(schemas: &mut Map<String, Value>) {
    fn property<'a>(
        schemas: &'a mut Map<String, Value>,
        schema: &str,
        field: &str,
    ) -> Option<&'a mut Map<String, Value>> {
        schemas
            .get_mut(schema)?
            .get_mut("properties")?
            .get_mut(field)?
            .as_object_mut()
    }
    for (schema, field, key) in crate::strategic::merging_lists() {
        if let Some(property) = property(schemas, schema, field) {
            let strategy = if schema.ends_with("PodSpec") && field == "volumes" {
                "merge,retainKeys"
            } else {
                "merge"
            };
            property.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if let Some(key) = key {
                property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
    }
    for (schema, field) in crate::strategic::RETAIN_KEYS {
        if let Some(property) = property(schemas, schema, field) {
            property.insert("x-kubernetes-patch-strategy".into(), json!("retainKeys"));
        }
    }
}

/// The definition a schema refers to, directly or as the one `allOf` part.
fn reference(schema: &Value) -> Option<String> {
    let direct = schema.get("$ref").and_then(Value::as_str);
    let wrapped = || schema.get("allOf")?.get(0)?.get("$ref")?.as_str();
    direct
        .or_else(wrapped)?
        .strip_prefix(SCHEMAS)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_paths_schemas_and_kinds() {
        let openapi = OpenApi::build(&Registry::builtin());
        let index = openapi.index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let core = openapi.document("api/v1").unwrap();
        let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert!(
            core["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["image"]
                .is_object()
        );
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(
            core["paths"]["/api/v1/nodes/{name}"].is_object(),
            "cluster-scoped paths have no namespace"
        );
    }

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let openapi = OpenApi::build(&Registry::builtin());
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"any": "thing"}, "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolcy": "Always",
                                       "ports": [{"containerPort": 80, "nope": true}]}]},
        });
        assert_eq!(
            openapi.unknown_fields("io.k8s.api.core.v1.Pod", &pod),
            [
                "metadata.bogus",
                "spec.containers[0].imagePullPolcy",
                "spec.containers[0].ports[0].nope"
            ]
        );
        let clean = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(openapi
            .unknown_fields("io.k8s.api.core.v1.ConfigMap", &clean)
            .is_empty());
    }
}
