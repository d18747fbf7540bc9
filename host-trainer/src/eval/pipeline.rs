//! `vsc eval RUN_DIR`: evaluates a trained run on its test split and writes
//! `metrics.json` and PNG figures into the run directory (or `--out`).
//!
//! HAR runs (inputs are windows, `InputScaling::HarChannels`): test ELBO, active dims,
//! E3 per-activity spike heatmap, linear probes (γ, sparse code, raw normalised windows,
//! and a β-VAE run's means when given), E4/E5 generation grids.
//! Smiley runs (1024 inputs, `--smiley DIR` written by `vsc data smiley`): test ELBO,
//! active dims, E2 |corr| matrix and top1−top2 gap, image grids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edge_runtime::preprocess::{BAND_WIDTH_HZ, ChannelSet, InputFeatures, SAMPLE_RATE_HZ};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::controlled::{
    Sensitivity, rank_by_change, toggle_pairs, traversal_codes, traversal_pairs,
};
use super::metrics::{
    ActiveDims, ElboTerms, SPIKE_ON_THRESHOLD, abs_correlation, active_dims, group_latent_order,
    mean_gamma_per_class, sparse_code, spike_contrast, top_gap,
};
use super::probe::{ProbeConfig, ProbeError, ProbeResult, run_probe};
use crate::data::{
    ACTIVITY_NAMES, DataError, WindowConfig, load_har_windows, resolve_data_dir, scaled_inputs,
};
use crate::matrix::{MatrixError, read_matrix};
use crate::model::{ModelConfig, ModelKind, PriorKind};
use crate::plot::{self, Heatmap, PlotError, SignalPanel, Trace, XAxis};
use crate::smiley::{
    FEATURES, N_SOURCES, SMILEY_PIXELS, SMILEY_SIDE_PX, SmileyGroup, present_values,
};
use crate::train::{InputScaling, TrainError, TrainedModel};

/// Errors of the evaluation pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("linear probe on {features}: {source}")]
    Probe {
        features: String,
        source: ProbeError,
    },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
}

/// Options of an evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// HAR data folder (else `$VSC_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    /// Folder written by `vsc data smiley` (needed for Smiley runs).
    pub smiley_dir: Option<PathBuf>,
    /// A β-VAE (or other baseline) run on the same data whose means are probed too.
    pub baseline: Option<PathBuf>,
    /// Where metrics.json and figures go (default: the run directory).
    pub out_dir: Option<PathBuf>,
    /// Seed of the ELBO's posterior samples and of the generation draws.
    pub seed: u64,
    pub probe: ProbeConfig,
    /// Evaluate at most this many test rows (Smiley: the test set is 20,000 images).
    pub max_test_rows: Option<usize>,
    /// Skip figures (tests, sweeps).
    pub figures: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            data_dir: None,
            smiley_dir: None,
            baseline: None,
            out_dir: None,
            seed: 0,
            probe: ProbeConfig::default(),
            max_test_rows: None,
            figures: true,
        }
    }
}

/// E2 results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disentanglement {
    pub source_names: Vec<String>,
    /// |corr| sources × latents (latents in model order).
    pub abs_corr: Vec<Vec<f64>>,
    /// Mean over sources of (largest − second-largest |corr|).
    pub top_gap: f64,
    /// The same gap between magnitudes, |corr(|S ⊙ V|, |latent|)|, as the authors'
    /// Smiley notebook computes its matrix (absent in older metrics.json).
    #[serde(default)]
    pub top_gap_magnitudes: Option<f64>,
    /// VSC only: P(on | group drawn) − P(on | not drawn) per latent (model order) and
    /// group (in [`SmileyGroup::ALL`] order); see [`spike_contrast`].
    #[serde(default)]
    pub spike_group_contrast: Option<Vec<Vec<f64>>>,
    /// Column order used in the figure (latents grouped by their best source).
    pub latent_order: Vec<usize>,
    /// What was correlated: "sparse code μ⊙1[γ>0.5]" (VSC) or "μ" (Gaussian baselines).
    pub latents: String,
}

/// E5: which dims were traversed and toggled, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlledGeneration {
    /// Test rows: the edited example and the one whose active dims are toggled in.
    pub examples: [usize; 2],
    pub traversed_dim: Option<usize>,
    /// (dim, L2 change of the decoded output between the dim at −2 and +2 about its
    /// value), the candidates ranked, largest first.
    pub traversal_changes: Vec<(usize, f64)>,
    pub toggled_dim: Option<usize>,
    /// (dim, L2 change of the decoded output when the dim is switched), largest first.
    pub toggle_changes: Vec<(usize, f64)>,
}

