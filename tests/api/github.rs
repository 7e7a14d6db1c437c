//! GitHub as the user meets it through a command: errors that name their cause (an
//! unreachable base URL, a web page instead of the API), retry progress in the
//! deferred message, and GitHub App authentication against the fake GitHub, which
//! checks the App's JWTs and installation tokens as GitHub does.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::{FakeSite, TEST_APP_PRIVATE_KEY, page};
use crate::helpers::{Options, TestApp, command, eventually, spawn_app_with};

/// The App the fake knows, and the installation it has on `octo-org/octo-repo`.
const APP_ID: u64 = 12345;
const INSTALLATION_ID: u64 = 4242;

/// Runs `/status` and returns the final content of its message (the last edit that is
/// not a progress line).
async fn status(app: &TestApp, token: &str) -> String {
    app.post_interaction(&command("status", json!([]), "42", &[], token))
        .await;
    eventually(Duration::from_secs(20), || async {
        app.discord
            .edits_of(token)
            .into_iter()
            .filter_map(|edit| edit["content"].as_str().map(str::to_owned))
            .rfind(|content| !content.starts_with("⏳"))
    })
    .await
}

async fn spawn(env: Vec<(&'static str, String)>) -> TestApp {
    let app = spawn_app_with(Options {
        env,
        github_retry_delay: Some(Duration::from_millis(10)),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app
}

/// Valine configured as App `APP_ID` (no `GITHUB_TOKEN`, no installation id).
fn app_env() -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_TOKEN", String::new()),
        ("GITHUB_APP_ID", APP_ID.to_string()),
        ("GITHUB_APP_PRIVATE_KEY", TEST_APP_PRIVATE_KEY.to_owned()),
    ]
}

fn authorization(recorded: &crate::fakes::Recorded) -> String {
    recorded
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_refused_connection_names_the_base_url_and_the_cause() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let base = format!("http://{closed}/api/v3");
    let app = spawn(vec![("GITHUB_API_BASE", base.clone())]).await;
    let content = status(&app, "tok-refused").await;
    assert!(
        content.starts_with(&format!(
            "❌ cannot reach GitHub at {base}: connection refused (trace "
        )),
        "{content}"
    );
}

#[tokio::test]
async fn a_web_page_instead_of_the_api_points_at_github_api_base() {
    let site = FakeSite::start().await;
    site.set(
        "/repos/octo-org/octo-repo/actions/workflows/client-deploy.yml",
        page(200),
    );
    let app = spawn(vec![("GITHUB_API_BASE", site.url())]).await;
    let content = status(&app, "tok-html").await;
    assert!(
        content.starts_with(&format!(
            "❌ GitHub answered HTML, not JSON (status 200) — check GITHUB_API_BASE (now {})",
            site.url()
        )),
        "{content}"
    );
    assert_eq!(site.hits(), 1, "a web page is not asked again");
}

#[tokio::test]
async fn retries_show_in_the_deferred_message_before_the_reply() {
    let app = spawn(Vec::new()).await;
    app.github.set_outage(2);
    let content = status(&app, "tok-retry").await;
    assert!(!content.starts_with('❌'), "{content}");
    let edits: Vec<Value> = app.discord.edits_of("tok-retry");
    assert_eq!(
        edits[0]["content"], "⏳ GitHub is not answering — retrying (1/3)…",
        "{edits:?}"
    );
    assert_eq!(
        edits.last().unwrap()["content"],
        content,
        "no progress line after the reply"
    );
}

#[tokio::test]
async fn commands_run_on_an_installation_token_found_from_the_repository() {
    let app = spawn(app_env()).await;
    app.github.enable_app(APP_ID, INSTALLATION_ID);
    let content = status(&app, "tok-app1").await;
    assert!(!content.starts_with('❌'), "{content}");

    let lookups = app
        .github
        .log
        .matching("GET", "/repos/octo-org/octo-repo/installation");
    assert_eq!(lookups.len(), 1, "the installation is found once");
    assert!(authorization(&lookups[0]).starts_with("Bearer ey"), "a JWT");
    let grants = app.github.log.matching(
        "POST",
        &format!("/app/installations/{INSTALLATION_ID}/access_tokens"),
    );
    assert_eq!(grants.len(), 1);
    let workflow = app
        .github
        .log
        .matching("GET", "/actions/workflows/client-deploy.yml");
    assert!(authorization(&workflow[0]).starts_with("Bearer ghs_"));

    // The token is reused while fresh.
    let content = status(&app, "tok-app2").await;
    assert!(!content.starts_with('❌'), "{content}");
    assert_eq!(app.github.token_grants(), 1);
    assert_eq!(
        app.github
            .log
            .matching("GET", "/repos/octo-org/octo-repo/installation")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_command_succeeds() {
    let app = spawn(app_env()).await;
    app.github.enable_app(APP_ID, INSTALLATION_ID);
    status(&app, "tok-rev1").await;
    app.github.revoke_app_tokens();
    let content = status(&app, "tok-rev2").await;
    assert!(!content.starts_with('❌'), "{content}");
    assert_eq!(app.github.token_grants(), 2);
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_it_is_sent() {
    let app = spawn(app_env()).await;
    app.github.enable_app(APP_ID, INSTALLATION_ID);
    // Shorter than the five minutes of margin: never fresh enough to reuse.
    app.github.set_app_token_ttl(chrono::Duration::minutes(4));
    status(&app, "tok-exp1").await;
    status(&app, "tok-exp2").await;
    let api_requests: Vec<String> = app
        .github
        .log
        .all()
        .iter()
        .filter(|r| !r.path.contains("/app/") && !r.path.ends_with("/installation"))
        .map(authorization)
        .collect();
    assert!(api_requests.len() >= 2, "{api_requests:?}");
    assert_eq!(
        app.github.token_grants(),
        api_requests.len(),
        "each request got a token with more than five minutes left"
    );
    let distinct: std::collections::BTreeSet<&String> = api_requests.iter().collect();
    assert_eq!(distinct.len(), api_requests.len());
}

#[tokio::test]
async fn refused_app_credentials_name_the_variables_to_check() {
    // GitHub knows another App id: the JWT is refused.
    let app = spawn(app_env()).await;
    app.github.enable_app(999, INSTALLATION_ID);
    let content = status(&app, "tok-refused-app").await;
    assert!(
        content.starts_with(
            "❌ GitHub App credentials were refused — check GITHUB_APP_ID and \
             GITHUB_APP_PRIVATE_KEY (trace "
        ),
        "{content}"
    );

    // Tokens that GitHub refuses (expired at once): one refresh, then the same message.
    let app = spawn(app_env()).await;
    app.github.enable_app(APP_ID, INSTALLATION_ID);
    app.github.set_app_token_ttl(chrono::Duration::zero());
    let content = status(&app, "tok-expired").await;
    assert!(
        content.starts_with("❌ GitHub App credentials were refused"),
        "{content}"
    );
    assert_eq!(app.github.token_grants(), 2, "one refresh, no more");
}
