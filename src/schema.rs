//! The Arrow schema of every table, in one place (DESIGN.md "Streams and tables"), with the
//! row builders the pipeline appends to. Tables are Hive-partitioned by `date` (the calendar
//! day of the event in the enforcement zone, `sink::parquet`); the partition column is not
//! stored inside the files.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder,
    Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

/// Table names.
pub const RSD_PASSES: &str = "rsd_passes";
pub const PLATE_READS: &str = "plate_reads";
pub const VEHICLES: &str = "vehicles";
pub const DETECTIONS: &str = "detections";
pub const QUARANTINE: &str = "quarantine";
pub const SOURCE_RESET: &str = "source_reset";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
fn i64_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}
fn utf8_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}
fn s(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn f(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// `rsd_passes`: one pass with ratios, derived concentrations, g/kg, VSP, validity, verdict.
pub fn rsd_passes() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let mut v = vec![
            s("pass_id", false),
            Field::new("passed_at", ts(), false),
            s("site_id", true),
            f("lane"),
            s("instrument", true),
            s("plate", true),
            s("plate_color", true),
            s("plate_status", true),
            s("fuel", true),
            s("fuel_source", true),
            s("vehicle_category", true),
            s("vin", true),
        ];
        for n in [
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
            "lon_deg",
            "lat_deg",
            "plate_confidence_pct",
            "co2_pct",
            "co_pct",
            "hc_ppm",
            "no_ppm",
            "co_g_per_kg",
            "hc_g_per_kg",
            "no_g_per_kg",
            "no2_g_per_kg",
            "nh3_g_per_kg",
            "nox_g_per_kg",
            "vsp_kw_t",
            "vsp_reported_kw_t",
        ] {
            v.push(f(n));
        }
        for n in STATUS_COLUMNS {
            v.push(s(n, false));
        }
        v.extend([
            Field::new("valid", DataType::Boolean, false),
            // Why `verdict` is `invalid` (NULL otherwise): a stable code to group by
            // (`detect::rsd_limits::code`) and the human detail of every reason.
            s("invalid_code", true),
            s("invalid_detail", true),
            s("verdict", false),
            Field::new("exceeded", utf8_list(), true),
            s("limit_set", false),
            Field::new("flags", utf8_list(), true),
            s("source_file", false),
            Field::new("source_offset", DataType::UInt64, false),
        ]);
        v.extend(plate_columns());
        Arc::new(Schema::new(v))
    })
    .clone()
}

/// Plate columns added to every table that stores a plate (appended after the original
/// columns, all nullable, so files written before them still read): `plate_raw` the plate
/// text as received (control characters written as `\u0000` escapes, never raw), `plate_class`
/// the kind of plate from its form (`model::PlateClass`: ordinary, new_energy, trailer, coach,
/// police, embassy, consulate, emergency, hk_macau, military), `plate_color_raw` the colour
/// text as received (after the mapping's value table).
pub fn plate_columns() -> [Field; 3] {
    [
        s("plate_raw", true),
        s("plate_class", true),
        s("plate_color_raw", true),
    ]
}

/// Validity status columns of `rsd_passes`, in order (`remote-sensing.md §1.4`).
pub const STATUS_COLUMNS: [&str; 6] = [
    "speed_status",
    "accel_status",
    "vsp_status",
    "wind_status",
    "temp_status",
    "co2_status",
];

/// `plate_reads`: one ANPR read.
pub fn plate_reads() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("read_id", false),
            Field::new("read_at", ts(), false),
            s("site_id", true),
            // NULL for a "no plate" read (`plate_status` = `no_plate`, text in `plate_raw`).
            s("plate", true),
            s("plate_color", true),
            s("plate_status", false),
            f("confidence_pct"),
            f("lon_deg"),
            f("lat_deg"),
            s("vin", true),
            s("source_file", false),
            Field::new("source_offset", DataType::UInt64, false),
            plate_columns()[0].clone(),
            plate_columns()[1].clone(),
            plate_columns()[2].clone(),
            // What was done to the plate / colour and why the registry join was (not) made.
            Field::new("flags", utf8_list(), true),
        ]))
    })
    .clone()
}

/// `vehicles`: the registry (not partitioned: a snapshot).
pub fn vehicles() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("plate", false),
            s("plate_color", true),
            s("plate_status", false),
            s("vin", true),
            s("fuel", true),
            Field::new("emission_standard", DataType::Int64, true),
            s("emission_standard_raw", true),
            s("vehicle_type", true),
            Field::new("registered_on", DataType::Date32, true),
            plate_columns()[0].clone(),
            plate_columns()[1].clone(),
            plate_columns()[2].clone(),
            Field::new("flags", utf8_list(), true),
        ]))
    })
    .clone()
}

/// `evidence`: Map<Utf8, Float64>, the numeric evidence of a detection by name
/// (`evidence['ratio']`, `evidence['window_start_ms']`).
fn evidence_num_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Float64, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    )
}

/// `evidence_text`: Map<Utf8, Utf8>, the text evidence of a detection by name
/// (`evidence_text['basis']`, `evidence_text['hint']`).
fn evidence_text_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    )
}

/// `detections`: one rule firing on one vehicle, with its evidence in two maps SQL can
/// address: `evidence` (Map<Utf8, Float64>: every numeric entry, e.g. `ratio`, `n_samples`,
/// `window_start_ms`, `emission_standard`) and `evidence_text` (Map<Utf8, Utf8>: every text
/// entry, e.g. China III `basis`, `registered_on`, a `hint`; booleans as `true` / `false`,
/// lists such as `dtcs_matched` as comma-joined text). An absent or unknown entry is not in
/// the map (`evidence['x']` is NULL). See [`Evidence`].
pub fn detections() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("detection_id", false),
            s("rule_id", false),
            s("rule_version", false),
            s("limit_set", false),
            Field::new("detected_at", ts(), false),
            s("plate", true),
            s("plate_color", true),
            s("vin", true),
            s("site_id", true),
            f("lon_deg"),
            f("lat_deg"),
            s("source_stream", false),
            s("source_key", false),
            f("strength"),
            Field::new("evidence", evidence_num_type(), false),
            Field::new("evidence_text", evidence_text_type(), false),
        ]))
    })
    .clone()
}

