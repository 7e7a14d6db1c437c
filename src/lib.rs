//! Valine: a ChatOps orchestrator that runs and watches GitHub Actions deployments from
//! Discord. The contract is `SPEC.md`; this crate is laid out as a small hexagon.
//!
//! ```text
//! edges        main.rs (CLI)   server.rs (axum Router)          later: lambda.rs
//!                 │                 │
//! protocol     discord/ (signature, interaction, response, api)   github/ (api, model)
//!                 │
//! use cases    commands/ (one file per slash command)  ──►  jobs/ (durable worker)
//!                 │                                      trace, ratelimit, auth
//! adapters     store/ (trait + sqlite.rs)   github/api.rs   discord/api.rs
//! ```
//!
//! - [`config`]: typed configuration, validated once at start-up.
//! - [`app`]: the wired adapters shared by the server, `invoke` and the worker.
//! - [`server`]: the HTTP router (interactions, webhook, health).
//! - [`commands`]: the command registry and the pipeline every command runs through.
//! - [`jobs`]: durable background work with leases and retries.
//! - [`verify`]: deployment verification: SSRF-safe probe targets and client, checks, reports.
//! - [`store`]: persistence behind one interface.
//! - [`telemetry`]: one flat JSON object per log line.
//! - [`dryrun`]: the DRY_RUN gate every request that changes something outside Valine
//!   passes through.
//! - [`verify`]: the URL rules for probe targets and settings.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod discord;
pub mod dryrun;
pub mod format;
pub mod github;
pub mod jobs;
pub mod ratelimit;
pub mod secret;
pub mod server;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod verify;

/// The version reported by `/status`, `/healthz` and the GitHub `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
