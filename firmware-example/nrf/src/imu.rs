//! An [`Imu`] woken by its data-ready pin, as edge-runtime's [`SampleSource`].
//!
//! Per sample the task sleeps in GPIOTE until INT1 goes high (the CPU is in WFE: no
//! polling), timestamps the sample on the RTC-driven embassy clock and burst-reads it over
//! I²C. Nothing waits unbounded: the pin wait has a timeout of a few sample periods (after
//! which one read is tried anyway, so a missed edge costs one sample, not the stream),
//! and every I²C transfer has [`I2C_TIMEOUT_MS`] (sleeping, not spinning, meanwhile). Faults become [`Reading::Failed`] (flagged
//! frames downstream) and one defmt line per change of state.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use cortex_m::peripheral::scb::SystemHandler;
use cortex_m::peripheral::syst::SystClkSource;
use defmt::{error, info, warn};
use edge_runtime::device::{FaultChange, FaultLog, Reading, SampleSource, SensorFault};
use edge_runtime::sensor::{Imu, SensorError};
use embassy_nrf::gpio::Input;
use embassy_nrf::twim::{self, Twim};
use embassy_time::{Duration, Instant, Timer, with_timeout};
use embedded_hal::i2c::{ErrorType, I2c, Operation};

use crate::APP_PRIORITY;

/// Longest I²C transfer: a 12-byte burst read at 400 kHz takes ~0.4 ms.
pub const I2C_TIMEOUT_MS: u32 = 10;
/// Sample periods to wait for data-ready before a read is tried without it.
pub const DATA_READY_TIMEOUT_PERIODS: u64 = 3;
/// Data-ready polls of one read after the pin said ready (or the wait timed out).
pub const READ_POLLS: u32 = 2;
/// Pause before configuring an IMU again that failed to configure.
pub const INIT_RETRY: Duration = Duration::from_secs(1);
/// Failed reads in a row after which the IMU is configured again (it may have lost power
/// or been reset): about one second at 50 Hz.
pub const REINIT_AFTER_FAILED_READS: u32 = 50;

/// The TWIM behind the drivers' blocking `I2c`, without spinning: each transfer runs as
/// the HAL's interrupt-driven async transfer, and the CPU sleeps in WFE until the TWIM's
/// interrupt, so the ~0.4 ms of a sample read are sleep, not a busy-wait. Every transfer
/// is bounded by [`I2C_TIMEOUT_MS`] (embassy's blocking `I2c` impl has no timeout): a
/// sensor holding the clock low must not hang the loop.
pub struct TimeoutI2c {
    twim: Twim<'static>,
}

impl TimeoutI2c {
    pub fn new(twim: Twim<'static>) -> Self {
        TimeoutI2c { twim }
    }
}

impl ErrorType for TimeoutI2c {
    type Error = twim::Error;
}

impl I2c for TimeoutI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        sleep_until_ready(self.twim.transaction(address, operations), I2C_TIMEOUT_MS)
            .unwrap_or(Err(twim::Error::Timeout))
    }
}

/// Core clock cycles per SysTick tick: 1 ms at 64 MHz.
const SYSTICK_CYCLES_PER_MS: u32 = 64_000;

/// Polls `future` until it is ready or `timeout_ms` have passed (`None`; the future is
/// dropped, which stops the transfer), sleeping in WFE between polls. Any interrupt ends
/// WFE: the TWIM's when the transfer is done, SysTick's once a millisecond, which bounds
/// the wait when nothing else happens. The waker can therefore do nothing, and embassy's
/// timers (which need a task's waker) are not used. Other tasks wait for the transfer;
/// interrupts (the radio's) do not.
///
/// SysTick belongs to this function: nothing else in the firmware uses it (the embassy
/// time driver runs on RTC1).
fn sleep_until_ready<F: Future>(future: F, timeout_ms: u32) -> Option<F::Output> {
    // SAFETY: only SysTick is used, and only here (see above); its exception runs
    // `SysTick` below, which touches nothing.
    let mut core = unsafe { cortex_m::Peripherals::steal() };
    // SAFETY: below the radio's priority 0, like every interrupt of ours.
    unsafe {
        core.SCB
            .set_priority(SystemHandler::SysTick, APP_PRIORITY as u8)
    };
    let syst = &mut core.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_CYCLES_PER_MS - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let mut elapsed_ms = 0;
    let out = loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            break Some(out);
        }
        if syst.has_wrapped() {
            elapsed_ms += 1;
            if elapsed_ms >= timeout_ms {
                break None;
            }
        }
        cortex_m::asm::wfe();
    };
    syst.disable_interrupt();
    syst.disable_counter();
    out
}

