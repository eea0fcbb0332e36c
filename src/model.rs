//! Domain types shared by every stream: plates, plate colours, fuels, emission standards.
//!
//! Parsing is forgiving where the source systems differ (codes, words, Chinese labels) and
//! strict where a wrong value would change a verdict: an unknown fuel is an error, a
//! non-standard plate is flagged, not rejected (`remote-sensing.md §6`).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// How well a plate string matches the mainland format (`remote-sensing.md §6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateStatus {
    /// Matches the strict validator regex of §6.
    Standard,
    /// Matches a known form outside the strict regex: the permissive fallback
    /// `^[\p{Han}][A-Z][A-Z0-9挂学警港澳]{5,6}$` of §6, or one of the special forms of
    /// [`PlateClass`] (embassy `使`+6 digits, consulate `…领`, emergency `…应急`, military).
    /// Flagged, not rejected; it reaches the lists.
    Nonstandard,
    /// Matches no form (foreign plate, OCR garbage, partial read); kept, never joined to the
    /// registry and never listed.
    Unrecognised,
    /// A "no plate" placeholder (`无车牌`, `未识别`, `...`, empty, all zeros …): no plate was
    /// read. The `plate` column is NULL and `plate_raw` keeps the text. (DESIGN.md calls this
    /// status `none`; the stored value is `no_plate`, as the field case asks.)
    NoPlate,
}

impl PlateStatus {
    /// The value stored in the `plate_status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PlateStatus::Standard => "standard",
            PlateStatus::Nonstandard => "nonstandard",
            PlateStatus::Unrecognised => "unrecognised",
            PlateStatus::NoPlate => "no_plate",
        }
    }

    /// True for plates that may be joined to the registry and reach a list or the
    /// watchlist (`standard`, `nonstandard`).
    pub fn is_recognised(self) -> bool {
        matches!(self, PlateStatus::Standard | PlateStatus::Nonstandard)
    }
}

/// The kind of plate, from its form alone (GA 36-2018 plate kinds as summarised in
/// `remote-sensing.md §6`: suffixes 挂 学 警 港 澳, leading 使 领, NEV lengths). The special
/// forms beyond §6's regex (embassy `使`+6 digits or 6 digits+`使`, consulate ending `领`,
/// emergency ending `应急`, military two letters + 5 digits, armed police `WJ…`) follow
/// public GA 36-2018 plate generators and validators; GA 36's own text is UNCONFIRMED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlateClass {
    /// Province + letter + 5 characters, no special suffix (blue small / yellow large).
    Ordinary,
    /// 8 characters: `[DF]`+letter/digit+4 digits (small) or 5 digits+`[DF]` (large).
    NewEnergy,
    /// Ends in 挂.
    Trailer,
    /// Ends in 学 (coach / learner car).
    Coach,
    /// Ends in 警.
    Police,
    /// Starts with 使, or 6 digits + 使.
    Embassy,
    /// Starts or ends with 领.
    Consulate,
    /// Ends in 应急 (emergency rescue).
    Emergency,
    /// Ends in 港 or 澳 (Hong Kong / Macau cross-border, 粤Z…).
    HkMacau,
    /// PLA (two letters + 5 digits) or armed police (`WJ`…).
    Military,
}

impl PlateClass {
    /// Every class, in documentation order.
    pub const ALL: [PlateClass; 10] = [
        PlateClass::Ordinary,
        PlateClass::NewEnergy,
        PlateClass::Trailer,
        PlateClass::Coach,
        PlateClass::Police,
        PlateClass::Embassy,
        PlateClass::Consulate,
        PlateClass::Emergency,
        PlateClass::HkMacau,
        PlateClass::Military,
    ];

    /// The value stored in the `plate_class` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PlateClass::Ordinary => "ordinary",
            PlateClass::NewEnergy => "new_energy",
            PlateClass::Trailer => "trailer",
            PlateClass::Coach => "coach",
            PlateClass::Police => "police",
            PlateClass::Embassy => "embassy",
            PlateClass::Consulate => "consulate",
            PlateClass::Emergency => "emergency",
            PlateClass::HkMacau => "hk_macau",
            PlateClass::Military => "military",
        }
    }
}

/// A normalised licence plate: upper-case ASCII, full-width forms folded to half-width,
/// separators (space, `·`, `.`, `-`) removed. Example: `京a·12345` → `京A12345`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Plate(pub String);

const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

fn strict_plate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // remote-sensing.md §6, strict validation regex (public validators' consensus [S30]).
    RE.get_or_init(|| {
        Regex::new(concat!(
            "^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-HJ-NP-Z]",
            "(?:[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳]|[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF])$"
        ))
        .expect("static regex")
    })
}

