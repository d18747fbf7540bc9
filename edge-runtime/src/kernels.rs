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
//! The encoder's `Packed` path goes further ([`Packed`], [`Packed::dot_rows`]): each
//! layer input is packed once (per row phase) into 16-bit lane pairs, so per 4 weights
//! only the weight word is split, and two rows share every input load. With `dsp` on
//! `target_arch = "arm"` the whole row loop is assembly (`smlad_pairs`: pairs of rows a
//! fixed stride apart, biases loaded there too, without returning to Rust): per 8 columns
//! one `LDM` of inputs, per row one `LDRD` of weights, 2 `SXTB16`, 2 `SXTB16 … ROR #8`
//! and 4 `SMLAD`, i.e. 19 instructions per 16 MACs (1.19 per MAC), unrolled 8 steps deep
//! (a counter test per 64 columns; a row enters the first iteration part-way, so there is
//! no tail loop). Its result is checked on the host against the same packing in plain
//! Rust only indirectly (the host cannot run it): `cargo xtask firmware --golden` compares
//! the device's frames with the host's.
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

/// [`Kernel::Packed`] on plain slices: packs `x` in chunks of [`crate::blob::MAX_INPUT`]
/// columns and runs [`Packed::dot`] (the encoder's packing) on each. Out of line: it
/// would otherwise be inlined four times into every `Kernel::dot4` caller.
#[inline(never)]
fn dot_via_packed(x: &[u8], w: &[u8]) -> i32 {
    const CHUNK: usize = crate::blob::MAX_INPUT;
    let mut buf = [0i32; packed_words(CHUNK)];
    x.chunks(CHUNK)
        .zip(w.chunks(CHUNK))
        .fold(0i32, |acc, (xc, wc)| Packed::new(xc, &mut buf).dot(wc, acc))
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

/// Columns per step of the assembly loop: one `LDM` of 4 packed input words shared by
/// both rows, per row one `LDRD` of 8 weight bytes.
const STEP_COLS: usize = 8;
/// Steps per iteration of the unrolled assembly loop; a row of `n` steps enters the
/// first iteration `(UNROLL − n mod UNROLL) mod UNROLL` steps in, so the loop needs no
/// tail and tests its counter once per `UNROLL` steps.
#[cfg_attr(not(all(target_arch = "arm", feature = "dsp")), allow(dead_code))]
const UNROLL: usize = 8;
/// Code bytes of one step of the assembly loop: 19 instructions, all 32-bit encodings
/// (checked by the assembler).
#[cfg_attr(not(all(target_arch = "arm", feature = "dsp")), allow(dead_code))]
const STEP_CODE_BYTES: usize = 76;
/// Leading zero columns a [`Packed::with_phase`] input may have.
pub const MAX_PHASE: usize = 3;

/// Words of a [`Packed`] buffer for up to `cols` inputs at any phase (0..=[`MAX_PHASE`]):
/// 4 words per 8 columns, zero-padded.
pub const fn packed_words(cols: usize) -> usize {
    (cols + MAX_PHASE).div_ceil(STEP_COLS) * (STEP_COLS / 2)
}

/// An input vector `x` (u8) laid out for `SMLAD`, optionally behind `phase` zero columns
/// (the sequence `s = [0; phase] ++ x`, `n = phase + x.len()` columns): every group of
/// four columns `(s0, s1, s2, s3)` becomes the two words `s0 | s2 << 16` and
/// `s1 | s3 << 16`, the 16-bit lanes that `SXTB16` and `SXTB16 … ROR #8` make of four
/// weight bytes, in column order and zero-padded to a multiple of 8 columns
/// ([`Packed::padded_cols`]). Packed once per layer input (and phase) and shared by every
/// row.
///
/// The phase lets rows that do not start on a word boundary (a layer with `cols % 4 ≠ 0`
/// has rows at every byte offset) be read from the word boundary below their start with
/// aligned `LDRD`s: the bytes before the row meet the leading zero columns.
#[derive(Clone, Copy, Debug)]
pub struct Packed<'a> {
    /// Lane words as `i32` bit patterns (so a caller's buffer can also hold accumulators);
    /// at least `padded_cols / 2` of them ([`Packed::fit`]).
    words: &'a [i32],
    /// `phase + x.len()`: columns of the sequence `s`, leading zeros included.
    cols: usize,
    phase: usize,
}

