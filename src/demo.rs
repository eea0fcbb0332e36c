//! `plumewatch demo`: the whole flow on bundled fixtures, embedded in the binary so it runs
//! from any folder, ending with a ready `serve` config for its tables.
//!
//! Inputs (all written under `<out>/inputs/` first, then ingested through the same path as
//! `plumewatch ingest`):
//! * REAL: a 1,000-pass CONOX extract (UK, no plates) and a 1 Hz Torque log of a healthy
//!   petrol car (column subset, fixtures/README.md), given the VIN [`REAL_LOG_VIN`];
//! * SYNTHETIC (`plumewatch gen rsd`, see fixtures/README.md): a registry, passes and plate
//!   reads with Chinese plates, so that every RSD list has rows;
//! * SYNTHETIC, made at demo time by `synth::obd` with fixed arguments (what
//!   `plumewatch gen frames --vehicles 10 --minutes 30 --seed 439` writes): a labelled fleet of
//!   China VI gas trucks as HJ 1239 frames, half healthy, the rest with one TWC / rear-O2
//!   fault each, with their registry rows, so that `gas-twc-suspects` has rows and the
//!   detectors' verdicts can be set against the labels ([`verdicts`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::ingest::{Format, IngestOptions, IngestSummary, Stream, ingest};
use crate::limits::LimitSet;
use crate::synth::obd as fleet;
use crate::synth::obd_fleet::{FleetClass, class_for_index};

const CONOX_CSV: &[u8] = include_bytes!("../fixtures/rsd/conox_uk_extract1000.csv");
const CONOX_MAPPING: &[u8] = include_bytes!("../fixtures/mappings/conox.toml");
const SYN_VEHICLES: &[u8] = include_bytes!("../fixtures/demo/synthetic_vehicles.csv");
const SYN_PASSES: &[u8] = include_bytes!("../fixtures/demo/synthetic_passes.ndjson");
const SYN_READS: &[u8] = include_bytes!("../fixtures/demo/synthetic_plate_reads.ndjson");
const TORQUE_LOG: &[u8] =
    include_bytes!("../fixtures/obd/torque_petrol_2022_warm_healthy_extract.csv");
const TORQUE_MAPPING: &[u8] = include_bytes!("../fixtures/mappings/torque.toml");

/// Vehicles of the demo's SYNTHETIC gas-truck fleet. With [`FLEET_SEED`] the generator's
/// class mix (`synth::obd_fleet::class_for_index`) gives 5 healthy trucks and one of each of
/// the 5 fault classes.
pub const FLEET_VEHICLES: usize = 10;
/// Minutes of 1 Hz data per fleet vehicle (1,800 samples each).
pub const FLEET_MINUTES: u32 = 30;
/// Seed of the fleet (its VINs are `LSYN439…`).
pub const FLEET_SEED: u64 = 439;
/// VIN given to the real Torque log (`ingest --vin`; the log has none). Not a real VIN.
pub const REAL_LOG_VIN: &str = "LTORQUE0000000001";
/// SYNTHETIC registry row of the real log's car: what it is (a petrol passenger car, K33),
/// with a made-up Chinese plate.
const REAL_LOG_REGISTRY_ROW: &str = "京A7T001,blue,LTORQUE0000000001,petrol,国VI,K33,2022-02-15";

/// Input file names under `<out>/inputs/`.
pub const FLEET_FRAMES_FILE: &str = "synthetic_gas_fleet.hj1239";
/// The fleet's labels (vin, class, expected_rules), as `gen frames` writes them.
pub const FLEET_LABELS_FILE: &str = "synthetic_gas_fleet.labels.csv";
/// The combined registry: the RSD fixtures' vehicles, the gas fleet, the real log's car.
pub const REGISTRY_FILE: &str = "registry.csv";
/// The real Torque log extract.
pub const REAL_LOG_FILE: &str = "torque_petrol_2022_warm_healthy_extract.csv";

