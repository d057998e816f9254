//! A compacted day as Parquet: the schema, the writer (ZSTD, rows sorted by time, row-group
//! statistics) and a reader of what a check needs (each row's `event_id` and time).
//!
//! Written with the crate's column writers (no Arrow): each leaf column gets its values
//! with Parquet's definition and repetition levels, computed here from the rows.

use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::Type;

use super::row::{Row, COLLECTOR_FIELDS, LEADING};

/// The Glue table `events_compacted`'s columns; `org` and `dt` come from the path.
pub const SCHEMA: &str = "
message events {
  optional binary account (STRING);
  optional binary action (STRING);
  optional binary action_description (STRING);
  optional binary actor (STRING);
  optional binary category (STRING);
  optional group collector {
    optional binary ingested_at (STRING);
    optional binary window_from (STRING);
    optional binary window_to (STRING);
    optional binary run_id (STRING);
  }
  optional group data (MAP) {
    repeated group key_value {
      required binary key (STRING);
      optional binary value (STRING);
    }
  }
  required binary event_id (STRING);
  optional binary name (STRING);
  required int64 timestamp (TIMESTAMP(MICROS,true));
}
";

/// Rows per row group: a day of a busy org is one group; a very large day several, each
/// with its own statistics.
const ROW_GROUP_ROWS: usize = 250_000;

fn schema() -> Arc<Type> {
    Arc::new(parse_message_type(SCHEMA).expect("the schema above parses"))
}

fn err(e: parquet::errors::ParquetError) -> String {
    format!("cannot write Parquet: {e}")
}

/// One leaf column's values and levels.
#[derive(Default)]
struct Leaf {
    values: Vec<ByteArray>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl Leaf {
    /// An optional value at definition depth `depth` (its parents are present).
    fn optional(&mut self, v: Option<&String>, depth: i16) {
        match v {
            Some(s) => {
                self.values.push(ByteArray::from(s.as_str()));
                self.def.push(depth);
            }
            None => self.def.push(depth - 1),
        }
    }
}

/// Sorts `rows` by time, then `event_id`, and writes them as one Parquet file.
pub fn encode(rows: &mut [Row]) -> Result<Vec<u8>, String> {
    rows.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(err)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("dockerhub-audit {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema(), Arc::new(props)).map_err(err)?;
    for group in rows.chunks(ROW_GROUP_ROWS) {
        write_group(&mut writer, group)?;
    }
    writer.close().map_err(err)?;
    Ok(out)
}

fn write_group(writer: &mut SerializedFileWriter<&mut Vec<u8>>, rows: &[Row]) -> Result<(), String> {
    // Leaves in schema order: 5 leading, 4 collector, data key, data value, event_id, name.
    let mut leaves: Vec<Leaf> = (0..13).map(|_| Leaf::default()).collect();
    let mut times = Vec::with_capacity(rows.len());
    for r in rows {
        for (i, v) in r.leading.iter().enumerate() {
            leaves[i].optional(v.as_ref(), 1);
        }
        match &r.collector {
            Some(c) => {
                for (i, v) in c.iter().enumerate() {
                    leaves[5 + i].optional(v.as_ref(), 2);
                }
            }
            None => {
                for leaf in &mut leaves[5..9] {
                    leaf.def.push(0);
                }
            }
        }
        // data: optional map (def 1 when present) of repeated key_value (def 2 per entry),
        // key required, value optional (def 3 when set).
        let (keys, vals) = leaves[9..11].split_at_mut(1);
        let (keys, vals) = (&mut keys[0], &mut vals[0]);
        match &r.data {
            None => {
                keys.def.push(0);
                keys.rep.push(0);
                vals.def.push(0);
                vals.rep.push(0);
            }
            Some(m) if m.is_empty() => {
                keys.def.push(1);
                keys.rep.push(0);
                vals.def.push(1);
                vals.rep.push(0);
            }
            Some(m) => {
                for (i, (k, v)) in m.iter().enumerate() {
                    let rep = if i == 0 { 0 } else { 1 };
                    keys.values.push(ByteArray::from(k.as_str()));
                    keys.def.push(2);
                    keys.rep.push(rep);
                    vals.rep.push(rep);
                    match v {
                        Some(s) => {
                            vals.values.push(ByteArray::from(s.as_str()));
                            vals.def.push(3);
                        }
                        None => vals.def.push(2),
                    }
                }
            }
        }
        leaves[11].values.push(ByteArray::from(r.event_id.as_str()));
        leaves[12].optional(r.name.as_ref(), 1);
        times.push(r.timestamp);
    }
    let mut group = writer.next_row_group().map_err(err)?;
    for (i, leaf) in leaves.iter().enumerate() {
        let mut col = group
            .next_column()
            .map_err(err)?
            .ok_or("the Parquet schema has fewer columns than the rows")?;
        let repeated = i == 9 || i == 10;
        let required = i == 11;
        col.typed::<ByteArrayType>()
            .write_batch(
                &leaf.values,
                (!required).then_some(leaf.def.as_slice()),
                repeated.then_some(leaf.rep.as_slice()),
            )
            .map_err(err)?;
        col.close().map_err(err)?;
    }
    let mut col = group
        .next_column()
        .map_err(err)?
        .ok_or("the Parquet schema has no timestamp column")?;
    col.typed::<Int64Type>()
        .write_batch(&times, None, None)
        .map_err(err)?;
    col.close().map_err(err)?;
    group.close().map_err(err)?;
    Ok(())
}

/// A hash of each row, every column, in the file's order: what the check before a day is
/// published compares with its raw rows (hashes, so a large day is not held twice).
pub fn row_hashes(bytes: Vec<u8>) -> Result<Vec<u64>, String> {
    let bad = |e: parquet::errors::ParquetError| format!("not a readable compacted day: {e}");
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).map_err(bad)?;
    let mut out = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for rec in reader.get_row_iter(None).map_err(bad)? {
        out.push(hash(&row_of(&rec.map_err(bad)?)?));
    }
    Ok(out)
}

/// The hash [`row_hashes`] gives a row.
pub fn hash(row: &Row) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    row.hash(&mut h);
    h.finish()
}

