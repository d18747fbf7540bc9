//! Code statistics computed from plain row-major slices (no model needed):
//! active dimensions, per-class spike probabilities (E3), |correlation| between
//! ground-truth sources and latents with the top1−top2 gap (E2), ELBO terms.

use serde::{Deserialize, Serialize};

/// A latent dimension is "on" for one example when its spike probability γ exceeds this.
pub const SPIKE_ON_THRESHOLD: f32 = 0.5;
/// `ActiveDims::n_active` counts dims whose mean γ over the data exceeds this.
pub const MEAN_GAMMA_THRESHOLD: f64 = 0.5;
/// `ActiveDims::n_used` counts dims that are on (γ > 0.5) for at least this fraction of examples.
pub const MIN_ON_FRACTION: f64 = 0.01;

/// Per-dimension activity summary over a data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveDims {
    /// Mean γ per latent dimension (length J).
    pub mean_gamma: Vec<f64>,
    /// Fraction of examples with γ_j > `SPIKE_ON_THRESHOLD`, per dimension.
    pub on_fraction: Vec<f64>,
    /// Threshold on the mean γ used for `n_active` (`MEAN_GAMMA_THRESHOLD`).
    pub mean_gamma_threshold: f64,
    /// Number of dims with mean γ > `mean_gamma_threshold`.
    pub n_active: usize,
    /// Threshold on `on_fraction` used for `n_used` (`MIN_ON_FRACTION`).
    pub min_on_fraction: f64,
    /// Number of dims on for at least `min_on_fraction` of the examples: the dims the
    /// model exploits at all (a sparse code can use a dim for a few classes only, so its
    /// mean γ stays well below 0.5).
    pub n_used: usize,
    /// Mean over examples of the number of dims with γ > 0.5 (the code's L0 norm).
    pub mean_active_per_example: f64,
}

/// Activity summary of `gamma` (n × `latent_dim`, row-major).
pub fn active_dims(gamma: &[f32], latent_dim: usize) -> ActiveDims {
    assert!(
        latent_dim > 0 && gamma.len().is_multiple_of(latent_dim),
        "gamma is not n × latent_dim"
    );
    let n = gamma.len() / latent_dim;
    let mut sum = vec![0.0f64; latent_dim];
    let mut on = vec![0usize; latent_dim];
    let mut total_on = 0usize;
    for row in gamma.chunks_exact(latent_dim) {
        for (j, &g) in row.iter().enumerate() {
            sum[j] += f64::from(g);
            if g > SPIKE_ON_THRESHOLD {
                on[j] += 1;
                total_on += 1;
            }
        }
    }
    let denom = n.max(1) as f64;
    let mean_gamma: Vec<f64> = sum.iter().map(|s| s / denom).collect();
    let on_fraction: Vec<f64> = on.iter().map(|&c| c as f64 / denom).collect();
    ActiveDims {
        n_active: mean_gamma
            .iter()
            .filter(|&&m| m > MEAN_GAMMA_THRESHOLD)
            .count(),
        n_used: on_fraction
            .iter()
            .filter(|&&f| f >= MIN_ON_FRACTION)
            .count(),
        mean_gamma,
        on_fraction,
        mean_gamma_threshold: MEAN_GAMMA_THRESHOLD,
        min_on_fraction: MIN_ON_FRACTION,
        mean_active_per_example: total_on as f64 / denom,
    }
}

/// E3: mean γ per (latent dim, class), as `result[j][class]` (J × n_classes).
/// `labels` are 0-based class indices; a class with no example gets a column of NaN.
pub fn mean_gamma_per_class(
    gamma: &[f32],
    latent_dim: usize,
    labels: &[usize],
    n_classes: usize,
) -> Vec<Vec<f64>> {
    assert_eq!(
        gamma.len(),
        labels.len() * latent_dim,
        "gamma rows != labels"
    );
    let mut sum = vec![vec![0.0f64; n_classes]; latent_dim];
    let mut count = vec![0usize; n_classes];
    for (row, &c) in gamma.chunks_exact(latent_dim).zip(labels) {
        count[c] += 1;
        for (j, &g) in row.iter().enumerate() {
            sum[j][c] += f64::from(g);
        }
    }
    for row in &mut sum {
        for (c, v) in row.iter_mut().enumerate() {
            *v = if count[c] == 0 {
                f64::NAN
            } else {
                *v / count[c] as f64
            };
        }
    }
    sum
}

