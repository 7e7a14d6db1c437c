//! The rules that decide what a store write does, as pure functions beside the records.
//!
//! Every backend applies the same rules: it reads what is stored inside its atomic write
//! (a SQLite `BEGIN IMMEDIATE` transaction, a DynamoDB transaction whose conditions pin
//! what was read), asks the rule here, and writes what the rule decided. A backend states
//! a rule in its own query language only where an index or its atomicity needs the query
//! to carry it, says so beside the query, and the conformance suite compares the two.
//!
//! Times follow the store's conventions: `now` in epoch seconds against `expires_at`,
//! `now_ms` in epoch milliseconds against job times.

use super::{
    BlockRecord, CorrelationRecord, FailedStepRecord, JobRecord, JobState, LockRecord, RunRecord,
    SettingRecord, TraceQuery, TraceRecord,
};

/// Whether a record expiring at `expires_at` still counts at `now`: at `now == expires_at`
/// it is gone. Expired records may linger until housekeeping deletes them (DynamoDB's TTL
/// runs late), so every read and every conditional write asks this, never "is it there".
pub fn is_live(expires_at: i64, now: i64) -> bool {
    expires_at > now
}

/// Whether an id whose stored record expires at `stored_expires_at` (`None`: nothing
/// stored) is free for a write that must not replace a live record: correlations (the
/// "about to dispatch" marker), verifications (the first one of a run attempt wins) and
/// webhook deliveries (dedup).
pub fn is_free(stored_expires_at: Option<i64>, now: i64) -> bool {
    stored_expires_at.is_none_or(|expires_at| !is_live(expires_at, now))
}

/// Whether housekeeping may delete a record whose `expires_at` is this: it has one, and
/// it is no longer live. Records without one (settings, unfinished jobs) never expire.
pub fn is_expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| !is_live(at, now))
}

impl TraceRecord {
    /// Whether `valine traces` lists this trace for `query`: of that user and command
    /// when given (exact, case-sensitive, as stored), started at or after `since_ms`.
    /// Liveness is the caller's other condition.
    pub fn matches(&self, query: &TraceQuery) -> bool {
        query.user_id.as_deref().is_none_or(|u| u == self.user_id)
            && query.command.as_deref().is_none_or(|c| c == self.command)
            && self.started_at_ms >= query.since_ms
    }

    /// The order of a trace listing: newest first, ties broken by the higher id.
    pub fn newest_first(a: &TraceRecord, b: &TraceRecord) -> std::cmp::Ordering {
        (b.started_at_ms, &b.id).cmp(&(a.started_at_ms, &a.id))
    }
}

impl RunRecord {
    /// The record to store when `incoming` reports on the run and `stored` is what the
    /// store holds (live or not). Webhook events arrive out of order and partially
    /// filled, so the stored record only ever moves forward:
    /// - a newer `run_attempt` replaces an older one: its status, conclusion and update
    ///   time start afresh, while facts about the run itself (name, branch, sha, url)
    ///   carry over when the event leaves them out;
    /// - an event of an earlier attempt changes nothing;
    /// - within one attempt the incoming `status` is trusted (GitHub's own order), except
    ///   that a completed attempt never goes back to in progress: a late progress event
    ///   may only fill gaps;
    /// - the record is kept as long as the longest retention either side asked for.
    pub fn merge(stored: Option<&RunRecord>, incoming: &RunRecord, now: i64) -> RunRecord {
        let Some(old) = stored.filter(|old| is_live(old.expires_at, now)) else {
            return incoming.clone();
        };
        let expires_at = old.expires_at.max(incoming.expires_at);
        match incoming.run_attempt.cmp(&old.run_attempt) {
            std::cmp::Ordering::Less => RunRecord {
                expires_at,
                ..old.clone()
            },
            std::cmp::Ordering::Greater => RunRecord {
                status: incoming.status.clone(),
                conclusion: incoming.conclusion.clone(),
                updated_at: incoming.updated_at.clone(),
                expires_at,
                ..incoming.overlay(old)
            },
            std::cmp::Ordering::Equal if old.is_completed() && !incoming.is_completed() => {
                RunRecord {
                    expires_at,
                    ..old.overlay(incoming)
                }
            }
            std::cmp::Ordering::Equal => RunRecord {
                expires_at,
                ..incoming.overlay(old)
            },
        }
    }

    fn is_completed(&self) -> bool {
        self.status == "completed"
    }

