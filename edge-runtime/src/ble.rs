//! The BLE transport contract shared by the firmware (GATT server) and the host
//! (`vsc listen --ble`): service and characteristic UUIDs, the advertised name, the
//! advertising payloads, and how one wire frame is cut into notifications.
//!
//! # GATT layout
//! One primary service [`SERVICE_UUID`] with one characteristic [`NOTIFY_CHAR_UUID`]
//! (properties: notify only). Its notifications carry the byte stream of
//! [`Frame::encode`](crate::frame::Frame::encode), `0x00 ‖ COBS(payload) ‖ 0x00` per frame,
//! the same bytes the USB CDC-ACM serial port carries; nothing else is ever written to it.
//! The UUIDs are random (version 4) with one 16-bit slot varied, the way vendor bases are
//! usually laid out: `da2fXXXX-240c-44e3-b8d1-a97196e42265` with `XXXX` = `0001` for the
//! service and `0002` for the characteristic. As `u128` they go unchanged into
//! `uuid::Uuid::from_u128` (host) and trouble-host's `Uuid::from(u128)` (device), both of
//! which put them on air little-endian ([`SERVICE_UUID_LE`]).
//!
//! # Advertising
//! The name is [`DEVICE_NAME_PREFIX`] followed by 6 upper-case hex digits of the low 24
//! bits of the nRF FICR `DEVICEID` ([`device_name`]), e.g. `VSC-1A2B3C`: unique enough to
//! tell the boards on one desk apart, short enough to fit. A legacy advertising PDU holds
//! 31 bytes: flags (3) + the 128-bit service UUID (18) + the name (12) would be 33, so
//! [`advertising_data`] carries flags and name, and [`scan_response_data`] the service UUID
//! (hosts scan actively by default, BlueZ included, so they see both).
//!
//! # Segmentation: no segment header
//! A notification carries at most `ATT_MTU − 3` bytes ([`notification_payload_len`]), so a
//! frame longer than that (up to [`MAX_WIRE_LEN`], about 420 bytes, with 64 active dimensions)
//! is cut by [`segments`] into consecutive pieces of exactly that length (the last one
//! shorter), and the host concatenates what arrives and splits it with the same
//! [`FrameDecoder`] the serial path uses ([`Reassembler`]). No header is added, because the
//! wire format already provides what one would:
//! - *Frame boundaries*: `0x00` occurs only as a delimiter, and each frame brings its own
//!   leading and trailing one.
//! - *Detecting a lost or repeated piece*: a chunk with bytes missing or repeated fails the
//!   CRC-32 (or COBS, or the field checks) and is rejected as a whole.
//! - *Containment*: segments never span two frames, so a lost notification removes bytes of
//!   one frame only. If it held the frame's trailing delimiter, the next frame's leading
//!   delimiter ends the damaged chunk; if it held the leading one, the previous frame's
//!   trailing delimiter already ended the previous chunk. Either way the next frame starts
//!   with an empty decoder, so a loss costs at most the frame it belonged to (tested below
//!   by dropping, in turn, each notification of streams of 10 frame sizes at every MTU
//!   from 23 to 247, and by random loss and repeats at random MTUs).
//!
//! A header (say a frame counter and a segment index) would only let the host drop a
//! damaged frame one notification earlier, at 1–2 bytes per notification (5–10 % at the
//! minimum MTU), and would make the BLE byte stream differ from the serial one. A host that
//! connects in the middle of a frame sees a partial chunk, which is rejected like any other.
//! The link layer acknowledges and retransmits notifications, so in practice loss comes
//! from a full transmit queue on the device or the host; a repeated notification is only
//! conceivable in a host stack bug. The reassembler still handles both: a repeated middle
//! piece makes its frame fail the CRC; a frame that fits one notification and arrives twice
//! is reported once (identical consecutive frames are dropped, which a device never sends,
//! since every frame has a new sequence number).
//!
//! Device side, per frame:
//! ```ignore
//! let n = frame.encode(&mut wire)?;
//! for piece in ble::segments(&wire[..n], att_mtu) {
//!     // On error, skip the rest of this frame: the next one resynchronises by itself.
//!     if notify_char.notify_raw(&conn, piece, false).await.is_err() { break; }
//! }
//! ```
//! Host side: `reassembler.push_notification(&value, |frame| show(frame))` per notification.

use core::slice::Chunks;

use heapless::{String, Vec};

