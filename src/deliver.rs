//! Delivering Valine's own messages outside an interaction's answer: the edit of a
//! deferred command's original response, and channel posts with the bot token once the
//! interaction token (15 minutes) no longer works.
//!
//! Deliveries repeat when a job runs again, so each is idempotent: an edit replaces
//! the same message, and a channel post carries a Discord `nonce` with
//! `enforce_nonce`, which Discord deduplicates.
//!
//! While a deferred command waits for GitHub to answer again, [`with_retry_progress`]
//! shows it in the command's message, so the user does not stare at "thinking…" for
//! the 5 to 45 seconds the retries can take.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::app::App;
use crate::discord::api::{DiscordError, MAX_NONCE_LEN};
use crate::discord::response::Reply;
use crate::github::{RetryNotice, RetryObserver, observe_retries};
use crate::jobs::{JobError, PendingReply, ReplyTarget};

/// Progress edits are at least this far apart: retries can follow each other within
/// half a second, and Discord limits how fast one message may be edited.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Runs `work` (a deferred command's body) and, each time a GitHub call in it is about
/// to retry, edits the message at `target` to say so (`⏳ GitHub is not answering —
/// retrying (2/3)…`). Edits are throttled and best effort: one that fails is logged and
/// never fails the command. None is sent after `work` has finished, so the progress
/// line cannot overwrite the reply that follows; without a target (`valine invoke`),
/// `work` just runs.
pub async fn with_retry_progress<F: Future>(
    app: &App,
    target: Option<&ReplyTarget>,
    work: F,
) -> F::Output {
    let Some(target) = target else {
        return work.await;
    };
    let (tx, mut rx) = watch::channel(None::<String>);
    let observer: RetryObserver = Arc::new(move |notice: &RetryNotice| {
        tx.send_replace(Some(format!("⏳ {notice}")));
    });
    // `join!` drops `work` (and the observer's sender with it) as soon as it finishes,
    // which ends the edit loop below.
    let work = observe_retries(observer, work);
    let edits = async {
        let mut last_edit: Option<tokio::time::Instant> = None;
        while rx.changed().await.is_ok() {
            if let Some(at) = last_edit {
                tokio::time::sleep_until(at + PROGRESS_EVERY).await;
                if rx.has_changed().is_err() {
                    break; // the command finished meanwhile: its reply comes next
                }
            }
            let Some(text) = rx.borrow_and_update().clone() else {
                continue;
            };
            last_edit = Some(tokio::time::Instant::now());
            let body = serde_json::json!({ "content": text });
            if let Err(e) = app
                .discord
                .edit_original(&target.application_id, &target.token, &body)
                .await
            {
                tracing::info!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "retry progress not shown");
            }
        }
    };
    let (output, ()) = tokio::join!(work, edits);
    output
}

/// Discord nonces hold 25 characters; anything longer is hashed down, stably.
pub fn nonce(text: String) -> String {
    if text.len() <= MAX_NONCE_LEN {
        return text;
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    digest[..MAX_NONCE_LEN].to_owned()
}

/// The nonce of a deferred command's reply posted to its channel (token expired).
pub fn reply_nonce(trace_id: &str) -> String {
    nonce(format!("r{trace_id}"))
}

/// A channel post, unless DRY_RUN suppresses it: a post has no reply of its own to
/// show the suppressed request in, so it is only logged (which `App::mutate` does).
pub async fn post(app: &App, channel: &str, reply: &Reply, nonce: &str) -> Result<(), JobError> {
    let body = reply.to_message_json();
    app.mutate(
        app.discord.create_message_mutation(channel, &body, nonce),
        app.discord.create_message(channel, &body, nonce),
    )
    .await?;
    Ok(())
}

/// Edits the deferred response; once the interaction token no longer works (Discord
/// answers 401 or 404), the reply goes to the command's channel instead.
pub async fn deliver_reply(app: &App, pending: &PendingReply) -> Result<(), JobError> {
    let target = &pending.reply_to;
    let body = pending.reply.to_message_json();
    match app
        .discord
        .edit_original(&target.application_id, &target.token, &body)
        .await
    {
        Ok(()) => Ok(()),
        Err(DiscordError::Unauthorized { .. } | DiscordError::NotFound { .. })
            if pending.channel_id.is_some() =>
        {
            let channel = pending.channel_id.as_deref().unwrap_or_default();
            tracing::info!(
                "interaction token no longer accepted; posting the reply to the channel"
            );
            post(
                app,
                channel,
                &pending.reply,
                &reply_nonce(&pending.trace_id),
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error.type = e.error_type(), error.message = %crate::error::chain(&e), "editing the reply failed");
            Err(e.into())
        }
    }
}
