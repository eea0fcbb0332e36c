//! TLS for the server's two listeners (`[serve.tls]`, issue 13 item 4): the certificate chain
//! and private key are read from PEM files once at startup ([`Tls::load`]), and each listener
//! gets a rustls server config (ring crypto, TLS 1.2 and 1.3, rustls' default cipher suites)
//! with its own ALPN protocol: `http/1.1` for HTTPS on `listen`, `postgresql` for the
//! PostgreSQL endpoint on `pg_listen` (libpq 17 offers it, and requires it for
//! `sslnegotiation=direct`).
//!
//! HTTPS: [`TlsListener`] accepts TCP connections, runs each handshake in its own task with a
//! time limit ([`HANDSHAKE_TIMEOUT`]) and hands axum only connections whose handshake
//! completed, so a slow or broken client never holds up the others. A failed handshake (a
//! plain-HTTP request on the HTTPS port, an untrusted certificate on the client's side, a
//! port scan, a time-out) counts in `plumewatch_tls_handshake_failures_total{endpoint="http"}`
//! and logs one line with rustls' reason, never the peer's address or bytes.
//!
//! Not here: certificate reload without a restart, client certificates, HTTP/2.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use super::config::TlsConfig;

/// Longest a client may take to complete the TLS handshake on the HTTPS listener, from the
/// TCP accept; past it the connection is closed and counted as a failed handshake. 10 s: a
/// handshake is two round trips, so this leaves room for a phone on a poor mobile link while
/// a client that sends nothing is dropped quickly.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes completed but not yet taken by the HTTP server: back-pressure between the
/// handshake tasks and axum's accept loop (which takes each at once, so it is rarely full).
const READY_QUEUE: usize = 64;

/// ALPN protocol id of HTTP/1.1 (RFC 7301), the only protocol the HTTP server speaks.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// ALPN protocol id of the PostgreSQL protocol (IANA registry; PostgreSQL 17 docs, "SSL
/// Session Encryption"), as pgwire checks it for direct TLS.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The acceptors of `[serve.tls]`, one per listener (they differ only by ALPN).
#[derive(Clone)]
pub struct Tls {
    /// For the HTTPS listener (`listen`): ALPN `http/1.1`.
    pub http: TlsAcceptor,
    /// For the PostgreSQL endpoint (`pg_listen`): ALPN `postgresql`.
    pub pg: TlsAcceptor,
}

impl Tls {
    /// Reads `cfg.cert` and `cfg.key` and builds both acceptors. Errors (each naming the
    /// file): missing or unreadable, not PEM, no certificate in `cert`, no private key in
    /// `key`, a key rustls cannot use, or a key that does not belong to the first certificate.
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<Tls> {
        let chain = read_chain(&cfg.cert)?;
        let key = read_key(&cfg.key)?;
        let config = |alpn: &[u8]| -> anyhow::Result<TlsAcceptor> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .context("[serve.tls]: TLS protocol versions")?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .with_context(|| {
                    format!(
                        "[serve.tls]: key {} does not fit certificate {}",
                        cfg.key.display(),
                        cfg.cert.display()
                    )
                })?;
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(c)))
        };
        Ok(Tls {
            http: config(ALPN_HTTP1)?,
            pg: config(ALPN_POSTGRESQL)?,
        })
    }
}

/// The certificates of the PEM file `path`, in file order (server certificate first).
fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("[serve.tls] cert: cannot read {}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("[serve.tls] cert: {} is not valid PEM", path.display()))?;
    if chain.is_empty() {
        bail!(
            "[serve.tls] cert: {} holds no certificate (expected a PEM `BEGIN CERTIFICATE` section)",
            path.display()
        );
    }
    Ok(chain)
}

/// The first private key of the PEM file `path`.
fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("[serve.tls] key: cannot read {}", path.display()))?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Ok(k),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => bail!(
            "[serve.tls] key: {} holds no private key (expected a PEM `BEGIN PRIVATE KEY`, \
             `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` section)",
            path.display()
        ),
        Err(e) => bail!("[serve.tls] key: {} is not valid PEM: {e}", path.display()),
    }
}

/// The HTTPS listener handed to `axum::serve`: yields connections whose TLS handshake
/// completed, with the peer's address (module doc). Dropping it (axum does at shutdown)
/// stops accepting and closes the TCP listener.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` (already bound), handshaking with `acceptor`, counting
    /// failed handshakes in `failures`.
    pub fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        failures: Counter,
    ) -> std::io::Result<Self> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(async move {
            loop {
                let (socket, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let (acceptor, tx, failures) = (acceptor.clone(), tx.clone(), failures.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(tls)) => {
                            // Err: the server is stopping; the connection is dropped.
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            failures.inc();
                            tracing::info!("https: TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            failures.inc();
                            tracing::info!(
                                "https: TLS handshake not completed within {} s",
                                HANDSHAKE_TIMEOUT.as_secs()
                            );
                        }
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            addr,
            accepting,
        })
    }
}

/// After a failed TCP accept: nothing for a connection the peer gave up; otherwise (out of
/// file descriptors, say) a log line and a pause of 1 s before the next accept, as axum's
/// own TCP listener does, instead of a busy loop.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("https: accept failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it only does when aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
