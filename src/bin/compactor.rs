//! The compactor's Lambda entry point: builds the AWS clients once per cold start, then
//! serves invocations (`{"org": "acme"}` from its daily schedule) with
//! [`Compactor::handle`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dockerhub_audit::checkpoint::dynamodb::DynamoCheckpoints;
use dockerhub_audit::clock::SystemClock;
use dockerhub_audit::lambda::compactor::{Compactor, CompactorSettings};
use dockerhub_audit::logging::{self, LogFormat};
use dockerhub_audit::sink::s3::S3Sink;
use dockerhub_audit::surface::glue::{Glue, GlueSurface, ViewName};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init(LogFormat::Json, "info");
    let settings = CompactorSettings::from_env(|k| std::env::var(k).ok())?;
    let sdk = dockerhub_audit::aws::load().await;
    let s3 = dockerhub_audit::aws::s3_client(&sdk);
    let (database, table) = settings.view.clone();
    let surface = GlueSurface::new(
        Glue::new(&sdk)?,
        ViewName { database, table },
        s3.clone(),
        settings.bucket.clone(),
        &settings.prefix,
        settings.kms_key_id.clone(),
    );
    let compactor = Compactor {
        checkpoints: DynamoCheckpoints::new(
            dockerhub_audit::aws::dynamodb_client(&sdk),
            settings.table.clone(),
        ),
        sink: S3Sink::new(
            s3,
            settings.bucket.clone(),
            &settings.prefix,
            settings.kms_key_id.clone(),
        ),
        surface,
        clock: Arc::new(SystemClock),
        settings,
    };
    let compactor = &compactor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let ctx = event.context;
        let org = event
            .payload
            .get("org")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        let deadline = DateTime::<Utc>::from_timestamp_millis(ctx.deadline as i64).unwrap_or_else(Utc::now);
        let span = tracing::info_span!("invocation", request_id = %ctx.request_id, org = %org);
        Ok::<Value, lambda_runtime::Error>(compactor.handle(event.payload, deadline).instrument(span).await)
    }))
    .await
}
