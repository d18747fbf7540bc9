//! The device loop every board runs — sample → (resample) → preprocess → encode → frame →
//! transport — written once, as an `async fn` with no heap, plus what a board needs around
//! it: the model found in its flash region and why it was rejected, faults of the IMU as
//! short static strings, and a trivial executor for sources that are always ready.
//!
//! A board supplies three things and never touches the loop:
//! - a [`SampleSource`]: waits (asleep) for the IMU's data-ready signal and reads one
//!   timestamped sample, or says why it could not;
//! - a [`FrameStage`]: [`Pipeline`] for a source that is exactly on the 50 Hz grid (the
//!   replayed recording under QEMU), [`TimedPipeline`] for one with its own rate and clock
//!   (the 52 Hz LSM6DS3TR-C);
//! - a [`FrameSink`]: BLE notifications, USB serial or semihosting.
//!
//! QEMU drives the same `async fn` with [`block_on`] (its replayed IMU is always ready),
//! so the golden test that compares its frames with the host's proves the loop the boards
//! run.

use crate::blob::{BlobError, HEADER_LEN, MAGIC, ModelBlob};
use crate::frame::{Frame, MAX_WIRE_LEN};
use crate::preprocess::{ImuSample, Window};
use crate::sensor::{Excerpt, MPU6050_ADDRESS, Mpu6050, RecordedMpu6050, ReplayError, SensorError};
use crate::stream::{EncodeFailed, MAX_POLLS, Pipeline, TimedPipeline, WindowEncoder};

/// Microseconds between two samples on the 50 Hz grid.
pub const SAMPLE_PERIOD_US: u64 = 20_000;

// ---------------------------------------------------------------------------------------
// The model region
// ---------------------------------------------------------------------------------------

/// Why the model region holds no usable model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// The region is erased (starts with `0xFF 0xFF 0xFF 0xFF`): nothing was flashed.
    Erased,
    /// The blob's total-length field says `total` bytes, more than the `region` bytes of
    /// the flash region (a blob for a bigger region, or a corrupt header).
    LongerThanRegion { total: u32, region: usize },
    /// The blob itself is invalid.
    Blob(BlobError),
}

impl ModelError {
    /// A short fixed reason for logs on the device (no `core::fmt` machinery, which costs
    /// ~1 KiB of flash for the blob error's `Display` alone).
    pub const fn reason(&self) -> &'static str {
        match self {
            ModelError::Erased => "no model: the model region is erased",
            ModelError::LongerThanRegion { .. } => "length field exceeds the model region",
            ModelError::Blob(e) => blob_error_reason(e),
        }
    }
}

/// [`BlobError`] as a short fixed string, e.g. `"CRC mismatch"`.
pub const fn blob_error_reason(error: &BlobError) -> &'static str {
    // Exhaustive on purpose: a new blob error needs its own reason here.
    match error {
        BlobError::TooShort { .. } => "shorter than header + CRC",
        BlobError::BadMagic { .. } => "bad magic (not a VSCQ blob)",
        BlobError::UnsupportedVersion { .. } => "unsupported format version",
        BlobError::BadHeaderLen { .. } => "bad header length",
        BlobError::TotalLength { .. } => "total-length field disagrees with the size",
        BlobError::Crc { .. } => "CRC mismatch",
        BlobError::BadChannels { .. } => "invalid channel mask",
        BlobError::DimOutOfRange { .. } => "a dimension exceeds the encoder's buffers",
        BlobError::InputDimMismatch { .. } => "input_dim does not fit channels x window",
        BlobError::BadFeatures { .. } => "unknown model-input code",
        BlobError::BadSpikeHead { .. } => "unknown spike head",
        BlobError::BadClassCount { .. } => "invalid activity-class count",
        BlobError::BadClassId { .. } => "invalid activity class id",
        BlobError::Length { .. } => "section lengths disagree with the dimensions",
        BlobError::Reserved { .. } => "a reserved field is not zero",
        BlobError::BadScale { .. } => "invalid header scale",
        BlobError::BadChannelScaling { .. } => "invalid input scaling",
        BlobError::BadWeightScale { .. } => "invalid weight scale",
        BlobError::BiasOutOfRange { .. } => "bias out of range",
        BlobError::NegativeMultiplier { .. } => "negative requantisation multiplier",
        BlobError::ShiftOutOfRange { .. } => "requantisation shift out of range",
        BlobError::RowL1 { .. } => "a weight row is too large for the row-pair kernel",
        BlobError::BadPairWeight { .. } => "a row-pair weight is out of range",
    }
}

