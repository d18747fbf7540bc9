//! Blob round trip, malformed blobs, fuzzing of parser and encoder, kernel agreement and
//! int8-vs-f32 accuracy. Needs the `std` feature (enabled for tests by the crate's
//! dev-dependency on itself).

use edge_runtime::F32Encoder;
use edge_runtime::blob::{
    self, BlobError, FORMAT_VERSION, HEADER_LEN, LAYOUT_OFFSET, MAX_ABS_BIAS, MAX_HIDDEN,
    MAX_INPUT, MAX_LATENT, MAX_ROW_L1, ModelBlob, Section, WeightLayout,
};
use edge_runtime::encoder::{EncodeError, Encoder, IntTrace, SparseCode, requant};
use edge_runtime::kernels::Kernel;
use edge_runtime::preprocess::{ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN, Window};
use edge_runtime::quant::{QuantError, QuantParams, multiplier_shift, quantise};
use edge_runtime::spike::SpikeHead;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Deterministic raw windows roughly in the encoder's [−2, 2] input range: smooth
/// per-channel signals plus noise, different per seed.
fn raw_windows(channels: ChannelSet, window_len: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let amp = 1.5 * (noise() + 0.5);
            let freq = 0.05 + 0.2 * (noise() + 0.5);
            let mut w = Vec::with_capacity(channels.len() * window_len);
            for c in 0..channels.len() {
                let phase = 6.0 * noise();
                let bias = noise();
                for t in 0..window_len {
                    let s = amp * (freq * t as f32 + phase + c as f32).sin() + bias;
                    w.push(s + 0.3 * noise());
                }
            }
            w
        })
        .collect()
}

fn model(
    channels: ChannelSet,
    window_len: usize,
    hidden: usize,
    latent: usize,
    seed: u64,
) -> (F32Encoder, Vec<u8>) {
    let enc = F32Encoder::random(channels, window_len, hidden, latent, seed);
    let calib = raw_windows(channels, window_len, 64, seed ^ 0xABCD);
    let bytes = quantise(&enc, &calib).expect("quantise");
    (enc, bytes)
}

fn small_blob() -> Vec<u8> {
    model(ChannelSet::TOTAL_ACC, 16, 24, 8, 7).1
}

fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len();
    if n >= 4 {
        let crc = blob::crc32(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}

#[test]
fn crc32_check_value() {
    assert_eq!(blob::crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(blob::crc32(b""), 0);
}

#[test]
fn blob_round_trip() {
    let (enc, bytes) = model(ChannelSet::ACC_ONLY, WINDOW_LEN, 64, 16, 1);
    let blob = ModelBlob::parse(&bytes).unwrap();
    assert_eq!(blob.channels(), ChannelSet::ACC_ONLY);
    assert_eq!(blob.window_len(), WINDOW_LEN);
    assert_eq!(blob.input_dim(), 6 * WINDOW_LEN);
    assert_eq!((blob.hidden_dim(), blob.latent_dim()), (64, 16));
    assert_eq!(blob.scaling(3), enc.scaling[3]);
    assert_eq!(blob.weight_bytes(), 64 * 6 * WINDOW_LEN + 2 * 16 * 64);
    let params = QuantParams::from_blob(&blob);
    assert_eq!(
        params.to_blob().unwrap(),
        bytes,
        "decode → encode is the identity"
    );
    // Zero-copy: weight rows point into the original bytes.
    let row = blob.hidden().row(5);
    let start = row.as_ptr() as usize - bytes.as_ptr() as usize;
    assert_eq!(&bytes[start..start + row.len()], row);
    // Quantised weights reproduce the f32 weights within half a step.
    for r in [0, 17, 63] {
        let s = blob.hidden().w_scale(r);
        for c in [0, 100, 767] {
            let w = enc.w1[r * enc.input_dim + c];
            assert!((blob.hidden().weight(r, c) as f32 * s - w).abs() <= 0.5001 * s);
        }
    }
}

#[test]
fn blob_at_odd_address_parses() {
    let bytes = small_blob();
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let a = ModelBlob::parse(&bytes).unwrap();
    let b = ModelBlob::parse(&shifted[1..]).unwrap();
    let x = &raw_windows(ChannelSet::TOTAL_ACC, 16, 1, 3)[0];
    let (mut ca, mut cb) = (SparseCode::default(), SparseCode::default());
    Encoder::new(a).encode(x, &mut ca).unwrap();
    Encoder::new(b).encode(x, &mut cb).unwrap();
    assert_eq!(ca, cb);
}

/// Applies `edit` to a valid blob (optionally re-sealing the CRC) and returns the error.
fn parse_edited(edit: impl FnOnce(&mut Vec<u8>), reseal: bool) -> BlobError {
    let mut bytes = small_blob();
    edit(&mut bytes);
    if reseal {
        fix_crc(&mut bytes);
    }
    ModelBlob::parse(&bytes).expect_err("malformed blob accepted")
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_malformed_header_is_a_typed_error() {
    let len = small_blob().len();
    assert_eq!(
        parse_edited(|b| b.truncate(10), false),
        BlobError::TooShort { len: 10 }
    );
    assert_eq!(
        parse_edited(|b| b[0] = b'X', false),
        BlobError::BadMagic { found: *b"XSCQ" }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 4, FORMAT_VERSION + 1), false),
        BlobError::UnsupportedVersion {
            found: FORMAT_VERSION + 1
        }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 6, 40), false),
        BlobError::BadHeaderLen { found: 40 }
    );
    assert_eq!(
        parse_edited(|b| b.truncate(len - 1), false),
        BlobError::TotalLength {
            field: len as u32,
            actual: len - 1
        }
    );
    assert_eq!(
        parse_edited(|b| b.push(0), false),
        BlobError::TotalLength {
            field: len as u32,
            actual: len + 1
        }
    );
    assert!(matches!(
        parse_edited(|b| b[HEADER_LEN + 3] ^= 1, false),
        BlobError::Crc { .. }
    ));
    assert!(matches!(
        parse_edited(|b| *b.last_mut().unwrap() ^= 0x80, false),
        BlobError::Crc { .. }
    ));
    assert_eq!(
        parse_edited(|b| put_u16(b, 12, 0), true),
        BlobError::BadChannels { bits: 0 }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 12, 0x200), true),
        BlobError::BadChannels { bits: 0x200 }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 14, 129), true),
        BlobError::DimOutOfRange {
            field: "window_len",
            value: 129,
            max: WINDOW_LEN as u16
        }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 16, 2000), true),
        BlobError::DimOutOfRange {
            field: "input_dim",
            value: 2000,
            max: MAX_INPUT as u16
        }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 18, 0), true),
        BlobError::DimOutOfRange {
            field: "hidden_dim",
            value: 0,
            max: MAX_HIDDEN as u16
        }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 20, 65), true),
        BlobError::DimOutOfRange {
            field: "latent_dim",
            value: 65,
            max: MAX_LATENT as u16
        }
    );
    assert_eq!(
        parse_edited(|b| put_u16(b, 16, 47), true),
        BlobError::InputDimMismatch {
            input_dim: 47,
            channels: 3,
            window_len: 16
        }
    );
    // Dimensions that need more bytes than there are.
    assert!(matches!(
        parse_edited(|b| put_u16(b, 18, 25), true),
        BlobError::Length { .. }
    ));
    assert!(matches!(
        parse_edited(
            |b| {
                put_u16(b, 14, 8);
                put_u16(b, 16, 24);
            },
            true
        ),
        BlobError::Length { .. }
    ));
    // Byte 22 is the model-input code: 1 (spectrum) does not fit a 16-sample window,
    // 2 is unknown, and version 1 blobs must leave it 0.
    assert!(matches!(
        parse_edited(|b| b[22] = 1, true),
        BlobError::InputDimMismatch { .. }
    ));
    assert_eq!(
        parse_edited(|b| b[22] = 2, true),
        BlobError::BadFeatures { code: 2 }
    );
    assert_eq!(
        parse_edited(
            |b| {
                put_u16(b, 4, 1);
                b[22] = 1;
            },
            true
        ),
        BlobError::Reserved { offset: 22 }
    );
    // A version 1 blob is the same model (row-major weights, as format 4 wrote them).
    let mut v1 =
        QuantParams::from_blob(&ModelBlob::parse(&small_blob()).unwrap()).to_blob_of_version(4);
    put_u16(&mut v1, 4, 1);
    fix_crc(&mut v1);
    assert_eq!(
        ModelBlob::parse(&v1).unwrap().features(),
        InputFeatures::Waveform
    );
    assert_eq!(
        parse_edited(|b| b[45] = 1, true),
        BlobError::Reserved { offset: 45 }
    );
    // Byte 40 is the spike head: 1 (sigmoid) is a valid model, 2 is unknown, and
    // version 1 and 2 blobs must leave it 0.
    let mut sigmoid = small_blob();
    sigmoid[40] = 1;
    fix_crc(&mut sigmoid);
    assert_eq!(
        ModelBlob::parse(&sigmoid).unwrap().spike_head(),
        SpikeHead::Sigmoid
    );
    assert_eq!(
        parse_edited(|b| b[40] = 2, true),
        BlobError::BadSpikeHead { code: 2 }
    );
    for version in [1, 2] {
        let mut old = v1.clone();
        put_u16(&mut old, 4, version);
        old[40] = 1;
        fix_crc(&mut old);
        assert_eq!(
            ModelBlob::parse(&old).unwrap_err(),
            BlobError::Reserved { offset: 40 }
        );
    }
    assert_eq!(
        ModelBlob::parse(&v1).unwrap().spike_head(),
        SpikeHead::Paper
    );
    assert_eq!(
        parse_edited(|b| put_u32(b, 24, 1.0f32.to_bits()), true),
        BlobError::BadScale {
            field: "input_scale"
        }
    );
    assert_eq!(
        parse_edited(|b| put_u32(b, 28, f32::NAN.to_bits()), true),
        BlobError::BadScale {
            field: "hidden_scale"
        }
    );
    assert_eq!(
        parse_edited(|b| put_u32(b, 32, (-1.0f32).to_bits()), true),
        BlobError::BadScale { field: "mu_scale" }
    );
    assert_eq!(
        parse_edited(|b| put_u32(b, 36, 0), true),
        BlobError::BadScale { field: "v_scale" }
    );
    assert_eq!(
        parse_edited(
            |b| put_u32(b, HEADER_LEN + 8 * 2 + 4, (-1.0f32).to_bits()),
            true
        ),
        BlobError::BadChannelScaling { index: 2 }
    );
}

