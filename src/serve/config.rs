//! The `[serve]` configuration (TOML, every option documented in
//! `fixtures/serve.example.toml`): where the server listens and with which certificate
//! (`[serve.tls]`), who may connect with which role and secret, per-query limits, the time zone of exports and how often the audit trail is
//! committed. Unknown keys are refused when the file loads, naming them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A config file holding a `[serve]` section (the same section a later `run` config will take).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub serve: ServeConfig,
}

/// `[serve]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// `host:port` to listen on: HTTPS only when `[serve.tls]` is set, plain HTTP otherwise.
    /// Default `127.0.0.1:8080`: loopback, so a deployment must choose to expose it; a
    /// non-loopback address without `[serve.tls]` is served, with a warning at startup that
    /// the traffic (secrets, plates) crosses the network in clear text.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Enforcement time zone (IANA name) for dates in list parameters and times in CSV/XLSX
    /// exports, overriding the limit set's `[time].zone`. Default `Asia/Shanghai`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Limit set TOML supplying list parameter defaults (default: the embedded cn-observed set).
    #[serde(default)]
    pub limits: Option<PathBuf>,
    /// Longest a query (a lookup or a list) may run, seconds; longer ones are stopped and
    /// answered 503. Default 30.
    #[serde(default = "d_query_timeout")]
    pub query_timeout_s: f64,
    /// Most rows one answer may carry; a list with more rows is answered 413 (narrow it with
    /// `district`, `date`, `since`/`until`) rather than cut silently. Default 100000.
    #[serde(default = "d_max_rows")]
    pub max_rows: usize,
    /// Most queries (plate lookups, lists, SQL statements) running at once; the others wait
    /// in arrival order (`super::gate`). Default: the machine's cores (at least 2); more
    /// only makes the running queries share the cores.
    #[serde(default = "d_max_concurrent_queries")]
    pub max_concurrent_queries: usize,
    /// Most queries waiting for a slot; one more is answered 503 (SQLSTATE `53300` on the
    /// PostgreSQL endpoint) at once. Default 1000.
    #[serde(default = "d_max_queued_queries")]
    pub max_queued_queries: usize,
    /// Longest a query waits for a slot, seconds, before it is answered 503 with
    /// `Retry-After` (`53300`); `query_timeout_s` counts from admission. Default 10.
    #[serde(default = "d_queue_timeout")]
    pub queue_timeout_s: f64,
    /// Audit rows are committed (Parquet file + manifest entry) at most this many ms after the
    /// request; batched, so a busy server writes one file per interval, not one per request.
    /// Default 1000.
    #[serde(default = "d_audit_commit_ms")]
    pub audit_commit_ms: u64,
    /// Instance name of the server's commits (manifest entries `<instance_id>-<seq>.json`, audit
    /// file names). One server process per name on one tables directory (a lock file enforces
    /// it). Default `serve`.
    #[serde(default = "d_instance")]
    pub instance_id: String,
    /// `[serve.board]`: the live alert board (`super::board::BoardConfig`).
    #[serde(default)]
    pub board: super::board::BoardConfig,
    /// Who may connect.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// `host:port` of the PostgreSQL wire endpoint for analysts (`serve::pg`: psql, psycopg,
    /// DBeaver …; users with role `analyst` or `admin`, cleartext password). With
    /// `[serve.tls]` a client must ask for TLS (`sslmode=require` or stronger) or is refused
    /// (SQLSTATE `28000`) before any password is sent; without it keep it on loopback (a
    /// non-loopback address is warned about at startup). Absent (the default): no endpoint.
    #[serde(default)]
    pub pg_listen: Option<String>,
    /// `[serve.tls]`: certificate and key for HTTPS on `listen` and TLS on `pg_listen`
    /// (`super::tls`). Absent (the default): plain HTTP and PostgreSQL without TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[serve.tls]`: the server's certificate and private key, PEM files read once at startup
