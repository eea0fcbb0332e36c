//! Column mappings: how a vendor's CSV columns or JSON field names become plumewatch's
//! canonical fields, with unit conversion, value translation and missing-value tokens.
//!
//! One mapping file serves CSV and NDJSON alike (`fixtures/mappings/conox.toml` reads the
//! CONOX CSV and the same records written as NDJSON). Without a file, every canonical field
//! is read under its own name in its canonical unit (see `schemas/`).
//!
//! ```toml
//! [mapping]
//! name = "conox"
//! missing = ["No data", "NO DATA", ""]
//! [fields.accel_mps2]
//! source = "AccelKPHPerSec"
//! unit = "kmh_per_s"           # or scale = 0.2777…, offset = 0
//! [fields.passed_at]
//! source = "PassageTime"
//! time = "unix_s"              # unix_ms | unix_us | rfc3339 | a chrono format, with utc_offset
//! [fields.fuel]
//! source = "FuelType"
//! values = { DIESEL = "diesel" }
//! ```
//!
//! Reading options under `[mapping]`: `encoding` (an encoding_rs label such as `"gbk"`,
//! `"gb18030"`, `"utf-8"`: the input is transcoded before decoding, never with lossy
//! replacement), `delimiter` (CSV, default `","`), `comment` (CSV lines starting with it are
//! skipped), `decimal_comma` (`0,0100` is 0.01) and `thousands_separator` (`"."`, `","`, `" "`;
//! groups of three digits are checked). Any key the product does not implement is refused when
//! the mapping loads, naming the key.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::Deserialize;

use super::record::{FieldError, FieldSpec, Kind, Record, Val};
use crate::time::{EpochUnit, LocalZone, TimePolicy};

/// Errors loading or compiling a mapping file.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("mapping {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("mapping {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingHeader {
    #[serde(default)]
    name: String,
    #[serde(default)]
    missing: Vec<String>,
    /// Extra "no plate" words of this source (besides `model::DEFAULT_PLATE_PLACEHOLDERS`),
    /// e.g. `plate_placeholders = ["无号", "NO PLATE"]`.
    #[serde(default)]
    plate_placeholders: Vec<String>,
    /// Input encoding label (encoding_rs / WHATWG names: `gbk`, `gb18030`, `utf-8` …).
    encoding: Option<String>,
    /// CSV cell delimiter, one ASCII character (default `,`).
    delimiter: Option<String>,
    /// CSV comment prefix: lines starting with it are skipped.
    comment: Option<String>,
    /// Numbers use a decimal comma (`0,0100`).
    #[serde(default)]
    decimal_comma: bool,
    /// Thousands separator in numbers (`.`, `,`, ` ` or `'`).
    thousands_separator: Option<String>,
}

/// One field entry of a mapping file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldEntry {
    /// Source column (CSV header) or JSON field name.
    pub source: String,
    /// Named unit of the source value (see [`Conversion::named`]).
    pub unit: Option<String>,
    /// Linear conversion `canonical = raw·scale + offset` (when `unit` is not given).
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    /// Time encoding: `unix_s`, `unix_ms`, `unix_us`, `rfc3339`, a chrono format string, or
    /// a relative clock (`clock_mmss`, `elapsed_s`; OBD `sampled_at` only, see
    /// [`TimeFormat`]); a list is tried in order. In a format, an offset (`%z`, `%:z`, also
    /// `Z`) read from the value wins over `utc_offset`; `%f` after a `.` reads the fraction
    /// digits as written (`.813` = 813 ms); `%b`/`%B` also read Spanish, Portuguese, French,
    /// German, Italian and Dutch month words (`ago.` = Aug).
    pub time: Option<OneOrMany<String>>,
    /// Zone of local times without an offset: `+08:00` or an IANA name (`Europe/Lisbon`,
    /// DST-aware). Default: the enforcement zone (limit set `[time].zone`, Asia/Shanghai).
    pub utc_offset: Option<String>,
    /// A source column whose values carry the source's own UTC offset (Torque's `GPS Time`,
    /// `… GMT+01:00 2026`): local times take the offset written there in the same record, else
    /// the last one seen in this input. Records that come before the first offset of an input
    /// wait for it (CSV and NDJSON readers, bounded by `ReadOptions::max_held_records` /
    /// `max_held_bytes`); an input without any offset is read in `utc_offset`.
    pub utc_offset_from: Option<String>,
    /// Translation of source values to canonical text (e.g. colour codes, fuel words).
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// One value or a list of alternatives (tried in order / all mapped to the same field).
/// Deserialized by hand (not `untagged`) so an unknown key inside names itself instead of
/// "did not match any variant".
#[derive(Clone, Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, IntoDeserializer, value};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(value::SeqAccessDeserializer::new(a)).map(OneOrMany::Many)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(value::MapAccessDeserializer::new(a)).map(OneOrMany::One)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(s.into_deserializer()).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Clone> OneOrMany<T> {
    fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A mapping file. A field may list several sources (e.g. `Speed (OBD)(km/h)` and
/// `Speed (OBD)(mph)` with `unit = "mph"`); whichever the input has is read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    mapping: MappingHeader,
    #[serde(default)]
    fields: BTreeMap<String, OneOrMany<FieldEntry>>,
}