/// Everything `vsc eval` writes to metrics.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub run_dir: String,
    /// "vsc", "vsc(prior=fixed)", "beta_vae(β=…)", "beta_tcvae(β=…)".
    pub model: String,
    /// Likelihood of the decoder (VSC.md §8: say which one each run used).
    pub likelihood: String,
    pub latent_dim: usize,
    pub train_steps: u64,
    /// "har" or "smiley".
    pub data: String,
    pub n_train: usize,
    pub n_test: usize,
    pub test_elbo: ElboTerms,
    pub active: ActiveDims,
    pub probes: Vec<ProbeResult>,
    pub class_names: Vec<String>,
    /// E3: mean γ per (latent dim, class) on the test set.
    pub per_class_gamma: Option<Vec<Vec<f64>>>,
    pub disentanglement: Option<Disentanglement>,
    /// E5: the examples and the dims picked by the decoder's sensitivity.
    #[serde(default)]
    pub controlled: Option<ControlledGeneration>,
    /// Figure file → caption (read by `vsc report`).
    pub figures: BTreeMap<String, String>,
}

fn model_name(cfg: &ModelConfig) -> String {
    match cfg.kind {
        ModelKind::Vsc if cfg.prior == PriorKind::Fixed => "vsc(prior=fixed)".into(),
        ModelKind::Vsc => "vsc".into(),
        ModelKind::BetaVae { beta } => format!("beta_vae(beta={beta})"),
        ModelKind::BetaTcVae { beta } => format!("beta_tcvae(beta={beta})"),
    }
}

#[allow(clippy::too_many_arguments)]
fn probe(
    features: &str,
    train_x: &[f32],
    train_y: &[usize],
    test_x: &[f32],
    test_y: &[usize],
    dim: usize,
    n_classes: usize,
    cfg: &ProbeConfig,
) -> Result<ProbeResult, EvalError> {
    run_probe(
        features, train_x, train_y, test_x, test_y, dim, n_classes, cfg,
    )
    .map_err(|source| EvalError::Probe {
        features: features.into(),
        source,
    })
}

/// Evaluate `run_dir`; writes metrics.json (+ figures) and returns the metrics.
pub fn evaluate_run(run_dir: &Path, opts: &EvalOptions) -> Result<EvalMetrics, EvalError> {
    let model = TrainedModel::open(run_dir)?;
    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| run_dir.to_path_buf());
    std::fs::create_dir_all(&out_dir).map_err(|source| EvalError::Io {
        path: out_dir.clone(),
        source,
    })?;
    let metrics = match model.scaling().clone() {
        InputScaling::HarChannels { channel_bits, .. } => {
            let channels = ChannelSet::from_bits(channel_bits).ok_or_else(|| {
                EvalError::Input(format!(
                    "{}: bad channel_bits {channel_bits}",
                    run_dir.display()
                ))
            })?;
            evaluate_har(&model, run_dir, &out_dir, channels, opts)?
        }
        _ if model.model_config().input_dim == SMILEY_PIXELS => {
            let dir = opts.smiley_dir.as_deref().ok_or_else(|| {
                EvalError::Input(format!(
                    "{} has 1024 inputs and no HAR scaling: pass --smiley DIR (from `vsc data smiley`)",
                    run_dir.display()
                ))
            })?;
            evaluate_smiley(&model, run_dir, &out_dir, dir, opts)?
        }
        _ => {
            return Err(EvalError::Input(format!(
                "{}: neither a HAR run nor a Smiley run (input_dim {}); nothing to evaluate against",
                run_dir.display(),
                model.model_config().input_dim
            )));
        }
    };
    let path = out_dir.join("metrics.json");
    let text =
        serde_json::to_string_pretty(&metrics).map_err(|e| EvalError::Input(e.to_string()))?;
    crate::fsio::write_atomic(&path, text.as_bytes())
        .map_err(|source| EvalError::Io { path, source })?;
    Ok(metrics)
}

fn base_metrics(model: &TrainedModel, run_dir: &Path, data: &str) -> EvalMetrics {
    let cfg = model.model_config();
    EvalMetrics {
        run_dir: run_dir.display().to_string(),
        model: model_name(cfg),
        likelihood: format!("{:?}", cfg.likelihood),
        latent_dim: cfg.latent_dim,
        train_steps: model.config().total_iters(),
        data: data.into(),
        n_train: 0,
        n_test: 0,
        test_elbo: ElboTerms::default(),
        active: active_dims(&[], cfg.latent_dim.max(1)),
        probes: Vec::new(),
        class_names: Vec::new(),
        per_class_gamma: None,
        disentanglement: None,
        controlled: None,
        figures: BTreeMap::new(),
    }
}

fn elbo(model: &TrainedModel, x01: &[f32], rows: usize, seed: u64) -> Result<ElboTerms, EvalError> {
    let e = model.evaluate(x01, rows, seed)?;
    Ok(ElboTerms::new(e.recon_nll, e.kl, e.sparsity, e.rows))
}

fn gamma_bars(out_dir: &Path, m: &mut EvalMetrics) -> Result<(), EvalError> {
    let name = "active_dims.png";
    plot::bar_chart(
        &out_dir.join(name),
        &format!(
            "mean γ per latent dim (test): {} with mean γ > {}, {} on for ≥ {} % of examples",
            m.active.n_active,
            m.active.mean_gamma_threshold,
            m.active.n_used,
            m.active.min_on_fraction * 100.0
        ),
        "latent dim",
        "mean γ",
        &m.active.mean_gamma,
        Some(m.active.mean_gamma_threshold),
    )?;
    m.figures.insert(
        name.into(),
        "Active dimensions: mean spike probability per latent dimension".into(),
    );
    Ok(())
}

