//! The Lambda's alert rules, read once per cold start: built in, from an environment
//! variable, or from an S3 object. A rules file that cannot be read or checked fails the
//! start (every invocation then errors and lands in the dead-letter queue, and the watchdog
//! stops reporting) rather than collecting without alerts: the events wait in Docker Hub, and once the rules are fixed
//! the collector catches up and raises their alerts.

use super::settings::{RulesFrom, ENV_ALERT_RULES};
use crate::alert::Rules;
use crate::aws::error_text;

/// The largest rules object read: far above any real rules file, far below the memory of
/// the smallest function.
pub const MAX_RULES_BYTES: usize = 1 << 20;

pub async fn load(from: &RulesFrom, s3: &aws_sdk_s3::Client) -> Result<Rules, String> {
    match from {
        RulesFrom::BuiltIn => Ok(Rules::defaults()),
        RulesFrom::Inline(text) => Rules::parse(text, ENV_ALERT_RULES).map_err(|e| e.to_string()),
        RulesFrom::S3 { bucket, key } => {
            let uri = format!("s3://{bucket}/{key}");
            let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
                format!(
                    "cannot read the alert rules at {uri} ({}); check the object exists and the function may s3:GetObject it",
                    error_text(&e)
                )
            })?;
            let too_large = || {
                format!(
                    "the alert rules at {uri} are larger than {} KiB; a rules file is a few KiB of TOML: \
                     check the address names the rules file",
                    MAX_RULES_BYTES >> 10
                )
            };
            if out.content_length().is_some_and(|n| n > MAX_RULES_BYTES as i64) {
                return Err(too_large());
            }
            // Read to the cap only, whatever the length said.
            let mut body = out.body;
            let mut bytes = Vec::new();
            while let Some(chunk) = body
                .next()
                .await
                .transpose()
                .map_err(|e| format!("cannot read the alert rules at {uri} ({e})"))?
            {
                if bytes.len() + chunk.len() > MAX_RULES_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| format!("the alert rules at {uri} are not UTF-8 text"))?;
            Rules::parse(text, &format!("the rules file {uri}")).map_err(|e| e.to_string())
        }
    }
}