/// Byte offset of each per-row field of a layer in `small_blob` (3 channels × 16, H 24, J 8).
fn layer_offsets(section: Section) -> (usize, usize, usize, usize) {
    let (m, h, j) = (48, 24, 8);
    let hidden = HEADER_LEN + 8 * 3;
    let mu = hidden + 13 * h + h * m;
    let gamma = mu + 13 * j + j * h;
    // (w_scale, bias, multiplier, shift) offsets.
    match section {
        Section::Hidden => (hidden, hidden + 4 * h, hidden + 8 * h, hidden + 12 * h),
        Section::Mu => (mu, mu + 4 * j, mu + 8 * j, mu + 12 * j),
        Section::Gamma => (gamma, gamma + 4 * j, gamma + 12 * j, gamma + 16 * j),
        Section::Activity => {
            unreachable!("small_blob has no activity head (tests/activity_head.rs)")
        }
    }
}

#[test]
fn every_malformed_layer_field_is_a_typed_error() {
    for section in [Section::Hidden, Section::Mu, Section::Gamma] {
        let (ws, bias, mult, shift) = layer_offsets(section);
        let row = 1;
        assert_eq!(
            parse_edited(|b| put_u32(b, ws + 4 * row, 0), true),
            BlobError::BadWeightScale { section, row }
        );
        assert_eq!(
            parse_edited(|b| put_u32(b, ws + 4 * row, f32::INFINITY.to_bits()), true),
            BlobError::BadWeightScale { section, row }
        );
        let value = MAX_ABS_BIAS + 1;
        assert_eq!(
            parse_edited(|b| put_u32(b, bias + 4 * row, value as u32), true),
            BlobError::BiasOutOfRange {
                section,
                row,
                value
            }
        );
        assert_eq!(
            parse_edited(|b| put_u32(b, bias + 4 * row, i32::MIN as u32), true),
            BlobError::BiasOutOfRange {
                section,
                row,
                value: i32::MIN
            }
        );
        assert_eq!(
            parse_edited(|b| put_u32(b, mult + 4 * row, -5i32 as u32), true),
            BlobError::NegativeMultiplier {
                section,
                row,
                value: -5
            }
        );
        for value in [0u8, 63, 255] {
            assert_eq!(
                parse_edited(|b| b[shift + row] = value, true),
                BlobError::ShiftOutOfRange {
                    section,
                    row,
                    value
                }
            );
        }
    }
}

#[test]
fn errors_display_the_field() {
    let e = BlobError::ShiftOutOfRange {
        section: Section::Gamma,
        row: 3,
        value: 0,
    };
    assert_eq!(
        e.to_string(),
        "model blob: gamma head row 3: shift 0 outside 1..=62"
    );
    assert!(
        BlobError::TooShort { len: 3 }
            .to_string()
            .contains("3 bytes")
    );
}

#[test]
fn multiplier_shift_is_accurate() {
    for real in [
        1e-12,
        3.7e-5,
        0.1,
        0.5,
        0.999_999_999_9,
        1.0,
        3.0,
        12345.678,
    ] {
        let (m, s) = multiplier_shift(real).unwrap();
        let approx = m as f64 / 2f64.powi(s as i32);
        assert!(
            (approx - real).abs() <= real * 1e-9 + 2f64.powi(-(s as i32)),
            "{real}"
        );
        assert!((1..=62).contains(&s));
    }
    assert_eq!(multiplier_shift(0.0), None);
    assert_eq!(multiplier_shift(f64::NAN), None);
    assert_eq!(multiplier_shift(2e9), None);
    // requant with the pair ≈ round(acc · real).
    let (m, s) = multiplier_shift(0.013).unwrap();
    for acc in [-100_000, -77, 0, 5, 1_000_000] {
        assert_eq!(
            requant(acc, m, s),
            (acc as f64 * 0.013 + 0.5).floor() as i64
        );
    }
}