fn evaluate_har(
    model: &TrainedModel,
    run_dir: &Path,
    out_dir: &Path,
    channels: ChannelSet,
    opts: &EvalOptions,
) -> Result<EvalMetrics, EvalError> {
    let data_dir = resolve_data_dir(opts.data_dir.as_deref())?;
    let (train, mut test) = load_har_windows(
        &data_dir,
        &WindowConfig {
            channels,
            include_transitions: false,
        },
    )?;
    if let Some(max) = opts.max_test_rows {
        let keep = max.min(test.labels.len());
        test.x.truncate(keep * test.dim);
        test.labels.truncate(keep);
    }
    let features = model.scaling().har_features().unwrap_or_default();
    let dim = features.input_dim(channels);
    let (n_train, n_test) = (train.labels.len(), test.labels.len());
    let train01 = scaled_inputs(&train, model.scaling())?;
    let test01 = scaled_inputs(&test, model.scaling())?;
    let mut m = base_metrics(model, run_dir, "har");
    m.n_train = n_train;
    m.n_test = n_test;
    m.test_elbo = elbo(model, &test01, n_test, opts.seed)?;
    let ctrain = model.encode(&train01, n_train)?;
    let ctest = model.encode(&test01, n_test)?;
    let j = ctest.latent_dim;
    m.active = active_dims(&ctest.gamma, j);

    let n_classes = usize::from(
        train
            .labels
            .iter()
            .chain(&test.labels)
            .copied()
            .max()
            .unwrap_or(1),
    );
    m.class_names = ACTIVITY_NAMES
        .iter()
        .take(n_classes)
        .map(|s| s.to_string())
        .collect();
    let ytr: Vec<usize> = train.labels.iter().map(|&l| usize::from(l) - 1).collect();
    let yte: Vec<usize> = test.labels.iter().map(|&l| usize::from(l) - 1).collect();
    let per_class = mean_gamma_per_class(&ctest.gamma, j, &yte, n_classes);

    let is_vsc = matches!(model.model_config().kind, ModelKind::Vsc);
    if is_vsc {
        m.probes.push(probe(
            "gamma",
            &ctrain.gamma,
            &ytr,
            &ctest.gamma,
            &yte,
            j,
            n_classes,
            &opts.probe,
        )?);
        m.probes.push(probe(
            "sparse_code",
            &sparse_code(&ctrain.mu, &ctrain.gamma),
            &ytr,
            &sparse_code(&ctest.mu, &ctest.gamma),
            &yte,
            j,
            n_classes,
            &opts.probe,
        )?);
    } else {
        m.probes.push(probe(
            "mu",
            &ctrain.mu,
            &ytr,
            &ctest.mu,
            &yte,
            j,
            n_classes,
            &opts.probe,
        )?);
    }
    let raw_name = raw_probe_name(features);
    m.probes.push(probe(
        raw_name,
        &train01,
        &ytr,
        &test01,
        &yte,
        dim,
        n_classes,
        &opts.probe,
    )?);
    if let Some(b) = &opts.baseline {
        let base = TrainedModel::open(b)?;
        let (btr, bte) = (
            base.encode(&train01, n_train)?,
            base.encode(&test01, n_test)?,
        );
        let name = format!("baseline_mu ({})", model_name(base.model_config()));
        m.probes.push(probe(
            &name,
            &btr.mu,
            &ytr,
            &bte.mu,
            &yte,
            btr.latent_dim,
            n_classes,
            &opts.probe,
        )?);
    }

    if opts.figures {
        gamma_bars(out_dir, &mut m)?;
        let dims: Vec<String> = (0..j).map(|d| format!("z{d}")).collect();
        plot::heatmap(
            &out_dir.join("e3_gamma_per_class.png"),
            &Heatmap {
                title: "E3: mean spike probability γ per activity (test subjects)",
                values: &per_class,
                row_labels: &dims,
                col_labels: &m.class_names,
                row_axis: "latent dim",
                col_axis: "activity",
                vmin: 0.0,
                vmax: 1.0,
                annotate_decimals: None,
            },
        )?;
        m.figures.insert(
            "e3_gamma_per_class.png".into(),
            "E3: average spike probability per activity".into(),
        );
        for p in &m.probes {
            let file = format!("probe_{}.png", p.features.split(' ').next().unwrap_or("x"));
            plot::confusion_matrix(
                &out_dir.join(&file),
                &format!(
                    "probe on {}: test accuracy {:.1} %",
                    p.features,
                    100.0 * p.test.accuracy
                ),
                &p.test.confusion,
                &m.class_names,
            )?;
            m.figures.insert(
                file,
                format!(
                    "Linear probe confusion matrix ({}), rows = true activity",
                    p.features
                ),
            );
        }
        let input = InputLayout { channels, features };
        generation_figures(
            model, out_dir, &test, &test01, &ctest, &input, opts.seed, &mut m,
        )?;
    }
    m.per_class_gamma = Some(per_class);
    Ok(m)
}

