//! The verification report: one embed with a field per check, the likely cause of each
//! failure with its fix, and the `Re-verify` / run / `Re-run failed jobs` buttons.

use super::checks::{Category, FAILED_CONCLUSIONS, Side, TargetState, Verification};
use crate::discord::response::{Button, ButtonStyle, Embed, GREEN, RED, Reply};
use crate::probe::ProbeError;

/// `valine:reverify:<run id>`: verify the run again (anyone).
pub const REVERIFY_ACTION: &str = "reverify";
/// `valine:rerun-failed:<run id>`: re-run the run's failed jobs (deployers).
pub const RERUN_FAILED_ACTION: &str = "rerun-failed";

pub const PASSED_TITLE: &str = "✅ Deploy verified";
pub const FAILED_TITLE: &str = "❌ Deploy verification failed";

impl Verification {
    /// The report as a public reply; `failed` when the verification failed, so
    /// `valine invoke` exits 1.
    pub fn to_reply(&self, trace_short: &str) -> Reply {
        let passed = self.passed();
        let mut reply = Reply::embed(self.to_embed(trace_short)).with_button(Button::action(
            "Re-verify",
            ButtonStyle::Primary,
            REVERIFY_ACTION,
            &self.run.id.to_string(),
        ));
        if let Some(url) = &self.run.html_url {
            reply = reply.with_button(Button::link("View run", url.clone()));
        }
        if self.run_failed() {
            reply = reply.with_button(Button::action(
                "Re-run failed jobs",
                ButtonStyle::Danger,
                RERUN_FAILED_ACTION,
                &self.run.id.to_string(),
            ));
        }
        if !passed {
            reply = reply.failed();
        }
        reply
    }

    fn run_failed(&self) -> bool {
        self.actions
            .conclusion
            .as_deref()
            .is_some_and(|c| FAILED_CONCLUSIONS.contains(&c))
    }

    pub fn to_embed(&self, trace_short: &str) -> Embed {
        let passed = self.passed();
        let mut embed = Embed::new(if passed { PASSED_TITLE } else { FAILED_TITLE })
            .color(if passed { GREEN } else { RED })
            .description(self.describe_run())
            .field("Actions", self.actions_text())
            .field(
                category_title(&self.frontend),
                category_text(&self.frontend),
            )
            .field(category_title(&self.api), category_text(&self.api));
        embed.url = self.run.html_url.clone();
        let fixes = self.suggested_fixes();
        if !fixes.is_empty() {
            let text = fixes
                .iter()
                .map(|f| format!("• {f}"))
                .collect::<Vec<_>>()
                .join("\n");
            embed = embed.field("Suggested fixes", text);
        }
        embed.footer(format!("Run {} • trace {trace_short}", self.run.id))
    }

    fn describe_run(&self) -> String {
        let run = &self.run;
        let mut parts = vec![match &run.html_url {
            Some(url) => format!("[Run {}]({url})", run.id),
            None => format!("Run {}", run.id),
        }];
        if let Some(name) = run.name.as_deref().filter(|n| !n.is_empty()) {
            parts.push(name.to_owned());
        }
        if let Some(branch) = &run.head_branch {
            parts.push(format!("`{branch}`"));
        }
        if let Some(sha) = &run.head_sha {
            parts.push(format!("`{}`", sha.get(..7).unwrap_or(sha)));
        }
        if run.run_attempt > 1 {
            parts.push(format!("attempt {}", run.run_attempt));
        }
        let line = parts.join(" · ");
        match &self.note {
            Some(note) => format!("{note}\n{line}"),
            None => line,
        }
    }

    fn actions_text(&self) -> String {
        let actions = &self.actions;
        let mut lines = Vec::new();
        let state = actions
            .conclusion
            .as_deref()
            .or(actions.status.as_deref())
            .unwrap_or("unknown");
        let icon = if actions.passed() { "✅" } else { "❌" };
        match &actions.failing {
            Some(f) => lines.push(format!(
                "{icon} {state}: job **{}**, step **{}**",
                f.job,
                f.step.as_deref().unwrap_or("(no step)")
            )),
            None => lines.push(format!("{icon} {state}")),
        }
        for d in &actions.steps {
            lines.push(format!(
                "{}: {} (`{}`)",
                d.kind.label(),
                crate::format::duration(d.secs),
                d.step
            ));
        }
        if let Some(e) = &actions.jobs_error {
            lines.push(format!("⚠️ jobs unavailable: {e}"));
        }
        lines.join("\n")
    }

