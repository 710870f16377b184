//! Cluster DNS asked by the real `dig` (Debian's dnsutils): Services made
//! with kubectl, a selector-less headless Service with hand-made
//! EndpointSlices (hostnames, a not-ready endpoint, and 120 endpoints, more
//! than a UDP answer holds), over UDP and TCP; and the whole flow, pods on
//! simulated nodes through the EndpointSlice controller to their names.

use std::fmt::Write;
use std::process::Command;

use crate::harness::{eventually, have, Server};

const SERVICES: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.100.10
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: edge
  namespace: shop
spec:
  type: NodePort
  clusterIP: 10.96.100.11
  selector:
    app: edge
  ports:
  - port: 80
    nodePort: 30053
---
apiVersion: v1
kind: Service
metadata:
  name: search
  namespace: shop
spec:
  type: ExternalName
  externalName: www.example.com
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: shop
spec:
  clusterIP: None
  ports:
  - name: pg
    port: 5432
";

/// Two slices of 60 ready endpoints each for the headless `db` (the first
/// two with hostnames), and one not-ready endpoint with a hostname.
fn slices() -> String {
    let mut yaml = String::new();
    for slice in 1..=2 {
        write!(
            yaml,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: db-{slice}\n  namespace: shop\n  labels:\n    kubernetes.io/service-name: db\naddressType: IPv4\nports:\n- name: pg\n  port: 5432\n  protocol: TCP\nendpoints:\n"
        )
        .unwrap();
        for host in 1..=60 {
            write!(
                yaml,
                "- addresses: [\"10.244.{slice}.{host}\"]\n  conditions: {{ready: true}}\n"
            )
            .unwrap();
            if slice == 1 && host <= 2 {
                writeln!(yaml, "  hostname: db-{}", host - 1).unwrap();
            }
        }
        if slice == 2 {
            yaml.push_str(
                "- addresses: [\"10.244.9.9\"]\n  conditions: {ready: false}\n  hostname: db-9\n",
            );
        }
    }
    yaml
}

