//! Sustained consume→commit throughput of `plumewatch run` against an in-process
//! Kafka-protocol broker (rdkafka MockCluster, 64 partitions: the mock broker keeps only about
//! 5 MB per partition and drops older messages, so a pre-filled topic needs many; keep `count`
//! at or below about 300,000).
//!
//! `cargo bench --bench run_throughput -- [stream ...] [count]`: streams among `rsd`,
//! `plates`, `obd`, `frames` (default: all four), `count` records each (default 200000; for
//! `obd`/`frames` it is rounded to whole vehicle-minutes of the SYNTHETIC fleet).
//! The topic is filled first; then one instance consumes it from the start, and throughput is
//! records / (last commit that made rows visible − first record processed), as the run's
//! summary reports it, and records / (last record processed − first). Commits every 500 ms
//! (the consume→commit span ends at a commit tick), tables on a temporary directory.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use plumewatch::decode::hj1239::{FrameScanner, ScanEvent};

/// Keyed messages of one stream (SYNTHETIC data from `plumewatch::synth`).
fn messages(stream: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    let lines = |buf: Vec<u8>, key: &str| -> Vec<(String, Vec<u8>)> {
        buf.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                (v[key].as_str().unwrap_or("").to_string(), l.to_vec())
            })
            .collect()
    };
    let mut buf = Vec::new();
    // The OBD generator writes 1 Hz samples: vehicles × 60 × minutes.
    let vehicles = (count / 600).max(1);
    match stream {
        "rsd" => {
            let fleet = plumewatch::synth::rsd::fleet((count / 20).max(100), 7);
            plumewatch::synth::rsd::write_passes(&mut buf, &fleet, count, 5, 7).unwrap();
            lines(buf, "plate")
        }
        "plates" => {
            let fleet = plumewatch::synth::rsd::fleet((count / 20).max(100), 7);
            plumewatch::synth::rsd::write_plate_reads(&mut buf, &fleet, count, 5, 7).unwrap();
            lines(buf, "plate")
        }
        "obd" => {
            plumewatch::synth::obd::write_ndjson(&mut buf, vehicles, 10, 3).unwrap();
            lines(buf, "vin")
        }
        "frames" => {
            // 10 samples per frame: a tenth as many messages for the same samples.
            plumewatch::synth::obd::write_frames(&mut buf, vehicles * 10, 10, 3).unwrap();
            let mut sc = FrameScanner::new();
            sc.push(&buf);
            let mut out = Vec::new();
            while let Some(ev) = sc.next_event().or_else(|| sc.finish()) {
                if let ScanEvent::Frame { bytes, .. } = ev {
                    // Key: the VIN at bytes 4..21 of the frame header.
                    let vin = String::from_utf8_lossy(&bytes[4..21]).into_owned();
                    out.push((vin, bytes));
                }
            }
            out
        }
        s => panic!("unknown stream {s}: rsd, plates, obd or frames"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let count: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let mut streams: Vec<&str> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err())
        .map(String::as_str)
        .collect();
    if streams.is_empty() {
        streams = vec!["rsd", "plates", "obd", "frames"];
    }
    for stream in streams {
        let msgs = messages(stream, count);
        let bytes: usize = msgs.iter().map(|(_, v)| v.len()).sum();
        let tmp = tempfile::tempdir().unwrap();
        let tables = tmp.path().join("tables");
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("in", 64, 1).unwrap();
        let bs = mock.bootstrap_servers();
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "2000000")
            .create()
            .unwrap();
        // RSD passes and plate reads are spread round-robin: the synthetic fleet's pass counts
        // are skewed, and one popular plate would overfill its mock partition. OBD samples and
        // frames are keyed by VIN, as in production (every vehicle sends the same amount).
        let keyed = matches!(stream, "obd" | "frames");
        for (i, (k, v)) in msgs.iter().enumerate() {
            let mut rec = BaseRecord::to("in").key(k.as_str()).payload(v.as_slice());
            if !keyed {
                rec = rec.partition((i % 64) as i32);
            }
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        p.poll(Duration::from_millis(5));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(120)).unwrap();
        let cfg_text = format!(
            "tables = {:?}\nidle_exit_ms = 3000\n[commit]\ninterval_ms = 500\n[kafka]\nbrokers = \"{bs}\"\ngroup = \"bench\"\ntopics = [{{ stream = \"{stream}\", topic = \"in\" }}]\n",
            tables.display().to_string()
        );
        let cfg: plumewatch::run::config::RunConfig = toml::from_str(&cfg_text).unwrap();
        let t = Instant::now();
        let s = plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap();
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(
            s.records_in,
            msgs.len() as u64,
            "every message processed (fewer: the mock broker dropped old messages of a partition over ~5 MB; use a smaller count)"
        );
        let span = s.consume_to_commit_s.expect("rows were committed");
        let proc = s.processing_s.expect("records were processed");
        let n = msgs.len() as f64;
        println!(
            "{stream}: {} messages ({:.1} MB): processed in {proc:.2} s = {:.0} msg/s, {:.1} MB/s; consumed and committed in {span:.2} s = {:.0} msg/s ({} commits; {wall:.1} s with start-up and the 3 s idle exit)",
            msgs.len(),
            bytes as f64 / 1e6,
            n / proc,
            bytes as f64 / 1e6 / proc,
            n / span,
            s.commits
        );
    }
}
