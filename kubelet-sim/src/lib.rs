//! Simulated kubelets: many node agents in one process, each an API
//! client as a real kubelet is. They register their Nodes, renew their
//! Leases in `kube-node-lease` every 10 s, and walk the pods bound to them
//! through the lifecycle a kubelet reports (ContainerCreating, Running with
//! a pod IP from the node's CIDR, ready, crash-looping, finished), honouring
//! graceful deletion: a pod marked for deletion gets its Killing event, its
//! containers stop, and the agent deletes it for good. Each container starts
//! with the Service environment variables a kubelet gives it
//! ([`skiff_api::service_env`], from one Services cache for all the nodes
//! of the process), recorded in the pod for its log to show.
//!
//! What runs the containers is a [`runtime::Runtime`]: [`sim::Sim`], where
//! what the pods do is set per pod by annotations ([`lifecycle`]), or
//! [`process::Process`], real processes in a real pod network.

pub mod lifecycle;
pub mod logs;
pub mod node;
pub mod podlog;
pub mod process;
pub mod runtime;
pub mod server;
pub mod sim;
pub mod spdy;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_api::service_env;
use skiff_runtime::events::{reference, Recorder, Type};
use skiff_runtime::{Event, Informer, Informers};

use crate::lifecycle::{after_exit, status, State};
use crate::node::{Capacity, IpPool, Registration, SimNode};
use crate::runtime::{Change, Runtime};

/// How often a node renews its Lease, as a kubelet does.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// The node a pod is bound to ("" before it is).
pub(crate) fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// How soon a pod whose containers cannot be configured is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// Requests in flight at once when registering many nodes.
const CONCURRENCY: usize = 32;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or could not be reached.
    #[error("the API: {0}")]
    Api(#[from] kube::Error),
    /// The kubelet server cannot listen.
    #[error("the kubelet server cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The runtime could not get the nodes ready.
    #[error("the {0} runtime: {1}")]
    Runtime(&'static str, String),
}

/// Which nodes to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Node names are `{prefix}-{index}`.
    pub name_prefix: String,
    /// The first index (1-based) and how many.
    pub first: u32,
    /// How many nodes this process runs.
    pub count: u32,
    /// How many nodes the cluster has in all (for the CIDR layout).
    pub total: u32,
    /// What each node offers.
    pub capacity: Capacity,
    /// What runs the pods.
    pub runtime: Choice,
    /// Where the kubelet server listens (port 0: any free port).
    pub kubelet_listen: std::net::SocketAddr,
    /// The bearer token the kubelet server asks of its callers (the
    /// cluster's, which the apiserver holds); None asks none.
    pub kubelet_token: Option<String>,
    /// Each node's proxy, if the nodes run one.
    pub proxy: Option<Proxy>,
    /// Told once the process runtime's nodes' wire is up, so that the
    /// control plane can listen on it ([`process::network::CONTROL_PLANE`]).
    pub wired: Option<Arc<tokio::sync::Notify>>,
}

/// How the nodes' proxies run.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Their mode (None: each detects its own).
    pub mode: Option<skiff_proxy::run::Mode>,
    /// The IPVS scheduler.
    pub scheduler: String,
    /// At least this long between two syncs of a proxy.
    pub min_sync_period: Duration,
}

/// Which runtime runs the pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Choice {
    /// Simulated pods: no processes.
    #[default]
    Sim,
    /// Real processes, keeping their state (logs, files) under `root`.
    Process {
        /// The runtime's directory.
        root: std::path::PathBuf,
        /// Whether the namespace Skiff runs in gets routes to the pods.
        host_routes: bool,
    },
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name_prefix: "skiff-node".into(),
            first: 1,
            count: 3,
            total: 3,
            capacity: Capacity::default(),
            runtime: Choice::Sim,
            kubelet_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            kubelet_token: None,
            proxy: None,
            wired: None,
        }
    }
}

/// A pod this process runs.
struct Running {
    /// Its lifecycle or termination task, if one runs.
    task: Option<tokio::task::AbortHandle>,
    ip: Option<String>,
    terminating: bool,
}

struct Agents {
    client: Client,
    runtime: Arc<dyn Runtime>,
    /// Every pod of the cluster: the process's shared cache.
    pods: Informer<Pod>,
    /// What the kubelet server asks of its callers.
    token: Option<String>,
    events: Recorder,
    /// Every Service of the cluster: the process's shared cache.
    services: Informer<Service>,
    nodes: HashMap<String, SimNode>,
    state: Mutex<AgentState>,
}

#[derive(Default)]
struct AgentState {
    pools: HashMap<String, IpPool>,
    pods: HashMap<String, Running>,
}

