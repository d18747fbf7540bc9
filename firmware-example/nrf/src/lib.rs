//! What every nRF52840 board shares: start-up (clocks, interrupt priorities), the BLE link
//! (Nordic's SoftDevice Controller under the trouble host), the USB CDC-ACM serial port,
//! an IMU woken by its data-ready pin, and [`run`], the main task around edge-runtime's
//! device loop.
//!
//! A board crate only names its parts and pins:
//!
//! ```ignore
//! let p = vsc_fw_nrf::init();
//! let shared = vsc_fw_nrf::shared_peripherals!(p);
//! let i2c = vsc_fw_nrf::i2c(p.TWISPI0, sda, scl);
//! let mut imu = InterruptImu::new(Lsm6ds3trc::new(i2c, …), Input::new(int1, Pull::Down));
//! vsc_fw_nrf::run(spawner, shared, &mut imu, "XIAO nRF52840 Sense").await
//! ```
//!
//! Interrupt priorities: the MPSL runs the radio at priority 0 and its own low-priority
//! work at 4 ([`nrf_mpsl`]); everything of ours (GPIOTE, the RTC1 time driver, TWIM, USBD,
//! RNG) runs at [`APP_PRIORITY`], so it never delays a radio event.
#![no_std]

use defmt::{error, info, warn};
use edge_runtime::device::{self, SampleSource};
use edge_runtime::encoder::Encoder;
use edge_runtime::preprocess::ChannelSet;
use edge_runtime::stream::TimedPipeline;
use embassy_executor::Spawner;
use embassy_nrf::interrupt::{InterruptExt, Priority};
use embassy_nrf::peripherals::{self, RNG, TWISPI0, USBD};
use embassy_nrf::{Peri, bind_interrupts, rng, twim, usb};
// The global logger, panic handler and critical section of every nRF board.
use {defmt_rtt as _, panic_probe as _};

pub mod ble;
pub mod imu;
pub mod link;
pub mod usb_serial;

pub use imu::{InterruptImu, TimeoutI2c};

/// Priority of every interrupt the application owns (the MPSL's are 0 and 4).
pub const APP_PRIORITY: Priority = Priority::P2;

bind_interrupts!(pub struct Irqs {
    RNG => rng::InterruptHandler<RNG>;
    EGU0_SWI0 => nrf_mpsl::LowPrioInterruptHandler;
    // The MPSL's clock driver and USB's VBUS detection share the POWER/CLOCK interrupt.
    CLOCK_POWER => nrf_mpsl::ClockInterruptHandler, usb::vbus_detect::InterruptHandler;
    RADIO => nrf_mpsl::HighPrioInterruptHandler;
    TIMER0 => nrf_mpsl::HighPrioInterruptHandler;
    RTC0 => nrf_mpsl::HighPrioInterruptHandler;
    USBD => usb::InterruptHandler<USBD>;
    TWISPI0 => twim::InterruptHandler<TWISPI0>;
});

/// Starts the HAL with the clocks on their internal sources (the MPSL calibrates the RC
/// low-frequency oscillator; neither board is known to fit a 32 kHz crystal) and our
/// interrupts below the radio's.
pub fn init() -> embassy_nrf::Peripherals {
    let mut config = embassy_nrf::config::Config::default();
    config.gpiote_interrupt_priority = APP_PRIORITY;
    config.time_interrupt_priority = APP_PRIORITY;
    let p = embassy_nrf::init(config);
    for irq in [
        embassy_nrf::interrupt::TWISPI0,
        embassy_nrf::interrupt::USBD,
        embassy_nrf::interrupt::RNG,
    ] {
        irq.set_priority(APP_PRIORITY);
    }
    p
}

/// The peripherals [`run`] needs: the MPSL's (RTC0, TIMER0, TEMP, PPI channels 19, 30,
/// 31), the SoftDevice Controller's (PPI channels 17, 18, 20–29), the RNG and USBD. The
/// board keeps the rest (its TWIM, pins).
pub struct Shared {
    pub rtc0: Peri<'static, peripherals::RTC0>,
    pub timer0: Peri<'static, peripherals::TIMER0>,
    pub temp: Peri<'static, peripherals::TEMP>,
    pub ppi_ch17: Peri<'static, peripherals::PPI_CH17>,
    pub ppi_ch18: Peri<'static, peripherals::PPI_CH18>,
    pub ppi_ch19: Peri<'static, peripherals::PPI_CH19>,
    pub ppi_ch20: Peri<'static, peripherals::PPI_CH20>,
    pub ppi_ch21: Peri<'static, peripherals::PPI_CH21>,
    pub ppi_ch22: Peri<'static, peripherals::PPI_CH22>,
    pub ppi_ch23: Peri<'static, peripherals::PPI_CH23>,
    pub ppi_ch24: Peri<'static, peripherals::PPI_CH24>,
    pub ppi_ch25: Peri<'static, peripherals::PPI_CH25>,
    pub ppi_ch26: Peri<'static, peripherals::PPI_CH26>,
    pub ppi_ch27: Peri<'static, peripherals::PPI_CH27>,
    pub ppi_ch28: Peri<'static, peripherals::PPI_CH28>,
    pub ppi_ch29: Peri<'static, peripherals::PPI_CH29>,
    pub ppi_ch30: Peri<'static, peripherals::PPI_CH30>,
    pub ppi_ch31: Peri<'static, peripherals::PPI_CH31>,
    pub rng: Peri<'static, RNG>,
    pub usbd: Peri<'static, USBD>,
}

