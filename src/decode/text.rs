//! Text decoders: NDJSON (simd-json tape, buffers reused) and CSV (streamed, quote-aware, with
//! header re-binding), both driven by a [`CompiledMapping`] into one reused [`Record`]. Every
//! input record ends in exactly one call: [`Handler::on_record`] or [`Handler::on_error`] with
//! the raw bytes and the source position, so counts always add up.
//!
//! Both formats are read line by line through [`LineReader`], which holds at most one record
//! of `max_record_bytes` (default 1 MiB) plus one read chunk: a longer line is skipped without
//! being held and reported with its length and a bounded prefix ([`RAW_PREFIX_BYTES`]).

use std::borrow::Cow;
use std::io::Read;

use encoding_rs::Encoding;
use memchr::{memchr, memchr2};
use simd_json::{Buffers, Node, StaticNode, Tape};

use super::mapping::{CompiledMapping, clip};
use super::record::{FieldError, FieldSpec, Kind, Record, Val};

/// Default longest record (line) read from a line-based input, bytes (1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
/// Bytes of an over-long record kept in `quarantine.raw`.
pub const RAW_PREFIX_BYTES: usize = 4096;
/// Bytes asked from the input per read.
const CHUNK: usize = 256 << 10;

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
    /// Something about the input that is not a record (a repeated CSV header …), once each.
    fn on_notice(&mut self, _pos: &SourcePos<'_>, _message: &str) {}
    /// One HJ 1239 frame (framed, not decoded) of a frame stream. Default: a reject (a text
    /// handler has no frame decoder).
    fn on_frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
        self.on_error(
            FieldError::record("an HJ 1239 frame where text records were expected"),
            pos,
            bytes,
        );
    }
    /// Bytes of a frame stream that are no frame; `reason` is the scanner's
    /// (`<reason code>: <text>`).
    fn on_frame_rejected(&mut self, reason: &str, pos: &SourcePos<'_>, bytes: &[u8]) {
        self.on_error(FieldError::record(reason), pos, bytes);
    }
}

/// Default most records held while waiting for the first offset of a `utc_offset_from`
/// column (100,000: about an hour of a 10 Hz log, or a day of a 1 Hz one).
pub const DEFAULT_MAX_HELD_RECORDS: usize = 100_000;
/// Default most bytes (raw lines plus decoded values) held while waiting (64 MiB).
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 << 20;

/// Limits of line-based reading.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Longest record, bytes without the line end; longer ones are quarantined unread.
    pub max_record_bytes: usize,
    /// Most records held, in input order, while a mapping with `utc_offset_from` waits for
    /// the first offset of an input (rows before a Torque log's first GPS fix). Past this (or
    /// [`Self::max_held_bytes`]) the held records are read in the mapping's `utc_offset` /
    /// the enforcement zone, with a notice, and the wait ends for that input.
    pub max_held_records: usize,
    /// Most bytes held while waiting (raw lines plus decoded values, approximate).
    pub max_held_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_held_records: DEFAULT_MAX_HELD_RECORDS,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}

/// One record held while waiting for an offset: its decode result (fields applied,
/// [`CompiledMapping::finish`] not yet called) and where it came from.
struct Held {
    res: Result<Record, FieldError>,
    offset: u64,
    line: u64,
    raw: Vec<u8>,
}

/// Passes decoded records on to a [`Handler`] in input order, holding them while a mapping
/// with `utc_offset_from` waits for the first offset of the input
/// ([`CompiledMapping::waits_for_offset`]). Once a record carries one, the held records are
/// completed with it and passed on before that record; at the end of the input (no offset
/// at all) or past the [`ReadOptions`] bounds they are read in the configured zone. Every
/// record still ends in exactly one `on_record` or `on_error`.
pub(super) struct OffsetWait {
    held: std::collections::VecDeque<Held>,
    bytes: usize,
    /// The bound was reached in this input: nothing more is held.
    gave_up: bool,
    max_records: usize,
    max_bytes: usize,
}

impl OffsetWait {
    fn new(opts: &ReadOptions) -> Self {
        OffsetWait {
            held: Default::default(),
            bytes: 0,
            gave_up: false,
            max_records: opts.max_held_records,
            max_bytes: opts.max_held_bytes,
        }
    }

    /// A record that failed to decode.
    pub(super) fn error(
        &mut self,
        err: FieldError,
        pos: &SourcePos<'_>,
        raw: &[u8],
        h: &mut dyn Handler,
    ) {
        if self.held.is_empty() {
            h.on_error(err, pos, raw);
        } else {
            self.hold(Err(err), pos, raw);
        }
    }

