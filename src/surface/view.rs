//! The Athena view `events` as text: the compacted predicate and the view's SQL, rendered
//! from a [`DayMap`], and the map kept with the view (so the view alone says which days are
//! compacted). infra/athena/events-table.sql and template.yaml hold the same SQL with nothing
//! compacted; a test compares them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};

use super::DayMap;

/// The view's columns, as Athena (Trino) types, in order.
pub const COLUMNS: [(&str, &str); 12] = [
    ("account", "varchar"),
    ("action", "varchar"),
    ("action_description", "varchar"),
    ("actor", "varchar"),
    ("category", "varchar"),
    (
        "collector",
        "row(ingested_at varchar,window_from varchar,window_to varchar,run_id varchar)",
    ),
    ("data", "map(varchar,varchar)"),
    ("event_id", "varchar"),
    ("name", "varchar"),
    ("timestamp", "varchar"),
    ("org", "varchar"),
    ("dt", "varchar"),
];

/// The same columns as Hive types (the view's storage descriptor in Glue).
pub const HIVE_COLUMNS: [(&str, &str); 12] = [
    ("account", "string"),
    ("action", "string"),
    ("action_description", "string"),
    ("actor", "string"),
    ("category", "string"),
    (
        "collector",
        "struct<ingested_at:string,window_from:string,window_to:string,run_id:string>",
    ),
    ("data", "map<string,string>"),
    ("event_id", "string"),
    ("name", "string"),
    ("timestamp", "string"),
    ("org", "string"),
    ("dt", "string"),
];

/// The Glue table parameter that keeps the map with the view.
pub const MAP_PARAMETER: &str = "dockerhub_audit.compacted";

/// Contiguous runs of days, `(first, last)`.
fn runs(days: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some((_, last)) if *last + Duration::days(1) == d => *last = d,
            _ => out.push((d, d)),
        }
    }
    out
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The predicate over the partition columns `org` and `dt` that is true exactly for the
/// compacted days: `false` when there are none. Org names are checked names (letters,
/// digits, `-`, `_`), so they need no quoting beyond the quotes.
pub fn predicate(map: &DayMap) -> String {
    let mut orgs = Vec::new();
    for (org, days) in map {
        if days.is_empty() {
            continue;
        }
        let parts: Vec<String> = runs(days)
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    format!("dt = '{}'", ymd(a))
                } else {
                    format!("dt BETWEEN '{}' AND '{}'", ymd(a), ymd(b))
                }
            })
            .collect();
        orgs.push(format!(
            "(org = '{}' AND ({}))",
            org.replace('\'', "''"),
            parts.join(" OR ")
        ));
    }
    if orgs.is_empty() {
        "false".to_string()
    } else {
        orgs.join(" OR ")
    }
}

/// The view's SQL: the raw table for every day not compacted, the compacted table for the
/// others, with the compacted `timestamp` rendered back to ISO 8601 text.
pub fn sql(map: &DayMap) -> String {
    let c = predicate(map);
    format!(
        "SELECT account, action, action_description, actor, category, collector, data, event_id, name, \"timestamp\", org, dt \
         FROM events_raw WHERE NOT ({c}) UNION ALL \
         SELECT account, action, action_description, actor, category, collector, data, event_id, name, \
         to_iso8601(with_timezone(\"timestamp\", 'UTC')) AS \"timestamp\", org, dt FROM events_compacted WHERE {c}"
    )
}

/// The map as kept in the view's parameter: per org, its runs of days (`first/last`, or one
/// day), so a year of compacted days is a few short strings.
pub fn encode_map(map: &DayMap) -> String {
    let out: BTreeMap<&String, Vec<String>> = map
        .iter()
        .filter(|(_, d)| !d.is_empty())
        .map(|(org, days)| {
            let r = runs(days)
                .into_iter()
                .map(|(a, b)| {
                    if a == b {
                        ymd(a)
                    } else {
                        format!("{}/{}", ymd(a), ymd(b))
                    }
                })
                .collect();
            (org, r)
        })
        .collect();
    serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_string())
}