/// `quarantine`: one input record that could not be used.
pub fn quarantine() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("stream", false),
            s("source_file", false),
            Field::new("source_offset", DataType::UInt64, false),
            Field::new("source_line", DataType::UInt64, false),
            s("field", true),
            s("reason", false),
            Field::new("raw", DataType::Binary, false),
            Field::new("quarantined_at", ts(), false),
        ]))
    })
    .clone()
}

/// `source_reset`: a source position the broker no longer has (issue 10): the manifest's
/// next offset of a Kafka partition lies outside the broker's [low, high] watermarks, or the
/// record before it differs from the one consumed (topic deleted and re-created). One row per
/// reset: what was expected, what was found, what was done. Offsets are Kafka offsets.
pub fn source_reset() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("reset_at", ts(), false),
            s("instance", false),
            s("source", false),
            s("topic", false),
            Field::new("partition", DataType::Int64, false),
            // topic_recreated | offset_above_high_watermark | offset_below_low_watermark
            s("kind", false),
            Field::new("expected_offset", DataType::Int64, false),
            s("expected", false),
            Field::new("low_watermark", DataType::Int64, true),
            Field::new("high_watermark", DataType::Int64, true),
            s("found", false),
            Field::new("resumed_offset", DataType::Int64, false),
            // Records between the expected offset and the low watermark that the broker no
            // longer has (retention); null when not countable (re-created topic).
            Field::new("records_lost", DataType::Int64, true),
            s("action", false),
        ]))
    })
    .clone()
}

/// A table's row builder: appended row by row, finished into a batch.
pub trait TableBuilder: Send {
    /// Rows appended since the last finish.
    fn len(&self) -> usize;
    /// True when no rows are pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Takes the pending rows as a batch of this table's schema.
    fn finish(&mut self) -> RecordBatch;
}

fn batch(schema: SchemaRef, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, cols).expect("builders match the schema")
}

/// Builder of `rsd_passes` rows.
pub struct RsdPassesBuilder {
    pub pass_id: StringBuilder,
    pub passed_at: TimestampMillisecondBuilder,
    pub strs: [StringBuilder; 9],
    /// `lane` then the 30 float columns of [`rsd_passes`], in schema order.
    pub nums: Vec<Float64Builder>,
    pub status: [StringBuilder; 6],
    pub valid: BooleanBuilder,
    /// `invalid_code` (see `detect::rsd_limits::code`).
    pub invalid_code: StringBuilder,
    /// `invalid_detail`: every reason, human text.
    pub invalid_detail: StringBuilder,
    pub verdict: StringBuilder,
    pub exceeded: ListBuilder<StringBuilder>,
    pub limit_set: StringBuilder,
    pub flags: ListBuilder<StringBuilder>,
    pub source_file: StringBuilder,
    pub source_offset: UInt64Builder,
    /// [`plate_columns`]: `plate_raw`, `plate_class`, `plate_color_raw`.
    pub plate_cols: [StringBuilder; 3],
    rows: usize,
}

/// Number of float columns in `rsd_passes` (lane + 30).
pub const RSD_NUM_COLUMNS: usize = 31;

impl Default for RsdPassesBuilder {
    fn default() -> Self {
        RsdPassesBuilder {
            pass_id: StringBuilder::new(),
            passed_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            strs: std::array::from_fn(|_| StringBuilder::new()),
            nums: (0..RSD_NUM_COLUMNS)
                .map(|_| Float64Builder::new())
                .collect(),
            status: std::array::from_fn(|_| StringBuilder::new()),
            valid: BooleanBuilder::new(),
            invalid_code: StringBuilder::new(),
            invalid_detail: StringBuilder::new(),
            verdict: StringBuilder::new(),
            exceeded: ListBuilder::new(StringBuilder::new()),
            limit_set: StringBuilder::new(),
            flags: ListBuilder::new(StringBuilder::new()),
            source_file: StringBuilder::new(),
            source_offset: UInt64Builder::new(),
            plate_cols: std::array::from_fn(|_| StringBuilder::new()),
            rows: 0,
        }
    }
}

impl RsdPassesBuilder {
    /// Marks one complete row appended (every builder must have had one value appended).
    pub fn row_done(&mut self) {
        self.rows += 1;
    }
}

impl TableBuilder for RsdPassesBuilder {
    fn len(&self) -> usize {
        self.rows
    }
    fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.pass_id.finish()),
            Arc::new(self.passed_at.finish()),
        ];
        // site_id, then lane (first float), then instrument … vin.
        cols.push(Arc::new(self.strs[0].finish()));
        cols.push(Arc::new(self.nums[0].finish()));
        for b in self.strs[1..].iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        for b in self.nums[1..].iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        for b in self.status.iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.valid.finish()));
        cols.push(Arc::new(self.invalid_code.finish()));
        cols.push(Arc::new(self.invalid_detail.finish()));
        cols.push(Arc::new(self.verdict.finish()));
        cols.push(Arc::new(self.exceeded.finish()));
        cols.push(Arc::new(self.limit_set.finish()));
        cols.push(Arc::new(self.flags.finish()));
        cols.push(Arc::new(self.source_file.finish()));
        cols.push(Arc::new(self.source_offset.finish()));
        for b in self.plate_cols.iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        batch(rsd_passes(), cols)
    }
}