/// Summary of the real CONOX passes by instrument and fuel.
pub const CONOX_SUMMARY_SQL: &str = "SELECT instrument, fuel, count(*) AS passes, \
  sum(CASE WHEN valid THEN 1 ELSE 0 END) AS valid, \
  sum(CASE WHEN verdict = 'fail' THEN 1 ELSE 0 END) AS fail, \
  round(avg(co_g_per_kg), 2) AS mean_co_g_per_kg, round(avg(no_g_per_kg), 2) AS mean_no_g_per_kg, \
  round(avg(vsp_kw_t), 2) AS mean_vsp_kw_t \
  FROM rsd_passes WHERE source_file LIKE '%conox%' GROUP BY instrument, fuel ORDER BY instrument, passes DESC";

/// Columns of `gas-twc-suspects` the demo prints: who, the verdict, and its evidence (the
/// strongest detection's rule, strength and evidence values). Every column:
/// `plumewatch list gas-twc-suspects --tables OUT --format json`.
pub const GAS_LIST_COLUMNS: [&str; 8] = [
    "plate",
    "vin",
    "status",
    "detections",
    "strongest_rule",
    "max_strength",
    "strongest_evidence",
    "last_detected_at",
];

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

/// Writes the inputs under `out/inputs/` (fixtures, and the gas fleet generated here) and
/// ingests them into `out`. Errors: a file that cannot be written, an ingest that fails.
pub fn run(out: &Path) -> anyhow::Result<DemoSummary> {
    let inputs = out.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    let put = |name: &str, bytes: &[u8]| -> anyhow::Result<String> {
        let p = inputs.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p.display().to_string())
    };
    let limits = LimitSet::default_set();
    let conox_mapping = inputs.join("conox.toml");
    std::fs::write(&conox_mapping, CONOX_MAPPING)?;
    let torque_mapping = inputs.join("torque.toml");
    std::fs::write(&torque_mapping, TORQUE_MAPPING)?;

    // The gas fleet, as `gen frames` writes it: frames, labels, registry rows. The frames
    // (the fleet model, ~1 s of CPU in a debug build) are made on a thread of their own while
    // the RSD inputs are ingested; they are joined before they are ingested.
    let frames = inputs.join(FLEET_FRAMES_FILE);
    let frames_for_thread = frames.clone();
    let make_frames = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&frames_for_thread)?);
        fleet::write_frames(&mut w, FLEET_VEHICLES, FLEET_MINUTES, FLEET_SEED)?;
        w.flush()
    });
    let mut make_frames = Some(make_frames);
    let mut labels = Vec::new();
    let mut fleet_registry = Vec::new();
    fleet::write_labels_and_registry(&mut labels, &mut fleet_registry, FLEET_VEHICLES, FLEET_SEED)?;
    put(FLEET_LABELS_FILE, &labels)?;
    let registry = combined_registry(&fleet_registry)?;

    // (what, stream, format, mapping, VIN, input)
    type Step<'a> = (
        &'static str,
        Stream,
        Format,
        Option<&'a Path>,
        Option<&'a str>,
        String,
    );
    let steps: [Step; 6] = [
        (
            "vehicles (SYNTHETIC registry: RSD fleet, gas-truck fleet, the real log's car)",
            Stream::Vehicles,
            Format::Csv,
            None,
            None,
            put(REGISTRY_FILE, &registry)?,
        ),
        (
            "rsd (REAL: CONOX extract)",
            Stream::Rsd,
            Format::Csv,
            Some(&conox_mapping),
            None,
            put("conox_uk_extract1000.csv", CONOX_CSV)?,
        ),
        (
            "rsd (SYNTHETIC passes)",
            Stream::Rsd,
            Format::Ndjson,
            None,
            None,
            put("synthetic_passes.ndjson", SYN_PASSES)?,
        ),
        (
            "plates (SYNTHETIC plate reads)",
            Stream::Plates,
            Format::Ndjson,
            None,
            None,
            put("synthetic_plate_reads.ndjson", SYN_READS)?,
        ),
        (
            "obd (SYNTHETIC labelled gas-truck fleet, HJ 1239 frames)",
            Stream::Obd,
            Format::Hj1239,
            None,
            None,
            frames.display().to_string(),
        ),
        (
            "obd (REAL: healthy petrol car, Torque log)",
            Stream::Obd,
            Format::Csv,
            Some(&torque_mapping),
            Some(REAL_LOG_VIN),
            put(REAL_LOG_FILE, TORQUE_LOG)?,
        ),
    ];
    let mut done = Vec::new();
    for (what, stream, format, mapping, vin, input) in steps {
        if stream == Stream::Obd
            && let Some(t) = make_frames.take()
        {
            t.join()
                .map_err(|_| anyhow::anyhow!("the fleet generator panicked"))??;
        }
        let s = ingest(&IngestOptions {
            stream,
            format,
            mapping,
            vin,
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

/// The RSD fixtures' registry, then the fleet's rows (its header dropped), then the real
/// log's car: one CSV with the header of both.
fn combined_registry(fleet_registry: &[u8]) -> anyhow::Result<Vec<u8>> {
    let header_end = |b: &[u8]| {
        b.iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |i| i + 1)
    };
    let (syn_header, fleet_header) = (
        &SYN_VEHICLES[..header_end(SYN_VEHICLES)],
        &fleet_registry[..header_end(fleet_registry)],
    );
    anyhow::ensure!(
        syn_header == fleet_header,
        "registry headers differ: {:?} vs {:?}",
        String::from_utf8_lossy(syn_header),
        String::from_utf8_lossy(fleet_header)
    );
    let mut out = SYN_VEHICLES.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(&fleet_registry[fleet_header.len()..]);
    out.extend_from_slice(REAL_LOG_REGISTRY_ROW.as_bytes());
    out.push(b'\n');
    Ok(out)
}

/// Where a vehicle's data came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The labelled synthetic gas-truck fleet.
    Synthetic(FleetClass),
    /// The real healthy Torque log.
    RealHealthy,
}

/// One vehicle of the OBD data: its label, what the detectors found, and whether they agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub vin: String,
    /// Registry plate (None when not registered).
    pub plate: Option<String>,
    pub origin: Origin,
    /// Rule ids the label expects to fire (empty for a healthy vehicle).
    pub expected: BTreeSet<String>,
    /// Rule ids of the vehicle's rows in `detections`, with their counts.
    pub detected: BTreeMap<String, u64>,
}

