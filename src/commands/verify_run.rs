//! `/verify-run`: verify one deploy run by id or URL (SPEC §4.2). Registered with its final options; the body arrives with
//! the issue that implements it, until then the pipeline answers that it is not
//! available yet.

use super::{Answer, CommandSpec, OptionSpec};
use crate::auth::Access;

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: "verify-run",
        description: "Verify a specific deploy run",
        options: vec![OptionSpec::string("run_id", "Run id or GitHub Actions run URL").required()],
        access: Access::Anyone,
        answer: Answer::Deferred { ephemeral: false },
        available: false,
    }
}
