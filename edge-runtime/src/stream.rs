//! The device loop, written once for the firmware and the host golden test: sensor
//! readings → [`Preprocessor`] → encoder → one [`Frame`] per window, with sensor errors,
//! non-finite samples and saturation turned into frame flags, never into a panic.
//!
//! [`Pipeline`] takes samples already on the 50 Hz grid; [`TimedPipeline`] puts a
//! [`Resampler`] in front of it for sources with their own rate and clock (a 52 Hz IMU,
//! a phone's motion events).

use crate::encoder::{Encoder, SparseCode};
use crate::frame::{Frame, MAX_LATENT, flags};
use crate::preprocess::{ChannelSet, HOP_LEN, ImuSample, Preprocessor, Window};
use crate::resample::{ResampleError, Resampler};
use crate::sensor::{Excerpt, MPU6050_ADDRESS, Mpu6050, RecordedMpu6050, ReplayError, SensorError};

/// Milliseconds per sample at 50 Hz.
pub const SAMPLE_PERIOD_MS: u32 = 20;
/// `INT_STATUS` polls before a read counts as failed (the replay needs 2).
pub const MAX_POLLS: u32 = 1000;

/// The encoder could not code a window (wrong channels, non-finite input, …); the
/// pipeline sends the frame flagged `ENCODER_ERROR` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeFailed;

/// Anything that turns a window into a sparse code written into a frame.
pub trait WindowEncoder {
    /// J of the model.
    fn latent_dim(&self) -> u8;
    /// Multiply-accumulates per window (for benchmarks).
    fn macs_per_window(&self) -> u64;
    /// Fills `spike_bits`, `gamma_q15`, `mu_q` and `mu_scale` of `frame` (which arrives
    /// with those fields empty).
    fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed>;
}

impl<T: WindowEncoder + ?Sized> WindowEncoder for &T {
    fn latent_dim(&self) -> u8 {
        (**self).latent_dim()
    }
    fn macs_per_window(&self) -> u64 {
        (**self).macs_per_window()
    }
    fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed> {
        (**self).encode_into(window, frame)
    }
}

/// Streaming state: preprocessing, frame counter and the flags gathered since the last
/// frame.
#[derive(Clone, Debug)]
pub struct Pipeline<E> {
    preprocessor: Preprocessor,
    encoder: E,
    sequence: u32,
    /// Samples elapsed (read or failed): the stream clock.
    samples: u32,
    pending_flags: u8,
    /// Consecutive failed reads; a whole hop of them yields a code-less frame.
    failed_run: usize,
}

impl<E: WindowEncoder> Pipeline<E> {
    pub fn new(channels: ChannelSet, encoder: E) -> Self {
        Pipeline {
            preprocessor: Preprocessor::new(channels),
            encoder,
            sequence: 0,
            samples: 0,
            pending_flags: 0,
            failed_run: 0,
        }
    }

    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// Adds [`flags`] bits to the next frame (e.g. a sample rejected before the pipeline).
    pub fn flag(&mut self, bits: u8) {
        self.pending_flags |= bits;
    }

    fn timestamp_ms(&self) -> u32 {
        self.samples.wrapping_mul(SAMPLE_PERIOD_MS)
    }