#[cfg(doc)]
use crate::frame::MAX_WIRE_LEN;
use crate::frame::{Frame, FrameDecoder};

/// The VSC code service.
pub const SERVICE_UUID: u128 = 0xda2f_0001_240c_44e3_b8d1_a971_96e4_2265;
/// Its notify characteristic: the framed code stream.
pub const NOTIFY_CHAR_UUID: u128 = 0xda2f_0002_240c_44e3_b8d1_a971_96e4_2265;
/// [`SERVICE_UUID`] in the usual text form (for GATT macros that take a string).
pub const SERVICE_UUID_STR: &str = "da2f0001-240c-44e3-b8d1-a97196e42265";
/// [`NOTIFY_CHAR_UUID`] in the usual text form.
pub const NOTIFY_CHAR_UUID_STR: &str = "da2f0002-240c-44e3-b8d1-a97196e42265";
/// [`SERVICE_UUID`] in over-the-air (little-endian) byte order, as advertised.
pub const SERVICE_UUID_LE: [u8; 16] = SERVICE_UUID.to_le_bytes();

/// Every VSC device's advertised name starts with this.
pub const DEVICE_NAME_PREFIX: &str = "VSC-";
/// Hex digits of the device id in the name.
pub const DEVICE_ID_HEX_DIGITS: usize = 6;
/// Length of an advertised name in bytes.
pub const DEVICE_NAME_LEN: usize = DEVICE_NAME_PREFIX.len() + DEVICE_ID_HEX_DIGITS;
/// An advertised name, e.g. `VSC-1A2B3C`.
pub type DeviceName = String<DEVICE_NAME_LEN>;

/// Smallest ATT MTU (every link supports it without negotiation).
pub const ATT_MTU_MIN: u16 = 23;
/// Largest ATT MTU the specification allows.
pub const ATT_MTU_MAX: u16 = 517;
/// ATT notification header: opcode (1) and attribute handle (2).
pub const ATT_NOTIFY_HEADER_LEN: usize = 3;
/// An attribute value is at most 512 bytes, whatever the MTU.
pub const MAX_ATTRIBUTE_LEN: usize = 512;
/// Bytes of a legacy advertising or scan response payload.
pub const ADV_PAYLOAD_LEN: usize = 31;

/// AD types (Bluetooth Assigned Numbers, "Common Data Types").
const AD_FLAGS: u8 = 0x01;
const AD_COMPLETE_UUID128_LIST: u8 = 0x07;
const AD_COMPLETE_LOCAL_NAME: u8 = 0x09;
/// LE General Discoverable Mode | BR/EDR Not Supported.
const FLAGS_LE_GENERAL_DISCOVERABLE_NO_BREDR: u8 = 0x06;

const _: () = assert!(3 + 2 + DEVICE_NAME_LEN <= ADV_PAYLOAD_LEN);
const _: () = assert!(2 + 16 <= ADV_PAYLOAD_LEN);

/// The advertised name of the device whose nRF FICR `DEVICEID` is `device_id`
/// (`DEVICEID[1] << 32 | DEVICEID[0]`; only the low 24 bits are used).
pub fn device_name(device_id: u64) -> DeviceName {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut name = DeviceName::new();
    // Capacity is exactly prefix + digits, so neither push can fail.
    let _ = name.push_str(DEVICE_NAME_PREFIX);
    for k in (0..DEVICE_ID_HEX_DIGITS).rev() {
        let nibble = (device_id >> (4 * k)) & 0xF;
        let _ = name.push(char::from(HEX[nibble as usize]));
    }
    name
}

/// The 24-bit device id in an advertised name (`VSC-` and exactly 6 hex digits, either
/// case); `None` for any other name.
pub fn parse_device_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(DEVICE_NAME_PREFIX)?;
    if digits.len() != DEVICE_ID_HEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// A Bluetooth device address written `AA:BB:CC:DD:EE:FF` (either case), most significant
/// byte first as printed; `None` for anything else.
pub fn parse_address(text: &str) -> Option<[u8; 6]> {
    let mut address = [0u8; 6];
    let mut parts = text.split(':');
    for byte in address.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(address)
}

