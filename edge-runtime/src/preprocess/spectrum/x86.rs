//! Band spectra of several channels at once on x86-64: the lanes of an SSE2 (4 channels)
//! or AVX2 (8 channels) register each carry one channel through [`fft::band_spectrum`],
//! whose operations act lane by lane, so every lane computes exactly what the scalar
//! kernel computes for its channel (no fused multiply-add: the arithmetic is the same
//! IEEE operations, and `sqrtps` is the correctly rounded root that `sqrtss` computes for
//! one channel).
//!
//! SSE2 is part of every x86-64 target. AVX2 is used where it is found at run time (with
//! `std`) or enabled in the build, as for the dot kernel ([`kernels::avx2_available`]).
//! Intrinsics are `unsafe` to call outside a function compiled for their feature, so the
//! lane operations wrap them in `unsafe` blocks: [`F32x4`] relies on SSE2 being always
//! there, [`F32x8`] on its values existing only inside [`batch8`], which is only called
//! after AVX2 was found.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128, __m256, _mm_add_ps, _mm_andnot_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_mul_ps,
    _mm_set1_ps, _mm_sqrt_ps, _mm_sub_ps, _mm_unpackhi_ps, _mm_unpacklo_ps, _mm256_add_ps,
    _mm256_andnot_ps, _mm256_mul_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_shuffle_ps,
    _mm256_sqrt_ps, _mm256_sub_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};
use core::ops::{Add, Mul, Sub};

use super::fft::{self, Lane, VALUES};
use crate::kernels;
use crate::preprocess::WINDOW_LEN;

/// Four channels in one SSE2 register.
#[derive(Clone, Copy)]
pub(super) struct F32x4(__m128);

/// Eight channels in one AVX register; only ever created inside [`batch8`].
#[derive(Clone, Copy)]
pub(super) struct F32x8(__m256);

/// Implements the arithmetic traits for a lane type with its intrinsics.
macro_rules! lane_ops {
    ($t:ident, $add:ident, $sub:ident, $mul:ident) => {
        impl Add for $t {
            type Output = Self;
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                // SAFETY: see `lane_ops!`'s callers (the type's feature is present).
                $t(unsafe { $add(self.0, other.0) })
            }
        }
        impl Sub for $t {
            type Output = Self;
            #[inline(always)]
            fn sub(self, other: Self) -> Self {
                // SAFETY: as for `add`.
                $t(unsafe { $sub(self.0, other.0) })
            }
        }
        impl Mul for $t {
            type Output = Self;
            #[inline(always)]
            fn mul(self, other: Self) -> Self {
                // SAFETY: as for `add`.
                $t(unsafe { $mul(self.0, other.0) })
            }
        }
    };
}

// SSE2 is enabled on every x86-64 target.
lane_ops!(F32x4, _mm_add_ps, _mm_sub_ps, _mm_mul_ps);
// F32x8 values exist only inside `batch8`, which runs only where AVX2 was found.
lane_ops!(F32x8, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps);

