//! TCP source (`[[tcp]]`): a listener that HJ 1239 terminals (or gateways forwarding NDJSON)
//! connect to. Each connection is one input ([`SourceId::Tcp`]: listen address and peer),
//! framed like a file of the same format by [`Framer`]: frames back to back, or one JSON
//! object per line.
//!
//! Delivery: a connection cannot be read again, so a TCP source has no resume position.
//! Records received before a crash and not yet committed are lost unless the sender resends
//! (HJ 1239 terminals resend unacknowledged real-time data as command 0x03 reissues, which
//! the OBD key de-duplicates). The platform's response frames (login acknowledgement) are not
//! sent: plumewatch listens, it is not the terminal's platform of record.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use super::file::{Format, Framer};
use super::{Builder, Msg, Source, SourceConfig, SourceCtx, SourceId};
use crate::decode::text::DEFAULT_MAX_RECORD_BYTES;
use crate::pipeline::Stream;

fn d_max_connections() -> usize {
    1024
}

/// `[[tcp]]`: one TCP listener of `run`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSourceConfig {
    /// `rsd`, `plates`, `obd` or `frames`.
    pub stream: Stream,
    /// Address to listen on, `host:port` (`127.0.0.1:0` picks a free port; the bound address
    /// is logged).
    pub listen: String,
    /// `ndjson` (default) or `hj1239` (the default for stream `frames`). CSV needs a header
    /// per input and is not offered over TCP.
    pub format: Option<Format>,
    /// Column mapping for vendor field names (optional).
    pub mapping: Option<PathBuf>,
    /// Longest line, bytes (default 1 MiB).
    pub max_record_bytes: Option<usize>,
    /// Connections served at once; more are closed at accept with a warning. Default 1024.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
}

impl SourceConfig for TcpSourceConfig {
    fn check(&self) -> anyhow::Result<()> {
        if self.format == Some(Format::Csv) {
            anyhow::bail!(
                "tcp source {}: format csv is not offered over TCP (use ndjson)",
                self.listen
            );
        }
        if self.stream == Stream::Vehicles {
            anyhow::bail!(
                "tcp source {}: the registry is ingested, not streamed",
                self.listen
            );
        }
        Ok(())
    }

    fn build(&self, b: &mut Builder) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let (format, stream) = super::file::reading(self.format, self.stream);
        let mapping = b.mapping(stream, self.mapping.as_deref())?;
        Ok(vec![Box::new(TcpSource {
            listen: self.listen.clone(),
            stream,
            format,
            mapping,
            max: self.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
            max_connections: self.max_connections.max(1),
            listener: None,
        })])
    }
}

/// A running TCP listener.
pub struct TcpSource {
    listen: String,
    stream: Stream,
    format: Format,
    mapping: Option<usize>,
    max: usize,
    max_connections: usize,
    listener: Option<TcpListener>,
}

/// What a connection's thread needs of the source context.
struct Conn {
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// A connection's reader that gives up (end of input) once the run stops.
struct StopRead {
    s: TcpStream,
    stop: Arc<AtomicBool>,
}

impl Read for StopRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.s.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(0);
                    }
                }
                r => return r,
            }
        }
    }
}

impl Source for TcpSource {
    fn describe(&self) -> String {
        format!("tcp source {} ({})", self.listen, self.stream.name())
    }

    /// Binds the listener before the run starts: a taken port is an error of the run.
    fn prepare(&mut self, _ctx: &SourceCtx) -> anyhow::Result<()> {
        let l = TcpListener::bind(&self.listen)
            .with_context(|| format!("tcp source: cannot listen on {}", self.listen))?;
        l.set_nonblocking(true)?;
        tracing::info!(
            "tcp source {} listening on {}",
            self.listen,
            l.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        self.listener = Some(l);
        Ok(())
    }

    fn run(self: Box<Self>, ctx: SourceCtx) -> anyhow::Result<()> {
        let me = Arc::new(*self);
        let Some(listener) = me.listener.as_ref() else {
            anyhow::bail!("tcp source started without prepare");
        };
        let open = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(Conn {
            tx: ctx.tx,
            stop: ctx.stop,
            metrics: ctx.metrics,
        });
        while !ctx.stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, peer)) => {
                    if open.load(Ordering::SeqCst) >= me.max_connections {
                        tracing::warn!(
                            "tcp source {}: connection refused, {} connections open (max_connections)",
                            me.listen,
                            me.max_connections
                        );
                        ctx.metrics.errors.inc();
                        continue;
                    }
                    open.fetch_add(1, Ordering::SeqCst);
                    let (me2, ctx2, open2) = (me.clone(), ctx.clone(), open.clone());
                    std::thread::Builder::new()
                        .name("tcp-conn".into())
                        .spawn(move || {
                            if let Err(e) = me2.connection(s, peer.to_string(), &ctx2) {
                                tracing::warn!(
                                    "tcp source {}: connection from a peer ended: {e:#}",
                                    me2.listen
                                );
                                ctx2.metrics.errors.inc();
                            }
                            open2.fetch_sub(1, Ordering::SeqCst);
                        })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::warn!("tcp source {}: accept: {e}", me.listen);
                    ctx.metrics.errors.inc();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Ok(())
    }
}

impl TcpSource {
    /// Reads one connection to its end (or the run's stop).
    fn connection(&self, s: TcpStream, peer: String, ctx: &Conn) -> anyhow::Result<()> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        let id = Arc::new(SourceId::Tcp {
            listen: self.listen.clone(),
            peer,
        });
        if ctx.tx.send(Msg::Assigned(vec![id.clone()])).is_err() {
            return Ok(());
        }
        let rdr = StopRead {
            s,
            stop: ctx.stop.clone(),
        };
        let mut fr = Framer::new(rdr, self.format, 0, self.max);
        while let Some(item) = fr.next_item()? {
            let item = item.into_owned();
            ctx.metrics.source_records.inc();
            ctx.metrics.source_bytes.add(item.len() as u64);
            let msg = Msg::Data {
                stream: self.stream,
                source: id.clone(),
                item,
                next: fr.position() as i64,
                null_value: false,
                ts_ms: None,
                mapping: self.mapping,
                format: self.format,
            };
            if ctx.tx.send(msg).is_err() {
                return Ok(());
            }
        }
        let _ = ctx.tx.send(Msg::Closed(id));
        Ok(())
    }
}
