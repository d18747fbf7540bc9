//! The framed code stream the device sends: one [`Frame`] per window.
//!
//! Wire format of one frame: `0x00`, COBS(`payload`), `0x00`, where
//! `payload = FRAME_VERSION ‖ postcard(Frame) ‖ CRC-32(FRAME_VERSION ‖ postcard(Frame))`
//! (CRC-32/ISO-HDLC, little-endian); version 1 frames (before the predicted activity)
//! still decode, with `activity` 0. COBS removes every zero byte from the payload, so
//! `0x00` only ever delimits frames; the *leading* delimiter flushes whatever garbage or
//! partial frame a receiver holds (a log line, a frame cut by a reset), so the next frame
//! is never lost to it. [`FrameDecoder`] splits a byte stream at the delimiters and keeps
//! only chunks whose COBS, CRC, postcard and field checks all pass.

use core::fmt;

pub use crate::crc::crc32;

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Most latent dimensions a frame carries (the encoder's `MAX_LATENT`).
pub const MAX_LATENT: usize = 64;
/// First payload byte; bump when [`Frame`] changes. Version 2 added `activity` and
/// `activity_score`.
pub const FRAME_VERSION: u8 = 2;

/// Largest postcard encoding of a [`Frame`]: varint u32 ×2 (5 each), flags and latent
/// dim (1 each), varint u64 (10), two sequences of 64 varint i16 (1 + 64 × 3 each), f32,
/// activity and its score (1 each).
pub const MAX_POSTCARD_LEN: usize = 5 + 5 + 1 + 1 + 10 + 2 * (1 + MAX_LATENT * 3) + 4 + 2;
/// Largest payload: version byte, postcard, CRC-32.
pub const MAX_PAYLOAD_LEN: usize = 1 + MAX_POSTCARD_LEN + 4;
/// Largest frame on the wire: COBS adds one byte per 254 plus one, and two delimiters.
pub const MAX_WIRE_LEN: usize = cobs_max_len(MAX_PAYLOAD_LEN) + 2;

/// Bits of [`Frame::flags`].
pub mod flags {
    /// At least one sensor read failed since the previous frame (the samples were
    /// skipped); with [`NO_CODE`], the sensor has failed for a whole hop.
    pub const SENSOR_ERROR: u8 = 1 << 0;
    /// At least one sample with a NaN or infinite value was rejected since the previous
    /// frame.
    pub const NON_FINITE: u8 = 1 << 1;
    /// At least one sample since the previous frame was at the end of the sensor's range.
    pub const SATURATED: u8 = 1 << 2;
    /// The encoder rejected the window; the frame carries no code.
    pub const ENCODER_ERROR: u8 = 1 << 3;
    /// The frame carries no code (spike bits 0, no γ, no μ).
    pub const NO_CODE: u8 = 1 << 4;
    /// At least one sample since the previous frame came with a timestamp not after the
    /// previous sample's and was dropped (only sources with their own clock: phones).
    pub const TIMESTAMP: u8 = 1 << 5;
    /// Names, for display, in bit order.
    pub const NAMES: [&str; 6] = [
        "sensor",
        "nonfinite",
        "saturated",
        "encoder",
        "nocode",
        "timestamp",
    ];
}

/// One window's sparse code as sent over the wire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Frame {
    /// Frame counter since start-up (wraps); gaps reveal lost frames.
    pub sequence: u32,
    /// Stream time when the window completed: samples elapsed (read or failed) × 20 ms.
    pub timestamp_ms: u32,
    /// See [`flags`].
    pub flags: u8,
    /// J, the number of latent dimensions of the model.
    pub latent_dim: u8,
    /// Bit *j* set ⇔ γ_j > ½ (dimension *j* is active).
    pub spike_bits: u64,
    /// γ of the active dimensions in ascending order, Q15 (γ = value / 32768).
    pub gamma_q15: Vec<i16, MAX_LATENT>,
    /// Slab mean μ of the active dimensions in ascending order, in units of `mu_scale`.
    pub mu_q: Vec<i16, MAX_LATENT>,
    /// μ = `mu_q` × `mu_scale`.
    pub mu_scale: f32,
    /// Predicted activity class (the model's class id, 1..=6 for HAR), from the blob's
    /// activity head; 0 when the model has no head or the frame no code.
    pub activity: u8,
    /// Confidence of the prediction: the margin of the predicted class's logit over the
    /// runner-up's, in units of [`crate::blob::SCORE_SCALE`] nats, saturated to 0..=127
    /// (see [`crate::blob::ActivityHead`]); 0 when `activity` is 0.
    pub activity_score: i8,
}

