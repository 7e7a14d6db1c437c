//! Behaviour every store backend must show, written only against the traits of
//! [`crate::store`], so the SQLite and DynamoDB backends run the same checks.
//!
//! Each `pub async fn` takes a fresh, empty store and panics on a violation.
//! [`shared_between_instances`] needs two handles on the same storage and is run by hand.
//!
//! # Running the suite against a backend
//!
//! The module is compiled for the crate's own tests and, outside them, with the
//! non-default cargo feature `conformance` (`cargo test --features conformance`), so
//! integration tests and other crates can run it too. A backend's test module gives
//! [`store_conformance_suite!`](crate::store_conformance_suite) an async factory returning
//! `(guard, SharedStore)`; the guard (a temp dir, a table to drop) lives until the test
//! ends. The macro expands to one `#[tokio::test]` per check:
//!
//! ```ignore
//! async fn fresh_dynamodb_store() -> (TableGuard, SharedStore) { /* a new, empty table */ }
//!
//! crate::store_conformance_suite!(fresh_dynamodb_store);
//! ```
//!
//! From an integration test, `valine::store_conformance_suite!(fresh_store);` with the
//! feature on. The caller's crate needs `tokio` with the `macros` and `rt-multi-thread`
//! features, which `#[tokio::test]` expands against.
//!
//! Conventions the checks pin down, so backends agree on them:
//! - a record is live while `expires_at > now` (epoch seconds): at `now == expires_at` it
//!   is gone;
//! - a job lease is held while `lease_until_ms >= now_ms`: a claim takes it over only once
//!   `lease_until_ms < now_ms`;
//! - lease fields are set only while a job is `Running`;
//! - writes of records with caller-chosen ids (jobs, audit) are idempotent: a repeated id
//!   keeps the first version;
//! - where a backend states a rule of [`crate::store`]'s records in its own query language
//!   (for an index or for atomicity), a check here compares the two.

use std::collections::BTreeSet;

use serde_json::json;
use tokio::task::JoinSet;

use super::{
    Admission, AuditRecord, BlockRecord, Census, CorrelationKind, CorrelationRecord,
    DeliveryEffects, FailedStepRecord, JobRecord, JobState, NewJob, Outcome, PendingConfirmation,
    RateHit, RecordKind, RunAttachment, RunRecord, SettingRecord, SharedStore, StepStatus,
    TraceQuery, TraceRecord, TraceStep, VerificationRecord,
};

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store from
/// `$fresh`, an async fn returning `(guard, SharedStore)`. See the
/// [module documentation](crate::store::conformance) for how a backend uses it.
#[macro_export]
macro_rules! store_conformance_suite {
    ($fresh:path) => {
        $crate::store_conformance_suite!($fresh, without_concurrency);
        $crate::store_conformance_suite!(@each $fresh;
            rate_window_concurrent_hits_count_once_each,
            job_concurrent_claims_are_exclusive,
            pending_concurrent_take_one_wins,
            delivery_concurrent_duplicates_one_wins,
        );
    };
    // For a server that is a stand-in rather than a database (moto): every rule, but
    // not the races, which such a server does not serialise.
    ($fresh:path, without_concurrency) => {
        $crate::store_conformance_suite!(@each $fresh;
            ping_succeeds,
            trace_round_trip,
            trace_expired_is_ignored,
            latest_trace_for_user_skips_excluded_command,
            trace_listing_filters_and_orders,
            trace_prefix_lookup,
            housekeeping_counts_and_deletes_only_expired,
            rate_window_counts_hits,
            rate_window_separates_windows_and_users,
            job_enqueue_and_get,
            job_enqueue_same_id_keeps_first,
            job_claim_order_and_run_after,
            job_claim_sets_lease,
            job_expired_lease_is_reclaimed,
            job_claim_agrees_with_claimable_at,
            job_claim_id_agrees_with_claimable_at,
            job_renew_extends_lease,
            job_complete,
            job_retry,
            job_fail_and_failed_jobs_listing,
            job_release_leases,
            setting_change_checks_expected,
            setting_reset_to_none,
            audit_listing,
            pending_taken_once,
            pending_expired_not_returned,
            delivery_accept_applies_effects,
            delivery_duplicate_applies_nothing,
            delivery_expired_id_accepted_again,
            run_upsert_rules,
            run_expired_not_returned,
            lock_rules,
            correlation_put_keeps_live_record,
            correlation_expired_is_ignored_and_replaceable,
            correlation_attach_run_rules,
            correlation_a_later_dispatch_takes_the_run_over,
            correlation_latest_deploy,
            delivery_attaches_correlation,
            delivery_records_failed_step,
            verification_first_live_one_wins,
            recent_runs_newest_first_without_expired,
            block_put_get_and_replace,
            admission_is_block_then_count,
            block_expires_at_its_instant,
            block_remove_only_a_live_one_with_its_audit,
        );
    };
    (@each $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_guard, store) = $fresh().await;
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}

/// An arbitrary "now" in epoch seconds; the tests never read the clock.
const NOW: i64 = 1_700_000_000;
const NOW_MS: i64 = NOW * 1000;
const LATER: i64 = NOW + 1_000_000;

fn trace(id: &str, user: &str, command: &str, started_at_ms: i64, expires_at: i64) -> TraceRecord {
    let mut options = serde_json::Map::new();
    options.insert("env".into(), json!("prod"));
    options.insert("token".into(), json!("[redacted]"));
    TraceRecord {
        id: id.into(),
        user_id: user.into(),
        command: command.into(),
        options,
        started_at_ms,
        steps: vec![
            TraceStep {
                name: "authorize".into(),
                status: StepStatus::Ok,
                duration_ms: 1,
                detail: None,
            },
            TraceStep {
                name: "dispatch".into(),
                status: StepStatus::Error,
                duration_ms: 250,
                detail: Some("github 502".into()),
            },
        ],
        duration_ms: Some(251),
        outcome: Some(Outcome::Error),
        error: Some("github unavailable".into()),
        links: vec!["https://github.com/o/r/actions/runs/1".into()],
        expires_at,
    }
}

fn new_job(id: &str, run_after_ms: i64) -> NewJob {
    NewJob {
        id: id.into(),
        payload: json!({ "kind": "test", "id": id, "nested": { "n": [1, 2, 3] } }),
        run_after_ms,
        deadline_ms: run_after_ms + 15 * 60 * 1000,
        trace_id: Some(format!("trace-{id}")),
    }
}

fn audit(id: &str, user: &str, at_ms: i64, expires_at: i64) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at_ms,
        user_id: user.into(),
        action: "set FRONTEND_BASE_URL".into(),
        old_fingerprint: Some("old-fp".into()),
        new_fingerprint: Some("new-fp".into()),
        trace_id: Some("trace".into()),
        dry_run: false,
        expires_at,
    }
}

fn setting(key: &str, value: &str, at_ms: i64) -> SettingRecord {
    SettingRecord {
        key: key.into(),
        value: value.into(),
        updated_by: "admin".into(),
        updated_at_ms: at_ms,
    }
}

fn pending(id: &str, expires_at: i64) -> PendingConfirmation {
    PendingConfirmation {
        id: id.into(),
        user_id: "u1".into(),
        key: "FRONTEND_BASE_URL".into(),
        old_value: Some("https://old".into()),
        new_value: None,
        expires_at,
    }
}

fn run(id: u64, attempt: u32, status: &str, conclusion: Option<&str>) -> RunRecord {
    RunRecord {
        id,
        workflow_id: 77,
        workflow_name: Some("client-deploy".into()),
        status: status.into(),
        conclusion: conclusion.map(Into::into),
        branch: Some("main".into()),
        head_sha: Some("0123abcd".into()),
        run_attempt: attempt,
        html_url: Some(format!("https://github.com/o/r/actions/runs/{id}")),
        display_title: Some("Deploy".into()),
        created_at: Some("2024-01-01T00:00:00Z".into()),
        updated_at: Some(format!("2024-01-01T00:00:{attempt:02}Z")),
        expires_at: LATER,
    }
}

fn delivery(id: &str, run: Option<RunRecord>, jobs: Vec<NewJob>) -> DeliveryEffects {
    DeliveryEffects {
        delivery_id: id.into(),
        expires_at: LATER,
        run,
        jobs,
        ..Default::default()
    }
}

fn correlation(id: &str, kind: CorrelationKind, created_at_ms: i64) -> CorrelationRecord {
    CorrelationRecord {
        id: id.into(),
        kind,
        requester: "42".into(),
        channel_id: Some("901".into()),
        application_id: Some("4242".into()),
        interaction_token: Some(format!("token-{id}")),
        token_expires_at_ms: created_at_ms + 15 * 60 * 1000,
        wait: true,
        api_base: Some("https://api.example.com".into()),
        run_id: None,
        created_at_ms,
        expires_at: LATER,
    }
}

fn failed_step(run_id: u64, attempt: u32, job: &str) -> FailedStepRecord {
    FailedStepRecord {
        run_id,
        run_attempt: attempt,
        job_id: 400 + u64::from(attempt),
        job_name: job.into(),
        step_name: Some(format!("{job}: npm run build")),
        html_url: Some(format!(
            "https://github.com/o/r/actions/runs/{run_id}/job/1"
        )),
        expires_at: LATER,
    }
}

