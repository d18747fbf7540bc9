//! The VSC network (encoder, decoder, pseudo-inputs, selector) and its objective (VSC.md §1–3).
//!
//! One [`VscNet`] serves all model kinds: β-VAE/β-TCVAE simply have no spike head, no
//! pseudo-inputs and no selector (same encoder/decoder capacity).

use burn::module::{Module, Param};
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

use super::config::{
    Likelihood, ModelConfig, ModelKind, PriorKind, SelectorKind, SparsityTarget, SpikeHead,
};
use super::fused::{FusedLikelihood, try_fused_nll};
use super::kl::{GAMMA_EPS, bernoulli_kl, spike_slab_kl, spike_slab_kl_pairs};
use super::linear::{transpose, try_fused_linear, try_fused_linear_stacked};

/// ln(2π), used by Gaussian log densities.
pub const LN_2PI: f32 = 1.837_877_1;

/// Fully connected layer `y = x W + b` with `W` stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Dense {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    /// Uniform(−1/√in, 1/√in) initialisation drawn from the caller's RNG, so that a seed
    /// fully determines the initial weights on every backend.
    pub fn new(d_in: usize, d_out: usize, rng: &mut impl Rng, device: &Device) -> Self {
        let k = 1.0 / (d_in as f32).sqrt();
        let w: Vec<f32> = (0..d_in * d_out).map(|_| rng.random_range(-k..k)).collect();
        let b: Vec<f32> = (0..d_out).map(|_| rng.random_range(-k..k)).collect();
        Dense {
            weight: Param::from_data(TensorData::new(w, [d_in, d_out]), device),
            bias: Param::from_data(TensorData::new(b, [d_out]), device),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_then(x, false)
    }

    /// `relu(x W + b)`.
    pub fn forward_relu(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_then(x, true)
    }

    /// `relu([x; p] W + b)`: the rows of `x`, then those of `p`, as one layer (one fused op
    /// on flex, so the weight gradient is one product over all rows).
    pub fn forward_relu_stacked(&self, x: Tensor<2>, p: Tensor<2>) -> Tensor<2> {
        let (w, b) = (self.weight.val(), self.bias.val());
        if let Some(y) = try_fused_linear_stacked(&x, &p, &w, &b, true) {
            return y;
        }
        relu(burn::tensor::module::linear(
            Tensor::cat(vec![x, p], 0),
            w,
            Some(b),
        ))
    }

    /// One fused op on flex ([`super::linear`]), burn's ops elsewhere.
    fn forward_then(&self, x: Tensor<2>, then_relu: bool) -> Tensor<2> {
        let (w, b) = (self.weight.val(), self.bias.val());
        if let Some(y) = try_fused_linear(&x, &w, &b, then_relu) {
            return y;
        }
        let y = burn::tensor::module::linear(x, w, Some(b));
        if then_relu { relu(y) } else { y }
    }

    /// Weights as `[out][in]` row-major (the edge runtime's layout) and the bias.
    pub fn to_out_in(&self) -> (Vec<f32>, Vec<f32>) {
        let [d_in, d_out] = self.weight.val().dims();
        let w = tensor_to_vec(self.weight.val());
        (transpose(&w, d_in, d_out), tensor_to_vec(self.bias.val()))
    }
}

/// Recognition model: one hidden ReLU layer and three heads.
#[derive(Module, Debug)]
pub struct Encoder {
    pub hidden: Dense,
    pub mu: Dense,
    pub logvar: Dense,
    /// Spike head `v` (log γ from [`SpikeHead`]); absent for the Gaussian baselines.
    pub spike: Option<Dense>,
    #[module(skip)]
    pub spike_head: SpikeHead,
}

/// Posterior parameters for a batch, each `[rows, J]`.
#[derive(Clone, Debug)]
pub struct Posterior {
    pub mu: Tensor<2>,
    pub logvar: Tensor<2>,
    /// log γ ≤ 0; `None` for Gaussian encoders.
    pub log_gamma: Option<Tensor<2>>,
    /// The spike head's output v before the [`SpikeHead`] map; `None` for Gaussian encoders.
    pub spike_logits: Option<Tensor<2>>,
}

impl Posterior {
    /// The posteriors of rows `first..first + len`.
    fn rows(&self, first: usize, len: usize) -> Posterior {
        let rows = |t: &Tensor<2>| t.clone().narrow(0, first, len);
        Posterior {
            mu: rows(&self.mu),
            logvar: rows(&self.logvar),
            log_gamma: self.log_gamma.as_ref().map(rows),
            spike_logits: self.spike_logits.as_ref().map(rows),
        }
    }
}

