//! The frame: header constants, command, header style and the decoded [`Frame`], and
//! [`decode_frame`], which checks framing and BCC and decodes the data unit by command
//! (obd-remote-monitoring.md §1.2–§1.4).

use crate::blocks::{InfoBlock, decode_position};
use crate::error::FrameError;
use crate::other_protocol::{gb32960_why, other_protocol};
use crate::read::{Rd, ascii_field, hex_upper, is_vin_like};
use crate::realtime::{SerialLayout, decode_realtime, exact_signature_len};
use crate::time::FrameTime;
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

/// Decode one complete frame (as found by [`FrameScanner`](crate::FrameScanner), or given whole, e.g. one Kafka
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::*;

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
}
