//! Tolerant interaction parsing over HTTP: realistic payloads Discord sends (with the
//! fields Valine does not read missing, `null` or new) are answered 200, and only a body
//! Valine cannot act on at all is a 400.

use serde_json::{Value, json};

use valine::discord::interaction::corpus;

use crate::helpers::{command, spawn_app};

/// The answer's callback type and whether it is ephemeral (flag 64).
fn answer_type(body: &Value) -> (u64, bool) {
    (
        body["type"].as_u64().unwrap_or(0),
        body["data"]["flags"].as_u64() == Some(64),
    )
}

#[tokio::test]
async fn every_realistic_payload_is_answered() {
    let app = spawn_app().await;
    let expected: &[(&str, u64)] = &[
        ("ping_from_discord", 1),
        ("ping_minimal", 1),
        // `/status` defers; `/deploy-client` from a non-deployer is refused at once.
        ("guild_command_status", 5),
        ("dm_command_deploy", 4),
        ("guild_command_block_user_option", 4),
        ("autocomplete_verify_run", 8),
        // Re-verify defers; a settings Cancel from a non-admin is refused at once.
        ("button_press_on_webhook_message", 5),
        ("button_press_minimal_message", 4),
        ("modal_submit", 4),
    ];
    assert_eq!(expected.len(), corpus::PAYLOADS.len());
    for (name, callback) in expected {
        let (_, raw) = corpus::PAYLOADS.iter().find(|(n, _)| n == name).unwrap();
        let payload: Value = serde_json::from_str(raw).unwrap();
        let res = app.post_interaction(&payload).await;
        assert_eq!(res.status(), 200, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(answer_type(&body).0, *callback, "{name}: {body}");
    }
}

#[tokio::test]
async fn a_modal_submit_is_answered_as_not_supported() {
    let app = spawn_app().await;
    let (_, raw) = corpus::PAYLOADS
        .iter()
        .find(|(n, _)| *n == "modal_submit")
        .unwrap();
    let body: Value = app
        .post_interaction(&serde_json::from_str(raw).unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer_type(&body), (4, true));
    assert!(
        body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("not supported"),
        "{body}"
    );
}

#[tokio::test]
async fn only_bodies_valine_cannot_act_on_are_400() {
    let app = spawn_app().await;
    let mut no_user = command("status", json!([]), "42", &[], "tok-no-user");
    no_user.as_object_mut().unwrap().remove("member");
    let mut no_type = command("status", json!([]), "42", &[], "tok-no-type");
    no_type.as_object_mut().unwrap().remove("type");
    for (why, body) in [
        ("no type", no_type),
        ("no user id on a command", no_user),
        ("not an object", json!([{"type": 1}])),
    ] {
        let res = app.post_interaction(&body).await;
        assert_eq!(res.status(), 400, "{why}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"error": "not a valid interaction"}),
            "{why}"
        );
    }
    // A PING needs nothing but its type.
    let res = app.post_interaction(&json!({"type": 1})).await;
    assert_eq!(res.status(), 200);
}
