//! BMI270 driver against embedded-hal-mock I²C and delay transactions. Register addresses,
//! values and waits are spelled out from the datasheet and Bosch's Sensor API here, not
//! taken from the driver's constants, so a wrong constant fails a test.

use edge_runtime::sensor::bmi270::{
    AccelRange, GyroRange, INIT_POLLS, OutputDataRate, bosch_config_file,
};
use edge_runtime::sensor::{
    BMI270_ADDRESS, Bmi270, Bmi270Config, Imu, ImuPart, RawAxes, Reading, SensorError,
};
use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as Wait};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

mod sensor_support;
use sensor_support::{
    DATA_NACK, assert_scaled, assert_wrong_chip_id, le_burst, on_bus_and_delay, status_polls,
};

const A: u8 = 0x68;
const CHIP_ID: u8 = 0x00;
const STATUS: u8 = 0x03;
const DATA_8: u8 = 0x0C;
const INTERNAL_STATUS: u8 = 0x21;
const INIT_CTRL: u8 = 0x59;
const INIT_ADDR_0: u8 = 0x5B;
const INIT_DATA: u8 = 0x5E;
/// Bytes per upload burst the driver uses.
const BURST: usize = 64;

/// Expected bus and delay traffic of `init`, up to and including the `INIT_CTRL` = 1
/// write: chip id, soft reset, power save off, the upload.
fn upload(file: &[u8]) -> (Vec<Transaction>, Vec<Wait>) {
    let mut bus = vec![
        Transaction::write_read(A, vec![CHIP_ID], vec![0x24]),
        Transaction::write(A, vec![0x7E, 0xB6]), // CMD: soft reset
        Transaction::write(A, vec![0x7C, 0x00]), // PWR_CONF: adv_power_save off
        Transaction::write(A, vec![INIT_CTRL, 0x00]),
    ];
    let mut waits = vec![Wait::delay_us(2000), Wait::delay_us(450), Wait::delay_us(2)];
    for (i, chunk) in file.chunks(BURST).enumerate() {
        // Bosch's API: word address = byte index / 2, bits 3:0 then bits 11:4.
        let word = i * BURST / 2;
        bus.push(Transaction::write(
            A,
            vec![INIT_ADDR_0, (word & 0x0F) as u8, (word >> 4) as u8],
        ));
        let mut data = vec![INIT_DATA];
        data.extend_from_slice(chunk);
        bus.push(Transaction::write(A, data));
        waits.extend([Wait::delay_us(2), Wait::delay_us(2)]);
    }
    bus.push(Transaction::write(A, vec![INIT_CTRL, 0x01]));
    waits.push(Wait::delay_us(2));
    (bus, waits)
}

/// The configuration writes after "init ok" for 50 Hz, ±4 g, ±1000 dps.
fn configure_50hz(bus: &mut Vec<Transaction>, waits: &mut Vec<Wait>) {
    bus.extend([
        // ACC_CONF: acc_filter_perf 1, acc_bwp 010 (normal), acc_odr 0111 (50 Hz).
        Transaction::write(A, vec![0x40, 0b1010_0111]),
        Transaction::write(A, vec![0x41, 0x01]), // ACC_RANGE: ±4 g
        // GYR_CONF: filter_perf 1, noise_perf 1, gyr_bwp 10 (normal), gyr_odr 0111 (50 Hz).
        Transaction::write(A, vec![0x42, 0b1110_0111]),
        Transaction::write(A, vec![0x43, 0x01]), // GYR_RANGE: ±1000 dps
        // INT1_IO_CTRL: output_en (bit 3), lvl active high (bit 1), push-pull.
        Transaction::write(A, vec![0x53, 0b0000_1010]),
        Transaction::write(A, vec![0x58, 0b0000_0100]), // INT_MAP_DATA: drdy_int1
        Transaction::write(A, vec![0x7D, 0b0000_0110]), // PWR_CTRL: acc_en | gyr_en
    ]);
    waits.extend(std::iter::repeat_n(Wait::delay_us(2), 7));
}

