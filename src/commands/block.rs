//! `/block` and `/unblock`: the runbook's "block abusive users" from chat. A block is a
//! store record (with its reason and an optional expiry) written together with its audit
//! record, and read on every command and button press, so every process (SQLite file
//! or DynamoDB table alike) honours it at once. It adds to `BLOCKED_USER_IDS`, which
//! only the configuration can lift.
//!
//! Admins cannot be blocked, and a stored block never applies to an admin: an admin
//! locked out by a stale block could not lift it. A user named in `BLOCKED_USER_IDS` is
//! refused whatever their role, as before.

use async_trait::async_trait;
use chrono::DateTime;

use super::{Answer, Call, Command, CommandError, CommandSpec, OptionSpec, Precheck};
use crate::app::App;
use crate::auth::{self, Access};
use crate::discord::interaction::Caller;
use crate::discord::response::Reply;
use crate::store::{AuditRecord, BlockRecord, StoreError, retention};
use crate::trace::Tracer;

/// The longest `reason` kept with a block (it is shown in replies and the audit log).
const MAX_REASON_CHARS: usize = 300;
/// The longest `duration`: longer blocks are made without one (until unblocked).
const MAX_DURATION_SECS: i64 = 365 * 24 * 3600;

/// Whether `caller` is refused everything: named in `BLOCKED_USER_IDS`, or (unless an
/// admin) blocked by `/block`; for autocomplete (commands and buttons check it with the
/// rate limit in one store read, in the pipeline's gate). The store is asked every time, so a block made by any
/// process counts at once; an error means Valine cannot tell, and callers refuse.
pub async fn is_blocked(app: &App, caller: &Caller) -> Result<bool, StoreError> {
    if auth::is_blocked(&app.config, caller) {
        return Ok(true);
    }
    if auth::is_admin(&app.config, caller) {
        return Ok(false);
    }
    let block = app
        .store
        .get_block(&caller.user_id, app.clock.now_secs())
        .await?;
    Ok(block.is_some())
}

/// `/block`.
pub struct Block;

/// `/unblock`.
pub struct Unblock;

#[async_trait]
impl Command for Block {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "block",
            description: "Block a user from using Valine",
            options: vec![
                OptionSpec::user("user", "Who to block").required(),
                OptionSpec::string("reason", "Why (kept in the audit log)"),
                OptionSpec::string(
                    "duration",
                    "For how long: 30m, 1h, 7d (default: until unblocked)",
                ),
            ],
            access: Access::Admins,
            answer: Answer::Immediate { ephemeral: true },
        }
    }

    /// Everything but the write is decided here, at once: whom, for how long, why.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        BlockRequest::parse(app, call).map(drop)
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let request = BlockRequest::parse(app, call).map_err(|refusal| match refusal {
            Precheck::Invalid(m) => CommandError::Invalid(m),
            Precheck::Denied(m) => CommandError::Denied(format!("⛔ {m}")),
        })?;
        let now_ms = app.clock.now_ms();
        let expires_at = request
            .duration_secs
            .map(|secs| now_ms.div_euclid(1000) + secs);
        let until = until_text(expires_at);
        let block = BlockRecord {
            user_id: request.user_id.clone(),
            reason: request.reason.clone(),
            blocked_by: call.caller.user_id.clone(),
            at_ms: now_ms,
            expires_at,
        };
        let mut action = format!("block user {} until {until}", request.user_id);
        if let Some(reason) = &request.reason {
            action.push_str(&format!(": {reason}"));
        }
        let audit = audit_record(app, &call.caller, action, tracer);
        let step = tracer.begin("store.put_block");
        let written = app.store.put_block(&block, &audit).await;
        tracer.end(step, &written);
        written?;

        let mut text = format!("🚫 Blocked <@{}> until {until}", request.user_id);
        if let Some(reason) = &request.reason {
            text.push_str(&format!("\nReason: {reason}"));
        }
        Ok(Reply::ephemeral(text))
    }
}

