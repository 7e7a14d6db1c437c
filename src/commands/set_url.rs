//! The body `/set-frontend` and `/set-api-base` share: validate and normalise the URL,
//! preview the change with Confirm / Cancel buttons, apply it with its audit record in
//! one atomic write, and optionally write it to GitHub.
//!
//! Answers stay inside Discord's 3 s: the preview, Cancel and the store write are
//! answered at once (type 4 for the command, type 7 for a press). Writing GitHub (a
//! key read and a write, each with retries) cannot promise that, so with
//! `GITHUB_SYNC_SETTINGS` the setting is saved and confirmed at once, and a job writes
//! GitHub and then edits the same message into the final answer. `valine invoke`, with no
//! interaction to edit, writes GitHub inline.
//!
//! A pending change's id carries its expiry and a tag of the user who asked
//! (`<expires_at>-<user tag>-<random>`), so a press by someone else, or after the 15
//! minutes, is answered without consuming the pending record; the record itself is
//! still what a Confirm needs, taken atomically so that only one press applies it.

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use async_trait::async_trait;

use super::{
    Answer, ButtonAnswer, ButtonSpec, Call, Command, CommandError, CommandSpec, OptionSpec, Press,
};
use crate::app::App;
use crate::auth::Access;
use crate::discord::interaction::{Caller, OptionValue};
use crate::discord::response::{Button, ButtonStyle, Reply};
use crate::dryrun::Mutated;
use crate::jobs::{ButtonPress, DeferredCommand, Job, ReplyTarget};
use crate::probe::target::{ProbeTarget, TargetPolicy};
use crate::store::{AuditRecord, PendingConfirmation, SettingRecord, StoreError, retention};
use crate::trace::Tracer;

/// How long a preview's buttons work: 15 minutes, like the interaction token.
pub const CONFIRM_WINDOW_SECS: i64 = 15 * 60;
/// The `url` value that drops the stored setting.
const RESET: &str = "reset";

/// Where `GITHUB_SYNC_SETTINGS` writes a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTo {
    Variable,
    Secret,
}

/// One of the two URL settings and the names its command uses.
#[derive(Debug)]
pub struct UrlSetting {
    pub command: &'static str,
    pub description: &'static str,
    /// The `url` option's description.
    pub url_help: &'static str,
    pub key: &'static str,
    pub sync_to: SyncTo,
    pub confirm_action: &'static str,
    pub cancel_action: &'static str,
    /// Not a button: the action of the follow-up job that writes GitHub. It is a
    /// [`ButtonAnswer::FollowUp`], which the pipeline refuses from Discord; only Valine
    /// enqueues it.
    pub sync_action: &'static str,
}

impl UrlSetting {
    /// `repo variable FRONTEND_BASE_URL` or `repo secret VITE_API_BASE`.
    fn destination(&self) -> String {
        match self.sync_to {
            SyncTo::Variable => format!("repo variable {}", self.key),
            SyncTo::Secret => format!("repo secret {}", self.key),
        }
    }
}

/// `/set-frontend` and `/set-api-base` are one command shape with two settings.
#[async_trait]
impl Command for UrlSetting {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: self.command,
            description: self.description,
            options: vec![
                OptionSpec::string("url", self.url_help).required(),
                OptionSpec::boolean("confirm", "Apply without a preview"),
            ],
            access: Access::Admins,
            answer: Answer::Immediate { ephemeral: true },
        }
    }

    /// Confirm and Cancel, admins only (re-checked on every press by the pipeline),
    /// and the follow-up job that writes GitHub after a confirmation.
    fn buttons(&'static self) -> Vec<ButtonSpec> {
        let button = |action, label, answer| ButtonSpec {
            action,
            label,
            access: Access::Admins,
            answer,
            handler: self,
        };
        vec![
            button(self.confirm_action, "Confirm", ButtonAnswer::Update),
            button(self.cancel_action, "Cancel", ButtonAnswer::Update),
            button(self.sync_action, "Sync", ButtonAnswer::FollowUp),
        ]
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        run(app, self, call, tracer).await
    }
}