    /// The likely cause of each failed category, with what to do about it.
    pub fn suggested_fixes(&self) -> Vec<String> {
        let mut fixes = Vec::new();
        if !self.actions.passed() {
            let conclusion = self.actions.conclusion.as_deref();
            fixes.push(match (&self.actions.failing, conclusion) {
                (Some(f), _) => format!(
                    "Workflow failed in job `{}` at step `{}`: read that step's log, fix it, then **Re-run failed jobs**.",
                    f.job,
                    f.step.as_deref().unwrap_or("(before any step)")
                ),
                (None, None) => format!(
                    "The run has not finished ({}): verify again when it completes.",
                    self.actions.status.as_deref().unwrap_or("unknown status")
                ),
                (None, Some("cancelled")) => {
                    "The run was cancelled: re-run it or start a new deploy.".to_owned()
                }
                (None, Some(c)) => format!("The workflow concluded `{c}`: check the run on GitHub."),
            });
        }
        for category in [&self.frontend, &self.api] {
            if let Some(fix) = category_fix(category) {
                fixes.push(fix);
            }
        }
        fixes
    }
}

fn category_title(category: &Category) -> String {
    match &category.target {
        TargetState::Ready(target) => format!("{} · {target}", category.side.label()),
        _ => category.side.label().to_owned(),
    }
}

fn category_text(category: &Category) -> String {
    let side = category.side;
    let target = match &category.target {
        TargetState::NotConfigured => {
            return format!(
                "⚪ not configured: set {} or use {}",
                side.key(),
                side.set_command()
            );
        }
        TargetState::Invalid { value, reason } => {
            return format!("❌ `{value}` cannot be checked: {reason}");
        }
        TargetState::Ready(target) => target,
    };
    let mut lines: Vec<String> = category
        .probes
        .iter()
        .map(|p| match &p.result {
            Ok(r) => format!(
                "{} `{}` {} · {} ms",
                if r.is_success() { "✅" } else { "❌" },
                p.path,
                r.status,
                r.latency_ms
            ),
            Err(e) => format!("❌ `{}` {e}", p.path),
        })
        .collect();
    if lines.is_empty() {
        lines.push(format!("⚪ no paths configured for {target}"));
    }
    if side == Side::Frontend
        && let Some((path, header)) = category.cache_control()
    {
        lines.push(match header {
            Some(value) => format!("Cache-Control (`{path}`): `{value}`"),
            None => format!("Cache-Control (`{path}`): none"),
        });
    }
    if category.source.ends_with("(override)") {
        lines.push("(target overridden for this check)".to_owned());
    }
    lines.join("\n")
}

