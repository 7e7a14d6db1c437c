//! The binary's edges as an operator meets them: output into a closed pipe, shell
//! completions, `--version`, `valine config`, readable logs and their defaults, the store
//! path in messages, and `invoke`'s answers to mistakes.

use std::collections::HashMap;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::binary::valine;
use crate::fakes::{FakeDiscord, FakeGitHub, healthy_sites, page};
use crate::helpers::{GITHUB_TOKEN, base_env};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the binary to the end off the async runtime.
async fn run(vars: HashMap<String, String>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || valine(&vars).args(&args).output().unwrap())
        .await
        .unwrap()
}

/// Every sub-command that prints writes into a pipe whose reader is already gone (as
/// `valine … | head -1` leaves it): each ends quietly with exit 0, no panic, no message.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("v.db").display());
    let env = vars(&[("VALINE_STORE", &store)]);
    let cases: &[&[&str]] = &[
        &["init"],
        &["register-commands", "--dry-run"],
        &["audit"],
        &["audit", "--json"],
        &["traces"],
        &["cleanup", "--dry-run"],
        &["invoke", "/debug-last"],
        &["config"],
        &["completions", "bash"],
        &["demo"],
        &["--help"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        // Closed before the child starts: its first write meets a broken pipe.
        drop(reader);
        let out = valine(&env)
            .args(*args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        for noise in ["panicked", "Broken pipe", "cannot write"] {
            assert!(!stderr.contains(noise), "{args:?}: {stderr}");
        }
    }
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _valine"),
        ("zsh", "#compdef valine"),
        ("fish", "complete -c valine"),
    ] {
        let out = run(HashMap::new(), &["completions", shell]).await;
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["register-commands", "completions", "config"] {
            assert!(script.contains(sub), "{shell} completes {sub}");
        }
    }
    let out = run(HashMap::new(), &["completions", "cmd.exe"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn version_names_the_commit_it_was_built_from() {
    let out = run(HashMap::new(), &["--version"]).await;
    assert_eq!(out.status.code(), Some(0));
    let line = text(&out.stdout);
    let line = line.trim_end();
    let version = concat!("valine ", env!("CARGO_PKG_VERSION"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned());
    match head {
        Some(commit) => assert_eq!(line, format!("{version} ({commit})")),
        // Built outside a git checkout: the version stands alone.
        None => assert_eq!(line, version),
    }
}

#[tokio::test]
async fn config_shows_values_and_sources_hides_secrets_and_names_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("valine.toml");
    std::fs::write(
        &file,
        "stage = \"prod\"\ngithub_repo = \"o/r\"\nrate_limit_per_minute = 5\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let mut env = vars(&[
        ("VALINE_CONFIG", &file),
        ("STAGE", "staging"),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
    ]);

    let out = run(env.clone(), &["config"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains(GITHUB_TOKEN), "{stdout}");
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(row("STAGE"), ["environment", "staging"]);
    assert_eq!(row("GITHUB_REPO"), ["file", "o/r"]);
    assert_eq!(row("RATE_LIMIT_PER_MINUTE"), ["file", "5"]);
    assert_eq!(row("GITHUB_TOKEN"), ["environment", "(set)"]);
    assert_eq!(row("DEPLOY_BRANCH"), ["default", "main"]);
    assert_eq!(row("DISCORD_PUBLIC_KEY"), ["default", "-"]);

    let out = run(env.clone(), &["config", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let token = lines
        .iter()
        .find(|l| l["variable"] == "GITHUB_TOKEN")
        .unwrap();
    assert_eq!(
        token,
        &serde_json::json!({"variable": "GITHUB_TOKEN", "value": "(set)",
                            "source": "environment", "secret": true})
    );

    // An invalid value: the list is still printed, the variable marked, exit 2 naming it.
    env.insert("VALINE_WORKER_CONCURRENCY".into(), "0".into());
    let out = run(env.clone(), &["config"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("VALINE_WORKER_CONCURRENCY"));
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("VALINE_WORKER_CONCURRENCY") && l.contains("invalid")),
        "{}",
        text(&out.stdout)
    );

    // A key the file should not have: exit 2 naming it, the file and the closest key.
    std::fs::write(dir.path().join("valine.toml"), "github_rep = \"o/r\"\n").unwrap();
    let out = run(env, &["serve"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "unknown key \"github_rep\" in {file} — did you mean \"github_repo\"?"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_bad_listen_address_names_where_it_came_from() {
    let out = run(vars(&[("VALINE_LISTEN", "localhost")]), &["serve"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("VALINE_LISTEN") && text(&out.stderr).contains("localhost:8080"),
        "{}",
        text(&out.stderr)
    );
    let out = run(HashMap::new(), &["serve", "--listen", "nowhere:80"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--listen"),
        "{}",
        text(&out.stderr)
    );
}

/// Sub-commands other than `serve` and `lambda` log at `warn` unless `VALINE_LOG` says
/// otherwise; `VALINE_LOG_FORMAT=text` writes readable lines; under Lambda it is always
/// JSON. The store is named by its absolute path at start-up and in its errors.
#[tokio::test]
async fn sub_commands_log_warnings_only_by_default_and_text_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rel.db");
    let audit = |extra: &[(&str, &str)]| {
        let mut env = vars(&[("VALINE_STORE", "sqlite:rel.db")]);
        env.extend(vars(extra));
        let dir = dir.path().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                valine(&env).arg("audit").current_dir(dir).output().unwrap()
            })
            .await
            .unwrap()
        }
    };

    // Piped stderr, VALINE_LOG unset: JSON, and only the warning about the new file.
    let out = audit(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["level"] == "WARN"),
        "{lines:?}"
    );

    // VALINE_LOG wins, and the store is named by its absolute path.
    let out = audit(&[("VALINE_LOG", "info")]).await;
    let opened: Vec<Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["message"] == "store opened")
        .collect();
    assert_eq!(opened.len(), 1, "{}", text(&out.stderr));
    assert_eq!(opened[0]["path"], db.display().to_string());

    // Text for people: timestamp, level, message, then key=value.
    let out = audit(&[("VALINE_LOG", "info"), ("VALINE_LOG_FORMAT", "text")]).await;
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("store opened"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let (timestamp, rest) = line.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{line}"
    );
    assert_eq!(rest, format!(" INFO store opened  path={}", db.display()));

    // Under Lambda the lines stay JSON whatever the variable says, with a warning.
    let out = audit(&[
        ("VALINE_LOG_FORMAT", "text"),
        ("AWS_LAMBDA_FUNCTION_NAME", "valine-test"),
    ])
    .await;
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{stderr}"
    );
    assert!(
        stderr.contains("VALINE_LOG_FORMAT=text is ignored"),
        "{stderr}"
    );

    let out = audit(&[("VALINE_LOG_FORMAT", "pretty")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("VALINE_LOG_FORMAT"));

    // A store that cannot be opened is named by its absolute path.
    let out = tokio::task::spawn_blocking({
        let env = vars(&[("VALINE_STORE", "sqlite:no-such-dir/v.db")]);
        let dir = dir.path().to_owned();
        move || valine(&env).arg("audit").current_dir(dir).output().unwrap()
    })
    .await
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let missing = dir.path().join("no-such-dir/v.db");
    assert!(
        text(&out.stderr).contains(&format!(
            "valine: store open unavailable: cannot open the database file {}",
            missing.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn invoke_lists_options_says_how_to_confirm_and_is_not_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("v.db").display());
    let env = vars(&[
        ("VALINE_STORE", &store),
        ("RATE_LIMIT_PER_MINUTE", "1"),
        ("ADMIN_USER_IDS", "42"),
    ]);

    let out = run(env.clone(), &["invoke", "/status cnt:2"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown option \"cnt\" for /status; options: count"),
        "{}",
        text(&out.stderr)
    );

    // A limit of one a minute, three invokes as one user: none is refused.
    for _ in 0..3 {
        let out = run(env.clone(), &["invoke", "/debug-last", "--user", "42"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(!text(&out.stdout).contains("Rate limited"));
    }

    let line = "/set-frontend url:https://new.example.com";
    let out = run(env.clone(), &["invoke", line, "--user", "42"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        !stdout.contains("[Confirm]") && !stdout.contains("[Cancel]"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("valine invoke '{line} confirm:true'")),
        "{stdout}"
    );
}

/// `/diagnose` through `invoke` exits 0 when it finds nothing wrong and 1 when it finds
/// a problem, so a script can act on it.
#[tokio::test]
async fn invoke_diagnose_exits_1_when_it_finds_problems() {
    let github = FakeGitHub::start().await;
    let discord = FakeDiscord::start().await;
    github.add_workflow(77, "Client deploy", "client-deploy.yml");
    let (frontend, api) = healthy_sites().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&github, &discord, &dir.path().join("v.db"));
    env.extend(vars(&[
        ("SAFE_LOCAL", "true"),
        ("FRONTEND_BASE_URL", &frontend.url()),
        ("VITE_API_BASE", &api.url()),
    ]));

    let out = run(env.clone(), &["invoke", "/diagnose"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        !text(&out.stdout).contains("problem(s) found"),
        "{}",
        text(&out.stdout)
    );

    api.set("/health", page(500));
    let out = run(env, &["invoke", "/diagnose"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("problem(s) found"),
        "{}",
        text(&out.stdout)
    );
}