/// Builder of `plate_reads` rows.
pub struct PlateReadsBuilder {
    pub read_id: StringBuilder,
    pub read_at: TimestampMillisecondBuilder,
    pub site_id: StringBuilder,
    pub plate: StringBuilder,
    pub plate_color: StringBuilder,
    pub plate_status: StringBuilder,
    pub confidence_pct: Float64Builder,
    pub lon_deg: Float64Builder,
    pub lat_deg: Float64Builder,
    pub vin: StringBuilder,
    pub source_file: StringBuilder,
    pub source_offset: UInt64Builder,
    /// [`plate_columns`]: `plate_raw`, `plate_class`, `plate_color_raw`.
    pub plate_cols: [StringBuilder; 3],
    pub flags: ListBuilder<StringBuilder>,
}

impl Default for PlateReadsBuilder {
    fn default() -> Self {
        PlateReadsBuilder {
            read_id: StringBuilder::new(),
            read_at: TimestampMillisecondBuilder::new(),
            site_id: StringBuilder::new(),
            plate: StringBuilder::new(),
            plate_color: StringBuilder::new(),
            plate_status: StringBuilder::new(),
            confidence_pct: Float64Builder::new(),
            lon_deg: Float64Builder::new(),
            lat_deg: Float64Builder::new(),
            vin: StringBuilder::new(),
            source_file: StringBuilder::new(),
            source_offset: UInt64Builder::new(),
            plate_cols: std::array::from_fn(|_| StringBuilder::new()),
            flags: ListBuilder::new(StringBuilder::new()),
        }
    }
}

impl TableBuilder for PlateReadsBuilder {
    fn len(&self) -> usize {
        self.read_id.len()
    }
    fn finish(&mut self) -> RecordBatch {
        let read_at = self.read_at.finish().with_timezone("UTC");
        batch(
            plate_reads(),
            vec![
                Arc::new(self.read_id.finish()),
                Arc::new(read_at),
                Arc::new(self.site_id.finish()),
                Arc::new(self.plate.finish()),
                Arc::new(self.plate_color.finish()),
                Arc::new(self.plate_status.finish()),
                Arc::new(self.confidence_pct.finish()),
                Arc::new(self.lon_deg.finish()),
                Arc::new(self.lat_deg.finish()),
                Arc::new(self.vin.finish()),
                Arc::new(self.source_file.finish()),
                Arc::new(self.source_offset.finish()),
                Arc::new(self.plate_cols[0].finish()),
                Arc::new(self.plate_cols[1].finish()),
                Arc::new(self.plate_cols[2].finish()),
                Arc::new(self.flags.finish()),
            ],
        )
    }
}

/// Builder of `vehicles` rows.
pub struct VehiclesBuilder {
    pub plate: StringBuilder,
    pub plate_color: StringBuilder,
    pub plate_status: StringBuilder,
    pub vin: StringBuilder,
    pub fuel: StringBuilder,
    pub emission_standard: Int64Builder,
    pub emission_standard_raw: StringBuilder,
    pub vehicle_type: StringBuilder,
    pub registered_on: Date32Builder,
    /// [`plate_columns`]: `plate_raw`, `plate_class`, `plate_color_raw`.
    pub plate_cols: [StringBuilder; 3],
    pub flags: ListBuilder<StringBuilder>,
}

impl Default for VehiclesBuilder {
    fn default() -> Self {
        VehiclesBuilder {
            plate: StringBuilder::new(),
            plate_color: StringBuilder::new(),
            plate_status: StringBuilder::new(),
            vin: StringBuilder::new(),
            fuel: StringBuilder::new(),
            emission_standard: Int64Builder::new(),
            emission_standard_raw: StringBuilder::new(),
            vehicle_type: StringBuilder::new(),
            registered_on: Date32Builder::new(),
            plate_cols: std::array::from_fn(|_| StringBuilder::new()),
            flags: ListBuilder::new(StringBuilder::new()),
        }
    }
}

impl TableBuilder for VehiclesBuilder {
    fn len(&self) -> usize {
        self.plate.len()
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            vehicles(),
            vec![
                Arc::new(self.plate.finish()),
                Arc::new(self.plate_color.finish()),
                Arc::new(self.plate_status.finish()),
                Arc::new(self.vin.finish()),
                Arc::new(self.fuel.finish()),
                Arc::new(self.emission_standard.finish()),
                Arc::new(self.emission_standard_raw.finish()),
                Arc::new(self.vehicle_type.finish()),
                Arc::new(self.registered_on.finish()),
                Arc::new(self.plate_cols[0].finish()),
                Arc::new(self.plate_cols[1].finish()),
                Arc::new(self.plate_cols[2].finish()),
                Arc::new(self.flags.finish()),
            ],
        )
    }
}

/// One detection row (see [`detections`]).
#[derive(Clone, Debug, Default)]
pub struct DetectionRow {
    pub detection_id: String,
    pub rule_id: String,
    pub rule_version: String,
    pub limit_set: String,
    pub detected_at_ms: i64,
    pub plate: Option<String>,
    pub plate_color: Option<String>,
    pub vin: Option<String>,
    pub site_id: Option<String>,
    pub lon_deg: Option<f64>,
    pub lat_deg: Option<f64>,
    pub source_stream: String,
    pub source_key: String,
    pub strength: Option<f64>,
    pub evidence: Evidence,
}

/// The evidence of one detection: the `evidence` and `evidence_text` maps of [`detections`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    /// Numeric entries, in insertion order.
    pub num: Vec<(String, f64)>,
    /// Text entries, in insertion order.
    pub text: Vec<(String, String)>,
}

