//! The Discord REST client: the few calls Valine makes (edit the deferred reply, post to a
//! channel, read and bulk-overwrite the command set).
//!
//! Every call has a 10 s timeout, honours 429 `retry_after`, and retries 5xx and
//! connection errors with a short backoff; all calls are safe to repeat (edits and bulk
//! overwrites are idempotent, channel posts carry a `nonce` with `enforce_nonce`).
//! Neither the bot token nor an interaction token ever appears in an error, a log line or
//! `Debug` output: paths are passed through [`redact_webhook_path`] and free text through
//! [`scrub`].

use std::fmt;

use crate::http_client::LazyClient;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::dryrun::Mutation;
use crate::secret::{redact_webhook_path, scrub};

/// Per-attempt timeout for every Discord call: no outbound call may hang a job.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// 429 answers honoured before giving up.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// 5xx answers and connection errors retried before giving up.
const MAX_TRANSIENT_RETRIES: u32 = 3;
/// First transient backoff; doubles each retry (250 ms, 500 ms, 1 s).
const TRANSIENT_BACKOFF: Duration = Duration::from_millis(250);
/// Waits between the attempts of an edit that got 404 because Discord had not yet
/// processed our deferred (type 5) answer: 5 attempts within about 3 s.
const NOT_FOUND_BACKOFF: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(1),
];
/// A 429 asking for a longer wait than this is returned as [`DiscordError::RateLimited`]
/// instead of blocking: the job worker's backoff (or the operator) takes over.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Used when a 429 names no wait at all.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Discord's limit on a message nonce.
pub const MAX_NONCE_LEN: usize = 25;
/// Longest piece of a Discord error body quoted in an error message.
const MAX_QUOTED_BODY: usize = 500;

/// A failed Discord call. Messages are safe to log and show: tokens are scrubbed.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    #[error("DISCORD_BOT_TOKEN is not configured")]
    MissingBotToken,
    #[error("DISCORD_BOT_TOKEN cannot be sent in an HTTP header (invalid characters)")]
    InvalidBotToken,
    /// 401 or 403: a bad or expired token, or missing permissions.
    #[error("Discord refused {endpoint} with HTTP {status}: {message} ({hint})")]
    Unauthorized {
        endpoint: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error("Discord returned 404 for {endpoint}: {message}")]
    NotFound { endpoint: String, message: String },
    #[error("Discord rate limit on {endpoint}: retry after {retry_after_secs:.1} s")]
    RateLimited {
        endpoint: String,
        retry_after_secs: f64,
    },
    /// Any other 4xx (e.g. 400 Invalid Form Body), or a 2xx whose body we could not read.
    #[error("Discord API error on {endpoint} (HTTP {status}): {message}")]
    Api {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// 5xx, timeouts and connection errors that persisted through the retries.
    #[error("Discord is unavailable for {endpoint}: {detail}")]
    Unavailable { endpoint: String, detail: String },
    /// A 2xx whose body is not what the endpoint returns.
    #[error("Discord answered {endpoint} (HTTP {status}) with a body Valine cannot read")]
    Unreadable {
        endpoint: String,
        status: u16,
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be built (TLS set-up): no call can be made.
    #[error("Discord client unavailable: cannot build the HTTP client")]
    NoClient(#[source] Arc<reqwest::Error>),
    /// A request Valine should never build (e.g. an over-long nonce); never sent.
    #[error("invalid Discord request: {0}")]
    InvalidRequest(String),
}

impl DiscordError {
    /// Stable snake_case class for the `error.type` log field (see
    /// `docs/design.md#logs`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::MissingBotToken | Self::InvalidBotToken | Self::Unauthorized { .. } => {
                "discord_unauthorized"
            }
            Self::NotFound { .. } => "discord_not_found",
            Self::RateLimited { .. } => "discord_rate_limited",
            Self::Api { .. } | Self::Unreadable { .. } | Self::InvalidRequest(_) => "discord_api",
            Self::NoClient(_) => "discord_unavailable",
            Self::Unavailable { .. } => "discord_unavailable",
        }
    }

    /// Whether retrying later (the job worker's backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }
}

/// A Discord account (`GET /users/@me`): only what `valine doctor` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct CurrentUser {
    pub id: String,
    pub username: String,
    /// `true` for a bot account; a user token has none.
    pub bot: bool,
}

/// A Discord application (`GET /applications/@me`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Application {
    pub id: String,
    pub name: String,
}

/// A channel (`GET /channels/{id}`); DMs have no name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Channel {
    pub id: String,
    pub name: Option<String>,
    pub guild_id: Option<String>,
}

