//! Training-loop tests: overfitting a small real subset, save → load, bit-identical resume
//! (incl. an interrupted checkpoint write), NaN handling.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use edge_runtime::preprocess::{ChannelSet, InputFeatures};
use host_trainer::data::{WindowConfig, har_training_data, load_har_windows};
use host_trainer::model::TrainConfig;
use host_trainer::model::vsc::tensor_to_vec;
use host_trainer::train::{
    InputScaling, RunMeta, TrainData, TrainError, TrainOptions, TrainedModel, init_net, load_net,
    save_net, train,
};

const SUBSET_ROWS: usize = 96;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VSC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
        });
    if dir.join("HAPT_RawData.zip").is_file() || dir.join("HAPT_RawData").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("HAR data missing in {} (CI=true)", dir.display());
    }
    None
}

/// A small real subset: the first training windows of total acceleration (3 × 128 inputs),
/// scaled into [0, 1] with the scaling fitted on the whole training split.
fn real_subset() -> Option<&'static (TrainData, InputScaling)> {
    static DATA: OnceLock<Option<(TrainData, InputScaling)>> = OnceLock::new();
    DATA.get_or_init(|| {
        let Some(dir) = data_dir() else {
            eprintln!("note: HAR data not found; skipping training tests");
            return None;
        };
        let cfg = WindowConfig {
            channels: ChannelSet::TOTAL_ACC,
            include_transitions: false,
        };
        let (train_w, _) = load_har_windows(&dir, &cfg).expect("load HAR windows");
        let (all, scaling) = har_training_data(&train_w, InputFeatures::Waveform).expect("scale");
        let (x, dim) = (all.x01, all.cols);
        // Every 50th window: several subjects and activities.
        let mut x01 = Vec::new();
        for r in (0..train_w.len()).step_by(50).take(SUBSET_ROWS) {
            x01.extend_from_slice(&x[r * dim..(r + 1) * dim]);
        }
        let rows = x01.len() / dim;
        Some((
            TrainData {
                x01,
                rows,
                cols: dim,
            },
            scaling,
        ))
    })
    .as_ref()
}

fn tiny(cols: usize) -> TrainConfig {
    TrainConfig::tiny(cols)
}

fn run(
    cfg: &TrainConfig,
    dir: &Path,
    opts: TrainOptions,
) -> Result<host_trainer::train::TrainOutcome, TrainError> {
    let (data, scaling) = real_subset().expect("data present");
    train(cfg, data, scaling.clone(), dir, &opts)
}

/// Every parameter of a trained run, flattened.
fn all_weights(m: &TrainedModel) -> Vec<Vec<f32>> {
    let n = &m.net;
    let mut out = vec![];
    for d in [
        &n.encoder.hidden,
        &n.encoder.mu,
        &n.encoder.logvar,
        n.encoder.spike.as_ref().unwrap(),
        &n.decoder.hidden,
        &n.decoder.mean,
        n.decoder.logvar.as_ref().unwrap(),
        n.selector.as_ref().unwrap(),
    ] {
        out.push(tensor_to_vec(d.weight.val()));
        out.push(tensor_to_vec(d.bias.val()));
    }
    out.push(tensor_to_vec(n.pseudo_inputs.as_ref().unwrap().val()));
    out
}

