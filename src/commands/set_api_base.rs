//! `/set-api-base`: change the API base URL Valine checks and deploys with (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "set-api-base",
        description: "Set the API base URL (admins)",
        options: vec![
            OptionSpec::string("url", "New API base URL, or reset").required(),
            OptionSpec::boolean("confirm", "Apply without a preview"),
        ],
        access: Access::Admins,
        answer: Answer::Immediate { ephemeral: true },
        available: false,
    }
}
