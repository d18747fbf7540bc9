//! Everything that runs on the device: streaming preprocessing of raw 50 Hz IMU samples,
//! the int8 model blob, the integer encoder, the IMU driver and the frame format.
//!
//! `#![no_std]`, no `alloc`: every buffer has a capacity fixed at compile time.
#![no_std]
// `deny`, not `forbid`: the only `unsafe` blocks are the optional SMLAD kernels
// (`kernels::smlad_step` and `kernels::smlad_pairs`, feature `dsp`, ARM only), the
// x86-64 SIMD code (the AVX2 dot kernel `kernels/x86.rs`, the SSE2/AVX2 band spectra
// `preprocess/spectrum/x86.rs` and the SSE2 input quantisation `encoder/input.rs`:
// intrinsics, array ↔ vector transmutes, `target_feature` calls after detection) and
// the square-root instructions of `preprocess/spectrum/sqrt.rs`, each allowed locally
// with a SAFETY comment.
#![deny(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod ble;
pub mod blob;
pub mod crc;
pub mod device;
pub mod encoder;
#[cfg(feature = "std")]
pub mod f32_ref;
pub mod fixed;
pub mod kernels;
pub mod preprocess;
#[cfg(feature = "std")]
pub mod quant;
pub mod resample;
#[cfg(feature = "std")]
pub use f32_ref::F32Encoder;
pub mod frame;
pub mod sensor;
pub mod spike;
pub mod stream;

/// Test inputs: one 32-bit xorshift generator (13, 17, 5) for every unit test that
/// sweeps operands, seeded per test.
#[cfg(test)]
pub(crate) mod test_rng {
    pub fn xorshift32(seed: u32) -> impl FnMut() -> u32 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        }
    }
}