impl Verdict {
    /// The detectors agree with the label: exactly the expected rules fired (none for a
    /// healthy vehicle).
    pub fn agrees(&self) -> bool {
        self.detected.keys().eq(self.expected.iter())
    }
}

/// The labelled OBD vehicles of the demo (the fleet's [`FLEET_VEHICLES`] from the generator's
/// labels, then the real log) with the rules the detectors fired on each, read from the
/// `detections` and `vehicles` tables under `out`.
pub async fn verdicts(out: &Path) -> anyhow::Result<Vec<Verdict>> {
    let mut vehicles: Vec<(String, Origin)> = (0..FLEET_VEHICLES)
        .map(|i| {
            let class = class_for_index(i, FLEET_SEED);
            (fleet::vin_for(i, FLEET_SEED), Origin::Synthetic(class))
        })
        .collect();
    vehicles.push((REAL_LOG_VIN.to_string(), Origin::RealHealthy));
    let lake = crate::query::Lake::open(out).await?;
    let fired = lake
        .collect(
            lake.sql(
                "SELECT vin, rule_id, CAST(count(*) AS VARCHAR) AS n FROM detections \
                 WHERE vin IS NOT NULL GROUP BY vin, rule_id",
            )
            .await?,
        )
        .await?;
    let mut detected: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for [vin, rule, n] in string_rows::<3>(&fired)? {
        if let (Some(vin), Some(rule), Some(n)) = (vin, rule, n) {
            detected
                .entry(vin)
                .or_default()
                .insert(rule, n.parse().unwrap_or(0));
        }
    }
    let regs = lake
        .collect(
            lake.sql("SELECT vin, plate FROM vehicles WHERE vin IS NOT NULL")
                .await?,
        )
        .await?;
    let plates: BTreeMap<String, String> = string_rows::<2>(&regs)?
        .into_iter()
        .filter_map(|[v, p]| Some((v?, p?)))
        .collect();
    Ok(vehicles
        .into_iter()
        .map(|(vin, origin)| {
            let expected = match origin {
                Origin::Synthetic(c) => c
                    .expected_rules()
                    .iter()
                    .map(|r| r.rule_id().to_string())
                    .collect(),
                Origin::RealHealthy => BTreeSet::new(),
            };
            Verdict {
                plate: plates.get(&vin).cloned(),
                detected: detected.remove(&vin).unwrap_or_default(),
                vin,
                origin,
                expected,
            }
        })
        .collect())
}

