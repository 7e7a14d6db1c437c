//! Valine: a ChatOps orchestrator that runs and watches GitHub Actions deployments from
//! Discord. The design is described in `docs/design.md`; this crate is laid out as a
//! small hexagon.
//!
//! ```text
//! edges        main.rs → cli.rs        server.rs (axum Router)      lambda.rs (Lambda events)
//!                 │                         │
//! protocol     discord/ (signature, interaction, response, api, register)
//!              github/ (api, model, webhook wire shapes, git_ref)
//!              probe/ (SSRF-safe probe targets and client, certificate expiry)
//!                 │
//! use cases    commands/ (Command trait, registry, pipeline, one file per command)
//!              dispatch (dispatch once)   runs/ (what a run event triggers)
//!              verify/ (checks, reports)   work (job handler)
//!              deliver, settings, trace, ratelimit, auth, dryrun, error
//! ports        store/ (traits, records and their rules, sqlite.rs, conformance suite)
//!              jobs/ (Job, JobQueue port: store queue and SQS, runner, worker)   clock
//! ```
//!
//! - [`config`]: typed configuration, validated once at start-up.
//! - [`app`]: the wired adapters, queue and clock shared by the server, `invoke` and
//!   the worker.
//! - [`cli`]: the sub-commands of the `valine` binary; [`ops`]: the operator's commands
//!   (`doctor`, `smoke`, `traces`, `cleanup`).
//! - [`server`]: the HTTP router (interactions, webhook, health).
//! - [`demo`]: `valine demo`, Valine against a simulated GitHub repository and site on
//!   loopback.
//! - `lambda` (feature `aws`): the Lambda edge: HTTP API events through the same
//!   router, SQS events through the job runner.
//! - [`commands`]: the `Command` trait, the registry and the pipeline every command and
//!   button press runs through.
//! - [`dispatch`]: dispatch once: starting a workflow run that is never sent twice.
//! - [`runs`]: what a workflow run event triggers, for webhooks and polls alike, and
//!   the follow-up jobs (announce, follow, poll) with their messages.
//! - [`jobs`]: durable background work: the job kinds, the queue port, the runner of
//!   one job record and the worker loop; [`work`] maps each job kind to its use case.
//! - [`verify`]: deployment verification: checks, reports, one verification per run
//!   attempt.
//! - [`probe`]: the adapter verification probes through: SSRF-safe probe targets and
//!   client, a certificate's expiry date.
//! - [`store`]: persistence behind one interface, with the rules beside the records.
//! - [`deliver`]: edits of deferred replies and channel posts with nonces.
//! - [`error`]: the typed error of a use case.
//! - [`dryrun`]: the DRY_RUN gate every request that changes something outside Valine
//!   passes through.
//! - [`settings`]: the frontend and API base in use (stored setting over environment).
//! - [`trace`], [`ratelimit`], [`auth`]: per-command traces, the per-user rate limit,
//!   authorization.
//! - [`clock`]: the one clock every lease, poll and expiry reads.
//! - [`telemetry`]: one flat JSON object per log line; [`secret`]: redaction.

pub mod allocator;
pub mod app;
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod discord;
pub mod dispatch;
pub mod dryrun;
pub mod error;
pub mod format;
pub mod github;
pub mod http_client;
pub mod jobs;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod ratelimit;
pub mod runs;
pub mod secret;
pub mod server;
pub mod settings;
#[cfg(feature = "aws")]
pub mod ssm;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod verify;
pub mod work;

/// The version reported by `/status`, `/healthz` and the GitHub `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
