//! `plumewatch serve` with `[serve.tls]` (issue 13 item 4): a throw-away CA and a server
//! certificate for `localhost` / `127.0.0.1` signed by it are made per run (`rcgen`), the
//! server runs in-process over tables ingested from `fixtures/demo` (SYNTHETIC data), and
//! real clients connect:
//!
//! - HTTPS: a rustls client trusting only the test CA (plate lookup, the alert board's
//!   Server-Sent Events, `/metrics`); a plain-HTTP request and a client that does not trust
//!   the certificate fail and are counted in `plumewatch_tls_handshake_failures_total`;
//! - PostgreSQL: `tokio-postgres` over rustls (always runs) and `psql` with
//!   `sslmode=verify-full` (Debian `postgresql-client`; "skipped" when not on PATH); a client
//!   that does not ask for TLS is refused with SQLSTATE 28000;
//! - config errors: a missing, empty or mismatched PEM stops the start, naming the file.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{Answer, Captured, basic, enc, get, get_over, get_request, user};
use plumewatch::serve::board::NewAlert;
use plumewatch::serve::config::{Role, ServeConfig, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, StreamOwned};

/// A flagged plate of the fixtures: a China III diesel truck (VIN ZK4H761FVX6PGDKTH), 18
/// China III sightings, last at A120116003 (as `serve_api` asserts over plain HTTP).
const FLAGGED: &str = "蒙A78T0M";
const POLICE_TOKEN: &str = "tok-police-0123456789";
const ADMIN_TOKEN: &str = "tok-ops-0123456789";

/// A test PKI in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM file; what clients trust).
    ca_pem: PathBuf,
    /// The CA certificate (DER).
    ca: CertificateDer<'static>,
    /// Server certificate then CA certificate (PEM): a chain, as a CA issues it.
    chain: PathBuf,
    /// The server certificate's private key (PKCS#8 PEM).
    key: PathBuf,
}

/// A CA certificate and its key.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it, written as
/// PEM files.
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("plumewatch test CA");
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let chain = dir.path().join("fullchain.pem");
    std::fs::write(&chain, format!("{}{}", leaf_cert.pem(), ca.pem())).unwrap();
    let key = dir.path().join("privkey.pem");
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Pki {
        ca: ca.der().clone(),
        dir,
        ca_pem,
        chain,
        key,
    }
}