fn fallback_plate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // remote-sensing.md §6, permissive fallback.
    RE.get_or_init(|| Regex::new(r"^\p{Han}[A-Z][A-Z0-9挂学警港澳]{5,6}$").expect("static regex"))
}

/// Special forms outside §6's regexes (see [`PlateClass`]), with their class.
fn special_forms() -> &'static [(Regex, PlateClass)] {
    static RE: OnceLock<Vec<(Regex, PlateClass)>> = OnceLock::new();
    RE.get_or_init(|| {
        let p = PROVINCES;
        [
            (
                r"^(?:使[0-9]{6}|[0-9]{6}使)$".to_string(),
                PlateClass::Embassy,
            ),
            (
                format!("^[{p}](?:[A-HJ-NP-Z][A-HJ-NP-Z0-9]{{4}}|[0-9]{{5}})领$"),
                PlateClass::Consulate,
            ),
            (
                format!("^[{p}][A-HJ-NP-Z][A-HJ-NP-Z0-9]{{4,5}}应急$"),
                PlateClass::Emergency,
            ),
            (r"^[A-Z]{2}[0-9]{5}$".to_string(), PlateClass::Military),
            (
                format!("^WJ(?:[{p}]|[0-9]{{2}})[A-HJ-NP-Z0-9]{{4,5}}\\p{{Han}}?$"),
                PlateClass::Military,
            ),
        ]
        .into_iter()
        .map(|(r, c)| (Regex::new(&r).expect("static regex"), c))
        .collect()
    })
}

/// "No plate" words stored by cameras and RSD vendors instead of a plate, compared after
/// cleaning (ends trimmed, separators removed, upper-cased). Besides these, empty text, text
/// of separators or punctuation only (`...`, `---`, `***`) and all-zero strings are
/// placeholders. A mapping adds its own words with `[mapping] plate_placeholders`.
pub const DEFAULT_PLATE_PLACEHOLDERS: &[&str] = &[
    "无车牌",
    "无牌",
    "无牌车",
    "无号牌",
    "无车牌号",
    "未识别",
    "未识别车牌",
    "车牌未识别",
    "识别失败",
    "未知",
    "未知车牌",
    "无结果",
    "车牌",
    "车牌号",
    "无",
    "空",
    "默认",
    "NULL",
    "NONE",
    "UNKNOWN",
    "NOPLATE",
    "N/A",
];

/// A plate field as received, normalised by the one plate normaliser every stream uses
/// (`remote-sensing.md §6`, GA 36).
#[derive(Clone, Debug, PartialEq)]
pub struct PlateText {
    /// The normalised plate; `None` for a placeholder ([`PlateStatus::NoPlate`]).
    pub plate: Option<Plate>,
    pub status: PlateStatus,
    /// Kind of plate from its form; `None` when unrecognised or no plate.
    pub class: Option<PlateClass>,
    /// Colour named by a word in front of the plate (`蓝苏E9Z997`), removed from `plate`.
    pub prefix_color: Option<PlateColor>,
    /// Control characters (NUL fill of fixed-size camera buffers …) removed from the ends.
    pub control_stripped: usize,
}

/// A plate text that cannot be stored (the record is quarantined with field `plate`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlateError {
    /// A control character between plate characters: never deleted, since deleting it could
    /// forge a valid plate out of a truncated buffer.
    #[error(
        "control character U+{code:04X} at character {index} inside the plate (not removed: that could forge a valid plate)"
    )]
    ControlInside { code: u32, index: usize },
    /// U+FFFD: the text was decoded lossily before it reached plumewatch.
    #[error("replacement character U+FFFD in the plate (text was decoded lossily upstream)")]
    Replacement,
    /// Legacy-encoded (GBK) text read as UTF-8 or Latin-1: a character no Chinese plate has
    /// (Latin-1 Supplement, Latin Extended, IPA, Greek, Cyrillic, Armenian …, where a plate
    /// has Han or ASCII; `豫` D4 A5 → `ԥ`, `鲁` C2 B3 → `³`, `学` D1 A7 → `ѧ`, `使` CA B9 →
    /// `ʹ`). `index`: its position (characters, ends trimmed); `gbk`: the text its bytes give
    /// read as GBK, when they do.
    #[error("{}", legacy_message(*code, *ch, *index, gbk.as_deref()))]
    LegacyEncoding {
        code: u32,
        ch: char,
        index: usize,
        gbk: Option<String>,
    },
}

