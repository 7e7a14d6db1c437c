//! `valine doctor`: the runbook's set-up checks, run against the live configuration.
//!
//! Each check says what it found and, when something is wrong, the fix the runbook
//! gives for it. Doctor only reads: GitHub and Discord get `GET` requests, the store is
//! opened without writing (`store::inspect`: no migration, no heartbeat), and probes of
//! the frontend and API go through the SSRF-safe prober like every verification. Once
//! the store is open (the targets may be stored settings), Discord, GitHub and the
//! targets are checked side by side; the order of the lines is fixed.

use super::Check;
use super::workflow::{self, DEPLOY_INPUTS, DIAGNOSE_INPUTS};
use crate::app::App;
use crate::config::{Config, LoadError};
use crate::discord::api::DiscordError;
use crate::github::api::{GitHubClient, GitHubError};
use crate::github::model::Workflow;
use crate::store::{self, RecordKind, StoreError};
use crate::verify::checks::{self, Side, TargetState};

/// The webhook route GitHub must deliver to.
const WEBHOOK_PATH: &str = "/github/webhook";
/// The events Valine acts on.
const WEBHOOK_EVENTS: [&str; 2] = ["workflow_run", "workflow_job"];
/// Classic token scopes a deploy needs.
const NEEDED_SCOPES: [&str; 2] = ["repo", "workflow"];
/// Under this share of the hourly quota left, GitHub calls may soon be refused.
const RATE_WARN_PERCENT: u64 = 10;

/// Runs every check. A configuration that cannot be loaded is the one check there is:
/// nothing else can be read without it.
pub async fn run(loaded: Result<Config, LoadError>) -> Vec<Check> {
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            return vec![Check::fail(
                "config",
                e.to_string(),
                format!("correct {} and run `valine doctor` again", e.var()),
            )];
        }
    };
    let mut checks = config_checks(&config);
    let (inspection, store_checks) = inspect_store(&config).await;
    let settings_readable = inspection.is_some();
    let store = match inspection {
        Some(store) => store,
        // The targets fall back to the environment's values; nothing is written to this
        // stand-in, which lasts as long as the check.
        None => match store::sqlite::SqliteStore::open_in_memory().await {
            Ok(memory) => std::sync::Arc::new(memory),
            Err(e) => {
                checks.extend(store_checks);
                checks.push(Check::fail(
                    "doctor",
                    format!("cannot continue: {e}"),
                    "report this as a bug",
                ));
                return checks;
            }
        },
    };
    let app = match App::with_store(config, store) {
        Ok(app) => app,
        Err(e) => {
            checks.extend(store_checks);
            checks.push(Check::fail(
                "config",
                e.to_string(),
                "correct the variable it names",
            ));
            return checks;
        }
    };
    let (discord, github, targets) = tokio::join!(
        discord_checks(&app),
        github_checks(&app),
        target_checks(&app, settings_readable),
    );
    checks.extend(discord);
    checks.extend(github);
    checks.extend(store_checks);
    checks.extend(targets);
    checks
}

fn config_checks(config: &Config) -> Vec<Check> {
    let mut checks = vec![Check::ok(
        "config",
        format!(
            "every variable parses (stage {}, {})",
            config.stage,
            if config.dry_run {
                "DRY_RUN on"
            } else {
                "DRY_RUN off"
            }
        ),
    )];
    let missing = config.missing();
    checks.push(if missing.is_empty() {
        Check::ok("config.missing", "every expected variable is set")
    } else {
        Check::warn(
            "config.missing",
            format!("not set: {}", missing.join(", ")),
            "set them (the README's configuration table says what each enables)",
        )
    });
    let ssm = config.ssm_parameters();
    checks.push(Check::ok(
        "config.ssm",
        if ssm.is_empty() {
            "no ssm: values".to_owned()
        } else {
            let read: Vec<String> = ssm
                .iter()
                .map(|(var, parameter)| format!("{var} ({parameter})"))
                .collect();
            format!("read from SSM: {}", read.join(", "))
        },
    ));
    checks
}

