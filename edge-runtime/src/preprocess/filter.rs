//! The two filters of the UCI HAR pipeline: a causal 3-point median and a 3rd-order
//! Butterworth low-pass, designed at compile time.
//!
//! # Numerics
//! The Butterworth filter is a cascade of a first-order section and a second-order
//! section (biquad) in direct form I. The coefficients are designed in `f64` at compile
//! time and rounded to `f32`; the state and every operation at run time are `f32`:
//! - `f32` arithmetic is IEEE-754 correctly rounded on the host (SSE), in the browser
//!   (wasm) and in the Cortex-M4F's FPU, and Rust never contracts `a * b + c` into an
//!   FMA, so the device computes **bit-identical** windows to the host's training data.
//!   No software floating point is linked on the device (the `f64` version of this
//!   filter cost 2.3 KiB of flash for it).
//! - Round-off: at 0.3 Hz / 50 Hz the biquad's poles sit at radius ≈ 0.981 and its DC
//!   noise gain `1 / (1 + a1 + a2)` is ≈ 700, so the gravity estimate carries round-off
//!   of a few 1e-5 g (measured against the `f64` filter on HAPT recordings: at most
//!   4e-5 g on body acceleration, whose RMS is ~0.1 g; the accelerometer's own noise is
//!   ~1e-3 g). The test `f32_state_tracks_the_f64_design` bounds it.
//! - Inputs beyond ±[`INPUT_LIMIT`] (no sensor gives them) are clamped before
//!   filtering, so no intermediate can overflow `f32` and the state stays finite.
//!
//! The numerators `(1 + z⁻¹)` and `(1 + z⁻¹)²` are applied structurally (`x + x1`,
//! `x + 2 x1 + x2`), so the zeros lie exactly at Nyquist whatever the rounding of the
//! other coefficients.

use core::f64::consts::PI;

/// `(sin x, cos x)` by Taylor series, usable in `const` context (`core` has no `f64`
/// trigonometry without `std`). Accurate to a few ulp for `0 <= x <= π/2`.
pub(crate) const fn sin_cos(x: f64) -> (f64, f64) {
    let x2 = x * x;
    let mut term_sin = x;
    let mut term_cos = 1.0;
    let mut sin = 0.0;
    let mut cos = 0.0;
    let mut n = 0;
    // Term 20 of either series is below 1e-40 for |x| <= π/2.
    while n < 20 {
        sin += term_sin;
        cos += term_cos;
        let k = (2 * n + 2) as f64;
        term_sin = -term_sin * x2 / (k * (k + 1.0));
        term_cos = -term_cos * x2 / ((k - 1.0) * k);
        n += 1;
    }
    (sin, cos)
}

/// Coefficients of a 3rd-order Butterworth low-pass (first-order section, then biquad),
/// normalised so that `a0 = 1`. See [`Butterworth3Coeffs::design`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Butterworth3Coeffs {
    /// First-order section `b0 (1 + z⁻¹) / (1 + a1 z⁻¹)`.
    pub first_b0: f64,
    pub first_a1: f64,
    /// Biquad `b0 (1 + z⁻¹)² / (1 + a1 z⁻¹ + a2 z⁻²)`.
    pub biquad_b0: f64,
    pub biquad_a1: f64,
    pub biquad_a2: f64,
}