/// Registers the nodes, then runs them: one subscription to the process's
/// shared pod informer for all of them, writing through `client`.
pub fn run(
    client: Client,
    informers: &Informers,
    options: Options,
) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static {
    let services = informers.get::<Service>();
    let pods = informers.get::<Pod>();
    let informers_of_proxy = (services.clone(), informers.get::<EndpointSlice>());
    async move {
        let nodes: Vec<SimNode> = (options.first..options.first + options.count)
            .map(|i| SimNode::new(&options.name_prefix, i, options.total.max(options.count)))
            .collect();
        let events = Recorder::new(client.clone(), "kubelet", None);
        let runtime: Arc<dyn Runtime> = match &options.runtime {
            Choice::Sim => Arc::new(sim::Sim {
                events: events.clone(),
            }),
            Choice::Process { root, host_routes } => Arc::new(process::Process::new(
                client.clone(),
                events.clone(),
                root.clone(),
                &options.capacity,
                *host_routes,
            )),
        };
        runtime
            .prepare(&nodes)
            .await
            .map_err(|e| Error::Runtime(runtime.name(), e))?;
        if let (Some(wired), Choice::Process { .. }) = (&options.wired, &options.runtime) {
            wired.notify_one();
        }
        let listener = tokio::net::TcpListener::bind(options.kubelet_listen)
            .await
            .map_err(|e| Error::Listen(options.kubelet_listen, e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Listen(options.kubelet_listen, e))?;
        let host = match address.ip().is_unspecified() {
            true => "127.0.0.1".to_string(),
            false => address.ip().to_string(),
        };
        let registration = Registration {
            capacity: options.capacity.clone(),
            runtime: runtime.name().into(),
            kubelet: (host, address.port()),
        };
        register(&client, &nodes, &registration).await?;
        tokio::spawn(renew_leases(client.clone(), nodes.clone()));
        if let Some(proxy) = &options.proxy {
            let processes = matches!(options.runtime, Choice::Process { .. });
            start_proxies(
                &client,
                informers_of_proxy.clone(),
                &nodes,
                proxy,
                processes,
            );
        }
        let agents = Arc::new(Agents {
            runtime,
            pods: pods.clone(),
            token: options.kubelet_token.clone(),
            events,
            services,
            client,
            nodes: nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            state: Mutex::default(),
        });
        let serving = axum::serve(listener, server::router(agents.clone()));
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the kubelet server stopped");
            }
        });
        let mut events = pods.subscribe();
        while let Some(event) = events.recv().await {
            match event {
                Event::Added(pod) | Event::Updated { new: pod, .. } => agents.seen(pod),
                Event::Deleted(pod) => agents.gone(&pod),
                Event::Synced => {}
            }
        }
        Ok(())
    }
}

/// Starts each node's proxy, on the process's shared Service and
/// EndpointSlice informers: with real pods in the node's network
/// namespace, else (one node, a mode the user named) in the namespace
/// this process runs in.
fn start_proxies(
    client: &Client,
    (services, slices): (Informer<Service>, Informer<EndpointSlice>),
    nodes: &[SimNode],
    proxy: &Proxy,
    processes: bool,
) {
    for node in nodes {
        let namespace = processes.then(|| process::network::node_namespace(node));
        let config = proxy_config(
            client,
            &node.name,
            node.host_ip.parse().ok(),
            proxy,
            namespace,
        );
        tokio::spawn(skiff_proxy::run::run(
            services.clone(),
            slices.clone(),
            config,
        ));
    }
}

/// The configuration of the proxy of node `name`, whose node ports
/// answer on `address`, programming the network namespace `namespace`
/// (None: this process's own), recording its Events through `client`.
pub fn proxy_config(
    client: &Client,
    name: &str,
    address: Option<std::net::Ipv4Addr>,
    proxy: &Proxy,
    namespace: Option<String>,
) -> skiff_proxy::run::Config {
    skiff_proxy::run::Config {
        node: skiff_proxy::model::Node {
            name: name.to_owned(),
            addresses: address.into_iter().collect(),
        },
        mode: proxy.mode,
        scheduler: proxy.scheduler.clone(),
        namespace,
        min_sync_period: proxy.min_sync_period,
        resync_period: Duration::from_secs(3600),
        events: Some(Recorder::new(
            client.clone(),
            skiff_proxy::run::COMPONENT,
            Some(name.to_owned()),
        )),
    }
}

