//! Objects in S3: `PutObject` with `If-None-Match: *` (a 412 means the object is already
//! there, which for a content-derived key means this write already happened), a SHA-256
//! checksum S3 verifies, `Content-Type: application/x-ndjson`, `Content-Encoding: gzip`, and
//! the bucket's default encryption or a given KMS key.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption};
use aws_sdk_s3::Client;
use base64::Engine;
use sha2::{Digest, Sha256};

use chrono::NaiveDate;

use crate::aws::error_text as aws_error;
use crate::event::key::{partition, ObjectKey};
use crate::ports::{Listed, PutOutcome, Sink, StoreError};
use crate::types::Org;

#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

impl S3Sink {
    /// `prefix` may be empty; a trailing `/` is added when missing.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: &str, kms_key_id: Option<String>) -> Self {
        let p = prefix.trim_matches('/');
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        S3Sink {
            client,
            bucket: bucket.into(),
            prefix,
            kms_key_id,
        }
    }

    /// The full S3 key of an object key.
    pub fn key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.0)
    }

    fn url(&self, key: &ObjectKey) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }

    fn list_error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io(format!(
            "cannot list s3://{}/{}{what} ({e}); check the bucket and s3:ListBucket permission",
            self.bucket, self.prefix
        ))
    }

    /// Lists below `prefix` (relative to the sink's), after `after` when given, page by
    /// page: up to `limit` objects, and with `folders` the common prefixes at the next `/`
    /// instead of what is inside them.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        folders: bool,
        limit: usize,
    ) -> Result<(Vec<Listed>, Vec<String>), StoreError> {
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{}{prefix}", self.prefix))
                .max_keys((limit - objects.len()).min(1000) as i32);
            if folders {
                req = req.delimiter("/");
            }
            match (&token, after) {
                (Some(t), _) => req = req.continuation_token(t),
                (None, Some(a)) => req = req.start_after(format!("{}{a}", self.prefix)),
                (None, None) => {}
            }
            let page = req
                .send()
                .await
                .map_err(|e| self.list_error(prefix, aws_error(&e)))?;
            for o in page.contents() {
                let Some(rel) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                if is_object_key(rel) {
                    objects.push(Listed {
                        key: ObjectKey(rel.to_string()),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix()?.strip_prefix(&self.prefix).map(str::to_string)),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() || objects.len() >= limit {
                return Ok((objects, prefixes));
            }
        }
    }
}

/// Whether a key (below the sink's prefix) names an object of a partition,
/// `org=<org>/dt=<date>/<name>.json.gz`, as the local sink reads them (nothing else under
/// `org=` is the tool's).
fn is_object_key(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    matches!(parts[..], [org, dt, name] if org.starts_with("org=") && dt.starts_with("dt=") && name.ends_with(".json.gz") && !name.starts_with('.'))
}

/// Splits `s3://bucket/prefix` into bucket and prefix.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3:// URL; write s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket; write s3://bucket/prefix"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

#[async_trait]
impl Sink for S3Sink {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>) -> Result<PutOutcome, StoreError> {
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_none_match("*")
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .body(ByteStream::from(body));
        if let Some(kms) = &self.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        match req.send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(PutOutcome::AlreadyExisted),
            // Another write of the same key was in flight (S3's ConditionalRequestConflict):
            // whichever landed holds the same events; if none did, the commit is retried.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 409) => {
                if self.exists(key).await? {
                    Ok(PutOutcome::AlreadyExisted)
                } else {
                    Err(StoreError::Io(format!(
                        "cannot write {}: a concurrent write of the same key conflicted and neither landed; \
                         the next run writes it again",
                        self.url(key)
                    )))
                }
            }
            Err(e) => Err(StoreError::Io(format!(
                "cannot write {} ({}); check the bucket, its region and s3:PutObject (and kms:GenerateDataKey for a KMS key)",
                self.url(key),
                aws_error(&e)
            ))),
        }
    }

    async fn identity(&self) -> Result<String, StoreError> {
        Ok(format!(
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        ))
    }

    /// A listing of the key itself, not a HeadObject: for a missing object S3 answers
    /// HeadObject with 404 only to a caller that may list the bucket, and the function's
    /// role may list only under its prefix (an `s3:prefix` condition, which a HeadObject
    /// request does not carry), so a missing object would look forbidden.
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let full = self.key(key);
        // The key itself sorts first among the keys it prefixes.
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(key))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| {
                StoreError::Io(format!(
                    "cannot check {} ({}); check s3:ListBucket permission on the prefix",
                    self.url(key),
                    aws_error(&e)
                ))
            })?;
        Ok(page.contents().iter().any(|o| o.key() == Some(full.as_str())))
    }

    async fn days(&self, org: &Org) -> Result<Vec<NaiveDate>, StoreError> {
        let base = format!("org={org}/");
        let (_, folders) = self.list(&base, None, true, usize::MAX).await?;
        let mut days: Vec<NaiveDate> = folders
            .iter()
            .filter_map(|p| {
                let dt = p.strip_prefix(&base)?.strip_prefix("dt=")?;
                NaiveDate::parse_from_str(dt.trim_end_matches('/'), "%Y-%m-%d").ok()
            })
            .collect();
        days.sort();
        Ok(days)
    }

    async fn list_day(&self, org: &Org, day: NaiveDate) -> Result<Vec<Listed>, StoreError> {
        let part = format!("{}/", partition(org, day));
        Ok(self.list(&part, None, false, usize::MAX).await?.0)
    }

    async fn list_after(&self, org: &Org, after: &str, limit: usize) -> Result<Vec<Listed>, StoreError> {
        Ok(self
            .list(&format!("org={org}/"), Some(after), false, limit)
            .await?
            .0)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let err = |e: String| {
            StoreError::Io(format!(
                "cannot read {} ({e}); check s3:GetObject permission (and kms:Decrypt for a KMS key)",
                self.url(key)
            ))
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| err(aws_error(&e)))?;
        let body = out.body.collect().await.map_err(|e| err(e.to_string()))?;
        Ok(body.into_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://b/p/q/").unwrap(), ("b".into(), "p/q".into()));
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_url("b/p").is_err());
        assert!(parse_s3_url("s3:///p").is_err());
        assert!(is_object_key("org=a/dt=2026-11-25/x.json.gz"));
        for stray in [
            "org=a/x.json.gz",
            "org=a/dt=2026-11-25/x.json",
            "org=a/dt=2026-11-25/sub/x.json.gz",
            "_quarantine/org=a/x.json.gz",
        ] {
            assert!(!is_object_key(stray), "{stray}");
        }
    }
}
