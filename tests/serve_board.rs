//! The live alert board (issue 13 item 3), end to end: `plumewatch run` with a `[serve]`
//! section and a TCP plate-read source; entrance alerts reach Server-Sent-Events clients and a
//! real headless browser (Debian `chromium` + `chromium-driver`, skipped without them).
//!
//! The registry is the one of the entrance-alert tests (`tests/field_keys.rs`): 冀A12345 is a
//! China III diesel truck (yellow, H11, registered 2011-06-01), so it is on the entrance
//! watchlist from the start; 冀B54321 is China VI and never alerts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plumewatch::detect::china3::detection_id;
use serde_json::Value;

const REGISTRY: &str = "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n冀A12345,yellow,LZZ1CCND0JW000001,diesel,国III,H11,2011-06-01\n冀B54321,yellow,LZZ1CCND0JW000002,diesel,国VI,H11,2021-06-01\n";
const BANNED: &str = "冀A12345";
/// The patrol's token (user `gate`, sites E1 and E3) and the others'.
const PATROL: &str = "tok-gate-0123456789abcdef";
const POLICE: &str = "tok-police-0123456789abcdef";
const ADMIN: &str = "tok-ops-0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha(t: &str) -> String {
    plumewatch::serve::auth::hash_secret(t).unwrap().1
}

/// Connects to `addr`, retrying while the run binds its listeners.
fn connect(addr: SocketAddr) -> TcpStream {
    common::connect_retrying(addr)
}

/// A `plumewatch run` with a `[serve]` section, on its own thread.
struct Hosted {
    dir: tempfile::TempDir,
    tables: PathBuf,
    web: SocketAddr,
    /// The run's own `/metrics` (`[metrics] listen`).
    run_metrics: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<plumewatch::run::RunSummary>>,
    /// The connection to the TCP plate-read source.
    feed: Option<TcpStream>,
}

impl Hosted {
    fn start() -> Hosted {
        let dir = tempfile::tempdir().unwrap();
        let tables = dir.path().join("tables");
        let reg = dir.path().join("reg.csv");
        std::fs::write(&reg, REGISTRY).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_plumewatch"))
            .args([
                "ingest", "--quiet", "--stream", "vehicles", "--format", "csv",
            ])
            .arg("--out")
            .arg(&tables)
            .arg(&reg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let source: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let run_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let text = format!(
            r#"tables = {tables:?}
instance_id = "board"
[[tcp]]
stream = "plates"
listen = "{source}"
[commit]
interval_ms = 200
[alerts]
kinds = ["entrance_alert"]
dedup_window_ms = 0
[sites]
urban_entrances = ["E1", "E2", "E3"]
[metrics]
listen = "{run_metrics}"
[serve]
listen = "{web}"
audit_commit_ms = 100
[serve.board]
poll_ms = 200
[[serve.users]]
name = "gate"
role = "patrol"
token_sha256 = "{}"
sites = ["E1", "E3"]
[[serve.users]]
name = "li"
role = "police"
token_sha256 = "{}"
[[serve.users]]
name = "ops"
role = "admin"
token_sha256 = "{}"
"#,
            sha(PATROL),
            sha(POLICE),
            sha(ADMIN),
            tables = tables.display().to_string(),
        );
        let cfg = plumewatch::run::config::RunConfig::parse(&text).unwrap();
        cfg.check().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || plumewatch::run::run(cfg, s2).unwrap());
        let feed = connect(source);
        drop(connect(web));
        Hosted {
            dir,
            tables,
            web,
            run_metrics,
            stop,
            thread: Some(thread),
            feed: Some(feed),
        }
    }

    /// Writes one plate read (read now) to the TCP source; returns when it was written.
    fn read(&mut self, read_id: &str, site: &str, plate: &str) -> Instant {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = format!(
            "{{\"read_id\":\"{read_id}\",\"read_at\":\"{now}\",\"site_id\":\"{site}\",\"plate\":\"{plate}\",\"plate_color\":\"yellow\"}}\n"
        );
        let f = self.feed.as_mut().unwrap();
        f.write_all(line.as_bytes()).unwrap();
        f.flush().unwrap();
        Instant::now()
    }

