//! The generic REST path end to end through `oneshot`: dry runs of every
//! verb and subresource, PartialObjectMetadata on every verb, and
//! wrong-typed bodies answered with a Status.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_store::ListOptions;

use crate::tests::Api;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";
const SVCS: &str = "/api/v1/namespaces/default/services";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
}

impl Api {
    async fn patch_as(&self, uri: &str, patch: Value, accept: &str) -> (StatusCode, Value) {
        let headers = [
            ("content-type", "application/merge-patch+json"),
            ("accept", accept),
        ];
        self.call_with(Method::PATCH, uri, &headers, patch.to_string().into_bytes())
            .await
    }

    async fn send_as(
        &self,
        method: Method,
        uri: &str,
        body: Value,
        accept: &str,
    ) -> (StatusCode, Value) {
        let bytes = match body.is_null() {
            true => Vec::new(),
            false => body.to_string().into_bytes(),
        };
        let headers = [("content-type", "application/json"), ("accept", accept)];
        self.call_with(method, uri, &headers, bytes).await
    }

    /// The audit trail's (verb, name) pairs.
    async fn audited(&self) -> Vec<(String, String)> {
        let (_, trail) = self.get("/skiff/v1/audit?since=0").await;
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["verb"].as_str().unwrap().into(),
                    r["name"].as_str().unwrap_or_default().into(),
                )
            })
            .collect()
    }

    /// How many objects the store holds under `prefix`.
    async fn stored_under(&self, prefix: &str) -> usize {
        let list = self.state.store.list(prefix, ListOptions::default()).await;
        list.unwrap().items.len()
    }
}

#[tokio::test]
async fn a_dry_run_of_each_verb_answers_as_a_write_and_stores_nothing() {
    let api = Api::new().await;
    let revision = api.state.store.current_revision();
    let (code, created) = api
        .send(Method::POST, &format!("{CMS}?dryRun=All"), config_map("d"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["uid"].is_string(), "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(api.get(&format!("{CMS}/d")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.state.store.current_revision(), revision);

    let (code, real) = api.send(Method::POST, CMS, config_map("d")).await;
    assert_eq!(code, StatusCode::CREATED);
    let mut changed = real.clone();
    changed["data"]["k"] = json!("put");
    let (code, put) = api
        .send(Method::PUT, &format!("{CMS}/d?dryRun=All"), changed)
        .await;
    assert_eq!((code, &put["data"]["k"]), (StatusCode::OK, &json!("put")));
    assert_eq!(
        put["metadata"]["resourceVersion"],
        real["metadata"]["resourceVersion"]
    );
    let (code, patched) = api
        .merge_patch(
            &format!("{CMS}/d?dryRun=All"),
            json!({"data": {"k": "patched"}}),
        )
        .await;
    assert_eq!(
        (code, &patched["data"]["k"]),
        (StatusCode::OK, &json!("patched"))
    );
    let (code, deleted) = api
        .send(Method::DELETE, &format!("{CMS}/d?dryRun=All"), Value::Null)
        .await;
    assert_eq!(
        (code, &deleted["metadata"]["name"]),
        (StatusCode::OK, &json!("d"))
    );
    let (code, collection) = api
        .send(Method::DELETE, &format!("{CMS}?dryRun=All"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(collection["items"].as_array().unwrap().len(), 1);

    let (_, kept) = api.get(&format!("{CMS}/d")).await;
    assert_eq!(kept, real, "the dry runs changed the stored object");
    // The real create alone is a write in the audit trail.
    let writes: Vec<(String, String)> = api
        .audited()
        .await
        .into_iter()
        .filter(|(_, name)| name == "d")
        .collect();
    assert_eq!(writes, [("create".to_owned(), "d".to_owned())]);
}

#[tokio::test]
async fn a_dry_run_validates_and_admits_as_a_write() {
    let api = Api::new().await;
    let mut bad = config_map("Bad_Name");
    bad["metadata"]["labels"] = json!({"a": "b c"});
    let (code, status) = api
        .send(Method::POST, &format!("{CMS}?dryRun=All"), bad)
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Invalid"))
    );
    let (code, _) = api
        .send(
            Method::POST,
            "/api/v1/namespaces/nowhere/configmaps?dryRun=All",
            config_map("c"),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, refused) = api
        .send(Method::POST, &format!("{CMS}?dryRun=Some"), config_map("c"))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""
    );
    assert_eq!(refused["details"]["causes"][0]["field"], "dryRun");
    // Immutable fields too.
    api.send(Method::POST, DEPLOYS, deployment()).await;
    let (code, _) = api
        .merge_patch(
            &format!("{DEPLOYS}/web?dryRun=All"),
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}}}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn dry_runs_of_status_and_scale_change_nothing() {
    let api = Api::new().await;
    let (_, created) = api.send(Method::POST, DEPLOYS, deployment()).await;
    let mut status = created.clone();
    status["status"] = json!({"replicas": 7});
    let (code, answered) = api
        .send(
            Method::PUT,
            &format!("{DEPLOYS}/web/status?dryRun=All"),
            status,
        )
        .await;
    assert_eq!(
        (code, &answered["status"]["replicas"]),
        (StatusCode::OK, &json!(7))
    );
    let (code, answered) = api
        .merge_patch(
            &format!("{DEPLOYS}/web/status?dryRun=All"),
            json!({"status": {"replicas": 8}}),
        )
        .await;
    assert_eq!(
        (code, &answered["status"]["replicas"]),
        (StatusCode::OK, &json!(8))
    );
    let scale = json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let (code, answered) = api
        .send(
            Method::PUT,
            &format!("{DEPLOYS}/web/scale?dryRun=All"),
            scale,
        )
        .await;
    assert_eq!(
        (code, &answered["spec"]["replicas"]),
        (StatusCode::OK, &json!(5))
    );
    let (code, answered) = api
        .merge_patch(
            &format!("{DEPLOYS}/web/scale?dryRun=All"),
            json!({"spec": {"replicas": 6}}),
        )
        .await;
    assert_eq!(
        (code, &answered["spec"]["replicas"]),
        (StatusCode::OK, &json!(6))
    );
    let (_, kept) = api.get(&format!("{DEPLOYS}/web")).await;
    assert_eq!(kept, created);
}

#[tokio::test]
async fn a_dry_run_service_is_answered_with_addresses_it_does_not_hold() {
    let api = Api::new().await;
    let addresses = "/registry/networking.k8s.io/ipaddresses/";
    let ports = "/registry/skiff/servicenodeports/";
    let (held_ips, held_ports) = (
        api.stored_under(addresses).await,
        api.stored_under(ports).await,
    );
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let (code, answered) = api
        .send(Method::POST, &format!("{SVCS}?dryRun=All"), service.clone())
        .await;
    assert_eq!(code, StatusCode::CREATED, "{answered}");
    assert!(
        answered["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10."),
        "{answered}"
    );
    assert!(answered["spec"]["ports"][0]["nodePort"].as_u64().unwrap() >= 30000);
    assert_eq!(api.stored_under(addresses).await, held_ips);
    assert_eq!(api.stored_under(ports).await, held_ports);
    // A taken address is refused in a dry run as in a real one.
    let (_, real) = api.send(Method::POST, SVCS, service.clone()).await;
    let mut twin = service.clone();
    twin["metadata"]["name"] = json!("twin");
    twin["spec"]["clusterIP"] = real["spec"]["clusterIP"].clone();
    let (code, refused) = api
        .send(Method::POST, &format!("{SVCS}?dryRun=All"), twin)
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    // A dry-run type change keeps what the Service holds, and deleting
    // it in a dry run releases nothing.
    let (code, _) = api
        .merge_patch(
            &format!("{SVCS}/web?dryRun=All"),
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": null}]}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    api.send(
        Method::DELETE,
        &format!("{SVCS}/web?dryRun=All"),
        Value::Null,
    )
    .await;
    assert_eq!(api.stored_under(addresses).await, held_ips + 1);
    assert_eq!(api.stored_under(ports).await, held_ports + 1);
}

#[tokio::test]
async fn a_dry_run_delete_of_a_running_pod_answers_it_marked_and_keeps_it() {
    let api = Api::new().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}});
    let (code, created) = api.send(Method::POST, PODS, pod).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, marked) = api
        .send(Method::DELETE, &format!("{PODS}/p?dryRun=All"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (_, kept) = api.get(&format!("{PODS}/p")).await;
    assert_eq!(kept, created);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "n2"}});
    let (code, _) = api
        .send(Method::POST, &format!("{PODS}/p/binding"), binding)
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "already bound");
}