/// Discord REST client. Cheap to clone: the HTTP client and configuration are shared.
#[derive(Clone)]
pub struct DiscordClient {
    inner: Arc<Inner>,
    /// DRY_RUN backstop ([`DiscordClient::with_dry_run`]): channel posts are refused.
    dry_run: bool,
}

struct Inner {
    /// Built on first use (a build failure is kept and reported by every call), so
    /// construction at start-up costs nothing and never panics.
    http: LazyClient,
    api_base: Url,
    bot_token: Option<SecretString>,
}

impl fmt::Debug for DiscordClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field(
                "bot_token",
                &self.inner.bot_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// One logical call: what to send and which retries apply.
struct Call<'a> {
    method: Method,
    segments: &'a [&'a str],
    body: Option<&'a Value>,
    bot_auth: bool,
    /// Retry 404 briefly: an edit of a deferred response can reach Discord before its own
    /// receipt of the type 5 answer, and then sees 404 for a few seconds.
    retry_not_found: bool,
    /// The interaction token, if it is part of the path, to scrub from any text.
    interaction_token: Option<&'a str>,
}

/// Whether `url` names this machine: `localhost` or a loopback address.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl DiscordClient {
    /// `api_base` is e.g. `https://discord.com/api/v10`; its path is kept and the
    /// endpoint path appended. The bot token is only needed for channel posts and
    /// command registration.
    pub fn new(api_base: Url, bot_token: Option<SecretString>) -> Self {
        // reqwest is built without a default rustls provider; installing it twice is a
        // harmless error, so the result is ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!(
                "DiscordBot (https://github.com/valine, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            )),
        );
        // A proxy from the environment is for reaching Discord; an API on this machine
        // (`valine demo`'s stand-in, a local fake) is reached directly.
        let direct = is_loopback(&api_base);
        let http = LazyClient::new(move || {
            let builder = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .default_headers(headers.clone());
            if direct { builder.no_proxy() } else { builder }
        });
        Self {
            inner: Arc::new(Inner {
                http,
                api_base,
                bot_token,
            }),
            dry_run: false,
        }
    }

    /// A client that refuses channel posts when `dry_run` is on: the backstop behind
    /// [`crate::dryrun`]. Answers to interactions (edits of the original response) are
    /// still sent; DRY_RUN never suppresses the reply itself.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// DRY_RUN description of [`DiscordClient::create_message`].
    pub fn create_message_mutation(&self, channel_id: &str, body: &Value, nonce: &str) -> Mutation {
        let path = self
            .endpoint_url(&["channels", channel_id, "messages"])
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| format!("/channels/{channel_id}/messages"));
        // The body exactly as `create_message` would send it.
        let mut body = with_silent_mentions(body).unwrap_or_else(|_| body.clone());
        if let Value::Object(map) = &mut body {
            map.insert("nonce".into(), Value::String(nonce.to_owned()));
            map.insert("enforce_nonce".into(), Value::Bool(true));
        }
        Mutation::new(format!("post to channel {channel_id}"), "POST", path).with_body(body)
    }

    /// Edits the original (deferred) interaction response:
    /// `PATCH /webhooks/{app}/{token}/messages/@original`. Authenticated by the
    /// interaction token in the path, valid for 15 minutes.
    pub async fn edit_original(
        &self,
        application_id: &str,
        interaction_token: &str,
        body: &Value,
    ) -> Result<(), DiscordError> {
        let body = with_silent_mentions(body)?;
        self.execute(
            Call {
                method: Method::PATCH,
                segments: &[
                    "webhooks",
                    application_id,
                    interaction_token,
                    "messages",
                    "@original",
                ],
                body: Some(&body),
                bot_auth: false,
                retry_not_found: true,
                interaction_token: Some(interaction_token),
            },
            ignore_body,
        )
        .await
    }

    /// Reads the original interaction response (to extend it rather than replace it):
    /// `GET /webhooks/{app}/{token}/messages/@original`.
    pub async fn get_original(
        &self,
        application_id: &str,
        interaction_token: &str,
    ) -> Result<Value, DiscordError> {
        self.execute(
            Call {
                method: Method::GET,
                segments: &[
                    "webhooks",
                    application_id,
                    interaction_token,
                    "messages",
                    "@original",
                ],
                body: None,
                bot_auth: false,
                retry_not_found: true,
                interaction_token: Some(interaction_token),
            },
            parse_message,
        )
        .await
    }

    /// Posts a message to a channel with the bot token. `nonce` (at most 25 characters,
    /// stable per logical post) with `enforce_nonce` makes Discord drop a repeat of the
    /// same post, which is what makes retries and at-least-once jobs safe here.
    pub async fn create_message(
        &self,
        channel_id: &str,
        body: &Value,
        nonce: &str,
    ) -> Result<(), DiscordError> {
        if self.dry_run {
            tracing::error!(
                error.type = "dry_run_bypassed",
                error.message = "a channel post skipped the DRY_RUN gate",
                "Discord call refused: DRY_RUN is on"
            );
            return Err(DiscordError::InvalidRequest(
                "DRY_RUN is on: channel posts are not sent".into(),
            ));
        }
        if nonce.is_empty() || nonce.chars().count() > MAX_NONCE_LEN {
            return Err(DiscordError::InvalidRequest(format!(
                "nonce must be 1 to {MAX_NONCE_LEN} characters"
            )));
        }
        let mut body = with_silent_mentions(body)?;
        if let Value::Object(map) = &mut body {
            map.insert("nonce".into(), Value::String(nonce.to_owned()));
            map.insert("enforce_nonce".into(), Value::Bool(true));
        }
        self.execute(
            Call {
                method: Method::POST,
                segments: &["channels", channel_id, "messages"],
                body: Some(&body),
                bot_auth: true,
                retry_not_found: false,
                interaction_token: None,
            },
            ignore_body,
        )
        .await
    }

    /// Lists the registered commands, globally or in one guild.
    pub async fn get_commands(
        &self,
        application_id: &str,
        guild_id: Option<&str>,
    ) -> Result<Vec<Value>, DiscordError> {
        let segments = commands_path(application_id, guild_id);
        self.execute(
            Call {
                method: Method::GET,
                segments: &segments,
                body: None,
                bot_auth: true,
                retry_not_found: false,
                interaction_token: None,
            },
            parse_command_list,
        )
        .await
    }

    /// The account the bot token belongs to: `GET /users/@me`.
    pub async fn current_user(&self) -> Result<CurrentUser, DiscordError> {
        self.get_with_bot(&["users", "@me"]).await
    }

    /// The application the bot token belongs to: `GET /applications/@me`.
    pub async fn current_application(&self) -> Result<Application, DiscordError> {
        self.get_with_bot(&["applications", "@me"]).await
    }

    /// A channel as the bot sees it: `GET /channels/{id}` (403 when the bot cannot view
    /// it, 404 when there is no such channel).
    pub async fn get_channel(&self, channel_id: &str) -> Result<Channel, DiscordError> {
        self.get_with_bot(&["channels", channel_id]).await
    }

    /// Whether `user_id` is a member of the guild: `GET /guilds/{guild}/members/{user}`.
    /// A bot outside the guild gets 403 or 404, which are errors here.
    pub async fn get_guild_member(
        &self,
        guild_id: &str,
        user_id: &str,
    ) -> Result<(), DiscordError> {
        self.get_with_bot::<Value>(&["guilds", guild_id, "members", user_id])
            .await
            .map(drop)
    }

    /// A `GET` authenticated with the bot token, its body read as `T`.
    async fn get_with_bot<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, DiscordError> {
        self.execute(
            Call {
                method: Method::GET,
                segments,
                body: None,
                bot_auth: true,
                retry_not_found: false,
                interaction_token: None,
            },
            |bytes| serde_json::from_slice(bytes),
        )
        .await
    }

    /// Bulk-overwrites the command set (commands absent from `commands` are deleted by
    /// Discord) and returns what Discord now has.
    pub async fn put_commands(
        &self,
        application_id: &str,
        guild_id: Option<&str>,
        commands: &[Value],
    ) -> Result<Vec<Value>, DiscordError> {
        let segments = commands_path(application_id, guild_id);
        let body = Value::Array(commands.to_vec());
        self.execute(
            Call {
                method: Method::PUT,
                segments: &segments,
                body: Some(&body),
                bot_auth: true,
                retry_not_found: false,
                interaction_token: None,
            },
            parse_command_list,
        )
        .await
    }

    /// Sends one logical call with its retries, decodes the success body with `decode`,
    /// and logs one event for the whole call.
    async fn execute<T>(
        &self,
        call: Call<'_>,
        decode: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, DiscordError> {
        let url = self.endpoint_url(call.segments)?;
        let secrets = self.secrets(call.interaction_token);
        let path = scrub(&redact_webhook_path(url.path()), &secrets);
        let endpoint = format!("{} {}", call.method, path);
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut last_status = None;

        let result = self
            .attempt_loop(
                &call,
                &url,
                &endpoint,
                &secrets,
                &mut attempts,
                &mut last_status,
            )
            .await
            .and_then(|bytes| {
                decode(&bytes).map_err(|source| DiscordError::Unreadable {
                    endpoint: endpoint.clone(),
                    status: last_status.unwrap_or_default(),
                    source,
                })
            });

        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::info!(
                discord_method = %call.method,
                discord_endpoint = %path,
                discord_status = last_status,
                discord_attempts = attempts,
                discord_latency_ms = latency_ms,
                "discord call ok"
            ),
            Err(e) => tracing::warn!(
                discord_method = %call.method,
                discord_endpoint = %path,
                discord_status = last_status,
                discord_attempts = attempts,
                discord_latency_ms = latency_ms,
                "error.type" = e.error_type(),
                "error.message" = %e,
                "discord call failed"
            ),
        }
        result
    }

    async fn attempt_loop(
        &self,
        call: &Call<'_>,
        url: &Url,
        endpoint: &str,
        secrets: &[&str],
        attempts: &mut u32,
        last_status: &mut Option<u16>,
    ) -> Result<Vec<u8>, DiscordError> {
        let http = self.inner.http.get().map_err(DiscordError::NoClient)?;
        let auth = if call.bot_auth {
            Some(self.auth_header()?)
        } else {
            None
        };
        let mut rate_limited = 0u32;
        let mut transient = 0u32;
        let mut not_found = 0usize;

        loop {
            *attempts += 1;
            let mut request = http.request(call.method.clone(), url.clone());
            if let Some(auth) = &auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }

            // A transport failure (connect, timeout, body cut short) is retried like a
            // 5xx. `without_url` keeps the interaction token out of the message.
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    let detail = scrub(&error_chain(&e.without_url()), secrets);
                    if transient < MAX_TRANSIENT_RETRIES {
                        transient += 1;
                        retry_sleep(endpoint, "connection error", backoff(transient)).await;
                        continue;
                    }
                    return Err(DiscordError::Unavailable {
                        endpoint: endpoint.to_owned(),
                        detail,
                    });
                }
            };
            let status = response.status();
            *last_status = Some(status.as_u16());
            let header_wait = header_retry_after(response.headers());
            let bytes = match response.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    let detail = scrub(&error_chain(&e.without_url()), secrets);
                    if transient < MAX_TRANSIENT_RETRIES {
                        transient += 1;
                        retry_sleep(endpoint, "body read error", backoff(transient)).await;
                        continue;
                    }
                    return Err(DiscordError::Unavailable {
                        endpoint: endpoint.to_owned(),
                        detail,
                    });
                }
            };

            if status.is_success() {
                return Ok(bytes);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = body_retry_after(&bytes)
                    .or(header_wait)
                    .unwrap_or(DEFAULT_RETRY_AFTER);
                if rate_limited < MAX_RATE_LIMIT_RETRIES && wait <= MAX_RATE_LIMIT_WAIT {
                    rate_limited += 1;
                    retry_sleep(endpoint, "rate limited", wait).await;
                    continue;
                }
                return Err(DiscordError::RateLimited {
                    endpoint: endpoint.to_owned(),
                    retry_after_secs: wait.as_secs_f64(),
                });
            }
            if status.is_server_error() {
                if transient < MAX_TRANSIENT_RETRIES {
                    transient += 1;
                    retry_sleep(endpoint, "server error", backoff(transient)).await;
                    continue;
                }
                return Err(DiscordError::Unavailable {
                    endpoint: endpoint.to_owned(),
                    detail: format!("HTTP {}: {}", status.as_u16(), error_text(&bytes, secrets)),
                });
            }
            if status == StatusCode::NOT_FOUND
                && call.retry_not_found
                && let Some(wait) = NOT_FOUND_BACKOFF.get(not_found)
            {
                not_found += 1;
                retry_sleep(endpoint, "not found yet", *wait).await;
                continue;
            }
            return Err(client_error(call, endpoint, status, &bytes, secrets));
        }
    }

    /// Appends path segments to the base, keeping the base's own path (`/api/v10`) and
    /// percent-encoding each segment so an id can never add a path level.
    fn endpoint_url(&self, segments: &[&str]) -> Result<Url, DiscordError> {
        let mut url = self.inner.api_base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| {
                DiscordError::InvalidRequest("DISCORD_API_BASE cannot take a path".into())
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn auth_header(&self) -> Result<HeaderValue, DiscordError> {
        let token = self
            .inner
            .bot_token
            .as_ref()
            .ok_or(DiscordError::MissingBotToken)?;
        let mut value = HeaderValue::from_str(&format!("Bot {}", token.expose_secret()))
            .map_err(|_| DiscordError::InvalidBotToken)?;
        // Keeps the token out of hyper's and any middleware's header logging.
        value.set_sensitive(true);
        Ok(value)
    }

    fn secrets<'a>(&'a self, interaction_token: Option<&'a str>) -> Vec<&'a str> {
        let mut secrets = Vec::with_capacity(2);
        if let Some(token) = &self.inner.bot_token {
            secrets.push(token.expose_secret());
        }
        secrets.extend(interaction_token);
        secrets
    }
}

fn commands_path<'a>(application_id: &'a str, guild_id: Option<&'a str>) -> Vec<&'a str> {
    match guild_id {
        Some(guild) => vec!["applications", application_id, "guilds", guild, "commands"],
        None => vec!["applications", application_id, "commands"],
    }
}

fn parse_command_list(bytes: &[u8]) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Edits and posts answer with the message, which Valine does not need.
fn parse_message(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn ignore_body(_: &[u8]) -> Result<(), serde_json::Error> {
    Ok(())
}

/// Every message Valine sends must not ping anyone (`allowed_mentions` empty); this is
/// the last line of defence for a body built without `allowed_mentions`.
fn with_silent_mentions(body: &Value) -> Result<Value, DiscordError> {
    let mut body = body.clone();
    let Value::Object(map) = &mut body else {
        return Err(DiscordError::InvalidRequest(
            "message body must be a JSON object".into(),
        ));
    };
    map.entry("allowed_mentions")
        .or_insert_with(|| serde_json::json!({ "parse": [] }));
    Ok(body)
}

fn client_error(
    call: &Call<'_>,
    endpoint: &str,
    status: StatusCode,
    bytes: &[u8],
    secrets: &[&str],
) -> DiscordError {
    let endpoint = endpoint.to_owned();
    let message = error_text(bytes, secrets);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let hint = match (status, call.bot_auth) {
                (StatusCode::UNAUTHORIZED, true) => {
                    "DISCORD_BOT_TOKEN is invalid or revoked: reset it in the developer portal"
                }
                (StatusCode::UNAUTHORIZED, false) => {
                    "the interaction token is invalid or older than 15 minutes"
                }
                _ => "the bot lacks permission: check its role and the channel's permissions",
            };
            DiscordError::Unauthorized {
                endpoint,
                status: status.as_u16(),
                message,
                hint,
            }
        }
        StatusCode::NOT_FOUND => DiscordError::NotFound { endpoint, message },
        _ => DiscordError::Api {
            endpoint,
            status: status.as_u16(),
            message,
        },
    }
}

