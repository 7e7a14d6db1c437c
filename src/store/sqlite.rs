//! SQLite backend (placeholder until the store helper lands the real one).
use super::*;
use std::path::Path;

pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(_path: &Path) -> StoreResult<Self> {
        Err(StoreError::Unavailable("not yet".into()))
    }
    pub async fn open_in_memory() -> StoreResult<Self> {
        Err(StoreError::Unavailable("not yet".into()))
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> { todo!() }
}
#[async_trait]
impl TraceStore for SqliteStore {
    async fn put_trace(&self, _: &TraceRecord) -> StoreResult<()> { todo!() }
    async fn get_trace(&self, _: &str, _: i64) -> StoreResult<Option<TraceRecord>> { todo!() }
    async fn latest_trace_for_user(&self, _: &str, _: &str, _: i64) -> StoreResult<Option<TraceRecord>> { todo!() }
}
#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit_rate_window(&self, _: &str, _: i64, _: i64) -> StoreResult<u32> { todo!() }
}
#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, _: &NewJob, _: i64) -> StoreResult<()> { todo!() }
    async fn claim_job(&self, _: &str, _: i64, _: i64) -> StoreResult<Option<JobRecord>> { todo!() }
    async fn renew_job_lease(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> { todo!() }
    async fn complete_job(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> { todo!() }
    async fn retry_job(&self, _: &str, _: &str, _: i64, _: &str) -> StoreResult<bool> { todo!() }
    async fn fail_job(&self, _: &str, _: &str, _: &str, _: i64) -> StoreResult<bool> { todo!() }
    async fn release_job_leases(&self, _: &str) -> StoreResult<u32> { todo!() }
    async fn get_job(&self, _: &str) -> StoreResult<Option<JobRecord>> { todo!() }
    async fn failed_jobs(&self, _: i64) -> StoreResult<Vec<JobRecord>> { todo!() }
}
#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_setting(&self, _: &str) -> StoreResult<Option<SettingRecord>> { todo!() }
    async fn change_setting(&self, _: &str, _: Option<&str>, _: Option<&SettingRecord>, _: &AuditRecord) -> StoreResult<bool> { todo!() }
    async fn append_audit(&self, _: &AuditRecord) -> StoreResult<()> { todo!() }
    async fn list_audit(&self, _: Option<&str>, _: i64, _: i64) -> StoreResult<Vec<AuditRecord>> { todo!() }
    async fn put_pending(&self, _: &PendingConfirmation) -> StoreResult<()> { todo!() }
    async fn take_pending(&self, _: &str, _: i64) -> StoreResult<Option<PendingConfirmation>> { todo!() }
}
#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn accept_delivery(&self, _: &DeliveryEffects, _: i64) -> StoreResult<bool> { todo!() }
    async fn get_run(&self, _: u64, _: i64) -> StoreResult<Option<RunRecord>> { todo!() }
}
#[async_trait]
impl LockStore for SqliteStore {
    async fn acquire_lock(&self, _: &str, _: &str, _: i64, _: i64) -> StoreResult<bool> { todo!() }
    async fn release_lock(&self, _: &str, _: &str) -> StoreResult<()> { todo!() }
}
