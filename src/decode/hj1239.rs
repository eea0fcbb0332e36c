//! Sans-IO decoder for HJ 1239.3-2021 / GB 17691-2018 Annex Q remote-monitoring frames
//! (terminal → platform), as specified in `obd-remote-monitoring.md` §1.
//!
//! * [`FrameScanner`] cuts an arbitrary byte stream into candidate frames (`##` start,
//!   25-byte overhead, BCC check) and reports everything else as rejected byte runs.
//! * [`decode_frame`] decodes one complete frame into a [`Frame`].
//! * [`encode_twc_realtime_frame`] builds HJ 1239 real-time frames with type-0x03 (gas TWC)
//!   blocks, for tests and the fleet generator.
//!
//! No I/O, no `unsafe`, no panics on input-derived data; every allocation is bounded by
//! the input size (a frame is at most [`MAX_FRAME_LEN`] bytes).
//!
//! Findings from the public test vectors (`shared/data/frames/remote_frames.tsv`) that
//! shaped this module:
//! * Times are **binary** (`0x2E` = 46 s appears in real frames), not BCD (§1.3).
//! * Some terminals send a GB/T 32960-style header `## cmd 0xFE VIN enc len` (no software
//!   version byte; 0xFE "response flag" before the VIN) around an HJ 1239 body. The overhead is
//!   still 25 bytes, so the length sits at offset 22 in both header styles ([`HeaderStyle`]).
//! * The 2-byte information serial number is placed differently in the wild
//!   ([`SerialLayout`]); the decoder takes the layout that consumes the data unit exactly.
//!
//! From field cases (shared/field-cases):
//! * Terminals that sign every info block put an SM2 signature part (`R-len R S-len S`, lengths
//!   16–33) after *each* block, not only at the end of the data unit; such parts are skipped
//!   wherever they follow a block and counted in `signature_len` / `signature_parts`.
//! * A position whose status bit 0 says "invalid" (or whose status byte is a sentinel, or which
//!   reads exactly (0, 0)) has no coordinates: `lon_deg` / `lat_deg` are `None`.
//! * Bytes of another protocol are named: JT/T 808 (0x7E-delimited, XOR check code) is
//!   rejected as [`FrameError::OtherProtocol`], GB/T 32960 as [`FrameError::Gb32960`].
#![forbid(unsafe_code)]

use serde::Serialize;
use std::fmt;

/// Fixed frame overhead: `##` 2 + command 1 + VIN 17 + version 1 + encryption 1 + length 2 +
/// BCC 1 (obd-remote-monitoring.md §1.2).
pub const FRAME_OVERHEAD: usize = 25;
/// Bytes before the data unit (everything in [`FRAME_OVERHEAD`] except the BCC).
pub const HEADER_LEN: usize = 24;
/// Largest allowed data-unit length (0–65531, obd-remote-monitoring.md §1.2).
pub const MAX_DATA_UNIT_LEN: usize = 65531;
/// Largest possible frame in bytes.
pub const MAX_FRAME_LEN: usize = MAX_DATA_UNIT_LEN + FRAME_OVERHEAD;
/// A run of non-frame bytes is reported (as [`FrameError::NoFrameStart`]) at the latest when it
/// reaches this many bytes, which bounds the scanner's buffer.
pub const MAX_GARBAGE_RUN: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Frame model
// ---------------------------------------------------------------------------------------------

/// Command unit (obd-remote-monitoring.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum Command {
    /// 0x01 vehicle login: time 6 + login serial 2 + ICCID 20.
    Login = 1,
    /// 0x02 real-time data (§1.5).
    Realtime = 2,
    /// 0x03 resend (补发) data, same layout as 0x02.
    Resend = 3,
    /// 0x04 vehicle logout: time 6 + logout serial 2.
    Logout = 4,
    /// 0x05 terminal time calibration: empty (uplink).
    TimeCalibration = 5,
    /// 0x06 terminal-removal alarm (HJ only).
    RemovalAlarm = 6,
    /// 0x07 activation (HJ only).
    Activation = 7,
    /// 0x08 activation reply (downlink).
    ActivationReply = 8,
}

impl Command {
    /// Command from its wire byte; `None` for codes outside 0x01–0x08.
    pub fn from_u8(b: u8) -> Option<Command> {
        Some(match b {
            1 => Command::Login,
            2 => Command::Realtime,
            3 => Command::Resend,
            4 => Command::Logout,
            5 => Command::TimeCalibration,
            6 => Command::RemovalAlarm,
            7 => Command::Activation,
            8 => Command::ActivationReply,
            _ => return None,
        })
    }

    /// Wire byte.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Short snake_case name, e.g. `"realtime"`.
    pub fn name(self) -> &'static str {
        match self {
            Command::Login => "login",
            Command::Realtime => "realtime",
            Command::Resend => "resend",
            Command::Logout => "logout",
            Command::TimeCalibration => "time_calibration",
            Command::RemovalAlarm => "removal_alarm",
            Command::Activation => "activation",
            Command::ActivationReply => "activation_reply",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which header layout the frame used. Both have the 25-byte overhead and the length at
/// offset 22 (obd-remote-monitoring.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HeaderStyle {
    /// `## cmd VIN(17) version enc len(2)` — the HJ 1239 / GB 17691 header.
    Hj1239,
    /// `## cmd flag VIN(17) enc len(2)` — GB/T 32960 header (response flag, usually 0xFE, and
    /// no software-version byte), seen around HJ 1239 bodies (test vector
    /// `hj_fe_LETYECG28MH055508`).
    Gb32960Style {
        /// The byte after the command (0x01/0x02/0x03/0xFE in GB/T 32960).
        response_flag: u8,
    },
}

/// One decoded frame (obd-remote-monitoring.md §1.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    /// Command unit (§1.3).
    pub command: Command,
    /// VIN, ASCII, trailing NUL/space/0xFF fill removed; non-printable bytes become U+FFFD.
    pub vin: String,
    /// Terminal software version byte (offset 20, §1.2). `None` for [`HeaderStyle::Gb32960Style`]
    /// headers, which have no such byte.
    pub software_version: Option<u8>,
    /// Data encryption byte (§1.4); only 0x01 (none) bodies are decoded.
    pub encryption: u8,
    /// Header layout found.
    pub header: HeaderStyle,
    /// Decoded data unit.
    pub body: Body,
}

/// Placement of the 2-byte information serial number in a real-time data unit
/// (obd-remote-monitoring.md §1.5; `shared/data/README.md` "frames/").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SerialLayout {
    /// `time | seq | {type | body}…` — HJ 1239.3 / GB 17691 as specified (§1.5).
    OncePerFrame,
    /// `time | {type | seq | body}…` — seen in `hj_carsimu_LGDCHA1G8MA127733`.
    AfterEachInfoType,
    /// `time | type | seq | body | {type | body}…` — seen in `hj_fe_LETYECG28MH055508`.
    FirstUnitOnly,
}

impl SerialLayout {
    /// Short snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            SerialLayout::OncePerFrame => "once_per_frame",
            SerialLayout::AfterEachInfoType => "after_each_info_type",
            SerialLayout::FirstUnitOnly => "first_unit_only",
        }
    }
}

/// Decoded data unit, by command (obd-remote-monitoring.md §1.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Body {
    /// 0x01: time 6 + login serial 2 + ICCID 20.
    Login {
        /// Login time (Beijing time assumed).
        time: FrameTime,
        /// Login serial number.
        seq: u16,
        /// SIM ICCID (20 ASCII characters).
        iccid: String,
    },
    /// 0x02 real-time / 0x03 resend data (§1.5).
    Realtime {
        /// Send time of the frame.
        sent_at: FrameTime,
        /// Information serial number; with [`SerialLayout::AfterEachInfoType`] the first block's.
        seq: Option<u16>,
        /// Information blocks in wire order.
        blocks: Vec<InfoBlock>,
        /// Serial-number placement that consumed the body exactly.
        serial_layout: SerialLayout,
        /// True when each block carried its own 6-byte collection time (HJ 1239.3 layout).
        block_times: bool,
        /// Bytes of SM2 signature parts `R-len R S-len S` (0 when absent, §1.4), summed over
        /// every part: at the end of the data unit and/or after any info block.
        signature_len: usize,
        /// Number of signature parts found (0, 1 at the end, or one after each signed block).
        signature_parts: u8,
        /// How many candidate layouts consumed the body exactly (1 = unambiguous; >1 means the
        /// preference order chose, see [`decode_frame`]).
        layouts_matched: u8,
    },
    /// 0x04: time 6 + logout serial 2.
    Logout {
        /// Logout time.
        time: FrameTime,
        /// Logout serial number.
        seq: u16,
    },
    /// 0x05: empty uplink; a 6-byte time is accepted too (platform reply).
    TimeCalibration {
        /// Time, when the data unit carried one.
        time: Option<FrameTime>,
    },
    /// 0x06: time 6 + serial 2 + position status 1 + lon 4 + lat 4.
    RemovalAlarm {
        /// Alarm time.
        time: FrameTime,
        /// Serial number.
        seq: u16,
        /// Position-status bit 0 (0 = valid); `None` when the status byte is a sentinel.
        position_valid: Option<bool>,
        /// Longitude in degrees, negative for W (status bit 2).
        lon_deg: Option<f64>,
        /// Latitude in degrees, negative for S (status bit 1).
        lat_deg: Option<f64>,
    },
    /// 0x07: time 6 + chip ID 16 + public key 64 + VIN 17 + SM2 signature.
    Activation {
        /// Activation time.
        time: FrameTime,
        /// Security-chip ID, uppercase hex of the 16 bytes.
        chip_id: String,
        /// Public key X‖Y (64 bytes).
        public_key: Vec<u8>,
        /// VIN inside the activation body.
        vin: String,
        /// Signature bytes `R-len R S-len S`.
        signature_len: usize,
    },
    /// 0x08: status 1 (1 ok, 2 fail) + info 1 (0 ok, 1 chip already activated, 2 VIN error).
    ActivationReply {
        /// Activation status.
        status: u8,
        /// Reason code.
        info: u8,
    },
}

/// One information block of a real-time data unit (obd-remote-monitoring.md §1.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InfoBlock {
    /// Type 0x01 OBD information (§1.6).
    Obd(ObdReport),
    /// Types 0x02 (DPF/SCR diesel), 0x03 (TWC gas), 0x05 (TWC with NOx sensor) (§1.7).
    Stream(StreamSample),
    /// Type 0x04 hybrid (§1.7).
    Hybrid(HybridSample),
    /// Type 0x80 supplementary stream (§1.7).
    Supplementary(SupplementarySample),
    /// A user-defined type (0x81–0xFE) of unknown length; only produced as the last block, when
    /// no layout decodes the body with known types alone. `data` is the rest of the body.
    Unknown {
        /// Information type byte.
        info_type: u8,
        /// Collection time, when the layout carries one.
        collected_at: Option<FrameTime>,
        /// Undecoded bytes (rest of the data unit).
        data: Vec<u8>,
    },
}

/// One diagnostic trouble code as sent (4 bytes), decoded by the OBD protocol byte
/// (obd-remote-monitoring.md §1.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dtc {
    /// The 4 raw bytes, big-endian.
    pub raw: u32,
    /// `"P2047"` (ISO 15765/27145: 3-byte UDS DTC, failure-type byte in `failure_type`),
    /// `"SPN 1234 FMI 5"` (SAE J1939), or `"0x12345678"` (unknown protocol).
    pub code: String,
    /// ISO/UDS failure-type byte (third byte).
    pub failure_type: Option<u8>,
    /// ISO/UDS status byte (fourth byte).
    pub status: Option<u8>,
    /// J1939 occurrence count OC (low 7 bits of the fourth byte).
    pub occurrence_count: Option<u8>,
    /// J1939 SPN conversion method CM (bit 7 of the fourth byte).
    pub conversion_method: Option<u8>,
}

/// OBD information block, type 0x01: 96 bytes + 4·N (obd-remote-monitoring.md §1.6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObdReport {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// OBD protocol: 0 ISO 15765, 1 ISO 27145, 2 SAE J1939; `None` for 0xFE/0xFF.
    pub protocol: Option<u8>,
    /// MIL status: 0 off, 1 on; `None` for 0xFE or any other value.
    pub mil_on: Option<bool>,
    /// Diagnostic support status bitmask (b0 catalyst … b15 comprehensive component, §1.6);
    /// `None` only for 0xFFFF (a bitmask may legitimately exceed 0xFAFF).
    pub diag_support: Option<u16>,
    /// Diagnostic readiness status bitmask (same bit order); `None` only for 0xFFFF.
    pub diag_readiness: Option<u16>,
    /// VIN reported by the ECU.
    pub vin: String,
    /// Software calibration ID (18 ASCII bytes, fill trimmed).
    pub calibration_id: String,
    /// Calibration verification number, uppercase hex of all 18 raw bytes (binary CVN plus
    /// whatever fill the terminal used; compare as-is over time).
    pub cvn: String,
    /// In-use performance ratio words 0–17 (J1979 order: OBDCOND, IGNCNTR, CATCOMP1, CATCOND1 …
    /// SO2SCOMP1, SO2SCOND1), counts; `None` for raw > 0xFAFF.
    pub iupr: Vec<Option<u16>>,
    /// DTC codes, e.g. `"P0420"` (see [`Dtc::code`]).
    pub dtcs: Vec<String>,
    /// DTCs with raw bytes and status.
    pub dtc_details: Vec<Dtc>,
}

