//! Real faults of the SQLite file under a serving Valine: its directory removed, the
//! file read-only. `/healthz` answers 503 naming the file, commands are refused with
//! the fail-closed message (never a 5xx to Discord), and a read-only file heals without
//! a restart once it can be written again.
//!
//! A full disk cannot be made here; it takes the same path as a read-only file (the
//! health check's write fails, the connection is kept and the next write that lands
//! clears it), which the unit tests of the store cover.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use valine::clock::Clock;
use valine::store::HealthStore;
use valine::store::sqlite::SqliteStore;

use crate::fakes::{FakeDiscord, FakeGitHub};
use crate::helpers::{
    Backend, Options, Shared, TestApp, command, eventually, spawn_app, spawn_app_with,
};

const FAIL_CLOSED: &str = "❌ Valine cannot check the rate limit";

async fn health(app: &TestApp) -> (u16, Value) {
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Posts `/status` and returns the answer, which must never be a 5xx.
async fn status_command(app: &TestApp, token: &str) -> Value {
    let res = app
        .post_interaction(&command("status", json!([]), "42", &[], token))
        .await;
    assert_eq!(res.status(), 200, "never a 5xx to Discord");
    res.json().await.unwrap()
}

fn assert_fail_closed(body: &Value) {
    assert_eq!(body["type"], 4, "{body}");
    assert_eq!(body["data"]["flags"], 64, "ephemeral: {body}");
    let content = body["data"]["content"].as_str().unwrap_or_default();
    assert!(content.starts_with(FAIL_CLOSED), "{content}");
}

/// The database file made read-only for this process, undone on drop. Permission bits
/// are enough for an ordinary user; root ignores them, so as root the immutable
/// attribute (`chattr +i`, which binds root too) is used instead.
struct ReadOnlyFile {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnlyFile {
    fn make(path: &Path) -> Result<ReadOnlyFile, String> {
        use std::os::unix::fs::PermissionsExt;
        let writable = |path: &Path| std::fs::OpenOptions::new().write(true).open(path).is_ok();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        if !writable(path) {
            return Ok(ReadOnlyFile {
                path: path.to_owned(),
                immutable: false,
            });
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let chattr = Command::new("chattr").arg("+i").arg(path).output();
        let guard = ReadOnlyFile {
            path: path.to_owned(),
            immutable: true,
        };
        match chattr {
            Ok(out) if out.status.success() && !writable(path) => Ok(guard),
            Ok(out) => Err(format!(
                "`chattr +i` did not make the file read-only for root: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("`chattr` cannot run: {e}")),
        }
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        } else {
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o644));
        }
    }
}

#[tokio::test]
async fn removing_the_database_directory_while_serving_answers_503_and_refuses_commands() {
    let app = spawn_app().await;
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["store"]), (200, &json!("ok")), "{body}");
    let dir = app.shared().dir;
    let path = dir.path().join("valine.db");
    let shown = path.display().to_string();

    std::fs::remove_dir_all(dir.path()).unwrap();

    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["store"], "error");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(&shown) && reason.contains("removed or replaced"),
        "{reason}"
    );
    assert_fail_closed(&status_command(&app, "tok-removed").await);
    let err = app.app.store.ping().await.unwrap_err();
    assert_eq!(err.error_type(), "store_unavailable");
    assert!(err.to_string().contains(&shown), "{err}");

    // A new, empty database at the same path (another process starting) is not the
    // file this process opened: it stays down rather than carry on with no records.
    std::fs::create_dir_all(dir.path()).unwrap();
    let fresh = SqliteStore::open(&path).await.unwrap();
    fresh.ping().await.unwrap();
    let (status, _) = health(&app).await;
    assert_eq!(status, 503);
    assert_fail_closed(&status_command(&app, "tok-replaced").await);

    let res = app
        .post_webhook(
            "workflow_run",
            "d-removed",
            &json!({
                "action": "completed",
                "workflow_run": {"id": 1, "workflow_id": 77, "status": "completed",
                                 "conclusion": "success", "head_branch": "main", "run_attempt": 1},
                "repository": {"full_name": "octo-org/octo-repo"}
            }),
        )
        .await;
    assert_eq!(res.status(), 503, "GitHub redelivers later");
}

