//! The store: every record Valine keeps, behind one interface with one backend per engine.
//!
//! Use cases see only the traits below, grouped by what they serve (traces, jobs, rate
//! limits, settings and audit, webhook deliveries and runs, locks, confirmations,
//! correlations of dispatched runs). Each
//! operation that must be atomic (rate-limit count, delivery dedup with its effects, a
//! setting with its audit record, claiming a job, consuming a confirmation) is a single
//! method, so a backend implements it as one conditional or transactional write.
//!
//! What such a write decides (does a run event move the stored run forward, may this owner
//! take the lock, is this job claimable) is a pure function of the records in [`rules`],
//! so every backend applies the same rules and only maps rows and keeps writes atomic.
//!
//! Times are passed in by the caller (`now`), never read inside a backend: tests control
//! the clock, and the DynamoDB backend computes nothing on its own.
//!
//! # Layout on one DynamoDB table (`valine-orchestrator-runs-{STAGE}`)
//!
//! Partition key `pk`, sort key `sk` (both strings), TTL attribute `expires_at`, on-demand
//! capacity. Numbers in keys are zero-padded to 20 digits (`{n:020}`) so string order is
//! numeric order. Two overloaded, sparse global secondary indexes (`gsi1`: `gsi1pk`/`gsi1sk`,
//! `gsi2`: `gsi2pk`/`gsi2sk`, all attributes projected) serve the queries the keys cannot;
//! `dynamodb::TABLE_SCHEMA` is the one description of the table.
//!
//! | record | `pk` | `sk` | indexes and writes |
//! |---|---|---|---|
//! | trace | `TRACE#{id}` | `TRACE` | `gsi1`: `USERTRACE#{user}` / `{started_at_ms:020}#{id}` (a user's newest, queried descending); `gsi2`: `TRACES` / `{started_at_ms:020}#{id}` (everyone's, for `valine traces`) |
//! | job | `JOB#{id}` | `JOB` | put on `attribute_not_exists(pk)`; while pending or running `gsi1`: `JOBQ` / `{due_ms:020}#{id}` (`run_after_ms` pending, `lease_until_ms + 1` running: the claim queue, each claim a conditional update); failed `gsi1`: `JOBFAILED` / `{created_at_ms:020}#{id}`; running `gsi2`: `LEASE#{owner}` / `{id}` (release at shutdown) |
//! | rate window | `RATE#{user}` | `{window_start}` | `ADD count :1`, returning the new count |
//! | setting | `SETTING` | `{key}` | transaction with its audit item, conditioned on the expected value |
//! | audit | `AUDIT#{id}` | `AUDIT` | put on `attribute_not_exists(pk)` (a repeated id keeps the first); `gsi1`: `AUDIT` / `{at_ms:020}#{id}`; `gsi2`: `AUDITUSER#{user}` / `{at_ms:020}#{id}` |
//! | delivery | `DELIVERY#{id}` | `DELIVERY` | `attribute_not_exists(pk) OR expires_at <= :now` in the effects' transaction |
//! | run | `RUN` | `{run_id:020}` | merged from a consistent read, put on `ver = :read_version`; recent runs = Query descending |
//! | lock | `LOCK#{name}` | `LOCK` | put on free, expired or same owner; delete on same owner |
//! | correlation | `CORR#{id}` | `CORR` | put on `attribute_not_exists(pk) OR expires_at <= :now` |
//! | a deploy correlation by time | `CORRDEPLOY` | `{created_at_ms:020}#{id}` | put with the correlation in one transaction; newest live = Query descending |
//! | a run's correlation | `CORRRUN#{run_id:020}` | `CORRRUN` | `attach_run`: one transaction updating the correlation (live, same creation, `attribute_not_exists(run_id) OR run_id = :run`) and putting this item as read (absent, or the holder the rule allowed) |
//! | failing job and step of a run | `RUNFAIL#{run_id:020}` | `RUNFAIL` | in the delivery's transaction, put on `ver = :read_version` when it replaces the stored one |
//! | block of a user (`/block`) | `BLOCK#{user}` | `BLOCK` | put with its audit item in one transaction; removed by a delete on `attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at > :now)` in a transaction with its audit item; read consistently, so every process honours it at once |
//! | pending confirmation | `PENDING#{id}` | `PENDING` | consumed by a delete on `expires_at > :now` returning the old item |
//! | health heartbeat | `HEALTH` | `HEALTH` | overwritten by every health check, which so proves the table can be written |
//! | verification of a run attempt | `VERIFY#{run_id:020}#{attempt}` | `VERIFY` | put on `attribute_not_exists(pk) OR expires_at <= :now`, then a consistent read |
//!
//! Every record that expires carries `expires_at` (epoch seconds, the DynamoDB TTL
//! attribute); reads ignore expired records, so deletion is housekeeping only
//! ([`HousekeepingStore`], `valine cleanup`).

