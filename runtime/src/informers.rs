//! One shared, indexed cache per kind and process, fed by one list and
//! watch per kind, as client-go's `SharedInformerFactory`: the scheduler,
//! the controllers, the DNS index and the node agents of a process all read
//! from one [`Informers`] set instead of each watching for itself.
//!
//! Why our own store rather than kube-runtime's `reflector::Store`: that
//! store has no indexes (every lookup by node, namespace or owner is a scan
//! of every object), and its reflector hands consumers one stream, with an
//! updated object but not the one it replaced. Here each kind has
//! - one copy of every object (`Arc<K>`), which every reader shares;
//! - named indexes (pods by node, by namespace, by controller uid, by label
//!   pair, ...), kept up to date on each event and holding keys, not
//!   objects;
//! - subscriptions, each told `Added`, `Updated { old, new }` (client-go's
//!   `OnUpdate(old, new)`), `Deleted` and `Synced`, starting with the
//!   objects cached when it subscribed;
//! - a metadata view ([`Informers::metadata`]) for readers of owner
//!   references only (the garbage collector), served by the full-object
//!   informer of the kind when there is one, by a metadata-only watch
//!   (`PartialObjectMetadata`) otherwise, so each kind is watched once.
//!
//! The watches themselves are kube-runtime's `watcher` with its default
//! back-off; a relist is diffed against the cache, so what went while a
//! watch was down is told as a deletion.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

pub mod index;

/// What a subscriber hears about one kind.
#[derive(Debug)]
pub enum Event<K: ?Sized> {
    /// An object was created (or was there when the subscription began).
    Added(Arc<K>),
    /// An object changed: as it was, and as it is.
    Updated {
        /// The object before the change.
        old: Arc<K>,
        /// The object now.
        new: Arc<K>,
    },
    /// An object was deleted (its last state).
    Deleted(Arc<K>),
    /// The cache holds a complete list (after the first list, and again
    /// after each relist).
    Synced,
}

impl<K: ?Sized> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Added(o) => Event::Added(o.clone()),
            Event::Updated { old, new } => Event::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Event::Deleted(o) => Event::Deleted(o.clone()),
            Event::Synced => Event::Synced,
        }
    }
}

impl<K: ?Sized> Event<K> {
    /// The object as it is now (its last state for a deletion).
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Event::Added(o) | Event::Deleted(o) | Event::Updated { new: o, .. } => Some(o),
            Event::Synced => None,
        }
    }

    fn map<T: ?Sized>(&self, f: impl Fn(&Arc<K>) -> Arc<T>) -> Event<T> {
        match self {
            Event::Added(o) => Event::Added(f(o)),
            Event::Updated { old, new } => Event::Updated {
                old: f(old),
                new: f(new),
            },
            Event::Deleted(o) => Event::Deleted(f(o)),
            Event::Synced => Event::Synced,
        }
    }
}

/// An object seen through its metadata only (any kind's full object, or a
/// `PartialObjectMetadata`).
pub trait Meta: Send + Sync {
    /// The object's metadata.
    fn object_meta(&self) -> &ObjectMeta;
}

impl<K: Resource + Send + Sync> Meta for K {
    fn object_meta(&self) -> &ObjectMeta {
        self.meta()
    }
}

/// An index: the values an object is filed under (none: not filed).
pub type IndexFn<K> = fn(&K) -> Vec<String>;

/// The key of an object in a cache: `namespace/name` (`/name` when it has
/// no namespace).
fn key_of(meta: &ObjectMeta) -> Arc<str> {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
    .into()
}

struct Index<K> {
    values_of: IndexFn<K>,
    keys: HashMap<String, HashSet<Arc<str>>>,
}

impl<K> Index<K> {
    fn file(&mut self, key: &Arc<str>, object: &K) {
        for value in (self.values_of)(object) {
            self.keys.entry(value).or_default().insert(key.clone());
        }
    }

