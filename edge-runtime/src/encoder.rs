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
//! `encode` keeps `x_q: [u8; MAX_INPUT]` (1152 B) and `h_q: [u8; MAX_HIDDEN]` (512 B) on
//! the stack, and with [`Kernel::Packed`] their SMLAD layouts ([`Packed`], 2320 B and
//! 1040 B, one at a time per stage) plus a few scalars; no recursion. `encode_traced`
//! writes into a caller's [`IntTrace`] (4224 B) instead of `x_q`/`h_q`.

use core::fmt;

use crate::blob::{LayerView, MAX_HIDDEN, MAX_INPUT, MAX_LATENT, ModelBlob};
use crate::kernels::{Kernel, Packed, dot_portable, packed_words};
use crate::preprocess::{
    ChannelSet, InputFeatures, SPECTRUM_VALUES_PER_CHANNEL, WINDOW_LEN, Window,
};

/// `floor(a·m / 2^s + ½)`, computed as `(a·m + 2^(s−1)) >> s` in i64 (round half up).
/// `s` outside 1..=62 is clamped into it (the blob parser rejects such shifts anyway).
#[inline(always)]
pub const fn requant(acc: i32, multiplier: i32, shift: u8) -> i64 {
    let s = if shift < 1 {
        1
    } else if shift > 62 {
        62
    } else {
        shift
    };
    (acc as i64 * multiplier as i64 + (1i64 << (s - 1))) >> s
}

/// `ln ½` in Q16, rounded towards −∞: the most negative `v_q` of an active dimension.
pub const V_Q16_MIN: i32 = -45427;

const EXP_TABLE_LEN: usize = 180;

/// `round(32768 · exp(−k/256))` for k in 0..180, from a Taylor series in i128 fixed
/// point (Q60), evaluated at compile time.
const fn exp_table() -> [i32; EXP_TABLE_LEN] {
    let mut table = [0i32; EXP_TABLE_LEN];
    let one: i128 = 1 << 60;
    let mut k = 0;
    while k < EXP_TABLE_LEN {
        let mut sum = one;
        let mut term = one;
        let mut n = 1;
        while n < 30 {
            term = term * k as i128 / (256 * n as i128);
            if n % 2 == 1 {
                sum -= term;
            } else {
                sum += term;
            }
            n += 1;
        }
        // Q60 → Q15 with rounding.
        table[k] = ((sum + (1 << 44)) >> 45) as i32;
        k += 1;
    }
    table
}

static EXP_TABLE: [i32; EXP_TABLE_LEN] = exp_table();

/// γ = exp(v) in Q15 for `v_q` = v in Q16, clamped to `[V_Q16_MIN, 0]` first, so the
/// result is in 16384..=32767 (γ = 1 saturates to 32767). Linear interpolation between
/// table points 1/256 apart: `t[k] − ((t[k] − t[k+1])·f + 128) >> 8`, `k = d >> 8`,
/// `f = d & 255`, `d = −v_q`.
pub fn exp_q15(v_q: i64) -> i16 {
    let d = (-v_q.clamp(V_Q16_MIN as i64, 0)) as usize;
    let (k, f) = (d >> 8, (d & 0xFF) as i32);
    let t0 = EXP_TABLE.get(k).copied().unwrap_or(16384);
    let t1 = EXP_TABLE.get(k + 1).copied().unwrap_or(16384);
    let g = t0 - (((t0 - t1) * f + 128) >> 8);
    g.clamp(0, i16::MAX as i32) as i16
}

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
    };

    pub const fn is_active(&self, j: usize) -> bool {
        j < MAX_LATENT && self.spike_bits & (1u64 << j) != 0
    }
    pub const fn active_count(&self) -> u32 {
        self.spike_bits.count_ones()
    }
    /// Indices of the active dimensions, ascending.
    pub fn active_dims(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_LATENT).filter(|&j| self.is_active(j))
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
}

/// A layer's input in the form the encoder's kernel reads.
enum LayerInput<'x> {
    /// The bytes themselves, for `Portable` and `Avx2`.
    Bytes(&'x [u8], Kernel),
    /// The bytes and a buffer for their SMLAD layout ([`Packed`], packed once per row
    /// phase).
    Packed(&'x [u8], &'x mut [u32]),
}

