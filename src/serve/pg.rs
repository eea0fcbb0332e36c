//! The analysts' SQL endpoint (issue 13 item 1): the PostgreSQL wire protocol (simple and
//! extended query protocols, `pgwire` through `datafusion-postgres`) over the same committed
//! tables as the HTTP API, so `psql`, psycopg, pandas, DBeaver or Metabase connect as to any
//! PostgreSQL database. On when `[serve] pg_listen` is set.
//!
//! - **Who.** Users of the `[serve]` config with role `analyst` or `admin`; the password is
//!   checked against the user's argon2 `password_hash` (or, for a token user, the token is the
//!   password). The server asks for a *cleartext* password: MD5 and SCRAM need a secret
//!   derived from the password, which the config does not hold (it stores argon2 hashes).
//!   Other roles are refused at login (`28000`).
//! - **TLS.** With `[serve.tls]` the endpoint answers the client's SSLRequest with `S` and
//!   upgrades the connection (the `postgresql` ALPN acceptor of [`super::tls`]; libpq
//!   `sslmode=require`, or `verify-full` with `sslrootcert` naming the CA); a client that did
//!   not ask for TLS is refused at its startup message, before a password is asked for, with
//!   `28000` "this endpoint requires TLS" (audited `sql login` 403). A handshake that fails
//!   (a TLS error, or a client that closes in the middle of it, as one refusing the
//!   certificate may) counts in `plumewatch_tls_handshake_failures_total{endpoint="pg"}`
//!   ([`handshake_failed`]); a client that stays silent is closed by pgwire 60 s after it
//!   connected, uncounted. Without `[serve.tls]` an SSLRequest is answered `N` and
//!   the password crosses the network in clear: keep the endpoint on loopback (a non-loopback
//!   `pg_listen` is warned about at startup).
//! - **Read-only.** Every statement goes through the guard of `plumewatch query`
//!   (`query::plan_read_only`): DDL, DML, `COPY`, `SET` of DataFusion options and
//!   file-reading table functions are refused with "query is read-only: … not allowed"
//!   (SQLSTATE `25006`); nothing can be written through the session's object store either.
//!   `SET`/`SHOW` of the client settings drivers send (`statement_timeout`, `DateStyle`,
//!   `TimeZone`, `application_name`, `extra_float_digits`, `search_path`, …) and
//!   `BEGIN`/`COMMIT`/`ROLLBACK` are answered without touching the shared session; any other
//!   `SET` is answered `SET` and ignored.
//! - **Limits.** A statement runs at most `query_timeout_s` (or the client's
//!   `statement_timeout`, whichever is shorter): longer ones are stopped with `57014`. An
//!   answer with more than `max_rows` rows is refused with `54000` rather than cut (add a
//!   `WHERE` or `LIMIT`). A statement waits for a query slot shared with the HTTP API
//!   (`super::gate`, `max_concurrent_queries`); when the queue is full or no slot frees
//!   within `queue_timeout_s` it is refused with `53300` without running.
//! - **What is visible.** Every table of the lake in schema `public` (shown by `\dt`), the
//!   named lists as views `list_<name>` (`list_rsd_repeat_exceeders`, `list_china3_diesel`,
//!   `list_gas_twc_suspects`) with the limit set's default parameters (other parameters: the
//!   HTTP API or `plumewatch list`), `information_schema` and `pg_catalog`. Times are
//!   `timestamptz` (stored UTC instants, written in the enforcement zone, which is the
//!   session's `TimeZone`; `SET TIME ZONE` changes it), the `date` partition `date`, lists of
//!   text `text[]`; `detections.evidence`/`evidence_text` (maps) are sent as JSON text.
//! - **Audit.** Every statement (and every login) leaves one `audit` row: `who`, `role`,
//!   `method` `PG`, `what` `sql` (`sql login` for a login), `parameters`
//!   `{"sql": <statement text>}` (plus `"params"` for bound values), `rows` returned, `status`
//!   200 / 400 (error) / 401 (login refused) / 403 (refused: read-only or role) / 413 (too
//!   many rows) / 503 (time limit). The statement text is never logged (it may hold plates).
//!
//! Works with psql 15 (`\dt`, `\dv`, `\dn`, `\l`, `\d TABLE`, `EXPLAIN`), psycopg 3 and
//! tokio-postgres (tests/serve_pg.rs). Any database name is accepted (`-d plumewatch`).
//! Not supported: `DECLARE`/`FETCH` cursors (psycopg's named server-side cursors; refused as
//! read-only), `COPY … TO STDOUT` (psql's `\copy … to`; refused), psql's `\d+`, `\df` and
//! `\du` (their catalog queries call functions the catalog layer lacks: a planning error),
//! query cancellation (Ctrl-C in psql; the time limit stops the query), client certificates.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{Column, ParamValues};
use datafusion::datasource::{TableType, ViewTable};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TableProviderFilterPushDown, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Set, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use serde_json::{Value, json};

