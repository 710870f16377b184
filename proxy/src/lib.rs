//! Skiff's node proxy, shaped as kube-proxy: Service and EndpointSlice
//! changes are recorded per key ([`tracker`]), the rules they ask for are
//! computed without I/O ([`model`]), and a mode turns the rules into the
//! kernel's ([`nftables`], [`ipvs`]) applying only what changed; [`run`] keeps one node's rules so.

pub mod health;
pub mod ipvs;
pub mod model;
pub mod netns;
pub mod nftables;
pub mod nla;
pub mod readback;
pub mod run;
pub mod tracker;
pub mod userspace;
