//! `/block` and `/unblock`: a stored, audited block honoured at once by every process on
//! either store, admins exempt, `BLOCKED_USER_IDS` still applying, and bad input
//! answered without changing anything.

use serde_json::{Value, json};

use valine::store::AuditRecord;

use crate::helpers::{
    Backend, Options, TestApp, command, ephemeral_text, now_secs, on_each_store, spawn_app_with,
};

const ADMIN: &str = "10";
const OTHER_ADMIN: &str = "12";
const ADMIN_ROLE: &str = "500";
const USER: &str = "77";
const BLOCKED_BY_CONFIG: &str = "66";

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("ADMIN_USER_IDS", format!("{ADMIN},{OTHER_ADMIN}")),
        ("ADMIN_ROLE_IDS", ADMIN_ROLE.to_owned()),
        ("BLOCKED_USER_IDS", BLOCKED_BY_CONFIG.to_owned()),
    ]
}

async fn app_on(backend: Backend) -> TestApp {
    spawn_app_with(Options {
        env: env(),
        backend,
        ..Default::default()
    })
    .await
}

/// Runs a command and returns its immediate ephemeral answer.
async fn answer(app: &TestApp, name: &str, options: Value, user: &str, roles: &[&str]) -> String {
    ephemeral_text(app, &command(name, options, user, roles, "tok-block")).await
}

fn user(id: &str) -> Value {
    json!({"name": "user", "type": 6, "value": id})
}

/// What `/debug-last` answers `who`: refused when blocked, served otherwise.
async fn served(app: &TestApp, who: &str, roles: &[&str]) -> bool {
    let text = answer(app, "debug-last", json!([]), who, roles).await;
    if text == "⛔ You are blocked from using this bot." {
        return false;
    }
    assert_eq!(text, "No recent command found for you.");
    true
}

async fn audit(app: &TestApp) -> Vec<AuditRecord> {
    app.app
        .store
        .list_audit(None, 0, now_secs())
        .await
        .expect("audit")
}

