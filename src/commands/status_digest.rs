//! `/status-digest`: deploy statistics over a period and the live health of the frontend
//! and API.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Answer, Call, Command, CommandError, CommandSpec, OptionSpec};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::{Embed, GREEN, GREY, RED, Reply, YELLOW};
use crate::github::model::WorkflowRun;
use crate::trace::Tracer;
use crate::verify::checks::{self, FAILED_CONCLUSIONS, PathProbe, Side, TargetState};

/// `/status-digest`.
pub struct StatusDigest;

#[async_trait]
impl Command for StatusDigest {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "status-digest",
            description: "Deploy digest: success rate, durations, failures, health",
            options: vec![
                OptionSpec::string("period", "Period to cover (default 24h)")
                    .choices(&["24h", "7d"]),
            ],
            access: Access::Anyone,
            answer: Answer::Deferred { ephemeral: false },
        }
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let period = call.string("period").unwrap_or("24h");
        let span = match period {
            "7d" => chrono::Duration::days(7),
            _ => chrono::Duration::hours(24),
        };
        let github = app.github()?;
        let branch = app.config.deploy_branch.as_str();
        let now = app.clock.now();

        let workflow = super::deploy_workflow(app, tracer).await?;

        let step = tracer.begin("store.settings");
        let targets = checks::targets_in_use(app, None).await;
        tracer.end(step, &targets);
        let targets = targets?;

        // The run listing and the live probes do not depend on each other.
        let step = tracer.begin("digest.runs_and_probes");
        let probes =
            futures_util::future::join_all(targets.iter().map(|(side, state, _)| async move {
                match state {
                    TargetState::Ready(target) => Some((
                        *side,
                        checks::probe_paths(&app.prober, target, side.paths(app)).await,
                    )),
                    _ => None,
                }
            }));
        let (runs, probes) = tokio::join!(
            github.list_runs(workflow.id, Some(branch), Some(now - span), MAX_RUNS),
            probes
        );
        tracer.end(step, &runs);
        let runs = runs?;
        let probes: Vec<(Side, Vec<PathProbe>)> = probes.into_iter().flatten().collect();

        let stats = Stats::from_runs(&runs);
        let invalid: Vec<String> = targets
            .iter()
            .filter_map(|(side, state, _)| match state {
                TargetState::Invalid { value, reason } => {
                    Some(format!("❌ {} `{value}`: {reason}", side.label()))
                }
                _ => None,
            })
            .collect();
        let passed = probes
            .iter()
            .flat_map(|(_, p)| p)
            .filter(|p| p.passed())
            .count();
        let failed = probes
            .iter()
            .flat_map(|(_, p)| p)
            .filter(|p| !p.passed())
            .count()
            + invalid.len();
        let health = Health::of(passed, failed);

        let mut embed = Embed::new(format!("Deploy digest · {branch} · last {period}"))
            .color(health.colour())
            .description(summary(&stats, runs.len() >= MAX_RUNS));
        embed = embed.field("Failures", failures_text(&stats, now));
        let mut health_lines = vec![health.label().to_owned()];
        for (side, side_probes) in &probes {
            let ok = side_probes.iter().filter(|p| p.passed()).count();
            let details: Vec<String> = side_probes
                .iter()
                .map(|p| match &p.result {
                    Ok(r) => format!("`{}` {}", p.path, r.status),
                    Err(e) => format!("`{}` {}", p.path, e.kind()),
                })
                .collect();
            health_lines.push(format!(
                "{}: {ok}/{} ok ({})",
                side.label(),
                side_probes.len(),
                details.join(", ")
            ));
        }
        health_lines.extend(invalid);
        embed = embed
            .field("Health", health_lines.join("\n"))
            .footer(format!(
                "{} • valine {} • trace {}",
                app.config.stage,
                crate::VERSION,
                tracer.short_id()
            ));
        Ok(Reply::embed(embed))
    }
}

/// Runs read for one digest at most: five pages of GitHub's largest size, far beyond a
/// week of deploys; the digest says when it stopped there.
const MAX_RUNS: usize = 500;
const MAX_FAILURES_SHOWN: usize = 5;

/// Figures over a set of runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub count: usize,
    pub completed: usize,
    pub succeeded: usize,
    /// Seconds from start to last update of completed runs, ascending.
    pub durations: Vec<i64>,
    /// Failed runs, newest first.
    pub failures: Vec<WorkflowRun>,
}

impl Stats {
    pub fn from_runs(runs: &[WorkflowRun]) -> Stats {
        let completed: Vec<&WorkflowRun> = runs.iter().filter(|r| r.is_completed()).collect();
        let mut durations: Vec<i64> = completed
            .iter()
            .filter_map(|r| {
                let start = r.run_started_at.or(r.created_at)?;
                Some((r.updated_at? - start).num_seconds().max(0))
            })
            .collect();
        durations.sort_unstable();
        let mut failures: Vec<WorkflowRun> = completed
            .iter()
            .filter(|r| {
                r.conclusion
                    .as_deref()
                    .is_some_and(|c| FAILED_CONCLUSIONS.contains(&c))
            })
            .map(|r| (*r).clone())
            .collect();
        failures.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Stats {
            count: runs.len(),
            completed: completed.len(),
            succeeded: completed
                .iter()
                .filter(|r| r.conclusion.as_deref() == Some("success"))
                .count(),
            durations,
            failures,
        }
    }

    /// Success / completed, as a percentage; `None` without completed runs.
    pub fn success_rate(&self) -> Option<f64> {
        (self.completed > 0).then(|| 100.0 * self.succeeded as f64 / self.completed as f64)
    }

