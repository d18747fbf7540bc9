//! USB CDC-ACM: the wired fallback. The same wire-frame byte stream as BLE goes to a
//! serial port (`/dev/ttyACM0`), read by `vsc listen /dev/ttyACM0`, while a terminal holds
//! it open (DTR set).

use core::sync::atomic::Ordering;

use defmt::{error, info};
use edge_runtime::ble::DeviceName;
use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_nrf::Peri;
use embassy_nrf::peripherals::USBD;
use embassy_nrf::usb::Driver;
use embassy_nrf::usb::vbus_detect::HardwareVbusDetect;
use embassy_time::{Duration, with_timeout};
use embassy_usb::class::cdc_acm::{CdcAcmClass, State};
use embassy_usb::{Builder, Config};
use nrf_mpsl::MultiprotocolServiceLayer;
use static_cell::StaticCell;

use crate::Irqs;
use crate::link::{USB_BYTES, USB_OPEN};

/// pid.codes' vendor id for open-source projects and its test product id: the board
/// enumerates as a plain CDC-ACM device, which every OS binds without a driver.
pub const USB_VID: u16 = 0x1209;
pub const USB_PID: u16 = 0x0001;
/// Full-speed bulk endpoint size.
const MAX_PACKET: u16 = 64;
/// Longest wait for the host to take one packet.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

type UsbDriver = Driver<'static, HardwareVbusDetect>;

/// Spawns the USB task. `mpsl` keeps the crystal oscillator on that USB needs (the MPSL
/// owns the clocks and would otherwise stop it between radio events).
pub fn start(
    spawner: Spawner,
    usbd: Peri<'static, USBD>,
    mpsl: Option<&'static MultiprotocolServiceLayer<'static>>,
    name: DeviceName,
) {
    let driver = Driver::new(usbd, Irqs, HardwareVbusDetect::new(Irqs));
    match usb_task(driver, mpsl, name) {
        Ok(task) => spawner.spawn(task),
        Err(_) => error!("USB: its task could not be spawned"),
    }
}

#[embassy_executor::task]
async fn usb_task(
    driver: UsbDriver,
    mpsl: Option<&'static MultiprotocolServiceLayer<'static>>,
    name: DeviceName,
) {
    // Held for the task's (the program's) life.
    let _hfclk = match mpsl {
        Some(mpsl) => match mpsl.request_hfclk().await {
            Ok(hfclk) => {
                let _ = nrf_mpsl::Hfclk::wait().await;
                Some(hfclk)
            }
            Err(e) => {
                error!("USB: no crystal clock: {}", e);
                None
            }
        },
        None => None,
    };
    static NAME: StaticCell<DeviceName> = StaticCell::new();
    let name: &'static DeviceName = NAME.init(name);
    let mut config = Config::new(USB_VID, USB_PID);
    config.manufacturer = Some("vsc");
    config.product = Some("VSC sparse codes");
    config.serial_number = Some(name.as_str());
    config.max_power = 100;
    config.max_packet_size_0 = 64;

    static CONFIG_DESCRIPTOR: StaticCell<[u8; 256]> = StaticCell::new();
    static BOS_DESCRIPTOR: StaticCell<[u8; 256]> = StaticCell::new();
    static CONTROL_BUF: StaticCell<[u8; 64]> = StaticCell::new();
    static STATE: StaticCell<State> = StaticCell::new();
    let mut builder = Builder::new(
        driver,
        config,
        CONFIG_DESCRIPTOR.init([0; 256]),
        BOS_DESCRIPTOR.init([0; 256]),
        &mut [],
        CONTROL_BUF.init([0; 64]),
    );
    let mut class = CdcAcmClass::new(&mut builder, STATE.init(State::new()), MAX_PACKET);
    let mut usb = builder.build();
    join(usb.run(), async {
        let mut packet = [0u8; MAX_PACKET as usize];
        loop {
            class.wait_connection().await;
            info!("USB: serial port opened");
            USB_BYTES.clear();
            USB_OPEN.store(true, Ordering::Relaxed);
            loop {
                let n = USB_BYTES.read(&mut packet).await;
                // A closed terminal stops reading and the packet would wait forever:
                // give up on it after a while and look at DTR again.
                match with_timeout(WRITE_TIMEOUT, class.write_packet(&packet[..n])).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) if !class.dtr() => break,
                    Err(_) => {}
                }
            }
            USB_OPEN.store(false, Ordering::Relaxed);
            info!("USB: serial port closed");
        }
    })
    .await;
}
