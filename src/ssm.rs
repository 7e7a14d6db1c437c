//! `ssm:` configuration values: any variable whose value is `ssm:<parameter name>` is read
//! from AWS SSM Parameter Store once, before the configuration is parsed, and replaced by
//! the parameter's value.
//!
//! Reads are batched (`GetParameters`, at most ten names a call) and decrypted, so a
//! `SecureString` arrives as plain text. The client comes from the standard AWS chain
//! (`AWS_REGION`, profiles, roles, `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL`) and is
//! built only when some value asks for SSM: a configuration without `ssm:` makes no AWS
//! call. A missing parameter, or a read that is denied or fails, is an [`SsmError`] naming
//! both the variable and the parameter; the edges report it as a bad configuration (exit
//! code 2 on the command line, an init error in Lambda).
//!
//! The values read here are secrets: the caller keeps them as such and nothing here logs
//! them.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{DisplayErrorContext, SdkError};
use aws_sdk_ssm::operation::get_parameters::GetParametersError;

/// The value prefix that asks for a parameter.
pub const PREFIX: &str = "ssm:";

/// `GetParameters` accepts at most this many names a call.
pub const BATCH: usize = 10;

/// An `ssm:` value that could not be resolved; start-up stops with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    /// `ssm:` with nothing after it.
    #[error("invalid configuration: {var}: `ssm:` must be followed by a parameter name")]
    NoName { var: String },
    /// SSM answered that the parameter does not exist (or is not visible to this role).
    #[error(
        "invalid configuration: {var}: SSM parameter {parameter} does not exist \
         (check its name and region)"
    )]
    Missing { var: String, parameter: String },
    /// The read was refused or failed (credentials, `ssm:GetParameters` or `kms:Decrypt`
    /// permission, network, throttling past the SDK's retries).
    #[error("invalid configuration: {var}: cannot read SSM parameter {parameter}: {reason}")]
    Read {
        var: String,
        parameter: String,
        /// The SDK's error with its context, for the one-line message.
        reason: String,
        #[source]
        source: Box<SdkError<GetParametersError>>,
    },
}

impl SsmError {
    /// The configuration variable whose value could not be resolved.
    pub fn var(&self) -> &str {
        match self {
            SsmError::NoName { var }
            | SsmError::Missing { var, .. }
            | SsmError::Read { var, .. } => var,
        }
    }

    /// The parameter that could not be read, when there is one.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            SsmError::NoName { .. } => None,
            SsmError::Missing { parameter, .. } | SsmError::Read { parameter, .. } => {
                Some(parameter)
            }
        }
    }
}

/// The parameter name an `ssm:` value asks for, if it is one (surrounding spaces ignored,
/// as the configuration ignores them).
pub fn parameter_of(value: &str) -> Option<&str> {
    value.trim().strip_prefix(PREFIX).map(str::trim)
}

/// Whether any value asks for SSM.
pub fn any_ssm(vars: &HashMap<String, String>) -> bool {
    vars.values().any(|v| parameter_of(v).is_some())
}

/// Resolves every `ssm:` value of `vars` and returns them with the parameters' values in
/// their place; the other pairs are returned unchanged. Builds an SSM client from the
/// standard AWS chain only when some value asks for SSM. Called once per process (or
/// Lambda container) at start-up.
pub async fn resolve_ssm(
    vars: HashMap<String, String>,
) -> Result<HashMap<String, String>, SsmError> {
    if !any_ssm(&vars) {
        return Ok(vars);
    }
    let client = client_from_env().await;
    resolve_with(&client, vars).await.map(|(vars, _calls)| vars)
}

/// Like [`resolve_ssm`] with a client of the caller's (tests, other edges).
pub async fn resolve_ssm_with(
    client: &Client,
    vars: HashMap<String, String>,
) -> Result<HashMap<String, String>, SsmError> {
    resolve_with(client, vars).await.map(|(vars, _calls)| vars)
}

/// An SSM client from the standard AWS chain, with the same bounded timeouts as the
/// DynamoDB store's so an unreachable endpoint stops start-up in seconds.
pub async fn client_from_env() -> Client {
    Client::new(&crate::aws::sdk_config().await)
}