impl Butterworth3Coeffs {
    /// Bilinear transform of the analog prototype `1 / ((s + 1)(s² + s + 1))` with the
    /// cut-off prewarped, so the digital filter is exactly −3.01 dB at `cutoff_hz`.
    ///
    /// `None` unless `0 < cutoff_hz < sample_rate_hz / 2`.
    pub const fn design(cutoff_hz: f64, sample_rate_hz: f64) -> Option<Butterworth3Coeffs> {
        // Written to also reject NaN: every comparison with NaN is false.
        if !(cutoff_hz > 0.0
            && sample_rate_hz > 0.0
            && sample_rate_hz < f64::INFINITY
            && cutoff_hz < 0.5 * sample_rate_hz)
        {
            return None;
        }
        let (sin, cos) = sin_cos(PI * cutoff_hz / sample_rate_hz);
        // K = tan(π fc / fs): the prewarped analog cut-off for s = (1 − z⁻¹) / (1 + z⁻¹).
        let k = sin / cos;
        let k2 = k * k;
        // Pole pair of the 3rd-order prototype: s² + s/Q + 1 with 1/Q = 2 cos(60°) = 1.
        let inv_q = 1.0;
        let biquad_norm = 1.0 / (1.0 + k * inv_q + k2);
        Some(Butterworth3Coeffs {
            first_b0: k / (1.0 + k),
            first_a1: (k - 1.0) / (k + 1.0),
            biquad_b0: k2 * biquad_norm,
            biquad_a1: 2.0 * (k2 - 1.0) * biquad_norm,
            biquad_a2: (1.0 - k * inv_q + k2) * biquad_norm,
        })
    }

    /// `design` for constants: an invalid cut-off is a compile-time error when used in a
    /// `const` item.
    pub const fn design_const(cutoff_hz: f64, sample_rate_hz: f64) -> Butterworth3Coeffs {
        match Self::design(cutoff_hz, sample_rate_hz) {
            Some(c) => c,
            None => panic!("Butterworth cut-off must lie in (0, sample_rate / 2)"),
        }
    }
}

/// Largest input magnitude the filter takes as it is; larger inputs are clamped to it.
/// Every intermediate stays below ~10 × this (the sections' gains and sums of a few
/// terms), far from `f32::MAX`.
pub const INPUT_LIMIT: f32 = 1e30;

/// A 3rd-order Butterworth low-pass with its state (`f32`, see the module docs);
/// processes one sample at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Butterworth3 {
    first_b0: f32,
    first_a1: f32,
    biquad_b0: f32,
    biquad_a1: f32,
    biquad_a2: f32,
    first_x1: f32,
    first_y1: f32,
    biquad_x1: f32,
    biquad_x2: f32,
    biquad_y1: f32,
    biquad_y2: f32,
}

impl Butterworth3 {
    /// A filter with the coefficients rounded to `f32` and zero state (as if it had seen
    /// zeros forever).
    pub const fn new(coeffs: Butterworth3Coeffs) -> Self {
        Butterworth3 {
            first_b0: coeffs.first_b0 as f32,
            first_a1: coeffs.first_a1 as f32,
            biquad_b0: coeffs.biquad_b0 as f32,
            biquad_a1: coeffs.biquad_a1 as f32,
            biquad_a2: coeffs.biquad_a2 as f32,
            first_x1: 0.0,
            first_y1: 0.0,
            biquad_x1: 0.0,
            biquad_x2: 0.0,
            biquad_y1: 0.0,
            biquad_y2: 0.0,
        }
    }

    /// Sets the state to the steady state for a constant input `value` (DC gain is 1),
    /// as if the filter had seen `value` forever: no start-up transient.
    // Out of line here and in `process`: nine filters per sample, inlined and unrolled
    // they cost the device 1.5 KiB of flash for no measurable time.
    #[inline(never)]
    pub fn settle(&mut self, value: f32) {
        let value = value.clamp(-INPUT_LIMIT, INPUT_LIMIT);
        self.first_x1 = value;
        self.first_y1 = value;
        self.biquad_x1 = value;
        self.biquad_x2 = value;
        self.biquad_y1 = value;
        self.biquad_y2 = value;
    }

