//! The frontend and API base URLs in use: a stored setting (from `/set-frontend`,
//! `/set-api-base`) overrides the environment value.

use crate::app::App;
use crate::config::Config;
use crate::store::StoreError;

pub const FRONTEND_KEY: &str = "FRONTEND_BASE_URL";
pub const API_BASE_KEY: &str = "VITE_API_BASE";

/// Where a value in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Setting,
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub key: &'static str,
    pub value: Option<String>,
    pub source: Source,
}

impl InUse {
    /// `https://x (setting)`, `https://y (environment)` or `not set`.
    pub fn describe(&self) -> String {
        match (&self.value, self.source) {
            (None, _) => "not set".to_owned(),
            (Some(v), Source::Setting) => format!("{v} (setting)"),
            (Some(v), Source::Environment) => format!("{v} (environment)"),
        }
    }
}

/// Normalised form of a configured URL: what a person typed, minus the trailing `/`.
fn env_value(url: Option<&url::Url>) -> Option<String> {
    url.map(|u| u.as_str().trim_end_matches('/').to_owned())
}

pub async fn in_use(app: &App, key: &'static str) -> Result<InUse, StoreError> {
    if let Some(setting) = app.store.get_setting(key).await? {
        return Ok(InUse {
            key,
            value: Some(setting.value),
            source: Source::Setting,
        });
    }
    Ok(InUse {
        key,
        value: environment_value(&app.config, key),
        source: Source::Environment,
    })
}

/// The value `key` has from the environment (or the config file), normalised.
pub fn environment_value(config: &Config, key: &str) -> Option<String> {
    match key {
        FRONTEND_KEY => env_value(config.frontend_base_url.as_ref()),
        _ => env_value(config.vite_api_base.as_ref()),
    }
}
