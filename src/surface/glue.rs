//! The query surface in AWS: the Athena view `events` in Glue, and the compacted objects in
//! S3 under `<prefix>/compacted/`. The view names the compacted days in its SQL (and keeps
//! the same map in a table parameter); one `UpdateTable` moves a day from one side to the
//! other. Writes are conditional on the view's version (Glue's optimistic lock) and read
//! back, so two writers (the compactor and a repair) cannot undo each other's change.
//!
//! Glue is called with two signed JSON requests ([`SignedClient`]) rather than its SDK, whose
//! crate costs more to build than the rest of the tool.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption};
use base64::Engine;
use chrono::NaiveDate;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::view::{self, MAP_PARAMETER};
use super::{compacted_key, CompactedDays, DayMap, QuerySurface};
use crate::aws_call::SignedClient;
use crate::ports::StoreError;
use crate::types::Org;

/// How often a write of the view is tried again after another writer changed it first.
const VIEW_WRITE_ATTEMPTS: u32 = 8;

/// Where the view is.
#[derive(Debug, Clone)]
pub struct ViewName {
    pub database: String,
    pub table: String,
}

/// A minimal Glue client: `GetTable` and `UpdateTable`, signed with SigV4.
#[derive(Debug, Clone)]
pub struct Glue {
    client: SignedClient,
}

/// What Glue answered, or why there was no answer.
#[derive(Debug)]
enum GlueError {
    /// Another writer changed the table since we read it.
    Concurrent,
    Other(String),
}

impl Glue {
    /// From the SDK configuration: its region and credentials, and the endpoint the SDK would
    /// use (`AWS_ENDPOINT_URL_GLUE`, then `AWS_ENDPOINT_URL`, else Glue's regional one).
    pub fn new(sdk: &aws_config::SdkConfig) -> Result<Self, String> {
        Ok(Glue {
            client: SignedClient::new(sdk, "glue")?,
        })
    }

    /// Any Glue action with a JSON body (for tools and tests: creating the view elsewhere).
    pub async fn request(&self, action: &str, body: &Value) -> Result<Value, String> {
        self.call(action, body).await.map_err(|e| match e {
            GlueError::Concurrent => format!("Glue {action}: ConcurrentModificationException"),
            GlueError::Other(m) => m,
        })
    }

    async fn call(&self, action: &str, body: &Value) -> Result<Value, GlueError> {
        let target = format!("AWSGlue.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let answer = self
            .client
            .post("/", &headers, body.to_string().into_bytes())
            .await
            .map_err(|e| GlueError::Other(format!("Glue {action}: {e}")))?;
        if answer.ok() {
            return serde_json::from_str(&answer.text)
                .map_err(|_| GlueError::Other(format!("Glue {action} answered something that is not JSON")));
        }
        let (kind, message) = answer.json_error();
        if kind == "ConcurrentModificationException" {
            return Err(GlueError::Concurrent);
        }
        Err(GlueError::Other(format!(
            "Glue {action} failed ({} {kind}: {message})",
            answer.status
        )))
    }
}

/// The view as read: its table (for the update), version and map.
struct Current {
    table: Value,
    version: Option<String>,
    map: DayMap,
}

/// The compacted side in S3 and the view in Glue.
#[derive(Debug, Clone)]
pub struct GlueSurface {
    glue: Glue,
    view: ViewName,
    s3: Option<S3Place>,
}

#[derive(Debug, Clone)]
struct S3Place {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

fn store(e: GlueError) -> StoreError {
    match e {
        GlueError::Concurrent => StoreError::Io(
            "the view kept changing while it was being updated; the next run tries again".to_string(),
        ),
        GlueError::Other(m) => StoreError::Io(format!(
            "{m}; check glue:GetTable and glue:UpdateTable on the view, and that the stack's view exists"
        )),
    }
}

impl GlueSurface {
    /// The view only: what a repair needs to take a day off the compacted side.
    pub fn view_only(glue: Glue, view: ViewName) -> Self {
        GlueSurface { glue, view, s3: None }
    }

    /// The view's SQL as Glue holds it now, and its map (for status and tests).
    pub async fn view_sql(&self) -> Result<(String, DayMap), StoreError> {
        let cur = self.current().await?;
        let sql = cur.table["ViewOriginalText"]
            .as_str()
            .and_then(view::sql_of_presto_view)
            .ok_or_else(|| StoreError::Invalid("the view's text is not a Presto view".to_string()))?;
        Ok((sql, cur.map))
    }

    /// The view and the compacted objects under `s3://bucket/prefix/compacted/`.
    pub fn new(
        glue: Glue,
        view: ViewName,
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: &str,
        kms_key_id: Option<String>,
    ) -> Self {
        let p = prefix.trim_matches('/');
        GlueSurface {
            glue,
            view,
            s3: Some(S3Place {
                client,
                bucket: bucket.into(),
                prefix: if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                },
                kms_key_id,
            }),
        }
    }

    fn s3(&self) -> Result<&S3Place, StoreError> {
        self.s3
            .as_ref()
            .ok_or_else(|| StoreError::Invalid("this surface was built for the view only".to_string()))
    }

