//! `skiff trace KIND/NAME`: the timeline of how an object came to be and
//! what it caused — its own writes and those of everything it owns (a
//! Deployment's ReplicaSets and their pods), from the apiserver's audit
//! trail, and the Events about them, one line per step in order. With
//! `--explain`, each step says what that component is and why it acted.

use crate::say;
use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cluster::Cluster;

/// Options of `skiff trace`.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// The object: TYPE/NAME (deploy/web, pod/web-abc-xyz).
    object: String,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
    /// Add a plain sentence per step: who acted, and why.
    #[arg(long)]
    explain: bool,
}

/// One step of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When (RFC 3339).
    pub time: jiff::Timestamp,
    /// Who: `kubectl`, `deployment-controller`, `default-scheduler`, ...
    pub component: String,
    /// What: `create`, `create binding`, `patch status`, `event Scheduled`.
    pub action: String,
    /// On what: `pod/web-abc-xyz`.
    pub object: String,
    /// The resourceVersion written (empty for events).
    pub revision: String,
    /// The event's message, for events.
    pub message: String,
}

/// The component named by a User-Agent: skiff's own components say
/// `skiff/VERSION NAME`; other clients are named by their first word
/// (`kubectl/v1.33.1 (linux/amd64) ...` is kubectl).
pub fn component(user_agent: &str) -> String {
    match user_agent.strip_prefix("skiff/") {
        Some(rest) => rest.split_whitespace().nth(1).unwrap_or("skiff").to_owned(),
        None => user_agent
            .split(['/', ' '])
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    }
}

