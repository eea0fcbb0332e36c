//! Text decoders: NDJSON (simd-json tape, buffers reused) and CSV (the `csv` crate), both
//! driven by a [`CompiledMapping`] into one reused [`Record`]. Every input record ends in
//! exactly one call: [`Handler::on_record`] or [`Handler::on_error`] with the raw bytes and
//! the source position, so counts always add up.

use std::io::Read;

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::mapping::{CompiledMapping, clip};
use super::record::{FieldError, FieldSpec, Record};

/// Where a record came from: file (or `-`), byte offset of its first byte, 1-based line.
#[derive(Clone, Copy, Debug)]
pub struct SourcePos<'a> {
    pub file: &'a str,
    pub offset: u64,
    pub line: u64,
}

/// Receives decoded records and rejects.
pub trait Handler {
    /// A record that decoded; `raw` is its source bytes (without the line end).
    fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]);
    /// A record that did not; it must go to quarantine.
    fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]);
    /// Bytes consumed so far in this input (for progress bars).
    fn on_progress(&mut self, _bytes: u64) {}
}

/// NDJSON decoder: one JSON object per line.
pub struct NdjsonDecoder {
    mapping: CompiledMapping,
    specs: &'static [FieldSpec],
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    scratch: Vec<u8>,
    rec: Record,
}

impl NdjsonDecoder {
    /// A decoder for `specs` through `mapping`.
    pub fn new(mapping: CompiledMapping, specs: &'static [FieldSpec]) -> Self {
        NdjsonDecoder {
            mapping,
            specs,
            buffers: Buffers::new(4096),
            tape: Some(Tape::null().reset()),
            scratch: Vec::with_capacity(4096),
            rec: Record::new(specs.len()),
        }
    }

    /// Decodes one line (no line end). On success the record is in the returned reference.
    pub fn decode_line(&mut self, line: &[u8]) -> Result<&Record, FieldError> {
        self.rec.clear();
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        let mut tape: Tape<'_> = self
            .tape
            .take()
            .unwrap_or_else(|| Tape::null().reset())
            .reset();
        let res = match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Err(e) => Err(json_error(line, &e)),
            Ok(()) => Self::walk(&self.mapping, &tape, &mut self.rec),
        };
        self.tape = Some(tape.reset());
        res?;
        CompiledMapping::check_required(self.specs, &self.rec)?;
        Ok(&self.rec)
    }

    fn walk(
        mapping: &CompiledMapping,
        tape: &Tape<'_>,
        rec: &mut Record,
    ) -> Result<(), FieldError> {
        let nodes = &tape.0;
        let Some(Node::Object { len, .. }) = nodes.first() else {
            return Err(FieldError::record("expected a JSON object per line"));
        };
        let mut i = 1;
        for _ in 0..*len {
            let Some(Node::String(key)) = nodes.get(i) else {
                return Err(FieldError::record("malformed object"));
            };
            let val = nodes
                .get(i + 1)
                .ok_or_else(|| FieldError::record("malformed object"))?;
            let skip = match val {
                Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
                _ => 1,
            };
            if let Some(e) = mapping.entry_for(key) {
                match val {
                    Node::String(s) => mapping.apply_text(e, s, rec)?,
                    Node::Static(StaticNode::I64(v)) => mapping.apply_num(e, *v as f64, rec)?,
                    Node::Static(StaticNode::U64(v)) => mapping.apply_num(e, *v as f64, rec)?,
                    Node::Static(StaticNode::F64(v)) => mapping.apply_num(e, *v, rec)?,
                    Node::Static(StaticNode::Null) => {}
                    Node::Static(StaticNode::Bool(b)) => {
                        return Err(FieldError::field(
                            mapping.entry(e).name,
                            format!("expected {:?}, got boolean {b}", mapping.entry(e).kind),
                        ));
                    }
                    Node::Object { .. } | Node::Array { .. } => {
                        return Err(FieldError::field(
                            mapping.entry(e).name,
                            "expected a scalar, got an object or array",
                        ));
                    }
                }
            }
            i += 1 + skip;
        }
        Ok(())
    }
}

