//! The query surface of a local output: a day is compacted when its compacted object is in
//! place (`compacted/org=<org>/dt=<day>/events.parquet`). The object is written next to
//! that name first and renamed into it (the atomic flip); reopening a day removes it.
//! infra/duckdb/events.sql reads the same rule.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{compacted_key, CompactedDays, QuerySurface};
use crate::ports::StoreError;
use crate::types::Org;

/// The compacted side of a local output folder.
#[derive(Debug, Clone)]
pub struct LocalSurface {
    root: PathBuf,
}

impl LocalSurface {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSurface { root: root.into() }
    }

    fn published(&self, org: &Org, day: NaiveDate) -> PathBuf {
        self.root.join(compacted_key(org, day))
    }

    /// Where a written object waits for its flip (dot-named: no reader globs it).
    fn pending(&self, org: &Org, day: NaiveDate) -> PathBuf {
        self.published(org, day).with_file_name(".events.parquet.pending")
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!(
        "cannot {what} {}: {e}; check the output folder's permissions and free space",
        path.display()
    ))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))
}

#[async_trait]
impl QuerySurface for LocalSurface {
    async fn reopen(&self, org: &Org, day: NaiveDate) -> Result<bool, StoreError> {
        let path = self.published(org, day);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("remove", &path, e)),
        }
    }
}

#[async_trait]
impl CompactedDays for LocalSurface {
    async fn days(&self, org: &Org) -> Result<BTreeSet<NaiveDate>, StoreError> {
        let dir = self.root.join(format!("compacted/org={org}"));
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(io("list", &dir, e)),
        };
        let mut out = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(day) = name
                .strip_prefix("dt=")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if self.published(org, day).exists() {
                out.insert(day);
            }
        }
        Ok(out)
    }

    async fn put(&self, org: &Org, day: NaiveDate, body: Vec<u8>) -> Result<String, StoreError> {
        let pending = self.pending(org, day);
        let dir = pending.parent().expect("a compacted path has a folder");
        fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let tmp = pending.with_file_name(format!(".events.parquet.{}.tmp", std::process::id()));
        let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        fs::rename(&tmp, &pending).map_err(|e| io("rename", &tmp, e))?;
        sync_dir(dir)?;
        Ok(compacted_key(org, day))
    }

    async fn get(&self, org: &Org, day: NaiveDate) -> Result<Vec<u8>, StoreError> {
        let path = self.published(org, day);
        fs::read(&path).map_err(|e| match e.kind() {
            // Not transient: the day must be read from its raw objects again.
            ErrorKind::NotFound => StoreError::Invalid(format!("{} is gone", path.display())),
            _ => io("read", &path, e),
        })
    }

    async fn publish(&self, org: &Org, day: NaiveDate) -> Result<(), StoreError> {
        let pending = self.pending(org, day);
        let published = self.published(org, day);
        fs::rename(&pending, &published).map_err(|e| io("rename", &pending, e))?;
        sync_dir(published.parent().expect("a compacted path has a folder"))
    }
}
