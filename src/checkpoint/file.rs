//! Checkpoints as one JSON file per org, replaced atomically (write, fsync, rename), with
//! the lease held as an OS file lock: the kernel releases it when the process dies, so a
//! crashed run never holds the org.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::checkpoint_model::{Checkpoint, WatchMemory};
use crate::ports::{CheckpointIndex, Checkpoints, OrgState, StoreError};
use crate::types::{Org, RunId};

/// Checkpoints under one folder: `<dir>/<org>.json`, lease `<dir>/<org>.lock`.
#[derive(Debug, Clone)]
pub struct FileCheckpoints {
    dir: PathBuf,
}

/// The held lock; the lock goes with the file handle.
#[derive(Debug)]
pub struct FileLease {
    org: Org,
    /// The version on disk: only the lock holder writes, so it is known without reading
    /// the file again at every save.
    stored: AtomicU64,
    _lock: File,
}

impl FileCheckpoints {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCheckpoints { dir: dir.into() }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    fn path(&self, org: &Org) -> PathBuf {
        self.dir.join(format!("{org}.json"))
    }

    fn read(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        let path = self.path(org);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("cannot read checkpoint {}: {e}", path.display()))),
        };
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Invalid(format!(
                "checkpoint {} is not valid ({e}); move it aside: the next run rebuilds the checkpoint from the stored objects \
                 and stores nothing twice (restoring an older copy works too)",
                path.display()
            ))
        })?;
        if &cp.org != org {
            return Err(StoreError::Invalid(format!(
                "checkpoint {} belongs to org {}, not {org}",
                path.display(),
                cp.org
            )));
        }
        Ok(Some(cp))
    }
}

fn io(msg: String) -> StoreError {
    StoreError::Io(msg)
}

#[async_trait]
impl Checkpoints for FileCheckpoints {
    type Lease = FileLease;

    async fn acquire(
        &self,
        org: &Org,
        _owner: &RunId,
    ) -> Result<Option<(FileLease, Checkpoint)>, StoreError> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            io(format!(
                "cannot create checkpoint folder {}: {e}",
                self.dir.display()
            ))
        })?;
        let lock_path = self.dir.join(format!("{org}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(format!("cannot open lock file {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(io(format!("cannot lock {}: {e}", lock_path.display())))
            }
        }
        let cp = self.read(org)?.unwrap_or_else(|| Checkpoint::new(org.clone()));
        let lease = FileLease {
            org: org.clone(),
            stored: AtomicU64::new(cp.version),
            _lock: lock,
        };
        Ok(Some((lease, cp)))
    }

    async fn save(&self, lease: &FileLease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        if lease.org != cp.org {
            return Err(StoreError::Conflict(format!(
                "lease is for {}, checkpoint for {}",
                lease.org, cp.org
            )));
        }
        let current = lease.stored.load(Ordering::SeqCst);
        if current != cp.version {
            return Err(StoreError::Conflict(format!(
                "checkpoint for {} changed under this run (version {current}, expected {})",
                cp.org, cp.version
            )));
        }
        let mut next = cp.clone();
        next.version += 1;
        // Compact: a pending commit lists every event of its objects (5,000 in a backfill's
        // batch), and indenting them doubles the bytes written and the time to write them.
        let body = serde_json::to_vec(&next).map_err(|e| io(e.to_string()))?;
        let path = self.path(&cp.org);
        atomic_write(&path, &body)
            .map_err(|e| io(format!("cannot write checkpoint {}: {e}", path.display())))?;
        cp.version = next.version;
        lease.stored.store(next.version, Ordering::SeqCst);
        Ok(())
    }

    async fn release(&self, lease: FileLease) -> Result<(), StoreError> {
        drop(lease);
        Ok(())
    }

    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        self.read(org)
    }
}

/// The watchdog's memory, beside the checkpoints (`#` is in no org's name).
const WATCH_FILE: &str = "#watch.json";

/// The stored memory with its version.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMemory {
    version: u64,
    #[serde(flatten)]
    memory: WatchMemory,
}

#[async_trait]
impl CheckpointIndex for FileCheckpoints {
    async fn list(&self) -> Result<Vec<OrgState>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("cannot list {}: {e}", self.dir.display()))),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("cannot list {}: {e}", self.dir.display())))?;
            let name = entry.file_name();
            let Some(org) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| Org::new(n).ok())
            else {
                continue;
            };
            if let Some(cp) = self.read(&org)? {
                out.push(OrgState {
                    org,
                    watermark: cp.watermark,
                    last_run: cp.last_run,
                    lease: None,
                });
            }
        }
        out.sort_by(|a, b| a.org.cmp(&b.org));
        Ok(out)
    }

    async fn memory(&self) -> Result<WatchMemory, StoreError> {
        let path = self.dir.join(WATCH_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let stored: StoredMemory = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::Invalid(format!(
                        "{} is not valid ({e}); delete it: the watchdog starts afresh",
                        path.display()
                    ))
                })?;
                Ok(WatchMemory {
                    version: stored.version,
                    ..stored.memory
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(WatchMemory::default()),
            Err(e) => Err(io(format!("cannot read {}: {e}", path.display()))),
        }
    }

    async fn remember(&self, memory: &mut WatchMemory) -> Result<(), StoreError> {
        let stored = self.memory().await?.version;
        if stored != memory.version {
            return Err(StoreError::Conflict(format!(
                "the watchdog's memory changed (version {stored}, expected {})",
                memory.version
            )));
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| io(format!("cannot create {}: {e}", self.dir.display())))?;
        let next = StoredMemory {
            version: memory.version + 1,
            memory: memory.clone(),
        };
        let body = serde_json::to_vec_pretty(&next).map_err(|e| io(e.to_string()))?;
        let path = self.dir.join(WATCH_FILE);
        atomic_write(&path, &body).map_err(|e| io(format!("cannot write {}: {e}", path.display())))?;
        memory.version = next.version;
        Ok(())
    }
}

/// Writes `body` to a temporary file beside `path`, fsyncs it, renames it over `path` and
/// fsyncs the folder: a reader sees the old file or the new one, never a torn one.
pub(crate) fn atomic_write(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lease_excludes_and_saves_are_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpoints::new(dir.path());
        let org = Org::new("acme").unwrap();
        let run = RunId("a".into());
        let (lease, mut cp) = store.acquire(&org, &run).await.unwrap().unwrap();
        assert_eq!(cp.version, 0);
        // A second holder is refused while the first holds it.
        assert!(store.acquire(&org, &run).await.unwrap().is_none());
        cp.watermark = Some(chrono::Utc::now());
        store.save(&lease, &mut cp).await.unwrap();
        assert_eq!(cp.version, 1);
        // A stale copy cannot overwrite.
        let mut stale = cp.clone();
        stale.version = 0;
        assert!(matches!(
            store.save(&lease, &mut stale).await,
            Err(StoreError::Conflict(_))
        ));
        store.release(lease).await.unwrap();
        let (_l, again) = store.acquire(&org, &run).await.unwrap().unwrap();
        assert_eq!(again, cp);
        assert_eq!(store.peek(&org).await.unwrap().unwrap().watermark, cp.watermark);
    }

    #[tokio::test]
    async fn a_corrupt_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpoints::new(dir.path());
        let org = Org::new("acme").unwrap();
        fs::write(dir.path().join("acme.json"), b"{not json").unwrap();
        let err = store
            .acquire(&org, &RunId("a".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not valid") && err.contains("rebuilds the checkpoint"),
            "{err}"
        );
    }
}