// ---------------------------------------------------------------------------------------
// Discord
// ---------------------------------------------------------------------------------------

async fn discord_checks(app: &App) -> Vec<Check> {
    let config = &app.config;
    let mut checks = vec![match &config.discord_public_key {
        None => Check::skipped("discord.public_key", "DISCORD_PUBLIC_KEY"),
        // `App` parsed it as an Ed25519 key already; a bad one never gets here.
        Some(_) => Check::ok(
            "discord.public_key",
            "64 hex characters, a valid Ed25519 key",
        ),
    }];
    if config.discord_bot_token.is_none() {
        for name in [
            "discord.bot_token",
            "discord.application",
            "discord.commands",
            "discord.status_channel",
        ] {
            checks.push(Check::skipped(name, "DISCORD_BOT_TOKEN"));
        }
        return checks;
    }
    let user = match app.discord.current_user().await {
        Ok(user) if user.bot => {
            checks.push(Check::ok(
                "discord.bot_token",
                format!("valid: bot {} (id {})", user.username, user.id),
            ));
            Some(user)
        }
        Ok(user) => {
            checks.push(Check::fail(
                "discord.bot_token",
                format!("the token belongs to {}, which is not a bot", user.username),
                "use the token of the application's bot (Developer Portal → Bot → Reset Token)",
            ));
            None
        }
        Err(e) => {
            checks.push(discord_failure(
                "discord.bot_token",
                &e,
                "reset the bot token in the Developer Portal (Bot → Reset Token) and set \
                 DISCORD_BOT_TOKEN",
            ));
            None
        }
    };
    if user.is_none() {
        checks.extend(blocked(
            &[
                "discord.application",
                "discord.commands",
                "discord.status_channel",
            ],
            "the bot token was refused",
            "discord.bot_token",
        ));
        return checks;
    }
    checks.push(application_check(app).await);
    checks.push(commands_check(app).await);
    checks.push(channel_check(app, user.as_ref()).await);
    checks
}

/// Checks that cannot run because the check `cause` failed before them.
fn blocked<'a>(
    names: &'a [&'static str],
    reason: &'a str,
    cause: &'a str,
) -> impl Iterator<Item = Check> + 'a {
    names.iter().map(move |name| {
        Check::warn(
            name,
            format!("skipped: {reason}"),
            format!("fix {cause} first"),
        )
    })
}

/// A failed Discord call as a check: what Discord said, and `fix`.
fn discord_failure(name: &'static str, error: &DiscordError, fix: &str) -> Check {
    let fix = if error.is_transient() {
        "Discord is unavailable or rate limiting: run `valine doctor` again shortly"
    } else {
        fix
    };
    Check::fail(name, error.to_string(), fix)
}

async fn application_check(app: &App) -> Check {
    let name = "discord.application";
    let Some(configured) = &app.config.discord_application_id else {
        return Check::skipped(name, "DISCORD_APPLICATION_ID");
    };
    match app.discord.current_application().await {
        Ok(found) if &found.id == configured => Check::ok(
            name,
            format!("the bot token belongs to {} ({configured})", found.name),
        ),
        Ok(found) => Check::fail(
            name,
            format!(
                "the bot token belongs to application {} ({}), not DISCORD_APPLICATION_ID \
                 {configured}",
                found.id, found.name
            ),
            "set DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN from the same application",
        ),
        Err(e) => discord_failure(name, &e, "check DISCORD_BOT_TOKEN"),
    }
}

