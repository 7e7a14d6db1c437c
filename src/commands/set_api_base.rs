//! `/set-api-base`: change the API base URL Valine checks and deploys with, with a
//! preview and Confirm / Cancel unless `confirm:true`; `url:reset` returns to
//! `VITE_API_BASE` from the environment. The command is [`UrlSetting`]'s, shared with
//! `/set-frontend` in [`super::set_url`].

use super::set_url::{SyncTo, UrlSetting};

pub static SETTING: UrlSetting = UrlSetting {
    command: "set-api-base",
    description: "Set the API base URL (admins)",
    url_help: "New API base URL, or reset",
    key: crate::settings::API_BASE_KEY,
    sync_to: SyncTo::Secret,
    confirm_action: "set-api-base-confirm",
    cancel_action: "set-api-base-cancel",
    sync_action: "set-api-base-sync",
};
