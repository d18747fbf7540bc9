//! The band spectrum at FFT speed, with exactly the arithmetic of the straightforward
//! radix-2 transform it replaces (kept as the test oracle in `spectrum.rs`).
//!
//! Every output is a chain of IEEE additions, subtractions and multiplications, so a
//! faster schedule gives the same bits as long as it performs the same operations on the
//! same operands. Only the *order of independent operations* and the *memory layout*
//! differ from the oracle:
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
//! `(1, −0)` adds `b` itself instead of `b · 1 − b_im · (−0)`, and `−x` is folded into the
//! neighbouring addition (`a + (−b)` is `a − b` in IEEE arithmetic). For finite operands
//! the dropped products are `b` itself and a zero, so results are equal; they can differ
//! only in the sign of a zero (which no later operation turns into a non-zero difference:
//! there are no divisions, and the amplitudes square their inputs) or where an
//! intermediate is already infinite (windows with values beyond ~10³⁶, where the oracle
//! returns NaN instead of ∞). The amplitudes and bands are therefore bit-identical to the
//! oracle's for every window without overflow, the mean up to the sign of a zero; the
//! tests check this on random windows of every magnitude and on the HAPT test windows.

use core::ops::{Add, Mul, Sub};

use super::TWIDDLES;
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
    /// [`sqrt_lane`] in every lane.
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
        sqrt_lane(self)
    }
}

/// Initial guess of `1/√x` from the bits of `x` (within 3.5 %).
pub(super) const RSQRT_MAGIC: u32 = 0x5f37_5a86;
/// Newton steps of the reciprocal root: the error goes 3.5e-2 → 1.8e-3 → 5e-6 → 4e-11.
pub(super) const NEWTON_STEPS: usize = 3;

/// `x` is positive, finite and not zero (bits `1..=0x7f7f_ffff`).
#[inline(always)]
fn is_positive_finite(bits: u32) -> bool {
    bits.wrapping_sub(1) < 0x7f7f_ffff
}

/// The root outside the positive finite range: `±0`, `+∞` and NaN are their own root, a
/// negative number has none.
#[inline(never)]
#[cold]
fn special_sqrt(x: f32) -> f32 {
    if x == 0.0 || x.is_nan() || x > 0.0 {
        x
    } else {
        f32::NAN
    }
}

/// `√x` as `x · rsqrt(x)`, the reciprocal root by Newton steps that only multiply: the
/// same operations as `spectrum::sqrt_f32`, so the same bits (tested), with the range
/// test on the integer bits that the initial guess needs anyway (one compare instead of
/// two floating-point tests on a Cortex-M4F).
#[inline(always)]
fn sqrt_lane(x: f32) -> f32 {
    let bits = x.to_bits();
    if !is_positive_finite(bits) {
        return special_sqrt(x);
    }
    let mut r = f32::from_bits(RSQRT_MAGIC.wrapping_sub(bits >> 1));
    let half_x = 0.5 * x;
    for _ in 0..NEWTON_STEPS {
        r *= 1.5 - half_x * r * r;
    }
    x * r
}

/// A complex value per lane.
#[derive(Clone, Copy)]
struct Complex<V> {
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

/// `bitrev3[i]`: the three bits of `i` reversed.
const BITREV3: [usize; 8] = [0, 4, 2, 6, 1, 5, 3, 7];

/// Stages 1–3 (butterfly spans 1, 2, 4) of the decimation-in-time transform of
/// `z[n] = x[2n] + i·x[2n+1]`, whose input the oracle loads in bit-reversed order
/// (position `r` holds `z[bitrev6(r)]`). Block `b` (positions `8b..8b + 8`) holds
/// `z[8 · bitrev3(p) + bitrev3(b)]` at position `8b + p` and is transformed on its own by
/// these stages; `m = bitrev3(b)` names the samples it reads.
#[inline(always)]
fn first_pass<V: Lane>(x: &[V; WINDOW_LEN], re: &mut [V; HALF], im: &mut [V; HALF]) {
    let w16 = twiddle::<V>(16);
    let w32 = twiddle::<V>(32);
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
        let (v1, v3) = butterfly(u1, u3, w32);
        let (v4, v6) = butterfly_one(u4, u6);
        let (v5, v7) = butterfly(u5, u7, w32);
        // Span 4: twiddles 0, 16, 32, 48.
        let (w0, w4) = butterfly_one(v0, v4);
        let (w1, w5) = butterfly(v1, v5, w16);
        let (w2, w6) = butterfly(v2, v6, w32);
        let (w3, w7) = butterfly(v3, v7, w48);
        let block = [w0, w1, w2, w3, w4, w5, w6, w7];
        let start = (8 * b) % HALF;
        let (Some(re_block), Some(im_block)) =
            (re.get_mut(start..start + 8), im.get_mut(start..start + 8))
        else {
            continue;
        };
        for ((r, i), v) in re_block.iter_mut().zip(im_block).zip(block) {
            *r = v.re;
            *i = v.im;
        }
    }
}

