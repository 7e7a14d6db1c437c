//! Behaviour when the store cannot be reached: `/healthz` says so, commands are
//! refused (fail closed) with a message rather than a 5xx, and webhooks answer 503 so
//! GitHub redelivers them.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;

use valine::store::*;

use crate::helpers::{Options, command, spawn_app_with};

/// A store whose every operation fails, like a database that is down.
struct DownStore;

fn down<T>() -> StoreResult<T> {
    Err(StoreError::unavailable("ping", "connection refused"))
}

#[async_trait]
impl HealthStore for DownStore {
    async fn ping(&self) -> StoreResult<()> {
        down()
    }
}

#[async_trait]
impl TraceStore for DownStore {
    async fn put_trace(&self, _: &TraceRecord) -> StoreResult<()> {
        down()
    }
    async fn get_trace(&self, _: &str, _: i64) -> StoreResult<Option<TraceRecord>> {
        down()
    }
    async fn latest_trace_for_user(
        &self,
        _: &str,
        _: &str,
        _: i64,
    ) -> StoreResult<Option<TraceRecord>> {
        down()
    }
    async fn list_traces(&self, _: &TraceQuery, _: i64) -> StoreResult<Vec<TraceRecord>> {
        down()
    }
    async fn traces_by_prefix(&self, _: &str, _: usize, _: i64) -> StoreResult<Vec<TraceRecord>> {
        down()
    }
}

#[async_trait]
impl HousekeepingStore for DownStore {
    async fn census(&self, _: i64) -> StoreResult<Census> {
        down()
    }
    async fn delete_expired(&self, _: i64) -> StoreResult<RecordCounts> {
        down()
    }
}

#[async_trait]
impl RateLimitStore for DownStore {
    async fn hit_rate_window(&self, _: &str, _: i64, _: i64) -> StoreResult<u32> {
        down()
    }
}

#[async_trait]
impl JobStore for DownStore {
    async fn enqueue_job(&self, _: &NewJob, _: i64) -> StoreResult<()> {
        down()
    }
    async fn claim_job(&self, _: &str, _: i64, _: i64) -> StoreResult<Option<JobRecord>> {
        down()
    }
    async fn claim_job_id(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: i64,
    ) -> StoreResult<Option<JobRecord>> {
        down()
    }
    async fn renew_job_lease(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn complete_job(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn retry_job(&self, _: &str, _: &str, _: i64, _: &str) -> StoreResult<bool> {
        down()
    }
    async fn fail_job(&self, _: &str, _: &str, _: &str, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn release_job_leases(&self, _: &str) -> StoreResult<u32> {
        down()
    }
    async fn get_job(&self, _: &str) -> StoreResult<Option<JobRecord>> {
        down()
    }
    async fn failed_jobs(&self, _: i64) -> StoreResult<Vec<JobRecord>> {
        down()
    }
}

#[async_trait]
impl SettingsStore for DownStore {
    async fn get_setting(&self, _: &str) -> StoreResult<Option<SettingRecord>> {
        down()
    }
    async fn change_setting(
        &self,
        _: &str,
        _: Option<&str>,
        _: Option<&SettingRecord>,
        _: &AuditRecord,
    ) -> StoreResult<bool> {
        down()
    }
    async fn append_audit(&self, _: &AuditRecord) -> StoreResult<()> {
        down()
    }
    async fn list_audit(&self, _: Option<&str>, _: i64, _: i64) -> StoreResult<Vec<AuditRecord>> {
        down()
    }
    async fn put_pending(&self, _: &PendingConfirmation) -> StoreResult<()> {
        down()
    }
    async fn take_pending(&self, _: &str, _: i64) -> StoreResult<Option<PendingConfirmation>> {
        down()
    }
}

#[async_trait]
impl DeliveryStore for DownStore {
    async fn accept_delivery(&self, _: &DeliveryEffects, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn get_run(&self, _: u64, _: i64) -> StoreResult<Option<RunRecord>> {
        down()
    }
    async fn recent_runs(&self, _: usize, _: i64) -> StoreResult<Vec<RunRecord>> {
        down()
    }
    async fn failed_step(&self, _: u64, _: i64) -> StoreResult<Option<FailedStepRecord>> {
        down()
    }
}

#[async_trait]
impl CorrelationStore for DownStore {
    async fn put_correlation(&self, _: &CorrelationRecord, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn get_correlation(&self, _: &str, _: i64) -> StoreResult<Option<CorrelationRecord>> {
        down()
    }
    async fn correlation_for_run(&self, _: u64, _: i64) -> StoreResult<Option<CorrelationRecord>> {
        down()
    }
    async fn attach_run(&self, _: &str, _: u64, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn latest_deploy_correlation(&self, _: i64) -> StoreResult<Option<CorrelationRecord>> {
        down()
    }
}

#[async_trait]
impl VerificationStore for DownStore {
    async fn put_verification(
        &self,
        _: &VerificationRecord,
        _: i64,
    ) -> StoreResult<VerificationRecord> {
        down()
    }
    async fn get_verification(
        &self,
        _: u64,
        _: u32,
        _: i64,
    ) -> StoreResult<Option<VerificationRecord>> {
        down()
    }
}

#[async_trait]
impl LockStore for DownStore {
    async fn acquire_lock(&self, _: &str, _: &str, _: i64, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn release_lock(&self, _: &str, _: &str) -> StoreResult<()> {
        down()
    }
}

impl valine::store::AdmissionStore for DownStore {}

#[async_trait]
impl BlockStore for DownStore {
    async fn put_block(&self, _: &BlockRecord, _: &AuditRecord) -> StoreResult<()> {
        down()
    }
    async fn remove_block(&self, _: &str, _: &AuditRecord, _: i64) -> StoreResult<bool> {
        down()
    }
    async fn get_block(&self, _: &str, _: i64) -> StoreResult<Option<BlockRecord>> {
        down()
    }
}

async fn down_app() -> crate::helpers::TestApp {
    spawn_app_with(Options {
        store: Some(Arc::new(DownStore)),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn healthz_is_503_when_the_store_cannot_be_reached() {
    let app = down_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["store"], "error");
}

#[tokio::test]
async fn commands_fail_closed_when_the_rate_limit_cannot_be_counted() {
    let app = down_app().await;
    for name in ["status", "debug-last"] {
        let res = app
            .post_interaction(&command(name, json!([]), "42", &[], "tok-down"))
            .await;
        assert_eq!(res.status(), 200, "never a 5xx to Discord");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["flags"], 64);
        let content = body["data"]["content"].as_str().unwrap();
        assert!(
            content.starts_with("❌ Valine cannot check the rate limit"),
            "{content}"
        );
    }
    assert!(app.discord.log.all().is_empty(), "nothing was deferred");
}

#[tokio::test]
async fn webhooks_answer_503_so_github_redelivers() {
    let app = down_app().await;
    let body = json!({
        "action": "completed",
        "workflow_run": {"id": 1, "workflow_id": 77, "status": "completed", "conclusion": "success",
                         "head_branch": "main", "run_attempt": 1},
        "repository": {"full_name": "octo-org/octo-repo"}
    });
    let res = app.post_webhook("workflow_run", "d-down", &body).await;
    assert_eq!(res.status(), 503);
}