    /// A record whose fields were applied (not finished): completed and passed on, or held.
    pub(super) fn record(
        &mut self,
        mapping: &CompiledMapping,
        specs: &'static [FieldSpec],
        rec: &mut Record,
        pos: &SourcePos<'_>,
        raw: &[u8],
        h: &mut dyn Handler,
    ) {
        let waiting = !self.held.is_empty() || mapping.waits_for_offset(rec);
        if waiting && !self.gave_up && rec.zone_hint_s.is_none() {
            let r = std::mem::replace(rec, Record::new(specs.len()));
            self.hold(Ok(r), pos, raw);
            if self.held.len() > self.max_records || self.bytes > self.max_bytes {
                self.gave_up = true;
                let n = self.held.len();
                h.on_notice(
                    pos,
                    &format!(
                        "no UTC offset in the mapping's utc_offset_from column in the first {n} records (up to line {}): they are read in the mapping's utc_offset or the enforcement zone (at most {} records / {} are held waiting for one)",
                        pos.line,
                        self.max_records,
                        human_bytes(self.max_bytes as u64)
                    ),
                );
                self.flush(mapping, specs, pos.file, h);
            }
            return;
        }
        // This record's own offset (if any) becomes the input's offset in `finish`; records
        // held before it take that one.
        let res = mapping
            .finish(rec)
            .and_then(|()| CompiledMapping::check_required(specs, rec));
        self.flush(mapping, specs, pos.file, h);
        match res {
            Ok(()) => h.on_record(rec, pos, raw),
            Err(e) => h.on_error(e, pos, raw),
        }
    }

    fn hold(&mut self, res: Result<Record, FieldError>, pos: &SourcePos<'_>, raw: &[u8]) {
        self.bytes += raw.len()
            + std::mem::size_of::<Held>()
            + match &res {
                Ok(r) => r.text.capacity() + r.vals.capacity() * std::mem::size_of::<Val>(),
                Err(e) => e.message.len() + e.field.as_ref().map_or(0, String::len),
            };
        self.held.push_back(Held {
            res,
            offset: pos.offset,
            line: pos.line,
            raw: raw.to_vec(),
        });
    }

    /// Completes and passes on every held record, in order: with the input's offset when one
    /// was seen, else in the configured zone.
    fn flush(
        &mut self,
        mapping: &CompiledMapping,
        specs: &'static [FieldSpec],
        file: &str,
        h: &mut dyn Handler,
    ) {
        self.bytes = 0;
        while let Some(Held {
            res,
            offset,
            line,
            raw,
        }) = self.held.pop_front()
        {
            let pos = SourcePos { file, offset, line };
            match res {
                Ok(mut r) => match mapping
                    .finish(&mut r)
                    .and_then(|()| CompiledMapping::check_required(specs, &r))
                {
                    Ok(()) => h.on_record(&r, &pos, &raw),
                    Err(e) => h.on_error(e, &pos, &raw),
                },
                Err(e) => h.on_error(e, &pos, &raw),
            }
        }
    }
}

/// One item out of a [`LineReader`].
#[derive(Debug)]
pub enum LineItem<'a> {
    /// A record without its line end (`\n` or `\r\n`).
    Record {
        bytes: &'a [u8],
        offset: u64,
        line: u64,
    },
    /// A record longer than the limit: skipped; `len` is its full length, `prefix` its start.
    TooLong {
        prefix: &'a [u8],
        offset: u64,
        line: u64,
        len: u64,
    },
}

/// Splits a byte stream into lines (or, with `csv_quotes`, CSV records whose quoted cells may
/// hold line ends) in time linear in the input and memory bounded by the record limit plus
/// one read chunk. A UTF-8 BOM at the start is skipped.
pub struct LineReader<R> {
    inner: R,
    /// Read buffer; valid bytes are `buf[..end]` (the rest is zeroed spare room, so a read
    /// never zero-fills a chunk again: small reads stay linear).
    buf: Vec<u8>,
    end: usize,
    /// Start of the current record in `buf`.
    start: usize,
    /// Next byte of `buf` to scan for the record end (never rescanned: linear time).
    scan: usize,
    in_quotes: bool,
    /// Line ends inside quotes of the current record.
    nl_inside: u64,
    /// Stream offset of `buf[0]`.
    base: u64,
    line_no: u64,
    eof: bool,
    bom_done: bool,
    csv_quotes: bool,
    max: usize,
    prefix: Vec<u8>,
}