/// Data-stream sample, info type 0x02 (diesel DPF/SCR), 0x03 (gas TWC) or 0x05 (gas TWC with
/// NOx sensor), obd-remote-monitoring.md §1.7. `phys = raw × scale + offset`; a field is `None`
/// when it does not exist in the type or its raw value is a sentinel (§1.8: 1-byte raw > 0xFA,
/// 2-byte > 0xFAFF, 4-byte > 0xFAFFFFFF; rear O2 above 1.275 V).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamSample {
    /// 0x02, 0x03 or 0x05.
    pub info_type: u8,
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Vehicle speed, km/h (2 B × 1/256).
    pub speed_kmh: Option<f64>,
    /// Barometric pressure, kPa (1 B × 0.5).
    pub barometric_kpa: Option<f64>,
    /// Engine net output torque, % of reference (1 B − 125).
    pub net_torque_pct: Option<f64>,
    /// Friction torque, % (1 B − 125).
    pub friction_torque_pct: Option<f64>,
    /// Engine speed, rpm (2 B × 0.125).
    pub engine_rpm: Option<f64>,
    /// Engine fuel flow, L/h (2 B × 0.05).
    pub fuel_flow_lph: Option<f64>,
    /// SCR upstream NOx, ppm (2 B × 0.05 − 200), type 0x02.
    pub scr_up_nox_ppm: Option<f64>,
    /// SCR downstream NOx, ppm (2 B × 0.05 − 200), type 0x02.
    pub scr_down_nox_ppm: Option<f64>,
    /// Reagent (urea) level, % (1 B × 0.4), type 0x02.
    pub reagent_pct: Option<f64>,
    /// Intake air flow, kg/h (2 B × 0.05).
    pub intake_air_kgph: Option<f64>,
    /// SCR inlet temperature, °C (2 B × 0.03125 − 273), type 0x02.
    pub scr_in_temp_c: Option<f64>,
    /// SCR outlet temperature, °C (2 B × 0.03125 − 273), type 0x02.
    pub scr_out_temp_c: Option<f64>,
    /// DPF differential pressure, kPa (2 B × 0.1), type 0x02.
    pub dpf_dp_kpa: Option<f64>,
    /// Coolant temperature, °C (1 B − 40).
    pub coolant_c: Option<f64>,
    /// Fuel tank level, % (1 B × 0.4), type 0x02.
    pub tank_pct: Option<f64>,
    /// TWC upstream O2 sensor output, lambda (dimensionless, 2 B × 0.0000305), types 0x03/0x05.
    pub upstream_lambda: Option<f64>,
    /// TWC downstream (rear) O2 sensor voltage, V (1 B × 0.01; `None` above 1.275 V, §1.8),
    /// types 0x03/0x05.
    pub rear_o2_v: Option<f64>,
    /// TWC downstream NOx, ppm (2 B × 0.05 − 200), type 0x05.
    pub twc_down_nox_ppm: Option<f64>,
    /// TWC temperature, °C (2 B × 0.03125 − 273), types 0x03/0x05.
    pub twc_temp_c: Option<f64>,
    /// Position status bit 0 (0 = valid); `None` when the status byte is > 0xFA.
    pub position_valid: Option<bool>,
    /// Longitude, degrees (4 B × 1e-6), negative when status bit 2 (W) is set.
    pub lon_deg: Option<f64>,
    /// Latitude, degrees (4 B × 1e-6), negative when status bit 1 (S) is set.
    pub lat_deg: Option<f64>,
    /// Odometer, km (4 B × 0.1).
    pub odometer_km: Option<f64>,
}

/// Hybrid block, type 0x04, 8 bytes (obd-remote-monitoring.md §1.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HybridSample {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Motor speed, rpm (2 B × 1).
    pub motor_rpm: Option<f64>,
    /// Motor load, % (1 B × 1).
    pub motor_load_pct: Option<f64>,
    /// Traction battery voltage, V (2 B × 0.1).
    pub battery_v: Option<f64>,
    /// Traction battery current, A (2 B × 0.1 − 1000).
    pub battery_a: Option<f64>,
    /// Battery state of charge, % (1 B × 1).
    pub soc_pct: Option<f64>,
}

/// Supplementary stream, type 0x80, 17 bytes (obd-remote-monitoring.md §1.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SupplementarySample {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Engine torque mode enum (0 overspeed fail, 1 speed ctl, 2 torque ctl, 3 speed/torque,
    /// 9 normal); `None` for > 0xFA.
    pub torque_mode: Option<u8>,
    /// Accelerator pedal, % (1 B × 0.4).
    pub accelerator_pct: Option<f64>,
    /// Cumulative fuel consumption, L (4 B × 0.5).
    pub cumulative_fuel_l: Option<f64>,
    /// Urea tank temperature, °C (1 B − 40).
    pub urea_tank_temp_c: Option<f64>,
    /// Actual urea dosing, mL/h (4 B × 0.01).
    pub urea_dosing_ml_h: Option<f64>,
    /// Cumulative urea consumption, g (4 B × 1).
    pub cumulative_urea_g: Option<f64>,
    /// DPF exhaust temperature, °C (2 B × 0.03125 − 273).
    pub dpf_exhaust_temp_c: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why bytes were not decoded; `Display` gives the quarantine message, [`FrameError::reason_code`]
/// a short snake_case code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FrameError {
    /// Fewer than 25 bytes.
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The bytes do not start with `##`, or `###` (a `#` cannot be a command byte).
    BadStart {
        /// First bytes found.
        found: Vec<u8>,
    },
    /// Declared data-unit length above 65531 (§1.2).
    LengthTooLarge {
        /// Declared data-unit length.
        declared: usize,
    },
    /// Fewer bytes than the declared data-unit length (+ BCC).
    Truncated {
        /// Declared data-unit length.
        declared: usize,
        /// Data-unit bytes present (BCC included if it is there).
        present: usize,
    },
    /// Input ended inside the 24-byte header.
    TruncatedHeader {
        /// Bytes present from the `##`.
        present: usize,
    },
    /// More bytes than the declared length (for [`decode_frame`] on a whole message).
    TrailingBytes {
        /// Declared data-unit length.
        declared: usize,
        /// Extra bytes after the BCC.
        extra: usize,
    },
    /// BCC mismatch (XOR from the command byte to the byte before the BCC, §1.2).
    BadBcc {
        /// BCC computed over the frame.
        computed: u8,
        /// BCC byte in the frame.
        found: u8,
    },
    /// Bytes with no frame start (scanner garbage run).
    NoFrameStart {
        /// Length of the run.
        len: usize,
    },
    /// Command byte outside 0x01–0x08.
    UnknownCommand {
        /// Command byte.
        command: u8,
    },
    /// A GB/T 32960 (electric-vehicle protocol) frame, not HJ 1239.
    Gb32960 {
        /// How it was recognised.
        why: String,
    },
    /// Encrypted data unit (encryption byte other than 0x01), §1.4.
    Encrypted {
        /// Encryption byte.
        encryption: u8,
    },
    /// Fixed-length data unit of the wrong length.
    BodyLength {
        /// Command.
        command: Command,
        /// Expected length(s), e.g. `"28"`.
        expected: &'static str,
        /// Actual data-unit length.
        actual: usize,
    },
    /// The bytes are a message of another protocol (e.g. JT/T 808, 0x7E-delimited), not HJ 1239.
    OtherProtocol {
        /// Protocol name, e.g. `"JT/T 808"`.
        protocol: &'static str,
        /// How it was recognised.
        why: String,
    },
    /// No real-time layout consumes the data unit exactly (§1.5).
    LayoutMismatch {
        /// Command (realtime or resend).
        command: Command,
        /// Data-unit length.
        body_len: usize,
    },
}

impl FrameError {
    /// Short snake_case code for the quarantine table.
    pub fn reason_code(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "too_short",
            FrameError::BadStart { .. } => "bad_start",
            FrameError::LengthTooLarge { .. } => "length_too_large",
            FrameError::Truncated { .. } => "truncated",
            FrameError::TruncatedHeader { .. } => "truncated_header",
            FrameError::TrailingBytes { .. } => "trailing_bytes",
            FrameError::BadBcc { .. } => "bad_bcc",
            FrameError::NoFrameStart { .. } => "no_frame_start",
            FrameError::UnknownCommand { .. } => "unknown_command",
            FrameError::Gb32960 { .. } => "gb32960_frame",
            FrameError::Encrypted { .. } => "encrypted",
            FrameError::BodyLength { .. } => "bad_body_length",
            FrameError::LayoutMismatch { .. } => "layout_mismatch",
            FrameError::OtherProtocol { .. } => "other_protocol",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort { len } => {
                write!(
                    f,
                    "too short: {len} bytes, a frame has at least {FRAME_OVERHEAD}"
                )
            }
            FrameError::BadStart { found } => {
                write!(f, "bad start: expected \"##\" then a command byte, found ")?;
                for b in found {
                    write!(f, "{b:02X}")?;
                }
                Ok(())
            }
            FrameError::LengthTooLarge { declared } => write!(
                f,
                "declared data-unit length {declared} exceeds the maximum {MAX_DATA_UNIT_LEN}"
            ),
            FrameError::Truncated { declared, present } => write!(
                f,
                "truncated: declared data-unit length {declared}, {present} bytes present"
            ),
            FrameError::TruncatedHeader { present } => write!(
                f,
                "truncated: input ends inside the frame header ({present} of {HEADER_LEN} bytes)"
            ),
            FrameError::TrailingBytes { declared, extra } => write!(
                f,
                "trailing bytes: declared data-unit length {declared}, {extra} bytes after the BCC"
            ),
            FrameError::BadBcc { computed, found } => {
                write!(
                    f,
                    "bad BCC: computed 0x{computed:02X}, frame has 0x{found:02X}"
                )
            }
            FrameError::NoFrameStart { len } => {
                write!(f, "garbage: {len} bytes without a valid frame start")
            }
            FrameError::UnknownCommand { command } => write!(f, "unknown command 0x{command:02X}"),
            FrameError::Gb32960 { why } => {
                write!(f, "GB/T 32960 frame (EV protocol), not HJ 1239: {why}")
            }
            FrameError::Encrypted { encryption } => write!(
                f,
                "encrypted data unit (encryption 0x{encryption:02X}) cannot be decoded"
            ),
            FrameError::BodyLength {
                command,
                expected,
                actual,
            } => write!(
                f,
                "bad data-unit length for {}: declared data-unit length {actual}, expected {expected}",
                command.name()
            ),
            FrameError::LayoutMismatch { command, body_len } => write!(
                f,
                "declared data-unit length {body_len} not consumed exactly by any real-time layout \
                 (serial-number placements, with/without collection times, signature parts) ({})",
                command.name()
            ),
            FrameError::OtherProtocol { protocol, why } => {
                write!(f, "{protocol} data, not HJ 1239: {why}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

// ---------------------------------------------------------------------------------------------
// Scanner
// ---------------------------------------------------------------------------------------------

/// What the scanner found; every pushed byte ends up in exactly one event, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEvent {
    /// A complete frame (`##`, length ≤ 65531, valid BCC); `offset` = stream offset of its
    /// first `#`. Not yet decoded: pass `bytes` to [`decode_frame`].
    Frame {
        /// Stream byte offset of the first `#`.
        offset: u64,
        /// The whole frame.
        bytes: Vec<u8>,
    },
    /// A run of bytes that is not a frame: garbage without a start, a candidate with bad BCC,
    /// an over-long length, or a tail truncated at end of input. `reason` is the failure of the
    /// candidate the run starts with ([`FrameError::NoFrameStart`] when it starts with noise).
    Rejected {
        /// Stream byte offset of the run.
        offset: u64,
        /// The bytes of the run.
        bytes: Vec<u8>,
        /// Why.
        reason: FrameError,
    },
}

/// Incremental, sans-IO framer (obd-remote-monitoring.md §1.2): push arbitrary chunks, pull
/// [`ScanEvent`]s.
///
/// At each `##` it reads the declared data-unit length at offset 22 (same place in the HJ 1239
/// and GB/T 32960 header styles), waits for `25 + len` bytes and checks the BCC. A failed
/// candidate (length > 65531, `###`, bad BCC, or incomplete at end of input) is skipped by one
/// byte and the search resumes at the next `##`, so a valid frame that starts inside a failed
/// candidate is still found; bytes inside an accepted frame are never searched. The failed
/// candidate's run ends at its declared end or at the next valid frame, whichever comes first.
///
/// Work is O(1) per candidate (BCC via a prefix-XOR array) plus a linear search, so any input
/// costs O(n). Memory stays bounded by about two maximal frames plus [`MAX_GARBAGE_RUN`] plus
/// the last pushed chunk.
#[derive(Debug, Default)]
pub struct FrameScanner {
    buf: Vec<u8>,
    /// `px[i]` = XOR of `buf[..i]` (relative to some constant), `px.len() == buf.len() + 1`.
    px: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Start of the pending (not yet emitted) run.
    start: usize,
    /// Next position to search for `##`.
    pos: usize,
    /// Reason and end of a failed-candidate run starting at `start`.
    run: Option<(FrameError, usize)>,
    eof: bool,
    /// Work counter (loop iterations + bytes searched), for the bounded-work tests.
    work: u64,
}

impl FrameScanner {
    /// Empty scanner at stream offset 0.
    pub fn new() -> Self {
        FrameScanner {
            px: vec![0],
            ..Default::default()
        }
    }

    /// Append bytes. Calling `push` after [`FrameScanner::finish`] continues the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.eof = false;
        if self.start > 0 && (self.start >= 4096 || self.start * 2 >= self.buf.len()) {
            self.compact();
        }
        if self.px.is_empty() {
            self.px.push(0);
        }
        let mut acc = self.px.last().copied().unwrap_or(0);
        self.buf.extend_from_slice(chunk);
        self.px.reserve(chunk.len());
        for &b in chunk {
            acc ^= b;
            self.px.push(acc);
        }
    }

    /// Stream offset of the next byte not yet reported in an event.
    pub fn consumed_offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Work done so far (search steps + loop iterations); O(bytes pushed + events), for
    /// monitoring and the bounded-work tests.
    pub fn work_units(&self) -> u64 {
        self.work
    }

    /// Bytes held in the internal buffer (for monitoring the memory bound).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    fn compact(&mut self) {
        let k = self.start;
        self.buf.drain(..k);
        self.px.drain(..k);
        self.base += k as u64;
        self.start = 0;
        self.pos = self.pos.saturating_sub(k);
        if let Some((_, hint)) = &mut self.run {
            *hint = hint.saturating_sub(k);
        }
    }

    fn slice(&self, a: usize, b: usize) -> Vec<u8> {
        self.buf.get(a..b).map(<[u8]>::to_vec).unwrap_or_default()
    }

    fn emit_rejected(&mut self, end: usize, reason: FrameError) -> ScanEvent {
        let end = end.min(self.buf.len()).max(self.start);
        let bytes = self.slice(self.start, end);
        // A run without any frame start may be another protocol: name it.
        let reason = match reason {
            FrameError::NoFrameStart { .. } => other_protocol(&bytes).unwrap_or(reason),
            r => r,
        };
        let ev = ScanEvent::Rejected {
            offset: self.base + self.start as u64,
            bytes,
            reason,
        };
        self.start = end;
        if self.pos < end {
            self.pos = end;
        }
        ev
    }

    fn find_start(&mut self) -> Option<usize> {
        let from = self.pos;
        let hay = self.buf.get(from..)?;
        let found = hay.windows(2).position(|w| w == b"##");
        self.work += match found {
            Some(i) => i as u64 + 1,
            None => hay.len() as u64,
        };
        found.map(|i| from + i)
    }

    /// Next event; `None` when more bytes are needed (or, after [`FrameScanner::finish`], when
    /// everything has been reported).
    pub fn next_event(&mut self) -> Option<ScanEvent> {
        loop {
            self.work += 1;
            // A failed-candidate run ends at its declared end once the search has passed it.
            if let Some((reason, hint)) = &mut self.run
                && self.pos >= *hint
            {
                // Merge a run of '#' ("###…##") into one bad-start run, up to the garbage cap.
                if matches!(reason, FrameError::BadStart { .. })
                    && *hint - self.start < MAX_GARBAGE_RUN
                {
                    match self.buf.get(*hint..*hint + 3) {
                        Some(b"###") => {
                            *hint += 1;
                            self.pos = *hint;
                            continue;
                        }
                        None if !self.eof
                            && self
                                .buf
                                .get(*hint..)
                                .is_some_and(|t| t.iter().all(|&c| c == b'#')) =>
                        {
                            return None;
                        }
                        _ => {}
                    }
                }
                let (reason, hint) = self.run.take()?;
                return Some(self.emit_rejected(hint, reason));
            }
            let Some(p) = self.find_start() else {
                let len = self.buf.len();
                let keep_hash = !self.eof && self.buf.last() == Some(&b'#');
                let np = if keep_hash { len - 1 } else { len };
                self.pos = self.pos.max(np);
                if let Some((_, hint)) = &self.run {
                    if self.pos >= *hint {
                        continue;
                    }
                    return None;
                }
                if self.start < self.pos && (self.eof || self.pos - self.start >= MAX_GARBAGE_RUN) {
                    let len = self.pos - self.start;
                    return Some(self.emit_rejected(self.pos, FrameError::NoFrameStart { len }));
                }
                return None;
            };
            match &self.run {
                None if self.start < p => {
                    self.pos = p;
                    let len = p - self.start;
                    return Some(self.emit_rejected(p, FrameError::NoFrameStart { len }));
                }
                Some((_, hint)) if p >= *hint => {
                    self.pos = *hint;
                    continue;
                }
                _ => {}
            }
            // Nothing in pos..p can start a frame: never search those bytes again.
            self.pos = p;
            // Evaluate the candidate at p.
            let len = self.buf.len();
            let avail = len - p;
            let fail = match self.check_candidate(p, avail) {
                Candidate::NeedMore => return None,
                Candidate::Failed(reason, hint) => (reason, hint),
                Candidate::Valid(total) => {
                    if self.start < p {
                        let reason = match self.run.take() {
                            Some((r, _)) => r,
                            None => FrameError::NoFrameStart {
                                len: p - self.start,
                            },
                        };
                        self.pos = p;
                        return Some(self.emit_rejected(p, reason));
                    }
                    self.run = None;
                    let ev = ScanEvent::Frame {
                        offset: self.base + p as u64,
                        bytes: self.slice(p, p + total),
                    };
                    self.start = p + total;
                    self.pos = p + total;
                    return Some(ev);
                }
            };
            if self.run.is_none() {
                self.run = Some(fail);
            }
            self.pos = p + 1;
        }
    }

    fn check_candidate(&self, p: usize, avail: usize) -> Candidate {
        if self.buf.get(p + 2) == Some(&b'#') {
            return Candidate::Failed(
                FrameError::BadStart {
                    found: b"###".to_vec(),
                },
                p + 1,
            );
        }
        let len_bytes = (self.buf.get(p + 22), self.buf.get(p + 23));
        let (Some(&hi), Some(&lo)) = len_bytes else {
            if self.eof {
                return Candidate::Failed(
                    FrameError::TruncatedHeader { present: avail },
                    self.buf.len(),
                );
            }
            return Candidate::NeedMore;
        };
        let declared = usize::from(u16::from_be_bytes([hi, lo]));
        if declared > MAX_DATA_UNIT_LEN {
            return Candidate::Failed(FrameError::LengthTooLarge { declared }, p + HEADER_LEN);
        }
        let total = declared + FRAME_OVERHEAD;
        if avail < total {
            if self.eof {
                return Candidate::Failed(
                    FrameError::Truncated {
                        declared,
                        present: avail - HEADER_LEN,
                    },
                    self.buf.len(),
                );
            }
            return Candidate::NeedMore;
        }
        let (Some(&a), Some(&b), Some(&found)) = (
            self.px.get(p + 2),
            self.px.get(p + total - 1),
            self.buf.get(p + total - 1),
        ) else {
            return Candidate::NeedMore;
        };
        let computed = a ^ b;
        if computed != found {
            return Candidate::Failed(FrameError::BadBcc { computed, found }, p + total);
        }
        Candidate::Valid(total)
    }

    /// Marks end of input and returns the next remaining event: call it repeatedly until it
    /// returns `None`. Incomplete candidates become [`FrameError::Truncated`] /
    /// [`FrameError::TruncatedHeader`] runs (after checking for frames inside them), trailing
    /// noise a [`FrameError::NoFrameStart`] run.
    pub fn finish(&mut self) -> Option<ScanEvent> {
        self.eof = true;
        self.next_event()
    }
}

enum Candidate {
    NeedMore,
    Failed(FrameError, usize),
    Valid(usize),
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Bounds-checked big-endian reader; every accessor returns `None` past the end.
struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Rd { b, i: 0 }
    }
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.i)
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or(&[])
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.i.checked_add(n)?;
        let s = self.b.get(self.i..end)?;
        self.i = end;
        Some(s)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.i)?;
        self.i += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        self.arr::<2>().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.arr::<4>().map(u32::from_be_bytes)
    }
    fn time(&mut self) -> Option<FrameTime> {
        self.arr::<6>().map(FrameTime::from_bytes)
    }
}

