//! `valine demo`: Valine's main features with no credentials and no network. The demo
//! starts, on 127.0.0.1 with ephemeral ports, a simulated GitHub repository
//! ([`github`]), a simulated deployed site ([`site`]) and a stand-in for the Discord
//! message a followed command edits ([`chat`]); configures Valine for them the way a
//! user would, in a TOML file named by `VALINE_CONFIG` in a temporary directory (with
//! a throwaway SQLite store beside it); serves Valine's own router and worker, so the
//! simulation's webhooks and the follow-up jobs take their real paths; and walks through
//! a few commands, printing each reply as `valine invoke` does.
//!
//! The simulation is data and small HTTP servers, never a second path through Valine:
//! every reply comes from the command pipeline `valine invoke` uses.

pub mod chat;
pub mod github;
pub mod shapes;
pub mod site;

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::commands::{self, pipeline};
use crate::config::{Config, ConfigError};
use crate::discord::interaction::{Caller, ReplyHandle};
use crate::discord::response::Reply;
use crate::jobs::AbortOnDrop;
use crate::runs::report::CANCEL_ACTION;
use crate::store::Outcome;
use crate::telemetry::{self, LogEdge};

/// The demo's user: admin and deployer, and the id `valine invoke` acts as by default.
pub const USER: &str = "0";
/// The simulated repository.
pub const REPO: &str = "demo/shop";
/// The placeholder token the simulated GitHub accepts (and the only one).
const TOKEN: &str = "demo-token-accepted-only-by-the-simulation";
/// The application whose interaction the followed `/deploy-client` answers.
const APPLICATION_ID: &str = "100000000000000001";
/// How long the walkthrough waits for the dispatched run to complete and be verified.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(20);

/// The commands the walkthrough runs, in order, each with what it shows.
const STEPS: [(&str, &str); 5] = [
    (
        "/status",
        "The deploy workflow's latest runs on main, read from the simulated GitHub.",
    ),
    (
        "/verify-latest",
        "The newest deploy checked: its conclusion and step durations, then the frontend \
         (/, /index.html) and the API (/health, /hello) probed.",
    ),
    (
        "/diagnose",
        "The targets (DNS, TLS, latency, Cache-Control), the GitHub token and quota, and \
         where the last failed run broke, with the tail of its log.",
    ),
    (
        "/deploy-client wait:true",
        "The deploy workflow dispatched; its run is found by its correlation id, and the \
         message follows it to the end and verifies the result.",
    ),
    (
        "/debug-last",
        "Your last command's trace: every step, with its timing and outcome.",
    ),
];

/// Why the demo could not run. Only a failure to listen or to write its files can
/// pass on a retry.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo's {what} on 127.0.0.1: {source}")]
    Listen {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the demo's files in {path}: {source}")]
    Files {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the demo's configuration is invalid: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot make the simulated GitHub's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl DemoError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DemoError::Listen { .. } | DemoError::Files { .. })
    }
}

/// The loopback addresses of what the demo runs.
#[derive(Debug, Clone)]
struct Urls {
    github: String,
    frontend: String,
    api: String,
    chat: String,
    valine: String,
}

/// A running demo: the simulation, and Valine configured for it.
pub struct Demo {
    app: Arc<App>,
    urls: Urls,
    config_path: PathBuf,
    edits: mpsc::UnboundedReceiver<chat::Edit>,
    stop: watch::Sender<bool>,
    valine: tokio::task::JoinHandle<std::io::Result<()>>,
    _servers: Vec<AbortOnDrop<()>>,
    /// Dropped last: it removes the configuration and the store.
    _dir: tempfile::TempDir,
}

async fn bind(what: &'static str) -> Result<(TcpListener, String), DemoError> {
    let listen = |source| DemoError::Listen { what, source };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(listen)?;
    let addr: SocketAddr = listener.local_addr().map_err(listen)?;
    Ok((listener, format!("http://{addr}")))
}

fn serve(listener: TcpListener, router: Router) -> AbortOnDrop<()> {
    AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error.message = %e, "a simulated server stopped");
        }
    }))
}

