//! Where the messages of a followed command land: a stand-in for Discord's endpoint that
//! edits an interaction's original response (`PATCH
//! /webhooks/{application}/{token}/messages/@original`). Valine's follow jobs edit the
//! `/deploy-client wait:true` message as the run moves on, exactly as they would in
//! Discord; the demo receives each edit here and prints it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The path prefix Valine's Discord client puts before every endpoint.
pub const API_PREFIX: &str = "/api/v10";

/// One edit of a message, as Valine sent it.
#[derive(Debug, Clone)]
pub struct Edit {
    pub token: String,
    pub message: Value,
}

#[derive(Clone)]
struct Shared {
    edits: mpsc::UnboundedSender<Edit>,
    last: Arc<Mutex<std::collections::HashMap<String, Value>>>,
}

/// The router, and the receiving end of the edits it accepts.
pub fn router() -> (Router, mpsc::UnboundedReceiver<Edit>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Shared {
        edits: tx,
        last: Arc::default(),
    };
    let path = format!("{API_PREFIX}/webhooks/{{application}}/{{token}}/messages/@original");
    let router = Router::new()
        .route(&path, patch(edit).get(original))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "Unknown", "code": 0})),
            )
        })
        .with_state(shared);
    (router, rx)
}

async fn edit(
    State(shared): State<Shared>,
    Path((_, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(mut message) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "Cannot send an empty message", "code": 50006})),
        )
            .into_response();
    };
    message["id"] = "1".into();
    shared
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), message.clone());
    // Nobody listening (the demo is stopping) is no reason to refuse the edit.
    let _ = shared.edits.send(Edit {
        token,
        message: message.clone(),
    });
    axum::Json(message).into_response()
}

/// The message as the last edit left it (Valine reads it to add to it).
async fn original(
    State(shared): State<Shared>,
    Path((_, token)): Path<(String, String)>,
) -> Response {
    let last = shared
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&token)
        .cloned();
    axum::Json(
        last.unwrap_or_else(|| json!({"id": "1", "content": "", "embeds": [], "components": []})),
    )
    .into_response()
}
