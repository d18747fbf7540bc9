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
//! Row-pair layers (blob format 5, [`crate::blob::WeightLayout::RowPairs`]) store two
//! rows per halfword, `h = 256 · b + a`; [`Kernel::dot_pair`] gives both rows' sums.
//! The encoder's `Packed` path ([`PairInput`]) packs each layer input once into 16-bit
//! lane pairs, so that one `SMLAD` of a weight word with an input word adds
//! `256 · b·x + a·x` and one more of its `SXTB16` adds `a·x`; `b·x` is their difference
//! over 256, exact within the blob's row bound ([`crate::blob::MAX_ROW_L1`]). With `dsp`
//! on `target_arch = "arm"` the whole pair loop is assembly (`smlad_pairs`: consecutive
//! pairs, biases loaded there too, without returning to Rust): per 8 columns one `LDM` of
//! inputs, one `LDM` of weights, 4 `SXTB16` and 8 `SMLAD`, i.e. 14 instructions per 16
//! MACs (0.875 per MAC), unrolled 8 steps deep (a counter test per 64 columns; a pair
//! enters the first iteration part-way, so there is no tail loop). The host runs the same
//! arithmetic in plain Rust (`PairInput::pair_rust`) in its tests; the assembly itself is
//! checked by `cargo xtask firmware --golden`, which compares the device's frames with
//! the host's. Row-major layers (formats 1–4) run in [`dot_portable`] on the Cortex-M.
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
            Kernel::Packed => dot_packed(x, w),
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
    // are exact in any order, so the result is bit-identical to a sequential sum. The
    // Cortex-M has no SIMD for this and runs it only when asked for `Portable`: one lane
    // there saves ~450 bytes of flash.
    const LANES: usize = if cfg!(target_arch = "arm") { 1 } else { 16 };
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

/// Columns per step of the assembly loop: one `LDM` of 4 packed input words (8 columns)
/// and one `LDM` of 4 weight words (the same 8 columns of both rows of a pair).
const STEP_COLS: usize = crate::blob::PAIR_COLS_MULTIPLE;
/// Steps per iteration of the unrolled assembly loop; a pair of `n` steps enters the
/// first iteration `(UNROLL − n mod UNROLL) mod UNROLL` steps in, so the loop needs no
/// tail and tests its counter once per `UNROLL` steps.
#[cfg_attr(not(all(target_arch = "arm", feature = "dsp")), allow(dead_code))]
const UNROLL: usize = 8;
/// Code bytes of one step of the assembly loop: 14 instructions, all 32-bit encodings
/// (checked by the assembler).
#[cfg_attr(not(all(target_arch = "arm", feature = "dsp")), allow(dead_code))]
const STEP_CODE_BYTES: usize = 56;

/// Words of a [`PairInput`] buffer for up to `cols` inputs: one word per two columns,
/// zero-padded to a multiple of [`crate::blob::PAIR_COLS_MULTIPLE`] columns.
pub const fn pair_input_words(cols: usize) -> usize {
    cols.next_multiple_of(STEP_COLS) / 2
}

/// `(Σ x[c] · a[c], Σ x[c] · b[c])` for a row pair stored as halfwords
/// `h[c] = 256 · b[c] + a[c]` ([`crate::blob::WeightLayout::RowPairs`]), over the common
/// length of `x` and the pair's columns; each weight decoded on its own, one
/// multiply-add per weight.
#[inline(never)]
pub fn dot_pair_portable(x: &[u8], pair: &[u8]) -> (i32, i32) {
    let (mut a, mut b) = (0i32, 0i32);
    for (&xv, h) in x.iter().zip(pair.as_chunks::<2>().0) {
        let [wa, wb] = crate::blob::pair_weights(i16::from_le_bytes(*h));
        a = a.wrapping_add(xv as i32 * wa as i32);
        b = b.wrapping_add(xv as i32 * wb as i32);
    }
    (a, b)
}

