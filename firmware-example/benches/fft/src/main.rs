//! On thumbv7em-none-eabihf: the Cortex-M4 half of `cargo xtask bench fft` (`m4.rs`, run in
//! QEMU under the instruction-count plugin). On the host: the timing and accuracy half
//! (`host.rs`).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
mod host;
#[cfg(target_os = "none")]
mod m4;

#[cfg(not(target_os = "none"))]
fn main() {
    host::main();
}