/// Name of the probe on the unencoded, scaled model inputs in `metrics.json`.
pub fn raw_probe_name(features: InputFeatures) -> &'static str {
    match features {
        InputFeatures::Waveform => "raw_window_01",
        InputFeatures::BandSpectrum => "raw_spectrum_01",
    }
}

/// What one model-input row of a HAR model holds.
struct InputLayout {
    channels: ChannelSet,
    features: InputFeatures,
}

/// E4 (conditional generation) and E5 (controlled generation) as acc x/y/z signal grids.
#[allow(clippy::too_many_arguments)]
fn generation_figures(
    model: &TrainedModel,
    out_dir: &Path,
    test: &crate::data::HarWindows,
    test01: &[f32],
    codes: &crate::train::Codes,
    input: &InputLayout,
    seed: u64,
    m: &mut EvalMetrics,
) -> Result<(), EvalError> {
    let per_channel = input.features.values_per_channel();
    let (dim, j) = (per_channel * input.channels.len(), codes.latent_dim);
    assert_eq!(test01.len(), dim * test.len());
    // Waveforms: the samples; spectra: the band amplitudes (the channel mean is left out).
    let (skip, x_axis, y_label) = match input.features {
        InputFeatures::Waveform => (0, XAxis::time(SAMPLE_RATE_HZ), "raw units"),
        InputFeatures::BandSpectrum => (
            1,
            XAxis {
                start: f64::from(BAND_WIDTH_HZ) / 2.0,
                step: f64::from(BAND_WIDTH_HZ),
                label: "band centre (Hz)",
            },
            "band amplitude (raw units)",
        ),
    };
    let names: Vec<String> = input.channels.iter().map(|c| c.to_string()).collect();
    // The first three channels: total acc x/y/z, or body acc x/y/z when the spectrum's
    // total-acc bands mostly repeat them.
    let first = if input.features == InputFeatures::BandSpectrum && names.len() >= 6 {
        3
    } else {
        0
    };
    let shown = (names.len() - first).min(3);
    let names = &names[first..first + shown];
    let panel = |title: String, x01: &[f32]| -> (String, Vec<Vec<f32>>) {
        let raw = model.scaling().invert(x01, dim);
        (
            title,
            (first..first + shown)
                .map(|c| raw[c * per_channel + skip..(c + 1) * per_channel].to_vec())
                .collect(),
        )
    };
    let draw =
        |file: &str, title: &str, panels: &[(String, Vec<Vec<f32>>)]| -> Result<(), EvalError> {
            let sp: Vec<SignalPanel> = panels
                .iter()
                .map(|(t, traces)| SignalPanel {
                    title: t.clone(),
                    traces: traces
                        .iter()
                        .zip(names)
                        .map(|(v, n)| Trace { name: n, values: v })
                        .collect(),
                })
                .collect();
            plot::signal_grid(&out_dir.join(file), title, &sp, 3, x_axis, y_label)?;
            Ok(())
        };
    let row = |i: usize| &test01[i * dim..(i + 1) * dim];
    let active = |i: usize| -> Vec<usize> {
        (0..j)
            .filter(|&d| codes.gamma[i * j + d] > SPIKE_ON_THRESHOLD)
            .collect()
    };
    let code = |i: usize| {
        sparse_code(
            &codes.mu[i * j..(i + 1) * j],
            &codes.gamma[i * j..(i + 1) * j],
        )
    };
    // E4: first test window of class 1 (walking); sample its active dims from its prior slab.
    let Some(i0) = test
        .labels
        .iter()
        .position(|&l| l == 1)
        .or(if test.labels.is_empty() {
            None
        } else {
            Some(0)
        })
    else {
        return Ok(());
    };
    let a0 = active(i0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xE4);
    let prior = model.prior_for(row(i0), 1)?;
    let n_samples = 5;
    let mut z = vec![0.0f32; n_samples * j];
    for s in 0..n_samples {
        for &d in &a0 {
            let (mu, lv) = match &prior {
                Some(p) => (p.mu[d], p.logvar[d]),
                None => (0.0, 0.0),
            };
            let e: f32 = StandardNormal.sample(&mut rng);
            z[s * j + d] = mu + (0.5 * lv).exp() * e;
        }
    }
    let (gen_mean, _) = model.decode(&z, n_samples)?;
    let (recon, _) = model.decode(&code(i0), 1)?;
    let mut panels = vec![
        panel(
            format!(
                "test window {i0} ({})",
                ACTIVITY_NAMES[usize::from(test.labels[i0]) - 1]
            ),
            row(i0),
        ),
        panel(format!("reconstruction ({} active dims)", a0.len()), &recon),
    ];
    for s in 0..n_samples {
        panels.push(panel(
            format!("sample {}", s + 1),
            &gen_mean[s * dim..(s + 1) * dim],
        ));
    }
    draw(
        "e4_conditional_generation.png",
        "E4: conditional generation (active dims sampled from the selected prior)",
        &panels,
    )?;
    m.figures.insert(
        "e4_conditional_generation.png".into(),
        "E4: one test window, its reconstruction and decoded samples sharing its active dims"
            .into(),
    );

    // E5: a second window of another class (laying = 6 if present).
    let i1 = test
        .labels
        .iter()
        .position(|&l| l == 6)
        .or(test.labels.iter().position(|&l| l != test.labels[i0]));
    let Some(i1) = i1 else { return Ok(()) };
    let (z0, z1) = (code(i0), code(i1));
    let picked = pick_controlled(model, [i0, i1], [&z0, &z1], codes, dim)?;
    let name = |i: usize| ACTIVITY_NAMES[usize::from(test.labels[i]) - 1];
    // Per channel: the band amplitudes (or samples) in raw units of one decoded row.
    let channel_values = |x01: &[f32]| -> Vec<Vec<f32>> { panel(String::new(), x01).1 };
    let diff = |a: &[Vec<f32>], b: &[Vec<f32>]| -> Vec<Vec<f32>> {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| q - p).collect())
            .collect()
    };
    let mut rows_data: Vec<E5Row> = Vec::new();
    let mut deltas: Vec<NamedChannels> = Vec::new();
    if let Some(d) = picked.traversed_dim {
        let offsets = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
        let (dec, _) = model.decode(&traversal_codes(&z0, d, &offsets), offsets.len())?;
        let traces: Vec<NamedChannels> = offsets
            .iter()
            .enumerate()
            .map(|(r, k)| {
                (
                    format!("z{d} = {:.2}", z0[d] + k),
                    channel_values(&dec[r * dim..(r + 1) * dim]),
                )
            })
            .collect();
        deltas.push((
            format!("traversal: (z{d} +2) − (z{d} −2)"),
            diff(&traces[0].1, &traces[offsets.len() - 1].1),
        ));
        rows_data.push((
            format!(
                "traverse z{d} (‖Δ‖ {:.2}, top of {})",
                picked.traversal_changes[0].1,
                picked.traversal_changes.len()
            ),
            true,
            y_label.to_string(),
            traces,
        ));
    }
    if let Some(t) = picked.toggled_dim {
        let mut after = z0.clone();
        let switched_on = z0[t] == 0.0;
        after[t] = if switched_on { z1[t] } else { 0.0 };
        let mut both = z0.clone();
        both.extend(&after);
        both.extend(&z1);
        let (dec, _) = model.decode(&both, 3)?;
        let before = channel_values(&dec[..dim]);
        let after_v = channel_values(&dec[dim..2 * dim]);
        let what = if switched_on {
            format!("z{t} on = {:.2} (window {i1}'s value)", z1[t])
        } else {
            format!("z{t} off")
        };
        deltas.push((
            format!("toggle: after − before ({what})"),
            diff(&before, &after_v),
        ));
        rows_data.push((
            format!(
                "toggle z{t} {} (‖Δ‖ {:.2}, top of {})",
                if switched_on { "on" } else { "off" },
                picked.toggle_changes[0].1,
                picked.toggle_changes.len()
            ),
            false,
            y_label.to_string(),
            vec![
                (format!("before: window {i0} ({})", name(i0)), before),
                (format!("after: {what}"), after_v),
                (
                    format!("window {i1} ({}) reconstruction", name(i1)),
                    channel_values(&dec[2 * dim..3 * dim]),
                ),
            ],
        ));
    }
    if !deltas.is_empty() {
        rows_data.push(("difference".into(), false, format!("Δ {y_label}"), deltas));
    }
    if !rows_data.is_empty() {
        let rows: Vec<plot::SignalRow> = rows_data
            .iter()
            .map(|(title, gradient, y, traces)| plot::SignalRow {
                panels: names
                    .iter()
                    .enumerate()
                    .map(|(c, ch)| SignalPanel {
                        title: format!("{title}: {ch}"),
                        traces: traces
                            .iter()
                            .map(|(n, per_channel)| Trace {
                                name: n,
                                values: &per_channel[c],
                            })
                            .collect(),
                    })
                    .collect(),
                y_label: y,
                gradient: *gradient,
            })
            .collect();
        plot::signal_rows(
            &out_dir.join("e5_controlled_generation.png"),
            &format!(
                "E5: window {i0} ({}) with the dims the decoder responds to most",
                name(i0)
            ),
            &rows,
            x_axis,
        )?;
        m.figures.insert(
            "e5_controlled_generation.png".into(),
            "E5: traversal of the active dim and toggle of the dim active in only one of two \
             windows that change the decoded spectra most (‖Δ‖: L2 change of the decoded \
             [0, 1]-scaled input); rows: traversal, toggle before/after, differences"
                .into(),
        );
    }
    m.controlled = Some(picked);
    Ok(())
}

