//! The AWS emulator for tests: moto's server mode (started by ./scripts/test), reached with
//! the real SDK clients over HTTP.
#![allow(dead_code)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_s3::config::Credentials;

/// moto's address, from the test command.
pub fn moto() -> String {
    std::env::var("DOCKERHUB_AUDIT_TEST_MOTO")
        .expect("DOCKERHUB_AUDIT_TEST_MOTO is not set: run ./scripts/test, which starts the AWS emulator")
}

/// A strict S3 (ministack's, which verifies checksums), from the test command.
pub fn strict_s3() -> String {
    std::env::var("DOCKERHUB_AUDIT_TEST_STRICT_S3")
        .expect("DOCKERHUB_AUDIT_TEST_STRICT_S3 is not set: run ./scripts/test, which starts ministack")
}

pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

pub async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tests"))
        .load()
        .await
}

pub fn s3(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

/// A name unique to this test process and purpose (moto's state is shared by all tests).
pub fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket created");
}

pub async fn create_table(cfg: &SdkConfig, table: &str) {
    aws_sdk_dynamodb::Client::new(cfg)
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("org")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("org")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table created");
}

pub async fn put_secret(cfg: &SdkConfig, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(cfg)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("secret created");
}

/// Every object under `prefix` in `bucket`, read back and decoded: (key, records).
/// One object's bytes.
pub async fn get_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

pub async fn read_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Vec<(String, Vec<serde_json::Map<String, serde_json::Value>>)> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for o in page.contents() {
            let key = o.key().unwrap().to_string();
            let records = dockerhub_audit::event::encode::decode(&get_bytes(s3, bucket, &key).await).unwrap();
            out.push((key, records));
        }
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    out
}

/// Canonical Hub events of everything under the prefix.
pub async fn stored_in_s3(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    read_all(s3, bucket, prefix)
        .await
        .iter()
        .flat_map(|(_, recs)| {
            recs.iter()
                .map(|r| dockerhub_audit::inspect::hub_canonical(r).unwrap())
        })
        .collect()
}

/// Asserts the bucket holds exactly `expected` (a multiset) and no event_id twice.
pub async fn assert_exact_s3(expected: &[String], s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) {
    let objects = read_all(s3, bucket, prefix).await;
    let stored: Vec<String> = objects
        .iter()
        .flat_map(|(_, recs)| {
            recs.iter()
                .map(|r| dockerhub_audit::inspect::hub_canonical(r).unwrap())
        })
        .collect();
    let cmp = dockerhub_audit::inspect::compare(expected, &stored);
    assert!(cmp.exact(), "S3 differs from the emulator: {cmp:?}");
    let mut ids: Vec<String> = objects
        .iter()
        .flat_map(|(_, recs)| recs.iter().map(|r| r["event_id"].as_str().unwrap().to_string()))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(n, ids.len(), "an event_id is stored twice");
}

/// An object under `prefix` whose events all lie well inside what a verify of the last two
/// days covers (from two days ago to where the collection is final, about 16 minutes
/// before the last poll: an hour leaves room for slow machines), with its records; `None`
/// when there is none (with one object a day, in the first hour after midnight).
pub async fn object_inside_two_days(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Option<(String, Vec<serde_json::Map<String, serde_json::Value>>)> {
    let now = chrono::Utc::now();
    let (from, to) = (
        now - chrono::Duration::hours(47),
        now - chrono::Duration::hours(1),
    );
    read_all(s3, bucket, prefix)
        .await
        .into_iter()
        .find(|(_, records)| {
            records.iter().all(|r| {
                let t = r["timestamp"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                t.is_some_and(|t| t >= from && t < to)
            })
        })
}

/// A new SQS queue named after `what`: its URL and ARN.
async fn new_queue(cfg: &SdkConfig, what: &str) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(cfg);
    let queue = sqs
        .create_queue()
        .queue_name(unique(what))
        .send()
        .await
        .expect("queue created")
        .queue_url()
        .expect("a queue URL")
        .to_string();
    let arn_attr = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(arn_attr.clone())
        .send()
        .await
        .expect("queue attributes");
    let arn = attrs.attributes().expect("attributes")[&arn_attr].clone();
    (queue, arn)
}

/// Creates the EventBridge bus `bus` with a rule sending the collector's events (`source`
/// dockerhub-audit) to a new SQS queue, as a subscriber of the alerts would; the queue's URL.
pub async fn bus_to_queue(cfg: &SdkConfig, bus: &str) -> String {
    let eb = aws_sdk_eventbridge::Client::new(cfg);
    eb.create_event_bus().name(bus).send().await.expect("bus created");
    let (queue, arn) = new_queue(cfg, "alerts").await;
    eb.put_rule()
        .name("dockerhub-audit-alerts")
        .event_bus_name(bus)
        .event_pattern(serde_json::json!({"source": ["dockerhub-audit"]}).to_string())
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("dockerhub-audit-alerts")
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&arn)
                .build()
                .expect("a target"),
        )
        .send()
        .await
        .expect("target");
    queue
}

/// Every event `queue` holds, as JSON, each taken off the queue.
pub async fn drain(cfg: &SdkConfig, queue: &str) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(cfg);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let msgs = got.messages();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(serde_json::from_str(m.body().unwrap()).expect("an EventBridge event as JSON"));
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Creates an SNS topic with a new SQS queue subscribed to it (the envelope kept, so the
/// subject is seen), as a person's pager would be: (topic ARN, queue URL).
pub async fn topic_to_queue(cfg: &SdkConfig) -> (String, String) {
    let sns = dockerhub_audit::aws_call::SignedClient::new(cfg, "sns").expect("an SNS client");
    let call = |pairs: Vec<(&str, String)>| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let sns = sns.clone();
        async move {
            let a = sns
                .post(
                    "/",
                    &[("content-type", "application/x-www-form-urlencoded")],
                    body.into_bytes(),
                )
                .await
                .expect("SNS answers");
            assert!(a.ok(), "{}", a.text);
            a.text
        }
    };
    let text = call(vec![
        ("Action", "CreateTopic".into()),
        ("Version", "2010-03-31".into()),
        ("Name", unique("alarms")),
    ])
    .await;
    let topic = text
        .split_once("<TopicArn>")
        .and_then(|(_, r)| r.split_once("</TopicArn>"))
        .expect("a topic ARN")
        .0
        .to_string();
    let (queue, arn) = new_queue(cfg, "pager").await;
    call(vec![
        ("Action", "Subscribe".into()),
        ("Version", "2010-03-31".into()),
        ("TopicArn", topic.clone()),
        ("Protocol", "sqs".into()),
        ("Endpoint", arn),
    ])
    .await;
    (topic, queue)
}
