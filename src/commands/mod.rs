//! The command registry: one definition per slash command (name, options, who may run
//! it, how it answers), used for routing, for `valine register-commands`, and for
//! parsing `valine invoke` lines. Each command lives in its own file with its `spec()`
//! and `run()`; this module only lists them.

pub mod block;
pub mod debug_last;
pub mod deploy_client;
pub mod diagnose;
pub mod pipeline;
pub mod rollback;
pub mod set_api_base;
pub mod set_frontend;
pub mod set_url;
pub mod status;
pub mod status_digest;
pub mod verify_latest;
pub mod verify_run;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Access;
use crate::discord::interaction::{Caller, OptionMap, OptionValue};
use crate::discord::response::Reply;
pub use crate::error::CommandError;
use crate::jobs::ReplyTarget;
use crate::trace::Tracer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    String,
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    /// A Discord user, picked from the member list; the value is their id.
    User,
}

impl OptionKind {
    fn discord_type(self) -> u8 {
        match self {
            OptionKind::String => 3,
            OptionKind::Integer { .. } => 4,
            OptionKind::Boolean => 5,
            OptionKind::User => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: OptionKind,
    pub required: bool,
    /// For string options: the only values accepted.
    pub choices: &'static [&'static str],
    /// Discord asks Valine for suggestions while the user types.
    pub autocomplete: bool,
}

impl OptionSpec {
    pub const fn string(name: &'static str, description: &'static str) -> Self {
        OptionSpec {
            name,
            description,
            kind: OptionKind::String,
            required: false,
            choices: &[],
            autocomplete: false,
        }
    }

    pub const fn boolean(name: &'static str, description: &'static str) -> Self {
        OptionSpec {
            kind: OptionKind::Boolean,
            ..OptionSpec::string(name, description)
        }
    }

    pub const fn user(name: &'static str, description: &'static str) -> Self {
        OptionSpec {
            kind: OptionKind::User,
            ..OptionSpec::string(name, description)
        }
    }

    pub const fn integer(
        name: &'static str,
        description: &'static str,
        min: i64,
        max: i64,
    ) -> Self {
        OptionSpec {
            kind: OptionKind::Integer { min, max },
            ..OptionSpec::string(name, description)
        }
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }

    pub const fn autocomplete(mut self) -> Self {
        self.autocomplete = true;
        self
    }
}

/// How a command answers Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Type 4 at once, from the request.
    Immediate { ephemeral: bool },
    /// Type 5 at once; a job edits the original response.
    Deferred { ephemeral: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub options: Vec<OptionSpec>,
    pub access: Access,
    pub answer: Answer,
}

impl CommandSpec {
    /// The command in Discord's application-command JSON.
    pub fn to_discord_json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .map(|o| {
                let mut option = json!({
                    "type": o.kind.discord_type(),
                    "name": o.name,
                    "description": o.description,
                    "required": o.required,
                });
                if o.autocomplete {
                    option["autocomplete"] = true.into();
                }
                if let OptionKind::Integer { min, max } = o.kind {
                    option["min_value"] = min.into();
                    option["max_value"] = max.into();
                }
                if !o.choices.is_empty() {
                    option["choices"] = o
                        .choices
                        .iter()
                        .map(|c| json!({"name": c, "value": c}))
                        .collect();
                }
                option
            })
            .collect();
        json!({
            "type": 1,
            "name": self.name,
            "description": self.description,
            "options": options,
        })
    }

    /// Checks the options a user gave against this spec: known names, types, ranges,
    /// choices and required options. The message is shown to the user.
    pub fn validate(&self, options: &OptionMap) -> Result<(), String> {
        for (name, value) in options {
            let spec = self
                .options
                .iter()
                .find(|o| o.name == name)
                .ok_or_else(|| format!("/{} has no option `{name}`", self.name))?;
            match (spec.kind, value) {
                (OptionKind::String, OptionValue::String(s)) => {
                    if !spec.choices.is_empty() && !spec.choices.contains(&s.as_str()) {
                        return Err(format!(
                            "`{name}` must be one of: {}",
                            spec.choices.join(", ")
                        ));
                    }
                    if s.chars().count() > 6000 {
                        return Err(format!("`{name}` is too long"));
                    }
                }
                (OptionKind::Integer { min, max }, OptionValue::Integer(i)) => {
                    if *i < min || *i > max {
                        return Err(format!("`{name}` must be between {min} and {max}"));
                    }
                }
                (OptionKind::Boolean, OptionValue::Boolean(_)) => {}
                (OptionKind::User, OptionValue::String(id)) => {
                    if !is_snowflake(id) {
                        return Err(format!("`{name}` must be a Discord user"));
                    }
                }
                _ => return Err(format!("`{name}` has the wrong type")),
            }
        }
        if let Some(missing) = self
            .options
            .iter()
            .find(|o| o.required && !options.contains_key(o.name))
        {
            return Err(format!("`{}` is required", missing.name));
        }
        Ok(())
    }
}

