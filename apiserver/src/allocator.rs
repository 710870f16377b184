//! The Service allocators: ClusterIPs from the service CIDR and node ports
//! from the node-port range.
//!
//! Every allocation is one object in the store, created only if absent, so
//! the store alone decides who holds a value and nothing is given twice:
//! a ClusterIP is an `IPAddress` (networking.k8s.io/v1, named by the
//! address, with a `parentRef` to its Service) as upstream keeps them since
//! 1.33; a node port is a record under `/registry/skiff/servicenodeports/`.
//! A bitmap in memory (filled from the store on first use) only speeds up
//! the search for a free value. A Service's create or update reserves what
//! `skiff_api::services::settle` asks for before the Service is written,
//! and releases what it no longer holds after; a crash in between leaves a
//! record no Service holds, which [`Allocator::repair`] releases.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::services::{pick, Held, IpRange, Needs, PortRange, Settled};
use skiff_api::ResourceType;
use skiff_store::{ListOptions, Preconditions, Store, StoreError};
use tokio::sync::OnceCell;

use crate::error::{ApiError, Cause};
use crate::object::{from_stored, now, to_stored};

/// The ranges Services are given addresses and ports from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRanges {
    /// `--service-cidr`.
    pub cidr: IpRange,
    /// `--service-node-port-range`.
    pub node_ports: PortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cidr: IpRange::parse("10.96.0.0/12").expect("the default CIDR"),
            node_ports: PortRange::parse("30000-32767").expect("the default range"),
        }
    }
}

const PORTS_PREFIX: &str = "/registry/skiff/servicenodeports/";
const MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
const ALLOCATOR: &str = "ipallocator.k8s.io";

/// Offsets in use, as a bitmap.
struct Bits(Vec<u64>);

impl Bits {
    fn new(size: u32) -> Bits {
        Bits(vec![0; (size as usize).div_ceil(64)])
    }
    fn get(&self, offset: u32) -> bool {
        self.0[offset as usize / 64] & (1 << (offset % 64)) != 0
    }
    fn set(&mut self, offset: u32, on: bool) {
        let word = &mut self.0[offset as usize / 64];
        if on {
            *word |= 1 << (offset % 64);
        } else {
            *word &= !(1 << (offset % 64));
        }
    }
}

/// One of the two ranges: its store records and its bitmap.
struct Pool {
    size: u32,
    band: u32,
    used: Mutex<Bits>,
}

impl Pool {
    fn new(size: u32, band: u32) -> Pool {
        Pool {
            size,
            band,
            used: Mutex::new(Bits::new(size)),
        }
    }

    fn mark(&self, offset: u32, on: bool) {
        self.used.lock().expect("bitmap").set(offset, on);
    }

    /// Claims a free offset in the bitmap (the store still decides); a
    /// dry run only looks.
    fn claim(&self, dry_run: bool) -> Option<u32> {
        let mut used = self.used.lock().expect("bitmap");
        let offset = pick(self.size, self.band, fastrand::u32(..), |o| used.get(o))?;
        used.set(offset, !dry_run);
        Some(offset)
    }

    /// Gives back an offset [`Pool::claim`] took but the store refused.
    fn unclaim(&self, offset: u32, dry_run: bool) {
        if !dry_run {
            self.mark(offset, false);
        }
    }
}

/// Who an allocation is for.
pub struct Owner<'a> {
    /// The Service's namespace.
    pub namespace: &'a str,
    /// The Service's name.
    pub name: &'a str,
}

/// The ClusterIP and node-port allocators over one store.
pub struct Allocator {
    store: Arc<dyn Store>,
    ranges: ServiceRanges,
    addresses: ResourceType,
    ips: Pool,
    ports: Pool,
    /// Set once the bitmaps hold what the store records.
    loaded: OnceCell<()>,
}

impl Allocator {
    /// Allocators over `store` handing out from `ranges`; `addresses` is
    /// the served IPAddress kind, whose objects record the ClusterIPs.
    pub fn new(store: Arc<dyn Store>, ranges: ServiceRanges, addresses: ResourceType) -> Self {
        Allocator {
            store,
            ips: Pool::new(ranges.cidr.size(), ranges.cidr.dynamic_start()),
            ports: Pool::new(ranges.node_ports.size(), ranges.node_ports.dynamic_start()),
            ranges,
            addresses,
            loaded: OnceCell::new(),
        }
    }

    /// The ranges handed out from.
    pub fn ranges(&self) -> ServiceRanges {
        self.ranges
    }

