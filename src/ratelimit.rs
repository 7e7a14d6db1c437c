//! Per-user rate limit: at most N commands and button presses per user per fixed 60 s
//! window, counted in the store with one atomic increment so the limit holds across
//! processes and Lambda instances sharing it.

use crate::store::{RateHit, retention};

pub const WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; the window ends in this many seconds (at least 1).
    Limited {
        retry_in_secs: i64,
    },
}

/// The window hit a request at `now` (epoch seconds) counts on: the fixed window
/// holding `now`, its record kept for the rate-window retention. `None` when the limit
/// is 0, which turns the check off. The store counts it (`AdmissionStore::admit`,
/// together with the block read); a store error refuses the command (fail closed).
pub fn hit(limit: u32, now: i64) -> Option<RateHit> {
    (limit > 0).then(|| {
        let window_start = window_start(now);
        RateHit {
            window_start,
            expires_at: window_start + retention::RATE_WINDOW,
        }
    })
}

fn window_start(now: i64) -> i64 {
    now - now.rem_euclid(WINDOW_SECS)
}

/// The decision for a request whose window count, this hit included, is `count`.
pub fn decide(count: u32, limit: u32, now: i64) -> Decision {
    if limit == 0 || count <= limit {
        Decision::Allowed
    } else {
        Decision::Limited {
            retry_in_secs: (window_start(now) + WINDOW_SECS - now).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_is_on_the_fixed_window_holding_now() {
        assert_eq!(hit(0, 125), None, "a limit of 0 counts nothing");
        let hit = hit(10, 125).unwrap();
        assert_eq!(hit.window_start, 120);
        assert_eq!(hit.expires_at, 120 + retention::RATE_WINDOW);
        assert_eq!(super::hit(10, 120).unwrap().window_start, 120);
        assert_eq!(super::hit(10, 179).unwrap().window_start, 120);
    }

    #[test]
    fn over_the_limit_waits_for_the_window_to_end() {
        assert_eq!(decide(10, 10, 125), Decision::Allowed);
        assert_eq!(decide(11, 10, 125), Decision::Limited { retry_in_secs: 55 });
        assert_eq!(decide(11, 10, 179), Decision::Limited { retry_in_secs: 1 });
        assert_eq!(decide(u32::MAX, 0, 125), Decision::Allowed);
    }
}
