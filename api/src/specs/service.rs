//! Services, as upstream's `ValidateService` checks what is not the
//! allocators' business (those live in [`crate::services`]): ports, type,
//! selector, session affinity, external names and addresses, traffic
//! policies.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::{quote, Check, Problem};
use crate::validation::{label_errors, qualified_name_errors, subdomain_errors};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const IP_MESSAGE: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// The problems of a Service.
pub fn service(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if !check.walkable(spec, "spec") {
        return check.problems;
    }
    let kind = check.text(&spec["type"], "spec.type");
    let headless = spec["clusterIP"] == "None";
    let ports = check.list(&spec["ports"], "spec.ports");
    if ports.is_empty() && !headless && kind != "ExternalName" {
        check.required("spec.ports", "");
    }
    if kind == "ExternalName" {
        external_name(&mut check, spec);
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        if check.walkable(port, &at) {
            service_port(&mut check, port, ports.len() > 1, &mut names, &at);
        }
    }
    if !spec["selector"].is_null() {
        check.labels(&spec["selector"], "spec.selector");
    }
    session_affinity(&mut check, spec);
    for (i, ip) in check
        .list(&spec["externalIPs"], "spec.externalIPs")
        .iter()
        .enumerate()
    {
        let field = format!("spec.externalIPs[{i}]");
        let ip = check.text(ip, &field);
        if ip.parse::<IpAddr>().is_err() {
            check.invalid(&field, &quote(ip), IP_MESSAGE);
        }
    }
    if kind.is_empty() {
        check.required("spec.type", "");
    } else if !TYPES.contains(&kind) {
        check.not_supported("spec.type", &quote(kind), TYPES);
    }
    duplicate_ports(&mut check, ports);
    let ranges = check.list(
        &spec["loadBalancerSourceRanges"],
        "spec.loadBalancerSourceRanges",
    );
    if !ranges.is_empty() {
        let field = "spec.LoadBalancerSourceRanges";
        if kind != "LoadBalancer" {
            check.forbidden(field, "may only be used when `type` is 'LoadBalancer'");
        }
        for (i, range) in ranges.iter().enumerate() {
            let range = range.as_str().unwrap_or_default().trim();
            if !is_cidr(range) {
                check.invalid(
                    &format!("{field}[{i}]"),
                    &quote(range),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                );
            }
        }
    }
    if !spec["allocateLoadBalancerNodePorts"].is_null() && kind != "LoadBalancer" {
        check.forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        );
    }
    traffic_policies(&mut check, spec, kind);
    check.problems
}

/// The ExternalName's CNAME, and no addresses of its own.
fn external_name(check: &mut Check, spec: &Value) {
    let ips = check.list(&spec["clusterIPs"], "spec.clusterIPs");
    if !ips.is_empty() {
        check.forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        );
    }
    if !check
        .list(&spec["ipFamilies"], "spec.ipFamilies")
        .is_empty()
    {
        check.forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        );
    }
    if !spec["ipFamilyPolicy"].is_null() {
        check.forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        );
    }
    let name = check.text(&spec["externalName"], "spec.externalName");
    let cname = name.strip_suffix('.').unwrap_or(name);
    if cname.is_empty() {
        check.required("spec.externalName", "");
    } else {
        check.each_invalid("spec.externalName", &quote(cname), subdomain_errors(cname));
    }
}

/// `validateServicePort`.
fn service_port<'a>(
    check: &mut Check,
    port: &'a Value,
    require_name: bool,
    names: &mut BTreeSet<&'a str>,
    at: &str,
) {
    let name_path = format!("{at}.name");
    let name = check.text(&port["name"], &name_path);
    if require_name && name.is_empty() {
        check.required(&name_path, "");
    } else if !name.is_empty() {
        check.each_invalid(&name_path, &quote(name), label_errors(name));
        if !names.insert(name) {
            check.duplicate(&name_path, &quote(name));
        }
    }
    let number_path = format!("{at}.port");
    let number = check.int(&port["port"], &number_path).unwrap_or(0);
    check.each_invalid(
        &number_path,
        &number.to_string(),
        crate::validation::port_number_errors(number),
    );
    check.one_of(&port["protocol"], &format!("{at}.protocol"), PROTOCOLS);
    let target_path = format!("{at}.targetPort");
    match &port["targetPort"] {
        Value::String(target) => check.each_invalid(
            &target_path,
            &quote(target),
            crate::validation::port_name_errors(target),
        ),
        other => {
            let target = check.int(other, &target_path).unwrap_or(0);
            check.each_invalid(
                &target_path,
                &target.to_string(),
                crate::validation::port_number_errors(target),
            );
        }
    }
    let app_protocol = &port["appProtocol"];
    if !app_protocol.is_null() {
        let field = format!("{at}.appProtocol");
        let value = check.text(app_protocol, &field);
        check.each_invalid(&field, &quote(value), qualified_name_errors(value));
    }
}

