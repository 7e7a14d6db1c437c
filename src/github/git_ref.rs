//! [`GitRef`]: a ref name a dispatch may carry, checked by the rules of
//! `git check-ref-format` (with `--allow-onelevel`, since a plain branch name such as
//! `main` is what people type).
//!
//! Checking on the request path lets a typo be answered at once, and keeps text that
//! git would refuse (or that could read as an option, `-x`) out of the GitHub request.

use std::fmt;

/// A valid git ref name: a branch, a tag or a full `refs/…` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef(String);

/// Longest ref accepted. Git has no limit, but GitHub refuses names past 255 bytes and a
/// bound keeps absurd option values out of requests and messages.
const MAX_LEN: usize = 255;

impl GitRef {
    /// Checks `input` (trimmed) against the ref-name rules; the error is shown to the
    /// user as it is.
    pub fn parse(input: &str) -> Result<GitRef, String> {
        let name = input.trim();
        let invalid = |why: &str| Err(format!("`{name}` is not a valid git ref: {why}"));
        if name.is_empty() {
            return Err("the ref must not be empty".into());
        }
        if name.len() > MAX_LEN {
            return Err(format!("the ref must be at most {MAX_LEN} characters long"));
        }
        if name == "@" {
            return invalid("`@` alone is not a ref");
        }
        if name.starts_with('-') {
            return invalid("it must not start with `-`");
        }
        if name.starts_with('/') || name.ends_with('/') {
            return invalid("it must not start or end with `/`");
        }
        if name.ends_with('.') {
            return invalid("it must not end with `.`");
        }
        if let Some(c) = name.chars().find(|c| {
            c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        }) {
            return invalid(&format!("it must not contain {}", describe(c)));
        }
        for (pattern, why) in [
            ("..", "it must not contain `..`"),
            ("//", "it must not contain `//`"),
            ("@{", "it must not contain `@{`"),
        ] {
            if name.contains(pattern) {
                return invalid(why);
            }
        }
        for component in name.split('/') {
            if component.starts_with('.') {
                return invalid("no part between `/` may start with `.`");
            }
            if component.ends_with(".lock") {
                return invalid("no part between `/` may end with `.lock`");
            }
        }
        Ok(GitRef(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn describe(c: char) -> String {
    match c {
        ' ' => "spaces".to_owned(),
        c if c.is_ascii_control() => "control characters".to_owned(),
        c => format!("`{c}`"),
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_tag_and_full_names_are_accepted() {
        for good in [
            "main",
            "feature/login-page",
            "release/v1.2.3",
            "refs/heads/main",
            "refs/tags/v1.0",
            "v1.0",
            "a@b",
            "user/ünïcode",
            "  main  ",
        ] {
            let parsed = GitRef::parse(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
            assert_eq!(parsed.as_str(), good.trim());
        }
    }

    #[test]
    fn check_ref_format_violations_are_refused() {
        for bad in [
            "",
            "   ",
            "@",
            "-main",
            "/main",
            "main/",
            "main.",
            "a..b",
            "a//b",
            "a@{1}",
            "has space",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "main.lock",
            "feature/x.lock/y",
            ".hidden",
            "feature/.hidden",
        ] {
            assert!(GitRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(GitRef::parse(&"a".repeat(MAX_LEN + 1)).is_err());
        assert!(GitRef::parse(&"a".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn errors_name_the_rule() {
        let e = GitRef::parse("feature..x").unwrap_err();
        assert!(e.contains("`..`"), "{e}");
        let e = GitRef::parse("a b").unwrap_err();
        assert!(e.contains("spaces"), "{e}");
    }
}
