//! Closed-form KL divergences used by the VSC objective (paper eq. 6) and the sparsity term.

use burn::tensor::{FloatDType, Tensor};

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

/// D_KL(q_i ‖ q_u) of [`spike_slab_kl`] for every posterior row i (`[B, J]` inputs) against
/// every prior row u (`[U, J]` inputs), summed over J: `[B, U]`.
///
/// The broadcast form costs some 25 element-wise passes over `B × U × J` values forward and
/// as many backward, most of a small model's training step. Expanding the square
/// (μ_i − μ_u)² splits every term into a product of a posterior-only and a prior-only factor,
/// so the `B × U × J` work becomes one `[B, 4J] × [4J, U]` matmul:
///
/// ```text
/// KL = Σ_j g_i (log g_i − ½ log σ_i² − ½) + (1 − g_i) log(1 − g_i)         (row i only)
///   + Σ_j g_i · (½ log σ_u² + μ_u² / 2σ_u² − log g_u)
///       + g_i (σ_i² + μ_i²) · 1 / 2σ_u²  +  g_i μ_i · (−μ_u / σ_u²)
///       + (1 − g_i) · (−log(1 − g_u))
/// ```
///
/// The expanded square cancels: its terms grow like μ² / σ_u² while the KL may be small, so
/// where the device has f64 the whole computation runs in f64 (the features and the matmul
/// are only `O((B + U) J)` values) and the result agrees with the broadcast f32 form to f32
/// rounding; elsewhere (GPUs) it runs in f32.
pub fn spike_slab_kl_pairs(
    mu_i: Tensor<2>,
    logvar_i: Tensor<2>,
    gamma_i: Tensor<2>,
    mu_u: Tensor<2>,
    logvar_u: Tensor<2>,
    gamma_u: Tensor<2>,
) -> Tensor<2> {
    let device = mu_i.device();
    let wide = if device.supports_dtype(FloatDType::F64) {
        FloatDType::F64
    } else {
        FloatDType::F32
    };
    let up = |t: Tensor<2>| t.cast(wide);
    // Clamp in f32 exactly as the broadcast form does, then widen.
    let g_i = up(gamma_i.clamp(GAMMA_EPS, 1.0 - GAMMA_EPS));
    let g_u = up(gamma_u.clamp(GAMMA_EPS, 1.0 - GAMMA_EPS));
    let (mu_i, logvar_i) = (up(mu_i), up(logvar_i));
    let (mu_u, logvar_u) = (up(mu_u), up(logvar_u));

    let one_minus_i = g_i.clone().neg().add_scalar(1.0);
    let row_only = (g_i.clone()
        * (g_i.clone().log() - logvar_i.clone().mul_scalar(0.5)).sub_scalar(0.5)
        + one_minus_i.clone() * one_minus_i.clone().log())
    .sum_dim(1);
    let posterior_features = Tensor::cat(
        vec![
            g_i.clone(),
            g_i.clone() * (logvar_i.exp() + mu_i.clone().square()),
            g_i * mu_i,
            one_minus_i,
        ],
        1,
    );
    // 1 / 2σ_u²
    let half_precision_u = logvar_u.clone().neg().exp().mul_scalar(0.5);
    let prior_features = Tensor::cat(
        vec![
            logvar_u.mul_scalar(0.5) + mu_u.clone().square() * half_precision_u.clone()
                - g_u.clone().log(),
            half_precision_u.clone(),
            (mu_u * half_precision_u).mul_scalar(-2.0),
            g_u.neg().add_scalar(1.0).log().neg(),
        ],
        1,
    );
    (posterior_features.matmul(prior_features.transpose()) + row_only).cast(FloatDType::F32)
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn t2(v: &[f32], rows: usize, cols: usize, d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), d)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        crate::model::vsc::tensor_to_vec(t)
    }

    /// Random (μ, log σ², γ) rows; γ includes the clamp bounds (as f32, which is how the
    /// tensor forms clamp them) to exercise the guarded logs.
    fn rows(n: usize, j: usize, mu_range: f32, rng: &mut ChaCha8Rng) -> [Vec<f32>; 3] {
        let mu = (0..n * j)
            .map(|_| rng.random_range(-mu_range..mu_range))
            .collect();
        let lv = (0..n * j).map(|_| rng.random_range(-12.0..4.0)).collect();
        let g = (0..n * j)
            .map(|k| match k % 7 {
                0 => GAMMA_EPS,
                1 => 1.0 - GAMMA_EPS,
                _ => rng.random(),
            })
            .collect();
        [mu, lv, g]
    }

    #[test]
    fn pairwise_kl_matches_the_f64_reference_for_large_means_and_small_variances() {
        let (b, u, j) = (9, 5, 11);
        let d = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Posterior means near the prior means, far from 0, and σ² down to e^-12: the
        // expanded square cancels by ~10 digits here.
        let [pmu, plv, pg] = rows(u, j, 20.0, &mut rng);
        let [mut mu, lv, g] = rows(b, j, 0.01, &mut rng);
        for (i, m) in mu.iter_mut().enumerate() {
            *m += pmu[(i / j % u) * j + i % j];
        }
        let got = host(spike_slab_kl_pairs(
            t2(&mu, b, j, &d),
            t2(&lv, b, j, &d),
            t2(&g, b, j, &d),
            t2(&pmu, u, j, &d),
            t2(&plv, u, j, &d),
            t2(&pg, u, j, &d),
        ));
        for i in 0..b {
            for p in 0..u {
                let want: f64 = (0..j)
                    .map(|k| {
                        let q = |m: &[f32], v: &[f32], g: &[f32], r: usize| {
                            let at = r * j + k;
                            (m[at] as f64, (v[at] as f64).exp(), g[at] as f64)
                        };
                        spike_slab_kl_scalar(q(&mu, &lv, &g, i), q(&pmu, &plv, &pg, p))
                    })
                    .sum();
                let have = got[i * u + p] as f64;
                assert!(
                    (have - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "row {i} prior {p}: {have} vs f64 reference {want}"
                );
            }
        }
    }

    #[test]
    fn pairwise_kl_and_its_gradients_equal_the_broadcast_form() {
        let (b, u, j) = (6, 4, 7);
        let d = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let [mu, lv, mut g] = rows(b, j, 3.0, &mut rng);
        let [pmu, plv, mut pg] = rows(u, j, 3.0, &mut rng);
        // Both forms clamp exact 0 and 1 the same way.
        (g[0], g[1], pg[0], pg[1]) = (0.0, 1.0, 1.0, 0.0);
        let inputs = || {
            [
                t2(&mu, b, j, &d).require_grad(),
                t2(&lv, b, j, &d).require_grad(),
                t2(&g, b, j, &d).require_grad(),
                t2(&pmu, u, j, &d).require_grad(),
                t2(&plv, u, j, &d).require_grad(),
                t2(&pg, u, j, &d).require_grad(),
            ]
        };
        // A weighting like the selector's, so the gradients differ per pair.
        let w: Vec<f32> = (0..b * u).map(|_| rng.random()).collect();
        let weight = t2(&w, b, u, &d);

        let pair = inputs();
        let kl_pairs = spike_slab_kl_pairs(
            pair[0].clone(),
            pair[1].clone(),
            pair[2].clone(),
            pair[3].clone(),
            pair[4].clone(),
            pair[5].clone(),
        );
        let grads_pairs = (kl_pairs.clone() * weight.clone()).sum().backward();

        let bc = inputs();
        let rows3 = |t: Tensor<2>| t.unsqueeze_dim::<3>(1).expand([b, u, j]);
        let cols3 = |t: Tensor<2>| t.unsqueeze_dim::<3>(0).expand([b, u, j]);
        let kl_bc = spike_slab_kl(
            rows3(bc[0].clone()),
            rows3(bc[1].clone()),
            rows3(bc[2].clone()),
            cols3(bc[3].clone()),
            cols3(bc[4].clone()),
            cols3(bc[5].clone()),
        )
        .reshape([b, u]);
        let grads_bc = (kl_bc.clone() * weight).sum().backward();

        let close = |a: &[f32], e: &[f32], what: &str| {
            for (k, (x, y)) in a.iter().zip(e).enumerate() {
                assert!(
                    (x - y).abs() <= 2e-4 * y.abs().max(1.0),
                    "{what}[{k}]: {x} vs broadcast {y}"
                );
            }
        };
        close(&host(kl_pairs), &host(kl_bc), "KL");
        for (k, name) in ["μ_i", "logvar_i", "γ_i", "μ_u", "logvar_u", "γ_u"]
            .iter()
            .enumerate()
        {
            let gp = pair[k].grad(&grads_pairs).expect("pairwise gradient");
            let gb = bc[k].grad(&grads_bc).expect("broadcast gradient");
            close(&host(gp), &host(gb), name);
        }
    }
}
