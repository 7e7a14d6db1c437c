//! DynamoDB backend of the store: every record on one table, shared by any number of
//! `serve` processes and Lambda instances (`VALINE_STORE=dynamodb:<table>`).
//!
//! # The table
//!
//! Key: partition key `pk` (S), sort key `sk` (S). TTL attribute `expires_at` (N, epoch
//! seconds). On-demand capacity (`PAY_PER_REQUEST`). Two overloaded global secondary
//! indexes, both projecting every attribute, each populated only by the items listed
//! (sparse):
//!
//! | index | partition | sort | items |
//! |---|---|---|---|
//! | `gsi1` | `gsi1pk` = `JOBQ` | `gsi1sk` = `{due_ms:020}#{id}` | pending and running jobs: the claim queue. `due_ms` is when the job becomes claimable: `run_after_ms` while pending, `lease_until_ms + 1` while running |
//! | `gsi1` | `JOBFAILED` | `{created_at_ms:020}#{id}` | failed jobs, listed newest first |
//! | `gsi1` | `USERTRACE#{user}` | `{started_at_ms:020}#{id}` | traces, a user's newest first |
//! | `gsi2` | `TRACES` | `{started_at_ms:020}#{id}` | every trace, newest first (`valine traces`) |
//! | `gsi1` | `AUDIT` | `{at_ms:020}#{id}` | audit records by time |
//! | `gsi2` | `gsi2pk` = `LEASE#{owner}` | `gsi2sk` = `{id}` | running jobs by lease owner (released at shutdown) |
//! | `gsi2` | `AUDITUSER#{user}` | `{at_ms:020}#{id}` | one user's audit records by time |
//!
//! [`TABLE_SCHEMA`] holds the key schema, the indexes and the TTL attribute in one place;
//! `valine init` ([`create_table_if_missing`]) and the deployment template follow it.
//! Item kinds and their keys are listed in [`crate::store`]'s module documentation.
//!
//! # Atomicity
//!
//! Every operation the store traits call atomic is one conditional write or one
//! `TransactWriteItems` (see `docs/design.md#atomicity`); nothing here reads, decides and
//! then writes unguarded. Where a rule of [`super::rules`] can be stated as a condition,
//! the condition expression states it, with the rule named beside it. Where a rule needs
//! the stored value to compute the new one (the run merge, the first failing step, the
//! correlation a run may attach to), the record is read with a consistent read, the rule
//! applied, and the write made conditional on the item being unchanged (a version number,
//! or the read values pinned); a conflicting writer makes the write fail and the whole
//! operation starts again from a fresh read.
//!
//! Reads ignore expired items themselves (DynamoDB's TTL deletes them up to days late).
//! Every item stays far below DynamoDB's 400 KB limit: traces, job payloads and reports
//! are JSON strings, and one larger than [`MAX_ITEM_BYTES`] is refused with
//! [`StoreError::Encode`]. Errors carry the SDK error as their source and never an item's
//! contents in their message.
//!
//! Indexes are read eventually consistently (DynamoDB offers nothing else on a GSI), so
//! an index answer may lag a write by a moment; every write that acts on an index answer
//! (a claim, a release) is conditional on the base item, which is always current.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    Put, ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update,
};
use futures_util::future::{try_join, try_join_all, try_join4};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::rules;
use super::{
    AdmissionStore, AuditRecord, BlockRecord, BlockStore, BoxError, Census, CorrelationKind,
    CorrelationRecord, CorrelationStore, DeliveryEffects, DeliveryStore, FailedStepRecord,
    HealthStore, HousekeepingStore, JobRecord, JobState, JobStore, LockStore, NewJob, Outcome,
    PendingConfirmation, RateLimitStore, RecordCounts, RecordKind, RunRecord, SettingRecord,
    SettingsStore, StoreError, StoreResult, TraceQuery, TraceRecord, TraceStore,
    VerificationRecord, VerificationStore,
};

// ---------------------------------------------------------------------------------------
// The table's shape
// ---------------------------------------------------------------------------------------

/// A global secondary index of the table: string partition and sort keys, every
/// attribute projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// The projection type, as DynamoDB names it (`ALL`).
    pub projection: &'static str,
}

/// Everything about the table that `valine init` creates and the deployment template must
/// declare alike. All key attributes are strings (`S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// The TTL attribute: epoch seconds (`N`).
    pub ttl_attribute: &'static str,
    /// `PAY_PER_REQUEST` (on-demand).
    pub billing_mode: &'static str,
    /// The DynamoDB type of every key attribute, the table's and the indexes' (`S`).
    pub key_attribute_type: &'static str,
    /// Each projects `ALL` attributes.
    pub indexes: &'static [IndexSchema],
}

impl TableSchema {
    /// Every key attribute of the table and its indexes, in the order `valine init`
    /// declares them: what a table's `AttributeDefinitions` must list, no more.
    pub fn key_attributes(&self) -> Vec<&'static str> {
        let mut names = vec![self.partition_key, self.sort_key];
        for index in self.indexes {
            names.extend([index.partition_key, index.sort_key]);
        }
        names
    }
}

const GSI1: IndexSchema = IndexSchema {
    name: "gsi1",
    partition_key: "gsi1pk",
    sort_key: "gsi1sk",
    projection: "ALL",
};

const GSI2: IndexSchema = IndexSchema {
    name: "gsi2",
    partition_key: "gsi2pk",
    sort_key: "gsi2sk",
    projection: "ALL",
};

/// The one description of the table (see the module documentation for what each index
/// serves).
pub const TABLE_SCHEMA: TableSchema = TableSchema {
    partition_key: "pk",
    sort_key: "sk",
    ttl_attribute: "expires_at",
    billing_mode: "PAY_PER_REQUEST",
    key_attribute_type: "S",
    indexes: &[GSI1, GSI2],
};

/// The largest item this backend writes, in bytes of attribute names and values: well
/// below DynamoDB's 400 KB item limit, leaving room for the keys and index attributes.
pub const MAX_ITEM_BYTES: usize = 350 * 1024;

/// A job's last error is kept to this many bytes (it is shown to people, not parsed).
const MAX_ERROR_BYTES: usize = 8 * 1024;

/// How often an operation that lost a race (a transaction conflict, a record changed
/// between its read and its conditional write) starts again before reporting a retryable
/// error.
const MAX_RACES: u32 = 8;

/// Claim candidates tried per claim at most: enough to get past the jobs other workers
/// are claiming at the same moment, bounded so one claim stays a few round trips.
const CLAIM_CANDIDATES: usize = 100;
/// Queue entries read per page while claiming.
const CLAIM_PAGE: i32 = 10;

/// A transaction holds at most 100 items (DynamoDB's limit).
const MAX_TRANSACTION_ITEMS: usize = 100;

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// Sort-key spelling of a time or id: zero-padded so string order is numeric order.
/// Times before 1970 never occur; they sort as 0 rather than break the order.
fn padded(value: i64) -> String {
    format!("{:020}", value.max(0))
}

fn padded_u64(value: u64) -> String {
    format!("{value:020}")
}

/// Sort key in `gsi1`/`gsi2` for a record ordered by `time`, ties broken by `id`.
fn time_key(time: i64, id: &str) -> String {
    format!("{}#{id}", padded(time))
}

mod keys {
    use super::{padded_u64, time_key};

    pub fn trace(id: &str) -> (String, String) {
        (format!("TRACE#{id}"), "TRACE".into())
    }
    pub fn user_traces(user: &str) -> String {
        format!("USERTRACE#{user}")
    }
    pub const TRACES_BY_TIME: &str = "TRACES";
    pub fn job(id: &str) -> (String, String) {
        (format!("JOB#{id}"), "JOB".into())
    }
    pub const JOB_QUEUE: &str = "JOBQ";
    pub const FAILED_JOBS: &str = "JOBFAILED";
    pub fn lease(owner: &str) -> String {
        format!("LEASE#{owner}")
    }
    /// A job's place in the claim queue: claimable from `due_ms` on.
    pub fn job_due(due_ms: i64, id: &str) -> String {
        time_key(due_ms, id)
    }
    pub fn rate(user: &str, window_start: i64) -> (String, String) {
        (format!("RATE#{user}"), window_start.to_string())
    }
    pub fn setting(key: &str) -> (String, String) {
        ("SETTING".into(), key.to_owned())
    }
    pub fn audit(id: &str) -> (String, String) {
        (format!("AUDIT#{id}"), "AUDIT".into())
    }
    pub const AUDIT_BY_TIME: &str = "AUDIT";
    pub fn audit_by_user(user: &str) -> String {
        format!("AUDITUSER#{user}")
    }
    pub fn block(user: &str) -> (String, String) {
        (format!("BLOCK#{user}"), "BLOCK".into())
    }
    pub fn pending(id: &str) -> (String, String) {
        (format!("PENDING#{id}"), "PENDING".into())
    }
    pub fn delivery(id: &str) -> (String, String) {
        (format!("DELIVERY#{id}"), "DELIVERY".into())
    }
    pub const RUNS: &str = "RUN";
    pub fn run(id: u64) -> (String, String) {
        (RUNS.into(), padded_u64(id))
    }
    pub fn failed_step(run_id: u64) -> (String, String) {
        (format!("RUNFAIL#{}", padded_u64(run_id)), "RUNFAIL".into())
    }
    pub fn lock(name: &str) -> (String, String) {
        (format!("LOCK#{name}"), "LOCK".into())
    }
    pub fn correlation(id: &str) -> (String, String) {
        (format!("CORR#{id}"), "CORR".into())
    }
    pub const DEPLOY_CORRELATIONS: &str = "CORRDEPLOY";
    pub fn deploy_correlation(created_at_ms: i64, id: &str) -> (String, String) {
        (DEPLOY_CORRELATIONS.into(), time_key(created_at_ms, id))
    }
    pub fn run_correlation(run_id: u64) -> (String, String) {
        (format!("CORRRUN#{}", padded_u64(run_id)), "CORRRUN".into())
    }
    pub fn verification(run_id: u64, attempt: u32) -> (String, String) {
        (
            format!("VERIFY#{}#{attempt}", padded_u64(run_id)),
            "VERIFY".into(),
        )
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_item((pk, sk): (String, String)) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

// ---------------------------------------------------------------------------------------
// Item encoding
// ---------------------------------------------------------------------------------------

/// Builds an item attribute by attribute; `None` values are left out (DynamoDB has no
/// use for empty attributes, and a missing one reads back as `None`).
struct ItemWriter(Item);

impl ItemWriter {
    fn new(key: (String, String)) -> Self {
        ItemWriter(key_item(key))
    }
    fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), s(value));
        self
    }
    fn n(mut self, name: &str, value: impl Display) -> Self {
        self.0.insert(name.to_owned(), n(value));
        self
    }
    fn b(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.to_owned(), AttributeValue::Bool(value));
        self
    }
    fn opt_s(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.s(name, value),
            None => self,
        }
    }
    fn opt_n<T: Display>(self, name: &str, value: Option<T>) -> Self {
        match value {
            Some(value) => self.n(name, value),
            None => self,
        }
    }
    fn json<T: Serialize + ?Sized>(
        self,
        op: &'static str,
        name: &str,
        what: &'static str,
        value: &T,
    ) -> StoreResult<Self> {
        let text = serde_json::to_string(value).map_err(|e| StoreError::encode(op, what, e))?;
        Ok(self.s(name, text))
    }
    fn done(self) -> Item {
        self.0
    }
}

/// Approximate stored size of an item: attribute names plus values, as DynamoDB counts.
fn item_bytes(item: &Item) -> usize {
    fn value_bytes(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(list) => 3 + list.iter().map(value_bytes).sum::<usize>(),
            AttributeValue::M(map) => 3 + item_bytes(map),
            _ => 0,
        }
    }
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

/// Refuses an item that could approach DynamoDB's 400 KB limit, naming the record kind
/// and the size, never its contents.
fn check_size(op: &'static str, what: &'static str, item: &Item) -> StoreResult<()> {
    let bytes = item_bytes(item);
    if bytes > MAX_ITEM_BYTES {
        return Err(StoreError::encode(
            op,
            what,
            format!("{bytes} bytes exceed the {MAX_ITEM_BYTES}-byte item limit"),
        ));
    }
    Ok(())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

// ---------------------------------------------------------------------------------------
// Item decoding
// ---------------------------------------------------------------------------------------

/// Reads attributes of one stored item; anything missing or malformed is
/// [`StoreError::Corrupt`], naming the record kind and the attribute, never its value.
struct ItemReader<'a> {
    op: &'static str,
    what: &'static str,
    item: &'a Item,
}

impl<'a> ItemReader<'a> {
    fn new(op: &'static str, what: &'static str, item: &'a Item) -> Self {
        ItemReader { op, what, item }
    }

