//! The QEMU board (`mps2-an386`): edge-runtime's device loop, the same `async fn` the
//! nRF52840 boards run, with an MPU-6050 on I²C emulated by replaying a HAPT excerpt
//! stored in flash, and one COBS-framed [`Frame`] per window on semihosting stdout. Logs
//! go to semihosting stderr. The replayed sensor is always ready, so a waker that does
//! nothing ([`device::block_on`]) is the whole executor.
//!
//! Small on purpose (`size-budget.toml`): the log lines are written by [`Log`] (a few
//! integer digits, no `core::fmt`, which costs about 2.5 KiB here), the panic handler
//! prints the location only, and the vector table has one interrupt entry (QEMU's
//! board raises none) instead of cortex-m-rt's 240.
//!
//! Build and run with `cargo xtask firmware --board qemu --run`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use edge_runtime::blob::MAX_INPUT;
use edge_runtime::device::{self, FrameSink, ReplaySource};
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::Frame;
use edge_runtime::preprocess::{ChannelSet, Window};
use edge_runtime::sensor::Excerpt;
use edge_runtime::stream::{EncodeFailed, Pipeline, WindowEncoder};

mod sqrt_check;
include!(concat!(env!("OUT_DIR"), "/sqrt_check_hash.rs"));

/// Raw MPU-6050 register values of a HAPT excerpt (written by `cargo xtask firmware`).
static EXCERPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/excerpt.bin"));
/// The int8 model blob `cargo xtask firmware` picked, linked at the start of the model
/// region (`memory.x`); the firmware finds it there like a real board finds a flashed one
/// (`vsc_fw_common::model`), not through this symbol.
#[unsafe(link_section = ".vsc_model")]
#[used]
static MODEL_IMAGE: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/model.vscq")).len()] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/model.vscq"));

/// The device-specific part of the vector table (cortex-m-rt's `device` feature): one
/// entry, the default handler. mps2-an386 as QEMU runs it raises no interrupt that the
/// firmware enables; cortex-m-rt's generic table would hold 240 (960 bytes of flash).
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
#[used]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

unsafe extern "C" {
    /// cortex-m-rt's default exception handler (an endless loop).
    fn DefaultHandler();
}

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

/// The board's stage: the preprocessor's windows and filters (about 5.4 KiB).
type Stage = Pipeline<Option<Marked<'static>>>;

