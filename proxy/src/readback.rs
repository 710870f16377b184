//! What a node's proxy programmed, read back from the kernel of its
//! network namespace rather than from the proxy's memory (`skiff proxy
//! rules`): which mode's state is there, and its listing as the kernel's
//! own tools print it.

use crate::nftables::TABLE;
use crate::run::{nft, Mode};
use crate::userspace::PORTS_MAP;

/// The mode whose state the named namespace (None: this process's own)
/// holds, and that state as its tool prints it: `ipvsadm -Ln`'s listing,
/// the nftables table, or the userspace mode's table and listening
/// sockets.
pub async fn read_back(namespace: Option<&str>) -> Result<(Mode, String), String> {
    let owned = namespace.map(str::to_owned);
    if let Ok(listing) = crate::ipvs::list(owned).await {
        // Past its three lines of headers, a virtual server.
        if listing.lines().nth(3).is_some() {
            return Ok((Mode::Ipvs, listing));
        }
    }
    let Ok(table) = nft(namespace, &format!("list table ip {TABLE}\n")).await else {
        return Err(format!(
            "no proxy rules there: no IPVS virtual server and no table ip {TABLE} (--proxy-mode none, or simulated pods)"
        ));
    };
    if !table.contains(PORTS_MAP) {
        return Ok((Mode::Nftables, table));
    }
    let sockets = crate::run::run_in(namespace, "ss", &["-ltnu"], "", "ss (iproute2)")
        .await
        .map_err(|e| format!("cannot list the listening sockets: {e}"))?;
    Ok((Mode::Userspace, format!("{table}\n{sockets}")))
}
