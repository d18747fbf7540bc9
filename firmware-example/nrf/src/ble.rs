//! The BLE link: Nordic's SoftDevice Controller (`nrf-sdc`, the link layer as a static
//! library linked into the firmware, on the MPSL) under the trouble host, serving edge-
//! runtime's GATT contract ([`edge_runtime::ble`]): one service, one notify
//! characteristic carrying the wire frames, each cut into notifications of the
//! negotiated ATT MTU, and the name `VSC-<device id>` in the advertisement.
//!
//! Nothing here is in the sampling path: the device loop hands frames over through
//! [`link::BLE_FRAMES`] and never waits for the radio.

use core::sync::atomic::Ordering;

use defmt::{error, info, warn};
use edge_runtime::ble::{self as contract, DeviceName};
use embassy_executor::Spawner;
use embassy_futures::select::select;
use embassy_nrf::peripherals::RNG;
use embassy_nrf::{Peri, rng};
use nrf_mpsl::MultiprotocolServiceLayer;
use nrf_sdc::SoftdeviceController;
use static_cell::StaticCell;
use trouble_host::prelude::*;

use crate::Irqs;
use crate::link::{self, BLE_FRAMES};

/// One connection: the host that reads the codes.
const CONNECTIONS: usize = 1;
/// L2CAP channels: signalling and ATT.
const L2CAP_CHANNELS: usize = 2;
/// Link-layer packets queued per direction. A frame is at most two notifications at the
/// largest MTU, one every 1.28 s.
const LL_TX_PACKETS: u8 = 3;
const LL_RX_PACKETS: u8 = 3;
/// Link-layer payload (data length extension): fits one L2CAP packet of the host's pool.
const LL_PAYLOAD: u16 = DefaultPacketPool::MTU as u16;

/// SoftDevice Controller memory for this configuration, from the formulas of nrfxlib's
/// `sdc.h` (one peripheral link with the buffers above, one legacy advertising set,
/// the default filter accept list of 8), plus slack for what a newer library adds: a
/// buffer that is too small fails at start, one that is too large only warns.
const SDC_MEM: usize = {
    let tx = LL_TX_PACKETS as usize * (LL_PAYLOAD as usize + 15) - (27 + 15);
    let rx = LL_RX_PACKETS as usize * (LL_PAYLOAD as usize + 15) - (27 + 15);
    let peripheral_link = 923 + tx + rx;
    let adv_set = (5184 + 31 * 18) / 10;
    let filter_accept_list = 4 + 8 * 8;
    peripheral_link + adv_set + filter_accept_list + 1024
};

/// The frame service ([`contract::SERVICE_UUID`]).
#[gatt_server]
pub struct Server {
    pub codes: CodeService,
}

#[gatt_service(uuid = contract::SERVICE_UUID)]
pub struct CodeService {
    /// The frame stream: notifications only, each at most ATT_MTU − 3 bytes.
    #[characteristic(uuid = contract::NOTIFY_CHAR_UUID, notify)]
    pub frames: heapless::Vec<
        u8,
        { contract::notification_payload_len(DefaultPacketPool::MTU as u16 - 4) },
    >,
}

/// Starts the MPSL (radio scheduler, clocks) and its task; `None` (logged) if it fails.
pub fn start_mpsl(
    spawner: Spawner,
    p: nrf_mpsl::Peripherals<'static>,
) -> Option<&'static MultiprotocolServiceLayer<'static>> {
    use nrf_mpsl::raw;
    let lfclk = raw::mpsl_clock_lfclk_cfg_t {
        source: raw::MPSL_CLOCK_LF_SRC_RC as u8,
        rc_ctiv: raw::MPSL_RECOMMENDED_RC_CTIV as u8,
        rc_temp_ctiv: raw::MPSL_RECOMMENDED_RC_TEMP_CTIV as u8,
        accuracy_ppm: // The calibrated RC oscillator holds ±500 ppm (MPSL docs); telling the link layer
        // lets it widen its receive windows accordingly.
        raw::MPSL_WORST_CLOCK_ACCURACY_PPM as u16,
        skip_wait_lfclk_started: raw::MPSL_DEFAULT_SKIP_WAIT_LFCLK_STARTED != 0,
    };
    static MPSL: StaticCell<MultiprotocolServiceLayer<'static>> = StaticCell::new();
    let mpsl = match MultiprotocolServiceLayer::new(p, Irqs, lfclk) {
        Ok(mpsl) => MPSL.init(mpsl),
        Err(e) => {
            error!("MPSL: {}", e);
            return None;
        }
    };
    match mpsl_task(mpsl) {
        Ok(task) => spawner.spawn(task),
        Err(_) => {
            error!("MPSL: its task could not be spawned");
            return None;
        }
    }
    Some(mpsl)
}

#[embassy_executor::task]
async fn mpsl_task(mpsl: &'static MultiprotocolServiceLayer<'static>) -> ! {
    mpsl.run().await
}