impl Encoder {
    pub fn forward(&self, x: Tensor<2>) -> Posterior {
        self.heads(self.hidden.forward_relu(x))
    }

    /// The posteriors of `x` and of `p` from one pass over the rows of both, which trains
    /// the same as two passes but costs less (see [`Dense::forward_relu_stacked`]).
    pub fn forward_stacked(&self, x: Tensor<2>, p: Tensor<2>) -> (Posterior, Posterior) {
        let (rows_x, rows_p) = (x.dims()[0], p.dims()[0]);
        let both = self.heads(self.hidden.forward_relu_stacked(x, p));
        (both.rows(0, rows_x), both.rows(rows_x, rows_p))
    }

    fn heads(&self, h: Tensor<2>) -> Posterior {
        let spike_logits = self.spike.as_ref().map(|s| s.forward(h.clone()));
        Posterior {
            mu: self.mu.forward(h.clone()),
            logvar: self.logvar.forward(h),
            log_gamma: spike_logits.clone().map(|v| match self.spike_head {
                // −ReLU(−v) = min(v, 0), one op instead of three.
                SpikeHead::Paper => v.clamp_max(0.0),
                SpikeHead::Sigmoid => log_sigmoid(v),
            }),
            spike_logits,
        }
    }
}

/// Likelihood model: one hidden ReLU layer, a mean head (logits) and an optional log-variance head.
#[derive(Module, Debug)]
pub struct Decoder {
    pub hidden: Dense,
    pub mean: Dense,
    pub logvar: Option<Dense>,
}

/// Decoder output for a batch, `[rows, M]`.
#[derive(Clone, Debug)]
pub struct DecoderOut {
    /// Pre-sigmoid mean (logits for the Bernoulli likelihood).
    pub logits: Tensor<2>,
    /// Log-variance after the floor; `None` for Bernoulli, constant for fixed variance.
    pub logvar: Option<Tensor<2>>,
}

impl Decoder {
    /// The decoder's input for codes `z` `[rows, J]`: `z` itself, or `[z, 1[z ≠ 0]]` for a
    /// decoder that reads the spikes ([`ModelConfig::decoder_spikes`]).
    pub fn code_input(&self, z: Tensor<2>) -> Tensor<2> {
        let [_, j] = z.dims();
        let [d_in, _] = self.hidden.weight.val().dims();
        if d_in == 2 * j {
            let spikes = z.clone().not_equal_elem(0.0).float();
            Tensor::cat(vec![z, spikes], 1)
        } else {
            z
        }
    }

    pub fn forward(&self, z: Tensor<2>, likelihood: Likelihood) -> DecoderOut {
        let h = self.hidden.forward_relu(z);
        let logits = self.mean.forward(h.clone());
        let logvar = match likelihood {
            Likelihood::Bernoulli => None,
            Likelihood::GaussianFixed { std } => {
                let lv = 2.0 * std.ln();
                Some(logits.zeros_like().add_scalar(lv))
            }
            Likelihood::GaussianLearned { logvar_floor } => {
                let head = self
                    .logvar
                    .as_ref()
                    .expect("learned-variance decoder has a log-variance head");
                let lv = head.forward(h);
                Some(match logvar_floor {
                    Some(f) => lv.clamp_min(f),
                    None => lv,
                })
            }
        };
        DecoderOut { logits, logvar }
    }
}

impl Decoder {
    /// −log p(x|z) per row, `[rows, 1]`: [`Decoder::forward`] followed by [`recon_nll`].
    ///
    /// On flex the likelihood is one fused op ([`super::fused`]). Elsewhere it is tensor ops,
    /// with a fixed variance kept as a scalar rather than a `[rows, M]` constant and the
    /// Bernoulli case written with log σ(−l) = log σ(l) − l.
    pub fn nll(&self, x: Tensor<2>, z: Tensor<2>, likelihood: Likelihood) -> Tensor<2> {
        let h = self.hidden.forward_relu(z);
        let logits = self.mean.forward(h.clone());
        match likelihood {
            Likelihood::GaussianLearned { logvar_floor } => {
                let head = self
                    .logvar
                    .as_ref()
                    .expect("learned-variance decoder has a log-variance head");
                let raw = head.forward(h);
                let kind = FusedLikelihood::GaussianLearned { logvar_floor };
                if let Some(nll) = try_fused_nll(&x, &logits, Some(&raw), kind) {
                    return nll;
                }
                let logvar = match logvar_floor {
                    Some(f) => raw.clamp_min(f),
                    None => raw,
                };
                let out = DecoderOut {
                    logits,
                    logvar: Some(logvar),
                };
                recon_nll(x, &out)
            }
            Likelihood::GaussianFixed { std } => {
                let logvar = 2.0 * std.ln();
                let kind = FusedLikelihood::GaussianFixed { logvar };
                if let Some(nll) = try_fused_nll(&x, &logits, None, kind) {
                    return nll;
                }
                let m = x.dims()[1] as f32;
                // ½ Σ_m [log σ² + ln 2π + (x − μ)² / σ²]
                (x - sigmoid(logits))
                    .square()
                    .sum_dim(1)
                    .mul_scalar(0.5 * (-logvar).exp())
                    .add_scalar(0.5 * m * (logvar + LN_2PI))
            }
            Likelihood::Bernoulli => {
                if let Some(nll) = try_fused_nll(&x, &logits, None, FusedLikelihood::Bernoulli) {
                    return nll;
                }
                // −[x log σ(l) + (1 − x) log σ(−l)] = (1 − x) l − log σ(l)
                let one_minus_x = x.neg().add_scalar(1.0);
                (one_minus_x * logits.clone() - log_sigmoid(logits)).sum_dim(1)
            }
        }
    }
}

