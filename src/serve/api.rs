//! The police HTTP API (issue 13 item 2) and the guard every route passes through.
//!
//! - `GET /api/plates/{plate}`: the registry rows of the plate, every detection of the vehicle
//!   (by plate, or by the VIN the registry gives it), and where and when it was last seen.
//! - `GET /api/lists/{name}?param=…&format=json|csv|xlsx&lang=zh&district=…&date=…`: a named
//!   enforcement list (`query::lists`), parameters bound as values by `lists::bind`.
//! - `GET /metrics`: the server's metrics (admin).
//!
//! The guard ([`guard`]) authenticates (401 with `WWW-Authenticate` when it cannot), checks
//! the role against the route (403), times the request, counts it in the metrics, writes one
//! log line naming the route *template* (never the path: plates are personal data) and
//! queues one `audit` row with the parameters as sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, RawPathParams, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::{col, lit};
use serde_json::{Value, json};

use super::audit::AuditLog;
use super::auth::{Users, allowed_roles};
use super::config::ServeConfig;
use super::export;
use super::metrics::ServeMetrics;
use crate::limits::LimitSet;
use crate::model::PlateText;
use crate::query::{Lake, lists, output};
use crate::schema::AuditRow;

/// What every handler shares.
pub struct AppState {
    /// The tables directory.
    pub tables: PathBuf,
    /// The tables as committed (reopened through the manifest when they change).
    pub lake: super::lake::LakeCache,
    pub cfg: ServeConfig,
    /// Parameter defaults of the lists; its zone is the enforcement zone.
    pub limits: LimitSet,
    pub zone: chrono_tz::Tz,
    pub users: Users,
    pub audit: AuditLog,
    pub metrics: ServeMetrics,
    /// The recent entrance alerts of the board (`super::board`).
    pub board: Arc<super::board::AlertHub>,
    /// Admission control of every query, HTTP and PostgreSQL alike (`super::gate`).
    pub gate: super::gate::QueryGate,
    /// Request ids are `<instance>-<start ms>-<n>`.
    pub started_ms: i64,
    pub next_request: AtomicU64,
}

type Shared = Arc<AppState>;

/// Rows an answer carried, for the audit row (set by the handlers).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowsReturned(pub(crate) u64);

/// The router: every route behind [`guard`], anything else 404 (audited too).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/plates/{plate}", get(plate))
        .route("/api/lists/{name}", get(list))
        .route("/metrics", get(metrics))
        .route("/board", get(super::board_api::page))
        .route("/api/alerts/stream", get(super::board_api::stream))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(no_route)
        .with_state(state)
}

/// An error answer: status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (a busy server's 503).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// A failure of the server; the message is logged (with every text of `redact` replaced,
    /// so a plate in an error text never reaches the log) and sent.
    fn internal(e: anyhow::Error, redact: &[&str]) -> ApiError {
        let text = format!("{e:#}");
        let mut logged = text.clone();
        for r in redact.iter().filter(|r| !r.is_empty()) {
            logged = logged.replace(r, "<plate>");
        }
        tracing::error!("request failed: {logged}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if let Some(secs) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r.extensions_mut().insert(RowsReturned(0));
        r
    }
}