fn legacy_message(code: u32, ch: char, index: usize, gbk: Option<&str>) -> String {
    let what = if index == 0 {
        format!("first character U+{code:04X} '{ch}' is not a province abbreviation")
    } else {
        format!("character U+{code:04X} '{ch}' at position {index} cannot be in a Chinese plate")
    };
    match gbk {
        Some(g) => format!(
            "{what}; the file may be GBK (read as GBK the plate is '{g}'; set encoding in the mapping)"
        ),
        None => format!("{what}; the file may be GBK (set encoding in the mapping)"),
    }
}

fn end_junk(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{FEFF}' | '\u{200B}'..='\u{200D}' | '\u{2060}')
}

/// Full-width → half-width, separators and zero-width characters removed, ASCII upper-cased.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            // Full-width ASCII block → half-width.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        if c.is_whitespace()
            || matches!(
                c,
                '·' | '•' | '.' | '-' | '_' | '\u{30FB}' | '\u{FEFF}' | '\u{200B}'
                    ..='\u{200D}' | '\u{2060}'
            )
        {
            continue;
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The text a placeholder list is compared with: ends trimmed of whitespace and control
/// characters, separators removed, upper-cased (`" 无 车牌\0"` → `无车牌`).
pub fn plate_placeholder_key(raw: &str) -> String {
    clean(raw.trim_matches(end_junk))
}

fn is_placeholder(cleaned: &str) -> bool {
    cleaned.is_empty()
        || !cleaned.chars().any(char::is_alphanumeric)
        || cleaned.chars().all(|c| c == '0')
        || DEFAULT_PLATE_PLACEHOLDERS.contains(&cleaned)
}

/// Status and class of a cleaned plate text.
fn classify(p: &str) -> (PlateStatus, Option<PlateClass>) {
    let by_suffix = |p: &str| {
        let n = p.chars().count();
        match (p.chars().next(), p.chars().last()) {
            (Some('使'), _) => PlateClass::Embassy,
            (Some('领'), _) => PlateClass::Consulate,
            (_, Some('挂')) => PlateClass::Trailer,
            (_, Some('学')) => PlateClass::Coach,
            (_, Some('警')) => PlateClass::Police,
            (_, Some('港' | '澳')) => PlateClass::HkMacau,
            _ if n == 8 => PlateClass::NewEnergy,
            _ => PlateClass::Ordinary,
        }
    };
    if strict_plate_re().is_match(p) {
        return (PlateStatus::Standard, Some(by_suffix(p)));
    }
    if let Some((_, c)) = special_forms().iter().find(|(r, _)| r.is_match(p)) {
        return (PlateStatus::Nonstandard, Some(*c));
    }
    if fallback_plate_re().is_match(p) {
        return (PlateStatus::Nonstandard, Some(by_suffix(p)));
    }
    (PlateStatus::Unrecognised, None)
}

/// Colour words that may precede a plate (`蓝`, `黄牌`, `蓝色`, `黄绿双拼` …), longest first.
fn colour_prefixes() -> &'static [(String, PlateColor)] {
    static P: OnceLock<Vec<(String, PlateColor)>> = OnceLock::new();
    P.get_or_init(|| {
        let base = [
            ("蓝", PlateColor::Blue),
            ("黄", PlateColor::Yellow),
            ("黑", PlateColor::Black),
            ("白", PlateColor::White),
            ("绿", PlateColor::Green),
            ("渐变绿", PlateColor::Green),
            ("黄绿", PlateColor::YellowGreen),
            ("黄绿双拼", PlateColor::YellowGreen),
        ];
        let mut v: Vec<(String, PlateColor)> = base
            .iter()
            .flat_map(|(w, c)| {
                ["", "色", "牌", "色牌", "底"]
                    .iter()
                    .map(move |s| (format!("{w}{s}"), *c))
            })
            .collect();
        v.sort_by_key(|(w, _)| std::cmp::Reverse(w.chars().count()));
        v
    })
}

/// Han (CJK Unified Ideographs, extension A, compatibility ideographs, supplementary planes).
fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3FFFF}')
}

/// A character a Chinese plate text may hold besides ASCII: Han, and what [`clean`] folds or
/// removes (full-width forms, whitespace, separators `·` `•` `・`, zero-width characters).
fn plate_text_char(c: char) -> bool {
    c.is_ascii()
        || is_han(c)
        || c.is_whitespace()
        || matches!(c, '\u{FF01}'..='\u{FF5E}' | '·' | '•' | '\u{30FB}' | '\u{FEFF}' | '\u{200B}'..='\u{200D}' | '\u{2060}')
}

