//! The Deployment controller: a Deployment owns one ReplicaSet per pod
//! template it has had (named `{deployment}-{pod-template-hash}`), and
//! rolls from the old ones to the new one — all at once (Recreate) or a
//! few pods at a time within `maxSurge` and `maxUnavailable`
//! (RollingUpdate) — keeping `revisionHistoryLimit` old ReplicaSets for
//! `kubectl rollout undo`, and reporting the Available and Progressing
//! conditions `kubectl rollout status` reads. The decisions ([`plan`],
//! [`status`]) are pure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use skiff_runtime::events::{reference, Type};
use skiff_runtime::informers::index;
use skiff_runtime::{Informer, Informers};

use crate::control::{ApiControl, Control};
use crate::workqueue::{enqueue, key_of, WorkQueue};

/// The label that ties a ReplicaSet and its pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision annotation of Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The hash of a pod template (FNV-1a of its JSON without zero values,
/// with the collision count), written as upstream writes it: the decimal digits mapped onto
/// letters and digits that never spell words.
pub fn template_hash(template: &PodTemplateSpec, collisions: i32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let text = without_zeros(serde_json::to_value(template).expect("JSON")).to_string();
    for byte in text
        .bytes()
        .chain(collisions.to_string().bytes().filter(|_| collisions > 0))
    {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// Whether a ReplicaSet's template is the Deployment's (its hash label
/// aside), compared as upstream compares them: semantically, where an
/// unset field and its zero value are the same (a template written over
/// protobuf carries `stdin: false`; the same one in JSON leaves it out).
pub fn same_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let Some(mut theirs) = rs.spec.as_ref().and_then(|s| s.template.clone()) else {
        return false;
    };
    if let Some(labels) = theirs.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let semantic = |t: &PodTemplateSpec| without_zeros(serde_json::to_value(t).unwrap_or_default());
    semantic(&theirs) == semantic(template)
}

/// A value without its zero fields (false, 0, "", null, {}, []).
pub fn without_zeros(value: Value) -> Value {
    let zero = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_zeros(v)))
                .filter(|(_, v)| !zero(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_zeros).collect()),
        other => other,
    }
}

/// `maxSurge` or `maxUnavailable` of `replicas`: a number, or a percentage
/// rounded up (surge) or down (unavailable).
pub fn resolve(value: Option<&IntOrString>, replicas: i32, round_up: bool, default: &str) -> i32 {
    let percent = |p: &str| -> Option<i32> {
        let p: f64 = p.strip_suffix('%')?.parse().ok()?;
        let exact = p * f64::from(replicas) / 100.0;
        Some(if round_up {
            exact.ceil()
        } else {
            exact.floor()
        } as i32)
    };
    match value {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => percent(s).unwrap_or(0),
        None => percent(default).unwrap_or(0),
    }
}

/// What one ReplicaSet looks like to the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`.
    pub current: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl Set {
    /// The planner's view of a ReplicaSet. Its available pods count at
    /// most up to its replicas: pods beyond them are going, even when its
    /// status (written after the scale-down) does not say so yet, and
    /// counting them would let the next step take too many at once.
    pub fn of(rs: &ReplicaSet) -> Self {
        let status = rs.status.clone().unwrap_or_default();
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        Set {
            name: rs.name_any(),
            replicas,
            current: status.replicas,
            available: status.available_replicas.unwrap_or(0).min(replicas),
        }
    }
}

/// What a sync does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Create the new ReplicaSet with this many replicas.
    pub create: Option<i32>,
    /// Scale these ReplicaSets to these counts.
    pub scale: Vec<(String, i32)>,
}

/// The rollout strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Old pods all go before new ones come.
    Recreate,
    /// At most `surge` pods above `replicas`, at most `unavailable` below.
    RollingUpdate {
        /// maxSurge, resolved.
        surge: i32,
        /// maxUnavailable, resolved.
        unavailable: i32,
    },
}