async fn commands_check(app: &App) -> Check {
    let name = "discord.commands";
    let Some(application) = &app.config.discord_application_id else {
        return Check::skipped(name, "DISCORD_APPLICATION_ID");
    };
    let guild = app.config.discord_guild_id.as_deref();
    let scope = guild.map_or("globally".to_owned(), |g| format!("in guild {g}"));
    match app.discord.get_commands(application, guild).await {
        Ok(registered) => {
            let desired = crate::commands::registration_set();
            let report = crate::discord::register::diff(&desired, &registered);
            if report.added.is_empty() && report.changed.is_empty() && report.removed.is_empty() {
                Check::ok(
                    name,
                    format!(
                        "{} commands registered {scope}, as Valine defines them",
                        report.unchanged.len()
                    ),
                )
            } else {
                let mut differences = Vec::new();
                for (label, names) in [
                    ("missing", &report.added),
                    ("different", &report.changed),
                    ("not Valine's", &report.removed),
                ] {
                    if !names.is_empty() {
                        differences.push(format!("{label}: {}", names.join(", ")));
                    }
                }
                Check::fail(
                    name,
                    format!(
                        "registered commands {scope} differ ({})",
                        differences.join("; ")
                    ),
                    "run `valine register-commands`",
                )
            }
        }
        Err(e) => discord_failure(name, &e, "check DISCORD_APPLICATION_ID and the bot token"),
    }
}

async fn channel_check(app: &App, bot: Option<&crate::discord::api::CurrentUser>) -> Check {
    let name = "discord.status_channel";
    let Some(channel) = &app.config.discord_status_channel_id else {
        return Check::skipped(name, "DISCORD_STATUS_CHANNEL_ID");
    };
    let invite = "invite the bot to the server (OAuth2 URL with the bot scope) and allow it \
                  View Channel and Send Messages in that channel";
    if let (Some(guild), Some(bot)) = (&app.config.discord_guild_id, bot)
        && let Err(e) = app.discord.get_guild_member(guild, &bot.id).await
    {
        return Check::fail(
            name,
            format!("the bot is not a member of guild {guild} ({e})"),
            invite,
        );
    }
    match app.discord.get_channel(channel).await {
        Ok(found) => Check::ok(
            name,
            format!(
                "the bot can read channel {}",
                found
                    .name
                    .map(|n| format!("#{n} ({channel})"))
                    .unwrap_or_else(|| channel.clone())
            ),
        ),
        Err(e @ DiscordError::NotFound { .. }) => Check::fail(
            name,
            e.to_string(),
            "DISCORD_STATUS_CHANNEL_ID names no channel: copy the channel's id (Developer \
             Mode → Copy Channel ID)",
        ),
        Err(e) => discord_failure(name, &e, invite),
    }
}

// ---------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------

async fn github_checks(app: &App) -> Vec<Check> {
    const NAMES: [&str; 7] = [
        "github.token",
        "github.rate_limit",
        "github.repository",
        "github.scopes",
        "github.deploy_workflow",
        "github.diagnose_workflow",
        "github.webhook",
    ];
    let github = match app.github() {
        Ok(github) => github,
        Err(e) => {
            let missing = e.missing.join(" and ");
            return NAMES
                .iter()
                .map(|name| Check::skipped(name, &missing))
                .collect();
        }
    };
    let mut checks = Vec::new();
    // With a GitHub App, "the token" is the installation token the App's key obtains.
    let app_token = match github.app_status().await {
        None => None,
        Some(Ok(status)) => Some(Check::ok("github.token", app_found(&status))),
        Some(Err(e)) => {
            return token_failed(
                checks,
                &e,
                "no installation token from the GitHub App",
                &NAMES[1..],
            );
        }
    };
    match github.rate_limit().await {
        Ok(rate) => {
            checks.push(
                app_token
                    .unwrap_or_else(|| Check::ok("github.token", "valid (GitHub accepted it)")),
            );
            let reset = rate
                .reset
                .map(|t| format!(", resets {} UTC", t.format("%H:%M")))
                .unwrap_or_default();
            let found = format!(
                "{} of {} requests left this hour{reset}",
                rate.remaining, rate.limit
            );
            checks.push(
                if rate.limit > 0 && rate.remaining * 100 < rate.limit * RATE_WARN_PERCENT {
                    Check::warn(
                        "github.rate_limit",
                        found,
                        "commands that call GitHub will wait or fail until the reset; look \
                         for a retry storm in the logs (`github_rate_remaining`)",
                    )
                } else {
                    Check::ok("github.rate_limit", found)
                },
            );
        }
        Err(e) => {
            return token_failed(checks, &e, "GitHub refused the token", &NAMES[1..]);
        }
    }
    let repo = github.repo().to_string();
    match github.token_info().await {
        Ok(info) => {
            checks.push(Check::ok(
                "github.repository",
                format!("{repo} is reachable"),
            ));
            checks.push(scopes_check(&info));
        }
        Err(e) => {
            let check = match e {
                GitHubError::NotFound { .. } => Check::fail(
                    "github.repository",
                    format!("{repo} not found, or the token cannot see it"),
                    "check GITHUB_REPO (owner/name), and give the token access to it",
                ),
                e => github_failure("github.repository", &e),
            };
            checks.push(check);
            checks.extend(blocked(
                &NAMES[3..],
                "the repository cannot be read",
                "github.repository",
            ));
            return checks;
        }
    }
    checks.push(
        workflow_check(
            github,
            "github.deploy_workflow",
            "DEPLOY_WORKFLOW",
            Some(&app.config.deploy_workflow),
            DEPLOY_INPUTS,
        )
        .await,
    );
    checks.push(
        workflow_check(
            github,
            "github.diagnose_workflow",
            "DIAGNOSE_WORKFLOW",
            app.config.diagnose_workflow.as_deref(),
            DIAGNOSE_INPUTS,
        )
        .await,
    );
    checks.push(webhook_check(github).await);
    checks
}