/// The advertising payload: flags and the complete local name (at most
/// [`DEVICE_NAME_LEN`] bytes of it are used).
pub fn advertising_data(name: &str) -> Vec<u8, ADV_PAYLOAD_LEN> {
    let name = &name.as_bytes()[..name.len().min(DEVICE_NAME_LEN)];
    let mut data = Vec::new();
    // Fits by the const assertion above, so extend_from_slice cannot fail.
    let _ = data.extend_from_slice(&[2, AD_FLAGS, FLAGS_LE_GENERAL_DISCOVERABLE_NO_BREDR]);
    let _ = data.extend_from_slice(&[1 + name.len() as u8, AD_COMPLETE_LOCAL_NAME]);
    let _ = data.extend_from_slice(name);
    data
}

/// The scan response payload: the complete list of 128-bit service UUIDs, i.e.
/// [`SERVICE_UUID`].
pub fn scan_response_data() -> Vec<u8, ADV_PAYLOAD_LEN> {
    let mut data = Vec::new();
    let _ = data.extend_from_slice(&[17, AD_COMPLETE_UUID128_LIST]);
    let _ = data.extend_from_slice(&SERVICE_UUID_LE);
    data
}

/// Bytes of frame stream one notification carries at `att_mtu` (clamped to
/// [`ATT_MTU_MIN`]`..=`[`ATT_MTU_MAX`]): `ATT_MTU − 3`, at most 512.
pub const fn notification_payload_len(att_mtu: u16) -> usize {
    let mtu = if att_mtu < ATT_MTU_MIN {
        ATT_MTU_MIN
    } else if att_mtu > ATT_MTU_MAX {
        ATT_MTU_MAX
    } else {
        att_mtu
    };
    let len = mtu as usize - ATT_NOTIFY_HEADER_LEN;
    if len > MAX_ATTRIBUTE_LEN {
        MAX_ATTRIBUTE_LEN
    } else {
        len
    }
}

/// Notifications [`segments`] makes of `wire_len` bytes at `att_mtu`.
pub const fn segment_count(wire_len: usize, att_mtu: u16) -> usize {
    wire_len.div_ceil(notification_payload_len(att_mtu))
}

/// Cuts one wire frame into notification values for `att_mtu` (see the module doc): all of
/// [`notification_payload_len`] bytes but the last. Borrows `wire`; no copy, no heap.
pub fn segments(wire: &[u8], att_mtu: u16) -> Segments<'_> {
    Segments {
        chunks: wire.chunks(notification_payload_len(att_mtu)),
    }
}

/// Iterator of [`segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    chunks: Chunks<'a, u8>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.chunks.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Segments<'_> {}

/// Host side: rebuilds frames from notification values of [`NOTIFY_CHAR_UUID`], in arrival
/// order. Fixed buffers, no heap.
#[derive(Clone, Debug, Default)]
pub struct Reassembler {
    decoder: FrameDecoder,
    last: Option<Frame>,
    /// Notification values pushed.
    pub notifications: u64,
    /// Frames passed on.
    pub frames: u64,
    /// Frames identical to the one before, dropped (a notification delivered twice).
    pub duplicate_frames: u64,
}

impl Reassembler {
    pub const fn new() -> Self {
        Reassembler {
            decoder: FrameDecoder::new(),
            last: None,
            notifications: 0,
            frames: 0,
            duplicate_frames: 0,
        }
    }

    /// Non-empty chunks that were not frames: damaged by a lost or repeated notification,
    /// or cut by connecting mid-frame.
    pub fn rejected_chunks(&self) -> u64 {
        self.decoder.rejected_chunks
    }

    /// Feeds one notification value; calls `on_frame` for every frame it completes.
    pub fn push_notification(&mut self, value: &[u8], mut on_frame: impl FnMut(Frame)) {
        self.notifications += 1;
        for &byte in value {
            let Some(Ok(frame)) = self.decoder.push(byte) else {
                continue;
            };
            if self.last.as_ref() == Some(&frame) {
                self.duplicate_frames += 1;
                continue;
            }
            self.frames += 1;
            self.last = Some(frame.clone());
            on_frame(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::frame::MAX_WIRE_LEN;

    /// A frame with `active` dimensions of a 64-dim model; values vary with `sequence`.
    fn frame(sequence: u32, active: usize) -> Frame {
        let mut f = Frame::without_code(sequence, sequence.wrapping_mul(1280), 0, 64);
        f.flags = (sequence % 4) as u8;
        f.mu_scale = 0.0123;
        for j in 0..active.min(64) {
            // Spread the active dims so the spike bits vary with the count.
            // 37 is coprime with 64, so `active` distinct dims.
            f.spike_bits |= 1u64 << ((j * 37 + sequence as usize) % 64);
        }
        for k in 0..f.spike_bits.count_ones() as i16 {
            // Large values make the postcard varints long, so sizes reach MAX_WIRE_LEN.
            f.gamma_q15
                .push(i16::MIN + k * 311 + (sequence % 64) as i16)
                .unwrap();
            f.mu_q.push(i16::MAX - k * 200).unwrap();
        }
        f
    }

    fn wire(f: &Frame) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut out).unwrap();
        out[..n].to_vec()
    }

    /// Notification values of `frames` sent one after the other at `att_mtu`, with the
    /// index of the frame each belongs to.
    fn notifications(frames: &[Frame], att_mtu: u16) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        for (k, f) in frames.iter().enumerate() {
            let w = wire(f);
            out.extend(segments(&w, att_mtu).map(|s| (k, s.to_vec())));
        }
        out
    }

