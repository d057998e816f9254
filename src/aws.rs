//! What the AWS adapters share: loading the SDK configuration once, and describing SDK
//! errors briefly. Knows no adapter.

use std::time::Duration;

use aws_config::SdkConfig;

/// The SDK configuration from the usual places: environment, profiles, the Lambda's role,
/// `AWS_ENDPOINT_URL` (and per-service `AWS_ENDPOINT_URL_S3`, …) for emulators.
pub async fn load() -> SdkConfig {
    aws_config::load_from_env().await
}

/// The longest an S3 call may take, retries included. Well under the checkpoint lease's
/// minute: an upload abandoned by a stalled run cannot land after the lease has passed to
/// another run.
pub const S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// An S3 client with bounded calls; path-style addressing when an endpoint is configured
/// (emulators answer on `host:port/bucket`, not `bucket.host`).
pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .operation_timeout(S3_OPERATION_TIMEOUT)
        .operation_attempt_timeout(Duration::from_secs(10))
        .build();
    let conf = aws_sdk_s3::config::Builder::from(cfg)
        .force_path_style(custom_endpoint)
        .timeout_config(timeouts)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The longest a DynamoDB or Secrets Manager call may take, retries included: well under the
/// lease's heartbeat period, so a stalled call cannot let the lease lapse unnoticed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn call_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(CALL_TIMEOUT)
        .operation_attempt_timeout(Duration::from_secs(5))
        .build()
}

/// A DynamoDB client with bounded calls.
pub fn dynamodb_client(cfg: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(cfg)
        .timeout_config(call_timeouts())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// A Secrets Manager client with bounded calls.
pub fn secrets_client(cfg: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(cfg)
        .timeout_config(call_timeouts())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// The innermost cause of an SDK error, which is where the useful words are.
pub fn error_text<E: std::error::Error + 'static>(e: &E) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let next = s.to_string();
        if !next.is_empty() {
            msg = next;
        }
        src = s.source();
    }
    msg
}

/// An EventBridge client with bounded calls (alert delivery must not hold up collection).
pub fn eventbridge_client(cfg: &SdkConfig) -> aws_sdk_eventbridge::Client {
    let conf = aws_sdk_eventbridge::config::Builder::from(cfg)
        .timeout_config(call_timeouts())
        .build();
    aws_sdk_eventbridge::Client::from_conf(conf)
}
