//! Which pods each Service selects, shared by the Endpoints and
//! EndpointSlice controllers: one cache of Services and one of pods, each
//! indexed by label pairs, so that a pod's change finds the Services that
//! select it, and a Service its pods, without scanning every object (with
//! 1,000 Services of 10 pods each, a scan per event is what makes endpoints
//! lag).
//!
//! A [`Cache`] is a reflector of its own: the objects and their index are
//! updated together, under one lock, so a reader never sees one without
//! the other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};

use crate::workqueue::{key_of, WorkQueue};

/// Labels (or a Service's selector): key -> value.
pub type Labels = BTreeMap<String, String>;

/// Whether a Service's selector (a map of labels, all required) selects
/// `labels`. An empty selector selects nothing, as controllers treat it.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What changed in a [`Cache`].
pub enum Change<'a, K> {
    /// One object was added, changed or deleted: its namespace, name, its
    /// indexed pairs before (None: it was new) and the object after (None:
    /// it was deleted).
    Object {
        /// Its namespace.
        namespace: &'a str,
        /// Its name.
        name: &'a str,
        /// Its pairs before the change.
        before: Option<Labels>,
        /// The object now.
        after: Option<&'a K>,
    },
    /// The cache was filled again from a fresh list: anything may have
    /// changed.
    Relisted,
}

struct Inner<K> {
    /// `namespace/name` -> object, with its indexed pairs.
    objects: HashMap<String, (Arc<K>, Labels)>,
    /// (namespace, key, value) -> names of the objects with that pair.
    by_pair: HashMap<(String, String, String), HashSet<String>>,
}

impl<K: Resource> Inner<K> {
    fn new() -> Self {
        Inner {
            objects: HashMap::new(),
            by_pair: HashMap::new(),
        }
    }

    /// Puts (or, with `None`, removes) the object `namespace/name`;
    /// returns its previous pairs.
    fn set(&mut self, namespace: &str, name: &str, object: Option<(K, Labels)>) -> Option<Labels> {
        let key = format!("{namespace}/{name}");
        let before = self.objects.remove(&key).map(|(_, pairs)| pairs);
        for (k, v) in before.iter().flatten() {
            let pair = (namespace.to_owned(), k.clone(), v.clone());
            if let Some(names) = self.by_pair.get_mut(&pair) {
                names.remove(name);
                if names.is_empty() {
                    self.by_pair.remove(&pair);
                }
            }
        }
        if let Some((object, pairs)) = object {
            for (k, v) in &pairs {
                self.by_pair
                    .entry((namespace.to_owned(), k.clone(), v.clone()))
                    .or_default()
                    .insert(name.to_owned());
            }
            self.objects.insert(key, (Arc::new(object), pairs));
        }
        before
    }

    fn names(&self, namespace: &str, key: &str, value: &str) -> Option<&HashSet<String>> {
        self.by_pair
            .get(&(namespace.to_owned(), key.to_owned(), value.to_owned()))
    }

    fn object(&self, namespace: &str, name: &str) -> Option<&(Arc<K>, Labels)> {
        self.objects.get(&format!("{namespace}/{name}"))
    }

    /// Looked up through the selector's rarest pair.
    fn selected_by(&self, namespace: &str, selector: &Labels) -> Vec<Arc<K>> {
        let rarest = selector
            .iter()
            .map(|(k, v)| self.names(namespace, k, v))
            .min_by_key(|names| names.map_or(0, HashSet::len));
        let Some(Some(names)) = rarest else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| self.object(namespace, name))
            .filter(|(_, pairs)| selects(selector, pairs))
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Looked up through each of the labels.
    fn selecting(&self, namespace: &str, labels: &Labels) -> Vec<Arc<K>> {
        let names: HashSet<&String> = labels
            .iter()
            .filter_map(|(k, v)| self.names(namespace, k, v))
            .flatten()
            .collect();
        names
            .into_iter()
            .filter_map(|name| self.object(namespace, name))
            .filter(|(_, pairs)| selects(pairs, labels))
            .map(|(o, _)| o.clone())
            .collect()
    }
}

