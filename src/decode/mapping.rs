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
//! time = "unix_s"              # unix_ms | rfc3339 | a chrono format, with utc_offset
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

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde::Deserialize;

use super::record::{FieldError, FieldSpec, Kind, Record, Val};

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
    /// Time encoding: `unix_s`, `unix_ms`, `rfc3339`, a chrono format string, or
    /// `clock_mmss` (minutes:seconds only, see [`TimeFormat`]); a list is tried in order.
    pub time: Option<OneOrMany<String>>,
    /// Offset of local times without a zone, e.g. `+08:00` (Beijing time). Default UTC.
    pub utc_offset: Option<String>,
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

/// How a time field is encoded.
#[derive(Clone, Debug)]
pub enum TimeFormat {
    /// Canonical: RFC 3339 text, or an integer of Unix milliseconds.
    Auto,
    UnixSeconds,
    UnixMillis,
    Rfc3339,
    /// Text patterns tried in order.
    Patterns(Vec<Pattern>),
}

/// One text time pattern.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// A chrono format; local times are at `offset`.
    Chrono { format: String, offset: FixedOffset },
    /// `mm:ss.f` only (a spreadsheet cut the date and hour): anchored at 1970-01-01 UTC and
    /// unrolled over hour wraps in input order, so durations and order stay right.
    ClockMmss,
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
}

/// A mapping compiled against one stream's field table.
#[derive(Clone, Debug)]
pub struct CompiledMapping {
    pub name: String,
    entries: Vec<Compiled>,
    by_source: HashMap<String, usize>,
    missing: Vec<String>,
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
                        let time = match times.first().map(String::as_str) {
                            None => TimeFormat::Auto,
                            Some("unix_s") => TimeFormat::UnixSeconds,
                            Some("unix_ms") => TimeFormat::UnixMillis,
                            Some("rfc3339") => TimeFormat::Rfc3339,
                            Some(_) => {
                                let off = match e.utc_offset.as_deref() {
                                    None => FixedOffset::east_opt(0).expect("zero offset"),
                                    Some(o) => parse_offset(o).ok_or_else(|| {
                                        invalid(format!("[fields.{field}]: bad utc_offset '{o}'"))
                                    })?,
                                };
                                TimeFormat::Patterns(
                                    times
                                        .iter()
                                        .map(|p| match p.as_str() {
                                            "clock_mmss" => Pattern::ClockMmss,
                                            _ => Pattern::Chrono {
                                                format: p.clone(),
                                                offset: off,
                                            },
                                        })
                                        .collect(),
                                )
                            }
                        };
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
                        });
                    }
                }
            }
        }
        Ok(CompiledMapping {
            name,
            entries,
            by_source,
            missing,
            encoding,
            delimiter,
            comment: hd.comment.filter(|c| !c.is_empty()),
            decimal_comma: hd.decimal_comma,
            thousands,
        })
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
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
        let t = raw.trim();
        if self.missing.iter().any(|m| m == t) {
            rec.vals[e.slot] = Val::Missing;
            return Ok(());
        }
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
                        Ok(ms) if matches!(e.time, TimeFormat::Auto) => ms,
                        _ => DateTime::parse_from_rfc3339(t)
                            .map_err(|err| {
                                FieldError::field(
                                    e.name,
                                    format!("bad RFC 3339 time \"{}\": {err}", clip(t)),
                                )
                            })?
                            .timestamp_millis(),
                    },
                    TimeFormat::UnixSeconds | TimeFormat::UnixMillis => {
                        let v: f64 = t.parse().map_err(|_| {
                            FieldError::field(
                                e.name,
                                format!("expected a Unix time, got \"{}\"", clip(t)),
                            )
                        })?;
                        return self.put_num(i, v, rec);
                    }
                    TimeFormat::Patterns(ps) => parse_patterns(e, ps, t)?,
                };
                rec.vals[e.slot] = Val::Time(check_time(e.name, ms)?);
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
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                rec.vals[e.slot] = Val::Date((d - epoch).num_days() as i32);
            }
        }
        Ok(())
    }

    /// Applies entry `i` to a JSON number.
    pub fn apply_num(&self, i: usize, v: f64, rec: &mut Record) -> Result<(), FieldError> {
        let e = &self.entries[i];
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
                let ms = match e.time {
                    TimeFormat::UnixSeconds => (v * 1000.0).round() as i64,
                    TimeFormat::UnixMillis | TimeFormat::Auto => v.round() as i64,
                    _ => {
                        return Err(FieldError::field(
                            e.name,
                            "expected a time string, got a number",
                        ));
                    }
                };
                rec.vals[e.slot] = Val::Time(check_time(e.name, ms)?);
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

fn parse_patterns(e: &Compiled, ps: &[Pattern], t: &str) -> Result<i64, FieldError> {
    for p in ps {
        match p {
            Pattern::Chrono { format, offset } => {
                if let Ok(naive) = NaiveDateTime::parse_from_str(t, format)
                    && let Some(d) = offset.from_local_datetime(&naive).single()
                {
                    return Ok(d.timestamp_millis());
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
                    return Ok(hours * 3_600_000 + in_hour);
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

/// Instants outside 1900-01-01 … 2200-01-01 are input errors (a unit mix-up, a corrupt field).
fn check_time(field: &str, ms: i64) -> Result<i64, FieldError> {
    const MIN: i64 = -2_208_988_800_000;
    const MAX: i64 = 7_258_118_400_000;
    if (MIN..MAX).contains(&ms) {
        Ok(ms)
    } else {
        Err(FieldError::field(
            field,
            format!("time {ms} ms since 1970 is outside 1900–2200"),
        ))
    }
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
