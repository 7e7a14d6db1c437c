//! When and how long to wait before asking GitHub again (see
//! `docs/design.md#github-calls`).
//!
//! The rules come from GitHub's guide "Best practices for using the REST API": a
//! `Retry-After` header says exactly how long; `x-ratelimit-remaining: 0` means the
//! primary quota is spent until `x-ratelimit-reset` (epoch seconds); a secondary limit
//! answered without either header needs at least a minute. Everything else that is worth
//! retrying (connection errors, 5xx) backs off exponentially with jitter, so that several
//! Valine workers do not hammer GitHub in step.
//!
//! This module only decides; the client in `api.rs` performs the waits with
//! `tokio::time::sleep`, which is what lets tests run them under `tokio::time::pause()`.
//!
//! Before each wait the client tells an observer, if the caller installed one with
//! [`observe_retries`]: a command whose user is waiting shows the progress instead of
//! seconds of silence. The observer is task-local so that the client stays ignorant of
//! who is waiting (a Discord message, a log) and no call needs an extra parameter.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How many times and how patiently a request is repeated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt (at most 3).
    pub max_retries: usize,
    /// First backoff delay; each further one doubles, plus up to 100 % jitter.
    pub base_delay: Duration,
    /// Longest single backoff delay (server-directed waits are not capped by it).
    pub max_backoff: Duration,
    /// Longest wait accepted even without a deadline: a quota that refills in 50 minutes
    /// is reported to the user instead of holding a worker that long.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_wait: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The backoff delays for one request, `max_retries` of them at most.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.max_retries)
            .with_jitter()
            .build()
    }
}

/// What the client is about to do after a failed attempt: wait, then send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNotice {
    /// Which retry comes next (from 1).
    pub retry: usize,
    /// How many retries there may be in all.
    pub of: usize,
    pub reason: RetryReason,
}

/// Why the client is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// No answer, or a 5xx: GitHub (or the way to it) is down for the moment.
    NotAnswering,
    /// GitHub rate-limited the request until `retry_at`.
    RateLimited { retry_at: DateTime<Utc> },
}

/// The line a waiting user reads, e.g. `GitHub is not answering — retrying (2/3)…`.
impl fmt::Display for RetryNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RetryNotice { retry, of, reason } = self;
        match reason {
            RetryReason::NotAnswering => {
                write!(f, "GitHub is not answering — retrying ({retry}/{of})…")
            }
            RetryReason::RateLimited { retry_at } => write!(
                f,
                "GitHub rate limit — retrying at {} UTC ({retry}/{of})…",
                retry_at.format("%H:%M:%S")
            ),
        }
    }
}

/// Told of every retry of the GitHub calls made inside [`observe_retries`]. Called
/// synchronously before the wait: it must not block (hand the notice to a task).
pub type RetryObserver = Arc<dyn Fn(&RetryNotice) + Send + Sync>;

tokio::task_local! {
    static OBSERVER: RetryObserver;
}

/// Runs `work` with `observer` told of each retry of the GitHub calls made in it.
pub async fn observe_retries<F: Future>(observer: RetryObserver, work: F) -> F::Output {
    OBSERVER.scope(observer, work).await
}

/// Tells the observer of the current task, if there is one.
pub(crate) fn notify(notice: &RetryNotice) {
    let _no_observer = OBSERVER.try_with(|observer| observer(notice));
}

/// A wait GitHub asked for by rate limiting us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimitWait {
    pub wait: Duration,
    /// When the request may be sent again (wall clock, for the user-facing message).
    pub retry_at: DateTime<Utc>,
}

/// The wait a secondary rate limit needs when GitHub names no time (GitHub: "wait for
/// at least one minute before retrying").
pub(crate) const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Slack added to `x-ratelimit-reset`: the header has whole seconds, and our clock and
/// GitHub's differ a little; arriving a second late is cheaper than a second 403.
const RESET_GRACE: Duration = Duration::from_secs(1);