/// 1-byte value: `None` for raw > 0xFA (§1.8).
fn v1(raw: u8, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFA).then(|| f64::from(raw) * scale + offset)
}
/// 2-byte value: `None` for raw > 0xFAFF (§1.8).
fn v2(raw: u16, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFAFF).then(|| f64::from(raw) * scale + offset)
}
/// 4-byte value: `None` for raw > 0xFAFFFFFF (§1.8).
fn v4(raw: u32, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFAFF_FFFF).then(|| f64::from(raw) * scale + offset)
}

const SPEED_SCALE: f64 = 1.0 / 256.0;
const LAMBDA_SCALE: f64 = 0.000_030_5;
const TEMP_SCALE: f64 = 0.031_25;
const TEMP_OFFSET: f64 = -273.0;
const NOX_SCALE: f64 = 0.05;
const NOX_OFFSET: f64 = -200.0;
const DEG_SCALE: f64 = 1e-6;
/// Highest plausible rear-O2 raw value: 1.275 V / 0.01 (§1.8).
const REAR_O2_MAX_RAW: u8 = 127;

/// Text field: trailing NUL/space/0xFF removed; bytes outside printable ASCII become U+FFFD.
fn ascii_field(b: &[u8]) -> String {
    let end = b
        .iter()
        .rposition(|&c| !matches!(c, 0x00 | b' ' | 0xFF))
        .map_or(0, |i| i + 1);
    b.get(..end)
        .unwrap_or(&[])
        .iter()
        .map(|&c| {
            if (0x20..=0x7E).contains(&c) {
                char::from(c)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

fn hex_upper(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for &c in b {
        s.push(hex_digit(c >> 4));
        s.push(hex_digit(c));
    }
    s
}

/// Uppercase hex digit of the low nibble.
fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0F), 16).map_or('?', |c| c.to_ascii_uppercase())
}

fn is_vin_like(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_alphanumeric)
}

/// Decode one 4-byte DTC by OBD protocol byte (§1.6): 0/1 (ISO 15765 / ISO 27145) as a 3-byte
/// UDS DTC + status byte, 2 (J1939) as SPN/FMI/CM/OC, otherwise raw hex.
fn decode_dtc(protocol: Option<u8>, b: [u8; 4]) -> Dtc {
    let raw = u32::from_be_bytes(b);
    let [b0, b1, b2, b3] = b;
    match protocol {
        Some(0) | Some(1) => {
            let mut code = String::with_capacity(5);
            code.push(match b0 >> 6 {
                0 => 'P',
                1 => 'C',
                2 => 'B',
                _ => 'U',
            });
            code.push(char::from(b'0' + ((b0 >> 4) & 0x03)));
            code.push(hex_digit(b0));
            code.push(hex_digit(b1 >> 4));
            code.push(hex_digit(b1));
            Dtc {
                raw,
                code,
                failure_type: Some(b2),
                status: Some(b3),
                occurrence_count: None,
                conversion_method: None,
            }
        }
        Some(2) => {
            let spn = u32::from(b0) | (u32::from(b1) << 8) | (u32::from(b2 >> 5) << 16);
            let fmi = b2 & 0x1F;
            Dtc {
                raw,
                code: format!("SPN {spn} FMI {fmi}"),
                failure_type: None,
                status: None,
                occurrence_count: Some(b3 & 0x7F),
                conversion_method: Some(b3 >> 7),
            }
        }
        _ => Dtc {
            raw,
            code: format!("0x{raw:08X}"),
            failure_type: None,
            status: None,
            occurrence_count: None,
            conversion_method: None,
        },
    }
}

/// Fixed body length of a real-time info type, or the OBD length read from its DTC count.
/// `None` when the type is unknown or the body is too short to tell.
fn block_body_len(info_type: u8, rest: &[u8], lenient: bool) -> Option<usize> {
    match info_type {
        0x01 => rest.get(95).map(|&n| 96 + 4 * usize::from(n)),
        0x02 => Some(37),
        0x03 => Some(30),
        0x04 => Some(8),
        0x05 => Some(32),
        0x80 => Some(17),
        0x81..=0xFE if lenient => Some(rest.len()),
        _ => None,
    }
}

/// SM2 signature `R-len R S-len S` (§1.4) occupying exactly `b`; lengths 16–33 only, which
/// cannot collide with an info-type byte.
fn exact_signature_len(b: &[u8]) -> Option<usize> {
    let n = signature_part_len(b)?;
    (n == b.len()).then_some(n)
}

/// Length of an SM2 signature part `R-len R S-len S` (§1.4) at the start of `b` (more bytes may
/// follow). R/S lengths 16–33 only: those bytes are no info type (0x01–0x05, 0x80–0xFE), so a
/// signature part after an info block cannot be mistaken for the next block.
fn signature_part_len(b: &[u8]) -> Option<usize> {
    let mut r = Rd::new(b);
    let rl = r.u8()?;
    if !(16..=33).contains(&rl) {
        return None;
    }
    r.take(usize::from(rl))?;
    let sl = r.u8()?;
    if !(16..=33).contains(&sl) {
        return None;
    }
    r.take(usize::from(sl))?;
    Some(b.len() - r.remaining())
}

#[derive(Clone, Copy)]
struct Layout {
    serial: SerialLayout,
    times: bool,
}

/// Candidate layouts in preference order: the HJ 1239.3 layout first, then the variants seen in
/// the wild (§1.5; `shared/data/README.md` "frames/"). The last two (per-block serial *and*
/// per-block time, serial before time) are an assumption: no test vector shows them.
const LAYOUTS: [Layout; 6] = [
    Layout {
        serial: SerialLayout::OncePerFrame,
        times: true,
    },
    Layout {
        serial: SerialLayout::OncePerFrame,
        times: false,
    },
    Layout {
        serial: SerialLayout::AfterEachInfoType,
        times: false,
    },
    Layout {
        serial: SerialLayout::FirstUnitOnly,
        times: false,
    },
    Layout {
        serial: SerialLayout::AfterEachInfoType,
        times: true,
    },
    Layout {
        serial: SerialLayout::FirstUnitOnly,
        times: true,
    },
];

struct Walk {
    times_valid: bool,
}

/// Walk a real-time data unit (after the send time) under `layout`; when `out` is given, also
/// decode the blocks. Returns `None` unless the walk ends exactly at the end of `rest`.
fn walk_realtime(
    rest: &[u8],
    layout: Layout,
    lenient: bool,
    mut out: Option<&mut RealtimeOut>,
) -> Option<Walk> {
    let mut r = Rd::new(rest);
    let mut times_valid = true;
    if layout.serial == SerialLayout::OncePerFrame {
        let s = r.u16()?;
        if let Some(o) = out.as_deref_mut() {
            o.seq = Some(s);
        }
    }
    let mut first = true;
    while r.remaining() > 0 {
        if let Some(n) = exact_signature_len(r.rest()) {
            if let Some(o) = out.as_deref_mut() {
                o.signature_len += n;
                o.signature_parts = o.signature_parts.saturating_add(1);
            }
            break;
        }
        // Terminals that sign every info block put a signature part after each block, not only
        // at the end of the data unit (field case hj1239-signature-after-each-block).
        if !first && let Some(n) = signature_part_len(r.rest()) {
            r.take(n)?;
            if let Some(o) = out.as_deref_mut() {
                o.signature_len += n;
                o.signature_parts = o.signature_parts.saturating_add(1);
            }
            continue;
        }
        let t = r.u8()?;
        let has_serial = match layout.serial {
            SerialLayout::OncePerFrame => false,
            SerialLayout::AfterEachInfoType => true,
            SerialLayout::FirstUnitOnly => first,
        };
        if has_serial {
            let s = r.u16()?;
            if let Some(o) = out.as_deref_mut() {
                o.seq.get_or_insert(s);
            }
        }
        let ct = if layout.times {
            let t = r.time()?;
            times_valid &= t.is_valid();
            Some(t)
        } else {
            None
        };
        let n = block_body_len(t, r.rest(), lenient)?;
        let body = r.take(n)?;
        if let Some(o) = out.as_deref_mut() {
            o.blocks.push(decode_block(t, ct, body)?);
        }
        first = false;
    }
    Some(Walk { times_valid })
}

#[derive(Default)]
struct RealtimeOut {
    seq: Option<u16>,
    blocks: Vec<InfoBlock>,
    signature_len: usize,
    signature_parts: u8,
}

fn decode_block(t: u8, ct: Option<FrameTime>, b: &[u8]) -> Option<InfoBlock> {
    let mut r = Rd::new(b);
    Some(match t {
        0x01 => InfoBlock::Obd(decode_obd(ct, &mut r)?),
        0x02 | 0x03 | 0x05 => InfoBlock::Stream(decode_stream(t, ct, &mut r)?),
        0x04 => InfoBlock::Hybrid(HybridSample {
            collected_at: ct,
            motor_rpm: v2(r.u16()?, 1.0, 0.0),
            motor_load_pct: v1(r.u8()?, 1.0, 0.0),
            battery_v: v2(r.u16()?, 0.1, 0.0),
            battery_a: v2(r.u16()?, 0.1, -1000.0),
            soc_pct: v1(r.u8()?, 1.0, 0.0),
        }),
        0x80 => InfoBlock::Supplementary(SupplementarySample {
            collected_at: ct,
            torque_mode: r.u8().map(|m| (m <= 0xFA).then_some(m))?,
            accelerator_pct: v1(r.u8()?, 0.4, 0.0),
            cumulative_fuel_l: v4(r.u32()?, 0.5, 0.0),
            urea_tank_temp_c: v1(r.u8()?, 1.0, -40.0),
            urea_dosing_ml_h: v4(r.u32()?, 0.01, 0.0),
            cumulative_urea_g: v4(r.u32()?, 1.0, 0.0),
            dpf_exhaust_temp_c: v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET),
        }),
        _ => InfoBlock::Unknown {
            info_type: t,
            collected_at: ct,
            data: b.to_vec(),
        },
    })
}

