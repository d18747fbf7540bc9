//! The int8 VSC encoder: raw window → spike bits, γ (Q15) and slab means μ (i16), in
//! integer arithmetic after the input quantisation. No heap, no panic on any input.
//!
//! # Integer semantics (normative; the int8 ONNX export must reproduce them)
//!
//! Notation: `M` = `input_dim`, `H` = `hidden_dim`, `J` = `latent_dim`; row `r` of a
//! layer has multiplier `m_r` (i32 ≥ 0) and shift `s_r` (1..=62). For the integer `a`
//! and such a pair, **`requant(a, m, s) = (a·m + 2^(s−1)) >> s`** in 64-bit two's
//! complement with an arithmetic (flooring) shift, i.e. `floor(a·m/2^s + ½)`:
//! round half towards +∞. It cannot overflow (|a·m| ≤ 2⁶², plus 2⁶¹ < 2⁶³).
//!
//! 1. **Input** (f32, per element of channel row `c`, exactly these IEEE operations in
//!    this order): `x01 = clamp((x − offset_c) · scale_c, 0, 1)`,
//!    `x_q = round_half_even(x01 · 255)` as `u8` (0..=255, real value `x_q / 255`).
//!    This is `Sub, Mul, Clip(0,1), Mul(255), Round, Cast(uint8)` in ONNX (ONNX `Round`
//!    rounds half to even). Non-finite inputs are rejected ([`EncodeError::NonFinite`]);
//!    a NaN produced by the scaling itself (∞ · 0 after an f32 overflow) becomes 0.
//! 2. **Hidden layer**: `acc1[h] = Σ_i x_q[i] · w1[h][i] + b1[h]` exactly in i32
//!    (MatMulInteger + Add; |acc1| < 2³¹ is guaranteed by the blob limits), then
//!    ReLU and requantisation to `u8`:
//!    `h_q[h] = min(requant(max(acc1[h], 0), m1_h, s1_h), 255)`.
//!    Because the argument is ≥ 0 the floor shift equals an integer division by `2^s`,
//!    so ONNX can use `Max(·,0)`, int64 `Mul`, `Add`, `Div` and `Min(·,255)`.
//!    Real value: `h_q · hidden_scale`.
//! 3. **Heads**: `acc_mu[j] = Σ_h h_q[h] · w_mu[j][h] + b_mu[j]` and
//!    `acc_g[j] = Σ_h h_q[h] · w_g[j][h] + b_g[j]`, exactly in i32.
//! 4. **Spike bit** `j` is set ⇔ `acc_g[j] > threshold[j]` (the quantiser stores
//!    `threshold = floor(v½ / (hidden_scale · w_scale_g[j]))` with `v½` the spike
//!    head's half point, so this is `v > ln ½` ⇔ `γ = exp(min(v, 0)) > ½` for the
//!    paper's head and `v > 0` ⇔ `sigmoid(v) > ½` for the sigmoid; no `exp`).
//! 5. For **active** dims only (others are 0 in [`SparseCode`]):
//!    - `mu_q[j] = saturate_i16(requant(acc_mu[j], m_mu_j, s_mu_j))`, real μ = `mu_q · mu_scale`;
//!    - `v_q[j] = requant(acc_g[j], m_g_j, s_g_j)`, the pre-activation in Q16
//!      (real `v = v_q / 65536`), then `γ_q15 = exp_q15(v_q)` from a 180-entry table of
//!      `round(32768 · exp(−k/256))` with linear interpolation (see [`exp_q15`]);
//!      error < 2 · 2⁻¹⁵ against `exp`. Sigmoid heads use the same table after range
//!      reduction ([`crate::spike::sigmoid_q15`]).
//!
//! Step 5's signed floor shift can be written in ONNX int64 ops as
//! `q = a·m + 2^(s−1)`, `(q − Mod(q, 2^s)) / 2^s` (`Mod` with `fmod = 0` takes the
//! divisor's sign, so this is a floor division).
//!
//! Bit-identical with an ONNX graph that follows steps 1–4: `x_q`, `acc1`, `h_q`,
//! `acc_mu`, `acc_g` and the spike bits ([`Encoder::encode_traced`] exposes them all).
//!
//! # Stack
//! `encode` keeps `x_q: [u8; MAX_INPUT]` (1152 B), `h_q: [u8; MAX_HIDDEN]` (512 B) and one
//! buffer for the SMLAD layout of either layer input ([`PairInput`], 2304 B, used only by
//! [`Kernel::Packed`]) on the stack, plus a few scalars; no recursion. `encode_traced`
//! writes into a caller's [`IntTrace`] (4224 B) instead of `x_q`/`h_q`.

use core::fmt;