/// −log p(x|z) per row, `[rows, 1]`.
pub fn recon_nll(x: Tensor<2>, out: &DecoderOut) -> Tensor<2> {
    match &out.logvar {
        None => {
            // −[x log σ(l) + (1 − x) log σ(−l)]
            let pos = log_sigmoid(out.logits.clone());
            let neg = log_sigmoid(out.logits.clone().neg());
            (x.clone() * pos + (x.neg() + 1.0) * neg).neg().sum_dim(1)
        }
        Some(lv) => {
            let m = x.dims()[1] as f32;
            let mean = sigmoid(out.logits.clone());
            // ½ Σ_m [log σ² + (x − μ)² / σ²] + ½ M ln 2π
            ((x - mean).square() * lv.clone().neg().exp() + lv.clone())
                .sum_dim(1)
                .mul_scalar(0.5)
                .add_scalar(0.5 * m * LN_2PI)
        }
    }
}

/// The complete network.
#[derive(Module, Debug)]
pub struct VscNet {
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// U × M learnable pseudo-inputs (VSC only).
    pub pseudo_inputs: Option<Param<Tensor<2>>>,
    /// Selector C_ω: M → U (VSC only).
    pub selector: Option<Dense>,
}

impl VscNet {
    /// Fresh network; `pseudo_init` (U × M, row-major) overrides the Uniform(0,1) initialisation
    /// of the pseudo-inputs (e.g. with training rows).
    pub fn new(
        cfg: &ModelConfig,
        rng: &mut impl Rng,
        device: &Device,
        pseudo_init: Option<Vec<f32>>,
    ) -> Self {
        let (m, h, j) = (cfg.input_dim, cfg.hidden_dim, cfg.latent_dim);
        let vsc = matches!(cfg.kind, ModelKind::Vsc);
        let encoder = Encoder {
            hidden: Dense::new(m, h, rng, device),
            mu: {
                let mut d = Dense::new(h, j, rng, device);
                if let Some(b) = cfg.slab_mean_bias_init {
                    d.bias = Param::from_data(TensorData::new(vec![b; j], [j]), device);
                }
                d
            },
            logvar: Dense::new(h, j, rng, device),
            spike: vsc.then(|| {
                let mut d = Dense::new(h, j, rng, device);
                if let Some(b) = cfg.spike_bias_init {
                    d.bias = Param::from_data(TensorData::new(vec![b; j], [j]), device);
                }
                d
            }),
            spike_head: cfg.spike_head,
        };
        let decoder_in = if vsc && cfg.decoder_spikes { 2 * j } else { j };
        let decoder = Decoder {
            hidden: Dense::new(decoder_in, h, rng, device),
            mean: Dense::new(h, m, rng, device),
            logvar: matches!(cfg.likelihood, Likelihood::GaussianLearned { .. })
                .then(|| Dense::new(h, m, rng, device)),
        };
        let (pseudo_inputs, selector) = if vsc && cfg.prior == PriorKind::PseudoInputs {
            let u = cfg.pseudo_inputs;
            let init = pseudo_init.unwrap_or_else(|| (0..u * m).map(|_| rng.random()).collect());
            assert_eq!(init.len(), u * m, "pseudo-input init must be U × M");
            (
                Some(Param::from_data(TensorData::new(init, [u, m]), device)),
                Some(Dense::new(m, u, rng, device)),
            )
        } else {
            (None, None)
        };
        VscNet {
            encoder,
            decoder,
            pseudo_inputs,
            selector,
        }
    }
}

