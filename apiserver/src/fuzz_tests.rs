//! The schema fuzz: for every served kind, a minimal object with one
//! wrong-typed value at each field path its OpenAPI schema reaches (a
//! string where an object goes, an object where a string goes, a list where
//! a struct goes, bad base64, a bad quantity or time...), POSTed through
//! `oneshot`. Each must be a 400 `Status` (kube-apiserver's decode error),
//! never a 2xx, a 5xx or a panic, and the store must be unchanged.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_api::openapi::OpenApi;
use skiff_api::Registry;
use skiff_store::{HistoryLimits, MvccStore, Store};
use tower::ServiceExt;

use crate::{router, AppState};

const SCHEMAS: &str = "#/components/schemas/";
/// How deep into nested definitions the fuzz goes, and how many bodies it
/// posts per kind at most (spread over all the paths found): enough to
/// reach every top-level field and the common nested ones in seconds.
const DEPTH: usize = 6;
const PER_KIND: usize = 150;

/// One step of a path: a field, an element of a list, a value of a map.
#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Item,
    Value,
}

struct Fuzz<'a> {
    openapi: &'a OpenApi,
    found: Vec<(Vec<Step>, Value)>,
}

fn reference(schema: &Value) -> Option<&str> {
    let direct = schema.get("$ref").and_then(Value::as_str);
    let wrapped = || schema.get("allOf")?.get(0)?.get("$ref")?.as_str();
    direct.or_else(wrapped)?.strip_prefix(SCHEMAS)
}

impl Fuzz<'_> {
    /// Records the wrong values for the field at `path` of `schema`, and
    /// walks into it. `seen` holds the definitions on the way (types
    /// recurse).
    fn walk(&mut self, schema: &Value, path: &mut Vec<Step>, seen: &mut Vec<String>) {
        let wrong = |values: Vec<Value>, found: &mut Vec<(Vec<Step>, Value)>, path: &[Step]| {
            // One wrong value per path, chosen by the path's length so the
            // kinds of mistakes vary over the tree.
            let value = values[path.len() % values.len()].clone();
            found.push((path.to_vec(), value));
        };
        if let Some(name) = reference(schema) {
            match name {
                "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
                    return wrong(vec![json!("lots"), json!(true)], &mut self.found, path)
                }
                "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
                    return wrong(
                        vec![json!({}), json!(true), json!(1.5)],
                        &mut self.found,
                        path,
                    )
                }
                "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
                | "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => {
                    return wrong(vec![json!("soon"), json!(5)], &mut self.found, path)
                }
                _ => {}
            }
            if seen.iter().any(|s| s == name) || seen.len() >= DEPTH {
                return;
            }
            let Some(definition) = self.openapi.definition(name) else {
                return;
            };
            seen.push(name.to_owned());
            self.walk(definition, path, seen);
            seen.pop();
            return;
        }
        let format = schema.get("format").and_then(Value::as_str);
        match schema.get("type").and_then(Value::as_str) {
            Some("string") if format == Some("byte") => {
                wrong(vec![json!("not base64!"), json!(5)], &mut self.found, path)
            }
            Some("string") => wrong(
                vec![json!({}), json!(5), json!(true)],
                &mut self.found,
                path,
            ),
            Some("integer") => wrong(
                vec![json!("x"), json!(1.5), json!([])],
                &mut self.found,
                path,
            ),
            Some("number") => wrong(vec![json!("x")], &mut self.found, path),
            Some("boolean") => wrong(vec![json!("x"), json!(1)], &mut self.found, path),
            Some("array") => {
                wrong(vec![json!("x"), json!({})], &mut self.found, path);
                if let Some(items) = schema.get("items") {
                    path.push(Step::Item);
                    self.walk(items, path, seen);
                    path.pop();
                }
            }
            _ => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    if !path.is_empty() {
                        wrong(vec![json!("x"), json!(5), json!([])], &mut self.found, path);
                    }
                    for (field, property) in properties {
                        if path.is_empty() && (field == "apiVersion" || field == "kind") {
                            continue;
                        }
                        path.push(Step::Field(field.clone()));
                        self.walk(property, path, seen);
                        path.pop();
                    }
                } else if let Some(values) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    wrong(vec![json!("x"), json!([])], &mut self.found, path);
                    path.push(Step::Value);
                    self.walk(values, path, seen);
                    path.pop();
                }
                // Free-form JSON takes anything.
            }
        }
    }
}

/// `base` with `value` set at `path`, the containers on the way created.
fn with(base: &Value, path: &[Step], value: Value) -> Value {
    fn set(at: &mut Value, path: &[Step], value: Value) {
        let Some((step, rest)) = path.split_first() else {
            *at = value;
            return;
        };
        let slot = match step {
            Step::Field(_) | Step::Value => {
                if !at.is_object() {
                    *at = json!({});
                }
                let key = match step {
                    Step::Field(name) => name.as_str(),
                    _ => "k",
                };
                at.as_object_mut()
                    .expect("an object")
                    .entry(key)
                    .or_insert(Value::Null)
            }
            Step::Item => {
                *at = json!([null]);
                &mut at[0]
            }
        };
        set(slot, rest, value);
    }
    let mut body = base.clone();
    set(&mut body, path, value);
    body
}

fn shown(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Field(name) => format!(".{name}"),
            Step::Item => "[0]".into(),
            Step::Value => "[k]".into(),
        })
        .collect()
}

#[tokio::test]
async fn wrong_types_at_every_field_of_every_kind_are_refused_with_400() {
    let registry = Registry::builtin();
    let openapi = OpenApi::build(&registry);
    let store: Arc<dyn Store> = Arc::new(MvccStore::memory(HistoryLimits::default()));
    let state = AppState::new(store.clone());
    let before = store.current_revision();
    let mut posted = 0;
    for resource in registry.types() {
        let mut fuzz = Fuzz {
            openapi: &openapi,
            found: Vec::new(),
        };
        let root = json!({ "$ref": format!("{SCHEMAS}{}", resource.schema_name) });
        fuzz.walk(&root, &mut Vec::new(), &mut Vec::new());
        assert!(fuzz.found.len() > 3, "{} has fields", resource.kind);
        let stride = fuzz.found.len().div_ceil(PER_KIND);
        let base = json!({
            "apiVersion": resource.api_version(), "kind": resource.kind,
            "metadata": { "name": "fuzz" },
        });
        let collection = match (resource.group, resource.namespaced) {
            ("", true) => format!("/api/v1/namespaces/default/{}", resource.plural),
            ("", false) => format!("/api/v1/{}", resource.plural),
            (group, true) => format!(
                "/apis/{group}/{}/namespaces/default/{}",
                resource.version, resource.plural
            ),
            (group, false) => format!("/apis/{group}/{}/{}", resource.version, resource.plural),
        };
        for (path, value) in fuzz.found.iter().step_by(stride) {
            let body = with(&base, path, value.clone());
            let request = Request::post(&collection)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = router(state.clone()).oneshot(request).await.unwrap();
            let code = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let status: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let at = format!("{} {} = {value}: {status}", resource.kind, shown(path));
            assert_eq!(code, StatusCode::BAD_REQUEST, "{at}");
            assert_eq!(status["kind"], "Status", "{at}");
            assert_eq!(status["reason"], "BadRequest", "{at}");
            posted += 1;
        }
    }
    assert!(posted > 1000, "{posted} bodies posted");
    assert_eq!(store.current_revision(), before, "nothing was stored");
}