impl Kernel {
    /// One row pair ([`dot_pair_portable`]'s sums) with this kernel: `Avx2` in AVX2 where
    /// the CPU has it, `Packed` with the SMLAD arithmetic of the assembly loop (input
    /// packed first, as in [`PairInput`]), `Portable` decoding each weight.
    pub fn dot_pair(self, x: &[u8], pair: &[u8]) -> (i32, i32) {
        match self {
            Kernel::Portable => dot_pair_portable(x, pair),
            Kernel::Avx2 => {
                #[cfg(target_arch = "x86_64")]
                if let Some(sums) = x86::dot_pair(x, pair) {
                    return sums;
                }
                dot_pair_portable(x, pair)
            }
            Kernel::Packed => dot_pair_via_packed(x, pair),
        }
    }
}

/// [`Kernel::Packed`] on one row pair of plain slices (the encoder packs its inputs once
/// per layer instead). Out of line: its 2.3 KiB packing buffer would otherwise enlarge
/// the stack frame of every caller.
#[inline(never)]
fn dot_pair_via_packed(x: &[u8], pair: &[u8]) -> (i32, i32) {
    let cols = x.len().min(pair.len() / 2);
    let mut buf = [0i32; pair_input_words(crate::blob::MAX_INPUT)];
    let input = PairInput::new(x.get(..cols).unwrap_or(&[]), &mut buf);
    // Only the pair's whole steps; the columns after them one by one.
    let whole = cols / STEP_COLS * STEP_COLS;
    let (a, b) = input.pair_rust(pair.get(..2 * whole).unwrap_or(&[]), (0, 0));
    let (ta, tb) = dot_pair_portable(
        x.get(whole..cols).unwrap_or(&[]),
        pair.get(2 * whole..).unwrap_or(&[]),
    );
    (a.wrapping_add(ta), b.wrapping_add(tb))
}

/// A layer input `x` (u8) laid out for the row-pair kernel: word `i` holds columns `2i`
/// and `2i + 1` as the 16-bit lanes `x[2i] | x[2i + 1] << 16`, zero-padded to a multiple
/// of [`crate::blob::PAIR_COLS_MULTIPLE`] columns. Packed once per layer input and shared
/// by every row pair (the two heads share one packing).
///
/// With a pair's weight word `(h[c], h[c + 1])`, `h = 256 · b + a`:
/// - `SMLAD(w, X)` adds `256 · (b·x) + a·x` to `T`;
/// - `SXTB16(w)` is `(a[c], a[c + 1])` (the low byte of `h` is `a` as a two's-complement
///   byte), so `SMLAD(SXTB16(w), X)` adds `a·x` to `D`;
/// - after the row, `b·x = (T − D) >> 8` (arithmetic shift): exact because
///   `|b·x| < 2²³` ([`crate::blob::MAX_ROW_L1`], checked by the blob parser), so
///   `256 · b·x` fits `i32` and the wrapping sums modulo 2³² give it exactly.
///
/// 14 instructions per 16 multiply-adds on the Cortex-M4 ([`PairInput::dot_pairs`]).
#[derive(Clone, Copy, Debug)]
pub struct PairInput<'a> {
    /// Lane words as `i32` bit patterns (so that a caller's buffer can also hold
    /// accumulators); `padded_cols / 2` of them.
    words: &'a [i32],
    /// Columns of `x` kept (at most the buffer's capacity).
    cols: usize,
}

