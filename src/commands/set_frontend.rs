//! `/set-frontend`: change the frontend URL Valine checks, with a preview and
//! Confirm / Cancel unless `confirm:true`; `url:reset` returns to `FRONTEND_BASE_URL`
//! from the environment. The command is [`UrlSetting`]'s, shared with `/set-api-base`
//! in [`super::set_url`].

use super::set_url::{SyncTo, UrlSetting};

pub static SETTING: UrlSetting = UrlSetting {
    command: "set-frontend",
    description: "Set the frontend base URL (admins)",
    url_help: "New frontend URL, or reset",
    key: crate::settings::FRONTEND_KEY,
    sync_to: SyncTo::Variable,
    confirm_action: "set-frontend-confirm",
    cancel_action: "set-frontend-cancel",
    sync_action: "set-frontend-sync",
};
