//! The IPVS mode, shaped as kube-proxy's (`pkg/proxy/ipvs`): each
//! address of each Service port is an IPVS virtual server with a real
//! server per endpoint, programmed over generic netlink by a codec of our
//! own ([`codec`], [`client`]); what to change is planned without I/O
//! from the desired rules and the kernel's dump ([`plan`]); the dummy
//! link `kube-ipvs0` holds the virtual IPs ([`link`]); a small nftables
//! table does what IPVS does not, masquerading and rejecting
//! ([`table`]); [`list`] prints the kernel's state as `ipvsadm -Ln` does
//! ([`listing`]).

pub mod client;
pub mod codec;
pub mod link;
pub mod listing;
pub mod plan;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Address, Backend, PortName, PortRules, ServiceKey};
use crate::nftables;
use client::Client;
use plan::{Current, Plan, Wanted};
use table::Sets;

/// The sysctls kube-proxy's IPVS mode sets: connection tracking of IPVS
/// traffic (so that nftables can masquerade it), expiry of connections
/// whose real server is gone and of persistence templates of drained
/// ones, and forwarding.
pub const SYSCTLS: [(&str, &str); 4] = [
    ("net/ipv4/vs/conntrack", "1"),
    ("net/ipv4/vs/expire_nodest_conn", "1"),
    ("net/ipv4/vs/expire_quiescent_template", "1"),
    ("net/ipv4/ip_forward", "1"),
];

/// The IPVS mode's writer for one network namespace: what it last
/// programmed (None: nothing yet, or a failed sync, after which the next
/// starts afresh).
pub struct Ipvs {
    namespace: Option<String>,
    scheduler: String,
    client: Option<Client>,
    bound: Option<BTreeSet<Ipv4Addr>>,
    sets: Option<Sets>,
    draining: BTreeSet<Address>,
}

impl Ipvs {
    /// A writer into the named network namespace (None: its own), with
    /// this scheduler for every virtual server (empty: `rr`; checked at
    /// the first sync).
    pub fn new(namespace: Option<String>, scheduler: String) -> Ipvs {
        Ipvs {
            namespace,
            scheduler,
            client: None,
            bound: None,
            sets: None,
            draining: BTreeSet::new(),
        }
    }

    /// Whether real servers wait, at weight 0, for their connections to
    /// end: a later sync deletes them (kube-proxy checks every minute).
    pub fn draining(&self) -> bool {
        !self.draining.is_empty()
    }

    /// Brings the kernel to `rules`: the virtual servers of the `touched`
    /// Services (and those draining, and any nobody wants), or all of
    /// them, with the sysctls, the dummy link and the table afresh, when
    /// `full` or after a failure. Answers how many operations it took.
    pub async fn sync(
        &mut self,
        rules: &BTreeMap<PortName, PortRules>,
        touched: &BTreeSet<ServiceKey>,
        full: bool,
    ) -> Result<usize, String> {
        let result = self.write(rules, touched, full).await;
        if result.is_err() {
            self.client = None;
            self.bound = None;
            self.sets = None;
        }
        result
    }

    async fn write(
        &mut self,
        rules: &BTreeMap<PortName, PortRules>,
        touched: &BTreeSet<ServiceKey>,
        full: bool,
    ) -> Result<usize, String> {
        let scheduler = plan::scheduler(&self.scheduler)?.to_owned();
        let namespace = self.namespace.as_deref();
        let fresh = full || self.client.is_none();
        let client = match self.client.take() {
            Some(client) if !fresh => client,
            _ => {
                // Opening it loads ip_vs, whose sysctls then exist.
                let client = Client::open(namespace).await?;
                set_sysctls(namespace).await?;
                client
            }
        };
        let mut operations = 0;
        let ips = plan::virtual_ips(rules);
        if fresh || self.bound.as_ref() != Some(&ips) {
            operations += link::sync(namespace, &ips).await?;
            self.bound = Some(ips);
        }
        let desired = plan::desired(rules, &scheduler);
        let scope = (!fresh).then(|| {
            rules
                .iter()
                .filter(|(name, _)| touched.contains(&name.service))
                .flat_map(|(_, port)| port.virtuals.keys().copied())
                .chain(self.draining.iter().copied())
                .collect()
        });
        // Whether draining real servers' inactive connections have ended.
        let live = match self.draining.is_empty() {
            true => None,
            false => Some(live_connections(namespace).await?),
        };
        let (client, planned) =
            blocking(client, move |client| program(client, desired, scope, live)).await?;
        let planned = planned?;
        self.client = Some(client);
        operations += planned.operations.len();
        self.draining = planned.draining;
        let sets = table::sets(rules);
        let ops = match &self.sets {
            Some(old) if !fresh => table::diff(old, &sets),
            _ => {
                let mut ops = table::base();
                ops.extend(table::diff(&Sets::default(), &sets));
                ops
            }
        };
        for script in nftables::transactions(&ops) {
            crate::run::nft(namespace, &script).await?;
        }
        self.sets = Some(sets);
        Ok(operations + ops.len())
    }
}

