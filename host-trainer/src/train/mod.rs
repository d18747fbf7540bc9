//! Training loop (Adam, seeded, spike warm-up, LR drop), atomic checkpoints with bit-identical
//! resume on flex, metrics.csv, and loading trained runs ([`TrainedModel`]).

pub mod adam;
mod awake;
pub mod bench;
pub mod checkpoint;
pub mod metrics;
pub mod trained;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::model::{
    LossParts, ModelKind, PriorKind, SparsityTarget, StepNoise, TrainConfig, VscNet,
};
pub use crate::scaling::{ChannelScaling, InputScaling};
use adam::FusedAdam;
pub use bench::{BENCH_SHAPES, BenchResult, BenchShape, bench_train};
use checkpoint::{CheckpointState, RngState};
use metrics::{MetricsWriter, StepMetrics};
pub use trained::{Codes, EvalSummary, PriorSelection, TrainedModel};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.toml";
pub const FINAL_MODEL_FILE: &str = "model.bpk";

/// Training matrix: `rows × cols`, row-major, every value already in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainData {
    pub x01: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl TrainData {
    /// Checks the shape and range.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.rows == 0 || self.cols == 0 || self.x01.len() != self.rows * self.cols {
            return Err(TrainError::BadData(format!(
                "expected rows × cols = {} × {} values, got {}",
                self.rows,
                self.cols,
                self.x01.len()
            )));
        }
        if let Some(i) = self
            .x01
            .iter()
            .position(|v| !v.is_finite() || *v < 0.0 || *v > 1.0)
        {
            return Err(TrainError::BadData(format!(
                "value {} at row {}, column {} is not in [0, 1]",
                self.x01[i],
                i / self.cols,
                i % self.cols
            )));
        }
        Ok(())
    }
}

/// What `RUN_DIR/config.toml` holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunMeta {
    pub train: TrainConfig,
    pub scaling: InputScaling,
    /// Rows of the training matrix (N of the β-TCVAE estimator).
    pub train_rows: usize,
}

/// Options that do not change the result of a run.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Device to train on; autodiff is enabled on it by `train`.
    pub device: Device,
    /// Continue from the latest checkpoint in the run directory.
    pub resume: bool,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Stop (as if killed) once this many steps are done, after any checkpoint due then.
    pub stop_after_steps: Option<u64>,
    /// Test hook: make the loss NaN at this step.
    pub inject_nan_at_step: Option<u64>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            device: Device::flex(),
            resume: false,
            progress: false,
            stop_after_steps: None,
            inject_nan_at_step: None,
        }
    }
}

/// Result of [`train`].
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    /// Steps completed (equals `total_iters` unless stopped early).
    pub steps_done: u64,
    /// Step training resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Metrics of the last step.
    pub last: Option<StepMetrics>,
    /// True when the final model file was written.
    pub finished: bool,
    /// Wall time of the steps after this run's first one (which also pays for first-use
    /// allocations), up to the last step; excludes the final save. 0 for runs of ≤ 1 step.
    pub seconds_after_first_step: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad file {path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("bad training data: {0}")]
    BadData(String),
    #[error("bad configuration: {0}")]
    BadConfig(String),
    #[error(
        "loss became {value} at step {step}; training stopped. Last good checkpoint: {}",
        last_checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into())
    )]
    NonFinite {
        step: u64,
        value: f32,
        last_checkpoint: Option<PathBuf>,
    },
    #[error("{path}: burn record error: {msg}")]
    Record { path: PathBuf, msg: String },
    #[error(
        "--resume: the configuration in {path} differs from the requested one; use a new run directory or the same preset/flags"
    )]
    ConfigMismatch { path: PathBuf },
    #[error("unknown device {0:?}: expected flex, ndarray, wgpu or cuda")]
    UnknownDevice(String),
    #[error("device {0:?} needs host-trainer to be built with the `{0}` feature")]
    DeviceNotCompiled(String),
}

