//! `/set-frontend` and `/set-api-base` end to end: preview, Confirm / Cancel presses
//! (type 7), the atomic apply with its audit record, `GITHUB_SYNC_SETTINGS` writes to the
//! fake GitHub (a secret the test decrypts), and DRY_RUN.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use valine::github::seal;

use valine::store::PendingConfirmation;

use crate::helpers::{Backend, Options, TestApp, command, on_each_store, spawn_app_with};

const ADMIN: &str = "7";
const OTHER_ADMIN: &str = "8";
const NOBODY: &str = "9";
const ENV_FRONTEND: &str = "https://app.example.com";
const ENV_API: &str = "https://api.example.com";

fn fp(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))[60..].to_owned()
}

async fn spawn(extra: &[(&'static str, &str)]) -> TestApp {
    spawn_on(Backend::Sqlite, extra).await
}

async fn spawn_on(backend: Backend, extra: &[(&'static str, &str)]) -> TestApp {
    let mut env = vec![("ADMIN_USER_IDS", format!("{ADMIN},{OTHER_ADMIN}"))];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    spawn_app_with(Options {
        env,
        backend,
        ..Options::default()
    })
    .await
}

fn set(name: &str, url: &str, confirm: bool, user: &str, token: &str) -> Value {
    let mut options = vec![json!({"name": "url", "type": 3, "value": url})];
    if confirm {
        options.push(json!({"name": "confirm", "type": 5, "value": true}));
    }
    command(name, Value::Array(options), user, &[], token)
}

fn press(custom_id: &str, user: &str, token: &str) -> Value {
    let mut body = command("set-frontend", json!([]), user, &[], token);
    body["type"] = 3.into();
    body["data"] = json!({"custom_id": custom_id, "component_type": 2});
    body
}

async fn send(app: &TestApp, body: &Value) -> Value {
    let res = app.post_interaction(body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn content(answer: &Value) -> &str {
    answer["data"]["content"].as_str().unwrap()
}

fn buttons(answer: &Value) -> Vec<String> {
    answer["data"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["components"].as_array().unwrap().clone())
        .map(|b| b["custom_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A preview by `ADMIN`; returns the Confirm and Cancel custom ids.
async fn preview(app: &TestApp, name: &str, url: &str) -> (String, String, Value) {
    let answer = send(app, &set(name, url, false, ADMIN, "tok-preview")).await;
    let ids = buttons(&answer);
    assert_eq!(ids.len(), 2, "{answer}");
    (ids[0].clone(), ids[1].clone(), answer)
}

async fn stored(app: &TestApp, key: &str) -> Option<String> {
    app.app
        .store
        .get_setting(key)
        .await
        .unwrap()
        .map(|s| s.value)
}

async fn audit(app: &TestApp) -> Vec<valine::store::AuditRecord> {
    let now = crate::helpers::now_ms();
    app.app.store.list_audit(None, 0, now / 1000).await.unwrap()
}

on_each_store!(a_preview_is_confirmed_once_by_its_author_and_used_afterwards);
async fn a_preview_is_confirmed_once_by_its_author_and_used_afterwards(backend: Backend) {
    let app = spawn_on(backend, &[]).await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");

    let (confirm, cancel, answer) =
        preview(&app, "set-frontend", "https://New.Example.com/app/").await;
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert_eq!(
        content(&answer).lines().next().unwrap(),
        "Would change FRONTEND_BASE_URL from https://app.example.com to https://new.example.com/app"
    );
    assert!(confirm.starts_with("valine:set-frontend-confirm:"));
    assert!(cancel.starts_with("valine:set-frontend-cancel:"));
    assert_eq!(stored(&app, "FRONTEND_BASE_URL").await, None);

    // Another admin passes the admin check but may not press someone else's change.
    let refused = send(&app, &press(&confirm, OTHER_ADMIN, "tok-other")).await;
    assert_eq!(refused["type"], 4);
    assert_eq!(refused["data"]["flags"], 64);
    assert!(
        content(&refused).contains("Only the admin who asked"),
        "{refused}"
    );
    // A non-admin is refused before that.
    let denied = send(&app, &press(&confirm, NOBODY, "tok-nobody")).await;
    assert_eq!(content(&denied), "⛔ Confirm: admin only");
    assert_eq!(stored(&app, "FRONTEND_BASE_URL").await, None);

    let done = send(&app, &press(&confirm, ADMIN, "tok-confirm")).await;
    assert_eq!(done["type"], 7, "{done}");
    assert_eq!(
        content(&done),
        format!(
            "✅ Updated FRONTEND_BASE_URL (fingerprint …{})",
            fp("https://new.example.com/app")
        )
    );
    assert_eq!(done["data"]["components"], json!([]));
    assert_eq!(
        stored(&app, "FRONTEND_BASE_URL").await.as_deref(),
        Some("https://new.example.com/app")
    );

    let again = send(&app, &press(&confirm, ADMIN, "tok-again")).await;
    assert_eq!(again["type"], 4);
    assert!(content(&again).contains("already handled"), "{again}");
    let again = send(&app, &press(&cancel, ADMIN, "tok-again-cancel")).await;
    assert!(content(&again).contains("already handled"), "{again}");

    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.user_id, ADMIN);
    assert_eq!(record.action, "set FRONTEND_BASE_URL");
    assert_eq!(record.old_fingerprint, Some(fp(ENV_FRONTEND)));
    assert_eq!(
        record.new_fingerprint,
        Some(fp("https://new.example.com/app"))
    );
    assert!(!record.dry_run);
    assert_eq!(record.trace_id.as_ref().map(String::len), Some(32));
    // Nothing was written to GitHub without GITHUB_SYNC_SETTINGS.
    assert!(app.github.writes().is_empty());

    send(
        &app,
        &command("status", json!([]), NOBODY, &[], "tok-status"),
    )
    .await;
    let edit = app.discord.wait_for_edit("tok-status").await;
    let footer = edit["embeds"][0]["footer"]["text"].as_str().unwrap();
    assert!(
        footer.contains("frontend https://new.example.com/app (setting)"),
        "{footer}"
    );
    assert!(
        footer.contains("API https://api.example.com (environment)"),
        "{footer}"
    );
}

#[tokio::test]
async fn cancel_and_expiry_change_nothing() {
    let app = spawn(&[]).await;

    let (confirm, cancel, _) = preview(&app, "set-frontend", "https://new.example.com").await;
    let cancelled = send(&app, &press(&cancel, ADMIN, "tok-cancel")).await;
    assert_eq!(cancelled["type"], 7);
    assert_eq!(
        content(&cancelled),
        "Cancelled: FRONTEND_BASE_URL was not changed."
    );
    assert_eq!(cancelled["data"]["components"], json!([]));
    let late = send(&app, &press(&confirm, ADMIN, "tok-late")).await;
    assert!(content(&late).contains("already handled"), "{late}");

    // A confirmation made 15 minutes ago.
    let expired_at = crate::helpers::now_secs() - 1;
    let id = valine::commands::set_url::pending_id(ADMIN, expired_at);
    app.app
        .store
        .put_pending(&PendingConfirmation {
            id: id.clone(),
            user_id: ADMIN.into(),
            key: "FRONTEND_BASE_URL".into(),
            old_value: None,
            new_value: Some("https://old-preview.example.com".into()),
            expires_at: expired_at,
        })
        .await
        .unwrap();
    let expired = send(
        &app,
        &press(
            &format!("valine:set-frontend-confirm:{id}"),
            ADMIN,
            "tok-exp",
        ),
    )
    .await;
    assert_eq!(expired["type"], 7);
    assert!(content(&expired).contains("expired"), "{expired}");
    assert_eq!(expired["data"]["components"], json!([]));

    // A custom id Valine never made.
    let forged = send(
        &app,
        &press("valine:set-frontend-confirm:nonsense", ADMIN, "tok-forged"),
    )
    .await;
    assert_eq!(forged["type"], 4);

    assert_eq!(stored(&app, "FRONTEND_BASE_URL").await, None);
    assert!(audit(&app).await.is_empty());
}

#[tokio::test]
async fn refusals_invalid_urls_and_values_already_in_use() {
    let app = spawn(&[]).await;

    let denied = send(
        &app,
        &set("set-frontend", "https://x.example.com", true, NOBODY, "t1"),
    )
    .await;
    assert_eq!(content(&denied), "⛔ /set-frontend: admin only");

    for (url, reason) in [
        ("http://plain.example.com", "only https URLs"),
        ("https://10.0.0.1", "private"),
        ("https://user:pw@example.com", "user name"),
        ("not a url", "not a valid URL"),
    ] {
        let answer = send(&app, &set("set-api-base", url, true, ADMIN, "t2")).await;
        assert_eq!(answer["type"], 4);
        assert_eq!(answer["data"]["flags"], 64);
        let text = content(&answer);
        assert!(
            text.starts_with("❌ Invalid URL:") && text.contains(reason),
            "{url}: {text}"
        );
    }

    // The environment value, written differently, is the value in use.
    let same = send(
        &app,
        &set(
            "set-frontend",
            "https://APP.example.com/",
            false,
            ADMIN,
            "t3",
        ),
    )
    .await;
    assert_eq!(
        content(&same),
        "Already set: FRONTEND_BASE_URL is https://app.example.com"
    );
    assert!(buttons(&same).is_empty());
    let reset = send(&app, &set("set-frontend", "reset", true, ADMIN, "t4")).await;
    assert!(
        content(&reset).starts_with("Already set: FRONTEND_BASE_URL uses the environment value"),
        "{reset}"
    );
    assert!(audit(&app).await.is_empty());
}

#[tokio::test]
async fn confirm_true_applies_at_once_and_reset_returns_to_the_environment() {
    let app = spawn(&[]).await;

    let done = send(
        &app,
        &set(
            "set-api-base",
            "https://api2.example.com",
            true,
            ADMIN,
            "t1",
        ),
    )
    .await;
    assert_eq!(done["type"], 4);
    assert_eq!(done["data"]["flags"], 64);
    assert_eq!(
        content(&done),
        format!(
            "✅ Updated VITE_API_BASE (fingerprint …{})",
            fp("https://api2.example.com")
        )
    );
    let again = send(
        &app,
        &set(
            "set-api-base",
            "https://api2.example.com/",
            true,
            ADMIN,
            "t2",
        ),
    )
    .await;
    assert_eq!(
        content(&again),
        "Already set: VITE_API_BASE is https://api2.example.com"
    );

    let reset = send(&app, &set("set-api-base", "reset", true, ADMIN, "t3")).await;
    assert_eq!(
        content(&reset),
        format!(
            "✅ Reset VITE_API_BASE to the environment value (fingerprint …{})",
            fp(ENV_API)
        )
    );
    assert_eq!(stored(&app, "VITE_API_BASE").await, None);

    // A reset previews like any change.
    send(
        &app,
        &set("set-frontend", "https://n.example.com", true, ADMIN, "t4"),
    )
    .await;
    let (confirm, _, answer) = preview(&app, "set-frontend", "reset").await;
    assert_eq!(
        content(&answer).lines().next().unwrap(),
        "Would change FRONTEND_BASE_URL from https://n.example.com to https://app.example.com (the environment value)"
    );
    let done = send(&app, &press(&confirm, ADMIN, "t5")).await;
    assert_eq!(
        content(&done),
        format!(
            "✅ Reset FRONTEND_BASE_URL to the environment value (fingerprint …{})",
            fp(ENV_FRONTEND)
        )
    );
    assert_eq!(stored(&app, "FRONTEND_BASE_URL").await, None);

    let actions: Vec<(String, Option<String>, Option<String>)> = audit(&app)
        .await
        .into_iter()
        .map(|r| (r.action, r.old_fingerprint, r.new_fingerprint))
        .collect();
    assert_eq!(
        actions,
        [
            (
                "reset FRONTEND_BASE_URL".to_owned(),
                Some(fp("https://n.example.com")),
                Some(fp(ENV_FRONTEND))
            ),
            (
                "set FRONTEND_BASE_URL".to_owned(),
                Some(fp(ENV_FRONTEND)),
                Some(fp("https://n.example.com"))
            ),
            (
                "reset VITE_API_BASE".to_owned(),
                Some(fp("https://api2.example.com")),
                Some(fp(ENV_API))
            ),
            (
                "set VITE_API_BASE".to_owned(),
                Some(fp(ENV_API)),
                Some(fp("https://api2.example.com"))
            ),
        ]
    );
}

#[tokio::test]
async fn a_preview_is_not_applied_over_a_value_that_changed_since() {
    let app = spawn(&[]).await;
    let (confirm, _, _) = preview(&app, "set-frontend", "https://a.example.com").await;
    send(
        &app,
        &set(
            "set-frontend",
            "https://b.example.com",
            true,
            OTHER_ADMIN,
            "t1",
        ),
    )
    .await;
    let stale = send(&app, &press(&confirm, ADMIN, "t2")).await;
    assert_eq!(stale["type"], 7);
    assert!(
        content(&stale).contains("changed by someone else meanwhile"),
        "{stale}"
    );
    assert_eq!(
        stored(&app, "FRONTEND_BASE_URL").await.as_deref(),
        Some("https://b.example.com")
    );
    assert_eq!(audit(&app).await.len(), 1);
}

#[tokio::test]
async fn sync_writes_the_repo_variable_after_answering() {
    let app = spawn(&[("GITHUB_SYNC_SETTINGS", "true")]).await;
    let (confirm, _, answer) = preview(&app, "set-frontend", "https://new.example.com").await;
    assert!(
        content(&answer).contains("Confirming also writes repo variable FRONTEND_BASE_URL"),
        "{answer}"
    );

    let pressed = send(&app, &press(&confirm, ADMIN, "tok-sync")).await;
    assert_eq!(pressed["type"], 7);
    let updated = format!(
        "✅ Updated FRONTEND_BASE_URL (fingerprint …{})",
        fp("https://new.example.com")
    );
    assert_eq!(
        content(&pressed),
        format!("{updated}\n⏳ Writing repo variable FRONTEND_BASE_URL on GitHub…")
    );
    assert_eq!(pressed["data"]["components"], json!([]));

    let edit = app.discord.wait_for_edit("tok-sync").await;
    assert_eq!(edit["content"], updated);
    assert_eq!(edit["components"], json!([]));
    // Not there yet: updated, then created.
    let writes: Vec<(String, String)> = app
        .github
        .writes()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        [
            (
                "PATCH".to_owned(),
                "/repos/octo-org/octo-repo/actions/variables/FRONTEND_BASE_URL".to_owned()
            ),
            (
                "POST".to_owned(),
                "/repos/octo-org/octo-repo/actions/variables".to_owned()
            ),
        ]
    );
    let create = &app.github.writes()[1];
    assert_eq!(
        create.body,
        json!({"name": "FRONTEND_BASE_URL", "value": "https://new.example.com"})
    );
    assert_eq!(
        create.headers["authorization"],
        format!("Bearer {}", crate::helpers::GITHUB_TOKEN)
    );
    assert_eq!(
        app.github.variable("FRONTEND_BASE_URL").as_deref(),
        Some("https://new.example.com")
    );
    let actions: Vec<String> = audit(&app).await.into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            "write repo variable FRONTEND_BASE_URL",
            "set FRONTEND_BASE_URL"
        ]
    );
}

#[tokio::test]
async fn sync_seals_the_api_base_with_the_repository_key() {
    let app = spawn(&[("GITHUB_SYNC_SETTINGS", "true")]).await;
    let repo_key = [42u8; 32];
    app.github
        .set_public_key("kid-1", &STANDARD.encode(seal::public_key(&repo_key)));

    let answer = send(
        &app,
        &set(
            "set-api-base",
            "https://api2.example.com",
            true,
            ADMIN,
            "tok-sec",
        ),
    )
    .await;
    assert_eq!(answer["type"], 4);
    assert!(
        content(&answer).ends_with("⏳ Writing repo secret VITE_API_BASE on GitHub…"),
        "{answer}"
    );
    let edit = app.discord.wait_for_edit("tok-sec").await;
    assert_eq!(
        edit["content"],
        format!(
            "✅ Updated VITE_API_BASE (fingerprint …{})",
            fp("https://api2.example.com")
        )
    );

    let put = app
        .github
        .log
        .matching("PUT", "/actions/secrets/VITE_API_BASE");
    assert_eq!(put.len(), 1);
    assert!(!put[0].body.to_string().contains("api2.example.com"));
    let secret = app.github.secret("VITE_API_BASE").unwrap();
    assert_eq!(secret["key_id"], "kid-1");
    let sealed = STANDARD
        .decode(secret["encrypted_value"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        seal::open(&repo_key, &sealed).unwrap(),
        b"https://api2.example.com"
    );
}

#[tokio::test]
async fn a_failed_sync_keeps_the_setting_and_says_why() {
    let app = spawn(&[("GITHUB_SYNC_SETTINGS", "true")]).await;
    app.github
        .fail_writes(403, "Resource not accessible by personal access token");
    send(
        &app,
        &set(
            "set-frontend",
            "https://new.example.com",
            true,
            ADMIN,
            "tok-fail",
        ),
    )
    .await;
    let edit = app.discord.wait_for_edit("tok-fail").await;
    assert_eq!(
        edit["content"],
        "⚠️ saved; GitHub sync failed: GitHub token lacks permission \
         (needs repo + workflow scopes, or Variables: write)"
    );
    assert_eq!(
        stored(&app, "FRONTEND_BASE_URL").await.as_deref(),
        Some("https://new.example.com")
    );
    let actions: Vec<String> = audit(&app).await.into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["set FRONTEND_BASE_URL"]);
}

#[tokio::test]
async fn dry_run_shows_the_writes_and_sends_none() {
    let app = spawn(&[("GITHUB_SYNC_SETTINGS", "true"), ("DRY_RUN", "true")]).await;
    let repo_key = [42u8; 32];
    app.github
        .set_public_key("kid-1", &STANDARD.encode(seal::public_key(&repo_key)));

    send(
        &app,
        &set(
            "set-frontend",
            "https://new.example.com",
            true,
            ADMIN,
            "tok-d1",
        ),
    )
    .await;
    let edit = app.discord.wait_for_edit("tok-d1").await;
    assert_eq!(
        edit["content"],
        format!(
            "✅ Updated FRONTEND_BASE_URL (fingerprint …{})\n🧪 dry run: would set repo variable \
             FRONTEND_BASE_URL: `PATCH /repos/octo-org/octo-repo/actions/variables/FRONTEND_BASE_URL \
             {{\"name\":\"FRONTEND_BASE_URL\",\"value\":\"https://new.example.com\"}}`",
            fp("https://new.example.com")
        )
    );

    let (confirm, _, preview) = preview(&app, "set-api-base", "https://api2.example.com").await;
    assert!(content(&preview).contains("DRY_RUN is on"), "{preview}");
    send(&app, &press(&confirm, ADMIN, "tok-d2")).await;
    let edit = app.discord.wait_for_edit("tok-d2").await;
    let text = edit["content"].as_str().unwrap();
    assert!(
        text.ends_with(
            "🧪 dry run: would set repo secret VITE_API_BASE: `PUT \
             /repos/octo-org/octo-repo/actions/secrets/VITE_API_BASE \
             {\"encrypted_value\":\"[REDACTED]\",\"key_id\":\"kid-1\"}`"
        ),
        "{text}"
    );

    // Reads happen (the key); nothing is written to GitHub or posted to a channel.
    assert!(app.github.writes().is_empty(), "{:?}", app.github.writes());
    assert_eq!(
        app.github
            .log
            .matching("GET", "/actions/secrets/public-key")
            .len(),
        1
    );
    assert!(app.discord.log.matching("POST", "/channels/").is_empty());
    // Valine's own store is written as usual, and its audit records say dry run.
    assert_eq!(
        stored(&app, "VITE_API_BASE").await.as_deref(),
        Some("https://api2.example.com")
    );
    let records = audit(&app).await;
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "write repo secret VITE_API_BASE",
            "set VITE_API_BASE",
            "write repo variable FRONTEND_BASE_URL",
            "set FRONTEND_BASE_URL"
        ]
    );
    assert!(records.iter().all(|r| r.dry_run), "{records:?}");
}

/// Runs the `valine` binary with `vars`; returns exit code, stdout and stderr.
async fn valine_bin(
    vars: &std::collections::HashMap<String, String>,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let vars = vars.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_valine"))
            .env_clear()
            .envs(&vars)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn invoke_applies_inline_and_valine_audit_prints_the_log() {
    let github = crate::fakes::FakeGitHub::start().await;
    let discord = crate::fakes::FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = crate::helpers::base_env(&github, &discord, &dir.path().join("valine.db"));
    vars.insert("ADMIN_USER_IDS".into(), ADMIN.into());
    vars.insert("GITHUB_SYNC_SETTINGS".into(), "true".into());
    vars.insert("DRY_RUN".into(), "true".into());
    // Sub-commands log warnings only unless told otherwise; the dry-run line is INFO.
    vars.insert("VALINE_LOG".into(), "info".into());

    let (code, stdout, stderr) = valine_bin(
        &vars,
        &[
            "invoke",
            "/set-frontend url:https://new.example.com confirm:true",
            "--user",
            ADMIN,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    // No interaction to edit: the GitHub write (here a dry run) happens inline.
    assert!(
        stdout.contains("✅ Updated FRONTEND_BASE_URL")
            && stdout.contains("🧪 dry run: would set repo variable FRONTEND_BASE_URL"),
        "{stdout}"
    );
    assert!(github.writes().is_empty());
    // The suppressed request is logged, on stderr for `invoke`.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"dry_run\":true") && l.contains("actions/variables")),
        "{stderr}"
    );

    let (code, stdout, _) = valine_bin(&vars, &["audit", "--json"]).await;
    assert_eq!(code, Some(0));
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["action"], "write repo variable FRONTEND_BASE_URL");
    assert_eq!(lines[1]["action"], "set FRONTEND_BASE_URL");
    for line in &lines {
        assert_eq!(line["user_id"], ADMIN);
        assert_eq!(line["dry_run"], true);
        assert_eq!(line["new_fingerprint"], fp("https://new.example.com"));
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert!(line["at"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    assert_eq!(lines[1]["old_fingerprint"], fp(ENV_FRONTEND));

    let (code, stdout, _) = valine_bin(&vars, &["audit"]).await;
    assert_eq!(code, Some(0));
    let first = stdout.lines().nth(1).unwrap();
    assert!(
        first.contains(&format!(
            "user 7  set FRONTEND_BASE_URL  …{} → …{}",
            fp(ENV_FRONTEND),
            fp("https://new.example.com")
        )) && first.ends_with("(dry run)"),
        "{stdout}"
    );

    let (code, stdout, _) = valine_bin(&vars, &["audit", "--user", OTHER_ADMIN, "--json"]).await;
    assert_eq!((code, stdout.as_str()), (Some(0), ""));
    let (code, stdout, _) = valine_bin(&vars, &["audit", "--since", "0m"]).await;
    assert_eq!((code, stdout.trim()), (Some(0), "No audit records."));
    let (code, _, stderr) = valine_bin(&vars, &["audit", "--since", "week"]).await;
    assert_eq!(code, Some(2), "{stderr}");
}