fn poll(status: u8) -> ([Transaction; 1], [Wait; 1]) {
    (
        [Transaction::write_read(
            A,
            vec![INTERNAL_STATUS],
            vec![status],
        )],
        [Wait::delay_us(1000)],
    )
}

fn driver(i2c: &Mock, delay: &CheckedDelay, config: Bmi270Config) -> Bmi270<Mock, CheckedDelay> {
    Bmi270::new(i2c.clone(), delay.clone(), BMI270_ADDRESS, config)
}

/// `init` of a 50 Hz driver uploading `file`, on mocks expecting exactly `bus` and
/// `waits`.
fn init(
    bus: &[Transaction],
    waits: &[Wait],
    file: &'static [u8],
) -> Result<(), SensorError<embedded_hal::i2c::ErrorKind>> {
    on_bus_and_delay(bus, waits, |i2c, delay| {
        driver(i2c, delay, Bmi270Config::HAR_50HZ)
            .with_config_file(file)
            .init()
    })
}

/// One `read` (no data-ready poll, no wait) of a burst returning `bytes`.
fn read_once(bytes: Vec<u8>, config: Bmi270Config) -> Reading<RawAxes> {
    let expected = [Transaction::write_read(A, vec![DATA_8], bytes)];
    on_bus_and_delay(&expected, &[], |i2c, delay| {
        driver(i2c, delay, config).read().unwrap()
    })
}

/// A short stand-in configuration file: four bursts, the last one partial.
static SMALL_FILE: [u8; 200] = {
    let mut file = [0u8; 200];
    let mut i = 0;
    while i < file.len() {
        file[i] = (i * 7 + 3) as u8;
        i += 1;
    }
    file
};

#[test]
fn init_uploads_bosch_config_file_and_configures_50_hz() {
    let file = bosch_config_file();
    assert_eq!(file.len(), 8192);
    let (mut bus, mut waits) = upload(file);
    // The last burst lands at word 127 × 32 = 4064: INIT_ADDR_1 = 254.
    assert_eq!(
        bus[bus.len() - 3],
        Transaction::write(A, vec![INIT_ADDR_0, 0x00, 254])
    );
    // "not_init" twice, then "init ok" (with the odr_50hz_error flag, bit 6, which only
    // concerns features this driver does not use).
    for status in [0x00, 0x00, 0x41] {
        let (b, w) = poll(status);
        bus.extend(b);
        waits.extend(w);
    }
    configure_50hz(&mut bus, &mut waits);
    on_bus_and_delay(&bus, &waits, |i2c, delay| {
        let mut imu = driver(i2c, delay, Bmi270Config::HAR_50HZ);
        assert_eq!(Imu::init(&mut imu), Ok(()));
        assert_eq!(imu.output_rate_hz(), 50.0);
        assert_eq!(imu.part(), ImuPart::Bmi270);
    });
}

#[test]
fn upload_addresses_each_burst_by_its_word_offset() {
    let (mut bus, mut waits) = upload(&SMALL_FILE);
    // 64 + 64 + 64 + 8 bytes at words 0, 32, 64, 96: INIT_ADDR_1 = word >> 4.
    assert_eq!(bus.len(), 4 + 2 * 4 + 1);
    for (i, addr_1) in [0u8, 2, 4, 6].into_iter().enumerate() {
        assert_eq!(
            bus[4 + 2 * i],
            Transaction::write(A, vec![INIT_ADDR_0, 0x00, addr_1])
        );
    }
    let mut last = vec![INIT_DATA];
    last.extend_from_slice(&SMALL_FILE[192..]);
    assert_eq!(bus[11], Transaction::write(A, last));
    let (b, w) = poll(0x01);
    bus.extend(b);
    waits.extend(w);
    configure_50hz(&mut bus, &mut waits);
    assert_eq!(init(&bus, &waits, &SMALL_FILE), Ok(()));
}