/// True when `b` is ASCII and GB2312 double bytes (lead A1–F7, trail A1–FE), at least one:
/// every plate character (provinces, 学 警 挂 使 领 港 澳 应 急) is a GB2312 hanzi.
fn gb2312_bytes(b: &[u8]) -> bool {
    let (mut i, mut pairs) = (0, 0);
    while i < b.len() {
        if b[i].is_ascii() {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(&t) if (0xA1..=0xF7).contains(&b[i]) && (0xA1..=0xFE).contains(&t) => {
                pairs += 1;
                i += 2;
            }
            _ => return false,
        }
    }
    pairs > 0
}

/// GBK plate text read as UTF-8 or Latin-1: the text (ends trimmed, before cleaning, so a
/// `·` or NBSP made of a GBK byte stays in place) has a character no Chinese plate has
/// ([`plate_text_char`]), and its bytes — one byte a character when all are ASCII or
/// U+00A0–U+00FF (read as Latin-1), else as received (read as UTF-8) — are ASCII and
/// GB2312 pairs.
/// A foreign text that is not such a byte sequence (Cyrillic, Latin) is not matched.
fn gbk_mojibake(t: &str) -> Option<PlateError> {
    let (index, ch) = t.chars().enumerate().find(|(_, c)| !plate_text_char(*c))?;
    let latin1: Option<Vec<u8>> = t
        .chars()
        .map(|c| match c as u32 {
            0..=0x7F | 0xA0..=0xFF => Some(c as u32 as u8),
            _ => None,
        })
        .collect();
    // Latin-1 first: characters U+00A1–U+00BF / U+00E1–U+00FF also pass as UTF-8 pairs
    // (C2/C3 + trail), but a Latin-1 reading needs whole pairs, so it is the stricter test.
    for bytes in [latin1, Some(t.as_bytes().to_vec())].into_iter().flatten() {
        if gb2312_bytes(&bytes) {
            let gbk = encoding_rs::GBK
                .decode_without_bom_handling_and_without_replacement(&bytes)
                .map(|g| g.into_owned());
            return Some(PlateError::LegacyEncoding {
                code: ch as u32,
                ch,
                index,
                gbk,
            });
        }
    }
    None
}

/// GBK (or UTF-8) bytes decoded with the wrong encoding: 1–3 characters of U+0080–U+07FF
/// where the province belongs, then a plate tail (UTF-8 read as Latin-1, `京` → `äº¬`, and
/// what [`gbk_mojibake`] does not match).
fn legacy_encoding(p: &str) -> Option<PlateError> {
    static TAIL: OnceLock<Regex> = OnceLock::new();
    let tail = TAIL.get_or_init(|| Regex::new(r"^[A-Z][A-Z0-9]{4,6}$").expect("static regex"));
    let first = p.chars().next()?;
    if !('\u{80}'..='\u{7FF}').contains(&first) {
        return None;
    }
    let mut rest = p;
    for _ in 0..3 {
        let mut it = rest.chars();
        match it.next() {
            Some(c) if ('\u{80}'..='\u{7FF}').contains(&c) => rest = it.as_str(),
            _ => break,
        }
        if tail.is_match(rest) {
            return Some(PlateError::LegacyEncoding {
                code: first as u32,
                ch: first,
                index: 0,
                gbk: None,
            });
        }
    }
    None
}

impl PlateText {
    /// No plate at all (a placeholder, or no plate field in the record).
    pub fn no_plate() -> PlateText {
        PlateText {
            plate: None,
            status: PlateStatus::NoPlate,
            class: None,
            prefix_color: None,
            control_stripped: 0,
        }
    }

    /// Normalises a raw plate field: control characters at the ends (NUL fill) are removed
    /// and counted; full-width forms folded; separators removed; placeholders
    /// ([`DEFAULT_PLATE_PLACEHOLDERS`], punctuation only, all zeros, empty) give
    /// [`PlateStatus::NoPlate`]; a colour word in front of an otherwise valid plate is
    /// removed and returned as `prefix_color`. Errors: a control character or U+FFFD inside
    /// the plate, or legacy-encoded text — GBK read as UTF-8 or Latin-1 anywhere in the text,
    /// whatever the rest looks like ([`PlateError::LegacyEncoding`]).
    pub fn parse(raw: &str) -> Result<PlateText, PlateError> {
        let trimmed = raw.trim_matches(end_junk);
        let lead = raw.chars().count() - raw.trim_start_matches(end_junk).chars().count();
        let control_stripped = raw.chars().filter(|c| c.is_control()).count()
            - trimmed.chars().filter(|c| c.is_control()).count();
        for (i, c) in trimmed.chars().enumerate() {
            if c.is_control() {
                return Err(PlateError::ControlInside {
                    code: c as u32,
                    index: lead + i,
                });
            }
            if c == '\u{FFFD}' {
                return Err(PlateError::Replacement);
            }
        }
        if let Some(e) = gbk_mojibake(trimmed) {
            return Err(e);
        }
        let cleaned = clean(trimmed);
        if is_placeholder(&cleaned) {
            return Ok(PlateText {
                control_stripped,
                ..PlateText::no_plate()
            });
        }
        let (status, class) = classify(&cleaned);
        if !status.is_recognised() {
            for (word, colour) in colour_prefixes() {
                if let Some(rest) = cleaned.strip_prefix(word.as_str()) {
                    let (st, cl) = classify(rest);
                    if st.is_recognised() {
                        return Ok(PlateText {
                            plate: Some(Plate(rest.to_string())),
                            status: st,
                            class: cl,
                            prefix_color: Some(*colour),
                            control_stripped,
                        });
                    }
                }
            }
            if let Some(e) = legacy_encoding(&cleaned) {
                return Err(e);
            }
        }
        Ok(PlateText {
            plate: Some(Plate(cleaned)),
            status,
            class,
            prefix_color: None,
            control_stripped,
        })
    }