    fn reassemble<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Frame>, Reassembler) {
        let mut r = Reassembler::new();
        let mut got = Vec::new();
        for v in values {
            r.push_notification(v, |f| got.push(f));
        }
        (got, r)
    }

    #[test]
    fn uuids_text_and_byte_forms_agree() {
        for (value, text) in [
            (SERVICE_UUID, SERVICE_UUID_STR),
            (NOTIFY_CHAR_UUID, NOTIFY_CHAR_UUID_STR),
        ] {
            let hex: std::string::String = text.chars().filter(|&c| c != '-').collect();
            assert_eq!(u128::from_str_radix(&hex, 16).unwrap(), value);
            // Version 4, RFC 4122 variant.
            assert_eq!(value >> 76 & 0xF, 4);
            assert_eq!(value >> 62 & 0b11, 0b10);
        }
        assert_ne!(SERVICE_UUID, NOTIFY_CHAR_UUID);
        assert_eq!(SERVICE_UUID_LE[0], 0x65);
        assert_eq!(SERVICE_UUID_LE[15], 0xda);
    }

    #[test]
    fn device_names_carry_the_low_24_bits_of_deviceid() {
        assert_eq!(device_name(0x1234_5678_9A1B_2C3D).as_str(), "VSC-1B2C3D");
        assert_eq!(device_name(0).as_str(), "VSC-000000");
        assert_eq!(device_name(u64::MAX).as_str(), "VSC-FFFFFF");
        for id in [0u64, 1, 0xABCDEF, 0xFF_FFFF, 0x1234_5678_9A1B_2C3D] {
            let name = device_name(id);
            assert_eq!(name.len(), DEVICE_NAME_LEN);
            assert_eq!(parse_device_name(&name), Some((id & 0xFF_FFFF) as u32));
        }
        assert_eq!(parse_device_name("VSC-abcdef"), Some(0xABCDEF));
        for bad in [
            "",
            "VSC-",
            "VSC-12345",
            "VSC-1234567",
            "VSC-12345G",
            "vsc-123456",
            "XVSC-123456",
            "VSC-+12345",
            "VSC- 12345",
        ] {
            assert_eq!(parse_device_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses_parse_only_in_colon_form() {
        assert_eq!(
            parse_address("C0:ff:EE:01:23:45"),
            Some([0xC0, 0xFF, 0xEE, 0x01, 0x23, 0x45])
        );
        for bad in [
            "",
            "C0:FF:EE:01:23",
            "C0:FF:EE:01:23:45:67",
            "C0:FF:EE:01:23:4",
            "C0:FF:EE:01:23:456",
            "C0-FF-EE-01-23-45",
            "C0:FF:EE:01:23:4G",
            "C0:FF:EE:01:23:+4",
            "VSC-123456",
        ] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
    }

    /// Walks AD structures: (type, data) pairs; panics on a malformed payload.
    fn ad_structures(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = payload;
        while let [len, tail @ ..] = rest {
            let len = usize::from(*len);
            assert!(len >= 1 && len <= tail.len(), "bad AD length {len}");
            out.push((tail[0], tail[1..len].to_vec()));
            rest = &tail[len..];
        }
        out
    }

    #[test]
    fn advertising_payloads_hold_name_and_service() {
        let name = device_name(0x00C0_FFEE);
        let adv = advertising_data(&name);
        assert!(adv.len() <= ADV_PAYLOAD_LEN);
        assert_eq!(
            ad_structures(&adv),
            [
                (AD_FLAGS, std::vec![0x06]),
                (AD_COMPLETE_LOCAL_NAME, b"VSC-C0FFEE".to_vec())
            ]
        );
        let scan = scan_response_data();
        assert_eq!(
            ad_structures(&scan),
            [(AD_COMPLETE_UUID128_LIST, SERVICE_UUID_LE.to_vec())]
        );
        // A longer name is cut rather than overflowing the payload.
        assert_eq!(advertising_data("VSC-0123456789ABCDEF").len(), 3 + 2 + 10);
    }

    #[test]
    fn payload_length_follows_the_mtu_within_spec_limits() {
        assert_eq!(notification_payload_len(23), 20);
        assert_eq!(notification_payload_len(0), 20);
        assert_eq!(notification_payload_len(247), 244);
        assert_eq!(notification_payload_len(515), 512);
        assert_eq!(notification_payload_len(517), 512);
        assert_eq!(notification_payload_len(u16::MAX), 512);
        assert_eq!(segment_count(0, 23), 0);
        assert_eq!(segment_count(20, 23), 1);
        assert_eq!(segment_count(21, 23), 2);
        assert_eq!(segment_count(MAX_WIRE_LEN, 517), 1);
    }

    #[test]
    fn every_frame_size_survives_every_mtu_from_23_to_247() {
        // Sequence numbers near u32::MAX take the longest varints.
        let frames: Vec<Frame> = (0..=64)
            .map(|n| frame(u32::MAX - 300 + n as u32 * 3, n))
            .collect();
        let wires: Vec<Vec<u8>> = frames.iter().map(wire).collect();
        // The sizes span the whole range, up to the largest frame there is.
        let longest = wires.iter().map(Vec::len).max().unwrap();
        assert_eq!(longest, MAX_WIRE_LEN,);
        for mtu in 23..=247u16 {
            let payload = usize::from(mtu) - 3;
            for (f, w) in frames.iter().zip(&wires) {
                let pieces: Vec<&[u8]> = segments(w, mtu).collect();
                assert_eq!(pieces.len(), segment_count(w.len(), mtu));
                assert_eq!(pieces.len(), segments(w, mtu).len());
                assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= payload));
                let (last, full) = pieces.split_last().unwrap();
                assert!(full.iter().all(|p| p.len() == payload), "mtu {mtu}");
                assert!(last.len() <= payload);
                assert_eq!(pieces.concat(), *w);
                let (got, r) = reassemble(pieces.iter().copied());
                assert_eq!(
                    got,
                    core::slice::from_ref(f),
                    "mtu {mtu}, {} bytes",
                    w.len()
                );
                assert_eq!(
                    (r.frames, r.rejected_chunks(), r.duplicate_frames),
                    (1, 0, 0)
                );
            }
            // All sizes back to back on one link.
            let values = notifications(&frames, mtu);
            let (got, r) = reassemble(values.iter().map(|(_, v)| v.as_slice()));
            assert_eq!(got, frames);
            assert_eq!(r.notifications, values.len() as u64);
        }
    }

    /// Whether losing notification `lost` (of a frame's `pieces`) still leaves the frame
    /// decodable: only a piece holding nothing but the trailing delimiter is expendable,
    /// since the next frame's leading delimiter ends the chunk instead.
    /// The last frame of a stream has no successor, so it never survives.
    fn survives_loss(pieces: &[Vec<u8>], lost: usize, has_successor: bool) -> bool {
        has_successor && lost == pieces.len() - 1 && pieces[lost] == [0]
    }

    #[test]
    fn a_lost_notification_costs_at_most_its_frame() {
        let sizes = [0usize, 1, 2, 5, 9, 17, 30, 47, 63, 64];
        for mtu in 23..=247u16 {
            for &n in &sizes {
                let frames = [frame(10, 20), frame(11, n), frame(12, 64), frame(13, 3)];
                let values = notifications(&frames, mtu);
                for lost in 0..values.len() {
                    let kept = values
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| i != lost)
                        .map(|(_, (_, v))| v.as_slice());
                    let (got, _) = reassemble(kept);
                    let victim = values[lost].0;
                    let pieces: Vec<Vec<u8>> = values
                        .iter()
                        .filter(|(k, _)| *k == victim)
                        .map(|(_, v)| v.clone())
                        .collect();
                    let first = values.iter().position(|(k, _)| *k == victim).unwrap();
                    let expected: Vec<Frame> = frames
                        .iter()
                        .enumerate()
                        .filter(|&(k, _)| {
                            k != victim
                                || survives_loss(&pieces, lost - first, victim + 1 < frames.len())
                        })
                        .map(|(_, f)| f.clone())
                        .collect();
                    assert_eq!(got, expected, "mtu {mtu}, size {n}, lost #{lost}");
                }
            }
        }
    }

    #[test]
    fn a_repeated_notification_never_duplicates_or_corrupts_frames() {
        for mtu in [23u16, 24, 40, 64, 100, 185, 247, 517] {
            let frames: Vec<Frame> = (0..12).map(|s| frame(s, s as usize * 6)).collect();
            let values = notifications(&frames, mtu);
            for twice in 0..values.len() {
                let mut stream: Vec<&[u8]> = values.iter().map(|(_, v)| v.as_slice()).collect();
                stream.insert(twice, &values[twice].1);
                let (got, _) = reassemble(stream);
                let victim = values[twice].0;
                // Every other frame arrives once and intact; the victim at most once.
                let others: Vec<&Frame> = got.iter().filter(|f| **f != frames[victim]).collect();
                let expected: Vec<&Frame> = frames
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != victim)
                    .map(|(_, f)| f)
                    .collect();
                assert_eq!(others, expected, "mtu {mtu}, repeated #{twice}");
                assert!(got.len() == frames.len() || got.len() == frames.len() - 1);
            }
        }
    }

    #[test]
    fn a_whole_frame_delivered_twice_is_reported_once() {
        let f = frame(5, 4);
        let w = wire(&f);
        let (got, r) = reassemble([w.as_slice(), w.as_slice(), w.as_slice()]);
        assert_eq!(got, [f]);
        assert_eq!(r.duplicate_frames, 2);
        assert_eq!(r.frames, 1);
    }

    #[test]
    fn joining_mid_frame_loses_only_that_frame() {
        let frames: Vec<Frame> = (0..4).map(|s| frame(s, 40)).collect();
        let values = notifications(&frames, 23);
        let first_of_second = values.iter().position(|(k, _)| *k == 1).unwrap();
        let (got, r) = reassemble(values[3..].iter().map(|(_, v)| v.as_slice()));
        assert!(first_of_second > 3);
        assert_eq!(got, frames[1..]);
        assert_eq!(r.rejected_chunks(), 1);
    }

    fn frames_strategy() -> impl Strategy<Value = Vec<Frame>> {
        proptest::collection::vec(0usize..=64, 1..10).prop_map(|sizes| {
            sizes
                .into_iter()
                .enumerate()
                .map(|(s, n)| frame(s as u32, n))
                .collect()
        })
    }

    proptest! {
        /// Random frames, MTU, losses and repeats: what comes out is, in order and once
        /// each, a subsequence of what was sent that contains every frame whose
        /// notifications all arrived exactly once.
        #[test]
        fn reassembly_under_loss_and_repeats(
            frames in frames_strategy(),
            mtu in 23u16..=517,
            fate in proptest::collection::vec(0u8..20, 0..400),
        ) {
            let values = notifications(&frames, mtu);
            let mut stream: Vec<&[u8]> = Vec::new();
            let mut damaged = std::vec![false; frames.len()];
            for (i, (k, v)) in values.iter().enumerate() {
                match fate.get(i).copied().unwrap_or(2) {
                    0 => damaged[*k] = true,
                    1 => {
                        damaged[*k] = true;
                        stream.push(v);
                        stream.push(v);
                    }
                    _ => stream.push(v),
                }
            }
            let (got, _) = reassemble(stream);
            // In order and at most once each (sequence numbers are distinct).
            let mut at = 0;
            for f in &got {
                let k = frames[at..].iter().position(|s| s == f);
                prop_assert!(k.is_some(), "frame {} out of order or invented", f.sequence);
                at += k.unwrap() + 1;
            }
            for (f, d) in frames.iter().zip(&damaged) {
                if !d {
                    prop_assert!(got.contains(f), "intact frame {} missing", f.sequence);
                }
            }
        }

        /// Arbitrary notification contents never panic the reassembler.
        #[test]
        fn arbitrary_notifications_never_panic(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8)
        ) {
            let (got, r) = reassemble(values.iter().map(Vec::as_slice));
            prop_assert_eq!(r.notifications, values.len() as u64);
            prop_assert_eq!(r.frames, got.len() as u64);
        }
    }
}