/// Finds and validates the model blob at the start of a flash region of fixed size.
///
/// The region is larger than any blob, and a blob flashed on its own
/// (`cargo xtask flash --model-only`) is followed by erased flash, so the blob's length
/// comes from its header (bytes 8..12), bounded by the region. All of
/// [`ModelBlob::parse`]'s checks follow (magic, version, CRC, dimensions within the
/// encoder's buffers).
pub fn model_in_region(region: &[u8]) -> Result<ModelBlob<'_>, ModelError> {
    if region.len() >= 4 && region[..4] == [0xFF; 4] {
        return Err(ModelError::Erased);
    }
    if region.len() < HEADER_LEN || region[..4] != MAGIC {
        // Too short or not a blob: the parser names the problem.
        return ModelBlob::parse(region).map_err(ModelError::Blob);
    }
    let total = u32::from_le_bytes([region[8], region[9], region[10], region[11]]);
    let Some(blob) = region.get(..total as usize) else {
        return Err(ModelError::LongerThanRegion {
            total,
            region: region.len(),
        });
    };
    ModelBlob::parse(blob).map_err(ModelError::Blob)
}

/// Every window encoder works behind an `Option`: `None` (no valid model) encodes
/// nothing and yields frames flagged `ENCODER_ERROR | NO_CODE`, so a board without a model
/// still streams frames (the host sees it is alive and why there is no code) and keeps
/// its link up.
impl<E: WindowEncoder> WindowEncoder for Option<E> {
    fn latent_dim(&self) -> u8 {
        self.as_ref().map_or(0, |e| e.latent_dim())
    }
    fn macs_per_window(&self) -> u64 {
        self.as_ref().map_or(0, |e| e.macs_per_window())
    }
    fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed> {
        match self {
            Some(e) => e.encode_into(window, frame),
            None => Err(EncodeFailed),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sensor faults
// ---------------------------------------------------------------------------------------

/// Why the IMU gave no sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorFault {
    /// An I²C transfer failed (the chip did not acknowledge, or a bus error).
    Bus,
    /// The chip-id / WHO_AM_I register read something else: wrong part or dead bus.
    WrongChipId,
    /// No data-ready signal within the wait's timeout: the sensor stopped producing
    /// samples.
    Timeout,
    /// Configuration failed (e.g. the BMI270's configuration upload did not complete).
    Init,
}

impl SensorFault {
    /// The fault a driver error stands for.
    pub const fn of<E>(error: &SensorError<E>) -> SensorFault {
        match error {
            SensorError::Bus(_) => SensorFault::Bus,
            SensorError::WrongChipId { .. } => SensorFault::WrongChipId,
            SensorError::Timeout { .. } => SensorFault::Timeout,
            SensorError::ResetTimeout { .. }
            | SensorError::InitFailed { .. }
            | SensorError::ConfigFileLength { .. } => SensorFault::Init,
        }
    }

    pub const fn reason(self) -> &'static str {
        match self {
            SensorFault::Bus => "I2C transfer failed (NACK or bus error)",
            SensorFault::WrongChipId => "wrong chip id",
            SensorFault::Timeout => "no data-ready within the timeout",
            SensorFault::Init => "configuration failed",
        }
    }
}

/// Log a sensor's state only when it changes: a dead sensor fails 50 times a second, and
/// one line per failure would drown the log (and the RTT buffer) in copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultLog {
    current: Option<SensorFault>,
    /// Failed reads since the last good one.
    pub failed_in_a_row: u32,
}

/// What [`FaultLog`] says is worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultChange {
    /// The sensor started failing, or fails differently now.
    Failing(SensorFault),
    /// The sensor works again after `failed` failed reads.
    Recovered { failed: u32 },
}

impl FaultLog {
    pub const fn new() -> Self {
        FaultLog {
            current: None,
            failed_in_a_row: 0,
        }
    }