fn decode_obd(ct: Option<FrameTime>, r: &mut Rd<'_>) -> Option<ObdReport> {
    let protocol = r.u8().map(|p| (p < 0xFE).then_some(p))?;
    let mil_on = match r.u8()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let bitmask = |v: u16| (v != 0xFFFF).then_some(v);
    let diag_support = bitmask(r.u16()?);
    let diag_readiness = bitmask(r.u16()?);
    let vin = ascii_field(r.take(17)?);
    let calibration_id = ascii_field(r.take(18)?);
    let cvn = hex_upper(r.take(18)?);
    let mut iupr = Vec::with_capacity(18);
    for _ in 0..18 {
        let w = r.u16()?;
        iupr.push((w <= 0xFAFF).then_some(w));
    }
    let n = r.u8()?;
    let mut dtc_details = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        dtc_details.push(decode_dtc(protocol, r.arr::<4>()?));
    }
    let dtcs = dtc_details.iter().map(|d| d.code.clone()).collect();
    Some(ObdReport {
        collected_at: ct,
        protocol,
        mil_on,
        diag_support,
        diag_readiness,
        vin,
        calibration_id,
        cvn,
        iupr,
        dtcs,
        dtc_details,
    })
}

/// Position status byte and coordinates (§1.7 "Position status"): `(valid, lon, lat)`.
///
/// Coordinates are given only for a usable fix: status bit 0 clear (valid) and a known status
/// byte (≤ 0xFA, §1.8). An invalid or unknown fix gives `None` for both, never the (0, 0) or
/// stale numbers the terminal put in the fields; so does (0, 0) itself, which is an
/// uninitialised receiver, not a place (field case obd-invalid-position-zero).
fn decode_position(status: u8, lon: u32, lat: u32) -> (Option<bool>, Option<f64>, Option<f64>) {
    let known = status <= 0xFA;
    let valid = known.then_some(status & 0x01 == 0);
    if valid != Some(true) || (lon == 0 && lat == 0) {
        return (valid, None, None);
    }
    let sign = |neg: bool| if neg { -1.0 } else { 1.0 };
    (
        valid,
        v4(lon, DEG_SCALE, 0.0).map(|v| v * sign(status & 0x04 != 0)),
        v4(lat, DEG_SCALE, 0.0).map(|v| v * sign(status & 0x02 != 0)),
    )
}

fn decode_stream(t: u8, ct: Option<FrameTime>, r: &mut Rd<'_>) -> Option<StreamSample> {
    let mut s = StreamSample {
        info_type: t,
        collected_at: ct,
        speed_kmh: v2(r.u16()?, SPEED_SCALE, 0.0),
        barometric_kpa: v1(r.u8()?, 0.5, 0.0),
        net_torque_pct: v1(r.u8()?, 1.0, -125.0),
        friction_torque_pct: v1(r.u8()?, 1.0, -125.0),
        engine_rpm: v2(r.u16()?, 0.125, 0.0),
        fuel_flow_lph: v2(r.u16()?, 0.05, 0.0),
        ..Default::default()
    };
    if t == 0x02 {
        s.scr_up_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        s.scr_down_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        s.reagent_pct = v1(r.u8()?, 0.4, 0.0);
        s.intake_air_kgph = v2(r.u16()?, 0.05, 0.0);
        s.scr_in_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
        s.scr_out_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
        s.dpf_dp_kpa = v2(r.u16()?, 0.1, 0.0);
        s.coolant_c = v1(r.u8()?, 1.0, -40.0);
        s.tank_pct = v1(r.u8()?, 0.4, 0.0);
    } else {
        s.upstream_lambda = v2(r.u16()?, LAMBDA_SCALE, 0.0);
        let rear = r.u8()?;
        s.rear_o2_v = (rear <= REAR_O2_MAX_RAW).then(|| f64::from(rear) * 0.01);
        if t == 0x05 {
            s.twc_down_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        }
        s.intake_air_kgph = v2(r.u16()?, 0.05, 0.0);
        s.coolant_c = v1(r.u8()?, 1.0, -40.0);
        s.twc_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
    }
    let (valid, lon, lat) = decode_position(r.u8()?, r.u32()?, r.u32()?);
    s.position_valid = valid;
    s.lon_deg = lon;
    s.lat_deg = lat;
    s.odometer_km = v4(r.u32()?, 0.1, 0.0);
    Some(s)
}

fn decode_realtime(command: Command, d: &[u8], lenient: bool) -> Result<Body, FrameError> {
    let mismatch = FrameError::LayoutMismatch {
        command,
        body_len: d.len(),
    };
    let mut r = Rd::new(d);
    let sent_at = r.time().ok_or_else(|| mismatch.clone())?;
    let rest = r.rest();
    // Dry-run every layout (no allocation), then decode the preferred one: a layout whose
    // collection times are all valid beats one with invalid times; ties go by LAYOUTS order.
    let mut matched: u8 = 0;
    let mut best: Option<(Layout, bool)> = None;
    for layout in LAYOUTS {
        if let Some(w) = walk_realtime(rest, layout, lenient, None) {
            matched += 1;
            match best {
                Some((_, true)) => {}
                Some((_, false)) if !w.times_valid => {}
                _ => best = Some((layout, w.times_valid)),
            }
        }
    }
    let Some((layout, _)) = best else {
        return Err(mismatch);
    };
    let mut out = RealtimeOut::default();
    walk_realtime(rest, layout, lenient, Some(&mut out)).ok_or(mismatch)?;
    Ok(Body::Realtime {
        sent_at,
        seq: out.seq,
        blocks: out.blocks,
        serial_layout: layout.serial,
        block_times: layout.times,
        signature_len: out.signature_len,
        signature_parts: out.signature_parts,
        layouts_matched: matched,
    })
}

fn decode_body(command: Command, d: &[u8]) -> Result<Body, FrameError> {
    let bad_len = |expected: &'static str| FrameError::BodyLength {
        command,
        expected,
        actual: d.len(),
    };
    let mut r = Rd::new(d);
    let body = match command {
        Command::Login => {
            if d.len() != 28 {
                return Err(bad_len("28"));
            }
            Body::Login {
                time: r.time().ok_or_else(|| bad_len("28"))?,
                seq: r.u16().ok_or_else(|| bad_len("28"))?,
                iccid: ascii_field(r.rest()),
            }
        }
        Command::Realtime | Command::Resend => return decode_realtime(command, d, false),
        Command::Logout => {
            let (8, Some(time), Some(seq)) = (d.len(), r.time(), r.u16()) else {
                return Err(bad_len("8"));
            };
            Body::Logout { time, seq }
        }
        Command::TimeCalibration => match d.len() {
            0 => Body::TimeCalibration { time: None },
            6 => Body::TimeCalibration { time: r.time() },
            _ => return Err(bad_len("0 or 6")),
        },
        Command::RemovalAlarm => {
            let parsed = (|| {
                let time = r.time()?;
                let seq = r.u16()?;
                let (position_valid, lon_deg, lat_deg) =
                    decode_position(r.u8()?, r.u32()?, r.u32()?);
                (r.remaining() == 0).then_some(Body::RemovalAlarm {
                    time,
                    seq,
                    position_valid,
                    lon_deg,
                    lat_deg,
                })
            })();
            parsed.ok_or_else(|| bad_len("17"))?
        }
        Command::Activation => {
            let parsed = (|| {
                let time = r.time()?;
                let chip_id = hex_upper(r.take(16)?);
                let public_key = r.take(64)?.to_vec();
                let vin = ascii_field(r.take(17)?);
                let signature_len = exact_signature_len(r.rest())?;
                Some(Body::Activation {
                    time,
                    chip_id,
                    public_key,
                    vin,
                    signature_len,
                })
            })();
            parsed.ok_or_else(|| bad_len("103 + signature (R-len R S-len S)"))?
        }
        Command::ActivationReply => match d {
            [status, info] => Body::ActivationReply {
                status: *status,
                info: *info,
            },
            _ => return Err(bad_len("2")),
        },
    };
    Ok(body)
}

/// GB/T 32960.3 EV info-block names, for the rejection message.
fn gb32960_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "whole-vehicle",
        0x02 => "drive motor",
        0x03 => "fuel cell",
        0x04 => "engine",
        0x05 => "position",
        0x06 => "extreme values",
        0x07 => "alarm",
        0x08 => "cell voltages",
        0x09 => "probe temperatures",
        _ => "custom",
    }
}