/// Stages 4–6 (spans 8, 16, 32): column `j` holds positions `j + 8q`, `q < 8`, and is
/// transformed on its own; the twiddle of a butterfly at position `p` with span `h` is
/// `(p mod h) · 64 / h`.
#[inline(always)]
fn second_pass<V: Lane>(re: &mut [V; HALF], im: &mut [V; HALF]) {
    for j in 0..8 {
        let mut v: [Complex<V>; 8] = core::array::from_fn(|q| Complex {
            re: re[(j + 8 * q) % HALF],
            im: im[(j + 8 * q) % HALF],
        });
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
        for (q, v) in v.iter().enumerate() {
            re[(j + 8 * q) % HALF] = v.re;
            im[(j + 8 * q) % HALF] = v.im;
        }
    }
}

/// `|X[k]|` and `|X[64 − k]|` of the real window from `Z[k]` and `Z[64 − k]`, the
/// oracle's split `X[k] = E[k] + e^{−2πik/128} · O[k]` evaluated for both bins with
/// shared terms: for `64 − k`, `E` is conjugated, `O` is the same, the twiddle's cosine
/// changes sign, so every product of the second bin is ± one of the first.
#[inline(always)]
fn split_pair<V: Lane>(z: Complex<V>, w: Complex<V>, t: Complex<V>) -> (V, V) {
    let half = V::splat(0.5);
    let minus_half = V::splat(-0.5);
    // The oracle: er = ½(zr + cr), ei = ½(zi + ci), or = ½(zi − ci), oi = −½(zr − cr)
    // with (cr, ci) = (wr, −wi).
    let er = half * (z.re + w.re);
    let ei = half * (z.im - w.im);
    let or = half * (z.im + w.im);
    let oi = minus_half * (z.re - w.re);
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
pub(super) fn band_spectrum<V: Lane>(x: &[V; WINDOW_LEN], out: &mut [V; VALUES]) {
    let zero = V::splat(0.0);
    let mut re = [zero; HALF];
    let mut im = [zero; HALF];
    first_pass(x, &mut re, &mut im);
    second_pass(&mut re, &mut im);
    let z = |k: usize| Complex {
        re: re[k % HALF],
        im: im[k % HALF],
    };
    // Division by 128 is multiplication by 2⁻⁷: both round the same exact quotient.
    let inv_n = V::splat(1.0 / WINDOW_LEN as f32);
    // X[0] = Re Z[0] + Im Z[0] is 128 × the mean.
    out[0] = (re[0] + im[0]) * inv_n;
    // Band b is bins 2b + 1 and 2b + 2. Step i gets bins 2i + 1, 2i + 2 (band i) and
    // 63 − 2i, 62 − 2i; band 31 − i is bins 63 − 2i and 64 − 2i, the latter from the
    // step before (`carry`), so no amplitude is stored. Bin 64 is Re Z[0] − Im Z[0].
    // In the last step the second pair is bin 32 with itself: its first result is
    // X[32] as the oracle computes it, the second is not used.
    let mut carry = (re[0] - im[0]).abs();
    for i in 0..HALF / 4 {
        let (k_odd, k_even) = (2 * i + 1, 2 * i + 2);
        let (low_odd, high_odd) = split_pair(z(k_odd), z(HALF - k_odd), twiddle(k_odd));
        let (low_even, high_even) = split_pair(z(k_even), z(HALF - k_even), twiddle(k_even));
        out[(1 + i) % VALUES] = (low_odd + low_even) * inv_n;
        out[(32 - i) % VALUES] = (high_odd + carry) * inv_n;
        carry = high_even;
    }
}

#[cfg(test)]
pub(super) fn sqrt_test_inputs() -> impl Iterator<Item = [f32; 8]> {
    let mut bits = 0x1234_5679u32;
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -1.0,
        f32::MIN_POSITIVE,
        f32::MAX,
    ];
    let more = [
        -f32::NAN,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::from_bits(0x7f7f_ffff),
        f32::from_bits(0xff80_0001),
        -f32::MIN_POSITIVE,
        1.0,
        4.0,
    ];
    [specials, more]
        .into_iter()
        .chain((0..400_000).map(move |_| {
            core::array::from_fn(|k| {
                bits ^= bits << 13;
                bits ^= bits >> 17;
                bits ^= bits << 5;
                if k % 2 == 0 {
                    f32::from_bits(bits)
                } else {
                    f32::from_bits(0x3f80_0000 ^ (bits >> 9))
                }
            })
        }))
}

#[cfg(test)]
mod tests {
    use super::super::reference::sqrt_f32;
    use super::*;

    #[test]
    fn lane_roots_are_the_oracle_root_bit_for_bit() {
        for inputs in sqrt_test_inputs() {
            for x in inputs {
                let (want, got) = (sqrt_f32(x), Lane::sqrt(x));
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{x:e}: {got:e} vs {want:e}"
                );
            }
        }
    }

    #[test]
    fn twiddles_of_k_and_64_minus_k_differ_in_the_cosine_sign_only() {
        for k in 1..HALF / 2 {
            let (c, s) = TWIDDLES[k];
            let (c2, s2) = TWIDDLES[HALF - k];
            assert_eq!((c2.to_bits(), s2.to_bits()), ((-c).to_bits(), s.to_bits()));
        }
        assert_eq!(TWIDDLES[0], (1.0, -0.0));
        assert_eq!(TWIDDLES[0].1.to_bits(), (-0.0f32).to_bits());
    }
}
