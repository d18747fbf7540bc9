//! Training throughput at fixed shapes (`cargo xtask bench train`, issue 15).
//!
//! The four shapes are fixed here rather than taken from presets, so the numbers stay
//! comparable with each other and with the reference measurements while presets change.
//! Every row trains the paper's VSC graph (learned decoder variance, pseudo-input prior with
//! the paper's selector, U = 20) with Adam on uniform random data, through the same
//! [`train`] loop that `vsc train` runs.

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{InputScaling, TrainData, TrainError, TrainOptions, train};
use crate::model::TrainConfig;

/// One fixed benchmark shape: M → H → J at batch B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    /// What the shape stands for.
    pub name: &'static str,
    pub input_dim: usize,
    pub hidden_dim: usize,
    pub latent_dim: usize,
    pub batch_size: usize,
}

/// Pseudo-inputs U of every benchmark shape.
pub const BENCH_PSEUDO_INPUTS: usize = 20;

/// The issue's four rows.
pub const BENCH_SHAPES: [BenchShape; 4] = [
    BenchShape {
        name: "edge, band spectra",
        input_dim: 297,
        hidden_dim: 128,
        latent_dim: 64,
        batch_size: 128,
    },
    BenchShape {
        name: "edge, acc waveforms",
        input_dim: 768,
        hidden_dim: 128,
        latent_dim: 64,
        batch_size: 128,
    },
    BenchShape {
        name: "smiley",
        input_dim: 1024,
        hidden_dim: 256,
        latent_dim: 60,
        batch_size: 128,
    },
    BenchShape {
        name: "paper",
        input_dim: 1152,
        hidden_dim: 3000,
        latent_dim: 60,
        batch_size: 500,
    },
];

impl BenchShape {
    /// The `paper` preset's model and schedule with this shape.
    pub fn config(&self) -> TrainConfig {
        let mut cfg = TrainConfig::paper(self.input_dim);
        cfg.preset = format!(
            "bench-{}x{}x{}",
            self.input_dim, self.hidden_dim, self.latent_dim
        );
        cfg.model.hidden_dim = self.hidden_dim;
        cfg.model.latent_dim = self.latent_dim;
        cfg.model.pseudo_inputs = BENCH_PSEUDO_INPUTS;
        cfg.batch_size = self.batch_size;
        cfg
    }

    /// Floating-point operations of one training step, by the formula the reference
    /// comparison uses: a sample's forward pass is 3·M·H + 4·H·J multiply-adds (encoder
    /// M→H, three H→J heads, decoder J→H, two H→M heads), a multiply-add is 2 FLOP, and
    /// backward costs twice the forward, so a step is 6·B·(3·M·H + 4·H·J) FLOP. It leaves
    /// out the pseudo-inputs' encoder pass (U rows), the selector (M·U per sample), the
    /// input gradient the first layer does not need, and all element-wise work.
    pub fn step_flops(&self) -> f64 {
        let (m, h, j) = (self.input_dim, self.hidden_dim, self.latent_dim);
        6.0 * self.batch_size as f64 * (3 * m * h + 4 * h * j) as f64
    }
}

/// Throughput of the training loop.
#[derive(Clone, Copy, Debug)]
pub struct BenchResult {
    pub steps: u64,
    pub batch_size: usize,
    pub seconds: f64,
    pub steps_per_s: f64,
    pub samples_per_s: f64,
}

impl BenchResult {
    pub fn ms_per_step(&self) -> f64 {
        1e3 * self.seconds / self.steps as f64
    }
}

/// Times `steps` optimiser steps of `cfg` on `device` on uniform random data: a run of
/// `steps + 1` steps through [`train`], timed from the end of its first step (which also
/// pays for first-use allocations) to the end of its last.
pub fn bench_train(
    cfg: &TrainConfig,
    steps: u64,
    device: &Device,
) -> Result<BenchResult, TrainError> {
    let rows = (cfg.batch_size * 4).max(64);
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let data = TrainData {
        x01: (0..rows * cfg.model.input_dim)
            .map(|_| rng.random())
            .collect(),
        rows,
        cols: cfg.model.input_dim,
    };
    let mut cfg = cfg.clone();
    cfg.checkpoint_every = 0;
    cfg.log_every = 0;
    // Half warm-up, half main phase: both slab paths (λ = 0 and λ = 1) are timed.
    let n = steps + 1;
    cfg.warmup_iters = n / 2;
    cfg.ramp_iters = 0;
    cfg.main_iters = n - n / 2;
    let dir = std::env::temp_dir().join(format!("vsc-bench-{}-{}", cfg.preset, std::process::id()));
    let out = train(
        &cfg,
        &data,
        InputScaling::Identity,
        &dir,
        &TrainOptions {
            device: device.clone(),
            ..Default::default()
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    let seconds = out?.seconds_after_first_step.max(1e-9);
    Ok(BenchResult {
        steps,
        batch_size: cfg.batch_size,
        seconds,
        steps_per_s: steps as f64 / seconds,
        samples_per_s: (steps * cfg.batch_size as u64) as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_row_is_the_issues_33_gflop_step() {
        let paper = BENCH_SHAPES[3];
        // 6 · 500 · (3·1152·3000 + 4·3000·60) = 33.264e9
        assert_eq!(paper.step_flops(), 33.264e9);
        let cfg = paper.config();
        assert_eq!(
            (
                cfg.model.input_dim,
                cfg.model.hidden_dim,
                cfg.model.latent_dim,
                cfg.batch_size
            ),
            (1152, 3000, 60, 500)
        );
        assert_eq!(cfg.model.pseudo_inputs, 20);
    }
}
