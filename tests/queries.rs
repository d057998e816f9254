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
    duckdb_with(output, json!({}), statements)
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

/// Every named query with parameters that cover `all` of the history.
fn named_queries(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let days = json!(["2021-01-01", "2099-12-31"]);
    let mut out = Vec::new();
    for name in [
        "events-per-day-per-category",
        "tag-pushes-by-actor",
        "member-and-role-changes",
        "sso-scim-domain-changes",
        "access-token-lifecycle",
        "access-management-disabled",
        "repositories-made-public",
    ] {
        let mut q = query(name);
        q["params"] = days.clone();
        out.push(q);
    }
    let mut q = query("actor-activity");
    q["params"] = json!(["jdoe", iso(from), iso(to), iso(from), iso(to)]);
    out.push(q);
    out.push(query("deduplicated-view"));
    out.push(json!({"sql": "SELECT count(*) FROM events_deduplicated"}));
    out.push(json!({"sql": "SELECT org, dt, count(*), count(DISTINCT event_id) FROM events GROUP BY ALL ORDER BY ALL"}));
    out
}

/// The answers over the raw trail alone, whatever is compacted.
fn raw_answers(output: &Path, statements: Vec<Value>) -> Vec<Vec<Vec<Value>>> {
    duckdb_with(output, json!({"raw_only": true}), statements)
}

