//! The band spectrum by its definition: a textbook radix-2 transform, one stage at a
//! time over the whole array, and `std`'s square root. [`super::fft`] must give the same
//! bits (see its docs); this is its test oracle and the definition the tests hold it to.

extern crate std;

use super::TWIDDLES;
use crate::preprocess::WINDOW_LEN;

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
    // 2X[k] = 2E[k] + e^{−2πik/128}·2O[k], with E and O the transforms of the even and
    // odd samples: 2E[k] = Z[k] + conj Z[64−k], 2O[k] = (Z[k] − conj Z[64−k]) / i.
    // Bins 0 and 64 only need Z[0]: X[0] = Re Z[0] + Im Z[0], X[64] = Re Z[0] − Im Z[0].
    // Twice the amplitudes: no halving of E and O, and the bands divide by 256.
    let mut amplitude2 = [0.0f32; HALF + 1];
    amplitude2[HALF] = (re[0] - im[0]).abs() * 2.0;
    for k in 1..HALF {
        let (zr, zi) = (re[k], im[k]);
        let (cr, ci) = (re[HALF - k], -im[HALF - k]);
        let (er, ei) = (zr + cr, zi + ci);
        let (or, oi) = (zi - ci, cr - zr);
        let (c, s) = TWIDDLES[k];
        let xr = er + c * or - s * oi;
        let xi = ei + c * oi + s * or;
        amplitude2[k] = (xr * xr + xi * xi).sqrt();
    }
    out[0] = (re[0] + im[0]) / WINDOW_LEN as f32;
    for (o, pair) in out[1..].iter_mut().zip(amplitude2[1..].chunks_exact(2)) {
        *o = (pair[0] + pair[1]) / (2 * WINDOW_LEN) as f32;
    }
}
