//! Typed configuration, read once at start-up from the environment and an optional TOML
//! file named by `VALINE_CONFIG`; the environment wins over the file.
//!
//! Every value is parsed into the type the rest of the code uses, so a bad value stops
//! start-up with a message naming the variable (exit code 2) instead of failing later.
//! Variables that are merely missing are allowed (`valine serve` starts with partial
//! configuration) and reported by [`Config::missing`].
//!
//! A value `ssm:<parameter name>` is read from AWS SSM Parameter Store by
//! [`Config::load`] before parsing (the `aws` feature; see [`crate::ssm`]) and kept as a
//! secret. [`Config::from_vars`] stays synchronous and makes no AWS call: there an
//! unresolved `ssm:` value is an error naming its variable.
//!
//! Every variable, with its default and meaning, is listed once in [`vars::VARS`].

pub mod vars;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use secrecy::SecretString;
use url::Url;

use crate::github::RepoSlug;
use crate::store::StoreLocation;
use crate::telemetry::LogFormat;

/// A configuration value that cannot be used; start-up stops with exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

/// Why [`Config::load`] could not produce a configuration; every case is a bad
/// configuration (exit code 2, in Lambda an init error) naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// An `ssm:` value whose parameter is missing or could not be read.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Ssm(#[from] crate::ssm::SsmError),
}

impl LoadError {
    /// The variable at fault.
    pub fn var(&self) -> &str {
        match self {
            LoadError::Invalid(e) => &e.var,
            #[cfg(feature = "aws")]
            LoadError::Ssm(e) => e.var(),
        }
    }
}

fn invalid(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        reason: reason.into(),
    }
}

/// The variables that `Config::missing` reports, with what stops working without them.
const OPTIONAL_BUT_EXPECTED: &[&str] = &[
    "DISCORD_PUBLIC_KEY",
    "DISCORD_APPLICATION_ID",
    "DISCORD_BOT_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_REPO",
    "FRONTEND_BASE_URL",
    "VITE_API_BASE",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub stage: String,
    /// 32 bytes, already checked to be a valid Ed25519 point when parsed by the server.
    pub discord_public_key: Option<String>,
    pub discord_application_id: Option<String>,
    pub discord_bot_token: Option<SecretString>,
    pub discord_guild_id: Option<String>,
    pub discord_status_channel_id: Option<String>,
    pub discord_api_base: Url,
    pub github_token: Option<SecretString>,
    /// GitHub App authentication instead of `github_token` (never both): the App id
    /// (or Client ID), its PEM private key (already checked to parse), and the
    /// installation when given. See [`github_app`](Self::github_app).
    pub github_app_id: Option<String>,
    pub github_app_private_key: Option<SecretString>,
    pub github_app_installation_id: Option<u64>,
    pub github_webhook_secret: Option<SecretString>,
    pub github_repo: Option<RepoSlug>,
    pub github_api_base: Url,
    pub deploy_workflow: String,
    pub diagnose_workflow: Option<String>,
    pub deploy_branch: String,
    pub frontend_base_url: Option<Url>,
    pub vite_api_base: Option<Url>,
    pub verify_frontend_paths: Vec<String>,
    pub verify_api_paths: Vec<String>,
    pub admin_user_ids: BTreeSet<String>,
    pub admin_role_ids: BTreeSet<String>,
    pub deployer_user_ids: BTreeSet<String>,
    pub deployer_role_ids: BTreeSet<String>,
    pub blocked_user_ids: BTreeSet<String>,
    pub allowed_domains: Vec<String>,
    pub safe_local: bool,
    pub dry_run: bool,
    pub auto_verify: bool,
    pub github_sync_settings: bool,
    pub rate_limit_per_minute: u32,
    /// How many jobs one worker runs side by side (`VALINE_WORKER_CONCURRENCY`).
    pub worker_concurrency: usize,
    /// The first retry delay of a failed job, doubled per attempt
    /// (`VALINE_JOB_BACKOFF_MS`, default 2 s).
    pub job_backoff: std::time::Duration,
    pub store: StoreLocation,
    pub listen: SocketAddr,
    /// Where `serve` answers `GET /metrics` (`VALINE_METRICS_LISTEN`); off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// The SQS queue jobs travel over (`VALINE_QUEUE_URL`); the store's own queue when
    /// unset. See `docs/design.md#jobs-over-sqs`.
    pub queue_url: Option<String>,
    /// `VALINE_LOG`, when set; each edge has its own default.
    pub log: Option<String>,
    /// `VALINE_LOG_FORMAT`, when set; otherwise chosen by where the lines go.
    pub log_format: Option<LogFormat>,
    missing: Vec<&'static str>,
    /// Variable → SSM parameter, for each variable whose value was read from SSM.
    ssm_parameters: BTreeMap<String, String>,
    /// The values read from SSM, whatever variable they fill: all are secrets.
    ssm_secrets: Vec<SecretString>,
}

