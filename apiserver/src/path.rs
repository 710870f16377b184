//! Which resource a request path names: a pure parse, tested without I/O.

use skiff_api::{Registry, ResourceType, Subresource};

/// What a resource path addresses.
#[derive(Debug, Clone)]
pub struct Target<'r> {
    /// The kind.
    pub resource: &'r ResourceType,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object's name; `None` for the collection.
    pub name: Option<String>,
    /// The subresource after the name.
    pub subresource: Option<Subresource>,
}

fn subresource(resource: &ResourceType, segment: &str) -> Option<Subresource> {
    resource
        .subresources
        .iter()
        .copied()
        .find(|s| s.name() == segment)
}

/// Parses `/api/v1/...` or `/apis/GROUP/VERSION/...`; `None` if the path
/// names no served resource.
pub fn parse<'r>(registry: &'r Registry, path: &str) -> Option<Target<'r>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let find = |plural: &str| registry.by_plural(group, version, plural);
    let at = |resource: &'r ResourceType,
              namespace: Option<&str>,
              name: Option<&str>,
              sub: Option<&str>| {
        if resource.namespaced != namespace.is_some() && name.is_some() {
            return None;
        }
        if !resource.namespaced && namespace.is_some() {
            return None;
        }
        let subresource = match sub {
            Some(s) => Some(subresource(resource, s)?),
            None => None,
        };
        if name.is_some_and(str::is_empty) {
            return None;
        }
        Some(Target {
            resource,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource,
        })
    };
    match rest {
        [plural] => {
            let resource = find(plural)?;
            Some(Target {
                resource,
                namespace: None,
                name: None,
                subresource: None,
            })
        }
        ["namespaces", ns, plural] if find(plural).is_some() => {
            let resource = find(plural)?;
            resource.namespaced.then(|| Target {
                resource,
                namespace: Some((*ns).to_owned()),
                name: None,
                subresource: None,
            })
        }
        [plural, name] => {
            let resource = find(plural)?;
            (!resource.namespaced).then_some(())?;
            at(resource, None, Some(name), None)
        }
        [plural, name, sub] => at(find(plural)?, None, Some(name), Some(sub)),
        ["namespaces", ns, plural, name] => at(find(plural)?, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => at(find(plural)?, Some(ns), Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plural, namespace, name and subresource a path names.
    type Shown = (String, Option<String>, Option<String>, Option<&'static str>);

    fn show(path: &str) -> Option<Shown> {
        let registry = Box::leak(Box::new(Registry::builtin()));
        parse(registry, path).map(|t| {
            (
                t.resource.plural.to_owned(),
                t.namespace,
                t.name,
                t.subresource.map(|s| s.name()),
            )
        })
    }

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            show("/api/v1/pods"),
            Some(("pods".into(), None, None, None))
        );
        assert_eq!(
            show("/api/v1/namespaces"),
            Some(("namespaces".into(), None, None, None))
        );
        assert_eq!(
            show("/api/v1/namespaces/default"),
            Some(("namespaces".into(), None, s("default"), None))
        );
        assert_eq!(
            show("/api/v1/namespaces/default/status"),
            Some(("namespaces".into(), None, s("default"), Some("status")))
        );
        assert_eq!(
            show("/api/v1/namespaces/default/pods"),
            Some(("pods".into(), s("default"), None, None))
        );
        assert_eq!(
            show("/api/v1/namespaces/default/pods/web"),
            Some(("pods".into(), s("default"), s("web"), None))
        );
        assert_eq!(
            show("/api/v1/namespaces/default/pods/web/binding"),
            Some(("pods".into(), s("default"), s("web"), Some("binding")))
        );
        assert_eq!(
            show("/apis/apps/v1/namespaces/default/deployments/web/scale"),
            Some(("deployments".into(), s("default"), s("web"), Some("scale")))
        );
        assert_eq!(
            show("/apis/apps/v1/deployments"),
            Some(("deployments".into(), None, None, None))
        );
        assert_eq!(
            show("/api/v1/nodes/n1/status"),
            Some(("nodes".into(), None, s("n1"), Some("status")))
        );
    }

    #[test]
    fn paths_that_name_nothing_are_refused() {
        for path in [
            "/api/v2/pods",
            "/api/v1/widgets",
            "/apis/apps/v1/pods",
            "/api/v1/pods/web",
            "/api/v1/namespaces/default/nodes/n1",
            "/api/v1/namespaces/default/services/web/exec",
            "/api/v1/namespaces/default/configmaps/x/status",
            "/api/v1/namespaces/default/pods/web/status/extra",
            "/healthz",
        ] {
            assert_eq!(show(path), None, "{path}");
        }
    }
}