/// A rustls client config (ring) trusting `ca` only, offering `alpn`.
fn client_config(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    c
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` for server name `localhost` (handshake on first use).
fn tls_connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let conn =
        ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// `GET target` over HTTPS.
fn https_get(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    target: &str,
    auth: Option<&str>,
) -> Answer {
    let host = format!("localhost:{}", addr.port());
    get_over(tls_connect(addr, cfg), &host, target, auth)
}

/// The value of the sample `name` (with its labels, e.g. `x_total{a="b"}`) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `read` until it gives `want` (up to 10 s): counters are raised by the connection's
/// task, after the client already saw the failure.
fn wait_for(want: f64, mut read: impl FnMut() -> Option<f64>) -> Option<f64> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = read();
        if v == Some(want) || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const HTTP_FAILURES: &str = "plumewatch_tls_handshake_failures_total{endpoint=\"http\"}";
const PG_FAILURES: &str = "plumewatch_tls_handshake_failures_total{endpoint=\"pg\"}";

fn tls_config(p: &Pki) -> Option<TlsConfig> {
    Some(TlsConfig {
        cert: p.chain.clone(),
        key: p.key.clone(),
    })
}

fn config(instance: &str, tls: Option<TlsConfig>) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        pg_listen: Some("127.0.0.1:0".into()),
        instance_id: instance.into(),
        audit_commit_ms: 100,
        tls,
        users: vec![
            user("li", Role::Police, Some("pw-li"), None),
            user("records", Role::Police, None, Some(POLICE_TOKEN)),
            user("ana", Role::Analyst, Some("pw-ana"), None),
            user("ops", Role::Admin, None, Some(ADMIN_TOKEN)),
        ],
        ..ServeConfig::default()
    }
}

/// Starts the server over `tables` on `rt`.
fn start(
    rt: &tokio::runtime::Runtime,
    tables: &Path,
    cfg: ServeConfig,
) -> plumewatch::serve::Server {
    rt.block_on(plumewatch::serve::start(tables, cfg)).unwrap()
}

/// HTTPS on `listen`: the plate lookup answers the same JSON as over plain HTTP (the same
/// tables served by a second, plain server), ALPN is http/1.1, the board's event stream
/// works over TLS; a plain-HTTP request to the HTTPS port, a client that does not trust the
/// certificate and one that sends nothing (closed after `HANDSHAKE_TIMEOUT`, 10 s) get no
/// answer, are counted in the handshake-failure metric (read over HTTPS as admin) and
/// logged without the peer's address or bytes.
#[test]
fn https_api_board_stream_and_handshake_failures() {
    let logs = Captured::install();
    let (_dir, t) = common::demo_tables();
    let pki = pki();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt, &t, config("serve-tls", tls_config(&pki)));
    let plain = start(&rt, &t, config("serve-plain", None));
    let a = server.addr;
    assert!(server.https);
    assert_eq!(server.url(), format!("https://{a}"));
    assert_eq!(plain.url(), format!("http://{}", plain.addr));
    let trusting = Arc::new(client_config(&pki.ca, &[b"h2", b"http/1.1"]));

    // --- The handshake: the chain verifies against the CA for "localhost"; HTTP/1.1 is
    // chosen over h2 (the server speaks HTTP/1.1 only).
    let mut s = tls_connect(a, &trusting);
    s.conn.complete_io(&mut s.sock).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        s.conn.peer_certificates().unwrap().len(),
        2,
        "server cert + CA"
    );
    drop(s);

    // --- The plate lookup over HTTPS, as the plain-HTTP server answers it.
    let target = format!("/api/plates/{}", enc(FLAGGED));
    let r = https_get(a, &trusting, &target, Some(&basic("li", "pw-li")));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["registry"][0]["vin"], "ZK4H761FVX6PGDKTH");
    assert_eq!(v["flags"].as_array().unwrap().len(), 18);
    assert_eq!(v["last_seen"]["site_id"], "A120116003");
    assert_eq!(v["last_seen"]["seen_at"], "2026-10-30T06:02:10.339Z");
    let p = get(plain.addr, &target, Some(&basic("li", "pw-li")));
    assert_eq!(p.status, 200);
    assert_eq!(v, p.json());
    // Bearer tokens and refusals work the same.
    let r = https_get(
        a,
        &trusting,
        &target,
        Some(&format!("Bearer {POLICE_TOKEN}")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(https_get(a, &trusting, &target, None).status, 401);

    // --- The alert board's Server-Sent Events over TLS: a long-lived answer that gets an
    // alert published after it opened.
    let mut sse = tls_connect(a, &trusting);
    sse.write_all(
        get_request(
            "localhost",
            "/api/alerts/stream?sites=C130102001",
            Some(&format!("Bearer {POLICE_TOKEN}")),
        )
        .as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sse.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    server.board().publish(vec![NewAlert {
        detection_id: "det-over-tls-1".into(),
        plate: "冀A12345".into(),
        plate_color: Some("yellow".into()),
        vehicle_type: Some("H11".into()),
        site_id: "C130102001".into(),
        seen_at_ms: chrono::Utc::now().timestamp_millis(),
        local_time: "2026-10-01 08:30:00+08:00".into(),
        reasons: vec!["china3-diesel".into()],
    }]);
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&got).contains("det-over-tls-1") {
        let n = sse.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop(sse);

    // --- Failed handshakes: none yet.
    let metrics = |cfg: &Arc<ClientConfig>| {
        let r = https_get(a, cfg, "/metrics", Some(&format!("Bearer {ADMIN_TOKEN}")));
        assert_eq!(r.status, 200);
        r.text()
    };
    let m = metrics(&trusting);
    assert_eq!(sample(&m, HTTP_FAILURES), Some(0.0), "{m}");
    assert_eq!(sample(&m, PG_FAILURES), Some(0.0), "{m}");

    // A plain-HTTP request (with a plate in it) to the HTTPS port: no HTTP answer.
    let mut tcp = TcpStream::connect(a).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(get_request(&a.to_string(), &target, Some(&basic("li", "pw-li"))).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let after = wait_for(1.0, || sample(&metrics(&trusting), HTTP_FAILURES));
    assert_eq!(after, Some(1.0));

    // A client that does not trust the certificate (another CA) refuses the handshake.
    let other = make_ca("another CA");
    let untrusting = Arc::new(client_config(other.der(), &[b"http/1.1"]));
    let mut s = tls_connect(a, &untrusting);
    let e = s.conn.complete_io(&mut s.sock).unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    drop(s);
    let after = wait_for(2.0, || sample(&metrics(&trusting), HTTP_FAILURES));
    assert_eq!(after, Some(2.0));

    // A client that connects and sends nothing: closed after the handshake time limit,
    // counted; meanwhile the others are served.
    let t_silent = Instant::now();
    let mut silent = TcpStream::connect(a).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        https_get(a, &trusting, &target, Some(&basic("li", "pw-li"))).status,
        200
    );
    let n = silent.read(&mut buf).unwrap_or(0);
    let closed_after = t_silent.elapsed();
    assert_eq!(n, 0, "the server sent something to a silent client");
    assert!(
        closed_after >= plumewatch::serve::tls::HANDSHAKE_TIMEOUT
            && closed_after < plumewatch::serve::tls::HANDSHAKE_TIMEOUT + Duration::from_secs(5),
        "{closed_after:?}"
    );
    let after = wait_for(3.0, || sample(&metrics(&trusting), HTTP_FAILURES));
    assert_eq!(after, Some(3.0));

    // --- The failures are logged, without the peer's address or what it sent.
    let log = logs.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("https: TLS handshake"))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("not completed within 10 s")),
        "{log}"
    );
    for l in &lines {
        for leak in [FLAGGED, &enc(FLAGGED), "/api/plates", "127.0.0.1", "Basic"] {
            assert!(!l.contains(leak), "{leak} in {l}");
        }
    }

    rt.block_on(server.stop()).unwrap();
    rt.block_on(plain.stop()).unwrap();
}

/// `tokio-postgres` over rustls to `pg_listen` with `[serve.tls]`: the certificate verifies
/// for 127.0.0.1 and `SELECT count(*) FROM rsd_passes` gives the table's 3000 rows; a client
/// without TLS is refused with 28000 before it sends its password (audited 403); a client
/// that does not trust the certificate is counted as a failed handshake.
#[test]
fn postgres_over_tls_and_plaintext_refused() {
    let (_dir, t) = common::demo_tables();
    let pki = pki();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt, &t, config("serve-pg-tls", tls_config(&pki)));
    let pg = server.pg_addr().unwrap();
    let conn = |sslmode: &str| {
        format!(
            "host={} port={} user=ana password=pw-ana dbname=plumewatch sslmode={sslmode}",
            pg.ip(),
            pg.port()
        )
    };
    let want = common::scalar_i64(&t, "SELECT count(*) FROM rsd_passes");
    assert_eq!(want, 3000);

    rt.block_on(async {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&pki.ca, &[]));
        let (client, connection) = tokio_postgres::connect(&conn("require"), tls)
            .await
            .expect("TLS connection");
        tokio::spawn(connection);
        let n: i64 = client
            .query_one("SELECT count(*) FROM rsd_passes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, want);
        // Both query protocols over the same TLS session.
        let rows = client
            .simple_query("SELECT count(*) AS n FROM rsd_passes")
            .await
            .unwrap();
        let simple: Vec<&str> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get("n"),
                _ => None,
            })
            .collect();
        assert_eq!(simple, [want.to_string().as_str()]);

        // Without TLS: refused at startup, before the password is asked for.
        let e = match tokio_postgres::connect(&conn("disable"), tokio_postgres::NoTls).await {
            Ok(_) => panic!("a plaintext connection was accepted"),
            Err(e) => e,
        };
        let db = e
            .as_db_error()
            .unwrap_or_else(|| panic!("not a server error: {e}"));
        assert_eq!(db.code().code(), "28000");
        assert!(db.message().contains("requires TLS"), "{}", db.message());
        assert!(db.message().contains("sslmode=require"), "{}", db.message());

        // A client trusting another CA: its handshake fails, and is counted.
        let other = make_ca("another CA");
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(other.der(), &[]));
        let e = match tokio_postgres::connect(&conn("require"), tls).await {
            Ok(_) => panic!("a client trusting another CA connected"),
            Err(e) => e,
        };
        assert!(e.as_db_error().is_none(), "{e}");
    });
    let failures = wait_for(1.0, || sample(&server.metrics_text(), PG_FAILURES));
    assert_eq!(failures, Some(1.0));
    assert_eq!(sample(&server.metrics_text(), HTTP_FAILURES), Some(0.0));

    rt.block_on(server.stop()).unwrap();
    let logins = common::rows(&common::sql(
        &t,
        "SELECT who, CAST(status AS VARCHAR) AS status, parameters FROM audit \
         WHERE instance = 'serve-pg-tls' AND what = 'sql login' ORDER BY at",
    ));
    let got: Vec<(String, String, bool)> = logins
        .iter()
        .map(|r| {
            (
                r["who"].clone().unwrap(),
                r["status"].clone().unwrap(),
                r["parameters"]
                    .as_deref()
                    .unwrap()
                    .contains("\"tls\":false"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ana".to_string(), "200".to_string(), false),
            ("ana".to_string(), "403".to_string(), true)
        ]
    );
}

/// Runs `psql -A -t conninfo -c sql` as `ana`: (success, stdout, stderr).
fn run_psql(psql: &Path, conninfo: &str, sql: &str) -> (bool, String, String) {
    common::run_psql(psql, &["-A", "-t", conninfo, "-c", sql], "pw-ana")
}

/// `psql` (libpq, OpenSSL) with `sslmode=verify-full` and the CA as `sslrootcert`: TLS, the
/// certificate checked for the host name, the right count; `sslmode=disable` is refused with
/// the server's message; a wrong CA fails the verification.
#[test]
fn psql_verify_full() {
    let Some(psql) = common::psql() else { return };
    let (_dir, t) = common::demo_tables();
    let pki = pki();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt, &t, config("serve-psql-tls", tls_config(&pki)));
    let pg = server.pg_addr().unwrap();
    let conninfo = |ssl: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=ana dbname=plumewatch {ssl}",
            pg.port()
        )
    };
    let verify = conninfo(&format!(
        "sslmode=verify-full sslrootcert={}",
        pki.ca_pem.display()
    ));
    let (ok, out, err) = run_psql(&psql, &verify, "SELECT count(*) FROM rsd_passes");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3000");
    let (ok, out, err) = run_psql(&psql, &verify, "\\conninfo");
    assert!(ok, "{err}");
    assert!(out.contains("SSL connection (protocol: TLSv1."), "{out}");

    let (ok, _, err) = run_psql(&psql, &conninfo("sslmode=disable"), "SELECT 1");
    assert!(!ok);
    assert!(err.contains("this endpoint requires TLS"), "{err}");

    let other = pki.dir.path().join("other-ca.pem");
    std::fs::write(&other, make_ca("another CA").pem()).unwrap();
    let wrong = conninfo(&format!(
        "sslmode=verify-full sslrootcert={}",
        other.display()
    ));
    let (ok, _, err) = run_psql(&psql, &wrong, "SELECT 1");
    assert!(!ok);
    assert!(err.contains("certificate verify failed"), "{err}");
    rt.block_on(server.stop()).unwrap();
}

/// A certificate or key that cannot be used stops the start with an error naming the file
/// (in-process and through `plumewatch serve`), before anything listens.
#[test]
fn tls_config_errors_name_the_file() {
    let pki = pki();
    let d = pki.dir.path();
    let tables = d.join("tables");
    std::fs::create_dir_all(&tables).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start_err = |cert: &Path, key: &Path| -> String {
        let mut cfg = config("serve-bad-tls", None);
        cfg.tls = Some(TlsConfig {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        });
        match rt.block_on(plumewatch::serve::start(&tables, cfg)) {
            Ok(_) => panic!("started with cert {cert:?} key {key:?}"),
            Err(e) => format!("{e:#}"),
        }
    };
    let missing = d.join("no-such-key.pem");
    let e = start_err(&pki.chain, &missing);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("[serve.tls] key: cannot read"), "{e}");
    let e = start_err(&d.join("no-such-cert.pem"), &pki.key);
    assert!(e.contains("[serve.tls] cert: cannot read"), "{e}");
    assert!(e.contains("no-such-cert.pem"), "{e}");
    // The certificate given as the key, the key as the certificate.
    let e = start_err(&pki.chain, &pki.chain);
    assert!(e.contains("holds no private key"), "{e}");
    assert!(e.contains(&pki.chain.display().to_string()), "{e}");
    let e = start_err(&pki.key, &pki.key);
    assert!(e.contains("holds no certificate"), "{e}");
    assert!(e.contains(&pki.key.display().to_string()), "{e}");
    // Not PEM inside the markers.
    let broken = d.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = start_err(&broken, &pki.key);
    assert!(e.contains("broken.pem is not valid PEM"), "{e}");
    // Another key than the certificate's.
    let other_key = d.join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = start_err(&pki.chain, &other_key);
    assert!(e.contains("does not fit certificate"), "{e}");
    assert!(e.contains("other-key.pem"), "{e}");

    // The CLI: the same error, at once, with a non-zero exit.
    let cfg = d.join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[serve]\nlisten = \"127.0.0.1:0\"\n[serve.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            pki.chain.display(),
            missing.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .args(["serve", "--tables", tables.to_str().unwrap(), "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("plumewatch serve did not stop on a missing key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// Without `[serve.tls]`, a listener off loopback is warned about at startup (both the HTTP
/// and the PostgreSQL one); nothing connects to it.
#[test]
fn plaintext_off_loopback_is_warned() {
    let logs = Captured::install();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = config("serve-open", None);
    cfg.listen = "0.0.0.0:0".into();
    cfg.pg_listen = Some("0.0.0.0:0".into());
    let server = start(&rt, dir.path(), cfg);
    let (http, pg) = (server.addr, server.pg_addr().unwrap());
    rt.block_on(server.stop()).unwrap();
    let log = logs.text();
    for (what, addr) in [("[serve] listen", http), ("[serve] pg_listen", pg)] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{what} {addr} is not a loopback address")))
            .unwrap_or_else(|| panic!("no warning for {what} {addr} in\n{log}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("clear text"), "{line}");
    }
}

/// `fixtures/serve.example.toml` documents `[serve.tls]` (commented out: off by default);
/// uncommented, it loads with the documented paths.
#[test]
fn example_config_documents_tls() {
    let path = common::repo("fixtures/serve.example.toml");
    assert!(ServeConfig::load(&path).unwrap().tls.is_none());
    let text = std::fs::read_to_string(&path).unwrap();
    let on: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(b) if b == "[serve.tls]" || b.starts_with("cert =") || b.starts_with("key =") => b,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("serve.toml");
    std::fs::write(&p, on).unwrap();
    let tls = ServeConfig::load(&p).unwrap().tls.expect("[serve.tls]");
    assert_eq!(tls.cert, Path::new("/etc/plumewatch/tls/fullchain.pem"));
    assert_eq!(tls.key, Path::new("/etc/plumewatch/tls/privkey.pem"));
}