/// Discord's error body is `{"code": 50035, "message": "…", "errors": {…}}`; quote the
/// message, the code and the field errors (which say what was wrong), scrubbed and
/// bounded.
fn error_text(bytes: &[u8], secrets: &[&str]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let mut text = match v.get("code").and_then(Value::as_u64) {
                Some(code) if code != 0 => format!("{message} (code {code})"),
                _ => message.to_owned(),
            };
            if let Some(errors) = v.get("errors") {
                text.push_str(&format!(": {errors}"));
            }
            text
        }
        Err(_) if bytes.is_empty() => "empty response".to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let text = scrub(&text, secrets);
    match text.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `retry_after` from a 429 body: seconds as a float.
fn body_retry_after(bytes: &[u8]) -> Option<Duration> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    seconds(value.get("retry_after")?.as_f64()?)
}

/// `Retry-After` (seconds) is Discord's and Cloudflare's fallback when the body has none.
fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    seconds(text.trim().parse::<f64>().ok()?)
}

/// Rejects NaN and negative values instead of letting `Duration` panic on them;
/// an absurdly large value saturates and is then refused by the wait cap.
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

fn backoff(retry: u32) -> Duration {
    TRANSIENT_BACKOFF.saturating_mul(1 << retry.saturating_sub(1).min(4))
}

