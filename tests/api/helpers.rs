//! `spawn_app()`: a Valine server on 127.0.0.1 wired to fake GitHub and Discord APIs,
//! with a fresh SQLite file, plus typed helpers to send signed interactions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use valine::app::App;
use valine::clock::Clock;
use valine::config::Config;

use crate::fakes::{FakeDiscord, FakeGitHub};

pub const APPLICATION_ID: &str = "4242";
pub const GITHUB_TOKEN: &str = "ghp_testtoken0123456789abcdef";
pub const BOT_TOKEN: &str = "bot-token-never-logged-0123";
pub const WEBHOOK_SECRET: &str = "webhook-secret-never-logged";

pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().as_bytes())
}

/// Signs `timestamp ‖ body` the way Discord does.
pub fn sign(timestamp: &str, body: &[u8]) -> String {
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    hex::encode(signing_key().sign(&message).to_bytes())
}

/// The wall clock, as the fakes and signed requests need it.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The environment a test app starts from; tests add or override entries.
pub fn base_env(
    github: &FakeGitHub,
    discord: &FakeDiscord,
    db: &std::path::Path,
) -> HashMap<String, String> {
    [
        ("STAGE", "test".to_owned()),
        ("DISCORD_PUBLIC_KEY", public_key_hex()),
        ("DISCORD_APPLICATION_ID", APPLICATION_ID.to_owned()),
        ("DISCORD_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("DISCORD_API_BASE", discord.url()),
        ("GITHUB_TOKEN", GITHUB_TOKEN.to_owned()),
        ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("GITHUB_REPO", "octo-org/octo-repo".to_owned()),
        ("GITHUB_API_BASE", github.url()),
        ("FRONTEND_BASE_URL", "https://app.example.com".to_owned()),
        ("VITE_API_BASE", "https://api.example.com".to_owned()),
        ("VALINE_STORE", format!("sqlite:{}", db.display())),
        // Tests poll with commands; the rate limit has tests of its own.
        ("RATE_LIMIT_PER_MINUTE", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub github: FakeGitHub,
    pub discord: FakeDiscord,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    dir_handle: Arc<tempfile::TempDir>,
    backend: Backend,
    table: Option<String>,
}

/// Runs the async fn `case(backend: Backend)` as one test per store backend:
/// `<case>::sqlite` and, with the test support feature, `<case>::dynamodb` on DynamoDB
/// Local. The same test, not a copy: atomic rules must hold on every backend.
macro_rules! on_each_store {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(crate::helpers::Backend::Sqlite).await
            }

            #[cfg(feature = "conformance")]
            #[tokio::test]
            async fn dynamodb() {
                super::$case(crate::helpers::Backend::DynamoDb).await
            }
        }
    };
}
pub(crate) use on_each_store;

/// Which store backend a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// A SQLite file in the test's temporary directory.
    #[default]
    Sqlite,
    /// A fresh table on the DynamoDB Local that the test process started.
    #[cfg(feature = "conformance")]
    DynamoDb,
}

/// What two processes of one test share: the fakes, the database (the SQLite file's
/// directory, or the DynamoDB table) and the clock.
#[derive(Clone)]
pub struct Shared {
    pub github: FakeGitHub,
    pub discord: FakeDiscord,
    pub dir: Arc<tempfile::TempDir>,
    pub clock: Clock,
    pub backend: Backend,
    /// The DynamoDB table, when the backend is DynamoDB.
    pub table: Option<String>,
}

