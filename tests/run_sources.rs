//! Source kinds of `plumewatch run` (issue 11 item 1): a CSV file source read with the same
//! decoding as `ingest` (header re-binding, resume after a restart), and the TCP source
//! (HJ 1239 frames and NDJSON from several connections) storing what `ingest` stores from
//! the same bytes.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::{ok, repo, rows, sql};
use plumewatch::run::config::RunConfig;

fn run(cfg_text: &str) -> plumewatch::run::RunSummary {
    let cfg = RunConfig::parse(cfg_text).unwrap();
    plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap()
}

/// (pass_id, co_co2_ratio, no_co2_ratio, verdict) by pass id.
fn passes(tables: &Path) -> Vec<(String, String, String, String)> {
    rows(&sql(
        tables,
        "SELECT pass_id, CAST(co_co2_ratio AS VARCHAR) co, CAST(no_co2_ratio AS VARCHAR) no, verdict FROM rsd_passes ORDER BY pass_id",
    ))
    .into_iter()
    .map(|r| {
        let g = |c: &str| r[c].clone().unwrap_or_default();
        (g("pass_id"), g("co"), g("no"), g("verdict"))
    })
    .collect()
}

fn csv_config(tables: &Path, input: &Path) -> String {
    format!(
        "tables = {:?}\ninstance_id = \"csv\"\nidle_exit_ms = 300\n[[files]]\nstream = \"rsd\"\nformat = \"csv\"\npath = {:?}\nmapping = {:?}\n",
        tables.display().to_string(),
        input.display().to_string(),
        repo("fixtures/field-cases/csv-repeated-reordered-header/vendor.toml")
            .display()
            .to_string()
    )
}

/// The field case csv-repeated-reordered-header through `run` (which read no CSV before):
/// the right values of its case.md, B1 and B2 bound by the swapped header at line 4.
/// Then a restart after B1 with B2 appended: B2 is read after the resumed position, bound
/// by that same swapped header (read again from before the position), never by the first.
#[test]
fn csv_file_source_rebinds_headers_and_resumes() {
    let case = std::fs::read_to_string(repo(
        "fixtures/field-cases/csv-repeated-reordered-header/week.csv",
    ))
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let whole = t.path().join("week.csv");
    std::fs::write(&whole, &case).unwrap();
    let tables = t.path().join("tables");
    let s = run(&csv_config(&tables, &whole));
    assert_eq!((s.records_in, s.quarantined), (4, 0));
    let want = [
        ("A1", "0.01", "0.002", "pass"),
        ("A2", "0.008", "0.0015", "pass"),
        ("B1", "0.005", "0.03", "fail"),
        ("B2", "0.009", "0.0012", "pass"),
    ]
    .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()));
    assert_eq!(passes(&tables), want);

    // Restart mid-file: the first run stops after B1, the second reads B2 only.
    let lines: Vec<&str> = case.lines().collect();
    let part = t.path().join("growing.csv");
    std::fs::write(&part, format!("{}\n", lines[..5].join("\n"))).unwrap();
    let tables2 = t.path().join("tables2");
    let s1 = run(&csv_config(&tables2, &part));
    assert_eq!(s1.records_in, 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap();
    writeln!(f, "{}", lines[5]).unwrap();
    drop(f);
    let s2 = run(&csv_config(&tables2, &part));
    assert_eq!(
        (s2.records_in, s2.quarantined),
        (1, 0),
        "only B2 is read again"
    );
    assert_eq!(passes(&tables2), want);
}