/// Raw key/value pairs, upper-case keys; the environment layered over the file.
struct Source {
    values: HashMap<String, String>,
    /// Every variable asked for, so a test can hold the list of known variables to
    /// what the parser really reads.
    read: RefCell<BTreeSet<String>>,
}

impl Source {
    fn new(values: HashMap<String, String>) -> Self {
        Source {
            values,
            read: RefCell::default(),
        }
    }

    fn get(&self, var: &str) -> Result<Option<&str>, ConfigError> {
        self.read.borrow_mut().insert(var.to_owned());
        match self.values.get(var).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.starts_with("ssm:") => Err(invalid(var, UNRESOLVED_SSM)),
            Some(v) => Ok(Some(v)),
        }
    }

    fn string(&self, var: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.get(var)?.unwrap_or(default).to_owned())
    }

    fn bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var)? {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(var, format!("expected true or false, got {v:?}"))),
            },
        }
    }

    fn secret(&self, var: &str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.get(var)?.map(|v| SecretString::from(v.to_owned())))
    }

    fn snowflake(&self, var: &str) -> Result<Option<String>, ConfigError> {
        self.get(var)?
            .map(|v| parse_snowflake(v).map_err(|reason| invalid(var, reason)))
            .transpose()
    }

    fn snowflakes(&self, var: &str) -> Result<BTreeSet<String>, ConfigError> {
        list(self.get(var)?)
            .map(|v| parse_snowflake(&v).map_err(|reason| invalid(var, reason)))
            .collect()
    }

    fn url(&self, var: &str) -> Result<Option<Url>, ConfigError> {
        self.get(var)?
            .map(|v| parse_http_url(v).map_err(|reason| invalid(var, reason)))
            .transpose()
    }

    fn paths(&self, var: &str, default: &str) -> Result<Vec<String>, ConfigError> {
        let paths: Vec<String> = list(Some(self.get(var)?.unwrap_or(default))).collect();
        if let Some(bad) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(invalid(
                var,
                format!("paths must start with /, got {bad:?}"),
            ));
        }
        Ok(paths)
    }
}

/// Why an `ssm:` value reached the parser unresolved.
#[cfg(feature = "aws")]
const UNRESOLVED_SSM: &str = "ssm: values are read by Config::load, and an SSM parameter's own \
                              value cannot be another ssm: reference";
#[cfg(not(feature = "aws"))]
const UNRESOLVED_SSM: &str = "ssm: parameters are read only by a build with AWS support \
                              (feature `aws`), which this binary lacks";

fn list(value: Option<&str>) -> impl Iterator<Item = String> + '_ {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_snowflake(v: &str) -> Result<String, String> {
    if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v.to_owned())
    } else {
        Err(format!("expected a numeric Discord id, got {v:?}"))
    }
}

fn parse_http_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http(s) URL with a host".into());
    }
    Ok(url)
}

/// An SQS queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or a local
/// endpoint's `http://` form), which only a build with the AWS adapters can use.
fn parse_queue_url(v: &str) -> Result<String, String> {
    if cfg!(not(feature = "aws")) {
        return Err(
            "jobs over SQS need a build with AWS support (feature `aws`), which \
                    this binary lacks"
                .into(),
        );
    }
    let url = parse_http_url(v)?;
    if url
        .path_segments()
        .is_none_or(|s| s.filter(|p| !p.is_empty()).count() < 2)
    {
        return Err(format!(
            "expected a queue URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/valine-jobs, got {v:?}"
        ));
    }
    Ok(v.trim().to_owned())
}

/// A listening address: `host:port` with an IP address, or `localhost:port`, which
/// means the IPv4 loopback (no name lookup, so it cannot resolve to something else).
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    let usage = || {
        format!(
            "expected host:port such as 127.0.0.1:8080, 0.0.0.0:8080 or localhost:8080, got {raw:?}"
        )
    };
    if let Some(port) = raw.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| usage())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    raw.parse::<SocketAddr>().map_err(|_| usage())
}

/// Variable → SSM parameter, for every `ssm:` value among `values`.
fn ssm_references(values: &HashMap<String, String>) -> BTreeMap<String, String> {
    values
        .iter()
        .filter_map(|(var, value)| {
            let parameter = value.trim().strip_prefix("ssm:")?;
            Some((var.clone(), parameter.trim().to_owned()))
        })
        .collect()
}

