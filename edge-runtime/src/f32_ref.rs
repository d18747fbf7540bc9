//! The f32 reference encoder (std only): what host-trainer exports from a trained model
//! and what [`crate::quant`] and the ONNX exporter consume.
//!
//! Topology: raw window (channel-major, channels × `window_len`) → model input
//! ([`InputFeatures`]: the samples, or per channel mean + band spectrum; `input_dim`
//! values) → `x01 = clamp((x − offset) · scale, 0, 1)` per scaling block →
//! `h = ReLU(W1 x01 + b1)` →
//! three heads `μ = W_μ h + b_μ`, `log σ² = W_σ h + b_σ`, `v = W_γ h + b_γ`,
//! `log γ = −ReLU(−v) = min(v, 0)`.

use std::fmt;
use std::vec::Vec;

use crate::blob::{MAX_HIDDEN, MAX_INPUT, MAX_LATENT};
use crate::preprocess::{ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN};
use crate::spike::SpikeHead;

/// log γ of pre-activation `v`: `min(v, 0)` (paper) or `log sigmoid(v)`, the latter
/// as `−ln(1 + e^−|v|) + min(v, 0)` so that no exponential overflows.
pub fn log_gamma(head: SpikeHead, v: f32) -> f32 {
    match head {
        SpikeHead::Paper => v.min(0.0),
        SpikeHead::Sigmoid => v.min(0.0) - (-v.abs()).exp().ln_1p(),
    }
}

/// A dense f32 encoder. Weight matrices are row-major `[outputs][inputs]`.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Encoder {
    pub input_dim: usize,
    pub hidden_dim: usize,
    pub latent_dim: usize,
    /// `[hidden_dim][input_dim]`.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    /// `[latent_dim][hidden_dim]`.
    pub w_mu: Vec<f32>,
    pub b_mu: Vec<f32>,
    pub w_logvar: Vec<f32>,
    pub b_logvar: Vec<f32>,
    pub w_gamma: Vec<f32>,
    pub b_gamma: Vec<f32>,
    /// Input channels; the window holds them in `Channel` order.
    pub channels: ChannelSet,
    /// How a window becomes the `input_dim` model inputs.
    pub features: InputFeatures,
    /// How the γ head's output becomes log γ.
    pub spike_head: SpikeHead,
    /// Input normalisation: one entry per window row (waveform) or per model-input
    /// value (spectrum), see [`InputFeatures::scaling_entries`].
    pub scaling: Vec<ChannelScaling>,
}

/// The three head outputs for one window.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Code {
    pub mu: Vec<f32>,
    pub logvar: Vec<f32>,
    pub log_gamma: Vec<f32>,
}

/// What is wrong with an [`F32Encoder`] or its input.
#[derive(Clone, Debug, PartialEq)]
pub enum F32EncoderError {
    /// A dimension is 0 or above the device limit.
    Dim {
        field: &'static str,
        value: usize,
        max: usize,
    },
    /// `input_dim` is not a multiple of the channel count.
    InputDim { input_dim: usize, channels: usize },
    /// A parameter vector has the wrong length.
    Shape {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    /// A parameter is NaN or infinite.
    NonFinite { field: &'static str, index: usize },
    /// A window has the wrong number of values.
    InputLength { expected: usize, got: usize },
}

impl fmt::Display for F32EncoderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            F32EncoderError::Dim { field, value, max } => {
                write!(f, "encoder {field} = {value}, must be in 1..={max}")
            }
            F32EncoderError::InputDim {
                input_dim,
                channels,
            } => write!(
                f,
                "encoder input_dim {input_dim} is not a multiple of its {channels} channels"
            ),
            F32EncoderError::Shape {
                field,
                expected,
                got,
            } => write!(
                f,
                "encoder field {field}: {got} values, expected {expected}"
            ),
            F32EncoderError::NonFinite { field, index } => {
                write!(f, "encoder field {field}[{index}] is NaN or infinite")
            }
            F32EncoderError::InputLength { expected, got } => {
                write!(f, "window has {got} values, the encoder expects {expected}")
            }
        }
    }
}

impl std::error::Error for F32EncoderError {}

fn dense(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks_exact(x.len().max(1))
        .zip(b)
        .map(|(row, &bias)| {
            row.iter()
                .zip(x)
                .fold(bias, |acc, (&wi, &xi)| acc + wi * xi)
        })
        .collect()
}

/// SplitMix64: a tiny seeded generator so the crate needs no `rand`.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [−1, 1).
    fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

