//! Reading back what a local output folder holds: for `status`, the demo's summary and
//! its proof that nothing is missing or doubled, and the tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::event::{encode, record::ADDED_FIELDS, HubEvent};

/// Every `*.json.gz` object under `root` (temporary files, dot-named, are skipped).
pub fn objects(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type()?.is_dir() {
                if !name.starts_with('_') && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".json.gz") && !name.starts_with('.') {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every record stored under `root`.
pub fn records(root: &Path) -> std::io::Result<Vec<Map<String, Value>>> {
    let mut out = Vec::new();
    for path in objects(root)? {
        let bytes = fs::read(&path)?;
        out.extend(
            encode::decode(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
        );
    }
    Ok(out)
}

/// The Hub's part of a record (what the collector added removed), in canonical form.
pub fn hub_canonical(record: &Map<String, Value>) -> Option<String> {
    let mut r = record.clone();
    for f in ADDED_FIELDS {
        r.remove(f);
    }
    for f in ADDED_FIELDS {
        if let Some(v) = r.remove(&format!("hub_{f}")) {
            r.insert(f.to_string(), v);
        }
    }
    HubEvent::from_wire(Value::Object(r))
        .ok()
        .map(|e| crate::event::id::canonical(&e))
}

/// Events per category.
pub fn categories(records: &[Map<String, Value>]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        let c = r.get("category").and_then(Value::as_str).unwrap_or("unknown");
        *out.entry(c.to_string()).or_insert(0) += 1;
    }
    out
}

/// How a stored multiset compares with the expected one (both as canonical forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub expected: usize,
    pub stored: usize,
    pub missing: usize,
    pub extra: usize,
}

impl Comparison {
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }
}

/// Compares multisets: `missing` counts expected copies not stored, `extra` stored copies
/// not expected (a duplicate counts as extra).
pub fn compare(expected: &[String], stored: &[String]) -> Comparison {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for e in expected {
        *counts.entry(e).or_insert(0) += 1;
    }
    for s in stored {
        *counts.entry(s).or_insert(0) -= 1;
    }
    let missing = counts.values().filter(|c| **c > 0).map(|c| *c as usize).sum();
    let extra = counts.values().filter(|c| **c < 0).map(|c| (-*c) as usize).sum();
    Comparison {
        expected: expected.len(),
        stored: stored.len(),
        missing,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_comparison_counts_copies() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = compare(&s(&["a", "a", "b"]), &s(&["a", "b", "b", "c"]));
        assert_eq!(
            c,
            Comparison {
                expected: 3,
                stored: 4,
                missing: 1,
                extra: 2
            }
        );
        assert!(compare(&s(&["a", "a"]), &s(&["a", "a"])).exact());
    }
}