/// Little-endian word of up to four bytes (missing high bytes 0).
#[inline(always)]
fn le_word(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .fold(0u32, |word, &b| (word << 8) | b as u32)
}

/// The lane words of the 4-column word `s` of the packed sequence.
#[inline(always)]
fn lanes(s: u32) -> [i32; 2] {
    // `rotate_right`, not `>>`: the same lanes, and LLVM keeps one word load for both
    // `UXTB16`s instead of four byte loads.
    [uxtb16(s) as i32, uxtb16(s.rotate_right(8)) as i32]
}

/// The little-endian `i32` at byte `at` of `bytes` (0 where it does not fit).
#[inline(always)]
fn le_i32_at(bytes: &[u8], at: Option<usize>) -> i32 {
    at.and_then(|at| bytes.get(at..)?.first_chunk::<4>())
        .map_or(0, |b| i32::from_le_bytes(*b))
}

impl<'a> Packed<'a> {
    /// Packs `x` into `buf`; inputs beyond the capacity of `buf` are dropped.
    pub fn new(x: &[u8], buf: &'a mut [i32]) -> Packed<'a> {
        Self::with_phase(x, 0, buf)
    }

    /// Packs `[0; phase] ++ x` into `buf` (`phase` clamped to [`MAX_PHASE`]); inputs
    /// beyond the capacity of `buf` are dropped.
    #[inline(never)]
    pub fn with_phase(x: &[u8], phase: usize, buf: &'a mut [i32]) -> Packed<'a> {
        let (phase, cols) = Self::fit(x.len(), phase, buf.len());
        let x = x.get(..cols - phase).unwrap_or(&[]);
        let padded_words = cols.div_ceil(STEP_COLS) * STEP_COLS / 2;
        // One word of `s` per loop step, read as one little-endian load: the leading word
        // with the phase zeros, the whole words of `x`, the last partial word, zeros up to
        // the padding.
        let (lane_words, _) = buf.split_at_mut(padded_words.min(buf.len()));
        let lane_pairs = lane_words.as_chunks_mut::<2>().0;
        let (first, rest) = x.split_at(((4 - phase) % 4).min(x.len()));
        let mut at = 0;
        if phase > 0
            && let Some(pair) = lane_pairs.first_mut()
        {
            *pair = lanes(le_word(first) << (8 * phase));
            at = 1;
        }
        let (words, remainder) = rest.as_chunks::<4>();
        let body = lane_pairs.get_mut(at..).unwrap_or(&mut []);
        // Both slices cut to the common length first: one loop counter.
        let whole = words.len().min(body.len());
        let (body, tail) = body.split_at_mut(whole);
        // Two words of `x` per step (fewer loop instructions on the Cortex-M4).
        let (word_twos, word_last) = words.as_chunks::<2>();
        let (body_twos, body_last) = body.as_chunks_mut::<2>();
        for (w, pairs) in word_twos.iter().zip(body_twos) {
            pairs[0] = lanes(u32::from_le_bytes(w[0]));
            pairs[1] = lanes(u32::from_le_bytes(w[1]));
        }
        if let (Some(w), Some(pair)) = (word_last.first(), body_last.first_mut()) {
            *pair = lanes(u32::from_le_bytes(*w));
        }
        let mut last = le_word(remainder);
        for pair in tail {
            *pair = lanes(last);
            last = 0;
        }
        Packed {
            words: buf,
            cols,
            phase,
        }
    }

    /// The view of a buffer that [`Packed::with_phase`] filled with an input of `x_len`
    /// columns at `phase` and that nobody wrote since: the same input without packing it
    /// again (the two heads read one packing). A buffer that does not hold such a packing
    /// gives wrong sums, but the assembly loop still reads only inside it.
    pub fn reuse(x_len: usize, phase: usize, buf: &'a [i32]) -> Packed<'a> {
        let (phase, cols) = Self::fit(x_len, phase, buf.len());
        Packed {
            words: buf,
            cols,
            phase,
        }
    }

    /// `(phase, cols)` of an input of `x_len` columns at `phase` in a buffer of
    /// `buf_words` words: the phase clamped to [`MAX_PHASE`], inputs beyond the buffer's
    /// capacity dropped, so that the padded columns' words fit in the buffer.
    fn fit(x_len: usize, phase: usize, buf_words: usize) -> (usize, usize) {
        // Largest n with packed_words-style size ≤ buf_words.
        let capacity = buf_words / (STEP_COLS / 2) * STEP_COLS;
        let phase = phase.min(MAX_PHASE).min(capacity);
        (phase, phase + x_len.min(capacity - phase))
    }

    /// Columns of the packed sequence, the `phase` leading zeros included.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Leading zero columns.
    pub fn phase(&self) -> usize {
        self.phase
    }

    /// The two words of 4-column block `block` (zero past the end).
    #[inline(always)]
    fn block(&self, block: usize) -> (u32, u32) {
        (
            self.words.get(2 * block).copied().unwrap_or(0) as u32,
            self.words.get(2 * block + 1).copied().unwrap_or(0) as u32,
        )
    }

    /// `acc + Σ s[i] · w[i]` over the common length (plain Rust with single SMLAD steps).
    #[inline(never)]
    fn dot_rust(&self, w: &[u8], mut acc: i32) -> i32 {
        let n = self.cols.min(w.len());
        let w = w.get(..n).unwrap_or(&[]);
        let mut chunks = w.chunks_exact(4);
        for (b, c) in (&mut chunks).enumerate() {
            let ww = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let (x02, x13) = self.block(b);
            acc = smlad_step(sxtb16(ww), x02, acc);
            acc = smlad_step(sxtb16(ww >> 8), x13, acc);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let ww = le_word(rest);
            let (x02, x13) = self.block(n / 4);
            acc = smlad_step(sxtb16(ww), x02, acc);
            acc = smlad_step(sxtb16(ww >> 8), x13, acc);
        }
        acc
    }

    /// `acc + Σ s[i] · (w[i] as i8)` over the common length of `s` and `w`.
    pub fn dot(&self, w: &[u8], acc: i32) -> i32 {
        self.dot_rust(w, acc)
    }

    /// Weight bytes per row that the assembly loop reads: every column of `s` rounded up
    /// to the loop's step. Rows at least this long (the bytes past `cols` meet zero
    /// columns, so they do not change the sum) and word-aligned take the fast path.
    pub fn padded_cols(&self) -> usize {
        self.cols.div_ceil(STEP_COLS) * STEP_COLS
    }

    /// Two rows at once: `(acc0 + s·w0, acc1 + s·w1)`, each over its common length with
    /// `s`, in plain Rust (the encoder's rows run through [`Packed::dot_rows`], which
    /// uses the assembly loop where it can).
    pub fn dot2(&self, w0: &[u8], w1: &[u8], acc: (i32, i32)) -> (i32, i32) {
        (self.dot_rust(w0, acc.0), self.dot_rust(w1, acc.1))
    }

    /// `out[k] = bias_k + s · row_k` for the rows `row_k` that start at byte offsets
    /// `start + k · stride` of `w` (phase-aligned: the first `phase` bytes of each meet the
    /// leading zero columns), each `cols` bytes long, the padding after them included
    /// where `w` has it; `bias_k` is the little-endian `i32` at byte `k · bias_stride` of
    /// `bias` (0 where `bias` ends before it). On `target_arch = "arm"` with the `dsp`
    /// feature all rows run in the assembly loop, two rows per pass over the input, when
    /// `w` holds the last row's padding, `bias` every row's bias and the rows are
    /// word-aligned; otherwise in plain Rust.
    pub fn dot_rows(
        &self,
        w: &[u8],
        start: usize,
        stride: usize,
        bias: &[u8],
        bias_stride: usize,
        out: &mut [i32],
    ) {
        let row_start = |k: usize| k.checked_mul(stride).and_then(|o| o.checked_add(start));
        let bias_at = |k: usize| k.checked_mul(bias_stride);
        let last = out.len().saturating_sub(1);
        let (pairs, odd) = out.split_at_mut(out.len() / 2 * 2);
        if !smlad_pairs(self, w, start, stride, bias, bias_stride, pairs) {
            for (k, acc) in pairs.iter_mut().enumerate() {
                *acc = self.dot_at(w, row_start(k), le_i32_at(bias, bias_at(k)));
            }
        }
        if let [acc] = odd {
            // The odd row out runs as a pair with itself (still the fast loop).
            let (at, bias_last) = (row_start(last), bias_at(last));
            let bias_rest = bias_last.and_then(|b| bias.get(b..)).unwrap_or(&[]);
            let mut pair = [0; 2];
            *acc = match at {
                Some(at) if smlad_pairs(self, w, at, 0, bias_rest, 0, &mut pair) => pair[0],
                _ => self.dot_at(w, at, le_i32_at(bias, bias_last)),
            };
        }
    }

    /// `acc + s · row` in plain Rust for the row at byte offset `start` of `w` (none: 0).
    fn dot_at(&self, w: &[u8], start: Option<usize>, acc: i32) -> i32 {
        self.dot_rust(start.and_then(|s| w.get(s..)).unwrap_or(&[]), acc)
    }

    /// The assembly loop's precondition apart from alignment (used only there and in the
    /// host tests): at least one step of columns, all of them in the buffer; `w` holds
    /// [`Packed::padded_cols`] bytes from each row start `start + k · 2 · gap` and
    /// `start + k · 2 · gap + gap`, and `bias` 4 bytes from `k · 2 · bias_gap` and
    /// `k · 2 · bias_gap + bias_gap`, for `k < pairs` (≥ 1).
    #[cfg_attr(
        not(any(test, all(target_arch = "arm", feature = "dsp"))),
        allow(dead_code)
    )]
    fn fits(
        &self,
        w: &[u8],
        start: usize,
        gap: usize,
        bias: &[u8],
        bias_gap: usize,
        pairs: usize,
    ) -> bool {
        // The last pair's second row: offset `(2 · pairs − 1) · gap`.
        let last = |gap: usize| {
            pairs
                .checked_mul(2)
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| n.checked_mul(gap))
        };
        let rows_end = last(gap)
            .and_then(|o| o.checked_add(start))
            .and_then(|o| o.checked_add(self.padded_cols()));
        let bias_end = last(bias_gap).and_then(|o| o.checked_add(4));
        self.cols > 0
            && self.padded_cols() / 2 <= self.words.len()
            && rows_end.is_some_and(|end| end <= w.len())
            && bias_end.is_some_and(|end| end <= bias.len())
    }