use super::api::AppState;
use super::config::Role;
use super::tls::TlsAcceptor;
use crate::query::{ExtraSources, Lake, lists, plan_read_only};
use crate::schema::AuditRow;

/// Client metadata key holding the role of the logged-in user.
const METADATA_ROLE: &str = "plumewatch_role";

/// Client metadata key where `SET TIME ZONE` is kept (`datafusion-postgres`).
const METADATA_TIMEZONE: &str = "timezone";

/// Client metadata key where `SET statement_timeout` is kept (`datafusion-postgres`).
const METADATA_STATEMENT_TIMEOUT: &str = "statement_timeout_ms";

/// The statement kept between Parse and Execute: its text, and the parsed statement with its
/// plan (`None` for an empty query). The same type as `datafusion-postgres` uses, so its
/// hooks can be reused.
type PgStatement = (String, Option<(SqlStatement, LogicalPlan)>);

/// A running endpoint.
pub struct PgServer {
    /// The address it listens on (the real port when the config said `:0`).
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PgServer {
    /// Stops accepting and closes every open connection (a statement in flight is dropped).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the endpoint on `listen` (`host:port`) over the server's state; with `tls`, every
/// client must upgrade to TLS (module doc). Errors: the address cannot be bound.
pub async fn start(
    state: Arc<AppState>,
    listen: &str,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<PgServer> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} ([serve] pg_listen)"))?;
    let addr = listener.local_addr()?;
    if tls.is_none() {
        super::warn_plaintext(addr, "[serve] pg_listen", "SQL logins and answers");
    }
    let failures = state.metrics.tls_handshake_failures("pg");
    let handlers = Arc::new(Handlers::new(state, tls.is_some())?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => return,
            };
            match accepted {
                Ok((socket, _)) => {
                    let h = handlers.clone();
                    let mut stop_conn = stopped.clone();
                    let (tls, failures) = (tls.clone(), failures.clone());
                    let tls_on = tls.is_some();
                    tokio::spawn(async move {
                        tokio::select! {
                            r = pgwire::tokio::process_socket(socket, tls, h) => {
                                if let Err(e) = r {
                                    if tls_on && handshake_failed(&e) {
                                        failures.inc();
                                        tracing::info!("pg: TLS handshake failed: {e}");
                                    } else {
                                        tracing::debug!("pg connection ended: {e}");
                                    }
                                }
                            }
                            _ = stop_conn.changed() => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("pg endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(PgServer { addr, stop, task })
}

/// Whether a connection of a TLS endpoint that `pgwire::tokio::process_socket` ended with
/// `e` failed in the TLS handshake: rustls' error inside the I/O error (a bad record, an alert
/// from a client that refused the certificate), or the end of the stream in the middle of the
/// handshake (tokio-rustls' "tls handshake eof": a client that gave up, e.g. refusing the
/// certificate without an alert). pgwire returns no other read error, and none for a client
/// that never asked for TLS.
fn handshake_failed(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof
        || e.get_ref()
            .is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>())
}

/// The pgwire handlers: login ([`Login`]) and queries ([`Session`]).
struct Handlers {
    session: Arc<Session>,
    login: Arc<Login>,
}

impl Handlers {
    fn new(state: Arc<AppState>, require_tls: bool) -> std::io::Result<Handlers> {
        let inner = Arc::new(Inner {
            state: state.clone(),
            pg: tokio::sync::Mutex::new(None),
            parser: PostgresCompatibilityParser::new(),
            hooks: vec![Arc::new(SetShowHook), Arc::new(TransactionStatementHook)],
            runtime: QueryRuntime::new()?,
        });
        Ok(Handlers {
            session: Arc::new(Session {
                parser: Arc::new(Parser {
                    inner: inner.clone(),
                }),
                inner,
            }),
            login: Arc::new(Login { state, require_tls }),
        })
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.login.clone()
    }
}

/// Cleartext password login against the `[serve]` users (module doc).
struct Login {
    state: Arc<AppState>,
    /// `[serve.tls]` is set: a connection that did not upgrade to TLS is refused.
    require_tls: bool,
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                save_startup_parameters_to_metadata(client, startup);
                if self.require_tls && !client.is_secure() {
                    // Refused before the password is asked for, so it is never sent in clear.
                    record(
                        &self.state,
                        Audited {
                            at_ms: chrono::Utc::now().timestamp_millis(),
                            t0: Instant::now(),
                            who: client.metadata().get(METADATA_USER).cloned(),
                            role: None,
                            client: Some(client.socket_addr().ip().to_string()),
                            what: "sql login",
                            parameters: json!({
                                "database": client.metadata().get("database"),
                                "tls": false,
                            }),
                            rows: None,
                            status: 403,
                        },
                    );
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(),
                        "this endpoint requires TLS: connect with sslmode=require (or \
                         sslmode=verify-full and sslrootcert naming the server's CA)"
                            .into(),
                    ))));
                }
                protocol_negotiation(client, startup).await?;
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let t0 = Instant::now();
                let at_ms = chrono::Utc::now().timestamp_millis();
                let secret = pwd.into_password()?.password;
                let user = client.metadata().get(METADATA_USER).cloned();
                let name = user.clone().unwrap_or_default();
                let s = self.state.clone();
                let checked = {
                    let name = name.clone();
                    tokio::task::spawn_blocking(move || login(&s, &name, &secret))
                        .await
                        .map_err(|e| PgWireError::ApiError(Box::new(e)))?
                };
                let peer = client.socket_addr().ip().to_string();
                let audit = |role: Option<Role>, status: i64| {
                    record(
                        &self.state,
                        Audited {
                            at_ms,
                            t0,
                            who: user.clone(),
                            role: role.map(|r| r.as_str().to_string()),
                            client: Some(peer.clone()),
                            what: "sql login",
                            parameters: json!({ "database": client.metadata().get("database") }),
                            rows: None,
                            status,
                        },
                    )
                };
                match checked {
                    Err(()) => {
                        audit(None, 401);
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            "28P01".into(),
                            format!("password authentication failed for user \"{name}\""),
                        ))));
                    }
                    Ok(role) if !matches!(role, Role::Analyst | Role::Admin) => {
                        audit(Some(role), 403);
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            "28000".into(),
                            format!(
                                "role {} may not use SQL (analyst or admin only)",
                                role.as_str()
                            ),
                        ))));
                    }
                    Ok(role) => {
                        audit(Some(role), 200);
                        client
                            .metadata_mut()
                            .insert(METADATA_ROLE.into(), role.as_str().into());
                        let mut params = DefaultServerParameterProvider::default();
                        params.is_superuser = false;
                        params.default_transaction_read_only = true;
                        params.time_zone = self.state.zone.name().to_string();
                        finish_authentication(client, &params).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks `secret` for user `name`: the argon2 password hash, or for a token user the token.
/// The role when it verifies.
fn login(s: &AppState, name: &str, secret: &str) -> Result<Role, ()> {
    let by_token = s
        .cfg
        .users
        .iter()
        .any(|u| u.name == name && u.token_sha256.is_some());
    let caller = if by_token {
        s.users.bearer(secret).ok().filter(|c| c.name == name)
    } else {
        s.users.basic(name, secret).ok()
    };
    caller.map(|c| c.role).ok_or(())
}

/// One audit row's content (see the module doc).
struct Audited {
    at_ms: i64,
    t0: Instant,
    who: Option<String>,
    role: Option<String>,
    client: Option<String>,
    what: &'static str,
    parameters: Value,
    rows: Option<i64>,
    status: i64,
}

/// Queues the audit row, counts the statement in the metrics (route `sql`) and logs one line
/// without the statement text.
fn record(s: &AppState, a: Audited) {
    let secs = a.t0.elapsed().as_secs_f64();
    let n = s.next_request.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{}-{}-{n}", s.audit.instance, s.started_ms);
    s.metrics.observe(a.what, a.status as u16, secs);
    tracing::info!(
        target: "plumewatch::serve::access",
        "PG {} {} {:.1} ms user={} id={request_id}",
        a.what,
        a.status,
        secs * 1000.0,
        a.who.as_deref().unwrap_or("-")
    );
    s.audit.record(AuditRow {
        request_id,
        at_ms: a.at_ms,
        who: a.who,
        role: a.role,
        method: "PG".into(),
        what: a.what.into(),
        parameters: a.parameters.to_string(),
        rows: a.rows,
        status: a.status,
        duration_ms: secs * 1000.0,
        client: a.client,
        instance: s.audit.instance.clone(),
    });
}

/// A statement's failure: the audit status and the error sent to the client.
struct Failure {
    status: i64,
    error: PgWireError,
}

impl Failure {
    fn new(status: i64, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            error: PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                code.into(),
                message.into(),
            ))),
        }
    }

    /// A planning or execution error: a refusal of the read-only guard (403, `25006`) or
    /// another error (400, `42000` planning / `XX000` execution).
    fn from_error(e: impl std::fmt::Display, code: &str) -> Failure {
        let text = e.to_string();
        if let Some(i) = text.find("query is read-only") {
            Failure::new(403, "25006", text[i..].to_string())
        } else {
            Failure::new(400, code, text)
        }
    }

    /// A failure of the hooks (`SET`, `SHOW`, transactions): audited 400.
    fn from_pg(error: PgWireError) -> Failure {
        Failure { status: 400, error }
    }
}