/// Walk a GB/T 32960.3-2016 real-time data unit (time + EV info blocks); the block types when
/// it ends exactly.
fn gb32960_realtime_types(d: &[u8]) -> Option<Vec<u8>> {
    let mut r = Rd::new(d);
    if !r.time()?.is_valid() {
        return None;
    }
    let mut types = Vec::new();
    while r.remaining() > 0 {
        let t = r.u8()?;
        match t {
            0x01 => {
                r.take(20)?;
            }
            0x02 => {
                let n = r.u8()?;
                r.take(12 * usize::from(n))?;
            }
            0x03 => {
                r.take(6)?;
                let probes = r.u16()?;
                r.take(usize::from(probes) + 10)?;
            }
            0x04 => {
                r.take(5)?;
            }
            0x05 => {
                r.take(9)?;
            }
            0x06 => {
                r.take(14)?;
            }
            0x07 => {
                r.take(5)?;
                for _ in 0..4 {
                    let n = r.u8()?;
                    r.take(4 * usize::from(n))?;
                }
            }
            0x08 => {
                let n = r.u8()?;
                for _ in 0..n {
                    r.take(9)?;
                    let m = r.u8()?;
                    r.take(2 * usize::from(m))?;
                }
            }
            0x09 => {
                let n = r.u8()?;
                for _ in 0..n {
                    r.take(1)?;
                    let m = r.u16()?;
                    r.take(usize::from(m))?;
                }
            }
            0x80..=0xFE => {
                let n = r.u16()?;
                r.take(usize::from(n))?;
            }
            _ => return None,
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    (!types.is_empty()).then_some(types)
}

/// Recognise a GB/T 32960 frame (response flag after the command, VIN at offset 4, and a data
/// unit of the 32960 shape for its command); the explanation when it is one.
fn gb32960_why(cmd: u8, flag: u8, d: &[u8]) -> Option<String> {
    let head = format!(
        "response flag 0x{flag:02X} after the command byte and VIN at offset 4 (HJ 1239 has no response flag)"
    );
    let body = match cmd {
        0x01 => {
            let n = usize::from(*d.get(28)?);
            let m = usize::from(*d.get(29)?);
            (d.len() == 30 + n * m).then(|| {
                format!(
                    "; login data unit of {} bytes = time 6 + serial 2 + ICCID 20 + subsystem count {n} + code length {m} + codes (HJ 1239 login is 28 bytes)",
                    d.len()
                )
            })?
        }
        0x02 | 0x03 => {
            let types = gb32960_realtime_types(d)?;
            let list: Vec<String> = types
                .iter()
                .map(|t| format!("0x{t:02X} {}", gb32960_type_name(*t)))
                .collect();
            format!(
                "; the {}-byte data unit parses exactly as GB/T 32960.3 EV info blocks ({}) and no HJ 1239 layout consumes it",
                d.len(),
                list.join(", ")
            )
        }
        0x05 if d.len() == 41 => "; platform login data unit (41 bytes)".to_string(),
        0x06 if d.len() == 8 => "; platform logout data unit (8 bytes)".to_string(),
        0x07 if d.is_empty() => "; heartbeat (command 0x07, empty data unit)".to_string(),
        0x80..=0x82 => format!("; platform command 0x{cmd:02X}"),
        _ => return None,
    };
    Some(head + &body)
}

/// JT/T 808 message names for the rejection message (JT/T 808-2013/2019 message ids).
fn jtt808_msg_name(id: u16) -> &'static str {
    match id {
        0x0001 => "terminal general reply",
        0x0002 => "heartbeat",
        0x0100 => "terminal registration",
        0x0102 => "terminal authentication",
        0x0200 => "location report",
        0x0704 => "batch location upload",
        0x0900 => "transparent data",
        _ => "message",
    }
}

/// One JT/T 808 message between two 0x7E flags (flags excluded): unescape (0x7D 0x02 → 0x7E,
/// 0x7D 0x01 → 0x7D), then check the XOR check code and the body length of the message
/// properties (2013 header 12 bytes, 2019 header 17 bytes, +4 when subpackaged). The message id
/// when it is one.
fn jtt808_message(esc: &[u8]) -> Option<u16> {
    let mut m = Vec::with_capacity(esc.len());
    let mut it = esc.iter();
    while let Some(&b) = it.next() {
        if b == 0x7D {
            match it.next()? {
                0x01 => m.push(0x7D),
                0x02 => m.push(0x7E),
                _ => return None,
            }
        } else {
            m.push(b);
        }
    }
    let (&check, body) = m.split_last()?;
    if body.iter().fold(0u8, |a, &b| a ^ b) != check {
        return None;
    }
    let id = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let props = u16::from_be_bytes([*body.get(2)?, *body.get(3)?]);
    let body_len = usize::from(props & 0x03FF);
    let header =
        if props & 0x4000 != 0 { 17 } else { 12 } + if props & 0x2000 != 0 { 4 } else { 0 };
    (body.len() == header + body_len).then_some(id)
}

/// Recognise bytes of another protocol than HJ 1239 (so far JT/T 808, 0x7E-delimited with a
/// XOR check code); the rejection when they are.
fn other_protocol(b: &[u8]) -> Option<FrameError> {
    if b.first() != Some(&0x7E) {
        return None;
    }
    let mut ids: Vec<u16> = Vec::new();
    let mut n = 0usize;
    let mut rest = b.get(1..)?;
    while let Some(end) = rest.iter().position(|&c| c == 0x7E) {
        let msg = rest.get(..end)?;
        if !msg.is_empty() {
            let id = jtt808_message(msg)?;
            n += 1;
            if !ids.contains(&id) && ids.len() < 4 {
                ids.push(id);
            }
        }
        rest = rest.get(end + 1..)?;
        if rest.first() == Some(&0x7E) {
            rest = rest.get(1..)?;
        }
    }
    if n == 0 {
        return None;
    }
    let list: Vec<String> = ids
        .iter()
        .map(|id| format!("0x{id:04X} {}", jtt808_msg_name(*id)))
        .collect();
    Some(FrameError::OtherProtocol {
        protocol: "JT/T 808",
        why: format!(
            "{n} message(s) delimited by 0x7E with valid XOR check codes ({}); HJ 1239 frames start with \"##\" (0x23 0x23)",
            list.join(", ")
        ),
    })
}

/// Decode one complete frame (as found by [`FrameScanner`], or given whole, e.g. one Kafka
/// message), obd-remote-monitoring.md §1.2–§1.8.
///
/// Checks `##`, the declared length (≤ 65531 and equal to what is present), the BCC, the
/// header style ([`HeaderStyle`]), the command and the encryption byte (only 0x01 "none" data
/// units are decoded). Real-time/resend data units are tried under every [`SerialLayout`], with
/// and without per-block collection times, with SM2 signature parts after any block; the layout
/// that consumes the body exactly wins. When several do, one whose collection times are all
/// valid wins, then the order: HJ 1239.3 (serial once + block times), serial once,
/// after each info type, first unit only. Frames with a GB/T 32960 header whose body does not
/// decode as HJ 1239 but has the 32960 shape are rejected as [`FrameError::Gb32960`]. Only if
/// neither works, a user-defined info type (0x81–0xFE) is allowed to take the rest of the body
/// as [`InfoBlock::Unknown`].
///
/// # Errors
/// A [`FrameError`] naming the first check that failed; see [`FrameError::reason_code`].
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() < FRAME_OVERHEAD {
        return Err(FrameError::TooShort { len: bytes.len() });
    }
    let mut r = Rd::new(bytes);
    let start = r
        .arr::<2>()
        .ok_or(FrameError::TooShort { len: bytes.len() })?;
    let cmd = r.u8().ok_or(FrameError::TooShort { len: bytes.len() })?;
    if &start != b"##" || cmd == b'#' {
        if let Some(e) = other_protocol(bytes) {
            return Err(e);
        }
        return Err(FrameError::BadStart {
            found: bytes.get(..3).unwrap_or(bytes).to_vec(),
        });
    }
    let hdr: [u8; 21] = r.arr().ok_or(FrameError::TooShort { len: bytes.len() })?;
    let [h3, .., enc, len_hi, len_lo] = hdr;
    let declared = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if declared > MAX_DATA_UNIT_LEN {
        return Err(FrameError::LengthTooLarge { declared });
    }
    let total = declared + FRAME_OVERHEAD;
    if bytes.len() < total {
        return Err(FrameError::Truncated {
            declared,
            present: bytes.len() - HEADER_LEN,
        });
    }
    if bytes.len() > total {
        return Err(FrameError::TrailingBytes {
            declared,
            extra: bytes.len() - total,
        });
    }
    let data = bytes.get(HEADER_LEN..total - 1).unwrap_or(&[]);
    let found = bytes.get(total - 1).copied().unwrap_or(0);
    let computed = bytes
        .get(2..total - 1)
        .unwrap_or(&[])
        .iter()
        .fold(0u8, |a, &b| a ^ b);
    if computed != found {
        return Err(FrameError::BadBcc { computed, found });
    }
    // The VIN is at 3..20 (HJ 1239 header) or 4..21 (GB/T 32960-style header).
    let gb_style =
        matches!(h3, 0x01 | 0x02 | 0x03 | 0xFE) && bytes.get(4..21).is_some_and(is_vin_like);
    let (header, vin, software_version) = if gb_style {
        let vin = ascii_field(bytes.get(4..21).unwrap_or(&[]));
        (HeaderStyle::Gb32960Style { response_flag: h3 }, vin, None)
    } else {
        let vin = ascii_field(bytes.get(3..20).unwrap_or(&[]));
        (HeaderStyle::Hj1239, vin, bytes.get(20).copied())
    };
    let gb_reject = |why: Option<String>| match (gb_style, why) {
        (true, Some(why)) => Some(FrameError::Gb32960 { why }),
        _ => None,
    };
    let Some(command) = Command::from_u8(cmd) else {
        return Err(gb_reject(gb32960_why(cmd, h3, data))
            .unwrap_or(FrameError::UnknownCommand { command: cmd }));
    };
    if enc != 0x01 && !data.is_empty() {
        return Err(FrameError::Encrypted { encryption: enc });
    }
    let body = match decode_body(command, data) {
        Ok(b) => b,
        Err(e) => {
            if let Some(g) = gb_reject(gb32960_why(cmd, h3, data)) {
                return Err(g);
            }
            match (command, &e) {
                (Command::Realtime | Command::Resend, FrameError::LayoutMismatch { .. }) => {
                    decode_realtime(command, data, true)?
                }
                _ => return Err(e),
            }
        }
    };
    Ok(Frame {
        command,
        vin,
        software_version,
        encryption: enc,
        header,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Wrap a data unit in an HJ 1239 header (`## cmd VIN17 version enc len`) and BCC
/// (obd-remote-monitoring.md §1.2). The VIN is truncated/NUL-padded to 17 bytes. `None` when
/// the data unit is longer than 65531 bytes.
pub fn encode_frame(
    command: u8,
    vin: &str,
    software_version: u8,
    encryption: u8,
    data_unit: &[u8],
) -> Option<Vec<u8>> {
    let len = u16::try_from(data_unit.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_DATA_UNIT_LEN)?;
    let mut f = Vec::with_capacity(data_unit.len() + FRAME_OVERHEAD);
    f.extend_from_slice(b"##");
    f.push(command);
    let mut v = [0u8; 17];
    for (d, s) in v.iter_mut().zip(vin.bytes()) {
        *d = s;
    }
    f.extend_from_slice(&v);
    f.push(software_version);
    f.push(encryption);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(data_unit);
    let bcc = f.get(2..).unwrap_or(&[]).iter().fold(0u8, |a, &b| a ^ b);
    f.push(bcc);
    Some(f)
}

fn enc1(v: Option<f64>, scale: f64, offset: f64) -> u8 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale).round().clamp(0.0, 250.0) as u8,
        _ => 0xFF,
    }
}
fn enc2(v: Option<f64>, scale: f64, offset: f64) -> u16 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale).round().clamp(0.0, 64255.0) as u16,
        _ => 0xFFFF,
    }
}
fn enc4(v: Option<f64>, scale: f64, offset: f64) -> u32 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale)
            .round()
            .clamp(0.0, f64::from(0xFAFF_FFFFu32)) as u32,
        _ => 0xFFFF_FFFF,
    }
}

/// Encoded size of one type-0x03 block with its collection time: type 1 + time 6 + body 30.
const TWC_BLOCK_LEN: usize = 1 + 6 + 30;

fn push_twc_block(out: &mut Vec<u8>, sent_at: FrameTime, s: &StreamSample) {
    out.push(0x03);
    out.extend_from_slice(&s.collected_at.unwrap_or(sent_at).to_bytes());
    out.extend_from_slice(&enc2(s.speed_kmh, SPEED_SCALE, 0.0).to_be_bytes());
    out.push(enc1(s.barometric_kpa, 0.5, 0.0));
    out.push(enc1(s.net_torque_pct, 1.0, -125.0));
    out.push(enc1(s.friction_torque_pct, 1.0, -125.0));
    out.extend_from_slice(&enc2(s.engine_rpm, 0.125, 0.0).to_be_bytes());
    out.extend_from_slice(&enc2(s.fuel_flow_lph, 0.05, 0.0).to_be_bytes());
    out.extend_from_slice(&enc2(s.upstream_lambda, LAMBDA_SCALE, 0.0).to_be_bytes());
    let rear = match s.rear_o2_v {
        Some(v) if v.is_finite() && v <= 1.275 => (v / 0.01).round().clamp(0.0, 127.0) as u8,
        _ => 0xFF,
    };
    out.push(rear);
    out.extend_from_slice(&enc2(s.intake_air_kgph, 0.05, 0.0).to_be_bytes());
    out.push(enc1(s.coolant_c, 1.0, -40.0));
    out.extend_from_slice(&enc2(s.twc_temp_c, TEMP_SCALE, TEMP_OFFSET).to_be_bytes());
    let no_position = s.position_valid.is_none() && s.lon_deg.is_none() && s.lat_deg.is_none();
    let status = if no_position {
        0xFF
    } else {
        u8::from(s.position_valid != Some(true))
            | (u8::from(s.lat_deg.is_some_and(|v| v < 0.0)) << 1)
            | (u8::from(s.lon_deg.is_some_and(|v| v < 0.0)) << 2)
    };
    out.push(status);
    out.extend_from_slice(&enc4(s.lon_deg.map(f64::abs), DEG_SCALE, 0.0).to_be_bytes());
    out.extend_from_slice(&enc4(s.lat_deg.map(f64::abs), DEG_SCALE, 0.0).to_be_bytes());
    out.extend_from_slice(&enc4(s.odometer_km, 0.1, 0.0).to_be_bytes());
}

/// Build a valid HJ 1239 real-time frame (command 0x02, software version 0x01, encryption 0x01
/// "none", HJ 1239.3 layout: send time, serial once, then per block type 0x03 + 6-byte
/// collection time + 30-byte TWC body; no signature), obd-remote-monitoring.md §1.5/§1.7.
///
/// The inverse of [`decode_frame`] for the type-0x03 fields: values are quantised to the wire
/// scale and clamped to the valid raw range; `None` (and rear O2 above 1.275 V) encodes as the
/// all-ones sentinel; `collected_at: None` encodes the send time; `info_type` is ignored
/// (always 0x03); the position status is 0xFF when validity and both coordinates are `None`,
/// else bit 0 = not `Some(true)`, bit 1 = latitude < 0, bit 2 = longitude < 0. Samples beyond
/// what fits in a 65531-byte data unit (1770) are dropped.
pub fn encode_twc_realtime_frame(
    vin: &str,
    sent_at: FrameTime,
    seq: u16,
    samples: &[StreamSample],
) -> Vec<u8> {
    encode_twc_realtime_frame_signed(vin, sent_at, seq, samples, &[], &[])
}

