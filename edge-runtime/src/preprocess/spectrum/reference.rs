//! The band spectrum as first written: a textbook radix-2 transform, one stage at a
//! time over the whole array. [`super::fft`] must give the same bits (see its docs); this
//! is its test oracle and the definition the tests hold it to.

use super::TWIDDLES;
use crate::preprocess::WINDOW_LEN;

/// Square root as `x · rsqrt(x)`, the reciprocal root by Newton steps that only
/// multiply. Plain IEEE multiplications and subtractions give the same bits on the host
/// and the device (so do their features); `core` has no `f32::sqrt` without `std`, Rust
/// cannot name the Cortex-M4F's single-precision VSQRT in `asm!`, and libm's exact
/// software root costs 700 bytes of flash the budget does not have.
pub(super) fn sqrt_f32(x: f32) -> f32 {
    if x <= 0.0 || !x.is_finite() {
        return if x == 0.0 || x.is_nan() || x > 0.0 {
            x
        } else {
            f32::NAN
        };
    }
    // The exponent trick starts within 3.5 %; each step squares the relative error
    // (3.5e-2 → 1.8e-3 → 5e-6 → 4e-11), so three reach f32 rounding.
    let mut r = f32::from_bits(0x5f37_5a86 - (x.to_bits() >> 1));
    let half_x = 0.5 * x;
    for _ in 0..3 {
        r *= 1.5 - half_x * r * r;
    }
    x * r
}

/// Points of the complex FFT: a real window of 128 samples is transformed as 64 complex
/// samples `z[n] = x[2n] + i·x[2n+1]` and split afterwards (half the work of a complex
/// 128-point transform).
const HALF: usize = WINDOW_LEN / 2;

/// One channel: `x` has 128 samples, `out` gets 33 values (see `spectrum`'s module docs).
pub(super) fn band_spectrum(x: &[f32], out: &mut [f32]) {
    let mut re = [0.0f32; HALF];
    let mut im = [0.0f32; HALF];
    // Radix-2 decimation in time: load in bit-reversed order, then log2(64) = 6 stages.
    let bits = HALF.trailing_zeros();
    for (n, pair) in x.chunks_exact(2).enumerate() {
        let r = n.reverse_bits() >> (usize::BITS - bits);
        re[r] = pair[0];
        im[r] = pair[1];
    }
    let mut half = 1;
    while half < HALF {
        // Twiddle j of this stage is e^{−2πi·j/(2·half)} = TWIDDLES[j · 128/(2·half)].
        let step = WINDOW_LEN / (2 * half);
        for (block_re, block_im) in re
            .chunks_exact_mut(2 * half)
            .zip(im.chunks_exact_mut(2 * half))
        {
            let (a_re, b_re) = block_re.split_at_mut(half);
            let (a_im, b_im) = block_im.split_at_mut(half);
            let pairs = a_re.iter_mut().zip(a_im.iter_mut());
            let others = b_re.iter_mut().zip(b_im.iter_mut());
            let twiddles = TWIDDLES.iter().step_by(step);
            for (((ar, ai), (br, bi)), &(c, s)) in pairs.zip(others).zip(twiddles) {
                let tr = *br * c - *bi * s;
                let ti = *br * s + *bi * c;
                *br = *ar - tr;
                *bi = *ai - ti;
                *ar += tr;
                *ai += ti;
            }
        }
        half *= 2;
    }
    // X[k] = E[k] + e^{−2πik/128}·O[k], with E and O the transforms of the even and odd
    // samples: E[k] = (Z[k] + conj Z[64−k]) / 2, O[k] = (Z[k] − conj Z[64−k]) / 2i.
    // Bins 0 and 64 only need Z[0]: X[0] = Re Z[0] + Im Z[0], X[64] = Re Z[0] − Im Z[0].
    let mut amplitude = [0.0f32; HALF + 1];
    amplitude[HALF] = (re[0] - im[0]).abs();
    for k in 1..HALF {
        let (zr, zi) = (re[k], im[k]);
        let (cr, ci) = (re[HALF - k], -im[HALF - k]);
        let (er, ei) = (0.5 * (zr + cr), 0.5 * (zi + ci));
        let (or, oi) = (0.5 * (zi - ci), -0.5 * (zr - cr));
        let (c, s) = TWIDDLES[k];
        let xr = er + c * or - s * oi;
        let xi = ei + c * oi + s * or;
        amplitude[k] = sqrt_f32(xr * xr + xi * xi);
    }
    let n = WINDOW_LEN as f32;
    out[0] = (re[0] + im[0]) / n;
    for (o, pair) in out[1..].iter_mut().zip(amplitude[1..].chunks_exact(2)) {
        *o = (pair[0] + pair[1]) / n;
    }
}
