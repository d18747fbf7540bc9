// The square-root check of the QEMU board, shared by `build.rs` (the host's `f32::sqrt`)
// and `main.rs` (edge-runtime's spectrum root on the Cortex-M4F's FPU): the same inputs
// and hash on both sides, so the firmware can compare its roots with the host's.

/// Inputs of the check: pseudo-random non-negative floats of every magnitude (every
/// exponent, subnormals included), NaNs left out (their payloads may differ by design).
pub const SQRT_CHECK_INPUTS: u32 = 1 << 20;

/// FNV-1a over the bits of `sqrt(x)` for the check's inputs.
pub fn sqrt_check_hash(sqrt: impl Fn(f32) -> f32) -> u32 {
    let mut state = 0x2545_F491u32;
    let mut hash = 0x811C_9DC5u32;
    for _ in 0..SQRT_CHECK_INPUTS {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let x = f32::from_bits(state & 0x7FFF_FFFF);
        if x.is_nan() {
            continue;
        }
        hash = (hash ^ sqrt(x).to_bits()).wrapping_mul(0x0100_0193);
    }
    hash
}
