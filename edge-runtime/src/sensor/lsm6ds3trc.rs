//! Driver for the ST LSM6DS3TR-C 6-axis IMU over I²C (embedded-hal 1.0, blocking): the
//! IMU of the Seeed XIAO nRF52840 Sense, at address 0x6A.
//!
//! Register facts are from the datasheet (DS11937 rev. 3) and application note AN5130.
//!
//! **Why not the `lsm6ds3tr` crate (0.2.2)?** It does not fit this `no_std`, heap-free
//! crate: it declares `extern crate alloc` (`Vec`s from its interrupt-source readers), so
//! a firmware linking it must define a `#[global_allocator]`; its gyroscope rate and
//! range types sit in a private module, so the gyroscope stays at its default 416 Hz,
//! ±250 dps (HAR wants 52 Hz and ±1000 dps); `init` checks no `WHO_AM_I` and waits for
//! no reset; it has no data-ready status read, reads accelerometer and gyroscope in two
//! transfers without block-data-update, and returns °/s. Flash, thumbv7em-none-eabihf,
//! opt-level "z" + LTO, `.text` of a minimal cortex-m-rt binary (init, then a read loop
//! scaling to g and rad/s) minus the same binary without an IMU: the crate 604 B, this
//! driver 696 B (716 B with edge-runtime at opt-level 3, as the firmware builds it). The
//! 92 B buy the id check, the reset handshake, data-ready polling and saturation flags,
//! so this module writes the driver.
//!
//! # Sequence
//! [`Lsm6ds3trc::init`]:
//! 1. `WHO_AM_I` (0x0F) must read 0x6A, else [`SensorError::WrongChipId`].
//! 2. Software reset as AN5130 §5.7 prescribes: gyroscope off (`CTRL2_G` = 0),
//!    accelerometer high-performance (`CTRL6_C` = 0), `CTRL3_C.SW_RESET`, then poll
//!    `CTRL3_C` until the bit clears (≥ 50 µs; one I²C read takes about that long).
//! 3. `CTRL3_C` = BDU | IF_INC: output registers update only after both bytes were read,
//!    and the burst read auto-increments.
//! 4. `CTRL4_C.DRDY_MASK`: data-ready stays low until the filters have settled after
//!    power-up, so the first samples are valid ones.
//! 5. `DRDY_PULSE_CFG_G.DRDY_PULSED`: INT1 pulses (75 µs) per sample instead of
//!    latching until read, so a missed read cannot leave the pin stuck high; wait for the
//!    rising edge.
//! 6. `INT1_CTRL.INT1_DRDY_XL`: accelerometer data-ready on INT1 (the gyroscope runs at
//!    the same rate and is synchronised to it; [`Imu::data_ready`] checks both flags).
//! 7. `CTRL1_XL` (rate, ±g), then `CTRL2_G` (rate, dps): the sensors start last.
//!
//! Per sample: `STATUS_REG` (0x1E) XLDA and GDA, then one 12-byte burst read from
//! `OUTX_L_G` (0x22) to `OUTZ_H_XL` (0x2D). Gyroscope comes first on this part.
//!
//! The part needs 15 ms after power-up before its registers answer; a board calling
//! `init` earlier gets a [`SensorError::Bus`] NACK and should retry.
//!
//! Rates: 52 Hz is the closest to the model's 50 Hz; the timestamp resampler in the
//! device loop converts. Axes: the chip's own, as in the module docs of
//! [`crate::sensor`]; the part reports positive rates for counter-clockwise rotation.

use embedded_hal::i2c::I2c;

use super::i2c::RegisterBus;
use super::{Imu, ImuPart, RawAxes, Reading, SensorError, le_axes};

/// 7-bit I²C address with SA0 low, as on the XIAO nRF52840 Sense.
pub const LSM6DS3TRC_ADDRESS: u8 = 0x6A;
/// 7-bit I²C address with SA0 high.
pub const LSM6DS3TRC_ADDRESS_SA0_HIGH: u8 = 0x6B;
/// What `WHO_AM_I` reads on a genuine LSM6DS3TR-C.
pub const WHO_AM_I_VALUE: u8 = 0x6A;
/// Bytes of one burst read: gyro x y z, then accelerometer x y z (little-endian `i16`).
pub const DATA_LEN: usize = 12;
/// Reads of `CTRL3_C` before a software reset counts as stuck. The reset takes 50 µs and
/// one read at 400 kHz about 60 µs, so 10 leaves a wide margin.
pub const RESET_POLLS: u32 = 10;

