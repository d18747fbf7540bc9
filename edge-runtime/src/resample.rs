//! Resampling of timestamped IMU samples onto the 50 Hz grid the model was trained on.
//!
//! Sensors do not all run at 50 Hz: the LSM6DS3TR-C offers 52 Hz, a phone's
//! `devicemotion` events arrive at an irregular 50–100 Hz (60 Hz on iOS) with jitter.
//! [`Resampler`] turns any such stream into samples on the grid `t₀ + k · 20 ms`, where
//! `t₀` is the time of the first accepted sample, by linear interpolation between the two
//! input samples that bracket each grid point.
//!
//! - **Exactly 50 Hz in, the same samples out.** A grid point that coincides with an input
//!   timestamp takes that sample unchanged (no arithmetic), so a 50 Hz source with exact
//!   20 ms timestamps passes through bit for bit.
//! - **Gaps.** Between two input samples more than [`MAX_GAP_US`] apart nothing is
//!   invented: every grid point inside the gap is reported as missing (`None`), which
//!   the pipeline treats like a failed sensor read (time advances, the frame is flagged).
//! - **Bad input.** A sample with a NaN or infinite value, or a timestamp not after the
//!   previous accepted one, is rejected with a [`ResampleError`]; the state is unchanged,
//!   so the stream continues with the next good sample.
//! - **No anti-alias filter.** Above 50 Hz the grid takes (interpolated) samples without
//!   first removing content above 25 Hz. Human motion has little energy there and the
//!   preprocessing low-passes at 20 Hz afterwards; a 100 Hz source that can be configured
//!   to 50 Hz should be (the BMI270 is).
//!
//! Integer microseconds keep the grid exact over long streams: a `u64` of µs lasts
//! 584,000 years, and no `f32` time ever accumulates rounding.

use core::fmt;

use crate::preprocess::{FIELD_NAMES, ImuSample};

/// Grid period of the output: 20 ms (50 Hz).
pub const OUTPUT_PERIOD_US: u64 = 20_000;
/// Largest distance between two input samples that is still interpolated (200 ms, ten
/// output samples); longer gaps yield missing grid points instead.
pub const MAX_GAP_US: u64 = 200_000;

/// Why a sample was rejected (it changed nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResampleError {
    /// `t_us` is not after the previous accepted sample's `previous_us`.
    NonMonotonic { t_us: u64, previous_us: u64 },
    /// Field `field` (`"acc_g.x"` … `"gyro_rad_s.z"`) is NaN or infinite.
    NonFinite { t_us: u64, field: &'static str },
}

impl fmt::Display for ResampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResampleError::NonMonotonic { t_us, previous_us } => write!(
                f,
                "sample at {t_us} µs is not after the previous one at {previous_us} µs; rejected"
            ),
            ResampleError::NonFinite { t_us, field } => {
                write!(
                    f,
                    "sample at {t_us} µs: field {field} is NaN or infinite; rejected"
                )
            }
        }
    }
}

impl core::error::Error for ResampleError {}

/// Linear interpolation of timestamped samples onto the 50 Hz grid (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resampler {
    /// The last accepted sample and its time; `None` before the first.
    previous: Option<(u64, ImuSample)>,
    /// Whether the grid has started (at the first sample or the first missing read).
    started: bool,
    /// Time of the next grid point to emit.
    next_grid_us: u64,
    /// Grid points emitted (samples or missing) since the start.
    emitted: u64,
}

impl Resampler {
    pub const fn new() -> Self {
        Resampler {
            previous: None,
            started: false,
            next_grid_us: 0,
            emitted: 0,
        }
    }

    /// Forgets the stream: the next accepted sample starts a new grid.
    pub fn reset(&mut self) {
        *self = Resampler::new();
    }

    /// Grid points emitted so far (samples and missing points).
    pub const fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Takes one input sample measured at `t_us` and calls `emit` for every grid point up
    /// to and including `t_us`, in order: `Some(sample)` for an interpolated sample,
    /// `None` for a grid point inside a gap longer than [`MAX_GAP_US`]. At 50–100 Hz
    /// that is zero or one call; after a gap, one per missing 20 ms.
    pub fn push(
        &mut self,
        t_us: u64,
        sample: ImuSample,
        mut emit: impl FnMut(Option<ImuSample>),
    ) -> Result<(), ResampleError> {
        if let Some(i) = sample.fields().iter().position(|v| !v.is_finite()) {
            return Err(ResampleError::NonFinite {
                t_us,
                field: FIELD_NAMES[i],
            });
        }
        if let Some((t_prev, _)) = self.previous
            && t_us <= t_prev
        {
            return Err(ResampleError::NonMonotonic {
                t_us,
                previous_us: t_prev,
            });
        }
        if !self.started {
            self.started = true;
            self.next_grid_us = t_us;
        }
        let previous = self.previous;
        self.emit_until(t_us, &mut emit, |t| match previous {
            _ if t == t_us => Some(sample),
            Some((t_prev, prev)) if t_us - t_prev <= MAX_GAP_US => {
                Some(interpolate(&prev, &sample, t - t_prev, t_us - t_prev))
            }
            // A long gap, or grid points after failed reads before the first sample.
            _ => None,
        });
        self.previous = Some((t_us, sample));
        Ok(())
    }

