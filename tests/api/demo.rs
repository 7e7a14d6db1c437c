//! `valine demo`: the real binary, with no credentials and an environment cleared of
//! GitHub, Discord, AWS and proxy variables, walks through its commands against the
//! simulation on loopback; `--serve` answers a `valine invoke` from a second process;
//! and the simulated GitHub answers in the contract's shapes.

use std::collections::HashMap;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::binary::{collect_stdout, valine};
use crate::helpers::eventually;
use crate::status::assert_required;

/// Each test's budget for the binary to finish what it was asked.
const DEADLINE: Duration = Duration::from_secs(20);

/// Only a temporary directory of the test's own: the demo's files go there, and
/// nothing from the test runner's environment (tokens, proxies) reaches the binary.
fn vars(tmp: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([("TMPDIR".to_owned(), tmp.display().to_string())])
}

/// Waits for `child` to exit, polling until the deadline; kills it if it does not.
async fn exit_of(child: &mut Child) -> std::process::ExitStatus {
    let waited = eventually(DEADLINE, || {
        let status = child.try_wait().unwrap();
        async move { status }
    });
    match tokio::time::timeout(DEADLINE + Duration::from_secs(1), waited).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill();
            panic!("the process did not exit within {DEADLINE:?}");
        }
    }
}

