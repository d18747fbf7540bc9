//! The C functions called from Rust the way a C program calls them: raw pointers, status
//! codes, caller-owned buffers.

use std::ffi::CStr;

use edge_runtime::F32Encoder;
use edge_runtime::preprocess::{ChannelSet, HOP_LEN, WINDOW_LEN, windows_of_recording};
use edge_runtime::quant::QuantParams;

use super::*;

/// A synthetic 50 Hz recording: standing still, then a 2 Hz gait-like swing.
fn signal(k: usize) -> ImuSample {
    let t_s = k as f32 / 50.0;
    let swing = if k < 200 { 0.0 } else { 1.0 };
    let step_rad = 2.0 * std::f32::consts::TAU * t_s;
    ImuSample {
        acc_g: [
            1.0 + swing * 0.4 * step_rad.sin(),
            swing * 0.2 * (std::f32::consts::TAU * t_s).cos(),
            -0.1 + 0.05 * (0.7 * t_s).sin(),
        ],
        gyro_rad_s: [
            swing * step_rad.sin(),
            0.1 * (1.3 * t_s).cos(),
            -0.2 * swing,
        ],
    }
}

const TEST_HIDDEN: usize = 48;
const TEST_LATENT: usize = 16;
/// Class ids of the test model's activity head.
const TEST_CLASSES: [u8; 3] = [2, 5, 6];

/// A random-weight J 16 model quantised on the synthetic recording, with a 3-class
/// activity head (fixed pseudo-random weights).
fn test_blob() -> Vec<u8> {
    let samples: Vec<ImuSample> = (0..1000).map(signal).collect();
    let mut windows = Vec::new();
    windows_of_recording(&samples, ChannelSet::ALL, |w| {
        windows.push(w.as_slice().to_vec())
    })
    .unwrap();
    let f32_encoder = F32Encoder::random(ChannelSet::ALL, WINDOW_LEN, TEST_HIDDEN, TEST_LATENT, 11);
    let mut params = QuantParams::calibrate(&f32_encoder, &windows).unwrap();
    let weights: Vec<f32> = (0..TEST_CLASSES.len() * TEST_LATENT)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 11.0)
        .collect();
    params
        .set_activity_head(&TEST_CLASSES, &weights, &[0.1, -0.2, 0.05])
        .unwrap();
    params.to_blob().unwrap()
}

/// Byte offset of the activity head's class ids (right after the γ head) in `blob`,
/// whose dense layers the quantiser may have stored in row pairs or row-major.
fn class_ids_offset(blob: &[u8]) -> usize {
    let parsed = edge_runtime::blob::ModelBlob::parse(blob).unwrap();
    let layouts = [parsed.hidden(), parsed.mu_head(), parsed.gamma_head()].map(|l| l.layout());
    edge_runtime::blob::blob_len_of_layouts(layouts, 9, 9 * WINDOW_LEN, TEST_HIDDEN, TEST_LATENT, 0)
        - edge_runtime::blob::CRC_LEN
}