#[tokio::test]
async fn a_read_only_database_at_start_up_answers_503_and_heals_without_a_restart() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let path = dir.path().join("valine.db");
    // An existing database, closed cleanly (no -wal or -shm file left), as after a
    // restart.
    drop(SqliteStore::open(&path).await.unwrap());
    let read_only = match ReadOnlyFile::make(&path) {
        Ok(guard) => guard,
        Err(why) => {
            eprintln!("SKIPPED: no way to make a file read-only on this machine: {why}");
            return;
        }
    };
    let app = spawn_app_with(Options {
        reuse: Some(Shared {
            github: FakeGitHub::start().await,
            discord: FakeDiscord::start().await,
            dir,
            clock: Clock::tokio(),
            backend: Backend::Sqlite,
            table: None,
        }),
        ..Default::default()
    })
    .await;
    let shown = path.display().to_string();

    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"], "error");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(&shown) && reason.contains("read-only"),
        "{reason}"
    );
    assert_fail_closed(&status_command(&app, "tok-read-only").await);

    drop(read_only);

    let body = eventually(Duration::from_secs(10), || async {
        let (status, body) = health(&app).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body["store"], "ok");
    assert_eq!(
        status_command(&app, "tok-healed").await,
        json!({"type": 5}),
        "the command runs again"
    );
}

/// The DynamoDB table deleted under a serving Valine: `/healthz` answers 503 naming the
/// table and `valine init`, commands are refused with the fail-closed message, and once
/// the table is back everything works again without a restart.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn a_dynamodb_table_gone_while_serving_answers_503_and_heals_when_it_is_back() {
    use valine::store::dynamodb::create_table_if_missing;
    use valine::store::dynamodb_local::DynamoDbLocal;

    let app = spawn_app_with(Options {
        backend: Backend::DynamoDb,
        ..Default::default()
    })
    .await;
    let table = app.shared().table.expect("a DynamoDB test app has a table");
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["store"]), (200, &json!("ok")), "{body}");

    let client = DynamoDbLocal::shared().client();
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["store"]), (503, &json!("error")), "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&table) && reason.contains("valine init"),
        "{reason}"
    );
    assert_fail_closed(&status_command(&app, "tok-ddb-gone").await);

    create_table_if_missing(&client, &table).await.unwrap();
    let (status, _) = health(&app).await;
    assert_eq!(status, 200, "healed without a restart");
    let answer = status_command(&app, "tok-ddb-back").await;
    assert_eq!(answer, json!({"type": 5}));
}

/// DynamoDB unreachable (nothing listens at the endpoint) or reached without
/// credentials: 503 with a reason naming the table, commands fail closed, no panic.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn an_unreachable_or_unauthenticated_dynamodb_answers_503_and_refuses_commands() {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
    use valine::store::dynamodb::DynamoDbStore;
    use valine::store::dynamodb_local::{DynamoDbLocal, client_for};

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = client_for(&format!("http://127.0.0.1:{closed}"));
    let no_credentials = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(DynamoDbLocal::shared().endpoint())
            .build(),
    );
    for (client, what) in [
        (unreachable, "cannot be reached"),
        (no_credentials, "credentials"),
    ] {
        let table = DynamoDbLocal::unique_table("valine-fault");
        let app = spawn_app_with(Options {
            store: Some(Arc::new(DynamoDbStore::new(client, &table))),
            ..Default::default()
        })
        .await;
        let (status, body) = health(&app).await;
        assert_eq!(status, 503, "{what}: {body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&table) && reason.contains(what),
            "{what}: {reason}"
        );
        assert_fail_closed(&status_command(&app, "tok-ddb-down").await);
    }
}

/// DynamoDB throttling every request, past the SDK's retries: 503 naming the table and
/// the throttling, commands fail closed; the SDK did retry with backoff first.
#[cfg(feature = "conformance")]
#[tokio::test]
async fn dynamodb_throttling_past_the_retries_answers_503_and_refuses_commands() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use valine::store::dynamodb::DynamoDbStore;
    use valine::store::dynamodb_local::{DynamoDbLocal, client_for};

    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let throttling = axum::Router::new().fallback(move || {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.0")],
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, throttling).await });

    let table = DynamoDbLocal::unique_table("valine-throttled");
    let app = spawn_app_with(Options {
        store: Some(Arc::new(DynamoDbStore::new(client_for(&endpoint), &table))),
        ..Default::default()
    })
    .await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&table) && reason.contains("throttled"),
        "{reason}"
    );
    assert!(
        requests.load(Ordering::SeqCst) >= 2,
        "the SDK retried before giving up"
    );
    assert_fail_closed(&status_command(&app, "tok-throttled").await);
}
