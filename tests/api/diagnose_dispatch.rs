//! `/diagnose` dispatching `DIAGNOSE_WORKFLOW` once, end to end against the fake GitHub
//! and Discord: DRY_RUN writes no marker, a 5xx is looked up rather than called a
//! failure (and never re-sent), a refusal is not audited, the marker's token expiry
//! follows the configured interaction token lifetime, and the reply does not wait for
//! the run to be identified.

use std::time::Duration;

use serde_json::{Value, json};

use valine::app::WorkerSettings;
use valine::store::{AuditRecord, CorrelationKind, CorrelationRecord};

use crate::fakes::DispatchMode;
use crate::helpers::{Options, TestApp, command, spawn_app_with};

const REQUESTER: &str = "42";
const DIAGNOSE_WORKFLOW: u64 = 88;

/// Identification short enough that a search which finds nothing ends in moments.
fn quick(worker: &mut WorkerSettings) {
    worker.identify_timeout = Duration::from_secs(2);
    worker.identify_poll = Duration::from_secs(1);
}

async fn spawn(extra: &[(&'static str, &str)], tune: fn(&mut WorkerSettings)) -> TestApp {
    let mut env = vec![("DIAGNOSE_WORKFLOW", "diagnose.yml".to_owned())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let app = spawn_app_with(Options {
        env,
        tune: Some(tune),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    app.github
        .add_workflow(DIAGNOSE_WORKFLOW, "Diagnose", "diagnose.yml");
    app
}

/// Runs `/diagnose` and returns its "Diagnose workflow" line.
async fn diagnose(app: &TestApp, token: &str) -> String {
    let res = app
        .post_interaction(&command("diagnose", json!([]), REQUESTER, &[], token))
        .await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer, json!({"type": 5}), "public, deferred");
    let edit = app.discord.wait_for_edit(token).await;
    edit["embeds"][0]["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == "Diagnose workflow"))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no Diagnose workflow field in {edit}"))
        .to_owned()
}

/// The correlation id a line quotes: `… correlation id `vl-…` …`.
fn correlation_in(line: &str) -> String {
    let start = line
        .find("correlation id `")
        .unwrap_or_else(|| panic!("no correlation id in {line}"))
        + "correlation id `".len();
    let id = &line[start..start + 19];
    assert!(id.starts_with("vl-"), "{line}");
    id.to_owned()
}

async fn marker(app: &TestApp, correlation: &str) -> Option<CorrelationRecord> {
    app.app
        .store
        .get_correlation(correlation, crate::helpers::now_secs())
        .await
        .unwrap()
}

async fn audit(app: &TestApp) -> Vec<AuditRecord> {
    app.app
        .store
        .list_audit(None, 0, crate::helpers::now_secs())
        .await
        .unwrap()
}

fn runs_listings(app: &TestApp) -> usize {
    app.github
        .log
        .matching(
            "GET",
            &format!("/actions/workflows/{DIAGNOSE_WORKFLOW}/runs"),
        )
        .len()
}

#[tokio::test]
async fn a_dispatch_github_accepts_links_its_run_and_is_audited_once() {
    let app = spawn(&[], quick).await;
    let line = diagnose(&app, "tok-ok").await;
    let correlation = correlation_in(&line);
    assert_eq!(
        line,
        format!(
            "✅ `diagnose.yml` dispatched · correlation id `{correlation}` · \
             [run](https://github.com/octo-org/octo-repo/actions/runs/9000)"
        )
    );
    let dispatches = app.github.dispatches();
    assert_eq!(dispatches.len(), 1);
    let inputs = &dispatches[0].body["inputs"];
    assert_eq!(inputs["correlation_id"], correlation.as_str());
    assert_eq!(inputs["requester"], REQUESTER);
    assert!(inputs.get("frontend_url").is_some() && inputs.get("api_base").is_some());

    let marker = marker(&app, &correlation).await.expect("marker written");
    assert_eq!(marker.kind, CorrelationKind::Diagnose);
    assert_eq!(marker.run_id, Some(9000));
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].action,
        format!("dispatch diagnose.yml at main ({correlation})")
    );
    assert_eq!(records[0].user_id, REQUESTER);
    assert!(!records[0].dry_run);
}

#[tokio::test]
async fn dry_run_writes_no_marker_sends_nothing_and_audits_a_dry_run() {
    let app = spawn(&[("DRY_RUN", "true")], quick).await;
    let line = diagnose(&app, "tok-dry").await;
    assert!(
        line.starts_with(
            "🧪 dry run: would dispatch workflow 88 at main: \
             `POST /repos/octo-org/octo-repo/actions/workflows/88/dispatches {"
        ),
        "{line}"
    );
    let correlation = correlation_in(&line);
    assert!(line.contains(&format!("\"correlation_id\":\"{correlation}\"")));

    assert!(app.github.writes().is_empty(), "nothing sent to GitHub");
    assert!(
        marker(&app, &correlation).await.is_none(),
        "no marker to guard a request that was never sent"
    );
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].dry_run);
}