    /// True when the plate may be joined, listed and watched.
    pub fn is_recognised(&self) -> bool {
        self.status.is_recognised()
    }

    /// True when `color` contradicts the plate's length: green and yellow-green plates are
    /// new-energy plates of 8 characters, every other colour has 7 (`remote-sensing.md §6`).
    pub fn colour_length_mismatch(&self, color: PlateColor) -> bool {
        let Some(class) = self.class else {
            return false;
        };
        let nev_colour = matches!(color, PlateColor::Green | PlateColor::YellowGreen);
        match color {
            PlateColor::Other => false,
            _ => nev_colour != (class == PlateClass::NewEnergy),
        }
    }
}

impl Plate {
    /// Normalises a raw plate read ([`PlateText::parse`]). Returns `None` for a placeholder
    /// or text that cannot be a plate.
    pub fn normalise(raw: &str) -> Option<Plate> {
        PlateText::parse(raw).ok().and_then(|p| p.plate)
    }

    /// Classifies the plate against the §6 regexes and the special forms.
    pub fn status(&self) -> PlateStatus {
        classify(&self.0).0
    }

    /// Kind of plate from its form (`None` when unrecognised).
    pub fn class(&self) -> Option<PlateClass> {
        classify(&self.0).1
    }
}

impl fmt::Display for Plate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Plate colour, canonical names (`remote-sensing.md §6`): the one colour vocabulary of every
/// stream. Source systems use different numeric codes for the same colour; a column
/// mapping's `values` table translates them (`fixtures/mappings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlateColor {
    Blue,
    Yellow,
    Black,
    White,
    /// Gradient green (渐变绿): small new-energy vehicles.
    Green,
    /// Yellow-green two-tone (黄绿双拼): large new-energy vehicles.
    YellowGreen,
    Other,
}

impl PlateColor {
    /// Accepts canonical English names (and `gradient_green`), the Chinese colour words with
    /// or without `色`/`牌`, and the GA 36 labels (蓝底白字, 黄底黑字, 白底黑字, 黑底白字,
    /// 渐变绿, 黄绿双拼). Numeric codes are source-specific and must be mapped first.
    /// `None` for anything else: the caller keeps the raw text and flags it.
    pub fn parse(s: &str) -> Option<PlateColor> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase().replace(['-', ' '], "_");
        let base = lower
            .strip_suffix("色牌")
            .or_else(|| lower.strip_suffix('牌'))
            .or_else(|| lower.strip_suffix('色'))
            .filter(|b| !b.is_empty())
            .unwrap_or(&lower);
        Some(match base {
            "blue" | "蓝" | "蓝底白字" => PlateColor::Blue,
            "yellow" | "黄" | "黄底黑字" => PlateColor::Yellow,
            "black" | "黑" | "黑底白字" => PlateColor::Black,
            "white" | "白" | "白底黑字" => PlateColor::White,
            "green" | "gradient_green" | "new_energy_green" | "绿" | "渐变绿" | "渐变绿底黑字" => {
                PlateColor::Green
            }
            "yellow_green" | "yellowgreen" | "黄绿" | "黄绿双拼" | "黄绿双拼底黑字" => {
                PlateColor::YellowGreen
            }
            "other" | "其他" | "其它" => PlateColor::Other,
            _ => return None,
        })
    }

    /// The value stored in `plate_color` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            PlateColor::Blue => "blue",
            PlateColor::Yellow => "yellow",
            PlateColor::Black => "black",
            PlateColor::White => "white",
            PlateColor::Green => "green",
            PlateColor::YellowGreen => "yellow_green",
            PlateColor::Other => "other",
        }
    }
}

