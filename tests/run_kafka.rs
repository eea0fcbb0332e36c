//! Streaming run against Kafka-protocol brokers: rdkafka's in-process MockCluster (several
//! partitions, a consumer group, offset commits, broker outage), a child process killed with
//! SIGKILL, and — when PLUMEWATCH_TEST_BROKER is set — a real broker process (tansu).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use plumewatch::run::config::RunConfig;

/// Produces keyed records; waits until all are delivered.
fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for (k, v) in records {
        let mut rec = BaseRecord::to(topic).key(k.as_str()).payload(v.as_slice());
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

/// SYNTHETIC RSD passes keyed by plate (pass id unique), from the generator.
fn passes(n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let fleet = plumewatch::synth::rsd::fleet((n / 20).max(100), seed);
    let mut buf = Vec::new();
    plumewatch::synth::rsd::write_passes(&mut buf, &fleet, n, 5, seed).unwrap();
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (v["plate"].as_str().unwrap_or("").to_string(), l.to_vec())
        })
        .collect()
}

/// SYNTHETIC OBD samples of a labelled fleet keyed by VIN.
fn obd_samples(vehicles: usize, minutes: u32) -> Vec<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    plumewatch::synth::obd::write_ndjson(&mut buf, vehicles, minutes, 3).unwrap();
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (v["vin"].as_str().unwrap().to_string(), l.to_vec())
        })
        .collect()
}

fn config(
    tables: &Path,
    bootstrap: &str,
    group: &str,
    instance: &str,
    topics: &[(&str, &str)],
    idle_ms: u64,
) -> RunConfig {
    let topics: Vec<String> = topics
        .iter()
        .map(|(s, t)| format!("{{ stream = \"{s}\", topic = \"{t}\" }}"))
        .collect();
    let text = format!(
        "tables = {:?}\ninstance_id = \"{instance}\"\nidle_exit_ms = {idle_ms}\n[commit]\ninterval_ms = 300\n[kafka]\nbrokers = \"{bootstrap}\"\ngroup = \"{group}\"\ntopics = [{}]\n",
        tables.display().to_string(),
        topics.join(", ")
    );
    toml::from_str(&text).unwrap()
}

fn ids(dir: &Path, q: &str) -> Vec<String> {
    let mut v: Vec<String> = rows(&sql(dir, q))
        .into_iter()
        .map(|r| r.values().next().unwrap().clone().unwrap())
        .collect();
    v.sort();
    v
}

fn run_to_idle(cfg: RunConfig) -> plumewatch::run::RunSummary {
    plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap()
}

#[test]
fn mock_cluster_two_instances_write_what_one_writes() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("rsd", 4, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let recs = passes(6000, 11);
    produce(&bs, "rsd", &recs);
    let t = tempfile::tempdir().unwrap();
    let one = t.path().join("one");
    let two = t.path().join("two");
    let s = run_to_idle(config(&one, &bs, "g-one", "solo", &[("rsd", "rsd")], 3000));
    assert_eq!(s.records_in, 6000);
    let a = one.clone();
    let b = two.clone();
    let bs2 = bs.clone();
    let h1 = std::thread::spawn(move || {
        run_to_idle(config(&b, &bs2, "g-two", "i1", &[("rsd", "rsd")], 4000))
    });
    std::thread::sleep(Duration::from_millis(300));
    let s2 = run_to_idle(config(&two, &bs, "g-two", "i2", &[("rsd", "rsd")], 4000));
    let s1 = h1.join().unwrap();
    println!(
        "instance 1: {} records, instance 2: {} records",
        s1.records_in, s2.records_in
    );
    // Offsets were recorded to the group (for lag monitoring) after the manifest.
    let entries = plumewatch::sink::manifest::read_all(&two).unwrap();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for e in &entries {
        for (k, p) in &e.positions {
            let x = last.entry(k.to_string()).or_insert(0);
            *x = (*x).max(p.next);
        }
    }
    let summary: Vec<_> = entries
        .iter()
        .map(|e| (e.instance.clone(), e.seq, e.positions.clone()))
        .collect();
    assert_eq!(last.values().sum::<i64>(), 6000, "{last:?} {summary:?}");
    let ids_one = ids(&a, "SELECT pass_id FROM rsd_passes");
    let ids_two = ids(&two, "SELECT pass_id FROM rsd_passes");
    assert_eq!(ids_one.len(), 6000);
    assert_eq!(
        ids_one, ids_two,
        "two instances together write exactly the rows one writes"
    );
    let d1 = ids(&a, "SELECT detection_id FROM detections");
    let d2 = ids(&two, "SELECT detection_id FROM detections");
    assert_eq!(d1, d2);
}

