//! The subresources beside the objects: `/scale` (a Scale view of a
//! workload's replicas), `pods/binding` and `pods/log` (their kind's
//! strategy decides). `/status` and `/finalize` are writes of the object
//! itself, prepared by the strategy for the subresource written.

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_api::defaults::child;
use skiff_api::strategy::Refusal;
use skiff_store::Preconditions;

use super::codec::json_response;
use super::write::Step;
use super::{parse_revision, Api};
use crate::error::{ApiError, Cause};
use crate::object::{from_stored, meta_str, now};

/// A `LabelSelector` as its string form (`a=b,c in (d)`), as Scale's
/// `status.selector` reports it.
fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
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
    parts.join(",")
}

/// `object` with `spec.replicas` set, if its spec is an object.
fn with_replicas(object: &Value, replicas: i64) -> Result<Value, ApiError> {
    let mut next = object.clone();
    let spec = child(&mut next, "spec")
        .ok_or_else(|| ApiError::unprocessable("the object's spec is not an object"))?;
    spec["replicas"] = json!(replicas);
    Ok(next)
}

impl Api<'_> {
    /// The `autoscaling/v1` Scale view of a workload.
    fn scale_of(&self, object: &Value) -> Value {
        let selector = self.resource().strategy.selector(object);
        let meta = &object["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(1) },
            "status": { "replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector_string(&selector) },
        })
    }

    /// `/scale`: reads or sets a workload's replicas.
    pub(super) async fn scale(
        &self,
        name: &str,
        method: &Method,
        body: &[u8],
    ) -> Result<Response, ApiError> {
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
            Method::GET => from_stored(&self.stored(name).await?)?,
            Method::PUT => {
                let scale = self.body(body)?;
                let replicas = replicas_of(&scale)?;
                let expected = match meta_str(&scale, "resourceVersion") {
                    Some(rv) if !rv.is_empty() => Some(parse_revision(rv)?),
                    _ => None,
                };
                self.write(name, expected, |current| with_replicas(current, replicas))
                    .await?
            }
            Method::PATCH => {
                let apply = self.patcher(body)?;
                self.write(name, None, |current| {
                    let replicas = replicas_of(&apply(&self.scale_of(current))?)?;
                    with_replicas(current, replicas)
                })
                .await?
            }
            _ => {
                return Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported on the scale subresource"
                )))
            }
        };
        Ok(self.answer(StatusCode::OK, &self.scale_of(&updated)))
    }

    /// A strategy's refusal as the answer to the request about `name`.
    fn refused(&self, name: &str, refusal: Refusal) -> ApiError {
        let resource = self.resource();
        match refusal {
            Refusal::Conflict(why) => ApiError::conflict(resource, name, &why),
            Refusal::Invalid(reason, field, message) => ApiError::invalid(
                resource,
                name,
                vec![Cause {
                    reason,
                    field,
                    message,
                }],
            ),
            Refusal::BadRequest(message) => ApiError::bad_request(message),
            Refusal::Unsupported => ApiError::method_not_allowed(format!(
                "{} do not serve this subresource",
                resource.qualified()
            )),
        }
    }

    /// `pods/NAME/binding`: the scheduler's assignment of a pod to a node.
    pub(super) async fn bind(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let binding = self.body(body)?;
        let strategy = self.resource().strategy;
        let now = now();
        self.apply(name, &Preconditions::default(), |current, _| {
            strategy
                .bind(current, &binding, &now)
                .map(Step::Write)
                .map_err(|refusal| self.refused(name, refusal))
        })
        .await?;
        let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 });
        Ok(self.marked(json_response(StatusCode::CREATED, &status)))
    }

    /// `pods/NAME/log`: a simulated container's synthesized log.
    pub(super) async fn log(&self, name: &str) -> Result<Response, ApiError> {
        let object = from_stored(&self.stored(name).await?)?;
        let container = self.query.get("container").map(String::as_str);
        let log = self
            .resource()
            .strategy
            .log(&object, container)
            .map_err(|refusal| self.refused(name, refusal))?;
        Ok(([(header::CONTENT_TYPE, "text/plain")], log).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_as_kubectl_writes_them() {
        let selector = json!({"matchLabels": {"app": "a"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]});
        assert_eq!(
            selector_string(&selector),
            "app=a,tier in (web,api),!canary"
        );
        assert!(with_replicas(&json!({"spec": "x"}), 2).is_err());
        assert_eq!(with_replicas(&json!({}), 2).unwrap()["spec"]["replicas"], 2);
    }
}