impl Evidence {
    /// Sorts the entries of a JSON object into the two maps: numbers (non-finite dropped) to
    /// `num`; strings to `text`; booleans to `text` as `true` / `false`; arrays to `text` as
    /// their elements comma-joined (strings unquoted); nested objects to `text` as JSON.
    /// NULLs are left out. A value that is not an object gives empty evidence.
    pub fn from_json(v: &serde_json::Value) -> Evidence {
        use serde_json::Value;
        let mut e = Evidence::default();
        let Some(o) = v.as_object() else {
            return e;
        };
        for (k, v) in o {
            match v {
                Value::Null => {}
                Value::Number(n) => {
                    if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                        e.num.push((k.clone(), x));
                    }
                }
                Value::String(s) => e.text.push((k.clone(), s.clone())),
                Value::Bool(b) => e.text.push((k.clone(), b.to_string())),
                Value::Array(a) => {
                    let parts: Vec<String> = a
                        .iter()
                        .map(|x| match x {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    e.text.push((k.clone(), parts.join(",")));
                }
                Value::Object(_) => e.text.push((k.clone(), v.to_string())),
            }
        }
        e
    }

    /// The numeric entry `key`, if present.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.num.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The text entry `key`, if present.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Builder of `detections` rows.
pub struct DetectionsBuilder {
    cols: [StringBuilder; 10],
    evidence: MapBuilder<StringBuilder, Float64Builder>,
    evidence_text: MapBuilder<StringBuilder, StringBuilder>,
    detected_at: TimestampMillisecondBuilder,
    lon: Float64Builder,
    lat: Float64Builder,
    strength: Float64Builder,
}

impl Default for DetectionsBuilder {
    fn default() -> Self {
        DetectionsBuilder {
            cols: Default::default(),
            evidence: MapBuilder::new(
                Some(MapFieldNames::default()),
                StringBuilder::new(),
                Float64Builder::new(),
            ),
            evidence_text: MapBuilder::new(
                Some(MapFieldNames::default()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            detected_at: Default::default(),
            lon: Default::default(),
            lat: Default::default(),
            strength: Default::default(),
        }
    }
}

impl DetectionsBuilder {
    /// Appends one detection.
    pub fn append(&mut self, d: &DetectionRow) {
        let c = &mut self.cols;
        c[0].append_value(&d.detection_id);
        c[1].append_value(&d.rule_id);
        c[2].append_value(&d.rule_version);
        c[3].append_value(&d.limit_set);
        c[4].append_option(d.plate.as_deref());
        c[5].append_option(d.plate_color.as_deref());
        c[6].append_option(d.vin.as_deref());
        c[7].append_option(d.site_id.as_deref());
        c[8].append_value(&d.source_stream);
        c[9].append_value(&d.source_key);
        for (k, v) in &d.evidence.num {
            self.evidence.keys().append_value(k);
            self.evidence.values().append_value(*v);
        }
        self.evidence
            .append(true)
            .expect("keys and values appended in pairs");
        for (k, v) in &d.evidence.text {
            self.evidence_text.keys().append_value(k);
            self.evidence_text.values().append_value(v);
        }
        self.evidence_text
            .append(true)
            .expect("keys and values appended in pairs");
        self.detected_at.append_value(d.detected_at_ms);
        self.lon.append_option(d.lon_deg);
        self.lat.append_option(d.lat_deg);
        self.strength.append_option(d.strength);
    }
}

impl TableBuilder for DetectionsBuilder {
    fn len(&self) -> usize {
        self.cols[0].len()
    }
    fn finish(&mut self) -> RecordBatch {
        let c = &mut self.cols;
        let at = self.detected_at.finish().with_timezone("UTC");
        batch(
            detections(),
            vec![
                Arc::new(c[0].finish()),
                Arc::new(c[1].finish()),
                Arc::new(c[2].finish()),
                Arc::new(c[3].finish()),
                Arc::new(at),
                Arc::new(c[4].finish()),
                Arc::new(c[5].finish()),
                Arc::new(c[6].finish()),
                Arc::new(c[7].finish()),
                Arc::new(self.lon.finish()),
                Arc::new(self.lat.finish()),
                Arc::new(c[8].finish()),
                Arc::new(c[9].finish()),
                Arc::new(self.strength.finish()),
                Arc::new(self.evidence.finish()),
                Arc::new(self.evidence_text.finish()),
            ],
        )
    }
}

/// Builder of `quarantine` rows.
#[derive(Default)]
pub struct QuarantineBuilder {
    stream: StringBuilder,
    source_file: StringBuilder,
    source_offset: UInt64Builder,
    source_line: UInt64Builder,
    field: StringBuilder,
    reason: StringBuilder,
    raw: BinaryBuilder,
    at: TimestampMillisecondBuilder,
}

impl QuarantineBuilder {
    /// Appends one quarantined record.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        stream: &str,
        file: &str,
        offset: u64,
        line: u64,
        field: Option<&str>,
        reason: &str,
        raw: &[u8],
        at_ms: i64,
    ) {
        self.stream.append_value(stream);
        self.source_file.append_value(file);
        self.source_offset.append_value(offset);
        self.source_line.append_value(line);
        self.field.append_option(field);
        self.reason.append_value(reason);
        self.raw.append_value(raw);
        self.at.append_value(at_ms);
    }
}

impl TableBuilder for QuarantineBuilder {
    fn len(&self) -> usize {
        self.stream.len()
    }
    fn finish(&mut self) -> RecordBatch {
        let at = self.at.finish().with_timezone("UTC");
        batch(
            quarantine(),
            vec![
                Arc::new(self.stream.finish()),
                Arc::new(self.source_file.finish()),
                Arc::new(self.source_offset.finish()),
                Arc::new(self.source_line.finish()),
                Arc::new(self.field.finish()),
                Arc::new(self.reason.finish()),
                Arc::new(self.raw.finish()),
                Arc::new(at),
            ],
        )
    }
}

/// Table names of the OBD stream.
pub const OBD_SAMPLES: &str = "obd_samples";
pub const OBD_REPORTS: &str = "obd_reports";

/// `obd_samples`: one 1 Hz remote-OBD sample of one vehicle.
pub fn obd_samples() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let mut v = vec![
            s("vin", false),
            Field::new("sampled_at", ts(), false),
            Field::new("info_type", DataType::Int64, true),
        ];
        for n in crate::decode::fields::OBD_NUMS {
            v.push(f(n));
        }
        v.extend([
            Field::new("position_valid", DataType::Boolean, true),
            Field::new("time_inferred", DataType::Boolean, false),
            // sampled_at is a relative clock (time since the log started, 1970-01-01 + elapsed).
            Field::new("time_relative", DataType::Boolean, false),
            // HJ 1239: terminal send time − receive time (Kafka message time), s; NULL unknown.
            f("clock_skew_s"),
            // HJ 1239 command of the frame the sample came in: 2 live, 3 resend; NULL for
            // NDJSON/CSV samples (obd-remote-monitoring.md §1.3).
            Field::new("source_cmd", DataType::Int64, true),
            s("source_file", false),
            Field::new("source_offset", DataType::UInt64, false),
        ]);
        Arc::new(Schema::new(v))
    })
    .clone()
}

