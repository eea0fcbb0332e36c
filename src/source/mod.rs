//! Sources: where records come from. One module per kind (as Arroyo keeps one folder per
//! connector and Vector one module per source): [`file`] (files and stdin), [`tcp`] (a TCP
//! listener: HJ 1239 terminals or NDJSON senders), [`kafka`] (topics through a consumer
//! group). Each kind has a config section (read into [`SourcesConfig`]) that builds
//! [`Source`]s; a source runs on a thread of its own and sends [`Msg`]s (framed records with
//! their position) to the worker of `run`. Framing is the source's; decoding is the same for
//! every source ([`crate::decode::text::RecordDecoder`], `Pipeline::framed`), and `ingest`
//! reads its inputs with the same file framing ([`file::Framer`]).
//!
//! Identity and positions: every input has a [`SourceId`] (`file:<path>`, `stdin`,
//! `kafka:<topic>/<partition>`, `tcp:<listen>/<peer>`) and a [`Position`] (next offset, source
//! resets before it, fingerprint of the record before it). The manifest stores positions per
//! `SourceId`, whatever their kind (`sink::manifest::ManifestEntry::positions`).
//!
//! # Adding a source
//! 1. A module `src/source/<kind>.rs` (or a folder) with its config struct
//!    (`Clone + Debug + Deserialize`, every option documented with its default) implementing
//!    [`SourceConfig`], and a type implementing [`Source`]: read, frame, send [`Msg::Assigned`]
//!    with the ids it reads, then [`Msg::Data`] per record, until its input ends or
//!    [`SourceCtx::stop`]. Its tests beside it.
//! 2. One line in [`sources!`] below: `<section>: Vec<kind::Config>,` (a `[[section]]` array
//!    of tables) or `<section>: Option<kind::Config>,` (one `[section]` table). If it needs a
//!    new [`SourceId`] variant, add it there with its text form.

pub mod file;
pub mod kafka;
pub mod tcp;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, SyncSender};

use serde::Deserialize;

pub use crate::position::{Position, SourceId};

use crate::decode::mapping::{CompiledMapping, Mapping};
use crate::decode::text::{Handler, RecordDecoder, SourcePos};
use crate::metrics::Metrics;
use crate::pipeline::Stream;
use crate::sink::manifest::Resume;

/// What a source hands the worker.
pub enum Msg {
    /// One framed item of an input.
    Data {
        /// Stream of the input.
        stream: Stream,
        /// The input it came from.
        source: Arc<SourceId>,
        /// The item, with its offset.
        item: Framed<'static>,
        /// Position to resume from after this item.
        next: i64,
        /// A Kafka tombstone (null value; the item is an empty record).
        null_value: bool,
        /// The input's own timestamp (Kafka record timestamp), ms.
        ts_ms: Option<i64>,
        /// Index of the input's column mapping in [`Builder::mappings`].
        mapping: Option<usize>,
        /// How its records are decoded.
        format: file::Format,
    },
    /// Inputs this instance now reads (a file source at its start, Kafka partitions at an
    /// assignment): the worker restores their detector state.
    Assigned(Vec<Arc<SourceId>>),
    /// Inputs about to be given up: commit, drop their state, then ack.
    Revoke(Vec<Arc<SourceId>>, SyncSender<()>),
    /// A finite source reached its end.
    Done,
    /// An input ended that will not come back (a TCP connection closed): its decoder state
    /// is dropped (its records are committed with the next commit).
    Closed(Arc<SourceId>),
    /// The manifest could not be read: stop without committing; a restart resumes exactly.
    Fatal(String),
    /// The source must start over (lost assignment, out-of-range fetch, re-created topic,
    /// fatal consumer error): drop what is not committed; `run` starts again from the
    /// manifest.
    Lost(String),
    /// A position the broker no longer has: write a `source_reset` row and go on from the
    /// offset it names.
    SourceReset(kafka::SourceReset),
}

