//! Service accounts at the apiserver: upstream's ServiceAccount admission
//! of new pods (the account must exist; its token, the cluster's CA and the
//! namespace are mounted at [`MOUNT_PATH`] unless automounting is off), the
//! TokenRequest subresource (`serviceaccounts/NAME/token`, as
//! `pkg/registry/core/serviceaccount/storage/token.go`), and the checks a
//! presented token must pass beyond its signature: the account, and the
//! object it is bound to, still exist with the uids it names.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{ApiError, Cause};
use crate::object::{from_stored, meta_str};
use crate::tokens::{Claims, Grant, Ref, ISSUER};
use crate::AppState;

/// Where a pod's service-account credentials are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap with the cluster's CA that every namespace gets.
pub const ROOT_CA: &str = "kube-root-ca.crt";
/// How long the kubelet asks a mounted token to last, as upstream's
/// admission asks (an hour and 7 s, which marks it as the kubelet's).
const MOUNTED_EXPIRATION: i64 = 3607;
/// The shortest and longest token a TokenRequest may ask for.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
/// How long admission waits for a namespace's `default` account, made by
/// the controller as the namespace is (upstream retries its lookup too).
const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// The object named in the core group, if it exists.
async fn core(
    state: &AppState,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let resource = state
        .registry
        .by_plural("", "v1", plural)
        .expect("a core kind");
    match state.store.get(&resource.key(namespace, name)).await {
        Ok(object) => from_stored(&object).map(Some),
        Err(skiff_store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(ApiError::from_store(e, resource, name)),
    }
}

/// Upstream's generated volume suffix: five of these (`utilrand.String`).
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// Whether the pod gets its account's token: its own
/// `automountServiceAccountToken`, else its account's, else yes.
pub fn automounts(pod: &Value, account: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or(account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// Adds the token volume `volume` to the pod, mounted read-only at
/// [`MOUNT_PATH`] in each (init) container that mounts nothing there yet.
pub fn mount(pod: &mut Value, volume: &str) {
    let spec = &mut pod["spec"];
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for c in containers {
            let mounts = c["volumeMounts"].as_array();
            if mounts.is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH)) {
                continue;
            }
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
            c["volumeMounts"]
                .as_array_mut()
                .expect("an array")
                .push(mount);
            needed = true;
        }
    }
    if !needed {
        return;
    }
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    spec["volumes"].as_array_mut().expect("an array").push(json!({
        "name": volume,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": MOUNTED_EXPIRATION, "path": "token"}},
                {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    }));
}

/// Admits a new pod as upstream's ServiceAccount plugin: its account must
/// exist (403 otherwise), and its token is mounted unless it opts out.
/// Mirror pods are left alone.
pub async fn admit(state: &AppState, namespace: &str, pod: &mut Value) -> Result<(), ApiError> {
    let annotations = &pod["metadata"]["annotations"];
    if annotations.get("kubernetes.io/config.mirror").is_some() {
        return Ok(());
    }
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_owned();
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    let account = loop {
        if let Some(account) = core(state, "serviceaccounts", Some(namespace), &name).await? {
            break account;
        }
        if name != "default" || tokio::time::Instant::now() >= deadline {
            let pod_name = meta_str(pod, "name").unwrap_or_default();
            return Err(ApiError::forbidden(format!(
                "pods \"{pod_name}\" is forbidden: error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if automounts(pod, &account) {
        mount(pod, &format!("kube-api-access-{}", suffix()));
    }
    Ok(())
}

/// Upstream's `ValidateTokenRequest`.
fn validate(spec: &Value) -> Vec<Cause> {
    let seconds = spec["expirationSeconds"].as_i64().unwrap_or_default();
    let invalid = |why: &str| Cause {
        reason: "FieldValueInvalid",
        field: "spec.expirationSeconds".into(),
        message: format!("Invalid value: {seconds}: {why}"),
    };
    match seconds {
        s if s < MIN_EXPIRATION => vec![invalid("may not specify a duration less than 10 minutes")],
        s if s > MAX_EXPIRATION => vec![invalid(
            "may not specify a duration larger than 2^32 seconds",
        )],
        _ => Vec::new(),
    }
}

fn reference(object: &Value) -> Ref {
    Ref {
        name: meta_str(object, "name").unwrap_or_default().to_owned(),
        uid: meta_str(object, "uid").unwrap_or_default().to_owned(),
    }
}

/// `POST serviceaccounts/NAME/token`: a token for the account, for the
/// audiences asked (this server's when none), bound to the pod, secret or
/// node named; the TokenRequest answered with it, 201.
pub async fn request_token(
    state: &AppState,
    namespace: &str,
    name: &str,
    mut request: Value,
) -> Result<Value, ApiError> {
    let Some(tokens) = state.tokens.as_ref() else {
        return Err(ApiError::internal(
            "no service-account signing key is configured",
        ));
    };
    let invalid = |field: &str, message: String| {
        let cause = Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message,
        };
        ApiError::invalid_kind("authentication.k8s.io", "TokenRequest", name, vec![cause])
    };
    for (field, value, which) in [
        ("name", name, "name"),
        ("namespace", namespace, "namespace"),
    ] {
        match meta_str(&request, field) {
            Some(given) if !given.is_empty() && given != value => {
                return Err(invalid(
                    &format!("metadata.{field}"),
                    format!("Invalid value: {given:?}: must match the service account {which} if specified"),
                ));
            }
            _ => {}
        }
    }
    let spec = &mut request["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec["expirationSeconds"].is_null() {
        spec["expirationSeconds"] = json!(3600);
    }
    let causes = validate(spec);
    if !causes.is_empty() {
        return Err(ApiError::invalid_kind(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            causes,
        ));
    }
    let Some(account) = core(state, "serviceaccounts", Some(namespace), name).await? else {
        let resource = state
            .registry
            .by_plural("", "v1", "serviceaccounts")
            .expect("served");
        return Err(ApiError::not_found(resource, name));
    };
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![ISSUER.to_owned()],
    };
    spec["audiences"] = json!(audiences);
    let mut grant = Grant {
        namespace: namespace.to_owned(),
        account: reference(&account),
        audiences,
        expiration: spec["expirationSeconds"].as_i64().unwrap_or(3600),
        ..Grant::default()
    };
    if let Some(bound) = spec["boundObjectRef"].as_object().cloned() {
        bind(state, namespace, name, &bound, &mut grant).await?;
    }
    let now = jiff::Timestamp::now();
    let token = tokens.issue(&grant, now.as_second());
    let at = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let expires = now + jiff::SignedDuration::from_secs(grant.expiration);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    let meta = &mut request["metadata"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["name"] = json!(name);
    meta["namespace"] = json!(namespace);
    meta["creationTimestamp"] = json!(at(now));
    request["status"] = json!({"token": token, "expirationTimestamp": at(expires)});
    Ok(request)
}

/// Binds the grant to the object `bound` names, as upstream: a pod (with
/// its node, as 1.30's token carries it) running as the account, a secret
/// or a node, each with the uid given if one is.
async fn bind(
    state: &AppState,
    namespace: &str,
    account: &str,
    bound: &serde_json::Map<String, Value>,
    grant: &mut Grant,
) -> Result<(), ApiError> {
    let text = |k: &str| bound.get(k).and_then(Value::as_str).unwrap_or_default();
    let (kind, api_version, name, uid) =
        (text("kind"), text("apiVersion"), text("name"), text("uid"));
    let (plural, scope) = match (api_version, kind) {
        ("v1", "Pod") => ("pods", Some(namespace)),
        ("v1", "Secret") => ("secrets", Some(namespace)),
        ("v1", "Node") => ("nodes", None),
        _ => {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let resource = state.registry.by_plural("", "v1", plural).expect("served");
    let object = core(state, plural, scope, name)
        .await?
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let found = reference(&object);
    if !uid.is_empty() && uid != found.uid {
        return Err(ApiError::conflict(
            resource,
            name,
            &format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        ));
    }
    match kind {
        "Pod" => {
            if object["spec"]["serviceAccountName"].as_str() != Some(account) {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                )));
            }
            if let Some(node) = object["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
            {
                let uid = core(state, "nodes", None, node)
                    .await?
                    .map(|n| reference(&n).uid)
                    .unwrap_or_default();
                grant.node = Some(Ref {
                    name: node.to_owned(),
                    uid,
                });
            }
            grant.pod = Some(found);
        }
        "Secret" => grant.secret = Some(found),
        _ => grant.node = Some(found),
    }
    Ok(())
}

/// Whether what a verified token names still stands: its account, and
/// the object it is bound to, exist with the same uids (a bound pod
/// deleted more than a minute ago no longer counts, as upstream's).
pub async fn still_valid(state: &AppState, claims: &Claims) -> bool {
    let private = &claims.kubernetes;
    let namespace = Some(private.namespace.as_str());
    let same = |object: Option<Value>, wanted: &Ref| {
        object.is_some_and(|o| meta_str(&o, "uid") == Some(wanted.uid.as_str()))
    };
    let account = core(
        state,
        "serviceaccounts",
        namespace,
        &private.serviceaccount.name,
    )
    .await;
    if !same(account.ok().flatten(), &private.serviceaccount) {
        return false;
    }
    if let Some(pod) = &private.pod {
        let Ok(Some(found)) = core(state, "pods", namespace, &pod.name).await else {
            return false;
        };
        let gone = meta_str(&found, "deletionTimestamp")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t + jiff::SignedDuration::from_secs(60) < jiff::Timestamp::now());
        return !gone && same(Some(found), pod);
    }
    if let Some(secret) = &private.secret {
        return same(
            core(state, "secrets", namespace, &secret.name)
                .await
                .ok()
                .flatten(),
            secret,
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_mounted_in_every_container_but_where_something_is() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]},
            ],
        }});
        mount(&mut pod, "kube-api-access-abcde");
        let mounts = |list: &str, i: usize| pod["spec"][list][i]["volumeMounts"].clone();
        assert_eq!(
            mounts("initContainers", 0),
            json!([{"name": "kube-api-access-abcde", "readOnly": true, "mountPath": MOUNT_PATH}])
        );
        assert_eq!(mounts("containers", 0).as_array().unwrap().len(), 2);
        assert_eq!(mounts("containers", 1).as_array().unwrap().len(), 1);
        let volume = &pod["spec"]["volumes"][0];
        assert_eq!(volume["name"], "kube-api-access-abcde");
        assert_eq!(volume["projected"]["defaultMode"], 420);
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            volume["projected"]["sources"][1]["configMap"]["name"],
            ROOT_CA
        );
    }

    #[test]
    fn automounting_is_the_pods_choice_then_the_accounts() {
        let pod = |v: Value| json!({"spec": {"automountServiceAccountToken": v}});
        let account = |v: Value| json!({"automountServiceAccountToken": v});
        assert!(automounts(&pod(Value::Null), &account(Value::Null)));
        assert!(!automounts(&pod(Value::Null), &account(json!(false))));
        assert!(automounts(&pod(json!(true)), &account(json!(false))));
        assert!(!automounts(&pod(json!(false)), &account(Value::Null)));
        assert_eq!(suffix().len(), 5);
    }

    #[test]
    fn expirations_are_bounded_as_upstreams() {
        let causes = validate(&json!({"expirationSeconds": 60}));
        assert_eq!(
            causes[0].message,
            "Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        assert_eq!(causes[0].field, "spec.expirationSeconds");
        assert!(validate(&json!({"expirationSeconds": 600})).is_empty());
        let causes = validate(&json!({"expirationSeconds": 4_730_400_000i64}));
        assert!(causes[0].message.ends_with("larger than 2^32 seconds"));
    }
}
