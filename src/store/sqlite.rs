//! SQLite backend of the store: the default, embedded engine (a file, or memory for tests).
//!
//! One connection sits behind a mutex and every call runs on tokio's blocking pool, so the
//! async runtime never waits on disk (and a test's paused clock does not run on while a
//! call is in flight). A second connection in a thread of its own copies the write-ahead
//! log into the file (see `checkpoint_loop`). Several processes may open the same file: the
//! database runs in WAL mode with a busy timeout. An atomic operation is one statement
//! (which takes the write lock as it starts) or one `BEGIN IMMEDIATE` transaction, so the
//! write lock is taken up front, where the busy timeout applies, instead of being upgraded
//! from a read snapshot another process may have made stale.
//!
//! The schema is a list of migration steps in `MIGRATIONS`; `PRAGMA user_version`
//! records how many have been applied.
//!
//! # Faults of the file
//!
//! Errors an operator acts on (read-only, cannot open, I/O, disk full, damaged, lost)
//! are `store_unavailable` (damaged: `store_corrupt`) and name the database file with
//! what to do; each is logged at ERROR once when it starts and at INFO when a write
//! lands again, not once per request.
//!
//! - `ping` commits a write to a heartbeat row, so `/healthz` reflects whether the store
//!   can be written, not only read.
//! - A connection that cannot write (read-only at open, `SQLITE_READONLY`,
//!   `SQLITE_CANTOPEN`, I/O errors) is replaced by a new one at most once per
//!   `REOPEN_BACKOFF` (1 s): fixing permissions or a remount heals without a restart. An
//!   existing file that cannot be written at start-up still opens (degraded); a missing
//!   directory does not.
//! - Every call first checks that the path still leads to the file opened at start-up
//!   (device and inode). If the file was removed or replaced, the store refuses every
//!   call until a restart: writing on into the deleted inode would answer "ok" and lose
//!   everything at the next restart. Valine never recreates the file itself (a reopen
//!   does not create), because a new file is an empty database; only a restart does,
//!   and it logs a warning when it creates one.
//!
//! A conditional write reads the stored row inside its transaction and asks the rule in
//! [`super::rules`]. Only two conditions stay in SQL: the liveness filter of reads
//! (`expires_at > now`, [`super::rules::is_live`]), and the choice of a job to claim, whose
//! query the `jobs_due` index serves. Reads skip expired records and
//! [`HousekeepingStore::delete_expired`] deletes them (housekeeping, never needed for
//! correctness).

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Params, Row, Transaction, TransactionBehavior, params,
};
use serde::de::DeserializeOwned;

use super::rules;
use super::{
    Admission, AdmissionStore, AuditRecord, BlockRecord, BlockStore, BoxError, Census,
    CorrelationKind, CorrelationRecord, CorrelationStore, DeliveryEffects, DeliveryStore,
    FailedStepRecord, HealthStore, HousekeepingStore, JobRecord, JobState, JobStore, LockRecord,
    LockStore, NewJob, Outcome, PendingConfirmation, RateHit, RateLimitStore, RecordCounts,
    RecordKind, RunAttachment, RunRecord, SettingRecord, SettingsStore, StoreError, StoreResult,
    TraceQuery, TraceRecord, TraceStore, VerificationRecord, VerificationStore,
};

/// Long enough to ride out another process's write transaction (they are all short),
/// short enough that a wedged database surfaces as an error instead of a hung command.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a store that cannot write waits before trying a new connection: fixing
/// the file heals within about this long, and an outage costs one open per interval,
/// not one per request.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// One row that `ping` rewrites, proving the file can be written (a read succeeds on a
/// read-only file or a full disk). It stays outside `MIGRATIONS`: a rollback to an
/// earlier build must still open the file, and an extra table does not disturb it.
const HEARTBEAT_TABLE: &str = "CREATE TABLE IF NOT EXISTS heartbeat (\
     id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1), \
     beats INTEGER NOT NULL\
     ) STRICT;";

/// Schema steps, applied in order; step `i` brings `user_version` from `i` to `i + 1`.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE traces (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL,
    command       TEXT NOT NULL,
    options       TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    steps         TEXT NOT NULL,
    duration_ms   INTEGER,
    outcome       TEXT,
    error         TEXT,
    links         TEXT NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX traces_by_user ON traces (user_id, started_at_ms);

CREATE TABLE rate_windows (
    user_id      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, window_start)
) STRICT, WITHOUT ROWID;

