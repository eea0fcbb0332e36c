//! Baseline for the decode step alone: arrow-json's `Decoder` (through DataFusion's arrow
//! re-export) reading an RSD NDJSON file into Arrow record batches with the input fields of
//! `schemas/rsd_pass.schema.json`, and nothing else (no reduction, no rules, no Parquet).
//! `scripts/compare_duckdb.sh` runs it with `DECODE_BASELINE` (issue 12 item 1).
//!
//!     cargo bench --bench arrow_json_decode --no-run   # then run the printed binary:
//!     target/release/deps/arrow_json_decode-… passes.ndjson
//!
//! `passed_at` is read as Int64 (Unix ms, what `plumewatch gen rsd` writes); plumewatch also
//! accepts RFC 3339 text there. Prints rows, seconds and MB/s. Without a file argument (as under
//! `cargo bench`) it decodes 20,000 generated passes in memory.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::json::ReaderBuilder;

const TEXT: [&str; 7] = [
    "pass_id",
    "site_id",
    "instrument",
    "plate",
    "plate_color",
    "fuel",
    "vehicle_category",
];
const NUMS: [&str; 20] = [
    "lane",
    "speed_kmh",
    "accel_mps2",
    "road_grade_pct",
    "co_co2_ratio",
    "hc_co2_ratio",
    "no_co2_ratio",
    "no2_co2_ratio",
    "nh3_co2_ratio",
    "opacity_pct",
    "ringelmann",
    "co2_plume_pct_m",
    "wind_mps",
    "ambient_temp_c",
    "humidity_pct",
    "pressure_kpa",
    "vsp_reported_kw_t",
    "lon_deg",
    "lat_deg",
    "plate_confidence_pct",
];

fn schema() -> Arc<Schema> {
    let mut f = vec![Field::new("passed_at", DataType::Int64, true)];
    f.extend(TEXT.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
    f.extend(NUMS.iter().map(|n| Field::new(*n, DataType::Float64, true)));
    Arc::new(Schema::new(f))
}

/// Decodes `input` (read in 1 MiB blocks) into batches of 8,192 rows; returns the row count.
fn decode(mut input: impl Read) -> usize {
    let mut dec = ReaderBuilder::new(schema())
        .with_batch_size(8192)
        .build_decoder()
        .expect("decoder");
    let mut buf = vec![0u8; 1 << 20];
    let mut rows = 0;
    loop {
        let n = input.read(&mut buf).expect("read");
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let used = dec.decode(chunk).expect("decode");
            chunk = &chunk[used..];
            if !chunk.is_empty() {
                // A batch is full: take it.
                if let Some(b) = dec.flush().expect("flush") {
                    rows += b.num_rows();
                }
            }
        }
        if n == 0 {
            break;
        }
    }
    if let Some(b) = dec.flush().expect("flush") {
        rows += b.num_rows();
    }
    rows
}

fn main() {
    let path = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (rows, bytes, t) = match path {
        Some(p) => {
            let bytes = std::fs::metadata(&p).expect("input file").len();
            let t = Instant::now();
            let rows = decode(std::fs::File::open(&p).expect("input file"));
            (rows, bytes, t.elapsed())
        }
        None => {
            let fleet = plumewatch::synth::rsd::fleet(1000, 1);
            let mut data = Vec::new();
            plumewatch::synth::rsd::write_passes(&mut data, &fleet, 20_000, 30, 1).unwrap();
            let t = Instant::now();
            let rows = decode(&data[..]);
            (rows, data.len() as u64, t.elapsed())
        }
    };
    let s = t.as_secs_f64();
    println!(
        "arrow-json Decoder: {rows} rows, {:.1} MB in {s:.3} s: {:.0} MB/s, {:.0} rows/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / s,
        rows as f64 / s
    );
}