/// `github.token` failed with `error`: that check, then each of `later` blocked by it.
fn token_failed(
    mut checks: Vec<Check>,
    error: &GitHubError,
    why: &str,
    later: &[&'static str],
) -> Vec<Check> {
    checks.push(github_failure("github.token", error));
    checks.extend(blocked(later, why, "github.token"));
    checks
}

/// What the GitHub App check found: the App, its installation, the token's expiry.
fn app_found(status: &crate::github::api::AppStatus) -> String {
    let how = if status.installation_found {
        "found from GITHUB_REPO"
    } else {
        "GITHUB_APP_INSTALLATION_ID"
    };
    format!(
        "GitHub App {}, installation {} ({how}): installation token obtained, valid until \
         {} UTC",
        status.app_id,
        status.installation_id,
        status.token_expires_at.format("%H:%M")
    )
}

/// A failed GitHub call as a check: the runbook's cause (the error's own words) and fix.
fn github_failure(name: &'static str, error: &GitHubError) -> Check {
    let fix = match error {
        GitHubError::Unauthorized => {
            "create a new token (classic: repo + workflow; fine-grained: Actions read and \
             write) and set GITHUB_TOKEN"
        }
        GitHubError::Permission { .. } => "grant the token the permission named",
        GitHubError::RateLimited { .. } => "wait for the reset, then run `valine doctor` again",
        GitHubError::AppCredentialsRefused => {
            "check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (the App's current private key, \
             PEM, from the App's settings page)"
        }
        GitHubError::AppNotInstalled { .. } => {
            "install the App on the repository (App settings → Install App), or set \
             GITHUB_APP_INSTALLATION_ID"
        }
        GitHubError::Unavailable { .. }
        | GitHubError::Unreachable { .. }
        | GitHubError::NotJson { .. } => {
            "check GITHUB_API_BASE and the network; run `valine doctor` again shortly"
        }
        _ => "see GitHub's message",
    };
    Check::fail(name, error.to_string(), fix)
}

fn scopes_check(info: &crate::github::model::TokenInfo) -> Check {
    let name = "github.scopes";
    match &info.scopes {
        Some(scopes) => {
            let missing: Vec<&str> = NEEDED_SCOPES
                .iter()
                .copied()
                .filter(|needed| !scopes.iter().any(|s| s == needed))
                .collect();
            if missing.is_empty() {
                Check::ok(name, format!("classic token with {}", scopes.join(", ")))
            } else {
                Check::fail(
                    name,
                    format!(
                        "classic token with [{}], lacking {}",
                        scopes.join(", "),
                        missing.join(" and ")
                    ),
                    "regenerate the token with the repo and workflow scopes",
                )
            }
        }
        None => match info.can_push {
            Some(true) => Check::ok(
                name,
                "fine-grained or app token with write access to the repository",
            ),
            Some(false) => Check::fail(
                name,
                "fine-grained or app token without write access to the repository",
                "grant it Actions: read and write (and Variables/Secrets: write for \
                 GITHUB_SYNC_SETTINGS)",
            ),
            None => Check::warn(
                name,
                "GitHub did not say what the token may do",
                "make sure it has Actions: read and write on the repository",
            ),
        },
    }
}

/// The workflow exists, is active, and its file declares what Valine sends.
async fn workflow_check(
    github: &GitHubClient,
    name: &'static str,
    var: &str,
    spec: Option<&str>,
    inputs: &[&str],
) -> Check {
    let Some(spec) = spec else {
        return Check::skipped(name, var);
    };
    let workflow: Workflow = match github.resolve_workflow(spec).await {
        Ok(workflow) => workflow,
        Err(e @ GitHubError::WorkflowNotFound { .. }) => {
            return Check::fail(
                name,
                e.to_string(),
                format!(
                    "add the workflow under .github/workflows/ on the default branch, or set \
                     {var} to its file name"
                ),
            );
        }
        Err(e) => return github_failure(name, &e),
    };
    let file = workflow.file_name().to_owned();
    if let Some(state) = workflow.state.as_deref().filter(|s| *s != "active") {
        return Check::fail(
            name,
            format!("{file} is {state}"),
            format!("enable it: Actions → {} → Enable workflow", workflow.name),
        );
    }
    let text = match github.file_text(&workflow.path).await {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Check::fail(
                name,
                format!("{} cannot be read from the default branch", workflow.path),
                "commit the workflow file to the repository's default branch",
            );
        }
        Err(e @ GitHubError::Permission { .. }) => {
            return Check::warn(
                name,
                format!("{file} exists; its file cannot be read ({e})"),
                "grant the token Contents: read so doctor can check its inputs and run-name",
            );
        }
        Err(e) => return github_failure(name, &e),
    };
    match workflow::examine(&text, inputs) {
        Ok(findings) if findings.complete() => Check::ok(
            name,
            format!(
                "{file}: dispatchable with {}; run-name carries inputs.correlation_id",
                inputs.join(", ")
            ),
        ),
        Ok(findings) => Check::fail(
            name,
            format!("{file}: {}", findings.problems().join("; ")),
            format!(
                "declare under on.workflow_dispatch.inputs: {}; and set run-name to include \
                 ${{{{ inputs.correlation_id }}}} (README: set-up contract)",
                inputs.join(", ")
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("{file}: {e}"),
            "fix the workflow file's syntax",
        ),
    }
}

async fn webhook_check(github: &GitHubClient) -> Check {
    let name = "github.webhook";
    let fix = format!(
        "add a webhook (Settings → Webhooks): payload URL https://<your deployment>{WEBHOOK_PATH}, \
         content type application/json, the GITHUB_WEBHOOK_SECRET, events {}",
        WEBHOOK_EVENTS.join(" and ")
    );
    let hooks = match github.list_hooks().await {
        Ok(hooks) => hooks,
        Err(GitHubError::Permission { .. } | GitHubError::NotFound { .. }) => {
            return Check::warn(
                name,
                "the token may not list the repository's webhooks",
                format!(
                    "check Settings → Webhooks by hand (or grant Webhooks: read): {}",
                    fix.trim_start_matches("add a webhook (Settings → Webhooks): ")
                ),
            );
        }
        Err(e) => return github_failure(name, &e),
    };
    let ours: Vec<_> = hooks
        .iter()
        .filter(|h| {
            h.config
                .url
                .as_deref()
                .is_some_and(|u| u.trim_end_matches('/').ends_with(WEBHOOK_PATH))
        })
        .collect();
    let Some(hook) = ours.iter().find(|h| h.active).or(ours.first()) else {
        return Check::fail(name, format!("no webhook points at {WEBHOOK_PATH}"), fix);
    };
    let url = hook.config.url.clone().unwrap_or_default();
    let missing: Vec<&str> = WEBHOOK_EVENTS
        .iter()
        .copied()
        .filter(|e| !hook.events.iter().any(|h| h == e || h == "*"))
        .collect();
    let mut problems = Vec::new();
    if !hook.active {
        problems.push("inactive".to_owned());
    }
    if !missing.is_empty() {
        problems.push(format!("not subscribed to {}", missing.join(" and ")));
    }
    if hook.config.content_type.as_deref() != Some("json") {
        problems.push("content type is not application/json".to_owned());
    }
    if problems.is_empty() {
        Check::ok(
            name,
            format!("{url} receives {}", WEBHOOK_EVENTS.join(" and ")),
        )
    } else {
        Check::fail(
            name,
            format!("{url}: {}", problems.join(", ")),
            format!(
                "edit the webhook: active, content type application/json, events {}",
                WEBHOOK_EVENTS.join(" and ")
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

/// The store opened read-only with its checks, or only the checks when it cannot be.
async fn inspect_store(config: &Config) -> (Option<store::SharedStore>, Vec<Check>) {
    let name = "store";
    let inspection = match store::inspect(&config.store).await {
        Ok(inspection) => inspection,
        Err(e) => return (None, vec![store_failure(name, &e)]),
    };
    let now = chrono::Utc::now().timestamp();
    let mut checks = Vec::new();
    match inspection.store.census(now).await {
        Ok(census) => {
            let counts: Vec<String> = RecordKind::ALL
                .iter()
                .filter(|kind| census.live.get(**kind) > 0)
                .map(|kind| format!("{} {}", census.live.get(*kind), kind.label()))
                .collect();
            let counts = if counts.is_empty() {
                "no records yet".to_owned()
            } else {
                counts.join(", ")
            };
            checks.push(Check::ok(
                name,
                format!("{}: reachable; live: {counts}", inspection.found),
            ));
            let expired = census.expired.total();
            if expired > 0 {
                checks.push(Check::ok(
                    "store.expired",
                    format!(
                        "{expired} expired records not deleted yet (reads ignore them; `valine \
                         cleanup` deletes them)"
                    ),
                ));
            }
        }
        Err(e) => {
            checks.push(store_failure(name, &e));
            return (None, checks);
        }
    }
    for (found, fix) in &inspection.warnings {
        checks.push(Check::warn("store.table", found, fix));
    }
    if let Ok(failed) = inspection
        .store
        .failed_jobs(now)
        .await
        .map(|jobs| jobs.len())
        && failed > 0
    {
        checks.push(Check::warn(
            "store.failed_jobs",
            format!("{failed} jobs gave up in the last 7 days"),
            "look their traces up with `valine traces` and the logs (`filter level = \"ERROR\"`)",
        ));
    }
    #[cfg(feature = "aws")]
    if let Some(url) = &config.queue_url {
        checks.push(queue_check(url, &inspection.store).await);
    }
    (Some(inspection.store), checks)
}

/// The SQS jobs queue and its dead-letter queue: ❌ when jobs gave up there.
#[cfg(feature = "aws")]
async fn queue_check(url: &str, store: &store::SharedStore) -> Check {
    let name = "store.queue";
    let queue = crate::jobs::sqs::SqsQueue::from_env(
        url.to_owned(),
        std::sync::Arc::clone(store),
        crate::clock::Clock::system(),
    )
    .await;
    let depths = match queue.depths().await {
        Ok(depths) => depths,
        Err(e) => {
            return Check::fail(
                name,
                e.to_string(),
                "check VALINE_QUEUE_URL, AWS_REGION and that the credentials may read the queue",
            );
        }
    };
    let found = format!(
        "{url}: {} waiting, {} in flight, {} delayed",
        depths.waiting, depths.in_flight, depths.delayed
    );
    match depths.dead_letters {
        None => Check::warn(
            name,
            format!("{found}; no dead-letter queue"),
            "give the queue a redrive policy (maxReceiveCount 5) to a dead-letter queue, as \
             the deployment template does",
        ),
        Some((dlq, 0)) => Check::ok(name, format!("{found}; dead-letter queue {dlq} empty")),
        Some((dlq, held)) => Check::fail(
            name,
            format!("{found}; dead-letter queue {dlq} holds {held} messages: jobs that gave up"),
            "read them (SQS console → Send and receive messages), fix the cause from the \
             logs of their trace_id, then redrive them to the jobs queue",
        ),
    }
}

fn store_failure(name: &'static str, error: &StoreError) -> Check {
    if error.needs_init() {
        return Check::fail(
            name,
            error.to_string(),
            "run `valine init` (VALINE_STORE names the store)",
        );
    }
    Check::fail(
        name,
        error.to_string(),
        "check VALINE_STORE, the file's permissions or the AWS credentials and region",
    )
}

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

async fn target_checks(app: &App, settings_readable: bool) -> Vec<Check> {
    let (frontend, api) = tokio::join!(
        target_check(app, Side::Frontend, settings_readable),
        target_check(app, Side::Api, settings_readable),
    );
    vec![frontend, api]
}

async fn target_check(app: &App, side: Side, settings_readable: bool) -> Check {
    let name = match side {
        Side::Frontend => "targets.frontend",
        Side::Api => "targets.api",
    };
    let in_use = match crate::settings::in_use(app, side.key()).await {
        Ok(in_use) => in_use,
        Err(e) => return store_failure(name, &e),
    };
    let source = if settings_readable {
        in_use.describe()
    } else {
        format!("{} (stored settings unreadable)", in_use.describe())
    };
    let target = match TargetState::of(&in_use, &app.prober) {
        TargetState::NotConfigured => return Check::skipped(name, side.key()),
        TargetState::Invalid { value, reason } => {
            return Check::fail(
                name,
                format!("{value} cannot be probed: {reason}"),
                format!(
                    "{} with a public https URL (or fix {})",
                    side.set_command(),
                    side.key()
                ),
            );
        }
        TargetState::Ready(target) => target,
    };
    let probes = checks::probe_paths(&app.prober, &target, side.paths(app)).await;
    let results: Vec<String> = probes
        .iter()
        .map(|p| match &p.result {
            Ok(r) => format!("{} {} ({} ms)", p.path, r.status, r.latency_ms),
            Err(e) => format!("{} {e}", p.path),
        })
        .collect();
    let found = format!("{source}: {}", results.join(", "));
    if probes.iter().all(|p| p.passed()) {
        return Check::ok(name, found);
    }
    let fix = match side {
        Side::Frontend => format!(
            "the frontend does not answer 2xx: check its deployment (S3/CloudFront), or {} if \
             the URL is wrong",
            side.set_command()
        ),
        Side::Api => format!(
            "the API does not answer 2xx: check the backend, or {} if the URL is wrong",
            side.set_command()
        ),
    };
    Check::fail(name, found, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::model::TokenInfo;

    #[test]
    fn classic_scopes_need_repo_and_workflow() {
        let info = |scopes: &[&str]| TokenInfo {
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            can_push: Some(true),
            rate_remaining: None,
        };
        assert_eq!(
            scopes_check(&info(&["repo", "workflow", "gist"])).status,
            super::super::Status::Ok
        );
        let lacking = scopes_check(&info(&["repo"]));
        assert_eq!(lacking.status, super::super::Status::Fail);
        assert!(
            lacking.found.contains("lacking workflow"),
            "{}",
            lacking.found
        );
        let fine_grained = TokenInfo {
            scopes: None,
            can_push: Some(false),
            rate_remaining: None,
        };
        assert_eq!(
            scopes_check(&fine_grained).status,
            super::super::Status::Fail
        );
    }

    #[tokio::test]
    async fn an_unloadable_configuration_is_one_failed_check() {
        let err =
            Config::from_vars([("GITHUB_REPO".to_owned(), "nope".to_owned())].into()).unwrap_err();
        let checks = run(Err(LoadError::Invalid(err))).await;
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "config");
        assert!(checks[0].found.contains("GITHUB_REPO"));
        assert!(checks[0].fix.as_deref().unwrap().contains("GITHUB_REPO"));
    }
}
