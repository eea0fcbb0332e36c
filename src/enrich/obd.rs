//! Remote-OBD rows: decoded HJ 1239 frames and `obd_sample` records → `obd_samples` /
//! `obd_reports` rows, and the per-vehicle streaming detectors (`detect::twc`, §3.3) and the
//! DTC rule (`detect::obd_dtc`, §2.2) that run over them.

use std::collections::HashMap;

use crate::decode::fields::{OBD_NUMS, obd as O};
use crate::decode::hj1239::{Body, Frame, InfoBlock, ObdReport, StreamSample};
use crate::decode::record::{FieldError, Record};
use crate::detect::china3::detection_id;
use crate::detect::twc::{ObdPoint, TwcFinding, TwcState, TwcThresholds};
use crate::schema::{DetectionRow, ObdReportRow, ObdSampleRow};

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
    })
}

fn stream_row(vin: &str, s: &StreamSample, at_ms: i64, inferred: bool) -> ObdSampleRow {
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
    }
}

/// Rows of one decoded frame. Blocks without their own collection time take the frame's
/// send time, the n-th stream block + n s (1 Hz reporting, `obd-remote-monitoring.md §1.9`),
/// and are marked `time_inferred`. Frames other than real-time / resend carry no rows.
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
                samples.push(stream_row(&f.vin, s, at, inferred));
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

/// Per-vehicle TWC / rear-O2 detector states, keyed by VIN, with the last position seen.
#[derive(Default)]
pub struct TwcDetectors {
    states: HashMap<String, TwcState>,
    findings: Vec<TwcFinding>,
    touched: Vec<String>,
    /// Record touched VINs (run mode snapshots by partition); off for file ingest.
    pub track_touched: bool,
}

impl TwcDetectors {
    /// Vehicles tracked.
    pub fn vehicles(&self) -> usize {
        self.states.len()
    }

    /// The state map (for snapshots).
    pub fn states(&self) -> &HashMap<String, TwcState> {
        &self.states
    }

    /// VINs updated since the last call (consecutive repeats folded).
    pub fn take_touched(&mut self) -> Vec<String> {
        std::mem::take(&mut self.touched)
    }

    /// The state map, mutable (restore and drop partitions).
    pub fn states_mut(&mut self) -> &mut HashMap<String, TwcState> {
        &mut self.states
    }

    /// Replaces the states (restore from a snapshot).
    pub fn restore(&mut self, states: HashMap<String, TwcState>) {
        self.states = states;
    }

    /// Feeds one sample (in time order per vehicle); pushes detections.
    pub fn update(
        &mut self,
        r: &ObdSampleRow,
        th: &TwcThresholds,
        limit_set: &str,
        out: &mut Vec<DetectionRow>,
    ) {
        if self.track_touched && self.touched.last() != Some(&r.vin) {
            self.touched.push(r.vin.clone());
        }
        let st = match self.states.get_mut(&r.vin) {
            Some(s) => s,
            None => self.states.entry(r.vin.clone()).or_default(),
        };
        self.findings.clear();
        st.update(&point(r), th, &mut self.findings);
        for f in self.findings.drain(..) {
            let rule_id = f.rule.rule_id();
            let key = format!("{}@{}", r.vin, f.window_start_ms);
            let mut ev = serde_json::Map::new();
            ev.insert("window_start_ms".into(), f.window_start_ms.into());
            ev.insert("window_end_ms".into(), f.window_end_ms.into());
            for (k, v) in &f.evidence {
                ev.insert(
                    (*k).into(),
                    serde_json::Number::from_f64(*v)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null),
                );
            }
            out.push(DetectionRow {
                detection_id: detection_id(rule_id, "obd", &key),
                rule_id: rule_id.into(),
                rule_version: f.rule.rule_version().into(),
                limit_set: limit_set.into(),
                detected_at_ms: f.window_end_ms,
                vin: Some(r.vin.clone()),
                lon_deg: r.nums[O::LON],
                lat_deg: r.nums[O::LAT],
                source_stream: "obd".into(),
                source_key: key,
                strength: Some(f.strength),
                evidence: serde_json::Value::Object(ev).to_string(),
                ..Default::default()
            });
        }
    }
}