/// Per-step random numbers (drawn on the host so runs are reproducible on every backend).
#[derive(Clone, Debug)]
pub struct StepNoise {
    /// ε ~ N(0, 1), `[B, J]`.
    pub eps: Tensor<2>,
    /// η ~ Uniform(0, 1), `[B, J]`.
    pub eta: Tensor<2>,
}

/// Per-row loss components (each `[B, 1]`) and scalars for logging.
#[derive(Clone, Debug)]
pub struct LossParts {
    /// Objective minimised (mean over the batch), `[1]`.
    pub loss: Tensor<1>,
    /// −log p(x|z) per row.
    pub recon_nll: Tensor<2>,
    /// KL term per row (selector-weighted spike-and-slab KL, or the Gaussian KL).
    pub kl: Tensor<2>,
    /// Sparsity term J·KL(γ̄‖α) per row (zeros for the baselines).
    pub sparsity: Tensor<2>,
    /// Mean posterior spike probability over the batch (1 for the baselines).
    pub mean_gamma: Tensor<1>,
}

/// Warm-up slab sample (paper eq. 7): N(λμ, λσ² + 1 − λ) via ε.
///
/// The two ends of the schedule, where most steps are, skip the ops that do nothing there:
/// λ = 0 is ε itself (no gradient to μ, σ, as with the general form's zero factors) and
/// λ = 1 is μ + exp(½ log σ²) ε.
pub fn sample_slab(mu: Tensor<2>, logvar: Tensor<2>, eps: Tensor<2>, lambda: f32) -> Tensor<2> {
    if lambda == 0.0 {
        eps
    } else if lambda == 1.0 {
        mu + logvar.mul_scalar(0.5).exp() * eps
    } else {
        let std = (logvar.exp().mul_scalar(lambda).add_scalar(1.0 - lambda)).sqrt();
        mu.mul_scalar(lambda) + std * eps
    }
}

/// Relaxed spike indicator T(η − 1 + γ) = sigmoid(c (η − 1 + γ)).
pub fn spike_step(log_gamma: Tensor<2>, eta: Tensor<2>, c: f32) -> Tensor<2> {
    sigmoid((eta.sub_scalar(1.0) + log_gamma.exp()).mul_scalar(c))
}

/// `ModelConfig::spike_rate_cap`'s charge for a batch's γ `[B, J]`: w·Σ_j max(γ̄_j − cap, 0)²
/// with γ̄_j the batch's mean γ of dim j, the same for every example, `[1, 1]` (it adds to
/// each example's sparsity term, and so once to the batch mean).
pub fn spike_rate_charge(gamma: Tensor<2>, cfg: &ModelConfig) -> Tensor<2> {
    gamma
        .mean_dim(0)
        .sub_scalar(cfg.spike_rate_cap)
        .clamp_min(0.0)
        .square()
        .sum_dim(1)
        .mul_scalar(cfg.spike_rate_weight)
}

/// Selector weights w_u = u*_u / Σ_u u*_u for each row, `[B, U]`.
pub fn selector_weights(selector: &Dense, kind: SelectorKind, x: Tensor<2>) -> Tensor<2> {
    let u_star = match kind {
        SelectorKind::Paper => {
            let v = selector.forward_relu(x);
            let v = v.clone() / v.sum_dim(1).add_scalar(1e-8);
            sigmoid(v.sub_scalar(0.5).mul_scalar(60.0))
        }
        SelectorKind::AuthorsCode => {
            let v = sigmoid(selector.forward(x));
            v.clone() / v.square().sum_dim(1).sqrt().add_scalar(1e-8)
        }
    };
    // u* can be tiny for every u (sigmoid(−30) ≈ 1e-13) but stays a normal f32, so
    // normalising keeps a proper weighting.
    u_star.clone() / u_star.sum_dim(1).add_scalar(1e-30)
}

/// Prior (pseudo-input) encodings, each `[U, J]`, with γ_u as probabilities.
pub struct PriorSlabs {
    pub mu: Tensor<2>,
    pub logvar: Tensor<2>,
    pub gamma: Tensor<2>,
}

/// [`PriorSlabs`] from the pseudo-inputs' posteriors (VSC only).
fn prior_slabs_of(post: Posterior, cfg: &ModelConfig, c: f32) -> Option<PriorSlabs> {
    let mut gamma = post.log_gamma?.exp();
    if cfg.sharpen_prior_gamma {
        gamma = sigmoid(gamma.sub_scalar(0.5).mul_scalar(c));
    }
    Some(PriorSlabs {
        mu: post.mu,
        logvar: post.logvar,
        gamma,
    })
}