fn duckdb_with(output: &Path, variables: Value, statements: Vec<Value>) -> Vec<Vec<Vec<Value>>> {
    let mut child = Command::new(python())
        .arg(root().join("tests/support/duckdb_queries.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let request = json!({"output": output, "variables": variables, "statements": statements});
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

/// Every raw object's path and bytes: what compaction must never change.
fn raw_trail(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    dockerhub_audit::inspect::objects(dir)
        .unwrap()
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn compacted_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = dir.join("compacted/org=acme");
    for day in std::fs::read_dir(&base).into_iter().flatten() {
        let day = day.unwrap().path();
        for f in std::fs::read_dir(&day).unwrap() {
            let f = f.unwrap().path();
            if f.file_name().unwrap() == "events.parquet" {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

/// Compaction keeps the query surface exact: the same answers to every named query over
/// the compacted history as over the raw trail, before and after a late event reaches a day
/// already compacted (the repair takes the day off the compacted side; compact puts it
/// back), while a compaction is half done (written, not published), and after a compacted
/// day is tampered with (verify reports it; compact repairs it). The raw trail is never
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_history_answers_every_query_as_the_raw_one_does() {
    use dockerhub_audit::checkpoint::file::FileCheckpoints;
    use dockerhub_audit::collect::verify::VerifyRange;
    use dockerhub_audit::compact::{compact, Checked, CompactConfig};
    use dockerhub_audit::service::Service;
    use dockerhub_audit::sink::local::LocalSink;
    use dockerhub_audit::surface::local::LocalSurface;
    use dockerhub_audit::surface::{CompactedDays, QuerySurface};

    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(4000, 30, 97);
    cfg.twin_fraction = 0.02;
    cfg.fractional_timestamps = true;
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let pc = poll_config(35);
    assert!(run(&c, &clock, dir.path(), &pc).await.unwrap().caught_up);
    let checkpoints = FileCheckpoints::new(dir.path().join("_checkpoints"));
    let sink = LocalSink::new(dir.path());
    let surface = LocalSurface::new(dir.path());
    let checked = Checked(&surface);
    let verify = |repair: bool| {
        let range = VerifyRange {
            from: t0() - Duration::days(40),
            until: None,
            repair,
        };
        let (c, checkpoints, sink, clock, checked, pc) = (&c, &checkpoints, &sink, &clock, &checked, &pc);
        async move {
            Service::new(c, checkpoints, sink, clock)
                .with_surface(checked)
                .verify(pc, &range, None, &mut |_| {})
                .await
                .report
                .expect("verify runs")
        }
    };
    let cc = CompactConfig::new(org());
    let statements = named_queries(t0() - Duration::days(40), t0());

    // Before any compaction the view reads the raw trail: the baseline.
    let before = raw_answers(dir.path(), statements.clone());
    assert_eq!(duckdb(dir.path(), statements.clone()), before);
    let trail = raw_trail(dir.path());

    // Nothing is compacted before a verify found the days complete.
    let r = compact(&sink, &surface, &checkpoints, &clock, &cc, None)
        .await
        .unwrap();
    assert!(r.compacted.is_empty() && r.unverified > 20, "{r:?}");
    assert!(verify(false).await.clean());
    let r = compact(&sink, &surface, &checkpoints, &clock, &cc, None)
        .await
        .unwrap();
    assert!(r.ok(), "{r:?}");
    let days = r.compacted.len();
    assert!(days >= 25, "closed days compacted: {days}");
    assert!(r.open >= 1, "the last days are not closed yet: {r:?}");
    let events: u64 = r.compacted.iter().map(|d| d.events).sum();
    assert!(events > 3000);
    assert_eq!(compacted_files(dir.path()).len(), days, "one object per org-day");
    assert_eq!(raw_trail(dir.path()), trail, "the raw trail is unchanged");

    // The same answers, to every query, from the compacted history.
    assert_eq!(duckdb(dir.path(), statements.clone()), before);
    // A compaction half done (written, not published) changes nothing either.
    let day = *surface.days(&org()).await.unwrap().iter().next().unwrap();
    assert!(surface.reopen(&org(), day).await.unwrap());
    surface.put(&org(), day, b"not published".to_vec()).await.unwrap();
    assert_eq!(duckdb(dir.path(), statements.clone()), before);
    let r = compact(&sink, &surface, &checkpoints, &clock, &cc, None)
        .await
        .unwrap();
    assert_eq!(r.compacted.iter().map(|d| d.day).collect::<Vec<_>>(), vec![day]);
    assert_eq!(duckdb(dir.path(), statements.clone()), before);

    // A late event in a day already compacted: the repair takes the day off the compacted
    // side before it writes, so the event is in every answer at once.
    let late_day = surface
        .days(&org())
        .await
        .unwrap()
        .into_iter()
        .nth(days / 2)
        .unwrap();
    let late_at = late_day.and_hms_opt(13, 14, 15).unwrap().and_utc();
    emu.add_event(
        json!({"account": "acme", "action": "repo.change_privacy", "name": "acme/late",
               "actor": "jdoe", "data": {"privacy": "public"},
               "timestamp": late_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
               "action_description": "changed the repository acme/late to public"}),
        t0(),
    );
    let v = verify(true).await;
    assert_eq!((v.missing, v.repaired), (1, 1), "{v:?}");
    assert!(
        !surface.days(&org()).await.unwrap().contains(&late_day),
        "reopened"
    );
    let after_late = raw_answers(dir.path(), statements.clone());
    assert_ne!(after_late, before);
    assert_eq!(duckdb(dir.path(), statements.clone()), after_late);
    let r = compact(&sink, &surface, &checkpoints, &clock, &cc, None)
        .await
        .unwrap();
    assert_eq!(
        r.compacted.iter().map(|d| d.day).collect::<Vec<_>>(),
        vec![late_day]
    );
    assert_eq!(duckdb(dir.path(), statements.clone()), after_late);
    let public = duckdb(
        dir.path(),
        vec![{
            let mut q = query("repositories-made-public");
            q["params"] = json!([late_day.to_string(), late_day.to_string()]);
            q
        }],
    );
    assert!(public[0].iter().any(|r| r[3] == "acme/late"), "{public:?}");

    // A compacted day that no longer holds its raw events (tampered with): verify says so,
    // and compact (which compares recent days again) compacts it anew.
    let recent = *surface.days(&org()).await.unwrap().iter().next_back().unwrap();
    let other = *surface.days(&org()).await.unwrap().iter().next().unwrap();
    let wrong = surface.get(&org(), other).await.unwrap();
    std::fs::write(
        dir.path()
            .join(dockerhub_audit::surface::compacted_key(&org(), recent)),
        wrong,
    )
    .unwrap();
    // (Queries read the compacted object, not the raw trail: they see the damage.)
    assert_ne!(duckdb(dir.path(), statements.clone()), after_late);
    let v = verify(false).await;
    assert_eq!(v.compacted_days_disagreeing, 1, "{v:?}");
    assert!(!v.clean());
    let r = compact(&sink, &surface, &checkpoints, &clock, &cc, None)
        .await
        .unwrap();
    assert_eq!(r.disagreeing, vec![recent]);
    assert!(r.compacted.iter().any(|d| d.day == recent));
    assert!(verify(false).await.clean());
    assert_eq!(duckdb(dir.path(), statements), after_late);
    drop(hub);
}
