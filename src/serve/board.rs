//! The live alert board for entrance patrols (issue 13 item 3).
//!
//! - [`AlertHub`]: the recent entrance alerts, in memory, each with an event id. Bounded by
//!   `[serve.board] buffer` alerts (default 10,000) and `retention_s` (default 24 h, counted
//!   from when the hub received the alert). Ids increase strictly: an id is the hub's clock in
//!   microseconds (Unix µs when the alert arrived), or the previous id + 1 when that is not
//!   larger, so ids also grow across a restart of the process (as long as the clock does not
//!   go back). Alerts are keyed by `detection_id` (deterministic: `run` gives a replayed read
//!   the same id), so an alert offered twice (published live by `run`, then found again in the
//!   committed `alerts` table) is kept once.
//! - Two feeds fill it: `run` publishes each `entrance_alert` as it is delivered (when it hosts
//!   the server, `[serve]` in its config), and a poller ([`poll_alerts_table`]) reads every
//!   committed `alerts` file it has not read yet, every `poll_ms`. The poller alone serves a
//!   separate `plumewatch serve`; beside a hosted `run` it adds the alerts of other `run`
//!   instances on the same tables. Its first pass seeds the hub with the alerts read within
//!   `retention_s` before now.
//! - `GET /api/alerts/stream?sites=…` (Server-Sent Events, [`stream`]) and `GET /board?sites=…`
//!   ([`page`], one static HTML file with inline JS/CSS). A connection without `Last-Event-ID`
//!   first gets the newest `backlog` alerts of its sites; with `Last-Event-ID: N` it gets every
//!   alert of its sites with an id above N still held, then the live ones. Across a restart of
//!   the server the held alerts get new (larger) ids, so a board reconnecting after a restart
//!   receives them again: at least once, never silently missed within the retention; the page
//!   shows an alert once per `detection_id`.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::pipeline::Alert;

/// `[serve.board]`: the live alert board. Every option has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// Most alerts held for reconnecting boards (oldest dropped first). Default 10000.
    #[serde(default = "d_buffer")]
    pub buffer: usize,
    /// Longest an alert is held after the server received it, seconds. Default 86400 (24 h).
    #[serde(default = "d_retention")]
    pub retention_s: u64,
    /// How often the committed `alerts` table is checked for new files, ms. Default 1000.
    #[serde(default = "d_poll")]
    pub poll_ms: u64,
    /// Alerts a board connecting without `Last-Event-ID` receives first (the newest of its
    /// sites). Default 20.
    #[serde(default = "d_backlog")]
    pub backlog: usize,
    /// An SSE comment is sent after this many seconds without an alert, so proxies and phones
    /// keep the connection open and a dead one is noticed. Default 15.
    #[serde(default = "d_keepalive")]
    pub keepalive_s: u64,
}

fn d_buffer() -> usize {
    10_000
}
fn d_retention() -> u64 {
    86_400
}
fn d_poll() -> u64 {
    1000
}
fn d_backlog() -> usize {
    20
}
fn d_keepalive() -> u64 {
    15
}

impl Default for BoardConfig {
    fn default() -> Self {
        BoardConfig {
            buffer: d_buffer(),
            retention_s: d_retention(),
            poll_ms: d_poll(),
            backlog: d_backlog(),
            keepalive_s: d_keepalive(),
        }
    }
}

impl BoardConfig {
    /// Refuses zero sizes and intervals.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.buffer == 0 || self.retention_s == 0 || self.poll_ms == 0 || self.keepalive_s == 0 {
            anyhow::bail!(
                "[serve.board] buffer, retention_s, poll_ms and keepalive_s must be at least 1"
            );
        }
        Ok(())
    }
}

/// One alert as the board shows it: the alert as offered, with its event id.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardEvent {
    /// Event id (module doc).
    pub id: u64,
    /// When the hub received it, Unix ms (retention).
    pub received_ms: i64,
    /// The alert.
    pub alert: NewAlert,
}

