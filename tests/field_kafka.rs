//! Streaming through broker faults (issue 10 items 1, 2, 3, 7): a fetch answered with a leader
//! change, re-created topics, offsets outside the broker's watermarks, outages longer than
//! the session timeout, tombstones and empty values. MockCluster where it supports the
//! operation; a real broker process (tansu) when PLUMEWATCH_TEST_BROKER is set.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use plumewatch::run::config::RunConfig;

/// Produces `(key, value)` records (value `None` = tombstone); waits until delivered.
fn produce(bootstrap: &str, topic: &str, records: &[(String, Option<Vec<u8>>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (k, v) in records {
        let mut rec = BaseRecord::to(topic).key(k.as_str());
        if let Some(v) = v {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// `n` plate reads with read ids `<tag>-<i>` (SYNTHETIC plates).
fn reads(tag: &str, n: usize) -> Vec<(String, Option<Vec<u8>>)> {
    (0..n)
        .map(|i| {
            let plate = format!("京A{:05}", i % 1000);
            let v = format!(
                "{{\"read_id\":\"{tag}-{i}\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"S1\",\"plate\":\"{plate}\"}}"
            );
            (plate, Some(v.into_bytes()))
        })
        .collect()
}

fn config_text(tables: &Path, bootstrap: &str, group: &str, topic: &str, idle_ms: u64) -> String {
    format!(
        "tables = {:?}\ninstance_id = \"solo\"\nidle_exit_ms = {idle_ms}\n[commit]\ninterval_ms = 200\n[kafka]\nbrokers = \"{bootstrap}\"\ngroup = \"{group}\"\ntopics = [{{ stream = \"plates\", topic = \"{topic}\" }}]\n",
        tables.display().to_string()
    )
}

fn config(tables: &Path, bootstrap: &str, group: &str, topic: &str, idle_ms: u64) -> RunConfig {
    toml::from_str(&config_text(tables, bootstrap, group, topic, idle_ms)).unwrap()
}

fn run_to_idle(cfg: RunConfig) -> plumewatch::run::RunSummary {
    plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap()
}

fn spawn_run(cfg_path: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn read_ids(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = rows(&sql(dir, "SELECT read_id FROM plate_reads"))
        .into_iter()
        .map(|r| r["read_id"].clone().unwrap())
        .collect();
    v.sort();
    v
}

fn want_ids(tag: &str, r: std::ops::Range<usize>) -> Vec<String> {
    let mut v: Vec<String> = r.map(|i| format!("{tag}-{i}")).collect();
    v.sort();
    v
}

fn source_resets(dir: &Path) -> Vec<std::collections::HashMap<String, Option<String>>> {
    rows(&sql(
        dir,
        "SELECT kind, source, CAST(expected_offset AS VARCHAR) AS expected_offset, CAST(low_watermark AS VARCHAR) AS low_watermark, CAST(high_watermark AS VARCHAR) AS high_watermark, CAST(resumed_offset AS VARCHAR) AS resumed_offset, CAST(records_lost AS VARCHAR) AS records_lost, expected, found, action FROM source_reset ORDER BY reset_at",
    ))
}

fn get(r: &std::collections::HashMap<String, Option<String>>, k: &str) -> Option<String> {
    r.get(k).cloned().flatten()
}

/// First life of topic `plates`: 500 reads `old-*`, all consumed and committed.
fn first_life(t: &Path) -> std::path::PathBuf {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    produce(&bs, "plates", &reads("old", 500));
    let dir = t.join("tables");
    let s = run_to_idle(config(&dir, &bs, "g1", "plates", 2000));
    assert_eq!(s.records_in, 500);
    dir
}

/// Item 2, first case: the manifest says offset 500; the topic was re-created and holds 100
/// records. Before: `run` read nothing and said nothing. Now: all 100 are read and a
/// `source_reset` row says what happened.
#[test]
fn mock_recreated_topic_with_fewer_records_is_read_from_its_start_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let dir = first_life(t.path());
    // The re-created topic: same name, a new log (a new cluster stands in for it).
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    produce(&bs, "plates", &reads("new", 100));
    let s = run_to_idle(config(&dir, &bs, "g2", "plates", 2000));
    assert_eq!(s.records_in, 100);
    assert_eq!(s.source_resets, 1);
    let mut want = want_ids("old", 0..500);
    want.extend(want_ids("new", 0..100));
    want.sort();
    assert_eq!(read_ids(&dir), want);
    let r = source_resets(&dir);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        get(&r[0], "kind").as_deref(),
        Some("offset_above_high_watermark")
    );
    assert_eq!(get(&r[0], "source").as_deref(), Some("kafka:plates/0"));
    assert_eq!(get(&r[0], "expected_offset").as_deref(), Some("500"));
    assert_eq!(get(&r[0], "low_watermark").as_deref(), Some("0"));
    assert_eq!(get(&r[0], "high_watermark").as_deref(), Some("100"));
    assert_eq!(get(&r[0], "resumed_offset").as_deref(), Some("0"));
    assert_eq!(get(&r[0], "records_lost"), None);
    // A restart after the reset resumes at 100 of the new topic: no second reset, no rows.
    let s = run_to_idle(config(&dir, &bs, "g3", "plates", 1500));
    assert_eq!((s.records_in, s.source_resets), (0, 0));
    produce(&bs, "plates", &reads("new", 130)[100..].to_vec());
    let s = run_to_idle(config(&dir, &bs, "g4", "plates", 1500));
    assert_eq!((s.records_in, s.source_resets), (30, 0));
    assert_eq!(source_resets(&dir).len(), 1);
    assert_eq!(read_ids(&dir).len(), 630);
}

/// Item 2, second case: the re-created topic holds 600 records, so offset 500 exists in it.
/// Before: `run` read only 500..599 of the new topic. Now: the record before the position
/// (offset 499) differs from the one consumed, so the topic is read from its start.
#[test]
fn mock_recreated_topic_with_more_records_is_detected_by_the_last_record() {
    let t = tempfile::tempdir().unwrap();
    let dir = first_life(t.path());
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    produce(&bs, "plates", &reads("new", 600));
    let s = run_to_idle(config(&dir, &bs, "g2", "plates", 2000));
    assert_eq!(s.records_in, 600);
    let mut want = want_ids("old", 0..500);
    want.extend(want_ids("new", 0..600));
    want.sort();
    assert_eq!(read_ids(&dir), want);
    let r = source_resets(&dir);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(get(&r[0], "kind").as_deref(), Some("topic_recreated"));
    assert_eq!(get(&r[0], "expected_offset").as_deref(), Some("500"));
    assert_eq!(get(&r[0], "resumed_offset").as_deref(), Some("0"));
    assert_eq!(get(&r[0], "high_watermark").as_deref(), Some("600"));
    assert!(
        get(&r[0], "found")
            .unwrap()
            .contains("different record at offset 499")
    );
}

/// The same log resumed: the record before the position matches, nothing is reported and
/// nothing is read twice (the check reads offset 499 again and drops it).
#[test]
fn mock_same_topic_resumes_without_a_reset() {
    let t = tempfile::tempdir().unwrap();
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    produce(&bs, "plates", &reads("a", 500));
    let dir = t.path().join("tables");
    assert_eq!(
        run_to_idle(config(&dir, &bs, "g1", "plates", 1500)).records_in,
        500
    );
    produce(&bs, "plates", &reads("b", 40));
    let s = run_to_idle(config(&dir, &bs, "g2", "plates", 1500));
    assert_eq!((s.records_in, s.source_resets), (40, 0));
    let mut want = want_ids("a", 0..500);
    want.extend(want_ids("b", 0..40));
    want.sort();
    assert_eq!(read_ids(&dir), want);
    assert!(source_resets(&dir).is_empty());
}

/// Item 7: a tombstone and an empty value are quarantined with distinct reasons (before,
/// both were "empty line"); the rows and the quarantine add up to the records in.
#[test]
fn mock_tombstone_and_empty_value_have_distinct_reasons() {
    let t = tempfile::tempdir().unwrap();
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let mut recs = reads("a", 2);
    recs.insert(1, ("京A00009".into(), None));
    recs.push(("京A00008".into(), Some(Vec::new())));
    produce(&bs, "plates", &recs);
    let dir = t.path().join("tables");
    let s = run_to_idle(config(&dir, &bs, "g1", "plates", 1500));
    assert_eq!((s.records_in, s.quarantined), (4, 2));
    assert_eq!(read_ids(&dir), want_ids("a", 0..2));
    let q = rows(&sql(
        &dir,
        "SELECT source_file, CAST(source_offset AS VARCHAR) AS off, reason FROM quarantine ORDER BY source_offset",
    ));
    assert_eq!(q.len(), 2);
    assert_eq!(get(&q[0], "source_file").as_deref(), Some("kafka:plates/0"));
    assert_eq!(get(&q[0], "off").as_deref(), Some("1"));
    assert!(get(&q[0], "reason").unwrap().contains("tombstone"), "{q:?}");
    assert_eq!(get(&q[1], "off").as_deref(), Some("3"));
    assert!(
        get(&q[1], "reason").unwrap().contains("empty value"),
        "{q:?}"
    );
}

/// Item 3: a broker outage longer than the session timeout (10 s). Before: the run exited 1
/// ("partition assignment lost") after about 10 s. Now it drops what it had not committed,
/// rejoins, and resumes from the manifest: every record exactly once.
#[test]
fn mock_outage_longer_than_session_timeout_is_ridden_through() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 2, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let recs = reads("r", 3000);
    produce(&bs, "plates", &recs[..1500]);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tables");
    let cfg = config(&dir, &bs, "g-long-outage", "plates", 25_000);
    let d = dir.clone();
    let h = std::thread::spawn(move || plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))));
    let t0 = Instant::now();
    while committed_offset(&d, "plates/0") + committed_offset(&d, "plates/1") < 1500 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never committed 1500"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    mock.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(12));
    // What the coordinator answers a member whose session expired during the outage.
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Heartbeat,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID; 3],
    );
    mock.broker_up(1).unwrap();
    produce(&bs, "plates", &recs[1500..]);
    let s = h.join().unwrap().expect("the run rides through the outage");
    println!("{s}");
    assert_eq!(read_ids(&dir), want_ids("r", 0..3000));
    assert!(
        s.restarts >= 1,
        "the assignment was lost and the run started over"
    );
    assert_eq!(s.records_in, 3000, "committed work counted once");
}

