//! Time rules (issue 8 kind 1; DESIGN.md "Time, plates and keys"). Instants are stored in
//! UTC; one enforcement zone (IANA name, `Asia/Shanghai` by default, limit set `[time].zone`)
//! decides the list days (`since`, `until`), the `date` partition and the times shown to
//! people. Here too: the window an absolute instant must fall in (an epoch number in another
//! unit lands outside it and is refused, never re-scaled), the zone a naive source time is
//! read in, the offset a value carries in its own text, and localised month names.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::decode::record::FieldError;

/// Default enforcement zone (Beijing time; no DST since 1991).
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";
/// Default earliest accepted instant (00:00 UTC of this day): no remote-sensing, ANPR or
/// remote-OBD record in scope predates it, while epoch seconds read as ms land in 1970.
pub const DEFAULT_EARLIEST: &str = "2000-01-01";
/// Default tolerance for instants ahead of the wall clock, seconds (one day).
pub const DEFAULT_MAX_AHEAD_S: i64 = 86_400;

/// The newest wall-clock reading of [`TimePolicy::latest_ms`], Unix ms (0 before the first).
static WALL_MS: AtomicI64 = AtomicI64::new(0);

/// Compiled time rules: the enforcement zone and the window of plausible absolute instants
/// `[earliest, now + max_ahead]`. Built from the limit set's `[time]` table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimePolicy {
    /// The enforcement zone.
    pub zone: Tz,
    /// Earliest accepted instant, Unix ms (default 2000-01-01T00:00:00Z).
    pub earliest_ms: i64,
    /// Accepted lead over the wall clock, ms (default one day).
    pub max_ahead_ms: i64,
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            zone: Tz::Asia__Shanghai,
            earliest_ms: 946_684_800_000,
            max_ahead_ms: DEFAULT_MAX_AHEAD_S * 1000,
        }
    }
}

/// Unit of an epoch number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
}

impl EpochUnit {
    fn ms_per_unit(self) -> f64 {
        match self {
            EpochUnit::Seconds => 1000.0,
            EpochUnit::Millis => 1.0,
            EpochUnit::Micros => 0.001,
        }
    }
    fn short(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "s",
            EpochUnit::Millis => "ms",
            EpochUnit::Micros => "µs",
        }
    }
}

/// An instant for a message: RFC 3339 UTC with as many sub-second digits as it has.
pub fn fmt_instant(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(d) if (-62_135_596_800_000..253_402_300_800_000).contains(&ms) => {
            d.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        }
        _ if ms < 0 => "before year 1".into(),
        _ => "after year 9999".into(),
    }
}

fn fmt_reading(ms: f64) -> String {
    if !ms.is_finite() || ms.abs() > 9.0e18 {
        return "out of range".into();
    }
    fmt_instant(ms.round() as i64)
}

/// Parses a zone: an IANA name (`Asia/Shanghai`) or a fixed offset (`+08:00`, `UTC`).
pub fn parse_zone(s: &str) -> Result<LocalZone, String> {
    let t = s.trim();
    if let Some(o) = parse_offset(t) {
        return Ok(LocalZone::Fixed(o));
    }
    t.parse::<Tz>().map(LocalZone::Iana).map_err(|_| {
        format!("unknown time zone '{s}' (an IANA name such as Asia/Shanghai, or +08:00)")
    })
}

/// `+08:00`, `-0500`, `+8`, `Z`, `UTC`, `GMT` → offset.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let t = s.trim();
    if matches!(t, "Z" | "z" | "UTC" | "GMT") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty()
        || h.len() > 2
        || m.len() > 2
        || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    if h > 18 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// The zone a naive (offset-less) time is read in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LocalZone {
    Fixed(FixedOffset),
    /// DST-aware: a local time in a spring-forward gap or an autumn fold is refused.
    Iana(Tz),
}

