//! `/verify-latest`: verify the newest deploy run on the deploy branch, or the run a URL
//! names (see `docs/design.md#verification`). A newest run still in progress is said, and
//! the newest completed one verified; `diagnose:true` appends `/diagnose`'s findings.

use super::verify_run::{self, RunRef};
use super::{Answer, Call, Command, CommandError, CommandSpec, OptionSpec, Precheck};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::Reply;
use crate::trace::Tracer;
use async_trait::async_trait;

/// `/verify-latest`.
pub struct VerifyLatest;

#[async_trait]
impl Command for VerifyLatest {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "verify-latest",
            description: "Verify the latest deployment: run conclusion, frontend and API checks",
            options: vec![
                OptionSpec::string(
                    "run_url",
                    "Verify this run instead (GitHub Actions run URL)",
                ),
                OptionSpec::boolean("diagnose", "Append /diagnose findings"),
            ],
            access: Access::Anyone,
            answer: Answer::Deferred { ephemeral: false },
        }
    }

    /// Request-path check of `run_url`, like `/verify-run`'s `run_id`.
    fn precheck(&self, app: &App, call: &Call) -> Result<(), Precheck> {
        match call.string("run_url") {
            None => Ok(()),
            Some(input) => RunRef::parse_for(app, input)
                .map(drop)
                .map_err(|reason| Precheck::Invalid(format!("Invalid run id\n{reason}"))),
        }
    }

    async fn run(
        &self,
        app: &App,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError> {
        let mut reply = match call.string("run_url") {
            Some(input) => {
                let run = RunRef::parse_for(app, input)
                    .map_err(|reason| CommandError::Invalid(format!("Invalid run id\n{reason}")))?;
                verify_run::verify_by_id(app, run.id, tracer).await?
            }
            None => latest(app, tracer).await?,
        };
        if call.boolean("diagnose") == Some(true) {
            let diagnosis =
                super::diagnose::diagnose(app, &super::diagnose::Overrides::default(), tracer)
                    .await?;
            reply.embeds.push(diagnosis.to_embed(tracer.short_id()));
        }
        Ok(reply)
    }
}

/// Runs looked at for the newest completed one: a deploy branch rarely has more than a
/// couple of runs in flight.
const RECENT_RUNS: usize = 20;

async fn latest(app: &App, tracer: &mut Tracer) -> Result<Reply, CommandError> {
    let branch = app.config.deploy_branch.as_str();
    let runs = super::deploy_runs(app, RECENT_RUNS, tracer).await?;

    let Some(newest) = runs.first() else {
        return Ok(Reply::text(format!("No deploy runs on {branch} yet.")));
    };
    if newest.is_completed() {
        return verify_run::verify(app, newest, None, tracer).await;
    }
    let state = newest.status.as_deref().unwrap_or("running");
    let newest_link = match &newest.html_url {
        Some(url) => format!("[run {}]({url})", newest.id),
        None => format!("run {}", newest.id),
    };
    match runs.iter().find(|r| r.is_completed()) {
        Some(done) => {
            let note = format!(
                "⏳ The newest deploy, {newest_link}, is still {state}; verifying the newest completed run, {}.",
                done.id
            );
            verify_run::verify(app, done, Some(note), tracer).await
        }
        None => Ok(Reply::text(format!(
            "⏳ The newest deploy on {branch}, {newest_link}, is still {state}, and no earlier run has completed: nothing to verify yet."
        ))),
    }
}