/// Numeric conversion to the canonical unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conversion {
    Linear {
        scale: f64,
        offset: f64,
    },
    /// Grade given in degrees → percent (`100·tan θ`).
    DegreesToPct,
}

impl Conversion {
    /// Named units: `kmh_per_s` (→ m/s²), `mps` (m/s → km/h), `mph` (→ km/h), `ppm_per_pct`
    /// (Chinese-platform HC/CO2 and NO/CO2 in ppm/% → mol/mol: ×1e-4, `remote-sensing.md §1.6`),
    /// `pct_per_pct` and `identity` (×1), `fraction` (→ percent ×100), `degrees` (grade in
    /// degrees → percent), `kpa`, `celsius`.
    pub fn named(unit: &str) -> Option<Conversion> {
        let lin = |scale: f64| Some(Conversion::Linear { scale, offset: 0.0 });
        match unit {
            "kmh_per_s" => lin(1.0 / 3.6),
            "mps" => lin(3.6),
            "mph" => lin(1.609_344),
            "ppm_per_pct" => lin(1e-4),
            "pct_per_pct" | "identity" | "kmh" | "mps2" | "percent" | "kpa" | "celsius" => lin(1.0),
            "fraction" => lin(100.0),
            "degrees" => Some(Conversion::DegreesToPct),
            "fahrenheit" => Some(Conversion::Linear {
                scale: 5.0 / 9.0,
                offset: -32.0 * 5.0 / 9.0,
            }),
            _ => None,
        }
    }

    #[inline]
    fn apply(self, v: f64) -> f64 {
        match self {
            Conversion::Linear { scale, offset } => v * scale + offset,
            Conversion::DegreesToPct => 100.0 * v.to_radians().tan(),
        }
    }
}

/// How a time field is encoded. Absolute instants must fall in the limit set's window
/// (`[time]`: from 2000-01-01 to now + 1 day by default); an epoch number outside it is
/// refused with its readings as s, ms and µs, never re-scaled.
#[derive(Clone, Debug)]
pub enum TimeFormat {
    /// Canonical: RFC 3339 text (with its offset), or an integer of Unix milliseconds.
    Auto,
    UnixSeconds,
    UnixMillis,
    UnixMicros,
    Rfc3339,
    /// Seconds since the log started (a relative clock, e.g. an engine-run-time column):
    /// stored as 1970-01-01T00:00Z + elapsed and flagged `time_relative`.
    ElapsedSeconds,
    /// Text patterns tried in order.
    Patterns(Vec<Pattern>),
}

/// One text time pattern.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// A chrono format (after [`compile_format`]). `zoned`: it reads an offset from the value,
    /// which wins; otherwise the time is local to the entry's zone. `months`: it has month
    /// names, so localised ones are retried in English.
    Chrono {
        format: String,
        zoned: bool,
        months: bool,
    },
    /// `mm:ss.f` only (a spreadsheet cut the date and hour): a relative clock, anchored at
    /// 1970-01-01 UTC and unrolled over hour wraps in input order, so durations and order stay
    /// right; flagged `time_relative`, never taken as an instant.
    ClockMmss,
}

/// A parsed time text.
enum Parsed {
    /// An instant (the value carried its offset).
    Utc(i64),
    /// A local time (ms since 1970 as if UTC) to place in a zone.
    Local(i64),
    /// A relative clock, ms since the log started.
    Relative(i64),
}