/// What the query handlers share.
struct Inner {
    state: Arc<AppState>,
    /// The lake the pg session was built over, and that session.
    pg: tokio::sync::Mutex<Option<(Arc<Lake>, Arc<SessionContext>)>>,
    parser: PostgresCompatibilityParser,
    /// `SET`/`SHOW` of client settings, and transactions (answered, not run).
    hooks: Vec<Arc<dyn QueryHook>>,
    runtime: QueryRuntime,
}

/// The tokio runtime SQL statements execute on, apart from the one serving connections:
/// DataFusion's operators can keep every worker thread busy for seconds without yielding (a
/// cross join of generated series did, 9–10 s on 2 cores), which on a shared runtime held
/// back the time limit's timer, the answers to other clients and the HTTP API. Here the
/// timer fires on time and the aborted statement stops at its next yield.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> std::io::Result<QueryRuntime> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("pg-query")
            .enable_all()
            .build()?;
        Ok(QueryRuntime(Some(rt)))
    }

    fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(rt) => rt.spawn(f),
            None => tokio::spawn(f),
        }
    }
}

impl Drop for QueryRuntime {
    /// Shuts down without waiting (dropping a runtime inside another one would panic).
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The simple and extended query handlers.
struct Session {
    inner: Arc<Inner>,
    parser: Arc<Parser>,
}

/// The extended protocol's Parse step (guard and plan).
struct Parser {
    inner: Arc<Inner>,
}

/// Names of the list views, `list_<name with _>`.
fn list_views() -> Vec<(String, &'static lists::ListDef)> {
    lists::LISTS
        .iter()
        .map(|l| (format!("list_{}", l.name.replace('-', "_")), *l))
        .collect()
}

impl Inner {
    /// The session over the tables as committed now: rebuilt when the shared lake was opened
    /// again (a commit), else the one built before.
    async fn ctx(&self) -> Result<Arc<SessionContext>, Failure> {
        let lake = self
            .state
            .lake
            .get()
            .await
            .map_err(|e| Failure::new(500, "58000", format!("opening the tables: {e:#}")))?;
        let mut cur = self.pg.lock().await;
        if let Some((l, ctx)) = cur.as_ref()
            && Arc::ptr_eq(l, &lake)
        {
            return Ok(ctx.clone());
        }
        let ctx = Arc::new(
            pg_context(&lake, &self.state.limits)
                .await
                .map_err(|e| Failure::new(500, "58000", format!("{e:#}")))?,
        );
        *cur = Some((lake, ctx.clone()));
        Ok(ctx)
    }

