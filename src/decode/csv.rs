//! CSV decoding: RFC 4180 cells, column binding by header name (and re-binding on a repeated
//! header), legacy encodings, through a column mapping. Framing is the source's
//! ([`super::text::LineReader`] with quotes); [`super::text::RecordDecoder`] drives this.

use std::borrow::Cow;
use std::io::Read;

use memchr::memchr;

use super::mapping::CompiledMapping;
use super::record::{FieldError, FieldSpec, Record};
use super::text::{
    Handler, OffsetWait, ReadOptions, RecordDecoder, SourcePos, read_lines, transcode,
};

/// Splits one CSV record (RFC 4180 quoting, `""` inside quotes) into unquoted cells.
fn split_cells(
    rec: &[u8],
    delim: u8,
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), &'static str> {
    out.clear();
    ends.clear();
    let n = rec.len();
    let mut i = 0;
    loop {
        if rec.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let k = memchr(b'"', &rec[i..]).ok_or("unterminated quoted cell")?;
                out.extend_from_slice(&rec[i..i + k]);
                i += k + 1;
                if rec.get(i) == Some(&b'"') {
                    out.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
            // Text after the closing quote belongs to the cell (as the csv crate reads it).
            let e = memchr(delim, &rec[i..]).map_or(n, |k| i + k);
            out.extend_from_slice(&rec[i..e]);
            i = e;
        } else {
            let e = memchr(delim, &rec[i..]).map_or(n, |k| i + k);
            out.extend_from_slice(&rec[i..e]);
            i = e;
        }
        ends.push(out.len());
        if i >= n {
            return Ok(());
        }
        i += 1; // the delimiter
        if i == n {
            ends.push(out.len()); // a trailing delimiter: one more empty cell
            return Ok(());
        }
    }
}

/// Column binding from one CSV header line.
struct Header {
    /// Column → mapping entry.
    cols: Vec<Option<usize>>,
    /// Trimmed header cells.
    names: Vec<String>,
}

fn cell_text<'a>(
    mapping: &CompiledMapping,
    cell: &'a [u8],
    scratch: &mut String,
) -> Result<Cow<'a, str>, (usize, String)> {
    match mapping.encoding {
        Some(enc) => {
            transcode(enc, cell, scratch)?;
            Ok(Cow::Owned(std::mem::take(scratch)))
        }
        None => std::str::from_utf8(cell).map(Cow::Borrowed).map_err(|u| {
            (
                u.valid_up_to(),
                format!(
                    "not valid UTF-8 at byte {} (GBK or another legacy encoding? set `encoding` in the mapping, or re-encode the source as UTF-8)",
                    u.valid_up_to()
                ),
            )
        }),
    }
}

/// Reads CSV with a header row from `input`, streamed record by record (never whole), with
/// the default record limit.
pub fn read_csv(
    mapping: &CompiledMapping,
    specs: &'static [FieldSpec],
    input: &mut dyn Read,
    file: &str,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    read_csv_with(mapping, specs, input, file, &ReadOptions::default(), h)
}

/// Reads CSV with a header row from `input`, streamed; returns the records seen.
///
/// - The first record is the header; columns are bound by name (trimmed), never by position.
/// - A later row whose cells name at least two mapped columns (or equal the header) is a
///   header again (concatenated exports, logger restarts): columns are re-bound from it,
///   reported once through [`Handler::on_notice`], not stored and not counted. If it lacks a
///   column the first header bound, the rows under it are quarantined with that reason until
///   a complete header comes.
/// - Mapping options: `encoding` (cells transcoded without replacement), `delimiter`,
///   `comment` (lines starting with it are skipped), number style (see `mapping.rs`).
/// - A record longer than `opts.max_record_bytes` is quarantined unread.
pub fn read_csv_with(
    mapping: &CompiledMapping,
    specs: &'static [FieldSpec],
    input: &mut dyn Read,
    file: &str,
    opts: &ReadOptions,
    h: &mut dyn Handler,
) -> std::io::Result<u64> {
    let mut rd = RecordDecoder::csv(mapping.clone(), specs, opts);
    read_lines(&mut rd, input, file, opts, true, h)
}

/// The per-input state of CSV decoding (see [`read_csv_with`]).
pub(super) struct CsvState {
    pub(super) mapping: CompiledMapping,
    pub(super) specs: &'static [FieldSpec],
    rec: Record,
    cells: Vec<u8>,
    ends: Vec<usize>,
    scratch: String,
    header: Option<Header>,
    first_slots: Vec<usize>,
    block: Option<FieldError>,
    /// The first and the latest header record (offset, line, bytes): what a reader resuming
    /// after them must bind again ([`RecordDecoder::headers`]).
    pub(super) first_raw: Option<(u64, u64, Vec<u8>)>,
    pub(super) last_raw: Option<(u64, u64, Vec<u8>)>,
}

impl CsvState {
    pub(super) fn new(mapping: CompiledMapping, specs: &'static [FieldSpec]) -> Self {
        CsvState {
            mapping,
            specs,
            rec: Record::new(specs.len()),
            cells: Vec::new(),
            ends: Vec::new(),
            scratch: String::new(),
            header: None,
            first_slots: Vec::new(),
            block: None,
            first_raw: None,
            last_raw: None,
        }
    }

    /// A header read again at a resumed position: binds the columns as when it was first
    /// read (the first header, or a later one re-binding them).
    pub(super) fn resumed_header(&mut self, raw: &[u8], pos: &SourcePos<'_>, h: &mut dyn Handler) {
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        if split_cells(raw, self.mapping.delimiter, &mut self.cells, &mut self.ends).is_ok()
            && self.is_header()
        {
            self.bind_header(raw, pos, h);
        }
    }

