//! NDJSON + gzip with deterministic bytes: one compact object per line, `\n` line ends, a
//! gzip header with no file name and mtime 0, so the same records give the same bytes.

use std::io::{Read, Write};

use flate2::{read::MultiGzDecoder, write::GzEncoder, Compression, GzBuilder};
use serde_json::{Map, Value};

/// Encodes records, one per line, in the order given.
pub fn encode(records: &[Map<String, Value>]) -> Vec<u8> {
    let mut gz: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    for r in records {
        // Writing into a Vec cannot fail, and a Map always serializes.
        let line = serde_json::to_vec(r).expect("a JSON map serializes");
        gz.write_all(&line).expect("writing to memory");
        gz.write_all(b"\n").expect("writing to memory");
    }
    gz.finish().expect("writing to memory")
}

/// Decodes an object written by [`encode`] (used by tests, `status` and verification).
pub fn decode(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, std::io::Error> {
    let mut text = String::new();
    MultiGzDecoder::new(bytes).read_to_string(&mut text)?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
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
