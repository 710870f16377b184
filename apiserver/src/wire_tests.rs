//! The wire format: the raw JSON of created objects and of error `Status`
//! bodies, key for key and in order, as kube-apiserver writes them for the
//! same requests. The expected orders are the Go struct field orders and
//! the `omitempty` tags of upstream's types:
//! - staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go (TypeMeta:
//!   kind, apiVersion; ObjectMeta; Status; StatusDetails; StatusCause),
//! - staging/src/k8s.io/api/apps/v1/types.go (Deployment*, ReplicaSet*,
//!   DaemonSet*),
//! - staging/src/k8s.io/api/core/v1/types.go (ReplicationController*,
//!   Service*, Pod*, Container, ContainerPort, ...).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use skiff_store::{HistoryLimits, MvccStore, Store};
use tower::ServiceExt;

use crate::{bootstrap, router, AppState};

/// Every key of a JSON text with its path, in the order written
/// (`spec.containers[].name`).
fn key_paths(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut paths = Vec::new();
    // The open containers: the path of each, and whether it is an object.
    let mut stack: Vec<(String, bool)> = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    let mut expect_key = false;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push((current.clone(), true));
                expect_key = true;
            }
            b'[' => {
                stack.push((current.clone(), false));
                current = format!("{current}[]");
            }
            b'}' | b']' => {
                let (path, _) = stack.pop().expect("balanced");
                current = path;
                expect_key = false;
            }
            b',' => {
                let (path, object) = stack.last().cloned().expect("inside a container");
                expect_key = object;
                current = if object { path } else { format!("{path}[]") };
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    let key = &text[start..i];
                    let parent = &stack.last().expect("inside an object").0;
                    current = match parent.is_empty() {
                        true => key.to_owned(),
                        false => format!("{parent}.{key}"),
                    };
                    paths.push(current.clone());
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

async fn call(state: &AppState, method: Method, uri: &str, body: Value) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(match body {
            Value::Null => Body::empty(),
            body => Body::from(body.to_string()),
        })
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let code = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn state() -> AppState {
    let store: Arc<dyn Store> = Arc::new(MvccStore::memory(HistoryLimits::default()));
    let state = AppState::new(store);
    bootstrap(&state).await.unwrap();
    state
}

#[test]
fn key_paths_follow_the_text() {
    assert_eq!(
        key_paths(r#"{"a":1,"b":{"c":[{"d":"}"},{"e":[1,2]}]},"f":"\"x"}"#),
        ["a", "b", "b.c", "b.c[].d", "b.c[].e", "f"]
    );
}

#[tokio::test]
async fn statuses_are_written_in_go_field_order() {
    let state = state().await;
    // A 404: Status{TypeMeta, ListMeta, Status, Message, Reason, Details,
    // Code}; StatusDetails{Name, Group (omitempty), Kind}.
    let (code, text) = call(
        &state,
        Method::GET,
        "/api/v1/namespaces/default/pods/x",
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"pods\"},\"code\":404}\n"
    );
    // A 409 on a second create of a Deployment (group apps).
    let deployment = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }] } } } });
    let uri = "/apis/apps/v1/namespaces/default/deployments";
    let (code, _) = call(&state, Method::POST, uri, deployment.clone()).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, text) = call(&state, Method::POST, uri, deployment).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(
        text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"deployments.apps \\\"web\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"web\",\"group\":\"apps\",\"kind\":\"deployments\"},\"code\":409}\n"
    );
    // A 422: StatusCause{Type `json:"reason"`, Message, Field}.
    let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "Bad_Name" },
        "spec": { "containers": [{ "name": "c", "image": "nginx" }] } });
    let (code, text) = call(&state, Method::POST, "/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        key_paths(&text),
        [
            "kind",
            "apiVersion",
            "metadata",
            "status",
            "message",
            "reason",
            "details",
            "details.name",
            "details.kind",
            "details.causes",
            "details.causes[].reason",
            "details.causes[].message",
            "details.causes[].field",
            "code",
        ]
    );
}

/// The keys of `text` down to `depth` levels (`spec.template` is 2).
fn keys_to_depth(text: &str, depth: usize) -> Vec<String> {
    key_paths(text)
        .into_iter()
        .filter(|p| !p.contains('[') && p.split('.').count() <= depth)
        .collect()
}