    fn corrupt(&self, name: &str, problem: impl Into<BoxError>) -> StoreError {
        StoreError::corrupt(self.op, format!("{} attribute {name}", self.what), problem)
    }

    fn opt_s(&self, name: &str) -> StoreResult<Option<String>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.corrupt(name, "not a string")),
        }
    }

    fn s(&self, name: &str) -> StoreResult<String> {
        self.opt_s(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn opt_n<T>(&self, name: &str) -> StoreResult<Option<T>>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(text)) => text
                .parse()
                .map(Some)
                .map_err(|e: T::Err| self.corrupt(name, e)),
            Some(_) => Err(self.corrupt(name, "not a number")),
        }
    }

    fn n<T>(&self, name: &str) -> StoreResult<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.opt_n(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn b(&self, name: &str) -> StoreResult<bool> {
        match self.item.get(name) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            None => Err(self.corrupt(name, "missing")),
            Some(_) => Err(self.corrupt(name, "not a boolean")),
        }
    }

    fn json<T: DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        let text = self.s(name)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(name, e))
    }

    /// A snake_case enum stored as its serde name.
    fn enumeration<T: DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        let text = self.s(name)?;
        serde_json::from_value(serde_json::Value::String(text)).map_err(|e| self.corrupt(name, e))
    }

    fn opt_enumeration<T: DeserializeOwned>(&self, name: &str) -> StoreResult<Option<T>> {
        match self.opt_s(name)? {
            None => Ok(None),
            Some(text) => serde_json::from_value(serde_json::Value::String(text))
                .map(Some)
                .map_err(|e| self.corrupt(name, e)),
        }
    }
}

/// `expires_at` of an item, if it has a readable one.
fn expires_at(item: &Item) -> Option<i64> {
    match item.get("expires_at") {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

/// Whether the stored item is live at `now` ([`rules::is_live`]); an item without a
/// readable `expires_at` never expires.
fn item_live(item: &Item, now: i64) -> bool {
    expires_at(item).is_none_or(|at| rules::is_live(at, now))
}

/// The kind of record an item holds, by its partition key, and whether it is the record
/// itself (`true`) or an item that only indexes one (a deploy correlation by time, a
/// run's correlation): those expire and are deleted with their record but not counted.
/// The heartbeat is no record.
fn kind_of(pk: &str) -> Option<(RecordKind, bool)> {
    let prefix = pk.split('#').next().unwrap_or(pk);
    Some(match prefix {
        "TRACE" => (RecordKind::Trace, true),
        "JOB" => (RecordKind::Job, true),
        "RATE" => (RecordKind::RateWindow, true),
        "SETTING" => (RecordKind::Setting, true),
        "AUDIT" => (RecordKind::Audit, true),
        "PENDING" => (RecordKind::Pending, true),
        "DELIVERY" => (RecordKind::Delivery, true),
        "RUN" => (RecordKind::Run, true),
        "RUNFAIL" => (RecordKind::FailedStep, true),
        "LOCK" => (RecordKind::Lock, true),
        "CORR" => (RecordKind::Correlation, true),
        "CORRDEPLOY" | "CORRRUN" => (RecordKind::Correlation, false),
        "VERIFY" => (RecordKind::Verification, true),
        "BLOCK" => (RecordKind::Block, true),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Record mapping
// ---------------------------------------------------------------------------------------

fn trace_item(op: &'static str, trace: &TraceRecord) -> StoreResult<Item> {
    let item = ItemWriter::new(keys::trace(&trace.id))
        .s("id", &trace.id)
        .s("user_id", &trace.user_id)
        .s("command", &trace.command)
        .json(op, "options", "trace options", &trace.options)?
        .n("started_at_ms", trace.started_at_ms)
        .json(op, "steps", "trace steps", &trace.steps)?
        .opt_n("duration_ms", trace.duration_ms)
        .opt_s("outcome", trace.outcome.map(Outcome::as_str))
        .opt_s("error", trace.error.as_deref())
        .json(op, "links", "trace links", &trace.links)?
        .n("expires_at", trace.expires_at)
        .s("gsi1pk", keys::user_traces(&trace.user_id))
        .s("gsi1sk", time_key(trace.started_at_ms, &trace.id))
        .s("gsi2pk", keys::TRACES_BY_TIME)
        .s("gsi2sk", time_key(trace.started_at_ms, &trace.id))
        .done();
    check_size(op, "trace", &item)?;
    Ok(item)
}

fn trace_from_item(op: &'static str, item: &Item) -> StoreResult<TraceRecord> {
    let r = ItemReader::new(op, "trace", item);
    Ok(TraceRecord {
        id: r.s("id")?,
        user_id: r.s("user_id")?,
        command: r.s("command")?,
        options: r.json("options")?,
        started_at_ms: r.n("started_at_ms")?,
        steps: r.json("steps")?,
        duration_ms: r.opt_n("duration_ms")?,
        outcome: r.opt_enumeration("outcome")?,
        error: r.opt_s("error")?,
        links: r.json("links")?,
        expires_at: r.n("expires_at")?,
    })
}

/// A new job, `Pending` in the claim queue.
fn new_job_item(op: &'static str, job: &NewJob, created_at_ms: i64) -> StoreResult<Item> {
    let item = ItemWriter::new(keys::job(&job.id))
        .s("id", &job.id)
        .json(op, "payload", "job payload", &job.payload)?
        .s("state", job_state_str(JobState::Pending))
        .n("attempts", 0)
        .n("run_after_ms", job.run_after_ms)
        .n("deadline_ms", job.deadline_ms)
        .opt_s("trace_id", job.trace_id.as_deref())
        .n("created_at_ms", created_at_ms)
        // Copied into `gsi1sk` when the job fails, so the failed-jobs listing orders by
        // creation without the failing write having to know the creation time.
        .s("created_key", time_key(created_at_ms, &job.id))
        .s("gsi1pk", keys::JOB_QUEUE)
        .s("gsi1sk", keys::job_due(job.run_after_ms, &job.id))
        .done();
    check_size(op, "job", &item)?;
    Ok(item)
}

fn job_from_item(op: &'static str, item: &Item) -> StoreResult<JobRecord> {
    let r = ItemReader::new(op, "job", item);
    Ok(JobRecord {
        id: r.s("id")?,
        payload: r.json("payload")?,
        state: r.enumeration("state")?,
        attempts: r.n("attempts")?,
        run_after_ms: r.n("run_after_ms")?,
        deadline_ms: r.n("deadline_ms")?,
        lease_owner: r.opt_s("lease_owner")?,
        lease_until_ms: r.opt_n("lease_until_ms")?,
        last_error: r.opt_s("last_error")?,
        trace_id: r.opt_s("trace_id")?,
        created_at_ms: r.n("created_at_ms")?,
        expires_at: r.opt_n("expires_at")?,
    })
}

/// The stored spelling of a job state: serde's snake_case name, as `enumeration` reads it.
fn job_state_str(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    }
}

/// The setting stored under `key` (the key the caller's condition is about).
fn setting_item(key: &str, setting: &SettingRecord) -> Item {
    ItemWriter::new(keys::setting(key))
        .s("key", key)
        .s("value", &setting.value)
        .s("updated_by", &setting.updated_by)
        .n("updated_at_ms", setting.updated_at_ms)
        .done()
}

fn setting_from_item(op: &'static str, item: &Item) -> StoreResult<SettingRecord> {
    let r = ItemReader::new(op, "setting", item);
    Ok(SettingRecord {
        key: r.s("key")?,
        value: r.s("value")?,
        updated_by: r.s("updated_by")?,
        updated_at_ms: r.n("updated_at_ms")?,
    })
}

fn audit_item(audit: &AuditRecord) -> Item {
    let at = time_key(audit.at_ms, &audit.id);
    ItemWriter::new(keys::audit(&audit.id))
        .s("id", &audit.id)
        .n("at_ms", audit.at_ms)
        .s("user_id", &audit.user_id)
        .s("action", &audit.action)
        .opt_s("old_fingerprint", audit.old_fingerprint.as_deref())
        .opt_s("new_fingerprint", audit.new_fingerprint.as_deref())
        .opt_s("trace_id", audit.trace_id.as_deref())
        .b("dry_run", audit.dry_run)
        .n("expires_at", audit.expires_at)
        .s("gsi1pk", keys::AUDIT_BY_TIME)
        .s("gsi1sk", at.clone())
        .s("gsi2pk", keys::audit_by_user(&audit.user_id))
        .s("gsi2sk", at)
        .done()
}

fn audit_from_item(op: &'static str, item: &Item) -> StoreResult<AuditRecord> {
    let r = ItemReader::new(op, "audit record", item);
    Ok(AuditRecord {
        id: r.s("id")?,
        at_ms: r.n("at_ms")?,
        user_id: r.s("user_id")?,
        action: r.s("action")?,
        old_fingerprint: r.opt_s("old_fingerprint")?,
        new_fingerprint: r.opt_s("new_fingerprint")?,
        trace_id: r.opt_s("trace_id")?,
        dry_run: r.b("dry_run")?,
        expires_at: r.n("expires_at")?,
    })
}

fn block_item(block: &BlockRecord) -> Item {
    ItemWriter::new(keys::block(&block.user_id))
        .s("user_id", &block.user_id)
        .opt_s("reason", block.reason.as_deref())
        .s("blocked_by", &block.blocked_by)
        .n("at_ms", block.at_ms)
        .opt_n("expires_at", block.expires_at)
        .done()
}

fn block_from_item(op: &'static str, item: &Item) -> StoreResult<BlockRecord> {
    let r = ItemReader::new(op, "block", item);
    Ok(BlockRecord {
        user_id: r.s("user_id")?,
        reason: r.opt_s("reason")?,
        blocked_by: r.s("blocked_by")?,
        at_ms: r.n("at_ms")?,
        expires_at: r.opt_n("expires_at")?,
    })
}

fn pending_item(pending: &PendingConfirmation) -> Item {
    ItemWriter::new(keys::pending(&pending.id))
        .s("id", &pending.id)
        .s("user_id", &pending.user_id)
        .s("key", &pending.key)
        .opt_s("old_value", pending.old_value.as_deref())
        .opt_s("new_value", pending.new_value.as_deref())
        .n("expires_at", pending.expires_at)
        .done()
}

fn pending_from_item(op: &'static str, item: &Item) -> StoreResult<PendingConfirmation> {
    let r = ItemReader::new(op, "pending confirmation", item);
    Ok(PendingConfirmation {
        id: r.s("id")?,
        user_id: r.s("user_id")?,
        key: r.s("key")?,
        old_value: r.opt_s("old_value")?,
        new_value: r.opt_s("new_value")?,
        expires_at: r.n("expires_at")?,
    })
}

/// The run as stored, with `ver`: the version its conditional writes check.
fn run_item(run: &RunRecord, version: u64) -> Item {
    ItemWriter::new(keys::run(run.id))
        .n("id", run.id)
        .n("workflow_id", run.workflow_id)
        .opt_s("workflow_name", run.workflow_name.as_deref())
        .s("status", &run.status)
        .opt_s("conclusion", run.conclusion.as_deref())
        .opt_s("branch", run.branch.as_deref())
        .opt_s("head_sha", run.head_sha.as_deref())
        .n("run_attempt", run.run_attempt)
        .opt_s("html_url", run.html_url.as_deref())
        .opt_s("display_title", run.display_title.as_deref())
        .opt_s("created_at", run.created_at.as_deref())
        .opt_s("updated_at", run.updated_at.as_deref())
        .n("expires_at", run.expires_at)
        .n("ver", version)
        .done()
}

fn run_from_item(op: &'static str, item: &Item) -> StoreResult<(RunRecord, u64)> {
    let r = ItemReader::new(op, "run", item);
    let run = RunRecord {
        id: r.n("id")?,
        workflow_id: r.n("workflow_id")?,
        workflow_name: r.opt_s("workflow_name")?,
        status: r.s("status")?,
        conclusion: r.opt_s("conclusion")?,
        branch: r.opt_s("branch")?,
        head_sha: r.opt_s("head_sha")?,
        run_attempt: r.n("run_attempt")?,
        html_url: r.opt_s("html_url")?,
        display_title: r.opt_s("display_title")?,
        created_at: r.opt_s("created_at")?,
        updated_at: r.opt_s("updated_at")?,
        expires_at: r.n("expires_at")?,
    };
    Ok((run, r.n("ver")?))
}

fn failed_step_item(step: &FailedStepRecord, version: u64) -> Item {
    ItemWriter::new(keys::failed_step(step.run_id))
        .n("run_id", step.run_id)
        .n("run_attempt", step.run_attempt)
        .n("job_id", step.job_id)
        .s("job_name", &step.job_name)
        .opt_s("step_name", step.step_name.as_deref())
        .opt_s("html_url", step.html_url.as_deref())
        .n("expires_at", step.expires_at)
        .n("ver", version)
        .done()
}

fn failed_step_from_item(op: &'static str, item: &Item) -> StoreResult<(FailedStepRecord, u64)> {
    let r = ItemReader::new(op, "failed step", item);
    let step = FailedStepRecord {
        run_id: r.n("run_id")?,
        run_attempt: r.n("run_attempt")?,
        job_id: r.n("job_id")?,
        job_name: r.s("job_name")?,
        step_name: r.opt_s("step_name")?,
        html_url: r.opt_s("html_url")?,
        expires_at: r.n("expires_at")?,
    };
    Ok((step, r.n("ver")?))
}

fn correlation_item(c: &CorrelationRecord) -> Item {
    ItemWriter::new(keys::correlation(&c.id))
        .s("id", &c.id)
        .s("kind", c.kind.as_str())
        .s("requester", &c.requester)
        .opt_s("channel_id", c.channel_id.as_deref())
        .opt_s("application_id", c.application_id.as_deref())
        .opt_s("interaction_token", c.interaction_token.as_deref())
        .n("token_expires_at_ms", c.token_expires_at_ms)
        .b("wait", c.wait)
        .opt_s("api_base", c.api_base.as_deref())
        .opt_n("run_id", c.run_id)
        .n("created_at_ms", c.created_at_ms)
        .n("expires_at", c.expires_at)
        .done()
}

fn correlation_from_item(op: &'static str, item: &Item) -> StoreResult<CorrelationRecord> {
    let r = ItemReader::new(op, "correlation", item);
    Ok(CorrelationRecord {
        id: r.s("id")?,
        kind: r.enumeration::<CorrelationKind>("kind")?,
        requester: r.s("requester")?,
        channel_id: r.opt_s("channel_id")?,
        application_id: r.opt_s("application_id")?,
        interaction_token: r.opt_s("interaction_token")?,
        token_expires_at_ms: r.n("token_expires_at_ms")?,
        wait: r.b("wait")?,
        api_base: r.opt_s("api_base")?,
        run_id: r.opt_n("run_id")?,
        created_at_ms: r.n("created_at_ms")?,
        expires_at: r.n("expires_at")?,
    })
}

/// The item naming the correlation a run is attached to; it expires with the
/// correlation, so a live one means a live correlation holds the run.
fn run_correlation_item(run_id: u64, c: &CorrelationRecord) -> Item {
    ItemWriter::new(keys::run_correlation(run_id))
        .s("corr_id", &c.id)
        .n("expires_at", c.expires_at)
        .done()
}

fn deploy_correlation_item(c: &CorrelationRecord) -> Item {
    ItemWriter::new(keys::deploy_correlation(c.created_at_ms, &c.id))
        .s("corr_id", &c.id)
        .n("created_at_ms", c.created_at_ms)
        .n("expires_at", c.expires_at)
        .done()
}

fn verification_item(op: &'static str, v: &VerificationRecord) -> StoreResult<Item> {
    let item = ItemWriter::new(keys::verification(v.run_id, v.run_attempt))
        .n("run_id", v.run_id)
        .n("run_attempt", v.run_attempt)
        .b("passed", v.passed)
        .json(op, "report", "verification report", &v.report)?
        .n("created_at_ms", v.created_at_ms)
        .n("expires_at", v.expires_at)
        .done();
    check_size(op, "verification", &item)?;
    Ok(item)
}

fn verification_from_item(op: &'static str, item: &Item) -> StoreResult<VerificationRecord> {
    let r = ItemReader::new(op, "verification", item);
    Ok(VerificationRecord {
        run_id: r.n("run_id")?,
        run_attempt: r.n("run_attempt")?,
        passed: r.b("passed")?,
        report: r.json("report")?,
        created_at_ms: r.n("created_at_ms")?,
        expires_at: r.n("expires_at")?,
    })
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// The table the store names does not exist (or the credentials cannot see it).
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB table `{table}` not found: create it with `valine init`")]
pub struct TableMissing {
    pub table: String,
    #[source]
    pub source: Option<BoxError>,
}

/// Service error codes that pass with time: throttling, capacity, contention, outages.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Service error codes that mean the credentials were refused or lack a permission.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "AccessDeniedException",
    "InvalidClientTokenId",
];

/// Sorts an SDK error into the store's classes, keeping it as the source. The failures
/// an operator fixes outside Valine (an unreachable endpoint, credentials, throttling
/// past the SDK's retries) say so and name the table.
fn sdk_error<E>(op: &'static str, table: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failed = |problem: String, retryable: bool, err: SdkError<E>| StoreError::Failed {
        op,
        problem,
        retryable,
        source: Box::new(err),
    };
    // Credentials are resolved while the request is prepared: none found fails it
    // before anything is sent, whatever class the SDK gives that failure.
    if matches!(
        err,
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_)
    ) && error_chain_mentions(&err, "credential")
    {
        return failed(
            format!(
                "no AWS credentials for DynamoDB table `{table}`: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, a profile, or run with a role"
            ),
            false,
            err,
        );
    }
    match &err {
        SdkError::TimeoutError(_) => failed(
            format!("DynamoDB table `{table}`: no answer in time (the SDK retried)"),
            true,
            err,
        ),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => failed(
            format!(
                "DynamoDB table `{table}`: the endpoint cannot be reached; check AWS_REGION, \
                 AWS_ENDPOINT_URL_DYNAMODB and the network"
            ),
            true,
            err,
        ),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if code == "ResourceNotFoundException" {
                return StoreError::NotInitialised {
                    op,
                    source: Box::new(TableMissing {
                        table: table.to_owned(),
                        source: Some(Box::new(err)),
                    }),
                };
            }
            if CREDENTIAL_CODES.contains(&code) {
                return failed(
                    format!(
                        "DynamoDB refused the credentials for table `{table}` ({code}): check \
                         the AWS credentials and their permissions on the table"
                    ),
                    false,
                    err,
                );
            }
            if RETRYABLE_CODES.contains(&code) || service.raw().status().is_server_error() {
                return failed(
                    format!(
                        "DynamoDB table `{table}` throttled or unavailable past the SDK's \
                         retries ({code})"
                    ),
                    true,
                    err,
                );
            }
            StoreError::Backend {
                op,
                retryable: false,
                source: Box::new(err),
            }
        }
        // A request this code built wrongly, and anything new.
        _ => StoreError::Backend {
            op,
            retryable: false,
            source: Box::new(err),
        },
    }
}

/// Whether any error in `err`'s chain says `word`.
fn error_chain_mentions(err: &(dyn std::error::Error + 'static), word: &str) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.to_string().to_ascii_lowercase().contains(word) {
            return true;
        }
        next = e.source();
    }
    false
}