/// Register addresses and bits (DS11937 §8–9).
pub mod reg {
    pub const DRDY_PULSE_CFG_G: u8 = 0x0B;
    pub const INT1_CTRL: u8 = 0x0D;
    pub const WHO_AM_I: u8 = 0x0F;
    pub const CTRL1_XL: u8 = 0x10;
    pub const CTRL2_G: u8 = 0x11;
    pub const CTRL3_C: u8 = 0x12;
    pub const CTRL4_C: u8 = 0x13;
    pub const CTRL6_C: u8 = 0x15;
    pub const STATUS_REG: u8 = 0x1E;
    pub const OUTX_L_G: u8 = 0x22;
    pub const OUTX_L_XL: u8 = 0x28;

    /// `CTRL3_C`: block data update.
    pub const BDU: u8 = 0x40;
    /// `CTRL3_C`: register address auto-increment (the reset default, kept set).
    pub const IF_INC: u8 = 0x04;
    /// `CTRL3_C`: software reset, cleared by the part when done.
    pub const SW_RESET: u8 = 0x01;
    /// `CTRL4_C`: mask data-ready until the filters have settled.
    pub const DRDY_MASK: u8 = 0x08;
    /// `DRDY_PULSE_CFG_G`: 75 µs data-ready pulses instead of a latched level.
    pub const DRDY_PULSED: u8 = 0x80;
    /// `INT1_CTRL`: accelerometer data-ready on INT1.
    pub const INT1_DRDY_XL: u8 = 0x01;
    /// `STATUS_REG`: new accelerometer data.
    pub const XLDA: u8 = 0x01;
    /// `STATUS_REG`: new gyroscope data.
    pub const GDA: u8 = 0x02;
}

/// Output data rate of both sensors (`ODR_XL` / `ODR_G`, the same codes), in
/// high-performance mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OutputDataRate {
    Hz12_5 = 1,
    Hz26 = 2,
    /// The HAR rate: the closest to the model's 50 Hz.
    Hz52 = 3,
    Hz104 = 4,
    Hz208 = 5,
    Hz416 = 6,
    Hz833 = 7,
    Hz1660 = 8,
    Hz3330 = 9,
    Hz6660 = 10,
}

impl OutputDataRate {
    /// Nominal rate as the datasheet names it.
    pub const fn hz(self) -> f32 {
        match self {
            OutputDataRate::Hz12_5 => 12.5,
            OutputDataRate::Hz26 => 26.0,
            OutputDataRate::Hz52 => 52.0,
            OutputDataRate::Hz104 => 104.0,
            OutputDataRate::Hz208 => 208.0,
            OutputDataRate::Hz416 => 416.0,
            OutputDataRate::Hz833 => 833.0,
            OutputDataRate::Hz1660 => 1660.0,
            OutputDataRate::Hz3330 => 3330.0,
            OutputDataRate::Hz6660 => 6660.0,
        }
    }

    /// The 4-bit `ODR` field in bits 7:4 of `CTRL1_XL` / `CTRL2_G`.
    pub const fn bits(self) -> u8 {
        (self as u8) << 4
    }
}

/// Accelerometer full scale (`CTRL1_XL.FS_XL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelRange {
    G2,
    G4,
    G8,
    G16,
}

impl AccelRange {
    /// Sensitivity in mg per count (DS11937 Table 3: 0.061, 0.122, 0.244, 0.488).
    pub const fn mg_per_lsb(self) -> f32 {
        match self {
            AccelRange::G2 => 0.061,
            AccelRange::G4 => 0.122,
            AccelRange::G8 => 0.244,
            AccelRange::G16 => 0.488,
        }
    }

    pub fn g_per_lsb(self) -> f32 {
        self.mg_per_lsb() / 1000.0
    }