    /// The word walk of the assembly loop in plain Rust (for the host tests), for inputs
    /// that pass [`Packed::fits`]: pair `k` sets `out[2k]` and `out[2k + 1]`.
    #[cfg(test)]
    fn pairs_walk(
        &self,
        w: &[u8],
        start: usize,
        gap: usize,
        bias: &[u8],
        bias_gap: usize,
        out: &mut [i32],
    ) {
        let le = |b: &[u8], at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let steps = self.padded_cols() / STEP_COLS;
        // Entering the unrolled loop part-way only changes where the first iteration
        // starts: every step is the same.
        let iterations = steps.div_ceil(UNROLL);
        let entry = (UNROLL - steps % UNROLL) % UNROLL;
        assert_eq!(iterations * UNROLL - entry, steps);
        for (k, pair) in out.chunks_exact_mut(2).enumerate() {
            let rows = [start + 2 * k * gap, start + 2 * k * gap + gap];
            let b = 2 * k * bias_gap;
            let mut acc = [le(bias, b), le(bias, b + bias_gap)];
            for step in 0..steps {
                let x: [u32; 4] = core::array::from_fn(|i| self.words[4 * step + i] as u32);
                for (a, &row) in acc.iter_mut().zip(&rows) {
                    let at = row + STEP_COLS * step;
                    let lo = le(w, at) as u32;
                    let hi = le(w, at + 4) as u32;
                    *a = smlad(sxtb16(lo), x[0], *a);
                    *a = smlad(sxtb16(lo >> 8), x[1], *a);
                    *a = smlad(sxtb16(hi), x[2], *a);
                    *a = smlad(sxtb16(hi >> 8), x[3], *a);
                }
            }
            pair.copy_from_slice(&acc);
        }
    }
}