impl VscNet {
    /// Encode the pseudo-inputs through the shared encoder (VSC only).
    pub fn prior_slabs(&self, cfg: &ModelConfig, c: f32) -> Option<PriorSlabs> {
        let p = self.pseudo_inputs.as_ref()?.val();
        prior_slabs_of(self.encoder.forward(p), cfg, c)
    }

    /// The encoder's posteriors for a batch `x` and, with pseudo-inputs, theirs too, from
    /// one pass.
    fn encode_with_prior(&self, x: Tensor<2>) -> (Posterior, Option<Posterior>) {
        match &self.pseudo_inputs {
            Some(p) => {
                let (post, prior) = self.encoder.forward_stacked(x, p.val());
                (post, Some(prior))
            }
            None => (self.encoder.forward(x), None),
        }
    }

    /// VSC objective for a batch `x` `[B, M]` in [0, 1] (VSC.md §1–3).
    pub fn vsc_loss(
        &self,
        cfg: &ModelConfig,
        x: Tensor<2>,
        noise: &StepNoise,
        lambda: f32,
        c: f32,
    ) -> LossParts {
        let (post, prior_post) = self.encode_with_prior(x.clone());
        let log_gamma = post
            .log_gamma
            .clone()
            .expect("VSC encoder has a spike head");
        let slab = sample_slab(
            post.mu.clone(),
            post.logvar.clone(),
            noise.eps.clone(),
            lambda,
        );
        let spikes = spike_step(log_gamma.clone(), noise.eta.clone(), c);
        let z = spikes.clone() * slab;
        let z = if cfg.decoder_spikes {
            Tensor::cat(vec![z, spikes], 1)
        } else {
            z
        };
        let nll = self.decoder.nll(x.clone(), z, cfg.likelihood);

        let (kl, mut sparsity) = self.prior_terms_with(cfg, x, &post, prior_post, c);
        if cfg.spike_logit_l2 > 0.0 {
            let v = post
                .spike_logits
                .clone()
                .expect("VSC encoder has a spike head");
            sparsity = sparsity
                + v.clamp_min(0.0)
                    .square()
                    .sum_dim(1)
                    .mul_scalar(cfg.spike_logit_l2);
        }
        if cfg.spike_rate_weight > 0.0 {
            sparsity = sparsity + spike_rate_charge(log_gamma.clone().exp(), cfg);
        }
        let loss = (nll.clone() + kl.clone() + sparsity.clone()).mean();
        LossParts {
            loss,
            recon_nll: nll,
            kl,
            sparsity,
            // Reported, not optimised: no autodiff node.
            mean_gamma: log_gamma.detach().exp().mean(),
        }
    }

    /// KL term and sparsity term, each `[B, 1]`: selector-weighted KL to the pseudo-input
    /// priors plus J·KL(γ̄‖α), or the KL to the fixed spike-and-slab prior and zeros.
    pub fn prior_terms(
        &self,
        cfg: &ModelConfig,
        x: Tensor<2>,
        post: &Posterior,
        c: f32,
    ) -> (Tensor<2>, Tensor<2>) {
        self.prior_terms_with(cfg, x, post, None, c)
    }

