//! `vsc eval`, `vsc sweep`, `vsc report` and `vsc data smiley` (helper EVAL).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser};

use crate::data::{WindowConfig, load_har_windows, resolve_data_dir, scaled_inputs};
use crate::eval::metrics::mean_sd;
use crate::eval::pipeline::{EvalOptions, evaluate_run};
use crate::plot::{ErrorPanel, ErrorPoint, errorbar_panels};
use crate::train::{InputScaling, TrainedModel};

/// Options of `vsc eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory written by `vsc train`.
    pub run_dir: PathBuf,
    /// HAR data folder; default: $VSC_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Smiley folder from `vsc data smiley` (for runs trained on Smiley images).
    #[arg(long, value_name = "DIR")]
    pub smiley: Option<PathBuf>,
    /// A β-VAE run on the same data: its means are probed beside VSC's codes.
    #[arg(long, value_name = "RUN_DIR")]
    pub baseline: Option<PathBuf>,
    /// Output folder for metrics.json and the figures; default: RUN_DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate at most this many test rows.
    #[arg(long)]
    pub max_test_rows: Option<usize>,
    /// L2 penalty of the linear probe (features standardised).
    #[arg(long, default_value_t = 1e-4)]
    pub probe_l2: f64,
}

/// Runs `vsc eval`.
pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let mut opts = EvalOptions {
        data_dir: args.data.clone(),
        smiley_dir: args.smiley.clone(),
        baseline: args.baseline.clone(),
        out_dir: args.out.clone(),
        seed: args.seed,
        max_test_rows: args.max_test_rows,
        ..EvalOptions::default()
    };
    opts.probe.l2 = args.probe_l2;
    let m = evaluate_run(&args.run_dir, &opts)
        .with_context(|| format!("evaluating {}", args.run_dir.display()))?;
    println!(
        "{} ({}, {}): test ELBO {:.2} nats (recon {:.2}, KL {:.2}, sparsity {:.2}) over {} rows",
        m.run_dir,
        m.model,
        m.likelihood,
        m.test_elbo.elbo,
        m.test_elbo.recon_nll,
        m.test_elbo.kl,
        m.test_elbo.sparsity,
        m.n_test
    );
    println!(
        "active dims: {} of {} with mean γ > {}; {} on for ≥ {} % of examples; {:.2} on per example",
        m.active.n_active,
        m.latent_dim,
        m.active.mean_gamma_threshold,
        m.active.n_used,
        m.active.min_on_fraction * 100.0,
        m.active.mean_active_per_example
    );
    for p in &m.probes {
        println!(
            "probe {:<28} dim {:>5}: test accuracy {:.2} %, macro F1 {:.3} (train {:.2} %)",
            p.features,
            p.dim,
            100.0 * p.test.accuracy,
            p.test.macro_f1,
            100.0 * p.train_accuracy
        );
    }
    if let Some(c) = &m.controlled {
        let top = |dim: Option<usize>, ranked: &[(usize, f64)]| match (dim, ranked.first()) {
            (Some(d), Some(&(_, change))) => {
                format!(
                    "z{d} (‖Δ‖ {change:.3}, largest of {} candidates)",
                    ranked.len()
                )
            }
            _ => "none".into(),
        };
        println!(
            "E5 (test rows {} and {}): traversed {}; toggled {}",
            c.examples[0],
            c.examples[1],
            top(c.traversed_dim, &c.traversal_changes),
            top(c.toggled_dim, &c.toggle_changes)
        );
    }
    if let Some(d) = &m.disentanglement {
        println!("E2: top1−top2 |corr| gap {:.3} ({})", d.top_gap, d.latents);
        if let Some(g) = d.top_gap_magnitudes {
            println!(
                "E2: the same gap between magnitudes |S ⊙ V| and |latent| (authors' notebook): {g:.3}"
            );
        }
        if let Some(contrast) = &d.spike_group_contrast {
            println!("{}", spikes_by_group(contrast));
        }
    }
    Ok(())
}

/// Options of `vsc report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (each with metrics.json and PNGs from `vsc eval` / `vsc sweep`).
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Output HTML file.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    #[arg(long, default_value = "VSC evaluation report")]
    pub title: String,
}

