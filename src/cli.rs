//! The command-line edge (SPEC §1): argument definitions and what each sub-command
//! does. `main.rs` only maps the result to an exit code.

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::commands::{self, pipeline};
use crate::config::Config;
use crate::discord::interaction::Caller;
use crate::store::Outcome;
use crate::telemetry::{self, LogTarget};

/// Exit codes of SPEC §1.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "valine",
    version,
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
        /// Address to listen on.
        #[arg(long, env = "VALINE_LISTEN")]
        listen: Option<std::net::SocketAddr>,
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
    /// AWS Lambda entry (not part of this build yet).
    Lambda,
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

fn load_config(log_to: LogTarget) -> Result<Config, Exit> {
    let config = Config::from_env().map_err(|e| Exit::usage(e.to_string()))?;
    telemetry::init(&config.log, &config.stage, config.secret_values(), log_to);
    Ok(config)
}

async fn open_app(config: Config) -> Result<Arc<App>, Exit> {
    App::new(config).await.map(Arc::new).map_err(|e| match e {
        crate::app::AppError::Config(e) => Exit::usage(e.to_string()),
        crate::app::AppError::Store(e) => Exit::failed(e.to_string()),
    })
}

pub async fn run(cli: Cli) -> Result<u8, Exit> {
    match cli.command {
        Command::Serve { listen } => serve(listen).await,
        Command::Invoke {
            line,
            user,
            roles,
            json,
        } => invoke(&line, user, roles, json).await,
        Command::RegisterCommands { guild, dry_run } => register(guild, dry_run).await,
        Command::Audit { user, since, json } => audit(user, &since, json).await,
        Command::Lambda => Err(Exit::usage(
            "the Lambda entry is not part of this build yet; run `valine serve`",
        )),
    }
}

async fn serve(listen: Option<std::net::SocketAddr>) -> Result<u8, Exit> {
    let mut config = load_config(LogTarget::Stdout)?;
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
    let app = open_app(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Exit::failed(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(listen = %addr, version = crate::VERSION, "valine serving");
    crate::server::run(listener, app, shutdown_signal())
        .await
        .map_err(|e| Exit::failed(format!("server error: {e}")))?;
    tracing::info!("valine stopped");
    Ok(exit::OK)
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
    let config = load_config(LogTarget::Stderr)?;
    let app = open_app(config).await?;
    let caller = Caller {
        user_id: user,
        roles,
        guild_id: None,
        channel_id: None,
    };
    let (reply, outcome) =
        match pipeline::decide_command(&app, &caller, command.name(), options, None).await {
            pipeline::Decision::Reply { reply, outcome }
            | pipeline::Decision::Update { reply, outcome } => (reply, outcome),
            pipeline::Decision::Defer { job, .. } => {
                crate::jobs::run_command_body(&app, &job).await
            }
        };
    if json {
        println!("{}", reply.to_message_json());
    } else {
        print!("{}", reply.render_text());
    }
    Ok(match outcome {
        Outcome::Ok | Outcome::Duplicate | Outcome::Ignored => exit::OK,
        Outcome::Invalid => exit::USAGE,
        Outcome::Error | Outcome::Denied | Outcome::RateLimited => exit::FAILED,
    })
}

async fn register(guild: Option<String>, dry_run: bool) -> Result<u8, Exit> {
    let config = load_config(LogTarget::Stderr)?;
    let desired = commands::registration_set();
    let (Some(application_id), true) = (
        config.discord_application_id.clone(),
        config.discord_bot_token.is_some(),
    ) else {
        if dry_run {
            // Without credentials there is nothing to compare with; the JSON alone is
            // still what an operator wants to see.
            println!(
                "{}",
                serde_json::to_string_pretty(&desired).unwrap_or_default()
            );
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
        println!("{json}");
    }
    print!("{report}");
    Ok(exit::OK)
}

/// `30m`, `24h`, `7d` → seconds.
pub fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("expected e.g. 30m, 24h or 7d, got {text:?}"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("expected e.g. 30m, 24h or 7d, got {text:?}")),
    };
    if n < 0 {
        return Err("--since must be positive".into());
    }
    Ok(n.saturating_mul(unit_secs))
}

async fn audit(user: Option<String>, since: &str, json: bool) -> Result<u8, Exit> {
    let since_secs = parse_since(since).map_err(Exit::usage)?;
    let config = load_config(LogTarget::Stderr)?;
    let app = open_app(config).await?;
    let now = crate::clock::now_ms();
    let records = app
        .store
        .list_audit(user.as_deref(), now - since_secs * 1000, now / 1000)
        .await
        .map_err(|e| Exit::failed(e.to_string()))?;
    for r in &records {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            let at = chrono::DateTime::from_timestamp_millis(r.at_ms)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            println!(
                "{at}  user {}  {}  {} → {}{}{}",
                r.user_id,
                r.action,
                r.old_fingerprint.as_deref().unwrap_or("-"),
                r.new_fingerprint.as_deref().unwrap_or("-"),
                r.trace_id
                    .as_deref()
                    .map(|t| format!("  trace {}", crate::trace::short_id(t)))
                    .unwrap_or_default(),
                if r.dry_run { "  (dry run)" } else { "" },
            );
        }
    }
    if records.is_empty() && !json {
        println!("No audit records.");
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
        assert!(parse_since("7w").is_err());
        assert!(parse_since("d").is_err());
        assert!(parse_since("").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
