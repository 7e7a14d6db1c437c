//! `/deploy-client` (SPEC §4.2, §5): dispatches `DEPLOY_WORKFLOW` at a ref, finds the run
//! GitHub started for it, and answers with a link and a `Cancel run` button. With
//! `wait:true` the message then follows the run: webhooks drive `FollowRun`, and a
//! [`PollRun`] chain re-reads the run every `run_poll` while the token lives.
//!
//! A dispatch is the one action here that must never happen twice, so the order of the
//! steps is the design:
//! 1. the correlation id is derived from the command's trace id, so every attempt of the
//!    job computes the same one; when its marker already exists, an earlier attempt may
//!    have dispatched, and this one only looks the run up (`dispatch not confirmed; not
//!    re-sent` when it cannot be found);
//! 2. the deploy lock, a store lock held from the "one deploy at a time" check until the
//!    run is identified, makes check-and-claim one step no other command can interleave;
//! 3. the marker is written before the request leaves; then dispatch, audit, identify.

use async_trait::async_trait;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    Answer, ButtonAnswer, ButtonSpec, Call, Command, CommandError, CommandSpec, OptionSpec,
    Precheck, Press,
};
use crate::app::App;
use crate::auth::Access;
use crate::discord::interaction::Caller;
use crate::discord::response::{Button, Embed, Reply, YELLOW};
use crate::dispatch::correlation_id_for;
use crate::dryrun::{Mutated, Mutation};
use crate::github::api::{GitHubClient, GitHubError};
use crate::github::git_ref::GitRef;
use crate::github::model::{Workflow, WorkflowRun};
use crate::jobs::PollRun;
use crate::runs::follow::schedule_poll;
use crate::runs::report::{CANCEL_ACTION, cancel_button};
use crate::settings;
use crate::store::{AuditRecord, CorrelationKind, CorrelationRecord, StepStatus, retention};
use crate::trace::Tracer;
use crate::verify::target::{ProbeTarget, TargetPolicy};

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

        let correlation_id = correlation_id_for(tracer.id());
        let step = tracer.begin("store.get_marker");
        let marker = app
            .store
            .get_correlation(&correlation_id, app.clock.now_secs())
            .await;
        tracer.end(step, &marker);
        if let Some(marker) = marker? {
            return recover(
                app,
                github,
                call,
                &request.git_ref,
                workflow,
                marker,
                tracer,
            )
            .await;
        }

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
        let deploy = Deploy {
            workflow,
            git_ref: request.git_ref,
            api_base,
            wait: request.wait,
            correlation_id,
            requester: requester(&call.caller)
                .map_err(CommandError::Invalid)?
                .to_owned(),
        };

        let step = tracer.begin("store.deploy_lock");
        let claimed = claim_lock(app, &deploy.correlation_id).await;
        tracer.end(step, &claimed);
        if !claimed? {
            return Ok(busy_reply(app, github).await);
        }
        let result = dispatch_claimed(app, github, call, &deploy, tracer).await;
        release_lock(app, &deploy.correlation_id).await;
        result
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

/// Held from the "one deploy at a time" check until the dispatched run is identified.
const DEPLOY_LOCK: &str = "deploy:dispatch";
/// The deploy lock outlives the identification wait by this much: the dispatch request
/// itself (10 s timeout) and the store writes around it.
const LOCK_MARGIN: Duration = Duration::from_secs(60);
/// How often a command waiting for the deploy lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// A deploy marker whose run was never identified (a crash, a missed webhook) is looked
/// up on GitHub by its correlation id for this long; older ones no longer block.
const UNIDENTIFIED_LOOKUP: Duration = Duration::from_secs(60 * 60);

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
fn requester(caller: &Caller) -> Result<&str, String> {
    let id = caller.user_id.as_str();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err("the requester is not a Discord user id".into())
    }
}

/// One deploy as this attempt knows it.
struct Deploy {
    workflow: Workflow,
    git_ref: GitRef,
    api_base: String,
    wait: bool,
    correlation_id: String,
    requester: String,
}

impl Deploy {
    /// The workflow's inputs (SPEC §10 set-up contract).
    fn inputs(&self) -> Map<String, Value> {
        let mut inputs = Map::new();
        inputs.insert("correlation_id".into(), self.correlation_id.clone().into());
        inputs.insert("requester".into(), self.requester.clone().into());
        inputs.insert("VITE_API_BASE".into(), self.api_base.clone().into());
        inputs
    }
}

