//! How the CLI verbs reach a cluster: the kubeconfig (`--kubeconfig`, then
//! `$KUBECONFIG`, then the one `skiff server` writes into its default data
//! directory), the resource types the server serves (from discovery, so
//! short names and kinds resolve as kubectl resolves them), and requests
//! by path.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// The kubeconfig to use: the flag, then the first file of `$KUBECONFIG`,
/// then `<default data dir>/kubeconfig`.
pub fn kubeconfig_path(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        if let Some(first) = std::env::split_paths(&list).next() {
            return Ok(first);
        }
    }
    Ok(crate::server::default_data_dir()?.join("kubeconfig"))
}

/// A connection to the cluster: the client and the kubeconfig's namespace.
pub struct Cluster {
    /// The API client.
    pub client: kube::Client,
    /// The namespace of the kubeconfig's context (else `default`).
    pub default_namespace: String,
}

impl Cluster {
    /// Connects with the kubeconfig `kubeconfig_path(flag)` names.
    pub async fn connect(flag: Option<PathBuf>) -> Result<Cluster> {
        let config = config(flag).await?;
        let default_namespace = config.default_namespace.clone();
        Ok(Cluster {
            client: client_as(&config, "skiff-cli")?,
            default_namespace,
        })
    }

    /// The types the server serves, from discovery.
    pub async fn catalog(&self) -> Result<Catalog> {
        let mut types = Vec::new();
        let core = self.client.list_core_api_resources("v1").await?;
        types.extend(from_list("", "v1", core));
        for group in self.client.list_api_groups().await?.groups {
            let Some(version) = group
                .preferred_version
                .or(group.versions.into_iter().next())
            else {
                continue;
            };
            let list = self
                .client
                .list_api_group_resources(&version.group_version)
                .await?;
            types.extend(from_list(&group.name, &version.version, list));
        }
        Ok(Catalog(types))
    }

    /// Sends a request and parses the JSON answer.
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> Result<Value> {
        let text = self.client.request_text(request).await?;
        serde_json::from_str(&text).context("the server answered something other than JSON")
    }

    /// POSTs `object` to the collection at `path`; answers what was made.
    pub async fn create(&self, path: &str, object: &Value) -> Result<Value> {
        let request = request(
            http::Method::POST,
            path,
            Some(object),
            Some("application/json"),
        )?;
        self.send(request).await
    }

    /// GETs `path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(request(http::Method::GET, path, None, None)?)
            .await
    }
}

/// The client configuration the kubeconfig `kubeconfig_path(flag)` gives.
pub async fn config(flag: Option<PathBuf>) -> Result<kube::Config> {
    let path = kubeconfig_path(flag)?;
    let kubeconfig = Kubeconfig::read_from(&path).with_context(|| {
        format!(
            "cannot read the kubeconfig {} (is `skiff server` running? pass --kubeconfig)",
            path.display()
        )
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("the kubeconfig {} is unusable", path.display()))
}

/// `config` with a User-Agent that names `component`
/// (`skiff/0.1.0 replicaset-controller`), which the audit trail records
/// and `skiff trace` reads.
fn named(config: &kube::Config, component: &str) -> Result<kube::Config> {
    let mut config = config.clone();
    let agent = format!("skiff/{} {component}", env!("CARGO_PKG_VERSION"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&agent).context("a component name")?,
    ));
    Ok(config)
}

/// A client of the server `config` names, that names itself `component`.
pub fn client_as(config: &kube::Config, component: &str) -> Result<kube::Client> {
    kube::Client::try_from(named(config, component)?).context("cannot build the API client")
}

/// Where a component's client sends its requests.
#[derive(Clone)]
pub enum Transport {
    /// Over HTTPS, to the server the kubeconfig names.
    Network(kube::Config),
    /// Into this process's own apiserver: the same router, middleware,
    /// authentication and handlers as a remote client's request meets,
    /// without the socket, TLS and HTTP/1.1 framing in between (kube's
    /// client speaks HTTP/1.1 only, one connection per request in flight:
    /// over loopback a 10,000-pod rollout opened a thousand connections and
    /// spent a fifth of its CPU on them).
    InProcess(kube::Config, axum::Router),
}

impl Transport {
    /// The bearer token of the kubeconfig: what the node agents' kubelet
    /// servers ask the apiserver for.
    pub fn token(&self) -> Option<String> {
        use secrecy::ExposeSecret;
        let (Transport::Network(config) | Transport::InProcess(config, _)) = self;
        config
            .auth_info
            .token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    }

    /// A client that names itself `component`.
    pub fn client(&self, component: &str) -> Result<kube::Client> {
        match self {
            Transport::Network(config) => client_as(config, component),
            Transport::InProcess(config, router) => {
                use kube::client::ConfigExt;
                let config = named(config, component)?;
                let service = tower::ServiceBuilder::new()
                    .layer(config.base_uri_layer())
                    .option_layer(config.auth_layer()?)
                    .layer(config.extra_headers_layer()?)
                    .map_err(|never: std::convert::Infallible| -> tower::BoxError {
                        match never {}
                    })
                    .service(router.clone());
                Ok(kube::Client::new(service, config.default_namespace))
            }
        }
    }
}

