//! A recorded sensor: an excerpt of raw MPU-6050 register values, and an emulated chip
//! that replays it.
//!
//! [`RecordedMpu6050`] implements [`embedded_hal::i2c::I2c`] by emulating the MPU-6050
//! register map over an [`Excerpt`]: raw register values of a real HAPT recording stored
//! in flash. The firmware runs the *same* driver on it in QEMU, so configuration,
//! data-ready polling and scaling run for real; the host golden test runs the same pair.

use core::fmt;

use embedded_hal::i2c::{self, I2c, NoAcknowledgeSource, Operation};

use super::mpu6050::{
    AccelRange, DATA_LEN, GyroRange, MPU6050_ADDRESS, Mpu6050Config, WHO_AM_I_VALUE, reg,
};

/// Magic bytes at the start of an [`Excerpt`].
pub const EXCERPT_MAGIC: [u8; 4] = *b"VSCX";
/// Format version of [`Excerpt`].
pub const EXCERPT_VERSION: u8 = 1;
/// Header bytes before the samples.
pub const EXCERPT_HEADER_LEN: usize = 20;

/// A recording as the MPU-6050 would have reported it: header, then per sample the 14
/// data-register bytes exactly as a burst read returns them.
///
/// Layout (integers little-endian): `"VSCX"`, version `u8`, `ACCEL_CONFIG` `u8`,
/// `GYRO_CONFIG` `u8`, user `u8`, experiment `u16`, reserved `u16`, first sample index in
/// the source recording `u32`, sample count `u32`, then `count × 14` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Excerpt<'a> {
    pub accel_range: AccelRange,
    pub gyro_range: GyroRange,
    /// HAPT user and experiment the excerpt was cut from (0 when unknown).
    pub user: u8,
    pub experiment: u16,
    /// Index (0-based) of the excerpt's first sample in the source recording.
    pub source_start: u32,
    data: &'a [u8],
}

/// Why an excerpt could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExcerptError {
    /// Fewer bytes than the header.
    TooShort {
        len: usize,
    },
    BadMagic,
    UnsupportedVersion {
        version: u8,
    },
    /// The byte count after the header is not `count × 14`.
    Length {
        samples: u32,
        expected: usize,
        got: usize,
    },
}

impl fmt::Display for ExcerptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExcerptError::TooShort { len } => write!(
                f,
                "excerpt: {len} bytes, shorter than the {EXCERPT_HEADER_LEN}-byte header"
            ),
            ExcerptError::BadMagic => write!(f, "excerpt: magic is not \"VSCX\""),
            ExcerptError::UnsupportedVersion { version } => write!(
                f,
                "excerpt: format version {version}, this build reads {EXCERPT_VERSION}"
            ),
            ExcerptError::Length {
                samples,
                expected,
                got,
            } => write!(
                f,
                "excerpt: header says {samples} samples ({expected} bytes), body has {got} bytes"
            ),
        }
    }
}

impl core::error::Error for ExcerptError {}