/// The run a dispatch started, as far as it is known.
#[derive(Debug, Clone)]
struct RunRef {
    id: u64,
    html_url: Option<String>,
}

impl From<&WorkflowRun> for RunRef {
    fn from(run: &WorkflowRun) -> Self {
        RunRef {
            id: run.id,
            html_url: run.html_url.clone(),
        }
    }
}

impl RunRef {
    fn link(&self) -> String {
        match &self.html_url {
            Some(url) => format!("[run {}]({url})", self.id),
            None => format!("run {}", self.id),
        }
    }
}

/// Takes the deploy lock for `owner`, waiting up to `dispatch_lock_wait` for another
/// command that holds it.
async fn claim_lock(app: &App, owner: &str) -> Result<bool, crate::store::StoreError> {
    let give_up = tokio::time::Instant::now() + app.worker.dispatch_lock_wait;
    loop {
        let now = app.clock.now_secs();
        if app
            .store
            .acquire_lock(DEPLOY_LOCK, owner, now + lock_hold_secs(app), now)
            .await?
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

fn lock_hold_secs(app: &App) -> i64 {
    let hold = app.worker.identify_timeout + LOCK_MARGIN;
    i64::try_from(hold.as_secs()).unwrap_or(i64::MAX / 4)
}

async fn release_lock(app: &App, owner: &str) {
    if let Err(e) = app.store.release_lock(DEPLOY_LOCK, owner).await {
        // It expires on its own; until then other deploys wait for it.
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "deploy lock not released");
    }
}

/// The body once this command holds the deploy lock: refuse while another deploy runs,
/// write the marker, dispatch, audit, identify the run.
async fn dispatch_claimed(
    app: &App,
    github: &GitHubClient,
    call: &Call,
    deploy: &Deploy,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let step = tracer.begin("deploy.one_at_a_time");
    let running = running_deploy(app, github, deploy.workflow.id).await;
    tracer.end(step, &running);
    if let Some(run) = running? {
        return Ok(already_running(&run.link()));
    }

    // Under DRY_RUN nothing is sent, so there is nothing a marker could guard; one would
    // only block the next deploy while it waited for a run that never comes.
    let dry_run = app.dry_run().is_enabled();
    if !dry_run {
        let marker = marker_record(app, call, deploy, tracer);
        let step = tracer.begin("store.put_marker");
        let written = app
            .store
            .put_correlation(&marker, app.clock.now_secs())
            .await;
        tracer.end(step, &written);
        if !written? {
            // Another attempt of this very job (its lease lost) got there first: it is the
            // one that dispatches.
            let marker = app
                .store
                .get_correlation(&deploy.correlation_id, app.clock.now_secs())
                .await?
                .unwrap_or(marker);
            return recover(
                app,
                github,
                call,
                &deploy.git_ref,
                deploy.workflow.clone(),
                marker,
                tracer,
            )
            .await;
        }
    }

    let inputs = deploy.inputs();
    let workflow_id = deploy.workflow.id;
    let git_ref = deploy.git_ref.as_str();
    let dispatched_after = Utc::now();
    let step = tracer.begin("github.dispatch_workflow");
    let outcome = app
        .mutate(
            github.dispatch_mutation(workflow_id, git_ref, &inputs),
            github.dispatch_workflow(workflow_id, git_ref, &inputs),
        )
        .await;
    end_mutation_step(tracer, step, &outcome);
    let details = match outcome {
        Ok(Mutated::Suppressed(mutation)) => {
            audit(
                app,
                &call.caller,
                tracer,
                dispatch_audit(deploy, true),
                true,
            )
            .await;
            return Ok(dry_run_reply(deploy, &mutation));
        }
        Ok(Mutated::Performed(details)) => Some(details),
        // A timeout or 5xx: GitHub may have started the run. Look for it; never send again.
        Err(e @ GitHubError::Unavailable { .. }) => {
            tracing::warn!(error.type = e.error_type(), error.message = %e, "dispatch outcome unknown; looking for its run");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if details.is_some() {
        audit(
            app,
            &call.caller,
            tracer,
            dispatch_audit(deploy, false),
            false,
        )
        .await;
    }

    let returned = details.as_ref().and_then(|d| {
        d.run_id.map(|id| RunRef {
            id,
            html_url: d.html_url.clone(),
        })
    });
    let found = match returned {
        Some(run) => Ok(Some(run)),
        None => {
            identify(
                app,
                github,
                workflow_id,
                &deploy.correlation_id,
                dispatched_after,
                app.worker.identify_timeout,
                tracer,
            )
            .await
        }
    };
    match (found, details.is_some()) {
        (Ok(Some(run)), confirmed) => {
            if !confirmed {
                audit(
                    app,
                    &call.caller,
                    tracer,
                    dispatch_audit(deploy, false),
                    false,
                )
                .await;
            }
            Ok(dispatched(app, call, deploy, &run, tracer).await)
        }
        (Ok(None), true) => Ok(not_identified(deploy, None)),
        (Err(e), true) => Ok(not_identified(deploy, Some(&e))),
        (_, false) => Ok(not_confirmed(&deploy.correlation_id)),
    }
}

/// The marker of SPEC §5, with everything a follower needs to reach the requester.
fn marker_record(app: &App, call: &Call, deploy: &Deploy, tracer: &Tracer) -> CorrelationRecord {
    let now_ms = app.clock.now_ms();
    let ttl = i64::try_from(app.worker.interaction_token_ttl.as_millis()).unwrap_or(i64::MAX / 4);
    CorrelationRecord {
        id: deploy.correlation_id.clone(),
        kind: CorrelationKind::Deploy,
        requester: deploy.requester.clone(),
        channel_id: call.caller.channel_id.clone(),
        application_id: call.reply_to.as_ref().map(|t| t.application_id.clone()),
        interaction_token: call.reply_to.as_ref().map(|t| t.token.clone()),
        // The token's 15 minutes run from the interaction, which the trace started with.
        token_expires_at_ms: tracer.record().started_at_ms.saturating_add(ttl),
        wait: deploy.wait,
        api_base: Some(deploy.api_base.clone()),
        run_id: None,
        created_at_ms: now_ms,
        expires_at: now_ms.div_euclid(1000) + retention::CORRELATION,
    }
}

/// Looks for the run whose title carries `correlation_id` among the workflow's runs
/// created since the dispatch, for up to `timeout`.
async fn identify(
    app: &App,
    github: &GitHubClient,
    workflow_id: u64,
    correlation_id: &str,
    dispatched_after: DateTime<Utc>,
    timeout: Duration,
    tracer: &mut Tracer,
) -> Result<Option<RunRef>, GitHubError> {
    let step = tracer.begin("github.find_correlated_run");
    let found = github
        .wait_for_correlated_run(
            workflow_id,
            correlation_id,
            dispatched_after,
            timeout,
            app.worker.identify_poll,
        )
        .await;
    match &found {
        Ok(None) => tracer.end_with(
            step,
            StepStatus::Error,
            Some("no run carries the id".into()),
        ),
        other => tracer.end(step, other),
    }
    found.map(|run| run.as_ref().map(RunRef::from))
}

/// The newest deploy Valine dispatched, if GitHub says it is still unfinished. Its run
/// is read from GitHub, never from the store, so a missed webhook cannot block.
async fn running_deploy(
    app: &App,
    github: &GitHubClient,
    workflow_id: u64,
) -> Result<Option<RunRef>, CommandError> {
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let Some(latest) = app.store.latest_deploy_correlation(now).await? else {
        return Ok(None);
    };
    let run = match latest.run_id {
        Some(id) => github.get_run(id).await?,
        None => {
            let age_ms = now_ms.saturating_sub(latest.created_at_ms);
            if age_ms > duration_ms(UNIDENTIFIED_LOOKUP) {
                None
            } else {
                // Dispatched but never identified (a crash, a missed webhook): GitHub
                // may know the run by its title.
                let found = github
                    .find_correlated_run(workflow_id, &latest.id, marker_time(&latest))
                    .await?;
                if let Some(run) = &found
                    && let Err(e) = app.store.attach_run(&latest.id, run.id, now).await
                {
                    tracing::warn!(error.type = "store_unavailable", error.message = %e, "run not attached to its marker");
                }
                found
            }
        }
    };
    Ok(run.filter(|r| !r.is_completed()).as_ref().map(RunRef::from))
}

fn marker_time(marker: &CorrelationRecord) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(marker.created_at_ms).unwrap_or_else(Utc::now)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// An earlier attempt of this job wrote the marker, so it may have dispatched: find the
/// run by correlation id, and never dispatch again (SPEC §5).
async fn recover(
    app: &App,
    github: &GitHubClient,
    call: &Call,
    git_ref: &GitRef,
    workflow: Workflow,
    marker: CorrelationRecord,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    tracing::warn!(correlation_id = %marker.id, "an earlier attempt wrote the dispatch marker; looking its run up instead of dispatching");
    // The earlier attempt may still hold the lock: keep it while looking, then let go.
    let now = app.clock.now_secs();
    if let Err(e) = app
        .store
        .acquire_lock(DEPLOY_LOCK, &marker.id, now + lock_hold_secs(app), now)
        .await
    {
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "deploy lock not taken for the lookup");
    }
    let run = match marker.run_id {
        Some(id) => {
            let step = tracer.begin("github.get_run");
            let run = github.get_run(id).await;
            tracer.end(step, &run);
            Some(match run {
                Ok(Some(run)) => RunRef::from(&run),
                _ => RunRef { id, html_url: None },
            })
        }
        None => {
            let elapsed = app.clock.now_ms().saturating_sub(marker.created_at_ms);
            let left = duration_ms(app.worker.identify_timeout).saturating_sub(elapsed);
            let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
            identify(
                app,
                github,
                workflow.id,
                &marker.id,
                marker_time(&marker),
                left,
                tracer,
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error.type = e.error_type(), error.message = %e, "run lookup failed");
                None
            })
        }
    };
    release_lock(app, &marker.id).await;
    let Some(run) = run else {
        return Ok(not_confirmed(&marker.id));
    };
    let deploy = Deploy {
        workflow,
        git_ref: git_ref.clone(),
        api_base: marker.api_base.clone().unwrap_or_default(),
        wait: marker.wait,
        correlation_id: marker.id.clone(),
        requester: marker.requester.clone(),
    };
    // Idempotent: the record id is the correlation's, so this repeats nothing.
    audit(
        app,
        &call.caller,
        tracer,
        dispatch_audit(&deploy, false),
        false,
    )
    .await;
    Ok(dispatched(app, call, &deploy, &run, tracer).await)
}