pub struct Options {
    pub env: Vec<(&'static str, String)>,
    /// Reuse these fakes, this database and this clock (a second process on the same
    /// machine reads the same time); the backend comes with them.
    pub reuse: Option<Shared>,
    pub backend: Backend,
    pub lease: Duration,
    /// Use this store instead of the SQLite file (fault injection).
    pub store: Option<valine::store::SharedStore>,
    /// Adjusts the worker's timings after the test defaults are applied (short polls).
    pub tune: Option<fn(&mut valine::app::WorkerSettings)>,
    /// Replaces the app's probe client (a test-injected address policy).
    pub prober: Option<valine::probe::Prober>,
    /// Shortens the GitHub client's first retry delay (500 ms in production).
    pub github_retry_delay: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: Vec::new(),
            reuse: None,
            backend: Backend::default(),
            lease: Duration::from_secs(30),
            store: None,
            tune: None,
            prober: None,
            github_retry_delay: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let shared = match options.reuse {
        Some(reused) => reused,
        None => Shared {
            github: FakeGitHub::start().await,
            discord: FakeDiscord::start().await,
            dir: Arc::new(tempfile::tempdir().unwrap()),
            // Follows tokio's clock: real time normally, virtual time in a test that
            // pauses it.
            clock: Clock::tokio(),
            backend: options.backend,
            table: None,
        },
    };
    let Shared {
        github,
        discord,
        dir,
        clock,
        backend,
        table,
    } = shared;
    let db = dir.path().join("valine.db");
    let mut env = base_env(&github, &discord, &db);
    for (k, v) in options.env {
        env.insert(k.to_owned(), v);
    }
    let (store, table) = match (options.store, backend) {
        (Some(store), _) => (Some(store), table),
        (None, Backend::Sqlite) => (None, table),
        #[cfg(feature = "conformance")]
        (None, Backend::DynamoDb) => {
            let name = table.unwrap_or_else(|| {
                valine::store::dynamodb_local::DynamoDbLocal::unique_table("valine-test")
            });
            env.insert("VALINE_STORE".into(), format!("dynamodb:{name}"));
            (Some(dynamodb_store(&name).await), Some(name))
        }
    };
    let config = Config::from_vars(env.clone()).expect("test configuration is valid");
    let mut app = match store {
        Some(store) => App::with_store(config, store).expect("app starts"),
        None => App::new(config).await.expect("app starts"),
    };
    app.clock = clock;
    app.worker.lease = options.lease;
    app.worker.poll = Duration::from_millis(50);
    app.worker.backoff_base = Duration::from_millis(50);
    if let Some(tune) = options.tune {
        tune(&mut app.worker);
    }
    if let Some(delay) = options.github_retry_delay {
        app.set_github_retry_delay(delay);
    }
    // Tests never ask a real resolver: the default targets (example.com names) resolve
    // to loopback, which the probe policy refuses unless SAFE_LOCAL, and every other
    // name fails as a DNS error.
    app.prober = match options.prober {
        Some(prober) => prober,
        None => {
            let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
            valine::probe::Prober::builder(valine::probe::target::TargetPolicy::from_config(
                &app.config,
            ))
            .host("app.example.com", vec![loopback])
            .host("api.example.com", vec![loopback])
            .host("*", vec![])
            .build()
            .expect("test prober builds")
        }
    };
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(valine::server::run(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: http(),
        github,
        discord,
        app,
        stop: Some(stop),
        server: Some(server),
        dir_handle: dir,
        backend,
        table,
    }
}

/// A store on `table` of the shared DynamoDB Local, creating the table on first use:
/// each call is a separate client, as a separate process would have.
#[cfg(feature = "conformance")]
async fn dynamodb_store(table: &str) -> valine::store::SharedStore {
    use valine::store::dynamodb::{DynamoDbStore, create_table_if_missing};
    let client = valine::store::dynamodb_local::DynamoDbLocal::shared().client();
    create_table_if_missing(&client, table)
        .await
        .expect("the test table can be created");
    Arc::new(DynamoDbStore::new(client, table))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The fakes, database and clock, for a second process on the same state.
    pub fn shared(&self) -> Shared {
        Shared {
            github: self.github.clone(),
            discord: self.discord.clone(),
            dir: self.dir_handle.clone(),
            clock: self.app.clock.clone(),
            backend: self.backend,
            table: self.table.clone(),
        }
    }

    /// Posts `body` signed with the test key and a current timestamp.
    pub async fn post_interaction(&self, body: &Value) -> reqwest::Response {
        let raw = body.to_string();
        let ts = now_secs().to_string();
        let signature = sign(&ts, raw.as_bytes());
        self.post_signed("/discord/interactions", &raw, &ts, &signature)
            .await
    }

    pub async fn post_signed(
        &self,
        path: &str,
        raw: &str,
        ts: &str,
        signature: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("X-Signature-Ed25519", signature)
            .header("X-Signature-Timestamp", ts)
            .body(raw.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Posts a GitHub webhook delivery signed with [`WEBHOOK_SECRET`].
    pub async fn post_webhook(
        &self,
        event: &str,
        delivery: &str,
        body: &Value,
    ) -> reqwest::Response {
        let raw = body.to_string();
        let signature = github_signature(WEBHOOK_SECRET, raw.as_bytes());
        self.post_webhook_raw(
            &[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &signature),
            ],
            raw.into_bytes(),
        )
        .await
    }

    /// Posts `body` to the webhook endpoint with exactly these headers.
    pub async fn post_webhook_raw(
        &self,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/github/webhook"))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Stops the server gracefully (as SIGTERM would) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Kills the server and its worker mid-flight, as a crash would: nothing is
    /// released or finished.
    pub fn crash(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub signs deliveries.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A slash command interaction from a guild member.
pub fn command(name: &str, options: Value, user: &str, roles: &[&str], token: &str) -> Value {
    json!({
        "id": "1100000000000000001",
        "application_id": APPLICATION_ID,
        "type": 2,
        "token": token,
        "version": 1,
        "guild_id": "900",
        "channel_id": "901",
        "member": {
            "user": {"id": user, "username": "tester", "discriminator": "0"},
            "roles": roles,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": false,
            "mute": false,
            "flags": 0
        },
        "data": {"id": "1200000000000000001", "name": name, "type": 1, "options": options}
    })
}

/// Posts `body` and returns the text of its immediate ephemeral answer (type 4, flag
/// 64), failing when the answer is anything else.
pub async fn ephemeral_text(app: &TestApp, body: &Value) -> String {
    let answer: Value = app.post_interaction(body).await.json().await.unwrap();
    assert_eq!(answer["type"], 4, "{answer}");
    assert_eq!(answer["data"]["flags"], 64, "{answer}");
    answer["data"]["content"].as_str().unwrap().to_owned()
}

/// A press of the button `custom_id` on a message of `/<name>`.
pub fn press(name: &str, custom_id: &str, user: &str, token: &str) -> Value {
    let mut body = command(name, json!([]), user, &[], token);
    body["type"] = 3.into();
    body["data"] = json!({"custom_id": custom_id, "component_type": 2});
    body
}

/// Posts `body` and returns the answer, which must be a 200.
pub async fn send(app: &TestApp, body: &Value) -> Value {
    let res = app.post_interaction(body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The `custom_id`s of a message's buttons, in order.
pub fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_owned))
        .collect()
}

/// A `workflow_run` delivery about the fake's run `id` of the deploy workflow (77,
/// `client-deploy.yml`) as it is now.
pub async fn post_run_event(app: &TestApp, id: u64, delivery: &str) {
    let repo = "octo-org/octo-repo";
    let mut run = app.github.run(id).expect("run exists");
    run["repository"]["full_name"] = repo.into();
    run["path"] = ".github/workflows/client-deploy.yml@main".into();
    let action = if run["status"] == "completed" {
        "completed"
    } else {
        "in_progress"
    };
    let body = json!({
        "action": action,
        "workflow_run": run,
        "workflow": {"id": 77, "name": "Client deploy", "path": ".github/workflows/client-deploy.yml"},
        "repository": {"full_name": repo},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    });
    let res = app.post_webhook("workflow_run", delivery, &body).await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTP client for tests (rustls needs its crypto provider installed first).
pub fn http() -> reqwest::Client {
    valine::github::api::ensure_crypto_provider();
    reqwest::Client::new()
}