/// Runs `vsc report`.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    crate::report::write_report(&args.title, &args.run_dirs, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// One line naming, per Smiley group, the latents whose spike follows it
/// (|P(on | drawn) − P(on | not drawn)| ≥ 0.5; "¬" marks a latent on when the group is not drawn).
fn spikes_by_group(contrast: &[Vec<f64>]) -> String {
    let parts: Vec<String> = crate::smiley::SmileyGroup::ALL
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let dims: Vec<String> = contrast
                .iter()
                .enumerate()
                .filter(|(_, row)| row[g].abs() >= 0.5)
                .map(|(l, row)| format!("{}z{l}", if row[g] < 0.0 { "¬" } else { "" }))
                .collect();
            let dims = if dims.is_empty() {
                "none".into()
            } else {
                dims.join(" ")
            };
            format!("{}: {dims}", group.name())
        })
        .collect();
    format!(
        "spikes that follow a group (|P(on | drawn) − P(on | not)| ≥ 0.5): {}",
        parts.join("; ")
    )
}

/// Options of `vsc data smiley`.
#[derive(Debug, Args)]
pub struct SmileyArgs {
    /// Output folder: {train,test}_{images,presence,values}.npy and a preview PNG.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = crate::smiley::PAPER_N_TRAIN)]
    pub n_train: usize,
    #[arg(long, default_value_t = crate::smiley::PAPER_N_TEST)]
    pub n_test: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Store the images in MATLAB's column-major pixel order (the authors' `.mat` files);
    /// default: row-major, upright in any NPY viewer.
    #[arg(long)]
    pub column_major: bool,
}

/// Runs `vsc data smiley`.
pub fn data_smiley(args: &SmileyArgs) -> anyhow::Result<()> {
    use crate::smiley::{SMILEY_PIXELS, SMILEY_SIDE_PX, generate, write_set_with};
    // Train and test from separate streams of the same seed.
    let train = generate(args.n_train, args.seed.wrapping_mul(2));
    let test = generate(args.n_test, args.seed.wrapping_mul(2).wrapping_add(1));
    write_set_with(&args.out, "train", &train, args.column_major)?;
    write_set_with(&args.out, "test", &test, args.column_major)?;
    let k = args.n_test.min(32);
    if k > 0 {
        crate::plot::image_grid(
            &args.out.join("preview.png"),
            &test.images[..k * SMILEY_PIXELS],
            SMILEY_SIDE_PX,
            8,
            3,
            &[],
        )?;
    }
    println!(
        "wrote {} training and {} test Smiley images (+ presence and values, 18 sources) to {}",
        args.n_train,
        args.n_test,
        args.out.display()
    );
    Ok(())
}

/// Options of `vsc sweep` (experiment E1 on HAR windows).
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep folder: one run directory per (model, value, seed), metrics.json, e1_elbo.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// HAR data folder; default: $VSC_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Training budget: optimiser steps per run (warm-up/ramp/main scaled to it).
    #[arg(long, default_value_t = 3000)]
    pub steps: u64,
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.2,0.1,0.05,0.01")]
    pub alphas: Vec<f32>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub betas: Vec<f32>,
    /// Preset passed to `vsc train` (edge, paper, tiny).
    #[arg(long, default_value = "edge")]
    pub preset: String,
    /// Extra arguments passed to every `vsc train` (e.g. "--channels acc --device wgpu").
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub train_args: String,
}

#[derive(Parser)]
struct TrainWrapper {
    #[command(flatten)]
    args: super::train::TrainArgs,
}

#[derive(serde::Serialize)]
struct SweepRow {
    model: String,
    value: f32,
    seed: u64,
    run_dir: String,
    test_elbo: f64,
    recon_nll: f64,
    kl: f64,
    mean_gamma: f64,
}

