//! Secret values and redaction helpers.
//!
//! Secrets live in [`secrecy::SecretString`], whose `Debug` prints `[REDACTED]`. The
//! helpers here scrub secrets that leak into free text (error messages from HTTP
//! clients quote URLs, and interaction tokens sit in webhook URLs).

pub use secrecy::{ExposeSecret, SecretString};

/// Replaces every occurrence of each non-empty secret in `text` with `[REDACTED]`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret) {
            out = out.replace(secret, "[REDACTED]");
        }
    }
    out
}

/// Redacts the interaction token inside a Discord webhook path
/// (`/webhooks/{application_id}/{token}/…`).
pub fn redact_webhook_path(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    if let Some(pos) = parts.iter().position(|p| *p == "webhooks")
        && parts.len() > pos + 2
        && !parts[pos + 2].is_empty()
    {
        parts[pos + 2] = "[REDACTED]";
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_secret() {
        let text = "token ghp_abcdef used at https://x/ghp_abcdef and hook s3cr3t";
        assert_eq!(
            scrub(text, &["ghp_abcdef", "s3cr3t", ""]),
            "token [REDACTED] used at https://x/[REDACTED] and hook [REDACTED]"
        );
    }

    #[test]
    fn webhook_token_is_redacted() {
        assert_eq!(
            redact_webhook_path("/api/v10/webhooks/123/aW50ZXJhY3Rpb246/messages/@original"),
            "/api/v10/webhooks/123/[REDACTED]/messages/@original"
        );
        assert_eq!(
            redact_webhook_path("/applications/1/commands"),
            "/applications/1/commands"
        );
    }
}
