//! Deployment verification (see `docs/design.md#verification` and
//! `docs/design.md#ssrf-policy`): which URLs may be probed ([`target`]), the probe client
//! that enforces it at connect time ([`probe`]), the checks of a deploy run ([`checks`])
//! and their report ([`report`]).
//!
//! Other code calls [`verify_run`] and renders the [`Verification`] it returns with
//! [`Verification::to_reply`].

pub mod cert;
pub mod checks;
pub mod probe;
pub mod report;
pub mod shared;
pub mod target;

pub use checks::{Verification, verify_run};
pub use shared::verify_once;