/// The configuration file, as a user would write it: lower-case keys of the variables.
fn config_file(urls: &Urls, store: &std::path::Path, webhook_secret: &str) -> String {
    let mut table = toml::Table::new();
    let mut set = |key: &str, value: toml::Value| {
        table.insert(key.to_owned(), value);
    };
    set("stage", "demo".into());
    set("github_api_base", urls.github.as_str().into());
    set("github_token", TOKEN.into());
    set("github_repo", REPO.into());
    set("github_webhook_secret", webhook_secret.into());
    set("frontend_base_url", urls.frontend.as_str().into());
    set("vite_api_base", urls.api.as_str().into());
    // The targets are on loopback, which the probe rules refuse unless told otherwise.
    set("safe_local", true.into());
    set("valine_store", format!("sqlite:{}", store.display()).into());
    set("admin_user_ids", USER.into());
    set("deployer_user_ids", USER.into());
    // Follow-up edits of the /deploy-client message go to the demo, not to Discord.
    set(
        "discord_api_base",
        format!("{}{}", urls.chat, chat::API_PREFIX).into(),
    );
    set("rate_limit_per_minute", 60.into());
    set("valine_log", "warn".into());
    format!(
        "# Written by `valine demo`: Valine against a simulated GitHub repository and site\n\
         # on 127.0.0.1. Removed when the demo stops.\n{table}"
    )
}