    /// `self`'s fields, with `fallback`'s where `self` has none.
    fn overlay(&self, fallback: &RunRecord) -> RunRecord {
        let p = self.clone();
        let f = fallback.clone();
        RunRecord {
            id: p.id,
            workflow_id: p.workflow_id,
            workflow_name: p.workflow_name.or(f.workflow_name),
            status: p.status,
            conclusion: p.conclusion.or(f.conclusion),
            branch: p.branch.or(f.branch),
            head_sha: p.head_sha.or(f.head_sha),
            run_attempt: p.run_attempt,
            html_url: p.html_url.or(f.html_url),
            display_title: p.display_title.or(f.display_title),
            created_at: p.created_at.or(f.created_at),
            updated_at: p.updated_at.or(f.updated_at),
            expires_at: p.expires_at,
        }
    }
}

impl FailedStepRecord {
    /// Whether this failure is stored over `stored`, the one the store holds for the run.
    /// The first failure of an attempt is kept (it is the one that failed the run; later
    /// jobs often fail because of it) until a later attempt fails; an expired record counts
    /// as absent.
    pub fn replaces(&self, stored: Option<&FailedStepRecord>, now: i64) -> bool {
        stored.is_none_or(|stored| {
            !is_live(stored.expires_at, now) || stored.run_attempt < self.run_attempt
        })
    }
}

impl LockRecord {
    /// Whether `owner` may take (or extend) the lock over `stored`: the lock is free,
    /// expired, or already `owner`'s. A holder renewing its own lock is not a conflict.
    pub fn can_take(stored: Option<&LockRecord>, owner: &str, now: i64) -> bool {
        stored.is_none_or(|held| !is_live(held.expires_at, now) || held.owner == owner)
    }
}

impl BlockRecord {
    /// Whether the block holds at `now`: until it lapses at `expires_at`, or for good
    /// when it has none.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| is_live(at, now))
    }
}

impl SettingRecord {
    /// Whether a change prepared against `expected` may be written over `current`: only
    /// if nobody changed the setting since (a `/set-*` preview confirmed late must not
    /// undo a change made in between).
    pub fn still_expected(current: Option<&SettingRecord>, expected: Option<&str>) -> bool {
        current.map(|setting| setting.value.as_str()) == expected
    }
}

impl CorrelationRecord {
    /// Whether `run_id` may be attached to this correlation at `now`. `holders` are the
    /// stored correlations that name `run_id` (live or not, this one included or not).
    /// Attaching needs this correlation live and without another run, and no other live
    /// correlation holding the run, unless that one was created earlier: one dispatch,
    /// one run, and a later dispatch of the same run (a re-run by `/rollback`, the only
    /// way a run can belong to a newer dispatch, since a run's title names the dispatch
    /// that created it) takes it over, so news of its new attempt goes to the command
    /// that started it. Attaching the same run again is allowed, so a repeated webhook
    /// is harmless.
    pub fn can_attach(&self, run_id: u64, holders: &[CorrelationRecord], now: i64) -> bool {
        is_live(self.expires_at, now)
            && self.run_id.is_none_or(|attached| attached == run_id)
            && holders.iter().all(|other| {
                other.id == self.id
                    || other.run_id != Some(run_id)
                    || !is_live(other.expires_at, now)
                    || other.created_at_ms < self.created_at_ms
            })
    }
}

impl JobRecord {
    /// Whether a worker may claim the job at `now_ms`: `Pending` and due, or `Running`
    /// with a lease that ended (its worker died). A lease is held while
    /// `lease_until_ms >= now_ms`. Among claimable jobs the one with the earliest
    /// `(run_after_ms, id)` goes first.
    pub fn claimable_at(&self, now_ms: i64) -> bool {
        match self.state {
            JobState::Pending => self.run_after_ms <= now_ms,
            JobState::Running => self.lease_until_ms.is_some_and(|until| until < now_ms),
            JobState::Done | JobState::Failed => false,
        }
    }

    /// Whether `owner` holds the running job's lease, the condition for it to renew,
    /// complete, retry, fail or release the job. A lease that ended still counts until
    /// another worker claims the job, so a slow worker's finished work is still recorded.
    pub fn held_by(&self, owner: &str) -> bool {
        self.state == JobState::Running && self.lease_owner.as_deref() == Some(owner)
    }

    /// The job as `owner` claims it: one more attempt, leased until `lease_until_ms`.
    pub fn claimed(&self, owner: &str, lease_until_ms: i64) -> JobRecord {
        JobRecord {
            state: JobState::Running,
            attempts: self.attempts.saturating_add(1),
            lease_owner: Some(owner.to_owned()),
            lease_until_ms: Some(lease_until_ms),
            ..self.clone()
        }
    }

