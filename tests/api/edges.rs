//! Small edges of the request path: a 413 is JSON like every other error, an option of
//! the wrong JSON type gets the friendly validation reply, follow-ups go through the
//! configured application, a `custom_id` must be exactly what Valine renders, and the
//! TLS expiry `/diagnose` reads comes from the same checked, pinned connection as every
//! probe.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use valine::probe::Prober;
use valine::probe::target::TargetPolicy;

use crate::helpers::{
    APPLICATION_ID, Options, command, ephemeral_text, press, send, spawn_app, spawn_app_with,
};

/// The interactions endpoint's 413 is checked with its other limits.
#[tokio::test]
async fn an_oversized_webhook_is_a_json_413() {
    let app = spawn_app().await;
    let huge = vec![b'x'; 25 * 1024 * 1024 + 1];
    let res = app
        .http
        .post(app.url("/github/webhook"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-huge")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "request body too large"})
    );
}

/// GitHub sends deliveries of up to 25 MiB; axum's own 2 MiB default for a buffered body
/// must not refuse one first.
#[tokio::test]
async fn a_webhook_over_two_mebibytes_is_accepted() {
    let app = spawn_app().await;
    let zen = "x".repeat(3 * 1024 * 1024);
    let res = app
        .post_webhook("ping", "d-large", &json!({"zen": zen, "hook_id": 1}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn an_option_of_the_wrong_json_type_gets_the_friendly_reply() {
    let app = spawn_app().await;
    for value in [
        json!("3"),
        json!(3.5),
        json!(9_223_372_036_854_775_808u64),
        json!(true),
    ] {
        let body = command(
            "status",
            json!([{"name": "count", "type": 4, "value": value}]),
            "42",
            &[],
            "tok-type",
        );
        assert_eq!(
            ephemeral_text(&app, &body).await,
            "❌ `count` has the wrong type",
            "{value}"
        );
    }
}

#[tokio::test]
async fn follow_ups_edit_through_the_configured_application() {
    let app = spawn_app().await;
    let mut body = command("status", json!([]), "42", &[], "tok-app");
    body["application_id"] = "999999999999999999".into();
    assert_eq!(send(&app, &body).await, json!({"type": 5}));
    let edit = app
        .discord
        .log
        .wait_for(
            "PATCH",
            "/tok-app/messages/@original",
            std::time::Duration::from_secs(20),
        )
        .await;
    assert!(
        edit.path.ends_with(&format!(
            "/webhooks/{APPLICATION_ID}/tok-app/messages/@original"
        )),
        "{}",
        edit.path
    );
    assert!(
        app.discord
            .log
            .matching("PATCH", "999999999999999999")
            .is_empty(),
        "nothing went to the payload's application"
    );
}

#[tokio::test]
async fn a_custom_id_must_be_exactly_what_valine_renders() {
    let app = spawn_app().await;
    for custom_id in [
        "valine:reverify:9000\n",
        "valine:reverify: 9000",
        "valine:reverify:9000\t",
    ] {
        let answer = send(&app, &press("verify-run", custom_id, "42", "tok-cid")).await;
        assert_eq!(answer["type"], 4, "{custom_id:?}");
        assert_eq!(
            answer["data"]["content"], "❌ This button is not one Valine handles.",
            "{custom_id:?}"
        );
    }
    assert!(app.discord.log.all().is_empty(), "nothing was deferred");
}

/// Counts the TCP connections a listener accepts.
async fn counting_listener(ip: &str, port: u16) -> Arc<AtomicUsize> {
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    accepted
}

#[tokio::test]
async fn the_tls_expiry_read_never_connects_to_a_name_with_a_forbidden_address() {
    // `mixed.example.com` resolves to an allowed and a forbidden address, each with a
    // listener on the same port.
    let allowed_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = allowed_listener.local_addr().unwrap().port();
    drop(allowed_listener);
    let on_allowed = counting_listener("127.0.0.1", port).await;
    let on_forbidden = counting_listener("127.0.0.2", port).await;
    let allowed: IpAddr = "127.0.0.1".parse().unwrap();
    let prober = Prober::builder(TargetPolicy {
        safe_local: false,
        allowed_domains: Vec::new(),
    })
    .address_policy(move |ip| ip == allowed)
    .host(
        "mixed.example.com",
        vec![allowed, "127.0.0.2".parse().unwrap()],
    )
    .host("*", vec![])
    .build()
    .unwrap();
    let app = spawn_app_with(Options {
        env: vec![(
            "FRONTEND_BASE_URL",
            format!("https://mixed.example.com:{port}"),
        )],
        prober: Some(prober),
        ..Default::default()
    })
    .await;
    app.github
        .add_workflow(77, "Client deploy", "client-deploy.yml");

    assert_eq!(
        send(&app, &command("diagnose", json!([]), "42", &[], "tok-tls")).await,
        json!({"type": 5})
    );
    let edit = app.discord.wait_for_edit("tok-tls").await;
    let front = edit["embeds"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().starts_with("Frontend"))
        .map(|f| f["value"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no Frontend field in {edit}"));
    assert!(
        front.contains("❌ DNS: 127.0.0.1, 127.0.0.2 ⛔ forbidden"),
        "{front}"
    );
    assert!(
        front.contains("⚪ TLS: certificate not read (no answer)"),
        "{front}"
    );
    assert!(front.contains("refused"), "{front}");
    assert_eq!(on_allowed.load(Ordering::SeqCst), 0, "no connection at all");
    assert_eq!(
        on_forbidden.load(Ordering::SeqCst),
        0,
        "no connection at all"
    );
}
