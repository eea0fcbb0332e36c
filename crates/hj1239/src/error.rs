//! Why bytes were not decoded: [`FrameError`], with a quarantine message and a reason code.

use crate::frame::{Command, FRAME_OVERHEAD, HEADER_LEN, MAX_DATA_UNIT_LEN};
use serde::Serialize;
use std::fmt;

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
    /// More bytes than the declared length (for [`decode_frame`](crate::decode_frame) on a whole message).
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