CREATE TABLE jobs (
    id             TEXT PRIMARY KEY NOT NULL,
    payload        TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts       INTEGER NOT NULL,
    run_after_ms   INTEGER NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    last_error     TEXT,
    trace_id       TEXT,
    created_at_ms  INTEGER NOT NULL,
    expires_at     INTEGER
) STRICT;
CREATE INDEX jobs_due ON jobs (state, run_after_ms, id);
CREATE INDEX jobs_by_lease_owner ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE settings (
    key           TEXT PRIMARY KEY NOT NULL,
    value         TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE audit (
    id              TEXT PRIMARY KEY NOT NULL,
    at_ms           INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    action          TEXT NOT NULL,
    old_fingerprint TEXT,
    new_fingerprint TEXT,
    trace_id        TEXT,
    dry_run         INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_by_time ON audit (at_ms);
CREATE INDEX audit_by_user ON audit (user_id, at_ms);

CREATE TABLE pending (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE deliveries (
    id         TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY NOT NULL,
    workflow_id   INTEGER NOT NULL,
    workflow_name TEXT,
    status        TEXT NOT NULL,
    conclusion    TEXT,
    branch        TEXT,
    head_sha      TEXT,
    run_attempt   INTEGER NOT NULL,
    html_url      TEXT,
    display_title TEXT,
    created_at    TEXT,
    updated_at    TEXT,
    expires_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE locks (
    name       TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE correlations (
    id                  TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('deploy', 'diagnose')),
    requester           TEXT NOT NULL,
    channel_id          TEXT,
    application_id      TEXT,
    interaction_token   TEXT,
    token_expires_at_ms INTEGER NOT NULL,
    wait                INTEGER NOT NULL,
    api_base            TEXT,
    run_id              INTEGER,
    created_at_ms       INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX correlations_by_run ON correlations (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX correlations_by_kind ON correlations (kind, created_at_ms);

CREATE TABLE failed_steps (
    run_id      INTEGER PRIMARY KEY NOT NULL,
    run_attempt INTEGER NOT NULL,
    job_id      INTEGER NOT NULL,
    job_name    TEXT NOT NULL,
    step_name   TEXT,
    html_url    TEXT,
    expires_at  INTEGER NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE verifications (
    run_id        INTEGER NOT NULL,
    run_attempt   INTEGER NOT NULL,
    passed        INTEGER NOT NULL,
    report        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (run_id, run_attempt)
) STRICT;
"#,
    r#"
CREATE TABLE blocks (
    user_id    TEXT PRIMARY KEY NOT NULL,
    reason     TEXT,
    blocked_by TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;
"#,
];

const TRACE_COLUMNS: &str = "id, user_id, command, options, started_at_ms, steps, duration_ms, \
     outcome, error, links, expires_at";
const JOB_COLUMNS: &str = "id, payload, state, attempts, run_after_ms, deadline_ms, lease_owner, \
     lease_until_ms, last_error, trace_id, created_at_ms, expires_at";
const AUDIT_COLUMNS: &str = "id, at_ms, user_id, action, old_fingerprint, new_fingerprint, \
     trace_id, dry_run, expires_at";
const RUN_COLUMNS: &str = "id, workflow_id, workflow_name, status, conclusion, branch, head_sha, \
     run_attempt, html_url, display_title, created_at, updated_at, expires_at";
const PENDING_COLUMNS: &str = "id, user_id, key, old_value, new_value, expires_at";
const CORRELATION_COLUMNS: &str = "id, kind, requester, channel_id, application_id, \
     interaction_token, token_expires_at_ms, wait, api_base, run_id, created_at_ms, expires_at";
const FAILED_STEP_COLUMNS: &str =
    "run_id, run_attempt, job_id, job_name, step_name, html_url, expires_at";

/// Each table and the kind of record it holds. Rows expire once their `expires_at` (when
/// not null) is not after `now`; settings never do.
const TABLES: &[(&str, RecordKind)] = &[
    ("traces", RecordKind::Trace),
    ("rate_windows", RecordKind::RateWindow),
    ("jobs", RecordKind::Job),
    ("settings", RecordKind::Setting),
    ("audit", RecordKind::Audit),
    ("pending", RecordKind::Pending),
    ("deliveries", RecordKind::Delivery),
    ("runs", RecordKind::Run),
    ("locks", RecordKind::Lock),
    ("correlations", RecordKind::Correlation),
    ("failed_steps", RecordKind::FailedStep),
    ("verifications", RecordKind::Verification),
    // A block without `expires_at` holds until `/unblock`.
    ("blocks", RecordKind::Block),
];

/// Whether a table's rows carry `expires_at`.
fn expiring(table: &str) -> bool {
    table != "settings"
}

/// The store on one SQLite database. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("file", &self.inner.file.as_ref().map(|file| &file.path))
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `None` for an in-memory database, which has no file to lose or reopen.
    file: Option<DbFile>,
    state: Mutex<State>,
    /// Dropped with the store, which stops the checkpoint thread at once (see
    /// `checkpoint_loop`).
    _checkpoints: Option<mpsc::Sender<()>>,
}

/// The database file and the identity of the file Valine opened at start-up: a file
/// found at the path later under another identity is not Valine's database.
struct DbFile {
    path: PathBuf,
    id: FileId,
}

/// Device and inode: what tells "the same file" apart from "a file at the same path".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Without inode numbers only a missing file is detected.
    #[cfg(not(unix))]
    fn of(_: &std::fs::Metadata) -> Self {
        FileId { dev: 0, ino: 0 }
    }
}

/// The connection and what is known to be wrong with it.
struct State {
    /// `None` when the file could not be opened (at start-up or on a reopen).
    conn: Option<Connection>,
    /// The connection cannot write (read-only, unopenable, I/O errors): a new one may,
    /// once the operator has fixed the cause, so it is replaced after `reopen_at`.
    stale: bool,
    /// Reopening costs a few system calls and a schema check: once per backoff, not on
    /// every request of an outage.
    reopen_at: Instant,
    /// The path no longer leads to the file Valine opened: nothing is read or written
    /// until a restart, so records never go into a deleted file.
    lost: bool,
    /// The fault last logged, so an outage is logged once when it starts and once when
    /// it ends, not on every request.
    fault: Option<Fault>,
}

/// Connection-level faults: the operator acts on the file, not on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ReadOnly,
    CannotOpen,
    Io,
    Full,
    Damaged,
    Lost,
}

impl Fault {
    /// Sorts the SQLite errors an operator can act on; `None` for everything else
    /// (contention, constraints, misuse), which keeps its usual class.
    fn of(err: &rusqlite::Error) -> Option<Fault> {
        use rusqlite::ErrorCode as C;
        let rusqlite::Error::SqliteFailure(e, _) = err else {
            return None;
        };
        match e.code {
            C::ReadOnly => Some(Fault::ReadOnly),
            C::CannotOpen | C::PermissionDenied => Some(Fault::CannotOpen),
            C::SystemIoFailure => Some(Fault::Io),
            C::DiskFull => Some(Fault::Full),
            C::NotADatabase | C::DatabaseCorrupt => Some(Fault::Damaged),
            _ => None,
        }
    }

    /// Whether a new connection may cure it: a full disk or a damaged file does not
    /// depend on the connection, a read-only or failed file handle does.
    fn needs_reopen(self) -> bool {
        matches!(self, Fault::ReadOnly | Fault::CannotOpen | Fault::Io)
    }

    /// What is wrong and what the operator does about it, naming the file.
    fn describe(self, path: &Path) -> String {
        let path = path.display();
        match self {
            Fault::ReadOnly => format!(
                "cannot write the database file {path} (read-only): make it, its -wal and \
                 -shm files and its directory writable for Valine, which then reopens it \
                 by itself"
            ),
            Fault::CannotOpen => format!(
                "cannot open the database file {path}: check that it and its directory exist \
                 and that Valine may read, write and create files there; Valine retries by \
                 itself"
            ),
            Fault::Io => format!(
                "disk I/O error on the database file {path}: check the disk and the file \
                 system; Valine reopens the file by itself"
            ),
            Fault::Full => format!(
                "the disk holding the database file {path} is full: free space; Valine \
                 retries by itself"
            ),
            Fault::Damaged => format!(
                "the database file {path} is damaged or not a SQLite database: restore it \
                 from a backup and restart Valine"
            ),
            Fault::Lost => format!(
                "the database file {path} was removed or replaced while Valine was running; \
                 Valine stopped using it so that no record goes into a deleted file: restore \
                 the file and restart Valine (a restart without it starts a new, empty \
                 database)"
            ),
        }
    }

    /// The error a call reports, with the engine's words (generic for these codes, never
    /// a stored value) after the operator's.
    fn error(
        self,
        op: &'static str,
        path: &Path,
        cause: Option<&dyn std::fmt::Display>,
    ) -> StoreError {
        let mut reason = self.describe(path);
        if let Some(cause) = cause {
            reason.push_str(&format!(" ({cause})"));
        }
        match self {
            Fault::Damaged => StoreError::Corrupt {
                op,
                what: format!("database file {}", path.display()).into(),
                source: reason.into(),
            },
            _ => StoreError::unavailable(op, reason),
        }
    }
}

/// Why a blocking call failed, before it is named after the operation.
#[derive(Debug)]
enum Fail {
    Sqlite(rusqlite::Error),
    Corrupt {
        what: Cow<'static, str>,
        source: BoxError,
    },
    Encode {
        what: &'static str,
        source: BoxError,
    },
    Unsupported(Cow<'static, str>),
}

impl Fail {
    fn corrupt(what: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Fail::Corrupt {
            what: what.into(),
            source: source.into(),
        }
    }

    fn encode(what: &'static str, source: impl Into<BoxError>) -> Self {
        Fail::Encode {
            what,
            source: source.into(),
        }
    }

    /// Names the error after `op`; errors an operator acts on also name the database
    /// file, when there is one.
    fn into_store_error(self, op: &'static str, path: Option<&Path>) -> StoreError {
        match (self, path) {
            (Fail::Sqlite(err), Some(path)) => match Fault::of(&err) {
                Some(fault) => fault.error(op, path, Some(&err)),
                None if is_busy(&err) => StoreError::unavailable(
                    op,
                    format!(
                        "the database file {} stayed locked by another process for {} s: \
                         look for a process holding a write transaction on it ({err})",
                        path.display(),
                        BUSY_TIMEOUT.as_secs()
                    ),
                ),
                None => sqlite_error(op, err),
            },
            (Fail::Sqlite(err), None) => sqlite_error(op, err),
            (Fail::Corrupt { what, source }, _) => StoreError::Corrupt { op, what, source },
            (Fail::Encode { what, source }, _) => StoreError::Encode { op, what, source },
            (Fail::Unsupported(reason), Some(path)) => StoreError::Unsupported {
                op,
                reason: format!("{reason} (database file {})", path.display()).into(),
            },
            (Fail::Unsupported(reason), None) => StoreError::Unsupported { op, reason },
        }
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(err: rusqlite::Error) -> Self {
        Fail::Sqlite(err)
    }
}

/// Sorts a SQLite error into the store's classes. The column a value failed to convert
/// from is named (schema, not content); the value itself stays in the source.
fn sqlite_error(op: &'static str, err: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match err {
        E::FromSqlConversionFailure(column, ..)
        | E::IntegralValueOutOfRange(column, _)
        | E::Utf8Error(column, _)
        | E::InvalidColumnType(column, ..) => StoreError::Corrupt {
            op,
            what: format!("column {column}").into(),
            source: err.into(),
        },
        E::ToSqlConversionFailure(source) => StoreError::Encode {
            op,
            what: "a value",
            source,
        },
        err => StoreError::Backend {
            op,
            retryable: sqlite_retryable(&err),
            source: err.into(),
        },
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether SQLite may accept the same statement later: contention and I/O pass, a broken
/// constraint or a damaged file does not.
fn sqlite_retryable(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match err {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::OutOfMemory
                | C::DiskFull
                | C::CannotOpen
                | C::FileLockingProtocolFailed
                | C::SchemaChanged
                | C::OperationInterrupted
        ),
        _ => false,
    }
}

type FResult<T> = Result<T, Fail>;

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    /// Safe while other processes have the same file open.
    ///
    /// An existing file that cannot be written now (read-only, unopenable, I/O errors)
    /// still gives a store: it reports the fault on every call, `/healthz` answers 503,
    /// and it reopens the file by itself once the operator has fixed it. A path where no
    /// file can be created (a missing directory) is an error: there is nothing to wait for.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let path = path.to_owned();
        let op = "open";
        let joined = tokio::task::spawn_blocking(move || {
            let existed = path.try_exists().unwrap_or(true);
            if !existed {
                tracing::warn!(path = %path.display(), "no database file at {}: creating a new, empty one (expected on the first start only)", path.display());
                // Failing here leaves the creation to SQLite below, which reports why
                // (a missing directory, permissions) in the usual terms.
                if let Err(e) = create_whole(&path) {
                    tracing::debug!(path = %path.display(), error.message = %e, "cannot prepare the new database beside its path; SQLite creates it in place");
                }
            }
            let opened = open_existing_or_new(&path, OpenFlags::default());
            let id = match std::fs::metadata(&path) {
                Ok(meta) => FileId::of(&meta),
                Err(e) => {
                    return Err(match opened {
                        Err(Fail::Sqlite(err)) => {
                            Fault::of(&err).unwrap_or(Fault::CannotOpen).error(op, &path, Some(&err))
                        }
                        Err(fail) => fail.into_store_error(op, Some(&path)),
                        Ok(_) => Fault::CannotOpen.error(op, &path, Some(&e)),
                    });
                }
            };
            let (conn, fault) = match opened {
                Ok((conn, true)) => (Some(conn), None),
                Ok((conn, false)) => (Some(conn), Some((Fault::ReadOnly, None))),
                Err(Fail::Sqlite(err)) => match Fault::of(&err) {
                    Some(fault) if fault.needs_reopen() => (None, Some((fault, Some(err)))),
                    _ => return Err(Fail::Sqlite(err).into_store_error(op, Some(&path))),
                },
                Err(fail) => return Err(fail.into_store_error(op, Some(&path))),
            };
            let (checkpoints, stop) = mpsc::channel();
            let inner = Inner {
                file: Some(DbFile { path, id }),
                state: Mutex::new(State {
                    conn,
                    stale: fault.is_some(),
                    reopen_at: Instant::now() + REOPEN_BACKOFF,
                    lost: false,
                    fault: None,
                }),
                _checkpoints: Some(checkpoints),
            };
            // A store that starts with a fault checkpoints inline, as SQLite does.
            let checkpointer = if fault.is_none() {
                inner.file.as_ref().and_then(|file| open_checkpointer(&file.path))
            } else {
                None
            };
            if let Some((fault, cause)) = fault {
                let file = inner.file.as_ref().expect("a file store");
                let err = fault.error(op, &file.path, cause.as_ref().map(|c| c as _));
                // Logged here instead of on the first call, so the outage is announced
                // once, at start-up. Serving degraded beats exiting: the fix (permissions,
                // a remount) heals it without a restart.
                inner
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fault = Some(fault);
                tracing::error!(error.type = err.error_type(), error.message = %err, path = %file.path.display(), "the store cannot be written at start-up; commands are refused until it can");
            }
            Ok((inner, checkpointer.map(|own| (own, stop))))
        })
        .await;
        match joined {
            Ok(opened) => {
                let (inner, checkpointer) = opened?;
                let inner = Arc::new(inner);
                if let Some((own, stop)) = checkpointer {
                    start_checkpointer(&inner, own, stop);
                }
                Ok(SqliteStore { inner })
            }
            Err(source) => Err(StoreError::Task { op, source }),
        }
    }

    /// Opens an existing database for reading only (`valine doctor`): nothing is created,
    /// migrated or written. A missing file, or one whose schema is behind this build, is
    /// [`StoreError::NotInitialised`]: `valine init` (or `valine serve`) prepares it.
    pub async fn open_read_only(path: &Path) -> StoreResult<Self> {
        let path = path.to_owned();
        let op = "open_read_only";
        let joined = tokio::task::spawn_blocking(move || {
            let not_initialised = |what: String| StoreError::NotInitialised {
                op,
                source: what.into(),
            };
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_initialised(format!(
                        "no database file at {}",
                        path.display()
                    )));
                }
                Err(e) => return Err(Fault::CannotOpen.error(op, &path, Some(&e))),
            };
            let opened = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|conn| conn.busy_timeout(BUSY_TIMEOUT).map(|()| conn));
            let conn = match opened {
                Ok(conn) => conn,
                Err(err) => {
                    let fault = Fault::of(&err).unwrap_or(Fault::CannotOpen);
                    return Err(fault.error(op, &path, Some(&err)));
                }
            };
            let applied = check_version(&conn).map_err(|f| f.into_store_error(op, Some(&path)))?;
            if applied < MIGRATIONS.len() {
                return Err(not_initialised(format!(
                    "the database {} has schema version {applied} of {}",
                    path.display(),
                    MIGRATIONS.len()
                )));
            }
            Ok(Inner {
                file: Some(DbFile {
                    path,
                    id: FileId::of(&meta),
                }),
                state: Mutex::new(State {
                    conn: Some(conn),
                    stale: false,
                    reopen_at: Instant::now(),
                    lost: false,
                    fault: None,
                }),
                _checkpoints: None,
            })
        })
        .await;
        match joined {
            Ok(inner) => Ok(SqliteStore {
                inner: Arc::new(inner?),
            }),
            Err(source) => Err(StoreError::Task { op, source }),
        }
    }

    /// The number of schema steps this build knows: a database at this version is
    /// current.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// A private database that lives as long as this store (and its clones).
    pub async fn open_in_memory() -> StoreResult<Self> {
        let op = "open_in_memory";
        let conn = tokio::task::spawn_blocking(|| -> FResult<Connection> {
            let mut conn = Connection::open_in_memory()?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(|source| StoreError::Task { op, source })?
        .map_err(|fail| fail.into_store_error(op, None))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                file: None,
                state: Mutex::new(State {
                    conn: Some(conn),
                    stale: false,
                    reopen_at: Instant::now(),
                    lost: false,
                    fault: None,
                }),
                _checkpoints: None,
            }),
        })
    }

    /// Runs `f` on the connection on the blocking pool, naming errors after `op`.
    async fn call<T, F>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> FResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held unwound through `Transaction::drop`, which
            // rolled back, so the connection is consistent and still usable.
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            inner.run(&mut state, op, f)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(source) => Err(StoreError::Task { op, source }),
        }
    }

    /// Runs a short operation on the calling thread when the store is free, and as
    /// [`Self::call`] does otherwise. Handing a call to the blocking pool costs two thread
    /// wake-ups, more than one indexed read or write on the connection (a WAL commit does
    /// not fsync); a deferred acknowledgement makes two such calls (docs/design.md, "SQLite
    /// on the request path"). Only for operations whose time does not grow with the data:
    /// an async worker thread waits on them. A store that is reopening, or whose lock a
    /// checkpoint holds, is left to the blocking pool.
    async fn call_short<T, F>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> FResult<T> + Send + 'static,
    {
        match self.try_now(op, f) {
            Ok(done) => done,
            Err(f) => self.call(op, f).await,
        }
    }

    /// [`Self::call_short`] on this thread, or `f` back when the store is busy or due to
    /// reopen its file.
    fn try_now<T, F>(&self, op: &'static str, f: F) -> Result<StoreResult<T>, F>
    where
        F: FnOnce(&mut Connection) -> FResult<T>,
    {
        let mut state = match self.inner.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(f),
        };
        // Reopening the file is I/O; a lost file only answers an error, here as well.
        if state.stale {
            return Err(f);
        }
        // As on the pool: a panic while the lock is held unwinds through
        // `Transaction::drop`, which rolls back, so the store goes on.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.run(&mut state, op, f)
        }));
        Ok(ran.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| (*m).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(StoreError::Failed {
                op,
                problem: "the operation panicked".into(),
                retryable: false,
                source: format!("panicked: {message}").into(),
            })
        }))
    }
}

