//! How `valine invoke` shows a reply in a terminal, and its exit code. Buttons cannot be
//! pressed there: a preview that waits for Confirm says how to apply it instead.

use crate::commands::CommandSpec;
use crate::discord::response::{ButtonStyle, Reply};
use crate::store::Outcome;

use super::exit;

/// The option that applies a previewed change without the Confirm button.
const CONFIRM_OPTION: &str = "confirm";

/// The reply to `line` as text (or the raw Discord message JSON). A reply with action
/// buttons from a command that has a `confirm` option is a preview: its buttons are left
/// out and a line gives the command again with `confirm:true`.
pub fn render(spec: CommandSpec, line: &str, reply: &Reply, json: bool) -> String {
    if json {
        return format!("{}\n", reply.to_message_json());
    }
    let waits_for_confirm = spec.options.iter().any(|o| o.name == CONFIRM_OPTION)
        && reply.buttons.iter().any(|b| b.style != ButtonStyle::Link);
    if !waits_for_confirm {
        return reply.render_text();
    }
    let mut shown = reply.clone();
    shown.buttons.retain(|b| b.style == ButtonStyle::Link);
    let mut text = shown.render_text();
    text.push_str(&format!(
        "\nButtons work only in Discord. To apply this here, add {CONFIRM_OPTION}:true:\n  \
         valine invoke '{} {CONFIRM_OPTION}:true'\n",
        line.trim()
    ));
    text
}

/// 0 when the command completed, 1 when it was denied or failed (a failed
/// verification and a diagnosis with problems included), 2 for invalid input.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ok | Outcome::Duplicate | Outcome::Ignored => exit::OK,
        Outcome::Invalid => exit::USAGE,
        Outcome::Error | Outcome::Denied | Outcome::RateLimited => exit::FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::find;
    use crate::discord::response::Button;

    fn preview() -> Reply {
        Reply::ephemeral("Set FRONTEND_BASE_URL to https://new.example.com?")
            .with_button(Button::action(
                "Confirm",
                ButtonStyle::Success,
                "set_frontend_confirm",
                "1",
            ))
            .with_button(Button::action(
                "Cancel",
                ButtonStyle::Secondary,
                "set_frontend_cancel",
                "1",
            ))
            .with_button(Button::link("Docs", "https://example.com/docs"))
    }

    #[test]
    fn a_preview_says_to_add_confirm_instead_of_showing_dead_buttons() {
        let spec = find("set-frontend").expect("a registered command").spec();
        let text = render(
            spec,
            "/set-frontend url:https://new.example.com",
            &preview(),
            false,
        );
        assert!(text.starts_with("Set FRONTEND_BASE_URL"), "{text}");
        assert!(
            !text.contains("[Confirm]") && !text.contains("[Cancel]"),
            "{text}"
        );
        assert!(text.contains("[Docs: https://example.com/docs]"), "{text}");
        assert!(
            text.ends_with(
                "add confirm:true:\n  valine invoke '/set-frontend url:https://new.example.com confirm:true'\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn other_replies_and_json_are_shown_as_they_are() {
        // /status has no confirm option: its buttons are shown as before.
        let spec = find("status").expect("a registered command").spec();
        assert_eq!(
            render(spec, "/status", &preview(), false),
            preview().render_text()
        );
        let spec = find("set-frontend").expect("a registered command").spec();
        let json = render(spec, "/set-frontend url:x", &preview(), true);
        assert!(json.contains("set_frontend_confirm"), "{json}");
    }

    #[test]
    fn outcomes_map_to_exit_codes() {
        assert_eq!(exit_code(Outcome::Ok), 0);
        assert_eq!(exit_code(Outcome::Invalid), 2);
        assert_eq!(exit_code(Outcome::Error), 1);
        assert_eq!(exit_code(Outcome::Denied), 1);
    }
}
