//! The REST verbs of every kind: one handler that finds the resource in the
//! registry from the path and carries out get, list, watch, create, update,
//! patch, delete and deletecollection against the store. What differs by
//! kind is the kind's strategy (`skiff_api::strategy`), which these call
//! and never look past.
//!
//! By concern: [`codec`] decodes bodies and encodes answers, [`read`] gets
//! and lists, [`write`] creates, updates and patches, [`delete`] deletes,
//! [`subresources`] serves status, scale, binding, log and finalize.

mod codec;
mod delete;
mod read;
mod subresources;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_api::fields::FieldSelector;
use skiff_api::labels::Selector;
use skiff_api::{ResourceType, Subresource};
use skiff_store::{Filter, ListOptions};

use crate::error::{ApiError, Cause};
use crate::object::label;
use crate::path::{parse, Target};
use crate::{AppState, MAX_BODY_BYTES};

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
    let registry = state.registry.clone();
    let target = parse(&registry, parts.uri.path()).ok_or_else(ApiError::no_route)?;
    if let Some(sub @ (Subresource::Exec | Subresource::Attach | Subresource::PortForward)) =
        target.subresource
    {
        // Upgraded streams, joined to the pod's kubelet.
        return subresources::stream(&state, &target, sub, parts).await;
    }
    // Read before anything is answered: an HTTP/2 stream answered while
    // its body is still arriving is reset, and the client never sees the
    // Status.
    let body = crate::wire::read_body(body, MAX_BODY_BYTES).await?;
    let query: Query = parts
        .uri
        .query()
        .map(|q| {
            url_decode_pairs(q).map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))
        })
        .transpose()?
        .unwrap_or_default();
    let dry_run = dry_run(&parts.method, &query)?;
    let api = Api {
        state: &state,
        target: &target,
        query: &query,
        headers: &parts.headers,
        dry_run,
    };
    let name = target.name.as_deref().unwrap_or_default();
    match (target.subresource, &parts.method) {
        (None, _) => {}
        (Some(Subresource::Status), &Method::GET | &Method::PUT | &Method::PATCH) => {}
        (Some(Subresource::Finalize), &Method::PUT) => {}
        (Some(Subresource::Log), &Method::GET) => return api.log(name).await,
        (Some(Subresource::Scale), _) => return api.scale(name, &parts.method, &body).await,
        (Some(Subresource::Binding), &Method::POST) => return api.bind(name, &body).await,
        (Some(Subresource::Token), &Method::POST) => return api.token(name, &body).await,
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

/// Whether a write is a dry run (`?dryRun=All`): decided, admitted and
/// answered in full, stored and allocated not at all. Any other value is
/// refused as upstream's `ValidateDryRun` refuses it: 422 on the verb's
/// options kind.
fn dry_run(method: &Method, query: &Query) -> Result<bool, ApiError> {
    let Some(value) = query.get("dryRun") else {
        return Ok(false);
    };
    if value == "All" {
        return Ok(true);
    }
    let options = match *method {
        Method::POST => "CreateOptions",
        Method::PUT => "UpdateOptions",
        Method::PATCH => "PatchOptions",
        Method::DELETE => "DeleteOptions",
        // Reads have no dryRun: the parameter is ignored, as upstream does.
        _ => return Ok(false),
    };
    let cause = Cause {
        reason: "FieldValueNotSupported",
        field: "dryRun".into(),
        message: format!("Unsupported value: []string{{{value:?}}}: supported values: \"All\""),
    };
    Err(ApiError {
        code: StatusCode::UNPROCESSABLE_ENTITY,
        reason: "Invalid",
        message: format!(
            "{options}.meta.k8s.io \"\" is invalid: {}: {}",
            cause.field, cause.message
        ),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": options,
            "causes": [{"reason": cause.reason, "message": cause.message, "field": cause.field}],
        })),
    })
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
    /// `?dryRun=All`: nothing is stored, allocated or audited.
    pub dry_run: bool,
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

    /// The stored object `name`.
    async fn stored(&self, name: &str) -> Result<skiff_store::Object, ApiError> {
        self.state
            .store
            .get(&self.key(name))
            .await
            .map_err(|e| ApiError::from_store(e, self.resource(), name))
    }
}

/// A resourceVersion from a request: a decimal revision, else 400.
pub fn parse_revision(rv: &str) -> Result<u64, ApiError> {
    rv.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dry_run_takes_all_alone() {
        let query = |v: &str| Query::from([("dryRun".to_owned(), v.to_owned())]);
        assert!(!dry_run(&Method::POST, &Query::new()).unwrap());
        assert!(dry_run(&Method::DELETE, &query("All")).unwrap());
        let refused = dry_run(&Method::PATCH, &query("Some")).unwrap_err();
        assert_eq!(refused.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            refused.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""
        );
        assert!(!dry_run(&Method::GET, &query("Some")).unwrap());
    }
}