fn text(f: &Field) -> Result<Option<String>, String> {
    match f {
        Field::Null => Ok(None),
        Field::Str(s) => Ok(Some(s.clone())),
        other => Err(format!(
            "not a readable compacted day: a string column holds {other}"
        )),
    }
}

/// One record of the file as the row it was written from.
fn row_of(rec: &parquet::record::Row) -> Result<Row, String> {
    let mut r = Row::default();
    let mut id = None;
    let mut ts = None;
    for (name, f) in rec.get_column_iter() {
        let name = name.as_str();
        if let Some(i) = LEADING.iter().position(|c| *c == name) {
            r.leading[i] = text(f)?;
            continue;
        }
        match (name, f) {
            ("collector", Field::Null) | ("data", Field::Null) => {}
            ("collector", Field::Group(g)) => {
                let mut c: [Option<String>; 4] = Default::default();
                for (k, v) in g.get_column_iter() {
                    if let Some(i) = COLLECTOR_FIELDS.iter().position(|x| x == k) {
                        c[i] = text(v)?;
                    }
                }
                r.collector = Some(c);
            }
            ("data", Field::MapInternal(m)) => {
                let mut entries = Vec::with_capacity(m.entries().len());
                for (k, v) in m.entries() {
                    entries.push((text(k)?.unwrap_or_default(), text(v)?));
                }
                r.data = Some(entries);
            }
            ("event_id", f) => id = text(f)?,
            ("name", f) => r.name = text(f)?,
            ("timestamp", Field::TimestampMicros(t)) => ts = Some(*t),
            (other, f) => return Err(format!("not a readable compacted day: column {other} holds {f}")),
        }
    }
    match (id, ts) {
        (Some(id), Some(ts)) => {
            r.event_id = id;
            r.timestamp = ts;
            Ok(r)
        }
        _ => Err("not a readable compacted day: a row has no event_id or timestamp".to_string()),
    }
}

/// Each row's `event_id` and time (microseconds), in the file's order; an error when the
/// bytes are not a compacted day this tool wrote.
pub fn ids(bytes: Vec<u8>) -> Result<Vec<(String, i64)>, String> {
    let bad = |e: parquet::errors::ParquetError| format!("not a readable compacted day: {e}");
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).map_err(bad)?;
    let projection = parse_message_type(
        "message events { required binary event_id (STRING); required int64 timestamp (TIMESTAMP(MICROS,true)); }",
    )
    .expect("the projection parses");
    let mut out = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for row in reader.get_row_iter(Some(projection)).map_err(bad)? {
        let row = row.map_err(bad)?;
        let mut id = None;
        let mut ts = None;
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("event_id", Field::Str(s)) => id = Some(s.clone()),
                ("timestamp", Field::TimestampMicros(t)) => ts = Some(*t),
                _ => {}
            }
        }
        match (id, ts) {
            (Some(i), Some(t)) => out.push((i, t)),
            _ => return Err("not a readable compacted day: a row has no event_id or timestamp".to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ts: i64, data: Option<Vec<(&str, Option<&str>)>>) -> Row {
        Row {
            leading: [
                Some("acme".into()),
                Some("repo.tag.push".into()),
                None,
                Some("jdoe".into()),
                Some("repo".into()),
            ],
            collector: Some([Some("i".into()), None, Some("w".into()), Some("r".into())]),
            data: data.map(|d| {
                d.into_iter()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .collect()
            }),
            event_id: id.to_string(),
            name: None,
            timestamp: ts,
        }
    }

    #[test]
    fn rows_come_back_sorted_by_time_with_their_ids() {
        let mut rows = vec![
            row("c", 3_000_000, Some(vec![("a", Some("1")), ("b", None)])),
            row("a", 1_000_000, None),
            row("b", 1_000_000, Some(vec![])),
            row("a", 2_000_000, Some(vec![("x", Some("y"))])),
        ];
        let bytes = encode(&mut rows).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        let back = ids(bytes).unwrap();
        assert_eq!(
            back,
            vec![
                ("a".to_string(), 1_000_000),
                ("b".to_string(), 1_000_000),
                ("a".to_string(), 2_000_000),
                ("c".to_string(), 3_000_000)
            ]
        );
    }

    #[test]
    fn every_column_reads_back_as_written() {
        let mut rows = vec![
            row("c", 3_000_000, Some(vec![("a", Some("1")), ("b", None)])),
            row("a", 1_000_000, None),
            row("b", 1_000_000, Some(vec![])),
        ];
        rows[1].collector = None;
        rows[2].name = Some("acme/web".into());
        let bytes = encode(&mut rows).unwrap();
        let want: Vec<u64> = rows.iter().map(hash).collect();
        assert_eq!(row_hashes(bytes).unwrap(), want);
        // A changed column changes the hash.
        let mut other = rows.clone();
        other[0].leading[3] = Some("someone-else".into());
        assert_ne!(other.iter().map(hash).collect::<Vec<_>>(), want);
    }

    #[test]
    fn bytes_that_are_not_parquet_are_an_error() {
        assert!(ids(b"PAR1 not really".to_vec()).is_err());
        assert!(ids(Vec::new()).is_err());
    }
}
