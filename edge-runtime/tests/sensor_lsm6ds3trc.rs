//! LSM6DS3TR-C driver against embedded-hal-mock I²C transactions. Register addresses and
//! values are spelled out from the datasheet (DS11937) and AN5130 here, not taken from
//! the driver's constants, so a wrong constant fails a test.

use edge_runtime::sensor::lsm6ds3trc::{AccelRange, GyroRange, OutputDataRate, RESET_POLLS};
use edge_runtime::sensor::{
    Imu, ImuPart, LSM6DS3TRC_ADDRESS, Lsm6ds3trc, Lsm6ds3trcConfig, RawAxes, Reading, SensorError,
};
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

mod sensor_support;
use sensor_support::{
    DATA_NACK, assert_scaled, assert_wrong_chip_id, le_burst, on_bus, status_polls,
};

const A: u8 = 0x6A;
const WHO_AM_I: u8 = 0x0F;
const CTRL3_C: u8 = 0x12;
const STATUS_REG: u8 = 0x1E;
const OUTX_L_G: u8 = 0x22;

/// AN5130 §5.7 reset flow up to the SW_RESET write.
fn reset_writes() -> Vec<Transaction> {
    vec![
        Transaction::write_read(A, vec![WHO_AM_I], vec![0x6A]),
        Transaction::write(A, vec![0x11, 0x00]), // CTRL2_G: gyroscope power-down
        Transaction::write(A, vec![0x15, 0x00]), // CTRL6_C: XL high-performance
        Transaction::write(A, vec![CTRL3_C, 0b0000_0101]), // IF_INC | SW_RESET
    ]
}

fn driver(i2c: &Mock, config: Lsm6ds3trcConfig) -> Lsm6ds3trc<Mock> {
    Lsm6ds3trc::new(i2c.clone(), LSM6DS3TRC_ADDRESS, config)
}

/// One `read` (no data-ready poll) of a burst returning `bytes`.
fn read_once(bytes: Vec<u8>, config: Lsm6ds3trcConfig) -> Reading<RawAxes> {
    let expected = [Transaction::write_read(A, vec![OUTX_L_G], bytes)];
    on_bus(&expected, |i2c| driver(i2c, config).read().unwrap())
}

#[test]
fn init_follows_the_datasheet_sequence_for_52_hz() {
    let mut expected = reset_writes();
    expected.extend([
        // SW_RESET still set on the first poll, cleared (IF_INC default left) on the next.
        Transaction::write_read(A, vec![CTRL3_C], vec![0b0000_0101]),
        Transaction::write_read(A, vec![CTRL3_C], vec![0b0000_0100]),
        Transaction::write(A, vec![CTRL3_C, 0b0100_0100]), // BDU | IF_INC
        Transaction::write(A, vec![0x13, 0b0000_1000]),    // CTRL4_C: DRDY_MASK
        Transaction::write(A, vec![0x0B, 0b1000_0000]),    // DRDY_PULSE_CFG_G: pulsed
        Transaction::write(A, vec![0x0D, 0b0000_0001]),    // INT1_CTRL: INT1_DRDY_XL
        // CTRL1_XL: ODR_XL 0011 (52 Hz), FS_XL 10 (±4 g).
        Transaction::write(A, vec![0x10, 0b0011_1000]),
        // CTRL2_G: ODR_G 0011 (52 Hz), FS_G 10 (1000 dps), FS_125 0.
        Transaction::write(A, vec![0x11, 0b0011_1000]),
    ]);
    on_bus(&expected, |i2c| {
        let mut imu = driver(i2c, Lsm6ds3trcConfig::HAR_52HZ);
        assert_eq!(Imu::init(&mut imu), Ok(()));
        assert_eq!(imu.output_rate_hz(), 52.0);
        assert_eq!(imu.part(), ImuPart::Lsm6ds3trc);
    });
}

