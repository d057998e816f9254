//! The watchdog's jobs as asynchronous Lambda invocations: a verification is the collector
//! invoked with `{"org", "verify", "repair"}`, a compaction the compactor with `{"org"}` —
//! the same inputs a person or a schedule would give. One signed `Invoke` each
//! ([`SignedClient`]), without Lambda's SDK crate.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::aws_call::SignedClient;
use crate::ports::{Dispatcher, Job};

#[derive(Debug, Clone)]
pub struct LambdaDispatcher {
    client: SignedClient,
    /// The collector (this function) and the compactor, by name or ARN.
    collector: String,
    compactor: String,
    /// How far back a verification reaches (`2d`).
    verify_range: String,
}

/// The input a job's function gets.
pub fn input(job: &Job, verify_range: &str) -> Value {
    match job {
        Job::Verify { org } => json!({"org": org, "verify": verify_range, "repair": true}),
        Job::Compact { org } => json!({"org": org}),
    }
}

impl LambdaDispatcher {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        collector: impl Into<String>,
        compactor: impl Into<String>,
        verify_range: impl Into<String>,
    ) -> Result<Self, String> {
        Ok(LambdaDispatcher {
            client: SignedClient::new(sdk, "lambda")?,
            collector: collector.into(),
            compactor: compactor.into(),
            verify_range: verify_range.into(),
        })
    }
}

#[async_trait]
impl Dispatcher for LambdaDispatcher {
    async fn start(&self, job: &Job) -> Result<(), String> {
        let function = match job {
            Job::Verify { .. } => &self.collector,
            Job::Compact { .. } => &self.compactor,
        };
        let path = format!(
            "/2015-03-31/functions/{}/invocations",
            url::form_urlencoded::byte_serialize(function.as_bytes()).collect::<String>()
        );
        let body = input(job, &self.verify_range).to_string().into_bytes();
        let answer = self
            .client
            .post(
                &path,
                &[
                    ("content-type", "application/json"),
                    ("x-amz-invocation-type", "Event"),
                ],
                body,
            )
            .await
            .map_err(|e| format!("Lambda Invoke of {function}: {e}"))?;
        if answer.ok() {
            return Ok(());
        }
        let (kind, message) = answer.json_error();
        Err(format!(
            "Lambda Invoke of {function} failed ({} {kind}: {message}); check that the function exists and the \
             role may lambda:InvokeFunction it",
            answer.status
        ))
    }
}