/// The timeline: the audit records and events about `objects` (by
/// (resource plural, namespace, name) and by uid), from `start` on.
pub fn timeline(
    records: &[Value],
    events: &[Value],
    objects: &HashMap<(String, String), String>,
    uids: &HashSet<String>,
    start: jiff::Timestamp,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for record in records {
        let resource = record["resource"].as_str().unwrap_or_default();
        let (plural, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let name = record["name"].as_str().unwrap_or_default();
        let Some(kind) = objects.get(&(plural.to_owned(), name.to_owned())) else {
            continue;
        };
        let Some(time) = record["time"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        else {
            continue;
        };
        let code = record["code"].as_u64().unwrap_or(0);
        if time < start || !(200..300).contains(&code) {
            continue;
        }
        let verb = record["verb"].as_str().unwrap_or_default();
        steps.push(Step {
            time,
            component: component(record["userAgent"].as_str().unwrap_or_default()),
            action: if subresource.is_empty() {
                verb.to_owned()
            } else {
                format!("{verb} {subresource}")
            },
            object: format!("{kind}/{name}"),
            revision: record["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            message: String::new(),
        });
    }
    for event in events {
        let involved = &event["involvedObject"];
        if !involved["uid"].as_str().is_some_and(|u| uids.contains(u)) {
            continue;
        }
        let time = ["eventTime", "firstTimestamp", "lastTimestamp"]
            .iter()
            .find_map(|k| event[*k].as_str())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let Some(time) = time else { continue };
        steps.push(Step {
            time,
            component: event["source"]["component"]
                .as_str()
                .or(event["reportingComponent"].as_str())
                .unwrap_or("unknown")
                .to_owned(),
            action: format!("event {}", event["reason"].as_str().unwrap_or_default()),
            object: format!(
                "{}/{}",
                involved["kind"].as_str().unwrap_or_default().to_lowercase(),
                involved["name"].as_str().unwrap_or_default()
            ),
            revision: String::new(),
            message: event["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    steps.sort_by_key(|s| s.time);
    steps
}

/// One plain sentence on what a step is and why it happened.
pub fn explain(step: &Step) -> String {
    let kind = step.object.split('/').next().unwrap_or_default();
    let who = step.component.as_str();
    match (who, step.action.as_str(), kind) {
        (_, "create binding", _) => "The scheduler chose a node that passes every filter (resources, taints, selectors) and scores best, and bound the pod to it by POSTing pods/NAME/binding.".into(),
        ("kubelet", "patch status", _) => "The kubelet of the pod's node saw the pod bound to it and reported its progress: containers being created, then running with an IP from the node's pod CIDR, then ready. With the Running status it recorded the Service environment variables the containers started with ({SVC}_SERVICE_HOST, {SVC}_SERVICE_PORT, ... for each Service of the pod's namespace and the kubernetes Service) in the pod's kubelet.skiff.dev/environment annotation; the pod's log shows them first.".into(),
        ("kubelet", "delete", _) => "The kubelet stopped the pod's containers and removed the pod for good, ending its graceful deletion.".into(),
        ("deployment-controller", "create", "replicaset") => "The Deployment controller found no ReplicaSet for the Deployment's pod template and created one, named after the template's hash.".into(),
        ("deployment-controller", "patch", "replicaset") => "The Deployment controller scaled a ReplicaSet, one step of the rollout within maxSurge and maxUnavailable.".into(),
        ("deployment-controller", "patch status", _) => "The Deployment controller wrote the Deployment's status: replica counts and the Available and Progressing conditions that kubectl rollout status reads.".into(),
        ("replicaset-controller", "create", "pod") => "The ReplicaSet controller counted fewer pods than replicas and created this one from the template, owned by the ReplicaSet.".into(),
        ("replicaset-controller", "delete", "pod") => "The ReplicaSet controller counted more pods than replicas and deleted the least useful one.".into(),
        ("replicaset-controller", "patch status", _) => "The ReplicaSet controller wrote how many of its pods exist, are ready and are available.".into(),
        ("generic-garbage-collector", _, _) => "The garbage collector acted on owner references: it deletes what an owner no longer vouches for, or releases it.".into(),
        ("namespace-controller", _, _) => "The namespace controller empties a namespace being deleted, then lets it go.".into(),
        ("endpointslice-controller", _, "endpointslice") => "The EndpointSlice controller keeps the Service's slices listing its selected pods' IPs and ports, ready or not; every node's proxy and the cluster DNS watch them.".into(),
        ("skiff-proxy", "event RulesSynced", _) => format!("A node's proxy (kube-proxy's part) saw the Service's endpoints change and turned them into that node's kernel rules, only the difference: IPVS real servers, nftables chains, or its own sockets; from then on a connection to the ClusterIP on that node reaches one of the pods. {}", step.message),
        (_, "create", _) if !who.ends_with("controller") && !matches!(who, "kubelet" | "default-scheduler") => {
            format!("{who} asked the apiserver to create the {kind}; it was validated, defaulted and stored at resourceVersion {}, and every watcher heard of it.", step.revision)
        }
        (_, action, _) if action.starts_with("event ") => {
            format!("{who} recorded an Event: {}", step.message)
        }
        (_, action, _) => format!("{who} did {action} on the {kind} (resourceVersion {}).", step.revision),
    }
}

fn related(
    root: &Value,
    lists: &[(String, String, Vec<Value>)],
) -> (HashMap<(String, String), String>, HashSet<String>) {
    // Everything owned, transitively, by the root.
    let mut uids: HashSet<String> = root["metadata"]["uid"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut objects = HashMap::new();
    loop {
        let before = uids.len();
        for (_, _, items) in lists {
            for item in items {
                let owned = item["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["uid"].as_str().is_some_and(|u| uids.contains(u)));
                if owned {
                    if let Some(uid) = item["metadata"]["uid"].as_str() {
                        uids.insert(uid.to_owned());
                    }
                }
            }
        }
        if uids.len() == before {
            break;
        }
    }
    for (plural, kind, items) in lists {
        for item in items {
            if item["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| uids.contains(u))
            {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                objects.insert((plural.clone(), name), kind.clone());
            }
        }
    }
    (objects, uids)
}

/// `skiff trace`.
pub async fn run(cluster: &Cluster, args: TraceArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let (kind, name) = args
        .object
        .split_once('/')
        .context("name the object as TYPE/NAME, such as deploy/web")?;
    let resource = catalog.resolve(kind)?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let root = cluster.get(&resource.object(&namespace, name)).await?;
    let mut lists = Vec::new();
    for plural in [
        resource.plural.as_str(),
        "replicasets",
        "replicationcontrollers",
        "pods",
        // A Service owns its slices; the proxies report on the Service.
        "endpointslices",
    ] {
        let r = catalog.resolve(plural)?;
        if lists
            .iter()
            .any(|(p, _, _): &(String, String, Vec<Value>)| *p == r.plural)
        {
            continue;
        }
        let list = cluster.get(&r.collection(Some(&namespace))).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        lists.push((r.plural.clone(), r.singular.clone(), items));
    }
    let (objects, uids) = related(&root, &lists);
    let records = cluster.get("/skiff/v1/audit?since=0").await?;
    let records = records["items"].as_array().cloned().unwrap_or_default();
    let events = cluster
        .get(&format!("/api/v1/namespaces/{namespace}/events"))
        .await?;
    let events = events["items"].as_array().cloned().unwrap_or_default();
    let start = root["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            t.checked_sub(jiff::SignedDuration::from_secs(1))
                .unwrap_or(t)
        })
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let steps = timeline(&records, &events, &objects, &uids, start);
    let Some(first) = steps.first().map(|s| s.time) else {
        eprintln!(
            "no recorded steps for {}/{name} (the audit trail keeps the last 10,000 writes)",
            resource.singular
        );
        return Ok(());
    };
    let mut rows = vec![["OFFSET", "COMPONENT", "ACTION", "OBJECT", "RV"]
        .map(String::from)
        .to_vec()];
    for step in &steps {
        let offset = step.time.duration_since(first).as_secs_f64();
        rows.push(vec![
            format!("+{offset:.3}s"),
            step.component.clone(),
            step.action.clone(),
            step.object.clone(),
            step.revision.clone(),
        ]);
    }
    let widths = crate::get::widths(&rows[0], &rows[1..]);
    say!("{}", crate::get::line(&rows[0], &widths));
    for (row, step) in rows[1..].iter().zip(&steps) {
        say!("{}", crate::get::line(row, &widths).trim_end());
        if args.explain {
            say!("    {}", explain(step));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn components_from_user_agents() {
        assert_eq!(
            component("skiff/0.1.0 default-scheduler"),
            "default-scheduler"
        );
        assert_eq!(
            component("kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0"),
            "kubectl"
        );
        assert_eq!(
            component("OpenAPI-Generator/33.1.0/python"),
            "OpenAPI-Generator"
        );
        assert_eq!(component(""), "unknown");
    }

    #[test]
    fn a_pods_timeline_in_order_with_explanations() {
        let pod = json!({"metadata": {"name": "web-1", "uid": "p1", "ownerReferences": []}});
        let (objects, uids) = related(&pod, &[("pods".into(), "pod".into(), vec![pod.clone()])]);
        let record = |seq: u64, time: &str, agent: &str, verb: &str, resource: &str, rv: &str| {
            json!({"seq": seq, "time": time, "userAgent": agent, "verb": verb, "resource": resource,
                   "namespace": "default", "name": "web-1", "code": 201, "resourceVersion": rv})
        };
        let records = [
            record(
                3,
                "2026-11-23T10:00:00.300Z",
                "skiff/0.1.0 kubelet",
                "patch",
                "pods/status",
                "12",
            ),
            record(
                1,
                "2026-11-23T10:00:00.100Z",
                "skiff/0.1.0 replicaset-controller",
                "create",
                "pods",
                "10",
            ),
            record(
                2,
                "2026-11-23T10:00:00.200Z",
                "skiff/0.1.0 default-scheduler",
                "create",
                "pods/binding",
                "11",
            ),
            json!({"time": "2026-11-23T10:00:00.150Z", "userAgent": "x", "verb": "create", "resource": "pods", "name": "other", "code": 201}),
        ];
        let events = [
            json!({"involvedObject": {"kind": "Pod", "name": "web-1", "uid": "p1"}, "reason": "Scheduled",
            "message": "Successfully assigned default/web-1 to skiff-node-1", "eventTime": "2026-11-23T10:00:00.250Z",
            "source": {"component": "default-scheduler"}}),
        ];
        let start: jiff::Timestamp = "2026-11-23T09:59:59Z".parse().unwrap();
        let steps = timeline(&records, &events, &objects, &uids, start);
        let actions: Vec<(&str, &str)> = steps
            .iter()
            .map(|s| (s.component.as_str(), s.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("replicaset-controller", "create"),
                ("default-scheduler", "create binding"),
                ("default-scheduler", "event Scheduled"),
                ("kubelet", "patch status"),
            ]
        );
        assert!(explain(&steps[1]).starts_with("The scheduler chose a node"));
        assert!(explain(&steps[2]).contains("Successfully assigned"));
        assert!(explain(&steps[3]).starts_with("The kubelet"));
    }
}
