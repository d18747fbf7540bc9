//! The band spectrum at FFT speed, with exactly the arithmetic of the straightforward
//! radix-2 transform that defines it (`reference.rs`, the test oracle).
//!
//! Every output is a chain of IEEE additions, subtractions, multiplications and square
//! roots, so a faster schedule gives the same bits as long as it performs the same
//! operations on the same operands. Only the *order of independent operations* and the
//! *memory layout* differ from the oracle:
//! - the six radix-2 stages of the 64-point complex transform run as two passes of three
//!   stages over eight values held in registers (loads and stores: 512 instead of 1536);
//!   the bit-reversed load happens inside the first pass;
//! - the real-input split reads `Z[k]` and `Z[64 − k]` once for both bins `k` and
//!   `64 − k` and shares their four products (the twiddles of `k` and `64 − k` differ only
//!   in the sign of the cosine, exactly, see the `twiddles` test);
//! - the channels of a batch ride in the lanes of a [`Lane`] (one `f32` per channel), so
//!   on x86-64 a batch of 4 or 8 channels costs about what one channel does.
//!
//! Two rewrites drop operations whose result is known: a butterfly with the twiddle
//! `(1, −0)` adds `b` itself instead of `b · 1 − b_im · (−0)`, one with `(0, −1)` adds
//! `(b_im, −b_re)` instead of `(b_re · 0 − b_im · (−1), b_re · (−1) + b_im · 0)`, and
//! `−x` is folded into the neighbouring addition (`a + (−b)` is `a − b` in IEEE
//! arithmetic). For finite operands the dropped products are exact or zeros, so results
//! are equal; they can differ only in the sign of a zero (which no later operation turns
//! into a non-zero difference: there are no divisions, and the amplitudes square their
//! inputs) or where an intermediate is already infinite (windows with values beyond
//! ~10³⁶, where the oracle returns NaN instead of ∞). The amplitudes and bands are
//! therefore bit-identical to the oracle's for every window without overflow, the mean up
//! to the sign of a zero; the tests check this on random windows of every magnitude and
//! on every HAPT window.

use core::ops::{Add, Mul, Sub};

use super::TWIDDLES;
use super::sqrt::sqrt_f32;
use crate::preprocess::WINDOW_LEN;

/// Complex points of the transform (the real window as 64 complex samples).
const HALF: usize = WINDOW_LEN / 2;
/// Outputs per channel: the mean and 32 bands.
pub(super) const VALUES: usize = 33;

/// One `f32` per channel of a batch; every operation acts lane by lane, so a lane
/// computes exactly what a single channel computes. `f32` is the one-channel case; the
/// SIMD types are in `x86.rs`.
pub(super) trait Lane:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    fn splat(v: f32) -> Self;
    /// `|x|` (the sign bit cleared).
    fn abs(self) -> Self;
    /// The correctly rounded square root in every lane ([`sqrt_f32`]).
    fn sqrt(self) -> Self;
}

impl Lane for f32 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        sqrt_f32(self)
    }
}

/// A complex value per lane.
#[derive(Clone, Copy)]
pub(super) struct Complex<V> {
    re: V,
    im: V,
}

/// The twiddle `e^{−2πik/128}` of the oracle's table, `k < 64`.
#[inline(always)]
fn twiddle<V: Lane>(k: usize) -> Complex<V> {
    let (c, s) = TWIDDLES.get(k).copied().unwrap_or((1.0, -0.0));
    Complex {
        re: V::splat(c),
        im: V::splat(s),
    }
}

/// The oracle's butterfly: `t = b · w`, then `(a + t, a − t)`, in its operation order.
#[inline(always)]
fn butterfly<V: Lane>(a: Complex<V>, b: Complex<V>, w: Complex<V>) -> (Complex<V>, Complex<V>) {
    let tr = b.re * w.re - b.im * w.im;
    let ti = b.re * w.im + b.im * w.re;
    (
        Complex {
            re: a.re + tr,
            im: a.im + ti,
        },
        Complex {
            re: a.re - tr,
            im: a.im - ti,
        },
    )
}

/// [`butterfly`] with the twiddle `(1, −0)`: `t = b` (see the module docs).
#[inline(always)]
fn butterfly_one<V: Lane>(a: Complex<V>, b: Complex<V>) -> (Complex<V>, Complex<V>) {
    (
        Complex {
            re: a.re + b.re,
            im: a.im + b.im,
        },
        Complex {
            re: a.re - b.re,
            im: a.im - b.im,
        },
    )
}

