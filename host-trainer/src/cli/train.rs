//! `vsc train`: train VSC (or a β-VAE/β-TCVAE baseline) on HAR windows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use edge_runtime::preprocess::{ChannelSet, InputFeatures};

use crate::api::{self, Model};
use crate::data::{
    WindowConfig, har_training_data, load_har_windows, resolve_data_dir, scaled_inputs,
};
use crate::matrix::{Matrix, MatrixBatches, read_labels, read_matrix_with, write_matrix};
use crate::model::{Likelihood, ModelKind, PriorKind, SparsityTarget, SpikeHead, TrainConfig};
use crate::scaling::MinMaxScaling;
use crate::train::{TrainOptions, TrainedModel, device_from_name, train};

use super::matrix::{LABELS_FILE, MATRIX_INFO_FILE, MatrixTrainArgs};

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
    /// flex (CPU), ndarray (CPU), wgpu or cuda (all but flex need the cargo feature of the same name).
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
    /// Input channels (default: all for edge and paper, total_acc for tiny).
    #[arg(long, value_parser = super::parse_channel_set)]
    pub channels: Option<ChannelSet>,
    /// Model input: `waveform` (the window's samples) or `spectrum` (per channel the mean
    /// and 32 band amplitudes, 0.78 Hz each). Default: the preset's.
    #[arg(long, value_parser = parse_features)]
    pub features: Option<InputFeatures>,
    /// Model: vsc, beta-vae or beta-tcvae (same encoder/decoder widths as the preset).
    #[arg(long, value_enum, default_value = "vsc")]
    pub model: ModelChoice,
    /// β of the baselines.
    #[arg(long, default_value_t = 4.0)]
    pub beta: f32,
    /// Prior spike probability α: the sparsity term's target, or the fixed prior's
    /// (default: the preset's).
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
    /// Spike nonlinearity: `paper` (log γ = −ReLU(−v)) or `sigmoid` (log γ = log sigmoid(v)).
    #[arg(long, value_parser = parse_spike_head)]
    pub spike_head: Option<SpikeHead>,
    /// VSC prior: `pseudo-inputs` (the paper: learned, picked per example by the selector)
    /// or `fixed` (spike-and-slab with N(0, 1) slabs and spike probability α everywhere).
    #[arg(long, value_parser = parse_prior)]
    pub prior: Option<PriorKind>,
    /// Whose spikes the sparsity term charges: `prior` (the paper), `posterior`, `both`,
    /// `posterior-excess`, `posterior-count` or `spike-code-length` (each example pays
    /// ln((1 − α)/α) nats per dim it switches on; see the README's Smiley recipe).
    #[arg(long, value_parser = parse_sparsity)]
    pub sparsity: Option<SparsityTarget>,
    /// The decoder reads each dim's spike next to its value (config `decoder_spikes`).
    #[arg(long)]
    pub decoder_spikes: bool,
    /// Weight of the slab part of the KL term, a β on the slabs only (config
    /// `slab_kl_weight`; 1 is the paper's; needs `--sparsity spike-code-length` or
    /// `--prior fixed`).
    #[arg(long)]
    pub slab_kl_weight: Option<f32>,
    /// Weight of a penalty on the spike head's positive outputs, which keeps "on" spikes
    /// from saturating at γ = 1 (config `spike_logit_l2`; 0 is the paper's).
    #[arg(long)]
    pub spike_logit_l2: Option<f32>,
    /// Share of examples a dim may be on for before it is charged (config
    /// `spike_rate_cap`; needs `--spike-rate-weight`).
    #[arg(long)]
    pub spike_rate_cap: Option<f32>,
    /// Nats per example charged at a batch on-rate 1 above `--spike-rate-cap`, squared
    /// (config `spike_rate_weight`; 0 is the paper's).
    #[arg(long)]
    pub spike_rate_weight: Option<f32>,
    /// Read subnormal floats as zero in the dense layers and Adam while training (config
    /// `flush_subnormals`; every preset sets it, config files without the key train with
    /// IEEE subnormals).
    #[arg(long)]
    pub flush_subnormals: Option<bool>,
    /// Step from which `--sparsity` applies, the paper's term before it (config
    /// `sparsity_from_step`; a step of the run after `--steps`).
    #[arg(long)]
    pub sparsity_from_step: Option<u64>,
    /// Step from which the encoder's hidden layer and slab heads stop training, so a later
    /// sparsity price only chooses which features each example switches on (config
    /// `freeze_features_from_step`; a step of the run after `--steps`).
    #[arg(long)]
    pub freeze_features_from_step: Option<u64>,
    /// Also train on windows inside postural transitions.
    #[arg(long)]
    pub transitions: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    // Added by helper MATRIX: `--input X.npy|X.csv`, `--labels`, `--csv-header` (cli::matrix).
    #[command(flatten)]
    pub matrix: MatrixTrainArgs,
}

