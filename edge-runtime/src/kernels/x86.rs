//! The x86-64 AVX2 dot kernel of [`super::Kernel::Avx2`]: `Σ x[i] · (w[i] as i8)`,
//! exactly the integer [`super::dot_portable`] computes, for up to four rows at a time.
//!
//! Per 16 columns: the 16 activations are zero-extended to 16-bit lanes once
//! (`vpmovzxbw`) and shared by every row; per row the 16 weights are sign-extended
//! (`vpmovsxbw`), multiplied lane by lane and added in pairs into eight i32 lanes
//! (`vpmaddwd`), then added to the row's accumulator (`vpaddd`). Every product fits
//! i16 × i16 → i32 and a pair sum is at most 2 · 255 · 128 < 2¹⁷, so `vpmaddwd` is exact;
//! the i32 lane adds wrap like the portable kernel's `wrapping_add`, and integer sums
//! modulo 2³² do not depend on the order, so the results are identical for every input.
//! (`vpmaddubsw`, u8 × i8 with a saturating i16 pair sum, is not used: 2 · 255 · 127
//! exceeds `i16::MAX`.) Columns past the last full block of 16 run in
//! [`super::dot_portable`].
//!
//! AVX2 is found at run time with the `std` feature (`is_x86_feature_detected!`, a cached
//! flag), else only when the build enables it (`-C target-feature=+avx2`); without it
//! every function here returns `None` and the caller uses the portable kernel.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_shuffle_epi32, _mm256_add_epi32,
    _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_cvtepu8_epi16, _mm256_extracti128_si256,
    _mm256_madd_epi16, _mm256_setzero_si256, _mm256_slli_epi16, _mm256_srai_epi16,
    _mm256_sub_epi16,
};

use super::{dot_pair_portable, dot_portable};

/// Columns per SIMD step (16 lanes of 16 bits).
const BLOCK: usize = 16;

/// Whether this CPU (or, without `std`, this build) has AVX2.
#[inline]
pub fn avx2_available() -> bool {
    #[cfg(target_feature = "avx2")]
    {
        true
    }
    #[cfg(all(not(target_feature = "avx2"), feature = "std"))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(all(not(target_feature = "avx2"), not(feature = "std")))]
    {
        false
    }
}

/// `Σ x[i] · (w[i] as i8)` over the common length; `None` without AVX2.
#[inline]
pub fn dot(x: &[u8], w: &[u8]) -> Option<i32> {
    dot_rows(x, [w]).map(|[d]| d)
}

/// `[x · w0, x · w1, x · w2, x · w3]`, each over its common length with `x`; `None`
/// without AVX2.
#[inline]
pub fn dot4(x: &[u8], w: [&[u8]; 4]) -> Option<[i32; 4]> {
    dot_rows(x, w)
}

/// `R` rows sharing every activation load; the columns every row has run in SIMD, the
/// rest of each row in [`dot_portable`].
#[inline]
fn dot_rows<const R: usize>(x: &[u8], rows: [&[u8]; R]) -> Option<[i32; R]> {
    if !avx2_available() {
        return None;
    }
    // SAFETY: `dot_blocks` only needs the CPU to support AVX2 (its memory accesses are
    // bounds-checked by itself), which `avx2_available` has just confirmed.
    #[allow(unsafe_code)]
    let (mut sums, done) = unsafe { dot_blocks(x, rows) };
    let x_rest = x.get(done..).unwrap_or(&[]);
    for (sum, w) in sums.iter_mut().zip(rows) {
        *sum = sum.wrapping_add(dot_portable(x_rest, w.get(done..).unwrap_or(&[])));
    }
    Some(sums)
}