    fn ip_key(&self, ip: Ipv4Addr) -> String {
        self.addresses.key(None, &ip.to_string())
    }

    async fn records(&self, prefix: &str) -> Result<Vec<(String, Value)>, ApiError> {
        let list = self
            .store
            .list(prefix, ListOptions::default())
            .await
            .map_err(|e| ApiError::internal(format!("cannot list {prefix}: {e}")))?;
        list.items
            .iter()
            .map(|o| Ok((o.key[prefix.len()..].to_owned(), from_stored(o)?)))
            .collect()
    }

    /// Bitmaps of what the store records now: (addresses, ports).
    async fn scan(&self) -> Result<(Bits, Bits), ApiError> {
        let mut keys = Vec::new();
        for prefix in [self.addresses.prefix(None), PORTS_PREFIX.to_owned()] {
            let names = self
                .records(&prefix)
                .await?
                .into_iter()
                .map(|(name, _)| name);
            keys.extend(names.map(|name| format!("{prefix}{name}")));
        }
        Ok(self.bits(&keys))
    }

    /// Bitmaps of the values the record keys `keys` name.
    fn bits(&self, keys: &[String]) -> (Bits, Bits) {
        let (mut ips, mut ports) = (Bits::new(self.ips.size), Bits::new(self.ports.size));
        let addresses = self.addresses.prefix(None);
        for key in keys {
            if let Some(port) = key.strip_prefix(PORTS_PREFIX) {
                let offset = port
                    .parse()
                    .ok()
                    .and_then(|p| self.ranges.node_ports.offset(p));
                if let Some(offset) = offset {
                    ports.set(offset, true);
                }
            } else if let Some(ip) = key.strip_prefix(&addresses) {
                if let Some(offset) = ip.parse().ok().and_then(|ip| self.ranges.cidr.offset(ip)) {
                    ips.set(offset, true);
                }
            }
        }
        (ips, ports)
    }

    fn install(&self, (ips, ports): (Bits, Bits)) {
        *self.ips.used.lock().expect("bitmap") = ips;
        *self.ports.used.lock().expect("bitmap") = ports;
    }

    /// Fills the bitmaps from the store, once.
    async fn load(&self) -> Result<(), ApiError> {
        self.loaded
            .get_or_try_init(|| async {
                self.install(self.scan().await?);
                Ok::<(), ApiError>(())
            })
            .await?;
        Ok(())
    }