/// A legend entry and its values per shown channel.
type NamedChannels = (String, Vec<Vec<f32>>);
/// One row of the HAR E5 figure: title, gradient colours, y label, traces.
type E5Row = (String, bool, String, Vec<NamedChannels>);

/// Picks E5's traversed dim (among the dims on in the first example) and toggled dim (on in
/// exactly one of the two) by the decoder's sensitivity ([`rank_by_change`]).
fn pick_controlled(
    model: &TrainedModel,
    examples: [usize; 2],
    sparse: [&[f32]; 2],
    codes: &crate::train::Codes,
    out_dim: usize,
) -> Result<ControlledGeneration, EvalError> {
    let j = codes.latent_dim;
    let on = |i: usize| -> Vec<bool> {
        (0..j)
            .map(|d| codes.gamma[i * j + d] > SPIKE_ON_THRESHOLD)
            .collect()
    };
    let (on0, on1) = (on(examples[0]), on(examples[1]));
    let candidates: Vec<usize> = (0..j).filter(|&d| on0[d]).collect();
    let decode = |z: &[f32], rows: usize| model.decode(z, rows).map(|(mean, _)| mean);
    let traversal = rank_by_change(
        &traversal_pairs(sparse[0], &candidates, 2.0),
        out_dim,
        decode,
    )?;
    let toggle = rank_by_change(
        &toggle_pairs(sparse[0], sparse[1], &on0, &on1),
        out_dim,
        decode,
    )?;
    let pairs = |r: &[Sensitivity]| r.iter().map(|s| (s.dim, s.change)).collect::<Vec<_>>();
    Ok(ControlledGeneration {
        examples,
        traversed_dim: traversal.first().map(|s| s.dim),
        traversal_changes: pairs(&traversal),
        toggled_dim: toggle.first().map(|s| s.dim),
        toggle_changes: pairs(&toggle),
    })
}

