//! DRY_RUN: the one gate every request that changes something outside
//! Valine passes through — workflow dispatches, cancels and re-runs, repo variable and
//! secret writes, channel posts.
//!
//! A use case describes the request as a [`Mutation`] (the GitHub and Discord clients
//! build them: `GitHubClient::*_mutation`, `DiscordClient::create_message_mutation`) and
//! hands it to `App::mutate` together with the future that would send it:
//!
//! ```text
//! let mutation = github.set_repo_variable_mutation("FRONTEND_BASE_URL", url);
//! match app.mutate(mutation, github.set_repo_variable("FRONTEND_BASE_URL", url)).await? {
//!     Mutated::Performed(()) => { /* it happened */ }
//!     Mutated::Suppressed(m) => lines.push(m.dry_run_line()), // 🧪 dry run: would …
//! }
//! ```
//!
//! With `DRY_RUN=true` the future is dropped unpolled (so nothing is sent), the request
//! is logged, and the caller gets the description back to show in its reply. Reads and
//! Valine's own store are not gated. As a backstop, clients built for a dry-run App
//! refuse to send any mutating request that did not come through here.

use std::fmt;
use std::future::Future;

use serde_json::Value;

/// Body fields whose values never appear in a description.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "encrypted_value"
        || ["token", "secret", "password"]
            .iter()
            .any(|s| name.contains(s))
}

fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(&k) {
                        Value::from("[REDACTED]")
                    } else {
                        redact(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// A request that would change something outside Valine, as it would be sent: method,
/// path (without scheme and host) and JSON body, secret fields already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    action: String,
    method: String,
    path: String,
    body: Option<Value>,
}

impl Mutation {
    /// `action` completes "would …": `set repo variable FRONTEND_BASE_URL`.
    pub fn new(
        action: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Mutation {
            action: action.into(),
            method: method.into(),
            path: path.into(),
            body: None,
        }
    }

    /// The JSON body; fields named like secrets (`encrypted_value`, `*token*`,
    /// `*secret*`, `*password*`) are replaced by `[REDACTED]`.
    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(redact(body));
        self
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The line a reply shows: `` 🧪 dry run: would <action>: `METHOD /path {body}` ``.
    pub fn dry_run_line(&self) -> String {
        format!("🧪 dry run: would {}: `{self}`", self.action)
    }
}

/// `METHOD /path {"body":…}`.
impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(body) = &self.body {
            write!(f, " {body}")?;
        }
        Ok(())
    }
}

/// What became of a gated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutated<T> {
    /// Sent; the client's answer.
    Performed(T),
    /// Not sent because of DRY_RUN; the request that would have been.
    Suppressed(Mutation),
}

impl<T> Mutated<T> {
    pub fn suppressed(&self) -> Option<&Mutation> {
        match self {
            Mutated::Suppressed(m) => Some(m),
            Mutated::Performed(_) => None,
        }
    }
}

/// Whether mutating requests are sent (`DRY_RUN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DryRun {
    enabled: bool,
}

impl DryRun {
    pub fn new(enabled: bool) -> Self {
        DryRun { enabled }
    }

    pub fn is_enabled(self) -> bool {
        self.enabled
    }

    /// Sends the request (awaits `perform`) unless DRY_RUN is on; then logs it and
    /// returns its description instead. Errors of `perform` pass through unchanged.
    pub async fn run<T, E, F>(self, mutation: Mutation, perform: F) -> Result<Mutated<T>, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        if !self.enabled {
            return perform.await.map(Mutated::Performed);
        }
        // Dropping the future unpolled is what guarantees nothing was sent.
        drop(perform);
        let body = mutation.body.as_ref().map(Value::to_string);
        tracing::info!(
            dry_run = true,
            dry_run_action = %mutation.action,
            dry_run_method = %mutation.method,
            dry_run_path = %mutation.path,
            dry_run_body = body.as_deref(),
            "dry run: suppressed {}",
            mutation.action
        );
        Ok(Mutated::Suppressed(mutation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn mutation() -> Mutation {
        Mutation::new(
            "set repo secret VITE_API_BASE",
            "PUT",
            "/repos/o/r/actions/secrets/VITE_API_BASE",
        )
        .with_body(json!({
            "encrypted_value": "c2VhbGVk",
            "key_id": "123",
            "nested": [{"api_token": "t0k3n", "url": "https://x"}]
        }))
    }

    #[test]
    fn descriptions_redact_secret_fields_only() {
        let m = mutation();
        let body = m.body().unwrap();
        assert_eq!(body["encrypted_value"], "[REDACTED]");
        assert_eq!(body["nested"][0]["api_token"], "[REDACTED]");
        assert_eq!(body["key_id"], "123");
        assert_eq!(body["nested"][0]["url"], "https://x");
        let line = m.dry_run_line();
        assert!(
            line.starts_with(
                "🧪 dry run: would set repo secret VITE_API_BASE: `PUT /repos/o/r/actions/secrets/VITE_API_BASE {"
            ),
            "{line}"
        );
        assert!(!line.contains("c2VhbGVk") && !line.contains("t0k3n"));
    }

    #[tokio::test]
    async fn a_dry_run_never_polls_the_request() {
        let sent = AtomicBool::new(false);
        let perform = async {
            sent.store(true, Ordering::SeqCst);
            Ok::<_, String>(7)
        };
        let out = DryRun::new(true).run(mutation(), perform).await.unwrap();
        assert!(!sent.load(Ordering::SeqCst));
        assert_eq!(out.suppressed(), Some(&mutation()));

        let perform = async {
            sent.store(true, Ordering::SeqCst);
            Err::<u8, _>("refused".to_owned())
        };
        let out = DryRun::new(false).run(mutation(), perform).await;
        assert!(sent.load(Ordering::SeqCst));
        assert_eq!(out, Err("refused".to_owned()));
        let out = DryRun::new(false)
            .run(mutation(), async { Ok::<_, String>(7) })
            .await;
        assert_eq!(out, Ok(Mutated::Performed(7)));
    }
}
