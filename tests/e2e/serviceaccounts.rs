//! Service accounts with real kubectl: every namespace's `default`
//! account and CA ConfigMap, pods admitted with their account's token
//! mounted, `kubectl create token` (TokenRequest) and its errors, and
//! tokens the server accepts as the account while what they are bound to
//! exists, and no longer once it is gone.

use serde_json::Value;

use crate::harness::{eventually, have, Server};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[test]
fn tokens_are_issued_accepted_while_their_pod_lives_and_mounted_in_pods() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&["create", "namespace", "team"]);
    // The controllers fill a new namespace at once.
    eventually(10, "team's default account and CA", || {
        let account = server.kubectl(&["get", "serviceaccount", "default", "-n", "team"]);
        let ca = server.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"]);
        (account.status.success() && ca.status.success()).then_some(())
    });
    let ca = server.kubectl_ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // A pod is admitted with its account's credentials mounted.
    server.kubectl_ok(&["run", "web", "-n", "team", "--image", "nginx"]);
    let pod: Value = serde_json::from_str(
        &server.kubectl_ok(&["get", "pod", "web", "-n", "team", "-o", "json"]),
    )
    .unwrap();
    let volume = &pod["spec"]["volumes"][0];
    assert!(
        volume["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-"),
        "{pod:#}"
    );
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    let mount = &pod["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(
        mount["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount["readOnly"], true);
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let refused = server.kubectl(&[
        "run",
        "stray",
        "-n",
        "team",
        "--image",
        "nginx",
        "--overrides",
        r#"{"spec": {"serviceAccountName": "ghost"}}"#,
    ]);
    assert_eq!(
        stderr(&refused),
        "Error from server (Forbidden): pods \"stray\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
    );

    // TokenRequest, through kubectl, and its errors as upstream's.
    let short = server.kubectl(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--duration",
        "1m",
    ]);
    assert_eq!(
        stderr(&short),
        "error: failed to create token: TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
    let missing = server.kubectl(&["create", "token", "ghost", "-n", "team"]);
    assert_eq!(
        stderr(&missing),
        "error: failed to create token: serviceaccounts \"ghost\" not found"
    );
    let token = server.kubectl_ok(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "web",
    ]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_account = |args: &[&str]| {
        let mut all = vec!["--token", token];
        all.extend_from_slice(args);
        server.kubectl(&all)
    };
    let listed = as_account(&["get", "pods", "-n", "team", "-o", "name"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "pod/web");
    // The audit trail names the account as the writer.
    let labelled = as_account(&["label", "pod", "web", "-n", "team", "by=token"]);
    assert!(labelled.status.success(), "{}", stderr(&labelled));
    let audit = server.kubectl_ok(&["get", "--raw", "/skiff/v1/audit"]);
    assert!(
        audit.contains("system:serviceaccount:team:default"),
        "{audit}"
    );

    // Gone with the pod it was bound to; a forged one never counts.
    server.kubectl_ok(&[
        "delete",
        "pod",
        "web",
        "-n",
        "team",
        "--grace-period",
        "0",
        "--force",
    ]);
    eventually(20, "the bound token refused", || {
        let output = as_account(&["get", "pods", "-n", "team"]);
        stderr(&output).contains("Unauthorized").then_some(())
    });
    let mut forged: Vec<&str> = token.split('.').collect();
    forged[2] = "AAAA";
    let forged = forged.join(".");
    let output = server.kubectl(&["--token", &forged, "get", "pods"]);
    assert!(
        stderr(&output).contains("Unauthorized"),
        "{}",
        stderr(&output)
    );
}