/// The rows of `batches` as `N` text cells (columns cast to text; NULL = None).
fn string_rows<const N: usize>(
    batches: &[RecordBatch],
) -> anyhow::Result<Vec<[Option<String>; N]>> {
    let mut out = Vec::new();
    for b in batches {
        anyhow::ensure!(b.num_columns() == N, "expected {N} columns");
        let cols: Vec<ArrayRef> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        let cols: Vec<&StringArray> = cols
            .iter()
            .map(|c| c.as_any().downcast_ref::<StringArray>())
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow::anyhow!("text cast did not give Utf8"))?;
        for r in 0..b.num_rows() {
            out.push(std::array::from_fn(|i| {
                (!cols[i].is_null(r)).then(|| cols[i].value(r).to_string())
            }));
        }
    }
    Ok(out)
}

/// [`verdicts`] as one batch for the query output writers: vin, plate, data (SYNTHETIC /
/// REAL), label, expected, detected (`rule×count`, `;`-separated; `-` for none), verdict
/// (`agree` / `DISAGREE`).
pub fn verdicts_batch(v: &[Verdict]) -> anyhow::Result<RecordBatch> {
    let text = |f: &dyn Fn(&Verdict) -> Option<String>| -> ArrayRef {
        Arc::new(v.iter().map(f).collect::<StringArray>())
    };
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("vin", text(&|x| Some(x.vin.clone()))),
        ("plate", text(&|x| x.plate.clone())),
        (
            "data",
            text(&|x| {
                Some(match x.origin {
                    Origin::Synthetic(_) => "SYNTHETIC".into(),
                    Origin::RealHealthy => "REAL".into(),
                })
            }),
        ),
        (
            "label",
            text(&|x| {
                Some(match x.origin {
                    Origin::Synthetic(c) => c.name().into(),
                    Origin::RealHealthy => "healthy (petrol car, Torque log)".into(),
                })
            }),
        ),
        (
            "expected",
            text(&|x| {
                Some(dash(
                    x.expected.iter().cloned().collect::<Vec<_>>().join(";"),
                ))
            }),
        ),
        (
            "detected",
            text(&|x| {
                Some(dash(
                    x.detected
                        .iter()
                        .map(|(r, n)| format!("{r}×{n}"))
                        .collect::<Vec<_>>()
                        .join(";"),
                ))
            }),
        ),
        (
            "verdict",
            text(&|x| Some(if x.agrees() { "agree" } else { "DISAGREE" }.into())),
        ),
    ];
    let schema = Schema::new(
        cols.iter()
            .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        cols.into_iter().map(|(_, c)| c).collect(),
    )?)
}