/// Kills the process if a failed assertion leaves it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_demo_walks_through_the_main_features_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let child = valine(&vars(tmp.path()))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output: Output = tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the demo finishes within its deadline")
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // Logs stay off stdout, and at `warn` there are none on a good run.
    assert!(stderr.trim().is_empty(), "{stderr}");
    for expected in [
        // /status: the run list, the failed run among the successes.
        "== Deploy runs on main ==",
        "🔴 failure",
        // /verify-latest: a verification report with the probes of the site.
        "== ✅ Deploy verified ==",
        "Cache-Control (`/index.html`): `no-cache, max-age=0`",
        "✅ `/health` 200",
        // /diagnose: where the failed run broke, with its log tail.
        "step `Build`",
        "error TS2322",
        "##[error]Process completed with exit code 2.",
        // /deploy-client wait:true: dispatched, followed, completed and verified.
        "== 🚀 Deploy dispatched ==",
        "This message follows the run.",
        "is in progress on `main`",
        "Client deploy: success",
        // /debug-last: the deploy's trace.
        "Command: `/deploy-client wait:true`",
        "github.dispatch_workflow",
        // The way on.
        "valine register-commands",
        "valine doctor",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    // The run was followed through its progress to its verified result, in order.
    let dispatched = stdout.find("== 🚀 Deploy dispatched ==").unwrap();
    let progress = stdout.find("is in progress on `main`").unwrap();
    let result = stdout.find("Client deploy: success").unwrap();
    let verified = stdout[result..].find("== ✅ Deploy verified ==");
    assert!(dispatched < progress && progress < result && verified.is_some());
    // Every address it printed is on loopback.
    for url in stdout.split(|c: char| c.is_whitespace() || "()[]`".contains(c)) {
        if url.starts_with("http://") || url.starts_with("https://") {
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        }
    }
    // Its configuration and store went with it.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A shell set up for a real deployment, behind a proxy: the demo must use none of it.
fn real_shell(tmp: &std::path::Path) -> HashMap<String, String> {
    let dead = "http://127.0.0.1:9";
    let mut vars = vars(tmp);
    for (var, value) in [
        ("GITHUB_API_BASE", dead),
        ("GITHUB_TOKEN", "ghp_real_token_of_the_shell"),
        ("GITHUB_REPO", "real-org/real-repo"),
        ("DISCORD_API_BASE", dead),
        ("DISCORD_BOT_TOKEN", "real.bot.token"),
        ("FRONTEND_BASE_URL", dead),
        ("VALINE_STORE", "dynamodb:real-table"),
        ("HTTP_PROXY", dead),
        ("HTTPS_PROXY", dead),
        ("ALL_PROXY", dead),
    ] {
        vars.insert(var.to_owned(), value.to_owned());
    }
    vars
}

#[tokio::test]
async fn the_served_demo_answers_invoke_from_another_process_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    // Its exit code says whether the walkthrough succeeded, despite that environment.
    let mut demo = KillOnDrop(
        valine(&real_shell(tmp.path()))
            .args(["demo", "--serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines, reader) = collect_stdout(&mut demo.0);
    let printed = tokio::time::timeout(
        DEADLINE,
        eventually(DEADLINE + Duration::from_secs(1), || {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("invoke '/status'"))
                .cloned();
            async move { found }
        }),
    )
    .await;
    let line = printed.unwrap_or_else(|_| {
        panic!(
            "no invoke line within {DEADLINE:?}; the demo printed:\n{}",
            lines.lock().unwrap().join("\n")
        )
    });
    // `  VALINE_CONFIG=<file> <program> invoke '/status'`
    let config = line
        .trim()
        .strip_prefix("VALINE_CONFIG=")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no config in {line:?}"))
        .to_owned();
    assert!(std::path::Path::new(&config).is_file(), "{config}");

    let mut invoke_vars = vars(tmp.path());
    invoke_vars.insert("VALINE_CONFIG".into(), config.clone());
    let mut invoke = valine(&invoke_vars)
        .args(["invoke", "/status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (answer, answer_reader) = collect_stdout(&mut invoke);
    let status = exit_of(&mut invoke).await;
    answer_reader.join().unwrap();
    let answer = answer.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(0), "{answer}");
    assert!(answer.contains("== Deploy runs on main =="), "{answer}");
    assert!(answer.contains("🔴 failure"), "{answer}");

    let pid = demo.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = exit_of(&mut demo.0).await;
    reader.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the walkthrough succeeded and SIGTERM ends the demo cleanly"
    );
    assert!(
        !std::path::Path::new(&config).exists(),
        "the demo's files are removed when it stops"
    );
}

#[tokio::test]
async fn the_simulated_github_answers_in_the_contracts_shapes() {
    use valine::demo::github::{DEPLOY_WORKFLOW, Sim};
    use valine::demo::shapes::Place;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let place = Place {
        base: base.clone(),
        repo: "demo/shop".into(),
    };
    let sim = Sim::new(place, "t0ken", valine::clock::Clock::system()).unwrap();
    let router = sim.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = crate::helpers::http();
    let get = |path: String| {
        let request = http.get(format!("{base}{path}")).bearer_auth("t0ken");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };

    let runs_path = format!(
        "/repos/demo/shop/actions/workflows/{}/runs?branch=main",
        DEPLOY_WORKFLOW.file
    );
    let runs = get(runs_path).await;
    let run_id = runs["workflow_runs"][0]["id"].as_u64().unwrap();
    assert_eq!(runs["total_count"], 4);
    let cases = [
        (
            "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            format!(
                "/repos/demo/shop/actions/workflows/{}/runs",
                DEPLOY_WORKFLOW.id
            ),
        ),
        (
            "/repos/{owner}/{repo}/actions/workflows/{workflow_id}",
            format!(
                "/repos/demo/shop/actions/workflows/{}",
                DEPLOY_WORKFLOW.file
            ),
        ),
        (
            "/repos/{owner}/{repo}/actions/workflows",
            "/repos/demo/shop/actions/workflows".to_owned(),
        ),
        (
            "/repos/{owner}/{repo}/actions/runs/{run_id}",
            format!("/repos/demo/shop/actions/runs/{run_id}"),
        ),
        (
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            format!("/repos/demo/shop/actions/runs/{run_id}/jobs"),
        ),
        ("/rate_limit", "/rate_limit".to_owned()),
        ("/repos/{owner}/{repo}", "/repos/demo/shop".to_owned()),
    ];
    for (template, path) in cases {
        let body = get(path).await;
        assert_required(&crate::fakes::contract_schema(template), &body, template);
        // Nothing the simulation serves points off the machine.
        let text = body.to_string();
        assert!(!text.contains("api.github.com"), "{template}");
        assert!(!text.contains("octo-org/octo-repo"), "{template}");
    }
    let run = get(format!("/repos/demo/shop/actions/runs/{run_id}")).await;
    assert_eq!(run["repository"]["full_name"], "demo/shop");
    assert!(run["html_url"].as_str().unwrap().starts_with(&base));

    // Only the demo's token is accepted, as GitHub refuses any other.
    let refused = http
        .get(format!("{base}/repos/demo/shop"))
        .bearer_auth("another")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let elsewhere = http
        .get(format!("{base}/repos/octo-org/octo-repo"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
}
