//! The workload verbs: `scale`, `rollout status|history|undo|restart|pause|
//! resume`, `logs`, `cordon` and `uncordon`, doing what kubectl's do.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cluster::{request, Cluster, ResourceType};
use crate::say;

/// The revision annotation of Deployments and their ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Options of `skiff scale`.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// TYPE/NAME: deploy/web, rs/web-abc, rc/db.
    object: String,
    /// The new number of replicas.
    #[arg(long)]
    replicas: u32,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
}

/// `skiff rollout` subcommands.
#[derive(clap::Subcommand)]
pub enum Rollout {
    /// Wait until the rollout is done.
    Status(RolloutArgs),
    /// List the revisions.
    History(RolloutArgs),
    /// Go back to the previous (or `--to-revision`) template.
    Undo(RolloutArgs),
    /// Replace every pod, by stamping the template with the time.
    Restart(RolloutArgs),
    /// Stop rolling out template changes.
    Pause(RolloutArgs),
    /// Roll out again.
    Resume(RolloutArgs),
}

/// Options of the rollout subcommands.
#[derive(clap::Args)]
pub struct RolloutArgs {
    /// deployment/NAME (or deploy/NAME).
    object: String,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
    /// `undo`: the revision to go back to [default: the previous one].
    #[arg(long)]
    to_revision: Option<i64>,
    /// `status`: give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Options of `skiff logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// A pod, or TYPE/NAME of something that owns pods (deploy/web).
    object: String,
    /// The container [default: the only one].
    #[arg(short, long)]
    container: Option<String>,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Options of `skiff cordon` and `skiff uncordon`.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node.
    node: String,
}

fn split(object: &str) -> Result<(&str, &str)> {
    object
        .split_once('/')
        .with_context(|| format!("name the object as TYPE/NAME, not {object:?}"))
}

async fn merge_patch(cluster: &Cluster, path: &str, patch: &Value) -> Result<Value> {
    cluster
        .send(request(
            http::Method::PATCH,
            path,
            Some(patch),
            Some("application/merge-patch+json"),
        )?)
        .await
}

/// `skiff scale`.
pub async fn scale(cluster: &Cluster, args: ScaleArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let (kind, name) = split(&args.object)?;
    let resource = catalog.resolve(kind)?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let path = format!("{}/scale", resource.object(&namespace, name));
    merge_patch(
        cluster,
        &path,
        &json!({"spec": {"replicas": args.replicas}}),
    )
    .await?;
    say!("{} scaled", resource.qualified(name));
    Ok(())
}

