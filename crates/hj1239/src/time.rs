//! Frame time: the 6-byte binary `YY MM DD hh mm ss` of HJ 1239 (§1.3), read as Beijing
//! time, with its conversion to and from Unix milliseconds.

use serde::Serialize;
use std::fmt;

/// 6-byte frame time `YY MM DD hh mm ss`, **binary** (not BCD: real frames carry bytes such as
/// 0x2E = 46 s), obd-remote-monitoring.md §1.3. Fields are kept raw and unvalidated; `year` is
/// `2000 + YY`.
///
/// The time zone is not confirmed by the sources (§1.3 "Time zone \[U\]"); this module assumes
/// Beijing time (UTC+8), as Chinese terminals and platforms use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FrameTime {
    /// Full year, `2000 + YY` (2000–2255).
    pub year: u16,
    /// Month as sent (valid 1–12).
    pub month: u8,
    /// Day of month as sent (valid 1–28/29/30/31).
    pub day: u8,
    /// Hour as sent (valid 0–23).
    pub hour: u8,
    /// Minute as sent (valid 0–59).
    pub minute: u8,
    /// Second as sent (valid 0–59).
    pub second: u8,
}

impl FrameTime {
    /// From the 6 wire bytes `YY MM DD hh mm ss` (binary).
    pub fn from_bytes(b: [u8; 6]) -> Self {
        let [yy, month, day, hour, minute, second] = b;
        FrameTime {
            year: 2000 + u16::from(yy),
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// To the 6 wire bytes. Years outside 2000–2255 saturate to 0x00/0xFF.
    pub fn to_bytes(&self) -> [u8; 6] {
        let yy = u8::try_from(self.year.saturating_sub(2000)).unwrap_or(u8::MAX);
        [
            yy,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        ]
    }

    /// True when every field is in range (month 1–12, day within the month, hour ≤ 23,
    /// minute ≤ 59, second ≤ 59, year 2000–2255).
    pub fn is_valid(&self) -> bool {
        (2000..=2255).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour <= 23
            && self.minute <= 59
            && self.second <= 59
    }

    /// Unix time in milliseconds, reading the fields as Beijing time (UTC+8; assumption, see the
    /// type docs and obd-remote-monitoring.md §1.3). `None` when any field is out of range.
    pub fn unix_ms_utc8(&self) -> Option<i64> {
        if !self.is_valid() {
            return None;
        }
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let secs = days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - 8 * 3_600;
        Some(secs * 1_000)
    }

    /// Inverse of [`FrameTime::unix_ms_utc8`] (sub-second part dropped). `None` outside the
    /// representable years 2000–2255.
    pub fn from_unix_ms_utc8(unix_ms: i64) -> Option<FrameTime> {
        let secs = unix_ms.div_euclid(1_000) + 8 * 3_600;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(2000..=2255).contains(&y) {
            return None;
        }
        Some(FrameTime {
            year: u16::try_from(y).ok()?,
            month: u8::try_from(m).ok()?,
            day: u8::try_from(d).ok()?,
            hour: u8::try_from(sod / 3_600).ok()?,
            minute: u8::try_from(sod % 3_600 / 60).ok()?,
            second: u8::try_from(sod % 60).ok()?,
        })
    }
}

impl fmt::Display for FrameTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn is_leap(y: u16) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    // --- time ------------------------------------------------------------------------------

    #[test]
    fn frame_time_unix_ms_and_validation() {
        // 2023-02-14 13:33:46 Beijing = 05:33:46Z.
        assert_eq!(
            t(2023, 2, 14, 13, 33, 46).unix_ms_utc8(),
            Some(1_676_352_826_000)
        );
        assert_eq!(t(2000, 1, 1, 8, 0, 0).unix_ms_utc8(), Some(946_684_800_000));
        assert!(t(2024, 2, 29, 0, 0, 0).unix_ms_utc8().is_some());
        for bad in [
            t(2023, 2, 29, 0, 0, 0),
            t(2023, 0, 1, 0, 0, 0),
            t(2023, 13, 1, 0, 0, 0),
            t(2023, 4, 31, 0, 0, 0),
            t(2023, 1, 0, 0, 0, 0),
            t(2023, 1, 1, 24, 0, 0),
            t(2023, 1, 1, 0, 60, 0),
            t(2023, 1, 1, 0, 0, 60),
            FrameTime::from_bytes([0xFF; 6]),
        ] {
            assert_eq!(bad.unix_ms_utc8(), None, "{bad:?}");
        }
        let ft = FrameTime::from_bytes([0x17, 0x02, 0x0E, 0x0D, 0x21, 0x2E]);
        assert_eq!(ft, t(2023, 2, 14, 13, 33, 46));
        assert_eq!(ft.to_bytes(), [0x17, 0x02, 0x0E, 0x0D, 0x21, 0x2E]);
        assert_eq!(FrameTime::from_unix_ms_utc8(1_676_352_826_999), Some(ft));
    }
}
