//! A pod's volumes, as a kubelet sets them up: what each holds is decided
//! without I/O ([`contents`]), then written ([`write`]) the way upstream's
//! `AtomicWriter` does, so that an update is one atomic symlink swap:
//!
//! ```text
//! VOLUME/..2026_12_02_10_00_00.123456789/KEY   the files of one version
//! VOLUME/..data -> ..2026_12_02_10_00_00.123456789
//! VOLUME/KEY -> ..data/KEY
//! ```
//!
//! `emptyDir` is a directory of the pod's (`medium: Memory`: a tmpfs
//! mounted there), `hostPath` the node's path, `persistentVolumeClaim` a
//! directory per claim that outlives its pods; `configMap`, `secret`,
//! `downwardAPI` and `projected` (of those) are written as above and kept
//! up to date while the pod runs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, ServiceAccountTokenProjection, Volume};

use super::env::{self, Placement, Sources};

/// A file of a projected volume: its bytes and mode.
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// Where a volume's data is, or what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A directory, used as it is.
    Directory(PathBuf),
    /// A directory with a tmpfs of its own.
    Memory(PathBuf),
    /// Files the kubelet writes (and rewrites).
    Projected(Files),
}

/// The ConfigMaps and Secrets the pod's volumes name.
pub fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        maps.extend(volume.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            maps.extend(source.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    (maps, secrets)
}

/// Whether the pod's downward API files read its labels or annotations,
/// which change while it runs (what else they read does not).
pub fn reads_metadata(pod: &Pod) -> bool {
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    let items = volumes.flat_map(|v| {
        let own = v.downward_api.iter().flat_map(|d| d.items.iter().flatten());
        let projected = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
        let projected =
            projected.flat_map(|s| s.downward_api.iter().flat_map(|d| d.items.iter().flatten()));
        own.chain(projected).cloned().collect::<Vec<_>>()
    });
    items
        .filter_map(|item| item.field_ref.map(|f| f.field_path))
        .any(|path| path.starts_with("metadata.labels") || path.starts_with("metadata.annotations"))
}

/// The token a `serviceAccountToken` source asks for: its audience
/// (empty: the apiserver's) and expiry (an hour unless it says).
pub fn token_key(token: &ServiceAccountTokenProjection) -> (String, i64) {
    (
        token.audience.clone().unwrap_or_default(),
        token.expiration_seconds.unwrap_or(3600),
    )
}

/// The tokens the pod's projected volumes hold.
pub fn tokens(pod: &Pod) -> Vec<(String, i64)> {
    let mut keys: Vec<(String, i64)> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|source| source.service_account_token.as_ref().map(token_key))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The files `items` select from `data` (all of it without items), with
/// `mode` unless an item sets its own.
fn select(
    data: &super::env::Data,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    what: &str,
) -> Result<Files, String> {
    let mut files = Files::new();
    match items {
        None => {
            for (key, value) in data {
                files.insert(key.clone(), (value.clone(), mode));
            }
        }
        Some(items) => {
            for item in items {
                let value = data.get(&item.key).ok_or_else(|| match what {
                    "secret" => format!("references non-existent secret key: {}", item.key),
                    _ => format!("configmap references non-existent config key: {}", item.key),
                })?;
                let mode = item.mode.map_or(mode, |m| m as u32);
                files.insert(item.path.clone(), (value.clone(), mode));
            }
        }
    }
    Ok(files)
}

/// The value an environment variable from `source` would have in
/// `container`: the downward API's files read as its variables do.
fn value_of(
    pod: &Pod,
    container: k8s_openapi::api::core::v1::Container,
    source: k8s_openapi::api::core::v1::EnvVarSource,
    placement: &Placement,
) -> Result<String, String> {
    let var = k8s_openapi::api::core::v1::EnvVar {
        name: "X".into(),
        value_from: Some(source),
        ..Default::default()
    };
    let probe = k8s_openapi::api::core::v1::Container {
        env: Some(vec![var]),
        ..container
    };
    Ok(
        env::environment(pod, &probe, &[], &Sources::default(), placement)?
            .pop()
            .map(|(_, v)| v)
            .unwrap_or_default(),
    )
}

/// What the downward API items give.
fn downward(
    pod: &Pod,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    mode: u32,
    placement: &Placement,
) -> Result<Files, String> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let first = containers.first().cloned().unwrap_or_default();
    let mut files = Files::new();
    for item in items {
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(field), _)
                if matches!(
                    field.field_path.as_str(),
                    "metadata.labels" | "metadata.annotations"
                ) =>
            {
                // Files list the whole map, `key="value"` a line.
                let map = match field.field_path.as_str() {
                    "metadata.labels" => pod.metadata.labels.clone(),
                    _ => pod.metadata.annotations.clone(),
                };
                let lines: Vec<String> = map
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                lines.join("\n")
            }
            (Some(field), _) => {
                let source = k8s_openapi::api::core::v1::EnvVarSource {
                    field_ref: Some(field.clone()),
                    ..Default::default()
                };
                value_of(pod, first.clone(), source, placement)?
            }
            (None, Some(resource)) => {
                // A volume's resource names its container.
                let named = resource.container_name.as_deref().unwrap_or_default();
                let target = containers
                    .iter()
                    .find(|c| c.name == named)
                    .cloned()
                    .unwrap_or_else(|| first.clone());
                let source = k8s_openapi::api::core::v1::EnvVarSource {
                    resource_field_ref: Some(resource.clone()),
                    ..Default::default()
                };
                value_of(pod, target, source, placement)?
            }
            (None, None) => String::new(),
        };
        let mode = item.mode.map_or(mode, |m| m as u32);
        files.insert(item.path.clone(), (value.into_bytes(), mode));
    }
    Ok(files)
}