/// Plain words for a list name, (Chinese, English). Unknown names are given as they are.
pub fn reason_words(reason: &str) -> (String, String) {
    let (zh, en) = match reason {
        "china3-diesel" => ("国三柴油货车（禁行）", "China III diesel truck (banned)"),
        "gas-twc-suspects" => (
            "燃气车三元催化器疑似失效",
            "Gas truck: catalytic converter suspected removed or defeated",
        ),
        "rsd-repeat-exceeders" => (
            "遥感监测多次超标",
            "Repeatedly over the limit at roadside remote sensing",
        ),
        other => (other, other),
    };
    (zh.to_string(), en.to_string())
}

/// Plain words for a plate colour word (GA 36), (Chinese, English).
pub fn color_words(color: Option<&str>) -> (String, String) {
    let (zh, en) = match color {
        Some("blue") => ("蓝牌", "blue plate"),
        Some("yellow") => ("黄牌", "yellow plate"),
        Some("black") => ("黑牌", "black plate"),
        Some("white") => ("白牌", "white plate"),
        Some("green") => ("绿牌", "green plate"),
        Some("yellow_green") => ("黄绿牌", "yellow-green plate"),
        Some(_) => ("其他颜色", "other colour"),
        None => ("颜色未识别", "colour not read"),
    };
    (zh.to_string(), en.to_string())
}

/// Percent-encodes a path segment or query value (UTF-8 bytes; unreserved characters kept).
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl BoardEvent {
    /// The SSE `data:` of the event: every field the board shows, reasons and colour in
    /// plain Chinese and English, and the evidence link (`/api/plates/{plate}`).
    pub fn to_json(&self) -> Value {
        let a = &self.alert;
        let reasons: Vec<(String, String)> = a.reasons.iter().map(|r| reason_words(r)).collect();
        let (czh, cen) = color_words(a.plate_color.as_deref());
        json!({
            "id": self.id,
            "detection_id": a.detection_id,
            "plate": a.plate,
            "plate_color": a.plate_color,
            "plate_color_zh": czh,
            "plate_color_en": cen,
            "vehicle_type": a.vehicle_type,
            "reasons": a.reasons,
            "reason_zh": reasons.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join("；"),
            "reason_en": reasons.iter().map(|r| r.1.as_str()).collect::<Vec<_>>().join("; "),
            "evidence": format!("/api/plates/{}", encode_segment(&a.plate)),
            "site": a.site_id,
            "local_time": a.local_time,
            "seen_at_ms": a.seen_at_ms,
        })
    }
}

/// An alert offered to the hub (without id).
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    pub detection_id: String,
    pub plate: String,
    pub plate_color: Option<String>,
    pub vehicle_type: Option<String>,
    pub site_id: String,
    pub seen_at_ms: i64,
    pub local_time: String,
    pub reasons: Vec<String>,
}

impl NewAlert {
    /// An `entrance_alert` of `run` (None for other kinds, or without plate, site or id).
    pub fn from_alert(a: &Alert) -> Option<NewAlert> {
        if a.kind != "entrance_alert" {
            return None;
        }
        Some(NewAlert {
            detection_id: a.detection_id.clone()?,
            plate: a.plate.clone()?,
            plate_color: a.plate_color.clone(),
            vehicle_type: a.vehicle_type.clone(),
            site_id: a.site_id.clone()?,
            seen_at_ms: a.at_ms,
            local_time: a.local_time.clone().unwrap_or_default(),
            reasons: a.reasons.clone(),
        })
    }
}

/// Which sites a board watches: all (police, admin without `sites=`) or a set.
#[derive(Clone, Debug, PartialEq)]
pub enum Sites {
    All,
    Only(HashSet<String>),
}

impl Sites {
    /// True when an alert at `site` is for this board.
    pub fn admits(&self, site: &str) -> bool {
        match self {
            Sites::All => true,
            Sites::Only(s) => s.contains(site),
        }
    }
}

struct Inner {
    buf: VecDeque<Arc<BoardEvent>>,
    ids: HashSet<String>,
    last_id: u64,
}

/// The recent alerts and the wake-up of the SSE streams (module doc).
pub struct AlertHub {
    inner: Mutex<Inner>,
    /// The id of the newest alert; SSE streams wait on it.
    notify: tokio::sync::watch::Sender<u64>,
    closed: AtomicBool,
    cap: usize,
    retention_ms: i64,
}