/// Turns a simd-json error into a record error; invalid UTF-8 names the field it sits in.
fn json_error(line: &[u8], e: &simd_json::Error) -> FieldError {
    if let Err(u) = std::str::from_utf8(line) {
        let pos = u.valid_up_to();
        let msg = format!(
            "not valid UTF-8 at byte {pos} (GBK or another legacy encoding?); re-encode the source as UTF-8"
        );
        return match field_at(line, pos) {
            Some(k) => FieldError::field(&k, msg),
            None => FieldError::record(msg),
        };
    }
    if let Some((pos, esc)) = lone_surrogate(line) {
        let msg = format!(
            "lone surrogate escape {esc} (half of a UTF-16 pair) is not a character; the value cannot be stored"
        );
        return match field_at(line, pos) {
            Some(k) => FieldError::field(&k, msg),
            None => FieldError::record(msg),
        };
    }
    let text = String::from_utf8_lossy(line);
    let t = text.trim();
    if t.is_empty() {
        return FieldError::record("empty line");
    }
    if t.contains("NaN") || t.contains("Infinity") {
        // JSON has no NaN/Infinity literals; name the field that carries one.
        let pos = t.find("NaN").or_else(|| t.find("Infinity")).unwrap_or(0);
        let msg = "non-finite number (NaN/Infinity is not JSON)".to_string();
        return match field_at(t.as_bytes(), pos) {
            Some(k) => FieldError::field(&k, msg),
            None => FieldError::record(msg),
        };
    }
    FieldError::record(format!("invalid JSON: {e} (line starts \"{}\")", clip(t)))
}

/// The first `\uD800`–`\uDFFF` escape in `line` that is not part of a high+low pair:
/// its byte position and its text (e.g. `\ud800`).
fn lone_surrogate(line: &[u8]) -> Option<(usize, String)> {
    let hex4 = |i: usize| -> Option<u32> {
        let h = line.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut i = 0;
    while i + 1 < line.len() {
        if line[i] != b'\\' {
            i += 1;
            continue;
        }
        if line[i + 1] != b'u' {
            i += 2; // any other escape, including an escaped backslash
            continue;
        }
        let Some(u) = hex4(i + 2) else {
            i += 2;
            continue;
        };
        let esc = || String::from_utf8_lossy(&line[i..i + 6]).into_owned();
        match u {
            0xD800..=0xDBFF => {
                let paired = line.get(i + 6) == Some(&b'\\') && line.get(i + 7) == Some(&b'u');
                let low = if paired { hex4(i + 8) } else { None };
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Some((i, esc()));
                }
                i += 12;
            }
            0xDC00..=0xDFFF => return Some((i, esc())),
            _ => i += 6,
        }
    }
    None
}

/// The JSON key whose value contains byte `pos` (best effort: the last `"key":` before it).
fn field_at(line: &[u8], pos: usize) -> Option<String> {
    let head = line.get(..pos)?;
    let colon = head.iter().rposition(|&b| b == b':')?;
    let before = &head[..colon];
    let end = before.iter().rposition(|&b| b == b'"')?;
    let start = before[..end].iter().rposition(|&b| b == b'"')?;
    std::str::from_utf8(&before[start + 1..end])
        .ok()
        .map(str::to_string)
}

/// Streams NDJSON from `input` in 1 MiB chunks, calling `h` per line.
pub fn read_ndjson(
    dec: &mut NdjsonDecoder,
    input: &mut dyn Read,
    file: &str,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    let mut base: u64 = 0; // stream offset of buf[0]
    let mut line_no: u64 = 0;
    let mut records: u64 = 0;
    loop {
        let n = input.read(&mut chunk)?;
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        loop {
            let nl = buf[start..].iter().position(|&b| b == b'\n');
            let end = match nl {
                Some(k) => start + k,
                None if eof && start < buf.len() => buf.len(),
                None => break,
            };
            line_no += 1;
            let mut line = &buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let pos = SourcePos {
                file,
                offset: base + start as u64,
                line: line_no,
            };
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                records += 1;
                match dec.decode_line(line) {
                    Ok(rec) => h.on_record(rec, &pos, line),
                    Err(e) => h.on_error(e, &pos, line),
                }
            }
            start = (end + 1).min(buf.len());
            if nl.is_none() {
                break;
            }
        }
        buf.drain(..start);
        base += start as u64;
        h.on_progress(base);
        if eof {
            break;
        }
    }
    if records == 0 {
        let pos = SourcePos {
            file,
            offset: 0,
            line: 0,
        };
        h.on_error(FieldError::record("empty input: no records"), &pos, b"");
    }
    Ok(records)
}