#[tokio::test]
async fn every_verb_answers_partial_object_metadata_when_asked() {
    let api = Api::new().await;
    let check = |(code, body): (StatusCode, Value), expected: StatusCode| {
        assert_eq!(code, expected, "{body}");
        assert_eq!(body["kind"], "PartialObjectMetadata", "{body}");
        assert_eq!(body["metadata"]["name"], "m");
        assert!(
            body.get("data").is_none() && body.get("spec").is_none(),
            "{body}"
        );
    };
    check(
        api.send_as(Method::POST, CMS, config_map("m"), PARTIAL)
            .await,
        StatusCode::CREATED,
    );
    check(
        api.send_as(Method::GET, &format!("{CMS}/m"), Value::Null, PARTIAL)
            .await,
        StatusCode::OK,
    );
    let (_, whole) = api.get(&format!("{CMS}/m")).await;
    check(
        api.send_as(Method::PUT, &format!("{CMS}/m"), whole, PARTIAL)
            .await,
        StatusCode::OK,
    );
    check(
        api.patch_as(&format!("{CMS}/m"), json!({"data": {"x": "y"}}), PARTIAL)
            .await,
        StatusCode::OK,
    );
    let (code, list) = api
        .send_as(Method::GET, CMS, Value::Null, PARTIAL_LIST)
        .await;
    assert_eq!(
        (code, list["kind"].as_str()),
        (StatusCode::OK, Some("PartialObjectMetadataList"))
    );
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    check(
        api.send_as(Method::DELETE, &format!("{CMS}/m"), Value::Null, PARTIAL)
            .await,
        StatusCode::OK,
    );
    // The case: a Pod patched.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    api.send(Method::POST, PODS, pod).await;
    check(
        api.patch_as(
            &format!("{PODS}/m"),
            json!({"metadata": {"labels": {"a": "b"}}}),
            PARTIAL,
        )
        .await,
        StatusCode::OK,
    );
}

#[tokio::test]
async fn wrong_typed_specs_are_refused_with_a_status() {
    let api = Api::new().await;
    let cases = [
        (
            PODS,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": "x"}),
        ),
        (
            DEPLOYS,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": 5}}),
        ),
        (
            PODS,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "y"}, "spec": {"containers": ["c"], "tolerations": 3}, "status": 5}),
        ),
        (
            SVCS,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"type": 5, "sessionAffinity": "ClientIP", "sessionAffinityConfig": 1}}),
        ),
    ];
    for (uri, body) in cases {
        let (code, status) = api.send(Method::POST, uri, body.clone()).await;
        assert!(code.is_client_error(), "{body}: {code} {status}");
        assert_eq!(status["kind"], "Status", "{body}");
    }
    assert_eq!(api.stored_under("/registry/core/pods/").await, 0);
}
