//! The service load-balancer controller: gives each `LoadBalancer` Service
//! an address from a local pool (`--load-balancer-pool`) and writes it to
//! `status.loadBalancer.ingress`, as k3s's service load balancer or MetalLB
//! do on a laptop. The Services' statuses are the record of what is taken,
//! so nothing else needs keeping across restarts; this controller's own
//! answers not yet seen in its cache are remembered until they are. The
//! pool is only ever written into statuses, never routed by this process.
//! Services with a `loadBalancerClass` belong to another implementation
//! and are left alone; a Service that stops being a LoadBalancer has its
//! ingress cleared. The choice, [`choose`], is pure.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_api::services::IpRange;
use skiff_runtime::events::{reference, Recorder, Type};
use skiff_runtime::{Informer, Informers};

use crate::workqueue::{enqueue, key_of, spawn_workers, WorkQueue};

const NAME: &str = "service-lb-controller";

/// The address a LoadBalancer Service gets: the one it has if that is in
/// the pool, else the one it asks for (`spec.loadBalancerIP`) if free,
/// else the lowest free one; `Err` says why none.
pub fn choose(
    pool: &IpRange,
    has: Option<Ipv4Addr>,
    asks: Option<Ipv4Addr>,
    taken: &HashSet<Ipv4Addr>,
) -> Result<Ipv4Addr, String> {
    if let Some(has) = has.filter(|ip| pool.offset(*ip).is_some()) {
        return Ok(has);
    }
    if let Some(asks) = asks {
        if pool.offset(asks).is_none() {
            return Err(format!("{asks} is not in the pool {pool}"));
        }
        if taken.contains(&asks) {
            return Err(format!("{asks} is already in use"));
        }
        return Ok(asks);
    }
    (0..pool.size())
        .map(|offset| pool.ip(offset))
        .find(|ip| !taken.contains(ip))
        .ok_or_else(|| format!("no address is left in the pool {pool}"))
}

fn ingress_ip(service: &Service) -> Option<Ipv4Addr> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    ingress.first()?.ip.as_deref()?.parse().ok()
}

fn ours(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
    })
}

struct Controller {
    client: Client,
    pool: IpRange,
    services: Informer<Service>,
    /// Addresses given whose status write the cache may not show yet.
    given: Mutex<HashMap<String, Ipv4Addr>>,
    events: Recorder,
}

/// Runs the controller, handing out addresses from `pool`, reading
/// Services from the process's shared `informers` and writing through
/// `client`.
pub fn run(
    client: Client,
    informers: &Informers,
    pool: IpRange,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let services = informers.get::<Service>();
    async move {
        let queue = WorkQueue::default();
        enqueue(&services, queue.clone(), |s| Some(key_of(s)));
        let controller = Arc::new(Controller {
            events: Recorder::new(client.clone(), NAME, None),
            client,
            pool,
            services: services.clone(),
            given: Mutex::default(),
        });
        // Nothing is handed out before every Service's status is known.
        services.wait_synced().await;
        // One worker: two Services never race for an address.
        spawn_workers(controller, queue, 1, NAME);
    }
}

impl crate::workqueue::Sync for Controller {
    type Error = kube::Error;

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or_default();
        let service = self.services.get(namespace, name);
        let Some(service) = service.filter(|s| ours(s) || ingress_ip(s).is_some()) else {
            self.given.lock().expect("given").remove(key);
            return Ok(());
        };
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let has = ingress_ip(&service);
        if !ours(&service) {
            // No longer a LoadBalancer of ours: its address goes back.
            if service
                .spec
                .as_ref()
                .and_then(|s| s.load_balancer_class.as_ref())
                .is_none()
            {
                // A merge patch removes a field only when it says null.
                let clear = json!({"status": {"loadBalancer": {"ingress": null}}});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(clear))
                    .await?;
            }
            self.given.lock().expect("given").remove(key);
            return Ok(());
        }
        let taken: HashSet<Ipv4Addr> = {
            let given = self.given.lock().expect("given");
            self.services
                .list()
                .iter()
                .filter(|s| key_of(s.as_ref()) != key)
                .filter_map(|s| ingress_ip(s))
                .chain(given.iter().filter(|(k, _)| *k != key).map(|(_, ip)| *ip))
                .collect()
        };
        let asks = service
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        match choose(&self.pool, has, asks, &taken) {
            Ok(ip) if Some(ip) == has => {
                // The cache shows it now: nothing left to remember.
                self.given.lock().expect("given").remove(key);
            }
            Ok(ip) => {
                self.given.lock().expect("given").insert(key.to_owned(), ip);
                let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                    .await?;
                let message = format!("Assigned IP [\"{ip}\"]");
                self.events.record(
                    reference(service.as_ref()),
                    Type::Normal,
                    "IPAllocated",
                    message,
                );
            }
            Err(why) => {
                let message = format!(
                    "Failed to allocate IP for \"{}\": {why}",
                    service.name_any()
                );
                self.events.record(
                    reference(service.as_ref()),
                    Type::Warning,
                    "AllocationFailed",
                    message,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn keeps_what_it_has_honours_what_it_asks_and_fills_from_the_bottom() {
        let pool = IpRange::parse("127.240.0.0/29").unwrap();
        let taken: HashSet<Ipv4Addr> = [ip("127.240.0.1"), ip("127.240.0.3")].into();
        assert_eq!(choose(&pool, None, None, &taken), Ok(ip("127.240.0.2")));
        assert_eq!(
            choose(&pool, Some(ip("127.240.0.5")), None, &taken),
            Ok(ip("127.240.0.5"))
        );
        // An address from elsewhere (another pool) is replaced.
        assert_eq!(
            choose(&pool, Some(ip("10.0.0.1")), None, &taken),
            Ok(ip("127.240.0.2"))
        );
        assert_eq!(
            choose(&pool, None, Some(ip("127.240.0.6")), &taken),
            Ok(ip("127.240.0.6"))
        );
        assert!(choose(&pool, None, Some(ip("127.240.0.3")), &taken)
            .unwrap_err()
            .contains("already in use"));
        assert!(choose(&pool, None, Some(ip("127.0.0.9")), &taken)
            .unwrap_err()
            .contains("not in the pool"));
        let full: HashSet<Ipv4Addr> = (0..pool.size()).map(|o| pool.ip(o)).collect();
        assert!(choose(&pool, None, None, &full).is_err());
    }
}
