//! What can go wrong talking to GitHub, worded for the Discord user (see
//! `docs/design.md#github-calls`).
//!
//! The `Display` strings are the runbook's causes and are shown to users as they are;
//! they quote GitHub's own `message` where there is no better cause, and never contain
//! the token (messages from GitHub are scrubbed before they get here). `error_type` gives
//! the stable class that logs carry as `error.type`.

use chrono::{DateTime, Utc};

/// Permission texts for [`GitHubError::Permission`]: what the token needs.
pub mod needs {
    /// Dispatches, cancels and re-runs.
    pub const ACTIONS_WRITE: &str = "repo + workflow scopes, or Actions: write";
    /// Reading workflows, runs and jobs.
    pub const ACTIONS_READ: &str = "repo scope, or Actions: read";
    /// Repository variables (`GITHUB_SYNC_SETTINGS`).
    pub const VARIABLES_WRITE: &str = "repo + workflow scopes, or Variables: write";
    /// Repository secrets (`GITHUB_SYNC_SETTINGS`).
    pub const SECRETS_WRITE: &str = "repo + workflow scopes, or Secrets: write";
    /// Reading a workflow file (`valine doctor`).
    pub const CONTENTS_READ: &str = "repo scope, or Contents: read";
    /// Listing the repository's webhooks (`valine doctor`).
    pub const HOOKS_READ: &str = "admin:repo_hook or repo scope, or Webhooks: read";
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// 401.
    #[error("GitHub token is invalid or expired — regenerate GITHUB_TOKEN")]
    Unauthorized,
    /// 403 that is not a rate limit. `needs` is one of [`needs`].
    #[error("GitHub token lacks permission (needs {needs})")]
    Permission { needs: &'static str },
    /// A rate limit whose wait would pass the caller's deadline, or that outlasted the
    /// retries.
    #[error("GitHub rate limit: retry after {} UTC", retry_at.format("%H:%M"))]
    RateLimited { retry_at: DateTime<Utc> },
    /// The configured workflow (file name, id or display name) does not exist.
    #[error("Workflow {workflow} not found in {repo} — check .github/workflows/")]
    WorkflowNotFound { workflow: String, repo: String },
    /// A display name that several workflow files share: a configuration error.
    #[error(
        "Workflow name \"{name}\" is shared by {} in {repo} — configure the file name instead",
        paths.join(" and ")
    )]
    AmbiguousWorkflow {
        name: String,
        repo: String,
        paths: Vec<String>,
    },
    /// 404 on anything but a workflow (a run, a job, a variable).
    #[error("GitHub API error 404: {message}")]
    NotFound { message: String },
    /// Any other refusal, quoting GitHub's message.
    #[error("GitHub API error {status}: {message}")]
    Api { status: u16, message: String },
    /// GitHub could not be reached or answered 5xx (after the retries that were allowed).
    #[error("GitHub is unavailable: {detail}")]
    Unavailable { status: Option<u16>, detail: String },
    /// A success answer that is not in the shape of GitHub's contract.
    #[error("GitHub answered in an unexpected shape: {detail}")]
    Decode { detail: String },
    /// The client could not be built (bad API base, unusable token characters).
    #[error("GitHub client configuration: {0}")]
    Config(String),
    /// DRY_RUN is on and a mutating request reached the client without going through
    /// the dry-run gate (`crate::dryrun`); it was not sent.
    #[error("DRY_RUN is on: {endpoint} was not sent")]
    DryRun { endpoint: String },
}

impl GitHubError {
    /// Stable snake_case class for logs and metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            GitHubError::Unauthorized => "github_unauthorized",
            GitHubError::Permission { .. } => "github_forbidden",
            GitHubError::RateLimited { .. } => "github_rate_limited",
            GitHubError::WorkflowNotFound { .. } => "github_workflow_not_found",
            GitHubError::AmbiguousWorkflow { .. } => "github_ambiguous_workflow",
            GitHubError::NotFound { .. } => "github_not_found",
            GitHubError::Api { .. } => "github_api",
            GitHubError::Unavailable { .. } => "github_unavailable",
            GitHubError::Decode { .. } => "github_decode",
            GitHubError::Config(_) => "github_config",
            GitHubError::DryRun { .. } => "dry_run_bypassed",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything. Jobs use
    /// it to choose between a retry with backoff and giving up with this message.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitHubError::RateLimited { .. } | GitHubError::Unavailable { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_runbook() {
        assert_eq!(
            GitHubError::Unauthorized.to_string(),
            "GitHub token is invalid or expired — regenerate GITHUB_TOKEN"
        );
        assert_eq!(
            GitHubError::Permission {
                needs: needs::ACTIONS_WRITE
            }
            .to_string(),
            "GitHub token lacks permission (needs repo + workflow scopes, or Actions: write)"
        );
        assert!(
            GitHubError::Permission {
                needs: needs::SECRETS_WRITE
            }
            .to_string()
            .ends_with("Secrets: write)")
        );
        let retry_at = DateTime::from_timestamp(1_700_000_000, 0).unwrap(); // 22:13:20 UTC
        let limited = GitHubError::RateLimited { retry_at };
        assert_eq!(
            limited.to_string(),
            "GitHub rate limit: retry after 22:13 UTC"
        );
        assert!(limited.is_transient());
        assert_eq!(
            GitHubError::WorkflowNotFound {
                workflow: "deploy.yml".into(),
                repo: "o/r".into()
            }
            .to_string(),
            "Workflow deploy.yml not found in o/r — check .github/workflows/"
        );
        let api = GitHubError::Api {
            status: 422,
            message: "No ref found for: nope".into(),
        };
        assert_eq!(
            api.to_string(),
            "GitHub API error 422: No ref found for: nope"
        );
        assert_eq!(api.error_type(), "github_api");
        assert!(!api.is_transient());
    }
}
