//! Cortex-M4F example for QEMU's `mps2-an386`: an MPU-6050 on I²C (emulated by replaying
//! a HAPT excerpt stored in flash) → edge-runtime preprocessing → encoder → one
//! COBS-framed [`Frame`] per window on semihosting stdout. Logs go to semihosting stderr.
//!
//! Build and run with `cargo xtask firmware --run`.
#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use edge_runtime::blob::{MAX_INPUT, ModelBlob};
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::{Frame, MAX_WIRE_LEN};
use edge_runtime::preprocess::Window;
use edge_runtime::sensor::Excerpt;
use edge_runtime::stream::{self, EncodeFailed, WindowEncoder};
use panic_semihosting as _;

/// Raw MPU-6050 register values of a HAPT excerpt (written by `cargo xtask firmware`).
static EXCERPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/excerpt.bin"));
/// Word alignment for data read in place from flash.
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);
/// The int8 model blob, read in place from flash. Word-aligned so the SMLAD kernel can
/// load weight rows with LDRD (the blob parser itself accepts any address).
static MODEL_ALIGNED: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.vscq")));
static MODEL: &[u8] = &MODEL_ALIGNED.0;

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

fn run(log: &mut Option<hio::HostStream>) -> Result<(), ()> {
    let mut out = hio::hstdout().map_err(|_| ())?;
    let Ok(excerpt) = Excerpt::parse(EXCERPT) else {
        // No `Display` of the error (flash, see below); `cargo xtask firmware` wrote it.
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "vsc-fw: the embedded sensor excerpt is invalid");
        }
        return Err(());
    };
    let Ok(blob) = ModelBlob::parse(MODEL) else {
        // No `Display` of the error here: its formatting code alone costs ~1 KiB of flash;
        // `cargo xtask firmware` validated the blob before embedding it.
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "vsc-fw: the embedded model blob is invalid");
        }
        return Err(());
    };
    let encoder = Marked(Encoder::new(blob));
    if let Some(log) = log.as_mut() {
        let _ = writeln!(
            log,
            "vsc-fw: excerpt user {} exp {} from sample {}, {} samples; model {} B, \
             crc {:#010x}, M={} H={} J={}, {} MACs/window",
            excerpt.user,
            excerpt.experiment,
            excerpt.source_start,
            excerpt.len(),
            MODEL.len(),
            blob.crc(),
            blob.input_dim(),
            blob.hidden_dim(),
            encoder.latent_dim(),
            // u32 (54 400 for the edge model): u64 formatting would link ~1 KiB of
            // 64-bit division.
            encoder.macs_per_window() as u32
        );
    }
    let mut frames = 0u32;
    let mut write_failed = false;
    let result = stream::run_recorded(excerpt, blob.channels(), encoder, 0..0, |frame| {
        let mut wire = [0u8; MAX_WIRE_LEN];
        match frame.encode(&mut wire) {
            Ok(n) => write_failed |= out.write_all(&wire[..n]).is_err(),
            Err(_) => write_failed = true,
        }
        frames += 1;
    });
    if let Some(log) = log.as_mut() {
        match result {
            Ok(samples) => {
                let _ = writeln!(log, "vsc-fw: {samples} samples, {frames} frames");
            }
            Err(_) => {
                let _ = writeln!(log, "vsc-fw: sensor init failed");
            }
        }
    }
    if result.is_err() || write_failed {
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
