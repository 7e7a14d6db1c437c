//! Wall-clock time as Valine's use cases see it.
//!
//! Store records and windows are computed from an explicit `now`; this is the one place
//! that reads the system clock, so tests can pass their own instants.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}