/// Authentication, role check, metrics, the log line and the audit row (module doc).
async fn guard(State(s): State<Shared>, req: axum::extract::Request, next: Next) -> Response {
    let t0 = Instant::now();
    let at_ms = chrono::Utc::now().timestamp_millis();
    let (mut parts, body) = req.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "(no route)".into());
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let mut params = serde_json::Map::new();
    if let Ok(raw) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (k, v) in raw.iter() {
            params.insert(k.to_string(), Value::from(v));
        }
    }
    let pairs = query_pairs(&parts.uri);
    // `?token=` is a secret: never in the audit row.
    let query_token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone());
    for (k, v) in pairs {
        let v = if k == "token" { "(redacted)".into() } else { v };
        match params.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::from(v)),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, Value::from(v)]);
            }
            None => {
                params.insert(k, Value::from(v));
            }
        }
    }
    let method = parts.method.clone();
    let authenticated = match (
        &query_token,
        parts.headers.contains_key(header::AUTHORIZATION),
    ) {
        (Some(t), false) if super::auth::is_board_route(&route) => s.users.authenticate_token(t),
        _ => s.users.authenticate(&parts.headers),
    };
    let (who, role, mut resp) = match authenticated {
        Err(e) => {
            let mut r =
                ApiError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"plumewatch\", charset=\"UTF-8\""),
            );
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"plumewatch\""),
            );
            (e.claimed().map(str::to_string), None, r)
        }
        Ok(c) => {
            let allowed = allowed_roles(&route).is_some_and(|r| r.contains(&c.role))
                || patrol_evidence(&s, &c, &route, &params);
            let who = Some(c.name.clone());
            let role = Some(c.role.as_str().to_string());
            if !allowed {
                let r = ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("role {} may not use {route}", c.role.as_str()),
                )
                .into_response();
                (who, role, r)
            } else {
                parts.extensions.insert(c);
                let r = next
                    .run(axum::extract::Request::from_parts(parts, body))
                    .await;
                (who, role, r)
            }
        }
    };
    let status = resp.status().as_u16();
    let secs = t0.elapsed().as_secs_f64();
    let rows = resp.extensions().get::<RowsReturned>().map(|r| r.0 as i64);
    let n = s.next_request.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{}-{}-{n}", s.audit.instance, s.started_ms);
    s.metrics.observe(&route, status, secs);
    tracing::info!(
        target: "plumewatch::serve::access",
        "{method} {route} {status} {:.1} ms user={} id={request_id}",
        secs * 1000.0,
        who.as_deref().unwrap_or("-")
    );
    s.audit.record(AuditRow {
        request_id: request_id.clone(),
        at_ms,
        who,
        role,
        method: method.to_string(),
        what: route,
        parameters: Value::Object(params).to_string(),
        rows: if status < 400 { rows } else { None },
        status: status as i64,
        duration_ms: secs * 1000.0,
        client,
        instance: s.audit.instance.clone(),
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A patrol may open the evidence (`/api/plates/{plate}`) of a plate that the board holds an
/// alert for at one of its sites, and no other plate.
fn patrol_evidence(
    s: &AppState,
    c: &super::auth::Caller,
    route: &str,
    params: &serde_json::Map<String, Value>,
) -> bool {
    if c.role != super::config::Role::Patrol || route != "/api/plates/{plate}" {
        return false;
    }
    let Some(raw) = params.get("plate").and_then(Value::as_str) else {
        return false;
    };
    let plate = PlateText::parse(raw)
        .ok()
        .filter(|p| p.is_recognised())
        .and_then(|p| p.plate.map(|p| p.0));
    plate.is_some_and(|p| s.board.holds_plate_at(&p, &c.sites))
}

/// Any path the server does not have: 404, audited with the path (the log names no path).
async fn no_route(State(s): State<Shared>, method: Method, uri: Uri) -> Response {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let n = s.next_request.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{}-{}-{n}", s.audit.instance, s.started_ms);
    let route = "(no route)";
    s.metrics.observe(route, 404, 0.0);
    tracing::info!(target: "plumewatch::serve::access", "{method} {route} 404 id={request_id}");
    s.audit.record(AuditRow {
        request_id,
        at_ms,
        method: method.to_string(),
        what: route.into(),
        parameters: json!({ "path": uri.path() }).to_string(),
        status: 404,
        instance: s.audit.instance.clone(),
        ..Default::default()
    });
    ApiError::new(StatusCode::NOT_FOUND, "no such route").into_response()
}

/// The query string as decoded (key, value) pairs, in order.
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// Runs `fut` once admitted (`super::gate`: 503 with `Retry-After` when the server is busy) and
/// within the configured query time, counted from admission (503 when it runs longer).
async fn limited<T>(
    s: &AppState,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let _slot = s.gate.admit().await.map_err(|b| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: b.message(&s.gate),
        retry_after_s: Some(s.gate.retry_after_s()),
    })?;
    let limit = Duration::from_secs_f64(s.cfg.query_timeout_s);
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the query took longer than the limit of {} s and was stopped",
                s.cfg.query_timeout_s
            ),
        ))
    })
}

/// Runs `sql` (read-only, `Lake::lookup_sql`: a query selecting few rows by equality) with
/// named parameters bound as values.
pub async fn rows(
    lake: &Lake,
    sql: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<Vec<RecordBatch>> {
    let map = params
        .iter()
        .map(|(k, v)| (k.to_string(), ScalarValue::Utf8(Some(v.to_string())).into()))
        .collect();
    let df = lake
        .lookup_sql(sql)
        .await?
        .with_param_values(ParamValues::Map(map))?;
    lake.collect(df).await
}

/// The list a detection's rule feeds (`query::lists`), for the lookup's flags.
fn list_of_rule(rule_id: &str) -> Option<&'static str> {
    match rule_id {
        "china3_diesel_sighting" => Some("china3-diesel"),
        "rear_o2_flatline"
        | "rear_o2_periodic"
        | "rear_o2_mirrors_front"
        | "dfco_no_lean"
        | "rear_o2_missing"
        | "rear_o2_low_band"
        | "obd_catalyst_dtc"
        | "lambda_implausible" => Some("gas-twc-suspects"),
        _ => None,
    }
}

