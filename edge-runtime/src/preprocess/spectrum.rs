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

mod fft;
#[cfg(any(test, feature = "std"))]
mod reference;
mod sqrt;
#[cfg(target_arch = "x86_64")]
mod x86;

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

    /// The band spectrum of every whole channel of a channel-major `window` (`n × 128`
    /// samples, a trailing partial channel ignored), passed to `sink` channel by channel in
    /// order. On x86-64 channels run in SIMD batches side by side (`x86.rs`); the values
    /// are the same either way.
    pub(crate) fn band_spectra(
        window: &[f32],
        mut sink: impl FnMut(&[f32; SPECTRUM_VALUES_PER_CHANNEL]),
    ) {
        #[cfg(target_arch = "x86_64")]
        let window = x86::band_spectra(window, &mut sink);
        let mut out = [0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
        let mut scratch = fft::scratch();
        for x in window.as_chunks::<WINDOW_LEN>().0 {
            fft::band_spectrum(x, &mut scratch, &mut out);
            sink(&out);
        }
    }

    /// [`InputFeatures::compute`] for [`InputFeatures::BandSpectrum`] with the
    /// straightforward radix-2 transform that defines it, which the fast kernel must
    /// match bit for bit (see `spectrum/fft.rs`): the oracle of the parity tests on real
    /// data outside this crate. Host only (`std`).
    #[cfg(feature = "std")]
    #[doc(hidden)]
    pub fn band_spectrum_reference(window: &[f32], out: &mut [f32]) -> Result<(), PreprocessError> {
        if !window.len().is_multiple_of(WINDOW_LEN) {
            return Err(PreprocessError::Length {
                expected: (window.len() / WINDOW_LEN + 1) * WINDOW_LEN,
                got: window.len(),
            });
        }
        let expected = window.len() / WINDOW_LEN * SPECTRUM_VALUES_PER_CHANNEL;
        if out.len() != expected {
            return Err(PreprocessError::Length {
                expected,
                got: out.len(),
            });
        }
        for (x, o) in window
            .chunks_exact(WINDOW_LEN)
            .zip(out.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL))
        {
            reference::band_spectrum(x, o);
        }
        Ok(())
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
                let mut outs = out.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL);
                Self::band_spectra(window, |values| {
                    if let Some(o) = outs.next() {
                        o.copy_from_slice(values);
                    }
                });
            }
        }
        Ok(())
    }
}

/// The band amplitudes' square root (correctly rounded; the hardware instruction where
/// there is one, see `spectrum/sqrt.rs`), for device checks that hold it to the host's
/// `f32::sqrt` (the QEMU board does on every boot).
#[doc(hidden)]
pub fn band_sqrt(x: f32) -> f32 {
    sqrt::sqrt_f32(x)
}