impl Inner {
    fn run<T>(
        &self,
        state: &mut State,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> FResult<T>,
    ) -> StoreResult<T> {
        let Some(file) = &self.file else {
            let conn = state
                .conn
                .as_mut()
                .expect("an in-memory store keeps its connection");
            return f(conn).map_err(|fail| fail.into_store_error(op, None));
        };
        if state.lost {
            return Err(Fault::Lost.error(op, &file.path, None));
        }
        if state.stale && Instant::now() >= state.reopen_at {
            self.reopen(state, op, file);
        }
        // Checked on every call, not only by /healthz: a write into a deleted file
        // answers "ok" and is gone at the next restart.
        match std::fs::metadata(&file.path) {
            Ok(meta) if FileId::of(&meta) == file.id => {}
            Ok(_) => return Err(self.lose(state, op, "another file is at its path")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.lose(state, op, "nothing is at its path"));
            }
            // Cannot tell (e.g. the directory became unreadable): refuse this call
            // without concluding that the file is gone.
            Err(e) => return Err(self.fault(state, op, Fault::CannotOpen, Some(&e))),
        }
        let Some(conn) = state.conn.as_mut() else {
            let fault = state.fault.unwrap_or(Fault::CannotOpen);
            return Err(fault.error(op, &file.path, None));
        };
        let before = conn.total_changes();
        match f(conn) {
            Ok(value) => {
                // Only a write that landed proves the fault gone: a read succeeds on a
                // read-only file or a full disk.
                let wrote = conn.total_changes() > before;
                if wrote && !state.stale && state.fault.take().is_some() {
                    tracing::info!(path = %file.path.display(), "the database file {} can be written again", file.path.display());
                }
                Ok(value)
            }
            Err(Fail::Sqlite(err)) => match Fault::of(&err) {
                Some(fault) => {
                    if fault.needs_reopen() && !state.stale {
                        state.stale = true;
                        state.reopen_at = Instant::now() + REOPEN_BACKOFF;
                    }
                    Err(self.fault(state, op, fault, Some(&err)))
                }
                None => Err(Fail::Sqlite(err).into_store_error(op, Some(&file.path))),
            },
            Err(fail) => Err(fail.into_store_error(op, Some(&file.path))),
        }
    }

    /// Records `fault` (logging it when it differs from the one last logged) and returns
    /// the error for `op`.
    fn fault(
        &self,
        state: &mut State,
        op: &'static str,
        fault: Fault,
        cause: Option<&dyn std::fmt::Display>,
    ) -> StoreError {
        let path = self
            .file
            .as_ref()
            .map_or(Path::new(":memory:"), |f| &f.path);
        let err = fault.error(op, path, cause);
        if state.fault != Some(fault) {
            state.fault = Some(fault);
            tracing::error!(error.type = err.error_type(), error.message = %err, path = %path.display(), "SQLite store fault");
        }
        err
    }

    /// The path no longer leads to the file Valine opened: stop using it for good.
    fn lose(&self, state: &mut State, op: &'static str, what: &str) -> StoreError {
        state.lost = true;
        self.fault(state, op, Fault::Lost, Some(&what))
    }

    /// Replaces a connection that cannot write. Never creates the file: a missing file
    /// is a lost database, not a fresh start.
    fn reopen(&self, state: &mut State, op: &'static str, file: &DbFile) {
        state.reopen_at = Instant::now() + REOPEN_BACKOFF;
        let flags = OpenFlags::default().difference(OpenFlags::SQLITE_OPEN_CREATE);
        match open_existing_or_new(&file.path, flags) {
            Ok((conn, writable)) => {
                // A read-only connection still serves reads while the fault lasts.
                state.conn = Some(conn);
                state.stale = !writable;
                if writable {
                    tracing::info!(path = %file.path.display(), "reopened the database file {}", file.path.display());
                }
            }
            Err(Fail::Sqlite(err)) => {
                let fault = Fault::of(&err).unwrap_or(Fault::CannotOpen);
                self.fault(state, op, fault, Some(&err));
            }
            Err(fail) => {
                let err = fail.into_store_error(op, Some(&file.path));
                tracing::error!(error.type = err.error_type(), error.message = %err, path = %file.path.display(), "cannot reopen the database file");
            }
        }
    }
}

/// The store connection's page cache, in KiB (as a negative `cache_size`). Valine's
/// reads touch few pages (an index walk and a row), and the operating system caches the
/// file as well: SQLite's default of 2 MiB was most of the server's own memory.
const CACHE_KIB: i64 = -512;

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A log of at least this many pages (4 MiB at SQLite's default page size, the length at
/// which SQLite itself would checkpoint) is caught up with the store's writes held back.
const CATCH_UP_AFTER_PAGES: i64 = 1000;

/// What a log that grew longer during a burst is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The connection WAL checkpoints run on, beside the store's own. A checkpoint is where
/// SQLite fsyncs (with `synchronous=NORMAL` a commit does not), and run by the store's
/// connection it would hold the store's lock for the whole fsync: on a real disk that
/// stalled every request queued behind it (a 20 ms p99 for a 0.7 ms median at 1,000
/// acknowledgements a second). A PASSIVE checkpoint never blocks writers, so the store
/// keeps committing meanwhile. `None` (logged) leaves the store checkpointing inline, as
/// SQLite does by default.
fn open_checkpointer(path: &Path) -> Option<Connection> {
    let own = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|own| own.busy_timeout(Duration::from_millis(100)).map(|()| own))
    // A checkpoint copies pages from the log to the file without caching them.
    .and_then(|own| own.pragma_update(None, "cache_size", -64).map(|()| own));
    match own {
        Ok(own) => Some(own),
        Err(e) => {
            tracing::warn!(path = %path.display(), error.message = %e, "no separate checkpoint connection; the store checkpoints inline");
            None
        }
    }
}

/// Checkpoints on `own` in a thread of its own until the store is dropped, then turns
/// the store connection's own checkpoints off (only once the thread runs).
fn start_checkpointer(inner: &Arc<Inner>, own: Connection, stop: mpsc::Receiver<()>) {
    let store = Arc::downgrade(inner);
    let started = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(&own, &store, &stop));
    let state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
    match (started, state.conn.as_ref()) {
        (Ok(_), Some(conn)) => {
            if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", 0) {
                tracing::warn!(error.message = %e, "cannot move checkpoints off the store's connection");
            }
        }
        (Ok(_), None) => {}
        (Err(e), _) => {
            tracing::warn!(error.message = %e, "no checkpoint thread; the store checkpoints inline");
        }
    }
}

/// Copies the log into the file every `CHECKPOINT_EVERY`, and keeps the log from
/// growing without end.
///
/// The log starts over from its beginning only when a write finds every page of it
/// already copied. Under a steady stream of writes a checkpoint beside them never gets
/// there (each copies what was there when it began, and more has come meanwhile), so the
/// log would grow by every write (200 MB in 10 s of 1,000 deferred commands a second).
/// A log past `CATCH_UP_AFTER_PAGES` is therefore checkpointed twice more: once beside
/// the writes (copying what came during the first round, so little is left), then
/// holding the store's lock, so no writer of this process adds to it; the store's next
/// write starts the log over (`journal_size_limit` cuts a longer file back to
/// `WAL_SIZE_LIMIT`). At 1,000 deferred commands a second on the test machine's disk the
/// lock is held 3–5 ms about twice a second, and the log stays near 10 MB; one round
/// beside the writes instead of two held it 7–14 ms.
///
/// The thread ends as soon as the store is dropped (`stop` disconnects), closing `own`
/// with it: left open, a new store of this process on the same file could be handed
/// its file descriptor by SQLite, with the access it was opened with.
fn checkpoint_loop(own: &Connection, store: &Weak<Inner>, stop: &mpsc::Receiver<()>) {
    loop {
        // Dropping `own` next, as the last connection, checkpoints what is left.
        if stop.recv_timeout(CHECKPOINT_EVERY) != Err(mpsc::RecvTimeoutError::Timeout) {
            return;
        }
        if checkpoint(own).is_some_and(|pages| pages >= CATCH_UP_AFTER_PAGES) {
            // Another round beside the writes first copies what came during the first,
            // leaving little for the round that holds them back.
            checkpoint(own);
            let Some(inner) = store.upgrade() else {
                return;
            };
            let _writes_held = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            checkpoint(own);
        }
    }
}

/// One PASSIVE checkpoint on `conn`: the length of the log in pages, or `None` when it
/// failed (logged; busy, when a reader or writer kept it from finishing, is caught up
/// next round).
fn checkpoint(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
        .inspect_err(|e| tracing::debug!(error.message = %e, "checkpoint failed; retrying"))
        .ok()
}

/// Opens the file as [`open_file`] does, then brings the schema up to date; returns the
/// connection and whether it can write. A read-only connection is not migrated.
///
/// Switching a fresh file to WAL takes an exclusive lock for which SQLite does not
/// always call the busy handler, so processes opening the same new file at once may see
/// "database is locked": that is retried within the busy timeout.
fn open_existing_or_new(path: &Path, flags: OpenFlags) -> FResult<(Connection, bool)> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let (mut conn, mode) = loop {
        match open_file(path, flags) {
            Ok(opened) => break opened,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let Some(mode) = mode else {
        check_version(&conn)?;
        return Ok((conn, false));
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Fail::Unsupported(
            "the database cannot use WAL journal mode".into(),
        ));
    }
    migrate(&mut conn)?;
    Ok((conn, true))
}

/// An empty database with the whole schema ([`MIGRATIONS`] and the heartbeat table), in
/// WAL mode, as [`build_schema`] makes it. A first start copies it instead of having
/// SQLite parse and run every statement (about 3 ms of a 10 ms start-up); the schema
/// version it records lets `migrate` bring it forward like any other file. The test
/// `the_prebuilt_empty_database_is_what_the_migrations_build` refuses a copy that no
/// longer matches the migrations and says how to write it again.
const EMPTY_DATABASE: &[u8] = include_bytes!("sqlite_empty.db");

/// Creates the database at `path` whole, with its schema, unless a file is there by now.
///
/// [`EMPTY_DATABASE`] is written to a file of its own beside `path`, synced once and
/// then hard-linked to `path`. Creating it in place instead costs six fsyncs (journal,
/// file, log and directory) besides running the schema, which was half of a first
/// start-up; and here no process ever finds a half-made database at `path`. A link,
/// unlike a rename, never replaces a file another process has just created: that one is
/// kept.
fn create_whole(path: &Path) -> Result<(), BoxError> {
    let name = path.file_name().ok_or("the database path names no file")?;
    // Unique among the attempts of this process too: tests open one new file from
    // several tasks at once.
    static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut building = name.to_owned();
    building.push(format!(".creating-{}-{attempt}", std::process::id()));
    let building = path.with_file_name(building);
    let built = (|| -> Result<(), BoxError> {
        // A file left by a crashed process that had the same id is not ours: truncated.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // The permissions SQLite gives a database it creates (before the umask).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        let mut file = options.open(&building)?;
        file.write_all(EMPTY_DATABASE)?;
        file.sync_all()?;
        match std::fs::hard_link(&building, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e.into()),
            _ => Ok(()),
        }
    })();
    // Whatever happened, the file under construction goes; on success `path` keeps it.
    let _ = std::fs::remove_file(&building);
    built?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Builds the current schema in a new file at `building`, in WAL mode, without syncing:
/// how [`EMPTY_DATABASE`] is made.
#[cfg(test)]
fn build_schema(building: &Path) -> Result<(), BoxError> {
    let op = "create";
    let failed = |fail: Fail| -> BoxError { Box::new(fail.into_store_error(op, Some(building))) };
    // A file left by a crashed process that had the same id is not ours.
    match std::fs::remove_file(building) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let mut conn = Connection::open_with_flags(
        building,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    migrate(&mut conn).map_err(failed)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err("the database cannot use WAL journal mode".into());
    }
    // Closing the only connection copies the log into the file and removes it.
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Opens the file in WAL mode; returns the journal mode SQLite settled on, or `None`
/// when SQLite could only open the file read-only (it falls back to that silently).
fn open_file(path: &Path, flags: OpenFlags) -> rusqlite::Result<(Connection, Option<String>)> {
    let conn = Connection::open_with_flags(path, flags)?;
    // Set first: switching to WAL and migrating both wait for other processes.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Ok((conn, None));
    }
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    // With WAL, NORMAL loses at most the last commits on power loss, never
    // consistency; FULL would fsync every rate-limit hit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "cache_size", CACHE_KIB)?;
    Ok((conn, Some(mode)))
}

/// Refuses a schema newer than this build, which would misread its records.
fn check_version(conn: &Connection) -> FResult<usize> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(version).map_err(|e| Fail::corrupt("schema version", e))?;
    if applied > MIGRATIONS.len() {
        return Err(Fail::Unsupported(
            format!(
                "schema version {applied} is newer than this build ({})",
                MIGRATIONS.len()
            )
            .into(),
        ));
    }
    Ok(applied)
}

/// Applies the migration steps this database has not seen, in one transaction so that
/// processes opening a fresh file together apply them exactly once.
fn migrate(conn: &mut Connection) -> FResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied = check_version(&tx)?;
    for step in &MIGRATIONS[applied..] {
        tx.execute_batch(step)?;
    }
    if applied < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    }
    tx.execute_batch(HEARTBEAT_TABLE)?;
    tx.commit()?;
    Ok(())
}

fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> FResult<T>,
) -> FResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> FResult<T>,
) -> FResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn from_json<T: DeserializeOwned>(text: &str, what: &'static str) -> FResult<T> {
    serde_json::from_str(text).map_err(|e| Fail::corrupt(what, e))
}

fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> FResult<String> {
    serde_json::to_string(value).map_err(|e| Fail::encode(what, e))
}

/// Parses a snake_case enum the way serde names it, so stored text and JSON agree.
fn parse_enum<T: DeserializeOwned>(text: String, what: &'static str) -> FResult<T> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| Fail::corrupt(what, e))
}

fn to_i64(value: u64, what: &'static str) -> FResult<i64> {
    i64::try_from(value).map_err(|e| Fail::encode(what, e))
}

fn to_u64(value: i64, what: &'static str) -> FResult<u64> {
    u64::try_from(value).map_err(|e| Fail::corrupt(what, e))
}

fn to_u32(value: i64, what: &'static str) -> FResult<u32> {
    u32::try_from(value).map_err(|e| Fail::corrupt(what, e))
}

fn trace_from_row(row: &Row<'_>) -> FResult<TraceRecord> {
    let options: String = row.get("options")?;
    let steps: String = row.get("steps")?;
    let links: String = row.get("links")?;
    let duration_ms: Option<i64> = row.get("duration_ms")?;
    let outcome: Option<String> = row.get("outcome")?;
    Ok(TraceRecord {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        command: row.get("command")?,
        options: from_json(&options, "trace options")?,
        started_at_ms: row.get("started_at_ms")?,
        steps: from_json(&steps, "trace steps")?,
        duration_ms: duration_ms
            .map(|d| to_u64(d, "trace duration"))
            .transpose()?,
        outcome: outcome
            .map(|o| parse_enum::<Outcome>(o, "trace outcome"))
            .transpose()?,
        error: row.get("error")?,
        links: from_json(&links, "trace links")?,
        expires_at: row.get("expires_at")?,
    })
}

fn job_from_row(row: &Row<'_>) -> FResult<JobRecord> {
    let payload: String = row.get("payload")?;
    let state: String = row.get("state")?;
    Ok(JobRecord {
        id: row.get("id")?,
        payload: from_json(&payload, "job payload")?,
        state: parse_enum(state, "job state")?,
        attempts: to_u32(row.get("attempts")?, "job attempts")?,
        run_after_ms: row.get("run_after_ms")?,
        deadline_ms: row.get("deadline_ms")?,
        lease_owner: row.get("lease_owner")?,
        lease_until_ms: row.get("lease_until_ms")?,
        last_error: row.get("last_error")?,
        trace_id: row.get("trace_id")?,
        created_at_ms: row.get("created_at_ms")?,
        expires_at: row.get("expires_at")?,
    })
}

fn setting_from_row(row: &Row<'_>) -> FResult<SettingRecord> {
    Ok(SettingRecord {
        key: row.get("key")?,
        value: row.get("value")?,
        updated_by: row.get("updated_by")?,
        updated_at_ms: row.get("updated_at_ms")?,
    })
}

fn audit_from_row(row: &Row<'_>) -> FResult<AuditRecord> {
    Ok(AuditRecord {
        id: row.get("id")?,
        at_ms: row.get("at_ms")?,
        user_id: row.get("user_id")?,
        action: row.get("action")?,
        old_fingerprint: row.get("old_fingerprint")?,
        new_fingerprint: row.get("new_fingerprint")?,
        trace_id: row.get("trace_id")?,
        dry_run: row.get("dry_run")?,
        expires_at: row.get("expires_at")?,
    })
}

fn pending_from_row(row: &Row<'_>) -> FResult<PendingConfirmation> {
    Ok(PendingConfirmation {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        key: row.get("key")?,
        old_value: row.get("old_value")?,
        new_value: row.get("new_value")?,
        expires_at: row.get("expires_at")?,
    })
}

fn run_from_row(row: &Row<'_>) -> FResult<RunRecord> {
    Ok(RunRecord {
        id: to_u64(row.get("id")?, "run id")?,
        workflow_id: to_u64(row.get("workflow_id")?, "workflow id")?,
        workflow_name: row.get("workflow_name")?,
        status: row.get("status")?,
        conclusion: row.get("conclusion")?,
        branch: row.get("branch")?,
        head_sha: row.get("head_sha")?,
        run_attempt: to_u32(row.get("run_attempt")?, "run attempt")?,
        html_url: row.get("html_url")?,
        display_title: row.get("display_title")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        expires_at: row.get("expires_at")?,
    })
}

fn correlation_from_row(row: &Row<'_>) -> FResult<CorrelationRecord> {
    let kind: String = row.get("kind")?;
    let run_id: Option<i64> = row.get("run_id")?;
    Ok(CorrelationRecord {
        id: row.get("id")?,
        kind: parse_enum::<CorrelationKind>(kind, "correlation kind")?,
        requester: row.get("requester")?,
        channel_id: row.get("channel_id")?,
        application_id: row.get("application_id")?,
        interaction_token: row.get("interaction_token")?,
        token_expires_at_ms: row.get("token_expires_at_ms")?,
        wait: row.get("wait")?,
        api_base: row.get("api_base")?,
        run_id: run_id
            .map(|id| to_u64(id, "correlation run id"))
            .transpose()?,
        created_at_ms: row.get("created_at_ms")?,
        expires_at: row.get("expires_at")?,
    })
}

const VERIFICATION_COLUMNS: &str = "run_id, run_attempt, passed, report, created_at_ms, expires_at";

fn verification_from_row(row: &Row<'_>) -> FResult<VerificationRecord> {
    let report: String = row.get("report")?;
    Ok(VerificationRecord {
        run_id: to_u64(row.get("run_id")?, "run id")?,
        run_attempt: to_u32(row.get("run_attempt")?, "run attempt")?,
        passed: row.get("passed")?,
        report: from_json(&report, "verification report")?,
        created_at_ms: row.get("created_at_ms")?,
        expires_at: row.get("expires_at")?,
    })
}

fn failed_step_from_row(row: &Row<'_>) -> FResult<FailedStepRecord> {
    Ok(FailedStepRecord {
        run_id: to_u64(row.get("run_id")?, "run id")?,
        run_attempt: to_u32(row.get("run_attempt")?, "run attempt")?,
        job_id: to_u64(row.get("job_id")?, "job id")?,
        job_name: row.get("job_name")?,
        step_name: row.get("step_name")?,
        html_url: row.get("html_url")?,
        expires_at: row.get("expires_at")?,
    })
}

/// A job ready to insert, its JSON already rendered so the blocking closure only binds.
struct JobRow {
    id: String,
    payload: String,
    run_after_ms: i64,
    deadline_ms: i64,
    trace_id: Option<String>,
}

impl JobRow {
    fn new(job: &NewJob) -> FResult<Self> {
        Ok(JobRow {
            id: job.id.clone(),
            payload: to_json(&job.payload, "job payload")?,
            run_after_ms: job.run_after_ms,
            deadline_ms: job.deadline_ms,
            trace_id: job.trace_id.clone(),
        })
    }

    /// Inserts the job as `Pending`; an id already present keeps its first version, so a
    /// caller that retries after an unclear failure never doubles the work.
    fn insert(&self, conn: &Connection, created_at_ms: i64) -> FResult<()> {
        conn.prepare_cached(
            "INSERT INTO jobs (id, payload, state, attempts, run_after_ms, deadline_ms, \
             trace_id, created_at_ms) VALUES (?1, ?2, 'pending', 0, ?3, ?4, ?5, ?6) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            self.id,
            self.payload,
            self.run_after_ms,
            self.deadline_ms,
            self.trace_id,
            created_at_ms
        ])?;
        Ok(())
    }
}

fn write_run(conn: &Connection, run: &RunRecord) -> FResult<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, workflow_id, workflow_name, status, conclusion, branch, head_sha, \
         run_attempt, html_url, display_title, created_at, updated_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, \
         workflow_name = excluded.workflow_name, status = excluded.status, \
         conclusion = excluded.conclusion, branch = excluded.branch, \
         head_sha = excluded.head_sha, run_attempt = excluded.run_attempt, \
         html_url = excluded.html_url, display_title = excluded.display_title, \
         created_at = excluded.created_at, updated_at = excluded.updated_at, \
         expires_at = excluded.expires_at",
    )?
    .execute(params![
        to_i64(run.id, "run id")?,
        to_i64(run.workflow_id, "workflow id")?,
        run.workflow_name,
        run.status,
        run.conclusion,
        run.branch,
        run.head_sha,
        run.run_attempt,
        run.html_url,
        run.display_title,
        run.created_at,
        run.updated_at,
        run.expires_at
    ])?;
    Ok(())
}

/// Writes the step over whatever is stored; [`FailedStepRecord::replaces`] decides whether.
fn write_failed_step(conn: &Connection, step: &FailedStepRecord) -> FResult<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO failed_steps ({FAILED_STEP_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        to_i64(step.run_id, "run id")?,
        step.run_attempt,
        to_i64(step.job_id, "job id")?,
        step.job_name,
        step.step_name,
        step.html_url,
        step.expires_at,
    ])?;
    Ok(())
}

/// Attaches the run if [`CorrelationRecord::can_attach`] allows it. Inside the caller's
/// immediate transaction, so no other writer moves a run between the check and the write.
fn attach_correlation_run(tx: &Transaction<'_>, id: &str, run_id: u64, now: i64) -> FResult<bool> {
    let Some(target) = query_opt(
        tx,
        &format!("SELECT {CORRELATION_COLUMNS} FROM correlations WHERE id = ?1"),
        [id],
        correlation_from_row,
    )?
    else {
        return Ok(false);
    };
    let run = to_i64(run_id, "run id")?;
    let holders = query_all(
        tx,
        &format!("SELECT {CORRELATION_COLUMNS} FROM correlations WHERE run_id = ?1"),
        [run],
        correlation_from_row,
    )?;
    if !target.can_attach(run_id, &holders, now) {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE correlations SET run_id = ?2 WHERE id = ?1")?
        .execute(params![id, run])?;
    Ok(true)
}

fn insert_audit(conn: &Connection, audit: &AuditRecord) -> FResult<()> {
    // Audit records are immutable; a repeated id is the same record written again.
    conn.prepare_cached(
        "INSERT INTO audit (id, at_ms, user_id, action, old_fingerprint, new_fingerprint, \
         trace_id, dry_run, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        audit.id,
        audit.at_ms,
        audit.user_id,
        audit.action,
        audit.old_fingerprint,
        audit.new_fingerprint,
        audit.trace_id,
        audit.dry_run,
        audit.expires_at
    ])?;
    Ok(())
}