#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(all(feature = "aws", any(test, feature = "conformance")))]
pub mod dynamodb_local;
pub mod rules;
pub mod sqlite;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Retention periods, in seconds (see `docs/design.md#retention`).
pub mod retention {
    pub const TRACE: i64 = 7 * 24 * 3600;
    pub const DELIVERY: i64 = 4 * 24 * 3600;
    pub const RUN: i64 = 30 * 24 * 3600;
    pub const AUDIT: i64 = 30 * 24 * 3600;
    pub const RATE_WINDOW: i64 = 2 * 60;
    pub const FAILED_JOB: i64 = 7 * 24 * 3600;
    /// As long as the run it follows is kept.
    pub const CORRELATION: i64 = RUN;
    pub const FAILED_STEP: i64 = RUN;
}

/// The error a backend hands on: anything the engine or a codec reported.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors a backend reports, each naming the operation (`op`, the method of the store
/// traits) and keeping the error that caused it as its [`source`](std::error::Error::source).
///
/// The `Display` text never contains record contents (some records hold credentials): it
/// names the operation and what failed. A source may quote an engine's message, which can
/// carry a stored value that failed to decode, so log the chain only where such values may
/// appear.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed the operation. `retryable` is the backend's judgement: busy,
    /// locked, I/O, throttling or connection failures may pass; a constraint the write
    /// breaks, a misused API or a damaged database will not.
    #[error("store {op} failed")]
    Backend {
        op: &'static str,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// The engine failed for a reason an operator can act on: the message says what
    /// (the endpoint cannot be reached, credentials refused, throttled past the retries)
    /// and names the table or file.
    #[error("store {op}: {problem}")]
    Failed {
        op: &'static str,
        problem: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// The task that ran the operation panicked or was cancelled before it finished.
    #[error("store {op} did not finish")]
    Task {
        op: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A stored record cannot be decoded: reading it again gives the same result.
    #[error("store {op}: stored {what} is unreadable")]
    Corrupt {
        op: &'static str,
        what: std::borrow::Cow<'static, str>,
        #[source]
        source: BoxError,
    },
    /// A value the caller gave cannot be encoded for storage: a bug, not an outage.
    #[error("store {op}: {what} cannot be stored")]
    Encode {
        op: &'static str,
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The store cannot serve the operation now, with no underlying error to keep.
    #[error("store {op} unavailable: {reason}")]
    Unavailable {
        op: &'static str,
        reason: std::borrow::Cow<'static, str>,
    },
    /// The store was never prepared (a DynamoDB table that does not exist): `valine
    /// init` creates it; waiting does not help.
    #[error("store {op}: {source}")]
    NotInitialised {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// This store can never serve the operation as configured (wrong engine, a schema
    /// newer than this build): waiting does not help.
    #[error("store {op} unsupported: {reason}")]
    Unsupported {
        op: &'static str,
        reason: std::borrow::Cow<'static, str>,
    },
}

impl StoreError {
    pub fn corrupt(
        op: &'static str,
        what: impl Into<std::borrow::Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Corrupt {
            op,
            what: what.into(),
            source: source.into(),
        }
    }

    pub fn encode(op: &'static str, what: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Encode {
            op,
            what,
            source: source.into(),
        }
    }

    pub fn unavailable(
        op: &'static str,
        reason: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        StoreError::Unavailable {
            op,
            reason: reason.into(),
        }
    }

    /// The operation that failed, as named by the store traits.
    pub fn op(&self) -> &'static str {
        match self {
            StoreError::Backend { op, .. }
            | StoreError::Failed { op, .. }
            | StoreError::Task { op, .. }
            | StoreError::Corrupt { op, .. }
            | StoreError::Encode { op, .. }
            | StoreError::Unavailable { op, .. }
            | StoreError::NotInitialised { op, .. }
            | StoreError::Unsupported { op, .. } => op,
        }
    }

    /// Whether the same operation may succeed if tried again later: a retrying caller
    /// (the job worker, a redelivered webhook) waits only for these.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend { retryable, .. } | StoreError::Failed { retryable, .. } => {
                *retryable
            }
            // A panic repeats with the same input; a cancelled task said nothing about
            // the operation.
            StoreError::Task { source, .. } => source.is_cancelled(),
            StoreError::Unavailable { .. } => true,
            StoreError::Corrupt { .. }
            | StoreError::Encode { .. }
            | StoreError::NotInitialised { .. }
            | StoreError::Unsupported { .. } => false,
        }
    }

    /// Whether `valine init` is what the store needs (`serve` then exits 2 naming it).
    pub fn needs_init(&self) -> bool {
        matches!(self, StoreError::NotInitialised { .. })
    }

    /// A stable class for logs and metrics (`error.type`).
    pub fn error_type(&self) -> &'static str {
        match self {
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::Encode { .. } => "store_invalid",
            StoreError::Backend { .. }
            | StoreError::Failed { .. }
            | StoreError::Task { .. }
            | StoreError::Unavailable { .. }
            | StoreError::NotInitialised { .. }
            | StoreError::Unsupported { .. } => "store_unavailable",
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How a command or webhook ended: the `outcome` of its completion log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    Denied,
    RateLimited,
    Invalid,
    Duplicate,
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Invalid => "invalid",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Error,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    pub name: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One command execution, as `/debug-last` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    pub id: String,
    pub user_id: String,
    pub command: String,
    /// Options as given, secrets already redacted.
    pub options: serde_json::Map<String, serde_json::Value>,
    pub started_at_ms: i64,
    pub steps: Vec<TraceStep>,
    /// `None` while the command is still running (a deferred job not yet finished).
    pub duration_ms: Option<u64>,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub links: Vec<String>,
    pub expires_at: i64,
}