impl Demo {
    /// Starts the simulation and Valine. Logs go to stderr at `warn` (or as
    /// `VALINE_LOG` says), so they never mix with the replies on stdout.
    pub async fn start() -> Result<Demo, DemoError> {
        let dir = tempfile::Builder::new()
            .prefix("valine-demo-")
            .tempdir()
            .map_err(|source| DemoError::Files {
                path: std::env::temp_dir(),
                source,
            })?;
        let clock = Clock::system();
        let (github_listener, github_url) = bind("simulated GitHub").await?;
        let (frontend_listener, frontend_url) = bind("simulated frontend").await?;
        let (api_listener, api_url) = bind("simulated API").await?;
        let (chat_listener, chat_url) = bind("message stand-in").await?;
        let (valine_listener, valine_url) = bind("Valine server").await?;
        let urls = Urls {
            github: github_url,
            frontend: frontend_url,
            api: api_url,
            chat: chat_url,
            valine: valine_url,
        };

        let sim = github::Sim::new(
            shapes::Place {
                base: urls.github.clone(),
                repo: REPO.to_owned(),
            },
            TOKEN,
            clock.clone(),
        )
        .map_err(DemoError::Client)?;
        let (chat_router, edits) = chat::router();
        let servers = vec![
            serve(github_listener, sim.router()),
            serve(frontend_listener, site::frontend()),
            serve(api_listener, site::api()),
            serve(chat_listener, chat_router),
        ];

        let webhook_secret = uuid::Uuid::new_v4().simple().to_string();
        let config_path = dir.path().join("valine.toml");
        let text = config_file(&urls, &dir.path().join("valine.db"), &webhook_secret);
        std::fs::write(&config_path, text).map_err(|source| DemoError::Files {
            path: config_path.clone(),
            source,
        })?;
        let mut vars = HashMap::from([(
            "VALINE_CONFIG".to_owned(),
            config_path.display().to_string(),
        )]);
        // Only the log level is taken from the environment: a real GITHUB_TOKEN or
        // DISCORD_* set in this shell must not send the demo anywhere.
        if let Ok(level) = std::env::var("VALINE_LOG") {
            vars.insert("VALINE_LOG".to_owned(), level);
        }
        let config = Config::from_vars(vars)?;
        // Prepared as `valine init` would, before logging starts: the first open of a
        // new store warns that it creates one, which here is the plan.
        crate::store::init(&config.store)
            .await
            .map_err(AppError::from)?;
        telemetry::init(config.log_settings(), config.secret_values(), LogEdge::Cli);
        let app = Arc::new(App::new(config).await?);

        let (stop, mut stopping) = watch::channel(false);
        let valine = tokio::spawn(crate::server::run(
            valine_listener,
            Arc::clone(&app),
            async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            },
        ));
        sim.send_webhooks_to(github::Webhook {
            url: format!("{}/github/webhook", urls.valine),
            secret: webhook_secret,
        });
        Ok(Demo {
            app,
            urls,
            config_path,
            edits,
            stop,
            valine,
            _servers: servers,
            _dir: dir,
        })
    }

    /// Runs the walkthrough, writing every reply to `out`; `true` when each command
    /// succeeded and the dispatched deploy completed and was verified.
    pub async fn walk_through(&mut self, out: &mut dyn Write) -> Result<bool, DemoError> {
        let write = |out: &mut dyn Write, text: &str| {
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(DemoError::Output)
        };
        write(out, &self.introduction())?;
        let mut all_ok = true;
        for (i, (line, what)) in STEPS.iter().enumerate() {
            write(
                out,
                &format!("\n━━━ {}/{}  {line} ━━━\n{what}\n\n", i + 1, STEPS.len()),
            )?;
            // A followed command answers an interaction whose message Valine edits.
            let follows = line.contains("wait:true");
            let reply_to = follows.then(|| ReplyHandle {
                application_id: APPLICATION_ID.to_owned(),
                token: format!("demo-{}", uuid::Uuid::new_v4().simple()),
            });
            let (reply, outcome) = self.answer(line, reply_to.clone()).await;
            write(out, &reply.render_text())?;
            all_ok &= outcome == Outcome::Ok && !reply.failed;
            if let Some(handle) = reply_to {
                all_ok &= self.follow(&handle.token, out).await?;
            }
        }
        write(out, &self.epilogue())?;
        Ok(all_ok)
    }

    /// One command line through the pipeline, as the demo's user.
    async fn answer(&self, line: &str, reply_to: Option<ReplyHandle>) -> (Reply, Outcome) {
        let (command, options) = match commands::parse_invoke_line(line) {
            Ok(parsed) => parsed,
            Err(e) => return (Reply::text(format!("❌ {e}")).failed(), Outcome::Invalid),
        };
        let caller = Caller {
            user_id: USER.to_owned(),
            roles: Vec::new(),
            guild_id: None,
            channel_id: None,
        };
        pipeline::answer_inline(&self.app, &caller, command.spec().name, options, reply_to).await
    }

    /// Prints each edit of the followed message until the run's result arrives (the
    /// message loses its `Cancel run` button); `false` when it does not in time.
    async fn follow(&mut self, token: &str, out: &mut dyn Write) -> Result<bool, DemoError> {
        let deadline = tokio::time::Instant::now() + FOLLOW_TIMEOUT;
        loop {
            let edit = match tokio::time::timeout_at(deadline, self.edits.recv()).await {
                Ok(Some(edit)) => edit,
                Ok(None) | Err(_) => {
                    let text = format!(
                        "\n⚠️ The run's result did not arrive within {} s.\n",
                        FOLLOW_TIMEOUT.as_secs()
                    );
                    out.write_all(text.as_bytes()).map_err(DemoError::Output)?;
                    return Ok(false);
                }
            };
            if edit.token != token {
                continue;
            }
            let reply = Reply::from_message_json(&edit.message);
            let text = format!(
                "\n↳ The run moved on; Valine edits the message:\n\n{}",
                reply.render_text()
            );
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(DemoError::Output)?;
            let cancel = format!("valine:{CANCEL_ACTION}:");
            if !reply.buttons.iter().any(|b| b.target.starts_with(&cancel)) {
                return Ok(true);
            }
        }
    }

    fn introduction(&self) -> String {
        let u = &self.urls;
        format!(
            "Valine demo: no credentials, nothing leaves this machine.\n\n\
             Running on 127.0.0.1:\n\
             \x20 simulated GitHub  {}  (repository {REPO}, workflow {}, 4 runs, one failed)\n\
             \x20 simulated site    {}  (frontend)  and  {}  (API)\n\
             \x20 Valine            {}  (the simulation's webhooks arrive at /github/webhook)\n\
             Configuration: {}\n\n\
             Each reply below is what a Discord user would read, printed as `valine invoke` \
             prints it.\n",
            u.github,
            github::DEPLOY_WORKFLOW.file,
            u.frontend,
            u.api,
            u.valine,
            self.config_path.display(),
        )
    }

    fn epilogue(&self) -> String {
        "\n━━━ Connect a real application ━━━\n\
         1. Set the variables (in the environment, or lower-case in a TOML file named by \
         VALINE_CONFIG):\n\
         \x20  DISCORD_PUBLIC_KEY, DISCORD_APPLICATION_ID, DISCORD_BOT_TOKEN   your Discord \
         application\n\
         \x20  GITHUB_TOKEN, GITHUB_REPO, GITHUB_WEBHOOK_SECRET                your repository\n\
         \x20  FRONTEND_BASE_URL, VITE_API_BASE                                your deployed site\n\
         \x20  ADMIN_USER_IDS, DEPLOYER_USER_IDS                               who may do what\n\
         2. valine register-commands     puts the slash commands in Discord\n\
         3. valine doctor                checks every piece and says how to fix what is missing\n\
         4. valine serve                 then point Discord's Interactions Endpoint URL and \
         GitHub's webhook at it\n\
         README.md, \"Wiring it up\", walks through each step.\n"
            .to_owned()
    }

    /// What to run from another shell against this demo (`valine demo --serve`).
    pub fn serve_hint(&self) -> String {
        let program = std::env::current_exe()
            .map(|p| shell_word(&p.display().to_string()))
            .unwrap_or_else(|_| "valine".to_owned());
        let config = shell_word(&self.config_path.display().to_string());
        let mut text = String::from(
            "\n━━━ The demo keeps running until Ctrl-C ━━━\n\
             From another shell, try Valine against it (variables already set in that \
             shell win over the file):\n\n",
        );
        for line in [
            "invoke '/status'",
            "invoke '/verify-latest'",
            "invoke '/diagnose'",
            "invoke '/deploy-client'",
            "invoke '/debug-last'",
            "traces",
        ] {
            text.push_str(&format!("  VALINE_CONFIG={config} {program} {line}\n"));
        }
        text
    }

    /// Stops Valine (letting running jobs finish) and the simulation, and removes the
    /// demo's files.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.valine.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "the demo's server stopped with an error")
            }
            Err(e) => tracing::warn!(error.message = %e, "the demo's server ended abnormally"),
        }
    }
}