    fn take_frame(&mut self, extra_flags: u8) -> Frame {
        let frame = Frame::without_code(
            self.sequence,
            self.timestamp_ms(),
            self.pending_flags | extra_flags,
            self.encoder.latent_dim(),
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.pending_flags = 0;
        frame
    }

    /// A good sample; returns a frame when it completes a window.
    pub fn push_sample(&mut self, sample: ImuSample, saturated: bool) -> Option<Frame> {
        self.samples = self.samples.wrapping_add(1);
        self.failed_run = 0;
        if saturated {
            self.pending_flags |= flags::SATURATED;
        }
        let window = match self.preprocessor.push(sample) {
            Ok(Some(window)) => window,
            Ok(None) => return None,
            Err(_) => {
                self.pending_flags |= flags::NON_FINITE;
                return None;
            }
        };
        let mut frame = Frame::without_code(
            self.sequence,
            self.samples.wrapping_mul(SAMPLE_PERIOD_MS),
            self.pending_flags,
            self.encoder.latent_dim(),
        );
        frame.flags &= !flags::NO_CODE;
        if self.encoder.encode_into(window, &mut frame).is_err() {
            frame = Frame::without_code(
                frame.sequence,
                frame.timestamp_ms,
                frame.flags | flags::ENCODER_ERROR,
                frame.latent_dim,
            );
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.pending_flags = 0;
        Some(frame)
    }

    /// A failed sensor read: the sample is skipped (time still advances). After
    /// [`HOP_LEN`] failures in a row, returns a code-less frame flagged `SENSOR_ERROR`, so
    /// a dead sensor is visible on the host at the usual frame rate.
    pub fn push_sensor_error(&mut self) -> Option<Frame> {
        self.samples = self.samples.wrapping_add(1);
        self.pending_flags |= flags::SENSOR_ERROR;
        self.failed_run += 1;
        if self.failed_run >= HOP_LEN {
            self.failed_run = 0;
            Some(self.take_frame(flags::SENSOR_ERROR))
        } else {
            None
        }
    }
}

/// A [`Pipeline`] behind a [`Resampler`]: timestamped samples at any rate in, frames out.
///
/// Samples with a NaN or infinite value are dropped and flag the next frame
/// `NON_FINITE`; samples whose timestamp is not after the previous one are dropped and
/// flag it `TIMESTAMP`; grid points inside a gap longer than
/// [`crate::resample::MAX_GAP_US`] count as failed reads (`SENSOR_ERROR`, and a code-less
/// frame after a whole hop of them). Frame timestamps are the stream clock: 20 ms per
/// grid point since the first sample.
#[derive(Clone, Debug)]
pub struct TimedPipeline<E> {
    resampler: Resampler,
    pipeline: Pipeline<E>,
}

impl<E: WindowEncoder> TimedPipeline<E> {
    pub fn new(channels: ChannelSet, encoder: E) -> Self {
        TimedPipeline {
            resampler: Resampler::new(),
            pipeline: Pipeline::new(channels, encoder),
        }
    }

    pub fn encoder(&self) -> &E {
        self.pipeline.encoder()
    }

    /// One sample measured at `t_us` (µs of the source's monotonic clock); calls
    /// `on_frame` for each frame it completes (at most one, unless it ends a long gap).
    pub fn push(
        &mut self,
        t_us: u64,
        sample: ImuSample,
        saturated: bool,
        mut on_frame: impl FnMut(Frame),
    ) {
        if saturated {
            self.pipeline.flag(flags::SATURATED);
        }
        let pipeline = &mut self.pipeline;
        let result = self.resampler.push(t_us, sample, |point| {
            let frame = match point {
                Some(s) => pipeline.push_sample(s, false),
                None => pipeline.push_sensor_error(),
            };
            if let Some(frame) = frame {
                on_frame(frame);
            }
        });
        match result {
            Ok(()) => {}
            Err(ResampleError::NonFinite { .. }) => self.pipeline.flag(flags::NON_FINITE),
            Err(ResampleError::NonMonotonic { .. }) => self.pipeline.flag(flags::TIMESTAMP),
        }
    }

    /// A failed sensor read at `t_us`: flags the next frame `SENSOR_ERROR`. Short runs of
    /// failures are bridged by interpolation when the next good sample arrives; once the
    /// last good sample is older than [`crate::resample::MAX_GAP_US`], the grid points up
    /// to `t_us` count as failed reads, so a dead sensor still yields (code-less,
    /// flagged) frames at the usual rate.
    pub fn push_sensor_error(&mut self, t_us: u64, mut on_frame: impl FnMut(Frame)) {
        self.pipeline.flag(flags::SENSOR_ERROR);
        let pipeline = &mut self.pipeline;
        self.resampler.missing(t_us, |_| {
            if let Some(frame) = pipeline.push_sensor_error() {
                on_frame(frame);
            }
        });
    }
}

/// Runs the MPU-6050 driver over a replayed excerpt through a [`Pipeline`] and hands
/// every frame to `on_frame`; the firmware and the host golden test both call this.
/// Returns the number of samples read, or the driver's error if `init` fails.
pub fn run_recorded<E: WindowEncoder>(
    excerpt: Excerpt<'_>,
    channels: ChannelSet,
    encoder: E,
    faults: core::ops::Range<usize>,
    mut on_frame: impl FnMut(&Frame),
) -> Result<u32, SensorError<ReplayError>> {
    let mut chip = RecordedMpu6050::new(excerpt);
    chip.inject_bus_errors(faults);
    let mut imu = Mpu6050::new(chip, MPU6050_ADDRESS, excerpt.config());
    imu.init()?;
    let mut pipeline = Pipeline::new(channels, encoder);
    let mut read = 0u32;
    loop {
        let frame = match imu.wait_and_read(MAX_POLLS) {
            Ok(reading) => {
                read += 1;
                pipeline.push_sample(reading.sample, reading.saturated)
            }
            Err(SensorError::Bus(ReplayError::EndOfRecording)) => break,
            Err(_) => pipeline.push_sensor_error(),
        };
        if let Some(frame) = frame {
            on_frame(&frame);
        }
    }
    Ok(read)
}

impl WindowEncoder for Encoder<'_> {
    fn latent_dim(&self) -> u8 {
        // The blob parser bounds J by MAX_LATENT (64).
        self.blob().latent_dim().min(MAX_LATENT) as u8
    }

    fn macs_per_window(&self) -> u64 {
        // Hidden layer plus the two heads the device evaluates (μ and the gate v; the
        // log σ² head is not needed for the code).
        let (m, h, j) = (
            self.blob().input_dim() as u64,
            self.blob().hidden_dim() as u64,
            self.blob().latent_dim() as u64,
        );
        m * h + 2 * h * j
    }

    fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed> {
        let mut code = SparseCode::EMPTY;
        self.encode_window(window, &mut code)
            .map_err(|_| EncodeFailed)?;
        frame.spike_bits = code.spike_bits;
        frame.mu_scale = code.mu_scale;
        frame.activity = code.activity;
        frame.activity_score = code.activity_score;
        for j in code.active_dims() {
            frame
                .gamma_q15
                .push(code.gamma_q15[j])
                .map_err(|_| EncodeFailed)?;
            frame.mu_q.push(code.mu_q[j]).map_err(|_| EncodeFailed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::preprocess::WINDOW_LEN;
    use crate::sensor::{AccelRange, GyroRange, RawSample};

    /// Test encoder: dimension *c* is active when channel *c*'s window mean is positive.
    struct MeanSign;

    impl WindowEncoder for MeanSign {
        fn latent_dim(&self) -> u8 {
            9
        }
        fn macs_per_window(&self) -> u64 {
            0
        }
        fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed> {
            for (c, row) in window.as_slice().chunks_exact(WINDOW_LEN).enumerate() {
                let mean = row.iter().sum::<f32>() / WINDOW_LEN as f32;
                if mean > 0.0 {
                    frame.spike_bits |= 1 << c;
                    frame.gamma_q15.push(30000).map_err(|_| EncodeFailed)?;
                    frame
                        .mu_q
                        .push((mean * 1000.0) as i16)
                        .map_err(|_| EncodeFailed)?;
                }
            }
            frame.mu_scale = 0.001;
            Ok(())
        }
    }

    fn excerpt_bytes(n: usize, saturate_at: Option<usize>) -> Vec<u8> {
        let mut bytes =
            Excerpt::header(AccelRange::G4, GyroRange::Dps1000, 2, 3, 0, n as u32).to_vec();
        for i in 0..n {
            let t = i as f32 / 50.0;
            let mut raw = RawSample {
                acc: [
                    AccelRange::G4.g_to_counts(1.0 + 0.3 * (6.0 * t).sin()),
                    AccelRange::G4.g_to_counts(0.2 * (3.0 * t).cos()),
                    AccelRange::G4.g_to_counts(-0.1),
                ],
                temperature: 0,
                gyro: [
                    GyroRange::Dps1000.rad_s_to_counts((5.0 * t).sin()),
                    0,
                    GyroRange::Dps1000.rad_s_to_counts(-0.5),
                ],
            };
            if saturate_at == Some(i) {
                raw.acc[0] = i16::MAX;
            }
            bytes.extend_from_slice(&raw.to_registers());
        }
        bytes
    }

    #[test]
    fn recorded_run_yields_one_frame_per_hop() {
        let bytes = excerpt_bytes(WINDOW_LEN + 3 * HOP_LEN, None);
        let excerpt = Excerpt::parse(&bytes).unwrap();
        let mut frames = Vec::new();
        let read = run_recorded(excerpt, ChannelSet::ALL, MeanSign, 0..0, |f| {
            frames.push(f.clone())
        })
        .unwrap();
        assert_eq!(read as usize, excerpt.len());
        assert_eq!(frames.len(), 4);
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(f.sequence, k as u32);
            assert_eq!(f.flags, 0);
            assert_eq!(f.timestamp_ms, ((WINDOW_LEN + k * HOP_LEN) * 20) as u32);
            assert_eq!(f.gamma_q15.len(), f.spike_bits.count_ones() as usize);
        }
    }

    #[test]
    fn sensor_errors_and_saturation_become_flags() {
        let n = WINDOW_LEN + 5 * HOP_LEN;
        let bytes = excerpt_bytes(n, Some(WINDOW_LEN + 10));
        let excerpt = Excerpt::parse(&bytes).unwrap();
        let mut frames = Vec::new();
        // A short fault and then a whole hop of failed reads.
        let faults = WINDOW_LEN + 2 * HOP_LEN..WINDOW_LEN + 3 * HOP_LEN + 5;
        run_recorded(excerpt, ChannelSet::ALL, MeanSign, faults, |f| {
            frames.push(f.clone())
        })
        .unwrap();
        let flags_of: Vec<u8> = frames.iter().map(|f| f.flags).collect();
        assert_eq!(flags_of[0], 0);
        assert_eq!(flags_of[1], flags::SATURATED);
        assert!(
            frames
                .iter()
                .any(|f| f.flags == flags::SENSOR_ERROR | flags::NO_CODE),
            "a hop of failures yields a code-less frame: {flags_of:?}"
        );
        assert!(frames.iter().any(|f| f.flags == flags::SENSOR_ERROR));
        // Timestamps keep the 50 Hz clock through the failures; sequence has no gaps.
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(f.sequence, k as u32);
        }
        assert!(
            frames
                .windows(2)
                .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
        );
        assert!(frames.last().unwrap().timestamp_ms <= (n * 20) as u32);
    }

    /// At exactly 50 Hz with exact timestamps, the timed pipeline gives the frames of the
    /// plain one; at 60 Hz with jitter it still gives one frame per 1.28 s of stream.
    #[test]
    fn timed_pipeline_matches_the_50_hz_pipeline_and_resamples_others() {
        let signal = |t_s: f64| ImuSample {
            acc_g: [
                1.0 + 0.3 * (6.0 * t_s).sin() as f32,
                0.2 * (3.0 * t_s).cos() as f32,
                -0.1,
            ],
            gyro_rad_s: [(5.0 * t_s).sin() as f32, 0.0, -0.5],
        };
        let n = WINDOW_LEN + 4 * HOP_LEN;
        let mut plain = Pipeline::new(ChannelSet::ALL, MeanSign);
        let mut timed = TimedPipeline::new(ChannelSet::ALL, MeanSign);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for k in 0..n {
            let s = signal(k as f64 / 50.0);
            a.extend(plain.push_sample(s, false));
            timed.push(7_000_000 + k as u64 * 20_000, s, false, |f| b.push(f));
        }
        assert_eq!(a.len(), 5);
        assert_eq!(a, b);

        let mut timed = TimedPipeline::new(ChannelSet::ALL, MeanSign);
        let mut frames = Vec::new();
        let mut t_us = 0u64;
        let mut k = 0u64;
        while t_us < (n as u64 + 2) * 20_000 {
            let jitter = (k * 7919 % 5) * 1000;
            let t = t_us + jitter;
            timed.push(t, signal(t as f64 * 1e-6), false, |f| frames.push(f));
            t_us += 16_667;
            k += 1;
        }
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|f| f.flags == 0));
        // Same signal, resampled: window means (μ of MeanSign, in milli-units) agree with
        // the 50 Hz ones within interpolation error wherever they are clearly non-zero.
        for (x, y) in frames.iter().zip(&a) {
            assert_eq!(x.timestamp_ms, y.timestamp_ms);
            let xs: Vec<_> = x.active().collect();
            for (j, _, mu) in y.active().filter(|d| d.2.abs() > 0.05) {
                let (_, _, got) = xs.iter().find(|d| d.0 == j).expect("dim active at 60 Hz");
                assert!((got - mu).abs() < 0.005, "dim {j}: {got} vs {mu}");
            }
        }
    }

