//! Post-training int8 quantisation of an [`F32Encoder`] into a model blob (std only).
//!
//! - Input: fixed scale 1/255 (x01 ∈ [0, 1] → 0..=255, zero point 0).
//! - Weights: per-output-channel symmetric int8, `w_scale[r] = max_c |w[r][c]| / 127`
//!   (1.0 for an all-zero row), `w_q = round(w / w_scale)` in −127..=127.
//! - Biases: int32 in accumulator units, `round(b / (input_scale · w_scale[r]))`,
//!   clamped to ±[`MAX_ABS_BIAS`].
//! - Activation ranges calibrated with the f32 reference on the given raw windows:
//!   `hidden_scale = max ReLU(hidden) / 255`; `mu_scale = 2 · max |μ| / 32767` (2×
//!   headroom for windows outside the calibration set; saturates beyond).
//! - Requantisation pairs `(m, s)` with `m / 2^s ≈ real` and `m` in [2³⁰, 2³¹)
//!   (see [`multiplier_shift`]): hidden `input_scale · w_scale / hidden_scale`, μ head
//!   `hidden_scale · w_scale / mu_scale`, γ head `hidden_scale · w_scale · 2¹⁶` (to Q16).
//! - Spike thresholds: `floor(v½ / (hidden_scale · w_scale_γ[j]))` with `v½` the spike
//!   head's [`SpikeHead::half_point`] (ln ½ for the paper's head, 0 for the sigmoid).
//!
//! - Activity head (optional, [`QuantParams::set_activity_head`]): a linear classifier
//!   on the slab means μ, quantised like a layer whose input step is `mu_scale`; its
//!   requantisation goes to logits in units of [`LOGIT_SCALE`] (see
//!   [`crate::blob::ActivityHead`]).
//!
//! The integer semantics that consume these numbers are in [`crate::encoder`].
//! [`QuantParams`] holds all of them for the ONNX exporter; [`QuantParams::from_blob`]
//! reads them back from a blob.

use std::fmt;
use std::vec::Vec;

use crate::blob::{
    self, BlobError, FORMAT_VERSION, HEADER_LEN, INPUT_SCALE, LOGIT_SCALE, MAGIC, MAX_ABS_BIAS,
    MAX_CLASSES, MAX_SHIFT, ModelBlob, V_SCALE, WeightLayout,
};
use crate::f32_ref::{F32Encoder, F32EncoderError};
use crate::preprocess::{ChannelScaling, ChannelSet, InputFeatures};
use crate::spike::SpikeHead;

/// Headroom of the μ output range over the calibration maximum.
pub const MU_HEADROOM: f64 = 2.0;

/// Errors of the quantiser.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantError {
    /// The f32 encoder itself is malformed.
    Model(F32EncoderError),
    /// No calibration windows were given.
    NoCalibration,
    /// Calibration window `window` is unusable (wrong length or non-finite value).
    CalibrationWindow {
        window: usize,
        source: F32EncoderError,
    },
    /// A requantisation factor cannot be represented as multiplier + shift.
    Multiplier {
        layer: &'static str,
        row: usize,
        real: f64,
    },
    /// The written blob did not parse back (a bug in the writer).
    Blob(BlobError),
    /// An activity head's shapes or class ids are unusable.
    ActivityHead(&'static str),
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::Model(e) => write!(f, "cannot quantise: {e}"),
            QuantError::NoCalibration => write!(f, "cannot quantise: no calibration windows"),
            QuantError::CalibrationWindow { window, source } => {
                write!(f, "calibration window {window}: {source}")
            }
            QuantError::Multiplier { layer, row, real } => write!(
                f,
                "{layer} row {row}: requantisation factor {real:e} is out of the representable range"
            ),
            QuantError::Blob(e) => write!(f, "written blob does not parse: {e}"),
            QuantError::ActivityHead(why) => write!(f, "activity head: {why}"),
        }
    }
}

impl std::error::Error for QuantError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QuantError::Model(e) | QuantError::CalibrationWindow { source: e, .. } => Some(e),
            QuantError::Blob(e) => Some(e),
            _ => None,
        }
    }
}

