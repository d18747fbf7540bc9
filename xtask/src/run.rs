//! `cargo xtask run`: the main job, on a fresh machine with the data.
//!
//! train the `edge` preset on CPU → evaluate (test ELBO, active dims, linear probes) →
//! quantise to an int8 blob (+ model card) → export the f32 and int8 ONNX encoders →
//! build the Cortex-M4F firmware with that blob → run it under QEMU → decode its frames,
//! compare them with what edge-runtime computes on the host, print a summary.
//!
//! Every stage calls the library code in-process (host-trainer, edge-runtime and the other
//! xtask modules) and prints a header and its wall time. A finished run in `--out` is
//! reused unless `--retrain`; an interrupted one resumes from its latest checkpoint.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use edge_runtime::frame::Frame;
use edge_runtime::preprocess::{ChannelSet, InputFeatures};
use host_trainer::cli::train::override_steps;
use host_trainer::data::{HarWindows, WindowConfig, har_training_data, load_har_windows};
use host_trainer::eval::pipeline::{EvalMetrics, EvalOptions, evaluate_run};
use host_trainer::model::TrainConfig;
use host_trainer::train::{
    CONFIG_FILE, FINAL_MODEL_FILE, RunMeta, TrainOptions, checkpoint, device_from_name, train,
};

use crate::firmware::{self, FirmwareArgs};
use crate::quantise::{self, ExportOnnxArgs, QuantiseArgs};
use crate::test::workspace_root;

/// The preset the main job trains: the microcontroller-sized encoder.
const PRESET: &str = "edge";
/// The preset's input channels, as `vsc train --preset edge` picks them.
fn channels() -> ChannelSet {
    host_trainer::cli::train::preset_input(PRESET).0
}
/// The preset's model input (band spectra), as `vsc train --preset edge` picks it.
fn features() -> InputFeatures {
    host_trainer::cli::train::preset_input(PRESET).1
}
/// Number of stages, for the `[i/N]` headers.
const STAGES: usize = 7;

/// Options of `cargo xtask run`. It runs in the workspace root: relative paths are taken
/// from there.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder holding HAPT_RawData.zip (default: $VSC_DATA_DIR, then ../shared/data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run directory: checkpoints, model.bpk, metrics.json, figures, ONNX files, summary.
    #[arg(long, value_name = "RUN_DIR", default_value = "runs/main")]
    pub out: PathBuf,
    /// Where the int8 blob goes (its model card is written beside it as `.md`). Default:
    /// `models/edge.vscq` for a model trained with the full edge preset, else
    /// `RUN_DIR/edge.vscq` (a shortened run never replaces the committed model).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Total optimiser steps (default: the edge preset's 20,000); the schedule's phases
    /// are scaled proportionally.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Do not train: use the finished model in RUN_DIR (an error if there is none).
    #[arg(long, conflicts_with = "retrain")]
    pub skip_train: bool,
    /// Train afresh even if RUN_DIR holds a finished model (RUN_DIR is emptied first).
    #[arg(long)]
    pub retrain: bool,
    /// Training device: flex (CPU), wgpu or cuda (the GPU ones need host-trainer features).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Decoded firmware frames to print.
    #[arg(long, default_value_t = 8)]
    pub show_frames: usize,
    /// Seconds before QEMU is stopped.
    #[arg(long, default_value_t = 120)]
    pub qemu_timeout_s: u64,
}