/// Reads CSV with a header row from `data` (whole input in memory, so the raw bytes of a bad
/// row can be quarantined exactly). A UTF-8 BOM is skipped.
pub fn read_csv(
    mapping: &CompiledMapping,
    specs: &'static [FieldSpec],
    data: &[u8],
    file: &str,
    h: &mut dyn Handler,
) -> u64 {
    let skip = if data.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let body = &data[skip..];
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let headers = match rdr.byte_headers() {
        Ok(hd) => hd.clone(),
        Err(e) => {
            let pos = SourcePos {
                file,
                offset: 0,
                line: 1,
            };
            h.on_error(
                FieldError::record(format!("bad CSV header: {e}")),
                &pos,
                body,
            );
            return 0;
        }
    };
    if headers.is_empty() || body.iter().all(|b| b.is_ascii_whitespace()) {
        let pos = SourcePos {
            file,
            offset: 0,
            line: 0,
        };
        h.on_error(
            FieldError::record("empty input: no header and no records"),
            &pos,
            b"",
        );
        return 0;
    }
    // Column → mapping entry (header names trimmed: vendors pad them).
    let cols: Vec<Option<usize>> = headers
        .iter()
        .map(|n| {
            std::str::from_utf8(n)
                .ok()
                .and_then(|s| mapping.entry_for(s.trim()))
        })
        .collect();
    let mut rec = Record::new(specs.len());
    let mut row = csv::ByteRecord::new();
    let mut records = 0u64;
    loop {
        let start = rdr.position().byte() as usize;
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let end = (rdr.position().byte() as usize).min(body.len());
                let pos = SourcePos {
                    file,
                    offset: (skip + start) as u64,
                    line,
                };
                records += 1;
                h.on_error(
                    FieldError::record(format!("bad CSV row: {e}")),
                    &pos,
                    &body[start..end.max(start)],
                );
                continue;
            }
        }
        records += 1;
        let end = (rdr.position().byte() as usize).min(body.len());
        let raw = trim_eol(&body[start.min(end)..end]);
        let pos = SourcePos {
            file,
            offset: (skip + start) as u64,
            line,
        };
        if row.len() != headers.len() {
            let e = FieldError::record(format!(
                "row has {} fields, header has {}",
                row.len(),
                headers.len()
            ));
            h.on_error(e, &pos, raw);
            continue;
        }
        rec.clear();
        let res = (|| {
            for (ci, cell) in row.iter().enumerate() {
                let Some(e) = cols[ci] else { continue };
                let s = std::str::from_utf8(cell).map_err(|u| {
                    FieldError::field(
                        mapping.entry(e).name,
                        format!(
                            "not valid UTF-8 at byte {} (GBK or another legacy encoding?); re-encode the source as UTF-8",
                            u.valid_up_to()
                        ),
                    )
                })?;
                mapping.apply_text(e, s, &mut rec)?;
            }
            CompiledMapping::check_required(specs, &rec)
        })();
        match res {
            Ok(()) => h.on_record(&rec, &pos, raw),
            Err(e) => h.on_error(e, &pos, raw),
        }
        if records.is_multiple_of(4096) {
            h.on_progress((skip + end) as u64);
        }
    }
    h.on_progress(data.len() as u64);
    if records == 0 {
        let pos = SourcePos {
            file,
            offset: 0,
            line: 0,
        };
        h.on_error(
            FieldError::record("empty input: header only, no records"),
            &pos,
            b"",
        );
    }
    records
}

fn trim_eol(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && (b[e - 1] == b'\n' || b[e - 1] == b'\r') {
        e -= 1;
    }
    &b[..e]
}

#[cfg(test)]
mod tests {
    use super::super::fields::{RSD_FIELDS, rsd};
    use super::super::mapping::Mapping;
    use super::*;