    /// `FS_XL` in bits 3:2 of `CTRL1_XL`; the codes are not in range order
    /// (00 ±2 g, 01 ±16 g, 10 ±4 g, 11 ±8 g).
    pub const fn bits(self) -> u8 {
        let fs_xl = match self {
            AccelRange::G2 => 0b00,
            AccelRange::G16 => 0b01,
            AccelRange::G4 => 0b10,
            AccelRange::G8 => 0b11,
        };
        fs_xl << 2
    }
}

/// Gyroscope full scale (`CTRL2_G.FS_G`, and `FS_125` for ±125 dps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GyroRange {
    Dps125,
    /// ±245 dps in the register description, ±250 dps in the specification table.
    Dps250,
    Dps500,
    Dps1000,
    Dps2000,
}

impl GyroRange {
    /// Sensitivity in millidegrees per second per count (DS11937 Table 3).
    pub const fn mdps_per_lsb(self) -> f32 {
        match self {
            GyroRange::Dps125 => 4.375,
            GyroRange::Dps250 => 8.75,
            GyroRange::Dps500 => 17.5,
            GyroRange::Dps1000 => 35.0,
            GyroRange::Dps2000 => 70.0,
        }
    }

    pub fn rad_s_per_lsb(self) -> f32 {
        self.mdps_per_lsb() / 1000.0 * (core::f32::consts::PI / 180.0)
    }

    /// `FS_G` in bits 3:2 and `FS_125` in bit 1 of `CTRL2_G`.
    pub const fn bits(self) -> u8 {
        match self {
            GyroRange::Dps125 => 0b0010,
            GyroRange::Dps250 => 0b00 << 2,
            GyroRange::Dps500 => 0b01 << 2,
            GyroRange::Dps1000 => 0b10 << 2,
            GyroRange::Dps2000 => 0b11 << 2,
        }
    }
}

/// Everything [`Lsm6ds3trc::init`] configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lsm6ds3trcConfig {
    /// Rate of both sensors (one rate keeps them synchronised).
    pub output_data_rate: OutputDataRate,
    pub accel_range: AccelRange,
    pub gyro_range: GyroRange,
}

impl Lsm6ds3trcConfig {
    /// 52 Hz, ±4 g, ±1000 dps: the ranges of the MPU-6050's HAR configuration, which
    /// cover the HAPT recordings (gyroscope peaks near 500 dps).
    pub const HAR_52HZ: Lsm6ds3trcConfig = Lsm6ds3trcConfig {
        output_data_rate: OutputDataRate::Hz52,
        accel_range: AccelRange::G4,
        gyro_range: GyroRange::Dps1000,
    };

    /// The `CTRL1_XL` value.
    pub const fn ctrl1_xl(&self) -> u8 {
        self.output_data_rate.bits() | self.accel_range.bits()
    }

    /// The `CTRL2_G` value.
    pub const fn ctrl2_g(&self) -> u8 {
        self.output_data_rate.bits() | self.gyro_range.bits()
    }
}

impl Default for Lsm6ds3trcConfig {
    fn default() -> Self {
        Lsm6ds3trcConfig::HAR_52HZ
    }
}

/// Splits the 12 data bytes (gyro first) into counts.
pub fn raw_from_registers(bytes: &[u8; DATA_LEN]) -> RawAxes {
    let [g0, g1, g2, g3, g4, g5, a0, a1, a2, a3, a4, a5] = *bytes;
    RawAxes {
        acc: le_axes(&[a0, a1, a2, a3, a4, a5]),
        gyro: le_axes(&[g0, g1, g2, g3, g4, g5]),
    }
}

/// LSM6DS3TR-C driver, generic over any embedded-hal 1.0 I²C bus.
///
/// ```
/// use edge_runtime::sensor::{Imu, LSM6DS3TRC_ADDRESS, Lsm6ds3trc, Lsm6ds3trcConfig, SensorError};
/// use embedded_hal::i2c::I2c;
///
/// fn start<I: I2c>(i2c: I) -> Result<Lsm6ds3trc<I>, SensorError<I::Error>> {
///     let mut imu = Lsm6ds3trc::new(i2c, LSM6DS3TRC_ADDRESS, Lsm6ds3trcConfig::HAR_52HZ);
///     imu.init()?; // ≥ 15 ms after power-up
///     Ok(imu)
/// }
///
/// // On each INT1 rising edge (or a timeout of a few periods):
/// fn sample<I: I2c>(imu: &mut Lsm6ds3trc<I>) -> Result<([f32; 3], bool), SensorError<I::Error>> {
///     let reading = imu.wait_and_read(4)?;
///     Ok((reading.sample.acc_g, reading.saturated))
/// }
/// ```
#[derive(Debug)]
pub struct Lsm6ds3trc<I2C> {
    bus: RegisterBus<I2C>,
    config: Lsm6ds3trcConfig,
}