    /// Parses `sql` (PostgreSQL dialect, with `datafusion-postgres`'s rewrites for clients'
    /// catalog queries). A text it cannot parse that DataFusion's own parser reads as a
    /// refused statement (`COPY … TO … STORED AS`, `CREATE EXTERNAL TABLE`) is refused as such.
    fn parse(&self, sql: &str) -> Result<Vec<SqlStatement>, Failure> {
        self.parser.parse(sql).map_err(|e| {
            if let Ok(stmts) = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) {
                for s in stmts {
                    if let Err(refused) = crate::query::check_read_only(&s) {
                        return Failure::new(403, "25006", refused);
                    }
                }
            }
            Failure::new(400, "42601", e.to_string())
        })
    }

    /// Plans one statement read-only (`query::plan_read_only`, with `pg_catalog` and the list
    /// views readable), maps shown as JSON text.
    async fn plan(&self, ctx: &SessionContext, stmt: SqlStatement) -> Result<LogicalPlan, Failure> {
        let views = list_views();
        let names: Vec<&str> = views.iter().map(|(n, _)| n.as_str()).collect();
        let extra = ExtraSources {
            schemas: &["pg_catalog"],
            tables: &names,
        };
        let plan = plan_read_only(ctx, DfStatement::Statement(Box::new(stmt)), &extra)
            .await
            .map_err(|e| Failure::from_error(format!("{e:#}"), "42000"))?;
        maps_as_json(plan).map_err(|e| Failure::from_error(e, "42000"))
    }