#[test]
fn quantise_rejects_bad_input() {
    let enc = F32Encoder::random(ChannelSet::TOTAL_ACC, 16, 8, 4, 1);
    let no: [Vec<f32>; 0] = [];
    assert_eq!(quantise(&enc, &no), Err(QuantError::NoCalibration));
    let short = vec![vec![0.0f32; 47]];
    assert!(matches!(
        quantise(&enc, &short),
        Err(QuantError::CalibrationWindow { window: 0, .. })
    ));
    let mut nan = raw_windows(ChannelSet::TOTAL_ACC, 16, 3, 1);
    nan[2][5] = f32::NAN;
    assert!(matches!(
        quantise(&enc, &nan),
        Err(QuantError::CalibrationWindow { window: 2, .. })
    ));
    let mut bad = enc.clone();
    bad.w_mu.pop();
    assert!(matches!(
        quantise(&bad, &raw_windows(ChannelSet::TOTAL_ACC, 16, 2, 1)),
        Err(QuantError::Model(_))
    ));
    let big = F32Encoder::random(ChannelSet::TOTAL_ACC, 16, 8, 65, 1);
    assert!(matches!(quantise(&big, &short), Err(QuantError::Model(_))));
}

#[test]
fn encode_rejects_bad_windows() {
    let bytes = small_blob();
    let enc = Encoder::new(ModelBlob::parse(&bytes).unwrap());
    let mut out = SparseCode::default();
    assert_eq!(
        enc.encode(&[0.0; 47], &mut out),
        Err(EncodeError::InputLength {
            expected: 48,
            got: 47
        })
    );
    let mut x = vec![0.0; 48];
    x[30] = f32::INFINITY;
    assert_eq!(
        enc.encode(&x, &mut out),
        Err(EncodeError::NonFinite { index: 30 })
    );
    assert_eq!(out, SparseCode::default(), "output untouched on error");
    let w = Window::from_slice(ChannelSet::BODY_ACC, 0, &[0.0; 3 * WINDOW_LEN]).unwrap();
    assert_eq!(
        enc.encode_window(&w, &mut out),
        Err(EncodeError::ChannelMismatch {
            expected: ChannelSet::TOTAL_ACC,
            got: ChannelSet::BODY_ACC
        })
    );
}

#[test]
fn encode_window_equals_encode_slice() {
    let (_, bytes) = model(ChannelSet::TOTAL_ACC, WINDOW_LEN, 32, 8, 5);
    let enc = Encoder::new(ModelBlob::parse(&bytes).unwrap());
    let x = &raw_windows(ChannelSet::TOTAL_ACC, WINDOW_LEN, 1, 9)[0];
    let w = Window::from_slice(ChannelSet::TOTAL_ACC, 0, x).unwrap();
    let (mut a, mut b) = (SparseCode::default(), SparseCode::default());
    enc.encode(x, &mut a).unwrap();
    enc.encode_window(&w, &mut b).unwrap();
    assert_eq!(a, b);
}

/// x_q, acc1, h_q, acc_mu, acc_g.
type Trace = (Vec<u8>, Vec<i32>, Vec<u8>, Vec<i32>, Vec<i32>);

/// Independent i64 re-implementation of the documented integer semantics.
fn reference_trace(params: &QuantParams, x: &[f32]) -> Trace {
    let wl = params.window_len;
    let x_q: Vec<u8> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = params.scaling[i / wl];
            let t = ((v - s.offset) * s.scale).clamp(0.0, 1.0) * 255.0;
            t.round_ties_even() as u8
        })
        .collect();
    let dense = |l: &edge_runtime::quant::LayerParams, input: &[u8]| -> Vec<i32> {
        (0..l.rows)
            .map(|r| {
                let s: i64 = (0..l.cols)
                    .map(|c| input[c] as i64 * l.weights[r * l.cols + c] as i64)
                    .sum();
                i32::try_from(s + l.bias[r] as i64).unwrap()
            })
            .collect()
    };
    let acc1 = dense(&params.hidden, &x_q);
    let h_q: Vec<u8> = acc1
        .iter()
        .enumerate()
        .map(|(r, &a)| {
            let (m, s) = (
                params.hidden.multiplier[r] as i128,
                params.hidden.shift[r] as u32,
            );
            let q = (a.max(0) as i128 * m + (1i128 << (s - 1))) >> s;
            q.min(255) as u8
        })
        .collect();
    let acc_mu = dense(&params.mu, &h_q);
    let acc_g = dense(&params.gamma, &h_q);
    (x_q, acc1, h_q, acc_mu, acc_g)
}

