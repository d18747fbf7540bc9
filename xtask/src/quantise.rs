//! `cargo xtask quantise RUN_DIR --out models/NAME.vscq` (int8 blob + model card) and
//! `cargo xtask export-onnx RUN_DIR|BLOB --out models/NAME` (f32 and int8 ONNX).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use edge_runtime::F32Encoder;
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::{Encoder, IntTrace, SparseCode};
use edge_runtime::preprocess::{HOP_LEN, SAMPLE_RATE_HZ, WINDOW_LEN};
use edge_runtime::quant::QuantParams;
use host_trainer::data::{HarWindows, WindowConfig, load_har_windows, resolve_data_dir};
use host_trainer::eval::probe::{ProbeConfig, run_probe};
use host_trainer::train::TrainedModel;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::activity;
use crate::onnx::{self, TractModel};

/// γ threshold of an active dimension (as `host_trainer::api::SPIKE_THRESHOLD`).
const SPIKE_THRESHOLD: f32 = 0.5;
/// Windows per tract batch in the parity checks.
const PARITY_BATCH: usize = 256;

/// Options of `cargo xtask quantise`.
#[derive(Debug, Args)]
pub struct QuantiseArgs {
    /// Training run directory (config.toml + model.bpk).
    pub run_dir: PathBuf,
    /// Blob to write (`models/NAME.vscq`); the model card goes beside it as `NAME.md`.
    #[arg(long)]
    pub out: PathBuf,
    /// Data directory or zip (default: $VSC_DATA_DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Calibration windows, taken evenly spaced from the training split (0 = all).
    #[arg(long, default_value_t = 0)]
    pub calibration_windows: usize,
    /// Windows include postural transitions (labels 7..=12), as `vsc train --transitions`.
    #[arg(long)]
    pub transitions: bool,
    /// Skip the linear probes (int8 vs f32 sparse codes) and the activity head.
    #[arg(long)]
    pub no_probe: bool,
}

/// Options of `cargo xtask export-onnx`.
#[derive(Debug, Args)]
pub struct ExportOnnxArgs {
    /// A training run directory, or a model blob (`.vscq`).
    pub source: PathBuf,
    /// Output prefix: writes `PREFIX.f32.onnx` and `PREFIX.int8.onnx`.
    #[arg(long)]
    pub out: PathBuf,
    /// For a run directory: the int8 model from this blob instead of quantising afresh.
    #[arg(long)]
    pub blob: Option<PathBuf>,
    /// Data directory or zip, to calibrate a run directory without `--blob`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// See `quantise --transitions`.
    #[arg(long)]
    pub transitions: bool,
}

use xtask::write_atomic;

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn bar(len: usize, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg.to_string());
    pb
}

/// A trained run, its f32 encoder and its HAR windows.
struct LoadedRun {
    trained: TrainedModel,
    encoder: F32Encoder,
    train: HarWindows,
    test: HarWindows,
    window_config: WindowConfig,
}

fn load_run(run_dir: &Path, data: Option<&Path>, transitions: bool) -> Result<LoadedRun> {
    let trained = TrainedModel::open(run_dir)
        .with_context(|| format!("opening training run {}", run_dir.display()))?;
    let encoder = trained.to_f32_encoder().with_context(|| {
        format!(
            "run {} is not an int8-exportable HAR model",
            run_dir.display()
        )
    })?;
    encoder.validate().context("exported f32 encoder")?;
    let data_dir = resolve_data_dir(data)?;
    let window_config = WindowConfig {
        channels: encoder.channels,
        include_transitions: transitions,
    };
    let pb = spinner(&format!("loading HAR windows from {}", data_dir.display()));
    let (train, test) = load_har_windows(&data_dir, &window_config)?;
    pb.finish_and_clear();
    if train.dim != encoder.window_dim() {
        bail!(
            "windows have {} values, the model expects {}",
            train.dim,
            encoder.window_dim()
        );
    }
    Ok(LoadedRun {
        trained,
        encoder,
        train,
        test,
        window_config,
    })
}

