//! What `hadolint` and `systemd-analyze` (both run by `scripts/test`) cannot know about
//! the `Dockerfile` and `deploy/systemd/valine.service`: that the settings they give
//! Valine are ones its configuration accepts, that the health check is a sub-command the
//! binary has, that the image runs as an unprivileged user with its store in the
//! volume, that the dependency-caching stage stubs every target Cargo.toml declares
//! (a bench or example added without a stub breaks `docker build`), and that every file
//! the sources embed is in the repository (a clean clone builds).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use valine::config::Config;
use valine::store::StoreLocation;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// `KEY=value` pairs of the final stage's `ENV` instructions.
fn final_env(instructions: &[(String, String)]) -> HashMap<String, String> {
    let last_from = instructions
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("a FROM");
    instructions[last_from..]
        .iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, rest)| rest.split_whitespace().map(str::to_owned))
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[test]
fn the_image_settings_are_valid_configuration_and_the_store_is_in_the_volume() {
    let steps = instructions(&read("Dockerfile"));
    let env = final_env(&steps);
    let config = Config::from_vars(env.clone()).expect("the image's ENV is valid configuration");
    assert_eq!(
        config.listen.ip().to_string(),
        "0.0.0.0",
        "reachable from outside"
    );
    let exposed: Vec<&str> = steps
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(exposed, [config.listen.port().to_string()]);
    let StoreLocation::SqliteFile(path) = &config.store else {
        panic!("the image uses a SQLite file, got {:?}", config.store);
    };
    assert!(
        path.starts_with("/data/"),
        "store {path:?} outside the volume"
    );
    let volume = steps.iter().find(|(k, _)| k == "VOLUME").expect("a VOLUME");
    assert_eq!(volume.1, r#"["/data"]"#);
    assert_eq!(
        env.get("VALINE_LOG_FORMAT").map(String::as_str),
        Some("json")
    );
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check_the_binary_has() {
    let steps = instructions(&read("Dockerfile"));
    let user = steps.iter().rfind(|(k, _)| k == "USER").expect("a USER");
    let uid = user.1.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid >= 1000),
        "numeric unprivileged uid, got {uid:?}"
    );
    let health = steps
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    let cmd = health
        .1
        .split_once("CMD")
        .expect("HEALTHCHECK CMD")
        .1
        .trim();
    let argv: Vec<String> = serde_json::from_str(cmd).expect("exec form");
    assert_eq!(argv[0], "valine");
    let help = Command::new(env!("CARGO_BIN_EXE_valine"))
        .args(&argv[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "`valine {}` exists",
        argv[1..].join(" ")
    );
    let entry = steps.iter().find(|(k, _)| k == "ENTRYPOINT").unwrap();
    assert_eq!(entry.1, r#"["valine"]"#);
    let cmd = steps.iter().rfind(|(k, _)| k == "CMD").unwrap();
    assert_eq!(cmd.1, r#"["serve"]"#);
}

/// The files `src/` embeds with `include_bytes!` or `include_str!`, from the repository root.
fn embedded_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            embedded_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_bytes!(\"", "include_str!(\""] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = &text[at + macro_name.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    found.push(path.parent().unwrap().join(name));
                }
            }
        }
    }
}

#[test]
fn every_file_the_sources_embed_is_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Outside a git checkout (a source archive) there is no index to ask.
    if !root.join(".git").exists() {
        return;
    }
    let mut files = Vec::new();
    embedded_files(&root.join("src"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("store/sqlite_empty.db")),
        "{files:?}"
    );
    for file in files {
        // An ignored file (`*.db` is) builds here and breaks every clean clone.
        let tracked = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "--error-unmatch"])
            .arg(&file)
            .output()
            .expect("git");
        assert!(
            tracked.status.success(),
            "{} is embedded but not in the repository: {}",
            file.display(),
            String::from_utf8_lossy(&tracked.stderr)
        );
    }
}

#[test]
fn the_dependency_stage_stubs_every_target_cargo_declares() {
    let dockerfile = read("Dockerfile");
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let benches: BTreeSet<String> = manifest["bench"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    let stubbed: BTreeSet<String> = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("&& for b in "))
        .and_then(|l| l.split_once("; do"))
        .map(|(names, _)| names.split_whitespace().map(str::to_owned).collect())
        .expect("the bench stub loop");
    assert_eq!(stubbed, benches);
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")).unwrap()
    {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            dockerfile.contains(&format!("examples/{name}")),
            "example {name} has no stub"
        );
    }
}

#[test]
fn the_systemd_unit_runs_serve_with_its_store_in_the_state_directory() {
    let unit = read("deploy/systemd/valine.service");
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(value("ExecStart"), ["/usr/local/bin/valine serve"]);
    let env: HashMap<String, String> = value("Environment")
        .iter()
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let config = Config::from_vars(env).expect("the unit's Environment is valid configuration");
    let StoreLocation::SqliteFile(path) = &config.store else {
        panic!("the unit uses a SQLite file");
    };
    let state = value("StateDirectory");
    assert!(
        path.starts_with(format!("/var/lib/{}/", state[0])),
        "store {path:?} outside StateDirectory {state:?}"
    );
    // A configuration error (exit 2) is not fixed by restarting.
    assert_eq!(value("RestartPreventExitStatus"), ["2"]);
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
}
