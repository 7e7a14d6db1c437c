//! Delivering Valine's own messages outside an interaction's answer: the edit of a
//! deferred command's original response, and channel posts with the bot token once the
//! interaction token (15 minutes) no longer works.
//!
//! Deliveries repeat when a job runs again, so each is idempotent: an edit replaces
//! the same message, and a channel post carries a Discord `nonce` with
//! `enforce_nonce`, which Discord deduplicates.

use sha2::{Digest, Sha256};

use crate::app::App;
use crate::discord::api::{DiscordError, MAX_NONCE_LEN};
use crate::discord::response::Reply;
use crate::jobs::{JobError, PendingReply};

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
            tracing::warn!(error.type = e.error_type(), error.message = %e, "editing the reply failed");
            Err(e.into())
        }
    }
}
