//! Decoded records kept for another thread: a [`Batch`] is a [`Handler`] that records every
//! call a decoder makes (records with their values, rejects, notices, frames, progress), in
//! order, and [`Batch::replay`] makes the same calls on the real handler later. `ingest`
//! decodes on one thread and enriches, judges and appends on another this way (framing and
//! decoding were a third of the thread that did everything: DESIGN "Ingest"; issue 11/12
//! profiles).
//!
//! A batch is reused: [`Batch::clear`] keeps its allocations (the value slots of up to
//! [`Batch::capacity`] records, the raw bytes), so a steady ingest allocates nothing per
//! record once two or three batches circulate.

use std::ops::Range;

use crate::decode::record::{FieldError, Record};
use crate::decode::text::{Handler, SourcePos};

/// One recorded call.
#[derive(Debug)]
enum Event {
    /// `on_record` with the `rec`-th kept record and its raw bytes.
    Record {
        rec: usize,
        offset: u64,
        line: u64,
        raw: Range<usize>,
    },
    Error {
        err: FieldError,
        offset: u64,
        line: u64,
        raw: Range<usize>,
    },
    Progress(u64),
    Notice {
        offset: u64,
        line: u64,
        message: String,
    },
    Frame {
        offset: u64,
        line: u64,
        raw: Range<usize>,
    },
    FrameRejected {
        reason: String,
        offset: u64,
        line: u64,
        raw: Range<usize>,
    },
}

/// Calls of a decoder on one input, kept in order with copies of what they borrowed.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Event>,
    /// Value slots; the first `used` belong to this batch, the rest are kept for reuse.
    records: Vec<Record>,
    used: usize,
    /// Raw bytes of every event, back to back.
    bytes: Vec<u8>,
}

impl Batch {
    /// Records, rejects and frames kept (progress and notices not counted).
    pub fn items(&self) -> usize {
        self.events
            .iter()
            .filter(|e| !matches!(e, Event::Progress(_) | Event::Notice { .. }))
            .count()
    }

    /// Calls kept, of any kind.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// No call kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Raw bytes kept, to bound a batch by size as well as by count.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Record slots allocated (kept across [`Self::clear`]).
    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// Forgets the kept calls, keeping the allocations.
    pub fn clear(&mut self) {
        self.events.clear();
        self.used = 0;
        self.bytes.clear();
    }

    fn keep(&mut self, raw: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(raw);
        start..self.bytes.len()
    }

    /// Makes the kept calls on `h`, in order, as if the decoder had called it on input `file`.
    pub fn replay(&self, file: &str, h: &mut dyn Handler) {
        let pos = |offset, line| SourcePos { file, offset, line };
        for e in &self.events {
            match e {
                Event::Record {
                    rec,
                    offset,
                    line,
                    raw,
                } => h.on_record(
                    &self.records[*rec],
                    &pos(*offset, *line),
                    &self.bytes[raw.clone()],
                ),
                Event::Error {
                    err,
                    offset,
                    line,
                    raw,
                } => h.on_error(err.clone(), &pos(*offset, *line), &self.bytes[raw.clone()]),
                Event::Progress(b) => h.on_progress(*b),
                Event::Notice {
                    offset,
                    line,
                    message,
                } => h.on_notice(&pos(*offset, *line), message),
                Event::Frame { offset, line, raw } => {
                    h.on_frame(&self.bytes[raw.clone()], &pos(*offset, *line))
                }
                Event::FrameRejected {
                    reason,
                    offset,
                    line,
                    raw,
                } => h.on_frame_rejected(reason, &pos(*offset, *line), &self.bytes[raw.clone()]),
            }
        }
    }
}