/// Moves a job its `owner` still holds ([`JobRecord::held_by`]) to the state `next`
/// gives; `false` when the lease has passed to another worker or the job is no longer
/// running.
fn update_held_job(
    conn: &mut Connection,
    id: &str,
    owner: &str,
    next: impl FnOnce(&JobRecord) -> JobRecord,
) -> FResult<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let job = query_opt(
        &tx,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
        [id],
        job_from_row,
    )?;
    match job {
        Some(job) if job.held_by(owner) => {
            write_job_state(&tx, &next(&job))?;
            tx.commit()?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Writes everything a job's transitions change; its payload, deadline and creation
/// time never change after enqueueing.
fn write_job_state(conn: &Connection, job: &JobRecord) -> FResult<()> {
    conn.prepare_cached(
        "UPDATE jobs SET state = ?2, attempts = ?3, run_after_ms = ?4, lease_owner = ?5, \
         lease_until_ms = ?6, last_error = ?7, expires_at = ?8 WHERE id = ?1",
    )?
    .execute(params![
        job.id,
        job_state_str(job.state),
        job.attempts,
        job.run_after_ms,
        job.lease_owner,
        job.lease_until_ms,
        job.last_error,
        job.expires_at
    ])?;
    Ok(())
}

/// The stored spelling of a job state: serde's snake_case name, as `parse_enum` reads it.
fn job_state_str(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        // A committed write, not a read: a read-only file or a full disk answers reads.
        self.call("ping", |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO heartbeat (id, beats) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET beats = beats + 1",
                [],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl TraceStore for SqliteStore {
    async fn put_trace(&self, trace: &TraceRecord) -> StoreResult<()> {
        let op = "put_trace";
        let encode = || -> FResult<_> {
            Ok((
                to_json(&trace.options, "trace options")?,
                to_json(&trace.steps, "trace steps")?,
                to_json(&trace.links, "trace links")?,
                trace
                    .duration_ms
                    .map(|d| to_i64(d, "trace duration"))
                    .transpose()?,
            ))
        };
        let (options, steps, links, duration_ms) =
            encode().map_err(|fail| fail.into_store_error(op, None))?;
        let trace = trace.clone();
        self.call(op, move |conn| {
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO traces ({TRACE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                trace.id,
                trace.user_id,
                trace.command,
                options,
                trace.started_at_ms,
                steps,
                duration_ms,
                trace.outcome.map(Outcome::as_str),
                trace.error,
                links,
                trace.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_trace(&self, id: &str, now: i64) -> StoreResult<Option<TraceRecord>> {
        let id = id.to_owned();
        self.call("get_trace", move |conn| {
            query_opt(
                conn,
                &format!("SELECT {TRACE_COLUMNS} FROM traces WHERE id = ?1 AND expires_at > ?2"),
                params![id, now],
                trace_from_row,
            )
        })
        .await
    }

    async fn latest_trace_for_user(
        &self,
        user_id: &str,
        exclude_command: &str,
        now: i64,
    ) -> StoreResult<Option<TraceRecord>> {
        let user_id = user_id.to_owned();
        let exclude = exclude_command.to_owned();
        self.call("latest_trace_for_user", move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {TRACE_COLUMNS} FROM traces \
                     WHERE user_id = ?1 AND command <> ?2 AND expires_at > ?3 \
                     ORDER BY started_at_ms DESC, id DESC LIMIT 1"
                ),
                params![user_id, exclude, now],
                trace_from_row,
            )
        })
        .await
    }

    async fn list_traces(&self, query: &TraceQuery, now: i64) -> StoreResult<Vec<TraceRecord>> {
        let query = query.clone();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        self.call("list_traces", move |conn| {
            // `TraceRecord::matches` and `newest_first`, stated in SQL so that LIMIT
            // applies after the filter; the conformance suite compares the two.
            query_all(
                conn,
                &format!(
                    "SELECT {TRACE_COLUMNS} FROM traces \
                     WHERE expires_at > ?1 AND started_at_ms >= ?2 \
                     AND (?3 IS NULL OR user_id = ?3) AND (?4 IS NULL OR command = ?4) \
                     ORDER BY started_at_ms DESC, id DESC LIMIT ?5"
                ),
                params![now, query.since_ms, query.user_id, query.command, limit],
                trace_from_row,
            )
        })
        .await
    }

    async fn traces_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<TraceRecord>> {
        let prefix = prefix.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call("traces_by_prefix", move |conn| {
            // `substr`, not LIKE: an id character is never a pattern.
            query_all(
                conn,
                &format!(
                    "SELECT {TRACE_COLUMNS} FROM traces \
                     WHERE substr(id, 1, length(?1)) = ?1 AND expires_at > ?2 \
                     ORDER BY started_at_ms DESC, id DESC LIMIT ?3"
                ),
                params![prefix, now, limit],
                trace_from_row,
            )
        })
        .await
    }
}

#[async_trait]
impl HousekeepingStore for SqliteStore {
    async fn census(&self, now: i64) -> StoreResult<Census> {
        self.call("census", move |conn| {
            let mut census = Census::default();
            for &(table, kind) in TABLES {
                // `rules::is_expired`: a null `expires_at` (an unfinished job) is live.
                let (live, expired): (i64, i64) = if expiring(table) {
                    let sql = format!(
                        "SELECT COALESCE(SUM(expires_at IS NULL OR expires_at > ?1), 0), \
                         COALESCE(SUM(expires_at <= ?1), 0) FROM {table}"
                    );
                    conn.prepare_cached(&sql)?
                        .query_row([now], |row| Ok((row.get(0)?, row.get(1)?)))?
                } else {
                    let sql = format!("SELECT COUNT(*) FROM {table}");
                    (
                        conn.prepare_cached(&sql)?.query_row([], |row| row.get(0))?,
                        0,
                    )
                };
                census.live.add(kind, u64::try_from(live).unwrap_or(0));
                census
                    .expired
                    .add(kind, u64::try_from(expired).unwrap_or(0));
            }
            Ok(census)
        })
        .await
    }

    async fn delete_expired(&self, now: i64) -> StoreResult<RecordCounts> {
        self.call("delete_expired", move |conn| {
            // One transaction: the condition is checked by the delete itself, so a row
            // written again meanwhile is live and stays.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = RecordCounts::default();
            for &(table, kind) in TABLES.iter().filter(|(t, _)| expiring(t)) {
                let sql = format!("DELETE FROM {table} WHERE expires_at <= ?1");
                deleted.add(kind, tx.execute(&sql, [now])? as u64);
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }
}

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit_rate_window(
        &self,
        user_id: &str,
        window_start: i64,
        expires_at: i64,
    ) -> StoreResult<u32> {
        let user_id = user_id.to_owned();
        self.call("hit_rate_window", move |conn| {
            hit_window(conn, &user_id, window_start, expires_at)
        })
        .await
    }
}

/// One hit on a rate window, returning the count including it.
fn hit_window(
    conn: &Connection,
    user_id: &str,
    window_start: i64,
    expires_at: i64,
) -> FResult<u32> {
    let count: i64 = conn
        .prepare_cached(
            "INSERT INTO rate_windows (user_id, window_start, count, expires_at) \
             VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (user_id, window_start) DO UPDATE \
             SET count = count + 1, expires_at = max(expires_at, excluded.expires_at) \
             RETURNING count",
        )?
        .query_row(params![user_id, window_start, expires_at], |row| row.get(0))?;
    to_u32(count, "rate window count")
}

/// The live block of `user_id` ([`BlockRecord::is_live`]), if any.
fn live_block(conn: &Connection, user_id: &str, now: i64) -> FResult<Option<BlockRecord>> {
    Ok(
        query_opt(conn, BLOCK_SELECT, [user_id], block_from_row)?
            .filter(|block| block.is_live(now)),
    )
}

/// Both reads in one hold of the connection, on the request's own thread when the store
/// is free ([`SqliteStore::call_short`]).
#[async_trait]
impl AdmissionStore for SqliteStore {
    async fn admit(
        &self,
        user_id: &str,
        now: i64,
        check_block: bool,
        hit: Option<RateHit>,
    ) -> StoreResult<Admission> {
        let user_id = user_id.to_owned();
        self.call_short("admit", move |conn| {
            if check_block && live_block(conn, &user_id, now)?.is_some() {
                return Ok(Admission::Blocked);
            }
            let count = match hit {
                Some(hit) => Some(hit_window(
                    conn,
                    &user_id,
                    hit.window_start,
                    hit.expires_at,
                )?),
                None => None,
            };
            Ok(Admission::Open { count })
        })
        .await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> StoreResult<()> {
        let op = "enqueue_job";
        let row = JobRow::new(job).map_err(|fail| fail.into_store_error(op, None))?;
        self.call_short(op, move |conn| row.insert(conn, now_ms))
            .await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>> {
        let owner = owner.to_owned();
        self.call("claim_job", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The condition is `JobRecord::claimable_at` in SQL; the conformance check
            // `job_claim_agrees_with_claimable_at` holds the two together. Each state is
            // asked apart so the `jobs_due` index walks straight to the oldest pending
            // job: one query with `OR` sorts every due job, and a backlog of thousands
            // made each claim cost milliseconds.
            let due = query_opt(
                &tx,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM ( \
                       SELECT * FROM (SELECT * FROM jobs \
                         WHERE state = 'pending' AND run_after_ms <= ?1 \
                         ORDER BY run_after_ms, id LIMIT 1) \
                       UNION ALL \
                       SELECT * FROM (SELECT * FROM jobs \
                         WHERE state = 'running' AND lease_until_ms < ?1 \
                         ORDER BY run_after_ms, id LIMIT 1)) \
                     ORDER BY run_after_ms, id LIMIT 1"
                ),
                [now_ms],
                job_from_row,
            )?;
            let Some(due) = due else {
                return Ok(None);
            };
            debug_assert!(due.claimable_at(now_ms), "claim query and rule disagree");
            let claimed = due.claimed(&owner, lease_until_ms);
            write_job_state(&tx, &claimed)?;
            tx.commit()?;
            Ok(Some(claimed))
        })
        .await
    }

    async fn claim_job_id(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<JobRecord>> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.call("claim_job_id", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let job = query_opt(
                &tx,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [&id],
                job_from_row,
            )?;
            match job {
                Some(job) if job.claimable_at(now_ms) => {
                    let claimed = job.claimed(&owner, lease_until_ms);
                    write_job_state(&tx, &claimed)?;
                    tx.commit()?;
                    Ok(Some(claimed))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    async fn renew_job_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<bool> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.call("renew_job_lease", move |conn| {
            update_held_job(conn, &id, &owner, |job| job.renewed(lease_until_ms))
        })
        .await
    }

    async fn complete_job(&self, id: &str, owner: &str, expires_at: i64) -> StoreResult<bool> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.call("complete_job", move |conn| {
            update_held_job(conn, &id, &owner, |job| job.completed(expires_at))
        })
        .await
    }

    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_after_ms: i64,
        error: &str,
    ) -> StoreResult<bool> {
        let (id, owner, error) = (id.to_owned(), owner.to_owned(), error.to_owned());
        self.call("retry_job", move |conn| {
            update_held_job(conn, &id, &owner, |job| job.retried(run_after_ms, &error))
        })
        .await
    }

    async fn fail_job(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        let (id, owner, error) = (id.to_owned(), owner.to_owned(), error.to_owned());
        self.call("fail_job", move |conn| {
            update_held_job(conn, &id, &owner, |job| job.failed(&error, expires_at))
        })
        .await
    }

    async fn release_job_leases(&self, owner: &str) -> StoreResult<u32> {
        let owner = owner.to_owned();
        self.call("release_job_leases", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let leased = query_all(
                &tx,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE lease_owner = ?1"),
                [&owner],
                job_from_row,
            )?;
            let mut released = 0u32;
            for job in leased.iter().filter(|job| job.held_by(&owner)) {
                write_job_state(&tx, &job.released())?;
                released = released.saturating_add(1);
            }
            tx.commit()?;
            Ok(released)
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let id = id.to_owned();
        self.call("get_job", move |conn| {
            query_opt(
                conn,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
        })
        .await
    }

    async fn failed_jobs(&self, now: i64) -> StoreResult<Vec<JobRecord>> {
        self.call("failed_jobs", move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'failed' AND expires_at > ?1 \
                     ORDER BY created_at_ms DESC, id DESC"
                ),
                [now],
                job_from_row,
            )
        })
        .await
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<SettingRecord>> {
        let key = key.to_owned();
        self.call("get_setting", move |conn| {
            query_opt(
                conn,
                "SELECT key, value, updated_by, updated_at_ms FROM settings WHERE key = ?1",
                [key],
                setting_from_row,
            )
        })
        .await
    }

    async fn change_setting(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&SettingRecord>,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        let expected = expected.map(str::to_owned);
        let new = new.cloned();
        let audit = audit.clone();
        self.call("change_setting", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = query_opt(
                &tx,
                "SELECT key, value, updated_by, updated_at_ms FROM settings WHERE key = ?1",
                [&key],
                setting_from_row,
            )?;
            if !SettingRecord::still_expected(current.as_ref(), expected.as_deref()) {
                return Ok(false);
            }
            match &new {
                // The row is keyed by `key` (what the caller checked), whatever `new.key`
                // says, so the condition and the write always concern the same setting.
                Some(record) => {
                    tx.prepare_cached(
                        "INSERT INTO settings (key, value, updated_by, updated_at_ms) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE \
                         SET value = excluded.value, updated_by = excluded.updated_by, \
                         updated_at_ms = excluded.updated_at_ms",
                    )?
                    .execute(params![
                        key,
                        record.value,
                        record.updated_by,
                        record.updated_at_ms
                    ])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM settings WHERE key = ?1")?
                        .execute([&key])?;
                }
            }
            insert_audit(&tx, &audit)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        let audit = audit.clone();
        self.call("append_audit", move |conn| insert_audit(conn, &audit))
            .await
    }

    async fn list_audit(
        &self,
        user_id: Option<&str>,
        since_ms: i64,
        now: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let user_id = user_id.map(str::to_owned);
        self.call("list_audit", move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     WHERE (?1 IS NULL OR user_id = ?1) AND at_ms >= ?2 AND expires_at > ?3 \
                     ORDER BY at_ms DESC, id DESC"
                ),
                params![user_id, since_ms, now],
                audit_from_row,
            )
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingConfirmation) -> StoreResult<()> {
        let p = pending.clone();
        self.call("put_pending", move |conn| {
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO pending ({PENDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                p.id,
                p.user_id,
                p.key,
                p.old_value,
                p.new_value,
                p.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn take_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingConfirmation>> {
        let id = id.to_owned();
        self.call("take_pending", move |conn| {
            query_opt(
                conn,
                &format!(
                    "DELETE FROM pending WHERE id = ?1 AND expires_at > ?2 \
                     RETURNING {PENDING_COLUMNS}"
                ),
                params![id, now],
                pending_from_row,
            )
        })
        .await
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn accept_delivery(&self, effects: &DeliveryEffects, now: i64) -> StoreResult<bool> {
        let op = "accept_delivery";
        let jobs = effects
            .jobs
            .iter()
            .map(JobRow::new)
            .collect::<FResult<Vec<_>>>()
            .map_err(|fail| fail.into_store_error(op, None))?;
        let delivery_id = effects.delivery_id.clone();
        let expires_at = effects.expires_at;
        let run = effects.run.clone();
        let failed_step = effects.failed_step.clone();
        let attach = effects.attach.clone();
        self.call(op, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<i64> = tx
                .prepare_cached("SELECT expires_at FROM deliveries WHERE id = ?1")?
                .query_row([&delivery_id], |row| row.get(0))
                .optional()?;
            if !rules::is_free(stored, now) {
                // Dropping `tx` rolls back; nothing was written anyway.
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deliveries (id, expires_at) VALUES (?1, ?2)",
            )?
            .execute(params![delivery_id, expires_at])?;
            if let Some(run) = run {
                let stored = query_opt(
                    &tx,
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                    [to_i64(run.id, "run id")?],
                    run_from_row,
                )?;
                write_run(&tx, &RunRecord::merge(stored.as_ref(), &run, now))?;
            }
            if let Some(step) = &failed_step {
                let stored = query_opt(
                    &tx,
                    &format!("SELECT {FAILED_STEP_COLUMNS} FROM failed_steps WHERE run_id = ?1"),
                    [to_i64(step.run_id, "run id")?],
                    failed_step_from_row,
                )?;
                if step.replaces(stored.as_ref(), now) {
                    write_failed_step(&tx, step)?;
                }
            }
            if let Some(RunAttachment {
                correlation_id,
                run_id,
            }) = &attach
            {
                // A refused attachment (another run got there first) is not a failure
                // of the delivery: the run is simply not this correlation's.
                attach_correlation_run(&tx, correlation_id, *run_id, now)?;
            }
            // The trait gives this write seconds only; jobs record when they were created.
            let created_at_ms = now.saturating_mul(1000);
            for job in &jobs {
                job.insert(&tx, created_at_ms)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn failed_step(&self, run_id: u64, now: i64) -> StoreResult<Option<FailedStepRecord>> {
        let op = "failed_step";
        let run_id = to_i64(run_id, "run id").map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {FAILED_STEP_COLUMNS} FROM failed_steps \
                     WHERE run_id = ?1 AND expires_at > ?2"
                ),
                params![run_id, now],
                failed_step_from_row,
            )
        })
        .await
    }

    async fn get_run(&self, id: u64, now: i64) -> StoreResult<Option<RunRecord>> {
        let op = "get_run";
        let id = to_i64(id, "run id").map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            query_opt(
                conn,
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1 AND expires_at > ?2"),
                params![id, now],
                run_from_row,
            )
        })
        .await
    }

    async fn recent_runs(&self, limit: usize, now: i64) -> StoreResult<Vec<RunRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call("recent_runs", move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE expires_at > ?1 \
                     ORDER BY id DESC LIMIT ?2"
                ),
                params![now, limit],
                run_from_row,
            )
        })
        .await
    }
}

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn put_verification(
        &self,
        verification: &VerificationRecord,
        now: i64,
    ) -> StoreResult<VerificationRecord> {
        let op = "put_verification";
        let v = verification.clone();
        let run_id = to_i64(v.run_id, "run id").map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            let report = to_json(&v.report, "verification report")?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = query_opt(
                &tx,
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                     WHERE run_id = ?1 AND run_attempt = ?2"
                ),
                params![run_id, v.run_attempt],
                verification_from_row,
            )?;
            if let Some(stored) = stored
                && !rules::is_free(Some(stored.expires_at), now)
            {
                return Ok(stored);
            }
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO verifications ({VERIFICATION_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                run_id,
                v.run_attempt,
                v.passed,
                report,
                v.created_at_ms,
                v.expires_at
            ])?;
            tx.commit()?;
            Ok(v)
        })
        .await
    }

    async fn get_verification(
        &self,
        run_id: u64,
        run_attempt: u32,
        now: i64,
    ) -> StoreResult<Option<VerificationRecord>> {
        let op = "get_verification";
        let run_id = to_i64(run_id, "run id").map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                     WHERE run_id = ?1 AND run_attempt = ?2 AND expires_at > ?3"
                ),
                params![run_id, run_attempt, now],
                verification_from_row,
            )
        })
        .await
    }
}

