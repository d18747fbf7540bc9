//! Driver for the InvenSense MPU-6050 6-axis IMU over I²C (embedded-hal 1.0).
//!
//! The MPU-6050 is the accelerometer + gyroscope of countless hobby boards, and its
//! register map is small: the driver writes five configuration registers, checks
//! `WHO_AM_I`, polls `INT_STATUS.DATA_RDY` and burst-reads the 14 data registers
//! (`ACCEL_XOUT_H` … `GYRO_ZOUT_L`, big-endian `i16`s), then scales the counts to g and
//! rad/s with the configured full-scale ranges.
//!
//! In QEMU the same driver reads a [`RecordedMpu6050`](super::RecordedMpu6050), an
//! emulated chip replaying a recording; the QEMU golden test depends on this driver's
//! register traffic and arithmetic staying exactly as they are.

use embedded_hal::i2c::I2c;

use super::i2c::RegisterBus;
use super::{Imu, ImuPart, Reading, SensorError, any_clipped, scale_counts};
use crate::preprocess::ImuSample;

/// 7-bit I²C address with the AD0 pin low (the usual breakout default).
pub const MPU6050_ADDRESS: u8 = 0x68;
/// 7-bit I²C address with the AD0 pin high.
pub const MPU6050_ADDRESS_AD0_HIGH: u8 = 0x69;
/// What `WHO_AM_I` reads on a genuine MPU-6050 (the address bits 6:1, independent of AD0).
pub const WHO_AM_I_VALUE: u8 = 0x68;
/// Bytes of one burst read: accel x y z, temperature, gyro x y z (7 big-endian `i16`).
pub const DATA_LEN: usize = 14;

/// Register addresses (MPU-6000/6050 Register Map and Descriptions, rev. 4.2).
pub mod reg {
    pub const SMPLRT_DIV: u8 = 0x19;
    pub const CONFIG: u8 = 0x1A;
    pub const GYRO_CONFIG: u8 = 0x1B;
    pub const ACCEL_CONFIG: u8 = 0x1C;
    pub const INT_ENABLE: u8 = 0x38;
    pub const INT_STATUS: u8 = 0x3A;
    pub const ACCEL_XOUT_H: u8 = 0x3B;
    pub const PWR_MGMT_1: u8 = 0x6B;
    pub const WHO_AM_I: u8 = 0x75;

    /// `INT_ENABLE` / `INT_STATUS`: a new sample is in the data registers.
    pub const DATA_RDY: u8 = 0x01;
    /// `PWR_MGMT_1`: sleep mode (set after power-on).
    pub const SLEEP: u8 = 0x40;
    /// `PWR_MGMT_1` clock source: PLL with the X gyro as reference (the datasheet's
    /// recommendation over the internal 8 MHz oscillator).
    pub const CLKSEL_PLL_XGYRO: u8 = 0x01;
}

/// Accelerometer full-scale range (`ACCEL_CONFIG.AFS_SEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccelRange {
    G2 = 0,
    G4 = 1,
    G8 = 2,
    G16 = 3,
}

impl AccelRange {
    /// Counts per g: 16384 at ±2 g, halving with each range step.
    pub const fn lsb_per_g(self) -> f32 {
        (16384u32 >> self as u32) as f32
    }

    /// The `AFS_SEL` field as written to `ACCEL_CONFIG` (bits 4:3).
    pub const fn config_bits(self) -> u8 {
        (self as u8) << 3
    }

    /// Inverse of [`AccelRange::config_bits`]; the self-test bits are ignored.
    pub const fn from_config_bits(bits: u8) -> AccelRange {
        match (bits >> 3) & 0b11 {
            0 => AccelRange::G2,
            1 => AccelRange::G4,
            2 => AccelRange::G8,
            _ => AccelRange::G16,
        }
    }

    /// Counts for an acceleration in g, rounded and clamped to the `i16` range (what the
    /// chip reports when the range is exceeded). Used to build recordings.
    pub fn g_to_counts(self, acc_g: f32) -> i16 {
        counts(acc_g * self.lsb_per_g())
    }
}