    /// Runs `plan` within the time limit and the row limit; the batches and their row count.
    async fn run(
        &self,
        ctx: &Arc<SessionContext>,
        plan: LogicalPlan,
        metadata: &HashMap<String, String>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, usize), Failure> {
        let cfg = &self.state.cfg;
        let mut limit = Duration::from_secs_f64(cfg.query_timeout_s);
        if let Some(ms) = metadata
            .get(METADATA_STATEMENT_TIMEOUT)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            limit = limit.min(Duration::from_millis(ms));
        }
        let max_rows = cfg.max_rows;
        let zone = metadata
            .get(METADATA_TIMEZONE)
            .cloned()
            .unwrap_or_else(|| self.state.zone.name().to_string());
        let plan = in_zone(plan, &zone).map_err(|e| Failure::from_error(e, "22023"))?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        // Admission (`super::gate`): a busy server answers 53300 without running; the time
        // limit counts from admission.
        let gate = &self.state.gate;
        let _slot = gate
            .admit()
            .await
            .map_err(|b| Failure::new(503, "53300", b.message(gate)))?;
        // Run on the query runtime ([`QueryRuntime`]), aborted at the limit.
        let ctx = ctx.clone();
        let mut task = self.runtime.spawn(async move {
            // EXPLAIN must stay the root of its plan; its answer is a few rows anyway.
            let explain = matches!(
                plan,
                LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_)
            );
            let df = ctx.execute_logical_plan(plan).await?;
            if explain {
                df.collect().await
            } else {
                df.limit(0, Some(max_rows + 1))?.collect().await
            }
        });
        let batches = match tokio::time::timeout(limit, &mut task).await {
            Err(_) => {
                task.abort();
                return Err(Failure::new(
                    503,
                    "57014",
                    format!(
                        "canceling statement: it ran longer than the limit of {} s ([serve] query_timeout_s or statement_timeout)",
                        limit.as_secs_f64()
                    ),
                ));
            }
            Ok(Err(join)) => return Err(Failure::new(500, "XX000", join.to_string())),
            Ok(Ok(r)) => r.map_err(|e| Failure::from_error(e, "XX000"))?,
        };
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        if n > max_rows {
            return Err(Failure::new(
                413,
                "54000",
                format!(
                    "the answer has more than {max_rows} rows ([serve] max_rows); narrow it with WHERE or LIMIT"
                ),
            ));
        }
        Ok((schema, batches, n))
    }

    /// Audits one statement of `client`.
    #[allow(clippy::too_many_arguments)]
    fn audit<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        at_ms: i64,
        t0: Instant,
        sql: &str,
        params: Option<Vec<String>>,
        rows: Option<i64>,
        status: i64,
    ) {
        let mut p = json!({ "sql": sql });
        if let Some(v) = params {
            p["params"] = json!(v);
        }
        record(
            &self.state,
            Audited {
                at_ms,
                t0,
                who: client.metadata().get(METADATA_USER).cloned(),
                role: client.metadata().get(METADATA_ROLE).cloned(),
                client: Some(client.socket_addr().ip().to_string()),
                what: "sql",
                parameters: p,
                rows,
                status,
            },
        );
    }
}

/// True for statements the hooks answer: `SET`/`SHOW` of client settings, transactions.
/// Any other `SET` is answered `SET` without running ([`ignored_set`]).
fn hooked(stmt: &SqlStatement) -> bool {
    match stmt {
        SqlStatement::Set(s) => !ignored_set(s),
        SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowStatus { .. }
        | SqlStatement::StartTransaction { .. }
        | SqlStatement::Commit { .. }
        | SqlStatement::Rollback { .. } => true,
        _ => false,
    }
}