    /// [`VscNet::prior_terms`] with the pseudo-inputs' posteriors when the caller has them.
    fn prior_terms_with(
        &self,
        cfg: &ModelConfig,
        x: Tensor<2>,
        post: &Posterior,
        prior_post: Option<Posterior>,
        c: f32,
    ) -> (Tensor<2>, Tensor<2>) {
        let gamma_i = post
            .log_gamma
            .clone()
            .expect("VSC encoder has a spike head")
            .exp();
        let n_dims = cfg.latent_dim as f32;
        // J·KL(γ̄‖α) on the example's own mean γ (SparsityTarget::Posterior / Both).
        let own_sparsity = match cfg.sparsity {
            SparsityTarget::Prior => None,
            SparsityTarget::Posterior | SparsityTarget::Both => {
                Some(bernoulli_kl(gamma_i.clone().mean_dim(1), cfg.alpha).mul_scalar(n_dims))
            }
            SparsityTarget::SpikeCodeLength => {
                // Entropy of the spikes, clamped as in the KL.
                let g = gamma_i.clone().clamp(GAMMA_EPS, 1.0 - GAMMA_EPS);
                let q = g.clone().neg().add_scalar(1.0);
                Some((g.clone() * g.log() + q.clone() * q.log()).sum_dim(1).neg())
            }
            SparsityTarget::PosteriorCount => Some(
                gamma_i
                    .clone()
                    .sum_dim(1)
                    .mul_scalar(((1.0 - cfg.alpha) / cfg.alpha).ln()),
            ),
            SparsityTarget::PosteriorExcess => Some(
                bernoulli_kl(gamma_i.clone().mean_dim(1).clamp_min(cfg.alpha), cfg.alpha)
                    .mul_scalar(n_dims),
            ),
        };
        let slab_weight = cfg.slab_kl_weight;
        if cfg.prior == PriorKind::Fixed {
            let zeros = post.mu.zeros_like();
            // With the prior's γ set to the posterior's own the spike part vanishes and the
            // slab part remains, to be weighted; the spike part against α is added as is.
            let kl = spike_slab_kl(
                post.mu.clone(),
                post.logvar.clone(),
                gamma_i.clone(),
                zeros.clone(),
                zeros,
                gamma_i.clone(),
            )
            .mul_scalar(slab_weight)
                + bernoulli_kl(gamma_i, cfg.alpha).sum_dim(1);
            let sparsity = own_sparsity.unwrap_or_else(|| kl.zeros_like());
            return (kl, sparsity);
        }
        let prior = match prior_post {
            Some(post) => prior_slabs_of(post, cfg, c),
            None => self.prior_slabs(cfg, c),
        }
        .expect("VSC model has pseudo-inputs");
        let selector = self.selector.as_ref().expect("VSC model has a selector");
        let w = selector_weights(selector, cfg.selector, x);
        let [b, j] = post.mu.dims();
        let kl = if cfg.sparsity == SparsityTarget::SpikeCodeLength {
            // With a fixed spike probability the prior's γ_u is the posterior's own, which
            // zeroes the spike part and leaves the slab KL; the spike part against α follows.
            let u = cfg.pseudo_inputs;
            let rows = |t: Tensor<2>| t.unsqueeze_dim::<3>(1).expand([b, u, j]);
            let cols = |t: Tensor<2>| t.unsqueeze_dim::<3>(0).expand([b, u, j]);
            let kl_bu = spike_slab_kl(
                rows(post.mu.clone()),
                rows(post.logvar.clone()),
                rows(gamma_i.clone()),
                cols(prior.mu),
                cols(prior.logvar),
                rows(gamma_i.clone()),
            )
            .reshape([b, u]);
            (w.clone() * kl_bu).sum_dim(1).mul_scalar(slab_weight)
                + bernoulli_kl(gamma_i, cfg.alpha).sum_dim(1)
        } else {
            let kl_bu = spike_slab_kl_pairs(
                post.mu.clone(),
                post.logvar.clone(),
                gamma_i,
                prior.mu,
                prior.logvar,
                prior.gamma.clone(),
            );
            (w.clone() * kl_bu).sum_dim(1)
        };
        // γ̄(x): selector-weighted mean over u of the prior's mean spike probability.
        let gamma_bar = w.matmul(prior.gamma.mean_dim(1));
        let prior_sparsity = bernoulli_kl(gamma_bar, cfg.alpha).mul_scalar(j as f32);
        let sparsity = match (cfg.sparsity, own_sparsity) {
            (
                SparsityTarget::Posterior
                | SparsityTarget::PosteriorExcess
                | SparsityTarget::PosteriorCount
                | SparsityTarget::SpikeCodeLength,
                Some(own),
            ) => own,
            (SparsityTarget::Both, Some(own)) => prior_sparsity + own,
            _ => prior_sparsity,
        };
        (kl, sparsity)
    }
}