/// Two ports with one protocol and port (or node port).
fn duplicate_ports(check: &mut Check, ports: &[Value]) {
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = port["nodePort"].as_i64().unwrap_or(0);
        let protocol = port["protocol"].as_str().unwrap_or_default();
        if node_port != 0 && !node_ports.insert((protocol, node_port)) {
            check.duplicate(&format!("spec.ports[{i}].nodePort"), &node_port.to_string());
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let number = port["port"].as_i64().unwrap_or(0);
        let protocol = port["protocol"].as_str().unwrap_or_default();
        if !seen.insert((protocol, number)) {
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                quote(protocol)
            );
            check.duplicate(&format!("spec.ports[{i}]"), &key);
        }
    }
}

fn session_affinity(check: &mut Check, spec: &Value) {
    let affinity = check.text(&spec["sessionAffinity"], "spec.sessionAffinity");
    let config = &spec["sessionAffinityConfig"];
    match affinity {
        "" => check.required("spec.sessionAffinity", ""),
        "ClientIP" => {
            let path = "spec.sessionAffinityConfig";
            let detail = "when session affinity type is ClientIP";
            let timeout = &config["clientIP"]["timeoutSeconds"];
            if config.is_null() {
                check.required(path, detail);
            } else if config["clientIP"].is_null() {
                check.required(&format!("{path}.clientIP"), detail);
            } else if timeout.is_null() {
                check.required(&format!("{path}.clientIP.timeoutSeconds"), detail);
            } else {
                let field = format!("{path}.clientIP.timeoutSeconds");
                let seconds = check.int(timeout, &field).unwrap_or(0);
                if !(1..=86400).contains(&seconds) {
                    check.invalid(
                        &field,
                        &seconds.to_string(),
                        "must be greater than 0 and less than 86400",
                    );
                }
            }
        }
        "None" => {
            if !config.is_null() {
                check.forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                );
            }
        }
        other => check.not_supported("spec.sessionAffinity", &quote(other), &["ClientIP", "None"]),
    }
}

/// The external and internal traffic policies.
fn traffic_policies(check: &mut Check, spec: &Value, kind: &str) {
    let external = check.text(&spec["externalTrafficPolicy"], "spec.externalTrafficPolicy");
    let externally_accessible = kind == "NodePort"
        || kind == "LoadBalancer"
        || (kind == "ClusterIP"
            && spec["externalIPs"]
                .as_array()
                .is_some_and(|ips| !ips.is_empty()));
    if !externally_accessible {
        if !external.is_empty() {
            check.invalid(
                "spec.externalTrafficPolicy",
                &quote(external),
                "may only be set for externally-accessible services",
            );
        }
    } else if external.is_empty() {
        check.required("spec.externalTrafficPolicy", "");
    } else if !["Cluster", "Local"].contains(&external) {
        check.not_supported(
            "spec.externalTrafficPolicy",
            &quote(external),
            &["Cluster", "Local"],
        );
    }
    let internal = &spec["internalTrafficPolicy"];
    if internal.is_null() {
        if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&kind) {
            check.required("spec.internalTrafficPolicy", "");
        }
    } else {
        let value = check.text(internal, "spec.internalTrafficPolicy");
        if !["Cluster", "Local"].contains(&value) {
            check.not_supported(
                "spec.internalTrafficPolicy",
                &quote(value),
                &["Cluster", "Local"],
            );
        }
    }
    let distribution = &spec["trafficDistribution"];
    if !distribution.is_null() {
        let value = check.text(distribution, "spec.trafficDistribution");
        if value != "PreferClose" {
            check.not_supported("spec.trafficDistribution", &quote(value), &["PreferClose"]);
        }
    }
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, prefix)) = text.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(spec: Value) -> Vec<String> {
        let mut object = json!({"metadata": {"name": "s"}, "spec": spec});
        crate::strategy::Strategy::defaults(&crate::strategy::Service, &mut object);
        service(&object)
            .into_iter()
            .map(|(_, field, message)| format!("{field}: {message}"))
            .collect()
    }

    #[test]
    fn valid_services_pass() {
        for spec in [
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            json!({"clusterIP": "None"}),
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            json!({"type": "ExternalName", "externalName": "example.com."}),
            json!({"type": "LoadBalancer", "ports": [{"port": 443}], "loadBalancerSourceRanges": ["10.0.0.0/8"]}),
            json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP"}),
        ] {
            assert_eq!(messages(spec.clone()), Vec::<String>::new(), "{spec}");
        }
    }

    #[test]
    fn ports_names_and_types() {
        assert_eq!(messages(json!({})), ["spec.ports: Required value"]);
        let found = messages(json!({"type": "Bogus", "ports": [
            {"port": 80}, {"name": "a", "port": 0, "protocol": "HTTP"}, {"name": "a", "port": 81, "targetPort": "Web_1"}, {"name": "b", "port": 81}]}));
        assert_eq!(
            found,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[2].name: Duplicate value: \"a\"",
                "spec.ports[2].targetPort: Invalid value: \"Web_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                "spec.ports[3]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:81, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ]
        );
        assert_eq!(
            messages(json!({"type": "ExternalName", "externalName": "Not A Name"}))[0],
            "spec.externalName: Invalid value: \"Not A Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            messages(json!({"type": "ExternalName"})),
            ["spec.externalName: Required value"]
        );
    }
}
