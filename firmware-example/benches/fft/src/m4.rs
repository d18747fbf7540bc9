//! Both band spectra of [`vsc_bench_fft::M4_WINDOWS`] windows between marker functions
//! that the QEMU plugin counts guest instructions between (as the QEMU board's
//! `vsc_bench_*` markers), then the hashes of their outputs on semihosting stderr for the
//! host to compare. The `empty` region measures the markers' own cost.

use core::fmt::Write;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use vsc_bench_fft::{
    SPECTRUM_VALUES, WINDOW_VALUES, edge_runtime_spectra, microfft_spectra, output_hashes,
};

/// Marker functions of equal cost whose bodies differ (each passes its own id through
/// `black_box`), so that the linker never folds two of them into one address.
macro_rules! markers {
    ($($name:ident = $id:literal),* $(,)?) => {
        $(
            #[unsafe(no_mangle)]
            #[inline(never)]
            pub extern "C" fn $name() {
                core::hint::black_box($id);
            }
        )*
    };
}

markers!(
    vsc_fft_edge_start = 1u32,
    vsc_fft_edge_end = 2u32,
    vsc_fft_microfft_start = 3u32,
    vsc_fft_microfft_end = 4u32,
    vsc_fft_empty_start = 5u32,
    vsc_fft_empty_end = 6u32,
);

/// Out of line, so that each side is one call between its markers and its code is the
/// functions the profile finds inside the region.
#[inline(never)]
fn edge_runtime_marked(window: &[f32; WINDOW_VALUES], out: &mut [f32; SPECTRUM_VALUES]) {
    vsc_fft_edge_start();
    edge_runtime_spectra(window, out);
    vsc_fft_edge_end();
}

#[inline(never)]
fn microfft_marked(window: &[f32; WINDOW_VALUES], out: &mut [f32; SPECTRUM_VALUES]) {
    vsc_fft_microfft_start();
    microfft_spectra(window, out);
    vsc_fft_microfft_end();
}

#[entry]
fn main() -> ! {
    vsc_fft_empty_start();
    vsc_fft_empty_end();
    let (edge, micro) = output_hashes(edge_runtime_marked, microfft_marked);
    let code = match hio::hstderr() {
        Ok(mut err) => {
            let written = writeln!(err, "vsc-fft: edge-runtime hash={edge:#010x}")
                .and_then(|()| writeln!(err, "vsc-fft: microfft hash={micro:#010x}"));
            if written.is_ok() {
                debug::EXIT_SUCCESS
            } else {
                debug::EXIT_FAILURE
            }
        }
        Err(()) => debug::EXIT_FAILURE,
    };
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    if let Ok(mut err) = hio::hstderr() {
        let _ = writeln!(err, "vsc-fft: panic");
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
