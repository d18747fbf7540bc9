//! Step 1's quantisation of a spectrum row: `x_q = quantise_input(x, offset, scale)` for
//! consecutive values and scaling entries, read straight from the blob's bytes. On x86-64
//! four values at a time in SSE2 with the same IEEE operations (the clamp moved behind
//! the rounding as in [`super::quantise_input_fast`], done in `f32` with `maxps`/`minps`,
//! whose NaN rule gives the cast's 0).

use super::quantise_input_fast;

/// Bytes of one scaling entry: `offset` and `scale`, little-endian `f32`.
const ENTRY: usize = 8;

/// `q[i] = quantise_input(values[i], offset_i, scale_i)` with entry `i` of `scaling`
/// (`(offset, scale)` pairs as in the blob), over the common length.
#[inline(always)]
pub(super) fn quantise_row(values: &[f32], scaling: &[u8], q: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    let (values, scaling, q) = x86::quantise_blocks(values, scaling, q);
    for ((q, &x), entry) in q.iter_mut().zip(values).zip(scaling.chunks_exact(ENTRY)) {
        let (offset, scale) = entry.split_at(ENTRY / 2);
        *q = quantise_input_fast(x, le_f32(offset), le_f32(scale));
    }
}

#[inline(always)]
fn le_f32(bytes: &[u8]) -> f32 {
    match bytes {
        &[a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #![allow(unsafe_code)]

    use core::arch::x86_64::{
        __m128, _mm_add_ps, _mm_cvtsi128_si32, _mm_cvttps_epi32, _mm_max_ps, _mm_min_ps,
        _mm_mul_ps, _mm_packs_epi32, _mm_packus_epi16, _mm_set1_ps, _mm_setzero_ps, _mm_shuffle_ps,
        _mm_sub_ps,
    };

    use super::ENTRY;

    /// Quantises the values of whole blocks of four; returns the rest of each slice.
    #[inline(always)]
    pub(super) fn quantise_blocks<'v, 's, 'q>(
        values: &'v [f32],
        scaling: &'s [u8],
        q: &'q mut [u8],
    ) -> (&'v [f32], &'s [u8], &'q mut [u8]) {
        let blocks = (values.len() / 4)
            .min(scaling.len() / (4 * ENTRY))
            .min(q.len() / 4);
        let (v_blocks, v_rest) = values.split_at(4 * blocks);
        let (s_blocks, s_rest) = scaling.split_at(4 * ENTRY * blocks);
        let (q_blocks, q_rest) = q.split_at_mut(4 * blocks);
        for ((v, s), q) in v_blocks
            .as_chunks::<4>()
            .0
            .iter()
            .zip(s_blocks.as_chunks::<{ 4 * ENTRY }>().0)
            .zip(q_blocks.as_chunks_mut::<4>().0)
        {
            *q = quantise4(*v, s);
        }
        (v_rest, s_rest, q_rest)
    }

    /// Four values with their four `(offset, scale)` entries.
    #[inline(always)]
    fn quantise4(values: [f32; 4], entries: &[u8; 4 * ENTRY]) -> [u8; 4] {
        let lo: [u8; 16] = entries[..16].try_into().unwrap_or([0; 16]);
        let hi: [u8; 16] = entries[16..].try_into().unwrap_or([0; 16]);
        // SAFETY: SSE2 is enabled on every x86-64 target; the transmutes are between
        // 16-byte types whose every bit pattern is valid.
        let word = unsafe {
            let x = core::mem::transmute::<[f32; 4], __m128>(values);
            let lo = core::mem::transmute::<[u8; 16], __m128>(lo);
            let hi = core::mem::transmute::<[u8; 16], __m128>(hi);
            // Entries are (offset, scale) pairs: even floats are offsets, odd are scales.
            let offset = _mm_shuffle_ps::<0b10_00_10_00>(lo, hi);
            let scale = _mm_shuffle_ps::<0b11_01_11_01>(lo, hi);
            let t = _mm_mul_ps(_mm_mul_ps(_mm_sub_ps(x, offset), scale), _mm_set1_ps(255.0));
            let two23 = _mm_set1_ps(8_388_608.0);
            let r = _mm_sub_ps(_mm_add_ps(t, two23), two23);
            // `maxps` returns its second operand when the first is NaN: NaN → 0, as the
            // cast does. Then every lane is an integer in 0..=255 or a bound.
            let r = _mm_min_ps(_mm_max_ps(r, _mm_setzero_ps()), _mm_set1_ps(255.0));
            let ints = _mm_cvttps_epi32(r);
            let words = _mm_packs_epi32(ints, ints);
            let bytes = _mm_packus_epi16(words, words);
            _mm_cvtsi128_si32(bytes)
        };
        word.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::quantise_input;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn rows_equal_the_reference_quantisation_at_every_length() {
        let mut next = crate::test_rng::xorshift32(0x2468_ace1);
        let specials = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            0.5 / 255.0,
            1.5 / 255.0,
            254.5 / 255.0,
            1.0,
            1e30,
            -1e30,
        ];
        for round in 0..3000 {
            let n = round % 41;
            let pick = |r: u32| -> f32 {
                match r % 4 {
                    0 => specials[(r / 4) as usize % specials.len()],
                    1 => f32::from_bits(r),
                    _ => (r % 100_000) as f32 / 50_000.0 - 0.5,
                }
            };
            let values: Vec<f32> = (0..n).map(|_| pick(next())).collect();
            let entries: Vec<(f32, f32)> = (0..n)
                .map(|_| {
                    let scale = [1.0, 0.37, 1e-3, 3.0e5, 0.0, f32::MAX][next() as usize % 6];
                    (pick(next()), scale)
                })
                .collect();
            let scaling: Vec<u8> = entries
                .iter()
                .flat_map(|(o, s)| o.to_le_bytes().into_iter().chain(s.to_le_bytes()))
                .collect();
            let mut got = std::vec![0xA5u8; n];
            quantise_row(&values, &scaling, &mut got);
            for (i, ((&x, &(o, s)), g)) in values.iter().zip(&entries).zip(&got).enumerate() {
                assert_eq!(
                    *g,
                    quantise_input(x, o, s),
                    "value {i} of {n}: {x:e} {o:e} {s:e}"
                );
            }
        }
    }

    /// The spectrum input stage finds non-finite samples through the channel means: the
    /// first bad sample is reported whichever channel it is in, the outputs are left
    /// alone, and finite windows whose spectrum overflows are encoded, not rejected.
    #[test]
    fn spectrum_input_stage_reports_the_first_non_finite_sample() {
        use crate::blob::{MAX_INPUT, ModelBlob};
        use crate::encoder::{EncodeError, Encoder, SparseCode};
        use crate::preprocess::{ChannelSet, InputFeatures, WINDOW_LEN};

        let channels = ChannelSet::ALL;
        let enc = crate::F32Encoder::random_with(channels, InputFeatures::BandSpectrum, 32, 8, 3);
        let wave = |c: usize, t: usize| ((c * 7 + t) as f32 * 0.37).sin() * (1 + c) as f32;
        let window: Vec<f32> = (0..9 * WINDOW_LEN)
            .map(|i| wave(i / WINDOW_LEN, i % WINDOW_LEN))
            .collect();
        let bytes = crate::quant::quantise(&enc, &[&window[..]]).unwrap();
        let encoder = Encoder::new(ModelBlob::parse(&bytes).unwrap());
        let mut good = SparseCode::default();
        encoder.encode(&window, &mut good).unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for index in [
                0,
                5,
                127,
                128,
                4 * WINDOW_LEN + 77,
                8 * WINDOW_LEN,
                9 * WINDOW_LEN - 1,
            ] {
                let mut x = window.clone();
                x[index] = bad;
                // A later bad sample too: the first one is named.
                let later = (index + 3 * WINDOW_LEN + 1).min(9 * WINDOW_LEN - 1);
                x[later] = f32::NAN;
                let mut out = good;
                assert_eq!(
                    encoder.encode(&x, &mut out),
                    Err(EncodeError::NonFinite { index }),
                    "{bad} at {index}"
                );
                assert_eq!(out, good, "output untouched");
                let mut x_q = [7u8; MAX_INPUT];
                assert!(encoder.model_input(&x, &mut x_q).is_err());
                assert_eq!(x_q, [0; MAX_INPUT], "x_q zeroed on error");
            }
        }
        // Finite samples whose sums overflow: the means are ∞, no sample is bad.
        let huge: Vec<f32> = (0..9 * WINDOW_LEN)
            .map(|i| if i % 2 == 0 { 3e38 } else { 2e38 })
            .collect();
        let mut out = SparseCode::default();
        assert_eq!(encoder.encode(&huge, &mut out), Ok(()));
    }

    #[test]
    fn short_scaling_or_output_limits_the_row() {
        let values = [0.5f32; 9];
        let scaling: Vec<u8> = (0..5)
            .flat_map(|_| 0.0f32.to_le_bytes().into_iter().chain(1.0f32.to_le_bytes()))
            .collect();
        let mut q = [7u8; 9];
        quantise_row(&values, &scaling, &mut q);
        assert_eq!(q, [128, 128, 128, 128, 128, 7, 7, 7, 7]);
        let mut short = [7u8; 3];
        quantise_row(&values, &scaling, &mut short);
        assert_eq!(short, [128; 3]);
    }
}