/// Which traces `valine traces` lists: newest first, at most `limit`; the rule is
/// [`TraceRecord::matches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    pub user_id: Option<String>,
    pub command: Option<String>,
    /// Only traces started at or after this instant (epoch milliseconds).
    pub since_ms: i64,
    pub limit: usize,
}

/// The kinds of record the store keeps, as `valine cleanup` and `valine doctor` count
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Trace,
    Job,
    RateWindow,
    Setting,
    Audit,
    Pending,
    Delivery,
    Run,
    FailedStep,
    Lock,
    Correlation,
    Verification,
    Block,
}

impl RecordKind {
    pub const ALL: [RecordKind; 13] = [
        RecordKind::Trace,
        RecordKind::Job,
        RecordKind::RateWindow,
        RecordKind::Setting,
        RecordKind::Audit,
        RecordKind::Pending,
        RecordKind::Delivery,
        RecordKind::Run,
        RecordKind::FailedStep,
        RecordKind::Lock,
        RecordKind::Correlation,
        RecordKind::Verification,
        RecordKind::Block,
    ];

    /// Plural, as people count them: `traces`, `rate windows`.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Trace => "traces",
            RecordKind::Job => "jobs",
            RecordKind::RateWindow => "rate windows",
            RecordKind::Setting => "settings",
            RecordKind::Audit => "audit records",
            RecordKind::Pending => "pending confirmations",
            RecordKind::Delivery => "webhook deliveries",
            RecordKind::Run => "runs",
            RecordKind::FailedStep => "failed steps",
            RecordKind::Lock => "locks",
            RecordKind::Correlation => "correlations",
            RecordKind::Verification => "verifications",
            RecordKind::Block => "blocks",
        }
    }

    /// snake_case, for JSON output.
    pub fn key(self) -> &'static str {
        match self {
            RecordKind::Trace => "traces",
            RecordKind::Job => "jobs",
            RecordKind::RateWindow => "rate_windows",
            RecordKind::Setting => "settings",
            RecordKind::Audit => "audit",
            RecordKind::Pending => "pending",
            RecordKind::Delivery => "deliveries",
            RecordKind::Run => "runs",
            RecordKind::FailedStep => "failed_steps",
            RecordKind::Lock => "locks",
            RecordKind::Correlation => "correlations",
            RecordKind::Verification => "verifications",
            RecordKind::Block => "blocks",
        }
    }
}

/// How many records of each kind; a kind with none is absent, so two counts are equal
/// when they count the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordCounts(std::collections::BTreeMap<RecordKind, u64>);

