//! Turns a verified interaction body into what Valine acts on.
//!
//! A tolerant reader (see `docs/design.md#protocol-adapters`): it reads only the fields
//! Valine uses, and an interaction is refused only when one of those it cannot act
//! without is missing: `type`; `id`, `application_id` and `token` (not for a PING); the
//! caller's user id; `data.name` for a command or autocomplete, `data.custom_id` for a
//! button press or modal submit. Every other field may be missing, `null`, of another
//! type or new: Discord adds, drops and nulls fields over time, and a strict model that
//! refuses a PING makes the endpoint unusable (Discord will not save its URL) while one
//! that refuses a button press leaves a dead button.
//!
//! Fields Valine reads but can do without (roles, guild, channel, option values) are
//! [`Lenient`]: a value of an unexpected shape counts as absent, never as an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
/// Who is asking: `member.user.id` in a guild, `user.id` in a DM, and the roles from
/// `member.roles`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub user_id: String,
    pub roles: Vec<String>,
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
}

/// A slash-command option value as typed by the user. Untagged so a stored job keeps
/// plain JSON values; `Integer` precedes `Number` so whole numbers stay integers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    String(String),
    Boolean(bool),
    Integer(i64),
    Number(f64),
}

impl OptionValue {
    pub fn to_json(&self) -> Value {
        match self {
            OptionValue::String(s) => Value::from(s.as_str()),
            OptionValue::Integer(i) => Value::from(*i),
            OptionValue::Number(n) => Value::from(*n),
            OptionValue::Boolean(b) => Value::from(*b),
        }
    }
}

pub type OptionMap = BTreeMap<String, OptionValue>;

/// Where the answer to a deferred interaction goes (jobs store it to edit the reply
/// later). The token is a credential for 15 minutes: `Debug` hides it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyHandle {
    pub application_id: String,
    pub token: String,
}

impl std::fmt::Debug for ReplyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyHandle")
            .field("application_id", &self.application_id)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Ping,
    Command {
        caller: Caller,
        name: String,
        options: OptionMap,
        handle: ReplyHandle,
    },
    Component {
        caller: Caller,
        custom_id: String,
        handle: ReplyHandle,
    },
    Autocomplete {
        caller: Caller,
        name: String,
        focused: Option<(String, String)>,
    },
    /// A type Valine does not handle (modal submit).
    Other,
}

/// Why a signed body is not an interaction Valine can act on. Discord sends each
/// interaction once, and resending the same body cannot help: the answer is a 400.
#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    #[error("body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a valid interaction: {0}")]
    Invalid(&'static str),
}

/// A field Valine reads but can do without: a value of an unexpected shape (or `null`)
/// reads as absent instead of refusing the interaction.
#[derive(Debug, Clone, PartialEq)]
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only the fields Valine reads are buffered; everything else is skipped unread.
        let value = Value::deserialize(deserializer)?;
        Ok(Lenient(T::deserialize(value).ok()))
    }
}

impl<T> Lenient<T> {
    fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }

    fn into_inner(self) -> Option<T> {
        self.0
    }
}

/// A Discord id: a string of digits on the wire, accepted as a number too. An empty
/// string is no id.
#[derive(Debug, Clone, PartialEq)]
struct Snowflake(String);

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if !s.is_empty() => Ok(Snowflake(s)),
            Value::Number(n) if n.is_u64() => Ok(Snowflake(n.to_string())),
            _ => Err(serde::de::Error::custom("not an id")),
        }
    }
}