#[async_trait]
impl Press for UrlSetting {
    async fn press(
        &self,
        app: &App,
        action: &str,
        id: &str,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        press(app, self, action, id, call, tracer).await
    }
}

/// The last 4 hex characters of the SHA-256 of `value`.
pub fn fingerprint(value: &str) -> String {
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    digest[digest.len() - 4..].to_owned()
}

/// A short, non-reversible tag of a user id for pending ids.
fn user_tag(user_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(user_id.as_bytes()));
    digest[..8].to_owned()
}

/// The id of a pending change asked for by `user_id`, valid until `expires_at`.
pub fn pending_id(user_id: &str, expires_at: i64) -> String {
    format!(
        "{expires_at}-{}-{}",
        user_tag(user_id),
        uuid::Uuid::new_v4().simple()
    )
}

/// The expiry and user tag a pending id carries; `None` for anything Valine did not make.
fn parse_pending_id(id: &str) -> Option<(i64, &str)> {
    let mut parts = id.splitn(3, '-');
    let expires_at = parts.next()?.parse().ok()?;
    let tag = parts.next()?;
    let random = parts.next()?;
    (tag.len() == 8 && !random.is_empty()).then_some((expires_at, tag))
}

/// What a Confirm or Cancel press of a preview found.
pub(super) enum Pressed {
    /// The pending change, now taken: no other press gets it.
    Taken(PendingConfirmation),
    /// The preview's 15 minutes are over; nothing was taken.
    Expired,
}

/// Takes the pending change `id` (of `key`) for a press by `caller`: only the user who
/// asked may press (`refusal` otherwise, leaving the change to its owner), only within
/// the window, and only once (`This change was already handled.`).
pub(super) async fn take_own_pending(
    app: &App,
    id: &str,
    key: &str,
    caller: &Caller,
    refusal: String,
    tracer: &mut Tracer,
) -> Result<Pressed, CommandError> {
    let Some((expires_at, tag)) = parse_pending_id(id) else {
        return Err(CommandError::Invalid("This button is not valid.".into()));
    };
    if tag != user_tag(&caller.user_id) {
        return Err(CommandError::Denied(refusal));
    }
    let now = app.clock.now_secs();
    if now >= expires_at {
        return Ok(Pressed::Expired);
    }
    let step = tracer.begin("store.take_pending");
    let taken = app.store.take_pending(id, now).await;
    tracer.end(step, &taken);
    let Some(pending) = taken? else {
        return Err(CommandError::Invalid(
            "This change was already handled.".into(),
        ));
    };
    if pending.user_id != caller.user_id || pending.key != key {
        // An id with a matching tag that is not this user's change: leave it to its owner.
        if let Err(e) = app.store.put_pending(&pending).await {
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "pending change not restored");
        }
        return Err(CommandError::Denied(refusal));
    }
    Ok(Pressed::Taken(pending))
}

fn answer(text: String, ephemeral: bool) -> Reply {
    if ephemeral {
        Reply::ephemeral(text)
    } else {
        // A type 7 update or an edit keeps the message's own flags.
        Reply::text(text)
    }
}

/// The stored setting and the environment value.
struct Current {
    stored: Option<String>,
    env: Option<String>,
}

impl Current {
    fn in_use(&self) -> Option<&str> {
        self.stored.as_deref().or(self.env.as_deref())
    }
}

async fn current(
    app: &App,
    setting: &UrlSetting,
    tracer: &mut Tracer,
) -> Result<Current, StoreError> {
    let step = tracer.begin("store.get_setting");
    let stored = app.store.get_setting(setting.key).await;
    tracer.end(step, &stored);
    Ok(Current {
        stored: stored?.map(|s| s.value),
        env: crate::settings::environment_value(&app.config, setting.key),
    })
}

