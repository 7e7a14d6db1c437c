//! The path every slash command and button press takes (see
//! `docs/design.md#a-slash-command`): guild check, blocked users, rate limit,
//! authorization, validation, trace, then either an answer now (type 4) or a deferred
//! answer (type 5) whose body runs as a job.
//!
//! The pipeline only decides; the edges act on the decision (the server enqueues the
//! job and answers type 5, `valine invoke` runs the job inline and prints the reply).

use serde_json::{Map, Value};
use tracing::Instrument;

use super::{Answer, ButtonAnswer, Call, Command};
use crate::app::App;
use crate::auth;
use crate::discord::interaction::{Caller, OptionMap};
use crate::discord::response::Reply;
use crate::jobs::{ButtonPress, DeferredCommand, ReplyTarget};
use crate::ratelimit::{self, Decision as RateDecision};
use crate::store::{Admission, Outcome};
use crate::trace::Tracer;

#[derive(Debug)]
pub enum Decision {
    /// Answer at once with this reply.
    Reply { reply: Reply, outcome: Outcome },
    /// Replace the message a button is on (type 7).
    Update { reply: Reply, outcome: Outcome },
    /// Answer "thinking…" (type 5); the job produces the reply.
    Defer {
        job: DeferredCommand,
        ephemeral: bool,
    },
}

impl Decision {
    fn now(reply: Reply, outcome: Outcome) -> Self {
        Decision::Reply { reply, outcome }
    }
}

fn options_json(options: &OptionMap) -> Map<String, Value> {
    options
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
}

/// How long the block read and the rate-limit count may take together on the request
/// path. A store that retries for longer (throttling, an unreachable endpoint) is
/// answered as one that cannot count, inside the server's 2.5 s answer budget and so
/// well inside Discord's 3 s.
const STORE_BUDGET: std::time::Duration = std::time::Duration::from_millis(2000);

/// The refusal when the store cannot read blocks or count: one documented message (the
/// runbook's), since the cause and the fix are the same; the log line names the read.
const FAIL_CLOSED: &str = "❌ Valine cannot check the rate limit right now; try again shortly.";

fn over_budget(op: &'static str) -> crate::store::StoreError {
    crate::store::StoreError::unavailable(op, "no answer within the interaction's budget")
}

/// Checks that apply to commands and buttons alike, in the documented order: blocked
/// users (`BLOCKED_USER_IDS` and `/block`; before anything else, not counted), the guild,
/// the rate limit. The store part is one read (`AdmissionStore::admit`) that fails
/// closed. `Some` is the refusal to send.
async fn gate(app: &App, caller: &Caller) -> Option<(Reply, Outcome)> {
    let blocked = || {
        Some((
            Reply::ephemeral("⛔ You are blocked from using this bot."),
            Outcome::Denied,
        ))
    };
    if auth::is_blocked(&app.config, caller) {
        return blocked();
    }
    // Admins cannot be blocked with /block; a request from another guild is refused
    // without being counted.
    let check_block = !auth::is_admin(&app.config, caller);
    let guild_ok = match (&app.config.discord_guild_id, &caller.guild_id) {
        (Some(required), Some(actual)) => required == actual,
        _ => true,
    };
    let limit = app.config.rate_limit_per_minute;
    let now = app.clock.now_secs();
    let hit = ratelimit::hit(limit, now).filter(|_| guild_ok);
    let admission = if check_block || hit.is_some() {
        tokio::time::timeout(
            STORE_BUDGET,
            app.store.admit(&caller.user_id, now, check_block, hit),
        )
        .await
        .unwrap_or_else(|_| Err(over_budget("admit")))
    } else {
        Ok(Admission::Open { count: None })
    };
    let count = match admission {
        Ok(Admission::Blocked) => return blocked(),
        Ok(Admission::Open { count }) => count,
        Err(e) => {
            tracing::error!(error.type = "store_unavailable", error.message = %e, "blocks and the rate limit cannot be read; refusing");
            return Some((Reply::ephemeral(FAIL_CLOSED), Outcome::Error));
        }
    };
    if !guild_ok {
        return Some((
            Reply::ephemeral("⛔ This bot is not available in this server."),
            Outcome::Denied,
        ));
    }
    match count.map(|count| ratelimit::decide(count, limit, now)) {
        Some(RateDecision::Limited { retry_in_secs }) => Some((
            Reply::ephemeral(format!("⏳ Rate limited: try again in {retry_in_secs} s")),
            Outcome::RateLimited,
        )),
        Some(RateDecision::Allowed) | None => None,
    }
}

