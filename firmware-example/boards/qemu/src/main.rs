//! The QEMU board (`mps2-an386`): edge-runtime's device loop, the same `async fn` the
//! nRF52840 boards run, with an MPU-6050 on I²C emulated by replaying a HAPT excerpt
//! stored in flash, and one COBS-framed [`Frame`] per window on semihosting stdout. Logs
//! go to semihosting stderr. The replayed sensor is always ready, so a waker that does
//! nothing ([`device::block_on`]) is the whole executor.
//!
//! Build and run with `cargo xtask firmware --board qemu --run`.
#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use edge_runtime::blob::MAX_INPUT;
use edge_runtime::device::{self, FrameSink, ReplaySource};
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::Frame;
use edge_runtime::preprocess::{ChannelSet, Window};
use edge_runtime::sensor::Excerpt;
use edge_runtime::stream::{EncodeFailed, Pipeline, WindowEncoder};
use panic_semihosting as _;

/// Raw MPU-6050 register values of a HAPT excerpt (written by `cargo xtask firmware`).
static EXCERPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/excerpt.bin"));
/// The int8 model blob `cargo xtask firmware` picked, linked at the start of the model
/// region (`memory.x`); the firmware finds it there like a real board finds a flashed one
/// (`vsc_fw_common::model`), not through this symbol.
#[unsafe(link_section = ".vsc_model")]
#[used]
static MODEL_IMAGE: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/model.vscq")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/model.vscq"));

/// Start and end markers of one encode, for `cargo xtask bench mcu`: a QEMU plugin counts
/// the guest instructions executed between the first instructions of these two functions.
/// They must stay out of line and distinct.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vsc_bench_encode_start() {
    cortex_m::asm::nop();
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vsc_bench_encode_end() {
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}

/// Markers around a separate run of the encoder's input stage alone (spectrum, scaling,
/// quantisation), so the bench can split an encode into input stage and dense layers.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vsc_bench_input_start() {
    cortex_m::asm::nop();
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vsc_bench_input_end() {
    cortex_m::asm::nop();
    cortex_m::asm::nop();
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}

/// Wraps the encoder with the benchmark markers.
struct Marked<'a>(Encoder<'a>);

/// The input stage alone, between its markers (its result is dropped: the measured encode
/// computes it again). Out of line so that its 1152-byte buffer is off the stack before
/// the encode runs.
#[inline(never)]
fn measure_input_stage(encoder: &Encoder<'_>, window: &Window) {
    let mut x_q = [0u8; MAX_INPUT];
    vsc_bench_input_start();
    let _ = encoder.model_input(window.as_slice(), &mut x_q);
    vsc_bench_input_end();
}

impl WindowEncoder for Marked<'_> {
    fn latent_dim(&self) -> u8 {
        self.0.latent_dim()
    }
    fn macs_per_window(&self) -> u64 {
        self.0.macs_per_window()
    }
    fn encode_into(&self, window: &Window, frame: &mut Frame) -> Result<(), EncodeFailed> {
        measure_input_stage(&self.0, window);
        vsc_bench_encode_start();
        let result = self.0.encode_into(window, frame);
        vsc_bench_encode_end();
        result
    }
}

#[entry]
fn main() -> ! {
    // The initial stack pointer (top of RAM): `main` may have reserved frames before
    // any statement runs, so the current SP would undercount.
    let stack_top = core::ptr::addr_of!(_stack_start) as u32;
    paint_stack();
    let mut log = hio::hstderr().ok();
    let code = match run(&mut log) {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(()) => debug::EXIT_FAILURE,
    };
    if let Some(log) = log.as_mut() {
        let _ = writeln!(
            log,
            "vsc-fw: stack used {} bytes (top {:#x}, free RAM from {:#x})",
            stack_used(stack_top),
            stack_top,
            heap_start()
        );
    }
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Semihosting stdout as the board's transport.
struct Semihosting {
    out: hio::HostStream,
    failed: bool,
}

impl FrameSink for Semihosting {
    async fn send(&mut self, wire: &[u8]) {
        self.failed |= self.out.write_all(wire).is_err();
    }
}

fn run(log: &mut Option<hio::HostStream>) -> Result<(), ()> {
    let out = hio::hstdout().map_err(|_| ())?;
    let Ok(excerpt) = Excerpt::parse(EXCERPT) else {
        // No `Display` of the error (flash, see `device::ModelError::reason`);
        // `cargo xtask firmware` wrote it.
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "vsc-fw: the embedded sensor excerpt is invalid");
        }
        return Err(());
    };
    let model = vsc_fw_common::model();
    if let Some(log) = log.as_mut() {
        let _ = writeln!(
            log,
            "vsc-fw: excerpt user {} exp {} from sample {}, {} samples",
            excerpt.user,
            excerpt.experiment,
            excerpt.source_start,
            excerpt.len(),
        );
        let _ = match &model {
            Ok(blob) => writeln!(
                log,
                "vsc-fw: model {} B, crc {:#010x}, M={} H={} J={}, {} MACs/window",
                blob.as_bytes().len(),
                blob.crc(),
                blob.input_dim(),
                blob.hidden_dim(),
                blob.latent_dim(),
                // u32 (54 400 for the edge model): u64 formatting would link ~1 KiB of
                // 64-bit division.
                Encoder::new(*blob).macs_per_window() as u32
            ),
            // `write_str`, not `{}`: formatting a `&str` links the padding code (~0.8 KiB).
            Err(e) => log
                .write_str("vsc-fw: model invalid: ")
                .and_then(|()| log.write_str(e.reason()))
                .and_then(|()| log.write_str("; frames carry no code\n")),
        };
    }
    let channels = model.as_ref().map_or(ChannelSet::ALL, |b| b.channels());
    let encoder = model.as_ref().ok().map(|b| Marked(Encoder::new(*b)));
    let Ok(mut source) = ReplaySource::new(excerpt, 0..0) else {
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "vsc-fw: sensor init failed");
        }
        return Err(());
    };
    let mut stage = Pipeline::new(channels, encoder);
    let mut sink = Semihosting { out, failed: false };
    let stats = device::block_on(device::run(&mut source, &mut stage, &mut sink));
    if let Some(log) = log.as_mut() {
        let _ = writeln!(
            log,
            "vsc-fw: {} samples, {} frames",
            stats.samples, stats.frames
        );
    }
    if sink.failed || model.is_err() {
        Err(())
    } else {
        Ok(())
    }
}

// Stack high-water mark: fill the free RAM between the end of .bss/.data and the stack
// pointer with a pattern at start-up, and find the deepest overwritten word at the end.
const PAINT: u32 = 0xDEAD_BEEF;
const PAINT_MARGIN: u32 = 256;

unsafe extern "C" {
    static mut __sheap: u32;
    static mut _stack_start: u32;
}

fn heap_start() -> u32 {
    core::ptr::addr_of!(__sheap) as u32
}

fn paint_stack() {
    let sp = cortex_m::register::msp::read();
    let mut addr = heap_start();
    while addr < sp - PAINT_MARGIN {
        // SAFETY: the range [__sheap, sp − margin) is unused RAM below the live stack.
        unsafe { core::ptr::write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

fn stack_used(stack_top: u32) -> u32 {
    let mut addr = heap_start();
    // SAFETY: reads of the painted, otherwise unused RAM region.
    while addr < stack_top && unsafe { core::ptr::read_volatile(addr as *const u32) } == PAINT {
        addr += 4;
    }
    stack_top - addr
}