    pub fn renewed(&self, lease_until_ms: i64) -> JobRecord {
        JobRecord {
            lease_until_ms: Some(lease_until_ms),
            ..self.clone()
        }
    }

    pub fn completed(&self, expires_at: i64) -> JobRecord {
        JobRecord {
            state: JobState::Done,
            expires_at: Some(expires_at),
            ..self.unleased()
        }
    }

    /// Back to `Pending` until `run_after_ms`, recording why.
    pub fn retried(&self, run_after_ms: i64, error: &str) -> JobRecord {
        JobRecord {
            state: JobState::Pending,
            run_after_ms,
            last_error: Some(error.to_owned()),
            ..self.unleased()
        }
    }

    pub fn failed(&self, error: &str, expires_at: i64) -> JobRecord {
        JobRecord {
            state: JobState::Failed,
            last_error: Some(error.to_owned()),
            expires_at: Some(expires_at),
            ..self.unleased()
        }
    }

    /// Claimable again at once, giving back the interrupted attempt: a graceful restart
    /// must not use up a job's retries.
    pub fn released(&self) -> JobRecord {
        JobRecord {
            state: JobState::Pending,
            attempts: self.attempts.saturating_sub(1),
            ..self.unleased()
        }
    }

    /// Lease fields are set only while a job is `Running`.
    fn unleased(&self) -> JobRecord {
        JobRecord {
            lease_owner: None,
            lease_until_ms: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CorrelationKind;

    const NOW: i64 = 1_000;

    #[test]
    fn a_block_holds_until_it_lapses_or_for_good() {
        let block = |expires_at| BlockRecord {
            user_id: "7".into(),
            reason: None,
            blocked_by: "1".into(),
            at_ms: 0,
            expires_at,
        };
        assert!(block(None).is_live(i64::MAX));
        assert!(block(Some(NOW + 1)).is_live(NOW));
        assert!(!block(Some(NOW)).is_live(NOW));
    }

    #[test]
    fn expired_only_with_an_expiry_that_passed() {
        assert!(!is_expired(None, NOW));
        assert!(!is_expired(Some(NOW + 1), NOW));
        assert!(is_expired(Some(NOW), NOW));
        assert!(is_expired(Some(NOW - 1), NOW));
    }

    fn trace(id: &str, user: &str, command: &str, started_at_ms: i64) -> TraceRecord {
        TraceRecord {
            id: id.into(),
            user_id: user.into(),
            command: command.into(),
            options: serde_json::Map::new(),
            started_at_ms,
            steps: vec![],
            duration_ms: None,
            outcome: None,
            error: None,
            links: vec![],
            expires_at: NOW,
        }
    }

    #[test]
    fn trace_query_filters_by_user_command_and_start() {
        let t = trace("a", "u1", "status", 5_000);
        let all = TraceQuery {
            user_id: None,
            command: None,
            since_ms: 0,
            limit: 10,
        };
        assert!(t.matches(&all));
        assert!(t.matches(&TraceQuery {
            user_id: Some("u1".into()),
            command: Some("status".into()),
            since_ms: 5_000,
            ..all.clone()
        }));
        assert!(!t.matches(&TraceQuery {
            user_id: Some("u2".into()),
            ..all.clone()
        }));
        assert!(!t.matches(&TraceQuery {
            command: Some("Status".into()),
            ..all.clone()
        }));
        assert!(!t.matches(&TraceQuery {
            since_ms: 5_001,
            ..all
        }));
    }

    #[test]
    fn traces_sort_newest_first_then_by_higher_id() {
        let mut traces = [
            trace("a", "u", "c", 1),
            trace("b", "u", "c", 3),
            trace("c", "u", "c", 3),
        ];
        traces.sort_by(TraceRecord::newest_first);
        let ids: Vec<&str> = traces.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
    }

    #[test]
    fn live_until_expires_at_and_free_when_absent_or_expired() {
        assert!(is_live(NOW + 1, NOW));
        assert!(!is_live(NOW, NOW));
        assert!(is_free(None, NOW));
        assert!(is_free(Some(NOW), NOW));
        assert!(is_free(Some(NOW - 1), NOW));
        assert!(!is_free(Some(NOW + 1), NOW));
    }

    fn run(attempt: u32, status: &str) -> RunRecord {
        RunRecord {
            id: 1,
            workflow_id: 2,
            workflow_name: Some("deploy".into()),
            status: status.into(),
            conclusion: None,
            branch: Some("main".into()),
            head_sha: Some("abc".into()),
            run_attempt: attempt,
            html_url: Some("https://x/1".into()),
            display_title: Some("title".into()),
            created_at: Some("t0".into()),
            updated_at: Some("t1".into()),
            expires_at: NOW + 100,
        }
    }

    #[test]
    fn run_merge_without_a_live_record_takes_the_event() {
        let incoming = run(1, "queued");
        assert_eq!(RunRecord::merge(None, &incoming, NOW), incoming);
        let expired = RunRecord {
            expires_at: NOW,
            ..run(3, "completed")
        };
        assert_eq!(RunRecord::merge(Some(&expired), &incoming, NOW), incoming);
    }

    #[test]
    fn run_merge_completion_fills_in_and_is_never_undone() {
        let base = run(1, "in_progress");
        let done = RunRecord {
            status: "completed".into(),
            conclusion: Some("failure".into()),
            updated_at: Some("t2".into()),
            display_title: None,
            expires_at: NOW + 200,
            ..base.clone()
        };
        let merged = RunRecord::merge(Some(&base), &done, NOW);
        assert_eq!(merged.status, "completed");
        assert_eq!(merged.conclusion.as_deref(), Some("failure"));
        assert_eq!(merged.display_title.as_deref(), Some("title"));
        assert_eq!(merged.expires_at, NOW + 200);

        // A late progress event of the finished attempt only fills gaps.
        let late = RunRecord {
            display_title: Some("late title".into()),
            updated_at: Some("t9".into()),
            ..base.clone()
        };
        let mut gaps = merged.clone();
        gaps.display_title = None;
        let filled = RunRecord::merge(Some(&gaps), &late, NOW);
        assert_eq!(filled.status, "completed");
        assert_eq!(filled.updated_at.as_deref(), Some("t2"));
        assert_eq!(filled.display_title.as_deref(), Some("late title"));
        assert_eq!(RunRecord::merge(Some(&merged), &base, NOW), merged);
    }

    #[test]
    fn run_merge_trusts_status_within_an_attempt() {
        let running = run(1, "in_progress");
        let queued = RunRecord {
            html_url: None,
            ..run(1, "queued")
        };
        let merged = RunRecord::merge(Some(&running), &queued, NOW);
        assert_eq!(merged.status, "queued");
        assert_eq!(merged.html_url.as_deref(), Some("https://x/1"));
    }

    #[test]
    fn run_merge_newer_attempt_replaces_and_older_is_ignored() {
        let done = RunRecord {
            conclusion: Some("failure".into()),
            expires_at: NOW + 200,
            ..run(1, "completed")
        };
        let rerun = RunRecord {
            conclusion: None,
            updated_at: None,
            html_url: None,
            expires_at: NOW + 150,
            ..run(2, "queued")
        };
        let second = RunRecord::merge(Some(&done), &rerun, NOW);
        assert_eq!(second.run_attempt, 2);
        assert_eq!(second.status, "queued");
        assert_eq!(second.conclusion, None);
        assert_eq!(second.updated_at, None);
        assert_eq!(second.html_url.as_deref(), Some("https://x/1"));
        assert_eq!(second.expires_at, NOW + 200);

        let stale = RunRecord::merge(Some(&second), &done, NOW);
        assert_eq!(stale, second);
    }

    fn step(attempt: u32, job: &str, expires_at: i64) -> FailedStepRecord {
        FailedStepRecord {
            run_id: 1,
            run_attempt: attempt,
            job_id: 7,
            job_name: job.into(),
            step_name: Some("test".into()),
            html_url: None,
            expires_at,
        }
    }

    #[test]
    fn failed_step_first_of_an_attempt_is_kept() {
        let first = step(1, "build", NOW + 10);
        assert!(first.replaces(None, NOW));
        assert!(!step(1, "lint", NOW + 10).replaces(Some(&first), NOW));
        assert!(step(2, "lint", NOW + 10).replaces(Some(&first), NOW));
        assert!(!step(1, "lint", NOW + 10).replaces(Some(&step(2, "x", NOW + 10)), NOW));
        assert!(step(1, "lint", NOW + 10).replaces(Some(&step(2, "x", NOW)), NOW));
    }

    #[test]
    fn lock_taken_when_free_expired_or_own() {
        let held = LockRecord {
            name: "deploy".into(),
            owner: "a".into(),
            expires_at: NOW + 60,
        };
        assert!(LockRecord::can_take(None, "b", NOW));
        assert!(!LockRecord::can_take(Some(&held), "b", NOW));
        assert!(LockRecord::can_take(Some(&held), "a", NOW));
        assert!(!LockRecord::can_take(Some(&held), "b", NOW + 59));
        assert!(LockRecord::can_take(Some(&held), "b", NOW + 60));
    }

    #[test]
    fn setting_changes_only_if_still_expected() {
        let current = SettingRecord {
            key: "K".into(),
            value: "v1".into(),
            updated_by: "u".into(),
            updated_at_ms: 0,
        };
        assert!(SettingRecord::still_expected(None, None));
        assert!(!SettingRecord::still_expected(None, Some("v1")));
        assert!(SettingRecord::still_expected(Some(&current), Some("v1")));
        assert!(!SettingRecord::still_expected(Some(&current), Some("v0")));
        assert!(!SettingRecord::still_expected(Some(&current), None));
    }

    fn correlation(id: &str, run_id: Option<u64>, expires_at: i64) -> CorrelationRecord {
        CorrelationRecord {
            id: id.into(),
            kind: CorrelationKind::Deploy,
            requester: "u".into(),
            channel_id: None,
            application_id: None,
            interaction_token: None,
            token_expires_at_ms: 0,
            wait: false,
            api_base: None,
            run_id,
            created_at_ms: 0,
            expires_at,
        }
    }

    #[test]
    fn attach_needs_a_live_correlation_without_another_run() {
        let free = correlation("c1", None, NOW + 10);
        assert!(free.can_attach(5, &[], NOW));
        assert!(!correlation("c1", None, NOW).can_attach(5, &[], NOW));
        let attached = correlation("c1", Some(5), NOW + 10);
        assert!(attached.can_attach(5, std::slice::from_ref(&attached), NOW));
        assert!(!attached.can_attach(6, &[], NOW));
    }

    #[test]
    fn attach_refused_while_another_live_correlation_holds_the_run() {
        let free = correlation("c1", None, NOW + 10);
        assert!(!free.can_attach(5, &[correlation("c2", Some(5), NOW + 10)], NOW));
        assert!(free.can_attach(5, &[correlation("c2", Some(5), NOW)], NOW));
        assert!(free.can_attach(5, &[correlation("c2", Some(6), NOW + 10)], NOW));
    }

    #[test]
    fn a_later_dispatch_of_the_run_takes_it_over_and_never_the_reverse() {
        let mut earlier = correlation("c1", Some(5), NOW + 10);
        earlier.created_at_ms = 1_000;
        let mut later = correlation("c2", None, NOW + 10);
        later.created_at_ms = 2_000;
        assert!(later.can_attach(5, std::slice::from_ref(&earlier), NOW));
        later.run_id = Some(5);
        assert!(!earlier.can_attach(5, &[later], NOW));
    }

    fn job(state: JobState) -> JobRecord {
        JobRecord {
            id: "j".into(),
            payload: serde_json::json!({}),
            state,
            attempts: 1,
            run_after_ms: 100,
            deadline_ms: 1_000,
            lease_owner: (state == JobState::Running).then(|| "w".into()),
            lease_until_ms: (state == JobState::Running).then_some(200),
            last_error: None,
            trace_id: None,
            created_at_ms: 0,
            expires_at: None,
        }
    }

    #[test]
    fn job_claimable_when_due_or_its_lease_ended() {
        let pending = job(JobState::Pending);
        assert!(!pending.claimable_at(99));
        assert!(pending.claimable_at(100));
        let running = job(JobState::Running);
        assert!(!running.claimable_at(200));
        assert!(running.claimable_at(201));
        for state in [JobState::Done, JobState::Failed] {
            assert!(!job(state).claimable_at(i64::MAX));
        }
    }

    #[test]
    fn job_transitions_keep_lease_fields_only_while_running() {
        let claimed = job(JobState::Pending).claimed("x", 300);
        assert_eq!(claimed.state, JobState::Running);
        assert_eq!(claimed.attempts, 2);
        assert!(claimed.held_by("x"));
        assert!(!claimed.held_by("w"));
        assert_eq!(claimed.renewed(400).lease_until_ms, Some(400));

        let done = claimed.completed(9);
        assert_eq!((done.state, done.expires_at), (JobState::Done, Some(9)));
        assert!(!done.held_by("x"));

        let retried = claimed.retried(500, "boom");
        assert_eq!(retried.state, JobState::Pending);
        assert_eq!(retried.run_after_ms, 500);
        assert_eq!(retried.last_error.as_deref(), Some("boom"));
        assert_eq!(retried.attempts, 2);

        let failed = claimed.failed("gave up", 9);
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.last_error.as_deref(), Some("gave up"));

        let released = claimed.released();
        assert_eq!((released.state, released.attempts), (JobState::Pending, 1));
        assert!(released.claimable_at(released.run_after_ms));

        for moved in [done, retried, failed, released] {
            assert_eq!((moved.lease_owner, moved.lease_until_ms), (None, None));
        }
    }
}