mod input;

use crate::blob::WeightLayout;
use crate::blob::{LayerView, MAX_HIDDEN, MAX_INPUT, MAX_LATENT, ModelBlob, SCORE_SHIFT};
pub use crate::fixed::{V_Q16_MIN, exp_q15, requant};
use crate::fixed::{requant_i16, requant_relu_u8, requant_relu_u8_high};
use crate::kernels::{Kernel, PairInput, dot_portable, pair_input_words};
use crate::preprocess::{ChannelSet, InputFeatures, SPECTRUM_VALUES_PER_CHANNEL, Window};

/// Rounds a finite `t` in `[0, 2²²]` to the nearest integer, ties to even (the IEEE
/// default rounding of the addition does the work; no libm needed in `no_std`).
#[inline(always)]
fn round_half_even_small(t: f32) -> f32 {
    const TWO_POW_23: f32 = 8_388_608.0;
    (t + TWO_POW_23) - TWO_POW_23
}

/// Quantises one raw input value of a channel with normalisation `offset`, `scale`.
#[inline(always)]
pub fn quantise_input(x: f32, offset: f32, scale: f32) -> u8 {
    let x01 = ((x - offset) * scale).clamp(0.0, 1.0);
    // NaN (only from ∞·0) saturates to 0 in the cast.
    round_half_even_small(x01 * 255.0) as u8
}

/// [`quantise_input`] with the clamp moved behind the rounding, where it is an integer
/// saturation (cheaper on a Cortex-M4F, whose FPU has no `min`/`max`). Equal for every
/// input: on `[0, 1]` both round the same product `v · 255`; for `v > 1` (or +∞) the
/// rounded product is ≥ 255 (the rounding steps are monotone), for `v < 0` (or −∞) it
/// is ≤ 0, and NaN converts to 0 — exactly the clamped results 255, 0 and 0.
#[inline(always)]
fn quantise_input_fast(x: f32, offset: f32, scale: f32) -> u8 {
    let t = (x - offset) * scale * 255.0;
    (round_half_even_small(t) as i32).clamp(0, 255) as u8
}

/// Errors of [`Encoder::encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The window has `got` values, the model expects `expected`.
    InputLength { expected: usize, got: usize },
    /// Value `index` of the window is NaN or infinite.
    NonFinite { index: usize },
    /// The window's channels differ from the model's.
    ChannelMismatch {
        expected: ChannelSet,
        got: ChannelSet,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InputLength { expected, got } => {
                write!(f, "window has {got} values, the model expects {expected}")
            }
            EncodeError::NonFinite { index } => {
                write!(f, "window value {index} is NaN or infinite")
            }
            EncodeError::ChannelMismatch { expected, got } => write!(
                f,
                "window channels {:#05x} differ from the model's {:#05x}",
                got.bits(),
                expected.bits()
            ),
        }
    }
}

impl core::error::Error for EncodeError {}

/// The encoder's output for one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseCode {
    /// Number of latent dimensions J (≤ 64).
    pub latent_dim: u8,
    /// Bit j set ⇔ γ_j > ½ (dimension j is active).
    pub spike_bits: u64,
    /// γ_j in Q15 (γ = value / 32768) for active dims, 0 for inactive ones.
    pub gamma_q15: [i16; MAX_LATENT],
    /// Slab mean μ_j = `mu_q[j] · mu_scale` for active dims, 0 for inactive ones.
    pub mu_q: [i16; MAX_LATENT],
    /// Real value of one step of `mu_q` (from the blob).
    pub mu_scale: f32,
    /// Predicted class id from the blob's activity head (see
    /// [`crate::blob::ActivityHead`]); 0 without a head.
    pub activity: u8,
    /// Margin of the predicted class over the runner-up, in units of
    /// [`crate::blob::SCORE_SCALE`] nats (0..=127); 0 without a head.
    pub activity_score: i8,
}

impl Default for SparseCode {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl SparseCode {
    /// No active dimension.
    pub const EMPTY: SparseCode = SparseCode {
        latent_dim: 0,
        spike_bits: 0,
        gamma_q15: [0; MAX_LATENT],
        mu_q: [0; MAX_LATENT],
        mu_scale: 0.0,
        activity: 0,
        activity_score: 0,
    };

