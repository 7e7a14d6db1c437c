//! `/status-digest`: deploy statistics and live health over a period (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "status-digest",
        description: "Deploy digest: success rate, durations, failures, health",
        options: vec![
            OptionSpec::string("period", "Period to cover (default 24h)").choices(&["24h", "7d"]),
        ],
        access: Access::Anyone,
        answer: Answer::Deferred { ephemeral: false },
        available: false,
    }
}