/// `Already set` when the change would change nothing: the value is the one in use, or
/// a reset with no stored setting to drop.
fn already_set(setting: &UrlSetting, current: &Current, requested: Option<&str>) -> Option<String> {
    match requested {
        Some(value) if current.in_use() == Some(value) => {
            Some(format!("Already set: {} is {value}", setting.key))
        }
        None if current.stored.is_none() => Some(format!(
            "Already set: {} uses the environment value ({})",
            setting.key,
            current.env.as_deref().unwrap_or("not set")
        )),
        _ => None,
    }
}

fn updated_line(setting: &UrlSetting, value: &str) -> String {
    format!(
        "✅ Updated {} (fingerprint …{})",
        setting.key,
        fingerprint(value)
    )
}

fn reset_line(setting: &UrlSetting, env: Option<&str>) -> String {
    match env {
        Some(value) => format!(
            "✅ Reset {} to the environment value (fingerprint …{})",
            setting.key,
            fingerprint(value)
        ),
        None => format!(
            "✅ Reset {} to the environment value (not set)",
            setting.key
        ),
    }
}

/// `/set-frontend url:… [confirm:true]` and `/set-api-base …`.
pub async fn run(
    app: &App,
    setting: &UrlSetting,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let raw = call.string("url").unwrap_or_default().trim();
    let requested = if raw.eq_ignore_ascii_case(RESET) {
        None
    } else {
        let step = tracer.begin("validate_url");
        let parsed = ProbeTarget::parse(raw, &TargetPolicy::from_config(&app.config));
        tracer.end(step, &parsed);
        let target = parsed.map_err(|e| CommandError::Invalid(format!("Invalid URL: {e}")))?;
        Some(target.as_str().to_owned())
    };
    let current = current(app, setting, tracer).await?;
    if let Some(text) = already_set(setting, &current, requested.as_deref()) {
        return Ok(Reply::ephemeral(text));
    }
    if call.boolean("confirm") == Some(true) {
        let change = Change {
            expected: current.stored,
            requested,
            env: current.env,
        };
        return apply(
            app,
            setting,
            &call.caller,
            call.reply_to.as_ref(),
            change,
            tracer,
            true,
        )
        .await;
    }
    preview(app, setting, &call.caller, current, requested, tracer).await
}

async fn preview(
    app: &App,
    setting: &UrlSetting,
    caller: &Caller,
    current: Current,
    requested: Option<String>,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let expires_at = app.clock.now_secs() + CONFIRM_WINDOW_SECS;
    let id = pending_id(&caller.user_id, expires_at);
    let old = current.in_use().unwrap_or("not set").to_owned();
    let new = match &requested {
        Some(value) => value.clone(),
        None => format!(
            "{} (the environment value)",
            current.env.as_deref().unwrap_or("not set")
        ),
    };
    let pending = PendingConfirmation {
        id: id.clone(),
        user_id: caller.user_id.clone(),
        key: setting.key.to_owned(),
        old_value: current.stored,
        new_value: requested,
        expires_at,
    };
    let step = tracer.begin("store.put_pending");
    let stored = app.store.put_pending(&pending).await;
    tracer.end(step, &stored);
    stored?;

    let mut text = format!(
        "Would change {} from {old} to {new}\nConfirm or cancel within 15 minutes.",
        setting.key
    );
    if app.config.github_sync_settings {
        text.push_str(&format!(
            "\nConfirming also writes {} on GitHub.",
            setting.destination()
        ));
        if app.dry_run().is_enabled() {
            text.push_str(" 🧪 DRY_RUN is on: that write will only be shown.");
        }
    }
    Ok(Reply::ephemeral(text)
        .with_button(Button::action(
            "Confirm",
            ButtonStyle::Success,
            setting.confirm_action,
            &id,
        ))
        .with_button(Button::action(
            "Cancel",
            ButtonStyle::Secondary,
            setting.cancel_action,
            &id,
        )))
}

