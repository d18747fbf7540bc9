//! The UCI HAR preprocessing, written once for the device and the trainer.
//!
//! Raw 50 Hz samples (accelerometer in g, gyroscope in rad/s) go through, per axis:
//! 1. a causal 3-point median filter (removes single-sample spikes);
//! 2. a 3rd-order Butterworth low-pass at 20 Hz → `total_acc` and `body_gyro`;
//! 3. for the accelerometer, gravity = 3rd-order Butterworth low-pass at 0.3 Hz of
//!    `total_acc`, and `body_acc = total_acc − gravity`.
//!
//! The selected channels are cut into windows of [`WINDOW_LEN`] samples every
//! [`HOP_LEN`] samples (2.56 s, 50 % overlap). [`Preprocessor::push`] does this one
//! sample at a time with fixed-size buffers; [`windows_of_recording`] runs the same
//! `Preprocessor` over a whole recording, so training windows and device windows are
//! computed by the same code, bit for bit.
//!
//! **Start of a stream.** The first accepted sample after [`Preprocessor::new`] or
//! [`Preprocessor::reset`] initialises every filter to its steady state for that sample
//! (as if the sensor had been still forever), so the first windows have no start-up
//! transient: gravity starts at the first acceleration, not at zero. The causal median
//! and the low-passes delay the signal by about one sample at low frequencies; window
//! positions refer to input sample indices and ignore that delay.
//!
//! **Non-finite input.** A sample with a NaN or infinite value in a field the selected
//! channels need is rejected: `push` returns [`PreprocessError::NonFinite`] naming the
//! sample index and field, no filter or window state changes, and the sample is
//! counted in [`Preprocessor::rejected_samples`]. The stream continues with the next
//! sample, so a window then spans more than [`WINDOW_LEN`] input indices;
//! [`Window::start_sample`] is the input index of its first accepted sample. Fields the
//! selected channels do not need (the gyroscope for [`ChannelSet::ACC_ONLY`]) are neither
//! checked nor filtered.

mod channels;
pub mod filter;
mod spectrum;

pub use channels::{Channel, ChannelSet, ParseChannelSetError};
use filter::{Butterworth3, Butterworth3Coeffs, Median3};
pub use spectrum::{
    BAND_WIDTH_HZ, InputFeatures, SPECTRUM_BANDS, SPECTRUM_VALUES_PER_CHANNEL, band_sqrt,
};

use core::fmt;

/// Sampling rate of the raw signals.
pub const SAMPLE_RATE_HZ: f32 = 50.0;
/// Samples per window (2.56 s).
pub const WINDOW_LEN: usize = 128;
/// Samples between window starts (50 % overlap).
pub const HOP_LEN: usize = 64;
/// Most channels a window can hold.
pub const MAX_CHANNELS: usize = 9;
/// Cut-off of the noise low-pass applied to acceleration and angular velocity.
pub const NOISE_CUTOFF_HZ: f32 = 20.0;
/// Cut-off of the low-pass that separates gravity from body acceleration.
pub const GRAVITY_CUTOFF_HZ: f32 = 0.3;

// The window buffer keeps its second half as the next window's first half.
const _: () = assert!(WINDOW_LEN == 2 * HOP_LEN);

/// Coefficients of the 20 Hz low-pass at 50 Hz, computed at compile time.
pub const NOISE_LOWPASS: Butterworth3Coeffs =
    Butterworth3Coeffs::design_const(NOISE_CUTOFF_HZ as f64, SAMPLE_RATE_HZ as f64);
/// Coefficients of the 0.3 Hz gravity low-pass at 50 Hz, computed at compile time.
pub const GRAVITY_LOWPASS: Butterworth3Coeffs =
    Butterworth3Coeffs::design_const(GRAVITY_CUTOFF_HZ as f64, SAMPLE_RATE_HZ as f64);