/// One line counting agreement: `labels vs detectors: A of N agree (synthetic a of n: f of
/// F faulty caught, h of H healthy clean; real r of R)`.
pub fn agreement_line(v: &[Verdict]) -> String {
    let count = |f: &dyn Fn(&Verdict) -> bool| v.iter().filter(|x| f(x)).count();
    let syn = |x: &Verdict| matches!(x.origin, Origin::Synthetic(_));
    let faulty = |x: &Verdict| syn(x) && !x.expected.is_empty();
    let healthy = |x: &Verdict| syn(x) && x.expected.is_empty();
    let real = |x: &Verdict| x.origin == Origin::RealHealthy;
    format!(
        "labels vs detectors: {} of {} agree (synthetic {} of {}: {} of {} faulty caught with their own rule only, {} of {} healthy with no detection; real healthy log {} of {} with no detection)",
        count(&|x| x.agrees()),
        v.len(),
        count(&|x| syn(x) && x.agrees()),
        count(&syn),
        count(&|x| faulty(x) && x.agrees()),
        count(&faulty),
        count(&|x| healthy(x) && x.agrees()),
        count(&healthy),
        count(&|x| real(x) && x.agrees()),
        count(&real),
    )
}

/// Writes the evidence plot of `vin` (every sample, windows of its detections shaded) to
/// `<out>/evidence/<vin>.svg` with [`crate::query::plot::plot`]. Errors for a VIN that is not
/// 17 ASCII letters and digits (it names a file), or as `plot` does.
pub async fn evidence_plot(
    out: &Path,
    vin: &str,
    zone: chrono_tz::Tz,
) -> anyhow::Result<(PathBuf, crate::query::plot::PlotSummary)> {
    anyhow::ensure!(
        vin.len() == 17 && vin.bytes().all(|b| b.is_ascii_alphanumeric()),
        "VIN '{vin}' is not 17 letters and digits"
    );
    let dir = out.join("evidence");
    std::fs::create_dir_all(&dir)?;
    let svg = dir.join(format!("{vin}.svg"));
    let s = crate::query::plot::plot(
        out,
        vin,
        "1970-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
        &svg,
        &crate::query::plot::PlotOptions {
            zone,
            ..Default::default()
        },
    )
    .await?;
    Ok((svg, s))
}

/// The demo's `serve` users and their secrets (made at random by [`write_serve_config`]).
#[derive(Clone, Debug)]
pub struct DemoServe {
    /// `<out>/serve.toml`.
    pub path: PathBuf,
    /// `[serve] listen` (loopback).
    pub listen: String,
    /// `[serve] pg_listen` (loopback).
    pub pg_listen: String,
    /// Police user (bearer token).
    pub police: (String, String),
    /// Analyst user (password, for the PostgreSQL endpoint).
    pub analyst: (String, String),
    /// Patrol user (bearer token) and its site.
    pub patrol: (String, String),
    pub patrol_site: String,
}

/// HTTP address of the demo's server.
pub const DEMO_LISTEN: &str = "127.0.0.1:8080";
/// PostgreSQL address of the demo's server.
pub const DEMO_PG_LISTEN: &str = "127.0.0.1:5433";
/// The patrol's site: an urban-entrance camera of the synthetic plate reads (Shijiazhuang).
pub const DEMO_PATROL_SITE: &str = "C130102001";

