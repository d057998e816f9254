//! Compaction: each closed day's raw objects written again as one Parquet object (ZSTD,
//! rows sorted by time), checked against the raw day, then moved onto the compacted side
//! of the query surface ([`crate::surface`]). The raw trail is never changed: the compacted
//! objects are derived, and rebuilt from it whenever a day changes.
//!
//! - [`row`]: a raw record as the table's columns;
//! - [`parquet`]: the file (schema, writer, the reader a check needs);
//! - [`run`]: which days are closed, and one compaction of an org.
pub mod parquet;
pub mod row;
pub mod run;

pub use run::{compact, Checked, CompactConfig, CompactError, CompactReport};
#[cfg(test)]
mod tests;
