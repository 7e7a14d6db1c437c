//! The messages Valine sends: one [`Reply`] type that every command returns, rendered
//! as a Discord message body (within Discord's limits, never pinging anyone) or as
//! readable text for `valine invoke`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Discord's documented limits (message content and embed structure).
pub mod limits {
    pub const CONTENT: usize = 2000;
    pub const EMBED_TITLE: usize = 256;
    pub const EMBED_DESCRIPTION: usize = 4096;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    pub const EMBED_TOTAL: usize = 6000;
    pub const FIELDS: usize = 25;
    pub const ROWS: usize = 5;
    pub const BUTTONS_PER_ROW: usize = 5;
}

/// Flag 64: only the caller sees the message.
pub const EPHEMERAL: u64 = 1 << 6;

/// Interaction callback types Valine uses.
pub mod callback {
    pub const PONG: u8 = 1;
    pub const MESSAGE: u8 = 4;
    pub const DEFERRED_MESSAGE: u8 = 5;
    pub const UPDATE_MESSAGE: u8 = 7;
    pub const AUTOCOMPLETE_RESULT: u8 = 8;
}

pub const GREEN: u32 = 0x2ECC71;
pub const RED: u32 = 0xE74C3C;
pub const YELLOW: u32 = 0xF1C40F;
pub const GREY: u32 = 0x95A5A6;

/// Cuts `text` to at most `max` characters, ending with `…` when it had to cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Embed {
    pub title: String,
    pub description: Option<String>,
    pub color: Option<u32>,
    pub fields: Vec<Field>,
    pub footer: Option<String>,
    pub url: Option<String>,
}

impl Embed {
    pub fn new(title: impl Into<String>) -> Self {
        Embed {
            title: title.into(),
            ..Default::default()
        }
    }

    pub fn color(mut self, color: u32) -> Self {
        self.color = Some(color);
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push(Field {
            name: name.into(),
            value: value.into(),
            inline: false,
        });
        self
    }

    pub fn footer(mut self, text: impl Into<String>) -> Self {
        self.footer = Some(text.into());
        self
    }