/// A `SET` the hooks would pass to DataFusion (changing the session every connection
/// shares): answered `SET` and ignored. The client settings the hooks keep per connection
/// are `statement_timeout`, `datestyle`, `bytea_output`, `intervalstyle`,
/// `application_name`, `extra_float_digits`, `search_path` and `TIME ZONE`.
fn ignored_set(s: &Set) -> bool {
    match s {
        Set::SingleAssignment {
            scope: None,
            hivevar: false,
            variable,
            ..
        } => !matches!(
            variable.to_string().to_lowercase().as_str(),
            "statement_timeout"
                | "datestyle"
                | "bytea_output"
                | "intervalstyle"
                | "application_name"
                | "extra_float_digits"
                | "search_path"
        ),
        Set::SetTimeZone { local: false, .. } => false,
        _ => true,
    }
}

/// The session analysts query: the lake's tables (as base tables, so `\dt` lists them), the
/// list views, `pg_catalog`, sharing the lake's runtime (its read-only object store).
async fn pg_context(
    lake: &Lake,
    limits: &crate::limits::LimitSet,
) -> anyhow::Result<SessionContext> {
    let cfg = SessionConfig::new()
        .with_information_schema(true)
        .with_collect_statistics(false);
    let state = SessionStateBuilder::new()
        .with_config(cfg)
        .with_runtime_env(lake.ctx.runtime_env())
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    for (name, _, _) in crate::query::tables() {
        let t = lake.ctx.table_provider(name).await?;
        ctx.register_table(name, Arc::new(AsBaseTable(t)))?;
    }
    for (view, list) in list_views() {
        let params = lists::bind(list, limits, &[])?;
        let df = lists::plan(lake, list, params).await?;
        let plan = df.into_unoptimized_plan();
        ctx.register_table(view.as_str(), Arc::new(ViewTable::new(plan, None)))?;
    }
    setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider)
        .map_err(|e| anyhow::anyhow!("pg_catalog: {e}"))?;
    ctx.register_udf(ScalarUDF::new_from_impl(Version::default()));
    Ok(ctx)
}

/// A table of the lake shown to clients as a base table (relkind `r`): the lake registers
/// its tables as views (non-finite floats read as NULL), which `\dt` would not list.
#[derive(Debug)]
struct AsBaseTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for AsBaseTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

