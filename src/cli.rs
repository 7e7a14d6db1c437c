//! The command-line edge: argument definitions and what each sub-command does. `main.rs`
//! only maps the result to an exit code.

mod invoke;
pub(crate) mod out;
mod show_config;

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::commands::{self, pipeline};
use crate::config::Config;
use crate::discord::interaction::Caller;
use crate::store::AuditRecord;
use crate::telemetry::{self, LogEdge};

/// Exit codes: 0 on success, 1 on a failed operation, 2 on bad usage or configuration.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// The version and, when the build knew it, the git commit: `0.1.0 (abc1234)`.
pub const VERSION_LINE: &str = env!("VALINE_VERSION_LINE");

#[derive(Debug, Parser)]
#[command(
    name = "valine",
    version = VERSION_LINE,
    about = "ChatOps for GitHub Actions deployments, driven from Discord"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Discord interactions and GitHub webhooks, with the background worker.
    Serve {
        /// Address to listen on, host:port or localhost:port (overrides VALINE_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run one slash command through the same pipeline as Discord and print the reply.
    Invoke {
        /// The command line, e.g. '/status count:2' (quote values with spaces: key:"a b").
        line: String,
        /// Act as this Discord user id.
        #[arg(long, default_value = "0")]
        user: String,
        /// Act with this role id (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Print the raw Discord message JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try Valine without credentials: a simulated GitHub repository and deployed site on
    /// 127.0.0.1, and a walk through /status, /verify-latest, /diagnose, /deploy-client
    /// and /debug-last. Nothing leaves the machine.
    Demo {
        /// Keep running after the walkthrough (until Ctrl-C), for `valine invoke`.
        #[arg(long)]
        serve: bool,
    },
    /// Make Discord's registered commands equal to Valine's (one bulk overwrite).
    RegisterCommands {
        /// Register in this guild instead of globally.
        #[arg(long, env = "DISCORD_GUILD_ID")]
        guild: Option<String>,
        /// Print the JSON that would be sent and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the audit log, newest first.
    Audit {
        /// Only this user's records.
        #[arg(long)]
        user: Option<String>,
        /// How far back: e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "7d")]
        since: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Prepare the store VALINE_STORE names: SQLite migrations, or the DynamoDB table
    /// with its indexes and TTL. Idempotent: prints what it created or found.
    Init,
    /// Run under AWS Lambda: HTTP API events through the same router as `serve`, SQS
    /// events as jobs (also what the binary does when started with no arguments under
    /// Lambda).
    Lambda,
    /// Check the set-up against the runbook: configuration, Discord, GitHub (token,
    /// workflows and their inputs, webhook), the store and the probe targets. Changes
    /// nothing; exits 1 when any check fails.
    Doctor {
        /// One JSON object per check: name, status, found, fix.
        #[arg(long)]
        json: bool,
    },
    /// Recent command traces, newest first; with an id (or its first 8+ characters),
    /// that trace whole, as /debug-last shows it.
    Traces {
        /// A trace id, or at least its first 8 characters.
        id: Option<String>,
        /// Only this Discord user's traces.
        #[arg(long)]
        user: Option<String>,
        /// Only traces of this command (with or without the leading /).
        #[arg(long)]
        command: Option<String>,
        /// How far back: e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// At most this many traces.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per trace.
        #[arg(long)]
        json: bool,
    },
    /// Delete expired records and print how many of each kind went. Never needed for
    /// correctness: reads ignore expired records.
    Cleanup {
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a deployed Valine from outside, as Discord and GitHub see it: /healthz,
    /// unsigned and forged requests refused, the TLS certificate. Exits 1 on a failure.
    Smoke {
        /// The deployment's base URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com
        url: String,
        /// One JSON object per check: name, status, found, fix.
        #[arg(long)]
        json: bool,
        /// Give up on an answer after this long (each request is tried twice).
        #[arg(long, default_value = "10s")]
        timeout: String,
    },
    /// Ask the local `valine serve` for its health (`GET /healthz` on VALINE_LISTEN; an
    /// unspecified address such as 0.0.0.0 is asked on loopback). Exits 0 when healthy,
    /// 1 otherwise: for container and supervisor health checks.
    Healthcheck {
        /// The address `serve` listens on (default: VALINE_LISTEN, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Give up after this long.
        #[arg(long, default_value = "3s")]
        timeout: String,
    },
    /// Print the effective configuration: every variable, its value (secrets only as
    /// `(set)`) and where it came from (default, file, environment, ssm). Exits 2 when
    /// one is invalid, naming it.
    Config {
        /// One JSON object per variable: variable, value, source, secret.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `valine completions bash >
    /// /etc/bash_completion.d/valine`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// A failure to report on stderr with its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: Option<String>,
}

impl Exit {
    fn usage(message: impl Into<String>) -> Self {
        Exit {
            code: exit::USAGE,
            message: Some(message.into()),
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Exit {
            code: exit::FAILED,
            message: Some(message.into()),
        }
    }
}

/// The configuration, `ssm:` values resolved; any failure is a bad configuration (exit
/// code 2) naming the variable (and for SSM, the parameter).
async fn load_config(edge: LogEdge) -> Result<Config, Exit> {
    let config = Config::load()
        .await
        .map_err(|e| Exit::usage(e.to_string()))?;
    init_logs(&config, edge);
    Ok(config)
}

/// Starts logging as the configuration says, for `edge`.
fn init_logs(config: &Config, edge: LogEdge) {
    telemetry::init(config.log_settings(), config.secret_values(), edge);
}

async fn open_app(config: Config) -> Result<Arc<App>, Exit> {
    App::new(config).await.map(Arc::new).map_err(|e| match e {
        crate::app::AppError::Config(e) => Exit::usage(e.to_string()),
        // A store that was never prepared is a set-up mistake, like a bad variable:
        // `serve` creates no DynamoDB table of its own.
        crate::app::AppError::Store(e) if e.needs_init() => Exit::usage(format!(
            "{e}: run `valine init` to create it (VALINE_STORE names it)"
        )),
        crate::app::AppError::Store(e) => Exit::failed(e.to_string()),
        e @ crate::app::AppError::Queue(_) => {
            let retryable = matches!(&e, crate::app::AppError::Queue(q) if q.is_retryable());
            if retryable {
                Exit::failed(e.to_string())
            } else {
                Exit::usage(e.to_string())
            }
        }
    })
}

/// `valine init`: prepares the store and prints what it created or found.
async fn init() -> Result<u8, Exit> {
    let config = load_config(LogEdge::Cli).await?;
    let lines = crate::store::init(&config.store)
        .await
        .map_err(|e| Exit::failed(format!("cannot prepare the store: {e}")))?;
    for line in lines {
        out::line(line)?;
    }
    Ok(exit::OK)
}

pub async fn run(cli: Cli) -> Result<u8, Exit> {
    match cli.command {
        Command::Serve { listen } => {
            let listen = listen
                .map(|raw| crate::config::parse_listen(&raw))
                .transpose()
                .map_err(|e| Exit::usage(format!("--listen: {e}")))?;
            serve(listen).await
        }
        Command::Invoke {
            line,
            user,
            roles,
            json,
        } => invoke(&line, user, roles, json).await,
        Command::Demo { serve } => demo(serve).await,
        Command::RegisterCommands { guild, dry_run } => register(guild, dry_run).await,
        Command::Audit { user, since, json } => audit(user, &since, json).await,
        Command::Init => init().await,
        Command::Lambda => lambda().await,
        Command::Doctor { json } => doctor(json).await,
        Command::Traces {
            id,
            user,
            command,
            since,
            limit,
            json,
        } => {
            let since = parse_since(&since).map_err(|e| Exit::usage(format!("--since: {e}")))?;
            let request = crate::ops::traces::Request::new(id, user, command, since, limit)
                .map_err(Exit::usage)?;
            traces(request, json).await
        }
        Command::Cleanup { dry_run } => cleanup(dry_run).await,
        Command::Smoke { url, json, timeout } => {
            let url = crate::ops::smoke::parse_url(&url).map_err(Exit::usage)?;
            let timeout = parse_timeout(&timeout)?;
            checks_exit(&crate::ops::smoke::run(&url, timeout).await, json)
        }
        Command::Healthcheck { listen, timeout } => healthcheck(listen, &timeout).await,
        Command::Config { json } => show_config::run(json).await,
        Command::Completions { shell } => completions(shell),
    }
}

/// `--timeout`: 1 s to 5 min, in the `--since` notation.
fn parse_timeout(raw: &str) -> Result<std::time::Duration, Exit> {
    match parse_since(raw) {
        Ok(secs) if (1..=300).contains(&secs) => Ok(std::time::Duration::from_secs(secs as u64)),
        _ => Err(Exit::usage(format!(
            "--timeout expects 1s to 5m, got {raw:?}"
        ))),
    }
}

/// `valine healthcheck`: reads only the listen address (no other configuration, no
/// `ssm:` lookups), so it stays cheap enough to run every few seconds.
async fn healthcheck(listen: Option<String>, timeout: &str) -> Result<u8, Exit> {
    let timeout = parse_timeout(timeout)?;
    let (raw, name) = match listen {
        Some(raw) => (raw, "--listen"),
        None => (
            std::env::var("VALINE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned()),
            "VALINE_LISTEN",
        ),
    };
    let addr =
        crate::config::parse_listen(&raw).map_err(|e| Exit::usage(format!("{name}: {e}")))?;
    let check = crate::ops::smoke::local_health(addr, timeout).await;
    checks_exit(&[check], false)
}

/// `valine completions SHELL`: the script clap derives from the command definition.
fn completions(shell: clap_complete::Shell) -> Result<u8, Exit> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "valine", &mut script);
    out::print(&String::from_utf8_lossy(&script))?;
    Ok(exit::OK)
}

/// `valine doctor`: a configuration that does not load is reported as a failed check,
/// not a usage error, so the operator sees it among the rest.
async fn doctor(json: bool) -> Result<u8, Exit> {
    let loaded = Config::load().await;
    if let Ok(config) = &loaded {
        init_logs(config, LogEdge::Cli);
    }
    let checks = crate::ops::doctor::run(loaded).await;
    checks_exit(&checks, json)
}

/// Prints a report of checks; exit code 1 when any failed.
fn checks_exit(checks: &[crate::ops::Check], json: bool) -> Result<u8, Exit> {
    let (text, passed) = crate::ops::report(checks, json);
    out::print(&text)?;
    Ok(if passed { exit::OK } else { exit::FAILED })
}

async fn traces(request: crate::ops::traces::Request, json: bool) -> Result<u8, Exit> {
    let config = load_config(LogEdge::Cli).await?;
    let app = open_app(config).await?;
    let now_ms = app.clock.now_ms();
    let output = crate::ops::traces::run(app.store.as_ref(), &request, json, now_ms)
        .await
        .map_err(|e| match e {
            crate::ops::traces::TracesError::Store(e) => Exit::failed(e.to_string()),
            other => Exit::failed(other.to_string()),
        })?;
    out::print(&output)?;
    Ok(exit::OK)
}

async fn cleanup(dry_run: bool) -> Result<u8, Exit> {
    let config = load_config(LogEdge::Cli).await?;
    let app = open_app(config).await?;
    let now = app.clock.now_ms().div_euclid(1000);
    let output = crate::ops::cleanup::run(app.store.as_ref(), dry_run, now)
        .await
        .map_err(|e| Exit::failed(format!("cleanup failed: {e}")))?;
    out::print(&output)?;
    Ok(exit::OK)
}

#[cfg(feature = "aws")]
async fn lambda() -> Result<u8, Exit> {
    match crate::lambda::run().await {
        Ok(()) => Ok(exit::OK),
        Err(e @ crate::lambda::LambdaError::NotInLambda) => Err(Exit::usage(e.to_string())),
        Err(e @ crate::lambda::LambdaError::Init(_)) => Err(Exit::usage(e.to_string())),
        Err(e) => Err(Exit::failed(e.to_string())),
    }
}

#[cfg(not(feature = "aws"))]
async fn lambda() -> Result<u8, Exit> {
    Err(Exit::usage(
        "this build has no AWS support (feature `aws`); run `valine serve`",
    ))
}

/// Whether the process was started as a Lambda `bootstrap`: no arguments, under the
/// Lambda runtime.
pub fn started_by_lambda() -> bool {
    std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

async fn serve(listen: Option<std::net::SocketAddr>) -> Result<u8, Exit> {
    let mut config = load_config(LogEdge::Serve).await?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    for var in config.missing() {
        tracing::warn!(
            variable = var,
            "{var} is not set; the features that need it are off"
        );
    }
    let addr = config.listen;
    let metrics_addr = config.metrics_listen;
    let app = open_app(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Exit::failed(format!("cannot listen on {addr}: {e}")))?;
    // Held until `serve` returns: dropping it stops the metrics listener with the rest.
    let _metrics = match metrics_addr {
        Some(metrics_addr) => Some(serve_metrics(metrics_addr).await?),
        None => None,
    };
    tracing::info!(listen = %addr, version = VERSION_LINE, "valine serving");
    crate::server::run(listener, app, shutdown_signal())
        .await
        .map_err(|e| Exit::failed(format!("server error: {e}")))?;
    tracing::info!("valine stopped");
    Ok(exit::OK)
}

/// Installs the metrics recorder and serves `GET /metrics` on `addr` (its own listener,
/// never the public one) until the returned task is dropped.
async fn serve_metrics(
    addr: std::net::SocketAddr,
) -> Result<crate::jobs::AbortOnDrop<std::io::Result<()>>, Exit> {
    let handle = crate::metrics::install()
        .map_err(|e| Exit::failed(format!("cannot start the metrics recorder: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Exit::failed(format!(
            "cannot listen on {addr} (VALINE_METRICS_LISTEN): {e}"
        ))
    })?;
    tracing::info!(metrics_listen = %addr, "metrics served at /metrics");
    Ok(crate::jobs::AbortOnDrop(tokio::spawn(
        crate::metrics::serve(listener, handle, std::future::pending()),
    )))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn invoke(line: &str, user: String, roles: Vec<String>, json: bool) -> Result<u8, Exit> {
    let (command, options) = commands::parse_invoke_line(line).map_err(Exit::usage)?;
    let mut config = load_config(LogEdge::Cli).await?;
    // The operator's tool is neither limited nor counted: a limit of 0 skips the count,
    // so a script of invokes cannot lock a real user (user 0, or `--user`) out either.
    config.rate_limit_per_minute = 0;
    let app = open_app(config).await?;
    let caller = Caller {
        user_id: user,
        roles,
        guild_id: None,
        channel_id: None,
    };
    let (reply, outcome) =
        pipeline::answer_inline(&app, &caller, command.spec().name, options, None).await;
    out::print(&invoke::render(command.spec(), line, &reply, json))?;
    Ok(invoke::exit_code(outcome))
}

/// `valine demo [--serve]`: exit 0 when every step of the walkthrough went as it should.
async fn demo(serve: bool) -> Result<u8, Exit> {
    let failed = |e: crate::demo::DemoError| Exit::failed(e.to_string());
    let mut demo = crate::demo::Demo::start().await.map_err(failed)?;
    // Ctrl-C during the walk still stops the demo cleanly, removing its files.
    let mut stdout = std::io::stdout();
    let walked = tokio::select! {
        walked = demo.walk_through(&mut stdout) => Some(walked),
        () = shutdown_signal() => None,
    };
    // Whatever happens, the demo's servers stop and its files go.
    let result = match walked {
        None => Ok(exit::FAILED),
        Some(Ok(ok)) => {
            let code = if ok { exit::OK } else { exit::FAILED };
            if serve {
                match out::print(&demo.serve_hint()) {
                    Ok(()) => {
                        shutdown_signal().await;
                        Ok(code)
                    }
                    Err(exit) => Err(exit),
                }
            } else {
                Ok(code)
            }
        }
        // A reader that went away (`valine demo | head`) ends the demo quietly, as it
        // does every sub-command.
        Some(Err(crate::demo::DemoError::Output(e)))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(exit::OK)
        }
        Some(Err(e)) => Err(failed(e)),
    };
    demo.stop().await;
    result
}

async fn register(guild: Option<String>, dry_run: bool) -> Result<u8, Exit> {
    let config = load_config(LogEdge::Cli).await?;
    // `--guild` (or the environment) wins; a guild set only in the config file counts too.
    let guild = guild.or_else(|| config.discord_guild_id.clone());
    let desired = commands::registration_set();
    let (Some(application_id), true) = (
        config.discord_application_id.clone(),
        config.discord_bot_token.is_some(),
    ) else {
        if dry_run {
            // Without credentials there is nothing to compare with; the JSON alone is
            // still what an operator wants to see.
            out::line(serde_json::to_string_pretty(&desired).unwrap_or_default())?;
            return Ok(exit::OK);
        }
        return Err(Exit::usage(
            "DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN are required to register commands",
        ));
    };
    let client = crate::discord::api::DiscordClient::new(
        config.discord_api_base.clone(),
        config.discord_bot_token.clone(),
    );
    let (report, json) = crate::discord::register::register(
        &client,
        &application_id,
        guild.as_deref(),
        &desired,
        dry_run,
    )
    .await
    .map_err(|e| Exit::failed(format!("registration failed: {e}")))?;
    if let Some(json) = json {
        out::line(json)?;
    }
    out::print(&report.to_string())?;
    Ok(exit::OK)
}

/// `30m`, `24h`, `7d` (also `s`, `w`) → seconds.
pub fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let usage = || format!("expected e.g. 30m, 24h or 7d, got {text:?}");
    // Split on characters, not bytes: any text may arrive here.
    let unit = text.chars().last().ok_or_else(usage)?;
    let number = &text[..text.len() - unit.len_utf8()];
    let unit_secs: i64 = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(usage()),
    };
    if number.starts_with('-') {
        return Err("--since must be positive".into());
    }
    let n: i64 = number.parse().map_err(|_| usage())?;
    Ok(n.saturating_mul(unit_secs))
}

/// One audit record as `valine audit --json` prints it: the record's fields, with the
/// time both as RFC 3339 (`at`) and epoch milliseconds (`at_ms`).
pub fn audit_json(r: &AuditRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "at": rfc3339(r.at_ms),
        "at_ms": r.at_ms,
        "user_id": r.user_id,
        "action": r.action,
        "old_fingerprint": r.old_fingerprint,
        "new_fingerprint": r.new_fingerprint,
        "trace_id": r.trace_id,
        "dry_run": r.dry_run,
    })
}

/// One audit record as a line of text: when, who, what, old → new, trace, dry run.
pub fn audit_line(r: &AuditRecord) -> String {
    let fingerprint = |f: &Option<String>| {
        f.as_deref()
            .map(|f| format!("…{f}"))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{}  user {}  {}  {} → {}{}{}",
        rfc3339(r.at_ms),
        r.user_id,
        r.action,
        fingerprint(&r.old_fingerprint),
        fingerprint(&r.new_fingerprint),
        r.trace_id
            .as_deref()
            .map(|t| format!("  trace {}", crate::trace::short_id(t)))
            .unwrap_or_default(),
        if r.dry_run { "  (dry run)" } else { "" },
    )
}

fn rfc3339(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

async fn audit(user: Option<String>, since: &str, json: bool) -> Result<u8, Exit> {
    let since_secs = parse_since(since).map_err(Exit::usage)?;
    let config = load_config(LogEdge::Cli).await?;
    let app = open_app(config).await?;
    let now = app.clock.now_ms();
    let since_ms = now.saturating_sub(since_secs.saturating_mul(1000));
    let records = app
        .store
        .list_audit(user.as_deref(), since_ms, now.div_euclid(1000))
        .await
        .map_err(|e| Exit::failed(e.to_string()))?;
    for r in &records {
        if json {
            out::line(audit_json(r))?;
        } else {
            out::line(audit_line(r))?;
        }
    }
    if records.is_empty() && !json {
        out::line("No audit records.")?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_units() {
        assert_eq!(parse_since("30m"), Ok(1800));
        assert_eq!(parse_since("24h"), Ok(86_400));
        assert_eq!(parse_since("7d"), Ok(604_800));
        assert_eq!(parse_since(" 2W "), Ok(1_209_600));
        assert_eq!(parse_since("99999999999999999d"), Ok(i64::MAX));
        for bad in ["7y", "d", "", "-1d", "1.5h", "7é", "é", "1 d"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_records_print_as_text_and_json() {
        let record = AuditRecord {
            id: "a1".into(),
            at_ms: 1_700_000_000_123,
            user_id: "42".into(),
            action: "set FRONTEND_BASE_URL".into(),
            old_fingerprint: None,
            new_fingerprint: Some("abcd".into()),
            trace_id: Some("0123456789abcdef".into()),
            dry_run: true,
            expires_at: 0,
        };
        assert_eq!(
            audit_line(&record),
            "2023-11-14T22:13:20.123Z  user 42  set FRONTEND_BASE_URL  - → …abcd  \
             trace 01234567  (dry run)"
        );
        let json = audit_json(&record);
        assert_eq!(json["at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["dry_run"], true);
        assert_eq!(json["old_fingerprint"], serde_json::Value::Null);
        assert!(json.get("expires_at").is_none());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