async fn job(store: &SharedStore, id: &str) -> JobRecord {
    store
        .get_job(id)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("job {id} exists"))
}

async fn claim(store: &SharedStore, owner: &str, now_ms: i64) -> Option<JobRecord> {
    store
        .claim_job(owner, now_ms, now_ms + 30_000)
        .await
        .expect("claim_job")
}

async fn claimed_id(store: &SharedStore, owner: &str, now_ms: i64) -> Option<String> {
    claim(store, owner, now_ms).await.map(|job| job.id)
}

pub async fn ping_succeeds(store: SharedStore) {
    store.ping().await.expect("ping");
}

pub async fn trace_round_trip(store: SharedStore) {
    let t = trace("t1", "u1", "deploy-client", NOW_MS, LATER);
    store.put_trace(&t).await.expect("put");
    assert_eq!(
        store.get_trace("t1", NOW).await.expect("get"),
        Some(t.clone())
    );
    assert_eq!(store.get_trace("nope", NOW).await.expect("get"), None);

    // A running trace has no duration or outcome yet; putting again replaces it.
    let running = TraceRecord {
        duration_ms: None,
        outcome: None,
        error: None,
        steps: vec![],
        links: vec![],
        ..t.clone()
    };
    store.put_trace(&running).await.expect("put running");
    assert_eq!(
        store.get_trace("t1", NOW).await.expect("get"),
        Some(running)
    );
    store.put_trace(&t).await.expect("put finished");
    assert_eq!(store.get_trace("t1", NOW).await.expect("get"), Some(t));
}

pub async fn trace_expired_is_ignored(store: SharedStore) {
    store
        .put_trace(&trace("t1", "u1", "status", NOW_MS, NOW))
        .await
        .expect("put");
    assert!(store.get_trace("t1", NOW - 1).await.expect("get").is_some());
    assert_eq!(store.get_trace("t1", NOW).await.expect("get"), None);
    assert_eq!(
        store
            .latest_trace_for_user("u1", "debug-last", NOW)
            .await
            .expect("latest"),
        None
    );
}

pub async fn latest_trace_for_user_skips_excluded_command(store: SharedStore) {
    let traces = [
        trace("a-old", "u1", "status", NOW_MS - 3000, LATER),
        trace("b-mid", "u1", "deploy-client", NOW_MS - 2000, LATER),
        // Newer, but expired: ignored.
        trace("c-expired", "u1", "status", NOW_MS - 1500, NOW),
        trace("d-new", "u1", "debug-last", NOW_MS - 1000, LATER),
        trace("e-other", "u2", "status", NOW_MS, LATER),
    ];
    for t in &traces {
        store.put_trace(t).await.expect("put");
    }
    let latest = store
        .latest_trace_for_user("u1", "debug-last", NOW)
        .await
        .expect("latest");
    assert_eq!(latest, Some(traces[1].clone()));
    let latest = store
        .latest_trace_for_user("u1", "deploy-client", NOW)
        .await
        .expect("latest");
    assert_eq!(latest.map(|t| t.id), Some("d-new".to_string()));
    let latest = store
        .latest_trace_for_user("u2", "status", NOW)
        .await
        .expect("latest");
    assert_eq!(latest, None);
    let latest = store
        .latest_trace_for_user("u3", "debug-last", NOW)
        .await
        .expect("latest");
    assert_eq!(latest, None);
}

