//! Recognisers for bytes of other protocols that reach an HJ 1239 input: GB/T 32960 (EV
//! frames, same `##` start) and JT/T 808 (0x7E-delimited), so they are rejected by name.

use crate::error::FrameError;
use crate::read::Rd;

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
pub(crate) fn gb32960_why(cmd: u8, flag: u8, d: &[u8]) -> Option<String> {
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
pub(crate) fn other_protocol(b: &[u8]) -> Option<FrameError> {
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

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

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
}
