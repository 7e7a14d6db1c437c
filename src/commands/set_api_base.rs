//! `/set-api-base`: change the API base URL Valine checks and deploys with (SPEC §4.2),
//! with a preview and Confirm / Cancel unless `confirm:true`; `url:reset` returns to
//! `VITE_API_BASE` from the environment. The body is shared with `/set-frontend` in
//! [`super::set_url`].

use super::set_url::{self, SyncTo, UrlSetting};
use super::{Answer, ButtonSpec, Call, CommandError, CommandSpec, OptionSpec};
use crate::app::App;
use crate::auth::Access;
use crate::discord::response::Reply;
use crate::trace::Tracer;

pub const SETTING: UrlSetting = UrlSetting {
    command: "set-api-base",
    key: crate::settings::API_BASE_KEY,
    sync_to: SyncTo::Secret,
    confirm_action: "set-api-base-confirm",
    cancel_action: "set-api-base-cancel",
    sync_action: "set-api-base-sync",
};

pub fn spec() -> CommandSpec {
    CommandSpec {
        name: SETTING.command,
        description: "Set the API base URL (admins)",
        options: vec![
            OptionSpec::string("url", "New API base URL, or reset").required(),
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
