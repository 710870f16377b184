//! EndpointSlices, read with the real kubectl, following the pods of a
//! Service as they become ready, unready, terminate and go, and splitting
//! at 100 endpoints.

use serde_json::Value;

use crate::harness::{eventually, have, Server};
use crate::pods::items;

/// Pods that become ready 2 s after starting and take 2 s to stop.
const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        sim.skiff.dev/ready-delay: 2s
        sim.skiff.dev/terminate-delay: 2s
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 9376}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {team: blue}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 9376}]
"#;

/// The endpoints of the Service's slices: pod name -> (ready, serving,
/// terminating), and the slices.
fn endpoints(server: &Server) -> (Vec<(String, [bool; 3])>, Vec<Value>) {
    let slices = items(&server.json(&["endpointslices", "-l", "kubernetes.io/service-name=web"]));
    let mut found: Vec<(String, [bool; 3])> = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let c = &e["conditions"];
            let flag = |name: &str| c[name].as_bool().unwrap_or(false);
            (
                e["targetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                [flag("ready"), flag("serving"), flag("terminating")],
            )
        })
        .collect();
    found.sort();
    (found, slices)
}

#[test]
fn endpointslices_follow_pods_ready_unready_terminating_and_split_at_100() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("web.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    eventually(20, "the three nodes", || {
        (items(&server.json(&["nodes"])).len() == 3).then_some(())
    });
    server.kubectl_ok(&[
        "label",
        "nodes",
        "--all",
        "topology.kubernetes.io/zone=zone-a",
    ]);
    server.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);

    // Three pods, not ready at first, then ready.
    eventually(30, "three endpoints, not ready yet", || {
        let (found, _) = endpoints(&server);
        (found.len() == 3 && found.iter().all(|(_, c)| *c == [false, false, false])).then_some(())
    });
    let (found, slices) = eventually(30, "three ready endpoints", || {
        let (found, slices) = endpoints(&server);
        (found.len() == 3 && found.iter().all(|(_, c)| *c == [true, true, false]))
            .then_some((found, slices))
    });
    assert_eq!(slices.len(), 1, "{slices:#?}");
    let slice = &slices[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], 9376);
    assert_eq!(slice["ports"][0]["protocol"], "TCP");
    let labels = &slice["metadata"]["labels"];
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["team"], "blue", "the Service's labels are copied");
    assert!(slice["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("web-"));
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"]),
        (&"Service".into(), &"web".into())
    );
    assert_eq!(owner["controller"], true);
    let endpoint = &slice["endpoints"][0];
    assert_eq!(endpoint["targetRef"]["kind"], "Pod");
    assert_eq!(endpoint["zone"], "zone-a", "its node's zone");
    assert!(endpoint["nodeName"]
        .as_str()
        .unwrap()
        .starts_with("skiff-node-"));
    assert!(endpoint["addresses"][0]
        .as_str()
        .unwrap()
        .starts_with("10.244."));

    // One pod fails its readiness probe: its endpoint is neither ready nor
    // serving, in the same slice.
    let unready = found[0].0.clone();
    server.kubectl_ok(&[
        "patch",
        "pod",
        &unready,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]);
    eventually(30, "the patched pod's endpoint unready", || {
        let (found, slices) = endpoints(&server);
        let states: Vec<[bool; 3]> = found
            .iter()
            .map(|(name, c)| {
                if *name == unready {
                    [!c[0], !c[1], c[2]]
                } else {
                    *c
                }
            })
            .collect();
        (slices.len() == 1 && states == [[true, true, false]; 3]).then_some(())
    });

    // Another is deleted: terminating (still serving, no longer ready)
    // while it stops, then gone, and its replacement comes.
    let deleted = found[1].0.clone();
    server.kubectl_ok(&["delete", "pod", &deleted, "--wait=false"]);
    eventually(30, "the deleted pod's endpoint terminating", || {
        let (found, _) = endpoints(&server);
        found
            .iter()
            .any(|(name, c)| *name == deleted && *c == [false, true, true])
            .then_some(())
    });
    eventually(30, "the deleted pod gone and a replacement ready", || {
        let (found, _) = endpoints(&server);
        let ready = found
            .iter()
            .filter(|(_, c)| *c == [true, true, false])
            .count();
        (found.len() == 3 && !found.iter().any(|(name, _)| *name == deleted) && ready == 2)
            .then_some(())
    });

    // 150 pods: two slices of at most 100. How they split (100/50, 95/55)
    // depends on how the pods' readiness arrives in batches, as upstream's.
    server.kubectl_ok(&["scale", "deployment/web", "--replicas=150"]);
    eventually(90, "150 endpoints in two slices", || {
        let (found, slices) = endpoints(&server);
        let mut sizes: Vec<usize> = slices
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .collect();
        sizes.sort_unstable();
        let packed = sizes.len() == 2 && sizes.iter().all(|n| *n <= 100);
        (found.len() == 150 && sizes.iter().sum::<usize>() == 150 && packed).then_some(())
    });

    // After a restart the same two slices change in place: none is made
    // again or twice.
    let names = |slices: &[Value]| {
        let mut names: Vec<String> = slices
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let before = names(&endpoints(&server).1);
    assert!(server.stop().success());
    let server = Server::start(dir.path());
    server.kubectl_ok(&["scale", "deployment/web", "--replicas=140"]);
    eventually(60, "140 endpoints in the same two slices", || {
        let (found, slices) = endpoints(&server);
        (found.len() == 140 && names(&slices) == before).then_some(())
    });

    // The Service goes: so do its slices.
    server.kubectl_ok(&["delete", "service", "web"]);
    eventually(30, "the slices to go", || {
        endpoints(&server).1.is_empty().then_some(())
    });
}
