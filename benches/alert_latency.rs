//! Alert latency and sustained consume→commit throughput of `plumewatch run` against an
//! in-process Kafka-protocol broker (rdkafka MockCluster).
//!
//! `cargo bench --bench alert_latency -- [rate_msg_per_s] [seconds]` (defaults 50000, 10).
//! Environment: `BENCH_COMMIT_MS` (commit interval, default 2000), `BENCH_KAFKA_PROPS`
//! (`key=value,…` added to the consumer's librdkafka settings).
//! A producer thread writes ANPR plate reads at a fixed rate into a 4-partition topic; 10 % are
//! watch-listed plates (China III trucks and repeat exceeders of the demo tables) read at an
//! urban entrance, so they raise entrance alerts. Latency is measured from the Kafka message
//! timestamp (set by the producer when it sends) to the alert leaving plumewatch, in the run's
//! HdrHistogram. Prints p50/p99, the consume rate and the commit count.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let tables = tmp.path().join("tables");
    plumewatch::demo::run(&tables).unwrap();
    let limits = plumewatch::limits::LimitSet::default_set();
    let watch = plumewatch::run::build_watchlist(&tables, &limits, &[]).unwrap();
    let listed: Vec<String> = watch.plates.keys().cloned().collect();
    assert!(!listed.is_empty());
    let fleet = plumewatch::synth::rsd::fleet(2000, 99);
    let others: Vec<String> = fleet
        .iter()
        .map(|v| v.plate.clone())
        .filter(|p| !watch.plates.contains_key(p))
        .collect();

    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("plates", 4, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let commit_ms: u64 = std::env::var("BENCH_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // Extra consumer settings, `key=value,key=value` (e.g. `fetch.wait.max.ms=5`).
    let props: String = std::env::var("BENCH_KAFKA_PROPS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let cfg_text = format!(
        "tables = {:?}\nidle_exit_ms = 3000\n[commit]\ninterval_ms = {commit_ms}\n[kafka]\nbrokers = \"{bs}\"\ngroup = \"bench\"\ntopics = [{{ stream = \"plates\", topic = \"plates\" }}]\n[kafka.properties]\n{props}[alerts]\nkinds = [\"entrance_alert\"]\nndjson = \"/dev/null\"\n[sites]\nurban_entrances = [\"ENTRANCE-1\"]\n",
        tables.display().to_string()
    );
    let cfg: plumewatch::run::config::RunConfig = toml::from_str(&cfg_text).unwrap();
    let runner = std::thread::spawn(move || {
        plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap()
    });
    // Let the consumer join the group before the clock starts.
    std::thread::sleep(Duration::from_secs(5));

    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "2000000")
        .create()
        .unwrap();
    let total = rate * secs;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        // Pace: send what is due by now, in 1 ms steps.
        let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let listed_read = sent.is_multiple_of(10);
            let plate = if listed_read {
                &listed[(sent as usize / 10) % listed.len()]
            } else {
                &others[sent as usize % others.len()]
            };
            let site = if listed_read { "ENTRANCE-1" } else { "INNER-2" };
            let payload = format!(
                "{{\"read_id\":\"b{sent}\",\"read_at\":{},\"site_id\":\"{site}\",\"plate\":\"{plate}\",\"confidence_pct\":97.0}}",
                1_790_784_000_000i64 + sent as i64
            );
            let mut rec = BaseRecord::to("plates")
                .key(plate.as_str())
                .payload(&payload);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        p.poll(Duration::from_millis(1));
                    }
                }
            }
            sent += 1;
        }
        p.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let produce_s = t0.elapsed().as_secs_f64();
    let s = runner.join().unwrap();
    println!(
        "produced {total} plate reads in {produce_s:.1} s ({:.0} msg/s offered)",
        total as f64 / produce_s
    );
    println!("{s}");
    println!(
        "alert latency at {rate} msg/s: p50 {:.1} ms, p99 {:.1} ms ({} alerts)",
        s.latency_p50_ms.unwrap_or(f64::NAN),
        s.latency_p99_ms.unwrap_or(f64::NAN),
        s.alerts
    );
}
