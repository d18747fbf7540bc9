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
//! The encoder's `Packed` path goes further ([`Packed`], [`Packed::dot2`]): each layer
//! input is packed once into 16-bit lane pairs, so per 4 weights only the weight word
//! is split, and two rows share every input load. With `dsp` on `target_arch = "arm"`
//! its inner loop is assembly (`smlad_groups`): per 8 columns one `LDM` of inputs, per
//! row one `LDRD` (two `LDR` for rows that are not word-aligned) of weights, 2 `SXTB16`,
//! 2 `SXTB16 … ROR #8` and 4 `SMLAD`: 78 instructions per 64 MACs. Its result is checked
//! on the host against the same packing in plain Rust only indirectly (the host cannot
//! run it): `cargo xtask firmware --golden` compares the device's frames with the
//! host's.
//!
//! [`Kernel::Avx2`] (`kernels/x86.rs`) is the x86-64 kernel: 16 columns per step
//! widened to 16-bit lanes and multiplied with `vpmaddwd` (exact), four rows sharing each
//! input load ([`Kernel::dot4`]); without AVX2 it runs [`dot_portable`].
//!
//! [`Kernel::for_target`] picks `Packed` on `target_arch = "arm"`, `Avx2` on x86-64 and
//! `Portable` elsewhere. On thumbv7em LLVM compiles the plain-Rust lane arithmetic to
//! `SMLABB` (one 16-bit MAC per instruction). With the crate feature `dsp` on
//! `target_arch = "arm"` the lane step is the real `SMLAD` instruction (inline assembly;
//! with the AVX2 loads the crate's only `unsafe`); enable it only for cores with the DSP
//! extension (Cortex-M4/M7, any ARMv7E-M). The tests run every kernel on the same inputs
//! and demand identical results; on the host `Packed` runs the exact packing with the
//! emulated [`smlad`], and `Avx2` runs AVX2 where the CPU has it.
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
    /// AVX2 on x86-64 (`kernels/x86.rs`), four rows per pass over the input. Where AVX2
    /// is missing (no `std` to detect it and no `target-feature=+avx2`, another CPU or
    /// architecture) it runs [`dot_portable`]: same results everywhere.
    Avx2,
}