/// `--features waveform|spectrum`.
pub fn parse_features(name: &str) -> Result<InputFeatures, String> {
    match name {
        "waveform" => Ok(InputFeatures::Waveform),
        "spectrum" => Ok(InputFeatures::BandSpectrum),
        other => Err(format!(
            "unknown features {other:?}: expected waveform or spectrum"
        )),
    }
}

/// `--spike-head paper|sigmoid`.
pub fn parse_spike_head(name: &str) -> Result<SpikeHead, String> {
    match name {
        "paper" => Ok(SpikeHead::Paper),
        "sigmoid" => Ok(SpikeHead::Sigmoid),
        other => Err(format!(
            "unknown spike head {other:?}: expected paper or sigmoid"
        )),
    }
}

/// `--prior pseudo-inputs|fixed`.
pub fn parse_prior(name: &str) -> Result<PriorKind, String> {
    match name {
        "pseudo-inputs" => Ok(PriorKind::PseudoInputs),
        "fixed" => Ok(PriorKind::Fixed),
        other => Err(format!(
            "unknown prior {other:?}: expected pseudo-inputs or fixed"
        )),
    }
}

/// `--sparsity NAME`: the config's `sparsity` values, with `-` for `_`.
pub fn parse_sparsity(name: &str) -> Result<SparsityTarget, String> {
    let all = [
        ("prior", SparsityTarget::Prior),
        ("posterior", SparsityTarget::Posterior),
        ("both", SparsityTarget::Both),
        ("posterior-excess", SparsityTarget::PosteriorExcess),
        ("posterior-count", SparsityTarget::PosteriorCount),
        ("spike-code-length", SparsityTarget::SpikeCodeLength),
    ];
    let wanted = name.replace('_', "-");
    all.iter()
        .find(|(n, _)| *n == wanted)
        .map(|&(_, t)| t)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown sparsity {name:?}: expected one of {}",
                names.join(", ")
            )
        })
}

/// Scales the three schedule phases so that they sum to `steps`.
pub fn override_steps(cfg: &mut TrainConfig, steps: u64) {
    let total = cfg.total_iters().max(1);
    let scale = |n: u64| (n as f64 * steps as f64 / total as f64).round() as u64;
    cfg.warmup_iters = scale(cfg.warmup_iters);
    cfg.ramp_iters = scale(cfg.ramp_iters);
    cfg.main_iters = steps.saturating_sub(cfg.warmup_iters + cfg.ramp_iters);
    cfg.lr_drop_step = cfg.lr_drop_step.map(scale);
    cfg.sparsity_from_step = cfg.sparsity_from_step.map(scale);
    cfg.freeze_features_from_step = cfg.freeze_features_from_step.map(scale);
    cfg.checkpoint_every = cfg.checkpoint_every.min(steps.max(1));
}