/// Decides how to answer a slash command. `reply_to` is the interaction to edit later
/// (`None` for `valine invoke`).
pub async fn decide_command(
    app: &App,
    caller: &Caller,
    name: &str,
    options: OptionMap,
    reply_to: Option<ReplyTarget>,
) -> Decision {
    in_command_span(caller, name, |trace_id| async move {
        decide_inner(app, caller, name, options, reply_to, &trace_id).await
    })
    .await
}

/// The whole answer to a slash command for an edge without Discord to answer later
/// (`valine invoke`, `valine demo`): decides, and runs a deferred body inline.
pub async fn answer_inline(
    app: &App,
    caller: &Caller,
    name: &str,
    options: OptionMap,
    reply_to: Option<ReplyTarget>,
) -> (Reply, Outcome) {
    match decide_command(app, caller, name, options, reply_to).await {
        Decision::Reply { reply, outcome } | Decision::Update { reply, outcome } => {
            (reply, outcome)
        }
        Decision::Defer { job, .. } => run_deferred(app, &job).await,
    }
}

/// Runs a decision inside the command's log span and logs the completion line of an
/// answer given now (a deferred one logs it when its job ends). The trace id exists
/// before any check, so every line of the command carries it.
async fn in_command_span<F, Fut>(caller: &Caller, name: &str, decide: F) -> Decision
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Decision>,
{
    let trace_id = crate::trace::new_trace_id();
    let span = tracing::info_span!(
        "command",
        trace_id = %trace_id,
        user_id = %caller.user_id,
        command = %name,
    );
    async move {
        let started = std::time::Instant::now();
        let decision = decide(trace_id.clone()).await;
        if let Decision::Reply { outcome, .. } | Decision::Update { outcome, .. } = &decision {
            let elapsed = started.elapsed();
            crate::metrics::command(name, outcome.as_str(), elapsed);
            tracing::info!(
                duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                outcome = outcome.as_str(),
                "command finished"
            );
        }
        decision
    }
    .instrument(span)
    .await
}

async fn decide_inner(
    app: &App,
    caller: &Caller,
    name: &str,
    options: OptionMap,
    reply_to: Option<ReplyTarget>,
    trace_id: &str,
) -> Decision {
    if let Some((reply, outcome)) = gate(app, caller).await {
        return Decision::now(reply, outcome);
    }
    let Some(command) = super::find(name) else {
        return Decision::now(
            Reply::ephemeral(format!("❌ Unknown command /{name}")),
            Outcome::Invalid,
        );
    };
    let spec = command.spec();
    let now_ms = app.clock.now_ms();
    let mut tracer = Tracer::start(&caller.user_id, spec.name, &options_json(&options), now_ms);
    tracer.set_id(trace_id);

    let step = tracer.begin("authorize");
    if !auth::allows(&app.config, caller, spec.access) {
        tracer.end_with(step, crate::store::StepStatus::Error, Some("denied".into()));
        let reply = Reply::ephemeral(format!("⛔ /{}: {}", spec.name, spec.access.denial()));
        return finish_now(app, tracer, reply, Outcome::Denied, Some("denied".into())).await;
    }
    tracer.end::<(), String>(step, &Ok(()));

    let step = tracer.begin("validate");
    if let Err(message) = spec.validate(&options) {
        tracer.end_with(step, crate::store::StepStatus::Error, Some(message.clone()));
        let reply = Reply::ephemeral(format!("❌ {message}"));
        return finish_now(app, tracer, reply, Outcome::Invalid, Some(message)).await;
    }
    tracer.end::<(), String>(step, &Ok(()));

    let step = tracer.begin("precheck");
    let call = Call {
        caller: caller.clone(),
        options,
        reply_to,
    };
    if let Err(refusal) = command.precheck(app, &call) {
        let (reply, outcome, message) = match refusal {
            super::Precheck::Invalid(m) => (format!("❌ {m}"), Outcome::Invalid, m),
            super::Precheck::Denied(m) => (format!("⛔ {m}"), Outcome::Denied, m),
        };
        tracer.end_with(step, crate::store::StepStatus::Error, Some(message.clone()));
        let reply = Reply::ephemeral(reply);
        return finish_now(app, tracer, reply, outcome, Some(message)).await;
    }
    tracer.end::<(), String>(step, &Ok(()));

    match command.answer(&call) {
        Answer::Immediate { .. } => {
            let result = command.run(app, &call, &mut tracer).await;
            answer_now(app, tracer, result, |reply, outcome| Decision::Reply {
                reply,
                outcome,
            })
            .await
        }
        Answer::Deferred { ephemeral } => defer(tracer, command, call, None, ephemeral),
    }
}

