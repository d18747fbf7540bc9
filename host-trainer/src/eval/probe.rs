//! Linear probe: multinomial logistic regression (softmax, L2 on the weights, not the
//! biases) fitted full-batch with L-BFGS on standardised features, then scored.
//!
//! Plain Rust (f32 storage, f64 arithmetic) so it runs on any matrix of codes or raw
//! windows without the model.

use serde::{Deserialize, Serialize};

/// Errors from fitting a probe.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProbeError {
    #[error("features have {len} values, not a multiple of dim = {dim}")]
    Shape { len: usize, dim: usize },
    #[error("{rows} feature rows but {labels} labels")]
    LabelCount { rows: usize, labels: usize },
    #[error("label {label} at row {row} is not below n_classes = {n_classes}")]
    LabelRange {
        row: usize,
        label: usize,
        n_classes: usize,
    },
    #[error("no training rows")]
    Empty,
    #[error("feature value at row {row}, column {col} is not finite")]
    NonFinite { row: usize, col: usize },
}

/// Fitting options.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// L2 penalty λ/2·‖W‖² added to the mean cross-entropy (features are standardised).
    pub l2: f64,
    /// L-BFGS iterations at most.
    pub max_iter: usize,
    /// Stop when the largest absolute gradient entry falls below this.
    pub grad_tol: f64,
    /// L-BFGS memory (pairs kept).
    pub memory: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            l2: 1e-4,
            max_iter: 300,
            grad_tol: 1e-5,
            memory: 10,
        }
    }
}

/// A fitted probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearProbe {
    pub dim: usize,
    pub n_classes: usize,
    /// Standardisation fitted on the training rows (std 1 for constant features).
    pub feature_mean: Vec<f64>,
    pub feature_std: Vec<f64>,
    /// n_classes × (dim + 1), the last column is the bias.
    pub weights: Vec<f64>,
    pub iterations: usize,
    /// Final training objective (mean cross-entropy + penalty).
    pub final_loss: f64,
}

fn check(x: &[f32], dim: usize, labels: &[usize], n_classes: usize) -> Result<usize, ProbeError> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(ProbeError::Shape { len: x.len(), dim });
    }
    let rows = x.len() / dim;
    if rows != labels.len() {
        return Err(ProbeError::LabelCount {
            rows,
            labels: labels.len(),
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        return Err(ProbeError::LabelRange {
            row,
            label,
            n_classes,
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ProbeError::NonFinite {
            row: i / dim,
            col: i % dim,
        });
    }
    Ok(rows)
}

struct Objective<'a> {
    x: &'a [f32], // standardised, rows × dim
    dim: usize,
    labels: &'a [usize],
    n_classes: usize,
    l2: f64,
}

impl Objective<'_> {
    /// Loss and gradient at `w` (n_classes × (dim + 1)).
    fn eval(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (d1, k) = (self.dim + 1, self.n_classes);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut logits = vec![0.0f64; k];
        let mut loss = 0.0;
        for (row, &y) in self.x.chunks_exact(self.dim).zip(self.labels) {
            for (c, l) in logits.iter_mut().enumerate() {
                let wc = &w[c * d1..(c + 1) * d1];
                *l = wc[self.dim]
                    + row
                        .iter()
                        .zip(wc)
                        .map(|(&a, &b)| f64::from(a) * b)
                        .sum::<f64>();
            }
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            loss += z.ln() + max - logits[y];
            for (c, l) in logits.iter().enumerate() {
                let r = (l - max).exp() / z - if c == y { 1.0 } else { 0.0 };
                let gc = &mut grad[c * d1..(c + 1) * d1];
                for (g, &a) in gc.iter_mut().zip(row) {
                    *g += r * f64::from(a);
                }
                gc[self.dim] += r;
            }
        }
        let n = self.labels.len() as f64;
        loss /= n;
        grad.iter_mut().for_each(|g| *g /= n);
        for c in 0..k {
            for d in 0..self.dim {
                let i = c * d1 + d;
                loss += 0.5 * self.l2 * w[i] * w[i];
                grad[i] += self.l2 * w[i];
            }
        }
        loss
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimise with L-BFGS (two-loop recursion, backtracking Armijo line search).
/// Returns (iterations, final loss).
fn lbfgs(obj: &Objective, w: &mut [f64], cfg: &ProbeConfig) -> (usize, f64) {
    let n = w.len();
    let mut g = vec![0.0; n];
    let mut f = obj.eval(w, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut g_new = vec![0.0; n];
    let mut w_new = vec![0.0; n];
    let mut iter = 0;
    while iter < cfg.max_iter {
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) < cfg.grad_tol {
            break;
        }
        iter += 1;
        // Two-loop recursion: d = −H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let a = dot(s, &q) / dot(y, s);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let scale = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / dot(&g, &g).sqrt().max(1.0),
        };
        q.iter_mut().for_each(|v| *v *= scale);
        for ((s, y), a) in s_hist.iter().zip(&y_hist).zip(alphas.iter().rev()) {
            let b = dot(y, &q) / dot(y, s);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&d, &g);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            d = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        let mut step = 1.0;
        let mut f_new;
        loop {
            w_new
                .iter_mut()
                .zip(w.iter().zip(&d))
                .for_each(|(wn, (wi, di))| *wn = wi + step * di);
            f_new = obj.eval(&w_new, &mut g_new);
            if f_new <= f + 1e-4 * step * slope || step < 1e-12 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = w_new.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let converged = (f - f_new).abs() <= 1e-12 * f.abs().max(1.0);
        w.copy_from_slice(&w_new);
        g.copy_from_slice(&g_new);
        f = f_new;
        if dot(&s, &y) > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > cfg.memory {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        if converged {
            break;
        }
    }
    (iter, f)
}

impl LinearProbe {
    /// Fit on `x` (rows × `dim`, row-major) with 0-based `labels` below `n_classes`.
    pub fn fit(
        x: &[f32],
        dim: usize,
        labels: &[usize],
        n_classes: usize,
        cfg: &ProbeConfig,
    ) -> Result<Self, ProbeError> {
        let rows = check(x, dim, labels, n_classes)?;
        if rows == 0 {
            return Err(ProbeError::Empty);
        }
        let mut mean = vec![0.0f64; dim];
        for row in x.chunks_exact(dim) {
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, &v)| *m += f64::from(v));
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0.0f64; dim];
        for row in x.chunks_exact(dim) {
            var.iter_mut()
                .zip(row.iter().zip(&mean))
                .for_each(|(s, (&v, m))| *s += (f64::from(v) - m).powi(2));
        }
        let std: Vec<f64> = var
            .iter()
            .map(|s| {
                let sd = (s / rows as f64).sqrt();
                if sd > 1e-12 { sd } else { 1.0 }
            })
            .collect();
        let mut probe = Self {
            dim,
            n_classes,
            feature_mean: mean,
            feature_std: std,
            weights: vec![0.0; n_classes * (dim + 1)],
            iterations: 0,
            final_loss: f64::NAN,
        };
        let xs = probe.standardise(x);
        let obj = Objective {
            x: &xs,
            dim,
            labels,
            n_classes,
            l2: cfg.l2,
        };
        let mut w = std::mem::take(&mut probe.weights);
        let (iterations, loss) = lbfgs(&obj, &mut w, cfg);
        probe.weights = w;
        probe.iterations = iterations;
        probe.final_loss = loss;
        Ok(probe)
    }

    fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.chunks_exact(self.dim)
            .flat_map(|row| {
                row.iter()
                    .zip(self.feature_mean.iter().zip(&self.feature_std))
                    .map(|(&v, (m, s))| ((f64::from(v) - m) / s) as f32)
            })
            .collect()
    }

    /// Predicted class per row of `x` (rows × dim).
    pub fn predict(&self, x: &[f32]) -> Vec<usize> {
        let d1 = self.dim + 1;
        self.standardise(x)
            .chunks_exact(self.dim)
            .map(|row| {
                (0..self.n_classes)
                    .map(|c| {
                        let wc = &self.weights[c * d1..(c + 1) * d1];
                        wc[self.dim]
                            + row
                                .iter()
                                .zip(wc)
                                .map(|(&a, &b)| f64::from(a) * b)
                                .sum::<f64>()
                    })
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |acc, (c, l)| if l > acc.1 { (c, l) } else { acc },
                    )
                    .0
            })
            .collect()
    }
}

