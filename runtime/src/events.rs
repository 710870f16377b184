//! Events as upstream records them (core/v1 `Event`), aggregated: the same
//! reason and message about the same object from the same component bumps
//! `count` and `lastTimestamp` of one Event instead of writing a new one,
//! so a hot loop cannot flood the store. Recording never blocks the
//! caller: events go through a bounded queue to one writer task, and are
//! dropped (as upstream's broadcaster drops them) when it is full.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

/// How many events may wait to be written.
const QUEUE: usize = 4096;
/// How many aggregation keys are remembered.
const REMEMBERED: usize = 8192;

/// An event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Things going as they should.
    Normal,
    /// Something a user may want to look at.
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

struct Record {
    object: ObjectReference,
    kind: Type,
    reason: String,
    message: String,
}

/// Records events for one component (`default-scheduler`, `kubelet`, ...).
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
}

/// The reference to `object` an Event is about.
pub fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(object.name_any()),
        namespace: object.namespace(),
        uid: object.uid(),
        resource_version: object.resource_version(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder writing as `component` (on `host`, for node agents).
    pub fn new(client: Client, component: &str, host: Option<String>) -> Self {
        let (queue, records) = mpsc::channel(QUEUE);
        let source = EventSource {
            component: Some(component.to_owned()),
            host,
        };
        tokio::spawn(write(client, source, records));
        Recorder { queue }
    }

    /// Records an event about `object` (dropped if the queue is full).
    pub fn record(&self, object: ObjectReference, kind: Type, reason: &str, message: String) {
        let _ = self.queue.try_send(Record {
            object,
            kind,
            reason: reason.to_owned(),
            message,
        });
    }
}

/// The aggregation key of a record.
fn key(source: &EventSource, record: &Record) -> String {
    let o = &record.object;
    [
        source.component.as_deref().unwrap_or_default(),
        source.host.as_deref().unwrap_or_default(),
        o.namespace.as_deref().unwrap_or_default(),
        o.name.as_deref().unwrap_or_default(),
        o.uid.as_deref().unwrap_or_default(),
        record.kind.as_str(),
        &record.reason,
        &record.message,
    ]
    .join("\u{0}")
}

async fn write(client: Client, source: EventSource, mut records: mpsc::Receiver<Record>) {
    // Aggregation key -> (namespace, event name, count).
    let mut seen: HashMap<String, (String, String, i32)> = HashMap::new();
    while let Some(record) = records.recv().await {
        let namespace = record
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let key = key(&source, &record);
        let now = Time(jiff::Timestamp::now());
        if let Some((ns, name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now});
            let api: Api<Event> = Api::namespaced(client.clone(), ns);
            if api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                continue;
            }
            // Gone (deleted, or its namespace): write a new one.
            seen.remove(&key);
        }
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        let object_name = record.object.name.clone().unwrap_or_default();
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{object_name}.{:x}", nanos as u64);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: record.object,
            reason: Some(record.reason),
            message: Some(record.message),
            type_: Some(record.kind.as_str().into()),
            source: Some(source.clone()),
            reporting_component: source.component.clone(),
            reporting_instance: source.host.clone().or(source.component.clone()),
            // Microseconds, so a timeline orders events among API calls.
            event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                jiff::Timestamp::now(),
            )),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        if api.create(&PostParams::default(), &event).await.is_ok() {
            seen.insert(key, (namespace, name, 1));
        }
    }
}