impl RecordCounts {
    pub fn add(&mut self, kind: RecordKind, n: u64) {
        if n > 0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    pub fn get(&self, kind: RecordKind) -> u64 {
        self.0.get(&kind).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// What the store holds at one instant: live records, and expired ones that no read
/// sees but that housekeeping has not deleted yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub live: RecordCounts,
    pub expired: RecordCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_after_ms`, or for a worker.
    Pending,
    /// Claimed; `lease_until_ms` says until when.
    Running,
    Done,
    /// Gave up; kept for inspection until `expires_at`.
    Failed,
}

/// A job to persist. `payload` is the serialized `jobs::Job`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: String,
    pub payload: serde_json::Value,
    pub run_after_ms: i64,
    /// After this instant the job is given up instead of retried.
    pub deadline_ms: i64,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Number of times the job has been claimed (the running attempt included).
    pub attempts: u32,
    pub run_after_ms: i64,
    pub deadline_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub last_error: Option<String>,
    pub trace_id: Option<String>,
    pub created_at_ms: i64,
    /// Set when the job reaches `Done` or `Failed`.
    pub expires_at: Option<i64>,
}

/// A value in force for a setting (`FRONTEND_BASE_URL`, `VITE_API_BASE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRecord {
    pub key: String,
    pub value: String,
    pub updated_by: String,
    pub updated_at_ms: i64,
}

/// One state change (a setting, a dispatch): who, what, when, and whether it was a dry
/// run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub at_ms: i64,
    pub user_id: String,
    /// What changed, e.g. `set FRONTEND_BASE_URL` or `dispatch client-deploy.yml`.
    pub action: String,
    pub old_fingerprint: Option<String>,
    pub new_fingerprint: Option<String>,
    pub trace_id: Option<String>,
    pub dry_run: bool,
    pub expires_at: i64,
}

/// A workflow run as Valine last saw it (see `docs/design.md#runs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    pub workflow_id: u64,
    pub workflow_name: Option<String>,
    pub status: String,
    pub conclusion: Option<String>,
    pub branch: Option<String>,
    pub head_sha: Option<String>,
    pub run_attempt: u32,
    pub html_url: Option<String>,
    pub display_title: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub expires_at: i64,
}

/// A webhook delivery and every effect it has, written together so a repeated delivery
/// repeats nothing (see `docs/design.md#atomicity`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliveryEffects {
    pub delivery_id: String,
    pub expires_at: i64,
    pub run: Option<RunRecord>,
    pub jobs: Vec<NewJob>,
    /// The failing job and step a `workflow_job` event reported.
    pub failed_step: Option<FailedStepRecord>,
    /// A correlation the run was recognised by (its title carries the correlation id),
    /// attached with the same conditions as [`CorrelationStore::attach_run`]; a refused
    /// attachment does not fail the delivery.
    pub attach: Option<RunAttachment>,
}

/// Links a dispatched command's correlation to the run GitHub started for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAttachment {
    pub correlation_id: String,
    pub run_id: u64,
}

/// The first failing job and step of a run attempt, for `/diagnose` and verification
/// reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStepRecord {
    pub run_id: u64,
    pub run_attempt: u32,
    pub job_id: u64,
    pub job_name: String,
    /// `None` when GitHub reported no failed step (e.g. the job failed to start).
    pub step_name: Option<String>,
    pub html_url: Option<String>,
    pub expires_at: i64,
}

/// What a dispatch was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationKind {
    Deploy,
    Diagnose,
}

impl CorrelationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationKind::Deploy => "deploy",
            CorrelationKind::Diagnose => "diagnose",
        }
    }
}

/// A run Valine dispatched (`/deploy-client`, `/diagnose`), with where to tell its
/// requester about it. The interaction token is a credential for 15 minutes: `Debug`
/// hides it, and nothing logs the record.
#[derive(Clone, PartialEq, Eq)]
pub struct CorrelationRecord {
    /// Sent as the workflow's `correlation_id` input; the run's title carries it.
    pub id: String,
    pub kind: CorrelationKind,
    /// Discord user id of the requester.
    pub requester: String,
    /// Where later news goes once the interaction token has expired.
    pub channel_id: Option<String>,
    pub application_id: Option<String>,
    pub interaction_token: Option<String>,
    /// When the interaction token stops working (Discord: 15 minutes after the
    /// interaction).
    pub token_expires_at_ms: i64,
    /// `/deploy-client wait:true`: the command's message follows the run.
    pub wait: bool,
    /// The API base the dispatch carried (`VITE_API_BASE` input), if any.
    pub api_base: Option<String>,
    /// Set once the run is known ([`CorrelationStore::attach_run`]).
    pub run_id: Option<u64>,
    pub created_at_ms: i64,
    pub expires_at: i64,
}