/// Runs `task` on `client` on a blocking thread (its netlink calls wait
/// for the kernel), handing the client back.
async fn blocking<T: Send + 'static>(
    mut client: Client,
    task: impl FnOnce(&mut Client) -> T + Send + 'static,
) -> Result<(Client, T), String> {
    tokio::task::spawn_blocking(move || {
        let result = task(&mut client);
        (client, result)
    })
    .await
    .map_err(|e| format!("IPVS: the netlink task failed: {e}"))
}

/// Reads the kernel's virtual servers (the real servers of those in
/// `scope`, None: all), plans and applies the difference from `desired`.
/// A virtual server nobody wants is always seen, and deleted. With the
/// connections that may still carry data (`live`), a real server's
/// inactive ones that ended (TIME_WAIT, CLOSE) do not keep it.
fn program(
    client: &mut Client,
    desired: BTreeMap<Address, Wanted>,
    scope: Option<BTreeSet<Address>>,
    live: Option<BTreeSet<(Address, Backend)>>,
) -> Result<Plan, String> {
    let in_scope = |address: &Address| scope.as_ref().is_none_or(|s| s.contains(address));
    let mut current = BTreeMap::new();
    for service in client.services()? {
        let Some(address) = plan::address_of(&service) else {
            continue;
        };
        let wanted = desired.contains_key(&address);
        if wanted && !in_scope(&address) {
            continue;
        }
        let mut dests = match wanted {
            true => client.dests(&service)?,
            false => Vec::new(),
        };
        if let Some(live) = &live {
            for dest in &mut dests {
                let still = match dest.address {
                    std::net::IpAddr::V4(ip) => live.contains(&(
                        address,
                        Backend {
                            ip,
                            port: dest.port,
                        },
                    )),
                    std::net::IpAddr::V6(_) => true,
                };
                if !still {
                    dest.inactive = 0;
                }
            }
        }
        current.insert(address, Current { service, dests });
    }
    let desired: BTreeMap<Address, Wanted> =
        desired.into_iter().filter(|(a, _)| in_scope(a)).collect();
    let planned = plan::plan(&desired, &current);
    for operation in &planned.operations {
        client.call(&operation.request())?;
    }
    Ok(planned)
}

/// The IPVS connections of the named namespace (None: this process's
/// own) that may still carry data ([`plan::live_connections`]).
async fn live_connections(namespace: Option<&str>) -> Result<BTreeSet<(Address, Backend)>, String> {
    crate::netns::within_named(namespace, || {
        // thread-self: this thread's namespace (self/net is the process's).
        std::fs::read_to_string("/proc/thread-self/net/ip_vs_conn")
    })
    .await
    .map(|table| plan::live_connections(&table))
    .map_err(|e| format!("IPVS connections: {e}"))
}

/// Sets [`SYSCTLS`] inside the named namespace (None: this process's
/// own), those that differ only.
async fn set_sysctls(namespace: Option<&str>) -> Result<(), String> {
    crate::netns::within_named(namespace, || {
        for (key, value) in SYSCTLS {
            let path = format!("/proc/sys/{key}");
            let now = std::fs::read_to_string(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
            if now.trim() != value {
                std::fs::write(&path, value)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("IPVS sysctls: {e}"))
}

/// Whether the named namespace's kernel (None: this process's) has IPVS:
/// its generic netlink family resolves.
pub async fn available(namespace: Option<String>) -> bool {
    Client::open(namespace.as_deref()).await.is_ok()
}

/// The named namespace's IPVS state (None: this process's), as
/// `ipvsadm -Ln` prints it.
pub async fn list(namespace: Option<String>) -> Result<String, String> {
    let client = Client::open(namespace.as_deref()).await?;
    let (_, listing) = blocking(client, |client| {
        let info = client.info()?;
        let mut services = Vec::new();
        for service in client.services()? {
            let dests = client.dests(&service)?;
            services.push((service, dests));
        }
        Ok::<String, String>(listing::format(&info, &services))
    })
    .await?;
    listing
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without IPVS in the kernel (as here, and in CI), the mode says so
    /// at once, with the reason.
    #[tokio::test]
    async fn without_ipvs_a_sync_fails_clearly_and_nothing_is_left_half_done() {
        if available(None).await {
            eprintln!("SKIPPED: this kernel has IPVS");
            return;
        }
        let mut ipvs = Ipvs::new(None, String::new());
        let error = ipvs
            .sync(&BTreeMap::new(), &BTreeSet::new(), true)
            .await
            .unwrap_err();
        assert!(error.contains("IPVS"), "{error}");
        assert!(list(None).await.is_err());
        let mut unknown = Ipvs::new(None, "fastest".into());
        let error = unknown
            .sync(&BTreeMap::new(), &BTreeSet::new(), true)
            .await
            .unwrap_err();
        assert!(error.contains("unknown IPVS scheduler"), "{error}");
    }
}