impl<'a> PairInput<'a> {
    /// Packs `x` into `buf`; inputs beyond the capacity of `buf` are dropped.
    #[inline(never)]
    pub fn new(x: &[u8], buf: &'a mut [i32]) -> PairInput<'a> {
        let cols = Self::fit(x.len(), buf.len());
        let padded_words = cols.next_multiple_of(STEP_COLS) / 2;
        let (lane_words, _) = buf.split_at_mut(padded_words.min(buf.len()));
        let x = x.get(..cols).unwrap_or(&[]);
        let (quads, rest) = x.as_chunks::<4>();
        let (word_pairs, tail) = lane_words.as_chunks_mut::<2>();
        // Four columns per step: one little-endian load, two lane words.
        let whole = quads.len().min(word_pairs.len());
        for (q, w) in quads.iter().zip(word_pairs.iter_mut()) {
            let v = u32::from_le_bytes(*q);
            *w = [
                (v & 0xFF | (v << 8) & 0x00FF_0000) as i32,
                ((v >> 16) & 0xFF | (v >> 8) & 0x00FF_0000) as i32,
            ];
        }
        // The last 1..=3 columns, then zeros up to the padding.
        let mut last = [0u8; 4];
        for (l, &v) in last.iter_mut().zip(rest) {
            *l = v;
        }
        let mut next = [
            last[0] as i32 | (last[1] as i32) << 16,
            last[2] as i32 | (last[3] as i32) << 16,
        ];
        for w in word_pairs.iter_mut().skip(whole) {
            *w = next;
            next = [0, 0];
        }
        if let Some(w) = tail.first_mut() {
            // Never reached: the padded word count is a multiple of 4.
            *w = 0;
        }
        PairInput { words: buf, cols }
    }

    /// The view of a buffer that [`PairInput::new`] filled with an input of `x_len`
    /// columns and that nobody wrote since: the same input without packing it again.
    /// A buffer that does not hold such a packing gives wrong sums, but the assembly loop
    /// still reads only inside it.
    pub fn reuse(x_len: usize, buf: &'a [i32]) -> PairInput<'a> {
        PairInput {
            words: buf,
            cols: Self::fit(x_len, buf.len()),
        }
    }

    /// Columns of an input of `x_len` columns that a buffer of `buf_words` words holds
    /// with its padding.
    fn fit(x_len: usize, buf_words: usize) -> usize {
        x_len.min(buf_words / (STEP_COLS / 2) * STEP_COLS)
    }

    /// Columns of the input.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Columns with the zero padding: what every step of the kernel reads.
    pub fn padded_cols(&self) -> usize {
        self.cols.next_multiple_of(STEP_COLS)
    }

    /// `(acc.0 + a·x, acc.1 + b·x)` for the row pair `pair` (halfwords `256 · b + a`),
    /// over the common length, with the assembly loop's arithmetic (`T` and `D` with
    /// emulated `SMLAD` and `SXTB16`) in plain Rust.
    fn pair_rust(&self, pair: &[u8], acc: (i32, i32)) -> (i32, i32) {
        let (mut t, mut d) = (acc.0, acc.0);
        for (w, &xw) in pair.as_chunks::<4>().0.iter().zip(self.words) {
            let w = u32::from_le_bytes(*w);
            t = smlad_step(w, xw as u32, t);
            d = smlad_step(sxtb16(w), xw as u32, d);
        }
        (d, (t.wrapping_sub(d) >> 8).wrapping_add(acc.1))
    }

    /// `out[2k] = bias[2k] + a_k · x` and `out[2k + 1] = bias[2k + 1] + b_k · x` for the
    /// `out.len() / 2` consecutive row pairs in `pairs` (each `2 · pair_cols` bytes,
    /// `pair_cols` = [`PairInput::padded_cols`]), with the little-endian `i32` biases 4
    /// bytes apart in `bias` (0 where `bias` ends before one). Pairs that `pairs` does not
    /// hold leave their outputs at the biases; an odd last output gets pair `k`'s `a`.
    /// On `target_arch = "arm"` with the `dsp` feature every pair runs in the assembly
    /// loop when the weights are word-aligned and `bias` holds every bias; otherwise in
    /// plain Rust with the same arithmetic.
    pub fn dot_pairs(&self, pairs: &[u8], bias: &[u8], out: &mut [i32]) {
        let (whole, odd) = out.split_at_mut(out.len() / 2 * 2);
        if !smlad_pairs(self, pairs, bias, whole) {
            let pair_bytes = 2 * self.padded_cols();
            for (k, acc) in whole.as_chunks_mut::<2>().0.iter_mut().enumerate() {
                let pair = pairs
                    .get(k * pair_bytes..(k + 1) * pair_bytes)
                    .unwrap_or(&[]);
                let b = (le_i32_at(bias, 8 * k), le_i32_at(bias, 8 * k + 4));
                let (a, b) = self.pair_rust(pair, b);
                *acc = [a, b];
            }
        }
        if let [acc] = odd {
            let k = whole.len() / 2;
            let pair_bytes = 2 * self.padded_cols();
            let pair = pairs
                .get(k * pair_bytes..(k + 1) * pair_bytes)
                .unwrap_or(&[]);
            *acc = self.pair_rust(pair, (le_i32_at(bias, 8 * k), 0)).0;
        }
    }

    /// The assembly loop's precondition apart from alignment: at least one step of
    /// columns, all of them in the buffer; `pairs` holds `n` pairs of
    /// [`PairInput::padded_cols`] columns, `bias` their `2n` biases, `n ≥ 1`.
    #[cfg_attr(
        not(any(test, all(target_arch = "arm", feature = "dsp"))),
        allow(dead_code)
    )]
    fn fits(&self, pairs: &[u8], bias: &[u8], n: usize) -> bool {
        let pair_bytes = 2 * self.padded_cols();
        self.cols > 0
            && n > 0
            && self.padded_cols() / 2 <= self.words.len()
            && n.checked_mul(pair_bytes)
                .is_some_and(|len| len <= pairs.len())
            && n.checked_mul(8).is_some_and(|len| len <= bias.len())
    }
}

