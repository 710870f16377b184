//! A container's environment as a kubelet makes it, without I/O
//! (upstream's `makeEnvironmentVariables`): `envFrom` sources first, then
//! `env` in order with `$(VAR)` expanded against what came before and the
//! Service variables, then the Service variables not already set; `$(VAR)`
//! in `command` and `args` is expanded against the result.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_api::specs::quantity::Quantity;

/// A ConfigMap's or Secret's data: its keys' bytes (a ConfigMap's
/// `binaryData` too).
pub type Data = BTreeMap<String, Vec<u8>>;

/// The data of the ConfigMaps and Secrets a container refers to, by
/// name; a name absent here does not exist. Variables read it as text
/// (as upstream's `string(bytes)`), files as it is.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// ConfigMaps: `data` (and `binaryData`, as text).
    pub config_maps: BTreeMap<String, Data>,
    /// Secrets: their decoded `data`.
    pub secrets: BTreeMap<String, Data>,
    /// Service-account tokens, by audience (empty: the apiserver's) and
    /// expiry in seconds.
    pub tokens: BTreeMap<(String, i64), Vec<u8>>,
}

/// The ConfigMaps and Secrets a container's environment names.
pub fn references(container: &Container) -> (Vec<String>, Vec<String>) {
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for from in container.env_from.iter().flatten() {
        maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        maps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    maps.sort();
    maps.dedup();
    secrets.sort();
    secrets.dedup();
    (maps, secrets)
}

/// Where the pod runs: what `fieldRef`s and `resourceFieldRef`s read
/// beyond the pod itself.
pub struct Placement<'a> {
    /// Its pod IP.
    pub pod_ip: &'a str,
    /// Its node's IP.
    pub host_ip: &'a str,
    /// The node's allocatable CPU and memory: the limits of a container
    /// that sets none.
    pub node_cpu: &'a str,
    /// See `node_cpu`.
    pub node_memory: &'a str,
}

/// The environment of `container`, or the error that keeps it from
/// starting (upstream's CreateContainerConfigError messages).
pub fn environment(
    pod: &Pod,
    container: &Container,
    services: &[(String, String)],
    sources: &Sources,
    placement: &Placement,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, key: String, value: String| match vars
        .iter_mut()
        .find(|(k, _)| *k == key)
    {
        Some(slot) => slot.1 = value,
        None => vars.push((key, value)),
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(r) = &from.config_map_ref {
            (
                sources.config_maps.get(&r.name),
                r.optional,
                ("configmap", &r.name),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional,
                ("secret", &r.name),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (key, value) in data {
                    let text = String::from_utf8_lossy(value).into_owned();
                    set(&mut vars, format!("{prefix}{key}"), text);
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("{} \"{}\" not found", what.0, what.1)),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path, placement)?
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_value(container, pod, resource, placement)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let found = sources.config_maps.get(&r.name);
                    match (found, found.and_then(|d| d.get(&r.key))) {
                        (_, Some(value)) => String::from_utf8_lossy(value).into_owned(),
                        _ if r.optional == Some(true) => continue,
                        (None, _) => return Err(format!("configmap \"{}\" not found", r.name)),
                        (Some(_), None) => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let found = sources.secrets.get(&r.name);
                    match (found, found.and_then(|d| d.get(&r.key))) {
                        (_, Some(value)) => String::from_utf8_lossy(value).into_owned(),
                        _ if r.optional == Some(true) => continue,
                        (None, _) => return Err(format!("secret \"{}\" not found", r.name)),
                        (Some(_), None) => {
                            return Err(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else {
                    String::new()
                }
            }
            (Some(value), None) => {
                let known = |name: &str| {
                    vars.iter()
                        .chain(services)
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                expand(value, &known)
            }
            (None, None) => String::new(),
        };
        set(&mut vars, var.name.clone(), value);
    }
    for (key, value) in services {
        if !vars.iter().any(|(k, _)| k == key) {
            vars.push((key.clone(), value.clone()));
        }
    }
    Ok(vars)
}

/// `command` then `args` with `$(VAR)` expanded against `env`.
pub fn command_line(container: &Container, env: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let known = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let each = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, &known)).collect()
    };
    (each(&container.command), each(&container.args))
}

/// Upstream's `$(VAR)` expansion: a defined variable is replaced, an
/// undefined one left as written, `$$` is a literal `$`, and any other `$`
/// stays.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `fieldRef`'s value.
fn field_value(pod: &Pod, path: &str, placement: &Placement) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_owned)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => placement.host_ip.to_owned(),
        "status.podIP" | "status.podIPs" => placement.pod_ip.to_owned(),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    })
}