/// `word` as one shell word: unchanged when it has nothing a shell would read, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_a_shell() {
        assert_eq!(
            shell_word("/tmp/valine-demo-x/valine.toml"),
            "/tmp/valine-demo-x/valine.toml"
        );
        assert_eq!(shell_word("/a b/valine"), "'/a b/valine'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_configuration_file_is_what_valine_reads() {
        let urls = Urls {
            github: "http://127.0.0.1:1".into(),
            frontend: "http://127.0.0.1:2".into(),
            api: "http://127.0.0.1:3".into(),
            chat: "http://127.0.0.1:4".into(),
            valine: "http://127.0.0.1:5".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valine.toml");
        std::fs::write(&path, config_file(&urls, &dir.path().join("v.db"), "whsec")).unwrap();
        let config = Config::from_vars(HashMap::from([(
            "VALINE_CONFIG".to_owned(),
            path.display().to_string(),
        )]))
        .unwrap();
        assert_eq!(config.github_api_base.as_str(), "http://127.0.0.1:1/");
        assert_eq!(config.github_repo.unwrap().to_string(), REPO);
        assert!(config.safe_local && !config.dry_run);
        assert!(config.admin_user_ids.contains(USER) && config.deployer_user_ids.contains(USER));
        assert_eq!(
            config.discord_api_base.as_str(),
            "http://127.0.0.1:4/api/v10"
        );
        assert!(config.discord_bot_token.is_none() && config.discord_public_key.is_none());
        assert_eq!(
            config.store,
            crate::store::StoreLocation::SqliteFile(dir.path().join("v.db"))
        );
    }
}