    /// The embed as Discord JSON, every part cut to its limit and the whole kept within
    /// `budget` characters (what is left of the message's 6,000-character embed total)
    /// by shortening the description and dropping fields last to first. Returns the
    /// characters used too.
    fn to_json(&self, budget: usize) -> (Value, usize) {
        let title = truncate(&self.title, limits::EMBED_TITLE);
        let footer = self.footer.as_deref().map(|f| truncate(f, limits::FOOTER));
        let mut fields: Vec<(String, String, bool)> = self
            .fields
            .iter()
            .take(limits::FIELDS)
            .map(|f| {
                (
                    truncate(&f.name, limits::FIELD_NAME),
                    truncate(
                        if f.value.is_empty() { "—" } else { &f.value },
                        limits::FIELD_VALUE,
                    ),
                    f.inline,
                )
            })
            .collect();
        let fixed = title.chars().count() + footer.as_deref().map_or(0, |f| f.chars().count());
        let fields_len = |fields: &[(String, String, bool)]| -> usize {
            fields
                .iter()
                .map(|(n, v, _)| n.chars().count() + v.chars().count())
                .sum()
        };
        while fixed + fields_len(&fields) > budget && !fields.is_empty() {
            fields.pop();
        }
        let room = budget.saturating_sub(fixed + fields_len(&fields));
        let description = self
            .description
            .as_deref()
            .map(|d| truncate(d, room.min(limits::EMBED_DESCRIPTION)))
            .filter(|d| !d.is_empty());

        let used =
            fixed + fields_len(&fields) + description.as_deref().map_or(0, |d| d.chars().count());
        let mut embed = json!({ "type": "rich", "title": title });
        if let Some(d) = description {
            embed["description"] = d.into();
        }
        if let Some(c) = self.color {
            embed["color"] = c.into();
        }
        if let Some(url) = &self.url {
            embed["url"] = url.as_str().into();
        }
        if !fields.is_empty() {
            embed["fields"] = fields
                .into_iter()
                .map(
                    |(name, value, inline)| json!({"name": name, "value": value, "inline": inline}),
                )
                .collect();
        }
        if let Some(f) = footer {
            embed["footer"] = json!({ "text": f });
        }
        (embed, used)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ButtonStyle {
    Primary = 1,
    Secondary = 2,
    Success = 3,
    Danger = 4,
    Link = 5,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub style: ButtonStyle,
    /// `valine:<action>:<id>` for action buttons; the URL for link buttons.
    pub target: String,
}

impl Button {
    pub fn action(label: impl Into<String>, style: ButtonStyle, action: &str, id: &str) -> Self {
        Button {
            label: label.into(),
            style,
            target: format!("valine:{action}:{id}"),
        }
    }

    pub fn link(label: impl Into<String>, url: impl Into<String>) -> Self {
        Button {
            label: label.into(),
            style: ButtonStyle::Link,
            target: url.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut button = json!({
            "type": 2,
            "style": self.style as u8,
            "label": truncate(&self.label, 80),
        });
        if self.style == ButtonStyle::Link {
            button["url"] = self.target.as_str().into();
        } else {
            button["custom_id"] = truncate(&self.target, 100).into();
        }
        button
    }
}

/// What a command answers. `failed` marks a reply that reports a failure, which
/// `valine invoke` turns into exit code 1.
/// Serializable so a finished report can be stored and posted again (a shared
/// verification).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reply {
    pub content: Option<String>,
    pub embeds: Vec<Embed>,
    pub buttons: Vec<Button>,
    pub ephemeral: bool,
    pub failed: bool,
}

impl Reply {
    pub fn text(content: impl Into<String>) -> Self {
        Reply {
            content: Some(content.into()),
            ..Default::default()
        }
    }

    pub fn ephemeral(content: impl Into<String>) -> Self {
        Reply {
            ephemeral: true,
            ..Reply::text(content)
        }
    }

    pub fn embed(embed: Embed) -> Self {
        Reply {
            embeds: vec![embed],
            ..Default::default()
        }
    }

    pub fn failed(mut self) -> Self {
        self.failed = true;
        self
    }

    pub fn with_button(mut self, button: Button) -> Self {
        self.buttons.push(button);
        self
    }

    /// The message body for a type 4/7 response `data`, a webhook edit or a channel post.
    /// `allowed_mentions` is always empty: text from commits or logs must never ping
    /// anyone.
    pub fn to_message_json(&self) -> Value {
        let mut body = json!({
            "content": truncate(self.content.as_deref().unwrap_or(""), limits::CONTENT),
            "embeds": self.embeds_json(),
            "components": self
                .buttons
                .chunks(limits::BUTTONS_PER_ROW)
                .take(limits::ROWS)
                .map(|row| json!({"type": 1, "components": row.iter().map(Button::to_json).collect::<Vec<_>>()}))
                .collect::<Vec<_>>(),
            "allowed_mentions": { "parse": [] },
        });
        if self.ephemeral {
            body["flags"] = EPHEMERAL.into();
        }
        body
    }

    /// The embeds within Discord's limits for one message: at most 10, and 6,000
    /// characters across all of them (later embeds get what the earlier ones left; one
    /// whose title and footer no longer fit is dropped).
    fn embeds_json(&self) -> Vec<Value> {
        let mut budget = limits::EMBED_TOTAL;
        let mut out = Vec::new();
        for embed in self.embeds.iter().take(10) {
            let (json, used) = embed.to_json(budget);
            if used > budget {
                break;
            }
            budget -= used;
            out.push(json);
        }
        out
    }

    /// The reply a message body describes: the inverse of
    /// [`to_message_json`](Self::to_message_json), for showing a message Valine sent
    /// (an edit `valine demo` received) as [`render_text`](Self::render_text) shows a
    /// reply. Parts it does not know are skipped.
    pub fn from_message_json(message: &Value) -> Reply {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let list = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned();
        let embeds = list(message, "embeds")
            .unwrap_or_default()
            .iter()
            .map(|e| Embed {
                title: text(e, "title").unwrap_or_default(),
                description: text(e, "description"),
                color: e
                    .get("color")
                    .and_then(Value::as_u64)
                    .and_then(|c| u32::try_from(c).ok()),
                fields: list(e, "fields")
                    .unwrap_or_default()
                    .iter()
                    .map(|f| Field {
                        name: text(f, "name").unwrap_or_default(),
                        value: text(f, "value").unwrap_or_default(),
                        inline: f.get("inline").and_then(Value::as_bool).unwrap_or(false),
                    })
                    .collect(),
                footer: e.get("footer").and_then(|f| text(f, "text")),
                url: text(e, "url"),
            })
            .collect();
        let buttons = list(message, "components")
            .unwrap_or_default()
            .iter()
            .flat_map(|row| list(row, "components").unwrap_or_default())
            .filter_map(|b| {
                let label = text(&b, "label")?;
                Some(match (text(&b, "url"), text(&b, "custom_id")) {
                    (Some(url), _) => Button::link(label, url),
                    (None, Some(custom_id)) => Button {
                        label,
                        style: match b.get("style").and_then(Value::as_u64) {
                            Some(1) => ButtonStyle::Primary,
                            Some(3) => ButtonStyle::Success,
                            Some(4) => ButtonStyle::Danger,
                            _ => ButtonStyle::Secondary,
                        },
                        target: custom_id,
                    },
                    (None, None) => return None,
                })
            })
            .collect();
        Reply {
            content: text(message, "content").filter(|c| !c.is_empty()),
            embeds,
            buttons,
            ephemeral: message
                .get("flags")
                .and_then(Value::as_u64)
                .is_some_and(|f| f & EPHEMERAL != 0),
            failed: false,
        }
    }

    /// The reply as an interaction response of the given callback type.
    pub fn to_response_json(&self, kind: u8) -> Value {
        json!({ "type": kind, "data": self.to_message_json() })
    }

    /// The reply as a person reads it in a terminal: content, then each embed.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if let Some(content) = self.content.as_deref().filter(|c| !c.is_empty()) {
            out.push_str(content);
            out.push('\n');
        }
        for embed in &self.embeds {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("== {} ==\n", embed.title));
            if let Some(d) = &embed.description {
                out.push_str(d);
                out.push('\n');
            }
            for field in &embed.fields {
                out.push_str(&format!("\n{}:\n", field.name));
                for line in field.value.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
            if let Some(f) = &embed.footer {
                out.push_str(&format!("\n-- {f}\n"));
            }
        }
        if !self.buttons.is_empty() {
            let labels: Vec<String> = self
                .buttons
                .iter()
                .map(|b| match b.style {
                    ButtonStyle::Link => format!("[{}: {}]", b.label, b.target),
                    _ => format!("[{}]", b.label),
                })
                .collect();
            out.push_str(&format!("\n{}\n", labels.join(" ")));
        }
        out
    }
}

