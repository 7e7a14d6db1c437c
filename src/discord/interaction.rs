//! Turns a verified interaction body into what Valine acts on.
//!
//! Parsing goes through twilight-model's `Interaction`. Discord has added required-looking
//! fields over time (`attachment_size_limit`, `authorizing_integration_owners`, member
//! `flags`) that older or minimal payloads lack; those are filled with neutral defaults
//! before deserializing, so an otherwise valid interaction is never refused for them.

use std::collections::BTreeMap;

use serde_json::Value;
use twilight_model::application::interaction::application_command::{
    CommandDataOption, CommandOptionValue,
};
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};

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

#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not a valid interaction: {0}")]
    Invalid(String),
}

/// Fills fields newer Discord versions always send, so older payloads still parse.
fn fill_defaults(value: &mut Value) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    obj.entry("attachment_size_limit").or_insert(Value::from(0));
    obj.entry("authorizing_integration_owners")
        .or_insert(Value::Object(Default::default()));
    obj.entry("entitlements")
        .or_insert(Value::Array(Vec::new()));
    if let Some(member) = obj.get_mut("member").and_then(Value::as_object_mut) {
        member.entry("deaf").or_insert(Value::Bool(false));
        member.entry("mute").or_insert(Value::Bool(false));
        member.entry("flags").or_insert(Value::from(0));
        member.entry("roles").or_insert(Value::Array(Vec::new()));
        member
            .entry("communication_disabled_until")
            .or_insert(Value::Null);
        if let Some(user) = member.get_mut("user").and_then(Value::as_object_mut) {
            user.entry("discriminator").or_insert(Value::from("0"));
        }
    }
    if let Some(user) = obj.get_mut("user").and_then(Value::as_object_mut) {
        user.entry("discriminator").or_insert(Value::from("0"));
    }
}

/// Parses a body whose signature has already been verified.
pub fn parse(body: &[u8]) -> Result<Incoming, InteractionError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| InteractionError::NotJson(e.to_string()))?;
    fill_defaults(&mut value);
    let interaction: Interaction =
        serde_json::from_value(value).map_err(|e| InteractionError::Invalid(e.to_string()))?;
    from_interaction(interaction)
}

fn caller_of(interaction: &Interaction) -> Result<Caller, InteractionError> {
    let user_id = interaction
        .author_id()
        .ok_or_else(|| InteractionError::Invalid("no member.user or user".into()))?;
    let roles = interaction
        .member
        .as_ref()
        .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    #[allow(deprecated)] // `channel_id` is still sent and is all a minimal payload has.
    let channel_id = interaction
        .channel
        .as_ref()
        .map(|c| c.id.to_string())
        .or_else(|| interaction.channel_id.map(|c| c.to_string()));
    Ok(Caller {
        user_id: user_id.to_string(),
        roles,
        guild_id: interaction.guild_id.map(|g| g.to_string()),
        channel_id,
    })
}

fn flatten_options(
    options: Vec<CommandDataOption>,
    out: &mut OptionMap,
) -> Option<(String, String)> {
    let mut focused = None;
    for option in options {
        let value = match option.value {
            CommandOptionValue::String(s) => OptionValue::String(s),
            CommandOptionValue::Integer(i) => OptionValue::Integer(i),
            CommandOptionValue::Number(n) => OptionValue::Number(n),
            CommandOptionValue::Boolean(b) => OptionValue::Boolean(b),
            CommandOptionValue::Focused(text, _) => {
                focused = Some((option.name.clone(), text.clone()));
                OptionValue::String(text)
            }
            // Valine's commands declare no subcommands, users, channels or roles; such
            // values can only come from a stale registration and are ignored.
            _ => continue,
        };
        out.insert(option.name, value);
    }
    focused
}

fn from_interaction(interaction: Interaction) -> Result<Incoming, InteractionError> {
    let handle = ReplyHandle {
        application_id: interaction.application_id.to_string(),
        token: interaction.token.clone(),
    };
    match interaction.kind {
        InteractionType::Ping => Ok(Incoming::Ping),
        InteractionType::ApplicationCommand | InteractionType::ApplicationCommandAutocomplete => {
            let caller = caller_of(&interaction)?;
            let Some(InteractionData::ApplicationCommand(data)) = interaction.data else {
                return Err(InteractionError::Invalid("command without data".into()));
            };
            let mut options = OptionMap::new();
            let focused = flatten_options(data.options, &mut options);
            if interaction.kind == InteractionType::ApplicationCommand {
                Ok(Incoming::Command {
                    caller,
                    name: data.name,
                    options,
                    handle,
                })
            } else {
                Ok(Incoming::Autocomplete {
                    caller,
                    name: data.name,
                    focused,
                })
            }
        }
        InteractionType::MessageComponent => {
            let caller = caller_of(&interaction)?;
            let Some(InteractionData::MessageComponent(data)) = interaction.data else {
                return Err(InteractionError::Invalid("component without data".into()));
            };
            Ok(Incoming::Component {
                caller,
                custom_id: data.custom_id,
                handle,
            })
        }
        _ => Ok(Incoming::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guild_command_gives_member_identity_roles_and_options() {
        let body = json!({
            "id": "1", "application_id": "99", "type": 2, "token": "tok", "version": 1,
            "guild_id": "5", "channel_id": "6",
            "member": {"user": {"id": "42", "username": "ann"}, "roles": ["7", "8"]},
            "data": {"id": "3", "name": "status", "type": 1,
                     "options": [{"name": "count", "type": 4, "value": 2}]}
        });
        let Incoming::Command {
            caller,
            name,
            options,
            handle,
        } = parse(body.to_string().as_bytes()).unwrap()
        else {
            panic!("not a command");
        };
        assert_eq!(caller.user_id, "42");
        assert_eq!(caller.roles, vec!["7", "8"]);
        assert_eq!(caller.guild_id.as_deref(), Some("5"));
        assert_eq!(caller.channel_id.as_deref(), Some("6"));
        assert_eq!(name, "status");
        assert_eq!(options.get("count"), Some(&OptionValue::Integer(2)));
        assert_eq!(handle.application_id, "99");
        assert_eq!(handle.token, "tok");
    }

    #[test]
    fn dm_command_uses_user_and_component_parses() {
        let body = json!({
            "id": "1", "application_id": "99", "type": 3, "token": "t",
            "user": {"id": "43", "username": "bob"},
            "data": {"custom_id": "valine:reverify:12", "component_type": 2}
        });
        let Incoming::Component {
            caller, custom_id, ..
        } = parse(body.to_string().as_bytes()).unwrap()
        else {
            panic!("not a component");
        };
        assert_eq!(caller.user_id, "43");
        assert!(caller.roles.is_empty());
        assert_eq!(custom_id, "valine:reverify:12");
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

    #[test]
    fn ping_and_garbage() {
        let ping = json!({"id": "1", "application_id": "99", "type": 1, "token": "t"});
        assert_eq!(parse(ping.to_string().as_bytes()).unwrap(), Incoming::Ping);
        assert!(matches!(parse(b"{nope"), Err(InteractionError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"type\": 2}"),
            Err(InteractionError::Invalid(_))
        ));
        let no_user = json!({"id": "1", "application_id": "99", "type": 2, "token": "t",
                             "data": {"id": "3", "name": "status", "type": 1}});
        assert!(parse(no_user.to_string().as_bytes()).is_err());
    }
}