const REGISTRY_SQL: &str = "SELECT plate, plate_color, vin, fuel, emission_standard, vehicle_type, registered_on, plate_class, plate_status \
     FROM vehicles WHERE plate = $plate ORDER BY plate_color";
/// Detections of the plate, and of the VINs the registry gives the plate (OBD detections carry
/// a VIN, often no plate): `vins` are the registry rows' distinct VINs, bound as `$vin0`,
/// `$vin1` … beside `$plate`. One branch per value, each an equality on one column, so the
/// Bloom filters of `plate` and `vin` (`sink::parquet::BLOOM_COLUMNS`) skip the row groups
/// that cannot hold it; a VIN branch leaves out the rows the plate branch has. Measured at
/// 1.2 M detections (10 M passes): as a join with the registry or `vin IN (SELECT …)` every
/// row group's `vin` column was read (with `OR … IN (subquery)` a 340 MB hash table was
/// built), and as `plate = $plate OR vin = $vin0` no Bloom filter applied and every column of
/// every row group was decoded (250 ms a lookup).
fn detections_sql(vins: usize) -> String {
    const COLUMNS: &str = "detection_id, rule_id, rule_version, limit_set, detected_at, plate_color, vin, site_id, strength, evidence, evidence_text";
    let mut sql = format!("SELECT {COLUMNS} FROM detections WHERE plate = $plate");
    for i in 0..vins {
        sql.push_str(&format!(
            " UNION ALL SELECT {COLUMNS} FROM detections WHERE vin = $vin{i} AND plate IS DISTINCT FROM $plate"
        ));
    }
    sql.push_str(" ORDER BY detected_at, detection_id");
    sql
}
/// Where and when the plate was last seen, as SQL (bound `$plate`): the definition the
/// lookup's in-memory index (`super::last_seen`) answers, and the reference of its test.
pub const LAST_SEEN_SQL: &str = "SELECT site_id, seen_at, source FROM ( \
       SELECT site_id, passed_at AS seen_at, 'rsd_passes' AS source FROM rsd_passes WHERE plate = $plate \
       UNION ALL \
       SELECT site_id, read_at AS seen_at, 'plate_reads' AS source FROM plate_reads WHERE plate = $plate \
     ) ORDER BY seen_at DESC, source LIMIT 1";

/// `GET /api/plates/{plate}`: `{plate, time_zone, registry: [...], flags: [...], last_seen}`.
/// The plate is normalised as every stream's plates are (full-width characters, separators,
/// lower case folded); text that is no recognisable plate is 400. Times are UTC (`…Z`), with
/// `seen_at_local` in the enforcement zone for the last sighting.
async fn plate(State(s): State<Shared>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let parsed = PlateText::parse(&raw).ok();
    let Some(plate) = parsed
        .as_ref()
        .filter(|p| p.is_recognised())
        .and_then(|p| p.plate.as_ref())
        .map(|p| p.0.clone())
    else {
        return Err(ApiError::bad(
            "not a recognised plate (GA 36 form, e.g. 京A12345)",
        ));
    };
    let (raw2, plate2) = (raw.clone(), plate.clone());
    let s2 = s.clone();
    let body = limited(&s, async move {
        let fail = |e: anyhow::Error| ApiError::internal(e, &[&raw2, &plate2]);
        let (lake, last_seen) = s2.lake.get_with_last_seen().await.map_err(fail)?;
        let p = [("plate", plate.as_str())];
        // The registry first (its VINs select the detections), then the detections; the
        // last sighting comes from the index (`super::last_seen`: the answer of
        // LAST_SEEN_SQL without its scan).
        let reg = rows(&lake, REGISTRY_SQL, &p).await.map_err(fail)?;
        let vins = distinct_vins(&reg).map_err(fail)?;
        let names: Vec<String> = (0..vins.len()).map(|i| format!("vin{i}")).collect();
        let mut dp = p.to_vec();
        dp.extend(
            names
                .iter()
                .map(String::as_str)
                .zip(vins.iter().map(String::as_str)),
        );
        let det = rows(&lake, &detections_sql(vins.len()), &dp)
            .await
            .map_err(fail)?;
        let seen = [last_seen.lookup(&plate)];
        let registry = output::to_json(&reg).map_err(fail)?;
        let mut flags = output::to_json(&det).map_err(fail)?;
        for f in &mut flags {
            let list = f
                .get("rule_id")
                .and_then(Value::as_str)
                .and_then(list_of_rule);
            f.insert("list".into(), list.map(Value::from).unwrap_or(Value::Null));
        }
        let local = output::in_zone(&seen, s2.zone.name()).map_err(fail)?;
        let mut last = output::to_json(&seen).map_err(fail)?;
        let local_rows = local_times(&local, "seen_at");
        let last_seen = match last.pop() {
            Some(mut o) => {
                if let Some(t) = local_rows.into_iter().next() {
                    o.insert("seen_at_local".into(), Value::from(t));
                }
                Value::Object(o)
            }
            None => Value::Null,
        };
        let n = registry.len() + flags.len() + usize::from(!last_seen.is_null());
        Ok((
            json!({
                "plate": plate,
                "time_zone": s2.zone.name(),
                "registry": registry,
                "flags": flags,
                "last_seen": last_seen,
            }),
            n,
        ))
    })
    .await?;
    let (v, n) = body;
    let mut r = axum::Json(v).into_response();
    r.extensions_mut().insert(RowsReturned(n as u64));
    Ok(r)
}