#[entry]
fn main() -> ! {
    // The initial stack pointer (top of RAM): `main` may have reserved frames before
    // any statement runs, so the current SP would undercount.
    let stack_top = core::ptr::addr_of!(_stack_start) as u32;
    paint_stack();
    let mut log = Log(hio::hstderr().ok());
    let code = match run(&mut log) {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(()) => debug::EXIT_FAILURE,
    };
    log.str("vsc-fw: stack used ")
        .dec(stack_used(stack_top))
        .str(" bytes (top ")
        .hex(stack_top)
        .str(", free RAM from ")
        .hex(heap_start())
        .str(")\n");
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

/// Out of line, so the stage is built straight into the caller's local (its return
/// slot); inlined into `run`, it was built in a temporary and copied (5.4 KiB more stack,
/// twice, with the preprocessor's own temporary).
#[inline(never)]
fn new_stage(channels: ChannelSet, encoder: Option<Marked<'static>>) -> Stage {
    Pipeline::new(channels, encoder)
}

#[inline(never)]
fn run(log: &mut Log) -> Result<(), ()> {
    let out = hio::hstdout().map_err(|_| ())?;
    // The spectrum's square root on this FPU must give the host's bits (the host and the
    // device compute the same windows' spectra); checked on a million inputs per boot of
    // this CI board, before the loop (outside the encode that `bench mcu` counts).
    let device_hash = sqrt_check::sqrt_check_hash(edge_runtime::preprocess::band_sqrt);
    if device_hash != HOST_SQRT_HASH {
        log.str("vsc-fw: square roots differ from the host's (hash ")
            .hex(device_hash)
            .str(", host ")
            .hex(HOST_SQRT_HASH)
            .str(")\n");
        return Err(());
    }
    log.str("vsc-fw: square root: ")
        .dec(sqrt_check::SQRT_CHECK_INPUTS)
        .str(" inputs give the host's bits\n");
    let Ok(excerpt) = Excerpt::parse(EXCERPT) else {
        // `cargo xtask firmware` wrote it, and its checks name the problem.
        log.str("vsc-fw: the embedded sensor excerpt is invalid\n");
        return Err(());
    };
    let model = vsc_fw_common::model();
    log.str("vsc-fw: excerpt user ")
        .dec(excerpt.user.into())
        .str(" exp ")
        .dec(excerpt.experiment.into())
        .str(" from sample ")
        .dec(excerpt.source_start)
        .str(", ")
        .dec(excerpt.len() as u32)
        .str(" samples\n");
    match &model {
        Ok(blob) => {
            log.str("vsc-fw: model ")
                .dec(blob.as_bytes().len() as u32)
                .str(" B, crc ")
                .hex(blob.crc())
                .str(", M=")
                .dec(blob.input_dim() as u32)
                .str(" H=")
                .dec(blob.hidden_dim() as u32)
                .str(" J=")
                .dec(blob.latent_dim() as u32)
                .str(", ")
                // u32 (54 400 for the edge model): no 64-bit division linked.
                .dec(Encoder::new(*blob).macs_per_window() as u32)
                .str(" MACs/window\n");
        }
        Err(e) => {
            log.str("vsc-fw: model invalid: ")
                .str(e.reason())
                .str("; frames carry no code\n");
        }
    }
    let channels = model.as_ref().map_or(ChannelSet::ALL, |b| b.channels());
    let encoder = model.as_ref().ok().map(|b| Marked(Encoder::new(*b)));
    let Ok(mut source) = ReplaySource::new(excerpt, 0..0) else {
        log.str("vsc-fw: sensor init failed\n");
        return Err(());
    };
    let mut stage = new_stage(channels, encoder);
    let mut sink = Semihosting { out, failed: false };
    let stats = device::block_on(device::run(&mut source, &mut stage, &mut sink));
    log.str("vsc-fw: ")
        .dec(stats.samples)
        .str(" samples, ")
        .dec(stats.frames)
        .str(" frames\n");
    if sink.failed || model.is_err() {
        Err(())
    } else {
        Ok(())
    }
}

/// Semihosting stderr for the log (nothing when it could not be opened): text and
/// unsigned integers, written without `core::fmt`.
struct Log(Option<hio::HostStream>);

impl Log {
    fn str(&mut self, s: &str) -> &mut Self {
        if let Some(out) = self.0.as_mut() {
            let _ = out.write_all(s.as_bytes());
        }
        self
    }

    /// `value` in decimal.
    fn dec(&mut self, value: u32) -> &mut Self {
        // Least significant digit last; `u32::MAX` has 10 digits.
        let mut digits = [b'0'; 10];
        let mut rest = value;
        let mut used = 0;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
            used += 1;
            if rest == 0 {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - used..).unwrap_or(&[]))
    }

    /// `value` as `0x` and eight hex digits.
    fn hex(&mut self, value: u32) -> &mut Self {
        let mut text = *b"0x00000000";
        for (k, c) in text.iter_mut().skip(2).enumerate() {
            let nibble = (value >> (28 - 4 * k)) & 0xF;
            *c = b"0123456789abcdef"
                .get(nibble as usize)
                .copied()
                .unwrap_or(b'?');
        }
        self.bytes(&text)
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        if let Some(out) = self.0.as_mut() {
            let _ = out.write_all(b);
        }
        self
    }
}

/// A panic (none is expected: edge-runtime does not panic on any input) prints where it
/// happened and ends QEMU with a failure, as `panic-semihosting` did, but without
/// formatting its message (that would link `core::fmt`).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut log = Log(hio::hstderr().ok());
    log.str("vsc-fw: panicked");
    if let Some(at) = info.location() {
        log.str(" at ").str(at.file()).str(":").dec(at.line());
    }
    log.str("\n");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
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
