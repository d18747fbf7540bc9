//! Dot-product kernels of the int8 encoder: `Σ x[i] · w[i]` with `x` unsigned 8-bit
//! activations (0..=255) and `w` signed 8-bit weights (two's-complement bytes), summed
//! exactly in `i32`.
//!
//! Two kernels compute the same integer:
//! - [`dot_portable`]: one multiply-add per element, any target.
//! - [`dot_packed`]: the Cortex-M DSP (SMLAD) formulation used by CMSIS-NN: read four
//!   bytes of `x` and `w` as one little-endian word, split each into two words of two
//!   16-bit lanes (bytes 0, 2 and bytes 1, 3; zero-extended for `x` like `UXTB16`,
//!   sign-extended for `w` like `SXTB16`), and add both lane products to the
//!   accumulator at once like `SMLAD`. Written in plain safe Rust (the ARM DSP
//!   intrinsics are not stable, and the `dsp` target feature cannot be tested in
//!   `cfg` on stable Rust), so the same code runs — and is tested — on the host.
//!
//! [`Kernel::for_target`] picks `Packed` on `target_arch = "arm"` and `Portable`
//! elsewhere. On thumbv7em LLVM compiles the plain-Rust lane arithmetic to `SMLABB`
//! (one 16-bit MAC per instruction). With the crate feature `dsp` on `target_arch =
//! "arm"` the lane step is the real `SMLAD` instruction (inline assembly, the crate's
//! only `unsafe`); enable it only for cores with the DSP extension (Cortex-M4/M7, any
//! ARMv7E-M). The tests run every kernel on the same inputs and demand identical
//! results; on the host `Packed` runs the exact packing with the emulated [`smlad`].
//!
//! No overflow is possible for the encoder's sizes: |x·w| ≤ 255 · 128 and at most
//! [`crate::blob::MAX_INPUT`] terms give |sum| < 2²⁶; the lane sums still use wrapping
//! adds (like the hardware) so that no input can make a debug build panic.

/// Which dot-product implementation the encoder uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// One multiply-add per element.
    Portable,
    /// Two 16-bit lane products per step (SMLAD style), four bytes per word.
    Packed,
}

impl Kernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [Kernel; 2] = [Kernel::Portable, Kernel::Packed];

    /// The kernel meant for the compilation target.
    pub const fn for_target() -> Kernel {
        if cfg!(target_arch = "arm") {
            Kernel::Packed
        } else {
            Kernel::Portable
        }
    }

    /// `Σ x[i] · (w[i] as i8)` over the common length of `x` and `w`.
    #[inline]
    pub fn dot(self, x: &[u8], w: &[u8]) -> i32 {
        match self {
            Kernel::Portable => dot_portable(x, w),
            Kernel::Packed => dot_packed(x, w),
        }
    }
}

/// Reference kernel: `Σ x[i] · (w[i] as i8)` over the common length.
#[inline]
pub fn dot_portable(x: &[u8], w: &[u8]) -> i32 {
    x.iter().zip(w).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add(a as i32 * (b as i8) as i32)
    })
}

/// Zero-extends bytes 0 and 2 of `word` into two 16-bit lanes (`UXTB16`).
#[inline(always)]
pub const fn uxtb16(word: u32) -> u32 {
    word & 0x00FF_00FF
}

/// Sign-extends bytes 0 and 2 of `word` into two 16-bit lanes (`SXTB16`).
#[inline(always)]
pub const fn sxtb16(word: u32) -> u32 {
    let lo = word as u8 as i8 as i16 as u16 as u32;
    let hi = (word >> 16) as u8 as i8 as i16 as u16 as u32;
    lo | (hi << 16)
}

/// `acc + lo(a)·lo(b) + hi(a)·hi(b)` on signed 16-bit lanes, wrapping (`SMLAD`).
#[inline(always)]
pub const fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let lo = (a as u16 as i16 as i32) * (b as u16 as i16 as i32);
    let hi = ((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32);
    acc.wrapping_add(lo).wrapping_add(hi)
}