impl Lane for F32x4 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: SSE2 is enabled on every x86-64 target.
        F32x4(unsafe { _mm_set1_ps(v) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: as for `splat`.
        F32x4(unsafe { _mm_andnot_ps(_mm_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: as for `splat`.
        F32x4(unsafe { _mm_sqrt_ps(self.0) })
    }
}

impl Lane for F32x8 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: F32x8 exists only inside `batch8` (AVX2 present).
        F32x8(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: as for `splat`.
        F32x8(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: as for `splat`.
        F32x8(unsafe { _mm256_sqrt_ps(self.0) })
    }
}

/// Band spectra of the channels of `window` (`n × 128` samples) that SIMD batches pay
/// for, passed to `sink` in order; returns the channels left for the scalar kernel (at
/// most one).
pub(super) fn band_spectra<'w>(
    window: &'w [f32],
    sink: &mut impl FnMut(&[f32; VALUES]),
) -> &'w [f32] {
    let mut rest = window;
    let channels = |w: &[f32]| w.len() / WINDOW_LEN;
    if kernels::avx2_available() {
        while channels(rest) >= 5 {
            let (batch, tail) = rest.split_at(rest.len().min(8 * WINDOW_LEN));
            // SAFETY: AVX2 was found just above.
            unsafe { batch8(batch, sink) };
            rest = tail;
        }
    }
    while channels(rest) >= 2 {
        let (batch, tail) = rest.split_at(rest.len().min(4 * WINDOW_LEN));
        batch4(batch, sink);
        rest = tail;
    }
    rest
}

/// Up to four channels (`batch`, whole channels only) in the lanes of [`F32x4`]; missing
/// channels are zero lanes whose results are dropped.
#[inline(never)]
fn batch4(batch: &[f32], sink: &mut impl FnMut(&[f32; VALUES])) {
    let rows = channel_rows::<4>(batch);
    // SAFETY (all intrinsics below): SSE2 is enabled on every x86-64 target.
    let zero = F32x4::splat(0.0);
    let mut x = [zero; WINDOW_LEN];
    for (t, out) in x.chunks_exact_mut(4).enumerate() {
        let load = |c: usize| load4(rows[c], 4 * t);
        let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
        unsafe {
            let t0 = _mm_unpacklo_ps(r0, r1);
            let t1 = _mm_unpacklo_ps(r2, r3);
            let t2 = _mm_unpackhi_ps(r0, r1);
            let t3 = _mm_unpackhi_ps(r2, r3);
            out[0] = F32x4(_mm_movelh_ps(t0, t1));
            out[1] = F32x4(_mm_movehl_ps(t1, t0));
            out[2] = F32x4(_mm_movelh_ps(t2, t3));
            out[3] = F32x4(_mm_movehl_ps(t3, t2));
        }
    }
    let mut spectra = [zero; VALUES];
    fft::band_spectrum(&x, &mut fft::scratch(), &mut spectra);
    let mut lanes = [[0.0f32; 4]; VALUES];
    for (l, v) in lanes.iter_mut().zip(&spectra) {
        *l = to_array4(v.0);
    }
    emit(&lanes, batch.len() / WINDOW_LEN, sink);
}

/// Up to eight channels in the lanes of [`F32x8`], as [`batch4`].
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn batch8(batch: &[f32], sink: &mut impl FnMut(&[f32; VALUES])) {
    let rows = channel_rows::<8>(batch);
    let zero = F32x8::splat(0.0);
    let mut x = [zero; WINDOW_LEN];
    for (t, out) in x.chunks_exact_mut(8).enumerate() {
        let r: [__m256; 8] = core::array::from_fn(|c| load8(rows[c], 8 * t));
        // 8 × 8 transpose: pairs, then quads within 128-bit halves, then halves.
        let p = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let q = [
            _mm256_shuffle_ps::<0x44>(p[0], p[2]),
            _mm256_shuffle_ps::<0xee>(p[0], p[2]),
            _mm256_shuffle_ps::<0x44>(p[1], p[3]),
            _mm256_shuffle_ps::<0xee>(p[1], p[3]),
            _mm256_shuffle_ps::<0x44>(p[4], p[6]),
            _mm256_shuffle_ps::<0xee>(p[4], p[6]),
            _mm256_shuffle_ps::<0x44>(p[5], p[7]),
            _mm256_shuffle_ps::<0xee>(p[5], p[7]),
        ];
        for k in 0..4 {
            out[k] = F32x8(_mm256_permute2f128_ps::<0x20>(q[k], q[k + 4]));
            out[k + 4] = F32x8(_mm256_permute2f128_ps::<0x31>(q[k], q[k + 4]));
        }
    }
    let mut spectra = [zero; VALUES];
    fft::band_spectrum(&x, &mut fft::scratch(), &mut spectra);
    let mut lanes = [[0.0f32; 8]; VALUES];
    for (l, v) in lanes.iter_mut().zip(&spectra) {
        *l = to_array8(v.0);
    }
    emit(&lanes, batch.len() / WINDOW_LEN, sink);
}

/// The first `N` whole channels of `batch` as rows; missing ones are all zeros.
#[inline(always)]
fn channel_rows<const N: usize>(batch: &[f32]) -> [&[f32; WINDOW_LEN]; N] {
    const ZEROS: [f32; WINDOW_LEN] = [0.0; WINDOW_LEN];
    let mut rows = batch.as_chunks::<WINDOW_LEN>().0.iter();
    core::array::from_fn(|_| rows.next().unwrap_or(&ZEROS))
}

/// Samples `t..t + 4` of a row.
#[inline(always)]
fn load4(row: &[f32; WINDOW_LEN], t: usize) -> __m128 {
    let v: [f32; 4] = row
        .get(t..t + 4)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0.0; 4]);
    // SAFETY: `[f32; 4]` and `__m128` have the same size and every bit pattern is valid.
    unsafe { core::mem::transmute::<[f32; 4], __m128>(v) }
}