#[test]
fn register_codes_match_the_datasheet_tables() {
    // CTRL1_XL FS_XL (bits 3:2): 00 ±2 g, 01 ±16 g, 10 ±4 g, 11 ±8 g.
    let fs_xl = [
        (AccelRange::G2, 0b00),
        (AccelRange::G16, 0b01),
        (AccelRange::G4, 0b10),
        (AccelRange::G8, 0b11),
    ];
    for (range, code) in fs_xl {
        let config = Lsm6ds3trcConfig {
            accel_range: range,
            ..Lsm6ds3trcConfig::HAR_52HZ
        };
        assert_eq!(config.ctrl1_xl(), 0b0011_0000 | code << 2, "{range:?}");
    }
    // CTRL2_G FS_G (bits 3:2): 00 245/250, 01 500, 10 1000, 11 2000; FS_125 is bit 1.
    let fs_g = [
        (GyroRange::Dps125, 0b0010),
        (GyroRange::Dps250, 0b0000),
        (GyroRange::Dps500, 0b0100),
        (GyroRange::Dps1000, 0b1000),
        (GyroRange::Dps2000, 0b1100),
    ];
    for (range, code) in fs_g {
        let config = Lsm6ds3trcConfig {
            gyro_range: range,
            output_data_rate: OutputDataRate::Hz104,
            ..Lsm6ds3trcConfig::HAR_52HZ
        };
        assert_eq!(config.ctrl2_g(), 0b0100_0000 | code, "{range:?}");
    }
    // ODR codes 0001 (12.5 Hz) … 1010 (6.66 kHz), bits 7:4.
    let odr = [
        (OutputDataRate::Hz12_5, 0b0001, 12.5),
        (OutputDataRate::Hz26, 0b0010, 26.0),
        (OutputDataRate::Hz52, 0b0011, 52.0),
        (OutputDataRate::Hz104, 0b0100, 104.0),
        (OutputDataRate::Hz208, 0b0101, 208.0),
        (OutputDataRate::Hz416, 0b0110, 416.0),
        (OutputDataRate::Hz833, 0b0111, 833.0),
        (OutputDataRate::Hz1660, 0b1000, 1660.0),
        (OutputDataRate::Hz3330, 0b1001, 3330.0),
        (OutputDataRate::Hz6660, 0b1010, 6660.0),
    ];
    for (rate, code, hz) in odr {
        assert_eq!(rate.bits(), code << 4);
        assert_eq!(rate.hz(), hz);
    }
}

#[test]
fn wrong_who_am_i_is_reported_with_the_value_and_nothing_is_written() {
    // 0x69 is the LSM6DS3 (non-TR-C) id: a plausible wrong part.
    let err = on_bus(
        &[Transaction::write_read(A, vec![WHO_AM_I], vec![0x69])],
        |i2c| driver(i2c, Lsm6ds3trcConfig::HAR_52HZ).init().unwrap_err(),
    );
    assert_wrong_chip_id(
        err,
        ImuPart::Lsm6ds3trc,
        0x69,
        "LSM6DS3TR-C: WHO_AM_I reads 0x69, expected 0x6a",
    );
}

#[test]
fn a_nack_on_a_write_stops_init_with_the_bus_error() {
    let expected = [
        Transaction::write_read(A, vec![WHO_AM_I], vec![0x6A]),
        Transaction::write(A, vec![0x11, 0x00]).with_error(DATA_NACK),
    ];
    let result = on_bus(&expected, |i2c| {
        driver(i2c, Lsm6ds3trcConfig::HAR_52HZ).init()
    });
    assert_eq!(result, Err(SensorError::Bus(DATA_NACK)));

    // No device at all: the address NACKs on the first transfer.
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let expected = [Transaction::write_read(A, vec![WHO_AM_I], vec![0]).with_error(nack)];
    let result = on_bus(&expected, |i2c| {
        driver(i2c, Lsm6ds3trcConfig::HAR_52HZ).init()
    });
    assert_eq!(result, Err(SensorError::Bus(nack)));
}

#[test]
fn a_reset_that_never_completes_is_an_error_not_a_hang() {
    let mut expected = reset_writes();
    for _ in 0..RESET_POLLS {
        expected.push(Transaction::write_read(A, vec![CTRL3_C], vec![0b0000_0101]));
    }
    let result = on_bus(&expected, |i2c| {
        driver(i2c, Lsm6ds3trcConfig::HAR_52HZ).init()
    });
    assert_eq!(
        result,
        Err(SensorError::ResetTimeout { polls: RESET_POLLS })
    );
}