/// One step of [`smlad_pairs`]: 8 columns of both rows. One `LDM` of 4 input words
/// shared by both rows; per row one `LDRD` of 8 weight bytes, 2 `SXTB16`, 2
/// `SXTB16 … ROR #8` and 4 `SMLAD`. 19 instructions for 16 MACs, each a 32-bit encoding
/// (`.w` where a 16-bit one exists), so that every step is [`STEP_CODE_BYTES`] long and
/// the loop can be entered at any step.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
macro_rules! smlad_step_asm {
    () => {
        concat!(
            "ldm.w r2!, {{r8-r11}}\n",
            "ldrd r5, r12, [r3], #8\n",
            "sxtb16 lr, r5\n",
            "smlad r0, lr, r8, r0\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad r0, r5, r9, r0\n",
            "sxtb16 lr, r12\n",
            "smlad r0, lr, r10, r0\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r0, r12, r11, r0\n",
            "ldrd r5, r12, [r4], #8\n",
            "sxtb16 lr, r5\n",
            "smlad r1, lr, r8, r1\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad r1, r5, r9, r1\n",
            "sxtb16 lr, r12\n",
            "smlad r1, lr, r10, r1\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r1, r12, r11, r1\n",
        )
    };
}

/// Pairs of rows in assembly, `out.len() / 2` of them: pair `k` is the rows at byte
/// offsets `start + k · 2 · gap` and that `+ gap` of `w`, with the little-endian `i32`
/// biases at bytes `k · 2 · bias_gap` and that `+ bias_gap` of `bias`; pair `k` sets
/// `out[2k]` and `out[2k + 1]` to bias plus dot product. Per pair the unrolled loop over
/// the whole packed input, then the next pair without returning to Rust. `false`
/// (nothing computed) unless [`Packed::fits`] and every row is word-aligned.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[inline(never)]
#[allow(unsafe_code)]
fn smlad_pairs(
    p: &Packed<'_>,
    w: &[u8],
    start: usize,
    gap: usize,
    bias: &[u8],
    bias_gap: usize,
    out: &mut [i32],
) -> bool {
    let pairs = out.len() / 2;
    let first = w.as_ptr().wrapping_add(start);
    if !(p.fits(w, start, gap, bias, bias_gap, pairs) && (first as usize | gap).is_multiple_of(4)) {
        return false;
    }
    let steps = p.padded_cols() / STEP_COLS;
    // The loop's iterations and the entry step of the first one (offset from the loop's
    // start, with the Thumb bit).
    let iterations = steps.div_ceil(UNROLL);
    let entry = (UNROLL - steps % UNROLL) % UNROLL * STEP_CODE_BYTES + 1;
    // After a pair the first row's pointer has moved `padded_cols` bytes on.
    let skip = gap.wrapping_mul(2).wrapping_sub(p.padded_cols());
    // SAFETY: per pair, the loop reads `padded_cols / 2` words from `p.words` (inside it:
    // `fits`), `padded_cols` bytes from each row start (inside `w`: `fits`) and 4 bytes
    // at each bias offset (inside `bias`: `fits`). `p.words` is `[i32]` (word-aligned for
    // `LDM`), the rows are word-aligned (checked) for `LDRD`; the bias words may be
    // unaligned, which `LDR` allows on ARMv7-M. `steps ≥ 1` (`fits`), so the entry is a
    // step of the loop and the loop runs `steps` steps. It writes `out[..2 · pairs]`
    // (`[i32]`: word-aligned for `STRD`) and 40 bytes of stack below `sp`, which it pops
    // again; every register it changes is an operand or clobber, but r6 and r7 (which
    // `asm!` cannot name), which it saves on that stack and restores before it ends.
    // SXTB16 and SMLAD need the DSP extension, which the `dsp` feature promises. SMLAD
    // may set the sticky Q flag (unreachable sums); flags are not declared preserved.
    unsafe {
        core::arch::asm!(
            // The caller's r6 and r7; r7 holds the out pointer while the loop runs. Then
            // the per-call constants, which every pair reads from the stack (a `PUSH`
            // stores them by register number): [sp] input words, [sp, 4] gap, [sp, 8]
            // bias pointer (advanced per pair), [sp, 12] iterations, [sp, 16] bias gap,
            // [sp, 20] entry address, [sp, 24] skip, [sp, 28] pairs left.
            "push {{r6, r7}}",
            "mov r7, r1",
            "adr.w r9, 2f",
            "add r9, r12",
            "push {{r0, r2, r4, r5, r8, r9, r10, r11}}",
            "1:",
            "ldm sp, {{r2, r4, r5, r6, r12}}",
            "add r4, r3",
            "ldr r0, [r5]",
            "ldr r1, [r5, r12]",
            "add r5, r5, r12, lsl #1",
            "str r5, [sp, #8]",
            "ldr pc, [sp, #20]",
            ".balign 4",
            "2:",
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            smlad_step_asm!(),
            "3:",
            ".if (3b - 2b) != 8 * 76",
            ".error \"smlad_pairs: a loop step is not 76 bytes\"",
            ".endif",
            "subs r6, #1",
            "bne 2b",
            "strd r0, r1, [r7], #8",
            "ldrd r5, r12, [sp, #24]",
            "add r3, r5",
            "subs r12, #1",
            "str r12, [sp, #28]",
            "bne 1b",
            "add sp, #32",
            "pop {{r6, r7}}",
            inout("r0") p.words.as_ptr() => _,
            inout("r1") out.as_mut_ptr() => _,
            inout("r2") gap => _,
            inout("r3") first => _,
            inout("r4") bias.as_ptr() => _,
            inout("r5") iterations => _,
            inout("r8") bias_gap => _,
            out("r9") _,
            inout("r10") skip => _,
            inout("r11") pairs => _,
            inout("r12") entry => _,
            out("lr") _,
        );
    }
    true
}