impl LayerInput<'_> {
    /// Calls `f(r, acc_r)` for every row `r < rows` with `keep(r)` (`Bytes`: in order, in
    /// groups of four for [`Kernel::dot4`]; `Packed`: in pairs of rows with the same
    /// phase, see below), `acc_r = Σ_i x[i] · w[r][i] + bias[r]`. |dot| < 2²⁶ and
    /// |bias| ≤ 2³⁰ (validated): the sum fits i32; the kernels add wrapping only to rule
    /// out a debug-build panic. One out-of-line instance (dynamic `keep` and `f`) keeps
    /// the firmware small; the indirect calls cost a few instructions per row, not per MAC.
    ///
    /// `Packed` reads every row from the word boundary at or below its start, in `blob`
    /// (which holds the layer), so the assembly loop can use aligned `LDRD`s and run past
    /// the row's end: the row's *phase* (its address mod 4) becomes leading zero columns
    /// of the packed input ([`Packed::with_phase`]), and the bytes after the row meet its
    /// zero padding. Rows of one phase are processed together, so a layer with
    /// `cols % 4 ≠ 0` packs its input up to four times (rows `r ≡ r0 mod 4` share a phase).
    #[inline(never)]
    fn accumulate(
        &mut self,
        blob: &[u8],
        layer: &LayerView<'_>,
        rows: usize,
        keep: &dyn Fn(usize) -> bool,
        f: &mut dyn FnMut(usize, i32),
    ) {
        // Opaque to the optimiser: LLVM would otherwise clone this function for every
        // caller's closures (three copies, ~6 KiB more flash); the indirect calls cost a
        // few instructions per row.
        let (keep, f) = core::hint::black_box((keep, f));
        match self {
            LayerInput::Bytes(x, kernel) if !cfg!(target_arch = "x86_64") => {
                // Only x86-64 has a four-row kernel; elsewhere rows one by one keep the
                // code small.
                for r in (0..rows).filter(|&r| keep(r)) {
                    f(r, kernel.dot(x, layer.row(r)).wrapping_add(layer.bias(r)));
                }
            }
            LayerInput::Bytes(x, kernel) => {
                let mut group = [0usize; 4];
                let mut grouped = 0;
                for r in (0..rows).filter(|&r| keep(r)) {
                    if let Some(slot) = group.get_mut(grouped) {
                        *slot = r;
                        grouped += 1;
                    }
                    if grouped == group.len() {
                        let sums = kernel.dot4(x, group.map(|g| layer.row(g)));
                        for (&g, sum) in group.iter().zip(sums) {
                            f(g, sum.wrapping_add(layer.bias(g)));
                        }
                        grouped = 0;
                    }
                }
                for &g in group.iter().take(grouped) {
                    f(g, kernel.dot(x, layer.row(g)).wrapping_add(layer.bias(g)));
                }
            }
            LayerInput::Packed(x, buf) => {
                let cols = layer.cols;
                let weights = layer.weight_bytes().as_ptr() as usize;
                // Byte offset of the layer's weights in `blob` (huge if not inside it: then
                // no row is found there and the rows run in the portable kernel).
                let offset = weights.wrapping_sub(blob.as_ptr() as usize);
                let phase_of = |r: usize| weights.wrapping_add(r * cols) % 4;
                // Residues mod 4 ordered so that equal phases (cols % 4 = 0 or 2) follow
                // each other; `pending` pairs rows across them.
                let classes = [0usize, 2, 1, 3];
                for phase in 0..4 {
                    if !classes.iter().any(|&r0| r0 < rows && phase_of(r0) == phase) {
                        continue;
                    }
                    let packed = Packed::with_phase(x, phase, buf);
                    let padded = packed.padded_cols();
                    let mut pending: Option<(usize, &[u8])> = None;
                    for r0 in classes.into_iter().filter(|&r0| phase_of(r0) == phase) {
                        // Row r0's phase-aligned start in `blob`; rows r0 + 4k follow
                        // 4 · cols bytes apart.
                        let mut at = offset.wrapping_add(r0 * cols).wrapping_sub(phase);
                        for r in (r0..rows).step_by(4) {
                            let start = at;
                            at = at.wrapping_add(4 * cols);
                            if !keep(r) {
                                continue;
                            }
                            let Some(w) = blob.get(start..).map(|w| w.get(..padded).unwrap_or(w))
                            else {
                                f(r, dot_portable(x, layer.row(r)).wrapping_add(layer.bias(r)));
                                continue;
                            };
                            match pending.take() {
                                Some((a, wa)) => {
                                    let bias = (layer.bias(a), layer.bias(r));
                                    let (acc_a, acc_r) = packed.dot2(wa, w, bias);
                                    f(a, acc_a);
                                    f(r, acc_r);
                                }
                                None => pending = Some((r, w)),
                            }
                        }
                    }
                    if let Some((a, wa)) = pending {
                        // An odd row out runs as a pair with itself (the fast loop).
                        f(a, packed.dot2(wa, wa, (layer.bias(a), 0)).0);
                    }
                }
            }
        }
    }
}

