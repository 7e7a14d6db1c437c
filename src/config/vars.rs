//! The variables Valine reads, in one table: their defaults, meaning and whether they
//! are secrets. The table drives `valine config`, the check of the file's keys (an
//! unknown key names the closest known one), and the tests that keep
//! `valine.example.toml` and `.env.example` in step with it.

use std::collections::{BTreeMap, HashMap};

use super::{Config, LoadError};

/// What a variable is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Unset means off, or missing (`valine serve` warns about the expected ones).
    Unset,
    /// This value, exactly as if it had been written.
    Value(&'static str),
    /// Decided at run time, as described.
    Decided(&'static str),
}

/// One configuration variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub fallback: Fallback,
    /// Never shown: logs, `valine config` and `Debug` output say only whether it is set.
    pub secret: bool,
    pub meaning: &'static str,
}

const fn var(name: &'static str, fallback: Fallback, meaning: &'static str) -> Var {
    Var {
        name,
        fallback,
        secret: false,
        meaning,
    }
}

const fn secret(name: &'static str, meaning: &'static str) -> Var {
    Var {
        name,
        fallback: Fallback::Unset,
        secret: true,
        meaning,
    }
}

use Fallback::{Decided, Unset, Value};

/// Every variable, in the order the example files list them.
pub const VARS: &[Var] = &[
    var(
        "STAGE",
        Value("dev"),
        "deployment stage; in logs, /status and /healthz",
    ),
    var(
        "DISCORD_PUBLIC_KEY",
        Unset,
        "application public key, 64 hex characters (Ed25519)",
    ),
    var(
        "DISCORD_APPLICATION_ID",
        Unset,
        "application id (edits of deferred replies, registration)",
    ),
    secret(
        "DISCORD_BOT_TOKEN",
        "bot token (registration, channel posts)",
    ),
    var(
        "DISCORD_GUILD_ID",
        Unset,
        "register commands in this guild and refuse interactions from any other guild",
    ),
    var(
        "DISCORD_STATUS_CHANNEL_ID",
        Unset,
        "channel for deploy notifications",
    ),
    var(
        "DISCORD_API_BASE",
        Value("https://discord.com/api/v10"),
        "Discord's API, for tests and proxies",
    ),
    secret(
        "GITHUB_TOKEN",
        "personal access token or installation token",
    ),
    secret(
        "GITHUB_WEBHOOK_SECRET",
        "webhook HMAC secret; two comma-separated secrets are both accepted while you rotate it",
    ),
    var(
        "GITHUB_APP_ID",
        Unset,
        "GitHub App id: authenticate as the App instead of with GITHUB_TOKEN",
    ),
    secret(
        "GITHUB_APP_PRIVATE_KEY",
        "the GitHub App's private key (PEM)",
    ),
    var(
        "GITHUB_APP_INSTALLATION_ID",
        Unset,
        "the App's installation; found from GITHUB_REPO when unset",
    ),
    var("GITHUB_REPO", Unset, "owner/name"),
    var(
        "GITHUB_API_BASE",
        Value("https://api.github.com"),
        "GitHub Enterprise Server (https://host/api/v3) and tests",
    ),
    var(
        "DEPLOY_WORKFLOW",
        Value("client-deploy.yml"),
        "file name, numeric id, or display name",
    ),
    var(
        "DIAGNOSE_WORKFLOW",
        Unset,
        "optional workflow for /diagnose to dispatch",
    ),
    var(
        "DEPLOY_BRANCH",
        Value("main"),
        "branch whose runs count as deployments",
    ),
    var(
        "FRONTEND_BASE_URL",
        Unset,
        "frontend URL (a /set-frontend value overrides it)",
    ),
    var(
        "VITE_API_BASE",
        Unset,
        "API base URL (a /set-api-base value overrides it)",
    ),
    var(
        "VERIFY_FRONTEND_PATHS",
        Value("/,/index.html"),
        "paths checked on the frontend",
    ),
    var(
        "VERIFY_API_PATHS",
        Value("/health,/hello"),
        "paths checked on the API",
    ),
    var(
        "ADMIN_USER_IDS",
        Value(""),
        "comma list of Discord user ids; empty means nobody is admin",
    ),
    var(
        "ADMIN_ROLE_IDS",
        Value(""),
        "comma list of Discord role ids whose members are admins",
    ),
    var(
        "DEPLOYER_USER_IDS",
        Value(""),
        "may run /deploy-client (admins may too)",
    ),
    var(
        "DEPLOYER_ROLE_IDS",
        Value(""),
        "roles that may run /deploy-client",
    ),
    var(
        "BLOCKED_USER_IDS",
        Value(""),
        "users refused everything (in addition to /block)",
    ),
    var(
        "ALLOWED_DOMAINS",
        Value(""),
        "allowlist for probe targets: example.com, *.example.com (also the apex)",
    ),
    var(
        "SAFE_LOCAL",
        Value("false"),
        "allow loopback/private probe targets and plain http (development only)",
    ),
    var(
        "DRY_RUN",
        Value("false"),
        "no dispatches, repo writes or channel posts",
    ),
    var(
        "AUTO_VERIFY",
        Value("true"),
        "verify automatically when a deploy run completes",
    ),
    var(
        "GITHUB_SYNC_SETTINGS",
        Value("false"),
        "/set-* also write the repo variable or secret",
    ),
    var(
        "RATE_LIMIT_PER_MINUTE",
        Value("10"),
        "commands and button presses per user per 60 s window (0 turns it off)",
    ),
    var(
        "VALINE_WORKER_CONCURRENCY",
        Value("8"),
        "jobs one worker runs side by side (1 to 256)",
    ),
    var(
        "VALINE_JOB_BACKOFF_MS",
        Value("2000"),
        "first retry delay of a failed job in ms (100 to 60000), doubled per attempt",
    ),
    var(
        "VALINE_STORE",
        Value("sqlite:./valine.db"),
        "sqlite:<path>, sqlite::memory:, or dynamodb:<table>",
    ),
    var(
        "VALINE_QUEUE_URL",
        Unset,
        "SQS queue URL: jobs travel over SQS instead of the store's own queue",
    ),
    var(
        "VALINE_LISTEN",
        Value("127.0.0.1:8080"),
        "server address, host:port or localhost:port (serve --listen overrides)",
    ),
    var(
        "VALINE_METRICS_LISTEN",
        Unset,
        "address of GET /metrics in serve, e.g. 127.0.0.1:9090; off when unset",
    ),
    var(
        "VALINE_LOG",
        Decided("info; warn for sub-commands other than serve and lambda"),
        "log filter, RUST_LOG syntax",
    ),
    var(
        "VALINE_LOG_FORMAT",
        Decided("text on a terminal, else json; always json under Lambda"),
        "json or text",
    ),
    var(
        "VALINE_CONFIG",
        Unset,
        "a TOML file setting these keys in lower case; the environment wins over it",
    ),
];

