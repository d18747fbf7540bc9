//! Driver for the Bosch BMI270 6-axis IMU over I²C (embedded-hal 1.0, blocking): the IMU
//! of the Arduino Nano 33 BLE Sense Rev2, at address 0x68.
//!
//! Register facts are from the BMI270 datasheet and Bosch's BMI270 Sensor API.
//!
//! **Crate decision.** The part runs nothing until Bosch's 8 KiB configuration file has
//! been uploaded at every power-up. That file comes from the `bmi2` crate (0.1.2,
//! `bmi2::config::BMI270_CONFIG_FILE`); copying the array into this repository is not
//! allowed, and the crate is a published Rust source of it. Its driver is not used:
//! `Bmi2::init` re-enables advanced power save right after the upload (every later
//! register write then needs a 450 µs gap), reads `INTERNAL_STATUS` once after a fixed
//! 20 ms instead of polling, its `AccConf`/`GyrConf` decoders `panic!` on an ODR field of
//! 0 (this crate never panics on what a bus returns), and its `GyrRange` decoder masks
//! two of the three range bits (±125 dps reads back as ±2000 dps). Flash,
//! thumbv7em-none-eabihf, opt-level "z" + LTO, `.text` of a minimal cortex-m-rt binary
//! (init, the 50 Hz configuration, then a data-ready + read loop scaling to g and rad/s)
//! minus the same binary without an IMU: `bmi2`'s driver 1,416 B, this driver 1,168 B
//! (1,144 B with edge-runtime at opt-level 3, as the firmware builds it); both add the
//! 8,192 B file to `.rodata`.
//!
//! Licence: `bmi2` is MIT; the configuration bytes inside it are Bosch Sensortec's,
//! published in the BMI270 Sensor API under BSD-3-Clause, whose clause 2 asks binary
//! redistributions (the Nano firmware) to reproduce Bosch's copyright notice and licence
//! in their documentation.
//!
//! # Sequence
//! [`Bmi270::init`], as the datasheet's "device initialization" and Bosch's API do it:
//! 1. `CHIP_ID` (0x00) must read 0x24, else [`SensorError::WrongChipId`].
//! 2. `CMD` = 0xB6 (soft reset, so a warm restart can upload again: the upload works
//!    once per reset), wait 2 ms.
//! 3. `PWR_CONF` = 0 (advanced power save off), wait 450 µs.
//! 4. `INIT_CTRL` = 0, then the configuration file in bursts of
//!    [`CONFIG_BURST_BYTES`]: each burst writes its 16-bit word address to
//!    `INIT_ADDR_0` (bits 3:0) / `INIT_ADDR_1` (bits 11:4), then the bytes to
//!    `INIT_DATA`. Then `INIT_CTRL` = 1.
//! 5. Poll `INTERNAL_STATUS` (0x21) every [`INIT_POLL_INTERVAL_US`] µs, at most
//!    [`INIT_POLLS`] times, until its message (bits 3:0) is 1 "init ok"; any other
//!    non-zero message, or running out of polls, is [`SensorError::InitFailed`].
//! 6. `ACC_CONF`, `ACC_RANGE`, `GYR_CONF`, `GYR_RANGE`; `INT1_IO_CTRL` (output enabled,
//!    push-pull, active high) and `INT_MAP_DATA.drdy_int1` (data-ready on INT1,
//!    non-latched: wait for the rising edge); `PWR_CTRL` = acc + gyr (temperature and
//!    aux off) last.
//!
//! Every write in normal mode is followed by the datasheet's 2 µs idle time. Advanced
//! power save stays off afterwards, as in Bosch's performance-mode example, so no access
//! needs the 450 µs gap that mode imposes.
//!
//! Per sample: `STATUS` (0x03) `drdy_acc` and `drdy_gyr`, then one 12-byte burst read
//! of `DATA_8` … `DATA_19` (0x0C–0x17): accelerometer x y z, then gyroscope x y z.
//!
//! Rate: the BMI270 has a 50 Hz output data rate, the model's rate, so the Nano needs no
//! resampling (100 Hz and others are selectable). Not done: Bosch's API also subtracts a
//! factory cross-axis term (gyroscope z into x) read from the feature pages; the
//! correction is small and this driver leaves the gyroscope as the part reports it.
//! Axes: the chip's own, as in the module docs of [`crate::sensor`].

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::i2c::RegisterBus;
use super::{Imu, ImuPart, RawAxes, Reading, SensorError, le_axes};

