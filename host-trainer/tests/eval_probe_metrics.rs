//! Linear probe and code metrics on synthetic inputs with known answers.

use host_trainer::eval::metrics::{
    ElboTerms, abs_correlation, active_dims, group_latent_order, mean_gamma_per_class, mean_sd,
    sparse_code, spike_contrast, top_gap,
};
use host_trainer::eval::probe::{
    LinearProbe, ProbeConfig, ProbeError, classification_report, run_probe,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// `n` points per class around well-separated centres in `dim` dimensions.
fn blobs(n_per_class: usize, n_classes: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..n_classes {
        for _ in 0..n_per_class {
            for d in 0..dim {
                let centre = if d == c % dim { 6.0 } else { 0.0 };
                x.push(centre + normal(&mut rng));
            }
            y.push(c);
        }
    }
    (x, y)
}

#[test]
fn probe_separates_separable_classes() {
    let (tx, ty) = blobs(100, 4, 6, 1);
    let (vx, vy) = blobs(100, 4, 6, 2);
    let r = run_probe("blobs", &tx, &ty, &vx, &vy, 6, 4, &ProbeConfig::default()).unwrap();
    assert!(r.test.accuracy > 0.99, "test accuracy {}", r.test.accuracy);
    assert!(r.train_accuracy > 0.99);
    assert!(
        r.test.per_class_f1.iter().all(|&f| f > 0.97),
        "{:?}",
        r.test.per_class_f1
    );
}

#[test]
fn probe_on_random_labels_is_at_chance() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (n_train, n_test, dim, k) = (400, 2000, 10, 4);
    let x: Vec<f32> = (0..(n_train + n_test) * dim)
        .map(|_| normal(&mut rng))
        .collect();
    let y: Vec<usize> = (0..n_train + n_test)
        .map(|_| rng.random_range(0..k))
        .collect();
    let (tx, vx) = x.split_at(n_train * dim);
    let (ty, vy) = y.split_at(n_train);
    let r = run_probe("noise", tx, ty, vx, vy, dim, k, &ProbeConfig::default()).unwrap();
    // Chance is 0.25; binomial sd at n = 2000 is 0.0097.
    assert!(
        (0.2..0.3).contains(&r.test.accuracy),
        "test accuracy {}",
        r.test.accuracy
    );
    // It does fit the training noise a little.
    assert!(r.train_accuracy > r.test.accuracy);
}

#[test]
fn probe_ignores_feature_scale() {
    let (tx, ty) = blobs(60, 3, 4, 3);
    let (vx, _) = blobs(60, 3, 4, 4);
    let scale = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .enumerate()
            .map(|(i, v)| if i % 4 == 1 { v * 1000.0 + 5e3 } else { *v })
            .collect()
    };
    let cfg = ProbeConfig::default();
    let a = LinearProbe::fit(&tx, 4, &ty, 3, &cfg).unwrap().predict(&vx);
    let b = LinearProbe::fit(&scale(&tx), 4, &ty, 3, &cfg)
        .unwrap()
        .predict(&scale(&vx));
    let same = a.iter().zip(&b).filter(|(p, q)| p == q).count();
    assert!(
        same as f64 >= 0.99 * a.len() as f64,
        "{same} of {} agree",
        a.len()
    );
}

#[test]
fn probe_rejects_bad_input() {
    let cfg = ProbeConfig::default();
    assert_eq!(
        LinearProbe::fit(&[0.0; 5], 2, &[0, 1], 2, &cfg).unwrap_err(),
        ProbeError::Shape { len: 5, dim: 2 }
    );
    assert_eq!(
        LinearProbe::fit(&[0.0; 4], 2, &[0, 5], 2, &cfg).unwrap_err(),
        ProbeError::LabelRange {
            row: 1,
            label: 5,
            n_classes: 2
        }
    );
    assert_eq!(
        LinearProbe::fit(&[0.0; 4], 2, &[0], 2, &cfg).unwrap_err(),
        ProbeError::LabelCount { rows: 2, labels: 1 }
    );
    assert_eq!(
        LinearProbe::fit(&[0.0, 1.0, f32::NAN, 0.0], 2, &[0, 1], 2, &cfg).unwrap_err(),
        ProbeError::NonFinite { row: 1, col: 0 }
    );
}

#[test]
fn classification_report_matches_hand_count() {
    // truth:     0 0 0 1 1 2
    // predicted: 0 0 1 1 1 0
    let r = classification_report(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 1, 0], 3);
    assert_eq!(
        r.confusion,
        vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
    );
    assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
    // class 0: tp 2, actual 3, predicted 3 → F1 = 4/6; class 1: tp 2, actual 2, predicted 3 → 4/5; class 2: 0.
    let want = [4.0 / 6.0, 0.8, 0.0];
    for (g, w) in r.per_class_f1.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    assert!((r.macro_f1 - (4.0 / 6.0 + 0.8) / 3.0).abs() < 1e-12);
}

