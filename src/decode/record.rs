//! Field specifications of every input stream and the reusable per-record value slots that
//! the CSV and NDJSON decoders fill (no value tree per record: one `Record` is reused).

/// Kind of a canonical field: decides parsing and unit conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text (site id, plate, fuel word …).
    Str,
    /// Identifier: text, or a number rendered without a trailing `.0` (`34.0` → `34`).
    Id,
    /// Finite number (f64). `NaN`/`Infinity` are errors.
    Num,
    /// Instant, stored as Unix milliseconds UTC.
    Time,
    /// Calendar date, stored as days since 1970-01-01.
    Date,
}

/// One canonical field of a stream.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// A decoded value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    Missing,
    Num(f64),
    /// Byte range into `Record::text`.
    Str(u32, u32),
    Time(i64),
    Date(i32),
}

/// Value slots for one record, indexed like the stream's `FieldSpec` table; reused.
#[derive(Debug)]
pub struct Record {
    pub vals: Vec<Val>,
    pub text: String,
    /// The `plate` field held one of the mapping's "no plate" words (`plate_placeholders`)
    /// or missing-value tokens; the text is kept in the slot as received.
    pub plate_placeholder: bool,
    /// The record's time came from a relative clock (time since the log started, e.g.
    /// `clock_mmss`, `elapsed_s`): it is 1970-01-01T00:00Z + elapsed, not an instant.
    pub time_relative: bool,
    /// A naive time waiting for the offset of another column (mapping `utc_offset_from`):
    /// (mapping entry, local time as ms since 1970 read as if UTC).
    pub pending_local: Option<(usize, i64)>,
    /// Offset (seconds east of UTC) found in this record's `utc_offset_from` column.
    pub zone_hint_s: Option<i32>,
}

impl Record {
    /// Empty slots for `n` fields.
    pub fn new(n: usize) -> Self {
        Record {
            vals: vec![Val::Missing; n],
            text: String::with_capacity(256),
            plate_placeholder: false,
            time_relative: false,
            pending_local: None,
            zone_hint_s: None,
        }
    }

    /// Resets every slot to missing, keeping allocations.
    pub fn clear(&mut self) {
        self.vals.iter_mut().for_each(|v| *v = Val::Missing);
        self.text.clear();
        self.plate_placeholder = false;
        self.time_relative = false;
        self.pending_local = None;
        self.zone_hint_s = None;
    }

    /// Makes `self` equal to `other`, reusing `self`'s allocations.
    pub fn copy_from(&mut self, other: &Record) {
        self.vals.clone_from(&other.vals);
        self.text.clone_from(&other.text);
        self.plate_placeholder = other.plate_placeholder;
        self.time_relative = other.time_relative;
        self.pending_local = other.pending_local;
        self.zone_hint_s = other.zone_hint_s;
    }

    /// Stores a string value in slot `i`.
    pub fn set_str(&mut self, i: usize, s: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.vals[i] = Val::Str(start, self.text.len() as u32);
    }

    /// Number in slot `i`, if any.
    #[inline]
    pub fn num(&self, i: usize) -> Option<f64> {
        match self.vals[i] {
            Val::Num(v) => Some(v),
            _ => None,
        }
    }

    /// Text in slot `i`, if any.
    #[inline]
    pub fn str(&self, i: usize) -> Option<&str> {
        match self.vals[i] {
            Val::Str(a, b) => self.text.get(a as usize..b as usize),
            _ => None,
        }
    }

    /// Unix ms in slot `i`, if any.
    #[inline]
    pub fn time(&self, i: usize) -> Option<i64> {
        match self.vals[i] {
            Val::Time(t) => Some(t),
            _ => None,
        }
    }

    /// Days since epoch in slot `i`, if any.
    #[inline]
    pub fn date(&self, i: usize) -> Option<i32> {
        match self.vals[i] {
            Val::Date(d) => Some(d),
            _ => None,
        }
    }
}

/// A decode error for one record: which field, and why. Shown in `quarantine.reason` as
/// `field <name>: <message>` (or the message alone for record-level errors).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    /// An error tied to one field. Control characters in either text are escaped.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(escape_controls(name.to_string())),
            message: escape_controls(message.into()),
        }
    }
    /// An error of the whole record. Control characters are escaped.
    pub fn record(message: impl Into<String>) -> Self {
        FieldError {
            field: None,
            message: escape_controls(message.into()),
        }
    }
}

/// Escapes control characters (C0, DEL, C1) as `\x00` / `\u{85}` so reasons quoted from raw
/// input never carry NUL bytes or terminal escapes into tables and outputs.
pub fn escape_controls(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c as u32 {
            n @ (0..=0x1F | 0x7F) => out.push_str(&format!("\\x{n:02x}")),
            n if c.is_control() => out.push_str(&format!("\\u{{{n:x}}}")),
            _ => out.push(c),
        }
    }
    out
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(n) => write!(f, "field {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