/// The distinct non-null values of the `vin` column of the registry rows, in order.
fn distinct_vins(batches: &[RecordBatch]) -> anyhow::Result<Vec<String>> {
    use datafusion::arrow::array::AsArray;
    let mut out: Vec<String> = Vec::new();
    for b in batches {
        let c = b
            .column_by_name("vin")
            .ok_or_else(|| anyhow::anyhow!("registry rows without a vin column"))?;
        let c = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)?;
        for v in c.as_string::<i32>().iter().flatten() {
            if !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
    }
    Ok(out)
}

/// The values of the zoned timestamp column `name` as local text (`2025-11-08T10:00:00+08:00`).
fn local_times(batches: &[RecordBatch], name: &str) -> Vec<String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let Some(c) = b.column_by_name(name) else {
            continue;
        };
        let Ok(f) = ArrayFormatter::try_new(c.as_ref(), &opts) else {
            continue;
        };
        for r in 0..b.num_rows() {
            out.push(f.value(r).to_string());
        }
    }
    out
}

/// Output format of a list answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fmt {
    Json,
    Csv,
    Xlsx,
}

/// A list request's own options, split from the list's parameters.
struct ListRequest {
    format: Fmt,
    zh: bool,
    district: Option<String>,
    overrides: Vec<(String, String)>,
}

/// Splits the query into options (`format`, `lang`, `district`, `date`) and list parameters;
/// 400 for a bad option. `district` is the administrative-division part of the site codes
/// (`A130102001`: letter, 6-digit division code 130102, 3-digit serial;
/// `remote-sensing.md §2`): 2 digits (a province, `13`), 4 (a city, `1301`) or 6 (a
/// district, `130102`). `date=YYYY-MM-DD` is one local day: `since` that day, `until` the
/// next (refused together with `since`/`until`).
fn split_query(pairs: Vec<(String, String)>) -> Result<ListRequest, ApiError> {
    let mut r = ListRequest {
        format: Fmt::Json,
        zh: false,
        district: None,
        overrides: Vec::new(),
    };
    let mut date = None;
    for (k, v) in pairs {
        match k.as_str() {
            "format" => {
                r.format = match v.as_str() {
                    "json" => Fmt::Json,
                    "csv" => Fmt::Csv,
                    "xlsx" => Fmt::Xlsx,
                    _ => return Err(ApiError::bad("format: json, csv or xlsx")),
                }
            }
            "lang" => {
                r.zh = match v.as_str() {
                    "zh" => true,
                    "en" => false,
                    _ => return Err(ApiError::bad("lang: zh or en")),
                }
            }
            "district" => {
                let ok = matches!(v.len(), 2 | 4 | 6) && v.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(ApiError::bad(
                        "district: the 2-, 4- or 6-digit administrative division code of the site codes (13, 1301, 130102)",
                    ));
                }
                r.district = Some(v);
            }
            "date" => {
                let d = chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                    .map_err(|_| ApiError::bad("date: a day, YYYY-MM-DD"))?;
                date = Some(d);
            }
            _ => r.overrides.push((k, v)),
        }
    }
    if let Some(d) = date {
        if r.overrides
            .iter()
            .any(|(k, _)| k == "since" || k == "until")
        {
            return Err(ApiError::bad("give date, or since/until, not both"));
        }
        let next = d
            .succ_opt()
            .ok_or_else(|| ApiError::bad("date out of range"))?;
        r.overrides.push(("since".into(), d.to_string()));
        r.overrides.push(("until".into(), next.to_string()));
    }
    Ok(r)
}