fn evaluate_smiley(
    model: &TrainedModel,
    run_dir: &Path,
    out_dir: &Path,
    dir: &Path,
    opts: &EvalOptions,
) -> Result<EvalMetrics, EvalError> {
    let images = read_matrix(&dir.join("test_images.npy"))?;
    let values = read_matrix(&dir.join("test_values.npy"))?;
    let presence = read_matrix(&dir.join("test_presence.npy"))?;
    if images.cols != SMILEY_PIXELS
        || values.cols != N_SOURCES
        || presence.cols != N_SOURCES
        || images.rows != values.rows
        || images.rows != presence.rows
    {
        return Err(EvalError::Input(format!(
            "{}: expected test_images n×{SMILEY_PIXELS}, test_values and test_presence n×{N_SOURCES}, \
             got {}×{}, {}×{} and {}×{}",
            dir.display(),
            images.rows,
            images.cols,
            values.rows,
            values.cols,
            presence.rows,
            presence.cols
        )));
    }
    let n = opts
        .max_test_rows
        .map_or(images.rows, |m| m.min(images.rows));
    let x01 = model
        .scaling()
        .apply(&images.data[..n * SMILEY_PIXELS], SMILEY_PIXELS);
    // The sources are S ⊙ V (the authors' V holds draws of absent groups too).
    let v = present_values(
        &presence.data[..n * N_SOURCES],
        &values.data[..n * N_SOURCES],
    );
    let mut m = base_metrics(model, run_dir, "smiley");
    m.n_test = n;
    m.test_elbo = elbo(model, &x01, n, opts.seed)?;
    let codes = model.encode(&x01, n)?;
    let j = codes.latent_dim;
    m.active = active_dims(&codes.gamma, j);
    let is_vsc = matches!(model.model_config().kind, ModelKind::Vsc);
    let latents = if is_vsc {
        sparse_code(&codes.mu, &codes.gamma)
    } else {
        codes.mu.clone()
    };
    let abs_corr = abs_correlation(&v, N_SOURCES, &latents, j);
    // The authors' notebook correlates magnitudes: |S ⊙ V| with |z|.
    let magnitude = |x: &[f32]| x.iter().map(|a| a.abs()).collect::<Vec<f32>>();
    let top_gap_magnitudes = top_gap(&abs_correlation(
        &magnitude(&v),
        N_SOURCES,
        &magnitude(&latents),
        j,
    ));
    let order = group_latent_order(&abs_corr, 0.2);
    let spike_group_contrast = if is_vsc {
        let masks: Vec<Vec<bool>> = SmileyGroup::ALL
            .iter()
            .map(|g| {
                let s = g.sources().start;
                (0..n)
                    .map(|i| presence.data[i * N_SOURCES + s] > 0.5)
                    .collect()
            })
            .collect();
        Some(spike_contrast(&codes.gamma, j, &masks))
    } else {
        None
    };
    let d = Disentanglement {
        spike_group_contrast,
        source_names: FEATURES.iter().map(|f| f.name.to_string()).collect(),
        top_gap: top_gap(&abs_corr),
        top_gap_magnitudes: Some(top_gap_magnitudes),
        latent_order: order.clone(),
        abs_corr,
        latents: if is_vsc {
            "sparse code μ⊙1[γ>0.5]".into()
        } else {
            "μ".into()
        },
    };
    if opts.figures {
        gamma_bars(out_dir, &mut m)?;
        let ordered: Vec<Vec<f64>> = d
            .abs_corr
            .iter()
            .map(|r| order.iter().map(|&l| r[l]).collect())
            .collect();
        let cols: Vec<String> = order.iter().map(|l| format!("z{l}")).collect();
        plot::heatmap(
            &out_dir.join("e2_abs_correlation.png"),
            &Heatmap {
                title: &format!(
                    "E2: |corr| sources × latents, top1−top2 gap {:.3}",
                    d.top_gap
                ),
                values: &ordered,
                row_labels: &d.source_names,
                col_labels: &cols,
                row_axis: "source feature",
                col_axis: "latent (grouped by best source)",
                vmin: 0.0,
                vmax: 1.0,
                annotate_decimals: None,
            },
        )?;
        m.figures.insert(
            "e2_abs_correlation.png".into(),
            "E2: |correlation| between the 18 Smiley sources and the latents".into(),
        );
        if let Some(contrast) = &d.spike_group_contrast {
            let used: Vec<usize> = (0..j)
                .filter(|&l| m.active.on_fraction[l] >= m.active.min_on_fraction)
                .collect();
            if !used.is_empty() {
                let values: Vec<Vec<f64>> = (0..SmileyGroup::ALL.len())
                    .map(|g| used.iter().map(|&l| contrast[l][g]).collect())
                    .collect();
                let groups: Vec<String> =
                    SmileyGroup::ALL.iter().map(|g| g.name().into()).collect();
                let cols: Vec<String> = used.iter().map(|l| format!("z{l}")).collect();
                plot::heatmap(
                    &out_dir.join("e2_spikes_by_group.png"),
                    &Heatmap {
                        title: "E2 spikes: P(on | group drawn) − P(on | not drawn)",
                        values: &values,
                        row_labels: &groups,
                        col_labels: &cols,
                        row_axis: "attribute group",
                        col_axis: "latent used by ≥ 1 % of the test images",
                        vmin: -1.0,
                        vmax: 1.0,
                        annotate_decimals: (used.len() <= 30).then_some(1),
                    },
                )?;
                m.figures.insert(
                    "e2_spikes_by_group.png".into(),
                    "E2: which attribute group switches each used latent on (+1) or off (−1)"
                        .into(),
                );
            }
        }
        let k = n.min(8);
        let (recon, _) = model.decode(&latents[..k * j], k)?;
        // Show both rows in pixel units: the fitted min/max scaling maps pixels that are 1
        // in every training image (the face's inside) to 0, which would draw them as holes.
        let mut grid = images.data[..k * SMILEY_PIXELS].to_vec();
        grid.extend(model.scaling().invert(&recon, SMILEY_PIXELS));
        plot::image_grid(
            &out_dir.join("smiley_reconstructions.png"),
            &grid,
            SMILEY_SIDE_PX,
            8,
            3,
            &["test images".into(), "decoded codes".into()],
        )?;
        m.figures.insert(
            "smiley_reconstructions.png".into(),
            "Smiley test images (top) and their decoded codes (bottom)".into(),
        );
        if let Some((i0, i1)) = smiley_pair(&presence.data, n) {
            let label = |i: usize| {
                let g: Vec<&str> = groups_of(&presence.data, i)
                    .iter()
                    .map(|g| g.name())
                    .collect();
                g.join(", ")
            };
            let e5 = smiley_controlled(
                model,
                &images.data,
                &latents,
                &codes,
                (i0, i1),
                [label(i0), label(i1)],
                out_dir,
            )?;
            m.figures.insert(
                "e5_controlled_generation.png".into(),
                "E5 on Smiley: traversal and toggle of the dims the decoder responds to most, \
                 with difference images (red: more ink, blue: less)"
                    .into(),
            );
            m.controlled = Some(e5);
        }
    }
    m.disentanglement = Some(d);
    Ok(m)
}