/// [`butterfly`] with the twiddle `(0, −1)`: `t = (b_im, −b_re)` (see the module docs).
#[inline(always)]
fn butterfly_minus_i<V: Lane>(a: Complex<V>, b: Complex<V>) -> (Complex<V>, Complex<V>) {
    (
        Complex {
            re: a.re + b.im,
            im: a.im - b.re,
        },
        Complex {
            re: a.re - b.im,
            im: a.im + b.re,
        },
    )
}

/// `bitrev3[i]`: the three bits of `i` reversed.
const BITREV3: [usize; 8] = [0, 4, 2, 6, 1, 5, 3, 7];

/// The 64 complex points of the transform in blocks of eight: position `8b + e` is
/// `blocks[b][e]`. The caller's scratch, reused for every channel: [`first_pass`]
/// overwrites all of it, and one zeroed array per window is cheaper than one per channel.
pub(super) type Blocks<V> = [[Complex<V>; 8]; HALF / 8];

/// A zeroed [`Blocks`] for [`band_spectrum`].
pub(super) fn scratch<V: Lane>() -> Blocks<V> {
    let zero = Complex {
        re: V::splat(0.0),
        im: V::splat(0.0),
    };
    [[zero; 8]; HALF / 8]
}

/// Stages 1–3 (butterfly spans 1, 2, 4) of the decimation-in-time transform of
/// `z[n] = x[2n] + i·x[2n+1]`, whose input the oracle loads in bit-reversed order
/// (position `r` holds `z[bitrev6(r)]`). Block `b` (positions `8b..8b + 8`) holds
/// `z[8 · bitrev3(p) + bitrev3(b)]` at position `8b + p` and is transformed on its own by
/// these stages; `m = bitrev3(b)` names the samples it reads.
#[inline(always)]
fn first_pass<V: Lane>(x: &[V; WINDOW_LEN], blocks: &mut Blocks<V>) {
    let w16 = twiddle::<V>(16);
    let w48 = twiddle::<V>(48);
    for (m, &b) in BITREV3.iter().enumerate() {
        // z[8q + m] = (x[16q + 2m], x[16q + 2m + 1]).
        let z = |q: usize| Complex {
            re: x[(16 * q + 2 * m) % WINDOW_LEN],
            im: x[(16 * q + 2 * m + 1) % WINDOW_LEN],
        };
        let u = [z(0), z(4), z(2), z(6), z(1), z(5), z(3), z(7)];
        // Span 1: twiddle 0 everywhere.
        let (u0, u1) = butterfly_one(u[0], u[1]);
        let (u2, u3) = butterfly_one(u[2], u[3]);
        let (u4, u5) = butterfly_one(u[4], u[5]);
        let (u6, u7) = butterfly_one(u[6], u[7]);
        // Span 2: twiddles 0 and 32.
        let (v0, v2) = butterfly_one(u0, u2);
        let (v1, v3) = butterfly_minus_i(u1, u3);
        let (v4, v6) = butterfly_one(u4, u6);
        let (v5, v7) = butterfly_minus_i(u5, u7);
        // Span 4: twiddles 0, 16, 32, 48.
        let (w0, w4) = butterfly_one(v0, v4);
        let (w1, w5) = butterfly(v1, v5, w16);
        let (w2, w6) = butterfly_minus_i(v2, v6);
        let (w3, w7) = butterfly(v3, v7, w48);
        blocks[b % 8] = [w0, w1, w2, w3, w4, w5, w6, w7];
    }
}

/// Stages 4–6 (spans 8, 16, 32): column `j` holds positions `j + 8q`, `q < 8`, and is
/// transformed on its own; the twiddle of a butterfly at position `p` with span `h` is
/// `(p mod h) · 64 / h`.
#[inline(always)]
fn second_pass<V: Lane>(blocks: &mut Blocks<V>) {
    for j in 0..8 {
        let mut v: [Complex<V>; 8] = core::array::from_fn(|q| blocks[q][j]);
        let w = twiddle::<V>(8 * j);
        for q in [0, 2, 4, 6] {
            (v[q], v[q + 1]) = butterfly(v[q], v[q + 1], w);
        }
        let w = [twiddle::<V>(4 * j), twiddle::<V>(4 * j + 32)];
        for q in [0, 1, 4, 5] {
            (v[q], v[q + 2]) = butterfly(v[q], v[q + 2], w[q % 2]);
        }
        for q in 0..4 {
            (v[q], v[q + 4]) = butterfly(v[q], v[q + 4], twiddle(2 * j + 16 * q));
        }
        for (block, v) in blocks.iter_mut().zip(v) {
            block[j] = v;
        }
    }
}

