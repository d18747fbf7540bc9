//! Arduino Nano 33 BLE Sense Rev2: its on-board BMI270 at 50 Hz → the shared device loop
//! → BLE and USB serial. Flash with `cargo xtask flash --board nano33-ble-sense-rev2`
//! (SWD probe on the test pads; the Arduino bootloader at 0x0 stays).
//!
//! Pins, from Zephyr's board files `boards/arduino/nano_33_ble/` (`-common.dtsi`,
//! `-pinctrl.dtsi`, `_nrf52840_sense_rev2.overlay`) and Arduino's BMI270 library:
//! - P0.22 powers the sensors (`vdd_env` regulator, high drive on Rev2, 5 ms start-up;
//!   Arduino `PIN_ENABLE_SENSORS_3V3`);
//! - P1.00 powers the I²C pull-ups (`pull-up-gpios`; Arduino `PIN_ENABLE_I2C_PULLUP`);
//! - internal I²C (`i2c1`): SDA P0.14, SCL P0.15, the BMI270 at 0x68;
//! - BMI270 INT1 on P0.11 (`Arduino_BMI270_BMM150`, `BMI270.cpp`: `BMI270_INT1 = p11` for
//!   `TARGET_ARDUINO_NANO33BLE`).
#![no_std]
#![no_main]

use edge_runtime::sensor::{BMI270_ADDRESS, Bmi270, Bmi270Config};
use embassy_executor::Spawner;
use embassy_nrf::gpio::{Input, Level, Output, OutputDrive, Pull};
use embassy_time::{Delay, Timer};
use vsc_fw_nrf::InterruptImu;

const BOARD: &str = "Arduino Nano 33 BLE Sense Rev2";
/// The sensor rail's start-up (5 ms in Zephyr's board file) plus the BMI270's power-on
/// time (datasheet: 2 ms), with margin.
const SENSOR_POWER_UP_MS: u64 = 10;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = vsc_fw_nrf::init();
    let shared = vsc_fw_nrf::shared_peripherals!(p);
    // Both held for the program's life: dropping them would switch the sensors off.
    let _sensor_power = Output::new(p.P0_22, Level::High, OutputDrive::HighDrive);
    let _pull_ups = Output::new(p.P1_00, Level::High, OutputDrive::Standard);
    Timer::after_millis(SENSOR_POWER_UP_MS).await;
    let i2c = vsc_fw_nrf::i2c(p.TWISPI0, p.P0_14, p.P0_15);
    // The configuration upload at init needs short delays (µs): the blocking delay of the
    // time driver is enough for a one-off.
    let imu = Bmi270::new(i2c, Delay, BMI270_ADDRESS, Bmi270Config::HAR_50HZ);
    let data_ready = Input::new(p.P0_11, Pull::Down);
    let mut source = InterruptImu::new(imu, data_ready);
    vsc_fw_nrf::run(spawner, shared, &mut source, BOARD).await
}