    struct Collect {
        ok: Vec<(String, Option<f64>)>,
        bad: Vec<String>,
    }
    impl Handler for Collect {
        fn on_record(&mut self, rec: &Record, _: &SourcePos<'_>, _: &[u8]) {
            self.ok.push((
                rec.str(rsd::PASS_ID).unwrap().to_string(),
                rec.num(rsd::SPEED_KMH),
            ));
        }
        fn on_error(&mut self, err: FieldError, _: &SourcePos<'_>, _: &[u8]) {
            self.bad.push(err.to_string());
        }
    }

    fn canonical() -> CompiledMapping {
        Mapping::compile(None, RSD_FIELDS, "t").unwrap()
    }

    #[test]
    fn ndjson_good_and_bad_lines() {
        let mut input: Vec<u8> = concat!(
            "{\"pass_id\":\"a\",\"passed_at\":\"2024-01-02T03:04:05Z\",\"speed_kmh\":42.5}\n",
            "{\"pass_id\":\"b\",\"passed_at\":1700000000000,\"speed_kmh\":\"fast\"}\n",
            "{\"pass_id\":\"c\",\"passed_at\":1700000000000,\"speed_kmh\":NaN}\n",
            "{\"pass_id\":\"d\",\"passed_at\":1700000000000,\"speed_kmh\":4\n",
        )
        .as_bytes()
        .to_vec();
        // A plate in GBK bytes (京 = 0xBE 0xA9), not UTF-8.
        input.extend_from_slice(
            b"{\"pass_id\":\"e\",\"passed_at\":1700000000000,\"plate\":\"\xBE\xA9A12345\"}\n",
        );
        input.extend_from_slice(b"{\"pass_id\":7,\"passed_at\":1700000000000}");
        let mut dec = NdjsonDecoder::new(canonical(), RSD_FIELDS);
        let mut c = Collect {
            ok: vec![],
            bad: vec![],
        };
        read_ndjson(&mut dec, &mut input.as_slice(), "t", &mut c).unwrap();
        assert_eq!(c.ok, vec![("a".into(), Some(42.5)), ("7".into(), None)]);
        assert_eq!(c.bad.len(), 4, "{:?}", c.bad);
        assert!(
            c.bad[0].starts_with("field speed_kmh: expected a number"),
            "{}",
            c.bad[0]
        );
        assert!(
            c.bad[1].starts_with("field speed_kmh: non-finite"),
            "{}",
            c.bad[1]
        );
        assert!(c.bad[2].starts_with("invalid JSON"), "{}", c.bad[2]);
        assert!(
            c.bad[3].starts_with("field plate: not valid UTF-8"),
            "{}",
            c.bad[3]
        );
    }

    #[test]
    fn lone_surrogate_escapes_are_found() {
        assert_eq!(
            lone_surrogate(br#"{"plate":"A\ud800"}"#),
            Some((11, "\\ud800".to_string()))
        );
        assert_eq!(
            lone_surrogate(br#"{"plate":"\uDC00A"}"#).map(|x| x.1),
            Some("\\uDC00".to_string())
        );
        // A valid pair, and an escaped backslash before "ud800", are not.
        assert_eq!(lone_surrogate(br#"{"plate":"\ud83d\ude97"}"#), None);
        assert_eq!(lone_surrogate(br#"{"plate":"\\ud800"}"#), None);
        let mut dec = NdjsonDecoder::new(canonical(), RSD_FIELDS);
        let e = dec
            .decode_line(br#"{"pass_id":"a","passed_at":1,"plate":"A\udc00"}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("plate"));
        assert!(e.message.contains("lone surrogate escape \\udc00"), "{e}");
    }

    #[test]
    fn csv_too_many_fields_and_empty() {
        let data = b"pass_id,passed_at,speed_kmh\nx,1700000000000,10\ny,1700000000000,11,12\n";
        let mut c = Collect {
            ok: vec![],
            bad: vec![],
        };
        let n = read_csv(&canonical(), RSD_FIELDS, data, "t", &mut c);
        assert_eq!(n, 2);
        assert_eq!(c.ok, vec![("x".into(), Some(10.0))]);
        assert_eq!(c.bad, vec!["row has 4 fields, header has 3".to_string()]);
        let mut c = Collect {
            ok: vec![],
            bad: vec![],
        };
        read_csv(&canonical(), RSD_FIELDS, b"", "t", &mut c);
        assert_eq!(c.bad.len(), 1);
        assert!(c.bad[0].starts_with("empty input"));
    }
}