/// Packed-input buffer sizes.
const INPUT_WORDS: usize = packed_words(MAX_INPUT);
const HIDDEN_WORDS: usize = packed_words(MAX_HIDDEN);

impl<'a> Encoder<'a> {
    /// An encoder using the kernel for the compilation target ([`Kernel::for_target`]).
    pub fn new(blob: ModelBlob<'a>) -> Self {
        Encoder {
            blob,
            kernel: Kernel::for_target(),
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
        let mut h_q = [0u8; MAX_HIDDEN];
        self.input_stage(window_raw, &mut x_q)?;
        self.hidden_stage(&x_q, &mut h_q, None);
        self.head_stage(&h_q, out, None);
        Ok(())
    }

    /// Like [`Encoder::encode`], also recording every integer intermediate (head
    /// accumulators for all dims, active or not) in `trace`.
    pub fn encode_traced(
        &self,
        window_raw: &[f32],
        out: &mut SparseCode,
        trace: &mut IntTrace,
    ) -> Result<(), EncodeError> {
        self.input_stage(window_raw, &mut trace.x_q)?;
        self.hidden_stage(&trace.x_q, &mut trace.h_q, Some(&mut trace.hidden_acc));
        self.head_stage(
            &trace.h_q,
            out,
            Some((&mut trace.mu_acc, &mut trace.gamma_acc)),
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
        self.input_stage(window_raw, x_q)
    }

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
        if let Some(index) = window_raw.iter().position(|x| !x.is_finite()) {
            return Err(EncodeError::NonFinite { index });
        }
        x_q.fill(0);
        match self.blob.features() {
            InputFeatures::Waveform => {
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
                // One channel at a time: 33 floats on the stack, not the whole input.
                let mut spectrum = [0.0f32; SPECTRUM_VALUES_PER_CHANNEL];
                for (c, (raw_row, q_row)) in window_raw
                    .chunks_exact(WINDOW_LEN)
                    .zip(x_q.chunks_exact_mut(SPECTRUM_VALUES_PER_CHANNEL))
                    .enumerate()
                {
                    InputFeatures::BandSpectrum
                        .compute(raw_row, &mut spectrum)
                        .map_err(|_| EncodeError::InputLength {
                            expected,
                            got: window_raw.len(),
                        })?;
                    for (k, (q, &x)) in q_row.iter_mut().zip(&spectrum).enumerate() {
                        let s = self.blob.scaling(c * SPECTRUM_VALUES_PER_CHANNEL + k);
                        *q = quantise_input_fast(x, s.offset, s.scale);
                    }
                }
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn hidden_stage(
        &self,
        x_q: &[u8; MAX_INPUT],
        h_q: &mut [u8; MAX_HIDDEN],
        mut acc_out: Option<&mut [i32; MAX_HIDDEN]>,
    ) {
        let layer = self.blob.hidden();
        let input = x_q.get(..layer.cols).unwrap_or(&[]);
        h_q.fill(0);
        if let Some(a) = acc_out.as_deref_mut() {
            a.fill(0);
        }
        let mut buf = [0u32; INPUT_WORDS];
        let mut input = match self.kernel {
            Kernel::Packed => LayerInput::Packed(input, &mut buf),
            kernel @ (Kernel::Portable | Kernel::Avx2) => LayerInput::Bytes(input, kernel),
        };
        let rows = layer.rows.min(MAX_HIDDEN);
        input.accumulate(
            self.blob.as_bytes(),
            layer,
            rows,
            &|_| true,
            &mut |r, acc| {
                if let Some(slot) = acc_out.as_deref_mut().and_then(|a| a.get_mut(r)) {
                    *slot = acc;
                }
                let q = requant(acc.max(0), layer.multiplier(r), layer.shift(r));
                if let Some(h) = h_q.get_mut(r) {
                    *h = q.min(255) as u8;
                }
            },
        );
    }

    #[inline(never)]
    fn head_stage(
        &self,
        h_q: &[u8; MAX_HIDDEN],
        out: &mut SparseCode,
        mut acc_out: Option<(&mut [i32; MAX_LATENT], &mut [i32; MAX_LATENT])>,
    ) {
        let (mu, gamma) = (self.blob.mu_head(), self.blob.gamma_head());
        let input = h_q.get(..gamma.cols).unwrap_or(&[]);
        *out = SparseCode {
            latent_dim: self.blob.latent_dim() as u8,
            mu_scale: self.blob.mu_scale(),
            ..SparseCode::EMPTY
        };
        if let Some((m, g)) = acc_out.as_mut() {
            m.fill(0);
            g.fill(0);
        }
        let mut buf = [0u32; HIDDEN_WORDS];
        let mut input = match self.kernel {
            Kernel::Packed => LayerInput::Packed(input, &mut buf),
            kernel @ (Kernel::Portable | Kernel::Avx2) => LayerInput::Bytes(input, kernel),
        };
        let blob = self.blob.as_bytes();
        let latent = gamma.rows.min(MAX_LATENT);
        let mut acc_g = [0i32; MAX_LATENT];
        let spike_head = self.blob.spike_head();
        input.accumulate(blob, gamma, latent, &|_| true, &mut |j, acc| {
            if let Some(slot) = acc_g.get_mut(j) {
                *slot = acc;
            }
        });
        for (j, &acc) in acc_g.iter().enumerate().take(latent) {
            if acc > gamma.threshold(j) {
                out.spike_bits |= 1u64 << j;
                let v_q = requant(acc, gamma.multiplier(j), gamma.shift(j));
                if let Some(g) = out.gamma_q15.get_mut(j) {
                    *g = spike_head.gamma_q15(v_q);
                }
            }
        }
        let spikes = out.spike_bits;
        // The μ dot product only for active dims (sparse saving), for all when traced.
        let traced = acc_out.is_some();
        let mu_row = |j: usize| traced || spikes & (1u64 << j) != 0;
        input.accumulate(blob, mu, latent, &mu_row, &mut |j, acc_mu| {
            if let Some((m, g)) = acc_out.as_mut()
                && let (Some(ms), Some(gs), Some(&a)) = (m.get_mut(j), g.get_mut(j), acc_g.get(j))
            {
                *ms = acc_mu;
                *gs = a;
            }
            if spikes & (1u64 << j) != 0
                && let Some(m) = out.mu_q.get_mut(j)
            {
                *m = requant(acc_mu, mu.multiplier(j), mu.shift(j))
                    .clamp(i16::MIN as i64, i16::MAX as i64) as i16;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requant_rounds_half_up() {
        // m / 2^s = 1/2: 3 → 1.5 → 2, −3 → −1.5 → −1, 1 → 0.5 → 1, −1 → −0.5 → 0.
        assert_eq!(requant(3, 1 << 30, 31), 2);
        assert_eq!(requant(-3, 1 << 30, 31), -1);
        assert_eq!(requant(1, 1 << 30, 31), 1);
        assert_eq!(requant(-1, 1 << 30, 31), 0);
        assert_eq!(requant(i32::MIN, i32::MAX, 62), -1);
        assert_eq!(
            requant(i32::MAX, i32::MAX, 1),
            (i32::MAX as i64 * i32::MAX as i64 + 1) >> 1
        );
    }

    #[test]
    fn exp_table_is_accurate() {
        for d in 0..=(-V_Q16_MIN) {
            let v = -(d as f64) / 65536.0;
            let exact = v.exp() * 32768.0;
            let got = exp_q15(-(d as i64)) as f64;
            assert!(
                (got - exact.min(32767.0)).abs() <= 2.0,
                "d {d}: {got} vs {exact}"
            );
        }
        assert_eq!(exp_q15(5), i16::MAX);
        assert_eq!(exp_q15(i64::MIN), exp_q15(V_Q16_MIN as i64));
        assert!(exp_q15(V_Q16_MIN as i64) >= 16383);
    }

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
        let mut state = 0x1234_5678u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
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