/// Without the assembly loop: nothing computed (the callers fall back to plain Rust).
#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
fn smlad_pairs(
    _p: &Packed<'_>,
    _w: &[u8],
    _start: usize,
    _gap: usize,
    _bias: &[u8],
    _bias_gap: usize,
    _out: &mut [i32],
) -> bool {
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

    /// `Packed::dot2` and `dot_rows` on two different rows (any length, any
    /// byte offset of the rows, with and without grouped columns) equal the portable
    /// kernel row by row, at every phase; so does the word walk of the assembly loop
    /// (pairs of rows in a layer-like slice) where the rows are long enough.
    fn check_dot2(x: &[u8], w0: &[u8], w1: &[u8], acc: (i32, i32)) {
        let mut buf = [0i32; packed_words(crate::blob::MAX_INPUT)];
        for phase in 0..=MAX_PHASE {
            let packed = Packed::with_phase(x, phase, &mut buf);
            assert_eq!(packed.cols(), phase + x.len());
            assert_eq!(packed.phase(), phase);
            // The rows as the encoder passes them: `phase` bytes before the row start.
            let s: std::vec::Vec<u8> = std::iter::repeat_n(0, phase)
                .chain(x.iter().copied())
                .collect();
            let want = (
                acc.0.wrapping_add(dot_portable(&s, w0)),
                acc.1.wrapping_add(dot_portable(&s, w1)),
            );
            let ctx = std::format!(
                "phase {phase} len {} / {} / {}",
                x.len(),
                w0.len(),
                w1.len()
            );
            assert_eq!(packed.dot2(w0, w1, acc), want, "{ctx}");
            assert_eq!(packed.dot(w0, acc.0), want.0, "{ctx}");
            // Rows padded to the assembly loop's length (bytes that meet zero columns),
            // laid out like a layer: rows `stride` bytes apart in one slice.
            let pad = |w: &[u8]| -> std::vec::Vec<u8> {
                let mut v = w[..w.len().min(s.len())].to_vec();
                if v.len() == s.len() {
                    v.resize(packed.padded_cols(), 0x5A);
                }
                v
            };
            let (p0, p1) = (pad(w0), pad(w1));
            let padded = packed.padded_cols();
            if p0.len() < padded || p1.len() < padded {
                // Rows shorter than the sequence: not a layer's rows (those are `cols` long).
                continue;
            }
            let stride = padded.next_multiple_of(4) + 4;
            let mut layer = std::vec![0xA5u8; 5 * stride];
            for (k, row) in [&p0, &p1, &p0, &p1, &p0].into_iter().enumerate() {
                layer[k * stride..k * stride + row.len()].copy_from_slice(row);
            }
            // The last row ends the slice, so `fits` is tight.
            layer.truncate(4 * stride + padded);
            // The biases 6 bytes apart from an odd offset (as unaligned as a blob's may
            // be), the last one ending the slice.
            let bias_stride = 6;
            let mut bias = std::vec![0x3Cu8; 1 + 4 * bias_stride + 4];
            for (k, b) in [acc.0, acc.1, acc.0, acc.1, acc.0].into_iter().enumerate() {
                let at = 1 + k * bias_stride;
                bias[at..at + 4].copy_from_slice(&b.to_le_bytes());
            }
            let bias = &bias[1..];
            let mut rows = [0x1234_5678; 5];
            packed.dot_rows(&layer, 0, stride, bias, bias_stride, &mut rows);
            let want_rows = [want.0, want.1, want.0, want.1, want.0];
            assert_eq!(rows, want_rows, "rows {ctx}");
            // One pair (rows 1 and 2) and one row alone (row 4).
            let mut pair = [0; 2];
            packed.dot_rows(
                &layer,
                stride,
                stride,
                &bias[bias_stride..],
                bias_stride,
                &mut pair,
            );
            assert_eq!(pair, [want.1, want.0], "pair {ctx}");
            let mut one = [0];
            packed.dot_rows(&layer, 4 * stride, 0, &bias[4 * bias_stride..], 0, &mut one);
            assert_eq!(one, [want.0], "one {ctx}");
            // Biases missing from the slice count as 0.
            let mut short = [0; 3];
            packed.dot_rows(
                &layer,
                0,
                stride,
                &bias[..2 * bias_stride + 3],
                bias_stride,
                &mut short,
            );
            assert_eq!(
                short,
                [want.0, want.1, want.0.wrapping_sub(acc.0)],
                "short {ctx}"
            );
            // No columns: nothing for the assembly loop to do (the rows are their biases).
            assert_eq!(
                packed.fits(&layer, 0, stride, bias, bias_stride, 2),
                packed.cols() > 0,
                "{ctx}"
            );
            assert!(
                !packed.fits(&layer, 2 * stride, stride, bias, bias_stride, 2),
                "{ctx}"
            );
            assert!(
                !packed.fits(
                    &layer,
                    0,
                    stride,
                    &bias[..3 * bias_stride + 3],
                    bias_stride,
                    2
                ),
                "{ctx}"
            );
            let mut pairs = [0; 4];
            packed.pairs_walk(&layer, 0, stride, bias, bias_stride, &mut pairs);
            assert_eq!(pairs, want_rows[..4], "walk {ctx}");
        }
    }

    #[test]
    fn packed_layout_is_lanes_in_column_order() {
        for (len, phase) in [(0, 0), (0, 3), (29, 3), (32, 0), (33, 0), (40, 0), (100, 1)] {
            // A dirty buffer: every word of the padded columns must be written.
            let mut buf = [7i32; packed_words(100) + 4];
            let x: std::vec::Vec<u8> = (0..len as u32).map(|i| (i * 53 + 200) as u8).collect();
            let p = Packed::with_phase(&x, phase, &mut buf);
            let n = phase + len;
            assert_eq!(p.padded_cols() % STEP_COLS, 0);
            assert!(p.padded_cols() >= n && p.padded_cols() < n + STEP_COLS);
            assert!(p.padded_cols() / 2 <= packed_words(len));
            let s = |i: usize| -> i32 {
                if i < phase || i >= n {
                    0
                } else {
                    x[i - phase] as i32
                }
            };
            for b in 0..p.padded_cols() / 4 {
                let c = 4 * b;
                let want = [s(c) | s(c + 2) << 16, s(c + 1) | s(c + 3) << 16];
                assert_eq!(
                    p.words[2 * b..2 * b + 2],
                    want,
                    "len {len} phase {phase} block {b}"
                );
            }
            assert_eq!(
                p.fits(&[0; 64], 0, 0, &[0; 4], 0, 1),
                n > 0 && p.padded_cols() <= 64
            );
        }
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
                // Rows as long as the sequence with `MAX_PHASE` leading zeros.
                let long = |at: usize| &bytes[at..at + len + MAX_PHASE];
                check_dot2(&x, long(offset), long(200 + offset), (5, -7));
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