    async fn current(&self) -> Result<Current, StoreError> {
        let v = self
            .glue
            .call(
                "GetTable",
                &json!({"DatabaseName": self.view.database, "Name": self.view.table}),
            )
            .await
            .map_err(store)?;
        let table = v["Table"].clone();
        if table["TableType"].as_str() != Some("VIRTUAL_VIEW") {
            return Err(StoreError::Invalid(format!(
                "the Glue table {}.{} is not a view: give the name of the view the stack creates (`events`)",
                self.view.database, self.view.table
            )));
        }
        let map =
            view::decode_map(table["Parameters"][MAP_PARAMETER].as_str()).map_err(StoreError::Invalid)?;
        Ok(Current {
            version: table["VersionId"].as_str().map(str::to_string),
            table,
            map,
        })
    }

    /// Writes the view for `map`, conditional on `version`.
    async fn write(&self, cur: &Current, map: &DayMap) -> Result<(), GlueError> {
        let t = &cur.table;
        let mut input = Map::new();
        for k in [
            "Name",
            "Description",
            "Owner",
            "Retention",
            "StorageDescriptor",
            "PartitionKeys",
            "ViewExpandedText",
            "TableType",
        ] {
            if !t[k].is_null() {
                input.insert(k.to_string(), t[k].clone());
            }
        }
        let mut params = t["Parameters"].as_object().cloned().unwrap_or_default();
        params.insert(MAP_PARAMETER.to_string(), json!(view::encode_map(map)));
        input.insert("Parameters".into(), Value::Object(params));
        input.insert(
            "ViewOriginalText".into(),
            json!(view::presto_view_text(map, &self.view.database)),
        );
        let mut body = json!({"DatabaseName": self.view.database, "TableInput": input});
        if let Some(v) = &cur.version {
            body["VersionId"] = json!(v);
        }
        self.glue.call("UpdateTable", &body).await.map(|_| ())
    }

    /// Applies `change` to the map and writes the view, again on a concurrent change, until
    /// the view read back holds the change. `Ok(false)` when there was nothing to change.
    async fn update(&self, change: impl Fn(&mut DayMap) -> bool) -> Result<bool, StoreError> {
        for _ in 0..VIEW_WRITE_ATTEMPTS {
            let cur = self.current().await?;
            let mut map = cur.map.clone();
            if !change(&mut map) {
                return Ok(false);
            }
            match self.write(&cur, &map).await {
                Ok(()) => {}
                Err(GlueError::Concurrent) => continue,
                Err(e) => return Err(store(e)),
            }
            // Read back: a store without the version check could let a later writer's
            // older map win; then the change is applied again.
            let after = self.current().await?;
            let mut again = after.map.clone();
            if !change(&mut again) {
                return Ok(true);
            }
        }
        Err(store(GlueError::Concurrent))
    }

    fn object_key(&self, s3: &S3Place, org: &Org, day: NaiveDate) -> String {
        format!("{}{}", s3.prefix, compacted_key(org, day))
    }
}

#[async_trait]
impl QuerySurface for GlueSurface {
    async fn reopen(&self, org: &Org, day: NaiveDate) -> Result<bool, StoreError> {
        let org = org.to_string();
        self.update(|m| {
            let removed = m.get_mut(&org).is_some_and(|d| d.remove(&day));
            if m.get(&org).is_some_and(BTreeSet::is_empty) {
                m.remove(&org);
            }
            removed
        })
        .await
    }
}

#[async_trait]
impl CompactedDays for GlueSurface {
    async fn days(&self, org: &Org) -> Result<BTreeSet<NaiveDate>, StoreError> {
        Ok(self
            .current()
            .await?
            .map
            .remove(&org.to_string())
            .unwrap_or_default())
    }

    async fn put(&self, org: &Org, day: NaiveDate, body: Vec<u8>) -> Result<String, StoreError> {
        let s3 = self.s3()?;
        let key = self.object_key(s3, org, day);
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let mut req = s3
            .client
            .put_object()
            .bucket(&s3.bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .body(ByteStream::from(body));
        if let Some(kms) = &s3.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        req.send().await.map_err(|e| {
            StoreError::Io(format!(
                "cannot write s3://{}/{key} ({}); check s3:PutObject on the compacted prefix",
                s3.bucket,
                crate::aws::error_text(&e)
            ))
        })?;
        Ok(format!("s3://{}/{key}", s3.bucket))
    }

    async fn get(&self, org: &Org, day: NaiveDate) -> Result<Vec<u8>, StoreError> {
        let s3 = self.s3()?;
        let key = self.object_key(s3, org, day);
        let out = s3
            .client
            .get_object()
            .bucket(&s3.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                let text = format!("s3://{}/{key} ({})", s3.bucket, crate::aws::error_text(&e));
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    // Not transient: the day must be read from its raw objects again.
                    StoreError::Invalid(format!("the compacted object {text} is gone"))
                } else {
                    StoreError::Io(format!("cannot read {text}"))
                }
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Io(format!("cannot read s3://{}/{key} ({e})", s3.bucket)))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn publish(&self, org: &Org, day: NaiveDate) -> Result<(), StoreError> {
        let org = org.to_string();
        self.update(|m| m.entry(org.clone()).or_default().insert(day))
            .await
            .map(|_| ())
    }
}
