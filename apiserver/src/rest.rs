//! The REST verbs of every kind: one handler that finds the resource in the
//! registry from the path and carries out get, list, watch, create, update,
//! patch, delete and deletecollection against the store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use skiff_api::fields::FieldSelector;
use skiff_api::labels::Selector;
use skiff_api::protobuf;
use skiff_api::services::{Held, Settled};
use skiff_api::validation::{
    label_1035_error, label_error, label_value_error, qualified_name_error, subdomain_error,
};
use skiff_api::{NameRule, ResourceType, Subresource};
use skiff_store::{Filter, ListOptions, Preconditions};

use crate::allocator::Owner;
use crate::error::{ApiError, Cause};
use crate::object::{
    from_stored, generated_name, identify, label, meta_mut, meta_str, now, spec_changed, to_stored,
};
use crate::path::{parse, Target};
use crate::{AppState, MAX_BODY_BYTES};

/// A change to an object: the patch a request applies to the current one.
type Change = Box<dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync>;

/// Query parameters, by name.
pub type Query = HashMap<String, String>;

/// Routes a resource request to its verb.
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = crate::wire::read_body(body, MAX_BODY_BYTES).await?;
    let registry = state.registry.clone();
    let target = parse(&registry, parts.uri.path()).ok_or_else(ApiError::no_route)?;
    let query: Query = parts
        .uri
        .query()
        .map(|q| {
            url_decode_pairs(q).map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))
        })
        .transpose()?
        .unwrap_or_default();
    let api = Api {
        state: &state,
        target: &target,
        query: &query,
        headers: &parts.headers,
    };
    match (target.subresource, &parts.method) {
        (None, _) => {}
        (Some(Subresource::Status), &Method::GET | &Method::PUT | &Method::PATCH) => {}
        (Some(Subresource::Finalize), &Method::PUT) => {}
        (Some(Subresource::Log), &Method::GET) => {
            return api.log(target.name.as_deref().unwrap_or_default()).await
        }
        (Some(Subresource::Scale), _) => {
            return api
                .scale(
                    target.name.as_deref().unwrap_or_default(),
                    &parts.method,
                    &body,
                )
                .await
        }
        (Some(Subresource::Binding), &Method::POST) => {
            return api
                .bind(target.name.as_deref().unwrap_or_default(), &body)
                .await
        }
        (Some(sub), method) => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on the {} subresource",
                sub.name()
            )))
        }
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (&parts.method, target.name.as_deref()) {
        (&Method::GET, None) if watching => crate::watch::serve(&api).await,
        (&Method::GET, None) => api.list().await,
        (&Method::GET, Some(name)) => api.get(name).await,
        (&Method::POST, None) => api.create(&body).await,
        (&Method::PUT, Some(name)) => api.update(name, &body).await,
        (&Method::PATCH, Some(name)) => api.patch(name, &body).await,
        (&Method::DELETE, Some(name)) => api.delete(name, &body).await,
        (&Method::DELETE, None) => api.delete_collection().await,
        (method, _) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}",
            parts.uri.path()
        ))),
    }
}

fn url_decode_pairs(query: &str) -> Result<Query, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "query is not UTF-8".into())
}

/// One request against one resource.
pub struct Api<'a> {
    pub state: &'a AppState,
    pub target: &'a Target<'a>,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        crate::wire::to_json(value),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(crate::audit::Written::of(value));
    response
}

