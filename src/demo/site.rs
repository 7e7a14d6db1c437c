//! The simulated deployed site: a frontend answering `/` and `/index.html` (the page
//! revalidated on every load, as a deploy that invalidates its cache wants) and an API
//! answering `/health` and `/hello`, the default verify paths.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = "<!doctype html>\n<html><head><title>Shop</title>\
                    <script type=\"module\" src=\"/assets/index.js\"></script></head>\
                    <body><div id=\"root\"></div></body></html>\n";

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        PAGE,
    )
}

/// The frontend a deploy publishes.
pub fn frontend() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
}

/// The API the frontend calls.
pub fn api() -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/hello",
            get(|| async { axum::Json(serde_json::json!({"message": "hello from the shop API"})) }),
        )
}
