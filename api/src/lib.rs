//! Skiff's API core, without I/O: which resources exist and how they are
//! named, addressed and stored ([`registry`]); label and field selectors
//! ([`labels`], [`fields`]); and the name rules objects must follow
//! ([`validation`]). Everything here is pure and tested without a runtime.

pub mod defaults;
pub mod deletion;
pub mod fields;
pub mod immutable;
pub mod labels;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod service_env;
pub mod services;
pub mod specs;
pub mod strategic;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod wire;

pub use registry::{NameRule, Registry, ResourceType, Subresource};
