//! `vsc listen --ble [NAME|ADDRESS]`: which advertisement to connect to, and how the
//! notification values of [`contract::NOTIFY_CHAR_UUID`] become table rows and CSV lines.
//!
//! Everything here but [`run`] works without a radio and is unit-tested; [`run`] is the
//! thin btleplug glue in `ble/radio.rs` (feature `ble`, on by default): scan, connect,
//! subscribe, and hand each notification value to a [`NotificationFeed`].

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use edge_runtime::ble::{self as contract, Reassembler};
use edge_runtime::frame::Frame;

use super::{ListenSummary, Listener};

#[cfg(feature = "ble")]
mod radio;

/// Which device `--ble [NAME|ADDRESS]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleTarget {
    /// No value: any device named `VSC-…` or advertising the VSC service.
    AnyVsc,
    /// This advertised name (ASCII case ignored).
    Name(String),
    /// This device address, most significant byte first as printed.
    Address([u8; 6]),
}

/// What a scan reports of one device.
#[derive(Debug, Clone, Copy)]
pub struct Advertisement<'a> {
    pub name: Option<&'a str>,
    pub address: [u8; 6],
    /// 128-bit service UUIDs advertised (in the advertisement or the scan response).
    pub services: &'a [u128],
}

impl BleTarget {
    /// `""` (plain `--ble`) → any VSC device; `AA:BB:CC:DD:EE:FF` → that address; anything
    /// else → that name.
    pub fn parse(arg: &str) -> BleTarget {
        let arg = arg.trim();
        if arg.is_empty() {
            BleTarget::AnyVsc
        } else if let Some(address) = contract::parse_address(arg) {
            BleTarget::Address(address)
        } else {
            BleTarget::Name(arg.to_string())
        }
    }

    pub fn matches(&self, device: &Advertisement<'_>) -> bool {
        match self {
            BleTarget::AnyVsc => {
                device
                    .name
                    .is_some_and(|n| n.starts_with(contract::DEVICE_NAME_PREFIX))
                    || device.services.contains(&contract::SERVICE_UUID)
            }
            BleTarget::Name(name) => device.name.is_some_and(|n| n.eq_ignore_ascii_case(name)),
            BleTarget::Address(address) => device.address == *address,
        }
    }
}

impl fmt::Display for BleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BleTarget::AnyVsc => write!(
                f,
                "device named {}… or advertising the VSC service",
                contract::DEVICE_NAME_PREFIX
            ),
            BleTarget::Name(name) => write!(f, "device named {name}"),
            BleTarget::Address(address) => write!(f, "device at {}", format_address(address)),
        }
    }
}

/// `AA:BB:CC:DD:EE:FF`.
pub fn format_address(address: &[u8; 6]) -> String {
    let parts: Vec<String> = address.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// What can go wrong between the radio and the first frame.
#[derive(Debug, thiserror::Error)]
pub enum BleError {
    #[error("this vsc was built without BLE support (cargo feature `ble` of host-trainer)")]
    NotBuilt,
    #[error(
        "cannot reach BlueZ over D-Bus ({detail}); is the Bluetooth service running? \
         (`systemctl status bluetooth`)"
    )]
    Bluez { detail: String },
    #[error("no Bluetooth adapter found (`bluetoothctl list` shows the adapters BlueZ knows)")]
    NoAdapter,
    #[error("cannot start a scan ({detail}); is the adapter powered on? (`bluetoothctl power on`)")]
    Scan { detail: String },
    #[error(
        "no {target} seen within {seconds} s; is it powered, advertising and in range? \
         (`bluetoothctl scan on` lists what is advertising; --scan-timeout waits longer)"
    )]
    NotFound { target: String, seconds: u64 },
    #[error("{device}: cannot connect: {detail}")]
    Connect { device: String, detail: String },
    #[error(
        "{device} has no VSC code characteristic {char_uuid} in service {service_uuid} \
         (is it running VSC firmware?)",
        char_uuid = contract::NOTIFY_CHAR_UUID_STR,
        service_uuid = contract::SERVICE_UUID_STR
    )]
    NoCharacteristic { device: String },
    #[error("{device}: cannot subscribe to the code characteristic: {detail}")]
    Subscribe { device: String, detail: String },
    #[error("cannot start the BLE event loop: {0}")]
    Runtime(io::Error),
    #[error("cannot write the table or CSV: {0}")]
    Output(io::Error),
}

/// Notification values → [`Reassembler`] → the same [`Listener`] as every other input.
pub struct NotificationFeed<'w> {
    reassembler: Reassembler,
    listener: Listener<'w>,
}

