//! `/debug-last`: the caller's most recent trace, other than `/debug-last` itself
//! answered at once and only to the caller.

use async_trait::async_trait;
use chrono::{TimeZone, Utc};

use super::{Answer, Call, Command, CommandError, CommandSpec};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::{Reply, limits};
use crate::store::{StepStatus, TraceRecord};
use crate::trace::Tracer;

/// `/debug-last`.
pub struct DebugLast;

#[async_trait]
impl Command for DebugLast {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: NAME,
            description: "Show your most recent command's trace",
            options: vec![],
            access: Access::Anyone,
            answer: Answer::Immediate { ephemeral: true },
        }
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let step = tracer.begin("store.latest_trace");
        let latest = app
            .store
            .latest_trace_for_user(&call.caller.user_id, NAME, app.clock.now_secs())
            .await;
        tracer.end(step, &latest);
        Ok(match latest? {
            None => Reply::ephemeral("No recent command found for you."),
            Some(trace) => Reply::ephemeral(render(&trace, limits::CONTENT)),
        })
    }
}

pub const NAME: &str = "debug-last";

/// The trace as a message of at most `max` characters; steps that do not fit are
/// summarised as `… N more steps`.
pub fn render(trace: &TraceRecord, max: usize) -> String {
    let options = if trace.options.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = trace
            .options
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}:{s}"),
                None => format!("{k}:{v}"),
            })
            .collect();
        format!(" {}", parts.join(" "))
    };
    let started = Utc
        .timestamp_millis_opt(trace.started_at_ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "unknown".into());
    let duration = trace
        .duration_ms
        .map(|ms| format!("{ms} ms"))
        .unwrap_or_else(|| "still running".into());
    let outcome = trace.outcome.map(|o| o.as_str()).unwrap_or("running");
    let mut head = format!(
        "**Trace `{}`**\nCommand: `/{}{}`\nStarted: {started}\nDuration: {duration}\nOutcome: {outcome}\n",
        trace.id, trace.command, options
    );
    let mut tail = String::new();
    if let Some(error) = &trace.error {
        tail.push_str(&format!("Error: {error}\n"));
    }
    for link in &trace.links {
        tail.push_str(&format!("Link: {link}\n"));
    }
    if !trace.steps.is_empty() {
        head.push_str("Steps:\n");
    }
    let step_lines: Vec<String> = trace
        .steps
        .iter()
        .map(|s| {
            let icon = match s.status {
                StepStatus::Ok => "✅",
                StepStatus::Error => "❌",
                StepStatus::Skipped => "⏭",
            };
            match &s.detail {
                Some(d) => format!("{icon} {} ({} ms): {d}\n", s.name, s.duration_ms),
                None => format!("{icon} {} ({} ms)\n", s.name, s.duration_ms),
            }
        })
        .collect();
    // Fit as many steps as the limit allows, keeping room for the error and links
    // and for the "more steps" line.
    let budget = max.saturating_sub(head.chars().count() + tail.chars().count() + 24);
    let mut used = 0;
    let mut shown = 0;
    for line in &step_lines {
        let len = line.chars().count();
        if used + len > budget {
            break;
        }
        head.push_str(line);
        used += len;
        shown += 1;
    }
    if shown < step_lines.len() {
        head.push_str(&format!("… {} more steps\n", step_lines.len() - shown));
    }
    head.push_str(&tail);
    crate::discord::response::truncate(head.trim_end(), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, TraceStep};

    fn trace(steps: usize) -> TraceRecord {
        TraceRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            user_id: "42".into(),
            command: "status".into(),
            options: serde_json::json!({"count": 2}).as_object().unwrap().clone(),
            started_at_ms: 1_700_000_000_000,
            steps: (0..steps)
                .map(|i| TraceStep {
                    name: format!("step-{i}-{}", "x".repeat(40)),
                    status: if i == 0 {
                        StepStatus::Error
                    } else {
                        StepStatus::Ok
                    },
                    duration_ms: i as u64,
                    detail: None,
                })
                .collect(),
            duration_ms: Some(1234),
            outcome: Some(Outcome::Error),
            error: Some("GitHub said no".into()),
            links: vec!["https://github.com/o/r/actions/runs/1".into()],
            expires_at: 0,
        }
    }

    #[test]
    fn renders_every_part() {
        let text = render(&trace(2), 2000);
        assert!(text.contains("0123456789abcdef0123456789abcdef"));
        assert!(text.contains("/status count:2"));
        assert!(text.contains("2023-11-14 22:13:20 UTC"));
        assert!(text.contains("1234 ms"));
        assert!(text.contains("❌ step-0"));
        assert!(text.contains("✅ step-1"));
        assert!(text.contains("Error: GitHub said no"));
        assert!(text.contains("https://github.com/o/r/actions/runs/1"));
    }

    #[test]
    fn long_traces_fit_and_say_how_many_steps_are_hidden() {
        let text = render(&trace(100), 2000);
        assert!(text.chars().count() <= 2000);
        assert!(text.contains("more steps"), "{text}");
        assert!(text.contains("Error: GitHub said no"));
    }
}