impl CorrelationRecord {
    /// Whether the command's message follows the run: a `wait:true` deploy, or any
    /// `/diagnose` dispatch.
    pub fn follows(&self) -> bool {
        self.wait || self.kind == CorrelationKind::Diagnose
    }

    /// Whether the interaction token may still edit the original message at `now_ms`.
    pub fn token_live(&self, now_ms: i64) -> bool {
        self.application_id.is_some()
            && self.interaction_token.is_some()
            && now_ms < self.token_expires_at_ms
    }
}

impl std::fmt::Debug for CorrelationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrelationRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("requester", &self.requester)
            .field("channel_id", &self.channel_id)
            .field("application_id", &self.application_id)
            .field(
                "interaction_token",
                &self.interaction_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("token_expires_at_ms", &self.token_expires_at_ms)
            .field("wait", &self.wait)
            .field("api_base", &self.api_base)
            .field("run_id", &self.run_id)
            .field("created_at_ms", &self.created_at_ms)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A user refused everything by `/block`, in addition to `BLOCKED_USER_IDS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub user_id: String,
    pub reason: Option<String>,
    /// The admin who blocked the user.
    pub blocked_by: String,
    pub at_ms: i64,
    /// When the block lapses (epoch seconds); `None` holds until `/unblock`. Also the
    /// record's TTL.
    pub expires_at: Option<i64>,
}

/// A `/set-*` preview awaiting Confirm or Cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirmation {
    pub id: String,
    pub user_id: String,
    pub key: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub expires_at: i64,
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One cheap round trip that proves the store can serve requests, writes included
    /// (a store that answers reads but refuses writes cannot count a rate limit, so every
    /// command would be refused); `Err` means it cannot. `/healthz` shows the error's
    /// text, so it names what to fix and never holds record contents or secrets.
    async fn ping(&self) -> StoreResult<()>;
}

#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Creates or replaces the trace with this id.
    async fn put_trace(&self, trace: &TraceRecord) -> StoreResult<()>;
    async fn get_trace(&self, id: &str, now: i64) -> StoreResult<Option<TraceRecord>>;
    /// The user's most recent trace whose command is not `exclude_command`.
    async fn latest_trace_for_user(
        &self,
        user_id: &str,
        exclude_command: &str,
        now: i64,
    ) -> StoreResult<Option<TraceRecord>>;
    /// Live traces that [`TraceRecord::matches`] the query, newest first (ties: higher
    /// id first), at most `query.limit`.
    async fn list_traces(&self, query: &TraceQuery, now: i64) -> StoreResult<Vec<TraceRecord>>;
    /// Live traces whose id starts with `prefix`, at most `limit`: more than one means
    /// the prefix is ambiguous.
    async fn traces_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<TraceRecord>>;
}

/// Housekeeping (`valine cleanup`, `valine doctor`): counting records and deleting
/// expired ones. Reads never depend on it (they ignore expired records themselves).
#[async_trait]
pub trait HousekeepingStore: Send + Sync {
    /// Live and expired records of each kind at `now` ([`rules::is_expired`]).
    async fn census(&self, now: i64) -> StoreResult<Census>;
    /// Deletes every record expired at `now` and counts them by kind. Each delete is
    /// conditional on the record still being expired, so a record written again
    /// meanwhile (a lock taken, a delivery id seen again) is kept.
    async fn delete_expired(&self, now: i64) -> StoreResult<RecordCounts>;
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Adds one hit to the user's window starting at `window_start` and returns the
    /// count including this hit, in one atomic operation.
    async fn hit_rate_window(
        &self,
        user_id: &str,
        window_start: i64,
        expires_at: i64,
    ) -> StoreResult<u32>;
}

#[async_trait]
pub trait JobStore: Send + Sync {
    async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> StoreResult<()>;
    /// Atomically claims the oldest due job: a `Pending` job whose `run_after_ms` has
    /// passed, or a `Running` one whose lease expired (its worker died). Increments
    /// `attempts` and sets the lease.
    async fn claim_job(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>>;
    /// Claims the job `id` as [`JobStore::claim_job`] would if it were the oldest due
    /// job: for a queue that hands out job ids itself (SQS). `None` when the job does
    /// not exist or is not claimable now (not due yet, leased, finished).
    async fn claim_job_id(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>>;
    /// Extends the lease; `false` if `owner` no longer holds it.
    async fn renew_job_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<bool>;
    async fn complete_job(&self, id: &str, owner: &str, expires_at: i64) -> StoreResult<bool>;
    /// Back to `Pending` until `run_after_ms`, recording why.
    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_after_ms: i64,
        error: &str,
    ) -> StoreResult<bool>;
    async fn fail_job(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        expires_at: i64,
    ) -> StoreResult<bool>;
    /// Makes every job leased by `owner` claimable again at once (graceful shutdown),
    /// giving back the interrupted attempt: restarts must not use up a job's retries.
    async fn release_job_leases(&self, owner: &str) -> StoreResult<u32>;
    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// Failed jobs not yet expired, newest first.
    async fn failed_jobs(&self, now: i64) -> StoreResult<Vec<JobRecord>>;
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<SettingRecord>>;
    /// Sets (`Some`) or drops (`None`) the setting and writes `audit` in one atomic
    /// write, only if the stored value is still `expected`. Returns `false` (and writes
    /// nothing) when it is not.
    async fn change_setting(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&SettingRecord>,
        audit: &AuditRecord,
    ) -> StoreResult<bool>;
    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()>;
    /// Audit records newest first, optionally of one user, at or after `since_ms`.
    async fn list_audit(
        &self,
        user_id: Option<&str>,
        since_ms: i64,
        now: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    async fn put_pending(&self, pending: &PendingConfirmation) -> StoreResult<()>;
    /// Removes and returns the confirmation: of two concurrent calls one gets it.
    async fn take_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingConfirmation>>;
}

/// Blocks from `/block`: read on every command, so a block written by any process is
/// honoured by all of them at once.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// Stores the block (replacing one already there) and writes `audit`, in one atomic
    /// write.
    async fn put_block(&self, block: &BlockRecord, audit: &AuditRecord) -> StoreResult<()>;
    /// Removes the live block of `user_id` and writes `audit`, in one atomic write.
    /// Returns `false`, writing nothing, when there is no live block
    /// ([`BlockRecord::is_live`]).
    async fn remove_block(&self, user_id: &str, audit: &AuditRecord, now: i64)
    -> StoreResult<bool>;
    /// The live block of `user_id`, if any, as last written by any process.
    async fn get_block(&self, user_id: &str, now: i64) -> StoreResult<Option<BlockRecord>>;
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Marks the delivery accepted and applies its effects in one atomic write.
    /// Returns `false` (and applies nothing) when the delivery was already accepted.
    async fn accept_delivery(&self, effects: &DeliveryEffects, now: i64) -> StoreResult<bool>;
    async fn get_run(&self, id: u64, now: i64) -> StoreResult<Option<RunRecord>>;
    /// The most recent runs, highest id (newest) first: `RUN` items queried in
    /// descending sort-key order on DynamoDB.
    async fn recent_runs(&self, limit: usize, now: i64) -> StoreResult<Vec<RunRecord>>;
    /// The failing job and step recorded for the run (its latest attempt that failed).
    async fn failed_step(&self, run_id: u64, now: i64) -> StoreResult<Option<FailedStepRecord>>;
}

#[async_trait]
pub trait CorrelationStore: Send + Sync {
    /// Writes the correlation if its id is free (absent or expired) and returns `true`; a
    /// live record with the same id is kept and `false` returned, so the write can serve
    /// as the "about to dispatch" marker (see `docs/design.md#dispatch-once`).
    async fn put_correlation(&self, correlation: &CorrelationRecord, now: i64)
    -> StoreResult<bool>;
    async fn get_correlation(&self, id: &str, now: i64) -> StoreResult<Option<CorrelationRecord>>;
    /// The live correlation attached to the run.
    async fn correlation_for_run(
        &self,
        run_id: u64,
        now: i64,
    ) -> StoreResult<Option<CorrelationRecord>>;
    /// Attaches the run to the live correlation in one conditional write. `true` when
    /// attached (again: repeating it is harmless); `false` when the correlation is
    /// missing or expired, already has another run, or the run belongs to another live
    /// correlation.
    async fn attach_run(&self, id: &str, run_id: u64, now: i64) -> StoreResult<bool>;
    /// The newest live deploy correlation, for "one deploy at a time": the caller
    /// decides from its run whether it is still unfinished.
    async fn latest_deploy_correlation(&self, now: i64) -> StoreResult<Option<CorrelationRecord>>;
}