impl LocalZone {
    /// The UTC instant (ms) of local time `naive`. Errors: a time that does not exist or
    /// exists twice in this zone (DST change).
    pub fn to_utc_ms(&self, naive: &NaiveDateTime) -> Result<i64, String> {
        let r = match self {
            LocalZone::Fixed(o) => o.from_local_datetime(naive).map(|d| d.timestamp_millis()),
            LocalZone::Iana(z) => z.from_local_datetime(naive).map(|d| d.timestamp_millis()),
        };
        match r {
            chrono::LocalResult::Single(ms) => Ok(ms),
            chrono::LocalResult::Ambiguous(..) => Err(format!(
                "local time {naive} occurs twice in {} (DST change); the data must carry an offset",
                self.name()
            )),
            chrono::LocalResult::None => Err(format!(
                "local time {naive} does not exist in {} (DST change)",
                self.name()
            )),
        }
    }

    /// Name for messages.
    pub fn name(&self) -> String {
        match self {
            LocalZone::Fixed(o) => o.to_string(),
            LocalZone::Iana(z) => z.name().to_string(),
        }
    }
}

impl TimePolicy {
    /// Rules from the limit set's `[time]` values. Errors name the bad value.
    pub fn new(zone: &str, earliest: &str, max_ahead_s: i64) -> Result<TimePolicy, String> {
        let zone: Tz = zone.trim().parse().map_err(|_| {
            format!("[time].zone: unknown time zone '{zone}' (an IANA name such as Asia/Shanghai)")
        })?;
        let earliest_ms = match NaiveDate::parse_from_str(earliest.trim(), "%Y-%m-%d") {
            Ok(d) => d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis()),
            Err(_) => DateTime::parse_from_rfc3339(earliest.trim())
                .ok()
                .map(|d| d.timestamp_millis()),
        }
        .ok_or_else(|| {
            format!("[time].earliest: expected a date or RFC 3339 time, got '{earliest}'")
        })?;
        if max_ahead_s < 0 {
            return Err(format!("[time].max_ahead_s must be ≥ 0, got {max_ahead_s}"));
        }
        Ok(TimePolicy {
            zone,
            earliest_ms,
            max_ahead_ms: max_ahead_s.saturating_mul(1000),
        })
    }

    /// Latest accepted instant now (wall clock + `max_ahead`).
    pub fn latest_ms(&self) -> i64 {
        let now = Utc::now().timestamp_millis();
        WALL_MS.fetch_max(now, Ordering::Relaxed);
        now.saturating_add(self.max_ahead_ms)
    }

    /// Why `ms` is outside `[earliest, now + max_ahead]`, or None. The wall clock is read
    /// only when `ms` is later than the newest reading so far allows ([`WALL_MS`]): records
    /// carry past times, so a bulk ingest reads it once instead of once per time field (it
    /// was 2 % of HJ 1239 ingest). A wall clock stepped back can let a time through that is
    /// up to that step later than `now + max_ahead`.
    fn outside(&self, ms: i64) -> Option<String> {
        if ms >= self.earliest_ms
            && ms
                <= WALL_MS
                    .load(Ordering::Relaxed)
                    .saturating_add(self.max_ahead_ms)
        {
            return None;
        }
        if ms < self.earliest_ms {
            Some(format!(
                "before the earliest accepted {} (limit set [time].earliest)",
                fmt_instant(self.earliest_ms)
            ))
        } else if ms > self.latest_ms() {
            Some(format!(
                "after now + {} s (limit set [time].max_ahead_s)",
                self.max_ahead_ms / 1000
            ))
        } else {
            None
        }
    }

    /// Checks an absolute instant (text times, frame times). Errors name `field`.
    pub fn check(&self, field: &str, ms: i64) -> Result<i64, FieldError> {
        match self.outside(ms) {
            None => Ok(ms),
            Some(why) => Err(FieldError::field(
                field,
                format!("time {} is {why}", fmt_instant(ms)),
            )),
        }
    }

    /// Reads an epoch number `v` in `unit` and checks it. The unit is never guessed: a value
    /// outside the window is refused, and the message gives its readings as s, ms and µs so
    /// whoever owns the source can declare the right one.
    pub fn check_epoch(&self, field: &str, v: f64, unit: EpochUnit) -> Result<i64, FieldError> {
        let ms = v * unit.ms_per_unit();
        let why = if !ms.is_finite() || ms.abs() > 9.0e15 {
            Some("out of range".to_string())
        } else {
            self.outside(ms.round() as i64)
        };
        match why {
            None => Ok(ms.round() as i64),
            Some(why) => {
                let readings: Vec<String> =
                    [EpochUnit::Seconds, EpochUnit::Millis, EpochUnit::Micros]
                        .iter()
                        .map(|u| format!("as {} {}", u.short(), fmt_reading(v * u.ms_per_unit())))
                        .collect();
                Err(FieldError::field(
                    field,
                    format!(
                        "Unix time {v} read as {} is {}, {why}: {}; declare the unit (mapping time = \"unix_s\", \"unix_ms\" or \"unix_us\")",
                        unit.short(),
                        fmt_reading(ms),
                        readings.join(", ")
                    ),
                ))
            }
        }
    }

    /// The local calendar day of an instant in the enforcement zone.
    pub fn local_date(&self, ms: i64) -> NaiveDate {
        local_date(ms, self.zone)
    }
}