impl<I2C: I2c> Lsm6ds3trc<I2C> {
    /// Takes the bus; no transfer happens until [`Lsm6ds3trc::init`].
    pub fn new(i2c: I2C, address: u8, config: Lsm6ds3trcConfig) -> Self {
        Lsm6ds3trc {
            bus: RegisterBus::new(i2c, address),
            config,
        }
    }

    pub fn config(&self) -> &Lsm6ds3trcConfig {
        &self.config
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.bus.release()
    }

    /// Checks `WHO_AM_I`, resets the part and writes the configuration (see the module
    /// docs for the sequence).
    pub fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        self.bus.check_chip_id(ImuPart::Lsm6ds3trc, reg::WHO_AM_I)?;
        // AN5130 §5.7 reset flow: the reset must start from gyro off, accelerometer in
        // high-performance mode (our restart may find any configuration).
        self.bus.write(reg::CTRL2_G, 0)?;
        self.bus.write(reg::CTRL6_C, 0)?;
        self.bus.write(reg::CTRL3_C, reg::IF_INC | reg::SW_RESET)?;
        let mut reset_done = false;
        for _ in 0..RESET_POLLS {
            if self.bus.read(reg::CTRL3_C)? & reg::SW_RESET == 0 {
                reset_done = true;
                break;
            }
        }
        if !reset_done {
            return Err(SensorError::ResetTimeout { polls: RESET_POLLS });
        }
        self.bus.write(reg::CTRL3_C, reg::BDU | reg::IF_INC)?;
        self.bus.write(reg::CTRL4_C, reg::DRDY_MASK)?;
        self.bus.write(reg::DRDY_PULSE_CFG_G, reg::DRDY_PULSED)?;
        self.bus.write(reg::INT1_CTRL, reg::INT1_DRDY_XL)?;
        self.bus.write(reg::CTRL1_XL, self.config.ctrl1_xl())?;
        self.bus.write(reg::CTRL2_G, self.config.ctrl2_g())?;
        Ok(())
    }

    /// Reads `STATUS_REG`: true when both XLDA and GDA are set.
    pub fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        self.bus.flags_set(reg::STATUS_REG, reg::XLDA | reg::GDA)
    }

    /// One 12-byte burst read of `OUTX_L_G` … `OUTZ_H_XL`, without checking data-ready.
    pub fn read_raw(&mut self) -> Result<RawAxes, SensorError<I2C::Error>> {
        let bytes = self.bus.burst_read::<DATA_LEN>(reg::OUTX_L_G)?;
        Ok(raw_from_registers(&bytes))
    }

    /// Reads and scales the current sample with the datasheet sensitivities.
    pub fn read(&mut self) -> Result<Reading<RawAxes>, SensorError<I2C::Error>> {
        let raw = self.read_raw()?;
        Ok(raw.reading(
            self.config.accel_range.g_per_lsb(),
            self.config.gyro_range.rad_s_per_lsb(),
        ))
    }
}

impl<I2C: I2c> Imu for Lsm6ds3trc<I2C> {
    type BusError = I2C::Error;
    type Raw = RawAxes;

    fn part(&self) -> ImuPart {
        ImuPart::Lsm6ds3trc
    }

    fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        Lsm6ds3trc::init(self)
    }

    fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        Lsm6ds3trc::data_ready(self)
    }

    fn read(&mut self) -> Result<Reading<RawAxes>, SensorError<I2C::Error>> {
        Lsm6ds3trc::read(self)
    }

    fn output_rate_hz(&self) -> f32 {
        self.config.output_data_rate.hz()
    }
}