/// `(m, s)` with `m / 2^s` the closest to `real` (> 0): `m` in [2³⁰, 2³¹) when `s` can
/// stay in 1..=62, else `s` is clamped (tiny factors lose bits, may become `m = 0`).
/// `None` if `real` is not finite and positive or ≥ 2³⁰.
pub fn multiplier_shift(real: f64) -> Option<(i32, u8)> {
    if !(real.is_finite() && real > 0.0 && real < (1u64 << 30) as f64) {
        return None;
    }
    let exponent = real.log2().floor() as i32;
    let mut shift = (30 - exponent).clamp(1, MAX_SHIFT as i32);
    let mut m = (real * 2f64.powi(shift)).round();
    if m >= 2_147_483_648.0 {
        // Rounding reached 2³¹: one bit less.
        shift -= 1;
        m = (real * 2f64.powi(shift)).round();
    }
    if !(shift >= 1 && m < 2_147_483_648.0) {
        return None;
    }
    Some((m as i32, shift as u8))
}

/// One quantised fully connected layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub rows: usize,
    pub cols: usize,
    /// `[rows][cols]` row-major.
    pub weights: Vec<i8>,
    /// Per-output-channel symmetric weight scale.
    pub w_scale: Vec<f32>,
    /// In accumulator units (input scale × `w_scale`).
    pub bias: Vec<i32>,
    pub multiplier: Vec<i32>,
    pub shift: Vec<u8>,
}

impl LayerParams {
    /// Quantises `w` (`[rows][cols]`) and `b` with input scale `input_scale`, and the
    /// requantisation factors `real_factor(w_scale)`.
    fn quantise(
        layer: &'static str,
        w: &[f32],
        b: &[f32],
        cols: usize,
        input_scale: f32,
        real_factor: impl Fn(f64) -> f64,
    ) -> Result<LayerParams, QuantError> {
        let rows = b.len();
        let mut out = LayerParams {
            rows,
            cols,
            weights: Vec::with_capacity(rows * cols),
            w_scale: Vec::with_capacity(rows),
            bias: Vec::with_capacity(rows),
            multiplier: Vec::with_capacity(rows),
            shift: Vec::with_capacity(rows),
        };
        for (row, (w_row, &bias)) in w.chunks_exact(cols).zip(b).enumerate() {
            let max_abs = w_row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max_abs > 0.0 { max_abs / 127.0 } else { 1.0 };
            // Quantise with the f32 scale that is stored, so blob and params agree.
            let s = scale as f64;
            out.weights.extend(
                w_row
                    .iter()
                    .map(|&v| (v as f64 / s).round().clamp(-127.0, 127.0) as i8),
            );
            out.w_scale.push(scale);
            let acc_scale = input_scale as f64 * s;
            out.bias.push(
                (bias as f64 / acc_scale)
                    .round()
                    .clamp(-(MAX_ABS_BIAS as f64), MAX_ABS_BIAS as f64) as i32,
            );
            let real = real_factor(s);
            let (m, sh) =
                multiplier_shift(real).ok_or(QuantError::Multiplier { layer, row, real })?;
            out.multiplier.push(m);
            out.shift.push(sh);
        }
        Ok(out)
    }

    fn from_view(v: &blob::LayerView<'_>) -> LayerParams {
        LayerParams {
            rows: v.rows,
            cols: v.cols,
            weights: (0..v.rows)
                .flat_map(|r| (0..v.cols).map(move |c| v.weight(r, c)))
                .collect(),
            w_scale: (0..v.rows).map(|r| v.w_scale(r)).collect(),
            bias: (0..v.rows).map(|r| v.bias(r)).collect(),
            multiplier: (0..v.rows).map(|r| v.multiplier(r)).collect(),
            shift: (0..v.rows).map(|r| v.shift(r)).collect(),
        }
    }

    /// The layout this layer is written in (format 5): row pairs where every row's
    /// `Σ|w|` is at most [`blob::MAX_ROW_L1`] (the pair kernel's exact range; trained
    /// layers are far inside it) and no weight is −128 (the quantiser writes −127..=127;
    /// a halfword cannot hold every pair with −128), else row-major.
    pub fn layout(&self) -> WeightLayout {
        let fits = self.weights.chunks(self.cols.max(1)).all(|row| {
            row.iter().map(|w| u32::from(w.unsigned_abs())).sum::<u32>() <= blob::MAX_ROW_L1
                && !row.contains(&i8::MIN)
        });
        if fits {
            WeightLayout::RowPairs
        } else {
            WeightLayout::RowMajor
        }
    }

