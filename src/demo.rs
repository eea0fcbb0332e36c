//! `plumewatch demo`: the whole flow on bundled fixtures, embedded in the binary so it runs
//! from any folder. Real data: a 1,000-pass CONOX extract (UK, no plates). SYNTHETIC data
//! (made by `plumewatch gen rsd`, see fixtures/README.md): a registry, passes and plate reads
//! with Chinese plates, so that every enforcement list has rows.

use std::path::Path;

use crate::ingest::{Format, IngestOptions, IngestSummary, Stream, ingest};
use crate::limits::LimitSet;

const CONOX_CSV: &[u8] = include_bytes!("../fixtures/rsd/conox_uk_extract1000.csv");
const CONOX_MAPPING: &[u8] = include_bytes!("../fixtures/mappings/conox.toml");
const SYN_VEHICLES: &[u8] = include_bytes!("../fixtures/demo/synthetic_vehicles.csv");
const SYN_PASSES: &[u8] = include_bytes!("../fixtures/demo/synthetic_passes.ndjson");
const SYN_READS: &[u8] = include_bytes!("../fixtures/demo/synthetic_plate_reads.ndjson");

/// Summary of the real CONOX passes by instrument and fuel.
pub const CONOX_SUMMARY_SQL: &str = "SELECT instrument, fuel, count(*) AS passes, \
  sum(CASE WHEN valid THEN 1 ELSE 0 END) AS valid, \
  sum(CASE WHEN verdict = 'fail' THEN 1 ELSE 0 END) AS fail, \
  round(avg(co_g_per_kg), 2) AS mean_co_g_per_kg, round(avg(no_g_per_kg), 2) AS mean_no_g_per_kg, \
  round(avg(vsp_kw_t), 2) AS mean_vsp_kw_t \
  FROM rsd_passes WHERE source_file LIKE '%conox%' GROUP BY instrument, fuel ORDER BY instrument, passes DESC";

/// Per-step summaries of a demo run.
pub struct DemoSummary(pub Vec<(&'static str, IngestSummary)>);

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, s) in &self.0 {
            writeln!(f, "-- ingest {what}")?;
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Writes the fixtures under `out/inputs/` and ingests them into `out`.
pub fn run(out: &Path) -> anyhow::Result<DemoSummary> {
    let inputs = out.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    let put = |name: &str, bytes: &[u8]| -> anyhow::Result<String> {
        let p = inputs.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p.display().to_string())
    };
    let limits = LimitSet::default_set();
    let mapping = inputs.join("conox.toml");
    std::fs::write(&mapping, CONOX_MAPPING)?;
    let steps: [(&'static str, Stream, Format, Option<&Path>, String); 4] = [
        (
            "vehicles (SYNTHETIC registry)",
            Stream::Vehicles,
            Format::Csv,
            None,
            put("synthetic_vehicles.csv", SYN_VEHICLES)?,
        ),
        (
            "rsd (REAL: CONOX extract)",
            Stream::Rsd,
            Format::Csv,
            Some(&mapping),
            put("conox_uk_extract1000.csv", CONOX_CSV)?,
        ),
        (
            "rsd (SYNTHETIC passes)",
            Stream::Rsd,
            Format::Ndjson,
            None,
            put("synthetic_passes.ndjson", SYN_PASSES)?,
        ),
        (
            "plates (SYNTHETIC plate reads)",
            Stream::Plates,
            Format::Ndjson,
            None,
            put("synthetic_plate_reads.ndjson", SYN_READS)?,
        ),
    ];
    let mut done = Vec::new();
    for (what, stream, format, mapping, input) in steps {
        let s = ingest(&IngestOptions {
            stream,
            format,
            mapping,
            vin: None,
            limits: &limits,
            out,
            inputs: std::slice::from_ref(&input),
            progress: false,
            max_record_bytes: crate::decode::text::DEFAULT_MAX_RECORD_BYTES,
            force: false,
            commit_every: crate::ingest::COMMIT_EVERY_RECORDS,
        })?;
        done.push((what, s));
    }
    Ok(DemoSummary(done))
}