#[test]
fn mock_cluster_broker_outage_loses_nothing() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("rsd", 2, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let recs = passes(8000, 12);
    produce(&bs, "rsd", &recs[..4000]);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tables");
    let cfg = config(&dir, &bs, "g-outage", "solo", &[("rsd", "rsd")], 15_000);
    let h = std::thread::spawn(move || run_to_idle(cfg));
    std::thread::sleep(Duration::from_millis(1500));
    mock.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    mock.broker_up(1).unwrap();
    produce(&bs, "rsd", &recs[4000..]);
    let s = h.join().unwrap();
    assert_eq!(s.records_in, 8000);
    let got = ids(&dir, "SELECT pass_id FROM rsd_passes");
    let mut want: Vec<String> = recs
        .iter()
        .map(|(_, v)| {
            serde_json::from_slice::<serde_json::Value>(v).unwrap()["pass_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

fn spawn_run(cfg_path: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills `plumewatch run --config cfg` with SIGKILL after random waits in `wait_ms`, at least
/// `min_kills` times, restarting it each time; then lets it finish. Returns the kill count.
fn kill_restart_loop(
    cfg: &Path,
    min_kills: usize,
    wait_ms: std::ops::Range<u64>,
    seed: u64,
) -> usize {
    let mut x = seed | 1;
    let mut kills = 0;
    while kills < min_kills {
        let mut child = spawn_run(cfg);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(
            wait_ms.start + x % (wait_ms.end - wait_ms.start),
        ));
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill: the input is done
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let status = spawn_run(cfg).wait().unwrap();
    assert!(status.success());
    kills
}

fn assert_same_tables(reference: &Path, killed: &Path) {
    for (q, what) in [
        ("SELECT pass_id FROM rsd_passes", "rsd_passes"),
        ("SELECT detection_id FROM detections", "detections"),
        (
            "SELECT concat(vin, '@', CAST(CAST(sampled_at AS BIGINT) AS VARCHAR)) FROM obd_samples",
            "obd_samples",
        ),
    ] {
        let a = ids(reference, q);
        let b = ids(killed, q);
        assert_eq!(a.len(), b.len(), "{what}: nothing lost, nothing duplicated");
        assert!(a == b, "{what} differs from the uninterrupted run");
    }
}

#[test]
fn crash_safety_sigkill_file_sources_equal_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    // 300,000 SYNTHETIC passes and a labelled OBD fleet (stateful detectors) as file sources.
    let passes_file = t.path().join("passes.ndjson");
    let fleet = plumewatch::synth::rsd::fleet(5000, 13);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&passes_file).unwrap());
    plumewatch::synth::rsd::write_passes(&mut w, &fleet, 300_000, 10, 13).unwrap();
    drop(w);
    let obd_file = t.path().join("obd.ndjson");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&obd_file).unwrap());
    let obd_n = plumewatch::synth::obd::write_ndjson(&mut w, 12, 30, 3)
        .unwrap()
        .samples;
    drop(w);
    let conf = |tables: &Path| {
        format!(
            "tables = {:?}\ninstance_id = \"k\"\nidle_exit_ms = 500\n[commit]\ninterval_ms = 150\n[[files]]\nstream = \"rsd\"\npath = {:?}\n[[files]]\nstream = \"obd\"\npath = {:?}\n",
            tables.display().to_string(),
            passes_file.display().to_string(),
            obd_file.display().to_string()
        )
    };
    let reference = t.path().join("reference");
    let s = run_to_idle(toml::from_str(&conf(&reference)).unwrap());
    assert_eq!(s.records_in, 300_000 + obd_n);
    let killed = t.path().join("killed");
    let cfg = t.path().join("killed.toml");
    std::fs::write(&cfg, conf(&killed)).unwrap();
    let started = Instant::now();
    let kills = kill_restart_loop(&cfg, 10, 60..400, 0x2545F4914F6CDD1D);
    println!(
        "killed {kills} times in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        kills >= 10,
        "only {kills} kills: the run finished too fast to test"
    );
    assert_same_tables(&reference, &killed);
    assert_eq!(
        ids(&killed, "SELECT pass_id FROM rsd_passes").len(),
        300_000
    );
    assert!(
        scalar_i64(
            &killed,
            "SELECT count(*) FROM detections WHERE source_stream = 'obd'"
        ) > 0
    );
}

