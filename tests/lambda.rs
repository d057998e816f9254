//! The Lambda binary driven through the real `lambda_runtime` loop: a local Lambda Runtime
//! API serves it invocations, the Docker Hub emulator and moto (S3, DynamoDB, Secrets
//! Manager) serve it over HTTP, and what it answers, writes and prints is checked.

mod common;

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use common::aws::*;
use common::*;
use dockerhub_audit::clock::SystemClock;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_dockerhub-audit-lambda");

#[derive(Clone)]
struct RuntimeApi {
    queue: Arc<Mutex<VecDeque<Value>>>,
    wake: Arc<tokio::sync::Notify>,
    answers: mpsc::UnboundedSender<(String, String, Value)>,
}

async fn next(State(api): State<RuntimeApi>) -> impl IntoResponse {
    loop {
        let event = api.queue.lock().unwrap().pop_front();
        if let Some(event) = event {
            let id = format!("req-{}", event["_n"]);
            let mut payload = event.clone();
            payload.as_object_mut().unwrap().remove("_n");
            let deadline = chrono::Utc::now().timestamp_millis() + 120_000;
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            h.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline));
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:dockerhub-audit"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (StatusCode::OK, h, payload.to_string());
        }
        api.wake.notified().await;
    }
}

async fn respond(
    State(api): State<RuntimeApi>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.answers.send((id, kind, v));
    StatusCode::ACCEPTED
}

/// One EMF document is valid when every declared metric is a number at the top level and
/// every dimension is a string there, with a millisecond timestamp.
fn assert_valid_emf(doc: &Value) {
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
        "{doc}"
    );
    // Empty for a healthy run: metrics are sent only when not zero (their cost is per hour).
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
    for d in directives {
        assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
        for set in d["Dimensions"].as_array().unwrap() {
            for dim in set.as_array().unwrap() {
                assert!(doc[dim.as_str().unwrap()].is_string(), "dimension {dim} missing");
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "metric {name} missing");
            let unit = m["Unit"].as_str().unwrap();
            assert!(["Count", "Seconds", "Milliseconds"].contains(&unit), "{unit}");
        }
    }
}

/// Starts the Lambda binary against a Runtime API served here, with moto and `env`, hands
/// it `events` one by one, and returns each answer (request id, kind, body) with what it
/// printed on stdout and stderr.
async fn serve(events: &[Value], env: &[(&str, &str)]) -> (Vec<(String, String, Value)>, String, String) {
    let (tx, mut answers) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        queue: Arc::default(),
        wake: Arc::default(),
        answers: tx,
    };
    api.queue.lock().unwrap().extend(events.iter().cloned());
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = lambda_command(&addr.to_string(), env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the Lambda binary starts");
    // Drained while it runs: trace logging fills a pipe's buffer in no time.
    let drain = |r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut r = r;
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut r, &mut s);
            s
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().unwrap()));
    let err_reader = drain(Box::new(child.stderr.take().unwrap()));
    api.wake.notify_waiters();

    let mut got = Vec::new();
    for _ in 0..events.len() {
        let a = tokio::time::timeout(Duration::from_secs(120), answers.recv())
            .await
            .expect("an answer")
            .unwrap();
        api.wake.notify_waiters();
        got.push(a);
    }
    let _ = child.kill();
    let _ = child.wait();
    (got, out_reader.join().unwrap(), err_reader.join().unwrap())
}