/// The run is known: attach it to the marker, start following it, and say so.
async fn dispatched(
    app: &App,
    call: &Call,
    deploy: &Deploy,
    run: &RunRef,
    tracer: &mut Tracer,
) -> Reply {
    if let Some(url) = &run.html_url {
        tracer.link(url.clone());
    }
    let step = tracer.begin("store.attach_run");
    let attached = app
        .store
        .attach_run(&deploy.correlation_id, run.id, app.clock.now_secs())
        .await;
    tracer.end(step, &attached);
    match attached {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                run_id = run.id,
                "run already belongs to another correlation"
            )
        }
        Err(e) => {
            // A webhook carrying the id in the run's title attaches it as well.
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "run not attached to its marker")
        }
    }
    let follows = deploy.wait && call.reply_to.is_some();
    if follows {
        let poll = PollRun {
            correlation_id: deploy.correlation_id.clone(),
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
    dispatched_reply(deploy, run, deploy.wait, follows)
}

fn dispatched_reply(deploy: &Deploy, run: &RunRef, wait: bool, follows: bool) -> Reply {
    let footer = match (wait, follows) {
        (true, true) => "This message follows the run.",
        (true, false) => "This message cannot follow the run: there is no interaction to edit.",
        (false, _) => "The result is announced when the run completes.",
    };
    let embed = Embed::new("🚀 Deploy dispatched")
        .color(YELLOW)
        .description(format!(
            "{} of `{}` from `{}`",
            capitalised(&run.link()),
            deploy.workflow.file_name(),
            deploy.git_ref
        ))
        .field("Ref", format!("`{}`", deploy.git_ref))
        .field("API base", deploy.api_base.clone())
        .field("Requested by", format!("<@{}>", deploy.requester))
        .field("Correlation id", format!("`{}`", deploy.correlation_id))
        .footer(footer);
    let mut reply = Reply::embed(embed).with_button(cancel_button(run.id));
    if let Some(url) = &run.html_url {
        reply = reply.with_button(Button::link("View run", url.clone()));
    }
    reply
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some('[') => format!("[{}", capitalised(chars.as_str())),
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn already_running(link: &str) -> Reply {
    Reply::text(format!("A deploy is already running: {link}")).failed()
}

/// Another command holds the deploy lock past `dispatch_lock_wait`: it is dispatching
/// or identifying its run right now.
async fn busy_reply(app: &App, github: &GitHubClient) -> Reply {
    let latest = app
        .store
        .latest_deploy_correlation(app.clock.now_secs())
        .await
        .ok()
        .flatten();
    let link = match latest {
        Some(CorrelationRecord {
            run_id: Some(id), ..
        }) => match github.get_run(id).await {
            Ok(Some(run)) => RunRef::from(&run).link(),
            _ => RunRef { id, html_url: None }.link(),
        },
        Some(marker) => format!("dispatch `{}` (its run is being identified)", marker.id),
        None => "another dispatch is in progress".to_owned(),
    };
    already_running(&link)
}

fn not_identified(deploy: &Deploy, error: Option<&GitHubError>) -> Reply {
    let mut text = format!(
        "⚠️ Deploy of `{}` dispatched (correlation `{}`), but its run was not found.",
        deploy.git_ref, deploy.correlation_id
    );
    if let Some(e) = error {
        text.push_str(&format!(" Looking it up failed: {e}."));
    }
    text.push_str(
        "\nRun not identified: make the workflow's run-name include inputs.correlation_id",
    );
    Reply::text(text).failed()
}

fn not_confirmed(correlation_id: &str) -> Reply {
    Reply::text(format!(
        "⚠️ dispatch not confirmed; not re-sent (correlation `{correlation_id}`). Check the \
         workflow's runs on GitHub before deploying again."
    ))
    .failed()
}

fn dry_run_reply(deploy: &Deploy, mutation: &Mutation) -> Reply {
    Reply::text(format!(
        "{}\nNothing was dispatched (DRY_RUN); correlation `{}`.",
        mutation.dry_run_line(),
        deploy.correlation_id
    ))
}

fn end_mutation_step<T, E: std::fmt::Display>(
    tracer: &mut Tracer,
    step: crate::trace::Step,
    outcome: &Result<Mutated<T>, E>,
) {
    match outcome {
        Ok(Mutated::Suppressed(m)) => {
            tracer.end_with(step, StepStatus::Skipped, Some(m.dry_run_line()))
        }
        Ok(Mutated::Performed(_)) => tracer.end::<(), String>(step, &Ok(())),
        Err(e) => tracer.end_with(step, StepStatus::Error, Some(e.to_string())),
    }
}

/// An audit record to write; `id: None` gets a fresh one.
struct Audit {
    id: Option<String>,
    action: String,
    new_fingerprint: Option<String>,
}

/// What a dispatch audit record says. Its id comes from the correlation, so a real
/// dispatch is recorded once however often the job runs; a suppressed one (DRY_RUN) may
/// be tried again and is then a new record.
fn dispatch_audit(deploy: &Deploy, dry_run: bool) -> Audit {
    Audit {
        id: (!dry_run).then(|| format!("dispatch-{}", deploy.correlation_id)),
        action: format!(
            "dispatch {} at {} ({})",
            deploy.workflow.file_name(),
            deploy.git_ref,
            deploy.correlation_id
        ),
        new_fingerprint: Some(super::set_url::fingerprint(&deploy.api_base)),
    }
}

/// Appends an audit record (SPEC §4.1). A failure is logged: the action it records has
/// happened, and failing the reply now would invite doing it again.
async fn audit(app: &App, caller: &Caller, tracer: &Tracer, audit: Audit, dry_run: bool) {
    let now_ms = app.clock.now_ms();
    let record = AuditRecord {
        id: audit
            .id
            .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string()),
        at_ms: now_ms,
        user_id: caller.user_id.clone(),
        action: audit.action,
        old_fingerprint: None,
        new_fingerprint: audit.new_fingerprint,
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
    let record = Audit {
        id: None,
        action: format!("cancel run {run_id}"),
        new_fingerprint: None,
    };
    let dry_run = outcome.suppressed().is_some();
    audit(app, &call.caller, tracer, record, dry_run).await;
    Ok(match outcome {
        Mutated::Performed(()) => Reply::text(format!(
            "🛑 Cancel requested for {link} by <@{}>",
            call.caller.user_id
        )),
        Mutated::Suppressed(m) => Reply::text(m.dry_run_line()),
    })
}
