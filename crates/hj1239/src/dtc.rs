//! Diagnostic trouble codes: the 4 wire bytes read by OBD protocol (ISO 15765 / ISO 27145 as
//! UDS DTCs, SAE J1939 as SPN/FMI), obd-remote-monitoring.md §1.6.

use crate::read::hex_digit;
use serde::Serialize;

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

/// Decode one 4-byte DTC by OBD protocol byte (§1.6): 0/1 (ISO 15765 / ISO 27145) as a 3-byte
/// UDS DTC + status byte, 2 (J1939) as SPN/FMI/CM/OC, otherwise raw hex.
pub(crate) fn decode_dtc(protocol: Option<u8>, b: [u8; 4]) -> Dtc {
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

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

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
}