impl<'a> Excerpt<'a> {
    /// Reads an excerpt in place (no copy).
    pub fn parse(bytes: &'a [u8]) -> Result<Excerpt<'a>, ExcerptError> {
        let Some((header, body)) = bytes.split_first_chunk::<EXCERPT_HEADER_LEN>() else {
            return Err(ExcerptError::TooShort { len: bytes.len() });
        };
        if header[0..4] != EXCERPT_MAGIC {
            return Err(ExcerptError::BadMagic);
        }
        if header[4] != EXCERPT_VERSION {
            return Err(ExcerptError::UnsupportedVersion { version: header[4] });
        }
        let samples = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
        let expected = (samples as usize).saturating_mul(DATA_LEN);
        if body.len() != expected {
            return Err(ExcerptError::Length {
                samples,
                expected,
                got: body.len(),
            });
        }
        Ok(Excerpt {
            accel_range: AccelRange::from_config_bits(header[5]),
            gyro_range: GyroRange::from_config_bits(header[6]),
            user: header[7],
            experiment: u16::from_le_bytes([header[8], header[9]]),
            source_start: u32::from_le_bytes([header[12], header[13], header[14], header[15]]),
            data: body,
        })
    }

    /// The header for an excerpt of `samples` samples (write it, then the register bytes).
    pub fn header(
        accel_range: AccelRange,
        gyro_range: GyroRange,
        user: u8,
        experiment: u16,
        source_start: u32,
        samples: u32,
    ) -> [u8; EXCERPT_HEADER_LEN] {
        let mut h = [0u8; EXCERPT_HEADER_LEN];
        h[0..4].copy_from_slice(&EXCERPT_MAGIC);
        h[4] = EXCERPT_VERSION;
        h[5] = accel_range.config_bits();
        h[6] = gyro_range.config_bits();
        h[7] = user;
        h[8..10].copy_from_slice(&experiment.to_le_bytes());
        h[12..16].copy_from_slice(&source_start.to_le_bytes());
        h[16..20].copy_from_slice(&samples.to_le_bytes());
        h
    }

    pub fn len(&self) -> usize {
        self.data.len() / DATA_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The data registers of sample `index`.
    pub fn registers(&self, index: usize) -> Option<&'a [u8; DATA_LEN]> {
        let start = index.checked_mul(DATA_LEN)?;
        self.data.get(start..start + DATA_LEN)?.try_into().ok()
    }

    /// The driver configuration that reads this excerpt back at 50 Hz.
    pub fn config(&self) -> Mpu6050Config {
        Mpu6050Config {
            accel_range: self.accel_range,
            gyro_range: self.gyro_range,
            ..Mpu6050Config::HAR_50HZ
        }
    }
}

/// Errors of [`RecordedMpu6050`] as an I²C bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Nothing answered at that address.
    NoDevice,
    /// The last sample was delivered; the recording is over.
    EndOfRecording,
    /// The driver configured a full-scale range other than the recording's, so the
    /// recorded counts would be scaled wrongly.
    RangeMismatch,
    /// An injected bus fault (see [`RecordedMpu6050::inject_bus_errors`]).
    InjectedFault,
    /// A transfer the emulated chip does not support (e.g. a read with no register).
    Unsupported,
}

impl i2c::Error for ReplayError {
    fn kind(&self) -> i2c::ErrorKind {
        match self {
            ReplayError::NoDevice => i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            ReplayError::InjectedFault => i2c::ErrorKind::Bus,
            _ => i2c::ErrorKind::Other,
        }
    }
}

/// An emulated MPU-6050 answering at [`MPU6050_ADDRESS`] whose data registers replay an
/// [`Excerpt`], one sample per data-ready event.
///
/// Timing: after each sample is latched, the next `INT_STATUS` read reports "not ready"
/// once (the sample period has not elapsed) and the following one latches the next sample
/// and reports ready, so the driver's polling loop runs. After the last sample,
/// `INT_STATUS` fails with [`ReplayError::EndOfRecording`].
#[derive(Clone, Debug)]
pub struct RecordedMpu6050<'a> {
    excerpt: Excerpt<'a>,
    /// Register file (only the registers the emulation uses are meaningful).
    registers: [u8; 128],
    /// Index of the latched sample plus one (0: none latched yet).
    next_sample: usize,
    /// Pointer for reads without a preceding register write.
    pointer: u8,
    polls_since_latch: u32,
    data_ready: bool,
    faults: core::ops::Range<usize>,
}

impl<'a> RecordedMpu6050<'a> {
    pub fn new(excerpt: Excerpt<'a>) -> Self {
        let mut registers = [0u8; 128];
        registers[reg::WHO_AM_I as usize] = WHO_AM_I_VALUE;
        registers[reg::PWR_MGMT_1 as usize] = reg::SLEEP;
        RecordedMpu6050 {
            excerpt,
            registers,
            next_sample: 0,
            pointer: 0,
            polls_since_latch: 0,
            data_ready: false,
            faults: 0..0,
        }
    }