/// 7-bit I²C address with SDO low, as on the Nano 33 BLE Sense Rev2.
pub const BMI270_ADDRESS: u8 = 0x68;
/// 7-bit I²C address with SDO high.
pub const BMI270_ADDRESS_SDO_HIGH: u8 = 0x69;
/// What `CHIP_ID` reads on a genuine BMI270.
pub const CHIP_ID_VALUE: u8 = 0x24;
/// Bytes of one burst read: accelerometer x y z, then gyroscope x y z (little-endian).
pub const DATA_LEN: usize = 12;
/// Configuration bytes per `INIT_DATA` burst (even: the part takes 16-bit words). Small
/// enough for any I²C peripheral's DMA length limit, and for the stack copy the
/// nRF52's EasyDMA needs (it cannot read flash).
pub const CONFIG_BURST_BYTES: usize = 64;
/// Largest configuration file the 12-bit word address of `INIT_ADDR` can place.
pub const CONFIG_FILE_MAX_BYTES: usize = 8192;
/// Wait after the soft reset (Bosch's API: 2 ms).
pub const SOFT_RESET_WAIT_US: u32 = 2000;
/// Wait after leaving advanced power save (datasheet: 450 µs).
pub const POWER_SAVE_EXIT_WAIT_US: u32 = 450;
/// Idle time after every register write in normal mode (datasheet: 2 µs).
pub const WRITE_IDLE_US: u32 = 2;
/// Wait before each `INTERNAL_STATUS` read.
pub const INIT_POLL_INTERVAL_US: u32 = 1000;
/// `INTERNAL_STATUS` reads before giving up: 30 ms, over the datasheet's 20 ms.
pub const INIT_POLLS: u32 = 30;

/// Register addresses and values (BMI270 datasheet §5).
pub mod reg {
    pub const CHIP_ID: u8 = 0x00;
    pub const STATUS: u8 = 0x03;
    /// `DATA_8`: accelerometer x, low byte; the burst runs to `DATA_19` (gyro z, high).
    pub const DATA_8: u8 = 0x0C;
    pub const INTERNAL_STATUS: u8 = 0x21;
    pub const ACC_CONF: u8 = 0x40;
    pub const ACC_RANGE: u8 = 0x41;
    pub const GYR_CONF: u8 = 0x42;
    pub const GYR_RANGE: u8 = 0x43;
    pub const INT1_IO_CTRL: u8 = 0x53;
    pub const INT_MAP_DATA: u8 = 0x58;
    pub const INIT_CTRL: u8 = 0x59;
    /// `INIT_ADDR_0` (word address bits 3:0), followed by `INIT_ADDR_1` (bits 11:4).
    pub const INIT_ADDR_0: u8 = 0x5B;
    pub const INIT_DATA: u8 = 0x5E;
    pub const PWR_CONF: u8 = 0x7C;
    pub const PWR_CTRL: u8 = 0x7D;
    pub const CMD: u8 = 0x7E;

    /// `CMD`: soft reset.
    pub const SOFT_RESET: u8 = 0xB6;
    /// `STATUS`: new accelerometer data.
    pub const DRDY_ACC: u8 = 0x80;
    /// `STATUS`: new gyroscope data.
    pub const DRDY_GYR: u8 = 0x40;
    /// `INTERNAL_STATUS` bits 3:0: the message.
    pub const INTERNAL_STATUS_MESSAGE: u8 = 0x0F;
    /// `INTERNAL_STATUS` message: the configuration is loaded and running.
    pub const INIT_OK: u8 = 0x01;
    /// `ACC_CONF`: `acc_filter_perf` (performance filter) | `acc_bwp` = 2 (normal).
    pub const ACC_CONF_PERF_NORMAL: u8 = 0xA0;
    /// `GYR_CONF`: `gyr_filter_perf` | `gyr_noise_perf` | `gyr_bwp` = 2 (normal).
    pub const GYR_CONF_PERF_NORMAL: u8 = 0xE0;
    /// `INT1_IO_CTRL`: `output_en` | `lvl` (active high); `od` = 0 (push-pull).
    pub const INT1_OUTPUT_ACTIVE_HIGH: u8 = 0x0A;
    /// `INT_MAP_DATA`: data-ready on INT1.
    pub const DRDY_INT1: u8 = 0x04;
    /// `PWR_CTRL`: `gyr_en` | `acc_en` (aux and temperature off).
    pub const ACC_GYR_EN: u8 = 0x06;
}