/// Device by name: `flex` (CPU), `ndarray` (CPU, OpenBLAS), `wgpu`, `cuda` (the last three
/// behind cargo features of the same name).
pub fn device_from_name(name: &str) -> Result<Device, TrainError> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            {
                Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
            }
            #[cfg(not(feature = "wgpu"))]
            {
                Err(TrainError::DeviceNotCompiled("wgpu".into()))
            }
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(0))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(TrainError::DeviceNotCompiled("cuda".into()))
            }
        }
        "ndarray" => {
            #[cfg(feature = "ndarray")]
            {
                // Deprecated upstream in favour of flex; kept so users can measure both.
                #[allow(deprecated)]
                Ok(Device::ndarray())
            }
            #[cfg(not(feature = "ndarray"))]
            {
                Err(TrainError::DeviceNotCompiled("ndarray".into()))
            }
        }
        other => Err(TrainError::UnknownDevice(other.into())),
    }
}

/// RNG for weight initialisation, independent of the training stream.
pub(crate) fn init_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

fn train_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(2);
    rng
}

/// Builds a fresh network for `cfg`; VSC pseudo-inputs start as randomly chosen training rows.
pub fn init_net(cfg: &TrainConfig, data: Option<&TrainData>, device: &Device) -> VscNet {
    let mut rng = init_rng(cfg.seed);
    let m = &cfg.model;
    let pseudo = match (m.kind, data) {
        (ModelKind::Vsc, Some(d)) if m.prior == PriorKind::PseudoInputs => {
            let mut v = Vec::with_capacity(m.pseudo_inputs * d.cols);
            for _ in 0..m.pseudo_inputs {
                let r = rng.random_range(0..d.rows);
                v.extend_from_slice(&d.x01[r * d.cols..(r + 1) * d.cols]);
            }
            Some(v)
        }
        _ => None,
    };
    VscNet::new(m, &mut rng, device, pseudo)
}

/// Loss for one batch according to the model kind.
pub fn model_loss(
    net: &VscNet,
    cfg: &TrainConfig,
    x: Tensor<2>,
    noise: &StepNoise,
    step: u64,
    train_rows: usize,
) -> LossParts {
    let m = cfg.model_at(step);
    match m.kind {
        ModelKind::Vsc => net.vsc_loss(&m, x, noise, cfg.lambda_at(step), cfg.c_at(step)),
        ModelKind::BetaVae { beta } => net.beta_vae_loss(&m, x, noise, beta),
        ModelKind::BetaTcVae { beta } => net.tcvae_loss(&m, x, noise, beta, train_rows),
    }
}

