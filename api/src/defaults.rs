//! Defaulting, as upstream's defaulters and default admission plugins do it,
//! so that objects read back look like a real cluster's.

use serde_json::{json, Map, Value};

/// Sets `object[key]` to `value` when it is absent or null.
fn default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// `object[key]`, created as an empty object when absent.
fn child<'a>(object: &'a mut Value, key: &str) -> &'a mut Value {
    default(object, key, Value::Object(Map::new()));
    &mut object[key]
}

/// Calls `f` with each element of the list `object[key]`, if there is one
/// (never creating the key: a null where the client wrote nothing would
/// show up in kubectl's three-way diffs).
fn each(object: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = object.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tagged = name.contains(':') && !name.ends_with(":latest");
    if tagged || image.contains('@') {
        "IfNotPresent"
    } else {
        "Always"
    }
}

fn container(container: &mut Value) {
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    default(
        container,
        "imagePullPolicy",
        json!(image_pull_policy(&image)),
    );
    default(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    default(container, "terminationMessagePolicy", json!("File"));
    default(container, "resources", json!({}));
    each(container, "ports", |port| {
        default(port, "protocol", json!("TCP"))
    });
}

/// A pod spec's defaults (also inside workload templates).
fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    each(spec, "containers", container);
    each(spec, "initContainers", container);
}