/// Output data rate (`acc_odr` / `gyr_odr`, the same codes), performance mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OutputDataRate {
    Hz25 = 0x06,
    /// The model's rate: no resampling needed.
    Hz50 = 0x07,
    Hz100 = 0x08,
    Hz200 = 0x09,
    Hz400 = 0x0A,
    Hz800 = 0x0B,
    Hz1600 = 0x0C,
}

impl OutputDataRate {
    pub const fn hz(self) -> f32 {
        match self {
            OutputDataRate::Hz25 => 25.0,
            OutputDataRate::Hz50 => 50.0,
            OutputDataRate::Hz100 => 100.0,
            OutputDataRate::Hz200 => 200.0,
            OutputDataRate::Hz400 => 400.0,
            OutputDataRate::Hz800 => 800.0,
            OutputDataRate::Hz1600 => 1600.0,
        }
    }
}

/// Accelerometer full scale (`ACC_RANGE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccelRange {
    G2 = 0,
    G4 = 1,
    G8 = 2,
    G16 = 3,
}

impl AccelRange {
    pub const fn full_scale_g(self) -> f32 {
        match self {
            AccelRange::G2 => 2.0,
            AccelRange::G4 => 4.0,
            AccelRange::G8 => 8.0,
            AccelRange::G16 => 16.0,
        }
    }

    /// Full scale over 2¹⁵ counts (16384 counts/g at ±2 g).
    pub fn g_per_lsb(self) -> f32 {
        self.full_scale_g() / 32768.0
    }
}

/// Gyroscope full scale (`GYR_RANGE.gyr_range`; the codes run from the largest range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GyroRange {
    Dps2000 = 0,
    Dps1000 = 1,
    Dps500 = 2,
    Dps250 = 3,
    Dps125 = 4,
}

impl GyroRange {
    pub const fn full_scale_dps(self) -> f32 {
        match self {
            GyroRange::Dps2000 => 2000.0,
            GyroRange::Dps1000 => 1000.0,
            GyroRange::Dps500 => 500.0,
            GyroRange::Dps250 => 250.0,
            GyroRange::Dps125 => 125.0,
        }
    }

    /// Full scale over 2¹⁵ counts, as Bosch's API converts (the datasheet's table
    /// rounds these: 16.4 counts per dps at ±2000 dps).
    pub fn rad_s_per_lsb(self) -> f32 {
        self.full_scale_dps() / 32768.0 * (core::f32::consts::PI / 180.0)
    }
}

/// Everything [`Bmi270::init`] configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bmi270Config {
    /// Rate of both sensors.
    pub output_data_rate: OutputDataRate,
    pub accel_range: AccelRange,
    pub gyro_range: GyroRange,
}

impl Bmi270Config {
    /// 50 Hz, ±4 g, ±1000 dps: the model's rate, and the ranges of the MPU-6050's HAR
    /// configuration.
    pub const HAR_50HZ: Bmi270Config = Bmi270Config {
        output_data_rate: OutputDataRate::Hz50,
        accel_range: AccelRange::G4,
        gyro_range: GyroRange::Dps1000,
    };

    /// The `ACC_CONF` value.
    pub const fn acc_conf(&self) -> u8 {
        reg::ACC_CONF_PERF_NORMAL | self.output_data_rate as u8
    }

    /// The `GYR_CONF` value.
    pub const fn gyr_conf(&self) -> u8 {
        reg::GYR_CONF_PERF_NORMAL | self.output_data_rate as u8
    }
}

impl Default for Bmi270Config {
    fn default() -> Self {
        Bmi270Config::HAR_50HZ
    }
}