    /// Filters one sample (clamped to ±[`INPUT_LIMIT`] first).
    #[inline(never)]
    pub fn process(&mut self, x: f32) -> f32 {
        let x = x.clamp(-INPUT_LIMIT, INPUT_LIMIT);
        let u = self.first_b0 * (x + self.first_x1) - self.first_a1 * self.first_y1;
        self.first_x1 = x;
        self.first_y1 = u;
        let y = self.biquad_b0 * (u + 2.0 * self.biquad_x1 + self.biquad_x2)
            - self.biquad_a1 * self.biquad_y1
            - self.biquad_a2 * self.biquad_y2;
        self.biquad_x2 = self.biquad_x1;
        self.biquad_x1 = u;
        self.biquad_y2 = self.biquad_y1;
        self.biquad_y1 = y;
        y
    }
}

/// Causal 3-point median: `y[n] = median(x[n−2], x[n−1], x[n])` (one sample of delay).
/// Before two samples have been seen the history holds the value given to
/// [`Median3::settle`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Median3 {
    history: [f32; 2],
}

impl Median3 {
    pub const fn new() -> Self {
        Median3 { history: [0.0; 2] }
    }

    /// Fills the history with `value` (edge replication at the start of a stream).
    pub fn settle(&mut self, value: f32) {
        self.history = [value; 2];
    }

    /// Median of the last three samples. Inputs must be finite (the pipeline rejects
    /// non-finite samples before they get here); the result is one of the inputs.
    #[inline(never)]
    pub fn process(&mut self, x: f32) -> f32 {
        let [a, b] = self.history;
        self.history = [b, x];
        median3(a, b, x)
    }
}

impl Default for Median3 {
    fn default() -> Self {
        Self::new()
    }
}