#[test]
fn active_dims_counts_mean_and_use() {
    let (n, j) = (1000, 4);
    let mut gamma = vec![0.0f32; n * j];
    for i in 0..n {
        gamma[i * j] = 0.9; // always on
        gamma[i * j + 1] = if i % 10 < 3 { 1.0 } else { 0.0 }; // on for 30 %
        gamma[i * j + 2] = 0.2; // never above 0.5
        gamma[i * j + 3] = if i < 5 { 0.8 } else { 0.0 }; // on for 0.5 %: below the use floor
    }
    let a = active_dims(&gamma, j);
    assert_eq!(a.n_active, 1);
    assert_eq!(a.n_used, 2);
    assert!((a.mean_gamma[1] - 0.3).abs() < 1e-9 && (a.mean_gamma[2] - 0.2).abs() < 1e-6);
    assert!((a.on_fraction[3] - 0.005).abs() < 1e-12);
    assert!((a.mean_active_per_example - 1.305).abs() < 1e-9);
}

#[test]
fn per_class_gamma_and_sparse_code() {
    let gamma = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
    let m = mean_gamma_per_class(&gamma, 2, &[0, 1, 1], 3);
    assert_eq!(m[0][0], 1.0);
    assert_eq!(m[1][0], 0.0);
    assert!((m[0][1] - 0.25).abs() < 1e-12 && (m[1][1] - 0.75).abs() < 1e-12);
    assert!(m[0][2].is_nan(), "class without examples is NaN");
    assert_eq!(
        sparse_code(&[3.0, -2.0, 7.0], &[0.9, 0.1, 0.51]),
        vec![3.0, 0.0, 7.0]
    );
}

#[test]
fn correlation_finds_the_planted_latents() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 5000;
    let (mut src, mut lat) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, b) = (normal(&mut rng), normal(&mut rng));
        src.extend([a, b]);
        // latent 0 = 2a + 1, latent 1 = −b, latent 2 independent, latent 3 constant.
        lat.extend([2.0 * a + 1.0, -b, normal(&mut rng), 4.0]);
    }
    let c = abs_correlation(&src, 2, &lat, 4);
    assert!((c[0][0] - 1.0).abs() < 1e-6 && (c[1][1] - 1.0).abs() < 1e-6);
    assert!(c[0][1] < 0.05 && c[0][2] < 0.05 && c[1][2] < 0.05, "{c:?}");
    assert_eq!(c[0][3], 0.0, "constant latent");
    assert!(top_gap(&c) > 0.9);
    assert_eq!(group_latent_order(&c, 0.3), vec![0, 1, 2, 3]);
    // A latent mixing both sources lowers the gap.
    let mixed: Vec<f32> = src
        .chunks(2)
        .flat_map(|s| [s[0] + s[1], s[0] - s[1]])
        .collect();
    assert!(top_gap(&abs_correlation(&src, 2, &mixed, 2)) < 0.05);
}

#[test]
fn top_gap_and_order_on_a_hand_matrix() {
    let c = vec![vec![0.1, 0.9, 0.0], vec![0.5, 0.0, 0.5]];
    assert!((top_gap(&c) - 0.4).abs() < 1e-12);
    // latent 1 → source 0; latents 0 and 2 → source 1 (tie 0.5, kept in index order).
    assert_eq!(group_latent_order(&c, 0.3), vec![1, 0, 2]);
    // Nothing reaches 0.95: all unassigned, strongest first.
    assert_eq!(group_latent_order(&c, 0.95), vec![1, 0, 2]);
}

#[test]
fn elbo_terms_combine_by_example_weight() {
    let a = ElboTerms::new(10.0, 2.0, 1.0, 1);
    let b = ElboTerms::new(20.0, 4.0, 0.0, 3);
    assert_eq!((a.elbo, a.objective), (-12.0, 13.0));
    let c = ElboTerms::combine(&[a, b]);
    assert_eq!(c.n_examples, 4);
    assert!(
        (c.recon_nll - 17.5).abs() < 1e-12
            && (c.kl - 3.5).abs() < 1e-12
            && (c.sparsity - 0.25).abs() < 1e-12
    );
    assert!((c.elbo + 21.0).abs() < 1e-12 && (c.objective - 21.25).abs() < 1e-12);
    let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
    assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
}

#[test]
fn spike_contrast_is_plus_one_minus_one_or_zero_for_following_opposing_and_unrelated_dims() {
    // 4 rows × 3 dims: dim 0 on where the mask holds, dim 1 where it does not, dim 2 always.
    let mask = vec![true, false, true, false];
    let gamma: Vec<f32> = mask
        .iter()
        .flat_map(|&m| [if m { 0.9 } else { 0.1 }, if m { 0.2 } else { 0.8 }, 1.0])
        .collect();
    let all = vec![true; 4];
    let c = spike_contrast(&gamma, 3, &[mask, all]);
    assert_eq!(c[0][0], 1.0);
    assert_eq!(c[1][0], -1.0);
    assert_eq!(c[2][0], 0.0);
    assert!(
        c.iter().all(|row| row[1] == 0.0),
        "a mask true everywhere has no contrast"
    );
}
