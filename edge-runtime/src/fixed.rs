//! Fixed-point arithmetic shared by the encoder, the spike head and the blob checks:
//! requantisation (`requant`) and `exp` in Q15 (`exp_q15`). Kept apart from the encoder
//! so that `spike` and `blob` can use it without importing the encoder.

/// `floor(a·m / 2^s + ½)` = `(a·m + 2^(s−1)) >> s` in i64 (round half up), computed as
/// `((a·m >> (s−1)) + 1) >> 1`: the same integer for every input (with `p = a·m =
/// q·2^(s−1) + r`, `0 ≤ r < 2^(s−1)`, both are `floor((q + 1) / 2)` because
/// `r / 2^s < ½`), without the 64-bit `2^(s−1)` constant a variable shift would build.
/// `s` outside 1..=62 is clamped into it (the blob parser rejects such shifts anyway).
#[inline(always)]
pub const fn requant(acc: i32, multiplier: i32, shift: u8) -> i64 {
    let s = if shift < 1 {
        1
    } else if shift > 62 {
        62
    } else {
        shift
    };
    (((acc as i64 * multiplier as i64) >> (s - 1)) + 1) >> 1
}

/// The hidden layer's requantisation (encoder step 2): `min(requant(max(acc, 0), m, s),
/// 255) as u8`, the same byte for every input. Shifts of 33 and more (the usual case:
/// the quantiser keeps `m` in [2³⁰, 2³¹) and the factor below 2⁻²) need only the high
/// word of the product: adding `2^(s−1)` does not touch the low word, and the low word,
/// below `2^32 ≤ 2^(s−1)`, cannot carry a floor division by `2^s` (see
/// [`requant_from_high_word`]). That is one `UMULL` and three shifts and adds on the
/// Cortex-M4 instead of a 64-bit variable shift.
#[inline(always)]
pub fn requant_relu_u8(acc: i32, multiplier: i32, shift: u8) -> u8 {
    let a = acc.max(0);
    if multiplier >= 0 && (33..=62).contains(&shift) {
        return requant_relu_u8_high(a, multiplier as u32, shift);
    }
    requant(a, multiplier, shift).min(255) as u8
}

/// [`requant_relu_u8`] for a multiplier `m ≥ 0` (as `u32`) and a shift `s` in 33..=62
/// (other shifts give another byte): `a = max(acc, 0)`, `high = ⌊a·m / 2³²⌋`, then
/// `min(((high >> (s − 33)) + 1) >> 1, 255)`, which is [`requant_from_high_word`] with
/// `k = s − 32`, without the range checks: the encoder calls it once it has checked
/// every row of a layer.
#[inline(always)]
pub(crate) fn requant_relu_u8_high(acc: i32, m: u32, s: u8) -> u8 {
    let high = ((acc.max(0) as u32 as u64 * m as u64) >> 32) as u32;
    let q = ((high >> (u32::from(s).wrapping_sub(33) & 31)) + 1) >> 1;
    q.min(255) as u8
}

