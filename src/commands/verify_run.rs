//! `/verify-run`: verify one deploy run by id or run URL (see
//! `docs/design.md#verification`). Also owns the report's buttons, which `/verify-latest`
//! and the run announcements render too: `Re-verify` (anyone) and `Re-run failed jobs`
//! (deployers).

use super::{
    Answer, ButtonAnswer, ButtonSpec, Call, Command, CommandError, CommandSpec, OptionSpec,
    Precheck, Press,
};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::Reply;
use crate::github::model::WorkflowRun;
use crate::trace::Tracer;
use crate::verify::report::{RERUN_FAILED_ACTION, REVERIFY_ACTION};
use async_trait::async_trait;

/// `/verify-run`.
pub struct VerifyRun;

#[async_trait]
impl Command for VerifyRun {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "verify-run",
            description: "Verify a specific deploy run",
            options: vec![
                OptionSpec::string("run_id", "Run id or GitHub Actions run URL")
                    .required()
                    .autocomplete(),
            ],
            access: Access::Anyone,
            answer: Answer::Deferred { ephemeral: false },
        }
    }

    fn buttons(&'static self) -> Vec<ButtonSpec> {
        vec![
            ButtonSpec {
                action: REVERIFY_ACTION,
                label: "Re-verify",
                access: Access::Anyone,
                answer: ButtonAnswer::Deferred { ephemeral: false },
                handler: &Reverify,
            },
            ButtonSpec {
                action: RERUN_FAILED_ACTION,
                label: "Re-run failed jobs",
                access: Access::Deployers,
                answer: ButtonAnswer::Deferred { ephemeral: false },
                handler: &RerunFailed,
            },
        ]
    }

    /// Request-path check: a malformed id is answered at once, without calling GitHub.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        let input = call.string("run_id").unwrap_or_default();
        RunRef::parse_for(app, input)
            .map(drop)
            .map_err(|reason| Precheck::Invalid(format!("Invalid run id\n{reason}")))
    }

    async fn suggest(&self, app: &App, option: &str, typed: &str) -> Vec<(String, String)> {
        if option == "run_id" {
            suggest_runs(app, typed).await
        } else {
            Vec::new()
        }
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let run = RunRef::parse_for(app, call.string("run_id").unwrap_or_default())
            .map_err(|reason| CommandError::Invalid(format!("Invalid run id\n{reason}")))?;
        verify_by_id(app, run.id, tracer).await
    }
}

/// A run named by its id or its URL (`…/<owner>/<repo>/actions/runs/<id>[/attempts/n]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub id: u64,
    /// `owner/repo` when the input was a URL.
    pub repo: Option<String>,
}

impl RunRef {
    pub fn parse(input: &str) -> Result<RunRef, String> {
        let input = input.trim();
        let id = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .filter(|id| *id > 0)
        };
        if let Some(id) = id(input) {
            return Ok(RunRef { id, repo: None });
        }
        let not_a_run =
            || format!("`{input}` is neither a run number nor a GitHub Actions run URL");
        let url = url::Url::parse(input).map_err(|_| not_a_run())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(not_a_run());
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        let at = segments
            .windows(2)
            .position(|w| w == ["actions", "runs"])
            .ok_or_else(not_a_run)?;
        let run_id = segments
            .get(at + 2)
            .and_then(|s| id(s))
            .ok_or_else(not_a_run)?;
        let repo = (at >= 2).then(|| format!("{}/{}", segments[at - 2], segments[at - 1]));
        Ok(RunRef { id: run_id, repo })
    }

    /// Parses and checks that a run URL names the configured repository.
    pub fn parse_for(app: &App, input: &str) -> Result<RunRef, String> {
        let run = RunRef::parse(input)?;
        if let (Some(repo), Some(configured)) = (&run.repo, &app.config.github_repo)
            && !configured.matches(repo)
        {
            return Err(format!("that run belongs to {repo}, not {configured}"));
        }
        Ok(run)
    }
}

/// Fetches run `id` and verifies it; a run GitHub does not know is said plainly.
pub async fn verify_by_id(app: &App, id: u64, tracer: &mut Tracer) -> Result<Reply, CommandError> {
    let github = app.github()?;
    let step = tracer.begin("github.get_run");
    let run = github.get_run(id).await;
    tracer.end(step, &run);
    match run? {
        None => Ok(Reply::text(format!("❌ Run {id} not found")).failed()),
        Some(run) => verify(app, &run, None, tracer).await,
    }
}

/// The report of `run`, with an optional note above it.
pub async fn verify(
    app: &App,
    run: &WorkflowRun,
    note: Option<String>,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let mut verification = crate::verify::verify_run(app, run, None, tracer).await?;
    verification.note = note;
    Ok(verification.to_reply(tracer.short_id()))
}

