//! Which checkpoint store and sink a command uses, from `--output` and `--checkpoint`:
//! local folders, or `s3://bucket/prefix` and `dynamodb://table`.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::checkpoint::dynamodb::{parse_dynamodb_url, DynamoCheckpoints, DynamoLease};
use crate::checkpoint::file::{FileCheckpoints, FileLease};
use crate::checkpoint_model::{Checkpoint, WatchMemory};
use crate::ports::{CheckpointIndex, Checkpoints, OrgState, Sink, StoreError};
use crate::sink::local::LocalSink;
use crate::sink::s3::{parse_s3_url, S3Sink};
use crate::types::{Org, RunId};

/// Either checkpoint store, chosen at run time.
pub enum AnyCheckpoints {
    File(FileCheckpoints),
    Dynamo(DynamoCheckpoints),
}

pub enum AnyLease {
    File(FileLease),
    Dynamo(DynamoLease),
}

fn mismatch() -> StoreError {
    StoreError::Conflict("a lease from another checkpoint store".into())
}

#[async_trait]
impl Checkpoints for AnyCheckpoints {
    type Lease = AnyLease;

    async fn acquire(&self, org: &Org, owner: &RunId) -> Result<Option<(AnyLease, Checkpoint)>, StoreError> {
        Ok(match self {
            AnyCheckpoints::File(s) => s.acquire(org, owner).await?.map(|(l, c)| (AnyLease::File(l), c)),
            AnyCheckpoints::Dynamo(s) => s
                .acquire(org, owner)
                .await?
                .map(|(l, c)| (AnyLease::Dynamo(l), c)),
        })
    }
    async fn save(&self, lease: &AnyLease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        match (self, lease) {
            (AnyCheckpoints::File(s), AnyLease::File(l)) => s.save(l, cp).await,
            (AnyCheckpoints::Dynamo(s), AnyLease::Dynamo(l)) => s.save(l, cp).await,
            _ => Err(mismatch()),
        }
    }
    fn heartbeat_every(&self) -> Option<std::time::Duration> {
        match self {
            AnyCheckpoints::File(s) => s.heartbeat_every(),
            AnyCheckpoints::Dynamo(s) => s.heartbeat_every(),
        }
    }
    async fn heartbeat(&self, lease: &AnyLease) -> Result<(), StoreError> {
        match (self, lease) {
            (AnyCheckpoints::File(s), AnyLease::File(l)) => s.heartbeat(l).await,
            (AnyCheckpoints::Dynamo(s), AnyLease::Dynamo(l)) => s.heartbeat(l).await,
            _ => Err(mismatch()),
        }
    }
    async fn release(&self, lease: AnyLease) -> Result<(), StoreError> {
        match (self, lease) {
            (AnyCheckpoints::File(s), AnyLease::File(l)) => s.release(l).await,
            (AnyCheckpoints::Dynamo(s), AnyLease::Dynamo(l)) => s.release(l).await,
            _ => Err(mismatch()),
        }
    }
    async fn save_and_release(&self, lease: AnyLease, cp: &mut Checkpoint) -> Result<(), StoreError> {
        match (self, lease) {
            (AnyCheckpoints::File(s), AnyLease::File(l)) => s.save_and_release(l, cp).await,
            (AnyCheckpoints::Dynamo(s), AnyLease::Dynamo(l)) => s.save_and_release(l, cp).await,
            _ => Err(StoreError::Conflict("a lease of another store".into())),
        }
    }

    async fn peek(&self, org: &Org) -> Result<Option<Checkpoint>, StoreError> {
        match self {
            AnyCheckpoints::File(s) => s.peek(org).await,
            AnyCheckpoints::Dynamo(s) => s.peek(org).await,
        }
    }
}

#[async_trait]
impl CheckpointIndex for AnyCheckpoints {
    async fn list(&self) -> Result<Vec<OrgState>, StoreError> {
        match self {
            AnyCheckpoints::File(s) => s.list().await,
            AnyCheckpoints::Dynamo(s) => s.list().await,
        }
    }

    async fn memory(&self) -> Result<WatchMemory, StoreError> {
        match self {
            AnyCheckpoints::File(s) => s.memory().await,
            AnyCheckpoints::Dynamo(s) => s.memory().await,
        }
    }

