//! `/set-frontend`: change the frontend URL Valine checks (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "set-frontend",
        description: "Set the frontend base URL (admins)",
        options: vec![
            OptionSpec::string("url", "New frontend URL, or reset").required(),
            OptionSpec::boolean("confirm", "Apply without a preview"),
        ],
        access: Access::Admins,
        answer: Answer::Immediate { ephemeral: true },
        available: false,
    }
}
