//! `/deploy-client`: dispatches `DEPLOY_WORKFLOW` at a ref, finds the run GitHub
//! started for it, and answers with a link and a `Cancel run` button. With `wait:true`
//! the message then follows the run: webhooks drive `FollowRun`, and a [`PollRun`]
//! chain re-reads the run every `run_poll` while the token lives.
//!
//! The dispatch itself goes through [`crate::dispatch`], which makes sure it is sent at
//! most once however often this job runs, and holds the one-deploy lock; this command
//! decides what the user reads about each outcome, and whether to follow the run.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{
    Answer, ButtonAnswer, ButtonSpec, Call, Command, CommandError, CommandSpec, OptionSpec,
    Precheck, Press,
};
use crate::app::App;
use crate::auth::Access;
use crate::discord::interaction::Caller;
use crate::discord::response::{Button, Embed, Reply, YELLOW};
use crate::dispatch::{
    self, Action, DispatchRequest, Dispatched, RunRef, Running, end_mutation_step,
};
use crate::dryrun::{Mutated, Mutation};
use crate::github::api::GitHubError;
use crate::github::git_ref::GitRef;
use crate::jobs::PollRun;
use crate::probe::target::{ProbeTarget, TargetPolicy};
use crate::runs::follow::schedule_poll;
use crate::runs::report::{CANCEL_ACTION, cancel_button};
use crate::settings;
use crate::store::{AuditRecord, CorrelationKind, CorrelationRecord, retention};
use crate::trace::Tracer;

/// `/deploy-client`.
pub struct DeployClient;

#[async_trait]
impl Command for DeployClient {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "deploy-client",
            description: "Deploy the client: dispatch the deploy workflow",
            options: vec![
                OptionSpec::string("ref", "Git ref to deploy (default: the deploy branch)"),
                OptionSpec::string("api_base", "VITE_API_BASE for this build"),
                OptionSpec::boolean("wait", "Follow the run in this message"),
            ],
            access: Access::Deployers,
            answer: Answer::Deferred { ephemeral: false },
        }
    }

    fn buttons(&'static self) -> Vec<ButtonSpec> {
        vec![ButtonSpec {
            action: CANCEL_ACTION,
            label: "Cancel run",
            access: Access::Deployers,
            // Cancelling calls GitHub: a new message that the job fills in.
            answer: ButtonAnswer::Deferred { ephemeral: false },
            handler: &CancelRun,
        }]
    }

    /// Checks on the request path (no GitHub call): an invalid `ref` or `api_base` is
    /// answered at once.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        parse_request(app, call)
            .map(drop)
            .map_err(Precheck::Invalid)
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let request = parse_request(app, call).map_err(CommandError::Invalid)?;
        let github = app.github()?;
        let workflow = super::deploy_workflow(app, tracer).await?;
        let api_base = match &request.api_base {
            Some(target) => target.as_str().to_owned(),
            None => settings::in_use(app, settings::API_BASE_KEY)
                .await?
                .value
                .ok_or_else(|| {
                    CommandError::NotConfigured(
                        "No API base to deploy with: pass `api_base:` or set one with /set-api-base"
                            .into(),
                    )
                })?,
        };
        let requester = requester(&call.caller)
            .map_err(CommandError::Invalid)?
            .to_owned();
        let mut inputs = Map::new();
        // The set-up contract's input; the protocol adds `correlation_id` and `requester`.
        inputs.insert("VITE_API_BASE".into(), Value::from(api_base.clone()));
        let file_name = workflow.file_name().to_owned();
        let dispatch = DispatchRequest {
            kind: CorrelationKind::Deploy,
            action: Action::Workflow {
                workflow,
                git_ref: request.git_ref.as_str().to_owned(),
                inputs,
            },
            exclusive: true,
            requester,
            reply_to: call.reply_to.clone(),
            channel_id: call.caller.channel_id.clone(),
            wait: request.wait,
            api_base: Some(api_base.clone()),
            fingerprint: Some(super::set_url::fingerprint(&api_base)),
            identify_timeout: app.worker.identify_timeout,
        };
        let outcome = dispatch::dispatch_once(app, github, dispatch, tracer).await?;
        Ok(match &outcome {
            Dispatched::Identified { marker, run } => {
                let follows = follow(app, call, marker, run, tracer).await;
                // The marker is the first attempt's when this one recovered: it says what
                // was dispatched.
                let shown = Shown {
                    file_name: &file_name,
                    git_ref: &request.git_ref,
                    api_base: marker.api_base.as_deref().unwrap_or(&api_base),
                };
                dispatched_reply(&shown, marker, run, follows)
            }
            Dispatched::Unidentified {
                correlation_id,
                lookup_error,
            } => not_identified(&request.git_ref, correlation_id, lookup_error.as_ref()),
            Dispatched::NotConfirmed { correlation_id } => not_confirmed(correlation_id),
            Dispatched::DryRun {
                correlation_id,
                mutation,
            } => dry_run_reply(correlation_id, mutation),
            Dispatched::Busy(running) => already_running(&running_link(running)),
        })
    }
}

