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
    write_set(&smiley_dir, "test", &generate(128, 2)).unwrap();
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
    for f in [
        "metrics.json",
        "e2_abs_correlation.png",
        "active_dims.png",
        "smiley_reconstructions.png",
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
