//! The Service environment variables a kubelet gives a container, as
//! upstream's kubelet computes them (`getServiceEnvVarMap` and
//! `envvars.FromServices`): for each Service the pod may see that has a
//! cluster IP, `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT` (the first port),
//! `{SVC}_SERVICE_PORT_{NAME}` for each named port, and the Docker-link
//! variables `{SVC}_PORT`, `{SVC}_PORT_{PORT}_{PROTO}` and its `_PROTO`,
//! `_PORT` and `_ADDR`.
//!
//! Which Services a pod sees: those of its own namespace (unless
//! `enableServiceLinks` is false), and the master Service `kubernetes` of
//! `default` always; a Service of the pod's namespace named `kubernetes`
//! hides the master one. Variables the container defines itself in its
//! `env` are not overridden. Pure: the simulated kubelet passes the
//! Services of its informer cache; the process runtime will set the
//! variables for real.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// The namespace of the master Service.
pub const MASTER_NAMESPACE: &str = "default";
/// The master Service, whose variables every pod gets.
pub const MASTER_SERVICE: &str = "kubernetes";

/// The variables the kubelet injects into `container` of `pod`, given
/// every Service it knows (of all namespaces), sorted by name.
pub fn for_container<'a>(
    pod: &Pod,
    container: &Container,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<(String, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let defined: BTreeSet<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    for_namespace(namespace, links, services)
        .into_iter()
        .filter(|(name, _)| !defined.contains(name.as_str()))
        .collect()
}

/// The variables for a pod of `namespace`, before the container's own
/// `env` is taken into account, sorted by name.
pub fn for_namespace<'a>(
    namespace: &str,
    enable_service_links: bool,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<(String, String)> {
    // Keyed by Service name: a Service of the pod's namespace replaces the
    // master one of the same name, never the other way round.
    let mut seen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if cluster_ip(service).is_none() {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let ns = service.metadata.namespace.as_deref().unwrap_or_default();
        if ns == MASTER_NAMESPACE && name == MASTER_SERVICE {
            seen.entry(name).or_insert(service);
        } else if ns == namespace && enable_service_links {
            seen.insert(name, service);
        }
    }
    let mut variables: Vec<(String, String)> = seen.into_values().flat_map(of_service).collect();
    variables.sort();
    variables
}