/// `obd_reports`: one OBD info block (MIL, readiness, calibration id, CVN, IUPR, DTCs).
pub fn obd_reports() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("vin", false),
            Field::new("reported_at", ts(), false),
            Field::new("protocol", DataType::Int64, true),
            Field::new("mil_on", DataType::Boolean, true),
            Field::new("diag_support", DataType::Int64, true),
            Field::new("diag_readiness", DataType::Int64, true),
            s("calibration_id", true),
            s("cvn", true),
            Field::new("iupr", i64_list(), true),
            Field::new("dtcs", utf8_list(), true),
            // Per DTC, parallel to `dtcs` (obd-remote-monitoring.md §1.6): the 4 raw bytes
            // as hex, the ISO/UDS failure-type and status bytes (protocols 0/1), the J1939
            // conversion method CM and occurrence count OC (protocol 2); NULL where the
            // protocol has no such field.
            Field::new("dtc_raw", utf8_list(), true),
            Field::new("dtc_failure_type", i64_list(), true),
            Field::new("dtc_status", i64_list(), true),
            Field::new("dtc_cm", i64_list(), true),
            Field::new("dtc_oc", i64_list(), true),
            s("source_file", false),
            Field::new("source_offset", DataType::UInt64, false),
        ]))
    })
    .clone()
}

/// One `obd_samples` row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObdSampleRow {
    pub vin: String,
    pub sampled_at_ms: i64,
    pub info_type: Option<u8>,
    /// Values in the order of `decode::fields::OBD_NUMS`.
    pub nums: [Option<f64>; 23],
    pub position_valid: Option<bool>,
    /// The source block had no collection time of its own (1 Hz from the frame time).
    pub time_inferred: bool,
    /// `sampled_at` is a relative clock (1970-01-01T00:00Z + time since the log started),
    /// not an instant (mapping `clock_mmss`, `elapsed_s`).
    pub time_relative: bool,
    /// HJ 1239 frames: the terminal's send time minus the receive time (Kafka message
    /// timestamp), seconds; positive = terminal clock ahead. `None` without a receive time.
    pub clock_skew_s: Option<f64>,
    /// HJ 1239 command of the source frame (2 real-time, 3 resend); `None` for NDJSON/CSV.
    pub source_cmd: Option<u8>,
}

/// Builder of `obd_samples` rows.
pub struct ObdSamplesBuilder {
    vin: StringBuilder,
    at: TimestampMillisecondBuilder,
    info_type: Int64Builder,
    nums: Vec<Float64Builder>,
    position_valid: BooleanBuilder,
    time_inferred: BooleanBuilder,
    time_relative: BooleanBuilder,
    clock_skew_s: Float64Builder,
    source_cmd: Int64Builder,
    source_file: StringBuilder,
    source_offset: UInt64Builder,
}

impl Default for ObdSamplesBuilder {
    fn default() -> Self {
        ObdSamplesBuilder {
            vin: StringBuilder::new(),
            at: TimestampMillisecondBuilder::new(),
            info_type: Int64Builder::new(),
            nums: (0..23).map(|_| Float64Builder::new()).collect(),
            position_valid: BooleanBuilder::new(),
            time_inferred: BooleanBuilder::new(),
            time_relative: BooleanBuilder::new(),
            clock_skew_s: Float64Builder::new(),
            source_cmd: Int64Builder::new(),
            source_file: StringBuilder::new(),
            source_offset: UInt64Builder::new(),
        }
    }
}

impl ObdSamplesBuilder {
    /// Appends one sample.
    pub fn append(&mut self, r: &ObdSampleRow, file: &str, offset: u64) {
        self.vin.append_value(&r.vin);
        self.at.append_value(r.sampled_at_ms);
        self.info_type.append_option(r.info_type.map(i64::from));
        for (b, v) in self.nums.iter_mut().zip(r.nums) {
            b.append_option(v);
        }
        self.position_valid.append_option(r.position_valid);
        self.time_inferred.append_value(r.time_inferred);
        self.time_relative.append_value(r.time_relative);
        self.clock_skew_s.append_option(r.clock_skew_s);
        self.source_cmd.append_option(r.source_cmd.map(i64::from));
        self.source_file.append_value(file);
        self.source_offset.append_value(offset);
    }
}

impl TableBuilder for ObdSamplesBuilder {
    fn len(&self) -> usize {
        self.vin.len()
    }
    fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.vin.finish()),
            Arc::new(self.at.finish().with_timezone("UTC")),
            Arc::new(self.info_type.finish()),
        ];
        for b in self.nums.iter_mut() {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.position_valid.finish()));
        cols.push(Arc::new(self.time_inferred.finish()));
        cols.push(Arc::new(self.time_relative.finish()));
        cols.push(Arc::new(self.clock_skew_s.finish()));
        cols.push(Arc::new(self.source_cmd.finish()));
        cols.push(Arc::new(self.source_file.finish()));
        cols.push(Arc::new(self.source_offset.finish()));
        batch(obd_samples(), cols)
    }
}