    fn unfile(&mut self, key: &str, object: &K) {
        for value in (self.values_of)(object) {
            if let Some(keys) = self.keys.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.keys.remove(&value);
                }
            }
        }
    }
}

/// Hands one event to a subscriber; false once it has gone.
type Subscriber<K> = Box<dyn Fn(&Event<K>) -> bool + Send + Sync>;

/// A kind's cache: objects, indexes and subscribers, changed together
/// under one lock so no reader sees one without the others.
struct State<K> {
    objects: HashMap<Arc<str>, Arc<K>>,
    indexes: HashMap<&'static str, Index<K>>,
    subscribers: Vec<Subscriber<K>>,
    synced: bool,
}

impl<K: Resource> State<K> {
    fn new() -> Self {
        State {
            objects: HashMap::new(),
            indexes: HashMap::new(),
            subscribers: Vec::new(),
            synced: false,
        }
    }

    fn tell(&mut self, event: Event<K>) {
        self.subscribers.retain(|s| s(&event));
    }

    fn put(&mut self, object: Arc<K>) -> Option<Arc<K>> {
        let key = key_of(object.meta());
        let old = self.objects.insert(key.clone(), object.clone());
        for index in self.indexes.values_mut() {
            if let Some(old) = &old {
                index.unfile(&key, old);
            }
            index.file(&key, &object);
        }
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        for index in self.indexes.values_mut() {
            index.unfile(key, &old);
        }
        Some(old)
    }

    /// An object was created or changed.
    fn apply(&mut self, object: K) {
        let new = Arc::new(object);
        let event = match self.put(new.clone()) {
            Some(old) => Event::Updated { old, new },
            None => Event::Added(new),
        };
        self.tell(event);
    }

    /// An object was deleted.
    fn delete(&mut self, object: K) {
        let key = key_of(object.meta());
        self.remove(&key);
        self.tell(Event::Deleted(Arc::new(object)));
    }

    /// A complete list: what changed since the cache's contents is told,
    /// what is missing from it is deleted.
    fn relist(&mut self, listed: Vec<K>) {
        let mut fresh = HashSet::with_capacity(listed.len());
        for object in listed {
            let key = key_of(object.meta());
            fresh.insert(key.clone());
            let unchanged = self.objects.get(&key).is_some_and(|old| {
                old.meta().resource_version.is_some()
                    && old.meta().resource_version == object.meta().resource_version
            });
            if !unchanged {
                self.apply(object);
            }
        }
        let gone: Vec<Arc<str>> = self
            .objects
            .keys()
            .filter(|k| !fresh.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.remove(&key) {
                self.tell(Event::Deleted(old));
            }
        }
        self.synced = true;
        self.tell(Event::Synced);
    }

    /// Adds a subscriber, first told of every object cached (and that the
    /// cache is synced, if it is).
    fn subscribe(&mut self, subscriber: Subscriber<K>) {
        let mut alive = true;
        for object in self.objects.values() {
            alive = alive && subscriber(&Event::Added(object.clone()));
        }
        if self.synced {
            alive = alive && subscriber(&Event::Synced);
        }
        if alive {
            self.subscribers.push(subscriber);
        }
    }

    fn add_index(&mut self, name: &'static str, values_of: IndexFn<K>) {
        if self.indexes.contains_key(name) {
            return;
        }
        let mut index = Index {
            values_of,
            keys: HashMap::new(),
        };
        for (key, object) in &self.objects {
            index.file(key, object);
        }
        self.indexes.insert(name, index);
    }

    fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let index = self
            .indexes
            .get(name)
            .unwrap_or_else(|| panic!("no index {name:?} was added to this informer"));
        index
            .keys
            .get(value)
            .into_iter()
            .flatten()
            .filter_map(|key| self.objects.get(key).cloned())
            .collect()
    }
}

struct Shared<K> {
    state: RwLock<State<K>>,
    synced: watch::Sender<bool>,
}