/// Gyroscope full-scale range (`GYRO_CONFIG.FS_SEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GyroRange {
    Dps250 = 0,
    Dps500 = 1,
    Dps1000 = 2,
    Dps2000 = 3,
}

impl GyroRange {
    /// Counts per degree per second (datasheet: 131, 65.5, 32.8, 16.4).
    pub const fn lsb_per_dps(self) -> f32 {
        match self {
            GyroRange::Dps250 => 131.0,
            GyroRange::Dps500 => 65.5,
            GyroRange::Dps1000 => 32.8,
            GyroRange::Dps2000 => 16.4,
        }
    }

    /// Counts per rad/s.
    pub const fn lsb_per_rad_s(self) -> f32 {
        self.lsb_per_dps() * (180.0 / core::f32::consts::PI)
    }

    /// The `FS_SEL` field as written to `GYRO_CONFIG` (bits 4:3).
    pub const fn config_bits(self) -> u8 {
        (self as u8) << 3
    }

    /// Inverse of [`GyroRange::config_bits`]; the self-test bits are ignored.
    pub const fn from_config_bits(bits: u8) -> GyroRange {
        match (bits >> 3) & 0b11 {
            0 => GyroRange::Dps250,
            1 => GyroRange::Dps500,
            2 => GyroRange::Dps1000,
            _ => GyroRange::Dps2000,
        }
    }

    /// Counts for an angular velocity in rad/s, rounded and clamped to `i16`.
    pub fn rad_s_to_counts(self, gyro_rad_s: f32) -> i16 {
        counts(gyro_rad_s * self.lsb_per_rad_s())
    }
}

/// Round half away from zero and clamp into `i16` (NaN → 0) without `std`.
fn counts(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    let rounded = if x >= 0.0 { x + 0.5 } else { x - 0.5 };
    // `as` saturates and truncates toward zero, which completes the rounding.
    rounded as i16
}

/// Digital low-pass bandwidth (`CONFIG.DLPF_CFG`), accelerometer / gyroscope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DlpfBandwidth {
    /// 260 Hz / 256 Hz; the gyroscope then samples at 8 kHz.
    Hz260 = 0,
    Hz184 = 1,
    Hz94 = 2,
    Hz44 = 3,
    /// 21 Hz / 20 Hz: the anti-alias filter for 50 Hz output (Nyquist 25 Hz).
    Hz21 = 4,
    Hz10 = 5,
    Hz5 = 6,
}

impl DlpfBandwidth {
    /// Rate the sample-rate divider divides (datasheet: 8 kHz without the DLPF, else 1 kHz).
    pub const fn gyro_output_rate_hz(self) -> f32 {
        match self {
            DlpfBandwidth::Hz260 => 8000.0,
            _ => 1000.0,
        }
    }
}

/// Everything the driver writes at [`Mpu6050::init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mpu6050Config {
    pub accel_range: AccelRange,
    pub gyro_range: GyroRange,
    pub dlpf: DlpfBandwidth,
    /// `SMPLRT_DIV`: sample rate = gyro output rate / (1 + divider).
    pub sample_rate_divider: u8,
}

impl Mpu6050Config {
    /// 50 Hz output, the rate of UCI HAR / HAPT: 1 kHz / (1 + 19). ±4 g and ±1000 °/s
    /// cover the HAPT recordings (gyroscope peaks near 9 rad/s ≈ 500 °/s).
    pub const HAR_50HZ: Mpu6050Config = Mpu6050Config {
        accel_range: AccelRange::G4,
        gyro_range: GyroRange::Dps1000,
        dlpf: DlpfBandwidth::Hz21,
        sample_rate_divider: 19,
    };

    pub fn sample_rate_hz(&self) -> f32 {
        self.dlpf.gyro_output_rate_hz() / (1.0 + f32::from(self.sample_rate_divider))
    }
}

impl Default for Mpu6050Config {
    fn default() -> Self {
        Mpu6050Config::HAR_50HZ
    }
}