/// Fuel of a pass or a registered vehicle. Registry codes (`obd-remote-monitoring.md §5.1`):
/// A gasoline, B diesel, E natural gas, F LPG, O hybrid, C electric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fuel {
    Petrol,
    Diesel,
    NaturalGas,
    Lpg,
    HybridPetrol,
    HybridDiesel,
    Electric,
}

/// Ignition class that selects the RSD limit table (`remote-sensing.md §1–§3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuelClass {
    /// Diesel (HJ 845 / GB 3847 limits: opacity, Ringelmann, NO).
    CompressionIgnition,
    /// Petrol, natural gas, LPG (GB 18285 scope: CO, HC, NO).
    SparkIgnition,
    /// Battery electric: no tailpipe.
    None,
}

impl Fuel {
    /// Parses canonical names, registry codes and common vendor words (case-insensitive).
    /// Errors with the offending text when nothing matches.
    pub fn parse(s: &str) -> Result<Fuel, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "petrol" | "gasoline" | "a" | "汽油" => Fuel::Petrol,
            "diesel" | "b" | "柴油" => Fuel::Diesel,
            "natural_gas" | "natural gas" | "ng" | "cng" | "lng" | "e" | "天然气" => {
                Fuel::NaturalGas
            }
            "lpg" | "f" | "液化石油气" => Fuel::Lpg,
            "hybrid_petrol" | "hybrid petrol/electric" | "o" | "混合动力" => Fuel::HybridPetrol,
            "hybrid_diesel" | "hybrid diesel/electric" => Fuel::HybridDiesel,
            "electric" | "c" | "电" | "纯电动" => Fuel::Electric,
            _ => return Err(format!("unknown fuel '{t}'")),
        })
    }

    /// Canonical name stored in `fuel` columns; also the key of the limit set's `[fuels]` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Fuel::Petrol => "petrol",
            Fuel::Diesel => "diesel",
            Fuel::NaturalGas => "natural_gas",
            Fuel::Lpg => "lpg",
            Fuel::HybridPetrol => "hybrid_petrol",
            Fuel::HybridDiesel => "hybrid_diesel",
            Fuel::Electric => "electric",
        }
    }

    /// The ignition class that selects limits and validity windows.
    pub fn class(self) -> FuelClass {
        match self {
            Fuel::Diesel | Fuel::HybridDiesel => FuelClass::CompressionIgnition,
            Fuel::Petrol | Fuel::NaturalGas | Fuel::Lpg | Fuel::HybridPetrol => {
                FuelClass::SparkIgnition
            }
            Fuel::Electric => FuelClass::None,
        }
    }
}

/// Chinese vehicle emission stage (国I … 国VI), as a number 0–6 (0 = pre-China I).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EmissionStandard(pub u8);

impl EmissionStandard {
    /// Accepts `III`, `3`, `国III`, `国3`, `国Ⅲ`, `China III`, `CN3`, `China 6b` (sub-stage
    /// letters are dropped). Returns `None` for anything else. The registry field's format
    /// in police/MEE records is unconfirmed (`obd-remote-monitoring.md §5.1`).
    pub fn parse(s: &str) -> Option<EmissionStandard> {
        let mut t = s.trim().to_ascii_uppercase();
        for prefix in ["CHINA", "CN", "国", "GB", "STAGE"] {
            if let Some(rest) = t.strip_prefix(prefix) {
                t = rest.trim().to_string();
            }
        }
        let t = t.trim_end_matches(['A', 'B']).trim();
        let n = match t {
            "0" => 0,
            "I" | "Ⅰ" | "1" => 1,
            "II" | "Ⅱ" | "2" => 2,
            "III" | "Ⅲ" | "3" => 3,
            "IV" | "Ⅳ" | "4" => 4,
            "V" | "Ⅴ" | "5" => 5,
            "VI" | "Ⅵ" | "6" => 6,
            _ => return None,
        };
        Some(EmissionStandard(n))
    }
}

