//! Remote-OBD rows: decoded HJ 1239 frames and `obd_sample` records → `obd_samples` /
//! `obd_reports` rows, and the per-vehicle streaming detectors (`detect::twc`, §3.3) and the
//! DTC rule (`detect::obd_dtc`, §2.2) that run over them.
//!
//! Two stream disciplines live here (DESIGN.md "Time, plates and keys"):
//! * **Keys.** A sample is identified by (VIN, collection time, info type) ([`SampleKey`]);
//!   a resend (command 0x03) or a repeated record of a key already seen is a duplicate: not
//!   stored again, counted ([`RecentKeys`]; first delivery wins). Within one process the
//!   memory is bounded per VIN ([`ObdStreamConfig::dedup_window_s`],
//!   [`ObdStreamConfig::dedup_max_keys`]); across runs the table catalog's key check applies.
//! * **Order.** The detectors see each vehicle's samples in collection-time order: samples
//!   are held up to [`ObdStreamConfig::allowed_lateness_s`] behind the newest one and released
//!   sorted; a sample older than what was already released is counted as late (stored in
//!   `obd_samples`, not fed to the detectors) — never dropped silently.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::decode::fields::{OBD_NUMS, obd as O};
use crate::decode::hj1239::{Body, Frame, InfoBlock, ObdReport, StreamSample};
use crate::decode::record::{FieldError, Record};
use crate::detect::KeyedRule;
use crate::detect::keyed::{KeyedStates, StateStore};
use crate::detect::twc::{ObdPoint, Twc};
use crate::schema::{DetectionRow, DtcDetail, ObdReportRow, ObdSampleRow};

/// An `obd_sample` record → row. `default_vin` fills a log without a VIN column.
pub fn sample_from_record(
    rec: &Record,
    default_vin: Option<&str>,
) -> Result<ObdSampleRow, FieldError> {
    let vin = rec.str(O::SLOT_VIN).or(default_vin).ok_or_else(|| {
        FieldError::field(
            "vin",
            "required field is missing (give --vin for a log without a VIN column)",
        )
    })?;
    let at = rec
        .time(O::SLOT_SAMPLED_AT)
        .ok_or_else(|| FieldError::field("sampled_at", "required field is missing"))?;
    let mut nums = [None; 23];
    for (i, n) in nums.iter_mut().enumerate() {
        *n = rec.num(O::SLOT_FIRST_NUM + i);
    }
    Ok(ObdSampleRow {
        vin: vin.trim().to_ascii_uppercase(),
        sampled_at_ms: at,
        info_type: rec
            .num(O::SLOT_INFO_TYPE)
            .filter(|v| (0.0..=255.0).contains(v))
            .map(|v| v as u8),
        nums,
        position_valid: None,
        time_inferred: false,
        time_relative: rec.time_relative,
        clock_skew_s: None,
        source_cmd: None,
    })
}

fn stream_row(
    vin: &str,
    s: &StreamSample,
    at_ms: i64,
    inferred: bool,
    source_cmd: u8,
) -> ObdSampleRow {
    let v = [
        s.speed_kmh,
        s.barometric_kpa,
        s.net_torque_pct,
        s.friction_torque_pct,
        s.engine_rpm,
        s.fuel_flow_lph,
        s.scr_up_nox_ppm,
        s.scr_down_nox_ppm,
        s.reagent_pct,
        s.intake_air_kgph,
        s.scr_in_temp_c,
        s.scr_out_temp_c,
        s.dpf_dp_kpa,
        s.coolant_c,
        s.tank_pct,
        s.upstream_lambda,
        s.rear_o2_v,
        s.twc_down_nox_ppm,
        s.twc_temp_c,
        None,
        s.lon_deg,
        s.lat_deg,
        s.odometer_km,
    ];
    debug_assert_eq!(v.len(), OBD_NUMS.len());
    ObdSampleRow {
        vin: vin.to_string(),
        sampled_at_ms: at_ms,
        info_type: Some(s.info_type),
        nums: v,
        position_valid: s.position_valid,
        time_inferred: inferred,
        time_relative: false,
        clock_skew_s: None,
        source_cmd: Some(source_cmd),
    }
}