/// The calendar day of instant `ms` in `zone` (the `date` partition value).
pub fn local_date(ms: i64, zone: Tz) -> NaiveDate {
    match DateTime::from_timestamp_millis(ms) {
        Some(d) => d.with_timezone(&zone).date_naive(),
        None => NaiveDate::default(),
    }
}

/// Days since 1970-01-01 of the local day of `ms` in `zone`.
pub fn local_days(ms: i64, zone: Tz) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (local_date(ms, zone) - epoch).num_days() as i32
}

/// [`local_days`] of many instants, the zone's rules consulted once per local day met: the
/// instants of the last day seen are remembered as a range `[lo, hi)` (its midnight and the
/// next, each checked to fall on the day and the next), so a batch of instants of one day
/// costs two comparisons each (the partition split of every table batch; the zone lookup was
/// ≈ 8 % of the table-writing thread of an OBD ingest).
#[derive(Clone, Copy, Debug)]
pub struct LocalDays {
    zone: Tz,
    lo: i64,
    hi: i64,
    day: i32,
}

impl LocalDays {
    /// A cache for `zone`, empty.
    pub fn new(zone: Tz) -> Self {
        LocalDays {
            zone,
            lo: 0,
            hi: 0,
            day: 0,
        }
    }

    /// Days since 1970-01-01 of the local day of `ms` (as [`local_days`]).
    #[inline]
    pub fn days(&mut self, ms: i64) -> i32 {
        if ms >= self.lo && ms < self.hi {
            return self.day;
        }
        let day = local_days(ms, self.zone);
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let bounds = epoch
            .checked_add_signed(chrono::Duration::days(i64::from(day)))
            .and_then(|d| {
                Some((
                    local_midnight(d, self.zone)?,
                    local_midnight(d.succ_opt()?, self.zone)?,
                ))
            });
        (self.lo, self.hi) = match bounds {
            Some((lo, hi)) => {
                let (lo, hi) = (lo.timestamp_millis(), hi.timestamp_millis());
                let ok = lo <= ms
                    && ms < hi
                    && local_days(lo, self.zone) == day
                    && local_days(hi - 1, self.zone) == day
                    && local_days(hi, self.zone) == day + 1;
                if ok { (lo, hi) } else { (0, 0) }
            }
            None => (0, 0),
        };
        self.day = day;
        day
    }
}