/// A Discord id: 1 to 20 ASCII digits.
pub fn is_snowflake(id: &str) -> bool {
    (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// How a button press is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAnswer {
    /// Type 7 at once: the message the button is on is replaced.
    Update,
    /// Type 5 at once (a new message); a job edits it with the result.
    Deferred { ephemeral: bool },
    /// Not a button on any message: a follow-up step the command schedules as a job
    /// of its own (a GitHub write after a confirmation). A press of it from Discord is
    /// refused like an unknown button.
    FollowUp,
}

/// What a button press does. Every [`ButtonSpec`] carries its handler, so a button
/// cannot be declared without one.
#[async_trait]
pub trait Press: Sync {
    /// Handles a press of `action`; `id` is the part of the `custom_id` after it.
    async fn press(
        &self,
        app: &App,
        action: &str,
        id: &str,
        call: &Call,
        tracer: &mut Tracer,
    ) -> Result<Reply, CommandError>;
}

/// A button Valine renders as `valine:<action>:<id>`. Its label stands for the command
/// in denials (`⛔ Re-verify: deployers only`).
#[derive(Clone, Copy)]
pub struct ButtonSpec {
    pub action: &'static str,
    pub label: &'static str,
    pub access: Access,
    pub answer: ButtonAnswer,
    pub handler: &'static dyn Press,
}

impl std::fmt::Debug for ButtonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ButtonSpec")
            .field("action", &self.action)
            .field("label", &self.label)
            .field("access", &self.access)
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

/// A slash command: its definition, checks and body, all in the command's own file.
/// Adding a command is that file and one line in [`COMMANDS`].
#[async_trait]
pub trait Command: Sync {
    /// Name, options, who may run it and how it answers.
    fn spec(&self) -> CommandSpec;

    /// How this call is answered: the spec's, unless the options decide (a preview is
    /// ephemeral, the action itself public).
    fn answer(&self, _call: &Call) -> Answer {
        self.spec().answer
    }

    /// The buttons this command renders, each with its handler.
    fn buttons(&'static self) -> Vec<ButtonSpec> {
        Vec::new()
    }

    /// Checks on the request path that need more than the option schema (a run id's
    /// shape, who may use an option), answered at once and never calling out.
    fn precheck(&self, _app: &App, _call: &Call) -> Result<(), Precheck> {
        Ok(())
    }

    /// The command's body. For deferred commands this runs in a job (or inline for
    /// `valine invoke`).
    async fn run(&self, app: &App, call: &Call, tracer: &mut Tracer)
    -> Result<Reply, CommandError>;

    /// Suggestions for `option` while the user types `typed`: `(name, value)` pairs,
    /// at most 25.
    async fn suggest(&self, _app: &App, _option: &str, _typed: &str) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Every slash command Valine has, in registration order.
pub static COMMANDS: &[&dyn Command] = &[
    &status::Status,
    &verify_latest::VerifyLatest,
    &verify_run::VerifyRun,
    &diagnose::Diagnose,
    &deploy_client::DeployClient,
    &set_frontend::SETTING,
    &set_api_base::SETTING,
    &debug_last::DebugLast,
    &status_digest::StatusDigest,
    &block::Block,
    &block::Unblock,
    &rollback::Rollback,
];

/// The command Discord names; `None` is the registry's unknown case (a name Discord
/// may still send from a stale registration).
pub fn find(name: &str) -> Option<&'static dyn Command> {
    COMMANDS.iter().copied().find(|c| c.spec().name == name)
}

/// The command that owns a button action, with the button's spec.
pub fn button(action: &str) -> Option<(&'static dyn Command, ButtonSpec)> {
    COMMANDS.iter().copied().find_map(|c| {
        c.buttons()
            .into_iter()
            .find(|b| b.action == action)
            .map(|b| (c, b))
    })
}

/// `DEPLOY_WORKFLOW`, resolved as a trace step (the client caches the resolution).
pub(crate) async fn deploy_workflow(
    app: &App,
    tracer: &mut Tracer,
) -> Result<crate::github::model::Workflow, CommandError> {
    let github = app.github()?;
    let step = tracer.begin("github.resolve_workflow");
    let workflow = github.resolve_workflow(&app.config.deploy_workflow).await;
    tracer.end(step, &workflow);
    Ok(workflow?)
}

/// The newest `limit` runs of the deploy workflow on `DEPLOY_BRANCH`, newest first,
/// each GitHub call a trace step.
pub(crate) async fn deploy_runs(
    app: &App,
    limit: usize,
    tracer: &mut Tracer,
) -> Result<Vec<crate::github::model::WorkflowRun>, CommandError> {
    let workflow = deploy_workflow(app, tracer).await?;
    let step = tracer.begin("github.list_runs");
    let runs = app
        .github()?
        .list_runs(workflow.id, Some(&app.config.deploy_branch), None, limit)
        .await;
    tracer.end(step, &runs);
    Ok(runs?)
}

/// Suggestions for the option being typed: `(name, value)` pairs, at most 25, or none
/// where Valine has nothing to offer. Not rate limited; blocked users get none.
pub async fn autocomplete(
    app: &App,
    caller: &Caller,
    command: &str,
    focused: Option<(String, String)>,
) -> Vec<(String, String)> {
    // Blocked users get nothing, and so does anyone while blocks cannot be read.
    if block::is_blocked(app, caller).await.unwrap_or(true) {
        return Vec::new();
    }
    match (find(command), focused) {
        (Some(command), Some((option, typed))) => command.suggest(app, &option, &typed).await,
        _ => Vec::new(),
    }
}

/// Every command's registration JSON, for `valine register-commands`.
pub fn registration_set() -> Vec<Value> {
    COMMANDS
        .iter()
        .map(|c| c.spec().to_discord_json())
        .collect()
}

/// A refusal decided by [`Command::precheck`], answered at once (ephemeral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// Shown as `❌ <message>`; outcome `invalid`.
    Invalid(String),
    /// Shown as `⛔ <message>`; outcome `denied`.
    Denied(String),
}