/// The little-endian `i32` at byte `at` of `bytes` (0 where it does not fit).
#[inline(always)]
fn le_i32_at(bytes: &[u8], at: usize) -> i32 {
    bytes
        .get(at..)
        .and_then(|b| b.first_chunk::<4>())
        .map_or(0, |b| i32::from_le_bytes(*b))
}

/// One step of [`smlad_pairs`]: 8 columns of both rows of a pair. One `LDM` of 4 input
/// words, one `LDM` of 4 weight words; per weight word `SMLAD` into `T` (r0), `SXTB16`
/// in place and `SMLAD` into `D` (r1). 14 instructions for 16 MACs, each a 32-bit
/// encoding (`.w` where a 16-bit one exists), so that every step is [`STEP_CODE_BYTES`]
/// long and the loop can be entered at any step.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
macro_rules! pair_step_asm {
    () => {
        concat!(
            "ldm.w r2!, {{r4-r7}}\n",
            "ldm.w r3!, {{r8-r11}}\n",
            "smlad r0, r8, r4, r0\n",
            "sxtb16 r8, r8\n",
            "smlad r1, r8, r4, r1\n",
            "smlad r0, r9, r5, r0\n",
            "sxtb16 r9, r9\n",
            "smlad r1, r9, r5, r1\n",
            "smlad r0, r10, r6, r0\n",
            "sxtb16 r10, r10\n",
            "smlad r1, r10, r6, r1\n",
            "smlad r0, r11, r7, r0\n",
            "sxtb16 r11, r11\n",
            "smlad r1, r11, r7, r1\n",
        )
    };
}

