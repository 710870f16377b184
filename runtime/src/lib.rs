//! What Skiff's components (scheduler, controllers, node agents) share as
//! API clients: the shared informer set and the event recorder.

pub mod events;
pub mod informers;

pub use events::Recorder;
pub use informers::{Event, Informer, Informers, MetaInformer};

/// The current time as Kubernetes writes it: RFC 3339, whole seconds.
pub fn now() -> String {
    format!("{:.0}", jiff::Timestamp::now())
}
