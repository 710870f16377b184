//! Pod specs, as upstream's `ValidatePodSpec` and its helpers check them:
//! volumes and the mounts that name them, containers (names unique across
//! containers and init containers, images, ports, env, probes, resources),
//! the restart and DNS policies, node selection, affinity, tolerations and
//! host aliases.
//! Fields upstream defaults before validating (probe thresholds, the HTTP
//! probe path and scheme, a downward API `apiVersion`, host ports under
//! `hostNetwork`) are read as their defaults when absent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use super::quantity::Quantity;
use super::{go_value, quote, Check, Problem};
use crate::validation::{
    config_key_errors, env_var_name_errors, http_header_name_errors, inclusive_range_error,
    label_errors, label_value_errors, port_name_errors, port_number_errors, qualified_name_errors,
    subdomain_errors,
};

/// The volume sources, in the order upstream's `validateVolumeSource`
/// counts them.
const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const ENV_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const VOLUME_FIELDS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];
/// The labels upstream's `ConvertDownwardAPIFieldLabel` knows.
const DOWNWARD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const BYTE_DIVISORS: &[&str] = &[
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
    "storage",
    "requests.storage",
];
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// The problems of a Pod (`ValidatePodCreate`'s spec checks).
pub fn pod(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    pod_spec(&mut check, &object["spec"], "spec", true);
    check.problems
}

/// A pod template at `path` (`spec.template`), as upstream's
/// `ValidatePodTemplateSpec` checks it.
pub(super) fn template(check: &mut Check, template: &Value, path: &str) {
    if !check.walkable(template, path) {
        return;
    }
    let meta = &template["metadata"];
    if check.walkable(meta, &format!("{path}.metadata")) {
        check.labels(&meta["labels"], &format!("{path}.labels"));
        for (key, _) in check.string_map(&meta["annotations"], &format!("{path}.annotations")) {
            let field = format!("{path}.annotations");
            check.each_invalid(
                &field,
                &quote(key),
                qualified_name_errors(&key.to_lowercase()),
            );
        }
    }
    let spec = &template["spec"];
    pod_spec(check, spec, &format!("{path}.spec"), false);
    if spec["ephemeralContainers"]
        .as_array()
        .is_some_and(|l| !l.is_empty())
    {
        check.forbidden(
            &format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    }
}

/// `ValidatePodSpec`; `is_pod` adds what upstream checks for Pods only.
fn pod_spec(check: &mut Check, spec: &Value, path: &str, is_pod: bool) {
    if !check.walkable(spec, path) {
        return;
    }
    let at = |field: &str| format!("{path}.{field}");
    let grace_field = at("terminationGracePeriodSeconds");
    if spec["terminationGracePeriodSeconds"].is_null() {
        check.required(&grace_field, "");
    }
    let grace = check.int(&spec["terminationGracePeriodSeconds"], &grace_field);
    let volumes = volumes(check, &spec["volumes"], &at("volumes"));
    let context = Context { volumes, grace };
    containers(check, spec, path, &context);
    init_containers(check, spec, path, &context);
    host_network_ports(check, spec, path);
    check.one_of(
        &spec["restartPolicy"],
        &at("restartPolicy"),
        &["Always", "OnFailure", "Never"],
    );
    let dns_policy = spec["dnsPolicy"].as_str().unwrap_or_default();
    check.one_of(
        &spec["dnsPolicy"],
        &at("dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    check.labels(&spec["nodeSelector"], &at("nodeSelector"));
    affinity(check, &spec["affinity"], &at("affinity"));
    dns_config(check, &spec["dnsConfig"], dns_policy, &at("dnsConfig"));
    for (i, gate) in check
        .list(&spec["readinessGates"], &at("readinessGates"))
        .iter()
        .enumerate()
    {
        let field = format!("{path}.readinessGates[{i}].conditionType");
        let condition = check.text(&gate["conditionType"], &field);
        check.each_invalid(&field, &quote(condition), qualified_name_errors(condition));
    }
    for (field, rule) in [
        (
            "serviceAccountName",
            subdomain_errors as fn(&str) -> Vec<String>,
        ),
        ("nodeName", subdomain_errors),
        ("hostname", label_errors),
        ("subdomain", label_errors),
        ("priorityClassName", subdomain_errors),
    ] {
        let value = check.text(&spec[field], &at(field));
        if !value.is_empty() {
            check.each_invalid(&at(field), &quote(value), rule(value));
        }
    }
    let deadline = at("activeDeadlineSeconds");
    if let Some(n) = check.int(&spec["activeDeadlineSeconds"], &deadline) {
        if !(1..=i64::from(i32::MAX)).contains(&n) {
            let range = inclusive_range_error(1, i64::from(i32::MAX));
            check.invalid(&deadline, &n.to_string(), &range);
        }
    }
    tolerations(check, &spec["tolerations"], &at("tolerations"));
    host_aliases(check, &spec["hostAliases"], &at("hostAliases"));
    if !spec["preemptionPolicy"].is_null() {
        check.one_of(
            &spec["preemptionPolicy"],
            &at("preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
        );
    }
    if is_pod {
        for list in ["containers", "initContainers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                let image = c["image"].as_str().unwrap_or_default();
                if image.trim() != image {
                    check.invalid(
                        &format!("{path}.{list}[{i}].image"),
                        &quote(image),
                        "must not have leading or trailing whitespace",
                    );
                }
            }
        }
    }
}

/// What the containers of a spec are checked against.
struct Context<'a> {
    volumes: BTreeMap<&'a str, &'a Value>,
    grace: Option<i64>,
}

/// `ValidateVolumes`: the volumes that passed, by name.
fn volumes<'a>(check: &mut Check, list: &'a Value, path: &str) -> BTreeMap<&'a str, &'a Value> {
    let mut valid = BTreeMap::new();
    for (i, volume) in check.list(list, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !check.walkable(volume, &at) {
            continue;
        }
        let before = check.problems.len();
        volume_source(check, volume, &at);
        let name_path = format!("{at}.name");
        let name = check.text(&volume["name"], &name_path);
        if name.is_empty() {
            check.required(&name_path, "");
        } else {
            check.each_invalid(&name_path, &quote(name), label_errors(name));
        }
        if valid.contains_key(name) {
            check.duplicate(&name_path, &quote(name));
        }
        if check.problems.len() == before {
            valid.insert(name, volume);
        }
    }
    valid
}

/// `validateVolumeSource`: exactly one source, and that one well formed.
fn volume_source(check: &mut Check, volume: &Value, at: &str) {
    one_of(
        check,
        volume,
        VOLUME_SOURCES,
        at,
        "volume type",
        |check, source, value, path| {
            let child = |name: &str| format!("{path}.{name}");
            let need = |check: &mut Check, field: &str| {
                if check.text(&value[field], &child(field)).is_empty() {
                    check.required(&child(field), "");
                }
            };
            match source {
                "emptyDir" => {
                    let limit = &value["sizeLimit"];
                    if let Some(q) = quantity(check, limit, &child("sizeLimit")) {
                        if q.is_negative() {
                            check.forbidden(
                                &child("sizeLimit"),
                                "SizeLimit field must be a valid resource quantity",
                            );
                        }
                    }
                }
                "hostPath" => {
                    let host = check.text(&value["path"], &child("path"));
                    if host.is_empty() {
                        check.required(&child("path"), "");
                    } else {
                        no_backsteps(check, host, &child("path"));
                    }
                }
                "secret" | "configMap" => {
                    need(
                        check,
                        if source == "secret" {
                            "secretName"
                        } else {
                            "name"
                        },
                    );
                    file_mode(check, &value["defaultMode"], &child("defaultMode"));
                    let items = child("items");
                    for (j, item) in check.list(&value["items"], &items).iter().enumerate() {
                        key_to_path(check, item, &format!("{items}[{j}]"));
                    }
                }
                "persistentVolumeClaim" => need(check, "claimName"),
                "nfs" => {
                    need(check, "server");
                    need(check, "path");
                    let nfs_path = check.text(&value["path"], &child("path"));
                    if !nfs_path.starts_with('/') {
                        check.invalid(&child("path"), &quote(nfs_path), "must be an absolute path");
                    }
                }
                "downwardAPI" => {
                    file_mode(check, &value["defaultMode"], &child("defaultMode"));
                    for item in check.list(&value["items"], &child("items")) {
                        downward_api_file(check, item, path);
                    }
                }
                "projected" => {
                    file_mode(check, &value["defaultMode"], &child("defaultMode"));
                    let sources = child("sources");
                    for (j, projection) in
                        check.list(&value["sources"], &sources).iter().enumerate()
                    {
                        let at = format!("{sources}[{j}]");
                        let count = [
                            "secret",
                            "configMap",
                            "downwardAPI",
                            "serviceAccountToken",
                            "clusterTrustBundle",
                        ]
                        .iter()
                        .filter(|k| !projection[**k].is_null())
                        .count();
                        if count > 1 {
                            check.forbidden(
                                &at,
                                "may not specify more than 1 volume type per source",
                            );
                        }
                    }
                }
                _ => {}
            }
        },
    );
}

fn file_mode(check: &mut Check, mode: &Value, field: &str) {
    if let Some(m) = check.int(mode, field).filter(|m| !(0..=0o777).contains(m)) {
        check.invalid(field, &m.to_string(), FILE_MODE);
    }
}

fn key_to_path(check: &mut Check, item: &Value, at: &str) {
    for field in ["key", "path"] {
        if check
            .text(&item[field], &format!("{at}.{field}"))
            .is_empty()
        {
            check.required(&format!("{at}.{field}"), "");
        }
    }
    let target = item["path"].as_str().unwrap_or_default();
    local_non_reserved_path(check, target, &format!("{at}.path"));
    file_mode(check, &item["mode"], &format!("{at}.mode"));
}

fn downward_api_file(check: &mut Check, file: &Value, path: &str) {
    let target = check.text(&file["path"], &format!("{path}.path"));
    if target.is_empty() {
        check.required(&format!("{path}.path"), "");
    }
    local_non_reserved_path(check, target, &format!("{path}.path"));
    let (field_ref, resource_ref) = (&file["fieldRef"], &file["resourceFieldRef"]);
    if !field_ref.is_null() {
        object_field_selector(check, field_ref, VOLUME_FIELDS, &format!("{path}.fieldRef"));
        if !resource_ref.is_null() {
            check.invalid(
                path,
                "\"resource\"",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            );
        }
    } else if !resource_ref.is_null() {
        resource_field_selector(
            check,
            resource_ref,
            true,
            &format!("{path}.resourceFieldRef"),
        );
    } else {
        check.required(path, "one of fieldRef and resourceFieldRef is required");
    }
    file_mode(check, &file["mode"], &format!("{path}.mode"));
}

/// `validatePathNoBacksteps`.
fn no_backsteps(check: &mut Check, target: &str, field: &str) {
    if target.split('/').any(|part| part == "..") {
        check.invalid(field, &quote(target), "must not contain '..'");
    }
}

/// `validateLocalDescendingPath`.
fn local_descending_path(check: &mut Check, target: &str, field: &str) {
    if target.starts_with('/') {
        check.invalid(field, &quote(target), "must be a relative path");
    }
    no_backsteps(check, target, field);
}

/// `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(check: &mut Check, target: &str, field: &str) {
    local_descending_path(check, target, field);
    if target.starts_with("..") && !target.starts_with("../") {
        check.invalid(field, &quote(target), "must not start with '..'");
    }
}

