//! The error of a use case run for a command, a button or a job: what went wrong,
//! with its cause kept, how the command ended, and what the user reads. It lives
//! apart from `commands/` so that the use cases commands call (verification,
//! dispatch) can return it without depending on the command registry.

use crate::dispatch::DispatchError;
use crate::github::api::GitHubError;
use crate::jobs::QueueError;
use crate::store::{Outcome, StoreError};

/// GitHub cannot be called: the variables it needs are missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GitHub is not configured: set {}", .missing.join(" and "))]
pub struct GitHubNotConfigured {
    pub missing: Vec<&'static str>,
}

/// Why a command body failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input the user can fix; shown as is.
    #[error("{0}")]
    Invalid(String),
    /// Something Valine needs is not configured; shown as is.
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The caller may not do this (beyond the command's own access rule, e.g. pressing
    /// someone else's button); shown as is.
    #[error("{0}")]
    Denied(String),
}

impl From<GitHubNotConfigured> for CommandError {
    fn from(e: GitHubNotConfigured) -> Self {
        CommandError::NotConfigured(e.to_string())
    }
}

/// A dispatch that was not made fails the command with the cause's own message.
impl From<DispatchError> for CommandError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Refused(e) | DispatchError::GitHub(e) => CommandError::GitHub(e),
            DispatchError::Store(e) => CommandError::Store(e),
        }
    }
}

impl CommandError {
    /// The stable class logged as `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            CommandError::Invalid(_) => "invalid_input",
            CommandError::NotConfigured(_) => "not_configured",
            CommandError::GitHub(e) => e.error_type(),
            CommandError::Store(_) | CommandError::Queue(_) => "store_unavailable",
            CommandError::Denied(_) => "denied",
        }
    }

    /// How a command that failed this way ended (the `outcome` of its completion line).
    pub fn outcome(&self) -> Outcome {
        match self {
            CommandError::Invalid(_) => Outcome::Invalid,
            CommandError::Denied(_) => Outcome::Denied,
            CommandError::NotConfigured(_)
            | CommandError::GitHub(_)
            | CommandError::Store(_)
            | CommandError::Queue(_) => Outcome::Error,
        }
    }

    /// What the user reads. Errors with a known cause say it (the GitHub client's
    /// messages name the fix); anything else is the generic line with the trace id.
    pub fn user_message(&self, trace_short: &str) -> String {
        match self {
            CommandError::Invalid(m) | CommandError::NotConfigured(m) => format!("❌ {m}"),
            CommandError::GitHub(e) => format!("❌ {e} (trace {trace_short})"),
            CommandError::Store(_) | CommandError::Queue(_) => {
                format!("❌ Something went wrong (trace {trace_short})")
            }
            CommandError::Denied(m) => m.clone(),
        }
    }
}
