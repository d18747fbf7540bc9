//! `vsc ablation PLAN.toml --smiley DIR --out DIR`: trains every (step, seed) of a plan on
//! the Smiley training images (resuming partial runs, skipping finished ones), evaluates
//! each on the test images and writes `ablation.json`, `ablation.md` and `ablation.png`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser};

use crate::eval::ablation::{AblationPlan, AblationRow, markdown_table, summarise};
use crate::eval::pipeline::{EvalMetrics, EvalOptions, evaluate_run};
use crate::plot::{CategoryPanel, category_panels};
use crate::train::FINAL_MODEL_FILE;

/// Options of `vsc ablation`.
#[derive(Debug, Args)]
pub struct AblationArgs {
    /// Plan: a base config and its steps (e.g. configs/smiley/ablation.toml).
    pub plan: PathBuf,
    /// Smiley folder from `vsc data smiley` (train_images.npy and the test set).
    #[arg(long, value_name = "DIR")]
    pub smiley: PathBuf,
    /// Output folder: OUT/<step id>/seed<k>/ and ablation.{json,md,png}.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Optimiser steps per run (the schedule's phases scaled); default: the plan's configs.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Only these seeds (comma-separated); default: the plan's.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Only these step ids (comma-separated); the summary still covers every finished run.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Train nothing: summarise the runs that are there.
    #[arg(long)]
    pub summarise_only: bool,
    /// Evaluate at most this many test images.
    #[arg(long)]
    pub max_test_rows: Option<usize>,
    /// flex (CPU), wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

#[derive(Parser)]
struct TrainWrapper {
    #[command(flatten)]
    args: super::train::TrainArgs,
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::fsio::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Evaluation of `run_dir`, reusing its metrics.json when it is newer than the model.
fn evaluated(run_dir: &Path, opts: &EvalOptions) -> anyhow::Result<EvalMetrics> {
    let metrics = run_dir.join("metrics.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(m), Some(model)) = (
        modified(&metrics),
        modified(&run_dir.join(FINAL_MODEL_FILE)),
    ) && m >= model
        && let Ok(text) = std::fs::read_to_string(&metrics)
        && let Ok(parsed) = serde_json::from_str::<EvalMetrics>(&text)
        && parsed.disentanglement.is_some()
    {
        return Ok(parsed);
    }
    evaluate_run(run_dir, opts).with_context(|| format!("evaluating {}", run_dir.display()))
}

/// Runs `vsc ablation`.
pub fn run(args: &AblationArgs) -> anyhow::Result<()> {
    let plan = AblationPlan::from_file(&args.plan)?;
    let train_images = args.smiley.join("train_images.npy");
    if !train_images.exists() {
        bail!(
            "{} not found: run `vsc data smiley --out {}` first",
            train_images.display(),
            args.smiley.display()
        );
    }
    if let Some(only) = &args.only
        && let Some(bad) = only
            .iter()
            .find(|id| !plan.steps.iter().any(|(s, _)| &s.id == *id))
    {
        bail!("--only {bad}: no such step id in {}", args.plan.display());
    }
    let seeds = args.seeds.clone().unwrap_or_else(|| plan.seeds.clone());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let eval_opts = EvalOptions {
        smiley_dir: Some(args.smiley.clone()),
        max_test_rows: args.max_test_rows,
        ..EvalOptions::default()
    };
    let selected = |id: &str| args.only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    let total = plan.steps.iter().filter(|(s, _)| selected(&s.id)).count() * seeds.len();
    let mut done = 0;
    let mut rows = Vec::new();
    for (step, cfg) in &plan.steps {
        let step_dir = args.out.join(&step.id);
        std::fs::create_dir_all(&step_dir)
            .with_context(|| format!("creating {}", step_dir.display()))?;
        let cfg_path = step_dir.join("plan-config.toml");
        write_atomic(&cfg_path, &toml::to_string(cfg)?)?;
        for &seed in &seeds {
            let run_dir = step_dir.join(format!("seed{seed}"));
            let finished = run_dir.join(FINAL_MODEL_FILE).exists();
            if selected(&step.id) && !finished && !args.summarise_only {
                done += 1;
                eprintln!(
                    "[{done}/{total}] training {} ({}), seed {seed}",
                    step.name,
                    run_dir.display()
                );
                let mut argv: Vec<String> = [
                    "train",
                    "--config",
                    &cfg_path.display().to_string(),
                    "--input",
                    &train_images.display().to_string(),
                    "--out",
                    &run_dir.display().to_string(),
                    "--seed",
                    &seed.to_string(),
                    "--device",
                    &args.device,
                    "--quiet",
                ]
                .map(String::from)
                .to_vec();
                if let Some(steps) = args.steps {
                    argv.extend(["--steps".into(), steps.to_string()]);
                }
                if run_dir.exists() {
                    argv.push("--resume".into());
                }
                let w =
                    TrainWrapper::try_parse_from(&argv).context("building the train arguments")?;
                super::train::run(&w.args)
                    .with_context(|| format!("training {}", run_dir.display()))?;
            }
            if !run_dir.join(FINAL_MODEL_FILE).exists() {
                continue;
            }
            let m = evaluated(&run_dir, &eval_opts)?;
            let d = m
                .disentanglement
                .as_ref()
                .context("a Smiley evaluation has the E2 results")?;
            rows.push(AblationRow {
                id: step.id.clone(),
                name: step.name.clone(),
                seed,
                run_dir: run_dir.display().to_string(),
                dims_used: m.active.n_used,
                dims_per_image: m.active.mean_active_per_example,
                gap: d.top_gap,
                gap_magnitudes: d.top_gap_magnitudes,
                test_elbo: m.test_elbo.elbo,
            });
        }
    }
    let steps: Vec<(String, String)> = plan
        .steps
        .iter()
        .map(|(s, _)| (s.id.clone(), s.name.clone()))
        .collect();
    let summaries = summarise(&steps, &rows);
    if summaries.is_empty() {
        bail!("no finished runs under {}", args.out.display());
    }
    let table = markdown_table(&summaries, &rows);
    write_atomic(&args.out.join("ablation.md"), &table)?;
    let json = serde_json::json!({
        "plan": args.plan.display().to_string(),
        "cumulative": plan.cumulative,
        "steps_override": args.steps,
        "summary": summaries,
        "runs": rows,
    });
    write_atomic(
        &args.out.join("ablation.json"),
        &serde_json::to_string_pretty(&json)?,
    )?;
    let names: Vec<String> = summaries.iter().map(|s| s.name.clone()).collect();
    let column = |f: &dyn Fn(&AblationRow) -> f64| -> Vec<Vec<f64>> {
        summaries
            .iter()
            .map(|s| rows.iter().filter(|r| r.id == s.id).map(f).collect())
            .collect()
    };
    category_panels(
        &args.out.join("ablation.png"),
        &format!(
            "{} ({} steps, {})",
            args.plan
                .file_name()
                .map_or("ablation".into(), |f| f.to_string_lossy()),
            summaries.len(),
            if plan.cumulative {
                "each step keeps the earlier changes"
            } else {
                "each step changes the base alone"
            }
        ),
        &names,
        &[
            CategoryPanel {
                title: "dims used (on for ≥ 1 % of test images)",
                y_label: "dims",
                values: column(&|r| r.dims_used as f64),
            },
            CategoryPanel {
                title: "dims on per test image (mean)",
                y_label: "dims",
                values: column(&|r| r.dims_per_image),
            },
            CategoryPanel {
                title: "E2: top1 − top2 |corr| gap",
                y_label: "gap",
                values: column(&|r| r.gap),
            },
            CategoryPanel {
                title: "test ELBO",
                y_label: "nats per image",
                values: column(&|r| r.test_elbo),
            },
        ],
        2,
    )?;
    println!("{table}");
    println!("wrote {}/ablation.{{md,json,png}}", args.out.display());
    Ok(())
}
