//! CREATE, UPDATE and PATCH (and the writes of the subresources): one
//! pipeline for every kind — decode, identity, the strategy's prepare,
//! defaults and validation, namespace admission, allocation — then one
//! conditional write, or none for a dry run.

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use skiff_api::services::{Held, Needs, Settled};
use skiff_api::validation::{
    label_1035_error, label_error, label_value_error, qualified_name_error, subdomain_error,
};
use skiff_api::{NameRule, Subresource};
use skiff_store::{Object, Preconditions, StoreError};

use super::codec::warned;
use super::{parse_revision, Api};
use crate::allocator::Owner;
use crate::error::{ApiError, Cause};
use crate::object::{
    encode, from_stored, generated_name, identify, meta_mut, meta_str, spec_changed, to_stored,
};

/// A change to an object: the patch a request applies to the current one.
pub(super) type Change = Box<dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync>;

/// What one attempt at a write decides from the object as stored.
pub(super) enum Step {
    /// Store this over it.
    Write(Value),
    /// Reserve these from the allocators first, then decide again.
    Reserve(Needs),
}

/// How an attempt at a write ended.
enum Attempt {
    /// The object was `before` and is now `after` (as answered).
    Written { before: Value, after: Value },
    /// Nothing was written: these must be reserved first.
    Needs(Needs),
}