/// One `obd_reports` row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObdReportRow {
    pub vin: String,
    pub reported_at_ms: i64,
    pub protocol: Option<u8>,
    pub mil_on: Option<bool>,
    pub diag_support: Option<u16>,
    pub diag_readiness: Option<u16>,
    pub calibration_id: Option<String>,
    pub cvn: Option<String>,
    pub iupr: Vec<Option<u16>>,
    pub dtcs: Vec<String>,
    /// Per DTC (parallel to `dtcs`): raw bytes, ISO failure type / status, J1939 CM / OC.
    pub dtc_details: Vec<DtcDetail>,
}

/// The bytes of one DTC beside its code (`obd-remote-monitoring.md §1.6`): nothing of what the
/// terminal sent is dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DtcDetail {
    /// The 4 raw bytes, big-endian.
    pub raw: u32,
    /// ISO 15765 / ISO 27145 (UDS) failure-type byte.
    pub failure_type: Option<u8>,
    /// ISO 15765 / ISO 27145 (UDS) status byte.
    pub status: Option<u8>,
    /// SAE J1939 SPN conversion method (0/1).
    pub conversion_method: Option<u8>,
    /// SAE J1939 occurrence count (0–126; 127 = not available).
    pub occurrence_count: Option<u8>,
}

/// Builder of `obd_reports` rows.
pub struct ObdReportsBuilder {
    vin: StringBuilder,
    at: TimestampMillisecondBuilder,
    protocol: Int64Builder,
    mil_on: BooleanBuilder,
    support: Int64Builder,
    readiness: Int64Builder,
    cal: StringBuilder,
    cvn: StringBuilder,
    iupr: ListBuilder<Int64Builder>,
    dtcs: ListBuilder<StringBuilder>,
    dtc_raw: ListBuilder<StringBuilder>,
    dtc_ft: ListBuilder<Int64Builder>,
    dtc_st: ListBuilder<Int64Builder>,
    dtc_cm: ListBuilder<Int64Builder>,
    dtc_oc: ListBuilder<Int64Builder>,
    source_file: StringBuilder,
    source_offset: UInt64Builder,
}

impl Default for ObdReportsBuilder {
    fn default() -> Self {
        ObdReportsBuilder {
            vin: StringBuilder::new(),
            at: TimestampMillisecondBuilder::new(),
            protocol: Int64Builder::new(),
            mil_on: BooleanBuilder::new(),
            support: Int64Builder::new(),
            readiness: Int64Builder::new(),
            cal: StringBuilder::new(),
            cvn: StringBuilder::new(),
            iupr: ListBuilder::new(Int64Builder::new()),
            dtcs: ListBuilder::new(StringBuilder::new()),
            dtc_raw: ListBuilder::new(StringBuilder::new()),
            dtc_ft: ListBuilder::new(Int64Builder::new()),
            dtc_st: ListBuilder::new(Int64Builder::new()),
            dtc_cm: ListBuilder::new(Int64Builder::new()),
            dtc_oc: ListBuilder::new(Int64Builder::new()),
            source_file: StringBuilder::new(),
            source_offset: UInt64Builder::new(),
        }
    }
}

impl ObdReportsBuilder {
    /// Appends one report.
    pub fn append(&mut self, r: &ObdReportRow, file: &str, offset: u64) {
        self.vin.append_value(&r.vin);
        self.at.append_value(r.reported_at_ms);
        self.protocol.append_option(r.protocol.map(i64::from));
        self.mil_on.append_option(r.mil_on);
        self.support.append_option(r.diag_support.map(i64::from));
        self.readiness
            .append_option(r.diag_readiness.map(i64::from));
        self.cal.append_option(r.calibration_id.as_deref());
        self.cvn.append_option(r.cvn.as_deref());
        for w in &r.iupr {
            self.iupr.values().append_option(w.map(i64::from));
        }
        self.iupr.append(true);
        for d in &r.dtcs {
            self.dtcs.values().append_value(d);
        }
        self.dtcs.append(true);
        for d in &r.dtc_details {
            self.dtc_raw.values().append_value(format!("{:08X}", d.raw));
            self.dtc_ft
                .values()
                .append_option(d.failure_type.map(i64::from));
            self.dtc_st.values().append_option(d.status.map(i64::from));
            self.dtc_cm
                .values()
                .append_option(d.conversion_method.map(i64::from));
            self.dtc_oc
                .values()
                .append_option(d.occurrence_count.map(i64::from));
        }
        self.dtc_raw.append(true);
        self.dtc_ft.append(true);
        self.dtc_st.append(true);
        self.dtc_cm.append(true);
        self.dtc_oc.append(true);
        self.source_file.append_value(file);
        self.source_offset.append_value(offset);
    }
}

impl TableBuilder for ObdReportsBuilder {
    fn len(&self) -> usize {
        self.vin.len()
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            obd_reports(),
            vec![
                Arc::new(self.vin.finish()),
                Arc::new(self.at.finish().with_timezone("UTC")),
                Arc::new(self.protocol.finish()),
                Arc::new(self.mil_on.finish()),
                Arc::new(self.support.finish()),
                Arc::new(self.readiness.finish()),
                Arc::new(self.cal.finish()),
                Arc::new(self.cvn.finish()),
                Arc::new(self.iupr.finish()),
                Arc::new(self.dtcs.finish()),
                Arc::new(self.dtc_raw.finish()),
                Arc::new(self.dtc_ft.finish()),
                Arc::new(self.dtc_st.finish()),
                Arc::new(self.dtc_cm.finish()),
                Arc::new(self.dtc_oc.finish()),
                Arc::new(self.source_file.finish()),
                Arc::new(self.source_offset.finish()),
            ],
        )
    }
}

/// Table name of the entrance alerts.
pub const ALERTS: &str = "alerts";

