//! β-VAE and β-TCVAE objectives on the same [`VscNet`] encoder/decoder (VSC.md §5).

use burn::tensor::Tensor;

use super::config::ModelConfig;
use super::vsc::{LN_2PI, LossParts, StepNoise, VscNet};

/// KL(N(μ, σ²) ‖ N(0, I)) per row, `[B, 1]`.
pub fn gaussian_kl_std_normal(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<2> {
    (mu.square() + logvar.clone().exp() - logvar)
        .sub_scalar(1.0)
        .mul_scalar(0.5)
        .sum_dim(1)
}

/// Numerically stable log Σ exp over `dim` (keeps the dimension).
pub fn logsumexp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let m = x.clone().max_dim(dim).detach();
    (x - m.clone()).exp().sum_dim(dim).log() + m
}

impl VscNet {
    /// β-VAE: −log p(x|z) + β KL(q(z|x) ‖ N(0, I)). `kl` reports the unweighted KL.
    pub fn beta_vae_loss(
        &self,
        cfg: &ModelConfig,
        x: Tensor<2>,
        noise: &StepNoise,
        beta: f32,
    ) -> LossParts {
        let post = self.encoder.forward(x.clone());
        let z = post.mu.clone() + post.logvar.clone().mul_scalar(0.5).exp() * noise.eps.clone();
        let nll = self.decoder.nll(x, z, cfg.likelihood);
        let kl = gaussian_kl_std_normal(post.mu, post.logvar);
        let loss = (nll.clone() + kl.clone().mul_scalar(beta)).mean();
        let zeros = kl.zeros_like();
        let one = loss.ones_like();
        LossParts {
            loss,
            recon_nll: nll,
            kl,
            sparsity: zeros,
            mean_gamma: one,
        }
    }

    /// β-TCVAE with minibatch-weighted sampling (Chen et al. 2018): index-code MI + β·TC +
    /// dimension-wise KL. `dataset_size` is N of the MWS estimator. `kl` reports the analytic
    /// KL to N(0, I) (so the ELBO is comparable with the other models).
    pub fn tcvae_loss(
        &self,
        cfg: &ModelConfig,
        x: Tensor<2>,
        noise: &StepNoise,
        beta: f32,
        dataset_size: usize,
    ) -> LossParts {
        let post = self.encoder.forward(x.clone());
        let z = post.mu.clone() + post.logvar.clone().mul_scalar(0.5).exp() * noise.eps.clone();
        let nll = self.decoder.nll(x, z.clone(), cfg.likelihood);
        let [b, j] = z.dims();

        // log q(z_i,d | x_k,d) for all pairs: [B (i), B (k), J].
        let zi = z.clone().unsqueeze_dim::<3>(1).expand([b, b, j]);
        let mu_k = post.mu.clone().unsqueeze_dim::<3>(0).expand([b, b, j]);
        let lv_k = post.logvar.clone().unsqueeze_dim::<3>(0).expand([b, b, j]);
        let log_q_pair = ((zi - mu_k).square() * lv_k.clone().neg().exp() + lv_k)
            .add_scalar(LN_2PI)
            .mul_scalar(-0.5);
        let log_nm = ((dataset_size.max(1) * b) as f32).ln();
        // log q(z_i) ≈ logsumexp_k Σ_d log q(z_i,d | x_k) − log(N B)
        let log_qz = logsumexp(log_q_pair.clone().sum_dim(2), 1)
            .sub_scalar(log_nm)
            .reshape([b, 1]);
        // log Π_d q(z_i,d) ≈ Σ_d [logsumexp_k log q(z_i,d | x_k) − log(N B)]
        let log_prod = logsumexp(log_q_pair, 1)
            .sub_scalar(log_nm)
            .sum_dim(2)
            .reshape([b, 1]);
        let log_qzx = ((z.clone() - post.mu.clone()).square() * post.logvar.clone().neg().exp()
            + post.logvar.clone())
        .add_scalar(LN_2PI)
        .mul_scalar(-0.5)
        .sum_dim(1);
        let log_pz = z.square().add_scalar(LN_2PI).mul_scalar(-0.5).sum_dim(1);

        let mi = log_qzx - log_qz.clone();
        let tc = log_qz - log_prod.clone();
        let dwkl = log_prod - log_pz;
        let loss = (nll.clone() + mi + tc.mul_scalar(beta) + dwkl).mean();
        let kl = gaussian_kl_std_normal(post.mu, post.logvar);
        let zeros = kl.zeros_like();
        let one = loss.ones_like();
        LossParts {
            loss,
            recon_nll: nll,
            kl,
            sparsity: zeros,
            mean_gamma: one,
        }
    }
}