/// Builds the controller and spawns the BLE task; logs and gives up (USB still works)
/// if the controller does not start.
pub fn start(
    spawner: Spawner,
    mpsl: &'static MultiprotocolServiceLayer<'static>,
    p: nrf_sdc::Peripherals<'static>,
    rng: Peri<'static, RNG>,
    name: DeviceName,
) {
    static RNG_CELL: StaticCell<rng::Rng<'static, embassy_nrf::mode::Async>> = StaticCell::new();
    static MEM: StaticCell<nrf_sdc::Mem<SDC_MEM>> = StaticCell::new();
    let rng = RNG_CELL.init(rng::Rng::new(rng, Irqs));
    let mem = MEM.init(nrf_sdc::Mem::new());
    let sdc = nrf_sdc::Builder::new().and_then(|b| {
        b.support_adv()
            .support_peripheral()
            .support_dle_peripheral()
            .peripheral_count(1)?
            .buffer_cfg(LL_PAYLOAD, LL_PAYLOAD, LL_TX_PACKETS, LL_RX_PACKETS)?
            .build(p, rng, mpsl, mem)
    });
    let sdc = match sdc {
        Ok(sdc) => sdc,
        Err(e) => {
            error!("BLE controller: {}; USB serial only", e);
            return;
        }
    };
    match ble_task(sdc, name, device_address()) {
        Ok(task) => spawner.spawn(task),
        Err(_) => error!("BLE: its task could not be spawned"),
    }
}

/// The chip's factory random static address (FICR DEVICEADDR), with the two top bits set
/// as a static random address requires.
fn device_address() -> Address {
    let ficr = embassy_nrf::pac::FICR;
    let low = ficr.deviceaddr(0).read().to_le_bytes();
    let high = ficr.deviceaddr(1).read().to_le_bytes();
    Address::random([low[0], low[1], low[2], low[3], high[0], high[1] | 0xC0])
}

#[embassy_executor::task]
async fn ble_task(sdc: SoftdeviceController<'static>, name: DeviceName, address: Address) {
    let mut resources: HostResources<DefaultPacketPool, CONNECTIONS, L2CAP_CHANNELS> =
        HostResources::new();
    let stack = trouble_host::new(sdc, &mut resources)
        .set_random_address(address)
        .build();
    let mut runner = stack.runner();
    let server = match Server::new_with_config(GapConfig::Peripheral(PeripheralConfig {
        name: name.as_str(),
        appearance: &appearance::sensor::MOTION_SENSOR,
    })) {
        Ok(server) => server,
        Err(e) => {
            error!("BLE: GATT server: {=str}", e);
            return;
        }
    };
    let _ = select(runner.run(), serve(&stack, &server, &name)).await;
    error!("BLE: the host stopped; USB serial only");
}

/// Advertises, serves one connection at a time, advertises again.
async fn serve<C: Controller>(
    stack: &Stack<'_, C, DefaultPacketPool>,
    server: &Server<'_>,
    name: &DeviceName,
) {
    let adv_data = contract::advertising_data(name);
    let scan_data = contract::scan_response_data();
    let mut peripheral = stack.peripheral();
    loop {
        let advertiser = match peripheral
            .advertise(
                &AdvertisementParameters::default(),
                Advertisement::ConnectableScannableUndirected {
                    adv_data: &adv_data,
                    scan_data: &scan_data,
                },
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                error!("BLE: advertising failed: {}", defmt::Debug2Format(&e));
                embassy_time::Timer::after_secs(1).await;
                continue;
            }
        };
        let conn = match advertiser
            .accept()
            .await
            .map(|c| c.with_attribute_server(server))
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) | Err(e) => {
                warn!("BLE: connection not accepted: {}", e);
                continue;
            }
        };
        info!("BLE: connected");
        BLE_FRAMES.clear();
        link::BLE_SUBSCRIBED.store(true, Ordering::Relaxed);
        select(events(stack, &conn), notify(server, &conn)).await;
        link::BLE_SUBSCRIBED.store(false, Ordering::Relaxed);
        info!("BLE: disconnected; advertising again");
    }
}

/// Handles the connection's events until it ends (the attribute server answers reads,
/// writes and CCCD updates itself when an event is dropped).
async fn events<C: Controller>(
    stack: &Stack<'_, C, DefaultPacketPool>,
    conn: &GattConnection<'_, '_, DefaultPacketPool>,
) {
    loop {
        match conn.next().await {
            GattConnectionEvent::Disconnected { reason } => {
                info!("BLE: disconnect reason {}", reason);
                return;
            }
            // Only a central is asked for parameters; answer anyway so nothing hangs.
            GattConnectionEvent::RequestConnectionParams(request) => {
                let _ = request.reject(stack).await;
            }
            _ => {}
        }
    }
}

/// Sends every queued frame, cut into notifications of the connection's ATT MTU.
async fn notify(server: &Server<'_>, conn: &GattConnection<'_, '_, DefaultPacketPool>) {
    loop {
        let frame = BLE_FRAMES.receive().await;
        let mtu = conn.raw().att_mtu();
        for piece in contract::segments(&frame, mtu) {
            // On an error the rest of this frame is skipped: the next frame starts with
            // its own delimiter, so the host resynchronises by itself.
            if let Err(e) = server.codes.frames.notify_raw(conn, piece, false).await {
                warn!("BLE: notification failed: {}", e);
                break;
            }
        }
    }
}
