//! The optional activity head of a format-4 blob: layout, validation, old formats, and
//! the encoder's integer classifier against a plain reference on the same code.

use edge_runtime::F32Encoder;
use edge_runtime::blob::{
    self, BlobError, FORMAT_VERSION, HEADER_LEN, LOGIT_SCALE, MAX_ABS_BIAS, ModelBlob, SCORE_SHIFT,
    Section, WeightLayout,
};
use edge_runtime::encoder::{Encoder, SparseCode, requant};
use edge_runtime::preprocess::ChannelSet;
use edge_runtime::quant::{QuantError, QuantParams};

const CLASSES: [u8; 3] = [1, 4, 6];

fn windows(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let (amp, f) = (2.0 * next(), 0.3 * next());
            (0..len)
                .map(|t| amp * (f * t as f32).sin() + next())
                .collect()
        })
        .collect()
}

/// A small model (3 channels × 16 samples, H 24, J 8) and a head with known weights.
fn params_with_head() -> (F32Encoder, QuantParams, Vec<f32>, Vec<f32>) {
    let enc = F32Encoder::random(ChannelSet::TOTAL_ACC, 16, 24, 8, 11);
    let mut p = QuantParams::calibrate(&enc, &windows(64, 48, 5)).unwrap();
    let j = p.latent_dim;
    let w: Vec<f32> = (0..CLASSES.len() * j)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.11)
        .collect();
    let b = vec![0.3, -0.2, 0.05];
    p.set_activity_head(&CLASSES, &w, &b).unwrap();
    (enc, p, w, b)
}

fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len();
    let crc = blob::crc32(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn head_round_trips_and_counts_its_weights() {
    let (_, p, _, _) = params_with_head();
    let bytes = p.to_blob().unwrap();
    let blob = ModelBlob::parse(&bytes).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), FORMAT_VERSION);
    assert_eq!(u16::from_le_bytes([bytes[42], bytes[43]]), 3);
    let head = blob.activity_head().expect("head");
    assert_eq!(head.classes(), 3);
    assert_eq!(
        (head.class_id(0), head.class_id(2), head.class_id(3)),
        (1, 6, 0)
    );
    assert_eq!((head.layer.rows, head.layer.cols), (3, 8));
    assert_eq!(blob.weight_bytes(), 24 * 48 + 2 * 8 * 24 + 3 * 8);
    assert_eq!(QuantParams::from_blob(&blob).to_blob().unwrap(), bytes);
    assert_eq!(
        bytes.len(),
        blob::blob_len(3, 48, 24, 8) + 3 + 3 * 13 + 3 * 8,
        "class ids + one layer section"
    );
}

#[test]
fn older_formats_still_load_and_may_not_carry_a_head() {
    let (_, mut p, _, _) = params_with_head();
    p.activity = None;
    let v5_bytes = p.to_blob().unwrap();
    let v5 = ModelBlob::parse(&v5_bytes).unwrap();
    assert!(v5.activity_head().is_none());
    assert_eq!(v5.hidden().layout(), WeightLayout::RowPairs);
    // Formats 2 to 4: the same model with row-major dense weights.
    let mut bytes = p.to_blob_of_version(4);
    for version in [2u16, 3, 4] {
        bytes[4..6].copy_from_slice(&version.to_le_bytes());
        fix_crc(&mut bytes);
        let old = ModelBlob::parse(&bytes).unwrap();
        assert!(old.activity_head().is_none());
        assert_eq!(old.hidden().layout(), WeightLayout::RowMajor);
        let x = &windows(1, 48, 9)[0];
        let (mut a, mut b) = (SparseCode::default(), SparseCode::default());
        Encoder::new(old).encode(x, &mut a).unwrap();
        Encoder::new(v5).encode(x, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.activity, a.activity_score), (0, 0));
    }
    // A version 3 blob with a class count set: byte 42 was reserved then.
    let (_, p, _, _) = params_with_head();
    let mut bytes = p.to_blob_of_version(4);
    bytes[4..6].copy_from_slice(&3u16.to_le_bytes());
    fix_crc(&mut bytes);
    assert_eq!(
        ModelBlob::parse(&bytes).unwrap_err(),
        BlobError::Reserved { offset: 42 }
    );
}

fn parse_edited(edit: impl Fn(&mut Vec<u8>)) -> BlobError {
    let (_, p, _, _) = params_with_head();
    let mut bytes = p.to_blob().unwrap();
    edit(&mut bytes);
    fix_crc(&mut bytes);
    ModelBlob::parse(&bytes).unwrap_err()
}