/// Accuracy, per-class F1 and the confusion matrix of a classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub n_classes: usize,
    pub n_examples: usize,
    pub accuracy: f64,
    /// F1 per class; classes with neither true nor predicted examples get NaN (serialised as null).
    pub per_class_f1: Vec<f64>,
    /// Mean F1 over the classes that occur in the true labels.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Score predictions against true labels (both 0-based, below `n_classes`).
pub fn classification_report(
    truth: &[usize],
    predicted: &[usize],
    n_classes: usize,
) -> ClassificationReport {
    assert_eq!(truth.len(), predicted.len());
    let mut confusion = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let correct: u64 = (0..n_classes).map(|c| confusion[c][c]).sum();
    let per_class_f1: Vec<f64> = (0..n_classes)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let actual: u64 = confusion[c].iter().sum();
            let pred: u64 = confusion.iter().map(|r| r[c]).sum();
            if actual + pred == 0 {
                f64::NAN
            } else {
                2.0 * tp / (actual + pred) as f64
            }
        })
        .collect();
    let present: Vec<f64> = (0..n_classes)
        .filter(|&c| confusion[c].iter().sum::<u64>() > 0)
        .map(|c| per_class_f1[c])
        .collect();
    ClassificationReport {
        n_classes,
        n_examples: truth.len(),
        accuracy: if truth.is_empty() {
            f64::NAN
        } else {
            correct as f64 / truth.len() as f64
        },
        macro_f1: if present.is_empty() {
            f64::NAN
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        },
        per_class_f1,
        confusion,
    }
}

/// Result of fitting a probe on train rows and scoring it on test rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// What the features were (e.g. "gamma", "sparse_code", "raw_window", "beta_vae_mu").
    pub features: String,
    pub dim: usize,
    pub train_accuracy: f64,
    pub test: ClassificationReport,
    pub iterations: usize,
    pub config: ProbeConfig,
}

/// Fit on (train_x, train_y), score on (test_x, test_y).
#[allow(clippy::too_many_arguments)]
pub fn run_probe(
    features: &str,
    train_x: &[f32],
    train_y: &[usize],
    test_x: &[f32],
    test_y: &[usize],
    dim: usize,
    n_classes: usize,
    cfg: &ProbeConfig,
) -> Result<ProbeResult, ProbeError> {
    check(test_x, dim, test_y, n_classes)?;
    let probe = LinearProbe::fit(train_x, dim, train_y, n_classes, cfg)?;
    let train_pred = probe.predict(train_x);
    let train_accuracy = train_pred
        .iter()
        .zip(train_y)
        .filter(|(a, b)| a == b)
        .count() as f64
        / train_y.len() as f64;
    let test = classification_report(test_y, &probe.predict(test_x), n_classes);
    Ok(ProbeResult {
        features: features.to_string(),
        dim,
        train_accuracy,
        test,
        iterations: probe.iterations,
        config: *cfg,
    })
}
