//! HTTP/1.1 over a blocking stream for the server tests: one request per connection
//! (`Connection: close`), the answer parsed by hand (status, headers, de-chunked body), so a
//! test sees exactly what the server sent. Also the log capture and user builder the server
//! tests share.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use plumewatch::serve::config::{Role, UserConfig};
use serde_json::Value;

/// One answer: status, headers (lower-case names), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// Every value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Percent-encodes a path segment or query value (UTF-8 bytes, unreserved kept): the
/// server's own encoder, as the board uses it for its evidence links.
pub fn enc(s: &str) -> String {
    plumewatch::serve::board::encode_segment(s)
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The request head of `GET target` (HTTP/1.1, `Connection: close`) with an optional
/// `Authorization` value.
pub fn get_request(host: &str, target: &str, auth: Option<&str>) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// `GET target` over `stream` (plain TCP or TLS): writes the request, reads to the end of the
/// connection, parses the answer. A TLS peer that closes without `close_notify` ends the
/// answer like a plain EOF.
pub fn get_over<S: Read + Write>(
    mut stream: S,
    host: &str,
    target: &str,
    auth: Option<&str>,
) -> Answer {
    stream
        .write_all(get_request(host, target, auth).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => panic!("reading the answer to GET {target}: {e}"),
        }
    }
    parse_answer(&raw)
}

/// `GET target` over plain HTTP to `addr`.
pub fn get(addr: SocketAddr, target: &str, auth: Option<&str>) -> Answer {
    get_over(
        TcpStream::connect(addr).unwrap(),
        &addr.to_string(),
        target,
        auth,
    )
}

/// Parses a whole HTTP/1.1 answer (`Transfer-Encoding: chunked` decoded).
pub fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Log lines written while the test runs (the server logs through `tracing`): install with
/// [`Captured::install`], read with [`Captured::text`].
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The capture of the whole test binary: a capturing subscriber (INFO and above),
    /// installed at the first call. Tests of one binary run in parallel, so a test looks for
    /// its own lines in what all of them logged.
    pub fn install() -> Captured {
        static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Captured::default();
            let w = logs.clone();
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(move || w.clone())
                .try_init();
            logs
        })
        .clone()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `[[serve.users]]` entry with a password (argon2-hashed) or a token (SHA-256).
pub fn user(name: &str, role: Role, password: Option<&str>, token: Option<&str>) -> UserConfig {
    UserConfig {
        name: name.into(),
        role,
        password_hash: password.map(|p| plumewatch::serve::auth::hash_secret(p).unwrap().0),
        token_sha256: token.map(|t| plumewatch::serve::auth::hash_secret(t).unwrap().1),
        sites: vec![],
    }
}
