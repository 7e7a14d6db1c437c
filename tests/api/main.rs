//! Black-box tests: Valine's HTTP surface and binary against fake GitHub and Discord
//! APIs on 127.0.0.1.

mod fakes;
mod helpers;

mod binary;
mod deploy;
mod diagnose_dispatch;
mod faults;
mod followups;
mod interactions;
mod jobs;
mod limits;
mod metrics;
mod ops;
mod settings;
mod status;
mod store_faults;
mod verify;
mod webhook;
