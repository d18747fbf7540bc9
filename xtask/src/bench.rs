//! `cargo xtask bench train`: training throughput of the VSC presets on flex (CPU).

use clap::Args;
use edge_runtime::preprocess::WINDOW_LEN;
use host_trainer::model::TrainConfig;
use host_trainer::train::{bench_train, device_from_name};

/// Options of `cargo xtask bench train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Presets to time, comma-separated.
    #[arg(long, default_value = "edge,paper")]
    pub presets: String,
    /// Timed steps for `edge` (and `tiny`); `paper` uses --paper-steps.
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    #[arg(long, default_value_t = 5)]
    pub paper_steps: u64,
    /// flex, wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

/// Prints samples/s per preset.
pub fn train(args: &BenchTrainArgs) -> anyhow::Result<()> {
    let device = device_from_name(&args.device)?;
    for preset in args.presets.split(',').map(str::trim) {
        // Inputs as `vsc train` uses them: edge = acc-only (6 ch), paper = all 9, tiny = 3.
        let channels = match preset {
            "edge" => 6,
            "tiny" => 3,
            _ => 9,
        };
        let Some(cfg) = TrainConfig::preset(preset, channels * WINDOW_LEN) else {
            anyhow::bail!("unknown preset {preset:?}");
        };
        let steps = if preset == "paper" {
            args.paper_steps
        } else {
            args.steps
        };
        let r = bench_train(&cfg, steps, &device)?;
        let full_s = cfg.total_iters() as f64 / r.steps_per_s;
        println!(
            "bench train {preset:>5} on {}: {:>8.1} samples/s ({:.2} steps/s, batch {}, M {}, H {}, J {}); full preset ({} steps) ≈ {:.1} min",
            args.device,
            r.samples_per_s,
            r.steps_per_s,
            r.batch_size,
            cfg.model.input_dim,
            cfg.model.hidden_dim,
            cfg.model.latent_dim,
            cfg.total_iters(),
            full_s / 60.0
        );
    }
    Ok(())
}
