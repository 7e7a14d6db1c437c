//! Per-command traces: a [`Tracer`] times each step of a command and turns into the
//! [`TraceRecord`] that `/debug-last` shows.
//!
//! Trace ids are random v4 UUIDs in simple (hex) form, so their first 8 characters tell
//! traces apart; failure replies quote those 8.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::store::{Outcome, StepStatus, TraceRecord, TraceStep, retention};

/// Option names whose values are never stored or shown.
fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "key"]
        .iter()
        .any(|s| name.contains(s))
}

/// Options as they may be stored: secret-looking options replaced, and credentials
/// inside URLs (`https://user:pass@host`) removed.
pub fn redact_options(options: &Map<String, Value>) -> Map<String, Value> {
    options
        .iter()
        .map(|(name, value)| {
            let value = if is_secret_option(name) {
                Value::from("[REDACTED]")
            } else if let Some(text) = value.as_str() {
                Value::from(redact_url_credentials(text))
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

fn redact_url_credentials(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            // Both setters only fail for URLs that cannot carry credentials at all.
            let _ = url.set_username("[REDACTED]");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

/// The first 8 characters of a trace id, as replies quote it.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub fn new_trace_id() -> String {
    random_uuid().simple().to_string()
}

/// A random (version 4) UUID drawn from the thread's cryptographically secure generator,
/// which the system seeds: `Uuid::new_v4` makes a system call for each id, and the
/// request path makes one or two ids per request.
pub fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Records the steps of one command execution.
#[derive(Debug)]
pub struct Tracer {
    record: TraceRecord,
    started: Instant,
}

/// A step being timed; hand it back to [`Tracer::end`].
#[must_use = "a started step must be ended"]
pub struct Step {
    name: String,
    started: Instant,
}

impl Tracer {
    pub fn start(user_id: &str, command: &str, options: &Map<String, Value>, now_ms: i64) -> Self {
        Tracer {
            record: TraceRecord {
                id: new_trace_id(),
                user_id: user_id.to_owned(),
                command: command.to_owned(),
                options: redact_options(options),
                started_at_ms: now_ms,
                steps: Vec::new(),
                duration_ms: None,
                outcome: None,
                error: None,
                links: Vec::new(),
                expires_at: now_ms.div_euclid(1000) + retention::TRACE,
            },
            started: Instant::now(),
        }
    }

    /// Continues a trace stored earlier (a deferred command picked up by the worker).
    /// Durations measured from here on are added to what the record already had.
    pub fn resume(record: TraceRecord) -> Self {
        Tracer {
            record,
            started: Instant::now(),
        }
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Gives the trace a known id (a deferred command whose stored trace is gone).
    pub fn set_id(&mut self, id: &str) {
        self.record.id = id.to_owned();
    }

    pub fn short_id(&self) -> &str {
        short_id(&self.record.id)
    }

    pub fn record(&self) -> &TraceRecord {
        &self.record
    }

    pub fn begin(&self, name: &str) -> Step {
        Step {
            name: name.to_owned(),
            started: Instant::now(),
        }
    }

    /// Ends a step with the status the result implies; an error's text becomes the
    /// step's detail.
    pub fn end<T, E: std::fmt::Display>(&mut self, step: Step, result: &Result<T, E>) {
        match result {
            Ok(_) => self.push(step, StepStatus::Ok, None),
            Err(e) => self.push(step, StepStatus::Error, Some(e.to_string())),
        }
    }

    pub fn end_with(&mut self, step: Step, status: StepStatus, detail: Option<String>) {
        self.push(step, status, detail);
    }

    pub fn skip(&mut self, name: &str, detail: impl Into<String>) {
        self.record.steps.push(TraceStep {
            name: name.to_owned(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            detail: Some(detail.into()),
        });
    }

    fn push(&mut self, step: Step, status: StepStatus, detail: Option<String>) {
        self.record.steps.push(TraceStep {
            name: step.name,
            status,
            duration_ms: elapsed_ms(step.started),
            detail,
        });
    }

    pub fn link(&mut self, url: impl Into<String>) {
        let url = url.into();
        if !self.record.links.contains(&url) {
            self.record.links.push(url);
        }
    }

    /// Time spent so far, including earlier stretches of a resumed trace.
    pub fn elapsed_ms(&self) -> u64 {
        self.record.duration_ms.unwrap_or(0) + elapsed_ms(self.started)
    }

    /// Marks the stretch so far as spent and returns the record to store while the
    /// command continues elsewhere (the deferred job).
    pub fn checkpoint(&mut self) -> TraceRecord {
        let mut record = self.record.clone();
        record.duration_ms = Some(self.elapsed_ms());
        record
    }

    pub fn finish(mut self, outcome: Outcome, error: Option<String>) -> TraceRecord {
        self.record.duration_ms = Some(self.elapsed_ms());
        self.record.outcome = Some(outcome);
        self.record.error = error;
        self.record
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_url_credentials_are_redacted() {
        let options = json!({
            "url": "https://admin:hunter2@example.com/x",
            "api_token": "abc",
            "count": 3
        });
        let redacted = redact_options(options.as_object().unwrap());
        assert_eq!(redacted["api_token"], "[REDACTED]");
        assert_eq!(redacted["count"], 3);
        let url = redacted["url"].as_str().unwrap();
        assert!(!url.contains("hunter2") && !url.contains("admin"), "{url}");
    }

    #[test]
    fn steps_and_outcome_are_recorded() {
        let mut tracer = Tracer::start("42", "status", &Map::new(), 1_000_000);
        assert_eq!(tracer.id().len(), 32);
        assert_eq!(tracer.short_id().len(), 8);
        let step = tracer.begin("github.list_runs");
        tracer.end::<(), String>(step, &Err("boom".into()));
        tracer.skip("probe", "no target");
        tracer.link("https://github.com/o/r/actions/runs/1");
        tracer.link("https://github.com/o/r/actions/runs/1");
        let record = tracer.finish(Outcome::Error, Some("boom".into()));
        assert_eq!(record.steps.len(), 2);
        assert_eq!(record.steps[0].status, StepStatus::Error);
        assert_eq!(record.steps[0].detail.as_deref(), Some("boom"));
        assert_eq!(record.steps[1].status, StepStatus::Skipped);
        assert_eq!(record.links.len(), 1);
        assert_eq!(record.outcome, Some(Outcome::Error));
        assert!(record.duration_ms.is_some());
        assert_eq!(record.expires_at, 1000 + retention::TRACE);
    }

    #[test]
    fn trace_ids_are_not_time_ordered() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert_ne!(short_id(&a), short_id(&b));
    }
}
