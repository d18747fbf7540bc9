//! What the model sees of a window: its samples ([`InputFeatures::Waveform`]) or, per
//! channel, the window mean and a band-amplitude spectrum ([`InputFeatures::BandSpectrum`]).
//!
//! Why a spectrum: where a stride falls inside a 2.56 s window is arbitrary, so the same
//! activity gives waveforms that differ by a time shift, which neither a linear read-out
//! nor a small VAE undoes. Amplitudes ignore the shift. Measured on the HAPT test subjects
//! (a linear probe on the unencoded representation, all 9 channels): waveform 73 %, band
//! spectrum 94 %. The mean keeps the gravity direction (sign included), which separates
//! the postures.
//!
//! Band spectrum of one channel `x[0..128]` (physical units):
//! `[mean(x), A_0, …, A_31]` with `A_b = (|X_{2b+1}| + |X_{2b+2}|) / 128`, `X` the DFT of
//! `x`: DFT bins 1..=64 (0.39–25 Hz) summed in pairs, bands of 0.78 Hz.

use super::{PreprocessError, SAMPLE_RATE_HZ, WINDOW_LEN};
use crate::preprocess::ChannelSet;
use crate::preprocess::filter::sin_cos;

/// Amplitude bands per channel.
pub const SPECTRUM_BANDS: usize = 32;
/// Values per channel of [`InputFeatures::BandSpectrum`]: the mean, then the bands.
pub const SPECTRUM_VALUES_PER_CHANNEL: usize = 1 + SPECTRUM_BANDS;
/// Width of one band.
pub const BAND_WIDTH_HZ: f32 = 2.0 * SAMPLE_RATE_HZ / WINDOW_LEN as f32;

/// How a preprocessed window becomes the model input.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputFeatures {
    /// The window's samples, channel-major (`channels × 128`).
    #[default]
    Waveform,
    /// Per channel: mean and [`SPECTRUM_BANDS`] band amplitudes (`channels × 33`).
    BandSpectrum,
}

impl InputFeatures {
    /// Model-input values per selected channel.
    pub const fn values_per_channel(self) -> usize {
        match self {
            InputFeatures::Waveform => WINDOW_LEN,
            InputFeatures::BandSpectrum => SPECTRUM_VALUES_PER_CHANNEL,
        }
    }

    /// Length of the model input for `channels`.
    pub const fn input_dim(self, channels: ChannelSet) -> usize {
        channels.len() * self.values_per_channel()
    }

    /// Consecutive model-input values that share one [`super::ChannelScaling`]: a whole
    /// channel of `window_len` samples for waveforms (samples of one channel are alike),
    /// one value for spectra (a mean in g and the amplitude of a 20 Hz band have nothing
    /// in common).
    pub const fn scaling_block_len(self, window_len: usize) -> usize {
        match self {
            InputFeatures::Waveform => window_len,
            InputFeatures::BandSpectrum => 1,
        }
    }

    /// Number of input-scaling entries of a model with `input_dim` inputs: one per
    /// channel for waveforms, one per value for spectra.
    pub const fn scaling_entries(self, channels: ChannelSet, input_dim: usize) -> usize {
        match self {
            InputFeatures::Waveform => channels.len(),
            InputFeatures::BandSpectrum => input_dim,
        }
    }

    /// Code in the model blob.
    pub const fn code(self) -> u8 {
        match self {
            InputFeatures::Waveform => 0,
            InputFeatures::BandSpectrum => 1,
        }
    }

    /// Inverse of [`InputFeatures::code`].
    pub const fn from_code(code: u8) -> Option<InputFeatures> {
        match code {
            0 => Some(InputFeatures::Waveform),
            1 => Some(InputFeatures::BandSpectrum),
            _ => None,
        }
    }

    /// Short name for reports and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            InputFeatures::Waveform => "waveform",
            InputFeatures::BandSpectrum => "spectrum",
        }
    }

    /// Writes the model input of a channel-major window (`n × 128` values) into `out`
    /// (`n × values_per_channel()` values), in physical units (before scaling).
    pub fn compute(self, window: &[f32], out: &mut [f32]) -> Result<(), PreprocessError> {
        if !window.len().is_multiple_of(WINDOW_LEN) {
            return Err(PreprocessError::Length {
                expected: (window.len() / WINDOW_LEN + 1) * WINDOW_LEN,
                got: window.len(),
            });
        }
        let expected = window.len() / WINDOW_LEN * self.values_per_channel();
        if out.len() != expected {
            return Err(PreprocessError::Length {
                expected,
                got: out.len(),
            });
        }
        match self {
            InputFeatures::Waveform => out.copy_from_slice(window),
            InputFeatures::BandSpectrum => {
                for (x, o) in window
                    .chunks_exact(WINDOW_LEN)
                    .zip(out.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL))
                {
                    band_spectrum(x, o);
                }
            }
        }
        Ok(())
    }
}

/// `(cos, sin)` of `−2πk/128` for `k < 64`, computed at compile time.
const TWIDDLES: [(f32, f32); WINDOW_LEN / 2] = twiddles();

const fn twiddles() -> [(f32, f32); WINDOW_LEN / 2] {
    let mut t = [(0.0f32, 0.0f32); WINDOW_LEN / 2];
    let quarter = WINDOW_LEN / 4;
    let mut k = 0;
    while k < WINDOW_LEN / 2 {
        // sin_cos is accurate on [0, π/2]; fold the second quadrant onto the first.
        let folded = if k <= quarter { k } else { WINDOW_LEN / 2 - k };
        let angle = 2.0 * core::f64::consts::PI * folded as f64 / WINDOW_LEN as f64;
        let (s, c) = sin_cos(angle);
        let c = if k <= quarter { c } else { -c };
        t[k] = (c as f32, -s as f32);
        k += 1;
    }
    t
}

