//! Dispatching a workflow exactly once.
//!
//! A dispatch carries a correlation id: it is the workflow's `correlation_id` input, the
//! workflow's `run-name` puts it in the run's title, and Valine finds the run it started
//! by looking for it there.

use sha2::{Digest, Sha256};

/// Prefix of correlation ids: `vl-` and 16 lowercase hex digits.
const CORRELATION_PREFIX: &str = "vl-";
const CORRELATION_HEX: usize = 16;

/// A fresh correlation id for a dispatch. Short, since it ends up in the run's title.
pub fn new_correlation_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{CORRELATION_PREFIX}{}", &hex[..CORRELATION_HEX])
}

/// The correlation id of one command execution, in the format of
/// [`new_correlation_id`], derived from `key` (the command's trace id). A job that runs
/// again after a crash computes the same id and so finds the marker its first attempt
/// wrote (SPEC §5: a dispatch is never sent twice).
pub fn correlation_id_for(key: &str) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{CORRELATION_PREFIX}{}", &digest[..CORRELATION_HEX])
}

/// The correlation ids a run title contains (the set-up contract puts
/// `inputs.correlation_id` in the workflow's `run-name`).
pub fn correlation_ids_in(title: &str) -> impl Iterator<Item = &str> {
    title
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            word.strip_prefix(CORRELATION_PREFIX).is_some_and(|hex| {
                hex.len() == CORRELATION_HEX
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_found_in_titles() {
        let id = new_correlation_id();
        assert_eq!(id.len(), 3 + 16);
        let title = format!("Deploy main ({id}) by 42");
        assert_eq!(
            correlation_ids_in(&title).collect::<Vec<_>>(),
            [id.as_str()]
        );
        for title in [
            "Deploy vl-0123",
            "vl-0123456789ABCDEF",
            "vl-0123456789abcdef0",
            "xvl-0123456789abcdef",
            "",
        ] {
            assert_eq!(correlation_ids_in(title).count(), 0, "{title}");
        }
    }

    #[test]
    fn derived_correlation_ids_are_stable_and_found_in_titles() {
        let id = correlation_id_for("0123456789abcdef0123456789abcdef");
        assert_eq!(id, correlation_id_for("0123456789abcdef0123456789abcdef"));
        assert_ne!(id, correlation_id_for("fedcba9876543210fedcba9876543210"));
        let title = format!("Deploy main [{id}]");
        assert_eq!(
            correlation_ids_in(&title).collect::<Vec<_>>(),
            [id.as_str()]
        );
    }
}
