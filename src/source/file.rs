//! File sources: a file (resumable from its byte offset) or `-` for stdin, framed into
//! NDJSON lines, CSV records (quoted cells may hold line ends) or HJ 1239 frames back to back.
//! [`Framer`] is the one file framing of plumewatch: `run`'s `[[files]]` and `ingest` both
//! read through it.

use std::borrow::Cow;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use serde::Deserialize;

use super::{Builder, Framed, Msg, Source, SourceConfig, SourceCtx, SourceId};
use crate::decode::hj1239::{FrameScanner, ScanEvent};
use crate::decode::mapping::{CompiledMapping, Mapping};
use crate::decode::record::{FieldError, Record};
use crate::decode::text::{
    DEFAULT_MAX_RECORD_BYTES, Handler, LineItem, LineReader, ReadOptions, RecordDecoder, SourcePos,
    TextFormat,
};
use crate::pipeline::Stream;

/// Input format of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (`schemas/*.schema.json`, or vendor names via a mapping).
    Ndjson,
    /// CSV with a header row (vendor columns via a mapping).
    Csv,
    /// HJ 1239 / GB 17691 Annex Q binary frames, back to back (obd stream only).
    Hj1239,
}

impl Format {
    /// The text format of a record decoder (`None` for frames, decoded by the pipeline).
    pub fn text(self) -> Option<TextFormat> {
        match self {
            Format::Ndjson => Some(TextFormat::Ndjson),
            Format::Csv => Some(TextFormat::Csv),
            Format::Hj1239 => None,
        }
    }
}

/// Splits a byte stream into [`Framed`] items with absolute offsets: lines (NDJSON), CSV
/// records or HJ 1239 frames. Memory stays bounded by the record limit plus one read chunk
/// (a longer line is a [`Framed::TooLong`], skipped unread); frames by the scanner's 64 KiB
/// frame bound.
pub struct Framer<R> {
    kind: FramerKind<R>,
    /// Longest record, bytes.
    max: usize,
    /// Offset of the stream's first byte in the input (a resumed file).
    start: u64,
}

enum FramerKind<R> {
    Lines(LineReader<R>),
    Frames {
        rdr: R,
        scanner: FrameScanner,
        buf: Vec<u8>,
        read: u64,
        eof: bool,
        pending: std::collections::VecDeque<ScanEvent>,
        consumed: u64,
    },
}

impl<R: Read> Framer<R> {
    /// A framer of `rdr` in `format`, whose first byte is at offset `start` of the input;
    /// lines longer than `max_record_bytes` are skipped.
    pub fn new(rdr: R, format: Format, start: u64, max_record_bytes: usize) -> Self {
        let kind = match format {
            Format::Hj1239 => FramerKind::Frames {
                rdr,
                scanner: FrameScanner::new(),
                buf: vec![0u8; 1 << 16],
                read: 0,
                eof: false,
                pending: Default::default(),
                consumed: 0,
            },
            Format::Ndjson => FramerKind::Lines(LineReader::new(rdr, max_record_bytes, false)),
            Format::Csv => FramerKind::Lines(LineReader::new(rdr, max_record_bytes, true)),
        };
        Framer {
            kind,
            start,
            max: max_record_bytes,
        }
    }

    /// Offset in the input just past the last item returned: where a restart resumes.
    pub fn position(&self) -> u64 {
        self.start
            + match &self.kind {
                FramerKind::Lines(lr) => lr.consumed(),
                FramerKind::Frames { consumed, .. } => *consumed,
            }
    }

    /// Bytes read from the stream so far (progress).
    pub fn bytes_read(&self) -> u64 {
        match &self.kind {
            FramerKind::Lines(lr) => lr.consumed(),
            FramerKind::Frames { read, .. } => *read,
        }
    }