/// `alerts`: one entrance alert sent to patrols (issue 9 item 6): a watch-listed vehicle read
/// at an urban-entrance site, after de-duplication per (plate, site, reasons) within the run
/// config's `[alerts].dedup_window_ms`. `seen_at` is the read instant (UTC); `seen_at_local`
/// the same instant as text in the enforcement zone (limit set `[time].zone`, or run config `time_zone`).
pub fn alerts() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("detection_id", false),
            s("kind", false),
            Field::new("seen_at", ts(), false),
            s("seen_at_local", false),
            s("plate", false),
            s("plate_color", true),
            s("vehicle_type", true),
            s("vin", true),
            s("site_id", false),
            Field::new("reasons", utf8_list(), false),
            s("source_key", false),
        ]))
    })
    .clone()
}

/// One `alerts` row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertRow {
    pub detection_id: String,
    pub kind: String,
    pub seen_at_ms: i64,
    pub seen_at_local: String,
    pub plate: String,
    pub plate_color: Option<String>,
    pub vehicle_type: Option<String>,
    pub vin: Option<String>,
    pub site_id: String,
    pub reasons: Vec<String>,
    pub source_key: String,
}

/// Builder of `alerts` rows.
#[derive(Default)]
pub struct AlertsBuilder {
    cols: [StringBuilder; 9],
    seen_at: TimestampMillisecondBuilder,
    reasons: ListBuilder<StringBuilder>,
}

impl AlertsBuilder {
    /// Appends one alert.
    pub fn append(&mut self, a: &AlertRow) {
        let c = &mut self.cols;
        c[0].append_value(&a.detection_id);
        c[1].append_value(&a.kind);
        c[2].append_value(&a.seen_at_local);
        c[3].append_value(&a.plate);
        c[4].append_option(a.plate_color.as_deref());
        c[5].append_option(a.vehicle_type.as_deref());
        c[6].append_option(a.vin.as_deref());
        c[7].append_value(&a.site_id);
        c[8].append_value(&a.source_key);
        self.seen_at.append_value(a.seen_at_ms);
        for r in &a.reasons {
            self.reasons.values().append_value(r);
        }
        self.reasons.append(true);
    }
}

impl TableBuilder for AlertsBuilder {
    fn len(&self) -> usize {
        self.cols[0].len()
    }
    fn finish(&mut self) -> RecordBatch {
        let c = &mut self.cols;
        let at = self.seen_at.finish().with_timezone("UTC");
        batch(
            alerts(),
            vec![
                Arc::new(c[0].finish()),
                Arc::new(c[1].finish()),
                Arc::new(at),
                Arc::new(c[2].finish()),
                Arc::new(c[3].finish()),
                Arc::new(c[4].finish()),
                Arc::new(c[5].finish()),
                Arc::new(c[6].finish()),
                Arc::new(c[7].finish()),
                Arc::new(self.reasons.finish()),
                Arc::new(c[8].finish()),
            ],
        )
    }
}

/// Table name of the server's audit trail.
pub const AUDIT: &str = "audit";

/// `audit`: one request to `plumewatch serve` (issue 13 item 4), written whatever its outcome
/// (200, 400, 401, 403, 404, 500 …). `who` is the authenticated user name, or the name a
/// refused request claimed (NULL when it claimed none); `role` is the user's role when
/// authenticated. `what` is the route template (`/api/plates/{plate}`), never the raw path;
/// `parameters` is a JSON object of the path and query parameters as sent (plates included:
/// this table, not the log, is where personal data may appear). `rows` is the number of rows
/// returned (NULL when the request returned none, e.g. refused). `at` is the instant the request
/// arrived (UTC); `duration_ms` its handling time in milliseconds.
pub fn audit() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            s("request_id", false),
            Field::new("at", ts(), false),
            s("who", true),
            s("role", true),
            s("method", false),
            s("what", false),
            s("parameters", false),
            Field::new("rows", DataType::Int64, true),
            Field::new("status", DataType::Int64, false),
            f("duration_ms"),
            s("client", true),
            s("instance", false),
        ]))
    })
    .clone()
}

/// One `audit` row (see [`audit`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditRow {
    pub request_id: String,
    /// Unix ms, UTC.
    pub at_ms: i64,
    pub who: Option<String>,
    pub role: Option<String>,
    pub method: String,
    pub what: String,
    /// JSON object text.
    pub parameters: String,
    pub rows: Option<i64>,
    pub status: i64,
    pub duration_ms: f64,
    pub client: Option<String>,
    pub instance: String,
}

/// Builder of `audit` rows.
#[derive(Default)]
pub struct AuditBuilder {
    request_id: StringBuilder,
    at: TimestampMillisecondBuilder,
    who: StringBuilder,
    role: StringBuilder,
    method: StringBuilder,
    what: StringBuilder,
    parameters: StringBuilder,
    rows: Int64Builder,
    status: Int64Builder,
    duration_ms: Float64Builder,
    client: StringBuilder,
    instance: StringBuilder,
}

impl AuditBuilder {
    /// Appends one request.
    pub fn append(&mut self, a: &AuditRow) {
        self.request_id.append_value(&a.request_id);
        self.at.append_value(a.at_ms);
        self.who.append_option(a.who.as_deref());
        self.role.append_option(a.role.as_deref());
        self.method.append_value(&a.method);
        self.what.append_value(&a.what);
        self.parameters.append_value(&a.parameters);
        self.rows.append_option(a.rows);
        self.status.append_value(a.status);
        self.duration_ms.append_value(a.duration_ms);
        self.client.append_option(a.client.as_deref());
        self.instance.append_value(&a.instance);
    }
}