#[test]
fn crash_safety_sigkill_kafka_equals_uninterrupted_run() {
    let mock = MockCluster::new(1).unwrap();
    // The mock broker keeps ~5 MB per partition: spread the input over partitions.
    mock.create_topic("rsd", 6, 1).unwrap();
    mock.create_topic("obd", 4, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let recs = passes(30_000, 14);
    produce(&bs, "rsd", &recs);
    let obd = obd_samples(8, 30);
    produce(&bs, "obd", &obd);
    let total = (recs.len() + obd.len()) as u64;
    let t = tempfile::tempdir().unwrap();
    let topics = [("rsd", "rsd"), ("obd", "obd")];
    let reference = t.path().join("reference");
    let s = run_to_idle(config(&reference, &bs, "g-ref", "ref", &topics, 3000));
    assert_eq!(s.records_in, total);
    let killed = t.path().join("killed");
    let cfg = t.path().join("killed.toml");
    let text = format!(
        "tables = {:?}\ninstance_id = \"k\"\nidle_exit_ms = 3000\n[commit]\ninterval_ms = 200\n[kafka]\nbrokers = \"{bs}\"\ngroup = \"g-kill\"\ntopics = [{{ stream = \"rsd\", topic = \"rsd\" }}, {{ stream = \"obd\", topic = \"obd\" }}]\n",
        killed.display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    // A restarted member needs ~3 s to rejoin the group before it consumes.
    let kills = kill_restart_loop(&cfg, 10, 3000..3600, 0x9E3779B97F4A7C15);
    assert!(kills >= 10, "only {kills} kills");
    assert_same_tables(&reference, &killed);
    assert_eq!(ids(&killed, "SELECT pass_id FROM rsd_passes").len(), 30_000);
}

#[test]
fn entrance_alert_for_watchlisted_plate_only() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 2, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tables");
    // Registry with a China III diesel truck, and one sighting of it already in the tables.
    let reg = t.path().join("vehicles.csv");
    std::fs::write(
        &reg,
        "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n冀A12345,yellow,LVIN0000000000001,diesel,国III,H11,2011-05-01\n冀B54321,yellow,LVIN0000000000002,diesel,国VI,H11,2022-05-01\n",
    )
    .unwrap();
    let sighting = t.path().join("pass.ndjson");
    std::fs::write(&sighting, "{\"pass_id\":\"p1\",\"passed_at\":\"2026-10-02T08:00:00+08:00\",\"site_id\":\"A1\",\"plate\":\"冀A12345\",\"fuel\":\"diesel\",\"speed_kmh\":40,\"accel_mps2\":0.2,\"co_co2_ratio\":0.001,\"no_co2_ratio\":0.003}\n").unwrap();
    let o = dir.to_str().unwrap();
    for (stream, fmt, f) in [("vehicles", "csv", &reg), ("rsd", "ndjson", &sighting)] {
        let out = Command::new(env!("CARGO_BIN_EXE_plumewatch"))
            .args([
                "ingest",
                "--stream",
                stream,
                "--format",
                fmt,
                "--out",
                o,
                f.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let read = |id: &str, plate: &str, site: &str| {
        (plate.to_string(), format!("{{\"read_id\":\"{id}\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"{site}\",\"plate\":\"{plate}\"}}").into_bytes())
    };
    produce(
        &bs,
        "plates",
        &[
            read("r1", "冀A12345", "ENTRANCE-1"),
            read("r2", "冀B54321", "ENTRANCE-1"),
            read("r3", "冀A12345", "INNER-9"),
        ],
    );
    let alerts = t.path().join("alerts.ndjson");
    let mut cfg = config(&dir, &bs, "g-alert", "solo", &[("plates", "plates")], 2000);
    cfg.alerts.ndjson = Some(alerts.display().to_string());
    cfg.sites.urban_entrances = vec!["ENTRANCE-1".into()];
    let s = run_to_idle(cfg);
    assert_eq!(s.records_in, 3);
    let text = std::fs::read_to_string(&alerts).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let entrance: Vec<_> = lines
        .iter()
        .filter(|a| a["kind"] == "entrance_alert")
        .collect();
    assert_eq!(entrance.len(), 1, "{text}");
    assert_eq!(entrance[0]["plate"], "冀A12345");
    assert_eq!(entrance[0]["site_id"], "ENTRANCE-1");
    assert!(
        entrance[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "china3-diesel")
    );
    // The unlisted plate (China VI) gives no alert of any kind.
    assert!(!text.contains("冀B54321"));
}

#[test]
fn real_broker_process_when_configured() {
    let Ok(bs) = std::env::var("PLUMEWATCH_TEST_BROKER") else {
        println!("skipped: PLUMEWATCH_TEST_BROKER not set (.ci/run starts tansu and sets it)");
        return;
    };
    let topic = format!("rsd-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    let recs = passes(3000, 21);
    produce(&bs, &topic, &recs);
    let t = tempfile::tempdir().unwrap();
    let one = t.path().join("one");
    let two = t.path().join("two");
    let s = run_to_idle(config(
        &one,
        &bs,
        &format!("g1-{topic}"),
        "solo",
        &[("rsd", &topic)],
        4000,
    ));
    assert_eq!(s.records_in, 3000);
    let b = two.clone();
    let bs2 = bs.clone();
    let topic2 = topic.clone();
    let h = std::thread::spawn(move || {
        run_to_idle(config(
            &b,
            &bs2,
            &format!("g2-{topic2}"),
            "i1",
            &[("rsd", &topic2)],
            5000,
        ))
    });
    std::thread::sleep(Duration::from_millis(300));
    run_to_idle(config(
        &two,
        &bs,
        &format!("g2-{topic}"),
        "i2",
        &[("rsd", &topic)],
        5000,
    ));
    h.join().unwrap();
    assert_eq!(
        ids(&one, "SELECT pass_id FROM rsd_passes"),
        ids(&two, "SELECT pass_id FROM rsd_passes")
    );
    assert_eq!(ids(&one, "SELECT pass_id FROM rsd_passes").len(), 3000);
}