/// Applies the command-line overrides (seed, steps, α, likelihood, spike bias, model kind)
/// to a preset or config file; shared by HAR and matrix training so no flag is ignored.
pub fn apply_overrides(args: &TrainArgs, cfg: &mut TrainConfig) -> anyhow::Result<()> {
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(steps) = args.steps {
        override_steps(cfg, steps);
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
    if let Some(head) = args.spike_head {
        cfg.model.spike_head = head;
    }
    if let Some(prior) = args.prior {
        cfg.model.prior = prior;
    }
    if let Some(sparsity) = args.sparsity {
        cfg.model.sparsity = sparsity;
    }
    if args.decoder_spikes {
        cfg.model.decoder_spikes = true;
    }
    if let Some(w) = args.slab_kl_weight {
        cfg.model.slab_kl_weight = w;
    }
    if let Some(w) = args.spike_logit_l2 {
        cfg.model.spike_logit_l2 = w;
    }
    if let Some(cap) = args.spike_rate_cap {
        cfg.model.spike_rate_cap = cap;
    }
    if let Some(w) = args.spike_rate_weight {
        cfg.model.spike_rate_weight = w;
    }
    if let Some(on) = args.flush_subnormals {
        cfg.flush_subnormals = on;
    }
    if let Some(step) = args.sparsity_from_step {
        cfg.sparsity_from_step = Some(step);
    }
    if let Some(step) = args.freeze_features_from_step {
        cfg.freeze_features_from_step = Some(step);
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
    Ok(())
}

pub fn read_config(path: &Path) -> anyhow::Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The channels and model-input representation a preset trains on by default.
pub fn preset_input(preset: &str) -> (ChannelSet, InputFeatures) {
    match preset {
        "paper" => (ChannelSet::ALL, InputFeatures::Waveform),
        "tiny" => (ChannelSet::TOTAL_ACC, InputFeatures::Waveform),
        // Band spectra of all 9 channels: 94 % linear-probe accuracy on the unencoded
        // input against 57 % for accelerometer waveforms, and a smaller first layer.
        _ => (ChannelSet::ALL, InputFeatures::BandSpectrum),
    }
}

/// Runs `vsc train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    // Added by helper MATRIX: any NPY/CSV matrix instead of HAR windows.
    if args.matrix.input.is_some() {
        return train_matrix(args, &args.matrix);
    }
    let (preset_channels, preset_features) = preset_input(&args.preset);
    let channels = args.channels.unwrap_or(preset_channels);
    let features = args.features.unwrap_or(preset_features);
    let input_dim = features.input_dim(channels);
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
            "config input_dim {} does not match {} channels × {} {} values = {input_dim}",
            cfg.model.input_dim,
            channels.len(),
            features.values_per_channel(),
            features.name()
        );
    }
    apply_overrides(args, &mut cfg)?;
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
    let (data, scaling) = har_training_data(&train_w, features)?;
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
    let out = train(&cfg, &data, scaling.clone(), &args.out, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    let steps_run = out.steps_done - out.resumed_from.unwrap_or(0);
    println!(
        "trained {} steps in {secs:.1} s ({:.1} steps/s, {:.0} samples/s)",
        steps_run,
        steps_run as f64 / secs,
        (steps_run * cfg.batch_size as u64) as f64 / secs
    );

    let model = TrainedModel::open_on(&args.out, device)?;
    let test_x = scaled_inputs(&test_w, &scaling)?;
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

/// `vsc train --input X`: [`run`] with `--input`.
fn train_matrix(args: &TrainArgs, m: &MatrixTrainArgs) -> anyhow::Result<()> {
    let input = m.input.as_deref().context("--input is required")?;
    let read = m.csv_header.read_options();
    let x = read_matrix_with(input, &read)?;
    let names = MatrixBatches::open_with(input, 1, &read)?
        .column_names()
        .map(<[String]>::to_vec);
    let labels = match &m.labels {
        Some(p) => {
            let y = read_labels(p)?;
            if y.len() != x.rows {
                bail!(
                    "{}: {} labels, but {} has {} rows",
                    p.display(),
                    y.len(),
                    input.display(),
                    x.rows
                );
            }
            Some(y)
        }
        None => None,
    };
    let mut cfg = match &args.config {
        Some(p) => read_config(p)?,
        None => match TrainConfig::preset(&args.preset, x.cols) {
            Some(c) => c,
            None => bail!(
                "unknown preset {:?}: expected paper, edge or tiny",
                args.preset
            ),
        },
    };
    if cfg.model.input_dim != x.cols {
        eprintln!(
            "note: config input_dim {} replaced by the input's width {}",
            cfg.model.input_dim, x.cols
        );
        cfg.model.input_dim = x.cols;
    }
    apply_overrides(args, &mut cfg)?;
    let device = device_from_name(&args.device)?;
    let scaling = MinMaxScaling::fit(&x);
    eprintln!(
        "training {:?} (preset {}, hidden {}, J {}) on {} × {} from {} for {} steps, batch {}",
        cfg.model.kind,
        cfg.preset,
        cfg.model.hidden_dim,
        cfg.model.latent_dim,
        x.rows,
        x.cols,
        input.display(),
        cfg.total_iters(),
        cfg.batch_size
    );
    let opts = TrainOptions {
        device: device.clone(),
        resume: args.resume,
        progress: !args.quiet,
        ..Default::default()
    };
    let t0 = Instant::now();
    api::train_scaled(&x.data, x.rows, x.cols, &scaling, &cfg, &args.out, &opts)?;
    let secs = t0.elapsed().as_secs_f64();

    let model = Model::from_trained(TrainedModel::open_on(&args.out, device)?);
    let x01 = model.scale(&x.data, x.rows)?;
    let ev = model.trained().evaluate(&x01, x.rows, cfg.seed ^ 0x7e57)?;
    let codes = model.encode(&x.data, x.rows)?;
    let active_per_row = (0..x.rows)
        .map(|r| codes.active_dims(r).len())
        .sum::<usize>() as f64
        / x.rows as f64;
    println!(
        "trained in {secs:.1} s; train ELBO {:.2} nats (recon {:.2}, KL {:.2}), mean γ {:.3}, \
         {active_per_row:.2} of {} dims active per row",
        ev.elbo, ev.recon_nll, ev.kl, ev.mean_gamma, cfg.model.latent_dim
    );
    if let Some(y) = &labels {
        let col: Vec<f32> = y.iter().map(|v| *v as f32).collect();
        let lm = Matrix::new(col.len(), 1, col)?;
        write_matrix(
            &args.out.join(LABELS_FILE),
            Some(&["label".to_owned()]),
            &lm,
        )?;
    }
    let info = serde_json::json!({
        "input": input.display().to_string(),
        "rows": x.rows,
        "cols": x.cols,
        "column_names": names,
        "labels": m.labels.as_ref().map(|p| p.display().to_string()),
        "train_seconds": secs,
        "train": { "elbo": ev.elbo, "recon_nll": ev.recon_nll, "kl": ev.kl,
                   "sparsity": ev.sparsity, "mean_gamma": ev.mean_gamma,
                   "active_dims_per_row": active_per_row },
    });
    crate::train::checkpoint::write_atomic(
        &args.out.join(MATRIX_INFO_FILE),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[test]
    fn a_new_step_count_scales_every_step_of_the_schedule() {
        let mut cfg = TrainConfig::paper(10);
        (cfg.lr_drop_step, cfg.sparsity_from_step) = (Some(5_000), Some(10_000));
        cfg.freeze_features_from_step = Some(20_000);
        let total = cfg.total_iters();
        override_steps(&mut cfg, total / 10);
        assert_eq!(cfg.total_iters(), total / 10);
        assert_eq!(
            (
                cfg.lr_drop_step,
                cfg.sparsity_from_step,
                cfg.freeze_features_from_step
            ),
            (Some(500), Some(1_000), Some(2_000))
        );
    }

    #[test]
    fn every_override_reaches_the_config_for_windows_and_matrices() {
        for input in [None, Some("x.npy")] {
            let mut argv = vec!["train", "--out", "r", "--seed", "7", "--steps", "100"];
            argv.extend(["--alpha", "0.2", "--fixed-std", "0.05"]);
            argv.extend(["--spike-bias-init", "-2", "--features", "spectrum"]);
            argv.extend(["--spike-head", "paper", "--prior", "fixed"]);
            argv.extend(["--sparsity", "spike-code-length", "--decoder-spikes"]);
            argv.extend(["--slab-kl-weight", "2", "--spike-logit-l2", "0.01"]);
            argv.extend(["--sparsity-from-step", "60"]);
            argv.extend(["--freeze-features-from-step", "70"]);
            if let Some(path) = input {
                argv.extend(["--input", path]);
            }
            let w = Wrapper::try_parse_from(&argv).unwrap();
            assert_eq!(w.args.features, Some(InputFeatures::BandSpectrum));
            let mut cfg = TrainConfig::edge(10);
            apply_overrides(&w.args, &mut cfg).unwrap();
            assert_eq!(cfg.seed, 7);
            assert_eq!(cfg.total_iters(), 100);
            assert_eq!(cfg.model.alpha, 0.2);
            assert_eq!(
                cfg.model.likelihood,
                Likelihood::GaussianFixed { std: 0.05 }
            );
            assert_eq!(cfg.model.spike_bias_init, Some(-2.0));
            assert_eq!(cfg.model.spike_head, SpikeHead::Paper);
            assert_eq!(cfg.model.prior, PriorKind::Fixed);
            assert_eq!(cfg.model.sparsity, SparsityTarget::SpikeCodeLength);
            assert!(cfg.model.decoder_spikes);
            assert_eq!(cfg.model.slab_kl_weight, 2.0);
            assert_eq!(cfg.model.spike_logit_l2, 0.01);
            // Given after --steps 100, so not scaled.
            assert_eq!(cfg.sparsity_from_step, Some(60));
            assert_eq!(cfg.freeze_features_from_step, Some(70));
        }
        let w = Wrapper::try_parse_from(["train", "--out", "r", "--fixed-std", "0"]).unwrap();
        let err = apply_overrides(&w.args, &mut TrainConfig::edge(10)).unwrap_err();
        assert!(err.to_string().contains("--fixed-std"), "{err}");
        assert!(Wrapper::try_parse_from(["train", "--out", "r", "--features", "fft"]).is_err());
        assert!(Wrapper::try_parse_from(["train", "--out", "r", "--prior", "vamp"]).is_err());
        let bad = Wrapper::try_parse_from(["train", "--out", "r", "--sparsity", "mean"]);
        assert!(bad.is_err_and(|e| e.to_string().contains("spike-code-length")));
    }
}
