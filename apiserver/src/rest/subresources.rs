//! The subresources beside the objects: `/scale` (a Scale view of a
//! workload's replicas), `pods/binding` and `pods/log` (their kind's
//! strategy decides). `/status` and `/finalize` are writes of the object
//! itself, prepared by the strategy for the subresource written.

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_api::defaults::child;
use skiff_api::strategy::Refusal;
use skiff_api::Subresource;
use skiff_store::Preconditions;

use super::codec::json_response;
use super::write::Step;
use super::{parse_revision, Api};
use crate::error::{ApiError, Cause};
use crate::object::{from_stored, meta_str, now};
use crate::AppState;

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

    /// `serviceaccounts/NAME/token`: a TokenRequest answered with its
    /// token, 201.
    pub(super) async fn token(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let request = self.body(body)?;
        let namespace = self.namespace().unwrap_or_default();
        let answer =
            crate::service_accounts::request_token(self.state, namespace, name, request).await?;
        Ok(json_response(StatusCode::CREATED, &answer))
    }

    /// `pods/NAME/log`: from the kubelet of the pod's node, streamed (a
    /// pod not yet on a node has an empty log, as upstream's).
    pub(super) async fn log(&self, name: &str) -> Result<Response, ApiError> {
        let pod = from_stored(&self.stored(name).await?)?;
        let container = log_container(&pod, self.query.get("container").map(String::as_str))?;
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Ok(([(header::CONTENT_TYPE, "text/plain")], "").into_response());
        };
        let location = node_location(self.state, node).await?;
        let query: Vec<(&str, &str)> = self
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "container")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut path = format!(
            "/containerLogs/{}/{name}/{container}",
            self.namespace().unwrap_or_default()
        );
        if !query.is_empty() {
            path.push('?');
            path.push_str(&form(&query));
        }
        crate::kubelet::get(self.state, &location, &path).await
    }
}

/// `pods/NAME/exec` and `pods/NAME/portforward`: the request goes on to
/// the kubelet of the pod's node, and the upgraded connection with it.
pub(super) async fn stream(
    state: &AppState,
    target: &crate::path::Target<'_>,
    sub: Subresource,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on the {} subresource",
            parts.method,
            sub.name()
        )));
    }
    let resource = target.resource;
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let stored = state
        .store
        .get(&resource.key(Some(namespace), name))
        .await
        .map_err(|e| ApiError::from_store(e, resource, name))?;
    let pod = from_stored(&stored)?;
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let path = match sub {
        Subresource::Exec | Subresource::Attach => {
            let asked = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("container="));
            let container = log_container(&pod, asked)?;
            format!("/{}/{namespace}/{name}/{container}?{query}", sub.name())
        }
        _ => format!("/portForward/{namespace}/{name}?{query}"),
    };
    let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let location = node_location(state, node).await?;
    crate::kubelet::upgrade(state, parts, &location, &path).await
}

/// Where the kubelet of node `name` listens.
async fn node_location(state: &AppState, name: &str) -> Result<String, ApiError> {
    let nodes = state
        .registry
        .by_plural("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let node = state
        .store
        .get(&nodes.key(None, name))
        .await
        .map_err(|e| ApiError::from_store(e, nodes, name))?;
    crate::kubelet::location(&from_stored(&node)?)
}

/// The container a `pods/log` request reads: the one named, else the only
/// one (upstream's 400 messages otherwise).
fn log_container<'a>(pod: &'a Value, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let main: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match (asked, main.as_slice()) {
        (Some(c), _) if containers.contains(&c) => Ok(c),
        (Some(c), _) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        (None, [only]) => Ok(only),
        (None, many) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            many.join(" ")
        ))),
    }
}

/// `k=v&...` with the values percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
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

    #[test]
    fn a_log_request_names_one_container() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(log_container(&pod, Some("init")).unwrap(), "init");
        assert_eq!(
            log_container(&pod, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            log_container(&pod, Some("c")).unwrap_err().message,
            "container c is not valid for pod p"
        );
        assert_eq!(
            form(&[("sinceTime", "2026-12-02T10:00:00Z")]),
            "sinceTime=2026-12-02T10%3A00%3A00Z"
        );
    }
}