impl AlertHub {
    /// An empty hub holding at most `cap` alerts for `retention` after receipt.
    pub fn new(cap: usize, retention: Duration) -> AlertHub {
        AlertHub {
            inner: Mutex::new(Inner {
                buf: VecDeque::new(),
                ids: HashSet::new(),
                last_id: 0,
            }),
            notify: tokio::sync::watch::channel(0).0,
            closed: AtomicBool::new(false),
            cap: cap.max(1),
            retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// Adds alerts (in order) received at `now_ms` (Unix ms); returns the ids given, skipping
    /// an alert whose `detection_id` is held already. Wakes the streams.
    pub fn publish_at(&self, alerts: Vec<NewAlert>, now_ms: i64) -> Vec<u64> {
        let mut out = Vec::new();
        {
            let Ok(mut g) = self.inner.lock() else {
                return out;
            };
            for a in alerts {
                if g.ids.contains(&a.detection_id) {
                    continue;
                }
                let id = (now_ms.max(0) as u64)
                    .saturating_mul(1000)
                    .max(g.last_id + 1);
                g.last_id = id;
                g.ids.insert(a.detection_id.clone());
                g.buf.push_back(Arc::new(BoardEvent {
                    id,
                    received_ms: now_ms,
                    alert: a,
                }));
                out.push(id);
            }
            self.prune(&mut g, now_ms);
        }
        if let Some(&last) = out.last() {
            self.notify.send_replace(last);
        }
        out
    }

    /// Drops the oldest alerts beyond `cap` and those received more than the retention
    /// before `now_ms`.
    fn prune(&self, g: &mut Inner, now_ms: i64) {
        let cut = now_ms.saturating_sub(self.retention_ms);
        while g
            .buf
            .front()
            .is_some_and(|e| g.buf.len() > self.cap || e.received_ms < cut)
        {
            if let Some(e) = g.buf.pop_front() {
                g.ids.remove(&e.alert.detection_id);
            }
        }
    }

    /// [`AlertHub::publish_at`] now.
    pub fn publish(&self, alerts: Vec<NewAlert>) -> Vec<u64> {
        self.publish_at(alerts, chrono::Utc::now().timestamp_millis())
    }

    /// The held alerts of `sites` with an id above `after`, oldest first.
    pub fn after(&self, after: u64, sites: &Sites) -> Vec<Arc<BoardEvent>> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        let start = g.buf.partition_point(|e| e.id <= after);
        g.buf
            .range(start..)
            .filter(|e| sites.admits(&e.alert.site_id))
            .cloned()
            .collect()
    }

    /// What a new stream sends first, and the id its live alerts start after: with
    /// `Last-Event-ID` (`last`), every held alert of `sites` above it, and `last`; without, the
    /// newest `backlog` alerts of `sites` and the id of the newest alert held (of any site).
    /// One lock, so no alert falls between the two.
    pub fn connect(
        &self,
        last: Option<u64>,
        backlog: usize,
        sites: &Sites,
    ) -> (Vec<Arc<BoardEvent>>, u64) {
        // A quiet hub publishes nothing that would prune it: expired alerts go here too.
        if let Ok(mut g) = self.inner.lock() {
            self.prune(&mut g, chrono::Utc::now().timestamp_millis());
        }
        match last {
            Some(id) => (self.after(id, sites), id),
            None => {
                let Ok(g) = self.inner.lock() else {
                    return (Vec::new(), 0);
                };
                let mut v: Vec<_> = g
                    .buf
                    .iter()
                    .rev()
                    .filter(|e| sites.admits(&e.alert.site_id))
                    .take(backlog)
                    .cloned()
                    .collect();
                v.reverse();
                (v, g.last_id)
            }
        }
    }

    /// The newest `n` held alerts of `sites`, oldest first.
    pub fn newest(&self, n: usize, sites: &Sites) -> Vec<Arc<BoardEvent>> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        let mut v: Vec<_> = g
            .buf
            .iter()
            .rev()
            .filter(|e| sites.admits(&e.alert.site_id))
            .take(n)
            .cloned()
            .collect();
        v.reverse();
        v
    }

