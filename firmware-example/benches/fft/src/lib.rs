//! issue 16's library comparison: edge-runtime's band spectrum (its own 64-point complex
//! FFT, split, band sums fused; bit-identical to the radix-2 oracle) against the same
//! band spectrum computed from `microfft::real::rfft_128`.
//!
//! Both sides compute, per channel of 128 samples, `[mean, A_0, …, A_31]` with
//! `A_b = (|X_{2b+1}| + |X_{2b+2}|) / 128` (edge-runtime's `spectrum` module docs) and the
//! same correctly rounded square root ([`band_sqrt`]), so the difference is the transform.
//! `cargo xtask bench fft` counts both on the Cortex-M4 (QEMU, `src/m4.rs`) and times them
//! on the host (`src/host.rs`).

#![no_std]

use edge_runtime::preprocess::{
    InputFeatures, MAX_CHANNELS, SPECTRUM_BANDS, SPECTRUM_VALUES_PER_CHANNEL, WINDOW_LEN, band_sqrt,
};

/// Samples of one window, channel-major (9 channels × 128).
pub const WINDOW_VALUES: usize = MAX_CHANNELS * WINDOW_LEN;
/// Band-spectrum values of one window (9 channels × 33).
pub const SPECTRUM_VALUES: usize = MAX_CHANNELS * SPECTRUM_VALUES_PER_CHANNEL;

/// edge-runtime's band spectrum of every channel of `window`: the production path
/// (`InputFeatures::compute`, which the encoder's input stage calls).
pub fn edge_runtime_spectra(window: &[f32; WINDOW_VALUES], out: &mut [f32; SPECTRUM_VALUES]) {
    // Lengths are fixed by the types, so `compute` cannot fail here.
    let _ = InputFeatures::BandSpectrum.compute(window, out);
}

/// The same band spectrum through microfft: per channel a copy (`rfft_128` transforms in
/// place and the window stays the caller's), the transform, then mean and band sums.
pub fn microfft_spectra(window: &[f32; WINDOW_VALUES], out: &mut [f32; SPECTRUM_VALUES]) {
    let channels = window.as_chunks::<WINDOW_LEN>().0;
    let outs = out.as_chunks_mut::<SPECTRUM_VALUES_PER_CHANNEL>().0;
    for (x, o) in channels.iter().zip(outs) {
        microfft_band_spectrum(x, o);
    }
}

/// One channel: `[mean, A_0, …, A_31]` from `rfft_128`'s half spectrum, whose bin 0 holds
/// the DC value in its real part and the (real) Nyquist bin 64 in its imaginary part.
pub fn microfft_band_spectrum(x: &[f32; WINDOW_LEN], out: &mut [f32; SPECTRUM_VALUES_PER_CHANNEL]) {
    let mut buf = *x;
    let spectrum = microfft::real::rfft_128(&mut buf);
    let amplitude = |k: usize| match k {
        64 => spectrum[0].im.abs(),
        _ => spectrum
            .get(k)
            .map_or(0.0, |c| band_sqrt(c.re * c.re + c.im * c.im)),
    };
    out[0] = spectrum[0].re / WINDOW_LEN as f32;
    for b in 0..SPECTRUM_BANDS {
        out[1 + b] = (amplitude(2 * b + 1) + amplitude(2 * b + 2)) / WINDOW_LEN as f32;
    }
}

/// xorshift32: the same windows on every target.
pub struct Rng(pub u32);

impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform in [−1, 1).
    pub fn symmetric(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

/// A window shaped like UCI HAR's nine channels while walking: body acceleration (g) and
/// angular rate (rad/s) as a ~1.8 Hz gait fundamental with harmonics and sensor noise,
/// total acceleration the same plus a gravity component. Deterministic in `seed`.
pub fn test_window(seed: u32) -> [f32; WINDOW_VALUES] {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9) | 1);
    let mut window = [0.0f32; WINDOW_VALUES];
    let gait_hz = 1.6 + 0.4 * (rng.symmetric() + 1.0) / 2.0;
    for (c, x) in window
        .as_chunks_mut::<WINDOW_LEN>()
        .0
        .iter_mut()
        .enumerate()
    {
        let scale = if (3..6).contains(&c) { 1.2 } else { 0.3 };
        let gravity = if c >= 6 { 0.9 * rng.symmetric() } else { 0.0 };
        let phases = [
            rng.symmetric() * 3.1,
            rng.symmetric() * 3.1,
            rng.symmetric() * 3.1,
        ];
        for (t, v) in x.iter_mut().enumerate() {
            let time_s = t as f32 / 50.0;
            let mut s = gravity;
            for (h, phase) in phases.iter().enumerate() {
                let arg = 2.0 * core::f32::consts::PI * gait_hz * (h + 1) as f32 * time_s;
                s += scale / (h + 1) as f32 * cos_approx(arg + phase);
            }
            *v = s + 0.02 * scale * rng.symmetric();
        }
    }
    window
}