/// `t` without control characters (C0 such as NUL, DEL, C1) or spaces at its ends. Errors,
/// naming `field`, when a control character or U+FFFD (a replaced undecodable byte) is left
/// inside.
fn clean_text<'t>(field: &str, t: &'t str) -> Result<&'t str, FieldError> {
    let t = t.trim_matches(|c: char| c.is_control() || c.is_whitespace());
    if let Some(c) = t.chars().find(|c| c.is_control() || *c == '\u{FFFD}') {
        let what = if c == '\u{FFFD}' {
            "U+FFFD (a byte that was not valid text: wrong encoding?)".to_string()
        } else {
            format!("control character U+{:04X}", c as u32)
        };
        return Err(FieldError::field(
            field,
            format!("{what} inside \"{}\"", t.escape_default()),
        ));
    }
    Ok(t)
}

/// A strftime format as vendors write it → (chrono format, reads an offset, reads month
/// names). `%z` / `%:z` become chrono's `%#z` (also reads `Z` and `+08`); `.%f` (fraction
/// digits as written) becomes `%.f` (chrono's `%f` would read `.813` as 813 ns). Refused:
/// `%Z` (zone names are ambiguous: CST is China and US Central), `%s` (use `unix_s`), a `%f`
/// not after a `.`.
pub fn compile_format(f: &str) -> Result<(String, bool, bool), String> {
    let cs: Vec<char> = f.chars().collect();
    let (mut out, mut zoned, mut months) = (String::with_capacity(f.len() + 4), false, false);
    let mut k = 0;
    while k < cs.len() {
        if cs[k] != '%' {
            out.push(cs[k]);
            k += 1;
            continue;
        }
        let mut j = k + 1;
        while j < cs.len() && "-_0#.:123456789".contains(cs[j]) {
            j += 1;
        }
        let Some(&letter) = cs.get(j) else {
            out.extend(&cs[k..]);
            break;
        };
        let spec: String = cs[k..=j].iter().collect();
        let flags = &cs[k + 1..j];
        match letter {
            'z' => {
                zoned = true;
                out.push_str("%#z");
            }
            '+' => {
                zoned = true;
                out.push_str(&spec);
            }
            'Z' => {
                return Err(format!(
                    "time format '{f}': %Z (zone names) cannot be read reliably (CST is both China and US Central time); read the offset with %z or %:z, or set utc_offset"
                ));
            }
            's' => {
                return Err(format!(
                    "time format '{f}': use time = \"unix_s\" for Unix seconds"
                ));
            }
            'f' if flags.is_empty() => {
                if out.ends_with('.') {
                    out.pop();
                    out.push_str("%.f");
                } else {
                    return Err(format!(
                        "time format '{f}': %f must follow a '.' (it reads the fraction digits as written)"
                    ));
                }
            }
            'b' | 'B' | 'h' => {
                months = true;
                out.push_str(&spec);
            }
            _ => out.push_str(&spec),
        }
        k = j + 1;
    }
    Ok((out, zoned, months))
}

/// A compiled entry: canonical slot plus conversions.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub slot: usize,
    pub name: &'static str,
    pub kind: Kind,
    conv: Conversion,
    time: TimeFormat,
    values: HashMap<String, String>,
    /// `clock_mmss` unrolling state: (last ms within the hour, hours added).
    clock: std::cell::Cell<(i64, i64)>,
    /// Zone of local times (`utc_offset`); `None` = the enforcement zone.
    local: Option<LocalZone>,
    /// Local times wait for the offset of a `utc_offset_from` column.
    offset_from: bool,
    /// This entry is a `utc_offset_from` column: it only records the offset it carries.
    zone_source: bool,
}

/// A mapping compiled against one stream's field table.
#[derive(Clone, Debug)]
pub struct CompiledMapping {
    pub name: String,
    entries: Vec<Compiled>,
    by_source: HashMap<String, usize>,
    missing: Vec<String>,
    /// `[mapping] plate_placeholders`, compared as `model::plate_placeholder_key`.
    plate_placeholders: Vec<String>,
    /// Enforcement zone and the window of plausible instants (limit set `[time]`).
    policy: TimePolicy,
    /// Last offset seen in a `utc_offset_from` column in this input (seconds east).
    sticky_offset_s: std::cell::Cell<Option<i32>>,
    /// Input encoding when not UTF-8 (`[mapping] encoding`).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// CSV delimiter byte.
    pub delimiter: u8,
    /// CSV comment prefix.
    pub comment: Option<String>,
    decimal_comma: bool,
    thousands: Option<char>,
}