/// The shared cache of one kind, with its indexes and subscriptions. Cheap
/// to clone: clones share the cache.
pub struct Informer<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts the one list and watch of `api` that feeds this cache.
    fn start(&self, api: Api<K>) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listed: Vec<K> = Vec::new();
            while let Some(event) = events.next().await {
                // Errors are retried by the watcher, after the back-off.
                let Ok(event) = event else { continue };
                match event {
                    watcher::Event::Init => listed.clear(),
                    watcher::Event::InitApply(object) => listed.push(object),
                    watcher::Event::InitDone => {
                        shared.write().relist(std::mem::take(&mut listed));
                        shared.synced.send_replace(true);
                    }
                    watcher::Event::Apply(object) => shared.write().apply(object),
                    watcher::Event::Delete(object) => shared.write().delete(object),
                }
            }
        });
    }
}

impl<K> Shared<K> {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<K>> {
        self.state.write().expect("an informer's cache")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<K>> {
        self.state.read().expect("an informer's cache")
    }
}

impl<K: Resource + Send + Sync + 'static> Informer<K> {
    /// An informer fed by nothing yet (see [`Informer::start`]).
    fn new() -> Self {
        Informer {
            shared: Arc::new(Shared {
                state: RwLock::new(State::new()),
                synced: watch::Sender::new(false),
            }),
        }
    }

    /// An informer holding `objects`, synced, that no watch feeds: for
    /// tests of what reads informers.
    pub fn fixed(objects: Vec<K>) -> Self {
        let informer = Self::new();
        informer.shared.write().relist(objects);
        informer.shared.synced.send_replace(true);
        informer
    }

    /// The object `namespace/name` (namespace `""` for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = format!("{namespace}/{name}");
        self.shared.read().objects.get(key.as_str()).cloned()
    }

    /// Every object cached.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.shared.read().objects.values().cloned().collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.shared.read().objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the index `name` (a no-op if it exists): each object is filed
    /// under the values `values_of` gives it, now and on every change.
    pub fn add_index(&self, name: &'static str, values_of: IndexFn<K>) -> &Self {
        self.shared.write().add_index(name, values_of);
        self
    }

    /// The objects filed under `value` in the index `name`.
    ///
    /// # Panics
    /// If no index `name` was added: that is a wiring mistake.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        self.shared.read().by_index(name, value)
    }

    /// How many objects are filed under `value` in the index `name` (to
    /// pick the rarest of several values before reading any).
    pub fn count(&self, name: &str, value: &str) -> usize {
        let state = self.shared.read();
        let index = state.indexes.get(name);
        index
            .and_then(|i| i.keys.get(value))
            .map_or(0, HashSet::len)
    }

    /// A subscription: every object cached now as `Added` (then `Synced` if
    /// the cache is), then every change as it is cached.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .write()
            .subscribe(Box::new(move |e| tx.send(e.clone()).is_ok()));
        rx
    }

    /// Runs `handler` on every event of a new subscription, in order, in a
    /// task of its own (client-go's `AddEventHandler`).
    pub fn on_event(&self, mut handler: impl FnMut(Event<K>) + Send + 'static) {
        let mut events = self.subscribe();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                handler(event);
            }
        });
    }

    /// Returns once the cache holds its first complete list.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Whether the cache holds a complete list.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }
}

/// What a metadata reader asks of a kind's cache, whatever it holds.
trait MetaSource: Send + Sync {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<dyn Meta>>;
    fn list(&self) -> Vec<Arc<dyn Meta>>;
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<dyn Meta>>;
    fn synced(&self) -> watch::Receiver<bool>;
}

impl<K: Resource + Send + Sync + 'static> MetaSource for Informer<K> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<dyn Meta>> {
        Informer::get(self, namespace, name).map(|o| o as Arc<dyn Meta>)
    }

    fn list(&self) -> Vec<Arc<dyn Meta>> {
        Informer::list(self)
            .into_iter()
            .map(|o| o as Arc<dyn Meta>)
            .collect()
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<dyn Meta>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let forward = move |e: &Event<K>| tx.send(e.map(|o| o.clone() as Arc<dyn Meta>)).is_ok();
        self.shared.write().subscribe(Box::new(forward));
        rx
    }

    fn synced(&self) -> watch::Receiver<bool> {
        self.shared.synced.subscribe()
    }
}

