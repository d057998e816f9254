//! The named Athena queries (`infra/queries/*.sql`) are real: the poller collects the emulator's
//! events into a local folder, DuckDB runs every query over those files through
//! `infra/duckdb/events.sql` (the same table, and the whole dialect translation), and each
//! answer is compared with one computed here from the emulator's own events.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::*;
use dockerhub_audit::clock::{Clock, ManualClock};
use dockerhub_audit::event::parse_timestamp;
use serde_json::{json, Value};

/// A Python with DuckDB, from the test command.
fn python() -> String {
    std::env::var("DOCKERHUB_AUDIT_TEST_PYTHON")
        .expect("DOCKERHUB_AUDIT_TEST_PYTHON is not set: run ./scripts/test, which installs DuckDB in a venv")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn query(name: &str) -> Value {
    let file = root().join("infra/queries").join(format!("{name}.sql"));
    assert!(file.exists(), "{} is missing", file.display());
    json!({"file": file})
}

/// Runs the statements in one DuckDB session over `output`; one list of rows per statement.
fn duckdb(output: &Path, statements: Vec<Value>) -> Vec<Vec<Vec<Value>>> {
    let mut child = Command::new(python())
        .arg(root().join("tests/support/duckdb_queries.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let request = json!({"output": output, "statements": statements});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the runner prints JSON")
}

/// (action, actor, name, time): what the per-event queries are compared on.
type Row = (String, String, String, DateTime<Utc>);

/// Per actor: tag pushes, repositories, first and last push.
type Pushes = (u64, u64, DateTime<Utc>, DateTime<Utc>);

/// One event of the ground truth, as the queries see it.
#[derive(Debug, Clone)]
struct Truth {
    action: String,
    actor: String,
    name: String,
    at: DateTime<Utc>,
    data: Value,
}

impl Truth {
    fn category(&self) -> &str {
        self.action.split('.').next().unwrap_or("")
    }
    fn row(&self) -> Row {
        (
            self.action.clone(),
            self.actor.clone(),
            self.name.clone(),
            self.at,
        )
    }
}

fn truth(events: Vec<Value>) -> Vec<Truth> {
    events
        .into_iter()
        .map(|e| Truth {
            action: e["action"].as_str().unwrap().to_string(),
            actor: e["actor"].as_str().unwrap().to_string(),
            name: e["name"].as_str().unwrap().to_string(),
            at: parse_timestamp(e["timestamp"].as_str().unwrap()).unwrap(),
            data: e["data"].clone(),
        })
        .collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("ISO 8601")
        .with_timezone(&Utc)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Rows of the per-event queries (`event_time, org, actor, action, name, ...`) as
/// (action, actor, name, time), checked to come in time order.
fn event_rows(
    rows: &[Vec<Value>],
    action_col: usize,
    name_col: usize,
) -> Vec<(String, String, String, DateTime<Utc>)> {
    let out: Vec<_> = rows
        .iter()
        .map(|r| {
            assert_eq!(r[1], "acme", "org comes from the partition");
            (s(&r[action_col]), s(&r[2]), s(&r[name_col]), time(&r[0]))
        })
        .collect();
    assert!(out.windows(2).all(|w| w[0].3 <= w[1].3), "rows in time order");
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// The expected rows of a per-event query, never empty (so the query is really tested).
fn expect(
    all: &[Truth],
    what: &str,
    keep: impl Fn(&Truth) -> bool,
) -> Vec<(String, String, String, DateTime<Utc>)> {
    let want: Vec<_> = all.iter().filter(|t| keep(t)).map(Truth::row).collect();
    assert!(
        !want.is_empty(),
        "the emulator produced no {what}: the test would prove nothing"
    );
    sorted(want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_named_query_answers_what_the_emulator_holds() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(6000, 40, 71);
    cfg.twin_fraction = 0.02;
    cfg.fractional_timestamps = true;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(45);
    let report = run(&c, &clock, dir.path(), &pc).await.unwrap();
    assert!(report.caught_up);
    let all = truth(emu.visible_events_before(clock.now() - pc.lag));
    assert_exact(&expected(&emu, clock.now() - pc.lag), dir.path());

    let everything = json!(["2021-01-01", "2099-12-31"]);
    let last_week = (t0() - Duration::days(7)).format("%Y-%m-%d").to_string();
    let today = t0().format("%Y-%m-%d").to_string();
    let with = |name: &str, params: Value| {
        let mut q = query(name);
        q["params"] = params;
        q
    };
    let (from, to) = (
        t0() - Duration::days(10) + Duration::hours(6),
        t0() - Duration::days(3) - Duration::hours(6),
    );
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let answers = duckdb(
        dir.path(),
        vec![
            with("events-per-day-per-category", everything.clone()),
            with("events-per-day-per-category", json!([last_week, today])),
            with("tag-pushes-by-actor", everything.clone()),
            with("member-and-role-changes", everything.clone()),
            with("sso-scim-domain-changes", everything.clone()),
            with("access-token-lifecycle", everything.clone()),
            with("access-management-disabled", everything.clone()),
            with("repositories-made-public", everything.clone()),
            with(
                "actor-activity",
                json!(["jdoe", iso(from), iso(to), iso(from), iso(to)]),
            ),
            query("deduplicated-view"),
            json!({"sql": "SELECT count(*) FROM events_deduplicated"}),
        ],
    );

    // Events per day and category, over everything and over the last week only (the `dt`
    // parameters select partitions).
    let per_day = |since: &str| -> BTreeMap<(String, String), u64> {
        let mut m = BTreeMap::new();
        for t in &all {
            let day = t.at.format("%Y-%m-%d").to_string();
            if day.as_str() >= since {
                *m.entry((day, t.category().to_string())).or_insert(0) += 1;
            }
        }
        m
    };
    let by_day = |rows: &[Vec<Value>]| -> BTreeMap<(String, String), u64> {
        rows.iter()
            .map(|r| ((s(&r[0]), s(&r[1])), r[2].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(by_day(&answers[0]), per_day("2021-01-01"));
    assert_eq!(by_day(&answers[1]), per_day(&last_week));
    assert!(answers[1].len() < answers[0].len());

    // Tag pushes per actor: count, repositories, first and last push.
    let mut want: BTreeMap<String, Pushes> = BTreeMap::new();
    let mut repos: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in all.iter().filter(|t| t.action == "repo.tag.push") {
        let e = want.entry(t.actor.clone()).or_insert((0, 0, t.at, t.at));
        e.0 += 1;
        e.2 = e.2.min(t.at);
        e.3 = e.3.max(t.at);
        repos.entry(t.actor.clone()).or_default().push(t.name.clone());
    }
    for (actor, mut names) in repos {
        names.sort();
        names.dedup();
        want.get_mut(&actor).unwrap().1 = names.len() as u64;
    }
    assert!(want.len() > 3);
    let got: BTreeMap<String, Pushes> = answers[2]
        .iter()
        .map(|r| {
            (
                s(&r[0]),
                (
                    r[1].as_u64().unwrap(),
                    r[2].as_u64().unwrap(),
                    time(&r[3]),
                    time(&r[4]),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);
    let counts: Vec<u64> = answers[2].iter().map(|r| r[1].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "most active first");

    let prefixed =
        |prefixes: &'static [&'static str]| move |t: &Truth| prefixes.iter().any(|p| t.action.starts_with(p));
    assert_eq!(
        sorted(event_rows(&answers[3], 3, 4)),
        expect(
            &all,
            "member changes",
            prefixed(&["org.member.", "org.team.member.", "org.customrole."])
        )
    );
    assert_eq!(
        sorted(event_rows(&answers[4], 3, 4)),
        expect(
            &all,
            "SSO or domain changes",
            prefixed(&["enterprise.sso.", "enterprise.setting.policy.", "org.domain."])
        )
    );
    assert_eq!(
        sorted(event_rows(&answers[5], 3, 4)),
        expect(&all, "access tokens", prefixed(&["org.access_token."]))
    );
    assert_eq!(
        sorted(event_rows(&answers[6], 3, 4)),
        expect(&all, "RAM turned off", |t| t.action
            == "org.registry_access.disabled")
    );
    // repositories-made-public has no action column: (repository, actor, time).
    let public: Vec<_> = answers[7]
        .iter()
        .map(|r| ("repo.change_privacy".to_string(), s(&r[2]), s(&r[3]), time(&r[0])))
        .collect();
    assert_eq!(
        sorted(public),
        expect(&all, "repositories made public", |t| t.action
            == "repo.change_privacy"
            && t.data["privacy"] == "public")
    );
    // actor-activity: (event_time, org, action, name, ...).
    let activity: Vec<_> = answers[8]
        .iter()
        .map(|r| (s(&r[2]), "jdoe".to_string(), s(&r[3]), time(&r[0])))
        .collect();
    assert!(activity.windows(2).all(|w| w[0].3 <= w[1].3));
    assert_eq!(
        sorted(activity),
        expect(&all, "events by jdoe", |t| t.actor == "jdoe"
            && t.at >= from
            && t.at < to)
    );
    assert_eq!(answers[10], vec![vec![json!(all.len())]]);

    // A copy of an object (what an operator's mistake or a bad repair leaves) doubles its
    // events in the table, not in the deduplicated view nor in the counts by event_id.
    let object = dockerhub_audit::inspect::objects(dir.path()).unwrap()[0].clone();
    let copy = object.with_file_name("copy-of-an-object.json.gz");
    std::fs::copy(&object, &copy).unwrap();
    let in_copy = dockerhub_audit::event::encode::decode(&std::fs::read(&copy).unwrap())
        .unwrap()
        .len();
    assert!(in_copy > 0);
    let after = duckdb(
        dir.path(),
        vec![
            json!({"sql": "SELECT count(*) FROM events"}),
            query("deduplicated-view"),
            json!({"sql": "SELECT count(*) FROM events_deduplicated"}),
            with("events-per-day-per-category", everything),
        ],
    );
    assert_eq!(after[0], vec![vec![json!(all.len() + in_copy)]]);
    assert_eq!(after[2], vec![vec![json!(all.len())]]);
    assert_eq!(by_day(&after[3]), per_day("2021-01-01"));
}