/// The variable named `name` (upper case).
pub fn find(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// Whether a key may appear in the TOML file: every variable but the one naming it.
pub(super) fn file_key(name: &str) -> bool {
    name != "VALINE_CONFIG" && find(name).is_some()
}

/// The known file key closest to `key` (lower case), when one is close enough to be
/// the one meant: at most a third of its letters differ.
pub(super) fn closest_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    VARS.iter()
        .filter(|v| file_key(v.name))
        .map(|v| v.name.to_ascii_lowercase())
        .map(|name| (edit_distance(&key, &name), name))
        .filter(|(distance, name)| *distance <= name.len().max(key.len()) / 3)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    Environment,
    /// Read from this SSM parameter.
    Ssm(String),
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File => "file",
            Origin::Environment => "environment",
            Origin::Ssm(_) => "ssm",
        }
    }
}

/// One variable as `valine config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub var: &'static Var,
    /// What to show: the value, `(set)` for a secret (and anything read from SSM), the
    /// default's description; `None` when unset with no default.
    pub shown: Option<String>,
    pub origin: Origin,
}

/// What the variable shows for a secret that is set.
pub const SET: &str = "(set)";

impl Config {
    /// Every variable with the value in effect and where it came from, and whether the
    /// whole configuration loads (`ssm:` values resolved). A file that cannot be read
    /// gives no list, only the error.
    pub async fn inspect(
        env: HashMap<String, String>,
    ) -> (Vec<Effective>, Result<Config, LoadError>) {
        let from_file = match Self::file_values(&env) {
            Ok(values) => values,
            Err(e) => return (Vec::new(), Err(e.into())),
        };
        let mut values = from_file;
        values.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let ssm: BTreeMap<String, String> = super::ssm_references(&values);
        let listed = VARS
            .iter()
            .map(|var| {
                let raw = values
                    .get(var.name)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty());
                let (shown, origin) = match (raw, ssm.get(var.name)) {
                    (None, _) => (default_shown(var), Origin::Default),
                    (Some(_), Some(parameter)) => {
                        (Some(SET.to_owned()), Origin::Ssm(parameter.clone()))
                    }
                    (Some(raw), None) => {
                        let shown = if var.secret { SET } else { raw };
                        let origin = if env.contains_key(var.name) {
                            Origin::Environment
                        } else {
                            Origin::File
                        };
                        (Some(shown.to_owned()), origin)
                    }
                };
                Effective { var, shown, origin }
            })
            .collect();
        (listed, Self::load_values(values).await)
    }
}

fn default_shown(var: &Var) -> Option<String> {
    match var.fallback {
        Fallback::Unset => None,
        Fallback::Value(v) | Fallback::Decided(v) => Some(v.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("github_rep", "github_repo"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn the_closest_key_is_suggested_only_when_close() {
        assert_eq!(closest_key("github_rep").as_deref(), Some("github_repo"));
        assert_eq!(closest_key("GITHUB_TOKN").as_deref(), Some("github_token"));
        assert_eq!(closest_key("stag").as_deref(), Some("stage"));
        assert_eq!(closest_key("completely_unrelated"), None);
        // The file cannot name another file.
        assert_ne!(
            closest_key("valine_confg").as_deref(),
            Some("valine_config")
        );
    }

    #[test]
    fn names_are_unique_and_upper_case() {
        let mut names: Vec<&str> = VARS.iter().map(|v| v.name).collect();
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARS.len());
    }
}
