//! The AWS adapters against a real AWS emulator (moto, over HTTP, with the real SDK
//! clients) and a strict S3 (ministack's) for checksums: S3 conditional writes, DynamoDB
//! leases, versions and the 400 KB limit, Secrets Manager errors and rotation, and the
//! exactly-once pipeline on S3 + DynamoDB.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::aws::*;
use common::*;
use common::{gate, proxy};
use dockerhub_audit::checkpoint::dynamodb::DynamoCheckpoints;
use dockerhub_audit::checkpoint_model::Checkpoint;
use dockerhub_audit::clock::{Clock, ManualClock, Skewed};
use dockerhub_audit::collect::Poller;
use dockerhub_audit::credentials::secrets_manager::{SecretsManagerCredentials, SharedSecret};
use dockerhub_audit::event::key::ObjectKey;
use dockerhub_audit::hub::{HubClient, HubConfig};
use dockerhub_audit::ports::{Checkpoints, CredentialSource, PutOutcome, Sink, StoreError};
use dockerhub_audit::sink::s3::S3Sink;
use dockerhub_audit::types::{EventId, RunId};
use dockerhub_audit_emulator::Fault;

fn gz_body(n: usize) -> Vec<u8> {
    let recs: Vec<_> = (0..n)
        .map(|i| serde_json::json!({"i": i}).as_object().unwrap().clone())
        .collect();
    dockerhub_audit::event::encode::encode(&recs)
}