    /// Records one read: `None` for a good sample. Returns the change to log, if any.
    pub fn record(&mut self, fault: Option<SensorFault>) -> Option<FaultChange> {
        let change = match (self.current, fault) {
            (None, None) => None,
            (Some(_), None) => Some(FaultChange::Recovered {
                failed: self.failed_in_a_row,
            }),
            (previous, Some(f)) if previous != Some(f) => Some(FaultChange::Failing(f)),
            (_, Some(_)) => None,
        };
        self.current = fault;
        self.failed_in_a_row = match fault {
            Some(_) => self.failed_in_a_row.saturating_add(1),
            None => 0,
        };
        change
    }
}

// ---------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------

/// One wait for the IMU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    /// A sample measured at `t_us` on the board's monotonic clock.
    Sample {
        t_us: u64,
        sample: ImuSample,
        saturated: bool,
    },
    /// No sample at `t_us` (the board has logged why, see [`FaultLog`]).
    Failed { t_us: u64, fault: SensorFault },
    /// The source has no more samples (a replayed recording); [`run`] returns.
    End,
}

/// The IMU side of a board.
// Single-threaded executors only: no `Send` bound is wanted on the futures.
#[allow(async_fn_in_trait)]
pub trait SampleSource {
    /// Waits, asleep, for the next sample, or for the timeout after which a silent sensor
    /// counts as failed. Never panics and never waits forever.
    async fn next(&mut self) -> Reading;
}

/// The transport side of a board.
#[allow(async_fn_in_trait)]
pub trait FrameSink {
    /// Sends one wire frame (`0x00`, COBS, `0x00`; at most [`MAX_WIRE_LEN`] bytes). With
    /// no link (nobody connected) the sink drops it: sequence numbers show the gap.
    async fn send(&mut self, wire: &[u8]);
}

/// Samples in, frames out: [`Pipeline`] or [`TimedPipeline`].
pub trait FrameStage {
    fn sample(
        &mut self,
        t_us: u64,
        sample: ImuSample,
        saturated: bool,
        on_frame: impl FnMut(Frame),
    );
    fn sensor_error(&mut self, t_us: u64, on_frame: impl FnMut(Frame));
}

/// For sources exactly on the 50 Hz grid: the timestamps are not needed.
impl<E: WindowEncoder> FrameStage for Pipeline<E> {
    fn sample(
        &mut self,
        _t_us: u64,
        sample: ImuSample,
        saturated: bool,
        mut on_frame: impl FnMut(Frame),
    ) {
        if let Some(frame) = self.push_sample(sample, saturated) {
            on_frame(frame);
        }
    }
    fn sensor_error(&mut self, _t_us: u64, mut on_frame: impl FnMut(Frame)) {
        if let Some(frame) = self.push_sensor_error() {
            on_frame(frame);
        }
    }
}

/// For sources with their own rate and clock: resampled onto the 50 Hz grid.
impl<E: WindowEncoder> FrameStage for TimedPipeline<E> {
    fn sample(
        &mut self,
        t_us: u64,
        sample: ImuSample,
        saturated: bool,
        on_frame: impl FnMut(Frame),
    ) {
        self.push(t_us, sample, saturated, on_frame);
    }
    fn sensor_error(&mut self, t_us: u64, on_frame: impl FnMut(Frame)) {
        self.push_sensor_error(t_us, on_frame);
    }
}

/// Most frames one sample can complete that [`run`] holds before sending: one coded
/// frame, plus the code-less frames a resampler emits when a long gap ends.
pub const OUTBOX_FRAMES: usize = 16;
/// Bytes of wire frames [`run`] holds: a coded frame and the small code-less ones.
pub const OUTBOX_BYTES: usize = 2 * MAX_WIRE_LEN;

/// Wire frames waiting to be sent, back to back with their ends.
struct Outbox {
    bytes: [u8; OUTBOX_BYTES],
    ends: heapless::Vec<u16, OUTBOX_FRAMES>,
    dropped: u32,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            bytes: [0; OUTBOX_BYTES],
            ends: heapless::Vec::new(),
            dropped: 0,
        }
    }

    fn used(&self) -> usize {
        self.ends.last().map_or(0, |&e| usize::from(e))
    }

    /// Encodes `frame` behind the frames already held; a frame that does not fit (or
    /// cannot be encoded) is dropped and counted.
    fn push(&mut self, frame: &Frame) {
        let start = self.used();
        let encoded = self
            .bytes
            .get_mut(start..)
            .and_then(|free| frame.encode(free).ok());
        match encoded {
            Some(n) if self.ends.push((start + n) as u16).is_ok() => {}
            _ => self.dropped = self.dropped.saturating_add(1),
        }
    }

    fn frame(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(previous) => self.ends.get(previous).map_or(0, |&e| usize::from(e)),
            None => 0,
        };
        let end = self.ends.get(i).map_or(0, |&e| usize::from(e));
        self.bytes.get(start..end).unwrap_or(&[])
    }
}