pub async fn trace_listing_filters_and_orders(store: SharedStore) {
    let traces = [
        trace("a", "u1", "status", NOW_MS - 4000, LATER),
        trace("b", "u2", "deploy-client", NOW_MS - 3000, LATER),
        // Same start as `b`: the higher id comes first.
        trace("c", "u1", "deploy-client", NOW_MS - 3000, LATER),
        trace("d-expired", "u1", "status", NOW_MS - 1000, NOW),
        trace("e", "u1", "status", NOW_MS, LATER),
    ];
    for t in &traces {
        store.put_trace(t).await.expect("put");
    }
    let all = TraceQuery {
        user_id: None,
        command: None,
        since_ms: 0,
        limit: 100,
    };
    let ids = async |query: TraceQuery| -> Vec<String> {
        let listed = store.list_traces(&query, NOW).await.expect("list");
        // Whatever the backend's query language says, the rule of the records agrees.
        let mut expected: Vec<TraceRecord> = traces
            .iter()
            .filter(|t| t.matches(&query) && t.expires_at > NOW)
            .cloned()
            .collect();
        expected.sort_by(TraceRecord::newest_first);
        expected.truncate(query.limit);
        assert_eq!(listed, expected, "{query:?}");
        listed.into_iter().map(|t| t.id).collect()
    };
    assert_eq!(ids(all.clone()).await, ["e", "c", "b", "a"]);
    assert_eq!(
        ids(TraceQuery {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["e", "c"]
    );
    let u1 = TraceQuery {
        user_id: Some("u1".into()),
        ..all.clone()
    };
    assert_eq!(ids(u1.clone()).await, ["e", "c", "a"]);
    let deploys = TraceQuery {
        command: Some("deploy-client".into()),
        ..all.clone()
    };
    assert_eq!(ids(deploys).await, ["c", "b"]);
    let u1_status_recent = TraceQuery {
        command: Some("status".into()),
        since_ms: NOW_MS - 3999,
        limit: 1,
        ..u1
    };
    assert_eq!(ids(u1_status_recent).await, ["e"]);
    let nobody = TraceQuery {
        user_id: Some("u9".into()),
        ..all
    };
    assert!(ids(nobody).await.is_empty());
}

pub async fn trace_prefix_lookup(store: SharedStore) {
    let id_a = "3f2a9c1e-0000-4000-8000-000000000001";
    let id_b = "3f2a9c1e-0000-4000-8000-000000000002";
    store
        .put_trace(&trace(id_a, "u1", "status", NOW_MS - 1000, LATER))
        .await
        .expect("put");
    store
        .put_trace(&trace(id_b, "u1", "status", NOW_MS, LATER))
        .await
        .expect("put");
    store
        .put_trace(&trace("9bad0000-expired", "u1", "status", NOW_MS, NOW))
        .await
        .expect("put");
    let ids = async |prefix: &str, limit: usize| -> Vec<String> {
        store
            .traces_by_prefix(prefix, limit, NOW)
            .await
            .expect("by prefix")
            .into_iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(ids("3f2a9c1e", 10).await, [id_b, id_a]);
    assert_eq!(ids("3f2a9c1e", 1).await, [id_b]);
    assert_eq!(ids(id_a, 10).await, [id_a]);
    assert_eq!(
        ids("3f2a9c1e-0000-4000-8000-0000000000012", 10).await,
        [] as [&str; 0]
    );
    assert!(ids("9bad0000", 10).await.is_empty());
    // Id characters are never patterns.
    assert!(ids("3f2a9c1_", 10).await.is_empty());
    assert!(ids("3f2a9c1%", 10).await.is_empty());
}

pub async fn housekeeping_counts_and_deletes_only_expired(store: SharedStore) {
    assert_eq!(store.census(NOW).await.expect("census"), Census::default());
    store
        .put_trace(&trace("t-live", "u1", "status", NOW_MS, LATER))
        .await
        .expect("trace");
    store
        .put_trace(&trace("t-old", "u1", "status", NOW_MS, NOW))
        .await
        .expect("trace");
    store
        .append_audit(&audit("a-old", "u1", NOW_MS, NOW - 5))
        .await
        .expect("audit");
    store
        .enqueue_job(&new_job("j-pending", NOW_MS), NOW_MS)
        .await
        .expect("job");
    store
        .hit_rate_window("u1", NOW - 120, NOW)
        .await
        .expect("rate");
    let mut c = correlation("c-old", CorrelationKind::Deploy, NOW_MS);
    c.expires_at = NOW;
    assert!(store.put_correlation(&c, NOW - 10).await.expect("corr"));
    assert!(
        store
            .acquire_lock("l-old", "a", NOW, NOW - 10)
            .await
            .expect("lock")
    );
    assert!(
        store
            .change_setting(
                "FRONTEND_BASE_URL",
                None,
                Some(&setting("FRONTEND_BASE_URL", "https://x", NOW_MS)),
                &audit("a-live", "admin", NOW_MS, LATER),
            )
            .await
            .expect("setting")
    );

    let census = store.census(NOW).await.expect("census");
    assert_eq!(census.live.get(RecordKind::Trace), 1);
    assert_eq!(
        census.live.get(RecordKind::Job),
        1,
        "a pending job never expires"
    );
    assert_eq!(census.live.get(RecordKind::Setting), 1);
    assert_eq!(census.live.get(RecordKind::Audit), 1);
    assert_eq!(census.expired.get(RecordKind::Trace), 1);
    assert_eq!(census.expired.get(RecordKind::Audit), 1);
    assert_eq!(census.expired.get(RecordKind::RateWindow), 1);
    assert_eq!(census.expired.get(RecordKind::Correlation), 1);
    assert_eq!(census.expired.get(RecordKind::Lock), 1);
    assert_eq!(census.expired.total(), 5);
    assert_eq!(census.live.total(), 4);

    // The lock is taken again before housekeeping runs: it is live, and stays.
    assert!(
        store
            .acquire_lock("l-old", "b", LATER, NOW)
            .await
            .expect("retake")
    );
    let deleted = store.delete_expired(NOW).await.expect("delete");
    assert_eq!(deleted.get(RecordKind::Trace), 1);
    assert_eq!(deleted.get(RecordKind::Audit), 1);
    assert_eq!(deleted.get(RecordKind::RateWindow), 1);
    assert_eq!(deleted.get(RecordKind::Correlation), 1);
    assert_eq!(deleted.get(RecordKind::Lock), 0);
    assert_eq!(deleted.total(), 4);
    // Queried with an earlier `now`, so only deletion can hide them.
    assert!(store.get_trace("t-old", 0).await.expect("get").is_none());
    assert!(
        store
            .get_correlation("c-old", 0)
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.get_trace("t-live", NOW).await.expect("get").is_some());
    assert!(
        !store
            .acquire_lock("l-old", "c", LATER, NOW)
            .await
            .expect("held")
    );

    let after = store.census(NOW).await.expect("census");
    assert_eq!(after.expired.total(), 0);
    assert_eq!(after.live.get(RecordKind::Lock), 1);
    assert_eq!(store.delete_expired(NOW).await.expect("again").total(), 0);
}

pub async fn rate_window_counts_hits(store: SharedStore) {
    for expected in 1..=3 {
        let count = store
            .hit_rate_window("u1", NOW, NOW + 120)
            .await
            .expect("hit");
        assert_eq!(count, expected);
    }
}

pub async fn rate_window_separates_windows_and_users(store: SharedStore) {
    assert_eq!(
        store
            .hit_rate_window("u1", NOW, NOW + 120)
            .await
            .expect("hit"),
        1
    );
    assert_eq!(
        store
            .hit_rate_window("u1", NOW, NOW + 120)
            .await
            .expect("hit"),
        2
    );
    assert_eq!(
        store
            .hit_rate_window("u1", NOW + 60, NOW + 180)
            .await
            .expect("hit"),
        1
    );
    assert_eq!(
        store
            .hit_rate_window("u2", NOW, NOW + 120)
            .await
            .expect("hit"),
        1
    );
    assert_eq!(
        store
            .hit_rate_window("u1", NOW, NOW + 120)
            .await
            .expect("hit"),
        3
    );
}

pub async fn rate_window_concurrent_hits_count_once_each(store: SharedStore) {
    let mut hits = JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        hits.spawn(async move { store.hit_rate_window("u1", NOW, NOW + 120).await });
    }
    let mut counts = Vec::new();
    while let Some(hit) = hits.join_next().await {
        counts.push(hit.expect("join").expect("hit"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u32>>());
}

pub async fn job_enqueue_and_get(store: SharedStore) {
    let new = new_job("j1", NOW_MS + 5);
    store.enqueue_job(&new, NOW_MS).await.expect("enqueue");
    let stored = job(&store, "j1").await;
    assert_eq!(
        stored,
        JobRecord {
            id: "j1".into(),
            payload: new.payload,
            state: JobState::Pending,
            attempts: 0,
            run_after_ms: NOW_MS + 5,
            deadline_ms: new.deadline_ms,
            lease_owner: None,
            lease_until_ms: None,
            last_error: None,
            trace_id: Some("trace-j1".into()),
            created_at_ms: NOW_MS,
            expires_at: None,
        }
    );
    assert_eq!(store.get_job("nope").await.expect("get"), None);
}

pub async fn job_enqueue_same_id_keeps_first(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    let mut again = new_job("j1", NOW_MS + 99);
    again.payload = json!({ "kind": "other" });
    store
        .enqueue_job(&again, NOW_MS + 1)
        .await
        .expect("enqueue again");
    let stored = job(&store, "j1").await;
    assert_eq!(stored.payload, new_job("j1", NOW_MS).payload);
    assert_eq!(stored.run_after_ms, NOW_MS);
    assert_eq!(stored.created_at_ms, NOW_MS);
    assert_eq!(
        claimed_id(&store, "w", NOW_MS + 1000).await.as_deref(),
        Some("j1")
    );
    assert_eq!(claimed_id(&store, "w", NOW_MS + 1000).await, None);
}

pub async fn job_claim_order_and_run_after(store: SharedStore) {
    // Ids deliberately not in run_after order; "b" and "a" tie on run_after.
    for (id, run_after) in [
        ("c", NOW_MS + 300),
        ("b", NOW_MS + 100),
        ("z", NOW_MS + 200),
        ("a", NOW_MS + 100),
        ("later", NOW_MS + 10_000),
    ] {
        store
            .enqueue_job(&new_job(id, run_after), NOW_MS)
            .await
            .expect("enqueue");
    }
    assert_eq!(claimed_id(&store, "w", NOW_MS + 99).await, None);
    let now = NOW_MS + 250;
    assert_eq!(claimed_id(&store, "w", now).await.as_deref(), Some("a"));
    assert_eq!(claimed_id(&store, "w", now).await.as_deref(), Some("b"));
    assert_eq!(claimed_id(&store, "w", now).await.as_deref(), Some("z"));
    assert_eq!(claimed_id(&store, "w", now).await, None);
    // run_after is inclusive.
    assert_eq!(
        claimed_id(&store, "w", NOW_MS + 300).await.as_deref(),
        Some("c")
    );
    assert_eq!(claimed_id(&store, "w", NOW_MS + 9_999).await, None);
    assert_eq!(job(&store, "later").await.state, JobState::Pending);
}

pub async fn job_claim_sets_lease(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    let claimed = store
        .claim_job("worker-1", NOW_MS, NOW_MS + 30_000)
        .await
        .expect("claim")
        .expect("a due job");
    assert_eq!(claimed.id, "j1");
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("worker-1"));
    assert_eq!(claimed.lease_until_ms, Some(NOW_MS + 30_000));
    assert_eq!(claimed.payload, new_job("j1", NOW_MS).payload);
    assert_eq!(job(&store, "j1").await, claimed);
}

pub async fn job_concurrent_claims_are_exclusive(store: SharedStore) {
    for i in 0..10 {
        store
            .enqueue_job(&new_job(&format!("j{i:02}"), NOW_MS), NOW_MS)
            .await
            .expect("enqueue");
    }
    let mut claims = JoinSet::new();
    for w in 0..25 {
        let store = store.clone();
        claims.spawn(async move {
            store
                .claim_job(&format!("worker-{w}"), NOW_MS, NOW_MS + 30_000)
                .await
        });
    }
    let mut ids = Vec::new();
    let mut empty = 0;
    while let Some(claimed) = claims.join_next().await {
        match claimed.expect("join").expect("claim") {
            Some(job) => {
                assert_eq!(job.attempts, 1);
                ids.push(job.id);
            }
            None => empty += 1,
        }
    }
    let distinct: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), 10, "every job claimed once");
    assert_eq!(distinct.len(), 10, "no job claimed twice");
    assert_eq!(empty, 15);
}

pub async fn job_expired_lease_is_reclaimed(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    let lease_until = NOW_MS + 1000;
    store
        .claim_job("a", NOW_MS, lease_until)
        .await
        .expect("claim")
        .expect("due");
    // Held up to and including lease_until.
    assert_eq!(claim(&store, "b", lease_until).await, None);
    let reclaimed = store
        .claim_job("b", lease_until + 1, lease_until + 31_000)
        .await
        .expect("claim")
        .expect("expired lease is claimable");
    assert_eq!(reclaimed.id, "j1");
    assert_eq!(reclaimed.attempts, 2);
    assert_eq!(reclaimed.lease_owner.as_deref(), Some("b"));
    assert_eq!(reclaimed.lease_until_ms, Some(lease_until + 31_000));

    // The crashed worker's late calls no longer count.
    let renewed = store
        .renew_job_lease("j1", "a", NOW_MS + 99_000)
        .await
        .expect("renew");
    assert!(!renewed);
    assert!(
        !store
            .complete_job("j1", "a", LATER)
            .await
            .expect("complete")
    );
    assert!(
        !store
            .retry_job("j1", "a", NOW_MS, "x")
            .await
            .expect("retry")
    );
    assert!(!store.fail_job("j1", "a", "x", LATER).await.expect("fail"));
    assert_eq!(job(&store, "j1").await, reclaimed);
    assert!(
        store
            .complete_job("j1", "b", LATER)
            .await
            .expect("complete")
    );
}

/// A backend may select claimable jobs in its own query language (for its index); the
/// claim must still follow [`JobRecord::claimable_at`] and [`JobRecord::claimed`].
pub async fn job_claim_agrees_with_claimable_at(store: SharedStore) {
    // Compares what the store did with what the rules say, one job in the queue at a time.
    async fn check(store: &SharedStore, id: &str, owner: &str, now_ms: i64) -> Option<JobRecord> {
        let before = job(store, id).await;
        let lease_until_ms = now_ms + 1000;
        let claimed = store
            .claim_job(owner, now_ms, lease_until_ms)
            .await
            .expect("claim_job");
        let expected = before
            .claimable_at(now_ms)
            .then(|| before.claimed(owner, lease_until_ms));
        assert_eq!(claimed, expected, "claim of {id} at {now_ms}");
        if let Some(claimed) = &claimed {
            assert_eq!(&job(store, id).await, claimed, "stored claim of {id}");
        }
        claimed
    }

    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS - 10)
        .await
        .expect("enqueue");
    assert!(check(&store, "j1", "a", NOW_MS - 1).await.is_none());
    let first = check(&store, "j1", "a", NOW_MS).await.expect("due");
    let lease_until = first.lease_until_ms.expect("leased");
    assert!(check(&store, "j1", "b", lease_until).await.is_none());
    check(&store, "j1", "b", lease_until + 1)
        .await
        .expect("lease ended");

    assert!(
        store
            .retry_job("j1", "b", LATER * 1000, "later")
            .await
            .expect("retry")
    );
    assert!(check(&store, "j1", "a", LATER * 1000 - 1).await.is_none());
    check(&store, "j1", "a", LATER * 1000).await.expect("due");
    assert!(
        store
            .complete_job("j1", "a", LATER)
            .await
            .expect("complete")
    );
    assert!(check(&store, "j1", "a", LATER * 2000).await.is_none());
}