/// As [`encode_twc_realtime_frame`], followed by an SM2-style signature `R-len R S-len S`
/// (§1.4) when `sig_r` is non-empty (the decoder recognises R/S lengths 16–33; longer inputs
/// are truncated to 33 bytes). The bytes are not a real signature.
pub fn encode_twc_realtime_frame_signed(
    vin: &str,
    sent_at: FrameTime,
    seq: u16,
    samples: &[StreamSample],
    sig_r: &[u8],
    sig_s: &[u8],
) -> Vec<u8> {
    let sig_r = sig_r.get(..33).unwrap_or(sig_r);
    let sig_s = sig_s.get(..33).unwrap_or(sig_s);
    let sig_len = if sig_r.is_empty() {
        0
    } else {
        2 + sig_r.len() + sig_s.len()
    };
    let room = MAX_DATA_UNIT_LEN.saturating_sub(8 + sig_len) / TWC_BLOCK_LEN;
    let samples = samples.get(..room).unwrap_or(samples);
    let mut d = Vec::with_capacity(8 + samples.len() * TWC_BLOCK_LEN + sig_len);
    d.extend_from_slice(&sent_at.to_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    for s in samples {
        push_twc_block(&mut d, sent_at, s);
    }
    if sig_len > 0 {
        d.push(sig_r.len() as u8);
        d.extend_from_slice(sig_r);
        d.push(sig_s.len() as u8);
        d.extend_from_slice(sig_s);
    }
    encode_frame(0x02, vin, 0x01, 0x01, &d).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `hj_fe_LETYECG28MH055508` from shared/data/frames/remote_frames.tsv (public test code).
    const HJ_FE: &str = "232302fe4c45545945434732384d483035353530380101e917020e0d212e01c8d70100fea000004c45545945434732384d483035353530384d44314343383738203439334c44303330302d2cecf4303030303030303030303030303004d80c3c005f005f085f04d80000000000810081029e04d803c404d5050c04d507ef04d801200c6468021ca9c9828723f0000a1b4a10f84907d8372b3615000779c700068761a30129ded7000fba04021b5bc985871f74000c169c11ee4905d2372e3618000679c700068761e90129ded4000fba040219f8c984861b54000817de136c4904f83735361b000479c700068762330129ded5000fba040218d4c984861a580009170e1342490474373b3622000379c700068762770129ded8000fba04021783c9848619d4000817aa120e490452373e3625000379c700068762b70129ded6000fba04021631c98486198c000817ae11344903fa37423628000279c700068762f60129ded4000fba040214d1c984861950000817f610ea4904203745362b000379c700068763320129ded2000fba040214d1c984861950000817f610ea4904203745362b000379c700068763320129ded2000fba040213b1c986861c40000b182210da4904b03748362f000379c7000687636a0129decf000fba04021263c982861ca00008183e10c4490538374b3632000379c7000687639e0129ded3000fba0453";
    /// `hj_carsimu_LGDCHA1G8MA127733`.
    const HJ_CARSIMU: &str = "2323024c47444348413147384d41313237373333010100ad15080e082f230100010100abdea9d64c47444348413147384d4131323737333359435933303136352d363020202020200000ec40a1bf000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000007145600afe00200afe06200afe00900af204700af245500afe01200af0200010000c57d830000000000000000610000fefffefffeff3d000006afd31701ea55fe000000289f";
    /// `gb32960_bitnei_login_LGHC4V1D9HE204406`.
    const GB_LOGIN: &str = "232301fe4c4748433456314439484532303434303601001e140215171f29008a3839383630313137373935393530303839323938010063";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn close(v: Option<f64>, expected: f64) {
        let v = v.expect("value present");
        assert!((v - expected).abs() < 1e-9, "{v} != {expected}");
    }

    fn t(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> FrameTime {
        FrameTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        }
    }

    fn realtime(f: &Frame) -> (&[InfoBlock], SerialLayout, bool, usize, Option<u16>) {
        match &f.body {
            Body::Realtime {
                blocks,
                serial_layout,
                block_times,
                signature_len,
                seq,
                ..
            } => (blocks, *serial_layout, *block_times, *signature_len, *seq),
            b => panic!("not realtime: {b:?}"),
        }
    }

    fn stream(b: &InfoBlock) -> &StreamSample {
        match b {
            InfoBlock::Stream(s) => s,
            b => panic!("not a stream block: {b:?}"),
        }
    }

    fn twc_sample(i: u32) -> StreamSample {
        StreamSample {
            info_type: 3,
            collected_at: Some(t(2024, 5, 6, 7, 8, (i % 60) as u8)),
            speed_kmh: Some(f64::from(i % 20000) / 256.0),
            barometric_kpa: Some(100.5),
            net_torque_pct: Some(-20.0),
            friction_torque_pct: Some(8.0),
            engine_rpm: Some(1200.125),
            fuel_flow_lph: Some(12.35),
            upstream_lambda: Some(32_787.0 * LAMBDA_SCALE),
            rear_o2_v: Some(0.65),
            intake_air_kgph: Some(420.05),
            coolant_c: Some(85.0),
            twc_temp_c: Some(512.5),
            position_valid: Some(true),
            lon_deg: Some(113.123456),
            lat_deg: Some(-23.654321),
            odometer_km: Some(123_456.7),
            ..Default::default()
        }
    }

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

    // --- real vectors ------------------------------------------------------------------------

    #[test]
    fn hj_fe_acceptance_hand_calculated() {
        let f = decode_frame(&unhex(HJ_FE)).expect("hj_fe decodes");
        assert_eq!(f.command, Command::Realtime);
        assert_eq!(
            f.header,
            HeaderStyle::Gb32960Style {
                response_flag: 0xFE
            }
        );
        assert_eq!(f.vin, "LETYECG28MH055508");
        let (blocks, layout, times, sig, seq) = realtime(&f);
        // time 17 02 0e 0d 21 2e | type 01 | serial c8d7 | OBD | 10 x (type 02 | 37 bytes)
        assert_eq!(
            (layout, times, sig, seq),
            (SerialLayout::FirstUnitOnly, false, 0, Some(0xC8D7))
        );
        assert_eq!(blocks.len(), 11);

        let InfoBlock::Obd(obd) = &blocks[0] else {
            panic!("OBD block expected")
        };
        assert_eq!(obd.protocol, Some(1)); // ISO 27145
        assert_eq!(obd.mil_on, Some(false));
        assert_eq!(obd.diag_support, Some(0xFEA0));
        assert_eq!(obd.diag_readiness, Some(0x0000));
        assert_eq!(obd.vin, "LETYECG28MH055508");
        assert_eq!(obd.calibration_id, "MD1CC878 493LD0300");
        assert_eq!(obd.cvn, "2D2CECF43030303030303030303030303030");
        assert_eq!(obd.iupr.len(), 18);
        assert_eq!(obd.iupr[0], Some(0x04D8)); // OBDCOND 1240
        assert_eq!(obd.iupr[1], Some(0x0C3C)); // IGNCNTR 3132
        assert_eq!(obd.dtcs, ["P200C"]); // 20 0c | FTB 64 | status 68
        assert_eq!(obd.dtc_details[0].failure_type, Some(0x64));
        assert_eq!(obd.dtc_details[0].status, Some(0x68));

        // Sample 1: 02 1ca9 c9 82 87 23f0 000a 1b4a 10f8 49 07d8 372b 3615 0007 79 c7 00
        //           068761a3 0129ded7 000fba04
        let s = stream(&blocks[1]);
        assert_eq!(s.info_type, 2);
        close(s.speed_kmh, 0x1ca9 as f64 / 256.0); // 7337/256 = 28.66015625 km/h
        close(s.engine_rpm, 0x23f0 as f64 * 0.125); // 9200*0.125 = 1150 rpm
        close(s.scr_up_nox_ppm, 0x1b4a as f64 * 0.05 - 200.0); // 6986*0.05-200 = 149.3 ppm
        close(s.scr_down_nox_ppm, 0x10f8 as f64 * 0.05 - 200.0); // 4344*0.05-200 = 17.2 ppm
        close(s.scr_in_temp_c, 0x372b as f64 * 0.03125 - 273.0); // 14123/32-273 = 168.34375 C
        close(s.scr_out_temp_c, 0x3615 as f64 * 0.03125 - 273.0); // 13845/32-273 = 159.65625 C
        close(s.lon_deg, 0x068761a3 as f64 * 1e-6); // 109535651e-6 = 109.535651 E
        close(s.lat_deg, 0x0129ded7 as f64 * 1e-6); // 19521239e-6 = 19.521239 N
        close(s.odometer_km, 0x000fba04 as f64 * 0.1); // 1030660*0.1 = 103066.0 km
        close(s.barometric_kpa, 0xc9 as f64 * 0.5); // 100.5 kPa
        close(s.net_torque_pct, 0x82 as f64 - 125.0); // 5 %
        close(s.friction_torque_pct, 0x87 as f64 - 125.0); // 10 %
        close(s.fuel_flow_lph, 0x000a as f64 * 0.05); // 0.5 L/h
        close(s.reagent_pct, 0x49 as f64 * 0.4); // 29.2 %
        close(s.intake_air_kgph, 0x07d8 as f64 * 0.05); // 100.4 kg/h
        close(s.dpf_dp_kpa, 0x0007 as f64 * 0.1); // 0.7 kPa
        close(s.coolant_c, 0x79 as f64 - 40.0); // 81 C
        close(s.tank_pct, 0xc7 as f64 * 0.4); // 79.6 %
        assert_eq!(s.position_valid, Some(true)); // status 00: valid, N, E
        assert_eq!(
            (s.upstream_lambda, s.rear_o2_v, s.collected_at),
            (None, None, None)
        );

        // Sample 10: 02 1263 c9 82 86 1ca0 0008 183e 10c4 49 0538 374b 3632 0003 79 c7 00
        //            0687639e 0129ded3 000fba04
        let s = stream(&blocks[10]);
        close(s.speed_kmh, 0x1263 as f64 / 256.0); // 4707/256 = 18.38671875 km/h
        close(s.engine_rpm, 0x1ca0 as f64 * 0.125); // 7328*0.125 = 916 rpm
        close(s.scr_up_nox_ppm, 0x183e as f64 * 0.05 - 200.0); // 6206*0.05-200 = 110.3 ppm
        close(s.scr_down_nox_ppm, 0x10c4 as f64 * 0.05 - 200.0); // 4292*0.05-200 = 14.6 ppm
        close(s.scr_in_temp_c, 0x374b as f64 * 0.03125 - 273.0); // 14155/32-273 = 169.34375 C
        close(s.scr_out_temp_c, 0x3632 as f64 * 0.03125 - 273.0); // 13874/32-273 = 160.5625 C
        close(s.lon_deg, 0x0687639e as f64 * 1e-6); // 109.536158 E
        close(s.lat_deg, 0x0129ded3 as f64 * 1e-6); // 19.521235 N
        close(s.odometer_km, 0x000fba04 as f64 * 0.1); // 103066.0 km

        // All ten samples: plausible ranges from shared/data/README.md.
        for b in &blocks[1..] {
            let s = stream(b);
            let up = s.scr_up_nox_ppm.unwrap();
            let down = s.scr_down_nox_ppm.unwrap();
            assert!(
                (85.0..=155.0).contains(&up) && (10.0..=55.0).contains(&down),
                "{up} {down}"
            );
            assert!((s.lon_deg.unwrap() - 109.54).abs() < 0.01);
            assert!((s.lat_deg.unwrap() - 19.52).abs() < 0.01);
        }
    }

    #[test]
    fn hj_carsimu_iso_uds_dtcs_and_sentinels() {
        let f = decode_frame(&unhex(HJ_CARSIMU)).expect("carsimu decodes");
        assert_eq!(f.header, HeaderStyle::Hj1239);
        assert_eq!(f.software_version, Some(1));
        let (blocks, layout, _, _, seq) = realtime(&f);
        // time | 01 0001 OBD | 02 0001 stream
        assert_eq!((layout, seq), (SerialLayout::AfterEachInfoType, Some(1)));
        let InfoBlock::Obd(obd) = &blocks[0] else {
            panic!("OBD block expected")
        };
        assert_eq!(obd.protocol, Some(1));
        assert_eq!(obd.calibration_id, "YCY30165-60");
        // 145600af e00200af e06200af e00900af 204700af 245500af e01200af
        assert_eq!(
            obd.dtcs,
            [
                "P1456", "U2002", "U2062", "U2009", "P2047", "P2455", "U2012"
            ]
        );
        assert!(obd.dtc_details.iter().all(|d| d.status == Some(0xAF)));
        let s = stream(&blocks[1]);
        // SCR in/out temp and DPF dP are FE FF (> 0xFAFF): invalid.
        assert_eq!(
            (s.scr_in_temp_c, s.scr_out_temp_c, s.dpf_dp_kpa),
            (None, None, None)
        );
        close(s.lon_deg, 0x06afd317 as f64 * 1e-6);
        close(s.odometer_km, 0x28 as f64 * 0.1);
    }

    #[test]
    fn gb32960_login_rejected_with_reason() {
        let e = decode_frame(&unhex(GB_LOGIN)).unwrap_err();
        assert_eq!(e.reason_code(), "gb32960_frame");
        let msg = e.to_string();
        assert!(
            msg.starts_with("GB/T 32960 frame (EV protocol), not HJ 1239: "),
            "{msg}"
        );
        assert!(
            msg.contains("response flag 0xFE") && msg.contains("login"),
            "{msg}"
        );
    }

    // --- hand-made frames ---------------------------------------------------------------------

    #[test]
    fn twc_encoder_roundtrip() {
        let sent = t(2024, 5, 6, 7, 8, 10);
        let samples: Vec<StreamSample> = (0..10).map(twc_sample).collect();
        let bytes = encode_twc_realtime_frame("LZGJX4W28PX000001", sent, 77, &samples);
        assert_eq!(bytes.len(), FRAME_OVERHEAD + 8 + 10 * TWC_BLOCK_LEN);
        let f = decode_frame(&bytes).expect("decodes");
        assert_eq!(
            (f.command, f.encryption, f.software_version),
            (Command::Realtime, 1, Some(1))
        );
        assert_eq!(f.vin, "LZGJX4W28PX000001");
        let (blocks, layout, times, sig, seq) = realtime(&f);
        assert_eq!(
            (layout, times, sig, seq),
            (SerialLayout::OncePerFrame, true, 0, Some(77))
        );
        if let Body::Realtime {
            sent_at,
            layouts_matched,
            ..
        } = &f.body
        {
            assert_eq!((*sent_at, *layouts_matched), (sent, 1));
        }
        for (b, want) in blocks.iter().zip(&samples) {
            let s = stream(b);
            assert_eq!(s.info_type, 3);
            assert_eq!(s.collected_at, want.collected_at);
            for (got, exp) in [
                (s.speed_kmh, want.speed_kmh),
                (s.barometric_kpa, want.barometric_kpa),
                (s.net_torque_pct, want.net_torque_pct),
                (s.friction_torque_pct, want.friction_torque_pct),
                (s.engine_rpm, want.engine_rpm),
                (s.fuel_flow_lph, want.fuel_flow_lph),
                (s.upstream_lambda, want.upstream_lambda),
                (s.rear_o2_v, want.rear_o2_v),
                (s.intake_air_kgph, want.intake_air_kgph),
                (s.coolant_c, want.coolant_c),
                (s.twc_temp_c, want.twc_temp_c),
                (s.lon_deg, want.lon_deg),
                (s.lat_deg, want.lat_deg),
                (s.odometer_km, want.odometer_km),
            ] {
                close(got, exp.unwrap());
            }
            assert_eq!(s.position_valid, Some(true));
            assert_eq!(
                (s.scr_up_nox_ppm, s.twc_down_nox_ppm, s.reagent_pct),
                (None, None, None)
            );
        }
    }

    #[test]
    fn twc_encoder_sentinels_and_signature() {
        let sent = t(2024, 5, 6, 7, 8, 10);
        let s = StreamSample {
            rear_o2_v: Some(1.28), // above 1.275 V -> sentinel
            lon_deg: Some(-0.5),
            lat_deg: Some(10.0),
            position_valid: Some(false),
            ..Default::default()
        };
        let bytes =
            encode_twc_realtime_frame_signed("VIN", sent, 1, &[s], &[0xAA; 32], &[0xBB; 32]);
        let f = decode_frame(&bytes).expect("decodes");
        assert_eq!(f.vin, "VIN");
        let (blocks, layout, times, sig, _) = realtime(&f);
        assert_eq!((layout, times, sig), (SerialLayout::OncePerFrame, true, 66));
        let d = stream(&blocks[0]);
        assert_eq!(d.rear_o2_v, None);
        assert_eq!(d.speed_kmh, None);
        assert_eq!(d.collected_at, Some(sent));
        // An invalid fix has no coordinates (never the numbers in the fields).
        assert_eq!(
            (d.position_valid, d.lon_deg, d.lat_deg),
            (Some(false), None, None)
        );
        // rear O2 1.27 V is still valid; all-None position encodes status 0xFF.
        let s = StreamSample {
            rear_o2_v: Some(1.27),
            ..Default::default()
        };
        let f = decode_frame(&encode_twc_realtime_frame("V", sent, 1, &[s])).unwrap();
        let d = stream(&realtime(&f).0[0]);
        close(d.rear_o2_v, 1.27);
        assert_eq!((d.position_valid, d.lon_deg, d.lat_deg), (None, None, None));
    }

    #[test]
    fn encoder_caps_samples() {
        let samples = vec![twc_sample(1); 2000];
        let bytes = encode_twc_realtime_frame("V", t(2024, 1, 1, 0, 0, 0), 1, &samples);
        assert!(bytes.len() <= MAX_FRAME_LEN);
        let f = decode_frame(&bytes).unwrap();
        assert_eq!(realtime(&f).0.len(), 1770);
    }

    fn stream_head() -> Vec<u8> {
        // speed 0x2323 (contains "##"), baro 200, torque 125, friction 125, rpm 0x1F40, fuel 0x0064
        vec![0x23, 0x23, 200, 125, 125, 0x1F, 0x40, 0x00, 0x64]
    }

    #[test]
    fn type05_hybrid_supplementary_hand_built() {
        let sent = t(2024, 1, 2, 3, 4, 5);
        let mut d = sent.to_bytes().to_vec();
        d.extend_from_slice(&[0x12, 0x34]); // serial once
        // 0x05 TWC with NOx: head | lambda 0x8000 | rear 0x41 | NOx 0x1000 | air 0x0100 | coolant 0x7D
        // | TWC temp 0x4000 | status 0x06 (valid, S, W) | lon | lat | odo
        d.push(0x05);
        d.extend_from_slice(&stream_head());
        d.extend_from_slice(&[
            0x80, 0x00, 0x41, 0x10, 0x00, 0x01, 0x00, 0x7D, 0x40, 0x00, 0x06,
        ]);
        d.extend_from_slice(&100_000_000u32.to_be_bytes());
        d.extend_from_slice(&30_000_000u32.to_be_bytes());
        d.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
        // 0x04 hybrid: rpm 3000 | load 50 | 0x0FA0 V | 0x2710 A | SOC 0xFF
        d.push(0x04);
        d.extend_from_slice(&[0x0B, 0xB8, 50, 0x0F, 0xA0, 0x27, 0x10, 0xFF]);
        // 0x80 supplementary: mode 9 | pedal 100 | fuel 2000 | urea temp 60 | dosing 12345 |
        // urea 0xFB000000 (sentinel) | DPF temp 0x3000
        d.push(0x80);
        d.extend_from_slice(&[9, 100]);
        d.extend_from_slice(&2000u32.to_be_bytes());
        d.push(60);
        d.extend_from_slice(&12345u32.to_be_bytes());
        d.extend_from_slice(&0xFB00_0000u32.to_be_bytes());
        d.extend_from_slice(&[0x30, 0x00]);
        let f = decode_frame(&encode_frame(0x03, "LNGTRUCK000000001", 6, 1, &d).unwrap()).unwrap();
        assert_eq!(f.command, Command::Resend);
        let (blocks, layout, times, _, seq) = realtime(&f);
        assert_eq!(
            (layout, times, seq, blocks.len()),
            (SerialLayout::OncePerFrame, false, Some(0x1234), 3)
        );
        let s = stream(&blocks[0]);
        assert_eq!(s.info_type, 5);
        close(s.speed_kmh, 0x2323 as f64 / 256.0);
        close(s.barometric_kpa, 100.0);
        close(s.net_torque_pct, 0.0);
        close(s.engine_rpm, 1000.0);
        close(s.fuel_flow_lph, 5.0);
        close(s.upstream_lambda, 32768.0 * 0.0000305);
        close(s.rear_o2_v, 0.65);
        close(s.twc_down_nox_ppm, 4096.0 * 0.05 - 200.0);
        close(s.intake_air_kgph, 12.8);
        close(s.coolant_c, 85.0);
        close(s.twc_temp_c, 16384.0 / 32.0 - 273.0);
        assert_eq!(s.position_valid, Some(true));
        close(s.lon_deg, -100.0);
        close(s.lat_deg, -30.0);
        assert_eq!(s.odometer_km, None);
        let InfoBlock::Hybrid(h) = &blocks[1] else {
            panic!("hybrid")
        };
        close(h.motor_rpm, 3000.0);
        close(h.motor_load_pct, 50.0);
        close(h.battery_v, 400.0);
        close(h.battery_a, 0.0);
        assert_eq!(h.soc_pct, None);
        let InfoBlock::Supplementary(x) = &blocks[2] else {
            panic!("supplementary")
        };
        assert_eq!(x.torque_mode, Some(9));
        close(x.accelerator_pct, 40.0);
        close(x.cumulative_fuel_l, 1000.0);
        close(x.urea_tank_temp_c, 20.0);
        close(x.urea_dosing_ml_h, 123.45);
        assert_eq!(x.cumulative_urea_g, None);
        close(x.dpf_exhaust_temp_c, 12288.0 / 32.0 - 273.0);
    }

    fn obd_body(protocol: u8, dtcs: &[[u8; 4]]) -> Vec<u8> {
        let mut o = vec![protocol, 0xFE, 0xFF, 0xFF, 0x00, 0x21];
        o.extend_from_slice(b"LNGTRUCK000000001");
        o.extend_from_slice(b"CAL-ID-1\0\0\0\0\0\0\0\0\0\0");
        o.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
        o.extend_from_slice(&[0u8; 14]);
        for w in 0..18u16 {
            o.extend_from_slice(&(if w == 3 { 0xFFFF } else { w * 10 }).to_be_bytes());
        }
        o.push(dtcs.len() as u8);
        for d in dtcs {
            o.extend_from_slice(d);
        }
        o
    }

    #[test]
    fn obd_j1939_dtcs_and_sentinels() {
        let mut d = t(2024, 1, 2, 3, 4, 5).to_bytes().to_vec();
        d.extend_from_slice(&[0x00, 0x09, 0x01]); // serial 9, type 01
        // SPN 3226 (0x0C9A) FMI 2 -> 9A 0C 02 | OC 5 ; SPN 520192 (0x7F000) FMI 31 -> 00 F0 FF | 85
        d.extend_from_slice(&obd_body(
            2,
            &[[0x9A, 0x0C, 0x02, 0x05], [0x00, 0xF0, 0xFF, 0x85]],
        ));
        let f = decode_frame(&encode_frame(0x02, "V", 1, 1, &d).unwrap()).unwrap();
        let InfoBlock::Obd(o) = &realtime(&f).0[0] else {
            panic!("OBD")
        };
        assert_eq!(o.protocol, Some(2));
        assert_eq!(o.mil_on, None); // 0xFE
        assert_eq!(o.diag_support, None); // 0xFFFF
        assert_eq!(o.diag_readiness, Some(0x0021));
        assert_eq!(o.calibration_id, "CAL-ID-1");
        assert!(o.cvn.starts_with("DEADBEEF"));
        assert_eq!(o.iupr[2], Some(20));
        assert_eq!(o.iupr[3], None);
        assert_eq!(o.dtcs, ["SPN 3226 FMI 2", "SPN 520192 FMI 31"]);
        assert_eq!(o.dtc_details[1].occurrence_count, Some(5));
        // Unknown protocol: raw hex; 0xFE: protocol None.
        let mut d = t(2024, 1, 2, 3, 4, 5).to_bytes().to_vec();
        d.extend_from_slice(&[0x00, 0x09, 0x01]);
        d.extend_from_slice(&obd_body(0xFE, &[[1, 2, 3, 4]]));
        let f = decode_frame(&encode_frame(0x02, "V", 1, 1, &d).unwrap()).unwrap();
        let InfoBlock::Obd(o) = &realtime(&f).0[0] else {
            panic!("OBD")
        };
        assert_eq!(
            (o.protocol, o.dtcs.clone()),
            (None, vec!["0x01020304".to_string()])
        );
    }

    #[test]
    fn user_defined_block_is_unknown_when_nothing_else_fits() {
        let mut d = t(2024, 1, 2, 3, 4, 5).to_bytes().to_vec();
        d.extend_from_slice(&[0x00, 0x01, 0x04, 0, 1, 2, 3, 4, 5, 6, 7, 0x90, 0xAB, 0xCD]);
        let f = decode_frame(&encode_frame(0x02, "V", 1, 1, &d).unwrap()).unwrap();
        let blocks = realtime(&f).0;
        assert!(matches!(blocks[0], InfoBlock::Hybrid(_)));
        assert_eq!(
            blocks[1],
            InfoBlock::Unknown {
                info_type: 0x90,
                collected_at: None,
                data: vec![0xAB, 0xCD]
            }
        );
    }

    #[test]
    fn other_commands() {
        let tm = t(2024, 1, 2, 3, 4, 5);
        let mut d = tm.to_bytes().to_vec();
        d.extend_from_slice(&[0, 7]);
        d.extend_from_slice(b"89860000000000000001");
        let f = decode_frame(&encode_frame(1, "LVIN", 1, 1, &d).unwrap()).unwrap();
        assert_eq!(
            f.body,
            Body::Login {
                time: tm,
                seq: 7,
                iccid: "89860000000000000001".into()
            }
        );
        let f = decode_frame(&encode_frame(4, "LVIN", 1, 1, &d[..8]).unwrap()).unwrap();
        assert_eq!(f.body, Body::Logout { time: tm, seq: 7 });
        let f = decode_frame(&encode_frame(5, "LVIN", 1, 1, &[]).unwrap()).unwrap();
        assert_eq!(f.body, Body::TimeCalibration { time: None });
        let f = decode_frame(&encode_frame(5, "LVIN", 1, 1, &d[..6]).unwrap()).unwrap();
        assert_eq!(f.body, Body::TimeCalibration { time: Some(tm) });
        let mut a = d[..8].to_vec();
        a.push(0x01); // invalid position
        a.extend_from_slice(&116_400_000u32.to_be_bytes());
        a.extend_from_slice(&39_900_000u32.to_be_bytes());
        let f = decode_frame(&encode_frame(6, "LVIN", 1, 1, &a).unwrap()).unwrap();
        match f.body {
            Body::RemovalAlarm {
                seq: 7,
                position_valid: Some(false),
                lon_deg: None,
                lat_deg: None,
                ..
            } => {}
            b => panic!("{b:?}"),
        }
        let mut act = tm.to_bytes().to_vec();
        act.extend_from_slice(&[0x11; 16]);
        act.extend_from_slice(&[0x22; 64]);
        act.extend_from_slice(b"LNGTRUCK000000001");
        act.push(32);
        act.extend_from_slice(&[0x33; 32]);
        act.push(32);
        act.extend_from_slice(&[0x44; 32]);
        let f = decode_frame(&encode_frame(7, "LNGTRUCK000000001", 1, 1, &act).unwrap()).unwrap();
        match &f.body {
            Body::Activation {
                chip_id,
                public_key,
                vin,
                signature_len,
                ..
            } => {
                assert_eq!(chip_id, &"11".repeat(16));
                assert_eq!(public_key.len(), 64);
                assert_eq!(vin, "LNGTRUCK000000001");
                assert_eq!(*signature_len, 66);
            }
            b => panic!("{b:?}"),
        }
        let f = decode_frame(&encode_frame(8, "V", 1, 1, &[1, 0]).unwrap()).unwrap();
        assert_eq!(f.body, Body::ActivationReply { status: 1, info: 0 });
        let e = decode_frame(&encode_frame(1, "V", 1, 1, &d[..27]).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad data-unit length for login: declared data-unit length 27, expected 28"
        );
    }

    /// Field case hj1239-signature-after-each-block, as a kind: a signature part may follow any
    /// info block (here after the 1st of 3, and after the 2nd and 3rd), counted in
    /// `signature_len` / `signature_parts`; R/S lengths outside 16–33 are not a signature.
    #[test]
    fn signature_parts_after_any_block() {
        let at = t(2025, 11, 8, 10, 30, 0);
        let samples: Vec<StreamSample> = (0..3).map(twc_sample).collect();
        let plain = encode_twc_realtime_frame("LSIG", at, 3, &samples);
        let unit = &plain[HEADER_LEN..plain.len() - 1];
        let block = |k: usize| &unit[8 + TWC_BLOCK_LEN * k..8 + TWC_BLOCK_LEN * (k + 1)];
        let sig = [vec![0x20], vec![1; 32], vec![0x10], vec![2; 16]].concat();
        for (d, parts) in [
            (
                [&unit[..8], block(0), &sig, block(1), block(2)].concat(),
                1u8,
            ),
            (
                [&unit[..8], block(0), block(1), &sig, block(2), &sig].concat(),
                2,
            ),
        ] {
            let f = decode_frame(&encode_frame(2, "LSIG", 1, 1, &d).unwrap()).expect("decodes");
            let Body::Realtime {
                blocks,
                signature_len,
                signature_parts,
                ..
            } = &f.body
            else {
                panic!("not realtime")
            };
            assert_eq!(blocks.len(), 3);
            assert_eq!(*signature_parts, parts);
            assert_eq!(*signature_len, 50 * usize::from(parts));
            assert_eq!(stream(&blocks[2]).collected_at, samples[2].collected_at);
        }
        // R length 0x22 (34) is no signature part: not skipped as one.
        let bad = [vec![0x22], vec![1; 34], vec![0x20], vec![2; 32]].concat();
        let d = [&unit[..8], block(0), &bad, block(1)].concat();
        let f = decode_frame(&encode_frame(2, "LSIG", 1, 1, &d).unwrap());
        assert!(
            !matches!(
                f,
                Ok(Frame {
                    body: Body::Realtime {
                        signature_parts: 1..,
                        ..
                    },
                    ..
                })
            ),
            "{f:?}"
        );
    }

    /// JT/T 808 (0x7E-delimited, XOR check code) is named, by the decoder and the scanner;
    /// noise starting with 0x7E is not.
    #[test]
    fn jtt808_is_named_as_another_protocol() {
        // 0x0002 heartbeat, 2013 header, empty body, phone 013800138000, serial 1.
        let mut m = vec![
            0x00, 0x02, 0x00, 0x00, 0x01, 0x38, 0x00, 0x13, 0x80, 0x00, 0x00, 0x01,
        ];
        m.push(m.iter().fold(0, |a, &b| a ^ b));
        let msg = [vec![0x7E], m, vec![0x7E]].concat();
        let e = decode_frame(&[msg.clone(), vec![0; 20]].concat()).unwrap_err();
        assert_eq!(e.reason_code(), "other_protocol");
        assert!(e.to_string().contains("JT/T 808") && e.to_string().contains("0x0002 heartbeat"));
        let input = [msg.clone(), msg].concat();
        let (evs, _, _) = scan_all(&input, 7);
        assert_eq!(reasons_of(&evs), vec!["other_protocol"]);
        let noise = [
            0x7E, 1, 2, 3, 0x7E, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
        ];
        assert_eq!(decode_frame(&noise).unwrap_err().reason_code(), "bad_start");
    }

    #[test]
    fn error_messages_and_codes() {
        let good = encode_twc_realtime_frame("V", t(2024, 1, 1, 0, 0, 0), 1, &[twc_sample(1)]);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        let computed = bad[last];
        bad[last] ^= 0x01;
        let e = decode_frame(&bad).unwrap_err();
        assert_eq!(e.reason_code(), "bad_bcc");
        assert_eq!(
            e.to_string(),
            format!(
                "bad BCC: computed 0x{computed:02X}, frame has 0x{:02X}",
                computed ^ 1
            )
        );

        let e = decode_frame(&good[..good.len() - 10]).unwrap_err();
        let declared = good.len() - FRAME_OVERHEAD;
        assert_eq!(
            e.to_string(),
            format!(
                "truncated: declared data-unit length {declared}, {} bytes present",
                declared - 9
            )
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode_frame(&long).unwrap_err().reason_code(),
            "trailing_bytes"
        );
        assert_eq!(
            decode_frame(&good[..10]).unwrap_err().reason_code(),
            "too_short"
        );
        let mut nohash = good.clone();
        nohash[0] = b'$';
        assert_eq!(
            decode_frame(&nohash).unwrap_err().reason_code(),
            "bad_start"
        );

        let e = decode_frame(&encode_frame(0x09, "V", 1, 1, &[]).unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "unknown command 0x09");
        assert_eq!(e.reason_code(), "unknown_command");
        let e = decode_frame(&encode_frame(0x02, "V", 1, 2, &[1, 2, 3]).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "encrypted data unit (encryption 0x02) cannot be decoded"
        );
        let mut d = t(2024, 1, 1, 0, 0, 0).to_bytes().to_vec();
        d.extend_from_slice(&[0, 1, 0x02, 0, 0]); // a type-0x02 block cut short
        let e = decode_frame(&encode_frame(0x02, "V", 1, 1, &d).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "declared data-unit length 11 not consumed exactly by any real-time layout \
             (serial-number placements, with/without collection times, signature parts) (realtime)"
        );
        assert_eq!(e.reason_code(), "layout_mismatch");
        let mut big = good.clone();
        big[22] = 0xFF;
        big[23] = 0xFC;
        assert_eq!(
            decode_frame(&big).unwrap_err(),
            FrameError::LengthTooLarge { declared: 65532 }
        );
    }

    // --- scanner ------------------------------------------------------------------------------

    fn scan_all(input: &[u8], chunk: usize) -> (Vec<ScanEvent>, FrameScanner, u64) {
        let mut sc = FrameScanner::new();
        let mut evs = Vec::new();
        let mut calls = 0u64;
        for c in input.chunks(chunk.max(1)) {
            sc.push(c);
            loop {
                calls += 1;
                match sc.next_event() {
                    Some(e) => evs.push(e),
                    None => break,
                }
            }
        }
        loop {
            calls += 1;
            match sc.finish() {
                Some(e) => evs.push(e),
                None => break,
            }
        }
        (evs, sc, calls)
    }

    /// Every byte appears in exactly one event, in order.
    fn assert_coverage(input: &[u8], evs: &[ScanEvent]) {
        let mut off = 0u64;
        let mut joined = Vec::with_capacity(input.len());
        for e in evs {
            let (o, b) = match e {
                ScanEvent::Frame { offset, bytes } | ScanEvent::Rejected { offset, bytes, .. } => {
                    (*offset, bytes)
                }
            };
            assert_eq!(o, off);
            assert!(!b.is_empty());
            off += b.len() as u64;
            joined.extend_from_slice(b);
        }
        assert_eq!(joined, input);
    }

    fn frames_of(evs: &[ScanEvent]) -> Vec<(u64, Vec<u8>)> {
        evs.iter()
            .filter_map(|e| match e {
                ScanEvent::Frame { offset, bytes } => Some((*offset, bytes.clone())),
                ScanEvent::Rejected { .. } => None,
            })
            .collect()
    }

    fn reasons_of(evs: &[ScanEvent]) -> Vec<&'static str> {
        evs.iter()
            .filter_map(|e| match e {
                ScanEvent::Rejected { reason, .. } => Some(reason.reason_code()),
                ScanEvent::Frame { .. } => None,
            })
            .collect()
    }

    #[test]
    fn scanner_resyncs_and_ignores_hashes_inside_frames() {
        let sent = t(2024, 1, 1, 0, 0, 0);
        // speed 0x2323 ("##") inside the payload, VIN with "##" too.
        let s = StreamSample {
            speed_kmh: Some(f64::from(0x2323) / 256.0),
            ..twc_sample(1)
        };
        let f1 = encode_twc_realtime_frame("AB##CD", sent, 1, &[s.clone(), s]);
        let f2 = encode_twc_realtime_frame("VIN2", sent, 2, &[twc_sample(2)]);
        let mut corrupt = f2.clone();
        corrupt[30] ^= 0x40; // bad BCC
        let mut input = b"noise".to_vec();
        input.extend_from_slice(&f1);
        input.extend_from_slice(b"###"); // '#' run right before a frame
        input.extend_from_slice(&f2);
        input.extend_from_slice(&corrupt);
        input.extend_from_slice(&f1);
        input.extend_from_slice(&f2[..40]); // truncated tail
        for chunk in [1, 2, 3, 17, 100, 100_000] {
            let (evs, _, _) = scan_all(&input, chunk);
            assert_coverage(&input, &evs);
            let frames = frames_of(&evs);
            let starts: Vec<u64> = frames.iter().map(|f| f.0).collect();
            let o2 = 5 + f1.len() + 3;
            let o4 = o2 + 2 * f2.len();
            assert_eq!(starts, vec![5, o2 as u64, o4 as u64], "chunk {chunk}");
            assert_eq!(frames[0].1, f1);
            assert_eq!(
                reasons_of(&evs),
                ["no_frame_start", "bad_start", "bad_bcc", "truncated"],
                "chunk {chunk}"
            );
            for (_, b) in &frames {
                decode_frame(b).expect("scanned frames decode");
            }
        }
    }

    #[test]
    fn scanner_truncated_frame_followed_by_frame() {
        let f =
            encode_twc_realtime_frame("VIN", t(2024, 1, 1, 0, 0, 0), 1, &vec![twc_sample(1); 3]);
        let mut input = f[..60].to_vec(); // connection dropped mid-frame
        input.extend_from_slice(&f);
        input.extend_from_slice(&f);
        let (evs, _, _) = scan_all(&input, 7);
        assert_coverage(&input, &evs);
        assert_eq!(
            frames_of(&evs).iter().map(|x| x.0).collect::<Vec<_>>(),
            [60, 60 + f.len() as u64]
        );
        assert_eq!(reasons_of(&evs), ["bad_bcc"]);
    }

    #[test]
    fn scanner_rejects_oversized_length_and_bounds_garbage() {
        let mut hdr = b"##\x02".to_vec();
        hdr.extend_from_slice(&[b'A'; 19]);
        hdr.extend_from_slice(&[0xFF, 0xFF]); // declared 65535 > 65531
        let f = encode_twc_realtime_frame("VIN", t(2024, 1, 1, 0, 0, 0), 1, &[twc_sample(1)]);
        let mut input = hdr.clone();
        input.extend_from_slice(&f);
        let (evs, _, _) = scan_all(&input, 5);
        assert_coverage(&input, &evs);
        assert_eq!(reasons_of(&evs), ["length_too_large"]);
        assert_eq!(frames_of(&evs).len(), 1);

        // 1 MiB of noise in 4 KiB chunks: runs are cut at MAX_GARBAGE_RUN, memory stays bounded.
        let noise: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 1)
            .map(|b| if b == b'#' { 0 } else { b })
            .collect();
        let mut sc = FrameScanner::new();
        let mut max_buf = 0;
        let mut n = 0;
        for c in noise.chunks(4096) {
            sc.push(c);
            while let Some(e) = sc.next_event() {
                assert!(matches!(
                    e,
                    ScanEvent::Rejected {
                        reason: FrameError::NoFrameStart { .. },
                        ..
                    }
                ));
                n += 1;
            }
            max_buf = max_buf.max(sc.buffered_len());
        }
        while sc.finish().is_some() {
            n += 1;
        }
        assert!(n >= 16, "{n}");
        assert!(max_buf <= MAX_GARBAGE_RUN + 2 * 4096 + 4096, "{max_buf}");
    }

    #[test]
    fn scanner_hash_flood_is_linear() {
        // Every position is a "##" candidate declaring 0x2323 bytes: BCC checks must stay O(1).
        let input = vec![b'#'; 300_000];
        let (evs, sc, calls) = scan_all(&input, 65_536);
        assert_coverage(&input, &evs);
        assert!(
            sc.work_units() <= 4 * input.len() as u64 + 4 * calls + 16,
            "{}",
            sc.work_units()
        );
    }

    #[test]
    fn gb32960_frames_pass_the_scanner_and_are_rejected_by_decode() {
        let mut input = unhex(GB_LOGIN);
        input.extend_from_slice(&unhex(HJ_FE));
        let (evs, _, _) = scan_all(&input, 9);
        let frames = frames_of(&evs);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            decode_frame(&frames[0].1).unwrap_err().reason_code(),
            "gb32960_frame"
        );
        assert!(decode_frame(&frames[1].1).is_ok());
    }

    // --- properties ---------------------------------------------------------------------------

    /// Bytes biased towards frame-like content: '#', small values, sentinels.
    fn hashy_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                3 => Just(b'#'),
                2 => Just(0u8),
                1 => Just(0xFFu8),
                1 => 1u8..=8,
                4 => any::<u8>(),
            ],
            0..max,
        )
    }

    /// Large inputs cheaply (proptest's per-element generation is slow in debug builds):
    /// xorshift bytes, with '#' and frame-ish bytes more frequent as `bias` grows.
    fn pseudo_random_bytes(seed: u64, n: usize, bias: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match (x >> 32) as u32 % 8 {
                    k if k < bias => b'#',
                    k if k < bias + 1 => (x >> 8) as u8 % 9,
                    _ => (x >> 16) as u8,
                }
            })
            .collect()
    }

    fn check_scan(input: &[u8], chunk: usize) {
        let (evs, sc, calls) = scan_all(input, chunk);
        assert_coverage(input, &evs);
        let n = input.len() as u64;
        assert!(
            sc.work_units() <= 4 * n + 4 * calls + 16,
            "work {} for {n} bytes",
            sc.work_units()
        );
        assert!(sc.buffered_len() <= 2 * MAX_FRAME_LEN + MAX_GARBAGE_RUN + 4096 + chunk);
        for e in &evs {
            match e {
                ScanEvent::Frame { bytes, .. } => {
                    assert!(bytes.len() >= FRAME_OVERHEAD && bytes.len() <= MAX_FRAME_LEN);
                    // Decoding must not panic, and must not reject the framing the scanner accepted.
                    if let Err(e) = decode_frame(bytes) {
                        assert!(
                            !matches!(
                                e,
                                FrameError::BadBcc { .. }
                                    | FrameError::Truncated { .. }
                                    | FrameError::TrailingBytes { .. }
                            ),
                            "{e}"
                        );
                    }
                }
                ScanEvent::Rejected { reason, .. } => {
                    let _ = (reason.to_string(), reason.reason_code());
                }
            }
        }
    }

    /// 3000 cases per property by default; `PROPTEST_CASES=N` for long fuzzing runs.
    fn fuzz_cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

        /// No panic and bounded work on arbitrary bytes: scanner (any chunking) and decoder.
        #[test]
        fn no_panic_and_bounded_work_on_arbitrary_bytes(
            input in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..512),
                hashy_bytes(512),
                (any::<u64>(), 0usize..8000, 0u32..4).prop_map(|(seed, n, bias)| pseudo_random_bytes(seed, n, bias)),
            ],
            chunk in 1usize..700,
        ) {
            check_scan(&input, chunk);
            let _ = decode_frame(&input);
            // Same bytes behind a valid-looking header with a correct length and BCC.
            let len = input.len().min(MAX_DATA_UNIT_LEN);
            for cmd in 1..=9u8 {
                for flag_style in [false, true] {
                    let mut f = encode_frame(cmd, "LNGTRUCK000000001", 1, 1, &input[..len]).unwrap();
                    if flag_style {
                        // GB/T 32960-style header: ## cmd FE VIN enc len
                        f.copy_within(3..20, 4);
                        f[3] = 0xFE;
                        let l = f.len() - 1;
                        f[l] = f[2..l].iter().fold(0, |a, b| a ^ b);
                    }
                    let _ = decode_frame(&f).map(|fr| serde_ok(&fr));
                }
            }
        }

        /// Valid frames separated by '#'-free noise are all found, whatever the chunking.
        #[test]
        fn frames_in_noise_are_all_found(
            parts in prop::collection::vec((prop::collection::vec(any::<u8>().prop_filter("no #", |b| *b != b'#'), 0..40), 0usize..12, any::<u16>()), 1..8),
            chunk in 1usize..300,
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (noise, n, seq) in &parts {
                input.extend_from_slice(noise);
                let samples: Vec<StreamSample> = (0..*n as u32).map(twc_sample).collect();
                let f = encode_twc_realtime_frame("LNGTRUCK000000001", t(2024, 3, 4, 5, 6, 7), *seq, &samples);
                expected.push((input.len() as u64, f.clone()));
                input.extend_from_slice(&f);
            }
            let (evs, _, _) = scan_all(&input, chunk);
            assert_coverage(&input, &evs);
            prop_assert_eq!(frames_of(&evs), expected);
        }

        /// Encoder/decoder round trip on quantised type-0x03 samples.
        #[test]
        fn twc_roundtrip(
            raws in prop::collection::vec((0u16..=0xFAFF, 0u8..=0xFA, 0u16..=0xFAFF, 0u8..=127, 0u32..=180_000_000, 0u32..=90_000_000, 0u32..=0xFAFF_FFFF, 0u8..8), 0..20),
            seq in any::<u16>(),
        ) {
            let samples: Vec<StreamSample> = raws.iter().map(|&(a, b, c, d, lon, lat, odo, st)| StreamSample {
                info_type: 3,
                collected_at: Some(t(2030, 12, 31, 23, 59, 59)),
                speed_kmh: Some(f64::from(a) * SPEED_SCALE),
                barometric_kpa: Some(f64::from(b) * 0.5),
                net_torque_pct: Some(f64::from(b) - 125.0),
                friction_torque_pct: Some(f64::from(b) - 125.0),
                engine_rpm: Some(f64::from(c) * 0.125),
                fuel_flow_lph: Some(f64::from(c) * 0.05),
                upstream_lambda: Some(f64::from(c) * LAMBDA_SCALE),
                rear_o2_v: Some(f64::from(d) * 0.01),
                intake_air_kgph: Some(f64::from(a) * 0.05),
                coolant_c: Some(f64::from(b) - 40.0),
                twc_temp_c: Some(f64::from(c) * TEMP_SCALE + TEMP_OFFSET),
                // Valid fixes only: an invalid one decodes without coordinates (not re-encodable).
                position_valid: Some(true),
                lon_deg: Some(f64::from(lon.max(1)) * DEG_SCALE * if st & 4 != 0 { -1.0 } else { 1.0 }),
                lat_deg: Some(f64::from(lat) * DEG_SCALE * if st & 2 != 0 && lat != 0 { -1.0 } else { 1.0 }),
                odometer_km: Some(f64::from(odo) * 0.1),
                ..Default::default()
            }).collect();
            let bytes = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, &samples);
            let f = decode_frame(&bytes).unwrap();
            let Body::Realtime { blocks, seq: got_seq, .. } = f.body else { panic!("not realtime") };
            prop_assert_eq!(got_seq, Some(seq));
            prop_assert_eq!(blocks.len(), samples.len());
            for (b, s) in blocks.iter().zip(&samples) {
                let InfoBlock::Stream(d) = b else { panic!("stream") };
                let again = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, std::slice::from_ref(d));
                let orig = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, std::slice::from_ref(s));
                prop_assert_eq!(again, orig);
            }
        }

        /// Bit flips and truncations of real frames never panic.
        #[test]
        fn mutated_real_frames_do_not_panic(which in 0usize..3, pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let f = unhex([HJ_FE, HJ_CARSIMU, GB_LOGIN][which]);
            let mut m = f.clone();
            let i = pos.index(m.len());
            m[i] = val;
            let _ = decode_frame(&m);
            let _ = decode_frame(&m[..cut.index(m.len())]);
            check_scan(&m, 13);
        }
    }

    fn serde_ok<T: Serialize>(_: &T) {}
}