/// The next step of a rollout to `replicas` with `new` (None: not created
/// yet) and the `old` ReplicaSets, oldest first.
pub fn plan(
    replicas: i32,
    strategy: Strategy,
    paused: bool,
    new: Option<&Set>,
    old: &[Set],
) -> Plan {
    let mut plan = Plan::default();
    let old_active: i32 = old.iter().map(|s| s.replicas).sum();
    if paused {
        // Paused: scaling only, never a rollout step.
        if let (Some(new), 0) = (new, old_active) {
            if new.replicas != replicas {
                plan.scale.push((new.name.clone(), replicas));
            }
        }
        return plan;
    }
    match strategy {
        Strategy::Recreate => {
            if old_active > 0 {
                plan.scale.extend(
                    old.iter()
                        .filter(|s| s.replicas > 0)
                        .map(|s| (s.name.clone(), 0)),
                );
                return plan;
            }
            if old.iter().any(|s| s.current > 0) {
                return plan; // Wait for the old pods to be gone.
            }
            match new {
                None => plan.create = Some(replicas),
                Some(new) if new.replicas != replicas => {
                    plan.scale.push((new.name.clone(), replicas))
                }
                Some(_) => {}
            }
        }
        Strategy::RollingUpdate { surge, unavailable } => {
            let new_replicas = new.map_or(0, |n| n.replicas);
            let total: i32 = old_active + new_replicas;
            let target = if new_replicas >= replicas {
                replicas
            } else {
                let room = (replicas + surge - total).max(0);
                new_replicas + room.min(replicas - new_replicas)
            };
            match new {
                None => {
                    plan.create = Some(target);
                    return plan;
                }
                Some(new) if target != new.replicas => {
                    plan.scale.push((new.name.clone(), target));
                    if target > new.replicas {
                        return plan;
                    }
                }
                Some(_) => {}
            }
            // Scale old ReplicaSets down as far as availability allows:
            // first their unavailable pods, then available ones.
            let new = new.expect("handled above");
            let new_target = plan.scale.first().map_or(new.replicas, |(_, r)| *r);
            let min_available = replicas - unavailable;
            let new_unavailable = new_target - new.available;
            let all = old_active + new_target;
            let mut room = all - min_available - new_unavailable;
            if room <= 0 {
                return plan;
            }
            let mut targets: Vec<i32> = old.iter().map(|s| s.replicas).collect();
            for (set, target) in old.iter().zip(targets.iter_mut()) {
                let unhealthy = (*target - set.available).max(0).min(room);
                *target -= unhealthy;
                room -= unhealthy;
            }
            let available: i32 = old.iter().map(|s| s.available).sum::<i32>() + new.available;
            let mut down = available - min_available;
            for target in targets.iter_mut() {
                if down <= 0 {
                    break;
                }
                let step = (*target).min(down);
                *target -= step;
                down -= step;
            }
            for (set, target) in old.iter().zip(targets) {
                if target != set.replicas {
                    plan.scale.push((set.name.clone(), target));
                }
            }
        }
    }
    plan
}

/// The old ReplicaSets to delete beyond the history limit: the empty
/// ones, oldest revision first.
pub fn beyond_history(old: &[(i64, Set)], limit: i32) -> Vec<String> {
    let mut empty: Vec<&(i64, Set)> = old
        .iter()
        .filter(|(_, s)| s.replicas == 0 && s.current == 0)
        .collect();
    empty.sort_by_key(|(revision, _)| *revision);
    let excess = empty.len().saturating_sub(limit.max(0) as usize);
    empty
        .into_iter()
        .take(excess)
        .map(|(_, s)| s.name.clone())
        .collect()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": now, "lastTransitionTime": now})
}

