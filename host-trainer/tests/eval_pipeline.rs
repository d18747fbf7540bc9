//! `vsc eval` end to end on a tiny VSC trained for a few steps on Smiley images
//! (generated here, so no shared data is needed).

use host_trainer::eval::pipeline::{EvalOptions, evaluate_run};
use host_trainer::model::TrainConfig;
use host_trainer::smiley::{N_SOURCES, SMILEY_PIXELS, generate, write_set};
use host_trainer::train::{InputScaling, TrainData, TrainOptions, train};

#[test]
fn eval_of_a_smiley_run_writes_metrics_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let smiley_dir = dir.path().join("smiley");
    let train_set = generate(256, 1);
    write_set(&smiley_dir, "train", &train_set).unwrap();
    let test_set = generate(128, 2);
    write_set(&smiley_dir, "test", &test_set).unwrap();
    let mut cfg = TrainConfig::tiny(SMILEY_PIXELS);
    cfg.warmup_iters = 10;
    cfg.ramp_iters = 10;
    cfg.main_iters = 20;
    cfg.checkpoint_every = 0;
    let run = dir.path().join("run");
    let data = TrainData {
        x01: train_set.images.clone(),
        rows: train_set.n,
        cols: SMILEY_PIXELS,
    };
    train(
        &cfg,
        &data,
        InputScaling::Identity,
        &run,
        &TrainOptions::default(),
    )
    .unwrap();

    // Without --smiley the run cannot be evaluated: a clear error, not a panic.
    let err = evaluate_run(&run, &EvalOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--smiley"), "{err}");

    let opts = EvalOptions {
        smiley_dir: Some(smiley_dir),
        ..EvalOptions::default()
    };
    let m = evaluate_run(&run, &opts).unwrap();
    assert_eq!(m.data, "smiley");
    assert_eq!(m.n_test, 128);
    assert!(m.test_elbo.elbo.is_finite());
    assert_eq!(m.active.mean_gamma.len(), cfg.model.latent_dim);
    let d = m.disentanglement.as_ref().unwrap();
    assert_eq!(d.abs_corr.len(), N_SOURCES);
    assert!((0.0..=1.0).contains(&d.top_gap));
    let contrast = d
        .spike_group_contrast
        .as_ref()
        .expect("VSC run has spike contrasts");
    assert_eq!(contrast.len(), cfg.model.latent_dim);
    assert!(
        contrast.iter().all(|row| row.len() == 4),
        "one column per group"
    );
    assert!(contrast.iter().flatten().all(|c| (-1.0..=1.0).contains(c)));
    let mut order = d.latent_order.clone();
    order.sort_unstable();
    assert_eq!(order, (0..cfg.model.latent_dim).collect::<Vec<_>>());
    check_controlled(&m, &run, &test_set);
    for f in [
        "metrics.json",
        "e2_abs_correlation.png",
        "active_dims.png",
        "smiley_reconstructions.png",
        "e5_controlled_generation.png",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        json["disentanglement"]["abs_corr"]
            .as_array()
            .unwrap()
            .len(),
        N_SOURCES
    );
}