/// What `rollout status` makes of a Deployment: done, or what it waits for
/// (kubectl's words), or a failure.
pub fn rollout_state(deployment: &Value) -> Result<Option<String>, String> {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(0);
    let status = &deployment["status"];
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Ok(Some(
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing");
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let count = |field: &str| status[field].as_i64().unwrap_or(0);
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, total, available) = (
        count("updatedReplicas"),
        count("replicas"),
        count("availableReplicas"),
    );
    Ok(if updated < replicas {
        Some(format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."))
    } else if total > updated {
        Some(format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", total - updated))
    } else if available < updated {
        Some(format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."))
    } else {
        None
    })
}

/// The ReplicaSets a Deployment owns, with their revisions, oldest first.
async fn revisions(
    cluster: &Cluster,
    catalog_rs: &ResourceType,
    namespace: &str,
    deployment: &Value,
) -> Result<Vec<(i64, Value)>> {
    let uid = deployment["metadata"]["uid"].as_str().unwrap_or_default();
    let list = cluster.get(&catalog_rs.collection(Some(namespace))).await?;
    let mut owned: Vec<(i64, Value)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid)
        })
        .map(|rs| {
            let revision = rs["metadata"]["annotations"][REVISION]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            (revision, rs.clone())
        })
        .collect();
    owned.sort_by_key(|(revision, _)| *revision);
    Ok(owned)
}

/// `skiff rollout ...`.
pub async fn rollout(cluster: &Cluster, command: Rollout) -> Result<()> {
    let (verb, args) = match command {
        Rollout::Status(a) => ("status", a),
        Rollout::History(a) => ("history", a),
        Rollout::Undo(a) => ("undo", a),
        Rollout::Restart(a) => ("restart", a),
        Rollout::Pause(a) => ("pause", a),
        Rollout::Resume(a) => ("resume", a),
    };
    let catalog = cluster.catalog().await?;
    let (kind, name) = split(&args.object)?;
    let resource = catalog.resolve(kind)?;
    if resource.kind != "Deployment" {
        bail!(
            "rollout is supported on deployments, not {}",
            resource.plural
        );
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let path = resource.object(&namespace, name);
    let qualified = resource.qualified(name);
    // The Deployment and its ReplicaSets by revision (history and undo).
    let history = || async {
        let deployment = cluster.get(&path).await?;
        let sets = revisions(
            cluster,
            catalog.resolve("replicasets")?,
            &namespace,
            &deployment,
        )
        .await?;
        anyhow::Ok((deployment, sets))
    };
    match verb {
        "status" => {
            let deadline = Instant::now() + Duration::from_secs(args.timeout);
            let mut last = String::new();
            loop {
                let deployment = cluster.get(&path).await?;
                match rollout_state(&deployment).map_err(anyhow::Error::msg)? {
                    None => {
                        say!("deployment {name:?} successfully rolled out");
                        return Ok(());
                    }
                    Some(waiting) => {
                        if waiting != last {
                            say!("{waiting}");
                            last = waiting;
                        }
                    }
                }
                if Instant::now() > deadline {
                    bail!("timed out waiting for the condition");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        "history" => {
            let (_, sets) = history().await?;
            say!("{qualified}");
            say!("REVISION  CHANGE-CAUSE");
            for (revision, rs) in sets {
                let cause = rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
                    .as_str()
                    .unwrap_or("<none>");
                say!("{revision:<9} {cause}");
            }
        }
        "undo" => {
            let (deployment, sets) = history().await?;
            let current = deployment["metadata"]["annotations"][REVISION]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0);
            let target = match args.to_revision {
                Some(revision) => sets.iter().find(|(r, _)| *r == revision),
                None => sets.iter().rev().find(|(r, _)| *r < current),
            };
            let Some((_, rs)) = target else {
                bail!("no rollout history found for {qualified} to go back to");
            };
            let mut template = rs["spec"]["template"].clone();
            if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
                labels.remove("pod-template-hash");
            }
            merge_patch(cluster, &path, &json!({"spec": {"template": template}})).await?;
            say!("{qualified} rolled back");
        }
        "restart" => {
            let now = format!("{:.0}", jiff::Timestamp::now());
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
            merge_patch(cluster, &path, &patch).await?;
            say!("{qualified} restarted");
        }
        paused => {
            let pause = paused == "pause";
            merge_patch(cluster, &path, &json!({"spec": {"paused": pause}})).await?;
            say!("{qualified} {}", if pause { "paused" } else { "resumed" });
        }
    }
    Ok(())
}

/// `skiff logs`: a pod's log, or one of the pods of an owner.
pub async fn logs(cluster: &Cluster, args: LogsArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let pods = catalog.resolve("pods")?;
    let pod = match args.object.split_once('/') {
        None => args.object.clone(),
        Some((kind, name)) if catalog.resolve(kind)?.kind == "Pod" => name.to_owned(),
        Some((kind, name)) => {
            // A pod whose owners lead to the named object.
            let owner = cluster
                .get(&catalog.resolve(kind)?.object(&namespace, name))
                .await?;
            let mut uids = vec![owner["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned()];
            let sets = cluster
                .get(&catalog.resolve("replicasets")?.collection(Some(&namespace)))
                .await?;
            for rs in sets["items"].as_array().into_iter().flatten() {
                let owned = rs["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["uid"] == uids[0]);
                if owned {
                    uids.push(
                        rs["metadata"]["uid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
            let list = cluster.get(&pods.collection(Some(&namespace))).await?;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| {
                    p["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|o| {
                            o["uid"]
                                .as_str()
                                .is_some_and(|u| uids.iter().any(|x| x == u))
                        })
                })
                .and_then(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                .with_context(|| format!("no pods found for {kind}/{name}"))?
        }
    };
    let mut path = format!("{}/log", pods.object(&namespace, &pod));
    if let Some(container) = &args.container {
        path.push_str(&format!("?container={container}"));
    }
    let request = http::Request::builder().uri(path).body(Vec::new())?;
    let text = cluster.client.request_text(request).await?;
    crate::write_out(format_args!("{text}"));
    Ok(())
}

/// `skiff cordon` (`unschedulable`) and `skiff uncordon`.
pub async fn cordon(cluster: &Cluster, args: NodeArgs, unschedulable: bool) -> Result<()> {
    let path = format!("/api/v1/nodes/{}", args.node);
    merge_patch(
        cluster,
        &path,
        &json!({"spec": {"unschedulable": unschedulable}}),
    )
    .await?;
    say!(
        "node/{} {}",
        args.node,
        if unschedulable {
            "cordoned"
        } else {
            "uncordoned"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_status_reads_the_deployment_as_kubectl_does() {
        let deployment = |generation: i64, status: Value| json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3}, "status": status});
        let waiting = |d: &Value| rollout_state(d).unwrap().unwrap();
        assert_eq!(
            waiting(&deployment(2, json!({"observedGeneration": 1}))),
            "Waiting for deployment spec update to be observed..."
        );
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 3}),
        );
        assert_eq!(waiting(&d), "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...");
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 4}),
        );
        assert_eq!(waiting(&d), "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...");
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(waiting(&d), "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...");
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(rollout_state(&d), Ok(None));
        let stuck = deployment(
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert!(rollout_state(&stuck).is_err());
    }
}
