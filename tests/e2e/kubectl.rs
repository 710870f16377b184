//! The real kubectl with its default flags (strict validation through
//! /openapi/v3, strategic merge patches on re-apply).

use crate::harness::{have, Server};

pub const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox
";

#[test]
fn apply_edit_reapply_get_explain_and_delete() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("shop.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let path = manifest.to_str().unwrap();

    let created = server.kubectl_ok(&["apply", "-f", path]);
    for line in [
        "namespace/shop created",
        "configmap/web-config created",
        "deployment.apps/web created",
    ] {
        assert!(created.contains(line), "{created}");
    }
    assert!(server
        .kubectl_ok(&["apply", "-f", path])
        .contains("deployment.apps/web unchanged"));

    // An edit re-applied is a strategic merge patch: the image changes, the
    // containers keep their order and nothing else is lost.
    std::fs::write(
        &manifest,
        MANIFEST
            .replace("nginx:1.27", "nginx:1.28")
            .replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    assert!(server
        .kubectl_ok(&["apply", "-f", path])
        .contains("deployment.apps/web configured"));
    let images = server.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "nginx:1.28 busybox");
    let generation = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(generation, "2");

    // Server-side Tables: the columns a real cluster prints.
    let namespaces = server.kubectl_ok(&["get", "namespaces"]);
    let header: Vec<&str> = namespaces
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "STATUS", "AGE"]);
    assert!(
        namespaces
            .lines()
            .any(|l| l.starts_with("shop") && l.contains("Active")),
        "{namespaces}"
    );
    let deployments = server.kubectl_ok(&["get", "deployments", "-n", "shop", "-o", "wide"]);
    let header: Vec<&str> = deployments
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        deployments.contains("web,sidecar")
            && deployments.contains("nginx:1.28,busybox")
            && deployments.contains("app=web"),
        "{deployments}"
    );

    // Every output format.
    let json = server.kubectl_ok(&["get", "configmap", "web-config", "-n", "shop", "-o", "json"]);
    assert!(json.contains("\"greeting\": \"hello\""), "{json}");
    let yaml = server.kubectl_ok(&["get", "cm", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains("greeting: hello"), "{yaml}");
    assert_eq!(
        server
            .kubectl_ok(&["get", "cm", "-n", "shop", "-o", "name"])
            .trim(),
        "configmap/kube-root-ca.crt\nconfigmap/web-config"
    );

    // Strict validation refuses an unknown field, naming it.
    std::fs::write(
        &manifest,
        MANIFEST.replace("  greeting: hello", "  greeting: hello\nbogus: 1"),
    )
    .unwrap();
    let refused = server.kubectl(&["apply", "-f", path]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unknown field \"bogus\""), "{stderr}");

    let explained = server.kubectl_ok(&["explain", "pods.spec.containers"]);
    assert!(
        explained.contains("FIELD: containers <[]Container>"),
        "{explained}"
    );

    assert!(server
        .kubectl_ok(&["delete", "configmap", "web-config", "-n", "shop"])
        .contains("deleted"));
    let missing = server.kubectl(&["get", "configmap", "web-config", "-n", "shop"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
}

/// kubectl's typed commands send protobuf (client-go's typed clients do
/// not fall back to JSON): what they create must read back as sent.
#[test]
fn typed_commands_create_through_protobuf() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (args, expected) in [
        (
            &["create", "namespace", "shop"][..],
            "namespace/shop created",
        ),
        (
            &[
                "create",
                "deployment",
                "web",
                "-n",
                "shop",
                "--image=nginx:1.27",
                "--replicas=0",
                "--port=80",
            ],
            "deployment.apps/web created",
        ),
        (
            &[
                "create",
                "configmap",
                "cfg",
                "-n",
                "shop",
                "--from-literal=a=1",
                "--from-literal=empty=",
            ],
            "configmap/cfg created",
        ),
        (
            &[
                "create",
                "secret",
                "generic",
                "pw",
                "-n",
                "shop",
                "--from-literal=p=s3cret",
            ],
            "secret/pw created",
        ),
        (
            &[
                "expose",
                "deployment",
                "web",
                "-n",
                "shop",
                "--port=80",
                "--target-port=8080",
                "--type=NodePort",
            ],
            "service/web exposed",
        ),
        (
            &[
                "create",
                "service",
                "clusterip",
                "api",
                "-n",
                "shop",
                "--tcp=5678:http",
            ],
            "service/api created",
        ),
    ] {
        assert_eq!(server.kubectl_ok(args).trim(), expected, "{args:?}");
    }
    let get = |kind: &str, name: &str| -> serde_json::Value {
        serde_json::from_str(&server.kubectl_ok(&["get", kind, name, "-n", "shop", "-o", "json"]))
            .unwrap()
    };
    let deployment = get("deployment", "web");
    assert_eq!(
        deployment["spec"]["replicas"], 0,
        "an explicit zero stays zero"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(
        container["ports"][0]["protocol"], "TCP",
        "an empty string is unset, so defaulted"
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(deployment["metadata"]["generation"], 1);
    assert!(deployment["metadata"]["creationTimestamp"].is_string());
    let config = get("configmap", "cfg");
    assert_eq!(config["data"], serde_json::json!({"a": "1", "empty": ""}));
    assert_eq!(get("secret", "pw")["data"]["p"], "czNjcmV0");
    let service = get("service", "web");
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(service["spec"]["selector"]["app"], "web");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(
        get("service", "api")["spec"]["ports"][0]["targetPort"],
        "http"
    );

    let scaled = server.kubectl_ok(&["scale", "deployment", "web", "-n", "shop", "--replicas=4"]);
    assert_eq!(scaled.trim(), "deployment.apps/web scaled");
    assert_eq!(get("deployment", "web")["spec"]["replicas"], 4);
}