/// The f64 whose shortest decimal form equals the f32's (0.01f32 → 0.01, not
/// 0.009999999776482582), so axis ticks and metrics.json show the grid as typed.
fn decimal_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// Runs `vsc sweep`: trains every (model, value, seed) (resuming finished/partial runs),
/// evaluates the test ELBO on the test subjects and plots it with ±1 sd over seeds.
pub fn sweep(args: &SweepArgs) -> anyhow::Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let data_dir = resolve_data_dir(args.data.as_deref())?;
    let mut jobs: Vec<(&str, f32, u64)> = Vec::new();
    for seed in 0..args.seeds {
        jobs.extend(args.alphas.iter().map(|&a| ("vsc", a, seed)));
        jobs.extend(args.betas.iter().map(|&b| ("beta-vae", b, seed)));
    }
    let mut rows = Vec::new();
    let mut test_cache: Option<(u16, crate::data::HarWindows)> = None;
    for (k, (model, value, seed)) in jobs.iter().enumerate() {
        let run_dir = args.out.join(format!("{model}_{value}_seed{seed}"));
        let value_flag = if *model == "vsc" { "--alpha" } else { "--beta" };
        let mut argv: Vec<String> = vec![
            "train".into(),
            "--preset".into(),
            args.preset.clone(),
            "--out".into(),
            run_dir.display().to_string(),
            "--data".into(),
            data_dir.display().to_string(),
            "--steps".into(),
            args.steps.to_string(),
            "--seed".into(),
            seed.to_string(),
            "--model".into(),
            model.to_string(),
            value_flag.into(),
            value.to_string(),
            "--quiet".into(),
        ];
        argv.extend(args.train_args.split_whitespace().map(String::from));
        if !run_dir.join(crate::train::FINAL_MODEL_FILE).exists() {
            if run_dir.exists() {
                argv.push("--resume".into());
            }
            eprintln!("[{}/{}] training {}", k + 1, jobs.len(), run_dir.display());
            let w = TrainWrapper::try_parse_from(&argv).context("building the train arguments")?;
            super::train::run(&w.args)
                .with_context(|| format!("training {}", run_dir.display()))?;
        }
        let trained = TrainedModel::open(&run_dir)?;
        let InputScaling::HarChannels { channel_bits, .. } = trained.scaling().clone() else {
            bail!("{}: not a HAR run", run_dir.display());
        };
        if test_cache.as_ref().is_none_or(|c| c.0 != channel_bits) {
            let channels = edge_runtime::preprocess::ChannelSet::from_bits(channel_bits)
                .context("bad channel bits in the run's config")?;
            let (_, test) = load_har_windows(
                &data_dir,
                &WindowConfig {
                    channels,
                    include_transitions: false,
                },
            )?;
            test_cache = Some((channel_bits, test));
        }
        let Some((_, test)) = &test_cache else {
            unreachable!()
        };
        let x01 = scaled_inputs(test, trained.scaling())?;
        let e = trained.evaluate(&x01, test.len(), 0)?;
        rows.push(SweepRow {
            model: model.to_string(),
            value: *value,
            seed: *seed,
            run_dir: run_dir.display().to_string(),
            test_elbo: e.elbo,
            recon_nll: e.recon_nll,
            kl: e.kl,
            mean_gamma: e.mean_gamma,
        });
    }
    let points = |model: &str, values: &[f32]| -> Vec<ErrorPoint> {
        values
            .iter()
            .map(|&v| {
                let e: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.model == model && r.value == v)
                    .map(|r| r.test_elbo)
                    .collect();
                let (mean, sd) = mean_sd(&e);
                ErrorPoint {
                    x: decimal_f64(v),
                    mean,
                    err: sd,
                }
            })
            .collect()
    };
    let (pa, pb) = (points("vsc", &args.alphas), points("beta-vae", &args.betas));
    errorbar_panels(
        &args.out.join("e1_elbo.png"),
        &format!(
            "E1: test ELBO (mean ± sd over {} seeds, {} steps each)",
            args.seeds, args.steps
        ),
        &[
            ErrorPanel {
                title: "VSC vs prior sparsity α",
                x_label: "α",
                y_label: "test ELBO (nats)",
                log_x: true,
                points: &pa,
            },
            ErrorPanel {
                title: "β-VAE vs β",
                x_label: "β",
                y_label: "test ELBO (nats)",
                log_x: true,
                points: &pb,
            },
        ],
    )?;
    let summary = serde_json::json!({
        "budget_steps": args.steps,
        "preset": args.preset,
        "seeds": args.seeds,
        "runs": rows,
        "vsc": pa.iter().map(|p| serde_json::json!({"alpha": p.x, "elbo_mean": p.mean, "elbo_sd": p.err})).collect::<Vec<_>>(),
        "beta_vae": pb.iter().map(|p| serde_json::json!({"beta": p.x, "elbo_mean": p.mean, "elbo_sd": p.err})).collect::<Vec<_>>(),
        "figures": {"e1_elbo.png": "E1: test ELBO vs α (VSC) and β (β-VAE)"},
    });
    let path = args.out.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} and {}",
        path.display(),
        args.out.join("e1_elbo.png").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decimal_f64;

    #[test]
    fn grid_values_keep_their_decimal_form() {
        assert_eq!(decimal_f64(0.01), 0.01);
        assert_eq!(decimal_f64(0.2), 0.2);
        assert_eq!(decimal_f64(8.0), 8.0);
        assert_ne!(f64::from(0.01f32), 0.01);
    }
}