/// The likely cause of a failed category: a wrong URL (refused, unresolvable, or 404
/// everywhere) points at the `/set-*` command; otherwise the frontend's deployment or the
/// API's backend.
fn category_fix(category: &Category) -> Option<String> {
    if category.passed() {
        return None;
    }
    let side = category.side;
    let set = side.set_command();
    let host = match &category.target {
        TargetState::Ready(target) => target.host(),
        TargetState::Invalid { value, reason } => {
            return Some(format!(
                "{} `{value}` is not a URL Valine may check ({reason}): fix it with {set}.",
                side.key()
            ));
        }
        TargetState::NotConfigured => return None,
    };
    let failures: Vec<String> = category
        .probes
        .iter()
        .filter(|p| !p.passed())
        .map(|p| match &p.result {
            Ok(r) => format!("{} on `{}`", r.status, p.path),
            Err(e) => format!("{} on `{}`", e.kind(), p.path),
        })
        .collect();
    let wrong_url = category
        .probes
        .iter()
        .any(|p| matches!(p.result, Err(ProbeError::Dns(_) | ProbeError::Refused(_))))
        || (!category.probes.is_empty()
            && category
                .probes
                .iter()
                .all(|p| p.result.as_ref().is_ok_and(|r| r.status == 404)));
    let summary = failures.join(", ");
    Some(if wrong_url {
        format!(
            "{} ({summary}): `{host}` looks like the wrong URL — check DNS or set the right one with {set}.",
            side.label()
        )
    } else {
        match side {
            Side::Frontend => format!(
                "Frontend failing ({summary}): check the deployment (S3 upload, CloudFront distribution and certificate) or the URL ({set})."
            ),
            Side::Api => format!(
                "API failing ({summary}): check the backend service (its logs and health); if the base URL is wrong, {set}."
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::github::model::WorkflowRun;
    use crate::probe::ProbeResponse;
    use crate::probe::target::{ProbeTarget, TargetPolicy};
    use crate::verify::checks::{ActionsCheck, FailingStep, PathProbe};

    fn ok(path: &str, status: u16, cache: Option<&str>) -> PathProbe {
        PathProbe {
            path: path.into(),
            result: Ok(ProbeResponse {
                status,
                latency_ms: 12,
                cache_control: cache.map(str::to_owned),
                final_url: Url::parse("https://x.example.com/").unwrap(),
                body_bytes: 10,
                body_truncated: false,
                peer_certificate: None,
            }),
        }
    }

    fn category(side: Side, url: &str, probes: Vec<PathProbe>) -> Category {
        Category {
            side,
            target: TargetState::Ready(ProbeTarget::parse(url, &TargetPolicy::default()).unwrap()),
            source: format!("{url} (environment)"),
            probes,
        }
    }

    fn verification(conclusion: &str, frontend: Category, api: Category) -> Verification {
        let run = WorkflowRun {
            id: 42,
            status: Some("completed".into()),
            conclusion: Some(conclusion.into()),
            html_url: Some("https://github.com/o/r/actions/runs/42".into()),
            ..Default::default()
        };
        Verification {
            actions: ActionsCheck {
                status: run.status.clone(),
                conclusion: run.conclusion.clone(),
                steps: Vec::new(),
                failing: (conclusion == "failure").then(|| FailingStep {
                    job: "deploy".into(),
                    job_id: 1,
                    step: Some("Sync to S3".into()),
                    job_url: None,
                }),
                jobs_error: None,
            },
            run,
            frontend,
            api,
            note: None,
        }
    }

    fn frontend_ok() -> Category {
        category(
            Side::Frontend,
            "https://app.example.com",
            vec![ok("/", 200, None), ok("/index.html", 200, Some("no-cache"))],
        )
    }

    fn api_ok() -> Category {
        category(
            Side::Api,
            "https://api.example.com",
            vec![ok("/health", 200, None)],
        )
    }

    #[test]
    fn a_passing_report_is_green_without_fixes_or_rerun() {
        let v = verification("success", frontend_ok(), api_ok());
        assert!(v.passed());
        let reply = v.to_reply("abcd1234");
        assert!(!reply.failed);
        let embed = &reply.embeds[0];
        assert_eq!(embed.title, PASSED_TITLE);
        assert_eq!(embed.color, Some(GREEN));
        assert_eq!(embed.footer.as_deref(), Some("Run 42 • trace abcd1234"));
        assert!(embed.fields.iter().all(|f| f.name != "Suggested fixes"));
        let frontend = &embed.fields[1];
        assert_eq!(frontend.name, "Frontend · https://app.example.com");
        assert!(
            frontend.value.contains("✅ `/` 200 · 12 ms"),
            "{}",
            frontend.value
        );
        assert!(
            frontend
                .value
                .contains("Cache-Control (`/index.html`): `no-cache`")
        );
        let targets: Vec<&str> = reply.buttons.iter().map(|b| b.target.as_str()).collect();
        assert_eq!(
            targets,
            vec![
                "valine:reverify:42",
                "https://github.com/o/r/actions/runs/42"
            ]
        );
    }

    #[test]
    fn each_failed_category_names_its_likely_cause() {
        let v = verification("failure", frontend_ok(), api_ok());
        let fixes = v.suggested_fixes();
        assert_eq!(fixes.len(), 1);
        assert!(
            fixes[0].contains("`deploy` at step `Sync to S3`"),
            "{}",
            fixes[0]
        );
        let reply = v.to_reply("abcd1234");
        assert!(reply.failed);
        assert_eq!(reply.embeds[0].color, Some(RED));
        assert!(
            reply
                .buttons
                .iter()
                .any(|b| b.target == "valine:rerun-failed:42")
        );

        let broken = category(
            Side::Frontend,
            "https://app.example.com",
            vec![ok("/", 503, None), ok("/index.html", 200, None)],
        );
        let fixes = verification("success", broken, api_ok()).suggested_fixes();
        assert!(
            fixes[0].contains("503 on `/`") && fixes[0].contains("deployment"),
            "{fixes:?}"
        );

        let all_404 = category(
            Side::Api,
            "https://api.example.com",
            vec![ok("/health", 404, None)],
        );
        let fixes = verification("success", frontend_ok(), all_404).suggested_fixes();
        assert!(
            fixes[0].contains("wrong URL") && fixes[0].contains("/set-api-base"),
            "{fixes:?}"
        );

        let mut api_down = api_ok();
        api_down.probes[0] = ok("/health", 500, None);
        let fixes = verification("success", frontend_ok(), api_down).suggested_fixes();
        assert!(fixes[0].contains("backend"), "{fixes:?}");

        let mut unresolvable = frontend_ok();
        unresolvable.probes[0].result = Err(ProbeError::Dns("no such host".into()));
        let fixes = verification("success", unresolvable, api_ok()).suggested_fixes();
        assert!(fixes[0].contains("/set-frontend"), "{fixes:?}");

        let mut invalid = frontend_ok();
        invalid.target = TargetState::Invalid {
            value: "http://10.0.0.1".into(),
            reason: "only https".into(),
        };
        let v = verification("success", invalid, api_ok());
        assert!(!v.passed());
        assert!(v.suggested_fixes()[0].contains("/set-frontend"));
    }

    #[test]
    fn an_unconfigured_target_is_reported_not_failed() {
        let mut frontend = frontend_ok();
        frontend.target = TargetState::NotConfigured;
        frontend.probes.clear();
        let v = verification("success", frontend, api_ok());
        assert!(v.passed());
        let embed = v.to_embed("abcd1234");
        assert!(
            embed.fields[1].value.contains("not configured"),
            "{:?}",
            embed.fields[1]
        );
    }
}