/// Connects to `addr`, retrying while the run binds its listeners.
fn connect(addr: &str) -> TcpStream {
    common::connect_retrying(addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `bytes` in chunks of `chunk` bytes (records cut across reads).
fn send(addr: &str, bytes: &[u8], chunk: usize) {
    let mut s = connect(addr);
    for c in bytes.chunks(chunk) {
        s.write_all(c).unwrap();
        s.flush().unwrap();
    }
}

fn count(tables: &Path, q: &str) -> i64 {
    common::scalar_i64(tables, q)
}

/// `[[tcp]]`: a generated fleet's HJ 1239 frames from two terminals (one connection each,
/// frames cut at odd byte counts, a run of noise between two frames) and RSD passes as
/// NDJSON from a third connection store the same rows and quarantine as `ingest` of the
/// same bytes, with the TWC detections of the fleet.
#[test]
fn tcp_source_stores_what_ingest_stores() {
    let t = tempfile::tempdir().unwrap();
    let frames = t.path().join("fleet.bin");
    ok(&[
        "gen",
        "frames",
        "--vehicles",
        "4",
        "--minutes",
        "12",
        "--seed",
        "7",
        "--out",
        frames.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&frames).unwrap();
    // Split at a frame boundary near the middle: frames start with "##".
    let mid = (bytes.len() / 2..bytes.len())
        .find(|&i| bytes[i..].starts_with(b"##") && bytes[i + 2] == 0x02)
        .unwrap();
    let (first, second) = bytes.split_at(mid);
    let mut second_noisy = b"NOT A FRAME".to_vec();
    second_noisy.extend_from_slice(second);
    let passes = repo("fixtures/demo/synthetic_passes.ndjson");
    let pass_bytes = std::fs::read(&passes).unwrap();

    // The reference: ingest of the same bytes.
    let mut ref_records_in = 0u64;
    let reference = t.path().join("ref");
    let joined = t.path().join("joined.bin");
    let mut all = first.to_vec();
    all.extend_from_slice(&second_noisy);
    std::fs::write(&joined, &all).unwrap();
    for (stream, format, input) in [
        ("obd", "hj1239", joined.to_str().unwrap()),
        ("rsd", "ndjson", passes.to_str().unwrap()),
    ] {
        let (ok, out, err) = common::ingest(&reference, stream, format, Path::new(input), &[]);
        assert!(ok, "{err}");

        let n: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("records in:"))
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("{out}"));
        ref_records_in += n;
    }

    let (pf, pr) = (free_port(), free_port());
    let (af, ar) = (format!("127.0.0.1:{pf}"), format!("127.0.0.1:{pr}"));
    let tables = t.path().join("tables");
    let cfg = format!(
        "tables = {:?}\ninstance_id = \"gw\"\nidle_exit_ms = 2500\n[[tcp]]\nstream = \"frames\"\nlisten = {af:?}\n[[tcp]]\nstream = \"rsd\"\nlisten = {ar:?}\n",
        tables.display().to_string()
    );
    let h = std::thread::spawn(move || run(&cfg));
    let (a1, a2, a3) = (af.clone(), af.clone(), ar.clone());
    let (b1, b2) = (first.to_vec(), second_noisy.clone());
    let senders = [
        std::thread::spawn(move || send(&a1, &b1, 977)),
        std::thread::spawn(move || send(&a2, &b2, 4093)),
        std::thread::spawn(move || send(&a3, &pass_bytes, 1000)),
    ];
    for s in senders {
        s.join().unwrap();
    }
    let s = h.join().unwrap();
    for q in [
        "SELECT count(*) FROM obd_samples",
        "SELECT count(DISTINCT vin) FROM obd_samples",
        "SELECT count(*) FROM rsd_passes",
        "SELECT count(*) FROM rsd_passes WHERE verdict = 'fail'",
        "SELECT count(*) FROM quarantine",
    ] {
        assert_eq!(count(&tables, q), count(&reference, q), "{q}");
    }
    assert!(count(&tables, "SELECT count(*) FROM obd_samples") >= 4 * 12 * 60 / 2);
    assert_eq!(
        count(&tables, "SELECT count(*) FROM quarantine"),
        1,
        "the noise"
    );
    let reason = rows(&sql(&tables, "SELECT reason, source_file FROM quarantine"));
    assert!(
        reason[0]["reason"]
            .as_deref()
            .unwrap()
            .starts_with("no_frame_start"),
        "{reason:?}"
    );
    assert!(
        reason[0]["source_file"]
            .as_deref()
            .unwrap()
            .starts_with(&format!("tcp:{af}/127.0.0.1:")),
        "{reason:?}"
    );
    // The same TWC verdicts as ingest, except the end-of-input ones (a stream has no end).
    assert_eq!(
        count(
            &tables,
            "SELECT count(DISTINCT vin) FROM detections WHERE rule_id <> 'lambda_implausible'"
        ),
        count(
            &reference,
            "SELECT count(DISTINCT vin) FROM detections WHERE rule_id <> 'lambda_implausible'"
        ),
    );
    // Records in: every pass, every frame and the noise run once each, as ingest counted.
    assert_eq!(s.records_in, ref_records_in);
}
