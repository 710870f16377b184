//! One error type for every handler, answered as a Kubernetes `Status`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_api::ResourceType;
use skiff_store::StoreError;

/// A field that failed validation, as a `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path, such as `metadata.name`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Cause {
    /// A cause from a (field, message) pair, the shape the pure checks in
    /// `skiff_api` answer; the reason follows the message as upstream's
    /// field errors pair them (`Forbidden: ...` is `FieldValueForbidden`).
    pub fn of((field, message): (String, String)) -> Cause {
        let reason = [
            ("Forbidden:", "FieldValueForbidden"),
            ("Duplicate value:", "FieldValueDuplicate"),
            ("Required value", "FieldValueRequired"),
            ("Unsupported value:", "FieldValueNotSupported"),
        ]
        .into_iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason);
        Cause {
            reason,
            field,
            message,
        }
    }
}

/// An error answered as a `Status` object with its HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub code: StatusCode,
    /// The `Status.reason`, such as `NotFound`.
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// `Status.details`, when the error is about one object.
    pub details: Option<Value>,
}

/// `StatusDetails` of an error about one object; its `group` is
/// `omitempty` (meta/v1 types.go), so absent for the core group.
fn details(group: &str, name: &str, kind: &str) -> Value {
    let mut details = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400: a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 for a path that names no resource.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 for an object that does not exist.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(resource.group, name, resource.plural)),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} \"{name}\" not found", resource.qualified()),
            )
        }
    }

    /// 409 for a create of an existing object.
    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(resource.group, name, resource.plural)),
            ..Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", resource.qualified()),
            )
        }
    }

    /// 409 for a write against a stale resourceVersion or another uid.
    pub fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            resource.qualified()
        );
        Self {
            details: Some(details(resource.group, name, resource.plural)),
            ..Self::new(StatusCode::CONFLICT, "Conflict", message)
        }
    }

    /// 422 with the fields at fault.
    pub fn invalid(resource: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        Self::invalid_kind(resource.group, resource.kind, name, causes)
    }

    /// 422 with the fields at fault, of an object of `group` and `kind`
    /// that need not be stored (a `TokenRequest`).
    pub fn invalid_kind(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let mut details = details(group, name, kind);
        // Upstream's qualified kind: `Deployment.apps`, `Pod` in the core group.
        let kind = match group {
            "" => kind.to_owned(),
            group => format!("{kind}.{group}"),
        };
        let message = match summary.len() {
            1 => format!("{kind} \"{name}\" is invalid: {}", summary[0]),
            _ => format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        details["causes"] = json!(causes);
        Self {
            details: Some(details),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
        }
    }

    /// 422 for a request that is well-formed but cannot be carried out.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// 403 for a request the server refuses to carry out.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 405 for a verb the resource does not serve.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// 410 for a resourceVersion older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        let message = format!("Request entity too large: limit is {limit}");
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    /// 415 for a body or patch type the server does not take.
    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// 500 for a fault of ours.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// Maps a store error about `name` of `resource` to the API's answer.
    pub fn from_store(error: StoreError, resource: &ResourceType, name: &str) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::not_found(resource, name),
            StoreError::AlreadyExists { .. } => Self::already_exists(resource, name),
            StoreError::Conflict { reason, .. } if reason.starts_with("uid") => {
                Self::conflict(resource, name, &format!("Precondition failed: {reason}"))
            }
            StoreError::Conflict { .. } => Self::conflict(
                resource,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            StoreError::Gone { requested, compacted } => {
                Self::expired(format!("too old resource version: {requested} ({compacted})"))
            }
            StoreError::FutureRevision { requested, current } => Self {
                details: Some(json!({ "retryAfterSeconds": 1 })),
                ..Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    format!("Too large resource version: {requested}, current: {current}"),
                )
            },
            StoreError::InvalidContinue(token) => Self::bad_request(format!("invalid continue token {token:?}")),
            StoreError::Rejected(inner) => match inner.downcast::<ApiError>() {
                Ok(api) => *api,
                Err(other) => Self::internal(other.to_string()),
            },
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<ApiError> for StoreError {
    fn from(error: ApiError) -> Self {
        StoreError::Rejected(Box::new(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::wire::to_json(&self.status());
        let mut response = (
            self.code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        // The audit trail names the object a refused write was about.
        let name = self
            .details
            .as_ref()
            .and_then(|d| d["name"].as_str())
            .filter(|n| !n.is_empty());
        response.extensions_mut().insert(crate::audit::Written {
            name: name.map(str::to_owned),
            ..Default::default()
        });
        response
    }
}