/// One command call after authorization and validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub caller: Caller,
    pub options: OptionMap,
    /// The interaction this call answers, for work that finishes later and edits the
    /// reply (`None` for `valine invoke`, which has nothing to edit).
    pub reply_to: Option<ReplyTarget>,
}

impl Call {
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.options.get(name) {
            Some(OptionValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.options.get(name) {
            Some(OptionValue::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.options.get(name) {
            Some(OptionValue::Boolean(b)) => Some(*b),
            _ => None,
        }
    }
}

/// Splits an invoke line such as `/verify-run run_id:123 note:"a b"` into the command
/// and its options, typed by the command's spec.
pub fn parse_invoke_line(line: &str) -> Result<(&'static dyn Command, OptionMap), String> {
    let tokens = split_quoted(line)?;
    let mut tokens = tokens.into_iter();
    let head = tokens.next().ok_or("empty command line")?;
    let name = head.strip_prefix('/').unwrap_or(&head);
    let command = find(name).ok_or_else(|| {
        let known: Vec<&str> = COMMANDS.iter().map(|c| c.spec().name).collect();
        format!("unknown command /{name} (known: {})", known.join(", "))
    })?;
    let spec = command.spec();
    let mut options = OptionMap::new();
    for token in tokens {
        let (key, raw) = token
            .split_once(':')
            .ok_or_else(|| format!("expected key:value, got {token:?}"))?;
        let option = spec
            .options
            .iter()
            .find(|o| o.name == key)
            .ok_or_else(|| unknown_option(&spec, key))?;
        let value = match option.kind {
            OptionKind::String => OptionValue::String(raw.to_owned()),
            OptionKind::Integer { .. } => OptionValue::Integer(
                raw.parse()
                    .map_err(|_| format!("`{key}` must be a whole number"))?,
            ),
            // `123` or a mention as Discord writes it, `<@123>` (`<@!123>` for a nickname).
            OptionKind::User => {
                let id = raw
                    .strip_prefix("<@")
                    .and_then(|r| r.strip_suffix('>'))
                    .map(|r| r.trim_start_matches('!'))
                    .unwrap_or(raw);
                if !is_snowflake(id) {
                    return Err(format!("`{key}` must be a Discord user id"));
                }
                OptionValue::String(id.to_owned())
            }
            OptionKind::Boolean => match raw.to_ascii_lowercase().as_str() {
                "true" | "yes" => OptionValue::Boolean(true),
                "false" | "no" => OptionValue::Boolean(false),
                _ => return Err(format!("`{key}` must be true or false")),
            },
        };
        options.insert(key.to_owned(), value);
    }
    Ok((command, options))
}

/// The error for an option the command does not have, listing the ones it has.
fn unknown_option(spec: &CommandSpec, key: &str) -> String {
    let known: Vec<&str> = spec.options.iter().map(|o| o.name).collect();
    if known.is_empty() {
        format!("unknown option {key:?}: /{} takes no options", spec.name)
    } else {
        format!(
            "unknown option {key:?} for /{}; options: {}",
            spec.name,
            known.join(", ")
        )
    }
}

/// Shell-like splitting on spaces with `"…"` quoting anywhere in a token.
fn split_quoted(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_token = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    tokens.push(std::mem::take(&mut current));
                    has_token = false;
                }
            }
            c => {
                current.push(c);
                has_token = true;
            }
        }
    }
    if in_quotes {
        return Err("unclosed quote".into());
    }
    if has_token {
        tokens.push(current);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_registered_once_with_its_options() {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.spec().name).collect();
        assert_eq!(
            names,
            [
                "status",
                "verify-latest",
                "verify-run",
                "diagnose",
                "deploy-client",
                "set-frontend",
                "set-api-base",
                "debug-last",
                "status-digest",
                "block",
                "unblock",
                "rollback"
            ]
        );
        for c in COMMANDS {
            let name = c.spec().name;
            assert_eq!(find(name).map(|found| found.spec().name), Some(name));
        }
        assert!(find("nope").is_none());
        // Every button belongs to exactly one command.
        let mut actions: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| c.buttons())
            .map(|b| b.action)
            .collect();
        let count = actions.len();
        actions.sort_unstable();
        actions.dedup();
        assert_eq!(actions.len(), count, "a button action is declared twice");
        let status = status::Status.spec().to_discord_json();
        assert_eq!(status["options"][0]["name"], "count");
        assert_eq!(status["options"][0]["type"], 4);
        assert_eq!(status["options"][0]["min_value"], 1);
        assert_eq!(status["options"][0]["max_value"], 10);
        let digest = status_digest::StatusDigest.spec().to_discord_json();
        assert_eq!(digest["options"][0]["choices"][1]["value"], "7d");
        let verify_run = verify_run::VerifyRun.spec().to_discord_json();
        assert_eq!(verify_run["options"][0]["required"], true);
        assert_eq!(verify_run["options"][0]["autocomplete"], true);
        assert!(status["options"][0].get("autocomplete").is_none());
        let block = block::Block.spec().to_discord_json();
        assert_eq!(block["options"][0]["name"], "user");
        assert_eq!(block["options"][0]["type"], 6);
        assert_eq!(block["options"][0]["required"], true);
    }

    #[test]
    fn invoke_lines_parse_with_quotes_and_types() {
        let (cmd, opts) = parse_invoke_line("/status count:2").unwrap();
        assert_eq!(cmd.spec().name, "status");
        assert_eq!(opts["count"], OptionValue::Integer(2));
        let (cmd, opts) =
            parse_invoke_line("/deploy-client ref:\"feature/a b\" wait:true").unwrap();
        assert_eq!(cmd.spec().name, "deploy-client");
        assert_eq!(opts["ref"], OptionValue::String("feature/a b".into()));
        assert_eq!(opts["wait"], OptionValue::Boolean(true));
        assert!(parse_invoke_line("/status count:two").is_err());
        assert_eq!(
            parse_invoke_line("/status cnt:2").err().as_deref(),
            Some("unknown option \"cnt\" for /status; options: count")
        );
        assert_eq!(
            parse_invoke_line("/debug-last x:1").err().as_deref(),
            Some("unknown option \"x\": /debug-last takes no options")
        );
        assert!(parse_invoke_line("/nope").is_err());
        assert!(parse_invoke_line("/status count:\"2").is_err());
        assert!(parse_invoke_line("").is_err());
        for line in [
            "/unblock user:123",
            "/unblock user:<@123>",
            "/unblock user:<@!123>",
        ] {
            let (_, opts) = parse_invoke_line(line).unwrap();
            assert_eq!(opts["user"], OptionValue::String("123".into()), "{line}");
        }
        assert!(parse_invoke_line("/unblock user:@ann").is_err());
    }

    #[test]
    fn validation_checks_ranges_choices_types_and_required() {
        let status = status::Status.spec();
        let mut opts = OptionMap::new();
        assert!(status.validate(&opts).is_ok());
        opts.insert("count".into(), OptionValue::Integer(11));
        assert!(
            status
                .validate(&opts)
                .unwrap_err()
                .contains("between 1 and 10")
        );
        opts.insert("count".into(), OptionValue::String("3".into()));
        assert!(status.validate(&opts).is_err());
        let digest = status_digest::StatusDigest.spec();
        let mut opts = OptionMap::new();
        opts.insert("period".into(), OptionValue::String("30d".into()));
        assert!(digest.validate(&opts).is_err());
        assert!(
            verify_run::VerifyRun
                .spec()
                .validate(&OptionMap::new())
                .is_err()
        );
        let unblock = block::Unblock.spec();
        for (value, ok) in [
            (OptionValue::String("1100000000000000099".into()), true),
            (OptionValue::String("ann".into()), false),
            (OptionValue::String(String::new()), false),
            (OptionValue::Integer(5), false),
        ] {
            let opts = OptionMap::from([("user".to_owned(), value.clone())]);
            assert_eq!(unblock.validate(&opts).is_ok(), ok, "{value:?}");
        }
    }
}
