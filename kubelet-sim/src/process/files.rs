//! The files a pod's containers see as their own, as a kubelet writes
//! them, without I/O: `/etc/hosts` (managed, with the pod's own name and
//! its `hostAliases`), `/etc/resolv.conf` (by `dnsPolicy` and `dnsConfig`)
//! and `/etc/hostname`.

use k8s_openapi::api::core::v1::Pod;

/// Where cluster DNS answers: the `kube-dns` Service's ClusterIP.
pub const CLUSTER_DNS: &str = "10.96.0.10";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The pod's hostname: `spec.hostname`, else its name, cut to the 63
/// bytes of a DNS label as upstream does.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut name: String = name.chars().take(63).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The managed `/etc/hosts` of a pod at `ip` (upstream's
/// `managedHostsFileContent`); `host` is the node's own file, which
/// hostNetwork pods see as it is.
pub fn hosts(pod: &Pod, ip: &str, host: &str) -> String {
    let mut text = if host_network(pod) {
        host.to_owned()
    } else {
        let mut text = String::from(
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        let name = hostname(pod);
        let subdomain = pod.spec.as_ref().and_then(|s| s.subdomain.as_deref());
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        match subdomain {
            Some(sub) if !sub.is_empty() => text.push_str(&format!(
                "{ip}\t{name}.{sub}.{namespace}.svc.{CLUSTER_DOMAIN}\t{name}\n"
            )),
            _ => text.push_str(&format!("{ip}\t{name}\n")),
        }
        text
    };
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if !aliases.is_empty() {
        text.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            text.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    text
}

/// The pod's `/etc/resolv.conf` by its `dnsPolicy` and `dnsConfig`;
/// `host` is the node's own file.
pub fn resolv(pod: &Pod, host: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match policy {
            // ClusterFirst falls back to the node's for hostNetwork pods,
            // unless they ask for ClusterFirstWithHostNet.
            "ClusterFirst" if host_network(pod) => parse(host),
            "ClusterFirst" | "ClusterFirstWithHostNet" => (
                vec![CLUSTER_DNS.into()],
                vec![
                    format!("{namespace}.svc.{CLUSTER_DOMAIN}"),
                    format!("svc.{CLUSTER_DOMAIN}"),
                    CLUSTER_DOMAIN.into(),
                ],
                vec!["ndots:5".into()],
            ),
            "None" => Default::default(),
            _ => parse(host),
        };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(config.nameservers.iter().flatten().cloned());
        searches.extend(config.searches.iter().flatten().cloned());
        for option in config.options.iter().flatten() {
            let name = option.name.clone().unwrap_or_default();
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name,
            });
        }
    }
    searches.dedup();
    let mut text = String::new();
    for server in servers.iter().take(3) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !searches.is_empty() {
        text.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

/// The nameservers, searches and options of a resolv.conf.
fn parse(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_owned)),
            Some("search" | "domain") => searches = words.map(str::to_owned).collect(),
            Some("options") => options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_pods_hosts_file_names_it_and_its_aliases() {
        let p = pod(json!({"containers": [], "subdomain": "db",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}));
        let text = hosts(&p, "10.244.1.5", "");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.244.1.5\tweb-1.db.shop.svc.cluster.local\tweb-1\n"));
        assert!(
            text.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")
        );
        let host = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(
            hosts(&host, "172.18.0.2", "127.0.0.1 me\n"),
            "127.0.0.1 me\n"
        );
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let host = "nameserver 192.168.1.1\nsearch lan\n";
        assert_eq!(
            resolv(&pod(json!({"containers": []})), host),
            "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        assert_eq!(
            resolv(
                &pod(json!({"containers": [], "dnsPolicy": "Default"})),
                host
            ),
            "nameserver 192.168.1.1\nsearch lan\n"
        );
        assert_eq!(
            resolv(&pod(json!({"containers": [], "hostNetwork": true})), host),
            "nameserver 192.168.1.1\nsearch lan\n"
        );
        let none = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.b"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv(&none, host),
            "nameserver 1.1.1.1\nsearch a.b\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn hostnames_are_cut_to_a_label() {
        let long = "a".repeat(62) + "-b";
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": long}})).unwrap();
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