    pub const fn is_active(&self, j: usize) -> bool {
        j < MAX_LATENT && self.spike_bits & (1u64 << j) != 0
    }
    pub const fn active_count(&self) -> u32 {
        self.spike_bits.count_ones()
    }
    /// Indices of the active dimensions, ascending.
    pub fn active_dims(&self) -> impl Iterator<Item = usize> + '_ {
        // Set bits lowest first: no 64-bit shift per dimension (a library call on
        // 32-bit targets).
        let mut bits = self.spike_bits;
        core::iter::from_fn(move || {
            let j = (bits != 0).then_some(bits.trailing_zeros() as usize)?;
            bits &= bits - 1;
            Some(j)
        })
    }
    /// γ_j as f32 (0 for inactive dims).
    pub fn gamma(&self, j: usize) -> f32 {
        self.gamma_q15.get(j).map_or(0.0, |&g| g as f32 / 32768.0)
    }
    /// μ_j as f32 (0 for inactive dims).
    pub fn mu(&self, j: usize) -> f32 {
        self.mu_q.get(j).map_or(0.0, |&m| m as f32 * self.mu_scale)
    }
}

/// Every integer intermediate of one encode, for parity tests against other runtimes.
/// Entries past the model's dimensions are 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntTrace {
    pub x_q: [u8; MAX_INPUT],
    pub hidden_acc: [i32; MAX_HIDDEN],
    pub h_q: [u8; MAX_HIDDEN],
    pub mu_acc: [i32; MAX_LATENT],
    pub gamma_acc: [i32; MAX_LATENT],
}

impl Default for IntTrace {
    fn default() -> Self {
        IntTrace {
            x_q: [0; MAX_INPUT],
            hidden_acc: [0; MAX_HIDDEN],
            h_q: [0; MAX_HIDDEN],
            mu_acc: [0; MAX_LATENT],
            gamma_acc: [0; MAX_LATENT],
        }
    }
}

/// The int8 encoder over a parsed blob.
#[derive(Clone, Copy, Debug)]
pub struct Encoder<'a> {
    blob: ModelBlob<'a>,
    kernel: Kernel,
    /// Every hidden row has a multiplier ≥ 0 and a shift in 33..=62 (what the quantiser
    /// writes), so its requantisation needs only the product's high word
    /// ([`requant_relu_u8_high`]): checked once here instead of per row and encode.
    hidden_high_word: bool,
}

/// Receives a layer's accumulators: `accs[k]` is row `first + k · step`. One method,
/// called per batch of rows: the indirect call and the loads of the sink's fields happen
/// once per batch, and a `dyn FnMut` would also link a by-value `call_once` copy of
/// every closure.
trait RowSink {
    fn rows(&mut self, first: usize, step: usize, accs: &[i32]);
}

/// Row indices of a batch.
fn batch_rows(first: usize, step: usize, accs: &[i32]) -> impl Iterator<Item = (usize, i32)> {
    accs.iter()
        .enumerate()
        .map(move |(k, &acc)| (first + k * step, acc))
}

/// Stores a batch's accumulators by row (the γ head, and the traces of the others);
/// one non-generic function for every array length.
fn store_rows(slots: &mut [i32], first: usize, step: usize, accs: &[i32]) {
    for (r, acc) in batch_rows(first, step, accs) {
        if let Some(slot) = slots.get_mut(r) {
            *slot = acc;
        }
    }
}

/// The γ head: accumulators stored by row.
impl RowSink for [i32; MAX_LATENT] {
    fn rows(&mut self, first: usize, step: usize, accs: &[i32]) {
        store_rows(self, first, step, accs);
    }
}

/// The hidden layer: ReLU and requantisation to `h_q`, the accumulator into the trace.
struct HiddenSink<'s, 'a> {
    layer: &'s LayerView<'a>,
    h_q: &'s mut [u8; MAX_HIDDEN],
    trace: Option<&'s mut [i32; MAX_HIDDEN]>,
    /// [`Encoder::hidden_high_word`].
    high_word: bool,
}

impl RowSink for HiddenSink<'_, '_> {
    fn rows(&mut self, first: usize, step: usize, accs: &[i32]) {
        if let Some(trace) = self.trace.as_deref_mut() {
            store_rows(trace, first, step, accs);
        }
        // Row r = first + k · step, with its multiplier and shift read straight from the
        // blob's bytes (the parser guarantees both for every row).
        let [_, _, multipliers, shifts] = self.layer.row_constant_bytes();
        let multipliers = multipliers.as_chunks::<4>().0;
        let h_q = &mut *self.h_q;
        let mut r = first;
        if self.high_word {
            for &acc in accs {
                let (Some(&m), Some(&s), Some(h)) =
                    (multipliers.get(r), shifts.get(r), h_q.get_mut(r))
                else {
                    break;
                };
                *h = requant_relu_u8_high(acc, u32::from_le_bytes(m), s);
                r += step;
            }
            return;
        }
        for &acc in accs {
            let (Some(&m), Some(&s), Some(h)) = (multipliers.get(r), shifts.get(r), h_q.get_mut(r))
            else {
                break;
            };
            *h = requant_relu_u8(acc, i32::from_le_bytes(m), s);
            r += step;
        }
    }
}

