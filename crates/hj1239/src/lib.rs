//! Sans-IO decoder for HJ 1239.3-2021 / GB 17691-2018 Annex Q remote-monitoring frames
//! (terminal → platform), as specified in `obd-remote-monitoring.md` §1: bytes in, frames out,
//! no sockets, no files, no clocks.
//!
//! Decoding one real frame (the logout of test vector `hj_logout_LG6ZDANH7EY208182`, the frame
//! in the README's `plumewatch inspect-frame` example):
//!
//! ```
//! use hj1239::{Body, Command, HeaderStyle, decode_frame};
//!
//! let hex = "2323044C47365A44414E4837455932303831383202010008140911132e34001A5E";
//! let bytes: Vec<u8> = (0..hex.len())
//!     .step_by(2)
//!     .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
//!     .collect();
//!
//! // ## | 04 logout | VIN (17) | version 02 | encryption 01 "none" | length 0008 | data | BCC 5E
//! let frame = decode_frame(&bytes)?;
//! assert_eq!(frame.command, Command::Logout);
//! assert_eq!(frame.vin, "LG6ZDANH7EY208182");
//! assert_eq!(frame.header, HeaderStyle::Hj1239);
//! assert_eq!(frame.software_version, Some(0x02));
//! let Body::Logout { time, seq } = frame.body else { panic!("not a logout") };
//! // Time bytes 14 09 11 13 2E 34 are binary, not BCD: 2020-09-17 19:46:52 (Beijing time).
//! assert_eq!(time.to_string(), "2020-09-17 19:46:52");
//! assert_eq!(time.unix_ms_utc8(), Some(1_600_343_212_000)); // 11:46:52 UTC
//! assert_eq!(seq, 0x1A);
//!
//! // The same bytes in a stream, between noise: the scanner cuts them out and names the rest.
//! use hj1239::{FrameScanner, ScanEvent};
//! let mut scanner = FrameScanner::new();
//! scanner.push(b"noise");
//! scanner.push(&bytes);
//! let mut events = Vec::new();
//! while let Some(ev) = scanner.finish() {
//!     events.push(ev);
//! }
//! assert!(matches!(&events[0], ScanEvent::Rejected { offset: 0, reason, .. }
//!     if reason.reason_code() == "no_frame_start"));
//! assert!(matches!(&events[1], ScanEvent::Frame { offset: 5, bytes: b, .. } if *b == bytes));
//!
//! // One flipped bit fails the BCC (XOR from the command byte to the byte before the BCC).
//! let mut bad = bytes.clone();
//! bad[30] ^= 0x01;
//! let err = decode_frame(&bad).unwrap_err();
//! assert_eq!(err.reason_code(), "bad_bcc");
//! assert_eq!(err.to_string(), "bad BCC: computed 0x5F, frame has 0x5E");
//! # Ok::<(), hj1239::FrameError>(())
//! ```
//!
//! A real-time frame (test vector `hj_carsimu_LGDCHA1G8MA127733`): an OBD block with ISO/UDS
//! DTCs, then a diesel data-stream block whose SCR temperatures carry the 0xFEFF "invalid"
//! marker:
//!
//! ```
//! use hj1239::{Body, InfoBlock, SerialLayout, decode_frame};
//!
//! let hex = [
//!     "2323024c47444348413147384d41313237373333010100ad15080e082f230100010100abdea9d64c",
//!     "47444348413147384d4131323737333359435933303136352d363020202020200000ec40a1bf0000",
//!     "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
//!     "000000000000000007145600afe00200afe06200afe00900af204700af245500afe01200af020001",
//!     "0000c57d830000000000000000610000fefffefffeff3d000006afd31701ea55fe000000289f",
//! ]
//! .concat();
//! let bytes: Vec<u8> = (0..hex.len())
//!     .step_by(2)
//!     .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
//!     .collect();
//! let frame = decode_frame(&bytes)?;
//! let Body::Realtime { sent_at, seq, blocks, serial_layout, .. } = &frame.body else {
//!     panic!("not real-time data")
//! };
//! assert_eq!(sent_at.to_string(), "2021-08-14 08:47:35");
//! // This terminal puts the serial number after each info type, not once per frame.
//! assert_eq!((*serial_layout, *seq), (SerialLayout::AfterEachInfoType, Some(1)));
//! let InfoBlock::Obd(obd) = &blocks[0] else { panic!("OBD block first") };
//! assert_eq!(obd.protocol, Some(1)); // ISO 27145
//! assert_eq!(obd.calibration_id, "YCY30165-60");
//! assert_eq!(obd.dtcs, ["P1456", "U2002", "U2062", "U2009", "P2047", "P2455", "U2012"]);
//! let InfoBlock::Stream(s) = &blocks[1] else { panic!("data stream second") };
//! assert_eq!((s.scr_in_temp_c, s.scr_out_temp_c), (None, None)); // FE FF: invalid
//! # Ok::<(), hj1239::FrameError>(())
//! ```
//!
//! # Parts
//! * [`FrameScanner`] cuts an arbitrary byte stream into candidate frames (`##` start,
//!   25-byte overhead, BCC check) and reports everything else as rejected byte runs
//!   ([`ScanEvent`]); push chunks as they arrive, pull events, call `finish` at end of input.
//! * [`decode_frame`] decodes one complete frame into a [`Frame`]: header, command, and the data
//!   unit as a [`Body`]; real-time data units hold [`InfoBlock`]s ([`ObdReport`] with [`Dtc`]s,
//!   [`StreamSample`], [`HybridSample`], [`SupplementarySample`]); times are [`FrameTime`]s.
//! * [`encode_frame`] and [`encode_twc_realtime_frame`] build frames, for tests and fleet
//!   generators.
//!
//! # Errors
//! Every rejection is a [`FrameError`] whose `Display` says which check failed and with which
//! values, and whose [`FrameError::reason_code`] is a short snake_case code. Bytes of other
//! protocols are named: GB/T 32960 frames ([`FrameError::Gb32960`]) and JT/T 808 messages
//! ([`FrameError::OtherProtocol`]).
//!
//! No I/O, no `unsafe`, no panics on input-derived data; every allocation is bounded by
//! the input size (a frame is at most [`MAX_FRAME_LEN`] bytes).
//!
//! # Findings that shaped the decoder
//! From the public test vectors (`shared/data/frames/remote_frames.tsv`):
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
//!
//! # Modules (private; everything is re-exported here)
//! `scanner` (stream framing), `frame` (header, commands, [`decode_frame`]), `realtime`
//! (serial layouts, signature parts, layout choice), `blocks` (info blocks), `dtc`, `time`,
//! `other_protocol` (GB/T 32960 and JT/T 808 recognisers), `read` (bounds-checked wire
//! reader), `encode` (test encoder), `error`.

#![forbid(unsafe_code)]

mod blocks;
mod dtc;
mod encode;
mod error;
mod frame;
mod other_protocol;
mod read;
mod realtime;
mod scanner;
#[cfg(test)]
mod testutil;
mod time;

pub use blocks::{HybridSample, InfoBlock, ObdReport, StreamSample, SupplementarySample};
pub use dtc::Dtc;
pub use encode::{encode_frame, encode_twc_realtime_frame, encode_twc_realtime_frame_signed};
pub use error::FrameError;
pub use frame::{
    Body, Command, FRAME_OVERHEAD, Frame, HEADER_LEN, HeaderStyle, MAX_DATA_UNIT_LEN,
    MAX_FRAME_LEN, decode_frame,
};
pub use realtime::SerialLayout;
pub use scanner::{FrameScanner, MAX_GARBAGE_RUN, ScanEvent};
pub use time::FrameTime;