/// One raw sample of the IMU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuSample {
    /// Acceleration including gravity, x y z, in g.
    pub acc_g: [f32; 3],
    /// Angular velocity, x y z, in rad/s.
    pub gyro_rad_s: [f32; 3],
}

impl ImuSample {
    /// The six values in [`FIELD_NAMES`] order: acceleration x y z, then angular velocity.
    pub const fn fields(&self) -> [f32; 6] {
        let ([ax, ay, az], [gx, gy, gz]) = (self.acc_g, self.gyro_rad_s);
        [ax, ay, az, gx, gy, gz]
    }

    /// Inverse of [`ImuSample::fields`].
    pub const fn from_fields([ax, ay, az, gx, gy, gz]: [f32; 6]) -> ImuSample {
        ImuSample {
            acc_g: [ax, ay, az],
            gyro_rad_s: [gx, gy, gz],
        }
    }
}

/// Names of the six sample fields in [`ImuSample::fields`] order, as reported in
/// [`PreprocessError::NonFinite`] (and the resampler's errors).
pub const FIELD_NAMES: [&str; 6] = [
    "acc_g.x",
    "acc_g.y",
    "acc_g.z",
    "gyro_rad_s.x",
    "gyro_rad_s.y",
    "gyro_rad_s.z",
];

/// Errors of the preprocessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreprocessError {
    /// Input sample `sample_index` (0-based, counting rejected samples too) has a NaN or
    /// infinite value in `field` (`"acc_g.x"` … `"gyro_rad_s.z"`). It was rejected.
    NonFinite {
        sample_index: u64,
        field: &'static str,
    },
    /// A slice handed to [`Window::from_slice`] or [`scale_window`] has the wrong length.
    Length { expected: usize, got: usize },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreprocessError::NonFinite {
                sample_index,
                field,
            } => write!(
                f,
                "sample {sample_index}: field {field} is NaN or infinite; sample rejected"
            ),
            PreprocessError::Length { expected, got } => {
                write!(f, "expected {expected} values, got {got}")
            }
        }
    }
}

impl core::error::Error for PreprocessError {}

/// A window of the selected channels, channel-major: row *k* holds the *k*-th selected
/// channel (in [`Channel`] order), [`WINDOW_LEN`] samples in raw physical units.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    channels: ChannelSet,
    /// Input index of the window's first sample.
    pub start_sample: u64,
    data: [f32; MAX_CHANNELS * WINDOW_LEN],
}

impl Window {
    const fn empty(channels: ChannelSet) -> Self {
        Window {
            channels,
            start_sample: 0,
            data: [0.0; MAX_CHANNELS * WINDOW_LEN],
        }
    }

    /// A window from channel-major values (`channels.len() * WINDOW_LEN` of them), e.g.
    /// one read back from a file.
    pub fn from_slice(
        channels: ChannelSet,
        start_sample: u64,
        values: &[f32],
    ) -> Result<Window, PreprocessError> {
        let expected = channels.len() * WINDOW_LEN;
        if values.len() != expected {
            return Err(PreprocessError::Length {
                expected,
                got: values.len(),
            });
        }
        let mut window = Window::empty(channels);
        window.start_sample = start_sample;
        window.data[..expected].copy_from_slice(values);
        Ok(window)
    }

    pub const fn channels(&self) -> ChannelSet {
        self.channels
    }

    /// The model input: `channels().len() * WINDOW_LEN` values, channel-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.channels.len() * WINDOW_LEN]
    }

    /// The [`WINDOW_LEN`] samples of `channel`, if selected.
    pub fn channel(&self, channel: Channel) -> Option<&[f32]> {
        let row = self.channels.position(channel)?;
        Some(&self.data[row * WINDOW_LEN..(row + 1) * WINDOW_LEN])
    }
}