impl<R: Read> LineReader<R> {
    /// A reader of records of at most `max` bytes.
    pub fn new(inner: R, max: usize, csv_quotes: bool) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            end: 0,
            start: 0,
            scan: 0,
            in_quotes: false,
            nl_inside: 0,
            base: 0,
            line_no: 1,
            eof: false,
            bom_done: false,
            csv_quotes,
            max: max.max(1),
            prefix: Vec::new(),
        }
    }

    /// Bytes of the input consumed so far.
    pub fn consumed(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The next record, `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<LineItem<'_>>> {
        loop {
            let end = self.find_end();
            let pending = self.end - self.start;
            let end = match end {
                Some(e) => Some(e),
                None if pending > self.max => return self.skip_long().map(Some),
                None if self.eof && pending == 0 => return Ok(None),
                None if self.eof => Some(self.end),
                None => None,
            };
            if let Some(end) = end {
                let s = self.start;
                let offset = self.base + s as u64;
                let line = self.line_no;
                self.line_no += 1 + self.nl_inside;
                self.nl_inside = 0;
                self.in_quotes = false;
                self.start = (end + 1).min(self.end);
                self.scan = self.start;
                let mut b = &self.buf[s..end];
                if b.last() == Some(&b'\r') {
                    b = &b[..b.len() - 1];
                }
                if b.len() > self.max {
                    return Ok(Some(LineItem::TooLong {
                        prefix: &b[..RAW_PREFIX_BYTES.min(self.max)],
                        offset,
                        line,
                        len: b.len() as u64,
                    }));
                }
                return Ok(Some(LineItem::Record {
                    bytes: b,
                    offset,
                    line,
                }));
            }
            self.fill()?;
        }
    }

    /// Index of the `\n` that ends the current record, scanning only new bytes.
    fn find_end(&mut self) -> Option<usize> {
        if !self.csv_quotes {
            return match memchr(b'\n', &self.buf[self.scan..self.end]) {
                Some(k) => Some(self.scan + k),
                None => {
                    self.scan = self.end;
                    None
                }
            };
        }
        let mut i = self.scan;
        while let Some(k) = memchr2(b'"', b'\n', &self.buf[i..self.end]) {
            let j = i + k;
            if self.buf[j] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                self.scan = j;
                return Some(j);
            } else {
                self.nl_inside += 1;
            }
            i = j + 1;
        }
        self.scan = self.end;
        None
    }

    /// Reads one more chunk after dropping the consumed bytes.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.base += self.start as u64;
            self.scan -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < CHUNK / 4 {
            self.buf.resize(self.end + CHUNK, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.end += n;
        if n == 0 {
            self.eof = true;
        }
        if !self.bom_done && (self.end >= 3 || self.eof) {
            self.bom_done = true;
            if self.base == 0
                && self.start == 0
                && self.buf[..self.end].starts_with(b"\xEF\xBB\xBF")
            {
                self.start = 3;
                self.scan = self.scan.max(3);
            }
        }
        Ok(())
    }

    /// Skips the rest of an over-long record up to the next line end (quotes ignored, so a
    /// stray quote cannot swallow the input), keeping only its first bytes.
    fn skip_long(&mut self) -> std::io::Result<LineItem<'_>> {
        let offset = self.base + self.start as u64;
        let line = self.line_no;
        let pending = &self.buf[self.start..self.end];
        self.prefix.clear();
        // The same bounded prefix however the record arrived: min(4 KiB, limit).
        self.prefix
            .extend_from_slice(&pending[..RAW_PREFIX_BYTES.min(self.max)]);
        let mut len = pending.len() as u64;
        let mut last = pending.last().copied().unwrap_or(0);
        self.base += self.end as u64;
        self.end = 0;
        self.start = 0;
        self.scan = 0;
        while !self.eof {
            self.fill()?;
            match memchr(b'\n', &self.buf[..self.end]) {
                Some(k) => {
                    if k > 0 {
                        last = self.buf[k - 1];
                    }
                    len += k as u64;
                    self.start = k + 1;
                    self.scan = k + 1;
                    break;
                }
                None => {
                    len += self.end as u64;
                    if let Some(&b) = self.buf[..self.end].last() {
                        last = b;
                    }
                    self.base += self.end as u64;
                    self.end = 0;
                }
            }
        }
        if last == b'\r' {
            len -= 1;
        }
        self.line_no += 1 + self.nl_inside;
        self.nl_inside = 0;
        self.in_quotes = false;
        Ok(LineItem::TooLong {
            prefix: &self.prefix,
            offset,
            line,
            len,
        })
    }
}

/// A byte count for people: `1 MiB`, `64 KiB`, or `1000 bytes`.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The quarantine reason of an over-long record.
pub fn too_long_error(len: u64, max: usize) -> FieldError {
    FieldError::record(format!(
        "line of {len} bytes exceeds the {} record limit (only the first {} kept in raw)",
        human_bytes(max as u64),
        human_bytes(RAW_PREFIX_BYTES.min(max) as u64)
    ))
}

/// NDJSON decoder: one JSON object per line.
pub struct NdjsonDecoder {
    mapping: CompiledMapping,
    specs: &'static [FieldSpec],
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    scratch: Vec<u8>,
    /// The line transcoded to UTF-8 (mappings with an `encoding`).
    utf8: String,
    rec: Record,
    /// The key seen at each member position of the last records and its mapping entry: a
    /// feed writes its keys in one order, so a key is matched by one comparison with the
    /// key at its position before any hash lookup ([`KeyCache`]).
    keys: KeyCache,
}

/// Member position → (key, mapping entry) of the records decoded so far. Positions past
/// [`KeyCache::MAX_MEMBERS`] are looked up in the mapping each time.
#[derive(Default)]
struct KeyCache(Vec<Option<(Box<str>, Option<usize>)>>);

impl KeyCache {
    const MAX_MEMBERS: usize = 128;

    /// The mapping entry of `key` at member position `member`.
    #[inline]
    fn entry(&mut self, mapping: &CompiledMapping, member: usize, key: &str) -> Option<usize> {
        if member >= Self::MAX_MEMBERS {
            return mapping.entry_for(key);
        }
        if self.0.len() <= member {
            self.0.resize(member + 1, None);
        }
        match &self.0[member] {
            Some((k, e)) if &**k == key => *e,
            _ => {
                let e = mapping.entry_for(key);
                self.0[member] = Some((key.into(), e));
                e
            }
        }
    }
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
            utf8: String::new(),
            rec: Record::new(specs.len()),
            keys: KeyCache::default(),
        }
    }

    /// Decodes one line (no line end). On success the record is in the returned reference.
    /// With a mapping `encoding` the line is transcoded first (no lossy replacement: an
    /// undecodable byte is an error naming the field and offset).
    pub fn decode_line(&mut self, line: &[u8]) -> Result<&Record, FieldError> {
        self.decode_fields(line)?;
        self.mapping.finish(&mut self.rec)?;
        CompiledMapping::check_required(self.specs, &self.rec)?;
        Ok(&self.rec)
    }

    /// [`Self::decode_line`] without completing the record ([`CompiledMapping::finish`], the
    /// required-field check): the reader may hold it for a `utc_offset_from` offset.
    fn decode_fields(&mut self, line: &[u8]) -> Result<(), FieldError> {
        self.rec.clear();
        let text: &[u8] = match self.mapping.encoding {
            None => line,
            Some(enc) => {
                transcode(enc, line, &mut self.utf8).map_err(|(at, msg)| {
                    match field_at(line, at) {
                        Some(k) => FieldError::field(&k, msg),
                        None => FieldError::record(msg),
                    }
                })?;
                self.utf8.as_bytes()
            }
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(text);
        let mut tape: Tape<'_> = self
            .tape
            .take()
            .unwrap_or_else(|| Tape::null().reset())
            .reset();
        let res = match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Err(e) => Err(json_error(text, &e)),
            Ok(()) => Self::walk(&self.mapping, &mut self.keys, &tape, &mut self.rec, text),
        };
        self.tape = Some(tape.reset());
        res
    }

    fn walk(
        mapping: &CompiledMapping,
        keys: &mut KeyCache,
        tape: &Tape<'_>,
        rec: &mut Record,
        text: &[u8],
    ) -> Result<(), FieldError> {
        let nodes = &tape.0;
        let Some(Node::Object { len, .. }) = nodes.first() else {
            return Err(not_an_object(text));
        };
        let mut i = 1;
        for member in 0..*len {
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
            if let Some(e) = keys.entry(mapping, member, key) {
                let kind = mapping.entry(e).kind;
                match val {
                    Node::String(s) => mapping.apply_text(e, s, rec)?,
                    Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))
                        if matches!(kind, Kind::Id | Kind::Str) =>
                    {
                        // Ids are text: take the digits as written, never through f64.
                        let name = mapping.entry(e).name;
                        let raw = raw_member_value(text, member)
                            .and_then(|r| std::str::from_utf8(r).ok())
                            .ok_or_else(|| {
                                FieldError::field(name, "cannot locate the number in the line")
                            })?;
                        mapping.apply_text(e, &number_as_text(name, raw)?, rec)?;
                    }
                    Node::Static(StaticNode::I64(v)) => mapping.apply_num(e, *v as f64, rec)?,
                    Node::Static(StaticNode::U64(v)) => mapping.apply_num(e, *v as f64, rec)?,
                    Node::Static(StaticNode::F64(v)) => mapping.apply_num(e, *v, rec)?,
                    Node::Static(StaticNode::Null) => {}
                    Node::Static(StaticNode::Bool(b)) => {
                        return Err(FieldError::field(
                            mapping.entry(e).name,
                            format!("expected {:?}, got boolean {b}", kind),
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

/// A JSON number token used as text (an id, a code): kept as written; an integral
/// `34.0` loses its `.0` as Excel-made ids do; exponent forms are refused (already rounded by
/// whoever wrote them, and never an id as sent).
fn number_as_text<'a>(field: &str, raw: &'a str) -> Result<Cow<'a, str>, FieldError> {
    if raw.contains(['e', 'E']) {
        return Err(FieldError::field(
            field,
            format!(
                "{field} written as the number {raw} in exponent form (digits may be lost); send ids as strings"
            ),
        ));
    }
    Ok(strip_zero_fraction(raw))
}

/// `123.000` → `123` (text only, no float); anything else unchanged.
pub fn strip_zero_fraction(t: &str) -> Cow<'_, str> {
    if let Some((int, frac)) = t.split_once('.') {
        let digits = int.strip_prefix('-').unwrap_or(int);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b == b'0')
        {
            return Cow::Borrowed(int);
        }
    }
    Cow::Borrowed(t)
}

/// The raw text of the value of the `k`-th member of the top-level object in `s` (source
/// order, as on the tape). Only used for numbers in text fields, off the hot path.
fn raw_member_value(s: &[u8], k: usize) -> Option<&[u8]> {
    let ws = |mut i: usize| {
        while s.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    fn skip_string(s: &[u8], mut i: usize) -> Option<usize> {
        i += 1; // opening quote
        loop {
            let j = i + memchr2(b'"', b'\\', s.get(i..)?)?;
            if s[j] == b'\\' {
                i = j + 2;
            } else {
                return Some(j + 1);
            }
        }
    }
    fn skip_value(s: &[u8], mut i: usize) -> Option<usize> {
        match s.get(i)? {
            b'"' => skip_string(s, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match s.get(i)? {
                        b'"' => {
                            i = skip_string(s, i)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {
                while s
                    .get(i)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    i += 1;
                }
                Some(i)
            }
        }
    }
    let mut i = ws(0);
    if s.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut m = 0;
    loop {
        i = ws(i);
        if s.get(i) != Some(&b'"') {
            return None;
        }
        i = ws(skip_string(s, i)?);
        if s.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        let v = i;
        i = skip_value(s, i)?;
        if m == k {
            return Some(&s[v..i]);
        }
        m += 1;
        i = ws(i);
        if s.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

/// Transcodes `bytes` from `enc` into `out` without replacement; on an undecodable sequence,
/// its byte offset and a message naming the bytes and the encoding.
pub fn transcode(
    enc: &'static Encoding,
    bytes: &[u8],
    out: &mut String,
) -> Result<(), (usize, String)> {
    out.clear();
    if let Some(s) = enc.decode_without_bom_handling_and_without_replacement(bytes) {
        out.push_str(&s);
        return Ok(());
    }
    let mut dec = enc.new_decoder_without_bom_handling();
    out.reserve(bytes.len() * 3 + 16);
    let (res, read) = dec.decode_to_string_without_replacement(bytes, out, true);
    let (bad, extra) = match res {
        encoding_rs::DecoderResult::Malformed(b, e) => (b as usize, e as usize),
        _ => (1, 0),
    };
    let at = read.saturating_sub(bad + extra);
    let seq: Vec<String> = bytes[at..(at + bad).min(bytes.len())]
        .iter()
        .map(|b| format!("0x{b:02X}"))
        .collect();
    Err((
        at,
        format!(
            "bytes {} at byte {at} are not valid {} (wrong `encoding` in the mapping?)",
            seq.join(" "),
            enc.name()
        ),
    ))
}

/// A line that parsed as JSON but is not an object.
fn not_an_object(text: &[u8]) -> FieldError {
    let t = String::from_utf8_lossy(text);
    FieldError::record(format!(
        "not a JSON object (one object per line expected); line starts \"{}\"",
        clip(t.trim())
    ))
}

/// Turns a simd-json error into a record error; invalid UTF-8 names the field it sits in.
fn json_error(line: &[u8], e: &simd_json::Error) -> FieldError {
    if let Err(u) = std::str::from_utf8(line) {
        let pos = u.valid_up_to();
        let msg = format!(
            "not valid UTF-8 at byte {pos} (GBK or another legacy encoding? set `encoding` in the mapping, or re-encode the source as UTF-8)"
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
    // Valid UTF-8 from here on.
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
    if !t.starts_with('{') {
        let first = t.chars().next().unwrap_or(' ');
        return FieldError::record(format!(
            "not a JSON object: the line starts with '{}' (\"{}\")",
            shown(first),
            clip(t)
        ));
    }
    use simd_json::ErrorType as E;
    let what = match e.error() {
        E::Eof | E::UnterminatedString => "the line ends inside the object (truncated?)",
        E::InvalidNumber | E::InvalidExponent => "bad number",
        E::InvalidEscape | E::InvalidUnicodeEscape | E::InvalidUnicodeCodepoint => {
            "bad escape in a string"
        }
        E::TrailingData => "text after the end of the object",
        E::ExpectedObjectColon => "expected ':' after a key",
        E::ExpectedMapComma | E::ExpectedArrayComma => "expected ',' between values",
        E::ExpectedObjectKey | E::KeyMustBeAString => "expected a quoted key",
        E::DepthLimitExceeded => "nested too deeply",
        _ => "malformed JSON",
    };
    // simd-json's index counts bytes; quote the character there, not a byte as Latin-1.
    let at = e.index().min(line.len());
    let ch = text
        .get(at..)
        .and_then(|s| s.chars().next())
        .map(|c| format!(" near '{}'", shown(c)))
        .unwrap_or_default();
    FieldError::record(format!(
        "invalid JSON: {what} at byte {at}{ch} (line starts \"{}\")",
        clip(t)
    ))
}

/// A character as quoted in a reason: itself (`'冀'`), or escaped when it is a control.
fn shown(c: char) -> String {
    if c.is_control() {
        c.escape_default().to_string()
    } else {
        c.to_string()
    }
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

/// Streams NDJSON from `input` with the default record limit, calling `h` per line.
pub fn read_ndjson(
    dec: &mut NdjsonDecoder,
    input: &mut dyn Read,
    file: &str,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    read_ndjson_with(dec, input, file, &ReadOptions::default(), h)
}

/// Streams NDJSON from `input`, calling `h` per non-blank line; returns the records seen.
/// A line longer than `opts.max_record_bytes` is one quarantined record, never held whole.
/// (The framing of [`LineReader`] plus [`RecordDecoder`]: the same path every source takes.)
pub fn read_ndjson_with(
    dec: &mut NdjsonDecoder,
    input: &mut dyn Read,
    file: &str,
    opts: &ReadOptions,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    let mut rd = RecordDecoder::ndjson(dec.mapping.clone(), dec.specs, opts);
    read_lines(&mut rd, input, file, opts, false, h)
}

/// Frames `input` into lines (or CSV records) and hands each to `rd`; returns the records
/// seen.
pub(super) fn read_lines(
    rd: &mut RecordDecoder,
    input: &mut dyn Read,
    file: &str,
    opts: &ReadOptions,
    csv_quotes: bool,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    let mut lr = LineReader::new(input, opts.max_record_bytes, csv_quotes);
    let mut next_progress = 1u64 << 20;
    loop {
        match lr.next_line()? {
            None => break,
            Some(LineItem::Record {
                bytes,
                offset,
                line,
            }) => rd.record(bytes, &SourcePos { file, offset, line }, h),
            Some(LineItem::TooLong {
                prefix,
                offset,
                line,
                len,
            }) => rd.too_long(
                prefix,
                len,
                opts.max_record_bytes,
                &SourcePos { file, offset, line },
                h,
            ),
        }
        if lr.consumed() >= next_progress {
            h.on_progress(lr.consumed());
            next_progress = lr.consumed() + (1 << 20);
        }
    }
    rd.finish(file, h);
    h.on_progress(lr.consumed());
    Ok(rd.records())
}

/// The text formats a [`RecordDecoder`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// One JSON object per record.
    Ndjson,
    /// CSV with a header record.
    Csv,
}

use super::csv::CsvState;
/// Decodes the framed records of one input (one file, one stdin, one Kafka partition, one TCP
/// connection), in order, and hands the results to a [`Handler`]: every record ends in
/// exactly one `on_record` or `on_error`. Framing is the source's ([`LineReader`] for files);
/// this is the one decoding path of every source, `ingest` and `run` alike.
///
/// Per input state: a CSV header (and its re-binding on a repeated header), the records held
/// while a `utc_offset_from` mapping waits for the first offset ([`ReadOptions`]).
pub use super::csv::{read_csv, read_csv_with};

pub struct RecordDecoder {
    kind: DecoderKind,
    wait: OffsetWait,
    records: u64,
}

enum DecoderKind {
    Ndjson(Box<NdjsonDecoder>),
    Csv(Box<CsvState>),
}

impl RecordDecoder {
    /// A decoder of `format` through `mapping` into `specs`.
    pub fn new(
        format: TextFormat,
        mapping: CompiledMapping,
        specs: &'static [FieldSpec],
        opts: &ReadOptions,
    ) -> Self {
        match format {
            TextFormat::Ndjson => Self::ndjson(mapping, specs, opts),
            TextFormat::Csv => Self::csv(mapping, specs, opts),
        }
    }

    /// An NDJSON decoder.
    pub fn ndjson(
        mapping: CompiledMapping,
        specs: &'static [FieldSpec],
        opts: &ReadOptions,
    ) -> Self {
        mapping.reset_state();
        RecordDecoder {
            kind: DecoderKind::Ndjson(Box::new(NdjsonDecoder::new(mapping, specs))),
            wait: OffsetWait::new(opts),
            records: 0,
        }
    }

    /// A CSV decoder (the first record is the header; see [`read_csv_with`]).
    pub fn csv(mapping: CompiledMapping, specs: &'static [FieldSpec], opts: &ReadOptions) -> Self {
        mapping.reset_state();
        RecordDecoder {
            kind: DecoderKind::Csv(Box::new(CsvState::new(mapping, specs))),
            wait: OffsetWait::new(opts),
            records: 0,
        }
    }

    /// Records seen so far (blank lines, comments and CSV headers are not records).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// One framed record (without its line end).
    pub fn record(&mut self, raw: &[u8], pos: &SourcePos<'_>, h: &mut dyn Handler) {
        match &mut self.kind {
            DecoderKind::Ndjson(dec) => {
                if raw.iter().all(|b| b.is_ascii_whitespace()) {
                    return;
                }
                self.records += 1;
                match dec.decode_fields(raw) {
                    Ok(()) => self
                        .wait
                        .record(&dec.mapping, dec.specs, &mut dec.rec, pos, raw, h),
                    Err(e) => self.wait.error(e, pos, raw, h),
                }
            }
            DecoderKind::Csv(c) => {
                if c.record(raw, pos, &mut self.wait, h) {
                    self.records += 1;
                }
            }
        }
    }

    /// A CSV header record read again before a resumed position (the records after it are
    /// bound by it): not a record, no notice.
    pub fn header(&mut self, raw: &[u8], pos: &SourcePos<'_>, h: &mut dyn Handler) {
        match &mut self.kind {
            DecoderKind::Csv(c) => c.resumed_header(raw, pos, h),
            DecoderKind::Ndjson(_) => {}
        }
    }

    /// The CSV header records read so far that bind the records after them: the first and,
    /// when another came later, the latest (offset, line, bytes). Empty for NDJSON.
    pub fn headers(&self) -> Vec<(u64, u64, Vec<u8>)> {
        let DecoderKind::Csv(c) = &self.kind else {
            return Vec::new();
        };
        let mut out: Vec<_> = c.first_raw.iter().cloned().collect();
        if let Some(l) = &c.last_raw
            && c.first_raw.as_ref().is_none_or(|f| f.0 != l.0)
        {
            out.push(l.clone());
        }
        out
    }

    /// A record of `len` bytes, longer than the framer's limit `max`, skipped unread: one
    /// quarantined record.
    pub fn too_long(
        &mut self,
        prefix: &[u8],
        len: u64,
        max: usize,
        pos: &SourcePos<'_>,
        h: &mut dyn Handler,
    ) {
        self.records += 1;
        self.wait.error(too_long_error(len, max), pos, prefix, h);
    }

    /// End of the input: records still held are read in the configured zone.
    pub fn finish(&mut self, file: &str, h: &mut dyn Handler) {
        let (mapping, specs) = match &self.kind {
            DecoderKind::Ndjson(d) => (&d.mapping, d.specs),
            DecoderKind::Csv(c) => (&c.mapping, c.specs),
        };
        self.wait.flush(mapping, specs, file, h);
    }
}

/// What the start of an input looks like when it is not what was asked for (`None` when
/// nothing stands out). `prefix` is the first bytes of the input.
pub fn describe_input(prefix: &[u8]) -> Option<String> {
    let p = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
    let magic: [(&[u8], &str); 7] = [
        (b"PAR1", "a Parquet file"),
        (b"\x1F\x8B", "gzip-compressed data (decompress it first)"),
        (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
        (
            b"##",
            "HJ 1239 binary frames (use --format hj1239 --stream obd)",
        ),
        (b"\x7E", "JT/T 808 frames (0x7E-delimited; not supported)"),
        (b"ARROW1", "an Arrow IPC file"),
        (b"SQLite format 3", "an SQLite database"),
    ];
    for (m, what) in magic {
        if p.starts_with(m) {
            return Some(what.to_string());
        }
    }
    let head = &p[..p.len().min(512)];
    let ctrl = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'))
        .count();
    if ctrl > 0 {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02X}")).collect();
        return Some(format!("binary data (first bytes {})", hex.join(" ")));
    }
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or("").trim();
    if first.starts_with('{') {
        return Some("NDJSON (the first line is a JSON object)".into());
    }
    if first.starts_with('[') {
        return Some("a JSON array, not one object per line".into());
    }
    if first.starts_with('<') {
        return Some("XML or HTML".into());
    }
    for d in [',', ';', '\t', '|'] {
        let cells: Vec<&str> = first.split(d).collect();
        if cells.len() >= 2 {
            let names = cells.iter().all(|c| {
                let c = c.trim().trim_matches('"');
                !c.is_empty() && c.parse::<f64>().is_err()
            });
            return Some(if names {
                format!("the first line is a CSV header: {}", clip(first))
            } else {
                format!("the first line is CSV data: {}", clip(first))
            });
        }
    }
    None
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
        let mut c = collect();
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

    /// The key cache matches keys by position: records whose keys come in another order, an
    /// unknown key where a known one was, and a known one where an unknown one was, all
    /// decode to the same values as a fresh decoder gives.
    #[test]
    fn keys_in_changing_order_decode_the_same() {
        let lines: [&[u8]; 5] = [
            br#"{"pass_id":"a","passed_at":1700000000000,"speed_kmh":42.5}"#,
            br#"{"speed_kmh":17,"pass_id":"b","passed_at":1700000000000}"#,
            br#"{"pass_id":"c","vendor_x":99,"passed_at":1700000000000,"speed_kmh":3}"#,
            br#"{"pass_id":"d","speed_kmh":8,"passed_at":1700000000000,"vendor_x":1}"#,
            br#"{"pass_id":"e","passed_at":1700000000000,"speed_kmh":42.5}"#,
        ];
        let speed = RSD_FIELDS
            .iter()
            .position(|f| f.name == "speed_kmh")
            .unwrap();
        let mut reused = NdjsonDecoder::new(canonical(), RSD_FIELDS);
        let mut got = Vec::new();
        for l in lines {
            let r = reused.decode_line(l).unwrap();
            let mut fresh = NdjsonDecoder::new(canonical(), RSD_FIELDS);
            let f = fresh.decode_line(l).unwrap();
            assert_eq!(format!("{r:?}"), format!("{f:?}"));
            got.push(r.num(speed));
        }
        assert_eq!(
            got,
            vec![Some(42.5), Some(17.0), Some(3.0), Some(8.0), Some(42.5)]
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
        let mut c = collect();
        let n = read_csv(&canonical(), RSD_FIELDS, &mut &data[..], "t", &mut c).unwrap();
        assert_eq!(n, 2);
        assert_eq!(c.ok, vec![("x".into(), Some(10.0))]);
        assert_eq!(c.bad, vec!["row has 4 fields, header has 3".to_string()]);
        // An empty input, or a header alone, is no records and nothing quarantined.
        for empty in [&b""[..], b"\n\n", b"pass_id,passed_at\n"] {
            let mut c = collect();
            let n = read_csv(&canonical(), RSD_FIELDS, &mut &empty[..], "t", &mut c).unwrap();
            assert_eq!((n, c.bad.len()), (0, 0));
            let mut dec = NdjsonDecoder::new(canonical(), RSD_FIELDS);
            let n = read_ndjson(&mut dec, &mut &empty[..0], "t", &mut c).unwrap();
            assert_eq!((n, c.bad.len()), (0, 0));
        }
    }

    fn collect() -> Collect {
        Collect {
            ok: vec![],
            bad: vec![],
        }
    }

    /// Feeds `data` a few bytes per read, as a pipe does.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn items(data: &[u8], max: usize, quotes: bool, step: usize) -> Vec<String> {
        let mut lr = LineReader::new(Trickle(data, step), max, quotes);
        let mut v = vec![];
        while let Some(it) = lr.next_line().unwrap() {
            v.push(match it {
                LineItem::Record {
                    bytes,
                    offset,
                    line,
                } => format!("{offset}/{line}:{}", String::from_utf8_lossy(bytes)),
                LineItem::TooLong {
                    prefix,
                    offset,
                    line,
                    len,
                } => format!("{offset}/{line}:long {len} {}", prefix.len()),
            });
        }
        v
    }

    #[test]
    fn line_reader_bounds_records_whatever_the_read_size() {
        let mut data = b"\xEF\xBB\xBFab\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 10_000));
        data.extend(b"\r\ncd\n\"q\nq\",1\nlast");
        for step in [1, 7, 4096, 1 << 20] {
            assert_eq!(
                items(&data, 100, false, step),
                [
                    "3/1:ab",
                    "7/2:long 10000 100",
                    "10009/3:cd",
                    "10012/4:\"q",
                    "10015/5:q\",1",
                    "10020/6:last"
                ],
                "step {step}"
            );
            // CSV mode: a quoted line end stays inside the record; line numbers count it.
            assert_eq!(
                items(&data, 100, true, step)[3..],
                ["10012/4:\"q\nq\",1", "10020/6:last"],
                "step {step}"
            );
        }
        // A record of exactly the limit is read; one byte more is not.
        assert_eq!(
            items(b"12345\n123456\n", 5, false, 3),
            ["0/1:12345", "6/2:long 6 5"]
        );
    }

    #[test]
    fn one_endless_line_is_skipped_in_linear_time_and_bounded_memory() {
        // 16 MiB of NUL bytes without a line end, 64 KiB per read (a pipe).
        let data = vec![0u8; 16 << 20];
        let t = std::time::Instant::now();
        let mut lr = LineReader::new(Trickle(&data, 64 << 10), 1 << 20, false);
        let Some(LineItem::TooLong { prefix, len, .. }) = lr.next_line().unwrap() else {
            panic!("expected an over-long line")
        };
        assert_eq!((len, prefix.len()), (16 << 20, RAW_PREFIX_BYTES));
        assert!(lr.next_line().unwrap().is_none());
        assert!(lr.buf.len() < 4 << 20, "{}", lr.buf.len());
        assert!(t.elapsed().as_secs() < 20);
        let e = too_long_error(50_000_000, 1 << 20).to_string();
        assert!(
            e.starts_with("line of 50000000 bytes exceeds the 1 MiB record limit"),
            "{e}"
        );
    }

    #[test]
    fn json_numbers_in_text_fields_keep_their_digits() {
        let line = br#"{"x":{"a":[1,"]"]},"pass_id" : 20251108103059003 ,"passed_at":1700000000000,"site_id":-12345678901234567890}"#;
        let mut dec = NdjsonDecoder::new(canonical(), RSD_FIELDS);
        let rec = dec.decode_line(line).unwrap();
        assert_eq!(rec.str(rsd::PASS_ID), Some("20251108103059003"));
        assert_eq!(rec.str(rsd::SITE_ID), Some("-12345678901234567890"));
        let rec = dec
            .decode_line(br#"{"pass_id":34.000,"passed_at":1700000000000}"#)
            .unwrap();
        assert_eq!(rec.str(rsd::PASS_ID), Some("34"));
        let e = dec
            .decode_line(br#"{"pass_id":1.2345678901234567e16,"passed_at":1700000000000}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("pass_id"));
        assert!(e.message.contains("exponent form"), "{e}");
        assert_eq!(
            raw_member_value(br#"{"a":"x\"y","b": 7}"#, 1),
            Some(&b"7"[..])
        );
    }

    #[test]
    fn json_errors_name_the_problem_and_quote_characters_whole() {
        let mut dec = NdjsonDecoder::new(canonical(), RSD_FIELDS);
        let e = dec.decode_line("冀F12345,yellow".as_bytes()).unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{e}");
        assert!(e.message.contains("'冀'"), "{e}");
        let e = dec.decode_line(b"\0\0\0\0").unwrap_err().to_string();
        assert!(!e.contains('\0') && e.contains("\\x00"), "{e}");
        let e = dec.decode_line(b"[1,2]").unwrap_err().to_string();
        assert!(e.starts_with("not a JSON object"), "{e}");
    }

    #[test]
    fn what_an_input_looks_like() {
        let d = |b: &[u8]| describe_input(b).unwrap_or_default();
        assert!(
            d(b"plate,plate_color,vin\n")
                .starts_with("the first line is a CSV header: plate,plate_color")
        );
        assert_eq!(d(b"PAR1\x15\x04"), "a Parquet file");
        assert!(d(b"\0\0\0").starts_with("binary data (first bytes 00 00 00)"));
        assert!(d(b"{\"a\":1}\n").starts_with("NDJSON"));
        assert_eq!(describe_input(b"hello"), None);
    }
}