fn report_row(vin: &str, r: &ObdReport, at_ms: i64) -> ObdReportRow {
    ObdReportRow {
        vin: vin.to_string(),
        reported_at_ms: at_ms,
        protocol: r.protocol,
        mil_on: r.mil_on,
        diag_support: r.diag_support,
        diag_readiness: r.diag_readiness,
        calibration_id: Some(r.calibration_id.clone()).filter(|c| !c.is_empty()),
        cvn: Some(r.cvn.clone()).filter(|c| !c.is_empty()),
        iupr: r.iupr.clone(),
        dtcs: r.dtcs.clone(),
        dtc_details: r
            .dtc_details
            .iter()
            .map(|d| DtcDetail {
                raw: d.raw,
                failure_type: d.failure_type,
                status: d.status,
                conversion_method: d.conversion_method,
                occurrence_count: d.occurrence_count,
            })
            .collect(),
    }
}

/// Rows of one decoded frame. Blocks without their own collection time take the frame's
/// send time, the n-th stream block + n s (1 Hz reporting, `obd-remote-monitoring.md §1.9`),
/// and are marked `time_inferred`. Samples carry the frame's command (`source_cmd` 2 live,
/// 3 resend). Frames other than real-time / resend carry no rows.
/// Errors when the frame has no usable time at all.
pub fn rows_from_frame(f: &Frame) -> Result<(Vec<ObdSampleRow>, Vec<ObdReportRow>), String> {
    let Body::Realtime {
        sent_at, blocks, ..
    } = &f.body
    else {
        return Ok((vec![], vec![]));
    };
    let sent_ms = sent_at.unix_ms_utc8();
    let mut samples = Vec::new();
    let mut reports = Vec::new();
    let mut k = 0i64;
    for b in blocks {
        match b {
            InfoBlock::Stream(s) => {
                let (at, inferred) = match s.collected_at.and_then(|t| t.unix_ms_utc8()) {
                    Some(t) => (t, false),
                    None => (
                        sent_ms.ok_or("frame send time is not a valid date")? + 1000 * k,
                        true,
                    ),
                };
                k += 1;
                samples.push(stream_row(&f.vin, s, at, inferred, f.command.code()));
            }
            InfoBlock::Obd(r) => {
                let at = r
                    .collected_at
                    .and_then(|t| t.unix_ms_utc8())
                    .or(sent_ms)
                    .ok_or("frame send time is not a valid date")?;
                reports.push(report_row(&f.vin, r, at));
            }
            _ => {}
        }
    }
    Ok((samples, reports))
}

/// The detectors' view of a sample.
pub fn point(r: &ObdSampleRow) -> ObdPoint {
    ObdPoint {
        t_ms: r.sampled_at_ms,
        speed_kmh: r.nums[O::SPEED_KMH],
        engine_rpm: r.nums[O::ENGINE_RPM],
        coolant_c: r.nums[O::COOLANT_C],
        upstream_lambda: r.nums[O::UPSTREAM_LAMBDA],
        rear_o2_v: r.nums[O::REAR_O2_V],
        fuel_flow_lph: r.nums[O::FUEL_FLOW_LPH],
        net_torque_pct: r.nums[O::NET_TORQUE_PCT],
        friction_torque_pct: r.nums[O::FRICTION_TORQUE_PCT],
        commanded_lambda: r.nums[O::COMMANDED_LAMBDA],
    }
}

/// Limit-set section `[obd_stream]`: how the OBD stream is de-duplicated and ordered before
/// the detectors (DESIGN.md "Time, plates and keys"; `obd-remote-monitoring.md §1.9`: 1 Hz
/// records, resends of up to 10 records per frame, ≥ 7 days of terminal storage).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObdStreamConfig {
    /// s of collection time; per VIN, keys within this span behind the newest key seen are
    /// remembered for de-duplication. A resend older than that is not checked in-process
    /// (counted as `dedup_unchecked`); the table catalog's key check covers it.
    pub dedup_window_s: f64,
    /// Keys remembered per VIN at most (16 bytes each): bounds the memory to 16 B × this per
    /// vehicle (default 1024 → 16 KiB), whatever the window.
    pub dedup_max_keys: u32,
    /// s of collection time; a vehicle's samples are held this long behind its newest sample
    /// and handed to the detectors sorted, so resends and reordered samples inside it are
    /// merged in order. Older ones are counted as late. In the streaming run a commit also
    /// hands over what is held (the detector snapshot then covers every committed sample).
    pub allowed_lateness_s: f64,
}

impl Default for ObdStreamConfig {
    fn default() -> Self {
        ObdStreamConfig {
            dedup_window_s: 900.0,
            dedup_max_keys: 1024,
            allowed_lateness_s: 30.0,
        }
    }
}

