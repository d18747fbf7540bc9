//! Loading a finished run and using it: encode, decode, prior slabs, ELBO, plain f32 export.

use std::path::{Path, PathBuf};

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{
    CONFIG_FILE, FINAL_MODEL_FILE, InputScaling, RunMeta, TrainError, draw_noise, init_net,
    load_net, model_loss,
};
use crate::model::vsc::tensor_to_vec;
use crate::model::{ModelConfig, ModelKind, TrainConfig, VscNet};

/// Rows processed per forward pass when encoding/decoding large matrices.
const CHUNK_ROWS: usize = 1024;

/// Posterior parameters, each `rows × latent_dim` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Codes {
    pub rows: usize,
    pub latent_dim: usize,
    pub mu: Vec<f32>,
    pub logvar: Vec<f32>,
    /// Spike probabilities γ (all 1 for the Gaussian baselines).
    pub gamma: Vec<f32>,
}

/// The prior slab selected for each row (argmax of the selector weights).
#[derive(Clone, Debug, PartialEq)]
pub struct PriorSelection {
    pub rows: usize,
    pub latent_dim: usize,
    /// Index of the selected pseudo-input per row.
    pub selected: Vec<usize>,
    /// Selector weights, `rows × U`.
    pub weights: Vec<f32>,
    pub mu: Vec<f32>,
    pub logvar: Vec<f32>,
    pub gamma: Vec<f32>,
}

/// Dataset means of the objective's parts (one posterior sample per row, λ = 1, final c).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalSummary {
    pub rows: usize,
    /// −(recon_nll + kl), nats per observation.
    pub elbo: f64,
    pub recon_nll: f64,
    pub kl: f64,
    pub sparsity: f64,
    pub mean_gamma: f64,
}

/// A trained model loaded from a run directory (inference only, no autodiff).
#[derive(Debug)]
pub struct TrainedModel {
    pub run_dir: PathBuf,
    pub meta: RunMeta,
    pub net: VscNet,
    pub device: Device,
}

impl TrainedModel {
    /// Opens `RUN_DIR` (config.toml + model.bpk) on flex.
    pub fn open(run_dir: &Path) -> Result<Self, TrainError> {
        Self::open_on(run_dir, Device::flex())
    }

