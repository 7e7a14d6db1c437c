//! Blocked users, the per-user rate limit (shared through the store), authorization and
//! the guild restriction.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Backend, Options, TestApp, command, ephemeral_text, eventually, now_secs, on_each_store,
    spawn_app_with,
};

async fn content(app: &TestApp, name: &str, user: &str, roles: &[&str]) -> String {
    ephemeral_text(app, &command(name, json!([]), user, roles, "tok")).await
}

/// Waits until the current 60 s window has at least 10 s left, so a burst of
/// requests lands in one window.
async fn fresh_window() {
    eventually(Duration::from_secs(15), || async {
        (now_secs() % 60 < 50).then_some(())
    })
    .await;
}

on_each_store!(the_rate_limit_refuses_the_extra_command_and_counts_across_processes);
async fn the_rate_limit_refuses_the_extra_command_and_counts_across_processes(backend: Backend) {
    let env = vec![("RATE_LIMIT_PER_MINUTE", "3".to_owned())];
    let first = spawn_app_with(Options {
        env: env.clone(),
        backend,
        ..Default::default()
    })
    .await;
    let second = spawn_app_with(Options {
        env,
        reuse: Some(first.shared()),
        ..Default::default()
    })
    .await;
    fresh_window().await;

    assert_eq!(
        content(&first, "debug-last", "42", &[]).await,
        "No recent command found for you."
    );
    assert!(
        !content(&second, "debug-last", "42", &[])
            .await
            .starts_with('⏳')
    );
    assert!(
        !content(&first, "debug-last", "42", &[])
            .await
            .starts_with('⏳')
    );
    // The fourth command in the window, through the other process.
    let refused = content(&second, "debug-last", "42", &[]).await;
    assert!(
        refused.starts_with("⏳ Rate limited: try again in "),
        "{refused}"
    );
    let secs: i64 = refused
        .trim_start_matches("⏳ Rate limited: try again in ")
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs));
    // Another user has a window of their own.
    assert!(
        !content(&first, "debug-last", "43", &[])
            .await
            .starts_with('⏳')
    );
}

#[tokio::test]
async fn blocked_users_are_refused_first_and_not_counted() {
    let app = spawn_app_with(Options {
        env: vec![
            ("BLOCKED_USER_IDS", "66".to_owned()),
            ("RATE_LIMIT_PER_MINUTE", "1".to_owned()),
            ("ADMIN_USER_IDS", "66".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    fresh_window().await;
    for _ in 0..3 {
        assert_eq!(
            content(&app, "status", "66", &[]).await,
            "⛔ You are blocked from using this bot."
        );
    }
}

#[tokio::test]
async fn authorization_is_deny_by_default_and_role_aware() {
    let app = spawn_app_with(Options {
        env: vec![
            ("ADMIN_USER_IDS", "1".to_owned()),
            ("DEPLOYER_ROLE_IDS", "500".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(
        content(&app, "deploy-client", "42", &[]).await,
        "⛔ /deploy-client: deployers only"
    );
    assert_eq!(
        content(&app, "set-frontend", "42", &["500"]).await,
        "⛔ /set-frontend: admin only"
    );
    // Allowed callers get past authorization (to the option check, answered at once).
    for (user, roles) in [("42", &["500"][..]), ("1", &[][..])] {
        let options = json!([{"name": "ref", "type": 3, "value": "a..b"}]);
        let body: Value = app
            .post_interaction(&command("deploy-client", options, user, roles, "tok"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["data"]["content"], "❌ `a..b` is not a valid git ref: it must not contain `..`",
            "{user}"
        );
    }

    // A denial is traced like any command.
    let text = content(&app, "debug-last", "42", &["500"]).await;
    assert!(text.contains("/deploy-client"), "{text}");
}

#[tokio::test]
async fn interactions_from_another_guild_are_refused() {
    let app = spawn_app_with(Options {
        env: vec![
            ("DISCORD_GUILD_ID", "12345".to_owned()),
            ("BLOCKED_USER_IDS", "66".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(
        content(&app, "debug-last", "42", &[]).await,
        "⛔ This bot is not available in this server."
    );
    // Blocked users are checked before anything else.
    assert_eq!(
        content(&app, "debug-last", "66", &[]).await,
        "⛔ You are blocked from using this bot."
    );
}

#[tokio::test]
async fn invalid_options_are_refused_at_once() {
    let app = spawn_app_with(Options::default()).await;
    let body: Value = app
        .post_interaction(&command(
            "status",
            json!([{"name": "count", "type": 4, "value": 50}]),
            "42",
            &[],
            "tok-inv",
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["type"], 4);
    assert_eq!(
        body["data"]["content"],
        "❌ `count` must be between 1 and 10"
    );
}
