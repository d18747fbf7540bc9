//! The band amplitudes' square root: IEEE-754 `squareRoot`, correctly rounded (round to
//! nearest, ties to even), which is what `f32::sqrt` computes with `std`. Every target
//! the project builds for has it in hardware, so host, device and browser get the same
//! bits from one instruction:
//! - x86-64: SSE `sqrtss` (SSE2 is part of the target; the SIMD batches use `sqrtps`);
//! - 32-bit ARM with a hard-float ABI (the Cortex-M4F's FPv4-SP): `vsqrt.f32`;
//! - AArch64 (the native apps on phones): `fsqrt`;
//! - anything else with the `std` feature (the wasm binding: `f32.sqrt`, correctly
//!   rounded by the WebAssembly specification): `std`'s `f32::sqrt`.
//!
//! Without `std` elsewhere (e.g. a soft-float ARM build) [`sqrt_soft`] computes the same
//! rounding in integer arithmetic. The tests hold [`sqrt_soft`] and the host's
//! instructions to `std`'s `f32::sqrt` bit for bit; the device's and the browser's
//! instructions are held to them by the QEMU golden test and the browser check, which
//! demand the host's frames.
//!
//! NaN results may differ in their payload between targets (e.g. the sign of the default
//! NaN); the spectrum only produces them from non-finite or overflowing windows, whose
//! NaN values quantise to 0 whatever their bits.

/// `√x`, correctly rounded (see the module docs).
#[inline(always)]
pub(crate) fn sqrt_f32(x: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        x86_sqrt(x)
    }
    #[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
    {
        vfp_sqrt(x)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64_sqrt(x)
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "arm", target_abi = "eabihf"),
        target_arch = "aarch64"
    )))]
    {
        #[cfg(feature = "std")]
        {
            std::primitive::f32::sqrt(x)
        }
        #[cfg(not(feature = "std"))]
        {
            sqrt_soft(x)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn x86_sqrt(x: f32) -> f32 {
    use core::arch::x86_64::{_mm_cvtss_f32, _mm_set_ss, _mm_sqrt_ss};
    // SAFETY: SSE is enabled on every x86-64 target.
    unsafe { _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))) }
}

/// `vsqrt.f32 s0, s0` as a function of the hard-float ABI (argument and result in
/// `s0`). Not `asm!` inside Rust: stable Rust cannot name single-precision registers on
/// FPv4-SP (its target features lack `vfp2`), and moving the value through a core
/// register and back costs more than the call. `.fpu` names the Cortex-M4F's unit, which
/// the ELF's attributes already say (the assembler of module-level `asm` does not take
/// the target's features).
#[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
mod vfp {
    #![allow(unsafe_code)]

    core::arch::global_asm!(
        ".section .text.vsc_vsqrt_f32,\"ax\",%progbits",
        ".globl vsc_vsqrt_f32",
        ".p2align 1",
        ".type vsc_vsqrt_f32,%function",
        ".thumb_func",
        ".fpu fpv4-sp-d16",
        "vsc_vsqrt_f32:",
        "vsqrt.f32 s0, s0",
        "bx lr",
        ".size vsc_vsqrt_f32, . - vsc_vsqrt_f32",
    );

    unsafe extern "C" {
        fn vsc_vsqrt_f32(x: f32) -> f32;
    }

    #[inline(always)]
    pub(super) fn sqrt(x: f32) -> f32 {
        // SAFETY: the function above reads `s0` and writes `s0` (the ABI's argument and
        // result), touches no memory, and returns; every hard-float ARM core has
        // VSQRT.F32 (VFPv2 onwards, FPv4-SP on the Cortex-M4F).
        unsafe { vsc_vsqrt_f32(x) }
    }
}

#[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
use vfp::sqrt as vfp_sqrt;

#[cfg(target_arch = "aarch64")]
#[inline(always)]
#[allow(unsafe_code)]
fn aarch64_sqrt(x: f32) -> f32 {
    let root: f32;
    // SAFETY: FSQRT reads and writes one FP register (FP is mandatory on AArch64); no
    // memory, no stack.
    unsafe {
        core::arch::asm!(
            "fsqrt {root:s}, {x:s}",
            root = lateout(vreg) root,
            x = in(vreg) x,
            options(pure, nomem, nostack),
        );
    }
    root
}