#[async_trait]
impl CorrelationStore for SqliteStore {
    async fn put_correlation(
        &self,
        correlation: &CorrelationRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let op = "put_correlation";
        let c = correlation.clone();
        let run_id = c
            .run_id
            .map(|id| to_i64(id, "run id"))
            .transpose()
            .map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<i64> = tx
                .prepare_cached("SELECT expires_at FROM correlations WHERE id = ?1")?
                .query_row([&c.id], |row| row.get(0))
                .optional()?;
            if !rules::is_free(stored, now) {
                return Ok(false);
            }
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO correlations ({CORRELATION_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                c.id,
                c.kind.as_str(),
                c.requester,
                c.channel_id,
                c.application_id,
                c.interaction_token,
                c.token_expires_at_ms,
                c.wait,
                c.api_base,
                run_id,
                c.created_at_ms,
                c.expires_at
            ])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_correlation(&self, id: &str, now: i64) -> StoreResult<Option<CorrelationRecord>> {
        let id = id.to_owned();
        self.call("get_correlation", move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {CORRELATION_COLUMNS} FROM correlations \
                     WHERE id = ?1 AND expires_at > ?2"
                ),
                params![id, now],
                correlation_from_row,
            )
        })
        .await
    }

    async fn correlation_for_run(
        &self,
        run_id: u64,
        now: i64,
    ) -> StoreResult<Option<CorrelationRecord>> {
        let op = "correlation_for_run";
        let run_id = to_i64(run_id, "run id").map_err(|fail| fail.into_store_error(op, None))?;
        self.call(op, move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {CORRELATION_COLUMNS} FROM correlations \
                     WHERE run_id = ?1 AND expires_at > ?2 \
                     ORDER BY created_at_ms DESC, id DESC LIMIT 1"
                ),
                params![run_id, now],
                correlation_from_row,
            )
        })
        .await
    }

    async fn attach_run(&self, id: &str, run_id: u64, now: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.call("attach_run", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let attached = attach_correlation_run(&tx, &id, run_id, now)?;
            tx.commit()?;
            Ok(attached)
        })
        .await
    }

    async fn latest_deploy_correlation(&self, now: i64) -> StoreResult<Option<CorrelationRecord>> {
        self.call("latest_deploy_correlation", move |conn| {
            query_opt(
                conn,
                &format!(
                    "SELECT {CORRELATION_COLUMNS} FROM correlations \
                     WHERE kind = 'deploy' AND expires_at > ?1 \
                     ORDER BY created_at_ms DESC, id DESC LIMIT 1"
                ),
                [now],
                correlation_from_row,
            )
        })
        .await
    }
}

fn block_from_row(row: &Row<'_>) -> FResult<BlockRecord> {
    Ok(BlockRecord {
        user_id: row.get("user_id")?,
        reason: row.get("reason")?,
        blocked_by: row.get("blocked_by")?,
        at_ms: row.get("at_ms")?,
        expires_at: row.get("expires_at")?,
    })
}

const BLOCK_SELECT: &str =
    "SELECT user_id, reason, blocked_by, at_ms, expires_at FROM blocks WHERE user_id = ?1";