/// A deferred answer (type 5), ephemeral when the final result will be.
pub fn deferred(ephemeral: bool) -> Value {
    if ephemeral {
        json!({ "type": callback::DEFERRED_MESSAGE, "data": { "flags": EPHEMERAL } })
    } else {
        json!({ "type": callback::DEFERRED_MESSAGE })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 3).chars().count(), 3);
    }

    #[test]
    fn message_never_pings_and_respects_limits() {
        let long = "x".repeat(5000);
        let mut embed = Embed::new("t").description(long.clone());
        for i in 0..40 {
            embed = embed.field(format!("f{i}"), long.clone());
        }
        let reply = Reply {
            content: Some(format!("@everyone {long}")),
            embeds: vec![embed],
            ..Default::default()
        }
        .with_button(Button::action(
            "Re-verify",
            ButtonStyle::Primary,
            "reverify",
            "1",
        ))
        .with_button(Button::link("Run", "https://github.com/o/r/actions/runs/1"));
        let body = reply.to_message_json();
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        assert_eq!(body["content"].as_str().unwrap().chars().count(), 2000);
        assert!(body["content"].as_str().unwrap().ends_with('…'));
        let embed = &body["embeds"][0];
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25);
        let total: usize = embed["title"].as_str().unwrap().len()
            + embed["description"]
                .as_str()
                .map_or(0, |d| d.chars().count())
            + fields
                .iter()
                .map(|f| {
                    f["name"].as_str().unwrap().chars().count()
                        + f["value"].as_str().unwrap().chars().count()
                })
                .sum::<usize>();
        assert!(total <= 6000, "embed total {total}");
        assert!(
            fields
                .iter()
                .all(|f| f["value"].as_str().unwrap().chars().count() <= 1024)
        );
        let buttons = &body["components"][0]["components"];
        assert_eq!(buttons[0]["custom_id"], "valine:reverify:1");
        assert_eq!(buttons[1]["url"], "https://github.com/o/r/actions/runs/1");
        assert!(body.get("flags").is_none());
        assert_eq!(Reply::ephemeral("x").to_message_json()["flags"], 64);
    }

    /// Characters Discord counts toward the 6,000 total of one embed.
    fn counted(embed: &Value) -> usize {
        let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        len(&embed["title"])
            + len(&embed["description"])
            + len(&embed["footer"]["text"])
            + embed["fields"].as_array().map_or(0, |fields| {
                fields
                    .iter()
                    .map(|f| len(&f["name"]) + len(&f["value"]))
                    .sum()
            })
    }

    #[test]
    fn the_embed_total_holds_across_all_embeds_of_a_message() {
        let big = || {
            let mut embed = Embed::new("report")
                .description("d".repeat(3000))
                .footer("Run 1 • trace abcd1234");
            for i in 0..5 {
                embed = embed.field(format!("f{i}"), "v".repeat(1000));
            }
            embed
        };
        let reply = Reply {
            embeds: vec![big(), big(), big()],
            ..Default::default()
        };
        let body = reply.to_message_json();
        let embeds = body["embeds"].as_array().unwrap();
        assert!(!embeds.is_empty());
        let total: usize = embeds.iter().map(counted).sum();
        assert!(total <= 6000, "total {total}");
        // The first embed keeps its content; later ones get what is left.
        assert_eq!(embeds[0]["title"], "report");
    }

    #[test]
    fn text_rendering_shows_embeds_readably() {
        let reply = Reply::embed(
            Embed::new("Deploy runs")
                .description("🟢 success")
                .field("Frontend", "200 in 12 ms")
                .footer("stage dev"),
        );
        let text = reply.render_text();
        assert!(text.contains("== Deploy runs =="));
        assert!(text.contains("Frontend:\n  200 in 12 ms"));
        assert!(text.contains("-- stage dev"));
    }

    #[test]
    fn a_message_body_reads_back_as_the_reply_it_was_made_from() {
        let reply = Reply {
            content: Some("🟡 run 7 is in progress".into()),
            ..Reply::embed(
                Embed::new("Deploy runs")
                    .color(GREEN)
                    .description("🟢 success")
                    .field("Frontend", "200 in 12 ms")
                    .footer("stage dev"),
            )
        }
        .with_button(Button::action(
            "Cancel run",
            ButtonStyle::Danger,
            "cancel-run",
            "7",
        ))
        .with_button(Button::link("View run", "http://127.0.0.1:1/runs/7"));
        let back = Reply::from_message_json(&reply.to_message_json());
        assert_eq!(back, reply);
        assert_eq!(back.render_text(), reply.render_text());

        let ephemeral = Reply::ephemeral("only you");
        assert_eq!(
            Reply::from_message_json(&ephemeral.to_message_json()),
            ephemeral
        );
        assert_eq!(
            Reply::from_message_json(&json!({"embeds": "junk", "components": [{}]})),
            Reply::default()
        );
    }
}