fn median3(a: f32, b: f32, c: f32) -> f32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    if c <= lo {
        lo
    } else if c >= hi {
        hi
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const FS: f64 = 50.0;

    /// Steady-state gain in dB of `filter` for a sinusoid of `freq_hz`, measured by
    /// least-squares fitting `a sin + b cos` to the output after the transient.
    fn measured_gain_db(coeffs: Butterworth3Coeffs, freq_hz: f64) -> f64 {
        let mut filter = Butterworth3::new(coeffs);
        let amplitude = 0.7;
        let w = 2.0 * PI * freq_hz / FS;
        // The 0.3 Hz filter's slowest pole decays with time constant ≈ 1 s = 50 samples.
        let skip = 5_000;
        let measure = 20_000;
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for n in 0..skip + measure {
            let (s, c) = ((w * n as f64).sin(), (w * n as f64).cos());
            let y = f64::from(filter.process((amplitude * s) as f32));
            if n >= skip {
                ss += s * s;
                sc += s * c;
                cc += c * c;
                ys += y * s;
                yc += y * c;
            }
        }
        let det = ss * cc - sc * sc;
        let a = (ys * cc - yc * sc) / det;
        let b = (yc * ss - ys * sc) / det;
        20.0 * ((a * a + b * b).sqrt() / amplitude).log10()
    }

    fn dc_gain_db(coeffs: Butterworth3Coeffs) -> f64 {
        let mut filter = Butterworth3::new(coeffs);
        let mut y = 0.0;
        for _ in 0..10_000 {
            y = f64::from(filter.process(0.8));
        }
        20.0 * (y / 0.8f64).log10()
    }

    /// Ideal digital gain of the prewarped bilinear Butterworth of order 3.
    fn ideal_gain_db(cutoff_hz: f64, freq_hz: f64) -> f64 {
        let ratio = (PI * freq_hz / FS).tan() / (PI * cutoff_hz / FS).tan();
        -10.0 * (1.0 + ratio.powi(6)).log10()
    }

    /// The frequency whose prewarped analog frequency is twice the cut-off's: "an octave
    /// above" in the analog prototype, where a 3rd-order Butterworth has −18.13 dB. For
    /// 0.3 Hz it is 0.6000 Hz; for 20 Hz (40 Hz is above Nyquist) it is 22.44 Hz.
    fn octave_above_hz(cutoff_hz: f64) -> f64 {
        FS / PI * (2.0 * (PI * cutoff_hz / FS).tan()).atan()
    }

    fn check_filter(cutoff_hz: f64) -> [f64; 3] {
        let coeffs = Butterworth3Coeffs::design(cutoff_hz, FS).unwrap();
        let dc = dc_gain_db(coeffs);
        let at_cutoff = measured_gain_db(coeffs, cutoff_hz);
        let octave = octave_above_hz(cutoff_hz);
        let at_octave = measured_gain_db(coeffs, octave);
        std::println!(
            "{cutoff_hz} Hz low-pass: DC {dc:.4} dB, cut-off {at_cutoff:.4} dB, \
             {octave:.3} Hz {at_octave:.3} dB"
        );
        assert!(dc.abs() <= 0.1, "DC gain {dc} dB");
        assert!(
            (at_cutoff + 3.0103).abs() <= 0.5,
            "gain at cut-off {at_cutoff} dB"
        );
        // 3rd order: −18.13 dB an octave above; a 2nd-order filter would give −12.3 dB
        // and a 4th-order one −24.1 dB, so both bounds pin the order.
        assert!(
            (-18.6..=-18.0).contains(&at_octave),
            "gain an octave above: {at_octave} dB"
        );
        for f in [0.1 * cutoff_hz, 0.5 * cutoff_hz, 1.5 * cutoff_hz.min(16.0)] {
            let measured = measured_gain_db(coeffs, f);
            let ideal = ideal_gain_db(cutoff_hz, f);
            assert!(
                (measured - ideal).abs() < 0.01,
                "{f} Hz: {measured} vs {ideal} dB"
            );
        }
        [dc, at_cutoff, at_octave]
    }

    #[test]
    fn gain_of_20_hz_lowpass() {
        check_filter(20.0);
        let coeffs = Butterworth3Coeffs::design(20.0, FS).unwrap();
        // Close to Nyquist the bilinear transform attenuates far more than the analog
        // prototype: ideal −42.9 dB at 24 Hz.
        let near_nyquist = measured_gain_db(coeffs, 24.0);
        assert!(near_nyquist < -40.0, "24 Hz: {near_nyquist} dB");
    }

    #[test]
    fn gain_of_0_3_hz_lowpass() {
        check_filter(0.3);
        let octave = octave_above_hz(0.3);
        assert!((octave - 0.6).abs() < 1e-3, "{octave}");
    }

    #[test]
    fn design_rejects_bad_cutoffs() {
        assert!(Butterworth3Coeffs::design(25.0, FS).is_none());
        assert!(Butterworth3Coeffs::design(0.0, FS).is_none());
        assert!(Butterworth3Coeffs::design(f64::NAN, FS).is_none());
        assert!(Butterworth3Coeffs::design(1.0, f64::INFINITY).is_none());
    }

    #[test]
    fn const_trig_matches_std() {
        for i in 0..=100 {
            let x = i as f64 / 100.0 * PI / 2.0;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-15, "sin {x}");
            assert!((c - x.cos()).abs() < 1e-15, "cos {x}");
        }
    }

    #[test]
    fn settle_removes_the_start_up_transient() {
        for (cutoff_hz, tolerance) in [(20.0, 1e-6), (0.3, 1e-4)] {
            let coeffs = Butterworth3Coeffs::design(cutoff_hz, FS).unwrap();
            let mut filter = Butterworth3::new(coeffs);
            filter.settle(0.98);
            for _ in 0..1000 {
                let y = filter.process(0.98);
                assert!((y - 0.98).abs() < tolerance, "{cutoff_hz} Hz: {y}");
            }
        }
    }

    /// The `f64` filter the coefficients come from, in the same direct form I.
    struct ReferenceFilter {
        c: Butterworth3Coeffs,
        state: [f64; 6],
    }

    impl ReferenceFilter {
        fn new(c: Butterworth3Coeffs, value: f64) -> Self {
            ReferenceFilter {
                c,
                state: [value; 6],
            }
        }
        fn process(&mut self, x: f64) -> f64 {
            let [fx1, fy1, bx1, bx2, by1, by2] = self.state;
            let c = &self.c;
            let u = c.first_b0 * (x + fx1) - c.first_a1 * fy1;
            let y = c.biquad_b0 * (u + 2.0 * bx1 + bx2) - c.biquad_a1 * by1 - c.biquad_a2 * by2;
            self.state = [x, u, u, bx1, y, by1];
            y
        }
    }

    /// The `f32` filters follow the `f64` design within the round-off the module docs
    /// state, on a minute of walking-like acceleration around 1 g: the noise low-pass
    /// within 1e-6 g, gravity (its output, and body = total − gravity) within 1e-4 g.
    #[test]
    fn f32_state_tracks_the_f64_design() {
        let noise = Butterworth3Coeffs::design(20.0, FS).unwrap();
        let gravity = Butterworth3Coeffs::design(0.3, FS).unwrap();
        let signal = |n: usize| {
            let t = n as f64 / FS;
            0.98 + 0.3 * (2.0 * PI * 1.9 * t).sin()
                + 0.1 * (2.0 * PI * 4.1 * t + 1.0).sin()
                + 0.02 * (2.0 * PI * 0.05 * t).sin()
        };
        let x0 = signal(0) as f32;
        let (mut fast_noise, mut fast_gravity) =
            (Butterworth3::new(noise), Butterworth3::new(gravity));
        fast_noise.settle(x0);
        fast_gravity.settle(x0);
        let mut slow_noise = ReferenceFilter::new(noise, f64::from(x0));
        let mut slow_gravity = ReferenceFilter::new(gravity, f64::from(x0));
        let (mut worst_total, mut worst_gravity) = (0.0f64, 0.0f64);
        for n in 0..3000 {
            let x = signal(n) as f32;
            let total = fast_noise.process(x);
            let g = fast_gravity.process(total);
            let want_total = slow_noise.process(f64::from(x));
            let want_g = slow_gravity.process(want_total);
            worst_total = worst_total.max((f64::from(total) - want_total).abs());
            worst_gravity = worst_gravity.max((f64::from(g) - want_g).abs());
        }
        std::println!("f32 vs f64: total {worst_total:e} g, gravity {worst_gravity:e} g");
        assert!(worst_total < 1e-6, "total {worst_total:e}");
        assert!(worst_gravity < 1e-4, "gravity {worst_gravity:e}");
    }

    #[test]
    fn huge_inputs_are_clamped_and_the_state_stays_finite() {
        let mut filter = Butterworth3::new(Butterworth3Coeffs::design(0.3, FS).unwrap());
        filter.settle(f32::MAX);
        for k in 0..500 {
            let x = if k % 2 == 0 { f32::MAX } else { -f32::MAX };
            assert!(filter.process(x).is_finite(), "sample {k}");
        }
        assert!(filter.process(0.0).abs() <= 2.0 * INPUT_LIMIT);
    }

    #[test]
    fn median_removes_a_single_sample_spike() {
        let mut median = Median3::new();
        median.settle(1.0);
        let input = [1.0, 1.0, 9.0, 1.0, 1.0, 1.0, -5.0, 1.0, 1.0];
        for x in input {
            assert_eq!(median.process(x), 1.0);
        }
        // Two consecutive outliers are a feature of the signal, not a spike.
        let out: std::vec::Vec<f32> = [1.0, 9.0, 9.0, 1.0, 1.0]
            .into_iter()
            .map(|x| median.process(x))
            .collect();
        assert_eq!(out, [1.0, 1.0, 9.0, 9.0, 1.0]);
    }

    #[test]
    fn median_of_three_orders() {
        for (a, b, c) in [
            (1.0, 2.0, 3.0),
            (3.0, 2.0, 1.0),
            (2.0, 3.0, 1.0),
            (2.0, 1.0, 3.0),
        ] {
            assert_eq!(median3(a, b, c), 2.0);
            assert_eq!(median3(c, a, b), 2.0);
        }
        assert_eq!(median3(1.0, 1.0, 5.0), 1.0);
    }
}
