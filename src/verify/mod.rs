//! Deployment verification (SPEC §6): which URLs may be probed ([`target`]), the probe
//! client that enforces it at connect time ([`probe`]), and the checks of a deploy run
//! with their report ([`checks`], [`report`]).

pub mod cert;
pub mod probe;
pub mod target;