/// A Confirm or Cancel press, or the follow-up job that writes GitHub.
pub async fn press(
    app: &App,
    setting: &UrlSetting,
    action: &str,
    id: &str,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    if action == setting.sync_action {
        return sync_job(app, setting, call, tracer).await;
    }
    let confirm = action == setting.confirm_action;
    if !confirm && action != setting.cancel_action {
        return Err(CommandError::Invalid(format!(
            "/{} has no button `{action}`",
            setting.command
        )));
    }
    let verb = if confirm { "confirm" } else { "cancel" };
    let refusal = format!("⛔ Only the admin who asked for this change can {verb} it.");
    let pending =
        match take_own_pending(app, id, setting.key, &call.caller, refusal, tracer).await? {
            Pressed::Taken(pending) => pending,
            Pressed::Expired => {
                return Ok(Reply::text(format!(
                    "⌛ This confirmation expired after 15 minutes; {} was not changed. Run /{} \
                 again.",
                    setting.key, setting.command
                )));
            }
        };
    if !confirm {
        return Ok(Reply::text(format!(
            "Cancelled: {} was not changed.",
            setting.key
        )));
    }

    let current = current(app, setting, tracer).await?;
    if let Some(text) = already_set(setting, &current, pending.new_value.as_deref()) {
        return Ok(Reply::text(text));
    }
    let change = Change {
        // The value the preview was made against: if it moved since, nothing applies.
        expected: pending.old_value,
        requested: pending.new_value,
        env: current.env,
    };
    apply(
        app,
        setting,
        &call.caller,
        call.reply_to.as_ref(),
        change,
        tracer,
        false,
    )
    .await
}

/// A change to apply: from the stored value `expected` to `requested` (`None` drops the
/// setting, back to `env`).
struct Change {
    expected: Option<String>,
    requested: Option<String>,
    env: Option<String>,
}

async fn apply(
    app: &App,
    setting: &UrlSetting,
    caller: &Caller,
    reply_to: Option<&ReplyTarget>,
    change: Change,
    tracer: &mut Tracer,
    ephemeral: bool,
) -> Result<Reply, CommandError> {
    let now_ms = app.clock.now_ms();
    let old_in_use = change.expected.as_deref().or(change.env.as_deref());
    let new_in_use = change.requested.as_deref().or(change.env.as_deref());
    let verb = if change.requested.is_some() {
        "set"
    } else {
        "reset"
    };
    let audit = AuditRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        at_ms: now_ms,
        user_id: caller.user_id.clone(),
        action: format!("{verb} {}", setting.key),
        old_fingerprint: old_in_use.map(fingerprint),
        new_fingerprint: new_in_use.map(fingerprint),
        trace_id: Some(tracer.id().to_owned()),
        dry_run: app.dry_run().is_enabled(),
        expires_at: now_ms.div_euclid(1000) + retention::AUDIT,
    };
    let record = change.requested.as_ref().map(|value| SettingRecord {
        key: setting.key.to_owned(),
        value: value.clone(),
        updated_by: caller.user_id.clone(),
        updated_at_ms: now_ms,
    });
    let step = tracer.begin("store.change_setting");
    let changed = app
        .store
        .change_setting(
            setting.key,
            change.expected.as_deref(),
            record.as_ref(),
            &audit,
        )
        .await;
    tracer.end(step, &changed);
    if !changed? {
        return Ok(answer(
            format!(
                "⚠️ {} was changed by someone else meanwhile; nothing was applied. Run /{} again.",
                setting.key, setting.command
            ),
            ephemeral,
        )
        .failed());
    }

    let done = match &change.requested {
        Some(value) => updated_line(setting, value),
        None => reset_line(setting, change.env.as_deref()),
    };
    let Some(value) = new_in_use.filter(|_| app.config.github_sync_settings) else {
        return Ok(answer(done, ephemeral));
    };
    match reply_to {
        None => Ok(sync_reply(
            app,
            setting,
            done,
            value,
            &caller.user_id,
            tracer,
            ephemeral,
        )
        .await),
        Some(target) => {
            let step = tracer.begin("jobs.enqueue_sync");
            let queued =
                enqueue_sync(app, setting, caller, target, change.requested.as_deref()).await;
            tracer.end(step, &queued);
            Ok(match queued {
                Ok(()) => answer(
                    format!("{done}\n⏳ Writing {} on GitHub…", setting.destination()),
                    ephemeral,
                ),
                Err(e) => answer(
                    format!("⚠️ saved; GitHub sync failed: it could not be scheduled ({e})"),
                    ephemeral,
                )
                .failed(),
            })
        }
    }
}

