//! Valine: a ChatOps orchestrator that runs and watches GitHub Actions deployments from
//! Discord. The design is described in `docs/design.md`; this crate is laid out as a
//! small hexagon.
//!
//! ```text
//! edges        main.rs → cli.rs        server.rs (axum Router)      later: lambda.rs
//!                 │                         │
//! protocol     discord/ (signature, interaction, response, api, register)
//!              github/ (api, model, webhook, git_ref)
//!                 │
//! use cases    commands/ (pipeline + one file per slash command) ──► jobs/ (worker, runs)
//!              verify/ (target rules, probe client, checks, reports, shared verification)
//!              dispatch (the dispatch-once protocol), trace, ratelimit, auth, settings, dryrun
//! adapters     store/ (traits + sqlite.rs + conformance suite)
//!              github/api.rs   discord/api.rs   verify/probe.rs
//! ```
//!
//! - [`config`]: typed configuration, validated once at start-up.
//! - [`app`]: the wired adapters shared by the server, `invoke` and the worker.
//! - [`cli`]: the sub-commands of the `valine` binary.
//! - [`server`]: the HTTP router (interactions, webhook, health).
//! - [`commands`]: the command registry and the pipeline every command and button
//!   press runs through.
//! - [`jobs`]: durable background work with leases and retries; [`jobs::runs`] follows
//!   workflow runs after a webhook or a dispatch.
//! - [`verify`]: deployment verification: SSRF-safe probe targets and client, checks,
//!   reports, one verification per run attempt.
//! - [`store`]: persistence behind one interface.
//! - [`dispatch`]: dispatch once: starting a workflow run that is never sent twice.
//! - [`dryrun`]: the DRY_RUN gate every request that changes something outside Valine
//!   passes through.
//! - [`settings`]: the frontend and API base in use (stored setting over environment).
//! - [`trace`], [`ratelimit`], [`auth`]: per-command traces, the per-user rate limit,
//!   authorization.
//! - [`telemetry`]: one flat JSON object per log line; [`secret`]: redaction.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod discord;
pub mod dispatch;
pub mod dryrun;
pub mod error;
pub mod format;
pub mod github;
pub mod jobs;
pub mod ratelimit;
pub mod runs;
pub mod secret;
pub mod server;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod verify;
pub mod work;

/// The version reported by `/status`, `/healthz` and the GitHub `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