/// The Deployment's status after this sync: counts over its ReplicaSets,
/// and the Available and Progressing conditions. `previous` conditions
/// keep their transition times while their status holds; `progress`
/// marks that the rollout moved in this sync.
#[allow(clippy::too_many_arguments)]
pub fn status(
    deployment: &Deployment,
    new: Option<(&str, &ReplicaSet)>,
    all: &[&ReplicaSet],
    unavailable_allowed: i32,
    progress: Option<String>,
    now: jiff::Timestamp,
) -> Value {
    let spec = deployment.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let current = sum(|rs| rs.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    });
    let available = sum(|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    });
    let updated = new.map_or(0, |(_, rs)| rs.status.as_ref().map_or(0, |s| s.replicas));
    let updated_available = new.map_or(0, |(_, rs)| {
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    });
    let stamp = format!("{now:.0}");
    let previous: Vec<Value> = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| serde_json::to_value(c).expect("JSON"))
        .collect();
    let keep_times = |mut next: Value| -> Value {
        if let Some(old) = previous.iter().find(|c| c["type"] == next["type"]) {
            if old["status"] == next["status"] {
                next["lastTransitionTime"] = old["lastTransitionTime"].clone();
                if old["reason"] == next["reason"] && old["message"] == next["message"] {
                    next["lastUpdateTime"] = old["lastUpdateTime"].clone();
                }
            }
        }
        next
    };
    let available_condition = if available >= replicas - unavailable_allowed {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &stamp,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &stamp,
        )
    };
    let name = new.map_or(String::new(), |(n, _)| n.to_owned());
    let complete = new.is_some()
        && updated == replicas
        && updated_available == replicas
        && current == replicas;
    let deadline = spec.progress_deadline_seconds.unwrap_or(600);
    let last_progress = previous
        .iter()
        .find(|c| c["type"] == "Progressing")
        .and_then(|c| c["lastUpdateTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let moved = progress.is_some();
    let progressing = if spec.paused == Some(true) {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &stamp,
        )
    } else if complete {
        let message = format!("ReplicaSet \"{name}\" has successfully progressed.");
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &message,
            &stamp,
        )
    } else if let Some(message) = progress {
        let reason = if message.starts_with("Created") {
            "NewReplicaSetCreated"
        } else {
            "ReplicaSetUpdated"
        };
        condition("Progressing", "True", reason, &message, &stamp)
    } else if last_progress.is_some_and(|t| now.duration_since(t).as_secs() > i64::from(deadline)) {
        let message = format!("ReplicaSet \"{name}\" has timed out progressing.");
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &message,
            &stamp,
        )
    } else {
        match previous.iter().find(|c| c["type"] == "Progressing") {
            Some(old) => old.clone(),
            None => {
                let message = format!("ReplicaSet \"{name}\" is progressing.");
                condition("Progressing", "True", "ReplicaSetUpdated", &message, &stamp)
            }
        }
    };
    // Progress made now is news, even when the words are the same.
    let mut progressing = keep_times(progressing);
    if moved {
        progressing["lastUpdateTime"] = json!(stamp);
    }
    let mut status = json!({
        "observedGeneration": deployment.metadata.generation.unwrap_or(0),
        "replicas": current,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [keep_times(available_condition), progressing],
    });
    if let Some(collisions) = deployment.status.as_ref().and_then(|s| s.collision_count) {
        status["collisionCount"] = json!(collisions);
    }
    status
}

struct Controller<C> {
    control: C,
    deployments: Informer<Deployment>,
    /// Every ReplicaSet, indexed by controller uid.
    sets: Informer<ReplicaSet>,
    queue: WorkQueue,
    /// Where Deployments and ReplicaSets are served.
    resources: Resources,
}

struct Resources {
    deployments: ApiResource,
    sets: ApiResource,
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Runs the Deployment controller, reading from the process's shared
/// `informers` and writing through `client`.
pub fn run(
    client: Client,
    informers: &Informers,
    workers: usize,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let deployments = informers.get::<Deployment>();
    let sets = informers.get::<ReplicaSet>();
    async move {
        let queue = WorkQueue::default();
        let control = ApiControl::new(client, "deployment-controller");
        let controller = Arc::new(Controller::new(control, deployments, sets, queue));
        let queue = controller.queue.clone();
        enqueue(&controller.deployments, queue.clone(), |d| Some(key_of(d)));
        enqueue(&controller.sets, queue.clone(), |rs| {
            let owner = rs
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")?;
            Some(format!(
                "{}/{}",
                rs.namespace().unwrap_or_default(),
                owner.name
            ))
        });
        crate::workqueue::spawn_workers(controller, queue, workers, "deployment-controller");
    }
}

impl<C: Control> crate::workqueue::Sync for Controller<C> {
    type Error = kube::Error;

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        Controller::sync(self, key).await
    }
}

