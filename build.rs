//! Puts the git commit into `valine --version` (`0.1.0 (abc1234)`) as
//! `VALINE_VERSION_LINE`. The commit comes from `git rev-parse` in a checkout, else from
//! `VALINE_GIT_COMMIT` (a Docker build without `.git`); with neither, the version stands
//! alone. Nothing here can fail the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VALINE_GIT_COMMIT");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = git_commit().or_else(|| {
        std::env::var("VALINE_GIT_COMMIT")
            .ok()
            .map(|c| c.trim().chars().take(12).collect::<String>())
            .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
    });
    let line = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=VALINE_VERSION_LINE={line}");
}

/// The short commit of HEAD, watching the files that change when HEAD moves: HEAD
/// itself (in a worktree, its own git dir), the branch it points at and `packed-refs`
/// (in the common dir, shared by all worktrees).
fn git_commit() -> Option<String> {
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = PathBuf::from(git(&["rev-parse", "--git-common-dir"])?);
    let common = if common.is_absolute() {
        common
    } else {
        std::env::current_dir().ok()?.join(common)
    };
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    println!(
        "cargo:rerun-if-changed={}",
        common.join("packed-refs").display()
    );
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", common.join(branch).display());
    }
    git(&["rev-parse", "--short", "HEAD"])
}

/// A git command's trimmed output, or `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
