//! The VSC model (spike-and-slab encoder, pseudo-input prior, selector), its β-VAE/β-TCVAE
//! baselines, configuration presets and the closed-form KL terms. See `shared/docs/VSC.md`.

pub mod baselines;
pub mod config;
pub mod fused;
pub mod kl;
pub mod linear;
pub mod vsc;

pub use config::{
    CSchedule, Likelihood, ModelConfig, ModelKind, PriorKind, SelectorKind, SparsityTarget,
    SpikeHead, TrainConfig, int8_encoder_weight_bytes,
};
pub use vsc::{DecoderOut, Dense, LossParts, Posterior, StepNoise, VscNet};
