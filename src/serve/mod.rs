//! `plumewatch serve`: one HTTP server (axum on tokio) over a tables directory, for the people
//! who use the lists (issue 13). It serves the police API ([`api`]): plate lookups
//! and the named lists as JSON, CSV or XLSX; the entrance patrols' live alert board
//! ([`board`], [`board_api`]: `/board` and Server-Sent Events); users, roles and secrets from
//! the `[serve]` config ([`config`], [`auth`]); the analysts' PostgreSQL wire endpoint
//! ([`pg`], `pg_listen`: read-only SQL over the same tables); one `audit` row per request or
//! SQL statement ([`audit`]);
//! request and SSE-client metrics ([`metrics`]); HTTPS and TLS on the PostgreSQL endpoint when
//! the config has `[serve.tls]` ([`tls`]). `plumewatch run` hosts the same server when
//! its config has a `[serve]` section ([`host`]), and publishes its entrance alerts to the
//! board as it delivers them.
//!
//! The server only reads committed data: the tables are opened through the commit manifest
//! (`query::Lake::open`, `query::files`) and opened again when a table directory changed
//! ([`lake`]), so a commit made by `ingest` or `run` while the server runs is visible to the
//! next request, and a file not yet committed never is. The
//! only thing it writes is its own `audit` table, through the same sink and manifest.

pub mod api;
pub mod audit;
pub mod auth;
pub mod board;
pub mod board_api;
pub mod config;
pub mod export;
pub mod gate;
pub mod lake;
pub mod last_seen;
pub mod metrics;
pub mod pg;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::limits::LimitSet;
pub use config::ServeConfig;

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when the config said `:0`).
    pub addr: SocketAddr,
    /// Whether `addr` serves HTTPS (`[serve.tls]`) rather than plain HTTP.
    pub https: bool,
    state: Arc<api::AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The board's poller of the committed `alerts` table.
    poller: tokio::task::JoinHandle<()>,
    /// The PostgreSQL endpoint, when `pg_listen` is set.
    pg: Option<pg::PgServer>,
}

/// Starts the server on `cfg.listen` (HTTPS when `cfg.tls` is set) over the tables under
/// `tables` (must exist). Errors: missing tables directory, unreadable limit set, a
/// `[serve.tls]` certificate or key that cannot be used ([`tls::Tls::load`]), address in use,
/// another server with the same `instance_id` on these tables.
pub async fn start(tables: &Path, cfg: ServeConfig) -> anyhow::Result<Server> {
    let hub = Arc::new(board::AlertHub::new(
        cfg.board.buffer,
        Duration::from_secs(cfg.board.retention_s),
    ));
    start_with_board(tables, cfg, hub, metrics::ServeMetrics::default()).await
}

/// As [`start`], with the board's alerts hub and the metrics given: `run` publishes its
/// entrance alerts to the hub as it delivers them, and exposes the metrics on its own
/// `/metrics` ([`host`]). The server also polls the committed `alerts` table into the hub
/// (`board` module doc).
pub async fn start_with_board(
    tables: &Path,
    cfg: ServeConfig,
    hub: Arc<board::AlertHub>,
    serve_metrics: metrics::ServeMetrics,
) -> anyhow::Result<Server> {
    cfg.check()?;
    // Certificates first: a bad one stops the start before anything is bound or locked.
    let tls = cfg.tls.as_ref().map(tls::Tls::load).transpose()?;
    let meta = std::fs::metadata(tables)
        .with_context(|| format!("tables directory {} does not exist", tables.display()))?;
    if !meta.is_dir() {
        bail!("tables directory {} is not a directory", tables.display());
    }
    let tables = std::fs::canonicalize(tables)?;
    let mut limits = LimitSet::load(cfg.limits.as_deref())?;
    if let Some(z) = &cfg.time_zone {
        limits.time.zone = z.clone();
    }
    let zone = limits.zone();
    let audit = audit::AuditLog::open(
        &tables,
        &cfg.instance_id,
        zone,
        Duration::from_millis(cfg.audit_commit_ms),
    )?;
    if cfg.users.is_empty() {
        tracing::warn!("[serve] has no users: every request will be refused (401)");
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if tls.is_none() {
        warn_plaintext(addr, "[serve] listen", "HTTP requests and answers");
    }
    let poller = tokio::spawn(board::poll_alerts_table(
        tables.clone(),
        hub.clone(),
        Duration::from_millis(cfg.board.poll_ms),
        Duration::from_secs(cfg.board.retention_s),
    ));
    let gate = gate::QueryGate::new(
        cfg.max_concurrent_queries,
        cfg.max_queued_queries,
        Duration::from_secs_f64(cfg.queue_timeout_s),
        &serve_metrics,
    );
    let state = Arc::new(api::AppState {
        board: hub,
        gate,
        lake: lake::LakeCache::new(&tables),
        tables,
        users: auth::Users::new(cfg.users.clone()),
        cfg,
        limits,
        zone,
        audit,
        metrics: serve_metrics,
        started_ms: chrono::Utc::now().timestamp_millis(),
        next_request: AtomicU64::new(0),
    });
    // The plate lookup's index (`last_seen`) is built in the background now rather than by
    // the first lookup (about 3 s at 11 M passes and plate reads).
    let warm = state.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.lake.get_with_last_seen().await {
            tracing::warn!("building the last-seen index: {e:#}");
        }
    });
    let pg = match state.cfg.pg_listen.clone() {
        Some(l) => Some(pg::start(state.clone(), &l, tls.as_ref().map(|t| t.pg.clone())).await?),
        None => None,
    };
    let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = rx.await;
    };
    let task = match &tls {
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }),
        Some(t) => {
            use axum::serve::ListenerExt as _;
            let failures = state.metrics.tls_handshake_failures("http");
            // `tap_io` (a no-op here) is what gives the handlers the peer address
            // (`ConnectInfo<SocketAddr>`) for a listener other than tokio's TcpListener.
            let listener =
                tls::TlsListener::new(listener, t.http.clone(), failures)?.tap_io(|_| {});
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        }
    };
    Ok(Server {
        addr,
        https: tls.is_some(),
        state,
        stop: Some(tx),
        task,
        poller,
        pg,
    })
}

