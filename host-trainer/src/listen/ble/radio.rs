//! The btleplug glue of `vsc listen --ble` (on Linux: BlueZ over D-Bus). Kept to the
//! calls that need a radio; what can be decided without one lives in the parent module.

use std::io::Write;
use std::time::Duration;

use btleplug::api::{
    Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use edge_runtime::ble as contract;
use futures::StreamExt;
use futures::stream::BoxStream;
use uuid::Uuid;

use super::{Advertisement, BleError, BleTarget, NotificationFeed, format_address};
use crate::listen::ListenSummary;

/// How often a blocked wait looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Connecting and service discovery: a device that was just advertising answers in a few
/// seconds or has gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) fn run<'w>(
    target: &BleTarget,
    scan_timeout: Duration,
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
    stop: &dyn Fn() -> bool,
) -> Result<ListenSummary, BleError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BleError::Runtime)?;
    runtime.block_on(session(target, scan_timeout, table, csv, stop))
}

fn bluez(e: btleplug::Error) -> BleError {
    BleError::Bluez {
        detail: e.to_string(),
    }
}

async fn session<'w>(
    target: &BleTarget,
    scan_timeout: Duration,
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
    stop: &dyn Fn() -> bool,
) -> Result<ListenSummary, BleError> {
    let manager = Manager::new().await.map_err(bluez)?;
    let adapter = manager
        .adapters()
        .await
        .map_err(bluez)?
        .into_iter()
        .next()
        .ok_or(BleError::NoAdapter)?;
    let mut events = adapter.events().await.map_err(bluez)?;
    adapter
        .start_scan(ScanFilter::default())
        .await
        .map_err(|e| BleError::Scan {
            detail: e.to_string(),
        })?;
    eprintln!(
        "scanning for a {target} (up to {} s) …",
        scan_timeout.as_secs()
    );
    let found = tokio::time::timeout(scan_timeout, find(&adapter, &mut events, target, stop)).await;
    // A scan left running would slow the connection down; failure to stop it is harmless.
    let _ = adapter.stop_scan().await;
    let (peripheral, device) = match found {
        Ok(Ok(Some(found))) => found,
        // Ctrl-C while scanning.
        Ok(Ok(None)) => return Ok(ListenSummary::default()),
        Ok(Err(e)) => return Err(e),
        Err(_elapsed) => {
            return Err(BleError::NotFound {
                target: target.to_string(),
                seconds: scan_timeout.as_secs(),
            });
        }
    };

    let characteristic = connect(&peripheral, &device).await?;
    let subscribe_err = |e: btleplug::Error| BleError::Subscribe {
        device: device.clone(),
        detail: e.to_string(),
    };
    let mut notifications = peripheral.notifications().await.map_err(subscribe_err)?;
    peripheral
        .subscribe(&characteristic)
        .await
        .map_err(subscribe_err)?;
    eprintln!(
        "connected to {device}, ATT MTU {}; Ctrl-C stops",
        peripheral.mtu()
    );

    let char_uuid = Uuid::from_u128(contract::NOTIFY_CHAR_UUID);
    let mut feed = NotificationFeed::new(table, csv).map_err(BleError::Output)?;
    let mut tick = tokio::time::interval(STOP_POLL);
    loop {
        tokio::select! {
            value = notifications.next() => match value {
                Some(n) if n.uuid == char_uuid => feed.push(&n.value).map_err(BleError::Output)?,
                Some(_) => {}
                None => {
                    eprintln!("{device}: notifications ended");
                    break;
                }
            },
            event = events.next() => match event {
                Some(CentralEvent::DeviceDisconnected(id)) if id == peripheral.id() => {
                    eprintln!("{device} disconnected");
                    break;
                }
                Some(_) => {}
                None => {
                    eprintln!("the Bluetooth adapter stopped reporting events");
                    break;
                }
            },
            _ = tick.tick() => if stop() { break },
        }
    }
    // Leave the device free for the next listener; it disconnecting first is fine.
    let _ = peripheral.unsubscribe(&characteristic).await;
    let _ = peripheral.disconnect().await;
    Ok(feed.summary())
}

/// The first device, already seen or newly advertising, that `target` matches, with a
/// description for messages; `None` once `stop()` is true.
async fn find(
    adapter: &Adapter,
    events: &mut BoxStream<'static, CentralEvent>,
    target: &BleTarget,
    stop: &dyn Fn() -> bool,
) -> Result<Option<(Peripheral, String)>, BleError> {
    // BlueZ also lists devices remembered from earlier scans; only those heard in this one
    // (they have a signal strength) can be connected to now.
    for peripheral in adapter.peripherals().await.map_err(bluez)? {
        if let Some(device) = matching(&peripheral, target, true).await {
            return Ok(Some((peripheral, device)));
        }
    }
    let mut tick = tokio::time::interval(STOP_POLL);
    loop {
        tokio::select! {
            event = events.next() => {
                let id = match event {
                    Some(CentralEvent::DeviceDiscovered(id))
                    | Some(CentralEvent::DeviceUpdated(id))
                    | Some(CentralEvent::ServicesAdvertisement { id, .. }) => id,
                    Some(_) => continue,
                    None => {
                        return Err(BleError::Bluez {
                            detail: "the adapter stopped reporting events".into(),
                        });
                    }
                };
                let Ok(peripheral) = adapter.peripheral(&id).await else {
                    continue;
                };
                if let Some(device) = matching(&peripheral, target, false).await {
                    return Ok(Some((peripheral, device)));
                }
            }
            _ = tick.tick() => if stop() { return Ok(None) },
        }
    }
}

/// "NAME (ADDRESS)" if `peripheral`'s advertisement matches `target`.
async fn matching(peripheral: &Peripheral, target: &BleTarget, heard_now: bool) -> Option<String> {
    let properties = peripheral.properties().await.ok()??;
    if heard_now && properties.rssi.is_none() {
        return None;
    }
    let services: Vec<u128> = properties.services.iter().map(Uuid::as_u128).collect();
    let name = properties.local_name.or(properties.advertisement_name);
    let address = properties.address.into_inner();
    let advertisement = Advertisement {
        name: name.as_deref(),
        address,
        services: &services,
    };
    target.matches(&advertisement).then(|| {
        format!(
            "{} ({})",
            name.as_deref().unwrap_or("unnamed"),
            format_address(&address)
        )
    })
}

/// Connects, discovers the services and returns the code characteristic.
async fn connect(peripheral: &Peripheral, device: &str) -> Result<Characteristic, BleError> {
    let connect_err = |detail: String| BleError::Connect {
        device: device.to_string(),
        detail,
    };
    let timed_out = |_| connect_err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()));
    if !peripheral.is_connected().await.unwrap_or(false) {
        tokio::time::timeout(CONNECT_TIMEOUT, peripheral.connect())
            .await
            .map_err(timed_out)?
            .map_err(|e| connect_err(e.to_string()))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, peripheral.discover_services())
        .await
        .map_err(timed_out)?
        .map_err(|e| connect_err(format!("service discovery: {e}")))?;
    let service = Uuid::from_u128(contract::SERVICE_UUID);
    let code = Uuid::from_u128(contract::NOTIFY_CHAR_UUID);
    let found = peripheral
        .characteristics()
        .into_iter()
        .find(|c| c.uuid == code && c.service_uuid == service);
    match found {
        Some(characteristic) => Ok(characteristic),
        None => {
            let _ = peripheral.disconnect().await;
            Err(BleError::NoCharacteristic {
                device: device.to_string(),
            })
        }
    }
}