/// The map from the view's parameter (absent: nothing compacted).
pub fn decode_map(text: Option<&str>) -> Result<DayMap, String> {
    let Some(text) = text else {
        return Ok(DayMap::new());
    };
    let raw: BTreeMap<String, Vec<String>> = serde_json::from_str(text)
        .map_err(|e| format!("the view's parameter {MAP_PARAMETER} is not the map this tool writes: {e}"))?;
    let day = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| format!("the view's parameter {MAP_PARAMETER} holds {s:?}, not a date"))
    };
    let mut map = DayMap::new();
    for (org, runs) in raw {
        let days = map.entry(org).or_default();
        for r in runs {
            let (a, b) = match r.split_once('/') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => (day(&r)?, day(&r)?),
            };
            if b < a || (b - a).num_days() > 100_000 {
                return Err(format!(
                    "the view's parameter {MAP_PARAMETER} holds the run {r:?}, which is not one"
                ));
            }
            let mut d = a;
            while d <= b {
                days.insert(d);
                d += Duration::days(1);
            }
        }
    }
    Ok(map)
}

/// The view's definition as Athena stores it in Glue: `/* Presto View: <base64 JSON> */`.
pub fn presto_view_text(map: &DayMap, database: &str) -> String {
    use base64::Engine;
    let columns: Vec<serde_json::Value> = COLUMNS
        .iter()
        .map(|(n, t)| serde_json::json!({"name": n, "type": t}))
        .collect();
    let body = serde_json::json!({
        "originalSql": sql(map),
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": columns,
    });
    format!(
        "/* Presto View: {} */",
        base64::engine::general_purpose::STANDARD.encode(body.to_string())
    )
}

/// The SQL inside a Presto view text (to check what Glue holds).
pub fn sql_of_presto_view(text: &str) -> Option<String> {
    use base64::Engine;
    let inner = text
        .trim()
        .strip_prefix("/* Presto View: ")?
        .strip_suffix(" */")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner.trim())
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["originalSql"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn nothing_compacted_reads_every_day_raw() {
        let map = DayMap::new();
        assert_eq!(predicate(&map), "false");
        assert!(sql(&map).contains("FROM events_raw WHERE NOT (false) UNION ALL"));
        assert!(sql(&map).ends_with("FROM events_compacted WHERE false"));
    }

    #[test]
    fn runs_of_days_become_ranges_and_round_trip() {
        let mut map = DayMap::new();
        let days: BTreeSet<NaiveDate> = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"]
            .iter()
            .map(|s| d(s))
            .collect();
        map.insert("acme".into(), days);
        map.insert("example".into(), [d("2026-02-01")].into());
        map.insert("empty".into(), BTreeSet::new());
        assert_eq!(
            predicate(&map),
            "(org = 'acme' AND (dt BETWEEN '2026-01-01' AND '2026-01-03' OR dt = '2026-01-05')) \
             OR (org = 'example' AND (dt = '2026-02-01'))"
        );
        let text = encode_map(&map);
        assert_eq!(
            text,
            r#"{"acme":["2026-01-01/2026-01-03","2026-01-05"],"example":["2026-02-01"]}"#
        );
        let back = decode_map(Some(&text)).unwrap();
        map.remove("empty");
        assert_eq!(back, map);
        let view = presto_view_text(&map, "dockerhub_audit");
        assert_eq!(sql_of_presto_view(&view).unwrap(), sql(&map));
    }

    #[test]
    fn a_map_this_tool_did_not_write_is_refused() {
        assert!(decode_map(Some("[1,2]")).is_err());
        assert!(decode_map(Some(r#"{"acme":["2026-13-01"]}"#)).is_err());
        assert!(decode_map(Some(r#"{"acme":["2026-02-01/2026-01-01"]}"#)).is_err());
        assert_eq!(decode_map(None).unwrap(), DayMap::new());
    }
}