    /// Makes every data read of the samples with these indices fail with
    /// [`ReplayError::InjectedFault`], to exercise the firmware's error path.
    pub fn inject_bus_errors(&mut self, sample_indices: core::ops::Range<usize>) {
        self.faults = sample_indices;
    }

    /// Samples latched so far.
    pub fn samples_delivered(&self) -> usize {
        self.next_sample
    }

    fn read_byte(&mut self, register: u8) -> Result<u8, ReplayError> {
        match register {
            reg::INT_STATUS => {
                let awake = self.registers[reg::PWR_MGMT_1 as usize] & reg::SLEEP == 0;
                if !awake {
                    return Ok(0);
                }
                if !self.data_ready {
                    self.polls_since_latch += 1;
                    if self.polls_since_latch >= 2 || self.next_sample == 0 {
                        if self.next_sample >= self.excerpt.len() {
                            return Err(ReplayError::EndOfRecording);
                        }
                        self.next_sample += 1;
                        self.polls_since_latch = 0;
                        self.data_ready = true;
                    }
                }
                // Reading INT_STATUS clears it (datasheet).
                let ready = core::mem::replace(&mut self.data_ready, false);
                Ok(if ready { reg::DATA_RDY } else { 0 })
            }
            reg::ACCEL_XOUT_H..=0x48 => {
                let config_ok = self.registers[reg::ACCEL_CONFIG as usize] & 0x18
                    == self.excerpt.accel_range.config_bits()
                    && self.registers[reg::GYRO_CONFIG as usize] & 0x18
                        == self.excerpt.gyro_range.config_bits();
                if !config_ok {
                    return Err(ReplayError::RangeMismatch);
                }
                let Some(index) = self.next_sample.checked_sub(1) else {
                    return Ok(0); // Nothing latched yet: the registers read 0 after reset.
                };
                if self.faults.contains(&index) {
                    return Err(ReplayError::InjectedFault);
                }
                let bytes = self
                    .excerpt
                    .registers(index)
                    .ok_or(ReplayError::Unsupported)?;
                Ok(bytes[usize::from(register - reg::ACCEL_XOUT_H)])
            }
            _ => Ok(self.registers[usize::from(register & 0x7f)]),
        }
    }
}

impl i2c::ErrorType for RecordedMpu6050<'_> {
    type Error = ReplayError;
}