/// What [`run`] did, for the log when a replayed source ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Good samples read.
    pub samples: u32,
    /// Failed reads.
    pub failed_reads: u32,
    /// Frames handed to the sink.
    pub frames: u32,
    /// Frames lost because more completed at once than [`OUTBOX_FRAMES`] / bytes hold.
    pub dropped: u32,
}

/// The device loop: until the source ends (never, on a real board), waits for a sample,
/// passes it through `stage` and sends every completed frame to `sink`, in order.
///
/// `stage` is borrowed so its state (the preprocessor's windows, ~6 KiB) lives where the
/// board puts it rather than in this future.
pub async fn run<S: SampleSource, P: FrameStage, K: FrameSink>(
    source: &mut S,
    stage: &mut P,
    sink: &mut K,
) -> RunStats {
    let mut stats = RunStats::default();
    let mut outbox = Outbox::new();
    loop {
        match source.next().await {
            Reading::Sample {
                t_us,
                sample,
                saturated,
            } => {
                stats.samples = stats.samples.wrapping_add(1);
                stage.sample(t_us, sample, saturated, |f| outbox.push(&f));
            }
            Reading::Failed { t_us, .. } => {
                stats.failed_reads = stats.failed_reads.wrapping_add(1);
                stage.sensor_error(t_us, |f| outbox.push(&f));
            }
            Reading::End => break,
        }
        for i in 0..outbox.ends.len() {
            sink.send(outbox.frame(i)).await;
        }
        stats.frames = stats.frames.wrapping_add(outbox.ends.len() as u32);
        stats.dropped = stats.dropped.wrapping_add(outbox.dropped);
        outbox.ends.clear();
        outbox.dropped = 0;
    }
    stats
}

/// Runs a future to completion by polling it with a waker that does nothing: enough for
/// futures that are always ready (QEMU's replayed IMU, semihosting output, host tests),
/// where no wake-up ever has to be waited for. A future that returns `Pending` is polled
/// again at once (a busy loop): real boards use an executor instead.
pub fn block_on<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The replayed IMU (QEMU and the host tests)
// ---------------------------------------------------------------------------------------

/// The MPU-6050 driver over a replayed [`Excerpt`] as a [`SampleSource`], timestamped on
/// the 50 Hz grid: what the QEMU board runs, and what the host runs to check it.
pub struct ReplaySource<'a> {
    imu: Mpu6050<RecordedMpu6050<'a>>,
    /// Reads so far (good or failed): the sample clock.
    reads: u64,
    pub faults: FaultLog,
}

impl<'a> ReplaySource<'a> {
    /// Configures the driver (as [`crate::stream::run_recorded`] does); reads in
    /// `bus_faults` (sample indices) fail with an injected bus error.
    pub fn new(
        excerpt: Excerpt<'a>,
        bus_faults: core::ops::Range<usize>,
    ) -> Result<Self, SensorError<ReplayError>> {
        let mut chip = RecordedMpu6050::new(excerpt);
        chip.inject_bus_errors(bus_faults);
        let mut imu = Mpu6050::new(chip, MPU6050_ADDRESS, excerpt.config());
        imu.init()?;
        Ok(ReplaySource {
            imu,
            reads: 0,
            faults: FaultLog::new(),
        })
    }
}

impl SampleSource for ReplaySource<'_> {
    async fn next(&mut self) -> Reading {
        let t_us = self.reads * SAMPLE_PERIOD_US;
        let reading = match self.imu.wait_and_read(MAX_POLLS) {
            Ok(r) => Reading::Sample {
                t_us,
                sample: r.sample,
                saturated: r.saturated,
            },
            Err(SensorError::Bus(ReplayError::EndOfRecording)) => return Reading::End,
            Err(e) => Reading::Failed {
                t_us,
                fault: SensorFault::of(&e),
            },
        };
        self.reads += 1;
        self.faults.record(match reading {
            Reading::Failed { fault, .. } => Some(fault),
            _ => None,
        });
        reading
    }
}

#[cfg(test)]
mod tests;