/// Flatten any float tensor to a host `Vec<f32>`.
pub fn tensor_to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor converts to f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::TrainConfig;
    use rand::SeedableRng;

    /// The KL term of `prior_terms` for the slab weights 1, 2 and 3, with the spikes'
    /// part against α, all `[rows]`.
    fn kl_by_slab_weight(prior: PriorKind) -> ([Vec<f32>; 3], Vec<f32>) {
        let device = Device::flex();
        let mut cfg = TrainConfig::tiny(12).model;
        cfg.prior = prior;
        cfg.sparsity = SparsityTarget::SpikeCodeLength;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let net = VscNet::new(&cfg, &mut rng, &device, None);
        let x: Vec<f32> = (0..4 * 12).map(|_| rng.random()).collect();
        let x = Tensor::from_data(TensorData::new(x, [4, 12]), &device);
        let post = net.encoder.forward(x.clone());
        let kl = |w: f32| {
            let cfg = ModelConfig {
                slab_kl_weight: w,
                ..cfg.clone()
            };
            tensor_to_vec(net.prior_terms(&cfg, x.clone(), &post, 50.0).0)
        };
        let gamma = post.log_gamma.clone().unwrap().exp();
        let spikes = tensor_to_vec(bernoulli_kl(gamma, cfg.alpha).sum_dim(1));
        ([kl(1.0), kl(2.0), kl(3.0)], spikes)
    }

    /// One stacked pass over the batch and the pseudo-inputs gives each their own
    /// posteriors (as two passes do), on the autodiff device the trainer uses and on plain
    /// flex, and the objective's KL term is the one computed from two passes.
    #[test]
    fn the_stacked_encoder_pass_equals_two_passes() {
        let cfg = TrainConfig::tiny(12).model;
        for device in [Device::flex().autodiff(), Device::flex()] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            let net = VscNet::new(&cfg, &mut rng, &device, None);
            let x: Vec<f32> = (0..6 * 12).map(|_| rng.random()).collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [6, 12]), &device);
            let p = net.pseudo_inputs.as_ref().expect("pseudo-inputs").val();
            let (post, prior) = net.encoder.forward_stacked(x.clone(), p.clone());
            let (post_ref, prior_ref) = (net.encoder.forward(x.clone()), net.encoder.forward(p));
            for (got, want) in [(&post, &post_ref), (&prior, &prior_ref)] {
                let pairs = [
                    (got.mu.clone(), want.mu.clone()),
                    (got.logvar.clone(), want.logvar.clone()),
                    (
                        got.log_gamma.clone().unwrap(),
                        want.log_gamma.clone().unwrap(),
                    ),
                ];
                for (a, b) in pairs {
                    assert_eq!(a.dims(), b.dims());
                    for (u, v) in tensor_to_vec(a).iter().zip(tensor_to_vec(b)) {
                        assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} vs {v}");
                    }
                }
            }
            let kl = |stacked: bool| {
                let prior = stacked.then(|| prior.clone());
                tensor_to_vec(net.prior_terms_with(&cfg, x.clone(), &post, prior, 50.0).0)
            };
            for (u, v) in kl(true).iter().zip(kl(false)) {
                assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "KL {u} vs {v}");
            }
        }
    }

    #[test]
    fn at_slab_weight_one_the_fixed_prior_kl_is_the_papers() {
        let ([k1, _, _], _) = kl_by_slab_weight(PriorKind::Fixed);
        let device = Device::flex();
        let cfg = TrainConfig::tiny(12).model;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let net = VscNet::new(
            &ModelConfig {
                prior: PriorKind::Fixed,
                ..cfg.clone()
            },
            &mut rng,
            &device,
            None,
        );
        let x: Vec<f32> = (0..4 * 12).map(|_| rng.random()).collect();
        let post = net
            .encoder
            .forward(Tensor::from_data(TensorData::new(x, [4, 12]), &device));
        let zeros = post.mu.zeros_like();
        let paper = tensor_to_vec(spike_slab_kl(
            post.mu.clone(),
            post.logvar.clone(),
            post.log_gamma.unwrap().exp(),
            zeros.clone(),
            zeros.clone(),
            zeros.add_scalar(cfg.alpha),
        ));
        for (row, (a, b)) in k1.iter().zip(&paper).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {row}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn the_slab_weight_scales_the_slab_part_of_the_kl_only() {
        for prior in [PriorKind::Fixed, PriorKind::PseudoInputs] {
            let ([k1, k2, k3], spikes) = kl_by_slab_weight(prior);
            for row in 0..k1.len() {
                let slab = k1[row] - spikes[row];
                assert!(slab > 1e-3, "{prior:?} row {row}: slab part {slab}");
                // The three must lie on one line whose slope is the slab part.
                let tol = 1e-5 * k3[row].abs().max(1.0);
                assert!(
                    (k2[row] - k1[row] - slab).abs() < tol,
                    "{prior:?} row {row}"
                );
                assert!(
                    (k3[row] - k2[row] - slab).abs() < tol,
                    "{prior:?} row {row}"
                );
            }
        }
    }

    #[test]
    fn the_spike_logit_penalty_charges_positive_logits_only() {
        let device = Device::flex();
        let mut cfg = TrainConfig::tiny(12).model;
        // Half the dims start well on, so both signs of v occur.
        cfg.spike_bias_init = Some(0.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let net = VscNet::new(&cfg, &mut rng, &device, None);
        let (rows, j) = (6, cfg.latent_dim);
        let x: Vec<f32> = (0..rows * 12).map(|_| rng.random()).collect();
        let x = Tensor::from_data(TensorData::new(x, [rows, 12]), &device);
        let noise = StepNoise {
            eps: Tensor::zeros([rows, j], &device),
            eta: Tensor::from_data(TensorData::new(vec![0.5f32; rows * j], [rows, j]), &device),
        };
        let sparsity = |w: f32| {
            let cfg = ModelConfig {
                spike_logit_l2: w,
                ..cfg.clone()
            };
            tensor_to_vec(net.vsc_loss(&cfg, x.clone(), &noise, 1.0, 50.0).sparsity)
        };
        let (off, on) = (sparsity(0.0), sparsity(0.5));
        let v = tensor_to_vec(net.encoder.forward(x.clone()).spike_logits.unwrap());
        assert!(v.iter().any(|v| *v > 0.0) && v.iter().any(|v| *v < 0.0));
        for r in 0..rows {
            let want: f32 = v[r * j..(r + 1) * j]
                .iter()
                .map(|v| 0.5 * v.max(0.0).powi(2))
                .sum();
            assert!(
                (on[r] - off[r] - want).abs() < 1e-4 * want.max(1.0),
                "row {r}"
            );
        }
    }

    #[test]
    fn a_decoder_that_reads_spikes_sees_on_dims_whose_value_is_zero() {
        let device = Device::flex().autodiff();
        let mut cfg = TrainConfig::tiny(12).model;
        cfg.decoder_spikes = true;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let net = VscNet::new(&cfg, &mut rng, &device, None);
        let j = cfg.latent_dim;
        assert_eq!(net.decoder.hidden.weight.val().dims()[0], 2 * j);

        let mut z = vec![0.0f32; 2 * j];
        z[1] = 0.5;
        z[j + 2] = -1.0;
        let input = net.decoder.code_input(Tensor::from_data(
            TensorData::new(z.clone(), [2, j]),
            &device,
        ));
        let got = tensor_to_vec(input);
        for (row, zs) in z.chunks(j).enumerate() {
            let (values, spikes) = got[row * 2 * j..(row + 1) * 2 * j].split_at(j);
            assert_eq!(values, zs);
            let want: Vec<f32> = zs.iter().map(|&v| f32::from(v != 0.0)).collect();
            assert_eq!(spikes, want);
        }

        // The objective feeds the relaxed spikes: the spike head gets a gradient through
        // the decoder's spike inputs even where the slab is exactly ε = 0.
        let x = Tensor::from_data(TensorData::new(vec![0.5f32; 4 * 12], [4, 12]), &device);
        let noise = StepNoise {
            eps: Tensor::zeros([4, j], &device),
            eta: Tensor::from_data(TensorData::new(vec![0.7f32; 4 * j], [4, j]), &device),
        };
        let parts = net.vsc_loss(&cfg, x, &noise, 0.0, 50.0);
        let grads = parts.recon_nll.sum().backward();
        let spike = net.encoder.spike.as_ref().unwrap();
        let g = tensor_to_vec(spike.bias.grad(&grads).unwrap());
        assert!(g.iter().any(|v| v.abs() > 0.0), "{g:?}");
    }

    #[test]
    fn the_spike_rate_charge_falls_on_dims_on_more_often_than_the_cap() {
        let device = Device::flex().autodiff();
        let cfg = ModelConfig {
            spike_rate_cap: 0.55,
            spike_rate_weight: 4.0,
            ..TrainConfig::tiny(12).model
        };
        // 4 examples × 3 dims: dim 0 is on for all of them (mean γ 0.9), dim 1 for half
        // (0.5, under the cap), dim 2 for none.
        let rows: [[f32; 3]; 4] = [
            [0.9, 0.9, 0.1],
            [0.9, 0.1, 0.1],
            [0.9, 0.9, 0.1],
            [0.9, 0.1, 0.1],
        ];
        let gamma =
            Tensor::from_data(TensorData::new(rows.concat(), [4, 3]), &device).require_grad();
        let charge = spike_rate_charge(gamma.clone(), &cfg);
        assert_eq!(charge.dims(), [1, 1]);
        let want = 4.0 * (0.9f32 - 0.55).powi(2);
        let got = tensor_to_vec(charge.clone())[0];
        assert!((got - want).abs() < 1e-6, "{got} against {want}");

        // Each example's γ of dim 0 pays d/dγ = 2w(γ̄ − cap)/B; the dims under the cap pay nothing.
        let grads = charge.sum().backward();
        let g = tensor_to_vec(gamma.grad(&grads).unwrap());
        for row in g.chunks(3) {
            assert!((row[0] - 2.0 * 4.0 * 0.35 / 4.0).abs() < 1e-6, "{g:?}");
            assert_eq!(&row[1..], &[0.0, 0.0], "{g:?}");
        }

        // Off by default, so the paper's objective is unchanged.
        let paper = TrainConfig::tiny(12).model;
        assert_eq!((paper.spike_rate_cap, paper.spike_rate_weight), (1.0, 0.0));
    }
}
