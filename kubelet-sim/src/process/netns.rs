//! Working inside a node's or pod's network namespace from the agent, on
//! the proxy's [`within`] (a fresh thread that first joins the namespace).

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_proxy::netns::within;

/// A TCP connection to `address`, made from inside the namespace at
/// `path`.
pub async fn connect(
    path: PathBuf,
    address: SocketAddr,
    timeout: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let stream = within(path, move || {
        let stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .await?;
    tokio::net::TcpStream::from_std(stream)
}

/// Turns IPv4 forwarding on inside the namespace at `path` (a node
/// routes between its pods and the others).
pub async fn forward(path: PathBuf) -> std::io::Result<()> {
    within(path, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .await
}

/// The processes in the network namespace at `path`, as `ip netns pids`
/// finds them.
pub fn pids(path: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|ns| ns.ino() == target.ino() && ns.dev() == target.dev())
        })
        .collect()
}