/// The μ head: requantisation to `mu_q` for active dims, the accumulator into the trace.
struct MuSink<'s, 'a> {
    layer: &'s LayerView<'a>,
    spikes: u64,
    mu_q: &'s mut [i16; MAX_LATENT],
    trace: Option<&'s mut [i32; MAX_LATENT]>,
}

impl RowSink for MuSink<'_, '_> {
    fn rows(&mut self, first: usize, step: usize, accs: &[i32]) {
        if let Some(trace) = self.trace.as_deref_mut() {
            store_rows(trace, first, step, accs);
        }
        // The row constants straight from the blob's bytes, as for the hidden layer.
        let [_, _, multipliers, shifts] = self.layer.row_constant_bytes();
        let multipliers = multipliers.as_chunks::<4>().0;
        let halves = [self.spikes as u32, (self.spikes >> 32) as u32];
        for (j, acc) in batch_rows(first, step, accs) {
            // Bit j from its 32-bit half (no 64-bit shift on a 32-bit core).
            let active = halves.get(j / 32).is_some_and(|h| h >> (j % 32) & 1 != 0);
            if active
                && let (Some(m), Some(&multiplier), Some(&shift)) =
                    (self.mu_q.get_mut(j), multipliers.get(j), shifts.get(j))
            {
                *m = requant_i16(acc, i32::from_le_bytes(multiplier), shift);
            }
        }
    }
}

/// A layer's input in the form the encoder's kernel reads.
enum LayerInput<'x> {
    /// The bytes themselves, for `Portable` and `Avx2`.
    Bytes(&'x [u8], Kernel),
    /// The bytes and a buffer for their row-pair layout ([`PairInput`]), and whether the
    /// buffer holds them already (the two heads share a packing).
    Packed(&'x [u8], &'x mut [i32], bool),
}

impl LayerInput<'_> {
    /// Calls `sink.rows(..)` for every row `r < rows` that `keep` selects (bit `r` of
    /// `keep` for `r < 64`; rows from 64 on always run: only the heads, J ≤ 64, select
    /// rows), with `acc_r = Σ_i x[i] · w[r][i] + bias[r]`. |dot| < 2²⁶ and |bias| ≤ 2³⁰
    /// (validated): the sum fits i32; the kernels add wrapping only to rule out a
    /// debug-build panic. One out-of-line instance (dynamic `sink`) keeps the firmware
    /// small; the indirect call costs a few instructions per batch of rows, not per MAC.
    ///
    /// Row-pair layers ([`WeightLayout::RowPairs`], format 5) run a pair of rows at a
    /// time (a pair runs when either of its rows is selected): `Packed` through
    /// [`PairInput::dot_pairs`] (the assembly loop on the Cortex-M4) in runs of
    /// consecutive selected pairs, the others through [`Kernel::dot_pair`]. Row-major
    /// layers (formats 1–4) run row by row (`Avx2`: four rows per pass over `x`;
    /// `Packed` falls back to the portable kernel: old blobs work everywhere, at the
    /// portable kernel's speed on the Cortex-M4).
    #[inline(never)]
    fn accumulate(
        &mut self,
        layer: &LayerView<'_>,
        rows: usize,
        keep: u64,
        sink: &mut dyn RowSink,
    ) {
        // Opaque to the optimiser: LLVM would otherwise clone this function for every
        // caller's sink (more flash).
        let sink = core::hint::black_box(sink);
        if layer.layout() == WeightLayout::RowPairs {
            self.accumulate_pairs(layer, rows, keep, sink);
            return;
        }
        let keep_row = |r: usize| r >= 64 || keep >> r & 1 != 0;
        match self {
            LayerInput::Bytes(x, kernel) if cfg!(target_arch = "x86_64") => {
                let mut group = [0usize; 4];
                let mut grouped = 0;
                for r in (0..rows).filter(|&r| keep_row(r)) {
                    if let Some(slot) = group.get_mut(grouped) {
                        *slot = r;
                        grouped += 1;
                    }
                    if grouped == group.len() {
                        let sums = kernel.dot4(x, group.map(|g| layer.row(g)));
                        for (&g, sum) in group.iter().zip(sums) {
                            sink.rows(g, 1, &[sum.wrapping_add(layer.bias(g))]);
                        }
                        grouped = 0;
                    }
                }
                for &g in group.iter().take(grouped) {
                    sink.rows(
                        g,
                        1,
                        &[kernel.dot(x, layer.row(g)).wrapping_add(layer.bias(g))],
                    );
                }
            }
            // Only x86-64 has a four-row kernel, and `Avx2` is `Portable` elsewhere: rows
            // one by one in the portable kernel keep the code small.
            LayerInput::Bytes(x, _) | LayerInput::Packed(x, _, _) => {
                portable_rows(x, layer, rows, keep, sink);
            }
        }
    }

    /// [`LayerInput::accumulate`] for a row-pair layer.
    fn accumulate_pairs(
        &mut self,
        layer: &LayerView<'_>,
        rows: usize,
        keep: u64,
        sink: &mut dyn RowSink,
    ) {
        let pairs = rows.div_ceil(2).min(layer.pairs());
        // Pair p holds rows 2p and 2p + 1 (bits 2p and 2p + 1 of `keep` below 64).
        let keep_pair = |p: usize| p >= 32 || keep >> (2 * p) & 3 != 0;
        let [bias_bytes, ..] = layer.row_constant_bytes();
        match self {
            LayerInput::Bytes(x, kernel) => {
                for p in (0..pairs).filter(|&p| keep_pair(p)) {
                    let r = 2 * p;
                    let (a, b) = kernel.dot_pair(x, layer.pair(p));
                    let accs = [
                        a.wrapping_add(layer.bias(r)),
                        b.wrapping_add(layer.bias(r + 1)),
                    ];
                    sink.rows(r, 1, accs.get(..rows - r).unwrap_or(&accs));
                }
            }
            LayerInput::Packed(x, buf, packed) => {
                let input = if *packed {
                    PairInput::reuse(x.len(), buf)
                } else {
                    *packed = true;
                    PairInput::new(x, buf)
                };
                // The accumulators of a run of pairs (written before they are read).
                let mut acc = [0i32; ROW_CHUNK];
                let mut p = 0;
                while p < pairs {
                    if !keep_pair(p) {
                        p += 1;
                        continue;
                    }
                    let start = p;
                    while p < pairs && p - start < ROW_CHUNK / 2 && keep_pair(p) {
                        p += 1;
                    }
                    let r = 2 * start;
                    let n = (2 * (p - start)).min(rows - r);
                    let run = acc.get_mut(..n).unwrap_or(&mut []);
                    let bias = bias_bytes.get(4 * r..).unwrap_or(&[]);
                    input.dot_pairs(layer.pair_run(start, p - start), bias, run);
                    sink.rows(r, 1, run);
                }
            }
        }
    }
}