    /// One framed record; true when it counts as a record (not blank, comment or header).
    pub(super) fn record(
        &mut self,
        raw: &[u8],
        pos: &SourcePos<'_>,
        wait: &mut OffsetWait,
        h: &mut dyn Handler,
    ) -> bool {
        // A UTF-8 byte-order mark starts every Excel export: also mid-file, where exports were
        // joined with `cat` (the second header must still be recognised).
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            return false;
        }
        if let Some(c) = self.mapping.comment.as_deref().map(str::as_bytes)
            && raw.trim_ascii_start().starts_with(c)
        {
            return false;
        }
        if let Err(msg) = split_cells(raw, self.mapping.delimiter, &mut self.cells, &mut self.ends)
        {
            wait.error(
                FieldError::record(format!("bad CSV row: {msg}")),
                pos,
                raw,
                h,
            );
            return true;
        }
        if self.is_header() {
            self.bind_header(raw, pos, h);
            return false;
        }
        let Some(hd) = &self.header else {
            return false;
        };
        if let Some(b) = &self.block {
            wait.error(b.clone(), pos, raw, h);
            return true;
        }
        if self.ends.len() != hd.cols.len() {
            let e = FieldError::record(format!(
                "row has {} fields, header has {}",
                self.ends.len(),
                hd.cols.len()
            ));
            wait.error(e, pos, raw, h);
            return true;
        }
        self.rec.clear();
        let res = (|| {
            for (ci, col) in hd.cols.iter().enumerate() {
                let Some(e) = *col else { continue };
                let cell = &self.cells[if ci == 0 { 0 } else { self.ends[ci - 1] }..self.ends[ci]];
                let s = cell_text(&self.mapping, cell, &mut self.scratch)
                    .map_err(|(_, msg)| FieldError::field(self.mapping.entry(e).name, msg))?;
                self.mapping.apply_text(e, &s, &mut self.rec)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => wait.record(&self.mapping, self.specs, &mut self.rec, pos, raw, h),
            Err(e) => wait.error(e, pos, raw, h),
        }
        true
    }

    /// Is the split record a header? The first record always; later ones by their names.
    fn is_header(&mut self) -> bool {
        let CsvState {
            mapping,
            cells,
            ends,
            scratch,
            header,
            ..
        } = self;
        let Some(hd) = header else {
            return true;
        };
        let cell = |i: usize| &cells[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        let (min_len, max_len) = mapping.source_len_range();
        let mut hits = 0usize;
        let mut same = ends.len() == hd.names.len();
        for (i, name) in hd.names.iter().enumerate().take(ends.len()) {
            if same && cell(i).trim_ascii() != name.as_bytes() {
                same = false;
            }
        }
        let need = 2.min(mapping.source_count());
        if !same {
            for i in 0..ends.len() {
                let c = cell(i).trim_ascii();
                if c.is_empty()
                    || c.len() < min_len
                    || c.len() > max_len.saturating_mul(2)
                    || c[0].is_ascii_digit()
                {
                    continue;
                }
                if let Ok(t) = cell_text(mapping, c, scratch)
                    && mapping.entry_for(t.trim()).is_some()
                {
                    hits += 1;
                    if hits >= need {
                        break;
                    }
                }
            }
        }
        same || hits >= need.max(1)
    }

    /// Binds the columns from the split header record.
    fn bind_header(&mut self, raw: &[u8], pos: &SourcePos<'_>, h: &mut dyn Handler) {
        let line = pos.line;
        let kept = Some((pos.offset, line, raw.to_vec()));
        if self.first_raw.is_none() {
            self.first_raw = kept.clone();
        }
        self.last_raw = kept;
        let mut names = Vec::with_capacity(self.ends.len());
        let mut cols = Vec::with_capacity(self.ends.len());
        let mut bad = None;
        for i in 0..self.ends.len() {
            let cell = &self.cells[if i == 0 { 0 } else { self.ends[i - 1] }..self.ends[i]];
            match cell_text(&self.mapping, cell, &mut self.scratch) {
                Ok(t) => {
                    let t = t.trim().to_string();
                    cols.push(self.mapping.entry_for(&t));
                    names.push(t);
                }
                Err((at, msg)) => {
                    bad = Some(format!("column {}: {msg} (at byte {at})", i + 1));
                    cols.push(None);
                    names.push(String::new());
                }
            }
        }
        let mut slots: Vec<usize> = cols
            .iter()
            .flatten()
            .map(|&e| self.mapping.entry(e).slot)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        if self.header.is_none() {
            self.first_slots = slots.clone();
            if let Some(b) = bad {
                h.on_notice(pos, &format!("header at line {line}: {b}"));
            }
            self.block = None;
        } else {
            let missing: Vec<&str> = self
                .first_slots
                .iter()
                .filter(|s| slots.binary_search(s).is_err())
                .map(|&s| self.specs[s].name)
                .collect();
            if missing.is_empty() {
                self.block = None;
                h.on_notice(
                    pos,
                    &format!("header repeated at line {line}; columns re-bound"),
                );
            } else {
                let msg = format!(
                    "the header at line {line} has no column for {} (the first header had); rows under it are not read until a complete header",
                    missing.join(", ")
                );
                h.on_notice(pos, &msg);
                self.block = Some(FieldError::field(missing[0], msg));
            }
        }
        self.header = Some(Header { cols, names });
    }
}