    /// The next item, `None` at the end of the input. Errors: reading the input.
    pub fn next_item(&mut self) -> std::io::Result<Option<Framed<'_>>> {
        let (start, max) = (self.start, self.max);
        match &mut self.kind {
            FramerKind::Lines(lr) => Ok(lr.next_line()?.map(|item| match item {
                LineItem::Record {
                    bytes,
                    offset,
                    line,
                } => Framed::Record {
                    offset: start + offset,
                    line,
                    bytes: Cow::Borrowed(bytes),
                },
                LineItem::TooLong {
                    prefix,
                    offset,
                    line,
                    len,
                } => Framed::TooLong {
                    offset: start + offset,
                    line,
                    prefix: Cow::Borrowed(prefix),
                    len,
                    max,
                },
            })),
            FramerKind::Frames {
                rdr,
                scanner,
                buf,
                read,
                eof,
                pending,
                consumed,
            } => loop {
                if let Some(ev) = pending.pop_front() {
                    let (ScanEvent::Frame { offset, ref bytes }
                    | ScanEvent::Rejected {
                        offset, ref bytes, ..
                    }) = ev;
                    *consumed = offset + bytes.len() as u64;
                    return Ok(Some(match ev {
                        ScanEvent::Frame { offset, bytes } => Framed::Record {
                            offset: start + offset,
                            line: 0,
                            bytes: Cow::Owned(bytes),
                        },
                        ScanEvent::Rejected {
                            offset,
                            bytes,
                            reason,
                        } => Framed::Rejected {
                            offset: start + offset,
                            bytes: Cow::Owned(bytes),
                            reason: format!("{}: {reason}", reason.reason_code()),
                        },
                    }));
                }
                if *eof {
                    return Ok(None);
                }
                let k = loop {
                    match rdr.read(buf) {
                        Ok(k) => break k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if k == 0 {
                    *eof = true;
                    while let Some(ev) = scanner.finish() {
                        pending.push_back(ev);
                    }
                } else {
                    *read += k as u64;
                    scanner.push(&buf[..k]);
                    while let Some(ev) = scanner.next_event() {
                        pending.push_back(ev);
                    }
                }
            },
        }
    }
}

/// `[[files]]`: one file source of `run`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// `rsd`, `plates`, `obd` or `frames`.
    pub stream: Stream,
    /// Path, or `-` for stdin (stdin cannot resume after a restart).
    pub path: String,
    /// `ndjson` (default), `csv` (header row; a restart mid-file reads the header again) or
    /// `hj1239` (frames back to back; the default for stream `frames`).
    pub format: Option<Format>,
    /// Column mapping for vendor field names (optional).
    pub mapping: Option<PathBuf>,
    /// Longest line, bytes (default 1 MiB); a longer one is quarantined with its length and
    /// first 4 KiB, never held in memory.
    pub max_record_bytes: Option<usize>,
}

/// The format and stream records of a source configured with `format` (optional) and
/// `stream` are read as: HJ 1239 frames are the `frames` stream (its default format), text
/// formats of OBD data the `obd` stream, the default format NDJSON.
pub fn reading(format: Option<Format>, stream: Stream) -> (Format, Stream) {
    match (format, stream) {
        (Some(Format::Hj1239), _) | (None, Stream::Frames) => (Format::Hj1239, Stream::Frames),
        (Some(f), Stream::Frames) => (f, Stream::Obd),
        (f, s) => (f.unwrap_or(Format::Ndjson), s),
    }
}

impl SourceConfig for FileSourceConfig {
    fn check(&self) -> anyhow::Result<()> {
        if self.stream == Stream::Vehicles {
            anyhow::bail!(
                "file source {}: the registry is ingested (`plumewatch ingest --stream vehicles`), not streamed",
                self.path
            );
        }
        if self.format == Some(Format::Hj1239)
            && !matches!(self.stream, Stream::Obd | Stream::Frames)
        {
            anyhow::bail!(
                "file source {}: format hj1239 is only for stream obd or frames",
                self.path
            );
        }
        Ok(())
    }

    fn build(&self, b: &mut Builder) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let (format, stream) = reading(self.format, self.stream);
        let mapping = b.mapping(stream, self.mapping.as_deref())?;
        let decoding = match mapping {
            Some(i) => b.mappings[i].1.clone(),
            None => Mapping::compile(None, stream.specs(), "canonical")?.with_time_policy(b.time),
        };
        Ok(vec![Box::new(FileSource {
            id: Arc::new(SourceId::file(&self.path)),
            stream,
            format,
            mapping,
            decoding,
            max: self.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
        })])
    }
}

/// A running file source.
pub struct FileSource {
    id: Arc<SourceId>,
    stream: Stream,
    format: Format,
    mapping: Option<usize>,
    /// The mapping records are decoded with (to find the headers before a resumed position).
    decoding: CompiledMapping,
    max: usize,
}

/// Ignores everything: the decoder of a replayed prefix only rebuilds its header binding.
struct Discard;

