//! What Skiff's components (scheduler, controllers, node agents) share as
//! API clients.

pub mod events;

pub use events::Recorder;

/// The current time as Kubernetes writes it: RFC 3339, whole seconds.
pub fn now() -> String {
    format!("{:.0}", jiff::Timestamp::now())
}