/// `dig @server ARGS` (two tries of two seconds), its standard output.
fn dig(server: &Server, args: &[&str]) -> String {
    let output = Command::new("dig")
        .arg(format!("@{}", server.dns.ip()))
        .args(["-p", &server.dns.port().to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// `dig +short`, its lines sorted.
fn short(server: &Server, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend(args);
    let mut lines: Vec<String> = dig(server, &all).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn dig_answers_services_endpoints_hostnames_and_truncates_over_udp() {
    if !have("kubectl") || !have("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--dns-upstream", "refuse"]);
    let manifest = dir.path().join("services.yaml");
    std::fs::write(&manifest, format!("{SERVICES}{}", slices())).unwrap();
    server.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);

    // A: the ClusterIP of ClusterIP and NodePort Services.
    eventually(10, "web's A record", || {
        (short(&server, &["web.shop.svc.cluster.local"]) == ["10.96.100.10"]).then_some(())
    });
    assert_eq!(
        short(&server, &["edge.shop.svc.cluster.local"]),
        ["10.96.100.11"]
    );
    // SRV for the named port, the target's address as additional.
    let srv = dig(&server, &["_http._tcp.web.shop.svc.cluster.local", "SRV"]);
    assert!(
        srv.contains("SRV\t0 100 80 web.shop.svc.cluster.local."),
        "{srv}"
    );
    assert!(srv.contains("ADDITIONAL SECTION:"), "{srv}");
    assert!(
        srv.contains("web.shop.svc.cluster.local. 5\tIN\tA\t10.96.100.10"),
        "{srv}"
    );
    // ExternalName: a CNAME, whatever the type asked.
    for qtype in ["A", "CNAME"] {
        assert_eq!(
            short(&server, &["search.shop.svc.cluster.local", qtype]),
            ["www.example.com."]
        );
    }
    // A known name without records of the type: NODATA, with the SOA.
    let nodata = dig(&server, &["web.shop.svc.cluster.local", "AAAA"]);
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(nodata.contains("ANSWER: 0"), "{nodata}");
    assert!(nodata.contains("SOA\tns.dns.cluster.local."), "{nodata}");
    // Unknown names inside the domain: NXDOMAIN with the SOA, the
    // authoritative flag set; the not-ready endpoint has no name.
    for name in [
        "nope.shop.svc.cluster.local",
        "db-9.db.shop.svc.cluster.local",
    ] {
        let nxdomain = dig(&server, &[name]);
        assert!(nxdomain.contains("status: NXDOMAIN"), "{nxdomain}");
        assert!(nxdomain.contains("flags: qr aa"), "{nxdomain}");
        assert!(
            nxdomain.contains("SOA\tns.dns.cluster.local."),
            "{nxdomain}"
        );
    }
    // Names outside the domain: refused, as configured.
    assert!(dig(&server, &["example.com"]).contains("status: REFUSED"));

    // Headless: the hostnames of endpoints, and all 120 ready endpoints.
    eventually(10, "db-0's A record", || {
        (short(&server, &["db-0.db.shop.svc.cluster.local"]) == ["10.244.1.1"]).then_some(())
    });
    assert_eq!(
        short(&server, &["db-1.db.shop.svc.cluster.local"]),
        ["10.244.1.2"]
    );
    let all = short(&server, &["+tcp", "db.shop.svc.cluster.local"]);
    assert_eq!(all.len(), 120, "{all:?}");
    assert!(!all.contains(&"10.244.9.9".to_owned()));
    // Too large for UDP (dig offers 1232 bytes; 512 without EDNS): the TC
    // flag, and dig's own retry over TCP gets everything.
    for udp in [
        vec!["+notcp", "+ignore"],
        vec!["+notcp", "+ignore", "+noedns"],
    ] {
        let mut args = udp.clone();
        args.push("db.shop.svc.cluster.local");
        let truncated = dig(&server, &args);
        assert!(truncated.contains("flags: qr aa tc"), "{truncated}");
    }
    let retried = dig(&server, &["db.shop.svc.cluster.local"]);
    assert!(
        retried.contains("Truncated, retrying in TCP mode"),
        "{retried}"
    );
    assert!(retried.contains("ANSWER: 120"), "{retried}");
    // SRV of a headless Service: one per endpoint, named by its hostname
    // or its address with dashes.
    let srv = short(
        &server,
        &["+tcp", "_pg._tcp.db.shop.svc.cluster.local", "SRV"],
    );
    assert_eq!(srv.len(), 120, "{srv:?}");
    assert!(srv.contains(&"0 1 5432 db-0.db.shop.svc.cluster.local.".to_owned()));
    assert!(srv.contains(&"0 1 5432 10-244-2-60.db.shop.svc.cluster.local.".to_owned()));

    // A deleted Service's name goes away.
    server.kubectl_ok(&["delete", "service", "web", "-n", "shop"]);
    eventually(10, "web's NXDOMAIN", || {
        dig(&server, &["web.shop.svc.cluster.local"])
            .contains("status: NXDOMAIN")
            .then_some(())
    });
}

const PODS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
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
        image: nginx
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: apps
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: apps
spec:
  clusterIP: None
  selector:
    app: db
  ports:
  - name: pg
    port: 5432
";

/// A pod `name` of the headless `db`, with `spec.hostname` and
/// `spec.subdomain` as a StatefulSet sets them; never ready if not `ready`.
fn db_pod(name: &str, ready: bool) -> String {
    let annotations = if ready {
        String::new()
    } else {
        "  annotations:\n    sim.skiff.dev/ready: \"false\"\n".to_owned()
    };
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: apps\n  labels:\n    app: db\n{annotations}spec:\n  hostname: {name}\n  subdomain: db\n  containers:\n  - name: db\n    image: postgres\n    ports:\n    - containerPort: 5432\n"
    )
}

#[test]
fn pods_resolve_through_their_services_and_hostname_under_a_headless_subdomain() {
    if !have("kubectl") || !have("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--dns-upstream", "refuse"]);
    let manifest = dir.path().join("pods.yaml");
    let pods = [
        db_pod("db-0", true),
        db_pod("db-1", true),
        db_pod("db-2", false),
    ];
    std::fs::write(&manifest, format!("{PODS}{}", pods.concat())).unwrap();
    server.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);

    // The allocated ClusterIP of a Service selecting a Deployment's pods.
    let cluster_ip = server.kubectl_ok(&[
        "get",
        "service",
        "web",
        "-n",
        "apps",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    eventually(10, "web's A record", || {
        (short(&server, &["web.apps.svc.cluster.local"]) == [cluster_ip.as_str()]).then_some(())
    });

    // The headless Service: its ready pods, each also by hostname.
    let ip = |pod: &str| {
        eventually(20, &format!("{pod}'s IP"), || {
            let ip = server.kubectl_ok(&[
                "get",
                "pod",
                pod,
                "-n",
                "apps",
                "-o",
                "jsonpath={.status.podIP}",
            ]);
            (!ip.is_empty()).then_some(ip)
        })
    };
    let (db0, db1) = (ip("db-0"), ip("db-1"));
    let mut both = vec![db0.clone(), db1.clone()];
    both.sort();
    eventually(20, "db's ready pods", || {
        (short(&server, &["db.apps.svc.cluster.local"]) == both).then_some(())
    });
    assert_eq!(
        short(&server, &["db-0.db.apps.svc.cluster.local"]),
        [db0.as_str()]
    );
    assert_eq!(short(&server, &["db-1.db.apps.svc.cluster.local"]), [db1]);
    let never_ready = dig(&server, &["db-2.db.apps.svc.cluster.local"]);
    assert!(never_ready.contains("status: NXDOMAIN"), "{never_ready}");
    let srv = short(&server, &["_pg._tcp.db.apps.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv,
        [
            "0 50 5432 db-0.db.apps.svc.cluster.local.",
            "0 50 5432 db-1.db.apps.svc.cluster.local."
        ]
    );

    // A deleted pod leaves the answers.
    server.kubectl_ok(&["delete", "pod", "db-1", "-n", "apps", "--wait=false"]);
    eventually(20, "db without db-1", || {
        (short(&server, &["db.apps.svc.cluster.local"]) == [db0.as_str()]).then_some(())
    });
    let gone = dig(&server, &["db-1.db.apps.svc.cluster.local"]);
    assert!(gone.contains("status: NXDOMAIN"), "{gone}");
}