impl Handler for Discard {
    fn on_record(&mut self, _: &Record, _: &SourcePos<'_>, _: &[u8]) {}
    fn on_error(&mut self, _: FieldError, _: &SourcePos<'_>, _: &[u8]) {}
}

impl FileSource {
    /// The CSV header records that bind the records after `start` (a resumed position): the
    /// file's bytes before `start` are framed and decoded again (nothing is stored) and the
    /// first header and the latest one (a repeated, re-binding header) are returned.
    fn headers_before(&self, path: &str, start: u64) -> anyhow::Result<Vec<Framed<'static>>> {
        let file = std::fs::File::open(path).with_context(|| path.to_string())?;
        let rdr = std::io::BufReader::with_capacity(1 << 16, file.take(start));
        let mut fr = Framer::new(rdr, Format::Csv, 0, self.max);
        let opts = ReadOptions {
            max_held_records: 0,
            ..ReadOptions::default()
        };
        let mut dec = RecordDecoder::csv(self.decoding.clone(), self.stream.specs(), &opts);
        while let Some(item) = fr.next_item()? {
            super::deliver(&item, path, Some(&mut dec), &mut Discard);
        }
        Ok(dec
            .headers()
            .into_iter()
            .map(|(offset, line, bytes)| Framed::Header {
                offset,
                line,
                bytes: Cow::Owned(bytes),
            })
            .collect())
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file source {}", self.id)
    }

    fn finite(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, ctx: SourceCtx) -> anyhow::Result<()> {
        let start = match self.id.as_ref() {
            SourceId::File(_) => ctx
                .resume
                .positions
                .get(self.id.as_ref())
                .map_or(0, |p| p.next.max(0) as u64),
            _ => 0,
        };
        if ctx.tx.send(Msg::Assigned(vec![self.id.clone()])).is_err() {
            return Ok(());
        }
        let send = |item: Framed<'static>, next: u64| -> bool {
            ctx.metrics.source_records.inc();
            ctx.metrics.source_bytes.add(item.len() as u64);
            ctx.tx
                .send(Msg::Data {
                    stream: self.stream,
                    source: self.id.clone(),
                    item,
                    next: next as i64,
                    null_value: false,
                    ts_ms: None,
                    mapping: self.mapping,
                    format: self.format,
                })
                .is_ok()
        };
        let rdr: Box<dyn Read> = match self.id.as_ref() {
            SourceId::File(path) => {
                if self.format == Format::Csv && start > 0 {
                    for h in self.headers_before(path, start)? {
                        if !send(h, start) {
                            return Ok(());
                        }
                    }
                }
                let mut file = std::fs::File::open(path).with_context(|| path.clone())?;
                file.seek(std::io::SeekFrom::Start(start))?;
                Box::new(std::io::BufReader::with_capacity(1 << 16, file))
            }
            _ => Box::new(std::io::stdin().lock()),
        };
        let mut fr = Framer::new(rdr, self.format, start, self.max);
        while !ctx.stop.load(Ordering::SeqCst) {
            let Some(item) = fr.next_item()? else {
                break;
            };
            // Blank lines carry nothing; their bytes are covered by the next position.
            if let Framed::Record { bytes, .. } = &item
                && self.format != Format::Hj1239
                && bytes.iter().all(u8::is_ascii_whitespace)
            {
                continue;
            }
            let item = item.into_owned();
            if !send(item, fr.position()) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &[u8], format: Format, start: u64) -> Vec<(String, u64, u64)> {
        let mut fr = Framer::new(input, format, start, 16);
        let mut out = Vec::new();
        while let Some(it) = fr.next_item().unwrap() {
            let (kind, off) = match &it {
                Framed::Record { offset, .. } => ("record", *offset),
                Framed::TooLong { offset, .. } => ("too_long", *offset),
                Framed::Rejected { offset, .. } => ("rejected", *offset),
                Framed::Header { offset, .. } => ("header", *offset),
            };
            out.push((kind.to_string(), off, fr.position()));
        }
        out
    }

    /// Offsets and resume positions are absolute: a file resumed at byte 100 frames its
    /// lines at 100 + their offset in the stream, and the position after each item is
    /// where a restart reads next; a line over the 16-byte limit is one `too_long` item.
    #[test]
    fn lines_have_absolute_offsets_and_positions() {
        let got = items(
            b"{\"a\":1}\n{\"b\":\"0123456789abcdef\"}\r\n{}\n",
            Format::Ndjson,
            100,
        );
        assert_eq!(
            got,
            [
                ("record".to_string(), 100, 108),
                // 24 bytes of JSON + CR LF.
                ("too_long".to_string(), 108, 134),
                ("record".to_string(), 134, 137),
            ]
        );
        // A CSV record whose quoted cell holds a line end is one item.
        let got = items(b"a,b\n\"x\ny\",2\n", Format::Csv, 0);
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].1, got[1].2), (4, 12));
    }

    /// Frames: a real-layout frame between noise gives the noise as `rejected` with the
    /// scanner's reason, then the frame; the position after the frame is its end.
    #[test]
    fn frames_and_noise() {
        let frame = hj1239::encode_frame(0x01, "LTEST000000000001", 1, 0x01, &[0u8; 8]).unwrap();
        let mut input = b"xyz".to_vec();
        input.extend_from_slice(&frame);
        let mut fr = Framer::new(&input[..], Format::Hj1239, 0, 16);
        match fr.next_item().unwrap().unwrap() {
            Framed::Rejected { offset, reason, .. } => {
                assert_eq!(offset, 0);
                assert!(reason.starts_with("no_frame_start"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match fr.next_item().unwrap().unwrap() {
            Framed::Record { offset, bytes, .. } => {
                assert_eq!((offset, bytes.len()), (3, frame.len()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fr.position(), input.len() as u64);
        assert!(fr.next_item().unwrap().is_none());
    }
}