/// The μ head's requantisation (encoder step 5): `requant(acc, m, s)` saturated to
/// `i16`, the same value for every input; fast for shifts of 33 and more as
/// [`requant_relu_u8`].
#[inline(always)]
pub fn requant_i16(acc: i32, multiplier: i32, shift: u8) -> i16 {
    if multiplier >= 0 && (33..=62).contains(&shift) {
        let high = ((acc as i64 * multiplier as i64) >> 32) as i32;
        return requant_from_high_word(high, shift).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    }
    requant(acc, multiplier, shift).clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// `requant(a, m, s)` for `s` in 33..=62 from `high = floor(a·m / 2³²)` alone. With
/// `p = a·m = high·2³² + low`, `0 ≤ low < 2³²`, and `k = s − 32`:
/// `floor((p + 2^(s−1)) / 2^s) = floor((N + low/2³²) / 2^k)` with the integer
/// `N = high + 2^(k−1)`, which is `floor(N / 2^k)` because `low/2³² < 1` never reaches
/// the next multiple of `2^k`; and `floor(N / 2^k) = ((high >> (k−1)) + 1) >> 1` as in
/// [`requant`]. `|high| < 2³⁰` for any `i32` operands, so nothing overflows.
#[inline(always)]
fn requant_from_high_word(high: i32, shift: u8) -> i32 {
    let k = u32::from(shift).wrapping_sub(32).clamp(1, 30);
    ((high >> (k - 1)) + 1) >> 1
}

/// `ln ½` in Q16, rounded towards −∞: the most negative `v_q` of an active dimension.
pub const V_Q16_MIN: i32 = -45427;

const EXP_TABLE_LEN: usize = 180;

/// `round(32768 · exp(−k/256))` for k in 0..180, from a Taylor series in i128 fixed
/// point (Q60), evaluated at compile time. Every entry lies in 16285..=32768, so the
/// table is stored as `u16` (half the flash of `i32`).
const fn exp_table() -> [u16; EXP_TABLE_LEN] {
    let mut table = [0u16; EXP_TABLE_LEN];
    let one: i128 = 1 << 60;
    let mut k = 0;
    while k < EXP_TABLE_LEN {
        let mut sum = one;
        let mut term = one;
        let mut n = 1;
        while n < 30 {
            term = term * k as i128 / (256 * n as i128);
            if n % 2 == 1 {
                sum -= term;
            } else {
                sum += term;
            }
            n += 1;
        }
        // Q60 → Q15 with rounding.
        table[k] = ((sum + (1 << 44)) >> 45) as u16;
        k += 1;
    }
    table
}

static EXP_TABLE: [u16; EXP_TABLE_LEN] = exp_table();

/// γ = exp(v) in Q15 for `v_q` = v in Q16, clamped to `[V_Q16_MIN, 0]` first, so the
/// result is in 16384..=32767 (γ = 1 saturates to 32767). Linear interpolation between
/// table points 1/256 apart: `t[k] − ((t[k] − t[k+1])·f + 128) >> 8`, `k = d >> 8`,
/// `f = d & 255`, `d = −v_q`.
pub fn exp_q15(v_q: i64) -> i16 {
    let d = (-v_q.clamp(V_Q16_MIN as i64, 0)) as usize;
    let (k, f) = (d >> 8, (d & 0xFF) as i32);
    let t0 = EXP_TABLE.get(k).map_or(16384, |&t| i32::from(t));
    let t1 = EXP_TABLE.get(k + 1).map_or(16384, |&t| i32::from(t));
    let g = t0 - (((t0 - t1) * f + 128) >> 8);
    g.clamp(0, i16::MAX as i32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_word_requantisation_equals_the_reference() {
        // Every shift it is used for, multipliers at both ends of [0, 2³¹), and
        // accumulators of every sign and size (extremes and a xorshift sweep).
        let mut next = crate::test_rng::xorshift32(0x9E37_79B9);
        for s in 33..=62u8 {
            for _ in 0..2_000 {
                let m = [0, 1, 1 << 30, i32::MAX, (next() >> 1) as i32][next() as usize % 5];
                let acc = [
                    0,
                    -1,
                    1,
                    i32::MIN,
                    i32::MAX,
                    next() as i32,
                    (next() >> 8) as i32,
                ][next() as usize % 7];
                assert_eq!(
                    requant_relu_u8_high(acc, m as u32, s),
                    requant(acc.max(0), m, s).min(255) as u8,
                    "acc {acc} m {m} s {s}"
                );
            }
        }
    }

    #[test]
    fn requant_rounds_half_up() {
        // m / 2^s = 1/2: 3 → 1.5 → 2, −3 → −1.5 → −1, 1 → 0.5 → 1, −1 → −0.5 → 0.
        assert_eq!(requant(3, 1 << 30, 31), 2);
        assert_eq!(requant(-3, 1 << 30, 31), -1);
        assert_eq!(requant(1, 1 << 30, 31), 1);
        assert_eq!(requant(-1, 1 << 30, 31), 0);
        assert_eq!(requant(i32::MIN, i32::MAX, 62), -1);
        assert_eq!(
            requant(i32::MAX, i32::MAX, 1),
            (i32::MAX as i64 * i32::MAX as i64 + 1) >> 1
        );
    }

    /// The shift-first form equals `(a·m + 2^(s−1)) >> s` on extremes and random inputs.
    #[test]
    fn requant_equals_the_rounding_formula() {
        let formula = |a: i32, m: i32, s: u8| (a as i64 * m as i64 + (1i64 << (s - 1))) >> s;
        let mut next = crate::test_rng::xorshift32(0x9E37_79B9);
        let extremes = [i32::MIN, i32::MIN + 1, -3, -2, -1, 0, 1, 2, 3, i32::MAX];
        for s in 1..=62u8 {
            for &a in &extremes {
                for &m in &extremes {
                    assert_eq!(requant(a, m, s), formula(a, m, s), "{a} {m} {s}");
                }
            }
            for _ in 0..2000 {
                let (a, m) = (
                    next() as i32 >> (next() % 32),
                    next() as i32 >> (next() % 32),
                );
                assert_eq!(requant(a, m, s), formula(a, m, s), "{a} {m} {s}");
            }
        }
    }

    /// The fast requantisations equal their definitions through `requant`, at every
    /// shift, on extremes and random operands (negative multipliers included, which the
    /// blob parser rejects but the functions still define).
    #[test]
    fn fast_requantisations_equal_the_definitions() {
        let mut next = crate::test_rng::xorshift32(0x2545_F491);
        let extremes = [
            i32::MIN,
            i32::MIN + 1,
            -65536,
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            65535,
            1 << 30,
            i32::MAX,
        ];
        let check = |a: i32, m: i32, s: u8| {
            assert_eq!(
                requant_relu_u8(a, m, s),
                requant(a.max(0), m, s).min(255) as u8,
                "u8 {a} {m} {s}"
            );
            assert_eq!(
                requant_i16(a, m, s),
                requant(a, m, s).clamp(i16::MIN as i64, i16::MAX as i64) as i16,
                "i16 {a} {m} {s}"
            );
        };
        for s in 0..=70u8 {
            for &a in &extremes {
                for &m in &extremes {
                    check(a, m, s);
                }
            }
            for _ in 0..20_000 {
                let a = next() as i32 >> (next() % 32);
                let m = next() as i32 >> (next() % 32);
                // Products near the rounding and saturation edges of this shift.
                let edge = (511i128 << s) >> 1;
                let near = (edge / i128::from(m.max(1))).clamp(0, i32::MAX as i128) as i32;
                check(a, m, s);
                check(near.wrapping_add(a >> 20), m, s);
            }
        }
    }

    #[test]
    fn exp_table_entries_fit_u16() {
        assert_eq!(EXP_TABLE[0], 32768);
        assert_eq!(EXP_TABLE[EXP_TABLE_LEN - 1], 16285);
        assert!(EXP_TABLE.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn exp_table_is_accurate() {
        for d in 0..=(-V_Q16_MIN) {
            let v = -(d as f64) / 65536.0;
            let exact = v.exp() * 32768.0;
            let got = exp_q15(-(d as i64)) as f64;
            assert!(
                (got - exact.min(32767.0)).abs() <= 2.0,
                "d {d}: {got} vs {exact}"
            );
        }
        assert_eq!(exp_q15(5), i16::MAX);
        assert_eq!(exp_q15(i64::MIN), exp_q15(V_Q16_MIN as i64));
        assert!(exp_q15(V_Q16_MIN as i64) >= 16383);
    }
}