/// Natural key of an `obd_samples` / `obd_reports` row within one vehicle: collection time
/// and info type (DESIGN.md "Time, plates and keys"). OBD reports use info type 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleKey {
    /// Collection time, ms since the Unix epoch (UTC).
    pub at_ms: i64,
    /// HJ 1239 info type (0x01 OBD, 0x02/0x03/0x05 streams …); 0x100 when the record had none.
    pub info_type: u16,
}

/// The key of a sample row: `(VIN, key)`.
pub fn sample_key(r: &ObdSampleRow) -> (&str, SampleKey) {
    (
        r.vin.as_str(),
        SampleKey {
            at_ms: r.sampled_at_ms,
            info_type: r.info_type.map_or(0x100, u16::from),
        },
    )
}

/// The key of an OBD report row (info type 0x01): `(VIN, key)`.
pub fn report_key(r: &ObdReportRow) -> (&str, SampleKey) {
    (
        r.vin.as_str(),
        SampleKey {
            at_ms: r.reported_at_ms,
            info_type: 0x01,
        },
    )
}

/// 32-bit fingerprint of a sample's values (numbers and position flag), to tell an
/// identical repeat from a resend with different content. One multiply-xorshift step per
/// 64-bit value (a byte-wise FNV-1a took 6 % of HJ 1239 ingest); only compared within a
/// process, never stored.
pub fn sample_fingerprint(r: &ObdSampleRow) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    };
    for v in r.nums {
        eat(v.map_or(0x7ff8_0000_dead_0001, f64::to_bits));
    }
    eat(match r.position_valid {
        None => 2,
        Some(true) => 1,
        Some(false) => 0,
    });
    (h ^ (h >> 32)) as u32
}

