//! `plumewatch inspect-frame HEX`: one HJ 1239 frame, decoded field by field with units
//! (text) or as the `obd_samples` / `obd_reports` rows it becomes (JSON, table column names).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::decode::fields::OBD_NUMS;
use crate::decode::hj1239::{Body, Frame, FrameError, decode_frame};
use crate::enrich::obd::rows_from_frame;
use crate::schema::{ObdReportRow, ObdSampleRow};

/// Why a frame could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("not hex: {0}")]
    Hex(String),
    #[error("rejected ({code}): {err}", code = .0.reason_code(), err = .0)]
    Rejected(FrameError),
    #[error("rejected: {0}")]
    Rows(String),
}

/// Parses hex (spaces, `0x` and line breaks allowed).
pub fn parse_hex(s: &str) -> Result<Vec<u8>, InspectError> {
    let clean: String = s
        .replace("0x", "")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '-')
        .collect();
    hex::decode(&clean).map_err(|e| InspectError::Hex(e.to_string()))
}

fn unit(col: &str) -> &'static str {
    let suffixes = [
        ("_kmh", "km/h"),
        ("_kpa", "kPa"),
        ("_pct", "%"),
        ("_rpm", "rpm"),
        ("_lph", "L/h"),
        ("_ppm", "ppm"),
        ("_kgph", "kg/h"),
        ("_c", "°C"),
        ("_v", "V"),
        ("_deg", "°"),
        ("_km", "km"),
    ];
    suffixes
        .iter()
        .find(|(s, _)| col.ends_with(s))
        .map(|(_, u)| *u)
        .unwrap_or("")
}

fn sample_json(s: &ObdSampleRow) -> Value {
    let mut m = Map::new();
    m.insert("vin".into(), json!(s.vin));
    m.insert("sampled_at".into(), json!(iso(s.sampled_at_ms)));
    m.insert("info_type".into(), json!(s.info_type));
    for (n, v) in OBD_NUMS.iter().zip(s.nums) {
        m.insert((*n).into(), json!(v));
    }
    m.insert("position_valid".into(), json!(s.position_valid));
    m.insert("time_inferred".into(), json!(s.time_inferred));
    m.insert("source_cmd".into(), json!(s.source_cmd));
    Value::Object(m)
}

fn report_json(r: &ObdReportRow) -> Value {
    json!({
        "vin": r.vin, "reported_at": iso(r.reported_at_ms), "protocol": r.protocol, "mil_on": r.mil_on,
        "diag_support": r.diag_support, "diag_readiness": r.diag_readiness,
        "calibration_id": r.calibration_id, "cvn": r.cvn, "iupr": r.iupr, "dtcs": r.dtcs,
        "dtc_raw": r.dtc_details.iter().map(|d| format!("{:08X}", d.raw)).collect::<Vec<_>>(),
        "dtc_failure_type": r.dtc_details.iter().map(|d| d.failure_type).collect::<Vec<_>>(),
        "dtc_status": r.dtc_details.iter().map(|d| d.status).collect::<Vec<_>>(),
        "dtc_cm": r.dtc_details.iter().map(|d| d.conversion_method).collect::<Vec<_>>(),
        "dtc_oc": r.dtc_details.iter().map(|d| d.occurrence_count).collect::<Vec<_>>(),
    })
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

fn header_json(f: &Frame) -> Value {
    let mut h = json!({
        "command": f.command.name(), "command_code": f.command.code(), "vin": f.vin,
        "software_version": f.software_version, "encryption": f.encryption,
    });
    if let Body::Realtime {
        sent_at,
        seq,
        serial_layout,
        signature_len,
        signature_parts,
        ..
    } = &f.body
    {
        h["sent_at"] = json!(sent_at.unix_ms_utc8().map(iso));
        h["seq"] = json!(seq);
        h["serial_layout"] = json!(serial_layout.name());
        h["signature_len"] = json!(signature_len);
        h["signature_parts"] = json!(signature_parts);
    }
    h
}

/// Decodes `bytes`; `json = true` gives a JSON document, else text. Errors carry the
/// rejection reason (the CLI exits non-zero).
pub fn inspect(bytes: &[u8], as_json: bool) -> Result<String, InspectError> {
    let f = decode_frame(bytes).map_err(InspectError::Rejected)?;
    let (samples, reports) = rows_from_frame(&f).map_err(InspectError::Rows)?;
    if as_json {
        let doc = json!({
            "frame": header_json(&f),
            "obd_reports": reports.iter().map(report_json).collect::<Vec<_>>(),
            "obd_samples": samples.iter().map(sample_json).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let mut t = String::new();
    let h = header_json(&f);
    let _ = writeln!(t, "frame ({} bytes, BCC ok)", bytes.len());
    for (k, v) in h.as_object().into_iter().flatten() {
        let _ = writeln!(t, "  {k:<18} {v}");
    }
    if let Body::Login { time, seq, iccid } = &f.body {
        let _ = writeln!(
            t,
            "  login_time         {time}\n  login_seq          {seq}\n  iccid              {iccid}"
        );
    }
    if let Body::Logout { time, seq } = &f.body {
        let _ = writeln!(t, "  logout_time        {time}\n  logout_seq         {seq}");
    }
    for r in &reports {
        let _ = writeln!(t, "obd report");
        for (k, v) in report_json(r).as_object().into_iter().flatten() {
            let _ = writeln!(t, "  {k:<18} {v}");
        }
    }
    for (i, s) in samples.iter().enumerate() {
        let _ = writeln!(
            t,
            "sample {} (info type 0x{:02X})",
            i + 1,
            s.info_type.unwrap_or(0)
        );
        let _ = writeln!(
            t,
            "  {:<20} {}{}",
            "sampled_at",
            iso(s.sampled_at_ms),
            if s.time_inferred {
                " (inferred: 1 Hz from the send time)"
            } else {
                ""
            }
        );
        for (n, v) in OBD_NUMS.iter().zip(s.nums) {
            if let Some(v) = v {
                let _ = writeln!(t, "  {n:<20} {v:.4} {}", unit(n));
            }
        }
        if let Some(p) = s.position_valid {
            let _ = writeln!(t, "  {:<20} {p}", "position_valid");
        }
    }
    Ok(t)
}