impl Api<'_> {
    /// Checks `apiVersion` and `kind` (filling them in when absent) and the
    /// namespace of a body against the request.
    pub(super) fn check_identity(&self, object: &mut Value) -> Result<(), ApiError> {
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
        causes.extend(resource.strategy.validate(object).into_iter().map(
            |(reason, field, message)| Cause {
                reason,
                field,
                message,
            },
        ));
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
    pub(super) async fn admit_namespace(&self, name: &str) -> Result<(), ApiError> {
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

    pub(super) async fn create(&self, body: &[u8]) -> Result<Response, ApiError> {
        let resource = self.resource();
        if resource.namespaced && self.namespace().is_none() {
            return Err(ApiError::method_not_allowed(format!(
                "{} must be created in a namespace: POST to /namespaces/NAMESPACE/{}",
                resource.plural, resource.plural
            )));
        }
        let mut object = self.body(body)?;
        self.check_identity(&mut object)?;
        let warnings = self.field_validation(&object)?;
        resource.strategy.prepare_for_create(&mut object);
        resource.strategy.defaults(&mut object);
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
        self.validate_meta(&object)?;
        self.admit_namespace(&name).await?;
        // The ServiceAccount admission plugin, on where tokens are issued.
        if resource.group.is_empty() && resource.plural == "pods" && self.state.tokens.is_some() {
            let namespace = self.namespace().unwrap_or_default();
            crate::service_accounts::admit(self.state, namespace, &mut object).await?;
        }
        let reserved = self
            .state
            .allocator
            .settle(&mut object, resource, &self.owner(&name), self.dry_run)
            .await?;
        // The answer is what is stored: with the fields Go always writes.
        crate::wire::fill_zero(&mut object);
        if self.dry_run {
            return Ok(warned(self.answer(StatusCode::CREATED, &object), &warnings));
        }
        let created = self
            .state
            .store
            .create(&self.key(&name), encode(&object))
            .await;
        match created {
            Ok(created) => {
                meta_mut(&mut object).insert(
                    "resourceVersion".into(),
                    json!(created.mod_revision.to_string()),
                );
                Ok(warned(self.answer(StatusCode::CREATED, &object), &warnings))
            }
            Err(e) => {
                self.release(&reserved).await;
                Err(ApiError::from_store(e, resource, &name))
            }
        }
    }

    pub(super) async fn update(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let object = self.body(body)?;
        let warnings = self.field_validation(&object)?;
        let expected = match meta_str(&object, "resourceVersion") {
            Some(rv) if !rv.is_empty() => Some(parse_revision(rv)?),
            _ => None,
        };
        let updated = self.write(name, expected, |_| Ok(object.clone())).await?;
        Ok(warned(self.answer(StatusCode::OK, &updated), &warnings))
    }

    pub(super) async fn patch(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let apply = self.patcher(body)?;
        // A patch applies to whatever is current; a resourceVersion inside
        // it is a precondition, as upstream treats it.
        let mut warnings = Vec::new();
        let updated = self
            .write(name, None, |current| {
                let next = apply(current)?;
                warnings = self.field_validation(&next)?;
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
        Ok(warned(self.answer(StatusCode::OK, &updated), &warnings))
    }

    /// Writes `change(current)` over the stored object through the kind's
    /// strategy: `expected` (the body's resourceVersion) must match when
    /// given. Identity and bookkeeping fields stay the server's.
    pub(super) async fn write(
        &self,
        name: &str,
        expected: Option<u64>,
        mut change: impl FnMut(&Value) -> Result<Value, ApiError> + Send,
    ) -> Result<Value, ApiError> {
        let asked = Preconditions {
            resource_version: expected,
            uid: None,
        };
        let updated = self
            .apply(name, &asked, |current, reserved| {
                self.next_of(name, current, change(current)?, reserved)
            })
            .await?;
        self.finish_if_finalized(name, updated).await
    }

    /// What an update makes of `current` when the request sends `next`:
    /// the strategy's prepare for the (sub)resource written, defaults,
    /// immutable fields, validation, and what it must hold.
    fn next_of(
        &self,
        name: &str,
        current: &Value,
        mut next: Value,
        reserved: &Held,
    ) -> Result<Step, ApiError> {
        let resource = self.resource();
        let strategy = resource.strategy;
        self.check_identity(&mut next)?;
        if let Some(uid) = meta_str(&next, "uid") {
            if Some(uid) != meta_str(current, "uid") {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    "Precondition failed: UID in object meta does not match",
                ));
            }
        }
        if meta_str(&next, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&next, "name").unwrap_or_default()
            )));
        }
        match self.target.subresource {
            Some(Subresource::Status) => strategy.prepare_for_status_update(current, &mut next),
            Some(Subresource::Finalize) => strategy.prepare_for_finalize(current, &mut next),
            _ => strategy.prepare_for_update(current, &mut next),
        }
        let old_meta = current["metadata"].as_object().cloned().unwrap_or_default();
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bumped = match spec_changed(current, &next) {
            true => generation + 1,
            false => generation,
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
        strategy.defaults(&mut next);
        let causes: Vec<Cause> = strategy
            .validate_update(current, &next)
            .into_iter()
            .map(Cause::of)
            .collect();
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, name, causes));
        }
        self.validate_meta(&next)?;
        // What it holds changes with its spec, never through a subresource.
        if self.target.subresource.is_none() {
            match strategy.settle(Some(current), &mut next, reserved) {
                Settled::Done => {}
                Settled::Needs(needs) => return Ok(Step::Reserve(needs)),
                Settled::Invalid(invalid) => {
                    let causes = invalid.into_iter().map(Cause::of).collect();
                    return Err(ApiError::invalid(resource, name, causes));
                }
            }
        }
        Ok(Step::Write(next))
    }

    /// Writes what `decide` makes of the stored object `name`: `asked`
    /// must hold on it, and a write in between makes it decide again on
    /// the newer one. What the decision asks reserved is reserved first
    /// (and it decides again with it); afterwards what the object no
    /// longer holds is released. A dry run decides and answers as a real
    /// write would, and writes and reserves nothing.
    pub(super) async fn apply(
        &self,
        name: &str,
        asked: &Preconditions,
        mut decide: impl FnMut(&Value, &Held) -> Result<Step, ApiError> + Send,
    ) -> Result<Value, ApiError> {
        let strategy = self.resource().strategy;
        let mut reserved = Held::default();
        let outcome = loop {
            let attempt = self.attempt(name, asked, &mut decide, &reserved).await;
            match attempt {
                Ok(Attempt::Written { before, after }) => break Ok((before, after)),
                Ok(Attempt::Needs(needs)) => {
                    let owner = self.owner(name);
                    let reserving = self.state.allocator.reserve(
                        &needs,
                        &owner,
                        self.resource(),
                        &mut reserved,
                        self.dry_run,
                    );
                    if let Err(e) = reserving.await {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match &outcome {
            Ok((before, after)) => {
                let holds = strategy.held(after);
                for spare in [reserved.minus(&holds), strategy.held(before).minus(&holds)] {
                    self.release(&spare).await;
                }
            }
            Err(_) => self.release(&reserved).await,
        }
        outcome.map(|(_, after)| after)
    }

    /// One attempt of [`Api::apply`]: the decision runs on the object the
    /// store holds at the write (it may run again if another write comes
    /// first); a dry run reads and decides alone.
    async fn attempt(
        &self,
        name: &str,
        asked: &Preconditions,
        decide: &mut (impl FnMut(&Value, &Held) -> Result<Step, ApiError> + Send),
        reserved: &Held,
    ) -> Result<Attempt, ApiError> {
        if self.dry_run {
            let stored = self.stored(name).await?;
            let current = from_stored(&stored)?;
            self.check_preconditions(name, asked, &stored, &current)?;
            return Ok(match decide(&current, reserved)? {
                Step::Reserve(needs) => Attempt::Needs(needs),
                // Answered at the version it was decided on.
                Step::Write(mut after) => {
                    meta_mut(&mut after).insert(
                        "resourceVersion".into(),
                        json!(stored.mod_revision.to_string()),
                    );
                    Attempt::Written {
                        before: current,
                        after,
                    }
                }
            });
        }
        // The last decision, kept for after the write.
        let mut decided = None;
        let update = |stored: &Object| -> skiff_store::Result<bytes::Bytes> {
            let current = from_stored(stored)?;
            let step = decide(&current, reserved)?;
            let bytes = match &step {
                Step::Write(after) => to_stored(after),
                // Nothing is written until they are reserved.
                Step::Reserve(_) => stored.value.clone(),
            };
            decided = Some((current, step));
            Ok(bytes)
        };
        let written = self
            .state
            .store
            .guaranteed_update(&self.key(name), asked.clone(), Box::new(update))
            .await
            .map_err(|e| ApiError::from_store(e, self.resource(), name))?;
        match decided.ok_or_else(|| ApiError::internal("the update decided nothing"))? {
            (_, Step::Reserve(needs)) => Ok(Attempt::Needs(needs)),
            (before, Step::Write(mut after)) => {
                meta_mut(&mut after).insert(
                    "resourceVersion".into(),
                    json!(written.mod_revision.to_string()),
                );
                Ok(Attempt::Written { before, after })
            }
        }
    }

    /// Refuses a dry run whose preconditions (`asked`, from the request)
    /// do not hold on `stored`, as the store refuses a write (409).
    pub(super) fn check_preconditions(
        &self,
        name: &str,
        asked: &Preconditions,
        stored: &Object,
        current: &Value,
    ) -> Result<(), ApiError> {
        if asked
            .resource_version
            .is_some_and(|rv| rv != stored.mod_revision)
        {
            let conflict = StoreError::Conflict {
                key: stored.key.clone(),
                reason: format!("resourceVersion is {}", stored.mod_revision),
            };
            return Err(ApiError::from_store(conflict, self.resource(), name));
        }
        match (&asked.uid, meta_str(current, "uid")) {
            (Some(wanted), found) if Some(wanted.as_str()) != found => {
                let conflict = StoreError::Conflict {
                    key: stored.key.clone(),
                    reason: format!("uid is {found:?}, expected {wanted:?}"),
                };
                Err(ApiError::from_store(conflict, self.resource(), name))
            }
            _ => Ok(()),
        }
    }

    /// The object `name` of the request's namespace, as an allocator owner.
    fn owner<'a>(&'a self, name: &'a str) -> Owner<'a> {
        Owner {
            namespace: self.namespace().unwrap_or_default(),
            name,
        }
    }

    /// Gives back what `held` names to the allocators; a dry run held
    /// nothing.
    pub(super) async fn release(&self, held: &Held) {
        if !self.dry_run && !held.is_empty() {
            self.state.allocator.release(held).await;
        }
    }

    /// The function that applies the request's patch, by its content type.
    pub(super) fn patcher(&self, body: &[u8]) -> Result<Change, ApiError> {
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
}