/// The interaction fields Valine reads, and nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Wire {
    #[serde(rename = "type")]
    kind: Lenient<u8>,
    id: Lenient<Snowflake>,
    application_id: Lenient<Snowflake>,
    token: Lenient<String>,
    guild_id: Lenient<Snowflake>,
    /// Deprecated by Discord in favour of `channel`, but all a minimal payload has.
    channel_id: Lenient<Snowflake>,
    channel: Lenient<WireChannel>,
    member: Lenient<WireMember>,
    user: Lenient<WireUser>,
    data: Lenient<WireData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireChannel {
    id: Lenient<Snowflake>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireMember {
    user: Lenient<WireUser>,
    roles: Lenient<Vec<Lenient<Snowflake>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireUser {
    id: Lenient<Snowflake>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireData {
    name: Lenient<String>,
    custom_id: Lenient<String>,
    options: Lenient<Vec<Lenient<WireOption>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireOption {
    name: Lenient<String>,
    value: Lenient<Value>,
    focused: Lenient<bool>,
}

/// Interaction types (Discord's `type` field).
mod kind {
    pub const PING: u8 = 1;
    pub const APPLICATION_COMMAND: u8 = 2;
    pub const MESSAGE_COMPONENT: u8 = 3;
    pub const AUTOCOMPLETE: u8 = 4;
    pub const MODAL_SUBMIT: u8 = 5;
}

/// Parses a body whose signature has already been verified.
pub fn parse(body: &[u8]) -> Result<Incoming, InteractionError> {
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            InteractionError::Invalid("not a JSON object")
        } else {
            InteractionError::NotJson(e)
        }
    })?;
    from_wire(wire)
}

fn from_wire(wire: Wire) -> Result<Incoming, InteractionError> {
    let kind = wire
        .kind
        .get()
        .copied()
        .ok_or(InteractionError::Invalid("no interaction type"))?;
    if kind == kind::PING {
        // Discord checks the endpoint with PINGs whose other fields vary: only the type
        // matters.
        return Ok(Incoming::Ping);
    }
    let handle = reply_handle(&wire)?;
    let data = wire.data.get();
    let name = || {
        data.and_then(|d| d.name.get())
            .filter(|n| !n.is_empty())
            .cloned()
            .ok_or(InteractionError::Invalid("no data.name"))
    };
    let custom_id = || {
        data.and_then(|d| d.custom_id.get())
            .cloned()
            .ok_or(InteractionError::Invalid("no data.custom_id"))
    };
    match kind {
        kind::APPLICATION_COMMAND => {
            let caller = caller_of(&wire)?;
            let name = name()?;
            let (options, _) = options_of(wire.data.into_inner());
            Ok(Incoming::Command {
                caller,
                name,
                options,
                handle,
            })
        }
        kind::AUTOCOMPLETE => {
            let caller = caller_of(&wire)?;
            let name = name()?;
            let (_, focused) = options_of(wire.data.into_inner());
            Ok(Incoming::Autocomplete {
                caller,
                name,
                focused,
            })
        }
        kind::MESSAGE_COMPONENT => Ok(Incoming::Component {
            caller: caller_of(&wire)?,
            custom_id: custom_id()?,
            handle,
        }),
        kind::MODAL_SUBMIT => {
            caller_of(&wire)?;
            custom_id()?;
            Ok(Incoming::Other)
        }
        // A type newer than Valine: answered as not supported.
        _ => Ok(Incoming::Other),
    }
}

fn reply_handle(wire: &Wire) -> Result<ReplyHandle, InteractionError> {
    wire.id
        .get()
        .ok_or(InteractionError::Invalid("no interaction id"))?;
    let application_id = wire
        .application_id
        .get()
        .ok_or(InteractionError::Invalid("no application_id"))?;
    let token = wire
        .token
        .get()
        .filter(|t| !t.is_empty())
        .ok_or(InteractionError::Invalid("no token"))?;
    Ok(ReplyHandle {
        application_id: application_id.0.clone(),
        token: token.clone(),
    })
}

/// `member.user.id` in a guild, `user.id` in a DM.
fn caller_of(wire: &Wire) -> Result<Caller, InteractionError> {
    let member = wire.member.get();
    let user_id = member
        .and_then(|m| m.user.get())
        .and_then(|u| u.id.get())
        .or_else(|| wire.user.get().and_then(|u| u.id.get()))
        .ok_or(InteractionError::Invalid("no member.user.id or user.id"))?;
    let roles = member
        .and_then(|m| m.roles.get())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.get().map(|r| r.0.clone()))
                .collect()
        })
        .unwrap_or_default();
    let channel_id = wire
        .channel
        .get()
        .and_then(|c| c.id.get())
        .or_else(|| wire.channel_id.get())
        .map(|c| c.0.clone());
    Ok(Caller {
        user_id: user_id.0.clone(),
        roles,
        guild_id: wire.guild_id.get().map(|g| g.0.clone()),
        channel_id,
    })
}