/// Item 7: per-partition lag and seconds since the last message on `/metrics`.
#[test]
fn mock_metrics_show_partition_lag_and_idle_time() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    produce(&bs, "plates", &reads("a", 300));
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tables");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(&dir, &bs, "g-metrics", "plates", 8000);
    cfg.metrics.listen = Some(format!("127.0.0.1:{port}"));
    let h = std::thread::spawn(move || run_to_idle(cfg));
    let fetch = || -> String {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    };
    // Wait until everything is committed and the statistics (every 2 s) have the watermark.
    let t0 = Instant::now();
    let text = loop {
        std::thread::sleep(Duration::from_millis(500));
        let m = fetch();
        if m.contains("plumewatch_partition_lag{partition=\"plates/0\"} 0") {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "no lag 0 in:\n{m}");
    };
    assert!(
        text.contains("plumewatch_partition_seconds_since_last_message{partition=\"plates/0\"}")
    );
    assert!(text.contains("plumewatch_source_resets_total 0"));
    assert!(text.contains("plumewatch_partition_stalls_total 0"));
    h.join().unwrap();
}

fn admin(bs: &str) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bs)
        .create()
        .unwrap()
}

fn create_topic(bs: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(admin(bs).create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    println!("create {topic}: {r:?}");
}

fn delete_topic(bs: &str, topic: &str) -> bool {
    use rdkafka::admin::AdminOptions;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(admin(bs).delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    println!("delete {topic}: {r:?}");
    r.iter().all(|x| x.is_ok())
}

fn committed_offset(dir: &Path, key: &str) -> i64 {
    let entries = plumewatch::sink::manifest::read_all(dir).unwrap();
    let id: plumewatch::source::SourceId = format!("kafka:{key}").parse().unwrap();
    plumewatch::sink::manifest::resume_view(&entries, "solo")
        .positions
        .get(&id)
        .map_or(0, |p| p.next)
}

/// Item 1 on a real broker process: the issue's steps (200 passes, `run` running, 200 rows
/// committed, topic deleted and re-created, 400 passes produced). Before: SIGSEGV (exit 139)
/// 4 times out of 4. Now: the run goes on, says what happened in `source_reset`, and reads
/// the new topic from its start.
#[test]
fn real_broker_topic_recreated_while_running() {
    let Ok(bs) = std::env::var("PLUMEWATCH_TEST_BROKER") else {
        println!("skipped: PLUMEWATCH_TEST_BROKER not set (.ci/run starts tansu and sets it)");
        return;
    };
    let topic = format!("recreate-{}", std::process::id());
    create_topic(&bs, &topic, 1);
    produce(&bs, &topic, &reads("a", 200));
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tables");
    let cfg = t.path().join("run.toml");
    std::fs::write(
        &cfg,
        config_text(&dir, &bs, &format!("g-{topic}"), &topic, 20_000),
    )
    .unwrap();
    let log = t.path().join("run.log");
    let mut child = spawn_run(&cfg, &log);
    let t0 = Instant::now();
    while committed_offset(&dir, &format!("{topic}/0")) < 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never committed 200"
        );
        assert!(child.try_wait().unwrap().is_none(), "run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    if !delete_topic(&bs, &topic) {
        let _ = child.kill();
        println!("skipped: the broker does not delete topics");
        return;
    }
    // Longer than the consumer's metadata refresh (5 s): the deletion is seen.
    std::thread::sleep(Duration::from_secs(6));
    create_topic(&bs, &topic, 1);
    produce(&bs, &topic, &reads("b", 400));
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "run ended with {status:?}:\n{}",
        &text[text.len().saturating_sub(4000)..]
    );
    let mut want = want_ids("a", 0..200);
    want.extend(want_ids("b", 0..400));
    want.sort();
    assert_eq!(
        read_ids(&dir),
        want,
        "log:\n{}",
        &text[text.len().saturating_sub(4000)..]
    );
    let r = source_resets(&dir);
    assert!(!r.is_empty(), "no source_reset row");
    assert_eq!(get(&r[0], "resumed_offset").as_deref(), Some("0"));
}

