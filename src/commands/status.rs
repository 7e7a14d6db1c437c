//! `/status`: the latest runs of the deploy workflow on the deploy branch (and of the
//! diagnose workflow when one is configured), with the targets in use.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Answer, Call, Command, CommandError, CommandSpec, OptionSpec};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::{Embed, GREEN, GREY, RED, Reply, YELLOW};
use crate::github::model::WorkflowRun;
use crate::settings;
use crate::trace::Tracer;

/// `/status`.
pub struct Status;

#[async_trait]
impl Command for Status {
    fn spec(&self) -> CommandSpec {
        CommandSpec {
            name: "status",
            description: "Show the latest deploy runs and the targets in use",
            options: vec![OptionSpec::integer(
                "count",
                "How many runs to show (1-10, default 3)",
                1,
                10,
            )],
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
        let count = call.integer("count").unwrap_or(3).clamp(1, 10) as usize;
        let github = app.github()?;
        let branch = app.config.deploy_branch.as_str();
        let now = app.clock.now();

        let runs = super::deploy_runs(app, count, tracer).await?;
        for run in &runs {
            if let Some(url) = &run.html_url {
                tracer.link(url.clone());
            }
        }

        let mut embed = Embed::new(format!("Deploy runs on {branch}"));
        embed = if runs.is_empty() {
            embed
                .color(GREY)
                .description(format!("No deploy runs on {branch} yet."))
        } else {
            embed
                .color(colour_of(&runs[0]))
                .description(lines(&runs, now))
        };

        if let Some(diagnose) = app.config.diagnose_workflow.as_deref() {
            let step = tracer.begin("github.list_diagnose_runs");
            let diagnose_runs = match github.resolve_workflow(diagnose).await {
                Ok(w) => github.list_runs(w.id, Some(branch), None, count).await,
                Err(e) => Err(e),
            };
            tracer.end(step, &diagnose_runs);
            let value = match diagnose_runs {
                Ok(runs) if runs.is_empty() => format!("No diagnose runs on {branch} yet."),
                Ok(runs) => lines(&runs, now),
                // The deploy section is still worth showing; say why this one is missing.
                Err(e) => format!("⚠️ {e}"),
            };
            embed = embed.field(format!("Diagnose runs ({diagnose})"), value);
        }

        let step = tracer.begin("store.settings");
        let targets = async {
            Ok::<_, crate::store::StoreError>((
                settings::in_use(app, settings::FRONTEND_KEY).await?,
                settings::in_use(app, settings::API_BASE_KEY).await?,
            ))
        }
        .await;
        tracer.end(step, &targets);
        let (frontend, api) = targets?;
        embed = embed.footer(format!(
            "{} • valine {} • frontend {} • API {}",
            app.config.stage,
            crate::VERSION,
            frontend.describe(),
            api.describe()
        ));
        Ok(Reply::embed(embed))
    }
}

fn colour_of(run: &WorkflowRun) -> u32 {
    match icon(run) {
        "🟢" => GREEN,
        "🔴" => RED,
        "🟡" => YELLOW,
        _ => GREY,
    }
}

fn icon(run: &WorkflowRun) -> &'static str {
    if run.status.as_deref() != Some("completed") {
        return "🟡";
    }
    match run.conclusion.as_deref() {
        Some("success") => "🟢",
        Some("failure" | "timed_out" | "cancelled" | "startup_failure") => "🔴",
        _ => "⚪",
    }
}

fn secs_between(from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Option<i64> {
    from.map(|f| (to - f).num_seconds())
}

/// One line per run: icon, conclusion or status, age, duration, link.
fn line(run: &WorkflowRun, now: DateTime<Utc>) -> String {
    let completed = run.status.as_deref() == Some("completed");
    let state = if completed {
        run.conclusion.as_deref().unwrap_or("completed")
    } else {
        run.status.as_deref().unwrap_or("unknown")
    };
    let started = run.run_started_at.or(run.created_at);
    let age = secs_between(run.created_at, now)
        .map(crate::format::age)
        .unwrap_or_else(|| "age unknown".into());
    let duration = if completed {
        run.updated_at
            .and_then(|end| secs_between(started, end))
            .map(crate::format::duration)
    } else {
        secs_between(started, now).map(|s| format!("running {}", crate::format::duration(s)))
    };
    let link = match &run.html_url {
        Some(url) => format!("[run {}]({url})", run.id),
        None => format!("run {}", run.id),
    };
    let mut parts = vec![format!("{} {state}", icon(run)), age];
    parts.extend(duration);
    parts.push(link);
    parts.join(" · ")
}

fn lines(runs: &[WorkflowRun], now: DateTime<Utc>) -> String {
    runs.iter()
        .map(|r| line(r, now))
        .collect::<Vec<_>>()
        .join("\n")
}