    /// Opens `RUN_DIR`, or the latest checkpoint when training has not finished.
    pub fn open_on(run_dir: &Path, device: Device) -> Result<Self, TrainError> {
        let cpath = run_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cpath).map_err(|source| TrainError::Io {
            path: cpath.clone(),
            source,
        })?;
        let meta: RunMeta = toml::from_str(&text).map_err(|e| TrainError::Format {
            path: cpath.clone(),
            msg: e.to_string(),
        })?;
        let mut weights = run_dir.join(FINAL_MODEL_FILE);
        if !weights.is_file()
            && let Some(ck) = super::checkpoint::find_latest(run_dir)?
        {
            weights = ck.dir.join(super::checkpoint::MODEL_FILE);
        }
        let net = init_net(&meta.train, None, &device);
        let net = load_net(net, &weights)?;
        Ok(TrainedModel {
            run_dir: run_dir.to_path_buf(),
            meta,
            net,
            device,
        })
    }

    /// Wraps an in-memory network (e.g. right after training).
    pub fn from_parts(meta: RunMeta, net: VscNet, device: Device) -> Self {
        TrainedModel {
            run_dir: PathBuf::new(),
            meta,
            net,
            device,
        }
    }

    pub fn config(&self) -> &TrainConfig {
        &self.meta.train
    }

    pub fn model_config(&self) -> &ModelConfig {
        &self.meta.train.model
    }

    pub fn scaling(&self) -> &InputScaling {
        &self.meta.scaling
    }

    fn check_cols(&self, len: usize, rows: usize, cols: usize) -> Result<(), TrainError> {
        if len != rows * cols {
            return Err(TrainError::BadData(format!(
                "expected {rows} rows × {cols} columns = {} values, got {len}",
                rows * cols
            )));
        }
        Ok(())
    }

    fn tensor(&self, data: &[f32], rows: usize, cols: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(data.to_vec(), [rows, cols]), &self.device)
    }

    /// Posterior parameters for `rows` observations already scaled into [0, 1].
    pub fn encode(&self, x01: &[f32], rows: usize) -> Result<Codes, TrainError> {
        let m = self.model_config().input_dim;
        let j = self.model_config().latent_dim;
        self.check_cols(x01.len(), rows, m)?;
        let mut codes = Codes {
            rows,
            latent_dim: j,
            mu: Vec::with_capacity(rows * j),
            logvar: Vec::with_capacity(rows * j),
            gamma: Vec::with_capacity(rows * j),
        };
        for chunk in x01.chunks(CHUNK_ROWS * m) {
            let n = chunk.len() / m;
            let post = self.net.encoder.forward(self.tensor(chunk, n, m));
            codes.mu.extend(tensor_to_vec(post.mu));
            codes.logvar.extend(tensor_to_vec(post.logvar));
            match post.log_gamma {
                Some(lg) => codes.gamma.extend(tensor_to_vec(lg.exp())),
                None => codes.gamma.extend(std::iter::repeat_n(1.0, n * j)),
            }
        }
        Ok(codes)
    }

    /// Decoder mean and standard deviation (for Bernoulli: √(p(1 − p))), each `rows × M`.
    pub fn decode(&self, z: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
        let m = self.model_config().input_dim;
        let j = self.model_config().latent_dim;
        self.check_cols(z.len(), rows, j)?;
        let (mut mean, mut std) = (Vec::with_capacity(rows * m), Vec::with_capacity(rows * m));
        for chunk in z.chunks(CHUNK_ROWS * j) {
            let n = chunk.len() / j;
            let decoder = &self.net.decoder;
            let input = decoder.code_input(self.tensor(chunk, n, j));
            let out = decoder.forward(input, self.model_config().likelihood);
            let p = sigmoid(out.logits);
            let s = match out.logvar {
                Some(lv) => lv.mul_scalar(0.5).exp(),
                None => (p.clone() * (p.clone().neg() + 1.0)).sqrt(),
            };
            mean.extend(tensor_to_vec(p));
            std.extend(tensor_to_vec(s));
        }
        Ok((mean, std))
    }

    /// The pseudo-input prior selected for each row (VSC.md §4, conditional generation).
    /// Returns `None` for the Gaussian baselines (their prior is N(0, I)).
    pub fn prior_for(
        &self,
        x01: &[f32],
        rows: usize,
    ) -> Result<Option<PriorSelection>, TrainError> {
        let cfg = self.model_config();
        let (m, j, u) = (cfg.input_dim, cfg.latent_dim, cfg.pseudo_inputs);
        self.check_cols(x01.len(), rows, m)?;
        let c_final = self.config().c_at(self.config().total_iters());
        let (Some(prior), Some(selector)) = (
            self.net.prior_slabs(cfg, c_final),
            self.net.selector.as_ref(),
        ) else {
            return Ok(None);
        };
        let (pmu, plv, pg) = (
            tensor_to_vec(prior.mu),
            tensor_to_vec(prior.logvar),
            tensor_to_vec(prior.gamma),
        );
        let w = tensor_to_vec(crate::model::vsc::selector_weights(
            selector,
            cfg.selector,
            self.tensor(x01, rows, m),
        ));
        let mut sel = PriorSelection {
            rows,
            latent_dim: j,
            selected: Vec::with_capacity(rows),
            weights: w.clone(),
            mu: Vec::with_capacity(rows * j),
            logvar: Vec::with_capacity(rows * j),
            gamma: Vec::with_capacity(rows * j),
        };
        for r in 0..rows {
            let row = &w[r * u..(r + 1) * u];
            let best = (0..u)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            sel.selected.push(best);
            sel.mu.extend_from_slice(&pmu[best * j..(best + 1) * j]);
            sel.logvar.extend_from_slice(&plv[best * j..(best + 1) * j]);
            sel.gamma.extend_from_slice(&pg[best * j..(best + 1) * j]);
        }
        Ok(Some(sel))
    }

    /// Mean ELBO and its parts over `rows` observations (one sample each, seeded).
    pub fn evaluate(&self, x01: &[f32], rows: usize, seed: u64) -> Result<EvalSummary, TrainError> {
        let cfg = self.config();
        let m = cfg.model.input_dim;
        self.check_cols(x01.len(), rows, m)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let step = cfg.total_iters(); // λ = 1, final c
        let (mut nll, mut kl, mut sp, mut g) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for chunk in x01.chunks(CHUNK_ROWS * m) {
            let n = chunk.len() / m;
            let noise = draw_noise(&mut rng, n, cfg.model.latent_dim, &self.device);
            let parts = model_loss(
                &self.net,
                cfg,
                self.tensor(chunk, n, m),
                &noise,
                step,
                self.meta.train_rows,
            );
            let sum = |t: Tensor<2>| t.sum().into_scalar::<f32>() as f64;
            nll += sum(parts.recon_nll);
            kl += sum(parts.kl);
            sp += sum(parts.sparsity);
            g += parts.mean_gamma.into_scalar::<f32>() as f64 * n as f64;
        }
        let r = rows.max(1) as f64;
        Ok(EvalSummary {
            rows,
            elbo: -(nll + kl) / r,
            recon_nll: nll / r,
            kl: kl / r,
            sparsity: sp / r,
            mean_gamma: g / r,
        })
    }

    /// The edge runtime's f32 reference encoder (HAR models only: needs the channel set,
    /// model-input features and input scaling), weights `[out][in]` row-major. For the Gaussian baselines the
    /// γ head is a zero matrix with bias 0 (log γ = 0, always active).
    pub fn to_f32_encoder(&self) -> Result<edge_runtime::F32Encoder, TrainError> {
        let InputScaling::HarChannels {
            channel_bits,
            scaling,
            features,
            ..
        } = &self.meta.scaling
        else {
            return Err(TrainError::BadConfig(
                "to_f32_encoder needs a HAR model (per-channel scaling)".into(),
            ));
        };
        let channels =
            edge_runtime::preprocess::ChannelSet::from_bits(*channel_bits).ok_or_else(|| {
                TrainError::BadConfig(format!("invalid channel bits {channel_bits:#x}"))
            })?;
        let cfg = self.model_config();
        let enc = &self.net.encoder;
        let (w1, b1) = enc.hidden.to_out_in();
        let (w_mu, b_mu) = enc.mu.to_out_in();
        let (w_logvar, b_logvar) = enc.logvar.to_out_in();
        let (w_gamma, b_gamma) = match (&enc.spike, cfg.kind) {
            (Some(s), ModelKind::Vsc) => s.to_out_in(),
            _ => (
                vec![0.0; cfg.latent_dim * cfg.hidden_dim],
                vec![0.0; cfg.latent_dim],
            ),
        };
        Ok(edge_runtime::F32Encoder {
            input_dim: cfg.input_dim,
            hidden_dim: cfg.hidden_dim,
            latent_dim: cfg.latent_dim,
            w1,
            b1,
            w_mu,
            b_mu,
            w_logvar,
            b_logvar,
            w_gamma,
            b_gamma,
            channels,
            features: *features,
            spike_head: cfg.spike_head,
            scaling: scaling.clone(),
        })
    }
}