pub async fn job_claim_id_agrees_with_claimable_at(store: SharedStore) {
    // As `job_claim_agrees_with_claimable_at`, claiming by id with another job older
    // and due in the queue: the named job is the one claimed, or none.
    async fn check(store: &SharedStore, id: &str, owner: &str, now_ms: i64) -> Option<JobRecord> {
        let before = job(store, id).await;
        let lease_until_ms = now_ms + 1000;
        let claimed = store
            .claim_job_id(id, owner, now_ms, lease_until_ms)
            .await
            .expect("claim_job_id");
        let expected = before
            .claimable_at(now_ms)
            .then(|| before.claimed(owner, lease_until_ms));
        assert_eq!(claimed, expected, "claim of {id} at {now_ms}");
        if let Some(claimed) = &claimed {
            assert_eq!(&job(store, id).await, claimed, "stored claim of {id}");
        }
        claimed
    }

    store
        .enqueue_job(&new_job("older", NOW_MS - 50), NOW_MS - 60)
        .await
        .expect("enqueue");
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS - 10)
        .await
        .expect("enqueue");
    assert!(
        store
            .claim_job_id("missing", "a", NOW_MS, NOW_MS + 1000)
            .await
            .expect("claim_job_id")
            .is_none()
    );
    assert!(check(&store, "j1", "a", NOW_MS - 1).await.is_none());
    let first = check(&store, "j1", "a", NOW_MS).await.expect("due");
    assert_eq!(first.attempts, 1);
    let lease_until = first.lease_until_ms.expect("leased");
    assert!(check(&store, "j1", "b", lease_until).await.is_none());
    let second = check(&store, "j1", "b", lease_until + 1)
        .await
        .expect("lease ended");
    assert_eq!(second.attempts, 2);
    assert!(
        store
            .complete_job("j1", "b", LATER)
            .await
            .expect("complete")
    );
    assert!(check(&store, "j1", "a", LATER * 2000).await.is_none());
    assert_eq!(job(&store, "older").await.state, JobState::Pending);
}

pub async fn job_renew_extends_lease(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    store
        .claim_job("a", NOW_MS, NOW_MS + 1000)
        .await
        .expect("claim")
        .expect("due");
    let renewed = store
        .renew_job_lease("j1", "a", NOW_MS + 5000)
        .await
        .expect("renew");
    assert!(renewed);
    assert_eq!(job(&store, "j1").await.lease_until_ms, Some(NOW_MS + 5000));
    // The old lease end has passed, the renewed one has not.
    assert_eq!(claim(&store, "b", NOW_MS + 2000).await, None);
    assert!(
        !store
            .renew_job_lease("j1", "b", NOW_MS + 9000)
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew_job_lease("nope", "a", NOW_MS + 9000)
            .await
            .expect("renew")
    );
    assert_eq!(job(&store, "j1").await.lease_until_ms, Some(NOW_MS + 5000));
    assert_eq!(job(&store, "j1").await.attempts, 1);
}

pub async fn job_complete(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    assert!(
        !store
            .complete_job("j1", "a", LATER)
            .await
            .expect("not claimed yet")
    );
    claim(&store, "a", NOW_MS).await.expect("due");
    assert!(
        !store
            .complete_job("j1", "b", LATER)
            .await
            .expect("other owner")
    );
    assert!(
        store
            .complete_job("j1", "a", LATER)
            .await
            .expect("complete")
    );
    let done = job(&store, "j1").await;
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.expires_at, Some(LATER));
    assert_eq!(done.lease_owner, None);
    assert_eq!(done.lease_until_ms, None);
    assert_eq!(done.attempts, 1);
    assert!(!store.complete_job("j1", "a", LATER).await.expect("twice"));
    assert!(
        !store
            .complete_job("nope", "a", LATER)
            .await
            .expect("unknown")
    );
    assert_eq!(claim(&store, "a", NOW_MS + 10_000_000).await, None);
    assert!(store.failed_jobs(NOW).await.expect("failed").is_empty());
}

pub async fn job_retry(store: SharedStore) {
    store
        .enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    claim(&store, "a", NOW_MS).await.expect("due");
    assert!(
        !store
            .retry_job("j1", "b", NOW_MS + 5000, "x")
            .await
            .expect("retry")
    );
    assert!(
        store
            .retry_job("j1", "a", NOW_MS + 5000, "github 502")
            .await
            .expect("retry")
    );
    let waiting = job(&store, "j1").await;
    assert_eq!(waiting.state, JobState::Pending);
    assert_eq!(waiting.run_after_ms, NOW_MS + 5000);
    assert_eq!(waiting.last_error.as_deref(), Some("github 502"));
    assert_eq!(waiting.lease_owner, None);
    assert_eq!(waiting.lease_until_ms, None);
    assert_eq!(waiting.attempts, 1);
    // Not before its new run_after, even though the old lease would have lasted.
    assert_eq!(claim(&store, "b", NOW_MS + 4999).await, None);
    let again = claim(&store, "b", NOW_MS + 5000).await.expect("due again");
    assert_eq!(again.attempts, 2);
    assert_eq!(again.lease_owner.as_deref(), Some("b"));
    assert_eq!(again.last_error.as_deref(), Some("github 502"));
}

pub async fn job_fail_and_failed_jobs_listing(store: SharedStore) {
    for (id, created) in [("old", NOW_MS), ("new", NOW_MS + 10), ("gone", NOW_MS + 20)] {
        store
            .enqueue_job(&new_job(id, NOW_MS), created)
            .await
            .expect("enqueue");
    }
    store
        .enqueue_job(&new_job("ok", NOW_MS), NOW_MS + 30)
        .await
        .expect("enqueue");
    for _ in 0..4 {
        claim(&store, "w", NOW_MS + 100).await.expect("due");
    }
    assert!(
        !store
            .fail_job("old", "other", "x", LATER)
            .await
            .expect("fail")
    );
    assert!(
        store
            .fail_job("old", "w", "gave up: 502", LATER)
            .await
            .expect("fail")
    );
    assert!(
        store
            .fail_job("new", "w", "gave up: timeout", LATER)
            .await
            .expect("fail")
    );
    assert!(
        store
            .fail_job("gone", "w", "gave up", NOW)
            .await
            .expect("fail")
    );
    assert!(
        store
            .complete_job("ok", "w", LATER)
            .await
            .expect("complete")
    );

    let failed = job(&store, "old").await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("gave up: 502"));
    assert_eq!(failed.expires_at, Some(LATER));
    assert_eq!(failed.lease_owner, None);
    assert_eq!(failed.lease_until_ms, None);
    assert!(
        !store
            .fail_job("old", "w", "again", LATER)
            .await
            .expect("twice")
    );

    let listed: Vec<String> = store
        .failed_jobs(NOW)
        .await
        .expect("failed")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ["new", "old"]);
    let listed = store.failed_jobs(NOW - 1).await.expect("failed");
    assert_eq!(listed.len(), 3);
    assert!(store.failed_jobs(LATER).await.expect("failed").is_empty());
    // Failed jobs are never claimed again.
    assert_eq!(claim(&store, "w", NOW_MS + 100_000_000).await, None);
}