/// E2 for the spikes: for every latent dim and every row mask (e.g. "the hat is drawn"),
/// P(γ > 0.5 | mask) − P(γ > 0.5 | not mask), as `result[j][mask]`. +1: the dim is on exactly
/// where the mask holds; −1: exactly where it does not; 0: unrelated, and also where the mask
/// is true (or false) for every row, so there is nothing to contrast (JSON has no NaN).
pub fn spike_contrast(gamma: &[f32], latent_dim: usize, masks: &[Vec<bool>]) -> Vec<Vec<f64>> {
    assert!(latent_dim > 0 && gamma.len().is_multiple_of(latent_dim));
    let n = gamma.len() / latent_dim;
    let mut out = vec![vec![0.0; masks.len()]; latent_dim];
    for (k, mask) in masks.iter().enumerate() {
        assert_eq!(mask.len(), n, "mask {k} has {} rows, gamma {n}", mask.len());
        let n_in = mask.iter().filter(|&&m| m).count();
        if n_in == 0 || n_in == n {
            continue;
        }
        let mut on = vec![[0usize; 2]; latent_dim];
        for (row, &m) in gamma.chunks_exact(latent_dim).zip(mask) {
            for (count, &g) in on.iter_mut().zip(row) {
                if g > SPIKE_ON_THRESHOLD {
                    count[usize::from(m)] += 1;
                }
            }
        }
        for (j, count) in on.iter().enumerate() {
            out[j][k] = count[1] as f64 / n_in as f64 - count[0] as f64 / (n - n_in) as f64;
        }
    }
    out
}

/// The sparse code of VSC.md §4: μ ⊙ 1[γ > 0.5].
pub fn sparse_code(mu: &[f32], gamma: &[f32]) -> Vec<f32> {
    assert_eq!(mu.len(), gamma.len());
    mu.iter()
        .zip(gamma)
        .map(|(&m, &g)| if g > SPIKE_ON_THRESHOLD { m } else { 0.0 })
        .collect()
}

