//! End to end through the `vsc` binary on a synthetic sparse data set with known sources:
//! `train --input`, `encode`, `decode`, `generate`; NPY and CSV inputs must give identical
//! runs and codes, and the encoder's active set must track which sources are present.

use std::path::Path;
use std::process::Command;

use host_trainer::api::Model;
use host_trainer::matrix::{Matrix, read_matrix, write_csv, write_npy};
use host_trainer::model::{Likelihood, TrainConfig};
use host_trainer::train::TrainOptions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SOURCES: usize = 5;
const WIDTH: usize = 24;
const ROWS: usize = 3000;
const PRESENT_P: f64 = 0.35;

/// Rows of `x = 3 tanh(Σ_k s_k p_k) + 10 + noise` with s_k ∈ {0} ∪ [0.6, 1.4] present with
/// probability 0.35 (1.75 sources per row on average) and fixed random patterns
/// p_k ~ U(−1.5, 1.5)^M; returns (X, presence S). The tanh saturates wherever two or more
/// sources overlap, so the mix is genuinely nonlinear.
fn synthetic(seed: u64) -> (Matrix, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let patterns: Vec<f32> = (0..SOURCES * WIDTH)
        .map(|_| rng.random_range(-1.5f32..1.5))
        .collect();
    let mut x = Vec::with_capacity(ROWS * WIDTH);
    let mut present = Vec::with_capacity(ROWS * SOURCES);
    for _ in 0..ROWS {
        let s: Vec<f32> = (0..SOURCES)
            .map(|_| {
                if rng.random_bool(PRESENT_P) {
                    rng.random_range(0.6f32..1.4)
                } else {
                    0.0
                }
            })
            .collect();
        present.extend(s.iter().map(|v| *v > 0.0));
        for m in 0..WIDTH {
            let h: f32 = (0..SOURCES).map(|k| s[k] * patterns[k * WIDTH + m]).sum();
            x.push(3.0 * h.tanh() + 10.0 + rng.random_range(-0.05f32..0.05));
        }
    }
    (Matrix::new(ROWS, WIDTH, x).unwrap(), present)
}

