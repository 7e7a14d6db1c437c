//! `/set-frontend`: change the frontend URL Valine checks (SPEC §4.2), with a preview
//! and Confirm / Cancel unless `confirm:true`; `url:reset` returns to
//! `FRONTEND_BASE_URL` from the environment. The body is shared with `/set-api-base`
//! in [`super::set_url`].

use super::set_url::{self, SyncTo, UrlSetting};
use super::{Answer, ButtonSpec, Call, CommandError, CommandSpec, OptionSpec};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::Reply;
use crate::trace::Tracer;

pub const SETTING: UrlSetting = UrlSetting {
    command: "set-frontend",
    key: crate::settings::FRONTEND_KEY,
    sync_to: SyncTo::Variable,
    confirm_action: "set-frontend-confirm",
    cancel_action: "set-frontend-cancel",
    sync_action: "set-frontend-sync",
};

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: SETTING.command,
        description: "Set the frontend base URL (admins)",
        options: vec![
            OptionSpec::string("url", "New frontend URL, or reset").required(),
            OptionSpec::boolean("confirm", "Apply without a preview"),
        ],
        access: Access::Admins,
        answer: Answer::Immediate { ephemeral: true },
    }
}

pub fn buttons() -> Vec<ButtonSpec> {
    set_url::buttons(&SETTING)
}

pub async fn run(app: &App, call: &Call, tracer: &mut Tracer) -> Result<Reply, CommandError> {
    set_url::run(app, &SETTING, call, tracer).await
}

pub async fn press(
    app: &App,
    action: &str,
    id: &str,
    call: &Call,
    tracer: &mut Tracer,
) -> Result<Reply, CommandError> {
    set_url::press(app, &SETTING, action, id, call, tracer).await
}