/// One burst read, in counts, as the chip reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSample {
    pub acc: [i16; 3],
    pub temperature: i16,
    pub gyro: [i16; 3],
}

impl RawSample {
    /// Parses the 14 data registers (big-endian, starting at `ACCEL_XOUT_H`).
    pub fn from_registers(bytes: &[u8; DATA_LEN]) -> RawSample {
        let word = |i: usize| i16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        RawSample {
            acc: [word(0), word(1), word(2)],
            temperature: word(3),
            gyro: [word(4), word(5), word(6)],
        }
    }

    /// Inverse of [`RawSample::from_registers`].
    pub fn to_registers(&self) -> [u8; DATA_LEN] {
        let words = [
            self.acc[0],
            self.acc[1],
            self.acc[2],
            self.temperature,
            self.gyro[0],
            self.gyro[1],
            self.gyro[2],
        ];
        let mut bytes = [0u8; DATA_LEN];
        for (chunk, w) in bytes.chunks_exact_mut(2).zip(words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        bytes
    }

    /// True when an accelerometer or gyroscope axis sits at the end of the `i16` range:
    /// the true value may be larger, so the sample is clipped.
    pub fn is_saturated(&self) -> bool {
        any_clipped(&self.acc, &self.gyro)
    }

    /// Physical units for the given ranges.
    pub fn scale(&self, accel_range: AccelRange, gyro_range: GyroRange) -> ImuSample {
        let g_per_lsb = 1.0 / accel_range.lsb_per_g();
        let rad_s_per_lsb = 1.0 / gyro_range.lsb_per_rad_s();
        scale_counts(&self.acc, &self.gyro, g_per_lsb, rad_s_per_lsb)
    }

    /// Die temperature (datasheet: counts / 340 + 36.53 °C).
    pub fn temperature_c(&self) -> f32 {
        f32::from(self.temperature) / 340.0 + 36.53
    }
}

/// MPU-6050 driver, generic over any embedded-hal 1.0 I²C bus.
#[derive(Debug)]
pub struct Mpu6050<I2C> {
    bus: RegisterBus<I2C>,
    config: Mpu6050Config,
}

impl<I2C: I2c> Mpu6050<I2C> {
    /// Takes the bus; no transfer happens until [`Mpu6050::init`].
    pub fn new(i2c: I2C, address: u8, config: Mpu6050Config) -> Self {
        Mpu6050 {
            bus: RegisterBus::new(i2c, address),
            config,
        }
    }

    pub fn config(&self) -> &Mpu6050Config {
        &self.config
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.bus.release()
    }

    /// Checks `WHO_AM_I`, wakes the chip with the gyro PLL clock, and writes sample rate,
    /// low-pass, full-scale ranges and the data-ready interrupt enable.
    pub fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        self.bus.check_chip_id(ImuPart::Mpu6050, reg::WHO_AM_I)?;
        // Waking first: the configuration registers are writable in sleep mode, but the
        // datasheet's start-up sequence selects the clock before anything else.
        self.bus.write(reg::PWR_MGMT_1, reg::CLKSEL_PLL_XGYRO)?;
        self.bus
            .write(reg::SMPLRT_DIV, self.config.sample_rate_divider)?;
        self.bus.write(reg::CONFIG, self.config.dlpf as u8)?;
        self.bus
            .write(reg::GYRO_CONFIG, self.config.gyro_range.config_bits())?;
        self.bus
            .write(reg::ACCEL_CONFIG, self.config.accel_range.config_bits())?;
        self.bus.write(reg::INT_ENABLE, reg::DATA_RDY)?;
        Ok(())
    }