pub async fn job_release_leases(store: SharedStore) {
    for id in ["j1", "j2", "j3"] {
        store
            .enqueue_job(&new_job(id, NOW_MS), NOW_MS)
            .await
            .expect("enqueue");
    }
    let until = NOW_MS + 60_000;
    assert_eq!(
        store
            .claim_job("a", NOW_MS, until)
            .await
            .expect("claim")
            .map(|j| j.id)
            .as_deref(),
        Some("j1")
    );
    assert_eq!(
        store
            .claim_job("b", NOW_MS, until)
            .await
            .expect("claim")
            .map(|j| j.id)
            .as_deref(),
        Some("j2")
    );
    assert_eq!(
        store
            .claim_job("a", NOW_MS, until)
            .await
            .expect("claim")
            .map(|j| j.id)
            .as_deref(),
        Some("j3")
    );
    assert_eq!(store.release_job_leases("a").await.expect("release"), 2);
    assert_eq!(store.release_job_leases("a").await.expect("release"), 0);
    assert_eq!(
        store.release_job_leases("nobody").await.expect("release"),
        0
    );
    for id in ["j1", "j3"] {
        let released = job(&store, id).await;
        assert_eq!(released.state, JobState::Pending);
        assert_eq!(released.lease_owner, None);
        assert_eq!(released.lease_until_ms, None);
    }
    assert!(
        !store
            .complete_job("j1", "a", LATER)
            .await
            .expect("complete")
    );
    // Claimable at once, well before the old leases would have run out.
    let mut reclaimed = BTreeSet::new();
    while let Some(job) = claim(&store, "c", NOW_MS + 1).await {
        // A release is a shutdown, not a failure: the interrupted attempt is given back.
        assert_eq!(job.attempts, 1);
        reclaimed.insert(job.id);
    }
    assert_eq!(
        reclaimed,
        BTreeSet::from(["j1".to_string(), "j3".to_string()])
    );
    assert_eq!(job(&store, "j2").await.lease_owner.as_deref(), Some("b"));
}

pub async fn setting_change_checks_expected(store: SharedStore) {
    let key = "FRONTEND_BASE_URL";
    assert_eq!(store.get_setting(key).await.expect("get"), None);

    let v1 = setting(key, "https://one", NOW_MS);
    let changed = store
        .change_setting(key, None, Some(&v1), &audit("a1", "admin", NOW_MS, LATER))
        .await
        .expect("change");
    assert!(changed);
    assert_eq!(store.get_setting(key).await.expect("get"), Some(v1.clone()));

    // Stale expectations: nothing written, no audit.
    let v2 = setting(key, "https://two", NOW_MS + 1);
    let stale = store
        .change_setting(
            key,
            None,
            Some(&v2),
            &audit("a2", "admin", NOW_MS + 1, LATER),
        )
        .await
        .expect("change");
    assert!(!stale);
    let wrong = store
        .change_setting(
            key,
            Some("https://zero"),
            Some(&v2),
            &audit("a3", "admin", NOW_MS + 2, LATER),
        )
        .await
        .expect("change");
    assert!(!wrong);
    assert_eq!(store.get_setting(key).await.expect("get"), Some(v1));

    let changed = store
        .change_setting(
            key,
            Some("https://one"),
            Some(&v2),
            &audit("a4", "admin", NOW_MS + 3, LATER),
        )
        .await
        .expect("change");
    assert!(changed);
    assert_eq!(store.get_setting(key).await.expect("get"), Some(v2));
    // Other keys are independent.
    assert_eq!(store.get_setting("VITE_API_BASE").await.expect("get"), None);

    let ids: Vec<String> = store
        .list_audit(None, 0, NOW)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a4", "a1"]);
}

pub async fn setting_reset_to_none(store: SharedStore) {
    let key = "VITE_API_BASE";
    let v1 = setting(key, "https://api", NOW_MS);
    assert!(
        store
            .change_setting(key, None, Some(&v1), &audit("a1", "admin", NOW_MS, LATER))
            .await
            .expect("set")
    );
    assert!(
        store
            .change_setting(
                key,
                Some("https://api"),
                None,
                &audit("a2", "admin", NOW_MS + 1, LATER)
            )
            .await
            .expect("reset")
    );
    assert_eq!(store.get_setting(key).await.expect("get"), None);
    // Already reset: expecting the old value is stale, expecting none succeeds.
    assert!(
        !store
            .change_setting(
                key,
                Some("https://api"),
                None,
                &audit("a3", "admin", NOW_MS + 2, LATER)
            )
            .await
            .expect("reset again")
    );
    assert!(
        store
            .change_setting(key, None, None, &audit("a4", "admin", NOW_MS + 3, LATER))
            .await
            .expect("reset from none")
    );
    let ids: Vec<String> = store
        .list_audit(None, 0, NOW)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a4", "a2", "a1"]);
}

pub async fn audit_listing(store: SharedStore) {
    let records = [
        audit("a1", "u1", NOW_MS - 300, LATER),
        audit("a2", "u2", NOW_MS - 200, LATER),
        AuditRecord {
            dry_run: true,
            old_fingerprint: None,
            new_fingerprint: None,
            trace_id: None,
            action: "dispatch client-deploy.yml".into(),
            ..audit("a3", "u1", NOW_MS - 100, LATER)
        },
        audit("a4-expired", "u1", NOW_MS - 50, NOW),
        audit("a5", "u2", NOW_MS, LATER),
    ];
    for a in &records {
        store.append_audit(a).await.expect("append");
    }
    // Appending the same record again is harmless.
    store.append_audit(&records[0]).await.expect("append again");

    let all = store.list_audit(None, 0, NOW).await.expect("list");
    assert_eq!(
        all,
        vec![
            records[4].clone(),
            records[2].clone(),
            records[1].clone(),
            records[0].clone()
        ]
    );
    let u1 = store.list_audit(Some("u1"), 0, NOW).await.expect("list");
    assert_eq!(u1, vec![records[2].clone(), records[0].clone()]);
    // since_ms is inclusive.
    let since = store
        .list_audit(None, NOW_MS - 200, NOW)
        .await
        .expect("list");
    let ids: Vec<&str> = since.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a5", "a3", "a2"]);
    let u2_since = store
        .list_audit(Some("u2"), NOW_MS - 199, NOW)
        .await
        .expect("list");
    assert_eq!(u2_since, vec![records[4].clone()]);
    assert!(
        store
            .list_audit(Some("u3"), 0, NOW)
            .await
            .expect("list")
            .is_empty()
    );
    let with_expired = store
        .list_audit(Some("u1"), 0, NOW - 1)
        .await
        .expect("list");
    assert_eq!(with_expired.len(), 3);
}

pub async fn pending_taken_once(store: SharedStore) {
    let p = pending("p1", LATER);
    store.put_pending(&p).await.expect("put");
    assert_eq!(store.take_pending("p1", NOW).await.expect("take"), Some(p));
    assert_eq!(store.take_pending("p1", NOW).await.expect("take"), None);
    assert_eq!(store.take_pending("nope", NOW).await.expect("take"), None);
}

pub async fn pending_concurrent_take_one_wins(store: SharedStore) {
    let p = pending("p1", LATER);
    store.put_pending(&p).await.expect("put");
    let mut takers = JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        takers.spawn(async move { store.take_pending("p1", NOW).await });
    }
    let mut won = Vec::new();
    while let Some(taken) = takers.join_next().await {
        if let Some(p) = taken.expect("join").expect("take") {
            won.push(p);
        }
    }
    assert_eq!(won, vec![p]);
}

pub async fn pending_expired_not_returned(store: SharedStore) {
    store.put_pending(&pending("p1", NOW)).await.expect("put");
    assert_eq!(store.take_pending("p1", NOW).await.expect("take"), None);
    assert_eq!(
        store.take_pending("p1", NOW + 10).await.expect("take"),
        None
    );
}

pub async fn delivery_accept_applies_effects(store: SharedStore) {
    let r = run(1001, 1, "in_progress", None);
    let effects = delivery(
        "d1",
        Some(r.clone()),
        vec![new_job("dj1", NOW_MS), new_job("dj2", NOW_MS + 500)],
    );
    assert!(store.accept_delivery(&effects, NOW).await.expect("accept"));
    assert_eq!(store.get_run(1001, NOW).await.expect("run"), Some(r));
    assert_eq!(store.get_run(1002, NOW).await.expect("run"), None);
    for (id, run_after) in [("dj1", NOW_MS), ("dj2", NOW_MS + 500)] {
        let j = job(&store, id).await;
        assert_eq!(j.state, JobState::Pending);
        assert_eq!(j.attempts, 0);
        assert_eq!(j.run_after_ms, run_after);
        assert_eq!(j.payload, new_job(id, run_after).payload);
    }
    // A delivery with no effects is still recorded for dedup.
    assert!(
        store
            .accept_delivery(&delivery("d2", None, vec![]), NOW)
            .await
            .expect("accept")
    );
    assert!(
        !store
            .accept_delivery(&delivery("d2", None, vec![]), NOW)
            .await
            .expect("dup")
    );
}

pub async fn delivery_duplicate_applies_nothing(store: SharedStore) {
    let first = delivery(
        "d1",
        Some(run(1001, 1, "in_progress", None)),
        vec![new_job("j1", NOW_MS)],
    );
    assert!(store.accept_delivery(&first, NOW).await.expect("accept"));
    let replay = delivery(
        "d1",
        Some(run(1001, 1, "completed", Some("success"))),
        vec![new_job("j2", NOW_MS)],
    );
    assert!(
        !store
            .accept_delivery(&replay, NOW + 1)
            .await
            .expect("duplicate")
    );
    assert_eq!(store.get_job("j2").await.expect("get"), None);
    assert_eq!(
        store
            .get_run(1001, NOW)
            .await
            .expect("run")
            .map(|r| r.status)
            .as_deref(),
        Some("in_progress")
    );
    assert_eq!(claimed_id(&store, "w", NOW_MS).await.as_deref(), Some("j1"));
    assert_eq!(claimed_id(&store, "w", NOW_MS).await, None);
}

