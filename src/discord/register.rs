//! `valine register-commands`: make Discord's registered command set equal to Valine's
//! with one bulk overwrite, and report what that changes.
//!
//! The report compares only the fields Valine sets, normalised to Discord's defaults:
//! Discord answers with extra fields (ids, `version`, localizations, `nsfw`, …) and
//! omits defaults (`required: false`), so a raw comparison would call every command
//! "changed".

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::api::{DiscordClient, DiscordError};

/// What a registration adds, changes, removes and leaves alone (command names, sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl fmt::Display for RegisterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, names) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
            ("unchanged", &self.unchanged),
        ] {
            if names.is_empty() {
                writeln!(f, "{label}: (none)")?;
            } else {
                writeln!(f, "{label}: {}", names.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Compares the desired command set with the registered one.
///
/// Commands are matched by `(type, name)`: Discord lets a slash command and a context
/// menu command share a name, and they are different commands.
pub fn diff(desired: &[Value], existing: &[Value]) -> RegisterReport {
    let mut remaining: BTreeMap<(u64, String), &Value> = existing
        .iter()
        .map(|command| (command_key(command), command))
        .collect();
    let mut report = RegisterReport::default();

    for wanted in desired {
        let key = command_key(wanted);
        let name = key.1.clone();
        match remaining.remove(&key) {
            None => report.added.push(name),
            Some(current)
                if normalize_command(wanted, wanted) == normalize_command(wanted, current) =>
            {
                report.unchanged.push(name)
            }
            Some(_) => report.changed.push(name),
        }
    }
    report.removed = remaining.into_keys().map(|(_, name)| name).collect();

    for list in [
        &mut report.added,
        &mut report.changed,
        &mut report.removed,
        &mut report.unchanged,
    ] {
        list.sort();
    }
    report
}

/// Reads the registered commands, diffs them and, unless `dry_run`, overwrites the whole
/// set in one `PUT` (so commands Valine no longer has are removed in the same call).
///
/// With `dry_run` nothing is written and the second value is the pretty JSON that would
/// have been sent.
pub async fn register(
    client: &DiscordClient,
    application_id: &str,
    guild_id: Option<&str>,
    desired: &[Value],
    dry_run: bool,
) -> Result<(RegisterReport, Option<String>), DiscordError> {
    let existing = client.get_commands(application_id, guild_id).await?;
    let report = diff(desired, &existing);
    if dry_run {
        let json = serde_json::to_string_pretty(desired)
            .map_err(|e| DiscordError::InvalidRequest(format!("commands are not JSON: {e}")))?;
        return Ok((report, Some(json)));
    }
    // Always overwrite, even when the report shows no change: the comparison ignores
    // fields Valine does not set, and a redundant bulk overwrite is harmless.
    client
        .put_commands(application_id, guild_id, desired)
        .await?;
    tracing::info!(
        added = report.added.len(),
        changed = report.changed.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged.len(),
        guild_id = guild_id.unwrap_or("global"),
        "discord commands registered"
    );
    Ok((report, None))
}

fn command_key(command: &Value) -> (u64, String) {
    let kind = command.get("type").and_then(Value::as_u64).unwrap_or(1);
    let name = command
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (kind, name)
}

/// The comparable form of `command`. `desired` decides which optional top-level fields
/// count: a field Valine does not set is Discord's to choose.
fn normalize_command(desired: &Value, command: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), Value::from(command_key(command).0));
    out.insert("name".into(), string_or_empty(command.get("name")));
    // Context-menu commands have an empty description; Discord returns "".
    out.insert(
        "description".into(),
        string_or_empty(command.get("description")),
    );
    out.insert("options".into(), normalize_options(command.get("options")));

    if desired.get("default_member_permissions").is_some() {
        // A permission bit set is a string in Discord's API, but a number is accepted.
        let permissions = match non_null(command.get("default_member_permissions")) {
            Some(Value::Number(n)) => Value::String(n.to_string()),
            Some(other) => other.clone(),
            None => Value::Null,
        };
        out.insert("default_member_permissions".into(), permissions);
    }
    for set_field in ["contexts", "integration_types"] {
        if desired.get(set_field).is_some() {
            out.insert(set_field.into(), sorted_numbers(command.get(set_field)));
        }
    }
    if desired.get("nsfw").is_some() {
        out.insert("nsfw".into(), bool_or_false(command.get("nsfw")));
    }
    Value::Object(out)
}

/// Options keep their order (Discord shows them in it), recursively for sub-commands.
fn normalize_options(options: Option<&Value>) -> Value {
    let list = non_null(options)
        .and_then(Value::as_array)
        .map(|list| list.iter().map(normalize_option).collect())
        .unwrap_or_default();
    Value::Array(list)
}

fn normalize_option(option: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "type".into(),
        option.get("type").cloned().unwrap_or(Value::Null),
    );
    out.insert("name".into(), string_or_empty(option.get("name")));
    out.insert(
        "description".into(),
        string_or_empty(option.get("description")),
    );
    out.insert("required".into(), bool_or_false(option.get("required")));
    out.insert(
        "autocomplete".into(),
        bool_or_false(option.get("autocomplete")),
    );
    let choices = non_null(option.get("choices"))
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "name": string_or_empty(c.get("name")),
                        "value": numeric(c.get("value")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.insert("choices".into(), Value::Array(choices));
    for bound in ["min_value", "max_value", "min_length", "max_length"] {
        if let Some(value) = non_null(option.get(bound)) {
            out.insert(bound.into(), numeric(Some(value)));
        }
    }
    if let Some(types) = non_null(option.get("channel_types")) {
        out.insert("channel_types".into(), sorted_numbers(Some(types)));
    }
    out.insert("options".into(), normalize_options(option.get("options")));
    Value::Object(out)
}

fn non_null(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn string_or_empty(value: Option<&Value>) -> Value {
    Value::String(value.and_then(Value::as_str).unwrap_or_default().to_owned())
}

fn bool_or_false(value: Option<&Value>) -> Value {
    Value::Bool(value.and_then(Value::as_bool).unwrap_or(false))
}

/// `1` and `1.0` are the same bound; Discord may answer either.
fn numeric(value: Option<&Value>) -> Value {
    match non_null(value) {
        Some(Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// Order-insensitive lists of small integers (`contexts`, `channel_types`, …).
fn sorted_numbers(value: Option<&Value>) -> Value {
    match non_null(value).and_then(Value::as_array) {
        Some(list) => {
            let mut list = list.clone();
            list.sort_by_key(Value::to_string);
            Value::Array(list)
        }
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::api::tests::{FakeDiscord, Reply};
    use secrecy::SecretString;
    use serde_json::json;

    fn desired() -> Vec<Value> {
        vec![
            json!({
                "name": "status",
                "description": "Show status",
                "default_member_permissions": null,
                "contexts": [0, 1],
            }),
            json!({
                "name": "deploy-client",
                "description": "Deploy the client",
                "options": [
                    {"type": 3, "name": "ref", "description": "Git ref", "autocomplete": true},
                    {"type": 5, "name": "wait", "description": "Wait for the run", "required": false},
                    {"type": 4, "name": "count", "description": "N", "min_value": 1, "max_value": 10,
                     "choices": [{"name": "one", "value": 1}]},
                ],
            }),
            json!({"name": "verify-run", "description": "Verify a run"}),
        ]
    }

    /// What Discord returns for the desired `status` (unchanged, with server fields),
    /// an outdated `deploy-client`, and a command Valine no longer has.
    fn existing() -> Vec<Value> {
        vec![
            json!({
                "id": "1001", "application_id": "app", "version": "77", "type": 1,
                "name": "status", "name_localizations": null,
                "description": "Show status", "description_localizations": null,
                "default_member_permissions": null, "dm_permission": true, "nsfw": false,
                "contexts": [1, 0], "integration_types": [0],
            }),
            json!({
                "id": "1002", "application_id": "app", "version": "78", "type": 1,
                "name": "deploy-client", "description": "Deploy the client",
                "options": [
                    {"type": 3, "name": "ref", "description": "Git ref", "autocomplete": true},
                    {"type": 5, "name": "wait", "description": "Wait for the run (old)"},
                    {"type": 4, "name": "count", "description": "N", "min_value": 1.0, "max_value": 10,
                     "choices": [{"name": "one", "value": 1, "name_localizations": null}]},
                ],
            }),
            json!({"id": "1003", "type": 1, "name": "old-command", "description": "Gone"}),
        ]
    }

    fn expected_report() -> RegisterReport {
        RegisterReport {
            added: vec!["verify-run".into()],
            changed: vec!["deploy-client".into()],
            removed: vec!["old-command".into()],
            unchanged: vec!["status".into()],
        }
    }

    #[test]
    fn diff_ignores_server_fields_and_defaults() {
        assert_eq!(diff(&desired(), &existing()), expected_report());
    }

    #[test]
    fn normalisation_treats_defaults_and_number_forms_as_equal() {
        let wanted = json!({"name": "a", "description": "d", "options": [
            {"type": 4, "name": "n", "description": "x", "min_value": 1, "required": false}]});
        let current = json!({"id": "9", "type": 1, "name": "a", "description": "d", "options": [
            {"type": 4, "name": "n", "description": "x", "min_value": 1.0, "autocomplete": false}]});
        assert_eq!(diff(&[wanted], &[current]).unchanged, vec!["a"]);

        // A nested sub-command option change is a change.
        let nested = |desc: &str| {
            json!({"name": "b", "description": "d", "options": [
                {"type": 1, "name": "sub", "description": "s", "options": [
                    {"type": 3, "name": "x", "description": desc}]}]})
        };
        assert_eq!(diff(&[nested("one")], &[nested("two")]).changed, vec!["b"]);

        // default_member_permissions counts only when Valine sets it.
        let admin = json!({"name": "c", "description": "d", "default_member_permissions": "8"});
        let open = json!({"name": "c", "description": "d", "default_member_permissions": null});
        assert_eq!(
            diff(&[admin], std::slice::from_ref(&open)).changed,
            vec!["c"]
        );
        let unset = json!({"name": "c", "description": "d"});
        assert_eq!(diff(&[unset], &[open]).unchanged, vec!["c"]);
    }

    #[test]
    fn report_display_lists_every_category() {
        let text = expected_report().to_string();
        assert_eq!(
            text,
            "added: verify-run\nchanged: deploy-client\nremoved: old-command\nunchanged: status\n"
        );
        let empty = RegisterReport::default().to_string();
        assert!(empty.contains("added: (none)\n"));
        assert!(empty.contains("unchanged: (none)\n"));
    }

    fn client(base: url::Url) -> DiscordClient {
        DiscordClient::new(base, Some(SecretString::from("bot-token-for-tests")))
    }

    #[tokio::test]
    async fn register_puts_the_full_desired_set_once() {
        let (fake, base) = FakeDiscord::start(vec![
            Reply::json(200, Value::Array(existing())),
            Reply::json(200, Value::Array(desired())),
        ])
        .await;
        let (report, json) = register(&client(base), "app", None, &desired(), false)
            .await
            .expect("register");
        assert_eq!(report, expected_report());
        assert_eq!(json, None);

        let reqs = fake.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str()),
            ("GET", "/api/v10/applications/app/commands")
        );
        assert_eq!(
            (reqs[1].method.as_str(), reqs[1].path.as_str()),
            ("PUT", "/api/v10/applications/app/commands")
        );
        assert_eq!(reqs[1].body, Some(Value::Array(desired())));
        assert_eq!(
            reqs[1].authorization.as_deref(),
            Some("Bot bot-token-for-tests")
        );
        assert_eq!(reqs.iter().filter(|r| r.method == "PUT").count(), 1);
    }

    #[tokio::test]
    async fn dry_run_makes_no_put_and_returns_the_json() {
        let (fake, base) =
            FakeDiscord::start(vec![Reply::json(200, Value::Array(existing()))]).await;
        let (report, json) = register(&client(base), "app", None, &desired(), true)
            .await
            .expect("dry run");
        assert_eq!(report, expected_report());
        let json = json.expect("dry run JSON");
        assert_eq!(
            serde_json::from_str::<Value>(&json).expect("JSON"),
            Value::Array(desired())
        );
        assert!(json.contains('\n'), "pretty-printed");
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "GET");
    }

    #[tokio::test]
    async fn guild_registration_uses_the_guild_path() {
        let (fake, base) = FakeDiscord::start(vec![
            Reply::json(200, json!([])),
            Reply::json(200, Value::Array(desired())),
        ])
        .await;
        let (report, _) = register(&client(base), "app", Some("g42"), &desired(), false)
            .await
            .expect("register");
        assert_eq!(report.added, vec!["deploy-client", "status", "verify-run"]);
        let paths: Vec<_> = fake
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            paths,
            [
                "GET /api/v10/applications/app/guilds/g42/commands",
                "PUT /api/v10/applications/app/guilds/g42/commands",
            ]
        );
    }

    #[tokio::test]
    async fn unauthorized_registration_fails_without_put() {
        let (fake, base) = FakeDiscord::start(vec![Reply::json(
            401,
            json!({"message": "401: Unauthorized", "code": 0}),
        )])
        .await;
        let err = register(&client(base), "app", None, &desired(), false)
            .await
            .expect_err("401");
        assert_eq!(err.error_type(), "discord_unauthorized");
        assert!(!err.to_string().contains("bot-token-for-tests"));
        assert_eq!(fake.requests().len(), 1);
    }
}