on_each_store!(a_block_is_stored_audited_and_honoured_by_every_process_at_once);
async fn a_block_is_stored_audited_and_honoured_by_every_process_at_once(backend: Backend) {
    let first = app_on(backend).await;
    let second = spawn_app_with(Options {
        env: env(),
        reuse: Some(first.shared()),
        ..Default::default()
    })
    .await;
    assert!(served(&second, USER, &[]).await);

    let before = now_secs();
    let text = answer(
        &first,
        "block",
        json!([user(USER), {"name": "reason", "type": 3, "value": "spamming deploys"},
               {"name": "duration", "type": 3, "value": "1h"}]),
        ADMIN,
        &[],
    )
    .await;
    assert!(
        text.starts_with(&format!("🚫 Blocked <@{USER}> until 20"))
            && text.ends_with("UTC\nReason: spamming deploys"),
        "{text}"
    );
    // The other process refuses the user at once; so does this one, for buttons too.
    assert!(!served(&second, USER, &[]).await);
    let mut press = command("status", json!([]), USER, &[], "tok-press");
    press["type"] = 3.into();
    press["data"] = json!({"custom_id": "valine:reverify:1", "component_type": 2});
    let body: Value = first.post_interaction(&press).await.json().await.unwrap();
    assert_eq!(
        body["data"]["content"],
        "⛔ You are blocked from using this bot."
    );
    // Autocomplete offers a blocked user nothing.
    let mut auto = command(
        "verify-run",
        json!([{"name": "run_id", "type": 3, "value": "1", "focused": true}]),
        USER,
        &[],
        "tok-auto",
    );
    auto["type"] = 4.into();
    let body: Value = second.post_interaction(&auto).await.json().await.unwrap();
    assert_eq!(body, json!({"type": 8, "data": {"choices": []}}));

    let stored = second
        .app
        .store
        .get_block(USER, now_secs())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.reason.as_deref(), Some("spamming deploys"));
    assert_eq!(stored.blocked_by, ADMIN);
    let expires = stored.expires_at.expect("an expiry");
    assert!(
        (before + 3600..=now_secs() + 3600).contains(&expires),
        "{expires}"
    );
    // Other users are not affected.
    assert!(served(&first, "78", &[]).await);

    let text = answer(&second, "unblock", json!([user(USER)]), ADMIN, &[]).await;
    assert_eq!(text, format!("✅ Unblocked <@{USER}>"));
    assert!(served(&first, USER, &[]).await);

    let actions: Vec<(String, String)> = audit(&first)
        .await
        .into_iter()
        .map(|a| (a.user_id, a.action))
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(
        actions[0],
        (ADMIN.to_owned(), format!("unblock user {USER}"))
    );
    assert!(
        actions[1]
            .1
            .starts_with(&format!("block user {USER} until 20"))
            && actions[1].1.ends_with("UTC: spamming deploys"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_block_without_duration_holds_until_unblocked_and_valine_audit_shows_it() {
    let app = app_on(Backend::Sqlite).await;
    let text = answer(&app, "block", json!([user(USER)]), ADMIN, &[]).await;
    assert_eq!(text, format!("🚫 Blocked <@{USER}> until unblocked"));
    assert!(!served(&app, USER, &[]).await);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_valine"))
        .arg("audit")
        .env_clear()
        .env(
            "VALINE_STORE",
            format!(
                "sqlite:{}",
                app.shared().dir.path().join("valine.db").display()
            ),
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains(&format!("user {ADMIN}  block user {USER} until unblocked")),
        "{printed}"
    );
}

#[tokio::test]
async fn admins_are_exempt_and_the_configured_list_still_applies() {
    let app = app_on(Backend::Sqlite).await;
    // Blocking an admin (by id) is refused; an admin by role holding a stored block is
    // still served.
    let text = answer(&app, "block", json!([user(OTHER_ADMIN)]), ADMIN, &[]).await;
    assert_eq!(text, "⛔ admins cannot be blocked");
    assert_eq!(
        answer(&app, "block", json!([user("88")]), ADMIN, &[]).await,
        "🚫 Blocked <@88> until unblocked"
    );
    assert!(!served(&app, "88", &[]).await);
    assert!(served(&app, "88", &[ADMIN_ROLE]).await);

    // `BLOCKED_USER_IDS` refuses whatever is stored, and /unblock cannot lift it.
    assert!(!served(&app, BLOCKED_BY_CONFIG, &[]).await);
    let text = answer(
        &app,
        "unblock",
        json!([user(BLOCKED_BY_CONFIG)]),
        ADMIN,
        &[],
    )
    .await;
    assert_eq!(
        text,
        format!(
            "❌ <@{BLOCKED_BY_CONFIG}> is blocked by BLOCKED_USER_IDS, which /unblock cannot \
             lift: remove the id from that variable."
        )
    );
    assert!(!served(&app, BLOCKED_BY_CONFIG, &[]).await);
    assert_eq!(audit(&app).await.len(), 1, "only the one block happened");
}

#[tokio::test]
async fn bad_input_changes_nothing_and_audits_nothing() {
    let app = app_on(Backend::Sqlite).await;
    let cases = [
        (json!([user(ADMIN)]), ADMIN, "⛔ You cannot block yourself"),
        (json!([user(ADMIN)]), "11", "⛔ /block: admin only"),
        (
            json!([user(USER), {"name": "duration", "type": 3, "value": "forever"}]),
            ADMIN,
            "❌ `duration` must be a number and a unit, like 30m, 1h or 7d (got `forever`)",
        ),
        (
            json!([user(USER), {"name": "duration", "type": 3, "value": "400d"}]),
            ADMIN,
            "❌ `duration` is longer than a year; leave it out to block until unblocked",
        ),
        (
            json!([user(USER), {"name": "reason", "type": 3, "value": "x".repeat(301)}]),
            ADMIN,
            "❌ `reason` is too long (at most 300 characters)",
        ),
        (
            json!([user("not-a-user")]),
            ADMIN,
            "❌ `user` must be a Discord user",
        ),
        (json!([]), ADMIN, "❌ `user` is required"),
    ];
    for (options, caller, expected) in cases {
        assert_eq!(
            answer(&app, "block", options.clone(), caller, &[]).await,
            expected,
            "{options}"
        );
    }
    let text = answer(&app, "unblock", json!([user(USER)]), ADMIN, &[]).await;
    assert_eq!(
        text,
        format!("❌ <@{USER}> is not blocked; nothing changed.")
    );
    assert!(served(&app, USER, &[]).await);
    assert!(
        app.app
            .store
            .get_block(USER, now_secs())
            .await
            .unwrap()
            .is_none()
    );
    assert!(audit(&app).await.is_empty());
}