impl<'w> NotificationFeed<'w> {
    pub fn new(
        table: Option<&'w mut dyn Write>,
        csv: Option<&'w mut dyn Write>,
    ) -> io::Result<Self> {
        Ok(NotificationFeed {
            reassembler: Reassembler::new(),
            listener: Listener::new(table, csv)?,
        })
    }

    /// One notification value, in arrival order.
    pub fn push(&mut self, value: &[u8]) -> io::Result<()> {
        let mut result = Ok(());
        let listener = &mut self.listener;
        self.reassembler.push_notification(value, |frame: Frame| {
            if result.is_ok() {
                result = listener.frame(&frame);
            }
        });
        result
    }

    pub fn summary(&self) -> ListenSummary {
        ListenSummary {
            rejected_chunks: self.reassembler.rejected_chunks(),
            duplicate_frames: self.reassembler.duplicate_frames,
            ..self.listener.summary()
        }
    }
}

/// Feeds notification values (in arrival order) through a [`NotificationFeed`].
pub fn listen_notifications<'w, V: AsRef<[u8]>>(
    values: impl IntoIterator<Item = V>,
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
) -> io::Result<ListenSummary> {
    let mut feed = NotificationFeed::new(table, csv)?;
    for value in values {
        feed.push(value.as_ref())?;
    }
    Ok(feed.summary())
}