    #[test]
    fn timed_pipeline_flags_bad_samples_and_gaps() {
        let good = |t: u64| ImuSample {
            acc_g: [1.0, (t as f32 * 1e-5).sin(), 0.0],
            gyro_rad_s: [0.0; 3],
        };
        let mut timed = TimedPipeline::new(ChannelSet::ALL, MeanSign);
        let mut frames = Vec::new();
        let mut t = 0u64;
        for _ in 0..WINDOW_LEN {
            timed.push(t, good(t), false, |f| frames.push(f));
            t += 20_000;
        }
        assert_eq!(frames.len(), 1);
        // A NaN, a time step backwards and a saturated sample in the next hop.
        let mut nan = good(t);
        nan.gyro_rad_s[2] = f32::INFINITY;
        timed.push(t, nan, false, |f| frames.push(f));
        timed.push(t - 30_000, good(t), false, |f| frames.push(f));
        timed.push(t, good(t), true, |f| frames.push(f));
        t += 20_000;
        for _ in 1..HOP_LEN {
            timed.push(t, good(t), false, |f| frames.push(f));
            t += 20_000;
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[1].flags,
            flags::NON_FINITE | flags::TIMESTAMP | flags::SATURATED
        );
        // A 3 s silence: a code-less SENSOR_ERROR frame per hop of missing grid points.
        t += 3_000_000;
        timed.push(t, good(t), false, |f| frames.push(f));
        let gap_frames = &frames[2..];
        assert_eq!(gap_frames.len(), 150 / HOP_LEN);
        assert!(
            gap_frames
                .iter()
                .all(|f| f.flags == flags::SENSOR_ERROR | flags::NO_CODE)
        );
        // A sensor that fails every read from then on still yields flagged frames.
        let before = frames.len();
        for _ in 0..3 * HOP_LEN {
            t += 20_000;
            timed.push_sensor_error(t, |f| frames.push(f));
        }
        assert!(frames.len() - before >= 2);
        assert!(
            frames[before..]
                .iter()
                .all(|f| f.flags & flags::SENSOR_ERROR != 0 && f.flags & flags::NO_CODE != 0)
        );
    }

    #[test]
    fn non_finite_samples_flag_the_next_frame() {
        let mut pipeline = Pipeline::new(ChannelSet::ALL, MeanSign);
        let good = ImuSample {
            acc_g: [1.0, 0.0, 0.0],
            gyro_rad_s: [0.0; 3],
        };
        let bad = ImuSample {
            acc_g: [f32::NAN, 0.0, 0.0],
            ..good
        };
        let mut frames = Vec::new();
        for i in 0..WINDOW_LEN + 1 {
            let s = if i == 5 { bad } else { good };
            frames.extend(pipeline.push_sample(s, false));
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].flags, flags::NON_FINITE);
    }
}