/// E5 on Smiley: complementary examples, and the recorded dims are the ones whose edits
/// change the decoded image most, recomputed here with the trained decoder.
fn check_controlled(
    m: &host_trainer::eval::pipeline::EvalMetrics,
    run: &std::path::Path,
    test: &host_trainer::smiley::SmileySet,
) {
    use host_trainer::eval::metrics::sparse_code;
    use host_trainer::smiley::SmileyGroup;
    let c = m.controlled.as_ref().expect("E5 picks dims");
    let [i0, i1] = c.examples;
    let drawn = |i: usize| -> Vec<bool> {
        SmileyGroup::ALL
            .iter()
            .map(|g| test.presence[i * N_SOURCES + g.sources().start] == 1.0)
            .collect()
    };
    assert_eq!(drawn(i0).iter().filter(|&&d| d).count(), 2);
    assert!(drawn(i0).iter().zip(drawn(i1)).all(|(a, b)| *a != b));
    let model = host_trainer::train::TrainedModel::open(run).unwrap();
    let j = m.latent_dim;
    let codes = model.encode(test.image(i0), 1).unwrap();
    let z0 = sparse_code(&codes.mu, &codes.gamma);
    let on: Vec<usize> = (0..j).filter(|&d| codes.gamma[d] > 0.5).collect();
    let change = |a: &[f32], b: &[f32]| -> f64 {
        let mut z = a.to_vec();
        z.extend_from_slice(b);
        let (dec, _) = model.decode(&z, 2).unwrap();
        dec[..SMILEY_PIXELS]
            .iter()
            .zip(&dec[SMILEY_PIXELS..])
            .map(|(x, y)| f64::from(y - x).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    if let Some(d) = c.traversed_dim {
        assert!(
            on.contains(&d),
            "traversed dim {d} is not on in example {i0}"
        );
        assert_eq!(c.traversal_changes[0].0, d);
        let mut candidates: Vec<usize> = c.traversal_changes.iter().map(|t| t.0).collect();
        candidates.sort_unstable();
        assert_eq!(
            candidates, on,
            "every active dim of example {i0} is a candidate"
        );
        for w in c.traversal_changes.windows(2) {
            assert!(w[0].1 >= w[1].1, "not ranked: {:?}", c.traversal_changes);
        }
        for &(dim, recorded) in &c.traversal_changes {
            let (mut lo, mut hi) = (z0.clone(), z0.clone());
            lo[dim] -= 2.0;
            hi[dim] += 2.0;
            let got = change(&lo, &hi);
            assert!(
                (got - recorded).abs() < 1e-3 * got.max(1.0),
                "dim {dim}: {got} vs {recorded}"
            );
        }
    }
    if let Some(t) = c.toggled_dim {
        assert_eq!(c.toggle_changes[0].0, t);
        assert!(
            c.toggle_changes
                .iter()
                .all(|w| w.1 <= c.toggle_changes[0].1)
        );
    }
}

fn har_data_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("VSC_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data").into());
    if dir.join("HAPT_RawData.zip").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "HAR data missing at {} in CI",
        dir.display()
    );
    eprintln!("note: HAR data not found at {}; skipping", dir.display());
    None
}

#[derive(clap::Parser)]
struct Train {
    #[command(flatten)]
    args: host_trainer::cli::train::TrainArgs,
}

#[test]
fn eval_of_a_har_run_probes_codes_and_draws_e3_to_e5() {
    use clap::Parser;
    let Some(data) = har_data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("har");
    let t = Train::try_parse_from([
        "train",
        "--preset",
        "tiny",
        "--steps",
        "100",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
    .unwrap();
    host_trainer::cli::train::run(&t.args).unwrap();
    let opts = EvalOptions {
        data_dir: Some(data),
        max_test_rows: Some(600),
        ..EvalOptions::default()
    };
    let m = evaluate_run(&run, &opts).unwrap();
    assert_eq!(m.data, "har");
    assert_eq!(m.class_names.len(), 6);
    let features: Vec<&str> = m.probes.iter().map(|p| p.features.as_str()).collect();
    assert_eq!(features, ["gamma", "sparse_code", "raw_window_01"]);
    for p in &m.probes {
        // Six activities: anything trained beats chance (1/6) by a margin, even this tiny run.
        assert!(
            p.test.accuracy > 0.25,
            "{}: {}",
            p.features,
            p.test.accuracy
        );
        assert_eq!(p.test.confusion.iter().flatten().sum::<u64>(), 600);
    }
    let c = m.controlled.as_ref().expect("E5 picks dims on HAR");
    let best = c.traversal_changes.first().expect("a traversal candidate");
    assert_eq!(Some(best.0), c.traversed_dim);
    assert!(c.traversal_changes.iter().all(|t| t.1 <= best.1));
    let per_class = m.per_class_gamma.as_ref().unwrap();
    assert_eq!((per_class.len(), per_class[0].len()), (m.latent_dim, 6));
    for f in [
        "e3_gamma_per_class.png",
        "e4_conditional_generation.png",
        "e5_controlled_generation.png",
        "probe_gamma.png",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
}