/// The verification of one run attempt (one per run id and attempt, shared by the
/// completion announcement and a `wait:true` follower).
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationRecord {
    pub run_id: u64,
    pub run_attempt: u32,
    pub passed: bool,
    /// The report as a Discord message body, ready to post or append.
    pub report: serde_json::Value,
    pub created_at_ms: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// Stores the verification unless a live one exists for the same run attempt, in
    /// one conditional write; returns the one in force (the earlier one if it won).
    async fn put_verification(
        &self,
        verification: &VerificationRecord,
        now: i64,
    ) -> StoreResult<VerificationRecord>;
    async fn get_verification(
        &self,
        run_id: u64,
        run_attempt: u32,
        now: i64,
    ) -> StoreResult<Option<VerificationRecord>>;
}

/// A named lock and who holds it until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub name: String,
    pub owner: String,
    pub expires_at: i64,
}

#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock if it is free, expired, or already held by `owner`.
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool>;
    async fn release_lock(&self, name: &str, owner: &str) -> StoreResult<()>;
}

/// A rate-window hit to count: the window's first second and when its record expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHit {
    pub window_start: i64,
    pub expires_at: i64,
}

/// What the store says about a request before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A live `/block` stands; nothing was counted.
    Blocked,
    /// Not blocked; the window's count including this hit, when a hit was asked for.
    Open { count: Option<u32> },
}