#[test]
fn wrong_chip_id_is_reported_with_the_value_and_nothing_is_written() {
    // 0x27 is the BMI260: a plausible wrong part.
    let bus = [Transaction::write_read(A, vec![CHIP_ID], vec![0x27])];
    let err = init(&bus, &[], bosch_config_file()).unwrap_err();
    assert_wrong_chip_id(
        err,
        ImuPart::Bmi270,
        0x27,
        "BMI270: CHIP_ID reads 0x27, expected 0x24",
    );
}

#[test]
fn a_nack_on_a_write_stops_init_with_the_bus_error() {
    // The second upload burst is not acknowledged.
    let (bus, waits) = upload(&SMALL_FILE);
    let mut bus = bus[..8].to_vec();
    let failing = bus.pop().unwrap().with_error(DATA_NACK);
    bus.push(failing);
    // Waits: reset, power save, INIT_CTRL, first address + burst, second address; none
    // after the failed write.
    assert_eq!(
        init(&bus, &waits[..6], &SMALL_FILE),
        Err(SensorError::Bus(DATA_NACK))
    );

    // The soft-reset command itself NACKed.
    let bus = [
        Transaction::write_read(A, vec![CHIP_ID], vec![0x24]),
        Transaction::write(A, vec![0x7E, 0xB6]).with_error(DATA_NACK),
    ];
    assert_eq!(
        init(&bus, &[], bosch_config_file()),
        Err(SensorError::Bus(DATA_NACK))
    );
}

#[test]
fn init_status_that_never_reports_ok_times_out() {
    let (mut bus, mut waits) = upload(&SMALL_FILE);
    for _ in 0..INIT_POLLS {
        let (b, w) = poll(0x00);
        bus.extend(b);
        waits.extend(w);
    }
    assert_eq!(
        init(&bus, &waits, &SMALL_FILE),
        Err(SensorError::InitFailed { internal_status: 0 })
    );
    // At least the datasheet's 20 ms of polling (1 ms apart) before giving up.
    const { assert!(INIT_POLLS * 1000 >= 20_000) };
}

#[test]
fn an_init_error_message_stops_polling_at_once() {
    let (mut bus, mut waits) = upload(&SMALL_FILE);
    for status in [0x00, 0x02] {
        let (b, w) = poll(status);
        bus.extend(b);
        waits.extend(w);
    }
    let err = init(&bus, &waits, &SMALL_FILE).unwrap_err();
    assert_eq!(err, SensorError::InitFailed { internal_status: 2 });
    assert!(
        err.to_string().contains("INTERNAL_STATUS reads 0x02"),
        "{err}"
    );
}

#[test]
fn a_config_file_of_bad_length_is_refused_before_any_transfer() {
    static ODD: [u8; 3] = [1, 2, 3];
    static TOO_LONG: [u8; 8194] = [0; 8194];
    for (file, len) in [(&ODD[..], 3), (&[][..], 0), (&TOO_LONG[..], 8194)] {
        assert_eq!(
            init(&[], &[], file),
            Err(SensorError::ConfigFileLength { len })
        );
    }
}

/// Accelerometer x y z then gyroscope x y z, little-endian, as DATA_8 … DATA_19.
fn burst(acc: [i16; 3], gyro: [i16; 3]) -> Vec<u8> {
    le_burst(acc, gyro)
}

#[test]
fn data_ready_needs_both_flags_then_one_burst_read() {
    let acc = [8192, -4096, 1];
    let gyro = [33, -66, 99];
    // cmd_rdy only, drdy_acc, then drdy_acc and drdy_gyr.
    let mut bus = status_polls(A, STATUS, &[0b0001_0000, 0b1001_0000, 0b1101_0000]);
    bus.push(Transaction::write_read(A, vec![DATA_8], burst(acc, gyro)));
    let reading = on_bus_and_delay(&bus, &[], |i2c, delay| {
        driver(i2c, delay, Bmi270Config::HAR_50HZ)
            .wait_and_read(5)
            .unwrap()
    });
    assert_eq!(reading.raw.acc, acc);
    assert_eq!(reading.raw.gyro, gyro);
    assert!(!reading.saturated);

    // drdy_gyr only, then nothing.
    let bus = status_polls(A, STATUS, &[0b0100_0000, 0b0000_0000]);
    let result = on_bus_and_delay(&bus, &[], |i2c, delay| {
        driver(i2c, delay, Bmi270Config::HAR_50HZ).wait_and_read(2)
    });
    assert_eq!(result, Err(SensorError::Timeout { polls: 2 }));
}