/// The SIMD part of [`dot_rows`]: the sums over the first `done` columns, where `done`
/// is the common length of `x` and every row rounded down to a multiple of [`BLOCK`], or
/// all of `x` when every row is as long and `x` has at least one whole block.
#[target_feature(enable = "avx2")]
fn dot_blocks<const R: usize>(x: &[u8], rows: [&[u8]; R]) -> ([i32; R], usize) {
    let xs = x.as_chunks::<BLOCK>().0;
    let mut ws: [&[[u8; BLOCK]]; R] = [&[]; R];
    let mut blocks = xs.len();
    for (blocks_of, w) in ws.iter_mut().zip(rows) {
        *blocks_of = w.as_chunks::<BLOCK>().0;
        blocks = blocks.min(blocks_of.len());
    }
    // Every slice cut to the common block count, so that the indexing below provably
    // stays in bounds (`blocks` is at most every length: the checks cannot fail).
    let xs = &xs[..blocks];
    for w in &mut ws {
        *w = &w[..blocks];
    }
    let mut acc = [_mm256_setzero_si256(); R];
    for (b, xb) in xs.iter().enumerate() {
        let xv = _mm256_cvtepu8_epi16(load16(xb));
        for (a, w) in acc.iter_mut().zip(&ws) {
            let wv = _mm256_cvtepi8_epi16(load16(&w[b]));
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, wv));
        }
    }
    let mut done = blocks * BLOCK;
    // The last partial block (a layer whose width is not a multiple of 16, e.g. 297
    // inputs) as one more block: the 16 bytes that end at `x`'s end, with the columns
    // already summed zeroed in `x`, so the weights read again there add nothing. Only
    // when every row is at least as long as `x` and the blocks reached its last 16.
    let n = x.len();
    if done < n
        && n - done < BLOCK
        && rows.iter().all(|w| w.len() >= n)
        && let Some(x_last) = x
            .get(n.saturating_sub(BLOCK)..)
            .and_then(|t| <&[u8; BLOCK]>::try_from(t).ok())
    {
        let keep = n - done;
        let mut masked = *x_last;
        for (i, v) in masked.iter_mut().enumerate() {
            if i < BLOCK - keep {
                *v = 0;
            }
        }
        let xv = _mm256_cvtepu8_epi16(load16(&masked));
        for (a, w) in acc.iter_mut().zip(rows) {
            if let Some(w_last) = w
                .get(n - BLOCK..n)
                .and_then(|t| <&[u8; BLOCK]>::try_from(t).ok())
            {
                let wv = _mm256_cvtepi8_epi16(load16(w_last));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, wv));
            }
        }
        done = n;
    }
    let mut sums = [0i32; R];
    for (s, a) in sums.iter_mut().zip(acc) {
        *s = horizontal_sum(a);
    }
    (sums, done)
}

/// A row pair stored as halfwords `h = 256 · b + a` (see [`super::PairInput`]):
/// `(x · a, x · b)` over the common length; `None` without AVX2.
#[inline]
pub fn dot_pair(x: &[u8], pair: &[u8]) -> Option<(i32, i32)> {
    if !avx2_available() {
        return None;
    }
    // SAFETY: `dot_pair_blocks` only needs the CPU to support AVX2 (its memory accesses
    // are bounds-checked by itself), which `avx2_available` has just confirmed.
    #[allow(unsafe_code)]
    let ((a, b), done) = unsafe { dot_pair_blocks(x, pair) };
    let (ta, tb) = dot_pair_portable(
        x.get(done..).unwrap_or(&[]),
        pair.get(2 * done..).unwrap_or(&[]),
    );
    Some((a.wrapping_add(ta), b.wrapping_add(tb)))
}

/// The SIMD part of [`dot_pair`]: the sums over the first `done` columns (the common
/// length rounded down to a multiple of [`BLOCK`]). Per 16 columns: the activations
/// zero-extended to 16-bit lanes once (`vpmovzxbw`); the 16 halfwords of the pair split
/// into the first row's weights (`a`: the low byte sign-extended, `vpsllw` + `vpsraw`)
/// and the second's (`b = (h − a) >> 8`, exact), each multiplied and added in pairs
/// (`vpmaddwd`, exact: |products| ≤ 255 · 128) into its eight i32 lanes.
#[target_feature(enable = "avx2")]
fn dot_pair_blocks(x: &[u8], pair: &[u8]) -> ((i32, i32), usize) {
    let xs = x.as_chunks::<BLOCK>().0;
    let ws = pair.as_chunks::<{ 2 * BLOCK }>().0;
    let blocks = xs.len().min(ws.len());
    let (mut acc_a, mut acc_b) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for (xb, wb) in xs.iter().zip(ws).take(blocks) {
        let xv = _mm256_cvtepu8_epi16(load16(xb));
        let h = load32(wb);
        let a = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(h));
        let b = _mm256_srai_epi16::<8>(_mm256_sub_epi16(h, a));
        acc_a = _mm256_add_epi32(acc_a, _mm256_madd_epi16(xv, a));
        acc_b = _mm256_add_epi32(acc_b, _mm256_madd_epi16(xv, b));
    }
    (
        (horizontal_sum(acc_a), horizontal_sum(acc_b)),
        blocks * BLOCK,
    )
}

/// The 32 bytes as a vector register value (any alignment).
#[inline(always)]
#[allow(unsafe_code)]
fn load32(bytes: &[u8; 2 * BLOCK]) -> __m256i {
    // SAFETY: `[u8; 32]` and `__m256i` have the same size and every bit pattern is a
    // valid value of both.
    unsafe { core::mem::transmute::<[u8; 2 * BLOCK], __m256i>(*bytes) }
}

/// The 16 bytes as a vector register value (any alignment).
#[inline(always)]
#[allow(unsafe_code)]
fn load16(bytes: &[u8; BLOCK]) -> __m128i {
    // SAFETY: `[u8; 16]` and `__m128i` have the same size and every bit pattern is a
    // valid value of both. (Not `_mm_loadu_si128`: its copy carries a debug-build
    // overlap check that costs more than the multiply-adds here.)
    unsafe { core::mem::transmute::<[u8; BLOCK], __m128i>(*bytes) }
}

/// Wrapping sum of the eight i32 lanes.
#[target_feature(enable = "avx2")]
fn horizontal_sum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}