/// One framed item of an input, as every source's framing gives it (borrowed from the
/// framer's buffer where it can be; owned to cross a channel).
#[derive(Debug)]
pub enum Framed<'a> {
    /// One record: a line, a CSV record, an HJ 1239 frame, a Kafka message value.
    Record {
        /// Byte (or Kafka record) offset of its first byte.
        offset: u64,
        /// 1-based line (0 when the input has no lines).
        line: u64,
        bytes: Cow<'a, [u8]>,
    },
    /// A CSV header read again before a resumed position (binds the columns; not a record).
    Header {
        offset: u64,
        line: u64,
        bytes: Cow<'a, [u8]>,
    },
    /// A record longer than the limit: skipped unread, quarantined with its length and start.
    TooLong {
        offset: u64,
        line: u64,
        prefix: Cow<'a, [u8]>,
        len: u64,
        /// The record limit it exceeded, bytes.
        max: usize,
    },
    /// Bytes of a frame stream that are no frame (`reason` as quarantined).
    Rejected {
        offset: u64,
        bytes: Cow<'a, [u8]>,
        reason: String,
    },
}

impl Framed<'_> {
    /// The same item owning its bytes.
    pub fn into_owned(self) -> Framed<'static> {
        let o = |c: Cow<'_, [u8]>| Cow::Owned(c.into_owned());
        match self {
            Framed::Record {
                offset,
                line,
                bytes,
            } => Framed::Record {
                offset,
                line,
                bytes: o(bytes),
            },
            Framed::Header {
                offset,
                line,
                bytes,
            } => Framed::Header {
                offset,
                line,
                bytes: o(bytes),
            },
            Framed::TooLong {
                offset,
                line,
                prefix,
                len,
                max,
            } => Framed::TooLong {
                offset,
                line,
                prefix: o(prefix),
                len,
                max,
            },
            Framed::Rejected {
                offset,
                bytes,
                reason,
            } => Framed::Rejected {
                offset,
                bytes: o(bytes),
                reason,
            },
        }
    }

    /// Bytes the item carries (its length for an over-long record).
    pub fn len(&self) -> usize {
        match self {
            Framed::Record { bytes, .. }
            | Framed::Header { bytes, .. }
            | Framed::Rejected { bytes, .. } => bytes.len(),
            Framed::TooLong { len, .. } => *len as usize,
        }
    }

    /// True for an empty record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Byte (or record) offset of the item in its input.
    pub fn offset(&self) -> u64 {
        match self {
            Framed::Record { offset, .. }
            | Framed::Header { offset, .. }
            | Framed::TooLong { offset, .. }
            | Framed::Rejected { offset, .. } => *offset,
        }
    }
}

/// Hands one framed item of input `file` to its decoder (`dec`, for text formats) or, for
/// HJ 1239 frames, to the handler's frame methods: the one path from framing to records,
/// for every source and for `ingest`.
pub fn deliver(
    item: &Framed<'_>,
    file: &str,
    dec: Option<&mut RecordDecoder>,
    h: &mut dyn Handler,
) {
    match *item {
        Framed::Record {
            offset,
            line,
            ref bytes,
        } => match dec {
            Some(d) => d.record(bytes, &pos(file, offset, line), h),
            None => h.on_frame(bytes, &pos(file, offset, 0)),
        },
        Framed::Header {
            offset,
            line,
            ref bytes,
        } => {
            if let Some(d) = dec {
                d.header(bytes, &pos(file, offset, line), h);
            }
        }
        Framed::TooLong {
            offset,
            line,
            ref prefix,
            len,
            max,
        } => match dec {
            Some(d) => d.too_long(prefix, len, max, &pos(file, offset, line), h),
            None => h.on_error(
                crate::decode::text::too_long_error(len, max),
                &pos(file, offset, line),
                prefix,
            ),
        },
        Framed::Rejected {
            offset,
            ref bytes,
            ref reason,
        } => h.on_frame_rejected(reason, &pos(file, offset, 0), bytes),
    }
}

fn pos(file: &str, offset: u64, line: u64) -> SourcePos<'_> {
    SourcePos { file, offset, line }
}

/// The positions of one commit, sent to every source after its manifest entry is written.
pub type Committed = Vec<(Arc<SourceId>, Position)>;

/// What a running source gets.
pub struct SourceCtx {
    /// To the worker (bounded: a slow worker slows the source).
    pub tx: SyncSender<Msg>,
    /// Set when the run (or this attempt) stops.
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Positions as of each commit (sent after the manifest entry is written).
    pub committed: Receiver<Committed>,
    /// The resume point of this attempt (positions from the manifest).
    pub resume: Arc<Resume>,
    /// Tables root and instance id (sources that read the manifest themselves).
    pub tables: PathBuf,
    pub instance: String,
}