#[tokio::test]
async fn a_5xx_whose_run_appears_is_reported_dispatched_and_sent_once() {
    let app = spawn(&[], quick).await;
    app.github
        .set_dispatch_mode(DispatchMode::FailAfterRun(502));
    let line = diagnose(&app, "tok-5xx").await;
    let correlation = correlation_in(&line);
    assert_eq!(
        line,
        format!(
            "✅ `diagnose.yml` dispatched · correlation id `{correlation}` · \
             [run](https://github.com/octo-org/octo-repo/actions/runs/9000)"
        )
    );
    assert_eq!(app.github.dispatches().len(), 1, "never sent again");
    assert_eq!(marker(&app, &correlation).await.unwrap().run_id, Some(9000));
    // Audited once the run was found, though GitHub's answer was lost.
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0].dry_run);
}

#[tokio::test]
async fn a_5xx_whose_run_never_appears_is_not_confirmed_and_not_resent() {
    let app = spawn(&[], quick).await;
    app.github.set_dispatch_mode(DispatchMode::Fail(502));
    let line = diagnose(&app, "tok-lost").await;
    let correlation = correlation_in(&line);
    assert_eq!(
        line,
        format!("⚠️ dispatch not confirmed; not re-sent · correlation id `{correlation}`")
    );
    assert!(!line.contains("dispatch failed"));
    assert_eq!(app.github.dispatches().len(), 1, "never sent again");
    assert!(runs_listings(&app) >= 1, "the run was looked for");
    assert!(audit(&app).await.is_empty(), "nothing confirmed to audit");
}

#[tokio::test]
async fn a_refused_dispatch_says_why_and_is_not_audited() {
    let app = spawn(&[], quick).await;
    app.github.set_dispatch_mode(DispatchMode::Fail(422));
    let line = diagnose(&app, "tok-422").await;
    let correlation = correlation_in(&line);
    assert_eq!(
        line,
        format!(
            "❌ dispatch failed: GitHub API error 422: Unexpected inputs provided: \
             [\"frontend_url\"] · correlation id `{correlation}`"
        )
    );
    assert_eq!(app.github.dispatches().len(), 1);
    assert_eq!(
        runs_listings(&app),
        0,
        "a refusal started nothing to look for"
    );
    assert!(audit(&app).await.is_empty(), "nothing happened to audit");
}

#[tokio::test]
async fn the_marker_token_expiry_follows_the_configured_token_lifetime() {
    let app = spawn(&[], |w| {
        quick(w);
        w.interaction_token_ttl = Duration::from_secs(90);
    })
    .await;
    let line = diagnose(&app, "tok-ttl").await;
    let marker = marker(&app, &correlation_in(&line))
        .await
        .expect("marker written");
    assert_eq!(marker.interaction_token.as_deref(), Some("tok-ttl"));
    let ttl = marker.token_expires_at_ms - marker.created_at_ms;
    assert!(
        ttl > 80_000 && ttl <= 90_000,
        "the token lives 90 s from the interaction: {ttl}"
    );
}

#[tokio::test]
async fn an_accepted_run_not_yet_identified_is_left_to_the_webhook() {
    // An identification wait /deploy-client would make; /diagnose must not.
    let app = spawn(&[], |w| {
        w.identify_timeout = Duration::from_secs(600);
        w.identify_poll = Duration::from_secs(1);
    })
    .await;
    app.github.set_dispatch_mode(DispatchMode::NoContent);
    app.github.set_titles_without_correlation(true);
    let line = diagnose(&app, "tok-later").await;
    let correlation = correlation_in(&line);
    assert_eq!(
        line,
        format!(
            "✅ `diagnose.yml` dispatched · correlation id `{correlation}` · \
             its run will appear on GitHub shortly"
        )
    );
    assert!(runs_listings(&app) <= 1, "looked once at most");
    assert_eq!(
        marker(&app, &correlation).await.unwrap().run_id,
        None,
        "the webhook attaches it by its title"
    );
    assert_eq!(audit(&app).await.len(), 1, "accepted, so audited");
}
