//! Real-time (0x02) and resend (0x03) data units: the serial-number placements and
//! per-block times seen in the wild, SM2 signature parts, and the layout choice
//! (obd-remote-monitoring.md §1.4–§1.5).

use crate::blocks::{InfoBlock, decode_block};
use crate::error::FrameError;
use crate::frame::{Body, Command};
use crate::read::Rd;
use serde::Serialize;

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
pub(crate) fn exact_signature_len(b: &[u8]) -> Option<usize> {
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

pub(crate) fn decode_realtime(
    command: Command,
    d: &[u8],
    lenient: bool,
) -> Result<Body, FrameError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::TWC_BLOCK_LEN;
    use crate::testutil::*;
    use crate::*;

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
}
