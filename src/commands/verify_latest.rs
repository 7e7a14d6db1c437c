//! `/verify-latest`: verify the newest deploy run on the deploy branch (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "verify-latest",
        description: "Verify the latest deployment: run conclusion, frontend and API checks",
        options: vec![
            OptionSpec::string(
                "run_url",
                "Verify this run instead (GitHub Actions run URL)",
            ),
            OptionSpec::boolean("diagnose", "Append /diagnose findings"),
        ],
        access: Access::Anyone,
        answer: Answer::Deferred { ephemeral: false },
        available: false,
    }
}