pub async fn delivery_concurrent_duplicates_one_wins(store: SharedStore) {
    let mut accepts = JoinSet::new();
    for i in 0..10 {
        let store = store.clone();
        accepts.spawn(async move {
            let effects = delivery("d1", None, vec![new_job(&format!("j{i}"), NOW_MS)]);
            store.accept_delivery(&effects, NOW).await.map(|ok| (i, ok))
        });
    }
    let mut winners = Vec::new();
    while let Some(accepted) = accepts.join_next().await {
        let (i, ok) = accepted.expect("join").expect("accept");
        if ok {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1);
    let winner = format!("j{}", winners[0]);
    assert_eq!(claimed_id(&store, "w", NOW_MS).await, Some(winner));
    assert_eq!(claimed_id(&store, "w", NOW_MS).await, None);
}

pub async fn delivery_expired_id_accepted_again(store: SharedStore) {
    let first = DeliveryEffects {
        expires_at: NOW + 10,
        ..delivery("d1", None, vec![])
    };
    assert!(store.accept_delivery(&first, NOW).await.expect("accept"));
    assert!(
        !store
            .accept_delivery(&first, NOW + 9)
            .await
            .expect("still kept")
    );
    let redelivered = delivery("d1", None, vec![new_job("j1", NOW_MS)]);
    assert!(
        store
            .accept_delivery(&redelivered, NOW + 10)
            .await
            .expect("expired id")
    );
    assert!(store.get_job("j1").await.expect("get").is_some());
    assert!(
        !store
            .accept_delivery(&redelivered, NOW + 11)
            .await
            .expect("dup again")
    );
}

pub async fn run_upsert_rules(store: SharedStore) {
    let mut n = 0;
    let mut upsert = async |r: RunRecord| {
        n += 1;
        let accepted = store
            .accept_delivery(&delivery(&format!("d{n}"), Some(r), vec![]), NOW)
            .await
            .expect("accept");
        assert!(accepted);
        store
            .get_run(5, NOW)
            .await
            .expect("get_run")
            .expect("run stored")
    };

    let queued = RunRecord {
        display_title: None,
        ..run(5, 1, "queued", None)
    };
    assert_eq!(upsert(queued.clone()).await, queued);

    // A newer event of the same attempt replaces fields but keeps old values it lacks.
    let progress = RunRecord {
        branch: None,
        display_title: Some("Deploy main".into()),
        ..run(5, 1, "in_progress", None)
    };
    let stored = upsert(progress).await;
    assert_eq!(stored.status, "in_progress");
    assert_eq!(stored.branch.as_deref(), Some("main"));
    assert_eq!(stored.display_title.as_deref(), Some("Deploy main"));

    let completed = run(5, 1, "completed", Some("failure"));
    let stored = upsert(completed.clone()).await;
    assert_eq!(stored.status, "completed");
    assert_eq!(stored.conclusion.as_deref(), Some("failure"));

    // A late in_progress event never moves the completed attempt back.
    let late = upsert(run(5, 1, "in_progress", None)).await;
    assert_eq!(late.status, "completed");
    assert_eq!(late.conclusion.as_deref(), Some("failure"));

    // A re-run (higher attempt) takes over, its result not yet known.
    let rerun = RunRecord {
        html_url: None,
        ..run(5, 2, "queued", None)
    };
    let stored = upsert(rerun).await;
    assert_eq!(stored.run_attempt, 2);
    assert_eq!(stored.status, "queued");
    assert_eq!(stored.conclusion, None);
    assert_eq!(
        stored.html_url.as_deref(),
        Some("https://github.com/o/r/actions/runs/5")
    );

    // Events of the earlier attempt are ignored now.
    let stale = upsert(run(5, 1, "completed", Some("success"))).await;
    assert_eq!(stale, stored);

    let done = upsert(run(5, 2, "completed", Some("success"))).await;
    assert_eq!(done, run(5, 2, "completed", Some("success")));
}

pub async fn run_expired_not_returned(store: SharedStore) {
    let short = RunRecord {
        expires_at: NOW + 5,
        ..run(9, 1, "completed", Some("success"))
    };
    assert!(
        store
            .accept_delivery(&delivery("d1", Some(short.clone()), vec![]), NOW)
            .await
            .expect("accept")
    );
    assert_eq!(store.get_run(9, NOW + 4).await.expect("run"), Some(short));
    assert_eq!(store.get_run(9, NOW + 5).await.expect("run"), None);
    // Once expired, an event of the same attempt starts a fresh record.
    let fresh = run(9, 1, "in_progress", None);
    assert!(
        store
            .accept_delivery(&delivery("d2", Some(fresh.clone()), vec![]), NOW + 5)
            .await
            .expect("accept")
    );
    assert_eq!(store.get_run(9, NOW + 5).await.expect("run"), Some(fresh));
}

pub async fn lock_rules(store: SharedStore) {
    let acquire = async |name: &str, owner: &str, expires_at: i64, now: i64| {
        store
            .acquire_lock(name, owner, expires_at, now)
            .await
            .expect("acquire")
    };
    assert!(acquire("verify#5#1", "a", NOW + 60, NOW).await);
    assert!(!acquire("verify#5#1", "b", NOW + 60, NOW + 1).await);
    // Other locks are independent.
    assert!(acquire("verify#5#2", "b", NOW + 60, NOW + 1).await);
    // The holder may extend it.
    assert!(acquire("verify#5#1", "a", NOW + 120, NOW + 2).await);
    assert!(!acquire("verify#5#1", "b", NOW + 200, NOW + 60).await);
    // Expired at expires_at: anyone may take it.
    assert!(acquire("verify#5#1", "b", NOW + 200, NOW + 120).await);
    assert!(!acquire("verify#5#1", "a", NOW + 200, NOW + 121).await);

    // Releasing someone else's lock does nothing.
    store
        .release_lock("verify#5#1", "a")
        .await
        .expect("release");
    assert!(!acquire("verify#5#1", "c", NOW + 200, NOW + 122).await);
    store
        .release_lock("verify#5#1", "b")
        .await
        .expect("release");
    assert!(acquire("verify#5#1", "c", NOW + 200, NOW + 123).await);
    store
        .release_lock("never-taken", "c")
        .await
        .expect("release");
}

pub async fn correlation_put_keeps_live_record(store: SharedStore) {
    let first = correlation("c1", CorrelationKind::Deploy, NOW_MS);
    assert!(store.put_correlation(&first, NOW).await.expect("put"));
    assert_eq!(
        store.get_correlation("c1", NOW).await.expect("get"),
        Some(first.clone())
    );
    // A second write with the same id (a retried dispatch) keeps the first record.
    let again = CorrelationRecord {
        requester: "other".into(),
        wait: false,
        ..first.clone()
    };
    assert!(!store.put_correlation(&again, NOW + 1).await.expect("put"));
    assert_eq!(
        store.get_correlation("c1", NOW + 1).await.expect("get"),
        Some(first)
    );
    assert_eq!(store.get_correlation("c2", NOW).await.expect("get"), None);

    let bare = CorrelationRecord {
        channel_id: None,
        application_id: None,
        interaction_token: None,
        api_base: None,
        wait: false,
        ..correlation("c3", CorrelationKind::Diagnose, NOW_MS)
    };
    assert!(store.put_correlation(&bare, NOW).await.expect("put"));
    assert_eq!(
        store.get_correlation("c3", NOW).await.expect("get"),
        Some(bare)
    );
}

pub async fn correlation_expired_is_ignored_and_replaceable(store: SharedStore) {
    let short = CorrelationRecord {
        expires_at: NOW + 10,
        ..correlation("c1", CorrelationKind::Deploy, NOW_MS)
    };
    assert!(store.put_correlation(&short, NOW).await.expect("put"));
    assert!(store.attach_run("c1", 7, NOW).await.expect("attach"));
    assert!(
        store
            .get_correlation("c1", NOW + 9)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        store.get_correlation("c1", NOW + 10).await.expect("get"),
        None
    );
    assert_eq!(
        store.correlation_for_run(7, NOW + 10).await.expect("run"),
        None
    );
    assert_eq!(
        store
            .latest_deploy_correlation(NOW + 10)
            .await
            .expect("latest"),
        None
    );
    assert!(!store.attach_run("c1", 7, NOW + 10).await.expect("attach"));

    // Once expired, the id is free again and the new record starts without a run.
    let fresh = correlation("c1", CorrelationKind::Diagnose, (NOW + 10) * 1000);
    assert!(store.put_correlation(&fresh, NOW + 10).await.expect("put"));
    assert_eq!(
        store.get_correlation("c1", NOW + 10).await.expect("get"),
        Some(fresh)
    );
}

pub async fn correlation_attach_run_rules(store: SharedStore) {
    for id in ["c1", "c2"] {
        let c = correlation(id, CorrelationKind::Deploy, NOW_MS);
        assert!(store.put_correlation(&c, NOW).await.expect("put"));
    }
    assert!(!store.attach_run("missing", 5, NOW).await.expect("attach"));
    assert_eq!(store.correlation_for_run(5, NOW).await.expect("run"), None);

    assert!(store.attach_run("c1", 5, NOW).await.expect("attach"));
    // Repeating it is harmless; another run for c1, or run 5 for c2, is refused.
    assert!(store.attach_run("c1", 5, NOW).await.expect("again"));
    assert!(!store.attach_run("c1", 6, NOW).await.expect("other run"));
    assert!(!store.attach_run("c2", 5, NOW).await.expect("taken run"));

    let c1 = store
        .correlation_for_run(5, NOW)
        .await
        .expect("run")
        .expect("attached");
    assert_eq!((c1.id.as_str(), c1.run_id), ("c1", Some(5)));
    assert_eq!(
        store
            .get_correlation("c2", NOW)
            .await
            .expect("get")
            .and_then(|c| c.run_id),
        None
    );
    assert_eq!(store.correlation_for_run(6, NOW).await.expect("run"), None);

    // Concurrent attachments of one run: exactly one correlation gets it.
    let mut attaches = JoinSet::new();
    for i in 0..6 {
        let c = correlation(&format!("r{i}"), CorrelationKind::Deploy, NOW_MS);
        assert!(store.put_correlation(&c, NOW).await.expect("put"));
        let store = store.clone();
        attaches.spawn(async move { store.attach_run(&format!("r{i}"), 9, NOW).await });
    }
    let mut won = 0;
    while let Some(attached) = attaches.join_next().await {
        if attached.expect("join").expect("attach") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// A re-run (`/rollback`) is a later dispatch of a run an earlier one holds: the later
/// correlation takes it over, the earlier cannot take it back.
pub async fn correlation_a_later_dispatch_takes_the_run_over(store: SharedStore) {
    let earlier = correlation("c1", CorrelationKind::Deploy, NOW_MS);
    let later = correlation("c2", CorrelationKind::Deploy, NOW_MS + 1000);
    for c in [&earlier, &later] {
        assert!(store.put_correlation(c, NOW).await.expect("put"));
    }
    assert!(store.attach_run("c1", 5, NOW).await.expect("attach"));
    assert!(store.attach_run("c2", 5, NOW).await.expect("take over"));
    let holder = store
        .correlation_for_run(5, NOW)
        .await
        .expect("run")
        .expect("held");
    assert_eq!((holder.id.as_str(), holder.run_id), ("c2", Some(5)));
    assert!(!store.attach_run("c1", 5, NOW).await.expect("take back"));
    let holder = store
        .correlation_for_run(5, NOW)
        .await
        .expect("run")
        .expect("held");
    assert_eq!(holder.id, "c2");
}

pub async fn correlation_latest_deploy(store: SharedStore) {
    assert_eq!(
        store.latest_deploy_correlation(NOW).await.expect("latest"),
        None
    );
    let older = correlation("old", CorrelationKind::Deploy, NOW_MS - 5000);
    let newer = correlation("new", CorrelationKind::Deploy, NOW_MS - 1000);
    let diagnose = correlation("diag", CorrelationKind::Diagnose, NOW_MS);
    // Written out of order: the answer goes by creation time.
    for c in [&newer, &diagnose, &older] {
        assert!(store.put_correlation(c, NOW).await.expect("put"));
    }
    assert_eq!(
        store
            .latest_deploy_correlation(NOW)
            .await
            .expect("latest")
            .map(|c| c.id),
        Some("new".to_owned())
    );
    let expiring = CorrelationRecord {
        expires_at: NOW + 1,
        ..correlation("newest", CorrelationKind::Deploy, NOW_MS)
    };
    assert!(store.put_correlation(&expiring, NOW).await.expect("put"));
    assert_eq!(
        store
            .latest_deploy_correlation(NOW)
            .await
            .expect("latest")
            .map(|c| c.id),
        Some("newest".to_owned())
    );
    assert_eq!(
        store
            .latest_deploy_correlation(NOW + 1)
            .await
            .expect("latest")
            .map(|c| c.id),
        Some("new".to_owned())
    );
}

pub async fn delivery_attaches_correlation(store: SharedStore) {
    for id in ["c1", "c2"] {
        let c = correlation(id, CorrelationKind::Deploy, NOW_MS);
        assert!(store.put_correlation(&c, NOW).await.expect("put"));
    }
    let attach = |correlation_id: &str| RunAttachment {
        correlation_id: correlation_id.into(),
        run_id: 31,
    };
    let first = DeliveryEffects {
        attach: Some(attach("c1")),
        ..delivery("d1", Some(run(31, 1, "queued", None)), vec![])
    };
    assert!(store.accept_delivery(&first, NOW).await.expect("accept"));
    assert_eq!(
        store
            .correlation_for_run(31, NOW)
            .await
            .expect("run")
            .map(|c| c.id),
        Some("c1".to_owned())
    );
    // A refused attachment leaves the delivery accepted and its other effects applied.
    let second = DeliveryEffects {
        attach: Some(attach("c2")),
        ..delivery(
            "d2",
            Some(run(31, 1, "in_progress", None)),
            vec![new_job("j1", NOW_MS)],
        )
    };
    assert!(store.accept_delivery(&second, NOW).await.expect("accept"));
    assert!(store.get_job("j1").await.expect("job").is_some());
    assert_eq!(
        store.get_run(31, NOW).await.expect("run").map(|r| r.status),
        Some("in_progress".to_owned())
    );
    assert_eq!(
        store
            .get_correlation("c2", NOW)
            .await
            .expect("get")
            .and_then(|c| c.run_id),
        None
    );
    // A duplicate delivery attaches nothing either.
    store
        .put_correlation(&correlation("c3", CorrelationKind::Deploy, NOW_MS), NOW)
        .await
        .expect("put");
    let replay = DeliveryEffects {
        attach: Some(RunAttachment {
            correlation_id: "c3".into(),
            run_id: 32,
        }),
        ..delivery("d1", None, vec![])
    };
    assert!(!store.accept_delivery(&replay, NOW).await.expect("dup"));
    assert_eq!(store.correlation_for_run(32, NOW).await.expect("run"), None);
}

pub async fn delivery_records_failed_step(store: SharedStore) {
    let mut n = 0;
    let mut record = async |step: FailedStepRecord| {
        n += 1;
        let effects = DeliveryEffects {
            failed_step: Some(step),
            ..delivery(&format!("d{n}"), None, vec![])
        };
        assert!(store.accept_delivery(&effects, NOW).await.expect("accept"));
        store
            .failed_step(8, NOW)
            .await
            .expect("failed_step")
            .expect("recorded")
    };
    assert_eq!(store.failed_step(8, NOW).await.expect("none yet"), None);
    let build = failed_step(8, 1, "build");
    assert_eq!(record(build.clone()).await, build);
    // A second failing job of the same attempt does not replace the first failure.
    assert_eq!(record(failed_step(8, 1, "upload")).await, build);
    // A re-run that fails again does.
    let rerun = FailedStepRecord {
        step_name: None,
        html_url: None,
        ..failed_step(8, 2, "deploy")
    };
    assert_eq!(record(rerun.clone()).await, rerun);
    assert_eq!(record(failed_step(8, 1, "late")).await, rerun);
    assert_eq!(store.failed_step(9, NOW).await.expect("other run"), None);

    // A duplicate delivery records nothing.
    let dup = DeliveryEffects {
        failed_step: Some(failed_step(10, 1, "build")),
        ..delivery("d1", None, vec![])
    };
    assert!(!store.accept_delivery(&dup, NOW).await.expect("dup"));
    assert_eq!(store.failed_step(10, NOW).await.expect("none"), None);

    // Expired records are not returned, and a new failure replaces them.
    let short = FailedStepRecord {
        expires_at: NOW + 5,
        ..failed_step(11, 3, "build")
    };
    let effects = DeliveryEffects {
        failed_step: Some(short.clone()),
        ..delivery("short", None, vec![])
    };
    assert!(store.accept_delivery(&effects, NOW).await.expect("accept"));
    assert_eq!(
        store.failed_step(11, NOW + 4).await.expect("live"),
        Some(short)
    );
    assert_eq!(store.failed_step(11, NOW + 5).await.expect("expired"), None);
    let later = failed_step(11, 1, "again");
    let effects = DeliveryEffects {
        failed_step: Some(later.clone()),
        ..delivery("later", None, vec![])
    };
    assert!(
        store
            .accept_delivery(&effects, NOW + 5)
            .await
            .expect("accept")
    );
    assert_eq!(
        store.failed_step(11, NOW + 5).await.expect("new"),
        Some(later)
    );
}

/// Two handles on the same storage (two processes, two Lambda instances) see each
/// other's writes, and atomic operations stay atomic across them.
pub async fn shared_between_instances(a: SharedStore, b: SharedStore) {
    assert_eq!(
        a.hit_rate_window("u1", NOW, NOW + 120).await.expect("hit"),
        1
    );
    assert_eq!(
        b.hit_rate_window("u1", NOW, NOW + 120).await.expect("hit"),
        2
    );
    assert_eq!(
        a.hit_rate_window("u1", NOW, NOW + 120).await.expect("hit"),
        3
    );

    let mut hits = JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        hits.spawn(async move { store.hit_rate_window("u2", NOW, NOW + 120).await });
    }
    let mut counts = Vec::new();
    while let Some(hit) = hits.join_next().await {
        counts.push(hit.expect("join").expect("hit"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u32>>());

    let t = trace("t1", "u1", "status", NOW_MS, LATER);
    a.put_trace(&t).await.expect("put");
    assert_eq!(b.get_trace("t1", NOW).await.expect("get"), Some(t));

    a.enqueue_job(&new_job("j1", NOW_MS), NOW_MS)
        .await
        .expect("enqueue");
    assert_eq!(claimed_id(&b, "wb", NOW_MS).await.as_deref(), Some("j1"));
    assert_eq!(claimed_id(&a, "wa", NOW_MS).await, None);

    assert!(
        a.accept_delivery(&delivery("d1", None, vec![]), NOW)
            .await
            .expect("accept")
    );
    assert!(
        !b.accept_delivery(&delivery("d1", None, vec![]), NOW)
            .await
            .expect("dup")
    );

    a.put_pending(&pending("p1", LATER)).await.expect("put");
    assert!(b.take_pending("p1", NOW).await.expect("take").is_some());
    assert!(a.take_pending("p1", NOW).await.expect("take").is_none());

    // A block written by one process is honoured by the other at once, and so is its
    // removal.
    a.put_block(
        &block("u9", None, None),
        &audit("b9", "admin", NOW_MS, LATER),
    )
    .await
    .expect("block");
    assert!(b.get_block("u9", NOW).await.expect("get").is_some());
    assert!(
        b.remove_block("u9", &audit("r9", "admin", NOW_MS, LATER), NOW)
            .await
            .expect("remove")
    );
    assert_eq!(a.get_block("u9", NOW).await.expect("get"), None);
}

fn block(user: &str, reason: Option<&str>, expires_at: Option<i64>) -> BlockRecord {
    BlockRecord {
        user_id: user.into(),
        reason: reason.map(Into::into),
        blocked_by: "admin".into(),
        at_ms: NOW_MS,
        expires_at,
    }
}

async fn audit_ids(store: &SharedStore) -> Vec<String> {
    store
        .list_audit(None, 0, NOW)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.id)
        .collect()
}

pub async fn block_put_get_and_replace(store: SharedStore) {
    assert_eq!(store.get_block("u1", NOW).await.expect("get"), None);
    let first = block("u1", Some("spam"), None);
    store
        .put_block(&first, &audit("b1", "admin", NOW_MS, LATER))
        .await
        .expect("block");
    assert_eq!(store.get_block("u1", NOW).await.expect("get"), Some(first));
    assert_eq!(store.get_block("u2", NOW).await.expect("get"), None);
    // Blocking again replaces the reason and the expiry, and is audited again.
    let second = block("u1", None, Some(NOW + 60));
    store
        .put_block(&second, &audit("b2", "admin", NOW_MS + 1, LATER))
        .await
        .expect("block again");
    assert_eq!(store.get_block("u1", NOW).await.expect("get"), Some(second));
    assert_eq!(audit_ids(&store).await, ["b2", "b1"]);
}

pub async fn admission_is_block_then_count(store: SharedStore) {
    let hit = Some(RateHit {
        window_start: NOW,
        expires_at: NOW + 120,
    });
    assert_eq!(
        store.admit("u1", NOW, true, hit).await.expect("admit"),
        Admission::Open { count: Some(1) }
    );
    assert_eq!(
        store.admit("u1", NOW, true, None).await.expect("admit"),
        Admission::Open { count: None },
        "no hit asked, none counted"
    );
    store
        .put_block(
            &block("u1", None, Some(NOW + 60)),
            &audit("b1", "admin", NOW_MS, LATER),
        )
        .await
        .expect("block");
    assert_eq!(
        store.admit("u1", NOW, true, hit).await.expect("admit"),
        Admission::Blocked
    );
    // Not checked (an admin): counted despite the block.
    assert_eq!(
        store.admit("u1", NOW, false, hit).await.expect("admit"),
        Admission::Open { count: Some(2) }
    );
    // The blocked request was not counted; once the block lapses, requests count again.
    assert_eq!(
        store.admit("u1", NOW + 60, true, hit).await.expect("admit"),
        Admission::Open { count: Some(3) }
    );
    assert_eq!(
        store
            .hit_rate_window("u1", NOW, NOW + 120)
            .await
            .expect("hit"),
        4
    );
}

pub async fn block_expires_at_its_instant(store: SharedStore) {
    let lapsing = block("u1", None, Some(NOW + 60));
    store
        .put_block(&lapsing, &audit("b1", "admin", NOW_MS, LATER))
        .await
        .expect("block");
    assert!(
        store
            .get_block("u1", NOW + 59)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(store.get_block("u1", NOW + 60).await.expect("get"), None);
    assert!(lapsing.is_live(NOW + 59) && !lapsing.is_live(NOW + 60));
    // A block without an expiry holds for good.
    store
        .put_block(
            &block("u2", None, None),
            &audit("b2", "admin", NOW_MS, LATER),
        )
        .await
        .expect("block");
    assert!(
        store
            .get_block("u2", LATER * 10)
            .await
            .expect("get")
            .is_some()
    );
}

pub async fn block_remove_only_a_live_one_with_its_audit(store: SharedStore) {
    // Nothing to remove: nothing written, the audit record included.
    assert!(
        !store
            .remove_block("u1", &audit("r0", "admin", NOW_MS, LATER), NOW)
            .await
            .expect("remove")
    );
    assert!(audit_ids(&store).await.is_empty());

    store
        .put_block(
            &block("u1", None, None),
            &audit("b1", "admin", NOW_MS, LATER),
        )
        .await
        .expect("block");
    assert!(
        store
            .remove_block("u1", &audit("r1", "admin", NOW_MS + 1, LATER), NOW)
            .await
            .expect("remove")
    );
    assert_eq!(store.get_block("u1", NOW).await.expect("get"), None);
    assert_eq!(audit_ids(&store).await, ["r1", "b1"]);
    // Removed once: a second removal finds nothing.
    assert!(
        !store
            .remove_block("u1", &audit("r2", "admin", NOW_MS + 2, LATER), NOW)
            .await
            .expect("remove")
    );

    // A lapsed block is not there to remove.
    store
        .put_block(
            &block("u2", None, Some(NOW + 10)),
            &audit("b2", "admin", NOW_MS + 3, LATER),
        )
        .await
        .expect("block");
    assert!(
        !store
            .remove_block("u2", &audit("r3", "admin", NOW_MS + 4, LATER), NOW + 10)
            .await
            .expect("remove")
    );
    assert_eq!(audit_ids(&store).await, ["b2", "r1", "b1"]);
}

fn verification(run_id: u64, attempt: u32, passed: bool, expires_at: i64) -> VerificationRecord {
    VerificationRecord {
        run_id,
        run_attempt: attempt,
        passed,
        report: serde_json::json!({"content": format!("run {run_id} passed={passed}")}),
        created_at_ms: NOW_MS,
        expires_at,
    }
}

pub async fn verification_first_live_one_wins(store: SharedStore) {
    assert_eq!(store.get_verification(9, 1, NOW).await.expect("get"), None);
    let first = verification(9, 1, true, NOW + 60);
    assert_eq!(
        store.put_verification(&first, NOW).await.expect("put"),
        first
    );
    // A second verification of the same attempt does not replace the first.
    let second = verification(9, 1, false, NOW + 60);
    assert_eq!(
        store.put_verification(&second, NOW).await.expect("put"),
        first
    );
    assert_eq!(
        store.get_verification(9, 1, NOW).await.expect("get"),
        Some(first.clone())
    );
    // Another attempt is its own verification.
    let retry = verification(9, 2, false, NOW + 60);
    assert_eq!(
        store.put_verification(&retry, NOW).await.expect("put"),
        retry
    );
    // Expired: ignored on read and replaceable.
    assert_eq!(
        store.get_verification(9, 1, NOW + 60).await.expect("get"),
        None
    );
    let later = verification(9, 1, false, NOW + 500);
    assert_eq!(
        store.put_verification(&later, NOW + 60).await.expect("put"),
        later
    );
}

pub async fn recent_runs_newest_first_without_expired(store: SharedStore) {
    assert!(store.recent_runs(5, NOW).await.expect("recent").is_empty());
    let expiring = RunRecord {
        expires_at: NOW + 5,
        ..run(30, 1, "completed", Some("success"))
    };
    for (i, record) in [
        run(10, 1, "completed", Some("failure")),
        expiring,
        run(20, 1, "in_progress", None),
    ]
    .into_iter()
    .enumerate()
    {
        let delivery_id = format!("r{i}");
        assert!(
            store
                .accept_delivery(&delivery(&delivery_id, Some(record), vec![]), NOW)
                .await
                .expect("accept")
        );
    }
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.recent_runs(5, NOW).await.expect("recent")),
        vec![30, 20, 10]
    );
    assert_eq!(
        ids(store.recent_runs(2, NOW).await.expect("recent")),
        vec![30, 20]
    );
    assert_eq!(
        ids(store.recent_runs(5, NOW + 5).await.expect("recent")),
        vec![20, 10]
    );
}