/// A cache of every `K`, kept by a list and watch (relisting after errors),
/// whose objects are indexed by the label pairs `pairs_of` gives them.
pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
    pairs_of: fn(&K) -> Labels,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Starts filling a cache of `api`'s objects (only their metadata for
    /// an `Api<PartialObjectMeta<_>>`), handing every change to `changed`
    /// after the cache holds it.
    pub fn start(
        api: Api<K>,
        pairs_of: fn(&K) -> Labels,
        mut changed: impl FnMut(&Cache<K>, Change<'_, K>) + Send + 'static,
    ) -> Arc<Self> {
        let cache = Arc::new(Cache {
            inner: RwLock::new(Inner::new()),
            pairs_of,
            synced: tokio::sync::watch::Sender::new(false),
        });
        let filling = cache.clone();
        let mut fresh: Option<Inner<K>> = None;
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            .for_each(move |event| {
                let cache = &filling;
                match event {
                    Ok(watcher::Event::Init) => fresh = Some(Inner::new()),
                    Ok(watcher::Event::InitApply(object)) => {
                        let (namespace, name) = (object.namespace(), object.name_any());
                        let pairs = (cache.pairs_of)(&object);
                        fresh.get_or_insert_with(Inner::new).set(
                            &namespace.unwrap_or_default(),
                            &name,
                            Some((object, pairs)),
                        );
                    }
                    Ok(watcher::Event::InitDone) => {
                        // What went while the watch was down is told as a
                        // deletion: a relist alone names only what is left.
                        let gone: Vec<(String, Labels)> = {
                            let fresh = fresh.take().unwrap_or_else(Inner::new);
                            let mut inner = cache.inner.write().expect("cache");
                            let old = std::mem::replace(&mut *inner, fresh);
                            old.objects
                                .into_iter()
                                .filter(|(key, _)| !inner.objects.contains_key(key))
                                .map(|(key, (_, pairs))| (key, pairs))
                                .collect()
                        };
                        cache.synced.send_replace(true);
                        for (key, pairs) in gone {
                            let (namespace, name) = key.split_once('/').unwrap_or_default();
                            let before = Some(pairs);
                            changed(
                                cache,
                                Change::Object {
                                    namespace,
                                    name,
                                    before,
                                    after: None,
                                },
                            );
                        }
                        changed(cache, Change::Relisted);
                    }
                    Ok(watcher::Event::Apply(object)) => {
                        let (namespace, name) =
                            (object.namespace().unwrap_or_default(), object.name_any());
                        let pairs = (cache.pairs_of)(&object);
                        let before = cache.inner.write().expect("cache").set(
                            &namespace,
                            &name,
                            Some((object.clone(), pairs)),
                        );
                        changed(
                            cache,
                            Change::Object {
                                namespace: &namespace,
                                name: &name,
                                before,
                                after: Some(&object),
                            },
                        );
                    }
                    Ok(watcher::Event::Delete(object)) => {
                        let (namespace, name) =
                            (object.namespace().unwrap_or_default(), object.name_any());
                        let before = cache
                            .inner
                            .write()
                            .expect("cache")
                            .set(&namespace, &name, None);
                        changed(
                            cache,
                            Change::Object {
                                namespace: &namespace,
                                name: &name,
                                before,
                                after: None,
                            },
                        );
                    }
                    Err(_) => {}
                }
                futures::future::ready(())
            });
        tokio::spawn(events);
        cache
    }

    /// Returns once the cache has been filled by its first list.
    pub async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// The object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let inner = self.inner.read().expect("cache");
        inner.object(namespace, name).map(|(o, _)| o.clone())
    }

    /// Every object.
    pub fn all(&self) -> Vec<Arc<K>> {
        let inner = self.inner.read().expect("cache");
        inner.objects.values().map(|(o, _)| o.clone()).collect()
    }

    /// The objects of `namespace` whose pairs include all of `selector`'s
    /// (none for an empty selector).
    pub fn selected_by(&self, namespace: &str, selector: &Labels) -> Vec<Arc<K>> {
        self.inner
            .read()
            .expect("cache")
            .selected_by(namespace, selector)
    }

    /// The objects of `namespace` with pairs (a selector) that all hold in
    /// `labels`.
    pub fn selecting(&self, namespace: &str, labels: &Labels) -> Vec<Arc<K>> {
        self.inner
            .read()
            .expect("cache")
            .selecting(namespace, labels)
    }
}

