//! Router tests: every verb and every error through `oneshot` requests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_store::{HistoryLimits, MvccStore, Store};
use tower::ServiceExt;

use crate::{bootstrap, router, AppState};

/// A server over a fresh memory store, called through `oneshot`.
pub(crate) struct Api {
    pub(crate) state: AppState,
}

impl Api {
    pub(crate) async fn new() -> Self {
        let store: Arc<dyn Store> = Arc::new(MvccStore::memory(HistoryLimits::default()));
        let state = AppState::new(store);
        bootstrap(&state).await.unwrap();
        Self { state }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        self.call_with(method, uri, &[("content-type", content_type)], body)
            .await
    }

    /// Sends `body` with `headers`; the code and the body answered.
    pub(crate) async fn call_with(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body)).unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub(crate) async fn send(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.call(method, uri, "application/json", bytes).await
    }

    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Method::GET, uri, Value::Null).await
    }

    pub(crate) async fn merge_patch(&self, uri: &str, patch: Value) -> (StatusCode, Value) {
        let body = patch.to_string().into_bytes();
        self.call(Method::PATCH, uri, "application/merge-patch+json", body)
            .await
    }
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn requests_without_the_token_get_401_but_health_answers() {
    let api = Api::new().await;
    let state = api.state.clone().with_token("s3cret");
    let call = |uri: &'static str, token: Option<&'static str>| {
        let state = state.clone();
        async move {
            let mut request = Request::builder().uri(uri);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = router(state)
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            response.status()
        }
    };
    assert_eq!(
        call("/api/v1/namespaces", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("/api/v1/namespaces", Some("wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("/api/v1/namespaces", Some("s3cret")).await,
        StatusCode::OK
    );
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(call(open, None).await, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn discovery_lists_groups_resources_and_subresources() {
    let api = Api::new().await;
    let (code, core) = api.get("/api/v1").await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in [
        "pods",
        "pods/status",
        "pods/binding",
        "pods/log",
        "services",
        "namespaces",
        "nodes/status",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let (_, apps) = api.get("/apis/apps/v1").await;
    let scale = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(
        (
            scale["group"].as_str(),
            scale["version"].as_str(),
            scale["kind"].as_str()
        ),
        (Some("autoscaling"), Some("v1"), Some("Scale"))
    );
    let (_, groups) = api.get("/apis").await;
    assert_eq!(groups["groups"][0]["name"], "apps");
    assert_eq!(api.get("/apis/nope/v1").await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/version").await.1["major"], "1");
}

#[tokio::test]
async fn create_get_update_patch_delete() {
    let api = Api::new().await;
    let (code, created) = api
        .send(Method::POST, CMS, config_map("app", json!({"a": "1"})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let meta = &created["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["generation"], 1);
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(meta["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let rv = meta["resourceVersion"].as_str().unwrap().to_owned();

    let (code, got) = api.get(&format!("{CMS}/app")).await;
    assert_eq!((code, &got), (StatusCode::OK, &created));

    // Update with the current resourceVersion, then a stale one: 409.
    let mut changed = got.clone();
    changed["data"]["k"] = json!("w");
    let (code, updated) = api
        .send(Method::PUT, &format!("{CMS}/app"), changed.clone())
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["metadata"]["generation"], 2,
        "a data change counts as a spec change"
    );
    assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
    let (code, stale) = api.send(Method::PUT, &format!("{CMS}/app"), changed).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(stale["reason"], "Conflict");
    assert!(stale["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));

    // A label change is no spec change.
    let (code, patched) = api
        .merge_patch(
            &format!("{CMS}/app"),
            json!({"metadata": {"labels": {"b": "2"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(patched["metadata"]["generation"], 2);
    let ops = json!([{"op": "replace", "path": "/data/k", "value": "x"}])
        .to_string()
        .into_bytes();
    let (code, patched) = api
        .call(
            Method::PATCH,
            &format!("{CMS}/app"),
            "application/json-patch+json",
            ops,
        )
        .await;
    assert_eq!((code, &patched["data"]["k"]), (StatusCode::OK, &json!("x")));

    let (code, deleted) = api
        .send(Method::DELETE, &format!("{CMS}/app"), Value::Null)
        .await;
    assert_eq!(
        (code, &deleted["metadata"]["name"]),
        (StatusCode::OK, &json!("app"))
    );
    let (code, gone) = api.get(&format!("{CMS}/app")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(gone["message"], "configmaps \"app\" not found");
    assert_eq!(
        gone["details"],
        json!({"name": "app", "kind": "configmaps"})
    );
}

#[tokio::test]
async fn generate_name_and_identity_checks() {
    let api = Api::new().await;
    let body = json!({"metadata": {"generateName": "web-"}, "data": {}});
    let (code, created) = api.send(Method::POST, CMS, body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("web-"));
    assert_eq!(
        (created["kind"].as_str(), created["apiVersion"].as_str()),
        (Some("ConfigMap"), Some("v1"))
    );
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    assert_eq!(
        api.send(Method::POST, CMS, wrong_kind).await.0,
        StatusCode::BAD_REQUEST
    );
    let wrong_ns = json!({"metadata": {"name": "x", "namespace": "kube-system"}});
    assert_eq!(
        api.send(Method::POST, CMS, wrong_ns).await.0,
        StatusCode::BAD_REQUEST
    );
    let (code, _) = api
        .send(
            Method::POST,
            "/api/v1/namespaces/missing/configmaps",
            config_map("x", json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_answers_status_objects_with_the_right_code() {
    let api = Api::new().await;
    let (code, status) = api
        .call(Method::POST, CMS, "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(
        (code, status["kind"].as_str(), status["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Status"), Some("BadRequest"))
    );

    let yaml = b"metadata:\n  name: from-yaml\ndata:\n  k: v\n".to_vec();
    let (code, created) = api.call(Method::POST, CMS, "application/yaml", yaml).await;
    assert_eq!(
        (code, created["data"]["k"].as_str()),
        (StatusCode::CREATED, Some("v")),
        "{created}"
    );
    let (code, status) = api
        .call(
            Method::POST,
            CMS,
            "application/yaml",
            b"metadata: [unclosed\n".to_vec(),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest")),
        "{status}"
    );
    let (code, status) = api
        .call(
            Method::POST,
            CMS,
            "application/vnd.kubernetes.protobuf",
            b"k8s\0".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    let (code, _) = api
        .call(Method::POST, CMS, "application/cbor", b"\xa0".to_vec())
        .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (code, invalid) = api
        .send(
            Method::POST,
            CMS,
            config_map("Bad_Name", json!({"-x": "y"})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid["reason"], "Invalid");
    let fields: Vec<&str> = invalid["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["metadata.name", "metadata.labels"]);
    assert!(invalid["message"]
        .as_str()
        .unwrap()
        .starts_with("ConfigMap \"Bad_Name\" is invalid: ["));

    api.send(Method::POST, CMS, config_map("dup", json!({})))
        .await;
    let (code, exists) = api
        .send(Method::POST, CMS, config_map("dup", json!({})))
        .await;
    assert_eq!(
        (code, exists["reason"].as_str()),
        (StatusCode::CONFLICT, Some("AlreadyExists"))
    );

    let huge = vec![b' '; crate::MAX_BODY_BYTES + 1];
    let (code, too_large) = api.call(Method::POST, CMS, "application/json", huge).await;
    assert_eq!(
        (code, too_large["reason"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestEntityTooLarge"))
    );

    let (code, unsupported) = api
        .call(
            Method::PATCH,
            &format!("{CMS}/dup"),
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (code, unsupported["reason"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("UnsupportedMediaType")
        )
    );

    assert_eq!(
        api.send(Method::PUT, CMS, json!({})).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(api.get("/api/v1/widgets").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get(&format!("{CMS}?labelSelector=a%20in%20(")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get(&format!("{CMS}?fieldSelector=spec.nope%3D1"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get(&format!("{CMS}?limit=abc")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get(&format!("{CMS}?continue=%21%21")).await.0,
        StatusCode::BAD_REQUEST
    );
    // Nothing was half-written by any of it.
    let (_, list) = api.get(CMS).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "dup and from-yaml"
    );
}

#[tokio::test]
async fn lists_page_and_select() {
    let api = Api::new().await;
    for i in 0..25 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        api.send(
            Method::POST,
            CMS,
            config_map(&format!("cm-{i:02}"), json!({"tier": tier})),
        )
        .await;
    }
    let (_, first) = api.get(&format!("{CMS}?limit=10")).await;
    assert_eq!(first["kind"], "ConfigMapList");
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let revision = first["metadata"]["resourceVersion"].clone();
    let mut names: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let mut token = first["metadata"]["continue"].as_str().map(str::to_owned);
    while let Some(t) = token {
        api.send(
            Method::POST,
            CMS,
            config_map(&format!("late-{}", names.len()), json!({"late": "yes"})),
        )
        .await;
        let (_, page) = api
            .get(&format!(
                "{CMS}?limit=10&continue={}",
                t.replace('=', "%3D")
                    .replace('+', "%2B")
                    .replace('/', "%2F")
            ))
            .await;
        assert_eq!(
            page["metadata"]["resourceVersion"], revision,
            "every page at one revision"
        );
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        token = page["metadata"]["continue"].as_str().map(str::to_owned);
    }
    assert_eq!(names.len(), 25);
    let (_, front) = api.get(&format!("{CMS}?labelSelector=tier%3Dfront")).await;
    assert_eq!(front["items"].as_array().unwrap().len(), 13);
    let (_, not_front) = api
        .get(&format!("{CMS}?labelSelector=tier%20notin%20(front),!late"))
        .await;
    assert_eq!(not_front["items"].as_array().unwrap().len(), 12);
    let (_, named) = api
        .get(&format!("{CMS}?fieldSelector=metadata.name%3Dcm-03"))
        .await;
    assert_eq!(named["items"][0]["metadata"]["name"], "cm-03");
    let (_, all) = api.get("/api/v1/configmaps").await;
    assert!(all["items"].as_array().unwrap().len() >= 25);
}

#[tokio::test]
async fn finalizers_hold_an_object_until_removed() {
    let api = Api::new().await;
    let mut held = config_map("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/keep"]);
    api.send(Method::POST, CMS, held).await;
    let (code, marked) = api
        .send(Method::DELETE, &format!("{CMS}/held"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(api.get(&format!("{CMS}/held")).await.0, StatusCode::OK);
    let (code, _) = api
        .merge_patch(
            &format!("{CMS}/held"),
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        api.get(&format!("{CMS}/held")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn watch_lines(api: &Api, uri: &str, count: usize) -> Vec<Value> {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router(api.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    while lines.len() < count {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .unwrap();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).unwrap());
        }
    }
    lines
}

#[tokio::test]
async fn watches_replay_filter_and_expire() {
    let api = Api::new().await;
    let (_, created) = api
        .send(
            Method::POST,
            CMS,
            config_map("w1", json!({"tier": "front"})),
        )
        .await;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    api.send(Method::POST, CMS, config_map("w2", json!({"tier": "back"})))
        .await;
    api.merge_patch(
        &format!("{CMS}/w1"),
        json!({"metadata": {"labels": {"tier": "back"}}}),
    )
    .await;

    // From a resourceVersion: only later events.
    let events = watch_lines(&api, &format!("{CMS}?watch=1&resourceVersion={rv}"), 2).await;
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("w2"))
    );
    assert_eq!(events[1]["type"], "MODIFIED");

    // Filtered: w1 leaving the selection reads as DELETED.
    let uri = format!("{CMS}?watch=1&resourceVersion={rv}&labelSelector=tier%3Dfront");
    let events = watch_lines(&api, &uri, 1).await;
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("w1"))
    );

    // Without a resourceVersion: the current state first.
    let events = watch_lines(&api, &format!("{CMS}?watch=1"), 2).await;
    assert!(events.iter().all(|e| e["type"] == "ADDED"));

    // sendInitialEvents ends the initial state with a bookmark.
    let uri = format!("{CMS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true");
    let events = watch_lines(&api, &uri, 3).await;
    assert_eq!(events[2]["type"], "BOOKMARK");
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // A compacted resourceVersion: 200 with an ERROR event holding a 410.
    let current = api.state.store.current_revision();
    api.state.store.compact(current).await.unwrap();
    let events = watch_lines(&api, &format!("{CMS}?watch=1&resourceVersion=1"), 1).await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(
        (
            events[0]["object"]["code"].as_u64(),
            events[0]["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );
}

impl Api {
    /// GETs `uri` accepting `accept`.
    async fn get_as(&self, uri: &str, accept: &str) -> Value {
        let request = Request::builder()
            .uri(uri)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

#[tokio::test]
async fn metadata_informers_get_partial_object_metadata() {
    let api = Api::new().await;
    api.send(Method::POST, CMS, config_map("m1", json!({"a": "b"})))
        .await;
    let accept =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let list = api.get_as(CMS, accept).await;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["a"], "b");
    assert!(list["items"][0].get("data").is_none());
    let one = api
        .get_as(
            &format!("{CMS}/m1"),
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .await;
    assert_eq!(
        (one["kind"].as_str(), one["metadata"]["name"].as_str()),
        (Some("PartialObjectMetadata"), Some("m1"))
    );
}

#[tokio::test]
async fn tables_answer_kubectl_get() {
    let api = Api::new().await;
    api.send(Method::POST, CMS, config_map("t1", json!({})))
        .await;
    let table = api
        .get_as(
            CMS,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .await;
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "t1");
    assert_eq!(table["rows"][0]["cells"][1], 1);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
}

#[tokio::test]
async fn status_is_written_through_status_alone() {
    let api = Api::new().await;
    let (code, created) = api.send(Method::POST, DEPLOYS, deployment(2)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    // A status in the main resource's body is ignored...
    let mut with_status = created.clone();
    with_status["status"] = json!({"replicas": 9});
    let (_, updated) = api
        .send(Method::PUT, &format!("{DEPLOYS}/web"), with_status)
        .await;
    assert_eq!(
        updated["status"],
        json!({}),
        "the status a create starts with"
    );
    // ...and a spec in the status subresource's body too.
    let mut status_write = updated.clone();
    status_write["status"] = json!({"replicas": 2, "readyReplicas": 1});
    status_write["spec"]["replicas"] = json!(7);
    let (code, written) = api
        .send(Method::PUT, &format!("{DEPLOYS}/web/status"), status_write)
        .await;
    assert_eq!(code, StatusCode::OK, "{written}");
    assert_eq!(
        (
            written["status"]["readyReplicas"].as_i64(),
            written["spec"]["replicas"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        written["metadata"]["generation"], 1,
        "a status write is no spec change"
    );
    let (code, patched) = api
        .merge_patch(
            &format!("{DEPLOYS}/web/status"),
            json!({"status": {"readyReplicas": 2}}),
        )
        .await;
    assert_eq!(
        (code, patched["status"]["readyReplicas"].as_i64()),
        (StatusCode::OK, Some(2))
    );
}

#[tokio::test]
async fn scale_reads_and_sets_replicas() {
    let api = Api::new().await;
    api.send(Method::POST, DEPLOYS, deployment(2)).await;
    let (code, scale) = api.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        (scale["kind"].as_str(), scale["apiVersion"].as_str()),
        (Some("Scale"), Some("autoscaling/v1"))
    );
    assert_eq!(
        (
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["selector"].as_str()
        ),
        (Some(2), Some("app=web"))
    );
    let mut bigger = scale.clone();
    bigger["spec"]["replicas"] = json!(5);
    let (code, scaled) = api
        .send(Method::PUT, &format!("{DEPLOYS}/web/scale"), bigger.clone())
        .await;
    assert_eq!(
        (code, scaled["spec"]["replicas"].as_i64()),
        (StatusCode::OK, Some(5))
    );
    // The stale resourceVersion of the first read conflicts.
    assert_eq!(
        api.send(Method::PUT, &format!("{DEPLOYS}/web/scale"), bigger)
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (code, patched) = api
        .merge_patch(
            &format!("{DEPLOYS}/web/scale"),
            json!({"spec": {"replicas": 1}}),
        )
        .await;
    assert_eq!(
        (code, patched["spec"]["replicas"].as_i64()),
        (StatusCode::OK, Some(1))
    );
    let (_, deployment) = api.get(&format!("{DEPLOYS}/web")).await;
    assert_eq!(
        (
            deployment["spec"]["replicas"].as_i64(),
            deployment["metadata"]["generation"].as_i64()
        ),
        (Some(1), Some(3))
    );
    let (code, _) = api
        .merge_patch(
            &format!("{DEPLOYS}/web/scale"),
            json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn binding_assigns_a_pod_once() {
    let api = Api::new().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    api.send(Method::POST, pods, pod).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "skiff-node-1"}});
    let (code, status) = api
        .send(Method::POST, &format!("{pods}/p/binding"), binding.clone())
        .await;
    assert_eq!(
        (code, status["status"].as_str()),
        (StatusCode::CREATED, Some("Success"))
    );
    let (_, bound) = api.get(&format!("{pods}/p")).await;
    assert_eq!(bound["spec"]["nodeName"], "skiff-node-1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
    let (code, again) = api
        .send(Method::POST, &format!("{pods}/p/binding"), binding)
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(again["message"]
        .as_str()
        .unwrap()
        .contains("already assigned to node \"skiff-node-1\""));
}

#[tokio::test]
async fn metrics_count_requests_by_verb_resource_and_code() {
    let api = Api::new().await;
    api.send(Method::POST, CMS, config_map("m", json!({})))
        .await;
    api.get(&format!("{CMS}/missing")).await;
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = router(api.state.clone()).oneshot(request).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            "apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"201\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("skiff_store_revision "), "{text}");
}

#[tokio::test]
async fn the_audit_trail_records_mutations_in_order_with_their_versions() {
    let api = Api::new().await;
    let (_, created) = api
        .send(Method::POST, CMS, config_map("a1", json!({})))
        .await;
    api.get(&format!("{CMS}/a1")).await;
    let (_, patched) = api
        .merge_patch(&format!("{CMS}/a1"), json!({"data": {"x": "y"}}))
        .await;
    api.send(Method::POST, CMS, config_map("a1", json!({})))
        .await;
    let (code, trail) = api.get("/skiff/v1/audit?since=0").await;
    assert_eq!(code, StatusCode::OK);
    let items = trail["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, u64, Option<&str>)> = items
        .iter()
        .map(|r| {
            (
                r["verb"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["code"].as_u64().unwrap(),
                r["resourceVersion"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "create",
                "a1",
                201,
                created["metadata"]["resourceVersion"].as_str()
            ),
            (
                "patch",
                "a1",
                200,
                patched["metadata"]["resourceVersion"].as_str()
            ),
            ("create", "a1", 409, None),
        ]
    );
    assert_eq!(items[0]["namespace"], "default");
    assert_eq!(items[0]["user"], "skiff-admin");
    let (_, later) = api
        .get(&format!("/skiff/v1/audit?since={}", items[1]["seq"]))
        .await;
    assert_eq!(later["items"].as_array().unwrap().len(), 1);
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn a_bound_pod_is_deleted_gracefully_and_ended_by_its_kubelet() {
    let api = Api::new().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}});
    let (code, _) = api.send(Method::POST, PODS, pod).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, marked) = api
        .send(Method::DELETE, &format!("{PODS}/p"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK, "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    // The kubelet's status writes do not end it...
    let (code, _) = api
        .merge_patch(
            &format!("{PODS}/p/status"),
            json!({"status": {"phase": "Running"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(api.get(&format!("{PODS}/p")).await.0, StatusCode::OK);
    // ...its delete with grace 0 does.
    let (code, _) = api
        .send(
            Method::DELETE,
            &format!("{PODS}/p?gracePeriodSeconds=0"),
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(api.get(&format!("{PODS}/p")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn foreground_and_orphan_deletes_leave_the_owner_to_the_collector() {
    let api = Api::new().await;
    api.send(Method::POST, CMS, config_map("owner", json!({})))
        .await;
    let (code, marked) = api
        .send(
            Method::DELETE,
            &format!("{CMS}/owner"),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{marked}");
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    // Removing the finalizer (the collector's job) ends it.
    let (code, _) = api
        .merge_patch(
            &format!("{CMS}/owner"),
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        api.get(&format!("{CMS}/owner")).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, status) = api
        .send(
            Method::DELETE,
            &format!("{CMS}/x?propagationPolicy=Sideways"),
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{status}");
}

#[tokio::test]
async fn specs_are_validated_as_upstream() {
    let api = Api::new().await;
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                         "spec": {"ports": [{"port": 70000}]}});
    let (code, status) = api
        .send(Method::POST, "/api/v1/namespaces/default/services", service)
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.ports[0].port"
    );
    assert!(
        status["message"].as_str().unwrap().contains(
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        ),
        "{status}"
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}});
    let (code, status) = api.send(Method::POST, PODS, pod).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.containers");
}

const SVCS: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn services_get_unique_addresses_and_ports_released_on_delete_and_type_change() {
    let api = Api::new().await;
    let spec = json!({"type": "NodePort", "selector": {"app": "a"}, "ports": [{"port": 80, "nodePort": 30080}]});
    let (code, first) = api
        .send(Method::POST, SVCS, service("a", spec.clone()))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    assert_eq!(first["spec"]["ports"][0]["nodePort"], 30080);
    let ip = first["spec"]["clusterIP"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("10."), "{ip}");
    assert_eq!(first["spec"]["clusterIPs"], json!([ip]));
    // The same node port again: 422 naming the field.
    let (code, refused) = api
        .send(Method::POST, SVCS, service("b", spec.clone()))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["message"],
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // ... and the same ClusterIP, and one outside the range.
    let taken = json!({"clusterIP": ip, "ports": [{"port": 80}]});
    let (code, refused) = api.send(Method::POST, SVCS, service("c", taken)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .ends_with("provided IP is already allocated"));
    let outside = json!({"clusterIP": "192.168.9.9", "ports": [{"port": 80}]});
    let (_, refused) = api.send(Method::POST, SVCS, service("c", outside)).await;
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("is not in the valid range. The range of valid IPs is 10.96.0.0/12"));
    // The refused creates left nothing behind: a's address is the only one.
    let (_, addresses) = api.get("/apis/networking.k8s.io/v1/ipaddresses").await;
    let names: Vec<&str> = addresses["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ip.as_str()]);
    assert_eq!(addresses["items"][0]["spec"]["parentRef"]["name"], "a");
    // Back to ClusterIP: the node port is free for b.
    let (code, _) = api
        .merge_patch(&format!("{SVCS}/a"), json!({"spec": {"type": "ClusterIP"}}))
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, b) = api.send(Method::POST, SVCS, service("b", spec)).await;
    assert_eq!(code, StatusCode::CREATED, "{b}");
    // An update that omits clusterIP keeps it; one that changes it fails.
    let (code, kept) = api
        .send(
            Method::PUT,
            &format!("{SVCS}/a"),
            service("a", json!({"ports": [{"port": 81}]})),
        )
        .await;
    assert_eq!(
        (code, kept["spec"]["clusterIP"].as_str()),
        (StatusCode::OK, Some(ip.as_str()))
    );
    let (code, _) = api
        .merge_patch(
            &format!("{SVCS}/a"),
            json!({"spec": {"clusterIP": "10.96.7.7"}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // Deleting a frees its address for an explicit request.
    let (code, _) = api
        .send(Method::DELETE, &format!("{SVCS}/a"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    let again = json!({"clusterIP": ip, "ports": [{"port": 80}]});
    let (code, c) = api.send(Method::POST, SVCS, service("c", again)).await;
    assert_eq!(code, StatusCode::CREATED, "{c}");
}

#[tokio::test]
async fn repair_records_what_services_hold_and_releases_leaks() {
    let api = Api::new().await;
    let spec = json!({"type": "NodePort", "ports": [{"port": 80}]});
    let (_, held) = api.send(Method::POST, SVCS, service("a", spec)).await;
    let ip = held["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let addresses = "/apis/networking.k8s.io/v1/ipaddresses";
    // Its record lost, and a leaked one left by a create that never finished.
    let (code, _) = api
        .send(Method::DELETE, &format!("{addresses}/{ip}"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    let leak = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "10.96.200.1", "labels": {"ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "gone"}}});
    let (code, _) = api.send(Method::POST, addresses, leak).await;
    assert_eq!(code, StatusCode::CREATED);
    bootstrap(&api.state).await.unwrap();
    let (_, list) = api.get(addresses).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ip.as_str()]);
    // The repaired record holds: the same address is refused.
    let taken = json!({"clusterIP": ip, "ports": [{"port": 80}]});
    let (code, _) = api.send(Method::POST, SVCS, service("b", taken)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_pods_status_write_may_record_annotations_but_never_change_its_spec_or_owners() {
    let api = Api::new().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, _) = api.send(Method::POST, PODS, pod).await;
    assert_eq!(code, StatusCode::CREATED);
    let patch = json!({
        "metadata": {"annotations": {"kubelet.skiff.dev/environment": "A=1"}, "labels": {"x": "y"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u"}]},
        "spec": {"containers": [{"name": "c", "image": "other"}]},
        "status": {"phase": "Running"},
    });
    let (code, written) = api.merge_patch(&format!("{PODS}/p/status"), patch).await;
    assert_eq!(code, StatusCode::OK, "{written}");
    assert_eq!(written["status"]["phase"], "Running");
    assert_eq!(
        written["metadata"]["annotations"]["kubelet.skiff.dev/environment"],
        "A=1"
    );
    assert_eq!(written["metadata"]["labels"]["x"], "y");
    assert!(written["metadata"]["ownerReferences"].is_null());
    assert_eq!(written["spec"]["containers"][0]["image"], "nginx");
    // Other kinds' status writes change the status alone.
    let (_, _) = api
        .send(
            Method::POST,
            SVCS,
            service("s", json!({"ports": [{"port": 80}]})),
        )
        .await;
    let patch = json!({"metadata": {"labels": {"x": "y"}}, "status": {"loadBalancer": {}}});
    let (code, written) = api.merge_patch(&format!("{SVCS}/s/status"), patch).await;
    assert_eq!(code, StatusCode::OK);
    assert!(written["metadata"]["labels"].is_null());
}

#[tokio::test]
async fn a_mount_naming_no_volume_is_refused_as_upstream_words_it() {
    let api = Api::new().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "nginx",
                              "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}});
    let (code, status) = api.send(Method::POST, PODS, pod).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "Pod \"p\" is invalid: spec.containers[0].volumeMounts[0].name: Not found: \"x\""
    );
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldValueNotFound", "message": "Not found: \"x\"",
               "field": "spec.containers[0].volumeMounts[0].name"})
    );
    let (code, _) = api.get(&format!("{PODS}/p")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "nothing was stored");
}

#[tokio::test]
async fn field_selectors_read_absent_fields_as_their_zero_values() {
    let api = Api::new().await;
    for (name, spec) in [
        ("n1", json!({})),
        ("n2", json!({"unschedulable": false})),
        ("n3", json!({"unschedulable": true})),
    ] {
        let node =
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec});
        let (code, body) = api.send(Method::POST, "/api/v1/nodes", node).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (selector, expected) in [
        ("spec.unschedulable%3D%3Dfalse", vec!["n1", "n2"]),
        ("spec.unschedulable%3Dfalse", vec!["n1", "n2"]),
        ("spec.unschedulable!%3Dfalse", vec!["n3"]),
    ] {
        let (code, list) = api
            .get(&format!("/api/v1/nodes?fieldSelector={selector}"))
            .await;
        assert_eq!(code, StatusCode::OK, "{list}");
        assert_eq!(names(&list), expected, "{selector}");
    }
    let (code, status) = api
        .get("/api/v1/nodes?fieldSelector=metadata.namespace%3Dx")
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        "field label not supported: metadata.namespace"
    );
}

#[tokio::test]
async fn an_invalid_object_of_a_named_group_is_named_with_its_group_as_upstream() {
    let api = Api::new().await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "other"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, status) = api.send(Method::POST, DEPLOYS, deployment).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("Deployment.apps \"web\" is invalid: "),
        "{message}"
    );
    assert_eq!(status["details"]["kind"], "Deployment");
    assert_eq!(status["details"]["group"], "apps");
}
