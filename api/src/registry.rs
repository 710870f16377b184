//! The resource registry: every kind Skiff serves, as data. A new kind is
//! one entry built from its `k8s-openapi` type, not new handlers.

use k8s_openapi::api::{apps, coordination, core, discovery, networking};
use k8s_openapi::{ClusterResourceScope, ListableResource, NamespaceResourceScope, Resource};

use crate::strategy::{self, Strategy};

/// How a kind's object names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (namespaces).
    Label,
    /// A DNS-1035 label: starts with a letter (services).
    Label1035,
}

/// A subresource served beside a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: get, update and patch the status alone.
    Status,
    /// `/scale`: an `autoscaling/v1` `Scale` view of the replicas.
    Scale,
    /// `pods/binding`: the scheduler's binding of a pod to a node.
    Binding,
    /// `pods/log`: the containers' logs.
    Log,
    /// `pods/exec`: a command run in a container, its streams upgraded to
    /// a WebSocket.
    Exec,
    /// `pods/attach`: the streams of a running container, upgraded as
    /// exec's.
    Attach,
    /// `pods/portforward`: connections to a pod's ports, over an upgraded
    /// stream.
    PortForward,
    /// `serviceaccounts/token`: a TokenRequest for the account's token.
    Token,
    /// `namespaces/finalize`: the namespace controller's removal of the
    /// `kubernetes` finalizer from `spec.finalizers`.
    Finalize,
}

impl Subresource {
    /// The path segment after the object's name.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Token => "token",
            Subresource::Finalize => "finalize",
        }
    }
}

/// One kind of resource, and everything needed to serve it.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// The API group; empty for the core group.
    pub group: &'static str,
    /// The version, such as `v1`.
    pub version: &'static str,
    /// The kind, such as `Pod`.
    pub kind: &'static str,
    /// The kind of its lists, such as `PodList`.
    pub list_kind: &'static str,
    /// The plural used in URLs, such as `pods`.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`po`, `svc`, ...) kubectl resolves through discovery.
    pub short_names: &'static [&'static str],
    /// Categories such as `all`.
    pub categories: &'static [&'static str],
    /// The subresources served beside it.
    pub subresources: &'static [Subresource],
    /// The rule its object names follow.
    pub names: NameRule,
    /// The OpenAPI definition name of its type (`io.k8s.api.core.v1.Pod`).
    pub schema_name: String,
    /// Adds its type's schema (and every schema it refers to) to a
    /// generator; returns the reference.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// What it does on create, update and delete, how it prints and which
    /// fields select it.
    pub strategy: &'static dyn Strategy,
}

/// Whether a `k8s-openapi` scope is namespaced.
pub trait Scope {
    /// True for namespaced resources.
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// The parts of an entry that the type does not say.
struct Extra {
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
    names: NameRule,
    strategy: &'static dyn Strategy,
}

const PLAIN: Extra = Extra {
    short_names: &[],
    categories: &[],
    subresources: &[],
    names: NameRule::Subdomain,
    strategy: &strategy::Plain,
};

fn entry<K>(extra: Extra) -> ResourceType
where
    K: Resource + ListableResource + schemars::JsonSchema,
    K::Scope: Scope,
{
    ResourceType {
        group: K::GROUP,
        version: K::VERSION,
        kind: K::KIND,
        list_kind: K::LIST_KIND,
        plural: K::URL_PATH_SEGMENT,
        namespaced: K::Scope::NAMESPACED,
        short_names: extra.short_names,
        categories: extra.categories,
        subresources: extra.subresources,
        names: extra.names,
        schema_name: K::schema_name().into_owned(),
        schema: |generator| generator.subschema_for::<K>(),
        strategy: extra.strategy,
    }
}

impl ResourceType {
    /// `v1` or `apps/v1`: the `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The lower-case singular name, as discovery reports it.
    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    /// The `group/resource` form used in error messages (`pods`,
    /// `deployments.apps`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store prefix of every object of this kind, or of those in one
    /// namespace. Cluster-scoped kinds ignore the namespace.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("/registry/{group}/{}/{ns}/", self.plural),
            None => format!("/registry/{group}/{}/", self.plural),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }

    /// Whether it serves `subresource`.
    pub fn has(&self, subresource: Subresource) -> bool {
        self.subresources.contains(&subresource)
    }
}

/// Every kind Skiff serves.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

