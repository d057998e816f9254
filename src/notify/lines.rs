//! Alerts as JSON lines, one alert per line, appended to a file or written to stdout (the
//! CLI's `poll --rules`): the same rules can be tried on a laptop before they are deployed.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::alert::Alert;
use crate::ports::{AlertError, AlertSink};

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesTo {
    Stdout,
    /// Appended, so alerts of earlier runs stay.
    File(PathBuf),
}

#[derive(Debug)]
pub struct JsonLines {
    to: LinesTo,
    lock: std::sync::Mutex<()>,
}

impl JsonLines {
    pub fn new(to: LinesTo) -> Self {
        JsonLines {
            to,
            lock: std::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl AlertSink for JsonLines {
    async fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        let mut text = Vec::new();
        for a in alerts {
            serde_json::to_writer(&mut text, a).map_err(|e| AlertError(e.to_string()))?;
            text.push(b'\n');
        }
        // One write per delivery, under a lock: lines of concurrent runs never interleave.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match &self.to {
            LinesTo::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&text).and_then(|_| out.flush()).map_err(|e| {
                    AlertError(format!("cannot write alerts to stdout ({e})"))
                })
            }
            LinesTo::File(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&text).and_then(|_| f.sync_data()))
                .map_err(|e| {
                    AlertError(format!(
                        "cannot append alerts to {} ({e}); check the path and its permissions — they are kept and written on the next run",
                        path.display()
                    ))
                }),
        }
    }
}
