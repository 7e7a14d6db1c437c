//! Deployment verification (see `docs/design.md#verification`): the checks of a deploy
//! run ([`checks`]) and their report ([`report`]). The URLs it may probe and the client
//! that probes them are the adapter in [`crate::probe`] (`docs/design.md#ssrf-policy`),
//! which knows nothing of runs or of the app.
//!
//! Other code calls [`verify_run`] and renders the [`Verification`] it returns with
//! [`Verification::to_reply`].

pub mod checks;
pub mod report;
pub mod shared;

pub use checks::{Verification, verify_run};
pub use shared::verify_once;