    /// Reads `INT_STATUS` (which clears it) and reports whether a new sample is ready.
    pub fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        self.bus.flags_set(reg::INT_STATUS, reg::DATA_RDY)
    }

    /// Burst-reads the data registers without waiting for data-ready.
    pub fn read_raw(&mut self) -> Result<RawSample, SensorError<I2C::Error>> {
        let bytes = self.bus.burst_read::<DATA_LEN>(reg::ACCEL_XOUT_H)?;
        Ok(RawSample::from_registers(&bytes))
    }

    /// Reads and scales the current sample without waiting for data-ready.
    pub fn read(&mut self) -> Result<Reading, SensorError<I2C::Error>> {
        let raw = self.read_raw()?;
        Ok(Reading {
            sample: raw.scale(self.config.accel_range, self.config.gyro_range),
            raw,
            saturated: raw.is_saturated(),
        })
    }

    /// Polls `INT_STATUS` up to `max_polls` times for a new sample, then reads it.
    pub fn wait_and_read(&mut self, max_polls: u32) -> Result<Reading, SensorError<I2C::Error>> {
        Imu::wait_and_read(self, max_polls)
    }
}

/// The shared device loop's view of the MPU-6050: the inherent methods, unchanged.
impl<I2C: I2c> Imu for Mpu6050<I2C> {
    type BusError = I2C::Error;
    type Raw = RawSample;

    fn part(&self) -> ImuPart {
        ImuPart::Mpu6050
    }

    fn init(&mut self) -> Result<(), SensorError<I2C::Error>> {
        Mpu6050::init(self)
    }

    fn data_ready(&mut self) -> Result<bool, SensorError<I2C::Error>> {
        Mpu6050::data_ready(self)
    }

    fn read(&mut self) -> Result<Reading, SensorError<I2C::Error>> {
        Mpu6050::read(self)
    }