/// A running input: reads, frames and sends [`Msg`]s on a thread of its own.
pub trait Source: Send {
    /// What it reads, for logs (`file rsd.ndjson`, `kafka group plumewatch` …).
    fn describe(&self) -> String;
    /// Ends by itself at the end of its input (a file): the idle exit waits for its
    /// [`Msg::Done`].
    fn finite(&self) -> bool {
        false
    }
    /// Must be joined when the run stops (a Kafka consumer leaving its group); others may be
    /// blocked in a read stop cannot interrupt (stdin) and end with the process.
    fn join_on_stop(&self) -> bool {
        false
    }
    /// Called on the run's thread before [`Source::run`] (with the context it will get):
    /// errors here stop the run before it starts (a Kafka consumer that cannot be created).
    fn prepare(&mut self, _ctx: &SourceCtx) -> anyhow::Result<()> {
        Ok(())
    }
    /// Reads until its input ends or `ctx.stop` is set. An error is logged and counted; the
    /// run goes on with its other sources.
    fn run(self: Box<Self>, ctx: SourceCtx) -> anyhow::Result<()>;
}

/// Builds sources from config sections: compiles their column mappings once.
pub struct Builder {
    /// Source times are read with this policy (enforcement zone).
    pub time: crate::time::TimePolicy,
    /// Compiled mappings, indexed by [`Msg::Data::mapping`].
    pub mappings: Vec<(Stream, CompiledMapping)>,
}

impl Builder {
    /// A builder reading times with `time`.
    pub fn new(time: crate::time::TimePolicy) -> Self {
        Builder {
            time,
            mappings: Vec::new(),
        }
    }

    /// Compiles the mapping file `path` (if any) for `stream`; its index for [`Msg::Data`].
    ///
    /// Errors: the file cannot be read, or a mapping error naming the entry.
    pub fn mapping(
        &mut self,
        stream: Stream,
        path: Option<&Path>,
    ) -> anyhow::Result<Option<usize>> {
        let Some(p) = path else { return Ok(None) };
        let m = Mapping::load(p)?;
        self.mappings.push((
            stream,
            Mapping::compile(Some(&m), stream.specs(), &p.display().to_string())?
                .with_time_policy(self.time),
        ));
        Ok(Some(self.mappings.len() - 1))
    }
}

/// A config section of one source kind.
pub trait SourceConfig {
    /// Checks the options (before anything starts). Errors name the option.
    fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// True when the section configures no input (a `[kafka]` without topics).
    fn is_empty(&self) -> bool {
        false
    }
    /// The sources of this section.
    fn build(&self, b: &mut Builder) -> anyhow::Result<Vec<Box<dyn Source>>>;
}

/// The registry: one line per source kind, `<section>: Vec<Config>` (`[[section]]`) or
/// `<section>: Option<Config>` (`[section]`). Generates [`SourcesConfig`].
macro_rules! sources {
    ($($section:ident : $container:ident < $cfg:ty >),* $(,)?) => {
        /// Every source section of a run config (flattened into `RunConfig`).
        #[derive(Clone, Debug, Default, Deserialize)]
        pub struct SourcesConfig {
            $(
                #[doc = concat!("`", stringify!($section), "`: [`", stringify!($cfg), "`].")]
                #[serde(default)]
                pub $section: $container<$cfg>,
            )*
        }

        impl SourcesConfig {
            /// The config keys of the source sections.
            pub const SECTIONS: &'static [&'static str] = &[$(stringify!($section)),*];

            /// Checks every section.
            pub fn check(&self) -> anyhow::Result<()> {
                $( for c in self.$section.iter() { SourceConfig::check(c)?; } )*
                Ok(())
            }

            /// True when no section configures an input.
            pub fn is_empty(&self) -> bool {
                true $( && self.$section.iter().all(SourceConfig::is_empty) )*
            }

            /// Builds every configured source, in registry order.
            pub fn build(&self, b: &mut Builder) -> anyhow::Result<Vec<Box<dyn Source>>> {
                let mut out = Vec::new();
                $( for c in self.$section.iter() { out.extend(SourceConfig::build(c, b)?); } )*
                Ok(out)
            }
        }
    };
}

sources! {
    files: Vec<file::FileSourceConfig>,
    tcp: Vec<tcp::TcpSourceConfig>,
    kafka: Option<kafka::KafkaConfig>,
}