/// What `volume` of `pod` is backed by; `pod_dir` holds the pod's own
/// directories and `claims` the claims' (None: a kind not served, said).
pub fn contents(
    pod: &Pod,
    volume: &Volume,
    sources: &Sources,
    placement: &Placement,
    pod_dir: &Path,
    claims: &Path,
) -> Result<Backing, String> {
    let failed = |e: String| {
        format!(
            "MountVolume.SetUp failed for volume \"{}\" : {e}",
            volume.name
        )
    };
    let missing = |kind: &str, name: &str| failed(format!("{kind} \"{name}\" not found"));
    if let Some(empty) = &volume.empty_dir {
        let dir = pod_dir.join("volumes").join(&volume.name);
        return Ok(match empty.medium.as_deref() {
            Some("Memory") => Backing::Memory(dir),
            _ => Backing::Directory(dir),
        });
    }
    if let Some(host) = &volume.host_path {
        return Ok(Backing::Directory(PathBuf::from(&host.path)));
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        return Ok(Backing::Directory(
            claims.join(namespace).join(&claim.claim_name),
        ));
    }
    let mode = |m: Option<i32>| m.map_or(0o644, |m| m as u32);
    if let Some(map) = &volume.config_map {
        return match sources.config_maps.get(&map.name) {
            Some(data) => select(
                data,
                map.items.as_ref(),
                mode(map.default_mode),
                "configmap",
            )
            .map(Backing::Projected)
            .map_err(failed),
            None if map.optional == Some(true) => Ok(Backing::Projected(Files::new())),
            None => Err(missing("configmap", &map.name)),
        };
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        return match sources.secrets.get(&name) {
            Some(data) => select(
                data,
                secret.items.as_ref(),
                mode(secret.default_mode),
                "secret",
            )
            .map(Backing::Projected)
            .map_err(failed),
            None if secret.optional == Some(true) => Ok(Backing::Projected(Files::new())),
            None => Err(missing("secret", &name)),
        };
    }
    if let Some(api) = &volume.downward_api {
        let items = api.items.clone().unwrap_or_default();
        return downward(pod, &items, mode(api.default_mode), placement)
            .map(Backing::Projected)
            .map_err(failed);
    }
    if let Some(projected) = &volume.projected {
        let mode = mode(projected.default_mode);
        let mut files = Files::new();
        for source in projected.sources.iter().flatten() {
            if let Some(map) = &source.config_map {
                match sources.config_maps.get(&map.name) {
                    Some(data) => files.extend(
                        select(data, map.items.as_ref(), mode, "configmap").map_err(failed)?,
                    ),
                    None if map.optional == Some(true) => {}
                    None => return Err(missing("configmap", &map.name)),
                }
            } else if let Some(secret) = &source.secret {
                match sources.secrets.get(&secret.name) {
                    Some(data) => files.extend(
                        select(data, secret.items.as_ref(), mode, "secret").map_err(failed)?,
                    ),
                    None if secret.optional == Some(true) => {}
                    None => return Err(missing("secret", &secret.name)),
                }
            } else if let Some(api) = &source.downward_api {
                let items = api.items.clone().unwrap_or_default();
                files.extend(downward(pod, &items, mode, placement).map_err(failed)?);
            } else if let Some(token) = &source.service_account_token {
                let bytes = sources
                    .tokens
                    .get(&token_key(token))
                    .ok_or_else(|| failed("the service-account token was not fetched".into()))?;
                files.insert(token.path.clone(), (bytes.clone(), mode));
            } else {
                return Err(failed("this projected source is not served yet (clusterTrustBundle, podCertificate: next)".into()));
            }
        }
        return Ok(Backing::Projected(files));
    }
    Err(failed(
        "this volume type is not served by the process runtime".into(),
    ))
}