#[test]
fn tiny_preset_overfits_a_small_real_subset_and_save_load_is_exact() {
    let Some((data, scaling)) = real_subset() else {
        return;
    };
    let cfg = tiny(data.cols);
    let dir = tempfile::tempdir().unwrap();
    // Before training: the same initial network the run starts from.
    let meta = RunMeta {
        train: cfg.clone(),
        scaling: scaling.clone(),
        train_rows: data.rows,
    };
    let init = TrainedModel::from_parts(
        meta,
        init_net(&cfg, Some(data), &Device::flex()),
        Device::flex(),
    );
    let before = init.evaluate(&data.x01, data.rows, 7).unwrap();
    let out = run(&cfg, dir.path(), TrainOptions::default()).unwrap();
    assert!(out.finished && out.steps_done == cfg.total_iters());
    let model = TrainedModel::open(dir.path()).unwrap();
    let after = model.evaluate(&data.x01, data.rows, 7).unwrap();
    eprintln!("before {before:?}\nafter  {after:?}");
    // Stated margin: the negative ELBO on the training subset falls by at least 0.25 nats
    // per input value (384 values → ≥ 96 nats).
    let margin = 0.25 * data.cols as f64;
    assert!(
        after.elbo > before.elbo + margin,
        "ELBO {} → {} did not improve by {margin}",
        before.elbo,
        after.elbo
    );
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        1 + cfg.total_iters() / cfg.log_every
    );
    assert!(dir.path().join("config.toml").is_file());

    // save → load: identical outputs.
    let codes = model.encode(&data.x01, data.rows).unwrap();
    let copy_path = dir.path().join("copy.bpk");
    save_net(&model.net, &copy_path).unwrap();
    let reloaded = load_net(init_net(&cfg, None, &Device::flex()), &copy_path).unwrap();
    let reloaded = TrainedModel::from_parts(model.meta.clone(), reloaded, Device::flex());
    assert_eq!(codes, reloaded.encode(&data.x01, data.rows).unwrap());
    let z: Vec<f32> = codes
        .mu
        .iter()
        .zip(&codes.gamma)
        .map(|(m, g)| if *g > 0.5 { *m } else { 0.0 })
        .collect();
    assert_eq!(
        model.decode(&z, data.rows).unwrap(),
        reloaded.decode(&z, data.rows).unwrap()
    );
    let prior = model.prior_for(&data.x01[..data.cols], 1).unwrap().unwrap();
    assert_eq!(prior.mu.len(), cfg.model.latent_dim);

    // The exported f32 encoder agrees with burn on the [0, 1] inputs.
    let enc = model.to_f32_encoder().unwrap();
    let code = enc.try_forward_x01(&data.x01[..data.cols]).unwrap();
    for (a, b) in code.mu.iter().zip(&codes.mu[..cfg.model.latent_dim]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    for (lg, g) in code
        .log_gamma
        .iter()
        .zip(&codes.gamma[..cfg.model.latent_dim])
    {
        assert!((lg.exp() - g).abs() < 1e-4);
    }
}

#[test]
fn stopped_and_resumed_run_is_bit_identical_even_after_an_interrupted_write() {
    let Some((data, _)) = real_subset() else {
        return;
    };
    let cfg = tiny(data.cols);
    let full = tempfile::tempdir().unwrap();
    run(&cfg, full.path(), TrainOptions::default()).unwrap();

    let cut = tempfile::tempdir().unwrap();
    // "Killed" at step 130: last checkpoint is step 100.
    let out = run(
        &cfg,
        cut.path(),
        TrainOptions {
            stop_after_steps: Some(130),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!out.finished && !cut.path().join("model.bpk").exists());
    let ck = cut.path().join("checkpoints");
    assert!(ck.join("step-00000100").is_dir());
    // Simulate a kill during the next checkpoint write: a half-written temp directory with a
    // corrupt model file, and a LATEST pointer naming it.
    std::fs::create_dir_all(ck.join("step-00000150.tmp")).unwrap();
    std::fs::write(ck.join("step-00000150.tmp/model.bpk"), b"garbage").unwrap();
    std::fs::write(ck.join("LATEST"), b"step-00000150.tmp").unwrap();

    let out = run(
        &cfg,
        cut.path(),
        TrainOptions {
            resume: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.resumed_from, Some(100));
    assert!(out.finished);
    assert!(!ck.join("step-00000150.tmp").exists());

    let a = TrainedModel::open(full.path()).unwrap();
    let b = TrainedModel::open(cut.path()).unwrap();
    assert_eq!(
        all_weights(&a),
        all_weights(&b),
        "weights differ after resume"
    );
    assert_eq!(
        std::fs::read_to_string(full.path().join("metrics.csv")).unwrap(),
        std::fs::read_to_string(cut.path().join("metrics.csv")).unwrap()
    );
}

#[test]
fn nan_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let Some((data, _)) = real_subset() else {
        return;
    };
    let cfg = tiny(data.cols);
    let dir = tempfile::tempdir().unwrap();
    let err = run(
        &cfg,
        dir.path(),
        TrainOptions {
            inject_nan_at_step: Some(70),
            ..Default::default()
        },
    )
    .unwrap_err();
    match &err {
        TrainError::NonFinite {
            step,
            last_checkpoint,
            ..
        } => {
            assert_eq!(*step, 70);
            assert!(last_checkpoint.as_ref().unwrap().ends_with("step-00000050"));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("step 70"), "{err}");
    assert!(!dir.path().join("model.bpk").exists());
    // The checkpoint is intact and loadable.
    let m = TrainedModel::open(dir.path()).unwrap();
    let codes = m.encode(&data.x01[..data.cols], 1).unwrap();
    assert!(codes.mu.iter().all(|v| v.is_finite()));
}