fn build_error(op: &'static str, err: BuildError) -> StoreError {
    StoreError::Backend {
        op,
        retryable: false,
        source: Box::new(err),
    }
}

/// Whether a single-item write failed only because its condition did not hold.
fn condition_failed<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// The error after an operation lost [`MAX_RACES`] races in a row: contention that
/// passes.
fn contention(op: &'static str) -> StoreError {
    StoreError::Backend {
        op,
        retryable: true,
        source: format!("the records kept changing under {MAX_RACES} attempts").into(),
    }
}

/// Why a transaction was cancelled, one code per item in order (`None` for an item that
/// was fine).
#[derive(Debug)]
struct Cancelled(Vec<String>);

impl Cancelled {
    fn condition_failed(&self, index: usize) -> bool {
        self.0
            .get(index)
            .is_some_and(|code| code == "ConditionalCheckFailed")
    }
}

/// A short pause before an operation that lost a race starts again, growing with the
/// attempt and jittered so racing writers spread out.
async fn race_pause(attempt: u32) {
    let base = 10u64 << attempt.min(4);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

// ---------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------

/// `#name` placeholders for every `#word` in the expressions, each standing for the
/// attribute `word` (several attribute names are DynamoDB reserved words: `state`,
/// `count`, `value`, `owner`, `key`, `status`).
fn names(expressions: &[&str]) -> Option<HashMap<String, String>> {
    let mut names = HashMap::new();
    for expression in expressions {
        let mut rest = *expression;
        while let Some(start) = rest.find('#') {
            let after = &rest[start + 1..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let word = &after[..end];
            if !word.is_empty() {
                names.insert(format!("#{word}"), word.to_owned());
            }
            rest = &after[end..];
        }
    }
    (!names.is_empty()).then_some(names)
}

fn values(pairs: Vec<(&str, AttributeValue)>) -> Option<HashMap<String, AttributeValue>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    })
}

/// `attribute_not_exists(pk) OR expires_at <= :now`: nothing live is stored under the
/// key ([`rules::is_free`]). Needs `:now`.
const FREE: &str = "attribute_not_exists(#pk) OR #expires_at <= :now";

/// A running job's lease is `:owner`'s ([`JobRecord::held_by`]). Needs `:running` and
/// `:owner`.
const HELD_BY: &str = "#state = :running AND #lease_owner = :owner";

// ---------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------

/// The store on one DynamoDB table. Cloning shares the client.
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: Arc<str>,
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// A DynamoDB client from the standard AWS chain: region, credentials and endpoint from
/// `AWS_REGION`, profiles, roles and `AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB Local, moto).
/// The SDK's standard retry mode retries throttling, transient and 5xx errors with
/// exponential backoff and jitter; timeouts keep a hung connection from hanging a command.
pub async fn client_from_env() -> Client {
    Client::new(&crate::aws::sdk_config().await)
}

impl DynamoDbStore {
    /// Opens the store on `table` with a client from the standard AWS chain
    /// ([`client_from_env`]), checking that the table exists: a missing table is
    /// [`StoreError::NotInitialised`] naming it and `valine init`, which creates it.
    pub async fn open(table: &str) -> StoreResult<Self> {
        Self::connect(client_from_env().await, table).await
    }

    /// Like [`open`](Self::open) with a client of the caller's.
    pub async fn connect(client: Client, table: &str) -> StoreResult<Self> {
        let store = Self::new(client, table);
        // A data-plane read rather than DescribeTable, so the functions need no
        // control-plane permission to start.
        match store.ping().await {
            Ok(()) => Ok(store),
            Err(StoreError::NotInitialised { source, .. }) => {
                Err(StoreError::NotInitialised { op: "open", source })
            }
            Err(err) => Err(match err {
                StoreError::Backend {
                    retryable, source, ..
                } => StoreError::Backend {
                    op: "open",
                    retryable,
                    source,
                },
                other => other,
            }),
        }
    }

    /// The store on `table` without checking it exists.
    pub fn new(client: Client, table: &str) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn err<E>(&self, op: &'static str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        sdk_error(op, &self.table, err)
    }

    /// One item by key, read consistently.
    async fn get(&self, op: &'static str, key: (String, String)) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err(op, e))?;
        Ok(out.item)
    }

    /// One live item by key.
    async fn get_live(
        &self,
        op: &'static str,
        key: (String, String),
        now: i64,
    ) -> StoreResult<Option<Item>> {
        Ok(self.get(op, key).await?.filter(|item| item_live(item, now)))
    }

    /// Replaces the item unconditionally.
    async fn put(&self, op: &'static str, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.err(op, e))?;
        Ok(())
    }

