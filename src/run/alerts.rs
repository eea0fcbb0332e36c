//! Alerts people can act on (issue 9 item 6): one alert per (vehicle, site, reason) within a
//! window, not one per read, and the entrance alert's row for the `alerts` table.

use std::collections::HashMap;

/// De-duplication of alerts per (vehicle, site, reason) within a window of event time
/// (`[alerts].dedup_window_ms` of the run config). The window starts at the last alert that
/// went out: a truck passing every minute gives one alert per window, not one per read.
/// Memory: one entry per (vehicle, site, reason) alerted within the last window (older ones
/// are pruned as event time advances).
#[derive(Clone, Debug, Default)]
pub struct AlertDedup {
    window_ms: i64,
    last: HashMap<(String, String, String), i64>,
    latest_ms: i64,
    pruned_at_len: usize,
    /// Alerts held back as repeats.
    pub suppressed: u64,
}

impl AlertDedup {
    /// De-duplication within `window_ms` (0 = every alert goes out).
    pub fn new(window_ms: u64) -> Self {
        AlertDedup {
            window_ms: window_ms.min(i64::MAX as u64) as i64,
            ..Default::default()
        }
    }

    /// True when an alert for `who` (plate, or VIN without a plate) at `site` for `reason`
    /// at event time `at_ms` (Unix ms) should go out; false for a repeat within the window.
    pub fn admit(&mut self, who: &str, site: &str, reason: &str, at_ms: i64) -> bool {
        if self.window_ms == 0 {
            return true;
        }
        self.latest_ms = self.latest_ms.max(at_ms);
        let key = (who.to_string(), site.to_string(), reason.to_string());
        if let Some(t) = self.last.get(&key)
            && at_ms.abs_diff(*t) < self.window_ms as u64
        {
            self.suppressed += 1;
            return false;
        }
        self.last.insert(key, at_ms);
        if self.last.len() > 1024 && self.last.len() > 2 * self.pruned_at_len {
            let cut = self.latest_ms.saturating_sub(self.window_ms);
            self.last.retain(|_, t| *t >= cut);
            self.pruned_at_len = self.last.len();
        }
        true
    }
}

/// `YYYY-MM-DD HH:MM:SS±hh:mm` of a Unix-ms instant at a fixed offset from UTC (minutes;
/// Asia/Shanghai is +480, without daylight saving since 1991).
pub fn local_time(ms: i64, zone: chrono_tz::Tz) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S%:z")
            .to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_plate_site_reason_per_window() {
        let mut d = AlertDedup::new(600_000);
        let t0 = 1_790_784_000_000;
        assert!(d.admit("京A12345", "E1", "china3-diesel", t0));
        // 3,238 reads of one plate in one run gave 3,238 alerts: now repeats are held back.
        for i in 1..100 {
            assert!(!d.admit("京A12345", "E1", "china3-diesel", t0 + i * 5_000));
        }
        assert_eq!(d.suppressed, 99);
        // Another site, another reason, another plate: alerts of their own.
        assert!(d.admit("京A12345", "E2", "china3-diesel", t0 + 1_000));
        assert!(d.admit("京A12345", "E1", "rsd-repeat-exceeders", t0 + 1_000));
        assert!(d.admit("冀B00001", "E1", "china3-diesel", t0 + 1_000));
        // After the window from the last alert sent: again.
        assert!(d.admit("京A12345", "E1", "china3-diesel", t0 + 600_000));
        assert!(!d.admit("京A12345", "E1", "china3-diesel", t0 + 1_199_999));
        assert!(d.admit("京A12345", "E1", "china3-diesel", t0 + 1_200_000));
        let mut off = AlertDedup::new(0);
        assert!(off.admit("a", "b", "c", 1) && off.admit("a", "b", "c", 1));
    }

    #[test]
    fn local_time_at_the_enforcement_offset() {
        // 2026-10-01T00:30:00Z is 08:30 in Shanghai (+08:00), 2026-09-30 19:30 at −05:00.
        let ms = 1_790_814_600_000;
        assert_eq!(
            local_time(ms, chrono_tz::Tz::Asia__Shanghai),
            "2026-10-01 08:30:00+08:00"
        );
        // A zone with daylight saving: −05:00 (CDT) on that day.
        assert_eq!(
            local_time(ms, chrono_tz::Tz::America__Chicago),
            "2026-09-30 19:30:00-05:00"
        );
    }
}