impl<C: Control> Controller<C> {
    /// A controller writing through `control`, reading these informers
    /// (given the index it reads).
    fn new(
        control: C,
        deployments: Informer<Deployment>,
        sets: Informer<ReplicaSet>,
        queue: WorkQueue,
    ) -> Self {
        sets.add_index(index::CONTROLLER, index::controller_uid);
        Controller {
            control,
            deployments,
            sets,
            queue,
            resources: Resources {
                deployments: ApiResource::erase::<Deployment>(&()),
                sets: ApiResource::erase::<ReplicaSet>(&()),
            },
        }
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or_default();
        let Some(deployment) = self.deployments.get(namespace, name) else {
            return Ok(());
        };
        if deployment.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let uid = deployment.uid().unwrap_or_default();
        let spec = deployment.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        // Its own ReplicaSets, from the controller-uid index.
        let mut owned: Vec<Arc<ReplicaSet>> = self
            .sets
            .by_index(index::CONTROLLER, &uid)
            .into_iter()
            .filter(|rs| rs.namespace().as_deref() == Some(namespace))
            .collect();
        owned.sort_by_key(|rs| {
            (
                rs.metadata.creation_timestamp.clone().map(|t| t.0),
                rs.name_any(),
            )
        });
        let new = owned
            .iter()
            .find(|rs| same_template(rs, &spec.template))
            .cloned();
        let old: Vec<Arc<ReplicaSet>> = owned
            .iter()
            .filter(|rs| new.as_ref().is_none_or(|n| n.uid() != rs.uid()))
            .cloned()
            .collect();
        let strategy = spec.strategy.clone().unwrap_or_default();
        let rolling = strategy.rolling_update.unwrap_or_default();
        let surge = resolve(rolling.max_surge.as_ref(), replicas, true, "25%");
        let mut unavailable = resolve(rolling.max_unavailable.as_ref(), replicas, false, "25%");
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let strategy = match strategy.type_.as_deref() {
            Some("Recreate") => Strategy::Recreate,
            _ => Strategy::RollingUpdate { surge, unavailable },
        };
        let old_sets: Vec<Set> = old.iter().map(|rs| Set::of(rs)).collect();
        let paused = spec.paused == Some(true);
        let plan = plan(
            replicas,
            strategy,
            paused,
            new.as_ref().map(|rs| Set::of(rs)).as_ref(),
            &old_sets,
        );
        let max_old = old.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        let resources = &self.resources;
        let mut progress = None;
        let mut new_name = new.as_ref().map(|rs| rs.name_any());
        if let Some(count) = plan.create {
            let created = self.create_set(&deployment, count, max_old + 1).await?;
            progress = Some(format!("Created new replica set \"{created}\""));
            new_name = Some(created);
        }
        for (set, to) in &plan.scale {
            let from = owned
                .iter()
                .find(|rs| rs.name_any() == *set)
                .map_or(0, |rs| Set::of(rs).replicas);
            let patch = json!({"spec": {"replicas": to}, "metadata": {"annotations": {
                "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                "deployment.kubernetes.io/max-replicas": (replicas + surge).to_string(),
            }}});
            self.control
                .patch(&resources.sets, namespace, set, patch)
                .await?;
            let direction = if *to > from { "up" } else { "down" };
            let message = format!("Scaled {direction} replica set {set} from {from} to {to}");
            self.control.record(
                reference(deployment.as_ref()),
                Type::Normal,
                "ScalingReplicaSet",
                message,
            );
            if let Some(new_name) = &new_name {
                progress = Some(format!("ReplicaSet \"{new_name}\" is progressing."));
            }
        }
        // The new ReplicaSet carries the newest revision (also after a
        // rollback to an old template), and so does the Deployment.
        let current_revision = match &new {
            Some(rs) if revision(rs) <= max_old => {
                let patch =
                    json!({"metadata": {"annotations": {REVISION: (max_old + 1).to_string()}}});
                self.control
                    .patch(&resources.sets, namespace, &rs.name_any(), patch)
                    .await?;
                max_old + 1
            }
            Some(rs) => revision(rs),
            None => max_old + 1,
        };
        if deployment.annotations().get(REVISION) != Some(&current_revision.to_string()) {
            let patch =
                json!({"metadata": {"annotations": {REVISION: current_revision.to_string()}}});
            self.control
                .patch(&resources.deployments, namespace, name, patch)
                .await?;
        }
        let history: Vec<(i64, Set)> = old.iter().map(|rs| (revision(rs), Set::of(rs))).collect();
        for doomed in beyond_history(&history, spec.revision_history_limit.unwrap_or(10)) {
            match self
                .control
                .delete(&resources.sets, namespace, &doomed)
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let all: Vec<&ReplicaSet> = owned.iter().map(|rs| rs.as_ref()).collect();
        let new_pair = new
            .as_ref()
            .map(|rs| (rs.metadata.name.as_deref().unwrap_or_default(), rs.as_ref()));
        let next = status(
            &deployment,
            new_pair,
            &all,
            unavailable,
            progress,
            jiff::Timestamp::now(),
        );
        let current = serde_json::to_value(&deployment.status).unwrap_or_default();
        if current != next {
            let patch = json!({"status": next});
            self.control
                .patch_status(&resources.deployments, namespace, name, patch)
                .await?;
        }
        let complete = next["conditions"][1]["reason"] == "NewReplicaSetAvailable";
        if !complete && !paused {
            // Come back to check the progress deadline.
            self.queue
                .add_after(key.to_owned(), Duration::from_secs(10));
        }
        Ok(())
    }

    /// Creates the ReplicaSet of the Deployment's current template.
    async fn create_set(
        &self,
        deployment: &Deployment,
        replicas: i32,
        revision: i64,
    ) -> Result<String, kube::Error> {
        let spec = deployment.spec.clone().unwrap_or_default();
        let uid = deployment.uid().unwrap_or_default();
        let collisions = deployment
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let hash = template_hash(&spec.template, collisions);
        let name = format!("{}-{hash}", deployment.name_any());
        let mut template = serde_json::to_value(&spec.template).expect("JSON");
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = serde_json::to_value(&spec.selector).expect("JSON");
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut labels: BTreeMap<String, String> = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let surge = resolve(
            spec.strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.max_surge.as_ref()),
            spec.replicas.unwrap_or(1),
            true,
            "25%",
        );
        let set = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": spec.replicas.unwrap_or(1).to_string(),
                    "deployment.kubernetes.io/max-replicas": (spec.replicas.unwrap_or(1) + surge).to_string(),
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.name_any(),
                    "uid": deployment.uid(), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
                "selector": selector,
                "template": template,
            },
        });
        let namespace = deployment.namespace().unwrap_or_default();
        let resources = &self.resources;
        match self.control.create(&resources.sets, &namespace, set).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                match self.sets.get(&namespace, &name) {
                    // Ours, made by a sync whose watch event is still on
                    // its way: nothing to create.
                    Some(rs)
                        if rs.owner_references().iter().any(|o| o.uid == uid)
                            && same_template(&rs, &spec.template) =>
                    {
                        return Ok(name)
                    }
                    // Not cached yet: decide once it is.
                    None => return Err(kube::Error::Api(s)),
                    Some(_) => {}
                }
                // A ReplicaSet of that name with another template: count
                // the collision so the next hash differs.
                let patch = json!({"status": {"collisionCount": collisions + 1}});
                let name = deployment.name_any();
                self.control
                    .patch_status(&resources.deployments, &namespace, &name, patch)
                    .await?;
                return Err(kube::Error::Api(s));
            }
            Err(e) => return Err(e),
        }
        let message = format!("Scaled up replica set {name} from 0 to {replicas}");
        self.control.record(
            reference(deployment),
            Type::Normal,
            "ScalingReplicaSet",
            message,
        );
        Ok(name)
    }
}

#[cfg(test)]
mod tests;