    fn ip_record(ip: Ipv4Addr, owner: &Owner<'_>) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {
                "name": ip.to_string(),
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now(),
                "labels": {"ipaddress.kubernetes.io/ip-family": "IPv4", MANAGED_BY: ALLOCATOR},
            },
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": owner.namespace, "name": owner.name}},
        })
    }

    fn port_record(owner: &Owner<'_>) -> Value {
        json!({"namespace": owner.namespace, "name": owner.name, "creationTimestamp": now()})
    }

    /// Creates the record of one value; false if someone holds it. A dry
    /// run only looks whether someone does.
    async fn take(&self, key: &str, record: &Value, dry_run: bool) -> Result<bool, ApiError> {
        if dry_run {
            return match self.store.get(key).await {
                Ok(_) => Ok(false),
                Err(StoreError::NotFound { .. }) => Ok(true),
                Err(e) => Err(ApiError::internal(format!("cannot read {key}: {e}"))),
            };
        }
        match self.store.create(key, to_stored(record)).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(format!("cannot record {key}: {e}"))),
        }
    }

    async fn reserve_ip(
        &self,
        asked: Option<Ipv4Addr>,
        owner: &Owner<'_>,
        dry_run: bool,
    ) -> Result<Ipv4Addr, Refused> {
        let cidr = self.ranges.cidr;
        if let Some(ip) = asked {
            let offset = cidr.offset(ip).ok_or_else(|| Refused::Invalid(format!(
                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"
            )))?;
            if !self
                .take(&self.ip_key(ip), &Self::ip_record(ip, owner), dry_run)
                .await?
            {
                self.ips.mark(offset, true);
                return Err(Refused::Invalid(format!(
                    "failed to allocate IP {ip}: provided IP is already allocated"
                )));
            }
            self.ips.mark(offset, !dry_run);
            return Ok(ip);
        }
        loop {
            let offset = self.ips.claim(dry_run).ok_or_else(|| {
                Refused::Internal("failed to allocate a serviceIP: range is full".into())
            })?;
            let ip = cidr.ip(offset);
            match self
                .take(&self.ip_key(ip), &Self::ip_record(ip, owner), dry_run)
                .await
            {
                Ok(true) => return Ok(ip),
                // Held in the store: the bitmap knows it now.
                Ok(false) => self.ips.mark(offset, true),
                Err(e) => {
                    self.ips.unclaim(offset, dry_run);
                    return Err(e.into());
                }
            }
        }
    }

    async fn reserve_port(
        &self,
        asked: Option<u16>,
        owner: &Owner<'_>,
        dry_run: bool,
    ) -> Result<u16, Refused> {
        let range = self.ranges.node_ports;
        if let Some(port) = asked {
            let offset = range.offset(port).ok_or_else(|| {
                Refused::Invalid(format!(
                    "provided port is not in the valid range. The range of valid ports is {range}"
                ))
            })?;
            let record = Self::port_record(owner);
            let taken = !self
                .take(&format!("{PORTS_PREFIX}{port}"), &record, dry_run)
                .await?;
            self.ports.mark(offset, taken || !dry_run);
            if taken {
                return Err(Refused::Invalid(
                    "provided port is already allocated".into(),
                ));
            }
            return Ok(port);
        }
        loop {
            let offset = self.ports.claim(dry_run).ok_or_else(|| {
                Refused::Internal("failed to allocate a nodePort: range is full".into())
            })?;
            let port = range.port(offset);
            match self
                .take(
                    &format!("{PORTS_PREFIX}{port}"),
                    &Self::port_record(owner),
                    dry_run,
                )
                .await
            {
                Ok(true) => return Ok(port),
                Ok(false) => self.ports.mark(offset, true),
                Err(e) => {
                    self.ports.unclaim(offset, dry_run);
                    return Err(e.into());
                }
            }
        }
    }

    /// Reserves what `needs` asks for, adding it to `reserved`; a value
    /// refused is a cause in `causes`.
    async fn reserve_into(
        &self,
        needs: &Needs,
        owner: &Owner<'_>,
        reserved: &mut Held,
        causes: &mut Vec<Cause>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        self.load().await?;
        if let Some(asked) = needs.ip {
            match self.reserve_ip(asked, owner, dry_run).await {
                Ok(ip) => reserved.ip = Some(ip),
                Err(Refused::Invalid(message)) => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: "spec.clusterIPs".into(),
                    message: format!(
                        "Invalid value: []string{{{}}}: {message}",
                        asked
                            .map(|ip| format!("{:?}", ip.to_string()))
                            .unwrap_or_default()
                    ),
                }),
                Err(Refused::Internal(message)) => return Err(ApiError::internal(message)),
                Err(Refused::Api(e)) => return Err(e),
            }
        }
        let mut asked_done = HashSet::new();
        for (field, asked) in &needs.ports {
            if asked.is_some_and(|p| !asked_done.insert(p)) {
                continue;
            }
            match self.reserve_port(*asked, owner, dry_run).await {
                Ok(port) => {
                    reserved.ports.insert(port);
                }
                Err(Refused::Invalid(message)) => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: field.clone(),
                    message: format!("Invalid value: {}: {message}", asked.unwrap_or_default()),
                }),
                Err(Refused::Internal(message)) => return Err(ApiError::internal(message)),
                Err(Refused::Api(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reserves what `needs` asks for, adding it to `reserved`;
    /// if anything is refused (422 with the fields at fault, or 500), all
    /// of `reserved` is released. A dry run picks the values as a real
    /// reservation would, and records none.
    pub async fn reserve(
        &self,
        needs: &Needs,
        owner: &Owner<'_>,
        resource: &ResourceType,
        reserved: &mut Held,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        let outcome = self
            .reserve_into(needs, owner, reserved, &mut causes, dry_run)
            .await;
        let outcome = match outcome {
            Ok(()) if causes.is_empty() => return Ok(()),
            Ok(()) => Err(ApiError::invalid(resource, owner.name, causes)),
            Err(e) => Err(e),
        };
        if !dry_run {
            self.release(reserved).await;
        }
        *reserved = Held::default();
        outcome
    }

    /// Settles what a new object of `resource` holds (its strategy's
    /// [`skiff_api::strategy::Strategy::settle`]), reserving what it
    /// needs. Answers what was reserved, which the caller releases if the
    /// write fails; a dry run reserves nothing.
    pub async fn settle(
        &self,
        next: &mut Value,
        resource: &ResourceType,
        owner: &Owner<'_>,
        dry_run: bool,
    ) -> Result<Held, ApiError> {
        let mut reserved = Held::default();
        // Each round reserves everything still needed, so one suffices;
        // the bound only guards against a rule that never settles.
        for _ in 0..4 {
            match resource.strategy.settle(None, next, &reserved) {
                Settled::Done => return Ok(reserved),
                Settled::Invalid(invalid) => {
                    if !dry_run {
                        self.release(&reserved).await;
                    }
                    let causes = invalid.into_iter().map(Cause::of).collect();
                    return Err(ApiError::invalid(resource, owner.name, causes));
                }
                Settled::Needs(needs) => {
                    self.reserve(&needs, owner, resource, &mut reserved, dry_run)
                        .await?
                }
            }
        }
        if !dry_run {
            self.release(&reserved).await;
        }
        Err(ApiError::internal(
            "the object's allocations did not settle",
        ))
    }

    /// Releases what `held` names.
    pub async fn release(&self, held: &Held) {
        if let Some(ip) = held.ip {
            self.forget(&self.ip_key(ip)).await;
            if let Some(offset) = self.ranges.cidr.offset(ip) {
                self.ips.mark(offset, false);
            }
        }
        for port in &held.ports {
            self.forget(&format!("{PORTS_PREFIX}{port}")).await;
            if let Some(offset) = self.ranges.node_ports.offset(*port) {
                self.ports.mark(offset, false);
            }
        }
    }

    async fn forget(&self, key: &str) {
        match self.store.delete(key, Preconditions::default()).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            // The repair pass releases it later.
            Err(e) => tracing::warn!(%key, error = %e, "cannot release an allocation"),
        }
    }

    /// Reconciles the records with the Services: records what a Service
    /// holds without one, and releases records no Service holds that are
    /// older than `grace` (a create in flight holds its values briefly
    /// before its Service is written; at startup nothing is in flight and
    /// `grace` is zero). Answers (recorded, released).
    pub async fn repair(
        &self,
        services: &ResourceType,
        grace: Duration,
    ) -> Result<(usize, usize), ApiError> {
        let mut holders: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (_, service) in self.records(&services.prefix(None)).await? {
            let held = Held::of(&service);
            let owner = (
                service["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                service["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            let keys = held.ip.map(|ip| self.ip_key(ip)).into_iter().chain(
                held.ports
                    .iter()
                    .map(|port| format!("{PORTS_PREFIX}{port}")),
            );
            for key in keys {
                if let Some((namespace, name)) = holders.insert(key.clone(), owner.clone()) {
                    tracing::warn!(
                        %key,
                        "held by both {namespace}/{name} and {}/{}",
                        owner.0,
                        owner.1
                    );
                }
            }
        }
        let cutoff =
            jiff::Timestamp::now() - jiff::SignedDuration::try_from(grace).unwrap_or_default();
        let mut released = 0;
        // The records left after the repair, for the bitmaps.
        let mut kept: Vec<String> = Vec::new();
        for (prefix, managed) in [
            (self.addresses.prefix(None), true),
            (PORTS_PREFIX.to_owned(), false),
        ] {
            for (name, record) in self.records(&prefix).await? {
                let key = format!("{prefix}{name}");
                let created = record["metadata"]["creationTimestamp"]
                    .as_str()
                    .or(record["creationTimestamp"].as_str())
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok());
                // Held; reserved by hand (theirs); or perhaps a create in flight.
                let keep = holders.remove(&key).is_some()
                    || (managed && record["metadata"]["labels"][MANAGED_BY] != ALLOCATOR)
                    || created.is_some_and(|t| t > cutoff);
                if keep {
                    kept.push(key);
                } else {
                    self.forget(&key).await;
                    released += 1;
                }
            }
        }
        let recorded = holders.len();
        for (key, (namespace, name)) in holders {
            let owner = Owner {
                namespace: &namespace,
                name: &name,
            };
            let record = match key.strip_prefix(PORTS_PREFIX) {
                Some(_) => Self::port_record(&owner),
                None => {
                    let ip = key.rsplit('/').next().and_then(|ip| ip.parse().ok());
                    match ip {
                        Some(ip) => Self::ip_record(ip, &owner),
                        None => continue,
                    }
                }
            };
            self.take(&key, &record, false).await?;
            kept.push(key);
        }
        // The bitmaps are rebuilt from what is recorded now.
        self.install(self.bits(&kept));
        let _ = self.loaded.set(());
        Ok((recorded, released))
    }
}

/// Why a value was not reserved.
enum Refused {
    /// The user asked for a value that cannot be had (422).
    Invalid(String),
    /// The range is full.
    Internal(String),
    /// The store failed.
    Api(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}