impl Mapping {
    /// Reads a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| MappingError::Parse {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    }

    /// Compiles against `specs`; with `None`, the identity mapping of canonical names.
    pub fn compile(
        mapping: Option<&Mapping>,
        specs: &'static [FieldSpec],
        origin: &str,
    ) -> Result<CompiledMapping, MappingError> {
        let invalid = |message: String| MappingError::Invalid {
            path: origin.to_string(),
            message,
        };
        let mut entries = Vec::new();
        let mut by_source = HashMap::new();
        let (name, missing) = match mapping {
            Some(m) => (m.mapping.name.clone(), m.mapping.missing.clone()),
            None => ("canonical".to_string(), vec![String::new()]),
        };
        let hd = mapping.map(|m| m.mapping.clone()).unwrap_or_default();
        let encoding = match hd.encoding.as_deref() {
            None => None,
            Some(label) => {
                let enc = encoding_rs::Encoding::for_label(label.trim().as_bytes())
                    .ok_or_else(|| invalid(format!("[mapping] encoding: unknown encoding '{label}' (e.g. \"gbk\", \"gb18030\", \"utf-8\")")))?;
                if !enc.is_ascii_compatible() {
                    return Err(invalid(format!(
                        "[mapping] encoding: '{label}' ({}) is not ASCII-compatible; re-encode the input as UTF-8",
                        enc.name()
                    )));
                }
                (enc != encoding_rs::UTF_8).then_some(enc)
            }
        };
        let delimiter = match hd.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => {
                return Err(invalid(format!(
                    "[mapping] delimiter: '{d}' is not one ASCII character"
                )));
            }
        };
        let thousands = match hd.thousands_separator.as_deref() {
            None | Some("") => None,
            Some(t @ ("." | "," | " " | "'" | "\u{a0}")) => t.chars().next(),
            Some(t) => {
                return Err(invalid(format!(
                    "[mapping] thousands_separator: '{t}' is not one of \".\", \",\", \" \", \"'\""
                )));
            }
        };
        if thousands == Some(if hd.decimal_comma { ',' } else { '.' }) {
            return Err(invalid(
                "[mapping] thousands_separator equals the decimal mark".to_string(),
            ));
        }
        if hd.decimal_comma && delimiter == b',' {
            return Err(invalid(
                "[mapping] decimal_comma needs another delimiter (e.g. delimiter = \";\")"
                    .to_string(),
            ));
        }
        match mapping {
            None => {
                for (slot, s) in specs.iter().enumerate() {
                    by_source.insert(s.name.to_string(), entries.len());
                    entries.push(Compiled {
                        slot,
                        name: s.name,
                        kind: s.kind,
                        conv: Conversion::Linear {
                            scale: 1.0,
                            offset: 0.0,
                        },
                        time: TimeFormat::Auto,
                        values: HashMap::new(),
                        clock: Default::default(),
                        local: None,
                        offset_from: false,
                        zone_source: false,
                    });
                }
            }
            Some(m) => {
                for (field, alts) in &m.fields {
                    for e in alts.to_vec().iter() {
                        let Some(slot) = specs.iter().position(|s| s.name == field) else {
                            let known: Vec<_> = specs.iter().map(|s| s.name).collect();
                            return Err(invalid(format!(
                                "[fields.{field}]: not a field of this stream (known: {})",
                                known.join(", ")
                            )));
                        };
                        let spec = specs[slot];
                        let conv = match (&e.unit, e.scale, e.offset) {
                            (Some(u), _, _) => Conversion::named(u).ok_or_else(|| {
                                invalid(format!("[fields.{field}]: unknown unit '{u}'"))
                            })?,
                            (None, s, o) => Conversion::Linear {
                                scale: s.unwrap_or(1.0),
                                offset: o.unwrap_or(0.0),
                            },
                        };
                        let times = e.time.as_ref().map(|t| t.to_vec()).unwrap_or_default();
                        let relative = times
                            .iter()
                            .any(|t| matches!(t.as_str(), "clock_mmss" | "elapsed_s"));
                        if relative && spec.name != "sampled_at" {
                            return Err(invalid(format!(
                                "[fields.{field}]: a relative clock (time since the log started) is never an instant; only OBD sampled_at may use one (rows flagged time_relative)"
                            )));
                        }
                        let time = match times.first().map(String::as_str) {
                            None => TimeFormat::Auto,
                            Some("unix_s") => TimeFormat::UnixSeconds,
                            Some("unix_ms") => TimeFormat::UnixMillis,
                            Some("unix_us") => TimeFormat::UnixMicros,
                            Some("rfc3339") => TimeFormat::Rfc3339,
                            Some("elapsed_s") => TimeFormat::ElapsedSeconds,
                            Some(_) => TimeFormat::Patterns(
                                times
                                    .iter()
                                    .map(|p| match p.as_str() {
                                        "clock_mmss" => Ok(Pattern::ClockMmss),
                                        _ => compile_format(p)
                                            .map(|(format, zoned, months)| Pattern::Chrono {
                                                format,
                                                zoned,
                                                months,
                                            })
                                            .map_err(|m| invalid(format!("[fields.{field}]: {m}"))),
                                    })
                                    .collect::<Result<_, _>>()?,
                            ),
                        };
                        let local = match e.utc_offset.as_deref() {
                            None => None,
                            Some(o) => Some(crate::time::parse_zone(o).map_err(|m| {
                                invalid(format!("[fields.{field}]: bad utc_offset: {m}"))
                            })?),
                        };
                        if let Some(zs) = &e.utc_offset_from {
                            if spec.kind != Kind::Time {
                                return Err(invalid(format!(
                                    "[fields.{field}]: utc_offset_from is for time fields"
                                )));
                            }
                            if by_source.insert(zs.clone(), entries.len()).is_some() {
                                return Err(invalid(format!("source '{zs}' is mapped twice")));
                            }
                            entries.push(Compiled {
                                slot,
                                name: spec.name,
                                kind: spec.kind,
                                conv,
                                time: TimeFormat::Auto,
                                values: HashMap::new(),
                                clock: Default::default(),
                                local: None,
                                offset_from: false,
                                zone_source: true,
                            });
                        }
                        if by_source.insert(e.source.clone(), entries.len()).is_some() {
                            return Err(invalid(format!("source '{}' is mapped twice", e.source)));
                        }
                        entries.push(Compiled {
                            slot,
                            name: spec.name,
                            kind: spec.kind,
                            conv,
                            time,
                            values: e
                                .values
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            clock: Default::default(),
                            local,
                            offset_from: e.utc_offset_from.is_some(),
                            zone_source: false,
                        });
                    }
                }
            }
        }
        let plate_placeholders = mapping
            .map(|m| {
                m.mapping
                    .plate_placeholders
                    .iter()
                    .map(|w| crate::model::plate_placeholder_key(w))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CompiledMapping {
            name,
            entries,
            by_source,
            missing,
            plate_placeholders,
            policy: TimePolicy::default(),
            sticky_offset_s: Default::default(),
            encoding,
            delimiter,
            comment: hd.comment.filter(|c| !c.is_empty()),
            decimal_comma: hd.decimal_comma,
            thousands,
        })
    }
}

