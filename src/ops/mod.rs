//! The operator's commands that the runbook asks for: `valine doctor` (is the set-up
//! right?), `valine smoke` (does a deployment answer as Discord and GitHub expect?),
//! `valine traces` (what happened to a command?) and `valine cleanup` (housekeeping).
//!
//! Doctor and smoke report the same way: one [`Check`] per line, ✅ / ⚠️ / ❌, what was
//! found and, for anything not ✅, the fix; `--json` prints one object per check. Any ❌
//! makes the command exit 1, so both serve in scripts, CI and cron.

pub mod cleanup;
pub mod doctor;
pub mod smoke;
pub mod traces;
pub mod workflow;

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, but needs attention, or could not be checked (a setting is missing).
    Warn,
    Fail,
}

impl Status {
    pub fn icon(self) -> &'static str {
        match self {
            Status::Ok => "✅",
            Status::Warn => "⚠️",
            Status::Fail => "❌",
        }
    }
}

/// One line of a report: a stable `name` (`github.deploy_workflow`), what was `found`,
/// and the `fix` for anything not ✅.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub found: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            found: found.into(),
            fix: None,
        }
    }

    pub fn warn(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that needs a setting the configuration lacks.
    pub fn skipped(name: &'static str, var: &str) -> Check {
        Check::warn(
            name,
            format!("skipped: {var} not set"),
            format!("set {var} to check this (see the README's configuration table)"),
        )
    }

    /// `✅ name: found`, with `→ fix: …` after anything not ✅.
    pub fn line(&self) -> String {
        match &self.fix {
            Some(fix) if self.status != Status::Ok => {
                format!(
                    "{} {}: {} → fix: {fix}",
                    self.status.icon(),
                    self.name,
                    self.found
                )
            }
            _ => format!("{} {}: {}", self.status.icon(), self.name, self.found),
        }
    }
}

/// The checks as lines of text or JSON objects, and whether all passed (no ❌;
/// warnings pass).
pub fn report(checks: &[Check], json: bool) -> (String, bool) {
    let mut out = String::new();
    for check in checks {
        if json {
            out.push_str(&serde_json::to_string(check).unwrap_or_else(|_| "{}".to_owned()));
        } else {
            out.push_str(&check.line());
        }
        out.push('\n');
    }
    (out, checks.iter().all(|c| c.status != Status::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_the_fix_only_when_not_ok() {
        assert_eq!(Check::ok("a.b", "fine").line(), "✅ a.b: fine");
        assert_eq!(
            Check::fail("a.b", "broken", "mend it").line(),
            "❌ a.b: broken → fix: mend it"
        );
        let skipped = Check::skipped("discord.status_channel", "DISCORD_STATUS_CHANNEL_ID");
        assert_eq!(skipped.status, Status::Warn);
        assert!(skipped.line().starts_with(
            "⚠️ discord.status_channel: skipped: DISCORD_STATUS_CHANNEL_ID not set → fix:"
        ));
    }

    #[test]
    fn a_report_passes_unless_a_check_failed() {
        let warned = [Check::ok("a", "fine"), Check::warn("b", "meh", "look")];
        let (text, passed) = report(&warned, false);
        assert!(passed);
        assert_eq!(text.lines().count(), 2);
        let failed = [Check::ok("a", "fine"), Check::fail("c", "broken", "mend")];
        let (json, passed) = report(&failed, true);
        assert!(!passed);
        assert!(
            json.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
    }

    #[test]
    fn json_has_name_status_found_and_fix() {
        let json = serde_json::to_value(Check::warn("x", "found", "fix it")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "x", "status": "warn", "found": "found", "fix": "fix it"})
        );
        let json = serde_json::to_value(Check::ok("x", "fine")).unwrap();
        assert_eq!(json["fix"], serde_json::Value::Null);
    }
}