#[test]
fn malformed_heads_are_typed_errors() {
    assert_eq!(
        parse_edited(|b| b[42] = 1),
        BlobError::BadClassCount { count: 1 }
    );
    assert_eq!(
        parse_edited(|b| b[42] = 17),
        BlobError::BadClassCount { count: 17 }
    );
    // Two classes instead of three: the sections no longer add up.
    assert!(matches!(
        parse_edited(|b| b[42] = 2),
        BlobError::Length { .. }
    ));
    let (_, p, _, _) = params_with_head();
    let bytes = p.to_blob().unwrap();
    let head_start = bytes.len() - 4 - (3 * 13 + 3 * 8) - 3;
    assert_eq!(&bytes[head_start..head_start + 3], &CLASSES);
    assert_eq!(
        parse_edited(|b| b[head_start + 1] = 0),
        BlobError::BadClassId {
            row: 1,
            class_id: 0
        }
    );
    assert_eq!(
        parse_edited(|b| b[head_start + 2] = 1),
        BlobError::BadClassId {
            row: 2,
            class_id: 1
        }
    );
    let layer = head_start + 3;
    let section = Section::Activity;
    let put = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    assert_eq!(
        parse_edited(|b| put(b, layer + 4, 0)),
        BlobError::BadWeightScale { section, row: 1 }
    );
    assert_eq!(
        parse_edited(|b| put(b, layer + 12 + 8, (MAX_ABS_BIAS + 1) as u32)),
        BlobError::BiasOutOfRange {
            section,
            row: 2,
            value: MAX_ABS_BIAS + 1
        }
    );
    assert_eq!(
        parse_edited(|b| put(b, layer + 24, -1i32 as u32)),
        BlobError::NegativeMultiplier {
            section,
            row: 0,
            value: -1
        }
    );
    assert_eq!(
        parse_edited(|b| b[layer + 36 + 1] = 0),
        BlobError::ShiftOutOfRange {
            section,
            row: 1,
            value: 0
        }
    );
    assert!(
        BlobError::BadClassId {
            row: 2,
            class_id: 1
        }
        .to_string()
        .contains("row 2")
    );
    let _ = HEADER_LEN;
}

#[test]
fn the_quantiser_rejects_unusable_heads() {
    let (_, mut p, w, b) = params_with_head();
    let j = p.latent_dim;
    for (ids, w, b) in [
        (&[1u8][..], &w[..j], &b[..1]),
        (&[1, 1, 2][..], &w[..], &b[..]),
        (&[0, 1, 2][..], &w[..], &b[..]),
        (&CLASSES[..], &w[..j], &b[..]),
    ] {
        assert!(matches!(
            p.set_activity_head(ids, w, b),
            Err(QuantError::ActivityHead(_))
        ));
    }
    let mut nan = w.clone();
    nan[3] = f32::NAN;
    assert!(p.set_activity_head(&CLASSES, &nan, &b).is_err());
}

/// The encoder's class and score equal a plain i64 evaluation of the documented integer
/// semantics on the same code, and its logits track the real-valued classifier.
#[test]
fn encoder_head_follows_the_integer_semantics() {
    let (_, p, w, b) = params_with_head();
    let bytes = p.to_blob().unwrap();
    let blob = ModelBlob::parse(&bytes).unwrap();
    let head = *blob.activity_head().unwrap();
    let encoder = Encoder::new(blob);
    let j = blob.latent_dim();
    let mut seen = [0usize; 7];
    let mut worst_logit_err = 0f64;
    for x in windows(500, 48, 77) {
        let mut code = SparseCode::default();
        encoder.encode(&x, &mut code).unwrap();
        let mut logits = Vec::new();
        for c in 0..head.classes() {
            let mut acc = i64::from(head.layer.bias(c));
            for d in 0..j {
                acc += i64::from(head.layer.weight(c, d)) * i64::from(code.mu_q[d]);
            }
            let logit = requant(acc as i32, head.layer.multiplier(c), head.layer.shift(c));
            logits.push(logit);
            // The same logit from the real weights on the code's real μ.
            let real: f64 = f64::from(b[c])
                + (0..j)
                    .map(|d| f64::from(w[c * j + d]) * f64::from(code.mu(d)))
                    .sum::<f64>();
            let err = (logit as f64 * f64::from(LOGIT_SCALE) - real).abs();
            worst_logit_err = worst_logit_err.max(err / (1.0 + real.abs()));
        }
        let best = (0..logits.len())
            .max_by_key(|&c| (logits[c], std::cmp::Reverse(c)))
            .unwrap();
        let second = (0..logits.len())
            .filter(|&c| c != best)
            .map(|c| logits[c])
            .max()
            .unwrap();
        assert_eq!(code.activity, head.class_id(best));
        let score = ((logits[best] - second) >> SCORE_SHIFT).min(127);
        assert_eq!(i64::from(code.activity_score), score);
        seen[usize::from(code.activity)] += 1;
    }
    assert!(
        worst_logit_err < 0.02,
        "int8 logits vs real: relative error {worst_logit_err}"
    );
    // The test exercises more than one class.
    assert!(
        seen.iter().filter(|&&n| n > 0).count() >= 2,
        "classes predicted: {seen:?}"
    );
}