/// Logs a warning when `addr` (bound by `what`) is not a loopback address: without
/// `[serve.tls]`, `carried` (passwords, tokens, plates) crosses the network in clear text.
fn warn_plaintext(addr: SocketAddr, what: &str, carried: &str) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "{what} {addr} is not a loopback address and [serve.tls] is not set: {carried} \
             (passwords, tokens, plates) cross the network in clear text; set [serve.tls] \
             (fixtures/serve.example.toml) or keep it on 127.0.0.1"
        );
    }
}

impl Server {
    /// The base URL of the HTTP API: `https://addr` or `http://addr`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.addr
        )
    }

    /// Commits every audit row queued so far; returns how many were committed.
    pub async fn flush_audit(&self) -> anyhow::Result<usize> {
        let s = self.state.clone();
        tokio::task::spawn_blocking(move || s.audit.flush()).await?
    }

    /// The metrics exposition (as `GET /metrics` gives it).
    pub fn metrics_text(&self) -> String {
        self.state.metrics.render()
    }

    /// The board's alerts hub.
    pub fn board(&self) -> Arc<board::AlertHub> {
        self.state.board.clone()
    }

    /// The address of the PostgreSQL endpoint (`pg_listen`), when it runs.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref().map(|p| p.addr)
    }

    /// Stops accepting (HTTP and PostgreSQL), ends the alert streams, lets requests in flight
    /// finish, commits the audit rows.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.state.board.close();
        self.poller.abort();
        if let Some(p) = self.pg.take() {
            p.stop().await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        self.flush_audit().await?;
        Ok(())
    }
}

/// `plumewatch serve`: runs until SIGINT/SIGTERM, then stops gracefully (audit committed).
pub fn run_until_signal(tables: &Path, cfg: ServeConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = start(tables, cfg).await?;
        eprintln!(
            "plumewatch serve: listening on {} (tables {})",
            server.url(),
            server.state.tables.display()
        );
        if let Some(a) = server.pg_addr() {
            let ssl = if server.https { " sslmode=verify-full sslrootcert=CA.pem" } else { "" };
            eprintln!(
                "plumewatch serve: PostgreSQL endpoint on {a} (analysts: psql \"host={} port={} user=NAME dbname=plumewatch{ssl}\")",
                a.ip(),
                a.port()
            );
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("plumewatch serve: stopping");
        server.stop().await
    })
}

/// The server hosted by `plumewatch run` (`[serve]` in the run config): its own tokio runtime
/// (2 worker threads) beside the run's threads, and the hub the run publishes alerts to.
pub struct Hosted {
    rt: tokio::runtime::Runtime,
    server: Option<Server>,
    /// Where `run` publishes its entrance alerts.
    pub board: Arc<board::AlertHub>,
}

/// Starts the server for `run` over `tables`, counting in `serve_metrics` (errors as
/// [`start`]).
pub fn host(
    tables: &Path,
    cfg: ServeConfig,
    serve_metrics: metrics::ServeMetrics,
) -> anyhow::Result<Hosted> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serve")
        .enable_all()
        .build()?;
    let hub = Arc::new(board::AlertHub::new(
        cfg.board.buffer,
        Duration::from_secs(cfg.board.retention_s),
    ));
    let server = rt.block_on(start_with_board(tables, cfg, hub.clone(), serve_metrics))?;
    eprintln!(
        "plumewatch run: serving on {} (police API /api/…, patrol board /board)",
        server.url()
    );
    Ok(Hosted {
        rt,
        server: Some(server),
        board: hub,
    })
}

impl Hosted {
    /// The address the hosted server listens on.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.addr)
    }

    /// Stops the server (streams ended, audit committed).
    pub fn stop(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(s) => self.rt.block_on(s.stop()),
            None => Ok(()),
        }
    }
}