/// A kind seen through its objects' metadata (for the garbage collector):
/// the full-object informer's objects when the kind has one, else those of
/// a metadata-only watch.
#[derive(Clone)]
pub struct MetaInformer {
    source: Arc<dyn MetaSource>,
}

impl MetaInformer {
    /// The object `namespace/name`'s metadata.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<dyn Meta>> {
        self.source.get(namespace, name)
    }

    /// Every object's metadata.
    pub fn list(&self) -> Vec<Arc<dyn Meta>> {
        self.source.list()
    }

    /// A subscription, as [`Informer::subscribe`].
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<dyn Meta>> {
        self.source.subscribe()
    }

    /// Returns once the cache holds its first complete list.
    pub async fn wait_synced(&self) {
        let _ = self.source.synced().wait_for(|s| *s).await;
    }
}

/// A kind's place in the set.
struct Entry {
    /// The full-object informer (an `Informer<K>`), if one was asked for.
    full: Option<Box<dyn Any + Send + Sync>>,
    /// What metadata readers read.
    meta: Arc<dyn MetaSource>,
}

/// The informers of one process: at most one watch per kind, started when
/// the kind is first asked for. Cheap to clone: clones share the set.
///
/// Ask for the full-object informers of a kind before its metadata view
/// (wire the garbage collector last): a metadata view asked first starts a
/// metadata-only watch, which a later full informer cannot reuse.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

/// The name a kind is known by in the set: `group/version/plural`.
fn kind_key(group: &str, version: &str, plural: &str) -> String {
    format!("{group}/{version}/{plural}")
}