#[tokio::test]
async fn s3_put_is_conditional_typed_and_checksummed() {
    let cfg = sdk(&moto()).await;
    let client = s3(&cfg);
    let bucket = unique("bucket");
    create_bucket(&client, &bucket).await;
    let sink = S3Sink::new(client.clone(), &bucket, "audit/", None);
    let key = ObjectKey("org=acme/dt=2026-11-25/x.json.gz".into());
    assert!(!sink.exists(&key).await.unwrap());
    let body = gz_body(10);
    assert_eq!(sink.put(&key, body.clone()).await.unwrap(), PutOutcome::Created);
    // The second write of the same key meets If-None-Match: * (412) and is a success.
    assert_eq!(
        sink.put(&key, gz_body(99)).await.unwrap(),
        PutOutcome::AlreadyExisted
    );
    assert!(sink.exists(&key).await.unwrap());
    let got = client
        .get_object()
        .bucket(&bucket)
        .key("audit/org=acme/dt=2026-11-25/x.json.gz")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-ndjson"));
    assert_eq!(got.content_encoding(), Some("gzip"));
    use base64::Engine;
    use sha2::Digest;
    let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
    assert_eq!(got.checksum_sha256(), Some(want.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        body,
        "never overwritten"
    );
}

#[tokio::test]
async fn a_strict_s3_accepts_our_checksums_and_rejects_a_wrong_one() {
    let cfg = sdk(&strict_s3()).await;
    let client = s3(&cfg);
    let bucket = unique("strict");
    create_bucket(&client, &bucket).await;
    let sink = S3Sink::new(client.clone(), &bucket, "p", None);
    let key = ObjectKey("org=acme/dt=2026-11-25/y.json.gz".into());
    let body = gz_body(500);
    assert_eq!(sink.put(&key, body.clone()).await.unwrap(), PutOutcome::Created);
    let back = client
        .get_object()
        .bucket(&bucket)
        .key("p/org=acme/dt=2026-11-25/y.json.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(back.body.collect().await.unwrap().into_bytes().to_vec(), body);
    // The control: this server does check, so the success above means the checksum was right.
    let wrong = client
        .put_object()
        .bucket(&bucket)
        .key("p/wrong")
        .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        .body(body.into())
        .send()
        .await
        .unwrap_err();
    let text = format!("{wrong:?}");
    assert!(text.contains("BadDigest"), "{text}");
}

fn lease_store(cfg: &aws_config::SdkConfig, table: &str, ttl: StdDuration) -> DynamoCheckpoints {
    DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(cfg), table).with_lease_ttl(ttl)
}

#[tokio::test]
async fn dynamodb_leases_fence_and_versions_condition_every_write() {
    let cfg = sdk(&moto()).await;
    let table = unique("table");
    create_table(&cfg, &table).await;
    let store = lease_store(&cfg, &table, StdDuration::from_secs(60));
    let (a, b) = (RunId("run-a".into()), RunId("run-b".into()));
    let (lease_a, mut cp) = store.acquire(&org(), &a).await.unwrap().unwrap();
    assert_eq!(cp.version, 0);
    assert!(store.acquire(&org(), &b).await.unwrap().is_none(), "held");
    cp.watermark = Some(t0());
    store.save(&lease_a, &mut cp).await.unwrap();
    store.save(&lease_a, &mut cp).await.unwrap();
    assert_eq!(cp.version, 2);
    let mut stale = cp.clone();
    stale.version = 1;
    assert!(matches!(
        store.save(&lease_a, &mut stale).await,
        Err(StoreError::Conflict(_))
    ));
    store.heartbeat(&lease_a).await.unwrap();
    store.release(lease_a).await.unwrap();
    let (lease_b, cp_b) = store.acquire(&org(), &b).await.unwrap().unwrap();
    assert_eq!(cp_b, cp, "what A saved is what B reads");
    store.release(lease_b).await.unwrap();

    // A lease that lapses is taken over, and the old holder can write nothing after.
    let short = lease_store(&cfg, &table, StdDuration::ZERO);
    let (old, mut old_cp) = short.acquire(&org(), &a).await.unwrap().unwrap();
    let (new, mut new_cp) = short.acquire(&org(), &b).await.unwrap().unwrap();
    assert!(matches!(
        short.save(&old, &mut old_cp).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        short.heartbeat(&old).await,
        Err(StoreError::Conflict(_))
    ));
    short.save(&new, &mut new_cp).await.unwrap();
    short.release(old).await.unwrap(); // a no-op: not ours any more
    assert_eq!(store.peek(&org()).await.unwrap().unwrap().version, 3);
    short.release(new).await.unwrap();
}

#[tokio::test]
async fn dynamodb_checkpoints_larger_than_an_item_are_chunked_atomically() {
    let cfg = sdk(&moto()).await;
    let table = unique("burst");
    create_table(&cfg, &table).await;
    let store = lease_store(&cfg, &table, StdDuration::from_secs(60));
    let (lease, mut cp) = store.acquire(&org(), &RunId("r".into())).await.unwrap().unwrap();
    // 40,000 ids inside the overlap: ~1 MB of gzip, far over DynamoDB's 400 KB item limit.
    let mut big = cp.clone();
    for i in 0..40_000u64 {
        use sha2::Digest;
        let id = hex::encode(&sha2::Sha256::digest(i.to_le_bytes())[..16]);
        big.seen
            .insert(EventId(id), t0() + Duration::seconds(i as i64 % 900));
    }
    store.save(&lease, &mut big).await.unwrap();
    let chunk = |i: usize| {
        let cfg = cfg.clone();
        let table = table.clone();
        async move {
            aws_sdk_dynamodb::Client::new(&cfg)
                .get_item()
                .table_name(table)
                .key(
                    "org",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("acme#chunk#{i}")),
                )
                .send()
                .await
                .unwrap()
                .item
                .is_some()
        }
    };
    assert!(
        chunk(0).await && chunk(1).await,
        "the body was split into chunk items"
    );
    let back = store.peek(&org()).await.unwrap().unwrap();
    assert_eq!(back, big);
    // Chunks DynamoDB keeps leaving unprocessed (throttling) are a transient failure that
    // changes nothing, never "corrupted, delete the item".
    let throttling = proxy::start(&moto(), 1, vec![proxy::AwsFault::Unprocessed], 0).await;
    let through = lease_store(&sdk(&throttling.url).await, &table, StdDuration::from_secs(60));
    let err = through.peek(&org()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let text = err.to_string();
    assert!(text.contains("throttling") && text.contains("next run"), "{text}");
    assert!(!text.contains("delete") && !text.contains("corrupt"), "{text}");
    assert!(throttling.injected.lock().unwrap().values().sum::<u32>() >= 10);
    assert_eq!(store.peek(&org()).await.unwrap().unwrap(), big, "nothing changed");
    // Shrinking again deletes the chunks in the same transaction.
    cp.version = big.version;
    cp.watermark = Some(t0());
    store.save(&lease, &mut cp).await.unwrap();
    assert!(!chunk(0).await && !chunk(1).await);
    assert_eq!(store.peek(&org()).await.unwrap().unwrap(), cp);
    // Far beyond one transaction: a clear error, nothing written.
    let mut huge = cp.clone();
    for i in 0..400_000u64 {
        use sha2::Digest;
        let id = hex::encode(&sha2::Sha256::digest((i + 1_000_000).to_le_bytes())[..16]);
        huge.seen.insert(EventId(id), t0());
    }
    let err = store.save(&lease, &mut huge).await.unwrap_err().to_string();
    assert!(err.contains("--overlap"), "{err}");
    assert_eq!(store.peek(&org()).await.unwrap().unwrap(), cp);
    store.release(lease).await.unwrap();
}

#[tokio::test]
async fn secret_errors_name_the_secret_never_the_value() {
    let cfg = sdk(&moto()).await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let missing = SecretsManagerCredentials::new(sm.clone(), unique("missing"));
    let err = missing.get().await.unwrap_err().0;
    assert!(
        err.contains("does not exist") && err.contains(missing.secret_id()),
        "{err}"
    );
    for (value, says) in [
        ("dckr_oat_not_json_value", "not JSON"),
        (r#"{"username": "acme"}"#, "no string field \"token\""),
        (
            r#"{"username": "acme", "token": "<paste the token here>"}"#,
            "placeholder",
        ),
    ] {
        let name = unique("bad");
        put_secret(&cfg, &name, value).await;
        let err = SecretsManagerCredentials::new(sm.clone(), &name)
            .get()
            .await
            .unwrap_err()
            .0;
        assert!(err.contains(says) && err.contains(&name), "{value}: {err}");
        assert!(!err.contains("dckr_oat_not_json_value"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_secret_serves_two_orgs_and_a_rotation_of_one() {
    let cfg = sdk(&moto()).await;
    let name = unique("dockerhub-audit-shared");
    put_secret(
        &cfg,
        &name,
        &serde_json::json!({
            "acme": {"username": "acme", "token": "dckr_oat_acme_1"},
            "example": {"username": "example", "token": "dckr_oat_example_1"},
        })
        .to_string(),
    )
    .await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let shared = SharedSecret::new(sm.clone(), &name);
    let clock = ManualClock::new(t0());
    let mut hubs = Vec::new();
    for (i, o) in ["acme", "example"].into_iter().enumerate() {
        let mut c = emulator_config(60, 2, 40 + i as u64);
        c.org = o.into();
        c.username = o.into();
        c.secret = format!("dckr_oat_{o}_1");
        let (emu, hub) = start(c, Arc::new(clock.clone())).await;
        let client = HubClient::new(
            HubConfig {
                base_url: url::Url::parse(&hub.url()).unwrap(),
                ..HubConfig::default()
            },
            Arc::new(shared.entry(o)),
            Arc::new(clock.clone()),
        )
        .unwrap();
        hubs.push((dockerhub_audit::types::Org::new(o).unwrap(), emu, hub, client));
    }
    let q = dockerhub_audit::ports::PageQuery {
        from: t0() - Duration::days(3),
        to: t0(),
        page: 1,
        page_size: 100,
        action: None,
    };
    use dockerhub_audit::ports::AuditLog;
    for (o, _, _, client) in &hubs {
        assert_eq!(client.page(o, q.clone(), None).await.unwrap().len(), 60, "{o}");
    }
    // acme's token is rotated in the shared secret; Docker Hub accepts only the new one.
    hubs[0].1.rotate_secret("dckr_oat_acme_2");
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(
            serde_json::json!({
                "acme": {"username": "acme", "token": "dckr_oat_acme_2"},
                "example": {"username": "example", "token": "dckr_oat_example_1"},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    hubs[0].1.push_faults([Fault::ExpireToken]);
    for (o, emu, _, client) in &hubs {
        assert_eq!(client.page(o, q.clone(), None).await.unwrap().len(), 60, "{o}");
        assert_eq!(
            emu.stats().token_failures,
            0,
            "{o}: no stale token was sent after the 401"
        );
    }
    assert_eq!(
        hubs[0].1.stats().token_requests,
        2,
        "acme logged in again with the new token"
    );
    // An org without an entry: a clear error naming the secret and the org, no value.
    let err = shared.entry("other").get().await.unwrap_err().0;
    assert!(err.contains(&name) && err.contains("no entry for other"), "{err}");
    assert!(!err.contains("dckr_oat"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_picked_up_after_a_401_without_a_redeploy() {
    let cfg = sdk(&moto()).await;
    let name = unique("dockerhub-audit/acme");
    put_secret(
        &cfg,
        &name,
        &format!(r#"{{"username": "acme", "token": "{SECRET}"}}"#),
    )
    .await;
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let creds = Arc::new(SecretsManagerCredentials::new(sm.clone(), &name));
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(100, 2, 31), Arc::new(clock.clone())).await;
    let client = HubClient::new(
        HubConfig {
            base_url: url::Url::parse(&hub.url()).unwrap(),
            ..HubConfig::default()
        },
        creds.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let q = dockerhub_audit::ports::PageQuery {
        from: t0() - Duration::days(3),
        to: t0(),
        page: 1,
        page_size: 100,
        action: None,
    };
    use dockerhub_audit::ports::AuditLog;
    assert_eq!(client.page(&org(), q.clone(), None).await.unwrap().len(), 100);
    // The owner rotates: Docker Hub accepts only the new token, the secret holds it.
    emu.rotate_secret("dckr_oat_rotated");
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"username": "acme", "token": "dckr_oat_rotated"}"#)
        .send()
        .await
        .unwrap();
    emu.push_faults([Fault::ExpireToken]);
    assert_eq!(client.page(&org(), q, None).await.unwrap().len(), 100);
    let s = emu.stats();
    assert_eq!(s.token_requests, 2);
    assert_eq!(
        s.token_failures, 0,
        "the stale token was never sent after the 401"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_on_s3_and_dynamodb_stores_each_event_once() {
    let cfg = sdk(&moto()).await;
    let (bucket, table) = (unique("pipe"), unique("pipe"));
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let clock = ManualClock::new(t0());
    let mut ecfg = emulator_config(1500, 30, 32);
    ecfg.page_cap = 40;
    ecfg.twin_fraction = 0.05;
    ecfg.trickle_per_minute = 20;
    let (emu, hub) = start(ecfg, Arc::new(clock.clone())).await;
    let client = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let checkpoints = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table);
    let sink = S3Sink::new(s3c.clone(), &bucket, "dockerhub-audit", None);
    let mut pc = poll_config(30);
    pc.batch_events = 300;
    let poller = Poller {
        api: &client,
        checkpoints: &checkpoints,
        sink: &sink,
        clock: &clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let r = poller.run(&pc, None).await.unwrap();
    assert!(r.caught_up && r.objects_written >= 5, "{r:?}");
    for _ in 0..2 {
        clock.advance(Duration::minutes(5));
        poller.run(&pc, None).await.unwrap();
    }
    assert_exact_s3(
        &expected(&emu, clock.now() - pc.lag),
        &s3c,
        &bucket,
        "dockerhub-audit/",
    )
    .await;
    let keys: Vec<String> = read_all(&s3c, &bucket, "dockerhub-audit/")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("dockerhub-audit/org=acme/dt=") && k.ends_with(".json.gz")),
        "{keys:?}"
    );
    let cp: Checkpoint = checkpoints.peek(&org()).await.unwrap().unwrap();
    assert!(cp.pending.is_none() && cp.last_run.unwrap().error.is_none());
    assert_eq!(
        cp.output.as_deref(),
        Some(format!("s3://{bucket}/dockerhub-audit").as_str())
    );

    // The same table with another prefix (another output) is refused, writing nothing.
    let elsewhere = S3Sink::new(s3c.clone(), &bucket, "elsewhere", None);
    let wrong = Poller {
        api: &client,
        checkpoints: &checkpoints,
        sink: &elsewhere,
        clock: &clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let failed = wrong.run(&pc, None).await.unwrap_err();
    assert!(matches!(
        failed.error,
        dockerhub_audit::collect::CollectError::Store(StoreError::Invalid(_))
    ));
    assert!(!failed.error.is_transient());
    assert!(
        failed.error.to_string().contains("belong together"),
        "{}",
        failed.error
    );
    assert!(read_all(&s3c, &bucket, "elsewhere/").await.is_empty());
    assert_eq!(
        checkpoints.peek(&org()).await.unwrap().unwrap().watermark,
        cp.watermark
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_inside_one_overlap_crosses_the_item_limit_and_still_lands_once() {
    let cfg = sdk(&moto()).await;
    let (bucket, table) = (unique("burst"), unique("burst"));
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(0, 1, 33), Arc::new(clock.clone())).await;
    // 20,000 events in the last ten minutes: their ids, all inside the overlap, are far
    // more than one DynamoDB item holds.
    for i in 0..20_000i64 {
        let ts = t0() - Duration::minutes(11) + Duration::milliseconds(i * 30);
        emu.add_event(
            serde_json::json!({"account": "acme", "action": "repo.tag.push", "name": "acme/api",
                "data": {"tag": format!("build-{i}"), "digest": format!("sha256:{i:064x}")},
                "timestamp": dockerhub_audit::types::rfc3339(dockerhub_audit::types::floor_second(ts))}),
            t0() - Duration::hours(1),
        );
    }
    let client = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let checkpoints = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table);
    let sink = S3Sink::new(s3c.clone(), &bucket, "", None);
    let pc = poll_config(1);
    let poller = Poller {
        api: &client,
        checkpoints: &checkpoints,
        sink: &sink,
        clock: &clock,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    poller.run(&pc, None).await.unwrap();
    let chunk0 = aws_sdk_dynamodb::Client::new(&cfg)
        .get_item()
        .table_name(&table)
        .key(
            "org",
            aws_sdk_dynamodb::types::AttributeValue::S("acme#chunk#0".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        chunk0.item.is_some(),
        "the checkpoint outgrew one item and was chunked"
    );
    let cp = checkpoints.peek(&org()).await.unwrap().unwrap();
    assert!(
        cp.seen.len() >= 18_000,
        "the ids stay remembered within the overlap: {}",
        cp.seen.len()
    );
    clock.advance(Duration::minutes(5));
    let again = poller.run(&pc, None).await.unwrap();
    assert_eq!(again.events_written, 0);
    assert!(again.duplicates_dropped >= 18_000, "{}", again.duplicates_dropped);
    assert_exact_s3(&expected(&emu, clock.now() - pc.lag), &s3c, &bucket, "").await;
}

// ---------- the binary on S3 + DynamoDB: SIGKILL drill and concurrent runs ----------

const BIN: &str = env!("CARGO_BIN_EXE_dockerhub-audit");

fn aws_poll(hub_url: &str, bucket: &str, table: &str) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.args([
        "poll",
        "--org",
        "acme",
        "--hub-url",
        hub_url,
        "--retry-base",
        "10ms",
        "--batch-events",
        "60",
    ])
    .args([
        "--output",
        &format!("s3://{bucket}/audit"),
        "--checkpoint",
        &format!("dynamodb://{table}"),
    ])
    .args(["--lease-ttl", "1s"])
    .env("DOCKERHUB_USERNAME", "acme")
    .env("DOCKERHUB_TOKEN", SECRET)
    .env("AWS_ENDPOINT_URL", moto())
    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    .env("AWS_REGION", "us-east-1")
    .env_remove("AWS_PROFILE")
    .env_remove("RUST_LOG")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_concurrent_runs_on_s3_and_dynamodb_lose_and_double_nothing() {
    let cfg = sdk(&moto()).await;
    let s3c = s3(&cfg);
    let mut kills = 0;
    for seed in 1..=4u64 {
        let (bucket, table) = (unique("drill"), unique("drill"));
        create_bucket(&s3c, &bucket).await;
        create_table(&cfg, &table).await;
        let mut ecfg = emulator_config(700, 10, 300 + seed);
        ecfg.page_cap = 25;
        ecfg.twin_fraction = 0.05;
        let (emu, hub) = start(ecfg, Arc::new(dockerhub_audit::clock::SystemClock)).await;
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut below = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for attempt in 0..2 {
            // The first killed while stalled in a request (a kill that always lands), the
            // second at a random moment (mid-write, mid-commit...), which may miss.
            let held = attempt == 0;
            let base = emu.stats().list_requests;
            let hold = emu.hold_list_request(base + 1 + below(if held { 6 } else { 40 }));
            let mut child = aws_poll(&hub.url(), &bucket, &table).spawn().unwrap();
            let reached = loop {
                tokio::select! {
                    _ = hold.reached.notified() => break true,
                    _ = tokio::time::sleep(StdDuration::from_millis(5)) => {
                        if child.try_wait().unwrap().is_some() {
                            break false;
                        }
                    }
                }
            };
            if reached && !held {
                hold.release.notify_one();
                tokio::time::sleep(StdDuration::from_micros(below(20_000))).await;
            }
            let _ = child.kill();
            assert!(
                !held || reached,
                "seed {seed}: the run ended before its 6th request"
            );
            kills += u32::from(held);
            let _ = child.wait();
            hold.release.notify_one();
            // The killed run's lease would lapse a second after its last renewal; expire it
            // now instead of waiting for the wall clock.
            aws_sdk_dynamodb::Client::new(&cfg)
                .update_item()
                .table_name(&table)
                .key("org", aws_sdk_dynamodb::types::AttributeValue::S("acme".into()))
                .update_expression("SET lease_until = :past")
                .condition_expression("attribute_exists(org)")
                .expression_attribute_values(":past", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
                .send()
                .await
                .ok();
        }
        // Two runs at once: one holds the lease, the other does nothing (or finds nothing new).
        let a = aws_poll(&hub.url(), &bucket, &table).spawn().unwrap();
        let b = aws_poll(&hub.url(), &bucket, &table).spawn().unwrap();
        let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for o in [&oa, &ob] {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let out = aws_poll(&hub.url(), &bucket, &table).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success() && stdout.contains("caught up"), "{stdout}");
        let want = expected(&emu, chrono::Utc::now() - Duration::minutes(1));
        assert_exact_s3(&want, &s3c, &bucket, "audit/").await;
        hub.shutdown();
    }
    assert_eq!(kills, 4, "every held run was killed mid-flight");
}

#[tokio::test]
async fn s3_objects_use_the_given_kms_key() {
    let cfg = sdk(&moto()).await;
    let client = s3(&cfg);
    let bucket = unique("kms");
    create_bucket(&client, &bucket).await;
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/0b1e6a4e-0000-4000-8000-000000000001".to_string();
    let sink = S3Sink::new(client.clone(), &bucket, "", Some(key_id.clone()));
    let key = ObjectKey("org=acme/dt=2026-11-25/k.json.gz".into());
    assert_eq!(sink.put(&key, gz_body(3)).await.unwrap(), PutOutcome::Created);
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(&key.0)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert!(
        head.ssekms_key_id().is_some_and(|k| k.contains(&key_id)),
        "{:?}",
        head.ssekms_key_id()
    );
}

/// Run A stops at its `at`-th DynamoDB or S3 operation (before it acts, or after), long
/// enough for its lease to lapse on B's clock (skewed against A's by up to ±5 minutes); B
/// runs meanwhile and new events arrive; then A goes on. Then ordinary runs: S3 must hold
/// every event once. False when A ended before its `at`-th operation.
async fn stall_on_aws(at: u32, after: bool, skew_a: Duration, skew_b: Duration) -> bool {
    let aws = sdk(&moto()).await;
    let (table, bucket) = (unique("stall"), unique("stall"));
    create_table(&aws, &table).await;
    let s3c = s3(&aws);
    create_bucket(&s3c, &bucket).await;
    let base = ManualClock::new(t0());
    // A day back from noon: across midnight, so commits write two objects (with a heartbeat
    // between the uploads).
    let mut ecfg = emulator_config(120, 1, 300 + u64::from(at));
    ecfg.page_cap = 20;
    let (emu, hub) = start(ecfg, Arc::new(base.clone())).await;
    let hub_client = client(&hub.url(), Arc::new(base.clone()), SECRET);
    let mut pc = poll_config(2);
    pc.batch_events = 40;
    // Windows of about 30 events: several commits, many steps to stall at.
    pc.read_events = 60;
    let store = |skew: Duration| {
        DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&aws), table.clone())
            .with_lease_ttl(StdDuration::from_secs(60))
            .with_clock(Arc::new(Skewed {
                inner: base.clone(),
                by: skew,
            }))
    };
    let sink = || S3Sink::new(s3c.clone(), bucket.clone(), "audit", None);
    let (clock_a, clock_b) = (
        Skewed {
            inner: base.clone(),
            by: skew_a,
        },
        Skewed {
            inner: base.clone(),
            by: skew_b,
        },
    );
    let gate = gate::Gate::new(at, after);
    let a = gate::Gated {
        store: store(skew_a),
        sink: sink(),
        gate: &gate,
    };
    let (b_store, b_sink) = (store(skew_b), sink());
    let run_a = Poller {
        api: &hub_client,
        checkpoints: &a,
        sink: &a,
        clock: &clock_a,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let run_b = Poller {
        api: &hub_client,
        checkpoints: &b_store,
        sink: &b_sink,
        clock: &clock_b,
        alerts: None,
        page_sizes: None,
        surface: None,
    };
    let reached = gate::stall_while(
        &gate,
        async {
            let _ = run_a.run(&pc, None).await;
        },
        async {
            base.advance(Duration::minutes(12));
            for i in 0..5 {
                let at = t0() + Duration::minutes(1 + i);
                emu.add_event(
                    serde_json::json!({"account": "acme", "action": "org.member.add", "actor": "late",
                        "data": {"n": i.to_string()}, "timestamp": dockerhub_audit::types::rfc3339(at)}),
                    at,
                );
            }
            let _ = run_b.run(&pc, None).await;
        },
    )
    .await;
    let (c_store, c_sink) = (store(Duration::zero()), sink());
    for _ in 0..3 {
        base.advance(Duration::minutes(5));
        let p = Poller {
            api: &hub_client,
            checkpoints: &c_store,
            sink: &c_sink,
            clock: &base,
            alerts: None,
            page_sizes: None,
            surface: None,
        };
        p.run(&pc, None).await.unwrap_or_else(|f| panic!("{}", f.error));
    }
    assert_exact_s3(&expected(&emu, base.now() - pc.lag), &s3c, &bucket, "audit/").await;
    hub.shutdown();
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stalled_past_its_lease_at_any_step_on_dynamodb_and_s3_doubles_nothing() {
    let m = Duration::minutes;
    let skews = [(m(0), m(0)), (m(-5), m(5)), (m(5), m(-5))];
    let mut steps = 0;
    for at in 0..100u32 {
        // Each step once, stopped before it acts or after, with clocks skewed either way.
        let (skew_a, skew_b) = skews[at as usize % skews.len()];
        if !stall_on_aws(at, at % 2 == 1, skew_a, skew_b).await {
            break;
        }
        steps += 1;
    }
    assert!(steps >= 10, "a run of three commits has more steps than {steps}");
}

/// S3 and DynamoDB failing under the binary: server errors, throttling, writes applied whose
/// answer is lost (ambiguous), and writes that land after the SDK gave up on them and
/// retried. Runs go on until one catches up: every event is in S3 once, and no run calls a
/// write of its own that was applied but unanswered a takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_faults_ambiguous_and_late_writes_lose_and_double_nothing() {
    use proxy::AwsFault::*;
    let cfg = sdk(&moto()).await;
    let s3c = s3(&cfg);
    let (bucket, table) = (unique("faults"), unique("faults"));
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let mut ecfg = emulator_config(1200, 5, 71);
    ecfg.page_cap = 40;
    ecfg.twin_fraction = 0.05;
    let (emu, hub) = start(ecfg, Arc::new(dockerhub_audit::clock::SystemClock)).await;
    let faults = proxy::start(
        &moto(),
        3,
        vec![ServerError, Throttled, Ambiguous, Unavailable, Ambiguous, Late],
        2,
    )
    .await;
    let mut said = String::new();
    let mut caught_up = false;
    for _ in 0..40 {
        // Windows of about 100 events: many writes for the faults to land on.
        let out = aws_poll(&hub.url(), &bucket, &table)
            .args(["--max-read-events", "200"])
            .env("AWS_ENDPOINT_URL", &faults.url)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        said.push_str(&stdout);
        said.push_str(&stderr);
        if out.status.success() && stdout.contains("caught up") {
            caught_up = true;
            break;
        }
    }
    assert!(caught_up, "no run caught up through the faults:\n{said}");
    assert!(
        !said.contains("took over") && !said.contains("taken over"),
        "one run at a time: no message may speak of a takeover\n{said}"
    );
    let want = expected(&emu, chrono::Utc::now() - Duration::minutes(1));
    assert_exact_s3(&want, &s3c, &bucket, "audit/").await;
    let injected = faults.injected.lock().unwrap().clone();
    for kind in [ServerError, Throttled, Ambiguous] {
        for svc in ["s3", "dynamodb"] {
            assert!(
                injected.get(&(kind, svc)).copied().unwrap_or(0) > 0,
                "{kind:?} on {svc}: {injected:?}"
            );
        }
    }
    assert!(injected.keys().any(|(k, _)| *k == Late), "{injected:?}");
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_queue_through_an_eventbridge_rule_once_and_survive_a_missing_bus() {
    use dockerhub_audit::alert::{alert_id, Rules};
    use dockerhub_audit::collect::Alerting;
    use dockerhub_audit::notify::eventbridge::{detail_type, EventBridgeAlerts, SOURCE};

    let cfg = sdk(&moto()).await;
    let (bucket, table, bus) = (unique("alerts"), unique("alerts"), unique("bus"));
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let clock = ManualClock::new(t0());
    let mut ecfg = emulator_config(2500, 20, 41);
    ecfg.page_cap = 50;
    ecfg.twin_fraction = 0.02;
    let (emu, hub) = start(ecfg, Arc::new(clock.clone())).await;
    let client = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let checkpoints = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table);
    let sink = S3Sink::new(s3c.clone(), &bucket, "dockerhub-audit", None);
    let rules = Rules::defaults();
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let out = EventBridgeAlerts::new(eb.clone(), &bus);
    let mut pc = poll_config(20);
    pc.batch_events = 500;
    let poller = Poller {
        api: &client,
        checkpoints: &checkpoints,
        sink: &sink,
        clock: &clock,
        alerts: Some(Alerting {
            rules: &rules,
            out: &out,
        }),
        page_sizes: None,
        surface: None,
    };

    // The bus does not exist yet: collection goes on, the alerts wait in the checkpoint.
    let r = poller.run(&pc, None).await.unwrap();
    assert!(r.caught_up, "{r:?}");
    assert_eq!(r.alerts_raised, 0);
    assert_exact_s3(
        &expected(&emu, clock.now() - pc.lag),
        &s3c,
        &bucket,
        "dockerhub-audit/",
    )
    .await;
    let records: Vec<serde_json::Map<String, serde_json::Value>> =
        read_all(&s3c, &bucket, "dockerhub-audit/")
            .await
            .into_iter()
            .flat_map(|(_, records)| records)
            .collect();
    let mut want: Vec<String> = records
        .iter()
        .flat_map(|r| {
            let id = r["event_id"].as_str().unwrap().to_string();
            rules.matching(r).map(move |rule| alert_id(&rule.id, &id))
        })
        .collect();
    want.sort();
    assert!(want.len() > 100, "{}", want.len());
    assert_eq!(
        r.alerts_failed,
        want.len() as u64,
        "every waiting alert is counted"
    );

    // The bus, a rule for the collector's events, and a queue the rule delivers to.
    let queue = bus_to_queue(&cfg, &bus).await;

    clock.advance(Duration::minutes(5));
    let r = poller.run(&pc, None).await.unwrap();
    assert_eq!((r.alerts_raised, r.alerts_failed), (want.len() as u64, 0));
    let delivered = drain(&cfg, &queue).await;
    let mut got: Vec<String> = delivered
        .iter()
        .map(|e| e["detail"]["alert_id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, want, "the queue holds exactly the expected alerts");
    for e in &delivered {
        assert_eq!(e["source"], SOURCE);
        let d = &e["detail"];
        assert_eq!(d["org"], "acme");
        assert_eq!(d["record"]["event_id"], d["event_id"]);
        let severity: dockerhub_audit::alert::Severity =
            serde_json::from_value(d["severity"].clone()).unwrap();
        assert_eq!(e["detail-type"], detail_type(severity));
        let rule = rules
            .iter()
            .find(|r| r.id == d["rule"]["id"])
            .expect("a known rule");
        assert_eq!(d["rule"]["title"], rule.title.as_str());
    }

    // Later runs read the overlap again and raise nothing.
    for _ in 0..2 {
        clock.advance(Duration::minutes(5));
        let r = poller.run(&pc, None).await.unwrap();
        assert_eq!((r.alerts_raised, r.alerts_failed), (0, 0));
    }
    assert!(drain(&cfg, &queue).await.is_empty());
    assert!(checkpoints
        .peek(&org())
        .await
        .unwrap()
        .unwrap()
        .alerts_pending
        .is_empty());
}

/// The view `events` as template.yaml creates it (nothing compacted), in moto's Glue.
async fn create_view(glue: &dockerhub_audit::surface::glue::Glue, database: &str) {
    use dockerhub_audit::surface::view;
    glue.request(
        "CreateDatabase",
        &serde_json::json!({"DatabaseInput": {"Name": database}}),
    )
    .await
    .unwrap();
    let columns: Vec<_> = view::HIVE_COLUMNS
        .iter()
        .map(|(n, t)| serde_json::json!({"Name": n, "Type": t}))
        .collect();
    glue.request(
        "CreateTable",
        &serde_json::json!({"DatabaseName": database, "TableInput": {
            "Name": "events",
            "TableType": "VIRTUAL_VIEW",
            "ViewOriginalText": view::presto_view_text(&Default::default(), database),
            "ViewExpandedText": "/* Presto View */",
            "Parameters": {"presto_view": "true", "comment": "Presto View"},
            "StorageDescriptor": {"Columns": columns, "SerdeInfo": {}},
            "PartitionKeys": []
        }}),
    )
    .await
    .unwrap();
}

/// The compactor function's logic on moto's S3, DynamoDB and Glue: a collected and verified
/// history is compacted into one Parquet object per closed day under `compacted/`, the raw
/// objects are untouched, and the view's SQL names exactly the compacted days; a repair's
/// reopen takes a day out of the view again; an org the stack was not deployed for is
/// refused before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compactor_compacts_closed_days_and_rewrites_the_view_on_moto() {
    use dockerhub_audit::collect::verify::VerifyRange;
    use dockerhub_audit::lambda::compactor::{Compactor, CompactorSettings};
    use dockerhub_audit::service::Service;
    use dockerhub_audit::surface::glue::{Glue, GlueSurface, ViewName};
    use dockerhub_audit::surface::{view, CompactedDays, QuerySurface};

    let cfg = sdk(&moto()).await;
    let (bucket, table, database) = (
        unique("compact"),
        unique("compact"),
        unique("db").replace('-', "_"),
    );
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let glue = Glue::new(&cfg).unwrap();
    create_view(&glue, &database).await;
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(900, 12, 41), Arc::new(clock.clone())).await;
    let client = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let checkpoints = DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table);
    let sink = S3Sink::new(s3c.clone(), &bucket, "dockerhub-audit", None);
    let pc = poll_config(14);
    let service = Service::new(&client, &checkpoints, &sink, &clock);
    assert!(service.poll(&pc, None).await.failure.is_none());
    let range = VerifyRange {
        from: t0() - Duration::days(14),
        until: None,
        repair: false,
    };
    assert!(service
        .verify(&pc, &range, None, &mut |_| {})
        .await
        .report
        .unwrap()
        .clean());
    let raw_before = read_all(&s3c, &bucket, "dockerhub-audit/org=").await;

    let view_name = || ViewName {
        database: database.clone(),
        table: "events".into(),
    };
    let surface = GlueSurface::new(
        glue.clone(),
        view_name(),
        s3c.clone(),
        &bucket,
        "dockerhub-audit",
        None,
    );
    let settings = CompactorSettings::from_env(|k| {
        match k {
            "DOCKERHUB_AUDIT_ORGS" => Some("acme"),
            "DOCKERHUB_AUDIT_TABLE" => Some(table.as_str()),
            "DOCKERHUB_AUDIT_BUCKET" => Some(bucket.as_str()),
            "DOCKERHUB_AUDIT_GLUE_DATABASE" => Some(database.as_str()),
            _ => None,
        }
        .map(str::to_string)
    })
    .unwrap();
    let compactor = Compactor {
        settings,
        checkpoints: DynamoCheckpoints::new(aws_sdk_dynamodb::Client::new(&cfg), &table),
        sink: S3Sink::new(s3c.clone(), &bucket, "dockerhub-audit", None),
        surface: GlueSurface::new(
            glue.clone(),
            view_name(),
            s3c.clone(),
            &bucket,
            "dockerhub-audit",
            None,
        ),
        clock: Arc::new(clock.clone()),
    };
    let refused = compactor
        .handle(
            serde_json::json!({"org": "someone-else"}),
            t0() + Duration::minutes(15),
        )
        .await;
    assert_eq!(refused["ok"], false);
    assert!(s3c
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dockerhub-audit/compacted/")
        .send()
        .await
        .unwrap()
        .contents()
        .is_empty());

    let answer = compactor
        .handle(serde_json::json!({"org": "acme"}), t0() + Duration::minutes(15))
        .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let days = answer["compacted"].as_array().unwrap().len();
    assert!(days >= 9, "{answer}");
    let listed_keys: Vec<String> = s3c
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dockerhub-audit/compacted/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let mut compacted = Vec::new();
    for k in &listed_keys {
        compacted.push((k.clone(), get_bytes(&s3c, &bucket, k).await));
    }
    assert_eq!(compacted.len(), days, "one object per org-day");
    assert!(compacted
        .iter()
        .all(|(k, b)| k.ends_with("/events.parquet") && b.starts_with(b"PAR1")));
    let rows: u64 = compacted
        .iter()
        .map(|(_, b)| dockerhub_audit::compact::parquet::ids(b.clone()).unwrap().len() as u64)
        .sum();
    let events: u64 = answer["compacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["events"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, events);
    assert_eq!(
        read_all(&s3c, &bucket, "dockerhub-audit/org=").await,
        raw_before,
        "raw trail untouched"
    );

    let (sql, map) = surface.view_sql().await.unwrap();
    let listed = map.get("acme").cloned().unwrap_or_default();
    assert_eq!(listed.len(), days);
    assert_eq!(sql, view::sql(&map));
    assert!(sql.contains("(org = 'acme' AND (dt BETWEEN"), "{sql}");

    // A compacted object that no longer holds its raw day (overwritten here with another
    // day's): a verify through the view reports it, and the compactor's next run reopens
    // and rebuilds it.
    let days_now: Vec<_> = listed.iter().copied().collect();
    let (first, last) = (days_now[0], *days_now.last().unwrap());
    let other = surface.get(&org(), first).await.unwrap();
    s3c.put_object()
        .bucket(&bucket)
        .key(format!(
            "dockerhub-audit/{}",
            dockerhub_audit::surface::compacted_key(&org(), last)
        ))
        .body(other.into())
        .send()
        .await
        .unwrap();
    let checked = dockerhub_audit::compact::Checked(&surface);
    let v = Service::new(&client, &checkpoints, &sink, &clock)
        .with_surface(&checked)
        .verify(&pc, &range, None, &mut |_| {})
        .await
        .report
        .unwrap();
    assert_eq!(v.compacted_days_disagreeing, 1, "{v:?}");
    let fixed = compactor
        .handle(serde_json::json!({"org": "acme"}), t0() + Duration::minutes(15))
        .await;
    assert_eq!(
        fixed["disagreeing"],
        serde_json::json!([last.to_string()]),
        "{fixed}"
    );
    let v = Service::new(&client, &checkpoints, &sink, &clock)
        .with_surface(&checked)
        .verify(&pc, &range, None, &mut |_| {})
        .await
        .report
        .unwrap();
    assert!(v.clean(), "{v:?}");

    // The CLI will not repair an s3:// output without the view to take days off first.
    let out = std::process::Command::new(BIN)
        .args([
            "verify",
            "--org",
            "acme",
            "--hub-url",
            &hub.url(),
            "--repair",
            "--since",
            "2d",
        ])
        .args([
            "--output",
            &format!("s3://{bucket}/dockerhub-audit"),
            "--checkpoint",
            &format!("dynamodb://{table}"),
        ])
        .env("DOCKERHUB_USERNAME", "acme")
        .env("DOCKERHUB_TOKEN", SECRET)
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--glue-database"));

    // A repair's reopen (through the collector's view-only surface) takes a day out.
    let day = *listed.iter().next().unwrap();
    let collector_side = GlueSurface::view_only(glue.clone(), view_name());
    assert!(collector_side.reopen(&org(), day).await.unwrap());
    assert!(!collector_side.reopen(&org(), day).await.unwrap(), "idempotent");
    assert!(!surface.days(&org()).await.unwrap().contains(&day));
    let (sql, _) = surface.view_sql().await.unwrap();
    assert!(
        !sql.contains(&format!("dt = '{day}'")) && !sql.contains(&format!("BETWEEN '{day}'")),
        "{sql}"
    );
    // The next run compacts it again.
    let again = compactor
        .handle(serde_json::json!({"org": "acme"}), t0() + Duration::minutes(15))
        .await;
    assert_eq!(again["compacted"].as_array().unwrap().len(), 1, "{again}");
    assert!(surface.days(&org()).await.unwrap().contains(&day));
    drop((emu, hub));
}
