//! `valine traces`: the runbook's manual trace lookup, on whichever store Valine runs on.
//!
//! Without an id: recent traces, newest first, one line each (id8, time, user, command,
//! outcome, ms), filtered by user, command and age. With an id or its first 8+
//! characters (what failure replies quote): that trace whole, as `/debug-last` shows it,
//! with the user it belongs to: everything an escalation needs.

use chrono::{SecondsFormat, TimeZone, Utc};

use crate::store::{StoreError, TraceQuery, TraceRecord, TraceStore};

/// Failure replies quote 8 characters; fewer could match many traces.
pub const MIN_PREFIX: usize = 8;
/// A listing is for reading, not for export.
const MAX_LIMIT: usize = 1000;

/// What was asked, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    id: Option<String>,
    user: Option<String>,
    command: Option<String>,
    since_secs: i64,
    limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("no trace {0} (traces are kept 7 days)")]
    NotFound(String),
    #[error("{prefix} matches several traces ({}): give more characters", ids.join(", "))]
    Ambiguous { prefix: String, ids: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Request {
    /// Validates the arguments; the message names what is wrong (exit code 2).
    pub fn new(
        id: Option<String>,
        user: Option<String>,
        command: Option<String>,
        since_secs: i64,
        limit: usize,
    ) -> Result<Request, String> {
        let id = id.map(|id| id.trim().to_ascii_lowercase());
        if let Some(id) = &id {
            if id.chars().count() < MIN_PREFIX {
                return Err(format!(
                    "a trace id needs at least {MIN_PREFIX} characters, got {id:?}"
                ));
            }
            if !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(format!("{id:?} is not a trace id (hex digits)"));
            }
        }
        if let Some(user) = &user
            && (user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("--user expects a numeric Discord id, got {user:?}"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("--limit must be from 1 to {MAX_LIMIT}"));
        }
        Ok(Request {
            id,
            user,
            command: command.map(|c| c.trim().trim_start_matches('/').to_owned()),
            since_secs,
            limit,
        })
    }
}

/// Looks the traces up and returns what to print.
pub async fn run(
    store: &dyn TraceStore,
    request: &Request,
    json: bool,
    now_ms: i64,
) -> Result<String, TracesError> {
    let now = now_ms.div_euclid(1000);
    if let Some(prefix) = &request.id {
        let trace = one(store, prefix, now).await?;
        return Ok(if json {
            format!("{}\n", trace_json(&trace))
        } else {
            whole(&trace)
        });
    }
    let query = TraceQuery {
        user_id: request.user.clone(),
        command: request.command.clone(),
        since_ms: now_ms.saturating_sub(request.since_secs.saturating_mul(1000)),
        limit: request.limit,
    };
    let traces = store.list_traces(&query, now).await?;
    let mut out = String::new();
    for trace in &traces {
        if json {
            out.push_str(&trace_json(trace).to_string());
        } else {
            out.push_str(&line(trace));
        }
        out.push('\n');
    }
    if traces.is_empty() && !json {
        out.push_str("No traces.\n");
    }
    Ok(out)
}

/// The one live trace whose id starts with `prefix`.
async fn one(store: &dyn TraceStore, prefix: &str, now: i64) -> Result<TraceRecord, TracesError> {
    let mut found = store.traces_by_prefix(prefix, 5, now).await?;
    match found.len() {
        0 => Err(TracesError::NotFound(prefix.to_owned())),
        1 => Ok(found.remove(0)),
        _ => Err(TracesError::Ambiguous {
            prefix: prefix.to_owned(),
            ids: found.into_iter().map(|t| t.id).collect(),
        }),
    }
}

fn time(at_ms: i64) -> String {
    Utc.timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// `id8  time  user  /command  outcome  ms`.
pub fn line(trace: &TraceRecord) -> String {
    format!(
        "{}  {}  user {}  /{}  {}  {}",
        crate::trace::short_id(&trace.id),
        time(trace.started_at_ms),
        trace.user_id,
        trace.command,
        trace.outcome.map_or("running", |o| o.as_str()),
        trace
            .duration_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
    )
}

/// The trace whole, as `/debug-last` shows it, with its user.
pub fn whole(trace: &TraceRecord) -> String {
    let body = crate::commands::debug_last::render(trace, usize::MAX);
    format!("{body}\nUser: {}\n", trace.user_id)
}

/// A trace as JSON: the record's fields, times as RFC 3339 and epoch milliseconds.
pub fn trace_json(trace: &TraceRecord) -> serde_json::Value {
    serde_json::json!({
        "id": trace.id,
        "started_at": time(trace.started_at_ms),
        "started_at_ms": trace.started_at_ms,
        "user_id": trace.user_id,
        "command": trace.command,
        "options": trace.options,
        "steps": trace.steps,
        "duration_ms": trace.duration_ms,
        "outcome": trace.outcome,
        "error": trace.error,
        "links": trace.links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    #[test]
    fn requests_are_validated() {
        let ok = |id: Option<&str>| Request::new(id.map(str::to_owned), None, None, 86_400, 50);
        assert!(ok(None).is_ok());
        assert!(ok(Some("0123ABCD")).is_ok());
        assert!(ok(Some("0123abc")).unwrap_err().contains("at least 8"));
        assert!(ok(Some("0123abcz")).unwrap_err().contains("not a trace id"));
        assert!(Request::new(None, Some("bob".into()), None, 3600, 5).is_err());
        assert!(Request::new(None, None, None, 3600, 0).is_err());
        let r = Request::new(None, None, Some("/status".into()), 3600, 5).unwrap();
        assert_eq!(r.command.as_deref(), Some("status"));
    }

    #[test]
    fn a_listing_line_has_id8_time_user_command_outcome_and_ms() {
        let trace = TraceRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            user_id: "42".into(),
            command: "status".into(),
            options: serde_json::Map::new(),
            started_at_ms: 1_700_000_000_123,
            steps: vec![],
            duration_ms: Some(87),
            outcome: Some(Outcome::Error),
            error: Some("GitHub said no".into()),
            links: vec![],
            expires_at: 0,
        };
        assert_eq!(
            line(&trace),
            "01234567  2023-11-14T22:13:20Z  user 42  /status  error  87 ms"
        );
        let running = TraceRecord {
            duration_ms: None,
            outcome: None,
            ..trace.clone()
        };
        assert!(line(&running).ends_with("running  -"));
        assert!(whole(&trace).contains("Error: GitHub said no"));
        assert!(whole(&trace).ends_with("User: 42\n"));
        assert_eq!(trace_json(&trace)["outcome"], "error");
    }
}