fn open(blob: &[u8]) -> (VscStatus, *mut VscEdge, String) {
    let mut edge = ptr::null_mut();
    let mut message = [0 as c_char; VSC_MESSAGE_CAPACITY];
    let status = unsafe {
        vsc_edge_open(
            blob.as_ptr(),
            blob.len(),
            &mut edge,
            message.as_mut_ptr(),
            message.len(),
        )
    };
    let text = unsafe { CStr::from_ptr(message.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    (status, edge, text)
}

fn push(edge: *mut VscEdge, t_us: u64, s: ImuSample) -> VscStatus {
    let [ax, ay, az] = s.acc_g;
    let [gx, gy, gz] = s.gyro_rad_s;
    unsafe { vsc_edge_push(edge, t_us, ax, ay, az, gx, gy, gz, false) }
}

fn poll_all(edge: *mut VscEdge) -> Vec<VscFrame> {
    let mut frames = Vec::new();
    let mut out = Box::new(VscFrame::ZERO);
    loop {
        match unsafe { vsc_edge_poll(edge, &mut *out) } {
            1 => frames.push((*out).clone()),
            0 => return frames,
            e => panic!("poll returned {e}"),
        }
    }
}

fn status_text(code: i32) -> &'static str {
    unsafe { CStr::from_ptr(vsc_status_message(code)) }
        .to_str()
        .unwrap()
}

/// The frames edge-runtime's own timed pipeline computes for the same input.
fn reference_frames(blob: &[u8], input: &[(u64, ImuSample)]) -> Vec<Frame> {
    let model = ModelBlob::parse(blob).unwrap();
    let mut pipeline = TimedPipeline::new(model.channels(), Encoder::new(model));
    let mut frames = Vec::new();
    for &(t, s) in input {
        pipeline.push(t, s, false, |f| frames.push(f));
    }
    frames
}

#[test]
fn frames_through_the_c_abi_equal_edge_runtime_frames() {
    let blob = test_blob();
    let (status, edge, message) = open(&blob);
    assert_eq!((status, message.as_str()), (VscStatus::Ok, ""));
    assert!(!edge.is_null());

    let mut info = VscModelInfo::default();
    assert_eq!(
        unsafe { vsc_edge_model_info(edge, &mut info) },
        VscStatus::Ok
    );
    let model = ModelBlob::parse(&blob).unwrap();
    assert_eq!(
        info,
        VscModelInfo {
            blob_crc32: model.crc(),
            blob_len: blob.len() as u32,
            channel_bits: ChannelSet::ALL.bits(),
            input_dim: (9 * WINDOW_LEN) as u16,
            hidden_dim: TEST_HIDDEN as u16,
            latent_dim: TEST_LATENT as u16,
            activity_classes: TEST_CLASSES.len() as u16,
            reserved: 0,
        }
    );

    // A 60 Hz source with jitter, polled every few samples as an app would.
    let input: Vec<(u64, ImuSample)> = (0..1000u64)
        .map(|k| {
            let t_us = 5_000_000 + k * 16_667 + (k * 7919 % 5) * 900;
            (t_us, signal((k * 50 / 60) as usize))
        })
        .collect();
    let mut got = Vec::new();
    for (k, &(t, s)) in input.iter().enumerate() {
        assert_eq!(push(edge, t, s), VscStatus::Ok, "sample {k}");
        if k % 7 == 0 {
            got.extend(poll_all(edge));
        }
    }
    got.extend(poll_all(edge));
    let want = reference_frames(&blob, &input);
    // 1000 samples at 60 Hz = 16.65 s = 832 grid points → (832 − 128) / 64 + 1 windows.
    assert_eq!(want.len(), 12);
    assert_eq!(got.len(), want.len());
    assert!(
        want.iter().any(|f| f.spike_bits != 0),
        "the test model codes something"
    );
    assert!(
        want.iter()
            .all(|f| TEST_CLASSES.contains(&f.activity) || f.flags & VSC_FLAG_NO_CODE != 0),
        "every coded frame predicts a class of the head"
    );
    for (c, r) in got.iter().zip(&want) {
        let mut expected = VscFrame::ZERO;
        expected.fill_from(r);
        assert_eq!(c, &expected);
        // The fields against the frame itself, not only against the same conversion.
        assert_eq!(
            (c.sequence, c.timestamp_ms, c.flags, c.spike_bits),
            (r.sequence, r.timestamp_ms, r.flags, r.spike_bits)
        );
        assert_eq!(
            (c.activity, c.activity_score),
            (r.activity, r.activity_score)
        );
        assert_eq!(u32::from(c.n_active), r.spike_bits.count_ones());
        let n = usize::from(c.n_active);
        let dims: Vec<u8> = (0..64u8).filter(|j| r.spike_bits >> j & 1 == 1).collect();
        assert_eq!(&c.active_dims[..n], &dims[..]);
        assert_eq!(&c.gamma_q15[..n], &r.gamma_q15[..]);
        assert_eq!(&c.mu_q[..n], &r.mu_q[..]);
        for k in 0..n {
            assert_eq!(c.gamma[k], f32::from(c.gamma_q15[k]) / 32768.0);
            assert_eq!(c.mu[k], f32::from(c.mu_q[k]) * c.mu_scale);
        }
        assert!(c.gamma_q15[n..].iter().all(|&g| g == 0));
        let wire = &c.wire[..usize::from(c.wire_len)];
        assert_eq!((wire[0], wire[wire.len() - 1]), (0, 0));
        assert_eq!(
            Frame::decode_chunk(&wire[1..wire.len() - 1]).as_ref(),
            Ok(r)
        );
    }
    assert_eq!(unsafe { vsc_edge_dropped_frames(edge) }, 0);
    unsafe { vsc_edge_close(edge) };
}

#[test]
fn bad_samples_are_reported_and_flag_the_next_frame() {
    let blob = test_blob();
    let (_, edge, _) = open(&blob);
    let mut t = 1_000u64;
    for k in 0..WINDOW_LEN {
        assert_eq!(push(edge, t, signal(k)), VscStatus::Ok);
        t += 20_000;
    }
    assert_eq!(poll_all(edge).len(), 1);
    let mut nan = signal(0);
    nan.gyro_rad_s[1] = f32::NAN;
    assert_eq!(push(edge, t, nan), VscStatus::SampleNonFinite);
    let mut inf = signal(0);
    inf.acc_g[2] = f32::NEG_INFINITY;
    assert_eq!(push(edge, t, inf), VscStatus::SampleNonFinite);
    assert_eq!(
        push(edge, t - 20_000, signal(1)),
        VscStatus::SampleNonMonotonic
    );
    // The same time as the last accepted sample is not after it either.
    assert_eq!(
        push(edge, t - 20_000, signal(1)),
        VscStatus::SampleNonMonotonic
    );
    for k in 0..HOP_LEN {
        assert_eq!(push(edge, t, signal(k)), VscStatus::Ok);
        t += 20_000;
    }
    let frames = poll_all(edge);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].flags, VSC_FLAG_NON_FINITE | VSC_FLAG_TIMESTAMP);
    // The stream went on: the frame after it is clean.
    for k in 0..HOP_LEN {
        push(edge, t, signal(k));
        t += 20_000;
    }
    assert_eq!(poll_all(edge)[0].flags, 0);

    assert_eq!(
        unsafe { vsc_edge_push_sensor_error(edge, t) },
        VscStatus::Ok
    );
    for k in 0..HOP_LEN {
        push(edge, t, signal(k));
        t += 20_000;
    }
    assert_eq!(poll_all(edge)[0].flags, VSC_FLAG_SENSOR_ERROR);
    unsafe { vsc_edge_close(edge) };
}

