//! One verification per run attempt, shared by everyone who needs it: the completion
//! announcement (`AUTO_VERIFY`) and a `/deploy-client wait:true` follower.
//!
//! The first caller takes the store lock `verify:{run}:{attempt}`, verifies, and stores
//! the report; a caller that finds the lock taken waits for that report instead of
//! probing again. A lock whose holder died expires, and the next caller verifies.

use std::time::Duration;

use crate::app::App;
use crate::discord::response::Reply;
use crate::error::CommandError;
use crate::probe::target::{ProbeTarget, TargetPolicy};
use crate::store::{VerificationRecord, retention};
use crate::trace::Tracer;

/// How long a verifier may hold the lock: probes take at most ~25 s (10 s per attempt,
/// one retry) plus GitHub calls.
const LOCK_SECS: i64 = 120;
/// How often a waiting caller looks for the report.
const POLL: Duration = Duration::from_millis(250);

/// The verification report of `run_id`'s `run_attempt`, computed once. `api_base` is the
/// API base the run was deployed with, when it differs from the one in use (a
/// `/deploy-client api_base:` dispatch).
pub async fn verify_once(
    app: &App,
    run_id: u64,
    run_attempt: u32,
    api_base: Option<&str>,
    tracer: &mut Tracer,
) -> Result<(Reply, bool), CommandError> {
    let lock = format!("verify:{run_id}:{run_attempt}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LOCK_SECS as u64);
    loop {
        let now = app.clock.now_secs();
        if let Some(done) = app.store.get_verification(run_id, run_attempt, now).await? {
            tracer.skip("verify", "already verified for this run attempt");
            return Ok(decode(&done));
        }
        let mine = app
            .store
            .acquire_lock(&lock, tracer.id(), now + LOCK_SECS, now)
            .await?;
        if mine {
            let result = verify_and_store(app, run_id, run_attempt, api_base, tracer).await;
            // The report (or the failure) is final; free the lock either way so a
            // failed attempt can be retried by the job's own retry.
            if let Err(e) = app.store.release_lock(&lock, tracer.id()).await {
                tracing::warn!(error.type = "store_unavailable", error.message = %e, "verification lock not released; it expires");
            }
            return result;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CommandError::NotConfigured(
                "another verification of this run is still running; try Re-verify shortly".into(),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn verify_and_store(
    app: &App,
    run_id: u64,
    run_attempt: u32,
    api_base: Option<&str>,
    tracer: &mut Tracer,
) -> Result<(Reply, bool), CommandError> {
    let github = app.github()?;
    let step = tracer.begin("github.get_run");
    let run = github.get_run(run_id).await;
    tracer.end(step, &run);
    let run = run?.ok_or_else(|| CommandError::Invalid(format!("Run {run_id} not found")))?;
    let api_base = match api_base {
        Some(raw) => Some(
            ProbeTarget::parse(raw, &TargetPolicy::from_config(&app.config))
                .map_err(|e| CommandError::Invalid(format!("Invalid URL: {e}")))?,
        ),
        None => None,
    };
    let verification = super::verify_run(app, &run, api_base.as_ref(), tracer).await?;
    let passed = verification.passed();
    let reply = verification.to_reply(tracer.short_id());
    let now_ms = app.clock.now_ms();
    let record = VerificationRecord {
        run_id,
        run_attempt,
        passed,
        report: serde_json::to_value(&reply).unwrap_or_default(),
        created_at_ms: now_ms,
        expires_at: now_ms.div_euclid(1000) + retention::RUN,
    };
    let step = tracer.begin("store.put_verification");
    let stored = app
        .store
        .put_verification(&record, now_ms.div_euclid(1000))
        .await;
    tracer.end(step, &stored);
    // Whoever stored first wins; everyone shows that report.
    Ok(decode(&stored?))
}

fn decode(record: &VerificationRecord) -> (Reply, bool) {
    let reply = serde_json::from_value(record.report.clone()).unwrap_or_else(|_| {
        Reply::text(if record.passed {
            "✅ Deploy verified"
        } else {
            "❌ Deploy verification failed"
        })
    });
    (reply, record.passed)
}