/// Only ends the WFE of [`sleep_until_ready`].
#[cortex_m_rt::exception]
fn SysTick() {}

/// An [`Imu`] and its data-ready pin.
pub struct InterruptImu<'d, I: Imu> {
    imu: I,
    data_ready: Input<'d>,
    configured: bool,
    /// A few sample periods of the configured rate.
    timeout: Duration,
    faults: FaultLog,
    /// Reads that found a sample although the pin never went high (logged once: a pin
    /// that never fires still gives samples, every few periods).
    pub missed_data_ready: u32,
}

impl<'d, I: Imu> InterruptImu<'d, I> {
    /// `data_ready` is the pin the driver routes its data-ready signal to (INT1).
    pub fn new(imu: I, data_ready: Input<'d>) -> Self {
        let period_us = (1e6 / imu.output_rate_hz().max(1.0)) as u64;
        InterruptImu {
            imu,
            data_ready,
            configured: false,
            timeout: Duration::from_micros(DATA_READY_TIMEOUT_PERIODS * period_us),
            faults: FaultLog::new(),
            missed_data_ready: 0,
        }
    }

    fn note(&mut self, fault: Option<SensorFault>) {
        let part = self.imu.part().name();
        match self.faults.record(fault) {
            Some(FaultChange::Failing(f)) => error!("IMU {=str}: {=str}", part, f.reason()),
            Some(FaultChange::Recovered { failed }) => {
                info!(
                    "IMU {=str}: samples again after {=u32} failed reads",
                    part, failed
                )
            }
            None => {}
        }
    }

    fn failed(&mut self, t_us: u64, fault: SensorFault) -> Reading {
        self.note(Some(fault));
        if self.faults.failed_in_a_row >= REINIT_AFTER_FAILED_READS
            || fault == SensorFault::WrongChipId
        {
            self.configured = false;
        }
        Reading::Failed { t_us, fault }
    }
}

fn now_us() -> u64 {
    Instant::now().as_micros()
}

impl<I: Imu> SampleSource for InterruptImu<'_, I> {
    async fn next(&mut self) -> Reading {
        if !self.configured {
            match self.imu.init() {
                Ok(()) => {
                    self.configured = true;
                    info!(
                        "IMU {=str}: configured, {=f32} Hz",
                        self.imu.part().name(),
                        self.imu.output_rate_hz()
                    );
                }
                Err(e) => {
                    let fault = SensorFault::of(&e);
                    // Sleep before the retry, so a missing sensor costs one attempt a
                    // second, not the CPU.
                    Timer::after(INIT_RETRY).await;
                    let reading = self.failed(now_us(), fault);
                    self.configured = false;
                    return reading;
                }
            }
        }
        let woke = with_timeout(self.timeout, self.data_ready.wait_for_high()).await;
        let t_us = now_us();
        match self.imu.wait_and_read(READ_POLLS) {
            Ok(reading) => {
                if woke.is_err() {
                    if self.missed_data_ready == 0 {
                        warn!("IMU: a sample came without its data-ready pin going high");
                    }
                    self.missed_data_ready = self.missed_data_ready.saturating_add(1);
                }
                self.note(None);
                Reading::Sample {
                    t_us,
                    sample: reading.sample,
                    saturated: reading.saturated,
                }
            }
            Err(e) => {
                let fault = match e {
                    SensorError::Timeout { .. } if woke.is_err() => SensorFault::Timeout,
                    other => SensorFault::of(&other),
                };
                // The pin may stay high on a sensor that no longer answers: pause for a
                // sample period so that a failing sensor never spins the CPU.
                Timer::after(self.timeout / DATA_READY_TIMEOUT_PERIODS as u32).await;
                self.failed(t_us, fault)
            }
        }
    }
}