/// A Service's selector as a map (empty: it has none).
pub fn selector_of(service: &Service) -> Labels {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}

/// The Services and pods both endpoints controllers read, and the work
/// queues of the controllers that follow them: each gets the key of every
/// Service that changed or whose selected pods changed (before or after the
/// change).
pub struct ServicePods {
    /// Every Service, indexed by its selector.
    pub services: Arc<Cache<Service>>,
    /// Every pod, indexed by its labels.
    pub pods: Arc<Cache<Pod>>,
    subscribers: Arc<Mutex<Vec<WorkQueue>>>,
}

impl ServicePods {
    /// Starts the caches (watching through `client`).
    pub fn start(client: Client) -> Arc<Self> {
        let subscribers: Arc<Mutex<Vec<WorkQueue>>> = Arc::default();
        let notify = {
            let subscribers = subscribers.clone();
            move |keys: &mut dyn Iterator<Item = String>| {
                let subscribers = subscribers.lock().expect("subscribers");
                for key in keys {
                    for queue in subscribers.iter() {
                        queue.add(key.clone());
                    }
                }
            }
        };
        let services = {
            let notify = notify.clone();
            Cache::start(
                Api::<Service>::all(client.clone()),
                selector_of,
                move |cache, change| match change {
                    Change::Object {
                        namespace, name, ..
                    } => notify(&mut std::iter::once(format!("{namespace}/{name}"))),
                    Change::Relisted => notify(&mut cache.all().iter().map(|s| key_of(s.as_ref()))),
                },
            )
        };
        let pods = {
            let services = services.clone();
            Cache::start(
                Api::<Pod>::all(client),
                |pod: &Pod| pod.labels().clone(),
                move |_, change| match change {
                    Change::Object {
                        namespace,
                        before,
                        after,
                        ..
                    } => {
                        let mut keys = HashSet::new();
                        for labels in before.iter().chain(after.map(|p| p.labels())) {
                            keys.extend(
                                services
                                    .selecting(namespace, labels)
                                    .iter()
                                    .map(|s| key_of(s.as_ref())),
                            );
                        }
                        notify(&mut keys.into_iter());
                    }
                    Change::Relisted => {
                        notify(&mut services.all().iter().map(|s| key_of(s.as_ref())))
                    }
                },
            )
        };
        Arc::new(ServicePods {
            services,
            pods,
            subscribers,
        })
    }

    /// A new work queue that gets the key of every Service now cached and
    /// of every later change.
    pub fn subscribe(&self) -> WorkQueue {
        let queue = WorkQueue::default();
        self.subscribers
            .lock()
            .expect("subscribers")
            .push(queue.clone());
        for service in self.services.all() {
            queue.add(key_of(service.as_ref()));
        }
        queue
    }

    /// Returns once both caches have been filled.
    pub async fn synced(&self) {
        futures::future::join(self.services.synced(), self.pods.synced()).await;
    }

