//! Seeed XIAO nRF52840 Sense: its on-board LSM6DS3TR-C at 52 Hz → the shared device loop
//! (resampled to 50 Hz) → BLE and USB serial. Flash with `cargo xtask flash --board
//! xiao-sense` (SWD probe) or `cargo xtask uf2 --board xiao-sense` (its UF2 bootloader).
//!
//! Pins, from Zephyr's board file `boards/seeed/xiao_ble/xiao_ble_nrf52840_sense.dts` and
//! Seeed's Arduino variant (`variants/Seeed_XIAO_nRF52840_Sense/variant.{h,cpp}`):
//! - P1.08 powers the IMU (`lsm6ds3tr-c-en` regulator, high drive, 3 ms start-up;
//!   `PIN_LSM6DS3TR_C_POWER` = D15 = P1.08);
//! - internal I²C, not on the headers: SDA P0.07, SCL P0.27 (D17 / D16), the IMU at 0x6A;
//! - INT1 on P0.11 (`irq-gpios = <&gpio0 11 GPIO_ACTIVE_HIGH>`, `PIN_LSM6DS3TR_C_INT1`).
#![no_std]
#![no_main]

use edge_runtime::sensor::{LSM6DS3TRC_ADDRESS, Lsm6ds3trc, Lsm6ds3trcConfig};
use embassy_executor::Spawner;
use embassy_nrf::gpio::{Input, Level, Output, OutputDrive, Pull};
use embassy_time::Timer;
use vsc_fw_nrf::InterruptImu;

const BOARD: &str = "Seeed XIAO nRF52840 Sense";
/// The regulator's start-up (3 ms in Zephyr's board file) plus the LSM6DS3TR-C's boot
/// time (15 ms, datasheet "turn-on time"), with margin.
const IMU_POWER_UP_MS: u64 = 25;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = vsc_fw_nrf::init();
    let shared = vsc_fw_nrf::shared_peripherals!(p);
    // Held for the program's life: dropping it would switch the IMU off.
    let _imu_power = Output::new(p.P1_08, Level::High, OutputDrive::HighDrive);
    Timer::after_millis(IMU_POWER_UP_MS).await;
    let i2c = vsc_fw_nrf::i2c(p.TWISPI0, p.P0_07, p.P0_27);
    let imu = Lsm6ds3trc::new(i2c, LSM6DS3TRC_ADDRESS, Lsm6ds3trcConfig::HAR_52HZ);
    // Push-pull, active high: the pull-down only defines the level while unpowered.
    let data_ready = Input::new(p.P0_11, Pull::Down);
    let mut source = InterruptImu::new(imu, data_ready);
    vsc_fw_nrf::run(spawner, shared, &mut source, BOARD).await
}
