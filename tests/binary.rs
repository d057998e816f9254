//! The `dockerhub-audit` binary as a user runs it, against the emulator over real HTTP:
//! SIGKILL at random moments, two pollers at once, error messages and exit codes, secrets
//! kept out of every output, `status`, the emulator command and the demo.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dockerhub_audit::clock::SystemClock;
use dockerhub_audit::inspect;

const BIN: &str = env!("CARGO_BIN_EXE_dockerhub-audit");

fn poll_cmd(url: &str, dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["poll", "--org", "acme", "--hub-url", url, "--output"])
        .arg(dir)
        .args(["--retry-base", "10ms"])
        .args(extra)
        .env("DOCKERHUB_USERNAME", "acme")
        .env("DOCKERHUB_TOKEN", SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Waits until the held request arrives (the child is then stalled inside it, so a kill
/// lands for sure), or the child ends first.
async fn wait_for_hold(hold: &dockerhub_audit_emulator::Hold, child: &mut Child) -> bool {
    loop {
        tokio::select! {
            _ = hold.reached.notified() => return true,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let mut held_kills = 0;
    for seed in 1..=10u64 {
        let mut cfg = emulator_config(1200, 20, 100 + seed);
        cfg.page_cap = 25;
        cfg.twin_fraction = 0.05;
        let (emu, hub) = start(cfg, Arc::new(SystemClock)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(seed);
        // Killed runs, each from where the last left off, then one to the end. The first
        // and last are killed while stalled in a request (a kill that always lands); the
        // middle one at a random moment after some requests (between requests, mid-encode,
        // mid-write, mid-commit), which may miss if the run is quicker.
        for attempt in 0..3 {
            let base = emu.stats().list_requests;
            let held = attempt != 1;
            let hold = emu.hold_list_request(base + 1 + rng.u64(..if held { 8 } else { 60 }));
            let mut child = poll_cmd(&hub.url(), dir.path(), &["--batch-events", "60"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let reached = wait_for_hold(&hold, &mut child).await;
            if reached && !held {
                hold.release.notify_one();
                tokio::time::sleep(Duration::from_micros(rng.u64(..3000))).await;
            }
            let _ = child.kill(); // SIGKILL
            assert!(
                !held || reached,
                "seed {seed}: the run ended before its 8th request"
            );
            held_kills += u32::from(held);
            let _ = child.wait();
            hold.release.notify_one();
        }
        let out = poll_cmd(&hub.url(), dir.path(), &[]).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "seed {seed}: {stdout} {stderr}");
        assert!(stdout.contains("caught up"), "seed {seed}: {stdout}");
        // Every event in the emulator is older than now - lag (generated up to 2 minutes ago).
        assert_exact(
            &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
            dir.path(),
        );
        hub.shutdown();
    }
    assert_eq!(held_kills, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pollers_at_once_store_each_event_once() {
    for seed in 1..=4u64 {
        let mut cfg = emulator_config(800, 10, 200 + seed);
        cfg.page_cap = 20;
        let (emu, hub) = start(cfg, Arc::new(SystemClock)).await;
        let dir = tempfile::tempdir().unwrap();
        let a = poll_cmd(&hub.url(), dir.path(), &["--batch-events", "50"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let b = poll_cmd(&hub.url(), dir.path(), &["--batch-events", "50"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(
            oa.status.success() && ob.status.success(),
            "{:?} {:?}",
            text(&oa),
            text(&ob)
        );
        // Whichever order they ran in, a final run finds the rest, and nothing is doubled.
        let out = poll_cmd(&hub.url(), dir.path(), &[]).output().unwrap();
        assert!(out.status.success());
        assert_exact(
            &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
            dir.path(),
        );
        hub.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_a_clean_no_op() {
    let (_emu, hub) = start(emulator_config(10, 1, 3), Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let cps = dir.path().join("_checkpoints");
    std::fs::create_dir_all(&cps).unwrap();
    let lock = std::fs::File::create(cps.join("acme.lock")).unwrap();
    lock.lock().unwrap();
    let out = poll_cmd(&hub.url(), dir.path(), &[]).output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("another poller holds"), "{stdout}");
    assert!(stored(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_one_line_that_says_what_to_do() {
    let (emu, hub) = start(emulator_config(10, 1, 4), Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();

    let out = poll_cmd(&hub.url(), dir.path(), &[])
        .env_remove("DOCKERHUB_TOKEN")
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.trim().lines().count() == 1 && err.contains("DOCKERHUB_TOKEN is not set"),
        "{err}"
    );

    let out = poll_cmd(&hub.url(), dir.path(), &[])
        .env("DOCKERHUB_TOKEN", "dckr_oat_wrong_one")
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("refused the credentials"),
        "{err}"
    );
    assert!(!err.contains("dckr_oat_wrong_one"));
    assert_eq!(emu.stats().token_requests, 1, "bad credentials are tried once");

    let out = poll_cmd(&hub.url(), dir.path(), &[])
        .args(["--org", "other"])
        .output();
    // --org given twice is a usage error from clap (exit 2), not a crash.
    assert_eq!(out.unwrap().status.code(), Some(2));
    let mut c = Command::new(BIN);
    let out = c
        .args(["poll", "--org", "other", "--hub-url", &hub.url(), "--output"])
        .arg(dir.path())
        .env("DOCKERHUB_USERNAME", "acme")
        .env("DOCKERHUB_TOKEN", SECRET)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("403") && err.contains("Audit Log Read"), "{err}");

    let out = poll_cmd(&hub.url(), dir.path(), &["--lookback", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("90d"));

    // The token never travels unencrypted: plain http only to this machine.
    let before = emu.stats().token_requests;
    let out = poll_cmd("http://hub.example.com", dir.path(), &[])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--hub-url") && err.contains("unencrypted"), "{err}");

    // A secret stored with its fields swapped never puts the token in an error.
    let out = poll_cmd(&hub.url(), dir.path(), &[])
        .env("DOCKERHUB_USERNAME", "dckr_pat_swapped_into_the_username")
        .env("DOCKERHUB_TOKEN", "acme")
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("swapped_into") && !stdout.contains("swapped_into"),
        "{err}"
    );
    assert!(err.contains("looks like a token"), "{err}");
    assert_eq!(emu.stats().token_requests, before + 1);

    // A checkpoint belongs to its output: another output with it is refused, and the
    // checkpoint and the first output are left as they were.
    let first = tempfile::tempdir().unwrap();
    let out = poll_cmd(&hub.url(), first.path(), &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let stored = inspect::records(first.path()).unwrap().len();
    assert!(stored > 0);
    let cp_file = first.path().join("_checkpoints").join("acme.json");
    let cp_before = std::fs::read(&cp_file).unwrap();
    let other = tempfile::tempdir().unwrap();
    let checkpoints = first.path().join("_checkpoints");
    let out = poll_cmd(&hub.url(), other.path(), &["--checkpoint"])
        .arg(&checkpoints)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("belong together") && last.contains("local:"),
        "{err}"
    );
    assert!(
        inspect::records(other.path()).unwrap().is_empty(),
        "nothing written to the other output"
    );
    let cp_after: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp_file).unwrap()).unwrap();
    let cp_before: serde_json::Value = serde_json::from_slice(&cp_before).unwrap();
    assert_eq!(cp_after["watermark"], cp_before["watermark"]);
    assert_eq!(cp_after["output"], cp_before["output"]);
    // A moved output folder keeps its identity, so its checkpoint still fits.
    let moved = first.path().with_extension("moved");
    std::fs::rename(first.path(), &moved).unwrap();
    let out = poll_cmd(&hub.url(), &moved, &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(inspect::records(&moved).unwrap().len(), stored);
    std::fs::remove_dir_all(&moved).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_logs_outputs_or_checkpoints() {
    let mut cfg = emulator_config(300, 5, 5);
    cfg.page_cap = 40;
    let (emu, hub) = start(cfg, Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    emu.push_faults([
        dockerhub_audit_emulator::Fault::ExpireToken,
        dockerhub_audit_emulator::Fault::ServerError(500),
    ]);
    let mut everything = String::new();
    for format in ["text", "json"] {
        let out = poll_cmd(
            &hub.url(),
            dir.path(),
            &["--log-level", "trace", "--log-format", format],
        )
        .output()
        .unwrap();
        assert!(out.status.success());
        let (o, e) = text(&out);
        assert!(
            e.contains("401") || format == "json" || e.contains("new one"),
            "the 401 path was logged: {e}"
        );
        everything.push_str(&o);
        everything.push_str(&e);
    }
    let bad = poll_cmd(&hub.url(), dir.path(), &["--log-level", "trace"])
        .env("DOCKERHUB_TOKEN", "dckr_oat_wrong_one")
        .output()
        .unwrap();
    everything.push_str(&text(&bad).1);
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        everything.push_str(&String::from_utf8_lossy(&bytes));
        if entry.to_string_lossy().ends_with(".gz") {
            let mut s = String::new();
            use std::io::Read;
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            everything.push_str(&s);
        }
    }
    assert!(everything.len() > 1000, "there was output to check");
    assert!(!everything.contains(SECRET), "the Docker Hub token leaked");
    assert!(
        !everything.contains("dckr_oat_wrong_one"),
        "a rejected token leaked"
    );
    // Bearer tokens are JWTs: base64 of '{"' starts every one of them.
    assert!(!everything.contains("eyJ"), "a bearer token leaked");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_checkpoint() {
    let (_emu, hub) = start(emulator_config(200, 3, 6), Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let status = |dir: &Path| {
        let out = Command::new(BIN)
            .args(["status", "--org", "acme", "--output"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        text(&out).0
    };
    assert!(status(dir.path()).contains("no checkpoint"));
    let out = poll_cmd(&hub.url(), dir.path(), &[]).output().unwrap();
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("events written") && stdout.contains("watermark"),
        "{stdout}"
    );
    let s = status(dir.path());
    assert!(
        s.contains("watermark:")
            && s.contains("ago")
            && s.contains("caught up")
            && s.contains("pending:      none")
            && s.contains("output:       local:")
            && s.contains("quarantined:  0"),
        "{s}"
    );
    // Ages in whole seconds: "(1m 4s ago)", never milliseconds.
    let age = s.lines().find(|l| l.starts_with("watermark:")).unwrap();
    assert!(
        !age.contains("ms") && !age.contains("us ") && !age.contains("ns "),
        "{age}"
    );
    // The activity view: one line per day, its count the events stored under that day's
    // partition (counted here from the records themselves, by their day).
    let mut per_day = std::collections::BTreeMap::<String, u64>::new();
    for r in inspect::records(dir.path()).unwrap() {
        let day = r["timestamp"].as_str().unwrap()[..10].to_string();
        *per_day.entry(day).or_default() += 1;
    }
    let shown: std::collections::BTreeMap<String, u64> = s
        .lines()
        .filter(|l| l.starts_with("  20"))
        .map(|l| {
            let mut tokens = l.split_whitespace();
            let day = tokens.next().unwrap().to_string();
            let n = tokens
                .find_map(|t| t.replace(',', "").parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count in {l:?}"));
            (day, n)
        })
        .collect();
    assert_eq!(shown.len(), 30, "the last 30 days by default\n{s}");
    let stored_in_view: u64 = shown.values().sum();
    assert!(stored_in_view > 0, "{s}");
    for (day, n) in &shown {
        assert_eq!(per_day.get(day).copied().unwrap_or(0), *n, "{day}\n{s}");
    }
    assert!(
        s.contains(&format!(
            "activity:     {} events stored",
            dockerhub_audit::activity::thousands(stored_in_view)
        )),
        "{s}"
    );
    // Another output than the checkpoint's: no picture of the wrong trail, but what to give.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["status", "--org", "acme", "--checkpoint"])
        .arg(dir.path().join("_checkpoints"))
        .arg("--output")
        .arg(elsewhere.path())
        .output()
        .unwrap();
    let (o, _) = text(&out);
    assert!(
        out.status.success()
            && o.contains("activity:     this checkpoint belongs to the output local:")
            && !o.lines().any(|l| l.starts_with("  20")),
        "{o}"
    );
    // An object it cannot read costs the picture, not the status; --days 0 reads none.
    let damaged = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), damaged.path());
    let object = inspect::objects(damaged.path()).unwrap().pop().unwrap();
    std::fs::write(&object, b"not gzip").unwrap();
    let d = status(damaged.path());
    assert!(
        d.contains("watermark:") && d.contains("activity:     cannot read the output"),
        "{d}"
    );
    let out = Command::new(BIN)
        .args(["status", "--org", "acme", "--days", "0", "--output"])
        .arg(damaged.path())
        .output()
        .unwrap();
    assert!(
        out.status.success() && !text(&out).0.contains("activity:"),
        "--days 0 reads no object: {:?}",
        text(&out)
    );

    // Every org at once: acme is collected; `never` was meant to be and has no checkpoint.
    let all = |orgs: &str| {
        Command::new(BIN)
            .args(["status", "--all", "--orgs", orgs, "--output"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = all("acme");
    let (s, _) = text(&out);
    assert!(out.status.success(), "{s}");
    let row = s.lines().find(|l| l.starts_with("acme ")).unwrap_or_default();
    assert!(row.contains(" ok ") && row.contains("events"), "{s}");
    assert!(s.contains("0 of 1 org(s) stale"), "{s}");
    let out = all("acme,never");
    let (s, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "a stale org: exit status 1\n{s}");
    assert!(
        s.lines().any(|l| l.starts_with("never ") && l.contains("STALE")),
        "{s}"
    );
    assert!(
        s.contains("never: never ran") && s.contains("collect-never"),
        "{s}"
    );
    assert!(s.contains("1 of 2 org(s) stale"), "{s}");
    // Neither --org nor --all: a usage error that says so.
    let out = Command::new(BIN)
        .args(["status", "--output"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Its output read by a reader that went away (`| head`): no panic, a clean exit. The
    // pipe's reading end is closed before the command starts, so its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["status", "--org", "acme", "--output"])
        .arg(dir.path())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "{:?} {err}",
        out.status
    );
}

#[test]
fn the_emulator_command_serves_a_poll() {
    let mut emu = Command::new(BIN)
        .args([
            "emulator", "--port", "0", "--events", "150", "--days", "3", "--secret",
        ])
        .arg(SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    // Kept open while the emulator runs: a closed pipe would end it at its next line.
    let mut lines = std::io::BufReader::new(emu.stdout.take().unwrap());
    lines.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL is printed")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = poll_cmd(&url, dir.path(), &[]).output().unwrap();
    let _ = emu.kill();
    let _ = emu.wait();
    drop(lines);
    assert!(out.status.success(), "{:?}", text(&out));
    let n = stored(dir.path()).len();
    assert!(n >= 150, "{n}");
}

#[test]
fn the_demo_runs_offline_and_proves_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = Command::new(BIN)
        .args(["demo", "--events", "600", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 missing, 0 duplicated"), "{stdout}");
    assert!(stdout.contains("repo"), "categories are listed: {stdout}");
    assert!(stored(&demo_dir).len() >= 600);
    // A second demo in the same folder replaces the first; a folder of something else is refused.
    assert!(Command::new(BIN)
        .args(["demo", "--events", "100", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap()
        .status
        .success());
    let other = dir.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(other.join("keep.txt").exists());
}

/// The alerts of a JSON-lines file: (rule id, event id, alert id) per line.
fn alert_lines(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is one alert as JSON");
            let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap().to_string();
            (s("/rule/id"), s("/event_id"), s("/alert_id"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_raised_once_per_matching_event_under_kills_and_faults() {
    use dockerhub_audit::alert::{alert_id, Rules};
    let rules = Rules::defaults();
    let mut cfg = emulator_config(4000, 20, 77);
    cfg.page_cap = 50;
    cfg.twin_fraction = 0.02;
    cfg.fault_rate = 0.05;
    cfg.fault_kinds = vec![
        dockerhub_audit_emulator::Fault::ServerError(503),
        dockerhub_audit_emulator::Fault::TooManyRequests,
        dockerhub_audit_emulator::Fault::Truncated,
    ];
    let (emu, hub) = start(cfg, Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let side = tempfile::tempdir().unwrap();
    let alerts = side.path().join("alerts.ndjson");
    let alerts_arg = alerts.to_str().unwrap().to_string();
    let with_rules = [
        "--rules",
        "default",
        "--alerts-out",
        alerts_arg.as_str(),
        "--batch-events",
        "200",
    ];
    let mut rng = fastrand::Rng::with_seed(77);
    // Runs killed while stalled in a request, each going on from where the last stopped.
    for _ in 0..3 {
        let base = emu.stats().list_requests;
        let hold = emu.hold_list_request(base + 2 + rng.u64(..15));
        let mut child = poll_cmd(&hub.url(), dir.path(), &with_rules)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reached = wait_for_hold(&hold, &mut child).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        hold.release.notify_one();
        assert!(reached, "the run ended before it was killed");
    }
    let out = poll_cmd(&hub.url(), dir.path(), &with_rules).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(
        stdout.contains("alerts raised"),
        "the summary counts alerts: {stdout}"
    );
    assert_exact(
        &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
        dir.path(),
    );

    // Expected: one alert per (rule, stored record) the rules match.
    let records = inspect::records(dir.path()).unwrap();
    let mut want: Vec<(String, String)> = records
        .iter()
        .flat_map(|r| {
            let id = r["event_id"].as_str().unwrap().to_string();
            rules.matching(r).map(move |rule| (rule.id.clone(), id.clone()))
        })
        .collect();
    want.sort();
    let got = alert_lines(&alerts);
    for (rule, event, alert) in &got {
        assert_eq!(
            alert,
            &alert_id(rule, event),
            "the alert id is derived from rule and event"
        );
    }
    let mut distinct: Vec<(String, String)> = got.iter().map(|(r, e, _)| (r.clone(), e.clone())).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, want, "not one alert per stored matching event");
    // Every default rule is exercised by the emulator's catalogue.
    for rule in rules.iter() {
        assert!(
            want.iter().any(|(r, _)| r == &rule.id),
            "no emulator event matches {}",
            rule.id
        );
    }
    // Independently of the rule engine: every stored OIDC connection change, SSO connection
    // deletion and Registry Access Management disabling raised its alert.
    for (action, rule) in [
        ("oidc.connection.", "oidc-connection-changed"),
        ("enterprise.sso.connection.delete", "sso-connection-deleted"),
        ("org.registry_access.disabled", "registry-access-disabled"),
    ] {
        let events = records
            .iter()
            .filter(|r| r["action"].as_str().unwrap().starts_with(action))
            .count();
        assert!(events > 0, "{action}");
        assert_eq!(want.iter().filter(|(r, _)| r == rule).count(), events, "{rule}");
    }

    // Re-runs read the overlap again and raise nothing.
    let before = got.len();
    let out = poll_cmd(&hub.url(), dir.path(), &with_rules).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(alert_lines(&alerts).len(), before, "a re-run raised alerts again");
    hub.shutdown();
}

#[test]
fn bad_rules_files_fail_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    for (body, says) in [
        ("[[rule]]\nid = \"x\"\ntitle = \"t\"\nwhy = \"w\"\nseverity = \"high\"\naction = \"a\"\nwhenn = {}\n", "unknown field `whenn`"),
        ("[[rule]]\nid = \"x\"\ntitle = \"t\"\nwhy = \"w\"\nseverity = \"high\"\naction = \"a\"\nwhen = { user = \"x\" }\n", "unknown field \"user\""),
        ("not toml at all", "not a valid rules file"),
    ] {
        std::fs::write(&rules, body).unwrap();
        // Nothing listens there: a run that got past the rules would fail differently.
        let out = poll_cmd("http://127.0.0.1:9", &dir.path().join("out"), &["--rules", rules.to_str().unwrap()])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout} {stderr}");
        assert!(stderr.contains(says) && stderr.contains("rules.toml"), "{stderr}");
        assert!(!dir.path().join("out").exists(), "nothing ran");
    }
    let out = poll_cmd("http://127.0.0.1:9", dir.path(), &["--rules", "missing.toml"])
        .output()
        .unwrap();
    assert!(
        text(&out).1.contains("cannot read the rules file missing.toml"),
        "{:?}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_stops_early_exits_75_and_the_next_one_finishes() {
    let (emu, hub) = start(emulator_config(300, 5, 12), Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    // Out of time before the first request: nothing wrong, nothing done, run again later.
    let out = poll_cmd(&hub.url(), dir.path(), &["--max-duration", "1ms"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(75), "{stdout}\n{err}");
    assert!(stdout.contains("stopped early"), "{stdout}");
    assert!(!err.contains("error:"), "no error line: {err}");
    let out = poll_cmd(&hub.url(), dir.path(), &[]).output().unwrap();
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    assert!(stdout.contains("caught up"), "{stdout}");
    assert_exact(
        &expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1)),
        dir.path(),
    );
}

/// Runs `cmd` to its end and returns its output with its peak resident memory in bytes.
/// Through a small Python parent: a child spawned from this test process would count this
/// process's memory as its own (Linux keeps the high-water mark across exec, and posix_spawn
/// execs from the parent's memory), and the emulator in it holds every padded event.
fn output_with_peak_rss(cmd: &mut Command) -> (Output, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:])\n\
        sys.stderr.write('\\npeak-rss-kib %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode if r.returncode >= 0 else 1)\n";
    let mut wrapped = Command::new("python3");
    wrapped
        .arg("-c")
        .arg(MEASURE)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let mut out = wrapped.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let (rest, last) = err.trim_end().rsplit_once('\n').unwrap_or(("", err.trim_end()));
    let kib: u64 = last
        .strip_prefix("peak-rss-kib ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS reported: {err}"));
    out.stderr = rest.as_bytes().to_vec();
    (out, kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_megabytes_are_read_within_a_small_lambdas_memory() {
    // A Hub whose events carry 100 KB each: pages of 100 are 10 MB, the whole range 60 MB.
    // Bounded by events alone, one read held all of it (and the batch a copy); bounded by
    // bytes, a read holds at most 16 MiB and a commit is made every 8 MiB.
    let mut cfg = emulator_config(600, 3, 21);
    cfg.event_padding = 100_000;
    let (emu, hub) = start(cfg, Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, peak) = output_with_peak_rss(&mut poll_cmd(&hub.url(), dir.path(), &[]));
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    eprintln!(
        "peak RSS of a poll of 600 events of 100 KB in pages of 10 MB: {} MiB",
        peak >> 20
    );
    assert!(
        peak < 128 << 20,
        "peak RSS {} MiB: more than the smallest Lambda holds",
        peak >> 20
    );
    // Everything landed, exactly, padding and all.
    let records = inspect::records(dir.path()).unwrap();
    assert!(records
        .iter()
        .all(|r| r["padding"].as_str().map(str::len) == Some(100_000)));
    let stored: Vec<String> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove("padding");
            inspect::hub_canonical(&r).unwrap()
        })
        .collect();
    let want = expected(&emu, chrono::Utc::now() - chrono::Duration::minutes(1));
    assert!(inspect::compare(&want, &stored).exact());
    // In several commits, none far beyond the byte bound (a commit's objects hold at most
    // the batch bound plus one read).
    let objects = walk_objects(dir.path());
    assert!(objects.len() >= 4, "{} objects", objects.len());
    // Verify holds the day's ids, not its events: it too stays small, and finds all.
    let mut verify = Command::new(BIN);
    verify
        .args(["verify", "--org", "acme", "--hub-url", &hub.url(), "--output"])
        .arg(dir.path())
        .args(["--since", "4d"])
        .env("DOCKERHUB_USERNAME", "acme")
        .env("DOCKERHUB_TOKEN", SECRET)
        .stdin(Stdio::null());
    let (out, peak) = output_with_peak_rss(&mut verify);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    assert!(stdout.lines().last().unwrap().contains(" 0 missing"), "{stdout}");
    eprintln!("peak RSS of its verify: {} MiB", peak >> 20);
    assert!(peak < 128 << 20, "verify's peak RSS {} MiB", peak >> 20);
}

fn walk_objects(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_objects(&p));
        } else if p.to_string_lossy().ends_with(".json.gz") {
            out.push(p);
        }
    }
    out
}

/// Issue 23: `--progress always` draws the line on stderr even into a pipe: it reaches 100%
/// on a backfill, shows the wait Docker Hub asks for (two 429s, each `Retry-After` a second
/// ahead) with its reason, and puts nothing on stdout; by default, into a pipe, there is no
/// line at all, and the results on stdout are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_line_is_drawn_on_stderr_only_and_when_asked() {
    let (emu, hub) = start(emulator_config(600, 3, 12), Arc::new(SystemClock)).await;
    let summary_of = |stdout: &str| -> Vec<String> {
        // The summary's lines, less what differs from run to run (ids, times, paths).
        stdout
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    let drawn = tempfile::tempdir().unwrap();
    emu.push_faults([
        dockerhub_audit_emulator::Fault::TooManyRequests,
        dockerhub_audit_emulator::Fault::TooManyRequests,
    ]);
    let out = poll_cmd(&hub.url(), drawn.path(), &["--progress", "always"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("100%"), "the line reaches 100%:\n{stderr}");
    assert!(stderr.contains("events written ·"), "{stderr}");
    assert!(
        stderr.contains("waiting") && stderr.contains("rate limit (429)"),
        "the wait and its reason:\n{stderr}"
    );
    assert!(
        !stdout.contains("events written ·") && !stdout.contains('\u{1b}') && !stdout.contains("100%"),
        "nothing of the line on stdout:\n{stdout}"
    );

    let plain = tempfile::tempdir().unwrap();
    let out = poll_cmd(&hub.url(), plain.path(), &[]).output().unwrap();
    let (plain_stdout, plain_stderr) = text(&out);
    assert!(out.status.success(), "{plain_stderr}");
    assert!(
        !plain_stderr.contains("events written ·") && !plain_stderr.contains('\u{1b}'),
        "no line into a pipe by default:\n{plain_stderr}"
    );
    // The log lines are as they were: the run's own, and none of the progress events.
    assert!(
        plain_stderr.contains("reading") && plain_stderr.contains("committed"),
        "{plain_stderr}"
    );
    assert!(!plain_stderr.contains("kind="), "{plain_stderr}");
    // With the line drawn, each log line still comes whole (above it).
    assert!(
        stderr.contains("WARN") && stderr.contains("rate limited (429)"),
        "the 429 warning above the line:\n{stderr}"
    );
    assert_eq!(summary_of(&plain_stdout), summary_of(&stdout));
    // `--progress never`: no line, even where it would be drawn.
    let never = tempfile::tempdir().unwrap();
    let out = poll_cmd(&hub.url(), never.path(), &["--progress", "never"])
        .output()
        .unwrap();
    let (_, never_stderr) = text(&out);
    assert!(
        out.status.success() && !never_stderr.contains("events written ·"),
        "{never_stderr}"
    );
    assert_eq!(
        inspect::records(plain.path()).unwrap().len(),
        inspect::records(drawn.path()).unwrap().len()
    );
    hub.shutdown();
}

/// A copy of the folder `from` (files and folders) under `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