/// `GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY` and `GITHUB_APP_INSTALLATION_ID`: all or
/// none of the first two, never with `GITHUB_TOKEN`, and a key that is an RSA PEM key.
#[allow(clippy::type_complexity)]
fn github_app_vars(
    src: &Source,
) -> Result<(Option<String>, Option<SecretString>, Option<u64>), ConfigError> {
    let app_id = src.get("GITHUB_APP_ID")?;
    let key = src.get("GITHUB_APP_PRIVATE_KEY")?;
    let installation = src.get("GITHUB_APP_INSTALLATION_ID")?;
    if app_id.is_none() && key.is_none() && installation.is_none() {
        return Ok((None, None, None));
    }
    if src.get("GITHUB_TOKEN")?.is_some() {
        return Err(invalid(
            "GITHUB_TOKEN",
            "GITHUB_TOKEN and GITHUB_APP_ID are both set; use one way to authenticate to GitHub",
        ));
    }
    let app_id =
        app_id.ok_or_else(|| invalid("GITHUB_APP_ID", "required with GITHUB_APP_PRIVATE_KEY"))?;
    if !app_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err(invalid(
            "GITHUB_APP_ID",
            "expected the App's numeric id (or its Client ID)",
        ));
    }
    let key =
        key.ok_or_else(|| invalid("GITHUB_APP_PRIVATE_KEY", "required with GITHUB_APP_ID"))?;
    crate::github::app_auth::AppKey::from_pem(key)
        .map_err(|e| invalid("GITHUB_APP_PRIVATE_KEY", e.to_string()))?;
    let installation = installation
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                invalid(
                    "GITHUB_APP_INSTALLATION_ID",
                    format!("expected a numeric installation id, got {v:?}"),
                )
            })
        })
        .transpose()?;
    Ok((
        Some(app_id.to_owned()),
        Some(SecretString::from(key.to_owned())),
        installation,
    ))
}