    /// Writes the item if `condition` holds; `false` when it did not.
    async fn put_if(
        &self,
        op: &'static str,
        item: Item,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<bool> {
        let sent = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(vals))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(self.err(op, err)),
        }
    }

    /// Updates the item if `condition` holds, returning its new attributes; `None` when
    /// the condition did not hold.
    async fn update_if(
        &self,
        op: &'static str,
        key: (String, String),
        update: &str,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<Option<Item>> {
        let sent = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(vals))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(err) if condition_failed(&err) => Ok(None),
            Err(err) => Err(self.err(op, err)),
        }
    }

    /// Every item a query finds, page after page, until `max` are found. `index` `None`
    /// queries the table (consistently); an index is read eventually consistently.
    #[allow(clippy::too_many_arguments)]
    async fn query(
        &self,
        op: &'static str,
        index: Option<&str>,
        key_condition: &str,
        filter: Option<&str>,
        vals: Vec<(&str, AttributeValue)>,
        forward: bool,
        max: usize,
    ) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        let page = i32::try_from(max).unwrap_or(i32::MAX).clamp(25, 100);
        loop {
            let (items, next) = self
                .query_page(
                    op,
                    index,
                    key_condition,
                    filter,
                    vals.clone(),
                    forward,
                    page,
                    start.take(),
                )
                .await?;
            for item in items {
                found.push(item);
                if found.len() >= max {
                    return Ok(found);
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// One page of a query: at most `limit` items read (before `filter`), and where the
    /// next page starts, if there is one.
    #[allow(clippy::too_many_arguments)]
    async fn query_page(
        &self,
        op: &'static str,
        index: Option<&str>,
        key_condition: &str,
        filter: Option<&str>,
        vals: Vec<(&str, AttributeValue)>,
        forward: bool,
        limit: i32,
        start: Option<Item>,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        let mut exprs = vec![key_condition];
        exprs.extend(filter);
        let out = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .set_index_name(index.map(str::to_owned))
            .consistent_read(index.is_none())
            .key_condition_expression(key_condition)
            .set_filter_expression(filter.map(str::to_owned))
            .set_expression_attribute_names(names(&exprs))
            .set_expression_attribute_values(values(vals))
            .scan_index_forward(forward)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| self.err(op, e))?;
        let next = out.last_evaluated_key.filter(|key| !key.is_empty());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// The key and `expires_at` of every item, page by page: what housekeeping needs and
    /// nothing more (a full read of the table, for the operator's commands only).
    async fn scan_keys(&self, op: &'static str) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(self.table.as_ref())
                .projection_expression("#pk, #sk, #expires_at")
                .set_expression_attribute_names(names(&["#pk #sk #expires_at"]))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err(op, e))?;
            found.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// Sends a transaction. `Ok(Err(cancelled))` when DynamoDB cancelled it for a
    /// condition or a conflict with another transaction; the caller decides whether to
    /// start again. Throttling and validation failures of an item are errors.
    async fn transact(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Result<(), Cancelled>> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Unsupported {
                op,
                reason: format!(
                    "{} writes exceed DynamoDB's {MAX_TRANSACTION_ITEMS}-item transaction limit",
                    items.len()
                )
                .into(),
            });
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Ok(())),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        {
            let codes: Vec<String> = cancel
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().unwrap_or("None").to_owned())
                .collect();
            let settles = |code: &String| {
                matches!(
                    code.as_str(),
                    "None" | "ConditionalCheckFailed" | "TransactionConflict"
                )
            };
            if !codes.is_empty() && codes.iter().all(settles) {
                return Ok(Err(Cancelled(codes)));
            }
            let retryable = codes.iter().any(|code| {
                matches!(
                    code.as_str(),
                    "ThrottlingError" | "ProvisionedThroughputExceeded" | "TransactionConflict"
                )
            });
            return Err(StoreError::Backend {
                op,
                retryable,
                source: Box::new(err),
            });
        }
        Err(self.err(op, err))
    }

    /// Sends `write` and the `audit` item in one transaction. `false` when the write's
    /// own condition failed (nothing written). Audit records are immutable: a repeated
    /// id keeps the first record, which must not cancel the write it accompanies.
    async fn write_with_audit(
        &self,
        op: &'static str,
        write: TransactWriteItem,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        let mut audit_exists = false;
        for attempt in 0..MAX_RACES {
            let audit_write = if audit_exists {
                self.tx_check(op, keys::audit(&audit.id), "attribute_exists(#pk)", vec![])?
            } else {
                self.tx_put(
                    op,
                    audit_item(audit),
                    Some("attribute_not_exists(#pk)"),
                    vec![],
                )?
            };
            match self.transact(op, vec![write.clone(), audit_write]).await? {
                Ok(()) => return Ok(true),
                Err(cancelled) if cancelled.condition_failed(0) => return Ok(false),
                Err(cancelled) => {
                    // The audit item is not as assumed (there, or gone again): write it
                    // the other way next time.
                    if cancelled.condition_failed(1) {
                        audit_exists = !audit_exists;
                    }
                    race_pause(attempt).await;
                }
            }
        }
        Err(contention(op))
    }

    // Transaction items.

    fn tx_put(
        &self,
        op: &'static str,
        item: Item,
        condition: Option<&str>,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(condition.and_then(|c| names(&[c])))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn tx_update(
        &self,
        op: &'static str,
        key: (String, String),
        update: &str,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn tx_delete(
        &self,
        op: &'static str,
        key: (String, String),
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn tx_check(
        &self,
        op: &'static str,
        key: (String, String),
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Puts a versioned item (runs, failing steps) over the `stored` version it was
    /// computed from, or where none was stored: a concurrent writer makes it fail.
    fn tx_put_versioned(
        &self,
        op: &'static str,
        stored: Option<u64>,
        item: impl FnOnce(u64) -> Item,
    ) -> StoreResult<TransactWriteItem> {
        match stored {
            Some(version) => self.tx_put(
                op,
                item(version.saturating_add(1)),
                Some("#ver = :ver"),
                vec![(":ver", n(version))],
            ),
            None => self.tx_put(op, item(1), Some("attribute_not_exists(#pk)"), vec![]),
        }
    }

    /// Reads what attaching `run_id` to correlation `id` depends on and asks
    /// [`CorrelationRecord::can_attach`]. When allowed, returns the two writes that attach
    /// it, each conditional on what the rule was given, so a transaction carrying them
    /// fails (and the caller reads again) if any of it changed in between.
    async fn plan_attach(
        &self,
        op: &'static str,
        id: &str,
        run_id: u64,
        now: i64,
    ) -> StoreResult<Option<[TransactWriteItem; 2]>> {
        let (item, holder_item) = try_join(
            self.get(op, keys::correlation(id)),
            self.get(op, keys::run_correlation(run_id)),
        )
        .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let target = correlation_from_item(op, &item)?;
        let holder_id = holder_item
            .as_ref()
            .map(|item| ItemReader::new(op, "run correlation", item).s("corr_id"))
            .transpose()?;
        let mut holders = Vec::new();
        if let Some(holder_id) = holder_id.as_deref().filter(|other| *other != id)
            && let Some(item) = self.get(op, keys::correlation(holder_id)).await?
        {
            holders.push(correlation_from_item(op, &item)?);
        }
        if !target.can_attach(run_id, &holders, now) {
            return Ok(None);
        }
        // The correlation is the one read (same creation), still live and without
        // another run: `can_attach`'s own clauses.
        let attach = self.tx_update(
            op,
            keys::correlation(id),
            "SET #run_id = :run",
            "#created_at_ms = :created AND #expires_at > :now \
             AND (attribute_not_exists(#run_id) OR #run_id = :run)",
            vec![
                (":run", n(run_id)),
                (":created", n(target.created_at_ms)),
                (":now", n(now)),
            ],
        )?;
        // No other live correlation holds the run (`can_attach`'s holders clause): the
        // run's item is as read. It expires with its correlation, so a live item is a
        // live holder.
        let holder = match (&holder_item, &holder_id) {
            (Some(item), Some(holder_id)) => self.tx_put(
                op,
                run_correlation_item(run_id, &target),
                Some("#corr_id = :holder AND #expires_at = :held_until"),
                vec![
                    (":holder", s(holder_id.as_str())),
                    (":held_until", n(expires_at(item).unwrap_or(i64::MIN))),
                ],
            )?,
            _ => self.tx_put(
                op,
                run_correlation_item(run_id, &target),
                Some("attribute_not_exists(#pk)"),
                vec![],
            )?,
        };
        Ok(Some([attach, holder]))
    }

    /// Claims job `id` if it is claimable now, in one conditional update.
    async fn try_claim(
        &self,
        op: &'static str,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>> {
        // The index may lag; the condition is checked on the job itself. It is
        // `JobRecord::claimable_at`, and the update is `JobRecord::claimed`: one more
        // attempt and the lease (the conformance check `job_claim_agrees_with_claimable_at`
        // holds them together).
        let claimed = self
            .update_if(
                op,
                keys::job(id),
                "SET #state = :running, #attempts = #attempts + :one, \
                 #lease_owner = :owner, #lease_until_ms = :lease_until, \
                 #gsi1sk = :due, #gsi2pk = :lease_pk, #gsi2sk = :id",
                "(#state = :pending AND #run_after_ms <= :now) \
                 OR (#state = :running AND #lease_until_ms < :now)",
                vec![
                    (":running", s(job_state_str(JobState::Running))),
                    (":pending", s(job_state_str(JobState::Pending))),
                    (":one", n(1)),
                    (":owner", s(owner)),
                    (":lease_until", n(lease_until_ms)),
                    (
                        ":due",
                        s(keys::job_due(lease_until_ms.saturating_add(1), id)),
                    ),
                    (":lease_pk", s(keys::lease(owner))),
                    (":id", s(id)),
                    (":now", n(now_ms)),
                ],
            )
            .await?;
        claimed.map(|item| job_from_item(op, &item)).transpose()
    }

    /// Moves a job its `owner` holds with one conditional update; `false` when the lease
    /// has passed to another worker or the job is no longer running.
    async fn update_held_job(
        &self,
        op: &'static str,
        id: &str,
        owner: &str,
        update: &str,
        mut vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<bool> {
        vals.push((":running", s(job_state_str(JobState::Running))));
        vals.push((":owner", s(owner)));
        Ok(self
            .update_if(op, keys::job(id), update, HELD_BY, vals)
            .await?
            .is_some())
    }
}

#[async_trait]
impl HealthStore for DynamoDbStore {
    async fn ping(&self) -> StoreResult<()> {
        // A write of one heartbeat item, overwritten each time: the health check must
        // show a store that can be read but not written (a read-only policy, a table
        // out of write capacity). One cheap data-plane round trip, unlike a
        // control-plane DescribeTable, so the functions need no control-plane right.
        self.put("ping", key_item(("HEALTH".into(), "HEALTH".into())))
            .await
    }
}

#[async_trait]
impl TraceStore for DynamoDbStore {
    async fn put_trace(&self, trace: &TraceRecord) -> StoreResult<()> {
        let op = "put_trace";
        self.put(op, trace_item(op, trace)?).await
    }

    async fn get_trace(&self, id: &str, now: i64) -> StoreResult<Option<TraceRecord>> {
        let op = "get_trace";
        self.get_live(op, keys::trace(id), now)
            .await?
            .map(|item| trace_from_item(op, &item))
            .transpose()
    }

    async fn latest_trace_for_user(
        &self,
        user_id: &str,
        exclude_command: &str,
        now: i64,
    ) -> StoreResult<Option<TraceRecord>> {
        let op = "latest_trace_for_user";
        let found = self
            .query(
                op,
                Some(GSI1.name),
                "#gsi1pk = :pk",
                Some("#command <> :excluded AND #expires_at > :now"),
                vec![
                    (":pk", s(keys::user_traces(user_id))),
                    (":excluded", s(exclude_command)),
                    (":now", n(now)),
                ],
                false,
                1,
            )
            .await?;
        found
            .first()
            .map(|item| trace_from_item(op, item))
            .transpose()
    }

    async fn list_traces(&self, query: &TraceQuery, now: i64) -> StoreResult<Vec<TraceRecord>> {
        let op = "list_traces";
        // `TraceRecord::matches` and `newest_first`: the index's sort key orders by start
        // then id, and the filter states the rest, so the limit counts matching traces.
        let (index, partition) = match &query.user_id {
            Some(user) => (GSI1, keys::user_traces(user)),
            None => (GSI2, keys::TRACES_BY_TIME.to_owned()),
        };
        let key_condition = format!(
            "#{} = :pk AND #{} >= :since",
            index.partition_key, index.sort_key
        );
        let mut vals = vec![
            (":pk", s(partition)),
            (":since", s(padded(query.since_ms))),
            (":now", n(now)),
        ];
        let filter = match &query.command {
            Some(command) => {
                vals.push((":command", s(command)));
                "#expires_at > :now AND #command = :command"
            }
            None => "#expires_at > :now",
        };
        let found = self
            .query(
                op,
                Some(index.name),
                &key_condition,
                Some(filter),
                vals,
                false,
                query.limit,
            )
            .await?;
        found.iter().map(|item| trace_from_item(op, item)).collect()
    }

    async fn traces_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<TraceRecord>> {
        let op = "traces_by_prefix";
        // A whole id is one read, and finds traces written before the `TRACES` index
        // entry existed; a prefix reads the index of live traces (at most 7 days).
        let mut found: Vec<TraceRecord> = self.get_trace(prefix, now).await?.into_iter().collect();
        let items = self
            .query(
                op,
                Some(GSI2.name),
                "#gsi2pk = :pk",
                Some("begins_with(#id, :prefix) AND #expires_at > :now"),
                vec![
                    (":pk", s(keys::TRACES_BY_TIME)),
                    (":prefix", s(prefix)),
                    (":now", n(now)),
                ],
                false,
                limit,
            )
            .await?;
        for item in &items {
            let trace = trace_from_item(op, item)?;
            if !found.iter().any(|t| t.id == trace.id) {
                found.push(trace);
            }
        }
        found.sort_by(TraceRecord::newest_first);
        found.truncate(limit);
        Ok(found)
    }
}

#[async_trait]
impl HousekeepingStore for DynamoDbStore {
    async fn census(&self, now: i64) -> StoreResult<Census> {
        let mut census = Census::default();
        for item in self.scan_keys("census").await? {
            let pk = match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk,
                _ => continue,
            };
            if let Some((kind, true)) = kind_of(pk) {
                if rules::is_expired(expires_at(&item), now) {
                    census.expired.add(kind, 1);
                } else {
                    census.live.add(kind, 1);
                }
            }
        }
        Ok(census)
    }

    async fn delete_expired(&self, now: i64) -> StoreResult<RecordCounts> {
        let op = "delete_expired";
        let expired: Vec<(Item, RecordKind, bool)> = self
            .scan_keys(op)
            .await?
            .into_iter()
            .filter(|item| rules::is_expired(expires_at(item), now))
            .filter_map(|item| {
                let (kind, primary) = match item.get("pk") {
                    Some(AttributeValue::S(pk)) => kind_of(pk)?,
                    _ => return None,
                };
                Some((item, kind, primary))
            })
            .collect();
        let mut deleted = RecordCounts::default();
        // A few deletes at a time: housekeeping must not take the table's capacity from
        // the commands being served.
        for chunk in expired.chunks(16) {
            let outcomes = try_join_all(chunk.iter().map(|(item, _, _)| async move {
                // `rules::is_expired`, checked again by the delete itself: an item
                // written again since the scan (a lock taken, a delivery id seen again)
                // is live and stays.
                let condition = "#expires_at <= :now";
                let key: Item = item
                    .iter()
                    .filter(|(name, _)| *name == "pk" || *name == "sk")
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                let sent = self
                    .client
                    .delete_item()
                    .table_name(self.table.as_ref())
                    .set_key(Some(key))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names(&[condition]))
                    .set_expression_attribute_values(values(vec![(":now", n(now))]))
                    .send()
                    .await;
                match sent {
                    Ok(_) => Ok(true),
                    Err(err) if condition_failed(&err) => Ok(false),
                    Err(err) => Err(self.err(op, err)),
                }
            }))
            .await?;
            for ((_, kind, primary), gone) in chunk.iter().zip(outcomes) {
                if gone && *primary {
                    deleted.add(*kind, 1);
                }
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl RateLimitStore for DynamoDbStore {
    async fn hit_rate_window(
        &self,
        user_id: &str,
        window_start: i64,
        expires_at: i64,
    ) -> StoreResult<u32> {
        let op = "hit_rate_window";
        const RATE_UPDATE: &str = "ADD #count :one SET #expires_at = :expires_at";
        // One atomic increment that creates the window on its first hit. A window is
        // keyed by its start, so it is only ever counted while it is current.
        let out = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(keys::rate(user_id, window_start))))
            .update_expression(RATE_UPDATE)
            .set_expression_attribute_names(names(&[RATE_UPDATE]))
            .set_expression_attribute_values(values(vec![
                (":one", n(1)),
                (":expires_at", n(expires_at)),
            ]))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.err(op, e))?;
        let attributes = out.attributes.unwrap_or_default();
        ItemReader::new(op, "rate window", &attributes).n("count")
    }
}

#[async_trait]
impl JobStore for DynamoDbStore {
    async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> StoreResult<()> {
        let op = "enqueue_job";
        // An id already present keeps its first version, so a caller that retries after
        // an unclear failure never doubles the work.
        self.put_if(
            op,
            new_job_item(op, job, now_ms)?,
            "attribute_not_exists(#pk)",
            vec![],
        )
        .await?;
        Ok(())
    }

    async fn claim_job(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>> {
        let op = "claim_job";
        // Candidates: queue entries due by now, oldest first. Claimable from `due_ms`
        // means `run_after_ms <= now` while pending and `lease_until_ms < now` while
        // running, which is why a running job's entry sits at `lease_until_ms + 1`.
        let due_by = padded(now_ms.saturating_add(1));
        let mut start = None;
        let mut tried = 0;
        while tried < CLAIM_CANDIDATES {
            // Small pages: the first due job is usually claimable, and every entry read
            // costs its whole item (the index projects payloads too).
            let (candidates, next) = self
                .query_page(
                    op,
                    Some(GSI1.name),
                    "#gsi1pk = :pk AND #gsi1sk < :due_by",
                    None,
                    vec![(":pk", s(keys::JOB_QUEUE)), (":due_by", s(due_by.as_str()))],
                    true,
                    CLAIM_PAGE,
                    start.take(),
                )
                .await?;
            for candidate in &candidates {
                tried += 1;
                let id = ItemReader::new(op, "job", candidate).s("id")?;
                if let Some(job) = self
                    .try_claim(op, &id, owner, now_ms, lease_until_ms)
                    .await?
                {
                    return Ok(Some(job));
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(None)
    }

    async fn claim_job_id(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>> {
        self.try_claim("claim_job_id", id, owner, now_ms, lease_until_ms)
            .await
    }

    async fn renew_job_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<bool> {
        self.update_held_job(
            "renew_job_lease",
            id,
            owner,
            "SET #lease_until_ms = :lease_until, #gsi1sk = :due",
            vec![
                (":lease_until", n(lease_until_ms)),
                (
                    ":due",
                    s(keys::job_due(lease_until_ms.saturating_add(1), id)),
                ),
            ],
        )
        .await
    }

    async fn complete_job(&self, id: &str, owner: &str, expires_at: i64) -> StoreResult<bool> {
        // `JobRecord::completed`: done, kept until `expires_at`, out of the queue.
        self.update_held_job(
            "complete_job",
            id,
            owner,
            "SET #state = :done, #expires_at = :expires_at \
             REMOVE #lease_owner, #lease_until_ms, #gsi1pk, #gsi1sk, #gsi2pk, #gsi2sk",
            vec![
                (":done", s(job_state_str(JobState::Done))),
                (":expires_at", n(expires_at)),
            ],
        )
        .await
    }

    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_after_ms: i64,
        error: &str,
    ) -> StoreResult<bool> {
        // `JobRecord::retried`: pending again from `run_after_ms`, recording why.
        self.update_held_job(
            "retry_job",
            id,
            owner,
            "SET #state = :pending, #run_after_ms = :run_after, #last_error = :error, \
             #gsi1sk = :due REMOVE #lease_owner, #lease_until_ms, #gsi2pk, #gsi2sk",
            vec![
                (":pending", s(job_state_str(JobState::Pending))),
                (":run_after", n(run_after_ms)),
                (":error", s(truncated(error, MAX_ERROR_BYTES))),
                (":due", s(keys::job_due(run_after_ms, id))),
            ],
        )
        .await
    }

    async fn fail_job(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        // `JobRecord::failed`: out of the claim queue, into the failed-jobs listing.
        self.update_held_job(
            "fail_job",
            id,
            owner,
            "SET #state = :failed, #last_error = :error, #expires_at = :expires_at, \
             #gsi1pk = :failed_pk, #gsi1sk = #created_key \
             REMOVE #lease_owner, #lease_until_ms, #gsi2pk, #gsi2sk",
            vec![
                (":failed", s(job_state_str(JobState::Failed))),
                (":error", s(truncated(error, MAX_ERROR_BYTES))),
                (":expires_at", n(expires_at)),
                (":failed_pk", s(keys::FAILED_JOBS)),
            ],
        )
        .await
    }

    async fn release_job_leases(&self, owner: &str) -> StoreResult<u32> {
        let op = "release_job_leases";
        // The owner's running jobs, from the lease index (a claim made a moment ago may
        // not show yet: its lease then runs out by itself, within the lease time).
        let leased = self
            .query(
                op,
                Some(GSI2.name),
                "#gsi2pk = :pk",
                None,
                vec![(":pk", s(keys::lease(owner)))],
                true,
                usize::MAX,
            )
            .await?;
        let mut released = 0u32;
        for entry in &leased {
            let mut job = job_from_item(op, entry)?;
            for _ in 0..MAX_RACES {
                if !job.held_by(owner) {
                    break;
                }
                let next = job.released();
                // `JobRecord::released`: claimable at once, the interrupted attempt given
                // back. Its queue position comes from `run_after_ms`, pinned as read.
                let done = self
                    .update_if(
                        op,
                        keys::job(&job.id),
                        "SET #state = :pending, #attempts = #attempts - :one, #gsi1sk = :due \
                         REMOVE #lease_owner, #lease_until_ms, #gsi2pk, #gsi2sk",
                        &format!("{HELD_BY} AND #run_after_ms = :run_after AND #attempts > :zero"),
                        vec![
                            (":pending", s(job_state_str(JobState::Pending))),
                            (":one", n(1)),
                            (":zero", n(0)),
                            (":due", s(keys::job_due(next.run_after_ms, &job.id))),
                            (":running", s(job_state_str(JobState::Running))),
                            (":owner", s(owner)),
                            (":run_after", n(job.run_after_ms)),
                        ],
                    )
                    .await?;
                if done.is_some() {
                    released = released.saturating_add(1);
                    break;
                }
                // The index copy was stale: read the job itself and decide again.
                match self.get(op, keys::job(&job.id)).await? {
                    Some(item) => job = job_from_item(op, &item)?,
                    None => break,
                }
            }
        }
        Ok(released)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let op = "get_job";
        self.get(op, keys::job(id))
            .await?
            .map(|item| job_from_item(op, &item))
            .transpose()
    }

    async fn failed_jobs(&self, now: i64) -> StoreResult<Vec<JobRecord>> {
        let op = "failed_jobs";
        self.query(
            op,
            Some(GSI1.name),
            "#gsi1pk = :pk",
            Some("#expires_at > :now"),
            vec![(":pk", s(keys::FAILED_JOBS)), (":now", n(now))],
            false,
            usize::MAX,
        )
        .await?
        .iter()
        .map(|item| job_from_item(op, item))
        .collect()
    }
}

#[async_trait]
impl SettingsStore for DynamoDbStore {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<SettingRecord>> {
        let op = "get_setting";
        self.get(op, keys::setting(key))
            .await?
            .map(|item| setting_from_item(op, &item))
            .transpose()
    }

    async fn change_setting(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&SettingRecord>,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        let op = "change_setting";
        // `SettingRecord::still_expected` as the write's condition: the stored value is
        // the expected one, or nothing is stored when nothing was expected.
        let (condition, vals) = match expected {
            Some(value) => ("#value = :expected", vec![(":expected", s(value))]),
            None => ("attribute_not_exists(#pk)", vec![]),
        };
        let setting = match new {
            Some(record) => self.tx_put(op, setting_item(key, record), Some(condition), vals)?,
            None if expected.is_some() => {
                self.tx_delete(op, keys::setting(key), condition, vals)?
            }
            None => self.tx_check(op, keys::setting(key), condition, vals)?,
        };
        self.write_with_audit(op, setting, audit).await
    }

    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        // A repeated id is the same record written again: the first one stays.
        self.put_if(
            "append_audit",
            audit_item(audit),
            "attribute_not_exists(#pk)",
            vec![],
        )
        .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        user_id: Option<&str>,
        since_ms: i64,
        now: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let op = "list_audit";
        let since = s(padded(since_ms));
        let found = match user_id {
            Some(user) => {
                self.query(
                    op,
                    Some(GSI2.name),
                    "#gsi2pk = :pk AND #gsi2sk >= :since",
                    Some("#expires_at > :now"),
                    vec![
                        (":pk", s(keys::audit_by_user(user))),
                        (":since", since),
                        (":now", n(now)),
                    ],
                    false,
                    usize::MAX,
                )
                .await?
            }
            None => {
                self.query(
                    op,
                    Some(GSI1.name),
                    "#gsi1pk = :pk AND #gsi1sk >= :since",
                    Some("#expires_at > :now"),
                    vec![
                        (":pk", s(keys::AUDIT_BY_TIME)),
                        (":since", since),
                        (":now", n(now)),
                    ],
                    false,
                    usize::MAX,
                )
                .await?
            }
        };
        found.iter().map(|item| audit_from_item(op, item)).collect()
    }

    async fn put_pending(&self, pending: &PendingConfirmation) -> StoreResult<()> {
        self.put("put_pending", pending_item(pending)).await
    }

    async fn take_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingConfirmation>> {
        let op = "take_pending";
        // Deleting is taking: of two concurrent deletes only one finds the live item
        // (`rules::is_live`) and gets it back.
        let condition = "attribute_exists(#pk) AND #expires_at > :now";
        let sent = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(keys::pending(id))))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(vec![(":now", n(now))]))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => match out.attributes {
                Some(item) => pending_from_item(op, &item).map(Some),
                None => Ok(None),
            },
            Err(err) if condition_failed(&err) => Ok(None),
            Err(err) => Err(self.err(op, err)),
        }
    }
}

/// Two requests (the block read, then the count): DynamoDB has no single call that
/// reads one item and conditionally updates another, and a transaction would cost more
/// than the two small calls.
impl AdmissionStore for DynamoDbStore {}

#[async_trait]
impl BlockStore for DynamoDbStore {
    async fn put_block(&self, block: &BlockRecord, audit: &AuditRecord) -> StoreResult<()> {
        let op = "put_block";
        // A block replaces the one before it: no condition to fail.
        let write = self.tx_put(op, block_item(block), None, vec![])?;
        self.write_with_audit(op, write, audit).await.map(drop)
    }

    async fn remove_block(
        &self,
        user_id: &str,
        audit: &AuditRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let op = "remove_block";
        // `BlockRecord::is_live` as the delete's condition: a block without `expires_at`
        // holds until removed.
        let write = self.tx_delete(
            op,
            keys::block(user_id),
            "attribute_exists(#pk) AND (attribute_not_exists(#expires_at) OR #expires_at > :now)",
            vec![(":now", n(now))],
        )?;
        self.write_with_audit(op, write, audit).await
    }

    async fn get_block(&self, user_id: &str, now: i64) -> StoreResult<Option<BlockRecord>> {
        let op = "get_block";
        // A consistent read: a block written by another process a moment ago counts.
        Ok(self
            .get(op, keys::block(user_id))
            .await?
            .map(|item| block_from_item(op, &item))
            .transpose()?
            .filter(|block| block.is_live(now)))
    }
}

#[async_trait]
impl DeliveryStore for DynamoDbStore {
    async fn accept_delivery(&self, effects: &DeliveryEffects, now: i64) -> StoreResult<bool> {
        let op = "accept_delivery";
        // The trait gives this write seconds only; jobs record when they were created.
        let created_at_ms = now.saturating_mul(1000);
        // One transaction may not touch an item twice: a job id repeated within the
        // delivery is the same job (the first one wins, as on a repeated enqueue).
        let mut jobs: Vec<(&str, Item)> = Vec::new();
        for job in &effects.jobs {
            if !jobs.iter().any(|(id, _)| *id == job.id) {
                jobs.push((&job.id, new_job_item(op, job, created_at_ms)?));
            }
        }
        for attempt in 0..MAX_RACES {
            // What the effects' rules depend on, read consistently and side by side.
            let run_read = async {
                match &effects.run {
                    Some(run) => self
                        .get(op, keys::run(run.id))
                        .await?
                        .map(|item| run_from_item(op, &item))
                        .transpose(),
                    None => Ok(None),
                }
            };
            let step_read = async {
                match &effects.failed_step {
                    Some(step) => self
                        .get(op, keys::failed_step(step.run_id))
                        .await?
                        .map(|item| failed_step_from_item(op, &item))
                        .transpose(),
                    None => Ok(None),
                }
            };
            let attach_read = async {
                match &effects.attach {
                    Some(attach) => {
                        self.plan_attach(op, &attach.correlation_id, attach.run_id, now)
                            .await
                    }
                    None => Ok(None),
                }
            };
            let jobs_read = try_join_all(jobs.iter().map(|(id, _)| async move {
                Ok::<_, StoreError>(self.get(op, keys::job(id)).await?.is_some())
            }));
            let (stored_run, stored_step, attach_writes, jobs_present) =
                try_join4(run_read, step_read, attach_read, jobs_read).await?;

            // Dedup: the delivery id is free (`rules::is_free`). Always item 0, so a
            // cancellation that names it means "already accepted".
            let mut items = vec![
                self.tx_put(
                    op,
                    ItemWriter::new(keys::delivery(&effects.delivery_id))
                        .n("expires_at", effects.expires_at)
                        .done(),
                    Some(FREE),
                    vec![(":now", n(now))],
                )?,
            ];
            if let Some(run) = &effects.run {
                // `RunRecord::merge` over the stored run, written only if the run is
                // still the version it was computed from.
                let merged = RunRecord::merge(stored_run.as_ref().map(|(r, _)| r), run, now);
                items.push(self.tx_put_versioned(
                    op,
                    stored_run.as_ref().map(|(_, version)| *version),
                    |version| run_item(&merged, version),
                )?);
            }
            if let Some(step) = &effects.failed_step {
                // `FailedStepRecord::replaces`, against the version it was decided on.
                if step.replaces(stored_step.as_ref().map(|(s, _)| s), now) {
                    items.push(self.tx_put_versioned(
                        op,
                        stored_step.as_ref().map(|(_, version)| *version),
                        |version| failed_step_item(step, version),
                    )?);
                }
            }
            // A refused attachment (another run got there first) is not a failure of the
            // delivery: the run is simply not this correlation's.
            items.extend(attach_writes.into_iter().flatten());
            for ((_, item), present) in jobs.iter().zip(jobs_present) {
                // A job id already present keeps its first version; a job that appears
                // between the read and the write cancels the transaction, which then
                // starts again and leaves it out.
                if !present {
                    items.push(self.tx_put(
                        op,
                        item.clone(),
                        Some("attribute_not_exists(#pk)"),
                        vec![],
                    )?);
                }
            }
            match self.transact(op, items).await? {
                Ok(()) => return Ok(true),
                Err(cancelled) if cancelled.condition_failed(0) => return Ok(false),
                Err(_) => race_pause(attempt).await,
            }
        }
        Err(contention(op))
    }

    async fn get_run(&self, id: u64, now: i64) -> StoreResult<Option<RunRecord>> {
        let op = "get_run";
        self.get_live(op, keys::run(id), now)
            .await?
            .map(|item| run_from_item(op, &item).map(|(run, _)| run))
            .transpose()
    }

    async fn recent_runs(&self, limit: usize, now: i64) -> StoreResult<Vec<RunRecord>> {
        let op = "recent_runs";
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query(
            op,
            None,
            "#pk = :pk",
            Some("#expires_at > :now"),
            vec![(":pk", s(keys::RUNS)), (":now", n(now))],
            false,
            limit,
        )
        .await?
        .iter()
        .map(|item| run_from_item(op, item).map(|(run, _)| run))
        .collect()
    }

    async fn failed_step(&self, run_id: u64, now: i64) -> StoreResult<Option<FailedStepRecord>> {
        let op = "failed_step";
        self.get_live(op, keys::failed_step(run_id), now)
            .await?
            .map(|item| failed_step_from_item(op, &item).map(|(step, _)| step))
            .transpose()
    }
}

#[async_trait]
impl VerificationStore for DynamoDbStore {
    async fn put_verification(
        &self,
        verification: &VerificationRecord,
        now: i64,
    ) -> StoreResult<VerificationRecord> {
        let op = "put_verification";
        let item = verification_item(op, verification)?;
        let key = keys::verification(verification.run_id, verification.run_attempt);
        for attempt in 0..MAX_RACES {
            // The first live verification of the attempt wins (`rules::is_free`).
            if self
                .put_if(op, item.clone(), FREE, vec![(":now", n(now))])
                .await?
            {
                return Ok(verification.clone());
            }
            if let Some(stored) = self.get_live(op, key.clone(), now).await? {
                return verification_from_item(op, &stored);
            }
            // The winner expired or vanished between the two calls: try again.
            race_pause(attempt).await;
        }
        Err(contention(op))
    }

    async fn get_verification(
        &self,
        run_id: u64,
        run_attempt: u32,
        now: i64,
    ) -> StoreResult<Option<VerificationRecord>> {
        let op = "get_verification";
        self.get_live(op, keys::verification(run_id, run_attempt), now)
            .await?
            .map(|item| verification_from_item(op, &item))
            .transpose()
    }
}

#[async_trait]
impl CorrelationStore for DynamoDbStore {
    async fn put_correlation(
        &self,
        correlation: &CorrelationRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let op = "put_correlation";
        // The id is free (`rules::is_free`): the write is the claim to dispatch.
        let mut items = vec![self.tx_put(
            op,
            correlation_item(correlation),
            Some(FREE),
            vec![(":now", n(now))],
        )?];
        if correlation.kind == CorrelationKind::Deploy {
            // The deploy-by-time entry for `latest_deploy_correlation`.
            items.push(self.tx_put(op, deploy_correlation_item(correlation), None, vec![])?);
        }
        if let Some(run_id) = correlation.run_id {
            // Born attached: the run must not be another live correlation's.
            items.push(self.tx_put(
                op,
                run_correlation_item(run_id, correlation),
                Some(FREE),
                vec![(":now", n(now))],
            )?);
        }
        for attempt in 0..MAX_RACES {
            match self.transact(op, items.clone()).await? {
                Ok(()) => return Ok(true),
                Err(cancelled) if cancelled.0.iter().any(|c| c == "ConditionalCheckFailed") => {
                    return Ok(false);
                }
                Err(_) => race_pause(attempt).await,
            }
        }
        Err(contention(op))
    }

    async fn get_correlation(&self, id: &str, now: i64) -> StoreResult<Option<CorrelationRecord>> {
        let op = "get_correlation";
        self.get_live(op, keys::correlation(id), now)
            .await?
            .map(|item| correlation_from_item(op, &item))
            .transpose()
    }

    async fn correlation_for_run(
        &self,
        run_id: u64,
        now: i64,
    ) -> StoreResult<Option<CorrelationRecord>> {
        let op = "correlation_for_run";
        let Some(holder) = self
            .get_live(op, keys::run_correlation(run_id), now)
            .await?
        else {
            return Ok(None);
        };
        let id = ItemReader::new(op, "run correlation", &holder).s("corr_id")?;
        let correlation = self
            .get_live(op, keys::correlation(&id), now)
            .await?
            .map(|item| correlation_from_item(op, &item))
            .transpose()?;
        Ok(correlation.filter(|c| c.run_id == Some(run_id)))
    }

    async fn attach_run(&self, id: &str, run_id: u64, now: i64) -> StoreResult<bool> {
        let op = "attach_run";
        for attempt in 0..MAX_RACES {
            let Some(writes) = self.plan_attach(op, id, run_id, now).await? else {
                return Ok(false);
            };
            match self.transact(op, writes.into()).await? {
                Ok(()) => return Ok(true),
                // Something it was decided on changed: decide again on a fresh read.
                Err(_) => race_pause(attempt).await,
            }
        }
        Err(contention(op))
    }

    async fn latest_deploy_correlation(&self, now: i64) -> StoreResult<Option<CorrelationRecord>> {
        let op = "latest_deploy_correlation";
        // Newest first; an entry whose correlation has since been replaced (same id, a
        // later creation) is skipped: the replacement has an entry of its own.
        let entries = self
            .query(
                op,
                None,
                "#pk = :pk",
                Some("#expires_at > :now"),
                vec![(":pk", s(keys::DEPLOY_CORRELATIONS)), (":now", n(now))],
                false,
                usize::MAX,
            )
            .await?;
        for entry in &entries {
            let r = ItemReader::new(op, "deploy correlation entry", entry);
            let id = r.s("corr_id")?;
            let created_at_ms: i64 = r.n("created_at_ms")?;
            if let Some(item) = self.get_live(op, keys::correlation(&id), now).await? {
                let c = correlation_from_item(op, &item)?;
                if c.kind == CorrelationKind::Deploy && c.created_at_ms == created_at_ms {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl LockStore for DynamoDbStore {
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let item = ItemWriter::new(keys::lock(name))
            .s("name", name)
            .s("owner", owner)
            .n("expires_at", expires_at)
            .done();
        // `LockRecord::can_take`: free, expired, or already this owner's.
        self.put_if(
            "acquire_lock",
            item,
            &format!("{FREE} OR #owner = :owner"),
            vec![(":now", n(now)), (":owner", s(owner))],
        )
        .await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> StoreResult<()> {
        let op = "release_lock";
        // Only the holder's release counts; releasing a lock someone else took is a no-op.
        let condition = "#owner = :owner";
        let sent = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(keys::lock(name))))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(vec![(":owner", s(owner))]))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(self.err(op, err)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Creating the table (`valine init`)
// ---------------------------------------------------------------------------------------

/// Whether `valine init` made something or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Found,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Found => "found",
        }
    }
}

/// What [`create_table_if_missing`] did, part by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    pub table: String,
    pub table_change: Change,
    /// Each index of [`TABLE_SCHEMA`], in order.
    pub indexes: Vec<(&'static str, Change)>,
    /// `None` when TTL was not asked for (tests only).
    pub ttl: Option<Change>,
}

impl InitOutcome {
    /// One human-readable line per part, for `valine init` to print.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "DynamoDB table {}: {} (key pk/sk, on-demand)",
            self.table,
            self.table_change.word()
        )];
        for (index, change) in &self.indexes {
            lines.push(format!("index {index}: {}", change.word()));
        }
        if let Some(ttl) = self.ttl {
            let what = match ttl {
                Change::Created => "enabled",
                Change::Found => "already enabled",
            };
            lines.push(format!("TTL on {}: {what}", TABLE_SCHEMA.ttl_attribute));
        }
        lines
    }
}

/// How long `valine init` waits for a new table or index to become active (an index on
/// a large table backfills for a while).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Creates the table with its indexes and TTL where missing, waits until it is active,
/// and reports what it created and what it found. Idempotent: on a complete table it
/// changes nothing. An index missing from an existing table is added. A table whose key
/// schema differs is an error: nothing is changed on it.
pub async fn create_table_if_missing(client: &Client, table: &str) -> StoreResult<InitOutcome> {
    ensure_table(client, table, true).await
}

/// [`create_table_if_missing`], with TTL left off when `ttl` is false: the conformance
/// tests write records that expired long ago (a fixed past clock), which DynamoDB Local
/// would otherwise delete under them.
pub(crate) async fn ensure_table(
    client: &Client,
    table: &str,
    ttl: bool,
) -> StoreResult<InitOutcome> {
    let op = "init";
    let table_change = match describe(client, table).await? {
        Some(description) => {
            check_key_schema(table, description.key_schema())?;
            Change::Found
        }
        None => {
            create_table(client, table).await?;
            Change::Created
        }
    };
    let mut description = wait_active(client, table, None).await?;
    let mut indexes = Vec::new();
    for index in TABLE_SCHEMA.indexes {
        let present = description
            .global_secondary_indexes()
            .iter()
            .any(|gsi| gsi.index_name() == Some(index.name));
        if present {
            // An index made with the table was created along with it.
            indexes.push((index.name, table_change));
            continue;
        }
        // DynamoDB adds one index per UpdateTable call.
        client
            .update_table()
            .table_name(table)
            .set_attribute_definitions(Some(attribute_definitions(op)?))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(
                        aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                            .index_name(index.name)
                            .set_key_schema(Some(index_key_schema(op, index)?))
                            .projection(index_projection(index))
                            .build()
                            .map_err(|e| build_error(op, e))?,
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(op, table, e))?;
        description = wait_active(client, table, Some(index.name)).await?;
        indexes.push((index.name, Change::Created));
    }
    let ttl = if ttl {
        Some(ensure_ttl(client, table).await?)
    } else {
        None
    };
    Ok(InitOutcome {
        table: table.to_owned(),
        table_change,
        indexes,
        ttl,
    })
}

/// What `valine doctor` reads about the table (control-plane reads only): the indexes
/// of [`TABLE_SCHEMA`] it lacks and whether TTL deletes expired items. A missing table
/// is [`StoreError::NotInitialised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHealth {
    pub missing_indexes: Vec<&'static str>,
    pub ttl_on: bool,
}