#[test]
fn a_full_queue_drops_the_oldest_frames_and_counts_them() {
    let blob = test_blob();
    let (_, edge, _) = open(&blob);
    let windows = VSC_QUEUE_FRAMES + 5;
    for k in 0..WINDOW_LEN + (windows - 1) * HOP_LEN {
        push(edge, k as u64 * 20_000, signal(k));
    }
    assert_eq!(unsafe { vsc_edge_dropped_frames(edge) }, 5);
    let frames = poll_all(edge);
    let sequences: Vec<u32> = frames.iter().map(|f| f.sequence).collect();
    let newest: Vec<u32> = (5..windows as u32).collect();
    assert_eq!(sequences, newest);
    unsafe { vsc_edge_close(edge) };
}

#[test]
fn invalid_blobs_give_their_code_and_the_full_message() {
    let good = test_blob();
    let with_crc = |mut b: Vec<u8>| {
        let n = b.len() - 4;
        let crc = edge_runtime::crc::crc32(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        b
    };
    let mut flipped = good.clone();
    flipped[100] ^= 0x40;
    let mut magic = good.clone();
    magic[0] = b'X';
    let mut version = good.clone();
    version[4] = 99;
    let mut reserved = good.clone();
    // Byte 44 is the dense layers' layout (format 5); 45..48 stay reserved.
    reserved[45] = 1;
    let mut one_class = good.clone();
    one_class[42..44].copy_from_slice(&1u16.to_le_bytes());
    let mut class_zero = good.clone();
    class_zero[class_ids_offset(&good) + 1] = 0;
    assert_eq!(good[class_ids_offset(&good)..][..3], TEST_CLASSES);
    let cases = [
        (good[..20].to_vec(), VscStatus::BlobTooShort),
        (good[..good.len() - 1].to_vec(), VscStatus::BlobTotalLength),
        (flipped, VscStatus::BlobCrc),
        (magic, VscStatus::BlobBadMagic),
        (with_crc(version), VscStatus::BlobUnsupportedVersion),
        (with_crc(reserved), VscStatus::BlobReserved),
        (with_crc(one_class), VscStatus::BlobBadClassCount),
        (with_crc(class_zero), VscStatus::BlobBadClassId),
    ];
    for (bytes, want) in cases {
        let (status, edge, message) = open(&bytes);
        let error = ModelBlob::parse(&bytes).unwrap_err();
        assert_eq!(status, want, "{error}");
        assert!(edge.is_null());
        assert_eq!(message, error.to_string());
        assert!(message.len() < VSC_MESSAGE_CAPACITY);
        assert!(status_text(status as i32).starts_with("model blob: "));
    }
    // The CRC message names both values.
    let (_, _, message) = open(&{
        let mut b = good.clone();
        b[60] ^= 1;
        b
    });
    assert!(message.contains("CRC-32 mismatch (stored 0x"), "{message}");
}

#[test]
fn null_pointers_are_rejected() {
    let blob = test_blob();
    let mut edge = ptr::null_mut();
    let mut message = [1 as c_char; 64];
    let status = unsafe {
        vsc_edge_open(
            ptr::null(),
            10,
            &mut edge,
            message.as_mut_ptr(),
            message.len(),
        )
    };
    assert_eq!(status, VscStatus::NullPointer);
    assert_eq!(
        unsafe { CStr::from_ptr(message.as_ptr()) }.to_str(),
        Ok("blob is NULL")
    );
    let status = unsafe {
        vsc_edge_open(
            blob.as_ptr(),
            blob.len(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(status, VscStatus::NullPointer);
    let null = ptr::null_mut::<VscEdge>();
    assert_eq!(push(null, 0, signal(0)), VscStatus::NullPointer);
    assert_eq!(
        unsafe { vsc_edge_push_sensor_error(null, 0) },
        VscStatus::NullPointer
    );
    let mut frame = Box::new(VscFrame::ZERO);
    assert_eq!(
        unsafe { vsc_edge_poll(null, &mut *frame) },
        -(VscStatus::NullPointer as i32)
    );
    let mut info = VscModelInfo::default();
    assert_eq!(
        unsafe { vsc_edge_model_info(null, &mut info) },
        VscStatus::NullPointer
    );
    assert_eq!(unsafe { vsc_edge_dropped_frames(null) }, 0);
    unsafe { vsc_edge_close(null) };

    let (_, edge, _) = open(&blob);
    assert_eq!(
        unsafe { vsc_edge_poll(edge, ptr::null_mut()) },
        -(VscStatus::NullPointer as i32)
    );
    assert_eq!(
        unsafe { vsc_edge_model_info(edge, ptr::null_mut()) },
        VscStatus::NullPointer
    );
    unsafe { vsc_edge_close(edge) };
}

#[test]
fn a_caught_panic_poisons_the_handle() {
    let (_, edge, _) = open(&test_blob());
    let status = unsafe { with_edge(edge, |e| e, |_| -> VscStatus { panic!("test panic") }) };
    assert_eq!(status, VscStatus::Internal);
    assert_eq!(push(edge, 0, signal(0)), VscStatus::Poisoned);
    let mut frame = Box::new(VscFrame::ZERO);
    assert_eq!(
        unsafe { vsc_edge_poll(edge, &mut *frame) },
        -(VscStatus::Poisoned as i32)
    );
    unsafe { vsc_edge_close(edge) };
}

#[test]
fn every_status_has_its_own_message() {
    let mut seen = std::collections::HashSet::new();
    for s in VscStatus::ALL {
        let text = status_text(s as i32);
        assert_ne!(text, "unknown status code", "{s:?}");
        assert!(seen.insert(text), "{s:?} shares its message");
    }
    let codes: std::collections::HashSet<i32> = VscStatus::ALL.iter().map(|&s| s as i32).collect();
    assert_eq!(codes.len(), VscStatus::ALL.len());
    for code in (-5..300).filter(|c| !codes.contains(c)) {
        assert_eq!(status_text(code), "unknown status code");
    }
    assert_eq!(status_text(i32::MIN), "unknown status code");
}

#[test]
fn messages_are_truncated_at_a_character_boundary() {
    let mut buf = [7 as c_char; 6];
    // "γ" is two bytes: 5 bytes fit, the cut falls inside the second γ.
    unsafe { write_message("aγbγc", buf.as_mut_ptr(), buf.len()) };
    assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str(), Ok("aγb"));
    unsafe { write_message("abc", buf.as_mut_ptr(), 1) };
    assert_eq!(buf[0], 0);
    // Capacity 0 and NULL write nothing.
    buf[0] = 7;
    unsafe { write_message("abc", buf.as_mut_ptr(), 0) };
    assert_eq!(buf[0], 7);
    unsafe { write_message("abc", ptr::null_mut(), 10) };
}