/// `Cancel run` on a dispatched deploy's message.
struct CancelRun;

#[async_trait]
impl Press for CancelRun {
    async fn press(
        &self,
        app: &App,
        _action: &str,
        id: &str,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        cancel(app, id, call, tracer).await
    }
}

/// What the options ask for, once they are known to be valid.
struct Request {
    git_ref: GitRef,
    api_base: Option<ProbeTarget>,
    wait: bool,
}

fn parse_request(app: &App, call: &Call) -> Result<Request, String> {
    let git_ref = GitRef::parse(call.string("ref").unwrap_or(&app.config.deploy_branch))?;
    let api_base = call
        .string("api_base")
        .map(|url| {
            ProbeTarget::parse(url, &TargetPolicy::from_config(&app.config))
                .map_err(|e| format!("`api_base`: {e}"))
        })
        .transpose()?;
    requester(&call.caller)?;
    Ok(Request {
        git_ref,
        api_base,
        wait: call.boolean("wait").unwrap_or(false),
    })
}

/// The `requester` input: the Discord user id, digits only (a snowflake), never a name.
pub(super) fn requester(caller: &Caller) -> Result<&str, String> {
    let id = caller.user_id.as_str();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err("the requester is not a Discord user id".into())
    }
}

/// What the reply names besides the marker's fields.
struct Shown<'a> {
    file_name: &'a str,
    git_ref: &'a GitRef,
    api_base: &'a str,
}

/// With `wait:true`, starts the poll that follows the run should webhooks be missed.
/// Returns whether this message follows the run.
pub(super) async fn follow(
    app: &App,
    call: &Call,
    marker: &CorrelationRecord,
    run: &RunRef,
    tracer: &mut Tracer,
) -> bool {
    let follows = marker.wait && call.reply_to.is_some();
    if follows {
        let poll = PollRun {
            correlation_id: marker.id.clone(),
            run_id: run.id,
            seq: 1,
        };
        let step = tracer.begin("jobs.schedule_poll");
        let scheduled = schedule_poll(app, &poll).await;
        tracer.end(step, &scheduled);
        if let Err(e) = scheduled {
            // Webhooks still update the message; only the fallback is missing.
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "run poll not scheduled");
        }
    }
    follows
}

fn dispatched_reply(
    shown: &Shown<'_>,
    marker: &CorrelationRecord,
    run: &RunRef,
    follows: bool,
) -> Reply {
    let footer = match (marker.wait, follows) {
        (true, true) => "This message follows the run.",
        (true, false) => "This message cannot follow the run: there is no interaction to edit.",
        (false, _) => "The result is announced when the run completes.",
    };
    let embed = Embed::new("🚀 Deploy dispatched")
        .color(YELLOW)
        .description(format!(
            "{} of `{}` from `{}`",
            capitalised(&run.link()),
            shown.file_name,
            shown.git_ref
        ))
        .field("Ref", format!("`{}`", shown.git_ref))
        .field("API base", shown.api_base.to_owned())
        .field("Requested by", format!("<@{}>", marker.requester))
        .field("Correlation id", format!("`{}`", marker.id))
        .footer(footer);
    let mut reply = Reply::embed(embed).with_button(cancel_button(run.id));
    if let Some(url) = &run.html_url {
        reply = reply.with_button(Button::link("View run", url.clone()));
    }
    reply
}