/// Scans up to `scan_timeout` for `target`, connects, subscribes to the code
/// characteristic and feeds its notifications to the table and CSV until the device
/// disconnects or `stop()` turns true (Ctrl-C).
pub fn run<'w>(
    target: &BleTarget,
    scan_timeout: Duration,
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
    stop: &dyn Fn() -> bool,
) -> Result<ListenSummary, BleError> {
    #[cfg(feature = "ble")]
    {
        radio::run(target, scan_timeout, table, csv, stop)
    }
    #[cfg(not(feature = "ble"))]
    {
        let _ = (target, scan_timeout, table, csv, stop);
        Err(BleError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use edge_runtime::ble::segments;
    use edge_runtime::frame::{MAX_WIRE_LEN, flags};

    use super::*;
    use crate::listen::listen;

    const ADDRESS: [u8; 6] = [0xC0, 0xFF, 0xEE, 0x01, 0x23, 0x45];

    fn device<'a>(name: Option<&'a str>, services: &'a [u128]) -> Advertisement<'a> {
        Advertisement {
            name,
            address: ADDRESS,
            services,
        }
    }

    #[test]
    fn targets_parse_from_the_command_line() {
        assert_eq!(BleTarget::parse(""), BleTarget::AnyVsc);
        assert_eq!(BleTarget::parse("  "), BleTarget::AnyVsc);
        assert_eq!(
            BleTarget::parse("c0:ff:ee:01:23:45"),
            BleTarget::Address(ADDRESS)
        );
        assert_eq!(
            BleTarget::parse("VSC-1A2B3C"),
            BleTarget::Name("VSC-1A2B3C".into())
        );
        // Not quite an address: taken as a name, which then simply never matches.
        assert_eq!(
            BleTarget::parse("C0:FF:EE:01:23"),
            BleTarget::Name("C0:FF:EE:01:23".into())
        );
        assert_eq!(format_address(&ADDRESS), "C0:FF:EE:01:23:45");
        assert!(
            BleTarget::Address(ADDRESS)
                .to_string()
                .contains("C0:FF:EE:01:23:45")
        );
    }

    #[test]
    fn any_vsc_matches_the_name_prefix_or_the_service() {
        let any = BleTarget::AnyVsc;
        assert!(any.matches(&device(Some("VSC-1A2B3C"), &[])));
        assert!(any.matches(&device(Some("VSC-lab-wrist"), &[])));
        assert!(any.matches(&device(None, &[0x180F, contract::SERVICE_UUID])));
        assert!(any.matches(&device(Some("renamed"), &[contract::SERVICE_UUID])));
        assert!(!any.matches(&device(Some("vsc-1a2b3c"), &[])));
        assert!(!any.matches(&device(Some("Headphones"), &[0x180F])));
        assert!(!any.matches(&device(None, &[contract::NOTIFY_CHAR_UUID])));
    }

    #[test]
    fn names_and_addresses_match_exactly() {
        let name = BleTarget::parse("vsc-1a2b3c");
        assert!(name.matches(&device(Some("VSC-1A2B3C"), &[])));
        assert!(!name.matches(&device(Some("VSC-1A2B3D"), &[])));
        assert!(!name.matches(&device(Some("VSC-1A2B3C0"), &[])));
        assert!(!name.matches(&device(None, &[contract::SERVICE_UUID])));
        let address = BleTarget::parse("C0:FF:EE:01:23:45");
        assert!(address.matches(&device(None, &[])));
        let mut other = device(Some("VSC-1A2B3C"), &[contract::SERVICE_UUID]);
        other.address[5] ^= 1;
        assert!(!address.matches(&other));
    }

    fn frame(sequence: u32, active: &[usize]) -> Frame {
        let mut f = Frame::without_code(sequence, sequence * 1280, 0, 64);
        f.flags = if sequence.is_multiple_of(5) {
            flags::SATURATED
        } else {
            0
        };
        f.mu_scale = 0.01;
        for (k, &j) in active.iter().enumerate() {
            f.spike_bits |= 1u64 << j;
            f.gamma_q15.push(30000 - k as i16 * 100).unwrap();
            f.mu_q.push(k as i16 * 500 - 20000).unwrap();
        }
        f
    }

    fn wire(f: &Frame) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut out).unwrap();
        out[..n].to_vec()
    }

    /// Sizes from no code to 59 active dims; sequence 6 never sent (a lost frame).
    fn frames() -> Vec<Frame> {
        (0..12u32)
            .filter(|&s| s != 6)
            .map(|s| {
                let active: Vec<usize> = (0..64).filter(|j| j % 12 < s as usize).collect();
                frame(s, &active)
            })
            .collect()
    }

    #[test]
    fn notifications_give_the_same_table_and_csv_as_the_byte_stream() {
        let frames = frames();
        let stream: Vec<u8> = frames.iter().flat_map(wire).collect();
        let (mut table_bytes, mut csv_bytes) = (Vec::new(), Vec::new());
        let bytes_summary = listen(
            stream.as_slice(),
            Some(&mut table_bytes),
            Some(&mut csv_bytes),
        )
        .unwrap();
        assert_eq!(bytes_summary.frames, frames.len() as u64);
        assert_eq!(bytes_summary.lost_frames, 1);

        for mtu in [23u16, 27, 64, 185, 247, 517] {
            let values: Vec<Vec<u8>> = frames
                .iter()
                .flat_map(|f| {
                    segments(&wire(f), mtu)
                        .map(<[u8]>::to_vec)
                        .collect::<Vec<_>>()
                })
                .collect();
            let (mut table, mut csv) = (Vec::new(), Vec::new());
            let summary = listen_notifications(&values, Some(&mut table), Some(&mut csv)).unwrap();
            assert_eq!(summary, bytes_summary, "mtu {mtu}");
            assert_eq!(table, table_bytes, "mtu {mtu}");
            assert_eq!(csv, csv_bytes, "mtu {mtu}");
        }
    }

    #[test]
    fn lost_and_repeated_notifications_are_counted_not_shown() {
        let frames = frames();
        let mut values: Vec<Vec<u8>> = Vec::new();
        for f in &frames {
            let w = wire(f);
            // ATT MTU 30: frame 0 fits one notification, frame 9 needs many.
            let pieces: Vec<&[u8]> = segments(&w, 30).collect();
            match f.sequence {
                // The middle notification of frame 9 is lost.
                9 => {
                    assert!(pieces.len() > 2);
                    values.extend(
                        pieces
                            .iter()
                            .enumerate()
                            .filter(|&(i, _)| i != 1)
                            .map(|(_, p)| p.to_vec()),
                    );
                }
                // Frame 0 (no code, one notification) arrives twice.
                0 => {
                    assert_eq!(pieces.len(), 1);
                    values.push(pieces[0].to_vec());
                    values.push(pieces[0].to_vec());
                }
                _ => values.extend(pieces.iter().map(|p| p.to_vec())),
            }
        }
        let mut table = Vec::new();
        let summary = listen_notifications(&values, Some(&mut table), None).unwrap();
        assert_eq!(summary.frames, frames.len() as u64 - 1);
        assert_eq!(summary.duplicate_frames, 1);
        assert_eq!(summary.rejected_chunks, 1);
        // Sequences 6 (never sent) and 9 (damaged) are missing.
        assert_eq!(summary.lost_frames, 2);
        let table = String::from_utf8(table).unwrap();
        let sequences: Vec<u32> = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(sequences, [0, 1, 2, 3, 4, 5, 7, 8, 10, 11]);
    }

    #[cfg(not(feature = "ble"))]
    #[test]
    fn without_the_feature_ble_is_a_clear_error() {
        let err = run(
            &BleTarget::AnyVsc,
            Duration::from_secs(1),
            None,
            None,
            &|| false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("without BLE support"), "{err}");
    }
}