pub async fn table_health(client: &Client, table: &str) -> StoreResult<TableHealth> {
    let op = "inspect";
    let Some(description) = describe(client, table).await? else {
        return Err(StoreError::NotInitialised {
            op,
            source: format!("DynamoDB table `{table}` does not exist").into(),
        });
    };
    let missing_indexes = TABLE_SCHEMA
        .indexes
        .iter()
        .filter(|index| {
            !description
                .global_secondary_indexes()
                .iter()
                .any(|gsi| gsi.index_name() == Some(index.name))
        })
        .map(|index| index.name)
        .collect();
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error(op, table, e))?;
    let ttl_on = ttl.time_to_live_description().is_some_and(|ttl| {
        matches!(
            ttl.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && ttl.attribute_name() == Some(TABLE_SCHEMA.ttl_attribute)
    });
    Ok(TableHealth {
        missing_indexes,
        ttl_on,
    })
}

async fn describe(
    client: &Client,
    table: &str,
) -> StoreResult<Option<aws_sdk_dynamodb::types::TableDescription>> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ResourceNotFoundException") =>
        {
            Ok(None)
        }
        Err(err) => Err(sdk_error("init", table, err)),
    }
}

fn key_schema_element(
    op: &'static str,
    name: &str,
    kind: KeyType,
) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| build_error(op, e))
}