/// The lane step of [`dot_packed`]: the `SMLAD` instruction where enabled.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[inline(always)]
#[allow(unsafe_code)]
fn smlad_step(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: SMLAD reads three registers and writes one; it touches no memory and no
    // stack. It may set the sticky Q flag on overflow (not reachable with the encoder's
    // sizes), so flags are not declared preserved. The `dsp` feature must only be
    // enabled for cores that implement the instruction (ARMv7E-M DSP extension).
    unsafe {
        core::arch::asm!(
            "smlad {out}, {a}, {b}, {acc}",
            out = lateout(reg) out,
            a = in(reg) a,
            b = in(reg) b,
            acc = in(reg) acc,
            options(pure, nomem, nostack),
        );
    }
    out
}

/// The lane step of [`dot_packed`]: the portable emulation of `SMLAD`.
#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
#[inline(always)]
fn smlad_step(a: u32, b: u32, acc: i32) -> i32 {
    smlad(a, b, acc)
}

/// SMLAD-style kernel: same result as [`dot_portable`].
#[inline]
pub fn dot_packed(x: &[u8], w: &[u8]) -> i32 {
    let n = x.len().min(w.len());
    let (x, w) = (x.get(..n).unwrap_or(&[]), w.get(..n).unwrap_or(&[]));
    let mut acc = 0i32;
    let mut xs = x.chunks_exact(4);
    let mut ws = w.chunks_exact(4);
    for (xc, wc) in (&mut xs).zip(&mut ws) {
        let (xw, ww) = match (xc, wc) {
            (&[x0, x1, x2, x3], &[w0, w1, w2, w3]) => (
                u32::from_le_bytes([x0, x1, x2, x3]),
                u32::from_le_bytes([w0, w1, w2, w3]),
            ),
            _ => (0, 0),
        };
        // Lanes (0, 2) then (1, 3): the sum is the same in any order.
        acc = smlad_step(uxtb16(xw), sxtb16(ww), acc);
        acc = smlad_step(uxtb16(xw >> 8), sxtb16(ww >> 8), acc);
    }
    acc.wrapping_add(dot_portable(xs.remainder(), ws.remainder()))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::vec;

    /// The shared test body: every kernel gives the reference result.
    fn check_all_kernels(x: &[u8], w: &[u8]) {
        let reference: i64 = x
            .iter()
            .zip(w)
            .map(|(&a, &b)| a as i64 * (b as i8) as i64)
            .sum();
        for kernel in Kernel::ALL {
            assert_eq!(
                kernel.dot(x, w) as i64,
                reference,
                "{kernel:?} len {}",
                x.len()
            );
        }
    }

    #[test]
    fn lane_helpers_match_their_definitions() {
        // Bytes (3, 2, 1, 0) = (0x7F, 0x80, 0x01, 0xFF): lanes take bytes 2 and 0.
        assert_eq!(sxtb16(0x7F80_01FF), 0xFF80_FFFF);
        assert_eq!(uxtb16(0x7F80_01FF), 0x0080_00FF);
        assert_eq!(smlad(0x0002_FFFF, 0x0003_0005, 10), 10 - 5 + 6);
    }

    #[test]
    fn extremes_at_every_length() {
        for len in 0..=33 {
            for (a, b) in [(255u8, 0x80u8), (255, 0x7F), (0, 0x80), (1, 0xFF)] {
                check_all_kernels(&vec![a; len], &vec![b; len]);
            }
        }
        // Largest possible sum for the largest input.
        let n = crate::blob::MAX_INPUT;
        check_all_kernels(&vec![255; n], &vec![0x80; n]);
    }

    #[test]
    fn mismatched_lengths_use_the_common_prefix() {
        check_all_kernels(&[1, 2, 3, 4, 5], &[1, 2, 3]);
        check_all_kernels(&[1, 2], &[0xFF; 9]);
    }

    proptest! {
        #[test]
        fn kernels_agree_on_random_vectors(pairs in proptest::collection::vec(any::<(u8, u8)>(), 0..600)) {
            let (x, w): (std::vec::Vec<u8>, std::vec::Vec<u8>) = pairs.into_iter().unzip();
            check_all_kernels(&x, &w);
        }
    }
}