/// Draws ε and η for `rows × latent_dim`.
pub fn draw_noise(
    rng: &mut ChaCha8Rng,
    rows: usize,
    latent_dim: usize,
    device: &Device,
) -> StepNoise {
    let n = rows * latent_dim;
    let eps: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    let eta: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    StepNoise {
        eps: Tensor::from_data(TensorData::new(eps, [rows, latent_dim]), device),
        eta: Tensor::from_data(TensorData::new(eta, [rows, latent_dim]), device),
    }
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Record {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Saves a module's weights atomically as burnpack.
pub fn save_net(net: &VscNet, path: &Path) -> Result<(), TrainError> {
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| record_err(path, e))?;
    checkpoint::write_atomic(path, &bytes)
}

/// Loads weights saved by [`save_net`] into `net` (same config).
pub fn load_net(net: VscNet, path: &Path) -> Result<VscNet, TrainError> {
    let record = ModuleRecord::load(path).map_err(|e| record_err(path, e))?;
    net.try_load_record(record).map_err(|e| record_err(path, e))
}

/// Removes the gradients of the encoder's hidden layer and slab heads, which the optimiser
/// then leaves as they are (`freeze_features_from_step`).
fn drop_feature_grads(net: &VscNet, grads: &mut GradientsParams) {
    let enc = &net.encoder;
    for dense in [&enc.hidden, &enc.mu, &enc.logvar] {
        grads.remove::<2>(dense.weight.id);
        grads.remove::<1>(dense.bias.id);
    }
}

fn adam(flush_subnormals: bool) -> ModuleOptimizer {
    // ε = 1e-8 as in TensorFlow's Adam used by the authors.
    ModuleOptimizer::from(FusedAdam::new(1e-8).flushing_subnormals(flush_subnormals))
}

/// Keeps freed tensor buffers in the process instead of returning them to the kernel.
///
/// A step allocates and frees the same few hundred buffers every time. glibc hands blocks
/// above its (adaptive) mmap threshold back with munmap and trims the heap top above its trim
/// threshold, so every step paid page faults and zeroing for memory it had just released
/// (about 350 faults per step at the `edge` shape, some 6 % of the step). Raising both
/// thresholds keeps that memory mapped for reuse; training's peak heap stays the same.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is thread-safe in glibc.
    unsafe {
        // 32 MiB is glibc's ceiling for the mmap threshold on 64-bit targets.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn mean_scalar(t: Tensor<2>) -> f32 {
    t.mean().into_scalar::<f32>()
}

/// Trains `cfg` on `data`, writing everything to `run_dir` (created if needed).
///
/// With `opts.resume`, continues from the latest complete checkpoint; on flex the result is
/// bit-identical to an uninterrupted run.
pub fn train(
    cfg: &TrainConfig,
    data: &TrainData,
    scaling: InputScaling,
    run_dir: &Path,
    opts: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    // The loop runs on one of the pool's threads, not beside them. Called from the main
    // thread it made a third busy thread on a 2-core machine: the main thread did the
    // serial work of each step while the workers, between products, spun in sched_yield
    // for the same cores (`edge` on a 2-core AVX2 host: 6.5 ms a step against 5.5 ms
    // inside the pool). A caller already on the pool runs it in place.
    rayon::scope(|_| {
        crate::model::linear::with_subnormals_flushed(cfg.flush_subnormals, || {
            train_on_pool(cfg, data, scaling, run_dir, opts)
        })
    })
}

fn train_on_pool(
    cfg: &TrainConfig,
    data: &TrainData,
    scaling: InputScaling,
    run_dir: &Path,
    opts: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    data.validate()?;
    if data.cols != cfg.model.input_dim {
        return Err(TrainError::BadConfig(format!(
            "model input_dim {} but data has {} columns",
            cfg.model.input_dim, data.cols
        )));
    }
    if cfg.batch_size == 0 || cfg.model.latent_dim == 0 || cfg.model.hidden_dim == 0 {
        return Err(TrainError::BadConfig(
            "batch_size, hidden_dim and latent_dim must be positive".into(),
        ));
    }
    if matches!(cfg.model.kind, ModelKind::Vsc)
        && cfg.model.prior == PriorKind::PseudoInputs
        && cfg.model.pseudo_inputs == 0
    {
        return Err(TrainError::BadConfig("VSC needs pseudo_inputs ≥ 1".into()));
    }
    let l2 = cfg.model.spike_logit_l2;
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(TrainError::BadConfig(format!(
            "model.spike_logit_l2 must be a number ≥ 0, got {l2}"
        )));
    }
    let (cap, rate_weight) = (cfg.model.spike_rate_cap, cfg.model.spike_rate_weight);
    if !((0.0..=1.0).contains(&cap) && rate_weight.is_finite() && rate_weight >= 0.0) {
        return Err(TrainError::BadConfig(format!(
            "model.spike_rate_cap must be in [0, 1] and model.spike_rate_weight a number ≥ 0, \
             got {cap} and {rate_weight}"
        )));
    }
    if rate_weight > 0.0 && !matches!(cfg.model.kind, ModelKind::Vsc) {
        return Err(TrainError::BadConfig(
            "model.spike_rate_weight needs a VSC model (only VSC has spikes)".into(),
        ));
    }
    let slab_weight = cfg.model.slab_kl_weight;
    if !(slab_weight.is_finite() && slab_weight > 0.0) {
        return Err(TrainError::BadConfig(format!(
            "model.slab_kl_weight must be a positive number, got {slab_weight}"
        )));
    }
    if slab_weight != 1.0
        && !(matches!(cfg.model.kind, ModelKind::Vsc)
            && (cfg.model.prior == PriorKind::Fixed
                || cfg.model.sparsity == SparsityTarget::SpikeCodeLength))
    {
        // Only there is the slab part of the KL computed apart from the spikes' part.
        return Err(TrainError::BadConfig(format!(
            "model.slab_kl_weight {slab_weight} needs a VSC model with prior = \"fixed\" or \
             sparsity = \"spike_code_length\""
        )));
    }
    if cfg.freeze_features_from_step.is_some() && !matches!(cfg.model.kind, ModelKind::Vsc) {
        // A Gaussian encoder has nothing left to train once its features are frozen.
        return Err(TrainError::BadConfig(
            "freeze_features_from_step needs a VSC model (the spike head keeps training)".into(),
        ));
    }
    std::fs::create_dir_all(run_dir).map_err(|source| TrainError::Io {
        path: run_dir.to_path_buf(),
        source,
    })?;
    let meta = RunMeta {
        train: cfg.clone(),
        scaling,
        train_rows: data.rows,
    };
    let config_path = run_dir.join(CONFIG_FILE);
    let device = opts.device.clone().autodiff();
    keep_freed_memory();

    let mut net = init_net(cfg, Some(data), &device);
    let mut optim = adam(cfg.flush_subnormals);
    let mut rng = train_rng(cfg.seed);
    let mut start_step = 0u64;
    let mut resumed_from = None;
    let mut last_ckpt: Option<PathBuf> = None;

    if opts.resume {
        checkpoint::remove_stale_temps(run_dir);
        if let Some(ck) = checkpoint::find_latest(run_dir)? {
            let stored =
                std::fs::read_to_string(&config_path).map_err(|source| TrainError::Io {
                    path: config_path.clone(),
                    source,
                })?;
            let stored: RunMeta = toml::from_str(&stored).map_err(|e| TrainError::Format {
                path: config_path.clone(),
                msg: e.to_string(),
            })?;
            if stored != meta {
                return Err(TrainError::ConfigMismatch { path: config_path });
            }
            net = load_net(net, &ck.dir.join(checkpoint::MODEL_FILE))?;
            let opath = ck.dir.join(checkpoint::OPTIM_FILE);
            optim = optim.load(&opath).map_err(|e| record_err(&opath, e))?;
            rng = ck.state.rng.restore().ok_or_else(|| TrainError::Format {
                path: ck.dir.join(checkpoint::STATE_FILE),
                msg: "invalid RNG state".into(),
            })?;
            start_step = ck.state.step;
            resumed_from = Some(start_step);
            last_ckpt = Some(ck.dir);
        }
    }
    if resumed_from.is_none() {
        let text = toml::to_string(&meta).map_err(|e| TrainError::BadConfig(e.to_string()))?;
        checkpoint::write_atomic(&config_path, text.as_bytes())?;
    }
    let mut metrics =
        MetricsWriter::open(run_dir, Some(start_step).filter(|_| resumed_from.is_some()))?;

    let total = cfg.total_iters();
    let end = opts.stop_after_steps.map_or(total, |s| s.min(total));
    let bar = if opts.progress {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_position(start_step);
        b
    } else {
        ProgressBar::hidden()
    };

    let (b, m, j) = (cfg.batch_size, data.cols, cfg.model.latent_dim);
    let mut last = None;
    let mut batch = vec![0.0f32; b * m];
    let mut first_step_done = None;
    // Before the loop issues any work (see `awake` for why that matters).
    let _awake = awake::WorkersAwake::start();
    for step in start_step..end {
        for r in 0..b {
            let i = rng.random_range(0..data.rows);
            batch[r * m..(r + 1) * m].copy_from_slice(&data.x01[i * m..(i + 1) * m]);
        }
        let x = Tensor::<2>::from_data(TensorData::new(batch.clone(), [b, m]), &device);
        let noise = draw_noise(&mut rng, b, j, &device);
        let mut parts = model_loss(&net, cfg, x, &noise, step, data.rows);
        if opts.inject_nan_at_step == Some(step) {
            parts.loss = parts.loss.mul_scalar(f32::NAN);
        }
        let loss_value: f32 = parts.loss.clone().into_scalar::<f32>();
        if !loss_value.is_finite() {
            bar.abandon_with_message(format!("loss {loss_value} at step {step}"));
            return Err(TrainError::NonFinite {
                step,
                value: loss_value,
                last_checkpoint: last_ckpt,
            });
        }
        let done = step + 1;
        let log_now = cfg.log_every > 0 && (done % cfg.log_every == 0 || done == total);
        if log_now || done == end {
            let recon = mean_scalar(parts.recon_nll.clone());
            let kl = mean_scalar(parts.kl.clone());
            let sm = StepMetrics {
                step: done,
                loss: loss_value,
                elbo: -(recon + kl),
                recon_nll: recon,
                kl,
                sparsity: mean_scalar(parts.sparsity.clone()),
                lambda: cfg.lambda_at(step),
                c: cfg.c_at(step),
                lr: cfg.lr_at(step),
                mean_gamma: parts.mean_gamma.clone().into_scalar::<f32>(),
            };
            if log_now {
                metrics.append(&sm)?;
            }
            bar.set_message(format!(
                "ELBO {:.1} recon {:.1} KL {:.2} sparse {:.2} λ {:.2} c {:.0} γ̄ {:.3}",
                sm.elbo, sm.recon_nll, sm.kl, sm.sparsity, sm.lambda, sm.c, sm.mean_gamma
            ));
            last = Some(sm);
        }
        let mut grads = GradientsParams::from_grads(parts.loss.backward(), &net);
        if cfg.features_frozen_at(step) {
            drop_feature_grads(&net, &mut grads);
        }
        net = optim.step(cfg.lr_at(step), net, grads);
        bar.set_position(done);

        if cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 && done < total {
            let state = CheckpointState {
                step: done,
                rng: RngState::capture(&rng),
                last_loss: loss_value,
            };
            let dir = checkpoint::write_checkpoint(run_dir, &state, |dir| {
                save_net(&net, &dir.join(checkpoint::MODEL_FILE))?;
                let opath = dir.join(checkpoint::OPTIM_FILE);
                optim.save(&opath).map_err(|e| record_err(&opath, e))
            })?;
            last_ckpt = Some(dir);
        }
        first_step_done.get_or_insert_with(std::time::Instant::now);
    }
    let seconds_after_first_step = first_step_done.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let finished = end == total;
    if finished {
        save_net(&net, &run_dir.join(FINAL_MODEL_FILE))?;
        bar.finish();
    } else {
        bar.abandon();
    }
    Ok(TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        steps_done: end.max(start_step),
        resumed_from,
        last,
        finished,
        seconds_after_first_step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`train`] on unscaled data with the default options.
    fn train_with_defaults(
        cfg: &TrainConfig,
        data: &TrainData,
        dir: &Path,
    ) -> Result<TrainOutcome, TrainError> {
        train(
            cfg,
            data,
            InputScaling::Identity,
            dir,
            &TrainOptions::default(),
        )
    }

    /// `rows × cols` uniform values in [0, 1), drawn from `seed`.
    fn random_data(rows: usize, cols: usize, seed: u64) -> TrainData {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        TrainData {
            x01: (0..rows * cols).map(|_| rng.random()).collect(),
            rows,
            cols,
        }
    }

    /// Thread count does not change the result: gemm splits the output, never the sum over
    /// the inner dimension, and every reduction and Adam update splits by row or fixed chunk.
    /// The shapes are large enough that the matmuls and Adam do run on several threads.
    #[test]
    fn training_is_bit_identical_on_one_and_two_threads() {
        let cols = 384;
        let data = random_data(256, cols, 7);
        let mut cfg = TrainConfig::tiny(cols);
        // [64, 384] × [384, 512] is above flex's threshold for a threaded matmul, and the
        // 384 × 512 weights above the fused Adam's threshold for splitting into tasks.
        cfg.model.hidden_dim = 512;
        cfg.batch_size = 64;
        (cfg.warmup_iters, cfg.ramp_iters, cfg.main_iters) = (2, 2, 2);
        (cfg.checkpoint_every, cfg.log_every) = (0, 1);
        let model = |threads: usize| {
            let dir = tempfile::tempdir().unwrap();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| train_with_defaults(&cfg, &data, dir.path()))
                .unwrap();
            let net = TrainedModel::open(dir.path()).unwrap().net;
            let mut weights = AllWeights(Vec::new());
            net.visit(&mut weights);
            let metrics = std::fs::read_to_string(dir.path().join(metrics::METRICS_FILE));
            (weights.0, metrics.unwrap())
        };
        let (one, two) = (model(1), model(2));
        // 8 dense layers (weight, bias) and the pseudo-inputs.
        assert!(one.0.len() == 17, "{} parameter tensors", one.0.len());
        assert!(one.0 == two.0, "weights differ between 1 and 2 threads");
        assert_eq!(one.1, two.1, "metrics.csv differs between 1 and 2 threads");
    }

    /// From `freeze_features_from_step` on, the encoder's hidden layer and slab heads keep
    /// their values (the step-3 checkpoint against the final model), while the spike head
    /// and the decoder go on changing.
    #[test]
    fn frozen_features_keep_the_encoder_trunk_and_slab_heads() {
        let cols = 24;
        let data = random_data(64, cols, 3);
        let mut cfg = TrainConfig::tiny(cols);
        (cfg.warmup_iters, cfg.ramp_iters, cfg.main_iters) = (0, 0, 6);
        (cfg.checkpoint_every, cfg.log_every) = (3, 1);
        cfg.freeze_features_from_step = Some(3);
        let dir = tempfile::tempdir().unwrap();
        train_with_defaults(&cfg, &data, dir.path()).unwrap();
        let ck = checkpoint::find_latest(dir.path()).unwrap().unwrap();
        assert_eq!(ck.state.step, 3);
        let device = Device::flex();
        let at_3 = load_net(
            init_net(&cfg, Some(&data), &device),
            &ck.dir.join(checkpoint::MODEL_FILE),
        )
        .unwrap();
        let last = TrainedModel::open(dir.path()).unwrap().net;
        let values = crate::model::Dense::to_out_in;
        let (a, b) = (&at_3.encoder, &last.encoder);
        for (name, x, y) in [
            ("hidden", &a.hidden, &b.hidden),
            ("mu", &a.mu, &b.mu),
            ("logvar", &a.logvar, &b.logvar),
        ] {
            assert!(
                values(x) == values(y),
                "encoder.{name} changed after step 3"
            );
        }
        let spike = |e: &crate::model::vsc::Encoder| values(e.spike.as_ref().unwrap());
        assert!(spike(a) != spike(b), "the spike head stopped training");
        assert!(
            values(&at_3.decoder.hidden) != values(&last.decoder.hidden),
            "the decoder stopped training"
        );

        cfg.model.kind = ModelKind::BetaVae { beta: 2.0 };
        let err =
            train_with_defaults(&cfg, &data, tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(err.to_string().contains("needs a VSC model"), "{err}");
    }

    #[test]
    fn device_names_map_to_backends_or_name_the_missing_feature() {
        assert_eq!(device_from_name("flex").unwrap(), Device::flex());
        assert_eq!(device_from_name("cpu").unwrap(), Device::flex());
        let ndarray = device_from_name("ndarray");
        #[cfg(feature = "ndarray")]
        assert_ne!(ndarray.unwrap(), Device::flex());
        #[cfg(not(feature = "ndarray"))]
        {
            let err = ndarray.unwrap_err();
            assert!(matches!(&err, TrainError::DeviceNotCompiled(n) if n == "ndarray"));
            assert!(err.to_string().contains("`ndarray` feature"), "{err}");
        }
        let err = device_from_name("ndarry").unwrap_err();
        assert!(matches!(&err, TrainError::UnknownDevice(n) if n == "ndarry"));
        assert!(err.to_string().contains("ndarray"), "{err}");
    }

    /// ndarray runs the tensor-op paths that flex's fused likelihood and Adam replace; the
    /// first step (same initial weights, same batch) must give the same loss up to rounding.
    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_training_matches_flex_on_the_first_step_and_stays_finite() {
        let cols = 48;
        let data = random_data(128, cols, 3);
        let mut cfg = TrainConfig::tiny(cols);
        (cfg.warmup_iters, cfg.ramp_iters, cfg.main_iters) = (5, 5, 10);
        (cfg.checkpoint_every, cfg.log_every) = (0, 1);
        let losses = |device: Device| {
            let dir = tempfile::tempdir().unwrap();
            let options = TrainOptions {
                device,
                ..TrainOptions::default()
            };
            train(&cfg, &data, InputScaling::Identity, dir.path(), &options).unwrap();
            let csv = std::fs::read_to_string(dir.path().join(metrics::METRICS_FILE)).unwrap();
            csv.lines()
                .skip(1)
                .map(|line| line.split(',').nth(1).unwrap().parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        };
        let flex = losses(Device::flex());
        let ndarray = losses(device_from_name("ndarray").unwrap());
        assert_eq!(ndarray.len(), 20);
        assert!(ndarray.iter().all(|l| l.is_finite()), "{ndarray:?}");
        let rel = (ndarray[0] - flex[0]).abs() / flex[0].abs();
        assert!(
            rel < 1e-4,
            "first loss {} (ndarray) vs {} (flex)",
            ndarray[0],
            flex[0]
        );
    }

    /// Every float parameter's values, in module order.
    struct AllWeights(Vec<Vec<f32>>);

    impl burn::module::ModuleVisitor for AllWeights {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.push(crate::model::vsc::tensor_to_vec(param.val()));
        }
    }
}
