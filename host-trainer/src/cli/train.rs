//! `vsc train`: train VSC (or a β-VAE/β-TCVAE baseline) on HAR windows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use edge_runtime::preprocess::{ChannelSet, WINDOW_LEN};

use crate::data::scaling::scaled;
use crate::data::{WindowConfig, fit_scaling, load_har_windows, resolve_data_dir};
use crate::model::{Likelihood, ModelKind, TrainConfig};
use crate::train::{InputScaling, TrainData, TrainOptions, TrainedModel, device_from_name, train};

/// Which objective to train.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelChoice {
    Vsc,
    BetaVae,
    BetaTcvae,
}

/// Options of `vsc train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Preset: paper (supplement D.1), edge (microcontroller encoder) or tiny (tests).
    #[arg(long, default_value = "edge")]
    pub preset: String,
    /// A full TrainConfig (TOML or JSON by extension) instead of a preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder holding HAPT_RawData.zip; default: $VSC_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run directory (config.toml, checkpoints/, metrics.csv, model.bpk).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// flex (CPU), wgpu or cuda (GPU ones need the cargo feature of the same name).
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from the latest checkpoint in RUN_DIR.
    #[arg(long)]
    pub resume: bool,
    /// Total optimiser steps; warm-up, ramp and main phase are scaled proportionally.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Input channels (default: acc for edge, all for paper, total_acc for tiny).
    #[arg(long, value_parser = super::parse_channel_set)]
    pub channels: Option<ChannelSet>,
    /// Model: vsc, beta-vae or beta-tcvae (same encoder/decoder widths as the preset).
    #[arg(long, value_enum, default_value = "vsc")]
    pub model: ModelChoice,
    /// β of the baselines.
    #[arg(long, default_value_t = 4.0)]
    pub beta: f32,
    /// Prior spike probability α of VSC's sparsity term (default: the preset's).
    #[arg(long)]
    pub alpha: Option<f32>,
    /// Floor on the decoder log-variance (learned-variance Gaussian); `none` removes it.
    #[arg(long, value_name = "F|none")]
    pub logvar_floor: Option<String>,
    /// Use a Gaussian likelihood with this fixed standard deviation instead.
    #[arg(long, value_name = "STD", conflicts_with = "logvar_floor")]
    pub fixed_std: Option<f32>,
    /// Initial bias of the spike head (negative: start with few active dims).
    #[arg(long, allow_hyphen_values = true)]
    pub spike_bias_init: Option<f32>,
    /// Also train on windows inside postural transitions.
    #[arg(long)]
    pub transitions: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    // Added by helper MATRIX: `--input X.npy|X.csv`, `--labels`, `--csv-header` (cli::matrix).
    #[command(flatten)]
    pub matrix: super::matrix::MatrixTrainArgs,
}

/// Scales the three schedule phases so that they sum to `steps`.
pub fn override_steps(cfg: &mut TrainConfig, steps: u64) {
    let total = cfg.total_iters().max(1);
    let scale = |n: u64| (n as f64 * steps as f64 / total as f64).round() as u64;
    cfg.warmup_iters = scale(cfg.warmup_iters);
    cfg.ramp_iters = scale(cfg.ramp_iters);
    cfg.main_iters = steps.saturating_sub(cfg.warmup_iters + cfg.ramp_iters);
    cfg.checkpoint_every = cfg.checkpoint_every.min(steps.max(1));
}