#[test]
fn traced_encode_matches_reference_semantics_with_every_kernel() {
    let (_, bytes) = model(ChannelSet::ALL, WINDOW_LEN, 96, 32, 11);
    let blob = ModelBlob::parse(&bytes).unwrap();
    let params = QuantParams::from_blob(&blob);
    for x in raw_windows(ChannelSet::ALL, WINDOW_LEN, 8, 12) {
        let (x_q, acc1, h_q, acc_mu, acc_g) = reference_trace(&params, &x);
        let mut codes = vec![];
        for kernel in Kernel::ALL {
            let enc = Encoder::new(blob).with_kernel(kernel);
            let mut trace = Box::<IntTrace>::default();
            let mut code = SparseCode::default();
            enc.encode_traced(&x, &mut code, &mut trace).unwrap();
            assert_eq!(&trace.x_q[..x_q.len()], &x_q[..]);
            assert_eq!(&trace.hidden_acc[..96], &acc1[..]);
            assert_eq!(&trace.h_q[..96], &h_q[..]);
            assert_eq!(&trace.mu_acc[..32], &acc_mu[..]);
            assert_eq!(&trace.gamma_acc[..32], &acc_g[..]);
            for (j, (&acc, &threshold)) in acc_g.iter().zip(&params.gamma_threshold).enumerate() {
                assert_eq!(code.is_active(j), acc > threshold);
            }
            let mut plain = SparseCode::default();
            enc.encode(&x, &mut plain).unwrap();
            assert_eq!(plain, code, "traced and untraced encode agree");
            codes.push(code);
        }
        assert!(codes.windows(2).all(|w| w[0] == w[1]), "kernels disagree");
    }
}

/// int8 vs f32 on random weights and smooth random windows.
/// The committed `edge` model (768 inputs: every SIMD block full, 128 hidden rows in
/// groups of four): every kernel gives the same integer trace and `SparseCode` as the
/// portable one, on smooth windows and on windows that saturate the input quantisation.
#[test]
fn committed_model_gives_identical_codes_with_every_kernel() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/edge.vscq");
    let bytes = std::fs::read(path).expect("the committed model models/edge.vscq");
    let blob = ModelBlob::parse(&bytes).unwrap();
    let mut windows = raw_windows(blob.channels(), blob.window_len(), 48, 21);
    let m = windows[0].len();
    // Extremes: everything clamps to 255, to 0, or alternates between them.
    windows.push(vec![1e3; m]);
    windows.push(vec![-1e3; m]);
    windows.push(
        (0..m)
            .map(|i| if i % 3 == 0 { 1e3 } else { -1e3 })
            .collect(),
    );
    let mut active = 0;
    for (i, x) in windows.iter().enumerate() {
        let mut first: Option<(SparseCode, Box<IntTrace>)> = None;
        for kernel in Kernel::ALL {
            let enc = Encoder::new(blob).with_kernel(kernel);
            let mut code = SparseCode::default();
            let mut trace = Box::<IntTrace>::default();
            enc.encode_traced(x, &mut code, &mut trace).unwrap();
            let mut plain = SparseCode::default();
            enc.encode(x, &mut plain).unwrap();
            assert_eq!(plain, code, "window {i}: {kernel:?} traced vs untraced");
            match &first {
                None => first = Some((code, trace)),
                Some((c0, t0)) => {
                    assert_eq!(*t0, trace, "window {i}: {kernel:?} trace differs");
                    assert_eq!(*c0, code, "window {i}: {kernel:?} code differs");
                }
            }
        }
        active += first.map_or(0, |(c, _)| c.active_count());
    }
    // The comparison covers the sparse μ rows too, not only all-inactive codes.
    assert!(active > 0, "no window had an active dimension");
}

/// A random encoder for `features` whose input scaling is fitted (min/max) on `calib`,
/// as the trainer does, so the quantised inputs use their whole range.
fn fitted_encoder(
    channels: ChannelSet,
    features: InputFeatures,
    calib: &[Vec<f32>],
    seed: u64,
) -> F32Encoder {
    let mut enc = F32Encoder::random_with(channels, features, 128, 32, seed);
    if features == InputFeatures::BandSpectrum {
        let inputs: Vec<Vec<f32>> = calib.iter().map(|x| enc.model_input(x).unwrap()).collect();
        enc.scaling = (0..enc.input_dim)
            .map(|i| {
                let (lo, hi) = inputs
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(v[i]), hi.max(v[i]))
                    });
                ChannelScaling::from_min_max(lo, hi)
            })
            .collect();
    }
    enc
}