/// Adds a `Warning` header per warning, as upstream reports them.
fn warned(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(value) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// Parses a request body: JSON, YAML, or Kubernetes protobuf (what
/// client-go's typed clients send).
fn parse_body(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" | "*/*" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        "application/yaml" => serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}"))),
        "application/vnd.kubernetes.protobuf" => parse_protobuf(state, body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid protobuf: {e}"))),
        other => Err(ApiError::unsupported_media(format!(
            "the body's content type {other:?} is not supported; send application/json, application/yaml or application/vnd.kubernetes.protobuf"
        ))),
    }
}

/// A protobuf body as JSON, its message decoded by the kind its envelope
/// names.
fn parse_protobuf(state: &AppState, body: &[u8]) -> Result<Value, String> {
    let envelope = protobuf::envelope(body)?;
    let schema = match state
        .registry
        .by_kind(&envelope.api_version, &envelope.kind)
    {
        Some(resource) => resource.schema_name.clone(),
        None if envelope.kind == "DeleteOptions" => {
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into()
        }
        // Subresource bodies (Scale, Binding, Eviction): upstream's names.
        None => {
            let (group, version) = match envelope.api_version.split_once('/') {
                Some((group, version)) => (group.split('.').next().unwrap_or(group), version),
                None => ("core", envelope.api_version.as_str()),
            };
            format!("io.k8s.api.{group}.{version}.{}", envelope.kind)
        }
    };
    let mut object = state.protobuf().decode(&schema, &envelope.raw)?;
    object["apiVersion"] = json!(envelope.api_version);
    object["kind"] = json!(envelope.kind);
    Ok(object)
}

impl Api<'_> {
    fn resource(&self) -> &ResourceType {
        self.target.resource
    }

    fn namespace(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn key(&self, name: &str) -> String {
        self.resource().key(self.namespace(), name)
    }

    /// The label and field selectors of the query, as one store filter.
    pub fn filter(&self) -> Result<Option<Filter>, ApiError> {
        let labels = match self.query.get("labelSelector") {
            Some(s) => Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => Selector::default(),
        };
        let fields = match self.query.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s, self.resource())
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        if labels.is_empty() && fields.terms.is_empty() {
            return Ok(None);
        }
        Ok(Some(Filter(Arc::new(move |object| {
            serde_json::from_slice::<Value>(&object.value)
                .is_ok_and(|v| labels.matches(|k| label(&v, k)) && fields.matches(&v))
        }))))
    }

    async fn get(&self, name: &str) -> Result<Response, ApiError> {
        let object = self
            .state
            .store
            .get(&self.key(name))
            .await
            .map_err(|e| ApiError::from_store(e, self.resource(), name))?;
        let object = from_stored(&object)?;
        if crate::table::wanted(self.headers) {
            let metadata = json!({ "resourceVersion": object["metadata"]["resourceVersion"] });
            let table = crate::table::render(
                self.resource(),
                &[object],
                metadata,
                crate::table::include(self.query)?,
            );
            return Ok(json_response(StatusCode::OK, &table));
        }
        if crate::table::metadata_only(self.headers) {
            return Ok(json_response(
                StatusCode::OK,
                &crate::table::partial(&object),
            ));
        }
        Ok(json_response(StatusCode::OK, &object))
    }

    async fn list(&self) -> Result<Response, ApiError> {
        let limit = match self.query.get("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let continue_token = match self.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let revision = match self.query.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(rv) => {
                let rv = parse_revision(rv)?;
                let exact = self
                    .query
                    .get("resourceVersionMatch")
                    .is_some_and(|m| m == "Exact");
                // NotOlderThan (the default): the latest state is never older.
                if rv > self.state.store.current_revision() || exact {
                    Some(rv)
                } else {
                    None
                }
            }
        };
        let options = ListOptions {
            revision,
            limit,
            continue_token,
            filter: self.filter()?,
        };
        let list = self.list_stored(options).await?;
        let items = list
            .items
            .iter()
            .map(from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        let mut metadata = json!({ "resourceVersion": list.revision.to_string() });
        if let Some(token) = &list.continue_token {
            metadata["continue"] = json!(base64::engine::general_purpose::STANDARD.encode(token));
        }
        if crate::table::wanted(self.headers) {
            let table = crate::table::render(
                self.resource(),
                &items,
                metadata,
                crate::table::include(self.query)?,
            );
            return Ok(json_response(StatusCode::OK, &table));
        }
        if crate::table::metadata_only(self.headers) {
            let body = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items.iter().map(crate::table::partial).collect::<Vec<_>>(),
            });
            return Ok(json_response(StatusCode::OK, &body));
        }
        let body = json!({
            "kind": self.resource().list_kind,
            "apiVersion": self.resource().api_version(),
            "metadata": metadata,
            "items": items,
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Checks `apiVersion` and `kind` (filling them in when absent) and the
    /// namespace of a body against the request.
    fn check_identity(&self, object: &mut Value) -> Result<(), ApiError> {
        let resource = self.resource();
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        crate::wire::check(resource, object)?;
        let api_version = resource.api_version();
        match object.get("apiVersion").and_then(Value::as_str) {
            None => object["apiVersion"] = json!(api_version),
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
        }
        match object.get("kind").and_then(Value::as_str) {
            None => object["kind"] = json!(resource.kind),
            Some(k) if k == resource.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    resource.kind
                )))
            }
        }
        let namespace = self.namespace().map(str::to_owned);
        let meta = meta_mut(object);
        match (namespace, meta.get("namespace").and_then(Value::as_str)) {
            (Some(ns), Some(body)) if body != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            (Some(ns), _) => {
                meta.insert("namespace".into(), json!(ns));
            }
            (None, _) => {
                meta.remove("namespace");
            }
        }
        Ok(())
    }

    /// Checks `object` for fields its schema does not know, as the request's
    /// `fieldValidation` asks: `Strict` refuses them (400), `Warn` (the
    /// default) returns them as warnings, `Ignore` does not look.
    fn field_validation(&self, object: &Value) -> Result<Vec<String>, ApiError> {
        let mode = self
            .query
            .get("fieldValidation")
            .map(String::as_str)
            .unwrap_or("Warn");
        if !matches!(mode, "Strict" | "Warn" | "Ignore") {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {mode:?}"
            )));
        }
        if mode == "Ignore" {
            return Ok(Vec::new());
        }
        let unknown: Vec<String> = self
            .state
            .openapi()
            .unknown_fields(&self.resource().schema_name, object)
            .into_iter()
            .map(|field| format!("unknown field \"{field}\""))
            .collect();
        if mode == "Strict" && !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                unknown.join(", ")
            )));
        }
        Ok(unknown)
    }

    /// Name, labels and annotations by upstream's rules; 422 with causes.
    fn validate_meta(&self, object: &Value) -> Result<(), ApiError> {
        let resource = self.resource();
        let name = meta_str(object, "name").unwrap_or_default();
        let mut causes = Vec::new();
        let name_error = match resource.names {
            NameRule::Subdomain => subdomain_error(name),
            NameRule::Label => label_error(name),
            NameRule::Label1035 => label_1035_error(name),
        };
        if name.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            });
        } else if let Some(e) = name_error {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: format!("Invalid value: \"{name}\": {e}"),
            });
        }
        causes.extend(
            skiff_api::specs::problems(resource.kind, object)
                .into_iter()
                .map(|(reason, field, message)| Cause {
                    reason,
                    field,
                    message,
                }),
        );
        let meta = object.get("metadata");
        for (field, check_values) in [("labels", true), ("annotations", false)] {
            let Some(map) = meta.and_then(|m| m.get(field)).and_then(Value::as_object) else {
                continue;
            };
            for (key, value) in map {
                if let Some(e) = qualified_name_error(key) {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: format!("metadata.{field}"),
                        message: format!("Invalid value: \"{key}\": {e}"),
                    });
                }
                let text = value.as_str();
                if text.is_none() {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: format!("metadata.{field}"),
                        message: format!("Invalid value: {value}: must be a string"),
                    });
                } else if let Some(e) = text.filter(|_| check_values).and_then(label_value_error) {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: format!("metadata.{field}"),
                        message: format!("Invalid value: \"{}\": {e}", text.unwrap_or_default()),
                    });
                }
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(resource, name, causes))
        }
    }

    /// Refuses objects in a namespace that does not exist (404) or is
    /// being deleted (403), as upstream's NamespaceLifecycle admission does.
    async fn admit_namespace(&self, name: &str) -> Result<(), ApiError> {
        let Some(namespace) = self.namespace() else {
            return Ok(());
        };
        let namespaces = self
            .state
            .registry
            .by_plural("", "v1", "namespaces")
            .expect("namespaces are served");
        let found = self
            .state
            .store
            .get(&namespaces.key(None, namespace))
            .await
            .map_err(|e| ApiError::from_store(e, namespaces, namespace))?;
        let found = from_stored(&found)?;
        if meta_str(&found, "deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                self.resource().qualified(),
            )));
        }
        Ok(())
    }

    async fn create(&self, body: &[u8]) -> Result<Response, ApiError> {
        let resource = self.resource();
        if resource.namespaced && self.namespace().is_none() {
            return Err(ApiError::method_not_allowed(format!(
                "{} must be created in a namespace: POST to /namespaces/NAMESPACE/{}",
                resource.plural, resource.plural
            )));
        }
        let mut object = parse_body(self.state, self.headers, body)?;
        self.check_identity(&mut object)?;
        let warnings = self.field_validation(&object)?;
        skiff_api::defaults::prepare_for_create(resource.kind, &mut object);
        skiff_api::defaults::apply(resource.kind, &mut object);
        let meta = meta_mut(&mut object);
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => generated_name(prefix),
            _ => String::new(),
        };
        meta.insert("name".into(), json!(name));
        identify(meta);
        meta.insert("generation".into(), json!(1));
        for stale in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(stale);
        }
        if resource.kind == "Namespace" {
            object["status"] = json!({ "phase": "Active" });
            object["spec"] = json!({ "finalizers": ["kubernetes"] });
        }
        self.validate_meta(&object)?;
        self.admit_namespace(&name).await?;
        let reserved = match self.is_service() {
            true => {
                let owner = self.owner(&name);
                let allocator = &self.state.allocator;
                allocator
                    .settle(None, &mut object, resource, &owner)
                    .await?
            }
            false => Held::default(),
        };
        let created = self
            .state
            .store
            .create(&self.key(&name), to_stored(&object))
            .await
            .map_err(|e| ApiError::from_store(e, resource, &name));
        let created = match created {
            Ok(created) => from_stored(&created)?,
            Err(e) => {
                self.state.allocator.release(&reserved).await;
                return Err(e);
            }
        };
        Ok(warned(
            json_response(StatusCode::CREATED, &created),
            &warnings,
        ))
    }

    /// Writes `change(current)` over the stored object with optimistic
    /// concurrency: `expected` (the body's resourceVersion) must match when
    /// given. Identity and bookkeeping fields stay the server's.
    async fn write(
        &self,
        name: &str,
        expected: Option<u64>,
        change: impl Fn(&Value) -> Result<Value, ApiError> + Send + Sync,
    ) -> Result<Value, ApiError> {
        let resource = self.resource();
        let preconditions = Preconditions {
            resource_version: expected,
            uid: None,
        };
        // A Service's spec may need ClusterIPs or node ports reserved before
        // it is written: the update stops, they are reserved, and it runs
        // again with them.
        let settles = self.is_service() && self.target.subresource.is_none();
        let mut reserved = Held::default();
        loop {
            let needs = std::sync::Mutex::new(None);
            let seen = std::sync::Mutex::new(Held::default());
            let written = self
                .write_once(
                    name,
                    &preconditions,
                    &change,
                    settles.then_some((&reserved, &needs, &seen)),
                )
                .await;
            let wanted = needs.into_inner().expect("needs lock");
            match (written, wanted) {
                (Ok(updated), _) => {
                    let holds = Held::of(&updated);
                    let seen = seen.into_inner().expect("seen lock");
                    for spare in [reserved.minus(&holds), seen.minus(&holds)] {
                        self.state.allocator.release(&spare).await;
                    }
                    return self.finish_if_finalized(name, &updated).await;
                }
                (Err(_), Some(needs)) => {
                    let owner = self.owner(name);
                    self.state
                        .allocator
                        .reserve(&needs, &owner, resource, &mut reserved)
                        .await?;
                }
                (Err(e), None) => {
                    self.state.allocator.release(&reserved).await;
                    return Err(e);
                }
            }
        }
    }

    /// Whether the request is for Services.
    fn is_service(&self) -> bool {
        self.resource().kind == "Service"
    }

    /// The Service `name` of the request's namespace, as an allocator owner.
    fn owner<'a>(&'a self, name: &'a str) -> Owner<'a> {
        Owner {
            namespace: self.namespace().unwrap_or_default(),
            name,
        }
    }

    /// One attempt of [`Api::write`]; with `settle`, a Service's addresses
    /// are settled from what is reserved, and what more it needs is left
    /// in the first mutex (failing the attempt), what it held before in the
    /// second.
    async fn write_once(
        &self,
        name: &str,
        preconditions: &Preconditions,
        change: &(impl Fn(&Value) -> Result<Value, ApiError> + Send + Sync),
        settle: Option<(&Held, &NeedsSlot, &std::sync::Mutex<Held>)>,
    ) -> Result<Value, ApiError> {
        let resource = self.resource();
        let update = |current: &skiff_store::Object| -> skiff_store::Result<bytes::Bytes> {
            let current = from_stored(current)?;
            let mut next = change(&current)?;
            self.check_identity(&mut next)?;
            let old_meta = current["metadata"].as_object().cloned().unwrap_or_default();
            if let Some(uid) = meta_str(&next, "uid") {
                if Some(uid) != meta_str(&current, "uid") {
                    return Err(ApiError::conflict(
                        resource,
                        name,
                        "Precondition failed: UID in object meta does not match",
                    )
                    .into());
                }
            }
            if meta_str(&next, "name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&next, "name").unwrap_or_default()
                ))
                .into());
            }
            if self.target.subresource == Some(Subresource::Status) {
                // Through /status only the status changes, and a Pod's
                // labels and annotations: upstream's podStatusStrategy lets
                // kubelets record on them in the same write.
                let mut only = current.clone();
                match next.get("status") {
                    Some(status) => only["status"] = status.clone(),
                    None => drop(only.as_object_mut().and_then(|o| o.remove("status"))),
                }
                if resource.kind == "Pod" {
                    for field in ["labels", "annotations"] {
                        match next["metadata"].get(field) {
                            Some(value) => meta_mut(&mut only).insert(field.into(), value.clone()),
                            None => meta_mut(&mut only).remove(field),
                        };
                    }
                }
                next = only;
            } else if self.target.subresource == Some(Subresource::Finalize) {
                // Through /finalize only spec.finalizers changes.
                let mut only = current.clone();
                only["spec"]["finalizers"] = next["spec"]["finalizers"].clone();
                next = only;
            } else if resource.has(Subresource::Status) {
                // The status is written through /status alone.
                match current.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => drop(next.as_object_mut().and_then(|o| o.remove("status"))),
                }
            }
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let bumped = if spec_changed(&current, &next) {
                generation + 1
            } else {
                generation
            };
            let meta = meta_mut(&mut next);
            meta.insert("name".into(), json!(name));
            for kept in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(kept) {
                    Some(v) => meta.insert(kept.into(), v.clone()),
                    None => meta.remove(kept),
                };
            }
            meta.insert("generation".into(), json!(bumped));
            meta.remove("resourceVersion");
            skiff_api::defaults::apply(resource.kind, &mut next);
            let causes: Vec<Cause> =
                skiff_api::immutable::violations(resource.kind, &current, &next)
                    .into_iter()
                    .map(Cause::of)
                    .collect();
            if !causes.is_empty() {
                return Err(ApiError::invalid(resource, name, causes).into());
            }
            self.validate_meta(&next)?;
            if let Some((reserved, needs, seen)) = settle {
                match skiff_api::services::settle(Some(&current), &mut next, reserved) {
                    Settled::Done => *seen.lock().expect("seen lock") = Held::of(&current),
                    Settled::Invalid(invalid) => {
                        let causes = invalid.into_iter().map(Cause::of).collect();
                        return Err(ApiError::invalid(resource, name, causes).into());
                    }
                    Settled::Needs(wanted) => {
                        *needs.lock().expect("needs lock") = Some(wanted);
                        return Err(
                            ApiError::internal("the Service needs addresses reserved").into()
                        );
                    }
                }
            }
            Ok(to_stored(&next))
        };
        self.update_stored(name, preconditions.clone(), Box::new(update))
            .await
    }

    /// An object being deleted goes once its last finalizer is removed,
    /// unless it is in a grace period (a Pod its kubelet is stopping: the
    /// kubelet's own delete ends it).
    async fn finish_if_finalized(&self, name: &str, object: &Value) -> Result<Value, ApiError> {
        let terminating = meta_str(object, "deletionTimestamp").is_some();
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let graceful = object["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|grace| grace > 0);
        // A namespace also waits for its spec's finalizers (its content).
        let content = self.resource().kind == "Namespace"
            && object["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if !terminating || finalizers || graceful || content {
            return Ok(object.clone());
        }
        let preconditions = Preconditions {
            resource_version: meta_str(object, "resourceVersion").and_then(|rv| rv.parse().ok()),
            uid: None,
        };
        match self
            .state
            .store
            .delete(&self.key(name), preconditions)
            .await
        {
            Ok(_) => {
                self.released(object).await;
                Ok(object.clone())
            }
            Err(skiff_store::StoreError::NotFound { .. }) => Ok(object.clone()),
            Err(e) => Err(ApiError::from_store(e, self.resource(), name)),
        }
    }

    /// A deleted Service's ClusterIP and node ports are free again.
    async fn released(&self, deleted: &Value) {
        if self.is_service() {
            self.state.allocator.release(&Held::of(deleted)).await;
        }
    }

    async fn update(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let object = parse_body(self.state, self.headers, body)?;
        let warnings = self.field_validation(&object)?;
        let expected = match meta_str(&object, "resourceVersion") {
            Some(rv) if !rv.is_empty() => Some(parse_revision(rv)?),
            _ => None,
        };
        let updated = self.write(name, expected, |_| Ok(object.clone())).await?;
        Ok(warned(json_response(StatusCode::OK, &updated), &warnings))
    }

    async fn patch(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let apply = self.patcher(body)?;
        // A patch applies to whatever is current; a resourceVersion inside
        // it is a precondition, as upstream treats it.
        let warnings = std::sync::Mutex::new(Vec::new());
        let updated = self
            .write(name, None, |current| {
                let next = apply(current)?;
                *warnings.lock().expect("warnings lock") = self.field_validation(&next)?;
                match (meta_str(&next, "resourceVersion"), meta_str(current, "resourceVersion")) {
                    (Some(wanted), Some(now)) if wanted != now => Err(ApiError::conflict(
                        self.resource(),
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    )),
                    _ => Ok(next),
                }
            })
            .await?;
        let warnings = warnings.into_inner().expect("warnings lock");
        Ok(warned(json_response(StatusCode::OK, &updated), &warnings))
    }

    /// The function that applies the request's patch, by its content type.
    fn patcher(&self, body: &[u8]) -> Result<Change, ApiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
        let apply: Change = match content_type.as_str() {
            "application/merge-patch+json" => Box::new(move |current| {
                let mut next = current.clone();
                json_patch::merge(&mut next, &patch);
                Ok(next)
            }),
            "application/json-patch+json" => {
                let operations: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
                Box::new(move |current| {
                    let mut next = current.clone();
                    json_patch::patch(&mut next, &operations)
                        .map_err(|e| ApiError::unprocessable(format!("the JSON patch does not apply: {e}")))?;
                    Ok(next)
                })
            }
            "application/strategic-merge-patch+json" => {
                let state = self.state.clone();
                let schema = self.resource().schema_name.clone();
                Box::new(move |current| {
                    skiff_api::strategic::apply(state.openapi(), &schema, current, &patch)
                        .map_err(|e| ApiError::bad_request(format!("the strategic merge patch does not apply: {e}")))
                })
            }
            other => {
                return Err(ApiError::unsupported_media(format!(
                    "the patch type {other:?} is not supported; use application/strategic-merge-patch+json, application/merge-patch+json or application/json-patch+json (server-side apply is not served yet)"
                )))
            }
        };
        Ok(apply)
    }

    /// The `autoscaling/v1` Scale view of a workload.
    fn scale_of(&self, object: &Value) -> Value {
        let selector = &object["spec"]["selector"];
        let labels = if self.resource().kind == "ReplicationController" {
            selector
        } else {
            &selector["matchLabels"]
        };
        let mut parts: Vec<String> = labels
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        for expression in selector["matchExpressions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let key = expression["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = expression["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match expression["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_owned(),
                _ => format!("!{key}"),
            });
        }
        let meta = &object["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(1) },
            "status": { "replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": parts.join(",") },
        })
    }

    /// `/scale`: reads or sets a workload's replicas.
    async fn scale(&self, name: &str, method: &Method, body: &[u8]) -> Result<Response, ApiError> {
        let resource = self.resource();
        let replicas_of = |scale: &Value| -> Result<i64, ApiError> {
            match scale["spec"]["replicas"].as_i64() {
                Some(n) if n >= 0 => Ok(n),
                _ => Err(ApiError::invalid(
                    resource,
                    name,
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        field: "spec.replicas".into(),
                        message: format!(
                            "Invalid value: {}: must be greater than or equal to 0",
                            scale["spec"]["replicas"]
                        ),
                    }],
                )),
            }
        };
        let updated = match *method {
            Method::GET => {
                let object = self
                    .state
                    .store
                    .get(&self.key(name))
                    .await
                    .map_err(|e| ApiError::from_store(e, resource, name))?;
                from_stored(&object)?
            }
            Method::PUT => {
                let scale = parse_body(self.state, self.headers, body)?;
                let replicas = replicas_of(&scale)?;
                let expected = match meta_str(&scale, "resourceVersion") {
                    Some(rv) if !rv.is_empty() => Some(parse_revision(rv)?),
                    _ => None,
                };
                self.write(name, expected, |current| {
                    let mut next = current.clone();
                    next["spec"]["replicas"] = json!(replicas);
                    Ok(next)
                })
                .await?
            }
            Method::PATCH => {
                let apply = self.patcher(body)?;
                self.write(name, None, |current| {
                    let replicas = replicas_of(&apply(&self.scale_of(current))?)?;
                    let mut next = current.clone();
                    next["spec"]["replicas"] = json!(replicas);
                    Ok(next)
                })
                .await?
            }
            _ => {
                return Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on the scale subresource"
                )))
            }
        };
        Ok(json_response(StatusCode::OK, &self.scale_of(&updated)))
    }

    /// `pods/NAME/binding`: the scheduler's assignment of a pod to a node.
    /// `pods/NAME/log`: a simulated container's synthesized log.
    async fn log(&self, name: &str) -> Result<Response, ApiError> {
        let resource = self.resource();
        let stored = self
            .state
            .store
            .get(&self.key(name))
            .await
            .map_err(|e| ApiError::from_store(e, resource, name))?;
        let pod = from_stored(&stored)?;
        let container = self.query.get("container").map(String::as_str);
        let log = skiff_api::podlog::render(&pod, container).map_err(ApiError::bad_request)?;
        Ok(([(header::CONTENT_TYPE, "text/plain")], log).into_response())
    }

    async fn bind(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let resource = self.resource();
        let binding = parse_body(self.state, self.headers, body)?;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let Some(node) = node else {
            return Err(ApiError::invalid(
                resource,
                name,
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "target.name".into(),
                    message: "Required value".into(),
                }],
            ));
        };
        let update = |current: &skiff_store::Object| -> skiff_store::Result<bytes::Bytes> {
            let mut pod = from_stored(current)?;
            if meta_str(&pod, "deletionTimestamp").is_some() {
                return Err(ApiError::conflict(resource, name, "the pod is being deleted").into());
            }
            if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!("pod {name} is already assigned to node \"{bound}\""),
                )
                .into());
            }
            pod["spec"]["nodeName"] = json!(node);
            let condition = json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now() });
            let conditions = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(condition);
            pod["status"]["conditions"] = json!(conditions);
            Ok(to_stored(&pod))
        };
        self.update_stored(name, Preconditions::default(), Box::new(update))
            .await?;
        let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 });
        Ok(json_response(StatusCode::CREATED, &status))
    }

    /// DeleteOptions from the body, with `gracePeriodSeconds` and
    /// `propagationPolicy` also taken from the query, as kubectl sends them.
    fn delete_options(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut options: Value = if body.is_empty() {
            json!({})
        } else {
            parse_body(self.state, self.headers, body)?
        };
        if let Some(grace) = self.query.get("gracePeriodSeconds") {
            let grace: i64 = grace.parse().map_err(|_| {
                ApiError::bad_request(format!("gracePeriodSeconds {grace:?} is not an integer"))
            })?;
            options["gracePeriodSeconds"] = json!(grace);
        }
        if let Some(policy) = self.query.get("propagationPolicy") {
            options["propagationPolicy"] = json!(policy);
        }
        Ok(options)
    }

    async fn delete(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        use skiff_api::deletion::{decide, Decision};
        let options = self.delete_options(body)?;
        let asked = Preconditions {
            uid: options["preconditions"]["uid"].as_str().map(str::to_owned),
            resource_version: match options["preconditions"]["resourceVersion"].as_str() {
                Some(rv) => Some(parse_revision(rv)?),
                None => None,
            },
        };
        let resource = self.resource();
        let key = self.key(name);
        let decision = |current: &Value| {
            decide(resource.kind, current, &options, jiff::Timestamp::now())
                .map_err(ApiError::bad_request)
        };
        // A removal is conditional on the version decided on; a write in
        // between makes it decide again.
        loop {
            let stored = self
                .state
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(e, resource, name))?;
            let current = from_stored(&stored)?;
            match decision(&current)? {
                Decision::Unchanged => return Ok(json_response(StatusCode::OK, &current)),
                Decision::Mark(_) => {
                    // Decided again on the object the update sees; if that
                    // is now a removal (its last finalizer went meanwhile),
                    // the loop starts over.
                    let redecide = std::sync::atomic::AtomicBool::new(false);
                    let update =
                        |stored: &skiff_store::Object| -> skiff_store::Result<bytes::Bytes> {
                            let current = from_stored(stored)?;
                            match decision(&current) {
                                Ok(Decision::Mark(marked)) => Ok(to_stored(&marked)),
                                Ok(Decision::Unchanged) => Ok(stored.value.clone()),
                                Ok(Decision::Remove) => {
                                    redecide.store(true, std::sync::atomic::Ordering::Relaxed);
                                    Ok(stored.value.clone())
                                }
                                Err(e) => Err(e.into()),
                            }
                        };
                    let marked = self
                        .update_stored(name, asked.clone(), Box::new(update))
                        .await?;
                    if redecide.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    return Ok(json_response(StatusCode::OK, &marked));
                }
                Decision::Remove => {
                    let preconditions = Preconditions {
                        uid: asked.uid.clone(),
                        resource_version: asked.resource_version.or(Some(stored.mod_revision)),
                    };
                    match self.state.store.delete(&key, preconditions).await {
                        Ok(deleted) => {
                            let deleted = from_stored(&deleted)?;
                            self.released(&deleted).await;
                            return Ok(json_response(StatusCode::OK, &deleted));
                        }
                        Err(skiff_store::StoreError::Conflict { .. })
                            if asked.resource_version.is_none() => {}
                        Err(e) => return Err(ApiError::from_store(e, resource, name)),
                    }
                }
            }
        }
    }

    /// One `guaranteed_update` of the named object, answered as the API's
    /// view of the result.
    async fn update_stored(
        &self,
        name: &str,
        preconditions: Preconditions,
        update: skiff_store::UpdateFn<'_>,
    ) -> Result<Value, ApiError> {
        let updated = self
            .state
            .store
            .guaranteed_update(&self.key(name), preconditions, update)
            .await
            .map_err(|e| ApiError::from_store(e, self.resource(), name))?;
        from_stored(&updated)
    }

    /// Lists the stored objects of the request's kind (in its namespace).
    pub async fn list_stored(
        &self,
        options: ListOptions,
    ) -> Result<skiff_store::ListResult, ApiError> {
        let prefix = self.resource().prefix(self.namespace());
        self.state
            .store
            .list(&prefix, options)
            .await
            .map_err(|e| ApiError::from_store(e, self.resource(), ""))
    }

    async fn delete_collection(&self) -> Result<Response, ApiError> {
        let options = ListOptions {
            filter: self.filter()?,
            ..ListOptions::default()
        };
        let list = self.list_stored(options).await?;
        let mut deleted = Vec::new();
        for object in &list.items {
            let value = from_stored(object)?;
            let name = meta_str(&value, "name").unwrap_or_default().to_owned();
            let api = Api {
                target: &Target {
                    namespace: meta_str(&value, "namespace").map(str::to_owned),
                    name: Some(name.clone()),
                    ..self.target.clone()
                },
                ..*self
            };
            match api.delete(&name, b"").await {
                Ok(_) => deleted.push(value),
                Err(e) if e.code == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        let body = json!({
            "kind": self.resource().list_kind,
            "apiVersion": self.resource().api_version(),
            "metadata": { "resourceVersion": self.state.store.current_revision().to_string() },
            "items": deleted,
        });
        Ok(json_response(StatusCode::OK, &body))
    }
}

/// Where an update attempt leaves what a Service still needs reserved.
type NeedsSlot = std::sync::Mutex<Option<skiff_api::services::Needs>>;

/// A resourceVersion from a request: a decimal revision, else 400.
pub fn parse_revision(rv: &str) -> Result<u64, ApiError> {
    rv.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))?;
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))
}