/// (a file that is missing, unreadable, or holds no certificate / no key stops the start
/// with an error naming it; a key that does not belong to the certificate too). Relative
/// paths are taken from the working directory, like `limits`. A changed certificate takes
/// effect at the next start (no reload).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server certificate first, then the intermediate CA certificates, as a CA
    /// issues them (`fullchain.pem`); one certificate alone for a self-signed or private-CA
    /// setup. Other PEM sections (a key in the same file) are skipped.
    pub cert: PathBuf,
    /// PEM file: the certificate's private key, PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 RSA
    /// (`BEGIN RSA PRIVATE KEY`) or SEC1 EC (`BEGIN EC PRIVATE KEY`); the first key in the
    /// file is used. May be the same file as `cert`.
    pub key: PathBuf,
}

/// A role: what a user may do.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Plate lookups, lists, exports.
    Police,
    /// SQL (the PostgreSQL endpoint, `pg_listen`).
    Analyst,
    /// The live alert board, limited to the user's `sites`.
    Patrol,
    /// Everything, and `/metrics`.
    Admin,
}

impl Role {
    /// The role's name as written in the config and the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Police => "police",
            Role::Analyst => "analyst",
            Role::Patrol => "patrol",
            Role::Admin => "admin",
        }
    }
}

/// `[[serve.users]]`: one user with exactly one secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name (HTTP Basic user name; the `who` of the audit table).
    pub name: String,
    pub role: Role,
    /// Argon2 hash of the password, PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), for
    /// HTTP Basic. Make one with `plumewatch hash-secret`.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// SHA-256 of the bearer token, 64 hex digits (the token itself is never stored), for
    /// `Authorization: Bearer <token>`. Tokens should be long random strings (≥ 128 bits).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Site codes a patrol user may watch (required for `patrol`, refused for other roles).
    #[serde(default)]
    pub sites: Vec<String>,
}

fn d_listen() -> String {
    "127.0.0.1:8080".into()
}
fn d_query_timeout() -> f64 {
    30.0
}
fn d_max_rows() -> usize {
    100_000
}
fn d_max_concurrent_queries() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}
fn d_max_queued_queries() -> usize {
    1000
}
fn d_queue_timeout() -> f64 {
    10.0
}
fn d_audit_commit_ms() -> u64 {
    1000
}
fn d_instance() -> String {
    "serve".into()
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: d_listen(),
            time_zone: None,
            limits: None,
            query_timeout_s: d_query_timeout(),
            max_rows: d_max_rows(),
            max_concurrent_queries: d_max_concurrent_queries(),
            max_queued_queries: d_max_queued_queries(),
            queue_timeout_s: d_queue_timeout(),
            audit_commit_ms: d_audit_commit_ms(),
            instance_id: d_instance(),
            board: Default::default(),
            users: Vec::new(),
            pg_listen: None,
            tls: None,
        }
    }
}

