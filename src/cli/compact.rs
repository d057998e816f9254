//! `compact`: one compaction of an org on a local output, and its report.

use serde_json::json;

use super::args::CompactArgs;
use super::Failed;
use crate::clock::{Clock, SystemClock};
use crate::compact::{compact as run, CompactConfig, CompactError, CompactReport};
use crate::logging::LogFormat;

pub async fn compact(a: CompactArgs, format: LogFormat) -> Result<(), Failed> {
    let stores = a.store.stores();
    let Some(surface) = stores.local_surface() else {
        return Err(Failed::usage(
            "compact runs on a local --output; in AWS the compactor function compacts the bucket \
             (docs/querying.md, \"Compaction\")",
        ));
    };
    let checkpoints = stores.checkpoints().await.map_err(Failed::from)?;
    let sink = stores.sink().await.map_err(Failed::from)?;
    let clock = SystemClock;
    let mut cfg = CompactConfig::new(a.org.clone());
    cfg.late_horizon = a.late_horizon.0;
    cfg.recheck = a.recheck.0;
    let deadline = a.max_duration.and_then(|d| clock.now().checked_add_signed(d));
    let report = run(sink.as_ref(), &surface, &checkpoints, &clock, &cfg, deadline)
        .await
        .map_err(|e| match e {
            CompactError::Nothing(m) => Failed::usage(m),
            CompactError::Busy(m) => Failed::from(m),
            CompactError::Store(s) => Failed::from(s.to_string()),
        })?;
    match format {
        LogFormat::Text => {
            for d in &report.compacted {
                say!(
                    "compacted {} {}: {} events from {} objects ({} bytes) into {} ({} bytes)",
                    report.org,
                    d.day,
                    d.events,
                    d.raw_objects,
                    d.raw_bytes,
                    d.object,
                    d.bytes
                );
            }
            for f in &report.failed {
                say!("not compacted {} {}: {}", report.org, f.day, f.error);
            }
            say!("{}", summary(&report));
        }
        LogFormat::Json => say!("{}", json!({ "summary": report, "ok": report.ok() })),
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Failed::from(format!(
            "{} day(s) of {} could not be compacted (listed above); they stay on the raw side, where queries \
             read them as before",
            report.failed.len(),
            report.org
        )))
    }
}

fn summary(r: &CompactReport) -> String {
    let mut s = format!(
        "summary {}: {} day(s) compacted, {} already, {} not closed yet",
        r.org,
        r.compacted.len(),
        r.already,
        r.open
    );
    if r.unverified > 0 {
        s += &format!(
            ", {} closed but not verified (run verify over them; only days a verify found complete are compacted)",
            r.unverified
        );
    }
    if !r.disagreeing.is_empty() {
        s += &format!(
            ", {} compacted again (they differed from their raw objects)",
            r.disagreeing.len()
        );
    }
    if !r.failed.is_empty() {
        s += &format!(", {} failed", r.failed.len());
    }
    if !r.complete {
        s += "; stopped at --max-duration, run it again for the rest";
    }
    s
}