/// `2|X[k]|` and `2|X[64 − k]|` of the real window from `Z[k]` and `Z[64 − k]`, the
/// oracle's split `2X[k] = 2E[k] + e^{−2πik/128} · 2O[k]` evaluated for both bins with
/// shared terms: for `64 − k`, `E` is conjugated, `O` is the same, the twiddle's cosine
/// changes sign, so every product of the second bin is ± one of the first.
#[inline(always)]
fn split_pair<V: Lane>(z: Complex<V>, w: Complex<V>, t: Complex<V>) -> (V, V) {
    // The oracle: er = zr + cr, ei = zi + ci, or = zi − ci, oi = cr − zr with
    // (cr, ci) = (wr, −wi).
    let er = z.re + w.re;
    let ei = z.im - w.im;
    let or = z.im + w.im;
    let oi = w.re - z.re;
    let (p, q) = (t.re * or, t.im * oi);
    let (r, s) = (t.re * oi, t.im * or);
    // Bin k: xr = er + c·or − s·oi, xi = ei + c·oi + s·or.
    let xr = er + p - q;
    let xi = ei + r + s;
    // Bin 64 − k: er' = er, ei' = −ei, or' = or, oi' = −oi, c' = −c, s' = s.
    let yr = er - p + q;
    let yi = r - ei + s;
    ((xr * xr + xi * xi).sqrt(), (yr * yr + yi * yi).sqrt())
}

/// `[mean, A_0, …, A_31]` of every lane's channel (see `spectrum`'s module docs) from its
/// 128 samples. Inlined into each caller, so that a SIMD caller compiled with more
/// target features than the crate's baseline gets them here too.
#[inline(always)]
pub(super) fn band_spectrum<V: Lane>(
    x: &[V; WINDOW_LEN],
    blocks: &mut Blocks<V>,
    out: &mut [V; VALUES],
) {
    first_pass(x, blocks);
    second_pass(blocks);
    let points = blocks.as_flattened();
    let z = |k: usize| {
        points.get(k).copied().unwrap_or(Complex {
            re: V::splat(0.0),
            im: V::splat(0.0),
        })
    };
    let z0 = z(0);
    // Division by 128 (256) is multiplication by 2⁻⁷ (2⁻⁸): both round the same exact
    // quotient.
    let inv_n = V::splat(1.0 / WINDOW_LEN as f32);
    let inv_2n = V::splat(0.5 / WINDOW_LEN as f32);
    // X[0] = Re Z[0] + Im Z[0] is 128 × the mean.
    out[0] = (z0.re + z0.im) * inv_n;
    // Band b is bins 2b + 1 and 2b + 2: (2|X| + 2|X'|) / 256. Step i gets bins 2i + 1,
    // 2i + 2 (band i) and 63 − 2i, 62 − 2i; band 31 − i is bins 63 − 2i and 64 − 2i, the
    // latter from the step before (`carry`), so no amplitude is stored. 2|X[64]| is
    // 2|Re Z[0] − Im Z[0]|. In the last step the second pair is bin 32 with itself: its
    // first result is 2|X[32]| as the oracle computes it, the second is not used.
    let nyquist = (z0.re - z0.im).abs();
    let mut carry = nyquist + nyquist;
    for i in 0..HALF / 4 {
        let (k_odd, k_even) = (2 * i + 1, 2 * i + 2);
        let (low_odd, high_odd) = split_pair(z(k_odd), z(HALF - k_odd), twiddle(k_odd));
        let (low_even, high_even) = split_pair(z(k_even), z(HALF - k_even), twiddle(k_even));
        out[(1 + i) % VALUES] = (low_odd + low_even) * inv_2n;
        out[(32 - i) % VALUES] = (high_odd + carry) * inv_2n;
        carry = high_even;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiddles_of_k_and_64_minus_k_differ_in_the_cosine_sign_only() {
        for k in 1..HALF / 2 {
            let (c, s) = TWIDDLES[k];
            let (c2, s2) = TWIDDLES[HALF - k];
            assert_eq!((c2.to_bits(), s2.to_bits()), ((-c).to_bits(), s.to_bits()));
        }
        assert_eq!(TWIDDLES[0], (1.0, -0.0));
        assert_eq!(TWIDDLES[0].1.to_bits(), (-0.0f32).to_bits());
        // Bin 32: exactly (0, −1), the twiddle `butterfly_minus_i` stands for.
        assert_eq!(TWIDDLES[HALF / 2], (0.0, -1.0));
        assert_eq!(TWIDDLES[HALF / 2].0.to_bits(), 0);
    }
}