/// `(cos, sin)` of `−2πk/128` for `k < 64`, computed at compile time; the cosine of
/// `π/2` is exactly 0 (the series gives 6e-17), so the twiddle of bin 32 is exactly
/// `(0, −1)` and the fast kernel can skip its products (see `spectrum/fft.rs`).
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
        let c = if k == quarter {
            0.0
        } else if k < quarter {
            c
        } else {
            -c
        };
        t[k] = (c as f32, -s as f32);
        k += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// One channel through the public path.
    fn band_spectrum(x: &[f32], out: &mut [f32]) {
        InputFeatures::BandSpectrum.compute(x, out).unwrap();
    }

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

    /// xorshift32 in [0, 1).
    struct Rng(u32);

    impl Rng {
        fn next_u32(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
        fn unit(&mut self) -> f32 {
            (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
        }
    }

    /// One channel of a test window: `shape` picks the signal, `scale` its magnitude.
    fn channel(rng: &mut Rng, shape: u32, scale: f32) -> [f32; WINDOW_LEN] {
        let dc = (rng.unit() - 0.5) * 2.0 * scale;
        let mut walk = dc;
        core::array::from_fn(|t| match shape % 8 {
            0 => (rng.unit() - 0.5) * scale,
            1 => {
                walk += (rng.unit() - 0.5) * 0.1 * scale;
                walk
            }
            2 => dc + scale * (0.37 * t as f32).sin(),
            3 => dc,
            4 => {
                if t == (shape as usize / 8) % WINDOW_LEN {
                    scale
                } else {
                    0.0
                }
            }
            5 => {
                if t % 2 == 0 {
                    scale
                } else {
                    -scale
                }
            }
            6 => {
                if rng.unit() < 0.1 {
                    (rng.unit() - 0.5) * scale
                } else {
                    0.0
                }
            }
            // Few distinct values: many equal intermediates and exact zeros.
            _ => [0.0, scale, -scale, 0.5 * scale][rng.next_u32() as usize % 4],
        })
    }

    /// The fast path (every batching of `channels`, through `compute`) gives the oracle's
    /// bits: bands exactly, the mean as a value (a zero may differ in sign, see
    /// `fft`'s docs).
    fn assert_same_as_oracle(window: &[f32]) {
        let channels = window.len() / WINDOW_LEN;
        let mut want = vec![0.0f32; channels * SPECTRUM_VALUES_PER_CHANNEL];
        for (x, o) in window
            .chunks_exact(WINDOW_LEN)
            .zip(want.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL))
        {
            reference::band_spectrum(x, o);
        }
        let mut got = vec![f32::NAN; want.len()];
        InputFeatures::BandSpectrum
            .compute(window, &mut got)
            .unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let same = if i % SPECTRUM_VALUES_PER_CHANNEL == 0 {
                g == w || g.to_bits() == w.to_bits()
            } else {
                g.to_bits() == w.to_bits()
            };
            assert!(
                same,
                "channel {} value {}: {g:e} vs oracle {w:e} ({channels} channels)",
                i / SPECTRUM_VALUES_PER_CHANNEL,
                i % SPECTRUM_VALUES_PER_CHANNEL
            );
        }
    }

    #[test]
    fn fast_spectrum_is_the_oracle_bit_for_bit_at_every_magnitude() {
        let mut rng = Rng(0x9e37_79b9);
        let scales = [
            0.0, 1e-38, 3e-30, 1e-12, 1e-3, 0.05, 1.0, 9.81, 35.0, 2e3, 1e9, 1e20, 1e33,
        ];
        for round in 0..400u32 {
            // 1..=13 channels: batches of 8 and 4 and single channels, in every mix.
            let channels = 1 + round as usize % 13;
            let window: Vec<f32> = (0..channels)
                .flat_map(|_| {
                    let scale = scales[rng.next_u32() as usize % scales.len()];
                    let shape = rng.next_u32() % 1024;
                    channel(&mut rng, shape, scale)
                })
                .collect();
            assert_same_as_oracle(&window);
        }
    }

    #[test]
    fn no_panic_and_no_lane_crosstalk_on_non_finite_input() {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
        ];
        for (i, &bad) in specials.iter().enumerate() {
            // Nine channels (a batch of 8 and one alone); channel i gets the bad value.
            let mut window: Vec<f32> = (0..9 * WINDOW_LEN)
                .map(|t| (t % WINDOW_LEN % 7) as f32)
                .collect();
            window[i * WINDOW_LEN + 5 + i] = bad;
            let mut out = vec![0.0f32; 9 * SPECTRUM_VALUES_PER_CHANNEL];
            InputFeatures::BandSpectrum
                .compute(&window, &mut out)
                .unwrap();
            // The other channels are untouched by the bad lane.
            let clean: Vec<f32> = (0..WINDOW_LEN).map(|t| (t % 7) as f32).collect();
            let mut want = vec![0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
            reference::band_spectrum(&clean, &mut want);
            for c in (0..9).filter(|&c| c != i) {
                let got = &out[c * SPECTRUM_VALUES_PER_CHANNEL..][..SPECTRUM_VALUES_PER_CHANNEL];
                assert_eq!(got, &want[..], "channel {c} with {bad} in channel {i}");
            }
            // A non-finite sample makes the mean non-finite (the encoder relies on it).
            assert_eq!(
                out[i * SPECTRUM_VALUES_PER_CHANNEL].is_finite(),
                bad.is_finite(),
                "mean of channel {i} with {bad}"
            );
        }
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