/// Resolves `vars`, returning them and how many `GetParameters` calls it made.
async fn resolve_with(
    client: &Client,
    mut vars: HashMap<String, String>,
) -> Result<(HashMap<String, String>, usize), SsmError> {
    // Parameter → the variables that ask for it, in a stable order so that errors name
    // the same variable every run.
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut asking: Vec<(&String, &String)> = vars.iter().collect();
    asking.sort();
    for (var, value) in asking {
        let Some(parameter) = parameter_of(value) else {
            continue;
        };
        if parameter.is_empty() {
            return Err(SsmError::NoName { var: var.clone() });
        }
        wanted
            .entry(parameter.to_owned())
            .or_default()
            .push(var.clone());
    }
    let first_var = |parameter: &str| {
        wanted
            .get(parameter)
            .and_then(|vars| vars.first())
            .cloned()
            .unwrap_or_default()
    };

    let names: Vec<String> = wanted.keys().cloned().collect();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut calls = 0;
    for batch in names.chunks(BATCH) {
        calls += 1;
        let answer = client
            .get_parameters()
            .set_names(Some(batch.to_vec()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|source| SsmError::Read {
                var: first_var(&batch[0]),
                parameter: batch[0].clone(),
                reason: DisplayErrorContext(&source).to_string(),
                source: Box::new(source),
            })?;
        if let Some(parameter) = answer
            .invalid_parameters()
            .iter()
            .filter(|p| wanted.contains_key(p.as_str()))
            .min()
        {
            return Err(SsmError::Missing {
                var: first_var(parameter),
                parameter: parameter.clone(),
            });
        }
        for parameter in answer.parameters() {
            let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                continue;
            };
            // A name asked with a version or label (`/p:3`) comes back as `/p` and the
            // selector.
            let asked = format!("{name}{}", parameter.selector().unwrap_or(""));
            values.insert(asked, value.to_owned());
            values
                .entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        // A name neither answered nor reported invalid is as missing as an invalid one.
        if let Some(parameter) = batch.iter().find(|p| !values.contains_key(p.as_str())) {
            return Err(SsmError::Missing {
                var: first_var(parameter),
                parameter: parameter.clone(),
            });
        }
    }

    for (parameter, asking) in &wanted {
        for var in asking {
            vars.insert(var.clone(), values[parameter].clone());
        }
    }
    Ok((vars, calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamodb_local::DynamoDbLocal;
    use aws_sdk_ssm::types::ParameterType;

    fn client() -> Client {
        let endpoint = DynamoDbLocal::moto().endpoint();
        Client::new(&crate::store::dynamodb_local::sdk_config_for(endpoint))
    }

    /// A parameter prefix no other test uses.
    fn unique_prefix() -> String {
        format!("/valine/test-{}", uuid::Uuid::new_v4().simple())
    }

    async fn put(client: &Client, name: &str, value: &str, kind: ParameterType) {
        client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn values_without_ssm_are_returned_unchanged_without_an_aws_call() {
        // No client is built: this would fail without AWS configuration if it were.
        let input = vars(&[("STAGE", "prod"), ("GITHUB_TOKEN", "ghp_x")]);
        assert_eq!(resolve_ssm(input.clone()).await.unwrap(), input);
    }

    #[tokio::test]
    async fn several_values_resolve_in_one_batch_secure_strings_decrypted() {
        let client = client();
        let prefix = unique_prefix();
        put(
            &client,
            &format!("{prefix}/bot"),
            "bot-secret-1",
            ParameterType::SecureString,
        )
        .await;
        put(
            &client,
            &format!("{prefix}/gh"),
            "ghp_secret2",
            ParameterType::SecureString,
        )
        .await;
        put(
            &client,
            &format!("{prefix}/repo"),
            "o/r",
            ParameterType::String,
        )
        .await;
        let input = vars(&[
            ("DISCORD_BOT_TOKEN", &format!("ssm:{prefix}/bot")),
            ("GITHUB_TOKEN", &format!(" ssm:{prefix}/gh ")),
            ("GITHUB_REPO", &format!("ssm:{prefix}/repo")),
            // Two variables may share a parameter.
            ("GITHUB_WEBHOOK_SECRET", &format!("ssm:{prefix}/gh")),
            ("STAGE", "prod"),
        ]);
        let (out, calls) = resolve_with(&client, input).await.unwrap();
        assert_eq!(calls, 1);
        assert_eq!(out["DISCORD_BOT_TOKEN"], "bot-secret-1");
        assert_eq!(out["GITHUB_TOKEN"], "ghp_secret2");
        assert_eq!(out["GITHUB_WEBHOOK_SECRET"], "ghp_secret2");
        assert_eq!(out["GITHUB_REPO"], "o/r");
        assert_eq!(out["STAGE"], "prod");
    }

    #[tokio::test]
    async fn more_than_ten_parameters_take_several_calls() {
        let client = client();
        let prefix = unique_prefix();
        let mut input = HashMap::new();
        for i in 0..23 {
            let name = format!("{prefix}/p{i:02}");
            put(
                &client,
                &name,
                &format!("value-{i}"),
                ParameterType::SecureString,
            )
            .await;
            input.insert(format!("VAR_{i:02}"), format!("ssm:{name}"));
        }
        let (out, calls) = resolve_with(&client, input).await.unwrap();
        assert_eq!(calls, 3);
        for i in 0..23 {
            assert_eq!(out[&format!("VAR_{i:02}")], format!("value-{i}"));
        }
    }

    #[tokio::test]
    async fn a_missing_parameter_names_the_variable_and_the_parameter() {
        let client = client();
        let prefix = unique_prefix();
        put(
            &client,
            &format!("{prefix}/there"),
            "x",
            ParameterType::SecureString,
        )
        .await;
        let missing = format!("{prefix}/absent");
        let input = vars(&[
            ("GITHUB_TOKEN", &format!("ssm:{prefix}/there")),
            ("DISCORD_BOT_TOKEN", &format!("ssm:{missing}")),
        ]);
        let err = resolve_ssm_with(&client, input).await.unwrap_err();
        assert!(matches!(err, SsmError::Missing { .. }), "{err:?}");
        assert_eq!(err.var(), "DISCORD_BOT_TOKEN");
        assert_eq!(err.parameter(), Some(missing.as_str()));
        let message = err.to_string();
        assert!(
            message.contains("DISCORD_BOT_TOKEN") && message.contains(&missing),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_failed_read_names_the_variable_and_the_parameter() {
        // Nothing listens on a port just freed: the read fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = client()
            .config()
            .to_builder()
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build();
        let unreachable = Client::from_conf(config);
        let input = vars(&[("GITHUB_TOKEN", "ssm:/valine/test/unreachable")]);
        let err = resolve_ssm_with(&unreachable, input).await.unwrap_err();
        assert!(matches!(err, SsmError::Read { .. }), "{err:?}");
        assert_eq!(err.var(), "GITHUB_TOKEN");
        assert_eq!(err.parameter(), Some("/valine/test/unreachable"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn an_empty_name_is_an_error_naming_the_variable() {
        let err = resolve_ssm_with(&client(), vars(&[("GITHUB_TOKEN", "ssm:")]))
            .await
            .unwrap_err();
        assert_eq!(err.var(), "GITHUB_TOKEN");
    }
}