/// Runs the stages, printing a numbered header before and the wall time after each.
struct Stages {
    next: usize,
    times: Vec<(&'static str, f64)>,
}

impl Stages {
    /// `short` names the stage in the summary's wall-time row.
    fn run<T>(
        &mut self,
        name: &str,
        short: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.next += 1;
        println!("\n=== [{}/{STAGES}] {name} ===", self.next);
        let started = Instant::now();
        let out = f().with_context(|| format!("stage [{}/{STAGES}] {name}", self.next))?;
        let secs = started.elapsed().as_secs_f64();
        println!("--- {name}: {secs:.1} s");
        self.times.push((short, secs));
        Ok(out)
    }
}

/// The training configuration the main job asks for.
fn requested_config(steps: Option<u64>) -> TrainConfig {
    let mut cfg = TrainConfig::edge(features().input_dim(channels()));
    if let Some(steps) = steps {
        override_steps(&mut cfg, steps);
    }
    cfg
}

fn read_meta(run_dir: &Path) -> Result<RunMeta> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// What the training stage did.
struct Trained {
    reused: bool,
    steps: u64,
    seconds: f64,
    /// Trained with the unmodified edge preset (what `models/` holds).
    full_preset: bool,
}

fn train_stage(
    args: &RunArgs,
    run_dir: &Path,
    train_w: &HarWindows,
    cfg: &TrainConfig,
) -> Result<Trained> {
    let finished = run_dir.join(FINAL_MODEL_FILE).is_file();
    if finished && !args.retrain {
        let meta = read_meta(run_dir)?;
        println!(
            "reusing the finished model in {} ({} steps, preset {}); pass --retrain to train afresh",
            run_dir.display(),
            meta.train.total_iters(),
            meta.train.preset
        );
        if meta.train != *cfg {
            println!(
                "note: that run's configuration differs from the requested one ({} steps requested)",
                cfg.total_iters()
            );
        }
        return Ok(Trained {
            reused: true,
            steps: meta.train.total_iters(),
            seconds: 0.0,
            full_preset: meta.train == requested_config(None),
        });
    }
    if args.skip_train {
        bail!(
            "--skip-train: {} holds no finished model ({} missing)",
            run_dir.display(),
            FINAL_MODEL_FILE
        );
    }
    if args.retrain && run_dir.join(CONFIG_FILE).is_file() {
        println!(
            "--retrain: removing the previous run in {}",
            run_dir.display()
        );
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    let resume = checkpoint::find_latest(run_dir)?.is_some();
    let (data, input_scaling) = har_training_data(train_w, features())?;
    println!(
        "training {PRESET} (hidden {}, J {}, {} pseudo-inputs) on {} windows × {} inputs: {} steps, batch {}, device {}{}",
        cfg.model.hidden_dim,
        cfg.model.latent_dim,
        cfg.model.pseudo_inputs,
        data.rows,
        data.cols,
        cfg.total_iters(),
        cfg.batch_size,
        args.device,
        if resume {
            ", resuming from the latest checkpoint"
        } else {
            ""
        }
    );
    let opts = TrainOptions {
        device: device_from_name(&args.device)?,
        resume,
        progress: true,
        ..Default::default()
    };
    let started = Instant::now();
    let outcome = train(cfg, &data, input_scaling, run_dir, &opts)?;
    let seconds = started.elapsed().as_secs_f64();
    let steps_run = outcome.steps_done - outcome.resumed_from.unwrap_or(0);
    println!(
        "trained {steps_run} steps in {seconds:.1} s ({:.1} steps/s)",
        steps_run as f64 / seconds.max(1e-9)
    );
    if let Some(last) = &outcome.last {
        println!(
            "last step: ELBO {:.1}, recon {:.1}, KL {:.2}, mean γ {:.3}",
            last.elbo, last.recon_nll, last.kl, last.mean_gamma
        );
    }
    Ok(Trained {
        reused: false,
        steps: outcome.steps_done,
        seconds,
        full_preset: *cfg == requested_config(None),
    })
}

fn print_eval(m: &EvalMetrics) {
    println!(
        "test ELBO {:.2} nats/window (recon {:.2}, KL {:.2}) on {} test windows",
        m.test_elbo.elbo, m.test_elbo.recon_nll, m.test_elbo.kl, m.test_elbo.n_examples
    );
    println!(
        "active dims: {} of {} with mean γ > {}, {} used (on for ≥ {} % of windows), {:.2} active per window",
        m.active.n_active,
        m.latent_dim,
        m.active.mean_gamma_threshold,
        m.active.n_used,
        100.0 * m.active.min_on_fraction,
        m.active.mean_active_per_example
    );
    for p in &m.probes {
        println!(
            "linear probe on {:<14} test accuracy {:.2} % (train {:.2} %)",
            p.features,
            100.0 * p.test.accuracy,
            100.0 * p.train_accuracy
        );
    }
}

fn probe_accuracy(m: &EvalMetrics, features: &str) -> Option<f64> {
    m.probes
        .iter()
        .find(|p| p.features == features)
        .map(|p| p.test.accuracy)
}

/// int8-vs-f32 numbers of the summary, as `cargo xtask quantise` measured them.
struct Int8Check {
    spike_agreement: f64,
    probe_f32: f64,
    probe_int8: f64,
    /// The blob's activity head on the test windows, and the f64 probe it quantises.
    head: crate::activity::HeadReport,
    blob_bytes: usize,
    weight_bytes: usize,
}

/// What the firmware stage measured.
struct Firmware {
    flash_bytes: u64,
    ram_bytes: Option<u64>,
    device_frames: Vec<Frame>,
    host_frames: Vec<Frame>,
    rejected_chunks: u64,
}

impl Firmware {
    fn identical(&self) -> bool {
        self.rejected_chunks == 0
            && !self.host_frames.is_empty()
            && self.device_frames == self.host_frames
    }
}

fn firmware_stage(excerpt: &[u8], model: &Path, args: &RunArgs) -> Result<Firmware> {
    let qemu = firmware::run_qemu(args.qemu_timeout_s, &[])?;
    eprint!("{}", qemu.stderr);
    let stack = firmware::stack_from_log(&qemu.stderr);
    let sizes = firmware::check_sizes(model, stack)?;
    let (device_frames, rejected_chunks) = firmware::decode_frames(&qemu.stdout);
    let host_frames = firmware::host_frames(excerpt, model)?;
    let shown = args.show_frames.min(device_frames.len());
    println!(
        "decoded codes of the first {shown} of {} firmware frames (γ and μ of active dims):",
        device_frames.len()
    );
    firmware::print_frames(&device_frames[..shown]);
    Ok(Firmware {
        flash_bytes: sizes.text + sizes.data,
        ram_bytes: stack.map(|s| sizes.data + sizes.bss + s),
        device_frames,
        host_frames,
        rejected_chunks,
    })
}

/// Everything the summary shows.
struct Summary<'a> {
    run_dir: &'a Path,
    model: &'a Path,
    trained: &'a Trained,
    eval: &'a EvalMetrics,
    int8: &'a Int8Check,
    onnx_bytes: (u64, u64),
    fw: &'a Firmware,
    times: &'a [(&'static str, f64)],
}

fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

fn summary_table(s: &Summary<'_>) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    let e = s.eval;
    row(
        "model",
        format!(
            "{} ({} steps{}), {}",
            s.run_dir.display(),
            s.trained.steps,
            if s.trained.reused {
                ", reused".to_string()
            } else {
                format!(", trained in {:.0} s", s.trained.seconds)
            },
            s.model.display()
        ),
    );
    row(
        "test ELBO (nats/window)",
        format!(
            "{:.2} on {} windows",
            e.test_elbo.elbo, e.test_elbo.n_examples
        ),
    );
    row(
        "active dims (mean γ > 0.5 / used / per window)",
        format!(
            "{} / {} / {:.2} of J = {}",
            e.active.n_active, e.active.n_used, e.active.mean_active_per_example, e.latent_dim
        ),
    );
    let burn = |f: &str| probe_accuracy(e, f).map_or_else(|| "–".into(), pct);
    row(
        "probe accuracy burn: γ / sparse code / raw input",
        format!(
            "{} / {} / {}",
            burn("gamma"),
            burn("sparse_code"),
            burn(host_trainer::eval::pipeline::raw_probe_name(features()))
        ),
    );
    row(
        "probe accuracy sparse code: f32 / int8",
        format!(
            "{} / {} ({:+.2} points)",
            pct(s.int8.probe_f32),
            pct(s.int8.probe_int8),
            100.0 * (s.int8.probe_int8 - s.int8.probe_f32)
        ),
    );
    row(
        "activity head on the device: int8 / f64 probe",
        format!(
            "{} / {} (same class {})",
            pct(s.int8.head.head_accuracy),
            pct(s.int8.head.probe_accuracy),
            pct(s.int8.head.agreement)
        ),
    );
    row(
        "spike-bit agreement int8 vs f32 (test)",
        pct(s.int8.spike_agreement),
    );
    row(
        "blob bytes (int8 weights)",
        format!("{} ({})", s.int8.blob_bytes, s.int8.weight_bytes),
    );
    row(
        "ONNX bytes f32 / int8",
        format!("{} / {}", s.onnx_bytes.0, s.onnx_bytes.1),
    );
    row(
        "firmware flash / RAM (bytes)",
        format!(
            "{} / {}",
            s.fw.flash_bytes,
            s.fw.ram_bytes
                .map_or_else(|| "? (no stack line)".into(), |r| r.to_string())
        ),
    );
    row(
        "frames decoded == host frames",
        format!(
            "{} == {}: {}",
            s.fw.device_frames.len(),
            s.fw.host_frames.len(),
            if s.fw.identical() {
                "identical"
            } else {
                "MISMATCH"
            }
        ),
    );
    let total: f64 = s.times.iter().map(|(_, t)| t).sum();
    let times: Vec<String> = s
        .times
        .iter()
        .map(|(name, t)| format!("{name} {t:.0}"))
        .collect();
    row(
        "wall time (s)",
        format!("{total:.0} ({})", times.join(", ")),
    );
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &rows {
        let pad = width - k.chars().count();
        let _ = writeln!(out, "{k}{} : {v}", " ".repeat(pad));
    }
    out
}