/// The store reads every command and button press makes before it runs, in one round
/// trip where the backend allows it: they sit on the path Discord's 3-second deadline
/// is measured on.
#[async_trait]
pub trait AdmissionStore: BlockStore + RateLimitStore {
    /// The live block of `user_id` (when `check_block`), then, only when there is
    /// none, one hit on the rate window `hit`: a blocked user's requests are never
    /// counted. Equal to [`BlockStore::get_block`] followed by
    /// [`RateLimitStore::hit_rate_window`], which is what this default does; a backend
    /// that can do both in one round trip overrides it (checked by the conformance
    /// suite's `admission_is_block_then_count`).
    async fn admit(
        &self,
        user_id: &str,
        now: i64,
        check_block: bool,
        hit: Option<RateHit>,
    ) -> StoreResult<Admission> {
        if check_block && self.get_block(user_id, now).await?.is_some() {
            return Ok(Admission::Blocked);
        }
        let count = match hit {
            Some(hit) => Some(
                self.hit_rate_window(user_id, hit.window_start, hit.expires_at)
                    .await?,
            ),
            None => None,
        };
        Ok(Admission::Open { count })
    }
}

/// Everything Valine keeps; one backend implements all of it.
pub trait Store:
    HealthStore
    + HousekeepingStore
    + TraceStore
    + RateLimitStore
    + JobStore
    + SettingsStore
    + DeliveryStore
    + LockStore
    + CorrelationStore
    + VerificationStore
    + BlockStore
    + AdmissionStore
{
}

impl<T> Store for T where
    T: HealthStore
        + HousekeepingStore
        + TraceStore
        + RateLimitStore
        + JobStore
        + SettingsStore
        + DeliveryStore
        + LockStore
        + CorrelationStore
        + VerificationStore
        + BlockStore
        + AdmissionStore
{
}

pub type SharedStore = Arc<dyn Store>;

/// Where the store lives (`VALINE_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    SqliteFile(std::path::PathBuf),
    SqliteMemory,
    DynamoDb(String),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "sqlite::memory:" {
            Ok(StoreLocation::SqliteMemory)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                Err("sqlite: needs a path".into())
            } else {
                Ok(StoreLocation::SqliteFile(path.into()))
            }
        } else if let Some(table) = s.strip_prefix("dynamodb:") {
            if table.is_empty() {
                Err("dynamodb: needs a table name".into())
            } else {
                Ok(StoreLocation::DynamoDb(table.into()))
            }
        } else {
            Err("expected sqlite:<path>, sqlite::memory: or dynamodb:<table>".into())
        }
    }
}

/// Opens the store the location names. A DynamoDB table must exist already (`valine
/// init` creates it): a missing one is [`StoreError::NotInitialised`] naming the table and
/// `valine init`.
pub async fn open(location: &StoreLocation) -> StoreResult<SharedStore> {
    match location {
        StoreLocation::SqliteFile(path) => {
            let store = sqlite::SqliteStore::open(path).await?;
            // Which file, once, so an operator never has to guess the working directory.
            tracing::info!(path = %path.display(), "store opened");
            Ok(Arc::new(store))
        }
        StoreLocation::SqliteMemory => Ok(Arc::new(sqlite::SqliteStore::open_in_memory().await?)),
        #[cfg(feature = "aws")]
        StoreLocation::DynamoDb(table) => {
            let store = dynamodb::DynamoDbStore::open(table).await?;
            tracing::info!(table = %table, "store opened");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "aws"))]
        StoreLocation::DynamoDb(_) => Err(without_aws("open")),
    }
}

