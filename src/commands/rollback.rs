//! `/rollback`: re-runs an earlier successful deploy run (`POST …/runs/{id}/rerun`: the
//! same commit and inputs), the one named by `run_id` or the newest successful deploy
//! run on `DEPLOY_BRANCH` whose commit differs from the newest deploy run's.
//!
//! Without `confirm:true` it answers an ephemeral preview with Confirm / Cancel (only
//! the asker, 15 minutes, taken once, as for `/set-*`). Once confirmed the rollback is
//! announced publicly: the deferred reply itself with `confirm:true`, or a new message
//! after a Confirm press. Confirming re-reads GitHub: if the deployed commit moved since
//! the preview, nothing is re-run.
//!
//! The re-run goes through [`crate::dispatch`] like a deploy: the one-deploy lock, the
//! marker written before sending, sent at most once however often the job runs, audited
//! once accepted, DRY_RUN shown instead of sent. The message then follows the run as
//! `/deploy-client wait:true` does and appends the verification.

use async_trait::async_trait;

use super::deploy_client::{
    already_running, capitalised, follow, not_confirmed, requester, running_link,
};
use super::set_url::{CONFIRM_WINDOW_SECS, Pressed, pending_id, take_own_pending};
use super::verify_run::RunRef as RunInput;
use super::{
    Answer, ButtonAnswer, ButtonSpec, Call, Command, CommandError, CommandSpec, OptionSpec,
    Precheck, Press,
};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::{Button, ButtonStyle, Embed, Reply, YELLOW};
use crate::dispatch::{self, Action, DispatchError, DispatchRequest, Dispatched, short_sha};
use crate::github::api::GitHubError;
use crate::github::model::{Workflow, WorkflowRun};
use crate::runs::report::cancel_button;
use crate::store::{CorrelationKind, PendingConfirmation};
use crate::trace::Tracer;

const CONFIRM_ACTION: &str = "rollback-confirm";
const CANCEL_ACTION: &str = "rollback-cancel";
/// The pending confirmation's key: what the preview proposes.
const PENDING_KEY: &str = "rollback";
/// How many deploy runs are read to find the last good one.
const RUNS_READ: usize = 50;

/// `/rollback`.
pub struct Rollback;

#[async_trait]
impl Command for Rollback {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "rollback",
            description: "Roll back: re-run an earlier successful deploy run",
            options: vec![
                OptionSpec::string(
                    "run_id",
                    "Deploy run to re-run, id or URL (default: the last good deploy)",
                ),
                OptionSpec::boolean("confirm", "Roll back without a preview"),
            ],
            access: Access::Deployers,
            answer: Answer::Deferred { ephemeral: true },
        }
    }

    /// The preview is for the asker alone; a confirmed rollback is public.
    fn answer(&self, call: &Call) -> Answer {
        Answer::Deferred {
            ephemeral: call.boolean("confirm") != Some(true),
        }
    }

    /// Confirm re-runs (GitHub calls: a new public message that a job fills in); Cancel
    /// replaces the preview at once. Deployers only, checked again on every press.
    fn buttons(&'static self) -> Vec<ButtonSpec> {
        vec![
            ButtonSpec {
                action: CONFIRM_ACTION,
                label: "Confirm",
                access: Access::Deployers,
                answer: ButtonAnswer::Deferred { ephemeral: false },
                handler: &Rollback,
            },
            ButtonSpec {
                action: CANCEL_ACTION,
                label: "Cancel",
                access: Access::Deployers,
                answer: ButtonAnswer::Update,
                handler: &Rollback,
            },
        ]
    }

    /// A malformed `run_id`, or a run URL of another repository, is answered at once.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        if let Some(input) = call.string("run_id") {
            RunInput::parse_for(app, input)
                .map_err(|e| Precheck::Invalid(format!("Invalid run id: {e}")))?;
        }
        requester(&call.caller).map_err(Precheck::Invalid)?;
        Ok(())
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let named = call
            .string("run_id")
            .map(|input| RunInput::parse_for(app, input).map(|run| run.id))
            .transpose()
            .map_err(|e| CommandError::Invalid(format!("Invalid run id: {e}")))?;
        let target = match choose(app, named, tracer).await? {
            Ok(target) => target,
            Err(refusal) => return Ok(refusal),
        };
        if call.boolean("confirm") == Some(true) {
            return roll_back(app, call, target, tracer).await;
        }
        preview(app, call, &target, tracer).await
    }
}