/// `validateContainers`: the regular containers.
fn containers(check: &mut Check, spec: &Value, path: &str, context: &Context) {
    let list_path = format!("{path}.containers");
    let list = check.list(&spec["containers"], &list_path);
    if list.is_empty() {
        check.required(&list_path, "");
        return;
    }
    let mut names = BTreeSet::new();
    for (i, container) in list.iter().enumerate() {
        let at = format!("{list_path}[{i}]");
        if !check.walkable(container, &at) {
            continue;
        }
        container_common(check, container, &at, context);
        let name = container["name"].as_str().unwrap_or_default();
        if !names.insert(name) {
            check.duplicate(&format!("{at}.name"), &quote(name));
        }
        lifecycle_and_probes(check, container, &at, context.grace);
        if !container["restartPolicy"].is_null() {
            check.forbidden(
                &format!("{at}.restartPolicy"),
                "may not be set for non-init containers",
            );
        }
    }
    host_port_conflicts(check, list.iter().enumerate(), &list_path);
}

/// `validateInitContainers`.
fn init_containers(check: &mut Check, spec: &Value, path: &str, context: &Context) {
    let list_path = format!("{path}.initContainers");
    let mut names: BTreeSet<&str> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    for (i, container) in check
        .list(&spec["initContainers"], &list_path)
        .iter()
        .enumerate()
    {
        let at = format!("{list_path}[{i}]");
        if !check.walkable(container, &at) {
            continue;
        }
        container_common(check, container, &at, context);
        let policy = &container["restartPolicy"];
        let restart_always = policy == "Always";
        if !policy.is_null() && !restart_always {
            check.not_supported(
                &format!("{at}.restartPolicy"),
                &go_value(policy),
                &["Always"],
            );
        }
        let name = container["name"].as_str().unwrap_or_default();
        if names.contains(name) {
            check.duplicate(&format!("{at}.name"), &quote(name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        host_port_conflicts(check, std::iter::once((i, container)), &list_path);
        if restart_always {
            lifecycle_and_probes(check, container, &at, context.grace);
        } else {
            for field in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if !container[field].is_null() {
                    check.forbidden(
                        &format!("{at}.{field}"),
                        "may not be set for init containers without restartPolicy=Always",
                    );
                }
            }
        }
    }
}

/// `checkHostPortConflicts`: a protocol/hostIP/hostPort used twice.
fn host_port_conflicts<'a>(
    check: &mut Check,
    containers: impl Iterator<Item = (usize, &'a Value)>,
    path: &str,
) {
    let mut seen = BTreeSet::new();
    for (i, container) in containers {
        for (j, port) in container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let host_port = port["hostPort"].as_i64().unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                port["protocol"].as_str().unwrap_or_default(),
                port["hostIP"].as_str().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                check.duplicate(&format!("{path}[{i}].ports[{j}].hostPort"), &quote(&key));
            }
        }
    }
}

