//! Per-user rate limit: at most N commands and button presses per user per fixed 60 s
//! window, counted in the store with one atomic increment so the limit holds across
//! processes and Lambda instances sharing it.

use crate::store::{RateLimitStore, StoreError, retention};

pub const WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; the window ends in this many seconds (at least 1).
    Limited {
        retry_in_secs: i64,
    },
}

/// Counts one hit for `user_id` at `now` (epoch seconds). A limit of 0 turns the check
/// off. A store error is returned, and the caller refuses the command (fail closed).
pub async fn check(
    store: &dyn RateLimitStore,
    user_id: &str,
    limit: u32,
    now: i64,
) -> Result<Decision, StoreError> {
    if limit == 0 {
        return Ok(Decision::Allowed);
    }
    let window_start = now - now.rem_euclid(WINDOW_SECS);
    let count = store
        .hit_rate_window(user_id, window_start, window_start + retention::RATE_WINDOW)
        .await?;
    if count <= limit {
        Ok(Decision::Allowed)
    } else {
        Ok(Decision::Limited {
            retry_in_secs: (window_start + WINDOW_SECS - now).max(1),
        })
    }
}
