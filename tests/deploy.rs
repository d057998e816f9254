//! A real deployment: `sam deploy` of the built `template.yaml` onto ministack (an AWS emulator
//! that runs CloudFormation and Lambda, started by ./scripts/test after `sam build`), for two
//! orgs served by the Docker Hub emulator. Each schedule is read back from the Scheduler API
//! and the function is invoked with that schedule's own input, twice; then the bucket is
//! compared with the emulator's events (exact multisets), and the Glue table, the alarms and
//! the function's metric lines are checked as deployed.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::aws::*;
use common::*;
use dockerhub_audit::clock::SystemClock;
use dockerhub_audit_emulator::{start_many, Emulator};
use serde_json::{json, Value};

const ORGS: [&str; 2] = ["acme", "example"];
/// Deployed too, but never run: the watchdog names it.
const DORMANT: &str = "dormant";

struct Stack {
    endpoint: String,
    bin: PathBuf,
}

impl Stack {
    fn from_env() -> Self {
        let endpoint = std::env::var("DOCKERHUB_AUDIT_TEST_MINISTACK").expect(
            "DOCKERHUB_AUDIT_TEST_MINISTACK is not set: run ./scripts/test, which builds the template and starts ministack",
        );
        let bin = std::env::var("DOCKERHUB_AUDIT_TEST_SAM_BIN").expect(
            "DOCKERHUB_AUDIT_TEST_SAM_BIN (the folder of `sam` and `aws`) is not set: run ./scripts/test",
        );
        Stack {
            endpoint,
            bin: PathBuf::from(bin),
        }
    }

    /// Runs a tool of the SAM venv against ministack; its stdout, or a panic with its stderr.
    fn run(&self, tool: &str, args: &[&str], limit: Duration) -> String {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("SAM_CLI_TELEMETRY", "0")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} does not start: {e}"));
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(limit) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!("{tool} {args:?} did not finish within {limit:?}");
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn aws(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        // The AWS CLI v1 ignores AWS_ENDPOINT_URL for SQS (it calls queue.amazonaws.com).
        all.extend(["--output", "json", "--endpoint-url", &self.endpoint]);
        let out = self.run("aws", &all, Duration::from_secs(120));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: not JSON ({e}): {out}"))
    }

    /// Receives what `queue` holds (each message hidden for the rest of the test), waiting
    /// up to 30 receives of a second for `want` messages: SNS may deliver after the invoke
    /// returned. Bodies are parsed as JSON.
    fn drain(&self, queue: &str, want: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 30 && !(out.len() >= want && empty > 0) {
            let text = self.run(
                "aws",
                &[
                    "sqs",
                    "receive-message",
                    "--queue-url",
                    queue,
                    "--max-number-of-messages",
                    "10",
                    "--visibility-timeout",
                    "900",
                    "--wait-time-seconds",
                    "1",
                    "--output",
                    "json",
                    "--endpoint-url",
                    &self.endpoint,
                ],
                Duration::from_secs(60),
            );
            let msgs: Vec<Value> = if text.trim().is_empty() {
                Vec::new()
            } else {
                let v: Value = serde_json::from_str(&text).unwrap();
                v["Messages"].as_array().cloned().unwrap_or_default()
            };
            if msgs.is_empty() {
                empty += 1;
            }
            for m in msgs {
                out.push(serde_json::from_str(m["Body"].as_str().unwrap()).expect("an EventBridge event"));
            }
        }
        out
    }

