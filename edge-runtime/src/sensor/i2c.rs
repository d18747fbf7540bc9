//! Register access over embedded-hal 1.0 blocking I²C, the one way every driver in this
//! module talks to its part: single-register reads and writes, multi-byte writes,
//! auto-incrementing burst reads, the identity check and the status-flag test.
//!
//! The three parts share the addressing convention (write the register address, then
//! read or write its bytes in the same transaction), so one implementation serves all;
//! what differs per part (register map, reset and configuration sequence, byte order of
//! the data registers) stays in the driver.

use embedded_hal::i2c::I2c;

use super::{ImuPart, SensorError};

/// A bus and the 7-bit address of the part on it.
#[derive(Debug)]
pub(crate) struct RegisterBus<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> RegisterBus<I2C> {
    pub(crate) const fn new(i2c: I2C, address: u8) -> Self {
        RegisterBus { i2c, address }
    }

    /// Gives the bus back.
    pub(crate) fn release(self) -> I2C {
        self.i2c
    }

    /// One register's value.
    pub(crate) fn read(&mut self, register: u8) -> Result<u8, I2C::Error> {
        let [value] = self.burst_read(register)?;
        Ok(value)
    }

    /// `N` bytes from `first` on, in one transaction: the part auto-increments the
    /// address, and reading all output registers at once keeps a sample's bytes together.
    pub(crate) fn burst_read<const N: usize>(&mut self, first: u8) -> Result<[u8; N], I2C::Error> {
        let mut bytes = [0u8; N];
        self.i2c.write_read(self.address, &[first], &mut bytes)?;
        Ok(bytes)
    }

    pub(crate) fn write(&mut self, register: u8, value: u8) -> Result<(), I2C::Error> {
        self.write_bytes(&[register, value])
    }

    /// One write transfer: the register address, then its data.
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), I2C::Error> {
        self.i2c.write(self.address, bytes)
    }

    /// True when every bit of `mask` is set in `register` (data-ready flags).
    pub(crate) fn flags_set(
        &mut self,
        register: u8,
        mask: u8,
    ) -> Result<bool, SensorError<I2C::Error>> {
        Ok(self.read(register)? & mask == mask)
    }

    /// Reads the identity register `register` of `part`;
    /// [`SensorError::WrongChipId`] with the value read when it is not the part's.
    pub(crate) fn check_chip_id(
        &mut self,
        part: ImuPart,
        register: u8,
    ) -> Result<(), SensorError<I2C::Error>> {
        let read = self.read(register)?;
        if read == part.chip_id().1 {
            Ok(())
        } else {
            Err(SensorError::WrongChipId { part, read })
        }
    }
}