/// A request to `path`, with a JSON body of `content_type` when given.
pub fn request(
    method: http::Method,
    path: &str,
    body: Option<&Value>,
    content_type: Option<&str>,
) -> Result<http::Request<Vec<u8>>> {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, content_type);
    }
    let body = match body {
        Some(body) => serde_json::to_vec(body)?,
        None => Vec::new(),
    };
    Ok(builder.body(body)?)
}

fn from_list(
    group: &str,
    version: &str,
    list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<ResourceType> {
    list.resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_lowercase()
            } else {
                r.singular_name
            },
            plural: r.name,
            kind: r.kind,
            namespaced: r.namespaced,
            short_names: r.short_names.unwrap_or_default(),
        })
        .collect()
}

/// A served resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for core.
    pub group: String,
    /// Version served.
    pub version: String,
    /// Plural resource name: `deployments`.
    pub plural: String,
    /// Singular name: `deployment`.
    pub singular: String,
    /// Kind: `Deployment`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names: `deploy`.
    pub short_names: Vec<String>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection's path, in `namespace` when the type is namespaced
    /// (`None`: across all namespaces).
    pub fn collection(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(namespace) => format!("{base}/namespaces/{namespace}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }

    /// One object's path.
    pub fn object(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(Some(namespace)))
    }

    /// How kubectl names an object of this type: `deployment.apps/web`.
    pub fn qualified(&self, name: &str) -> String {
        match self.group.as_str() {
            "" => format!("{}/{name}", self.singular),
            group => format!("{}.{group}/{name}", self.singular),
        }
    }
}

/// The served types.
pub struct Catalog(pub Vec<ResourceType>);

impl Catalog {
    /// The type a user means by `name`: a plural, singular, short name or
    /// kind, optionally qualified by its group (`deployments.apps`).
    pub fn resolve(&self, name: &str) -> Result<&ResourceType> {
        let lower = name.to_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((base, group)) => (base, Some(group)),
            None => (lower.as_str(), None),
        };
        self.0
            .iter()
            .filter(|t| group.is_none_or(|g| t.group == g))
            .find(|t| {
                t.plural == base
                    || t.singular == base
                    || t.kind.to_lowercase() == base
                    || t.short_names.iter().any(|s| s == base)
            })
            .ok_or_else(|| anyhow!("the server doesn't have a resource type \"{name}\""))
    }

    /// The type of a manifest's object, from its apiVersion and kind.
    pub fn for_object(&self, object: &Value) -> Result<&ResourceType> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            bail!("an object without apiVersion and kind cannot be sent");
        }
        self.0
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .ok_or_else(|| anyhow!("no matches for kind \"{kind}\" in version \"{api_version}\""))
    }
}

/// The server's `Status` behind a failed call, if that is what failed.
fn status(error: &anyhow::Error) -> Option<&kube::core::Status> {
    error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.as_ref()),
            _ => None,
        })
}

/// Whether the call failed because the object does not exist.
pub fn is_not_found(error: &anyhow::Error) -> bool {
    status(error).is_some_and(|s| s.code == 404)
}

/// The one line kubectl prints for a failed call: for the server's
/// `Status`, "Error from server (Reason): message".
pub fn error_line(error: &anyhow::Error) -> String {
    match status(error) {
        Some(status) if !status.reason.is_empty() => {
            format!("Error from server ({}): {}", status.reason, status.message)
        }
        Some(status) => format!("Error from server ({}): {}", status.code, status.message),
        None => format!("error: {error:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let t = |group: &str, plural: &str, kind: &str, short: &[&str]| ResourceType {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced: kind != "Node",
            short_names: short.iter().map(|s| s.to_string()).collect(),
        };
        Catalog(vec![
            t("", "pods", "Pod", &["po"]),
            t("", "nodes", "Node", &["no"]),
            t("apps", "deployments", "Deployment", &["deploy"]),
            t("discovery.k8s.io", "endpointslices", "EndpointSlice", &[]),
        ])
    }

    #[test]
    fn resolves_names_as_kubectl_does() {
        let catalog = catalog();
        for name in ["pods", "pod", "po", "Pod", "PODS"] {
            assert_eq!(catalog.resolve(name).unwrap().plural, "pods", "{name}");
        }
        for name in [
            "deploy",
            "deployments.apps",
            "deployment.apps",
            "Deployment",
        ] {
            assert_eq!(catalog.resolve(name).unwrap().plural, "deployments");
        }
        assert_eq!(
            catalog
                .resolve("endpointslices.discovery.k8s.io")
                .unwrap()
                .kind,
            "EndpointSlice"
        );
        assert!(catalog.resolve("deployments.batch").is_err());
        let error = catalog.resolve("widgets").unwrap_err().to_string();
        assert_eq!(error, "the server doesn't have a resource type \"widgets\"");
    }

    #[test]
    fn paths_and_names() {
        let catalog = catalog();
        let deploy = catalog.resolve("deploy").unwrap();
        assert_eq!(
            deploy.object("default", "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        assert_eq!(deploy.collection(None), "/apis/apps/v1/deployments");
        assert_eq!(deploy.qualified("web"), "deployment.apps/web");
        let node = catalog.resolve("no").unwrap();
        assert_eq!(node.collection(Some("default")), "/api/v1/nodes");
        assert_eq!(node.qualified("n1"), "node/n1");
        let object = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(catalog.for_object(&object).unwrap().plural, "deployments");
    }
}