    /// No sample could be read at `t_us` (a failed sensor read). Grid points that can no
    /// longer be interpolated — those up to `t_us` once the last good sample is more than
    /// [`MAX_GAP_US`] old, or every one before any good sample — are emitted as `None`,
    /// so a dead sensor still moves the stream clock on. Times not after the last good
    /// sample are ignored.
    pub fn missing(&mut self, t_us: u64, mut emit: impl FnMut(Option<ImuSample>)) {
        match self.previous {
            Some((t_prev, _)) if t_us <= t_prev || t_us - t_prev <= MAX_GAP_US => return,
            _ => {}
        }
        if !self.started {
            self.started = true;
            self.next_grid_us = t_us;
        }
        self.emit_until(t_us, &mut emit, |_| None);
    }

    /// Emits `point(t)` for every grid point `t ≤ until_us` not emitted yet.
    fn emit_until(
        &mut self,
        until_us: u64,
        emit: &mut impl FnMut(Option<ImuSample>),
        point: impl Fn(u64) -> Option<ImuSample>,
    ) {
        while self.next_grid_us <= until_us {
            let t = self.next_grid_us;
            emit(point(t));
            self.emitted += 1;
            self.next_grid_us = t.saturating_add(OUTPUT_PERIOD_US);
            if self.next_grid_us == t {
                // Saturated clock (2⁶⁴ µs): stop rather than loop forever.
                break;
            }
        }
    }
}