/// The cluster IP of a Service that has one: set, and not `None`.
fn cluster_ip(service: &Service) -> Option<&str> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// `my-svc` -> `MY_SVC`.
fn variable_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The variables of one Service with a cluster IP (none without ports).
fn of_service(service: &Service) -> Vec<(String, String)> {
    let (Some(ip), Some(ports)) = (
        cluster_ip(service),
        service.spec.as_ref().and_then(|s| s.ports.as_deref()),
    ) else {
        return Vec::new();
    };
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = variable_name(service.metadata.name.as_deref().unwrap_or_default());
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_owned()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", variable_name(name)),
                port.port.to_string(),
            ));
        }
    }
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        // As Go's JoinHostPort writes it: an IPv6 address in brackets.
        let host = match ip.contains(':') {
            true => format!("[{ip}]"),
            false => ip.to_string(),
        };
        let url = format!("{}://{host}:{}", protocol.to_lowercase(), port.port);
        if i == 0 {
            // Docker special-cases the first port.
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let link = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        out.push((format!("{link}_PROTO"), protocol.to_lowercase()));
        out.push((format!("{link}_PORT"), port.port.to_string()));
        out.push((format!("{link}_ADDR"), ip.to_owned()));
        out.push((link, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(namespace: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn pod(namespace: &str, links: Option<bool>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": "p"},
            "spec": {"containers": [{"name": "c"}], "enableServiceLinks": links},
        }))
        .unwrap()
    }

    fn container(env: &[&str]) -> Container {
        let env: Vec<_> = env
            .iter()
            .map(|n| json!({"name": n, "value": "mine"}))
            .collect();
        serde_json::from_value(json!({"name": "c", "env": env})).unwrap()
    }

    fn master() -> Service {
        service(
            "default",
            "kubernetes",
            "10.96.0.1",
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]),
        )
    }

    fn names(vars: &[(String, String)]) -> Vec<&str> {
        vars.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn an_unnamed_port_gives_host_port_and_docker_links() {
        let web = service(
            "default",
            "my-web",
            "10.96.50.50",
            json!([{"port": 80, "protocol": "TCP"}]),
        );
        let vars = for_namespace("default", true, [&web]);
        let expected = [
            ("MY_WEB_PORT", "tcp://10.96.50.50:80"),
            ("MY_WEB_PORT_80_TCP", "tcp://10.96.50.50:80"),
            ("MY_WEB_PORT_80_TCP_ADDR", "10.96.50.50"),
            ("MY_WEB_PORT_80_TCP_PORT", "80"),
            ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
            ("MY_WEB_SERVICE_HOST", "10.96.50.50"),
            ("MY_WEB_SERVICE_PORT", "80"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(vars, expected);
    }

    #[test]
    fn named_ports_and_udp() {
        let dns = service(
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            json!([{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
        );
        let vars: BTreeMap<String, String> = for_namespace("kube-system", true, [&dns])
            .into_iter()
            .collect();
        assert_eq!(vars["KUBE_DNS_SERVICE_PORT"], "53");
        assert_eq!(vars["KUBE_DNS_SERVICE_PORT_DNS"], "53");
        assert_eq!(vars["KUBE_DNS_SERVICE_PORT_DNS_TCP"], "53");
        // The first port is UDP: so is the bare Docker link.
        assert_eq!(vars["KUBE_DNS_PORT"], "udp://10.96.0.10:53");
        assert_eq!(vars["KUBE_DNS_PORT_53_UDP"], "udp://10.96.0.10:53");
        assert_eq!(vars["KUBE_DNS_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(vars["KUBE_DNS_PORT_53_TCP"], "tcp://10.96.0.10:53");
        assert_eq!(vars["KUBE_DNS_PORT_53_TCP_ADDR"], "10.96.0.10");
        assert_eq!(vars.len(), 3 + 1 + 4 * 2 + 1);
    }

    #[test]
    fn headless_external_name_and_unallocated_services_give_nothing() {
        let headless = service("default", "db", "None", json!([{"port": 5432}]));
        let unallocated = service("default", "new", "", json!([{"port": 80}]));
        let external: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        }))
        .unwrap();
        assert!(for_namespace("default", true, [&headless, &unallocated, &external]).is_empty());
    }

    #[test]
    fn the_master_service_reaches_every_namespace_and_others_only_their_own() {
        let master = master();
        let other = service("team-b", "api", "10.96.7.7", json!([{"port": 8080}]));
        let own = service("team-a", "web", "10.96.8.8", json!([{"port": 80}]));
        let vars = for_namespace("team-a", true, [&master, &other, &own]);
        let names = names(&vars);
        assert!(names.contains(&"KUBERNETES_SERVICE_HOST"));
        assert!(names.contains(&"KUBERNETES_SERVICE_PORT_HTTPS"));
        assert!(names.contains(&"WEB_SERVICE_HOST"));
        assert!(!names.iter().any(|n| n.starts_with("API_")));
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "sorted by name");
    }

    #[test]
    fn without_service_links_only_the_master_service() {
        let master = master();
        let own = service("team-a", "web", "10.96.8.8", json!([{"port": 80}]));
        let vars = for_container(
            &pod("team-a", Some(false)),
            &container(&[]),
            [&master, &own],
        );
        assert!(vars.iter().all(|(n, _)| n.starts_with("KUBERNETES_")));
        assert_eq!(vars.len(), 8);
        // In `default` itself, too: the master Service is still there.
        let in_default = for_container(&pod("default", Some(false)), &container(&[]), [&master]);
        assert_eq!(in_default, vars);
        // Unset means true, as upstream defaults it.
        let linked = for_container(&pod("team-a", None), &container(&[]), [&master, &own]);
        assert_eq!(linked.len(), 8 + 7);
    }

    #[test]
    fn a_service_of_the_pods_namespace_hides_the_master_one() {
        let master = master();
        let mine = service("team-a", "kubernetes", "10.96.9.9", json!([{"port": 80}]));
        for order in [[&master, &mine], [&mine, &master]] {
            let vars: BTreeMap<_, _> = for_namespace("team-a", true, order).into_iter().collect();
            assert_eq!(vars["KUBERNETES_SERVICE_HOST"], "10.96.9.9");
            assert!(!vars.contains_key("KUBERNETES_SERVICE_PORT_HTTPS"));
        }
        // Without service links the pod's own `kubernetes` is not seen.
        let vars: BTreeMap<_, _> = for_namespace("team-a", false, [&mine, &master])
            .into_iter()
            .collect();
        assert_eq!(vars["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
    }

    #[test]
    fn the_containers_own_variables_win() {
        let master = master();
        let vars = for_container(
            &pod("default", None),
            &container(&["KUBERNETES_SERVICE_HOST"]),
            [&master],
        );
        assert!(!names(&vars).contains(&"KUBERNETES_SERVICE_HOST"));
        assert!(names(&vars).contains(&"KUBERNETES_SERVICE_PORT"));
    }

    #[test]
    fn an_ipv6_address_is_bracketed_in_the_link_urls() {
        let web = service(
            "default",
            "web",
            "fd00::1",
            json!([{"port": 80, "protocol": "TCP"}]),
        );
        let vars = of_service(&web);
        let find = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(find("WEB_PORT"), Some("tcp://[fd00::1]:80"));
        assert_eq!(find("WEB_SERVICE_HOST"), Some("fd00::1"));
        assert_eq!(find("WEB_PORT_80_TCP_ADDR"), Some("fd00::1"));
    }
}