#[async_trait]
impl Command for Unblock {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "unblock",
            description: "Lift a block made with /block",
            options: vec![OptionSpec::user("user", "Who to unblock").required()],
            access: Access::Admins,
            answer: Answer::Immediate { ephemeral: true },
        }
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let user_id = call.string("user").unwrap_or_default().to_owned();
        let in_config = app.config.blocked_user_ids.contains(&user_id);
        let audit = audit_record(app, &call.caller, format!("unblock user {user_id}"), tracer);
        let step = tracer.begin("store.remove_block");
        let removed = app
            .store
            .remove_block(&user_id, &audit, app.clock.now_secs())
            .await;
        tracer.end(step, &removed);
        let config_note = format!(
            "<@{user_id}> is blocked by BLOCKED_USER_IDS, which /unblock cannot lift: remove \
             the id from that variable."
        );
        match (removed?, in_config) {
            (true, false) => Ok(Reply::ephemeral(format!("✅ Unblocked <@{user_id}>"))),
            (true, true) => Ok(Reply::ephemeral(format!(
                "✅ Unblocked <@{user_id}>\n⚠️ {config_note}"
            ))),
            (false, true) => Err(CommandError::Invalid(config_note)),
            (false, false) => Err(CommandError::Invalid(format!(
                "<@{user_id}> is not blocked; nothing changed."
            ))),
        }
    }
}

/// A `/block` whose options passed every check.
struct BlockRequest {
    user_id: String,
    reason: Option<String>,
    duration_secs: Option<i64>,
}

impl BlockRequest {
    fn parse(app: &App, call: &Call) -> Result<Self, Precheck> {
        let user_id = call.string("user").unwrap_or_default().to_owned();
        if user_id == call.caller.user_id {
            return Err(Precheck::Denied("You cannot block yourself".into()));
        }
        let target = Caller {
            user_id: user_id.clone(),
            ..Caller::default()
        };
        // Roles of the target are not known here; an admin by role is exempt from
        // stored blocks at every check instead.
        if auth::is_admin(&app.config, &target) {
            return Err(Precheck::Denied("admins cannot be blocked".into()));
        }
        let reason = call
            .string("reason")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(Precheck::Invalid(format!(
                "`reason` is too long (at most {MAX_REASON_CHARS} characters)"
            )));
        }
        let duration_secs = call
            .string("duration")
            .map(parse_duration)
            .transpose()
            .map_err(Precheck::Invalid)?;
        Ok(BlockRequest {
            user_id,
            reason,
            duration_secs,
        })
    }
}

/// `30m`, `1h`, `7d` (also `2w`, `90s`): a whole number and a unit, at most a year.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid =
        || format!("`duration` must be a number and a unit, like 30m, 1h or 7d (got `{text}`)");
    let text = text.trim();
    let unit_at = text
        .char_indices()
        .last()
        .map(|(i, _)| i)
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(unit_at);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let unit_secs: i64 = match unit.to_ascii_lowercase().as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "w" => 7 * 24 * 3600,
        _ => return Err(invalid()),
    };
    let secs = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .ok_or_else(|| {
            "`duration` is longer than a year; leave it out to block until unblocked".to_owned()
        })?;
    if secs == 0 {
        return Err(invalid());
    }
    Ok(secs)
}

/// `2026-11-30 18:00 UTC`, or `unblocked` for a block without an expiry.
fn until_text(expires_at: Option<i64>) -> String {
    match expires_at.and_then(|at| DateTime::from_timestamp(at, 0)) {
        Some(at) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => "unblocked".to_owned(),
    }
}

fn audit_record(app: &App, caller: &Caller, action: String, tracer: &Tracer) -> AuditRecord {
    let now_ms = app.clock.now_ms();
    AuditRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        at_ms: now_ms,
        user_id: caller.user_id.clone(),
        action,
        old_fingerprint: None,
        new_fingerprint: None,
        trace_id: Some(tracer.id().to_owned()),
        // Valine's own store is written under DRY_RUN too; the record says it was one.
        dry_run: app.dry_run().is_enabled(),
        expires_at: now_ms.div_euclid(1000) + retention::AUDIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit_up_to_a_year() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
        assert_eq!(parse_duration(" 2W "), Ok(14 * 86400));
        assert_eq!(parse_duration("365d"), Ok(365 * 86400));
        for bad in [
            "", "h", "1", "1.5h", "-1h", "1x", "0m", "1h30m", "forever", "1 h", "١h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("366d")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn the_expiry_is_shown_in_utc_or_as_until_unblocked() {
        assert_eq!(until_text(None), "unblocked");
        assert_eq!(until_text(Some(1_700_000_000)), "2023-11-14 22:13 UTC");
    }
}