    fn stop(&mut self) -> plumewatch::run::RunSummary {
        drop(self.feed.take());
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One SSE event as received.
#[derive(Debug)]
struct Sse {
    id: u64,
    data: Value,
    at: Instant,
}

/// An SSE client (HTTP/1.0, so the body is the bare event stream).
struct Client {
    status: u16,
    rx: Receiver<Sse>,
    conn: TcpStream,
}

impl Client {
    fn open(addr: SocketAddr, target: &str, last_event_id: Option<u64>) -> Client {
        let mut s = connect(addr);
        let mut req =
            format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let conn = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
        }
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let (mut id, mut data) = (None, String::new());
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    if let Some(i) = id.take() {
                        let ev = Sse {
                            id: i,
                            data: serde_json::from_str(&data).unwrap(),
                            at: Instant::now(),
                        };
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                    data.clear();
                } else if let Some(v) = l.strip_prefix("id:") {
                    id = Some(v.trim().parse().unwrap());
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        });
        Client { status, rx, conn }
    }

    fn next(&self, within: Duration) -> Option<Sse> {
        self.rx.recv_timeout(within).ok()
    }

    /// Every event arriving within `quiet` of the previous one.
    fn drain(&self, quiet: Duration) -> Vec<Sse> {
        let mut v = Vec::new();
        while let Some(e) = self.next(quiet) {
            v.push(e);
        }
        v
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
    }
}

/// Status and body of a plain GET (HTTP/1.0).
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    get_as(addr, target, None)
}