/// Finishes the trace of an answer given now. A success becomes the decision `ok`
/// builds (a new message, or an update of the one a button is on); a failure is always
/// a new ephemeral message, so the message a button is on stays as it was.
async fn answer_now(
    app: &App,
    tracer: Tracer,
    result: Result<Reply, super::CommandError>,
    ok: impl FnOnce(Reply, Outcome) -> Decision,
) -> Decision {
    match result {
        Ok(reply) => {
            let outcome = if reply.failed {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            save_trace(app, tracer.finish(outcome, None)).await;
            ok(reply, outcome)
        }
        Err(e) => {
            log_failure(&e);
            let reply = Reply::ephemeral(e.user_message(tracer.short_id())).failed();
            finish_now(app, tracer, reply, e.outcome(), Some(e.to_string())).await
        }
    }
}

/// Hands the command (or button press) to a job carrying the trace so far; the edge
/// enqueues it and answers type 5.
fn defer(
    mut tracer: Tracer,
    command: &'static dyn Command,
    call: Call,
    button: Option<ButtonPress>,
    ephemeral: bool,
) -> Decision {
    let Call {
        caller,
        options,
        reply_to,
    } = call;
    let job = DeferredCommand {
        trace_id: tracer.id().to_owned(),
        command: command.spec().name.to_owned(),
        options,
        user_id: caller.user_id,
        roles: caller.roles,
        guild_id: caller.guild_id,
        channel_id: caller.channel_id,
        reply_to,
        button,
        trace: Some(Box::new(tracer.checkpoint())),
    };
    Decision::Defer { job, ephemeral }
}

/// A trace is a record of the work, not a precondition for it: a failed write is logged.
async fn save_trace(app: &App, record: crate::store::TraceRecord) {
    if let Err(e) = app.store.put_trace(&record).await {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "trace not saved");
    }
}

/// Errors are logged at ERROR; refusals and bad input the user can fix are not errors.
fn log_failure(e: &super::CommandError) {
    if e.outcome() == Outcome::Error {
        tracing::error!(error.type = e.error_type(), error.message = %crate::error::chain(e), "command failed");
    } else {
        tracing::info!(error.type = e.error_type(), error.message = %e, "command refused");
    }
}

async fn finish_now(
    app: &App,
    tracer: Tracer,
    reply: Reply,
    outcome: Outcome,
    error: Option<String>,
) -> Decision {
    save_trace(app, tracer.finish(outcome, error)).await;
    Decision::now(reply, outcome)
}

/// Decides how to answer a button press (`valine:<action>:<id>`). Buttons are checked
/// like commands: gate first, then the button's own authorization, every time.
pub async fn decide_component(
    app: &App,
    caller: &Caller,
    custom_id: &str,
    reply_to: Option<ReplyTarget>,
) -> Decision {
    in_command_span(caller, custom_id, |trace_id| async move {
        decide_component_inner(app, caller, custom_id, reply_to, &trace_id).await
    })
    .await
}

async fn decide_component_inner(
    app: &App,
    caller: &Caller,
    custom_id: &str,
    reply_to: Option<ReplyTarget>,
    trace_id: &str,
) -> Decision {
    if let Some((reply, outcome)) = gate(app, caller).await {
        return Decision::now(reply, outcome);
    }
    let parsed = parse_custom_id(custom_id)
        .and_then(|(action, id)| super::button(action).map(|b| (b, id)))
        // A follow-up step is Valine's own job, never something a user presses.
        .filter(|((_, button), _)| button.answer != ButtonAnswer::FollowUp);
    let Some(((command, button), id)) = parsed else {
        return Decision::now(
            Reply::ephemeral("❌ This button is not one Valine handles."),
            Outcome::Invalid,
        );
    };
    let mut options = Map::new();
    options.insert("button".into(), Value::from(button.action));
    options.insert("id".into(), Value::from(id));
    let label = format!("{} ({})", command.spec().name, button.label);
    let mut tracer = Tracer::start(&caller.user_id, &label, &options, app.clock.now_ms());
    tracer.set_id(trace_id);

    let step = tracer.begin("authorize");
    if !auth::allows(&app.config, caller, button.access) {
        tracer.end_with(step, crate::store::StepStatus::Error, Some("denied".into()));
        let reply = Reply::ephemeral(format!("⛔ {}: {}", button.label, button.access.denial()));
        return finish_now(app, tracer, reply, Outcome::Denied, Some("denied".into())).await;
    }
    tracer.end::<(), String>(step, &Ok(()));

    let call = Call {
        caller: caller.clone(),
        options: OptionMap::new(),
        reply_to,
    };
    match button.answer {
        ButtonAnswer::Update => {
            let result = button
                .handler
                .press(app, button.action, id, &call, &mut tracer)
                .await;
            answer_now(app, tracer, result, |reply, outcome| Decision::Update {
                reply,
                outcome,
            })
            .await
        }
        ButtonAnswer::Deferred { ephemeral } => {
            let press = ButtonPress {
                action: button.action.to_owned(),
                id: id.to_owned(),
            };
            defer(tracer, command, call, Some(press), ephemeral)
        }
        // Filtered out above.
        ButtonAnswer::FollowUp => Decision::now(
            Reply::ephemeral("❌ This button is not one Valine handles."),
            Outcome::Invalid,
        ),
    }
}