/// What a Pod itself gets beyond its spec's defaults: the pod defaulter's
/// service links, and what the ServiceAccount, Priority and
/// DefaultTolerationSeconds admission plugins add.
fn pod_only(spec: &mut Value) {
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "serviceAccountName", json!("default"));
    let account = spec["serviceAccountName"].clone();
    default(spec, "serviceAccount", account);
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    default(spec, "tolerations", json!([]));
    if let Some(tolerations) = spec["tolerations"].as_array_mut() {
        for taint in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !tolerations.iter().any(|t| t["key"] == taint) {
                tolerations.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// The QoS class of a pod: Guaranteed, Burstable or BestEffort.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let resources = |c: &Value, kind: &str| {
        c["resources"][kind]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    };
    if containers
        .iter()
        .all(|c| !resources(c, "requests") && !resources(c, "limits"))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][*r];
            let request = &c["resources"]["requests"][*r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn template(spec: &mut Value) {
    pod_spec(child(child(spec, "template"), "spec"));
}

/// Clears what a client may not set at create: the status of the kinds
/// whose status their controllers own, which start empty (upstream's
/// `PrepareForCreate`; a Pod's then defaults to Pending). Nodes keep theirs: kubelets register
/// with it.
pub fn prepare_for_create(kind: &str, object: &mut Value) {
    const RESET: &[&str] = &[
        "Pod",
        "Service",
        "ReplicationController",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Ingress",
    ];
    if let (true, Some(object)) = (RESET.contains(&kind), object.as_object_mut()) {
        let empty = match kind {
            "Service" => json!({"loadBalancer": {}}),
            _ => json!({}),
        };
        object.insert("status".into(), empty);
    }
}

/// Fills in the defaults of a `kind` object, at create and at update.
pub fn apply(kind: &str, object: &mut Value) {
    match kind {
        "Pod" => {
            let spec = child(object, "spec");
            pod_spec(spec);
            pod_only(spec);
            let qos = qos_class(&object["spec"]);
            let status = child(object, "status");
            default(status, "phase", json!("Pending"));
            default(status, "qosClass", json!(qos));
        }
        "Service" => {
            let spec = child(object, "spec");
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            default(spec, "internalTrafficPolicy", json!("Cluster"));
            let kind = spec["type"].as_str().unwrap_or_default().to_owned();
            if kind == "NodePort" || kind == "LoadBalancer" {
                default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if spec["sessionAffinity"] == "ClientIP" {
                let config = child(spec, "sessionAffinityConfig");
                default(child(config, "clientIP"), "timeoutSeconds", json!(10800));
            }
            each(spec, "ports", |port| {
                default(port, "protocol", json!("TCP"));
                let target = port["port"].clone();
                default(port, "targetPort", target);
            });
        }
        "Deployment" => {
            let spec = child(object, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let rolling = child(strategy, "rollingUpdate");
                default(rolling, "maxSurge", json!("25%"));
                default(rolling, "maxUnavailable", json!("25%"));
            }
            template(spec);
        }
        "ReplicaSet" => {
            let spec = child(object, "spec");
            default(spec, "replicas", json!(1));
            template(spec);
        }
        "ReplicationController" => {
            let spec = child(object, "spec");
            default(spec, "replicas", json!(1));
            let labels = spec["template"]["metadata"]["labels"].clone();
            if !labels.is_null() {
                default(spec, "selector", labels);
            }
            template(spec);
        }
        "DaemonSet" => {
            let spec = child(object, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let rolling = child(strategy, "rollingUpdate");
                default(rolling, "maxUnavailable", json!(1));
                default(rolling, "maxSurge", json!(0));
            }
            template(spec);
        }
        "StatefulSet" => {
            let spec = child(object, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                default(child(strategy, "rollingUpdate"), "partition", json!(0));
            }
            let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
            default(retention, "whenDeleted", json!("Retain"));
            default(retention, "whenScaled", json!("Retain"));
            template(spec);
        }
        "Secret" => default(object, "type", json!("Opaque")),
        "Endpoints" => each(object, "subsets", |subset| {
            each(subset, "ports", |port| {
                default(port, "protocol", json!("TCP"))
            })
        }),
        "EndpointSlice" => each(object, "ports", |port| {
            default(port, "protocol", json!("TCP"))
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_clears_controller_owned_status() {
        let mut deployment = json!({"spec": {}, "status": {"replicas": 9}});
        prepare_for_create("Deployment", &mut deployment);
        assert_eq!(deployment, json!({"spec": {}, "status": {}}));
        let mut node = json!({"status": {"capacity": {"cpu": "8"}}});
        prepare_for_create("Node", &mut node);
        assert_eq!(node["status"]["capacity"]["cpu"], "8");
    }

    #[test]
    fn pods_read_back_like_a_real_clusters() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry.local:5000/app:1.2"}
        ]}});
        apply("Pod", &mut pod);
        let spec = &pod["spec"];
        assert_eq!(
            (spec["restartPolicy"].as_str(), spec["dnsPolicy"].as_str()),
            (Some("Always"), Some("ClusterFirst"))
        );
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(
            (
                pod["status"]["phase"].as_str(),
                pod["status"]["qosClass"].as_str()
            ),
            (Some("Pending"), Some("BestEffort"))
        );
        // Defaulting twice changes nothing more.
        let once = pod.clone();
        apply("Pod", &mut pod);
        assert_eq!(pod, once);
    }

    #[test]
    fn services_and_deployments() {
        let mut svc = json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        apply("Service", &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
        assert_eq!(
            svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        apply("Deployment", &mut deploy);
        let spec = &deploy["spec"];
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(
            (
                spec["replicas"].as_i64(),
                spec["revisionHistoryLimit"].as_i64(),
                spec["progressDeadlineSeconds"].as_i64()
            ),
            (Some(1), Some(10), Some(600))
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        let template = spec["template"]["spec"].as_object().unwrap();
        assert!(
            !template.contains_key("serviceAccountName")
                && !template.contains_key("initContainers"),
            "{template:?}"
        );
        assert!(!spec["template"]["spec"]["containers"][0]
            .as_object()
            .unwrap()
            .contains_key("ports"));
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("Deployment", &mut recreate);
        assert!(recreate["spec"]["strategy"]["rollingUpdate"].is_null());
    }

    #[test]
    fn qos_follows_requests_and_limits() {
        let guaranteed =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        let burstable = json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(qos_class(&burstable), "Burstable");
    }
}
