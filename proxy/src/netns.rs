//! Working inside a named network namespace: a socket belongs to the
//! namespace of the thread that made it, and `/proc/sys/net` shows the
//! namespace of the thread that opens it, so such a task runs on a fresh
//! thread that first joins the namespace (and ends with it: a joined
//! thread never goes back to serve anything else).

use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The path of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `task` on a thread of its own inside the namespace at `path`.
pub async fn within<T: Send + 'static>(
    path: PathBuf,
    task: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || {
            let result = std::fs::File::open(&path)
                .and_then(|ns| setns(ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from))
                .and_then(|()| task());
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the namespace thread died"))?
}

/// Runs `task` inside the named namespace (None: this process's own, on
/// a blocking thread of the runtime).
pub async fn within_named<T: Send + 'static>(
    namespace: Option<&str>,
    task: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match namespace {
        Some(name) => within(path(name), task).await,
        None => tokio::task::spawn_blocking(task)
            .await
            .map_err(|e| std::io::Error::other(format!("the blocking task failed: {e}")))?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_runs_in_the_process_namespace_or_fails_on_a_missing_one() {
        assert_eq!(within_named(None, || Ok(7)).await.unwrap(), 7);
        let missing = within_named(Some("skiff-no-such-namespace"), || Ok(()))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