    async fn remember(&self, memory: &mut WatchMemory) -> Result<(), StoreError> {
        match self {
            AnyCheckpoints::File(s) => s.remember(memory).await,
            AnyCheckpoints::Dynamo(s) => s.remember(memory).await,
        }
    }
}

/// Where the output and checkpoints go, as given on the command line.
pub struct Stores {
    pub output: String,
    pub checkpoint: Option<String>,
    pub kms_key_id: Option<String>,
    pub lease_ttl: std::time::Duration,
    /// The Glue database of the view of an s3:// output (`none`: no compaction).
    pub glue_database: Option<String>,
}

impl Stores {
    fn is_s3(&self) -> bool {
        self.output.starts_with("s3://")
    }

    /// The checkpoint location: as given, or `<output>/_checkpoints` for a local output.
    pub fn checkpoint_location(&self) -> Result<String, String> {
        match &self.checkpoint {
            Some(c) => Ok(c.clone()),
            None if self.is_s3() => Err(
                "with --output s3://… give --checkpoint too: dynamodb://table (as the Lambda uses) or a local folder"
                    .into(),
            ),
            None => Ok(PathBuf::from(&self.output).join("_checkpoints").to_string_lossy().into_owned()),
        }
    }

    pub async fn checkpoints(&self) -> Result<AnyCheckpoints, String> {
        let loc = self.checkpoint_location()?;
        if loc.starts_with("dynamodb://") {
            let table = parse_dynamodb_url(&loc)?;
            let sdk = crate::aws::load().await;
            let store = DynamoCheckpoints::new(crate::aws::dynamodb_client(&sdk), table)
                .with_lease_ttl(self.lease_ttl);
            Ok(AnyCheckpoints::Dynamo(store))
        } else {
            Ok(AnyCheckpoints::File(FileCheckpoints::new(loc)))
        }
    }

    /// The compacted side of a local output (`None` for s3://: the compactor function and
    /// the Glue view own it there).
    pub fn local_surface(&self) -> Option<crate::surface::local::LocalSurface> {
        (!self.is_s3()).then(|| crate::surface::local::LocalSurface::new(&self.output))
    }

    /// The compacted side a verify checks and a repair reopens: the folder's for a local
    /// output; for s3://, the stack's view (with `--glue-database`), or none (`--glue-database
    /// none`). A repair on s3:// without either is refused: it could write into a compacted
    /// day that queries would then go on reading from its stale compacted object.
    pub async fn compacted_side(
        &self,
        repair: bool,
    ) -> Result<Option<Box<dyn crate::surface::CompactedDays>>, String> {
        if !self.is_s3() {
            return Ok(self
                .local_surface()
                .map(|s| Box::new(s) as Box<dyn crate::surface::CompactedDays>));
        }
        match self.glue_database.as_deref() {
            Some("none") => Ok(None),
            Some(database) => {
                let (bucket, prefix) = parse_s3_url(&self.output)?;
                let sdk = crate::aws::load().await;
                let glue = crate::surface::glue::Glue::new(&sdk)?;
                let view = crate::surface::glue::ViewName {
                    database: database.to_string(),
                    table: crate::surface::DEFAULT_VIEW.to_string(),
                };
                Ok(Some(Box::new(crate::surface::glue::GlueSurface::new(
                    glue,
                    view,
                    crate::aws::s3_client(&sdk),
                    bucket,
                    &prefix,
                    self.kms_key_id.clone(),
                ))))
            }
            None if repair => Err(
                "--repair on s3:// output needs --glue-database (the stack's GlueDatabase output): a repair takes a \
                 compacted day off the view `events` before it writes into it; give --glue-database none for a \
                 bucket that is not compacted"
                    .into(),
            ),
            None => Ok(None),
        }
    }

    pub async fn sink(&self) -> Result<Box<dyn Sink>, String> {
        if self.is_s3() {
            let (bucket, prefix) = parse_s3_url(&self.output)?;
            let sdk = crate::aws::load().await;
            Ok(Box::new(S3Sink::new(
                crate::aws::s3_client(&sdk),
                bucket,
                &prefix,
                self.kms_key_id.clone(),
            )))
        } else {
            if self.kms_key_id.is_some() {
                return Err("--kms-key-id applies to s3:// output only".into());
            }
            Ok(Box::new(LocalSink::new(&self.output)))
        }
    }
}