    /// True when an alert for `plate` at one of `sites` is held (a patrol may open the
    /// evidence of the alerts on its board).
    pub fn holds_plate_at(&self, plate: &str, sites: &[String]) -> bool {
        let Ok(g) = self.inner.lock() else {
            return false;
        };
        g.buf
            .iter()
            .any(|e| e.alert.plate == plate && sites.iter().any(|s| *s == e.alert.site_id))
    }

    /// Alerts held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.buf.len()).unwrap_or(0)
    }

    /// True when no alert is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver woken at each publish (and at [`AlertHub::close`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Ends every stream (the server is stopping).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.send_modify(|_| {});
    }

    /// True once [`AlertHub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Reads the committed `alerts` files not read yet and publishes their rows (module doc).
pub struct AlertsTablePoller {
    root: PathBuf,
    read: HashSet<PathBuf>,
    /// Modification times of the `alerts` directory and its partition directories at the
    /// last pass: a commit creates its files there and renames them into view, which changes
    /// them, so an unchanged stamp means no new file and the manifest is not read again
    /// (it grows by one entry per commit of every writer).
    stamp: Option<Vec<(PathBuf, Option<std::time::SystemTime>)>>,
    first: bool,
    retention_ms: i64,
}

impl AlertsTablePoller {
    /// A poller over the tables under `root`; its first [`AlertsTablePoller::poll`] seeds
    /// with the alerts read within `retention` before now.
    pub fn new(root: &Path, retention: Duration) -> AlertsTablePoller {
        AlertsTablePoller {
            root: root.to_path_buf(),
            read: HashSet::new(),
            stamp: None,
            first: true,
            retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// One pass: lists the committed files of `alerts` (`query::files`), reads the new ones
    /// and publishes their rows in read-time order. Returns the alerts offered. Errors: an
    /// unreadable manifest or file (the file is tried again next pass).
    pub fn poll(&mut self, hub: &AlertHub) -> anyhow::Result<usize> {
        let stamp = super::lake::dir_stamp(&self.root.join(crate::schema::ALERTS));
        if self.stamp.as_ref() == Some(&stamp) {
            return Ok(0);
        }
        let files = crate::query::files::table_files(&self.root, crate::schema::ALERTS)?;
        let mut rows = Vec::new();
        for f in files.files {
            if self.read.contains(&f) {
                continue;
            }
            rows.extend(read_alerts_file(&f)?);
            self.read.insert(f);
        }
        if self.first {
            let cut = chrono::Utc::now().timestamp_millis() - self.retention_ms;
            rows.retain(|r| r.seen_at_ms >= cut);
            self.first = false;
        }
        rows.sort_by(|a, b| (a.seen_at_ms, &a.detection_id).cmp(&(b.seen_at_ms, &b.detection_id)));
        let n = rows.len();
        if n > 0 {
            hub.publish(rows);
        }
        // Taken before the listing: a file renamed into view after it changes the stamp again.
        self.stamp = Some(stamp);
        Ok(n)
    }
}

/// The `entrance_alert` rows of one `alerts` Parquet file.
fn read_alerts_file(path: &Path) -> anyhow::Result<Vec<NewAlert>> {
    use datafusion::arrow::array::{Array, AsArray, ListArray, StringArray};
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        let s = |name: &str| -> anyhow::Result<&StringArray> {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| anyhow::anyhow!("{}: no text column {name}", path.display()))
        };
        let (det, kind, local, plate, color, vt, site) = (
            s("detection_id")?,
            s("kind")?,
            s("seen_at_local")?,
            s("plate")?,
            s("plate_color")?,
            s("vehicle_type")?,
            s("site_id")?,
        );
        let seen = b
            .column_by_name("seen_at")
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| anyhow::anyhow!("{}: no seen_at column", path.display()))?;
        let reasons = b
            .column_by_name("reasons")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
            .ok_or_else(|| anyhow::anyhow!("{}: no reasons column", path.display()))?;
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            if kind.value(i) != "entrance_alert" {
                continue;
            }
            let r = reasons.value(i);
            let r = r.as_string::<i32>();
            out.push(NewAlert {
                detection_id: det.value(i).to_string(),
                plate: plate.value(i).to_string(),
                plate_color: opt(color, i),
                vehicle_type: opt(vt, i),
                site_id: site.value(i).to_string(),
                seen_at_ms: seen.value(i),
                local_time: local.value(i).to_string(),
                reasons: (0..r.len()).map(|j| r.value(j).to_string()).collect(),
            });
        }
    }
    Ok(out)
}

