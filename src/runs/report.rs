//! The messages a workflow run produces: the completion report (the status-channel
//! announcement and a follower's result, verified once per run attempt when asked),
//! and the progress line of a followed run.

use crate::app::App;
use crate::discord::response::{self, Button, ButtonStyle, Embed, Reply};
use crate::store::{FailedStepRecord, Outcome, RunRecord};
use crate::trace::Tracer;

/// Whether a completion report carries a verification (`AUTO_VERIFY` announcements,
/// `wait:true` results), and the API base to probe when it is not the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    No,
    Against { api_base: Option<String> },
}

/// The message for a completed run: the status-channel announcement and a follower's
/// result. The single place that decides what a completion report says, so that
/// verification (`AUTO_VERIFY`) extends it once for both.
pub async fn completion_report(app: &App, run: &RunRecord, verify: Verify) -> Reply {
    let failed = if run.conclusion.as_deref() == Some("success") {
        None
    } else {
        match app.store.failed_step(run.id, app.clock.now_secs()).await {
            Ok(step) => step.filter(|s| s.run_attempt == run.run_attempt),
            Err(e) => {
                // The report is still worth sending without the failing step.
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "failing step not read");
                None
            }
        }
    };
    let mut reply = completion_reply(run, failed.as_ref());
    if let Verify::Against { api_base } = verify {
        append_verification(app, run, api_base.as_deref(), &mut reply).await;
    }
    reply
}

/// Verifies the run attempt once (shared with any other asker) and appends the report's
/// embed and buttons. The verification keeps a trace of its own, quoted in its footer.
async fn append_verification(
    app: &App,
    run: &RunRecord,
    api_base: Option<&str>,
    reply: &mut Reply,
) {
    let mut options = serde_json::Map::new();
    options.insert("run_id".into(), run.id.into());
    let mut tracer = Tracer::start("github", "auto-verify", &options, app.clock.now_ms());
    let span = tracing::info_span!("command", trace_id = %tracer.id(), user_id = "github", command = "auto-verify");
    let result = {
        use tracing::Instrument;
        crate::verify::verify_once(app, run.id, run.run_attempt, api_base, &mut tracer)
            .instrument(span.clone())
            .await
    };
    let (outcome, error) = match result {
        Ok((report, passed)) => {
            reply.embeds.extend(report.embeds);
            for button in report.buttons {
                if !reply.buttons.iter().any(|b| b.target == button.target) {
                    reply.buttons.push(button);
                }
            }
            reply.failed |= !passed;
            (Outcome::Ok, None)
        }
        Err(e) => {
            span.in_scope(|| tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "verification failed to run"));
            reply.embeds.push(
                Embed::new("❌ Verification could not run")
                    .color(response::RED)
                    .description(e.user_message(tracer.short_id())),
            );
            (Outcome::Error, Some(e.to_string()))
        }
    };
    let record = tracer.finish(outcome, error);
    if let Err(e) = app.store.put_trace(&record).await {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "trace not saved");
    }
}

fn run_name(run: &RunRecord) -> &str {
    run.workflow_name.as_deref().unwrap_or("Workflow run")
}

fn with_run_link(reply: Reply, run: &RunRecord) -> Reply {
    match &run.html_url {
        Some(url) => reply.with_button(Button::link("View run", url.clone())),
        None => reply,
    }
}

/// Seconds from creation to the last update of a first attempt. A re-run keeps the
/// run's creation time, so its duration is not known from the record.
fn duration_secs(run: &RunRecord) -> Option<i64> {
    if run.run_attempt != 1 {
        return None;
    }
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let secs = (parse(&run.updated_at)? - parse(&run.created_at)?).num_seconds();
    (secs >= 0).then_some(secs)
}