/// Streaming preprocessor: push raw samples, get a [`Window`] every [`HOP_LEN`] samples
/// once [`WINDOW_LEN`] have been seen. About 5 KiB, no heap; `new` is `const`, so it can
/// live in a `static`.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    channels: ChannelSet,
    /// Median filters: acc x y z, gyro x y z.
    median: [Median3; 6],
    /// 20 Hz low-passes: acc x y z, gyro x y z.
    noise_lowpass: [Butterworth3; 6],
    /// 0.3 Hz low-passes of total acceleration x y z.
    gravity_lowpass: [Butterworth3; 3],
    /// False until the first accepted sample has settled the filters.
    primed: bool,
    window: Window,
    /// Samples written in `window` (0..=WINDOW_LEN).
    fill: usize,
    /// Input index of the sample in column 0 and column HOP_LEN of `window`.
    column_start: [u64; 2],
    samples_seen: u64,
    rejected: u64,
}

impl Preprocessor {
    /// Out of line (at the crate's optimisation level), so the value is built in the
    /// caller's slot: inlined into a size-optimised firmware it was built in temporaries
    /// and copied (the window twice: 10 KiB of stack on the QEMU board).
    #[inline(never)]
    pub const fn new(channels: ChannelSet) -> Self {
        Preprocessor {
            channels,
            median: [Median3::new(); 6],
            noise_lowpass: [Butterworth3::new(NOISE_LOWPASS); 6],
            gravity_lowpass: [Butterworth3::new(GRAVITY_LOWPASS); 3],
            primed: false,
            window: Window::empty(channels),
            fill: 0,
            column_start: [0; 2],
            samples_seen: 0,
            rejected: 0,
        }
    }

    /// Back to the state of `new`: filters, partial window and counters. Call between
    /// recordings.
    pub fn reset(&mut self) {
        *self = Preprocessor::new(self.channels);
    }

    pub const fn channels(&self) -> ChannelSet {
        self.channels
    }

    /// Samples pushed since `new`/`reset`, rejected ones included (the next input index).
    pub const fn samples_seen(&self) -> u64 {
        self.samples_seen
    }

    /// Samples rejected because of NaN or infinite values since `new`/`reset`.
    pub const fn rejected_samples(&self) -> u64 {
        self.rejected
    }

    /// Feeds one raw sample. Returns the next window when this sample completes one
    /// (every [`HOP_LEN`] accepted samples from the [`WINDOW_LEN`]-th on).
    pub fn push(&mut self, sample: ImuSample) -> Result<Option<&Window>, PreprocessError> {
        let sample_index = self.samples_seen;
        self.samples_seen = self.samples_seen.wrapping_add(1);
        let raw = sample.fields();
        let (need_acc, need_gyro) = (self.channels.needs_acc(), self.channels.needs_gyro());
        for (i, value) in raw.iter().enumerate() {
            let needed = if i < 3 { need_acc } else { need_gyro };
            if needed && !value.is_finite() {
                self.rejected = self.rejected.wrapping_add(1);
                return Err(PreprocessError::NonFinite {
                    sample_index,
                    field: FIELD_NAMES[i],
                });
            }
        }

        let values = self.filter(&raw, need_acc, need_gyro);

        if self.fill == WINDOW_LEN {
            // The previous push emitted a window; its second half starts the next one.
            for row in 0..self.channels.len() {
                let start = row * WINDOW_LEN;
                self.window
                    .data
                    .copy_within(start + HOP_LEN..start + WINDOW_LEN, start);
            }
            self.column_start[0] = self.column_start[1];
            self.fill = HOP_LEN;
        }
        if self.fill == 0 || self.fill == HOP_LEN {
            self.column_start[self.fill / HOP_LEN] = sample_index;
        }
        for (row, channel) in self.channels.iter().enumerate() {
            self.window.data[row * WINDOW_LEN + self.fill] = values[channel.index()];
        }
        self.fill += 1;

        if self.fill == WINDOW_LEN {
            self.window.start_sample = self.column_start[0];
            Ok(Some(&self.window))
        } else {
            Ok(None)
        }
    }

