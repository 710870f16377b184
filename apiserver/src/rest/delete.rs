//! DELETE and DELETECOLLECTION: the kind's strategy and the options decide
//! (`skiff_api::deletion`) whether the object goes now or is marked; a
//! removal or mark is conditional on the version decided on.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use skiff_api::deletion::{decide, Decision};
use skiff_store::{ListOptions, Object, Preconditions, StoreError};

use super::{parse_revision, Api};
use crate::error::ApiError;
use crate::object::{from_stored, meta_str, to_stored};
use crate::path::Target;

impl Api<'_> {
    /// DeleteOptions from the body, with `gracePeriodSeconds` and
    /// `propagationPolicy` also taken from the query, as kubectl sends them.
    fn delete_options(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut options: Value = match body.is_empty() {
            true => json!({}),
            false => self.body(body)?,
        };
        if !options.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        }
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

    pub(super) async fn delete(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let options = self.delete_options(body)?;
        let asked = Preconditions {
            uid: options["preconditions"]["uid"].as_str().map(str::to_owned),
            resource_version: match options["preconditions"]["resourceVersion"].as_str() {
                Some(rv) => Some(parse_revision(rv)?),
                None => None,
            },
        };
        let strategy = self.resource().strategy;
        let decision = |current: &Value| {
            decide(strategy, current, &options, jiff::Timestamp::now())
                .map_err(ApiError::bad_request)
        };
        if self.dry_run {
            let stored = self.stored(name).await?;
            let current = from_stored(&stored)?;
            self.check_preconditions(name, &asked, &stored, &current)?;
            let answer = match decision(&current)? {
                Decision::Mark(marked) => marked,
                Decision::Unchanged | Decision::Remove => current,
            };
            return Ok(self.answer(StatusCode::OK, &answer));
        }
        // A mark is written where the store decides; a removal is
        // conditional on the version decided on, and a write in between
        // makes it decide again.
        loop {
            let mut removes = false;
            let update = |stored: &Object| -> skiff_store::Result<bytes::Bytes> {
                let current = from_stored(stored)?;
                let decided = decision(&current)?;
                removes = matches!(decided, Decision::Remove);
                Ok(match decided {
                    Decision::Mark(marked) => to_stored(&marked),
                    Decision::Unchanged | Decision::Remove => stored.value.clone(),
                })
            };
            let latest = self
                .state
                .store
                .guaranteed_update(&self.key(name), asked.clone(), Box::new(update))
                .await
                .map_err(|e| ApiError::from_store(e, self.resource(), name))?;
            let current = from_stored(&latest)?;
            if !removes {
                return Ok(self.answer(StatusCode::OK, &current));
            }
            if let Some(removed) = self.remove(name, &latest, current).await? {
                return Ok(self.answer(StatusCode::OK, &removed));
            }
        }
    }

    /// Removes `stored` (`current`, parsed) if nothing wrote in between,
    /// and releases what it held; `None` if another write came first.
    async fn remove(
        &self,
        name: &str,
        stored: &Object,
        current: Value,
    ) -> Result<Option<Value>, ApiError> {
        let unchanged_since = Preconditions {
            uid: None,
            resource_version: Some(stored.mod_revision),
        };
        match self.state.store.delete(&stored.key, unchanged_since).await {
            Ok(_) => {
                self.release(&self.resource().strategy.held(&current)).await;
                Ok(Some(current))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(ApiError::from_store(e, self.resource(), name)),
        }
    }

    /// An object being deleted goes once its last finalizer is removed,
    /// unless it is in a grace period (a Pod its kubelet is stopping: the
    /// kubelet's own delete ends it) or still holds content (a namespace).
    pub(super) async fn finish_if_finalized(
        &self,
        name: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let terminating = meta_str(&object, "deletionTimestamp").is_some();
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let graceful = object["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|grace| grace > 0);
        let content = self.resource().strategy.holds_content(&object);
        if !terminating || finalizers || graceful || content || self.dry_run {
            return Ok(object);
        }
        let preconditions = Preconditions {
            resource_version: meta_str(&object, "resourceVersion").and_then(|rv| rv.parse().ok()),
            uid: None,
        };
        match self
            .state
            .store
            .delete(&self.key(name), preconditions)
            .await
        {
            Ok(_) => {
                self.release(&self.resource().strategy.held(&object)).await;
                Ok(object)
            }
            Err(StoreError::NotFound { .. }) => Ok(object),
            Err(e) => Err(ApiError::from_store(e, self.resource(), name)),
        }
    }

    pub(super) async fn delete_collection(&self) -> Result<Response, ApiError> {
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
        let metadata =
            json!({ "resourceVersion": self.state.store.current_revision().to_string() });
        Ok(self.answer_list(metadata, deleted))
    }
}