/// `tokio::time::sleep`, so tests with paused time do not wait.
async fn retry_sleep(endpoint: &str, reason: &str, wait: Duration) {
    tracing::debug!(
        discord_endpoint = %endpoint,
        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "discord call retrying: {reason}"
    );
    tokio::time::sleep(wait).await;
}

/// reqwest's top-level message is generic ("error sending request"); the cause chain
/// says what happened (refused, timed out, TLS).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    #[test]
    fn only_an_api_on_this_machine_bypasses_a_proxy() {
        let loopback = |u: &str| is_loopback(&Url::parse(u).unwrap());
        assert!(loopback("http://127.0.0.1:9000/api/v10"));
        assert!(loopback("http://[::1]:9000/api/v10"));
        assert!(loopback("http://LOCALHOST:9000"));
        assert!(!loopback("https://discord.com/api/v10"));
        assert!(!loopback("http://10.0.0.1/api"));
    }

    /// A request the fake Discord received.
    #[derive(Debug, Clone)]
    pub(crate) struct Recorded {
        pub method: String,
        pub path: String,
        pub authorization: Option<String>,
        pub body: Option<Value>,
    }

    /// One scripted answer: status, optional `Retry-After` header, JSON body.
    pub(crate) struct Reply {
        pub status: u16,
        pub retry_after_header: Option<&'static str>,
        pub body: Value,
    }

    impl Reply {
        pub fn json(status: u16, body: Value) -> Self {
            Self {
                status,
                retry_after_header: None,
                body,
            }
        }
    }

    #[derive(Default)]
    struct FakeState {
        requests: Vec<Recorded>,
        script: VecDeque<Reply>,
    }

    /// A real HTTP server on 127.0.0.1 that answers from a script (then `200 {}` once
    /// the script is exhausted) and records every request.
    #[derive(Clone, Default)]
    pub(crate) struct FakeDiscord {
        state: Arc<Mutex<FakeState>>,
    }

    impl FakeDiscord {
        /// Starts the server; returns it and an API base with a path, like Discord's.
        pub async fn start(script: Vec<Reply>) -> (Self, Url) {
            let fake = FakeDiscord::default();
            fake.lock().script = script.into();
            let app = Router::new().fallback(handle).with_state(fake.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            let base = Url::parse(&format!("http://{addr}/api/v10")).expect("url");
            (fake, base)
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.lock().requests.clone()
        }
    }

    async fn handle(
        axum::extract::State(fake): axum::extract::State<FakeDiscord>,
        method: AxumMethod,
        uri: Uri,
        headers: AxumHeaders,
        body: Bytes,
    ) -> Response {
        let mut state = fake.lock();
        state.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&body).ok(),
        });
        let reply = state
            .script
            .pop_front()
            .unwrap_or_else(|| Reply::json(200, json!({})));
        let status = axum::http::StatusCode::from_u16(reply.status).expect("status");
        let mut response = (status, axum::Json(reply.body)).into_response();
        if let Some(v) = reply.retry_after_header {
            response
                .headers_mut()
                .insert("retry-after", v.parse().expect("header"));
        }
        response
    }

    const BOT_TOKEN: &str = "bot-token-SECRET-1234567890";
    const INTERACTION_TOKEN: &str = "aW50ZXJhY3Rpb246SECRET";

    fn client(base: Url) -> DiscordClient {
        DiscordClient::new(base, Some(SecretString::from(BOT_TOKEN)))
    }

    fn assert_no_secrets(text: &str) {
        assert!(!text.contains(BOT_TOKEN), "bot token leaked: {text}");
        assert!(!text.contains("SECRET"), "token leaked: {text}");
    }

    #[tokio::test]
    async fn edit_original_patches_the_webhook_path_without_bot_auth() {
        let (fake, base) = FakeDiscord::start(vec![]).await;
        let body = json!({"content": "done", "allowed_mentions": {"parse": ["users"]}});
        client(base)
            .edit_original("111", INTERACTION_TOKEN, &body)
            .await
            .expect("edit");
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "PATCH");
        assert_eq!(
            reqs[0].path,
            format!("/api/v10/webhooks/111/{INTERACTION_TOKEN}/messages/@original")
        );
        assert_eq!(reqs[0].authorization, None);
        // The caller's own allowed_mentions is kept as given.
        assert_eq!(reqs[0].body.as_ref(), Some(&body));
    }

    #[tokio::test]
    async fn edit_original_adds_silent_mentions_when_missing() {
        let (fake, base) = FakeDiscord::start(vec![]).await;
        client(base)
            .edit_original("111", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect("edit");
        assert_eq!(
            fake.requests()[0].body,
            Some(json!({"content": "x", "allowed_mentions": {"parse": []}}))
        );
    }

    #[tokio::test]
    async fn early_404_on_edit_is_retried() {
        let (fake, base) = FakeDiscord::start(vec![Reply::json(
            404,
            json!({"message": "Unknown Webhook", "code": 10015}),
        )])
        .await;
        client(base)
            .edit_original("111", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect("second attempt succeeds");
        assert_eq!(fake.requests().len(), 2);
    }

    #[tokio::test]
    async fn persistent_404_on_edit_gives_up_after_five_attempts() {
        let script = (0..6)
            .map(|_| Reply::json(404, json!({"message": "Unknown Webhook", "code": 10015})))
            .collect();
        let (fake, base) = FakeDiscord::start(script).await;
        let err = client(base)
            .edit_original("111", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect_err("404");
        assert_eq!(err.error_type(), "discord_not_found");
        assert!(!err.is_transient());
        assert_eq!(fake.requests().len(), 5);
        assert_no_secrets(&err.to_string());
        assert!(
            err.to_string()
                .contains("/webhooks/111/[REDACTED]/messages/@original")
        );
    }

    #[tokio::test]
    async fn rate_limit_waits_retry_after_then_succeeds() {
        // tokio's `test-util` (time pausing) is not enabled in this crate, so this waits
        // for real: the wait is kept short.
        let (fake, base) = FakeDiscord::start(vec![Reply::json(
            429,
            json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false}),
        )])
        .await;
        let started = Instant::now();
        client(base)
            .create_message("222", &json!({"content": "hi"}), "nonce-1")
            .await
            .expect("retried");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(fake.requests().len(), 2);
    }

    #[tokio::test]
    async fn rate_limit_falls_back_to_retry_after_header() {
        let (fake, base) = FakeDiscord::start(vec![
            Reply {
                status: 429,
                retry_after_header: Some("0"),
                body: json!({"message": "You are being rate limited."}),
            },
            Reply::json(200, json!([])),
        ])
        .await;
        client(base)
            .get_commands("app", None)
            .await
            .expect("retried");
        assert_eq!(fake.requests().len(), 2);
    }

    #[tokio::test]
    async fn rate_limit_gives_up_after_three_retries_or_a_long_wait() {
        let limited = || Reply::json(429, json!({"retry_after": 0.0}));
        let (fake, base) = FakeDiscord::start((0..5).map(|_| limited()).collect()).await;
        let err = client(base)
            .put_commands("app", None, &[])
            .await
            .expect_err("429");
        assert_eq!(err.error_type(), "discord_rate_limited");
        assert!(err.is_transient());
        assert_eq!(fake.requests().len(), 4);

        let (fake, base) =
            FakeDiscord::start(vec![Reply::json(429, json!({"retry_after": 3600.0}))]).await;
        let err = client(base)
            .put_commands("app", None, &[])
            .await
            .expect_err("429");
        assert!(
            matches!(err, DiscordError::RateLimited { retry_after_secs, .. } if retry_after_secs == 3600.0)
        );
        assert_eq!(fake.requests().len(), 1, "a long wait is not slept through");
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_reported_unavailable() {
        let (fake, base) = FakeDiscord::start(vec![
            Reply::json(502, json!({})),
            Reply::json(200, json!([])),
        ])
        .await;
        let commands = client(base)
            .get_commands("app", None)
            .await
            .expect("retried");
        assert!(commands.is_empty());
        assert_eq!(fake.requests().len(), 2);

        let script = (0..5).map(|_| Reply::json(503, json!({}))).collect();
        let (fake, base) = FakeDiscord::start(script).await;
        let err = client(base)
            .get_commands("app", None)
            .await
            .expect_err("503");
        assert_eq!(err.error_type(), "discord_unavailable");
        assert!(err.is_transient());
        assert_eq!(fake.requests().len(), 4);
    }

    #[tokio::test]
    async fn connection_refused_is_unavailable() {
        // Bind then drop a listener to get a port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let base = Url::parse(&format!("http://{addr}/api/v10")).expect("url");
        let err = client(base)
            .edit_original("1", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect_err("refused");
        assert_eq!(err.error_type(), "discord_unavailable");
        assert_no_secrets(&err.to_string());
        assert_no_secrets(&format!("{err:?}"));
    }

    #[tokio::test]
    async fn a_dry_run_client_answers_interactions_but_never_posts() {
        let (fake, base) = FakeDiscord::start(vec![]).await;
        let dry = client(base).with_dry_run(true);
        let body = json!({"content": "deployed"});
        let m = dry.create_message_mutation("222", &body, "n-1");
        assert_eq!(
            m.to_string(),
            "POST /api/v10/channels/222/messages \
             {\"allowed_mentions\":{\"parse\":[]},\"content\":\"deployed\",\
             \"enforce_nonce\":true,\"nonce\":\"n-1\"}"
        );
        let err = dry.create_message("222", &body, "n-1").await.unwrap_err();
        assert!(err.to_string().contains("DRY_RUN"), "{err}");
        dry.edit_original("1", INTERACTION_TOKEN, &body)
            .await
            .expect("the answer itself is sent");
        let methods: Vec<String> = fake.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["PATCH"]);
    }

    #[tokio::test]
    async fn create_message_sends_nonce_and_bot_auth() {
        let (fake, base) = FakeDiscord::start(vec![]).await;
        client(base)
            .create_message("222", &json!({"content": "deployed"}), "job-42-post")
            .await
            .expect("post");
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, "/api/v10/channels/222/messages");
        assert_eq!(
            reqs[0].authorization.as_deref(),
            Some(format!("Bot {BOT_TOKEN}").as_str())
        );
        assert_eq!(
            reqs[0].body,
            Some(json!({
                "content": "deployed",
                "allowed_mentions": {"parse": []},
                "nonce": "job-42-post",
                "enforce_nonce": true,
            }))
        );
    }

    #[tokio::test]
    async fn create_message_refuses_bad_nonce_and_missing_token() {
        let (fake, base) = FakeDiscord::start(vec![]).await;
        let c = client(base.clone());
        let long = "x".repeat(26);
        for nonce in ["", long.as_str()] {
            let err = c
                .create_message("1", &json!({"content": "x"}), nonce)
                .await
                .expect_err("bad nonce");
            assert!(matches!(err, DiscordError::InvalidRequest(_)));
        }
        let err = DiscordClient::new(base, None)
            .create_message("1", &json!({"content": "x"}), "n")
            .await
            .expect_err("no token");
        assert!(matches!(err, DiscordError::MissingBotToken));
        assert_eq!(err.error_type(), "discord_unauthorized");
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn unauthorized_is_clear_and_never_shows_tokens() {
        // Discord does not echo tokens, but a proxy might: the scrubber must catch it.
        let (_fake, base) = FakeDiscord::start(vec![
            Reply::json(401, json!({"message": format!("401: Unauthorized {BOT_TOKEN}"), "code": 0})),
            Reply::json(
                401,
                json!({"message": format!("Invalid Webhook Token {INTERACTION_TOKEN}"), "code": 50027}),
            ),
        ])
        .await;
        let c = client(base);
        let err = c
            .create_message("222", &json!({"content": "x"}), "n1")
            .await
            .expect_err("401");
        assert_eq!(err.error_type(), "discord_unauthorized");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(text.contains("HTTP 401"), "{text}");
        assert!(text.contains("DISCORD_BOT_TOKEN is invalid"), "{text}");
        assert_no_secrets(&text);
        assert_no_secrets(&format!("{err:?}"));

        let err = c
            .edit_original("111", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect_err("401");
        let text = err.to_string();
        assert!(text.contains("older than 15 minutes"), "{text}");
        assert!(text.contains("code 50027"), "{text}");
        assert_no_secrets(&text);
        assert_no_secrets(&format!("{err:?}"));
        assert_no_secrets(&format!("{c:?}"));
    }

    /// Collects formatted log lines for assertions.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn each_call_logs_status_and_redacted_endpoint() {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (_fake, base) = FakeDiscord::start(vec![Reply::json(
            404,
            json!({"message": "Unknown Webhook", "code": 10015}),
        )])
        .await;
        client(base)
            .edit_original("111", INTERACTION_TOKEN, &json!({"content": "x"}))
            .await
            .expect("edit");

        let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
        let done: Vec<_> = text
            .lines()
            .filter(|l| l.contains("discord call ok"))
            .collect();
        assert_eq!(done.len(), 1, "{text}");
        assert!(done[0].contains("discord_status=200"), "{text}");
        assert!(done[0].contains("discord_attempts=2"), "{text}");
        assert!(
            done[0]
                .contains("discord_endpoint=/api/v10/webhooks/111/[REDACTED]/messages/@original"),
            "{text}"
        );
        assert_no_secrets(&text);
    }

    #[test]
    fn base_path_is_kept_when_joining() {
        for base in [
            "https://discord.com/api/v10",
            "https://discord.com/api/v10/",
            "https://discord.com/api/v10?x=1",
        ] {
            let c = DiscordClient::new(Url::parse(base).expect("url"), None);
            let url = c
                .endpoint_url(&["applications", "1", "commands"])
                .expect("url");
            assert_eq!(
                url.as_str(),
                "https://discord.com/api/v10/applications/1/commands"
            );
        }
        let c = DiscordClient::new(Url::parse("http://proxy.local").expect("url"), None);
        let url = c
            .endpoint_url(&["channels", "a/b", "messages"])
            .expect("url");
        assert_eq!(url.as_str(), "http://proxy.local/channels/a%2Fb/messages");
    }

    #[test]
    fn retry_after_parsing_is_defensive() {
        assert_eq!(
            body_retry_after(br#"{"retry_after": 1.5}"#),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(body_retry_after(br#"{"retry_after": -1}"#), None);
        assert_eq!(body_retry_after(b"<html>"), None);
        assert_eq!(
            body_retry_after(br#"{"retry_after": 1e300}"#),
            Some(Duration::MAX)
        );
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
    }
}
