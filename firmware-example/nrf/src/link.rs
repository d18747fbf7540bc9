//! The frame sink of the device loop: each wire frame goes to the BLE task and to the USB
//! serial task through queues, without waiting. A link that is not connected gets
//! nothing; a full queue drops the frame (the host sees the gap in sequence numbers), so a
//! slow link never holds up sampling.

use core::sync::atomic::{AtomicBool, Ordering};

use defmt::warn;
use edge_runtime::device::FrameSink;
use edge_runtime::frame::MAX_WIRE_LEN;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::pipe::Pipe;

/// One wire frame.
pub type WireFrame = heapless::Vec<u8, MAX_WIRE_LEN>;
/// Frames waiting for BLE notifications (one frame every 1.28 s; a few connection
/// intervals of slack).
pub const BLE_QUEUE_FRAMES: usize = 3;
/// Bytes waiting for the USB serial port: two of the largest frames.
pub const USB_QUEUE_BYTES: usize = 2 * MAX_WIRE_LEN;

/// Frames for the BLE task, whole (it cuts each into notifications).
pub static BLE_FRAMES: Channel<CriticalSectionRawMutex, WireFrame, BLE_QUEUE_FRAMES> =
    Channel::new();
/// The byte stream for the USB serial task.
pub static USB_BYTES: Pipe<CriticalSectionRawMutex, USB_QUEUE_BYTES> = Pipe::new();
/// A central has subscribed to the frame characteristic.
pub static BLE_SUBSCRIBED: AtomicBool = AtomicBool::new(false);
/// A terminal holds the serial port open (DTR set).
pub static USB_OPEN: AtomicBool = AtomicBool::new(false);

/// The device loop's [`FrameSink`] on the nRF boards.
#[derive(Default)]
pub struct Links {
    pub dropped_ble: u32,
    pub dropped_usb: u32,
}

impl Links {
    pub const fn new() -> Self {
        Links {
            dropped_ble: 0,
            dropped_usb: 0,
        }
    }
}

impl FrameSink for Links {
    async fn send(&mut self, wire: &[u8]) {
        if BLE_SUBSCRIBED.load(Ordering::Relaxed) {
            let queued = WireFrame::from_slice(wire)
                .ok()
                .is_some_and(|frame| BLE_FRAMES.try_send(frame).is_ok());
            if !queued {
                if self.dropped_ble == 0 {
                    warn!("BLE: queue full, frame dropped (more are counted, not logged)");
                }
                self.dropped_ble = self.dropped_ble.wrapping_add(1);
            }
        }
        if USB_OPEN.load(Ordering::Relaxed) {
            // Whole frames only: a partial one would just be rejected by the host.
            if USB_BYTES.free_capacity() >= wire.len()
                && matches!(USB_BYTES.try_write(wire), Ok(n) if n == wire.len())
            {
                return;
            }
            if self.dropped_usb == 0 {
                warn!("USB: queue full, frame dropped (more are counted, not logged)");
            }
            self.dropped_usb = self.dropped_usb.wrapping_add(1);
        }
    }
}