    /// Runs the filters on one finite sample; returns all nine channels in [`Channel`]
    /// order (unneeded sensors are skipped and left at 0).
    fn filter(&mut self, raw: &[f32; 6], need_acc: bool, need_gyro: bool) -> [f32; MAX_CHANNELS] {
        if !self.primed {
            for (i, &value) in raw.iter().enumerate() {
                self.median[i].settle(value);
                self.noise_lowpass[i].settle(value);
            }
            for (axis, gravity) in self.gravity_lowpass.iter_mut().enumerate() {
                gravity.settle(raw[axis]);
            }
            self.primed = true;
        }
        let mut out = [0.0f32; MAX_CHANNELS];
        if need_acc {
            for axis in 0..3 {
                let despiked = self.median[axis].process(raw[axis]);
                let total = self.noise_lowpass[axis].process(despiked);
                let gravity = self.gravity_lowpass[axis].process(total);
                out[Channel::TotalAccX.index() + axis] = total;
                out[Channel::BodyAccX.index() + axis] = total - gravity;
            }
        }
        if need_gyro {
            for axis in 0..3 {
                let despiked = self.median[3 + axis].process(raw[3 + axis]);
                let body_gyro = self.noise_lowpass[3 + axis].process(despiked);
                out[Channel::BodyGyroX.index() + axis] = body_gyro;
            }
        }
        out
    }
}

/// Runs a fresh [`Preprocessor`] over a whole recording and calls `on_window` for every
/// window, in order. Stops at the first non-finite sample and returns its error.
pub fn windows_of_recording(
    samples: &[ImuSample],
    channels: ChannelSet,
    mut on_window: impl FnMut(&Window),
) -> Result<(), PreprocessError> {
    let mut preprocessor = Preprocessor::new(channels);
    for &sample in samples {
        if let Some(window) = preprocessor.push(sample)? {
            on_window(window);
        }
    }
    Ok(())
}

/// Number of windows [`windows_of_recording`] yields for `n_samples` finite samples.
pub const fn window_count(n_samples: usize) -> usize {
    if n_samples < WINDOW_LEN {
        0
    } else {
        (n_samples - WINDOW_LEN) / HOP_LEN + 1
    }
}

/// Model-input normalisation of one channel into [0, 1] (the VSC decoder's mean is a
/// sigmoid): `x01 = clamp((x − offset) · scale, 0, 1)`. Fitted on the training split
/// (min/max per channel) and carried in every model.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct ChannelScaling {
    pub offset: f32,
    pub scale: f32,
}

impl ChannelScaling {
    /// Maps `[min, max]` onto `[0, 1]`. A range that is empty, reversed or not finite
    /// gives `scale = 0`, so the channel maps to 0 instead of dividing by zero.
    pub fn from_min_max(min: f32, max: f32) -> ChannelScaling {
        let range = max - min;
        if range > 0.0 && range.is_finite() {
            ChannelScaling {
                offset: min,
                scale: 1.0 / range,
            }
        } else {
            ChannelScaling {
                offset: if min.is_finite() { min } else { 0.0 },
                scale: 0.0,
            }
        }
    }

    /// `clamp((x − offset) · scale, 0, 1)`; NaN stays NaN.
    pub fn apply(&self, x: f32) -> f32 {
        ((x - self.offset) * self.scale).clamp(0.0, 1.0)
    }
}

/// Normalises a channel-major window in place: row *k* with `scaling[k]`. `values` must
/// hold `scaling.len() * WINDOW_LEN` values.
pub fn scale_window(values: &mut [f32], scaling: &[ChannelScaling]) -> Result<(), PreprocessError> {
    let expected = scaling.len() * WINDOW_LEN;
    if values.len() != expected {
        return Err(PreprocessError::Length {
            expected,
            got: values.len(),
        });
    }
    for (row, s) in values.chunks_exact_mut(WINDOW_LEN).zip(scaling) {
        for x in row {
            *x = s.apply(*x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