/// cos to ~1e-6 without libm (a test signal, not a measurement: its accuracy is not
/// compared with anything).
fn cos_approx(x: f32) -> f32 {
    let two_pi = 2.0 * core::f32::consts::PI;
    // Into [−π, π].
    let turns = x / two_pi;
    let rounded = (turns + if turns >= 0.0 { 0.5 } else { -0.5 }) as i32 as f32;
    let r = x - rounded * two_pi;
    let r2 = r * r;
    // Taylor to r^16: below 1e-6 on [−π, π].
    let mut term = 1.0f32;
    let mut sum = 1.0f32;
    for k in 1..=8 {
        term *= -r2 / ((2 * k - 1) * (2 * k)) as f32;
        sum += term;
    }
    sum
}

/// FNV-1a over the bits of `values`, continued from `hash` (start with [`FNV_START`]):
/// the M4 reports its outputs as this hash for the host to compare.
pub fn fnv1a_bits(mut hash: u32, values: &[f32]) -> u32 {
    for v in values {
        for byte in v.to_bits().to_le_bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// FNV-1a's offset basis.
pub const FNV_START: u32 = 0x811c_9dc5;

/// Windows each side runs on the M4 (and the host hashes to compare).
pub const M4_WINDOWS: u32 = 8;

/// Hashes of both sides' spectra of [`test_window`]`(1..=M4_WINDOWS)`: `(edge-runtime,
/// microfft)`.
pub fn output_hashes(
    mut edge: impl FnMut(&[f32; WINDOW_VALUES], &mut [f32; SPECTRUM_VALUES]),
    mut micro: impl FnMut(&[f32; WINDOW_VALUES], &mut [f32; SPECTRUM_VALUES]),
) -> (u32, u32) {
    let (mut h_edge, mut h_micro) = (FNV_START, FNV_START);
    let mut out = [0.0f32; SPECTRUM_VALUES];
    for seed in 1..=M4_WINDOWS {
        let window = test_window(seed);
        edge(&window, &mut out);
        h_edge = fnv1a_bits(h_edge, &out);
        micro(&window, &mut out);
        h_micro = fnv1a_bits(h_micro, &out);
    }
    (h_edge, h_micro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microfft_bands_match_edge_runtime_within_rounding() {
        let (mut want, mut got) = ([0.0f32; SPECTRUM_VALUES], [0.0f32; SPECTRUM_VALUES]);
        for seed in 1..=50 {
            let window = test_window(seed);
            edge_runtime_spectra(&window, &mut want);
            microfft_spectra(&window, &mut got);
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert!(
                    (w - g).abs() <= 1e-5 * (1.0 + w.abs()),
                    "value {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn a_tone_and_the_nyquist_bin_land_in_their_bands() {
        // Bin 10 (band 4) with amplitude 0.8 gives 0.4; an alternating ±0.5 is bin 64
        // alone (band 31), amplitude 0.5 in one bin of the pair: 0.5.
        let mut x = [0.0f32; WINDOW_LEN];
        for (t, v) in x.iter_mut().enumerate() {
            let angle = 2.0 * core::f32::consts::PI * 10.0 * t as f32 / WINDOW_LEN as f32;
            *v = 1.5 + 0.8 * cos_approx(angle) + if t % 2 == 0 { 0.5 } else { -0.5 };
        }
        let mut out = [0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
        microfft_band_spectrum(&x, &mut out);
        assert!((out[0] - 1.5).abs() < 1e-5, "mean {}", out[0]);
        for (b, v) in out[1..].iter().enumerate() {
            let want = match b {
                4 => 0.4,
                31 => 0.5,
                _ => 0.0,
            };
            assert!((v - want).abs() < 1e-4, "band {b}: {v}, want {want}");
        }
    }

    #[test]
    fn the_hash_sees_every_bit_and_the_order() {
        let a = fnv1a_bits(FNV_START, &[1.0, 2.0]);
        assert_ne!(a, fnv1a_bits(FNV_START, &[2.0, 1.0]));
        assert_ne!(
            a,
            fnv1a_bits(FNV_START, &[1.0, f32::from_bits(2.0f32.to_bits() ^ 1)])
        );
        assert_eq!(fnv1a_bits(fnv1a_bits(FNV_START, &[1.0]), &[2.0]), a);
        // FNV-1a's published value for the empty input.
        assert_eq!(fnv1a_bits(FNV_START, &[]), 0x811c_9dc5);
    }

    #[test]
    fn test_windows_are_deterministic_and_differ_by_seed() {
        assert_eq!(test_window(3), test_window(3));
        assert_ne!(test_window(3), test_window(4));
        assert!(
            test_window(7)
                .iter()
                .all(|v| v.is_finite() && v.abs() < 5.0)
        );
    }
}