/// Pure part of [`completion_report`].
pub fn completion_reply(run: &RunRecord, failed: Option<&FailedStepRecord>) -> Reply {
    let conclusion = run.conclusion.as_deref().unwrap_or("completed");
    let (icon, colour) = match conclusion {
        "success" => ("🟢", response::GREEN),
        "failure" | "timed_out" | "cancelled" | "startup_failure" => ("🔴", response::RED),
        _ => ("⚪", response::GREY),
    };
    let mut link = match &run.html_url {
        Some(url) => format!("[Run {}]({url})", run.id),
        None => format!("Run {}", run.id),
    };
    if run.run_attempt > 1 {
        link.push_str(&format!(" (attempt {})", run.run_attempt));
    }
    let mut embed = Embed::new(format!("{icon} {}: {conclusion}", run_name(run)))
        .color(colour)
        .description(link);
    if let Some(branch) = &run.branch {
        embed = embed.field("Branch", format!("`{branch}`"));
    }
    if let Some(sha) = &run.head_sha {
        embed = embed.field("Commit", format!("`{}`", sha.get(..7).unwrap_or(sha)));
    }
    if let Some(secs) = duration_secs(run) {
        embed = embed.field("Duration", crate::format::duration(secs));
    }
    if let Some(step) = failed {
        let what = match &step.step_name {
            Some(name) => format!("{} › {name}", step.job_name),
            None => step.job_name.clone(),
        };
        let value = match &step.html_url {
            Some(url) => format!("[{what}]({url})"),
            None => what,
        };
        embed = embed.field("Failing step", value);
    }
    with_run_link(Reply::embed(embed.footer(format!("Run {}", run.id))), run)
}

/// The message while a followed run is in progress.
pub fn progress_reply(run: &RunRecord) -> Reply {
    let mut text = format!("🟡 {} run {} is in progress", run_name(run), run.id);
    if run.run_attempt > 1 {
        text.push_str(&format!(" (attempt {})", run.run_attempt));
    }
    if let Some(branch) = &run.branch {
        text.push_str(&format!(" on `{branch}`"));
    }
    with_run_link(Reply::text(text), run)
}

/// `valine:cancel-run:<run id>`: the `Cancel run` button a dispatched deploy's message
/// carries while its run is unfinished (handled by `/deploy-client`).
pub const CANCEL_ACTION: &str = "cancel-run";

/// The `Cancel run` button of a dispatched deploy's message.
pub fn cancel_button(run_id: u64) -> Button {
    Button::action(
        "Cancel run",
        ButtonStyle::Danger,
        CANCEL_ACTION,
        &run_id.to_string(),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A deploy run as the store holds it, shared by the run tests.
    pub(in crate::runs) fn run(conclusion: Option<&str>, attempt: u32) -> RunRecord {
        RunRecord {
            id: 30433642,
            workflow_id: 77,
            workflow_name: Some("Client deploy".into()),
            status: "completed".into(),
            conclusion: conclusion.map(Into::into),
            branch: Some("main".into()),
            head_sha: Some("acb5820ced9479c074f688cc328bf03f341a511d".into()),
            run_attempt: attempt,
            html_url: Some("https://github.com/o/r/actions/runs/30433642".into()),
            display_title: None,
            created_at: Some("2026-01-01T10:00:00Z".into()),
            updated_at: Some("2026-01-01T10:02:15Z".into()),
            expires_at: 0,
        }
    }

    #[test]
    fn completion_reply_shows_result_duration_and_failing_step() {
        let ok = completion_reply(&run(Some("success"), 1), None);
        let embed = &ok.embeds[0];
        assert_eq!(embed.title, "🟢 Client deploy: success");
        assert_eq!(embed.color, Some(response::GREEN));
        let fields: Vec<(&str, &str)> = embed
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("Branch", "`main`"),
                ("Commit", "`acb5820`"),
                ("Duration", "2m 15s")
            ]
        );
        assert_eq!(ok.buttons.len(), 1);

        let step = FailedStepRecord {
            run_id: 30433642,
            run_attempt: 2,
            job_id: 1,
            job_name: "build".into(),
            step_name: Some("npm run build".into()),
            html_url: Some("https://github.com/o/r/actions/runs/30433642/job/1".into()),
            expires_at: 0,
        };
        let failed = completion_reply(&run(Some("failure"), 2), Some(&step));
        let embed = &failed.embeds[0];
        assert_eq!(embed.title, "🔴 Client deploy: failure");
        assert_eq!(embed.color, Some(response::RED));
        assert!(
            embed
                .description
                .as_deref()
                .unwrap()
                .contains("(attempt 2)")
        );
        assert!(embed.fields.iter().all(|f| f.name != "Duration"));
        let failing = embed
            .fields
            .iter()
            .find(|f| f.name == "Failing step")
            .unwrap();
        assert_eq!(
            failing.value,
            "[build › npm run build](https://github.com/o/r/actions/runs/30433642/job/1)"
        );
    }

    #[test]
    fn progress_reply_names_the_run() {
        let mut r = run(None, 1);
        r.status = "in_progress".into();
        let reply = progress_reply(&r);
        assert_eq!(
            reply.content.as_deref(),
            Some("🟡 Client deploy run 30433642 is in progress on `main`")
        );
    }
}