fn read_config(path: &Path) -> anyhow::Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Runs `vsc train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    // Added by helper MATRIX: any NPY/CSV matrix instead of HAR windows.
    if args.matrix.input.is_some() {
        return super::matrix::train_matrix(args, &args.matrix);
    }
    let channels = args.channels.unwrap_or(match args.preset.as_str() {
        "paper" => ChannelSet::ALL,
        "tiny" => ChannelSet::TOTAL_ACC,
        _ => ChannelSet::ACC_ONLY,
    });
    let input_dim = channels.len() * WINDOW_LEN;
    let mut cfg = match &args.config {
        Some(p) => read_config(p)?,
        None => match TrainConfig::preset(&args.preset, input_dim) {
            Some(c) => c,
            None => bail!(
                "unknown preset {:?}: expected paper, edge or tiny",
                args.preset
            ),
        },
    };
    if cfg.model.input_dim != input_dim {
        bail!(
            "config input_dim {} does not match {} channels × {WINDOW_LEN} = {input_dim}",
            cfg.model.input_dim,
            channels.len()
        );
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(steps) = args.steps {
        override_steps(&mut cfg, steps);
    }
    if let Some(alpha) = args.alpha {
        cfg.model.alpha = alpha;
    }
    if let Some(f) = &args.logvar_floor {
        let logvar_floor = if f == "none" {
            None
        } else {
            Some(
                f.parse::<f32>()
                    .with_context(|| format!("--logvar-floor {f:?}"))?,
            )
        };
        cfg.model.likelihood = Likelihood::GaussianLearned { logvar_floor };
    }
    if let Some(b) = args.spike_bias_init {
        cfg.model.spike_bias_init = Some(b);
    }
    if let Some(std) = args.fixed_std {
        if std.is_nan() || std <= 0.0 {
            bail!("--fixed-std must be positive, got {std}");
        }
        cfg.model.likelihood = Likelihood::GaussianFixed { std };
    }
    match args.model {
        ModelChoice::Vsc => {}
        ModelChoice::BetaVae => cfg.model.kind = ModelKind::BetaVae { beta: args.beta },
        ModelChoice::BetaTcvae => cfg.model.kind = ModelKind::BetaTcVae { beta: args.beta },
    }
    let device = device_from_name(&args.device)?;

    let data_dir = resolve_data_dir(args.data.as_deref())?;
    let wcfg = WindowConfig {
        channels,
        include_transitions: args.transitions,
    };
    eprintln!(
        "loading HAR windows from {} ({channels})",
        data_dir.display()
    );
    let (train_w, test_w) = load_har_windows(&data_dir, &wcfg)?;
    let sc = fit_scaling(&train_w);
    let data = TrainData {
        x01: scaled(&train_w, &sc)?,
        rows: train_w.len(),
        cols: train_w.dim,
    };
    let scaling = InputScaling::HarChannels {
        channel_bits: channels.bits(),
        window_len: WINDOW_LEN,
        scaling: sc.clone(),
    };
    eprintln!(
        "training {:?} (preset {}, hidden {}, J {}) on {} windows × {} for {} steps, batch {}",
        cfg.model.kind,
        cfg.preset,
        cfg.model.hidden_dim,
        cfg.model.latent_dim,
        data.rows,
        data.cols,
        cfg.total_iters(),
        cfg.batch_size
    );
    let t0 = Instant::now();
    let opts = TrainOptions {
        device: device.clone(),
        resume: args.resume,
        progress: !args.quiet,
        ..Default::default()
    };
    let out = train(&cfg, &data, scaling, &args.out, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    let steps_run = out.steps_done - out.resumed_from.unwrap_or(0);
    println!(
        "trained {} steps in {secs:.1} s ({:.1} steps/s, {:.0} samples/s)",
        steps_run,
        steps_run as f64 / secs,
        (steps_run * cfg.batch_size as u64) as f64 / secs
    );

    let model = TrainedModel::open_on(&args.out, device)?;
    let test_x = scaled(&test_w, &sc)?;
    let ev = model.evaluate(&test_x, test_w.len(), cfg.seed ^ 0x7e57)?;
    let train_ev = model.evaluate(&data.x01, data.rows, cfg.seed ^ 0x7e57)?;
    println!(
        "test ELBO {:.2} nats (recon {:.2}, KL {:.2}, sparsity {:.2}, mean γ {:.3}) on {} windows; train ELBO {:.2}",
        ev.elbo, ev.recon_nll, ev.kl, ev.sparsity, ev.mean_gamma, ev.rows, train_ev.elbo
    );
    let summary = serde_json::json!({
        "model": format!("{:?}", cfg.model.kind),
        "likelihood": format!("{:?}", cfg.model.likelihood),
        "steps": out.steps_done,
        "train_seconds": secs,
        "test": { "rows": ev.rows, "elbo": ev.elbo, "recon_nll": ev.recon_nll, "kl": ev.kl,
                  "sparsity": ev.sparsity, "mean_gamma": ev.mean_gamma },
        "train": { "rows": train_ev.rows, "elbo": train_ev.elbo },
    });
    crate::train::checkpoint::write_atomic(
        &args.out.join("eval.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(())
}