/// `a + (b − a) · offset / span`, per field, for `0 < offset < span`.
fn interpolate(a: &ImuSample, b: &ImuSample, offset_us: u64, span_us: u64) -> ImuSample {
    // Both fit f64 exactly (< 2⁵³ µs); the weight is in (0, 1).
    let w = offset_us as f64 / span_us as f64;
    let (fa, fb) = (a.fields(), b.fields());
    let mut out = [0f32; 6];
    for ((o, &x), &y) in out.iter_mut().zip(&fa).zip(&fb) {
        *o = (f64::from(x) + (f64::from(y) - f64::from(x)) * w) as f32;
    }
    ImuSample::from_fields(out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn sample(v: f32) -> ImuSample {
        ImuSample {
            acc_g: [v, -v, 0.5 * v],
            gyro_rad_s: [2.0 * v, 0.0, -v],
        }
    }

    fn run(r: &mut Resampler, input: &[(u64, ImuSample)]) -> Vec<Option<ImuSample>> {
        let mut out = Vec::new();
        for &(t, s) in input {
            r.push(t, s, |o| out.push(o)).unwrap();
        }
        out
    }

    #[test]
    fn exact_50_hz_passes_through_bit_for_bit() {
        let input: Vec<(u64, ImuSample)> = (0..500u64)
            .map(|k| (1_000_000 + k * 20_000, sample((k as f32 * 0.37).sin())))
            .collect();
        let out = run(&mut Resampler::new(), &input);
        assert_eq!(out.len(), input.len());
        for (o, (_, s)) in out.iter().zip(&input) {
            assert_eq!(o.unwrap(), *s);
        }
    }

    /// A known signal sampled at an irregular rate comes out as the same signal on the
    /// 50 Hz grid, within the error of linear interpolation.
    #[test]
    fn irregular_rates_reconstruct_a_known_signal() {
        let f_hz = 1.5f64;
        let signal = |t_us: u64| (2.0 * core::f64::consts::PI * f_hz * t_us as f64 * 1e-6).sin();
        for (rate_hz, jitter_us) in [(52.0, 0u64), (60.0, 4000), (100.0, 2000), (31.0, 3000)] {
            let period = 1e6 / rate_hz;
            let mut input = Vec::new();
            let mut state = 12345u64;
            for k in 0..2000u64 {
                // Deterministic jitter in [−jitter, +jitter].
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let j = if jitter_us == 0 {
                    0i64
                } else {
                    (state >> 33) as i64 % (2 * jitter_us as i64 + 1) - jitter_us as i64
                };
                let t = (500_000.0 + k as f64 * period) as i64 + j;
                input.push((t as u64, sample(signal(t as u64) as f32)));
            }
            let t0 = input[0].0;
            let out = run(&mut Resampler::new(), &input);
            let span = input.last().unwrap().0 - t0;
            assert_eq!(
                out.len() as u64,
                span / OUTPUT_PERIOD_US + 1,
                "rate {rate_hz}"
            );
            // Linear interpolation error ≤ h²/8 · max|x''| with h the input spacing.
            let h = (period + 2.0 * jitter_us as f64) * 1e-6;
            let w = 2.0 * core::f64::consts::PI * f_hz;
            let bound = h * h / 8.0 * w * w + 1e-6;
            for (k, o) in out.iter().enumerate() {
                let t = t0 + k as u64 * OUTPUT_PERIOD_US;
                let got = f64::from(o.unwrap().acc_g[0]);
                assert!(
                    (got - signal(t)).abs() <= bound,
                    "rate {rate_hz} Hz, grid point {k}: {got} vs {} (bound {bound})",
                    signal(t)
                );
            }
        }
    }

    #[test]
    fn interpolates_linearly_between_brackets() {
        let mut r = Resampler::new();
        let out = run(&mut r, &[(0, sample(0.0)), (30_000, sample(3.0))]);
        // Grid points 0 and 20 ms; 20 ms is 2/3 of the way.
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].unwrap(), sample(0.0));
        let mid = out[1].unwrap();
        assert!((mid.acc_g[0] - 2.0).abs() < 1e-6);
        assert!((mid.acc_g[1] + 2.0).abs() < 1e-6);
        assert!((mid.gyro_rad_s[2] + 2.0).abs() < 1e-6);
        assert_eq!(r.emitted(), 2);
    }

    #[test]
    fn long_gaps_yield_missing_points_not_invented_samples() {
        let mut r = Resampler::new();
        // 1 s gap: grid points 20..=980 ms are missing, 1000 ms is the new sample itself.
        let out = run(&mut r, &[(0, sample(0.0)), (1_000_000, sample(1.0))]);
        assert_eq!(out.len(), 51);
        assert!(out[1..50].iter().all(Option::is_none));
        assert_eq!(out[50], Some(sample(1.0)));
        // Off-grid sample after a gap: the points before it are missing, the grid stays.
        let out = run(&mut r, &[(1_450_000, sample(2.0))]);
        assert_eq!(out.len(), 22);
        assert!(out.iter().all(Option::is_none));
        let out = run(&mut r, &[(1_470_000, sample(4.0))]);
        assert_eq!(out.len(), 1);
        assert!((out[0].unwrap().acc_g[0] - 3.0).abs() < 1e-6);
    }

    #[test]
    fn bad_samples_are_rejected_without_changing_state() {
        let mut r = Resampler::new();
        let mut out = Vec::new();
        r.push(100_000, sample(1.0), |o| out.push(o)).unwrap();
        let before = r.clone();
        let mut nan = sample(1.0);
        nan.gyro_rad_s[1] = f32::NAN;
        assert_eq!(
            r.push(120_000, nan, |o| out.push(o)),
            Err(ResampleError::NonFinite {
                t_us: 120_000,
                field: "gyro_rad_s.y"
            })
        );
        assert_eq!(
            r.push(100_000, sample(2.0), |o| out.push(o)),
            Err(ResampleError::NonMonotonic {
                t_us: 100_000,
                previous_us: 100_000
            })
        );
        assert_eq!(
            r.push(50_000, sample(2.0), |o| out.push(o)),
            Err(ResampleError::NonMonotonic {
                t_us: 50_000,
                previous_us: 100_000
            })
        );
        assert_eq!(r, before);
        assert_eq!(out.len(), 1);
        r.push(120_000, sample(2.0), |o| out.push(o)).unwrap();
        assert_eq!(out, [Some(sample(1.0)), Some(sample(2.0))]);
    }

    #[test]
    fn failed_reads_move_the_clock_only_once_interpolation_is_impossible() {
        let mut r = Resampler::new();
        let mut out = Vec::new();
        // A sensor dead from the start: every failed read emits the grid up to its time.
        r.missing(1_000_000, |o| out.push(o));
        r.missing(1_050_000, |o| out.push(o));
        assert_eq!(out, [None, None, None]);
        // The first good sample: grid points before it are missing, then it is on the grid.
        r.push(1_100_000, sample(1.0), |o| out.push(o)).unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(out[4], None);
        assert_eq!(out[5], Some(sample(1.0)));
        // A short run of failures is bridged by interpolation once a sample comes.
        r.missing(1_150_000, |o| out.push(o));
        assert_eq!(out.len(), 6);
        r.push(1_200_000, sample(6.0), |o| out.push(o)).unwrap();
        assert_eq!(out.len(), 11);
        assert!((out[6].unwrap().acc_g[0] - 2.0).abs() < 1e-6);
        // A long one emits missing points as soon as it is too long to bridge.
        r.missing(1_390_000, |o| out.push(o));
        assert_eq!(out.len(), 11);
        r.missing(1_410_000, |o| out.push(o));
        assert_eq!(out.len(), 21);
        assert!(out[11..].iter().all(Option::is_none));
        // Later times only; earlier ones are ignored.
        r.missing(1_100_000, |o| out.push(o));
        assert_eq!(out.len(), 21);
    }

    #[test]
    fn huge_timestamps_do_not_hang_or_panic() {
        let mut r = Resampler::new();
        let mut n = 0u64;
        r.push(u64::MAX - 30_000, sample(0.0), |_| n += 1).unwrap();
        r.push(u64::MAX - 5_000, sample(1.0), |_| n += 1).unwrap();
        r.push(u64::MAX, sample(1.0), |_| n += 1).unwrap();
        assert!(n <= 3);
        assert!(r.push(u64::MAX, sample(1.0), |_| ()).is_err());
    }
}