    /// The JSON lines of a log group (what a function printed: EMF, JSON logs), and the
    /// answer they came in, for messages.
    fn json_lines(&self, group: &str) -> (Vec<Value>, Value) {
        let logs = self.aws(&["logs", "filter-log-events", "--log-group-name", group]);
        let lines = logs["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .collect();
        (lines, logs)
    }

    /// A schedule as the Scheduler API reads it back.
    fn schedule(&self, group: &str, name: &str) -> Value {
        self.aws(&["scheduler", "get-schedule", "--group-name", group, "--name", name])
    }

    /// Invokes `function` with `payload` (the answer lands in `file`): the invocation's
    /// metadata and the function's answer.
    fn invoke(&self, function: &str, payload: &str, file: &std::path::Path) -> (Value, Value) {
        let path = file.to_string_lossy().to_string();
        let meta = self.aws(&[
            "lambda",
            "invoke",
            "--function-name",
            function,
            "--payload",
            payload,
            &path,
        ]);
        let answer = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        (meta, answer)
    }
}

fn ddl_columns() -> Vec<(String, String)> {
    let ddl = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("infra/athena/events-table.sql"),
    )
    .unwrap();
    let body = &ddl[ddl.find("CREATE EXTERNAL TABLE").unwrap()..ddl.find("PARTITIONED BY").unwrap()];
    body.lines()
        .filter_map(|l| {
            let l = l.trim().trim_end_matches(',');
            let rest = l.strip_prefix('`')?;
            let (name, ty) = rest.split_once("` ")?;
            Some((name.to_string(), ty.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_deploy_then_each_schedule_input_collects_its_org_exactly() {
    let stack = Stack::from_env();
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".aws-sam/build/template.yaml");
    assert!(
        template.exists(),
        "{} is missing: ./scripts/test runs `sam build` first",
        template.display()
    );

    let emulators: Vec<Emulator> = ORGS
        .iter()
        .enumerate()
        .map(|(i, org)| {
            let mut cfg = emulator_config(700 - 300 * i, 20, 81 + i as u64);
            cfg.org = org.to_string();
            cfg.username = org.to_string();
            cfg.secret = format!("{SECRET}_{org}");
            cfg.page_cap = 50;
            cfg.twin_fraction = 0.02;
            Emulator::new(cfg, Arc::new(SystemClock))
        })
        .collect();
    let hub = start_many(emulators.clone(), 0).await.unwrap();

    let name = unique("dha").replace('-', "");
    let sdk = sdk(&stack.endpoint).await;
    let s3c = s3(&sdk);
    let artifacts = format!("{name}-artifacts");
    create_bucket(&s3c, &artifacts).await;
    let prefix = format!("{name}/");
    // One secret for every org (SecretMode=shared); the dormant org has no entry.
    let shared_secret = format!("{name}-shared");
    let entries: serde_json::Map<String, Value> = ORGS
        .iter()
        .map(|org| {
            (
                org.to_string(),
                json!({"username": org, "token": format!("{SECRET}_{org}")}),
            )
        })
        .collect();
    put_secret(&sdk, &shared_secret, &Value::Object(entries).to_string()).await;

    let template = template.to_string_lossy().to_string();
    let overrides = [
        format!("Organizations={},{DORMANT}", ORGS.join(",")),
        "SecretMode=shared".into(),
        format!("SharedSecretName={shared_secret}"),
        format!("DockerHubUrl={}", hub.url()),
        format!("SecretPrefix={prefix}"),
        format!("GlueDatabaseName={name}"),
        "Architecture=x86_64".into(),
        // ministack rejects AWS::Athena::NamedQuery (toolchain notes); their SQL is tested
        // on DuckDB by tests/queries.rs.
        "NamedQueries=false".into(),
        "Lookback=30d".into(),
        // ministack fires schedules on its own clock: keep them out of the way of this test.
        "ScheduleExpression=\"rate(1 day)\"".into(),
    ];
    let mut args = vec![
        "deploy",
        "--template-file",
        &template,
        "--stack-name",
        &name,
        "--s3-bucket",
        &artifacts,
        "--capabilities",
        "CAPABILITY_IAM",
        "CAPABILITY_AUTO_EXPAND",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
        "--language-extensions",
        "--parameter-overrides",
    ];
    args.extend(overrides.iter().map(String::as_str));
    stack.run("sam", &args, Duration::from_secs(300));

    let outputs: BTreeMap<String, String> =
        stack.aws(&["cloudformation", "describe-stacks", "--stack-name", &name])["Stacks"][0]["Outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (s(&o["OutputKey"]), s(&o["OutputValue"])))
            .collect();
    for key in [
        "FunctionName",
        "CompactorFunctionName",
        "BucketName",
        "TableName",
        "GlueDatabase",
        "GlueView",
        "GlueRawTable",
        "WorkGroup",
        "DeadLetterQueueUrl",
        "AlarmTopicArn",
        "AlertBusName",
        "AlertTopicArn",
    ] {
        assert!(
            outputs.get(key).is_some_and(|v| !v.is_empty()),
            "output {key}: {outputs:?}"
        );
    }
    let function = &outputs["FunctionName"];
    let bucket = &outputs["BucketName"];

    // Alerts reach people through the alerts topic: a queue subscribed for the test stands in.
    let queue =
        s(&stack.aws(&["sqs", "create-queue", "--queue-name", &format!("{name}-alerts")])["QueueUrl"]);
    let queue_arn = s(&stack.aws(&[
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        &queue,
        "--attribute-names",
        "QueueArn",
    ])["Attributes"]["QueueArn"]);
    stack.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &outputs["AlertTopicArn"],
        "--protocol",
        "sqs",
        "--notification-endpoint",
        &queue_arn,
        "--attributes",
        "RawMessageDelivery=true",
    ]);

    // One schedule per org, and the watchdog's, read back; the function is invoked with each
    // collect schedule's input (the dormant org's never).
    let group = &outputs["ScheduleGroup"];
    let listed = stack.aws(&["scheduler", "list-schedules", "--group-name", group]);
    let mut names: Vec<String> = listed["Schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| s(&x["Name"]))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["collect-acme", "collect-dormant", "collect-example", "watch"],
        "one schedule per org, and the watchdog's: {listed}"
    );
    let watch = stack.schedule(group, "watch");
    assert!(
        s(&watch["Target"]["Arn"]).ends_with(&format!(":function:{function}")),
        "{watch}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&s(&watch["Target"]["Input"])).unwrap(),
        json!({"watch": true})
    );
    assert_eq!(s(&watch["FlexibleTimeWindow"]["Mode"]), "OFF", "{watch}");
    // ministack fires schedules on its own clock: the test invokes the watch itself.
    stack.aws(&[
        "scheduler",
        "update-schedule",
        "--group-name",
        group,
        "--name",
        "watch",
        "--schedule-expression",
        &s(&watch["ScheduleExpression"]),
        "--flexible-time-window",
        r#"{"Mode": "OFF"}"#,
        "--target",
        &watch["Target"].to_string(),
        "--state",
        "DISABLED",
    ]);
    assert_eq!(stack.schedule(group, "watch")["State"], "DISABLED");
    let out_dir = tempfile::tempdir().unwrap();
    let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let collects: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("collect-") && *n != &format!("collect-{DORMANT}"))
        .collect();
    for schedule in collects {
        let sch = stack.schedule(group, schedule);
        let target = &sch["Target"];
        assert!(
            s(&target["Arn"]).ends_with(&format!(":function:{function}")),
            "{sch}"
        );
        assert_eq!(sch["FlexibleTimeWindow"]["Mode"], "FLEXIBLE");
        assert!(
            target["RetryPolicy"]["MaximumRetryAttempts"].as_u64().is_some(),
            "{sch}"
        );
        assert!(s(&target["DeadLetterConfig"]["Arn"]).contains(":sqs:"), "{sch}");
        let input = s(&target["Input"]);
        let org = serde_json::from_str::<Value>(&input).unwrap()["org"]
            .as_str()
            .unwrap()
            .to_string();
        for n in 0..2 {
            let file = out_dir.path().join(format!("{org}-{n}.json"));
            let (meta, answer) = stack.invoke(&s(&target["Arn"]), &input, &file);
            assert!(meta.get("FunctionError").is_none(), "{org}: {meta}");
            answers.entry(org.clone()).or_default().push(answer);
        }
    }
    assert_eq!(answers.keys().map(String::as_str).collect::<Vec<_>>(), ORGS);

    for (org, emu) in ORGS.iter().zip(&emulators) {
        let want = expected(emu, chrono::Utc::now() - chrono::Duration::minutes(1));
        let runs = &answers[*org];
        assert_eq!(runs[0]["ok"], true, "{org}: {}", runs[0]);
        assert_eq!(runs[0]["caught_up"], true, "{org}: {}", runs[0]);
        assert_eq!(runs[0]["events_written"], json!(want.len()), "{org}: {}", runs[0]);
        assert_eq!(runs[1]["ok"], true, "{org}: {}", runs[1]);
        assert_eq!(runs[1]["events_written"], 0, "{org}: the second run adds nothing");
        assert_exact_s3(&want, &s3c, bucket, &format!("dockerhub-audit/org={org}/")).await;
    }
    let stored = read_all(&s3c, bucket, "dockerhub-audit/").await;
    assert!(stored.iter().all(|(k, _)| ORGS
        .iter()
        .any(|o| k.starts_with(&format!("dockerhub-audit/org={o}/dt=")))));

    // The queue holds exactly one alert per (default rule, stored matching event): the
    // function's PutEvents, the bus's rule, the topic and its policy all work as deployed.
    let rules = dockerhub_audit::alert::Rules::defaults();
    let mut want_alerts: Vec<String> = stored
        .iter()
        .flat_map(|(_, records)| records.iter())
        .flat_map(|r| {
            let id = s(&r["event_id"]);
            rules
                .matching(r)
                .map(move |rule| dockerhub_audit::alert::alert_id(&rule.id, &id))
        })
        .collect();
    want_alerts.sort();
    assert!(want_alerts.len() > 20, "{}", want_alerts.len());
    let delivered = stack.drain(&queue, want_alerts.len());
    let mut got_alerts: Vec<String> = delivered.iter().map(|e| s(&e["detail"]["alert_id"])).collect();
    got_alerts.sort();
    assert_eq!(
        got_alerts, want_alerts,
        "the alerts topic's subscriber got other alerts"
    );
    assert!(delivered.iter().all(|e| e["source"] == "dockerhub-audit"));
    for org in ORGS {
        let raised: u64 = answers[org]
            .iter()
            .map(|a| a["alerts_raised"].as_u64().unwrap())
            .sum();
        let mine = delivered.iter().filter(|e| e["detail"]["org"] == org).count() as u64;
        assert_eq!(raised, mine, "{org}: the runs' counts");
        assert_eq!(
            answers[org][1]["alerts_raised"], 0,
            "{org}: the second run raises none"
        );
    }

    // The daily verification, with its schedule's own input: after losing an object of the
    // first org from inside its window, it finds exactly that object's events missing and
    // writes them again. (In the first hour after midnight no object, one a day, lies wholly
    // inside it: then nothing is lost, and both orgs must verify clean.)
    let first = format!("dockerhub-audit/org={}/dt=", ORGS[0]);
    let inside = object_inside_two_days(&s3c, bucket, &first).await;
    assert!(
        inside.is_some() || chrono::Timelike::hour(&chrono::Utc::now()) < 2,
        "yesterday's object lies inside the window after 01:00"
    );
    let lost_records = match inside {
        Some((key, records)) => {
            s3c.delete_object().bucket(bucket).key(&key).send().await.unwrap();
            records
        }
        None => Vec::new(),
    };
    // The watchdog starts each org's daily verification with this input (VerifyRange 2d).
    let collector = stack.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        function,
    ]);
    let range = s(&collector["Environment"]["Variables"]["DOCKERHUB_AUDIT_VERIFY_RANGE"]);
    assert_eq!(range, "2d");
    let mut verified = Vec::new();
    for org in ORGS {
        let job = dockerhub_audit::ports::Job::Verify {
            org: dockerhub_audit::types::Org::new(org).unwrap(),
        };
        let input = dockerhub_audit::lambda::dispatch::input(&job, &range).to_string();
        let v: Value = serde_json::from_str(&input).unwrap();
        let schedule = format!("verify-{org}");
        let file = out_dir.path().join(format!("{schedule}.json"));
        let (meta, answer) = stack.invoke(function, &input, &file);
        assert!(meta.get("FunctionError").is_none(), "{schedule}: {meta}");
        let org = s(&v["org"]);
        let lost = if org == ORGS[0] {
            lost_records.len() as u64
        } else {
            0
        };
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["missing"], lost, "{org}: {answer}");
        assert_eq!(answer["repaired"], lost, "{org}: {answer}");
        assert_eq!(
            (answer["duplicated"].clone(), answer["clean"].clone()),
            (json!(0), json!(true)),
            "{answer}"
        );
        assert!(answer["at_docker_hub"].as_u64().unwrap() > 0, "{answer}");
        verified.push((org, lost));
    }
    assert_eq!(verified.len(), ORGS.len());
    for (org, emu) in ORGS.iter().zip(&emulators) {
        let want = expected(emu, chrono::Utc::now() - chrono::Duration::minutes(1));
        assert_exact_s3(&want, &s3c, bucket, &format!("dockerhub-audit/org={org}/")).await;
    }

    // Compaction through the deployed compactor. A verify over the whole history records
    // its days as complete (the scheduled one covers two days, which become closed only on
    // the next days); then the compact schedule's own input compacts the closed days of the
    // first org into one Parquet object each, and the view in Glue names exactly them.
    let org0 = ORGS[0];
    let (_, answer) = stack.invoke(
        function,
        &json!({"org": org0, "verify": "25d"}).to_string(),
        &out_dir.path().join("verify-all.json"),
    );
    assert_eq!(
        (answer["ok"].clone(), answer["clean"].clone()),
        (json!(true), json!(true)),
        "{answer}"
    );
    let compactor = &outputs["CompactorFunctionName"];
    let compact_input = dockerhub_audit::lambda::dispatch::input(
        &dockerhub_audit::ports::Job::Compact {
            org: dockerhub_audit::types::Org::new(org0).unwrap(),
        },
        &range,
    )
    .to_string();
    let (meta, answer) = stack.invoke(compactor, &compact_input, &out_dir.path().join("compact.json"));
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    assert_eq!(answer["ok"], true, "{answer}");
    let days: Vec<String> = answer["compacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["day"]))
        .collect();
    assert!(days.len() >= 10, "closed days of 20 compacted: {answer}");
    let mut rows = 0;
    for day in &days {
        let key = format!("dockerhub-audit/compacted/org={org0}/dt={day}/events.parquet");
        let bytes = get_bytes(&s3c, bucket, &key).await;
        rows += dockerhub_audit::compact::parquet::ids(bytes).unwrap().len();
        // The same events as the raw day.
        let raw = read_all(&s3c, bucket, &format!("dockerhub-audit/org={org0}/dt={day}/")).await;
        let compacted = answer["compacted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| s(&d["day"]) == *day)
            .unwrap();
        let raw_events: usize = raw.iter().map(|(_, records)| records.len()).sum();
        assert_eq!(
            compacted["events"].as_u64().unwrap() as usize,
            raw_events,
            "{day}"
        );
    }
    let events: u64 = answer["compacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["events"].as_u64().unwrap())
        .sum();
    assert_eq!(rows as u64, events);
    let view = stack.aws(&[
        "glue",
        "get-table",
        "--database-name",
        &outputs["GlueDatabase"],
        "--name",
        &outputs["GlueView"],
    ]);
    assert_eq!(
        (outputs["GlueView"].as_str(), &view["Table"]["TableType"]),
        ("events", &Value::from("VIRTUAL_VIEW")),
        "{view}"
    );
    let text = s(&view["Table"]["ViewOriginalText"]);
    let sql = dockerhub_audit::surface::view::sql_of_presto_view(&text).expect("a Presto view");
    let map = dockerhub_audit::surface::view::decode_map(
        view["Table"]["Parameters"]["dockerhub_audit.compacted"].as_str(),
    )
    .unwrap();
    assert_eq!(map.get(org0).map(|d| d.len()), Some(days.len()), "{view}");
    assert_eq!(sql, dockerhub_audit::surface::view::sql(&map));
    // Run again: nothing left to compact.
    let (_, again) = stack.invoke(
        compactor,
        &compact_input,
        &out_dir.path().join("compact-again.json"),
    );
    assert_eq!(
        (again["ok"].clone(), again["compacted"].as_array().map(Vec::len)),
        (json!(true), Some(0)),
        "{again}"
    );

    // A bad input: answered, not retried, and still reported.
    let (_, answer) = stack.invoke(
        function,
        r#"{"org": "Not An Org"}"#,
        &out_dir.path().join("bad.json"),
    );
    assert_eq!(answer["ok"], false, "{answer}");
    // An org the stack was not deployed for: refused by the function's allow-list.
    let (_, answer) = stack.invoke(
        function,
        r#"{"org": "notdeployed"}"#,
        &out_dir.path().join("other.json"),
    );
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        s(&answer["error"])
            .contains("not one of the organizations this stack collects (acme, dormant, example)"),
        "{answer}"
    );

    // Every invocation printed one metrics line; per-org metrics carry the org.
    let config = stack.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        function,
    ]);
    // The deployed role, read back: it may create objects only with If-None-Match and
    // delete none.
    let role = s(&config["Role"]).rsplit('/').next().unwrap().to_string();
    let names = stack.aws(&["iam", "list-role-policies", "--role-name", &role]);
    let mut puts = 0;
    for name in names["PolicyNames"].as_array().unwrap() {
        let got = stack.aws(&[
            "iam",
            "get-role-policy",
            "--role-name",
            &role,
            "--policy-name",
            &s(name),
        ]);
        let doc = match &got["PolicyDocument"] {
            Value::String(text) => serde_json::from_str(text).unwrap(),
            other => other.clone(),
        };
        for st in doc["Statement"].as_array().unwrap() {
            let actions: Vec<String> = match &st["Action"] {
                Value::String(a) => vec![a.clone()],
                v => v.as_array().unwrap().iter().map(s).collect(),
            };
            assert!(
                !actions.iter().any(|a| a.starts_with("s3:Delete") || a == "s3:*"),
                "{st}"
            );
            if actions.iter().any(|a| a == "s3:PutObject") {
                puts += 1;
                assert_eq!(
                    st["Condition"],
                    json!({"Null": {"s3:if-none-match": "false"}}),
                    "{st}"
                );
            }
        }
    }
    assert_eq!(puts, 1, "one statement lets the role create objects");
    let log_group = s(&config["LoggingConfig"]["LogGroup"]);
    assert_eq!(config["Runtime"], "provided.al2023");
    assert_eq!(config["Architectures"], json!(["x86_64"]));
    assert!(
        config["Timeout"].as_u64().unwrap() < 300,
        "below the 5-minute period"
    );
    let (emf, logs) = stack.json_lines(&log_group);
    let emf: Vec<Value> = emf
        .into_iter()
        .filter(|v| v.get("_aws").is_some() && v.get("mode").is_none())
        .collect();
    // Three runs per org, the first org's verify of its whole history, the bad input and the
    // org the stack does not list.
    assert_eq!(emf.len(), 3 * ORGS.len() + 3, "{logs}");
    for org in ORGS {
        let mine: Vec<&Value> = emf.iter().filter(|d| d["org"] == org).collect();
        assert_eq!(mine.len(), if org == ORGS[0] { 4 } else { 3 });
        assert!(mine.iter().all(|d| d["WatermarkAge"].as_f64().unwrap() < 600.0));
        // No per-org alarms (OrgAlarms=none): the age is a field of the line, not a metric.
        assert!(mine.iter().all(
            |d| dockerhub_audit::lambda::metrics::declared(d, &json!([["org"]]))
                .iter()
                .all(|m| m != "WatermarkAge")
        ));
        assert_eq!(mine[0]["EventsWritten"], answers[org][0]["events_written"]);
        let lost = verified.iter().find(|(o, _)| o == org).unwrap().1;
        assert_eq!(mine[2]["EventsMissing"], lost, "{org}");
        let per_org = dockerhub_audit::lambda::metrics::declared(mine[2], &json!([["org"]]));
        assert_eq!(
            per_org.contains(&"EventsMissing".to_string()),
            lost > 0,
            "{org}: {per_org:?}"
        );
    }
    assert_eq!(
        emf.iter()
            .filter(|d| d["org"] == "-" && d["RunsFailed"] == 1)
            .count(),
        2,
        "the bad input and the org not deployed, neither with a metric of its own"
    );

    // The compactor's metric lines: one per run, nothing failed, the days it compacted.
    let config = stack.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        compactor,
    ]);
    let (emf, logs) = stack.json_lines(&s(&config["LoggingConfig"]["LogGroup"]));
    let emf: Vec<Value> = emf.into_iter().filter(|v| v.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2, "{logs}");
    assert_eq!(
        (
            emf[0]["DaysCompacted"].as_u64(),
            emf[0]["CompactionFailed"].as_u64()
        ),
        (Some(days.len() as u64), Some(0)),
        "{}",
        emf[0]
    );

    // The raw Glue table as deployed: the DDL's columns, org and dt as partitions only,
    // projection.
    let table = &stack.aws(&[
        "glue",
        "get-table",
        "--database-name",
        &outputs["GlueDatabase"],
        "--name",
        &outputs["GlueRawTable"],
    ])["Table"];
    assert_eq!(
        (outputs["GlueRawTable"].as_str(), &table["TableType"]),
        ("events_raw", &Value::from("EXTERNAL_TABLE")),
        "{table}"
    );
    let columns: Vec<(String, String)> = table["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["Name"]), s(&c["Type"])))
        .collect();
    assert_eq!(columns, ddl_columns());
    let keys: Vec<String> = table["PartitionKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["Name"]))
        .collect();
    assert_eq!(keys, ["org", "dt"]);
    assert!(!columns.iter().any(|(c, _)| c == "org" || c == "dt"));
    let p = &table["Parameters"];
    assert_eq!(p["projection.enabled"], "true");
    assert_eq!(p["projection.org.type"], "enum");
    assert_eq!(
        p["projection.org.values"],
        format!("{},{DORMANT}", ORGS.join(","))
    );
    assert_eq!(p["projection.dt.type"], "date");
    assert_eq!(p["projection.dt.format"], "yyyy-MM-dd");
    assert_eq!(p["projection.dt.range"], "2021-01-01,NOW");
    assert_eq!(
        p["storage.location.template"],
        format!("s3://{bucket}/dockerhub-audit/org=${{org}}/dt=${{dt}}/")
    );
    assert_eq!(
        table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
        "org.apache.hive.hcatalog.data.JsonSerDe"
    );

    // No alarm per org (OrgAlarms=none); the watchdog's one, silence counting as failure.
    let alarms = stack.aws(&["cloudwatch", "describe-alarms"]);
    let ours: Vec<&Value> = alarms["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["AlarmActions"] == json!([outputs["AlarmTopicArn"]]))
        .collect();
    assert!(
        ours.iter().all(|a| a["Dimensions"]
            .as_array()
            .is_none_or(|d| !d.iter().any(|x| x["Name"] == "org"))),
        "{alarms}"
    );
    let stale = ours
        .iter()
        .find(|a| a["MetricName"] == "StaleOrgs")
        .expect("StaleOrgsAlarm");
    assert_eq!(
        (
            stale["TreatMissingData"].clone(),
            stale["Threshold"].clone(),
            stale["Namespace"].clone()
        ),
        (json!("breaching"), json!(0.0), json!("DockerHubAudit")),
        "{stale}"
    );

    // The watchdog: a queue subscribed to the alarm topic stands in for the person paged.
    // Its schedule's input names the dormant org, which never ran, in one message.
    let pager = s(&stack.aws(&["sqs", "create-queue", "--queue-name", &format!("{name}-pager")])["QueueUrl"]);
    let pager_arn = s(&stack.aws(&[
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        &pager,
        "--attribute-names",
        "QueueArn",
    ])["Attributes"]["QueueArn"]);
    stack.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &outputs["AlarmTopicArn"],
        "--protocol",
        "sqs",
        "--notification-endpoint",
        &pager_arn,
    ]);
    let watch_input = s(&watch["Target"]["Input"]);
    let (meta, answer) = stack.invoke(function, &watch_input, &out_dir.path().join("watch.json"));
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["orgs"], 3, "{answer}");
    assert_eq!(
        answer["stale"],
        json!([{"org": DORMANT, "why": {"kind": "never_ran"}, "watermark": null}]),
        "{answer}"
    );
    let paged = stack.drain(&pager, 1);
    assert_eq!(paged.len(), 1, "{paged:?}");
    assert_eq!(
        s(&paged[0]["Subject"]),
        format!("{function}: 1 stale org: {DORMANT}"),
        "{}",
        paged[0]
    );
    let message = s(&paged[0]["Message"]);
    assert!(
        message.contains("dormant: never ran") && message.contains("collect-dormant"),
        "{message}"
    );
    // Its metric line: one stale org, the oldest watermark minutes old.
    let (watched, logs) = stack.json_lines(&log_group);
    let watched: Vec<Value> = watched.into_iter().filter(|v| v["mode"] == "watch").collect();
    assert_eq!(watched.len(), 1, "{logs}");
    assert_eq!(
        dockerhub_audit::lambda::metrics::declared(&watched[0], &json!([[]])),
        ["StaleOrgs", "OldestWatermarkAge"]
    );
    assert_eq!(watched[0]["StaleOrgs"], 1);
    assert!(
        watched[0]["OldestWatermarkAge"].as_f64().unwrap() < 3600.0,
        "{}",
        watched[0]
    );

    // The watchdog starts the daily jobs itself: with acme's verification due (its last one
    // two days ago), the next watch invokes the function with acme's verify input, which
    // records a fresh verified span in acme's checkpoint.
    let store = dockerhub_audit::checkpoint::dynamodb::DynamoCheckpoints::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &outputs["TableName"],
    );
    use dockerhub_audit::ports::{CheckpointIndex, Checkpoints};
    let mut memory = store.memory().await.unwrap();
    let acme = dockerhub_audit::types::Org::new(ORGS[0]).unwrap();
    assert_eq!(
        memory.verify_dispatched.len(),
        3,
        "the first watch entered every org's next slot"
    );
    memory
        .verify_dispatched
        .insert(acme.clone(), chrono::Utc::now() - chrono::Duration::days(2));
    store.remember(&mut memory).await.unwrap();
    let before = store.peek(&acme).await.unwrap().unwrap().verified.map(|v| v.at);
    let (_, answer) = stack.invoke(function, &watch_input, &out_dir.path().join("watch-2.json"));
    assert_eq!(
        answer["started"],
        json!([{"job": "verify", "org": ORGS[0]}]),
        "{answer}"
    );
    let mut at = before;
    for _ in 0..120 {
        at = store.peek(&acme).await.unwrap().unwrap().verified.map(|v| v.at);
        if at != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(at > before, "the started verification ran: {before:?} -> {at:?}");

    stack.run(
        "aws",
        &["cloudformation", "delete-stack", "--stack-name", &name],
        Duration::from_secs(60),
    );
    hub.shutdown();
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}
