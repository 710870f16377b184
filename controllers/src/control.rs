//! The writes a controller makes, behind one narrow interface (upstream's
//! `PodControl` and `RSControl`): [`ApiControl`] makes them through the API
//! and records events, and the tests' [`fake::Fake`] only counts them, so a
//! controller's whole `sync` is tested against fixed informers without a
//! server.

use std::future::Future;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use skiff_runtime::events::{Recorder, Type};

/// What a controller writes: objects of any kind, by their resource.
pub trait Control: Send + Sync + 'static {
    /// Creates `object` in `namespace`, answering the name it got (the
    /// server's choice, for a `generateName`).
    fn create(
        &self,
        resource: &ApiResource,
        namespace: &str,
        object: Value,
    ) -> impl Future<Output = Result<String, kube::Error>> + Send;

    /// Merge-patches the object `namespace/name`.
    fn patch(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Merge-patches the `/status` of the object `namespace/name`.
    fn patch_status(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Deletes the object `namespace/name`, its dependents in the
    /// background.
    fn delete(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Records an event about `object`.
    fn record(&self, object: ObjectReference, kind: Type, reason: &str, message: String);
}

/// The real writes: through a client, with events from one component.
pub struct ApiControl {
    client: Client,
    events: Recorder,
}

impl ApiControl {
    /// Writes through `client`, recording events as `component`.
    pub fn new(client: Client, component: &str) -> Self {
        ApiControl {
            events: Recorder::new(client.clone(), component, None),
            client,
        }
    }

    fn api(&self, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, resource)
    }
}

impl Control for ApiControl {
    async fn create(
        &self,
        resource: &ApiResource,
        namespace: &str,
        object: Value,
    ) -> Result<String, kube::Error> {
        let object: DynamicObject =
            serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
        let created = self
            .api(resource, namespace)
            .create(&PostParams::default(), &object)
            .await?;
        Ok(created.name_any())
    }

    async fn patch(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<(), kube::Error> {
        let api = self.api(resource, namespace);
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(drop)
    }

    async fn patch_status(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<(), kube::Error> {
        let api = self.api(resource, namespace);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(drop)
    }

    async fn delete(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Result<(), kube::Error> {
        let api = self.api(resource, namespace);
        api.delete(name, &DeleteParams::background())
            .await
            .map(drop)
    }

    fn record(&self, object: ObjectReference, kind: Type, reason: &str, message: String) {
        self.events.record(object, kind, reason, message);
    }
}

#[cfg(test)]
pub mod fake {
    //! A [`Control`] that writes nothing and remembers every call.

    use std::sync::Mutex;

    use super::*;

    /// One call made of the fake.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Action {
        /// `create`, `patch`, `patch_status`, `delete` or `event`.
        pub verb: &'static str,
        /// The resource's plural (the object's kind, for an event).
        pub resource: String,
        /// The object's name (the event's reason, for an event).
        pub name: String,
        /// What was sent: the object, the patch, or the event's message.
        pub body: Value,
    }

    /// Answers an action with an error instead of success.
    type Failure = Box<dyn Fn(&Action) -> Option<kube::Error> + Send + Sync>;

    /// Counts what a controller does; fails the calls `fail` picks.
    #[derive(Default)]
    pub struct Fake {
        actions: Mutex<Vec<Action>>,
        fail: Option<Failure>,
    }

    impl Fake {
        /// A fake that fails each call `fail` answers an error for.
        pub fn failing(
            fail: impl Fn(&Action) -> Option<kube::Error> + Send + Sync + 'static,
        ) -> Self {
            Fake {
                actions: Mutex::default(),
                fail: Some(Box::new(fail)),
            }
        }

        /// Every call so far, in order, and forgets them.
        pub fn take(&self) -> Vec<Action> {
            std::mem::take(&mut self.actions.lock().unwrap())
        }

        fn call(
            &self,
            verb: &'static str,
            resource: &str,
            name: &str,
            body: Value,
        ) -> Result<(), kube::Error> {
            let action = Action {
                verb,
                resource: resource.to_owned(),
                name: name.to_owned(),
                body,
            };
            let failure = self.fail.as_ref().and_then(|f| f(&action));
            self.actions.lock().unwrap().push(action);
            failure.map_or(Ok(()), Err)
        }
    }

    /// An API error with `code`, as the server would answer it.
    pub fn status(code: u16, reason: &str) -> kube::Error {
        let status = serde_json::json!({"code": code, "reason": reason, "message": reason});
        kube::Error::Api(Box::new(serde_json::from_value(status).unwrap()))
    }

    /// Merges `extra` into `base`, as a JSON merge patch without deletes:
    /// a test's variation of a base object.
    pub fn merge(base: &mut Value, extra: Value) {
        match (base, extra) {
            (Value::Object(b), Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    impl Control for Fake {
        async fn create(
            &self,
            resource: &ApiResource,
            _namespace: &str,
            object: Value,
        ) -> Result<String, kube::Error> {
            let metadata = &object["metadata"];
            let name = match metadata["name"].as_str() {
                Some(name) => name.to_owned(),
                None => {
                    let made = self.actions.lock().unwrap().len();
                    format!("{}{made}", metadata["generateName"].as_str().unwrap_or(""))
                }
            };
            self.call("create", &resource.plural, &name, object)
                .map(|()| name)
        }

        async fn patch(
            &self,
            resource: &ApiResource,
            _namespace: &str,
            name: &str,
            patch: Value,
        ) -> Result<(), kube::Error> {
            self.call("patch", &resource.plural, name, patch)
        }

        async fn patch_status(
            &self,
            resource: &ApiResource,
            _namespace: &str,
            name: &str,
            patch: Value,
        ) -> Result<(), kube::Error> {
            self.call("patch_status", &resource.plural, name, patch)
        }

        async fn delete(
            &self,
            resource: &ApiResource,
            _namespace: &str,
            name: &str,
        ) -> Result<(), kube::Error> {
            self.call("delete", &resource.plural, name, Value::Null)
        }

        fn record(&self, object: ObjectReference, _kind: Type, reason: &str, message: String) {
            let kind = object.kind.unwrap_or_default();
            let _ = self.call("event", &kind, reason, Value::String(message));
        }
    }
}