/// Square root as `x · rsqrt(x)`, the reciprocal root by Newton steps that only
/// multiply. Plain IEEE multiplications and subtractions give the same bits on the host
/// and the device (so do their features); `core` has no `f32::sqrt` without `std`, Rust
/// cannot name the Cortex-M4F's single-precision VSQRT in `asm!`, and libm's exact
/// software root costs 700 bytes of flash the budget does not have.
#[inline]
fn sqrt_f32(x: f32) -> f32 {
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

/// One channel: `x` has 128 samples, `out` gets 33 values (see the module docs).
fn band_spectrum(x: &[f32], out: &mut [f32]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq_hz: f64, amplitude: f64, phase: f64, dc: f64) -> [f32; WINDOW_LEN] {
        let mut x = [0.0f32; WINDOW_LEN];
        for (t, v) in x.iter_mut().enumerate() {
            let time_s = t as f64 / SAMPLE_RATE_HZ as f64;
            *v = (dc + amplitude * (2.0 * std::f64::consts::PI * freq_hz * time_s + phase).cos())
                as f32;
        }
        x
    }

    /// Direct O(N²) DFT amplitudes in f64, the definition the FFT must match.
    fn dft_bands(x: &[f32]) -> [f64; SPECTRUM_VALUES_PER_CHANNEL] {
        let n = x.len();
        let amp = |k: usize| {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (t, v) in x.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                re += f64::from(*v) * a.cos();
                im += f64::from(*v) * a.sin();
            }
            (re * re + im * im).sqrt()
        };
        let mut out = [0.0f64; SPECTRUM_VALUES_PER_CHANNEL];
        out[0] = x.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64;
        for b in 0..SPECTRUM_BANDS {
            out[1 + b] = (amp(2 * b + 1) + amp(2 * b + 2)) / n as f64;
        }
        out
    }

    #[test]
    fn fft_bands_equal_the_direct_dft() {
        let mut state = 0x2545_f491_u32;
        for _ in 0..20 {
            let mut x = [0.0f32; WINDOW_LEN];
            for v in x.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *v = (state as f32 / u32::MAX as f32) * 4.0 - 2.0;
            }
            let mut got = [0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
            band_spectrum(&x, &mut got);
            for (g, want) in got.iter().zip(dft_bands(&x)) {
                assert!((f64::from(*g) - want).abs() < 1e-5, "{g} vs {want}");
            }
        }
    }

    #[test]
    fn a_tone_lands_in_its_band_whatever_its_phase() {
        // Bin 10 = 10 · 50/128 Hz lies in band 4 (bins 9 and 10); amplitude a gives a/2.
        let freq_hz = 10.0 * SAMPLE_RATE_HZ as f64 / WINDOW_LEN as f64;
        let mut previous: Option<[f32; SPECTRUM_VALUES_PER_CHANNEL]> = None;
        for phase in [0.0, 1.0, 2.5] {
            let mut out = [0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
            band_spectrum(&tone(freq_hz, 0.8, phase, -0.97), &mut out);
            assert!((out[0] + 0.97).abs() < 1e-6, "mean {}", out[0]);
            assert!((out[1 + 4] - 0.4).abs() < 1e-5, "band 4 {}", out[5]);
            for (b, v) in out[1..].iter().enumerate() {
                if b != 4 {
                    assert!(v.abs() < 1e-5, "band {b} = {v}");
                }
            }
            if let Some(p) = previous {
                for (a, b) in p.iter().zip(&out) {
                    assert!((a - b).abs() < 1e-5);
                }
            }
            previous = Some(out);
        }
    }

    #[test]
    fn sqrt_is_exact_to_an_ulp() {
        for x in [1e-30f32, 1e-6, 0.25, 2.0, 3.0, 1234.5, 1e30] {
            let want = (f64::from(x)).sqrt();
            let got = f64::from(sqrt_f32(x));
            assert!(
                (got - want).abs() <= want * 2.0 * f64::from(f32::EPSILON),
                "{x}"
            );
        }
        assert_eq!(sqrt_f32(0.0), 0.0);
        assert!(sqrt_f32(-1.0).is_nan());
        assert!(sqrt_f32(f32::NAN).is_nan());
    }

    #[test]
    fn compute_checks_lengths_and_lays_out_channels() {
        let window: [f32; 2 * WINDOW_LEN] = core::array::from_fn(|i| (i / WINDOW_LEN) as f32);
        let mut out = [9.0f32; 2 * SPECTRUM_VALUES_PER_CHANNEL];
        InputFeatures::BandSpectrum
            .compute(&window, &mut out)
            .unwrap();
        assert_eq!(out[0], 0.0);
        assert_eq!(out[SPECTRUM_VALUES_PER_CHANNEL], 1.0);
        assert!(
            out[1..SPECTRUM_VALUES_PER_CHANNEL]
                .iter()
                .all(|v| *v == 0.0)
        );
        let mut short = [0.0f32; 3];
        assert!(
            InputFeatures::BandSpectrum
                .compute(&window, &mut short)
                .is_err()
        );
        assert!(
            InputFeatures::Waveform
                .compute(&window[1..], &mut short)
                .is_err()
        );
        assert_eq!(
            InputFeatures::BandSpectrum.input_dim(ChannelSet::ALL),
            9 * 33
        );
        for f in [InputFeatures::Waveform, InputFeatures::BandSpectrum] {
            assert_eq!(InputFeatures::from_code(f.code()), Some(f));
        }
        assert_eq!(InputFeatures::from_code(2), None);
    }
}