impl I2c for RecordedMpu6050<'_> {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if address != MPU6050_ADDRESS {
            return Err(ReplayError::NoDevice);
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    let Some((&register, values)) = bytes.split_first() else {
                        continue;
                    };
                    self.pointer = register;
                    for &value in values {
                        // Writes to read-only registers (WHO_AM_I, data) are ignored.
                        if !matches!(self.pointer, reg::WHO_AM_I | 0x3A..=0x48) {
                            self.registers[usize::from(self.pointer & 0x7f)] = value;
                        }
                        self.pointer = self.pointer.wrapping_add(1);
                    }
                }
                Operation::Read(buffer) => {
                    for byte in buffer.iter_mut() {
                        *byte = self.read_byte(self.pointer)?;
                        // Burst reads auto-increment, except on INT_STATUS polling.
                        if self.pointer != reg::INT_STATUS {
                            self.pointer = self.pointer.wrapping_add(1);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::sensor::{Mpu6050, RawSample, SensorError};

    const A: u8 = MPU6050_ADDRESS;

    fn excerpt_bytes(samples: &[RawSample]) -> Vec<u8> {
        let mut bytes = Excerpt::header(
            AccelRange::G4,
            GyroRange::Dps1000,
            2,
            3,
            8434,
            samples.len() as u32,
        )
        .to_vec();
        for s in samples {
            bytes.extend_from_slice(&s.to_registers());
        }
        bytes
    }

    fn raw(i: i16) -> RawSample {
        RawSample {
            acc: [i, -i, 8192],
            temperature: 0,
            gyro: [3 * i, 0, -7],
        }
    }

    #[test]
    fn excerpt_round_trips_and_rejects_bad_input() {
        let samples: Vec<RawSample> = (0..5).map(raw).collect();
        let bytes = excerpt_bytes(&samples);
        let excerpt = Excerpt::parse(&bytes).unwrap();
        assert_eq!(excerpt.len(), 5);
        assert_eq!(
            (excerpt.user, excerpt.experiment, excerpt.source_start),
            (2, 3, 8434)
        );
        assert_eq!(excerpt.config(), Mpu6050Config::HAR_50HZ);
        assert_eq!(
            RawSample::from_registers(excerpt.registers(4).unwrap()),
            samples[4]
        );
        assert!(excerpt.registers(5).is_none());

        assert_eq!(
            Excerpt::parse(&bytes[..10]),
            Err(ExcerptError::TooShort { len: 10 })
        );
        assert_eq!(
            Excerpt::parse(&bytes[..bytes.len() - 1]),
            Err(ExcerptError::Length {
                samples: 5,
                expected: 70,
                got: 69
            })
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(Excerpt::parse(&bad), Err(ExcerptError::BadMagic));
        let mut bad = bytes;
        bad[4] = 9;
        assert_eq!(
            Excerpt::parse(&bad),
            Err(ExcerptError::UnsupportedVersion { version: 9 })
        );
    }

    #[test]
    fn driver_reads_back_every_recorded_sample_then_end_of_recording() {
        let samples: Vec<RawSample> = (0..6).map(|i| raw(i * 100)).collect();
        let bytes = excerpt_bytes(&samples);
        let excerpt = Excerpt::parse(&bytes).unwrap();
        let mut imu = Mpu6050::new(RecordedMpu6050::new(excerpt), A, excerpt.config());
        // Asleep before init: never ready.
        assert!(!imu.data_ready().unwrap());
        imu.init().unwrap();
        for expected in &samples {
            let reading = imu.wait_and_read(4).unwrap();
            assert_eq!(reading.raw, *expected);
            assert_eq!(
                reading.sample,
                expected.scale(AccelRange::G4, GyroRange::Dps1000)
            );
        }
        assert_eq!(
            imu.wait_and_read(4),
            Err(SensorError::Bus(ReplayError::EndOfRecording))
        );
    }

    #[test]
    fn replay_checks_range_address_and_injects_faults() {
        let samples: Vec<RawSample> = (0..4).map(raw).collect();
        let bytes = excerpt_bytes(&samples);
        let excerpt = Excerpt::parse(&bytes).unwrap();

        let wrong_range = Mpu6050Config {
            accel_range: AccelRange::G2,
            ..excerpt.config()
        };
        let mut imu = Mpu6050::new(RecordedMpu6050::new(excerpt), A, wrong_range);
        imu.init().unwrap();
        assert_eq!(
            imu.wait_and_read(4),
            Err(SensorError::Bus(ReplayError::RangeMismatch))
        );

        let mut imu = Mpu6050::new(RecordedMpu6050::new(excerpt), 0x69, excerpt.config());
        assert_eq!(imu.init(), Err(SensorError::Bus(ReplayError::NoDevice)));

        let mut chip = RecordedMpu6050::new(excerpt);
        chip.inject_bus_errors(1..2);
        let mut imu = Mpu6050::new(chip, A, excerpt.config());
        imu.init().unwrap();
        assert_eq!(imu.wait_and_read(4).unwrap().raw, samples[0]);
        assert_eq!(
            imu.wait_and_read(4),
            Err(SensorError::Bus(ReplayError::InjectedFault))
        );
        // The stream goes on with the next sample after a failed read.
        assert_eq!(imu.wait_and_read(4).unwrap().raw, samples[2]);
    }
}