/// 32-bit FNV-1a fingerprint of an OBD report's content.
pub fn report_fingerprint(r: &ObdReportRow) -> u32 {
    let text = format!(
        "{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}",
        r.protocol,
        r.mil_on,
        r.diag_support,
        r.diag_readiness,
        r.calibration_id,
        r.cvn,
        r.iupr,
        r.dtcs,
        r.dtc_details
    );
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Outcome of [`RecentKeys::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// First time seen (now remembered): store the row.
    New,
    /// Seen before with the same content: a repeat, not stored.
    Duplicate,
    /// Seen before with different content: the first delivery is kept, this one is not
    /// stored (and goes to quarantine, so the conflict is visible).
    Conflict,
    /// Older than the keys remembered for this VIN: cannot be checked in-process; stored.
    Unchecked,
}

#[derive(Clone, Copy)]
struct KeyEntry {
    key: SampleKey,
    fp: u32,
}

/// Bounded per-VIN memory of recent keys (sorted by key), for de-duplication within a process
/// (resends 0x03, repeated records). Bound per VIN: keys within
/// [`ObdStreamConfig::dedup_window_s`] of the newest, at most
/// [`ObdStreamConfig::dedup_max_keys`] (16 bytes each). Reusable on its own: call
/// [`RecentKeys::check`] with a row's key and fingerprint.
#[derive(Default)]
pub struct RecentKeys {
    by_vin: HashMap<String, VecDeque<KeyEntry>, ahash::RandomState>,
}

impl RecentKeys {
    /// Checks `key` of `vin` and remembers it when new (`fp`: content fingerprint).
    pub fn check(&mut self, vin: &str, key: SampleKey, fp: u32, cfg: &ObdStreamConfig) -> KeyCheck {
        let q = match self.by_vin.get_mut(vin) {
            Some(q) => q,
            None => self.by_vin.entry(vin.to_string()).or_default(),
        };
        // In order (the usual case): after the newest key, no search.
        let pos = match q.back() {
            Some(b) if b.key < key => q.len(),
            None => 0,
            _ => q.partition_point(|e| e.key < key),
        };
        if let Some(e) = q.get(pos)
            && e.key == key
        {
            return if e.fp == fp {
                KeyCheck::Duplicate
            } else {
                KeyCheck::Conflict
            };
        }
        let max = cfg.dedup_max_keys.clamp(1, 1 << 20) as usize;
        let window_ms = (cfg.dedup_window_s.max(0.0) * 1000.0).min(1e15) as i64;
        let full = q.len() >= max;
        let newest = q.back().map(|e| e.key.at_ms);
        // Older than everything remembered while the memory is bounded: not checkable.
        if pos == 0
            && !q.is_empty()
            && (full || newest.is_some_and(|n| key.at_ms < n.saturating_sub(window_ms)))
        {
            return KeyCheck::Unchecked;
        }
        q.insert(pos, KeyEntry { key, fp });
        let newest = q.back().map_or(key.at_ms, |e| e.key.at_ms);
        while q.len() > max
            || q.front()
                .is_some_and(|e| e.key.at_ms < newest.saturating_sub(window_ms))
        {
            q.pop_front();
        }
        KeyCheck::New
    }

    /// Keys remembered, all vehicles (for tests and capacity planning).
    pub fn len(&self) -> usize {
        self.by_vin.values().map(VecDeque::len).sum()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sample held for the detectors: their view of it and its position (for the detection row).
#[derive(Clone, Copy)]
struct Held {
    p: ObdPoint,
    lon: Option<f64>,
    lat: Option<f64>,
}

/// Per-VIN reorder buffer in front of the detectors.
#[derive(Default)]
struct Feed {
    held: VecDeque<Held>,
    newest_ms: i64,
    /// Collection time of the last sample handed to the detectors (`i64::MIN` = none).
    released_ms: i64,
}

/// Per-vehicle states of a keyed rule over OBD samples (the TWC / rear-O2 detectors,
/// [`Twc`]), keyed by VIN, with the reorder buffer in front of them
/// ([`ObdStreamConfig::allowed_lateness_s`]).
pub struct ObdDetectors<R: KeyedRule<Sample = ObdPoint> = Twc> {
    states: KeyedStates<R>,
    feeds: HashMap<String, Feed, ahash::RandomState>,
    findings: Vec<R::Finding>,
    touched: Vec<String>,
    /// Samples released by one arrival (kept to reuse its allocation).
    ready: Vec<Held>,
    /// Samples that arrived after a later sample of their vehicle had been handed to the
    /// detectors (beyond the allowed lateness): stored, not fed to the detectors.
    pub late: u64,
    /// Record touched VINs (run mode snapshots by partition); off for file ingest.
    pub track_touched: bool,
}

/// The TWC / rear-O2 detectors of every vehicle.
pub type TwcDetectors = ObdDetectors<Twc>;

impl<R: KeyedRule<Sample = ObdPoint>> Default for ObdDetectors<R> {
    fn default() -> Self {
        ObdDetectors {
            states: KeyedStates::default(),
            feeds: HashMap::default(),
            findings: Vec::new(),
            touched: Vec::new(),
            ready: Vec::new(),
            late: 0,
            track_touched: false,
        }
    }
}

impl<R: KeyedRule<Sample = ObdPoint>> ObdDetectors<R> {
    /// Vehicles tracked.
    pub fn vehicles(&self) -> usize {
        self.states.len()
    }

    /// The per-VIN states, for snapshots, restore and dropping revoked partitions, whatever
    /// the rule's state type.
    pub fn states(&self) -> &dyn StateStore {
        &self.states
    }

    /// The per-VIN states, mutable.
    pub fn states_mut(&mut self) -> &mut dyn StateStore {
        &mut self.states
    }

    /// VINs updated since the last call (consecutive repeats folded).
    pub fn take_touched(&mut self) -> Vec<String> {
        std::mem::take(&mut self.touched)
    }

    /// Feeds one sample (stored rows only, any arrival order): it is held up to
    /// `cfg.allowed_lateness_s` behind the vehicle's newest sample, then handed to the detectors
    /// in collection-time order; a sample older than one already handed over is counted in
    /// [`ObdDetectors::late`]. Pushes detections.
    pub fn update(
        &mut self,
        r: &ObdSampleRow,
        th: &R::Params,
        cfg: &ObdStreamConfig,
        limit_set: &str,
        out: &mut Vec<DetectionRow>,
    ) {
        if self.track_touched && self.touched.last() != Some(&r.vin) {
            self.touched.push(r.vin.clone());
        }
        let feed = match self.feeds.get_mut(&r.vin) {
            Some(f) => f,
            None => self.feeds.entry(r.vin.clone()).or_insert(Feed {
                held: VecDeque::new(),
                newest_ms: i64::MIN,
                released_ms: i64::MIN,
            }),
        };
        let t = r.sampled_at_ms;
        if t < feed.released_ms {
            self.late += 1;
            return;
        }
        let h = Held {
            p: point(r),
            lon: r.nums[O::LON],
            lat: r.nums[O::LAT],
        };
        // In order (the usual case): after the newest held sample, no search.
        let pos = match feed.held.back() {
            Some(b) if b.p.t_ms > t => feed.held.partition_point(|x| x.p.t_ms <= t),
            _ => feed.held.len(),
        };
        feed.held.insert(pos, h);
        feed.newest_ms = feed.newest_ms.max(t);
        let lateness_ms = (cfg.allowed_lateness_s.max(0.0) * 1000.0).min(1e15) as i64;
        let horizon = feed.newest_ms.saturating_sub(lateness_ms);
        // Bound the buffer (a burst at one instant, or an absurd lateness): 4096 samples.
        let mut ready = std::mem::take(&mut self.ready);
        while let Some(front) = feed.held.front() {
            if front.p.t_ms > horizon && feed.held.len() <= 4096 {
                break;
            }
            if let Some(x) = feed.held.pop_front() {
                feed.released_ms = x.p.t_ms;
                ready.push(x);
            }
        }
        for x in ready.drain(..) {
            self.feed_one(&r.vin, &x, th, limit_set, out);
        }
        self.ready = ready;
    }

    /// Hands every held sample to the detectors (streaming commit, end of input).
    pub fn release_all(&mut self, th: &R::Params, limit_set: &str, out: &mut Vec<DetectionRow>) {
        let mut vins: Vec<String> = self
            .feeds
            .iter()
            .filter(|(_, f)| !f.held.is_empty())
            .map(|(v, _)| v.clone())
            .collect();
        vins.sort();
        for vin in vins {
            let held: Vec<Held> = match self.feeds.get_mut(&vin) {
                Some(f) => {
                    if let Some(last) = f.held.back() {
                        f.released_ms = f.released_ms.max(last.p.t_ms);
                    }
                    f.held.drain(..).collect()
                }
                None => continue,
            };
            for x in held {
                self.feed_one(&vin, &x, th, limit_set, out);
            }
        }
    }

    /// End of the input (file ingest): releases what is held, then gives each vehicle's
    /// detectors their end-of-input verdicts ([`KeyedRule::finish`]).
    pub fn finish_all(&mut self, th: &R::Params, limit_set: &str, out: &mut Vec<DetectionRow>) {
        self.release_all(th, limit_set, out);
        let mut vins: Vec<String> = self.states.keys().into_iter().map(str::to_string).collect();
        vins.sort();
        for vin in vins {
            self.findings.clear();
            self.states.finish(&vin, th, &mut self.findings);
            for f in &self.findings {
                out.push(R::detection(&vin, f, limit_set));
            }
        }
    }

    fn feed_one(
        &mut self,
        vin: &str,
        x: &Held,
        th: &R::Params,
        limit_set: &str,
        out: &mut Vec<DetectionRow>,
    ) {
        self.findings.clear();
        self.states.update(vin, &x.p, th, &mut self.findings);
        for f in &self.findings {
            let mut d = R::detection(vin, f, limit_set);
            d.lon_deg = x.lon;
            d.lat_deg = x.lat;
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fields::obd as F;

    fn row(vin: &str, t_s: i64, lam: f64) -> ObdSampleRow {
        let mut nums = [None; 23];
        nums[F::SPEED_KMH] = Some(50.0);
        nums[F::ENGINE_RPM] = Some(1800.0);
        nums[F::COOLANT_C] = Some(85.0);
        nums[F::FUEL_FLOW_LPH] = Some(4.0);
        nums[F::COMMANDED_LAMBDA] = Some(1.0);
        nums[F::UPSTREAM_LAMBDA] = Some(lam);
        nums[F::REAR_O2_V] = Some(0.7);
        ObdSampleRow {
            vin: vin.into(),
            sampled_at_ms: 1_762_567_200_000 + t_s * 1000,
            info_type: Some(3),
            nums,
            ..Default::default()
        }
    }

    /// Keys: a repeat is a duplicate, a repeat with other values a conflict, another info type
    /// at the same instant a new key; the memory stays within `dedup_max_keys` per VIN and a
    /// key older than what is remembered is reported unchecked.
    #[test]
    fn sample_fingerprint_tells_any_changed_value() {
        let a = row("V1", 0, 1.0);
        assert_eq!(sample_fingerprint(&a), sample_fingerprint(&a.clone()));
        let fp = sample_fingerprint(&a);
        let mut seen = std::collections::HashSet::from([fp]);
        for i in 0..a.nums.len() {
            for v in [
                None,
                Some(0.0),
                Some(-0.0),
                Some(1e300),
                Some(-1.0),
                Some(1.000_000_1),
            ] {
                let mut b = a.clone();
                if b.nums[i].map(f64::to_bits) == v.map(f64::to_bits) {
                    continue;
                }
                b.nums[i] = v;
                assert!(seen.insert(sample_fingerprint(&b)), "column {i} = {v:?}");
            }
        }
        let mut b = a.clone();
        b.position_valid = Some(!a.position_valid.unwrap_or(false));
        assert_ne!(sample_fingerprint(&b), fp);
    }

    #[test]
    fn recent_keys_dedup_and_bound() {
        let cfg = ObdStreamConfig {
            dedup_max_keys: 100,
            ..Default::default()
        };
        let mut k = RecentKeys::default();
        let a = row("V1", 0, 1.0);
        let (vin, key) = sample_key(&a);
        let fp = sample_fingerprint(&a);
        assert_eq!(k.check(vin, key, fp, &cfg), KeyCheck::New);
        assert_eq!(k.check(vin, key, fp, &cfg), KeyCheck::Duplicate);
        let b = row("V1", 0, 1.01);
        assert_eq!(
            k.check(vin, key, sample_fingerprint(&b), &cfg),
            KeyCheck::Conflict
        );
        let other = SampleKey {
            info_type: 5,
            ..key
        };
        assert_eq!(k.check(vin, other, fp, &cfg), KeyCheck::New);
        assert_eq!(k.check("V2", key, fp, &cfg), KeyCheck::New);
        for t in 1..=300 {
            let r = row("V1", t, 1.0);
            let (v, key) = sample_key(&r);
            assert_eq!(k.check(v, key, 0, &cfg), KeyCheck::New);
        }
        assert_eq!(k.len(), 100 + 1);
        // t = 5 s is no longer remembered (only the newest 100): unchecked, not "new".
        let r5 = row("V1", 5, 1.0);
        let (v, old) = sample_key(&r5);
        assert_eq!(k.check(v, old, 0, &cfg), KeyCheck::Unchecked);
        // a resend inside the memory is still a duplicate
        let r250 = row("V1", 250, 1.0);
        let (v, recent) = sample_key(&r250);
        assert_eq!(k.check(v, recent, 0, &cfg), KeyCheck::Duplicate);
    }

    fn rules(out: &[DetectionRow]) -> Vec<(String, String)> {
        let mut v: Vec<_> = out
            .iter()
            .map(|d| (d.rule_id.clone(), d.detection_id.clone()))
            .collect();
        v.sort();
        v
    }

    /// Order: samples swapped pairwise and a block of 5 resent 8 s late (inside the allowed
    /// lateness) give the same detections as the sorted feed, none counted late; with a 2-s
    /// lateness the late block is counted (5), never fed silently.
    #[test]
    fn detectors_see_samples_in_time_order() {
        let th = crate::detect::twc::TwcThresholds::default();
        let sorted: Vec<ObdSampleRow> = (0..900)
            .map(|t| row("V", t, if t % 2 == 0 { 0.06125 } else { 0.06375 }))
            .collect();
        let run = |rows: &[ObdSampleRow], cfg: &ObdStreamConfig| {
            let mut d = TwcDetectors::default();
            let mut out = Vec::new();
            for r in rows {
                d.update(r, &th, cfg, "x", &mut out);
            }
            d.finish_all(&th, "x", &mut out);
            (rules(&out), d.late)
        };
        let cfg = ObdStreamConfig::default();
        let (want, late) = run(&sorted, &cfg);
        assert_eq!(late, 0);
        assert_eq!(want.len(), 1);
        assert_eq!(want[0].0, "lambda_implausible");
        let mut shuffled = sorted.clone();
        for i in (0..898).step_by(2) {
            shuffled.swap(i, i + 1);
        }
        let block: Vec<ObdSampleRow> = shuffled.drain(400..405).collect();
        shuffled.splice(408..408, block);
        assert_eq!(run(&shuffled, &cfg), (want.clone(), 0));
        let tight = ObdStreamConfig {
            allowed_lateness_s: 2.0,
            ..Default::default()
        };
        let (_, late) = run(&shuffled, &tight);
        assert_eq!(late, 5);
    }
}
