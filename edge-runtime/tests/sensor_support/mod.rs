//! Mock-bus helpers the IMU driver tests share: expected transactions, running a driver
//! on mocks that must see exactly those transactions, and the checks every part's
//! tests make (identity error, scaling). Register addresses and values stay in each
//! test file, spelled out from that part's datasheet.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::fmt::Debug;

use edge_runtime::preprocess::ImuSample;
use edge_runtime::sensor::{ImuPart, SensorError};
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as Wait};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

/// A data byte the part did not acknowledge.
pub const DATA_NACK: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);

/// Two `i16` triples, little-endian, in register order: what a 12-byte burst read of a
/// part with 16-bit little-endian outputs returns (which sensor comes first is the
/// part's choice).
pub fn le_burst(first: [i16; 3], second: [i16; 3]) -> Vec<u8> {
    first
        .iter()
        .chain(second.iter())
        .flat_map(|c| c.to_le_bytes())
        .collect()
}

/// Reads of the status register `register` at `address` answering `values` in turn.
pub fn status_polls(address: u8, register: u8, values: &[u8]) -> Vec<Transaction> {
    values
        .iter()
        .map(|&v| Transaction::write_read(address, vec![register], vec![v]))
        .collect()
}

/// Runs `f` with a bus that expects exactly `expected`, then checks that every
/// transaction happened.
pub fn on_bus<R>(expected: &[Transaction], f: impl FnOnce(&Mock) -> R) -> R {
    let mut i2c = Mock::new(expected);
    let result = f(&i2c);
    i2c.done();
    result
}

/// Runs `f` with a bus that expects exactly `expected` and a delay that expects exactly
/// `waits`, then checks that both saw all of them.
pub fn on_bus_and_delay<R>(
    expected: &[Transaction],
    waits: &[Wait],
    f: impl FnOnce(&Mock, &CheckedDelay) -> R,
) -> R {
    let mut delay = CheckedDelay::new(waits);
    let result = on_bus(expected, |i2c| f(i2c, &delay));
    delay.done();
    result
}

/// `err` is the identity error of `part` with the value read, and its message says so.
pub fn assert_wrong_chip_id<E: Debug + PartialEq>(
    err: SensorError<E>,
    part: ImuPart,
    read: u8,
    message: &str,
) {
    assert_eq!(err, SensorError::WrongChipId { part, read });
    assert_eq!(err.to_string(), message);
}

/// Every axis of `sample` within 1e-6 (relative, absolute below 1) of what the
/// datasheet gives for the counts: `want_g(count)` and `want_rad_s(count)`, in f64.
pub fn assert_scaled(
    sample: &ImuSample,
    acc_counts: [i16; 3],
    want_g: impl Fn(f64) -> f64,
    gyro_counts: [i16; 3],
    want_rad_s: impl Fn(f64) -> f64,
    gyro_range: &dyn Debug,
) {
    for axis in 0..3 {
        let want_g = want_g(f64::from(acc_counts[axis]));
        let got = f64::from(sample.acc_g[axis]);
        assert!(
            (got - want_g).abs() <= 1e-6 * want_g.abs().max(1.0),
            "{got} {want_g}"
        );
        let want_rad_s = want_rad_s(f64::from(gyro_counts[axis]));
        let got = f64::from(sample.gyro_rad_s[axis]);
        assert!(
            (got - want_rad_s).abs() <= 1e-6 * want_rad_s.abs().max(1.0),
            "{gyro_range:?}: {got} {want_rad_s}"
        );
    }
}