/// Runs the poller every `every` until the hub closes (a tokio task; file reads on the
/// blocking pool). A failing pass is logged once until one succeeds again.
pub async fn poll_alerts_table(
    root: PathBuf,
    hub: Arc<AlertHub>,
    every: Duration,
    retention: Duration,
) {
    let poller = Arc::new(Mutex::new(AlertsTablePoller::new(&root, retention)));
    let mut failing = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !hub.is_closed() {
        tick.tick().await;
        let (p, h) = (poller.clone(), hub.clone());
        let r = tokio::task::spawn_blocking(move || match p.lock() {
            Ok(mut p) => p.poll(&h),
            Err(_) => Ok(0),
        })
        .await;
        match r {
            Ok(Ok(_)) => failing = false,
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!("board: reading the alerts table failed (retrying): {e:#}");
                }
                failing = true;
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(det: &str, site: &str) -> NewAlert {
        NewAlert {
            detection_id: det.into(),
            plate: "冀A12345".into(),
            plate_color: Some("yellow".into()),
            vehicle_type: Some("H11".into()),
            site_id: site.into(),
            seen_at_ms: 1_790_814_600_000,
            local_time: "2026-10-01 08:30:00+08:00".into(),
            reasons: vec!["china3-diesel".into()],
        }
    }

    #[test]
    fn ids_increase_repeats_are_dropped_and_the_buffer_is_bounded() {
        let hub = AlertHub::new(3, Duration::from_secs(60));
        let t = 1_790_814_600_000;
        // Two alerts in the same millisecond: t·1000 µs, then + 1.
        let ids = hub.publish_at(vec![alert("a", "E1"), alert("b", "E2")], t);
        assert_eq!(ids, vec![t as u64 * 1000, t as u64 * 1000 + 1]);
        // A clock that went back still gives a larger id.
        let ids = hub.publish_at(vec![alert("c", "E1"), alert("a", "E1")], t - 5);
        assert_eq!(ids, vec![t as u64 * 1000 + 2], "a is held: not again");
        let e1 = Sites::Only(["E1".to_string()].into());
        let got: Vec<_> = hub
            .after(0, &e1)
            .iter()
            .map(|e| e.alert.detection_id.clone())
            .collect();
        assert_eq!(got, ["a", "c"]);
        assert_eq!(hub.after(t as u64 * 1000, &Sites::All).len(), 2);
        assert_eq!(hub.newest(1, &e1)[0].alert.detection_id, "c");
        // A fourth alert pushes out the oldest (cap 3); after 60 s all but the new one go.
        hub.publish_at(vec![alert("d", "E1")], t + 1);
        assert_eq!(hub.len(), 3);
        assert!(!hub.holds_plate_at("冀A12345", &["E9".into()]));
        assert!(hub.holds_plate_at("冀A12345", &["E2".into()]));
        hub.publish_at(vec![alert("e", "E1")], t + 61_000);
        let left: Vec<_> = hub
            .after(0, &Sites::All)
            .iter()
            .map(|e| e.alert.detection_id.clone())
            .collect();
        assert_eq!(left, ["e"]);
        // Once pushed out, a detection id is accepted again.
        assert_eq!(hub.publish_at(vec![alert("a", "E1")], t + 61_001).len(), 1);
    }

    #[test]
    fn the_event_in_plain_words() {
        let hub = AlertHub::new(10, Duration::from_secs(60));
        hub.publish_at(vec![alert("a", "C130102001")], 1);
        let v = hub.after(0, &Sites::All)[0].to_json();
        assert_eq!(v["reason_zh"], "国三柴油货车（禁行）");
        assert_eq!(v["reason_en"], "China III diesel truck (banned)");
        assert_eq!(v["plate_color_zh"], "黄牌");
        // 冀 is E5 86 80 in UTF-8.
        assert_eq!(v["evidence"], "/api/plates/%E5%86%80A12345");
        assert_eq!(v["site"], "C130102001");
        assert_eq!(v["local_time"], "2026-10-01 08:30:00+08:00");
        assert_eq!(v["id"], 1000);
    }
}