    fn output_rate_hz(&self) -> f32 {
        self.config.sample_rate_hz()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    const A: u8 = MPU6050_ADDRESS;

    fn init_transactions(config: &Mpu6050Config) -> Vec<Transaction> {
        vec![
            Transaction::write_read(A, vec![reg::WHO_AM_I], vec![0x68]),
            Transaction::write(A, vec![reg::PWR_MGMT_1, 0x01]),
            Transaction::write(A, vec![reg::SMPLRT_DIV, config.sample_rate_divider]),
            Transaction::write(A, vec![reg::CONFIG, config.dlpf as u8]),
            Transaction::write(A, vec![reg::GYRO_CONFIG, config.gyro_range.config_bits()]),
            Transaction::write(A, vec![reg::ACCEL_CONFIG, config.accel_range.config_bits()]),
            Transaction::write(A, vec![reg::INT_ENABLE, 0x01]),
        ]
    }

    #[test]
    fn init_writes_the_50hz_configuration() {
        let config = Mpu6050Config::HAR_50HZ;
        assert_eq!(config.sample_rate_hz(), 50.0);
        let expected = init_transactions(&config);
        // The register values themselves, spelled out once against the datasheet.
        assert_eq!(
            expected[4],
            Transaction::write(A, vec![0x1B, 0b0001_0000]) // FS_SEL = 2: ±1000 °/s
        );
        assert_eq!(expected[5], Transaction::write(A, vec![0x1C, 0b0000_1000])); // ±4 g
        let mut i2c = Mock::new(&expected);
        let mut imu = Mpu6050::new(i2c.clone(), A, config);
        imu.init().unwrap();
        i2c.done();
    }

    #[test]
    fn wrong_who_am_i_is_reported_and_nothing_is_written() {
        let mut i2c = Mock::new(&[Transaction::write_read(A, vec![0x75], vec![0x70])]);
        let mut imu = Mpu6050::new(i2c.clone(), A, Mpu6050Config::HAR_50HZ);
        assert_eq!(
            imu.init(),
            Err(SensorError::WrongChipId {
                part: ImuPart::Mpu6050,
                read: 0x70
            })
        );
        i2c.done();
    }

    #[test]
    fn bus_errors_propagate() {
        let mut i2c =
            Mock::new(
                &[Transaction::write_read(A, vec![0x75], vec![0]).with_error(ErrorKind::Bus)],
            );
        let mut imu = Mpu6050::new(i2c.clone(), A, Mpu6050Config::HAR_50HZ);
        assert_eq!(imu.init(), Err(SensorError::Bus(ErrorKind::Bus)));
        i2c.done();

        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
        let mut i2c =
            Mock::new(&[Transaction::write_read(A, vec![0x3B], vec![0; 14]).with_error(nack)]);
        let mut imu = Mpu6050::new(i2c.clone(), A, Mpu6050Config::HAR_50HZ);
        assert_eq!(imu.read(), Err(SensorError::Bus(nack)));
        i2c.done();
    }

    #[test]
    fn burst_read_is_scaled_to_g_and_rad_s() {
        // +1 g on x at ±4 g (8192), −0.5 g on z; 32.8 counts = 1 °/s at ±1000 °/s.
        let mut regs = vec![0x20, 0x00, 0x00, 0x00, 0xF0, 0x00]; // 8192, 0, −4096
        regs.extend_from_slice(&[0xF2, 0xFE]); // temperature −3330 → 26.74 °C
        regs.extend_from_slice(&(328i16).to_be_bytes());
        regs.extend_from_slice(&(-3280i16).to_be_bytes());
        regs.extend_from_slice(&(i16::MAX).to_be_bytes());
        let mut i2c = Mock::new(&[
            Transaction::write_read(A, vec![0x3A], vec![0x00]),
            Transaction::write_read(A, vec![0x3A], vec![0x01]),
            Transaction::write_read(A, vec![0x3B], regs),
        ]);
        let mut imu = Mpu6050::new(i2c.clone(), A, Mpu6050Config::HAR_50HZ);
        let reading = imu.wait_and_read(5).unwrap();
        i2c.done();
        assert_eq!(reading.raw.acc, [8192, 0, -4096]);
        assert_eq!(reading.sample.acc_g, [1.0, 0.0, -0.5]);
        let deg = core::f32::consts::PI / 180.0;
        assert!((reading.sample.gyro_rad_s[0] - 10.0 * deg).abs() < 1e-6);
        assert!((reading.sample.gyro_rad_s[1] + 100.0 * deg).abs() < 1e-5);
        assert!((reading.raw.temperature_c() - 26.736).abs() < 0.01);
        assert!(reading.saturated, "gyro z at i16::MAX is saturated");
    }

    #[test]
    fn polling_gives_up_after_max_polls() {
        let mut i2c = Mock::new(&[
            Transaction::write_read(A, vec![0x3A], vec![0x00]),
            Transaction::write_read(A, vec![0x3A], vec![0x02]), // another interrupt bit
            Transaction::write_read(A, vec![0x3A], vec![0x00]),
        ]);
        let mut imu = Mpu6050::new(i2c.clone(), A, Mpu6050Config::HAR_50HZ);
        assert_eq!(imu.wait_and_read(3), Err(SensorError::Timeout { polls: 3 }));
        i2c.done();
    }

    #[test]
    fn ranges_scale_and_invert() {
        for range in [
            AccelRange::G2,
            AccelRange::G4,
            AccelRange::G8,
            AccelRange::G16,
        ] {
            assert_eq!(AccelRange::from_config_bits(range.config_bits()), range);
            let c = range.g_to_counts(0.731);
            let back = f32::from(c) / range.lsb_per_g();
            assert!((back - 0.731).abs() <= 0.5 / range.lsb_per_g());
        }
        assert_eq!(AccelRange::G2.g_to_counts(3.0), i16::MAX);
        assert_eq!(AccelRange::G2.g_to_counts(-3.0), i16::MIN);
        assert_eq!(AccelRange::G2.g_to_counts(f32::NAN), 0);
        for range in [
            GyroRange::Dps250,
            GyroRange::Dps500,
            GyroRange::Dps1000,
            GyroRange::Dps2000,
        ] {
            assert_eq!(GyroRange::from_config_bits(range.config_bits()), range);
            let c = range.rad_s_to_counts(-1.234);
            let back = f32::from(c) / range.lsb_per_rad_s();
            assert!((back + 1.234).abs() <= 0.5 / range.lsb_per_rad_s() + 1e-6);
        }
    }
}