#[async_trait]
impl Press for Rollback {
    async fn press(
        &self,
        app: &App,
        action: &str,
        id: &str,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let confirm = action == CONFIRM_ACTION;
        let verb = if confirm { "confirm" } else { "cancel" };
        let refusal = format!("⛔ Only the deployer who asked for this rollback can {verb} it.");
        let pending =
            match take_own_pending(app, id, PENDING_KEY, &call.caller, refusal, tracer).await? {
                Pressed::Taken(pending) => pending,
                Pressed::Expired => {
                    return Ok(Reply::text(
                        "⌛ This rollback preview expired after 15 minutes; nothing was re-run. \
                         Run /rollback again.",
                    ));
                }
            };
        if !confirm {
            return Ok(Reply::text("Cancelled: nothing was re-run."));
        }
        let run_id = pending
            .new_value
            .as_deref()
            .and_then(|id| id.parse::<u64>().ok())
            .ok_or_else(|| CommandError::Invalid("This rollback preview is unreadable.".into()))?;
        let target = match choose(app, Some(run_id), tracer).await? {
            Ok(target) => target,
            Err(refusal) => return Ok(refusal),
        };
        if target.from.head_sha != pending.old_value {
            return Ok(Reply::text(format!(
                "⚠️ The deployed commit changed since the preview (now {}); nothing was \
                 re-run. Run /rollback again.",
                short_sha(target.from.head_sha.as_deref())
            ))
            .failed());
        }
        roll_back(app, call, target, tracer).await
    }
}

/// What a rollback re-runs, and what it rolls back from.
struct Target {
    workflow: Workflow,
    /// The successful deploy run to re-run.
    run: WorkflowRun,
    /// The newest deploy run on the deploy branch: what is deployed now.
    from: WorkflowRun,
}

/// The run to re-run: `named`, or the newest successful deploy run whose commit differs
/// from the newest deploy run's. `Err` is the refusal to answer (nothing changed).
async fn choose(
    app: &App,
    named: Option<u64>,
    tracer: &mut Tracer,
) -> Result<Result<Target, Reply>, CommandError> {
    let workflow = super::deploy_workflow(app, tracer).await?;
    let runs = super::deploy_runs(app, RUNS_READ, tracer).await?;
    let refuse = |text: String| Ok(Err(Reply::text(text).failed()));
    let Some(from) = runs.first().cloned() else {
        return refuse("No earlier successful deploy to roll back to".into());
    };
    if !from.is_completed() {
        return Ok(Err(already_running(&dispatch::RunRef::from(&from).link())));
    }
    let run = match named {
        Some(id) => {
            let step = tracer.begin("github.get_run");
            let run = app.github()?.get_run(id).await;
            tracer.end(step, &run);
            let Some(run) = run? else {
                return refuse(format!("Run {id} not found"));
            };
            if run.workflow_id != workflow.id {
                return refuse(format!(
                    "Run {id} is not a run of {}: /rollback re-runs deploy runs only",
                    workflow.file_name()
                ));
            }
            if !is_success(&run) {
                return refuse(format!(
                    "Run {id} did not succeed ({}): only a successful deploy can be rolled \
                     back to",
                    run.conclusion
                        .as_deref()
                        .or(run.status.as_deref())
                        .unwrap_or("no conclusion")
                ));
            }
            if run.head_sha == from.head_sha {
                return refuse(format!(
                    "Run {id} deployed commit {}, the one deployed now: nothing to roll back",
                    short_sha(run.head_sha.as_deref())
                ));
            }
            run
        }
        None => {
            let Some(run) = runs
                .iter()
                .find(|run| is_success(run) && run.head_sha != from.head_sha)
            else {
                return refuse("No earlier successful deploy to roll back to".into());
            };
            run.clone()
        }
    };
    if let Some(url) = &run.html_url {
        tracer.link(url.clone());
    }
    Ok(Ok(Target {
        workflow,
        run,
        from,
    }))
}

fn is_success(run: &WorkflowRun) -> bool {
    run.is_completed() && run.conclusion.as_deref() == Some("success")
}

/// `Would re-run deploy run <id> (commit <sha7>, <age>) to roll back from <sha7>`, with
/// Confirm / Cancel.
async fn preview(
    app: &App,
    call: &Call,
    target: &Target,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let now = app.clock.now_secs();
    let expires_at = now + CONFIRM_WINDOW_SECS;
    let id = pending_id(&call.caller.user_id, expires_at);
    let pending = PendingConfirmation {
        id: id.clone(),
        user_id: call.caller.user_id.clone(),
        key: PENDING_KEY.to_owned(),
        // The commit the preview rolls back from: a Confirm applies only while it holds.
        old_value: target.from.head_sha.clone(),
        new_value: Some(target.run.id.to_string()),
        expires_at,
    };
    let step = tracer.begin("store.put_pending");
    let stored = app.store.put_pending(&pending).await;
    tracer.end(step, &stored);
    stored?;

    let age = target
        .run
        .created_at
        .map(|at| crate::format::age(now - at.timestamp()))
        .unwrap_or_else(|| "age unknown".into());
    let mut text = format!(
        "Would re-run deploy run {} (commit {}, {age}) to roll back from {}\nConfirm or \
         cancel within 15 minutes.",
        dispatch::RunRef::from(&target.run).link(),
        short_sha(target.run.head_sha.as_deref()),
        short_sha(target.from.head_sha.as_deref()),
    );
    if app.dry_run().is_enabled() {
        text.push_str("\n🧪 DRY_RUN is on: confirming only shows the re-run request.");
    }
    Ok(Reply::ephemeral(text)
        .with_button(Button::action(
            "Confirm",
            ButtonStyle::Danger,
            CONFIRM_ACTION,
            &id,
        ))
        .with_button(Button::action(
            "Cancel",
            ButtonStyle::Secondary,
            CANCEL_ACTION,
            &id,
        )))
}