/// `sink.rows(r, 1, [x · w_r + bias_r])` for the rows `r < rows` that `keep` selects
/// (bit `r`, rows from 64 on always), one by one in the portable kernel.
#[inline(never)]
fn portable_rows(x: &[u8], layer: &LayerView<'_>, rows: usize, keep: u64, sink: &mut dyn RowSink) {
    for r in (0..rows).filter(|&r| r >= 64 || keep >> r & 1 != 0) {
        sink.rows(
            r,
            1,
            &[dot_portable(x, layer.row(r)).wrapping_add(layer.bias(r))],
        );
    }
}

/// Columns of a layer's input that its kernels read: for row pairs the padded columns
/// (the encoder's input buffers are zero past the model's dimensions and hold them: both
/// dimension limits are multiples of [`crate::blob::PAIR_COLS_MULTIPLE`]), so that whole
/// blocks run in SIMD; else the layer's columns.
fn input_cols(layer: &LayerView<'_>) -> usize {
    match layer.layout() {
        WeightLayout::RowPairs => layer.pair_cols(),
        WeightLayout::RowMajor => layer.cols,
    }
}

const _: () = assert!(
    MAX_INPUT.is_multiple_of(crate::blob::PAIR_COLS_MULTIPLE)
        && MAX_HIDDEN.is_multiple_of(crate::blob::PAIR_COLS_MULTIPLE)
);

/// Rows per call of the assembly loop for a layer's every row (its accumulators are on
/// the stack: 128 B).
const ROW_CHUNK: usize = 32;

/// Packed-input buffer size, for either layer input (one buffer serves both stages).
const PACKED_WORDS: usize = pair_input_words(if MAX_INPUT > MAX_HIDDEN {
    MAX_INPUT
} else {
    MAX_HIDDEN
});
/// Words of the packed buffer that the heads' input needs; the γ accumulators follow.
const HEAD_WORDS: usize = pair_input_words(MAX_HIDDEN);
const _: () = assert!(HEAD_WORDS + MAX_LATENT <= PACKED_WORDS);