/// A `resourceFieldRef`'s value: the container's limit or request,
/// divided by the divisor and rounded up (a limit not set is the node's
/// allocatable, as upstream).
fn resource_value(
    container: &Container,
    pod: &Pod,
    field: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    placement: &Placement,
) -> Result<String, String> {
    let target = match &field.container_name {
        Some(name) if !name.is_empty() => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .find(|c| &c.name == name)
            .ok_or_else(|| format!("container {name} not found"))?,
        _ => container,
    };
    let resources = target.resources.as_ref();
    let (kind, resource) = field
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {}", field.resource))?;
    let set = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(format!(
                "unsupported container resource: {}",
                field.resource
            ))
        }
    };
    let value = set.and_then(|s| s.get(resource)).map(|q| q.0.clone());
    let value = match (value, resource) {
        (Some(v), _) => v,
        (None, "cpu") if kind == "limits" => placement.node_cpu.to_owned(),
        (None, "memory") if kind == "limits" => placement.node_memory.to_owned(),
        (None, _) => "0".to_owned(),
    };
    let milli = |text: &str| {
        Quantity::parse(text)
            .map(|q| q.milli_value())
            .map_err(|e| format!("{text:?}: {e}"))
    };
    let divisor = match field.divisor.as_ref().map(|d| d.0.as_str()) {
        Some(d) if !d.is_empty() => milli(d)?,
        _ => 1000,
    };
    if divisor <= 0 {
        return Err("the divisor must be positive".into());
    }
    let value = milli(&value)?;
    Ok(((value + divisor - 1) / divisor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n-1", "containers": [{
                "name": "c",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                            {"secretRef": {"name": "gone", "optional": true}}],
                "env": [
                    {"name": "GREETING", "value": "hello $(CFG_who) from $(MY_NODE) $$(HOME) $(NOPE)"},
                    {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                    {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "WEB_SERVICE_HOST", "value": "mine"},
                ],
            }]},
        }))
        .unwrap()
    }

    fn placement() -> Placement<'static> {
        Placement {
            pod_ip: "10.244.1.5",
            host_ip: "172.18.0.3",
            node_cpu: "8",
            node_memory: "32Gi",
        }
    }

    #[test]
    fn an_environment_reads_its_sources_in_upstreams_order() {
        let pod = pod();
        let sources = Sources {
            config_maps: [(
                "settings".into(),
                [("who".to_string(), b"me".to_vec())].into(),
            )]
            .into(),
            secrets: [(
                "db".into(),
                [("password".to_string(), b"s3cret".to_vec())].into(),
            )]
            .into(),
            ..Sources::default()
        };
        let services = [
            ("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string()),
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "10.96.0.1".to_string(),
            ),
        ];
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let env = environment(&pod, c, &services, &sources, &placement()).unwrap();
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        // MY_NODE is defined after GREETING: left as written, as upstream.
        assert_eq!(
            get("GREETING"),
            Some("hello me from $(MY_NODE) $(HOME) $(NOPE)")
        );
        assert_eq!(get("CFG_who"), Some("me"));
        assert_eq!(get("MY_NODE"), Some("n-1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.244.1.5"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU"), Some("1"));
        assert_eq!(get("CPUS"), Some("8"));
        assert_eq!(get("PASS"), Some("s3cret"));
        assert_eq!(get("WEB_SERVICE_HOST"), Some("mine"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(
            references(c),
            (vec!["settings".into()], vec!["db".into(), "gone".into()])
        );
        let missing = environment(&pod, c, &services, &Sources::default(), &placement());
        assert_eq!(missing.unwrap_err(), "configmap \"settings\" not found");
        let no_key = Sources {
            config_maps: sources.config_maps.clone(),
            secrets: [("db".into(), BTreeMap::new())].into(),
            ..Sources::default()
        };
        let error = environment(&pod, c, &services, &no_key, &placement()).unwrap_err();
        assert_eq!(error, "couldn't find key password in Secret shop/db");
    }

    #[test]
    fn expansion_follows_upstreams_rules() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_string());
        assert_eq!(
            expand("$(A)-$(B)-$$(A)-$-$(A", &lookup),
            "x-$(B)-$(A)-$-$(A"
        );
        let c: Container = serde_json::from_value(json!({"name": "c",
            "command": ["sh", "-c"], "args": ["echo $(A)"]}))
        .unwrap();
        let (command, args) = command_line(&c, &[("A".into(), "hi".into())]);
        assert_eq!(
            (command, args),
            (
                vec!["sh".to_string(), "-c".into()],
                vec!["echo hi".to_string()]
            )
        );
    }
}
