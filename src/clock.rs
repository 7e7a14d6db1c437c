//! Time as Valine's use cases see it: one [`Clock`], held in `App`.
//!
//! Leases, polls, windows, token expiry and record expiry all read it, and store
//! operations take the instant as an argument (`now`, `now_ms`) rather than reading a
//! clock of their own. A server reads the system clock; a test builds its App with
//! [`Clock::tokio`], whose wall time moves with tokio's timer, so under
//! `tokio::time::pause()` both the instants Valine reads and the sleeps it waits on
//! stand still until the test (or tokio's auto-advance) moves them together.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    System,
    /// `origin_ms` at `origin`, plus whatever tokio's clock has advanced since.
    Tokio {
        origin_ms: i64,
        origin: tokio::time::Instant,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock {
            source: Source::System,
        }
    }

    /// A wall clock that starts at the system time and then follows tokio's timer, so
    /// paused tests control it (call from inside a runtime).
    pub fn tokio() -> Clock {
        Clock::tokio_at(chrono::Utc::now().timestamp_millis())
    }

    /// As [`Clock::tokio`], starting at `origin_ms` (milliseconds since the epoch).
    pub fn tokio_at(origin_ms: i64) -> Clock {
        Clock {
            source: Source::Tokio {
                origin_ms,
                origin: tokio::time::Instant::now(),
            },
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.source {
            Source::System => chrono::Utc::now().timestamp_millis(),
            Source::Tokio { origin_ms, origin } => {
                let elapsed = i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
                origin_ms.saturating_add(elapsed)
            }
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// The current instant as a UTC date and time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }

    /// `now_ms() + d`, saturating.
    pub fn ms_after(&self, d: Duration) -> i64 {
        self.now_ms().saturating_add(duration_ms(d))
    }
}

tokio::task_local! {
    /// The deadline of the job the current task runs for. The job runner sets it
    /// around each attempt; clients that wait (the GitHub client's retries and
    /// rate-limit waits) read it through [`deadline`] and refuse a wait that would
    /// outlive the job, without being handed the deadline through every call.
    static DEADLINE: tokio::time::Instant;
}

/// Runs `work` with `deadline` as the deadline of the job it belongs to.
pub async fn with_deadline<F: std::future::Future>(
    deadline: tokio::time::Instant,
    work: F,
) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the job the caller runs in, if it runs in one.
pub fn deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// A duration in whole milliseconds, saturating far from overflow so sums stay safe.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio_at(1_000_000);
        assert_eq!(clock.now_ms(), 1_000_000);
        assert_eq!(clock.now_secs(), 1_000);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_ms(), 1_001_500);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now_ms(), 1_061_500);
        assert_eq!(clock.ms_after(Duration::from_secs(1)), 1_062_500);
    }

    #[test]
    fn the_system_clock_reads_wall_time() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = Clock::system().now_ms();
        assert!(now >= before && now - before < 60_000);
        assert_eq!(duration_ms(Duration::MAX), i64::MAX / 4);
    }
}