fn index_key_schema(op: &'static str, index: &IndexSchema) -> StoreResult<Vec<KeySchemaElement>> {
    Ok(vec![
        key_schema_element(op, index.partition_key, KeyType::Hash)?,
        key_schema_element(op, index.sort_key, KeyType::Range)?,
    ])
}

fn index_projection(index: &IndexSchema) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(index.projection))
        .build()
}

/// Every key attribute of the table and its indexes: all strings.
fn attribute_definitions(op: &'static str) -> StoreResult<Vec<AttributeDefinition>> {
    TABLE_SCHEMA
        .key_attributes()
        .into_iter()
        .map(|name| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(TABLE_SCHEMA.key_attribute_type))
                .build()
                .map_err(|e| build_error(op, e))
        })
        .collect()
}

async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let op = "init";
    let mut indexes = Vec::new();
    for index in TABLE_SCHEMA.indexes {
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(index_key_schema(op, index)?))
                .projection(index_projection(index))
                .build()
                .map_err(|e| build_error(op, e))?,
        );
    }
    let sent = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(TABLE_SCHEMA.billing_mode))
        .set_attribute_definitions(Some(attribute_definitions(op)?))
        .key_schema(key_schema_element(
            op,
            TABLE_SCHEMA.partition_key,
            KeyType::Hash,
        )?)
        .key_schema(key_schema_element(
            op,
            TABLE_SCHEMA.sort_key,
            KeyType::Range,
        )?)
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(()),
        // Another `valine init` created it a moment ago: waiting for it to become
        // active is all that is left.
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ResourceInUseException") =>
        {
            Ok(())
        }
        Err(err) => Err(sdk_error(op, table, err)),
    }
}

