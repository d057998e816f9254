//! The watchdog's messages to an SNS topic (the stack's alarm topic, where its alarms go):
//! one signed `Publish` ([`SignedClient`]), without SNS's SDK crate.

use async_trait::async_trait;

use crate::aws_call::SignedClient;
use crate::ports::{AlertError, Notifier};

/// SNS limits a message to 256 KB; a watch over hundreds of stale orgs stays far below, but
/// a message is cut rather than refused.
const MESSAGE_MAX: usize = 200_000;

#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: SignedClient,
    topic: String,
}

impl SnsNotifier {
    pub fn new(sdk: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Result<Self, String> {
        Ok(SnsNotifier {
            client: SignedClient::new(sdk, "sns")?,
            topic: topic_arn.into(),
        })
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), AlertError> {
        let message = crate::types::clip(message, MESSAGE_MAX);
        let body = form(&[
            ("Action", "Publish"),
            ("Version", "2010-03-31"),
            ("TopicArn", &self.topic),
            ("Subject", subject),
            ("Message", &message),
        ]);
        let answer = self
            .client
            .post(
                "/",
                &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                body.into_bytes(),
            )
            .await
            .map_err(|e| AlertError(format!("SNS Publish to {}: {e}", self.topic)))?;
        if answer.ok() && answer.text.contains("MessageId") {
            return Ok(());
        }
        // The XML error's code and message, if any, shown safely.
        let between = |open: &str, close: &str| {
            answer
                .text
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map(|(v, _)| crate::hub::trust::shown(v))
                .unwrap_or_default()
        };
        Err(AlertError(format!(
            "SNS Publish to {} failed ({} {}: {}); check that the topic exists and the role may sns:Publish to it",
            self.topic,
            answer.status,
            between("<Code>", "</Code>"),
            between("<Message>", "</Message>")
        )))
    }
}