/// Whether this answer is a rate limit (429, or a 403 that says so), and how long to
/// wait. `message` is GitHub's error message, used for the 403s that carry no header.
pub(crate) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: DateTime<Utc>,
) -> Option<RateLimitWait> {
    let remaining = header_u64(headers, "x-ratelimit-remaining");
    let retry_after = retry_after(headers, now);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (remaining == Some(0)
                || retry_after.is_some()
                || message.to_ascii_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    let reset = header_u64(headers, "x-ratelimit-reset")
        .and_then(|secs| i64::try_from(secs).ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    let wait = match (retry_after, remaining, reset) {
        (Some(wait), _, _) => wait,
        (None, Some(0), Some(reset)) => {
            (reset - now).to_std().unwrap_or(Duration::ZERO) + RESET_GRACE
        }
        _ => SECONDARY_LIMIT_WAIT,
    };
    let retry_at = match (retry_after, remaining, reset) {
        (None, Some(0), Some(reset)) => reset,
        // A server may send an absurd `Retry-After`; saturate rather than overflow.
        _ => chrono::Duration::from_std(wait)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    Some(RateLimitWait { wait, retry_at })
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// An integer header such as `x-ratelimit-remaining`.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn retry_after_wins_over_everything() {
        let h = headers(&[("retry-after", "7"), ("x-ratelimit-remaining", "0")]);
        let w = rate_limit_wait(StatusCode::FORBIDDEN, &h, "", at(1_000)).unwrap();
        assert_eq!(w.wait, Duration::from_secs(7));
        assert_eq!(w.retry_at, at(1_007));
    }

    #[test]
    fn spent_quota_waits_until_reset() {
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1120"),
        ]);
        let w = rate_limit_wait(
            StatusCode::FORBIDDEN,
            &h,
            "API rate limit exceeded",
            at(1_000),
        )
        .unwrap();
        assert_eq!(w.wait, Duration::from_secs(121));
        assert_eq!(w.retry_at, at(1_120));
        // A reset already past still waits the grace second, never a negative time.
        let w = rate_limit_wait(StatusCode::FORBIDDEN, &h, "", at(2_000)).unwrap();
        assert_eq!(w.wait, Duration::from_secs(1));
    }

    #[test]
    fn secondary_limit_without_headers_waits_a_minute() {
        let msg = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        let w = rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), msg, at(0)).unwrap();
        assert_eq!(w.wait, SECONDARY_LIMIT_WAIT);
        let w =
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), "", at(0)).unwrap();
        assert_eq!(w.wait, SECONDARY_LIMIT_WAIT);
    }

    #[test]
    fn plain_forbidden_is_not_a_rate_limit() {
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        let msg = "Resource not accessible by personal access token";
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &h, msg, at(0)), None);
        assert_eq!(
            rate_limit_wait(StatusCode::NOT_FOUND, &HeaderMap::new(), "", at(0)),
            None
        );
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let h = headers(&[("retry-after", "Thu, 01 Jan 1970 00:00:30 GMT")]);
        assert_eq!(retry_after(&h, at(10)), Some(Duration::from_secs(20)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "soon")]), at(0)),
            None
        );
    }

    #[test]
    fn notices_read_as_progress() {
        let notice = RetryNotice {
            retry: 2,
            of: 3,
            reason: RetryReason::NotAnswering,
        };
        assert_eq!(
            notice.to_string(),
            "GitHub is not answering — retrying (2/3)…"
        );
        let limited = RetryNotice {
            retry: 1,
            of: 3,
            reason: RetryReason::RateLimited {
                retry_at: at(1_700_000_000),
            },
        };
        assert_eq!(
            limited.to_string(),
            "GitHub rate limit — retrying at 22:13:20 UTC (1/3)…"
        );
    }

    #[tokio::test]
    async fn only_the_observing_task_is_told() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let observer: RetryObserver = Arc::new(move |n: &RetryNotice| {
            log.lock().unwrap().push(n.retry);
        });
        let notice = |retry| RetryNotice {
            retry,
            of: 3,
            reason: RetryReason::NotAnswering,
        };
        notify(&notice(9)); // nobody observes: nothing happens
        observe_retries(observer, async {
            notify(&notice(1));
            notify(&notice(2));
        })
        .await;
        notify(&notice(3));
        assert_eq!(*seen.lock().unwrap(), [1, 2]);
    }

    #[test]
    fn backoff_is_bounded_jittered_and_grows() {
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = policy.backoff().collect();
        assert_eq!(delays.len(), 3);
        for (i, delay) in delays.iter().enumerate() {
            let floor = policy.base_delay * 2u32.pow(i as u32);
            assert!(*delay >= floor && *delay <= floor * 2, "{i}: {delay:?}");
        }
    }
}