use Subresource::{Attach, Binding, Exec, Finalize, Log, PortForward, Scale, Status, Token};

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        const ALL: &[&str] = &["all"];
        let types = vec![
            entry::<core::v1::Namespace>(Extra {
                strategy: &strategy::Namespace,
                short_names: &["ns"],
                subresources: &[Status, Finalize],
                names: NameRule::Label,
                ..PLAIN
            }),
            entry::<core::v1::Pod>(Extra {
                strategy: &strategy::Pod,
                short_names: &["po"],
                categories: ALL,
                subresources: &[Status, Binding, Log, Attach, Exec, PortForward],
                ..PLAIN
            }),
            entry::<core::v1::Node>(Extra {
                strategy: &strategy::Node,
                short_names: &["no"],
                subresources: &[Status],
                ..PLAIN
            }),
            entry::<core::v1::Service>(Extra {
                strategy: &strategy::Service,
                short_names: &["svc"],
                categories: ALL,
                subresources: &[Status],
                names: NameRule::Label1035,
            }),
            entry::<core::v1::Endpoints>(Extra {
                strategy: &strategy::Endpoints,
                short_names: &["ep"],
                ..PLAIN
            }),
            entry::<core::v1::Event>(Extra {
                strategy: &strategy::Event,
                short_names: &["ev"],
                ..PLAIN
            }),
            entry::<core::v1::ConfigMap>(Extra {
                short_names: &["cm"],
                strategy: &strategy::ConfigMap,
                ..PLAIN
            }),
            entry::<core::v1::Secret>(Extra {
                strategy: &strategy::Secret,
                ..PLAIN
            }),
            entry::<core::v1::ServiceAccount>(Extra {
                strategy: &strategy::ServiceAccount,
                short_names: &["sa"],
                subresources: &[Token],
                ..PLAIN
            }),
            entry::<core::v1::ReplicationController>(Extra {
                strategy: &strategy::ReplicationController,
                short_names: &["rc"],
                categories: ALL,
                subresources: &[Status, Scale],
                ..PLAIN
            }),
            entry::<apps::v1::Deployment>(Extra {
                strategy: &strategy::Deployment,
                short_names: &["deploy"],
                categories: ALL,
                subresources: &[Status, Scale],
                ..PLAIN
            }),
            entry::<apps::v1::ReplicaSet>(Extra {
                strategy: &strategy::ReplicaSet,
                short_names: &["rs"],
                categories: ALL,
                subresources: &[Status, Scale],
                ..PLAIN
            }),
            entry::<apps::v1::DaemonSet>(Extra {
                strategy: &strategy::DaemonSet,
                short_names: &["ds"],
                categories: ALL,
                subresources: &[Status],
                ..PLAIN
            }),
            entry::<apps::v1::StatefulSet>(Extra {
                strategy: &strategy::StatefulSet,
                short_names: &["sts"],
                categories: ALL,
                subresources: &[Status, Scale],
                ..PLAIN
            }),
            entry::<discovery::v1::EndpointSlice>(Extra {
                strategy: &strategy::EndpointSlice,
                ..PLAIN
            }),
            entry::<coordination::v1::Lease>(Extra {
                strategy: &strategy::Lease,
                ..PLAIN
            }),
            // The ClusterIPs the Service allocator hands out, one object
            // per address, as upstream records them since 1.33.
            entry::<networking::v1::IPAddress>(Extra {
                strategy: &strategy::IpAddress,
                ..PLAIN
            }),
            entry::<networking::v1::Ingress>(Extra {
                strategy: &strategy::Ingress,
                short_names: &["ing"],
                subresources: &[Status],
                ..PLAIN
            }),
        ];
        Self { types }
    }

    /// Every kind, in registration order.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The kind served at `group/version/plural`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The kind named by an `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.kind == kind && t.api_version() == api_version)
    }

    /// The groups (other than the core group) with their versions, in
    /// registration order.
    pub fn groups(&self) -> Vec<(&'static str, &'static str)> {
        let mut groups: Vec<(&str, &str)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            if !groups.contains(&(t.group, t.version)) {
                groups.push((t.group, t.version));
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_from_the_types() {
        let registry = Registry::builtin();
        let pods = registry.by_plural("", "v1", "pods").unwrap();
        assert_eq!(
            (pods.kind, pods.list_kind, pods.namespaced),
            ("Pod", "PodList", true)
        );
        let nodes = registry.by_kind("v1", "Node").unwrap();
        assert!(!nodes.namespaced);
        let deployments = registry.by_plural("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.api_version(), "apps/v1");
        assert_eq!(deployments.qualified(), "deployments.apps");
        assert!(deployments.has(Subresource::Scale));
        assert_eq!(
            registry.groups(),
            [
                ("apps", "v1"),
                ("discovery.k8s.io", "v1"),
                ("coordination.k8s.io", "v1"),
                ("networking.k8s.io", "v1")
            ]
        );
    }

    #[test]
    fn keys_are_isolated_by_group_kind_and_namespace() {
        let registry = Registry::builtin();
        let pods = registry.by_plural("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(pods.prefix(None), "/registry/core/pods/");
        let nodes = registry.by_plural("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let mut prefixes: Vec<String> = registry.types().iter().map(|t| t.prefix(None)).collect();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), registry.types().len());
        for (a, b) in prefixes.iter().zip(prefixes.iter().skip(1)) {
            assert!(!b.starts_with(a.as_str()), "{a} is a prefix of {b}");
        }
    }

    #[test]
    fn short_names_are_unique() {
        let registry = Registry::builtin();
        let mut names: Vec<&str> = registry
            .types()
            .iter()
            .flat_map(|t| t.short_names.iter().copied())
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
