//! IMU drivers over embedded-hal 1.0 blocking I²C, one trait the device loop is generic
//! over, and a recorded MPU-6050 that replays a recording for QEMU and the golden test.
//!
//! | part | board | address | module |
//! |---|---|---|---|
//! | InvenSense MPU-6050 | breakouts; emulated in QEMU ([`RecordedMpu6050`]) | 0x68 | [`mpu6050`] |
//! | ST LSM6DS3TR-C | Seeed XIAO nRF52840 Sense | 0x6A | [`lsm6ds3trc`] |
//! | Bosch BMI270 | Arduino Nano 33 BLE Sense Rev2 | 0x68 | [`bmi270`] |
//!
//! Every driver checks the chip id, configures output data rate and full-scale ranges,
//! routes data-ready to the INT1 pin, polls its data-ready status, burst-reads one
//! accelerometer + gyroscope sample and scales it to g and rad/s. Each implements
//! [`Imu`], so a board module hands its driver to the shared device loop and the loop
//! never names a part. No driver allocates or panics: every failure is a
//! [`SensorError`].
//!
//! Axes: each driver reports the chip's own axes (right-handed, x/y as marked on the
//! package, z out of the top face; a chip lying face up reads about +1 g on z, and a
//! counter-clockwise rotation about an axis seen from its positive end reads positive).
//! Mapping them to the wearer's body frame is the board module's job.

use core::fmt;

use crate::preprocess::ImuSample;

pub mod bmi270;
mod i2c;
pub mod lsm6ds3trc;
pub mod mpu6050;
pub mod replay;

pub use bmi270::{BMI270_ADDRESS, Bmi270, Bmi270Config};
pub use lsm6ds3trc::{LSM6DS3TRC_ADDRESS, Lsm6ds3trc, Lsm6ds3trcConfig};
pub use mpu6050::{
    AccelRange, DATA_LEN, DlpfBandwidth, GyroRange, MPU6050_ADDRESS, MPU6050_ADDRESS_AD0_HIGH,
    Mpu6050, Mpu6050Config, RawSample, WHO_AM_I_VALUE, reg,
};
pub use replay::{
    EXCERPT_HEADER_LEN, EXCERPT_MAGIC, EXCERPT_VERSION, Excerpt, ExcerptError, RecordedMpu6050,
    ReplayError,
};

/// The IMU parts this module drives, for error messages and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImuPart {
    Mpu6050,
    Lsm6ds3trc,
    Bmi270,
}

impl ImuPart {
    pub const fn name(self) -> &'static str {
        match self {
            ImuPart::Mpu6050 => "MPU-6050",
            ImuPart::Lsm6ds3trc => "LSM6DS3TR-C",
            ImuPart::Bmi270 => "BMI270",
        }
    }

    /// The identity register and the value a genuine part reads there.
    pub const fn chip_id(self) -> (&'static str, u8) {
        match self {
            ImuPart::Mpu6050 => ("WHO_AM_I", mpu6050::WHO_AM_I_VALUE),
            ImuPart::Lsm6ds3trc => ("WHO_AM_I", lsm6ds3trc::WHO_AM_I_VALUE),
            ImuPart::Bmi270 => ("CHIP_ID", bmi270::CHIP_ID_VALUE),
        }
    }
}

/// One accelerometer + gyroscope sample in counts, as the LSM6DS3TR-C and the BMI270
/// report it (both little-endian `i16`; the parts differ in register order and scale).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawAxes {
    pub acc: [i16; 3],
    pub gyro: [i16; 3],
}

impl RawAxes {
    /// True when an axis sits at the end of the `i16` range, where the part clips: the
    /// true value may be larger.
    pub fn is_saturated(&self) -> bool {
        any_clipped(&self.acc, &self.gyro)
    }

    /// Physical units: counts × g per count, counts × rad/s per count.
    pub fn scale(&self, g_per_lsb: f32, rad_s_per_lsb: f32) -> ImuSample {
        scale_counts(&self.acc, &self.gyro, g_per_lsb, rad_s_per_lsb)
    }

    /// The scaled sample with these counts and their saturation flag.
    pub(crate) fn reading(self, g_per_lsb: f32, rad_s_per_lsb: f32) -> Reading<RawAxes> {
        Reading {
            sample: self.scale(g_per_lsb, rad_s_per_lsb),
            raw: self,
            saturated: self.is_saturated(),
        }
    }
}

/// True when an accelerometer or gyroscope axis sits at the end of the `i16` range,
/// where the part clips.
fn any_clipped(acc: &[i16; 3], gyro: &[i16; 3]) -> bool {
    acc.iter()
        .chain(gyro.iter())
        .any(|&c| c == i16::MAX || c == i16::MIN)
}

/// Counts × g per count and counts × rad/s per count.
fn scale_counts(acc: &[i16; 3], gyro: &[i16; 3], g_per_lsb: f32, rad_s_per_lsb: f32) -> ImuSample {
    ImuSample {
        acc_g: acc.map(|c| f32::from(c) * g_per_lsb),
        gyro_rad_s: gyro.map(|c| f32::from(c) * rad_s_per_lsb),
    }
}

/// Three little-endian `i16`s (x, y, z) from six register bytes.
pub(crate) fn le_axes(bytes: &[u8; 6]) -> [i16; 3] {
    [
        i16::from_le_bytes([bytes[0], bytes[1]]),
        i16::from_le_bytes([bytes[2], bytes[3]]),
        i16::from_le_bytes([bytes[4], bytes[5]]),
    ]
}