impl TableBuilder for AuditBuilder {
    fn len(&self) -> usize {
        self.request_id.len()
    }
    fn finish(&mut self) -> RecordBatch {
        batch(
            audit(),
            vec![
                Arc::new(self.request_id.finish()),
                Arc::new(self.at.finish().with_timezone("UTC")),
                Arc::new(self.who.finish()),
                Arc::new(self.role.finish()),
                Arc::new(self.method.finish()),
                Arc::new(self.what.finish()),
                Arc::new(self.parameters.finish()),
                Arc::new(self.rows.finish()),
                Arc::new(self.status.finish()),
                Arc::new(self.duration_ms.finish()),
                Arc::new(self.client.finish()),
                Arc::new(self.instance.finish()),
            ],
        )
    }
}

/// The table catalog (DESIGN.md "Tables"): every table's name, Arrow schema, Hive-partition
/// timestamp column (partitions are calendar days of that column in the enforcement zone;
/// `vehicles` is unpartitioned) and natural key (DESIGN.md "Time, plates and keys": no key is
/// written twice, by `run`, by `ingest` or by a repeated file; enforced by
/// `sink::keys::KeyIndex`). The sink, the query layer and the pipeline all read it; the index
/// of a table here is its `sink::tables::TableId`.
pub const CATALOG: [TableDef; 10] = [
    TableDef {
        name: RSD_PASSES,
        schema: rsd_passes,
        partition_by: Some("passed_at"),
        key: KeyDef {
            key: &["pass_id"],
            // Derived at ingest from the registry and the limit set: the same pass read again
            // after a registry or limit-set change is the same pass, not a conflict.
            not_content: &[
                "plate_status",
                "fuel",
                "fuel_source",
                "vehicle_category",
                "vin",
                "co2_pct",
                "co_pct",
                "hc_ppm",
                "no_ppm",
                "co_g_per_kg",
                "hc_g_per_kg",
                "no_g_per_kg",
                "no2_g_per_kg",
                "nh3_g_per_kg",
                "nox_g_per_kg",
                "vsp_kw_t",
                "speed_status",
                "accel_status",
                "vsp_status",
                "wind_status",
                "temp_status",
                "co2_status",
                "valid",
                "invalid_code",
                "invalid_detail",
                "verdict",
                "exceeded",
                "limit_set",
                "flags",
                "source_file",
                "source_offset",
            ],
            conflicts: true,
            snapshot: false,
        },
    },
    TableDef {
        name: PLATE_READS,
        schema: plate_reads,
        partition_by: Some("read_at"),
        key: KeyDef {
            key: &["read_id"],
            not_content: &["plate_status", "vin", "source_file", "source_offset"],
            conflicts: true,
            snapshot: false,
        },
    },
    TableDef {
        name: VEHICLES,
        schema: vehicles,
        partition_by: None,
        key: KeyDef {
            key: &["plate", "plate_color"],
            not_content: &[],
            conflicts: true,
            snapshot: true,
        },
    },
    TableDef {
        name: OBD_SAMPLES,
        schema: obd_samples,
        partition_by: Some("sampled_at"),
        key: KeyDef {
            key: &["vin", "sampled_at", "info_type"],
            not_content: &["source_file", "source_offset"],
            conflicts: true,
            snapshot: false,
        },
    },
    TableDef {
        name: OBD_REPORTS,
        schema: obd_reports,
        partition_by: Some("reported_at"),
        key: KeyDef {
            key: &["vin", "reported_at"],
            not_content: &["source_file", "source_offset"],
            conflicts: true,
            snapshot: false,
        },
    },
    TableDef {
        name: DETECTIONS,
        schema: detections,
        partition_by: Some("detected_at"),
        key: KeyDef {
            key: &["detection_id"],
            // Not compared (conflicts: false); the maps are left out of the content hash.
            not_content: &["evidence", "evidence_text"],
            conflicts: false,
            snapshot: false,
        },
    },
    TableDef {
        name: QUARANTINE,
        schema: quarantine,
        partition_by: Some("quarantined_at"),
        key: KeyDef {
            key: &["stream", "source_file", "source_offset", "raw"],
            not_content: &[],
            conflicts: false,
            snapshot: false,
        },
    },
    TableDef {
        name: ALERTS,
        schema: alerts,
        partition_by: Some("seen_at"),
        key: KeyDef {
            key: &["detection_id"],
            not_content: &[],
            conflicts: false,
            snapshot: false,
        },
    },
    TableDef {
        name: SOURCE_RESET,
        schema: source_reset,
        partition_by: Some("reset_at"),
        key: KeyDef {
            key: &["instance", "source", "reset_at"],
            not_content: &[],
            conflicts: false,
            snapshot: false,
        },
    },
    TableDef {
        name: AUDIT,
        schema: audit,
        partition_by: Some("at"),
        key: KeyDef {
            key: &["request_id"],
            not_content: &[],
            conflicts: false,
            snapshot: false,
        },
    },
];

/// One table of the [`CATALOG`].
#[derive(Clone, Copy, Debug)]
pub struct TableDef {
    /// Table (directory) name.
    pub name: &'static str,
    /// Its Arrow schema.
    pub schema: fn() -> SchemaRef,
    /// Timestamp column whose local day is the `date=` partition; `None`: unpartitioned.
    pub partition_by: Option<&'static str>,
    /// Its natural key.
    pub key: KeyDef,
}

/// A table's natural key and how a second row with a known key is judged.
#[derive(Clone, Copy, Debug)]
pub struct KeyDef {
    /// Key columns (a row's key is the tuple; NULL is a value).
    pub key: &'static [&'static str],
    /// Columns left out when comparing a known key's content: provenance (`source_file`,
    /// `source_offset`) and values derived at ingest from the registry or the limit set.
    pub not_content: &'static [&'static str],
    /// A known key with different content is reported (quarantined, naming both versions).
    /// `false` for derived tables (`detections`, `alerts`: the first row is kept) and for
    /// `quarantine` (its key is its content).
    pub conflicts: bool,
    /// The table is a snapshot replaced as a whole (`vehicles`): keys are unique within one
    /// snapshot; committed rows of an older snapshot are not consulted.
    pub snapshot: bool,
}
