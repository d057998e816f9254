//! The Lambda entry point: builds the AWS clients once per cold start, then serves
//! invocations with [`App::handle`]: `{"org": "acme"}` from an org's schedule, `{"watch":
//! true}` from the watchdog's, and the verifications the watchdog starts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dockerhub_audit::checkpoint::dynamodb::DynamoCheckpoints;
use dockerhub_audit::clock::SystemClock;
use dockerhub_audit::credentials::secrets_manager::{SecretsManagerCredentials, SharedSecret};
use dockerhub_audit::lambda::dispatch::LambdaDispatcher;
use dockerhub_audit::lambda::handler::CredentialsFactory;
use dockerhub_audit::lambda::settings::SecretsFrom;
use dockerhub_audit::lambda::{App, RetryableError, Settings};
use dockerhub_audit::logging::{self, LogFormat};
use dockerhub_audit::notify::eventbridge::EventBridgeAlerts;
use dockerhub_audit::notify::sns::SnsNotifier;
use dockerhub_audit::ports::CredentialSource;
use dockerhub_audit::sink::s3::S3Sink;
use dockerhub_audit::types::Org;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init(LogFormat::Json, "info");
    let settings = Settings::from_env(|k| std::env::var(k).ok())?;
    let sdk = dockerhub_audit::aws::load().await;
    let checkpoints = DynamoCheckpoints::new(
        dockerhub_audit::aws::dynamodb_client(&sdk),
        settings.table.clone(),
    );
    let sink = S3Sink::new(
        dockerhub_audit::aws::s3_client(&sdk),
        settings.bucket.clone(),
        &settings.prefix,
        settings.kms_key_id.clone(),
    );
    let secrets = dockerhub_audit::aws::secrets_client(&sdk);
    let credentials: CredentialsFactory = match settings.secrets.clone() {
        SecretsFrom::PerOrg { pattern } => Box::new(move |org: &Org| -> Arc<dyn CredentialSource> {
            Arc::new(SecretsManagerCredentials::new(
                secrets.clone(),
                pattern.replace("{org}", org.as_str()),
            ))
        }),
        // One read serves every org of a warm function.
        SecretsFrom::Shared { secret_id } => {
            let shared = SharedSecret::new(secrets, secret_id);
            Box::new(move |org: &Org| -> Arc<dyn CredentialSource> { Arc::new(shared.entry(org.as_str())) })
        }
    };
    // Alerts: a rules file that cannot be used fails the start, loudly.
    let alerts = match settings.alert_bus.clone() {
        None => None,
        Some(bus) => {
            let s3 = dockerhub_audit::aws::s3_client(&sdk);
            let rules = dockerhub_audit::lambda::rules::load(&settings.alert_rules, &s3).await?;
            let out = EventBridgeAlerts::new(dockerhub_audit::aws::eventbridge_client(&sdk), bus);
            Some((rules, out))
        }
    };
    let clock: Arc<dyn dockerhub_audit::clock::Clock> = Arc::new(SystemClock);
    let hubs = dockerhub_audit::lambda::handler::hub_clients(&settings, clock.clone(), credentials);
    // With compaction, a repair takes a compacted day off the view before writing into it.
    let view = settings.view.clone();
    let mut app = App::new(settings, checkpoints, sink, clock, hubs);
    if let Some((database, table)) = view {
        let glue = dockerhub_audit::surface::glue::Glue::new(&sdk)?;
        let view = dockerhub_audit::surface::glue::ViewName { database, table };
        app = app.with_surface(Box::new(dockerhub_audit::surface::glue::GlueSurface::view_only(
            glue, view,
        )));
    }
    // The watch mode's messages go to the alarm topic; it starts the daily verifications
    // (this function) and compactions.
    if let Some(topic) = app.settings.watch.alarm_topic.clone() {
        app = app.with_notifier(Box::new(SnsNotifier::new(&sdk, topic)?));
    }
    let me = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    if let (Some(me), Some(compactor)) = (me, app.settings.watch.compactor.clone()) {
        let range = app.settings.watch.verify_range.clone();
        app = app.with_dispatcher(Box::new(LambdaDispatcher::new(&sdk, me, compactor, range)?));
    }
    if let Some((rules, out)) = alerts {
        tracing::info!(rules = rules.len(), "alerts on");
        app = app.with_alerts(rules, Box::new(out));
    }
    let app = &app;
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
        app.handle(event.payload, deadline)
            .instrument(span)
            .await
            .map_err(|e: RetryableError| e)
    }))
    .await
}
