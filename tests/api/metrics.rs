//! `GET /metrics` on its own listener: a command, its job, its GitHub calls and a
//! webhook delivery show up as the Prometheus series the operator scrapes.

use serde_json::json;

use crate::helpers::{command, spawn_app};

/// The samples of one scrape, parsed with a Prometheus text-format parser.
async fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let res = crate::helpers::http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

fn has(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> bool {
    scrape
        .samples
        .iter()
        .any(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

#[tokio::test]
async fn commands_webhooks_jobs_and_github_calls_are_scraped() {
    let handle = valine::metrics::install().expect("recorder installs");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let _server = valine::jobs::AbortOnDrop(tokio::spawn(valine::metrics::serve(
        listener,
        handle,
        std::future::pending(),
    )));

    let app = spawn_app().await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");
    // A deferred command: answered now, completed by its job, which calls GitHub.
    let res = app
        .post_interaction(&command("status", json!([]), "42", &[], "tok-metrics"))
        .await;
    assert_eq!(res.status(), 200);
    app.discord.wait_for_edit("tok-metrics").await;
    // The repository read answers with GitHub's rate-limit header.
    app.app.github().unwrap().token_info().await.unwrap();
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 7});
    assert_eq!(app.post_webhook("ping", "m-1", &ping).await.status(), 200);

    // The job's completion is counted just after its reply is delivered.
    let scrape = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        let scrape = scrape(metrics_addr).await;
        has(
            &scrape,
            "valine_jobs_total",
            &[("job", "command"), ("outcome", "ok")],
        )
        .then_some(scrape)
    })
    .await;

    let expected: [(&str, &[(&str, &str)]); 7] = [
        (
            "valine_commands_total",
            &[("command", "status"), ("outcome", "ok")],
        ),
        (
            "valine_command_duration_seconds_count",
            &[("command", "status")],
        ),
        (
            "valine_webhooks_total",
            &[("event", "ping"), ("outcome", "ok")],
        ),
        (
            "valine_jobs_total",
            &[("job", "command"), ("outcome", "ok")],
        ),
        ("valine_jobs_pending", &[]),
        ("valine_github_requests_total", &[("status", "200")]),
        ("valine_github_rate_remaining", &[]),
    ];
    for (name, labels) in expected {
        assert!(has(&scrape, name, labels), "{name} {labels:?} missing");
    }
    // A histogram with buckets, not a summary: quantiles cannot be aggregated.
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "valine_command_duration_seconds"
                && s.labels.get("command") == Some("status")
        })
        .expect("duration histogram");
    assert!(
        matches!(&histogram.value, prometheus_parse::Value::Histogram(buckets) if !buckets.is_empty()),
        "{:?}",
        histogram.value
    );
    assert!(
        scrape.docs.contains_key("valine_commands_total"),
        "{:?}",
        scrape.docs
    );

    // The public listener never serves the metrics.
    let public = crate::helpers::http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    app.stop().await;
}
