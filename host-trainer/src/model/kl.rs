//! Closed-form KL divergences used by the VSC objective (paper eq. 6) and the sparsity term.

use burn::tensor::Tensor;

/// Guard for logs of spike probabilities near 0 or 1, as in the authors' code.
pub const GAMMA_EPS: f32 = 1e-6;

/// Closed-form D_KL(q_i || q_u) between two spike-and-slab distributions, summed over the last
/// (latent) dimension. All inputs broadcast against each other (e.g. `[B, 1, J]` vs `[1, U, J]`);
/// the output keeps the broadcast shape with the last dimension of size 1.
///
/// `gamma_*` are spike probabilities (not logs); they are clamped to `[eps, 1 - eps]`.
pub fn spike_slab_kl<const D: usize>(
    mu_i: Tensor<D>,
    logvar_i: Tensor<D>,
    gamma_i: Tensor<D>,
    mu_u: Tensor<D>,
    logvar_u: Tensor<D>,
    gamma_u: Tensor<D>,
) -> Tensor<D> {
    let g_i = gamma_i.clamp(GAMMA_EPS, 1.0 - GAMMA_EPS);
    let g_u = gamma_u.clamp(GAMMA_EPS, 1.0 - GAMMA_EPS);
    // log(σ_u/σ_i) = ½ (log σ_u² − log σ_i²)
    let var_i = logvar_i.clone().exp();
    let inv_var_u = logvar_u.clone().neg().exp();
    let diff = mu_i - mu_u;
    let slab = (logvar_u - logvar_i).mul_scalar(0.5)
        + (var_i + diff.square()) * inv_var_u.mul_scalar(0.5)
        - 0.5;
    let one_minus_i = g_i.clone().neg() + 1.0;
    let one_minus_u = g_u.clone().neg() + 1.0;
    let spike = one_minus_i.clone() * (one_minus_i.log() - one_minus_u.log())
        + g_i.clone() * (g_i.clone().log() - g_u.log());
    let d = slab.dims().len() - 1;
    (g_i * slab + spike).sum_dim(d)
}

/// D_KL(Bernoulli(p) || Bernoulli(alpha)) element-wise, p clamped to `[eps, 1 - eps]`.
pub fn bernoulli_kl<const D: usize>(p: Tensor<D>, alpha: f32) -> Tensor<D> {
    let p = p.clamp(GAMMA_EPS, 1.0 - GAMMA_EPS);
    let q = p.clone().neg() + 1.0;
    p.clone() * (p.log() - alpha.ln()) + q.clone() * (q.log() - (1.0 - alpha).ln())
}

/// Scalar reference of [`spike_slab_kl`] for one dimension, in f64 (used by tests and tooling).
pub fn spike_slab_kl_scalar(
    (mu_i, var_i, g_i): (f64, f64, f64),
    (mu_u, var_u, g_u): (f64, f64, f64),
) -> f64 {
    let eps = GAMMA_EPS as f64;
    let g_i = g_i.clamp(eps, 1.0 - eps);
    let g_u = g_u.clamp(eps, 1.0 - eps);
    let slab = 0.5 * (var_u / var_i).ln() + (var_i + (mu_i - mu_u).powi(2)) / (2.0 * var_u) - 0.5;
    g_i * slab + (1.0 - g_i) * ((1.0 - g_i) / (1.0 - g_u)).ln() + g_i * (g_i / g_u).ln()
}