/// The table must be keyed `pk`/`sk` exactly; anything else is another application's
/// table, which `valine init` must not touch.
fn check_key_schema(table: &str, schema: &[KeySchemaElement]) -> StoreResult<()> {
    let has = |name: &str, kind: KeyType| {
        schema
            .iter()
            .any(|k| k.attribute_name() == name && *k.key_type() == kind)
    };
    if schema.len() == 2
        && has(TABLE_SCHEMA.partition_key, KeyType::Hash)
        && has(TABLE_SCHEMA.sort_key, KeyType::Range)
    {
        return Ok(());
    }
    Err(StoreError::Unsupported {
        op: "init",
        reason: format!(
            "DynamoDB table `{table}` exists with another key schema (Valine needs partition \
             key `{}` and sort key `{}`): choose another table name",
            TABLE_SCHEMA.partition_key, TABLE_SCHEMA.sort_key
        )
        .into(),
    })
}

/// Waits until the table (and `index`, or every index) is active.
async fn wait_active(
    client: &Client,
    table: &str,
    index: Option<&str>,
) -> StoreResult<aws_sdk_dynamodb::types::TableDescription> {
    let give_up = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    let mut pause = Duration::from_millis(100);
    loop {
        if let Some(description) = describe(client, table).await? {
            let table_active = description.table_status() == Some(&TableStatus::Active);
            let indexes_active = description
                .global_secondary_indexes()
                .iter()
                .filter(|gsi| index.is_none_or(|name| gsi.index_name() == Some(name)))
                .all(|gsi| gsi.index_status() == Some(&IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(description);
            }
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(StoreError::unavailable(
                "init",
                format!("DynamoDB table `{table}` did not become active within {ACTIVE_TIMEOUT:?}"),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Turns TTL on for `expires_at` unless it is on already.
async fn ensure_ttl(client: &Client, table: &str) -> StoreResult<Change> {
    let op = "init";
    let out = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error(op, table, e))?;
    if let Some(ttl) = out.time_to_live_description() {
        let status = ttl.time_to_live_status();
        let on = matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
        match ttl.attribute_name() {
            Some(name) if on && name == TABLE_SCHEMA.ttl_attribute => return Ok(Change::Found),
            Some(name) if on => {
                return Err(StoreError::Unsupported {
                    op,
                    reason: format!(
                        "DynamoDB table `{table}` has TTL on `{name}`; Valine needs it on `{}`",
                        TABLE_SCHEMA.ttl_attribute
                    )
                    .into(),
                });
            }
            _ => {}
        }
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TABLE_SCHEMA.ttl_attribute)
                .build()
                .map_err(|e| build_error(op, e))?,
        )
        .send()
        .await
        .map_err(|e| sdk_error(op, table, e))?;
    Ok(Change::Created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamodb_local::DynamoDbLocal;
    use crate::store::{SharedStore, StepStatus, TraceStep, conformance};

    /// A fresh table on the shared DynamoDB Local, created as `valine init` creates it
    /// (TTL left off: see [`ensure_table`]). Tables live as long as the in-memory server.
    async fn fresh_store() -> ((), SharedStore) {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-test");
        let client = local.client();
        ensure_table(&client, &table, false)
            .await
            .expect("create table");
        ((), Arc::new(DynamoDbStore::new(client, &table)))
    }

    mod conformance_suite {
        use super::*;
        crate::store_conformance_suite!(fresh_store);
    }

    /// A fresh table on moto, the second DynamoDB implementation: the same suite, so
    /// that nothing passes only because of one server's quirks. moto does not
    /// serialise concurrent requests (two racing `ADD`s or conditional updates can both
    /// apply), so its run leaves out the races, which DynamoDB Local runs.
    async fn fresh_moto_store() -> ((), SharedStore) {
        let moto = DynamoDbLocal::moto();
        let table = DynamoDbLocal::unique_table("valine-test");
        let client = moto.client();
        ensure_table(&client, &table, false)
            .await
            .expect("create table");
        ((), Arc::new(DynamoDbStore::new(client, &table)))
    }

    mod conformance_suite_on_moto {
        use super::*;
        crate::store_conformance_suite!(fresh_moto_store, without_concurrency);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_on_one_table_share_records() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-shared");
        ensure_table(&local.client(), &table, false)
            .await
            .expect("create table");
        let a = DynamoDbStore::connect(local.client(), &table)
            .await
            .expect("open a");
        let b = DynamoDbStore::connect(local.client(), &table)
            .await
            .expect("open b");
        conformance::shared_between_instances(Arc::new(a), Arc::new(b)).await;
    }

    #[tokio::test]
    async fn init_is_idempotent_and_reports_what_it_did() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-init");
        let client = local.client();
        let first = create_table_if_missing(&client, &table)
            .await
            .expect("init");
        assert_eq!(first.table_change, Change::Created);
        assert_eq!(
            first.indexes,
            vec![("gsi1", Change::Created), ("gsi2", Change::Created)]
        );
        assert_eq!(first.ttl, Some(Change::Created));
        let second = create_table_if_missing(&client, &table)
            .await
            .expect("init again");
        assert_eq!(second.table_change, Change::Found);
        assert!(second.indexes.iter().all(|(_, c)| *c == Change::Found));
        assert_eq!(second.ttl, Some(Change::Found));
        let lines = second.lines();
        assert!(lines[0].contains(&table) && lines[0].contains("found"));
        assert!(lines.iter().any(|l| l.contains("expires_at")));

        // The table as created matches the one description of it.
        let description = describe(&client, &table)
            .await
            .expect("describe")
            .expect("exists");
        check_key_schema(&table, description.key_schema()).expect("pk/sk");
        let mut indexes: Vec<_> = description
            .global_secondary_indexes()
            .iter()
            .map(|gsi| {
                let keys: Vec<_> = gsi
                    .key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_owned())
                    .collect();
                (gsi.index_name().unwrap_or_default().to_owned(), keys)
            })
            .collect();
        indexes.sort();
        let expected: Vec<_> = TABLE_SCHEMA
            .indexes
            .iter()
            .map(|i| {
                (
                    i.name.to_owned(),
                    vec![i.partition_key.to_owned(), i.sort_key.to_owned()],
                )
            })
            .collect();
        assert_eq!(indexes, expected);

        // The store opens on it.
        DynamoDbStore::connect(client, &table)
            .await
            .expect("open")
            .ping()
            .await
            .expect("ping");
    }

    #[tokio::test]
    async fn init_adds_a_missing_index() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-partial");
        let client = local.client();
        // An older table: the key schema only.
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(
                attribute_definitions("test").expect("defs")[..2].to_vec(),
            ))
            .key_schema(key_schema_element("test", "pk", KeyType::Hash).expect("pk"))
            .key_schema(key_schema_element("test", "sk", KeyType::Range).expect("sk"))
            .send()
            .await
            .expect("create bare table");
        let outcome = ensure_table(&client, &table, false).await.expect("init");
        assert_eq!(outcome.table_change, Change::Found);
        assert_eq!(
            outcome.indexes,
            vec![("gsi1", Change::Created), ("gsi2", Change::Created)]
        );
        assert_eq!(outcome.ttl, None);
    }

    #[tokio::test]
    async fn init_refuses_a_table_with_another_key_schema() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-foreign");
        let client = local.client();
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("def"),
            )
            .key_schema(key_schema_element("test", "id", KeyType::Hash).expect("id"))
            .send()
            .await
            .expect("create foreign table");
        let err = create_table_if_missing(&client, &table)
            .await
            .expect_err("foreign table");
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn missing_table_names_it_and_valine_init() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-missing");
        let err = DynamoDbStore::connect(local.client(), &table)
            .await
            .expect_err("no table");
        assert!(matches!(err, StoreError::NotInitialised { op: "open", .. }));
        assert!(err.needs_init());
        let text = err.to_string();
        assert!(
            text.contains(&table) && text.contains("valine init"),
            "{text}"
        );
        assert!(!err.is_retryable());

        // On a store whose table went away, operations fail the same way, with the
        // SDK error kept as the cause.
        let store = DynamoDbStore::new(local.client(), &table);
        let err = store.get_trace("t", 0).await.expect_err("no table");
        assert!(!err.is_retryable());
        let source = std::error::Error::source(&err).expect("source");
        let missing = source
            .downcast_ref::<TableMissing>()
            .expect("table missing");
        assert_eq!(missing.table, table);
        assert!(std::error::Error::source(missing).is_some());
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_retryable() {
        // Nothing listens on port 9 (discard) of loopback in the test environment.
        let client = crate::store::dynamodb_local::client_for("http://127.0.0.1:9");
        let store = DynamoDbStore::new(client, "t");
        let err = store.ping().await.expect_err("no server");
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.op(), "ping");
    }

    #[tokio::test]
    async fn malformed_item_is_corrupt_not_a_panic() {
        let local = DynamoDbLocal::shared();
        let table = DynamoDbLocal::unique_table("valine-corrupt");
        let client = local.client();
        ensure_table(&client, &table, false).await.expect("table");
        let store = DynamoDbStore::new(client, &table);
        let mut item = key_item(keys::job("j1"));
        item.insert("id".into(), s("j1"));
        item.insert("payload".into(), s("{not json"));
        store.put("test", item).await.expect("put");
        let err = store.get_job("j1").await.expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!err.is_retryable());
        // The message names the attribute, never the stored value.
        assert!(!err.to_string().contains("not json"));
    }

    #[tokio::test]
    async fn delivery_beyond_the_transaction_limit_is_refused_whole() {
        let ((), store) = fresh_store().await;
        let jobs = (0..MAX_TRANSACTION_ITEMS)
            .map(|i| NewJob {
                id: format!("j{i}"),
                payload: serde_json::json!({}),
                run_after_ms: 0,
                deadline_ms: 1,
                trace_id: None,
            })
            .collect();
        let effects = DeliveryEffects {
            delivery_id: "d1".into(),
            expires_at: 10,
            jobs,
            ..Default::default()
        };
        let err = store
            .accept_delivery(&effects, 0)
            .await
            .expect_err("too big");
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(store.get_job("j0").await.expect("get").is_none());
    }

    // Pure mapping: item <-> record.

    fn sample_trace() -> TraceRecord {
        let mut options = serde_json::Map::new();
        options.insert("env".into(), serde_json::json!("prod"));
        TraceRecord {
            id: "t1".into(),
            user_id: "u1".into(),
            command: "status".into(),
            options,
            started_at_ms: 1_700_000_000_123,
            steps: vec![TraceStep {
                name: "authorize".into(),
                status: StepStatus::Ok,
                duration_ms: 3,
                detail: Some("ok".into()),
            }],
            duration_ms: Some(12),
            outcome: Some(Outcome::RateLimited),
            error: None,
            links: vec!["https://x".into()],
            expires_at: 1_700_600_000,
        }
    }

    #[test]
    fn trace_item_round_trips_and_indexes_by_user() {
        let trace = sample_trace();
        let item = trace_item("t", &trace).expect("encode");
        assert_eq!(trace_from_item("t", &item).expect("decode"), trace);
        assert_eq!(item["pk"], s("TRACE#t1"));
        assert_eq!(item["gsi1pk"], s("USERTRACE#u1"));
        assert_eq!(item["gsi1sk"], s("00000001700000000123#t1"));
        assert_eq!(item["outcome"], s("rate_limited"));
        assert!(!item.contains_key("error"), "None is left out");
    }

    #[test]
    fn job_item_round_trips_and_queues_by_due_time() {
        let new = NewJob {
            id: "j1".into(),
            payload: serde_json::json!({"kind": "x", "n": [1, 2]}),
            run_after_ms: 42,
            deadline_ms: 99,
            trace_id: None,
        };
        let item = new_job_item("t", &new, 7).expect("encode");
        let job = job_from_item("t", &item).expect("decode");
        assert_eq!(
            job,
            JobRecord {
                id: "j1".into(),
                payload: new.payload.clone(),
                state: JobState::Pending,
                attempts: 0,
                run_after_ms: 42,
                deadline_ms: 99,
                lease_owner: None,
                lease_until_ms: None,
                last_error: None,
                trace_id: None,
                created_at_ms: 7,
                expires_at: None,
            }
        );
        assert_eq!(item["gsi1pk"], s("JOBQ"));
        assert_eq!(item["gsi1sk"], s("00000000000000000042#j1"));
        assert_eq!(item["created_key"], s("00000000000000000007#j1"));
    }

    #[test]
    fn padded_keys_sort_as_numbers() {
        let mut keys = vec![
            keys::job_due(1_000, "b"),
            keys::job_due(999, "z"),
            keys::job_due(1_000, "a"),
            keys::job_due(-5, "neg"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                keys::job_due(-5, "neg"),
                keys::job_due(999, "z"),
                keys::job_due(1_000, "a"),
                keys::job_due(1_000, "b"),
            ]
        );
        // The claim bound `< padded(now + 1)` includes every entry due at `now`.
        assert!(keys::job_due(1_000, "zzz") < padded(1_001));
        assert!(keys::job_due(1_001, "") >= padded(1_001));
        assert_eq!(keys::run(5).1, "00000000000000000005");
        assert!(keys::run(10).1 > keys::run(9).1);
    }

    #[test]
    fn records_round_trip() {
        let run = RunRecord {
            id: u64::MAX,
            workflow_id: 3,
            workflow_name: None,
            status: "queued".into(),
            conclusion: Some("success".into()),
            branch: None,
            head_sha: Some("abc".into()),
            run_attempt: 2,
            html_url: None,
            display_title: Some("t".into()),
            created_at: None,
            updated_at: Some("u".into()),
            expires_at: 9,
        };
        assert_eq!(
            run_from_item("t", &run_item(&run, 4)).expect("run"),
            (run, 4)
        );
        let step = FailedStepRecord {
            run_id: 8,
            run_attempt: 1,
            job_id: 2,
            job_name: "build".into(),
            step_name: None,
            html_url: Some("h".into()),
            expires_at: 5,
        };
        assert_eq!(
            failed_step_from_item("t", &failed_step_item(&step, 1)).expect("step"),
            (step, 1)
        );
        let audit = AuditRecord {
            id: "a".into(),
            at_ms: 5,
            user_id: "u".into(),
            action: "set X".into(),
            old_fingerprint: None,
            new_fingerprint: Some("f".into()),
            trace_id: None,
            dry_run: true,
            expires_at: 6,
        };
        let item = audit_item(&audit);
        assert_eq!(audit_from_item("t", &item).expect("audit"), audit);
        assert_eq!(item["gsi2pk"], s("AUDITUSER#u"));
        let setting = SettingRecord {
            key: "K".into(),
            value: "v".into(),
            updated_by: "u".into(),
            updated_at_ms: 1,
        };
        assert_eq!(
            setting_from_item("t", &setting_item("K", &setting)).expect("setting"),
            setting
        );
        let pending = PendingConfirmation {
            id: "p".into(),
            user_id: "u".into(),
            key: "K".into(),
            old_value: None,
            new_value: Some("n".into()),
            expires_at: 3,
        };
        assert_eq!(
            pending_from_item("t", &pending_item(&pending)).expect("pending"),
            pending
        );
        let correlation = CorrelationRecord {
            id: "c".into(),
            kind: CorrelationKind::Diagnose,
            requester: "r".into(),
            channel_id: None,
            application_id: Some("a".into()),
            interaction_token: Some("secret".into()),
            token_expires_at_ms: 4,
            wait: false,
            api_base: None,
            run_id: Some(12),
            created_at_ms: 2,
            expires_at: 3,
        };
        assert_eq!(
            correlation_from_item("t", &correlation_item(&correlation)).expect("correlation"),
            correlation
        );
        let verification = VerificationRecord {
            run_id: 1,
            run_attempt: 2,
            passed: false,
            report: serde_json::json!({"content": "x"}),
            created_at_ms: 3,
            expires_at: 4,
        };
        assert_eq!(
            verification_from_item("t", &verification_item("t", &verification).expect("encode"))
                .expect("verification"),
            verification
        );
    }

    #[test]
    fn malformed_attributes_are_corrupt_and_name_the_attribute_only() {
        let mut item = trace_item("t", &sample_trace()).expect("encode");
        item.insert("started_at_ms".into(), s("secret-value"));
        let err = trace_from_item("get_trace", &item).expect_err("wrong type");
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let text = err.to_string();
        assert!(
            text.contains("started_at_ms") && !text.contains("secret-value"),
            "{text}"
        );

        let mut item = trace_item("t", &sample_trace()).expect("encode");
        item.remove("user_id");
        assert!(matches!(
            trace_from_item("get_trace", &item),
            Err(StoreError::Corrupt { .. })
        ));

        let mut item = trace_item("t", &sample_trace()).expect("encode");
        item.insert("outcome".into(), s("exploded"));
        assert!(matches!(
            trace_from_item("get_trace", &item),
            Err(StoreError::Corrupt { .. })
        ));

        let mut item = audit_item(&AuditRecord {
            id: "a".into(),
            at_ms: 1,
            user_id: "u".into(),
            action: "x".into(),
            old_fingerprint: None,
            new_fingerprint: None,
            trace_id: None,
            dry_run: false,
            expires_at: 1,
        });
        item.insert("at_ms".into(), n("1.5"));
        assert!(matches!(
            audit_from_item("list_audit", &item),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn oversized_items_are_refused_with_a_clear_error() {
        let mut trace = sample_trace();
        trace.error = Some("x".repeat(MAX_ITEM_BYTES + 1));
        let err = trace_item("put_trace", &trace).expect_err("too big");
        assert!(
            matches!(err, StoreError::Encode { what: "trace", .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert!(!err.to_string().contains("xxx"));
    }

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        let text = "é".repeat(10);
        assert_eq!(truncated(&text, 5), "éé");
        assert_eq!(truncated("short", 100), "short");
    }

    #[test]
    fn expression_names_cover_every_placeholder() {
        let found = names(&[
            "#state = :running AND #lease_owner = :owner",
            "SET #a_b = :x",
        ])
        .expect("names");
        assert_eq!(found.len(), 3);
        assert_eq!(found["#state"], "state");
        assert_eq!(found["#lease_owner"], "lease_owner");
        assert_eq!(found["#a_b"], "a_b");
        assert_eq!(names(&["attribute_exists(pk)"]), None);
    }

    #[test]
    fn liveness_follows_the_rule() {
        let item = ItemWriter::new(keys::lock("l")).n("expires_at", 10).done();
        assert!(item_live(&item, 9));
        assert!(!item_live(&item, 10));
        assert!(item_live(&key_item(keys::lock("l")), i64::MAX));
    }

    #[test]
    fn schema_lists_every_index_key_as_a_string_attribute() {
        let defs = attribute_definitions("t").expect("defs");
        let names: Vec<_> = defs.iter().map(|d| d.attribute_name()).collect();
        assert_eq!(names, ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]);
        assert!(
            defs.iter()
                .all(|d| d.attribute_type() == &ScalarAttributeType::S)
        );
        assert_eq!(TABLE_SCHEMA.ttl_attribute, "expires_at");
        // The schema's strings are names the SDK knows, not `Unknown` variants.
        for index in TABLE_SCHEMA.indexes {
            assert_eq!(
                index_projection(index).projection_type(),
                Some(&ProjectionType::All)
            );
        }
        assert_eq!(
            BillingMode::from(TABLE_SCHEMA.billing_mode),
            BillingMode::PayPerRequest
        );
    }
}