/// Writes `<out>/serve.toml`: a `[serve]` section on loopback ([`DEMO_LISTEN`],
/// [`DEMO_PG_LISTEN`]) with three users, a police user with a bearer token, an analyst with
/// a password and a patrol user with a token for [`DEMO_PATROL_SITE`]. The secrets are made
/// at random here (128 bits each) and written in clear in the file's comments, marked
/// demo-only; the users' entries hold their hashes (`serve::auth::hash_secret`). The file is
/// readable by its owner only.
pub fn write_serve_config(out: &Path) -> anyhow::Result<DemoServe> {
    use crate::serve::auth::hash_secret;
    let secret = || hex::encode(rand::random::<[u8; 16]>());
    let d = DemoServe {
        path: out.join("serve.toml"),
        listen: DEMO_LISTEN.into(),
        pg_listen: DEMO_PG_LISTEN.into(),
        police: ("demo-police".into(), format!("demo-police-{}", secret())),
        analyst: ("demo-analyst".into(), format!("demo-analyst-{}", secret())),
        patrol: ("demo-patrol".into(), format!("demo-patrol-{}", secret())),
        patrol_site: DEMO_PATROL_SITE.into(),
    };
    let (_, police_sha) = hash_secret(&d.police.1)?;
    let (analyst_phc, _) = hash_secret(&d.analyst.1)?;
    let (_, patrol_sha) = hash_secret(&d.patrol.1)?;
    let text = format!(
        "# plumewatch demo: a ready [serve] config for the demo tables in {tables}.
# Start:  plumewatch serve --tables {tables} --config {path}
# Every option is documented in fixtures/serve.example.toml.
#
# DEMO-ONLY SECRETS, made at random by `plumewatch demo` and written here in clear so you can
# try the server: never use this file, or these secrets, for real data.
#   {pn:<13} police   bearer token  {pt}
#   {an:<13} analyst  password      {ap}
#   {tn:<13} patrol   bearer token  {tt}   (site {site})

[serve]
listen = \"{listen}\"
pg_listen = \"{pg}\"

[[serve.users]]
name = \"{pn}\"
role = \"police\"
token_sha256 = \"{police_sha}\"

[[serve.users]]
name = \"{an}\"
role = \"analyst\"
password_hash = \"{analyst_phc}\"

[[serve.users]]
name = \"{tn}\"
role = \"patrol\"
token_sha256 = \"{patrol_sha}\"
sites = [\"{site}\"]
",
        tables = out.display(),
        path = d.path.display(),
        pn = d.police.0,
        pt = d.police.1,
        an = d.analyst.0,
        ap = d.analyst.1,
        tn = d.patrol.0,
        tt = d.patrol.1,
        site = d.patrol_site,
        listen = d.listen,
        pg = d.pg_listen,
    );
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&d.path)?
    };
    f.write_all(text.as_bytes())?;
    // The file must load as it is (a demo that prints a config `serve` refuses is broken).
    crate::serve::ServeConfig::load(&d.path)?;
    Ok(d)
}

/// The text `demo` prints after the lists: how to start the server on the demo tables, a
/// plate lookup with curl (`plate`: a flagged plate), the board URL and a psql line.
pub fn serve_instructions(out: &Path, d: &DemoServe, plate: Option<&str>) -> String {
    let http = format!("http://{}", d.listen);
    let (pg_host, pg_port) = d.pg_listen.rsplit_once(':').unwrap_or((&d.pg_listen, ""));
    let lookup = match plate {
        Some(p) => format!(
            "  # a flagged plate ({p}): registry row, detections with their evidence, last seen\n  curl -H \"Authorization: Bearer {}\" \"{http}/api/plates/{}\"\n",
            d.police.1,
            crate::serve::board::encode_segment(p)
        ),
        None => String::new(),
    };
    format!(
        "== Serve the demo tables (police API, alert board, SQL for analysts) ==
A ready config with DEMO-ONLY random secrets (loopback only): {config}
  plumewatch serve --tables {tables} --config {config}      # or: plumewatch demo --serve
then, in another terminal:
{lookup}  # the gas-truck list as CSV for Excel
  curl -H \"Authorization: Bearer {pt}\" -o gas.csv \"{http}/api/lists/gas-twc-suspects?format=csv\"
  # the alert board of patrol {tn} (site {site}); it shows entrance alerts, which `run`
  # writes: the demo's tables hold none, so it stays empty here
  {http}/board?token={tt}
  # SQL over the same tables (the lists are views: list_gas_twc_suspects, …)
  PGPASSWORD={ap} psql -h {pg_host} -p {pg_port} -U {an} -d plumewatch -c \"SELECT plate, vin, strongest_rule, max_strength FROM list_gas_twc_suspects ORDER BY max_strength DESC\"
",
        config = d.path.display(),
        tables = out.display(),
        pt = d.police.1,
        tn = d.patrol.0,
        tt = d.patrol.1,
        site = d.patrol_site,
        an = d.analyst.0,
        ap = d.analyst.1,
    )
}