/// Re-runs the target through the dispatch protocol and says how it went; the message
/// then follows the run.
async fn roll_back(
    app: &App,
    call: &Call,
    target: Target,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let github = app.github()?;
    let requester = requester(&call.caller)
        .map_err(CommandError::Invalid)?
        .to_owned();
    let (run_id, run_sha) = (target.run.id, short_sha(target.run.head_sha.as_deref()));
    let from_sha = short_sha(target.from.head_sha.as_deref());
    let request = DispatchRequest {
        kind: CorrelationKind::Deploy,
        action: Action::Rerun {
            workflow: target.workflow,
            run: Box::new(target.run),
            from_sha: target.from.head_sha,
        },
        exclusive: true,
        requester,
        reply_to: call.reply_to.clone(),
        channel_id: call.caller.channel_id.clone(),
        // A rollback is followed like `/deploy-client wait:true`.
        wait: true,
        api_base: None,
        fingerprint: None,
        identify_timeout: app.worker.identify_timeout,
    };
    let outcome = match dispatch::dispatch_once(app, github, request, tracer).await {
        Ok(outcome) => outcome,
        // GitHub's own reason, quoted: a run created over 30 days ago cannot be re-run.
        Err(DispatchError::Refused(GitHubError::Api { status, message })) => {
            return Ok(Reply::text(format!(
                "❌ GitHub refused to re-run run {run_id} ({status}): {message}"
            ))
            .failed());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(match &outcome {
        Dispatched::Identified { marker, run } => {
            let follows = follow(app, call, marker, run, tracer).await;
            let footer = if follows {
                "This message follows the run."
            } else {
                "The result is announced when the run completes."
            };
            let embed = Embed::new("⏪ Rollback started")
                .color(YELLOW)
                .description(format!(
                    "{} re-runs commit `{run_sha}`, rolling back from `{from_sha}`",
                    capitalised(&run.link())
                ))
                .field("Requested by", format!("<@{}>", marker.requester))
                .field("Correlation id", format!("`{}`", marker.id))
                .footer(footer);
            let mut reply = Reply::embed(embed).with_button(cancel_button(run.id));
            if let Some(url) = &run.html_url {
                reply = reply.with_button(Button::link("View run", url.clone()));
            }
            reply
        }
        Dispatched::Unidentified {
            correlation_id,
            lookup_error,
        } => {
            let mut text = format!(
                "⚠️ Re-run of run {run_id} requested (correlation `{correlation_id}`), but its \
                 new attempt was not seen yet."
            );
            if let Some(e) = lookup_error {
                text.push_str(&format!(" Looking it up failed: {e}."));
            }
            Reply::text(text).failed()
        }
        Dispatched::NotConfirmed { correlation_id } => not_confirmed(correlation_id),
        Dispatched::DryRun {
            correlation_id,
            mutation,
        } => Reply::text(format!(
            "{}\nNothing was re-run (DRY_RUN); correlation `{correlation_id}`.",
            mutation.dry_run_line()
        )),
        Dispatched::Busy(running) => already_running(&running_link(running)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_and_cancel_are_deployer_buttons_that_fit_a_custom_id() {
        for (action, answer) in [
            (CONFIRM_ACTION, ButtonAnswer::Deferred { ephemeral: false }),
            (CANCEL_ACTION, ButtonAnswer::Update),
        ] {
            let (owner, spec) = crate::commands::button(action).unwrap();
            assert_eq!(owner.spec().name, "rollback");
            assert_eq!(spec.access, Access::Deployers);
            assert_eq!(spec.answer, answer);
        }
        let id = pending_id("123456789012345678", 1_700_000_900);
        assert!(format!("valine:{CONFIRM_ACTION}:{id}").len() <= 100);
    }

    #[test]
    fn only_a_confirmed_rollback_is_public() {
        let call = |confirm: Option<bool>| Call {
            caller: Default::default(),
            options: confirm
                .map(|c| {
                    crate::discord::interaction::OptionMap::from([(
                        "confirm".to_owned(),
                        crate::discord::interaction::OptionValue::Boolean(c),
                    )])
                })
                .unwrap_or_default(),
            reply_to: None,
        };
        assert_eq!(
            Rollback.answer(&call(None)),
            Answer::Deferred { ephemeral: true }
        );
        assert_eq!(
            Rollback.answer(&call(Some(false))),
            Answer::Deferred { ephemeral: true }
        );
        assert_eq!(
            Rollback.answer(&call(Some(true))),
            Answer::Deferred { ephemeral: false }
        );
    }
}
