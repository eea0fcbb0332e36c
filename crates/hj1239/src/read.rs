//! Wire primitives: a bounds-checked big-endian reader, sentinel-aware scaled values (§1.8)
//! and text/hex fields.

use crate::time::FrameTime;

/// Bounds-checked big-endian reader; every accessor returns `None` past the end.
pub(crate) struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Rd { b, i: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.i)
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or(&[])
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.i.checked_add(n)?;
        let s = self.b.get(self.i..end)?;
        self.i = end;
        Some(s)
    }
    pub(crate) fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.i)?;
        self.i += 1;
        Some(v)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.arr::<2>().map(u16::from_be_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.arr::<4>().map(u32::from_be_bytes)
    }
    pub(crate) fn time(&mut self) -> Option<FrameTime> {
        self.arr::<6>().map(FrameTime::from_bytes)
    }
}

/// 1-byte value: `None` for raw > 0xFA (§1.8).
pub(crate) fn v1(raw: u8, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFA).then(|| f64::from(raw) * scale + offset)
}
/// 2-byte value: `None` for raw > 0xFAFF (§1.8).
pub(crate) fn v2(raw: u16, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFAFF).then(|| f64::from(raw) * scale + offset)
}
/// 4-byte value: `None` for raw > 0xFAFFFFFF (§1.8).
pub(crate) fn v4(raw: u32, scale: f64, offset: f64) -> Option<f64> {
    (raw <= 0xFAFF_FFFF).then(|| f64::from(raw) * scale + offset)
}

pub(crate) const SPEED_SCALE: f64 = 1.0 / 256.0;
pub(crate) const LAMBDA_SCALE: f64 = 0.000_030_5;
pub(crate) const TEMP_SCALE: f64 = 0.031_25;
pub(crate) const TEMP_OFFSET: f64 = -273.0;
pub(crate) const NOX_SCALE: f64 = 0.05;
pub(crate) const NOX_OFFSET: f64 = -200.0;
pub(crate) const DEG_SCALE: f64 = 1e-6;
/// Highest plausible rear-O2 raw value: 1.275 V / 0.01 (§1.8).
pub(crate) const REAR_O2_MAX_RAW: u8 = 127;

/// Text field: trailing NUL/space/0xFF removed; bytes outside printable ASCII become U+FFFD.
pub(crate) fn ascii_field(b: &[u8]) -> String {
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

pub(crate) fn hex_upper(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for &c in b {
        s.push(hex_digit(c >> 4));
        s.push(hex_digit(c));
    }
    s
}

/// Uppercase hex digit of the low nibble.
pub(crate) fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0F), 16).map_or('?', |c| c.to_ascii_uppercase())
}

pub(crate) fn is_vin_like(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_alphanumeric)
}
