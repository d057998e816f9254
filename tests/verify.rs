//! `verify`, `--repair` and `checkpoint rebuild` as a user runs them: the binary against the
//! emulator over real HTTP, on a local output and on S3 + DynamoDB (moto). What each run
//! reports is checked against what was done to the output, and the output against the
//! emulator's events (exact multisets).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::aws::*;
use common::*;
use dockerhub_audit::clock::SystemClock;
use dockerhub_audit::inspect;
use dockerhub_audit_emulator::Emulator;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_dockerhub-audit");

/// Where a test's output and checkpoints are.
enum Store {
    Local(PathBuf),
    Aws {
        bucket: String,
        table: String,
        s3: aws_sdk_s3::Client,
    },
}

impl Store {
    fn args(&self) -> Vec<String> {
        match self {
            Store::Local(dir) => vec!["--output".into(), dir.to_string_lossy().into_owned()],
            Store::Aws { bucket, table, .. } => vec![
                "--output".into(),
                format!("s3://{bucket}/audit"),
                "--checkpoint".into(),
                format!("dynamodb://{table}"),
            ],
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--org", "acme"])
            .args(self.args())
            .env("DOCKERHUB_USERNAME", "acme")
            .env("DOCKERHUB_TOKEN", SECRET)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        if matches!(self, Store::Aws { .. }) {
            c.env("AWS_ENDPOINT_URL", moto());
        }
        c
    }

    /// Object keys (relative to the output), sorted.
    async fn keys(&self) -> Vec<String> {
        match self {
            Store::Local(dir) => inspect::objects(dir)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
                .collect(),
            Store::Aws { bucket, s3, .. } => {
                let mut keys: Vec<String> = read_all(s3, bucket, "audit/org=")
                    .await
                    .into_iter()
                    .map(|(k, _)| k["audit/".len()..].to_string())
                    .collect();
                keys.sort();
                keys
            }
        }
    }

    async fn event_ids(&self, key: &str) -> Vec<String> {
        let bytes = match self {
            Store::Local(dir) => std::fs::read(dir.join(key)).unwrap(),
            Store::Aws { bucket, s3, .. } => get_bytes(s3, bucket, &format!("audit/{key}")).await,
        };
        dockerhub_audit::event::encode::decode(&bytes)
            .unwrap()
            .iter()
            .map(|r| r["event_id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn delete(&self, key: &str) {
        match self {
            Store::Local(dir) => std::fs::remove_file(dir.join(key)).unwrap(),
            Store::Aws { bucket, s3, .. } => {
                s3.delete_object()
                    .bucket(bucket)
                    .key(format!("audit/{key}"))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn copy(&self, key: &str, to: &str) {
        match self {
            Store::Local(dir) => {
                std::fs::copy(dir.join(key), dir.join(to)).unwrap();
            }
            Store::Aws { bucket, s3, .. } => {
                s3.copy_object()
                    .bucket(bucket)
                    .copy_source(format!("{bucket}/audit/{key}"))
                    .key(format!("audit/{to}"))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn assert_exact(&self, emu: &Emulator) {
        let want = expected(emu, chrono::Utc::now() - chrono::Duration::minutes(1));
        match self {
            Store::Local(dir) => assert_exact(&want, dir),
            Store::Aws { bucket, s3, .. } => assert_exact_s3(&want, s3, bucket, "audit/").await,
        }
    }
}

fn run(c: &mut Command) -> (Option<i32>, String, String) {
    let o: Output = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn verify(store: &Store, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["verify", "--hub-url", url, "--retry-base", "10ms"];
    if !extra.contains(&"--since") && !extra.contains(&"--from") {
        args.extend(["--since", "30d"]);
    }
    args.extend_from_slice(extra);
    run(&mut store.cmd(&args))
}

fn poll(store: &Store, url: &str) -> String {
    let (code, out, err) = run(&mut store.cmd(&["poll", "--hub-url", url, "--batch-events", "80"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    out
}

/// The JSON lines of `verify --log-format json`: per day, then the summary.
fn json_lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut days: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .collect();
    let summary = days.pop().expect("a summary line");
    (days.into_iter().map(|d| d["day"].clone()).collect(), summary)
}

/// Clean, then one object lost (reported per day, exactly its events, exit 1), repaired
/// (exit 0, the same object again), then a copy under another name (duplicated, with both
/// keys, exit 1). The output stays exact throughout except for the copy.
async fn verify_drill(store: Store) {
    let (emu, hub) = start(emulator_config(1200, 20, 91), Arc::new(SystemClock)).await;
    let url = hub.url();
    poll(&store, &url);

    let (code, out, err) = verify(&store, &url, &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("summary acme: ") && last.ends_with("; OK"),
        "{out}"
    );
    assert!(last.contains(" 0 missing, 0 duplicated, 0 unexpected"), "{last}");

    let keys = store.keys().await;
    let lost = keys[keys.len() / 2].clone();
    let lost_ids = store.event_ids(&lost).await;
    let day = &lost["org=acme/dt=".len()..][..10];
    store.delete(&lost).await;
    let (code, out, err) = verify(&store, &url, &["--log-format", "json"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("--repair"), "{err}");
    let (days, summary) = json_lines(&out);
    assert_eq!(summary["summary"]["missing"], json!(lost_ids.len()));
    assert_eq!(summary["ok"], false);
    for d in &days {
        let want = if d["day"] == day { lost_ids.len() } else { 0 };
        assert_eq!(d["missing"], json!(want), "{d}");
    }
    assert!(
        !store.keys().await.contains(&lost),
        "nothing is written without --repair"
    );

    let (code, out, err) = verify(&store, &url, &["--repair", "--glue-database", "none"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("{} repaired", lost_ids.len())), "{out}");
    assert!(
        store.keys().await.contains(&lost),
        "the same events under the same key"
    );
    let mut again = store.event_ids(&lost).await;
    again.sort();
    let mut want = lost_ids.clone();
    want.sort();
    assert_eq!(again, want);
    let (code, out, _) = verify(&store, &url, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().last().unwrap().contains(" 0 missing"), "{out}");
    poll(&store, &url);
    store.assert_exact(&emu).await;

    let copied = keys[1].clone();
    let copy = copied.replace(".json.gz", "-copy.json.gz");
    store.copy(&copied, &copy).await;
    let n = store.event_ids(&copied).await.len();
    let (code, out, err) = verify(
        &store,
        &url,
        &["--repair", "--glue-database", "none", "--log-format", "json"],
    );
    assert_eq!(code, Some(1), "{out}\n{err}");
    let (days, summary) = json_lines(&out);
    assert_eq!(summary["summary"]["duplicated"], json!(n));
    assert_eq!(summary["summary"]["missing"], 0);
    let groups: Vec<&Value> = days
        .iter()
        .flat_map(|d| d["duplicates"].as_array().unwrap())
        .collect();
    assert_eq!(groups.len(), 1, "{out}");
    assert_eq!(groups[0]["events"], json!(n));
    let mut both = vec![copied.clone(), copy.clone()];
    both.sort();
    assert_eq!(groups[0]["keys"], json!(both));
    let (code, out, _) = verify(&store, &url, &[]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains(&format!("{n} event(s) stored in each of: {}", both.join(", "))),
        "{out}"
    );

    // Usage errors exit 2.
    let (code, _, err) = verify(&store, &url, &["--until", "2020-01-01"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(&mut store.cmd(&["verify", "--since", "soon"]));
    assert_eq!(code, Some(2));
    let (code, _, err) = verify(&store, &url, &["--from", "2099-01-01"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nothing to verify"), "{err}");
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_repair_on_a_local_output() {
    let dir = tempfile::tempdir().unwrap();
    verify_drill(Store::Local(dir.path().to_path_buf())).await;
}

async fn aws_store() -> Store {
    let cfg = sdk(&moto()).await;
    let s3c = s3(&cfg);
    let (bucket, table) = (unique("verify"), unique("verify"));
    create_bucket(&s3c, &bucket).await;
    create_table(&cfg, &table).await;
    Store::Aws {
        bucket,
        table,
        s3: s3c,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "integration"),
    ignore = "needs moto: cargo test --features integration"
)]
async fn verify_and_repair_on_s3_and_dynamodb() {
    verify_drill(aws_store().await).await;
}

/// New events, visible now, two minutes old (inside the next poll's window).
fn add_events(emu: &Emulator, tag: &str, n: usize) {
    let now = chrono::Utc::now();
    for i in 0..n {
        let t = now - chrono::Duration::minutes(2) - chrono::Duration::seconds(i as i64);
        emu.add_event(
            json!({"account": "acme", "action": "repo.tag.push", "actor": tag, "name": format!("acme/r{i}"),
                   "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
            now - chrono::Duration::hours(1),
        );
    }
}

/// The local checkpoint file of org acme.
fn checkpoint_file(dir: &Path) -> PathBuf {
    dir.join("_checkpoints").join("acme.json")
}

/// A checkpoint deleted, restored from an older copy, or replaced by a second store: each
/// next run says it rebuilt the checkpoint from the output, and stores nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_restored_or_second_checkpoint_stores_nothing_twice() {
    let (emu, hub) = start(emulator_config(900, 10, 93), Arc::new(SystemClock)).await;
    let url = hub.url();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(dir.path().to_path_buf());
    poll(&store, &url);
    let backup = std::fs::read(checkpoint_file(dir.path())).unwrap();
    add_events(&emu, "a", 20);
    poll(&store, &url);

    // Restored from the older copy.
    std::fs::write(checkpoint_file(dir.path()), &backup).unwrap();
    add_events(&emu, "b", 10);
    let out = poll(&store, &url);
    assert!(out.contains("rebuilt the checkpoint"), "{out}");
    store.assert_exact(&emu).await;

    // Deleted.
    std::fs::remove_file(checkpoint_file(dir.path())).unwrap();
    add_events(&emu, "c", 10);
    let out = poll(&store, &url);
    assert!(
        out.contains("there is no checkpoint of acme") && out.contains("rebuilt"),
        "{out}"
    );
    store.assert_exact(&emu).await;

    // A second checkpoint store on the same output, then the first again.
    let other = tempfile::tempdir().unwrap();
    for (i, cp) in [other.path(), &dir.path().join("_checkpoints")]
        .into_iter()
        .enumerate()
    {
        add_events(&emu, &format!("d{i}"), 10);
        let (code, out, err) = run(Command::new(BIN)
            .args(["poll", "--org", "acme", "--hub-url", &url, "--output"])
            .arg(dir.path())
            .arg("--checkpoint")
            .arg(cp)
            .env("DOCKERHUB_USERNAME", "acme")
            .env("DOCKERHUB_TOKEN", SECRET)
            .env_remove("RUST_LOG"));
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("rebuilt"), "{out}");
        store.assert_exact(&emu).await;
    }

    // Explicitly: `checkpoint rebuild`, then `status` shows what it rebuilt, and a poll adds
    // only what is new.
    std::fs::remove_file(checkpoint_file(dir.path())).unwrap();
    let (code, out, err) = run(&mut store.cmd(&["checkpoint", "rebuild"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("rebuilt the checkpoint from") && out.contains("id(s) remembered"),
        "{out}"
    );
    let (_, status, _) = run(&mut store.cmd(&["status"]));
    assert!(
        status.contains("watermark:") && !status.contains("none yet"),
        "{status}"
    );
    add_events(&emu, "e", 5);
    let out = poll(&store, &url);
    assert!(
        out.contains(" 5 events written") && !out.contains("rebuilt"),
        "{out}"
    );
    store.assert_exact(&emu).await;
    hub.shutdown();
}

/// The same on S3 + DynamoDB: the checkpoint item deleted, then a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "integration"),
    ignore = "needs moto: cargo test --features integration"
)]
async fn a_lost_checkpoint_on_dynamodb_is_rebuilt_from_s3() {
    let store = aws_store().await;
    let (emu, hub) = start(emulator_config(600, 10, 95), Arc::new(SystemClock)).await;
    let url = hub.url();
    poll(&store, &url);
    let Store::Aws { table, .. } = &store else {
        unreachable!()
    };
    let cfg = sdk(&moto()).await;
    aws_sdk_dynamodb::Client::new(&cfg)
        .delete_item()
        .table_name(table)
        .key("org", aws_sdk_dynamodb::types::AttributeValue::S("acme".into()))
        .send()
        .await
        .unwrap();
    add_events(&emu, "a", 15);
    let out = poll(&store, &url);
    assert!(
        out.contains("rebuilt the checkpoint") && out.contains(" 15 events written"),
        "{out}"
    );
    store.assert_exact(&emu).await;
    hub.shutdown();
}

/// A range that costs more than a few hundred requests says so before it starts; one that
/// runs out of time reports what it verified and exits 1, saying to run it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_range_is_announced_and_an_unfinished_one_is_not_ok() {
    let (_emu, hub) = start(emulator_config(3000, 30, 97), Arc::new(SystemClock)).await;
    let url = hub.url();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(dir.path().to_path_buf());
    poll(&store, &url);
    let (code, out, err) = verify(&store, &url, &["--page-size", "10", "--max-duration", "0s"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let cost: u64 = err
        .split("costs about ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cost said: {err}"));
    assert!(cost > 300, "{err}");
    assert!(
        err.contains("the verify stopped") && err.contains("run it again"),
        "{err}"
    );
    assert!(out.lines().last().unwrap().ends_with("NOT OK"), "{out}");
    // A cheap range says nothing of its cost on stderr.
    let (code, _, err) = verify(&store, &url, &["--since", "2d"]);
    assert_eq!(code, Some(0));
    assert!(!err.contains("costs about"), "{err}");
    hub.shutdown();
}