/// Creates each Node, or brings an existing one's status up to date.
async fn register(
    client: &Client,
    nodes: &[SimNode],
    registration: &Registration,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = skiff_runtime::now();
    let objects: Vec<(String, serde_json::Value)> = nodes
        .iter()
        .map(|node| (node.name.clone(), node.object(registration, &now)))
        .collect();
    futures::stream::iter(objects)
        .map(|(name, object)| {
            let api = api.clone();
            async move {
                let created: Result<Node, _> = api
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(object.clone()).expect("a Node"),
                    )
                    .await;
                match created {
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        // Its kubelet's address may have changed.
                        let annotations =
                            json!({"metadata": {"annotations": object["metadata"]["annotations"]}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(annotations))
                            .await?;
                        let patch = Patch::Merge(json!({"status": object["status"]}));
                        api.patch_status(&name, &PatchParams::default(), &patch)
                            .await?;
                        Ok(())
                    }
                    other => other.map(|_| ()),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Renews every node's Lease every [`LEASE_RENEWAL`].
async fn renew_leases(client: Client, nodes: Vec<SimNode>) {
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let mut tick = tokio::time::interval(LEASE_RENEWAL);
    loop {
        tick.tick().await;
        let now = format!("{:.6}", jiff::Timestamp::now());
        let leases: Vec<(String, serde_json::Value)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.lease(&now)))
            .collect();
        futures::stream::iter(leases)
            .for_each_concurrent(CONCURRENCY, |(name, lease)| {
                let api = api.clone();
                async move {
                    let patch = Patch::Merge(json!({"spec": lease["spec"]}));
                    if api
                        .patch(&name, &PatchParams::default(), &patch)
                        .await
                        .is_err()
                    {
                        let lease: Lease = serde_json::from_value(lease).expect("a Lease");
                        let _ = api.create(&PostParams::default(), &lease).await;
                    }
                }
            })
            .await;
    }
}

impl Agents {
    /// A pod bound to one of the nodes was added or changed.
    fn seen(self: &Arc<Self>, pod: Arc<Pod>) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        if !self.nodes.contains_key(&node) {
            return;
        }
        let uid = pod.uid().unwrap_or_default();
        let mut state = self.state.lock().expect("agent state");
        if pod.metadata.deletion_timestamp.is_some() {
            let entry = state.pods.entry(uid).or_insert(Running {
                task: None,
                ip: None,
                terminating: false,
            });
            if !entry.terminating {
                entry.terminating = true;
                if let Some(task) = entry.task.take() {
                    task.abort();
                }
                entry.task = Some(tokio::spawn(self.clone().terminate(pod)).abort_handle());
            }
            return;
        }
        if state.pods.contains_key(&uid) {
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        let known_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        let sim = &self.nodes[&node];
        let pool = state.pools.entry(node.clone()).or_default();
        if let Some(ip) = &known_ip {
            pool.mark(sim, ip);
        }
        let carry_on = match phase.as_deref() {
            Some("Succeeded" | "Failed") => true,
            Some("Running") => self.runtime.pods_outlive_the_agent(),
            _ => false,
        };
        if carry_on && known_ip.is_some() {
            // Started before this process did: carry on as it is.
            state.pods.insert(
                uid,
                Running {
                    task: None,
                    ip: known_ip,
                    terminating: false,
                },
            );
            return;
        }
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let ip = match (host_network, known_ip) {
            (true, _) => Some(sim.host_ip.clone()),
            (false, Some(ip)) => Some(ip),
            (false, None) => pool.allocate(sim),
        };
        let task = Some(tokio::spawn(self.clone().live(pod, node, ip.clone())).abort_handle());
        state.pods.insert(
            uid,
            Running {
                task,
                ip,
                terminating: false,
            },
        );
    }

    /// A pod was removed: whatever of it still runs stops at once.
    fn gone(self: &Arc<Self>, pod: &Arc<Pod>) {
        let agents = self.clone();
        let stopped = pod.clone();
        tokio::spawn(async move { agents.runtime.stop(&stopped, Duration::ZERO).await });
        let mut state = self.state.lock().expect("agent state");
        let Some(running) = state.pods.remove(&pod.uid().unwrap_or_default()) else {
            return;
        };
        if let Some(task) = running.task {
            task.abort();
        }
        let node = node_of(pod);
        if let (Some(ip), Some(sim)) = (running.ip, self.nodes.get(node)) {
            state
                .pools
                .entry(node.to_owned())
                .or_default()
                .release(sim, &ip);
        }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }

    /// Writes the pod's status for `state`, with `environment` (the
    /// [`podlog::ENVIRONMENT`] record) on its annotations in the same
    /// write when given.
    async fn write(
        &self,
        pod: &Pod,
        state: &State,
        ip: &str,
        started: &str,
        environment: Option<&str>,
    ) -> Result<(), kube::Error> {
        let host = &self.nodes[node_of(pod)].host_ip;
        let now = skiff_runtime::now();
        let status = status(self.runtime.name(), pod, state, host, ip, started, &now);
        let mut patch = json!({"status": status});
        if let Some(environment) = environment {
            patch["metadata"] = json!({"annotations": {podlog::ENVIRONMENT: environment}});
        }
        let patch = Patch::Merge(patch);
        self.api(pod)
            .patch_status(&pod.name_any(), &PatchParams::default(), &patch)
            .await
            .map(|_| ())
    }

    /// The Service variables each container of `pod` starts with now. As
    /// a kubelet, it waits for the Services to have been listed once.
    async fn service_variables(&self, pod: &Pod) -> Vec<(String, Vec<(String, String)>)> {
        self.services.wait_synced().await;
        let services = self.services.list();
        pod.spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .map(|c| {
                let variables =
                    service_env::for_container(pod, c, services.iter().map(Arc::as_ref));
                (c.name.clone(), variables)
            })
            .collect()
    }

    fn event(&self, pod: &Pod, kind: Type, reason: &str, message: String) {
        self.events.record(reference(pod), kind, reason, message);
    }

    /// Walks a newly bound pod through its life.
    async fn live(self: Arc<Self>, pod: Arc<Pod>, node: String, ip: Option<String>) {
        let Some(ip) = ip else {
            let message = format!("node {node} has no pod IP left in its CIDR");
            self.event(&pod, Type::Warning, "FailedCreatePodSandBox", message);
            return;
        };
        let sim = &self.nodes[&node];
        let started = skiff_runtime::now();
        if self
            .write(&pod, &State::Creating, &ip, &started, None)
            .await
            .is_err()
        {
            return;
        }
        if let Err(e) = self.runtime.sandbox(&pod, sim, &ip).await {
            let message = format!("Failed to create pod sandbox: {e}");
            self.event(&pod, Type::Warning, "FailedCreatePodSandBox", message);
            return;
        }
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_default();
        let mut restarts = 0;
        let mut recorded = None;
        let mut last = None;
        loop {
            // The variables the containers start with, recorded with the
            // Running status when they differ from the last start's.
            let variables = self.service_variables(&pod).await;
            let environment = podlog::record(&variables);
            let record = (recorded.as_ref() != Some(&environment)).then_some(environment.as_str());
            let mut running = match self
                .runtime
                .start(&pod, sim, &ip, &variables, restarts)
                .await
            {
                Ok(running) => running,
                Err(refused) => {
                    // Tried again while the pod exists, as a kubelet's sync.
                    let message = refused.message;
                    self.event(&pod, Type::Warning, "Failed", format!("Error: {message}"));
                    let reason = refused.reason.to_string();
                    let waiting = State::Waiting { reason, message };
                    if self
                        .write(&pod, &waiting, &ip, &started, None)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(CONFIG_RETRY).await;
                    continue;
                }
            };
            for c in &containers {
                let image = c.image.clone().unwrap_or_default();
                if restarts == 0 {
                    let pulled = format!("Container image \"{image}\" already present on machine");
                    self.event(&pod, Type::Normal, "Pulled", pulled);
                }
                self.event(
                    &pod,
                    Type::Normal,
                    "Created",
                    format!("Created container: {}", c.name),
                );
                self.event(
                    &pod,
                    Type::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
            }
            let since = skiff_runtime::now();
            let state = |ready| State::Running {
                ready,
                restarts,
                since: since.clone(),
                last: last.clone(),
            };
            if self
                .write(&pod, &state(running.ready()), &ip, &started, record)
                .await
                .is_err()
            {
                return;
            }
            recorded = Some(environment);
            let exit = loop {
                match running.next().await {
                    Change::Ready(ready) => {
                        if self
                            .write(&pod, &state(ready), &ip, &started, None)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Change::Exited(exit) => break exit,
                }
            };
            last = Some((exit, skiff_runtime::now()));
            let next = after_exit(&policy, exit, restarts);
            if self.write(&pod, &next, &ip, &started, None).await.is_err() {
                return;
            }
            let State::BackOff { delay, .. } = next else {
                return;
            };
            for c in &containers {
                let message = format!(
                    "Back-off restarting failed container {} in pod {}",
                    c.name,
                    pod.name_any()
                );
                self.event(&pod, Type::Warning, "BackOff", message);
            }
            tokio::time::sleep(delay).await;
            restarts += 1;
        }
    }

    /// Stops a pod marked for deletion and deletes it for good.
    async fn terminate(self: Arc<Self>, pod: Arc<Pod>) {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(0)
            .max(0) as u64;
        for c in pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
        {
            self.event(
                &pod,
                Type::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
        }
        self.runtime.stop(&pod, Duration::from_secs(grace)).await;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        // Its finalizers, if any, hold it until they go; a failed call is
        // tried again.
        for attempt in 0..5u32 {
            match self.api(&pod).delete(&pod.name_any(), &params).await {
                Ok(_) | Err(kube::Error::Api(_)) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
    }
}