/// The first instant of local day `d` in `zone` (midnight; the first valid time after a
/// midnight DST gap).
pub fn local_midnight(d: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    for h in 0..3 {
        let t = d.and_hms_opt(h, 0, 0)?;
        if let Some(x) = zone.from_local_datetime(&t).earliest() {
            return Some(x.with_timezone(&Utc));
        }
    }
    None
}

/// A list period bound: a bare date (`2025-11-08`, `2025-11-8`) is 00:00 of that calendar
/// day in `zone`; a time with an offset (`…+08:00`, `…Z`) is that instant; a date and time
/// without one (`2025-11-08T10:30:00`, `2025-11-08 10:30`) is local in `zone`. The machine's
/// TZ plays no part.
pub fn parse_bound(text: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return local_midnight(d, zone).ok_or_else(|| format!("no midnight on {d} in {zone}"));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return LocalZone::Iana(zone)
                .to_utc_ms(&n)
                .map(|ms| DateTime::from_timestamp_millis(ms).unwrap_or_default());
        }
    }
    Err("expected a date (a day in the enforcement zone) or an RFC 3339 time".into())
}

/// The UTC offset a time text carries, if any: `GMT+01:00` / `UTC-5` anywhere (Torque's
/// `Wed Aug 05 18:57:56 GMT+01:00 2026`), an RFC 3339 offset or `Z`, or a last
/// whitespace-separated token `+08:00` / `-0500`. Seconds east of UTC.
pub fn offset_in_text(s: &str) -> Option<i32> {
    let t = s.trim();
    for tag in ["GMT", "UTC"] {
        if let Some(i) = t.find(tag) {
            let rest = &t[i + 3..];
            let tok: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ':'))
                .collect();
            if tok.is_empty() {
                return Some(0);
            }
            return parse_offset(&tok).map(|o| o.local_minus_utc());
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.offset().local_minus_utc());
    }
    let last = t.rsplit(char::is_whitespace).next()?;
    if last.len() >= 3 && (last.starts_with('+') || last.starts_with('-')) {
        return parse_offset(last).map(|o| o.local_minus_utc());
    }
    None
}

/// Month words of Spanish, Portuguese, French, German, Italian and Dutch (full and the
/// abbreviations their locales print), lowercase, with the English abbreviation chrono reads.
const MONTHS: &[(&str, &str)] = &[
    ("enero", "Jan"),
    ("ene", "Jan"),
    ("janeiro", "Jan"),
    ("janvier", "Jan"),
    ("janv", "Jan"),
    ("januar", "Jan"),
    ("jänner", "Jan"),
    ("jän", "Jan"),
    ("gennaio", "Jan"),
    ("gen", "Jan"),
    ("januari", "Jan"),
    ("febrero", "Feb"),
    ("fevereiro", "Feb"),
    ("fev", "Feb"),
    ("février", "Feb"),
    ("févr", "Feb"),
    ("fevrier", "Feb"),
    ("fevr", "Feb"),
    ("februar", "Feb"),
    ("febbraio", "Feb"),
    ("februari", "Feb"),
    ("marzo", "Mar"),
    ("março", "Mar"),
    ("marco", "Mar"),
    ("mars", "Mar"),
    ("märz", "Mar"),
    ("mär", "Mar"),
    ("mrz", "Mar"),
    ("maart", "Mar"),
    ("mrt", "Mar"),
    ("abril", "Apr"),
    ("abr", "Apr"),
    ("avril", "Apr"),
    ("avr", "Apr"),
    ("aprile", "Apr"),
    ("mayo", "May"),
    ("maio", "May"),
    ("mai", "May"),
    ("maggio", "May"),
    ("mag", "May"),
    ("mei", "May"),
    ("junio", "Jun"),
    ("junho", "Jun"),
    ("juin", "Jun"),
    ("juni", "Jun"),
    ("giugno", "Jun"),
    ("giu", "Jun"),
    ("julio", "Jul"),
    ("julho", "Jul"),
    ("juillet", "Jul"),
    ("juil", "Jul"),
    ("juli", "Jul"),
    ("luglio", "Jul"),
    ("lug", "Jul"),
    ("agosto", "Aug"),
    ("ago", "Aug"),
    ("août", "Aug"),
    ("aout", "Aug"),
    ("augustus", "Aug"),
    ("septiembre", "Sep"),
    ("setiembre", "Sep"),
    ("setembro", "Sep"),
    ("set", "Sep"),
    ("septembre", "Sep"),
    ("settembre", "Sep"),
    ("octubre", "Oct"),
    ("outubro", "Oct"),
    ("out", "Oct"),
    ("octobre", "Oct"),
    ("oktober", "Oct"),
    ("okt", "Oct"),
    ("ottobre", "Oct"),
    ("ott", "Oct"),
    ("noviembre", "Nov"),
    ("novembro", "Nov"),
    ("novembre", "Nov"),
    ("diciembre", "Dec"),
    ("dic", "Dec"),
    ("dezembro", "Dec"),
    ("dez", "Dec"),
    ("décembre", "Dec"),
    ("déc", "Dec"),
    ("decembre", "Dec"),
    ("dezember", "Dec"),
    ("dicembre", "Dec"),
];