/// `valine:<action>:<id>` as Valine renders it: an action of lower-case letters, digits
/// and `-`, an id of ASCII letters, digits, `-` and `_`. Anything else (a trailing
/// newline, spaces, another prefix) is not a button Valine made.
fn parse_custom_id(custom_id: &str) -> Option<(&str, &str)> {
    let (action, id) = custom_id.strip_prefix("valine:")?.split_once(':')?;
    let action_ok = !action.is_empty()
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (action_ok && id_ok).then_some((action, id))
}

/// Runs a deferred command's body (or button press) and returns its reply; the trace
/// is completed and stored, and the completion line logged. Shared by the job handler
/// and `valine invoke`.
pub async fn run_deferred(app: &App, job: &DeferredCommand) -> (Reply, Outcome) {
    let span = job.span();
    async {
        let now_ms = app.clock.now_ms();
        let mut tracer = match job.trace.clone() {
            Some(record) => Tracer::resume(*record),
            None => {
                let options = job
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                let mut tracer = Tracer::start(&job.user_id, &job.command, &options, now_ms);
                tracer.set_id(&job.trace_id);
                tracer
            }
        };
        let call = Call {
            caller: job.caller(),
            options: job.options.clone(),
            reply_to: job.reply_to.clone(),
        };
        let (reply, outcome, error) = match super::find(&job.command) {
            None => (
                Reply::text(format!("❌ Unknown command /{}", job.command)).failed(),
                Outcome::Invalid,
                Some("unknown command".to_owned()),
            ),
            Some(command) => {
                match run_body(app, command, job.button.as_ref(), &call, &mut tracer).await {
                    Ok(reply) => {
                        let outcome = if reply.failed {
                            Outcome::Error
                        } else {
                            Outcome::Ok
                        };
                        (reply, outcome, None)
                    }
                    Err(e) => {
                        tracing::error!(
                            error.type = e.error_type(),
                            error.message = %crate::error::chain(&e),
                            "command failed"
                        );
                        let message = e.user_message(tracer.short_id());
                        let outcome = e.outcome();
                        (Reply::text(message).failed(), outcome, Some(e.to_string()))
                    }
                }
            }
        };
        let record = tracer.finish(outcome, error);
        if let Err(e) = app.store.put_trace(&record).await {
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "trace not saved");
        }
        let duration_ms = record.duration_ms.unwrap_or(0);
        crate::metrics::command(
            &job.command,
            outcome.as_str(),
            std::time::Duration::from_millis(duration_ms),
        );
        tracing::info!(duration_ms, outcome = outcome.as_str(), "command finished");
        (reply, outcome)
    }
    .instrument(span)
    .await
}
/// The command's body, or the handler of the button (or follow-up step) it names.
async fn run_body(
    app: &App,
    command: &'static dyn Command,
    button: Option<&ButtonPress>,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, super::CommandError> {
    let Some(press) = button else {
        return command.run(app, call, tracer).await;
    };
    let spec = command
        .buttons()
        .into_iter()
        .find(|b| b.action == press.action)
        .ok_or_else(|| {
            super::CommandError::Invalid(format!(
                "/{} has no button `{}`",
                command.spec().name,
                press.action
            ))
        })?;
    spec.handler
        .press(app, &press.action, &press.id, call, tracer)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_are_exactly_what_valine_renders() {
        assert_eq!(
            parse_custom_id("valine:reverify:9000"),
            Some(("reverify", "9000"))
        );
        assert_eq!(
            parse_custom_id("valine:rollback-confirm:1700000900-0a1b2c3d-00ff"),
            Some(("rollback-confirm", "1700000900-0a1b2c3d-00ff"))
        );
        assert_eq!(parse_custom_id("valine:sync:"), Some(("sync", "")));
        for bad in [
            "valine:reverify:9000\n",
            "valine:reverify:9000 ",
            "valine:reverify:90\u{0}00",
            "valine:Reverify:9000",
            "valine::9000",
            "valine:reverify",
            "other:reverify:9000",
            "valine:reverify:9000:extra",
        ] {
            assert_eq!(parse_custom_id(bad), None, "{bad:?}");
        }
    }
}
