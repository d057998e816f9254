//! The watchdog's messages to an SNS topic (the stack's alarm topic, where its alarms go):
//! one signed `Publish` ([`SignedClient`]), without SNS's SDK crate.

use async_trait::async_trait;

use crate::aws_call::SignedClient;
use crate::ports::{AlertError, Notifier};

/// SNS limits a message to 256 KB (bytes, UTF-8): a longer one is cut at this many bytes
/// rather than refused (hundreds of stale orgs with long errors could reach it).
const MESSAGE_MAX: usize = 250_000;

/// `s` cut to at most `max` bytes, on a character boundary, saying so.
fn clip_bytes(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let note =
        "\n… (cut: the message was longer than SNS takes; `dockerhub-audit status --all` shows every org)";
    let mut end = max.saturating_sub(note.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &s[..end]).into()
}

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
        let message = clip_bytes(message, MESSAGE_MAX);
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_message_is_cut_to_what_sns_takes_in_bytes() {
        let long = "é".repeat(200_000);
        let cut = super::clip_bytes(&long, super::MESSAGE_MAX);
        assert!(cut.len() <= super::MESSAGE_MAX && cut.ends_with("shows every org)"));
        assert_eq!(super::clip_bytes("short", 10), "short");
    }
}