/// E2: |Pearson correlation| between every source (n × `n_sources`) and every latent
/// (n × `latent_dim`), as `result[source][latent]`. A constant column has correlation 0.
pub fn abs_correlation(
    sources: &[f32],
    n_sources: usize,
    latents: &[f32],
    latent_dim: usize,
) -> Vec<Vec<f64>> {
    assert!(n_sources > 0 && latent_dim > 0);
    let n = sources.len() / n_sources;
    assert_eq!(sources.len(), n * n_sources, "sources is not n × n_sources");
    assert_eq!(
        latents.len(),
        n * latent_dim,
        "latents rows != sources rows"
    );
    let centred = |data: &[f32], cols: usize| -> (Vec<f64>, Vec<f64>) {
        let mut mean = vec![0.0f64; cols];
        for row in data.chunks_exact(cols) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut c: Vec<f64> = data
            .chunks_exact(cols)
            .flat_map(|row| {
                row.iter()
                    .zip(&mean)
                    .map(|(&v, m)| f64::from(v) - m)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut norm = vec![0.0f64; cols];
        for row in c.chunks_exact(cols) {
            for (s, v) in norm.iter_mut().zip(row) {
                *s += v * v;
            }
        }
        norm.iter_mut().for_each(|s| *s = s.sqrt());
        for row in c.chunks_exact_mut(cols) {
            for (v, s) in row.iter_mut().zip(&norm) {
                // Relative guard: a column constant up to rounding counts as constant.
                *v = if *s > 1e-12 { *v / s } else { 0.0 };
            }
        }
        (c, norm)
    };
    let (cs, _) = centred(sources, n_sources);
    let (cl, _) = centred(latents, latent_dim);
    let mut out = vec![vec![0.0f64; latent_dim]; n_sources];
    for (rs, rl) in cs.chunks_exact(n_sources).zip(cl.chunks_exact(latent_dim)) {
        for (s, &a) in rs.iter().enumerate() {
            if a == 0.0 {
                continue;
            }
            for (l, &b) in rl.iter().enumerate() {
                out[s][l] += a * b;
            }
        }
    }
    for row in &mut out {
        row.iter_mut().for_each(|v| *v = v.abs().min(1.0));
    }
    out
}

/// E2 summary: mean over sources of (largest − second-largest |corr| across latents).
/// High when each source is captured by one latent only.
pub fn top_gap(abs_corr: &[Vec<f64>]) -> f64 {
    if abs_corr.is_empty() {
        return 0.0;
    }
    let gaps: f64 = abs_corr
        .iter()
        .map(|row| {
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for &v in row {
                if v > a {
                    b = a;
                    a = v;
                } else if v > b {
                    b = v;
                }
            }
            a - b
        })
        .sum();
    gaps / abs_corr.len() as f64
}

/// Column order for plotting an E2 matrix "grouped as in the paper": latents sorted by
/// the source they correlate with most (source order = group order), strongest first;
/// latents whose best |corr| is below `min_corr` go last.
pub fn group_latent_order(abs_corr: &[Vec<f64>], min_corr: f64) -> Vec<usize> {
    let latent_dim = abs_corr.first().map_or(0, Vec::len);
    let mut keyed: Vec<(usize, f64, usize)> = (0..latent_dim)
        .map(|l| {
            let (best_s, best) = abs_corr
                .iter()
                .enumerate()
                .map(|(s, row)| (s, row[l]))
                .fold(
                    (usize::MAX, -1.0),
                    |acc, x| if x.1 > acc.1 { x } else { acc },
                );
            let key = if best >= min_corr { best_s } else { usize::MAX };
            (key, best, l)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    keyed.into_iter().map(|k| k.2).collect()
}

/// ELBO and its terms, in nats per example (means over the evaluated set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ElboTerms {
    /// −log p(x|z), one sample of z per example.
    pub recon_nll: f64,
    /// Selector-weighted KL to the pseudo-input priors (VSC) or KL to N(0, I) (β-VAE, unweighted).
    pub kl: f64,
    /// Sparsity term J·KL(Bern(γ̄) || Bern(α)) of the training objective; 0 for β-VAE.
    /// A regulariser on the prior, so not part of the ELBO.
    pub sparsity: f64,
    /// ELBO = −(recon_nll + kl), a lower bound on log p(x) (higher is better).
    pub elbo: f64,
    /// Training objective recon_nll + kl + sparsity (unweighted).
    pub objective: f64,
    /// Number of examples averaged over.
    pub n_examples: usize,
}

impl ElboTerms {
    /// Build from per-example means; `elbo` and `objective` are derived.
    pub fn new(recon_nll: f64, kl: f64, sparsity: f64, n_examples: usize) -> Self {
        Self {
            recon_nll,
            kl,
            sparsity,
            elbo: -(recon_nll + kl),
            objective: recon_nll + kl + sparsity,
            n_examples,
        }
    }

    /// Example-weighted mean of batch results (e.g. from evaluating minibatches).
    pub fn combine(parts: &[ElboTerms]) -> Self {
        let n: usize = parts.iter().map(|p| p.n_examples).sum();
        if n == 0 {
            return Self::default();
        }
        let w = |f: fn(&ElboTerms) -> f64| {
            parts
                .iter()
                .map(|p| f(p) * p.n_examples as f64)
                .sum::<f64>()
                / n as f64
        };
        Self::new(w(|p| p.recon_nll), w(|p| p.kl), w(|p| p.sparsity), n)
    }
}

/// Mean and sample standard deviation (n−1); sd is 0 for fewer than two values.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