/// The run id a report's button carries in its `custom_id`.
fn pressed_run(id: &str) -> Result<u64, CommandError> {
    RunRef::parse(id)
        .map(|run| run.id)
        .map_err(|_| CommandError::Invalid("Invalid run id".into()))
}

/// `Re-verify`: the report again, from fresh probes.
struct Reverify;

#[async_trait]
impl Press for Reverify {
    async fn press(
        &self,
        app: &App,
        _action: &str,
        id: &str,
        _call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        verify_by_id(app, pressed_run(id)?, tracer).await
    }
}

/// `Re-run failed jobs` of a failed run.
struct RerunFailed;

#[async_trait]
impl Press for RerunFailed {
    async fn press(
        &self,
        app: &App,
        _action: &str,
        id: &str,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        rerun_failed(app, pressed_run(id)?, call, tracer).await
    }
}

async fn rerun_failed(
    app: &App,
    id: u64,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    let github = app.github()?;
    let step = tracer.begin("github.rerun_failed_jobs");
    let rerun = app
        .mutate(
            github.rerun_failed_jobs_mutation(id),
            github.rerun_failed_jobs(id),
        )
        .await;
    tracer.end(step, &rerun);
    let suppressed = match rerun? {
        crate::dryrun::Mutated::Performed(()) => None,
        crate::dryrun::Mutated::Suppressed(mutation) => Some(mutation),
    };
    // Audited once GitHub accepted it (or DRY_RUN suppressed it): a refused re-run
    // changed nothing.
    let now_ms = app.clock.now_ms();
    let audit = crate::store::AuditRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        at_ms: now_ms,
        user_id: call.caller.user_id.clone(),
        action: format!("rerun-failed-jobs run {id}"),
        old_fingerprint: None,
        new_fingerprint: None,
        trace_id: Some(tracer.id().to_owned()),
        dry_run: suppressed.is_some(),
        expires_at: now_ms.div_euclid(1000) + crate::store::retention::AUDIT,
    };
    let step = tracer.begin("store.audit");
    let written = app.store.append_audit(&audit).await;
    tracer.end(step, &written);
    written?;
    if let Some(mutation) = suppressed {
        return Ok(Reply::text(mutation.dry_run_line()));
    }
    Ok(Reply::text(format!(
        "🔁 Re-running the failed jobs of run {id} (requested by user {}); verify it again when it completes.",
        call.caller.user_id
    ))
    .with_button(crate::discord::response::Button::action(
        "Re-verify",
        crate::discord::response::ButtonStyle::Primary,
        REVERIFY_ACTION,
        &id.to_string(),
    )))
}

/// Recent runs Valine has seen (webhooks, polls) whose id starts with what the user
/// typed, newest first: one store read, no GitHub call on the request path.
pub async fn suggest_runs(app: &App, typed: &str) -> Vec<(String, String)> {
    let typed = typed.trim();
    let runs = match app.store.recent_runs(100, app.clock.now_secs()).await {
        Ok(runs) => runs,
        // Suggestions are a convenience: none is a fine answer when the store is down.
        Err(e) => {
            tracing::warn!(error.type = "store_unavailable", error.message = %e, "no run suggestions");
            return Vec::new();
        }
    };
    runs.into_iter()
        .filter(|run| run.id.to_string().starts_with(typed))
        .take(25)
        .map(|run| {
            let state = run.conclusion.as_deref().unwrap_or(&run.status);
            let mut name = format!("{} · {state}", run.id);
            if let Some(branch) = &run.branch {
                name.push_str(&format!(" · {branch}"));
            }
            if let Some(title) = &run.display_title {
                name.push_str(&format!(" · {title}"));
            }
            // Discord allows 100 characters for a choice's name.
            (
                crate::discord::response::truncate(&name, 100),
                run.id.to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_and_run_urls_parse() {
        assert_eq!(RunRef::parse("30433642").unwrap().id, 30433642);
        assert_eq!(RunRef::parse(" 7 ").unwrap().id, 7);
        let url = RunRef::parse("https://github.com/Octo-Org/octo-repo/actions/runs/123").unwrap();
        assert_eq!(url.id, 123);
        assert_eq!(url.repo.as_deref(), Some("Octo-Org/octo-repo"));
        let attempt =
            RunRef::parse("https://github.com/o/r/actions/runs/456/attempts/2?pr=1#x").unwrap();
        assert_eq!(attempt.id, 456);
        let ghes = RunRef::parse("https://ghe.example.com/o/r/actions/runs/9/job/1").unwrap();
        assert_eq!(ghes.id, 9);
    }

    #[test]
    fn malformed_run_ids_are_refused() {
        for bad in [
            "",
            "abc",
            "12a",
            "-5",
            "0",
            "1.5",
            "123456789012345678901",
            "https://github.com/o/r/actions/runs/",
            "https://github.com/o/r/actions/runs/x",
            "https://github.com/o/r/pull/5",
            "ftp://github.com/o/r/actions/runs/5",
        ] {
            assert!(RunRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