#[test]
fn int8_agrees_with_f32_reference() {
    let cases = [
        (InputFeatures::Waveform, SpikeHead::Paper),
        (InputFeatures::BandSpectrum, SpikeHead::Paper),
        (InputFeatures::BandSpectrum, SpikeHead::Sigmoid),
    ];
    for (features, spike_head) in cases {
        let mut agree = 0usize;
        let mut total = 0usize;
        let (mut mu_f, mut mu_q) = (vec![], vec![]);
        let mut gamma_err = 0f32;
        for seed in 0..3u64 {
            let channels = ChannelSet::ACC_ONLY;
            let calib = raw_windows(channels, WINDOW_LEN, 200, seed);
            let enc =
                fitted_encoder(channels, features, &calib, 100 + seed).with_spike_head(spike_head);
            let bytes = quantise(&enc, &calib).unwrap();
            let int8 = Encoder::new(ModelBlob::parse(&bytes).unwrap());
            assert_eq!(int8.blob().features(), features);
            assert_eq!(int8.blob().spike_head(), spike_head);
            for x in raw_windows(channels, WINDOW_LEN, 150, 1000 + seed) {
                let (mu, _, log_gamma) = enc.forward(&x);
                let mut code = SparseCode::default();
                int8.encode(&x, &mut code).unwrap();
                for j in 0..32 {
                    let spike_f = log_gamma[j] > 0.5f32.ln();
                    total += 1;
                    agree += (spike_f == code.is_active(j)) as usize;
                    if spike_f && code.is_active(j) {
                        mu_f.push(mu[j] as f64);
                        mu_q.push(code.mu(j) as f64);
                        gamma_err = gamma_err.max((log_gamma[j].exp() - code.gamma(j)).abs());
                    }
                }
            }
        }
        let agreement = agree as f64 / total as f64;
        let corr = correlation(&mu_f, &mu_q);
        println!(
            "{} ({} spike head): spike agreement {agreement:.4} over {total}, active-mu correlation {corr:.5} over {}, max |Δγ| {gamma_err:.4}",
            features.name(),
            spike_head.name(),
            mu_f.len()
        );
        assert!(mu_f.len() > 1000, "too few active dims to measure");
        assert!(agreement >= 0.98, "spike agreement {agreement}");
        assert!(corr >= 0.99, "mu correlation {corr}");
        // γ comes from a 2⁻¹⁶ fixed-point pre-activation and a lookup table; random
        // weights put some windows near γ = ½ where it is steepest (waveform: 0.007,
        // spectrum: 0.034 measured).
        assert!(gamma_err < 0.05, "gamma error {gamma_err}");
    }
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

// ---------------------------------------------------------------------------------------
// Fuzzing. `VSC_FUZZ_CASES` is the total number of cases over the three fuzz tests below
// (split 40 % random bytes, 40 % mutated blobs, 20 % valid blobs with extreme values);
// the default keeps `cargo test` fast, `VSC_FUZZ_CASES=1000000` is the full run.

const DEFAULT_FUZZ_CASES: u64 = 10_000;

/// This test's share (in percent) of the total fuzz cases.
fn fuzz_cases(percent: u64) -> u32 {
    let total = std::env::var("VSC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_FUZZ_CASES);
    (total * percent / 100).clamp(1, u32::MAX as u64) as u32
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Parse, and when the blob is accepted, encode something with it: must never panic.
/// Returns whether the blob was accepted.
fn parse_and_maybe_encode(bytes: &[u8], x: &[f32]) -> bool {
    let parsed = ModelBlob::parse(bytes);
    if let Ok(blob) = parsed {
        let mut code = SparseCode::default();
        for kernel in Kernel::ALL {
            let _ = Encoder::new(blob).with_kernel(kernel).encode(x, &mut code);
        }
        let mut window = x.to_vec();
        window.resize(blob.input_dim(), 0.5);
        let enc = Encoder::new(blob);
        enc.encode(&window, &mut code).expect("valid window");
        assert_eq!(code.latent_dim as usize, blob.latent_dim());
        assert_eq!(code.spike_bits >> blob.latent_dim().min(63) >> 1, 0);
    }
    parsed.is_ok()
}

#[test]
fn fuzz_random_bytes_never_panic() {
    let mut runner = runner(fuzz_cases(40));
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..400),
                any::<bool>(),
            ),
            |(mut bytes, seal)| {
                // Half the inputs get a valid header prefix so the later checks run too.
                if seal && bytes.len() >= 12 {
                    bytes[..4].copy_from_slice(b"VSCQ");
                    bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
                    bytes[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
                    let n = bytes.len() as u32;
                    bytes[8..12].copy_from_slice(&n.to_le_bytes());
                    fix_crc(&mut bytes);
                }
                let _ = parse_and_maybe_encode(&bytes, &[0.0; 4]);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_mutated_blobs_never_panic() {
    let base = small_blob();
    let len = base.len();
    let cases = fuzz_cases(40);
    let mut runner = runner(cases);
    let accepted = std::cell::Cell::new(0u32);
    let rejected = std::cell::Cell::new(0u32);
    let edit = (0..len + 8, any::<u8>(), 0u8..4);
    runner
        .run(
            &(
                proptest::collection::vec(edit, 1..6),
                any::<bool>(),
                proptest::collection::vec(-1e6f32..1e6, 0..60),
            ),
            |(edits, reseal, x)| {
                let mut bytes = base.clone();
                for (pos, value, kind) in edits {
                    match kind {
                        0 if pos < bytes.len() => bytes[pos] = value,
                        1 if pos < bytes.len() => bytes[pos] ^= 1 << (value % 8),
                        2 => bytes.truncate(pos.min(bytes.len())),
                        _ => bytes.insert(pos.min(bytes.len()), value),
                    }
                }
                if reseal {
                    // Keep the length field and CRC consistent so deep checks are hit.
                    if bytes.len() >= 12 {
                        let n = bytes.len() as u32;
                        bytes[8..12].copy_from_slice(&n.to_le_bytes());
                    }
                    fix_crc(&mut bytes);
                }
                let counter = if parse_and_maybe_encode(&bytes, &x) {
                    &accepted
                } else {
                    &rejected
                };
                counter.set(counter.get() + 1);
                Ok(())
            },
        )
        .unwrap();
    // Both the deep paths (accepted, then encoded) and the error paths were exercised.
    println!(
        "mutated blobs: {} accepted, {} rejected",
        accepted.get(),
        rejected.get()
    );
    if cases >= 1000 {
        assert!(accepted.get() >= cases / 20 && rejected.get() >= cases / 20);
    }
}

/// Structurally valid blobs with arbitrary (extreme) numbers, random dimensions and
/// random windows: parse must accept, encode must not panic, kernels must agree.
#[test]
fn fuzz_valid_blobs_with_extreme_values() {
    let mut runner = runner(fuzz_cases(20));
    let strategy = (
        1u16..0x200,
        1usize..=8,
        1usize..=40,
        1usize..=MAX_LATENT,
        any::<u64>(),
        proptest::collection::vec(any::<f32>(), 0..8),
    );
    runner
        .run(&strategy, |(bits, wl, hidden, latent, seed, specials)| {
            let channels = ChannelSet::from_bits(bits).unwrap();
            let enc = F32Encoder::random(channels, wl, hidden, latent, seed);
            let mut p = QuantParams::calibrate(&enc, &raw_windows(channels, wl, 2, seed)).unwrap();
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            for layer in [&mut p.hidden, &mut p.mu, &mut p.gamma] {
                for r in 0..layer.rows {
                    let v = next();
                    layer.bias[r] = match v % 4 {
                        0 => MAX_ABS_BIAS,
                        1 => -MAX_ABS_BIAS,
                        _ => (v >> 32) as i32 >> 2,
                    };
                    layer.multiplier[r] = if v % 3 == 0 {
                        i32::MAX
                    } else {
                        (v >> 33) as i32
                    };
                    layer.shift[r] = 1 + (v >> 8) as u8 % 62;
                }
                for w in layer.weights.iter_mut() {
                    *w = match next() % 3 {
                        0 => -128,
                        1 => 127,
                        _ => next() as i8,
                    };
                }
            }
            for t in p.gamma_threshold.iter_mut() {
                *t = next() as i32;
            }
            for (c, sc) in p.scaling.iter_mut().enumerate() {
                if let Some(&v) = specials.get(c).filter(|v| v.is_finite()) {
                    sc.offset = v;
                    sc.scale = v.abs();
                }
            }
            let bytes = p.to_blob().unwrap();
            let blob = ModelBlob::parse(&bytes).unwrap();
            let mut x = raw_windows(channels, wl, 1, seed)[0].clone();
            let n = x.len();
            for (i, v) in specials.iter().enumerate() {
                if v.is_finite() && i < n {
                    x[i * 7 % n] = *v;
                }
            }
            let mut codes = vec![];
            for kernel in Kernel::ALL {
                let mut code = SparseCode::default();
                Encoder::new(blob)
                    .with_kernel(kernel)
                    .encode(&x, &mut code)
                    .unwrap();
                codes.push(code);
            }
            for code in &codes[1..] {
                prop_assert_eq!(codes[0], *code);
            }
            let (_, _, _, _, acc_g) = reference_trace(&p, &x);
            for (j, (&acc, &threshold)) in acc_g.iter().zip(&p.gamma_threshold).enumerate() {
                prop_assert_eq!(codes[0].is_active(j), acc > threshold);
            }
            prop_assert_eq!(acc_g.len(), latent);
            Ok(())
        })
        .unwrap();
}

/// Format 5 stores the dense layers in row pairs; the same model in format 4 (row-major)
/// loads, round-trips and encodes identically with every kernel; the layout byte and the
/// pair layout's bounds are checked.
#[test]
fn row_pair_blobs_equal_row_major_ones_and_are_checked() {
    let (_, v5_bytes) = model(ChannelSet::TOTAL_ACC, WINDOW_LEN, 21, 7, 11);
    let v5 = ModelBlob::parse(&v5_bytes).unwrap();
    assert_eq!(v5.version(), FORMAT_VERSION);
    for layer in [v5.hidden(), v5.mu_head(), v5.gamma_head()] {
        assert_eq!(layer.layout(), WeightLayout::RowPairs);
    }
    assert_eq!(v5_bytes[LAYOUT_OFFSET], 7);
    let params = QuantParams::from_blob(&v5);
    let v4_bytes = params.to_blob_of_version(4);
    let v4 = ModelBlob::parse(&v4_bytes).unwrap();
    assert_eq!(v4.hidden().layout(), WeightLayout::RowMajor);
    assert_eq!(QuantParams::from_blob(&v4), params);
    assert_eq!(params.to_blob().unwrap(), v5_bytes);
    // Odd row counts (21 hidden rows, 7 latent): the last pair's second row is zero.
    assert_eq!(v5.hidden().pairs(), 11);
    for r in 0..21 {
        for c in 0..v5.hidden().cols {
            assert_eq!(v5.hidden().weight(r, c), v4.hidden().weight(r, c));
        }
    }
    let windows = raw_windows(ChannelSet::TOTAL_ACC, WINDOW_LEN, 20, 5);
    for kernel in Kernel::ALL {
        for x in &windows {
            let (mut a, mut b) = (SparseCode::default(), SparseCode::default());
            let (mut ta, mut tb) = (IntTrace::default(), IntTrace::default());
            Encoder::new(v5)
                .with_kernel(kernel)
                .encode_traced(x, &mut a, &mut ta)
                .unwrap();
            Encoder::new(v4)
                .with_kernel(kernel)
                .encode_traced(x, &mut b, &mut tb)
                .unwrap();
            assert_eq!((a, &ta), (b, &tb), "{kernel:?}");
            Encoder::new(v5)
                .with_kernel(kernel)
                .encode(x, &mut b)
                .unwrap();
            assert_eq!(a, b, "{kernel:?} untraced");
        }
    }
    // Layout bits above the three layers, or any in a format-4 blob, are reserved.
    let reseal = |mut b: Vec<u8>| {
        fix_crc(&mut b);
        ModelBlob::parse(&b).unwrap_err()
    };
    let mut bad = v5_bytes.clone();
    bad[LAYOUT_OFFSET] = 8 | 7;
    assert_eq!(
        reseal(bad),
        BlobError::Reserved {
            offset: LAYOUT_OFFSET
        }
    );
    let mut bad = v4_bytes.clone();
    bad[LAYOUT_OFFSET] = 1;
    assert_eq!(
        reseal(bad),
        BlobError::Reserved {
            offset: LAYOUT_OFFSET
        }
    );
    // The hidden layer's weights in the blob, and the halfword of (row, col).
    let weights = v5.hidden().weight_bytes();
    let at = weights.as_ptr() as usize - v5_bytes.as_ptr() as usize;
    assert_eq!(at % 4, 0, "row pairs start word-aligned in the blob");
    let pair_cols = v5.hidden().pair_cols();
    let halfword = |r: usize, c: usize| at + (r / 2) * 2 * pair_cols + 2 * c;
    // A row whose Σ|w| exceeds the bound: row 3 all 127 (3 · 128 = 384 columns).
    let mut big = v5_bytes.clone();
    for c in 0..v5.hidden().cols {
        let a = v5.hidden().weight(2, c);
        let h = blob::pair_halfword(a, 127).to_le_bytes();
        big[halfword(3, c)..halfword(3, c) + 2].copy_from_slice(&h);
    }
    let err = reseal(big);
    assert_eq!(
        err,
        BlobError::RowL1 {
            section: Section::Hidden,
            row: 3,
            l1: 127 * 384
        }
    );
    const { assert!(127 * 384 > MAX_ROW_L1) };
    assert!(err.to_string().contains("hidden layer row 3"), "{err}");
    // Padding columns and the missing 22nd row must be 0.
    let mut pad = v5_bytes.clone();
    pad[halfword(20, 5) + 1] = 1;
    assert_eq!(
        reseal(pad),
        BlobError::Reserved {
            offset: halfword(20, 5) + 1 - 1
        }
    );
    // A second weight of 128 (h − a = 32768) is not an int8 weight.
    let mut wide = v5_bytes.clone();
    let h = (-32768i16).wrapping_sub(5).to_le_bytes(); // a = −5, (h − a) / 256 = 128
    wide[halfword(1, 4)..halfword(1, 4) + 2].copy_from_slice(&h);
    assert_eq!(
        reseal(wide),
        BlobError::BadPairWeight {
            section: Section::Hidden,
            row: 1,
            col: 4
        }
    );
}

/// Models whose rows exceed the pair kernel's bound are still written, row-major.
#[test]
fn the_quantiser_keeps_rows_beyond_the_bound_row_major() {
    // 9 channels × 128 random weights: Σ|w| ≈ 64 · 1152 per row, beyond the bound.
    let (_, bytes) = model(ChannelSet::ALL, WINDOW_LEN, 16, 8, 3);
    let blob = ModelBlob::parse(&bytes).unwrap();
    assert_eq!(blob.hidden().layout(), WeightLayout::RowMajor);
    assert_eq!(blob.mu_head().layout(), WeightLayout::RowPairs);
    assert_eq!(bytes[LAYOUT_OFFSET], 6);
    let x = &raw_windows(ChannelSet::ALL, WINDOW_LEN, 1, 9)[0];
    let codes = Kernel::ALL.map(|k| {
        let mut c = SparseCode::default();
        Encoder::new(blob).with_kernel(k).encode(x, &mut c).unwrap();
        c
    });
    assert!(codes.iter().all(|c| *c == codes[0]));
}