/// Samples `t..t + 8` of a row.
#[inline(always)]
fn load8(row: &[f32; WINDOW_LEN], t: usize) -> __m256 {
    let v: [f32; 8] = row
        .get(t..t + 8)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0.0; 8]);
    // SAFETY: as for `load4`.
    unsafe { core::mem::transmute::<[f32; 8], __m256>(v) }
}

#[inline(always)]
fn to_array4(v: __m128) -> [f32; 4] {
    // SAFETY: as for `load4`.
    unsafe { core::mem::transmute::<__m128, [f32; 4]>(v) }
}

#[inline(always)]
fn to_array8(v: __m256) -> [f32; 8] {
    // SAFETY: as for `load4`.
    unsafe { core::mem::transmute::<__m256, [f32; 8]>(v) }
}

/// Passes lane `c < channels` of every value to `sink` as one channel's spectrum.
#[inline(always)]
fn emit<const N: usize>(
    lanes: &[[f32; N]; VALUES],
    channels: usize,
    sink: &mut impl FnMut(&[f32; VALUES]),
) {
    for c in 0..channels.min(N) {
        let mut values = [0.0f32; VALUES];
        for (v, lane) in values.iter_mut().zip(lanes) {
            *v = lane[c];
        }
        sink(&values);
    }
}

#[cfg(test)]
mod tests {
    use super::super::sqrt::tests::hard_inputs;
    use super::*;

    fn check(x: &[f32], got: &[f32]) {
        for (x, g) in x.iter().zip(got) {
            let want = x.sqrt();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{x:e}: {g:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn simd_roots_are_std_sqrt_bit_for_bit() {
        let mut inputs = hard_inputs();
        let mut bits = 0x1234_5679u32;
        inputs.extend((0..400_000).map(|_| {
            bits ^= bits << 13;
            bits ^= bits >> 17;
            bits ^= bits << 5;
            f32::from_bits(bits)
        }));
        for chunk in inputs.chunks_exact(8) {
            let v: [f32; 8] = chunk.try_into().unwrap();
            let lo: [f32; 4] = v[..4].try_into().unwrap();
            let hi: [f32; 4] = v[4..].try_into().unwrap();
            let root4 = |v: [f32; 4]| to_array4(F32x4(load4_array(v)).sqrt().0);
            check(&lo, &root4(lo));
            check(&hi, &root4(hi));
            if kernels::avx2_available() {
                // SAFETY: AVX2 is present.
                check(&v, &unsafe { root8(v) });
            }
        }
    }

    fn load4_array(v: [f32; 4]) -> __m128 {
        // SAFETY: same size, every bit pattern valid.
        unsafe { core::mem::transmute::<[f32; 4], __m128>(v) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn root8(v: [f32; 8]) -> [f32; 8] {
        // SAFETY: same size, every bit pattern valid.
        let v = unsafe { core::mem::transmute::<[f32; 8], __m256>(v) };
        to_array8(F32x8(v).sqrt().0)
    }

    #[test]
    fn avx2_is_tested_where_the_cpu_has_it() {
        assert_eq!(
            kernels::avx2_available(),
            std::is_x86_feature_detected!("avx2")
        );
    }
}