/// `cargo xtask run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let job_started = Instant::now();
    // Relative paths (and those written into the model card) are from the workspace root.
    let root = workspace_root();
    std::env::set_current_dir(&root).with_context(|| format!("cd {}", root.display()))?;
    let run_dir = args.out.clone();
    let cfg = requested_config(args.steps);
    let mut stages = Stages {
        next: 0,
        times: Vec::new(),
    };

    let (data_dir, train_w, _) = stages.run("load HAR windows", "data", || {
        let dir = firmware::data_dir(args.data.as_deref())?;
        println!("data: {} (channels {})", dir.display(), channels());
        let (train_w, test_w) = load_har_windows(
            &dir,
            &WindowConfig {
                channels: channels(),
                include_transitions: false,
            },
        )?;
        println!(
            "{} training windows, {} test windows (UCI HAR subject split), {} samples each \
             → {} model inputs ({})",
            train_w.len(),
            test_w.len(),
            train_w.dim,
            features().input_dim(channels()),
            features().name()
        );
        Ok((dir, train_w, test_w))
    })?;

    let trained = stages.run("train (edge preset, CPU)", "train", || {
        train_stage(args, &run_dir, &train_w, &cfg)
    })?;

    let model_path = match &args.model {
        Some(path) => path.clone(),
        None if trained.full_preset => Path::new("models").join(format!("{PRESET}.vscq")),
        None => {
            println!(
                "note: not the full {PRESET} preset, so the blob goes to the run directory, not models/"
            );
            run_dir.join(format!("{PRESET}.vscq"))
        }
    };

    let eval = stages.run("evaluate", "eval", || {
        let m = evaluate_run(
            &run_dir,
            &EvalOptions {
                data_dir: Some(data_dir.clone()),
                ..Default::default()
            },
        )?;
        print_eval(&m);
        println!(
            "metrics.json and {} figures in {}",
            m.figures.len(),
            run_dir.display()
        );
        Ok(m)
    })?;

    let int8 = stages.run("quantise to int8", "quantise", || {
        let report = quantise::quantise(&QuantiseArgs {
            run_dir: run_dir.clone(),
            out: model_path.clone(),
            data: Some(data_dir.clone()),
            calibration_windows: 0,
            transitions: false,
            no_probe: false,
        })?;
        let probe = report
            .probe
            .context("quantise ran without the linear probe")?;
        Ok(Int8Check {
            spike_agreement: report.spike_agreement,
            probe_f32: probe.f32_accuracy,
            probe_int8: probe.int8_accuracy,
            head: report
                .activity
                .context("quantise ran without the activity head")?,
            blob_bytes: report.blob_bytes,
            weight_bytes: report.weight_bytes,
        })
    })?;

    // Beside the blob (models/edge.{f32,int8}.onnx for the committed model), so the
    // committed ONNX files and the card's ONNX section always belong to the committed blob.
    let onnx_prefix = model_path.with_extension("");
    let onnx_bytes = stages.run("export ONNX (f32 + int8)", "onnx", || {
        quantise::export_onnx(&ExportOnnxArgs {
            source: run_dir.clone(),
            out: onnx_prefix.clone(),
            blob: Some(model_path.clone()),
            data: Some(data_dir.clone()),
            transitions: false,
        })?;
        let size = |suffix: &str| -> Result<u64> {
            let p = onnx_prefix.with_extension(format!("{suffix}.onnx"));
            Ok(std::fs::metadata(&p)
                .with_context(|| p.display().to_string())?
                .len())
        };
        Ok((size("f32")?, size("int8")?))
    })?;

    let fw_args = FirmwareArgs {
        run: true,
        golden: false,
        data: Some(data_dir.clone()),
        model: Some(model_path.clone()),
        timeout_s: args.qemu_timeout_s,
    };
    let (excerpt, embedded) = stages.run(
        "build the firmware (thumbv7em-none-eabihf)",
        "firmware",
        || firmware::build(&fw_args),
    )?;
    let fw = stages.run(
        "run the firmware in QEMU (mps2-an386, Cortex-M4)",
        "qemu",
        || firmware_stage(&excerpt, &embedded, args),
    )?;

    let table = summary_table(&Summary {
        run_dir: &run_dir,
        model: &model_path,
        trained: &trained,
        eval: &eval,
        int8: &int8,
        onnx_bytes,
        fw: &fw,
        times: &stages.times,
    });
    println!("\n=== summary ===\n{table}");
    xtask::write_atomic(&run_dir.join("summary.txt"), table.as_bytes())?;
    println!(
        "main job done in {:.0} s; summary in {}",
        job_started.elapsed().as_secs_f64(),
        run_dir.join("summary.txt").display()
    );
    if !fw.identical() {
        let first = fw
            .device_frames
            .iter()
            .zip(&fw.host_frames)
            .position(|(d, h)| d != h);
        bail!(
            "the firmware's frames differ from the host's: {} vs {} frames, {} corrupt chunks, first differing frame {:?}",
            fw.device_frames.len(),
            fw.host_frames.len(),
            fw.rejected_chunks,
            first
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_line_is_parsed() {
        let log = "vsc-fw: start\nvsc-fw: stack used 2312 bytes (top 0x20400000, free RAM from 0x20001000)\n";
        assert_eq!(firmware::stack_from_log(log), Some(2312));
        assert_eq!(firmware::stack_from_log("nothing here"), None);
    }

    #[test]
    fn steps_override_keeps_the_preset_shape() {
        let cfg = requested_config(Some(400));
        assert_eq!(cfg.total_iters(), 400);
        assert_eq!(cfg.preset, PRESET);
        assert_eq!(cfg.model.input_dim, features().input_dim(channels()));
        assert_eq!(requested_config(None), TrainConfig::edge(297));
    }
}