/// Schedules the GitHub write; the job edits the message this interaction answered.
async fn enqueue_sync(
    app: &App,
    setting: &UrlSetting,
    caller: &Caller,
    reply_to: &ReplyTarget,
    requested: Option<&str>,
) -> Result<(), crate::jobs::QueueError> {
    let trace_id = crate::trace::new_trace_id();
    let mut options = crate::discord::interaction::OptionMap::new();
    options.insert(
        "url".into(),
        OptionValue::String(requested.unwrap_or(RESET).to_owned()),
    );
    let job = DeferredCommand {
        trace_id: trace_id.clone(),
        command: setting.command.to_owned(),
        options,
        user_id: caller.user_id.clone(),
        roles: caller.roles.clone(),
        guild_id: caller.guild_id.clone(),
        channel_id: caller.channel_id.clone(),
        reply_to: Some(reply_to.clone()),
        button: Some(ButtonPress {
            action: setting.sync_action.to_owned(),
            id: String::new(),
        }),
        trace: None,
    };
    app.enqueue(&Job::Command(job), Some(&trace_id))
        .await
        .map(drop)
}

/// The follow-up job: writes the value to GitHub and answers with the final reply.
async fn sync_job(
    app: &App,
    setting: &UrlSetting,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let url = call
        .string("url")
        .ok_or_else(|| CommandError::Invalid("the sync job lost its value".into()))?;
    let current = current(app, setting, tracer).await?;
    let (done, value) = if url == RESET {
        (
            reset_line(setting, current.env.as_deref()),
            current.env.clone(),
        )
    } else {
        (updated_line(setting, url), Some(url.to_owned()))
    };
    let Some(value) = value else {
        return Ok(Reply::text(done));
    };
    if current.in_use() != Some(value.as_str()) {
        // A later change superseded this one; its own job writes GitHub.
        return Ok(Reply::text(format!(
            "{done}\nℹ️ Not written to GitHub: {} has changed again since.",
            setting.key
        )));
    }
    Ok(sync_reply(
        app,
        setting,
        done,
        &value,
        &call.caller.user_id,
        tracer,
        false,
    )
    .await)
}

/// The final answer after writing GitHub: `done`, with the dry-run line when the write
/// was suppressed, or `⚠️ saved; GitHub sync failed: <reason>` instead.
async fn sync_reply(
    app: &App,
    setting: &UrlSetting,
    done: String,
    value: &str,
    user_id: &str,
    tracer: &mut Tracer,
    ephemeral: bool,
) -> Reply {
    match sync(app, setting, value, user_id, tracer).await {
        Ok(Mutated::Performed(())) => answer(done, ephemeral),
        Ok(Mutated::Suppressed(m)) => answer(format!("{done}\n{}", m.dry_run_line()), ephemeral),
        Err(e) => {
            tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "settings sync failed");
            answer(format!("⚠️ saved; GitHub sync failed: {e}"), ephemeral).failed()
        }
    }
}

