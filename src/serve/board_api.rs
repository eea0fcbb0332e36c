//! The board's routes (module doc of [`super::board`]): `GET /board` (the page) and
//! `GET /api/alerts/stream` (Server-Sent Events). Both pass the guard of [`super::api`]
//! (authentication, which may come as `?token=` here because `EventSource` cannot send
//! headers; role patrol, police or admin; one audit row per connection).
//!
//! Sites: `sites=C130102001,C130102002` (comma-separated, or repeated). A patrol may ask only
//! for its own `sites` (403 naming the others); without `sites=` it gets all of its own. Police
//! and admin may ask for any sites; without `sites=` they watch every site.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, AppState, RowsReturned, query_pairs};
use super::auth::Caller;
use super::board::{AlertHub, BoardEvent, Sites};
use super::config::Role;

/// The page: one static file, inline CSS and JS, no build step.
pub const BOARD_HTML: &str = include_str!("board.html");

/// Most sites one board may name.
const MAX_SITES: usize = 200;

/// The sites a request may watch (module doc); 400 for a malformed list, 403 for a patrol
/// naming a site not assigned to it.
pub fn sites_for(caller: &Caller, pairs: &[(String, String)]) -> Result<Sites, ApiError> {
    let mut asked: Vec<String> = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "sites") {
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ok = s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "sites: site codes (letters, digits, '-'), comma-separated",
                ));
            }
            if !asked.iter().any(|a| a == s) {
                asked.push(s.to_string());
            }
        }
    }
    if asked.len() > MAX_SITES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("sites: at most {MAX_SITES} sites"),
        ));
    }
    match caller.role {
        Role::Patrol => {
            if asked.is_empty() {
                return Ok(Sites::Only(caller.sites.iter().cloned().collect()));
            }
            let others: Vec<&str> = asked
                .iter()
                .filter(|s| !caller.sites.contains(s))
                .map(String::as_str)
                .collect();
            if !others.is_empty() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "patrol {} is not assigned to site(s) {}",
                        caller.name,
                        others.join(", ")
                    ),
                ));
            }
            Ok(Sites::Only(asked.into_iter().collect()))
        }
        _ if asked.is_empty() => Ok(Sites::All),
        _ => Ok(Sites::Only(asked.into_iter().collect::<HashSet<_>>())),
    }
}

/// `GET /board?sites=…`: the page (after the same site check as the stream, so a patrol
/// opening another site's board sees the 403 at once).
pub async fn page(
    State(_s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<Response, ApiError> {
    sites_for(&caller, &query_pairs(&uri))?;
    let mut r = BOARD_HTML.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The URL may carry the token: never sent on as a referrer, never cached.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    Ok(r)
}

/// Decrements the SSE clients gauge when the stream is dropped (the client went away or the
/// server stops).
struct ClientGuard(Arc<AppState>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_client(-1);
    }
}

struct StreamState {
    pending: VecDeque<Arc<BoardEvent>>,
    last: u64,
    rx: tokio::sync::watch::Receiver<u64>,
    hub: Arc<AlertHub>,
    sites: Sites,
    _client: ClientGuard,
}

fn event(e: &BoardEvent) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event("alert")
        .data(e.to_json().to_string())
}

/// `GET /api/alerts/stream?sites=…`: Server-Sent Events `alert` (module doc of
/// [`super::board`]). `Last-Event-ID` (header, as `EventSource` sends it when it reconnects,
/// or `?last_event_id=`) resumes after that id; without it the newest `backlog` alerts come
/// first. The audit row's `rows` is the number of alerts sent at connect.
pub async fn stream(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri);
    let sites = sites_for(&caller, &pairs)?;
    let given = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            pairs
                .iter()
                .find(|(k, _)| k == "last_event_id")
                .map(|(_, v)| v.clone())
        });
    let last = match given.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID: an event id (a number)",
            )
        })?),
    };
    let hub = s.board.clone();
    let mut rx = hub.subscribe();
    rx.borrow_and_update();
    let (pending, last) = hub.connect(last, s.cfg.board.backlog, &sites);
    let sent_at_connect = pending.len() as u64;
    s.metrics.sse_client(1);
    let st = StreamState {
        pending: pending.into(),
        last,
        rx,
        hub,
        sites,
        _client: ClientGuard(s.clone()),
    };
    // First a `hello` event without id (so `Last-Event-ID` is unchanged): who watches which
    // sites, for the page's header.
    let watched = match &st.sites {
        Sites::All => serde_json::Value::from("all"),
        Sites::Only(s) => {
            let mut v: Vec<&String> = s.iter().collect();
            v.sort();
            serde_json::json!(v)
        }
    };
    let hello = Event::default().event("hello").data(
        serde_json::json!({ "user": caller.name, "role": caller.role.as_str(), "sites": watched })
            .to_string(),
    );
    let hello = futures::stream::once(async move { Ok::<Event, Infallible>(hello) });
    let body = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                st.last = st.last.max(e.id);
                return Some((Ok::<Event, Infallible>(event(&e)), st));
            }
            if st.hub.is_closed() {
                return None;
            }
            st.rx.borrow_and_update();
            let new = st.hub.after(st.last, &st.sites);
            if !new.is_empty() {
                st.pending.extend(new);
                continue;
            }
            if st.rx.changed().await.is_err() {
                return None;
            }
        }
    });
    let keep = KeepAlive::new().interval(Duration::from_secs(s.cfg.board.keepalive_s));
    let mut r = Sse::new(futures::StreamExt::chain(hello, body))
        .keep_alive(keep)
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to buffer the stream.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r.extensions_mut().insert(RowsReturned(sent_at_connect));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, sites: &[&str]) -> Caller {
        Caller {
            name: "u".into(),
            role,
            sites: sites.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn q(sites: &str) -> Vec<(String, String)> {
        vec![("sites".into(), sites.into())]
    }

    #[test]
    fn patrols_get_their_own_sites_only() {
        let p = caller(Role::Patrol, &["C130102001", "A130102001"]);
        assert_eq!(
            sites_for(&p, &[]).unwrap(),
            Sites::Only(["C130102001".into(), "A130102001".into()].into())
        );
        assert_eq!(
            sites_for(&p, &q("C130102001")).unwrap(),
            Sites::Only(["C130102001".into()].into())
        );
        let e = sites_for(&p, &q("C130102001,C110119001")).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("C110119001"), "{}", e.message);
        assert!(!e.message.contains("C130102001"), "{}", e.message);
        let police = caller(Role::Police, &[]);
        assert_eq!(sites_for(&police, &[]).unwrap(), Sites::All);
        assert_eq!(
            sites_for(&police, &q("C110119001, C110119001")).unwrap(),
            Sites::Only(["C110119001".into()].into())
        );
        let e = sites_for(&police, &q("x' OR 1=1")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