/// `GET /api/lists/{name}`: the named list as JSON (default), CSV or XLSX (module doc).
async fn list(
    State(s): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Some(def) = lists::find(&name) else {
        let names: Vec<_> = lists::LISTS.iter().map(|l| l.name).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no list '{name}' (lists: {})", names.join(", ")),
        ));
    };
    let req = split_query(query_pairs(&uri))?;
    // Values only: an integer parameter must parse as an integer, a boolean as a boolean, a
    // day as a day; anything else (SQL text included) is refused here and nothing runs.
    let params = lists::bind(def, &s.limits, &req.overrides)
        .map_err(|e| ApiError::bad(e.message().to_string()))?;
    let s2 = s.clone();
    let district = req.district.clone();
    let batches = limited(&s, async move {
        let fail = |e: anyhow::Error| ApiError::internal(e, &[]);
        let lake = s2.lake.get().await.map_err(fail)?;
        let mut df = lists::plan(&lake, def, params).await.map_err(fail)?;
        if let Some(d) = &district {
            if df
                .schema()
                .field_with_unqualified_name("last_site")
                .is_err()
            {
                return Err(ApiError::bad(format!(
                    "list {} has no site column: district does not apply",
                    def.name
                )));
            }
            // The division code starts after the site code's letter.
            use datafusion::functions::expr_fn::{starts_with, substr};
            let code = substr(col("last_site"), lit(2_i64));
            df = df
                .filter(starts_with(code, lit(d.as_str())))
                .map_err(|e| fail(e.into()))?;
        }
        let df = df
            .limit(0, Some(s2.cfg.max_rows + 1))
            .map_err(|e| fail(e.into()))?;
        lake.collect(df).await.map_err(fail)
    })
    .await?;
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    if n > s.cfg.max_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "more than {} rows (max_rows): narrow the list with district, date or since/until",
                s.cfg.max_rows
            ),
        ));
    }
    let fail = |e: anyhow::Error| ApiError::internal(e, &[]);
    let day = chrono::Utc::now().with_timezone(&s.zone).format("%Y%m%d");
    let (bytes, ctype, ext) = match req.format {
        Fmt::Json => (
            export::json(&batches, req.zh).map_err(fail)?,
            "application/json",
            None,
        ),
        Fmt::Csv => (
            export::csv(&batches, s.zone, req.zh).map_err(fail)?,
            "text/csv; charset=utf-8",
            Some("csv"),
        ),
        Fmt::Xlsx => (
            export::xlsx(&batches, s.zone, req.zh, def.name).map_err(fail)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Some("xlsx"),
        ),
    };
    let mut r = Response::new(Body::from(bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Some(ext) = ext
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{}-{day}.{ext}\"",
            def.name
        ))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r.extensions_mut().insert(RowsReturned(n as u64));
    Ok(r)
}

/// `GET /metrics`: OpenMetrics text.
async fn metrics(State(s): State<Shared>) -> Response {
    let mut r = Response::new(Body::from(s.metrics.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_options_are_split_from_list_parameters() {
        let r = split_query(q(&[
            ("format", "xlsx"),
            ("lang", "zh"),
            ("district", "1301"),
            ("date", "2026-10-30"),
            ("min_failing_passes", "3"),
        ]))
        .unwrap();
        assert_eq!(r.format, Fmt::Xlsx);
        assert!(r.zh);
        assert_eq!(r.district.as_deref(), Some("1301"));
        assert_eq!(
            r.overrides,
            q(&[
                ("min_failing_passes", "3"),
                ("since", "2026-10-30"),
                ("until", "2026-10-31")
            ])
        );
        for bad in [
            q(&[("format", "pdf")]),
            q(&[("district", "13010")]),
            q(&[("district", "13' OR '1'='1")]),
            q(&[("date", "30/10/2026")]),
            q(&[("date", "2026-10-30"), ("since", "2026-10-01")]),
        ] {
            assert_eq!(
                split_query(bad).err().map(|e| e.status),
                Some(StatusCode::BAD_REQUEST)
            );
        }
    }
}
