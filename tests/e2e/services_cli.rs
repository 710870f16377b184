//! Services from the command line: `skiff expose`, `get svc|endpoints|
//! endpointslices` and `describe svc` against a real server, `kubectl
//! expose` and `kubectl get svc`; and the Service environment variables a
//! simulated container starts with, read back through `logs`.

use crate::harness::{eventually, have, Server};

/// The value of `Label:` in a `describe` text, trimmed.
fn field<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|line| line.strip_prefix(&format!("{label}:")))
        .map(str::trim)
        .collect()
}

/// The whitespace-separated cells of the table row that starts with `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

/// Whether `ip` is a ClusterIP of the default range 10.96.0.0/12.
fn in_service_range(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| {
        u32::from(ip) >> 20 == u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20
    })
}

#[test]
fn expose_get_and_describe_services_with_skiff_and_kubectl() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "--port=8080",
    ]);
    let exposed = server.skiff_ok(&[
        "expose",
        "deployment/web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    assert_eq!(exposed, "service/web exposed\n");
    let service = server.json(&["service", "web"]);
    assert_eq!(service["spec"]["selector"]["app"], "web");
    assert_eq!(service["metadata"]["labels"]["app"], "web");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);

    // kubectl's columns, with the values a real cluster shows.
    let table = server.skiff_ok(&["get", "svc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let web = row(&table, "web");
    assert_eq!(web[1], "ClusterIP", "{table}");
    assert!(in_service_range(web[2]), "{table}");
    assert_eq!(web[3..5], ["<none>", "80/TCP"], "{table}");
    assert_eq!(
        row(&table, "kubernetes")[1..5],
        ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{table}"
    );

    // Endpoints and slices follow the two ready pods.
    let endpoints = eventually(30, "two endpoints", || {
        let table = server.skiff_ok(&["get", "endpoints", "web"]);
        let cells = row(&table, "web")[1].to_owned();
        (cells.split(',').count() == 2 && cells.ends_with(":8080")).then_some(cells)
    });
    let slices = server.skiff_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    let header: Vec<&str> = slices.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    let slice: Vec<&str> = slices.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(slice[0].starts_with("web-"), "{slices}");
    assert_eq!(slice[1..3], ["IPv4", "8080"], "{slices}");
    let mut sliced: Vec<&str> = slice[3].split(',').collect();
    let mut listed: Vec<String> = endpoints
        .split(',')
        .map(|e| e.trim_end_matches(":8080").to_owned())
        .collect();
    sliced.sort();
    listed.sort();
    assert_eq!(sliced, listed, "{slices}");

    let description = server.skiff_ok(&["describe", "svc", "web"]);
    assert!(description.starts_with("Name:"), "{description}");
    assert_eq!(field(&description, "Namespace"), ["default"]);
    assert_eq!(field(&description, "Selector"), ["app=web"]);
    assert_eq!(field(&description, "Type"), ["ClusterIP"]);
    assert_eq!(field(&description, "IP"), [web[2]]);
    assert_eq!(field(&description, "Port"), ["<unset>  80/TCP"]);
    assert_eq!(field(&description, "TargetPort"), ["8080/TCP"]);
    assert_eq!(field(&description, "Session Affinity"), ["None"]);
    let shown = field(&description, "Endpoints")[0];
    let mut shown: Vec<&str> = shown.split(',').collect();
    let mut expected: Vec<&str> = endpoints.split(',').collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "{description}");
    // The values line up in one column, as kubectl's tabwriter aligns them.
    let column = description.find("default").unwrap() - description.find("Namespace").unwrap();
    assert!(description
        .lines()
        .take_while(|l| !l.starts_with("Events"))
        .filter(|l| !l.starts_with(' '))
        .all(|l| l.len() > column && l[..column].ends_with("  ")));

    // kubectl expose, and a NodePort as kubectl get svc prints it.
    server.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-np",
        "--type=NodePort",
        "--port=80",
        "--target-port=8080",
    ]);
    server.skiff_ok(&[
        "expose",
        "deploy/web",
        "--name",
        "web-fixed",
        "--type",
        "NodePort",
        "--port",
        "80",
        "--node-port",
        "30080",
    ]);
    let table = server.kubectl_ok(&["get", "svc"]);
    let np = row(&table, "web-np");
    assert_eq!(np[1], "NodePort", "{table}");
    assert_eq!(np[3], "<none>", "{table}");
    let node_port: u16 = np[4]
        .strip_prefix("80:")
        .and_then(|p| p.strip_suffix("/TCP"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("80:NODEPORT/TCP in\n{table}"));
    assert!((30000..=32767).contains(&node_port), "{table}");
    assert_eq!(row(&table, "web-fixed")[4], "80:30080/TCP", "{table}");
    let description = server.skiff_ok(&["describe", "svc/web-fixed"]);
    assert_eq!(field(&description, "NodePort"), ["<unset>  30080/TCP"]);

    // A LoadBalancer: an address from the local pool as its EXTERNAL-IP.
    server.skiff_ok(&[
        "expose",
        "deploy/web",
        "--name",
        "web-lb",
        "--type",
        "LoadBalancer",
        "--port",
        "80",
    ]);
    let lb = eventually(30, "the load balancer's address", || {
        let table = server.kubectl_ok(&["get", "svc", "web-lb"]);
        let external = row(&table, "web-lb")[3].to_owned();
        external.parse::<std::net::Ipv4Addr>().ok()
    });
    let description = server.skiff_ok(&["describe", "svc", "web-lb"]);
    let ingress = field(&description, "LoadBalancer Ingress");
    assert!(ingress[0].starts_with(&lb.to_string()), "{description}");

    // What cannot be exposed is refused with kubectl's words.
    server.kubectl_ok(&["create", "configmap", "settings"]);
    let refused = server.skiff(&["expose", "configmap/settings", "--port", "80"]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: cannot expose a ConfigMap\n"
    );
}