impl Informers {
    /// A set watching through `client` (one client for every watch: who
    /// watched is not what the audit trail records; writers use their own).
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            entries: Arc::default(),
        }
    }

    /// The informer of every `K`, started on first use.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = kind_key(&K::group(&()), &K::version(&()), &K::plural(&()));
        let mut entries = self.entries.lock().expect("the informer set");
        if let Some(full) = entries.get(&key).and_then(|e| e.full.as_ref()) {
            return full
                .downcast_ref::<Informer<K>>()
                .expect("one Rust type per kind")
                .clone();
        }
        debug_assert!(
            !entries.contains_key(&key),
            "{key} is watched for its metadata already: ask for full informers first"
        );
        let informer = Informer::<K>::new();
        informer.start(Api::all(self.client.clone()));
        entries.insert(
            key,
            Entry {
                full: Some(Box::new(informer.clone())),
                meta: Arc::new(informer.clone()),
            },
        );
        informer
    }

    /// The metadata of every object of `resource`: served by the kind's
    /// full informer if it has one, else by a metadata-only watch.
    pub fn metadata(&self, resource: &ApiResource) -> MetaInformer {
        let key = kind_key(&resource.group, &resource.version, &resource.plural);
        let mut entries = self.entries.lock().expect("the informer set");
        let entry = entries.entry(key).or_insert_with(|| {
            let informer = Informer::<PartialObjectMeta<DynamicObject>>::new();
            informer.start(Api::all_with(self.client.clone(), resource));
            Entry {
                full: None,
                meta: Arc::new(informer),
            }
        });
        MetaInformer {
            source: entry.meta.clone(),
        }
    }

    /// The kinds watched (`group/version/plural`), sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .entries
            .lock()
            .expect("the informer set")
            .keys()
            .cloned()
            .collect();
        kinds.sort();
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(namespace: &str, name: &str, node: &str, version: &str) -> Pod {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
            "spec": {"containers": [], "nodeName": node},
        }))
        .unwrap();
        if node.is_empty() {
            pod.spec.as_mut().unwrap().node_name = None;
        }
        pod
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        let mut names: Vec<String> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    fn heard(rx: &mut mpsc::UnboundedReceiver<Event<Pod>>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            let name = |p: &Arc<Pod>| p.metadata.name.clone().unwrap();
            out.push(match e {
                Event::Added(p) => format!("+{}", name(&p)),
                Event::Updated { old, new } => format!(
                    "~{}@{}->{}",
                    name(&new),
                    old.metadata.resource_version.as_deref().unwrap(),
                    new.metadata.resource_version.as_deref().unwrap()
                ),
                Event::Deleted(p) => format!("-{}", name(&p)),
                Event::Synced => "synced".into(),
            });
        }
        out
    }

    fn subscribe(state: &mut State<Pod>) -> mpsc::UnboundedReceiver<Event<Pod>> {
        let (tx, rx) = mpsc::unbounded_channel();
        state.subscribe(Box::new(move |e| tx.send(e.clone()).is_ok()));
        rx
    }

    #[test]
    fn indexes_follow_every_change() {
        let mut state = State::<Pod>::new();
        state.apply(pod("a", "p1", "n1", "1"));
        state.add_index("node", index::pod_node_name);
        state.apply(pod("a", "p2", "n1", "2"));
        state.apply(pod("b", "p3", "", "3"));
        assert_eq!(names(state.by_index("node", "n1")), ["p1", "p2"]);
        // Bound elsewhere: filed under its new node only.
        state.apply(pod("a", "p1", "n2", "4"));
        assert_eq!(names(state.by_index("node", "n1")), ["p2"]);
        assert_eq!(names(state.by_index("node", "n2")), ["p1"]);
        state.delete(pod("a", "p2", "n1", "5"));
        assert!(state.by_index("node", "n1").is_empty());
        assert!(
            !state.indexes["node"].keys.contains_key("n1"),
            "emptied values go"
        );
        assert_eq!(state.objects.len(), 2);
    }

    #[test]
    fn subscribers_hear_the_cache_then_changes_with_the_old_object() {
        let mut state = State::<Pod>::new();
        state.apply(pod("a", "p1", "", "1"));
        state.relist(vec![pod("a", "p1", "", "1")]);
        let mut rx = subscribe(&mut state);
        assert_eq!(heard(&mut rx), ["+p1", "synced"]);
        state.apply(pod("a", "p1", "n1", "2"));
        state.delete(pod("a", "p1", "n1", "3"));
        assert_eq!(heard(&mut rx), ["~p1@1->2", "-p1"]);
        drop(rx);
        state.apply(pod("a", "p2", "", "4"));
        assert!(state.subscribers.is_empty(), "gone subscribers are dropped");
    }

    #[test]
    fn a_relist_tells_what_changed_and_deletes_what_went() {
        let mut state = State::<Pod>::new();
        state.add_index("node", index::pod_node_name);
        for (name, version) in [("kept", "1"), ("changed", "2"), ("gone", "3")] {
            state.apply(pod("a", name, "n1", version));
        }
        let mut rx = subscribe(&mut state);
        heard(&mut rx);
        state.relist(vec![
            pod("a", "kept", "n1", "1"),
            pod("a", "changed", "n1", "7"),
            pod("a", "new", "n1", "8"),
        ]);
        let mut told = heard(&mut rx);
        assert_eq!(told.pop().as_deref(), Some("synced"));
        told.sort();
        assert_eq!(told, ["+new", "-gone", "~changed@2->7"]);
        assert_eq!(
            names(state.by_index("node", "n1")),
            ["changed", "kept", "new"]
        );
    }

    #[test]
    fn objects_are_shared_not_copied() {
        let mut state = State::<Pod>::new();
        state.add_index("namespace", index::namespace);
        state.apply(pod("a", "p1", "", "1"));
        let mut rx = subscribe(&mut state);
        let Ok(Event::Added(heard)) = rx.try_recv() else {
            panic!("the cached pod")
        };
        let cached = state.objects.values().next().unwrap();
        assert!(Arc::ptr_eq(&heard, cached));
        assert!(Arc::ptr_eq(&state.by_index("namespace", "a")[0], cached));
    }
}