/// Writes `value` to the repo variable or secret, through the DRY_RUN gate, and audits
/// the write (or the suppressed write).
async fn sync(
    app: &App,
    setting: &UrlSetting,
    value: &str,
    user_id: &str,
    tracer: &mut Tracer,
) -> Result<Mutated<()>, CommandError> {
    let github = app.github()?;
    let outcome = match setting.sync_to {
        SyncTo::Variable => {
            let step = tracer.begin("github.set_repo_variable");
            let outcome = app
                .mutate(
                    github.set_repo_variable_mutation(setting.key, value),
                    github.set_repo_variable(setting.key, value),
                )
                .await;
            end_mutation_step(tracer, step, &outcome);
            outcome?
        }
        SyncTo::Secret => {
            let step = tracer.begin("github.repo_public_key");
            let key = github.repo_public_key().await;
            tracer.end(step, &key);
            let key = key?;
            // The URL is not secret to Valine; the workflow just reads it from there.
            let secret = SecretString::from(value.to_owned());
            let step = tracer.begin("github.put_repo_secret");
            let outcome = app
                .mutate(
                    github.put_repo_secret_mutation(setting.key, &key),
                    github.put_repo_secret(setting.key, &key, &secret),
                )
                .await;
            end_mutation_step(tracer, step, &outcome);
            outcome?
        }
    };
    let now_ms = app.clock.now_ms();
    let audit = AuditRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        at_ms: now_ms,
        user_id: user_id.to_owned(),
        action: format!("write {}", setting.destination()),
        old_fingerprint: None,
        new_fingerprint: Some(fingerprint(value)),
        trace_id: Some(tracer.id().to_owned()),
        dry_run: outcome.suppressed().is_some(),
        expires_at: now_ms.div_euclid(1000) + retention::AUDIT,
    };
    if let Err(e) = app.store.append_audit(&audit).await {
        // GitHub was written; failing the reply now would invite writing it again.
        tracing::warn!(error.type = "store_unavailable", error.message = %e, "audit record of the GitHub write not saved");
    }
    Ok(outcome)
}

fn end_mutation_step<E: std::fmt::Display>(
    tracer: &mut Tracer,
    step: crate::trace::Step,
    outcome: &Result<Mutated<()>, E>,
) {
    match outcome {
        Ok(Mutated::Suppressed(m)) => tracer.end_with(
            step,
            crate::store::StepStatus::Skipped,
            Some(m.dry_run_line()),
        ),
        other => tracer.end(step, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_the_last_four_hex_of_sha256() {
        // sha256("https://app.example.com") ends in …
        let digest = hex::encode(Sha256::digest(b"https://app.example.com"));
        assert_eq!(fingerprint("https://app.example.com"), digest[60..]);
        assert_eq!(fingerprint("abc").len(), 4);
        // Known vector: sha256("abc") = ba7816bf…f20015ad.
        assert_eq!(fingerprint("abc"), "15ad");
    }

    #[test]
    fn confirm_and_cancel_are_buttons_the_sync_job_only_a_follow_up() {
        for setting in [
            &super::super::set_frontend::SETTING,
            &super::super::set_api_base::SETTING,
        ] {
            for action in [setting.confirm_action, setting.cancel_action] {
                let (owner, spec) = crate::commands::button(action).unwrap();
                assert_eq!(owner.spec().name, setting.command);
                assert_eq!(spec.access, Access::Admins);
                assert_eq!(spec.answer, ButtonAnswer::Update);
            }
            let (_, sync) = crate::commands::button(setting.sync_action).unwrap();
            assert_eq!(sync.answer, ButtonAnswer::FollowUp);
        }
    }

    #[test]
    fn pending_ids_carry_expiry_and_user_tag_only() {
        let id = pending_id("123456789012345678", 1_700_000_900);
        let (expires_at, tag) = parse_pending_id(&id).unwrap();
        assert_eq!(expires_at, 1_700_000_900);
        assert_eq!(tag, user_tag("123456789012345678"));
        assert_ne!(tag, user_tag("123456789012345679"));
        assert!(!id.contains("123456789012345678"));
        assert_ne!(id, pending_id("123456789012345678", 1_700_000_900));
        // Fits a custom_id (100 characters) with the longest action.
        assert!(format!("valine:set-api-base-confirm:{id}").len() <= 100);
        for bad in ["", "x-y-z", "1-short-z", "1-abcdef12-", "1-abcdef12"] {
            assert!(parse_pending_id(bad).is_none(), "{bad}");
        }
    }
}