/// Groups drawn in Smiley test row `i`.
fn groups_of(presence: &[f32], i: usize) -> Vec<SmileyGroup> {
    SmileyGroup::ALL
        .into_iter()
        .filter(|g| presence[i * N_SOURCES + g.sources().start] > 0.5)
        .collect()
}

/// E5's Smiley pair: the first test image with exactly two groups and the first with the
/// other two (else any image with other groups), so toggled dims can add or remove parts.
fn smiley_pair(presence: &[f32], n: usize) -> Option<(usize, usize)> {
    let i0 = (0..n).find(|&i| groups_of(presence, i).len() == 2)?;
    let g0 = groups_of(presence, i0);
    let complement = |i: usize| {
        let g = groups_of(presence, i);
        g.len() == 2 && g.iter().all(|x| !g0.contains(x))
    };
    let i1 = (0..n)
        .find(|&i| complement(i))
        .or_else(|| (0..n).find(|&i| groups_of(presence, i) != g0))?;
    Some((i0, i1))
}

/// E5 on Smiley: picks the dims by decoder sensitivity and draws the examples, the
/// traversal and the toggle with difference images.
fn smiley_controlled(
    model: &TrainedModel,
    images: &[f32],
    latents: &[f32],
    codes: &crate::train::Codes,
    (i0, i1): (usize, usize),
    labels: [String; 2],
    out_dir: &Path,
) -> Result<ControlledGeneration, EvalError> {
    use crate::plot::{ImageRow, Shade, Tile};
    let j = codes.latent_dim;
    let (z0, z1) = (
        latents[i0 * j..(i0 + 1) * j].to_vec(),
        latents[i1 * j..(i1 + 1) * j].to_vec(),
    );
    let picked = pick_controlled(model, [i0, i1], [&z0, &z1], codes, SMILEY_PIXELS)?;
    let px = |x01: &[f32]| model.scaling().invert(x01, SMILEY_PIXELS);
    let image = |i: usize| images[i * SMILEY_PIXELS..(i + 1) * SMILEY_PIXELS].to_vec();
    let ink = |caption: String, pixels: Vec<f32>| Tile {
        caption,
        pixels,
        shade: Shade::Ink,
    };
    let signed = |caption: String, a: &[f32], b: &[f32]| Tile {
        caption,
        pixels: a.iter().zip(b).map(|(x, y)| y - x).collect(),
        shade: Shade::Signed,
    };
    let mut both = z0.clone();
    both.extend(&z1);
    let (rec, _) = model.decode(&both, 2)?;
    let mut rows = vec![ImageRow {
        caption: format!("examples\n(test rows {i0}, {i1})"),
        tiles: vec![
            ink(format!("image {i0}\n{}", labels[0]), image(i0)),
            ink("decoded".into(), px(&rec[..SMILEY_PIXELS])),
            ink(format!("image {i1}\n{}", labels[1]), image(i1)),
            ink("decoded".into(), px(&rec[SMILEY_PIXELS..])),
        ],
    }];
    if let Some(d) = picked.traversed_dim {
        let offsets = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
        let (dec, _) = model.decode(&traversal_codes(&z0, d, &offsets), offsets.len())?;
        let tiles_px: Vec<Vec<f32>> = dec.chunks_exact(SMILEY_PIXELS).map(&px).collect();
        let mut tiles: Vec<Tile> = offsets
            .iter()
            .zip(&tiles_px)
            .map(|(k, p)| ink(format!("z{d} = {:.2}", z0[d] + k), p.clone()))
            .collect();
        tiles.push(signed(
            format!("(+2) − (−2)\n‖Δ‖ {:.2}", picked.traversal_changes[0].1),
            &tiles_px[0],
            &tiles_px[offsets.len() - 1],
        ));
        rows.push(ImageRow {
            caption: format!(
                "traverse z{d}\ntop of {} active dims",
                picked.traversal_changes.len()
            ),
            tiles,
        });
    }
    if let Some(t) = picked.toggled_dim {
        let mut after = z0.clone();
        let on = z0[t] == 0.0;
        after[t] = if on { z1[t] } else { 0.0 };
        let (dec, _) = model.decode(&after, 1)?;
        let (before_px, after_px) = (px(&rec[..SMILEY_PIXELS]), px(&dec));
        rows.push(ImageRow {
            caption: format!(
                "toggle z{t} {}\ntop of {} unshared dims",
                if on { "on" } else { "off" },
                picked.toggle_changes.len()
            ),
            tiles: vec![
                ink("before".into(), before_px.clone()),
                ink(
                    if on {
                        format!("z{t} = {:.2}", z1[t])
                    } else {
                        format!("z{t} = 0")
                    },
                    after_px.clone(),
                ),
                signed(
                    format!("after − before\n‖Δ‖ {:.2}", picked.toggle_changes[0].1),
                    &before_px,
                    &after_px,
                ),
            ],
        });
    }
    plot::image_rows(
        &out_dir.join("e5_controlled_generation.png"),
        "E5: dims picked by the decoder's sensitivity (red: more ink, blue: less)",
        &rows,
        SMILEY_SIDE_PX,
        4,
    )?;
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_scaling_restores_constant_columns_for_display() {
        // Column 1 was 1 in every training row: scaled to 0, shown again as 1.
        let s = InputScaling::MinMax(crate::scaling::MinMaxScaling {
            min: vec![0.0, 1.0, -2.0],
            max: vec![1.0, 1.0, 2.0],
        });
        let x01 = [0.25, 0.0, 0.5, 1.0, 0.0, 0.0];
        assert_eq!(s.invert(&x01, 3), vec![0.25, 1.0, 0.0, 1.0, 1.0, -2.0]);
        assert_eq!(InputScaling::Identity.invert(&x01, 3), x01.to_vec());
    }
}