/// `validatePodHostNetworkDeps`: under `hostNetwork`, host ports are the
/// container ports (an absent one is defaulted to it, as upstream's pod
/// defaulter does).
fn host_network_ports(check: &mut Check, spec: &Value, path: &str) {
    if !check.flag(&spec["hostNetwork"], &format!("{path}.hostNetwork")) {
        return;
    }
    for (i, container) in spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, port) in container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let container_port = port["containerPort"].as_i64().unwrap_or(0);
            let Some(host_port) = port["hostPort"].as_i64().filter(|p| *p != 0) else {
                continue;
            };
            if host_port != container_port {
                check.invalid(
                    &format!("{path}.containers[{i}].ports[{j}].hostPort"),
                    &host_port.to_string(),
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
    }
}

/// `validateContainerCommon`: what every kind of container must satisfy.
fn container_common(check: &mut Check, container: &Value, at: &str, context: &Context) {
    let field = |name: &str| format!("{at}.{name}");
    let name = check.text(&container["name"], &field("name"));
    if name.is_empty() {
        check.required(&field("name"), "");
    } else {
        check.each_invalid(&field("name"), &quote(name), label_errors(name));
    }
    if check.text(&container["image"], &field("image")).is_empty() {
        check.required(&field("image"), "");
    }
    check.one_of(
        &container["terminationMessagePolicy"],
        &field("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    ports(check, &container["ports"], &field("ports"));
    env(check, &container["env"], &field("env"));
    env_from(check, &container["envFrom"], &field("envFrom"));
    volume_mounts(check, container, &field("volumeMounts"), context);
    check.one_of(
        &container["imagePullPolicy"],
        &field("imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    );
    resources(check, &container["resources"], &field("resources"));
}

/// `validateContainerPorts`.
fn ports(check: &mut Check, list: &Value, path: &str) {
    let mut names = BTreeSet::new();
    for (i, port) in check.list(list, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !check.walkable(port, &at) {
            continue;
        }
        let name_path = format!("{at}.name");
        let name = check.text(&port["name"], &name_path);
        if !name.is_empty() {
            let errors = port_name_errors(name);
            if !errors.is_empty() {
                check.each_invalid(&name_path, &quote(name), errors);
            } else if !names.insert(name) {
                check.duplicate(&name_path, &quote(name));
            }
        }
        let container_path = format!("{at}.containerPort");
        match check
            .int(&port["containerPort"], &container_path)
            .unwrap_or(0)
        {
            0 => check.required(&container_path, ""),
            n => check.each_invalid(&container_path, &n.to_string(), port_number_errors(n)),
        }
        let host_path = format!("{at}.hostPort");
        if let Some(n) = check.int(&port["hostPort"], &host_path).filter(|n| *n != 0) {
            check.each_invalid(&host_path, &n.to_string(), port_number_errors(n));
        }
        check.one_of(
            &port["protocol"],
            &format!("{at}.protocol"),
            &["SCTP", "TCP", "UDP"],
        );
    }
}

/// `ValidateEnv`.
fn env(check: &mut Check, list: &Value, path: &str) {
    for (i, var) in check.list(list, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !check.walkable(var, &at) {
            continue;
        }
        let name = check.text(&var["name"], &format!("{at}.name"));
        if name.is_empty() {
            check.required(&format!("{at}.name"), "");
        } else {
            check.each_invalid(
                &format!("{at}.name"),
                &quote(name),
                env_var_name_errors(name),
            );
        }
        value_from(check, var, &format!("{at}.valueFrom"));
    }
}

/// `validateEnvVarValueFrom`: exactly one source, and not beside `value`.
fn value_from(check: &mut Check, var: &Value, at: &str) {
    let from = &var["valueFrom"];
    if !check.walkable(from, at) || from.is_null() {
        return;
    }
    let mut sources = 0;
    for source in [
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
    ] {
        let value = &from[source];
        if value.is_null() {
            continue;
        }
        sources += 1;
        let path = format!("{at}.{source}");
        match source {
            "fieldRef" => object_field_selector(check, value, ENV_FIELDS, &path),
            "resourceFieldRef" => resource_field_selector(check, value, false, &path),
            _ => key_selector(check, value, &path),
        }
    }
    let has_value = var["value"].as_str().is_some_and(|v| !v.is_empty());
    if sources == 0 {
        check.invalid(
            at,
            "\"\"",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        );
    } else if has_value {
        check.invalid(at, "\"\"", "may not be specified when `value` is not empty");
    } else if sources > 1 {
        check.invalid(
            at,
            "\"\"",
            "may not have more than one field specified at a time",
        );
    }
}

/// `validateObjectFieldSelector` (after upstream's defaulting of
/// `apiVersion` to `v1`).
fn object_field_selector(check: &mut Check, selector: &Value, allowed: &[&str], at: &str) {
    let version = check.text(&selector["apiVersion"], &format!("{at}.apiVersion"));
    let version = if version.is_empty() { "v1" } else { version };
    let path_field = format!("{at}.fieldPath");
    let field_path = check.text(&selector["fieldPath"], &path_field);
    if field_path.is_empty() {
        check.required(&path_field, "");
        return;
    }
    let subscripted = field_path
        .strip_suffix("']")
        .and_then(|s| s.split_once("['"))
        .filter(|(path, _)| !path.is_empty());
    let conversion = if version != "v1" {
        Err(format!("unsupported pod version: {version}"))
    } else if let Some((path, _)) = subscripted {
        match path {
            "metadata.annotations" | "metadata.labels" => Ok(field_path),
            _ => Err(format!(
                "field label does not support subscript: {field_path}"
            )),
        }
    } else if field_path == "spec.host" {
        Ok("spec.nodeName")
    } else if DOWNWARD_LABELS.contains(&field_path) {
        Ok(field_path)
    } else {
        Err(format!("field label not supported: {field_path}"))
    };
    let internal = match conversion {
        Ok(internal) => internal,
        Err(e) => {
            let detail = format!("error converting fieldPath: {e}");
            return check.invalid(&path_field, &quote(field_path), &detail);
        }
    };
    match subscripted {
        Some(("metadata.annotations", key)) => check.each_invalid(
            at,
            &quote(&key.to_lowercase()),
            qualified_name_errors(&key.to_lowercase()),
        ),
        Some((_, key)) => check.each_invalid(at, &quote(key), qualified_name_errors(key)),
        None if !allowed.contains(&internal) => {
            check.not_supported(&path_field, &quote(internal), allowed)
        }
        None => {}
    }
}

/// `validateContainerResourceFieldSelector`.
fn resource_field_selector(check: &mut Check, selector: &Value, volume: bool, at: &str) {
    let resource = check.text(&selector["resource"], &format!("{at}.resource"));
    let container = check.text(&selector["containerName"], &format!("{at}.containerName"));
    let hugepages =
        resource.starts_with("requests.hugepages-") || resource.starts_with("limits.hugepages-");
    if volume && container.is_empty() {
        check.required(&format!("{at}.containerName"), "");
    } else if resource.is_empty() {
        check.required(&format!("{at}.resource"), "");
    } else if !RESOURCE_FIELDS.contains(&resource) && !hugepages {
        check.not_supported(&format!("{at}.resource"), &quote(resource), RESOURCE_FIELDS);
    }
    let Some(divisor) = quantity(check, &selector["divisor"], &format!("{at}.divisor")) else {
        return;
    };
    if divisor.is_zero() {
        return;
    }
    let divisor = divisor.to_string();
    let (allowed, detail): (&[&str], &str) = match resource {
        "limits.cpu" | "requests.cpu" => (&["1m", "1"], "only divisor's values 1m and 1 are supported with the cpu resource"),
        "limits.memory" | "requests.memory" => (BYTE_DIVISORS, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => (BYTE_DIVISORS, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource"),
        _ if hugepages => (BYTE_DIVISORS, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the hugepages resource"),
        _ => return,
    };
    if !allowed.contains(&divisor.as_str()) {
        check.invalid(&format!("{at}.divisor"), &quote(resource), detail);
    }
}

/// `validateConfigMapKeySelector` and `validateSecretKeySelector`.
fn key_selector(check: &mut Check, selector: &Value, at: &str) {
    let name = check.text(&selector["name"], &format!("{at}.name"));
    check.each_invalid(&format!("{at}.name"), &quote(name), subdomain_errors(name));
    let key_path = format!("{at}.key");
    let key = check.text(&selector["key"], &key_path);
    if key.is_empty() {
        check.required(&key_path, "");
    } else {
        check.each_invalid(&key_path, &quote(key), config_key_errors(key));
    }
}

/// `ValidateEnvFrom`.
fn env_from(check: &mut Check, list: &Value, path: &str) {
    for (i, source) in check.list(list, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !check.walkable(source, &at) {
            continue;
        }
        let prefix = check.text(&source["prefix"], &format!("{at}.prefix"));
        if !prefix.is_empty() {
            check.each_invalid(
                &format!("{at}.prefix"),
                &quote(prefix),
                env_var_name_errors(prefix),
            );
        }
        let mut sources = 0;
        for kind in ["configMapRef", "secretRef"] {
            let reference = &source[kind];
            if reference.is_null() {
                continue;
            }
            sources += 1;
            let name_path = format!("{at}.{kind}.name");
            let name = check.text(&reference["name"], &name_path);
            if name.is_empty() {
                check.required(&name_path, "");
            } else {
                // A name that is a prefix may end in a dash.
                let masked = match name.strip_suffix('-') {
                    Some(head) if !head.is_empty() => format!("{head}a"),
                    _ => name.to_owned(),
                };
                check.each_invalid(&name_path, &quote(name), subdomain_errors(&masked));
            }
        }
        if sources == 0 {
            check.invalid(
                path,
                "\"\"",
                "must specify one of: `configMapRef` or `secretRef`",
            );
        } else if sources > 1 {
            check.invalid(
                path,
                "\"\"",
                "may not have more than one field specified at a time",
            );
        }
    }
}

/// `ValidateVolumeMounts`: each names a volume of the pod, at a unique path.
fn volume_mounts(check: &mut Check, container: &Value, path: &str, context: &Context) {
    let mut mount_points = BTreeSet::new();
    let privileged = container["securityContext"]["privileged"] == true;
    for (i, mount) in check
        .list(&container["volumeMounts"], path)
        .iter()
        .enumerate()
    {
        let at = format!("{path}[{i}]");
        if !check.walkable(mount, &at) {
            continue;
        }
        let name = check.text(&mount["name"], &format!("{at}.name"));
        if name.is_empty() {
            check.required(&format!("{at}.name"), "");
        }
        let volume = context.volumes.get(name);
        if volume.is_none() {
            check.not_found(&format!("{at}.name"), &quote(name));
        }
        let mount_path = check.text(&mount["mountPath"], &format!("{at}.mountPath"));
        if mount_path.is_empty() {
            check.required(&format!("{at}.mountPath"), "");
        }
        if !mount_points.insert(mount_path) {
            check.invalid(
                &format!("{at}.mountPath"),
                &quote(mount_path),
                "must be unique",
            );
        }
        let sub_path = check.text(&mount["subPath"], &format!("{at}.subPath"));
        let sub_path_expr = check.text(&mount["subPathExpr"], &format!("{at}.subPathExpr"));
        if volume.is_some_and(|v| !v["image"].is_null()) {
            for (field, value) in [("subPath", sub_path), ("subPathExpr", sub_path_expr)] {
                if !value.is_empty() {
                    let field = format!("{at}.{field}");
                    check.invalid(&field, &quote(value), "not allowed in image volume sources");
                }
            }
        }
        if !sub_path.is_empty() {
            local_descending_path(check, sub_path, &format!("{path}.subPath"));
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                check.invalid(
                    &format!("{at}.subPathExpr"),
                    &quote(sub_path_expr),
                    "subPathExpr and subPath are mutually exclusive",
                );
            }
            local_descending_path(check, sub_path_expr, &format!("{path}.subPathExpr"));
        }
        let propagation = &mount["mountPropagation"];
        if !propagation.is_null() {
            let field = format!("{path}.mountPropagation");
            let supported = ["Bidirectional", "HostToContainer", "None"];
            let value = check.text(propagation, &field);
            if !supported.contains(&value) {
                check.not_supported(&field, &quote(value), &supported);
            }
            if value == "Bidirectional" && !privileged {
                check.forbidden(
                    &field,
                    "Bidirectional mount propagation is available only to privileged containers",
                );
            }
        }
    }
}

/// A quantity field: `None` when absent or not a quantity (a problem).
/// Numbers are quantities too, as upstream's decoder takes them.
fn quantity(check: &mut Check, value: &Value, field: &str) -> Option<Quantity> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            check.text(other, field);
            return None;
        }
    };
    match Quantity::parse(&text) {
        Ok(q) => Some(q),
        Err(e) => {
            check.invalid(field, &quote(&text), e);
            None
        }
    }
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && qualified_name_errors(&format!("requests.{name}")).is_empty()
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// `validateContainerResourceName`.
fn container_resource_name(check: &mut Check, name: &str, field: &str) {
    let errors = qualified_name_errors(name);
    let qualified = errors.is_empty();
    check.each_invalid(field, name, errors);
    let bare = !name.contains('/');
    if qualified
        && bare
        && !STANDARD_RESOURCES.contains(&name)
        && !is_hugepages(name)
        && !name.starts_with("requests.hugepages-")
    {
        check.invalid(
            field,
            name,
            "must be a standard resource type or fully qualified",
        );
    }
    if bare {
        if !["cpu", "memory", "ephemeral-storage"].contains(&name) && !is_hugepages(name) {
            check.invalid(field, name, "must be a standard resource for containers");
        }
    } else if !is_native(name) && !is_extended(name) {
        check.invalid(
            field,
            name,
            "doesn't follow extended resource name standard",
        );
    }
}

/// `ValidateResourceQuantityValue`.
fn quantity_value(check: &mut Check, name: &str, quantity: &Quantity, field: &str) {
    if quantity.is_negative() {
        check.invalid(
            field,
            &quote(&quantity.to_string()),
            "must be greater than or equal to 0",
        );
    }
    let integer = INTEGER_RESOURCES.contains(&name) || is_extended(name);
    if integer && quantity.milli_value() % 1000 != 0 {
        check.invalid(field, &quantity.to_string(), "must be an integer");
    }
}

/// A map's entries by key (upstream walks Go maps, in no fixed order).
fn sorted(map: Option<&serde_json::Map<String, Value>>) -> BTreeMap<&str, &Value> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// `ValidateContainerResourceRequirements`: names, quantities, and
/// requests within limits.
fn resources(check: &mut Check, resources: &Value, path: &str) {
    if !check.walkable(resources, path) {
        return;
    }
    let limits_path = format!("{path}.limits");
    let requests_path = format!("{path}.requests");
    let mut limits = BTreeMap::new();
    let (mut cpu_or_memory, mut hugepages) = (false, false);
    for (name, value) in sorted(check.map(&resources["limits"], &limits_path)) {
        let field = format!("{limits_path}[{name}]");
        container_resource_name(check, name, &field);
        let parsed = quantity(check, value, &field);
        if let Some(q) = &parsed {
            quantity_value(check, name, q, &field);
        }
        limits.insert(name, parsed);
        hugepages |= is_hugepages(name);
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    for (name, value) in sorted(check.map(&resources["requests"], &requests_path)) {
        let field = format!("{requests_path}[{name}]");
        container_resource_name(check, name, &field);
        let Some(request) = quantity(check, value, &field) else {
            continue;
        };
        quantity_value(check, name, &request, &field);
        match limits.get(name) {
            Some(Some(limit)) => {
                let order = request.cmp_value(limit);
                if order.is_ne() && !overcommit_allowed(name) {
                    let detail = format!("must be equal to {name} limit of {limit}");
                    check.invalid(&requests_path, &quote(&request.to_string()), &detail);
                } else if order.is_gt() {
                    let detail = format!("must be less than or equal to {name} limit of {limit}");
                    check.invalid(&requests_path, &quote(&request.to_string()), &detail);
                }
            }
            Some(None) => {}
            None if !overcommit_allowed(name) => check.required(
                &limits_path,
                "Limit must be set for non overcommitable resources",
            ),
            None => {}
        }
        hugepages |= is_hugepages(name);
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    if hugepages && !cpu_or_memory {
        check.forbidden(path, "HugePages require cpu or memory");
    }
}

/// Lifecycle hooks and probes, where a container may have them.
fn lifecycle_and_probes(check: &mut Check, container: &Value, at: &str, grace: Option<i64>) {
    let lifecycle = &container["lifecycle"];
    if check.walkable(lifecycle, &format!("{at}.lifecycle")) {
        for hook in ["postStart", "preStop"] {
            let handler = &lifecycle[hook];
            if !handler.is_null() {
                let keys = ["exec", "httpGet", "tcpSocket", "sleep"];
                handler_of(
                    check,
                    handler,
                    &format!("{at}.lifecycle.{hook}"),
                    grace,
                    &keys,
                );
            }
        }
    }
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let probe_value = &container[kind];
        let path = format!("{at}.{kind}");
        if probe_value.is_null() || !check.walkable(probe_value, &path) {
            continue;
        }
        probe(check, probe_value, &path, grace);
        let success = format!("{path}.successThreshold");
        let threshold = probe_value["successThreshold"].as_i64().unwrap_or(1);
        if kind != "readinessProbe" && threshold != 1 {
            check.invalid(&success, &threshold.to_string(), "must be 1");
        }
        let probe_grace = &probe_value["terminationGracePeriodSeconds"];
        if kind == "readinessProbe" && !probe_grace.is_null() {
            check.invalid(
                &format!("{path}.terminationGracePeriodSeconds"),
                &go_value(probe_grace),
                "must not be set for readinessProbes",
            );
        }
    }
}

/// `validateProbe`.
fn probe(check: &mut Check, probe: &Value, path: &str, grace: Option<i64>) {
    handler_of(
        check,
        probe,
        path,
        grace,
        &["exec", "httpGet", "tcpSocket", "grpc"],
    );
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        check.non_negative(&probe[field], &format!("{path}.{field}"));
    }
    let field = format!("{path}.terminationGracePeriodSeconds");
    if let Some(n) = check
        .int(&probe["terminationGracePeriodSeconds"], &field)
        .filter(|n| *n <= 0)
    {
        check.invalid(&field, &n.to_string(), "must be greater than 0");
    }
}

/// `validateHandler`: exactly one of `keys`, and that one well formed.
fn handler_of(check: &mut Check, handler: &Value, path: &str, grace: Option<i64>, keys: &[&str]) {
    one_of(
        check,
        handler,
        keys,
        path,
        "handler type",
        |check, key, action, at| match key {
            "exec" => {
                let command = format!("{at}.command");
                if check.list(&action["command"], &command).is_empty() {
                    check.required(&command, "");
                }
            }
            "httpGet" => {
                port_number_or_name(check, &action["port"], &format!("{at}.port"));
                let scheme = check.text(&action["scheme"], &format!("{at}.scheme"));
                if !scheme.is_empty() && !["HTTP", "HTTPS"].contains(&scheme) {
                    check.not_supported(
                        &format!("{at}.scheme"),
                        &quote(scheme),
                        &["HTTP", "HTTPS"],
                    );
                }
                let headers = format!("{at}.httpHeaders");
                for header in check.list(&action["httpHeaders"], &headers) {
                    let name = header["name"].as_str().unwrap_or_default();
                    check.each_invalid(&headers, &quote(name), http_header_name_errors(name));
                }
            }
            "tcpSocket" => port_number_or_name(check, &action["port"], &format!("{at}.port")),
            "grpc" => {
                let port_path = format!("{at}.port");
                let port = check.int(&action["port"], &port_path).unwrap_or(0);
                check.each_invalid(&port_path, &port.to_string(), port_number_errors(port));
            }
            _ => {
                let seconds = check
                    .int(&action["seconds"], &format!("{at}.seconds"))
                    .unwrap_or(0);
                if let Some(grace) = grace.filter(|g| seconds < 0 || seconds > *g) {
                    let detail = format!(
                        "must be non-negative and less than terminationGracePeriodSeconds ({grace})"
                    );
                    check.invalid(at, &seconds.to_string(), &detail);
                }
            }
        },
    );
}

/// Upstream's one-of rule (a volume's source, a probe's handler): the
/// first of `keys` that `object` sets is checked by `chosen` (with its
/// path), each later one is forbidden (`may not specify more than 1
/// {what}`), and none at all is required (`must specify a {what}`).
fn one_of(
    check: &mut Check,
    object: &Value,
    keys: &[&str],
    path: &str,
    what: &str,
    mut chosen: impl FnMut(&mut Check, &str, &Value, &str),
) {
    let mut found = false;
    for &key in keys {
        let value = &object[key];
        if value.is_null() {
            continue;
        }
        let at = format!("{path}.{key}");
        if found {
            check.forbidden(&at, &format!("may not specify more than 1 {what}"));
            continue;
        }
        found = true;
        if check.walkable(value, &at) {
            chosen(check, key, value, &at);
        }
    }
    if !found {
        check.required(path, &format!("must specify a {what}"));
    }
}

/// `ValidatePortNumOrName`: an IntOrString port.
fn port_number_or_name(check: &mut Check, port: &Value, field: &str) {
    match port {
        Value::String(name) => check.each_invalid(field, &quote(name), port_name_errors(name)),
        other => {
            let n = check.int(other, field).unwrap_or(0);
            check.each_invalid(field, &n.to_string(), port_number_errors(n));
        }
    }
}

/// `ValidateTolerations`.
fn tolerations(check: &mut Check, list: &Value, path: &str) {
    for (i, toleration) in check.list(list, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !check.walkable(toleration, &at) {
            continue;
        }
        let key = check.text(&toleration["key"], &format!("{at}.key"));
        let operator = check.text(&toleration["operator"], &format!("{at}.operator"));
        let value = check.text(&toleration["value"], &format!("{at}.value"));
        let effect = check.text(&toleration["effect"], &format!("{at}.effect"));
        let operator_path = format!("{at}.operator");
        if !key.is_empty() {
            check.each_invalid(
                &format!("{at}.key"),
                &quote(key),
                qualified_name_errors(key),
            );
        }
        if key.is_empty() && operator != "Exists" {
            check.invalid(
                &operator_path,
                &quote(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        if !toleration["tolerationSeconds"].is_null() && effect != "NoExecute" {
            check.invalid(
                &format!("{at}.effect"),
                &quote(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        match operator {
            "Equal" | "" => {
                let errors = label_value_errors(value);
                if !errors.is_empty() {
                    check.invalid(&operator_path, &quote(value), &errors.join(";"));
                }
            }
            "Exists" if !value.is_empty() => check.invalid(
                &operator_path,
                &quote(value),
                "value must be empty when `operator` is 'Exists'",
            ),
            "Exists" => {}
            other => check.not_supported(&operator_path, &quote(other), &["Equal", "Exists"]),
        }
        let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if !effect.is_empty() && !effects.contains(&effect) {
            check.not_supported(&format!("{at}.effect"), &quote(effect), &effects);
        }
    }
}

/// `validateAffinity`.
fn affinity(check: &mut Check, affinity: &Value, path: &str) {
    if check.map(affinity, path).is_none() {
        return;
    }
    let node = &affinity["nodeAffinity"];
    let node_path = format!("{path}.nodeAffinity");
    if check.map(node, &node_path).is_some() {
        let required = &node["requiredDuringSchedulingIgnoredDuringExecution"];
        let required_path = format!("{node_path}.requiredDuringSchedulingIgnoredDuringExecution");
        if check.map(required, &required_path).is_some() {
            let terms_path = format!("{required_path}.nodeSelectorTerms");
            let terms = check.list(&required["nodeSelectorTerms"], &terms_path);
            if terms.is_empty() {
                check.required(&terms_path, "must have at least one node selector term");
            }
            for (i, term) in terms.iter().enumerate() {
                node_selector_term(check, term, &format!("{terms_path}[{i}]"), false);
            }
        }
        let preferred_path = format!("{node_path}.preferredDuringSchedulingIgnoredDuringExecution");
        let preferred = &node["preferredDuringSchedulingIgnoredDuringExecution"];
        for (i, term) in check.list(preferred, &preferred_path).iter().enumerate() {
            let at = format!("{preferred_path}[{i}]");
            weight(check, &term["weight"], &format!("{at}.weight"));
            node_selector_term(
                check,
                &term["preference"],
                &format!("{at}.preference"),
                true,
            );
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let pod_path = format!("{path}.{kind}");
        let pod_affinity = &affinity[kind];
        if check.map(pod_affinity, &pod_path).is_none() {
            continue;
        }
        let required_path = format!("{pod_path}.requiredDuringSchedulingIgnoredDuringExecution");
        let required = &pod_affinity["requiredDuringSchedulingIgnoredDuringExecution"];
        for (i, term) in check.list(required, &required_path).iter().enumerate() {
            pod_affinity_term(check, term, &format!("{required_path}[{i}]"));
        }
        let preferred_path = format!("{pod_path}.preferredDuringSchedulingIgnoredDuringExecution");
        let preferred = &pod_affinity["preferredDuringSchedulingIgnoredDuringExecution"];
        for (i, term) in check.list(preferred, &preferred_path).iter().enumerate() {
            let at = format!("{preferred_path}[{i}]");
            weight(check, &term["weight"], &format!("{at}.weight"));
            pod_affinity_term(
                check,
                &term["podAffinityTerm"],
                &format!("{at}.podAffinityTerm"),
            );
        }
    }
}

fn weight(check: &mut Check, value: &Value, field: &str) {
    let weight = check.int(value, field).unwrap_or(0);
    if !(1..=100).contains(&weight) {
        check.invalid(field, &weight.to_string(), "must be in the range 1-100");
    }
}

/// `ValidateNodeSelectorTerm`.
fn node_selector_term(check: &mut Check, term: &Value, path: &str, any_value: bool) {
    if !check.walkable(term, path) {
        return;
    }
    let expressions = format!("{path}.matchExpressions");
    for (i, requirement) in check
        .list(&term["matchExpressions"], &expressions)
        .iter()
        .enumerate()
    {
        let at = format!("{expressions}[{i}]");
        let values_path = format!("{at}.values");
        let values = check.list(&requirement["values"], &values_path);
        let operator = check.text(&requirement["operator"], &format!("{at}.operator"));
        match operator {
            "In" | "NotIn" if values.is_empty() => check.required(
                &values_path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => check.forbidden(
                &values_path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "Gt" | "Lt" if values.len() != 1 => check.required(
                &values_path,
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            other => check.invalid(
                &format!("{at}.operator"),
                &quote(other),
                "not a valid selector operator",
            ),
        }
        let key = check.text(&requirement["key"], &format!("{at}.key"));
        check.each_invalid(
            &format!("{at}.key"),
            &quote(key),
            qualified_name_errors(key),
        );
        if !any_value {
            for (j, value) in values.iter().enumerate() {
                let field = format!("{values_path}[{j}]");
                let value = check.text(value, &field);
                check.each_invalid(&field, &quote(value), label_value_errors(value));
            }
        }
    }
    let fields = format!("{path}.matchFields");
    for (i, requirement) in check.list(&term["matchFields"], &fields).iter().enumerate() {
        let at = format!("{fields}[{i}]");
        let values_path = format!("{at}.values");
        let values = check.list(&requirement["values"], &values_path);
        match check.text(&requirement["operator"], &format!("{at}.operator")) {
            "In" | "NotIn" if values.len() != 1 => check.required(
                &values_path,
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ),
            "In" | "NotIn" => {}
            other => check.invalid(
                &format!("{at}.operator"),
                &quote(other),
                "not a valid selector operator",
            ),
        }
        let key = check.text(&requirement["key"], &format!("{at}.key"));
        if key != "metadata.name" {
            check.invalid(
                &format!("{at}.key"),
                &quote(key),
                "not a valid field selector key",
            );
            continue;
        }
        for (j, value) in values.iter().enumerate() {
            let field = format!("{values_path}[{j}]");
            let value = check.text(value, &field);
            check.each_invalid(&field, &quote(value), subdomain_errors(value));
        }
    }
}

/// `validatePodAffinityTerm`.
fn pod_affinity_term(check: &mut Check, term: &Value, path: &str) {
    if !check.walkable(term, path) {
        return;
    }
    check.label_selector(&term["labelSelector"], &format!("{path}.labelSelector"));
    check.label_selector(
        &term["namespaceSelector"],
        &format!("{path}.namespaceSelector"),
    );
    for namespace in check.list(&term["namespaces"], &format!("{path}.namespaces")) {
        let name = namespace.as_str().unwrap_or_default();
        check.each_invalid(
            &format!("{path}.namespace"),
            &quote(name),
            label_errors(name),
        );
    }
    let key_path = format!("{path}.topologyKey");
    let key = check.text(&term["topologyKey"], &key_path);
    if key.is_empty() {
        check.required(&key_path, "can not be empty");
    }
    check.each_invalid(&key_path, &quote(key), qualified_name_errors(key));
}

/// `validatePodDNSConfig`.
/// An IP address field (upstream's `IsValidIPForLegacyField`), which also
/// takes the IPv4 addresses with leading zeros that Go's parser once did
/// (`010.1.1.1`).
fn ip_address(check: &mut Check, value: &Value, field: &str) {
    let ip = check.text(value, field);
    let sloppy_v4 = || {
        let parts: Vec<&str> = ip.split('.').collect();
        parts.len() == 4
            && parts.iter().all(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok()
            })
    };
    if ip.parse::<IpAddr>().is_err() && !sloppy_v4() {
        check.invalid(
            field,
            &quote(ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
}

/// `spec.hostAliases` (upstream's `ValidateHostAliases`): each `ip` an IP
/// address, each of its `hostnames` a DNS-1123 subdomain.
fn host_aliases(check: &mut Check, aliases: &Value, path: &str) {
    for (i, alias) in check.list(aliases, path).iter().enumerate() {
        ip_address(check, &alias["ip"], &format!("{path}[{i}].ip"));
        let hostnames = format!("{path}[{i}].hostnames");
        for (j, hostname) in check
            .list(&alias["hostnames"], &hostnames)
            .iter()
            .enumerate()
        {
            let field = format!("{hostnames}[{j}]");
            let hostname = check.text(hostname, &field);
            check.each_invalid(&field, &quote(hostname), subdomain_errors(hostname));
        }
    }
}

fn dns_config(check: &mut Check, config: &Value, policy: &str, path: &str) {
    let nameservers_path = format!("{path}.nameservers");
    if policy == "None" {
        if config.is_null() {
            return check.required(path, "must provide `dnsConfig` when `dnsPolicy` is None");
        }
        if check
            .list(&config["nameservers"], &nameservers_path)
            .is_empty()
        {
            return check.required(
                &nameservers_path,
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            );
        }
    }
    if check.map(config, path).is_none() {
        return;
    }
    let nameservers = check.list(&config["nameservers"], &nameservers_path);
    if nameservers.len() > 3 {
        check.invalid(
            &nameservers_path,
            &go_value(&config["nameservers"]),
            "must not have more than 3 nameservers",
        );
    }
    for (i, server) in nameservers.iter().enumerate() {
        ip_address(check, server, &format!("{nameservers_path}[{i}]"));
    }
    let searches_path = format!("{path}.searches");
    if check.list(&config["searches"], &searches_path).len() > 32 {
        check.invalid(
            &searches_path,
            &go_value(&config["searches"]),
            "must not have more than 32 search paths",
        );
    }
    let options_path = format!("{path}.options");
    for (i, option) in check
        .list(&config["options"], &options_path)
        .iter()
        .enumerate()
    {
        if option["name"].as_str().is_none_or(str::is_empty) {
            check.required(&format!("{options_path}[{i}]"), "must not be empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as the apiserver validates it: defaulted as `defaults::apply`
    /// leaves it.
    fn pod_with(spec: Value) -> Value {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": spec});
        crate::strategy::Strategy::defaults(&crate::strategy::Pod, &mut pod);
        pod
    }

    fn messages(spec: Value) -> Vec<String> {
        pod(&pod_with(spec))
            .into_iter()
            .map(|(_, field, message)| format!("{field}: {message}"))
            .collect()
    }

    fn web(extra: Value) -> Value {
        let mut container = json!({"name": "web", "image": "nginx"});
        container
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        container
    }

    #[test]
    fn a_plain_pod_is_valid() {
        assert_eq!(
            messages(json!({"containers": [web(json!({}))]})),
            Vec::<String>::new()
        );
        let full = json!({
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.conf"}]}}],
            "containers": [web(json!({
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 9090, "hostPort": 9090}],
                "env": [{"name": "A", "value": "1"}, {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "X_"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg", "subPath": "a.conf"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}
            }))],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
                         "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}}]}}
        });
        assert_eq!(messages(full), Vec::<String>::new());
    }

    #[test]
    fn volumes_and_mounts_refer_to_each_other() {
        let found = messages(json!({
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                        {"name": "none"}, {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}}],
            "containers": [web(json!({"volumeMounts": [{"name": "x", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}, {"name": "data"}]}))]
        }));
        assert_eq!(
            found,
            [
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2]: Required value: must specify a volume type",
                "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.containers[0].volumeMounts[0].name: Not found: \"x\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
                "spec.containers[0].volumeMounts[2].mountPath: Required value",
            ]
        );
    }

    #[test]
    fn containers_need_unique_names_and_images() {
        let found = messages(json!({
            "containers": [{"name": "web", "image": "nginx"}, {"name": "web"}, {"name": "Web_1", "image": " x"}],
            "initContainers": [{"name": "web", "image": "busybox", "livenessProbe": {"exec": {"command": ["true"]}}}]
        }));
        assert_eq!(
            found,
            [
                "spec.containers[1].image: Required value",
                "spec.containers[1].name: Duplicate value: \"web\"",
                "spec.containers[2].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.initContainers[0].name: Duplicate value: \"web\"",
                "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.containers[2].image: Invalid value: \" x\": must not have leading or trailing whitespace",
            ]
        );
        assert_eq!(messages(json!({})), ["spec.containers: Required value"]);
    }

    #[test]
    fn ports_probes_env_and_resources() {
        let found = messages(json!({"containers": [web(json!({
            "ports": [{"containerPort": 70000, "protocol": "tcp"}, {"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}, {"name": "HTTP", "containerPort": 82}],
            "livenessProbe": {"exec": {"command": ["true"]}, "httpGet": {"port": 80}, "successThreshold": 2, "periodSeconds": -1},
            "readinessProbe": {},
            "env": [{"name": "A=B"}, {"name": "C", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}, {"name": "D", "valueFrom": {}},
                    {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "spec.schedulerName"}}}],
            "resources": {"requests": {"cpu": "2", "memory": "1Gix"}, "limits": {"cpu": "1"}}
        }))]}));
        assert_eq!(
            found,
            [
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[3].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].ports[3].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
                "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                "spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.schedulerName\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"1Gix\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe: Required value: must specify a handler type",
            ]
        );
    }

    #[test]
    fn resources_follow_upstreams_rules() {
        let found = messages(json!({"containers": [web(json!({"resources": {
            "limits": {"example.com/gpu": "500m", "bogus": "1", "memory": "-1"},
            "requests": {"example.com/gpu": "1", "vendor.io/fpga": "1"}
        }}))]}));
        assert_eq!(
            found,
            [
                "spec.containers[0].resources.limits[bogus]: Invalid value: bogus: must be a standard resource type or fully qualified",
                "spec.containers[0].resources.limits[bogus]: Invalid value: bogus: must be a standard resource for containers",
                "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: 500m: must be an integer",
                "spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 500m",
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
            ]
        );
    }

    #[test]
    fn policies_tolerations_and_affinity() {
        let found = messages(json!({
            "containers": [web(json!({}))],
            "restartPolicy": "Sometimes",
            "dnsPolicy": "None",
            "tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"},
                            {"key": "k", "operator": "Maybe", "effect": "NoRun", "tolerationSeconds": 5}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []},
                                           "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {"matchFields": [{"key": "spec.x", "operator": "In", "values": ["a"]}]}}]},
                         "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]}},
            "activeDeadlineSeconds": 0,
            "hostAliases": [{"ip": "10.0.0.300", "hostnames": ["ok.example", "Not_OK"]},
                            {"ip": "010.0.0.1", "hostnames": ["legacy.example"]}]
        }));
        assert_eq!(
            found,
            [
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term",
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100",
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchFields[0].key: Invalid value: \"spec.x\": not a valid field selector key",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Invalid value: \"\": name part must be non-empty",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
                "spec.tolerations[2].effect: Invalid value: \"NoRun\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                "spec.tolerations[2].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
                "spec.tolerations[2].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "spec.hostAliases[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.hostAliases[0].hostnames[1]: Invalid value: \"Not_OK\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ]
        );
    }

    #[test]
    fn host_ports_conflict_and_follow_host_network() {
        let found = messages(json!({
            "hostNetwork": true,
            "containers": [web(json!({"ports": [{"containerPort": 80, "hostPort": 80}, {"containerPort": 81, "hostPort": 82}, {"containerPort": 8080}]})),
                           {"name": "b", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}]
        }));
        assert_eq!(
            found,
            [
                "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//80\"",
                "spec.containers[0].ports[1].hostPort: Invalid value: 82: must match `containerPort` when `hostNetwork` is true",
            ]
        );
    }
}
