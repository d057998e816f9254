//! The hot path per page of 100 events: parse the page, give each event its id, build the
//! records, write them as NDJSON and gzip them into an object. In the same run, deflate
//! alone on the very bytes the hot path compresses, as the yardstick: the goal is the whole
//! hot path at least half as fast as deflate alone.
//!
//!     cargo bench --bench hot_path
//!
//! Under `cargo test --benches` (the test command) each benchmark runs once, as a smoke test.

use std::hint::black_box;
use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{write::GzEncoder, Compression, GzBuilder};
use serde_json::json;

use dockerhub_audit::collect::batch::Batch;
use dockerhub_audit::event::encode::{self, LEVEL};
use dockerhub_audit::event::id::assign_ids;
use dockerhub_audit::event::record::Provenance;
use dockerhub_audit::hub::wire::parse_page;
use dockerhub_audit::types::{rfc3339, Org, RunId, Window};

const EVENTS: usize = 100;

/// A list response as Docker Hub sends it: 100 events of the usual actions and shapes.
fn page_body(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = DateTime::parse_from_rfc3339("2026-11-20T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let actions = [
        ("repo.tag.push", "repo"),
        ("repo.create", "repo"),
        ("org.member.add", "org"),
        ("team.member.add", "team"),
        ("repo.tag.delete", "repo"),
    ];
    let logs: Vec<_> = (0..EVENTS)
        .map(|i| {
            let (action, _) = actions[rng.usize(..actions.len())];
            let t = start + Duration::seconds(i as i64 * 37 + rng.i64(0..30));
            json!({
                "account": "acme",
                "action": action,
                "name": format!("acme/service-{}", rng.u32(0..40)),
                "actor": format!("user{}", rng.u32(0..25)),
                "data": {"digest": format!("sha256:{:064x}", rng.u128(..)), "tag": format!("v1.{}.{}", rng.u8(..), rng.u8(..))},
                "timestamp": rfc3339(t),
                "action_description": format!("pushed the tag v1.{} to the repository", rng.u8(..)),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "logs": logs })).unwrap()
}

fn provenance() -> Provenance {
    let t = DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Provenance {
        ingested_at: t,
        window: Window::new(t - Duration::hours(1), t),
        run_id: RunId("3f2a9c0d11e84b7a".into()),
    }
}

/// Parse → ids → records → NDJSON → gzip: the objects' bytes.
fn hot_path(org: &Org, body: &[u8], prov: &Provenance) -> Vec<Vec<u8>> {
    let page = parse_page(body).expect("a valid page");
    let events = assign_ids(org, page.events);
    let batch = Batch::of(prov.window.from, prov.window.to, events);
    batch
        .into_objects(org, prov, None)
        .into_iter()
        .map(|o| o.body)
        .collect()
}

fn deflate(ndjson: &[u8]) -> Vec<u8> {
    deflate_at(ndjson, LEVEL)
}

fn deflate_at(ndjson: &[u8], level: Compression) -> Vec<u8> {
    let mut gz: GzEncoder<Vec<u8>> = GzBuilder::new().mtime(0).write(Vec::new(), level);
    gz.write_all(ndjson).unwrap();
    gz.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    let org = Org::new("acme").unwrap();
    let body = page_body(7);
    let prov = provenance();
    let objects = hot_path(&org, &body, &prov);
    let ndjson: Vec<u8> = objects
        .iter()
        .flat_map(|o| encode::decode_bytes(o).unwrap())
        .collect();
    let compressed: usize = objects.iter().map(Vec::len).sum();
    eprintln!(
        "one page: {} bytes of JSON from the Hub, {} bytes of NDJSON, {compressed} bytes gzipped ({:.1}%)",
        body.len(),
        ndjson.len(),
        100.0 * compressed as f64 / ndjson.len() as f64
    );

    let mut g = c.benchmark_group("page_of_100_events");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("hot_path", |b| b.iter(|| hot_path(&org, black_box(&body), &prov)));
    g.bench_function("deflate_alone", |b| b.iter(|| deflate(black_box(&ndjson))));
    g.finish();

    // The level's trade: size against time, on the same bytes.
    let mut g = c.benchmark_group("deflate_level");
    g.throughput(Throughput::Elements(EVENTS as u64));
    for level in 1..=6 {
        let size = deflate_at(&ndjson, Compression::new(level)).len();
        eprintln!(
            "level {level}: {size} bytes gzipped ({:.1}%)",
            100.0 * size as f64 / ndjson.len() as f64
        );
        g.bench_function(format!("level_{level}"), |b| {
            b.iter(|| deflate_at(black_box(&ndjson), Compression::new(level)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