/// The options as typed, and the one being typed (autocomplete) with its text so far.
///
/// A value keeps its JSON type: a string stays a string even where the command wants a
/// number, so validation answers "`count` has the wrong type" instead of the interaction
/// being refused. An integer beyond `i64` is a `Number`, wrong for an integer option in
/// the same way. Options without a name or a scalar value (subcommand groups, which
/// Valine never registers, or a `null`) are left out.
fn options_of(data: Option<WireData>) -> (OptionMap, Option<(String, String)>) {
    let mut options = OptionMap::new();
    let mut focused = None;
    let wire_options = data
        .and_then(|d| d.options.into_inner())
        .unwrap_or_default();
    for option in wire_options.into_iter().filter_map(Lenient::into_inner) {
        let (Some(name), Some(value)) = (option.name.into_inner(), option.value.into_inner())
        else {
            continue;
        };
        let value = match value {
            Value::String(s) => OptionValue::String(s),
            Value::Bool(b) => OptionValue::Boolean(b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => OptionValue::Integer(i),
                (None, Some(f)) => OptionValue::Number(f),
                (None, None) => continue,
            },
            _ => continue,
        };
        if option.focused.get() == Some(&true) {
            let typed = match &value {
                OptionValue::String(s) => s.clone(),
                other => other.to_json().to_string(),
            };
            focused = Some((name.clone(), typed));
        }
        options.insert(name, value);
    }
    (options, focused)
}

/// Realistic payloads as Discord sends them (a PING from Discord's system user, guild
/// and DM commands, autocomplete, button presses on messages sent through the
/// interaction webhook, a modal submit), shared with the black-box tests.
pub mod corpus {
    /// `(file name, body)` of every payload in `src/discord/fixtures/interactions/`.
    pub const PAYLOADS: &[(&str, &str)] = &[
        (
            "ping_from_discord",
            include_str!("fixtures/interactions/ping_from_discord.json"),
        ),
        (
            "ping_minimal",
            include_str!("fixtures/interactions/ping_minimal.json"),
        ),
        (
            "guild_command_status",
            include_str!("fixtures/interactions/guild_command_status.json"),
        ),
        (
            "dm_command_deploy",
            include_str!("fixtures/interactions/dm_command_deploy.json"),
        ),
        (
            "guild_command_block_user_option",
            include_str!("fixtures/interactions/guild_command_block_user_option.json"),
        ),
        (
            "autocomplete_verify_run",
            include_str!("fixtures/interactions/autocomplete_verify_run.json"),
        ),
        (
            "button_press_on_webhook_message",
            include_str!("fixtures/interactions/button_press_on_webhook_message.json"),
        ),
        (
            "button_press_minimal_message",
            include_str!("fixtures/interactions/button_press_minimal_message.json"),
        ),
        (
            "modal_submit",
            include_str!("fixtures/interactions/modal_submit.json"),
        ),
    ];

    /// The fields an interaction cannot be acted on without, as JSON paths into
    /// `payload`: `type`; `id`, `application_id` and `token` except for a PING; the
    /// caller's user id (`member.user.id` in a guild, else `user.id`); `data.name` or
    /// `data.custom_id`. Everything else may be missing, `null` or new.
    pub fn required_paths(payload: &serde_json::Value) -> Vec<Vec<&'static str>> {
        let mut paths = vec![vec!["type"]];
        let kind = payload["type"].as_u64().unwrap_or(0);
        if kind == u64::from(super::kind::PING) {
            return paths;
        }
        paths.extend([vec!["id"], vec!["application_id"], vec!["token"]]);
        if payload["member"]["user"]["id"].is_string() {
            paths.push(vec!["member", "user", "id"]);
        } else {
            paths.push(vec!["user", "id"]);
        }
        match u8::try_from(kind).unwrap_or(0) {
            super::kind::APPLICATION_COMMAND | super::kind::AUTOCOMPLETE => {
                paths.push(vec!["data", "name"])
            }
            super::kind::MESSAGE_COMPONENT | super::kind::MODAL_SUBMIT => {
                paths.push(vec!["data", "custom_id"])
            }
            _ => {}
        }
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse_value(value: &Value) -> Result<Incoming, InteractionError> {
        parse(value.to_string().as_bytes())
    }

    fn corpus(name: &str) -> Value {
        let (_, body) = corpus::PAYLOADS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("corpus payload");
        serde_json::from_str(body).unwrap()
    }

