//! Incremental framing of a byte stream: push chunks, pull frames and rejected byte runs.

use crate::error::FrameError;
use crate::frame::{FRAME_OVERHEAD, HEADER_LEN, MAX_DATA_UNIT_LEN};
use crate::other_protocol::other_protocol;

/// A run of non-frame bytes is reported (as [`FrameError::NoFrameStart`]) at the latest when it
/// reaches this many bytes, which bounds the scanner's buffer.
pub const MAX_GARBAGE_RUN: usize = 64 * 1024;

/// What the scanner found; every pushed byte ends up in exactly one event, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEvent {
    /// A complete frame (`##`, length ≤ 65531, valid BCC); `offset` = stream offset of its
    /// first `#`. Not yet decoded: pass `bytes` to [`decode_frame`](crate::decode_frame).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::*;
    use proptest::prelude::*;
    use serde::Serialize;

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