impl ServeConfig {
    /// Reads the `[serve]` section of `path` and checks it ([`ServeConfig::check`]).
    pub fn load(path: &Path) -> anyhow::Result<ServeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading serve config {}", path.display()))?;
        let f: ServeFile =
            toml::from_str(&text).with_context(|| format!("serve config {}", path.display()))?;
        f.serve.check()?;
        Ok(f.serve)
    }

    /// Refuses what cannot work: a user with no secret or two, a password hash that is not an
    /// argon2 PHC string, a token hash that is not 64 hex digits, a duplicate name, a patrol
    /// without sites (or sites on another role), a non-positive limit, an unknown time zone.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(z) = &self.time_zone {
            z.parse::<chrono_tz::Tz>()
                .map_err(|_| anyhow::anyhow!("[serve] time_zone: unknown time zone '{z}'"))?;
        }
        if !(self.query_timeout_s.is_finite() && self.query_timeout_s > 0.0) {
            bail!("[serve] query_timeout_s must be a positive number of seconds");
        }
        if !(self.queue_timeout_s.is_finite() && self.queue_timeout_s > 0.0) {
            bail!("[serve] queue_timeout_s must be a positive number of seconds");
        }
        if self.max_concurrent_queries == 0 {
            bail!("[serve] max_concurrent_queries must be at least 1");
        }
        if self.max_rows == 0 {
            bail!("[serve] max_rows must be at least 1");
        }
        if self.audit_commit_ms == 0 {
            bail!("[serve] audit_commit_ms must be at least 1");
        }
        self.board.check()?;
        let mut names = std::collections::HashSet::new();
        for u in &self.users {
            let who = format!("[[serve.users]] '{}'", u.name);
            if u.name.is_empty() || u.name.contains(':') {
                bail!("{who}: a name must be non-empty and without ':' (HTTP Basic)");
            }
            if !names.insert(&u.name) {
                bail!("{who}: the name is given twice");
            }
            match (&u.password_hash, &u.token_sha256) {
                (None, None) => bail!("{who}: give password_hash or token_sha256"),
                (Some(_), Some(_)) => {
                    bail!("{who}: give password_hash or token_sha256, not both")
                }
                (Some(h), None) => {
                    let ok = argon2::PasswordHash::new(h)
                        .is_ok_and(|p| p.algorithm.as_str().starts_with("argon2"));
                    if !ok {
                        bail!(
                            "{who}: password_hash is not an argon2 PHC string ($argon2id$v=19$…); make one with `plumewatch hash-secret`"
                        );
                    }
                }
                (None, Some(t)) => {
                    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bail!(
                            "{who}: token_sha256 must be the SHA-256 of the token, 64 hex digits"
                        );
                    }
                }
            }
            match (u.role, u.sites.is_empty()) {
                (Role::Patrol, true) => bail!("{who}: a patrol user needs its sites"),
                (Role::Patrol, false) => {}
                (_, false) => bail!("{who}: sites apply to patrol users only"),
                (_, true) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ServeConfig> {
        let f: ServeFile = toml::from_str(text)?;
        f.serve.check()?;
        Ok(f.serve)
    }

    #[test]
    fn defaults_and_refusals() {
        let c = parse("[serve]\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.max_rows, 100_000);
        assert_eq!(c.instance_id, "serve");
        let token = "[serve]\n[[serve.users]]\nname = \"p\"\nrole = \"police\"\ntoken_sha256 = \"";
        assert!(parse(&format!("{token}{}\"\n", "ab".repeat(32))).is_ok());
        let e = parse(&format!("{token}abc\"\n")).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = parse("[serve]\n[[serve.users]]\nname = \"p\"\nrole = \"police\"\npassword_hash = \"plain\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("argon2 PHC"), "{e}");
        let e = parse(&format!(
            "[serve]\n[[serve.users]]\nname = \"b\"\nrole = \"patrol\"\ntoken_sha256 = \"{}\"\n",
            "0".repeat(64)
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs its sites"), "{e}");
        let e = parse("[serve]\nlisten_on = 1\n").unwrap_err().to_string();
        assert!(e.contains("listen_on"), "{e}");
        let e = parse("[serve]\nrole = \"x\"\ntime_zone = \"Mars/Base\"\n");
        assert!(e.is_err());
        let e = parse("[serve]\ntime_zone = \"Mars/Base\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Mars/Base"), "{e}");
    }

    #[test]
    fn tls_section() {
        assert!(parse("[serve]\n").unwrap().tls.is_none());
        let c = parse("[serve]\n[serve.tls]\ncert = \"a/full.pem\"\nkey = \"/k.pem\"\n").unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.cert, Path::new("a/full.pem"));
        assert_eq!(t.key, Path::new("/k.pem"));
        let e = parse("[serve]\n[serve.tls]\ncert = \"c\"\nkey = \"k\"\nca = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `ca`"), "{e}");
        let e = parse("[serve]\n[serve.tls]\ncert = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `key`"), "{e}");
    }
}