/// A version 1 frame (before the activity fields), decoded for old recordings.
#[derive(Deserialize)]
struct FrameV1 {
    sequence: u32,
    timestamp_ms: u32,
    flags: u8,
    latent_dim: u8,
    spike_bits: u64,
    gamma_q15: Vec<i16, MAX_LATENT>,
    mu_q: Vec<i16, MAX_LATENT>,
    mu_scale: f32,
}

impl From<FrameV1> for Frame {
    fn from(v1: FrameV1) -> Frame {
        Frame {
            sequence: v1.sequence,
            timestamp_ms: v1.timestamp_ms,
            flags: v1.flags,
            latent_dim: v1.latent_dim,
            spike_bits: v1.spike_bits,
            gamma_q15: v1.gamma_q15,
            mu_q: v1.mu_q,
            mu_scale: v1.mu_scale,
            activity: 0,
            activity_score: 0,
        }
    }
}

impl Frame {
    /// A frame without a code, e.g. after the sensor failed for a whole hop.
    pub fn without_code(sequence: u32, timestamp_ms: u32, flags: u8, latent_dim: u8) -> Frame {
        Frame {
            sequence,
            timestamp_ms,
            flags: flags | self::flags::NO_CODE,
            latent_dim,
            spike_bits: 0,
            gamma_q15: Vec::new(),
            mu_q: Vec::new(),
            mu_scale: 0.0,
            activity: 0,
            activity_score: 0,
        }
    }

