//! GitHub: the REST client Valine uses (`api`), its errors (`error`), its wire models
//! (`model`), sealing of Actions secrets (`seal`), and the repository name type shared by
//! configuration and the client.

pub mod api;
pub mod app_auth;
pub mod error;
pub mod git_ref;
mod logs;
pub mod model;
mod retry;
pub mod seal;
pub mod webhook;

pub use retry::{RetryNotice, RetryObserver, RetryReason, observe_retries};

use std::fmt;
use std::str::FromStr;

/// `owner/name`, as GitHub allows them: ASCII letters, digits, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoSlug {
    owner: String,
    name: String,
}

impl RepoSlug {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compares with a `full_name` from a webhook, as GitHub does: case-insensitively.
    pub fn matches(&self, full_name: &str) -> bool {
        full_name.eq_ignore_ascii_case(&self.to_string())
    }
}

impl FromStr for RepoSlug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 100
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match s.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok(RepoSlug {
                owner: owner.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!("expected owner/name, got {s:?}")),
        }
    }
}

impl fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_slug_accepts_owner_and_name_only() {
        let slug: RepoSlug = "octo-org/hello.world_1".parse().unwrap();
        assert_eq!(slug.owner(), "octo-org");
        assert_eq!(slug.name(), "hello.world_1");
        assert!(slug.matches("Octo-Org/Hello.World_1"));
        for bad in [
            "", "noslash", "a/b/c", "/b", "a/", "a b/c", "a/..", "ow%ner/x",
        ] {
            assert!(bad.parse::<RepoSlug>().is_err(), "{bad} should be rejected");
        }
    }
}