impl<'a> Encoder<'a> {
    /// An encoder using the kernel for the compilation target ([`Kernel::for_target`]).
    pub fn new(blob: ModelBlob<'a>) -> Self {
        let [_, _, multipliers, shifts] = blob.hidden().row_constant_bytes();
        let hidden_high_word = multipliers
            .as_chunks::<4>()
            .0
            .iter()
            .zip(shifts)
            .all(|(&m, s)| i32::from_le_bytes(m) >= 0 && (33..=62).contains(s));
        Encoder {
            blob,
            kernel: Kernel::for_target(),
            hidden_high_word,
        }
    }

    /// The same encoder with another dot-product kernel (identical results).
    pub fn with_kernel(self, kernel: Kernel) -> Self {
        Encoder { kernel, ..self }
    }

    pub fn blob(&self) -> &ModelBlob<'a> {
        &self.blob
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Encodes a window from the preprocessor; its channels must be the model's.
    pub fn encode_window(&self, window: &Window, out: &mut SparseCode) -> Result<(), EncodeError> {
        if window.channels() != self.blob.channels() {
            return Err(EncodeError::ChannelMismatch {
                expected: self.blob.channels(),
                got: window.channels(),
            });
        }
        self.encode(window.as_slice(), out)
    }

    /// Encodes one raw channel-major window (channels × `window_len` values, physical
    /// units); the model input ([`InputFeatures`]) is computed from it here.
    /// On error `out` is left unchanged.
    pub fn encode(&self, window_raw: &[f32], out: &mut SparseCode) -> Result<(), EncodeError> {
        let mut x_q = [0u8; MAX_INPUT];
        self.input_stage(window_raw, &mut x_q)?;
        self.dense_stages(&x_q, out);
        Ok(())
    }

    /// Steps 2–5 of [`Encoder::encode`]. Out of line so that `h_q` and the packed input
    /// are not on the stack while the input stage runs.
    #[inline(never)]
    fn dense_stages(&self, x_q: &[u8; MAX_INPUT], out: &mut SparseCode) {
        let mut h_q = [0u8; MAX_HIDDEN];
        let mut packed = [0i32; PACKED_WORDS];
        self.hidden_stage(x_q, &mut h_q, None, &mut packed);
        self.head_stage(&h_q, out, None, &mut packed);
    }

    /// Like [`Encoder::encode`], also recording every integer intermediate (head
    /// accumulators for all dims, active or not) in `trace`.
    pub fn encode_traced(
        &self,
        window_raw: &[f32],
        out: &mut SparseCode,
        trace: &mut IntTrace,
    ) -> Result<(), EncodeError> {
        let mut packed = [0i32; PACKED_WORDS];
        trace.x_q.fill(0);
        self.input_stage(window_raw, &mut trace.x_q)?;
        trace.h_q.fill(0);
        self.hidden_stage(
            &trace.x_q,
            &mut trace.h_q,
            Some(&mut trace.hidden_acc),
            &mut packed,
        );
        self.head_stage(
            &trace.h_q,
            out,
            Some((&mut trace.mu_acc, &mut trace.gamma_acc)),
            &mut packed,
        );
        Ok(())
    }

    /// Step 1 alone: the quantised model input `x_q` of a raw channel-major window (its
    /// first `input_dim` bytes; the rest 0), for benchmarks that measure the input stage
    /// apart from the dense layers. Errors as [`Encoder::encode`].
    pub fn model_input(
        &self,
        window_raw: &[f32],
        x_q: &mut [u8; MAX_INPUT],
    ) -> Result<(), EncodeError> {
        x_q.fill(0);
        self.input_stage(window_raw, x_q)
    }