    /// Nearest-rank percentile of the durations: the smallest value with at least `p`%
    /// of the values at or below it.
    pub fn percentile(&self, p: u32) -> Option<i64> {
        let n = self.durations.len();
        if n == 0 {
            return None;
        }
        let rank = (u64::from(p) * n as u64).div_ceil(100).max(1) as usize;
        self.durations.get(rank.min(n) - 1).copied()
    }
}

/// Healthy when every check passes, degraded when some fail, critical when more than half
/// fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Degraded,
    Critical,
    /// No target is configured: nothing was checked.
    Unknown,
}

impl Health {
    pub fn of(passed: usize, failed: usize) -> Health {
        match (passed, failed) {
            (0, 0) => Health::Unknown,
            (_, 0) => Health::Healthy,
            (p, f) if f > p => Health::Critical,
            _ => Health::Degraded,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Health::Healthy => "🟢 healthy",
            Health::Degraded => "🟡 degraded",
            Health::Critical => "🔴 critical",
            Health::Unknown => "⚪ unknown (no target configured)",
        }
    }

    fn colour(self) -> u32 {
        match self {
            Health::Healthy => GREEN,
            Health::Degraded => YELLOW,
            Health::Critical => RED,
            Health::Unknown => GREY,
        }
    }
}

fn summary(stats: &Stats, capped: bool) -> String {
    let running = stats.count - stats.completed;
    let mut lines = vec![format!(
        "Runs: **{}** ({} completed, {running} not finished){}",
        stats.count,
        stats.completed,
        if capped {
            ", only the newest were read"
        } else {
            ""
        }
    )];
    lines.push(match stats.success_rate() {
        Some(rate) => format!(
            "Success rate: **{rate:.0}%** ({}/{})",
            stats.succeeded, stats.completed
        ),
        None => "Success rate: n/a (no completed runs)".to_owned(),
    });
    lines.push(match (stats.percentile(50), stats.percentile(95)) {
        (Some(p50), Some(p95)) => format!(
            "Duration: p50 **{}** · p95 **{}**",
            crate::format::duration(p50),
            crate::format::duration(p95)
        ),
        _ => "Duration: n/a".to_owned(),
    });
    lines.join("\n")
}

fn failures_text(stats: &Stats, now: DateTime<Utc>) -> String {
    if stats.failures.is_empty() {
        return "None 🎉".to_owned();
    }
    let mut lines: Vec<String> = stats
        .failures
        .iter()
        .take(MAX_FAILURES_SHOWN)
        .map(|r| {
            let age = r
                .created_at
                .map(|t| crate::format::age((now - t).num_seconds()))
                .unwrap_or_default();
            let link = match &r.html_url {
                Some(url) => format!("[run {}]({url})", r.id),
                None => format!("run {}", r.id),
            };
            format!(
                "🔴 {} · {age} · {link}",
                r.conclusion.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if stats.failures.len() > MAX_FAILURES_SHOWN {
        lines.push(format!(
            "… and {} more",
            stats.failures.len() - MAX_FAILURES_SHOWN
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn run(id: u64, conclusion: Option<&str>, start_min: i64, secs: i64) -> WorkflowRun {
        let start = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(start_min);
        WorkflowRun {
            id,
            status: Some(
                if conclusion.is_some() {
                    "completed"
                } else {
                    "in_progress"
                }
                .into(),
            ),
            conclusion: conclusion.map(str::to_owned),
            created_at: Some(start),
            run_started_at: Some(start),
            updated_at: Some(start + chrono::Duration::seconds(secs)),
            ..Default::default()
        }
    }

    fn known_runs() -> Vec<WorkflowRun> {
        vec![
            run(1, Some("success"), 0, 60),
            run(2, Some("success"), 10, 120),
            run(3, Some("failure"), 20, 30),
            run(4, Some("success"), 30, 90),
            run(5, Some("timed_out"), 40, 600),
            run(6, Some("success"), 50, 75),
            run(7, Some("skipped"), 55, 5),
            run(8, None, 60, 10),
        ]
    }

    #[test]
    fn statistics_of_a_known_set_of_runs() {
        let stats = Stats::from_runs(&known_runs());
        assert_eq!(stats.count, 8);
        assert_eq!(stats.completed, 7);
        assert_eq!(stats.succeeded, 4);
        // 4 of 7 completed runs succeeded.
        assert_eq!(format!("{:.1}", stats.success_rate().unwrap()), "57.1");
        assert_eq!(stats.durations, vec![5, 30, 60, 75, 90, 120, 600]);
        // Nearest rank: p50 is the 4th of 7 (ceil 3.5), p95 the 7th (ceil 6.65).
        assert_eq!(stats.percentile(50), Some(75));
        assert_eq!(stats.percentile(95), Some(600));
        assert_eq!(stats.percentile(0), Some(5));
        let failures: Vec<u64> = stats.failures.iter().map(|r| r.id).collect();
        assert_eq!(
            failures,
            vec![5, 3],
            "newest first, skipped is not a failure"
        );
    }

    #[test]
    fn empty_periods_have_no_rates() {
        let stats = Stats::from_runs(&[]);
        assert_eq!(stats.success_rate(), None);
        assert_eq!(stats.percentile(50), None);
        assert!(summary(&stats, false).contains("n/a"));
    }

    #[test]
    fn health_follows_the_share_of_failed_checks() {
        assert_eq!(Health::of(4, 0), Health::Healthy);
        assert_eq!(Health::of(3, 1), Health::Degraded);
        assert_eq!(Health::of(2, 2), Health::Degraded);
        assert_eq!(Health::of(1, 3), Health::Critical);
        assert_eq!(Health::of(0, 1), Health::Critical);
        assert_eq!(Health::of(0, 0), Health::Unknown);
    }
}
