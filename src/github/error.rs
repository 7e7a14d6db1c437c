//! What can go wrong talking to GitHub, worded for the Discord user (see
//! `docs/design.md#github-calls`).
//!
//! The `Display` strings are the runbook's causes and are shown to users as they are;
//! they quote GitHub's own `message` where there is no better cause, and never contain
//! the token (messages from GitHub are scrubbed before they get here). `error_type` gives
//! the stable class that logs carry as `error.type`.

use std::fmt;

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

/// Why a request never got an answer from GitHub, as the operator needs to hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing listens at the address (wrong port, GitHub Enterprise down).
    Refused,
    /// The host name does not resolve (a typo in GITHUB_API_BASE, no DNS).
    NameNotResolved,
    /// Connected, or tried to, but no answer came in time.
    Timeout,
    /// The TLS handshake failed (a proxy's certificate, plain HTTP on an HTTPS port).
    Tls,
    /// The connection broke for another reason.
    Other,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unreachable::Refused => "connection refused",
            Unreachable::NameNotResolved => "name not resolved",
            Unreachable::Timeout => "timed out",
            Unreachable::Tls => "TLS handshake failed",
            Unreachable::Other => "connection failed",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// 401.
    #[error("GitHub token is invalid or expired — regenerate GITHUB_TOKEN")]
    Unauthorized,
    /// 401 with GitHub App authentication, after one refresh of the installation token;
    /// or the App's JWT itself was refused.
    #[error("GitHub App credentials were refused — check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")]
    AppCredentialsRefused,
    /// The App has no installation on the repository (`GET /repos/{owner}/{repo}/installation`
    /// answered 404).
    #[error(
        "the GitHub App is not installed on {repo} — install it there, or set GITHUB_APP_INSTALLATION_ID"
    )]
    AppNotInstalled { repo: String },
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
    /// GitHub answered 5xx (after the retries that were allowed).
    #[error("GitHub is unavailable: {detail}")]
    Unavailable { status: Option<u16>, detail: String },
    /// No answer at all (after the retries that were allowed): the cause, and the base
    /// URL that was tried, so a wrong `GITHUB_API_BASE` shows.
    #[error("cannot reach GitHub at {base}: {cause}")]
    Unreachable {
        base: String,
        cause: Unreachable,
        #[source]
        source: reqwest::Error,
    },
    /// A web page where JSON was expected: a proxy's or login page, or a
    /// `GITHUB_API_BASE` that names a website rather than the API.
    #[error(
        "GitHub answered HTML, not JSON (status {status}) — check GITHUB_API_BASE (now {base})"
    )]
    NotJson { status: u16, base: String },
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
            GitHubError::Unauthorized | GitHubError::AppCredentialsRefused => "github_unauthorized",
            GitHubError::AppNotInstalled { .. } => "github_app_not_installed",
            GitHubError::Permission { .. } => "github_forbidden",
            GitHubError::RateLimited { .. } => "github_rate_limited",
            GitHubError::WorkflowNotFound { .. } => "github_workflow_not_found",
            GitHubError::AmbiguousWorkflow { .. } => "github_ambiguous_workflow",
            GitHubError::NotFound { .. } => "github_not_found",
            GitHubError::Api { .. } => "github_api",
            GitHubError::Unavailable { .. } | GitHubError::Unreachable { .. } => {
                "github_unavailable"
            }
            GitHubError::NotJson { .. } => "github_not_json",
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
            GitHubError::RateLimited { .. }
                | GitHubError::Unavailable { .. }
                | GitHubError::Unreachable { .. }
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
        assert_eq!(
            GitHubError::AppCredentialsRefused.to_string(),
            "GitHub App credentials were refused — check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
        );
        let html = GitHubError::NotJson {
            status: 200,
            base: "https://github.example.com".into(),
        };
        assert_eq!(
            html.to_string(),
            "GitHub answered HTML, not JSON (status 200) — check GITHUB_API_BASE (now https://github.example.com)"
        );
        assert!(!html.is_transient());
    }
}
