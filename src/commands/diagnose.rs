//! `/diagnose`: built-in diagnostics of targets, GitHub access and the last failure (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "diagnose",
        description: "Diagnose the deployment: DNS, TLS, latency, GitHub access, last failure",
        options: vec![
            OptionSpec::string(
                "frontend_url",
                "Check this frontend URL instead (deployers)",
            ),
            OptionSpec::string("api_base", "Check this API base instead (deployers)"),
        ],
        access: Access::Anyone,
        answer: Answer::Deferred { ephemeral: false },
        available: false,
    }
}
