//! kube-rs, unchanged, against Skiff: the client and the runtime's watcher.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;

use crate::harness::Server;

/// A kube-rs client of `server`, from its kubeconfig.
pub async fn client(server: &Server) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"from": "kube-rs"}}, "data": {"a": "1"}}),
    )
    .unwrap()
}

#[test]
fn kube_rs_lists_creates_patches_watches_and_relists_on_410() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--history-max-events", "10"]);
    server.settled();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(&server).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.contains(&"kube-node-lease".to_owned()), "{names:?}");

        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let created = maps
            .create(&PostParams::default(), &config_map("kr"))
            .await
            .unwrap();
        let first = created.metadata.resource_version.clone().unwrap();

        // The runtime's watcher: initial list, then live events.
        let config = watcher::Config::default().labels("from=kube-rs");
        let mut events = watcher(maps.clone(), config).boxed();
        let mut initial = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial, ["kr"]);

        let merge = Patch::Merge(json!({"data": {"b": "2"}}));
        maps.patch("kr", &PatchParams::default(), &merge)
            .await
            .unwrap();
        let strategic = Patch::Strategic(json!({"metadata": {"labels": {"extra": "yes"}}}));
        let patched = maps
            .patch("kr", &PatchParams::default(), &strategic)
            .await
            .unwrap();
        assert_eq!(patched.data.unwrap().len(), 2);
        assert_eq!(patched.metadata.labels.unwrap()["extra"], "yes");
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("kr")),
            other => panic!("expected Apply, got {other:?}"),
        }

        // Push the first resourceVersion out of the short history: a raw
        // watch from it gets the 410 ERROR event that makes clients relist.
        for i in 0..20 {
            maps.patch(
                "kr",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"n": i.to_string()}})),
            )
            .await
            .unwrap();
        }
        let mut raw = maps
            .watch(&WatchParams::default(), &first)
            .await
            .unwrap()
            .boxed();
        match raw.try_next().await {
            Ok(Some(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
            other => panic!("expected a 410, got {other:?}"),
        }

        maps.delete("kr", &DeleteParams::default()).await.unwrap();
        assert!(maps.get_opt("kr").await.unwrap().is_none());
    });
}