/// Row pairs in assembly, `out.len() / 2` of them, consecutive in `pairs`, with their
/// biases consecutive in `bias`: pair `k` sets `out[2k]` and `out[2k + 1]`. Per pair the
/// unrolled loop over the whole packed input, then the next pair without returning to
/// Rust. `false` (nothing computed) unless [`PairInput::fits`] and the weights are
/// word-aligned.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[inline(never)]
#[allow(unsafe_code)]
fn smlad_pairs(p: &PairInput<'_>, pairs: &[u8], bias: &[u8], out: &mut [i32]) -> bool {
    let n = out.len() / 2;
    if !(p.fits(pairs, bias, n) && (pairs.as_ptr() as usize).is_multiple_of(4)) {
        return false;
    }
    let steps = p.padded_cols() / STEP_COLS;
    // The loop's iterations and the entry step of the first one (offset from the loop's
    // start, with the Thumb bit).
    let iterations = steps.div_ceil(UNROLL);
    let entry = (UNROLL - steps % UNROLL) % UNROLL * STEP_CODE_BYTES + 1;
    let out_end = out.as_mut_ptr().wrapping_add(2 * n);
    // SAFETY: per pair, the loop reads `padded_cols / 2` words from `p.words` (inside it:
    // `fits`) and as many from the pair's weights (inside `pairs`: `fits`, the pairs are
    // consecutive), and 8 bytes at the pair's biases (inside `bias`: `fits`). `p.words` is
    // `[i32]` (word-aligned for `LDM`), the weights are word-aligned (checked) and each
    // pair is a multiple of 16 bytes long; the bias words may be unaligned, which `LDR`
    // allows on ARMv7-M. `steps ≥ 1` (`fits`), so the entry is a step of the loop and the
    // loop runs `steps` steps. It writes `out[..2n]` (`[i32]`: word-aligned for `STRD`)
    // and 28 bytes of stack below `sp`, which it pops again; every register it changes is
    // an operand or clobber, but r6 and r7 (which `asm!` cannot name), which it saves on
    // that stack and restores before it ends. SXTB16 and SMLAD need the DSP extension,
    // which the `dsp` feature promises. SMLAD may set the sticky Q flag (the `T` sum
    // wraps by design); flags are not declared preserved.
    unsafe {
        core::arch::asm!(
            // The caller's r6 and r7, then the per-call constants, which every pair reads
            // from the stack (a `PUSH` stores them by register number): [sp] input words,
            // [sp, 4] iterations, [sp, 8] entry address, [sp, 12] out pointer (advanced
            // per pair), [sp, 16] its end. lr walks the biases, r3 the weights.
            "push {{r6, r7}}",
            "adr.w r6, 2f",
            "add r2, r6",
            "mov lr, r12",
            "push {{r0, r1, r2, r4, r5}}",
            "1:",
            "ldm sp, {{r2, r12}}",
            "ldr r1, [lr]",
            "mov r0, r1",
            "ldr pc, [sp, #8]",
            ".balign 4",
            "2:",
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            pair_step_asm!(),
            "3:",
            ".if (3b - 2b) != 8 * 56",
            ".error \"smlad_pairs: a loop step is not 56 bytes\"",
            ".endif",
            "subs r12, #1",
            "bne 2b",
            // b·x = (T − D) >> 8, plus the second row's bias; D is the first row's sum
            // (its bias included: both sums started from it).
            "ldr r4, [lr, #4]",
            "add lr, lr, #8",
            "sub r0, r0, r1",
            "add r0, r4, r0, asr #8",
            "ldrd r4, r5, [sp, #12]",
            "strd r1, r0, [r4], #8",
            "str r4, [sp, #12]",
            "cmp r4, r5",
            "bne 1b",
            "add sp, #20",
            "pop {{r6, r7}}",
            inout("r0") p.words.as_ptr() => _,
            inout("r1") iterations => _,
            inout("r2") entry => _,
            inout("r3") pairs.as_ptr() => _,
            inout("r4") out.as_mut_ptr() => _,
            inout("r5") out_end => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            inout("r12") bias.as_ptr() => _,
            out("lr") _,
        );
    }
    true
}