    /// Appends the layer section to `out`, which holds the blob from its first byte (the
    /// row-pair layout aligns its weights to a multiple of 4 from there).
    fn write(&self, out: &mut Vec<u8>, threshold: Option<&[i32]>, layout: WeightLayout) {
        for s in &self.w_scale {
            out.extend_from_slice(&s.to_le_bytes());
        }
        for b in &self.bias {
            out.extend_from_slice(&b.to_le_bytes());
        }
        if let Some(t) = threshold {
            for v in t {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for m in &self.multiplier {
            out.extend_from_slice(&m.to_le_bytes());
        }
        out.extend_from_slice(&self.shift);
        match layout {
            WeightLayout::RowMajor => out.extend(self.weights.iter().map(|&w| w as u8)),
            WeightLayout::RowPairs => {
                out.resize(out.len().next_multiple_of(4), 0);
                let w = |r: usize, c: usize| -> i8 {
                    if c < self.cols {
                        self.weights.get(r * self.cols + c).copied().unwrap_or(0)
                    } else {
                        0
                    }
                };
                let pair_cols = self.cols.next_multiple_of(blob::PAIR_COLS_MULTIPLE);
                for p in 0..self.rows.div_ceil(2) {
                    for c in 0..pair_cols {
                        let second = if 2 * p + 1 < self.rows {
                            w(2 * p + 1, c)
                        } else {
                            0
                        };
                        let h = blob::pair_halfword(w(2 * p, c), second);
                        out.extend_from_slice(&h.to_le_bytes());
                    }
                }
            }
        }
    }
}

/// Every number of a quantised model (the content of a blob, decoded).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    pub channels: ChannelSet,
    /// How a window becomes the model input.
    pub features: InputFeatures,
    pub window_len: usize,
    pub input_dim: usize,
    pub hidden_dim: usize,
    pub latent_dim: usize,
    /// Input scaling, see [`InputFeatures::scaling_entries`].
    pub scaling: Vec<ChannelScaling>,
    /// Real value of one input step (= [`INPUT_SCALE`]).
    pub input_scale: f32,
    /// Real value of one step of the `u8` hidden activation.
    pub hidden_scale: f32,
    /// Real value of one step of the `i16` slab mean.
    pub mu_scale: f32,
    /// Real value of one step of `v_q` (= [`V_SCALE`] = 2⁻¹⁶).
    pub v_scale: f32,
    pub hidden: LayerParams,
    pub mu: LayerParams,
    pub gamma: LayerParams,
    /// How the γ pre-activation becomes γ.
    pub spike_head: SpikeHead,
    /// Spike iff `acc_gamma[j] > gamma_threshold[j]`.
    pub gamma_threshold: Vec<i32>,
    /// The optional activity head on the sparse code.
    pub activity: Option<ActivityParams>,
}

/// A quantised activity head: class id per row and a layer over the `latent_dim` μ.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityParams {
    pub class_ids: Vec<u8>,
    pub layer: LayerParams,
}