/// Converts a TOML table's scalar (or array of scalars) into the string form the
/// environment would carry.
fn toml_to_string(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(toml_to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

impl Config {
    /// Reads the process environment (and the file it names), without SSM: an `ssm:`
    /// value is an error. The edges use [`load`](Self::load).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads the process environment (and the file it names), resolving `ssm:` values
    /// first. What every edge calls once at start-up.
    pub async fn load() -> Result<Self, LoadError> {
        Self::load_vars(std::env::vars().collect()).await
    }

    /// Like [`from_vars`](Self::from_vars), but every `ssm:` value among the pairs and
    /// the file's keys is first read from SSM Parameter Store (one batched read; no AWS
    /// call when there is none) and kept as a secret.
    pub async fn load_vars(env: HashMap<String, String>) -> Result<Self, LoadError> {
        Self::load_values(Self::merge(env)?).await
    }

    /// [`load_vars`](Self::load_vars) after the file and the environment are merged.
    async fn load_values(values: HashMap<String, String>) -> Result<Self, LoadError> {
        let ssm_parameters = ssm_references(&values);
        #[cfg(feature = "aws")]
        let values = crate::ssm::resolve_ssm(values).await?;
        let ssm_secrets = ssm_parameters
            .keys()
            .filter_map(|var| values.get(var))
            .filter(|v| !v.trim().is_empty())
            .map(|v| SecretString::from(v.clone()))
            .collect();
        let mut config = Self::from_source(&Source::new(values))?;
        config.ssm_parameters = ssm_parameters;
        config.ssm_secrets = ssm_secrets;
        Ok(config)
    }

    /// Builds the configuration from environment-like pairs; `VALINE_CONFIG` among
    /// them names an optional TOML file whose lower-case keys the pairs override.
    pub fn from_vars(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_source(&Source::new(Self::merge(env)?))
    }

    /// The file's keys (upper-cased) with `env` layered over them.
    fn merge(env: HashMap<String, String>) -> Result<HashMap<String, String>, ConfigError> {
        let mut values = Self::file_values(&env)?;
        values.extend(env);
        Ok(values)
    }

    /// The keys (upper-cased) of the file `VALINE_CONFIG` names, if any. A key that is
    /// not a variable is an error naming the closest one: a typo would otherwise leave
    /// the setting silently at its default.
    fn file_values(env: &HashMap<String, String>) -> Result<HashMap<String, String>, ConfigError> {
        let mut values = HashMap::new();
        if let Some(path) = env.get("VALINE_CONFIG").filter(|p| !p.trim().is_empty()) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("VALINE_CONFIG", format!("cannot read {path}: {e}")))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| invalid("VALINE_CONFIG", format!("{path} is not valid TOML: {e}")))?;
            for (key, value) in &table {
                let value = toml_to_string(value).ok_or_else(|| {
                    invalid("VALINE_CONFIG", format!("key {key} must be a plain value"))
                })?;
                let name = key.to_ascii_uppercase();
                if !vars::file_key(&name) {
                    let hint = vars::closest_key(key)
                        .map(|known| format!(" — did you mean {known:?}?"))
                        .unwrap_or_default();
                    return Err(invalid(
                        "VALINE_CONFIG",
                        format!("unknown key {key:?} in {path}{hint}"),
                    ));
                }
                values.insert(name, value);
            }
        }
        Ok(values)
    }

    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let discord_public_key = src
            .get("DISCORD_PUBLIC_KEY")?
            .map(|v| {
                if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(v.to_ascii_lowercase())
                } else {
                    Err(invalid("DISCORD_PUBLIC_KEY", "expected 64 hex characters"))
                }
            })
            .transpose()?;
        let github_repo = src
            .get("GITHUB_REPO")?
            .map(|v| v.parse::<RepoSlug>().map_err(|e| invalid("GITHUB_REPO", e)))
            .transpose()?;
        let required_url = |var: &str, default: &str| -> Result<Url, ConfigError> {
            parse_http_url(src.get(var)?.unwrap_or(default)).map_err(|reason| invalid(var, reason))
        };
        let rate_limit_per_minute = match src.get("RATE_LIMIT_PER_MINUTE")? {
            None => 10,
            Some(v) => v.parse::<u32>().map_err(|_| {
                invalid(
                    "RATE_LIMIT_PER_MINUTE",
                    format!("expected a whole number, got {v:?}"),
                )
            })?,
        };
        let worker_concurrency = match src.get("VALINE_WORKER_CONCURRENCY")? {
            None => 8,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "VALINE_WORKER_CONCURRENCY",
                        format!("expected a whole number from 1 to 256, got {v:?}"),
                    )
                })?,
        };
        let job_backoff = match src.get("VALINE_JOB_BACKOFF_MS")? {
            None => std::time::Duration::from_secs(2),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|ms| (100..=60_000).contains(ms))
                .map(std::time::Duration::from_millis)
                .ok_or_else(|| {
                    invalid(
                        "VALINE_JOB_BACKOFF_MS",
                        format!("expected milliseconds from 100 to 60000, got {v:?}"),
                    )
                })?,
        };
        let store = match src
            .string("VALINE_STORE", "sqlite:./valine.db")?
            .parse::<StoreLocation>()
            .map_err(|e| invalid("VALINE_STORE", e))?
        {
            // Absolute from here on, so every message about the file (start-up, store
            // errors) names the one file an operator should look at, whatever the
            // working directory.
            StoreLocation::SqliteFile(path) => {
                StoreLocation::SqliteFile(std::path::absolute(&path).unwrap_or(path))
            }
            other => other,
        };
        let listen = parse_listen(&src.string("VALINE_LISTEN", "127.0.0.1:8080")?)
            .map_err(|e| invalid("VALINE_LISTEN", e))?;
        let metrics_listen = src
            .get("VALINE_METRICS_LISTEN")?
            .map(|raw| parse_listen(raw).map_err(|e| invalid("VALINE_METRICS_LISTEN", e)))
            .transpose()?;
        let queue_url = src
            .get("VALINE_QUEUE_URL")?
            .map(|raw| parse_queue_url(raw).map_err(|e| invalid("VALINE_QUEUE_URL", e)))
            .transpose()?;
        let allowed_domains = list(src.get("ALLOWED_DOMAINS")?)
            .map(|d| {
                let d = d.to_ascii_lowercase();
                let bare = d.strip_prefix("*.").unwrap_or(&d);
                if bare.is_empty()
                    || bare.contains(['/', ':', '*', '@', ' '])
                    || bare.starts_with('.')
                {
                    Err(invalid("ALLOWED_DOMAINS", format!("not a domain: {d:?}")))
                } else {
                    Ok(d)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let non_empty = |var: &str, default: &str| -> Result<String, ConfigError> {
            let v = src.string(var, default)?;
            if v.contains(char::is_whitespace) && var == "DEPLOY_BRANCH" {
                return Err(invalid(var, "a branch name has no spaces"));
            }
            Ok(v)
        };

        let github_app = github_app_vars(src)?;
        let mut config = Config {
            stage: src.string("STAGE", "dev")?,
            discord_public_key,
            discord_application_id: src.snowflake("DISCORD_APPLICATION_ID")?,
            discord_bot_token: src.secret("DISCORD_BOT_TOKEN")?,
            discord_guild_id: src.snowflake("DISCORD_GUILD_ID")?,
            discord_status_channel_id: src.snowflake("DISCORD_STATUS_CHANNEL_ID")?,
            discord_api_base: required_url("DISCORD_API_BASE", "https://discord.com/api/v10")?,
            github_token: src.secret("GITHUB_TOKEN")?,
            github_app_id: github_app.0,
            github_app_private_key: github_app.1,
            github_app_installation_id: github_app.2,
            github_webhook_secret: src.secret("GITHUB_WEBHOOK_SECRET")?,
            github_repo,
            github_api_base: required_url("GITHUB_API_BASE", "https://api.github.com")?,
            deploy_workflow: non_empty("DEPLOY_WORKFLOW", "client-deploy.yml")?,
            diagnose_workflow: src.get("DIAGNOSE_WORKFLOW")?.map(str::to_owned),
            deploy_branch: non_empty("DEPLOY_BRANCH", "main")?,
            frontend_base_url: src.url("FRONTEND_BASE_URL")?,
            vite_api_base: src.url("VITE_API_BASE")?,
            verify_frontend_paths: src.paths("VERIFY_FRONTEND_PATHS", "/,/index.html")?,
            verify_api_paths: src.paths("VERIFY_API_PATHS", "/health,/hello")?,
            admin_user_ids: src.snowflakes("ADMIN_USER_IDS")?,
            admin_role_ids: src.snowflakes("ADMIN_ROLE_IDS")?,
            deployer_user_ids: src.snowflakes("DEPLOYER_USER_IDS")?,
            deployer_role_ids: src.snowflakes("DEPLOYER_ROLE_IDS")?,
            blocked_user_ids: src.snowflakes("BLOCKED_USER_IDS")?,
            allowed_domains,
            safe_local: src.bool("SAFE_LOCAL", false)?,
            dry_run: src.bool("DRY_RUN", false)?,
            auto_verify: src.bool("AUTO_VERIFY", true)?,
            github_sync_settings: src.bool("GITHUB_SYNC_SETTINGS", false)?,
            rate_limit_per_minute,
            worker_concurrency,
            job_backoff,
            store,
            listen,
            metrics_listen,
            queue_url,
            log: src.get("VALINE_LOG")?.map(str::to_owned),
            log_format: src
                .get("VALINE_LOG_FORMAT")?
                .map(|v| v.parse().map_err(|e| invalid("VALINE_LOG_FORMAT", e)))
                .transpose()?,
            missing: Vec::new(),
            ssm_parameters: BTreeMap::new(),
            ssm_secrets: Vec::new(),
        };
        config.missing = OPTIONAL_BUT_EXPECTED
            .iter()
            .copied()
            .filter(|var| src.get(var).ok().flatten().is_none())
            // A GitHub App stands in for the token.
            .filter(|var| !(*var == "GITHUB_TOKEN" && config.github_app_id.is_some()))
            .collect();
        Ok(config)
    }

    /// The GitHub App credentials, parsed, when the App is configured.
    pub fn github_app(&self) -> Option<crate::github::app_auth::AppCredentials> {
        use secrecy::ExposeSecret;
        let app_id = self.github_app_id.clone()?;
        let key = self.github_app_private_key.as_ref()?;
        // Checked when the configuration was read.
        let key = crate::github::app_auth::AppKey::from_pem(key.expose_secret()).ok()?;
        Some(crate::github::app_auth::AppCredentials {
            app_id,
            key,
            installation_id: self.github_app_installation_id,
        })
    }

    /// The expected variables that are not set, for one WARN line each at start-up.
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }

    /// What [`crate::telemetry::init`] needs from the configuration.
    pub fn log_settings(&self) -> crate::telemetry::LogSettings<'_> {
        crate::telemetry::LogSettings {
            filter: self.log.as_deref(),
            format: self.log_format,
            stage: &self.stage,
        }
    }

    /// The variables read from SSM, each with its parameter name.
    pub fn ssm_parameters(&self) -> &BTreeMap<String, String> {
        &self.ssm_parameters
    }

    /// Every secret value, so the log layer can scrub them from any text: the secret
    /// variables and every value read from SSM.
    pub fn secret_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut values: Vec<String> = [
            &self.discord_bot_token,
            &self.github_token,
            &self.github_webhook_secret,
            &self.github_app_private_key,
        ]
        .into_iter()
        .flatten()
        .chain(&self.ssm_secrets)
        .map(|s| s.expose_secret().to_owned())
        .collect();
        values.sort();
        values.dedup();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_missing_variables_are_listed() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.stage, "dev");
        assert_eq!(config.deploy_workflow, "client-deploy.yml");
        assert_eq!(config.deploy_branch, "main");
        assert_eq!(config.verify_frontend_paths, vec!["/", "/index.html"]);
        assert_eq!(config.verify_api_paths, vec!["/health", "/hello"]);
        assert_eq!(config.rate_limit_per_minute, 10);
        assert!(config.auto_verify && !config.dry_run && !config.safe_local);
        let StoreLocation::SqliteFile(path) = &config.store else {
            panic!("{:?}", config.store)
        };
        assert!(
            path.is_absolute() && path.ends_with("valine.db"),
            "{path:?}"
        );
        assert!(!path.to_string_lossy().contains("/./"), "{path:?}");
        assert_eq!(config.log, None);
        assert_eq!(config.log_format, None);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.metrics_listen, None);
        assert_eq!(
            config.discord_api_base.as_str(),
            "https://discord.com/api/v10"
        );
        assert!(config.missing().contains(&"DISCORD_PUBLIC_KEY"));
        assert!(config.missing().contains(&"GITHUB_TOKEN"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("DISCORD_PUBLIC_KEY", "abc"),
            ("GITHUB_REPO", "not a repo"),
            ("VALINE_STORE", "postgres://x"),
            ("FRONTEND_BASE_URL", "ftp://x"),
            ("RATE_LIMIT_PER_MINUTE", "-1"),
            ("VALINE_WORKER_CONCURRENCY", "0"),
            ("DRY_RUN", "maybe"),
            ("ADMIN_USER_IDS", "12,abc"),
            ("VALINE_LISTEN", "nowhere"),
            ("VALINE_LISTEN", "localhost:http"),
            ("VALINE_LOG_FORMAT", "yaml"),
            ("VALINE_METRICS_LISTEN", "9090"),
            ("VERIFY_API_PATHS", "health"),
            ("GITHUB_TOKEN", "ssm:/valine/token"),
        ];
        for (var, value) in cases {
            let err = Config::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn github_app_settings_are_checked_together() {
        let key = include_str!("github/fixtures/test-app-key.pem");
        let config = Config::from_vars(vars(&[
            ("GITHUB_APP_ID", "12345"),
            ("GITHUB_APP_PRIVATE_KEY", key),
        ]))
        .unwrap();
        let app = config.github_app().unwrap();
        assert_eq!((app.app_id.as_str(), app.installation_id), ("12345", None));
        assert!(!config.missing().contains(&"GITHUB_TOKEN"));
        assert!(!format!("{config:?}").contains("PRIVATE KEY-----\nMII"));
        assert!(
            config
                .secret_values()
                .iter()
                .any(|s| s.contains("BEGIN RSA"))
        );

        let err = |pairs: &[(&str, &str)]| Config::from_vars(vars(pairs)).unwrap_err();
        let both = err(&[
            ("GITHUB_TOKEN", "ghp_x"),
            ("GITHUB_APP_ID", "12345"),
            ("GITHUB_APP_PRIVATE_KEY", key),
        ]);
        assert!(
            both.to_string().contains("GITHUB_TOKEN") && both.to_string().contains("GITHUB_APP_ID"),
            "{both}"
        );
        assert_eq!(
            err(&[("GITHUB_APP_ID", "12345")]).var,
            "GITHUB_APP_PRIVATE_KEY"
        );
        assert_eq!(err(&[("GITHUB_APP_PRIVATE_KEY", key)]).var, "GITHUB_APP_ID");
        let not_rsa = err(&[
            ("GITHUB_APP_ID", "12345"),
            ("GITHUB_APP_PRIVATE_KEY", "ghp_not_a_key"),
        ]);
        assert_eq!(not_rsa.var, "GITHUB_APP_PRIVATE_KEY");
        assert!(!not_rsa.to_string().contains("ghp_not_a_key"));
        let bad_installation = err(&[
            ("GITHUB_APP_ID", "12345"),
            ("GITHUB_APP_PRIVATE_KEY", key),
            ("GITHUB_APP_INSTALLATION_ID", "first"),
        ]);
        assert_eq!(bad_installation.var, "GITHUB_APP_INSTALLATION_ID");
    }

    #[test]
    fn environment_wins_over_the_file_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valine.toml");
        std::fs::write(
            &path,
            "stage = \"prod\"\ngithub_repo = \"o/r\"\nrate_limit_per_minute = 3\n\
             admin_user_ids = [\"1\", \"2\"]\ngithub_token = \"ghp_filesecret\"\n",
        )
        .unwrap();
        let config = Config::from_vars(vars(&[
            ("VALINE_CONFIG", path.to_str().unwrap()),
            ("STAGE", "staging"),
        ]))
        .unwrap();
        assert_eq!(config.stage, "staging");
        assert_eq!(config.github_repo.as_ref().unwrap().to_string(), "o/r");
        assert_eq!(config.rate_limit_per_minute, 3);
        assert_eq!(config.admin_user_ids.len(), 2);
        assert!(!format!("{config:?}").contains("ghp_filesecret"));
        assert_eq!(config.secret_values(), vec!["ghp_filesecret".to_string()]);
    }

    #[test]
    fn listen_takes_an_ip_or_localhost() {
        let config = Config::from_vars(vars(&[
            ("VALINE_LISTEN", "localhost:9000"),
            ("VALINE_METRICS_LISTEN", "0.0.0.0:9090"),
        ]))
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.metrics_listen.unwrap().to_string(), "0.0.0.0:9090");
        let err = Config::from_vars(vars(&[("VALINE_LISTEN", "localhost")])).unwrap_err();
        assert_eq!(err.var, "VALINE_LISTEN");
        assert!(err.reason.contains("localhost:8080"), "{err}");
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
    }

    #[test]
    fn log_format_is_read() {
        let config = Config::from_vars(vars(&[
            ("VALINE_LOG_FORMAT", "Text"),
            ("VALINE_LOG", "debug"),
        ]))
        .unwrap();
        assert_eq!(config.log_format, Some(LogFormat::Text));
        assert_eq!(config.log.as_deref(), Some("debug"));
    }

    #[test]
    fn an_unknown_file_key_names_the_file_and_the_closest_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valine.toml");
        std::fs::write(&path, "stage = \"prod\"\ngithub_rep = \"o/r\"\n").unwrap();
        let err =
            Config::from_vars(vars(&[("VALINE_CONFIG", path.to_str().unwrap())])).unwrap_err();
        assert_eq!(err.var, "VALINE_CONFIG");
        assert_eq!(
            err.reason,
            format!(
                "unknown key \"github_rep\" in {} — did you mean \"github_repo\"?",
                path.display()
            )
        );
        std::fs::write(&path, "valine_config = \"/other.toml\"\n").unwrap();
        let err =
            Config::from_vars(vars(&[("VALINE_CONFIG", path.to_str().unwrap())])).unwrap_err();
        assert!(
            err.reason.starts_with("unknown key \"valine_config\""),
            "{err}"
        );
    }

    /// Every variable the parser reads is in the table, and every variable in the
    /// table is read (`VALINE_CONFIG` names the file, before the parser runs), so `valine config`
    /// and the example files cannot drift from the code.
    #[test]
    fn the_table_lists_exactly_the_variables_the_parser_reads() {
        let source = Source::new(HashMap::new());
        Config::from_source(&source).unwrap();
        let read = source.read.into_inner();
        for name in &read {
            assert!(
                vars::find(name).is_some(),
                "{name} is read but not in vars::VARS"
            );
        }
        for var in vars::VARS {
            let elsewhere = ["VALINE_CONFIG"];
            assert!(
                read.contains(var.name) || elsewhere.contains(&var.name),
                "{} is listed but never read",
                var.name
            );
        }
    }

    /// A default in the table is the parser's default: writing it changes nothing.
    #[test]
    fn table_defaults_are_the_parser_defaults() {
        let unset = format!("{:?}", Config::from_vars(vars(&[])).unwrap());
        for var in vars::VARS {
            if let vars::Fallback::Value(default) = var.fallback {
                let set = Config::from_vars(vars(&[(var.name, default)])).unwrap();
                assert_eq!(format!("{set:?}"), unset, "{}={default:?}", var.name);
            }
        }
    }

    /// `valine.example.toml` and `.env.example` mention every variable (the file
    /// cannot set `VALINE_CONFIG`), and the example TOML parses with every key known.
    #[test]
    fn the_example_files_list_every_variable() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let toml = std::fs::read_to_string(root.join("valine.example.toml")).unwrap();
        let env = std::fs::read_to_string(root.join(".env.example")).unwrap();
        let mentions = |text: &str, name: &str| {
            text.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{name} =")) || line.starts_with(&format!("{name}="))
            })
        };
        for var in vars::VARS {
            assert!(
                mentions(&env, var.name),
                "{} missing from .env.example",
                var.name
            );
            if var.name != "VALINE_CONFIG" {
                let key = var.name.to_ascii_lowercase();
                assert!(
                    mentions(&toml, &key),
                    "{key} missing from valine.example.toml"
                );
            }
        }
        // Every example value is a valid one: the files uncommented load as they stand
        // (`ssm:` values aside, which need SSM, the SQS queue in a build without AWS,
        // and the GitHub App settings, the alternative to GITHUB_TOKEN: loaded below).
        let usable = |line: &&str| {
            let upper = line.to_ascii_uppercase();
            !line.contains("ssm:")
                && !upper.starts_with("GITHUB_APP_")
                && (cfg!(feature = "aws") || !upper.contains("VALINE_QUEUE_URL"))
        };
        let uncommented = |text: &str, separator: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix("# "))
                .filter(|l| {
                    l.split_once(separator)
                        .is_some_and(|(k, _)| !k.contains(' '))
                })
                .filter(usable)
                .map(str::to_owned)
                .collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valine.toml");
        let keys = uncommented(&toml, " = ");
        assert!(keys.len() > 30, "{keys:?}");
        std::fs::write(&path, keys.join("\n")).unwrap();
        Config::from_vars(vars(&[("VALINE_CONFIG", path.to_str().unwrap())])).unwrap();
        let pairs: HashMap<String, String> = uncommented(&env, "=")
            .iter()
            .filter_map(|l| l.split_once('='))
            .filter(|(name, _)| *name != "VALINE_CONFIG")
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        assert!(pairs.len() > 30, "{pairs:?}");
        Config::from_vars(pairs.clone()).unwrap();
        // The App settings instead of the token (the key is a secret: the test key).
        let mut app = pairs;
        app.remove("GITHUB_TOKEN");
        for line in env.lines().filter_map(|l| l.strip_prefix("# ")) {
            if let Some((name, value)) = line.split_once('=')
                && name.starts_with("GITHUB_APP_")
                && !value.starts_with("ssm:")
            {
                app.insert(name.to_owned(), value.to_owned());
            }
        }
        assert!(app.contains_key("GITHUB_APP_ID"), "{app:?}");
        app.insert(
            "GITHUB_APP_PRIVATE_KEY".to_owned(),
            include_str!("github/fixtures/test-app-key.pem").to_owned(),
        );
        Config::from_vars(app).unwrap();
    }

    #[tokio::test]
    async fn inspect_shows_values_sources_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valine.toml");
        std::fs::write(
            &path,
            "stage = \"prod\"\ngithub_token = \"ghp_filesecret\"\ndeploy_branch = \"release\"\n",
        )
        .unwrap();
        let (listed, loaded) = Config::inspect(vars(&[
            ("VALINE_CONFIG", path.to_str().unwrap()),
            ("DEPLOY_BRANCH", "trunk"),
            ("GITHUB_WEBHOOK_SECRET", "whsec"),
        ]))
        .await;
        loaded.unwrap();
        let get = |name: &str| listed.iter().find(|e| e.var.name == name).unwrap().clone();
        assert_eq!(get("STAGE").shown.as_deref(), Some("prod"));
        assert_eq!(get("STAGE").origin, vars::Origin::File);
        assert_eq!(get("DEPLOY_BRANCH").shown.as_deref(), Some("trunk"));
        assert_eq!(get("DEPLOY_BRANCH").origin, vars::Origin::Environment);
        assert_eq!(get("GITHUB_TOKEN").shown.as_deref(), Some(vars::SET));
        assert_eq!(
            get("GITHUB_WEBHOOK_SECRET").shown.as_deref(),
            Some(vars::SET)
        );
        assert_eq!(get("RATE_LIMIT_PER_MINUTE").shown.as_deref(), Some("10"));
        assert_eq!(get("RATE_LIMIT_PER_MINUTE").origin, vars::Origin::Default);
        assert_eq!(get("GITHUB_REPO").shown, None);
        assert_eq!(listed.len(), vars::VARS.len());
        assert!(!format!("{listed:?}").contains("ghp_filesecret"));

        let (listed, loaded) = Config::inspect(vars(&[("RATE_LIMIT_PER_MINUTE", "lots")])).await;
        assert_eq!(loaded.unwrap_err().var(), "RATE_LIMIT_PER_MINUTE");
        assert_eq!(listed.len(), vars::VARS.len());
    }
}