    /// The active dimensions with γ and μ in real units.
    pub fn active(&self) -> impl Iterator<Item = (usize, f32, f32)> + '_ {
        let dims = (0..64usize).filter(move |&j| self.spike_bits >> j & 1 == 1);
        dims.zip(self.gamma_q15.iter().zip(self.mu_q.iter()))
            .map(|(j, (&g, &m))| (j, f32::from(g) / 32768.0, f32::from(m) * self.mu_scale))
    }

    /// The field invariants a decoded frame must satisfy.
    fn check(&self) -> Result<(), DecodeError> {
        let active = self.spike_bits.count_ones() as usize;
        let dims_ok = usize::from(self.latent_dim) <= MAX_LATENT
            && (self.latent_dim >= 64 || self.spike_bits >> self.latent_dim == 0);
        if !dims_ok || self.gamma_q15.len() != active || self.mu_q.len() != active {
            return Err(DecodeError::Inconsistent);
        }
        Ok(())
    }

    /// Writes the frame in wire format (both delimiters included) into `out`; returns the
    /// number of bytes written. `out` of [`MAX_WIRE_LEN`] bytes always suffices.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut payload = [0u8; MAX_PAYLOAD_LEN];
        payload[0] = FRAME_VERSION;
        let body_len = postcard::to_slice(self, &mut payload[1..MAX_PAYLOAD_LEN - 4])
            .map_err(|_| EncodeError::TooLarge)?
            .len();
        let crc = crc32(&payload[..1 + body_len]);
        payload[1 + body_len..1 + body_len + 4].copy_from_slice(&crc.to_le_bytes());
        let payload = &payload[..1 + body_len + 4];
        if out.len() < cobs_max_len(payload.len()) + 2 {
            return Err(EncodeError::BufferTooSmall);
        }
        out[0] = 0;
        let n = cobs_encode(payload, &mut out[1..]);
        out[1 + n] = 0;
        Ok(n + 2)
    }

    /// Decodes one COBS chunk (the bytes between two delimiters, none of them zero).
    pub fn decode_chunk(chunk: &[u8]) -> Result<Frame, DecodeError> {
        let mut payload = [0u8; MAX_PAYLOAD_LEN];
        let len = cobs_decode(chunk, &mut payload)?;
        if len < 1 + 4 {
            return Err(DecodeError::Truncated);
        }
        let (body, crc) = payload[..len].split_at(len - 4);
        if crc32(body).to_le_bytes() != crc {
            return Err(DecodeError::Crc);
        }
        let (frame, rest) = match body[0] {
            FRAME_VERSION => postcard::take_from_bytes::<Frame>(&body[1..]),
            1 => postcard::take_from_bytes::<FrameV1>(&body[1..]).map(|(f, r)| (f.into(), r)),
            version => return Err(DecodeError::Version { version }),
        }
        .map_err(|_| DecodeError::Postcard)?;
        if !rest.is_empty() {
            return Err(DecodeError::Postcard);
        }
        frame.check()?;
        Ok(frame)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The frame does not fit [`MAX_POSTCARD_LEN`] (cannot happen with valid fields).
    TooLarge,
    /// The output buffer is shorter than the encoded frame.
    BufferTooSmall,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge => write!(
                f,
                "frame: postcard encoding exceeds {MAX_POSTCARD_LEN} bytes"
            ),
            EncodeError::BufferTooSmall => write!(f, "frame: output buffer too small"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why a chunk between delimiters is not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The COBS code bytes point past the end of the chunk.
    Cobs,
    /// More bytes than the largest frame before a delimiter.
    TooLong,
    /// Too short to hold version and CRC.
    Truncated,
    Crc,
    Version {
        version: u8,
    },
    /// CRC matched but postcard could not read a frame (or left bytes over).
    Postcard,
    /// Spike bits, latent dim and γ/μ lengths disagree.
    Inconsistent,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Cobs => write!(f, "frame: invalid COBS encoding"),
            DecodeError::TooLong => write!(f, "frame: longer than {MAX_WIRE_LEN} bytes"),
            DecodeError::Truncated => write!(f, "frame: truncated"),
            DecodeError::Crc => write!(f, "frame: CRC mismatch"),
            DecodeError::Version { version } => {
                write!(f, "frame: version {version}, expected 1..={FRAME_VERSION}")
            }
            DecodeError::Postcard => write!(f, "frame: fields do not decode"),
            DecodeError::Inconsistent => {
                write!(
                    f,
                    "frame: spike bits disagree with latent dim or γ/μ counts"
                )
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Splits a byte stream at `0x00` and decodes each chunk; fixed buffer, no heap.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    buffer: [u8; MAX_WIRE_LEN],
    len: usize,
    /// The current chunk outgrew the buffer; drop it at the next delimiter.
    overflow: bool,
    /// Frames decoded.
    pub frames: u64,
    /// Non-empty chunks rejected (garbage, truncated or corrupted frames).
    pub rejected_chunks: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    pub const fn new() -> Self {
        FrameDecoder {
            buffer: [0; MAX_WIRE_LEN],
            len: 0,
            overflow: false,
            frames: 0,
            rejected_chunks: 0,
        }
    }

    /// Feeds one byte; at a delimiter ending a non-empty chunk, returns the chunk's result.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, DecodeError>> {
        if byte != 0 {
            if self.len < self.buffer.len() {
                self.buffer[self.len] = byte;
                self.len += 1;
            } else {
                self.overflow = true;
            }
            return None;
        }
        let (len, overflow) = (self.len, self.overflow);
        self.len = 0;
        self.overflow = false;
        let result = if overflow {
            Err(DecodeError::TooLong)
        } else if len == 0 {
            return None;
        } else {
            Frame::decode_chunk(&self.buffer[..len])
        };
        match result {
            Ok(_) => self.frames += 1,
            Err(_) => self.rejected_chunks += 1,
        }
        Some(result)
    }

    /// Feeds a slice and calls `on_frame` for every valid frame, in order.
    pub fn feed(&mut self, bytes: &[u8], mut on_frame: impl FnMut(Frame)) {
        for &b in bytes {
            if let Some(Ok(frame)) = self.push(b) {
                on_frame(frame);
            }
        }
    }
}

/// Bytes COBS needs at most for `n` input bytes (without delimiters).
pub const fn cobs_max_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// COBS-encodes `input` into `out` (at least [`cobs_max_len`] bytes); returns the length.
/// The output holds no zero byte.
pub fn cobs_encode(input: &[u8], out: &mut [u8]) -> usize {
    // Each block: a code byte = 1 + number of non-zero bytes that follow it (≤ 254); a
    // code below 0xFF stands for those bytes and then a zero.
    let mut code_at = 0;
    let mut written = 1;
    let mut code: u8 = 1;
    for &byte in input {
        if byte == 0 {
            out[code_at] = code;
            code_at = written;
            written += 1;
            code = 1;
        } else {
            out[written] = byte;
            written += 1;
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = written;
                written += 1;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    written
}

/// Inverse of [`cobs_encode`]; `input` must not contain the delimiter.
pub fn cobs_decode(input: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut read = 0;
    let mut written = 0;
    while read < input.len() {
        let code = input[read];
        if code == 0 {
            return Err(DecodeError::Cobs);
        }
        read += 1;
        let run = usize::from(code) - 1;
        let block = input.get(read..read + run).ok_or(DecodeError::Cobs)?;
        out.get_mut(written..written + run)
            .ok_or(DecodeError::TooLong)?
            .copy_from_slice(block);
        read += run;
        written += run;
        if code != 0xFF && read < input.len() {
            *out.get_mut(written).ok_or(DecodeError::TooLong)? = 0;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn frame(sequence: u32, active: &[usize]) -> Frame {
        let mut f = Frame {
            sequence,
            timestamp_ms: sequence.wrapping_mul(1280),
            flags: (sequence % 8) as u8,
            latent_dim: 32,
            spike_bits: 0,
            gamma_q15: heapless::Vec::new(),
            mu_q: heapless::Vec::new(),
            mu_scale: 0.01,
            activity: (sequence % 7) as u8,
            activity_score: (sequence % 256) as u8 as i8,
        };
        for &j in active {
            f.spike_bits |= 1 << j;
        }
        for (k, _) in active.iter().enumerate() {
            f.gamma_q15.push(16384 + k as i16 * 100).unwrap();
            f.mu_q.push(-300 + k as i16 * 77).unwrap();
        }
        f
    }

    fn wire(f: &Frame) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn cobs_known_vectors() {
        let cases: [(&[u8], &[u8]); 4] = [
            (&[0x00], &[0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, encoded) in cases {
            let mut out = [0u8; 16];
            let n = cobs_encode(raw, &mut out);
            assert_eq!(&out[..n], encoded);
            let mut back = [0u8; 16];
            let m = cobs_decode(encoded, &mut back).unwrap();
            assert_eq!(&back[..m], raw);
        }
        assert_eq!(
            cobs_decode(&[0x05, 1, 2], &mut [0u8; 8]),
            Err(DecodeError::Cobs)
        );
    }

    proptest! {
        #[test]
        fn cobs_round_trips(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            let mut out = std::vec![0u8; cobs_max_len(data.len())];
            let n = cobs_encode(&data, &mut out);
            prop_assert!(!out[..n].contains(&0));
            let mut back = std::vec![0u8; data.len() + 1];
            let m = cobs_decode(&out[..n], &mut back).unwrap();
            prop_assert_eq!(&back[..m], &data[..]);
        }

        #[test]
        fn decoding_arbitrary_chunks_never_panics(data in proptest::collection::vec(1u8..=255, 0..600)) {
            let _ = Frame::decode_chunk(&data);
        }
    }

    #[test]
    fn frame_round_trips_including_the_largest() {
        let all: Vec<usize> = (0..64).collect();
        let mut big = frame(u32::MAX, &all);
        big.latent_dim = 64;
        big.timestamp_ms = u32::MAX;
        for g in big.gamma_q15.iter_mut() {
            *g = i16::MIN;
        }
        for m in big.mu_q.iter_mut() {
            *m = i16::MIN;
        }
        let bytes = wire(&big);
        assert!(bytes.len() <= MAX_WIRE_LEN);
        assert_eq!((bytes[0], bytes[bytes.len() - 1]), (0, 0));
        assert!(!bytes[1..bytes.len() - 1].contains(&0));
        assert_eq!(Frame::decode_chunk(&bytes[1..bytes.len() - 1]), Ok(big));

        let small = frame(7, &[1, 5, 30]);
        let bytes = wire(&small);
        let decoded = Frame::decode_chunk(&bytes[1..bytes.len() - 1]).unwrap();
        assert_eq!(decoded, small);
        let active: Vec<_> = decoded.active().collect();
        assert_eq!(active.len(), 3);
        assert_eq!(active[1].0, 5);
        assert!((active[0].1 - 0.5).abs() < 1e-6);
        assert!((active[0].2 + 3.0).abs() < 1e-6);

        let none = Frame::without_code(3, 10, flags::SENSOR_ERROR, 32);
        assert_eq!(
            Frame::decode_chunk(&wire(&none)[1..]).ok(),
            None,
            "delimiter inside"
        );
        let w = wire(&none);
        assert_eq!(Frame::decode_chunk(&w[1..w.len() - 1]), Ok(none));
    }

    #[test]
    fn corrupted_and_inconsistent_frames_are_rejected() {
        let f = frame(9, &[0, 2]);
        let w = wire(&f);
        let chunk = &w[1..w.len() - 1];
        // Every single-byte corruption that keeps the chunk zero-free must be caught.
        for i in 0..chunk.len() {
            let mut bad = chunk.to_vec();
            bad[i] = if bad[i] == 0xFF { 1 } else { bad[i] + 1 };
            assert!(
                Frame::decode_chunk(&bad).is_err(),
                "corruption at {i} accepted"
            );
        }
        for cut in 1..chunk.len() {
            assert!(
                Frame::decode_chunk(&chunk[..cut]).is_err(),
                "cut at {cut} accepted"
            );
        }
        // A frame whose counts disagree with its spike bits, with a valid CRC.
        let mut bad = f.clone();
        bad.spike_bits |= 1 << 40;
        assert_eq!(
            Frame::decode_chunk(&wire(&bad)[1..wire(&bad).len() - 1]),
            Err(DecodeError::Inconsistent)
        );
    }

    #[test]
    fn every_valid_frame_is_recovered_from_garbage() {
        // Random bytes (zeros included), truncated frames and corrupted frames between
        // valid ones; a fixed-seed generator keeps the test reproducible.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        for seq in 0..300u32 {
            let garbage = (next() % 60) as usize;
            for _ in 0..garbage {
                stream.push(next() as u8);
            }
            let active: Vec<usize> = (0..32).filter(|_| next() % 4 == 0).collect();
            let f = frame(seq, &active);
            let w = wire(&f);
            match next() % 5 {
                // A truncated copy first: its missing end delimiter is supplied by the
                // real frame's leading delimiter.
                0 => stream.extend_from_slice(&w[..w.len() / 2]),
                // A corrupted copy.
                1 => {
                    let mut bad = w.clone();
                    let i = 1 + (next() as usize % (w.len() - 2));
                    bad[i] = bad[i].wrapping_add(1).max(1);
                    stream.extend_from_slice(&bad);
                }
                _ => {}
            }
            stream.extend_from_slice(&w);
            sent.push(f);
        }
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        // Feed in odd-sized pieces, as a serial port delivers them.
        for piece in stream.chunks(37) {
            decoder.feed(piece, |f| got.push(f));
        }
        assert_eq!(got.len(), sent.len());
        assert_eq!(got, sent);
        assert!(decoder.rejected_chunks > 0);
    }

    /// A recording made by version 1 firmware (no activity fields) still decodes.
    #[test]
    fn version_1_frames_decode_with_no_activity() {
        #[derive(Serialize)]
        struct V1<'a> {
            sequence: u32,
            timestamp_ms: u32,
            flags: u8,
            latent_dim: u8,
            spike_bits: u64,
            gamma_q15: &'a [i16],
            mu_q: &'a [i16],
            mu_scale: f32,
        }
        let f = frame(12, &[4, 9]);
        let mut body = [0u8; MAX_POSTCARD_LEN];
        let body_len = postcard::to_slice(
            &V1 {
                sequence: f.sequence,
                timestamp_ms: f.timestamp_ms,
                flags: f.flags,
                latent_dim: f.latent_dim,
                spike_bits: f.spike_bits,
                gamma_q15: &f.gamma_q15,
                mu_q: &f.mu_q,
                mu_scale: f.mu_scale,
            },
            &mut body,
        )
        .unwrap()
        .len();
        let mut payload = std::vec![1u8];
        payload.extend_from_slice(&body[..body_len]);
        payload.extend(crc32(&payload).to_le_bytes());
        let mut chunk = std::vec![0u8; cobs_max_len(payload.len())];
        let n = cobs_encode(&payload, &mut chunk);
        let decoded = Frame::decode_chunk(&chunk[..n]).unwrap();
        assert_eq!(
            decoded,
            Frame {
                activity: 0,
                activity_score: 0,
                ..f
            }
        );
        // An unknown version is named.
        payload[0] = 9;
        let len = payload.len();
        let crc = crc32(&payload[..len - 4]);
        payload[len - 4..].copy_from_slice(&crc.to_le_bytes());
        let n = cobs_encode(&payload, &mut chunk);
        assert_eq!(
            Frame::decode_chunk(&chunk[..n]),
            Err(DecodeError::Version { version: 9 })
        );
    }

    #[test]
    fn overlong_chunks_are_dropped() {
        let mut decoder = FrameDecoder::new();
        let mut results = Vec::new();
        for _ in 0..3 * MAX_WIRE_LEN {
            if let Some(r) = decoder.push(0x55) {
                results.push(r);
            }
        }
        assert!(results.is_empty());
        assert_eq!(decoder.push(0), Some(Err(DecodeError::TooLong)));
        let w = wire(&frame(1, &[3]));
        let mut got = Vec::new();
        decoder.feed(&w, |f| got.push(f));
        assert_eq!(got, [frame(1, &[3])]);
    }
}