/// Gyro x y z then accelerometer x y z, little-endian, as OUTX_L_G … OUTZ_H_XL.
fn burst(gyro: [i16; 3], acc: [i16; 3]) -> Vec<u8> {
    le_burst(gyro, acc)
}

#[test]
fn data_ready_needs_both_flags_then_one_burst_read() {
    let gyro = [100, -200, 300];
    let acc = [8197, -4098, 1];
    // Nothing, XLDA only, then TDA GDA XLDA.
    let mut expected = status_polls(A, STATUS_REG, &[0b000, 0b001, 0b111]);
    expected.push(Transaction::write_read(A, vec![OUTX_L_G], burst(gyro, acc)));
    let reading = on_bus(&expected, |i2c| {
        driver(i2c, Lsm6ds3trcConfig::HAR_52HZ)
            .wait_and_read(4)
            .unwrap()
    });
    assert_eq!(reading.raw.gyro, gyro);
    assert_eq!(reading.raw.acc, acc);
    assert!(!reading.saturated);
}

#[test]
fn no_data_ready_within_the_polls_is_a_timeout() {
    // Nothing, GDA only, TDA only.
    let expected = status_polls(A, STATUS_REG, &[0b000, 0b010, 0b100]);
    let result = on_bus(&expected, |i2c| {
        driver(i2c, Lsm6ds3trcConfig::HAR_52HZ).wait_and_read(3)
    });
    assert_eq!(result, Err(SensorError::Timeout { polls: 3 }));
}

#[test]
fn counts_scale_with_the_datasheet_sensitivities() {
    // DS11937 Table 3: LA_So in mg/LSB, G_So in mdps/LSB.
    let accel = [
        (AccelRange::G2, 0.061),
        (AccelRange::G4, 0.122),
        (AccelRange::G8, 0.244),
        (AccelRange::G16, 0.488),
    ];
    let gyro = [
        (GyroRange::Dps125, 4.375),
        (GyroRange::Dps250, 8.75),
        (GyroRange::Dps500, 17.5),
        (GyroRange::Dps1000, 35.0),
        (GyroRange::Dps2000, 70.0),
    ];
    let acc_counts = [8197i16, -16393, 1];
    let gyro_counts = [1000i16, -28571, 7];
    // Every gyroscope range once, every accelerometer range at least once.
    for (i, (gyro_range, mdps_per_lsb)) in gyro.into_iter().enumerate() {
        let (accel_range, mg_per_lsb) = accel[i % accel.len()];
        let config = Lsm6ds3trcConfig {
            accel_range,
            gyro_range,
            ..Lsm6ds3trcConfig::HAR_52HZ
        };
        let reading = read_once(burst(gyro_counts, acc_counts), config);
        assert_scaled(
            &reading.sample,
            acc_counts,
            |c| c * mg_per_lsb / 1000.0,
            gyro_counts,
            |c| c * mdps_per_lsb / 1000.0 * std::f64::consts::PI / 180.0,
            &gyro_range,
        );
    }
    // The example from the issue: +1 g is 8197 counts at ±4 g (0.122 mg/LSB), 1 rad/s
    // is 1637 counts at 1000 dps (35 mdps/LSB).
    let reading = read_once(
        burst([1637, 0, 0], [0, 0, 8197]),
        Lsm6ds3trcConfig::HAR_52HZ,
    );
    assert!((reading.sample.acc_g[2] - 1.0).abs() < 1e-3);
    assert!((reading.sample.gyro_rad_s[0] - 1.0).abs() < 1e-3);
}

#[test]
fn an_axis_at_the_end_of_the_range_is_saturated() {
    for (gyro, acc, saturated) in [
        ([0, 0, 0], [0, 0, i16::MAX], true),
        ([i16::MIN, 0, 0], [0, 0, 0], true),
        ([i16::MAX - 1, i16::MIN + 1, 0], [-1, 1, 0], false),
    ] {
        let reading = read_once(burst(gyro, acc), Lsm6ds3trcConfig::HAR_52HZ);
        assert_eq!(reading.saturated, saturated, "{gyro:?} {acc:?}");
    }
}