/// Renders an integral float without the fraction (`34.0` → `34`).
fn id_from_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl CompiledMapping {
    /// Uses `policy` (the limit set's `[time]`: enforcement zone, window of instants) instead
    /// of the defaults (Asia/Shanghai, 2000-01-01 … now + 1 day).
    pub fn with_time_policy(mut self, policy: TimePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Forgets state carried from record to record (relative-clock unrolling, the last offset
    /// of a `utc_offset_from` column); called at the start of each input.
    pub fn reset_state(&self) {
        for e in &self.entries {
            e.clock.set((0, 0));
        }
        self.sticky_offset_s.set(None);
    }

    /// True when `rec` (fields applied, [`Self::finish`] not called yet) has a local time
    /// waiting for a `utc_offset_from` offset that neither it nor any earlier record of this
    /// input carried: a reader holds it until the first offset comes (or the input ends).
    pub fn waits_for_offset(&self, rec: &Record) -> bool {
        rec.pending_local.is_some()
            && rec.zone_hint_s.is_none()
            && self.sticky_offset_s.get().is_none()
    }

    /// True once a `utc_offset_from` column carried an offset in this input.
    pub fn offset_seen(&self) -> bool {
        self.sticky_offset_s.get().is_some()
    }

    /// Completes a record after all its fields were applied: places a local time waiting
    /// for a `utc_offset_from` column (this record's offset, else the last one seen in this
    /// input — for records a reader held, the first one that came after them — else the
    /// entry's zone) and checks it. Idempotent. Errors name the field.
    pub fn finish(&self, rec: &mut Record) -> Result<(), FieldError> {
        if let Some(z) = rec.zone_hint_s {
            self.sticky_offset_s.set(Some(z));
        }
        let Some((i, naive_ms)) = rec.pending_local.take() else {
            return Ok(());
        };
        let e = &self.entries[i];
        let ms = match rec.zone_hint_s.or(self.sticky_offset_s.get()) {
            Some(off) => naive_ms - i64::from(off) * 1000,
            None => self.local_to_utc_ms(e, naive_ms)?,
        };
        rec.vals[e.slot] = Val::Time(self.policy.check(e.name, ms)?);
        Ok(())
    }

    fn zone_of(&self, e: &Compiled) -> LocalZone {
        e.local.unwrap_or(LocalZone::Iana(self.policy.zone))
    }

    /// A naive local time (ms since 1970 read as if UTC) of entry `e` → UTC ms, in the entry's
    /// zone ([`Self::zone_of`]). Errors (field named) for a local time the zone skips (DST).
    fn local_to_utc_ms(&self, e: &Compiled, naive_ms: i64) -> Result<i64, FieldError> {
        let naive = DateTime::from_timestamp_millis(naive_ms)
            .unwrap_or_default()
            .naive_utc();
        self.zone_of(e)
            .to_utc_ms(&naive)
            .map_err(|m| FieldError::field(e.name, m))
    }

    /// Entry for a source column / JSON key.
    #[inline]
    pub fn entry_for(&self, source: &str) -> Option<usize> {
        self.by_source.get(source).copied()
    }

    /// The compiled entry `i`.
    pub fn entry(&self, i: usize) -> &Compiled {
        &self.entries[i]
    }

    /// Number of source names (CSV columns / JSON keys) the mapping reads.
    pub fn source_count(&self) -> usize {
        self.by_source.len()
    }

    /// Shortest and longest source name, bytes (a quick filter for header lines).
    pub fn source_len_range(&self) -> (usize, usize) {
        let lens = self.by_source.keys().map(String::len);
        (
            lens.clone().min().unwrap_or(0),
            lens.max().unwrap_or(usize::MAX),
        )
    }

    /// Parses a number in the mapping's style (decimal comma, thousands separator); `None`
    /// when the text is not a number in that style (a misplaced separator is never dropped
    /// silently: `1.5` with thousands `.` is not 15).
    pub fn parse_number(&self, t: &str) -> Option<f64> {
        if !self.decimal_comma && self.thousands.is_none() {
            return t.parse().ok();
        }
        let dec = if self.decimal_comma { ',' } else { '.' };
        let (int, frac) = match t.split_once(dec) {
            Some((i, f)) => (i, Some(f)),
            None => (t, None),
        };
        let mut s = String::with_capacity(t.len());
        match self.thousands {
            Some(sep) if int.contains(sep) => {
                let body = int.strip_prefix(['-', '+']).unwrap_or(int);
                let groups: Vec<&str> = body.split(sep).collect();
                let ok = groups.first().is_some_and(|g| (1..=3).contains(&g.len()))
                    && groups[1..].iter().all(|g| g.len() == 3)
                    && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return None;
                }
                if int.starts_with('-') {
                    s.push('-');
                }
                groups.iter().for_each(|g| s.push_str(g));
            }
            _ => s.push_str(int),
        }
        if let Some(f) = frac {
            if f.contains([',', '.']) {
                return None;
            }
            s.push('.');
            s.push_str(f);
        }
        s.parse().ok()
    }

    /// Applies entry `i` to a text value (CSV cell or JSON string).
    pub fn apply_text(&self, i: usize, raw: &str, rec: &mut Record) -> Result<(), FieldError> {
        let e = &self.entries[i];
        if e.zone_source {
            if let Some(off) = crate::time::offset_in_text(raw) {
                rec.zone_hint_s = Some(off);
            }
            return Ok(());
        }
        let t = raw.trim();
        // A plate that says "no plate" (a missing token or a placeholder word) is kept as
        // text and marked: the plate normaliser stores it as `no_plate` with its raw text.
        if e.kind == Kind::Str
            && e.name == "plate"
            && (self.missing.iter().any(|m| m == t)
                || (!self.plate_placeholders.is_empty()
                    && self
                        .plate_placeholders
                        .contains(&crate::model::plate_placeholder_key(t))))
        {
            rec.plate_placeholder = true;
            rec.set_str(e.slot, t);
            return Ok(());
        }
        if self.missing.iter().any(|m| m == t) {
            rec.vals[e.slot] = Val::Missing;
            return Ok(());
        }
        // Text other than the plate (which has its own normaliser): control characters at the
        // ends are padding (NUL fill of fixed-width fields) and go; inside, the value is not
        // what the source meant, and no table or CSV may carry it (a 0x00 in a site id made a
        // second site in the lists).
        let t = if matches!(e.kind, Kind::Str | Kind::Id) && e.name != "plate" {
            clean_text(e.name, t)?
        } else {
            t
        };
        let t = e.values.get(t).map(String::as_str).unwrap_or(t);
        match e.kind {
            Kind::Str => rec.set_str(e.slot, t),
            // Ids are text: `123.0` (a spreadsheet's integer) loses its `.0` textually; the
            // digits never go through f64.
            Kind::Id => rec.set_str(e.slot, &super::text::strip_zero_fraction(t)),
            Kind::Num => {
                let v: f64 = self.parse_number(t).ok_or_else(|| {
                    FieldError::field(e.name, format!("expected a number, got \"{}\"", clip(t)))
                })?;
                self.put_num(i, v, rec)?;
            }
            Kind::Time => {
                let ms = match &e.time {
                    TimeFormat::Auto | TimeFormat::Rfc3339 => match t.parse::<i64>() {
                        Ok(ms) if matches!(e.time, TimeFormat::Auto) => {
                            return self.put_num(i, ms as f64, rec);
                        }
                        _ => DateTime::parse_from_rfc3339(t)
                            .map_err(|err| {
                                FieldError::field(
                                    e.name,
                                    format!("bad RFC 3339 time \"{}\": {err}", clip(t)),
                                )
                            })?
                            .timestamp_millis(),
                    },
                    TimeFormat::UnixSeconds
                    | TimeFormat::UnixMillis
                    | TimeFormat::UnixMicros
                    | TimeFormat::ElapsedSeconds => {
                        let v: f64 = t.parse().map_err(|_| {
                            FieldError::field(
                                e.name,
                                format!("expected a Unix time, got \"{}\"", clip(t)),
                            )
                        })?;
                        return self.put_num(i, v, rec);
                    }
                    TimeFormat::Patterns(ps) => match parse_patterns(e, ps, t)? {
                        Parsed::Utc(ms) => ms,
                        Parsed::Relative(ms) => {
                            rec.time_relative = true;
                            rec.vals[e.slot] = Val::Time(ms);
                            return Ok(());
                        }
                        Parsed::Local(naive_ms) if e.offset_from => {
                            rec.pending_local = Some((i, naive_ms));
                            return Ok(());
                        }
                        Parsed::Local(naive_ms) => self.local_to_utc_ms(e, naive_ms)?,
                    },
                };
                rec.vals[e.slot] = Val::Time(self.policy.check(e.name, ms)?);
            }
            Kind::Date => {
                let fmt = match &e.time {
                    TimeFormat::Patterns(ps) => match ps.first() {
                        Some(Pattern::Chrono { format, .. }) => format.as_str(),
                        _ => "%Y-%m-%d",
                    },
                    _ => "%Y-%m-%d",
                };
                let d = NaiveDate::parse_from_str(t, fmt).map_err(|err| {
                    FieldError::field(
                        e.name,
                        format!("date \"{}\" does not match \"{fmt}\": {err}", clip(t)),
                    )
                })?;
                let latest = crate::time::local_date(self.policy.latest_ms(), self.policy.zone);
                if d > latest {
                    return Err(FieldError::field(
                        e.name,
                        format!("date {d} is in the future (after {latest})"),
                    ));
                }
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                rec.vals[e.slot] = Val::Date((d - epoch).num_days() as i32);
            }
        }
        Ok(())
    }

    /// Applies entry `i` to a JSON number.
    pub fn apply_num(&self, i: usize, v: f64, rec: &mut Record) -> Result<(), FieldError> {
        let e = &self.entries[i];
        if e.zone_source {
            return Ok(());
        }
        match e.kind {
            Kind::Num | Kind::Time => self.put_num(i, v, rec),
            Kind::Id | Kind::Str => {
                if !v.is_finite() {
                    return Err(FieldError::field(e.name, "non-finite number"));
                }
                // A float above 2^53 may already be another id: refuse, never store it.
                if v.abs() > 9_007_199_254_740_992.0 {
                    return Err(FieldError::field(
                        e.name,
                        format!("{} {v} exceeds 2^53; send ids as strings", e.name),
                    ));
                }
                let s = id_from_f64(v);
                let s = e.values.get(&s).cloned().unwrap_or(s);
                rec.set_str(e.slot, &s);
                Ok(())
            }
            Kind::Date => Err(FieldError::field(
                e.name,
                "expected a date string, got a number",
            )),
        }
    }

    fn put_num(&self, i: usize, v: f64, rec: &mut Record) -> Result<(), FieldError> {
        let e = &self.entries[i];
        if !v.is_finite() {
            return Err(FieldError::field(e.name, format!("non-finite number {v}")));
        }
        match e.kind {
            Kind::Time => {
                let unit = match e.time {
                    TimeFormat::UnixSeconds => EpochUnit::Seconds,
                    TimeFormat::UnixMillis | TimeFormat::Auto => EpochUnit::Millis,
                    TimeFormat::UnixMicros => EpochUnit::Micros,
                    TimeFormat::ElapsedSeconds => {
                        if !(0.0..1.0e9).contains(&v) {
                            return Err(FieldError::field(
                                e.name,
                                format!("elapsed time {v} s is negative or implausible"),
                            ));
                        }
                        rec.time_relative = true;
                        rec.vals[e.slot] = Val::Time((v * 1000.0).round() as i64);
                        return Ok(());
                    }
                    _ => {
                        return Err(FieldError::field(
                            e.name,
                            "expected a time string, got a number",
                        ));
                    }
                };
                rec.vals[e.slot] = Val::Time(self.policy.check_epoch(e.name, v, unit)?);
            }
            _ => rec.vals[e.slot] = Val::Num(e.conv.apply(v)),
        }
        Ok(())
    }

    /// Checks the required fields of `specs` after a record is decoded.
    pub fn check_required(specs: &[FieldSpec], rec: &Record) -> Result<(), FieldError> {
        for (i, s) in specs.iter().enumerate() {
            if s.required && rec.vals[i] == Val::Missing {
                return Err(FieldError::field(s.name, "required field is missing"));
            }
        }
        Ok(())
    }
}

fn parse_chrono(t: &str, format: &str, zoned: bool) -> Option<Parsed> {
    if zoned {
        DateTime::parse_from_str(t, format)
            .ok()
            .map(|d| Parsed::Utc(d.timestamp_millis()))
    } else {
        NaiveDateTime::parse_from_str(t, format)
            .ok()
            .map(|n| Parsed::Local(n.and_utc().timestamp_millis()))
    }
}

fn parse_patterns(e: &Compiled, ps: &[Pattern], t: &str) -> Result<Parsed, FieldError> {
    for p in ps {
        match p {
            Pattern::Chrono {
                format,
                zoned,
                months,
            } => {
                if let Some(r) = parse_chrono(t, format, *zoned) {
                    return Ok(r);
                }
                if *months
                    && let Some(en) = crate::time::english_months(t)
                    && let Some(r) = parse_chrono(&en, format, *zoned)
                {
                    return Ok(r);
                }
            }
            Pattern::ClockMmss => {
                if let Some((m, s)) = t.split_once(':')
                    && let (Ok(m), Ok(s)) = (m.parse::<u32>(), s.parse::<f64>())
                    && m < 60
                    && (0.0..60.0).contains(&s)
                {
                    let in_hour = (m as f64 * 60_000.0 + s * 1000.0).round() as i64;
                    let (last, mut hours) = e.clock.get();
                    if in_hour + 30 * 60_000 < last {
                        hours += 1; // wrapped past the hour
                    }
                    e.clock.set((in_hour, hours));
                    return Ok(Parsed::Relative(hours * 3_600_000 + in_hour));
                }
            }
        }
    }
    let names: Vec<String> = ps
        .iter()
        .map(|p| match p {
            Pattern::Chrono { format, .. } => format.clone(),
            Pattern::ClockMmss => "clock_mmss".into(),
        })
        .collect();
    Err(FieldError::field(
        e.name,
        format!("time \"{}\" matches none of {}", clip(t), names.join(" | ")),
    ))
}

/// Shortens a value for an error message.
pub fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let mut t: String = s.chars().take(40).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}
