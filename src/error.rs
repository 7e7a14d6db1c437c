//! The error of a use case run for a command, a button or a job: what went wrong,
//! with its cause kept, how the command ended, and what the user reads. It lives
//! apart from `commands/` so that the use cases commands call (verification,
//! dispatch) can return it without depending on the command registry. Conversions
//! from a use case's own error live beside that error (e.g. `dispatch::DispatchError`),
//! so this module depends only on the adapters' errors.
//!
//! [`chain`] is how an error goes into a log line: with every cause, because the
//! outermost message ("cannot reach GitHub at …: connection refused") is for the user
//! and the operator needs the rest ("… tcp connect error: Connection refused (os error
//! 111)").

use crate::github::api::GitHubError;
use crate::jobs::QueueError;
use crate::store::{Outcome, StoreError};

/// `error` and each of its causes, `: `-separated, for the `error.message` of a log
/// line: `tracing::warn!(error.message = %chain(&e), …)`. A cause whose text repeats
/// the one before (a wrapper that displays its source) is written once.
pub fn chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> ErrorChain<'a> {
    ErrorChain(error)
}

/// See [`chain`].
pub struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cause = self.0.source();
        while let Some(current) = cause {
            let text = current.to_string();
            if text != last && !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = current.source();
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot reach GitHub at https://ghe.example.com/api/v3: connection refused")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Repeats(#[from] Outer);

    #[test]
    fn a_chain_names_every_cause_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused (os error 111)",
        );
        let error = Repeats(Outer(io));
        assert_eq!(
            chain(&error).to_string(),
            "cannot reach GitHub at https://ghe.example.com/api/v3: connection refused: \
             tcp connect error: Connection refused (os error 111)"
        );
        let plain = std::io::Error::other("disk full");
        assert_eq!(chain(&plain).to_string(), "disk full");
    }
}