/// `count` windows evenly spaced over `w` (all of them for 0 or ≥ len).
fn calibration_set(w: &HarWindows, count: usize) -> Vec<&[f32]> {
    let n = w.len();
    let count = if count == 0 || count >= n { n } else { count };
    (0..count).map(|i| w.window(i * n / count)).collect()
}

/// Sparse codes μ ⊙ 1[γ > ½] of every window, by the f32 reference and the int8 encoder.
struct CodePair {
    rows: usize,
    latent_dim: usize,
    f32_code: Vec<f32>,
    f32_spike: Vec<bool>,
    f32_gamma: Vec<f32>,
    int8_code: Vec<f32>,
    int8_spike: Vec<bool>,
    int8_gamma: Vec<f32>,
}

fn encode_both(enc: &F32Encoder, blob: &ModelBlob<'_>, w: &HarWindows, msg: &str) -> CodePair {
    let j = enc.latent_dim;
    let int8 = Encoder::new(*blob);
    let mut out = CodePair {
        rows: w.len(),
        latent_dim: j,
        f32_code: Vec::with_capacity(w.len() * j),
        f32_spike: Vec::with_capacity(w.len() * j),
        f32_gamma: Vec::with_capacity(w.len() * j),
        int8_code: Vec::with_capacity(w.len() * j),
        int8_spike: Vec::with_capacity(w.len() * j),
        int8_gamma: Vec::with_capacity(w.len() * j),
    };
    let pb = bar(w.len(), msg);
    let mut code = SparseCode::default();
    for i in 0..w.len() {
        let x = w.window(i);
        let (mu, _, log_gamma) = enc.forward(x);
        for (m, lg) in mu.iter().zip(&log_gamma) {
            let g = lg.exp();
            let on = g > SPIKE_THRESHOLD;
            out.f32_spike.push(on);
            out.f32_gamma.push(g);
            out.f32_code.push(if on { *m } else { 0.0 });
        }
        if int8.encode(x, &mut code).is_err() {
            // Non-finite raw data: count as all-inactive (never seen in HAPT).
            code = SparseCode::EMPTY;
        }
        for k in 0..j {
            out.int8_spike.push(code.is_active(k));
            out.int8_gamma.push(code.gamma(k));
            out.int8_code.push(code.mu(k));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    out
}

/// int8-vs-f32 agreement on one split.
#[derive(Debug)]
struct Agreement {
    windows: usize,
    spike_agreement: f64,
    active_f32: f64,
    active_int8: f64,
    /// Pearson correlation of μ over (window, dim) pairs active in both.
    active_mu_corr: f64,
    active_pairs: usize,
    /// Mean |γ_int8 − γ_f32| over the same pairs.
    gamma_mae: f64,
}

fn agreement(c: &CodePair) -> Agreement {
    let total = c.f32_spike.len().max(1);
    let same = c
        .f32_spike
        .iter()
        .zip(&c.int8_spike)
        .filter(|(a, b)| a == b)
        .count();
    let (mut n, mut sx, mut sy, mut sxx, mut syy, mut sxy, mut gerr) =
        (0usize, 0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for i in 0..c.f32_spike.len() {
        if c.f32_spike[i] && c.int8_spike[i] {
            let (x, y) = (c.f32_code[i] as f64, c.int8_code[i] as f64);
            n += 1;
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
            gerr += (c.f32_gamma[i] - c.int8_gamma[i]).abs() as f64;
        }
    }
    let nf = n.max(1) as f64;
    let cov = sxy / nf - (sx / nf) * (sy / nf);
    let vx = sxx / nf - (sx / nf).powi(2);
    let vy = syy / nf - (sy / nf).powi(2);
    let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / c.rows.max(1) as f64;
    Agreement {
        windows: c.rows,
        spike_agreement: same as f64 / total as f64,
        active_f32: count(&c.f32_spike),
        active_int8: count(&c.int8_spike),
        active_mu_corr: cov / (vx * vy).sqrt(),
        active_pairs: n,
        gamma_mae: gerr / nf,
    }
}

/// Test accuracy of a linear probe on sparse codes, f32 and int8.
pub struct ProbeNumbers {
    pub f32_accuracy: f64,
    pub int8_accuracy: f64,
}

/// What `quantise` measured, for callers that report it (the main job's summary).
pub struct QuantiseReport {
    /// Spike-bit agreement int8 vs f32 on the test windows.
    pub spike_agreement: f64,
    /// Linear-probe test accuracy on both sparse codes (absent with `--no-probe`).
    pub probe: Option<ProbeNumbers>,
    pub blob_bytes: usize,
    pub weight_bytes: usize,
    /// The activity head's measurements (absent with `--no-probe`).
    pub activity: Option<activity::HeadReport>,
}

fn probes(
    train: &CodePair,
    train_w: &HarWindows,
    test: &CodePair,
    test_w: &HarWindows,
    n_classes: usize,
) -> Result<ProbeNumbers> {
    let labels = |w: &HarWindows| -> Vec<usize> {
        w.labels
            .iter()
            .map(|&l| usize::from(l.saturating_sub(1)))
            .collect()
    };
    let (ytr, yte) = (labels(train_w), labels(test_w));
    let cfg = ProbeConfig::default();
    let pb = spinner("fitting linear probes (f32, int8)");
    let j = train.latent_dim;
    let f = run_probe(
        "sparse_code_f32",
        &train.f32_code,
        &ytr,
        &test.f32_code,
        &yte,
        j,
        n_classes,
        &cfg,
    )?;
    let q = run_probe(
        "sparse_code_int8",
        &train.int8_code,
        &ytr,
        &test.int8_code,
        &yte,
        j,
        n_classes,
        &cfg,
    )?;
    pb.finish_and_clear();
    Ok(ProbeNumbers {
        f32_accuracy: f.test.accuracy,
        int8_accuracy: q.test.accuracy,
    })
}

/// Result of running the int8 ONNX export in tract against the edge-runtime encoder.
#[derive(Debug)]
pub struct Int8Parity {
    pub windows: usize,
    /// Windows whose every integer output (and the f32 μ, γ views) matched bit for bit.
    pub identical: usize,
    /// Index of the first window that did not.
    pub first_mismatch: Option<usize>,
}

/// Runs `int8_onnx` in tract on raw `windows` (row-major, channels × `window_len` each;
/// the graph gets their model inputs) and compares every output with
/// `edge_runtime::encoder::Encoder::encode_traced` on the windows.
pub fn int8_parity(int8_onnx: &[u8], blob: &ModelBlob<'_>, windows: &[f32]) -> Result<Int8Parity> {
    let (m, h, j) = (blob.input_dim(), blob.hidden_dim(), blob.latent_dim());
    let wd = blob.window_dim();
    let n = windows.len() / wd;
    let inputs = onnx::model_inputs(blob.features(), blob.channels(), wd, windows)?;
    let enc = Encoder::new(*blob);
    let mut identical = 0usize;
    let mut first_mismatch = None;
    let pb = bar(n, "tract int8 vs edge-runtime");
    let mut models: Vec<(usize, TractModel)> = Vec::new();
    for (chunk_index, chunk) in inputs.chunks(PARITY_BATCH * m).enumerate() {
        let b = chunk.len() / m;
        let raw = &windows[chunk_index * PARITY_BATCH * wd..][..b * wd];
        let model = match models.iter().find(|(size, _)| *size == b) {
            Some((_, model)) => model.clone(),
            None => {
                let model = TractModel::load(int8_onnx, b, m)?;
                models.push((b, model.clone()));
                model
            }
        };
        let out = model.run(chunk)?;
        let spike: Vec<bool> = onnx::values(&out[0])?;
        let gamma_q15: Vec<i16> = onnx::values(&out[1])?;
        let mu_q: Vec<i16> = onnx::values(&out[2])?;
        let gamma: Vec<f32> = onnx::values(&out[3])?;
        let mu: Vec<f32> = onnx::values(&out[4])?;
        let x_q: Vec<u8> = onnx::values(&out[5])?;
        let hidden_acc: Vec<i32> = onnx::values(&out[6])?;
        let h_q: Vec<u8> = onnx::values(&out[7])?;
        let mu_acc: Vec<i32> = onnx::values(&out[8])?;
        let gamma_acc: Vec<i32> = onnx::values(&out[9])?;
        let mut code = SparseCode::default();
        let mut trace = IntTrace::default();
        for r in 0..b {
            let x = &raw[r * wd..(r + 1) * wd];
            if enc.encode_traced(x, &mut code, &mut trace).is_err() {
                // Rejected by the device (non-finite value): nothing to compare.
                first_mismatch.get_or_insert(chunk_index * PARITY_BATCH + r);
                pb.inc(1);
                continue;
            }
            let (jr, hr, mr) = (r * j..(r + 1) * j, r * h..(r + 1) * h, r * m..(r + 1) * m);
            let same = trace.x_q[..m] == x_q[mr]
                && trace.hidden_acc[..h] == hidden_acc[hr.clone()]
                && trace.h_q[..h] == h_q[hr]
                && trace.mu_acc[..j] == mu_acc[jr.clone()]
                && trace.gamma_acc[..j] == gamma_acc[jr.clone()]
                && (0..j).all(|k| {
                    let i = r * j + k;
                    spike[i] == code.is_active(k)
                        && gamma_q15[i] == code.gamma_q15[k]
                        && mu_q[i] == code.mu_q[k]
                        && gamma[i].to_bits() == code.gamma(k).to_bits()
                        && mu[i].to_bits() == code.mu(k).to_bits()
                });
            if same {
                identical += 1;
            } else {
                first_mismatch.get_or_insert(chunk_index * PARITY_BATCH + r);
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(Int8Parity {
        windows: n,
        identical,
        first_mismatch,
    })
}

/// Max |tract − reference| over μ, log σ², log γ of the f32 export on raw `windows`.
pub fn f32_parity(f32_onnx: &[u8], enc: &F32Encoder, windows: &[f32]) -> Result<f32> {
    let (m, wd) = (enc.input_dim, enc.window_dim());
    let inputs = onnx::model_inputs(enc.features, enc.channels, wd, windows)?;
    let mut worst = 0f32;
    let pb = bar(windows.len() / wd, "tract f32 vs reference");
    for (chunk, raw) in inputs
        .chunks(PARITY_BATCH * m)
        .zip(windows.chunks(PARITY_BATCH * wd))
    {
        let b = chunk.len() / m;
        let out = TractModel::load(f32_onnx, b, m)?.run(chunk)?;
        let got: Vec<Vec<f32>> = out.iter().map(onnx::values::<f32>).collect::<Result<_>>()?;
        for (r, x) in raw.chunks_exact(wd).enumerate() {
            let (mu, logvar, log_gamma) = enc.forward(x);
            for (k, want) in [mu, logvar, log_gamma].iter().enumerate() {
                let row = &got[k][r * want.len()..(r + 1) * want.len()];
                for (a, b) in row.iter().zip(want) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
        pb.inc(b as u64);
    }
    pb.finish_and_clear();
    Ok(worst)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

fn pass(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// `cargo xtask quantise`.
pub fn quantise(args: &QuantiseArgs) -> Result<QuantiseReport> {
    let run = load_run(&args.run_dir, args.data.as_deref(), args.transitions)?;
    let enc = &run.encoder;
    let calib = calibration_set(&run.train, args.calibration_windows);
    let pb = spinner(&format!("calibrating on {} training windows", calib.len()));
    let params = QuantParams::calibrate(enc, &calib)
        .map_err(|e| anyhow::anyhow!("quantising {}: {e}", args.run_dir.display()))?;
    let blob_bytes = params
        .to_blob()
        .map_err(|e| anyhow::anyhow!("writing the blob: {e}"))?;
    pb.finish_and_clear();
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("blob: {e}"))?;

    let test_codes = encode_both(enc, &blob, &run.test, "encoding test windows");
    let test_agree = agreement(&test_codes);
    let probe = if args.no_probe {
        None
    } else {
        let train_codes = encode_both(enc, &blob, &run.train, "encoding train windows");
        Some(probes(
            &train_codes,
            &run.train,
            &test_codes,
            &run.test,
            usize::from(run.window_config.max_label()),
        )?)
    };
    let int8_onnx = onnx::to_bytes(&onnx::int8_model(&params)?);
    let parity = int8_parity(&int8_onnx, &blob, &run.test.x)?;
    let f32_onnx = onnx::to_bytes(&onnx::f32_model(enc)?);
    let f32_diff = f32_parity(&f32_onnx, enc, &run.test.x)?;
    // The activity head changes nothing the ONNX parity above compares: it only adds a
    // section after the encoder's layers.
    let head = if args.no_probe {
        None
    } else {
        let pb = spinner("fitting the activity head on the int8 codes");
        let head = activity::fit_head(
            &blob_bytes,
            &run.train,
            &run.test,
            usize::from(run.window_config.max_label()),
        )?;
        pb.finish_and_clear();
        Some(head)
    };
    let blob_bytes = head.as_ref().map_or(blob_bytes.clone(), |(b, _)| b.clone());

    write_atomic(&args.out, &blob_bytes)?;
    let card_path = args.out.with_extension("md");
    let card = model_card(&ModelCardInput {
        args,
        run: &run,
        params: &params,
        blob_bytes: &blob_bytes,
        calibration_windows: calib.len(),
        test: &test_agree,
        probe: probe.as_ref(),
        parity: &parity,
        f32_onnx_max_diff: f32_diff,
    });
    let card = match &head {
        Some((_, report)) => xtask::card::with_section(
            &card,
            "## Activity head",
            &report.card_section(&format!(
                "cargo xtask quantise {} --out {}",
                args.run_dir.display(),
                args.out.display()
            )),
        ),
        None => card,
    };
    write_atomic(&card_path, card.as_bytes())?;

    println!(
        "wrote {} ({} bytes, {} weight bytes, sha256 {}) and {}",
        args.out.display(),
        blob_bytes.len(),
        params.weight_bytes(),
        sha256_hex(&blob_bytes),
        card_path.display()
    );
    println!(
        "int8 vs f32 on {} test windows: spike-bit agreement {}, active-μ correlation {:.4}, active dims {:.2} (f32) / {:.2} (int8)",
        test_agree.windows,
        pct(test_agree.spike_agreement),
        test_agree.active_mu_corr,
        test_agree.active_f32,
        test_agree.active_int8
    );
    if let Some(p) = &probe {
        println!(
            "linear probe test accuracy: f32 {}, int8 {} (difference {:+.2} points)",
            pct(p.f32_accuracy),
            pct(p.int8_accuracy),
            100.0 * (p.int8_accuracy - p.f32_accuracy)
        );
    }
    if let Some((_, report)) = &head {
        println!("{}", report.summary());
    }
    println!(
        "tract int8 ONNX vs edge-runtime: {}/{} test windows bit-identical{}; tract f32 ONNX vs f32 reference: max abs diff {:.2e}",
        parity.identical,
        parity.windows,
        parity
            .first_mismatch
            .map_or_else(String::new, |w| format!(" (first mismatch: window {w})")),
        f32_diff
    );
    Ok(QuantiseReport {
        spike_agreement: test_agree.spike_agreement,
        probe,
        blob_bytes: blob_bytes.len(),
        weight_bytes: params.weight_bytes(),
        activity: head.map(|(_, report)| report),
    })
}

struct ModelCardInput<'a> {
    args: &'a QuantiseArgs,
    run: &'a LoadedRun,
    params: &'a QuantParams,
    blob_bytes: &'a [u8],
    calibration_windows: usize,
    test: &'a Agreement,
    probe: Option<&'a ProbeNumbers>,
    parity: &'a Int8Parity,
    f32_onnx_max_diff: f32,
}

fn model_card(c: &ModelCardInput<'_>) -> String {
    let name = c
        .args
        .out
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let file_name = c
        .args
        .out
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let p = c.params;
    let meta = &c.run.trained.meta;
    let model_toml = toml::to_string(&meta.train).unwrap_or_else(|e| format!("# {e}\n"));
    let channels: Vec<String> = p.channels.iter().map(|ch| format!("{ch:?}")).collect();
    let t = c.test;
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: {name}\n");
    let _ = writeln!(
        s,
        "int8 VSC encoder for the edge runtime (`edge_runtime::blob` format), quantised from \
         a trained `host-trainer` run by `cargo xtask quantise`.\n"
    );
    let _ = writeln!(s, "## Blob\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| file | `{file_name}` |");
    let _ = writeln!(s, "| size | {} bytes |", c.blob_bytes.len());
    let _ = writeln!(s, "| sha256 | `{}` |", sha256_hex(c.blob_bytes));
    let _ = writeln!(
        s,
        "| format version | {} |",
        edge_runtime::blob::FORMAT_VERSION
    );
    let _ = writeln!(
        s,
        "| int8 weight bytes | {} (hidden {}×{}, μ and γ heads {}×{} each) |",
        p.weight_bytes(),
        p.hidden_dim,
        p.input_dim,
        p.latent_dim,
        p.hidden_dim
    );
    let _ = writeln!(
        s,
        "| topology | {} inputs ({} channels × {} {} values, from {}-sample windows) → {} ReLU → J = {} |",
        p.input_dim,
        p.channels.len(),
        p.input_dim / p.channels.len().max(1),
        p.features.name(),
        p.window_len,
        p.hidden_dim,
        p.latent_dim
    );
    let _ = writeln!(
        s,
        "| spike head | {} (γ > ½ where v > {:.4}) |",
        p.spike_head.name(),
        p.spike_head.half_point()
    );
    let _ = writeln!(
        s,
        "| scales | input 1/255, hidden {:.6e}, μ {:.6e}, v 2⁻¹⁶; per-output-channel symmetric int8 weights |\n",
        p.hidden_scale, p.mu_scale
    );
    let _ = writeln!(s, "## Data\n");
    let _ = writeln!(
        s,
        "- HAPT raw recordings (UCI id 341), windows of {WINDOW_LEN} samples at {SAMPLE_RATE_HZ} Hz, hop {HOP_LEN}, cut by `edge_runtime::preprocess` (the device's own code)."
    );
    let _ = writeln!(
        s,
        "- Channels: {} (bits {:#05x}); activities 1..={}{}.",
        channels.join(", "),
        p.channels.bits(),
        c.run.window_config.max_label(),
        if c.run.window_config.include_transitions {
            " (with postural transitions)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "- UCI HAR subject split: {} training windows, {} test windows.",
        c.run.train.len(),
        c.run.test.len()
    );
    let _ = writeln!(
        s,
        "- Calibration: {} training windows (activation ranges of the f32 encoder).",
        c.calibration_windows
    );
    if meta.train_rows != c.run.train.len() {
        let _ = writeln!(
            s,
            "- Note: the run was trained on {} rows, these windows are {} (different window options?).",
            meta.train_rows,
            c.run.train.len()
        );
    }
    let _ = writeln!(s, "\n## Training run\n");
    let _ = writeln!(s, "- Run directory: `{}`", c.args.run_dir.display());
    let _ = writeln!(s, "- Training rows: {}\n", meta.train_rows);
    let _ = writeln!(s, "```toml\n{}```\n", model_toml);
    let _ = writeln!(
        s,
        "## Accuracy: int8 vs f32 on the {} HAR test windows\n",
        t.windows
    );
    let _ = writeln!(s, "| metric | value | goal | met |\n|---|---|---|---|");
    let _ = writeln!(
        s,
        "| spike-bit agreement (γ > ½) | {} | ≥ 99 % | {} |",
        pct(t.spike_agreement),
        pass(t.spike_agreement >= 0.99)
    );
    let _ = writeln!(
        s,
        "| correlation of μ on dims active in both ({} pairs) | {:.5} | ≥ 0.99 | {} |",
        t.active_pairs,
        t.active_mu_corr,
        pass(t.active_mu_corr >= 0.99)
    );
    if let Some(pr) = c.probe {
        let diff = 100.0 * (pr.int8_accuracy - pr.f32_accuracy);
        let _ = writeln!(
            s,
            "| linear-probe test accuracy on sparse codes μ ⊙ 1[γ > ½]: f32 {} / int8 {} | {:+.2} points | within 1 point | {} |",
            pct(pr.f32_accuracy),
            pct(pr.int8_accuracy),
            diff,
            pass(diff.abs() <= 1.0)
        );
    } else {
        let _ = writeln!(
            s,
            "| linear probe | not run (`--no-probe`) | within 1 point | – |"
        );
    }
    let _ = writeln!(
        s,
        "| mean active dims per window, f32 / int8 | {:.2} / {:.2} | | |",
        t.active_f32, t.active_int8
    );
    let _ = writeln!(
        s,
        "| mean abs γ error on dims active in both | {:.2e} | | |\n",
        t.gamma_mae
    );
    let _ = writeln!(s, "## ONNX parity (test windows)\n");
    let _ = writeln!(
        s,
        "- int8 ONNX export run in tract vs `edge_runtime::encoder`: {}/{} windows bit-identical \
         (input codes, all int32 accumulators, requantised hidden layer, spike bits, γ Q15, μ int16).",
        c.parity.identical, c.parity.windows
    );
    let _ = writeln!(
        s,
        "- f32 ONNX export run in tract vs `edge_runtime::F32Encoder`: max abs difference {:.2e} (goal ≤ 1e-4).\n",
        c.f32_onnx_max_diff
    );
    let _ = writeln!(s, "## Reproduce\n");
    let mut cmd = format!(
        "cargo xtask quantise {} --out {}",
        c.args.run_dir.display(),
        c.args.out.display()
    );
    if c.args.calibration_windows > 0 {
        let _ = write!(cmd, " --calibration-windows {}", c.args.calibration_windows);
    }
    if c.args.transitions {
        cmd.push_str(" --transitions");
    }
    let _ = writeln!(s, "```sh\n{cmd}\n```");
    s
}

/// `PREFIX.f32.onnx` / `PREFIX.int8.onnx`.
fn onnx_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let name = prefix
        .file_name()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    (
        prefix.with_file_name(format!("{name}.f32.onnx")),
        prefix.with_file_name(format!("{name}.int8.onnx")),
    )
}

/// `cargo xtask export-onnx`.
pub fn export_onnx(args: &ExportOnnxArgs) -> Result<()> {
    let (f32_path, int8_path) = onnx_paths(&args.out);
    let (encoder, blob_bytes, from_blob) = if args.source.is_dir() {
        let trained = TrainedModel::open(&args.source)
            .with_context(|| format!("opening training run {}", args.source.display()))?;
        let encoder = trained.to_f32_encoder()?;
        let blob_bytes = match &args.blob {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            }
            None => {
                let run = load_run(&args.source, args.data.as_deref(), args.transitions)?;
                let calib = calibration_set(&run.train, 0);
                edge_runtime::quant::quantise(&encoder, &calib)
                    .map_err(|e| anyhow::anyhow!("quantising: {e}"))?
            }
        };
        (encoder, blob_bytes, false)
    } else {
        let blob_bytes = std::fs::read(&args.source)
            .with_context(|| format!("reading {}", args.source.display()))?;
        let blob = ModelBlob::parse(&blob_bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.source.display()))?;
        let encoder = onnx::bench::dequantised_encoder(&QuantParams::from_blob(&blob));
        (encoder, blob_bytes, true)
    };
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("blob: {e}"))?;
    let params = QuantParams::from_blob(&blob);
    if params.input_dim != encoder.input_dim || params.latent_dim != encoder.latent_dim {
        bail!("the blob and the run have different shapes");
    }
    let mut f32_model = onnx::f32_model(&encoder)?;
    if from_blob {
        f32_model.doc_string = "VSC encoder (f32) rebuilt from an int8 blob: weights are the \
            dequantised int8 weights; the blob has no log-variance head, so `logvar` is 0"
            .into();
        eprintln!(
            "note: {} is built from the blob's dequantised weights (logvar output is 0); \
             export from the run directory for the trained f32 weights",
            f32_path.display()
        );
    }
    let f32_onnx = onnx::to_bytes(&f32_model);
    let int8_onnx = onnx::to_bytes(&onnx::int8_model(&params)?);

    // Both files must load and run in tract and agree with the Rust encoders.
    let windows = onnx::bench::walk_windows_for(
        &onnx::bench::window_ranges(&params),
        params.window_len,
        64,
        0x5eed,
    );
    let f32_diff = f32_parity(&f32_onnx, &encoder, &windows)?;
    let parity = int8_parity(&int8_onnx, &blob, &windows)?;
    if f32_diff > 1e-4 || parity.identical != parity.windows {
        bail!(
            "export check failed: f32 max abs diff {f32_diff:e}, int8 {}/{} windows identical (first mismatch {:?})",
            parity.identical,
            parity.windows,
            parity.first_mismatch
        );
    }
    write_atomic(&f32_path, &f32_onnx)?;
    write_atomic(&int8_path, &int8_onnx)?;
    update_card(
        args,
        &params,
        &[&f32_onnx, &int8_onnx],
        from_blob,
        f32_diff,
        &parity,
    )?;
    println!(
        "wrote {} ({} bytes) and {} ({} bytes); checked in tract on {} windows: f32 max abs diff {:.2e}, int8 bit-identical",
        f32_path.display(),
        f32_onnx.len(),
        int8_path.display(),
        int8_onnx.len(),
        parity.windows,
        f32_diff
    );
    Ok(())
}

/// Rewrites the ONNX section of the model card beside the files (`PREFIX.md`, written by
/// `quantise`), if there is one: file sizes, sha256, how they were made and checked.
fn update_card(
    args: &ExportOnnxArgs,
    params: &QuantParams,
    [f32_onnx, int8_onnx]: &[&[u8]; 2],
    from_blob: bool,
    f32_diff: f32,
    parity: &Int8Parity,
) -> Result<()> {
    let (f32_path, int8_path) = onnx_paths(&args.out);
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let card_path = args.out.with_file_name(format!("{}.md", name(&args.out)));
    if !card_path.exists() {
        return Ok(());
    }
    let card = std::fs::read_to_string(&card_path)
        .with_context(|| format!("reading {}", card_path.display()))?;
    let mut command = format!("cargo xtask export-onnx {}", args.source.display());
    if let Some(blob) = &args.blob {
        let _ = write!(command, " --blob {}", blob.display());
    }
    if args.transitions {
        command.push_str(" --transitions");
    }
    let _ = write!(command, " --out {}", args.out.display());
    let f32_contents = if from_blob {
        "f32 encoder rebuilt from the blob's dequantised int8 weights (`logvar` is 0)"
    } else {
        "f32 encoder of the training run"
    };
    let files = [
        onnx::CardFile {
            file_name: name(&f32_path),
            bytes: f32_onnx,
            contents: format!("{f32_contents}: `{}`", onnx::F32_OUTPUTS.join("`, `")),
        },
        onnx::CardFile {
            file_name: name(&int8_path),
            bytes: int8_onnx,
            contents: format!(
                "integer-only int8 encoder, bit-identical to edge-runtime: `{}`",
                onnx::INT8_OUTPUTS.join("`, `")
            ),
        },
    ];
    let tract = format!(
        "{} synthetic windows, f32 max abs diff {f32_diff:.2e}, int8 {}/{} bit-identical",
        parity.windows, parity.identical, parity.windows
    );
    let section = onnx::card_section(
        &command,
        &onnx::input_description(params),
        &files,
        &tract,
        &args.out.display().to_string(),
    );
    write_atomic(
        &card_path,
        onnx::with_card_section(&card, &section).as_bytes(),
    )?;
    println!("updated the ONNX section of {}", card_path.display());
    Ok(())
}