/// Bosch's BMI270 configuration file, from the `bmi2` crate (see the module docs for
/// its licence).
pub fn bosch_config_file() -> &'static [u8] {
    &bmi2::config::BMI270_CONFIG_FILE
}

/// Splits the 12 data bytes (accelerometer first) into counts.
pub fn raw_from_registers(bytes: &[u8; DATA_LEN]) -> RawAxes {
    let [a0, a1, a2, a3, a4, a5, g0, g1, g2, g3, g4, g5] = *bytes;
    RawAxes {
        acc: le_axes(&[a0, a1, a2, a3, a4, a5]),
        gyro: le_axes(&[g0, g1, g2, g3, g4, g5]),
    }
}

/// BMI270 driver, generic over any embedded-hal 1.0 I²C bus and delay.
///
/// ```
/// use edge_runtime::sensor::{BMI270_ADDRESS, Bmi270, Bmi270Config, Imu, SensorError};
/// use embedded_hal::{delay::DelayNs, i2c::I2c};
///
/// fn start<I: I2c, D: DelayNs>(i2c: I, delay: D) -> Result<Bmi270<I, D>, SensorError<I::Error>> {
///     let mut imu = Bmi270::new(i2c, delay, BMI270_ADDRESS, Bmi270Config::HAR_50HZ);
///     imu.init()?; // uploads 8 KiB: ~0.2 s at 400 kHz
///     Ok(imu)
/// }
///
/// // On each INT1 rising edge (or a timeout of a few periods):
/// fn sample<I: I2c, D: DelayNs>(
///     imu: &mut Bmi270<I, D>,
/// ) -> Result<([f32; 3], bool), SensorError<I::Error>> {
///     let reading = imu.wait_and_read(4)?;
///     Ok((reading.sample.acc_g, reading.saturated))
/// }
/// ```
#[derive(Debug)]
pub struct Bmi270<I2C, D> {
    bus: RegisterBus<I2C>,
    delay: D,
    config: Bmi270Config,
    config_file: &'static [u8],
}

impl<I2C: I2c, D: DelayNs> Bmi270<I2C, D> {
    /// Takes the bus and a delay; no transfer happens until [`Bmi270::init`]. Uploads
    /// [`bosch_config_file`].
    pub fn new(i2c: I2C, delay: D, address: u8, config: Bmi270Config) -> Self {
        Bmi270 {
            bus: RegisterBus::new(i2c, address),
            delay,
            config,
            config_file: bosch_config_file(),
        }
    }

    /// Uploads `config_file` instead of Bosch's (another revision, or a test's).
    pub fn with_config_file(mut self, config_file: &'static [u8]) -> Self {
        self.config_file = config_file;
        self
    }

    pub fn config(&self) -> &Bmi270Config {
        &self.config
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I2C, D) {
        (self.bus.release(), self.delay)
    }