pub(super) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some('[') => format!("[{}", capitalised(chars.as_str())),
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) fn already_running(link: &str) -> Reply {
    Reply::text(format!("A deploy is already running: {link}")).failed()
}

/// What holds up this deploy, as the refusal names it.
pub(super) fn running_link(running: &Running) -> String {
    match running {
        Running::Run(run) => run.link(),
        Running::Identifying { correlation_id } => {
            format!("dispatch `{correlation_id}` (its run is being identified)")
        }
        Running::Unknown => "another dispatch is in progress".to_owned(),
    }
}

fn not_identified(git_ref: &GitRef, correlation_id: &str, error: Option<&GitHubError>) -> Reply {
    let mut text = format!(
        "⚠️ Deploy of `{git_ref}` dispatched (correlation `{correlation_id}`), but its run was \
         not found."
    );
    if let Some(e) = error {
        text.push_str(&format!(" Looking it up failed: {e}."));
    }
    text.push_str(
        "\nRun not identified: make the workflow's run-name include inputs.correlation_id",
    );
    Reply::text(text).failed()
}

pub(super) fn not_confirmed(correlation_id: &str) -> Reply {
    Reply::text(format!(
        "⚠️ dispatch not confirmed; not re-sent (correlation `{correlation_id}`). Check the \
         workflow's runs on GitHub before deploying again."
    ))
    .failed()
}

fn dry_run_reply(correlation_id: &str, mutation: &Mutation) -> Reply {
    Reply::text(format!(
        "{}\nNothing was dispatched (DRY_RUN); correlation `{correlation_id}`.",
        mutation.dry_run_line(),
    ))
}

/// Records a cancel. A failure is logged: the cancel has been asked for, and failing
/// the reply now would invite asking again.
async fn audit_cancel(app: &App, caller: &Caller, tracer: &Tracer, run_id: u64, dry_run: bool) {
    let now_ms = app.clock.now_ms();
    let record = AuditRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        at_ms: now_ms,
        user_id: caller.user_id.clone(),
        action: format!("cancel run {run_id}"),
        old_fingerprint: None,
        new_fingerprint: None,
        trace_id: Some(tracer.id().to_owned()),
        dry_run,
        expires_at: now_ms.div_euclid(1000) + retention::AUDIT,
    };
    if let Err(e) = app.store.append_audit(&record).await {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "audit record not saved");
    }
}

async fn cancel(
    app: &App,
    id: &str,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let run_id: u64 = id
        .parse()
        .map_err(|_| CommandError::Invalid("Invalid run id".into()))?;
    // Only a run this command dispatched is cancelled from its button.
    let step = tracer.begin("store.correlation_for_run");
    let correlation = app
        .store
        .correlation_for_run(run_id, app.clock.now_secs())
        .await;
    tracer.end(step, &correlation);
    if !correlation?.is_some_and(|c| c.kind == CorrelationKind::Deploy) {
        return Err(CommandError::Invalid(format!(
            "Run {run_id} was not dispatched by /deploy-client"
        )));
    }
    let github = app.github()?;
    let step = tracer.begin("github.get_run");
    let run = github.get_run(run_id).await;
    tracer.end(step, &run);
    let Some(run) = run? else {
        return Ok(Reply::text(format!("Run {run_id} not found")).failed());
    };
    let link = RunRef::from(&run).link();
    if let Some(url) = &run.html_url {
        tracer.link(url.clone());
    }
    if run.is_completed() {
        return Ok(Reply::text(format!(
            "{} already completed ({}); nothing to cancel.",
            capitalised(&link),
            run.conclusion.as_deref().unwrap_or("no conclusion")
        )));
    }
    let step = tracer.begin("github.cancel_run");
    let outcome = app
        .mutate(
            github.cancel_run_mutation(run_id),
            github.cancel_run(run_id),
        )
        .await;
    end_mutation_step(tracer, step, &outcome);
    let outcome = outcome?;
    let dry_run = outcome.suppressed().is_some();
    audit_cancel(app, &call.caller, tracer, run_id, dry_run).await;
    Ok(match outcome {
        Mutated::Performed(()) => Reply::text(format!(
            "🛑 Cancel requested for {link} by <@{}>",
            call.caller.user_id
        )),
        Mutated::Suppressed(m) => Reply::text(m.dry_run_line()),
    })
}