    /// Step 1 into `x_q`, which arrives zeroed: the bytes past `input_dim` stay 0.
    #[inline(never)]
    fn input_stage(
        &self,
        window_raw: &[f32],
        x_q: &mut [u8; MAX_INPUT],
    ) -> Result<(), EncodeError> {
        let expected = self.blob.window_dim();
        if window_raw.len() != expected {
            return Err(EncodeError::InputLength {
                expected,
                got: window_raw.len(),
            });
        }
        let first_non_finite = || window_raw.iter().position(|x| !x.is_finite());
        match self.blob.features() {
            InputFeatures::Waveform => {
                if let Some(index) = first_non_finite() {
                    return Err(EncodeError::NonFinite { index });
                }
                // ≥ 1 for every parsed blob; `max` keeps `chunks_exact` panic-free regardless.
                let window_len = self.blob.window_len().max(1);
                for (c, (raw_row, q_row)) in window_raw
                    .chunks_exact(window_len)
                    .zip(x_q.chunks_exact_mut(window_len))
                    .enumerate()
                {
                    let s = self.blob.scaling(c);
                    for (q, &x) in q_row.iter_mut().zip(raw_row) {
                        *q = quantise_input_fast(x, s.offset, s.scale);
                    }
                }
            }
            InputFeatures::BandSpectrum => {
                // A NaN or ∞ among a channel's samples makes its mean (a sum of them all)
                // NaN or ∞, so only a channel whose mean is not finite needs the scan for
                // the first bad sample (one that overflowed from finite samples has none).
                // Skipping the up-front scan saves a pass over every sample.
                let mut q_rows = x_q.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL);
                // One scaling entry (8 bytes) per model-input value.
                let mut row_scaling = self
                    .blob
                    .scaling_bytes()
                    .chunks(8 * SPECTRUM_VALUES_PER_CHANNEL);
                let mut suspect = false;
                InputFeatures::band_spectra(window_raw, |spectrum| {
                    suspect |= !spectrum[0].is_finite();
                    if let (Some(q_row), Some(scaling)) = (q_rows.next(), row_scaling.next()) {
                        input::quantise_row(spectrum, scaling, q_row);
                    }
                });
                if suspect && let Some(index) = first_non_finite() {
                    x_q.fill(0);
                    return Err(EncodeError::NonFinite { index });
                }
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn hidden_stage(
        &self,
        x_q: &[u8; MAX_INPUT],
        h_q: &mut [u8; MAX_HIDDEN],
        mut acc_out: Option<&mut [i32; MAX_HIDDEN]>,
        packed: &mut [i32; PACKED_WORDS],
    ) {
        let layer = self.blob.hidden();
        let input = x_q.get(..input_cols(layer)).unwrap_or(&[]);
        // `h_q` arrives zeroed: rows past the layer's stay 0.
        if let Some(a) = acc_out.as_deref_mut() {
            a.fill(0);
        }
        let mut input = match self.kernel {
            Kernel::Packed => LayerInput::Packed(input, packed, false),
            kernel @ (Kernel::Portable | Kernel::Avx2) => LayerInput::Bytes(input, kernel),
        };
        let rows = layer.rows.min(MAX_HIDDEN);
        let mut sink = HiddenSink {
            layer,
            h_q,
            trace: acc_out,
            high_word: self.hidden_high_word,
        };
        input.accumulate(layer, rows, u64::MAX, &mut sink);
    }

    #[inline(always)]
    fn head_stage(
        &self,
        h_q: &[u8; MAX_HIDDEN],
        out: &mut SparseCode,
        mut acc_out: Option<(&mut [i32; MAX_LATENT], &mut [i32; MAX_LATENT])>,
        packed: &mut [i32; PACKED_WORDS],
    ) {
        let (mu, gamma) = (self.blob.mu_head(), self.blob.gamma_head());
        let input = h_q.get(..input_cols(gamma)).unwrap_or(&[]);
        // Field by field: no 264-byte temporary to copy.
        out.latent_dim = self.blob.latent_dim() as u8;
        out.spike_bits = 0;
        out.gamma_q15.fill(0);
        out.mu_q.fill(0);
        out.mu_scale = self.blob.mu_scale();
        if let Some((m, g)) = acc_out.as_mut() {
            m.fill(0);
            g.fill(0);
        }
        // The γ accumulators live in the packed buffer past the heads' packed input (at
        // most MAX_HIDDEN columns): no more stack than the hidden layer needs. Every row
        // below `latent` is written before it is read.
        let (packed, spare) = packed.split_at_mut(HEAD_WORDS);
        let Some(acc_g) = spare.first_chunk_mut::<MAX_LATENT>() else {
            return;
        };
        let mut input = match self.kernel {
            Kernel::Packed => LayerInput::Packed(input, packed, false),
            kernel @ (Kernel::Portable | Kernel::Avx2) => LayerInput::Bytes(input, kernel),
        };
        let latent = gamma.rows.min(MAX_LATENT);
        let spike_head = self.blob.spike_head();
        input.accumulate(gamma, latent, u64::MAX, acc_g);
        let acc_g = acc_g.get(..latent).unwrap_or(&[]);
        // Spike bits in two 32-bit halves (no 64-bit shifts on a 32-bit core).
        let mut halves = [0u32; 2];
        let [_, thresholds, multipliers, shifts] = gamma.row_constant_bytes();
        let rows = acc_g.iter().zip(thresholds.as_chunks::<4>().0);
        for (j, (&acc, &threshold)) in rows.enumerate() {
            if acc > i32::from_le_bytes(threshold) {
                if let Some(half) = halves.get_mut(j / 32) {
                    *half |= 1 << (j % 32);
                }
                let multiplier = multipliers.as_chunks::<4>().0.get(j).copied();
                let v_q = requant(
                    acc,
                    i32::from_le_bytes(multiplier.unwrap_or_default()),
                    shifts.get(j).copied().unwrap_or(1),
                );
                if let Some(g) = out.gamma_q15.get_mut(j) {
                    *g = spike_head.gamma_q15(v_q);
                }
            }
        }
        out.spike_bits = u64::from(halves[0]) | u64::from(halves[1]) << 32;
        let spikes = out.spike_bits;
        // The μ dot product only for active dims (sparse saving), for all when traced.
        let (mu_trace, mu_rows) = match acc_out {
            Some((m, g)) => {
                for (slot, &acc) in g.iter_mut().zip(acc_g) {
                    *slot = acc;
                }
                (Some(m), u64::MAX)
            }
            None => (None, spikes),
        };
        let mut sink = MuSink {
            layer: mu,
            spikes,
            mu_q: &mut out.mu_q,
            trace: mu_trace,
        };
        input.accumulate(mu, latent, mu_rows, &mut sink);
        self.activity_stage(out);
    }

    /// The activity head on the sparse code (see [`crate::blob::ActivityHead`]): K dot
    /// products over the active dims only.
    #[inline(never)]
    fn activity_stage(&self, out: &mut SparseCode) {
        out.activity = 0;
        out.activity_score = 0;
        let Some(head) = self.blob.activity_head() else {
            return;
        };
        let layer = &head.layer;
        let (mut best, mut best_row, mut second) = (i64::MIN, 0, i64::MIN);
        // The active dims, ascending, from the two 32-bit halves of the spike bits (no
        // 64-bit shifts on a 32-bit core).
        let halves = [
            (0, out.spike_bits as u32),
            (32, (out.spike_bits >> 32) as u32),
        ];
        for c in 0..layer.rows {
            let row = layer.row(c);
            let mut acc = layer.bias(c);
            for (base, half) in halves {
                let mut bits = half;
                while bits != 0 {
                    let j = base + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let w = row.get(j).copied().unwrap_or(0) as i8;
                    let mu = out.mu_q.get(j).copied().unwrap_or(0);
                    // |Σ| < 64 · 127 · 2¹⁵ and |bias| ≤ 2³⁰: no overflow; wrapping only
                    // rules out a debug-build panic.
                    acc = acc.wrapping_add(i32::from(w) * i32::from(mu));
                }
            }
            let logit = requant(acc, layer.multiplier(c), layer.shift(c));
            if logit > best {
                (second, best, best_row) = (best, logit, c);
            } else if logit > second {
                second = logit;
            }
        }
        out.activity = head.class_id(best_row);
        let margin = best.saturating_sub(second) >> SCORE_SHIFT;
        out.activity_score = margin.clamp(0, i8::MAX as i64) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_quantisation_rounds_half_to_even_and_clamps() {
        for (t, want) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (254.5, 254.0),
            (3.4999, 3.0),
        ] {
            assert_eq!(round_half_even_small(t), want, "{t}");
        }
        // 0.5 · 255 = 127.5 exactly → 128 (even).
        assert_eq!(quantise_input(0.5, 0.0, 1.0), 128);
        assert_eq!(quantise_input(-7.0, 0.0, 1.0), 0);
        assert_eq!(quantise_input(7.0, 0.0, 1.0), 255);
        assert_eq!(
            quantise_input(0.3, 0.1, 2.0),
            (0.4f32 * 255.0).round() as u8
        );
        assert_eq!(quantise_input(f32::MAX, -f32::MAX, 0.0), 0);
    }

    #[test]
    fn fast_input_quantisation_equals_the_reference() {
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5 / 255.0,
            1.5 / 255.0,
            254.5 / 255.0,
            1.0 + f32::EPSILON,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            1e30,
            -1e30,
            4_194_304.0,
            8_388_607.5,
        ];
        let mut next = crate::test_rng::xorshift32(0x1234_5678);
        for &x in &specials {
            for &(offset, scale) in &[(0.0, 1.0), (-f32::MAX, 1.0), (0.25, 0.0), (1.0, 3.0)] {
                assert_eq!(
                    quantise_input_fast(x, offset, scale),
                    quantise_input(x, offset, scale),
                    "{x} {offset} {scale}"
                );
            }
        }
        for _ in 0..200_000 {
            // Finite values of every magnitude (random bit patterns) and values near [0, 1].
            let x = f32::from_bits(next());
            let near = (next() % 100_000) as f32 / 50_000.0 - 0.5;
            let scale = [1.0, 0.37, 1e-3, 3.0e5][next() as usize % 4];
            for x in [x, near] {
                if x.is_finite() {
                    assert_eq!(
                        quantise_input_fast(x, -0.2, scale),
                        quantise_input(x, -0.2, scale),
                        "{x} {scale}"
                    );
                }
            }
        }
    }
}