/// Without the assembly loop: nothing computed (the callers fall back to plain Rust).
#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
fn smlad_pairs(_p: &PairInput<'_>, _pairs: &[u8], _bias: &[u8], _out: &mut [i32]) -> bool {
    false
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

    /// A row pair in the blob's row-pair layout: halfwords `256 · b + a` over `x_len`
    /// columns padded to the pair step.
    fn pair_bytes(a: &[i8], b: &[i8], x_len: usize) -> std::vec::Vec<u8> {
        let cols = x_len.next_multiple_of(STEP_COLS);
        (0..cols)
            .flat_map(|c| {
                let wa = a.get(c).copied().filter(|_| c < x_len).unwrap_or(0);
                let wb = b.get(c).copied().filter(|_| c < x_len).unwrap_or(0);
                crate::blob::pair_halfword(wa, wb).to_le_bytes()
            })
            .collect()
    }

    fn i8_dot(x: &[u8], w: &[i8]) -> i32 {
        x.iter()
            .zip(w)
            .fold(0i32, |acc, (&v, &w)| acc.wrapping_add(v as i32 * w as i32))
    }

    /// The shared test body of the row-pair kernel: for the rows `a`, `b` (as long as `x`,
    /// within the blob's L1 bound) every kernel's `dot_pair`, and `PairInput::dot_pairs`
    /// on runs of pairs with biases (odd runs too), equal the plain sequential dots.
    fn check_pairs(x: &[u8], a: &[i8], b: &[i8], bias: (i32, i32)) {
        let want = (i8_dot(x, a), i8_dot(x, b));
        let pair = pair_bytes(a, b, x.len());
        let padded_x: std::vec::Vec<u8> = x
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(x.len().next_multiple_of(STEP_COLS))
            .collect();
        for kernel in Kernel::ALL {
            let ctx = std::format!("{kernel:?} len {}", x.len());
            assert_eq!(kernel.dot_pair(x, &pair), want, "{ctx}");
            assert_eq!(kernel.dot_pair(&padded_x, &pair), want, "padded {ctx}");
        }
        assert_eq!(dot_pair_portable(x, &pair), want);
        // Three pairs in a row (the second with its rows swapped) from an odd offset of
        // the biases, as unaligned as a blob's may be.
        let swapped = pair_bytes(b, a, x.len());
        let run: std::vec::Vec<u8> = [pair.as_slice(), &swapped, &pair].concat();
        let biases = [bias.0, bias.1, bias.1, bias.0, bias.0, bias.1];
        let mut bias_bytes = std::vec![0x3Cu8];
        bias_bytes.extend(biases.iter().flat_map(|b| b.to_le_bytes()));
        let bias_bytes = &bias_bytes[1..];
        let rows = [want.0, want.1, want.1, want.0, want.0, want.1];
        let want_rows: std::vec::Vec<i32> = rows
            .iter()
            .zip(biases)
            .map(|(d, b)| d.wrapping_add(b))
            .collect();
        let mut buf = [0x5A5A_5A5Ai32; pair_input_words(crate::blob::MAX_INPUT) + 3];
        let input = PairInput::new(x, &mut buf);
        assert_eq!(input.cols(), x.len());
        for n in 0..=6 {
            let mut out = [0x1234_5678; 6];
            input.dot_pairs(&run, bias_bytes, &mut out[..n]);
            assert_eq!(out[..n], want_rows[..n], "run of {n}, len {}", x.len());
            assert_eq!(
                input.fits(&run, bias_bytes, n / 2),
                !x.is_empty() && n >= 2,
                "len {} n {n}",
                x.len()
            );
        }
        // Biases missing from the slice count as 0.
        let mut out = [0; 2];
        input.dot_pairs(&run, &bias_bytes[..6], &mut out);
        assert_eq!(out, [want_rows[0], want.1], "short bias");
        assert!(!input.fits(&run, &bias_bytes[..7], 1));
        assert!(!input.fits(&run[..run.len().saturating_sub(1)], bias_bytes, 3));
        // The same packing read again.
        let again = PairInput::reuse(x.len(), &buf);
        let mut out = [0; 2];
        again.dot_pairs(&pair, bias_bytes, &mut out);
        assert_eq!(out, want_rows[..2], "reuse");
    }

    #[test]
    fn pair_layout_is_column_pairs_in_order() {
        for len in [0, 1, 3, 4, 7, 8, 9, 29, 32, 33, 297] {
            // A dirty buffer: every word of the padded columns must be written.
            let mut buf = [7i32; pair_input_words(300) + 4];
            let x: std::vec::Vec<u8> = (0..len as u32).map(|i| (i * 53 + 200) as u8).collect();
            let p = PairInput::new(&x, &mut buf);
            assert_eq!(p.padded_cols() % STEP_COLS, 0);
            assert!(p.padded_cols() >= len && p.padded_cols() < len + STEP_COLS);
            let s = |i: usize| x.get(i).copied().unwrap_or(0) as i32;
            for (i, &w) in p.words[..p.padded_cols() / 2].iter().enumerate() {
                assert_eq!(w, s(2 * i) | s(2 * i + 1) << 16, "len {len} word {i}");
            }
        }
        // Inputs beyond the buffer's capacity are dropped.
        let mut small = [0i32; 4];
        assert_eq!(PairInput::new(&[1; 20], &mut small).cols(), 8);
    }

    #[test]
    fn pair_kernel_at_every_length_with_extremes() {
        // Up to 259 columns the extreme weights ±127 against inputs of 255 stay inside the
        // blob's L1 bound (255 · 127 · 259 < 2²³), the last of them right at it.
        for len in 0..=259 {
            for (xv, wa, wb) in [
                (255u8, 127i8, -127i8),
                (255, -127, 127),
                (255, -128, 127),
                (255, 127, 127),
                (0, -127, -127),
                (255, 0, -127),
            ] {
                // Every row of a blob is within the L1 bound (-128 only up to 256 columns).
                let l1 = len as u32 * u32::from(wa.unsigned_abs().max(wb.unsigned_abs()));
                if l1 <= crate::blob::MAX_ROW_L1 {
                    check_pairs(&vec![xv; len], &vec![wa; len], &vec![wb; len], (0, 0));
                }
            }
            // Mixed extremes in every lane position.
            let x: std::vec::Vec<u8> = (0..len).map(|i| if i % 3 == 1 { 0 } else { 255 }).collect();
            let a: std::vec::Vec<i8> = (0..len)
                .map(|i| if i % 5 < 2 { -127 } else { 127 })
                .collect();
            let b: std::vec::Vec<i8> = (0..len)
                .map(|i| if i % 7 < 3 { 127 } else { -127 })
                .collect();
            check_pairs(&x, &a, &b, (i32::MAX, i32::MIN));
        }
        // The largest input with small weights.
        let n = crate::blob::MAX_INPUT;
        let a: std::vec::Vec<i8> = (0..n).map(|i| (i % 57) as i8 - 28).collect();
        let b: std::vec::Vec<i8> = (0..n).map(|i| 27 - (i % 55) as i8).collect();
        check_pairs(&vec![255; n], &a, &b, (1 << 30, -(1 << 30)));
    }

    #[test]
    fn pair_kernel_needs_the_l1_bound() {
        // 264 columns of 255 · 127: b · x = 8,552,520 ≥ 2²³, beyond what (T − D) >> 8 can
        // carry; the portable kernel is still right, the SMLAD arithmetic is not (this is
        // why the blob parser rejects such rows).
        let (len, x) = (264, vec![255u8; 264]);
        let pair = pair_bytes(&vec![1; len], &vec![127; len], len);
        let mut buf = [0i32; pair_input_words(264)];
        let input = PairInput::new(&x, &mut buf);
        assert_eq!(dot_pair_portable(&x, &pair), (255 * 264, 255 * 127 * 264));
        assert_ne!(input.pair_rust(&pair, (0, 0)).1, 255 * 127 * 264);
    }

    proptest! {
        #[test]
        fn pair_kernel_agrees_on_random_rows(
            rows in proptest::collection::vec(any::<(u8, i8, i8)>(), 0..600),
            bias in any::<(i32, i32)>(),
        ) {
            // Weights scaled into the blob's L1 bound for this length.
            let limit = (crate::blob::MAX_ROW_L1 as usize / rows.len().max(1)).min(127) as i32;
            let scale = |w: i8| (w as i32 * limit / 128) as i8;
            let x: std::vec::Vec<u8> = rows.iter().map(|r| r.0).collect();
            let a: std::vec::Vec<i8> = rows.iter().map(|r| scale(r.1)).collect();
            let b: std::vec::Vec<i8> = rows.iter().map(|r| scale(r.2)).collect();
            check_pairs(&x, &a, &b, bias);
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
