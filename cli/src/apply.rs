//! `skiff apply`, `skiff create` and `skiff delete`: manifests sent as
//! kubectl sends them. `apply` is kubectl's client-side apply: the object
//! is created with the applied configuration in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, and later
//! applies send a three-way patch (from what the cluster holds to the new
//! manifest, deleting what the last apply set and this one no longer does),
//! so fields other writers set survive an apply. The patch is a JSON merge
//! patch, the strategy kubectl uses for types it has no patch metadata for:
//! a list the manifest changed is sent whole, one it did not is left as the
//! cluster holds it; nothing to send says `unchanged`.

use crate::say;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::cluster::{error_line, request, Catalog, Cluster, ResourceType};
use crate::Reported;

/// The annotation client-side apply keeps the applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Options shared by the verbs that take manifests.
#[derive(clap::Args)]
pub struct FileArgs {
    /// A manifest file, a directory of them, or - for standard input.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// The namespace for objects that name none.
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Options of `skiff delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    files: FileArgs,
    /// TYPE NAME... or TYPE/NAME... (when no -f is given).
    objects: Vec<String>,
    /// Succeed when an object is already gone.
    #[arg(long)]
    ignore_not_found: bool,
}

#[derive(Clone, Copy)]
enum Verb {
    Apply,
    Create,
    Delete { ignore_not_found: bool },
}

/// `skiff apply -f`.
pub async fn apply(cluster: &Cluster, args: FileArgs) -> Result<()> {
    each(cluster, &args, Verb::Apply).await
}

/// `skiff create -f`.
pub async fn create(cluster: &Cluster, args: FileArgs) -> Result<()> {
    each(cluster, &args, Verb::Create).await
}

/// `skiff delete -f FILE` or `skiff delete TYPE NAME...`.
pub async fn delete(cluster: &Cluster, args: DeleteArgs) -> Result<()> {
    let verb = Verb::Delete {
        ignore_not_found: args.ignore_not_found,
    };
    if !args.files.files.is_empty() {
        return each(cluster, &args.files, verb).await;
    }
    let catalog = cluster.catalog().await?;
    let namespace = args
        .files
        .namespace
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let targets = named_objects(&catalog, &args.objects)?;
    let mut failed = false;
    for (resource, name) in targets {
        if let Err(e) = remove(cluster, resource, &namespace, &name, verb).await {
            eprintln!("{}", error_line(&e));
            failed = true;
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// `TYPE NAME...` or `TYPE/NAME...`, resolved.
fn named_objects<'a>(
    catalog: &'a Catalog,
    words: &[String],
) -> Result<Vec<(&'a ResourceType, String)>> {
    match words {
        [] => bail!("you must provide one or more resources by type and name, or -f"),
        [first, ..] if first.contains('/') => words
            .iter()
            .map(|word| match word.split_once('/') {
                Some((kind, name)) if !name.is_empty() => {
                    Ok((catalog.resolve(kind)?, name.to_owned()))
                }
                _ => bail!("there is no need to mix TYPE/NAME and TYPE NAME: {word:?}"),
            })
            .collect(),
        [kind] => bail!("resource(s) were provided, but no name was specified for {kind:?}"),
        [kind, names @ ..] => {
            let resource = catalog.resolve(kind)?;
            Ok(names.iter().map(|n| (resource, n.clone())).collect())
        }
    }
}

async fn each(cluster: &Cluster, args: &FileArgs, verb: Verb) -> Result<()> {
    if args.files.is_empty() {
        bail!("must specify one of -f and -k");
    }
    let catalog = cluster.catalog().await?;
    let mut failed = false;
    for source in &args.files {
        for (file, object) in crate::manifest::read(source)? {
            if let Err(e) = one(cluster, &catalog, args, verb, object).await {
                eprintln!("{} (from {})", error_line(&e), file.display());
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

async fn one(
    cluster: &Cluster,
    catalog: &Catalog,
    args: &FileArgs,
    verb: Verb,
    mut object: Value,
) -> Result<()> {
    let resource = catalog.for_object(&object)?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = namespace_of(
        &object,
        args.namespace.as_deref(),
        &cluster.default_namespace,
    )?;
    if resource.namespaced {
        object["metadata"]["namespace"] = json!(namespace);
    }
    match verb {
        Verb::Delete { .. } => remove(cluster, resource, &namespace, &name, verb).await,
        Verb::Create => {
            let path = resource.collection(Some(&namespace));
            let created = cluster.create(&path, &object).await?;
            let name = created["metadata"]["name"].as_str().unwrap_or(&name);
            say!("{} created", resource.qualified(name));
            Ok(())
        }
        Verb::Apply => {
            if name.is_empty() {
                bail!("an applied object needs metadata.name (generateName is for create)");
            }
            apply_one(cluster, resource, &namespace, &name, object).await
        }
    }
}

async fn apply_one(
    cluster: &Cluster,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    object: Value,
) -> Result<()> {
    let modified = with_last_applied(object)?;
    let path = resource.object(namespace, name);
    let current = match cluster.get(&path).await {
        Ok(current) => current,
        Err(e) if crate::cluster::is_not_found(&e) => {
            let collection = resource.collection(Some(namespace));
            cluster.create(&collection, &modified).await?;
            say!("{} created", resource.qualified(name));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let original = current["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let patch = three_way(&original, &modified, &current);
    if patch.as_object().is_some_and(Map::is_empty) {
        say!("{} unchanged", resource.qualified(name));
        return Ok(());
    }
    cluster
        .send(request(
            http::Method::PATCH,
            &path,
            Some(&patch),
            Some("application/merge-patch+json"),
        )?)
        .await?;
    say!("{} configured", resource.qualified(name));
    Ok(())
}

async fn remove(
    cluster: &Cluster,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    verb: Verb,
) -> Result<()> {
    let path = format!(
        "{}?propagationPolicy=Background",
        resource.object(namespace, name)
    );
    match cluster
        .send(request(http::Method::DELETE, &path, None, None)?)
        .await
    {
        Ok(_) => {
            say!("{} \"{name}\" deleted", qualified_type(resource));
            Ok(())
        }
        Err(e)
            if crate::cluster::is_not_found(&e)
                && matches!(
                    verb,
                    Verb::Delete {
                        ignore_not_found: true
                    }
                ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `deployment.apps`, as kubectl's delete names a type.
fn qualified_type(resource: &ResourceType) -> String {
    match resource.group.as_str() {
        "" => resource.singular.clone(),
        group => format!("{}.{group}", resource.singular),
    }
}

/// The namespace an object goes to: its own, which must agree with `-n`
/// when both are given; else `-n`; else the kubeconfig's.
fn namespace_of(object: &Value, flag: Option<&str>, default: &str) -> Result<String> {
    let own = object["metadata"]["namespace"].as_str();
    match (own, flag) {
        (Some(own), Some(flag)) if own != flag => bail!(
            "the namespace from the provided object \"{own}\" does not match the namespace \"{flag}\". You must pass '--namespace={own}' to perform this operation."
        ),
        (Some(own), _) => Ok(own.to_owned()),
        (None, Some(flag)) => Ok(flag.to_owned()),
        (None, None) => Ok(default.to_owned()),
    }
}

/// The object with its own configuration in the last-applied annotation.
fn with_last_applied(mut object: Value) -> Result<Value> {
    if !object["metadata"].is_object() {
        bail!("an object needs metadata");
    }
    // (`get_mut`, not indexing: indexing would add `annotations: null`.)
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let applied = serde_json::to_string(&object)?;
    let metadata = object["metadata"].as_object_mut().expect("checked above");
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[LAST_APPLIED] = json!(applied);
    Ok(object)
}

/// The JSON merge patch that takes `current` to `modified`, and deletes the
/// fields `original` (the last applied configuration) set that `modified`
/// no longer has. Fields set by others and never applied are kept; an empty
/// object means nothing to do.
pub fn three_way(original: &Value, modified: &Value, current: &Value) -> Value {
    let empty = Map::new();
    let as_map = |v: &'_ Value| -> Map<String, Value> { v.as_object().unwrap_or(&empty).clone() };
    Value::Object(diff(&as_map(original), &as_map(modified), &as_map(current)))
}

fn diff(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
) -> Map<String, Value> {
    let empty = Map::new();
    let mut patch = Map::new();
    for (key, wanted) in modified {
        match (current.get(key), wanted) {
            (Some(have), _) if have == wanted => {}
            // A list the manifest did not change since the last apply is
            // left as the cluster holds it (defaults filled into its
            // elements make it differ), as a strategic merge would.
            (Some(Value::Array(_)), Value::Array(_)) if original.get(key) == Some(wanted) => {}
            (Some(Value::Object(have)), Value::Object(wanted)) => {
                let original = original
                    .get(key)
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let nested = diff(original, wanted, have);
                if !nested.is_empty() {
                    patch.insert(key.clone(), Value::Object(nested));
                }
            }
            _ => {
                patch.insert(key.clone(), wanted.clone());
            }
        }
    }
    for key in original.keys() {
        if !modified.contains_key(key) && current.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_way_patch_keeps_others_fields_and_drops_unapplied_ones() {
        let original = json!({"spec": {"replicas": 2, "paused": false}, "metadata": {"labels": {"a": "1", "b": "2"}}});
        let modified = json!({"spec": {"replicas": 3}, "metadata": {"labels": {"a": "1"}}});
        let current = json!({
            "spec": {"replicas": 2, "paused": false, "strategy": {"type": "RollingUpdate"}},
            "metadata": {"labels": {"a": "1", "b": "2", "c": "3"}, "uid": "x"},
            "status": {"replicas": 2}
        });
        assert_eq!(
            three_way(&original, &modified, &current),
            json!({"spec": {"replicas": 3, "paused": null}, "metadata": {"labels": {"b": null}}})
        );
    }

    #[test]
    fn lists_go_whole_and_nothing_changed_is_empty() {
        let modified = json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        let current = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        assert_eq!(
            three_way(&Value::Null, &modified, &current),
            json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        );
        assert_eq!(three_way(&modified, &modified, &modified), json!({}));
        // Unchanged since the last apply: defaults in the elements stay.
        let original = json!({"spec": {"ports": [{"port": 80}]}});
        let modified = original.clone();
        assert_eq!(three_way(&original, &modified, &current), json!({}));
        // A field the last apply never set is left alone even when absent.
        assert_eq!(
            three_way(&Value::Null, &json!({"a": 1}), &json!({"a": 1, "b": 2})),
            json!({})
        );
    }

    #[test]
    fn the_applied_configuration_is_recorded_without_itself() {
        let bare =
            with_last_applied(json!({"kind": "ConfigMap", "metadata": {"name": "a"}})).unwrap();
        assert_eq!(
            bare["metadata"]["annotations"][LAST_APPLIED],
            r#"{"kind":"ConfigMap","metadata":{"name":"a"}}"#
        );
        let object = json!({"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {LAST_APPLIED: "old", "x": "y"}}});
        let recorded = with_last_applied(object).unwrap();
        let applied: Value = serde_json::from_str(
            recorded["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            applied,
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"x": "y"}}})
        );
    }

    #[test]
    fn namespaces_from_the_object_the_flag_or_the_context() {
        let object = json!({"metadata": {"namespace": "a"}});
        assert_eq!(namespace_of(&object, None, "default").unwrap(), "a");
        assert_eq!(namespace_of(&object, Some("a"), "default").unwrap(), "a");
        assert!(namespace_of(&object, Some("b"), "default").is_err());
        assert_eq!(namespace_of(&json!({}), Some("b"), "default").unwrap(), "b");
        assert_eq!(
            namespace_of(&json!({}), None, "default").unwrap(),
            "default"
        );
    }
}
