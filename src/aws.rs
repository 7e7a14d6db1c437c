//! The AWS SDK configuration every AWS adapter builds its client from (the DynamoDB
//! store, SSM values, the SQS job queue): region, credentials and endpoints from the
//! standard chain (`AWS_REGION`, profiles, roles, `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS`, `_SSM`), so DynamoDB Local and moto work
//! unchanged. The SDK's standard retry mode retries throttling, transient and 5xx errors
//! with backoff and jitter; the bounded timeouts keep an unreachable endpoint from hanging
//! a command or start-up for more than seconds.

use std::time::Duration;

/// The shared configuration, read once per client.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(20))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}