/// VIN and plate of the `suspect` row of a `gas-twc-suspects` result whose evidence plot
/// shows the most: the first (strongest evidence first) whose strongest rule is not
/// `rear_o2_missing` (a missing sensor leaves the rear-O2 panel empty), else the first
/// suspect; None when no row is a suspect.
pub fn first_suspect(batches: &[RecordBatch]) -> anyhow::Result<Option<(String, Option<String>)>> {
    let rows = string_rows::<4>(&project(
        batches,
        &["vin", "plate", "status", "strongest_rule"],
    )?)?;
    let suspects: Vec<_> = rows
        .into_iter()
        .filter(|[vin, _, status, _]| vin.is_some() && status.as_deref() == Some("suspect"))
        .collect();
    let pick = suspects
        .iter()
        .find(|[.., rule]| rule.as_deref() != Some("rear_o2_missing"))
        .or(suspects.first());
    Ok(pick.map(|[vin, plate, ..]| (vin.clone().unwrap_or_default(), plate.clone())))
}

/// `batches` with only `columns`, in that order (columns missing from a batch are an error).
pub fn project(batches: &[RecordBatch], columns: &[&str]) -> anyhow::Result<Vec<RecordBatch>> {
    batches
        .iter()
        .map(|b| {
            let idx = columns
                .iter()
                .map(|c| b.schema().index_of(c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(b.project(&idx)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_registry_has_every_vehicle_once() {
        let mut labels = Vec::new();
        let mut reg = Vec::new();
        fleet::write_labels_and_registry(&mut labels, &mut reg, FLEET_VEHICLES, FLEET_SEED)
            .unwrap();
        let all = String::from_utf8(combined_registry(&reg).unwrap()).unwrap();
        let rows: Vec<&str> = all.lines().skip(1).collect();
        // 150 RSD-fixture vehicles (fixtures/README.md), the fleet, the real log's car.
        assert_eq!(rows.len(), 150 + FLEET_VEHICLES + 1);
        let keys: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| {
                let f: Vec<&str> = r.split(',').collect();
                (f[0], f[1])
            })
            .collect();
        assert_eq!(
            keys.len(),
            rows.len(),
            "a plate and colour registered twice"
        );
        let vins: BTreeSet<&str> = rows.iter().map(|r| r.split(',').nth(2).unwrap()).collect();
        assert_eq!(vins.len(), rows.len(), "a VIN registered twice");
        assert!(vins.contains(REAL_LOG_VIN));
        assert!(
            all.lines()
                .any(|l| l.starts_with("冀A00000,yellow,LSYN4390000000000,natural_gas,国VI,Q11,"))
        );
        let e = combined_registry(b"plate,vin\nX,Y\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("registry headers differ"), "{e}");
    }

    #[test]
    fn a_verdict_agrees_only_with_exactly_the_expected_rules() {
        let v = |expected: &[&str], detected: &[&str]| Verdict {
            vin: "V".into(),
            plate: None,
            origin: Origin::Synthetic(FleetClass::FlatSimulator),
            expected: expected.iter().map(|s| s.to_string()).collect(),
            detected: detected.iter().map(|s| (s.to_string(), 1)).collect(),
        };
        assert!(v(&["rear_o2_flatline"], &["rear_o2_flatline"]).agrees());
        assert!(v(&[], &[]).agrees());
        assert!(!v(&["rear_o2_flatline"], &[]).agrees());
        assert!(!v(&[], &["rear_o2_missing"]).agrees());
        assert!(
            !v(
                &["rear_o2_flatline"],
                &["rear_o2_flatline", "lambda_implausible"]
            )
            .agrees()
        );
        let line = agreement_line(&[v(&["rear_o2_flatline"], &[]), v(&[], &[])]);
        assert!(
            line.starts_with(
                "labels vs detectors: 1 of 2 agree (synthetic 1 of 2: 0 of 1 faulty caught"
            ),
            "{line}"
        );
    }
}
