//! Service allocation with the real kubectl and kube-rs: every Service type,
//! conflicts refused as upstream refuses them, and allocations that stay
//! unique when hundreds of Services are created at once and the server
//! restarts.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::Stdio;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

use crate::harness::{eventually, have, Server};
use crate::kube_rs::client;

/// `kubectl apply -f -` of `manifest`: (succeeded, stderr).
fn apply(server: &Server, manifest: &Value) -> (bool, String) {
    let mut child = server
        .command("kubectl", &["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    let body = manifest.to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write the manifest");
    let output = child.wait_with_output().expect("kubectl apply ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn in_service_cidr(ip: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().expect("an IPv4 ClusterIP");
    let [a, b, ..] = ip.octets();
    a == 10 && (96..112).contains(&b)
}

#[test]
fn every_service_type_is_allocated_as_upstream_allocates_it() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // The cluster's own Services take the first and the tenth address.
    let kubernetes = server.json(&["svc", "kubernetes"]);
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.96.0.1");
    let dns = server.json(&["svc", "kube-dns", "-n", "kube-system"]);
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
    let endpoints = server.json(&["endpoints", "kubernetes"]);
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], port);

    // ClusterIP, selecting a Deployment's pods on port 80 -> 9376.
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    let web = json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 9376}]});
    assert_eq!(apply(&server, &service("web", web)), (true, String::new()));
    let web = server.json(&["svc", "web"]);
    let ip = web["spec"]["clusterIP"].as_str().unwrap();
    assert!(in_service_cidr(ip), "{ip}");
    assert_eq!(web["spec"]["ipFamilies"], json!(["IPv4"]));
    let address = server.json(&["ipaddresses", ip]);
    assert_eq!(address["spec"]["parentRef"]["name"], "web");
    eventually(30, "two ready endpoints on 9376", || {
        let endpoints = server.json(&["endpoints", "web"]);
        let subset = &endpoints["subsets"][0];
        (subset["addresses"].as_array().map(Vec::len) == Some(2)
            && subset["ports"][0]["port"] == 9376)
            .then_some(())
    });

    // NodePort 30080, then a second Service asking for the same port.
    let node_port = |name: &str| {
        service(
            name,
            json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 9376, "nodePort": 30080}]}),
        )
    };
    assert_eq!(apply(&server, &node_port("np")), (true, String::new()));
    let (applied, error) = apply(&server, &node_port("np-again"));
    assert!(!applied);
    assert!(
        error.contains("The Service \"np-again\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{error}"
    );
    let (applied, error) = apply(
        &server,
        &service("taken", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    );
    assert!(!applied);
    assert!(
        error.contains(&format!("spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")),
        "{error}"
    );

    // LoadBalancer: a node port, and an address from the loopback pool.
    let lb = json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 9376}]});
    assert!(apply(&server, &service("lb", lb)).0);
    let external = eventually(30, "the LoadBalancer's address", || {
        let lb = server.json(&["svc", "lb"]);
        lb["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(external.starts_with("127.240.0."), "{external}");
    let lb = server.json(&["svc", "lb"]);
    let node_port = |v: &Value| v.as_u64().is_some_and(|p| (30000..=32767).contains(&p));
    assert!(node_port(&lb["spec"]["ports"][0]["nodePort"]), "{lb}");
    assert!(lb["spec"]["healthCheckNodePort"].is_null());
    // Keeping traffic local, it also gets a health-check port.
    server.kubectl_ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ]);
    let lb = server.json(&["svc", "lb"]);
    assert!(node_port(&lb["spec"]["healthCheckNodePort"]), "{lb}");

    // ExternalName: no address; headless: None; ClientIP affinity.
    let external_name = json!({"type": "ExternalName", "externalName": "example.com"});
    assert!(apply(&server, &service("ext", external_name)).0);
    assert!(server.json(&["svc", "ext"])["spec"]["clusterIP"].is_null());
    let headless =
        json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]});
    assert!(apply(&server, &service("hl", headless)).0);
    assert_eq!(
        server.json(&["svc", "hl"])["spec"]["clusterIPs"],
        json!(["None"])
    );
    let sticky =
        json!({"sessionAffinity": "ClientIP", "selector": {"app": "web"}, "ports": [{"port": 80}]});
    assert!(apply(&server, &service("sticky", sticky)).0);
    let sticky = server.json(&["svc", "sticky"]);
    assert_eq!(
        sticky["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );

    // As kubectl prints them against a real cluster.
    let table = server.kubectl_ok(&["get", "svc"]);
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {table}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let np = row("np");
    assert!(in_service_cidr(&np[2]), "{np:?}");
    assert_eq!(
        [&np[1], &np[3], &np[4]],
        ["NodePort", "<none>", "80:30080/TCP"]
    );
    assert_eq!(row("lb")[3], external);
    assert_eq!(row("ext")[1..4], ["ExternalName", "<none>", "example.com"]);
    assert_eq!(row("hl")[2], "None");

    // Deleting np frees 30080; changing web to NodePort takes it.
    server.kubectl_ok(&["delete", "svc", "np"]);
    server.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":9376,"nodePort":30080}]}}"#,
    ]);
    let web = server.json(&["svc", "web"]);
    assert_eq!(web["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(web["spec"]["clusterIP"], ip, "the ClusterIP is kept");

    // No longer a LoadBalancer: its address goes back to the pool.
    server.kubectl_ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    eventually(30, "the LoadBalancer's address cleared", || {
        let lb = server.json(&["svc", "lb"]);
        lb["status"]["loadBalancer"]["ingress"]
            .is_null()
            .then_some(())
    });

    // The kubernetes Service is kept published: deleted, it comes back.
    server.kubectl_ok(&["delete", "svc", "kubernetes"]);
    eventually(30, "the kubernetes Service back", || {
        let found = server.kubectl(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]);
        (String::from_utf8_lossy(&found.stdout) == "10.96.0.1").then_some(())
    });
}