    /// What an interaction means to Valine: its kind, caller, command or custom id.
    type Meaning<'a> = (u8, Option<&'a str>, Option<&'a str>);

    fn meaning(incoming: &Incoming) -> Meaning<'_> {
        match incoming {
            Incoming::Ping => (1, None, None),
            Incoming::Command { caller, name, .. } => (2, Some(&caller.user_id), Some(name)),
            Incoming::Component {
                caller, custom_id, ..
            } => (3, Some(&caller.user_id), Some(custom_id)),
            Incoming::Autocomplete { caller, name, .. } => (4, Some(&caller.user_id), Some(name)),
            Incoming::Other => (5, None, None),
        }
    }

    #[test]
    fn every_corpus_payload_parses_to_what_it_means() {
        let expected: &[(&str, Meaning<'_>)] = &[
            ("ping_from_discord", (1, None, None)),
            ("ping_minimal", (1, None, None)),
            (
                "guild_command_status",
                (2, Some("1100000000000000042"), Some("status")),
            ),
            (
                "dm_command_deploy",
                (2, Some("1100000000000000043"), Some("deploy-client")),
            ),
            (
                "guild_command_block_user_option",
                (2, Some("1100000000000000042"), Some("block")),
            ),
            (
                "autocomplete_verify_run",
                (4, Some("1100000000000000042"), Some("verify-run")),
            ),
            (
                "button_press_on_webhook_message",
                (3, Some("1100000000000000042"), Some("valine:reverify:9000")),
            ),
            (
                "button_press_minimal_message",
                (
                    3,
                    Some("1100000000000000042"),
                    Some(
                        "valine:set-frontend-cancel:1700000900-0a1b2c3d-00112233445566778899aabbccddeeff",
                    ),
                ),
            ),
            ("modal_submit", (5, None, None)),
        ];
        assert_eq!(expected.len(), corpus::PAYLOADS.len());
        for (name, meant) in expected {
            let parsed = parse_value(&corpus(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(meaning(&parsed), *meant, "{name}");
        }
    }

    #[test]
    fn guild_command_gives_member_identity_roles_channel_and_options() {
        let Incoming::Command {
            caller,
            options,
            handle,
            ..
        } = parse_value(&corpus("guild_command_status")).unwrap()
        else {
            panic!("not a command");
        };
        assert_eq!(caller.roles, ["1100000000000000007", "1100000000000000008"]);
        assert_eq!(caller.guild_id.as_deref(), Some("1100000000000000005"));
        assert_eq!(caller.channel_id.as_deref(), Some("1100000000000000006"));
        assert_eq!(options.get("count"), Some(&OptionValue::Integer(2)));
        assert_eq!(handle.application_id, "1180000000000004242");
        assert_eq!(
            handle.token,
            "aW50ZXJhY3Rpb246MTMxMDAwMDAwMDAwMDAwMDAwMjpndWlsZA"
        );

        let Incoming::Command {
            caller, options, ..
        } = parse_value(&corpus("dm_command_deploy")).unwrap()
        else {
            panic!("not a command");
        };
        assert!(caller.roles.is_empty() && caller.guild_id.is_none());
        assert_eq!(caller.channel_id.as_deref(), Some("1100000000000000016"));
        assert_eq!(options["wait"], OptionValue::Boolean(true));
        assert_eq!(
            options["ref"],
            OptionValue::String("release/2026-11".into())
        );

        let Incoming::Command { options, .. } =
            parse_value(&corpus("guild_command_block_user_option")).unwrap()
        else {
            panic!("not a command");
        };
        assert_eq!(
            options["user"],
            OptionValue::String("1100000000000000099".into())
        );
    }

    #[test]
    fn autocomplete_names_the_focused_option_and_its_text() {
        let Incoming::Autocomplete { focused, .. } =
            parse_value(&corpus("autocomplete_verify_run")).unwrap()
        else {
            panic!("not autocomplete");
        };
        assert_eq!(focused, Some(("run_id".into(), "90".into())));
    }

    /// The shapes found refused by the strict model, each now served.
    #[test]
    fn the_shapes_a_strict_model_refused_are_served() {
        let set = |mut value: Value, path: &[&str], new: Option<Value>| {
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut value;
            for key in parents {
                at = at.get_mut(key).unwrap();
            }
            let obj = at.as_object_mut().unwrap();
            match new {
                Some(v) => obj.insert((*last).to_owned(), v),
                None => obj.remove(*last),
            };
            value
        };
        let press = corpus("button_press_on_webhook_message");
        let mut cases = Vec::new();
        for field in [
            "attachments",
            "mentions",
            "mention_roles",
            "pinned",
            "tts",
            "mention_everyone",
            "content",
            "embeds",
            "timestamp",
        ] {
            cases.push(set(press.clone(), &["message", field], None));
        }
        cases.push(set(press.clone(), &["message", "author", "username"], None));
        for field in [
            "authorizing_integration_owners",
            "id",
            "type",
            "user",
            "name",
        ] {
            cases.push(set(
                press.clone(),
                &["message", "interaction_metadata", field],
                None,
            ));
        }
        let mut other_timestamp = press.clone();
        other_timestamp["message"]["timestamp"] = json!("2026-11-30T14:01:58Z");
        cases.push(other_timestamp);
        let mut embed_type = press.clone();
        embed_type["message"]["embeds"][0]
            .as_object_mut()
            .unwrap()
            .remove("type");
        cases.push(embed_type);
        let command = corpus("guild_command_status");
        cases.push(set(
            command.clone(),
            &["member", "roles"],
            Some(Value::Null),
        ));
        cases.push(set(command.clone(), &["member", "user", "username"], None));
        cases.push(set(command.clone(), &["channel", "type"], None));
        cases.push(set(command, &["member", "flags"], None));
        let dm = corpus("dm_command_deploy");
        cases.push(set(dm.clone(), &["user", "discriminator"], None));
        let ping = corpus("ping_from_discord");
        cases.push(set(ping.clone(), &["user", "username"], None));
        cases.push(set(ping, &["user", "id"], Some(json!("0"))));
        for case in cases {
            assert!(parse_value(&case).is_ok(), "refused: {case}");
        }
    }

    #[test]
    fn option_values_keep_their_json_type_for_validation_to_judge() {
        let mut command = corpus("guild_command_status");
        for (value, expected) in [
            (json!("3"), Some(OptionValue::String("3".into()))),
            (json!(3.5), Some(OptionValue::Number(3.5))),
            (
                json!(9_223_372_036_854_775_808u64),
                Some(OptionValue::Number(9_223_372_036_854_775_808.0)),
            ),
            (json!(null), None),
            (json!({"nested": 1}), None),
        ] {
            command["data"]["options"][0]["value"] = value.clone();
            let Incoming::Command { options, .. } = parse_value(&command).unwrap() else {
                panic!("not a command");
            };
            assert_eq!(options.get("count"), expected.as_ref(), "{value}");
        }
    }

    #[test]
    fn only_what_valine_cannot_act_without_is_refused() {
        assert!(matches!(parse(b"{nope"), Err(InteractionError::NotJson(_))));
        for not_an_object in [&b"[]"[..], b"1", b"\"ping\"", b"null"] {
            assert!(
                matches!(parse(not_an_object), Err(InteractionError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(not_an_object)
            );
        }
        assert!(parse(b"{}").is_err(), "no type");
        assert!(
            parse(br#"{"type": "1"}"#).is_err(),
            "a type that is not a number"
        );
        for payload in corpus::PAYLOADS {
            let value: Value = serde_json::from_str(payload.1).unwrap();
            for path in corpus::required_paths(&value) {
                let mut without = value.clone();
                let (last, parents) = path.split_last().unwrap();
                let mut at = &mut without;
                for key in parents {
                    at = at.get_mut(key).unwrap();
                }
                at.as_object_mut().unwrap().remove(*last);
                assert!(
                    parse_value(&without).is_err(),
                    "{} parsed without {}",
                    payload.0,
                    path.join(".")
                );
            }
        }
        // A guild command whose member has no user falls back to `user`, and with
        // neither there is no caller.
        let mut command = corpus("guild_command_status");
        command["member"].as_object_mut().unwrap().remove("user");
        assert!(parse_value(&command).is_err());
        command["user"] = json!({"id": "77"});
        let Incoming::Command { caller, .. } = parse_value(&command).unwrap() else {
            panic!("not a command");
        };
        assert_eq!(caller.user_id, "77");
    }

    #[test]
    fn debug_output_hides_the_interaction_token() {
        let handle = ReplyHandle {
            application_id: "99".into(),
            token: "aW50ZXJhY3Rpb24tc2VjcmV0".into(),
        };
        let shown = format!("{handle:?}");
        assert!(
            shown.contains("99") && !shown.contains("aW50ZXJhY3Rpb24tc2VjcmV0"),
            "{shown}"
        );
    }

    /// Every path in `value` (object keys and array indices), parents before children.
    fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    prefix.push(i.to_string());
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    /// Whether changing `path` could touch a field Valine cannot act without: the path
    /// is one of them or an ancestor of one.
    fn protected(path: &[String], required: &[Vec<&str>]) -> bool {
        required
            .iter()
            .any(|r| path.len() <= r.len() && path.iter().zip(r).all(|(a, b)| a == b))
    }

    fn pointer(path: &[String]) -> String {
        path.iter()
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Delete,
        Null,
        Add(String, Value),
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z0-9 ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            Just(Mutation::Delete),
            Just(Mutation::Null),
            ("[a-z_]{1,12}", any_json()).prop_map(|(k, v)| Mutation::Add(k, v)),
        ]
    }

    /// Applies `mutation` at the `pick`-th path not protected; `Add` puts a new field
    /// into the object at that path (or at the top) when the name is not taken.
    fn apply(value: &mut Value, pick: usize, mutation: &Mutation) {
        let required = corpus::required_paths(value);
        let mut all = Vec::new();
        paths(value, &mut Vec::new(), &mut all);
        let free: Vec<Vec<String>> = all
            .into_iter()
            .filter(|p| !protected(p, &required))
            .collect();
        match mutation {
            Mutation::Add(key, new) => {
                let mut objects: Vec<String> = vec![String::new()];
                objects.extend(
                    free.iter()
                        .filter(|p| value.pointer(&pointer(p)).is_some_and(Value::is_object))
                        .map(|p| pointer(p)),
                );
                // Objects on a required path (the top, `member`, `data`) take new fields
                // too: a new field never displaces one Valine reads.
                for r in &required {
                    for end in 0..r.len() {
                        let p: Vec<String> = r[..end].iter().map(|s| s.to_string()).collect();
                        objects.push(pointer(&p));
                    }
                }
                let at = &objects[pick % objects.len()];
                if let Some(obj) = value.pointer_mut(at).and_then(Value::as_object_mut)
                    && !obj.contains_key(key)
                {
                    obj.insert(key.clone(), new.clone());
                }
            }
            Mutation::Delete | Mutation::Null => {
                if free.is_empty() {
                    return;
                }
                let path = &free[pick % free.len()];
                let (last, parent) = path.split_last().unwrap();
                let Some(container) = value.pointer_mut(&pointer(parent)) else {
                    return;
                };
                match (mutation, container) {
                    (Mutation::Null, c) => {
                        if let Some(slot) = c.pointer_mut(&pointer(std::slice::from_ref(last))) {
                            *slot = Value::Null;
                        }
                    }
                    (_, Value::Object(obj)) => {
                        obj.remove(last);
                    }
                    (_, Value::Array(items)) => {
                        if let Ok(i) = last.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    proptest! {
        // Bounded so the suite stays fast; each case applies up to four changes.
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Deleting, nulling or adding any field other than those Valine cannot act
        /// without never refuses an interaction (the only 400 after the signature), and
        /// never changes what it means.
        #[test]
        fn fields_valine_does_not_need_never_refuse_an_interaction(
            which in 0..corpus::PAYLOADS.len(),
            changes in proptest::collection::vec((any::<usize>(), mutation()), 1..5),
        ) {
            let (name, body) = corpus::PAYLOADS[which];
            let original: Value = serde_json::from_str(body).unwrap();
            let before = parse_value(&original).unwrap();
            let mut changed = original.clone();
            for (pick, m) in &changes {
                apply(&mut changed, *pick, m);
            }
            let after = parse_value(&changed);
            prop_assert!(after.is_ok(), "{name} refused after {changes:?}: {changed}");
            let after = after.unwrap();
            prop_assert_eq!(meaning(&after), meaning(&before), "{}", name);
        }
    }
}