fn vsc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vsc"))
        .args(args)
        .output()
        .expect("run vsc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vsc {args:?} failed:\n{text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Balanced accuracy of "latent j active" as a detector of "source k present".
fn balanced_accuracy(active: &[bool], present: &[bool]) -> f64 {
    let (mut tp, mut tn, mut pos, mut neg) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (a, s) in active.iter().zip(present) {
        if *s {
            pos += 1.0;
            tp += f64::from(u8::from(*a));
        } else {
            neg += 1.0;
            tn += f64::from(u8::from(!*a));
        }
    }
    0.5 * (tp / pos.max(1.0) + tn / neg.max(1.0))
}

/// One-to-one matching of sources to latent dims, greedily by balanced accuracy;
/// `gamma` is `ROWS × J`, `present` `ROWS × SOURCES`, a dim is active when γ > 0.5.
fn match_sources(gamma: &[f32], j: usize, present: &[bool]) -> Vec<(usize, usize, f64)> {
    let mut scores = Vec::new();
    for k in 0..SOURCES {
        let s: Vec<bool> = (0..ROWS).map(|r| present[r * SOURCES + k]).collect();
        for d in 0..j {
            let a: Vec<bool> = (0..ROWS).map(|r| gamma[r * j + d] > 0.5).collect();
            scores.push((k, d, balanced_accuracy(&a, &s)));
        }
    }
    scores.sort_by(|a, b| b.2.total_cmp(&a.2));
    let (mut used_k, mut used_d) = (vec![false; SOURCES], vec![false; j]);
    let mut out = Vec::new();
    for (k, d, s) in scores {
        if !used_k[k] && !used_d[d] {
            used_k[k] = true;
            used_d[d] = true;
            out.push((k, d, s));
        }
    }
    out.sort_by_key(|m| m.0);
    out
}

/// Balanced-accuracy floor for a source to count as tracked.
const TRACKED_BA: f64 = 0.9;

/// Mean balanced accuracy of the matching and the number of tracked sources.
fn agreement(matched: &[(usize, usize, f64)]) -> (f64, usize) {
    let mean = matched.iter().map(|m| m.2).sum::<f64>() / SOURCES as f64;
    (mean, matched.iter().filter(|m| m.2 >= TRACKED_BA).count())
}

/// The test's pass criterion for an active set: a clear majority of the sources tracked.
fn tracks_sources(matched: &[(usize, usize, f64)]) -> bool {
    let (mean, tracked) = agreement(matched);
    mean >= 0.85 && tracked >= 3
}

#[test]
fn npy_and_csv_runs_agree_and_active_set_tracks_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, present) = synthetic(7);
    let (npy, csv) = (d.join("X.npy"), d.join("X.csv"));
    write_npy(&npy, &x).unwrap();
    let names: Vec<String> = (0..WIDTH).map(|c| format!("f{c}")).collect();
    write_csv(&csv, Some(&names), &x).unwrap();

    let mut cfg = TrainConfig::tiny(WIDTH);
    cfg.preset = "synthetic".into();
    cfg.model.hidden_dim = 128;
    cfg.model.latent_dim = 10;
    cfg.model.pseudo_inputs = 8;
    // Prior spike probability matched to the data: 0.35 × 5 sources = 1.75 of 10 dims.
    cfg.model.alpha = (PRESENT_P * SOURCES as f64) as f32 / 10.0;
    // log γ = −ReLU(−v) has zero gradient for v > 0, so a spike head that starts positive
    // (tiny's random init) leaves dims stuck on for every row whatever the loss says; with
    // tiny's init 4 of 10 dims were on for all rows and 3 sources went untracked. Start
    // the spikes off, as the edge preset does.
    cfg.model.spike_bias_init = Some(-3.0);
    cfg.batch_size = 128;
    // Half of the run as spike-only warm-up (λ = 0): the code then carries information
    // only through which dims are on, which is what separates the sources; a quarter
    // warm-up often left one dim on for "source a or source b".
    cfg.warmup_iters = 3000;
    cfg.ramp_iters = 500;
    cfg.main_iters = 2500;
    cfg.checkpoint_every = 0;
    // A fixed decoder std keeps the reconstruction term from swamping the KL and sparsity
    // terms (VSC.md §8); with the learned variance every row used the same 5 dims.
    cfg.model.likelihood = Likelihood::GaussianFixed { std: 0.1 };
    let cfg_path = d.join("cfg.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();

    let (run_npy, run_csv) = (d.join("run_npy"), d.join("run_csv"));
    for (input, run) in [(&npy, &run_npy), (&csv, &run_csv)] {
        let log = vsc(&[
            "train",
            "--input",
            p(input),
            "--config",
            p(&cfg_path),
            "--out",
            p(run),
            "--quiet",
        ]);
        eprintln!("{log}");
    }
    // Same scaling, same config.
    let cfg_a = std::fs::read_to_string(run_npy.join("config.toml")).unwrap();
    let cfg_b = std::fs::read_to_string(run_csv.join("config.toml")).unwrap();
    assert_eq!(cfg_a, cfg_b);
    // (model.bpk bytes differ between runs: burn stores random parameter ids; the
    // identical codes below show the weights are the same.)

    // Encode: NPY (four files) and CSV (one file) outputs hold the same numbers.
    vsc(&[
        "encode",
        p(&run_npy),
        "--input",
        p(&npy),
        "--out",
        p(&d.join("codes.npy")),
        "--batch-rows",
        "700",
        "--quiet",
    ]);
    vsc(&[
        "encode",
        p(&run_csv),
        "--input",
        p(&csv),
        "--out",
        p(&d.join("codes.csv")),
        "--quiet",
    ]);
    let j = cfg.model.latent_dim;
    let codes_csv = read_matrix(&d.join("codes.csv")).unwrap();
    assert_eq!((codes_csv.rows, codes_csv.cols), (ROWS, 4 * j));
    for (a, name) in ["mu", "logvar", "gamma", "code"].iter().enumerate() {
        let m = read_matrix(&d.join(format!("codes.{name}.npy"))).unwrap();
        assert_eq!((m.rows, m.cols), (ROWS, j));
        for r in 0..ROWS {
            assert_eq!(
                m.row(r),
                &codes_csv.row(r)[a * j..(a + 1) * j],
                "{name} row {r}"
            );
        }
    }
    // The library API gives the same codes as the CLI.
    let model = Model::open(&run_npy).unwrap();
    let lib = model.encode(&x.data, ROWS).unwrap();
    let gamma = read_matrix(&d.join("codes.gamma.npy")).unwrap();
    assert_eq!(lib.gamma, gamma.data);

    // The active set tracks the sources.
    let matched = match_sources(&gamma.data, j, &present);
    let (mean_ba, tracked) = agreement(&matched);
    let active_per_row = gamma.data.iter().filter(|g| **g > 0.5).count() as f64 / ROWS as f64;
    let sources_per_row = present.iter().filter(|s| **s).count() as f64 / ROWS as f64;
    eprintln!("source  latent dim  balanced accuracy (active = γ > 0.5)");
    for (k, dd, ba) in &matched {
        eprintln!("{k:>6}  {dd:>10}  {ba:>17.3}");
    }
    eprintln!(
        "mean {mean_ba:.3}; {tracked} of {SOURCES} sources tracked (≥ {TRACKED_BA}); \
         active dims per row {active_per_row:.2} (sources present per row {sources_per_row:.2})"
    );
    // Measured with this config (training seed 0, deterministic): mean 0.99, all 5 sources
    // ≥ 0.95. Other training seeds (1–5): mean 0.86–1.00; in the weakest (seed 3) one dim
    // fired for "source a or b" and only 2 sources reached 0.9. A collapsed code (the same
    // dims on for every row) scores exactly 0.5 on every source.
    assert!(
        tracks_sources(&matched),
        "active set does not track the sources: mean balanced accuracy {mean_ba:.3}, \
         {tracked} sources ≥ {TRACKED_BA}"
    );
    // Controls, so that the criterion can fail: the same codes against presence labels
    // shuffled across rows, and an untrained model's codes, must not pass it.
    let mut shuffled = present.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for r in (1..ROWS).rev() {
        let o = rng.random_range(0..=r);
        for k in 0..SOURCES {
            shuffled.swap(r * SOURCES + k, o * SOURCES + k);
        }
    }
    let control = match_sources(&gamma.data, j, &shuffled);
    eprintln!(
        "control, shuffled labels: mean {:.3}",
        agreement(&control).0
    );
    assert!(
        !tracks_sources(&control),
        "shuffled labels pass: {control:?}"
    );
    let mut untrained_cfg = cfg.clone();
    (untrained_cfg.warmup_iters, untrained_cfg.ramp_iters) = (0, 0);
    untrained_cfg.main_iters = 1;
    let untrained = host_trainer::api::train(
        &x.data,
        ROWS,
        WIDTH,
        &untrained_cfg,
        &d.join("run_untrained"),
        &TrainOptions {
            progress: false,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    let control = match_sources(&untrained.encode(&x.data, ROWS).unwrap().gamma, j, &present);
    eprintln!(
        "control, untrained (1 step): mean {:.3}",
        agreement(&control).0
    );
    assert!(
        !tracks_sources(&control),
        "untrained model passes: {control:?}"
    );

    // Decode the sparse codes: reconstructions in original units, close to the inputs.
    vsc(&[
        "decode",
        p(&run_npy),
        "--codes",
        p(&d.join("codes.npy")),
        "--out",
        p(&d.join("xhat.npy")),
        "--quiet",
    ]);
    let mean = read_matrix(&d.join("xhat.mean.npy")).unwrap();
    let std = read_matrix(&d.join("xhat.std.npy")).unwrap();
    assert_eq!((mean.rows, mean.cols), (ROWS, WIDTH));
    assert!(std.data.iter().all(|s| *s > 0.0));
    let mse: f64 = mean
        .data
        .iter()
        .zip(&x.data)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / (ROWS * WIDTH) as f64;
    let var: f64 = {
        let mu = x.data.iter().map(|v| f64::from(*v)).sum::<f64>() / x.data.len() as f64;
        x.data
            .iter()
            .map(|v| (f64::from(*v) - mu).powi(2))
            .sum::<f64>()
            / x.data.len() as f64
    };
    eprintln!("reconstruction MSE {mse:.4} vs data variance {var:.4}");
    assert!(mse < 0.5 * var, "mse {mse} var {var}");
    // Decoding the encode CSV (its code_* columns) gives the same means.
    vsc(&[
        "decode",
        p(&run_csv),
        "--codes",
        p(&d.join("codes.csv")),
        "--out",
        p(&d.join("xhat.csv")),
        "--quiet",
    ]);
    let both = read_matrix(&d.join("xhat.csv")).unwrap();
    for r in [0, 17, ROWS - 1] {
        assert_eq!(&both.row(r)[..WIDTH], mean.row(r));
    }

    // Conditional generation keeps each example's active set (and only it).
    vsc(&[
        "generate",
        p(&run_npy),
        "--like",
        p(&npy),
        "--rows",
        "3,11",
        "--n",
        "4",
        "--out",
        p(&d.join("gen.npy")),
    ]);
    let z = read_matrix(&d.join("gen.z.npy")).unwrap();
    let src = read_matrix(&d.join("gen.source_row.npy")).unwrap();
    assert_eq!((z.rows, z.cols), (8, j));
    assert_eq!(src.data, vec![3.0, 3.0, 3.0, 3.0, 11.0, 11.0, 11.0, 11.0]);
    for (g, &r) in [3usize, 11].iter().enumerate() {
        let active: Vec<bool> = (0..j).map(|dd| gamma.data[r * j + dd] > 0.5).collect();
        for s in 0..4 {
            for (dd, on) in active.iter().enumerate() {
                if !on {
                    assert_eq!(z.row(g * 4 + s)[dd], 0.0, "row {r} dim {dd} should be off");
                }
            }
        }
    }
    // Traversal: the chosen dim takes the given values, the rest is the row's code.
    vsc(&[
        "generate",
        p(&run_npy),
        "--like",
        p(&csv),
        "--rows",
        "5",
        "--traverse",
        "1",
        "--values=-2:2:5",
        "--out",
        p(&d.join("trav.csv")),
    ]);
    let t = read_matrix(&d.join("trav.csv")).unwrap();
    assert_eq!(t.rows, 5);
    let vals: Vec<f32> = (0..5).map(|i| t.row(i)[1 + 1]).collect();
    assert_eq!(vals, vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
}

#[test]
fn wrong_width_and_bad_rows_are_clear_cli_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = Matrix::new(40, 3, (0..120).map(|i| (i % 7) as f32).collect()).unwrap();
    write_npy(&d.join("X.npy"), &x).unwrap();
    let run = d.join("run");
    vsc(&[
        "train",
        "--input",
        p(&d.join("X.npy")),
        "--preset",
        "tiny",
        "--steps",
        "10",
        "--out",
        p(&run),
        "--quiet",
    ]);
    let wide = Matrix::new(2, 4, vec![0.0; 8]).unwrap();
    write_csv(&d.join("W.csv"), None, &wide).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vsc"))
        .args(["encode", p(&run), "--input", p(&d.join("W.csv")), "--out"])
        .arg(d.join("c.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("W.csv") && err.contains("4 columns") && err.contains("expects 3"),
        "{err}"
    );
    assert!(!d.join("c.csv").exists(), "no output on error");
    let out = Command::new(env!("CARGO_BIN_EXE_vsc"))
        .args([
            "generate",
            p(&run),
            "--like",
            p(&d.join("X.npy")),
            "--rows",
            "40",
        ])
        .args(["--out", p(&d.join("g.csv"))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 40") && err.contains("40 rows"), "{err}");
    // Labels must match the row count.
    std::fs::write(d.join("y.csv"), "1\n2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vsc"))
        .args(["train", "--input", p(&d.join("X.npy")), "--labels"])
        .args([
            p(&d.join("y.csv")),
            "--preset",
            "tiny",
            "--out",
            p(&d.join("r2")),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 labels") && err.contains("40 rows"), "{err}");
}
