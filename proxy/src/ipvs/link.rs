//! The dummy link `kube-ipvs0`, as kube-proxy keeps it: IPVS only
//! answers for addresses that are local, so every ClusterIP, external IP
//! and load-balancer IP is bound to it as a /32 (the link stays down, as
//! kube-proxy leaves it: local delivery needs no up link). Node ports are
//! on the node's own addresses, which are local already and are not
//! bound again. Kept through rtnetlink, on a route netlink socket made
//! inside the node's namespace.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::{Handle, LinkDummy};

/// The dummy link's name.
pub const DUMMY: &str = "kube-ipvs0";

/// What to bind to and unbind from the dummy link: the wanted IPs it
/// lacks (but those local elsewhere, the node's own), and those it holds
/// that nobody wants.
pub fn changes(
    wanted: &BTreeSet<Ipv4Addr>,
    on_dummy: &BTreeSet<Ipv4Addr>,
    elsewhere: &BTreeSet<Ipv4Addr>,
) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let add = wanted
        .iter()
        .filter(|ip| !on_dummy.contains(ip) && !elsewhere.contains(ip))
        .copied()
        .collect();
    let remove = on_dummy.difference(wanted).copied().collect();
    (add, remove)
}

fn failed(what: &str) -> impl Fn(rtnetlink::Error) -> String + '_ {
    move |e| format!("{DUMMY}: {what}: {e}")
}

/// Route netlink in the named namespace (None: this process's own): a
/// socket made on a thread that joined it, its connection driven by the
/// runtime until the returned task is aborted.
async fn connect(namespace: Option<&str>) -> Result<(Handle, tokio::task::JoinHandle<()>), String> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle) = crate::netns::within_named(namespace, move || {
        let _entered = runtime.enter();
        rtnetlink::new_connection().map(|(connection, handle, _)| (connection, handle))
    })
    .await
    .map_err(|e| format!("{DUMMY}: cannot open a route netlink socket: {e}"))?;
    Ok((handle, tokio::spawn(connection)))
}

/// Brings the dummy link (made if missing) to hold `wanted`; answers how
/// many addresses changed.
pub async fn sync(namespace: Option<&str>, wanted: &BTreeSet<Ipv4Addr>) -> Result<usize, String> {
    let (handle, connection) = connect(namespace).await?;
    let result = bind(&handle, wanted).await;
    connection.abort();
    result
}

async fn bind(handle: &Handle, wanted: &BTreeSet<Ipv4Addr>) -> Result<usize, String> {
    let index = match index(handle).await? {
        Some(index) => index,
        None => {
            handle
                .link()
                .add(LinkDummy::new(DUMMY).build())
                .execute()
                .await
                .map_err(failed("cannot create it"))?;
            index(handle)
                .await?
                .ok_or_else(|| format!("{DUMMY}: made, yet not found"))?
        }
    };
    let addresses: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(failed("cannot list the addresses"))?;
    let ipv4 = |message: &AddressMessage| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
                Some(*ip)
            }
            _ => None,
        })
    };
    let (mut on_dummy, mut elsewhere) = (BTreeSet::new(), BTreeSet::new());
    for message in &addresses {
        if let Some(ip) = ipv4(message) {
            match message.header.index == index {
                true => on_dummy.insert(ip),
                false => elsewhere.insert(ip),
            };
        }
    }
    let (add, remove) = changes(wanted, &on_dummy, &elsewhere);
    for ip in &add {
        handle
            .address()
            .add(index, IpAddr::V4(*ip), 32)
            .execute()
            .await
            .map_err(|e| format!("{DUMMY}: cannot bind {ip}: {e}"))?;
    }
    for message in addresses
        .into_iter()
        .filter(|m| m.header.index == index && ipv4(m).is_some_and(|ip| remove.contains(&ip)))
    {
        handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(failed("cannot unbind a stale address"))?;
    }
    Ok(add.len() + remove.len())
}

/// The dummy link's index, if it exists.
async fn index(handle: &Handle) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(DUMMY.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(failed("cannot look it up")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_gains_the_missing_ips_but_node_ones_and_loses_the_stale_ones() {
        let ip = |last: u8| Ipv4Addr::new(10, 96, 0, last);
        let node = Ipv4Addr::new(172, 18, 0, 2);
        let wanted = [ip(1), ip(2), node].into();
        let (add, remove) = changes(&wanted, &[ip(2), ip(9)].into(), &[node].into());
        assert_eq!(add, [ip(1)]);
        assert_eq!(remove, [ip(9)]);
        let (add, remove) = changes(&wanted, &[ip(1), ip(2)].into(), &[node].into());
        assert!(add.is_empty() && remove.is_empty());
    }
}