/// `plan` with every timestamp that has a zone shown in `zone` (an IANA name: the client's
/// `SET TIME ZONE`, else the enforcement zone): the same instants, written with that zone's
/// offset (`2025-11-08 10:00:00+08`), as PostgreSQL shows a `timestamptz` in the session's
/// `TimeZone`. Errors for an unknown zone name.
fn in_zone(plan: LogicalPlan, zone: &str) -> datafusion::error::Result<LogicalPlan> {
    let schema = plan.schema().clone();
    let zoned = |t: &DataType| matches!(t, DataType::Timestamp(_, Some(z)) if z.as_ref() != zone);
    if !schema.fields().iter().any(|f| zoned(f.data_type())) {
        return Ok(plan);
    }
    zone.parse::<chrono_tz::Tz>().map_err(|_| {
        datafusion::error::DataFusionError::Plan(format!("unknown time zone '{zone}'"))
    })?;
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(Column::new(q.cloned(), f.name()));
            match f.data_type() {
                DataType::Timestamp(unit, Some(_)) if zoned(f.data_type()) => {
                    datafusion::logical_expr::cast(c, DataType::Timestamp(*unit, Some(zone.into())))
                        .alias(f.name())
                }
                _ => c,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// `plan` with every map column (the `detections` evidence) replaced by its JSON text, which
/// every client reads (PostgreSQL has no map type).
fn maps_as_json(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    let schema = plan.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Map(_, _)))
    {
        return Ok(plan);
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(MapJson::default()));
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(Column::new(q.cloned(), f.name()));
            if matches!(f.data_type(), DataType::Map(_, _)) {
                udf.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// `pw_map_json(m)`: a map as a JSON object text (numbers as numbers, non-finite as null).
#[derive(Debug)]
struct MapJson {
    signature: Signature,
}

impl Default for MapJson {
    fn default() -> Self {
        MapJson {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl PartialEq for MapJson {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for MapJson {}
impl Hash for MapJson {
    fn hash<H: Hasher>(&self, h: &mut H) {
        "pw_map_json".hash(h);
    }
}

impl ScalarUDFImpl for MapJson {
    fn name(&self) -> &str {
        "pw_map_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let Some(arg) = args.args.into_iter().next() else {
            return datafusion::common::plan_err!("pw_map_json takes one argument");
        };
        let a = arg.into_array(n)?;
        let out: StringArray = (0..a.len())
            .map(|r| {
                if a.is_null(r) {
                    None
                } else {
                    crate::query::output::json_cell(a.as_ref(), r).map(|v| v.to_string())
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `version()`: `PostgreSQL 16.6 (plumewatch …, Apache DataFusion …, read-only)`. Client
/// libraries (SQLAlchemy, Metabase) read the PostgreSQL version from its start; 16.6 is the
/// `server_version` pgwire announces.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
}

impl Default for Version {
    fn default() -> Self {
        Version {
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(Some(version_text())),
        ))
    }
}

/// The text of `version()`.
pub fn version_text() -> String {
    format!(
        "PostgreSQL 16.6 (plumewatch {}, Apache DataFusion {}, read-only)",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// The rows of `batches` as a pgwire answer, columns typed from `schema` (timestamps with a
/// zone as `timestamptz`, Date32 as `date`) in `format`.
fn response(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    format: &Format,
    metadata: &HashMap<String, String>,
) -> PgWireResult<QueryResponse> {
    let opts = Arc::new(FormatOptions::from_client_metadata(metadata));
    let fields = Arc::new(arrow_schema_to_pg_fields(schema, format, Some(opts))?);
    let f = fields.clone();
    let rows = stream::iter(
        batches
            .into_iter()
            .flat_map(move |b| encode_recordbatch(f.clone(), b)),
    );
    Ok(QueryResponse::new(fields, rows))
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let i = &self.inner;
        let t0 = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let statements = match i.parse(query) {
            Ok(s) => s,
            Err(f) => {
                i.audit(client, at_ms, t0, query, None, None, f.status);
                return Err(f.error);
            }
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut out = Vec::new();
        let single = statements.len() == 1;
        for stmt in statements {
            let t0 = Instant::now();
            let at_ms = chrono::Utc::now().timestamp_millis();
            // The text as sent; a statement of several sent at once as parsed.
            let text = if single {
                query.trim().to_string()
            } else {
                stmt.to_string()
            };
            match self.simple_one(client, stmt).await {
                Ok((resp, rows)) => {
                    i.audit(client, at_ms, t0, &text, None, rows, 200);
                    out.push(resp);
                }
                Err(f) => {
                    i.audit(client, at_ms, t0, &text, None, None, f.status);
                    // The statements before it answered; pgwire sends them, then the error.
                    out.push(Response::Error(Box::new(error_info(f.error))));
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The error as pgwire sends it inside a list of responses.
fn error_info(e: PgWireError) -> ErrorInfo {
    match e {
        PgWireError::UserError(info) => *info,
        other => ErrorInfo::new("ERROR".into(), "XX000".into(), other.to_string()),
    }
}

impl Session {
    /// One statement of a simple query: the response and the rows it returned.
    async fn simple_one<C>(
        &self,
        client: &mut C,
        stmt: SqlStatement,
    ) -> Result<(Response, Option<i64>), Failure>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let i = &self.inner;
        let ctx = i.ctx().await?;
        if let SqlStatement::Set(s) = &stmt
            && ignored_set(s)
        {
            return Ok((
                Response::Execution(pgwire::api::results::Tag::new("SET")),
                None,
            ));
        }
        if hooked(&stmt) {
            for h in &i.hooks {
                if let Some(r) = h.handle_simple_query(&stmt, &ctx, client).await {
                    return r.map(|r| (r, None)).map_err(Failure::from_pg);
                }
            }
        }
        let plan = i.plan(&ctx, stmt).await?;
        let (schema, batches, n) = i.run(&ctx, plan, client.metadata()).await?;
        let resp = response(&schema, batches, &Format::UnifiedText, client.metadata())
            .map_err(Failure::from_pg)?;
        Ok((Response::Query(resp), Some(n as i64)))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let i = &self.inner;
        let t0 = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let planned = async {
            let mut stmts = i.parse(sql)?;
            if stmts.is_empty() {
                return Ok(None);
            }
            if stmts.len() > 1 {
                return Err(Failure::new(
                    400,
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                ));
            }
            let stmt = stmts.remove(0);
            let ctx = i.ctx().await?;
            if hooked(&stmt) || matches!(&stmt, SqlStatement::Set(_)) {
                for h in &i.hooks {
                    if let Some(p) = h.handle_extended_parse_query(&stmt, &ctx, client).await {
                        let p = p.map_err(Failure::from_pg)?;
                        return Ok(Some((stmt, p)));
                    }
                }
                // An ignored SET: an empty plan, answered SET at execution.
                let empty = LogicalPlanBuilder::empty(false)
                    .build()
                    .map_err(|e| Failure::from_error(e, "XX000"))?;
                return Ok(Some((stmt, empty)));
            }
            let plan = i.plan(&ctx, stmt.clone()).await?;
            Ok(Some((stmt, plan)))
        }
        .await;
        match planned {
            Ok(p) => Ok(p.map(|(s, plan)| (sql.to_string(), Some((s, plan))))),
            Err(f) => {
                // A statement refused or not planned leaves its audit row here: it never
                // reaches Execute.
                i.audit(client, at_ms, t0, sql, None, None, f.status);
                Err(f.error)
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        match stmt {
            (_, Some((_, plan))) => parameter_types(plan)?
                .iter()
                .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
            _ => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        // SET and transactions have an empty schema; SHOW one text column.
        match stmt {
            (_, Some((_, plan))) => arrow_schema_to_pg_fields(
                plan.schema().as_arrow(),
                column_format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            _ => Ok(vec![]),
        }
    }
}

/// The types of `$1`, `$2` … in order (`None` where DataFusion could not infer one).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let map = plan
        .get_parameter_types()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by_key(|(k, _)| k.trim_start_matches('$').parse::<u32>().unwrap_or(u32::MAX));
    Ok(v.into_iter().map(|(_, t)| t).collect())
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let i = &self.inner;
        let t0 = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let (sql, parsed) = &portal.statement.statement;
        let Some((stmt, plan)) = parsed else {
            return Ok(Response::EmptyQuery);
        };
        let mut shown: Option<Vec<String>> = None;
        let result: Result<(Response, Option<i64>), Failure> = async {
            let ctx = i.ctx().await?;
            if let SqlStatement::Set(s) = stmt
                && ignored_set(s)
            {
                return Ok((
                    Response::Execution(pgwire::api::results::Tag::new("SET")),
                    None,
                ));
            }
            if hooked(stmt) {
                for h in &i.hooks {
                    if let Some(r) = h
                        .handle_extended_query(stmt, plan, &ParamValues::List(vec![]), &ctx, client)
                        .await
                    {
                        return r.map(|r| (r, None)).map_err(Failure::from_pg);
                    }
                }
            }
            // Planned again over the session as committed now: a prepared statement (psycopg
            // prepares after 5 runs, pools keep connections for hours) must see new commits,
            // and its plan from Parse holds the files of the lake of that time. Planning
            // costs milliseconds.
            let plan = &i.plan(&ctx, stmt.clone()).await?;
            let types = parameter_types(plan).map_err(Failure::from_pg)?;
            let wire: Vec<Type> = types
                .iter()
                .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect::<PgWireResult<_>>()
                .map_err(Failure::from_pg)?;
            let type_refs: Vec<Option<&DataType>> = types.iter().map(|t| t.as_ref()).collect();
            let wire_refs: Vec<Option<&Type>> = wire.iter().map(Some).collect();
            let values = deserialize_parameters_with_server_types(portal, &type_refs, &wire_refs)
                .map_err(Failure::from_pg)?;
            let plan = if types.is_empty() {
                plan.clone()
            } else {
                if let ParamValues::List(v) = &values {
                    shown = Some(v.iter().map(|x| x.value.to_string()).collect());
                }
                plan.clone()
                    .replace_params_with_values(&values)
                    .map_err(|e| Failure::from_error(e, "22023"))?
            };
            let (schema, batches, n) = i.run(&ctx, plan, client.metadata()).await?;
            let resp = response(
                &schema,
                batches,
                &portal.result_column_format,
                client.metadata(),
            )
            .map_err(Failure::from_pg)?;
            Ok((Response::Query(resp), Some(n as i64)))
        }
        .await;
        match result {
            Ok((r, rows)) => {
                i.audit(client, at_ms, t0, sql, shown, rows, 200);
                Ok(r)
            }
            Err(f) => {
                i.audit(client, at_ms, t0, sql, shown, None, f.status);
                Err(f.error)
            }
        }
    }
}