#[tokio::test]
async fn created_workloads_and_services_are_written_in_go_field_order_with_their_zero_fields() {
    let state = state().await;
    let template = json!({ "metadata": { "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "c", "image": "nginx" }] } });
    let selector = json!({ "matchLabels": { "app": "web" } });
    // ObjectMeta{Name, GenerateName, Namespace, SelfLink, UID,
    // ResourceVersion, Generation, CreationTimestamp, ..., Labels, ...}.
    let meta = [
        "metadata",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.resourceVersion",
        "metadata.generation",
        "metadata.creationTimestamp",
    ];
    let cases = [
        // DeploymentSpec{Replicas, Selector, Template, Strategy,
        // MinReadySeconds, RevisionHistoryLimit, Paused,
        // ProgressDeadlineSeconds}; DeploymentStatus: every field omitempty.
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
                "spec": { "selector": selector, "template": template } }),
            vec![
                "spec.replicas",
                "spec.selector",
                "spec.template",
                "spec.strategy",
                "spec.revisionHistoryLimit",
                "spec.progressDeadlineSeconds",
                "status",
            ],
        ),
        // ReplicaSetStatus{Replicas `json:"replicas"` (no omitempty), ...}.
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": { "name": "web" },
                "spec": { "selector": selector, "template": template } }),
            vec![
                "spec.replicas",
                "spec.selector",
                "spec.template",
                "status",
                "status.replicas",
            ],
        ),
        // ReplicationControllerStatus{Replicas `json:"replicas"`, ...}.
        (
            "/api/v1/namespaces/default/replicationcontrollers",
            json!({ "apiVersion": "v1", "kind": "ReplicationController", "metadata": { "name": "web" },
                "spec": { "selector": { "app": "web" }, "template": template } }),
            vec![
                "spec.replicas",
                "spec.selector",
                "spec.template",
                "status",
                "status.replicas",
            ],
        ),
        // DaemonSetSpec{Selector, Template, UpdateStrategy, MinReadySeconds,
        // RevisionHistoryLimit}; DaemonSetStatus{CurrentNumberScheduled,
        // NumberMisscheduled, DesiredNumberScheduled, NumberReady: no
        // omitempty}.
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": { "name": "web" },
                "spec": { "selector": selector, "template": template } }),
            vec![
                "spec.selector",
                "spec.template",
                "spec.updateStrategy",
                "spec.revisionHistoryLimit",
                "status",
                "status.currentNumberScheduled",
                "status.numberMisscheduled",
                "status.desiredNumberScheduled",
                "status.numberReady",
            ],
        ),
        // ServiceSpec{Ports, Selector, ClusterIP, ClusterIPs, Type, ...,
        // SessionAffinity, ..., IPFamilies, IPFamilyPolicy, ...,
        // InternalTrafficPolicy}; ServiceStatus{LoadBalancer (a struct,
        // always written)}.
        (
            "/api/v1/namespaces/default/services",
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" },
                "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] } }),
            vec![
                "spec.ports",
                "spec.selector",
                "spec.clusterIP",
                "spec.clusterIPs",
                "spec.type",
                "spec.sessionAffinity",
                "spec.ipFamilies",
                "spec.ipFamilyPolicy",
                "spec.internalTrafficPolicy",
                "status",
                "status.loadBalancer",
            ],
        ),
    ];
    for (uri, body, rest) in cases {
        let (code, text) = call(&state, Method::POST, uri, body).await;
        assert_eq!(code, StatusCode::CREATED, "{text}");
        let mut expected = vec!["kind", "apiVersion"];
        expected.extend(meta);
        expected.push("spec");
        expected.extend(rest);
        assert_eq!(keys_to_depth(&text, 2), expected, "{uri}: {text}");
        let object: Value = serde_json::from_str(&text).unwrap();
        for (field, value) in object["status"].as_object().unwrap() {
            if value.is_number() {
                assert_eq!(value, 0, "{uri}: status.{field}");
            }
        }
    }
    // A Pod: PodSpec's Go order for what its defaults fill in, and the
    // Container's (Name, Image, ..., Resources, ..., TerminationMessagePath,
    // TerminationMessagePolicy, ImagePullPolicy).
    let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "web" },
        "spec": { "containers": [{ "name": "c", "image": "nginx" }] } });
    let (code, text) = call(&state, Method::POST, "/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(code, StatusCode::CREATED, "{text}");
    let containers: Vec<String> = key_paths(&text)
        .into_iter()
        .filter(|p| p.starts_with("spec.containers[].") && p.matches('.').count() == 2)
        .collect();
    assert_eq!(
        containers,
        [
            "spec.containers[].name",
            "spec.containers[].image",
            "spec.containers[].resources",
            "spec.containers[].terminationMessagePath",
            "spec.containers[].terminationMessagePolicy",
            "spec.containers[].imagePullPolicy",
        ],
        "{text}"
    );
    let top = keys_to_depth(&text, 1);
    assert_eq!(top, ["kind", "apiVersion", "metadata", "spec", "status"]);
}
