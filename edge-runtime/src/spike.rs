//! The spike nonlinearity: how the γ head's pre-activation `v` becomes the spike
//! probability γ, in real numbers (training, f32 reference) and in integers (device).
//!
//! Two forms:
//! - [`SpikeHead::Paper`]: `log γ = −ReLU(−v)` (VSC.md §1, the paper and the authors'
//!   code). Every `v > 0` gives γ = 1 with no gradient, so a dimension that is on for
//!   every input can never be switched off by training.
//! - [`SpikeHead::Sigmoid`]: `log γ = log sigmoid(v) = −softplus(−v)`, the smooth form,
//!   with a gradient everywhere.
//!
//! The device only reports γ of active dimensions (γ > ½), so the integer γ functions
//! only need `v` above the head's [`SpikeHead::half_point`]. Both use the one
//! `exp_q15` table (`exp` on `[−ln 2, 0]`); the sigmoid reduces its argument by whole
//! multiples of ln 2 first (`e^−d = 2^−n · e^−r`), so no second table costs flash.

use crate::fixed::exp_q15;

/// ln 2 in Q16, rounded up so that the reduced argument `r = d − n·LN2_Q16` of
/// [`sigmoid_q15`] stays inside `exp_q15`'s domain `[−45427, 0]` (`−V_Q16_MIN`).
pub const LN2_Q16: i64 = 45427;
/// Halvings at which [`sigmoid_q15`] stops reducing: past 15 of them `e^−d` in Q15 is 0
/// whatever the remainder.
pub const MAX_HALVINGS: i64 = 16;

/// How the spike head's output `v` becomes log γ.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpikeHead {
    /// log γ = −ReLU(−v): γ > ½ ⇔ v > ln ½.
    #[default]
    Paper,
    /// log γ = log sigmoid(v): γ > ½ ⇔ v > 0.
    Sigmoid,
}

impl SpikeHead {
    pub const ALL: [SpikeHead; 2] = [SpikeHead::Paper, SpikeHead::Sigmoid];

    /// Code stored in the model blob (byte 40).
    pub const fn code(self) -> u16 {
        match self {
            SpikeHead::Paper => 0,
            SpikeHead::Sigmoid => 1,
        }
    }

    pub const fn from_code(code: u16) -> Option<SpikeHead> {
        match code {
            0 => Some(SpikeHead::Paper),
            1 => Some(SpikeHead::Sigmoid),
            _ => None,
        }
    }

    /// Name on the command line and in configs.
    pub const fn name(self) -> &'static str {
        match self {
            SpikeHead::Paper => "paper",
            SpikeHead::Sigmoid => "sigmoid",
        }
    }

    /// The pre-activation `v` at which γ = ½ (the binarisation threshold of the codes).
    pub fn half_point(self) -> f64 {
        match self {
            SpikeHead::Paper => -core::f64::consts::LN_2,
            SpikeHead::Sigmoid => 0.0,
        }
    }

    /// γ in Q15 of an active dimension from its pre-activation `v_q` (Q16, real
    /// `v = v_q / 65536`). Inputs below the half point give γ ≥ ½ anyway (clamped), as
    /// the device never asks for them.
    pub fn gamma_q15(self, v_q: i64) -> i16 {
        match self {
            SpikeHead::Paper => exp_q15(v_q),
            SpikeHead::Sigmoid => sigmoid_q15(v_q),
        }
    }
}

/// sigmoid(v) = 1 / (1 + e^−v) in Q15 for `v_q ≥ 0` (Q16; negative inputs are taken
/// as 0, giving 16384 = ½), saturating at 32767. Integer steps, mirrored op for op by
/// the ONNX export: `d = max(v_q, 0)`, `n = min(d / LN2_Q16, 16)`,
/// `r = min(d − n·LN2_Q16, LN2_Q16)`, `e = exp_q15(−r) / 2^n` (e^−d in Q15),
/// `γ = min(2^30 / (32768 + e), 32767)`. Error < 4 · 2⁻¹⁵ against the real sigmoid.
///
/// Computed in 32 bits (no 64-bit division on a 32-bit core): `d` is first clamped to
/// `(MAX_HALVINGS + 1) · LN2_Q16`, which changes neither `n` (16 from there on) nor `r`
/// (`LN2_Q16` from there on), and `32768 + e` is below 2¹⁶.
pub fn sigmoid_q15(v_q: i64) -> i16 {
    let d = v_q.clamp(0, (MAX_HALVINGS + 1) * LN2_Q16) as u32;
    let (ln2, max_halvings) = (LN2_Q16 as u32, MAX_HALVINGS as u32);
    let n = (d / ln2).min(max_halvings);
    let r = (d - n * ln2).min(ln2);
    let e = exp_q15(-i64::from(r)) as u32 >> n;
    ((1u32 << 30) / (32768 + e)).min(i16::MAX as u32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for head in SpikeHead::ALL {
            assert_eq!(SpikeHead::from_code(head.code()), Some(head));
        }
        assert_eq!(SpikeHead::from_code(2), None);
    }

    #[test]
    fn sigmoid_q15_follows_the_real_sigmoid() {
        let mut worst = 0.0f64;
        // 0 .. 12 in steps of 1/4096, beyond the point where γ saturates.
        for v_q in (0..12 * 65536).step_by(16) {
            let v = v_q as f64 / 65536.0;
            let want = 32768.0 / (1.0 + (-v).exp());
            let got = sigmoid_q15(v_q) as f64;
            worst = worst.max((got - want.min(32767.0)).abs());
        }
        assert!(worst < 4.0, "largest error {worst} Q15 steps");
        assert_eq!(sigmoid_q15(0), 16384);
        assert_eq!(sigmoid_q15(-70_000), 16384);
        assert_eq!(sigmoid_q15(i64::MAX), i16::MAX);
        assert_eq!(sigmoid_q15(20 * 65536), i16::MAX);
    }

    /// The 32-bit computation equals the definition in 64 bits for every `v_q` up to
    /// well past saturation, and at the extremes.
    #[test]
    fn sigmoid_q15_equals_its_64_bit_definition() {
        let definition = |v_q: i64| {
            let d = v_q.max(0);
            let n = (d / LN2_Q16).min(MAX_HALVINGS);
            let r = (d - n * LN2_Q16).min(LN2_Q16);
            let e = exp_q15(-r) as i64 >> n;
            ((1i64 << 30) / (32768 + e)).min(i16::MAX as i64) as i16
        };
        let extremes = [i64::MIN, -1, 0, 1, i64::MAX, 1 << 40, (1 << 32) + 5];
        for v_q in (-1000..20 * LN2_Q16).chain(extremes) {
            assert_eq!(sigmoid_q15(v_q), definition(v_q), "v_q {v_q}");
        }
    }

    #[test]
    fn sigmoid_q15_never_decreases() {
        let mut last = 0i16;
        for v_q in (0..12 * 65536).step_by(7) {
            let g = sigmoid_q15(v_q);
            assert!(g >= last, "γ fell from {last} to {g} at v_q {v_q}");
            last = g;
        }
    }

    #[test]
    fn half_points_are_where_gamma_is_half() {
        for head in SpikeHead::ALL {
            let v = head.half_point();
            let gamma = match head {
                SpikeHead::Paper => v.min(0.0).exp(),
                SpikeHead::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            };
            assert!((gamma - 0.5).abs() < 1e-12, "{head:?}");
        }
    }
}