#[async_trait]
impl BlockStore for SqliteStore {
    async fn put_block(&self, block: &BlockRecord, audit: &AuditRecord) -> StoreResult<()> {
        let (block, audit) = (block.clone(), audit.clone());
        self.call("put_block", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO blocks (user_id, reason, blocked_by, at_ms, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                block.user_id,
                block.reason,
                block.blocked_by,
                block.at_ms,
                block.expires_at
            ])?;
            insert_audit(&tx, &audit)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_block(
        &self,
        user_id: &str,
        audit: &AuditRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let (user_id, audit) = (user_id.to_owned(), audit.clone());
        self.call("remove_block", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = query_opt(&tx, BLOCK_SELECT, [&user_id], block_from_row)?;
            if !stored.is_some_and(|block| block.is_live(now)) {
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM blocks WHERE user_id = ?1")?
                .execute([&user_id])?;
            insert_audit(&tx, &audit)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_block(&self, user_id: &str, now: i64) -> StoreResult<Option<BlockRecord>> {
        let user_id = user_id.to_owned();
        self.call("get_block", move |conn| live_block(conn, &user_id, now))
            .await
    }
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.call("acquire_lock", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = tx
                .prepare_cached("SELECT name, owner, expires_at FROM locks WHERE name = ?1")?
                .query_row([&name], |row| {
                    Ok(LockRecord {
                        name: row.get(0)?,
                        owner: row.get(1)?,
                        expires_at: row.get(2)?,
                    })
                })
                .optional()?;
            if !LockRecord::can_take(stored.as_ref(), &owner, now) {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO locks (name, owner, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![name, owner, expires_at])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> StoreResult<()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.call("release_lock", move |conn| {
            conn.prepare_cached("DELETE FROM locks WHERE name = ?1 AND owner = ?2")?
                .execute(params![name, owner])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SharedStore;
    use crate::store::conformance;

    async fn in_memory() -> ((), SharedStore) {
        let store = SqliteStore::open_in_memory().await.expect("open in memory");
        ((), Arc::new(store))
    }

    async fn in_file() -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("valine.db"))
            .await
            .expect("open file");
        (dir, Arc::new(store))
    }

    mod memory {
        use super::*;
        crate::store_conformance_suite!(in_memory);
    }

    mod file {
        use super::*;
        crate::store_conformance_suite!(in_file);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_on_one_file_share_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let a = SqliteStore::open(&path).await.expect("open a");
        let b = SqliteStore::open(&path).await.expect("open b");
        conformance::shared_between_instances(Arc::new(a), Arc::new(b)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_of_a_fresh_file_migrate_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let path = path.clone();
            opens.spawn(async move { SqliteStore::open(&path).await });
        }
        while let Some(opened) = opens.join_next().await {
            let store = opened.expect("join").expect("open");
            store.ping().await.expect("ping");
        }
    }

    #[tokio::test]
    async fn a_new_file_appears_whole_with_its_schema_in_wal_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        create_whole(&path).expect("create");
        // No more than SQLite's own 0644: nobody else may write the store.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let bits = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(bits & !0o644, 0, "{bits:o}");
        }
        let conn = Connection::open(&path).expect("raw open");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        assert_eq!(check_version(&conn).expect("version"), MIGRATIONS.len());
        drop(conn);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into())
            .collect();
        assert!(
            names.iter().all(|name| !name.contains(".creating-")),
            "{names:?}"
        );
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(store.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
    }

    /// The schema of a database file: its version, journal mode and every table, index
    /// and trigger as SQLite records them.
    type Schema = (i64, String, Vec<(String, String, String, Option<String>)>);

    fn schema_of(path: &Path) -> Schema {
        let conn = Connection::open(path).expect("raw open");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("mode");
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .expect("prepare");
        let objects = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        (version, mode, objects)
    }

    #[test]
    fn the_prebuilt_empty_database_is_what_the_migrations_build() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A file left under the name by a crashed process is replaced.
        let built = dir.path().join("built.db");
        std::fs::write(&built, b"not a database").expect("leftover");
        build_schema(&built).expect("build");
        let wanted = schema_of(&built);
        assert_eq!(wanted.0, MIGRATIONS.len() as i64);
        assert_eq!(wanted.1, "wal");
        let prebuilt = dir.path().join("prebuilt.db");
        std::fs::write(&prebuilt, EMPTY_DATABASE).expect("copy");
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sqlite_empty.db");
        if schema_of(&prebuilt) != wanted
            && std::env::var_os("VALINE_WRITE_EMPTY_DATABASE").is_some()
        {
            std::fs::copy(&built, source).expect("write the prebuilt database");
            panic!("{source} written again: build and test once more");
        }
        assert_eq!(
            schema_of(&prebuilt),
            wanted,
            "{source} no longer matches MIGRATIONS; write it again with \
             `VALINE_WRITE_EMPTY_DATABASE=1 cargo test --lib the_prebuilt_empty_database`"
        );
        // Nothing but the schema: no row of anyone's data ships with the binary.
        let conn = Connection::open(&prebuilt).expect("raw open");
        for (kind, table, _, _) in &wanted.2 {
            if kind == "table" {
                let rows: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
                        row.get(0)
                    })
                    .expect("count");
                assert_eq!(rows, 0, "{table}");
            }
        }
    }

    #[tokio::test]
    async fn creating_keeps_a_file_another_process_made_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let first = SqliteStore::open(&path).await.expect("open");
        assert_eq!(first.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
        // As a second process does when the file appeared after it looked.
        create_whole(&path).expect("create");
        assert_eq!(first.hit_rate_window("u", 0, 100).await.expect("hit"), 2);
        drop(first);
        let again = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(again.hit_rate_window("u", 0, 100).await.expect("hit"), 3);
    }

    #[tokio::test]
    async fn a_call_that_panics_is_an_error_and_the_store_goes_on() {
        // On the blocking pool (`call`) and on the caller's thread (`call_short`).
        for short in [false, true] {
            let store = SqliteStore::open_in_memory().await.expect("open");
            let half_done = |conn: &mut Connection| -> FResult<()> {
                let tx = conn.transaction()?;
                tx.execute_batch("CREATE TABLE half_done (x INTEGER)")?;
                panic!("a bug in a store call");
            };
            let err = if short {
                store.call_short("test_panic", half_done).await
            } else {
                store.call("test_panic", half_done).await
            }
            .expect_err("a panic is an error");
            assert_eq!(err.op(), "test_panic");
            if short {
                assert!(
                    format!("{:?}", std::error::Error::source(&err))
                        .contains("a bug in a store call"),
                    "{err:?}"
                );
            } else {
                assert!(matches!(err, StoreError::Task { .. }), "{err:?}");
            }
            assert!(!err.is_retryable());
            // The transaction the panic left was rolled back.
            assert_eq!(store.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
            let tables: i64 = store
                .call_short("test", |conn| {
                    Ok(conn.query_row(
                        "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
                        [],
                        |row| row.get(0),
                    )?)
                })
                .await
                .expect("count");
            assert_eq!(tables, 0);
        }
    }

    // The lock is held across a yield on purpose: that is the busy store under test.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_short_call_runs_on_the_callers_thread_unless_the_store_is_busy() {
        let store = SqliteStore::open_in_memory().await.expect("open");
        let here = std::thread::current().id();
        let thread = |_: &mut Connection| Ok(std::thread::current().id());
        assert_eq!(store.call_short("t", thread).await.expect("free"), here);
        // Held elsewhere (a checkpoint catching up): the call waits on the blocking pool,
        // not on this thread, which serves other requests meanwhile.
        let held = store.inner.state.lock().expect("lock");
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.call_short("t", thread).await }
        });
        // The spawned call runs first on this single-threaded runtime, finds the lock
        // taken and goes to the pool.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        let ran_on = waiting.await.expect("task").expect("busy");
        assert_ne!(ran_on, here);
    }

    /// The salt of a WAL file's header, which changes each time the log starts over.
    fn wal_salt(wal: &Path) -> Option<[u8; 8]> {
        let bytes = std::fs::read(wal).ok()?;
        bytes.get(16..24)?.try_into().ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_unbroken_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let wal = dir.path().join("valine.db-wal");
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .call("test", |conn| {
                Ok(conn.execute_batch("CREATE TABLE filler (x BLOB NOT NULL)")?)
            })
            .await
            .expect("table");
        let first = wal_salt(&wal).expect("a log");
        let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = tokio::spawn({
            let (store, writing) = (store.clone(), Arc::clone(&writing));
            async move {
                // Never a pause for a checkpoint beside the writes to catch up in.
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    store
                        .call("test", |conn| {
                            let tx =
                                conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                            tx.execute("DELETE FROM filler WHERE rowid % 50 = 0", [])?;
                            tx.execute("INSERT INTO filler (x) VALUES (zeroblob(16384))", [])?;
                            tx.commit()?;
                            Ok(())
                        })
                        .await
                        .expect("write");
                }
            }
        });
        eventually(Duration::from_secs(30), || async {
            wal_salt(&wal).is_some_and(|salt| salt != first)
        })
        .await;
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        writer.await.expect("writer");
        let size = std::fs::metadata(&wal).expect("log").len();
        assert!(size <= WAL_SIZE_LIMIT as u64 * 2, "the log is {size} bytes");
    }

    #[tokio::test]
    async fn checkpoints_run_beside_the_store_connection_until_it_closes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let wal = dir.path().join("valine.db-wal");
        let store = SqliteStore::open(&path).await.expect("open");
        let pragma = |name: &str| -> i64 {
            let state = store.inner.state.lock().expect("lock");
            let conn = state.conn.as_ref().expect("open");
            conn.pragma_query_value(None, name, |row| row.get(0))
                .expect("pragma")
        };
        assert_eq!(
            pragma("wal_autocheckpoint"),
            0,
            "the store's connection no longer checkpoints"
        );
        assert_eq!(pragma("journal_size_limit"), WAL_SIZE_LIMIT);
        assert_eq!(pragma("cache_size"), CACHE_KIB);
        let before = std::fs::metadata(&path).expect("db").len();
        for user in 0..400 {
            store
                .hit_rate_window(&format!("user-{user}"), 0, 100)
                .await
                .expect("hit");
        }
        // The pages reach the database file without the store checkpointing.
        eventually(Duration::from_secs(10), || async {
            std::fs::metadata(&path).expect("db").len() > before
        })
        .await;
        // Once the store is gone the thread closes the last connection, which folds
        // the log into the file and removes it.
        drop(store);
        eventually(Duration::from_secs(10), || async { !wal.exists() }).await;
        let again = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(
            again.hit_rate_window("user-7", 0, 100).await.expect("hit"),
            2
        );
    }

    #[tokio::test]
    async fn reopening_keeps_records_and_schema_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let first = SqliteStore::open(&path).await.expect("open");
        assert_eq!(first.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
        drop(first);
        let again = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(again.hit_rate_window("u", 0, 100).await.expect("hit"), 2);
        let version = again
            .call("test", |conn| {
                Ok(conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))?)
            })
            .await
            .expect("user_version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.pragma_update(None, "user_version", 999)
                .expect("set version");
        }
        let err = SqliteStore::open(&path).await.expect_err("must refuse");
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err}");
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    /// One record of every expiring kind, all expiring at `expires_at`.
    async fn seed_expiring(store: &SqliteStore, expires_at: i64) {
        let e = expires_at;
        let trace = TraceRecord {
            id: format!("t{e}"),
            user_id: "u".into(),
            command: "status".into(),
            options: serde_json::Map::new(),
            started_at_ms: 0,
            steps: vec![],
            duration_ms: None,
            outcome: None,
            error: None,
            links: vec![],
            expires_at: e,
        };
        store.put_trace(&trace).await.expect("trace");
        store
            .hit_rate_window(&format!("u{e}"), 0, e)
            .await
            .expect("rate");
        let job = NewJob {
            id: format!("j{e}"),
            payload: serde_json::json!({}),
            run_after_ms: 0,
            deadline_ms: 0,
            trace_id: None,
        };
        store.enqueue_job(&job, 0).await.expect("job");
        store
            .claim_job("w", 0, 1)
            .await
            .expect("claim")
            .expect("due");
        assert!(store.complete_job(&job.id, "w", e).await.expect("complete"));
        let audit = AuditRecord {
            id: format!("a{e}"),
            at_ms: 0,
            user_id: "u".into(),
            action: "set X".into(),
            old_fingerprint: None,
            new_fingerprint: None,
            trace_id: None,
            dry_run: false,
            expires_at: e,
        };
        store.append_audit(&audit).await.expect("audit");
        let pending = PendingConfirmation {
            id: format!("p{e}"),
            user_id: "u".into(),
            key: "X".into(),
            old_value: None,
            new_value: None,
            expires_at: e,
        };
        store.put_pending(&pending).await.expect("pending");
        let run = RunRecord {
            id: e as u64,
            workflow_id: 1,
            workflow_name: None,
            status: "queued".into(),
            conclusion: None,
            branch: None,
            head_sha: None,
            run_attempt: 1,
            html_url: None,
            display_title: None,
            created_at: None,
            updated_at: None,
            expires_at: e,
        };
        let effects = DeliveryEffects {
            delivery_id: format!("d{e}"),
            expires_at: e,
            run: Some(run),
            failed_step: Some(FailedStepRecord {
                run_id: e as u64,
                run_attempt: 1,
                job_id: 1,
                job_name: "build".into(),
                step_name: None,
                html_url: None,
                expires_at: e,
            }),
            ..Default::default()
        };
        assert!(store.accept_delivery(&effects, 0).await.expect("delivery"));
        assert!(
            store
                .acquire_lock(&format!("l{e}"), "o", e, 0)
                .await
                .expect("lock")
        );
        let correlation = CorrelationRecord {
            id: format!("c{e}"),
            kind: CorrelationKind::Deploy,
            requester: "u".into(),
            channel_id: None,
            application_id: None,
            interaction_token: None,
            token_expires_at_ms: 0,
            wait: false,
            api_base: None,
            run_id: None,
            created_at_ms: 0,
            expires_at: e,
        };
        assert!(
            store
                .put_correlation(&correlation, 0)
                .await
                .expect("correlation")
        );
    }

    #[tokio::test]
    async fn purge_removes_only_expired_records() {
        let store = SqliteStore::open_in_memory().await.expect("open");
        seed_expiring(&store, 100).await;
        seed_expiring(&store, 200).await;
        let setting = SettingRecord {
            key: "X".into(),
            value: "v".into(),
            updated_by: "u".into(),
            updated_at_ms: 0,
        };
        let audit = AuditRecord {
            id: "a-forever".into(),
            at_ms: 0,
            user_id: "u".into(),
            action: "set X".into(),
            old_fingerprint: None,
            new_fingerprint: None,
            trace_id: None,
            dry_run: false,
            expires_at: i64::MAX,
        };
        assert!(
            store
                .change_setting("X", None, Some(&setting), &audit)
                .await
                .expect("setting")
        );

        // Records expiring at 100 are gone at 100; an unexpired job is never purged.
        store
            .enqueue_job(
                &NewJob {
                    id: "live".into(),
                    payload: serde_json::json!({}),
                    run_after_ms: i64::MAX,
                    deadline_ms: i64::MAX,
                    trace_id: None,
                },
                0,
            )
            .await
            .expect("live job");
        assert_eq!(store.delete_expired(100).await.expect("purge").total(), 10);
        assert_eq!(
            store
                .delete_expired(100)
                .await
                .expect("purge again")
                .total(),
            0
        );

        // Queried with an old `now`, so only deletion can hide them.
        assert!(store.get_trace("t100", 0).await.expect("get").is_none());
        assert!(store.get_trace("t200", 0).await.expect("get").is_some());
        assert!(store.get_job("j100").await.expect("get").is_none());
        assert!(store.get_job("j200").await.expect("get").is_some());
        assert!(store.get_job("live").await.expect("get").is_some());
        assert!(store.get_run(100, 0).await.expect("get").is_none());
        assert!(store.get_run(200, 0).await.expect("get").is_some());
        assert!(store.failed_step(100, 0).await.expect("get").is_none());
        assert!(store.failed_step(200, 0).await.expect("get").is_some());
        assert!(
            store
                .get_correlation("c100", 0)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            store
                .get_correlation("c200", 0)
                .await
                .expect("get")
                .is_some()
        );
        let audit_ids: Vec<String> = store
            .list_audit(None, 0, 0)
            .await
            .expect("audit")
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(audit_ids, ["a200", "a-forever"]);
        assert!(store.take_pending("p100", 0).await.expect("take").is_none());
        assert!(
            store
                .acquire_lock("l100", "other", 300, 0)
                .await
                .expect("lock")
        );
        assert!(
            !store
                .acquire_lock("l200", "other", 300, 0)
                .await
                .expect("lock")
        );
        assert_eq!(
            store.hit_rate_window("u100", 0, 100).await.expect("rate"),
            1
        );
        assert_eq!(
            store.hit_rate_window("u200", 0, 200).await.expect("rate"),
            2
        );
        assert!(store.get_setting("X").await.expect("setting").is_some());
    }

    #[tokio::test]
    async fn undecodable_row_is_corrupt() {
        let store = SqliteStore::open_in_memory().await.expect("open");
        store
            .call("test", |conn| {
                conn.execute(
                    "INSERT INTO traces (id, user_id, command, options, started_at_ms, steps, \
                     links, expires_at) VALUES ('t', 'u', 'c', 'not json', 0, '[]', '[]', 100)",
                    [],
                )?;
                Ok(())
            })
            .await
            .expect("raw insert");
        let err = store.get_trace("t", 0).await.expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(err.error_type(), "store_corrupt");
        assert!(!err.to_string().contains("not json"), "{err}");
    }

    fn classify(err: rusqlite::Error) -> StoreError {
        Fail::from(err).into_store_error("test", None)
    }

    #[test]
    fn busy_database_is_retryable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let holder = Connection::open(&path).expect("open holder");
        holder
            .execute_batch("CREATE TABLE t (x INTEGER); BEGIN EXCLUSIVE;")
            .expect("take the lock");
        let other = Connection::open(&path).expect("open other");
        // Without a busy timeout the write fails at once instead of waiting for `holder`.
        other.busy_timeout(Duration::ZERO).expect("busy timeout");
        let err = classify(
            other
                .execute("INSERT INTO t VALUES (1)", [])
                .expect_err("busy"),
        );
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    retryable: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(err.error_type(), "store_unavailable");
        assert_eq!(err.to_string(), "store test failed");
        let source = std::error::Error::source(&err).expect("cause kept");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }

    #[test]
    fn decode_failure_and_constraint_violation_are_not_retryable() {
        let conn = Connection::open_in_memory().expect("open");
        let err = classify(
            conn.query_row("SELECT 'secret-value'", [], |row| row.get::<_, i64>(0))
                .expect_err("not an integer"),
        );
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(!err.to_string().contains("secret-value"), "{err}");

        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .expect("seed");
        let err = classify(
            conn.execute("INSERT INTO t VALUES (1)", [])
                .expect_err("duplicate key"),
        );
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn undecodable_json_keeps_its_cause() {
        let store = SqliteStore::open_in_memory().await.expect("open");
        store
            .call("test", |conn| {
                conn.execute(
                    "INSERT INTO pending (id, user_id, key, expires_at) VALUES ('p', 'u', 'K', 100)",
                    [],
                )?;
                conn.execute(
                    "INSERT INTO verifications VALUES (1, 1, 1, '{not json', 0, 100)",
                    [],
                )?;
                Ok(())
            })
            .await
            .expect("raw insert");
        let err = store.get_verification(1, 1, 0).await.expect_err("corrupt");
        assert_eq!(err.op(), "get_verification");
        assert_eq!(
            err.to_string(),
            "store get_verification: stored verification report is unreadable"
        );
        let source = std::error::Error::source(&err).expect("cause kept");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
    }

    /// Polls `check` every 25 ms until it holds, failing after `timeout`.
    async fn eventually<F, Fut>(timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn assert_names(err: &StoreError, path: &Path, words: &str) {
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(words), "{text}");
    }

    /// Makes `path` read-only for this process until the guard drops: permission bits
    /// for an ordinary user, the immutable attribute for root (which ignores the bits).
    /// `None` when neither works here.
    fn read_only(path: &Path) -> Option<impl Drop> {
        use std::os::unix::fs::PermissionsExt;
        struct Undo(PathBuf, bool);
        impl Drop for Undo {
            fn drop(&mut self) {
                if self.1 {
                    let _ = std::process::Command::new("chattr")
                        .arg("-i")
                        .arg(&self.0)
                        .status();
                } else {
                    let _ =
                        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o644));
                }
            }
        }
        let writable = |p: &Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).ok()?;
        if !writable(path) {
            return Some(Undo(path.to_owned(), false));
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).ok()?;
        let undo = Undo(path.to_owned(), true);
        let made = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        (made && !writable(path)).then_some(undo)
    }

    #[tokio::test]
    async fn a_removed_file_stops_the_store_until_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(store.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }

        let err = store.hit_rate_window("u", 0, 100).await.expect_err("lost");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        assert_eq!(err.error_type(), "store_unavailable");
        assert_names(&err, &path, "removed or replaced");
        assert_names(&store.ping().await.expect_err("lost"), &path, "restart");

        // Another process creates a new, empty database at the path: not adopted, even
        // when a reopen is due.
        let fresh = SqliteStore::open(&path).await.expect("a new file");
        fresh.ping().await.expect("the new file works");
        {
            let mut state = store.inner.state.lock().expect("state");
            state.stale = true;
            state.reopen_at = Instant::now();
        }
        assert_names(&store.ping().await.expect_err("lost"), &path, "removed");
        assert_names(
            &store.get_setting("k").await.expect_err("reads refused too"),
            &path,
            "removed",
        );
    }

    #[tokio::test]
    async fn a_file_replaced_under_the_store_is_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let store = SqliteStore::open(&path).await.expect("open");
        store.ping().await.expect("ping");
        let other = dir.path().join("other.db");
        drop(SqliteStore::open(&other).await.expect("other"));
        std::fs::rename(&other, &path).expect("replace");
        assert_names(
            &store.ping().await.expect_err("replaced"),
            &path,
            "replaced",
        );
    }

    #[tokio::test]
    async fn a_read_only_file_at_open_serves_reads_and_heals_once_writable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        drop(SqliteStore::open(&path).await.expect("create"));
        // Every connection of the first store is closed once its log is folded in.
        let wal = dir.path().join("valine.db-wal");
        eventually(Duration::from_secs(5), || async { !wal.exists() }).await;
        let Some(guard) = read_only(&path) else {
            eprintln!("SKIPPED: neither permission bits nor chattr make a file read-only here");
            return;
        };
        let store = SqliteStore::open(&path).await.expect("opens degraded");
        let err = store.ping().await.expect_err("cannot write");
        assert!(err.is_retryable());
        assert_names(&err, &path, "read-only");
        assert_names(
            &store.hit_rate_window("u", 0, 100).await.expect_err("write"),
            &path,
            "read-only",
        );
        assert_eq!(store.get_setting("k").await.expect("reads work"), None);

        drop(guard);
        eventually(Duration::from_secs(5), || async {
            store.ping().await.is_ok()
        })
        .await;
        assert_eq!(store.hit_rate_window("u", 0, 100).await.expect("hit"), 1);
    }

    #[tokio::test]
    async fn a_full_database_is_reported_with_its_file_and_clears_when_space_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valine.db");
        let store = SqliteStore::open(&path).await.expect("open");
        store.ping().await.expect("ping");
        // A page limit at the current size fails the next write that needs a page with
        // SQLITE_FULL, as a full disk does.
        let limit = |pages: Option<i64>| {
            store.call("test", move |conn| {
                let current: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
                conn.pragma_update(None, "max_page_count", pages.unwrap_or(current))?;
                Ok(())
            })
        };
        limit(None).await.expect("limit");
        let trace = |i: usize| crate::store::TraceRecord {
            id: format!("t{i}"),
            user_id: "u".into(),
            command: "status".into(),
            options: Default::default(),
            started_at_ms: 0,
            steps: vec![],
            duration_ms: None,
            outcome: None,
            error: Some("x".repeat(4000)),
            links: vec![],
            expires_at: 100,
        };
        let mut full = None;
        for i in 0..10 {
            if let Err(e) = store.put_trace(&trace(i)).await {
                full = Some(e);
                break;
            }
        }
        let err = full.expect("the page limit is reached");
        assert!(err.is_retryable());
        assert_names(&err, &path, "is full");

        limit(Some(1_000_000)).await.expect("space again");
        store.put_trace(&trace(99)).await.expect("writes again");
        store.ping().await.expect("ping");
    }

    #[tokio::test]
    async fn a_missing_directory_fails_the_open_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing").join("valine.db");
        let err = SqliteStore::open(&path).await.expect_err("no directory");
        assert_names(&err, &path, "cannot open");
    }
}
