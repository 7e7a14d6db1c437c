//! Authorization: deny by default, decided on the server for every command and every
//! button press, whatever Discord shows.

use crate::config::Config;
use crate::discord::interaction::Caller;

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    /// Deployers and admins.
    Deployers,
    Admins,
}

impl Access {
    /// The denial text's qualifier: `⛔ /<command>: admin only`.
    pub fn denial(self) -> &'static str {
        match self {
            Access::Anyone => "not allowed",
            Access::Deployers => "deployers only",
            Access::Admins => "admin only",
        }
    }
}

pub fn is_blocked(config: &Config, caller: &Caller) -> bool {
    config.blocked_user_ids.contains(&caller.user_id)
}

pub fn is_admin(config: &Config, caller: &Caller) -> bool {
    config.admin_user_ids.contains(&caller.user_id)
        || caller
            .roles
            .iter()
            .any(|r| config.admin_role_ids.contains(r))
}

pub fn is_deployer(config: &Config, caller: &Caller) -> bool {
    is_admin(config, caller)
        || config.deployer_user_ids.contains(&caller.user_id)
        || caller
            .roles
            .iter()
            .any(|r| config.deployer_role_ids.contains(r))
}

pub fn allows(config: &Config, caller: &Caller, access: Access) -> bool {
    match access {
        Access::Anyone => true,
        Access::Deployers => is_deployer(config, caller),
        Access::Admins => is_admin(config, caller),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(vars).unwrap()
    }

    fn caller(user: &str, roles: &[&str]) -> Caller {
        Caller {
            user_id: user.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn nobody_is_privileged_by_default() {
        let config = config(&[]);
        let anyone = caller("1", &["2"]);
        assert!(allows(&config, &anyone, Access::Anyone));
        assert!(!allows(&config, &anyone, Access::Deployers));
        assert!(!allows(&config, &anyone, Access::Admins));
    }

    #[test]
    fn users_and_roles_grant_access_and_admins_deploy() {
        let config = config(&[
            ("ADMIN_USER_IDS", "10"),
            ("ADMIN_ROLE_IDS", "100"),
            ("DEPLOYER_USER_IDS", "20"),
            ("DEPLOYER_ROLE_IDS", "200"),
            ("BLOCKED_USER_IDS", "30"),
        ]);
        assert!(allows(&config, &caller("10", &[]), Access::Admins));
        assert!(allows(&config, &caller("11", &["100"]), Access::Admins));
        assert!(allows(&config, &caller("10", &[]), Access::Deployers));
        assert!(allows(&config, &caller("20", &[]), Access::Deployers));
        assert!(allows(&config, &caller("21", &["200"]), Access::Deployers));
        assert!(!allows(&config, &caller("20", &[]), Access::Admins));
        assert!(!allows(&config, &caller("21", &["200"]), Access::Admins));
        assert!(is_blocked(&config, &caller("30", &[])));
        assert!(!is_blocked(&config, &caller("10", &[])));
    }
}
