//! Which pods each Service selects, shared by the Endpoints and
//! EndpointSlice controllers: the process's shared informers of Services
//! (indexed by selector pair) and of pods (indexed by label pair), so that a
//! pod's change finds the Services that select it, and a Service its pods,
//! without scanning every object (with 1,000 Services of 10 pods each, a
//! scan per event is what makes endpoints lag).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use skiff_runtime::informers::index::{self, pair};
use skiff_runtime::{Event, Informer, Informers};

use crate::workqueue::{key_of, WorkQueue};

/// Labels (or a Service's selector): key -> value.
pub type Labels = BTreeMap<String, String>;

/// Whether a Service's selector (a map of labels, all required) selects
/// `labels`. An empty selector selects nothing, as controllers treat it.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The objects of `namespace` filed (by `index`) under every pair of
/// `selector`, looked up through its rarest pair (none for an empty
/// selector).
pub fn selected_by<K>(
    informer: &Informer<K>,
    index: &str,
    namespace: &str,
    selector: &Labels,
    labels_of: fn(&K) -> &Labels,
) -> Vec<Arc<K>>
where
    K: kube::Resource + Send + Sync + 'static,
{
    let rarest = selector
        .iter()
        .map(|(k, v)| pair(namespace, k, v))
        .min_by_key(|p| informer.count(index, p));
    let Some(rarest) = rarest else {
        return Vec::new();
    };
    let mut found = informer.by_index(index, &rarest);
    found.retain(|o| selects(selector, labels_of(o)));
    found
}

/// The Services of `namespace` whose selector selects `labels`.
pub fn selecting(
    services: &Informer<Service>,
    namespace: &str,
    labels: &Labels,
) -> Vec<Arc<Service>> {
    let mut seen = HashSet::new();
    labels
        .iter()
        .flat_map(|(k, v)| services.by_index(index::SELECTOR, &pair(namespace, k, v)))
        .filter(|s| seen.insert(key_of(s.as_ref())))
        .filter(|s| selects(&selector_of(s), labels))
        .collect()
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
    pub services: Informer<Service>,
    /// Every pod, indexed by its labels.
    pub pods: Informer<Pod>,
    subscribers: Arc<Mutex<Vec<WorkQueue>>>,
}

impl ServicePods {
    /// Follows the Services and pods of the process's `informers`.
    pub fn start(informers: &Informers) -> Arc<Self> {
        let services = informers.get::<Service>();
        services.add_index(index::SELECTOR, index::service_selector_pairs);
        let pods = informers.get::<Pod>();
        pods.add_index(index::LABELS, index::label_pairs);
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
        {
            let (notify, all) = (notify.clone(), services.clone());
            services.on_event(move |event| match event.object() {
                Some(service) => notify(&mut std::iter::once(key_of(service.as_ref()))),
                None => notify(&mut all.list().iter().map(|s| key_of(s.as_ref()))),
            });
        }
        {
            let services = services.clone();
            pods.on_event(move |event| {
                let (before, after) = match &event {
                    Event::Added(pod) => (None, Some(pod)),
                    Event::Updated { old, new } => (Some(old), Some(new)),
                    Event::Deleted(pod) => (Some(pod), None),
                    Event::Synced => {
                        notify(&mut services.list().iter().map(|s| key_of(s.as_ref())));
                        return;
                    }
                };
                let mut keys = HashSet::new();
                for pod in before.iter().chain(after.iter()) {
                    let namespace = pod.namespace().unwrap_or_default();
                    let selecting = selecting(&services, &namespace, pod.labels());
                    keys.extend(selecting.iter().map(|s| key_of(s.as_ref())));
                }
                notify(&mut keys.into_iter());
            });
        }
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
        for service in self.services.list() {
            queue.add(key_of(service.as_ref()));
        }
        queue
    }

    /// Returns once both caches have been filled.
    pub async fn synced(&self) {
        futures::future::join(self.services.wait_synced(), self.pods.wait_synced()).await;
    }

    /// The pods `service` selects (none without a selector).
    pub fn pods_of(&self, service: &Service) -> Vec<Arc<Pod>> {
        let namespace = service.namespace().unwrap_or_default();
        let selector = selector_of(service);
        selected_by(&self.pods, index::LABELS, &namespace, &selector, |p| {
            p.labels()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn object<K: kube::Resource + Default>(namespace: &str, name: &str, labels: Labels) -> K {
        let mut o = K::default();
        let meta = o.meta_mut();
        (meta.namespace, meta.name) = (Some(namespace.into()), Some(name.into()));
        meta.labels = Some(labels);
        o
    }

    fn names<K: kube::Resource>(mut found: Vec<Arc<K>>) -> Vec<String> {
        found.sort_by_key(|o| o.meta().name.clone());
        found
            .iter()
            .map(|o| o.meta().name.clone().unwrap())
            .collect()
    }

    #[test]
    fn selection_both_ways_through_the_indexes() {
        // Pods by their labels, found by a Service's selector.
        let mut pods: Vec<Pod> = (0..50)
            .map(|i| {
                let app = format!("web-{}", i % 5);
                let labels = labels(&[("app", &app), ("env", "prod")]);
                object("ns", &format!("p{i}"), labels)
            })
            .collect();
        pods.push(object(
            "other",
            "q",
            labels(&[("app", "web-1"), ("env", "prod")]),
        ));
        let pods = Informer::fixed(pods);
        pods.add_index(index::LABELS, index::label_pairs);
        let found = selected_by(
            &pods,
            index::LABELS,
            "ns",
            &labels(&[("env", "prod"), ("app", "web-1")]),
            |p| p.labels(),
        );
        assert_eq!(
            names(found),
            ["p1", "p11", "p16", "p21", "p26", "p31", "p36", "p41", "p46", "p6"]
        );
        let none =
            |selector: &Labels| selected_by(&pods, index::LABELS, "ns", selector, |p| p.labels());
        assert!(none(&Labels::new()).is_empty());
        assert!(none(&labels(&[("app", "nope")])).is_empty());
        // Services by their selectors, found by a pod's labels.
        let service = |name: &str, selector: Labels| {
            let mut s: Service = object("ns", name, Labels::new());
            s.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some(selector),
                ..Default::default()
            });
            s
        };
        let services = Informer::fixed(vec![
            service("web", labels(&[("app", "web-1")])),
            service("prod", labels(&[("env", "prod")])),
            service("canary", labels(&[("app", "web-1"), ("track", "canary")])),
            service("none", Labels::new()),
        ]);
        services.add_index(index::SELECTOR, index::service_selector_pairs);
        let pod = labels(&[("app", "web-1"), ("env", "prod")]);
        assert_eq!(names(selecting(&services, "ns", &pod)), ["prod", "web"]);
        assert!(selecting(&services, "other", &pod).is_empty());
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
