//! Property tests of everything that parses input from the network: the page parser, the
//! timestamp parser and the `Retry-After` parser. They stand in for fuzzing (cargo-fuzz
//! needs a nightly toolchain, which these machines do not have): arbitrary bytes and
//! strings, and structured inputs built to hit every branch, on a fixed seed.
//!
//! Run longer with `PROPTEST_CASES=100000 cargo test --test parsers`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use dockerhub_audit::event::{parse_timestamp, HubEvent};
use dockerhub_audit::hub::retry::parse_retry_after;
use dockerhub_audit::hub::wire::parse_page;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{json, Value};

fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0xd0c4_e8a0_d17a_0001),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        timestamp_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("timestamp".to_string()),
                        Just("action".to_string()),
                        "[a-z]{1,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// RFC 3339 texts, valid and nearly valid, with the instant they stand for when valid.
fn timestamp() -> impl Strategy<Value = (String, Option<DateTime<Utc>>)> {
    (
        0i64..4_102_444_800,
        prop::option::of(0u32..1_000_000_000),
        prop_oneof![Just(0i32), -720i32..=840],
        0usize..4,
    )
        .prop_map(|(secs, nanos, offset_min, mangle)| {
            let t = Utc.timestamp_opt(secs, nanos.unwrap_or(0)).unwrap();
            let fixed = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
            let local = t.with_timezone(&fixed);
            let mut text = match nanos {
                None => local.format("%Y-%m-%dT%H:%M:%S").to_string(),
                Some(_) => local.format("%Y-%m-%dT%H:%M:%S%.9f").to_string(),
            };
            text.push_str(&if offset_min == 0 {
                "Z".to_string()
            } else {
                local.format("%:z").to_string()
            });
            match mangle {
                0 | 1 => (text, Some(t)),
                2 => (text.replacen('T', "x", 1), None),
                _ => (text[..text.len() - 1].to_string(), None),
            }
        })
}

fn timestamp_text() -> impl Strategy<Value = String> {
    timestamp().prop_map(|(s, _)| s)
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn the_page_parser_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_page(&body);
    }

    #[test]
    fn every_item_of_a_list_is_an_event_or_set_apart(items in prop::collection::vec(json_value(), 0..12)) {
        let body = serde_json::to_vec(&json!({ "logs": items })).unwrap();
        let page = parse_page(&body).expect("a list of anything is a page");
        prop_assert_eq!(page.events.len() + page.unreadable.len(), items.len());
        let readable = items.iter().filter(|i| HubEvent::from_wire((*i).clone()).is_ok()).count();
        prop_assert_eq!(page.events.len(), readable);
        for u in &page.unreadable {
            prop_assert!(!u.reason.is_empty());
            prop_assert!(items.contains(&u.item), "kept verbatim");
        }
    }

    #[test]
    fn a_body_that_is_not_a_list_of_logs_is_an_error(v in json_value()) {
        let body = serde_json::to_vec(&v).unwrap();
        let ok = match &v {
            Value::Object(m) => match m.get("logs") {
                None => m.is_empty(),
                Some(Value::Null) | Some(Value::Array(_)) => true,
                Some(_) => false,
            },
            _ => false,
        };
        prop_assert_eq!(parse_page(&body).is_ok(), ok);
    }

    #[test]
    fn timestamps_parse_to_the_instant_they_name((text, instant) in timestamp()) {
        match instant {
            Some(t) => prop_assert_eq!(parse_timestamp(&text).unwrap(), t),
            None => prop_assert!(parse_timestamp(&text).is_err(), "{}", text),
        }
    }

    #[test]
    fn the_timestamp_parser_never_panics(s in ".{0,40}") {
        let _ = parse_timestamp(&s);
    }

    #[test]
    fn retry_after_is_a_delay_or_a_unix_time_never_a_panic(s in ".{0,24}", now_secs in 1_600_000_000i64..2_000_000_000) {
        let now = Utc.timestamp_opt(now_secs, 0).unwrap();
        let _ = parse_retry_after(&s, now);
    }

    #[test]
    fn retry_after_reads_both_numeric_forms(n in any::<u64>(), now_secs in 1_600_000_000i64..2_000_000_000) {
        let now = Utc.timestamp_opt(now_secs, 0).unwrap();
        let got = parse_retry_after(&n.to_string(), now).expect("a number is understood");
        if n < 1_000_000_000 {
            prop_assert_eq!(got, std::time::Duration::from_secs(n));
        } else if n < 100_000_000_000 {
            // A unix time: the time left until then, nothing for one in the past.
            let left = (n as i64 - now_secs).max(0) as u64;
            prop_assert_eq!(got, std::time::Duration::from_secs(left));
        } else {
            // Absurdly far: long enough that the client gives up waiting, never short.
            prop_assert!(got >= std::time::Duration::from_secs(365 * 24 * 3600));
        }
    }

    #[test]
    fn retry_after_as_an_http_date(secs in 0i64..3600, now_secs in 1_600_000_000i64..2_000_000_000) {
        let now = Utc.timestamp_opt(now_secs, 0).unwrap();
        let at = now + Duration::seconds(secs);
        let text = at.to_rfc2822();
        prop_assert_eq!(parse_retry_after(&text, now), Some(std::time::Duration::from_secs(secs as u64)));
    }
}
