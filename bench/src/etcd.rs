//! A real etcd on loopback, started in a temporary directory for one run,
//! and the benchmark's writes against it over gRPC, with the same
//! preconditions Kubernetes uses (create if absent, update if unchanged).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::process::{Child, Command};

use crate::store::Target;

/// An etcd server process; killed when dropped.
pub struct Etcd {
    _dir: tempfile::TempDir,
    _child: Child,
    pub client: Client,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

impl Etcd {
    /// Starts `etcd` and waits (up to 30 s) until it answers.
    pub async fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start etcd ({e}); install Debian's etcd-server package")
            })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut client) = Client::connect([client_url.as_str()], None).await {
                if client.status().await.is_ok() {
                    return Ok(Self {
                        _dir: dir,
                        _child: child,
                        client,
                    });
                }
            }
            if Instant::now() > deadline {
                return Err("etcd did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Target for Client {
    async fn create(&self, key: &str, value: bytes::Bytes) -> Result<u64, String> {
        let absent = Compare::create_revision(key, CompareOp::Equal, 0);
        put_if(self, absent, key, value).await
    }

    async fn update(
        &self,
        key: &str,
        value: bytes::Bytes,
        revision_now: u64,
    ) -> Result<u64, String> {
        let unchanged = Compare::mod_revision(key, CompareOp::Equal, revision_now as i64);
        put_if(self, unchanged, key, value).await
    }
}

/// Puts `key` in one transaction if `condition` holds; the new revision.
async fn put_if(
    client: &Client,
    condition: Compare,
    key: &str,
    value: bytes::Bytes,
) -> Result<u64, String> {
    let txn = Txn::new()
        .when([condition])
        .and_then([TxnOp::put(key, value.to_vec(), None)]);
    let response = client
        .kv_client()
        .txn(txn)
        .await
        .map_err(|e| e.to_string())?;
    revision(response)
}

fn revision(response: etcd_client::TxnResponse) -> Result<u64, String> {
    if !response.succeeded() {
        return Err("etcd transaction's precondition failed".into());
    }
    let header = response.header().ok_or("etcd answered without a header")?;
    Ok(header.revision() as u64)
}