/// Moves the [`Shared`] peripherals out of `embassy_nrf::init()`'s result, leaving the
/// board's own in it.
#[macro_export]
macro_rules! shared_peripherals {
    ($p:ident) => {
        $crate::Shared {
            rtc0: $p.RTC0,
            timer0: $p.TIMER0,
            temp: $p.TEMP,
            ppi_ch17: $p.PPI_CH17,
            ppi_ch18: $p.PPI_CH18,
            ppi_ch19: $p.PPI_CH19,
            ppi_ch20: $p.PPI_CH20,
            ppi_ch21: $p.PPI_CH21,
            ppi_ch22: $p.PPI_CH22,
            ppi_ch23: $p.PPI_CH23,
            ppi_ch24: $p.PPI_CH24,
            ppi_ch25: $p.PPI_CH25,
            ppi_ch26: $p.PPI_CH26,
            ppi_ch27: $p.PPI_CH27,
            ppi_ch28: $p.PPI_CH28,
            ppi_ch29: $p.PPI_CH29,
            ppi_ch30: $p.PPI_CH30,
            ppi_ch31: $p.PPI_CH31,
            rng: $p.RNG,
            usbd: $p.USBD,
        }
    };
}

/// The IMU's I²C bus on TWIM0 at 400 kHz, every transfer bounded by
/// [`imu::I2C_TIMEOUT_MS`] (a sensor holding the clock low must not hang the loop).
pub fn i2c(
    twim: Peri<'static, TWISPI0>,
    sda: Peri<'static, impl embassy_nrf::gpio::Pin>,
    scl: Peri<'static, impl embassy_nrf::gpio::Pin>,
) -> TimeoutI2c {
    let mut config = twim::Config::default();
    config.frequency = twim::Frequency::K400;
    // Both boards have external pull-ups on their sensor bus.
    config.sda_pullup = false;
    config.scl_pullup = false;
    // Every write is from RAM (the drivers copy register values into small buffers), so
    // the TWIM needs no bounce buffer for flash data.
    TimeoutI2c::new(twim::Twim::new(twim, Irqs, sda, scl, config, &mut []))
}

/// The advertised name and USB serial number, `VSC-` and 6 hex digits of FICR DEVICEID.
pub fn device_name() -> edge_runtime::ble::DeviceName {
    let ficr = embassy_nrf::pac::FICR;
    let id = u64::from(ficr.deviceid(1).read()) << 32 | u64::from(ficr.deviceid(0).read());
    edge_runtime::ble::device_name(id)
}

/// The main task of every nRF board: logs what it booted with, starts BLE and USB, and
/// runs the device loop on `source` forever. With an invalid or missing model it still
/// streams (code-less) frames and keeps both links up.
pub async fn run<S: SampleSource>(
    spawner: Spawner,
    shared: Shared,
    source: &mut S,
    board: &'static str,
) -> ! {
    let name = device_name();
    info!(
        "vsc-fw {=str} on {=str}, advertising as {=str}",
        env!("CARGO_PKG_VERSION"),
        board,
        name.as_str()
    );
    let model = vsc_fw_common::model();
    match &model {
        Ok(blob) => info!(
            "model: {=usize} B, crc {=u32:#010x}, M={=usize} H={=usize} J={=usize}",
            blob.as_bytes().len(),
            blob.crc(),
            blob.input_dim(),
            blob.hidden_dim(),
            blob.latent_dim()
        ),
        Err(e) => error!(
            "model invalid: {=str}; frames carry no code (flash one with `cargo xtask flash --model-only`)",
            e.reason()
        ),
    }

    let Shared {
        rtc0,
        timer0,
        temp,
        ppi_ch17,
        ppi_ch18,
        ppi_ch19,
        ppi_ch20,
        ppi_ch21,
        ppi_ch22,
        ppi_ch23,
        ppi_ch24,
        ppi_ch25,
        ppi_ch26,
        ppi_ch27,
        ppi_ch28,
        ppi_ch29,
        ppi_ch30,
        ppi_ch31,
        rng,
        usbd,
    } = shared;
    let mpsl = ble::start_mpsl(
        spawner,
        nrf_mpsl::Peripherals::new(rtc0, timer0, temp, ppi_ch19, ppi_ch30, ppi_ch31),
    );
    match mpsl {
        Some(mpsl) => {
            let sdc = nrf_sdc::Peripherals::new(
                ppi_ch17, ppi_ch18, ppi_ch20, ppi_ch21, ppi_ch22, ppi_ch23, ppi_ch24, ppi_ch25,
                ppi_ch26, ppi_ch27, ppi_ch28, ppi_ch29,
            );
            ble::start(spawner, mpsl, sdc, rng, name.clone());
            usb_serial::start(spawner, usbd, Some(mpsl), name);
        }
        None => {
            warn!("no radio: the MPSL did not start; USB serial only");
            usb_serial::start(spawner, usbd, None, name);
        }
    }

    let channels = model.as_ref().map_or(ChannelSet::ALL, |b| b.channels());
    let mut stage = TimedPipeline::new(channels, model.ok().map(Encoder::new));
    let mut sink = link::Links::new();
    loop {
        // Only a replayed source ever ends; a real IMU runs forever.
        let stats = device::run(source, &mut stage, &mut sink).await;
        warn!(
            "the sample source ended after {=u32} samples",
            stats.samples
        );
    }
}