/// The Lambda binary with only the environment a Lambda gives it (the Runtime API at
/// `runtime_api`), moto as its AWS, and `env`.
fn lambda_command(runtime_api: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "dockerhub-audit")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        // The stack's Organizations, as the template passes them: every org these tests
        // name but `acmecorp`, which stands for one the stack was not deployed for.
        .env(
            "DOCKERHUB_AUDIT_ORGS",
            "acme,refused,downhub,nosecret,badjson,forbidden",
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What the template would create, on moto: a bucket, a table, and org acme's secret.
struct Deployment {
    s3: aws_sdk_s3::Client,
    bucket: String,
    table: String,
    /// The secret name pattern (`…/{org}`).
    pattern: String,
}

async fn deployment(what: &str) -> Deployment {
    let cfg = sdk(&moto()).await;
    let (bucket, table) = (unique(what), unique(what));
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let pattern = format!("{}/{{org}}", unique("secrets"));
    put_secret(
        &cfg,
        &pattern.replace("{org}", "acme"),
        &format!(r#"{{"username": "acme", "token": "{SECRET}"}}"#),
    )
    .await;
    Deployment {
        s3: s3c,
        bucket,
        table,
        pattern,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_runs_invocations_through_the_runtime_api() {
    let Deployment {
        s3: s3c,
        bucket,
        table,
        pattern,
    } = deployment("lambda").await;
    let mut ecfg = emulator_config(900, 20, 41);
    ecfg.page_cap = 50;
    let (emu, hub) = start(ecfg, Arc::new(SystemClock)).await;

    let events = [
        json!({"_n": 1, "org": "acme", "lookback": "30d"}),
        json!({"_n": 2, "org": "acme"}),
        json!({"_n": 3, "org": "Not An Org"}),
        json!({"_n": 4, "org": "acme", "colour": "blue"}),
        json!({"_n": 5, "org": "acmecorp"}),
        json!({"_n": 6, "org": "acme", "overlap": "0s"}),
        // The watchdog: acme is fresh, `never` (deployed too) never ran.
        json!({"_n": 7, "watch": true}),
    ];
    let (got, stdout, stderr) = serve(
        &events,
        &[
            ("DOCKERHUB_AUDIT_TABLE", table.as_str()),
            ("DOCKERHUB_AUDIT_BUCKET", bucket.as_str()),
            ("DOCKERHUB_AUDIT_SECRET_PATTERN", pattern.as_str()),
            ("DOCKERHUB_AUDIT_HUB_URL", hub.url().as_str()),
            // Inputs may only reach further back than the stack's lookback.
            ("DOCKERHUB_AUDIT_LOOKBACK", "1d"),
            ("DOCKERHUB_AUDIT_ORGS", "acme,never"),
            // Per-org alarms on: each run publishes its org's WatermarkAge.
            ("DOCKERHUB_AUDIT_ORG_METRICS", "watermark"),
        ],
    )
    .await;

    // 1: the backfill; 2: incremental, nothing new; 3-6: bad input, answered, not retried
    // (5: an org the stack was not deployed for; 6: an override that could skip events).
    let (id, kind, first) = &got[0];
    assert_eq!(
        (id.as_str(), kind.as_str()),
        ("req-1", "response"),
        "{first}\n{stderr}"
    );
    assert_eq!(first["ok"], true);
    assert_eq!(first["caught_up"], true);
    assert_eq!(
        first["events_written"].as_u64().unwrap() as usize,
        emu.all_events().len()
    );
    // The CLI's `--log-format json` summary has the same keys as the Lambda's answer: one
    // summary type serialized by both shells.
    let cli_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dockerhub-audit"))
        .args([
            "poll",
            "--org",
            "acme",
            "--lookback",
            "30d",
            "--log-format",
            "json",
            "--hub-url",
        ])
        .arg(hub.url())
        .arg("--output")
        .arg(cli_dir.path())
        .env("DOCKERHUB_USERNAME", "acme")
        .env("DOCKERHUB_TOKEN", SECRET)
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&cli),
        keys(first),
        "the CLI's summary and the Lambda's answer differ in keys"
    );
    assert_eq!(cli["events_written"], first["events_written"]);
    let (_, kind, second) = &got[1];
    assert_eq!(kind, "response");
    assert_eq!(second["events_written"], 0);
    assert!(second["duplicates_dropped"].as_u64().unwrap() <= first["events_written"].as_u64().unwrap());
    for (id, kind, v) in &got[2..6] {
        assert_eq!(kind, "response", "{id}: a bad input is not worth a retry");
        assert_eq!(v["ok"], false, "{id}: {v}");
        assert!(v["error"].as_str().unwrap().len() > 10);
    }
    assert_exact_s3(
        &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
        &s3c,
        &bucket,
        "dockerhub-audit/",
    )
    .await;

    // EMF: one valid document per invocation, bad inputs included, on stdout.
    let emf: Vec<Value> = stdout
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).expect("EMF is JSON"))
        .collect();
    assert_eq!(emf.len(), events.len(), "{stdout}");
    for doc in &emf {
        assert_valid_emf(doc);
    }
    let per_org = |doc: &Value| dockerhub_audit::lambda::metrics::declared(doc, &json!([["org"]]));
    assert_eq!(emf[0]["org"], "acme");
    assert_eq!(emf[0]["EventsWritten"], first["events_written"]);
    assert_eq!(emf[0]["RunsFailed"], 0);
    assert_eq!(
        per_org(&emf[0]),
        ["WatermarkAge"],
        "a healthy run costs one metric per org"
    );
    assert!(emf[1]["WatermarkAge"].as_f64().unwrap() < 3600.0);
    // An input without a valid org: failed, published without the org dimension.
    assert_eq!(emf[2]["org"], "-");
    assert_eq!(emf[2]["RunsFailed"], 1);
    assert!(per_org(&emf[2]).is_empty());
    // A valid org with a bad field: failed for that org, with the stored data's age.
    assert_eq!(emf[3]["org"], "acme");
    assert_eq!(per_org(&emf[3]), ["WatermarkAge", "RunsFailed"]);
    assert!(emf[3]["WatermarkAge"].as_f64().unwrap() < 3600.0);
    // An org the stack was not deployed for: refused, saying so, with no metric of its
    // own, and no checkpoint item was created for it.
    assert!(
        got[4].2["error"]
            .as_str()
            .unwrap()
            .contains("acmecorp is not one of the organizations this stack collects"),
        "{}",
        got[4].2
    );
    assert_eq!(emf[4]["org"], "-");
    assert!(per_org(&emf[4]).is_empty());
    let item = aws_sdk_dynamodb::Client::new(&sdk(&moto()).await)
        .get_item()
        .table_name(&table)
        .key(
            "org",
            aws_sdk_dynamodb::types::AttributeValue::S("acmecorp".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(item.item().is_none(), "a checkpoint item for acmecorp: {item:?}");
    assert!(got[5].2["error"]
        .as_str()
        .unwrap()
        .contains("\"overlap\" is not accepted"));
    // 7: the watch, over the table on moto: exactly the org that never ran.
    assert_eq!(got[6].2["ok"], true, "{}", got[6].2);
    assert_eq!(
        got[6].2["stale"],
        json!([{"org": "never", "why": {"kind": "never_ran"}, "watermark": null}])
    );
    assert_eq!(emf[6]["mode"], "watch");
    assert_eq!(emf[6]["StaleOrgs"], 1);
    assert!(
        emf[6]["OldestWatermarkAge"].as_f64().unwrap() < 3600.0,
        "{}",
        emf[6]
    );
    // Structured logs carry the request id and the org; no secret anywhere.
    let logs: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let carries = |l: &Value| {
        let spans = l["spans"].as_array().cloned().unwrap_or_default();
        spans
            .iter()
            .chain(std::iter::once(&l["span"]))
            .any(|s| s["request_id"] == "req-1" && s["org"] == "acme")
    };
    assert!(logs.iter().any(carries), "{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET) && !stderr.contains("eyJ"));
}

/// A canary token driven through the Lambda with every log on (`RUST_LOG=trace`, the AWS
/// SDK's and the HTTP stack's included), on the success path and every failure path: a
/// refused login, a missing secret, a secret that is not JSON, a 403, a Docker Hub that is
/// down, and a checkpoint table that does not exist. No token, and no part of the secret,
/// appears in logs, answers, metrics, objects or checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_leaks_with_every_log_on_through_any_path() {
    use dockerhub_audit_emulator::{start_many, Emulator, Fault};
    let cfg = sdk(&moto()).await;
    let (bucket, table) = (unique("canary"), unique("canary"));
    let s3c = s3(&cfg);
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    let pattern = format!("{}/{{org}}", unique("canary"));
    let canary = |tag: &str| format!("dckr_oat_canary_{tag}_{:x}", std::process::id());
    let emulated = |org: &str, secret: String| {
        let mut e = emulator_config(120, 3, 51);
        e.org = org.into();
        e.username = org.into();
        e.secret = secret;
        e
    };
    // acme: works. refused: its secret is not the one the Hub accepts. down: answers 503.
    let down = {
        let mut e = emulated("downhub", canary("down"));
        e.fault_rate = 1.0;
        e.fault_kinds = vec![Fault::ServerError(503)];
        e
    };
    let emulators = vec![
        Emulator::new(emulated("acme", canary("ok")), Arc::new(SystemClock)),
        Emulator::new(
            emulated("refused", "dckr_oat_the_real_one".into()),
            Arc::new(SystemClock),
        ),
        Emulator::new(down, Arc::new(SystemClock)),
    ];
    let hub = start_many(emulators, 0).await.unwrap();
    let secret = |org: &str, token: &str| format!(r#"{{"username": "{org}", "token": "{token}"}}"#);
    for (org, value) in [
        ("acme", secret("acme", &canary("ok"))),
        ("refused", secret("refused", &canary("refused"))),
        ("downhub", secret("downhub", &canary("down"))),
        // Not JSON: its text must not be echoed by the error.
        ("badjson", format!("token={}", canary("badjson"))),
        // Valid credentials for acme, used on an org they may not read: 403.
        ("forbidden", secret("acme", &canary("ok"))),
    ] {
        put_secret(&cfg, &pattern.replace("{org}", org), &value).await;
    }
    let events: Vec<Value> = [
        "acme",
        "refused",
        "refused",
        "downhub",
        "nosecret",
        "badjson",
        "forbidden",
    ]
    .iter()
    .enumerate()
    .map(|(n, org)| json!({"_n": n + 1, "org": org, "lookback": "3d"}))
    .collect();
    let hub_url = hub.url();
    let env = vec![
        ("DOCKERHUB_AUDIT_LOOKBACK", "1d"),
        ("DOCKERHUB_AUDIT_TABLE", table.as_str()),
        ("DOCKERHUB_AUDIT_BUCKET", bucket.as_str()),
        ("DOCKERHUB_AUDIT_SECRET_PATTERN", pattern.as_str()),
        ("DOCKERHUB_AUDIT_HUB_URL", hub_url.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let (got, stdout, stderr) = serve(&events, &env).await;
    // The last invocation with a table that does not exist (every AWS error path).
    let mut no_table = env.clone();
    no_table.retain(|(k, _)| *k != "DOCKERHUB_AUDIT_TABLE");
    no_table.push(("DOCKERHUB_AUDIT_TABLE", "no-such-table"));
    let (got2, stdout2, stderr2) = serve(&[json!({"_n": 1, "org": "acme"})], &no_table).await;

    // The paths were really taken.
    assert_eq!(got[0].2["ok"], true, "{}", got[0].2);
    assert!(got[0].2["events_written"].as_u64().unwrap() > 100);
    for (i, what) in [
        (1, "refused"),
        (2, "not tried again"),
        (4, "nosecret"),
        (5, "is not JSON"),
        (6, "403"),
    ] {
        let answer = &got[i].2;
        assert_eq!(answer["ok"], false, "{what}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(what),
            "{what}: {answer}"
        );
    }
    assert_eq!(
        got[3].1, "error",
        "a Hub that is down is worth a retry: {:?}",
        got[3]
    );
    assert_eq!(
        got2[0].1, "error",
        "a missing table is worth a retry: {:?}",
        got2[0]
    );
    assert!(
        stderr.contains("TRACE") || stderr.contains("\"level\":\"TRACE\""),
        "trace logging was on"
    );
    assert!(
        stderr.contains("aws_smithy") || stderr.contains("aws_sdk"),
        "the SDK logged too"
    );

    let mut everything = format!("{stdout}\n{stderr}\n{stdout2}\n{stderr2}\n{got:?}\n{got2:?}");
    for (_, records) in read_all(&s3c, &bucket, "").await {
        everything.push_str(&format!("{records:?}"));
    }
    let items = aws_sdk_dynamodb::Client::new(&cfg)
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    everything.push_str(&format!("{:?}", items.items()));
    for tag in ["ok", "refused", "down", "badjson"] {
        assert!(!everything.contains(&canary(tag)), "the {tag} token leaked");
        assert!(
            !everything.contains(&format!("canary_{tag}")),
            "part of the {tag} token leaked"
        );
    }
    assert!(!everything.contains("eyJ"), "a bearer token (JWT) leaked");
    hub.shutdown();
}

/// `{"org": "acme", "verify": "2d"}` through the runtime: after an object of the last two
/// days is lost, a verify finds exactly its events missing (EventsMissing, per org), a
/// verify with `"repair": true` writes them again, and a third finds nothing missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_verifies_and_repairs_the_last_two_days() {
    let Deployment {
        s3: s3c,
        bucket,
        table,
        pattern,
    } = deployment("lverify").await;
    let mut ecfg = emulator_config(600, 6, 43);
    ecfg.page_cap = 50;
    let (emu, hub) = start(ecfg, Arc::new(SystemClock)).await;
    let url = hub.url();
    let env = [
        ("DOCKERHUB_AUDIT_TABLE", table.as_str()),
        ("DOCKERHUB_AUDIT_BUCKET", bucket.as_str()),
        ("DOCKERHUB_AUDIT_SECRET_PATTERN", pattern.as_str()),
        ("DOCKERHUB_AUDIT_HUB_URL", url.as_str()),
        ("DOCKERHUB_AUDIT_BATCH_EVENTS", "40"),
    ];
    let (got, _, stderr) = serve(&[json!({"org": "acme"})], &env).await;
    assert_eq!(got[0].2["ok"], true, "{stderr}");

    // With objects of 40 events, some lie wholly inside the window at any time of day.
    let (lost_key, lost) = object_inside_two_days(&s3c, &bucket, "dockerhub-audit/org=acme/dt=")
        .await
        .expect("an object inside the last two days");
    s3c.delete_object()
        .bucket(&bucket)
        .key(&lost_key)
        .send()
        .await
        .unwrap();
    let n = lost.len() as u64;

    let events = [
        json!({"org": "acme", "verify": "2d"}),
        json!({"org": "acme", "verify": "2d", "repair": true}),
        json!({"org": "acme", "verify": "2d"}),
        json!({"org": "acme", "repair": true}),
    ];
    let (got, stdout, stderr) = serve(&events, &env).await;
    let answers: Vec<&Value> = got
        .iter()
        .map(|(_, kind, v)| {
            assert_eq!(kind, "response", "{v}\n{stderr}");
            v
        })
        .collect();
    assert_eq!(
        (answers[0]["ok"].clone(), answers[0]["clean"].clone()),
        (json!(true), json!(false)),
        "{}",
        answers[0]
    );
    assert_eq!(
        (answers[0]["missing"].as_u64(), answers[0]["repaired"].as_u64()),
        (Some(n), Some(0))
    );
    assert_eq!(
        (answers[1]["missing"].as_u64(), answers[1]["repaired"].as_u64()),
        (Some(n), Some(n))
    );
    assert_eq!(answers[1]["clean"], true);
    assert_eq!(
        (answers[2]["missing"].as_u64(), answers[2]["clean"].clone()),
        (Some(0), json!(true))
    );
    assert!(answers[2]["at_docker_hub"].as_u64().unwrap() >= n);
    assert_eq!(answers[2]["at_docker_hub"], answers[2]["stored"]);
    assert_eq!(
        answers[3]["ok"], false,
        "repair without verify is refused: {}",
        answers[3]
    );
    assert!(stderr.contains("verified a day"), "{stderr}");

    let emf: Vec<Value> = stdout
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).expect("EMF is JSON"))
        .collect();
    assert_eq!(emf.len(), events.len(), "{stdout}");
    let per_org = |doc: &Value| dockerhub_audit::lambda::metrics::declared(doc, &json!([["org"]]));
    for doc in &emf {
        assert_valid_emf(doc);
    }
    assert_eq!(emf[0]["EventsMissing"], n);
    assert!(per_org(&emf[0]).contains(&"EventsMissing".to_string()));
    assert_eq!(
        (
            emf[1]["EventsMissing"].as_u64(),
            emf[1]["EventsRepaired"].as_u64()
        ),
        (Some(n), Some(n))
    );
    assert_eq!(emf[2]["EventsMissing"], 0);
    assert!(
        per_org(&emf[2]).is_empty(),
        "no per-org alarms: no per-org metric on a clean run"
    );
    assert_exact_s3(
        &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
        &s3c,
        &bucket,
        "dockerhub-audit/",
    )
    .await;
}

/// Starts the Lambda binary with `env` and no Runtime API answering; returns how it ended
/// and what it printed on stderr (for a start that must fail).
fn start_only(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    // Nothing listens at the Runtime API: a start that must fail never reaches it.
    let out = lambda_command("127.0.0.1:9", env)
        .stdin(Stdio::null())
        .output()
        .expect("the Lambda binary runs");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_from_s3_choose_the_alerts_and_bad_ones_stop_the_start() {
    let Deployment {
        s3: s3c,
        bucket,
        table,
        pattern,
    } = deployment("rules").await;
    let cfg = sdk(&moto()).await;
    // The rules file: only the built-in OIDC rule, and one of our own on pushes by tokens.
    let rules = r#"
include_defaults = true
disable = ["repo-made-public", "member-made-owner", "owners-team-member-added", "sso-connection-deleted",
  "sso-enforcement-off", "scim-off", "registry-access-disabled", "registry-access-registry-added",
  "image-access-changed", "access-token-created", "domain-deleted", "org-settings-changed"]

[[rule]]
id = "push-by-release-bot"
title = "The release bot pushed"
severity = "low"
action = "repo.tag.push"
when = { actor = "release-bot" }
why = "testing rules from S3"
"#;
    s3c.put_object()
        .bucket(&bucket)
        .key("config/rules.toml")
        .body(rules.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    // The bus and a queue its rule delivers to.
    let bus = unique("bus");
    let queue = bus_to_queue(&cfg, &bus).await;

    let mut ecfg = emulator_config(1500, 20, 43);
    ecfg.page_cap = 50;
    let (emu, hub) = start(ecfg, Arc::new(SystemClock)).await;
    let rules_uri = format!("s3://{bucket}/config/rules.toml");
    let hub_url = hub.url();
    let env = [
        ("DOCKERHUB_AUDIT_TABLE", table.as_str()),
        ("DOCKERHUB_AUDIT_BUCKET", bucket.as_str()),
        ("DOCKERHUB_AUDIT_SECRET_PATTERN", pattern.as_str()),
        ("DOCKERHUB_AUDIT_HUB_URL", hub_url.as_str()),
        ("DOCKERHUB_AUDIT_ALERT_BUS", bus.as_str()),
        ("DOCKERHUB_AUDIT_ALERT_RULES_S3", rules_uri.as_str()),
        ("DOCKERHUB_AUDIT_LOOKBACK", "1d"),
    ];
    let (got, stdout, stderr) = serve(&[json!({"org": "acme", "lookback": "30d"})], &env).await;
    let answer = &got[0].2;
    assert_eq!(answer["ok"], true, "{answer}\n{stderr}");

    // Exactly the alerts of the two rules, from the stored records.
    let stored = read_all(&s3c, &bucket, "dockerhub-audit/").await;
    let mut want: Vec<(String, String)> = stored
        .iter()
        .flat_map(|(_, records)| records.iter())
        .filter_map(|r| {
            let action = r["action"].as_str().unwrap();
            let rule = if action.starts_with("oidc.connection.") {
                "oidc-connection-changed"
            } else if action == "repo.tag.push" && r["actor"] == "release-bot" {
                "push-by-release-bot"
            } else {
                return None;
            };
            Some((rule.to_string(), r["event_id"].as_str().unwrap().to_string()))
        })
        .collect();
    want.sort();
    assert!(want.iter().any(|(r, _)| r == "push-by-release-bot"), "{want:?}");
    assert!(
        want.iter().any(|(r, _)| r == "oidc-connection-changed"),
        "{want:?}"
    );
    let mut got_alerts: Vec<(String, String)> = drain(&cfg, &queue)
        .await
        .iter()
        .map(|e| (s_of(&e["detail"]["rule"]["id"]), s_of(&e["detail"]["event_id"])))
        .collect();
    got_alerts.sort();
    assert_eq!(
        got_alerts, want,
        "the queue holds other alerts than the S3 rules raise"
    );
    assert_eq!(answer["alerts_raised"], want.len());
    let emf: Value = serde_json::from_str(stdout.lines().find(|l| l.contains("\"_aws\"")).unwrap()).unwrap();
    assert_eq!(
        emf["AlertsRaised"],
        want.len(),
        "a field of the line for Logs Insights"
    );
    assert!(
        !dockerhub_audit::lambda::metrics::declared(&emf, &json!([["org"]]))
            .contains(&"AlertsRaised".to_string()),
        "not a metric: no alarm needs it"
    );
    hub.shutdown();
    drop(emu);

    // A rules file that cannot be used stops the start, saying what and where.
    let base = [
        ("DOCKERHUB_AUDIT_TABLE", table.as_str()),
        ("DOCKERHUB_AUDIT_BUCKET", bucket.as_str()),
        ("DOCKERHUB_AUDIT_ALERT_BUS", bus.as_str()),
    ];
    let missing = format!("s3://{bucket}/config/none.toml");
    // A rules object far larger than any rules file is refused, not read into memory.
    let mut huge = b"# padding\n".repeat(200_000);
    huge.extend_from_slice(b"include_defaults = true\n");
    s3c.put_object()
        .bucket(&bucket)
        .key("config/huge.toml")
        .body(huge.into())
        .send()
        .await
        .unwrap();
    let huge = format!("s3://{bucket}/config/huge.toml");
    for (extra, says) in [
        (
            ("DOCKERHUB_AUDIT_ALERT_RULES_S3", huge.as_str()),
            "are larger than 1024 KiB",
        ),
        (
            ("DOCKERHUB_AUDIT_ALERT_RULES", "[[rule]]\nid = \"x\"\n"),
            "missing field",
        ),
        (
            ("DOCKERHUB_AUDIT_ALERT_RULES_S3", missing.as_str()),
            "cannot read the alert rules at s3://",
        ),
        (
            ("DOCKERHUB_AUDIT_ALERT_RULES_S3", "bucket-only"),
            "is not s3://bucket/key",
        ),
    ] {
        let mut env = base.to_vec();
        env.push(extra);
        let (status, stderr) = start_only(&env);
        assert!(!status.success(), "{extra:?} started");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
    }
}

fn s_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}
