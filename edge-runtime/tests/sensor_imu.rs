//! The `Imu` trait as the shared device loop uses it: one generic function over every
//! driver, here on the replayed MPU-6050 (the QEMU path) and on mocked LSM6DS3TR-C and
//! BMI270 buses.

use edge_runtime::preprocess::ImuSample;
use edge_runtime::sensor::{
    AccelRange, BMI270_ADDRESS, Bmi270, Bmi270Config, Excerpt, GyroRange, Imu, LSM6DS3TRC_ADDRESS,
    Lsm6ds3trc, Lsm6ds3trcConfig, MPU6050_ADDRESS, Mpu6050, RawSample, RecordedMpu6050,
    ReplayError, SensorError,
};
use embedded_hal_mock::eh1::delay::CheckedDelay;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

/// What a device loop does with any IMU: poll for a sample, keep sample and flag, stop
/// at the first error.
fn stream<I: Imu>(
    imu: &mut I,
    max_samples: usize,
) -> (Vec<(ImuSample, bool)>, SensorError<I::BusError>) {
    let mut out = Vec::new();
    for _ in 0..max_samples {
        match imu.wait_and_read(4) {
            Ok(reading) => out.push((reading.sample, reading.saturated)),
            Err(e) => return (out, e),
        }
    }
    (out, SensorError::Timeout { polls: 0 })
}

#[test]
fn the_replayed_mpu6050_reads_the_same_through_the_trait() {
    let samples: Vec<RawSample> = (0..5i16)
        .map(|i| RawSample {
            acc: [100 * i, -8192, i16::MAX * (i % 2)],
            temperature: 0,
            gyro: [7 * i, 0, -3],
        })
        .collect();
    let mut bytes = Excerpt::header(AccelRange::G4, GyroRange::Dps1000, 1, 1, 0, 5).to_vec();
    for s in &samples {
        bytes.extend_from_slice(&s.to_registers());
    }
    let excerpt = Excerpt::parse(&bytes).unwrap();
    let mut imu = Mpu6050::new(
        RecordedMpu6050::new(excerpt),
        MPU6050_ADDRESS,
        excerpt.config(),
    );
    Imu::init(&mut imu).unwrap();
    assert_eq!(imu.output_rate_hz(), 50.0);
    let (read, end) = stream(&mut imu, 10);
    assert_eq!(end, SensorError::Bus(ReplayError::EndOfRecording));
    let expected: Vec<(ImuSample, bool)> = samples
        .iter()
        .map(|s| {
            (
                s.scale(AccelRange::G4, GyroRange::Dps1000),
                s.is_saturated(),
            )
        })
        .collect();
    assert_eq!(read, expected);
    assert_eq!(read.iter().filter(|(_, sat)| *sat).count(), 2);
}

#[test]
fn lsm6ds3trc_and_bmi270_stream_through_the_same_loop() {
    let counts = [4096i16, 0, -4096, 0, 0, 0];
    let le: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();

    // LSM6DS3TR-C: gyro first, so these counts are a pure rotation about x.
    let mut i2c = Mock::new(&[
        Transaction::write_read(0x6A, vec![0x1E], vec![0x03]),
        Transaction::write_read(0x6A, vec![0x22], le.clone()),
        Transaction::write_read(0x6A, vec![0x1E], vec![0x00]),
        Transaction::write_read(0x6A, vec![0x1E], vec![0x00]),
        Transaction::write_read(0x6A, vec![0x1E], vec![0x00]),
        Transaction::write_read(0x6A, vec![0x1E], vec![0x00]),
    ]);
    let mut lsm = Lsm6ds3trc::new(i2c.clone(), LSM6DS3TRC_ADDRESS, Lsm6ds3trcConfig::HAR_52HZ);
    let (read, end) = stream(&mut lsm, 3);
    i2c.done();
    assert_eq!(end, SensorError::Timeout { polls: 4 });
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0.acc_g, [0.0; 3]);
    assert!(read[0].0.gyro_rad_s[0] > 0.0 && read[0].0.gyro_rad_s[2] < 0.0);

    // BMI270: accelerometer first, so the same counts are ±0.5 g at ±4 g.
    let mut i2c = Mock::new(&[
        Transaction::write_read(0x68, vec![0x03], vec![0xC0]),
        Transaction::write_read(0x68, vec![0x0C], le),
        Transaction::write_read(0x68, vec![0x03], vec![0x00]),
        Transaction::write_read(0x68, vec![0x03], vec![0x00]),
        Transaction::write_read(0x68, vec![0x03], vec![0x00]),
        Transaction::write_read(0x68, vec![0x03], vec![0x00]),
    ]);
    let mut delay = CheckedDelay::new(&[]);
    let mut bmi = Bmi270::new(
        i2c.clone(),
        delay.clone(),
        BMI270_ADDRESS,
        Bmi270Config::HAR_50HZ,
    );
    let (read, end) = stream(&mut bmi, 3);
    i2c.done();
    delay.done();
    assert_eq!(end, SensorError::Timeout { polls: 4 });
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0.acc_g, [0.5, 0.0, -0.5]);
    assert_eq!(read[0].0.gyro_rad_s, [0.0; 3]);
}
