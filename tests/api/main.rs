//! Black-box tests: Valine's HTTP surface and binary against fake GitHub and Discord
//! APIs on 127.0.0.1.

mod fakes;
mod helpers;

mod binary;
mod block;
mod cli_edges;
mod demo;
mod deploy;
mod diagnose_dispatch;
mod edges;
mod faults;
mod followups;
mod github;
mod interactions;
mod jobs;
#[cfg(feature = "conformance")]
mod lambda;
mod limits;
mod metrics;
mod ops;
mod rollback;
#[cfg(feature = "conformance")]
mod runtime_api;
mod settings;
mod status;
mod store_faults;
mod tolerant;
mod verify;
mod webhook;