impl Kernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [Kernel; 3] = [Kernel::Portable, Kernel::Packed, Kernel::Avx2];

    /// The kernel meant for the compilation target: `Packed` on ARM, `Avx2` on x86-64
    /// (which falls back to `Portable` at run time without AVX2), else `Portable`.
    pub const fn for_target() -> Kernel {
        if cfg!(target_arch = "arm") {
            Kernel::Packed
        } else if cfg!(target_arch = "x86_64") {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// The implementation that actually runs: `Avx2` becomes `Portable` where AVX2 is
    /// not available (see [`Kernel::Avx2`]); the others are themselves.
    pub fn effective(self) -> Kernel {
        match self {
            Kernel::Avx2 if !avx2_available() => Kernel::Portable,
            k => k,
        }
    }

    /// `Σ x[i] · (w[i] as i8)` over the common length of `x` and `w`.
    #[inline]
    pub fn dot(self, x: &[u8], w: &[u8]) -> i32 {
        match self {
            Kernel::Portable => dot_portable(x, w),
            Kernel::Packed => dot_via_packed(x, w),
            Kernel::Avx2 => dot_avx2(x, w),
        }
    }

    /// Four rows at once: `[x · w0, x · w1, x · w2, x · w3]`, each over its common
    /// length with `x`. `Avx2` loads every input once for the four rows; the others
    /// compute the rows one by one.
    #[inline]
    pub fn dot4(self, x: &[u8], w: [&[u8]; 4]) -> [i32; 4] {
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Avx2
            && let Some(sums) = x86::dot4(x, w)
        {
            return sums;
        }
        w.map(|row| self.dot(x, row))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;

/// Whether [`Kernel::Avx2`] runs AVX2 code here (else it runs [`dot_portable`]).
pub fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::avx2_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`Kernel::Avx2`] on one row.
#[inline]
fn dot_avx2(x: &[u8], w: &[u8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(sum) = x86::dot(x, w) {
        return sum;
    }
    dot_portable(x, w)
}

/// Reference kernel: `Σ x[i] · (w[i] as i8)` over the common length.
#[inline(never)]
pub fn dot_portable(x: &[u8], w: &[u8]) -> i32 {
    // Independent lane accumulators let the compiler keep 16 products in flight (SIMD on
    // hosts that have it): 18.1 -> 15.1 µs per window on x86-64. Wrapping integer sums
    // are exact in any order, so the result is bit-identical to a sequential sum.
    const LANES: usize = 16;
    let mut lanes = [0i32; LANES];
    let (mut xs, mut ws) = (x.chunks_exact(LANES), w.chunks_exact(LANES));
    for (xc, wc) in (&mut xs).zip(&mut ws) {
        for ((l, &a), &b) in lanes.iter_mut().zip(xc).zip(wc) {
            *l = l.wrapping_add(a as i32 * (b as i8) as i32);
        }
    }
    // Tail: the columns after the last chunk that is full in both slices.
    let done = x.len().min(w.len()) / LANES * LANES;
    let tail_x = x.get(done..).unwrap_or(&[]);
    let tail_w = w.get(done..).unwrap_or(&[]);
    let tail = tail_x.iter().zip(tail_w).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add(a as i32 * (b as i8) as i32)
    });
    lanes.iter().fold(tail, |acc, &l| acc.wrapping_add(l))
}

/// [`Kernel::Packed`] on plain slices: packs `x` in chunks of [`crate::blob::MAX_INPUT`]
/// columns and runs [`Packed::dot2`] (the encoder's path) on each.
fn dot_via_packed(x: &[u8], w: &[u8]) -> i32 {
    const CHUNK: usize = crate::blob::MAX_INPUT;
    let mut buf = [0u32; packed_words(CHUNK)];
    x.chunks(CHUNK)
        .zip(w.chunks(CHUNK))
        .fold(0i32, |acc, (xc, wc)| {
            Packed::new(xc, &mut buf).dot2(wc, wc, (acc, 0)).0
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

/// Columns per iteration of the grouped two-row loop ([`Packed::dot2`]).
pub const GROUP_COLS: usize = 32;
/// Words after the grouped part of a packed input: the end marker and three words that
/// the loop's look-ahead load reads.
const END_WORDS: usize = 4;
/// The end marker; no packed word equals it (lanes hold 0..=255).
const END_MARK: u32 = u32::MAX;

/// Words of a [`Packed`] buffer for up to `cols` inputs.
pub const fn packed_words(cols: usize) -> usize {
    cols.div_ceil(4) * 2 + END_WORDS
}

/// An input vector `x` (u8) laid out for `SMLAD`: every group of four inputs
/// `(x0, x1, x2, x3)` becomes the two words `x0 | x2 << 16` and `x1 | x3 << 16`, the
/// 16-bit lanes that `SXTB16` and `SXTB16 … ROR #8` make of four weight bytes. The first
/// `GROUP_COLS · ⌊cols / GROUP_COLS⌋` columns come first, then four words
/// starting with the end marker (it stops the assembly loop without a counter register),
/// then the remaining columns (zero-padded to four). Packed once per layer input and
/// shared by every row.
#[derive(Clone, Copy, Debug)]
pub struct Packed<'a> {
    words: &'a [u32],
    cols: usize,
}

impl<'a> Packed<'a> {
    /// Packs `x` into `buf`; inputs beyond the capacity of `buf` are dropped.
    #[inline(never)]
    pub fn new(x: &[u8], buf: &'a mut [u32]) -> Packed<'a> {
        let capacity = buf.len().saturating_sub(END_WORDS) / 2 * 4;
        let cols = x.len().min(capacity);
        let x = x.get(..cols).unwrap_or(&[]);
        let grouped = cols / GROUP_COLS * GROUP_COLS;
        let (head, tail) = x.split_at(grouped);
        let mut out = buf.iter_mut();
        let mut put = |a: u32, b: u32| {
            if let (Some(p), Some(q)) = (out.next(), out.next()) {
                (*p, *q) = (a, b);
            }
        };
        for c in head.chunks_exact(4) {
            let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            put(uxtb16(w), uxtb16(w >> 8));
        }
        put(END_MARK, 0);
        put(0, 0);
        for c in tail.chunks(4) {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            let w = u32::from_le_bytes(b);
            put(uxtb16(w), uxtb16(w >> 8));
        }
        Packed { words: buf, cols }
    }

    /// Number of inputs.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The two words of 4-column block `block` (zero past the end).
    #[inline(always)]
    fn block(&self, block: usize) -> (u32, u32) {
        let grouped_blocks = self.cols / GROUP_COLS * (GROUP_COLS / 4);
        let at = if block < grouped_blocks {
            2 * block
        } else {
            2 * block + END_WORDS
        };
        (
            self.words.get(at).copied().unwrap_or(0),
            self.words.get(at + 1).copied().unwrap_or(0),
        )
    }

    /// `acc + Σ x[i] · w[i]` over 4-column blocks `from_block..` (plain Rust with
    /// single SMLAD steps).
    #[inline(never)]
    fn dot_from(&self, w: &[u8], from_block: usize, mut acc: i32) -> i32 {
        let n = self.cols.min(w.len());
        let w = w.get(..n).unwrap_or(&[]);
        let mut chunks = w.chunks_exact(4);
        for (b, c) in (from_block..).zip((&mut chunks).skip(from_block)) {
            let ww = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let (x02, x13) = self.block(b);
            acc = smlad_step(sxtb16(ww), x02, acc);
            acc = smlad_step(sxtb16(ww >> 8), x13, acc);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() && n / 4 >= from_block {
            let ww = rest
                .iter()
                .rev()
                .fold(0u32, |word, &byte| (word << 8) | byte as u32);
            let (x02, x13) = self.block(n / 4);
            acc = smlad_step(sxtb16(ww), x02, acc);
            acc = smlad_step(sxtb16(ww >> 8), x13, acc);
        }
        acc
    }

    /// `acc + Σ x[i] · (w[i] as i8)` over the common length.
    pub fn dot(&self, w: &[u8], acc: i32) -> i32 {
        self.dot_from(w, 0, acc)
    }

    /// Two rows at once: `(acc0 + x·w0, acc1 + x·w1)`, each over its common length.
    /// On `target_arch = "arm"` with the `dsp` feature the grouped columns run in the
    /// assembly loop `smlad_groups`.
    #[inline(never)]
    pub fn dot2(&self, w0: &[u8], w1: &[u8], acc: (i32, i32)) -> (i32, i32) {
        #[cfg(all(target_arch = "arm", feature = "dsp"))]
        let (acc, from_block) = {
            let groups = self.cols / GROUP_COLS;
            match smlad_groups(self.words, groups, w0, w1, acc) {
                Some(grouped) => (grouped, groups * (GROUP_COLS / 4)),
                None => (acc, 0),
            }
        };
        #[cfg(not(all(target_arch = "arm", feature = "dsp")))]
        let from_block = 0;
        if from_block * 4 >= self.cols {
            return acc;
        }
        (
            self.dot_from(w0, from_block, acc.0),
            self.dot_from(w1, from_block, acc.1),
        )
    }
}

/// The grouped loop of [`smlad_groups`] for one way of loading 8 weight bytes of a row
/// (`$load0`, `$load1`: into `r5`, `r12`, advancing `r3` resp. `r4` by 8).
#[cfg(all(target_arch = "arm", feature = "dsp"))]
macro_rules! smlad_loop {
    ($x:expr, $w0:expr, $w1:expr, $a0:ident, $a1:ident, $load0:literal, $load1:literal) => {
        core::arch::asm!(
            "ldm r2!, {{r8-r11}}",
            "2:",
            ".rept 4",
            $load0,
            "sxtb16 lr, r5",
            "smlad r0, lr, r8, r0",
            "sxtb16 r5, r5, ror #8",
            "smlad r0, r5, r9, r0",
            "sxtb16 lr, r12",
            "smlad r0, lr, r10, r0",
            "sxtb16 r12, r12, ror #8",
            "smlad r0, r12, r11, r0",
            $load1,
            "sxtb16 lr, r5",
            "smlad r1, lr, r8, r1",
            "sxtb16 r5, r5, ror #8",
            "smlad r1, r5, r9, r1",
            "sxtb16 lr, r12",
            "smlad r1, lr, r10, r1",
            "sxtb16 r12, r12, ror #8",
            "smlad r1, r12, r11, r1",
            "ldm r2!, {{r8-r11}}",
            ".endr",
            "cmn r8, #1",
            "bne 2b",
            inout("r0") $a0,
            inout("r1") $a1,
            inout("r2") $x => _,
            inout("r3") $w0 => _,
            inout("r4") $w1 => _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(readonly, nostack),
        )
    };
}

/// The grouped part of [`Packed::dot2`] in assembly. Per 8 columns: one `LDM` of 4 input
/// words shared by both rows; per row one `LDRD` of 8 weight bytes (two `LDR`s when a
/// row is not word-aligned, as in a blob embedded at an odd address), 2 `SXTB16`,
/// 2 `SXTB16 … ROR #8` and 4 `SMLAD`. `None` (nothing computed) unless `groups ≥ 1`,
/// both rows hold `32 · groups` bytes and the end marker sits at word `16 · groups`.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[inline(never)]
#[allow(unsafe_code)]
fn smlad_groups(
    x: &[u32],
    groups: usize,
    w0: &[u8],
    w1: &[u8],
    acc: (i32, i32),
) -> Option<(i32, i32)> {
    let grouped_cols = groups * GROUP_COLS;
    let end = groups * (GROUP_COLS / 2);
    if groups == 0
        || w0.len() < grouped_cols
        || w1.len() < grouped_cols
        || x.len() < end + END_WORDS
        || x.get(end) != Some(&END_MARK)
    {
        return None;
    }
    let (mut a0, mut a1) = acc;
    let aligned = (w0.as_ptr() as usize | w1.as_ptr() as usize).is_multiple_of(4);
    let (xp, p0, p1) = (x.as_ptr(), w0.as_ptr(), w1.as_ptr());
    // SAFETY: the loop reads input words from `x` until the first group start holding
    // the end marker, which is at word `end` or before (checked above), plus the three
    // words after it (`x.len() ≥ end + 4`), and at most `grouped_cols` bytes from each of
    // `w0` and `w1` (checked). `x` is `[u32]` (word-aligned for `LDM`); `LDRD` is used
    // only on word-aligned rows, else `LDR`, which ARMv7-M allows unaligned. It writes no
    // memory and no stack; every register it changes is an output or clobber. SXTB16 and
    // SMLAD need the DSP extension, which the `dsp` feature promises. SMLAD may set the
    // sticky Q flag (unreachable sums); flags are not declared preserved.
    unsafe {
        if aligned {
            smlad_loop!(
                xp,
                p0,
                p1,
                a0,
                a1,
                "ldrd r5, r12, [r3], #8",
                "ldrd r5, r12, [r4], #8"
            );
        } else {
            smlad_loop!(
                xp,
                p0,
                p1,
                a0,
                a1,
                "ldr r5, [r3], #4\nldr r12, [r3], #4",
                "ldr r5, [r4], #4\nldr r12, [r4], #4"
            );
        }
    }
    Some((a0, a1))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::vec;

    /// One multiply-add at a time, in order: what `dot_portable`'s lanes must equal.
    fn dot_sequential(x: &[u8], w: &[u8]) -> i32 {
        x.iter().zip(w).fold(0i32, |acc, (&a, &b)| {
            acc.wrapping_add(a as i32 * (b as i8) as i32)
        })
    }

    #[test]
    fn lane_sums_equal_the_sequential_sum_at_every_length() {
        // Extreme values (255 × -128) in every position and lengths around the lane width,
        // including slices of different lengths.
        let x: std::vec::Vec<u8> = (0..80u32)
            .map(|i| if i % 3 == 0 { 255 } else { (i * 37) as u8 })
            .collect();
        let w: std::vec::Vec<u8> = (0..80u32)
            .map(|i| if i % 2 == 0 { 0x80 } else { (i * 91) as u8 })
            .collect();
        for nx in 0..=x.len() {
            for nw in [0, 1, 15, 16, 17, 33, nx, 80] {
                let (xs, ws) = (&x[..nx], &w[..nw.min(w.len())]);
                assert_eq!(
                    dot_portable(xs, ws),
                    dot_sequential(xs, ws),
                    "nx {nx} nw {nw}"
                );
            }
        }
    }

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

    /// `Kernel::dot4` of every kernel equals `dot_portable` row by row; rows may be
    /// shorter or longer than `x` and of different lengths.
    fn check_dot4(x: &[u8], w: [&[u8]; 4]) {
        let want = w.map(|row| dot_portable(x, row));
        for kernel in Kernel::ALL {
            assert_eq!(
                kernel.dot4(x, w),
                want,
                "{kernel:?} len {} / {:?}",
                x.len(),
                w.map(<[u8]>::len)
            );
        }
    }

    /// On a CPU with AVX2 the SIMD code must really run in these tests (else they would
    /// only compare the portable fallback with itself).
    #[test]
    fn avx2_kernel_runs_where_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(avx2_available(), std::is_x86_feature_detected!("avx2"));
            assert_eq!(x86::dot(&[1; 40], &[3; 40]).is_some(), avx2_available());
        }
        let want = if avx2_available() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        };
        assert_eq!(Kernel::Avx2.effective(), want);
        assert_eq!(Kernel::Packed.effective(), Kernel::Packed);
    }

    #[test]
    fn extremes_at_every_length_up_to_600() {
        // Every SIMD block count and every remainder, with the extreme products
        // 255 × -128 and 255 × 127 (the ones that would saturate 16-bit pair sums).
        for len in 0..600 {
            for (a, b) in [(255u8, 0x80u8), (255, 0x7F), (0, 0x80), (255, 0)] {
                let (x, w) = (vec![a; len], vec![b; len]);
                check_all_kernels(&x, &w);
                let w_neg = vec![0x80; len];
                let w_pos = vec![0x7F; len];
                check_dot4(&x, [&w, &w_neg, &w_pos, &w[..len / 2]]);
            }
            // Mixed extremes in every lane position.
            let x: std::vec::Vec<u8> = (0..len).map(|i| if i % 3 == 1 { 0 } else { 255 }).collect();
            let w: std::vec::Vec<u8> = (0..len)
                .map(|i| if i % 5 < 2 { 0x80 } else { 0x7F })
                .collect();
            check_all_kernels(&x, &w);
            check_dot4(&x, [&w, &w[len / 3..], &x, &w]);
        }
    }

    #[test]
    fn mismatched_lengths_use_the_common_prefix() {
        check_all_kernels(&[1, 2, 3, 4, 5], &[1, 2, 3]);
        check_all_kernels(&[1, 2], &[0xFF; 9]);
    }

    /// `Packed::dot2` on two different rows (any length, any byte offset of the rows, with
    /// and without grouped columns) equals the portable kernel row by row.
    fn check_dot2(x: &[u8], w0: &[u8], w1: &[u8], acc: (i32, i32)) {
        let mut buf = [0u32; packed_words(crate::blob::MAX_INPUT)];
        let packed = Packed::new(x, &mut buf);
        assert_eq!(packed.cols(), x.len());
        let got = packed.dot2(w0, w1, acc);
        let want = (
            acc.0.wrapping_add(dot_portable(x, w0)),
            acc.1.wrapping_add(dot_portable(x, w1)),
        );
        assert_eq!(got, want, "len {} / {} / {}", x.len(), w0.len(), w1.len());
        assert_eq!(packed.dot(w0, acc.0), want.0);
    }

    #[test]
    fn two_row_kernel_at_every_length_and_offset() {
        let bytes: std::vec::Vec<u8> = (0..400u32).map(|i| (i * 97 + 13) as u8).collect();
        for len in [0, 1, 3, 4, 7, 31, 32, 33, 63, 64, 65, 100, 128, 129] {
            let x: std::vec::Vec<u8> = (0..len as u32).map(|i| (i * 31 + 7) as u8).collect();
            for offset in 0..4 {
                let w0 = &bytes[offset..offset + len];
                let w1 = &bytes[200 + offset..200 + offset + len];
                check_dot2(&x, w0, w1, (5, -7));
                // Shorter rows: the common length counts.
                check_dot2(&x, &w0[..len / 2], w1, (0, 0));
            }
        }
        let n = crate::blob::MAX_INPUT;
        check_dot2(&vec![255; n], &vec![0x80; n], &vec![0x7F; n], (0, 0));
    }

    proptest! {
        #[test]
        fn two_row_kernel_agrees_on_random_rows(
            rows in proptest::collection::vec(any::<(u8, u8, u8)>(), 0..300),
            acc in any::<(i32, i32)>(),
        ) {
            let x: std::vec::Vec<u8> = rows.iter().map(|r| r.0).collect();
            let w0: std::vec::Vec<u8> = rows.iter().map(|r| r.1).collect();
            let w1: std::vec::Vec<u8> = rows.iter().map(|r| r.2).collect();
            check_dot2(&x, &w0, &w1, acc);
        }

        #[test]
        fn four_row_kernel_agrees_on_random_rows(
            x in proptest::collection::vec(any::<u8>(), 0..600),
            rows in proptest::collection::vec(any::<u8>(), 0..2400),
            cuts in any::<[u16; 4]>(),
        ) {
            // Four rows of random content; each a random length around that of `x`.
            let row = |r: usize| {
                let len = (x.len() + 40).saturating_sub(cuts[r] as usize % 80).min(600);
                let start = (r * 600).min(rows.len());
                &rows[start..(start + len).min(rows.len())]
            };
            check_dot4(&x, [row(0), row(1), row(2), row(3)]);
        }

        #[test]
        fn kernels_agree_on_random_vectors(pairs in proptest::collection::vec(any::<(u8, u8)>(), 0..600)) {
            let (x, w): (std::vec::Vec<u8>, std::vec::Vec<u8>) = pairs.into_iter().unzip();
            check_all_kernels(&x, &w);
        }
    }
}