impl F32Encoder {
    /// Samples per channel in a window.
    pub fn window_len(&self) -> usize {
        match self.features {
            InputFeatures::Waveform => self.input_dim / self.channels.len().max(1),
            InputFeatures::BandSpectrum => WINDOW_LEN,
        }
    }

    /// Values of a raw window: channels × `window_len`.
    pub fn window_dim(&self) -> usize {
        self.channels.len() * self.window_len()
    }

    /// The model input (physical units, before scaling) of a raw window.
    pub fn model_input(&self, x_raw: &[f32]) -> Result<Vec<f32>, F32EncoderError> {
        if x_raw.len() != self.window_dim() {
            return Err(F32EncoderError::InputLength {
                expected: self.window_dim(),
                got: x_raw.len(),
            });
        }
        let mut out = std::vec![0.0f32; self.input_dim];
        match self.features {
            InputFeatures::Waveform => out.copy_from_slice(x_raw),
            InputFeatures::BandSpectrum => {
                self.features.compute(x_raw, &mut out).map_err(|_| {
                    F32EncoderError::InputLength {
                        expected: self.window_dim(),
                        got: x_raw.len(),
                    }
                })?
            }
        }
        Ok(out)
    }

    /// Checks dimensions against the device limits, vector lengths and finiteness.
    pub fn validate(&self) -> Result<(), F32EncoderError> {
        for (field, value, max) in [
            ("input_dim", self.input_dim, MAX_INPUT),
            ("hidden_dim", self.hidden_dim, MAX_HIDDEN),
            ("latent_dim", self.latent_dim, MAX_LATENT),
        ] {
            if value == 0 || value > max {
                return Err(F32EncoderError::Dim { field, value, max });
            }
        }
        let n_channels = self.channels.len();
        let per_channel = match self.features {
            InputFeatures::Waveform => self.window_len(),
            InputFeatures::BandSpectrum => self.features.values_per_channel(),
        };
        if self.input_dim != n_channels * per_channel
            || self.window_len() > crate::preprocess::WINDOW_LEN
        {
            return Err(F32EncoderError::InputDim {
                input_dim: self.input_dim,
                channels: n_channels,
            });
        }
        let (m, h, j) = (self.input_dim, self.hidden_dim, self.latent_dim);
        let fields: [(&'static str, &[f32], usize); 8] = [
            ("w1", &self.w1, h * m),
            ("b1", &self.b1, h),
            ("w_mu", &self.w_mu, j * h),
            ("b_mu", &self.b_mu, j),
            ("w_logvar", &self.w_logvar, j * h),
            ("b_logvar", &self.b_logvar, j),
            ("w_gamma", &self.w_gamma, j * h),
            ("b_gamma", &self.b_gamma, j),
        ];
        for (field, values, expected) in fields {
            if values.len() != expected {
                return Err(F32EncoderError::Shape {
                    field,
                    expected,
                    got: values.len(),
                });
            }
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(F32EncoderError::NonFinite { field, index });
            }
        }
        let n_scaling = self.features.scaling_entries(self.channels, self.input_dim);
        if self.scaling.len() != n_scaling {
            return Err(F32EncoderError::Shape {
                field: "scaling",
                expected: n_scaling,
                got: self.scaling.len(),
            });
        }
        for (index, s) in self.scaling.iter().enumerate() {
            if !(s.offset.is_finite() && s.scale.is_finite() && s.scale >= 0.0) {
                return Err(F32EncoderError::NonFinite {
                    field: "scaling",
                    index,
                });
            }
        }
        Ok(())
    }

    /// The normalised model input of a raw window.
    pub fn normalise(&self, x_raw: &[f32]) -> Result<Vec<f32>, F32EncoderError> {
        self.normalise_input(&self.model_input(x_raw)?)
    }

    /// Applies the input scaling to a model input (`input_dim` values, physical units).
    pub fn normalise_input(&self, input: &[f32]) -> Result<Vec<f32>, F32EncoderError> {
        if input.len() != self.input_dim {
            return Err(F32EncoderError::InputLength {
                expected: self.input_dim,
                got: input.len(),
            });
        }
        let block = self.features.scaling_block_len(self.window_len()).max(1);
        Ok(input
            .chunks(block)
            .zip(&self.scaling)
            .flat_map(|(row, s)| row.iter().map(move |&x| s.apply(x)))
            .collect())
    }

    /// Hidden activations `ReLU(W1 x01 + b1)` of a normalised window.
    pub fn hidden_x01(&self, x01: &[f32]) -> Result<Vec<f32>, F32EncoderError> {
        if x01.len() != self.input_dim {
            return Err(F32EncoderError::InputLength {
                expected: self.input_dim,
                got: x01.len(),
            });
        }
        Ok(dense(&self.w1, &self.b1, x01)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect())
    }