/// `√x` correctly rounded in integer arithmetic: the 24-bit root of the significand by
/// digit-by-digit extraction, rounded up when the remainder exceeds the root (a root
/// never lies exactly halfway between two floats, so there are no ties).
#[cfg_attr(
    any(
        feature = "std",
        target_arch = "x86_64",
        all(target_arch = "arm", target_abi = "eabihf"),
        target_arch = "aarch64"
    ),
    allow(dead_code)
)]
pub(crate) fn sqrt_soft(x: f32) -> f32 {
    let bits = x.to_bits();
    // NaN, ±0 and +∞ are their own root; any other negative number has none.
    if x.is_nan() || x == 0.0 || x == f32::INFINITY {
        return x;
    }
    if bits >> 31 != 0 {
        return f32::NAN;
    }
    // x = significand · 2^exp with the significand in [2²³, 2²⁴).
    let mut exp = (bits >> 23) as i32 - 150;
    let mut significand = bits & 0x007F_FFFF;
    if exp == -150 {
        // Subnormal: normalise (the significand is not 0 here).
        exp = -149;
        while significand & 0x0080_0000 == 0 {
            significand <<= 1;
            exp -= 1;
        }
    } else {
        significand |= 0x0080_0000;
    }
    // √(significand · 2^shift) lies in [2²³, 2²⁴) for shift 23 or 24; pick the one that
    // leaves an even power of two outside the root.
    let shift = if (exp - 23) % 2 == 0 { 23 } else { 24 };
    let radicand = u64::from(significand) << shift;
    let (mut root, mut remainder) = (0u64, 0u64);
    for pair in (0..24).rev() {
        remainder = (remainder << 2) | ((radicand >> (2 * pair)) & 3);
        let trial = (root << 2) | 1;
        root <<= 1;
        if remainder >= trial {
            remainder -= trial;
            root |= 1;
        }
    }
    // remainder = radicand − root²; √radicand > root + ½ ⇔ remainder > root.
    if remainder > root {
        root += 1;
    }
    // Value root · 2^q, q = (exp − shift) / 2; the float with significand `root` (2²³ is
    // the implicit bit, 2²⁴ carries into the exponent) has biased exponent q + 150.
    let biased = (exp - shift) / 2 + 150;
    f32::from_bits((((biased - 1) as u32) << 23).wrapping_add(root as u32))
}

#[cfg(test)]
pub(super) mod tests {
    extern crate std;

    use super::*;

    /// Specials, the extremes of each range, and values around exact squares (where a
    /// root lies closest to halfway between two floats).
    pub(in super::super) fn hard_inputs() -> std::vec::Vec<f32> {
        let mut v = std::vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            -1.0,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(2),
            f32::from_bits(3),
            f32::from_bits(0x007F_FFFF),
            f32::from_bits(0x8000_0001),
            f32::MIN_POSITIVE,
            f32::MAX,
            1.0,
            2.0,
            4.0,
        ];
        for k in 1..5000u32 {
            let square = (k as f32) * (k as f32);
            for d in -3i32..=3 {
                v.push(f32::from_bits(square.to_bits().wrapping_add_signed(d)));
            }
        }
        v
    }

    fn xorshift(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    fn same(got: f32, want: f32) -> bool {
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
    }

    #[test]
    fn soft_and_hardware_roots_are_std_sqrt_bit_for_bit() {
        let mut state = 0x9E37_79B9u32;
        let random = (0..2_000_000).map(|_| f32::from_bits(xorshift(&mut state)));
        for x in hard_inputs().into_iter().chain(random) {
            let want = x.sqrt();
            assert!(
                same(sqrt_soft(x), want),
                "soft {x:e}: {:e} vs {want:e}",
                sqrt_soft(x)
            );
            assert!(
                same(sqrt_f32(x), want),
                "{x:e}: {:e} vs {want:e}",
                sqrt_f32(x)
            );
        }
    }

    /// Every float of two whole binades (odd and even exponent) and every subnormal.
    #[test]
    fn soft_root_is_std_sqrt_on_whole_binades() {
        for base in [0x3F80_0000u32, 0x4000_0000, 0] {
            for m in 0..0x0080_0000u32 {
                let x = f32::from_bits(base | m);
                assert_eq!(sqrt_soft(x).to_bits(), x.sqrt().to_bits(), "{x:e}");
            }
        }
    }
}