impl QuantParams {
    /// Calibrates and quantises `encoder` on raw (unnormalised) calibration windows.
    pub fn calibrate<W: AsRef<[f32]>>(
        encoder: &F32Encoder,
        calibration_windows: &[W],
    ) -> Result<QuantParams, QuantError> {
        encoder.validate().map_err(QuantError::Model)?;
        if calibration_windows.is_empty() {
            return Err(QuantError::NoCalibration);
        }
        let mut max_hidden = 0f32;
        let mut max_abs_mu = 0f32;
        for (window, x) in calibration_windows.iter().enumerate() {
            let x = x.as_ref();
            if let Some(index) = x.iter().position(|v| !v.is_finite()) {
                return Err(QuantError::CalibrationWindow {
                    window,
                    source: F32EncoderError::NonFinite {
                        field: "window",
                        index,
                    },
                });
            }
            let x01 = encoder
                .normalise(x)
                .map_err(|source| QuantError::CalibrationWindow { window, source })?;
            let hidden = encoder
                .hidden_x01(&x01)
                .map_err(|source| QuantError::CalibrationWindow { window, source })?;
            max_hidden = hidden.iter().fold(max_hidden, |m, &v| m.max(v));
            let code = encoder.heads(&hidden);
            max_abs_mu = code.mu.iter().fold(max_abs_mu, |m, v| m.max(v.abs()));
        }
        // Degenerate ranges (all hidden units dead, μ ≡ 0) still need a positive scale.
        let hidden_scale = if max_hidden > 0.0 {
            max_hidden / 255.0
        } else {
            1.0 / 255.0
        };
        let mu_scale = (MU_HEADROOM * max_abs_mu.max(1e-6) as f64 / 32767.0) as f32;
        let (hs, ms) = (hidden_scale as f64, mu_scale as f64);

        let (m, h) = (encoder.input_dim, encoder.hidden_dim);
        let hidden = LayerParams::quantise(
            "hidden layer",
            &encoder.w1,
            &encoder.b1,
            m,
            INPUT_SCALE,
            |ws| INPUT_SCALE as f64 * ws / hs,
        )?;
        let mu = LayerParams::quantise(
            "mu head",
            &encoder.w_mu,
            &encoder.b_mu,
            h,
            hidden_scale,
            |ws| hs * ws / ms,
        )?;
        let gamma = LayerParams::quantise(
            "gamma head",
            &encoder.w_gamma,
            &encoder.b_gamma,
            h,
            hidden_scale,
            |ws| hs * ws / V_SCALE as f64,
        )?;
        let half_point = encoder.spike_head.half_point();
        let gamma_threshold = gamma
            .w_scale
            .iter()
            .map(|&ws| {
                (half_point / (hs * ws as f64))
                    .floor()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect();
        Ok(QuantParams {
            channels: encoder.channels,
            features: encoder.features,
            window_len: encoder.window_len(),
            input_dim: m,
            hidden_dim: h,
            latent_dim: encoder.latent_dim,
            scaling: encoder.scaling.clone(),
            input_scale: INPUT_SCALE,
            hidden_scale,
            mu_scale,
            v_scale: V_SCALE,
            hidden,
            mu,
            gamma,
            spike_head: encoder.spike_head,
            gamma_threshold,
            activity: None,
        })
    }

    /// Adds (or replaces) the activity head: a linear classifier `logit[c] = Σ_j
    /// weights[c][j] · μ_j + bias[c]` on the sparse code's slab means (μ in real units, 0
    /// for inactive dims), one row per class id in `class_ids` (distinct, non-zero,
    /// 2..=[`MAX_CLASSES`] of them).
    pub fn set_activity_head(
        &mut self,
        class_ids: &[u8],
        weights: &[f32],
        bias: &[f32],
    ) -> Result<(), QuantError> {
        let k = class_ids.len();
        if !(2..=MAX_CLASSES).contains(&k) {
            return Err(QuantError::ActivityHead("needs 2 to 16 classes"));
        }
        if bias.len() != k || weights.len() != k * self.latent_dim {
            return Err(QuantError::ActivityHead(
                "weights must be classes × latent_dim and bias one per class",
            ));
        }
        if class_ids
            .iter()
            .enumerate()
            .any(|(i, &c)| c == 0 || class_ids[..i].contains(&c))
        {
            return Err(QuantError::ActivityHead(
                "class ids must be distinct and non-zero",
            ));
        }
        if weights.iter().chain(bias).any(|v| !v.is_finite()) {
            return Err(QuantError::ActivityHead("non-finite weight or bias"));
        }
        let ms = self.mu_scale as f64;
        let layer = LayerParams::quantise(
            "activity head",
            weights,
            bias,
            self.latent_dim,
            self.mu_scale,
            |ws| ms * ws / LOGIT_SCALE as f64,
        )?;
        self.activity = Some(ActivityParams {
            class_ids: class_ids.to_vec(),
            layer,
        });
        Ok(())
    }

    /// Decodes a parsed blob.
    pub fn from_blob(blob: &ModelBlob<'_>) -> QuantParams {
        let g = blob.gamma_head();
        QuantParams {
            channels: blob.channels(),
            features: blob.features(),
            window_len: blob.window_len(),
            input_dim: blob.input_dim(),
            hidden_dim: blob.hidden_dim(),
            latent_dim: blob.latent_dim(),
            scaling: (0..blob.scaling_len()).map(|c| blob.scaling(c)).collect(),
            input_scale: INPUT_SCALE,
            hidden_scale: blob.hidden_scale(),
            mu_scale: blob.mu_scale(),
            v_scale: V_SCALE,
            hidden: LayerParams::from_view(blob.hidden()),
            mu: LayerParams::from_view(blob.mu_head()),
            gamma: LayerParams::from_view(g),
            spike_head: blob.spike_head(),
            gamma_threshold: (0..g.rows).map(|j| g.threshold(j)).collect(),
            activity: blob.activity_head().map(|a| ActivityParams {
                class_ids: (0..a.classes()).map(|r| a.class_id(r)).collect(),
                layer: LayerParams::from_view(&a.layer),
            }),
        }
    }

    /// Serialises into the blob format (see [`crate::blob`]) and checks that the result
    /// parses.
    pub fn to_blob(&self) -> Result<Vec<u8>, QuantError> {
        let bytes = self.to_blob_unchecked();
        ModelBlob::parse(&bytes).map_err(QuantError::Blob)?;
        Ok(bytes)
    }

    /// Serialises without validating (tests use it to build malformed blobs).
    pub fn to_blob_unchecked(&self) -> Vec<u8> {
        self.to_blob_of_version(FORMAT_VERSION)
    }

    /// The layouts of the hidden layer, μ and γ heads in the current format.
    pub fn dense_layouts(&self) -> [WeightLayout; 3] {
        [self.hidden.layout(), self.mu.layout(), self.gamma.layout()]
    }

    /// Serialises in format `version` (4: row-major dense weights, as older builds read
    /// them; 1–3 also need the fields those versions reserved to be 0), without
    /// validating.
    pub fn to_blob_of_version(&self, version: u16) -> Vec<u8> {
        let classes = self.activity.as_ref().map_or(0, |a| a.class_ids.len());
        let dense = if version >= blob::ROW_PAIRS_VERSION {
            self.dense_layouts()
        } else {
            [WeightLayout::RowMajor; 3]
        };
        let total = blob::blob_len_of_layouts(
            dense,
            self.scaling.len(),
            self.input_dim,
            self.hidden_dim,
            self.latent_dim,
            classes,
        );
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&self.channels.bits().to_le_bytes());
        for d in [
            self.window_len,
            self.input_dim,
            self.hidden_dim,
            self.latent_dim,
            usize::from(self.features.code()),
        ] {
            out.extend_from_slice(&(d as u16).to_le_bytes());
        }
        for s in [
            self.input_scale,
            self.hidden_scale,
            self.mu_scale,
            self.v_scale,
        ] {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&self.spike_head.code().to_le_bytes());
        out.extend_from_slice(&(classes as u16).to_le_bytes());
        out.push(blob::layout_bits(dense));
        out.extend_from_slice(&[0u8; 3]);
        debug_assert_eq!(out.len(), HEADER_LEN);
        for s in &self.scaling {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.scale.to_le_bytes());
        }
        self.hidden.write(&mut out, None, dense[0]);
        self.mu.write(&mut out, None, dense[1]);
        self.gamma
            .write(&mut out, Some(&self.gamma_threshold), dense[2]);
        if let Some(a) = &self.activity {
            out.extend_from_slice(&a.class_ids);
            a.layer.write(&mut out, None, WeightLayout::RowMajor);
        }
        let crc = blob::crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Raw window length: channels × `window_len`.
    pub fn window_dim(&self) -> usize {
        self.channels.len() * self.window_len
    }

    /// Consecutive model-input values sharing one scaling entry.
    pub fn scaling_block_len(&self) -> usize {
        self.features.scaling_block_len(self.window_len)
    }

    /// Bytes of int8 weights (the activity head included).
    pub fn weight_bytes(&self) -> usize {
        self.hidden.weights.len()
            + self.mu.weights.len()
            + self.gamma.weights.len()
            + self.activity.as_ref().map_or(0, |a| a.layer.weights.len())
    }
}

/// Calibrates `encoder` on raw calibration windows and returns the blob bytes.
pub fn quantise<W: AsRef<[f32]>>(
    encoder: &F32Encoder,
    calibration_windows: &[W],
) -> Result<Vec<u8>, QuantError> {
    QuantParams::calibrate(encoder, calibration_windows)?.to_blob()
}