    /// Head outputs from hidden activations.
    pub fn heads(&self, hidden: &[f32]) -> F32Code {
        F32Code {
            mu: dense(&self.w_mu, &self.b_mu, hidden),
            logvar: dense(&self.w_logvar, &self.b_logvar, hidden),
            log_gamma: dense(&self.w_gamma, &self.b_gamma, hidden)
                .into_iter()
                .map(|v| log_gamma(self.spike_head, v))
                .collect(),
        }
    }

    /// Encodes an already normalised window (values in [0, 1]).
    pub fn try_forward_x01(&self, x01: &[f32]) -> Result<F32Code, F32EncoderError> {
        Ok(self.heads(&self.hidden_x01(x01)?))
    }

    /// Encodes a raw window (applies the normalisation first).
    pub fn try_forward(&self, x_raw: &[f32]) -> Result<F32Code, F32EncoderError> {
        self.try_forward_x01(&self.normalise(x_raw)?)
    }

    /// `(μ, log σ², log γ)` of a raw window.
    ///
    /// # Panics
    /// If `x_raw.len() != input_dim` (a caller bug); use [`F32Encoder::try_forward`] for
    /// untrusted input.
    pub fn forward(&self, x_raw: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        match self.try_forward(x_raw) {
            Ok(code) => (code.mu, code.logvar, code.log_gamma),
            Err(e) => panic!("F32Encoder::forward: {e}"),
        }
    }

    /// A randomly initialised encoder (uniform ±1/√fan_in weights, like a fresh
    /// linear layer) for tests and for trying the pipeline before a model is trained.
    /// Channels map raw values in [−2, 2] onto [0, 1]. The γ-head biases are spread
    /// over [−1.5, 0.5] so that some dimensions are active and some are not.
    pub fn random(
        channels: ChannelSet,
        window_len: usize,
        hidden_dim: usize,
        latent_dim: usize,
        seed: u64,
    ) -> F32Encoder {
        Self::random_dims(
            channels,
            InputFeatures::Waveform,
            channels.len() * window_len,
            hidden_dim,
            latent_dim,
            seed,
        )
    }

    /// The same encoder with another spike nonlinearity.
    pub fn with_spike_head(self, spike_head: SpikeHead) -> F32Encoder {
        F32Encoder { spike_head, ..self }
    }

    /// A randomly initialised encoder for `features` of whole windows.
    pub fn random_with(
        channels: ChannelSet,
        features: InputFeatures,
        hidden_dim: usize,
        latent_dim: usize,
        seed: u64,
    ) -> F32Encoder {
        let input_dim = features.input_dim(channels);
        Self::random_dims(channels, features, input_dim, hidden_dim, latent_dim, seed)
    }

    fn random_dims(
        channels: ChannelSet,
        features: InputFeatures,
        input_dim: usize,
        hidden_dim: usize,
        latent_dim: usize,
        seed: u64,
    ) -> F32Encoder {
        let mut rng = SplitMix(seed);
        let mut uniform = |n: usize, bound: f32| -> Vec<f32> {
            (0..n).map(|_| rng.symmetric() * bound).collect()
        };
        let b_in = 1.0 / (input_dim.max(1) as f32).sqrt();
        let b_h = 1.0 / (hidden_dim.max(1) as f32).sqrt();
        let w1 = uniform(hidden_dim * input_dim, b_in);
        let b1 = uniform(hidden_dim, b_in);
        let w_mu = uniform(latent_dim * hidden_dim, b_h * 3.0);
        let b_mu = uniform(latent_dim, b_h);
        let w_logvar = uniform(latent_dim * hidden_dim, b_h);
        let b_logvar = uniform(latent_dim, b_h);
        let w_gamma = uniform(latent_dim * hidden_dim, b_h * 3.0);
        let b_gamma = uniform(latent_dim, 1.0)
            .into_iter()
            .map(|b| b - 0.5)
            .collect();
        F32Encoder {
            input_dim,
            hidden_dim,
            latent_dim,
            w1,
            b1,
            w_mu,
            b_mu,
            w_logvar,
            b_logvar,
            w_gamma,
            b_gamma,
            channels,
            features,
            spike_head: SpikeHead::Paper,
            scaling: (0..features.scaling_entries(channels, input_dim))
                .map(|_| ChannelScaling::from_min_max(-2.0, 2.0))
                .collect(),
        }
    }
}
