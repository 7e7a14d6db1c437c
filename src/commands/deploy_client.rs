//! `/deploy-client`: dispatch the deploy workflow (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "deploy-client",
        description: "Deploy the client: dispatch the deploy workflow",
        options: vec![
            OptionSpec::string("ref", "Git ref to deploy (default: the deploy branch)"),
            OptionSpec::string("api_base", "VITE_API_BASE for this build"),
            OptionSpec::boolean("wait", "Follow the run in this message"),
        ],
        access: Access::Deployers,
        answer: Answer::Deferred { ephemeral: false },
        available: false,
    }
}
