//! NDJSON + gzip with deterministic bytes: one compact object per line, `\n` line ends, a
//! gzip header with no file name and mtime 0, so the same records give the same bytes.

use std::io::{Read, Write};

use flate2::{read::MultiGzDecoder, write::GzEncoder, Compression, GzBuilder};
use serde_json::{Map, Value};

use super::tree::Node;

/// The deflate level: chosen by measurement (`cargo bench --bench hot_path`, docs/benchmarks.md).
pub const LEVEL: Compression = Compression::new(LEVEL_NUMBER);
const LEVEL_NUMBER: u32 = 6;

/// An object being written: lines go through a buffer into the compressor in large
/// pieces.
pub struct Writer {
    gz: GzEncoder<Vec<u8>>,
    buf: Vec<u8>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            gz: GzBuilder::new().mtime(0).write(Vec::new(), LEVEL),
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

impl Writer {
    /// Appends one line: `write` puts the compact JSON of one record in the buffer.
    pub fn line(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buf);
        self.buf.push(b'\n');
        if self.buf.len() >= 60 * 1024 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        // Writing into a Vec cannot fail.
        self.gz.write_all(&self.buf).expect("writing to memory");
        self.buf.clear();
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.gz.finish().expect("writing to memory")
    }
}

/// Encodes records, one per line, in the order given.
pub fn encode(records: &[Map<String, Value>]) -> Vec<u8> {
    let mut w = Writer::default();
    for r in records {
        // A Map always serializes.
        w.line(|buf| serde_json::to_writer(buf, r).expect("a JSON map serializes"));
    }
    w.finish()
}

/// The NDJSON bytes of an object written by [`encode`] or [`Writer`].
pub fn decode_bytes(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// The lines of an object written by [`encode`], decoded one at a time: reading an object
/// back holds one record, not the whole text.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Result<Vec<u8>, std::io::Error>> + '_ {
    std::io::BufRead::split(std::io::BufReader::new(MultiGzDecoder::new(bytes)), b'\n')
        .filter(|l| !l.as_ref().is_ok_and(|l| l.is_empty()))
}

/// Decodes an object written by [`encode`] (used by tests, `status` and verification).
pub fn decode(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, std::io::Error> {
    let mut text = String::new();
    MultiGzDecoder::new(bytes).read_to_string(&mut text)?;
    text.lines()
        .filter(|l| !l.is_empty())
        // Through the tree, as events are read: a record keeps any key the Hub sent, and
        // with serde_json's `raw_value` on (in builds where another crate enables it) a
        // `Value` would refuse one of them.
        .map(|l| match Node::parse(l.as_bytes()).map(|n| n.to_value()) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(std::io::Error::other("a line is not a JSON object")),
            Err(e) => Err(std::io::Error::other(e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_records_same_bytes_and_round_trip() {
        let recs: Vec<Map<String, Value>> = (0..50)
            .map(|i| json!({"i": i, "s": "x"}).as_object().unwrap().clone())
            .collect();
        let a = encode(&recs);
        let b = encode(&recs);
        assert_eq!(a, b);
        // gzip header: magic, CM=8, FLG=0 (no name), MTIME=0.
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let back = decode(&a).unwrap();
        assert_eq!(back, recs);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 50);
        assert!(text.ends_with("}\n"));
        assert!(!text.contains("\r"));
    }
}
