//! Pods: defaulted as the pod defaulter and the ServiceAccount, Priority
//! and DefaultTolerationSeconds admission plugins leave them, deleted
//! gracefully while a kubelet runs them, bound through `pods/binding`.

use serde_json::{json, Value};

use super::{with_status, Refusal, Strategy};
use crate::defaults::{child, default, pod_spec};
use crate::immutable::Violation;
use crate::specs::Problem;
use crate::table::{age, col, flag, name, or_none, text, Column, S};

/// The Pod strategy.
#[derive(Debug, Clone, Copy)]
pub struct Pod;

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

impl Strategy for Pod {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Ready", S, 0),
            col("Status", S, 0),
            col("Restarts", S, 0),
            col("Age", S, 0),
            col("IP", S, 1),
            col("Node", S, 1),
            col("Nominated Node", S, 1),
            col("Readiness Gates", S, 1),
        ];
        COLUMNS
    }

    fn cells(&self, pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let statuses = pod["status"]["containerStatuses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
        let ready = statuses
            .iter()
            .filter(|s| s["ready"].as_bool() == Some(true))
            .count();
        let restarts: i64 = statuses
            .iter()
            .filter_map(|s| s["restartCount"].as_i64())
            .sum();
        let waiting = statuses.iter().find_map(|s| {
            s["state"]["waiting"]["reason"]
                .as_str()
                .or(s["state"]["terminated"]["reason"].as_str())
        });
        let status = if pod["metadata"]["deletionTimestamp"].is_string() {
            "Terminating"
        } else {
            waiting
                .or(pod["status"]["reason"].as_str())
                .or(pod["status"]["phase"].as_str())
                .unwrap_or("Pending")
        };
        vec![
            name(pod),
            json!(format!("{ready}/{total}")),
            json!(status),
            json!(restarts.to_string()),
            age(pod, now),
            json!(or_none(text(&pod["status"]["podIP"]))),
            json!(or_none(text(&pod["spec"]["nodeName"]))),
            json!(or_none(text(&pod["status"]["nominatedNodeName"]))),
            json!("<none>"),
        ]
    }

    fn fields(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    fn field(&self, pod: &Value, field: &str) -> Option<String> {
        match field {
            "spec.hostNetwork" => Some(flag(&pod["spec"]["hostNetwork"])),
            // The first of `podIPs`, as upstream's `ToSelectableFields`.
            "status.podIP" => pod["status"]["podIPs"][0]["ip"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    /// Upstream's podStatusStrategy: kubelets may record labels and
    /// annotations in the same write as the status.
    fn prepare_for_status_update(&self, old: &Value, new: &mut Value) {
        let mut only = with_status(old, new);
        if let (Some(meta), Some(sent)) = (
            only.get_mut("metadata").and_then(Value::as_object_mut),
            new.get("metadata"),
        ) {
            for field in ["labels", "annotations"] {
                match sent.get(field) {
                    Some(value) => meta.insert(field.into(), value.clone()),
                    None => meta.remove(field),
                };
            }
        }
        *new = only;
    }

    fn defaults(&self, object: &mut Value) {
        let Some(spec) = child(object, "spec") else {
            return;
        };
        pod_spec(spec);
        pod_only(spec);
        let qos = qos_class(&object["spec"]);
        if let Some(status) = child(object, "status") {
            default(status, "phase", json!("Pending"));
            default(status, "qosClass", json!(qos));
        }
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::pod(object)
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Violation> {
        crate::immutable::pod(old, new)
    }

    /// A pod bound to a node and still running has its kubelet stop it
    /// within the grace period asked for, else its
    /// `terminationGracePeriodSeconds` (default 30); an unbound or finished
    /// pod goes at once.
    fn grace_period(&self, object: &Value, asked: Option<i64>) -> i64 {
        let bound = object["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if !bound || finished {
            return 0;
        }
        let grace = asked
            .or(object["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        // Upstream: a negative grace period means 1 second.
        if grace < 0 {
            1
        } else {
            grace
        }
    }

    fn bind(&self, object: &Value, binding: &Value, now: &str) -> Result<Value, Refusal> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let Some(node) = binding["target"]["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(Refusal::Invalid(
                "FieldValueRequired",
                "target.name".into(),
                "Required value".into(),
            ));
        };
        if !object["metadata"]["deletionTimestamp"].is_null() {
            return Err(Refusal::Conflict("the pod is being deleted".into()));
        }
        if let Some(bound) = object["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            return Err(Refusal::Conflict(format!(
                "pod {name} is already assigned to node \"{bound}\""
            )));
        }
        let mut pod = object.clone();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Err(Refusal::BadRequest("the pod has no spec".into()));
        };
        spec.insert("nodeName".into(), json!(node));
        let condition = json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now });
        if let Some(status) = child(&mut pod, "status") {
            let mut conditions: Vec<Value> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] != "PodScheduled")
                .cloned()
                .collect();
            conditions.push(condition);
            status["conditions"] = json!(conditions);
        }
        Ok(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry.local:5000/app:1.2"}
        ]}, "status": {"phase": "Running"}})
    }

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Pod,
            object: pod(),
            resets_status: true,
            status_subresource: true,
            spec_update: json!({"spec": {"activeDeadlineSeconds": 60}}),
            immutable: vec![
                (json!({"spec": {"restartPolicy": "Never"}}), "spec"),
                (json!({"spec": {"hostname": "h"}}), "spec"),
            ],
        });
    }

    #[test]
    fn pods_read_back_like_a_real_clusters() {
        let mut pod = pod();
        Pod.prepare_for_create(&mut pod);
        Pod.defaults(&mut pod);
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
    }

    #[test]
    fn wrong_typed_specs_are_left_for_validation() {
        for mut pod in [
            json!({"spec": "x"}),
            json!({"spec": {"containers": 5}, "status": "y"}),
            json!({"spec": {"tolerations": "t", "containers": ["c"]}}),
            json!(7),
        ] {
            let before = pod.clone();
            Pod.prepare_for_create(&mut pod);
            Pod.defaults(&mut pod);
            Pod.validate(&pod);
            Pod.validate_update(&before, &pod);
        }
    }

    #[test]
    fn qos_follows_requests_and_limits() {
        let guaranteed =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        let burstable = json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(qos_class(&burstable), "Burstable");
    }

    #[test]
    fn a_status_write_may_record_labels_but_not_the_spec() {
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1"}, "ownerReferences": [1]}, "spec": {"nodeName": "n"}, "status": {}});
        let mut new = json!({"metadata": {"name": "p", "labels": {"a": "2"}, "ownerReferences": []}, "spec": {"nodeName": "m"}, "status": {"phase": "Running"}});
        Pod.prepare_for_status_update(&old, &mut new);
        assert_eq!(new["metadata"]["labels"]["a"], "2");
        assert_eq!(new["metadata"]["ownerReferences"], json!([1]));
        assert_eq!(new["spec"]["nodeName"], "n");
        assert_eq!(new["status"]["phase"], "Running");
    }

    #[test]
    fn binding_assigns_a_node_once() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}});
        let bound = Pod
            .bind(&pod, &json!({"target": {"name": "n1"}}), "now")
            .unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["status"]["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(bound["status"]["conditions"][0]["status"], "True");
        assert!(matches!(
            Pod.bind(&bound, &json!({"target": {"name": "n2"}}), "now"),
            Err(Refusal::Conflict(m)) if m == "pod p is already assigned to node \"n1\""
        ));
        assert!(matches!(
            Pod.bind(&pod, &json!({"target": {}}), "now"),
            Err(Refusal::Invalid("FieldValueRequired", _, _))
        ));
    }
}
