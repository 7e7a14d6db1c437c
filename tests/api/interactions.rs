//! The Discord interactions endpoint: signature checks, PING, and the answers that are
//! never a 5xx.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Options, command, now_secs, sign, spawn_app, spawn_app_with};

const INVALID: &str = r#"{"error":"invalid request signature"}"#;

fn ping() -> Value {
    json!({"id": "1", "application_id": "4242", "type": 1, "token": "t", "version": 1})
}

#[tokio::test]
async fn ping_gets_pong_on_both_paths() {
    let app = spawn_app().await;
    let res = app.post_interaction(&ping()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 1}));

    let raw = ping().to_string();
    let ts = now_secs().to_string();
    let res = app
        .post_signed("/discord", &raw, &ts, &sign(&ts, raw.as_bytes()))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"type": 1}));
}

#[tokio::test]
async fn every_bad_signature_is_a_401_with_the_same_body() {
    let app = spawn_app().await;
    let raw = ping().to_string();
    let ts = now_secs().to_string();
    let good = sign(&ts, raw.as_bytes());
    // 10 s past the 300 s window, so a second ticking over mid-test changes nothing;
    // the exact boundary is unit-tested in discord::signature.
    let old_ts = (now_secs() - 310).to_string();
    let future_ts = (now_secs() + 310).to_string();
    let cases: Vec<(&str, String, String, String)> = vec![
        (
            "wrong signature",
            raw.clone(),
            ts.clone(),
            sign(&ts, b"something else"),
        ),
        (
            "tampered body",
            raw.replace("\"t\"", "\"u\""),
            ts.clone(),
            good.clone(),
        ),
        (
            "short signature",
            raw.clone(),
            ts.clone(),
            good[..64].to_owned(),
        ),
        (
            "non-hex signature",
            raw.clone(),
            ts.clone(),
            "zz".repeat(64),
        ),
        (
            "stale timestamp",
            raw.clone(),
            old_ts.clone(),
            sign(&old_ts, raw.as_bytes()),
        ),
        (
            "future timestamp",
            raw.clone(),
            future_ts.clone(),
            sign(&future_ts, raw.as_bytes()),
        ),
        (
            "timestamp not a number",
            raw.clone(),
            "soon".into(),
            sign("soon", raw.as_bytes()),
        ),
    ];
    for (name, body, ts, sig) in cases {
        let res = app
            .post_signed("/discord/interactions", &body, &ts, &sig)
            .await;
        assert_eq!(res.status(), 401, "{name}");
        assert_eq!(res.text().await.unwrap(), INVALID, "{name}");
    }
    let res = app
        .http
        .post(app.url("/discord/interactions"))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "missing headers");
    assert_eq!(res.text().await.unwrap(), INVALID);
}

#[tokio::test]
async fn header_names_match_case_insensitively() {
    let app = spawn_app().await;
    let raw = ping().to_string();
    let ts = now_secs().to_string();
    let sig = sign(&ts, raw.as_bytes());
    let request = format!(
        "POST /discord/interactions HTTP/1.1\r\nHost: x\r\nX-SIGNATURE-ED25519: {sig}\r\nx-Signature-TIMESTAMP: {ts}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{raw}",
        raw.len()
    );
    let addr = app.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"type":1}"#), "{response}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_anything_else() {
    let app = spawn_app().await;
    let raw = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 1));
    let ts = now_secs().to_string();
    let res = app
        .post_signed(
            "/discord/interactions",
            &raw,
            &ts,
            &sign(&ts, raw.as_bytes()),
        )
        .await;
    assert_eq!(res.status(), 413);
    // JSON, like every other error.
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "request body too large"})
    );
}

#[tokio::test]
async fn signed_bodies_that_are_not_interactions_are_400() {
    let app = spawn_app().await;
    for raw in ["not json", r#"{"type": 2}"#, r#"{"hello": "world"}"#] {
        let ts = now_secs().to_string();
        let res = app
            .post_signed(
                "/discord/interactions",
                raw,
                &ts,
                &sign(&ts, raw.as_bytes()),
            )
            .await;
        assert_eq!(res.status(), 400, "{raw}");
    }
}

#[tokio::test]
async fn missing_public_key_is_a_503_naming_it() {
    let app = spawn_app_with(Options {
        env: vec![("DISCORD_PUBLIC_KEY", String::new())],
        ..Default::default()
    })
    .await;
    let res = app.post_interaction(&ping()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "DISCORD_PUBLIC_KEY is not configured"})
    );
}

#[tokio::test]
async fn unknown_commands_buttons_and_autocomplete_get_answers_not_errors() {
    let app = spawn_app().await;
    let res = app
        .post_interaction(&command("no-such", json!([]), "42", &[], "tok-unknown"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], 4);
    assert_eq!(body["data"]["flags"], 64);
    assert!(
        body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Unknown command /no-such")
    );

    let mut press = command("status", json!([]), "42", &[], "tok-button");
    press["type"] = 3.into();
    press["data"] = json!({"custom_id": "other:thing", "component_type": 2});
    let body: Value = app.post_interaction(&press).await.json().await.unwrap();
    assert_eq!(body["type"], 4);
    assert_eq!(body["data"]["flags"], 64);

    let mut auto = command(
        "verify-run",
        json!([{"name": "run_id", "type": 3, "value": "12", "focused": true}]),
        "42",
        &[],
        "tok-auto",
    );
    auto["type"] = 4.into();
    let body: Value = app.post_interaction(&auto).await.json().await.unwrap();
    assert_eq!(body, json!({"type": 8, "data": {"choices": []}}));
}

#[tokio::test]
async fn healthz_reports_version_stage_and_store() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "ok");
    assert_eq!(body["stage"], "test");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_its_own_or_a_new_random_one() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let res = app.http.get(app.url("/healthz")).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 4, "{id}");
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1]);
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "from-the-caller")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "from-the-caller");
}