/// Status and body of a GET with `Authorization: Bearer <token>` when given.
fn get_as(addr: SocketAddr, target: &str, token: Option<&str>) -> (u16, String) {
    let mut s = connect(addr);
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

fn det(read_id: &str) -> String {
    detection_id("entrance_alert", "plates", read_id)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

/// Acceptance of item 3 over SSE: an alert reaches the patrol within 1 s of the read being
/// written; an alert at a site not assigned to it does not; another site's stream is 403;
/// a reconnect with Last-Event-ID gets exactly the missed alerts; every connection is
/// audited without its token; the SSE clients gauge counts the open streams. Then the
/// same tables served by a separate `serve` (polling the committed `alerts` table).
#[test]
fn alerts_reach_the_patrol_board_over_sse() {
    let mut h = Hosted::start();
    let web = h.web;
    let stream = |tok: &str, extra: &str| format!("/api/alerts/stream?token={tok}{extra}");

    // Authorisation first: 401 without a token, 403 for another site (stream and page).
    assert_eq!(Client::open(web, "/api/alerts/stream", None).status, 401);
    let wrong_token = Client::open(web, &stream("nope-0123456789", ""), None);
    assert_eq!(wrong_token.status, 401);
    let (st, body) = get(web, &stream(PATROL, "&sites=E1,E2"));
    assert_eq!(st, 403);
    assert!(body.contains("E2") && !body.contains("E1,"), "{body}");
    assert_eq!(get(web, &format!("/board?token={PATROL}&sites=E2")).0, 403);
    let (st, page) = get(web, &format!("/board?token={PATROL}"));
    assert_eq!(st, 200);
    assert!(page.contains("EventSource"), "the page opens the stream");
    // ?token= is taken on the board's routes only; a patrol may not look up a plate that
    // is not on its board.
    let evidence = "/api/plates/%E5%86%80A12345";
    assert_eq!(get(web, &format!("{evidence}?token={PATROL}")).0, 401);
    assert_eq!(get_as(web, evidence, Some(PATROL)).0, 403);

    // The patrol (own sites: E1, E3) and a police board of every site.
    let patrol = Client::open(web, &stream(PATROL, ""), None);
    assert_eq!(patrol.status, 200);
    let police = Client::open(web, &stream(POLICE, ""), None);
    assert_eq!(police.status, 200);
    let (st, _) = get(web, &format!("/metrics?token={ADMIN}"));
    assert_eq!(st, 401, "metrics take the header, not ?token=");

    // A read at E2 (an entrance, not the patrol's), then at E1, then a China VI truck at E1.
    h.read("x-e2", "E2", BANNED);
    let t_e1 = h.read("x-e1", "E1", BANNED);
    h.read("x-clean", "E1", "冀B54321");
    let e = patrol.next(Duration::from_secs(5)).expect("the E1 alert");
    let latency = e.at.duration_since(t_e1);
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert_eq!(e.data["detection_id"], det("x-e1"));
    assert_eq!(e.data["plate"], BANNED);
    assert_eq!(e.data["plate_color"], "yellow");
    assert_eq!(e.data["plate_color_zh"], "黄牌");
    assert_eq!(e.data["reason_zh"], "国三柴油货车（禁行）");
    assert_eq!(e.data["reason_en"], "China III diesel truck (banned)");
    assert_eq!(e.data["site"], "E1");
    assert_eq!(e.data["vehicle_type"], "H11");
    assert_eq!(e.data["evidence"], "/api/plates/%E5%86%80A12345");
    assert!(e.data["local_time"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(e.data["id"], e.id);
    // The police board got both, E2 first; the patrol nothing more.
    let p: Vec<_> = police.drain(Duration::from_millis(700));
    let ids: Vec<_> = p.iter().map(|e| e.data["detection_id"].clone()).collect();
    assert_eq!(ids, [det("x-e2"), det("x-e1")]);
    assert!(p[0].id < p[1].id);
    assert_eq!(p[1].id, e.id, "one id per alert, whoever watches");
    assert!(patrol.drain(Duration::from_millis(300)).is_empty());

    // The patrol may open the evidence of an alert on its board, not of another plate.
    let (st, body) = get_as(web, evidence, Some(PATROL));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["registry"][0]["vin"], "LZZ1CCND0JW000001");
    assert_eq!(
        get_as(web, "/api/plates/%E5%86%80B54321", Some(PATROL)).0,
        403
    );

    // Reconnect: the patrol drops, three alerts at its sites and one elsewhere are raised, it
    // comes back with Last-Event-ID and gets exactly the three.
    let last = e.id;
    drop(patrol);
    h.read("m1", "E1", BANNED);
    h.read("m2", "E2", BANNED);
    h.read("m3", "E3", BANNED);
    h.read("m4", "E1", BANNED);
    let seen: Vec<_> = (0..4)
        .map(|_| {
            police
                .next(Duration::from_secs(5))
                .expect("police sees all four")
        })
        .collect();
    assert_eq!(seen[3].data["detection_id"], det("m4"));
    let back = Client::open(web, &stream(PATROL, ""), Some(last));
    assert_eq!(back.status, 200);
    let missed: Vec<_> = back
        .drain(Duration::from_millis(700))
        .into_iter()
        .map(|e| e.data["detection_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(missed, [det("m1"), det("m3"), det("m4")]);

    // The gauge: two streams open now (police, back).
    let admin_get = |target: &str| {
        let mut s = connect(web);
        s.write_all(
            format!(
                "GET {target} HTTP/1.0\r\nHost: {web}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    };
    let m = admin_get("/metrics");
    assert!(m.contains("plumewatch_sse_clients 2"), "{m}");
    // … and on the run's own /metrics, beside the run's counters.
    let (st, m) = get(h.run_metrics, "/metrics");
    assert_eq!(st, 200);
    assert!(m.contains("plumewatch_sse_clients 2"), "{m}");
    assert!(m.contains("plumewatch_source_records"), "{m}");

    // Latency over 100 alerts, one every 20 ms, measured at the patrol's client.
    let mut lat = Vec::new();
    for i in 0..100 {
        let t = h.read(&format!("l{i}"), "E1", BANNED);
        let e = back.next(Duration::from_secs(5)).expect("latency alert");
        assert_eq!(e.data["detection_id"], det(&format!("l{i}")));
        lat.push(e.at.duration_since(t).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
    println!(
        "read written → SSE event at the patrol's client, 100 alerts: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        lat[99]
    );
    assert!(lat[99] < 1000.0, "every alert within 1 s: {lat:?}");
    drop(back);
    drop(police);
    // Streams end when their client goes: the gauge goes back to 0.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let m = admin_get("/metrics");
        if m.contains("plumewatch_sse_clients 0") {
            break;
        }
        assert!(Instant::now() < until, "{m}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let s = h.stop();
    assert_eq!(s.alerts, 106, "{s}");
    // Every board request left one audit row, with the token redacted.
    let audit = common::rows(&common::sql(
        &h.tables,
        "SELECT who, role, what, status, parameters, rows FROM audit WHERE what IN ('/api/alerts/stream', '/board') ORDER BY at",
    ));
    let got: Vec<(Option<String>, String, String)> = audit
        .iter()
        .map(|r| {
            (
                r["who"].clone(),
                r["what"].clone().unwrap(),
                r["status"].clone().unwrap(),
            )
        })
        .collect();
    let row = |who: Option<&str>, what: &str, st: u16| {
        (who.map(str::to_string), what.to_string(), st.to_string())
    };
    let stream_route = "/api/alerts/stream";
    assert_eq!(
        got,
        [
            row(None, stream_route, 401),
            row(None, stream_route, 401),
            row(Some("gate"), stream_route, 403),
            row(Some("gate"), "/board", 403),
            row(Some("gate"), "/board", 200),
            row(Some("gate"), stream_route, 200),
            row(Some("li"), stream_route, 200),
            row(Some("gate"), stream_route, 200),
        ]
    );
    for r in &audit {
        let p = r["parameters"].clone().unwrap();
        assert!(!p.contains("tok-"), "a token in the audit table: {p}");
    }
    assert!(
        audit[5]["parameters"]
            .clone()
            .unwrap()
            .contains("(redacted)")
    );
    // The reconnect sent 3 alerts at connect.
    assert_eq!(audit[7]["rows"].as_deref(), Some("3"));
    assert_eq!(
        common::scalar_i64(&h.tables, "SELECT count(*) FROM alerts"),
        106
    );

    // The same tables served by a separate `serve`: the board is filled from the committed
    // `alerts` table, and alerts committed later by another `run` arrive by polling.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = plumewatch::serve::ServeConfig {
        listen: "127.0.0.1:0".into(),
        instance_id: "serve2".into(),
        board: plumewatch::serve::board::BoardConfig {
            poll_ms: 100,
            backlog: 5,
            ..Default::default()
        },
        users: vec![plumewatch::serve::config::UserConfig {
            name: "gate".into(),
            role: plumewatch::serve::config::Role::Patrol,
            password_hash: None,
            token_sha256: Some(sha(PATROL)),
            sites: vec!["E1".into()],
        }],
        ..Default::default()
    };
    let server = rt
        .block_on(plumewatch::serve::start(&h.tables, cfg))
        .unwrap();
    let a = server.addr;
    std::thread::sleep(Duration::from_millis(400));
    let c = Client::open(a, &stream(PATROL, ""), None);
    assert_eq!(c.status, 200);
    let backlog: Vec<_> = c
        .drain(Duration::from_millis(500))
        .into_iter()
        .map(|e| e.data["detection_id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<_> = (95..100).map(|i| det(&format!("l{i}"))).collect();
    assert_eq!(backlog, want, "the newest 5 of E1, oldest first");
    let reads = h.dir.path().join("more.ndjson");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::fs::write(
        &reads,
        format!(
            "{{\"read_id\":\"p1\",\"read_at\":\"{now}\",\"site_id\":\"E1\",\"plate\":\"{BANNED}\",\"plate_color\":\"yellow\"}}\n{{\"read_id\":\"p2\",\"read_at\":\"{now}\",\"site_id\":\"E2\",\"plate\":\"{BANNED}\",\"plate_color\":\"yellow\"}}\n"
        ),
    )
    .unwrap();
    let text = format!(
        "tables = {:?}\ninstance_id = \"other\"\nidle_exit_ms = 300\n[[files]]\nstream = \"plates\"\npath = {:?}\n[alerts]\nkinds = [\"entrance_alert\"]\n[sites]\nurban_entrances = [\"E1\", \"E2\"]\n",
        h.tables.display().to_string(),
        reads.display().to_string()
    );
    let cfg = plumewatch::run::config::RunConfig::parse(&text).unwrap();
    let s2 = plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(s2.alerts, 2);
    let polled = c
        .next(Duration::from_secs(5))
        .expect("polled from the table");
    assert_eq!(polled.data["detection_id"], det("p1"));
    assert_eq!(polled.data["reason_en"], "China III diesel truck (banned)");
    assert!(
        c.drain(Duration::from_millis(500)).is_empty(),
        "p2 is at E2"
    );
    // Stopping the server ends the open streams (it does not wait for the boards to leave).
    let t0 = Instant::now();
    rt.block_on(server.stop()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(c.next(Duration::from_secs(1)).is_none());
    drop(c);
}

/// The board in a real headless browser (Debian `chromium` + `chromium-driver`; skipped,
/// passing, without them): a patrol's page shows an alert raised at its site within 1 s of
/// the read being written, not one raised at another site; the screenshot is written to
/// `target/test-artifacts/board.png`.
#[test]
fn board_in_a_headless_browser() {
    let Some((chromium, driver)) = browser() else {
        println!(
            "skipped: chromium and chromedriver not on PATH (apt-get install -y chromium chromium-driver)"
        );
        return;
    };
    let mut h = Hosted::start();
    let port = free_port();
    let log = h.dir.path().join("chromedriver.log");
    let cd = Command::new(&driver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _cd = Kill(cd);
    drop(connect(format!("127.0.0.1:{port}").parse().unwrap()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/board.png");
    let web = h.web;
    let written = Arc::new(Mutex::new(None::<Instant>));
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,860", "--lang=zh-CN"]
            }),
        );
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = fantoccini::ClientBuilder::new(conn)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromedriver session");
        c.goto(&format!("http://{web}/board?token={PATROL}"))
            .await
            .unwrap();
        // Wait for the stream to be open.
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = c
                .execute("return document.getElementById('status').className", vec![])
                .await
                .unwrap();
            if s == "live" {
                break;
            }
            assert!(Instant::now() < until, "the board never went live");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let header = c
            .execute("return document.getElementById('sites').textContent", vec![])
            .await
            .unwrap();
        assert_eq!(header.as_str(), Some("gate · 站点 · sites: E1, E3"));
        // One read at E2 (not the patrol's), then at E1; the page must show the E1 one.
        h.read("b-e2", "E2", BANNED);
        let t = h.read("b-e1", "E1", BANNED);
        *written.lock().unwrap() = Some(t);
        let sel = format!("article[data-plate=\"{BANNED}\"]");
        let shown_after = loop {
            let n = c
                .execute(
                    &format!("return document.querySelectorAll('{sel}').length"),
                    vec![],
                )
                .await
                .unwrap();
            if n.as_u64() == Some(1) {
                break t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(5), "no card for the alert");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!("read written → card in the browser's DOM: {shown_after:?}");
        assert!(shown_after < Duration::from_secs(1), "{shown_after:?}");
        let text = c
            .execute(
                "return document.querySelector('#list').innerText",
                vec![],
            )
            .await
            .unwrap();
        let text = text.as_str().unwrap().to_string();
        assert!(text.contains(BANNED), "{text}");
        assert!(text.contains("国三柴油货车（禁行）"), "{text}");
        assert!(text.contains("E1") && !text.contains("E2"), "{text}");
        // Let the E2 alert have every chance to arrive, then count the cards again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = c
            .execute("return document.querySelectorAll('article').length", vec![])
            .await
            .unwrap();
        assert_eq!(n.as_u64(), Some(1), "the E2 alert must not reach the patrol");
        let png = c.screenshot().await.unwrap();
        std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
        std::fs::write(&shot, &png).unwrap();
        c.close().await.unwrap();
    });
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    println!("screenshot: {}", shot.display());
    let s = h.stop();
    assert_eq!(s.alerts, 2, "{s}");
}

/// `chromium` and `chromedriver` from PATH, if both are there.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
    };
    Some((find("chromium")?, find("chromedriver")?))
}
