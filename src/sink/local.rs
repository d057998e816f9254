//! Objects as files under a folder, with the same key layout as S3.
//!
//! A write goes to a temporary file that is fsynced, then hard-linked to its final name:
//! the link fails if the name exists, so an object is never overwritten or seen half
//! written, and a crash leaves at most a stray temporary file (dot-named, ignored by
//! readers that glob `*.json.gz`).

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use chrono::NaiveDate;

use crate::event::key::{partition, ObjectKey};
use crate::ports::{Listed, PutOutcome, Sink, StoreError};
use crate::types::Org;

/// The file at the top of a local output that names it (an `_` name: no query reads it).
pub const OUTPUT_ID: &str = "_output-id";

#[derive(Debug, Clone)]
pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSink { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    fn path(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        // Keys are built from checked parts, but a key from a checkpoint file is input too.
        if key.0.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(StoreError::Io(format!(
                "refusing object key {key:?}: not a relative path"
            )));
        }
        Ok(self.root.join(&key.0))
    }

    /// The objects of one partition folder (temporary files, dot-named, skipped), sorted.
    fn objects_in(&self, rel: &str) -> Result<Vec<Listed>, StoreError> {
        let dir = self.root.join(rel);
        let mut out = Vec::new();
        for entry in read_dir(&dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json.gz") || name.starts_with('.') {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Listed {
                key: ObjectKey(format!("{rel}/{name}")),
                size,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// A folder's entries; a folder that does not exist has none.
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Io(format!("cannot list {}: {e}", dir.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::Io(format!(
            "cannot list {}: {e}; check the output folder's permissions",
            dir.display()
        ))),
    }
}

#[async_trait]
impl Sink for LocalSink {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>) -> Result<PutOutcome, StoreError> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let err = |what: &str, e: std::io::Error| {
            StoreError::Io(format!(
                "cannot {what} {}: {e}; check the output folder's permissions and free space",
                path.display()
            ))
        };
        if path.exists() {
            return Ok(PutOutcome::AlreadyExisted);
        }
        fs::create_dir_all(&dir).map_err(|e| err("create the folder for", e))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(err("write", e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| err("sync the folder of", e))?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExisted),
            Err(e) => Err(err("link", e)),
        }
    }

    async fn identity(&self) -> Result<String, StoreError> {
        // Made once, never overwritten (the same no-clobber write as objects), then read.
        let id = format!("local:{}\n", crate::types::RunId::generate(chrono::Utc::now()));
        self.put(&ObjectKey(OUTPUT_ID.into()), id.into_bytes()).await?;
        let path = self.root.join(OUTPUT_ID);
        let text = fs::read_to_string(&path).map_err(|e| {
            StoreError::Io(format!(
                "cannot read {}: {e}; check the output folder",
                path.display()
            ))
        })?;
        Ok(text.trim().to_string())
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        path.try_exists()
            .map_err(|e| StoreError::Io(format!("cannot check {}: {e}", path.display())))
    }

    async fn days(&self, org: &Org) -> Result<Vec<NaiveDate>, StoreError> {
        let mut days: Vec<NaiveDate> = read_dir(&self.root.join(format!("org={org}")))?
            .iter()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                NaiveDate::parse_from_str(name.strip_prefix("dt=")?, "%Y-%m-%d").ok()
            })
            .collect();
        days.sort();
        Ok(days)
    }

    async fn list_day(&self, org: &Org, day: NaiveDate) -> Result<Vec<Listed>, StoreError> {
        self.objects_in(&partition(org, day))
    }

    async fn list_after(&self, org: &Org, after: &str, limit: usize) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for day in self.days(org).await? {
            let part = partition(org, day);
            // Every key of a partition starts with `<part>/`: when `after` sorts after that
            // and is not inside it, so does every key of the partition.
            let head = format!("{part}/");
            if after > head.as_str() && !after.starts_with(&head) {
                continue;
            }
            for o in self.objects_in(&part)? {
                if o.key.0.as_str() > after {
                    out.push(o);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| {
            StoreError::Io(format!(
                "cannot read {}: {e}; check the output folder",
                path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(dir.path());
        let key = ObjectKey("org=a/dt=2026-01-01/x.json.gz".into());
        assert!(!sink.exists(&key).await.unwrap());
        assert_eq!(
            sink.put(&key, b"one".to_vec()).await.unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            sink.put(&key, b"two".to_vec()).await.unwrap(),
            PutOutcome::AlreadyExisted
        );
        assert_eq!(fs::read(dir.path().join(&key.0)).unwrap(), b"one");
        assert!(sink.exists(&key).await.unwrap());
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("org=a/dt=2026-01-01"))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 1);
        assert!(sink.put(&ObjectKey("../escape".into()), vec![]).await.is_err());
    }
}