/// GA 802 vehicle-type code class (`obd-remote-monitoring.md §5.1`): H1x/Q1x heavy,
/// H2x/Q2x medium trucks and tractors; Z51 heavy special-purpose.
pub fn is_medium_or_heavy_truck(ga802: &str) -> bool {
    let t = ga802.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    if b.len() != 3 {
        return false;
    }
    matches!(
        (b[0], b[1]),
        (b'H', b'1') | (b'H', b'2') | (b'Q', b'1') | (b'Q', b'2')
    ) || t == "Z51"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_normalise_and_classify() {
        let p = Plate::normalise(" 京a·12345 ").unwrap();
        assert_eq!(p.0, "京A12345");
        assert_eq!(p.status(), PlateStatus::Standard);
        // Full-width letters and digits fold to ASCII.
        let p = Plate::normalise("冀Ｂ１２３４挂").unwrap();
        assert_eq!(p.0, "冀B1234挂");
        assert_eq!(p.status(), PlateStatus::Standard);
        // Large NEV: 5 digits + D/F.
        assert_eq!(
            Plate::normalise("粤B12345D").unwrap().status(),
            PlateStatus::Standard
        );
        // Letter I is not issued: fails strict, passes fallback.
        assert_eq!(
            Plate::normalise("京AI2345").unwrap().status(),
            PlateStatus::Nonstandard
        );
        assert_eq!(
            Plate::normalise("AB12CDE").unwrap().status(),
            PlateStatus::Unrecognised
        );
        assert!(Plate::normalise(" - ").is_none());
    }

    fn parsed(raw: &str) -> (Option<String>, &'static str, Option<&'static str>) {
        let p = PlateText::parse(raw).unwrap();
        (
            p.plate.map(|p| p.0),
            p.status.as_str(),
            p.class.map(PlateClass::as_str),
        )
    }

    #[test]
    fn placeholders_are_no_plate() {
        // Field case words, then other placeholder forms of our own.
        for w in [
            "无车牌",
            "无牌",
            "未识别",
            "未知",
            "无结果",
            "车牌",
            "...",
            "",
            "---",
            "——",
            "0000000",
            "00000000",
            "*******",
            "  ",
            "无号牌",
            "识别失败",
            "unknown",
            "N/A",
            "无 车 牌",
            "无车牌\0\0",
            "．．．",
        ] {
            assert_eq!(parsed(w), (None, "no_plate", None), "{w:?}");
        }
        // Not placeholders: a real plate containing zeros, and a partial read.
        assert_eq!(parsed("京A00001").1, "standard");
        assert_eq!(parsed("A1234").1, "unrecognised");
    }

    #[test]
    fn plate_classes_from_the_form() {
        let cases = [
            ("京A12345", "standard", "ordinary"),
            ("粤BD12345", "standard", "new_energy"),
            ("粤B12345D", "standard", "new_energy"),
            ("冀B1234挂", "standard", "trailer"),
            ("京A1234学", "standard", "coach"),
            ("京A1234警", "standard", "police"),
            ("粤Z1234港", "standard", "hk_macau"),
            ("粤Z1234澳", "standard", "hk_macau"),
            ("使A12345", "standard", "embassy"),
            ("使014578", "nonstandard", "embassy"),
            ("224001使", "nonstandard", "embassy"),
            ("沪A1234领", "nonstandard", "consulate"),
            ("粤12345领", "nonstandard", "consulate"),
            ("京X1234应急", "nonstandard", "emergency"),
            ("VA12345", "nonstandard", "military"),
            ("WJ京12345", "nonstandard", "military"),
            ("京AI2345", "nonstandard", "ordinary"),
        ];
        for (raw, status, class) in cases {
            assert_eq!(
                parsed(raw),
                (Some(raw.to_string()), status, Some(class)),
                "{raw}"
            );
        }
    }

    #[test]
    fn colour_prefixes_are_stripped_only_before_a_valid_plate() {
        let p = PlateText::parse("蓝苏E9Z997").unwrap();
        assert_eq!(p.plate, Some(Plate("苏E9Z997".into())));
        assert_eq!(p.prefix_color, Some(PlateColor::Blue));
        for (raw, plate, colour) in [
            ("黄牌 冀B1234挂", "冀B1234挂", PlateColor::Yellow),
            ("渐变绿粤BD12345", "粤BD12345", PlateColor::Green),
            ("黄绿双拼粤B12345D", "粤B12345D", PlateColor::YellowGreen),
            ("白色京A1234警", "京A1234警", PlateColor::White),
            ("黑黑A12345", "黑A12345", PlateColor::Black),
        ] {
            let p = PlateText::parse(raw).unwrap();
            assert_eq!(p.plate, Some(Plate(plate.into())), "{raw}");
            assert_eq!(p.prefix_color, Some(colour), "{raw}");
        }
        // 黑 is also Heilongjiang: a valid plate is never cut.
        let p = PlateText::parse("黑A12345").unwrap();
        assert_eq!(p.plate, Some(Plate("黑A12345".into())));
        assert_eq!(p.prefix_color, None);
    }

    #[test]
    fn bad_plate_text_is_an_error() {
        assert!(matches!(
            PlateText::parse("京A\u{0}12345"),
            Err(PlateError::ControlInside { code: 0, index: 2 })
        ));
        assert_eq!(
            PlateText::parse("\u{0}京A12345\u{0}\u{0}")
                .unwrap()
                .control_stripped,
            3
        );
        assert_eq!(
            PlateText::parse("京A1\u{FFFD}345"),
            Err(PlateError::Replacement)
        );
        // GBK 豫 / 鲁 decoded as UTF-8 (field case plate-gbk-mojibake b1, c1) and as Latin-1.
        let e = PlateText::parse("ԥA12345").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "first character U+0525 'ԥ' is not a province abbreviation; the file may be GBK"
            ),
            "{e}"
        );
        let e = PlateText::parse("³B12345").unwrap_err();
        assert!(e.to_string().contains("U+00B3"), "{e}");
        assert!(PlateText::parse("Ô¥A12345").is_err());
        // A foreign plate stays, unrecognised.
        assert_eq!(parsed("ABC1234").1, "unrecognised");
        // Non-standard tails (issue 8, lookahead): GBK 豫A1234学 / 使014578 / 鲁A1234学 read as
        // UTF-8 (学 D1 A7 → ѧ U+0467, 使 CA B9 → ʹ U+02B9), and as Latin-1.
        for (moji, first, plate) in [
            ("ԥA1234ѧ", "U+0525", "豫A1234学"),
            ("ʹ014578", "U+02B9", "使014578"),
            ("³A1234ѧ", "U+00B3", "鲁A1234学"),
            ("Ô¥A1234Ñ§", "U+00D4", "豫A1234学"),
            ("¾©A1234¾¯", "U+00BE", "京A1234警"),
        ] {
            let e = PlateText::parse(moji).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("first character {first}"))
                    && e.contains(&format!("read as GBK the plate is '{plate}'")),
                "{moji}: {e}"
            );
        }
        // A mojibake character after a plausible start is named with its position.
        let e = PlateText::parse("A1234ѧ").unwrap_err().to_string();
        assert!(
            e.starts_with("character U+0467 'ѧ' at position 5 cannot be in a Chinese plate"),
            "{e}"
        );
        // Foreign text that is not GB2312 bytes stays unrecognised (Russian АВ123 in UTF-8
        // is D0 90 D0 92 …: trail bytes below A1); separators are not mojibake.
        assert_eq!(parsed("АВ123").1, "unrecognised");
        assert_eq!(parsed("京A·1234警").1, "standard");
        assert_eq!(parsed("京A\u{00A0}12345").1, "standard");
    }

    #[test]
    fn colour_vocabulary() {
        for (w, c) in [
            ("gradient_green", PlateColor::Green),
            ("渐变绿", PlateColor::Green),
            ("渐变绿色", PlateColor::Green),
            ("绿牌", PlateColor::Green),
            ("黄绿双拼", PlateColor::YellowGreen),
            ("yellow-green", PlateColor::YellowGreen),
            ("黄牌", PlateColor::Yellow),
            ("蓝底白字", PlateColor::Blue),
            ("BLUE", PlateColor::Blue),
            ("黑色", PlateColor::Black),
            ("白底黑字", PlateColor::White),
        ] {
            assert_eq!(PlateColor::parse(w), Some(c), "{w}");
        }
        for w in ["4", "purple", "色", "蓝白"] {
            assert_eq!(PlateColor::parse(w), None, "{w}");
        }
        let p = PlateText::parse("鄂F02277").unwrap();
        assert!(p.colour_length_mismatch(PlateColor::Green));
        assert!(!p.colour_length_mismatch(PlateColor::Yellow));
        assert!(!p.colour_length_mismatch(PlateColor::Other));
        let p = PlateText::parse("粤BD12345").unwrap();
        assert!(!p.colour_length_mismatch(PlateColor::Green));
        assert!(p.colour_length_mismatch(PlateColor::Blue));
    }

    #[test]
    fn fuels_and_standards_parse() {
        assert_eq!(Fuel::parse("B").unwrap(), Fuel::Diesel);
        assert_eq!(Fuel::parse("DIESEL").unwrap(), Fuel::Diesel);
        assert_eq!(Fuel::parse("E").unwrap().class(), FuelClass::SparkIgnition);
        assert!(Fuel::parse("KEROSENE").unwrap_err().contains("KEROSENE"));
        assert_eq!(EmissionStandard::parse("国Ⅲ"), Some(EmissionStandard(3)));
        assert_eq!(
            EmissionStandard::parse("China VIb"),
            Some(EmissionStandard(6))
        );
        assert_eq!(EmissionStandard::parse("iv"), Some(EmissionStandard(4)));
        assert_eq!(EmissionStandard::parse("x"), None);
        assert!(is_medium_or_heavy_truck("H11"));
        assert!(is_medium_or_heavy_truck("q21"));
        assert!(!is_medium_or_heavy_truck("K33"));
    }
}