/// Writes `files` into `dir` as one atomic version (see the module's
/// words), if they differ from the current one; true when written.
pub fn write(dir: &Path, files: &Files) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    let current = std::fs::read_link(&data).ok().map(|v| dir.join(v));
    if let Some(current) = &current {
        if read_version(current).as_ref() == Some(files) {
            return Ok(false);
        }
    }
    let version = format!(
        "..{}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let staged = dir.join(&version);
    std::fs::create_dir_all(&staged)?;
    for (path, (bytes, mode)) in files {
        let file = staged.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let swap = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&swap);
    std::os::unix::fs::symlink(&version, &swap)?;
    std::fs::rename(&swap, &data)?;
    // The names users see: one symlink per top-level entry.
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_owned))
        .collect();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for name in &top {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)?;
        }
    }
    if let Some(current) = current {
        let _ = std::fs::remove_dir_all(current);
    }
    Ok(true)
}

/// The files of one written version.
fn read_version(dir: &Path) -> Option<Files> {
    fn walk(root: &Path, dir: &Path, files: &mut Files) -> Option<()> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files)?;
            } else {
                let relative = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
                let mode = entry.metadata().ok()?.permissions().mode() & 0o7777;
                files.insert(relative, (std::fs::read(&path).ok()?, mode));
            }
        }
        Some(())
    }
    let mut files = Files::new();
    walk(dir, dir, &mut files)?;
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web", "tier": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "volumes": volumes},
        }))
        .unwrap()
    }

    const PLACEMENT: Placement<'static> = Placement {
        pod_ip: "10.244.1.2",
        host_ip: "172.18.0.3",
        node_cpu: "8",
        node_memory: "32Gi",
    };

    #[test]
    fn volumes_hold_what_their_sources_give() {
        let p = pod(json!([
            {"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "a", "path": "conf/a.txt", "mode": 0o600}]}},
            {"name": "all", "configMap": {"name": "settings", "defaultMode": 0o640}},
            {"name": "gone", "secret": {"secretName": "nope"}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "fast", "emptyDir": {"medium": "Memory"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "db"}},
            {"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "settings", "items": [{"key": "a", "path": "ca.crt"}]}}]}},
        ]));
        let sources = Sources {
            config_maps: [(
                "settings".into(),
                [
                    ("a".to_string(), b"1".to_vec()),
                    ("b".into(), b"2".to_vec()),
                ]
                .into(),
            )]
            .into(),
            tokens: [(("".to_string(), 3607), b"jwt".to_vec())].into(),
            ..Sources::default()
        };
        let volumes = p.spec.as_ref().unwrap().volumes.clone().unwrap();
        let of = |i: usize| {
            contents(
                &p,
                &volumes[i],
                &sources,
                &PLACEMENT,
                Path::new("/pods/u1"),
                Path::new("/claims"),
            )
        };
        assert_eq!(
            of(0).unwrap(),
            Backing::Projected([("conf/a.txt".into(), (b"1".to_vec(), 0o600))].into())
        );
        let Backing::Projected(all) = of(1).unwrap() else {
            panic!()
        };
        assert_eq!(all["b"], (b"2".to_vec(), 0o640));
        let binary = Sources {
            config_maps: [(
                "settings".into(),
                [("blob".to_string(), vec![0xff, 0, 0xfe])].into(),
            )]
            .into(),
            ..Sources::default()
        };
        let at = (Path::new("/p"), Path::new("/c"));
        let blob = contents(&p, &volumes[1], &binary, &PLACEMENT, at.0, at.1).unwrap();
        let Backing::Projected(blob) = blob else {
            panic!()
        };
        assert_eq!(
            blob["blob"].0,
            [0xff, 0, 0xfe],
            "binary data is written as it is"
        );
        assert_eq!(
            of(2).unwrap_err(),
            "MountVolume.SetUp failed for volume \"gone\" : secret \"nope\" not found"
        );
        let Backing::Projected(info) = of(3).unwrap() else {
            panic!()
        };
        assert_eq!(info["labels"].0, b"app=\"web\"\ntier=\"a\"");
        assert_eq!(info["name"].0, b"web");
        assert_eq!(
            of(4).unwrap(),
            Backing::Directory("/pods/u1/volumes/scratch".into())
        );
        assert_eq!(
            of(5).unwrap(),
            Backing::Memory("/pods/u1/volumes/fast".into())
        );
        assert_eq!(of(6).unwrap(), Backing::Directory("/claims/shop/db".into()));
        // The service-account volume: the token fetched, and the CA.
        assert_eq!(
            of(7).unwrap(),
            Backing::Projected(
                [
                    ("token".into(), (b"jwt".to_vec(), 0o644)),
                    ("ca.crt".into(), (b"1".to_vec(), 0o644))
                ]
                .into()
            )
        );
        assert_eq!(tokens(&p), [(String::new(), 3607)]);
        assert!(reads_metadata(&p), "the info volume reads the labels");
        let only_namespace = pod(json!([volumes[7].clone()]));
        assert!(!reads_metadata(&only_namespace));
        assert_eq!(
            references(&p),
            (
                vec!["settings".to_string(), "settings".into(), "settings".into()],
                vec!["nope".to_string()]
            )
        );
    }

    #[test]
    fn updates_swap_the_whole_version_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let v1: Files = [
            ("a".to_string(), (b"1".to_vec(), 0o644)),
            ("sub/b".into(), (b"2".to_vec(), 0o644)),
        ]
        .into();
        assert!(write(dir.path(), &v1).unwrap());
        assert!(
            !write(dir.path(), &v1).unwrap(),
            "an unchanged volume is not rewritten"
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/b")).unwrap(),
            "2"
        );
        let v2: Files = [("a".to_string(), (b"3".to_vec(), 0o644))].into();
        assert!(write(dir.path(), &v2).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(
            dir.path().join("sub").symlink_metadata().is_err(),
            "a key gone is gone"
        );
        let versions = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .count();
        assert_eq!(versions, 1, "the old version is removed");
        assert_eq!(
            std::fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
    }
}