/// The soak (not part of `cargo test`; `scripts/soak.sh` runs it): produced traffic for
/// SOAK_MINUTES (default 30) against a tansu broker it starts itself (memory storage, port
/// SOAK_PORT, default 19192), restarted every SOAK_BROKER_EVERY_S (300 s; a restart of the
/// memory broker re-creates the topic empty), with `plumewatch run` killed (SIGKILL) every
/// SOAK_KILL_EVERY_S (180 s). Checks the final tables: no duplicate and no unknown row;
/// every record of a broker life is present except a tail the broker lost in a restart
/// before `run` read it; every record of the last life is present; a `source_reset` row for
/// each lost position.
#[test]
#[ignore]
fn soak_broker_restarts_and_kills() {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let minutes = env("SOAK_MINUTES", 30);
    let port = env("SOAK_PORT", 19192);
    let broker_every = Duration::from_secs(env("SOAK_BROKER_EVERY_S", 300));
    let kill_every = Duration::from_secs(env("SOAK_KILL_EVERY_S", 180));
    let rate = env("SOAK_RATE", 200);
    let tansu = std::env::var("SOAK_TANSU").unwrap_or_else(|_| {
        let home = std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
        format!("{home}/bin/tansu")
    });
    let bs = format!("127.0.0.1:{port}");
    let work = tempfile::tempdir().unwrap();
    let blog = work.path().join("tansu.log");
    let start_broker = || -> Child {
        let url = format!("tcp://{bs}");
        let c = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&blog)
                    .unwrap(),
            )
            .spawn()
            .expect("tansu (set SOAK_TANSU)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&bs).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        create_topic(&bs, "soak", 2);
        c
    };
    let mut broker = start_broker();
    let life = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // (life, id) of every record the broker acknowledged.
    let acked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    // Every id handed to the producer, acknowledged or not (a batch cut by a broker restart
    // may have landed): a row whose id is not here was never produced.
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let producer = {
        let (bs, life, stop, acked, sent) = (
            bs.clone(),
            life.clone(),
            stop.clone(),
            acked.clone(),
            sent.clone(),
        );
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &bs)
                .set("linger.ms", "5")
                .set("message.timeout.ms", "5000")
                .create()
                .unwrap();
            let mut n = 0u64;
            let per_tick = (rate / 10).max(1);
            // Ticks every 100 ms from a fixed schedule (sleeping 100 ms after each flush gave
            // about half of SOAK_RATE); a tick late by more than a second (broker down) starts
            // the schedule again instead of bursting to catch up.
            let mut next_tick = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let l = life.load(Ordering::SeqCst);
                let mut batch = Vec::new();
                for _ in 0..per_tick {
                    let id = format!("L{l}-{n}");
                    n += 1;
                    let plate = format!("京A{:05}", n % 997);
                    let v = format!(
                        "{{\"read_id\":\"{id}\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"S1\",\"plate\":\"{plate}\"}}"
                    );
                    if p.send(BaseRecord::to("soak").key(&plate).payload(&v))
                        .is_ok()
                    {
                        batch.push(id);
                    }
                }
                sent.lock().unwrap().extend(batch.iter().cloned());
                // Acknowledged only when the whole batch was flushed; a batch cut by a broker
                // restart is not counted (it may or may not have landed).
                if p.flush(Duration::from_secs(5)).is_ok() && life.load(Ordering::SeqCst) == l {
                    acked
                        .lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|i| (l, i)));
                }
                next_tick += Duration::from_millis(100);
                let now = Instant::now();
                if now > next_tick + Duration::from_secs(1) {
                    next_tick = now;
                } else if next_tick > now {
                    std::thread::sleep(next_tick - now);
                }
            }
        })
    };
    let dir = work.path().join("tables");
    let cfg_path = work.path().join("run.toml");
    let mut spawns = 0;
    let mut spawn = |idle_ms: u64| -> Child {
        spawns += 1;
        std::fs::write(
            &cfg_path,
            format!(
                "tables = {:?}\ninstance_id = \"solo\"\nidle_exit_ms = {idle_ms}\n[kafka]\nbrokers = \"{bs}\"\ngroup = \"soak-{spawns}\"\ntopics = [{{ stream = \"plates\", topic = \"soak\" }}]\n",
                dir.display().to_string()
            ),
        )
        .unwrap();
        spawn_run(&cfg_path, &work.path().join(format!("run-{spawns}.log")))
    };
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(minutes * 60);
    let mut run = spawn(600_000);
    let (mut last_kill, mut last_restart) = (Instant::now(), Instant::now());
    let (mut kills, mut restarts) = (0, 0);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(st) = run.try_wait().unwrap() {
            println!("run exited by itself with {st:?}; restarting it");
            run = spawn(600_000);
        }
        if last_kill.elapsed() >= kill_every {
            run.kill().unwrap();
            run.wait().unwrap();
            kills += 1;
            run = spawn(600_000);
            last_kill = Instant::now();
        }
        if last_restart.elapsed() >= broker_every {
            life.fetch_add(1, Ordering::SeqCst);
            broker.kill().unwrap();
            broker.wait().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            broker = start_broker();
            restarts += 1;
            last_restart = Instant::now();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    producer.join().unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    // The last run reads what is left, then exits idle.
    let st = spawn(15_000).wait().unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(st.success(), "final run: {st:?}");
    let got: Vec<String> = rows(&sql(&dir, "SELECT read_id FROM plate_reads"))
        .into_iter()
        .map(|r| r["read_id"].clone().unwrap())
        .collect();
    let got_set: HashSet<&String> = got.iter().collect();
    let acked = acked.lock().unwrap().clone();
    let acked_set: HashSet<&String> = acked.iter().map(|(_, i)| i).collect();
    let last_life = life.load(Ordering::SeqCst);
    let mut per_life: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (l, id) in &acked {
        let e = per_life.entry(*l).or_default();
        e.0 += 1;
        if got_set.contains(id) {
            e.1 += 1;
        }
    }
    let resets = rows(&sql(&dir, "SELECT kind FROM source_reset"));
    println!(
        "soak: {minutes} min, {} records acknowledged, {} rows, {kills} run kills, {restarts} broker restarts, {} source_reset rows",
        acked.len(),
        got.len(),
        resets.len()
    );
    for (l, (a, g)) in &per_life {
        println!(
            "  broker life {l}: {a} acknowledged, {g} in the tables, {} lost with the broker",
            a - g
        );
    }
    assert_eq!(got.len(), got_set.len(), "duplicate rows");
    let sent = sent.lock().unwrap().clone();
    let unacked_landed = got_set
        .iter()
        .filter(|i| !acked_set.contains(**i) && sent.contains(**i))
        .count();
    println!(
        "  {} ids sent, {unacked_landed} rows from batches not acknowledged (cut by a restart, landed anyway)",
        sent.len()
    );
    let unknown: Vec<&&String> = got_set.iter().filter(|i| !sent.contains(**i)).collect();
    assert!(unknown.is_empty(), "rows never produced: {unknown:?}");
    let (a, g) = per_life.get(&last_life).copied().unwrap_or_default();
    assert_eq!(
        a, g,
        "every record of the last broker life is in the tables"
    );
}