#[test]
fn counts_scale_with_the_datasheet_resolution() {
    // Datasheet: 16-bit output over the full scale, 16384 LSB/g at ±2 g; the gyroscope
    // likewise 2^15 counts per full scale (its table rounds: 16.4 LSB/dps at 2000 dps).
    let accel = [
        (AccelRange::G2, 0u8, 16384.0),
        (AccelRange::G4, 1, 8192.0),
        (AccelRange::G8, 2, 4096.0),
        (AccelRange::G16, 3, 2048.0),
    ];
    let gyro = [
        (GyroRange::Dps2000, 0u8, 2000.0),
        (GyroRange::Dps1000, 1, 1000.0),
        (GyroRange::Dps500, 2, 500.0),
        (GyroRange::Dps250, 3, 250.0),
        (GyroRange::Dps125, 4, 125.0),
    ];
    let acc_counts = [8192i16, -16384, 3];
    let gyro_counts = [1000i16, -32000, 5];
    for (i, (gyro_range, gyro_code, full_scale_dps)) in gyro.into_iter().enumerate() {
        let (accel_range, accel_code, lsb_per_g) = accel[i % accel.len()];
        assert_eq!(accel_range as u8, accel_code);
        assert_eq!(gyro_range as u8, gyro_code);
        let config = Bmi270Config {
            accel_range,
            gyro_range,
            ..Bmi270Config::HAR_50HZ
        };
        let reading = read_once(burst(acc_counts, gyro_counts), config);
        let lsb_per_dps = 32768.0 / full_scale_dps;
        assert_scaled(
            &reading.sample,
            acc_counts,
            |c| c / lsb_per_g,
            gyro_counts,
            |c| c / lsb_per_dps * std::f64::consts::PI / 180.0,
            &gyro_range,
        );
    }
}

#[test]
fn output_data_rate_codes_match_the_datasheet() {
    // acc_odr / gyr_odr: 0x06 25 Hz … 0x0C 1600 Hz.
    for (rate, code, hz) in [
        (OutputDataRate::Hz25, 0x06, 25.0),
        (OutputDataRate::Hz50, 0x07, 50.0),
        (OutputDataRate::Hz100, 0x08, 100.0),
        (OutputDataRate::Hz200, 0x09, 200.0),
        (OutputDataRate::Hz400, 0x0A, 400.0),
        (OutputDataRate::Hz800, 0x0B, 800.0),
        (OutputDataRate::Hz1600, 0x0C, 1600.0),
    ] {
        let config = Bmi270Config {
            output_data_rate: rate,
            ..Bmi270Config::HAR_50HZ
        };
        assert_eq!(config.acc_conf(), 0b1010_0000 | code);
        assert_eq!(config.gyr_conf(), 0b1110_0000 | code);
        assert_eq!(rate.hz(), hz);
    }
}

#[test]
fn an_axis_at_the_end_of_the_range_is_saturated() {
    for (acc, gyro, saturated) in [
        ([i16::MIN, 0, 0], [0, 0, 0], true),
        ([0, 0, 0], [0, i16::MAX, 0], true),
        ([i16::MIN + 1, 0, 0], [0, i16::MAX - 1, 0], false),
    ] {
        let reading = read_once(burst(acc, gyro), Bmi270Config::HAR_50HZ);
        assert_eq!(reading.saturated, saturated, "{acc:?} {gyro:?}");
    }
}