/// A scaled sample with the raw counts it came from. `R` is the part's raw sample:
/// [`RawSample`] (MPU-6050, with temperature) or [`RawAxes`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading<R = RawSample> {
    pub sample: ImuSample,
    pub raw: R,
    /// An axis was clipped at the end of the range (see [`RawAxes::is_saturated`]); the
    /// device loop flags the frame.
    pub saturated: bool,
}

/// Errors of the drivers; `E` is the bus error (`embedded_hal::i2c::I2c::Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorError<E> {
    /// The I²C transfer failed (NACK, arbitration loss, bus fault, …).
    Bus(E),
    /// The identity register (`WHO_AM_I` / `CHIP_ID`) read `read` instead of the part's
    /// value: wrong part, wrong address or a dead bus.
    WrongChipId { part: ImuPart, read: u8 },
    /// No data: the data-ready status stayed clear for `polls` reads.
    Timeout { polls: u32 },
    /// LSM6DS3TR-C: `CTRL3_C.SW_RESET` was still set after `polls` reads.
    ResetTimeout { polls: u32 },
    /// BMI270: `INTERNAL_STATUS` did not report "init ok" after the configuration upload.
    /// `internal_status` is the last value read (message in bits 3:0: 0 = still not
    /// initialised when the polls ran out, 2 = init error, …).
    InitFailed { internal_status: u8 },
    /// BMI270: the configuration file must be a non-empty, even number of bytes, at most
    /// 8 KiB (the upload addresses 16-bit words with 12 bits).
    ConfigFileLength { len: usize },
}

impl<E> From<E> for SensorError<E> {
    fn from(e: E) -> Self {
        SensorError::Bus(e)
    }
}

impl<E: fmt::Debug> fmt::Display for SensorError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SensorError::Bus(e) => write!(f, "IMU: I2C transfer failed: {e:?}"),
            SensorError::WrongChipId { part, read } => {
                let (register, expected) = part.chip_id();
                write!(
                    f,
                    "{}: {register} reads {read:#04x}, expected {expected:#04x}",
                    part.name()
                )
            }
            SensorError::Timeout { polls } => write!(
                f,
                "IMU: no new sample after {polls} polls of the data-ready status"
            ),
            SensorError::ResetTimeout { polls } => write!(
                f,
                "LSM6DS3TR-C: CTRL3_C.SW_RESET still set after {polls} polls"
            ),
            SensorError::InitFailed { internal_status } => write!(
                f,
                "BMI270: INTERNAL_STATUS reads {internal_status:#04x} after the configuration \
                 upload, expected message 0x01 (init ok)"
            ),
            SensorError::ConfigFileLength { len } => write!(
                f,
                "BMI270: configuration file of {len} bytes, expected an even length of 2..=8192"
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SensorError<E> {}

/// What the shared device loop needs from an IMU, whichever part a board carries.
///
/// Construct the part's driver in the board module (bus, address, configuration), then
/// hand it to a loop written against this trait:
///
/// 1. [`Imu::init`] once; on error, log it and retry later (the loop keeps sending
///    flagged frames, never panics).
/// 2. Per sample: sleep until the INT1 pin's rising edge (every driver routes its
///    data-ready signal there) with a timeout of a few periods of
///    [`Imu::output_rate_hz`], then call [`Imu::wait_and_read`] with a small poll bound.
///    Call it after a timeout too: a missed edge must not stop the stream.
/// 3. Feed [`Reading::sample`] and [`Reading::saturated`] to the pipeline; a
///    [`SensorError`] becomes a sensor-error flag. Rates other than 50 Hz go through the
///    timestamp resampler.
///
/// The drivers take the bus by value: share one bus with `embedded-hal-bus` if needed.
///
/// ```
/// use edge_runtime::preprocess::ImuSample;
/// use edge_runtime::sensor::Imu;
///
/// /// One sample for the pipeline, whichever part the board carries: `None` becomes a
/// /// sensor-error flag in the next frame.
/// fn next_sample<I: Imu>(imu: &mut I) -> Option<(ImuSample, bool)> {
///     match imu.wait_and_read(4) {
///         Ok(reading) => Some((reading.sample, reading.saturated)),
///         Err(_) => None,
///     }
/// }
/// ```
pub trait Imu {
    /// The I²C bus's error type.
    type BusError;
    /// Raw counts of one sample ([`RawSample`] or [`RawAxes`]).
    type Raw;

    fn part(&self) -> ImuPart;

    /// Checks the chip id and writes the whole configuration (see each driver).
    fn init(&mut self) -> Result<(), SensorError<Self::BusError>>;

    /// Reads the data-ready status once: true when a new accelerometer *and* gyroscope
    /// sample is in the output registers.
    fn data_ready(&mut self) -> Result<bool, SensorError<Self::BusError>>;

    /// Burst-reads and scales the current sample, without checking data-ready.
    fn read(&mut self) -> Result<Reading<Self::Raw>, SensorError<Self::BusError>>;

    /// Nominal output data rate of the configuration, in Hz (the part's clock may be off
    /// by a few percent; resample on timestamps, not on this number).
    fn output_rate_hz(&self) -> f32;

    /// Polls [`Imu::data_ready`] up to `max_polls` times, then reads the sample;
    /// [`SensorError::Timeout`] when it never became ready.
    fn wait_and_read(
        &mut self,
        max_polls: u32,
    ) -> Result<Reading<Self::Raw>, SensorError<Self::BusError>> {
        for _ in 0..max_polls {
            if self.data_ready()? {
                return self.read();
            }
        }
        Err(SensorError::Timeout { polls: max_polls })
    }
}