const SERVICES: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: other
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: default
spec:
  clusterIP: 10.96.50.50
  selector: {app: db}
  ports:
  - {name: pg, port: 5432, targetPort: 5432}
---
apiVersion: v1
kind: Service
metadata:
  name: other-svc
  namespace: other
spec:
  clusterIP: 10.96.50.51
  selector: {app: other}
  ports:
  - {port: 53, protocol: UDP}
";

const PODS: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
spec:
  containers:
  - name: c
    image: busybox
    env:
    - {name: DB_SERVICE_PORT, value: mine}
---
apiVersion: v1
kind: Pod
metadata:
  name: unlinked
  namespace: other
spec:
  enableServiceLinks: false
  containers:
  - {name: c, image: busybox}
---
apiVersion: v1
kind: Pod
metadata:
  name: linked
  namespace: other
spec:
  containers:
  - {name: c, image: busybox}
";

#[test]
fn containers_start_with_the_service_variables_of_their_namespace() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let services = dir.path().join("services.yaml");
    std::fs::write(&services, SERVICES).unwrap();
    server.kubectl_ok(&["apply", "-f", services.to_str().unwrap()]);
    let pods = dir.path().join("pods.yaml");
    std::fs::write(&pods, PODS).unwrap();
    server.kubectl_ok(&["apply", "-f", pods.to_str().unwrap()]);
    let log = |namespace: &str, pod: &str| {
        eventually(30, "the pod's log", || {
            let out = server.kubectl(&["logs", pod, "-n", namespace]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
    };

    let client = log("default", "client");
    let lines: Vec<&str> = client.lines().collect();
    for expected in [
        "DB_PORT=tcp://10.96.50.50:5432",
        "DB_PORT_5432_TCP=tcp://10.96.50.50:5432",
        "DB_PORT_5432_TCP_ADDR=10.96.50.50",
        "DB_PORT_5432_TCP_PORT=5432",
        "DB_PORT_5432_TCP_PROTO=tcp",
        "DB_SERVICE_HOST=10.96.50.50",
        "DB_SERVICE_PORT_PG=5432",
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_SERVICE_PORT_HTTPS=443",
    ] {
        assert!(lines.contains(&expected), "{expected} in\n{client}");
    }
    // The container's own DB_SERVICE_PORT is not overridden; the variables
    // come first, sorted; no Service of another namespace leaks in.
    assert!(!client.contains("DB_SERVICE_PORT=5432"), "{client}");
    assert!(!client.contains("OTHER_SVC"), "{client}");
    let variables: Vec<&str> = lines
        .iter()
        .copied()
        .take_while(|l| !l.contains(" skiff: "))
        .collect();
    let mut sorted = variables.clone();
    sorted.sort();
    assert_eq!(variables, sorted);
    assert_eq!(variables.len(), 8 + 8 - 1, "{client}");
    // skiff logs reads the same log.
    assert_eq!(server.skiff_ok(&["logs", "client"]), client);

    let linked = log("other", "linked");
    assert!(
        linked.contains("OTHER_SVC_SERVICE_HOST=10.96.50.51\n"),
        "{linked}"
    );
    assert!(
        linked.contains("OTHER_SVC_PORT=udp://10.96.50.51:53\n"),
        "{linked}"
    );
    assert!(
        linked.contains("KUBERNETES_SERVICE_HOST=10.96.0.1\n"),
        "{linked}"
    );
    assert!(!linked.contains("DB_SERVICE_HOST"), "{linked}");
    let unlinked = log("other", "unlinked");
    assert!(
        unlinked.contains("KUBERNETES_SERVICE_HOST=10.96.0.1\n"),
        "{unlinked}"
    );
    assert!(!unlinked.contains("OTHER_SVC"), "{unlinked}");
}