/// Prepares the store the location names (`valine init`) and says what it created or
/// found, one line per part: for SQLite the database file and its schema (migrations run
/// as on every open), for DynamoDB the table, each index and TTL. Idempotent.
pub async fn init(location: &StoreLocation) -> StoreResult<Vec<String>> {
    match location {
        StoreLocation::SqliteFile(path) => {
            let existed = tokio::fs::try_exists(path).await.unwrap_or(false);
            sqlite::SqliteStore::open(path).await?;
            let found = if existed { "found" } else { "created" };
            Ok(vec![
                format!("SQLite database {}: {found}", path.display()),
                "schema migrations: up to date".to_owned(),
            ])
        }
        StoreLocation::SqliteMemory => {
            sqlite::SqliteStore::open_in_memory().await?;
            Ok(vec![
                "SQLite in memory: nothing to prepare (it lasts as long as the process)".to_owned(),
            ])
        }
        #[cfg(feature = "aws")]
        StoreLocation::DynamoDb(table) => {
            let client = dynamodb::client_from_env().await;
            Ok(dynamodb::create_table_if_missing(&client, table)
                .await?
                .lines())
        }
        #[cfg(not(feature = "aws"))]
        StoreLocation::DynamoDb(_) => Err(without_aws("init")),
    }
}

/// The store as `valine doctor` finds it, opened without writing anything.
pub struct Inspection {
    pub store: SharedStore,
    /// What was found: the schema, the table and its parts.
    pub found: String,
    /// What is present but not as `valine init` would leave it (a missing index, TTL
    /// off): what was found, and the fix.
    pub warnings: Vec<(String, String)>,
}

/// Opens the store the location names for reading only: an SQLite file must exist with a
/// current schema; a DynamoDB table must exist (its indexes and TTL are read, never
/// changed). What needs `valine init` is [`StoreError::NotInitialised`].
pub async fn inspect(location: &StoreLocation) -> StoreResult<Inspection> {
    match location {
        StoreLocation::SqliteFile(path) => Ok(Inspection {
            store: Arc::new(sqlite::SqliteStore::open_read_only(path).await?),
            found: format!(
                "SQLite {} (schema version {}, current)",
                path.display(),
                sqlite::SqliteStore::schema_version()
            ),
            warnings: Vec::new(),
        }),
        StoreLocation::SqliteMemory => Ok(Inspection {
            store: Arc::new(sqlite::SqliteStore::open_in_memory().await?),
            found: "SQLite in memory (empty: it lasts as long as one process)".to_owned(),
            warnings: Vec::new(),
        }),
        #[cfg(feature = "aws")]
        StoreLocation::DynamoDb(table) => {
            let client = dynamodb::client_from_env().await;
            let health = dynamodb::table_health(&client, table).await?;
            let mut warnings = Vec::new();
            if !health.missing_indexes.is_empty() {
                warnings.push((
                    format!(
                        "table {table} lacks the index {}",
                        health.missing_indexes.join(", ")
                    ),
                    "run `valine init` to add it".to_owned(),
                ));
            }
            if !health.ttl_on {
                warnings.push((
                    format!(
                        "TTL is off on `{}` of table {table}: DynamoDB never deletes expired \
                         items",
                        dynamodb::TABLE_SCHEMA.ttl_attribute
                    ),
                    "run `valine init` (or `valine cleanup` now and then)".to_owned(),
                ));
            }
            Ok(Inspection {
                store: Arc::new(dynamodb::DynamoDbStore::new(client, table)),
                found: format!("DynamoDB table {table}"),
                warnings,
            })
        }
        #[cfg(not(feature = "aws"))]
        StoreLocation::DynamoDb(_) => Err(without_aws("inspect")),
    }
}

#[cfg(not(feature = "aws"))]
fn without_aws(op: &'static str) -> StoreError {
    StoreError::Unsupported {
        op,
        reason: "this build has no DynamoDB support (built without the `aws` feature); \
                 use sqlite:<path>"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_init_creates_then_finds_the_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = StoreLocation::SqliteFile(dir.path().join("valine.db"));
        let first = init(&location).await.expect("init");
        assert!(first[0].contains("created"), "{first:?}");
        let second = init(&location).await.expect("init again");
        assert!(second[0].contains("found"), "{second:?}");
        open(&location)
            .await
            .expect("open")
            .ping()
            .await
            .expect("ping");
    }
}