    /// The pods `service` selects (none without a selector).
    pub fn pods_of(&self, service: &Service) -> Vec<Arc<Pod>> {
        self.pods.selected_by(
            &service.namespace().unwrap_or_default(),
            &selector_of(service),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn object(name: &str) -> ConfigMap {
        let mut o = ConfigMap::default();
        o.metadata.name = Some(name.into());
        o
    }

    #[test]
    fn the_index_follows_changes_of_labels_and_deletions() {
        let mut inner = Inner::<ConfigMap>::new();
        let web = labels(&[("app", "web"), ("tier", "fe")]);
        assert_eq!(inner.set("ns", "a", Some((object("a"), web.clone()))), None);
        inner.set("ns", "b", Some((object("b"), labels(&[("app", "web")]))));
        inner.set("other", "c", Some((object("c"), web.clone())));
        let names = |inner: &Inner<ConfigMap>, k, v| {
            let mut n: Vec<String> = inner
                .names("ns", k, v)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&inner, "app", "web"), ["a", "b"]);
        assert_eq!(names(&inner, "tier", "fe"), ["a"]);
        // Relabelled: the old pair no longer finds it; its old pairs come back.
        let before = inner.set("ns", "a", Some((object("a"), labels(&[("app", "db")]))));
        assert_eq!(before, Some(web));
        assert_eq!(names(&inner, "app", "web"), ["b"]);
        assert!(
            inner.names("ns", "tier", "fe").is_none(),
            "emptied pairs go"
        );
        inner.set("ns", "b", None);
        assert!(inner.names("ns", "app", "web").is_none());
        assert!(inner.object("ns", "b").is_none());
        assert_eq!(names(&inner, "app", "db"), ["a"]);
    }

    #[test]
    fn selection_both_ways() {
        let name = |o: &Arc<ConfigMap>| o.metadata.name.clone().unwrap();
        // Pods by their labels, found by a Service's selector.
        let mut pods = Inner::<ConfigMap>::new();
        for i in 0..50 {
            let app = format!("web-{}", i % 5);
            let pod = labels(&[("app", &app), ("env", "prod")]);
            pods.set(
                "ns",
                &format!("p{i}"),
                Some((object(&format!("p{i}")), pod)),
            );
        }
        pods.set(
            "other",
            "q",
            Some((object("q"), labels(&[("app", "web-1"), ("env", "prod")]))),
        );
        let mut found: Vec<String> = pods
            .selected_by("ns", &labels(&[("env", "prod"), ("app", "web-1")]))
            .iter()
            .map(name)
            .collect();
        found.sort();
        assert_eq!(
            found,
            ["p1", "p11", "p16", "p21", "p26", "p31", "p36", "p41", "p46", "p6"]
        );
        assert!(pods.selected_by("ns", &Labels::new()).is_empty());
        assert!(pods
            .selected_by("ns", &labels(&[("app", "nope")]))
            .is_empty());
        // Services by their selectors, found by a pod's labels.
        let mut services = Inner::<ConfigMap>::new();
        services.set(
            "ns",
            "web",
            Some((object("web"), labels(&[("app", "web-1")]))),
        );
        services.set(
            "ns",
            "prod",
            Some((object("prod"), labels(&[("env", "prod")]))),
        );
        services.set(
            "ns",
            "canary",
            Some((
                object("canary"),
                labels(&[("app", "web-1"), ("track", "canary")]),
            )),
        );
        services.set("ns", "none", Some((object("none"), Labels::new())));
        let mut found: Vec<String> = services
            .selecting("ns", &labels(&[("app", "web-1"), ("env", "prod")]))
            .iter()
            .map(name)
            .collect();
        found.sort();
        assert_eq!(found, ["prod", "web"]);
        assert!(services
            .selecting("other", &labels(&[("env", "prod")]))
            .is_empty());
    }

    #[test]
    fn selectors_are_maps_that_must_all_hold() {
        let pod = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(selects(&labels(&[("app", "web")]), &pod));
        assert!(selects(&pod, &pod));
        assert!(!selects(&labels(&[("app", "web"), ("x", "y")]), &pod));
        assert!(!selects(&Labels::new(), &pod), "empty selects nothing");
    }
}