impl Handler for Batch {
    fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
        if self.used == self.records.len() {
            self.records.push(Record::new(rec.vals.len()));
        }
        self.records[self.used].copy_from(rec);
        let raw = self.keep(raw);
        self.events.push(Event::Record {
            rec: self.used,
            offset: pos.offset,
            line: pos.line,
            raw,
        });
        self.used += 1;
    }
    fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        let raw = self.keep(raw);
        self.events.push(Event::Error {
            err,
            offset: pos.offset,
            line: pos.line,
            raw,
        });
    }
    fn on_progress(&mut self, bytes: u64) {
        self.events.push(Event::Progress(bytes));
    }
    fn on_notice(&mut self, pos: &SourcePos<'_>, message: &str) {
        self.events.push(Event::Notice {
            offset: pos.offset,
            line: pos.line,
            message: message.to_string(),
        });
    }
    fn on_frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
        let raw = self.keep(bytes);
        self.events.push(Event::Frame {
            offset: pos.offset,
            line: pos.line,
            raw,
        });
    }
    fn on_frame_rejected(&mut self, reason: &str, pos: &SourcePos<'_>, bytes: &[u8]) {
        let raw = self.keep(bytes);
        self.events.push(Event::FrameRejected {
            reason: reason.to_string(),
            offset: pos.offset,
            line: pos.line,
            raw,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::record::Val;

    /// Every call, as the handler saw it: kind, file, offset, line, raw, values.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Handler for Log {
        fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
            self.0.push(format!(
                "record {} {} {} {:?} {:?} {:?} {}",
                pos.file,
                pos.offset,
                pos.line,
                String::from_utf8_lossy(raw),
                rec.vals,
                rec.text,
                rec.plate_placeholder
            ));
        }
        fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
            self.0.push(format!(
                "error {} {} {} {:?} {err}",
                pos.file,
                pos.offset,
                pos.line,
                String::from_utf8_lossy(raw)
            ));
        }
        fn on_progress(&mut self, bytes: u64) {
            self.0.push(format!("progress {bytes}"));
        }
        fn on_notice(&mut self, pos: &SourcePos<'_>, message: &str) {
            self.0
                .push(format!("notice {} {} {message}", pos.offset, pos.line));
        }
        fn on_frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
            self.0.push(format!("frame {} {bytes:?}", pos.offset));
        }
        fn on_frame_rejected(&mut self, reason: &str, pos: &SourcePos<'_>, bytes: &[u8]) {
            self.0
                .push(format!("rejected {} {reason} {bytes:?}", pos.offset));
        }
    }

    fn calls(h: &mut dyn Handler, file: &str) {
        let pos = |offset, line| SourcePos { file, offset, line };
        let mut rec = Record::new(3);
        rec.set_str(0, "京A12345");
        rec.vals[1] = Val::Num(12.5);
        rec.plate_placeholder = true;
        h.on_record(&rec, &pos(0, 1), b"{\"plate\":\"x\"}");
        h.on_error(
            FieldError::field("speed_kmh", "not a number"),
            &pos(14, 2),
            b"bad",
        );
        h.on_progress(20);
        h.on_notice(&pos(18, 3), "a repeated header");
        rec.clear();
        rec.vals[2] = Val::Time(1_700_000_000_000);
        h.on_record(&rec, &pos(40, 4), b"second");
        h.on_frame(&[0x23, 0x23, 1], &pos(50, 0));
        h.on_frame_rejected("bad_frame: checksum", &pos(53, 0), &[0xFF]);
    }

    #[test]
    fn a_replayed_batch_makes_the_same_calls_in_the_same_order() {
        let mut direct = Log::default();
        calls(&mut direct, "in.ndjson");
        let mut batch = Batch::default();
        // Twice, with a clear between: reused slots must not leak the first round's values.
        for round in 0..2 {
            batch.clear();
            calls(&mut batch, "ignored");
            assert_eq!(batch.len(), 7, "round {round}");
            assert_eq!(batch.items(), 5);
            assert_eq!(batch.capacity(), 2);
            let mut replayed = Log::default();
            batch.replay("in.ndjson", &mut replayed);
            assert_eq!(replayed.0, direct.0, "round {round}");
        }
        assert_eq!(direct.0.len(), 7);
        assert!(direct.0[0].contains("京A12345") && direct.0[0].ends_with("true"));
        assert!(direct.0[4].contains("Time(1700000000000)") && direct.0[4].ends_with("false"));
    }
}