    /// Checks `CHIP_ID`, resets, uploads the configuration file and configures the
    /// sensors (see the module docs for the sequence). Takes ~0.2 s at 400 kHz.
    pub fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        let len = self.config_file.len();
        if len == 0 || !len.is_multiple_of(2) || len > CONFIG_FILE_MAX_BYTES {
            return Err(SensorError::ConfigFileLength { len });
        }
        self.bus.check_chip_id(ImuPart::Bmi270, reg::CHIP_ID)?;
        self.write(&[reg::CMD, reg::SOFT_RESET], SOFT_RESET_WAIT_US)?;
        self.write(&[reg::PWR_CONF, 0x00], POWER_SAVE_EXIT_WAIT_US)?;
        self.upload_config_file()?;
        self.wait_for_init_ok()?;
        let config = self.config;
        self.write(&[reg::ACC_CONF, config.acc_conf()], WRITE_IDLE_US)?;
        self.write(&[reg::ACC_RANGE, config.accel_range as u8], WRITE_IDLE_US)?;
        self.write(&[reg::GYR_CONF, config.gyr_conf()], WRITE_IDLE_US)?;
        self.write(&[reg::GYR_RANGE, config.gyro_range as u8], WRITE_IDLE_US)?;
        self.write(
            &[reg::INT1_IO_CTRL, reg::INT1_OUTPUT_ACTIVE_HIGH],
            WRITE_IDLE_US,
        )?;
        self.write(&[reg::INT_MAP_DATA, reg::DRDY_INT1], WRITE_IDLE_US)?;
        self.write(&[reg::PWR_CTRL, reg::ACC_GYR_EN], WRITE_IDLE_US)?;
        Ok(())
    }

    /// `INIT_CTRL` = 0, the file burst by burst at its word address, `INIT_CTRL` = 1.
    fn upload_config_file(&mut self) -> Result<(), SensorError<I2C::Error>> {
        self.write(&[reg::INIT_CTRL, 0x00], WRITE_IDLE_US)?;
        let file = self.config_file;
        let mut burst = [0u8; 1 + CONFIG_BURST_BYTES];
        burst[0] = reg::INIT_DATA;
        for (index, chunk) in file.chunks(CONFIG_BURST_BYTES).enumerate() {
            // `init` bounds the file to 8 KiB, so the word address fits 12 bits.
            let word = (index * CONFIG_BURST_BYTES / 2) as u16;
            self.write(
                &[reg::INIT_ADDR_0, (word & 0x0F) as u8, (word >> 4) as u8],
                WRITE_IDLE_US,
            )?;
            // A RAM copy: one write transfer per burst, and EasyDMA cannot read flash.
            let mut len = 1;
            for (slot, &byte) in burst[1..].iter_mut().zip(chunk) {
                *slot = byte;
                len += 1;
            }
            self.write(burst.get(..len).unwrap_or(&[]), WRITE_IDLE_US)?;
        }
        self.write(&[reg::INIT_CTRL, 0x01], WRITE_IDLE_US)?;
        Ok(())
    }

    fn wait_for_init_ok(&mut self) -> Result<(), SensorError<I2C::Error>> {
        let mut internal_status = 0;
        for _ in 0..INIT_POLLS {
            self.delay.delay_us(INIT_POLL_INTERVAL_US);
            internal_status = self.bus.read(reg::INTERNAL_STATUS)?;
            match internal_status & reg::INTERNAL_STATUS_MESSAGE {
                reg::INIT_OK => return Ok(()),
                0 => {} // not_init: still starting
                _ => break,
            }
        }
        Err(SensorError::InitFailed { internal_status })
    }

    /// Reads `STATUS`: true when both `drdy_acc` and `drdy_gyr` are set.
    pub fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        self.bus
            .flags_set(reg::STATUS, reg::DRDY_ACC | reg::DRDY_GYR)
    }

    /// One 12-byte burst read of `DATA_8` … `DATA_19`, without checking data-ready.
    pub fn read_raw(&mut self) -> Result<RawAxes, SensorError<I2C::Error>> {
        let bytes = self.bus.burst_read::<DATA_LEN>(reg::DATA_8)?;
        Ok(raw_from_registers(&bytes))
    }

    /// Reads and scales the current sample.
    pub fn read(&mut self) -> Result<Reading<RawAxes>, SensorError<I2C::Error>> {
        let raw = self.read_raw()?;
        Ok(raw.reading(
            self.config.accel_range.g_per_lsb(),
            self.config.gyro_range.rad_s_per_lsb(),
        ))
    }

    /// One write transfer (register, then data), then the idle time the part needs.
    fn write(&mut self, bytes: &[u8], idle_us: u32) -> Result<(), I2C::Error> {
        self.bus.write_bytes(bytes)?;
        self.delay.delay_us(idle_us);
        Ok(())
    }
}

impl<I2C: I2c, D: DelayNs> Imu for Bmi270<I2C, D> {
    type BusError = I2C::Error;
    type Raw = RawAxes;

    fn part(&self) -> ImuPart {
        ImuPart::Bmi270
    }

    fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        Bmi270::init(self)
    }

    fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        Bmi270::data_ready(self)
    }

    fn read(&mut self) -> Result<Reading<RawAxes>, SensorError<I2C::Error>> {
        Bmi270::read(self)
    }

    fn output_rate_hz(&self) -> f32 {
        self.config.output_data_rate.hz()
    }
}