/// `s` with localised month words (and the dot of their abbreviation) replaced by English
/// abbreviations (`05-ago.-2026` → `05-Aug-2026`); `None` when it has none.
pub fn english_months(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(start) = rest.find(|c: char| c.is_alphabetic()) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        let lower = word.to_lowercase();
        let mut next = start + word_len;
        match MONTHS.iter().find(|(w, _)| *w == lower) {
            Some((_, en)) => {
                out.push_str(en);
                changed = true;
                if rest[next..].starts_with('.') {
                    next += 1;
                }
            }
            None => out.push_str(word),
        }
        rest = &rest[next..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_sent_as_ms_are_refused_with_every_reading() {
        let p = TimePolicy::default();
        let e = p
            .check_epoch("passed_at", 1_762_567_200.0, EpochUnit::Millis)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("passed_at"));
        for part in [
            "read as ms is 1970-01-21T09:36:07.200Z",
            "before the earliest accepted 2000-01-01T00:00:00Z",
            "as s 2025-11-08T02:00:00Z",
            "declare the unit",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
        let e2 = p
            .check_epoch("passed_at", 1_762_567_200.5, EpochUnit::Millis)
            .unwrap_err();
        assert!(
            e2.message.contains("as s 2025-11-08T02:00:00.500Z"),
            "{}",
            e2.message
        );
        // µs: out of range as ms, right as µs; still refused (never guessed).
        let e4 = p
            .check_epoch("passed_at", 1_762_567_200_000_000.0, EpochUnit::Millis)
            .unwrap_err();
        assert!(
            e4.message.contains("as µs 2025-11-08T02:00:00Z"),
            "{}",
            e4.message
        );
        // Declared units give the instant.
        assert_eq!(
            p.check_epoch("t", 1_762_567_200.5, EpochUnit::Seconds),
            Ok(1_762_567_200_500)
        );
        assert_eq!(
            p.check_epoch("t", 1_762_567_200_000_000.0, EpochUnit::Micros),
            Ok(1_762_567_200_000)
        );
        // After now + 1 day.
        let future = (Utc::now().timestamp_millis() + 3 * 86_400_000) as f64;
        let e = p
            .check_epoch("read_at", future, EpochUnit::Millis)
            .unwrap_err();
        assert!(e.message.contains("after now + 86400 s"), "{}", e.message);
    }

    #[test]
    fn bounds_are_local_days_in_the_zone() {
        let sh = Tz::Asia__Shanghai;
        assert_eq!(
            parse_bound("2025-11-08", sh).unwrap().to_rfc3339(),
            "2025-11-07T16:00:00+00:00"
        );
        assert_eq!(
            parse_bound("2025-11-8", sh).unwrap().to_rfc3339(),
            "2025-11-07T16:00:00+00:00"
        );
        assert_eq!(
            parse_bound("2025-11-08T00:00:00Z", sh)
                .unwrap()
                .to_rfc3339(),
            "2025-11-08T00:00:00+00:00"
        );
        assert_eq!(
            parse_bound("2025-11-08 10:30", sh).unwrap().to_rfc3339(),
            "2025-11-08T02:30:00+00:00"
        );
        // Another zone, with DST: New York midnight of 8 Nov 2025 is 05:00Z.
        assert_eq!(
            parse_bound("2025-11-08", Tz::America__New_York)
                .unwrap()
                .to_rfc3339(),
            "2025-11-08T05:00:00+00:00"
        );
        assert!(parse_bound("08/11/2025", sh).is_err());
        // The local day of an instant (the partition): 23:30Z on 7 Nov is 8 Nov in Beijing.
        assert_eq!(local_date(1_762_558_200_000, sh).to_string(), "2025-11-08");
    }

    #[test]
    fn cached_local_days_equal_the_zone_rules_across_dst_and_odd_offsets() {
        // Every 7 minutes (and the instants either side of each local midnight found) over
        // 2025 in zones with DST at 02:00, DST at midnight (Santiago), a 30-minute DST shift
        // (Lord Howe), a 45-minute offset (Kathmandu) and none (Shanghai); also backwards,
        // so the cache is left and re-entered from both sides.
        let zones = [
            Tz::Asia__Shanghai,
            Tz::America__New_York,
            Tz::America__Santiago,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kathmandu,
        ];
        let start = 1_735_689_600_000i64; // 2025-01-01T00:00Z
        let step = 7 * 60_000;
        for zone in zones {
            let mut c = LocalDays::new(zone);
            let mut changes = 0;
            let mut prev = c.days(start);
            let instants: Vec<i64> = (0..(365 * 24 * 60 / 7)).map(|i| start + i * step).collect();
            for &ms in instants.iter().chain(instants.iter().rev()) {
                let d = c.days(ms);
                assert_eq!(d, local_days(ms, zone), "{zone} at {ms}");
                if d != prev {
                    changes += 1;
                    for edge in [ms - step, ms - 1, ms, ms + 1] {
                        assert_eq!(c.days(edge), local_days(edge, zone), "{zone} at {edge}");
                    }
                    prev = d;
                }
            }
            // About 365 day changes forwards and as many back.
            assert!(changes >= 700, "{zone}: {changes}");
        }
        assert_eq!(
            LocalDays::new(Tz::Asia__Shanghai).days(1_762_558_200_000),
            20_400
        );
    }

    #[test]
    fn offsets_and_months_in_text() {
        assert_eq!(
            offset_in_text("Wed Aug 05 18:57:56 GMT+01:00 2026"),
            Some(3600)
        );
        assert_eq!(offset_in_text("2025-11-08 10:00:00 -05:00"), Some(-18000));
        assert_eq!(offset_in_text("2025-11-08T10:00:00Z"), Some(0));
        assert_eq!(offset_in_text("2025-11-08 10:00:00"), None);
        assert_eq!(offset_in_text("-"), None);
        assert_eq!(
            english_months("05-ago.-2026 18:57:56.813").as_deref(),
            Some("05-Aug-2026 18:57:56.813")
        );
        assert_eq!(
            english_months("12 déc. 2025 08:00").as_deref(),
            Some("12 Dec 2025 08:00")
        );
        assert_eq!(english_months("05-Aug-2026"), None);
        assert_eq!(parse_offset("+0530"), FixedOffset::east_opt(19_800));
        assert_eq!(parse_offset("+08"), FixedOffset::east_opt(28_800));
        assert_eq!(parse_offset("x"), None);
    }
}