/// Every allocation the Services hold: (ClusterIPs, node ports), failing on
/// any value held twice.
fn allocations(services: &[Service]) -> (HashSet<String>, HashSet<i32>) {
    let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
    for service in services {
        let spec = service.spec.as_ref().unwrap();
        let name = service.metadata.name.as_deref().unwrap();
        if let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| *ip != "None") {
            assert!(ips.insert(ip.to_owned()), "{ip} given twice ({name})");
        }
        let own: HashSet<i32> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.node_port)
            .chain(spec.health_check_node_port)
            .collect();
        for port in own {
            assert!(ports.insert(port), "node port {port} given twice ({name})");
        }
    }
    (ips, ports)
}

/// Each Service's spec but the kubernetes Service's (its target port is
/// the apiserver's, which a restart on port 0 changes).
fn specs(services: &[Service]) -> BTreeMap<String, String> {
    services
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some("kubernetes"))
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                serde_json::to_string(&s.spec).unwrap(),
            )
        })
        .collect()
}

#[test]
fn allocations_stay_unique_under_concurrent_creates_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--nodes", "0"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = runtime.block_on(async {
        let services: Api<Service> = Api::namespaced(client(&server).await, "default");
        // 300 Services at once: a third ask for ClusterIPs from a small
        // set, a third for node ports from a small set (so many collide),
        // the rest for anything.
        let mut creates = Vec::new();
        for i in 0..300u32 {
            let spec = match i % 3 {
                0 => json!({"clusterIP": format!("10.96.1.{}", 1 + i * 7919 % 59), "ports": [{"port": 80}]}),
                1 => json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000 + i * 7907 % 60}]}),
                _ => json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
            };
            let service: Service = serde_json::from_value(service(&format!("s{i}"), spec)).unwrap();
            let services = services.clone();
            creates.push(tokio::spawn(async move {
                services.create(&PostParams::default(), &service).await
            }));
        }
        let mut refused = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 422 => refused += 1,
                Err(e) => panic!("a create failed otherwise: {e}"),
            }
        }
        assert!(refused > 0, "some asked-for values collided");
        let list = services.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(list.len() + refused, 301, "300 and the kubernetes Service");
        let (ips, _) = allocations(&list);
        let addresses: Api<IPAddress> = Api::all(services.clone().into_client());
        let recorded = || async {
            let list = addresses.list(&ListParams::default()).await.unwrap().items;
            list.into_iter().filter_map(|a| a.metadata.name).collect::<HashSet<String>>()
        };
        // Every address held is recorded (kube-dns's too), and nothing else.
        let mut expected = ips.clone();
        expected.insert("10.96.0.10".into());
        assert_eq!(recorded().await, expected);
        // Deletes release: 20 Services go, and so do their addresses.
        let gone: Vec<&Service> = list.iter().filter(|s| s.metadata.name.as_deref() != Some("kubernetes")).take(20).collect();
        for service in &gone {
            services
                .delete(service.metadata.name.as_deref().unwrap(), &DeleteParams::default())
                .await
                .unwrap();
        }
        for service in gone {
            expected.remove(service.spec.as_ref().unwrap().cluster_ip.as_deref().unwrap());
        }
        assert_eq!(recorded().await, expected);
        let list = services.list(&ListParams::default()).await.unwrap().items;
        specs(&list)
    });
    let status = server.stop();
    assert!(status.success(), "{status}");

    let server = Server::start_with(dir.path(), &["--nodes", "0"]);
    runtime.block_on(async {
        let services: Api<Service> = Api::namespaced(client(&server).await, "default");
        let list = services.list(&ListParams::default()).await.unwrap().items;
        assert!(
            specs(&list) == before,
            "the restart kept every Service as it was"
        );
        // 100 more after the restart: still nothing given twice.
        let mut creates = Vec::new();
        for i in 0..100u32 {
            let spec = json!({"type": "NodePort", "ports": [{"port": 80}]});
            let service: Service = serde_json::from_value(service(&format!("t{i}"), spec)).unwrap();
            let services = services.clone();
            creates.push(tokio::spawn(async move {
                services.create(&PostParams::default(), &service).await
            }));
        }
        for create in creates {
            create.await.unwrap().expect("a dynamic create succeeds");
        }
        let list = services.list(&ListParams::default()).await.unwrap().items;
        allocations(&list);
    });
}
